//! Lifecycle events, as AWS IoT publishes them: presence on
//! `$aws/events/presence/{connected,disconnected}/{clientId}` and subscriptions on
//! `$aws/events/subscriptions/{subscribed,unsubscribed}/{clientId}`.

use serde_json::json;

use crate::authorize::Identity;
use crate::broker::Broker;

/// A client connected from `peer` (`ip:port`).
pub fn connected(broker: &Broker, identity: &Identity, session_id: &str, peer: &str) {
    broker.publish_json(
        format!("$aws/events/presence/connected/{}", identity.client_id),
        &json!({
            "clientId": identity.client_id,
            "timestamp": broker.now_ms(),
            "eventType": "connected",
            "sessionIdentifier": session_id,
            "principalIdentifier": identity.principal(),
            "ipAddress": peer.rsplit_once(':').map_or(peer, |(ip, _)| ip),
            "versionNumber": 0,
        }),
    );
}

/// A client disconnected; `reason` is AWS's `disconnectReason`.
pub fn disconnected(
    broker: &Broker,
    identity: &Identity,
    session_id: &str,
    client_initiated: bool,
    reason: &str,
) {
    broker.publish_json(
        format!("$aws/events/presence/disconnected/{}", identity.client_id),
        &json!({
            "clientId": identity.client_id,
            "timestamp": broker.now_ms(),
            "eventType": "disconnected",
            "sessionIdentifier": session_id,
            "principalIdentifier": identity.principal(),
            "clientInitiatedDisconnect": client_initiated,
            "disconnectReason": reason,
            "versionNumber": 0,
        }),
    );
}

/// A client subscribed or unsubscribed (`kind`).
pub fn subscriptions(
    broker: &Broker,
    identity: &Identity,
    session_id: &str,
    kind: &str,
    topics: &[String],
) {
    broker.publish_json(
        format!("$aws/events/subscriptions/{kind}/{}", identity.client_id),
        &json!({
            "clientId": identity.client_id,
            "timestamp": broker.now_ms(),
            "eventType": kind,
            "sessionIdentifier": session_id,
            "principalIdentifier": identity.principal(),
            "topics": topics,
        }),
    );
}
