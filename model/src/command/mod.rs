//! Commands (what the Raft log carries) and their outcomes.
//!
//! A [`Command`] names its domain first; each domain's commands and their `apply`
//! live in that domain's module ([`crate::registry`], [`crate::shadow`],
//! [`crate::retained`], [`crate::cluster`], [`crate::policy`],
//! [`crate::certificate`]), so a new domain adds one variant
//! here and one module, not arms in a shared match. This is format 2 of the log;
//! [`v1`] reads format 1.

pub mod v1;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::certificate::{Certificate, CertificateCommand};
use crate::cluster::ClusterCommand;
use crate::error::Rejection;
use crate::policy::PolicyCommand;
use crate::registry::{RegistryCommand, Thing};
use crate::request::RequestId;
use crate::retained::RetainedCommand;
use crate::shadow::{ShadowCommand, ShadowUpdated};
use crate::thing_group::ThingGroup;
use crate::thing_type::ThingType;

/// A change to the replicated state. Everything `apply` needs is inside: time
/// (`at_ms`) and generated ids are stamped by the proposer.
///
/// Encoded with bincode, so no field may be a `serde_json::Value` (bincode cannot
/// decode self-describing data); JSON documents travel as text. The variant
/// order is part of format 2: new domains go last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Things, thing types and thing groups.
    Registry(RegistryCommand),
    /// Device shadows.
    Shadow(ShadowCommand),
    /// Retained MQTT messages.
    Retained(RetainedCommand),
    /// The cluster's own records: member incarnations and quotas.
    Cluster(ClusterCommand),
    /// `command`, applied at most once per `id`: a repeat answers the first result
    /// (see [`crate::request`]). Every write a node proposes is wrapped in one.
    Request {
        /// Who proposed it, and which of its requests this is.
        id: RequestId,
        /// The write itself (never another `Request`).
        command: Box<Command>,
    },
    /// IoT policies and their attachments.
    Policy(PolicyCommand),
    /// Certificates and the things attached to them.
    Certificate(CertificateCommand),
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Registry(c) => c.kind(),
            Command::Shadow(c) => c.kind(),
            Command::Retained(c) => c.kind(),
            Command::Cluster(c) => c.kind(),
            Command::Request { command, .. } => command.kind(),
            Command::Policy(c) => c.kind(),
            Command::Certificate(c) => c.kind(),
        }
    }
}

impl From<RegistryCommand> for Command {
    fn from(c: RegistryCommand) -> Self {
        Command::Registry(c)
    }
}

impl From<ShadowCommand> for Command {
    fn from(c: ShadowCommand) -> Self {
        Command::Shadow(c)
    }
}

impl From<RetainedCommand> for Command {
    fn from(c: RetainedCommand) -> Self {
        Command::Retained(c)
    }
}

impl From<PolicyCommand> for Command {
    fn from(c: PolicyCommand) -> Self {
        Command::Policy(c)
    }
}

impl From<CertificateCommand> for Command {
    fn from(c: CertificateCommand) -> Self {
        Command::Certificate(c)
    }
}

impl From<ClusterCommand> for Command {
    fn from(c: ClusterCommand) -> Self {
        Command::Cluster(c)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Registry(c) => c.fmt(f),
            Command::Shadow(c) => c.fmt(f),
            Command::Retained(c) => c.fmt(f),
            Command::Cluster(c) => c.fmt(f),
            Command::Request { id, command } => write!(f, "{command} (request {id})"),
            Command::Policy(c) => c.fmt(f),
            Command::Certificate(c) => c.fmt(f),
        }
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Applied {
    /// Entries that carry no command (blank, membership).
    Nothing,
    /// The thing after create or update.
    Thing(Thing),
    /// DeleteThing: whether there was a thing to delete.
    ThingDeleted {
        /// False when the thing did not exist (still a success, as in AWS).
        existed: bool,
    },
    /// A thing type after create or (un)deprecate.
    ThingType(ThingType),
    /// A thing group after create or update.
    ThingGroup(ThingGroup),
    /// A change that returns nothing (deletes, group membership).
    Done,
    /// An accepted shadow update.
    ShadowUpdated(ShadowUpdated),
    /// An accepted shadow delete: the `/delete/accepted` body.
    ShadowDeleted(Value),
    /// A policy version made by CreatePolicy or CreatePolicyVersion.
    PolicyVersion {
        /// The policy.
        name: String,
        /// The new version's id.
        version: u64,
        /// Whether it is now the default version.
        is_default: bool,
    },
    /// A certificate as registered.
    Certificate(Box<Certificate>),
}

/// The replicated result of one command: every replica computes the same one.
pub type Outcome = Result<Applied, Rejection>;
