//! The command line: `serve`, `cluster ...`, the registry and shadow commands.
//! The benchmarks are a separate binary, `fleetcore-bench` (bench/).

mod cluster;
mod registry;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};

/// Fleetcore: an on-prem, clustered IoT broker with AWS IoT's APIs.
#[derive(Debug, Parser)]
#[command(name = "fleetcore", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once at startup: the size of `Serve`'s arguments does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run a node (with no options: a single-node cluster on loopback, data in ./data).
    Serve(ServeArgs),
    /// Inspect and change the cluster through any node's HTTP API.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Things in the registry.
    Thing {
        #[command(flatten)]
        target: registry::Target,
        #[command(subcommand)]
        command: registry::ThingCommand,
    },
    /// Device shadows.
    Shadow {
        #[command(flatten)]
        target: registry::Target,
        #[command(subcommand)]
        command: registry::ShadowCommand,
    },
    /// Thing groups.
    Group {
        #[command(flatten)]
        target: registry::Target,
        #[command(subcommand)]
        command: registry::GroupCommand,
    },
    /// Quotas of the replicated state (the same on every node).
    Quotas {
        #[command(flatten)]
        target: registry::Target,
        #[command(subcommand)]
        command: registry::QuotaCommand,
    },
}

/// Every `serve` option; each also reads a `FLEETCORE_*` variable.
#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML config file; flags and environment override it.
    #[arg(long, env = "FLEETCORE_CONFIG")]
    config: Option<PathBuf>,
    /// This node's id (>= 1, never reused).
    #[arg(long, env = "FLEETCORE_NODE_ID")]
    node_id: Option<u64>,
    /// Data directory [default: ./data].
    #[arg(long, env = "FLEETCORE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// HTTP API listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "FLEETCORE_HTTP_ADDR")]
    http_addr: Option<String>,
    /// Raft gRPC listen address [default: 127.0.0.1:7000].
    #[arg(long, env = "FLEETCORE_RAFT_ADDR")]
    raft_addr: Option<String>,
    /// MQTT listen address, empty for none [default: 127.0.0.1:1883].
    #[arg(long, env = "FLEETCORE_MQTT_ADDR")]
    mqtt_addr: Option<String>,
    /// MQTT over TLS listen address, e.g. 127.0.0.1:8883 [default: none].
    #[arg(long, env = "FLEETCORE_MQTT_TLS_ADDR")]
    mqtt_tls_addr: Option<String>,
    /// Server certificate chain (PEM) for the TLS listener.
    #[arg(long, env = "FLEETCORE_MQTT_TLS_CERT")]
    mqtt_tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for the TLS listener.
    #[arg(long, env = "FLEETCORE_MQTT_TLS_KEY")]
    mqtt_tls_key: Option<PathBuf>,
    /// CA (PEM) that signs device certificates.
    #[arg(long, env = "FLEETCORE_MQTT_TLS_CLIENT_CA")]
    mqtt_tls_client_ca: Option<PathBuf>,
    /// Device certificates: none, optional or required [default: none].
    #[arg(long, env = "FLEETCORE_MQTT_TLS_CLIENT_AUTH")]
    mqtt_tls_client_auth: Option<fleetcore_broker::tls::ClientAuth>,
    /// MQTT over WebSocket listen address, e.g. 127.0.0.1:8083 [default: none].
    #[arg(long, env = "FLEETCORE_MQTT_WS_ADDR")]
    mqtt_ws_addr: Option<String>,
    /// Raft address peers dial [default: --raft-addr].
    #[arg(long, env = "FLEETCORE_ADVERTISE_RAFT_ADDR")]
    advertise_raft_addr: Option<String>,
    /// HTTP address others use [default: --http-addr].
    #[arg(long, env = "FLEETCORE_ADVERTISE_HTTP_ADDR")]
    advertise_http_addr: Option<String>,
    /// Static bootstrap: `1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003`.
    #[arg(long, env = "FLEETCORE_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// Cluster id for a static bootstrap [default: derived from --initial-cluster].
    #[arg(long, env = "FLEETCORE_CLUSTER_NAME")]
    cluster_name: Option<String>,
    /// Join an existing cluster through this member's HTTP URL.
    #[arg(long, env = "FLEETCORE_JOIN")]
    join: Option<String>,
    /// Bootstrap a single-node cluster when the data dir is empty [default: true].
    #[arg(long, env = "FLEETCORE_BOOTSTRAP")]
    bootstrap: Option<bool>,
    /// fsync before acknowledging [default: true].
    #[arg(long, env = "FLEETCORE_FSYNC")]
    fsync: Option<bool>,
    /// Snapshot (and purge the log) every this many entries [default: 20000].
    #[arg(long, env = "FLEETCORE_SNAPSHOT_EVERY_ENTRIES")]
    snapshot_every_entries: Option<u64>,
    /// Log JSON lines instead of text.
    #[arg(long, env = "FLEETCORE_LOG_JSON")]
    log_json: Option<bool>,
    /// Log filter [default: info].
    #[arg(long, env = "FLEETCORE_LOG_LEVEL")]
    log_level: Option<String>,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let file = self.config.as_deref().map(Config::read_file).transpose()?;
        let overrides = Overrides {
            node_id: self.node_id,
            data_dir: self.data_dir,
            http_addr: self.http_addr,
            raft_addr: self.raft_addr,
            mqtt_addr: self.mqtt_addr,
            mqtt_tls_addr: self.mqtt_tls_addr,
            mqtt_tls_cert: self.mqtt_tls_cert,
            mqtt_tls_key: self.mqtt_tls_key,
            mqtt_tls_client_ca: self.mqtt_tls_client_ca,
            mqtt_tls_client_auth: self.mqtt_tls_client_auth,
            mqtt_ws_addr: self.mqtt_ws_addr,
            advertise_raft_addr: self.advertise_raft_addr,
            advertise_http_addr: self.advertise_http_addr,
            initial_cluster: self.initial_cluster,
            cluster_name: self.cluster_name,
            join: self.join,
            bootstrap: self.bootstrap,
            fsync: self.fsync,
            snapshot_every_entries: self.snapshot_every_entries,
            log_json: self.log_json,
            log_level: self.log_level,
        };
        Ok(Config::resolve(file, overrides)?)
    }
}

/// Runs the parsed command.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.into_config()?;
            crate::telemetry::init(&config.log_level, config.log_json);
            crate::run(config, crate::io::SystemIo::default(), shutdown_signal()).await
        }
        Command::Cluster(c) => cluster::run(c).await,
        Command::Thing { target, command } => registry::thing(target, command).await,
        Command::Shadow { target, command } => registry::shadow(target, command).await,
        Command::Group { target, command } => registry::group(target, command).await,
        Command::Quotas { target, command } => registry::quotas(target, command).await,
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
