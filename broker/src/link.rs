//! Node-to-node links of the MQTT front: one long-lived stream from this node to
//! each peer (opened through a [`PeerTransport`]; the node uses its Raft
//! service's `Relay`), carrying route changes, forwarded publishes and session
//! claims. Each stream starts with this node's full route table, so a peer that
//! reconnects after a partition converges.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use futures::future::BoxFuture;

use crate::codec::{Message, MessageProps, Qos};
use crate::delivery::{Delivery, SubOptions};
use crate::topic::ParsedFilter;

/// How node links reach the other nodes. The node provides it (over its Raft
/// transport, which already knows the members and their addresses); the
/// broker knows nothing of Raft.
pub trait PeerTransport: Send + Sync + 'static {
    /// The cluster's other members now: node id to the address a link opens to.
    fn peers(&self) -> BTreeMap<u64, String>;
    /// Streams `messages` to the node at `addr` until the stream ends (`Ok`) or
    /// fails.
    fn open(
        &self,
        addr: &str,
        messages: mpsc::Receiver<Vec<u8>>,
    ) -> BoxFuture<'static, Result<(), LinkError>>;
}

/// Why a node link stream or message failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The transport could not open or keep the stream.
    #[error("link transport: {0}")]
    Transport(String),
    /// A message that does not decode (another version, or corrupt).
    #[error("undecodable node-link message: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// A message that does not encode.
    #[error("node-link message does not encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
}

/// A session as it moves between nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionWire {
    /// Raw filter → options.
    pub subscriptions: Vec<(String, SubOptions)>,
    /// Queued and unacknowledged messages, in order.
    pub messages: Vec<WireMessage>,
    /// Session expiry interval.
    pub expiry_secs: u32,
}

/// Messages queued per peer before QoS 0 forwards are dropped.
pub(crate) const PEER_QUEUE: usize = 100_000;

/// A message as it crosses nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireMessage {
    topic: String,
    payload: Vec<u8>,
    pub(crate) qos: u8,
    retain: bool,
    payload_format: Option<u8>,
    /// Remaining expiry, seconds.
    expiry_secs: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<Vec<u8>>,
    user: Vec<(String, String)>,
}

impl WireMessage {
    /// From a message about to be forwarded.
    pub fn from_message(m: &Message, expires_at: Option<Instant>) -> Self {
        let now = Instant::now();
        WireMessage {
            topic: m.topic.clone(),
            payload: m.payload.to_vec(),
            qos: m.qos as u8,
            retain: m.retain,
            payload_format: m.props.payload_format,
            expiry_secs: expires_at.map(|at| {
                u32::try_from(at.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX)
            }),
            content_type: m.props.content_type.clone(),
            response_topic: m.props.response_topic.clone(),
            correlation_data: m.props.correlation_data.as_ref().map(|b| b.to_vec()),
            user: m.props.user.clone(),
        }
    }

    /// From a queued delivery (session handover).
    pub fn from_delivery(d: &Delivery) -> Self {
        WireMessage::from_message(&d.message, d.expires_at)
    }

    /// When it expires, counted from `now`.
    pub fn expires_at(&self, now: Instant) -> Option<Instant> {
        self.expiry_secs
            .map(|s| now + Duration::from_secs(u64::from(s)))
    }

    /// Back into a message.
    pub fn into_message(self) -> Message {
        Message {
            topic: self.topic,
            payload: Bytes::from(self.payload),
            qos: Qos::from_u8(self.qos).unwrap_or(Qos::AtMostOnce),
            retain: self.retain,
            props: MessageProps {
                payload_format: self.payload_format,
                message_expiry: self.expiry_secs,
                content_type: self.content_type,
                response_topic: self.response_topic,
                correlation_data: self.correlation_data.map(Bytes::from),
                user: self.user,
            },
        }
    }

    /// Into a delivery for a session queue.
    pub fn into_delivery(self, now: Instant) -> Delivery {
        let expires_at = self.expires_at(now);
        Delivery {
            message: self.into_message(),
            subscription_ids: Vec::new(),
            expires_at,
        }
    }
}

/// What one node tells another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LinkMessage {
    /// First message of every stream: the sender's whole route table.
    Routes {
        /// Sender.
        node: u64,
        /// The sender's incarnation: sequence numbers restart with it.
        epoch: u64,
        /// Its routes.
        routes: Vec<ParsedFilter>,
    },
    /// The sender has a first subscriber for this filter.
    RouteAdd(ParsedFilter),
    /// The sender's last subscriber for this filter left.
    RouteDel(ParsedFilter),
    /// A publish for the receiver's subscribers.
    Publish {
        /// The message.
        message: WireMessage,
        /// Client id of the publisher (for no-local).
        publisher: Option<String>,
        /// Share groups (group, filter) the receiver delivers this message to.
        shared: Vec<(String, String)>,
        /// For QoS 1/2: the sender's sequence number on this link, acknowledged
        /// by the receiver and re-sent after a reconnect until then; 0 for QoS 0.
        seq: u64,
    },
    /// The sender has a new connection for this client id.
    Claim {
        /// Client id.
        client_id: String,
        /// Claiming node.
        node: u64,
        /// Hand over a persistent session.
        want_state: bool,
    },
    /// Answer to a claim that wants the state.
    ClaimReply {
        /// Client id.
        client_id: String,
        /// Answering node.
        from: u64,
        /// The session, if the answering node had it.
        state: Option<SessionWire>,
    },
    /// The receiver has delivered the sender's QoS 1/2 forwards up to `upto`.
    Ack {
        /// The sender incarnation these sequence numbers belong to.
        epoch: u64,
        /// Highest sequence number delivered.
        upto: u64,
    },
}

