//! The data plane's retained-message reads: ListRetainedMessages
//! (`GET /retainedMessage`) and GetRetainedMessage (`GET /retainedMessage/{topic}`),
//! shaped as AWS IoT's data API answers them (boto3 `iot-data`).

use axum::extract::{Path, State};
use axum::Json;
use base64::Engine as _;
use fleetcore_raft::Connector;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{page_size, with_next_token, AwsQuery};
use crate::error::ApiError;
use crate::service::Service;

/// AWS's `maxResults` ceiling for ListRetainedMessages.
const RETAINED_PAGE_MAX: usize = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListRetainedQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
}

pub(crate) async fn list<C: Connector>(
    State(service): State<Service<C>>,
    AwsQuery(q): AwsQuery<ListRetainedQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(q.max_results, RETAINED_PAGE_MAX)?;
    let (page, next) = service
        .list_retained(q.next_token.as_deref(), limit)
        .await?;
    let topics: Vec<Value> = page
        .iter()
        .map(|m| {
            json!({
                "topic": m.topic,
                "payloadSize": m.payload.len(),
                "qos": m.qos,
                "lastModifiedTime": m.stored_at_ms,
            })
        })
        .collect();
    Ok(Json(with_next_token(
        json!({ "retainedTopics": topics }),
        next,
    )))
}

pub(crate) async fn get<C: Connector>(
    State(service): State<Service<C>>,
    Path(topic): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let m = service.get_retained(&topic).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut body = json!({
        "topic": m.topic,
        "payload": b64.encode(&m.payload),
        "qos": m.qos,
        "lastModifiedTime": m.stored_at_ms,
    });
    if !m.user.is_empty() {
        // AWS: a base64-encoded JSON array of one-key objects, in order.
        let props: Vec<Value> = m.user.iter().map(|(k, v)| json!({ k: v })).collect();
        body["userProperties"] = json!(b64.encode(Value::Array(props).to_string()));
    }
    Ok(Json(body))
}
