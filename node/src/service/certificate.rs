//! Certificates and thing principals: CreateKeysAndCertificate,
//! RegisterCertificateWithoutCA, DescribeCertificate, ListCertificates,
//! UpdateCertificate, DeleteCertificate, AttachThingPrincipal,
//! DetachThingPrincipal, ListThingPrincipals, ListPrincipalThings.
//!
//! The proposer parses a certificate (its id is the SHA-256 of the DER bytes,
//! as the TLS listener computes it; its validity comes from the certificate)
//! and generates the keys of CreateKeysAndCertificate; the replicated state
//! keeps the certificate, never a private key. A certificate made here is
//! self-signed and trusted because it is registered, as AWS trusts one
//! registered without a CA; a cluster CA that signs them is not built yet.

use fleetcore_model::certificate::{self, CertificateCommand, CertificateStatus};
use fleetcore_model::{names, Applied, Certificate};
use fleetcore_raft::Connector;

use super::{Service, ServiceError, ServiceResult};

/// A certificate made by CreateKeysAndCertificate, with its keys (shown once).
#[derive(Debug)]
pub struct CreatedCertificate {
    /// The registered certificate.
    pub certificate: Certificate,
    /// The private key, PEM (PKCS#8). Not stored anywhere.
    pub private_key_pem: String,
    /// The public key, PEM.
    pub public_key_pem: String,
}

/// What the proposer reads from a certificate PEM.
struct Parsed {
    id: String,
    not_before_ms: u64,
    not_after_ms: u64,
}

fn parse_pem(pem: &str) -> ServiceResult<Parsed> {
    let invalid = |why: String| ServiceError::Invalid(format!("certificatePem: {why}"));
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| invalid(format!("not a PEM certificate ({e})")))?;
    if block.label != "CERTIFICATE" {
        return Err(invalid(format!(
            "the PEM block is a {}, not a CERTIFICATE",
            block.label
        )));
    }
    let parsed = block
        .parse_x509()
        .map_err(|e| invalid(format!("not an X.509 certificate ({e})")))?;
    let ms = |seconds: i64| u64::try_from(seconds).unwrap_or(0).saturating_mul(1000);
    let validity = parsed.validity();
    Ok(Parsed {
        id: fleetcore_broker::tls::certificate_id(&block.contents),
        not_before_ms: ms(validity.not_before.timestamp()),
        not_after_ms: ms(validity.not_after.timestamp()),
    })
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("Certificate {id} cannot be found."))
}

/// The certificate id in a principal (`arn:...:cert/{id}`).
pub fn principal_certificate(principal: &str) -> ServiceResult<&str> {
    let id = principal
        .rsplit_once(":cert/")
        .map(|(_, id)| id)
        .ok_or_else(|| {
            ServiceError::Invalid(format!(
                "principal '{principal}' is not a certificate ARN (arn:aws:iot:...:cert/<id>)"
            ))
        })?;
    certificate::check_id(id)?;
    Ok(id)
}

fn registered(operation: &'static str, applied: Applied) -> ServiceResult<Certificate> {
    match applied {
        Applied::Certificate(c) => Ok(*c),
        other => Err(ServiceError::unexpected(operation, &other)),
    }
}

impl<C: Connector> Service<C> {
    /// The ARN of certificate `id`.
    pub fn certificate_arn(&self, id: &str) -> String {
        self.arn("cert", id)
    }

    /// CreateKeysAndCertificate: a new key pair (ECDSA P-256) and a
    /// certificate for it, valid until the end of 2049 as AWS's are.
    pub async fn create_keys_and_certificate(
        &self,
        set_as_active: bool,
    ) -> ServiceResult<CreatedCertificate> {
        let failed = |e: rcgen::Error| {
            tracing::error!(error = %e, "cannot make a certificate");
            ServiceError::Unexpected("CreateKeysAndCertificate")
        };
        let key = rcgen::KeyPair::generate().map_err(failed)?;
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Fleetcore Device Certificate");
        let now = self.now_ms() / 1000;
        params.not_before = rcgen::date_time_ymd(1970, 1, 1)
            + std::time::Duration::from_secs(now.saturating_sub(60));
        params.not_after = rcgen::date_time_ymd(2049, 12, 31);
        let serial = self.entropy().next_u64().to_be_bytes().to_vec();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.self_signed(&key).map_err(failed)?;
        let pem = cert.pem();
        let certificate = self
            .register_certificate(
                &pem,
                if set_as_active {
                    CertificateStatus::Active
                } else {
                    CertificateStatus::Inactive
                },
            )
            .await?;
        Ok(CreatedCertificate {
            certificate,
            private_key_pem: key.serialize_pem(),
            public_key_pem: key.public_key_pem(),
        })
    }