/// QoS 1/2 forwards sent to a peer and not yet acknowledged, oldest first.
pub(crate) type Unacked = Arc<Mutex<VecDeque<(u64, LinkMessage)>>>;

/// Unacknowledged forwards kept per peer; beyond this the oldest are dropped (and
/// counted), so a peer that never answers cannot exhaust memory.
pub(crate) const UNACKED_MAX: usize = 100_000;

pub(crate) struct Peer {
    pub(crate) tx: mpsc::Sender<LinkMessage>,
    pub(crate) connected: Arc<AtomicBool>,
    pub(crate) addr: String,
    pub(crate) unacked: Unacked,
    pub(crate) reset: Arc<tokio::sync::Notify>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// What this node has received from one peer incarnation.
#[derive(Debug, Default, Clone, Copy)]
struct Received {
    epoch: u64,
    last_seq: u64,
    acked: u64,
}

/// Outgoing links to peers, and the delivery state of incoming ones.
pub struct Links {
    // Ordered maps here and in the broker: peers are visited in id order, so a
    // simulation replays the same sends in the same order.
    pub(crate) peers: Mutex<BTreeMap<u64, Peer>>,
    /// This node's incarnation, sent with its route table.
    pub(crate) epoch: u64,
    received: Mutex<BTreeMap<u64, Received>>,
}

impl Links {
    /// Links of a node whose incarnation is `epoch` (random per start).
    pub(crate) fn new(epoch: u64) -> Self {
        Links {
            peers: Mutex::default(),
            epoch,
            received: Mutex::default(),
        }
    }
}

impl Links {
    /// Queues a message for one peer; false when there is no link or its queue is
    /// full.
    pub fn send(&self, node: u64, message: LinkMessage) -> bool {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get(&node) {
            Some(p) => p.tx.try_send(message).is_ok(),
            None => false,
        }
    }

    /// Queues a message for every peer.
    pub fn broadcast(&self, message: LinkMessage) {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        for p in peers.values() {
            if p.tx.try_send(message.clone()).is_err() {
                tracing::warn!("peer link queue full, a route change waits for the next resync");
            }
        }
    }

    /// A peer acknowledged our forwards up to `upto`.
    pub(crate) fn acked(&self, node: u64, epoch: u64, upto: u64) {
        if epoch != self.epoch {
            return;
        }
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = peers.get(&node) {
            let mut q = p.unacked.lock().unwrap_or_else(|p| p.into_inner());
            while q.front().is_some_and(|(seq, _)| *seq <= upto) {
                q.pop_front();
            }
        }
    }

    /// A peer's stream started with this incarnation.
    pub(crate) fn peer_epoch(&self, node: u64, epoch: u64) {
        let mut r = self.received.lock().unwrap_or_else(|p| p.into_inner());
        let e = r.entry(node).or_default();
        if e.epoch != epoch {
            *e = Received {
                epoch,
                ..Default::default()
            };
        }
    }

    /// Should a forward with `seq` from `node` be delivered (not a re-send of one
    /// already delivered)?
    pub(crate) fn accept_seq(&self, node: u64, seq: u64) -> bool {
        if seq == 0 {
            return true;
        }
        let mut r = self.received.lock().unwrap_or_else(|p| p.into_inner());
        let e = r.entry(node).or_default();
        if seq <= e.last_seq {
            return false;
        }
        e.last_seq = seq;
        true
    }

    /// Acknowledges what arrived since the last acknowledgement, to every peer.
    pub(crate) fn send_acks(&self) {
        let due: Vec<(u64, Received)> = {
            let mut r = self.received.lock().unwrap_or_else(|p| p.into_inner());
            r.iter_mut()
                .filter(|(_, e)| e.last_seq > e.acked)
                .map(|(n, e)| {
                    e.acked = e.last_seq;
                    (*n, *e)
                })
                .collect()
        };
        for (node, e) in due {
            self.send(
                node,
                LinkMessage::Ack {
                    epoch: e.epoch,
                    upto: e.last_seq,
                },
            );
        }
    }

    /// Drops every outgoing stream; each reconnects at once with a full route
    /// table and re-sends what the peer has not acknowledged. For operators (a
    /// link that looks stuck) and for tests of exactly that path.
    pub fn reset(&self) -> usize {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        for p in peers.values() {
            p.reset.notify_one();
        }
        peers.len()
    }

    /// Is the stream to `node` up?
    pub fn is_connected(&self, node: u64) -> bool {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .get(&node)
            .is_some_and(|p| p.connected.load(Ordering::Relaxed))
    }
}

pub(crate) fn encode(m: &LinkMessage) -> Result<Vec<u8>, LinkError> {
    Ok(bincode::serde::encode_to_vec(
        m,
        bincode::config::standard(),
    )?)
}

pub(crate) fn decode(b: &[u8]) -> Result<LinkMessage, LinkError> {
    Ok(bincode::serde::decode_from_slice(b, bincode::config::standard()).map(|(m, _)| m)?)
}
