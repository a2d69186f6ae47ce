//! The real-process drill (`cargo run -p chaos --release -- drill`): three
//! `fleetcore` processes on loopback, each reached by its peers through a TCP
//! proxy the drill controls. Writers (HTTP and MQTT) and linearizable readers
//! record a history while the drill SIGKILLs the leader, pauses nodes
//! (SIGSTOP/SIGCONT) and cuts every link into a node at its proxy; then the same
//! checkers as the simulations judge the history, and failover time (leader
//! killed → first committed write) is reported as p50/p99.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::check;
use crate::history::{Event, History, Op, Outcome};

/// Settings of one drill.
#[derive(Debug, Clone)]
pub struct DrillConfig {
    /// The fleetcore binary.
    pub binary: PathBuf,
    /// How many times the leader is killed.
    pub kills: usize,
    /// Where data dirs and logs go.
    pub dir: PathBuf,
}

/// What a drill measured.
#[derive(Debug, Clone)]
pub struct DrillReport {
    /// Leader killed → first committed write, per kill.
    pub failovers: Vec<Duration>,
    /// Pauses and link cuts injected besides the kills.
    pub other_faults: Vec<String>,
    /// Operations recorded and acknowledged.
    pub operations: usize,
    /// Acknowledged operations.
    pub acknowledged: usize,
}

impl DrillReport {
    /// The `p` quantile (0..=1) of failover times.
    pub fn failover_quantile(&self, p: f64) -> Duration {
        let mut v = self.failovers.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i.min(v.len() - 1)]
    }
}

struct Proxy {
    cut: Arc<AtomicBool>,
    /// Bumped on every cut, so open connections notice and close.
    generation: Arc<AtomicU64>,
}

/// Forwards `listen` to `target` until cut; a cut closes open connections and
/// refuses new ones until it is lifted.
async fn run_proxy(listener: TcpListener, target: String, proxy: Arc<Proxy>) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        if proxy.cut.load(Ordering::SeqCst) {
            let _ = inbound.shutdown().await;
            continue;
        }
        let target = target.clone();
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(&target).await else {
                return;
            };
            let generation = proxy.generation.load(Ordering::SeqCst);
            let watch = async {
                while proxy.generation.load(Ordering::SeqCst) == generation {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = watch => {}
            }
        });
    }
}

