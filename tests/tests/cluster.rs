//! Three real `fleetcore` processes on loopback: replication, failover, catch-up
//! from the log and from a snapshot, membership changes, and refusals.

use std::time::{Duration, Instant};

use fleetcore_tests::{eventually, serial, Cluster, NodeProcess};
use serde_json::{json, Value};

const ELECTION: Duration = Duration::from_secs(20);
const CATCH_UP: Duration = Duration::from_secs(30);

async fn update_shadow(
    c: &Cluster,
    node: u64,
    thing: &str,
    body: Value,
) -> anyhow::Result<reqwest::Response> {
    Ok(c.http
        .post(format!("{}/things/{thing}/shadow", c.node(node).url()))
        .json(&body)
        .send()
        .await?)
}

async fn shadow_version(c: &Cluster, node: u64, thing: &str) -> Option<u64> {
    c.get_json(&format!("{}/things/{thing}/shadow", c.node(node).url()))
        .await?["version"]
        .as_u64()
}

fn others(ids: &[u64], leader: u64) -> Vec<u64> {
    ids.iter().copied().filter(|i| *i != leader).collect()
}

/// What: a write sent to a follower commits and every node serves it with a
/// linearizable read; the replicas' state digests agree; its log file has no
/// terminal colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_follower_is_read_everywhere() -> anyhow::Result<()> {
    let _serial = serial().await;
    let c = Cluster::start(3, &[])?;
    let leader = c
        .agreed_leader(&[1, 2, 3], ELECTION)
        .await
        .map_err(|e| e.context(c.logs()))?;
    let follower = others(&[1, 2, 3], leader)[0];

    let created = c
        .http
        .post(format!("{}/things/lamp-1", c.node(follower).url()))
        .json(&json!({"attributePayload": {"attributes": {"room": "kitchen"}}}))
        .send()
        .await?;
    assert_eq!(created.status(), 200, "{}", created.text().await?);
    let r = update_shadow(
        &c,
        follower,
        "lamp-1",
        json!({"state": {"desired": {"on": true}}}),
    )
    .await?;
    assert_eq!(r.status(), 200);
    let accepted: Value = r.json().await?;
    assert_eq!(accepted["version"], 1);

    for id in [1, 2, 3] {
        let thing = c
            .get_json(&format!("{}/things/lamp-1", c.node(id).url()))
            .await
            .unwrap_or_else(|| panic!("node {id} does not serve lamp-1"));
        assert_eq!(thing["attributes"]["room"], "kitchen", "node {id}");
        assert_eq!(shadow_version(&c, id, "lamp-1").await, Some(1), "node {id}");
    }
    c.converged(&[1, 2, 3], CATCH_UP).await?;

    // Members know each other's HTTP addresses once they have registered.
    let status = eventually(
        "every member's HTTP address in the membership",
        CATCH_UP,
        || async {
            let s = c.status(1).await?;
            let members = s["members"].as_array()?;
            members
                .iter()
                .all(|m| m["http_addr"].as_str().is_some_and(|a| !a.is_empty()))
                .then_some(s)
        },
    )
    .await
    .map_err(|e| e.context(c.logs()))?;
    assert_eq!(status["members"].as_array().map(Vec::len), Some(3));

    // Logs written to a file carry no terminal colour codes.
    let log = c.node(leader).log();
    assert!(log.contains("INFO"), "no log lines: {log}");
    assert!(!log.contains('\x1b'), "colour codes in a log file: {log}");
    Ok(())
}

