//! Arbitrary bytes from a client into a whole session (codec, CONNECT handling,
//! publish, subscribe, acks) on a real broker over an in-memory stream: the
//! session must end or wait, never panic.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use fleetcore_broker::clock::SystemClock;
use fleetcore_broker::authorize::AllowAll;
use fleetcore_broker::session::{serve, ConnInfo};
use fleetcore_broker::{Broker, MqttLimits};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let broker = Broker::new(
            1,
            MqttLimits::default(),
            Arc::new(SystemClock),
            Arc::new(fleetcore_broker::entropy::OsEntropy),
            Arc::new(AllowAll),
        );
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let info = ConnInfo {
            peer: "fuzz".into(),
            listener: "fuzz",
            certificate: None,
            rate_limited: false,
        };
        let session = tokio::spawn(serve(server, info, broker));
        let _ = client.write_all(data).await;
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(2), session).await;
    });
});
