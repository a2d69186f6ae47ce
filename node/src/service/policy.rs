//! IoT policies: CreatePolicy ... ListTargetsForPolicy. A document is checked
//! against the policy language (`fleetcore-policy`) here, at the proposer, so a
//! malformed one is refused with the place of the error before anything is
//! proposed; the replicated state keeps the text.

use fleetcore_model::policy::{self, PolicyCommand};
use fleetcore_model::{Applied, Policy};
use fleetcore_raft::Connector;

use super::{Service, ServiceError, ServiceResult};

/// A version made by CreatePolicy or CreatePolicyVersion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedVersion {
    /// The new version's id.
    pub version: u64,
    /// Whether it is the default version now.
    pub is_default: bool,
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("Policy {name} cannot be found."))
}

/// Checks a document against the policy language: AWS's `MalformedPolicyException`
/// with the place of the first problem.
fn check_document(document: &str) -> ServiceResult<()> {
    fleetcore_policy::PolicyDocument::parse(document)
        .map(|_| ())
        .map_err(|e| ServiceError::MalformedPolicy(e.to_string()))
}

fn created(operation: &'static str, applied: Applied) -> ServiceResult<CreatedVersion> {
    match applied {
        Applied::PolicyVersion {
            version,
            is_default,
            ..
        } => Ok(CreatedVersion {
            version,
            is_default,
        }),
        other => Err(ServiceError::unexpected(operation, &other)),
    }
}

impl<C: Connector> Service<C> {
    /// The ARN of policy `name`.
    pub fn policy_arn(&self, name: &str) -> String {
        self.arn("policy", name)
    }

    /// CreatePolicy: version 1, the default.
    pub async fn create_policy(&self, name: &str, document: &str) -> ServiceResult<CreatedVersion> {
        policy::check_name(name)?;
        check_document(document)?;
        let command = PolicyCommand::Create {
            name: name.to_string(),
            document: document.to_string(),
            at_ms: self.now_ms(),
        };
        created("CreatePolicy", self.propose(command).await?)
    }

    /// CreatePolicyVersion.
    pub async fn create_policy_version(
        &self,
        name: &str,
        document: &str,
        set_as_default: bool,
    ) -> ServiceResult<CreatedVersion> {
        policy::check_name(name)?;
        check_document(document)?;
        let command = PolicyCommand::CreateVersion {
            name: name.to_string(),
            document: document.to_string(),
            set_as_default,
            at_ms: self.now_ms(),
        };
        created("CreatePolicyVersion", self.propose(command).await?)
    }

    /// GetPolicy (and every version, for GetPolicyVersion and ListPolicyVersions),
    /// linearizable.
    pub async fn get_policy(&self, name: &str) -> ServiceResult<Policy> {
        policy::check_name(name)?;
        self.read(|s| s.policies().get(name).cloned())
            .await?
            .ok_or_else(|| not_found(name))
    }

    /// ListPolicies, linearizable: one page in name order, and the marker to go on.
    pub async fn list_policies(
        &self,
        marker: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<Policy>, Option<String>)> {
        self.read(|s| s.policies().page(marker, limit)).await
    }

    /// SetDefaultPolicyVersion.
    pub async fn set_default_policy_version(&self, name: &str, version: u64) -> ServiceResult<()> {
        policy::check_name(name)?;
        let command = PolicyCommand::SetDefaultVersion {
            name: name.to_string(),
            version,
            at_ms: self.now_ms(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// DeletePolicyVersion.
    pub async fn delete_policy_version(&self, name: &str, version: u64) -> ServiceResult<()> {
        policy::check_name(name)?;
        let command = PolicyCommand::DeleteVersion {
            name: name.to_string(),
            version,
        };
        self.propose(command).await.map(|_| ())
    }

    /// DeletePolicy.
    pub async fn delete_policy(&self, name: &str) -> ServiceResult<()> {
        policy::check_name(name)?;
        let command = PolicyCommand::Delete {
            name: name.to_string(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// AttachPolicy.
    pub async fn attach_policy(&self, name: &str, target: &str) -> ServiceResult<()> {
        policy::check_name(name)?;
        let command = PolicyCommand::Attach {
            name: name.to_string(),
            target: target.to_string(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// DetachPolicy.
    pub async fn detach_policy(&self, name: &str, target: &str) -> ServiceResult<()> {
        policy::check_name(name)?;
        let command = PolicyCommand::Detach {
            name: name.to_string(),
            target: target.to_string(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// ListAttachedPolicies, linearizable: the policies attached to `target` in
    /// name order after `marker`, at most `limit`, and the marker to go on.
    pub async fn list_attached_policies(
        &self,
        target: &str,
        marker: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<String>, Option<String>)> {
        self.read(|s| {
            let names: Vec<String> = s
                .policies()
                .attached_to(target)
                .map(str::to_string)
                .collect();
            fleetcore_model::registry::page(names.iter(), |n| n, marker, limit)
        })
        .await
    }

    /// ListTargetsForPolicy, linearizable: one page of targets in order.
    pub async fn list_targets_for_policy(
        &self,
        name: &str,
        marker: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<String>, Option<String>)> {
        policy::check_name(name)?;
        self.read(|s| {
            s.policies()
                .get(name)
                .map(|p| fleetcore_model::registry::page(p.targets.iter(), |t| t, marker, limit))
        })
        .await?
        .ok_or_else(|| not_found(name))
    }
}