/// What: SIGKILL the leader; the other two elect a new one within the deadline,
/// writes go on, and no acknowledged write is lost when the old leader returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_fails_over_without_losing_acknowledged_writes() -> anyhow::Result<()> {
    let _serial = serial().await;
    let mut c = Cluster::start(3, &[])?;
    let leader = c.agreed_leader(&[1, 2, 3], ELECTION).await?;
    let mut acknowledged = 0u64;
    for i in 0..20 {
        let r = update_shadow(
            &c,
            (i % 3) + 1,
            "counter",
            json!({"state": {"reported": {"n": i}}}),
        )
        .await?;
        assert_eq!(r.status(), 200);
        acknowledged += 1;
    }

    c.node_mut(leader).kill();
    let survivors = others(&[1, 2, 3], leader);
    let killed_at = Instant::now();
    let new_leader = c
        .agreed_leader(&survivors, ELECTION)
        .await
        .map_err(|e| e.context(c.logs()))?;
    assert_ne!(new_leader, leader);
    // First committed write after the kill.
    eventually(
        "a write to commit after the leader died",
        ELECTION,
        || async {
            let r = update_shadow(
                &c,
                survivors[0],
                "counter",
                json!({"state": {"reported": {"n": "after"}}}),
            )
            .await
            .ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await?;
    acknowledged += 1;
    eprintln!(
        "failover: first committed write {:?} after SIGKILL of the leader",
        killed_at.elapsed()
    );

    for id in &survivors {
        assert_eq!(
            shadow_version(&c, *id, "counter").await,
            Some(acknowledged),
            "node {id}"
        );
    }
    c.node_mut(leader).start()?;
    eventually("the old leader to catch up", CATCH_UP, || async {
        (shadow_version(&c, leader, "counter").await == Some(acknowledged)).then_some(())
    })
    .await
    .map_err(|e| e.context(c.logs()))?;
    c.converged(&[1, 2, 3], CATCH_UP).await?;
    Ok(())
}

/// What: a follower that was down catches up from the log after a restart; one whose
/// data dir was wiped is refused (it may have forgotten what it acknowledged) until
/// the operator removes it and adds it back, then it catches up from a snapshot
/// (the log before it is purged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_catches_up_from_log_and_wiped_node_from_snapshot() -> anyhow::Result<()> {
    let _serial = serial().await;
    let mut c = Cluster::start(3, &["--snapshot-every-entries", "50"])?;
    let leader = c.agreed_leader(&[1, 2, 3], ELECTION).await?;
    let lagging = others(&[1, 2, 3], leader)[0];

    // Down, then back: catches up from the log.
    c.node_mut(lagging).kill();
    for i in 0..10 {
        let r = update_shadow(
            &c,
            leader,
            "log-catch-up",
            json!({"state": {"reported": {"i": i}}}),
        )
        .await?;
        assert_eq!(r.status(), 200);
    }
    c.node_mut(lagging).start()?;
    eventually(
        "the restarted node to apply the writes it missed",
        CATCH_UP,
        || async { (shadow_version(&c, lagging, "log-catch-up").await == Some(10)).then_some(()) },
    )
    .await
    .map_err(|e| e.context(c.logs()))?;

    // A wipe is recognised once the cluster has recorded the node's data dir
    // (shortly after it first joins; the README names the window before).
    eventually(
        "the cluster to record the node's data dir",
        CATCH_UP,
        || async {
            let status = c.status(leader).await?;
            let members = status["members"].as_array()?;
            let member = members.iter().find(|m| m["id"] == lagging)?;
            member["incarnation"].as_str().map(|_| ())
        },
    )
    .await
    .map_err(|e| e.context(c.logs()))?;

    // Wiped: enough writes that the leader snapshots and purges what the node would need.
    c.node_mut(lagging).kill();
    std::fs::remove_dir_all(&c.node(lagging).data_dir)?;
    for i in 0..150 {
        let r = update_shadow(
            &c,
            leader,
            &format!("snap-{}", i % 7),
            json!({"state": {"reported": {"i": i}}}),
        )
        .await?;
        assert_eq!(r.status(), 200);
    }
    let purged = eventually(
        "the leader to purge its log after a snapshot",
        CATCH_UP,
        || async { c.status(leader).await?["purged_index"].as_u64() },
    )
    .await?;
    assert!(purged > 0);
    c.node_mut(lagging).start()?;
    // Its new data dir is not the one the cluster recorded: refused, with the remedy.
    eventually("the wiped node to be refused", CATCH_UP, || async {
        let said = |id: u64| c.node(id).log().contains("wiped or restored from a backup");
        (said(leader) || said(lagging)).then_some(())
    })
    .await
    .map_err(|e| e.context(c.logs()))?;
    assert!(
        c.logs()
            .contains(&format!("fleetcore cluster remove --id {lagging}")),
        "the refusal names the remedy:\n{}",
        c.logs()
    );
    // The operator replaces it: remove, then add back (this records its new data dir).
    let r = c
        .http
        .delete(format!(
            "{}/cluster/members/{lagging}",
            c.node(leader).url()
        ))
        .send()
        .await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    let node = c.node(lagging);
    let body = json!({"id": lagging, "raft_addr": node.raft_addr, "http_addr": node.http_addr});
    let r = c
        .http
        .post(format!("{}/cluster/members", c.node(leader).url()))
        .json(&body)
        .send()
        .await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    c.converged(&[1, 2, 3], CATCH_UP)
        .await
        .map_err(|e| e.context(c.logs()))?;
    assert!(
        c.node(lagging).log().contains("installed snapshot"),
        "the wiped node should have caught up through a snapshot:\n{}",
        c.node(lagging).log()
    );
    assert_eq!(shadow_version(&c, lagging, "log-catch-up").await, Some(10));
    Ok(())
}

