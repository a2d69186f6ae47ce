//! The node's MQTT hub: sessions by client id, the local subscription index, the
//! cluster route table, and `publish`, which delivers a message to every matching
//! subscription on this node and forwards it only to nodes with a matching route.
//!
//! Sessions are owned by one node at a time. A CONNECT claims its client id
//! across the cluster over the node links: the node holding it closes that
//! connection (takeover) and, for a persistent session, hands its subscriptions
//! and queued messages to the claiming node.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify, OwnedMutexGuard};
use tokio::time::Instant;

use crate::authorize::{Action, Authorizer, Identity};
use crate::clock::SharedClock;
use crate::codec::{Message, MessageProps, Qos};
pub use crate::delivery::{Delivery, SubOptions};
use crate::entropy::SharedEntropy;
use crate::link::{LinkMessage, Links, SessionWire, WireMessage};
use crate::topic::{self, ParsedFilter, TopicLimits};
use crate::trie::FilterTrie;

/// Limits of the MQTT front, from the node's config.
#[derive(Debug, Clone)]
pub struct MqttLimits {
    /// Largest packet accepted, bytes.
    pub max_packet_size: usize,
    /// QoS 1/2 messages in flight to a client (and QoS 2 from it).
    pub receive_maximum: u16,
    /// Messages queued for one session before QoS 0 is dropped; QoS 1/2 are
    /// kept up to `max_queued_messages`.
    pub max_queued_qos0: usize,
    /// Hard bound of a session's queue.
    pub max_queued_messages: usize,
    /// Subscriptions per client.
    pub max_subscriptions: usize,
    /// Topic length and depth.
    pub topic: TopicLimits,
    /// Topic aliases a client may use.
    pub topic_alias_max: u16,
    /// Longest session expiry granted (3.1.1 persistent sessions get this).
    pub max_session_expiry_secs: u32,
    /// New connections per second per listener.
    pub connections_per_second: u32,
    /// How long a CONNECT waits for the cluster to hand over the session.
    pub claim_timeout: Duration,
}

impl Default for MqttLimits {
    fn default() -> Self {
        MqttLimits {
            max_packet_size: 256 * 1024,
            receive_maximum: 64,
            max_queued_qos0: 1_000,
            max_queued_messages: 10_000,
            max_subscriptions: 256,
            topic: TopicLimits::default(),
            topic_alias_max: 32,
            max_session_expiry_secs: 7 * 24 * 3600,
            connections_per_second: 2_000,
            claim_timeout: Duration::from_secs(2),
        }
    }
}

/// Why a connection is told to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Another connection took the client id.
    TakenOver,
    /// The node is shutting down.
    Shutdown,
}

/// An unacknowledged outgoing QoS 1/2 message.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The delivery.
    pub delivery: Delivery,
    /// QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP.
    pub released: bool,
}

/// What survives a connection of a persistent session.
#[derive(Debug, Default)]
pub struct SessionCore {
    /// Raw filter (as subscribed) → options.
    pub subscriptions: BTreeMap<String, SubOptions>,
    /// Unacknowledged QoS 1/2 deliveries by packet id, in send order.
    pub inflight: BTreeMap<u16, Outgoing>,
    /// Send order of `inflight` (packet ids wrap).
    pub inflight_order: VecDeque<u16>,
    /// Inbound QoS 2 packet ids delivered but not yet released.
    pub inbound_qos2: HashSet<u16>,
    /// Last packet id used.
    pub last_pkid: u16,
}

/// Queue of deliveries for one session, filled by `publish`, drained by the
/// connection.
#[derive(Debug, Default)]
pub struct Mailbox {
    queue: Mutex<VecDeque<Delivery>>,
    /// Woken when a delivery arrives.
    pub notify: Notify,
}

impl Mailbox {
    /// Takes up to `n` deliveries.
    pub fn take(&self, n: usize) -> Vec<Delivery> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    /// Puts deliveries back at the front (a connection that ended before sending).
    pub fn requeue_front(&self, items: Vec<Delivery>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        for d in items.into_iter().rev() {
            q.push_front(d);
        }
    }

