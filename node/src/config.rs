//! Configuration: defaults, then a TOML file, then `FLEETCORE_*` environment
//! variables, then flags (later wins). With nothing set, one node serves a
//! single-node cluster on loopback with data in `./data`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fleetcore_broker::tls::ClientAuth;
use serde::Deserialize;

use crate::error::ConfigError;

/// Effective configuration of `fleetcore serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// This node's id (unique in the cluster, never reused).
    pub node_id: u64,
    /// Where RocksDB and snapshots live.
    pub data_dir: PathBuf,
    /// HTTP API listen address.
    pub http_addr: String,
    /// Raft gRPC listen address.
    pub raft_addr: String,
    /// MQTT (plain TCP) listen address; empty = no plain MQTT listener.
    pub mqtt_addr: String,
    /// MQTT over TLS listen address; empty = none (needs `mqtt_tls_cert`/`_key`).
    pub mqtt_tls_addr: String,
    /// Server certificate chain, PEM.
    pub mqtt_tls_cert: Option<PathBuf>,
    /// Server private key, PEM.
    pub mqtt_tls_key: Option<PathBuf>,
    /// CA that signs client certificates, PEM.
    pub mqtt_tls_client_ca: Option<PathBuf>,
    /// Client certificates: `none`, `optional` or `required`.
    pub mqtt_tls_client_auth: ClientAuth,
    /// MQTT over WebSocket (subprotocol `mqtt`) listen address; empty = none.
    pub mqtt_ws_addr: String,
    /// Address other nodes use to reach this node's gRPC (defaults to `raft_addr`).
    pub advertise_raft_addr: String,
    /// Address clients and peers use for this node's HTTP API (defaults to `http_addr`).
    pub advertise_http_addr: String,
    /// Static bootstrap: node id → Raft address of every initial member.
    pub initial_cluster: BTreeMap<u64, String>,
    /// Cluster id for a static bootstrap (all initial members must agree); derived
    /// from `initial_cluster` when unset.
    pub cluster_name: Option<String>,
    /// HTTP URL of a member to ask to add this node.
    pub join: Option<String>,
    /// Start a single-node cluster when the data dir is empty and neither
    /// `initial_cluster` nor `join` is set.
    pub bootstrap: bool,
    /// fsync before acknowledging (recommended).
    pub fsync: bool,
    /// Build a snapshot (and purge the log before it) every this many entries.
    pub snapshot_every_entries: u64,
    /// Logs as JSON lines instead of readable text.
    pub log_json: bool,
    /// tracing filter, e.g. `info` or `fleetcore=debug`.
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            data_dir: PathBuf::from("./data"),
            http_addr: "127.0.0.1:8080".into(),
            raft_addr: "127.0.0.1:7000".into(),
            mqtt_addr: "127.0.0.1:1883".into(),
            mqtt_tls_addr: String::new(),
            mqtt_tls_cert: None,
            mqtt_tls_key: None,
            mqtt_tls_client_ca: None,
            mqtt_tls_client_auth: ClientAuth::None,
            mqtt_ws_addr: String::new(),
            advertise_raft_addr: String::new(),
            advertise_http_addr: String::new(),
            initial_cluster: BTreeMap::new(),
            cluster_name: None,
            join: None,
            bootstrap: true,
            fsync: true,
            snapshot_every_entries: 20_000,
            log_json: false,
            log_level: "info,openraft=warn".into(),
        }
    }
}

/// The TOML file's shape; every key optional. Keys match the flag names with `_`.
#[allow(missing_docs)]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub node_id: Option<u64>,
    pub data_dir: Option<PathBuf>,
    pub http_addr: Option<String>,
    pub raft_addr: Option<String>,
    pub mqtt_addr: Option<String>,
    pub mqtt_tls_addr: Option<String>,
    pub mqtt_tls_cert: Option<PathBuf>,
    pub mqtt_tls_key: Option<PathBuf>,
    pub mqtt_tls_client_ca: Option<PathBuf>,
    pub mqtt_tls_client_auth: Option<ClientAuth>,
    pub mqtt_ws_addr: Option<String>,
    pub advertise_raft_addr: Option<String>,
    pub advertise_http_addr: Option<String>,
    pub initial_cluster: Option<String>,
    pub cluster_name: Option<String>,
    pub join: Option<String>,
    pub bootstrap: Option<bool>,
    pub fsync: Option<bool>,
    pub snapshot_every_entries: Option<u64>,
    pub log_json: Option<bool>,
    pub log_level: Option<String>,
}

/// Values from flags and environment (clap fills both); `None` = not given.
pub type Overrides = FileConfig;

