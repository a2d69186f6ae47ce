//! Device shadows over MQTT on AWS IoT's reserved topics, on a 3-node cluster:
//! every reply topic, the rejection paths, and the same messages for updates made
//! over HTTP.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fleetcore_tests::{eventually, serial, Cluster};
use rumqttc::{Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(15);

struct Client {
    client: rumqttc::AsyncClient,
    /// (topic, JSON body) of every publish received.
    rx: mpsc::UnboundedReceiver<(String, Value)>,
    task: JoinHandle<()>,
}

/// Connects, subscribes to `filter`, and waits for SUBACK.
async fn device(id: &str, port: u16, filter: &str) -> Client {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = rumqttc::AsyncClient::new(o, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    let _ = tx.send((p.topic.clone(), body));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ack_tx.send(());
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(WAIT, ack_rx.recv())
        .await
        .unwrap()
        .unwrap();
    Client { client, rx, task }
}

impl Client {
    async fn send(&self, topic: &str, body: Value) {
        self.client
            .publish(
                topic,
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(&body).unwrap(),
            )
            .await
            .unwrap();
    }

    async fn send_raw(&self, topic: &str, body: &[u8]) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body.to_vec())
            .await
            .unwrap();
    }

    /// The next message on `topic`, within the deadline; others are skipped.
    async fn expect(&mut self, topic: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((t, body))) if t == topic => return body,
                Ok(Some(_)) => continue,
                _ => panic!("no message on {topic}"),
            }
        }
    }

    /// The next message, whatever its topic.
    async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("no message")
            .expect("client ended")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_topics_round_trip_across_nodes() {
    let _guard = serial().await;
    let cluster = Cluster::start(3, &[]).unwrap();
    cluster.agreed_leader(&[1, 2, 3], WAIT).await.unwrap();
    // Replies reach other nodes once the node links are up.
    for id in 1..=3u64 {
        eventually("node links up", WAIT, || async {
            let s = cluster
                .get_json(&format!("{}/mqtt/stats", cluster.node(id).url()))
                .await?;
            (s["peers_with_routes"].as_array()?.len() == 2).then_some(())
        })
        .await
        .unwrap();
    }
    let port = |id| cluster.node(id).mqtt_port();
    let base = "$aws/things/lamp-9/shadow";

    let mut dev = device("lamp-9", port(1), "$aws/things/lamp-9/shadow/#").await;

    // An app sets desired state through node 1.
    dev.send(
        &format!("{base}/update"),
        json!({"state": {"desired": {"color": "red", "on": true}}, "clientToken": "t1"}),
    )
    .await;
    // The request itself is also seen (the device subscribed to shadow/#), then
    // the replies, in order: accepted, documents, delta.
    let (t, _) = dev.next().await;
    assert_eq!(t, format!("{base}/update"));
    let accepted = dev.expect(&format!("{base}/update/accepted")).await;
    assert_eq!(accepted["clientToken"], "t1");
    assert_eq!(accepted["version"], 1);
    assert_eq!(accepted["state"]["desired"]["color"], "red");
    assert!(accepted["metadata"]["desired"]["color"]["timestamp"].is_u64());
    let (t, documents) = dev.next().await;
    assert_eq!(t, format!("{base}/update/documents"));
    assert_eq!(documents["previous"], Value::Null);
    assert_eq!(documents["current"]["version"], 1);
    let (t, delta) = dev.next().await;
    assert_eq!(t, format!("{base}/update/delta"));
    assert_eq!(delta["state"], json!({"color": "red", "on": true}));
    assert_eq!(delta["version"], 1);

    // The device applies it and reports: no delta remains, so none is published.
    dev.send(
        &format!("{base}/update"),
        json!({"state": {"reported": {"color": "red", "on": true}}}),
    )
    .await;
    let accepted = dev.expect(&format!("{base}/update/accepted")).await;
    assert_eq!(accepted["version"], 2);
    let (t, documents) = dev.next().await;
    assert_eq!(t, format!("{base}/update/documents"));
    assert_eq!(documents["previous"]["version"], 1);
    assert_eq!(documents["current"]["version"], 2);

    // Get through node 2 (linearizable) sees both updates.
    let mut app = device("app", port(2), "$aws/things/lamp-9/shadow/get/+").await;
    app.send(&format!("{base}/get"), json!({"clientToken": "g1"}))
        .await;
    let (t, doc) = app.next().await;
    assert_eq!(t, format!("{base}/get/accepted"));
    assert_eq!(doc["clientToken"], "g1");
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["state"]["reported"]["color"], "red");
    assert!(doc["state"].get("delta").is_none());
    // The device's own next message proves no delta was published after the report.
    // (it sees the app's get request, forwarded from node 2, as AWS IoT does).
    let (t, _) = dev.next().await;
    assert_eq!(t, format!("{base}/get"), "a delta after a matching report");
    dev.expect(&format!("{base}/get/accepted")).await;

    // Rejections carry AWS's code and message, and the client token.
    dev.send(
        &format!("{base}/update"),
        json!({"state": {"desired": {"color": "blue"}}, "version": 1, "clientToken": "stale"}),
    )
    .await;
    let rejected = dev.expect(&format!("{base}/update/rejected")).await;
    assert_eq!(rejected["code"], 409);
    assert_eq!(rejected["clientToken"], "stale");
    assert!(rejected["message"].as_str().unwrap().contains("ersion"));

    dev.send_raw(&format!("{base}/update"), b"{not json").await;
    let rejected = dev.expect(&format!("{base}/update/rejected")).await;
    assert_eq!(rejected["code"], 400);

    dev.send(&format!("{base}/update"), json!({"state": "on"}))
        .await;
    let rejected = dev.expect(&format!("{base}/update/rejected")).await;
    assert_eq!(rejected["code"], 400);

    // Over the 8 KiB state limit: 413, and nothing changes.
    let big = "x".repeat(9 * 1024);
    dev.send(
        &format!("{base}/update"),
        json!({"state": {"desired": {"blob": big}}, "clientToken": "big"}),
    )
    .await;
    let rejected = dev.expect(&format!("{base}/update/rejected")).await;
    assert_eq!(rejected["code"], 413);
    assert_eq!(rejected["clientToken"], "big");

    let mut ghost = device("ghost-app", port(3), "$aws/things/ghost/shadow/get/+").await;
    ghost.send("$aws/things/ghost/shadow/get", json!({})).await;
    let (t, rejected) = ghost.next().await;
    assert_eq!(t, "$aws/things/ghost/shadow/get/rejected");
    assert_eq!(rejected["code"], 404);

    // Named shadows have their own topics.
    dev.send(
        &format!("{base}/name/config/update"),
        json!({"state": {"desired": {"interval": 30}}}),
    )
    .await;
    let accepted = dev
        .expect(&format!("{base}/name/config/update/accepted"))
        .await;
    assert_eq!(accepted["version"], 1);
    assert_eq!(accepted["state"]["desired"]["interval"], 30);

    // An update over HTTP through node 3 publishes the same messages, which reach
    // the device on node 1.
    let url = format!("{}/things/lamp-9/shadow", cluster.node(3).url());
    let deadline = Instant::now() + WAIT;
    let mut token = 0;
    let accepted = 'found: loop {
        assert!(
            Instant::now() < deadline,
            "HTTP update never seen over MQTT"
        );
        token += 1;
        let want = format!("http-{token}");
        let body = json!({"state": {"desired": {"color": "green"}}, "clientToken": want});
        let r = cluster.http.post(&url).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let window = Instant::now() + Duration::from_millis(500);
        while let Ok(Some((t, b))) = tokio::time::timeout_at(window, dev.rx.recv()).await {
            if t.ends_with("/update/accepted") && b["clientToken"] == want.as_str() {
                break 'found b;
            }
        }
    };
    assert_eq!(accepted["state"]["desired"]["color"], "green");
    let delta = dev.expect(&format!("{base}/update/delta")).await;
    assert_eq!(delta["state"], json!({"color": "green"}));

    // Delete.
    dev.send(&format!("{base}/delete"), json!({"clientToken": "d1"}))
        .await;
    let deleted = dev.expect(&format!("{base}/delete/accepted")).await;
    assert_eq!(deleted["clientToken"], "d1");
    app.send(&format!("{base}/get"), json!({})).await;
    let (t, rejected) = app.next().await;
    assert_eq!(t, format!("{base}/get/rejected"));
    assert_eq!(rejected["code"], 404);

    for c in [dev, app, ghost] {
        c.task.abort();
    }
}