struct Node {
    id: u64,
    http: String,
    mqtt: u16,
    args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    fn start(&mut self, binary: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(binary)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn status(http: &reqwest::Client, node: &str) -> Option<Value> {
    let r = http
        .get(format!("http://{node}/cluster/status"))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// The leader as the live nodes agree on it.
async fn leader(http: &reqwest::Client, nodes: &[String], deadline: Duration) -> Option<u64> {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        let mut seen = Vec::new();
        for n in nodes {
            if let Some(s) = status(http, n).await {
                seen.push(s["leader_id"].as_u64());
            }
        }
        if let Some(Some(l)) = seen.first() {
            if seen.iter().all(|x| *x == Some(*l)) {
                return Some(*l);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Why writes ended "outcome unknown", counted for the report.
static UNKNOWN_WHY: Mutex<std::collections::BTreeMap<String, usize>> =
    Mutex::new(std::collections::BTreeMap::new());

fn unknown_because(reason: String) -> Outcome {
    // Keep the kind of failure, not its details (addresses, times).
    let kind: String = reason.chars().take(60).collect();
    if let Ok(mut why) = UNKNOWN_WHY.lock() {
        *why.entry(kind).or_default() += 1;
    }
    Outcome::Unknown
}

/// One shadow update over HTTP: the version it produced.
async fn http_update(http: &reqwest::Client, node: &str, key: &str, n: u64) -> Outcome {
    let r = http
        .post(format!("http://{node}/things/{key}/shadow"))
        .json(&json!({"state": {"reported": {"n": n}}}))
        .send()
        .await;
    match r {
        Ok(r) if r.status().is_success() => match r.json::<Value>().await {
            Ok(v) => v["version"].as_u64().map_or(Outcome::Unknown, Outcome::Ok),
            Err(_) => Outcome::Unknown,
        },
        // 4xx: refused, nothing applied.
        Ok(r) if r.status().is_client_error() => Outcome::Failed,
        // 503 "no leader available": no leader took it (the node retried with the
        // same request id while it could); nothing applied.
        // Any other 503: timed out with the write out; it may have been applied.
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                && body.contains("no leader available")
            {
                return Outcome::Failed;
            }
            if std::env::var("DRILL_DEBUG").is_ok() {
                eprintln!("update {node} {key}: {status} {body}");
            }
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|b| b["message"].as_str().map(str::to_string))
                .unwrap_or(body);
            unknown_because(format!("{status}: {message}"))
        }
        Err(e) => {
            if std::env::var("DRILL_DEBUG").is_ok() {
                eprintln!("update {node} {key}: {e}");
            }
            if e.is_connect() {
                // The connection was never made (a killed node): nothing was sent.
                return Outcome::Failed;
            }
            let kind = if e.is_timeout() {
                "client timeout"
            } else {
                "connection broke with the request out"
            };
            unknown_because(kind.to_string())
        }
    }
}

/// A linearizable read of the shadow's version.
async fn http_read(http: &reqwest::Client, node: &str, key: &str) -> Outcome {
    match http
        .get(format!("http://{node}/things/{key}/shadow"))
        .send()
        .await
    {
        Ok(r) if r.status().as_u16() == 404 => Outcome::Ok(0),
        Ok(r) if r.status().is_success() => match r.json::<Value>().await {
            Ok(v) => v["version"].as_u64().map_or(Outcome::Failed, Outcome::Ok),
            Err(_) => Outcome::Failed,
        },
        _ => Outcome::Failed,
    }
}

/// Shadow updates over MQTT: publish to `.../update`, wait for `.../accepted`
/// with the same client token.
async fn mqtt_writer(
    port_of: Vec<u16>,
    key: String,
    client: usize,
    history: History,
    stop: Arc<AtomicBool>,
    t0: Instant,
) {
    use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
    let mut n = 0u64;
    let mut attempt = 0usize;
    while !stop.load(Ordering::SeqCst) {
        attempt += 1;
        let port = port_of[attempt % port_of.len()];
        let mut o = MqttOptions::new(format!("drill-mqtt-{client}"), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        let (c, mut el) = AsyncClient::new(o, 100);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Value)>();
        let pump = tokio::spawn(async move {
            while let Ok(ev) = el.poll().await {
                if let MqttEvent::Incoming(Packet::Publish(p)) = ev {
                    let body = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send((p.topic.clone(), body)).is_err() {
                        return;
                    }
                }
            }
        });
        let base = format!("$aws/things/{key}/shadow/update");
        if c.subscribe(format!("{base}/+"), QoS::AtLeastOnce)
            .await
            .is_err()
        {
            pump.abort();
            continue;
        }
        while !stop.load(Ordering::SeqCst) && !pump.is_finished() {
            n += 1;
            let token = format!("c{client}-{n}");
            let invoked = t0.elapsed().as_millis() as u64;
            let body = json!({"state": {"reported": {"n": n}}, "clientToken": token});
            let sent = c
                .publish(&base, QoS::AtLeastOnce, false, body.to_string())
                .await
                .is_ok();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            let mut outcome = Outcome::Unknown;
            if sent {
                loop {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some((topic, b))) if b["clientToken"] == token.as_str() => {
                            outcome = if topic.ends_with("/accepted") {
                                b["version"].as_u64().map_or(Outcome::Unknown, Outcome::Ok)
                            } else if b["code"].as_u64().is_some_and(|c| c < 500) {
                                Outcome::Failed
                            } else {
                                Outcome::Unknown
                            };
                            break;
                        }
                        Ok(Some(_)) => continue,
                        _ => break,
                    }
                }
            }
            history.record(Event {
                client,
                key: key.clone(),
                op: Op::Update,
                invoked_ms: invoked,
                completed_ms: t0.elapsed().as_millis() as u64,
                outcome: outcome.clone(),
            });
            if outcome == Outcome::Unknown {
                // The node may be gone: reconnect elsewhere.
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pump.abort();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the drill; the error names the violation.
pub async fn run(config: DrillConfig) -> anyhow::Result<DrillReport> {
    std::fs::create_dir_all(&config.dir)?;
    let n = 3u64;
    let mut raft_real = Vec::new();
    let mut raft_proxy = Vec::new();
    for _ in 0..n {
        raft_real.push(free_port()?);
        raft_proxy.push(free_port()?);
    }
    let initial = (0..n as usize)
        .map(|i| format!("{}=127.0.0.1:{}", i + 1, raft_proxy[i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut proxies = Vec::new();
    for i in 0..n as usize {
        let p = Arc::new(Proxy {
            cut: Arc::new(AtomicBool::new(false)),
            generation: Arc::new(AtomicU64::new(0)),
        });
        let listener = TcpListener::bind(("127.0.0.1", raft_proxy[i])).await?;
        tokio::spawn(run_proxy(
            listener,
            format!("127.0.0.1:{}", raft_real[i]),
            p.clone(),
        ));
        proxies.push(p);
    }
    let mut nodes = Vec::new();
    for i in 0..n as usize {
        let id = i as u64 + 1;
        let http = format!("127.0.0.1:{}", free_port()?);
        let mqtt = free_port()?;
        let data = config.dir.join(format!("node{id}"));
        let args = vec![
            "serve".to_string(),
            "--node-id".into(),
            id.to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--http-addr".into(),
            http.clone(),
            "--mqtt-addr".into(),
            format!("127.0.0.1:{mqtt}"),
            "--raft-addr".into(),
            format!("127.0.0.1:{}", raft_real[i]),
            "--advertise-raft-addr".into(),
            format!("127.0.0.1:{}", raft_proxy[i]),
            "--initial-cluster".into(),
            initial.clone(),
        ];
        let mut node = Node {
            id,
            http,
            mqtt,
            args,
            child: None,
            log: config.dir.join(format!("node{id}.log")),
        };
        node.start(&config.binary)?;
        nodes.push(node);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(6))
        .build()?;
    let all: Vec<String> = nodes.iter().map(|n| n.http.clone()).collect();
    leader(&http, &all, Duration::from_secs(30))
        .await
        .ok_or_else(|| anyhow::anyhow!("the cluster never elected a leader"))?;

    // The workload: HTTP writers and readers on every node, one MQTT writer.
    let history = History::default();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let live: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(all.clone()));
    let mut workers = Vec::new();
    for client in 0..3usize {
        let (http, history, stop, live) =
            (http.clone(), history.clone(), stop.clone(), live.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut i = client;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let node = {
                    let l = live.lock().unwrap_or_else(|p| p.into_inner());
                    l[i % l.len()].clone()
                };
                let key = format!("drill-{}", i % 2);
                let invoked = t0.elapsed().as_millis() as u64;
                let (op, outcome) = if i % 4 == 0 {
                    (Op::Read, http_read(&http, &node, &key).await)
                } else {
                    n += 1;
                    (Op::Update, http_update(&http, &node, &key, n).await)
                };
                history.record(Event {
                    client,
                    key,
                    op,
                    invoked_ms: invoked,
                    completed_ms: t0.elapsed().as_millis() as u64,
                    outcome,
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    workers.push(tokio::spawn(mqtt_writer(
        nodes.iter().map(|n| n.mqtt).collect(),
        "drill-mqtt".into(),
        10,
        history.clone(),
        stop.clone(),
        t0,
    )));

    let mut failovers = Vec::new();
    let mut other_faults = Vec::new();
    for round in 0..config.kills {
        let Some(l) = leader(&http, &all, Duration::from_secs(30)).await else {
            anyhow::bail!("no leader before kill {round}");
        };
        let survivors: Vec<String> = nodes
            .iter()
            .filter(|n| n.id != l)
            .map(|n| n.http.clone())
            .collect();
        *live.lock().unwrap_or_else(|p| p.into_inner()) = survivors.clone();
        let victim = nodes
            .iter_mut()
            .find(|n| n.id == l)
            .ok_or_else(|| anyhow::anyhow!("leader {l} is not a drill node"))?;
        let killed_at = Instant::now();
        victim.kill();
        // Failover: the first write that commits through a survivor.
        let mut probe = 0u64;
        let failover = loop {
            probe += 1;
            let node = &survivors[probe as usize % survivors.len()];
            let quick = reqwest::Client::builder()
                .timeout(Duration::from_millis(500))
                .build()?;
            if let Outcome::Ok(_) = http_update(&quick, node, "drill-probe", probe).await {
                break killed_at.elapsed();
            }
            anyhow::ensure!(
                killed_at.elapsed() < Duration::from_secs(30),
                "no write committed within 30 s of killing leader {l}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        failovers.push(failover);
        eprintln!(
            "kill {}/{}: leader {l} killed, first write committed after {:.0} ms",
            round + 1,
            config.kills,
            failover.as_secs_f64() * 1000.0
        );
        // Another fault while it is down or after it is back, alternating.
        let victim = nodes
            .iter_mut()
            .find(|n| n.id == l)
            .ok_or_else(|| anyhow::anyhow!("node {l} vanished"))?;
        victim.start(&config.binary)?;
        *live.lock().unwrap_or_else(|p| p.into_inner()) = all.clone();
        leader(&http, &all, Duration::from_secs(30))
            .await
            .ok_or_else(|| anyhow::anyhow!("no leader after restarting node {l}"))?;
        match round % 3 {
            0 => {
                let i = (round / 3) % n as usize;
                nodes[i].signal("-STOP");
                tokio::time::sleep(Duration::from_millis(1500)).await;
                nodes[i].signal("-CONT");
                other_faults.push(format!("paused node {} for 1.5 s", i + 1));
            }
            1 => {
                let i = (round / 3 + 1) % n as usize;
                proxies[i].cut.store(true, Ordering::SeqCst);
                proxies[i].generation.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2000)).await;
                proxies[i].cut.store(false, Ordering::SeqCst);
                other_faults.push(format!("cut every link into node {} for 2 s", i + 1));
            }
            _ => {}
        }
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
    }

    // Judge: histories, then replicas identical once quiet.
    let events = history.events();
    let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
    for e in &events {
        let o = match e.outcome {
            Outcome::Ok(_) => "ok",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        };
        *tally
            .entry(format!("{:?} {o} (client {})", e.op, e.client))
            .or_default() += 1;
    }
    eprintln!("operations: {tally:?}");
    if let Ok(why) = UNKNOWN_WHY.lock() {
        eprintln!("writes with an unknown outcome, by reason: {why:?}");
    }
    check::shadow_versions(&events).map_err(|v| anyhow::anyhow!("{v}"))?;
    check::linearizable(&events).map_err(|v| anyhow::anyhow!("{v}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for node in &all {
            if let Some(s) = status(&http, node).await {
                seen.push((
                    s["node_id"].as_u64().unwrap_or(0),
                    s["applied_index"].as_u64(),
                    s["state_digest"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
        match check::replicas_identical(&seen) {
            Ok(()) if seen.len() == all.len() => break,
            r => {
                if Instant::now() >= deadline {
                    anyhow::bail!("replicas did not converge: {r:?} {seen:?}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(DrillReport {
        failovers,
        other_faults,
        operations: events.len(),
        acknowledged: events
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Ok(_)))
            .count(),
    })
}
