//! The openraft type configuration: what the log carries and who the nodes are.

use serde::{Deserialize, Serialize};

/// A cluster member's addresses, replicated in the membership config.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeInfo {
    /// host:port of the node's Raft gRPC service.
    pub raft_addr: String,
    /// host:port of the node's HTTP API.
    pub http_addr: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "raft={} http={}", self.raft_addr, self.http_addr)
    }
}

openraft::declare_raft_types!(
    /// Fleetcore's Raft types: the log carries [`fleetcore_model::Command`]s and applying
    /// one yields a [`fleetcore_model::Outcome`].
    pub TypeConfig:
        D = fleetcore_model::Command,
        R = fleetcore_model::Outcome,
        NodeId = u64,
        Node = NodeInfo,
);