/// What: a fourth node joins (learner, then voter) and a node is removed; the
/// cluster keeps committing and the remaining members converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_fourth_node_and_remove_one() -> anyhow::Result<()> {
    let _serial = serial().await;
    let mut c = Cluster::start(3, &[])?;
    let leader = c.agreed_leader(&[1, 2, 3], ELECTION).await?;
    let r = update_shadow(
        &c,
        leader,
        "before-join",
        json!({"state": {"reported": {"x": 1}}}),
    )
    .await?;
    assert_eq!(r.status(), 200);

    let mut fourth = NodeProcess::new(4, c.root.path(), vec!["--join".into(), c.node(1).url()]);
    fourth.start()?;
    c.nodes.push(fourth);
    eventually("node 4 to become a voter", CATCH_UP, || async {
        let s = c.status(leader).await?;
        let m = s["members"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == 4)?
            .clone();
        (m["role"] == "voter").then_some(())
    })
    .await
    .map_err(|e| e.context(c.logs()))?;
    assert_eq!(shadow_version(&c, 4, "before-join").await, Some(1));

    let victim = others(&[1, 2, 3], leader)[0];
    let r = c
        .http
        .delete(format!("{}/cluster/members/{victim}", c.node(4).url()))
        .send()
        .await?;
    assert_eq!(r.status(), 200, "{}", r.text().await?);
    let remaining: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|i| *i != victim).collect();
    let s = c.status(remaining[0]).await.expect("status");
    let ids: Vec<u64> = s["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert!(!ids.contains(&victim), "{victim} still a member: {ids:?}");
    c.node_mut(victim).kill();
    let r = update_shadow(
        &c,
        remaining[1],
        "after-remove",
        json!({"state": {"reported": {"x": 2}}}),
    )
    .await?;
    assert_eq!(r.status(), 200);
    c.converged(&remaining, CATCH_UP).await?;
    Ok(())
}

/// What: a follower cut off from both peers (they are SIGSTOPped) answers a
/// linearizable read with an error within a bounded time, never with stale data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_follower_refuses_linearizable_reads_in_bounded_time() -> anyhow::Result<()> {
    let _serial = serial().await;
    let c = Cluster::start(3, &[])?;
    let leader = c.agreed_leader(&[1, 2, 3], ELECTION).await?;
    let r = update_shadow(&c, leader, "p", json!({"state": {"reported": {"x": 1}}})).await?;
    assert_eq!(r.status(), 200);
    let isolated = others(&[1, 2, 3], leader)[0];
    eventually("the follower to apply the write", CATCH_UP, || async {
        (shadow_version(&c, isolated, "p").await == Some(1)).then_some(())
    })
    .await?;
    for id in [1, 2, 3].into_iter().filter(|i| *i != isolated) {
        c.node(id).pause(true);
    }
    let started = Instant::now();
    let r = c
        .http
        .get(format!("{}/things/p/shadow", c.node(isolated).url()))
        .send()
        .await?;
    let took = started.elapsed();
    assert_eq!(r.status(), 503, "{}", r.text().await?);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // A write cannot be acknowledged without a majority; its outcome is unknown
    // (the paused leader may still hold the forwarded request in its socket).
    let w = update_shadow(&c, isolated, "p", json!({"state": {"reported": {"x": 2}}})).await?;
    assert_eq!(w.status(), 503, "a minority must not acknowledge a write");
    assert!(
        w.text().await?.contains("may or may not"),
        "the error says the outcome is unknown"
    );
    for id in [1, 2, 3] {
        c.node(id).pause(false);
    }
    // Healed: reads work again and every replica agrees.
    eventually("reads to work after healing", ELECTION, || {
        shadow_version(&c, isolated, "p")
    })
    .await?;
    c.converged(&[1, 2, 3], CATCH_UP).await?;
    Ok(())
}

/// What: a leader cut off from both followers (they are SIGSTOPped) answers writes
/// and linearizable reads with 503 within a bounded time instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_answers_within_bounded_time() -> anyhow::Result<()> {
    let _serial = serial().await;
    let c = Cluster::start(3, &[])?;
    let leader = c.agreed_leader(&[1, 2, 3], ELECTION).await?;
    let r = update_shadow(&c, leader, "q", json!({"state": {"reported": {"x": 1}}})).await?;
    assert_eq!(r.status(), 200);
    for id in others(&[1, 2, 3], leader) {
        c.node(id).pause(true);
    }
    let started = Instant::now();
    let w = update_shadow(&c, leader, "q", json!({"state": {"reported": {"x": 2}}})).await?;
    assert_eq!(w.status(), 503, "{}", w.text().await?);
    let r = c
        .http
        .get(format!("{}/things/q/shadow", c.node(leader).url()))
        .send()
        .await?;
    assert_eq!(r.status(), 503, "{}", r.text().await?);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
    for id in [1, 2, 3] {
        c.node(id).pause(false);
    }
    c.converged(&[1, 2, 3], CATCH_UP).await?;
    Ok(())
}

/// What: SIGTERM on the leader hands leadership over before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_leader_hands_over_leadership() -> anyhow::Result<()> {
    let _serial = serial().await;
    let mut c = Cluster::start(3, &[])?;
    let leader = c.agreed_leader(&[1, 2, 3], ELECTION).await?;
    let status = c.node_mut(leader).terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "graceful exit: {status:?}\n{}",
        c.node(leader).log()
    );
    assert!(
        c.node(leader).log().contains("handing over leadership"),
        "{}",
        c.node(leader).log()
    );
    let survivors = others(&[1, 2, 3], leader);
    let next = c.agreed_leader(&survivors, ELECTION).await?;
    assert!(survivors.contains(&next));
    Ok(())
}
