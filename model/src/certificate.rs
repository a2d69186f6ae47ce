//! Device certificates (AWS RegisterCertificate(WithoutCA), CreateKeysAndCertificate,
//! UpdateCertificate, DeleteCertificate) and the things attached to them as
//! principals (AttachThingPrincipal, DetachThingPrincipal).
//!
//! A certificate is known by its id, the SHA-256 of its DER bytes (what the TLS
//! listener computes from the client's certificate). The proposer parses the PEM
//! and stamps the validity into the command; `apply` keeps the record and the
//! rules of status, attachments and deletion. Private keys are never stored.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::command::{Applied, Outcome};
use crate::error::Rejection;
use crate::state::{Changes, StateKey};

/// Certificates in the cluster: a bound on the replicated state.
pub const CERTIFICATES_MAX: usize = 1_000_000;
/// Longest certificate PEM accepted.
pub const PEM_LEN_MAX: usize = 65_536;
/// Things one certificate may be attached to.
pub const THINGS_PER_CERTIFICATE_MAX: usize = 1000;

/// AWS's certificate statuses that Fleetcore uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateStatus {
    /// May connect.
    Active,
    /// Refused until made active again.
    Inactive,
    /// Refused for good: a revoked certificate cannot be made active again.
    Revoked,
}

impl CertificateStatus {
    /// AWS's name, e.g. `ACTIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::Active => "ACTIVE",
            CertificateStatus::Inactive => "INACTIVE",
            CertificateStatus::Revoked => "REVOKED",
        }
    }

    /// Parses AWS's name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ACTIVE" => Some(CertificateStatus::Active),
            "INACTIVE" => Some(CertificateStatus::Inactive),
            "REVOKED" => Some(CertificateStatus::Revoked),
            _ => None,
        }
    }
}

/// A change to the certificates. Variant order is part of format 2: new
/// variants go last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertificateCommand {
    /// Registers a certificate (made by CreateKeysAndCertificate or brought by
    /// the user).
    Register {
        /// SHA-256 of the DER bytes, lowercase hex.
        id: String,
        /// The certificate, PEM.
        pem: String,
        /// Its status from the start.
        status: CertificateStatus,
        /// Validity start, ms since the epoch (from the certificate).
        not_before_ms: u64,
        /// Validity end, ms since the epoch (from the certificate).
        not_after_ms: u64,
        /// When, ms since the epoch (stamped by the proposer).
        at_ms: u64,
    },
    /// UpdateCertificate: a new status.
    UpdateStatus {
        /// The certificate.
        id: String,
        /// The new status.
        status: CertificateStatus,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// DeleteCertificate: not while active or attached to a thing; with
    /// `force`, even while policies are attached (they are detached).
    Delete {
        /// The certificate.
        id: String,
        /// Its ARN, as policies name it when attached.
        arn: String,
        /// AWS's `forceDelete`.
        force: bool,
    },
    /// AttachThingPrincipal.
    AttachThing {
        /// The certificate.
        id: String,
        /// The thing.
        thing: String,
    },
    /// DetachThingPrincipal.
    DetachThing {
        /// The certificate.
        id: String,
        /// The thing.
        thing: String,
    },
}

impl CertificateCommand {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CertificateCommand::Register { .. } => "register_certificate",
            CertificateCommand::UpdateStatus { .. } => "update_certificate",
            CertificateCommand::Delete { .. } => "delete_certificate",
            CertificateCommand::AttachThing { .. } => "attach_thing_principal",
            CertificateCommand::DetachThing { .. } => "detach_thing_principal",
        }
    }

    /// The certificate the command is about.
    pub fn id(&self) -> &str {
        match self {
            CertificateCommand::Register { id, .. }
            | CertificateCommand::UpdateStatus { id, .. }
            | CertificateCommand::Delete { id, .. }
            | CertificateCommand::AttachThing { id, .. }
            | CertificateCommand::DetachThing { id, .. } => id,
        }
    }
}

