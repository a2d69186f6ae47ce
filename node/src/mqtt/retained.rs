//! Retained messages as replicated state: a retained publish becomes a
//! `SetRetained` command; late subscribers on any node get it from the local
//! copy of the state.

use std::time::Duration;

use bytes::Bytes;
use fleetcore_model::limits::RETAINED_ON_SUBSCRIBE_MAX;
use fleetcore_model::RetainedMessage;
use fleetcore_raft::Connector;

use super::broker::{RetainedStore, StoreFuture};
use super::codec::{AckCode, Message, MessageProps, Qos};
use super::topic;
use crate::service::Service;

/// Retained messages through Raft.
pub struct RaftRetained<C: Connector> {
    service: Service<C>,
}

impl<C: Connector> RaftRetained<C> {
    /// Over `service`.
    pub fn new(service: Service<C>) -> Self {
        RaftRetained { service }
    }
}

/// Retained messages looked at per hold of the state lock: apply (which needs the
/// lock to write) waits at most one page, however many messages are stored.
const SCAN_PAGE: usize = 512;

impl<C: Connector> RetainedStore for RaftRetained<C> {
    fn matching(&self, filter: &str) -> Vec<Message> {
        let now = self.service.now_ms();
        // Only topics that start with the filter's literal part can match.
        let prefix = filter
            .find(['+', '#'])
            .map_or(filter, |wildcard| &filter[..wildcard]);
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let applied = self.service.node().state().read();
            let mut scanned = 0;
            for m in applied
                .state
                .retained()
                .with_prefix(prefix, after.as_deref())
                .take(SCAN_PAGE)
            {
                scanned += 1;
                after = Some(m.topic.clone());
                if m.is_live(now) && topic::matches(filter, &m.topic) {
                    out.push(message(m, now));
                }
            }
            drop(applied);
            if scanned < SCAN_PAGE {
                return out;
            }
            if out.len() >= RETAINED_ON_SUBSCRIBE_MAX {
                tracing::warn!(
                    filter,
                    sent = out.len(),
                    "more retained messages match than one subscribe delivers"
                );
                out.truncate(RETAINED_ON_SUBSCRIBE_MAX);
                return out;
            }
        }
    }

    fn store(&self, message: Message) -> StoreFuture {
        let service = self.service.clone();
        Box::pin(async move {
            let now = service.now_ms();
            let retained = RetainedMessage {
                topic: message.topic,
                payload: message.payload.to_vec(),
                qos: message.qos as u8,
                payload_format: message.props.payload_format,
                content_type: message.props.content_type,
                response_topic: message.props.response_topic,
                correlation_data: message.props.correlation_data.map(|c| c.to_vec()),
                user: message.props.user,
                stored_at_ms: now,
                expires_at_ms: message
                    .props
                    .message_expiry
                    .map(|s| now + u64::from(s) * 1000),
            };
            service.store_retained(retained).await.map_err(|e| {
                tracing::warn!(error = %e, "retained message not stored");
                let code = match e.status() {
                    // LimitExceeded (a full quota) or Throttling (writes in flight).
                    410 | 429 => AckCode::QuotaExceeded,
                    _ => AckCode::Unspecified,
                };
                (code, e.to_string())
            })
        })
    }
}

/// A stored retained message as the broker delivers it.
fn message(m: &RetainedMessage, now: u64) -> Message {
    Message {
        topic: m.topic.clone(),
        payload: Bytes::from(m.payload.clone()),
        qos: Qos::from_u8(m.qos).unwrap_or(Qos::AtMostOnce),
        retain: true,
        props: MessageProps {
            payload_format: m.payload_format,
            message_expiry: m.expires_at_ms.map(|at| {
                let left = Duration::from_millis(at.saturating_sub(now)).as_secs();
                u32::try_from(left.max(1)).unwrap_or(u32::MAX)
            }),
            content_type: m.content_type.clone(),
            response_topic: m.response_topic.clone(),
            correlation_data: m.correlation_data.as_ref().map(|c| Bytes::from(c.clone())),
            user: m.user.clone(),
        },
    }
}
