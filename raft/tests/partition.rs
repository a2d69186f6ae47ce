//! What: a 3-node cluster inside turmoil, running the real node code (openraft,
//! RocksDB storage in temp dirs, the tonic transport over turmoil streams). The
//! leader is partitioned from the majority: the minority commits nothing, the
//! majority elects a new leader and goes on, and after healing every replica holds
//! identical state (same applied index, same state digest).
//!
//! Replay one seed with `FLEETCORE_SEED=n cargo test -p fleetcore-raft --test partition`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use fleetcore_model::{Applied, Command, ShadowKey};
use fleetcore_raft::pb::raft_service_client::RaftServiceClient;
use fleetcore_raft::pb::Blob;
use fleetcore_raft::transport::ConnectFuture;
use fleetcore_raft::wire::{self, ForwardRequest, ForwardResponse};
use fleetcore_raft::{Connector, NodeInfo, RaftNode, RaftOptions};
use fleetcore_storage::SharedState;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::Endpoint;

const CLUSTER: &str = "sim-cluster";
const NODES: [&str; 3] = ["n1", "n2", "n3"];
const PORT: u16 = 7000;

/// Dials peers through turmoil's simulated network.
#[derive(Clone, Copy)]
struct TurmoilConnector;

impl Connector for TurmoilConnector {
    type Io = turmoil::net::TcpStream;
    fn connect(&self, addr: String) -> ConnectFuture<Self::Io> {
        Box::pin(async move { turmoil::net::TcpStream::connect(addr).await })
    }
}

/// A turmoil connection that tonic's server accepts.
struct Conn(turmoil::net::TcpStream);

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

fn members() -> BTreeMap<u64, NodeInfo> {
    NODES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                i as u64 + 1,
                NodeInfo {
                    raft_addr: format!("{name}:{PORT}"),
                    http_addr: String::new(),
                },
            )
        })
        .collect()
}

