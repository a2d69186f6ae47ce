//! `fleetcore`: the node binary's library — configuration, the HTTP API over the
//! service layer, the CLI, and [`run`], which wires a node together.
//!
//! Owns: how a process starts, serves, bootstraps or joins, and shuts down.
//! Uses: fleetcore-raft (consensus), fleetcore-model (meaning), axum, clap.
//! Must not: implement consensus or storage rules (they live below), or read the
//! clock anywhere but through [`clock::Clock`] at the proposer.
#![forbid(unsafe_code)]

pub mod cli;
// The injected clock and entropy live with the broker, their first user below
// the node.
pub use fleetcore_broker::{clock, entropy};
pub mod config;
pub mod error;
pub mod http;
pub mod io;
pub mod mqtt;
pub mod service;
pub mod telemetry;

use fleetcore_model::{RetainedCommand, ShadowCommand};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleetcore_broker::listener::Listener;
use fleetcore_raft::{Connector, NodeInfo, RaftNode, RaftOptions};
use fleetcore_storage::StorageOptions;
use tokio::sync::watch;

use crate::config::Config;
use crate::io::{HttpListener, NodeIo};
use crate::mqtt::authorize::AllowAll;
use crate::mqtt::peers::LinkReceiver;
use crate::mqtt::{Broker, MqttLimits};
use crate::service::Service;

/// Runs a node until `shutdown` resolves; then a leader hands over leadership and
/// the listeners close. Production passes [`io::SystemIo`]; the simulation passes
/// its simulated network, clock and seeded entropy.
pub async fn run<I: NodeIo>(
    config: Config,
    io: I,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    start(config, io).await?.serve(shutdown).await
}

/// A node whose sockets are bound and whose storage is open, not serving yet.
pub struct Node<I: NodeIo> {
    config: Config,
    io: I,
    raft: RaftNode<I::Connector>,
    info: NodeInfo,
    listeners: Listeners<I::Listener>,
}

struct Listeners<L> {
    raft: L,
    http: L,
    mqtt: Option<L>,
    tls: Option<(L, Arc<rustls::ServerConfig>)>,
    ws: Option<L>,
}

/// Binds the node's listeners and opens its storage: the first half of [`run`],
/// for a caller that looks at the node (a simulation) before it serves.
pub async fn start<I: NodeIo>(config: Config, io: I) -> anyhow::Result<Node<I>> {
    // Bad TLS files fail the start before anything listens. Client certificates
    // registered through the API are judged by the replicated registry.
    let certificates = Arc::new(service::certificate::RegisteredCertificates::default());
    let tls = if config.mqtt_tls_addr.is_empty() {
        None
    } else {
        let (Some(cert), Some(key)) = (&config.mqtt_tls_cert, &config.mqtt_tls_key) else {
            anyhow::bail!("mqtt_tls_addr needs mqtt_tls_cert and mqtt_tls_key");
        };
        Some(
            mqtt::tls::server_config(
                cert,
                key,
                config.mqtt_tls_client_ca.as_deref(),
                config.mqtt_tls_client_auth,
                Some(certificates.clone()),
            )
            .context("MQTT TLS")?,
        )
    };
    let bind = |addr: &str, what: &'static str| {
        let io = io.clone();
        let addr = addr.to_string();
        async move {
            io.bind(&addr)
                .await
                .with_context(|| format!("cannot listen for {what} on {addr}"))
        }
    };
    let optional = |addr: &str, what: &'static str| {
        let bound = (!addr.is_empty()).then(|| bind(addr, what));
        async move {
            match bound {
                Some(b) => b.await.map(Some),
                None => Ok(None),
            }
        }
    };
    let listeners = Listeners {
        raft: bind(&config.raft_addr, "Raft").await?,
        http: bind(&config.http_addr, "HTTP").await?,
        mqtt: optional(&config.mqtt_addr, "MQTT").await?,
        tls: match tls {
            Some(tls) => Some((bind(&config.mqtt_tls_addr, "MQTT/TLS").await?, tls)),
            None => None,
        },
        ws: optional(&config.mqtt_ws_addr, "MQTT/WebSocket").await?,
    };
    let info = NodeInfo {
        raft_addr: config.advertise_raft_addr.clone(),
        http_addr: config.advertise_http_addr.clone(),
    };
    let options = RaftOptions {
        storage: StorageOptions {
            fsync: config.fsync,
            inline_io: io.inline_storage(),
        },
        snapshot_every_entries: config.snapshot_every_entries,
        keep_behind_snapshot: (config.snapshot_every_entries / 4).max(1),
        ..Default::default()
    };
    let raft = RaftNode::start(
        config.node_id,
        info.clone(),
        &config.data_dir,
        options,
        io.connector(),
    )
    .await
    .with_context(|| {
        format!(
            "cannot start node {} with data in {}",
            config.node_id,
            config.data_dir.display()
        )
    })?;
    certificates.attach(raft.state().clone());
    tracing::info!(
        node_id = config.node_id,
        raft = %config.raft_addr,
        http = %config.http_addr,
        data = %config.data_dir.display(),
        "node started"
    );
    Ok(Node {
        config,
        io,
        raft,
        info,
        listeners,
    })
}

