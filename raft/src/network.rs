//! openraft's network: one gRPC channel per peer, dialled through a [`Connector`].
//! Transport failures become `Unreachable`, which openraft backs off from.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use hyper_util::rt::TokioIo;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::AnyError;
use tonic::transport::{Channel, Endpoint};

use fleetcore_storage::state_machine::SharedState;
use fleetcore_storage::{LogStore, NodeInfo, SnapshotFile, StorageOptions, Types};

use crate::pb::raft_service_client::RaftServiceClient;
use crate::pb::Blob;
use crate::transport::Connector;
use crate::wire;
use crate::RaftError;

/// Snapshot bytes go out in chunks of this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 512 * 1024;
/// A snapshot transfer that moves no byte for this long is abandoned (openraft
/// retries it); a large one that keeps moving is never cut off by a deadline.
pub const SNAPSHOT_STALL: Duration = Duration::from_secs(30);
/// Once every byte is sent, the receiver has this long, plus a second per MiB, to
/// check and install the snapshot and answer.
pub const SNAPSHOT_INSTALL_BASE: Duration = Duration::from_secs(60);
/// Largest gRPC message a node accepts (a large append batch).
pub const GRPC_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The cluster this node belongs to. Empty until bootstrap or until the first
/// message from a cluster that is adding this node; recorded durably once known.
#[derive(Clone)]
pub struct ClusterId {
    id: Arc<RwLock<Option<String>>>,
    store: LogStore,
}

impl ClusterId {
    /// Loads the recorded id from the log store.
    pub fn load(store: LogStore) -> Result<Self, fleetcore_storage::StorageError> {
        let id = store.cluster_id()?;
        Ok(ClusterId {
            id: Arc::new(RwLock::new(id)),
            store,
        })
    }

    /// The id, if known.
    pub fn get(&self) -> Option<String> {
        self.id.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records `id` if none is known; refuses a different one.
    pub fn adopt(&self, id: &str) -> Result<(), RaftError> {
        let mut guard = self.id.write().unwrap_or_else(|p| p.into_inner());
        match guard.as_deref() {
            Some(mine) if mine == id => Ok(()),
            Some(mine) => Err(RaftError::ClusterMismatch(format!(
                "this node belongs to cluster {mine}, the request comes from cluster {id}"
            ))),
            None => {
                self.store.set_cluster_id(id)?;
                tracing::info!(cluster_id = id, "joined cluster");
                *guard = Some(id.to_string());
                Ok(())
            }
        }
    }
}

/// Creates per-peer clients; shares channels between them.
#[derive(Clone)]
pub struct Network<C: Connector> {
    connector: C,
    cluster: ClusterId,
    self_id: u64,
    incarnation: u64,
    /// The applied state, for the members' recorded incarnations.
    state: SharedState,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    rpc_timeout: Duration,
    /// How file reads run (see `StorageOptions::inline_io`).
    storage: StorageOptions,
}

impl<C: Connector> Network<C> {
    /// A network dialling through `connector`, as node `self_id` whose data dir
    /// is `incarnation`; peers' answers are checked against `state`.
    pub fn new(
        connector: C,
        cluster: ClusterId,
        self_id: u64,
        incarnation: u64,
        state: SharedState,
        rpc_timeout: Duration,
        storage: StorageOptions,
    ) -> Self {
        Network {
            connector,
            cluster,
            self_id,
            incarnation,
            state,
            channels: Arc::default(),
            rpc_timeout,
            storage,
        }
    }

