//! Device shadows over MQTT, on AWS IoT's reserved topics:
//! `$aws/things/{thing}/shadow[/name/{shadow}]/{get,update,delete}`. A request
//! becomes a service call (a Raft command for update and delete, a linearizable
//! read for get); `/accepted`, `/documents` and `/delta` are published by the
//! service after the commit, `/rejected` here with AWS's `code` and `message`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fleetcore_model::ShadowKey;
use fleetcore_raft::Connector;
use serde_json::{json, Value};

use super::broker::ReservedRequest;
use super::codec::Message;
use crate::service::{shadow_topic, Service, ServiceError};

/// Shadow requests one client may have in flight on this node. A device that
/// publishes faster than its requests commit gets `/rejected` 429 at once for the
/// excess, rather than a queue of tasks that grows without bound.
pub const SHADOW_REQUESTS_PER_CLIENT_MAX: usize = 64;

/// What a client asked of a shadow.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Get,
    Update,
    Delete,
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// Requests in flight per client id.
type InFlightTable = Arc<Mutex<HashMap<String, usize>>>;

/// One request counted against its client until dropped.
struct InFlight {
    table: InFlightTable,
    client: String,
}

impl InFlight {
    /// Counts a request of `client`, unless it already has the most allowed.
    fn acquire(table: &InFlightTable, client: &str) -> Option<InFlight> {
        let mut counts = table.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(client.to_string()).or_insert(0);
        if *count >= SHADOW_REQUESTS_PER_CLIENT_MAX {
            return None;
        }
        *count += 1;
        Some(InFlight {
            table: table.clone(),
            client: client.to_string(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// Parses a request topic; `None` for anything else (including reply topics).
fn parse(topic: &str) -> Option<(ShadowKey, Op)> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let (thing, rest) = rest.split_once("/shadow/")?;
    let (name, op) = match rest.strip_prefix("name/") {
        Some(named) => {
            let (name, op) = named.split_once('/')?;
            (name, op)
        }
        None => ("", rest),
    };
    let op = match op {
        "get" => Op::Get,
        "update" => Op::Update,
        "delete" => Op::Delete,
        _ => return None,
    };
    if thing.is_empty() || thing.contains('/') {
        return None;
    }
    Some((
        ShadowKey {
            thing: thing.to_string(),
            name: name.to_string(),
        },
        op,
    ))
}

/// The shadow topics handler.
pub struct ShadowTopics<C: Connector> {
    service: Service<C>,
    in_flight: InFlightTable,
}

impl<C: Connector> ShadowTopics<C> {
    /// Serves shadows through `service`.
    pub fn new(service: Service<C>) -> Self {
        ShadowTopics {
            service,
            in_flight: Arc::default(),
        }
    }

    /// Serves the requests the broker queues, until the node stops (the task
    /// running this is aborted then) or the broker is gone.
    pub async fn run(self, mut requests: tokio::sync::mpsc::Receiver<ReservedRequest>) {
        while let Some(request) = requests.recv().await {
            let client = request.client_id.as_deref().unwrap_or("http-publish");
            self.handle(client, request.message);
        }
    }
}

/// The reserved topics this handler serves: shadow requests
/// (`$aws/things/{thing}/shadow[/name/{name}]/{update,get,delete}`).
pub fn serves(topic: &str) -> bool {
    parse(topic).is_some()
}

/// `clientToken` of a request body, when it has one.
fn client_token(payload: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    v.get("clientToken")?.as_str().map(str::to_string)
}

impl<C: Connector> ShadowTopics<C> {
    /// Serves one request; its reply goes out on MQTT when it is done.
    fn handle(&self, client_id: &str, message: Message) {
        let Some((key, op)) = parse(&message.topic) else {
            return;
        };
        let service = self.service.clone();
        let Some(permit) = InFlight::acquire(&self.in_flight, client_id) else {
            let e = ServiceError::Throttled(format!(
                "{SHADOW_REQUESTS_PER_CLIENT_MAX} shadow requests of this client are in flight; retry later"
            ));
            service.broker().publish_json(
                format!("{}/{}/rejected", shadow_topic(&key), op.name()),
                &rejected(&e, client_token(&message.payload), service.now_ms()),
            );
            return;
        };
        let span = tracing::info_span!("mqtt.shadow", client_id, thing = %key.thing, shadow = %key.name, op = ?op);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let _permit = permit;
                let prefix = shadow_topic(&key);
                let token = client_token(&message.payload);
                let (result, op_name) = match op {
                    Op::Update => (
                        service
                            .update_shadow_full(key, &message.payload)
                            .await
                            .map(|_| None),
                        "update",
                    ),
                    Op::Get => (
                        service.get_shadow(&key).await.map(|mut doc| {
                            if let (Some(t), Value::Object(m)) = (&token, &mut doc) {
                                m.insert("clientToken".into(), Value::String(t.clone()));
                            }
                            Some(doc)
                        }),
                        "get",
                    ),
                    Op::Delete => {
                        let version = serde_json::from_slice::<Value>(&message.payload)
                            .ok()
                            .and_then(|v| v.get("version").and_then(Value::as_u64));
                        (
                            service
                                .delete_shadow(key, version, token.clone())
                                .await
                                .map(|_| None),
                            "delete",
                        )
                    }
                };
                match result {
                    // Update and delete replies were published by the service.
                    Ok(None) => {}
                    Ok(Some(doc)) => service
                        .broker()
                        .publish_json(format!("{prefix}/{op_name}/accepted"), &doc),
                    Err(e) => {
                        if e.status() >= 500 {
                            tracing::warn!(error = %e, "shadow request failed");
                        } else {
                            tracing::debug!(error = %e, "shadow request rejected");
                        }
                        service.broker().publish_json(
                            format!("{prefix}/{op_name}/rejected"),
                            &rejected(&e, token, service.now_ms()),
                        );
                    }
                }
            },
            span,
        ));
    }
}

/// AWS's rejected body: `code` (an HTTP status), `message`, `timestamp`, and the
/// echoed `clientToken`.
fn rejected(e: &ServiceError, token: Option<String>, now_ms: u64) -> Value {
    let mut body = json!({
        "code": e.status(),
        "message": e.to_string(),
        "timestamp": now_ms / 1000,
    });
    if let (Some(t), Value::Object(m)) = (token, &mut body) {
        m.insert("clientToken".into(), Value::String(t));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(
            parse("$aws/things/t1/shadow/update"),
            Some((ShadowKey::classic("t1"), Op::Update))
        );
        assert_eq!(
            parse("$aws/things/t1/shadow/name/cfg/get"),
            Some((
                ShadowKey {
                    thing: "t1".into(),
                    name: "cfg".into()
                },
                Op::Get
            ))
        );
        assert_eq!(parse("$aws/things/t1/shadow/update/accepted"), None);
        assert_eq!(parse("$aws/things/t1/shadow/name/cfg/update/delta"), None);
        assert_eq!(parse("$aws/things//shadow/get"), None);
        assert_eq!(parse("$aws/things/t1/shadow/list"), None);
    }
}