impl Config {
    /// Builds the effective config: defaults < file < env/flags.
    pub fn resolve(file: Option<FileConfig>, cli: Overrides) -> Result<Self, ConfigError> {
        let file = file.unwrap_or_default();
        let d = Config::default();
        macro_rules! pick {
            ($f:ident) => {
                cli.$f.clone().or(file.$f.clone())
            };
        }
        let raft_addr = pick!(raft_addr).unwrap_or(d.raft_addr);
        let http_addr = pick!(http_addr).unwrap_or(d.http_addr);
        let initial_cluster = match pick!(initial_cluster) {
            Some(spec) if !spec.trim().is_empty() => parse_initial_cluster(&spec)?,
            _ => BTreeMap::new(),
        };
        let config = Config {
            node_id: pick!(node_id).unwrap_or(d.node_id),
            data_dir: pick!(data_dir).unwrap_or(d.data_dir),
            advertise_raft_addr: pick!(advertise_raft_addr).unwrap_or_else(|| raft_addr.clone()),
            advertise_http_addr: pick!(advertise_http_addr).unwrap_or_else(|| http_addr.clone()),
            raft_addr,
            http_addr,
            mqtt_addr: pick!(mqtt_addr).unwrap_or(d.mqtt_addr),
            mqtt_tls_addr: pick!(mqtt_tls_addr).unwrap_or(d.mqtt_tls_addr),
            mqtt_tls_cert: pick!(mqtt_tls_cert),
            mqtt_tls_key: pick!(mqtt_tls_key),
            mqtt_tls_client_ca: pick!(mqtt_tls_client_ca),
            mqtt_tls_client_auth: pick!(mqtt_tls_client_auth).unwrap_or(d.mqtt_tls_client_auth),
            mqtt_ws_addr: pick!(mqtt_ws_addr).unwrap_or(d.mqtt_ws_addr),
            initial_cluster,
            cluster_name: pick!(cluster_name),
            join: pick!(join),
            bootstrap: pick!(bootstrap).unwrap_or(d.bootstrap),
            fsync: pick!(fsync).unwrap_or(d.fsync),
            snapshot_every_entries: pick!(snapshot_every_entries)
                .unwrap_or(d.snapshot_every_entries),
            log_json: pick!(log_json).unwrap_or(d.log_json),
            log_level: pick!(log_level).unwrap_or(d.log_level),
        };
        if config.node_id == 0 {
            return Err(ConfigError::Invalid("node_id must be at least 1".into()));
        }
        if config.snapshot_every_entries < 10 {
            return Err(ConfigError::Invalid(
                "snapshot_every_entries must be at least 10".into(),
            ));
        }
        if !config.initial_cluster.is_empty()
            && !config.initial_cluster.contains_key(&config.node_id)
        {
            return Err(ConfigError::Invalid(format!(
                "initial_cluster does not list this node (node_id {})",
                config.node_id
            )));
        }
        if !config.mqtt_tls_addr.is_empty()
            && (config.mqtt_tls_cert.is_none() || config.mqtt_tls_key.is_none())
        {
            return Err(ConfigError::Invalid(
                "mqtt_tls_addr needs mqtt_tls_cert and mqtt_tls_key".into(),
            ));
        }
        if !config.initial_cluster.is_empty() && config.join.is_some() {
            return Err(ConfigError::Invalid(
                "give either initial_cluster or join, not both".into(),
            ));
        }
        Ok(config)
    }

    /// Reads a TOML file.
    pub fn read_file(path: &std::path::Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))
    }

    /// The cluster id of a static bootstrap: the configured name, or a stable hash of
    /// the member list, so every initial member derives the same id independently.
    pub fn static_cluster_id(&self) -> String {
        if let Some(name) = &self.cluster_name {
            return name.clone();
        }
        // FNV-1a: stable across versions and platforms, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (id, addr) in &self.initial_cluster {
            for b in format!("{id}={addr};").bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("fc-{h:016x}")
    }
}

/// Parses `1=127.0.0.1:7001,2=127.0.0.1:7002` (etcd-style).
pub fn parse_initial_cluster(spec: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let mut members = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| {
            ConfigError::Invalid(format!(
                "initial_cluster entry '{part}' is not id=host:port"
            ))
        })?;
        let id: u64 = id.trim().parse().map_err(|_| {
            ConfigError::Invalid(format!("initial_cluster id '{id}' is not a number"))
        })?;
        if id == 0 {
            return Err(ConfigError::Invalid("node ids start at 1".into()));
        }
        let addr = addr.trim();
        if !addr.contains(':') {
            return Err(ConfigError::Invalid(format!(
                "initial_cluster address '{addr}' has no port"
            )));
        }
        if members.insert(id, addr.to_string()).is_some() {
            return Err(ConfigError::Invalid(format!(
                "node {id} is listed twice in initial_cluster"
            )));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_is_one_of_three_and_a_bad_value_names_its_key() {
        let file: FileConfig = toml::from_str(r#"mqtt_tls_client_auth = "required""#).unwrap();
        assert_eq!(file.mqtt_tls_client_auth, Some(ClientAuth::Required));
        let err = toml::from_str::<FileConfig>(r#"mqtt_tls_client_auth = "sometimes""#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mqtt_tls_client_auth") && err.contains("sometimes"),
            "{err}"
        );
        assert_eq!("optional".parse::<ClientAuth>(), Ok(ClientAuth::Optional));
        assert!("Required".parse::<ClientAuth>().is_err());
    }

    #[test]
    fn precedence_defaults_file_flags() {
        let file = FileConfig {
            node_id: Some(2),
            http_addr: Some("127.0.0.1:9000".into()),
            initial_cluster: Some("1=127.0.0.1:7001, 2=127.0.0.1:7002".into()),
            ..Default::default()
        };
        let cli = Overrides {
            http_addr: Some("127.0.0.1:9100".into()),
            ..Default::default()
        };
        let c = Config::resolve(Some(file), cli).unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.http_addr, "127.0.0.1:9100");
        assert_eq!(c.advertise_http_addr, "127.0.0.1:9100");
        assert_eq!(c.raft_addr, "127.0.0.1:7000");
        assert_eq!(c.initial_cluster.len(), 2);
        assert_eq!(c.static_cluster_id(), c.clone().static_cluster_id());
        assert!(c.fsync);
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in ["1", "x=127.0.0.1:1", "0=a:1", "1=a:1,1=b:2", "1=nohost"] {
            assert!(parse_initial_cluster(bad).is_err(), "{bad}");
        }
        let cli = Overrides {
            node_id: Some(3),
            initial_cluster: Some("1=a:1,2=b:2".into()),
            ..Default::default()
        };
        assert!(Config::resolve(None, cli).is_err());
    }
}
