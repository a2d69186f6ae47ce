//! One Fleetcore Raft node: storage, openraft, the peer network, and the operations
//! the rest of the node uses. Any node accepts any request: writes and membership
//! changes are forwarded to the leader, linearizable reads ask the leader for a
//! read index and wait until the local state machine has applied it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{ChangeMembers, Config, ReadPolicy, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::Instrument;

use fleetcore_model::ClusterCommand;
use fleetcore_model::{Command, Outcome, RequestId};
use fleetcore_storage::state_machine::SharedState;
use fleetcore_storage::{LogStore, NodeInfo, StorageOptions};

use crate::error::RaftError;
use crate::network::{ClusterId, Network};
use crate::pb::Blob;
use crate::transport::Connector;
use crate::wire::{self, ForwardRequest, ForwardResponse};
use crate::Raft;

/// Timing and snapshot settings.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// Leader heartbeat.
    pub heartbeat: Duration,
    /// Election timeout range; a follower that hears nothing for this long campaigns.
    pub election_timeout: (Duration, Duration),
    /// Build a snapshot after this many applied entries since the last one; the log
    /// before it is then purged.
    pub snapshot_every_entries: u64,
    /// Entries kept in the log behind a snapshot (slow followers catch up from the log).
    pub keep_behind_snapshot: u64,
    /// Bound on a client operation (propose, read, membership step).
    pub request_timeout: Duration,
    /// Storage durability.
    pub storage: StorageOptions,
}

impl Default for RaftOptions {
    fn default() -> Self {
        RaftOptions {
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(400), Duration::from_millis(800)),
            snapshot_every_entries: 20_000,
            keep_behind_snapshot: 5_000,
            request_timeout: Duration::from_secs(5),
            storage: StorageOptions::default(),
        }
    }
}

/// One member as `fleetcore cluster status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberStatus {
    /// Node id.
    pub id: u64,
    /// Raft gRPC address.
    pub raft_addr: String,
    /// HTTP address.
    pub http_addr: String,
    /// "voter" or "learner".
    pub role: String,
    /// Highest log index known replicated to it (the leader knows; others report null).
    pub matched_index: Option<u64>,
    /// How far behind the leader's last log index it is, when known.
    pub lag: Option<u64>,
    /// Its data dir's incarnation (hex) as the applied state recorded it; null
    /// until recorded, and until then a wipe of this member goes unnoticed.
    pub incarnation: Option<String>,
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterStatus {
    /// The cluster id, once known.
    pub cluster_id: Option<String>,
    /// This node.
    pub node_id: u64,
    /// This node's role: Leader, Follower, Candidate, Learner.
    pub state: String,
    /// Current leader, if known.
    pub leader_id: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Last log index on this node.
    pub last_log_index: Option<u64>,
    /// Committed index known to this node.
    pub committed_index: Option<u64>,
    /// Applied index on this node.
    pub applied_index: Option<u64>,
    /// Last log index covered by this node's latest snapshot.
    pub snapshot_index: Option<u64>,
    /// Log entries up to this index have been purged on this node.
    pub purged_index: Option<u64>,
    /// Members with their addresses.
    pub members: Vec<MemberStatus>,
    /// SHA-256 of this node's applied state: equal on replicas at the same index.
    pub state_digest: String,
}

struct Inner<C: Connector> {
    id: u64,
    info: NodeInfo,
    raft: Raft<C::Runtime>,
    state: SharedState,
    network: Network<C>,
    cluster: ClusterId,
    options: RaftOptions,
    relay: std::sync::OnceLock<std::sync::Weak<dyn RelayHandler>>,
    /// This process's request-id origin: drawn at start from the runtime's
    /// generator (seeded in simulations), so ids never repeat across restarts.
    origin: u64,
    next_seq: std::sync::atomic::AtomicU64,
    /// This data dir's identity (see `LogStore::incarnation`).
    incarnation: u64,
    /// The data dir (incoming snapshots are written here).
    data_dir: std::path::PathBuf,
}

/// Receives the `Relay` streams of peers: non-Raft node-to-node traffic, opaque
/// to this crate.
pub trait RelayHandler: Send + Sync + 'static {
    /// One message of stream `stream` from node `from`.
    fn message(&self, from: u64, stream: u64, data: &[u8]);
    /// Stream `stream` from node `from` ended.
    fn closed(&self, from: u64, stream: u64);
}

