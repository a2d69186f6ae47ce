//! Errors of the consensus layer, as callers need to tell them apart.

/// Why a proposal, read or membership change did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// No leader is known or reachable right now: retry later (HTTP 503).
    #[error("no leader available: {0}")]
    NoLeader(String),
    /// The operation did not finish in time; its outcome is unknown for writes (HTTP 503/504).
    #[error("timed out after {0:?} waiting for {1}; a write may or may not have been applied")]
    Timeout(std::time::Duration, &'static str),
    /// The node is not part of an initialized cluster yet.
    #[error(
        "this node is not initialized: start it with --initial-cluster, or join it to a cluster"
    )]
    NotInitialized,
    /// A membership change was refused.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The node's storage failed.
    #[error(transparent)]
    Storage(#[from] fleetcore_storage::StorageError),
    /// openraft stopped (fatal) or refused for an internal reason.
    #[error("raft: {0}")]
    Internal(String),
    /// A message could not be encoded or decoded.
    #[error("wire: {0}")]
    Wire(String),
    /// A peer belongs to another cluster.
    #[error("cluster mismatch: {0}")]
    ClusterMismatch(String),
    /// A member answered from a data dir the cluster did not record (wiped or
    /// restored): its answer must not count. The message says how to fix it.
    #[error("{0}")]
    WipedMember(String),
    /// The connection to the leader broke while a request was with it: for a
    /// write, the outcome is unknown (HTTP 503).
    #[error("the leader became unreachable during the request ({0}); a write may or may not have been applied")]
    LeaderUnreachable(String),
    /// A node-to-node relay stream broke or was refused.
    #[error("node link: {0}")]
    PeerLink(String),
}
