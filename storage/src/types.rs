//! The openraft type configuration: what the log carries and who the nodes are.
//!
//! [`Types`] is generic over the async runtime only so the deterministic simulations
//! can draw openraft's randomness (election timeouts, tick phases) from their seed;
//! every stored type (log ids, votes, entries, memberships) is the same for any
//! runtime, so the on-disk format does not depend on it.

use std::marker::PhantomData;

use openraft::AsyncRuntime;
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

/// Fleetcore's Raft types on runtime `RT`: the log carries
/// [`fleetcore_model::Command`]s and applying one yields a [`fleetcore_model::Outcome`].
pub struct Types<RT>(PhantomData<fn() -> RT>);

/// The production configuration: openraft on tokio.
pub type TypeConfig = Types<openraft_rt_tokio::TokioRuntime>;

// Written out rather than derived: a derive would demand the same traits of `RT`.
impl<RT> Clone for Types<RT> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<RT> Copy for Types<RT> {}
impl<RT> Default for Types<RT> {
    fn default() -> Self {
        Types(PhantomData)
    }
}
impl<RT> PartialEq for Types<RT> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<RT> Eq for Types<RT> {}
impl<RT> PartialOrd for Types<RT> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<RT> Ord for Types<RT> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}
impl<RT> std::fmt::Debug for Types<RT> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Types")
    }
}

impl<RT: AsyncRuntime> openraft::RaftTypeConfig for Types<RT> {
    type D = fleetcore_model::Command;
    type R = fleetcore_model::Outcome;
    type NodeId = u64;
    type Node = NodeInfo;
    type Term = u64;
    type LeaderId = openraft::impls::leader_id_adv::LeaderId<Self::Term, Self::NodeId>;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Self::D, Self::NodeId, Self::Node>;
    type Entry =
        openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>;
    type Responder<T>
        = openraft::impls::ProgressResponder<Self, T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type AsyncRuntime = RT;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}
