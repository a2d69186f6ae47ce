//! What one publish costs the broker's routing with many wildcard subscriptions:
//! `--subscriptions N` local `cmd/{id}/#` subscriptions and the same filters as
//! one peer node's routes (as a cluster's other node announces them), then
//! publishes to `cmd/{id}/reboot` (one match) and `telemetry/{id}` (none).
//! Prints nanoseconds per publish. No sessions are connected: this measures the
//! matching, not delivery.
//!
//! `cargo run --release -p fleetcore-broker --example match_cost -- --subscriptions 100000`

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use fleetcore_broker::authorize::AllowAll;
use fleetcore_broker::clock::SystemClock;
use fleetcore_broker::codec::{Message, MessageProps, Qos};
use fleetcore_broker::delivery::SubOptions;
use fleetcore_broker::topic::ParsedFilter;
use fleetcore_broker::{Broker, MqttLimits};

fn main() {
    let mut subscriptions = 100_000u64;
    let mut publishes = 20_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--subscriptions", Some(v)) => subscriptions = v,
            ("--publishes", Some(v)) => publishes = v,
            _ => {
                eprintln!("usage: match_cost [--subscriptions N] [--publishes N]");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let broker = Broker::new(1, MqttLimits::default(), Arc::new(SystemClock), Arc::new(fleetcore_broker::entropy::OsEntropy), Arc::new(AllowAll));
        let filter = |id: u64| ParsedFilter {
            share: None,
            filter: format!("cmd/{id}/#"),
        };
        let opts = SubOptions {
            qos: 1,
            no_local: false,
            retain_as_published: false,
            id: None,
        };
        let started = Instant::now();
        for id in 0..subscriptions {
            broker.subscribe(&format!("device-{id}"), &filter(id), opts);
        }
        broker.peer_routes_reset(2, (0..subscriptions).map(filter).collect());
        let setup = started.elapsed();
        let message = |topic: String| Message {
            topic,
            payload: Bytes::from_static(b"{}"),
            qos: Qos::AtLeastOnce,
            retain: false,
            props: MessageProps::default(),
        };
        // A fixed stride over the ids, so every run publishes the same topics.
        let pick = |i: u64| (i * 7919) % subscriptions.max(1);
        let report = |name: &str, topic: &dyn Fn(u64) -> String| {
            let started = Instant::now();
            for i in 0..publishes {
                std::hint::black_box(broker.publish(message(topic(pick(i))), None));
            }
            let per = started.elapsed().as_nanos() / u128::from(publishes.max(1));
            println!("{name:<28} {per:>10} ns/publish");
        };
        println!(
            "{subscriptions} subscriptions `cmd/{{id}}/#` (local and one peer's routes), set up in {setup:?}"
        );
        report("cmd/{id}/reboot (1 match)", &|id| format!("cmd/{id}/reboot"));
        report("telemetry/{id} (no match)", &|id| format!("telemetry/{id}"));
    });
}
