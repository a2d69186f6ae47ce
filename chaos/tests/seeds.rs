//! What: 3- and 5-node clusters under faults drawn from the seed (partitions, one-way
//! partitions, held links, link latency and loss, crashes and restarts), with
//! concurrent shadow writers, linearizable readers and registry writers: no
//! acknowledged write is lost, duplicated or reordered, no read goes stale, at most
//! one node leads per term, and every replica is identical after healing.
//!
//! 200 short seeds per cluster size, plus a few long ones. Replay one seed with the
//! command a failure prints, e.g.
//! `FLEETCORE_SEED=17 cargo test --workspace --test seeds three_nodes_200_seeds`.

use std::time::Duration;

use chaos::sim::{run, ReadMode, SimConfig};

fn campaign(test: &str, nodes: usize, default_seeds: u64, workload_secs: u64) {
    campaign_over(
        test,
        nodes,
        chaos::seeds(default_seeds),
        workload_secs,
        true,
    );
}

fn campaign_over(
    test: &str,
    nodes: usize,
    seeds: Vec<u64>,
    workload_secs: u64,
    replace_nodes: bool,
) {
    let (mut conditional, mut over_mqtt, mut over_http) = (0, 0, 0);
    for seed in seeds {
        let config = SimConfig {
            nodes,
            seed,
            clients: 3,
            workload: Duration::from_secs(workload_secs),
            reads: ReadMode::Linearizable,
            // The nemesis may replace a node (remove, wipe, add back). Seed 57 of
            // five_nodes_200_seeds found a restarted ex-leader answering "already a
            // voter" from stale membership; membership changes now confirm
            // leadership first.
            replace_nodes,
            mqtt_clients: 1,
            http_clients: 1,
        };
        match run(&config) {
            Ok(report) => {
                assert!(
                    report.acknowledged > 0,
                    "seed {seed}: nothing was acknowledged: {report:?}"
                );
                conditional += report.conditional_acknowledged;
                over_mqtt += report.mqtt_acknowledged;
                over_http += report.http_acknowledged;
                eprintln!(
                    "{nodes} nodes, seed {seed}: {} operations, {} acknowledged ({} over MQTT, {} over HTTP), {} faults ({} crashes, {} nodes replaced)",
                    report.operations,
                    report.acknowledged,
                    report.mqtt_acknowledged,
                    report.http_acknowledged,
                    report.faults.len(),
                    report.faults.iter().filter(|f| f.contains("crash")).count(),
                    report.faults.iter().filter(|f| f.contains("added node")).count()
                );
            }
            Err(e) => {
                panic!(
                    "{e}\nreplay: FLEETCORE_SEED={seed} cargo test --workspace --test seeds {test}"
                )
            }
        }
    }
    // The conditional-update rule judged something.
    assert!(
        conditional > 0,
        "{test}: no update with an expected version succeeded"
    );
    // The device over MQTT took part.
    assert!(over_mqtt > 0, "{test}: no MQTT operation was acknowledged");
    // So did the backend over the HTTP API.
    assert!(over_http > 0, "{test}: no HTTP operation was acknowledged");
}

#[test]
fn three_nodes_200_seeds() {
    campaign("three_nodes_200_seeds", 3, 200, 4);
}

#[test]
fn five_nodes_200_seeds() {
    campaign("five_nodes_200_seeds", 5, 200, 4);
}

/// Longer schedules: more faults per run, two crashes well inside the workload.
/// 20 seconds is the `chaos sim` default, under which 5% of seeds failed before
/// writes were exactly-once (issue 11); a share of CI's seeds run it.
#[test]
fn long_runs() {
    campaign_over("long_runs", 3, chaos::seeds_from(1000, 6), 20, true);
    campaign_over("long_runs", 5, chaos::seeds_from(2000, 4), 20, true);
}

