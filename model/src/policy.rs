//! IoT policies (AWS CreatePolicy, CreatePolicyVersion, SetDefaultPolicyVersion,
//! DeletePolicyVersion, DeletePolicy, AttachPolicy, DetachPolicy): named documents
//! with up to five versions, one of them the default, and the targets they are
//! attached to (certificate or thing-group ARNs, any principal string).
//!
//! The document's language is checked by the proposer (`fleetcore-policy`, which
//! answers `MalformedPolicyException` with the place of the error); `apply` keeps
//! the text and enforces AWS's rules about versions and attachments, so every
//! replica holds the same policies whatever parser version a proposer ran.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::command::{Applied, Outcome};
use crate::error::Rejection;
use crate::state::{Changes, StateKey};

/// Versions a policy keeps (AWS IoT: 5; a sixth is `VersionsLimitExceededException`).
pub const VERSIONS_MAX: usize = 5;
/// Policies attached to one target (AWS IoT: 10 per certificate or group).
pub const POLICIES_PER_TARGET_MAX: usize = 10;
/// Policies in the cluster: a bound on the replicated state.
pub const POLICIES_MAX: usize = 100_000;
/// Longest policy name (AWS: 128).
pub const NAME_LEN_MAX: usize = 128;
/// Longest document text (AWS's API shape: 404,600 characters; the policy
/// language itself allows 2,048 without whitespace).
pub const DOCUMENT_LEN_MAX: usize = 404_600;
/// Longest target (an ARN or principal).
pub const TARGET_LEN_MAX: usize = 2048;

/// A change to the policies. Variant order is part of format 2: new variants go last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyCommand {
    /// CreatePolicy: version 1, the default.
    Create {
        /// Policy name.
        name: String,
        /// The document, as sent.
        document: String,
        /// When, ms since the epoch (stamped by the proposer).
        at_ms: u64,
    },
    /// CreatePolicyVersion.
    CreateVersion {
        /// Policy name.
        name: String,
        /// The document, as sent.
        document: String,
        /// Make it the default version.
        set_as_default: bool,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// SetDefaultPolicyVersion.
    SetDefaultVersion {
        /// Policy name.
        name: String,
        /// The version to make the default.
        version: u64,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// DeletePolicyVersion (never the default version).
    DeleteVersion {
        /// Policy name.
        name: String,
        /// The version to delete.
        version: u64,
    },
    /// DeletePolicy: only when detached from everything and down to one version.
    Delete {
        /// Policy name.
        name: String,
    },
    /// AttachPolicy.
    Attach {
        /// Policy name.
        name: String,
        /// The principal or thing-group ARN.
        target: String,
    },
    /// DetachPolicy.
    Detach {
        /// Policy name.
        name: String,
        /// The principal or thing-group ARN.
        target: String,
    },
}

impl PolicyCommand {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyCommand::Create { .. } => "create_policy",
            PolicyCommand::CreateVersion { .. } => "create_policy_version",
            PolicyCommand::SetDefaultVersion { .. } => "set_default_policy_version",
            PolicyCommand::DeleteVersion { .. } => "delete_policy_version",
            PolicyCommand::Delete { .. } => "delete_policy",
            PolicyCommand::Attach { .. } => "attach_policy",
            PolicyCommand::Detach { .. } => "detach_policy",
        }
    }

    /// The policy the command is about.
    pub fn name(&self) -> &str {
        match self {
            PolicyCommand::Create { name, .. }
            | PolicyCommand::CreateVersion { name, .. }
            | PolicyCommand::SetDefaultVersion { name, .. }
            | PolicyCommand::DeleteVersion { name, .. }
            | PolicyCommand::Delete { name }
            | PolicyCommand::Attach { name, .. }
            | PolicyCommand::Detach { name, .. } => name,
        }
    }
}

impl std::fmt::Display for PolicyCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyCommand::Attach { name, target } | PolicyCommand::Detach { name, target } => {
                write!(f, "{} {name} {target}", self.kind())
            }
            PolicyCommand::SetDefaultVersion { name, version, .. }
            | PolicyCommand::DeleteVersion { name, version } => {
                write!(f, "{} {name} v{version}", self.kind())
            }
            other => write!(f, "{} {}", other.kind(), other.name()),
        }
    }
}

/// One version of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// The document text, as sent.
    pub document: String,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
}

/// A policy: its versions, which one is in force, and where it is attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Unique name, the key.
    pub name: String,
    /// Versions by id (ids count up from 1 and are never reused).
    pub versions: BTreeMap<u64, PolicyVersion>,
    /// The version in force.
    pub default_version: u64,
    /// The id the next version gets.
    pub next_version: u64,
    /// Principals and thing groups it is attached to.
    pub targets: BTreeSet<String>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
    /// Last change of its versions, ms since the epoch.
    pub updated_at_ms: u64,
    /// Counts every change (AWS's `generationId`).
    pub generation: u64,
}