/// A running Raft node. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode<C: Connector> {
    inner: Arc<Inner<C>>,
}

/// How long to wait between attempts while there is no leader.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

impl<C: Connector> RaftNode<C> {
    /// Opens storage in `dir` and starts openraft. Refuses data written by another node id.
    pub async fn start(
        id: u64,
        info: NodeInfo,
        dir: &Path,
        options: RaftOptions,
        connector: C,
    ) -> Result<Self, RaftError> {
        let (log_store, sm_store) = fleetcore_storage::open(dir, options.storage)?;
        check_node_id(&log_store, id, dir)?;
        let incarnation = match log_store.incarnation()? {
            Some(incarnation) => incarnation,
            None => {
                use openraft::AsyncRuntime;
                use rand::Rng;
                let incarnation = C::Runtime::thread_rng().next_u64();
                log_store.set_incarnation(incarnation)?;
                incarnation
            }
        };
        let cluster = ClusterId::load(log_store.clone())?;
        let state = sm_store.shared();
        let network = Network::new(
            connector,
            cluster.clone(),
            id,
            incarnation,
            state.clone(),
            options.request_timeout,
            options.storage,
        );
        let config = Config {
            cluster_name: "fleetcore".into(),
            heartbeat_interval: options.heartbeat.as_millis() as u64,
            election_timeout_min: options.election_timeout.0.as_millis() as u64,
            election_timeout_max: options.election_timeout.1.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(options.snapshot_every_entries),
            max_in_snapshot_log_to_keep: options.keep_behind_snapshot,
            install_snapshot_timeout: 60_000,
            max_payload_entries: 1000,
            enable_pre_vote: Some(true),
            // A follower whose data dir was wiped comes back with an empty log. Once
            // its incarnation is recorded, its answers are refused (see
            // `Network::check_answer`) and openraft never sees the log go backwards;
            // this stays for the window before a node's first registration, where
            // the leader's replication progress would otherwise refuse to move
            // backwards (a debug assertion in openraft crashes it).
            allow_log_reversion: Some(true),
            ..Default::default()
        };
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| RaftError::Internal(e.to_string()))?,
        );
        let raft = openraft::Raft::new(id, config, network.clone(), log_store, sm_store)
            .await
            .map_err(|e| RaftError::Internal(e.to_string()))?;
        let node = RaftNode {
            inner: Arc::new(Inner {
                id,
                info,
                raft,
                state,
                network,
                cluster,
                options,
                relay: std::sync::OnceLock::new(),
                origin: {
                    use openraft::AsyncRuntime;
                    use rand::Rng;
                    C::Runtime::thread_rng().next_u64()
                },
                next_seq: std::sync::atomic::AtomicU64::new(1),
                incarnation,
                data_dir: dir.to_path_buf(),
            }),
        };
        tokio::spawn(record_incarnation(Arc::downgrade(&node.inner)));
        Ok(node)
    }

    /// This data dir's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.inner.incarnation
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// How this node's storage writes (and whether file I/O runs inline).
    pub fn storage_options(&self) -> fleetcore_storage::StorageOptions {
        self.inner.options.storage
    }

    /// Forms a new cluster of `members` (etcd-style static bootstrap) unless this
    /// node's storage already belongs to one. Every initial member calls this with
    /// the same arguments: all record the cluster id, the lowest id initializes.
    pub async fn bootstrap(
        &self,
        cluster_id: &str,
        members: BTreeMap<u64, NodeInfo>,
    ) -> Result<(), RaftError> {
        self.inner.cluster.adopt(cluster_id)?;
        if self.is_initialized().await? {
            return Ok(());
        }
        if !members.contains_key(&self.inner.id) {
            return Err(RaftError::Membership(format!(
                "node {} is not among the initial members {:?}",
                self.inner.id,
                members.keys().collect::<Vec<_>>()
            )));
        }
        // Only the lowest id initializes; the others wait for its leader to reach them.
        // (openraft allows initializing every member, but concurrent initialization
        // tripped an internal assertion of this openraft alpha in our tests.)
        if members.keys().next() != Some(&self.inner.id) {
            tracing::info!("waiting for the lowest-id initial member to form the cluster");
            return Ok(());
        }
        match self.inner.raft.initialize(members).await {
            Ok(()) => Ok(()),
            // Another member initialized first and reached us: nothing to do.
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => Ok(()),
            Err(e) => Err(RaftError::Internal(e.to_string())),
        }
    }

    /// Whether this node's storage holds a cluster (a log or a vote).
    pub async fn is_initialized(&self) -> Result<bool, RaftError> {
        self.inner
            .raft
            .is_initialized()
            .await
            .map_err(|e| RaftError::Internal(e.to_string()))
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// This node's addresses.
    pub fn info(&self) -> &NodeInfo {
        &self.inner.info
    }

    /// The openraft handle.
    pub fn raft(&self) -> &Raft<C::Runtime> {
        &self.inner.raft
    }

    /// The applied state, for reads.
    pub fn state(&self) -> &SharedState {
        &self.inner.state
    }

    /// The cluster identity.
    pub fn cluster(&self) -> &ClusterId {
        &self.inner.cluster
    }

    /// Every member (voters and learners) with its addresses, from the local
    /// membership config: cheap, no I/O.
    pub fn members(&self) -> Vec<(u64, NodeInfo)> {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, info)| (*id, info.clone()))
            .collect()
    }

    /// Installs the handler of peers' relay streams (once). The node holds it
    /// weakly and the caller keeps it alive: a handler usually reaches back to this
    /// node (through the broker and the service), and a strong reference would make
    /// a cycle that keeps the database open after the node stops.
    pub fn set_relay_handler(&self, handler: &Arc<dyn RelayHandler>) {
        let _ = self.inner.relay.set(Arc::downgrade(handler));
    }

    /// The relay handler, if installed.
    pub fn relay_handler(&self) -> Option<Arc<dyn RelayHandler>> {
        self.inner.relay.get().and_then(std::sync::Weak::upgrade)
    }

    /// Streams `messages` to the peer at `addr` over one `Relay` call; returns when
    /// the stream ends or breaks.
    pub async fn relay_to(
        &self,
        addr: &str,
        messages: impl futures::Stream<Item = Vec<u8>> + Send + 'static,
    ) -> Result<(), RaftError> {
        use futures::StreamExt;
        let mut client = self.inner.network.client(addr);
        let mut request = self
            .inner
            .network
            .request(messages.map(|data| Blob { data }), Duration::from_secs(0));
        // A relay stream lives as long as the link: no deadline.
        request.metadata_mut().remove("grpc-timeout");
        client
            .relay(request)
            .await
            .map(|_| ())
            .map_err(|s| RaftError::PeerLink(s.message().to_string()))
    }

    /// Whether this node believes it leads (cheap; not confirmed by a quorum).
    pub fn is_leader(&self) -> bool {
        self.inner.raft.metrics().borrow_watched().current_leader == Some(self.inner.id)
    }

    fn leader(&self) -> Option<(u64, NodeInfo)> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let leader = metrics.current_leader?;
        let info = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()?;
        Some((leader, info))
    }

    /// A fresh request id of this process.
    pub fn next_request_id(&self) -> RequestId {
        RequestId {
            origin: self.inner.origin,
            seq: self
                .inner
                .next_seq
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Proposes `command` and returns its replicated outcome once committed and applied.
    /// From a follower the command is forwarded to the leader.
    ///
    /// The command is applied at most once: it travels with a fresh request id, so
    /// when a forward's reply is lost (the leader died or was cut off after it
    /// committed) the retry, with the same id, is answered with the first result.
    pub async fn propose(&self, command: Command) -> Result<Outcome, RaftError> {
        let command = match command {
            already @ Command::Request { .. } => already,
            command => Command::Request {
                id: self.next_request_id(),
                command: Box::new(command),
            },
        };
        let span = tracing::debug_span!("propose", cmd = command.kind());
        match self
            .forward_or_local(ForwardRequest::Write(command))
            .instrument(span)
            .await?
        {
            ForwardResponse::Written(json) => {
                serde_json::from_str(&json).map_err(|e| RaftError::Wire(e.to_string()))
            }
            other => Err(RaftError::Wire(format!(
                "unexpected answer to a write: {other:?}"
            ))),
        }
    }

    /// Returns once this node's state reflects every write committed before the call
    /// (read-index through the leader). Errors within the request timeout when no
    /// leader can confirm its leadership, e.g. in a minority partition.
    pub async fn linearizable_read(&self) -> Result<(), RaftError> {
        let deadline = Instant::now() + self.inner.options.request_timeout;
        let index = match self.forward_or_local(ForwardRequest::ReadIndex).await? {
            ForwardResponse::ReadIndex(i) => i,
            other => {
                return Err(RaftError::Wire(format!(
                    "unexpected answer to a read: {other:?}"
                )))
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.inner
            .raft
            .wait(Some(remaining))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|_| {
                RaftError::Timeout(
                    self.inner.options.request_timeout,
                    "the read index to be applied",
                )
            })?;
        Ok(())
    }

    /// Adds a node: as a learner until it has caught up, then as a voter.
    pub async fn add_node(&self, id: u64, info: NodeInfo) -> Result<(), RaftError> {
        self.forward_or_local(ForwardRequest::AddNode { id, info })
            .await
            .map(|_| ())
    }

    /// Whether this node is in the membership it knows.
    fn is_member(&self) -> bool {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        m.membership_config
            .membership()
            .get_node(&self.inner.id)
            .is_some()
    }

    /// Whether the committed membership carries this node's current addresses.
    pub fn is_registered(&self) -> bool {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        m.committed_membership_config
            .membership()
            .get_node(&self.inner.id)
            == Some(&self.inner.info)
    }

    /// Makes the membership carry this node's current addresses (e.g. its HTTP address
    /// after a static bootstrap, which only lists Raft addresses). Checks the
    /// *committed* membership: an uncommitted local entry may still be replaced by
    /// the leader's.
    pub async fn register_self(&self) -> Result<(), RaftError> {
        if self.is_registered() {
            return Ok(());
        }
        let request = ForwardRequest::SetNode {
            id: self.inner.id,
            info: self.inner.info.clone(),
        };
        self.forward_or_local(request).await.map(|_| ())
    }

    /// Removes a node from the voters and from the cluster.
    pub async fn remove_node(&self, id: u64) -> Result<(), RaftError> {
        self.forward_or_local(ForwardRequest::RemoveNode { id })
            .await
            .map(|_| ())
    }

    /// Runs `request` here if this node leads, else forwards it to the leader; retries
    /// until the request timeout while there is no leader or the leader moved.
    ///
    /// What is retried: anything the leader answered "not leader" in band (nothing
    /// was appended), and, for reads and exactly-once writes (a `Command::Request`,
    /// which a repeat cannot apply twice), also a request whose outcome is unknown
    /// (the connection broke, the entry was discarded on a leader change). A plain
    /// write or a membership change with an unknown outcome is never re-sent: the
    /// caller gets `LeaderUnreachable` (503, outcome unknown).
    async fn forward_or_local(
        &self,
        request: ForwardRequest,
    ) -> Result<ForwardResponse, RaftError> {
        // Adding a node waits for it to catch up, which may take a while.
        let timeout = match request {
            ForwardRequest::AddNode { .. } => self.inner.options.request_timeout * 7,
            _ => self.inner.options.request_timeout,
        };
        let deadline = Instant::now() + timeout;
        let retry_unknown = matches!(
            request,
            ForwardRequest::ReadIndex | ForwardRequest::Write(Command::Request { .. })
        );
        let mut last_error = String::from("no leader elected yet");
        // Whether an attempt may have reached a leader: then running out of time
        // means "outcome unknown", not "not applied".
        let mut maybe_applied = false;
        loop {
            if Instant::now() >= deadline {
                return Err(if maybe_applied {
                    RaftError::Timeout(
                        timeout,
                        "the leader to commit (retried with the same request id)",
                    )
                } else {
                    RaftError::NoLeader(format!("after {timeout:?}: {last_error}"))
                });
            }
            let attempt = match self.leader() {
                Some((leader, _)) if leader == self.inner.id => {
                    // A leader cut off from its majority would wait for a commit (or a
                    // quorum's heartbeat) indefinitely: bound it like a forwarded call.
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(remaining, self.serve_forwarded(request.clone()))
                        .await
                    {
                        Ok(result) => result,
                        Err(_) => Err(RaftError::Timeout(
                            timeout,
                            "a quorum to confirm the leader",
                        )),
                    }
                }
                Some((leader, info)) => self.send_forward(leader, &info, &request, deadline).await,
                None => Err(RaftError::NoLeader("no leader elected yet".into())),
            };
            match attempt {
                Err(RaftError::NoLeader(reason)) => {
                    last_error = reason;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e @ (RaftError::LeaderUnreachable(_) | RaftError::Timeout(..)))
                    if retry_unknown =>
                {
                    tracing::debug!(error = %e, "outcome unknown; retrying with the same request id");
                    maybe_applied = true;
                    last_error = e.to_string();
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                other => return other,
            }
        }
    }

    async fn send_forward(
        &self,
        leader: u64,
        info: &NodeInfo,
        request: &ForwardRequest,
        deadline: Instant,
    ) -> Result<ForwardResponse, RaftError> {
        let data = wire::encode(request)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut client = self.inner.network.client(&info.raft_addr);
        let rpc = self.inner.network.request(Blob { data }, remaining);
        match client.forward(rpc).await {
            Ok(reply) => match wire::decode(&reply.into_inner().data)? {
                // Answered in band: the request was not appended; safe to retry.
                ForwardResponse::NotLeader(reason) => {
                    Err(RaftError::NoLeader(format!("leader {leader}: {reason}")))
                }
                answer => Ok(answer),
            },
            Err(status) => match status.code() {
                tonic::Code::DeadlineExceeded => Err(RaftError::Timeout(
                    self.inner.options.request_timeout,
                    "the leader",
                )),
                tonic::Code::FailedPrecondition => {
                    Err(RaftError::ClusterMismatch(status.message().to_string()))
                }
                tonic::Code::Aborted => Err(RaftError::Membership(status.message().to_string())),
                tonic::Code::InvalidArgument => Err(RaftError::Wire(format!(
                    "leader {leader} refused the request: {}",
                    status.message()
                ))),
                // Everything else (the connection was refused or broke, HTTP/2
                // keep-alive timed out, the leader failed inside) may have happened
                // after the leader appended the entry: the outcome is unknown.
                _ => Err(RaftError::LeaderUnreachable(format!(
                    "leader {leader}: {:?}: {}",
                    status.code(),
                    status.message()
                ))),
            },
        }
    }

    /// A quorum confirms this node still leads (read-index); otherwise `NoLeader`.
    async fn confirm_leadership(&self) -> Result<(), RaftError> {
        match self
            .inner
            .raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(RaftError::NoLeader(format!(
                "node {} could not confirm it leads: {e}",
                self.inner.id
            ))),
        }
    }

    /// Serves a request as the leader. `NoLeader` means "not me (any more)".
    pub(crate) async fn serve_forwarded(
        &self,
        request: ForwardRequest,
    ) -> Result<ForwardResponse, RaftError> {
        let raft = &self.inner.raft;
        let not_leader = |e: &dyn std::fmt::Display| {
            RaftError::NoLeader(format!("node {} is not the leader: {e}", self.inner.id))
        };
        match request {
            ForwardRequest::Write(command) => match raft.client_write(command).await {
                Ok(resp) => ForwardResponse::written(&resp.data),
                // Refused before the entry was appended: safe to send again.
                Err(openraft::error::RaftError::APIError(
                    openraft::error::ClientWriteError::ForwardToLeader(f),
                )) => Err(not_leader(&f)),
                // Appended, then discarded from this node's log on a leader change:
                // another leader may still commit it (openraft: "commit status
                // unknown; the application must deduplicate").
                Err(e) if e.forward_to_leader().is_some() => Err(RaftError::LeaderUnreachable(
                    format!("node {}: {e}", self.inner.id),
                )),
                Err(e) => Err(RaftError::Internal(e.to_string())),
            },
            ForwardRequest::ReadIndex => {
                match raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                    Ok(read) => Ok(ForwardResponse::ReadIndex(read.log_id().index())),
                    Err(e) if e.forward_to_leader().is_some() => Err(not_leader(&e)),
                    // No quorum confirmed leadership: report it as "no leader" so callers
                    // retry until their deadline and then fail, never read stale data.
                    Err(e) => Err(RaftError::NoLeader(e.to_string())),
                }
            }
            ForwardRequest::AddNode { id, info } => {
                // The membership read below must be the cluster's current one: a
                // node restarted with a vote it once won believes it leads until
                // a quorum says otherwise (found by chaos seed 57).
                self.confirm_leadership().await?;
                let incarnation = self.check_new_member(id, &info).await?;
                let step = |e: openraft::error::RaftError<_, _>| -> RaftError {
                    if e.forward_to_leader().is_some() {
                        not_leader(&e)
                    } else {
                        RaftError::Membership(e.to_string())
                    }
                };
                let voters: BTreeSet<u64> = raft.voter_ids().collect();
                if voters.contains(&id) {
                    return Ok(ForwardResponse::Done);
                }
                // The operator's replacement: this data dir is the member from now on.
                let record = Command::Cluster(ClusterCommand::RecordIncarnation {
                    node: id,
                    incarnation,
                    replace: true,
                });
                match raft.client_write(record).await {
                    Ok(resp) => resp
                        .data
                        .map_err(|r| RaftError::Membership(r.to_string()))?,
                    Err(e) => return Err(step(e)),
                };
                tokio::time::timeout(
                    self.inner.options.request_timeout * 6,
                    raft.add_learner(id, info, true),
                )
                .await
                .map_err(|_| {
                    RaftError::Timeout(
                        self.inner.options.request_timeout * 6,
                        "the learner to catch up",
                    )
                })?
                .map_err(step)?;
                self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await?;
                tracing::info!(node = id, "added voter");
                Ok(ForwardResponse::Done)
            }
            ForwardRequest::SetNode { id, info } => {
                let known = raft
                    .metrics()
                    .borrow_watched()
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .cloned();
                match known {
                    None => Err(RaftError::Membership(format!("node {id} is not a member"))),
                    Some(k) if k == info => Ok(ForwardResponse::Done),
                    Some(_) => {
                        self.change_membership(
                            ChangeMembers::SetNodes(BTreeMap::from([(id, info)])),
                            true,
                        )
                        .await?;
                        Ok(ForwardResponse::Done)
                    }
                }
            }
            ForwardRequest::RemoveNode { id } => {
                self.confirm_leadership().await?;
                let voters: BTreeSet<u64> = raft.voter_ids().collect();
                if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(RaftError::Membership("cannot remove the last voter".into()));
                    }
                    self.change_membership(
                        ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                        false,
                    )
                    .await?;
                }
                self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await?;
                tracing::info!(node = id, "removed node");
                Ok(ForwardResponse::Done)
            }
        }
    }

    /// A membership change, retried while another one is still in progress (nodes
    /// registering their addresses at startup can overlap with an operator's change).
    async fn change_membership(
        &self,
        changes: ChangeMembers<u64, NodeInfo>,
        retain: bool,
    ) -> Result<(), RaftError> {
        let deadline = Instant::now() + self.inner.options.request_timeout;
        loop {
            match self
                .inner
                .raft
                .change_membership(changes.clone(), retain)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.forward_to_leader().is_some() => {
                    return Err(RaftError::NoLeader(format!(
                        "node {} is not the leader: {e}",
                        self.inner.id
                    )))
                }
                Err(openraft::error::RaftError::APIError(
                    openraft::error::ClientWriteError::ChangeMembershipError(
                        openraft::error::ChangeMembershipError::InProgress(_),
                    ),
                )) if Instant::now() < deadline => tokio::time::sleep(RETRY_PAUSE).await,
                Err(e) => return Err(RaftError::Membership(e.to_string())),
            }
        }
    }

    /// Before adding a node: it must answer, have the id it is added under, and not
    /// belong to another cluster. Returns its incarnation.
    async fn check_new_member(&self, id: u64, info: &NodeInfo) -> Result<u64, RaftError> {
        let mut client = self.inner.network.client(&info.raft_addr);
        let rpc = self.inner.network.request(
            Blob { data: Vec::new() },
            self.inner.options.request_timeout,
        );
        let reply = client.hello(rpc).await.map_err(|s| {
            RaftError::Membership(format!(
                "node {id} at {} does not answer: {}",
                info.raft_addr,
                s.message()
            ))
        })?;
        let (their_id, their_cluster, their_incarnation): (u64, Option<String>, u64) =
            wire::decode(&reply.into_inner().data)?;
        if their_id != id {
            return Err(RaftError::Membership(format!(
                "the node at {} is node {their_id}, not {id}",
                info.raft_addr
            )));
        }
        if let (Some(theirs), Some(ours)) = (their_cluster, self.inner.cluster.get()) {
            if theirs != ours {
                return Err(RaftError::ClusterMismatch(format!(
                    "node {id} holds data of cluster {theirs}; this is cluster {ours}. Wipe its data dir to add it"
                )));
            }
        }
        Ok(their_incarnation)
    }

    /// The cluster as this node sees it.
    pub fn status(&self) -> ClusterStatus {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let last = m.last_log_index.unwrap_or(0);
        let state = self.inner.state.read();
        let members = membership
            .nodes()
            .map(|(id, info)| {
                let matched = if *id == m.id {
                    m.last_log_index
                } else {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(id).cloned())
                        .map(|l| l.map_or(0, |l| l.index))
                };
                MemberStatus {
                    id: *id,
                    raft_addr: info.raft_addr.clone(),
                    http_addr: info.http_addr.clone(),
                    role: if voters.contains(id) {
                        "voter"
                    } else {
                        "learner"
                    }
                    .into(),
                    matched_index: matched,
                    lag: matched.map(|x| last.saturating_sub(x)),
                    incarnation: state.state.incarnation(*id).map(|i| format!("{i:016x}")),
                }
            })
            .collect();
        drop(state);
        ClusterStatus {
            cluster_id: self.inner.cluster.get(),
            node_id: m.id,
            state: format!("{:?}", m.state),
            leader_id: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed_index: m.local_committed.as_ref().map(|l| l.index),
            applied_index: m.last_applied.as_ref().map(|l| l.index),
            snapshot_index: m.snapshot.as_ref().map(|l| l.index),
            purged_index: m.purged.as_ref().map(|l| l.index),
            members,
            state_digest: self.inner.state.digest(),
        }
    }

    /// Whether this node is caught up: it knows a leader, and has applied what it
    /// knows to be committed (on a leader: what it committed).
    pub fn is_ready(&self) -> bool {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let applied = m.last_applied.as_ref().map(|l| l.index);
        let committed = m.local_committed.as_ref().map(|l| l.index);
        m.current_leader.is_some()
            && applied >= committed
            && !matches!(m.state, ServerState::Candidate)
    }

    /// Stops the node. A leader first hands leadership to the most caught-up voter,
    /// so the cluster does not wait an election timeout.
    pub async fn shutdown(&self) {
        let raft = &self.inner.raft;
        let m = raft.metrics().borrow_watched().clone();
        if m.current_leader == Some(self.inner.id) {
            let target = m.replication.as_ref().and_then(|r| {
                r.iter()
                    .filter(|(id, _)| {
                        **id != self.inner.id
                            && m.membership_config
                                .membership()
                                .voter_ids()
                                .any(|v| v == **id)
                    })
                    .max_by_key(|(_, l)| l.as_ref().map(|l| l.index))
                    .map(|(id, _)| *id)
            });
            if let Some(to) = target {
                tracing::info!(to, "handing over leadership before shutdown");
                if raft.trigger().transfer_leader(to).await.is_ok() {
                    let _ = raft
                        .wait(Some(self.inner.options.election_timeout.1))
                        .metrics(
                            |m| m.current_leader != Some(self.inner.id),
                            "leadership handed over",
                        )
                        .await;
                }
            }
        }
        if let Err(e) = raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}

