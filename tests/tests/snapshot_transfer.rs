//! A snapshot transfer that arrives cut short or corrupted, sent to a real node's
//! Raft port the way a leader sends one: refused before anything is installed, the
//! node's state and its own snapshot as they were, no partial file left behind.

use std::time::Duration;

use fleetcore_raft::pb::raft_service_client::RaftServiceClient;
use fleetcore_raft::pb::Blob;
use fleetcore_raft::wire;
use fleetcore_storage::snapshot::SnapshotReader;
use fleetcore_tests::{eventually, serial, Cluster};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_or_corrupt_snapshot_transfer_changes_nothing() -> anyhow::Result<()> {
    let _serial = serial().await;
    let c = Cluster::start(1, &["--snapshot-every-entries", "10"])?;
    c.agreed_leader(&[1], DEADLINE).await?;
    for i in 0..25 {
        let r = c
            .http
            .post(format!("{}/things/t{}/shadow", c.node(1).url(), i % 3))
            .json(&json!({"state": {"reported": {"i": i}}}))
            .send()
            .await?;
        assert_eq!(r.status(), 200);
    }
    let data_dir = c.node(1).data_dir.clone();
    let snapshot_path = data_dir.join("snapshot");
    eventually("the node to build a snapshot", DEADLINE, || async {
        snapshot_path.exists().then_some(())
    })
    .await?;
    let bytes = std::fs::read(&snapshot_path)?;
    let meta = SnapshotReader::new(bytes.as_slice())?.meta().clone();
    let status = c.status(1).await.expect("status");
    let digest = status["state_digest"].clone();
    let cluster_id = status["cluster_id"]
        .as_str()
        .expect("cluster id")
        .to_string();

    let vote = openraft::impls::Vote::<openraft::impls::leader_id_adv::LeaderId<u64, u64>>::new(
        status["term"].as_u64().unwrap_or(1),
        1,
    );
    let head = wire::encode(&(vote, meta)).map_err(anyhow::Error::msg)?;
    let send = |body: Vec<u8>| {
        let head = head.clone();
        let cluster_id = cluster_id.clone();
        let addr = format!("http://{}", c.node(1).raft_addr);
        async move {
            let mut client = RaftServiceClient::connect(addr).await?;
            let chunks: Vec<Blob> = std::iter::once(head)
                .chain(body.chunks(1000).map(<[u8]>::to_vec))
                .map(|data| Blob { data })
                .collect();
            let mut request = tonic::Request::new(futures::stream::iter(chunks));
            request
                .metadata_mut()
                .insert(wire::CLUSTER_HEADER, cluster_id.parse()?);
            Ok::<_, anyhow::Error>(client.install_snapshot(request).await)
        }
    };

    let cut = send(bytes[..bytes.len() / 2].to_vec()).await?;
    let refusal = cut.expect_err("a cut transfer is refused");
    assert_eq!(refusal.code(), tonic::Code::InvalidArgument);
    assert!(refusal.message().contains("cut short"), "{refusal}");

    let mut flipped = bytes.clone();
    let at = bytes.len() - 1;
    flipped[at] ^= 0x01;
    let refusal = send(flipped)
        .await?
        .expect_err("a corrupt transfer is refused");
    assert_eq!(refusal.code(), tonic::Code::InvalidArgument);
    assert!(refusal.message().contains("checksum"), "{refusal}");

    // Nothing changed and nothing was left behind.
    let after = c.status(1).await.expect("status");
    assert_eq!(after["state_digest"], digest);
    assert_eq!(std::fs::read(&snapshot_path)?, bytes);
    let leftovers: Vec<_> = std::fs::read_dir(&data_dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snapshot."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // And the node still takes writes.
    let r = c
        .http
        .post(format!("{}/things/t0/shadow", c.node(1).url()))
        .json(&json!({"state": {"reported": {"after": true}}}))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    Ok(())
}
