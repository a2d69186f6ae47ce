//! Device shadows: UpdateThingShadow, GetThingShadow, DeleteThingShadow,
//! ListNamedShadowsForThing. Whichever API a change came from, its
//! `/accepted`, `/documents` and `/delta` messages go out on MQTT after the commit.

use fleetcore_model::shadow::{ShadowUpdateRequest, ShadowUpdated};
use fleetcore_model::{names, Applied, ShadowCommand, ShadowKey};
use fleetcore_raft::Connector;
use serde_json::Value;

use super::{Service, ServiceError, ServiceResult};

/// The MQTT topic prefix of a shadow: `$aws/things/{thing}/shadow` or
/// `$aws/things/{thing}/shadow/name/{name}`.
pub fn shadow_topic(key: &ShadowKey) -> String {
    if key.name.is_empty() {
        format!("$aws/things/{}/shadow", key.thing)
    } else {
        format!("$aws/things/{}/shadow/name/{}", key.thing, key.name)
    }
}

impl<C: Connector> Service<C> {
    /// UpdateThingShadow: the `/update/accepted` body.
    pub async fn update_shadow(&self, key: ShadowKey, body: &[u8]) -> ServiceResult<Value> {
        self.update_shadow_full(key, body).await.map(|u| u.accepted)
    }

    /// UpdateThingShadow with every body it produced; `/update/accepted`,
    /// `/update/documents` and `/update/delta` are published on MQTT after the
    /// commit.
    pub async fn update_shadow_full(
        &self,
        key: ShadowKey,
        body: &[u8],
    ) -> ServiceResult<ShadowUpdated> {
        key.check()?;
        // Parse here too, so bad input never reaches the log.
        ShadowUpdateRequest::parse(body)?;
        let request = String::from_utf8(body.to_vec())
            .map_err(|_| ServiceError::Invalid("Payload is not UTF-8".into()))?;
        let prefix = shadow_topic(&key);
        let command = ShadowCommand::Update {
            key,
            request,
            at_ms: self.now_ms(),
        };
        match self.propose(command).await? {
            Applied::ShadowUpdated(u) => {
                let broker = self.broker();
                broker.publish_json(format!("{prefix}/update/accepted"), &u.accepted);
                broker.publish_json(format!("{prefix}/update/documents"), &u.documents);
                if let Some(delta) = &u.delta {
                    broker.publish_json(format!("{prefix}/update/delta"), delta);
                }
                Ok(u)
            }
            other => Err(ServiceError::unexpected("UpdateThingShadow", &other)),
        }
    }

    /// GetThingShadow, linearizable.
    pub async fn get_shadow(&self, key: &ShadowKey) -> ServiceResult<Value> {
        key.check()?;
        let record = self
            .read(|s| s.shadows().get(key).cloned().unwrap_or_default())
            .await?;
        let mut doc = record.get_response(key)?;
        // AWS stamps the reply with the time it was sent.
        doc["timestamp"] = Value::from(self.now_ms() / 1000);
        Ok(doc)
    }

    /// DeleteThingShadow: the `/delete/accepted` body, also published on MQTT.
    pub async fn delete_shadow(
        &self,
        key: ShadowKey,
        expected_version: Option<u64>,
        client_token: Option<String>,
    ) -> ServiceResult<Value> {
        key.check()?;
        let prefix = shadow_topic(&key);
        let command = ShadowCommand::Delete {
            key,
            expected_version,
            client_token,
            at_ms: self.now_ms(),
        };
        match self.propose(command).await? {
            Applied::ShadowDeleted(body) => {
                self.broker()
                    .publish_json(format!("{prefix}/delete/accepted"), &body);
                Ok(body)
            }
            other => Err(ServiceError::unexpected("DeleteThingShadow", &other)),
        }
    }

    /// ListNamedShadowsForThing, linearizable: one page of names.
    pub async fn list_named_shadows(
        &self,
        thing: &str,
        after: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<String>, Option<String>)> {
        names::check_thing_name(thing)?;
        self.read(|s| s.shadows().named_shadows_page(thing, after, limit))
            .await
    }
}
