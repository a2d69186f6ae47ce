//! Bytes from a hostile client through a whole MQTT session on a real broker
//! (in-memory stream): whatever arrives, the session answers or closes, and
//! never panics. The same drive as the `mqtt_session` fuzz target (broker/fuzz),
//! over a deterministic spread of inputs so CI runs it on every change.

use std::sync::Arc;
use std::time::Duration;

use fleetcore_broker::authorize::AllowAll;
use fleetcore_broker::clock::SystemClock;
use fleetcore_broker::session::{serve, ConnInfo};
use fleetcore_broker::{Broker, MqttLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn connect(level: u8) -> Vec<u8> {
    let mut p = vec![
        0x10,
        12 + u8::from(level == 5),
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        level,
        2,
        0,
        10,
    ];
    if level == 5 {
        p.push(0);
    }
    p.extend_from_slice(&[0, 0]);
    p
}

#[tokio::test]
async fn random_bytes_after_connect_never_panic_the_session() {
    let broker = Broker::new(
        1,
        MqttLimits::default(),
        Arc::new(SystemClock),
        Arc::new(fleetcore_broker::entropy::OsEntropy),
        Arc::new(AllowAll),
    );
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Packet type bytes that lead into every branch of the session.
    let firsts = [
        0x30u8, 0x32, 0x34, 0x40, 0x50, 0x62, 0x70, 0x82, 0xa2, 0xc0, 0xe0, 0xf0,
    ];
    for case in 0..400 {
        let level = if case % 2 == 0 { 4 } else { 5 };
        let mut input = if case % 7 == 0 {
            Vec::new()
        } else {
            connect(level)
        };
        for _ in 0..(next() % 6) {
            input.push(firsts[(next() % firsts.len() as u64) as usize]);
            let len = (next() % 24) as u8;
            input.push(len);
            for _ in 0..len {
                input.push((next() & 0xff) as u8);
            }
        }
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let info = ConnInfo {
            peer: format!("case-{case}"),
            listener: "test",
            certificate: None,
            rate_limited: false,
        };
        let session = tokio::spawn(serve(server, info, broker.clone()));
        client.write_all(&input).await.expect("write");
        client.shutdown().await.expect("shutdown");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut out)).await;
        let ended = tokio::time::timeout(Duration::from_secs(5), session)
            .await
            .unwrap_or_else(|_| panic!("case {case}: session still running after EOF: {input:?}"));
        // A panic inside the session surfaces as a JoinError here.
        assert!(ended.is_ok(), "case {case} panicked on {input:?}");
    }
}