impl<I: NodeIo> Node<I> {
    /// The Raft node.
    pub fn raft(&self) -> &RaftNode<I::Connector> {
        &self.raft
    }

    /// Forms or joins the cluster and serves Raft, HTTP and MQTT until `shutdown`
    /// resolves.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Node {
            config,
            io,
            raft: node,
            info,
            listeners,
        } = self;
        let clock = io.clock();
        let entropy = io.entropy();
        let broker = Broker::new(
            config.node_id,
            MqttLimits::default(),
            clock.clone(),
            entropy.clone(),
            Arc::new(AllowAll),
        );
        // Lives as long as this function: the node holds it weakly.
        let relay: Arc<dyn fleetcore_raft::RelayHandler> =
            Arc::new(mqtt::LinkRelay(LinkReceiver::new(broker.clone())));
        node.set_relay_handler(&relay);

        let (stop_tx, stop_rx) = watch::channel(false);
        let (mqtt_stop_tx, mqtt_stop_rx) = watch::channel(false);
        let wait_stop = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let raft_incoming = futures::stream::unfold(listeners.raft, |mut l| async move {
            let accepted = l.accept().await.map(|(stream, _)| stream);
            Some((accepted, l))
        });
        let raft_server = tokio::spawn(fleetcore_raft::service::serve(
            node.clone(),
            raft_incoming,
            wait_stop(stop_rx.clone()),
        ));

        form_cluster(&config, &node, info, &io, &entropy).await?;

        let service = Service::new(node.clone(), clock, entropy, broker.clone());
        let handlers = mqtt::install_handlers(&service);
        let links = mqtt::peers::spawn_link_manager(
            Arc::new(mqtt::RaftPeers(node.clone())),
            broker.clone(),
        );
        let reaper = tokio::spawn({
            let broker = broker.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    broker.expire_sessions();
                }
            }
        });
        let mqtt_server = listeners.mqtt.map(|l| {
            tracing::info!(mqtt = %config.mqtt_addr, "MQTT listening");
            tokio::spawn(mqtt::listener::serve_tcp(
                l,
                broker.clone(),
                wait_stop(mqtt_stop_rx.clone()),
            ))
        });
        let tls_server = listeners.tls.map(|(l, tls)| {
            tracing::info!(mqtt_tls = %config.mqtt_tls_addr, client_auth = %config.mqtt_tls_client_auth, "MQTT/TLS listening");
            tokio::spawn(mqtt::listener::serve_tls(
                l,
                tls,
                broker.clone(),
                wait_stop(mqtt_stop_rx.clone()),
            ))
        });
        let ws_server = listeners.ws.map(|l| {
            tracing::info!(mqtt_ws = %config.mqtt_ws_addr, "MQTT/WebSocket listening");
            tokio::spawn(mqtt::listener::serve_ws(
                l,
                broker.clone(),
                wait_stop(mqtt_stop_rx.clone()),
            ))
        });
        let service_for_sweeper = service.clone();
        let app = http::router(service);
        let http_server = tokio::spawn({
            let stop = wait_stop(stop_rx.clone());
            let listener = HttpListener(listeners.http);
            async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }
        });

        // Nodes of a static bootstrap record their HTTP address in the membership;
        // the check repeats, so an address lost to a leader change is recorded again.
        let register = tokio::spawn({
            let node = node.clone();
            async move {
                loop {
                    if !node.is_registered() && node.is_initialized().await.unwrap_or(false) {
                        if let Err(e) = node.register_self().await {
                            tracing::warn!(error = %e, "cannot record this node's addresses yet, will retry");
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });

        let sweeper = tokio::spawn(sweep_expired_retained(service_for_sweeper));

        shutdown.await;
        tracing::info!("shutting down");
        sweeper.abort();
        register.abort();
        links.abort();
        reaper.abort();
        let _ = mqtt_stop_tx.send(true);
        broker.kick_all();
        for m in [mqtt_server, tls_server, ws_server].into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(5), m).await;
        }
        node.shutdown().await;
        drop(handlers);
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), http_server).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), raft_server).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// On the leader: removes shadow tombstones older than AWS's 48 hours through the
/// log (`ForgetShadowTombstones`, stamped with the leader's clock), a page of the
/// shadows at a time under the state lock.
async fn forget_shadow_tombstones<C: fleetcore_raft::Connector>(service: &Service<C>, page: usize) {
    let mut after: Option<fleetcore_model::ShadowKey> = None;
    loop {
        let now = service.now_ms();
        let (keys, next) = service
            .node()
            .state()
            .read()
            .state
            .shadows()
            .stale_tombstones(now, after.as_ref(), page);
        if !keys.is_empty() {
            let count = keys.len();
            let command = fleetcore_model::Command::Shadow(ShadowCommand::ForgetTombstones {
                keys,
                at_ms: now,
            });
            match service.propose(command).await {
                Ok(_) => tracing::debug!(count, "shadow tombstones forgotten"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot forget shadow tombstones yet");
                    return;
                }
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => return,
        }
    }
}

/// On the leader, every few seconds: removes retained messages whose MQTT 5
/// expiry passed, through the log (`ExpireRetained`, stamped with the leader's
/// clock), so expired messages stop counting against the quotas and stop
/// costing memory on every replica. The scan holds the state lock one page at a
/// time.
async fn sweep_expired_retained<C: fleetcore_raft::Connector>(service: Service<C>) {
    const EVERY: Duration = Duration::from_secs(5);
    const PAGE: usize = 1000;
    // Shadow tombstones live 48 hours: looking once a minute is plenty.
    const TOMBSTONES_EVERY: u64 = 12;
    let mut round = 0u64;
    loop {
        tokio::time::sleep(EVERY).await;
        let node = service.node();
        if !node.is_leader() {
            continue;
        }
        round += 1;
        if round.is_multiple_of(TOMBSTONES_EVERY) {
            forget_shadow_tombstones(&service, PAGE).await;
        }
        let mut after: Option<String> = None;
        loop {
            let now = service.now_ms();
            let (topics, next) =
                node.state()
                    .read()
                    .state
                    .retained()
                    .expired(now, after.as_deref(), PAGE);
            if !topics.is_empty() {
                let count = topics.len();
                let command = fleetcore_model::Command::Retained(RetainedCommand::Expire {
                    topics,
                    at_ms: now,
                });
                match service.propose(command).await {
                    Ok(_) => tracing::debug!(count, "expired retained messages removed"),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot remove expired retained messages yet");
                        break;
                    }
                }
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
}

/// Bootstraps, joins, or resumes, depending on config and what the data dir holds.
async fn form_cluster<I: NodeIo>(
    config: &Config,
    node: &RaftNode<I::Connector>,
    info: NodeInfo,
    io: &I,
    entropy: &entropy::SharedEntropy,
) -> anyhow::Result<()> {
    if !config.initial_cluster.is_empty() {
        let members: BTreeMap<u64, NodeInfo> = config
            .initial_cluster
            .iter()
            .map(|(id, addr)| {
                let info = if *id == config.node_id {
                    info.clone()
                } else {
                    NodeInfo {
                        raft_addr: addr.clone(),
                        http_addr: String::new(),
                    }
                };
                (*id, info)
            })
            .collect();
        node.bootstrap(&config.static_cluster_id(), members)
            .await
            .context("cannot bootstrap the initial cluster")?;
        return Ok(());
    }
    if node.is_initialized().await? {
        if node.cluster().get().is_none() {
            anyhow::bail!(
                "data dir {} holds a Raft log but no cluster id: it is corrupt",
                config.data_dir.display()
            );
        }
        return Ok(());
    }
    if let Some(seed) = &config.join {
        let seed: axum::http::Uri = seed
            .parse()
            .with_context(|| format!("join: {seed} is not a URL"))?;
        if seed.scheme_str().is_some_and(|s| s != "http") {
            anyhow::bail!("join: {seed} must be an http:// URL of a member's HTTP API");
        }
        let body = serde_json::to_vec(&http::AddMemberBody {
            id: config.node_id,
            raft_addr: info.raft_addr.clone(),
            http_addr: info.http_addr.clone(),
        })?;
        let connector = io.connector();
        tokio::spawn(async move {
            loop {
                let attempt = post_json(&connector, &seed, "/cluster/members", body.clone());
                match tokio::time::timeout(Duration::from_secs(30), attempt).await {
                    Ok(Ok((status, _))) if (200..300).contains(&status) => {
                        tracing::info!(%seed, "joined the cluster");
                        return;
                    }
                    Ok(Ok((status, text))) => {
                        tracing::warn!(%seed, %status, %text, "join refused, will retry");
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%seed, error = %e, "cannot reach the cluster to join, will retry")
                    }
                    Err(_) => {
                        tracing::warn!(%seed, "join timed out, will retry")
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        return Ok(());
    }
    if config.bootstrap {
        let cluster_id = format!("fc-{}", entropy.uuid().simple());
        node.bootstrap(&cluster_id, BTreeMap::from([(config.node_id, info)]))
            .await
            .context("cannot bootstrap a single-node cluster")?;
        tracing::info!(%cluster_id, "bootstrapped a single-node cluster");
    } else {
        tracing::info!("waiting to be added to a cluster (bootstrap = false)");
    }
    Ok(())
}

/// POSTs a JSON `body` to `path` under `base` (an `http://` URL) over a connection
/// the node's own connector dials; returns the status and body text.
async fn post_json<C: Connector>(
    connector: &C,
    base: &axum::http::Uri,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, String)> {
    use axum::http::header;
    let authority = base.authority().context("the URL names no host")?;
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let stream = connector.connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let request = axum::http::Request::post(format!("{}{path}", base.path().trim_end_matches('/')))
        .header(header::HOST, authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let text = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 64 * 1024).await?;
    connection.abort();
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}
