//! The MQTT front on a real 3-node cluster, with real clients (rumqttc 3.1.1 and
//! 5): the cluster acts as one broker.
// Helpers below are test code too; a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use fleetcore_tests::{eventually, serial, Cluster};
use rumqttc::v5::mqttbytes::v5::Packet as Packet5;
use rumqttc::{Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(15);

/// What a test client saw.
#[derive(Debug, Clone)]
enum Seen {
    ConnAck {
        session_present: bool,
    },
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
    },
    SubAck,
    /// PUBACK for the client's own QoS 1 publish (3.1.1 clients only).
    PubAck,
    /// MQTT 5 DISCONNECT from the server, with its reason.
    Disconnect(String),
    /// The connection ended (error text).
    Closed(String),
}

struct Client {
    client: rumqttc::AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

struct Client5 {
    client: rumqttc::v5::AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

fn v4_options(id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Connects a 3.1.1 client and waits for CONNACK. The event loop stops at the
/// first error (no silent reconnects).
async fn connect(options: MqttOptions) -> (Client, bool) {
    let (client, mut el) = rumqttc::AsyncClient::new(options, 1000);
    let (tx, seen) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let ev = match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(c))) => Seen::ConnAck {
                    session_present: c.session_present,
                },
                Ok(Event::Incoming(Packet::Publish(p))) => Seen::Publish {
                    topic: p.topic.clone(),
                    payload: p.payload.to_vec(),
                    qos: p.qos as u8,
                    retain: p.retain,
                },
                Ok(Event::Incoming(Packet::SubAck(_))) => Seen::SubAck,
                Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(Seen::Closed(e.to_string()));
                    return;
                }
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    let mut c = Client { client, seen, task };
    let ack = next(&mut c.seen, |s| {
        matches!(s, Seen::ConnAck { .. } | Seen::Closed(_))
    })
    .await;
    let present = match ack {
        Seen::ConnAck { session_present } => session_present,
        other => panic!("no CONNACK: {other:?}"),
    };
    (c, present)
}

async fn connect5(options: rumqttc::v5::MqttOptions) -> (Client5, bool) {
    let (client, mut el) = rumqttc::v5::AsyncClient::new(options, 1000);
    let (tx, seen) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let ev = match el.poll().await {
                Ok(rumqttc::v5::Event::Incoming(Packet5::ConnAck(c))) => Seen::ConnAck {
                    session_present: c.session_present,
                },
                Ok(rumqttc::v5::Event::Incoming(Packet5::Publish(p))) => Seen::Publish {
                    topic: String::from_utf8_lossy(&p.topic).to_string(),
                    payload: p.payload.to_vec(),
                    qos: p.qos as u8,
                    retain: p.retain,
                },
                Ok(rumqttc::v5::Event::Incoming(Packet5::SubAck(_))) => Seen::SubAck,
                Ok(rumqttc::v5::Event::Incoming(Packet5::Disconnect(d))) => {
                    Seen::Disconnect(format!("{:?}", d.reason_code))
                }
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(Seen::Closed(e.to_string()));
                    return;
                }
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    let mut c = Client5 { client, seen, task };
    let ack = next(&mut c.seen, |s| {
        matches!(s, Seen::ConnAck { .. } | Seen::Closed(_))
    })
    .await;
    let present = match ack {
        Seen::ConnAck { session_present } => session_present,
        other => panic!("no CONNACK: {other:?}"),
    };
    (c, present)
}

/// The next event matching `pred`, within [`WAIT`].
async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>, pred: impl Fn(&Seen) -> bool) -> Seen {
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Some(s)) if pred(&s) => return s,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("client event loop ended"),
            Err(_) => panic!("timed out waiting for an MQTT event"),
        }
    }
}

/// Publishes probes on `topic` until `sub` receives one, so the publisher's node
/// knows the subscriber's route. Probes are then drained.
async fn wait_route(
    pub_client: &rumqttc::AsyncClient,
    topic: &str,
    sub: &mut mpsc::UnboundedReceiver<Seen>,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        pub_client
            .publish(topic, QoS::AtMostOnce, false, b"probe".to_vec())
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_millis(200), async {
            loop {
                match sub.recv().await {
                    Some(Seen::Publish { payload, .. }) if payload == b"probe" => return true,
                    Some(_) => continue,
                    None => return false,
                }
            }
        })
        .await;
        if got == Ok(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "route for {topic} never reached the publisher's node"
        );
    }
    // Later probes may still be in flight: let them arrive and drop them.
    let settle = Instant::now() + Duration::from_millis(300);
    while let Ok(Some(_)) = tokio::time::timeout_at(settle, sub.recv()).await {}
}