    /// Refuses an answer from `node` whose data dir is not the one the cluster
    /// recorded (wiped or restored): it must not count as a vote or an ack.
    pub fn check_answer(
        &self,
        node: u64,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<(), RaftError> {
        let Some(presented) = metadata
            .get(wire::INCARNATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| u64::from_str_radix(v, 16).ok())
        else {
            return Ok(());
        };
        match self.state.read().state.incarnation(node) {
            Some(recorded) if recorded != presented => Err(RaftError::WipedMember(
                wire::wiped_member(node, presented, recorded),
            )),
            _ => Ok(()),
        }
    }

    /// A client for the peer at `addr`, over a cached, lazily connecting channel.
    pub fn client(&self, addr: &str) -> RaftServiceClient<Channel> {
        let channel = {
            let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            channels
                .entry(addr.to_string())
                .or_insert_with(|| {
                    let connector = self.connector.clone();
                    let target = addr.to_string();
                    // The URI is only a label; the connector decides where to dial.
                    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                        .unwrap_or_else(|_| Endpoint::from_static("http://invalid.invalid"))
                        .connect_timeout(Duration::from_secs(1))
                        .tcp_nodelay(true)
                        // A partition can leave a connection open but dead; HTTP/2
                        // pings find out, so the channel reconnects after healing.
                        .http2_keep_alive_interval(Duration::from_secs(1))
                        .keep_alive_timeout(Duration::from_secs(2))
                        .keep_alive_while_idle(true);
                    endpoint.connect_with_connector_lazy(tower::service_fn(move |_uri| {
                        let fut = connector.connect(target.clone());
                        async move { fut.await.map(TokioIo::new) }
                    }))
                })
                .clone()
        };
        RaftServiceClient::new(channel)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
    }

    /// Wraps a payload with the cluster and sender headers, and a deadline.
    pub fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = self.request_without_deadline(message);
        request.set_timeout(timeout);
        request
    }

    /// Wraps a payload with the cluster and sender headers; the caller bounds it.
    pub fn request_without_deadline<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(id) = self.cluster.get() {
            if let Ok(v) = id.parse() {
                request.metadata_mut().insert(wire::CLUSTER_HEADER, v);
            }
        }
        if let Ok(v) = self.self_id.to_string().parse() {
            request.metadata_mut().insert(wire::FROM_HEADER, v);
        }
        if let Ok(v) = format!("{:016x}", self.incarnation).parse() {
            request.metadata_mut().insert(wire::INCARNATION_HEADER, v);
        }
        request
    }

    /// The default deadline of one RPC.
    pub fn rpc_timeout(&self) -> Duration {
        self.rpc_timeout
    }
}

impl<C: Connector> RaftNetworkFactory<Types<C::Runtime>> for Network<C> {
    type Network = PeerClient<C>;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> Self::Network {
        PeerClient {
            network: self.clone(),
            target,
            addr: node.raft_addr.clone(),
            last_refusal_log: None,
        }
    }
}

/// openraft's view of one peer.
pub struct PeerClient<C: Connector> {
    network: Network<C>,
    target: u64,
    addr: String,
    last_refusal_log: Option<std::time::Instant>,
}

fn status_to_rpc<T: openraft::RaftTypeConfig>(target: u64, status: tonic::Status) -> RPCError<T> {
    let err = AnyError::error(format!("node {target}: {status}"));
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&err))
        }
        _ => RPCError::Network(NetworkError::new(&err)),
    }
}

fn wire_error<T: openraft::RaftTypeConfig>(e: impl std::fmt::Display) -> RPCError<T> {
    RPCError::Network(NetworkError::new(&AnyError::error(e.to_string())))
}

/// The Raft RPCs a peer client sends, each to its own gRPC method.
#[derive(Debug, Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    PreVote,
    TransferLeader,
}