/// Records this node's incarnation in the replicated state once it is part of a
/// cluster, and says loudly (every minute) when the cluster recorded another one:
/// then this data dir was wiped or restored, and peers refuse this node until an
/// operator replaces it. Ends when the node is dropped.
async fn record_incarnation<C: Connector>(inner: std::sync::Weak<Inner<C>>) {
    let mut last_warning: Option<Instant> = None;
    loop {
        // Soon after start: until it is recorded, a wipe of this node goes unnoticed.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(inner) = inner.upgrade() else { return };
        let node = RaftNode { inner };
        let recorded = node.state().read().state.incarnation(node.id());
        match recorded {
            Some(r) if r == node.incarnation() => return,
            Some(r) if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) => {
                tracing::error!("{}", wire::wiped_member(node.id(), node.incarnation(), r));
                last_warning = Some(Instant::now());
            }
            Some(_) => {}
            None if node.leader().is_some() && node.is_member() => {
                let record = Command::Cluster(ClusterCommand::RecordIncarnation {
                    node: node.id(),
                    incarnation: node.incarnation(),
                    replace: false,
                });
                if let Err(e) = node.propose(record).await {
                    tracing::debug!(error = %e, "incarnation not recorded yet, will retry");
                }
            }
            None => {}
        }
    }
}

fn check_node_id(store: &LogStore, id: u64, dir: &Path) -> Result<(), RaftError> {
    match store.node_id()? {
        Some(recorded) if recorded != id => Err(RaftError::ClusterMismatch(format!(
            "data dir {} belongs to node {recorded}, not node {id}",
            dir.display()
        ))),
        Some(_) => Ok(()),
        None => Ok(store.set_node_id(id)?),
    }
}