/// What: one client that publishes shadow updates faster than they commit gets
/// `/rejected` 429 for what exceeds its in-flight bound, at once, and every
/// request gets exactly one answer; what was accepted has consecutive versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_throttled_per_connection() {
    let _guard = serial().await;
    let cluster = Cluster::start(1, &[]).unwrap();
    cluster.agreed_leader(&[1], WAIT).await.unwrap();
    let base = "$aws/things/flood/shadow/update";
    let mut dev = device("flood", cluster.node(1).mqtt_port(), &format!("{base}/+")).await;
    const SENT: usize = 400;
    for i in 0..SENT {
        let body = json!({"state": {"reported": {"i": i}}, "clientToken": format!("c{i}")});
        dev.client
            .publish(
                base,
                QoS::AtMostOnce,
                false,
                serde_json::to_vec(&body).unwrap(),
            )
            .await
            .unwrap();
    }
    let mut answers = std::collections::BTreeMap::new();
    let mut versions = Vec::new();
    while answers.len() < SENT {
        let (topic, body) = dev.next().await;
        let Some(token) = body["clientToken"].as_str().map(str::to_string) else {
            continue; // documents
        };
        let answer = if topic.ends_with("/accepted") {
            versions.push(body["version"].as_u64().unwrap());
            "accepted".to_string()
        } else if topic.ends_with("/rejected") {
            format!("rejected {}", body["code"])
        } else {
            continue;
        };
        assert!(
            answers.insert(token.clone(), answer).is_none(),
            "two answers for {token}"
        );
    }
    let throttled = answers.values().filter(|a| *a == "rejected 429").count();
    let accepted = answers.values().filter(|a| *a == "accepted").count();
    eprintln!("{SENT} updates at once: {accepted} accepted, {throttled} throttled");
    assert!(throttled > 0, "{SENT} updates at once were never throttled");
    assert_eq!(accepted + throttled, SENT, "{answers:?}");
    versions.sort_unstable();
    assert_eq!(versions, (1..=accepted as u64).collect::<Vec<_>>());
    dev.task.abort();
}
