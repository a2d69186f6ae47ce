//! What: a reply lost after commit does not make a write apply twice. A device
//! updates a shadow over MQTT through a follower; the follower forwards the write
//! to the leader, the leader commits it, and the leader's reply to the follower is
//! dropped on the wire (a one-way cut, healed 1.5 s later). The follower's forward
//! breaks with "outcome unknown" and is retried with the same request id; the
//! leader answers with the first result. The device hears the version the write
//! produced, and every replica holds exactly that version: before request ids, the
//! retry committed the update a second time (chaos seed 8000014 of issue 11).
//!
//! Replay one seed with `FLEETCORE_SEED=n cargo test --workspace --test exactly_once`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos::sim::{add_nodes_with_mqtt, forward, host_names};
use chaos::sim::{connect_device, DeviceClient};
use fleetcore_model::ShadowKey;
use fleetcore_raft::wire::{ForwardRequest, ForwardResponse};
use fleetcore_storage::SharedState;
use rumqttc::mqttbytes::v4::{Packet, Publish, Subscribe};
use rumqttc::mqttbytes::QoS;

type States = Arc<Mutex<BTreeMap<u64, SharedState>>>;

fn version_on(states: &States, node: u64) -> Option<u64> {
    let states = states.lock().ok()?;
    let applied = states.get(&node)?.read();
    applied
        .state
        .shadows()
        .get(&ShadowKey::classic("lamp"))
        .map(|r| r.version)
}

/// Publishes an update and waits (bounded) for its `/accepted` version.
async fn update(c: &mut DeviceClient, token: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let body = format!(r#"{{"state":{{"reported":{{"t":"{token}"}}}},"clientToken":"{token}"}}"#);
    c.send(Packet::Publish(Publish::new(
        "$aws/things/lamp/shadow/update",
        QoS::AtMostOnce,
        body,
    )))
    .await?;
    let reply = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let Packet::Publish(p) = c.recv().await? else {
                continue;
            };
            let body: serde_json::Value = serde_json::from_slice(&p.payload)?;
            if body["clientToken"].as_str() != Some(token) {
                continue;
            }
            if p.topic.ends_with("/accepted") {
                return body["version"]
                    .as_u64()
                    .ok_or_else(|| "accepted without a version".into());
            }
            return Err(format!("{token} rejected: {body}").into());
        }
    })
    .await;
    reply.map_err(|_| format!("no answer to {token} within 15 s"))?
}

fn run_seed(seed: u64) -> Result<(), String> {
    // Every message takes 20 ms, so a reply is still on the wire when the client
    // sees the leader apply the write.
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(120))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(20))
        .max_message_latency(Duration::from_millis(20))
        .build();
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let states: States = Arc::default();
    add_nodes_with_mqtt(&mut sim, seed, 3, &dirs, states.clone());
    let names = host_names(3);
    let outcome: Arc<Mutex<Option<(u64, u64)>>> = Arc::default();
    {
        let (states, outcome) = (states.clone(), outcome.clone());
        sim.client("device", async move {
            // The leader is the node that serves a read index.
            let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
            let leader = 'found: loop {
                for (i, name) in names.iter().enumerate() {
                    let asked = forward(name, &ForwardRequest::ReadIndex, Duration::from_secs(1));
                    if let Ok(ForwardResponse::ReadIndex(_)) = asked.await {
                        break 'found i;
                    }
                }
                if tokio::time::Instant::now() >= give_up {
                    return Err("no leader within 30 s".into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let follower = (leader + 1) % names.len();
            let (leader_name, follower_name) = (names[leader].clone(), names[follower].clone());
            let mut c = loop {
                match connect_device(&follower_name, "lamp-device").await {
                    Ok(c) => break c,
                    Err(_) if tokio::time::Instant::now() < give_up => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            c.send(Packet::Subscribe(Subscribe::new(
                "$aws/things/lamp/shadow/update/+",
                QoS::AtMostOnce,
            )))
            .await?;
            let first = update(&mut c, "first").await?;
            // The write whose reply is lost: cut leader -> follower as soon as the
            // leader has applied it (its reply is then on the wire, and dropped).
            let leader_id = leader as u64 + 1;
            let (states2, leader_name2, follower_name2) =
                (states.clone(), leader_name.clone(), follower_name.clone());
            let cutter = tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while version_on(&states2, leader_id) <= Some(first) {
                    if tokio::time::Instant::now() >= deadline {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                turmoil::partition_oneway(leader_name2.as_str(), follower_name2.as_str());
                tokio::time::sleep(Duration::from_millis(1500)).await;
                turmoil::repair(leader_name2.as_str(), follower_name2.as_str());
                true
            });
            let second = update(&mut c, "second").await?;
            if !cutter.await? {
                return Err("the leader never applied the second update".into());
            }
            if let Ok(mut o) = outcome.lock() {
                *o = Some((first, second));
            }
            // Wait (bounded) for every replica to apply it before judging them.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while (1..=3).any(|n| version_on(&states, n) < Some(second))
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        });
    }
    sim.run().map_err(|e| format!("seed {seed}: {e}"))?;
    let (first, second) = outcome
        .lock()
        .map_err(|_| "poisoned")?
        .ok_or_else(|| format!("seed {seed}: the device did not finish"))?;
    if second != first + 1 {
        return Err(format!(
            "seed {seed}: the second update was acknowledged as version {second}, after {first}"
        ));
    }
    // Every replica applied it once: no version beyond the acknowledged one.
    for node in 1..=3 {
        let v = version_on(&states, node);
        if v != Some(second) {
            return Err(format!(
                "seed {seed}: node {node} holds version {v:?}; the device's two updates were acknowledged as {first} and {second}"
            ));
        }
    }
    Ok(())
}

#[test]
fn a_reply_lost_after_commit_is_not_applied_twice() {
    for seed in chaos::seeds(3) {
        if let Err(e) = run_seed(seed) {
            panic!("{e}\nreplay: FLEETCORE_SEED={seed} cargo test --workspace --test exactly_once");
        }
    }
}
