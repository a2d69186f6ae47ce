//! Reserved topics reach their handler through a bounded queue: a request is
//! queued (and seen by the topic's subscribers) or refused when the queue is
//! full or its handler stopped, and a `$` topic no handler serves is refused
//! outright.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use fleetcore_broker::authorize::AllowAll;
use fleetcore_broker::broker::ReservedOffer;
use fleetcore_broker::clock::SystemClock;
use fleetcore_broker::codec::{Message, MessageProps, Qos};
use fleetcore_broker::{Broker, MqttLimits};

fn request(topic: &str, body: &'static [u8]) -> Message {
    Message {
        topic: topic.into(),
        payload: Bytes::from_static(body),
        qos: Qos::AtLeastOnce,
        retain: false,
        props: MessageProps::default(),
    }
}

fn shadow_get(topic: &str) -> bool {
    topic.starts_with("$aws/things/") && topic.ends_with("/shadow/get")
}

#[tokio::test]
async fn requests_are_queued_up_to_the_bound_then_refused() {
    let broker = Broker::new(
        1,
        MqttLimits::default(),
        Arc::new(SystemClock),
        Arc::new(fleetcore_broker::entropy::OsEntropy),
        Arc::new(AllowAll),
    );
    let mut requests = broker.serve_reserved(shadow_get, 2);

    let topic = "$aws/things/lamp/shadow/get";
    assert_eq!(
        broker.offer_reserved(Some("dev-1"), request(topic, b"1")),
        ReservedOffer::Queued
    );
    assert_eq!(
        broker.offer_reserved(None, request(topic, b"2")),
        ReservedOffer::Queued
    );
    // The handler has not taken any: the third is refused, not queued.
    assert_eq!(
        broker.offer_reserved(Some("dev-1"), request(topic, b"3")),
        ReservedOffer::Full
    );
    assert_eq!(broker.stats().reserved_refused.load(Ordering::Relaxed), 1);
    // A `$` topic no handler serves.
    assert_eq!(
        broker.offer_reserved(
            Some("dev-1"),
            request("$aws/things/lamp/shadow/get/accepted", b"x")
        ),
        ReservedOffer::NotServed
    );
    assert_eq!(
        broker.offer_reserved(Some("dev-1"), request("$SYS/anything", b"x")),
        ReservedOffer::NotServed
    );

    let first = requests.recv().await.expect("first request");
    assert_eq!(first.client_id.as_deref(), Some("dev-1"));
    assert_eq!(first.message.payload.as_ref(), b"1");
    let second = requests.recv().await.expect("second request");
    assert_eq!(second.client_id, None);
    assert_eq!(second.message.payload.as_ref(), b"2");
    assert!(
        requests.try_recv().is_err(),
        "the refused one was not queued"
    );

    // Room again: queued.
    assert_eq!(
        broker.offer_reserved(Some("dev-2"), request(topic, b"4")),
        ReservedOffer::Queued
    );
    assert_eq!(
        requests
            .recv()
            .await
            .expect("fourth")
            .message
            .payload
            .as_ref(),
        b"4"
    );

    // When the handler is gone, its topics are refused as stopped, never
    // acknowledged, and then no longer served.
    drop(requests);
    assert_eq!(
        broker.offer_reserved(Some("dev-2"), request(topic, b"5")),
        ReservedOffer::Stopped
    );
    assert_eq!(
        broker.offer_reserved(Some("dev-2"), request(topic, b"6")),
        ReservedOffer::NotServed
    );
    assert_eq!(broker.stats().reserved_refused.load(Ordering::Relaxed), 1);
    // A handler serving the topics again gets them.
    let mut again = broker.serve_reserved(shadow_get, 1);
    assert_eq!(
        broker.offer_reserved(Some("dev-3"), request(topic, b"7")),
        ReservedOffer::Queued
    );
    assert_eq!(
        again
            .recv()
            .await
            .expect("seventh")
            .message
            .payload
            .as_ref(),
        b"7"
    );
}
