//! What: a 3-node cluster inside turmoil, running the real node code (openraft,
//! RocksDB storage in temp dirs, the tonic transport over turmoil streams). The
//! leader is partitioned from the majority: the minority commits nothing, the
//! majority elects a new leader and goes on, and after healing every replica holds
//! identical state (same applied index, same state digest).
//!
//! Replay one seed with `FLEETCORE_SEED=n cargo test --workspace --test partition`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos::sim::{add_nodes, forward, host_names, update};
use fleetcore_model::{Applied, ShadowKey};
use fleetcore_raft::wire::{ForwardRequest, ForwardResponse};
use fleetcore_storage::SharedState;

/// Writes through whichever of `nodes` leads; retries until `deadline` of sim time.
async fn write_somewhere(
    nodes: &[String],
    request: &ForwardRequest,
    deadline: Duration,
) -> Option<(String, Applied)> {
    let give_up = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < give_up {
        for node in nodes {
            if let Ok(ForwardResponse::Written(json)) =
                forward(node, request, Duration::from_secs(3)).await
            {
                let outcome: fleetcore_model::Outcome = serde_json::from_str(&json).ok()?;
                return outcome.ok().map(|a| (node.clone(), a));
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
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let states: Arc<Mutex<BTreeMap<u64, SharedState>>> = Arc::default();
    add_nodes(&mut sim, seed, 3, &dirs, states.clone(), Default::default());
    let names = host_names(3);

    sim.client("client", async move {
        // A leader emerges and writes commit.
        let (_, first) = write_somewhere(&names, &update("before", 0, 1), Duration::from_secs(30))
            .await
            .ok_or("no write committed on a healthy cluster")?;
        assert!(matches!(first, Applied::ShadowUpdated(_)));
        let (leader, _) = write_somewhere(&names, &update("before", 0, 2), Duration::from_secs(10))
            .await
            .ok_or("second write")?;
        let majority: Vec<String> = names.iter().filter(|n| **n != leader).cloned().collect();

        // Cut the leader off from both followers (the client still reaches everyone).
        for m in &majority {
            turmoil::partition(leader.as_str(), m.as_str());
        }
        // The minority leader cannot commit.
        let minority_write =
            forward(&leader, &update("minority", 0, 1), Duration::from_secs(3)).await;
        assert!(
            !matches!(minority_write, Ok(ForwardResponse::Written(_))),
            "the isolated leader acknowledged a write: {minority_write:?}"
        );
        // The majority elects a leader and goes on.
        let mut new_leader = String::new();
        for n in 0..20u64 {
            let (l, _) = write_somewhere(
                &majority,
                &update("majority", 0, n + 1),
                Duration::from_secs(30),
            )
            .await
            .ok_or("the majority did not commit after the partition")?;
            new_leader = l;
        }
        assert_ne!(new_leader, leader);

        for m in &majority {
            turmoil::repair(leader.as_str(), m.as_str());
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
                .shadows()
                .get(&ShadowKey::classic("minority"))
                .is_none());
            assert_eq!(
                applied
                    .state
                    .shadows()
                    .get(&ShadowKey::classic("majority"))
                    .map(|r| r.version),
                Some(20)
            );
            assert_eq!(
                applied
                    .state
                    .shadows()
                    .get(&ShadowKey::classic("before"))
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
    for seed in chaos::seeds(8) {
        if let Err(e) = run_seed(seed) {
            panic!("seed {seed} failed (replay: FLEETCORE_SEED={seed}): {e}");
        }
    }
}