/// Collects publishes (not probes) until `n` arrived or `quiet` passes without one.
async fn collect(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    n: usize,
    quiet: Duration,
) -> Vec<(String, Vec<u8>, u8)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < n && Instant::now() < deadline {
        match tokio::time::timeout(quiet, seen.recv()).await {
            Ok(Some(Seen::Publish {
                topic,
                payload,
                qos,
                ..
            })) if payload != b"probe" => got.push((topic, payload, qos)),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    got
}

async fn stats(cluster: &Cluster, id: u64) -> Value {
    cluster
        .get_json(&format!("{}/mqtt/stats", cluster.node(id).url()))
        .await
        .expect("stats")
}

async fn started() -> Cluster {
    let cluster = Cluster::start(3, &[]).unwrap();
    cluster.agreed_leader(&[1, 2, 3], WAIT).await.unwrap();
    // Every node's link to every other node is up.
    for id in 1..=3u64 {
        eventually("node links up", WAIT, || async {
            let s = stats(&cluster, id).await;
            (s["peers_with_routes"].as_array()?.len() == 2).then_some(())
        })
        .await
        .unwrap();
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_across_nodes_with_exact_counts_per_qos() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();

    let (mut sub_a, _) = connect(v4_options("sub-a", port(2))).await;
    sub_a
        .client
        .subscribe("plant/+/temp", QoS::ExactlyOnce)
        .await
        .unwrap();
    next(&mut sub_a.seen, |s| matches!(s, Seen::SubAck)).await;
    let mut o = rumqttc::v5::MqttOptions::new("sub-b", "127.0.0.1", port(3));
    o.set_keep_alive(Duration::from_secs(30));
    let (mut sub_b, _) = connect5(o).await;
    sub_b
        .client
        .subscribe("plant/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    next(&mut sub_b.seen, |s| matches!(s, Seen::SubAck)).await;

    let (publisher, _) = connect(v4_options("pub", port(1))).await;
    wait_route(&publisher.client, "plant/probe/temp", &mut sub_a.seen).await;
    wait_route(&publisher.client, "plant/probe/x", &mut sub_b.seen).await;

    const N: usize = 30;
    for (qos, q) in [
        (0u8, QoS::AtMostOnce),
        (1, QoS::AtLeastOnce),
        (2, QoS::ExactlyOnce),
    ] {
        for i in 0..N {
            publisher
                .client
                .publish(
                    format!("plant/q{qos}/temp"),
                    q,
                    false,
                    format!("{qos}:{i}").into_bytes(),
                )
                .await
                .unwrap();
        }
    }
    // A message sub-a's filter does not match, which sub-b's does.
    publisher
        .client
        .publish("plant/q1/humidity", QoS::AtLeastOnce, false, b"h".to_vec())
        .await
        .unwrap();

    let a = collect(&mut sub_a.seen, 3 * N + 1, Duration::from_secs(3)).await;
    let b = collect(&mut sub_b.seen, 3 * N + 1, Duration::from_secs(3)).await;
    assert_eq!(a.len(), 3 * N, "sub-a: {a:?}");
    assert_eq!(b.len(), 3 * N + 1, "sub-b got {}", b.len());
    for (got, max_qos) in [(&a, 2u8), (&b, 1u8)] {
        let mut per_qos: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
        for (topic, payload, qos) in got.iter() {
            if topic.ends_with("humidity") {
                continue;
            }
            let text = String::from_utf8(payload.clone()).unwrap();
            let (q, i) = text.split_once(':').unwrap();
            let q: u8 = q.parse().unwrap();
            // Delivered at min(published QoS, granted QoS).
            assert_eq!(*qos, q.min(max_qos), "{topic}");
            per_qos.entry(q).or_default().push(i.parse().unwrap());
        }
        for (q, seq) in per_qos {
            // Exactly once each, in the publisher's order.
            assert_eq!(seq, (0..N).collect::<Vec<_>>(), "QoS {q}");
        }
    }
    assert!(b.iter().any(|(t, _, _)| t == "plant/q1/humidity"));
    sub_a.task.abort();
    sub_b.task.abort();
    publisher.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_forwarded_only_to_nodes_with_subscribers() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();
    let (mut sub, _) = connect(v4_options("only-on-2", port(2))).await;
    sub.client
        .subscribe("fleet/telemetry", QoS::AtLeastOnce)
        .await
        .unwrap();
    next(&mut sub.seen, |s| matches!(s, Seen::SubAck)).await;
    let (publisher, _) = connect(v4_options("pub-1", port(1))).await;
    wait_route(&publisher.client, "fleet/telemetry", &mut sub.seen).await;

    let before1 = stats(&cluster, 1).await["forwarded_out"].as_u64().unwrap();
    let before3 = stats(&cluster, 3).await["forwarded_in"].as_u64().unwrap();
    const N: u64 = 50;
    for i in 0..N {
        publisher
            .client
            .publish(
                "fleet/telemetry",
                QoS::AtLeastOnce,
                false,
                format!("{i}").into_bytes(),
            )
            .await
            .unwrap();
    }
    let got = collect(&mut sub.seen, N as usize, Duration::from_secs(3)).await;
    assert_eq!(got.len() as u64, N);
    let after1 = stats(&cluster, 1).await["forwarded_out"].as_u64().unwrap();
    let after3 = stats(&cluster, 3).await["forwarded_in"].as_u64().unwrap();
    // One inter-node message per publish, to node 2 only: no broadcast.
    assert_eq!(after1 - before1, N, "node 1 forwarded");
    assert_eq!(
        after3, before3,
        "node 3 received forwards it has no subscriber for"
    );
    sub.task.abort();
    publisher.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_resumes_on_another_node_with_queued_messages() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();

    let mut o = v4_options("device-77", port(1));
    o.set_clean_session(false);
    let (mut dev, present) = connect(o).await;
    assert!(!present);
    dev.client
        .subscribe("cmd/device-77", QoS::AtLeastOnce)
        .await
        .unwrap();
    next(&mut dev.seen, |s| matches!(s, Seen::SubAck)).await;
    let (publisher, _) = connect(v4_options("backend", port(2))).await;
    wait_route(&publisher.client, "cmd/device-77", &mut dev.seen).await;
    dev.client.disconnect().await.unwrap();
    next(&mut dev.seen, |s| matches!(s, Seen::Closed(_))).await;
    dev.task.abort();
    let before = stats(&cluster, 1).await["forwarded_in"].as_u64().unwrap();

    // While the device is away, its session queues QoS 1 messages on node 1.
    for i in 0..10 {
        publisher
            .client
            .publish(
                "cmd/device-77",
                QoS::AtLeastOnce,
                false,
                format!("m{i}").into_bytes(),
            )
            .await
            .unwrap();
    }
    // Wait until node 1 holds them.
    eventually("queued on node 1", WAIT, || async {
        let s = stats(&cluster, 1).await;
        (s["forwarded_in"].as_u64()? >= before + 10).then_some(())
    })
    .await
    .unwrap();

    // The device comes back through node 3.
    let mut o = v4_options("device-77", port(3));
    o.set_clean_session(false);
    let (mut dev, present) = connect(o).await;
    assert!(present, "session not resumed on node 3");
    let got = collect(&mut dev.seen, 10, Duration::from_secs(3)).await;
    let payloads: Vec<String> = got
        .iter()
        .map(|(_, p, _)| String::from_utf8(p.clone()).unwrap())
        .collect();
    assert_eq!(
        payloads,
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );

    // The subscription moved too: new messages reach the device on node 3, once
    // node 3's route has reached the publisher's node. (Until then node 2 still
    // routes to node 1, which no longer holds the session: a known window, see the
    // README's MQTT limits.)
    wait_route(&publisher.client, "cmd/device-77", &mut dev.seen).await;
    publisher
        .client
        .publish("cmd/device-77", QoS::AtLeastOnce, false, b"after".to_vec())
        .await
        .unwrap();
    let got = collect(&mut dev.seen, 1, Duration::from_secs(5)).await;
    assert_eq!(got.first().map(|g| g.1.clone()), Some(b"after".to_vec()));
    dev.task.abort();
    publisher.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_takeover_across_nodes() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();
    let mut o = rumqttc::v5::MqttOptions::new("dup-id", "127.0.0.1", port(1));
    o.set_keep_alive(Duration::from_secs(30));
    let (mut first, _) = connect5(o).await;
    let mut o = rumqttc::v5::MqttOptions::new("dup-id", "127.0.0.1", port(2));
    o.set_keep_alive(Duration::from_secs(30));
    let (second, _) = connect5(o).await;
    // The first connection is told why and closed.
    let ev = next(&mut first.seen, |s| {
        matches!(s, Seen::Disconnect(_) | Seen::Closed(_))
    })
    .await;
    match ev {
        // rumqttc reports a server DISCONNECT as the error that ends its loop.
        Seen::Disconnect(reason) | Seen::Closed(reason) => {
            assert!(reason.contains("SessionTakenOver"), "{reason}")
        }
        other => panic!("expected DISCONNECT SessionTakenOver, got {other:?}"),
    }
    // Exactly one connection for the id remains in the cluster.
    eventually("one connection left", WAIT, || async {
        let n1 = stats(&cluster, 1).await["connections"].as_u64()?;
        let n2 = stats(&cluster, 2).await["connections"].as_u64()?;
        (n1 == 0 && n2 == 1).then_some(())
    })
    .await
    .unwrap();
    first.task.abort();
    second.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_when_a_client_dies_but_not_on_disconnect() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();
    let (mut watcher, _) = connect(v4_options("watcher", port(2))).await;
    watcher
        .client
        .subscribe("status/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    next(&mut watcher.seen, |s| matches!(s, Seen::SubAck)).await;

    let mut o = v4_options("polite", port(1));
    o.set_last_will(LastWill::new(
        "status/polite",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    let (polite, _) = connect(o).await;
    wait_route(&polite.client, "status/probe", &mut watcher.seen).await;
    polite.client.disconnect().await.unwrap();

    let mut o = v4_options("crashy", port(1));
    o.set_last_will(LastWill::new(
        "status/crashy",
        "lost",
        QoS::AtLeastOnce,
        false,
    ));
    let (crashy, _) = connect(o).await;
    // The process dies: the socket closes without DISCONNECT.
    crashy.task.abort();

    let got = collect(&mut watcher.seen, 2, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "status/crashy");
    assert_eq!(got[0].1, b"lost");
    polite.task.abort();
    watcher.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_splits_load_across_nodes() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();
    let mut workers = Vec::new();
    for (name, node) in [("w2", 2), ("w3", 3)] {
        let mut o = rumqttc::v5::MqttOptions::new(name, "127.0.0.1", port(node));
        o.set_keep_alive(Duration::from_secs(30));
        let (mut w, _) = connect5(o).await;
        w.client
            .subscribe(
                "$share/workers/jobs/#",
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            )
            .await
            .unwrap();
        next(&mut w.seen, |s| matches!(s, Seen::SubAck)).await;
        workers.push(w);
    }
    let (publisher, _) = connect(v4_options("producer", port(1))).await;
    // Both nodes' share routes must be known on node 1.
    eventually("share routes known", WAIT, || async {
        let before = stats(&cluster, 1).await["forwarded_out"].as_u64()?;
        for _ in 0..4 {
            publisher
                .client
                .publish("jobs/probe", QoS::AtMostOnce, false, b"probe".to_vec())
                .await
                .ok()?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = stats(&cluster, 1).await["forwarded_out"].as_u64()?;
        let n2 = stats(&cluster, 2).await["forwarded_in"].as_u64()?;
        let n3 = stats(&cluster, 3).await["forwarded_in"].as_u64()?;
        (after - before >= 4 && n2 > 0 && n3 > 0).then_some(())
    })
    .await
    .unwrap();
    let settle = Instant::now() + Duration::from_millis(300);
    for w in workers.iter_mut() {
        while let Ok(Some(_)) = tokio::time::timeout_at(settle, w.seen.recv()).await {}
    }

    const N: usize = 60;
    for i in 0..N {
        publisher
            .client
            .publish(
                format!("jobs/{i}"),
                QoS::AtLeastOnce,
                false,
                format!("{i}").into_bytes(),
            )
            .await
            .unwrap();
    }
    let mut counts = Vec::new();
    let mut all = Vec::new();
    for w in workers.iter_mut() {
        let got = collect(&mut w.seen, N, Duration::from_secs(2)).await;
        counts.push(got.len());
        all.extend(got.into_iter().map(|g| String::from_utf8(g.1).unwrap()));
    }
    all.sort_by_key(|s| s.parse::<usize>().unwrap());
    // Each message to exactly one member of the group, and both members got work.
    assert_eq!(all, (0..N).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(counts.iter().all(|c| *c > 0), "{counts:?}");
    for w in workers {
        w.task.abort();
    }
    publisher.task.abort();
}

/// A CONNECT (3.1.1) with `keep_alive` seconds and client id `id`.
fn raw_connect(id: &str, keep_alive: u16) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 2];
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

/// A CONNECT (MQTT 5, clean start, no properties) with `keep_alive` seconds and
/// client id `id`.
fn raw_connect5(id: &str, keep_alive: u16) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 2];
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.push(0);
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(all),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_timeout_closes_a_silent_client_and_fires_its_will() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();
    let (mut watcher, _) = connect(v4_options("presence-watch", port(1))).await;
    watcher
        .client
        .subscribe("$aws/events/presence/+/silent", QoS::AtLeastOnce)
        .await
        .unwrap();
    next(&mut watcher.seen, |s| matches!(s, Seen::SubAck)).await;

    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port(1)))
        .await
        .unwrap();
    s.write_all(&raw_connect("silent", 1)).await.unwrap();
    let started = Instant::now();
    let bytes = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("server kept a silent client past its keepalive");
    // CONNACK, then nothing; closed after 1.5 × 1 s.
    assert_eq!(&bytes[..4], &[0x20, 2, 0, 0]);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1400), "closed after {took:?}");

    let mut events = Vec::new();
    while events.len() < 2 {
        if let Seen::Publish { topic, payload, .. } =
            next(&mut watcher.seen, |s| matches!(s, Seen::Publish { .. })).await
        {
            let v: Value = serde_json::from_slice(&payload).unwrap();
            events.push((topic, v));
        }
    }
    assert_eq!(events[0].0, "$aws/events/presence/connected/silent");
    assert_eq!(events[1].0, "$aws/events/presence/disconnected/silent");
    assert_eq!(events[1].1["disconnectReason"], "MQTT_KEEP_ALIVE_TIMEOUT");
    assert_eq!(events[1].1["clientId"], "silent");
    assert!(events[1].1["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    watcher.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_close_only_their_connection() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = cluster.node(1).mqtt_port();
    let (mut healthy, _) = connect(v4_options("healthy", port)).await;
    healthy
        .client
        .subscribe("ok/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    next(&mut healthy.seen, |s| matches!(s, Seen::SubAck)).await;

    let hello = raw_connect("bad", 30);
    let corpus: Vec<(&str, Vec<u8>)> = vec![
        (
            "publish before connect",
            vec![0x30, 5, 0, 1, b'a', b'h', b'i'],
        ),
        ("garbage", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        (
            "bad remaining length",
            [hello.clone(), vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]].concat(),
        ),
        (
            "oversized",
            [hello.clone(), vec![0x30, 0xff, 0xff, 0x7f]].concat(),
        ),
        ("second connect", [hello.clone(), hello.clone()].concat()),
        (
            "wildcard in topic name",
            [hello.clone(), vec![0x30, 5, 0, 3, b'a', b'/', b'#']].concat(),
        ),
        (
            "reserved packet type 0",
            [hello.clone(), vec![0x00, 0]].concat(),
        ),
        (
            "subscribe with qos 3",
            [hello.clone(), vec![0x82, 6, 0, 1, 0, 1, b'a', 3]].concat(),
        ),
        (
            "truncated string",
            [hello.clone(), vec![0x30, 3, 0, 9, b'a']].concat(),
        ),
        (
            "server-only packet",
            [hello.clone(), vec![0x90, 3, 0, 1, 0]].concat(),
        ),
    ];
    for (what, bytes) in corpus {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(&bytes).await.unwrap();
        let got = read_until_closed(&mut s, Duration::from_secs(12)).await;
        assert!(got.is_some(), "{what}: connection left open");
    }
    // MQTT 3.1 (level 3) gets "unacceptable protocol version".
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(&[
        0x10, 14, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 10, 0, 0,
    ])
    .await
    .unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got, vec![0x20, 2, 0, 1]);

    // The healthy client noticed nothing.
    let (publisher, _) = connect(v4_options("pub-ok", port)).await;
    publisher
        .client
        .publish("ok/1", QoS::AtLeastOnce, false, b"fine".to_vec())
        .await
        .unwrap();
    let got = collect(&mut healthy.seen, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert!(
        stats(&cluster, 1).await["protocol_errors"]
            .as_u64()
            .unwrap()
            >= 8
    );
    healthy.task.abort();
    publisher.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_publish_reaches_subscribers_on_every_node() {
    let _guard = serial().await;
    let cluster = started().await;
    let mut subs = Vec::new();
    for id in 1..=3u64 {
        let (mut s, _) = connect(v4_options(
            &format!("listener-{id}"),
            cluster.node(id).mqtt_port(),
        ))
        .await;
        s.client
            .subscribe("alerts/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        next(&mut s.seen, |e| matches!(e, Seen::SubAck)).await;
        subs.push(s);
    }
    // Until every node's route is known on node 2, some listeners miss probes.
    eventually("routes known on node 2", WAIT, || async {
        let s = stats(&cluster, 2).await;
        (s["peers_with_routes"].as_array()?.len() == 2).then_some(())
    })
    .await
    .unwrap();
    let url = format!("{}/topics/alerts%2Ffire?qos=1", cluster.node(2).url());
    let mut seen_all = vec![false; 3];
    let deadline = Instant::now() + WAIT;
    while seen_all.iter().any(|s| !s) {
        assert!(
            Instant::now() < deadline,
            "HTTP publish not seen by every node: {seen_all:?}"
        );
        let r = cluster.http.post(&url).body("smoke").send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        for (i, s) in subs.iter_mut().enumerate() {
            if let Ok(Some(Seen::Publish { topic, payload, .. })) =
                tokio::time::timeout(Duration::from_millis(300), s.seen.recv()).await
            {
                assert_eq!(topic, "alerts/fire");
                assert_eq!(payload, b"smoke");
                seen_all[i] = true;
            }
        }
    }
    // Reserved topics cannot be faked over HTTP either.
    let r = cluster
        .http
        .post(format!(
            "{}/topics/$aws%2Fevents%2Fpresence%2Fconnected%2Fx",
            cluster.node(1).url()
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for s in subs {
        s.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_reaches_a_late_subscriber_on_another_node() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();
    let (mut publisher, _) = connect(v4_options("fw-server", port(1))).await;
    // QoS 1: PUBACK comes once the retained message is committed.
    publisher
        .client
        .publish("config/fw", QoS::AtLeastOnce, true, b"v2".to_vec())
        .await
        .unwrap();
    publisher
        .client
        .publish("config/other", QoS::AtLeastOnce, true, b"x".to_vec())
        .await
        .unwrap();
    // `publish` only queues: wait for both PUBACKs, or the late subscriber below
    // could subscribe first and get the message live (retain 0).
    for _ in 0..2 {
        next(&mut publisher.seen, |s| matches!(s, Seen::PubAck)).await;
    }

    // The subscriber arrives later, on node 3.
    let (mut late, _) = connect(v4_options("late", port(3))).await;
    // Until node 3 has applied the entry, a subscription finds nothing:
    // subscribe again until the retained message arrives.
    let deadline = Instant::now() + WAIT;
    let got = loop {
        assert!(
            Instant::now() < deadline,
            "retained message never reached node 3"
        );
        late.client
            .subscribe("config/fw", QoS::AtLeastOnce)
            .await
            .unwrap();
        let window = Instant::now() + Duration::from_millis(500);
        let mut found = None;
        while let Ok(Some(s)) = tokio::time::timeout_at(window, late.seen.recv()).await {
            if let Seen::Publish {
                topic,
                payload,
                retain,
                ..
            } = s
            {
                found = Some((topic, payload, retain));
                break;
            }
        }
        if let Some(f) = found {
            break f;
        }
    };
    assert_eq!(got, ("config/fw".to_string(), b"v2".to_vec(), true));

    // An empty retained publish clears it: a new subscriber on node 2 gets only
    // the live marker that follows its subscription.
    publisher
        .client
        .publish("config/fw", QoS::AtLeastOnce, true, Vec::new())
        .await
        .unwrap();
    let (mut fresh, _) = connect(v4_options("fresh", port(2))).await;
    // Until node 2 has applied the clear, a subscription still gets the old
    // message: subscribe and unsubscribe until one gets nothing before SUBACK's
    // follow-up marker.
    let (marker_pub, _) = connect(v4_options("marker", port(2))).await;
    let deadline = Instant::now() + WAIT;
    let mut round = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "retained message never cleared on node 2"
        );
        round += 1;
        fresh
            .client
            .subscribe("config/fw", QoS::AtLeastOnce)
            .await
            .unwrap();
        next(&mut fresh.seen, |s| matches!(s, Seen::SubAck)).await;
        let marker = format!("marker-{round}");
        marker_pub
            .client
            .publish(
                "config/fw",
                QoS::AtLeastOnce,
                false,
                marker.clone().into_bytes(),
            )
            .await
            .unwrap();
        let first = next(&mut fresh.seen, |s| matches!(s, Seen::Publish { .. })).await;
        if let Seen::Publish {
            payload, retain, ..
        } = first
        {
            if payload == marker.as_bytes() {
                assert!(!retain);
                break;
            }
            // The old retained message came first: drain up to the marker, retry.
            next(
                &mut fresh.seen,
                |s| matches!(s, Seen::Publish { payload, .. } if payload == marker.as_bytes()),
            )
            .await;
        }
        fresh.client.unsubscribe("config/fw").await.unwrap();
    }
    for c in [publisher, late, fresh, marker_pub] {
        c.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_changes_are_announced_on_aws_event_topics() {
    let _guard = serial().await;
    let cluster = started().await;
    let (mut watcher, _) = connect(v4_options("registry-watch", cluster.node(2).mqtt_port())).await;
    for f in [
        "$aws/events/thing/#",
        "$aws/events/thingGroup/#",
        "$aws/events/thingGroupMembership/#",
    ] {
        watcher.client.subscribe(f, QoS::AtLeastOnce).await.unwrap();
        next(&mut watcher.seen, |s| matches!(s, Seen::SubAck)).await;
    }
    let url = cluster.node(1).url();
    let http = &cluster.http;
    // Node 1 must know node 2's routes before the first change.
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "no registry event reached node 2"
        );
        n += 1;
        let r = http
            .post(format!("{url}/things/probe-{n}"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        if let Ok(Some(Seen::Publish { .. })) =
            tokio::time::timeout(Duration::from_millis(300), watcher.seen.recv()).await
        {
            break;
        }
    }
    let settle = Instant::now() + Duration::from_millis(300);
    while let Ok(Some(_)) = tokio::time::timeout_at(settle, watcher.seen.recv()).await {}

    let steps = [
        (
            "POST",
            "/things/meter-1",
            serde_json::json!({"attributePayload": {"attributes": {"site": "a"}}}),
        ),
        (
            "PATCH",
            "/things/meter-1",
            serde_json::json!({"attributePayload": {"attributes": {"site": "b"}}}),
        ),
        ("POST", "/thing-groups/floor-2", serde_json::json!({})),
        (
            "PUT",
            "/thing-groups/addThingToThingGroup",
            serde_json::json!({"thingGroupName": "floor-2", "thingName": "meter-1"}),
        ),
        (
            "PUT",
            "/thing-groups/removeThingFromThingGroup",
            serde_json::json!({"thingGroupName": "floor-2", "thingName": "meter-1"}),
        ),
        ("DELETE", "/things/meter-1", serde_json::json!(null)),
    ];
    for (method, path, body) in steps {
        let req = http.request(method.parse().unwrap(), format!("{url}{path}"));
        let req = if body.is_null() { req } else { req.json(&body) };
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    }
    let mut got = Vec::new();
    while got.len() < 6 {
        if let Seen::Publish { topic, payload, .. } =
            next(&mut watcher.seen, |s| matches!(s, Seen::Publish { .. })).await
        {
            got.push((topic, serde_json::from_slice::<Value>(&payload).unwrap()));
        }
    }
    let topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "$aws/events/thing/meter-1/created",
            "$aws/events/thing/meter-1/updated",
            "$aws/events/thingGroup/floor-2/created",
            "$aws/events/thingGroupMembership/thingGroup/floor-2/thing/meter-1/added",
            "$aws/events/thingGroupMembership/thingGroup/floor-2/thing/meter-1/removed",
            "$aws/events/thing/meter-1/deleted",
        ]
    );
    assert_eq!(got[0].1["eventType"], "THING_EVENT");
    assert_eq!(got[0].1["operation"], "CREATED");
    assert_eq!(got[1].1["attributes"]["site"], "b");
    assert_eq!(got[1].1["versionNumber"], 2);
    assert_eq!(got[2].1["eventType"], "THING_GROUP_EVENT");
    assert_eq!(got[3].1["operation"], "ADDED");
    assert_eq!(got[5].1["thingName"], "meter-1");
    assert_eq!(got[5].1["thingId"], got[0].1["thingId"]);
    watcher.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_are_redelivered_after_reconnect_on_another_node() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();
    let mut o = v4_options("slow-acker", port(1));
    o.set_clean_session(false);
    // The client receives but never acknowledges.
    o.set_manual_acks(true);
    let (mut dev, _) = connect(o).await;
    dev.client
        .subscribe("orders/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    next(&mut dev.seen, |s| matches!(s, Seen::SubAck)).await;
    let (publisher, _) = connect(v4_options("order-source", port(1))).await;
    for i in 0..5 {
        publisher
            .client
            .publish(
                format!("orders/{i}"),
                QoS::AtLeastOnce,
                false,
                format!("o{i}").into_bytes(),
            )
            .await
            .unwrap();
    }
    let got = collect(&mut dev.seen, 5, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 5);
    // Gone without acknowledging; back on node 2.
    dev.task.abort();
    let mut o = v4_options("slow-acker", port(2));
    o.set_clean_session(false);
    let (mut dev, present) = connect(o).await;
    assert!(present);
    let again = collect(&mut dev.seen, 5, Duration::from_secs(3)).await;
    let payloads: Vec<Vec<u8>> = again.iter().map(|g| g.1.clone()).collect();
    assert_eq!(
        payloads,
        (0..5)
            .map(|i| format!("o{i}").into_bytes())
            .collect::<Vec<_>>()
    );
    dev.task.abort();
    publisher.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_properties_cross_nodes_and_options_hold() {
    use rumqttc::v5::mqttbytes::v5::{Filter, PublishProperties, SubscribeProperties};
    use rumqttc::v5::mqttbytes::QoS as Q5;
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();

    // A subscriber on node 2 recording properties.
    let mut o = rumqttc::v5::MqttOptions::new("responder", "127.0.0.1", port(2));
    o.set_keep_alive(Duration::from_secs(30));
    let (sub, mut el) = rumqttc::v5::AsyncClient::new(o, 100);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sub_task = tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let rumqttc::v5::Event::Incoming(p) = ev {
                let _ = tx.send(p);
            }
        }
    });
    let mut filter = Filter::new("rpc/#", Q5::AtLeastOnce);
    filter.nolocal = true;
    sub.subscribe_with_properties(
        "rpc/#",
        Q5::AtLeastOnce,
        SubscribeProperties {
            id: Some(42),
            user_properties: Vec::new(),
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Packet5::SubAck(_) => break,
            _ => continue,
        }
    }
    // A no-local subscription on the publisher's own connection (node 1).
    let mut o = rumqttc::v5::MqttOptions::new("requester", "127.0.0.1", port(1));
    o.set_keep_alive(Duration::from_secs(30));
    let (requester, mut rel) = rumqttc::v5::AsyncClient::new(o, 100);
    let (rtx, mut rrx) = mpsc::unbounded_channel();
    let req_task = tokio::spawn(async move {
        while let Ok(ev) = rel.poll().await {
            if let rumqttc::v5::Event::Incoming(p) = ev {
                let _ = rtx.send(p);
            }
        }
    });
    requester.subscribe_many([filter]).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rrx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Packet5::SubAck(_) => break,
            _ => continue,
        }
    }

    // Request/response properties travel across nodes unchanged, and the
    // subscription identifier is attached. Retry until node 1 knows the route.
    let props = PublishProperties {
        response_topic: Some("replies/requester".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"corr-7")),
        user_properties: vec![("tenant".into(), "blue".into())],
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    let deadline = Instant::now() + WAIT;
    let got = 'got: loop {
        assert!(Instant::now() < deadline, "request never crossed to node 2");
        requester
            .publish_with_properties("rpc/ping", Q5::AtLeastOnce, false, "{}", props.clone())
            .await
            .unwrap();
        let window = Instant::now() + Duration::from_millis(300);
        while let Ok(Some(p)) = tokio::time::timeout_at(window, rx.recv()).await {
            if let Packet5::Publish(p) = p {
                break 'got p;
            }
        }
    };
    let p = got.properties.expect("properties");
    assert_eq!(p.response_topic.as_deref(), Some("replies/requester"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"corr-7"[..]));
    assert_eq!(
        p.user_properties,
        vec![("tenant".to_string(), "blue".to_string())]
    );
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.subscription_identifiers, vec![42]);

    // No-local: the requester's own messages on rpc/# do not come back to it, while
    // a message from another client does.
    let (other, _) = connect(v4_options("other-client", port(1))).await;
    other
        .client
        .publish("rpc/from-other", QoS::AtLeastOnce, false, b"x".to_vec())
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rrx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Packet5::Publish(p) => {
                assert_eq!(
                    &p.topic[..],
                    b"rpc/from-other",
                    "no-local delivered its own message"
                );
                break;
            }
            _ => continue,
        }
    }
    sub_task.abort();
    req_task.abort();
    other.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_are_not_delivered_to_a_returning_session() {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    let _guard = serial().await;
    let cluster = started().await;
    let port = cluster.node(1).mqtt_port();
    let mut o = rumqttc::v5::MqttOptions::new("sleepy", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(600));
    let (mut dev, _) = connect5(o.clone()).await;
    dev.client
        .subscribe("news/#", Q5::AtLeastOnce)
        .await
        .unwrap();
    next(&mut dev.seen, |s| matches!(s, Seen::SubAck)).await;
    dev.client.disconnect().await.unwrap();
    next(&mut dev.seen, |s| matches!(s, Seen::Closed(_))).await;
    dev.task.abort();

    let (publisher, _) = connect5({
        let mut p = rumqttc::v5::MqttOptions::new("newsroom", "127.0.0.1", port);
        p.set_keep_alive(Duration::from_secs(30));
        p
    })
    .await;
    let short = PublishProperties {
        message_expiry_interval: Some(1),
        ..Default::default()
    };
    publisher
        .client
        .publish_with_properties("news/flash", Q5::AtLeastOnce, false, "stale", short)
        .await
        .unwrap();
    publisher
        .client
        .publish("news/daily", Q5::AtLeastOnce, false, "fresh")
        .await
        .unwrap();
    // Wait until the 1 s expiry has certainly passed, measured, not assumed.
    let published = Instant::now();
    while published.elapsed() < Duration::from_millis(2100) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut dev, present) = connect5(o).await;
    assert!(present);
    let got = collect(&mut dev.seen, 2, Duration::from_secs(2)).await;
    let payloads: Vec<Vec<u8>> = got.into_iter().map(|g| g.1).collect();
    assert_eq!(payloads, vec![b"fresh".to_vec()]);
    dev.task.abort();
    publisher.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_forwards_survive_node_link_resets() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();
    let (mut sub, _) = connect(v4_options("reliable-sub", port(2))).await;
    sub.client
        .subscribe("ledger/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    next(&mut sub.seen, |s| matches!(s, Seen::SubAck)).await;
    let (publisher, _) = connect(v4_options("ledger-writer", port(1))).await;
    wait_route(&publisher.client, "ledger/probe", &mut sub.seen).await;

    // Publish while node 1 drops its links to the other nodes again and again:
    // whatever was in flight on a dropped stream is re-sent, once.
    const N: usize = 400;
    let resets = {
        let http = cluster.http.clone();
        let url = format!("{}/mqtt/links/reset", cluster.node(1).url());
        tokio::spawn(async move {
            for _ in 0..15 {
                let _ = http.post(&url).send().await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    for i in 0..N {
        publisher
            .client
            .publish(
                format!("ledger/{}", i % 4),
                QoS::AtLeastOnce,
                false,
                format!("{i}").into_bytes(),
            )
            .await
            .unwrap();
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    resets.await.unwrap();
    let got = collect(&mut sub.seen, N, Duration::from_secs(5)).await;
    let seq: Vec<usize> = got
        .iter()
        .map(|(_, p, _)| String::from_utf8(p.clone()).unwrap().parse().unwrap())
        .collect();
    // Every message, exactly once, in the publisher's order.
    assert_eq!(seq, (0..N).collect::<Vec<_>>());
    assert_eq!(stats(&cluster, 1).await["forward_dropped"], 0);
    sub.task.abort();
    publisher.task.abort();
}

/// A PUBLISH with first byte `header` (type, dup, QoS, retain), packet id when
/// QoS > 0, an empty property list for MQTT 5.
fn raw_publish(header: u8, topic: &str, pkid: Option<u16>, v5: bool, payload: &[u8]) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic.as_bytes());
    if let Some(id) = pkid {
        body.extend_from_slice(&id.to_be_bytes());
    }
    if v5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    assert!(body.len() < 128, "one-byte remaining length only");
    let mut p = vec![header, body.len() as u8];
    p.extend(body);
    p
}

/// Reads one packet: its first byte and its body, within [`WAIT`].
async fn read_packet(s: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    tokio::time::timeout(WAIT, async {
        let first = s.read_u8().await.unwrap();
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = s.read_u8().await.unwrap();
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.unwrap();
        (first, body)
    })
    .await
    .expect("no packet from the server")
}

/// Every retained topic node `url` lists, paging through ListRetainedMessages.
async fn retained_topics(http: &reqwest::Client, url: &str) -> Option<Vec<String>> {
    let mut topics = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut request = http
            .get(format!("{url}/retainedMessage"))
            .query(&[("maxResults", "200")]);
        if let Some(token) = &next {
            request = request.query(&[("nextToken", token)]);
        }
        let page: Value = request.send().await.ok()?.json().await.ok()?;
        for t in page["retainedTopics"].as_array()? {
            topics.push(t["topic"].as_str()?.to_string());
        }
        match page["nextToken"].as_str() {
            Some(token) => next = Some(token.to_string()),
            None => return Some(topics),
        }
    }
}

/// What: one connection's flood of retained publishes is paced (the node stops
/// reading it while 64 wait for their commit) and every one is kept; a retained
/// publish that a quota refuses is never acknowledged as kept: MQTT 5 gets PUBACK
/// 0x97 (quota exceeded), MQTT 3.1.1, whose PUBACK cannot refuse, is disconnected;
/// ListRetainedMessages and GetRetainedMessage show what is kept.
/// Why: each retained publish spawned its own proposal, so a flood from one client
/// ran into the node's bound of writes in flight and QoS 0 ones were dropped; and a
/// 3.1.1 client was told a refused retained message was stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_floods_are_paced_and_refused_retains_are_never_acknowledged() {
    const FLOOD: usize = 6000;
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();
    let http = reqwest::Client::new();

    let mut flooder = tokio::net::TcpStream::connect(("127.0.0.1", port(2)))
        .await
        .unwrap();
    flooder
        .write_all(&raw_connect("flooder", 60))
        .await
        .unwrap();
    assert_eq!(read_packet(&mut flooder).await, (0x20, vec![0, 0]));
    let mut burst = Vec::new();
    for i in 0..FLOOD {
        burst.extend(raw_publish(
            0x31,
            &format!("flood/{i:05}"),
            None,
            false,
            b"x",
        ));
    }
    burst.extend(raw_publish(0x33, "flood/last", Some(1), false, b"done"));
    tokio::time::timeout(WAIT, flooder.write_all(&burst))
        .await
        .expect("the node never read the whole burst")
        .unwrap();
    // PUBACK once committed.
    assert_eq!(read_packet(&mut flooder).await, (0x40, vec![0, 1]));
    let url3 = cluster.node(3).url();
    let topics = eventually("every retained publish kept", WAIT, || async {
        let topics = retained_topics(&http, &url3).await?;
        (topics.len() == FLOOD + 1).then_some(topics)
    })
    .await
    .unwrap();
    assert_eq!(topics[0], "flood/00000");
    assert_eq!(topics[FLOOD], "flood/last");
    let last: Value = http
        .get(format!("{url3}/retainedMessage/flood%2Flast"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["payload"], "ZG9uZQ==", "{last}");
    assert_eq!(last["qos"], 1);
    assert!(last["lastModifiedTime"].as_u64().unwrap() > 1_600_000_000_000);
    let missing = http
        .get(format!("{url3}/retainedMessage/flood%2Fnone"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Fill the retained-count quota.
    let set = http
        .put(format!("{}/quotas", cluster.node(1).url()))
        .body(format!(r#"{{"retainedMessages": {}}}"#, FLOOD + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);

    // MQTT 3.1.1: closed without PUBACK.
    let mut v4 = tokio::net::TcpStream::connect(("127.0.0.1", port(3)))
        .await
        .unwrap();
    v4.write_all(&raw_connect("over-v4", 60)).await.unwrap();
    assert_eq!(read_packet(&mut v4).await, (0x20, vec![0, 0]));
    v4.write_all(&raw_publish(0x33, "over/v4", Some(7), false, b"x"))
        .await
        .unwrap();
    let rest = read_until_closed(&mut v4, WAIT)
        .await
        .expect("a refused retained publish left the 3.1.1 client connected");
    assert!(rest.is_empty(), "3.1.1 client was sent {rest:?}");

    // MQTT 5: PUBACK 0x97; an update of a kept topic adds none and is accepted.
    let mut v5 = tokio::net::TcpStream::connect(("127.0.0.1", port(1)))
        .await
        .unwrap();
    v5.write_all(&raw_connect5("over-v5", 60)).await.unwrap();
    let (first, connack) = read_packet(&mut v5).await;
    assert_eq!((first, connack[1]), (0x20, 0), "CONNACK {connack:?}");
    v5.write_all(&raw_publish(0x33, "over/v5", Some(9), true, b"x"))
        .await
        .unwrap();
    let (first, puback) = read_packet(&mut v5).await;
    assert_eq!((first, &puback[..3]), (0x40, &[0, 9, 0x97][..]));
    v5.write_all(&raw_publish(0x33, "flood/00001", Some(10), true, b"y"))
        .await
        .unwrap();
    let (first, puback) = read_packet(&mut v5).await;
    assert_eq!((first, &puback[..2]), (0x40, &[0, 10][..]));
    assert_eq!(puback.get(2).copied().unwrap_or(0), 0, "{puback:?}");

    let topics = retained_topics(&http, &url3).await.unwrap();
    assert_eq!(topics.len(), FLOOD + 1);
    assert!(
        !topics.iter().any(|t| t.starts_with("over/")),
        "a refused retain was kept"
    );
}

/// What: retained publishes to one topic from one connection are kept in the
/// order sent: after 100 QoS 0 retained publishes and a final QoS 1 one to the
/// same topic, the final one is what stays retained; a QoS 2 retained publish
/// gets its PUBREC once stored and completes with PUBREL/PUBCOMP.
/// Why: each retained publish was proposed by its own task, so two to one topic
/// could commit in either order and leave the older value retained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_publishes_to_one_topic_commit_in_order() {
    let _guard = serial().await;
    let cluster = started().await;
    let http = reqwest::Client::new();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", cluster.node(2).mqtt_port()))
        .await
        .unwrap();
    s.write_all(&raw_connect("orderly", 60)).await.unwrap();
    assert_eq!(read_packet(&mut s).await, (0x20, vec![0, 0]));
    let mut burst = Vec::new();
    for i in 0..100 {
        burst.extend(raw_publish(
            0x31,
            "order/t",
            None,
            false,
            format!("{i}").as_bytes(),
        ));
    }
    burst.extend(raw_publish(0x33, "order/t", Some(1), false, b"last"));
    s.write_all(&burst).await.unwrap();
    assert_eq!(read_packet(&mut s).await, (0x40, vec![0, 1]));
    let url = cluster.node(3).url();
    let kept = eventually("order/t readable on node 3", WAIT, || async {
        let r = http
            .get(format!("{url}/retainedMessage/order%2Ft"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())?;
        r.json::<Value>().await.ok()
    })
    .await
    .unwrap();
    assert_eq!(
        kept["payload"], "bGFzdA==",
        "the last publish must win: {kept}"
    );

    // QoS 2: PUBREC after the commit, then PUBREL/PUBCOMP.
    s.write_all(&raw_publish(0x35, "order/q2", Some(2), false, b"two"))
        .await
        .unwrap();
    assert_eq!(read_packet(&mut s).await, (0x50, vec![0, 2]));
    s.write_all(&[0x62, 2, 0, 2]).await.unwrap();
    assert_eq!(read_packet(&mut s).await, (0x70, vec![0, 2]));
    let q2: Value = http
        .get(format!(
            "{}/retainedMessage/order%2Fq2",
            cluster.node(2).url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q2["payload"], "dHdv", "{q2}");
}

/// What: every topic that starts with `$` is reserved, as in AWS IoT: a publish
/// to one no handler serves is refused (MQTT 5: PUBACK 0x87; 3.1.1: the
/// connection is closed with no PUBACK; HTTP: 403), while shadow requests on
/// `$aws/things/...` are still served.
/// Why: `$SYS/...` and other `$` topics used to be routed like any topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dollar_topic_is_reserved() {
    let _guard = serial().await;
    let cluster = started().await;
    let port = cluster.node(1).mqtt_port();

    let mut v5 = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    v5.write_all(&raw_connect5("dollar", 60)).await.unwrap();
    let (first, connack) = read_packet(&mut v5).await;
    assert_eq!((first, connack[1]), (0x20, 0), "CONNACK {connack:?}");
    for (pkid, topic) in [
        (1u16, "$SYS/broker/uptime"),
        (2, "$custom"),
        (3, "$aws/other"),
    ] {
        v5.write_all(&raw_publish(0x32, topic, Some(pkid), true, b"x"))
            .await
            .unwrap();
        let (first, puback) = read_packet(&mut v5).await;
        assert_eq!(
            (first, &puback[..3]),
            (0x40, &[0, pkid as u8, 0x87][..]),
            "{topic}"
        );
    }
    // A shadow request on its reserved topic is still taken.
    v5.write_all(&raw_publish(
        0x32,
        "$aws/things/dollar-thing/shadow/get",
        Some(4),
        true,
        b"{}",
    ))
    .await
    .unwrap();
    let (first, puback) = read_packet(&mut v5).await;
    assert_eq!((first, &puback[..2]), (0x40, &[0, 4][..]));
    assert_eq!(puback.get(2).copied().unwrap_or(0), 0, "{puback:?}");

    let mut v4 = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    v4.write_all(&raw_connect("dollar-v4", 60)).await.unwrap();
    assert_eq!(read_packet(&mut v4).await, (0x20, vec![0, 0]));
    v4.write_all(&raw_publish(0x32, "$SYS/x", Some(1), false, b"x"))
        .await
        .unwrap();
    let rest = read_until_closed(&mut v4, WAIT)
        .await
        .expect("a publish to $SYS left the 3.1.1 client connected");
    assert!(rest.is_empty(), "3.1.1 client was sent {rest:?}");

    let r = cluster
        .http
        .post(format!("{}/topics/$SYS%2Fx", cluster.node(1).url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// The `q`-quantile of `samples` (sorted in place).
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[i]
}

/// `n` shadow updates one after another through node `url`; their latencies.
async fn timed_shadow_writes(http: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let r = http
            .post(format!("{url}/things/load-{}/shadow", i % 8))
            .body(format!(r#"{{"state":{{"reported":{{"n":{i}}}}}}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        took.push(started.elapsed());
    }
    took
}

/// What: on a large state (30,000 retained messages), polling `/cluster/status` on
/// every node and subscribing to `#` over and over (matching 30,000 retained
/// messages each) while shadow writes go on leaves the writes' p99 where it was without
/// them (within 2× + 30 ms on a shared 2-core machine).
/// Why: status used to serialize and hash the whole state, and a `#` subscribe
/// cloned every retained message, both under the state lock that apply needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_polls_and_wildcard_subscribes_do_not_stall_writes() {
    const RETAINED: u16 = 30_000;
    const WRITES: usize = 300;
    let _guard = serial().await;
    let cluster = started().await;
    let port = |id| cluster.node(id).mqtt_port();
    let http = reqwest::Client::new();
    let url1 = cluster.node(1).url();

    // The large state: retained QoS 1 publishes, each acknowledged once committed.
    let filler = tokio::net::TcpStream::connect(("127.0.0.1", port(1)))
        .await
        .unwrap();
    let (mut rd, mut wr) = filler.into_split();
    wr.write_all(&raw_connect("filler", 60)).await.unwrap();
    let writer = tokio::spawn(async move {
        let mut burst = Vec::new();
        for i in 1..=RETAINED {
            burst.extend(raw_publish(
                0x33,
                &format!("big/{i:05}"),
                Some(i),
                false,
                b"0123456789",
            ));
        }
        wr.write_all(&burst).await.unwrap();
        wr
    });
    let mut acked = 0;
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while acked < usize::from(RETAINED) {
            let n = rd.read(&mut chunk).await.unwrap();
            assert!(n > 0, "filler connection closed after {acked} acks");
            buf.extend_from_slice(&chunk[..n]);
            // CONNACK and PUBACKs are 4 bytes each.
            while buf.len() >= 4 {
                let packet: Vec<u8> = buf.drain(..4).collect();
                if packet[0] == 0x40 {
                    acked += 1;
                }
            }
        }
    })
    .await
    .expect("retained fill not acknowledged in time");
    let _wr = writer.await.unwrap();

    let mut base = timed_shadow_writes(&http, &url1, WRITES).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polls = {
        let (stop, http) = (stop.clone(), http.clone());
        let urls: Vec<String> = (1..=3).map(|id| cluster.node(id).url()).collect();
        tokio::spawn(async move {
            let mut polls = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let status: Value = http
                    .get(format!("{}/cluster/status", urls[polls % 3]))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(status["state_digest"].as_str().is_some(), "{status}");
                polls += 1;
            }
            polls
        })
    };
    let subscribes = {
        let stop = stop.clone();
        let mqtt = port(2);
        tokio::spawn(async move {
            let mut rounds = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", mqtt))
                    .await
                    .unwrap();
                s.write_all(&raw_connect(&format!("wild-{rounds}"), 60))
                    .await
                    .unwrap();
                assert_eq!(read_packet(&mut s).await.0, 0x20);
                // SUBSCRIBE pkid 1, `#` at QoS 0.
                s.write_all(&[0x82, 6, 0, 1, 0, 1, b'#', 0]).await.unwrap();
                // QoS 0 beyond a session's queue bound (1,000) is dropped, so
                // count up to it: the subscribe itself matched all 30,000.
                let mut retained = 0;
                while retained < 1_000 {
                    let (first, _) = read_packet(&mut s).await;
                    if first & 0xf0 == 0x30 && first & 1 == 1 {
                        retained += 1;
                    }
                }
                rounds += 1;
            }
            rounds
        })
    };
    let mut loaded = timed_shadow_writes(&http, &url1, WRITES).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let polls = polls.await.unwrap();
    let rounds = subscribes.await.unwrap();

    let (base_p50, base_p99) = (quantile(&mut base, 0.5), quantile(&mut base, 0.99));
    let (loaded_p50, loaded_p99) = (quantile(&mut loaded, 0.5), quantile(&mut loaded, 0.99));
    eprintln!(
        "writes alone: p50 {base_p50:?} p99 {base_p99:?}; with {polls} status polls and \
         {rounds} `#` subscribes: p50 {loaded_p50:?} p99 {loaded_p99:?}"
    );
    assert!(
        polls >= 10 && rounds >= 1,
        "the reads did not run: {polls} polls, {rounds} subscribes"
    );
    assert!(
        loaded_p99 <= base_p99 * 2 + Duration::from_millis(30),
        "write p99 {loaded_p99:?} under reads, {base_p99:?} without"
    );
}