    /// Queued count.
    pub fn len(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Connected {
    epoch: u64,
    kick: Option<oneshot::Sender<Kick>>,
}

struct SessionSlot {
    core: Arc<tokio::sync::Mutex<SessionCore>>,
    mailbox: Arc<Mailbox>,
    conn: Option<Connected>,
    /// Seconds the session outlives its connection (0 = ends with it).
    expiry_secs: u32,
    disconnected_at: Option<Instant>,
}

impl SessionSlot {
    fn new() -> Self {
        SessionSlot {
            core: Arc::default(),
            mailbox: Arc::default(),
            conn: None,
            expiry_secs: 0,
            disconnected_at: None,
        }
    }
}

/// Local subscriptions: exact filters by topic, wildcard filters, share groups.
#[derive(Default)]
struct SubIndex {
    exact: HashMap<String, BTreeMap<String, SubOptions>>,
    wild: FilterTrie<BTreeMap<String, SubOptions>>,
    shared: BTreeMap<(String, String), BTreeMap<String, SubOptions>>,
}

impl SubIndex {
    fn members(&mut self, key: &ParsedFilter) -> &mut BTreeMap<String, SubOptions> {
        match &key.share {
            Some(group) => self
                .shared
                .entry((group.clone(), key.filter.clone()))
                .or_default(),
            None if topic::has_wildcard(&key.filter) => self.wild.entry(&key.filter, BTreeMap::new),
            None => self.exact.entry(key.filter.clone()).or_default(),
        }
    }

    /// Adds; true when the filter key is new on this node (a route to announce).
    fn add(&mut self, key: &ParsedFilter, client: &str, opts: SubOptions) -> bool {
        let members = self.members(key);
        let was_empty = members.is_empty();
        members.insert(client.to_string(), opts);
        was_empty
    }

    /// Removes; true when the filter key has no subscriber left (a route to withdraw).
    fn remove(&mut self, key: &ParsedFilter, client: &str) -> bool {
        let (gone, empty) = {
            let members = self.members(key);
            (members.remove(client).is_some(), members.is_empty())
        };
        if empty {
            match &key.share {
                Some(g) => {
                    self.shared.remove(&(g.clone(), key.filter.clone()));
                }
                None => {
                    self.wild.remove(&key.filter);
                    self.exact.remove(&key.filter);
                }
            }
        }
        gone && empty
    }

    fn routes(&self) -> Vec<ParsedFilter> {
        let plain = self
            .exact
            .keys()
            .map(String::as_str)
            .chain(self.wild.iter().map(|(f, _)| f))
            .map(|f| ParsedFilter {
                share: None,
                filter: f.to_string(),
            });
        let shared = self.shared.keys().map(|(g, f)| ParsedFilter {
            share: Some(g.clone()),
            filter: f.clone(),
        });
        plain.chain(shared).collect()
    }
}

/// Routes of one remote node.
#[derive(Default)]
struct NodeRoutes {
    exact: HashSet<String>,
    wild: FilterTrie<()>,
    shared: HashSet<(String, String)>,
}

impl NodeRoutes {
    fn apply(&mut self, key: ParsedFilter, add: bool) {
        match key.share {
            Some(g) => {
                let k = (g, key.filter);
                if add {
                    self.shared.insert(k);
                } else {
                    self.shared.remove(&k);
                }
            }
            None => match (topic::has_wildcard(&key.filter), add) {
                (true, true) => *self.wild.entry(&key.filter, || ()) = (),
                (true, false) => {
                    self.wild.remove(&key.filter);
                }
                (false, true) => {
                    self.exact.insert(key.filter);
                }
                (false, false) => {
                    self.exact.remove(&key.filter);
                }
            },
        }
    }

    fn matches_plain(&self, topic_name: &str) -> bool {
        self.exact.contains(topic_name) || self.wild.matches_any(topic_name)
    }
}

/// Counters of the MQTT front (`GET /mqtt/stats`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Open connections.
    pub connections: AtomicUsize,
    /// Connections accepted since start.
    pub connects_total: AtomicU64,
    /// PUBLISH packets received from clients.
    pub publishes_in: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub publishes_out: AtomicU64,
    /// QoS 0 deliveries dropped because a session queue was full.
    pub dropped_qos0: AtomicU64,
    /// QoS 1/2 deliveries dropped at the hard queue bound.
    pub dropped_queue_full: AtomicU64,
    /// Expired messages not delivered.
    pub expired: AtomicU64,
    /// Messages forwarded to other nodes.
    pub forwarded_out: AtomicU64,
    /// Messages received from other nodes.
    pub forwarded_in: AtomicU64,
    /// QoS 1/2 forwards dropped unacknowledged (a peer silent for too long).
    pub forward_dropped: AtomicU64,
    /// Connections closed for protocol errors or bad input.
    pub protocol_errors: AtomicU64,
    /// Connections refused by the per-listener rate limit.
    pub rate_limited: AtomicU64,
    /// Requests on reserved topics refused because their handler's queue was full.
    pub reserved_refused: AtomicU64,
}

/// A publish to a reserved topic that a handler of the node serves (shadow
/// requests, `$aws/things/...`), queued for it. The broker holds only the sending
/// end, so a handler (which holds the node's service, which holds this broker)
/// never makes an `Arc` cycle with it.
#[derive(Debug)]
pub struct ReservedRequest {
    /// The MQTT client that published it; `None` for the node's own API (HTTP publish).
    pub client_id: Option<String>,
    /// The request.
    pub message: Message,
}

/// What became of a publish to a `$` topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservedOffer {
    /// A handler serves the topic and has it queued.
    Queued,
    /// A handler serves the topic but its queue is full: nothing was done.
    Full,
    /// The handler of the topic has stopped (the node is shutting down).
    Stopped,
    /// No handler serves the topic: clients may not publish on it.
    NotServed,
}

