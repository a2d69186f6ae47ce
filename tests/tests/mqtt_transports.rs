//! MQTT over TLS (with device certificates) and over WebSocket reach the same
//! broker as plain TCP: one session layer over every byte stream.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use fleetcore_tests::{eventually, free_port, serial, NodeProcess};
use futures::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rumqttc::{Event, MqttOptions, Packet, QoS};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(15);

struct Pki {
    ca_der: CertificateDer<'static>,
    client_der: CertificateDer<'static>,
    client_key: Vec<u8>,
}

/// A CA, a server certificate for localhost/127.0.0.1 and a device certificate,
/// written as PEM into `dir`.
fn make_pki(dir: &std::path::Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fleetcore test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "sensor-42");
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    Pki {
        ca_der: ca.der().clone(),
        client_der: client.der().clone(),
        client_key: client_key.serialize_der(),
    }
}

fn raw_connect(id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 30];
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}

fn raw_publish(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(payload);
    let mut p = vec![0x30, body.len() as u8];
    p.extend(body);
    p
}

async fn next_publish(rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>, topic: &str) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((t, p))) if t == topic => return p,
            Ok(Some(_)) => continue,
            _ => panic!("nothing on {topic}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_device_certificates_and_websocket() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let pki = make_pki(root.path());
    let tls_port = free_port();
    let ws_port = free_port();
    let p = |f: &str| root.path().join(f).display().to_string();
    let mut node = NodeProcess::new(
        1,
        root.path(),
        vec![
            "--mqtt-tls-addr".into(),
            format!("127.0.0.1:{tls_port}"),
            "--mqtt-tls-cert".into(),
            p("server.pem"),
            "--mqtt-tls-key".into(),
            p("server.key"),
            "--mqtt-tls-client-ca".into(),
            p("ca.pem"),
            "--mqtt-tls-client-auth".into(),
            "required".into(),
            "--mqtt-ws-addr".into(),
            format!("127.0.0.1:{ws_port}"),
        ],
    );
    node.start().unwrap();
    let http = reqwest::Client::new();
    let url = node.url();
    eventually("node ready", WAIT, || async {
        let r = http.get(format!("{url}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log()));

    // A plain-TCP watcher sees presence events and messages from both transports.
    let mut o = MqttOptions::new("watcher", "127.0.0.1", node.mqtt_port());
    o.set_keep_alive(Duration::from_secs(30));
    let (watcher, mut el) = rumqttc::AsyncClient::new(o, 10);
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let watch_task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ack_tx.send(());
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    for f in ["$aws/events/presence/connected/+", "via/#"] {
        watcher.subscribe(f, QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(WAIT, ack_rx.recv())
            .await
            .unwrap()
            .unwrap();
    }

    // TLS with a device certificate: CONNACK, and the certificate is the identity.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let with_cert = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(
            vec![pki.client_der.clone()],
            PrivateKeyDer::Pkcs8(pki.client_key.clone().into()),
        )
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(with_cert));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tls_port))
        .await
        .unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(&raw_connect("sensor-42")).await.unwrap();
    let mut ack = [0u8; 4];
    tokio::time::timeout(WAIT, tls.read_exact(&mut ack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);
    let event = next_publish(&mut rx, "$aws/events/presence/connected/sensor-42").await;
    let event: serde_json::Value = serde_json::from_slice(&event).unwrap();
    let cert_id = hex::encode(Sha256::digest(pki.client_der.as_ref()));
    assert_eq!(event["principalIdentifier"], cert_id.as_str());
    tls.write_all(&raw_publish("via/tls", b"hello over tls"))
        .await
        .unwrap();
    assert_eq!(next_publish(&mut rx, "via/tls").await, b"hello over tls");

    // Without a certificate the listener (client auth required) refuses.
    let no_cert = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(no_cert));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tls_port))
        .await
        .unwrap();
    if let Ok(mut s) = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    {
        // TLS 1.3 finishes the client side first; the server's refusal follows.
        let _ = s.write_all(&raw_connect("intruder")).await;
        let mut buf = [0u8; 4];
        let r = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
        assert!(
            matches!(r, Ok(0) | Err(_)),
            "a client without a certificate got {r:?}"
        );
    }

    // WebSocket with the mqtt subprotocol.
    let mut request = format!("ws://127.0.0.1:{ws_port}/mqtt")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", ws_port))
        .await
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(
        resp.headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap()),
        Some("mqtt")
    );
    ws.send(Message::Binary(raw_connect("browser-1").into()))
        .await
        .unwrap();
    let ack = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ack.into_data().to_vec(), vec![0x20, 2, 0, 0]);
    ws.send(Message::Binary(
        raw_publish("via/ws", b"hello over ws").into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_publish(&mut rx, "via/ws").await, b"hello over ws");

    // A WebSocket client that does not ask for mqtt is refused at the handshake.
    let request = format!("ws://127.0.0.1:{ws_port}/mqtt")
        .into_client_request()
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", ws_port))
        .await
        .unwrap();
    assert!(tokio_tungstenite::client_async(request, tcp).await.is_err());

    watch_task.abort();
}

