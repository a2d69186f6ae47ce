//! TLS for the MQTT listener (rustls with the ring provider): the server
//! certificate, and client certificates verified against a CA, optional or
//! required. A verified client certificate becomes the connection's identity,
//! named as AWS IoT names certificates: the SHA-256 of its DER bytes, in hex.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
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

impl std::str::FromStr for ClientAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(ClientAuth::None),
            "optional" => Ok(ClientAuth::Optional),
            "required" => Ok(ClientAuth::Required),
            other => Err(format!("`{other}` is not one of none, optional, required")),
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

/// Builds the rustls server config from PEM files.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    auth: ClientAuth,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate PEM in {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read private key {}: {e}", key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (auth, client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err("client certificates need a client CA file".into()),
        (auth, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("cannot read client CA {}: {e}", ca.display()))?
            {
                let c = c.map_err(|e| format!("bad client CA PEM in {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("bad client CA certificate: {e}"))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate and key do not match: {e}"))?;
    // AWS IoT's ALPN name for MQTT over 443; also fine on 8883.
    config.alpn_protocols = vec![b"x-amzn-mqtt-ca".to_vec(), b"mqtt".to_vec()];
    Ok(Arc::new(config))
}

/// AWS IoT's certificate id: SHA-256 of the DER bytes, lowercase hex.
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}
