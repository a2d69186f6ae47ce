//! TLS for the MQTT listener (rustls with the ring provider): the server
//! certificate, and client certificates verified against a CA, optional or
//! required. A verified client certificate becomes the connection's identity,
//! named as AWS IoT names certificates: the SHA-256 of its DER bytes, in hex.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use sha2::{Digest, Sha256};

/// How the TLS listener treats client certificates. Config spells it `none`,
/// `optional` or `required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificates asked for.
    #[default]
    None,
    /// Asked for and verified when sent; connections without one are allowed.
    Optional,
    /// Required: a connection without a valid certificate fails the handshake.
    Required,
}

/// A `mqtt_tls_client_auth` value that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not one of none, optional, required")]
pub struct UnknownClientAuth(pub String);

impl std::str::FromStr for ClientAuth {
    type Err = UnknownClientAuth;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(ClientAuth::None),
            "optional" => Ok(ClientAuth::Optional),
            "required" => Ok(ClientAuth::Required),
            other => Err(UnknownClientAuth(other.to_string())),
        }
    }
}

impl std::fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        })
    }
}

/// Why the TLS listener's configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or parsed.
    #[error("cannot read {what} {}: {source}", path.display())]
    Pem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {}", .0.display())]
    NoCertificate(std::path::PathBuf),
    /// Client certificates are asked for but neither a CA nor a registry of
    /// certificates can vouch for them.
    #[error("client certificates need a client CA file (mqtt_tls_client_ca) or the certificate registry")]
    NoClientCa,
    /// A client CA certificate is not usable as a trust anchor.
    #[error("bad client CA certificate: {0}")]
    ClientCa(#[source] rustls::Error),
    /// The client certificate verifier cannot be built.
    #[error("cannot verify client certificates: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("{0}")]
    Rustls(#[source] rustls::Error),
}

/// Builds the rustls server config from PEM files.
/// Why the registry refuses a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Registered, and INACTIVE.
    #[error("the certificate is INACTIVE")]
    Inactive,
    /// Registered, and REVOKED.
    #[error("the certificate is REVOKED")]
    Revoked,
    /// Past its validity.
    #[error("the certificate has expired")]
    Expired,
    /// Before its validity.
    #[error("the certificate is not valid yet")]
    NotYetValid,
}

/// The node's registry of client certificates (replicated state), as the TLS
/// listener asks it during the handshake.
pub trait CertificateRegistry: Send + Sync + std::fmt::Debug + 'static {
    /// `None` when no certificate with this id (SHA-256 of the DER, hex) is
    /// registered; else whether it may connect at `now_ms`.
    fn check(&self, certificate_id: &str, now_ms: u64) -> Option<Result<(), Refusal>>;
}

/// Client certificates as the registry and, for certificates it does not know,
/// the configured CA judge them. A registered certificate needs no CA (it is
/// trusted because it is registered, as AWS trusts one registered without a
/// CA); the registry's "no" (inactive, revoked, expired) wins over the CA's
/// "yes". The handshake signature is checked against the certificate's key as
/// usual.
#[derive(Debug)]
struct RegistryVerifier {
    registry: Arc<dyn CertificateRegistry>,
    fallback: Option<Arc<dyn ClientCertVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    mandatory: bool,
}

impl ClientCertVerifier for RegistryVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.fallback
            .as_ref()
            .map_or(&[], |f| f.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let id = certificate_id(end_entity.as_ref());
        match self.registry.check(&id, now.as_secs().saturating_mul(1000)) {
            Some(Ok(())) => Ok(ClientCertVerified::assertion()),
            Some(Err(refusal)) => {
                tracing::info!(certificate = %id, reason = %refusal, "client certificate refused");
                Err(rustls::Error::InvalidCertificate(match refusal {
                    Refusal::Revoked => CertificateError::Revoked,
                    Refusal::Expired => CertificateError::Expired,
                    Refusal::NotYetValid => CertificateError::NotValidYet,
                    Refusal::Inactive => CertificateError::ApplicationVerificationFailure,
                }))
            }
            None => match &self.fallback {
                Some(ca) => ca
                    .verify_client_cert(end_entity, intermediates, now)
                    .inspect_err(|e| {
                        tracing::info!(certificate = %id, error = %e, "client certificate refused: not registered, and the client CA does not vouch for it");
                    }),
                None => {
                    tracing::info!(certificate = %id, "client certificate refused: not registered");
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::UnknownIssuer,
                    ))
                }
            },
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Builds the rustls server config from PEM files. With `registry`, client
/// certificates it knows are judged by it (see [`CertificateRegistry`]); others
/// by `client_ca`, when configured.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    auth: ClientAuth,
    registry: Option<Arc<dyn CertificateRegistry>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let pem = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Pem { what, path, source }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(pem("certificate", cert))?
        .collect::<Result<_, _>>()
        .map_err(pem("certificate", cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem("private key", key))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?;
    let ca_verifier = match (auth, client_ca) {
        (ClientAuth::None, _) | (_, None) => None,
        (auth, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(pem("client CA", ca))? {
                let c = c.map_err(pem("client CA", ca))?;
                roots.add(c).map_err(TlsError::ClientCa)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            Some(verifier.build()?)
        }
    };
    let builder = match (auth, registry, ca_verifier) {
        (ClientAuth::None, _, _) => builder.with_no_client_auth(),
        (auth, Some(registry), fallback) => {
            builder.with_client_cert_verifier(Arc::new(RegistryVerifier {
                registry,
                fallback,
                algorithms: provider.signature_verification_algorithms,
                mandatory: auth == ClientAuth::Required,
            }))
        }
        (_, None, Some(ca)) => builder.with_client_cert_verifier(ca),
        (_, None, None) => return Err(TlsError::NoClientCa),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    // AWS IoT's ALPN name for MQTT over 443; also fine on 8883.
    config.alpn_protocols = vec![b"x-amzn-mqtt-ca".to_vec(), b"mqtt".to_vec()];
    Ok(Arc::new(config))
}

/// AWS IoT's certificate id: SHA-256 of the DER bytes, lowercase hex.
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}
