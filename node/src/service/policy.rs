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

/// One request TestAuthorization decides: an MQTT action on resources (ARNs).
#[derive(Debug, Clone)]
pub struct AuthCheck {
    /// The action, e.g. `iot:Publish`.
    pub action: fleetcore_policy::Action,
    /// The resources, all of which the action must be allowed on.
    pub resources: Vec<String>,
}

/// The decision on one [`AuthCheck`], and which policies led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthVerdict {
    /// The combined decision: an explicit deny anywhere wins, then any resource
    /// not allowed denies implicitly.
    pub decision: fleetcore_policy::Decision,
    /// Policies that allow the action on every resource.
    pub allowed: Vec<String>,
    /// Policies that explicitly deny it on some resource.
    pub explicit_deny: Vec<String>,
    /// Policies that neither allow nor deny it.
    pub implicit_deny: Vec<String>,
}

/// Combines decisions over several resources: any explicit deny wins, then any
/// implicit deny; allowed only when every one is.
fn combine(
    decisions: impl Iterator<Item = fleetcore_policy::Decision>,
) -> fleetcore_policy::Decision {
    use fleetcore_policy::Decision;
    let mut combined = Decision::Allow;
    for d in decisions {
        match d {
            Decision::ExplicitDeny => return Decision::ExplicitDeny,
            Decision::ImplicitDeny => combined = Decision::ImplicitDeny,
            Decision::Allow => {}
        }
    }
    combined
}

impl<C: Connector> Service<C> {
    /// GetEffectivePolicies: the policies attached to `principal`, and (with
    /// `thing`) to the thing's groups and their parents, in name order; each
    /// with its default version's document. Linearizable.
    pub async fn effective_policies(
        &self,
        principal: Option<&str>,
        thing: Option<&str>,
    ) -> ServiceResult<Vec<Policy>> {
        let group_arn = |g: &str| self.arn("thinggroup", g);
        let found = self
            .read(|s| {
                let mut targets: Vec<String> = principal.into_iter().map(str::to_string).collect();
                if let Some(thing) = thing {
                    s.registry().thing(thing)?;
                    for group in s.registry().groups_of_thing(thing) {
                        for g in
                            std::iter::once(group.clone()).chain(s.registry().ancestors(&group))
                        {
                            targets.push(group_arn(&g));
                        }
                    }
                }
                let names: std::collections::BTreeSet<&str> = targets
                    .iter()
                    .flat_map(|t| s.policies().attached_to(t))
                    .collect();
                Some(
                    names
                        .into_iter()
                        .filter_map(|n| s.policies().get(n).cloned())
                        .collect::<Vec<Policy>>(),
                )
            })
            .await?;
        match (found, thing) {
            (Some(policies), _) => Ok(policies),
            (None, Some(thing)) => Err(ServiceError::NotFound(format!(
                "Thing {thing} cannot be found."
            ))),
            (None, None) => Ok(Vec::new()),
        }
    }

    /// TestAuthorization: decides each check for a connection of `principal`
    /// with `client_id`, under the principal's effective policies plus
    /// `add` minus `skip` (by name), evaluated the way a connection will be.
    pub async fn test_authorization(
        &self,
        principal: Option<&str>,
        client_id: Option<&str>,
        checks: &[AuthCheck],
        add: &[String],
        skip: &[String],
    ) -> ServiceResult<Vec<AuthVerdict>> {
        let mut policies = self.effective_policies(principal, None).await?;
        for name in add {
            if !policies.iter().any(|p| &p.name == name) {
                policies.push(self.get_policy(name).await?);
            }
        }
        policies.retain(|p| !skip.contains(&p.name));
        let connection = fleetcore_policy::ConnectionContext::new(client_id.unwrap_or_default());
        let compiled: Vec<(String, fleetcore_policy::CompiledPolicies)> = policies
            .iter()
            .filter_map(|p| {
                let document = p.default_document()?;
                match fleetcore_policy::PolicyDocument::parse(document) {
                    Ok(doc) => Some((
                        p.name.clone(),
                        fleetcore_policy::CompiledPolicies::compile(&[doc], &connection),
                    )),
                    Err(e) => {
                        // Stored documents were checked when created; a parser that
                        // grew stricter since must not make the policy allow more.
                        tracing::warn!(policy = %p.name, error = %e, "stored policy no longer parses; it grants nothing");
                        None
                    }
                }
            })
            .collect();
        let request = fleetcore_policy::RequestContext::at((self.now_ms() / 1000) as i64);
        let verdicts = checks
            .iter()
            .map(|check| {
                let mut verdict = AuthVerdict {
                    decision: fleetcore_policy::Decision::ImplicitDeny,
                    allowed: Vec::new(),
                    explicit_deny: Vec::new(),
                    implicit_deny: Vec::new(),
                };
                for (name, policy) in &compiled {
                    let decision = combine(
                        check
                            .resources
                            .iter()
                            .map(|r| policy.evaluate(check.action, r, &request)),
                    );
                    match decision {
                        fleetcore_policy::Decision::Allow => verdict.allowed.push(name.clone()),
                        fleetcore_policy::Decision::ExplicitDeny => {
                            verdict.explicit_deny.push(name.clone())
                        }
                        fleetcore_policy::Decision::ImplicitDeny => {
                            verdict.implicit_deny.push(name.clone())
                        }
                    }
                }
                // All policies together, per resource: one policy may allow a
                // resource another does not mention.
                verdict.decision = if check.resources.is_empty() {
                    fleetcore_policy::Decision::ImplicitDeny
                } else {
                    combine(check.resources.iter().map(|r| {
                        let each = compiled
                            .iter()
                            .map(|(_, p)| p.evaluate(check.action, r, &request));
                        let mut any_allow = false;
                        for d in each {
                            match d {
                                fleetcore_policy::Decision::ExplicitDeny => {
                                    return fleetcore_policy::Decision::ExplicitDeny
                                }
                                fleetcore_policy::Decision::Allow => any_allow = true,
                                fleetcore_policy::Decision::ImplicitDeny => {}
                            }
                        }
                        if any_allow {
                            fleetcore_policy::Decision::Allow
                        } else {
                            fleetcore_policy::Decision::ImplicitDeny
                        }
                    }))
                };
                verdict
            })
            .collect();
        Ok(verdicts)
    }
}
