//! The service layer: AWS IoT's operations over the Raft node, one module per
//! domain ([`registry`], [`shadow`], [`retained`], [`cluster`]). Each builds the
//! domain's commands, proposes them and reads the state; it returns a
//! [`ServiceError`], which HTTP (`crate::error::ApiError`) and MQTT
//! (`/rejected` replies) each turn into their own wire form. Handlers only parse
//! and format.

use fleetcore_model::{Applied, Command, Outcome, Rejection};
use fleetcore_raft::{Connector, RaftError, RaftNode};

use crate::clock::SharedClock;
use crate::entropy::SharedEntropy;
use crate::mqtt::registry_events::{self as events, RegistryChange};
use crate::mqtt::Broker;

pub mod certificate;
pub mod cluster;
pub mod policy;
pub mod registry;
pub mod retained;
pub mod shadow;

pub use registry::ThingPage;
pub use shadow::shadow_topic;

/// Why an operation failed, independent of the wire it came from.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The replicated state refused the command (every replica refuses it alike).
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// The cluster could not take the request now (no leader, a timeout, ...).
    #[error("{0}")]
    Raft(#[from] RaftError),
    /// The request was refused before anything was proposed.
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A bound on work in flight is full; nothing was done.
    #[error("{0}")]
    Throttled(String),
    /// A policy document that is not valid policy language (the message names
    /// the place, e.g. `Statement[1].Action[0]`).
    #[error("{0}")]
    MalformedPolicy(String),
    /// An outcome that does not fit the request: a bug, logged where it is made.
    #[error("unexpected outcome of {0}")]
    Unexpected(&'static str),
}

impl ServiceError {
    /// The HTTP status AWS answers this with. MQTT `/rejected` bodies carry the
    /// same number as their `code`.
    pub fn status(&self) -> u16 {
        match self {
            ServiceError::Rejected(r) => match r {
                Rejection::Invalid(_) => 400,
                Rejection::NotFound { .. } => 404,
                Rejection::AlreadyExists { .. }
                | Rejection::VersionConflict { .. }
                | Rejection::DeleteConflict(_)
                | Rejection::VersionsLimitExceeded { .. } => 409,
                Rejection::TooLarge { .. } => 413,
                Rejection::LimitExceeded { .. } => 410,
                Rejection::RequestExpired { .. } => 503,
            },
            ServiceError::Raft(e) => match e {
                RaftError::NoLeader(_)
                | RaftError::Timeout(..)
                | RaftError::NotInitialized
                | RaftError::LeaderUnreachable(_) => 503,
                RaftError::Membership(_) | RaftError::ClusterMismatch(_) => 409,
                _ => 500,
            },
            ServiceError::Invalid(_) => 400,
            ServiceError::NotFound(_) => 404,
            ServiceError::Throttled(_) => 429,
            ServiceError::MalformedPolicy(_) => 400,
            ServiceError::Unexpected(_) => 500,
        }
    }

    /// AWS's exception name for it, e.g. `ResourceNotFoundException`.
    pub fn aws_type(&self) -> &'static str {
        match self {
            ServiceError::Rejected(r) => match r {
                Rejection::Invalid(_) => "InvalidRequestException",
                Rejection::NotFound { .. } => "ResourceNotFoundException",
                Rejection::AlreadyExists { .. } => "ResourceAlreadyExistsException",
                Rejection::VersionConflict { .. } => "VersionConflictException",
                Rejection::DeleteConflict(_) => "DeleteConflictException",
                Rejection::VersionsLimitExceeded { .. } => "VersionsLimitExceededException",
                Rejection::TooLarge { .. } => "RequestEntityTooLargeException",
                Rejection::LimitExceeded { .. } => "LimitExceededException",
                Rejection::RequestExpired { .. } => "ServiceUnavailableException",
            },
            ServiceError::Raft(_) => match self.status() {
                503 => "ServiceUnavailableException",
                409 => "InvalidRequestException",
                _ => "InternalFailureException",
            },
            ServiceError::Invalid(_) => "InvalidRequestException",
            ServiceError::NotFound(_) => "ResourceNotFoundException",
            ServiceError::Throttled(_) => "ThrottlingException",
            ServiceError::MalformedPolicy(_) => "MalformedPolicyException",
            ServiceError::Unexpected(_) => "InternalFailureException",
        }
    }

    /// An outcome of `operation` that does not fit it: logged, never a panic.
    pub fn unexpected(operation: &'static str, outcome: &Applied) -> Self {
        tracing::error!(operation, ?outcome, "unexpected outcome");
        ServiceError::Unexpected(operation)
    }
}

