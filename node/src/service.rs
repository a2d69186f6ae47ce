//! The service layer: the operations of AWS IoT's registry and shadow APIs over the
//! Raft node. HTTP handlers (and later MQTT topic handlers) are thin wrappers.

use std::collections::BTreeMap;

use fleetcore_model::shadow::{ShadowUpdateRequest, ShadowUpdated};
use fleetcore_model::{
    names, Applied, AttributeUpdate, Command, Outcome, RetainedMessage, ShadowKey, Thing,
    ThingQuery,
};
use fleetcore_model::{RegistryCommand, ShadowCommand};
use fleetcore_raft::{Connector, RaftNode};
use serde_json::Value;

use crate::clock::SharedClock;
use crate::error::ApiError;
use crate::mqtt::registry_events::{self as events, RegistryChange};
use crate::mqtt::Broker;

/// Registry and shadow operations. Cheap to clone.
#[derive(Clone)]
pub struct Service<C: Connector> {
    node: RaftNode<C>,
    clock: SharedClock,
    broker: Broker,
    /// Region and account shown in ARNs.
    arn_prefix: String,
    /// Bounds the writes in flight from this node (HTTP and MQTT together): past
    /// it a write is refused at once (429) instead of queueing without bound.
    proposals: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Writes one node may have in flight to the leader at once.
pub const PROPOSALS_IN_FLIGHT_MAX: usize = 4096;

/// A page of things.
#[derive(Debug)]
pub struct ThingPage {
    /// The things.
    pub things: Vec<Thing>,
    /// Token for the next page.
    pub next_token: Option<String>,
}

impl<C: Connector> Service<C> {
    /// A service over `node`.
    pub fn new(node: RaftNode<C>, clock: SharedClock, broker: Broker) -> Self {
        Service {
            node,
            clock,
            broker,
            arn_prefix: "arn:aws:iot:local:000000000000".into(),
            proposals: std::sync::Arc::new(tokio::sync::Semaphore::new(PROPOSALS_IN_FLIGHT_MAX)),
        }
    }

    /// The Raft node.
    pub fn node(&self) -> &RaftNode<C> {
        &self.node
    }

    /// The MQTT broker of this node.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The ARN of a thing.
    pub fn thing_arn(&self, name: &str) -> String {
        format!("{}:thing/{name}", self.arn_prefix)
    }

    /// Proposes a command; its rejection becomes the API error. A committed
    /// registry change is announced on its `$aws/events/...` topic.
    pub async fn propose(&self, command: Command) -> Result<Applied, ApiError> {
        // Shadow updates, the hot path, skip the state lock.
        let change = match command {
            Command::Shadow(ShadowCommand::Update { .. })
            | Command::Shadow(ShadowCommand::Delete { .. }) => None,
            _ => RegistryChange::of(&command, &self.node.state().read().state),
        };
        let Ok(_permit) = self.proposals.try_acquire() else {
            return Err(ApiError::throttled(format!(
                "{PROPOSALS_IN_FLIGHT_MAX} writes are in flight on this node; retry later"
            )));
        };
        let outcome: Outcome = self.node.propose(command).await?;
        let applied = outcome?;
        if let Some(change) = change {
            events::registry(
                &self.broker,
                change,
                &applied,
                |kind, name| self.arn(kind, name),
                self.new_id(),
            );
        }
        Ok(applied)
    }

    /// A linearizable read: `read` sees every write acknowledged before the call.
    pub async fn read<T>(
        &self,
        read: impl FnOnce(&fleetcore_model::State) -> T,
    ) -> Result<T, ApiError> {
        self.node.linearizable_read().await?;
        let applied = self.node.state().read();
        Ok(read(&applied.state))
    }

    /// The proposer's clock, for commands.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A fresh id for a new resource (chosen by the proposer, never in `apply`).
    pub fn new_id(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// The ARN of a resource of `kind` (e.g. `thinggroup`).
    pub fn arn(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}/{name}", self.arn_prefix)
    }

    /// CreateThing.
    pub async fn create_thing(
        &self,
        name: &str,
        thing_type_name: Option<String>,
        attributes: BTreeMap<String, String>,
    ) -> Result<Thing, ApiError> {
        names::check_thing_name(name)?;
        let command = Command::Registry(RegistryCommand::CreateThing {
            name: name.to_string(),
            thing_type_name,
            attributes,
            thing_id: uuid::Uuid::new_v4().to_string(),
            at_ms: self.clock.now_ms(),
        });
        match self.propose(command).await? {
            Applied::Thing(t) => Ok(t),
            other => Err(ApiError::unexpected(&other)),
        }
    }

    /// UpdateThing.
    pub async fn update_thing(
        &self,
        name: &str,
        attributes: Option<AttributeUpdate>,
        thing_type_name: Option<String>,
        remove_thing_type: bool,
        expected_version: Option<u64>,
    ) -> Result<Thing, ApiError> {
        names::check_thing_name(name)?;
        let command = Command::Registry(RegistryCommand::UpdateThing {
            name: name.to_string(),
            attributes,
            thing_type_name,
            remove_thing_type,
            expected_version,
        });
        match self.propose(command).await? {
            Applied::Thing(t) => Ok(t),
            other => Err(ApiError::unexpected(&other)),
        }
    }

    /// DeleteThing. Deleting a thing that does not exist succeeds, as in AWS.
    pub async fn delete_thing(
        &self,
        name: &str,
        expected_version: Option<u64>,
    ) -> Result<(), ApiError> {
        names::check_thing_name(name)?;
        match self
            .propose(Command::Registry(RegistryCommand::DeleteThing {
                name: name.to_string(),
                expected_version,
            }))
            .await?
        {
            Applied::ThingDeleted { .. } => Ok(()),
            other => Err(ApiError::unexpected(&other)),
        }
    }