    /// RegisterCertificateWithoutCA.
    pub async fn register_certificate(
        &self,
        pem: &str,
        status: CertificateStatus,
    ) -> ServiceResult<Certificate> {
        let parsed = parse_pem(pem)?;
        let command = CertificateCommand::Register {
            id: parsed.id,
            pem: pem.to_string(),
            status,
            not_before_ms: parsed.not_before_ms,
            not_after_ms: parsed.not_after_ms,
            at_ms: self.now_ms(),
        };
        registered("RegisterCertificate", self.propose(command).await?)
    }

    /// DescribeCertificate, linearizable.
    pub async fn describe_certificate(&self, id: &str) -> ServiceResult<Certificate> {
        certificate::check_id(id)?;
        self.read(|s| s.certificates().get(id).cloned())
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// ListCertificates, linearizable: one page in id order, and the marker to go on.
    pub async fn list_certificates(
        &self,
        marker: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<Certificate>, Option<String>)> {
        self.read(|s| s.certificates().page(marker, limit)).await
    }

    /// UpdateCertificate.
    pub async fn update_certificate(
        &self,
        id: &str,
        status: CertificateStatus,
    ) -> ServiceResult<()> {
        let command = CertificateCommand::UpdateStatus {
            id: id.to_string(),
            status,
            at_ms: self.now_ms(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// DeleteCertificate.
    pub async fn delete_certificate(&self, id: &str, force: bool) -> ServiceResult<()> {
        let command = CertificateCommand::Delete {
            id: id.to_string(),
            arn: self.certificate_arn(id),
            force,
        };
        self.propose(command).await.map(|_| ())
    }

    /// AttachThingPrincipal (the principal is a certificate ARN).
    pub async fn attach_thing_principal(&self, thing: &str, principal: &str) -> ServiceResult<()> {
        names::check_thing_name(thing)?;
        let command = CertificateCommand::AttachThing {
            id: principal_certificate(principal)?.to_string(),
            thing: thing.to_string(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// DetachThingPrincipal.
    pub async fn detach_thing_principal(&self, thing: &str, principal: &str) -> ServiceResult<()> {
        names::check_thing_name(thing)?;
        let command = CertificateCommand::DetachThing {
            id: principal_certificate(principal)?.to_string(),
            thing: thing.to_string(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// ListThingPrincipals, linearizable: the ARNs of the certificates attached
    /// to `thing`, one page.
    pub async fn list_thing_principals(
        &self,
        thing: &str,
        next_token: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<String>, Option<String>)> {
        names::check_thing_name(thing)?;
        let (ids, next) = self
            .read(|s| {
                s.registry().thing(thing)?;
                let ids: Vec<String> = s
                    .certificates()
                    .of_thing(thing)
                    .map(str::to_string)
                    .collect();
                Some(fleetcore_model::registry::page(
                    ids.iter(),
                    |id| id,
                    next_token,
                    limit,
                ))
            })
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("Thing {thing} cannot be found.")))?;
        Ok((
            ids.iter().map(|id| self.certificate_arn(id)).collect(),
            next,
        ))
    }

    /// ListPrincipalThings, linearizable: the things attached to a certificate,
    /// one page.
    pub async fn list_principal_things(
        &self,
        principal: &str,
        next_token: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<String>, Option<String>)> {
        let id = principal_certificate(principal)?;
        self.read(|s| {
            s.certificates()
                .get(id)
                .map(|c| fleetcore_model::registry::page(c.things.iter(), |t| t, next_token, limit))
        })
        .await?
        .ok_or_else(|| not_found(id))
    }
}

/// The TLS listener's view of the replicated certificate registry. Built before
/// storage opens (so bad TLS files fail the start early) and given the applied
/// state once it is open; until then it knows no certificate.
#[derive(Default)]
pub struct RegisteredCertificates(std::sync::OnceLock<fleetcore_storage::SharedState>);

impl RegisteredCertificates {
    /// Points the registry at the applied state.
    pub fn attach(&self, state: fleetcore_storage::SharedState) {
        let _ = self.0.set(state);
    }
}

impl std::fmt::Debug for RegisteredCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegisteredCertificates")
    }
}

impl fleetcore_broker::tls::CertificateRegistry for RegisteredCertificates {
    fn check(
        &self,
        certificate_id: &str,
        now_ms: u64,
    ) -> Option<Result<(), fleetcore_broker::tls::Refusal>> {
        use fleetcore_broker::tls::Refusal;
        let state = self.0.get()?;
        let applied = state.read();
        let c = applied.state.certificates().get(certificate_id)?;
        Some(match c.status {
            CertificateStatus::Revoked => Err(Refusal::Revoked),
            CertificateStatus::Inactive => Err(Refusal::Inactive),
            CertificateStatus::Active if now_ms > c.not_after_ms => Err(Refusal::Expired),
            CertificateStatus::Active if now_ms < c.not_before_ms => Err(Refusal::NotYetValid),
            CertificateStatus::Active => Ok(()),
        })
    }
}
