//! What: 3- and 5-node clusters under random partitions and heals (from the seed),
//! with concurrent shadow writers: no acknowledged update is lost, duplicated or
//! reordered, and every replica is identical after healing.
//!
//! Replay one seed: `FLEETCORE_SEED=n cargo test -p fleetcore-chaos --test seeds`.

use std::time::Duration;

use fleetcore_chaos::sim::{run, SimConfig};

fn campaign(nodes: usize, default_seeds: u64) {
    for seed in fleetcore_chaos::seeds(default_seeds) {
        let config = SimConfig {
            nodes,
            seed,
            clients: 3,
            workload: Duration::from_secs(20),
        };
        match run(&config) {
            Ok(report) => {
                assert!(
                    report.acknowledged > 0,
                    "seed {seed}: nothing was acknowledged: {report:?}"
                );
                eprintln!(
                    "{nodes} nodes, seed {seed}: {} operations, {} acknowledged, {} faults ({} crashes)",
                    report.operations,
                    report.acknowledged,
                    report.faults.len(),
                    report.faults.iter().filter(|f| f.contains("crash")).count()
                );
            }
            Err(e) => panic!(
                "{e}\nreplay: FLEETCORE_SEED={seed} cargo test -p fleetcore-chaos --test seeds"
            ),
        }
    }
}

#[test]
fn three_nodes_under_partitions() {
    campaign(3, 12);
}

#[test]
fn five_nodes_under_partitions() {
    campaign(5, 6);
}
