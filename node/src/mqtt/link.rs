//! Node-to-node links of the MQTT front: one long-lived gRPC stream from this node
//! to each peer (the Raft service's `Relay`), carrying route changes, forwarded
//! publishes and session claims. Each stream starts with this node's full route
//! table, so a peer that reconnects after a partition converges.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use fleetcore_raft::{Connector, RaftNode, RelayHandler};

use super::broker::{Broker, Delivery, SessionWire};
use super::codec::{Message, MessageProps, Qos};
use super::topic::ParsedFilter;

/// Messages queued per peer before QoS 0 forwards are dropped.
const PEER_QUEUE: usize = 100_000;

/// A message as it crosses nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireMessage {
    topic: String,
    payload: Vec<u8>,
    qos: u8,
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
type Unacked = Arc<Mutex<VecDeque<(u64, LinkMessage)>>>;

/// Unacknowledged forwards kept per peer; beyond this the oldest are dropped (and
/// counted), so a peer that never answers cannot exhaust memory.
const UNACKED_MAX: usize = 100_000;

struct Peer {
    tx: mpsc::Sender<LinkMessage>,
    connected: Arc<AtomicBool>,
    addr: String,
    unacked: Unacked,
    reset: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
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
    peers: Mutex<BTreeMap<u64, Peer>>,
    /// This node's incarnation, sent with its route table.
    epoch: u64,
    received: Mutex<BTreeMap<u64, Received>>,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            peers: Mutex::default(),
            epoch: uuid::Uuid::new_v4().as_u64_pair().0,
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
    fn acked(&self, node: u64, epoch: u64, upto: u64) {
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
    fn peer_epoch(&self, node: u64, epoch: u64) {
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
    fn accept_seq(&self, node: u64, seq: u64) -> bool {
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
    fn send_acks(&self) {
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

/// Keeps one outgoing stream per cluster member, following membership changes.
pub fn spawn_link_manager<C: Connector>(
    node: RaftNode<C>,
    broker: Broker,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let members: BTreeMap<u64, String> = node
                .members()
                .into_iter()
                .filter(|(id, _)| *id != node.id())
                .map(|(id, info)| (id, info.raft_addr))
                .collect();
            {
                let mut peers = broker
                    .links()
                    .peers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                peers.retain(|id, p| {
                    let keep = members.get(id) == Some(&p.addr);
                    if !keep {
                        p.task.abort();
                        if !members.contains_key(id) {
                            broker.forget_peer(*id);
                        }
                    }
                    keep
                });
                for (id, addr) in members {
                    if peers.contains_key(&id) {
                        continue;
                    }
                    let (tx, rx) = mpsc::channel(PEER_QUEUE);
                    let connected = Arc::new(AtomicBool::new(false));
                    let unacked = Unacked::default();
                    let reset = Arc::new(tokio::sync::Notify::new());
                    let task = tokio::spawn(run_peer(
                        node.clone(),
                        broker.clone(),
                        addr.clone(),
                        rx,
                        connected.clone(),
                        unacked.clone(),
                        reset.clone(),
                    ));
                    peers.insert(
                        id,
                        Peer {
                            tx,
                            connected,
                            addr,
                            unacked,
                            reset,
                            task,
                        },
                    );
                }
            }
            // Acknowledge forwards often: the sender holds them until then.
            for _ in 0..5 {
                broker.links().send_acks();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
}

async fn run_peer<C: Connector>(
    node: RaftNode<C>,
    broker: Broker,
    addr: String,
    rx: mpsc::Receiver<LinkMessage>,
    connected: Arc<AtomicBool>,
    unacked: Unacked,
    reset: Arc<tokio::sync::Notify>,
) {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let next_seq = Arc::new(std::sync::atomic::AtomicU64::new(1));
    loop {
        let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(1024);
        let hello = LinkMessage::Routes {
            node: broker.node_id(),
            epoch: broker.links().epoch,
            routes: broker.local_routes(),
        };
        let Ok(first) = encode(&hello) else {
            return;
        };
        if out_tx.send(first).await.is_err() {
            return;
        }
        // Pump: first what the last stream left unacknowledged, then the queue.
        let pump = {
            let rx = rx.clone();
            let connected = connected.clone();
            let unacked = unacked.clone();
            let next_seq = next_seq.clone();
            let broker = broker.clone();
            tokio::spawn(async move {
                let resend: Vec<LinkMessage> = unacked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|(_, m)| m.clone())
                    .collect();
                for m in resend {
                    let Ok(bytes) = encode(&m) else { continue };
                    if out_tx.send(bytes).await.is_err() {
                        return;
                    }
                }
                let mut rx = rx.lock().await;
                while let Some(mut m) = rx.recv().await {
                    if let LinkMessage::Publish { message, seq, .. } = &mut m {
                        if message.qos > 0 {
                            *seq = next_seq.fetch_add(1, Ordering::Relaxed);
                            let mut q = unacked.lock().unwrap_or_else(|p| p.into_inner());
                            if q.len() >= UNACKED_MAX {
                                q.pop_front();
                                broker
                                    .stats()
                                    .forward_dropped
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            q.push_back((*seq, m.clone()));
                        }
                    }
                    let Ok(bytes) = encode(&m) else { continue };
                    if out_tx.send(bytes).await.is_err() {
                        break;
                    }
                    connected.store(true, Ordering::Relaxed);
                }
            })
        };
        connected.store(true, Ordering::Relaxed);
        let result = tokio::select! {
            biased;
            r = node.relay_to(&addr, tokio_stream::wrappers::ReceiverStream::new(out_rx)) => r,
            _ = reset.notified() => Ok(()),
        };
        connected.store(false, Ordering::Relaxed);
        pump.abort();
        let _ = pump.await;
        let failed = result.is_err();
        if let Err(e) = result {
            tracing::debug!(peer = %addr, error = %e, "node link down, reconnecting");
        }
        // What queued while the link was down is kept (up to PEER_QUEUE) and sent
        // after the next stream's full route table: route changes are set
        // operations applied in order, so replaying them after the table still
        // converges, and messages for the peer survive a short outage.
        if failed {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn encode(m: &LinkMessage) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(m, bincode::config::standard()).map_err(|e| e.to_string())
}

fn decode(b: &[u8]) -> Result<LinkMessage, String> {
    bincode::serde::decode_from_slice(b, bincode::config::standard())
        .map(|(m, _)| m)
        .map_err(|e| e.to_string())
}

/// Receives peers' streams (installed into the Raft node's relay service).
pub struct LinkReceiver {
    broker: Broker,
    /// The stream each peer's routes came on: a late close of an older stream
    /// must not erase the routes of the newer one.
    current: Mutex<BTreeMap<u64, u64>>,
}

impl LinkReceiver {
    /// A receiver feeding `broker`.
    pub fn new(broker: Broker) -> Self {
        LinkReceiver {
            broker,
            current: Mutex::default(),
        }
    }
}

impl RelayHandler for LinkReceiver {
    fn message(&self, from: u64, stream: u64, data: &[u8]) {
        let message = match decode(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(peer = from, error = %e, "undecodable node-link message");
                return;
            }
        };
        match message {
            LinkMessage::Routes { routes, epoch, .. } => {
                self.broker.links().peer_epoch(from, epoch);
                self.current
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(from, stream);
                self.broker.peer_routes_reset(from, routes)
            }
            LinkMessage::RouteAdd(k) => self.broker.peer_route(from, k, true),
            LinkMessage::RouteDel(k) => self.broker.peer_route(from, k, false),
            LinkMessage::Publish {
                message,
                publisher,
                shared,
                seq,
            } => {
                // A re-send after a reconnect of something already delivered.
                if self.broker.links().accept_seq(from, seq) {
                    self.broker.deliver_forwarded(message, publisher, shared)
                }
            }
            LinkMessage::Ack { epoch, upto } => self.broker.links().acked(from, epoch, upto),
            LinkMessage::Claim {
                client_id,
                node,
                want_state,
            } => {
                let broker = self.broker.clone();
                tokio::spawn(async move { broker.on_claim(client_id, node, want_state).await });
            }
            LinkMessage::ClaimReply {
                client_id,
                from,
                state,
            } => self.broker.on_claim_reply(&client_id, from, state),
        }
    }

    fn closed(&self, from: u64, stream: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.get(&from) == Some(&stream) {
            current.remove(&from);
            drop(current);
            self.broker.peer_gone(from);
        }
    }
}