/// Every seed that 20-second schedules failed on at 795e1bc (issue 11), replayed
/// with the settings of `chaos sim` that found them. Most were one update
/// committed twice: a follower's forward whose reply was lost after the leader
/// committed was sent again and committed again. (The schedules shift with any
/// change to the code, so `a_reply_lost_after_commit_is_not_applied_twice` in
/// exactly_once.rs covers that path directly.)
#[test]
fn seeds_that_20_second_schedules_failed() {
    let with = |nodes, seeds: &[u64], replace| {
        let seeds = match std::env::var("FLEETCORE_SEED") {
            Ok(_) => chaos::seeds(0),
            Err(_) => seeds.to_vec(),
        };
        let test = "seeds_that_20_second_schedules_failed";
        campaign_over(test, nodes, seeds, 20, replace);
    };
    with(3, &[8_000_001, 8_000_014, 8_000_055], false);
    with(5, &[8_000_005, 8_000_017, 8_000_027], false);
    with(3, &[7_000_015, 7_000_043], true);
    // 7000019: term 2 had two leaders (2 and 3), which `leader_id_adv` allows; the
    // checker now judges applied entries instead.
    with(5, &[7_000_019, 7_000_046], true);
    // 9501509 (the 2,000-seed campaign): node 2 crashed before node 4 was
    // replaced, came back with node 4's old incarnation in its state and refused
    // the replaced node 4's entries as from a wiped member, so it never caught
    // up. A leader's entries and snapshots are no longer checked on arrival.
    with(5, &[9_501_509], true);
}

/// A long campaign outside CI, on the test build (no second RocksDB build):
/// `FLEETCORE_CAMPAIGN=nodes,first,count,secs[,replace]`, e.g.
/// `FLEETCORE_CAMPAIGN=3,9000000,2000,20,replace cargo test --workspace --test seeds campaign_from_env -- --ignored --nocapture`.
#[test]
#[ignore = "long: run by hand with FLEETCORE_CAMPAIGN"]
fn campaign_from_env() {
    let spec = std::env::var("FLEETCORE_CAMPAIGN").unwrap_or_else(|_| "3,9000000,10,20".into());
    let parts: Vec<&str> = spec.split(',').collect();
    let number = |i: usize, default: u64| {
        parts
            .get(i)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(default)
    };
    let (nodes, first, count, secs) = (
        number(0, 3),
        number(1, 9_000_000),
        number(2, 10),
        number(3, 20),
    );
    let replace = parts.get(4).is_some_and(|p| p.trim() == "replace");
    campaign_over(
        "campaign_from_env",
        nodes as usize,
        chaos::seeds_from(first, count),
        secs,
        replace,
    );
}

/// What: the harness catches a real bug. Reads served from local state without
/// read-index return stale versions under partitions; the checkers must report a
/// violation within a bounded number of seeds.
#[test]
fn broken_local_reads_are_caught() {
    let mut caught = None;
    for seed in 0..20 {
        let config = SimConfig {
            nodes: 3,
            seed,
            clients: 3,
            workload: Duration::from_secs(20),
            reads: ReadMode::LocalUnsafe,
            replace_nodes: false,
            mqtt_clients: 0,
            http_clients: 0,
        };
        if let Err(e) = run(&config) {
            caught = Some((seed, e));
            break;
        }
    }
    let (seed, report) = caught.expect("20 seeds of unsafe local reads and no violation found");
    assert!(report.contains("read"), "seed {seed}: {report}");
    eprintln!("broken variant caught at seed {seed}:\n{report}");
}

/// What: a seed replays exactly. Two runs of the same seed (with a crash, a
/// replaced node, lossy links on some) see the same faults, the same operations with
/// the same results at the same simulated times, and the same leaders per term; so a
/// failing seed printed by CI is the failure a newcomer replays.
#[test]
fn a_seed_replays_exactly() {
    for seed in chaos::seeds(3) {
        let config = SimConfig {
            nodes: 3,
            seed,
            clients: 3,
            workload: Duration::from_secs(6),
            reads: ReadMode::Linearizable,
            replace_nodes: true,
            mqtt_clients: 1,
            http_clients: 1,
        };
        let first = run(&config).unwrap_or_else(|e| panic!("{e}"));
        let second = run(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            first.history.len() > 20,
            "seed {seed}: too little happened to compare: {first:?}"
        );
        assert_eq!(
            first.faults, second.faults,
            "seed {seed}: fault schedules differ"
        );
        if let Some((i, (a, b))) = first
            .history
            .iter()
            .zip(&second.history)
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!(
                "seed {seed}: histories diverge at event {i}:\n  first:  {a:?}\n  second: {b:?}"
            );
        }
        assert_eq!(
            first.history.len(),
            second.history.len(),
            "seed {seed}: histories differ in length"
        );
        assert_eq!(first.leaders, second.leaders, "seed {seed}: leaders differ");
    }
}