/// Tries an MQTT CONNECT over TLS with `cert`/`key` (DER); true when CONNACK 0
/// comes back, false when the handshake or the connection is refused.
async fn tls_connect_accepted(
    port: u16,
    ca: &CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    client_id: &str,
) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let Ok(mut tls) = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    else {
        return false;
    };
    // TLS 1.3 finishes the client side first; a refusal shows on the first read.
    if tls.write_all(&raw_connect(client_id)).await.is_err() {
        return false;
    }
    let mut ack = [0u8; 4];
    match tokio::time::timeout(WAIT, tls.read_exact(&mut ack)).await {
        Ok(Ok(_)) => ack == [0x20, 2, 0, 0],
        Ok(Err(_)) => false,
        Err(_) => panic!("no answer to CONNECT within {WAIT:?}"),
    }
}

/// What: a certificate made by CreateKeysAndCertificate connects over TLS with
/// no client CA configured (trusted because it is registered); once made
/// INACTIVE or REVOKED it is refused at the handshake with a log line naming
/// the reason; a certificate nobody registered is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_certificates_are_the_trust_for_device_tls() {
    let _guard = serial().await;
    let root = tempfile::tempdir().unwrap();
    let pki = make_pki(root.path());
    let tls_port = free_port();
    let p = |f: &str| root.path().join(f).display().to_string();
    let mut node = NodeProcess::new(
        1,
        root.path(),
        vec![
            "--mqtt-tls-addr".into(),
            format!("127.0.0.1:{tls_port}"),
            "--mqtt-tls-cert".into(),
            p("server.pem"),
            "--mqtt-tls-key".into(),
            p("server.key"),
            "--mqtt-tls-client-auth".into(),
            "required".into(),
        ],
    );
    node.start().unwrap();
    let http = reqwest::Client::new();
    let url = node.url();
    eventually("node ready", WAIT, || async {
        let r = http.get(format!("{url}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log()));

    let made: serde_json::Value = http
        .post(format!("{url}/keys-and-certificate?setAsActive=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["certificateId"].as_str().unwrap().to_string();
    let cert = CertificateDer::from_pem_slice(made["certificatePem"].as_str().unwrap().as_bytes())
        .unwrap();
    let key = || {
        PrivateKeyDer::from_pem_slice(made["keyPair"]["PrivateKey"].as_str().unwrap().as_bytes())
            .unwrap()
    };
    assert_eq!(
        hex::encode(Sha256::digest(cert.as_ref())),
        id,
        "the id is the SHA-256 of the DER"
    );
    assert!(
        tls_connect_accepted(tls_port, &pki.ca_der, cert.clone(), key(), "device-1").await,
        "an ACTIVE registered certificate connects\n{}",
        node.log()
    );

    // A certificate signed by the same test CA but never registered: no CA is
    // configured, so nothing vouches for it.
    assert!(
        !tls_connect_accepted(
            tls_port,
            &pki.ca_der,
            pki.client_der.clone(),
            PrivateKeyDer::try_from(pki.client_key.clone()).unwrap(),
            "stranger"
        )
        .await
    );

    for (status, reason) in [("INACTIVE", "INACTIVE"), ("REVOKED", "REVOKED")] {
        let r = http
            .put(format!("{url}/certificates/{id}?newStatus={status}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        assert!(
            !tls_connect_accepted(tls_port, &pki.ca_der, cert.clone(), key(), "device-1").await,
            "a {status} certificate is refused"
        );
        eventually("the refusal is logged", WAIT, || async {
            let log = node.log();
            (log.contains("client certificate refused") && log.contains(reason)).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", node.log()));
    }
    assert!(node.log().contains("not registered"), "{}", node.log());
}
