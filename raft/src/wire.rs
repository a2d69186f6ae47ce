//! Messages of the Forward call, and the encoding of every payload.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use fleetcore_model::{Command, Outcome};
use fleetcore_storage::codec;
use fleetcore_storage::NodeInfo;

use crate::RaftError;

/// What a node asks of the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Propose this command.
    Write(Command),
    /// Confirm leadership and return the index a linearizable read must wait for.
    ReadIndex,
    /// Add a node: learner first, then voter.
    AddNode {
        /// Its id.
        id: u64,
        /// Its addresses.
        info: NodeInfo,
    },
    /// Record a member's current addresses (nodes register their own HTTP address).
    SetNode {
        /// Its id.
        id: u64,
        /// Its addresses.
        info: NodeInfo,
    },
    /// Remove a node from the voters and the cluster.
    RemoveNode {
        /// Its id.
        id: u64,
    },
}

/// The leader's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardResponse {
    /// The outcome of a write; JSON text, because outcomes carry JSON documents.
    Written(String),
    /// The read index.
    ReadIndex(u64),
    /// A membership change finished.
    Done,
    /// The node asked is not the leader and appended nothing: safe to retry
    /// elsewhere. In band, so a sender tells it apart from a broken connection
    /// (after which a write's outcome is unknown).
    NotLeader(String),
}

impl ForwardResponse {
    /// Wraps an outcome.
    pub fn written(outcome: &Outcome) -> Result<Self, RaftError> {
        serde_json::to_string(outcome)
            .map(ForwardResponse::Written)
            .map_err(|e| RaftError::Wire(e.to_string()))
    }
}

/// Encodes a payload (bincode behind format byte 2: entries carry commands).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, RaftError> {
    codec::encode_bin_as(codec::FORMAT_V2, "rpc", value).map_err(|e| RaftError::Wire(e.to_string()))
}

/// Decodes a payload. One of format 1 comes from a node of an older version
/// and is refused: every node of a cluster runs the same format.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RaftError> {
    codec::decode_bin_as(codec::FORMAT_V2, "rpc", b"", bytes)
        .map_err(|e| RaftError::Wire(e.to_string()))
}

/// gRPC metadata key carrying the sender's cluster id.
pub const CLUSTER_HEADER: &str = "x-fleetcore-cluster";
/// gRPC metadata key carrying the sender's node id.
pub const FROM_HEADER: &str = "x-fleetcore-from";
/// gRPC metadata key carrying the sender's (or, on a reply, the answering
/// node's) data-dir incarnation, in hex.
pub const INCARNATION_HEADER: &str = "x-fleetcore-incarnation";

/// What a member must do when its data dir is not the one the cluster recorded.
pub fn wiped_member(node: u64, presented: u64, recorded: u64) -> String {
    format!(
        "node {node} presents data-dir incarnation {presented:016x} but the cluster recorded \
         {recorded:016x}: its data dir was wiped or restored from a backup, so it may not vote \
         or acknowledge entries (it could have forgotten what it promised). Replace it: \
         `fleetcore cluster remove --id {node}`, then start it with `--join <a member's HTTP URL>`"
    )
}
