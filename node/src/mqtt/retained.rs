//! Retained messages as replicated state: a retained publish becomes a
//! `RetainedCommand::Set` command; late subscribers on any node get it from the local
//! copy of the state.

use std::time::Duration;

use bytes::Bytes;
use fleetcore_model::limits::RETAINED_ON_SUBSCRIBE_MAX;
use fleetcore_model::RetainedMessage;
use fleetcore_raft::Connector;

use super::broker::{RetainedStore, StoreFuture};
use super::codec::{AckCode, Message, MessageProps, Qos};
use super::topic;
use crate::clock::SharedClock;
use crate::service::Service;
use fleetcore_storage::SharedState;
use tokio::sync::{mpsc, oneshot};

/// Retained messages through Raft: read from the local copy of the state, stored
/// by proposals made by [`serve_stores`]. It holds no service (which holds the
/// broker that holds this), so the two never keep each other alive.
pub struct RaftRetained {
    state: SharedState,
    clock: SharedClock,
    stores: mpsc::Sender<StoreRequest>,
}

/// A retained message to store, and where its result goes.
pub struct StoreRequest {
    message: Message,
    done: oneshot::Sender<Result<(), (AckCode, String)>>,
}

impl RaftRetained {
    /// Reads `state`; sends stores to `stores`, served by [`serve_stores`].
    pub fn new(state: SharedState, clock: SharedClock, stores: mpsc::Sender<StoreRequest>) -> Self {
        RaftRetained {
            state,
            clock,
            stores,
        }
    }
}

/// Proposes the stores `RaftRetained` queues, each in its own task, until the
/// node stops (the task running this is aborted then).
pub async fn serve_stores<C: Connector>(
    service: Service<C>,
    mut requests: mpsc::Receiver<StoreRequest>,
) {
    while let Some(request) = requests.recv().await {
        let service = service.clone();
        tokio::spawn(async move {
            let result = store(&service, request.message).await;
            // The session may be gone; then nobody waits for the answer.
            let _ = request.done.send(result);
        });
    }
}

async fn store<C: Connector>(
    service: &Service<C>,
    message: Message,
) -> Result<(), (AckCode, String)> {
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
}

/// Retained messages looked at per hold of the state lock: apply (which needs the
/// lock to write) waits at most one page, however many messages are stored.
const SCAN_PAGE: usize = 512;

impl RetainedStore for RaftRetained {
    fn matching(&self, filter: &str) -> Vec<Message> {
        let now = self.clock.now_ms();
        // Only topics that start with the filter's literal part can match.
        let prefix = filter
            .find(['+', '#'])
            .map_or(filter, |wildcard| &filter[..wildcard]);
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let applied = self.state.read();
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
        let stores = self.stores.clone();
        Box::pin(async move {
            let stopping = || (AckCode::Unspecified, "the node is stopping".to_string());
            let (done, result) = oneshot::channel();
            stores
                .send(StoreRequest { message, done })
                .await
                .map_err(|_| stopping())?;
            result.await.map_err(|_| stopping())?
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
