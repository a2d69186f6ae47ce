//! Rejections: the replicated "no" of `apply`. Every replica reaches the same one.

use serde::{Deserialize, Serialize};

/// Why a command was refused. Part of the replicated outcome, so it must be
/// deterministic: it never carries anything a single node observed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    /// The request is malformed or breaks a rule (AWS `InvalidRequestException`, 400).
    #[error("{0}")]
    Invalid(String),
    /// The named resource does not exist (AWS `ResourceNotFoundException`, 404).
    #[error("{what} not found")]
    NotFound {
        /// e.g. "thing 'lamp-1'".
        what: String,
    },
    /// The resource exists with another configuration (AWS `ResourceAlreadyExistsException`, 409).
    #[error("{what} already exists")]
    AlreadyExists {
        /// e.g. "thing 'lamp-1'".
        what: String,
    },
    /// An expected version did not match (AWS `VersionConflictException`, 409).
    #[error("version conflict: request expects version {requested}, current version is {current}")]
    VersionConflict {
        /// What the request expected.
        requested: u64,
        /// What the resource holds.
        current: u64,
    },
    /// A document or value is above its size limit (413).
    #[error("{what} is {bytes} bytes; the limit is {max}")]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A quota of the replicated state is full (AWS `LimitExceededException`, 410).
    #[error("{what}: the limit is {limit}")]
    LimitExceeded {
        /// Which quota, e.g. "retained messages in the cluster".
        what: String,
        /// Its value.
        limit: u64,
    },
    /// The resource is still in use and cannot be deleted (AWS
    /// `DeleteConflictException`, 409).
    #[error("{0}")]
    DeleteConflict(String),
    /// A resource has all the versions it may keep (AWS
    /// `VersionsLimitExceededException`, 409).
    #[error("{what} has the most versions allowed ({limit}); delete one first")]
    VersionsLimitExceeded {
        /// e.g. "policy 'p'".
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A retried request whose id left the exactly-once table: whether its first
    /// attempt applied can no longer be told, so this attempt was not applied (503).
    #[error(
        "request {request} is too old to tell whether it was applied; it was not applied again"
    )]
    RequestExpired {
        /// The request id.
        request: String,
    },
}

impl Rejection {
    /// `VersionConflict` unless `expected` is absent or equals `current`.
    pub fn check_version(expected: Option<u64>, current: u64) -> Result<(), Rejection> {
        match expected {
            Some(requested) if requested != current => {
                Err(Rejection::VersionConflict { requested, current })
            }
            _ => Ok(()),
        }
    }

    /// Shorthand for [`Rejection::Invalid`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Rejection::Invalid(message.into())
    }
}