impl std::fmt::Display for CertificateCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateCommand::AttachThing { id, thing }
            | CertificateCommand::DetachThing { id, thing } => {
                write!(f, "{} {id} {thing}", self.kind())
            }
            CertificateCommand::UpdateStatus { id, status, .. } => {
                write!(f, "{} {id} {}", self.kind(), status.as_str())
            }
            other => write!(f, "{} {}", other.kind(), other.id()),
        }
    }
}

/// A registered certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// SHA-256 of the DER bytes, lowercase hex: the key.
    pub id: String,
    /// The certificate, PEM.
    pub pem: String,
    /// Whether it may connect.
    pub status: CertificateStatus,
    /// Validity start, ms since the epoch.
    pub not_before_ms: u64,
    /// Validity end, ms since the epoch.
    pub not_after_ms: u64,
    /// Registration time, ms since the epoch.
    pub created_at_ms: u64,
    /// Last change, ms since the epoch.
    pub updated_at_ms: u64,
    /// Things attached to it as a principal.
    pub things: BTreeSet<String>,
    /// Counts every change (AWS's `generationId`).
    pub generation: u64,
}

/// The certificates' part of the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Certificates {
    pub(crate) certificates: BTreeMap<String, Certificate>,
    /// Derived: thing → ids of the certificates attached to it.
    by_thing: BTreeMap<String, BTreeSet<String>>,
}

/// Checks a certificate id: 64 lowercase hex digits.
pub fn check_id(id: &str) -> Result<(), Rejection> {
    if id.len() != 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Rejection::invalid(format!(
            "certificateId '{id}' is not 64 lowercase hex digits"
        )));
    }
    Ok(())
}

fn not_found(id: &str) -> Rejection {
    Rejection::NotFound {
        what: format!("certificate '{id}'"),
    }
}