/// What service operations return.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Every domain's operations. Cheap to clone.
#[derive(Clone)]
pub struct Service<C: Connector> {
    node: RaftNode<C>,
    clock: SharedClock,
    entropy: SharedEntropy,
    broker: Broker,
    /// Region and account shown in ARNs.
    arn_prefix: String,
    /// Bounds the writes in flight from this node (HTTP and MQTT together): past
    /// it a write is refused at once (429) instead of queueing without bound.
    proposals: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Writes one node may have in flight to the leader at once.
pub const PROPOSALS_IN_FLIGHT_MAX: usize = 4096;

impl<C: Connector> Service<C> {
    /// A service over `node`.
    pub fn new(
        node: RaftNode<C>,
        clock: SharedClock,
        entropy: SharedEntropy,
        broker: Broker,
    ) -> Self {
        Service {
            node,
            clock,
            entropy,
            broker,
            arn_prefix: "arn:aws:iot:local:000000000000".into(),
            proposals: std::sync::Arc::new(tokio::sync::Semaphore::new(PROPOSALS_IN_FLIGHT_MAX)),
        }
    }

    /// The Raft node.
    pub fn node(&self) -> &RaftNode<C> {
        &self.node
    }

    /// The MQTT broker of this node.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The ARN of a thing.
    pub fn thing_arn(&self, name: &str) -> String {
        self.arn("thing", name)
    }

    /// The ARN of a resource of `kind` (e.g. `thinggroup`).
    pub fn arn(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}/{name}", self.arn_prefix)
    }

    /// Proposes a command; its rejection becomes the error. A committed registry
    /// change is announced on its `$aws/events/...` topic.
    pub(crate) async fn propose(&self, command: impl Into<Command>) -> ServiceResult<Applied> {
        let command = command.into();
        // Shadow updates, the hot path, skip the state lock.
        let change = match command {
            Command::Shadow(_) => None,
            _ => RegistryChange::of(&command, &self.node.state().read().state),
        };
        let Ok(_permit) = self.proposals.try_acquire() else {
            return Err(ServiceError::Throttled(format!(
                "{PROPOSALS_IN_FLIGHT_MAX} writes are in flight on this node; retry later"
            )));
        };
        let outcome: Outcome = self.node.propose(command).await?;
        let applied = outcome?;
        if let Some(change) = change {
            events::registry(
                &self.broker,
                change,
                &applied,
                |kind, name| self.arn(kind, name),
                self.new_id(),
            );
        }
        Ok(applied)
    }

    /// A linearizable read: `read` sees every write acknowledged before the call.
    pub(crate) async fn read<T>(
        &self,
        read: impl FnOnce(&fleetcore_model::State) -> T,
    ) -> ServiceResult<T> {
        self.node.linearizable_read().await?;
        let applied = self.node.state().read();
        Ok(read(&applied.state))
    }

    /// The node's clock.
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// The proposer's clock, for commands.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A fresh id for a new resource (chosen by the proposer, never in `apply`).
    pub fn new_id(&self) -> String {
        self.entropy.uuid().to_string()
    }

    /// The node's source of random ids.
    pub fn entropy(&self) -> &SharedEntropy {
        &self.entropy
    }
}