impl Policy {
    /// The default version's document.
    pub fn default_document(&self) -> Option<&str> {
        self.versions
            .get(&self.default_version)
            .map(|v| v.document.as_str())
    }
}

/// The policies' part of the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policies {
    pub(crate) policies: BTreeMap<String, Policy>,
    /// Derived: target → names of the policies attached to it.
    by_target: BTreeMap<String, BTreeSet<String>>,
}

/// Checks a policy name: 1 to 128 of `[A-Za-z0-9_+=,.@-]`.
pub fn check_name(name: &str) -> Result<(), Rejection> {
    if name.is_empty() || name.len() > NAME_LEN_MAX {
        return Err(Rejection::invalid(format!(
            "policyName must be 1 to {NAME_LEN_MAX} characters long, got {}",
            name.len()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_+=,.@-".contains(*c)))
    {
        return Err(Rejection::invalid(format!(
            "policyName '{name}' contains '{bad}'; allowed are letters, digits and _+=,.@-"
        )));
    }
    Ok(())
}

fn check_document(document: &str) -> Result<(), Rejection> {
    if document.len() > DOCUMENT_LEN_MAX {
        return Err(Rejection::TooLarge {
            what: "policyDocument".into(),
            bytes: document.len(),
            max: DOCUMENT_LEN_MAX,
        });
    }
    Ok(())
}

fn not_found(name: &str) -> Rejection {
    Rejection::NotFound {
        what: format!("policy '{name}'"),
    }
}

impl Policies {
    /// Applies one policy command; `changed` collects the keys it wrote.
    pub(crate) fn apply(&mut self, command: &PolicyCommand, changed: &mut Changes) -> Outcome {
        let name = command.name();
        check_name(name)?;
        match command {
            PolicyCommand::Create {
                name,
                document,
                at_ms,
            } => {
                check_document(document)?;
                if self.policies.contains_key(name) {
                    return Err(Rejection::AlreadyExists {
                        what: format!("policy '{name}'"),
                    });
                }
                if self.policies.len() >= POLICIES_MAX {
                    return Err(Rejection::LimitExceeded {
                        what: "policies in the cluster".into(),
                        limit: POLICIES_MAX as u64,
                    });
                }
                let policy = Policy {
                    name: name.clone(),
                    versions: BTreeMap::from([(
                        1,
                        PolicyVersion {
                            document: document.clone(),
                            created_at_ms: *at_ms,
                        },
                    )]),
                    default_version: 1,
                    next_version: 2,
                    targets: BTreeSet::new(),
                    created_at_ms: *at_ms,
                    updated_at_ms: *at_ms,
                    generation: 1,
                };
                self.policies.insert(name.clone(), policy);
                changed.insert(StateKey::Policy(name.clone()));
                Ok(Applied::PolicyVersion {
                    name: name.clone(),
                    version: 1,
                    is_default: true,
                })
            }
            PolicyCommand::CreateVersion {
                name,
                document,
                set_as_default,
                at_ms,
            } => {
                check_document(document)?;
                let policy = self.policies.get_mut(name).ok_or_else(|| not_found(name))?;
                if policy.versions.len() >= VERSIONS_MAX {
                    return Err(Rejection::VersionsLimitExceeded {
                        what: format!("policy '{name}'"),
                        limit: VERSIONS_MAX as u64,
                    });
                }
                let version = policy.next_version;
                policy.versions.insert(
                    version,
                    PolicyVersion {
                        document: document.clone(),
                        created_at_ms: *at_ms,
                    },
                );
                policy.next_version += 1;
                if *set_as_default {
                    policy.default_version = version;
                }
                policy.updated_at_ms = *at_ms;
                policy.generation += 1;
                changed.insert(StateKey::Policy(name.clone()));
                Ok(Applied::PolicyVersion {
                    name: name.clone(),
                    version,
                    is_default: *set_as_default,
                })
            }
            PolicyCommand::SetDefaultVersion {
                name,
                version,
                at_ms,
            } => {
                let policy = self.policies.get_mut(name).ok_or_else(|| not_found(name))?;
                if !policy.versions.contains_key(version) {
                    return Err(Rejection::NotFound {
                        what: format!("version {version} of policy '{name}'"),
                    });
                }
                if policy.default_version != *version {
                    policy.default_version = *version;
                    policy.updated_at_ms = *at_ms;
                    policy.generation += 1;
                    changed.insert(StateKey::Policy(name.clone()));
                }
                Ok(Applied::Done)
            }
            PolicyCommand::DeleteVersion { name, version } => {
                let policy = self.policies.get_mut(name).ok_or_else(|| not_found(name))?;
                if !policy.versions.contains_key(version) {
                    return Err(Rejection::NotFound {
                        what: format!("version {version} of policy '{name}'"),
                    });
                }
                if policy.default_version == *version {
                    return Err(Rejection::DeleteConflict(format!(
                        "version {version} is the default version of policy '{name}'; make another version the default first"
                    )));
                }
                policy.versions.remove(version);
                policy.generation += 1;
                changed.insert(StateKey::Policy(name.clone()));
                Ok(Applied::Done)
            }
            PolicyCommand::Delete { name } => {
                let policy = self.policies.get(name).ok_or_else(|| not_found(name))?;
                if !policy.targets.is_empty() {
                    return Err(Rejection::DeleteConflict(format!(
                        "policy '{name}' is attached to {} target(s); detach it first",
                        policy.targets.len()
                    )));
                }
                if policy.versions.len() > 1 {
                    return Err(Rejection::DeleteConflict(format!(
                        "policy '{name}' has {} versions; delete all but the default first",
                        policy.versions.len()
                    )));
                }
                self.policies.remove(name);
                changed.insert(StateKey::Policy(name.clone()));
                Ok(Applied::Done)
            }
            PolicyCommand::Attach { name, target } => {
                check_target(target)?;
                let policy = self.policies.get_mut(name).ok_or_else(|| not_found(name))?;
                if policy.targets.contains(target) {
                    return Ok(Applied::Done);
                }
                let attached = self.by_target.get(target).map_or(0, BTreeSet::len);
                if attached >= POLICIES_PER_TARGET_MAX {
                    return Err(Rejection::LimitExceeded {
                        what: format!("policies attached to '{target}'"),
                        limit: POLICIES_PER_TARGET_MAX as u64,
                    });
                }
                policy.targets.insert(target.clone());
                policy.generation += 1;
                self.by_target
                    .entry(target.clone())
                    .or_default()
                    .insert(name.clone());
                changed.insert(StateKey::Policy(name.clone()));
                Ok(Applied::Done)
            }
            PolicyCommand::Detach { name, target } => {
                check_target(target)?;
                // AWS's DetachPolicy has no "not found": detaching what is not
                // attached succeeds.
                let Some(policy) = self.policies.get_mut(name) else {
                    return Ok(Applied::Done);
                };
                if policy.targets.remove(target) {
                    policy.generation += 1;
                    if let Some(names) = self.by_target.get_mut(target) {
                        names.remove(name);
                        if names.is_empty() {
                            self.by_target.remove(target);
                        }
                    }
                    changed.insert(StateKey::Policy(name.clone()));
                }
                Ok(Applied::Done)
            }
        }
    }

    /// A policy by name.
    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies.get(name)
    }

    /// Policies in name order after `after`, at most `limit`, and the name to
    /// continue after when more remain.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (Vec<Policy>, Option<String>) {
        crate::registry::page(self.policies.values(), |p| &p.name, after, limit)
    }

    /// Names of the policies attached to `target`, in name order.
    pub fn attached_to(&self, target: &str) -> impl Iterator<Item = &str> {
        self.by_target
            .get(target)
            .into_iter()
            .flat_map(|names| names.iter().map(String::as_str))
    }

    /// How many policies there are.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Puts a stored policy back (loading from disk or a snapshot).
    pub(crate) fn insert(&mut self, policy: Policy) {
        if let Some(old) = self.policies.remove(&policy.name) {
            for target in &old.targets {
                if let Some(names) = self.by_target.get_mut(target) {
                    names.remove(&old.name);
                    if names.is_empty() {
                        self.by_target.remove(target);
                    }
                }
            }
        }
        for target in &policy.targets {
            self.by_target
                .entry(target.clone())
                .or_default()
                .insert(policy.name.clone());
        }
        self.policies.insert(policy.name.clone(), policy);
    }

    /// Every policy, in name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.policies.values()
    }
}

fn check_target(target: &str) -> Result<(), Rejection> {
    if target.is_empty() || target.len() > TARGET_LEN_MAX {
        return Err(Rejection::invalid(format!(
            "target must be 1 to {TARGET_LEN_MAX} characters long, got {}",
            target.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(p: &mut Policies, c: PolicyCommand) -> Outcome {
        let mut changed = Changes::new();
        let before = p.clone();
        let out = p.apply(&c, &mut changed);
        if out.is_err() {
            assert_eq!(*p, before, "a refused command changed nothing");
        }
        out
    }

    fn create(name: &str) -> PolicyCommand {
        PolicyCommand::Create {
            name: name.into(),
            document: "{}".into(),
            at_ms: 1,
        }
    }

    fn version(name: &str, default: bool) -> PolicyCommand {
        PolicyCommand::CreateVersion {
            name: name.into(),
            document: "{\"v\":1}".into(),
            set_as_default: default,
            at_ms: 2,
        }
    }

    #[test]
    fn versions_count_up_and_stop_at_five() {
        let mut p = Policies::default();
        assert!(apply(&mut p, create("p")).is_ok());
        assert!(matches!(
            apply(&mut p, create("p")),
            Err(Rejection::AlreadyExists { .. })
        ));
        for v in 2..=5 {
            let out = apply(&mut p, version("p", v == 3));
            assert!(
                matches!(out, Ok(Applied::PolicyVersion { version, .. }) if version == v),
                "{out:?}"
            );
        }
        assert_eq!(p.get("p").map(|p| p.default_version), Some(3));
        assert!(matches!(
            apply(&mut p, version("p", false)),
            Err(Rejection::VersionsLimitExceeded { .. })
        ));
        // The default version cannot go; another can, and its id is not reused.
        assert!(matches!(
            apply(
                &mut p,
                PolicyCommand::DeleteVersion {
                    name: "p".into(),
                    version: 3
                }
            ),
            Err(Rejection::DeleteConflict(_))
        ));
        assert!(apply(
            &mut p,
            PolicyCommand::DeleteVersion {
                name: "p".into(),
                version: 2
            }
        )
        .is_ok());
        let out = apply(&mut p, version("p", false));
        assert!(matches!(out, Ok(Applied::PolicyVersion { version: 6, .. })));
    }

    #[test]
    fn delete_needs_no_targets_and_one_version() {
        let mut p = Policies::default();
        assert!(apply(&mut p, create("p")).is_ok());
        let attach = PolicyCommand::Attach {
            name: "p".into(),
            target: "arn:aws:iot:local:0:cert/abc".into(),
        };
        assert!(apply(&mut p, attach.clone()).is_ok());
        assert!(apply(&mut p, attach).is_ok(), "attaching again is fine");
        assert_eq!(
            p.attached_to("arn:aws:iot:local:0:cert/abc")
                .collect::<Vec<_>>(),
            ["p"]
        );
        let delete = PolicyCommand::Delete { name: "p".into() };
        assert!(matches!(
            apply(&mut p, delete.clone()),
            Err(Rejection::DeleteConflict(_))
        ));
        assert!(apply(
            &mut p,
            PolicyCommand::Detach {
                name: "p".into(),
                target: "arn:aws:iot:local:0:cert/abc".into()
            }
        )
        .is_ok());
        assert_eq!(p.attached_to("arn:aws:iot:local:0:cert/abc").count(), 0);
        assert!(apply(&mut p, version("p", true)).is_ok());
        assert!(matches!(
            apply(&mut p, delete.clone()),
            Err(Rejection::DeleteConflict(_))
        ));
        assert!(apply(
            &mut p,
            PolicyCommand::DeleteVersion {
                name: "p".into(),
                version: 1
            }
        )
        .is_ok());
        assert!(apply(&mut p, delete).is_ok());
        assert!(p.is_empty());
    }

    #[test]
    fn a_target_takes_at_most_ten_policies() {
        let mut p = Policies::default();
        for i in 0..=POLICIES_PER_TARGET_MAX {
            let name = format!("p{i}");
            assert!(apply(&mut p, create(&name)).is_ok());
            let out = apply(
                &mut p,
                PolicyCommand::Attach {
                    name,
                    target: "t".into(),
                },
            );
            assert_eq!(out.is_ok(), i < POLICIES_PER_TARGET_MAX, "{i}: {out:?}");
        }
    }

    #[test]
    fn names_and_sizes_are_checked() {
        let mut p = Policies::default();
        assert!(matches!(
            apply(&mut p, create("bad name")),
            Err(Rejection::Invalid(_))
        ));
        assert!(apply(&mut p, create("ok_+=,.@-1")).is_ok());
        let big = PolicyCommand::Create {
            name: "big".into(),
            document: "x".repeat(DOCUMENT_LEN_MAX + 1),
            at_ms: 1,
        };
        assert!(matches!(
            apply(&mut p, big),
            Err(Rejection::TooLarge { .. })
        ));
    }

    #[test]
    fn reloading_rebuilds_the_target_index() {
        let mut p = Policies::default();
        assert!(apply(&mut p, create("a")).is_ok());
        assert!(apply(
            &mut p,
            PolicyCommand::Attach {
                name: "a".into(),
                target: "t".into()
            }
        )
        .is_ok());
        let mut loaded = Policies::default();
        for policy in p.iter() {
            loaded.insert(policy.clone());
        }
        assert_eq!(loaded, p);
    }
}