impl Certificates {
    /// Applies one certificate command; `thing_exists` and `policies_attached`
    /// answer for the other domains; `changed` collects the keys it wrote.
    pub(crate) fn apply(
        &mut self,
        command: &CertificateCommand,
        thing_exists: impl Fn(&str) -> bool,
        changed: &mut Changes,
    ) -> Outcome {
        check_id(command.id())?;
        match command {
            CertificateCommand::Register {
                id,
                pem,
                status,
                not_before_ms,
                not_after_ms,
                at_ms,
            } => {
                if pem.len() > PEM_LEN_MAX {
                    return Err(Rejection::TooLarge {
                        what: "certificatePem".into(),
                        bytes: pem.len(),
                        max: PEM_LEN_MAX,
                    });
                }
                if self.certificates.contains_key(id) {
                    return Err(Rejection::AlreadyExists {
                        what: format!("certificate '{id}'"),
                    });
                }
                if self.certificates.len() >= CERTIFICATES_MAX {
                    return Err(Rejection::LimitExceeded {
                        what: "certificates in the cluster".into(),
                        limit: CERTIFICATES_MAX as u64,
                    });
                }
                let certificate = Certificate {
                    id: id.clone(),
                    pem: pem.clone(),
                    status: *status,
                    not_before_ms: *not_before_ms,
                    not_after_ms: *not_after_ms,
                    created_at_ms: *at_ms,
                    updated_at_ms: *at_ms,
                    things: BTreeSet::new(),
                    generation: 1,
                };
                self.certificates.insert(id.clone(), certificate.clone());
                changed.insert(StateKey::Certificate(id.clone()));
                Ok(Applied::Certificate(Box::new(certificate)))
            }
            CertificateCommand::UpdateStatus { id, status, at_ms } => {
                let c = self.certificates.get_mut(id).ok_or_else(|| not_found(id))?;
                if c.status == CertificateStatus::Revoked && *status != CertificateStatus::Revoked {
                    return Err(Rejection::invalid(format!(
                        "certificate '{id}' is revoked; it cannot become {}",
                        status.as_str()
                    )));
                }
                if c.status != *status {
                    c.status = *status;
                    c.updated_at_ms = *at_ms;
                    c.generation += 1;
                    changed.insert(StateKey::Certificate(id.clone()));
                }
                Ok(Applied::Done)
            }
            CertificateCommand::Delete { id, .. } => {
                // Policies attached to it are checked (and with `force` detached)
                // by the state, which owns both domains.
                let c = self.certificates.get(id).ok_or_else(|| not_found(id))?;
                if c.status == CertificateStatus::Active {
                    return Err(Rejection::DeleteConflict(format!(
                        "certificate '{id}' is ACTIVE; make it INACTIVE first"
                    )));
                }
                if !c.things.is_empty() {
                    return Err(Rejection::DeleteConflict(format!(
                        "certificate '{id}' is attached to {} thing(s); detach them first",
                        c.things.len()
                    )));
                }
                self.certificates.remove(id);
                changed.insert(StateKey::Certificate(id.clone()));
                Ok(Applied::Done)
            }
            CertificateCommand::AttachThing { id, thing } => {
                if !thing_exists(thing) {
                    return Err(Rejection::NotFound {
                        what: format!("thing '{thing}'"),
                    });
                }
                let c = self.certificates.get_mut(id).ok_or_else(|| not_found(id))?;
                if c.things.contains(thing) {
                    return Ok(Applied::Done);
                }
                if c.things.len() >= THINGS_PER_CERTIFICATE_MAX {
                    return Err(Rejection::LimitExceeded {
                        what: format!("things attached to certificate '{id}'"),
                        limit: THINGS_PER_CERTIFICATE_MAX as u64,
                    });
                }
                c.things.insert(thing.clone());
                c.generation += 1;
                self.by_thing
                    .entry(thing.clone())
                    .or_default()
                    .insert(id.clone());
                changed.insert(StateKey::Certificate(id.clone()));
                Ok(Applied::Done)
            }
            CertificateCommand::DetachThing { id, thing } => {
                let c = self.certificates.get_mut(id).ok_or_else(|| not_found(id))?;
                if c.things.remove(thing) {
                    c.generation += 1;
                    if let Some(ids) = self.by_thing.get_mut(thing) {
                        ids.remove(id);
                        if ids.is_empty() {
                            self.by_thing.remove(thing);
                        }
                    }
                    changed.insert(StateKey::Certificate(id.clone()));
                }
                Ok(Applied::Done)
            }
        }
    }

    /// A certificate by id.
    pub fn get(&self, id: &str) -> Option<&Certificate> {
        self.certificates.get(id)
    }

