//! The gRPC server side: hands openraft's messages to the local node, serves
//! forwarded requests when this node leads, and refuses other clusters.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};

use fleetcore_storage::{SnapshotFile, StorageOptions, Types};

use crate::network::GRPC_MESSAGE_BYTES_MAX;
use crate::node::RaftNode;
use crate::pb::raft_service_server::{RaftService, RaftServiceServer};
use crate::pb::Blob;
use crate::transport::Connector;
use crate::wire::{self, ForwardRequest, ForwardResponse};

/// Serves the Raft service on `incoming` until `shutdown` resolves.
pub async fn serve<C, I, IO, IE>(
    node: RaftNode<C>,
    incoming: I,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    C: Connector,
    I: Stream<Item = Result<IO, IE>> + Send,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = RaftServiceServer::new(Service { node })
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming.map(|r| r.map(Accepted)), shutdown)
        .await
}

/// Any accepted byte stream, as tonic's server takes it (the service reads
/// nothing about the connection).
struct Accepted<IO>(IO);

impl<IO: Send + 'static> Connected for Accepted<IO> {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl<IO: AsyncRead + Unpin> AsyncRead for Accepted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Accepted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// The largest snapshot a node accepts. Far above any state the quotas allow; a
/// sender past it is refused rather than filling the disk.
const SNAPSHOT_BYTES_MAX: u64 = 64 << 30;

/// Removes a file when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes the chunks of `stream` to `path`, syncs it, and checks it whole.
async fn receive_snapshot(
    stream: &mut Streaming<Blob>,
    path: &std::path::Path,
    storage: StorageOptions,
) -> Result<(SnapshotFile, SnapshotMetaOf<fleetcore_storage::TypeConfig>), Status> {
    let io = |what: &'static str| move |e: std::io::Error| Status::internal(format!("{what}: {e}"));
    let target = path.to_path_buf();
    let mut file = fleetcore_storage::blocking(storage, move || std::fs::File::create(target))
        .await
        .map_err(io("create the incoming snapshot file"))?;
    let mut received = 0u64;
    loop {
        // A sender that vanished without closing the stream (a partition) must not
        // hold the handler and its file forever.
        let next = tokio::time::timeout(crate::network::SNAPSHOT_STALL, stream.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "snapshot transfer stalled after {received} bytes"
                ))
            })??;
        let Some(chunk) = next else { break };
        received += chunk.data.len() as u64;
        if received > SNAPSHOT_BYTES_MAX {
            return Err(Status::resource_exhausted(format!(
                "snapshot larger than {SNAPSHOT_BYTES_MAX} bytes"
            )));
        }
        file = fleetcore_storage::blocking(storage, move || {
            std::io::Write::write_all(&mut file, &chunk.data)?;
            Ok(file)
        })
        .await
        .map_err(io("write the incoming snapshot file"))?;
    }
    let target = path.to_path_buf();
    fleetcore_storage::blocking(storage, move || {
        file.sync_all()?;
        let (meta, _records) = fleetcore_storage::state_machine::check_snapshot(&target)
            .map_err(std::io::Error::from)?;
        Ok((SnapshotFile::open(&target)?, meta))
    })
    .await
    .map_err(|e| Status::invalid_argument(format!("snapshot refused: {e}")))
}

/// Numbers relay streams, so a handler can tell a late close of an old stream
/// from the current one.
static RELAY_STREAMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

struct Service<C: Connector> {
    node: RaftNode<C>,
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<Blob>, Status> {
    wire::encode(value)
        .map(|data| Response::new(Blob { data }))
        .map_err(|e| Status::internal(e.to_string()))
}

/// A Raft answer, stamped with this node's incarnation so the asker can refuse it
/// if this data dir is not the one the cluster recorded.
fn raft_reply<T: serde::Serialize>(value: &T, incarnation: u64) -> Result<Response<Blob>, Status> {
    let mut response = reply(value)?;
    if let Ok(v) = format!("{incarnation:016x}").parse() {
        response.metadata_mut().insert(wire::INCARNATION_HEADER, v);
    }
    Ok(response)
}

impl<C: Connector> Service<C> {
    /// Refuses messages from another cluster; a pristine node adopts the sender's id.
    fn check_cluster<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let theirs = request
            .metadata()
            .get(wire::CLUSTER_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::failed_precondition("request carries no cluster id"))?;
        self.node.cluster().adopt(theirs).map_err(|e| {
            tracing::warn!(error = %e, "refused a peer from another cluster");
            // The asker wraps the message in its own ClusterMismatch.
            Status::failed_precondition(match e {
                crate::RaftError::ClusterMismatch(m) => m,
                other => other.to_string(),
            })
        })?;
        Ok(())
    }