/// One handler's topics and queue.
struct ReservedRoute {
    serves: fn(&str) -> bool,
    queue: mpsc::Sender<ReservedRequest>,
}

/// What storing a retained message resolves to: done, or the reason code and the
/// reason why not.
pub type StoreFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), (crate::codec::AckCode, String)>> + Send>,
>;

/// Retained messages: replicated state, read locally.
pub trait RetainedStore: Send + Sync {
    /// Retained messages whose topic matches `filter`.
    fn matching(&self, filter: &str) -> Vec<Message>;
    /// Stores (or, with an empty payload, clears) the retained message of a
    /// topic; resolves once it is committed, or with the reason code and the
    /// reason why not (`QuotaExceeded` when a quota is full).
    fn store(&self, message: Message) -> StoreFuture;
}

struct Inner {
    node_id: u64,
    limits: MqttLimits,
    clock: SharedClock,
    entropy: SharedEntropy,
    authorizer: Arc<dyn Authorizer>,
    sessions: Mutex<HashMap<String, SessionSlot>>,
    index: Mutex<SubIndex>,
    remote: Mutex<BTreeMap<u64, NodeRoutes>>,
    next_epoch: AtomicU64,
    /// Turns for picking a node of a share group, and a member on this node:
    /// separate, so each advances once per message and both rotate.
    round_robin_nodes: AtomicU64,
    round_robin_members: AtomicU64,
    stats: Stats,
    links: Links,
    reserved: Mutex<Vec<ReservedRoute>>,
    retained: Mutex<Option<Arc<dyn RetainedStore>>>,
    /// Pending session claims of this node: client id → (peers still to answer,
    /// handed-over state, wake-up).
    claims: Mutex<HashMap<String, Claim>>,
}

struct Claim {
    waiting: BTreeSet<u64>,
    state: Option<SessionWire>,
    done: Option<oneshot::Sender<()>>,
}

/// Why a CONNECT could not be given its session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The connection that held the client id did not let go of its session in
    /// time (it is stuck writing to a client that does not read).
    #[error("the previous connection of this client id did not end")]
    PreviousConnectionStuck,
}

/// The node's broker. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

/// A granted CONNECT: the session, locked for this connection.
pub struct Grant {
    /// Identifies this connection among the session's connections.
    pub epoch: u64,
    /// The session's state, held until the connection ends.
    pub core: OwnedMutexGuard<SessionCore>,
    /// Messages for the session.
    pub mailbox: Arc<Mailbox>,
    /// Fires when the connection must end.
    pub kick: oneshot::Receiver<Kick>,
    /// An earlier session was resumed.
    pub session_present: bool,
}

/// Result of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// Local subscriptions that got it.
    pub local: usize,
    /// Nodes it was forwarded to.
    pub remote: usize,
}

