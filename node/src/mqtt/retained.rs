//! Retained messages as replicated state: a retained publish becomes a
//! `SetRetained` command; late subscribers on any node get it from the local
//! copy of the state.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use fleetcore_model::{Command, RetainedMessage};
use fleetcore_raft::Connector;

use super::broker::RetainedStore;
use super::codec::{Message, MessageProps, Qos};
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

impl<C: Connector> RetainedStore for RaftRetained<C> {
    fn matching(&self, filter: &str) -> Vec<Message> {
        let now = self.service.now_ms();
        let applied = self.service.node().state().read();
        applied
            .state
            .retained()
            .filter(|m| m.is_live(now) && topic::matches(filter, &m.topic))
            .map(|m| Message {
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
            })
            .collect()
    }

    fn store(&self, message: Message) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
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
            service
                .propose(Command::SetRetained(retained))
                .await
                .map(|_| ())
                .map_err(|e| e.message)
        })
    }
}