    /// Refuses a member whose data dir was wiped or restored (it may have
    /// forgotten votes and entries it acknowledged): it is not heard until it
    /// is replaced. Not applied to a leader's entries and snapshots: this
    /// node's record may be the stale one (it missed the entries that replaced
    /// the sender), and those entries are how it learns; a wiped node cannot
    /// lead, since candidates' votes are checked here and answers at the asker.
    fn check_incarnation<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let header = |name| request.metadata().get(name).and_then(|v| v.to_str().ok());
        let from = header(wire::FROM_HEADER).and_then(|v| v.parse::<u64>().ok());
        let presented =
            header(wire::INCARNATION_HEADER).and_then(|v| u64::from_str_radix(v, 16).ok());
        if let (Some(from), Some(presented)) = (from, presented) {
            if let Some(recorded) = self.node.state().read().state.incarnation(from) {
                if recorded != presented {
                    let e = wire::wiped_member(from, presented, recorded);
                    tracing::debug!("refused: {e}");
                    return Err(Status::failed_precondition(e));
                }
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl<C: Connector> RaftService for Service<C> {
    async fn append_entries(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        self.check_cluster(&request)?;
        let rpc: AppendEntriesRequest<Types<C::Runtime>> =
            wire::decode(&request.into_inner().data).map_err(bad)?;
        let resp = self
            .node
            .raft()
            .append_entries(rpc)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        raft_reply(&resp, self.node.incarnation())
    }

    async fn vote(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        self.check_cluster(&request)?;
        self.check_incarnation(&request)?;
        let rpc: VoteRequest<Types<C::Runtime>> =
            wire::decode(&request.into_inner().data).map_err(bad)?;
        let resp = self
            .node
            .raft()
            .vote(rpc)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        raft_reply(&resp, self.node.incarnation())
    }

    async fn pre_vote(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        self.check_cluster(&request)?;
        self.check_incarnation(&request)?;
        let rpc: VoteRequest<Types<C::Runtime>> =
            wire::decode(&request.into_inner().data).map_err(bad)?;
        let resp = self
            .node
            .raft()
            .pre_vote(rpc)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        raft_reply(&resp, self.node.incarnation())
    }

    async fn transfer_leader(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        self.check_cluster(&request)?;
        self.check_incarnation(&request)?;
        let rpc: TransferLeaderRequest<Types<C::Runtime>> =
            wire::decode(&request.into_inner().data).map_err(bad)?;
        let resp = self
            .node
            .raft()
            .handle_transfer_leader(rpc)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        raft_reply(&resp, self.node.incarnation())
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<Blob>>,
    ) -> Result<Response<Blob>, Status> {
        self.check_cluster(&request)?;
        let mut stream = request.into_inner();
        let head = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let (vote, meta): (VoteOf<Types<C::Runtime>>, SnapshotMetaOf<Types<C::Runtime>>) =
            wire::decode(&head.data).map_err(bad)?;
        let path = fleetcore_storage::state_machine::incoming_snapshot_path(self.node.data_dir());
        // Removed however this handler ends, including when the sender resets the
        // stream and the handler is dropped mid-transfer.
        let _incoming = RemoveOnDrop(path.clone());
        // Written as it arrives and checked whole before openraft sees it: a cut or
        // corrupt transfer leaves the current state as it was (the leader retries).
        let received = receive_snapshot(&mut stream, &path, self.node.storage_options()).await;
        let snapshot = match received.and_then(|(file, sent_meta)| {
            if sent_meta == meta {
                Ok(file)
            } else {
                Err(Status::invalid_argument(
                    "the snapshot file does not match the snapshot it was sent as",
                ))
            }
        }) {
            Ok(file) => file,
            Err(e) => {
                tracing::warn!(error = %e.message(), "refused a snapshot transfer");
                return Err(e);
            }
        };
        let snapshot = SnapshotOf::<Types<C::Runtime>, SnapshotFile> { meta, snapshot };
        // Installed: the file was moved into place. Not installed (a stale vote):
        // the guard removes it.
        let resp = self.node.raft().install_full_snapshot(vote, snapshot).await;
        let resp = resp.map_err(|e| Status::unavailable(e.to_string()))?;
        raft_reply(&resp, self.node.incarnation())
    }

    async fn forward(&self, request: Request<Blob>) -> Result<Response<Blob>, Status> {
        self.check_cluster(&request)?;
        self.check_incarnation(&request)?;
        let forwarded: ForwardRequest = wire::decode(&request.into_inner().data).map_err(bad)?;
        let response = match self.node.serve_forwarded(forwarded).await {
            // "Not the leader, nothing appended" travels in band: the sender
            // retries those, and only those, without a request id.
            Err(crate::RaftError::NoLeader(m)) => Ok(ForwardResponse::NotLeader(m)),
            other => other,
        };
        let response = response.map_err(|e| match e {
            crate::RaftError::Timeout(..) => Status::deadline_exceeded(e.to_string()),
            crate::RaftError::ClusterMismatch(m) => Status::failed_precondition(m),
            crate::RaftError::Membership(m) => Status::aborted(m),
            other => Status::internal(other.to_string()),
        })?;
        reply::<ForwardResponse>(&response)
    }

    async fn relay(&self, request: Request<Streaming<Blob>>) -> Result<Response<Blob>, Status> {
        self.check_cluster(&request)?;
        self.check_incarnation(&request)?;
        let from: u64 = request
            .metadata()
            .get(wire::FROM_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Status::invalid_argument("relay stream without sender id"))?;
        let handler = self
            .node
            .relay_handler()
            .ok_or_else(|| Status::unavailable("this node does not relay yet"))?;
        let stream_id = RELAY_STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut messages = request.into_inner();
        let result = loop {
            match messages.message().await {
                Ok(Some(blob)) => handler.message(from, stream_id, &blob.data),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        handler.closed(from, stream_id);
        result?;
        Ok(Response::new(Blob::default()))
    }

    async fn hello(&self, _request: Request<Blob>) -> Result<Response<Blob>, Status> {
        // Unauthenticated on purpose: a leader asks a node that has no cluster yet.
        reply(&(
            self.node.id(),
            self.node.cluster().get(),
            self.node.incarnation(),
        ))
    }
}
