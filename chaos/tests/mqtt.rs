//! What: the MQTT front inside the simulation. Three nodes run the real session
//! layer over turmoil streams and route through node links over the simulated
//! network; a subscriber on one node gets every QoS 1 message a publisher sends
//! through another, exactly once and in order, while the link between the two
//! nodes is held (delayed) and released; for odd seeds the hold outlasts the
//! link's keepalive, so the link breaks, reconnects and re-sends.
//!
//! Replay one seed with `FLEETCORE_SEED=n cargo test --workspace --test mqtt`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos::sim::connect_device;
use chaos::sim::{add_nodes_with_mqtt, host_names};
use fleetcore_storage::SharedState;
use rumqttc::mqttbytes::v4::{Packet, PubAck, Publish, Subscribe};
use rumqttc::mqttbytes::QoS;

fn run_seed(seed: u64) -> Result<(), String> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(120))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .build();
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let states: Arc<Mutex<BTreeMap<u64, SharedState>>> = Arc::default();
    add_nodes_with_mqtt(&mut sim, seed, 3, &dirs, states);
    let names = host_names(3);
    const N: usize = 100;
    let received: Arc<Mutex<Vec<usize>>> = Arc::default();
    let probe_seen = Arc::new(AtomicBool::new(false));

    {
        let (received, probe_seen, host) = (received.clone(), probe_seen.clone(), names[1].clone());
        sim.client("subscriber", async move {
            // Nodes may still be starting: retry the connection.
            let mut c = loop {
                match connect_device(&host, "sub").await {
                    Ok(c) => break c,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            c.send(Packet::Subscribe(Subscribe::new("t/#", QoS::AtLeastOnce)))
                .await?;
            loop {
                match c.recv().await? {
                    Packet::Publish(p) => {
                        if p.qos == QoS::AtLeastOnce {
                            c.send(Packet::PubAck(PubAck::new(p.pkid))).await?;
                        }
                        if p.payload.as_ref() == b"probe" {
                            probe_seen.store(true, Ordering::SeqCst);
                            continue;
                        }
                        let i: usize = std::str::from_utf8(&p.payload)?.parse()?;
                        let mut r = received.lock().map_err(|_| "poisoned")?;
                        r.push(i);
                        if r.len() >= N {
                            return Ok(());
                        }
                    }
                    _ => continue,
                }
            }
        });
    }
    {
        let (probe_seen, names) = (probe_seen.clone(), names.clone());
        sim.client("publisher", async move {
            let mut c = loop {
                match connect_device(&names[0], "pub").await {
                    Ok(c) => break c,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            // Until node 1 knows node 2's route, probes go nowhere.
            while !probe_seen.load(Ordering::SeqCst) {
                c.send(Packet::Publish(Publish::new(
                    "t/probe",
                    QoS::AtMostOnce,
                    "probe",
                )))
                .await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for i in 0..N {
                if i == 30 {
                    turmoil::hold(names[0].as_str(), names[1].as_str());
                }
                if i == 45 && seed % 2 == 1 {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                }
                if i == 60 {
                    turmoil::release(names[0].as_str(), names[1].as_str());
                }
                let mut p = Publish::new("t/x", QoS::AtLeastOnce, i.to_string());
                p.pkid = (i % 60000) as u16 + 1;
                c.send(Packet::Publish(p)).await?;
                loop {
                    match c.recv().await? {
                        Packet::PubAck(a) if a.pkid == (i % 60000) as u16 + 1 => break,
                        _ => continue,
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        });
    }
    sim.run().map_err(|e| format!("seed {seed}: {e}"))?;
    let got = received.lock().map(|r| r.clone()).unwrap_or_default();
    if got != (0..N).collect::<Vec<_>>() {
        return Err(format!(
            "seed {seed}: subscriber got {} messages, not 0..{N} in order: {got:?}",
            got.len()
        ));
    }
    Ok(())
}

#[test]
fn qos1_across_nodes_in_simulation() {
    for seed in chaos::seeds(4) {
        if let Err(e) = run_seed(seed) {
            panic!("{e}\nreplay: FLEETCORE_SEED={seed} cargo test --workspace --test mqtt");
        }
    }
}
