//! `fleetcore-raft`: consensus for Fleetcore — an openraft node over a tonic gRPC
//! transport, with the operations the rest of the node needs: propose a command
//! (forwarded to the leader from any node, exactly once: each carries a request id
//! and a forward whose outcome is unknown is retried with the same id),
//! linearizable reads (read-index, also from followers), membership changes and
//! cluster status; and member identity: every data dir's incarnation travels with
//! each Raft message and answer, and a member whose incarnation is not the recorded
//! one (wiped or restored) is not heard.
//!
//! Owns: the node-to-node wire protocol (`proto/raft.proto`, [`wire`]), the transport
//! abstraction ([`transport::Connector`] and any incoming stream of connections), so
//! the same code runs on tokio TCP and inside turmoil; the cluster-id handshake.
//! Uses: openraft, tonic, fleetcore-storage, fleetcore-model.
//! Must not depend on: axum, the MQTT layer, the `fleetcore` binary's config. Reads
//! no wall clock for state: time goes into commands at the proposer (the caller).
//!
//! Start at [`RaftNode::start`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod network;
pub mod node;
pub mod service;
pub mod transport;
pub mod wire;

/// Generated gRPC code.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("fleetcore.raft.v1");
}

pub use error::RaftError;
pub use fleetcore_storage::{NodeInfo, TypeConfig, Types};
pub use node::{ClusterStatus, MemberStatus, RaftNode, RaftOptions, RelayHandler};
pub use transport::{Connector, TcpConnector};

/// The openraft handle with Fleetcore's types, on runtime `RT` (tokio unless a
/// simulation says otherwise).
pub type Raft<RT = openraft_rt_tokio::TokioRuntime> =
    openraft::Raft<Types<RT>, fleetcore_storage::StateMachineStore>;