    /// Certificates in id order after `after`, at most `limit`, and the id to
    /// continue after when more remain.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (Vec<Certificate>, Option<String>) {
        crate::registry::page(self.certificates.values(), |c| &c.id, after, limit)
    }

    /// Ids of the certificates attached to `thing`, in order.
    pub fn of_thing(&self, thing: &str) -> impl Iterator<Item = &str> {
        self.by_thing
            .get(thing)
            .into_iter()
            .flat_map(|ids| ids.iter().map(String::as_str))
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// Puts a stored certificate back (loading from disk or a snapshot).
    pub(crate) fn insert(&mut self, certificate: Certificate) {
        if let Some(old) = self.certificates.remove(&certificate.id) {
            for thing in &old.things {
                if let Some(ids) = self.by_thing.get_mut(thing) {
                    ids.remove(&old.id);
                    if ids.is_empty() {
                        self.by_thing.remove(thing);
                    }
                }
            }
        }
        for thing in &certificate.things {
            self.by_thing
                .entry(thing.clone())
                .or_default()
                .insert(certificate.id.clone());
        }
        self.certificates
            .insert(certificate.id.clone(), certificate);
    }

    /// Every certificate, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Certificate> {
        self.certificates.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::policy::PolicyCommand;
    use crate::registry::RegistryCommand;
    use crate::state::State;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ARN: &str =
        "arn:aws:iot:local:0:cert/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn register(status: CertificateStatus) -> Command {
        Command::Certificate(CertificateCommand::Register {
            id: ID.into(),
            pem: "PEM".into(),
            status,
            not_before_ms: 0,
            not_after_ms: 10,
            at_ms: 1,
        })
    }

    fn cert(c: CertificateCommand) -> Command {
        Command::Certificate(c)
    }

    fn thing(name: &str) -> Command {
        Command::Registry(RegistryCommand::CreateThing {
            name: name.into(),
            thing_type_name: None,
            attributes: Default::default(),
            thing_id: "id".into(),
            at_ms: 1,
        })
    }

    #[test]
    fn a_certificate_goes_only_when_inactive_and_detached() {
        let mut s = State::default();
        assert!(s.apply(&register(CertificateStatus::Active)).is_ok());
        assert!(matches!(
            s.apply(&register(CertificateStatus::Active)),
            Err(Rejection::AlreadyExists { .. })
        ));
        assert!(s.apply(&thing("lamp")).is_ok());
        // Attaching needs the thing.
        assert!(matches!(
            s.apply(&cert(CertificateCommand::AttachThing {
                id: ID.into(),
                thing: "nope".into()
            })),
            Err(Rejection::NotFound { .. })
        ));
        let attach = cert(CertificateCommand::AttachThing {
            id: ID.into(),
            thing: "lamp".into(),
        });
        assert!(s.apply(&attach).is_ok());
        assert_eq!(s.certificates().of_thing("lamp").collect::<Vec<_>>(), [ID]);
        // A thing with a principal cannot be deleted.
        let delete_thing = Command::Registry(RegistryCommand::DeleteThing {
            name: "lamp".into(),
            expected_version: None,
        });
        assert!(matches!(s.apply(&delete_thing), Err(Rejection::Invalid(_))));
        assert!(s
            .apply(&Command::Policy(PolicyCommand::Create {
                name: "p".into(),
                document: "{}".into(),
                at_ms: 1
            }))
            .is_ok());
        assert!(s
            .apply(&Command::Policy(PolicyCommand::Attach {
                name: "p".into(),
                target: ARN.into()
            }))
            .is_ok());
        let delete = |force| {
            cert(CertificateCommand::Delete {
                id: ID.into(),
                arn: ARN.into(),
                force,
            })
        };
        // Active, attached to a thing, then to a policy: each refuses.
        assert!(matches!(
            s.apply(&delete(true)),
            Err(Rejection::DeleteConflict(_))
        ));
        assert!(s
            .apply(&cert(CertificateCommand::UpdateStatus {
                id: ID.into(),
                status: CertificateStatus::Inactive,
                at_ms: 2
            }))
            .is_ok());
        assert!(matches!(
            s.apply(&delete(true)),
            Err(Rejection::DeleteConflict(_))
        ));
        assert!(s
            .apply(&cert(CertificateCommand::DetachThing {
                id: ID.into(),
                thing: "lamp".into()
            }))
            .is_ok());
        assert!(s.apply(&delete_thing).is_ok());
        assert!(matches!(
            s.apply(&delete(false)),
            Err(Rejection::DeleteConflict(_))
        ));
        // Forced: the policy is detached with it.
        assert!(s.apply(&delete(true)).is_ok());
        assert!(s.certificates().get(ID).is_none());
        assert_eq!(s.policies().attached_to(ARN).count(), 0);
    }

    #[test]
    fn a_revoked_certificate_stays_revoked() {
        let mut s = State::default();
        assert!(s.apply(&register(CertificateStatus::Active)).is_ok());
        let status = |status| {
            cert(CertificateCommand::UpdateStatus {
                id: ID.into(),
                status,
                at_ms: 2,
            })
        };
        assert!(s.apply(&status(CertificateStatus::Revoked)).is_ok());
        assert!(matches!(
            s.apply(&status(CertificateStatus::Active)),
            Err(Rejection::Invalid(_))
        ));
        assert!(matches!(
            s.apply(&cert(CertificateCommand::UpdateStatus {
                id: "not-hex".into(),
                status: CertificateStatus::Active,
                at_ms: 2
            })),
            Err(Rejection::Invalid(_))
        ));
    }
}