impl<C: Connector> PeerClient<C> {
    async fn call<Req, Resp>(
        &mut self,
        method: Rpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<Types<C::Runtime>>>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
    {
        let data = wire::encode(request).map_err(wire_error)?;
        let timeout = option.hard_ttl().min(self.network.rpc_timeout());
        let mut client = self.network.client(&self.addr);
        let request = self.network.request(Blob { data }, timeout);
        let reply = match method {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::PreVote => client.pre_vote(request).await,
            Rpc::TransferLeader => client.transfer_leader(request).await,
        }
        .map_err(|s| status_to_rpc(self.target, s))?;
        if let Err(e) = self.network.check_answer(self.target, reply.metadata()) {
            // Every heartbeat is refused: say it once in a while, not ten times a second.
            if self
                .last_refusal_log
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
            {
                tracing::warn!(node = self.target, "{e}");
                self.last_refusal_log = Some(std::time::Instant::now());
            }
            return Err(wire_error(e));
        }
        wire::decode(&reply.into_inner().data).map_err(wire_error)
    }
}

impl<C: Connector> RaftNetworkV2<Types<C::Runtime>> for PeerClient<C> {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Types<C::Runtime>>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<Types<C::Runtime>>, RPCError<Types<C::Runtime>>> {
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<Types<C::Runtime>>,
        option: RPCOption,
    ) -> Result<VoteResponse<Types<C::Runtime>>, RPCError<Types<C::Runtime>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<Types<C::Runtime>>,
        option: RPCOption,
    ) -> Result<VoteResponse<Types<C::Runtime>>, RPCError<Types<C::Runtime>>> {
        self.call(Rpc::PreVote, &rpc, &option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<Types<C::Runtime>>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<Types<C::Runtime>>, RPCError<Types<C::Runtime>>> {
        self.call(Rpc::TransferLeader, &req, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<Types<C::Runtime>>,
        snapshot: SnapshotOf<Types<C::Runtime>, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<Types<C::Runtime>>, StreamingError<Types<C::Runtime>>> {
        let failed = |e: RaftError| {
            StreamingError::Network(NetworkError::new(&AnyError::error(e.to_string())))
        };
        let head = wire::encode(&(vote, snapshot.meta.clone())).map_err(failed)?;
        let total = snapshot.snapshot.len;
        let file = snapshot
            .snapshot
            .reopen()
            .map_err(|e| failed(RaftError::Internal(format!("snapshot file: {e}"))))?;
        // Read as the transport pulls (HTTP/2 flow control): at most a chunk or two
        // of the file is in memory at a time.
        let sent = Arc::new(AtomicU64::new(0));
        let body = file_chunks(file, self.network.storage, sent.clone());
        let chunks = futures::stream::once(async move { Blob { data: head } }).chain(body);
        let mut client = self.network.client(&self.addr);
        let request = self.network.request_without_deadline(chunks);
        let target = self.target;
        let network = self.network.clone();
        let send = async move {
            let reply = client
                .install_snapshot(request)
                .await
                .map_err(|s| StreamingError::from(status_to_rpc(target, s)))?;
            network
                .check_answer(target, reply.metadata())
                .map_err(&failed)?;
            wire::decode::<SnapshotResponse<Types<C::Runtime>>>(&reply.into_inner().data)
                .map_err(&failed)
        };
        // The deadline follows progress: abandoned when no byte moves for
        // SNAPSHOT_STALL, or when the answer takes longer than the install may.
        let answer_within = SNAPSHOT_INSTALL_BASE + Duration::from_secs(total >> 20);
        let watchdog = async move {
            let mut last = 0;
            let mut since = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = sent.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    since = tokio::time::Instant::now();
                } else if now < total && since.elapsed() >= SNAPSHOT_STALL {
                    return format!(
                        "snapshot transfer to node {target} stalled at {now} of {total} bytes"
                    );
                } else if now >= total && since.elapsed() >= answer_within {
                    return format!(
                        "node {target} did not answer within {answer_within:?} of receiving a snapshot of {total} bytes"
                    );
                }
            }
        };
        tokio::select! {
            biased;
            result = send => result,
            closed = cancel => Err(StreamingError::Closed(closed)),
            stalled = watchdog => {
                tracing::warn!("{stalled}");
                Err(StreamingError::from(RPCError::Unreachable(Unreachable::new(&AnyError::error(stalled)))))
            }
        }
    }
}

/// The bytes of `file` as a stream of chunks, read off the runtime unless
/// `storage` says inline; `sent` counts what was handed on. A read error ends
/// the stream early, which the receiver refuses as a cut transfer.
fn file_chunks(
    file: std::fs::File,
    storage: StorageOptions,
    sent: Arc<AtomicU64>,
) -> impl futures::Stream<Item = Blob> + Send + 'static {
    futures::stream::unfold(Some(file), move |file| {
        let sent = sent.clone();
        async move {
            let file = file?;
            let read = move || {
                let mut file = file;
                let mut data = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES);
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(&mut file, SNAPSHOT_CHUNK_BYTES as u64),
                    &mut data,
                )?;
                Ok((file, data))
            };
            match fleetcore_storage::blocking(storage, read).await {
                Ok((_, data)) if data.is_empty() => None,
                Ok((file, data)) => {
                    sent.fetch_add(data.len() as u64, Ordering::Relaxed);
                    Some((Blob { data }, Some(file)))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the snapshot file being sent");
                    None
                }
            }
        }
    })
}