impl Broker {
    /// A broker for node `node_id`; ids it makes up are drawn from `entropy`.
    pub fn new(
        node_id: u64,
        limits: MqttLimits,
        clock: SharedClock,
        entropy: SharedEntropy,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        let links = Links::new(entropy.next_u64());
        Broker {
            inner: Arc::new(Inner {
                node_id,
                limits,
                clock,
                entropy,
                authorizer,
                sessions: Mutex::default(),
                index: Mutex::default(),
                remote: Mutex::default(),
                next_epoch: AtomicU64::new(1),
                round_robin_nodes: AtomicU64::new(0),
                round_robin_members: AtomicU64::new(0),
                stats: Stats::default(),
                links,
                reserved: Mutex::default(),
                retained: Mutex::default(),
                claims: Mutex::default(),
            }),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// Where the broker's ids come from.
    pub fn entropy(&self) -> &SharedEntropy {
        &self.inner.entropy
    }

    /// Limits.
    pub fn limits(&self) -> &MqttLimits {
        &self.inner.limits
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Milliseconds since the epoch, from the injected clock.
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The node links.
    pub fn links(&self) -> &Links {
        &self.inner.links
    }

    /// Routes publishes to the reserved topics `serves` accepts into a queue of
    /// `capacity` requests, and returns its receiving end for the handler.
    pub fn serve_reserved(
        &self,
        serves: fn(&str) -> bool,
        capacity: usize,
    ) -> mpsc::Receiver<ReservedRequest> {
        let (queue, requests) = mpsc::channel(capacity);
        lock(&self.inner.reserved).push(ReservedRoute { serves, queue });
        requests
    }

    /// Offers a publish on a `$` topic, from MQTT client `client_id` or (`None`)
    /// the node's API, to the handler that serves it. A queued request is also
    /// delivered to the topic's subscribers, as in AWS IoT, before the handler
    /// can see it (so they see a request before its reply).
    pub fn offer_reserved(&self, client_id: Option<&str>, message: Message) -> ReservedOffer {
        let queue = {
            let mut routes = lock(&self.inner.reserved);
            // A stopped handler's route goes: its topics are refused as stopped once.
            let found = routes
                .iter()
                .position(|r| (r.serves)(&message.topic))
                .map(|i| (i, routes[i].queue.clone()));
            match found {
                None => return ReservedOffer::NotServed,
                Some((i, queue)) if queue.is_closed() => {
                    routes.remove(i);
                    return ReservedOffer::Stopped;
                }
                Some((_, queue)) => queue,
            }
        };
        let offer = match queue.try_reserve() {
            Ok(slot) => {
                self.publish(message.clone(), client_id);
                slot.send(ReservedRequest {
                    client_id: client_id.map(str::to_string),
                    message,
                });
                ReservedOffer::Queued
            }
            Err(mpsc::error::TrySendError::Full(())) => {
                self.inner
                    .stats
                    .reserved_refused
                    .fetch_add(1, Ordering::Relaxed);
                ReservedOffer::Full
            }
            Err(mpsc::error::TrySendError::Closed(())) => ReservedOffer::Stopped,
        };
        offer
    }

    /// Sets the retained-message store.
    pub fn set_retained(&self, store: Arc<dyn RetainedStore>) {
        *lock(&self.inner.retained) = Some(store);
    }

    /// The retained-message store, if any.
    pub fn retained(&self) -> Option<Arc<dyn RetainedStore>> {
        lock(&self.inner.retained).clone()
    }

    /// The one authorization call.
    pub fn authorize(&self, identity: &Identity, action: Action, resource: &str) -> bool {
        self.inner.authorizer.authorize(identity, action, resource)
    }

    /// Claims `client_id` for a new connection: the connection holding it here or
    /// on another node is closed, and a persistent session (`clean_start` false)
    /// is resumed, from this node or handed over by another.
    pub async fn connect(
        &self,
        client_id: &str,
        clean_start: bool,
        expiry_secs: u32,
    ) -> Result<Grant, ConnectError> {
        let handed_over = self.claim_cluster_wide(client_id, clean_start).await;
        let epoch = self.inner.next_epoch.fetch_add(1, Ordering::Relaxed);
        let (kick_tx, kick_rx) = oneshot::channel();
        let (core, mailbox, mut present) = {
            let mut sessions = lock(&self.inner.sessions);
            if clean_start {
                if let Some(old) = sessions.remove(client_id) {
                    self.drop_session_subscriptions(client_id, old.core.clone());
                    if let Some(mut c) = old.conn {
                        if let Some(k) = c.kick.take() {
                            let _ = k.send(Kick::TakenOver);
                        }
                    }
                }
            }
            let slot = sessions
                .entry(client_id.to_string())
                .or_insert_with(SessionSlot::new);
            // Connected elsewhere on this node, or kept after a disconnect.
            let present = slot.conn.is_some() || slot.disconnected_at.is_some();
            if let Some(mut c) = slot.conn.take() {
                if let Some(k) = c.kick.take() {
                    let _ = k.send(Kick::TakenOver);
                }
            }
            slot.conn = Some(Connected {
                epoch,
                kick: Some(kick_tx),
            });
            slot.expiry_secs = expiry_secs;
            slot.disconnected_at = None;
            (slot.core.clone(), slot.mailbox.clone(), present)
        };
        let core = tokio::time::timeout(Duration::from_secs(5), core.lock_owned())
            .await
            .map_err(|_| ConnectError::PreviousConnectionStuck)?;
        let mut grant = Grant {
            epoch,
            core,
            mailbox,
            kick: kick_rx,
            session_present: false,
        };
        if let Some(state) = handed_over {
            if !clean_start {
                self.install(client_id, &mut grant, state);
                present = true;
            }
        }
        grant.session_present = present && !clean_start;
        Ok(grant)
    }

    fn install(&self, client_id: &str, grant: &mut Grant, state: SessionWire) {
        for (raw, opts) in state.subscriptions {
            if let Ok(key) = topic::parse_filter(&raw, self.inner.limits.topic) {
                self.index_add(&key, client_id, opts);
                grant.core.subscriptions.insert(raw, opts);
            }
        }
        let now = Instant::now();
        let mut q = lock(&grant.mailbox.queue);
        for m in state.messages {
            q.push_back(m.into_delivery(now));
        }
    }

    /// Ends a connection. A persistent session stays (with its subscriptions, and
    /// queue) until its expiry; otherwise it is removed. Unacknowledged messages
    /// stay in `core` for redelivery.
    pub fn disconnect(
        &self,
        client_id: &str,
        grant_epoch: u64,
        core: OwnedMutexGuard<SessionCore>,
    ) {
        let mut sessions = lock(&self.inner.sessions);
        let Some(slot) = sessions.get_mut(client_id) else {
            return;
        };
        if slot.conn.as_ref().map(|c| c.epoch) != Some(grant_epoch) {
            // Taken over: the new connection owns the slot now.
            return;
        }
        slot.conn = None;
        if slot.expiry_secs == 0 {
            sessions.remove(client_id);
            drop(sessions);
            let subs: Vec<String> = core.subscriptions.keys().cloned().collect();
            drop(core);
            let mut changes = Vec::new();
            {
                let mut index = lock(&self.inner.index);
                for raw in subs {
                    if let Ok(key) = topic::parse_filter(&raw, self.inner.limits.topic) {
                        if index.remove(&key, client_id) {
                            changes.push(key);
                        }
                    }
                }
            }
            for key in changes {
                self.inner.links.broadcast(LinkMessage::RouteDel(key));
            }
        } else {
            slot.disconnected_at = Some(Instant::now());
        }
    }

    /// Sets a session's expiry (MQTT 5 DISCONNECT may change it).
    pub fn set_expiry(&self, client_id: &str, expiry_secs: u32) {
        if let Some(slot) = lock(&self.inner.sessions).get_mut(client_id) {
            slot.expiry_secs = expiry_secs;
        }
    }

    /// Is `epoch` still the connection of `client_id` (or has it reconnected)?
    pub fn is_current(&self, client_id: &str, epoch: u64) -> bool {
        match lock(&self.inner.sessions).get(client_id) {
            None => true,
            Some(s) => s.conn.as_ref().is_none_or(|c| c.epoch == epoch),
        }
    }

    /// Closes every connection (node shutdown).
    pub fn kick_all(&self) {
        for slot in lock(&self.inner.sessions).values_mut() {
            if let Some(c) = slot.conn.as_mut() {
                if let Some(k) = c.kick.take() {
                    let _ = k.send(Kick::Shutdown);
                }
            }
        }
    }

    /// Removes sessions whose expiry has passed. Called periodically.
    pub fn expire_sessions(&self) {
        let now = Instant::now();
        let expired: Vec<(String, Arc<tokio::sync::Mutex<SessionCore>>)> = {
            let mut sessions = lock(&self.inner.sessions);
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| {
                    s.conn.is_none()
                        && s.disconnected_at.is_some_and(|at| {
                            now.duration_since(at) >= Duration::from_secs(u64::from(s.expiry_secs))
                        })
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| sessions.remove(&id).map(|s| (id, s.core)))
                .collect()
        };
        for (id, core) in expired {
            tracing::debug!(client_id = %id, "session expired");
            self.drop_session_subscriptions(&id, core);
        }
    }

    fn drop_session_subscriptions(
        &self,
        client_id: &str,
        core: Arc<tokio::sync::Mutex<SessionCore>>,
    ) {
        // The session is not connected, so its lock is free; if not, the
        // connection that holds it removes its own subscriptions when it ends.
        let Ok(core) = core.try_lock() else {
            return;
        };
        let mut changes = Vec::new();
        {
            let mut index = lock(&self.inner.index);
            for raw in core.subscriptions.keys() {
                if let Ok(key) = topic::parse_filter(raw, self.inner.limits.topic) {
                    if index.remove(&key, client_id) {
                        changes.push(key);
                    }
                }
            }
        }
        for key in changes {
            self.inner.links.broadcast(LinkMessage::RouteDel(key));
        }
    }

    fn index_add(&self, key: &ParsedFilter, client_id: &str, opts: SubOptions) {
        let new = lock(&self.inner.index).add(key, client_id, opts);
        if new {
            self.inner
                .links
                .broadcast(LinkMessage::RouteAdd(key.clone()));
        }
    }

    /// Adds a subscription to the index (the session records it in its core).
    pub fn subscribe(&self, client_id: &str, key: &ParsedFilter, opts: SubOptions) {
        self.index_add(key, client_id, opts);
    }

    /// Removes a subscription from the index.
    pub fn unsubscribe(&self, client_id: &str, key: &ParsedFilter) {
        let gone = lock(&self.inner.index).remove(key, client_id);
        if gone {
            self.inner
                .links
                .broadcast(LinkMessage::RouteDel(key.clone()));
        }
    }

    /// This node's routes, for a full sync to a peer.
    pub fn local_routes(&self) -> Vec<ParsedFilter> {
        lock(&self.inner.index).routes()
    }

    /// Publishes a message from a client (or the node itself when `publisher` is
    /// `None`) to every matching subscription in the cluster.
    pub fn publish(&self, message: Message, publisher: Option<&str>) -> Routed {
        let expires_at = message
            .props
            .message_expiry
            .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        let local_shared_choice = self.choose_shared_nodes(&message.topic);
        // Forward first so remote subscribers are not behind local queueing work.
        let mut remote_nodes: BTreeMap<u64, Vec<(String, String)>> = BTreeMap::new();
        {
            let remote = lock(&self.inner.remote);
            for (node, routes) in remote.iter() {
                if routes.matches_plain(&message.topic) {
                    remote_nodes.entry(*node).or_default();
                }
            }
        }
        let mut local_groups = Vec::new();
        for (group, node) in local_shared_choice {
            if node == self.inner.node_id {
                local_groups.push(group);
            } else {
                remote_nodes.entry(node).or_default().push(group);
            }
        }
        let remote_count = remote_nodes.len();
        if remote_count > 0 {
            let wire = WireMessage::from_message(&message, expires_at);
            for (node, groups) in remote_nodes {
                if self.inner.links.send(
                    node,
                    LinkMessage::Publish {
                        message: wire.clone(),
                        publisher: publisher.map(str::to_string),
                        shared: groups,
                        seq: 0,
                    },
                ) {
                    self.inner
                        .stats
                        .forwarded_out
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let local = self.deliver_local(&message, publisher, expires_at, true, &local_groups);
        Routed {
            local,
            remote: remote_count,
        }
    }

    /// Delivers a message forwarded by another node.
    pub fn deliver_forwarded(
        &self,
        message: WireMessage,
        publisher: Option<String>,
        shared: Vec<(String, String)>,
    ) {
        self.inner
            .stats
            .forwarded_in
            .fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let expires_at = message.expires_at(now);
        let message = message.into_message();
        self.deliver_local(&message, publisher.as_deref(), expires_at, true, &shared);
    }

    /// For each share group matching `topic` (here or elsewhere), the node that
    /// gets this message: round robin over the nodes with members.
    fn choose_shared_nodes(&self, topic_name: &str) -> Vec<((String, String), u64)> {
        let mut groups: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
        for (g, f) in lock(&self.inner.index).shared.keys() {
            if topic::matches(f, topic_name) {
                groups
                    .entry((g.clone(), f.clone()))
                    .or_default()
                    .push(self.inner.node_id);
            }
        }
        for (node, routes) in lock(&self.inner.remote).iter() {
            // A share group's message goes to a member that can get it now.
            if !self.inner.links.is_connected(*node) {
                continue;
            }
            for (g, f) in &routes.shared {
                if topic::matches(f, topic_name) {
                    groups
                        .entry((g.clone(), f.clone()))
                        .or_default()
                        .push(*node);
                }
            }
        }
        groups
            .into_iter()
            .map(|(key, mut nodes)| {
                nodes.sort_unstable();
                let turn = self.inner.round_robin_nodes.fetch_add(1, Ordering::Relaxed);
                let node = nodes[(turn % nodes.len() as u64) as usize];
                (key, node)
            })
            .collect()
    }

    fn deliver_local(
        &self,
        message: &Message,
        publisher: Option<&str>,
        expires_at: Option<Instant>,
        plain: bool,
        shared_groups: &[(String, String)],
    ) -> usize {
        // One delivery per client: the highest QoS of its matching subscriptions
        // and all their identifiers.
        let mut targets: BTreeMap<String, (SubOptions, Vec<usize>)> = BTreeMap::new();
        let mut add = |client: &str, opts: &SubOptions| {
            if opts.no_local && publisher == Some(client) {
                return;
            }
            let e = targets
                .entry(client.to_string())
                .or_insert((*opts, Vec::new()));
            if opts.qos > e.0.qos {
                e.0.qos = opts.qos;
            }
            e.0.retain_as_published |= opts.retain_as_published;
            if let Some(id) = opts.id {
                e.1.push(id);
            }
        };
        {
            let index = lock(&self.inner.index);
            if plain {
                if let Some(members) = index.exact.get(&message.topic) {
                    for (c, o) in members {
                        add(c, o);
                    }
                }
                index.wild.for_each_match(&message.topic, |_, members| {
                    for (c, o) in members {
                        add(c, o);
                    }
                });
            }
            for key in shared_groups {
                if let Some(members) = index.shared.get(key) {
                    if members.is_empty() {
                        continue;
                    }
                    let turn = self
                        .inner
                        .round_robin_members
                        .fetch_add(1, Ordering::Relaxed) as usize;
                    if let Some((c, o)) = members.iter().nth(turn % members.len()) {
                        add(c, o);
                    }
                }
            }
        }
        if targets.is_empty() {
            return 0;
        }
        let sessions = lock(&self.inner.sessions);
        let mut delivered = 0;
        for (client, (opts, ids)) in targets {
            let Some(slot) = sessions.get(&client) else {
                continue;
            };
            let qos = message.qos.min(opts.qos());
            let online = slot.conn.is_some();
            if !online && qos == Qos::AtMostOnce {
                continue;
            }
            let delivery = Delivery {
                message: Message {
                    qos,
                    retain: message.retain && opts.retain_as_published,
                    ..message.clone()
                },
                subscription_ids: ids,
                expires_at,
            };
            if self.enqueue(slot, delivery) {
                delivered += 1;
            }
        }
        delivered
    }

    fn enqueue(&self, slot: &SessionSlot, delivery: Delivery) -> bool {
        {
            let mut q = lock(&slot.mailbox.queue);
            let limits = &self.inner.limits;
            if delivery.message.qos == Qos::AtMostOnce && q.len() >= limits.max_queued_qos0 {
                self.inner
                    .stats
                    .dropped_qos0
                    .fetch_add(1, Ordering::Relaxed);
                return false;
            }
            if q.len() >= limits.max_queued_messages {
                self.inner
                    .stats
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                return false;
            }
            q.push_back(delivery);
        }
        slot.mailbox.notify.notify_one();
        true
    }

    /// Queues a message for one session only (retained messages on subscribe).
    pub fn deliver_to(&self, client_id: &str, delivery: Delivery) {
        if let Some(slot) = lock(&self.inner.sessions).get(client_id) {
            self.enqueue(slot, delivery);
        }
    }

    // ---- cluster links -------------------------------------------------------

    /// A peer's stream to us opened: it sends its full routes first.
    pub fn peer_routes_reset(&self, node: u64, routes: Vec<ParsedFilter>) {
        let mut table = NodeRoutes::default();
        for r in routes {
            table.apply(r, true);
        }
        lock(&self.inner.remote).insert(node, table);
    }

    /// A route change from a peer.
    pub fn peer_route(&self, node: u64, key: ParsedFilter, add: bool) {
        lock(&self.inner.remote)
            .entry(node)
            .or_default()
            .apply(key, add);
    }

    /// A peer's stream to us ended. Its routes are kept: messages for it wait in
    /// its link queue (bounded) and are delivered when the link is back, which
    /// then re-sends the full table. A removed member's routes go with
    /// [`Broker::forget_peer`].
    pub fn peer_gone(&self, node: u64) {
        // A claim waiting for this peer's answer need not wait any longer.
        let mut claims = lock(&self.inner.claims);
        for claim in claims.values_mut() {
            claim.waiting.remove(&node);
            if claim.waiting.is_empty() {
                if let Some(done) = claim.done.take() {
                    let _ = done.send(());
                }
            }
        }
    }

    /// A node left the cluster: forget its routes.
    pub fn forget_peer(&self, node: u64) {
        lock(&self.inner.remote).remove(&node);
    }

    /// Nodes whose routes we know (their stream to us is, or was, up).
    pub fn peers_with_routes(&self) -> Vec<u64> {
        lock(&self.inner.remote).keys().copied().collect()
    }

    async fn claim_cluster_wide(&self, client_id: &str, clean_start: bool) -> Option<SessionWire> {
        let peers: BTreeSet<u64> = self
            .peers_with_routes()
            .into_iter()
            .filter(|p| self.inner.links.is_connected(*p))
            .collect();
        if peers.is_empty() {
            return None;
        }
        let msg = LinkMessage::Claim {
            client_id: client_id.to_string(),
            node: self.inner.node_id,
            want_state: !clean_start,
        };
        if clean_start {
            // Only over live links: a claim queued for a peer that is down would
            // arrive later and could close a newer connection there.
            for p in &peers {
                self.inner.links.send(*p, msg.clone());
            }
            return None;
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.claims).insert(
            client_id.to_string(),
            Claim {
                waiting: peers.clone(),
                state: None,
                done: Some(tx),
            },
        );
        for p in &peers {
            self.inner.links.send(*p, msg.clone());
        }
        let _ = tokio::time::timeout(self.inner.limits.claim_timeout, rx).await;
        lock(&self.inner.claims)
            .remove(client_id)
            .and_then(|c| c.state)
    }

    /// Another node claims `client_id`: close our connection, and hand over the
    /// session if it asked for it.
    pub async fn on_claim(&self, client_id: String, node: u64, want_state: bool) {
        let slot = {
            let mut sessions = lock(&self.inner.sessions);
            match sessions.get_mut(&client_id) {
                None => None,
                Some(slot) => {
                    if let Some(mut c) = slot.conn.take() {
                        if let Some(k) = c.kick.take() {
                            let _ = k.send(Kick::TakenOver);
                        }
                    }
                    let epoch = self.inner.next_epoch.fetch_add(1, Ordering::Relaxed);
                    // Mark the slot as moved, so the ending connection does not
                    // publish its will as if it were the last.
                    slot.conn = Some(Connected { epoch, kick: None });
                    sessions.remove(&client_id)
                }
            }
        };
        let state = match slot {
            None => None,
            Some(slot) => {
                // Wait for the connection to end and release the session.
                let core =
                    tokio::time::timeout(Duration::from_secs(5), slot.core.clone().lock_owned())
                        .await
                        .ok();
                let mut wire = SessionWire {
                    expiry_secs: slot.expiry_secs,
                    ..Default::default()
                };
                let mut changes = Vec::new();
                if let Some(core) = core {
                    let mut index = lock(&self.inner.index);
                    for (raw, opts) in &core.subscriptions {
                        wire.subscriptions.push((raw.clone(), *opts));
                        if let Ok(key) = topic::parse_filter(raw, self.inner.limits.topic) {
                            if index.remove(&key, &client_id) {
                                changes.push(key);
                            }
                        }
                    }
                    for pkid in &core.inflight_order {
                        if let Some(o) = core.inflight.get(pkid) {
                            wire.messages.push(WireMessage::from_delivery(&o.delivery));
                        }
                    }
                }
                for d in slot.mailbox.take(usize::MAX) {
                    wire.messages.push(WireMessage::from_delivery(&d));
                }
                for key in changes {
                    self.inner.links.broadcast(LinkMessage::RouteDel(key));
                }
                Some(wire)
            }
        };
        if want_state {
            self.inner.links.send(
                node,
                LinkMessage::ClaimReply {
                    client_id,
                    from: self.inner.node_id,
                    state,
                },
            );
        }
    }

    /// A peer answered our claim.
    pub fn on_claim_reply(&self, client_id: &str, from: u64, state: Option<SessionWire>) {
        let mut claims = lock(&self.inner.claims);
        if let Some(claim) = claims.get_mut(client_id) {
            claim.waiting.remove(&from);
            if state.is_some() {
                claim.state = state;
            }
            if claim.waiting.is_empty() {
                if let Some(done) = claim.done.take() {
                    let _ = done.send(());
                }
            }
        }
    }

    /// A message the node itself publishes (events, shadow replies).
    pub fn publish_json(&self, topic_name: String, body: &serde_json::Value) {
        let message = Message {
            topic: topic_name,
            payload: serde_json::to_vec(body).unwrap_or_default().into(),
            qos: Qos::AtLeastOnce,
            retain: false,
            props: MessageProps::default(),
        };
        self.publish(message, None);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