    /// DescribeThing, linearizable.
    pub async fn describe_thing(&self, name: &str) -> Result<Thing, ApiError> {
        names::check_thing_name(name)?;
        self.node.linearizable_read().await?;
        let applied = self.node.state().read();
        applied
            .state
            .registry()
            .thing(name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("Thing {name} cannot be found.")))
    }

    /// ListThings, linearizable, paginated in name order.
    pub async fn list_things(
        &self,
        query: &ThingQuery,
        next_token: Option<&str>,
        limit: usize,
    ) -> Result<ThingPage, ApiError> {
        self.node.linearizable_read().await?;
        let applied = self.node.state().read();
        let (things, next_token) = applied
            .state
            .registry()
            .list_things(query, next_token, limit);
        Ok(ThingPage { things, next_token })
    }

    /// ListRetainedMessages: up to `limit` live retained messages after topic
    /// `after`, in topic order, and the topic to go on from when more remain.
    pub async fn list_retained(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<RetainedMessage>, Option<String>), ApiError> {
        self.node.linearizable_read().await?;
        let now = self.now_ms();
        let applied = self.node.state().read();
        let mut page: Vec<RetainedMessage> = applied
            .state
            .retained()
            .with_prefix("", after)
            .filter(|m| m.expires_at_ms.is_none_or(|e| e > now))
            .take(limit + 1)
            .cloned()
            .collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|m| m.topic.clone())
        } else {
            None
        };
        Ok((page, next))
    }

    /// GetRetainedMessage: the live retained message of `topic`.
    pub async fn get_retained(&self, topic: &str) -> Result<RetainedMessage, ApiError> {
        self.node.linearizable_read().await?;
        let now = self.now_ms();
        let applied = self.node.state().read();
        let found = applied
            .state
            .retained()
            .with_prefix(topic, None)
            .next()
            .filter(|m| m.topic == topic && m.expires_at_ms.is_none_or(|e| e > now))
            .cloned();
        found.ok_or_else(|| ApiError::not_found(format!("no retained message on {topic}")))
    }

    pub async fn update_shadow(&self, key: ShadowKey, body: &[u8]) -> Result<Value, ApiError> {
        self.update_shadow_full(key, body).await.map(|u| u.accepted)
    }

    /// UpdateThingShadow with every body it produced; `/update/accepted`,
    /// `/update/documents` and `/update/delta` are published on MQTT after the
    /// commit, whichever API the update came from.
    pub async fn update_shadow_full(
        &self,
        key: ShadowKey,
        body: &[u8],
    ) -> Result<ShadowUpdated, ApiError> {
        key.check()?;
        // Parse here too, so bad input never reaches the log.
        ShadowUpdateRequest::parse(body)?;
        let request = String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::invalid("Payload is not UTF-8"))?;
        let key_for_topic = key.clone();
        let command = Command::Shadow(ShadowCommand::Update {
            key,
            request,
            at_ms: self.clock.now_ms(),
        });
        match self.propose(command).await? {
            Applied::ShadowUpdated(u) => {
                let prefix = shadow_topic(&key_for_topic);
                self.broker
                    .publish_json(format!("{prefix}/update/accepted"), &u.accepted);
                self.broker
                    .publish_json(format!("{prefix}/update/documents"), &u.documents);
                if let Some(delta) = &u.delta {
                    self.broker
                        .publish_json(format!("{prefix}/update/delta"), delta);
                }
                Ok(u)
            }
            other => Err(ApiError::unexpected(&other)),
        }
    }

    /// GetThingShadow, linearizable.
    pub async fn get_shadow(&self, key: &ShadowKey) -> Result<Value, ApiError> {
        key.check()?;
        self.node.linearizable_read().await?;
        let applied = self.node.state().read();
        let record = applied
            .state
            .shadows()
            .get(key)
            .cloned()
            .unwrap_or_default();
        let mut doc = record.get_response(key)?;
        // AWS stamps the reply with the time it was sent.
        doc["timestamp"] = Value::from(self.clock.now_ms() / 1000);
        Ok(doc)
    }

    /// DeleteThingShadow.
    pub async fn delete_shadow(
        &self,
        key: ShadowKey,
        expected_version: Option<u64>,
        client_token: Option<String>,
    ) -> Result<Value, ApiError> {
        key.check()?;
        let prefix = shadow_topic(&key);
        let command = Command::Shadow(ShadowCommand::Delete {
            key,
            expected_version,
            client_token,
            at_ms: self.clock.now_ms(),
        });
        match self.propose(command).await? {
            Applied::ShadowDeleted(body) => {
                self.broker
                    .publish_json(format!("{prefix}/delete/accepted"), &body);
                Ok(body)
            }
            other => Err(ApiError::unexpected(&other)),
        }
    }

    /// ListNamedShadowsForThing, linearizable.
    pub async fn list_named_shadows(
        &self,
        thing: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>), ApiError> {
        names::check_thing_name(thing)?;
        self.node.linearizable_read().await?;
        Ok(self
            .node
            .state()
            .read()
            .state
            .shadows()
            .named_shadows_page(thing, after, limit))
    }
}

/// The MQTT topic prefix of a shadow: `$aws/things/{thing}/shadow` or
/// `$aws/things/{thing}/shadow/name/{name}`.
pub fn shadow_topic(key: &ShadowKey) -> String {
    if key.name.is_empty() {
        format!("$aws/things/{}/shadow", key.thing)
    } else {
        format!("$aws/things/{}/shadow/name/{}", key.thing, key.name)
    }
}