/// The client's view: send a Forward request to one node.
async fn forward(node: &str, request: &ForwardRequest) -> Result<ForwardResponse, String> {
    let target = format!("{node}:{PORT}");
    let channel = Endpoint::from_static("http://sim.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let target = target.clone();
            async move {
                turmoil::net::TcpStream::connect(target)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
        .map_err(|e| e.to_string())?;
    let mut client = RaftServiceClient::new(channel);
    let mut rpc = tonic::Request::new(Blob {
        data: wire::encode(request)?,
    });
    rpc.set_timeout(Duration::from_secs(3));
    rpc.metadata_mut()
        .insert(wire::CLUSTER_HEADER, CLUSTER.parse().map_err(|_| "header")?);
    let reply = client
        .forward(rpc)
        .await
        .map_err(|s| s.message().to_string())?;
    wire::decode(&reply.into_inner().data)
}

fn update(thing: &str, n: u64) -> ForwardRequest {
    ForwardRequest::Write(Command::UpdateShadow {
        key: ShadowKey::classic(thing),
        request: format!(r#"{{"state":{{"reported":{{"n":{n}}}}}}}"#),
        at_ms: n,
    })
}

/// Writes through whichever of `nodes` leads; retries until `deadline` of sim time.
async fn write_somewhere(
    nodes: &[&str],
    request: &ForwardRequest,
    deadline: Duration,
) -> Option<(String, Applied)> {
    let give_up = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < give_up {
        for node in nodes {
            if let Ok(ForwardResponse::Written(json)) = forward(node, request).await {
                let outcome: fleetcore_model::Outcome = serde_json::from_str(&json).ok()?;
                return outcome.ok().map(|a| (node.to_string(), a));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(120))
        .tick_duration(Duration::from_millis(1))
        .build();
    let dirs: Vec<tempfile::TempDir> = NODES
        .iter()
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let states: Arc<Mutex<BTreeMap<u64, SharedState>>> = Arc::default();

    for (i, name) in NODES.iter().enumerate() {
        let id = i as u64 + 1;
        let dir = dirs[i].path().to_path_buf();
        let states = states.clone();
        sim.host(*name, move || {
            let dir = dir.clone();
            let states = states.clone();
            async move {
                let options = RaftOptions {
                    snapshot_every_entries: 30,
                    keep_behind_snapshot: 5,
                    ..Default::default()
                };
                let info = members()[&id].clone();
                let node = RaftNode::start(id, info, &dir, options, TurmoilConnector).await?;
                states
                    .lock()
                    .map_err(|_| "poisoned")?
                    .insert(id, node.state().clone());
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                let incoming = futures::stream::unfold(listener, |l| async move {
                    let accepted = l.accept().await.map(|(s, _)| Conn(s));
                    Some((accepted, l))
                });
                let server = tokio::spawn(fleetcore_raft::service::serve(
                    node.clone(),
                    incoming,
                    std::future::pending(),
                ));
                node.bootstrap(CLUSTER, members()).await?;
                server.await??;
                Ok(())
            }
        });
    }

    sim.client("client", async move {
        // A leader emerges and writes commit.
        let (_, first) = write_somewhere(&NODES, &update("before", 1), Duration::from_secs(30))
            .await
            .ok_or("no write committed on a healthy cluster")?;
        assert!(matches!(first, Applied::ShadowUpdated(_)));
        let (leader, _) = write_somewhere(&NODES, &update("before", 2), Duration::from_secs(10))
            .await
            .ok_or("second write")?;
        let majority: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();

        // Cut the leader off from both followers (the client still reaches everyone).
        for m in &majority {
            turmoil::partition(leader.as_str(), *m);
        }
        // The minority leader cannot commit.
        let minority_write = forward(&leader, &update("minority", 1)).await;
        assert!(
            !matches!(minority_write, Ok(ForwardResponse::Written(_))),
            "the isolated leader acknowledged a write: {minority_write:?}"
        );
        // The majority elects a leader and goes on.
        let mut new_leader = String::new();
        for n in 0..20u64 {
            let (l, _) = write_somewhere(
                &majority,
                &update("majority", n + 1),
                Duration::from_secs(30),
            )
            .await
            .ok_or("the majority did not commit after the partition")?;
            new_leader = l;
        }
        assert_ne!(new_leader, leader);

        for m in &majority {
            turmoil::repair(leader.as_str(), *m);
        }
        // After healing, every replica converges on identical state.
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let snapshot: Vec<(Option<u64>, String)> = {
                let states = states.lock().map_err(|_| "poisoned")?;
                states
                    .values()
                    .map(|s| (s.read().last_applied.map(|l| l.index), s.digest()))
                    .collect()
            };
            if snapshot.len() == 3 && snapshot.iter().all(|x| *x == snapshot[0]) {
                break;
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(format!("replicas did not converge: {snapshot:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The write the isolated leader took was never committed anywhere.
        for s in states.lock().map_err(|_| "poisoned")?.values() {
            let applied = s.read();
            assert!(applied
                .state
                .shadow(&ShadowKey::classic("minority"))
                .is_none());
            assert_eq!(
                applied
                    .state
                    .shadow(&ShadowKey::classic("majority"))
                    .map(|r| r.version),
                Some(20)
            );
            assert_eq!(
                applied
                    .state
                    .shadow(&ShadowKey::classic("before"))
                    .map(|r| r.version),
                Some(2)
            );
        }
        Ok(())
    });

    sim.run().map_err(|e| format!("seed {seed}: {e}"))
}

#[test]
fn partitioned_leader_commits_nothing_and_replicas_converge_after_healing() {
    let seeds: Vec<u64> = match std::env::var("FLEETCORE_SEED") {
        Ok(s) => vec![s.parse().expect("FLEETCORE_SEED is a number")],
        Err(_) => (0..8).collect(),
    };
    for seed in seeds {
        if let Err(e) = run_seed(seed) {
            panic!("seed {seed} failed (replay: FLEETCORE_SEED={seed}): {e}");
        }
    }
}
