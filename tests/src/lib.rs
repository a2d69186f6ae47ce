//! Helpers for black-box tests: run the built `fleetcore` binary as real processes
//! on loopback, talk to them over HTTP, and wait for conditions with deadlines.
//!
//! Owns: process lifecycle (spawn, SIGKILL, SIGSTOP/SIGCONT, restart), free ports,
//! [`eventually`]. Must not depend on Fleetcore's crates: tests see what a user sees.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// Between probes of [`eventually`]: a poll interval, not a settle delay.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Re-checks `probe` until it yields a value; fails after `deadline`, saying `what`.
pub async fn eventually<T, Fut>(
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> Fut,
) -> anyhow::Result<T>
where
    Fut: Future<Output = Option<T>>,
{
    let give_up = Instant::now() + deadline;
    loop {
        if let Some(found) = probe().await {
            return Ok(found);
        }
        if Instant::now() >= give_up {
            bail!("gave up after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Cluster tests start several processes each; running them one at a time keeps a
/// 2-core machine from starving elections.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The `fleetcore` binary built next to this test binary.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("FLEETCORE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/fleetcore
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("fleetcore");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (cargo build -p fleetcore, or cargo test --workspace)",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1.
/// Never the same port twice in one test process (the OS may hand a just-released
/// port out again).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local addr").port();
        let mut seen = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.contains(&port) {
            seen.push(port);
            return port;
        }
    }
}

/// One node process and how to restart it.
pub struct NodeProcess {
    /// Node id.
    pub id: u64,
    /// host:port of HTTP.
    pub http_addr: String,
    /// host:port of Raft gRPC.
    pub raft_addr: String,
    /// host:port of MQTT.
    pub mqtt_addr: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Extra arguments (e.g. --initial-cluster, --join).
    pub args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl NodeProcess {
    /// Describes a node; does not start it.
    pub fn new(id: u64, root: &Path, args: Vec<String>) -> Self {
        let data_dir = root.join(format!("node{id}"));
        NodeProcess {
            id,
            http_addr: format!("127.0.0.1:{}", free_port()),
            raft_addr: format!("127.0.0.1:{}", free_port()),
            mqtt_addr: format!("127.0.0.1:{}", free_port()),
            log: root.join(format!("node{id}.log")),
            data_dir,
            args,
            child: None,
        }
    }

    /// MQTT port.
    pub fn mqtt_port(&self) -> u16 {
        self.mqtt_addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0)
    }

    /// Base URL of the HTTP API.
    pub fn url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Starts the process (logs go to a file in the test's temp dir).
    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(binary())
            .arg("serve")
            .args(["--node-id", &self.id.to_string()])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args([
                "--http-addr",
                &self.http_addr,
                "--raft-addr",
                &self.raft_addr,
                "--mqtt-addr",
                &self.mqtt_addr,
            ])
            .args(&self.args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawn fleetcore")?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&self, stop: bool) {
        if let Some(child) = &self.child {
            let sig = if stop { "-STOP" } else { "-CONT" };
            let _ = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status();
        }
    }

    /// SIGTERM and wait (bounded) for a graceful exit; returns the exit status.
    pub fn terminate(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let give_up = Instant::now() + deadline;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= give_up {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits for the process to exit by itself (bounded); returns the status.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let give_up = Instant::now() + deadline;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= give_up {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The node's log so far (for failure messages and checks).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.pause(false);
        self.kill();
    }
}

/// A set of node processes in one temp dir.
pub struct Cluster {
    /// The nodes, by position (node id = position + 1 unless added later).
    pub nodes: Vec<NodeProcess>,
    /// HTTP client with a bounded timeout.
    pub http: reqwest::Client,
    /// Keeps the data dirs alive.
    pub root: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes bootstrapped with `--initial-cluster`, plus `extra` args each.
    pub fn start(n: u64, extra: &[&str]) -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let mut nodes: Vec<NodeProcess> = (1..=n)
            .map(|id| NodeProcess::new(id, root.path(), Vec::new()))
            .collect();
        let spec = nodes
            .iter()
            .map(|p| format!("{}={}", p.id, p.raft_addr))
            .collect::<Vec<_>>()
            .join(",");
        for node in &mut nodes {
            node.args = vec!["--initial-cluster".into(), spec.clone()];
            node.args.extend(extra.iter().map(|s| s.to_string()));
            node.start()?;
        }
        Ok(Cluster {
            nodes,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            root,
        })
    }

    /// The node with `id`.
    pub fn node(&self, id: u64) -> &NodeProcess {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    /// The node with `id`, mutably.
    pub fn node_mut(&mut self, id: u64) -> &mut NodeProcess {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    /// GET a JSON document; `None` on any failure.
    pub async fn get_json(&self, url: &str) -> Option<Value> {
        let r = self.http.get(url).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// `/cluster/status` of node `id`, if it answers.
    pub async fn status(&self, id: u64) -> Option<Value> {
        self.get_json(&format!("{}/cluster/status", self.node(id).url()))
            .await
    }

    /// Waits until every node in `ids` reports the same leader (among `ids`), and returns it.
    pub async fn agreed_leader(&self, ids: &[u64], deadline: Duration) -> anyhow::Result<u64> {
        eventually(
            "one leader agreed on by every live node",
            deadline,
            || async {
                let mut leader = None;
                for id in ids {
                    let s = self.status(*id).await?;
                    let l = s["leader_id"].as_u64()?;
                    if !ids.contains(&l) || leader.is_some_and(|x| x != l) {
                        return None;
                    }
                    leader = Some(l);
                }
                leader
            },
        )
        .await
    }

    /// Waits until the nodes in `ids` report the same applied index and state digest.
    pub async fn converged(&self, ids: &[u64], deadline: Duration) -> anyhow::Result<String> {
        eventually(
            "replicas with identical applied state",
            deadline,
            || async {
                let mut seen: Option<(u64, String)> = None;
                for id in ids {
                    let s = self.status(*id).await?;
                    let applied = s["applied_index"].as_u64()?;
                    let digest = s["state_digest"].as_str()?.to_string();
                    match &seen {
                        None => seen = Some((applied, digest)),
                        Some((a, d)) if *a == applied && *d == digest => {}
                        Some(_) => return None,
                    }
                }
                seen.map(|(_, d)| d)
            },
        )
        .await
    }

    /// Dumps every node's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("---- node {} ----\n{}", n.id, n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
