//! Data plane Publish (`POST /topics/{topic}?qos=&retain=`) into the MQTT front,
//! and the MQTT counters (`GET /mqtt/stats`).

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use fleetcore_raft::Connector;
use serde::Deserialize;
use serde_json::{json, Value};

use super::AwsQuery;
use crate::error::ApiError;
use crate::mqtt::broker::ReservedOffer;
use crate::mqtt::codec::{AckCode, Message, MessageProps, Qos};
use crate::mqtt::topic;
use crate::service::Service;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PublishQuery {
    qos: Option<u8>,
    retain: Option<bool>,
}

pub(crate) async fn publish<C: Connector>(
    State(service): State<Service<C>>,
    Path(topic_name): Path<String>,
    AwsQuery(query): AwsQuery<PublishQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let broker = service.broker();
    topic::validate_name(&topic_name, broker.limits().topic)
        .map_err(|e| ApiError::invalid(format!("invalid topic: {e}")))?;
    let qos = match query.qos.unwrap_or(0) {
        0 => Qos::AtMostOnce,
        1 => Qos::AtLeastOnce,
        q => return Err(ApiError::invalid(format!("qos must be 0 or 1, not {q}"))),
    };
    let message = Message {
        topic: topic_name.clone(),
        payload: body,
        qos,
        retain: query.retain.unwrap_or(false),
        props: MessageProps::default(),
    };
    // AWS IoT reserves every topic that starts with `$`.
    if topic_name.starts_with('$') {
        return match broker.offer_reserved(None, message) {
            ReservedOffer::Queued => Ok(Json(json!({}))),
            ReservedOffer::Full => Err(ApiError::throttled(format!(
                "the handler of {topic_name} is overloaded; retry later"
            ))),
            ReservedOffer::Stopped => Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "ServiceUnavailableException",
                message: "this node is stopping".into(),
            }),
            ReservedOffer::NotServed => Err(ApiError {
                status: StatusCode::FORBIDDEN,
                kind: "ForbiddenException",
                message: format!("{topic_name} is a reserved topic"),
            }),
        };
    }
    if message.retain {
        if let Some(store) = broker.retained() {
            store
                .store(message.clone())
                .await
                .map_err(|(code, reason)| match code {
                    AckCode::QuotaExceeded => ApiError {
                        status: StatusCode::GONE,
                        kind: "LimitExceededException",
                        message: format!("retained message not stored: {reason}"),
                    },
                    _ => ApiError {
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        kind: "ServiceUnavailableException",
                        message: format!("retained message not stored: {reason}"),
                    },
                })?;
        }
    }
    broker.publish(message, None);
    Ok(Json(json!({})))
}

pub(crate) async fn stats<C: Connector>(State(service): State<Service<C>>) -> Json<Value> {
    let s = service.broker().stats();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Json(json!({
        "connections": s.connections.load(Ordering::Relaxed),
        "connects_total": get(&s.connects_total),
        "publishes_in": get(&s.publishes_in),
        "publishes_out": get(&s.publishes_out),
        "dropped_qos0": get(&s.dropped_qos0),
        "dropped_queue_full": get(&s.dropped_queue_full),
        "expired": get(&s.expired),
        "forwarded_out": get(&s.forwarded_out),
        "forwarded_in": get(&s.forwarded_in),
        "forward_dropped": get(&s.forward_dropped),
        "protocol_errors": get(&s.protocol_errors),
        "rate_limited": get(&s.rate_limited),
        "reserved_refused": get(&s.reserved_refused),
        "peers_with_routes": service.broker().peers_with_routes(),
    }))
}

pub(crate) async fn reset_links<C: Connector>(State(service): State<Service<C>>) -> Json<Value> {
    let n = service.broker().links().reset();
    Json(json!({ "reset": n }))
}
