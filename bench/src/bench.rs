//! Benchmarks against a running cluster (or, for the MQTT ones, any MQTT broker):
//! - `fleetcore-bench shadow`: committed shadow updates per second and commit latency over
//!   HTTP, spreading clients over the nodes.
//! - `fleetcore-bench mqtt`: publish/subscribe throughput, loss, duplicates and end-to-end
//!   latency (fan-in, pairs, fan-out, same node or across nodes).
//! - `fleetcore-bench shadow-mqtt`: shadow updates over MQTT, each device in a closed loop.
//! - `fleetcore-bench connections`: idle connections and the broker's RSS per connection.
//!
//! The MQTT benches use a small MQTT 3.1.1 client built on rumqttc's packet codec
//! rather than its event loop: a publisher writes every packet that is due in one
//! system call (the event loop flushes once per packet, which on a small machine
//! makes the load generator the bottleneck), and a lost connection is reported, not
//! silently re-established, so what is measured is the broker.

use std::collections::HashSet;
use std::io::{BufRead, Write as _};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, BufMut, BytesMut};
use clap::Subcommand;
use fleetcore_broker::testing::MqttClient;
use rumqttc::mqttbytes::v4::{
    Disconnect, Packet, PingReq, PubAck, PubComp, PubRec, PubRel, Publish,
};
use rumqttc::mqttbytes::{self, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Shadow updates through the HTTP API of every given node.
    Shadow {
        /// HTTP URLs of the nodes, comma-separated.
        #[arg(
            long,
            default_value = "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083"
        )]
        endpoints: String,
        /// Concurrent clients per run, comma-separated.
        #[arg(long, default_value = "1,16,256")]
        clients: String,
        /// Length of each run.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
    /// MQTT publish/subscribe: throughput, loss, duplicates, end-to-end latency.
    ///
    /// Publisher i publishes on topic i mod --topics. With one subscriber it takes
    /// every topic through one `#` filter (fan-in); with as many subscribers as
    /// topics each takes one topic; with more subscribers than topics, topics fan
    /// out. Prints one markdown table row (after a header unless --no-header).
    Mqtt {
        /// MQTT brokers as host:port, comma-separated; clients are spread
        /// round-robin over them.
        #[arg(long, default_value = "127.0.0.1:1883")]
        targets: String,
        /// Put every subscriber on a different target than all its publishers.
        #[arg(long)]
        cross_node: bool,
        /// Publishing clients.
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        /// Subscribing clients (0: publish only).
        #[arg(long, default_value_t = 1)]
        subscribers: usize,
        /// QoS of publishes and subscriptions: 0, 1 or 2.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
        qos: u8,
        /// Payload bytes per message (at least 20: publisher, sequence, send time).
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Target total messages/s over all publishers (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// How long publishers publish.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Distinct topics.
        #[arg(long, default_value_t = 1)]
        topics: usize,
        /// QoS 1/2 messages a publisher may have unacknowledged.
        #[arg(long, default_value_t = 64)]
        inflight: usize,
        /// Broker process ids (comma-separated) whose CPU use over the run is
        /// reported, next to this process's own.
        #[arg(long)]
        broker_pids: Option<String>,
        /// Also print a latency histogram (to standard error).
        #[arg(long)]
        histogram: bool,
        /// First column of the row (broker name, scenario).
        #[arg(long, default_value = "mqtt")]
        label: String,
        /// Print only the row.
        #[arg(long)]
        no_header: bool,
    },
    /// Shadow updates over MQTT: each device (its own client and thing) updates
    /// its own shadow and waits for `/update/accepted` before the next update.
    ShadowMqtt {
        /// MQTT listeners of the nodes as host:port, comma-separated; devices are
        /// spread round-robin over them.
        #[arg(long, default_value = "127.0.0.1:1884,127.0.0.1:1885,127.0.0.1:1886")]
        targets: String,
        /// Devices per run, comma-separated.
        #[arg(long, default_value = "256")]
        devices: String,
        /// Length of each run.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// QoS of the update publishes and the reply subscriptions.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
        qos: u8,
        /// An update without a reply after this long counts as a timeout.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Broker process ids (comma-separated) whose CPU use over the run is
        /// reported, next to this process's own.
        #[arg(long)]
        broker_pids: Option<String>,
        /// Also print a latency histogram (to standard error).
        #[arg(long)]
        histogram: bool,
        /// First column of each row.
        #[arg(long, default_value = "shadow-mqtt")]
        label: String,
        /// Print only the rows.
        #[arg(long)]
        no_header: bool,
    },
    /// Idle MQTT connections; with --pid, the broker's RSS per connection
    /// (VmRSS from /proc/PID/status before and after).
    ///
    /// Every process holds one file descriptor per connection, so the
    /// connections are opened by --processes child processes of this binary.
    Connections {
        /// MQTT broker as host:port.
        #[arg(long, default_value = "127.0.0.1:1883")]
        target: String,
        /// Connections to open.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// The broker's process id, to read its RSS.
        #[arg(long)]
        pid: Option<u32>,
        /// Processes sharing the connections [default: one per 9,000].
        #[arg(long)]
        processes: Option<usize>,
        /// New connections per second over all processes.
        #[arg(long, default_value_t = 1000)]
        connect_rate: u64,
        /// MQTT keep-alive of every connection.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        keep_alive: Duration,
        /// Wait this long after the last connection before reading RSS.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// Keep the connections open this much longer after measuring.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        hold: Duration,
        /// First column of the row.
        #[arg(long, default_value = "broker")]
        label: String,
        /// Print only the row.
        #[arg(long)]
        no_header: bool,
        /// Internal: run as a child process that opens the connections, prints
        /// `ready <ok> <failed>`, answers `report` with `alive <n>`, and exits at
        /// the end of its standard input.
        #[arg(long, hide = true)]
        worker: Option<usize>,
    },
}

/// Prints how many of `latencies_us` fall in each band, to standard error.
fn print_histogram(label: &str, latencies_us: &[u64]) {
    const EDGES_MS: [u64; 13] = [1, 2, 5, 10, 20, 30, 40, 50, 75, 100, 200, 500, 1000];
    let mut counts = [0u64; EDGES_MS.len() + 1];
    for &us in latencies_us {
        let band = EDGES_MS
            .iter()
            .position(|&e| us < e * 1000)
            .unwrap_or(EDGES_MS.len());
        counts[band] += 1;
    }
    let total = latencies_us.len().max(1) as f64;
    eprintln!(
        "latency histogram, {label} ({} samples):",
        latencies_us.len()
    );
    let mut low = 0;
    for (band, count) in counts.iter().enumerate() {
        let high = EDGES_MS
            .get(band)
            .map_or("+".to_string(), |h| format!("{h}"));
        if *count > 0 {
            eprintln!(
                "  {low:>4}-{high:<4} ms {count:>9} {:>6.2}%",
                *count as f64 * 100.0 / total
            );
        }
        low = EDGES_MS.get(band).copied().unwrap_or(0);
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Shadow {
            endpoints,
            clients,
            duration,
        } => shadow_http(endpoints, clients, duration).await,
        BenchCommand::Mqtt {
            targets,
            cross_node,
            publishers,
            subscribers,
            qos,
            payload,
            rate,
            duration,
            topics,
            inflight,
            broker_pids,
            histogram,
            label,
            no_header,
        } => {
            let plan = MqttPlan {
                targets: split_targets(&targets)?,
                cross_node,
                publishers,
                subscribers,
                qos: qos_of(qos)?,
                payload,
                rate,
                duration,
                topics,
                inflight,
                broker_pids: parse_pids(broker_pids.as_deref())?,
            };
            let report = bench_mqtt(plan).await?;
            if histogram {
                print_histogram(&label, &report.latencies_us);
            }
            if !no_header {
                println!("{}", MqttReport::HEADER);
            }
            println!("{}", report.row(&label));
            Ok(())
        }
        BenchCommand::ShadowMqtt {
            targets,
            devices,
            duration,
            qos,
            timeout,
            broker_pids,
            histogram,
            label,
            no_header,
        } => {
            let targets = split_targets(&targets)?;
            let pids = parse_pids(broker_pids.as_deref())?;
            let qos = qos_of(qos)?;
            if !no_header {
                println!(
                    "| run | devices | accepted/s | rejected | timeouts | p50 ms | p90 ms | p99 ms | max ms | CPU % brokers / bench / other | errors |"
                );
                println!(
                    "|-----|--------:|-----------:|---------:|---------:|-------:|-------:|-------:|-------:|------|-------:|"
                );
            }
            for n in devices.split(',') {
                let n: usize = n.trim().parse().context("--devices")?;
                let latencies =
                    shadow_mqtt(&targets, n, duration, qos, timeout, &pids, &label).await?;
                if histogram {
                    print_histogram(&format!("{label}, {n} devices"), &latencies);
                }
            }
            Ok(())
        }
        BenchCommand::Connections {
            target,
            count,
            pid,
            processes,
            connect_rate,
            keep_alive,
            settle,
            hold,
            label,
            no_header,
            worker,
        } => {
            let keep_alive = u16::try_from(keep_alive.as_secs()).context("--keep-alive")?;
            match worker {
                Some(w) => connections_worker(target, count, w, connect_rate, keep_alive).await,
                None => {
                    let processes = processes.unwrap_or(count.div_ceil(9_000)).max(1);
                    let args = ConnArgs {
                        target,
                        count,
                        pid,
                        processes,
                        connect_rate,
                        keep_alive,
                        settle,
                        hold,
                    };
                    let row = tokio::task::spawn_blocking(move || connections(args)).await??;
                    if !no_header {
                        println!("| broker | connections | processes | RSS before MiB | RSS after MiB | KiB/connection | failed | dropped | connect s |");
                        println!("|--------|------------:|----------:|---------------:|--------------:|---------------:|-------:|--------:|----------:|");
                    }
                    println!("| {label} {row}");
                    Ok(())
                }
            }
        }
    }
}

async fn shadow_http(endpoints: String, clients: String, duration: Duration) -> anyhow::Result<()> {
    let endpoints: Vec<String> = endpoints
        .split(',')
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .collect();
    println!("| clients | updates/s | p50 ms | p99 ms | errors |");
    println!("|--------:|----------:|-------:|-------:|-------:|");
    for n in clients.split(',') {
        let n: usize = n.trim().parse()?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(n)
            .timeout(Duration::from_secs(10))
            .build()?;
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..n {
            let client = client.clone();
            let url = format!(
                "{}/things/bench-{n}-{i}/shadow",
                endpoints[i % endpoints.len()]
            );
            let stop = stop.clone();
            let errors = errors.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies_us = Vec::new();
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let body = format!(r#"{{"state":{{"reported":{{"seq":{seq},"temp":21.5}}}}}}"#);
                    let t = Instant::now();
                    match client.post(&url).body(body).send().await {
                        Ok(r) if r.status().is_success() => {
                            latencies_us.push(t.elapsed().as_micros() as u64)
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies_us
            }));
        }
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await?);
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_unstable();
        println!(
            "| {n:>7} | {:>9.0} | {:>6.1} | {:>6.1} | {:>6} |",
            all.len() as f64 / elapsed,
            percentile(&all, 0.50),
            percentile(&all, 0.99),
            errors.load(Ordering::Relaxed)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// A minimal MQTT 3.1.1 client
// ---------------------------------------------------------------------------

/// Largest packet accepted from a broker.
const MAX_PACKET: usize = 1 << 20;

fn split_targets(targets: &str) -> anyhow::Result<Vec<String>> {
    let targets: Vec<String> = targets
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if targets.is_empty() {
        bail!("no targets");
    }
    Ok(targets)
}

fn qos_of(qos: u8) -> anyhow::Result<QoS> {
    mqttbytes::qos(qos).map_err(|e| anyhow!("QoS {qos}: {e}"))
}

/// A short id that keeps the client ids and topics of one run apart from others.
fn run_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), ms % 0x1_0000_0000)
}

/// One MQTT connection: the broker crate's test client over a TCP stream split
/// into halves, so a task can read acknowledgements while another writes.
type Conn = MqttClient<OwnedReadHalf, OwnedWriteHalf>;

/// TCP connect (no Nagle), CONNECT (clean session), and a successful CONNACK.
async fn open_conn(addr: &str, client_id: &str, keep_alive: u16) -> anyhow::Result<Conn> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let (rd, wr) = stream.into_split();
    MqttClient::connect(rd, wr, client_id, keep_alive)
        .await
        .with_context(|| format!("{addr}: MQTT connect of {client_id}"))
}

fn put_remaining_length(out: &mut BytesMut, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if len == 0 {
            break;
        }
    }
}

/// What every benchmark message starts with.
const STAMP: usize = 20;

/// Appends a PUBLISH whose payload is `publisher`, `seq`, `sent_ns` (little
/// endian) padded with zeros to `size` bytes.
#[allow(clippy::too_many_arguments)]
fn put_publish(
    out: &mut BytesMut,
    topic: &str,
    qos: QoS,
    pkid: u16,
    publisher: u32,
    seq: u64,
    sent_ns: u64,
    size: usize,
) {
    let id_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
    out.put_u8(0x30 | ((qos as u8) << 1));
    put_remaining_length(out, 2 + topic.len() + id_len + size);
    out.put_u16(topic.len() as u16);
    out.put_slice(topic.as_bytes());
    if id_len > 0 {
        out.put_u16(pkid);
    }
    out.put_u32_le(publisher);
    out.put_u64_le(seq);
    out.put_u64_le(sent_ns);
    out.put_bytes(0, size.saturating_sub(STAMP));
}

/// Queues the acknowledgement a received PUBLISH needs.
fn ack_publish(out: &mut BytesMut, p: &Publish) -> anyhow::Result<()> {
    match p.qos {
        QoS::AtMostOnce => {}
        QoS::AtLeastOnce => {
            PubAck::new(p.pkid).write(out)?;
        }
        QoS::ExactlyOnce => {
            PubRec::new(p.pkid).write(out)?;
        }
    }
    Ok(())
}

fn parse_pids(pids: Option<&str>) -> anyhow::Result<Vec<u32>> {
    let Some(pids) = pids else {
        return Ok(Vec::new());
    };
    pids.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().parse().with_context(|| format!("pid {p}")))
        .collect()
}

/// User plus system CPU time of a process, in clock ticks (USER_HZ, 100 per
/// second on Linux).
fn cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse::<u64>()
            .map_err(Into::into)
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Ok(field(11)? + field(12)?)
}

/// Busy clock ticks of the whole machine (all CPUs), from /proc/stat.
fn machine_busy_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
    let mut busy = 0;
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    for (i, v) in line.split_whitespace().skip(1).take(8).enumerate() {
        if i != 3 && i != 4 {
            busy += v.parse::<u64>()?;
        }
    }
    Ok(busy)
}

/// CPU use of the brokers, of this process, and of everything else on the
/// machine over a stretch of time.
struct CpuMeter {
    pids: Vec<String>,
    ticks: Vec<u64>,
    own: u64,
    machine: u64,
    at: Instant,
}

impl CpuMeter {
    fn start(pids: &[u32]) -> anyhow::Result<Self> {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        Ok(CpuMeter {
            ticks: pids
                .iter()
                .map(|p| cpu_ticks(p))
                .collect::<Result<_, _>>()?,
            own: cpu_ticks("self")?,
            machine: machine_busy_ticks()?,
            pids,
            at: Instant::now(),
        })
    }

    /// `brokers / bench / other` in percent of one core: the brokers' sum (each
    /// broker in parentheses when there are several, `-` without brokers), this
    /// process, and the rest of the machine (other processes, the kernel's
    /// softirq work that is not charged to a process).
    fn finish(self) -> anyhow::Result<String> {
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let pct = |ticks: u64| ticks as f64 / secs;
        let mut each = Vec::new();
        for (p, before) in self.pids.iter().zip(&self.ticks) {
            each.push(pct(cpu_ticks(p)?.saturating_sub(*before)));
        }
        let own = pct(cpu_ticks("self")?.saturating_sub(self.own));
        let machine = pct(machine_busy_ticks()?.saturating_sub(self.machine));
        let other = (machine - own - each.iter().sum::<f64>()).max(0.0);
        let brokers = match each.len() {
            0 => "-".to_string(),
            1 => format!("{:.0}", each[0]),
            _ => format!(
                "{:.0} ({})",
                each.iter().sum::<f64>(),
                each.iter()
                    .map(|c| format!("{c:.0}"))
                    .collect::<Vec<_>>()
                    .join("+")
            ),
        };
        Ok(format!("{brokers} / {own:.0} / {other:.0}"))
    }
}

fn nanos_since(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

// ---------------------------------------------------------------------------
// bench mqtt
// ---------------------------------------------------------------------------

struct MqttPlan {
    targets: Vec<String>,
    cross_node: bool,
    publishers: usize,
    subscribers: usize,
    qos: QoS,
    payload: usize,
    rate: u64,
    duration: Duration,
    topics: usize,
    inflight: usize,
    broker_pids: Vec<u32>,
}

/// Which sequence numbers of one publisher a subscriber has seen.
#[derive(Default)]
struct Seen {
    bits: Vec<u64>,
    unique: u64,
    duplicates: u64,
}

impl Seen {
    /// True when `seq` is new.
    fn mark(&mut self, seq: u64) -> bool {
        let word = (seq / 64) as usize;
        let bit = 1u64 << (seq % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & bit != 0 {
            self.duplicates += 1;
            false
        } else {
            self.bits[word] |= bit;
            self.unique += 1;
            true
        }
    }
}

struct SubStats {
    /// Indexed by publisher.
    seen: Vec<Seen>,
    latencies_us: Vec<u64>,
    /// Messages that were not from this run's publishers.
    foreign: u64,
    last_ns: u64,
    error: Option<String>,
}

struct PubStats {
    sent: u64,
    acked: u64,
    error: Option<String>,
}

struct MqttReport {
    plan_summary: String,
    published: u64,
    publish_secs: f64,
    expected: u64,
    delivered: u64,
    deliver_secs: f64,
    duplicates: u64,
    latencies_us: Vec<u64>,
    cpu: String,
    errors: Vec<String>,
}

impl MqttReport {
    const HEADER: &'static str = "| run | qos | pubs→subs (topics) | payload B | target msg/s | published/s | delivered/s | lost | dup | p50 ms | p90 ms | p99 ms | max ms | CPU % brokers / bench / other | errors |\n|-----|----:|-------------------|----------:|-------------:|------------:|------------:|-----:|----:|-------:|-------:|-------:|-------:|------|-------:|";

    fn row(&self, label: &str) -> String {
        let lost = self.expected.saturating_sub(self.delivered);
        let lost_pct = if self.expected > 0 {
            lost as f64 * 100.0 / self.expected as f64
        } else {
            0.0
        };
        let max = self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0;
        let mut errors = self.errors.len().to_string();
        if let Some(first) = self.errors.first() {
            errors = format!("{errors} ({first})");
        }
        format!(
            "| {label} | {} | {:.0} | {:.0} | {lost} ({lost_pct:.2}%) | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {errors} |",
            self.plan_summary,
            self.published as f64 / self.publish_secs.max(1e-9),
            self.delivered as f64 / self.deliver_secs.max(1e-9),
            self.duplicates,
            percentile(&self.latencies_us, 0.50),
            percentile(&self.latencies_us, 0.90),
            percentile(&self.latencies_us, 0.99),
            max,
            self.cpu,
        )
    }
}

/// The topics subscriber `j` takes, out of `topics`, with `subscribers` in all.
fn topics_of(j: usize, subscribers: usize, topics: usize) -> Vec<usize> {
    if subscribers > topics {
        vec![j % topics]
    } else {
        (0..topics).filter(|t| t % subscribers == j).collect()
    }
}

/// The target index of every subscriber: round-robin, or with `cross_node` the
/// first target after its first publisher's that none of its publishers use.
fn place_subscribers(
    plan: &MqttPlan,
    feeders: &[Vec<usize>],
    pub_target: impl Fn(usize) -> usize,
) -> anyhow::Result<Vec<usize>> {
    let n = plan.targets.len();
    let mut placed = Vec::with_capacity(plan.subscribers);
    for (j, feeders) in feeders.iter().enumerate() {
        if !plan.cross_node {
            placed.push(j % n);
            continue;
        }
        let used: HashSet<usize> = feeders.iter().map(|&i| pub_target(i)).collect();
        let base = feeders.first().map_or(j, |&i| pub_target(i) + 1);
        let Some(t) = (0..n).map(|k| (base + k) % n).find(|t| !used.contains(t)) else {
            bail!(
                "--cross-node: subscriber {j} has publishers on every target; give more targets or fewer publishers per subscriber"
            );
        };
        placed.push(t);
    }
    Ok(placed)
}

async fn bench_mqtt(plan: MqttPlan) -> anyhow::Result<MqttReport> {
    if plan.publishers == 0 || plan.topics == 0 {
        bail!("--publishers and --topics must be at least 1");
    }
    if plan.payload < STAMP {
        bail!("--payload must be at least {STAMP} bytes (publisher, sequence, send time)");
    }
    if plan.inflight == 0 || plan.inflight > 60_000 {
        bail!("--inflight must be within 1..=60000");
    }
    let run = run_id();
    let topic = |t: usize| format!("bench/{run}/{t}");
    let n_targets = plan.targets.len();
    let pub_target = |i: usize| i % n_targets;
    let sub_topics: Vec<Vec<usize>> = (0..plan.subscribers)
        .map(|j| topics_of(j, plan.subscribers, plan.topics))
        .collect();
    let feeders: Vec<Vec<usize>> = sub_topics
        .iter()
        .map(|ts| {
            (0..plan.publishers)
                .filter(|i| ts.contains(&(i % plan.topics)))
                .collect()
        })
        .collect();
    let sub_target = place_subscribers(&plan, &feeders, pub_target)?;
    let base = Instant::now();

    // Subscribers first, each ready once its SUBACK arrived.
    let (stop_tx, stop_rx) = watch::channel(false);
    let progress = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    let mut ready = Vec::new();
    for j in 0..plan.subscribers {
        pace_connects(base, j).await;
        let filters: Vec<String> = if plan.topics > 1 && sub_topics[j].len() == plan.topics {
            vec![format!("bench/{run}/#")]
        } else {
            sub_topics[j].iter().map(|&t| topic(t)).collect()
        };
        if filters.len() > 200 {
            bail!(
                "subscriber {j} would need {} subscriptions: use more subscribers or fewer topics",
                filters.len()
            );
        }
        let addr = plan.targets[sub_target[j]].clone();
        let client_id = format!("bench-{run}-s{j}");
        let (ready_tx, ready_rx) = oneshot::channel();
        ready.push(ready_rx);
        subs.push(tokio::spawn(subscriber(
            addr,
            client_id,
            filters,
            plan.qos,
            plan.publishers,
            base,
            ready_tx,
            stop_rx.clone(),
            progress.clone(),
        )));
    }
    for r in ready {
        r.await
            .map_err(|_| anyhow!("a subscriber ended before subscribing"))??;
    }

    // Publishers: connect, then start together.
    let (start_tx, start_rx) = watch::channel(None::<(Instant, Instant)>);
    let per_publisher_rate = plan.rate as f64 / plan.publishers as f64;
    let mut pubs = Vec::new();
    let mut ready = Vec::new();
    for i in 0..plan.publishers {
        pace_connects(base, plan.subscribers + i).await;
        let (ready_tx, ready_rx) = oneshot::channel();
        ready.push(ready_rx);
        let job = PublisherJob {
            id: i as u32,
            addr: plan.targets[pub_target(i)].clone(),
            client_id: format!("bench-{run}-p{i}"),
            topic: topic(i % plan.topics),
            qos: plan.qos,
            payload: plan.payload,
            rate: per_publisher_rate,
            inflight: plan.inflight,
        };
        pubs.push(tokio::spawn(publisher(
            job,
            base,
            ready_tx,
            start_rx.clone(),
        )));
    }
    for r in ready {
        r.await
            .map_err(|_| anyhow!("a publisher ended before connecting"))??;
    }
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + plan.duration;
    start_tx.send_replace(Some((start, end)));
    tokio::time::sleep_until(start.into()).await;
    let meter = CpuMeter::start(&plan.broker_pids)?;

    let mut errors = Vec::new();
    let mut sent = vec![0u64; plan.publishers];
    for (i, p) in pubs.into_iter().enumerate() {
        let stats = p.await?;
        sent[i] = stats.sent;
        if plan.qos != QoS::AtMostOnce && stats.acked < stats.sent && stats.error.is_none() {
            errors.push(format!(
                "publisher {i}: {} of {} unacknowledged",
                stats.sent - stats.acked,
                stats.sent
            ));
        }
        if let Some(e) = stats.error {
            errors.push(format!("publisher {i}: {e}"));
        }
    }
    let published_at = Instant::now();
    let cpu = meter.finish()?;
    let publish_secs = (end.min(published_at) - start).as_secs_f64();
    let expected: u64 = feeders
        .iter()
        .map(|f| f.iter().map(|&i| sent[i]).sum::<u64>())
        .sum();

    // Let deliveries drain: stop when all arrived, or nothing arrived for 1 s
    // (at most 10 s).
    let mut last = progress.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while progress.load(Ordering::Relaxed) < expected
        && quiet_since.elapsed() < Duration::from_secs(1)
        && published_at.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    stop_tx.send_replace(true);

    let mut delivered = 0;
    let mut duplicates = 0;
    let mut latencies_us = Vec::new();
    let mut last_ns = 0;
    for (j, s) in subs.into_iter().enumerate() {
        let stats = s.await?;
        for (i, seen) in stats.seen.iter().enumerate() {
            if seen.unique > 0 && !feeders[j].contains(&i) {
                errors.push(format!("subscriber {j} got messages of publisher {i}"));
            }
            delivered += seen.unique;
            duplicates += seen.duplicates;
        }
        if stats.foreign > 0 {
            errors.push(format!(
                "subscriber {j}: {} foreign messages",
                stats.foreign
            ));
        }
        if let Some(e) = stats.error {
            errors.push(format!("subscriber {j}: {e}"));
        }
        last_ns = last_ns.max(stats.last_ns);
        latencies_us.extend(stats.latencies_us);
    }
    latencies_us.sort_unstable();
    let start_ns = (start - base).as_nanos() as u64;
    let deliver_secs =
        (last_ns.saturating_sub(start_ns) as f64 / 1e9).max(plan.duration.as_secs_f64());
    let rate = if plan.rate == 0 {
        "max".to_string()
    } else {
        plan.rate.to_string()
    };
    let cross = if plan.cross_node { " cross-node" } else { "" };
    Ok(MqttReport {
        plan_summary: format!(
            "{} | {}→{} ({}){cross} | {} | {rate}",
            plan.qos as u8, plan.publishers, plan.subscribers, plan.topics, plan.payload
        ),
        published: sent.iter().sum(),
        publish_secs,
        expected,
        delivered,
        deliver_secs,
        duplicates,
        latencies_us,
        cpu,
        errors,
    })
}

/// Spaces connection attempts 1 ms apart beyond the first 200 (brokers limit the
/// connection rate).
async fn pace_connects(base: Instant, i: usize) {
    if i >= 200 {
        tokio::time::sleep_until((base + Duration::from_millis(i as u64 - 200)).into()).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn subscriber(
    addr: String,
    client_id: String,
    filters: Vec<String>,
    qos: QoS,
    publishers: usize,
    base: Instant,
    ready: oneshot::Sender<anyhow::Result<()>>,
    mut stop: watch::Receiver<bool>,
    progress: Arc<AtomicU64>,
) -> SubStats {
    let mut stats = SubStats {
        seen: (0..publishers).map(|_| Seen::default()).collect(),
        latencies_us: Vec::new(),
        foreign: 0,
        last_ns: 0,
        error: None,
    };
    let setup = async {
        let mut conn = open_conn(&addr, &client_id, 60).await?;
        conn.subscribe(&filters, qos).await?;
        anyhow::Ok(conn)
    };
    let mut conn = match setup.await {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            stats.error = Some(format!("{e:#}"));
            let _ = ready.send(Err(e));
            return stats;
        }
    };
    let mut out = BytesMut::with_capacity(4096);
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    ping.tick().await;
    let result: anyhow::Result<()> = async {
        loop {
            let mut fresh = 0;
            while let Some(packet) = conn.parse()? {
                match packet {
                    Packet::Publish(p) => {
                        let now = nanos_since(base);
                        ack_publish(&mut out, &p)?;
                        let mut body = &p.payload[..];
                        if body.len() < STAMP {
                            stats.foreign += 1;
                            continue;
                        }
                        let publisher = body.get_u32_le() as usize;
                        let seq = body.get_u64_le();
                        let sent = body.get_u64_le();
                        let Some(seen) = stats.seen.get_mut(publisher) else {
                            stats.foreign += 1;
                            continue;
                        };
                        if seen.mark(seq) {
                            fresh += 1;
                        }
                        stats.latencies_us.push(now.saturating_sub(sent) / 1000);
                        stats.last_ns = now;
                    }
                    Packet::PubRel(r) => {
                        PubComp::new(r.pkid).write(&mut out)?;
                    }
                    _ => {}
                }
            }
            if fresh > 0 {
                progress.fetch_add(fresh, Ordering::Relaxed);
            }
            if !out.is_empty() {
                conn.writer.write_all(&out).await?;
                out.clear();
            }
            tokio::select! {
                r = conn.fill() => r?,
                _ = ping.tick() => {
                    PingReq.write(&mut out)?;
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }
    .await;
    if let Err(e) = result {
        stats.error = Some(format!("{e:#}"));
    } else {
        conn.disconnect().await;
    }
    stats
}

struct PublisherJob {
    id: u32,
    addr: String,
    client_id: String,
    topic: String,
    qos: QoS,
    payload: usize,
    /// Messages per second, 0 for as fast as possible.
    rate: f64,
    inflight: usize,
}

/// What the reading half of a publisher passes to the writing half.
enum Ack {
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2).
    Done(u16),
    /// PUBREC: send PUBREL.
    Received(u16),
    Closed(String),
}

async fn publisher_acks(mut rd: OwnedReadHalf, mut buf: BytesMut, tx: mpsc::UnboundedSender<Ack>) {
    let reason = loop {
        loop {
            let packet = match Packet::read(&mut buf, MAX_PACKET) {
                Ok(p) => p,
                Err(mqttbytes::Error::InsufficientBytes(_)) => break,
                Err(e) => {
                    let _ = tx.send(Ack::Closed(format!("malformed packet: {e}")));
                    return;
                }
            };
            let ack = match packet {
                Packet::PubAck(a) => Ack::Done(a.pkid),
                Packet::PubComp(c) => Ack::Done(c.pkid),
                Packet::PubRec(r) => Ack::Received(r.pkid),
                _ => continue,
            };
            if tx.send(ack).is_err() {
                return;
            }
        }
        buf.reserve(64 * 1024);
        match rd.read_buf(&mut buf).await {
            Ok(0) => break "connection closed by the broker".to_string(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    let _ = tx.send(Ack::Closed(reason));
}

/// Most messages one write carries.
const BATCH: u64 = 256;

/// A publisher's unacknowledged QoS 1/2 messages.
struct Window {
    outstanding: Vec<bool>,
    inflight: usize,
    pubrels: Vec<u16>,
    acked: u64,
    next_pkid: u16,
}

impl Window {
    fn new() -> Self {
        Window {
            outstanding: vec![false; 65_536],
            inflight: 0,
            pubrels: Vec::new(),
            acked: 0,
            next_pkid: 0,
        }
    }

    /// A free packet id, now outstanding.
    fn take_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid % 65_535 + 1;
            let slot = &mut self.outstanding[usize::from(self.next_pkid)];
            if !*slot {
                *slot = true;
                self.inflight += 1;
                return self.next_pkid;
            }
        }
    }

    fn on(&mut self, ack: Ack) -> Result<(), String> {
        match ack {
            Ack::Done(id) => {
                if std::mem::take(&mut self.outstanding[usize::from(id)]) {
                    self.inflight -= 1;
                    self.acked += 1;
                }
            }
            Ack::Received(id) => self.pubrels.push(id),
            Ack::Closed(reason) => return Err(reason),
        }
        Ok(())
    }

    /// Queues PUBREL for every PUBREC received.
    fn put_pubrels(&mut self, out: &mut BytesMut) -> Result<(), String> {
        for id in self.pubrels.drain(..) {
            PubRel::new(id).write(out).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

async fn publisher(
    job: PublisherJob,
    base: Instant,
    ready: oneshot::Sender<anyhow::Result<()>>,
    mut start: watch::Receiver<Option<(Instant, Instant)>>,
) -> PubStats {
    let mut stats = PubStats {
        sent: 0,
        acked: 0,
        error: None,
    };
    let conn = match open_conn(&job.addr, &job.client_id, 60).await {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            stats.error = Some(format!("{e:#}"));
            let _ = ready.send(Err(e));
            return stats;
        }
    };
    let Ok(window) = start.wait_for(Option::is_some).await.map(|w| *w) else {
        stats.error = Some("no start signal".into());
        return stats;
    };
    let Some((start_at, end_at)) = window else {
        return stats;
    };
    let MqttClient {
        reader: rd,
        writer: mut wr,
        buf,
    } = conn;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(publisher_acks(rd, buf, tx));
    tokio::time::sleep_until(start_at.into()).await;

    let qos0 = job.qos == QoS::AtMostOnce;
    let mut w = Window::new();
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut last_ping = Instant::now();
    let result: Result<(), String> = async {
        // Publishing.
        loop {
            while let Ok(ack) = rx.try_recv() {
                w.on(ack)?;
            }
            let now = Instant::now();
            if now >= end_at {
                break;
            }
            let due = if job.rate > 0.0 {
                let should = ((now - start_at).as_secs_f64() * job.rate) as u64 + 1;
                should.saturating_sub(stats.sent)
            } else {
                BATCH
            };
            let room = if qos0 {
                BATCH
            } else {
                (job.inflight - w.inflight) as u64
            };
            let n = due.min(room).min(BATCH);
            w.put_pubrels(&mut out)?;
            let sent_ns = nanos_since(base);
            for _ in 0..n {
                let pkid = if qos0 { 0 } else { w.take_pkid() };
                put_publish(
                    &mut out,
                    &job.topic,
                    job.qos,
                    pkid,
                    job.id,
                    stats.sent,
                    sent_ns,
                    job.payload,
                );
                stats.sent += 1;
            }
            if last_ping.elapsed() >= Duration::from_secs(30) {
                last_ping = Instant::now();
                PingReq.write(&mut out).map_err(|e| e.to_string())?;
            }
            if !out.is_empty() {
                wr.write_all(&out).await.map_err(|e| e.to_string())?;
                out.clear();
            }
            let window_full = !qos0 && w.inflight >= job.inflight;
            let caught_up = job.rate > 0.0 && n == due;
            if window_full || caught_up {
                // Wait for the next message's time, or for an acknowledgement.
                let wake = if caught_up {
                    start_at + Duration::from_secs_f64(stats.sent as f64 / job.rate)
                } else {
                    end_at
                };
                tokio::select! {
                    ack = rx.recv() => match ack {
                        Some(ack) => w.on(ack)?,
                        None => return Err("acknowledgement reader ended".to_string()),
                    },
                    _ = tokio::time::sleep_until(wake.min(end_at).into()) => {}
                }
            }
        }
        // Waiting for the outstanding acknowledgements (at most 10 s).
        let drain_until = Instant::now() + Duration::from_secs(10);
        while w.inflight > 0 {
            w.put_pubrels(&mut out)?;
            if !out.is_empty() {
                wr.write_all(&out).await.map_err(|e| e.to_string())?;
                out.clear();
            }
            tokio::select! {
                ack = rx.recv() => match ack {
                    Some(ack) => w.on(ack)?,
                    None => return Err("acknowledgement reader ended".to_string()),
                },
                _ = tokio::time::sleep_until(drain_until.into()) => break,
            }
        }
        Ok(())
    }
    .await;
    stats.acked = w.acked;
    match result {
        Ok(()) => {
            let mut out = BytesMut::new();
            if Disconnect.write(&mut out).is_ok() {
                let _ = wr.write_all(&out).await;
            }
            let _ = wr.shutdown().await;
        }
        Err(e) => stats.error = Some(e),
    }
    reader.abort();
    stats
}

// ---------------------------------------------------------------------------
// bench shadow-mqtt
// ---------------------------------------------------------------------------

struct DeviceStats {
    accepted: u64,
    rejected: u64,
    timeouts: u64,
    latencies_us: Vec<u64>,
    error: Option<String>,
}

async fn shadow_mqtt(
    targets: &[String],
    devices: usize,
    duration: Duration,
    qos: QoS,
    timeout: Duration,
    broker_pids: &[u32],
    label: &str,
) -> anyhow::Result<Vec<u64>> {
    let run = run_id();
    let base = Instant::now();
    let (start_tx, start_rx) = watch::channel(None::<(Instant, Instant)>);
    let mut tasks = Vec::new();
    let mut ready = Vec::new();
    for i in 0..devices {
        pace_connects(base, i).await;
        let (ready_tx, ready_rx) = oneshot::channel();
        ready.push(ready_rx);
        tasks.push(tokio::spawn(device(
            targets[i % targets.len()].clone(),
            format!("bench-{run}-{i}"),
            qos,
            timeout,
            ready_tx,
            start_rx.clone(),
        )));
    }
    for r in ready {
        r.await
            .map_err(|_| anyhow!("a device ended before subscribing"))??;
    }
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + duration;
    start_tx.send_replace(Some((start, end)));
    tokio::time::sleep_until(start.into()).await;
    let meter = CpuMeter::start(broker_pids)?;
    tokio::time::sleep_until(end.into()).await;
    let cpu = meter.finish()?;
    let mut accepted = 0;
    let mut rejected = 0;
    let mut timeouts = 0;
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let s = t.await?;
        accepted += s.accepted;
        rejected += s.rejected;
        timeouts += s.timeouts;
        latencies.extend(s.latencies_us);
        if let Some(e) = s.error {
            errors.push(e);
        }
    }
    latencies.sort_unstable();
    let secs = duration.as_secs_f64();
    let mut errs = errors.len().to_string();
    if let Some(first) = errors.first() {
        errs = format!("{errs} ({first})");
    }
    println!(
        "| {label} | {devices} | {:.0} | {rejected} | {timeouts} | {:.2} | {:.2} | {:.2} | {:.2} | {cpu} | {errs} |",
        accepted as f64 / secs,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    Ok(latencies)
}

/// One device: subscribes to its own shadow's update replies, then updates the
/// shadow in a closed loop until the end of the run. Only updates that were sent
/// and answered within the run count.
async fn device(
    addr: String,
    thing: String,
    qos: QoS,
    timeout: Duration,
    ready: oneshot::Sender<anyhow::Result<()>>,
    mut start: watch::Receiver<Option<(Instant, Instant)>>,
) -> DeviceStats {
    let mut stats = DeviceStats {
        accepted: 0,
        rejected: 0,
        timeouts: 0,
        latencies_us: Vec::new(),
        error: None,
    };
    let prefix = format!("$aws/things/{thing}/shadow/update");
    let accepted_topic = format!("{prefix}/accepted");
    let rejected_topic = format!("{prefix}/rejected");
    let setup = async {
        let mut conn = open_conn(&addr, &thing, 60).await?;
        conn.subscribe(&[accepted_topic.clone(), rejected_topic.clone()], qos)
            .await?;
        anyhow::Ok(conn)
    };
    let mut conn = match setup.await {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            c
        }
        Err(e) => {
            stats.error = Some(format!("{thing}: {e:#}"));
            let _ = ready.send(Err(e));
            return stats;
        }
    };
    let Ok(window) = start.wait_for(Option::is_some).await.map(|w| *w) else {
        stats.error = Some("no start signal".into());
        return stats;
    };
    let Some((start_at, end_at)) = window else {
        return stats;
    };
    tokio::time::sleep_until(start_at.into()).await;
    let mut out = BytesMut::with_capacity(512);
    let mut seq = 0u64;
    let mut pkid: u16 = 0;
    let mut last_ping = Instant::now();
    let result: anyhow::Result<()> = async {
        'updates: while Instant::now() < end_at {
            seq += 1;
            let token = format!("{thing}-{seq}");
            let body = format!(
                r#"{{"state":{{"reported":{{"seq":{seq},"temp":21.5}}}},"clientToken":"{token}"}}"#
            );
            pkid = pkid % 65_535 + 1;
            let mut publish = Publish::new(prefix.as_str(), qos, body.into_bytes());
            publish.pkid = if qos == QoS::AtMostOnce { 0 } else { pkid };
            publish.write(&mut out)?;
            if last_ping.elapsed() >= Duration::from_secs(30) {
                last_ping = Instant::now();
                PingReq.write(&mut out)?;
            }
            let sent = Instant::now();
            conn.writer.write_all(&out).await?;
            out.clear();
            let deadline = sent + timeout;
            loop {
                while let Some(packet) = conn.parse()? {
                    match packet {
                        Packet::Publish(p) => {
                            ack_publish(&mut out, &p)?;
                            let v: serde_json::Value =
                                serde_json::from_slice(&p.payload).unwrap_or_default();
                            if v.get("clientToken").and_then(|t| t.as_str()) != Some(&token) {
                                continue;
                            }
                            let now = Instant::now();
                            if now <= end_at {
                                if p.topic == accepted_topic {
                                    stats.accepted += 1;
                                    stats.latencies_us.push((now - sent).as_micros() as u64);
                                } else if p.topic == rejected_topic {
                                    stats.rejected += 1;
                                }
                            }
                            if !out.is_empty() {
                                conn.writer.write_all(&out).await?;
                                out.clear();
                            }
                            continue 'updates;
                        }
                        Packet::PubRec(r) => {
                            PubRel::new(r.pkid).write(&mut out)?;
                        }
                        Packet::PubRel(r) => {
                            PubComp::new(r.pkid).write(&mut out)?;
                        }
                        _ => {}
                    }
                }
                if !out.is_empty() {
                    conn.writer.write_all(&out).await?;
                    out.clear();
                }
                tokio::select! {
                    r = conn.fill() => r?,
                    _ = tokio::time::sleep_until(deadline.into()) => {
                        if Instant::now() <= end_at {
                            stats.timeouts += 1;
                        }
                        continue 'updates;
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => conn.disconnect().await,
        Err(e) => stats.error = Some(format!("{thing}: {e:#}")),
    }
    stats
}

// ---------------------------------------------------------------------------
// bench connections
// ---------------------------------------------------------------------------

struct ConnArgs {
    target: String,
    count: usize,
    pid: Option<u32>,
    processes: usize,
    connect_rate: u64,
    keep_alive: u16,
    settle: Duration,
    hold: Duration,
}

/// VmRSS of a process, KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("bad VmRSS line: {line}"))?
        .parse()?;
    Ok(kib)
}

/// A child process holding a share of the connections.
struct Worker {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Worker {
    fn line(&mut self) -> anyhow::Result<String> {
        self.lines
            .next()
            .ok_or_else(|| anyhow!("a connection worker exited early"))?
            .map_err(Into::into)
    }

    /// Field `field` (from 0) of a worker's `word n ...` line, as a number.
    fn number(line: &str, field: usize) -> anyhow::Result<usize> {
        line.split_whitespace()
            .nth(field)
            .ok_or_else(|| anyhow!("unexpected worker line: {line}"))?
            .parse()
            .map_err(Into::into)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Spawns the workers, waits for their connections, reads the broker's RSS, and
/// returns the rest of the table row.
fn connections(args: ConnArgs) -> anyhow::Result<String> {
    let exe = std::env::current_exe()?;
    let before = args.pid.map(rss_kib).transpose()?;
    let started = Instant::now();
    let mut workers = Vec::new();
    let share = args.count.div_ceil(args.processes);
    let rate = (args.connect_rate / args.processes as u64).max(1);
    let mut remaining = args.count;
    for w in 0..args.processes {
        let count = share.min(remaining);
        remaining -= count;
        if count == 0 {
            break;
        }
        let mut child = std::process::Command::new(&exe)
            .args(["bench", "connections", "--target", &args.target])
            .args(["--count", &count.to_string()])
            .args(["--connect-rate", &rate.to_string()])
            .args(["--keep-alive", &format!("{}s", args.keep_alive)])
            .args(["--worker", &w.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a connection worker")?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("worker without stdout"))?;
        workers.push(Worker {
            child,
            stdin,
            lines: std::io::BufReader::new(stdout).lines(),
        });
    }
    let mut ok = 0;
    let mut failed = 0;
    for w in &mut workers {
        let line = w.line()?;
        ok += Worker::number(&line, 1)?;
        failed += Worker::number(&line, 2)?;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    std::thread::sleep(args.settle);
    let after = args.pid.map(rss_kib).transpose()?;
    let mut alive = 0;
    for w in &mut workers {
        if let Some(stdin) = w.stdin.as_mut() {
            writeln!(stdin, "report")?;
            stdin.flush()?;
        }
        alive += Worker::number(&w.line()?, 1)?;
    }
    std::thread::sleep(args.hold);
    drop(workers);
    let mib = |k: Option<u64>| k.map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
    let per = match (before, after) {
        (Some(b), Some(a)) if alive > 0 => {
            format!("{:.2}", (a as f64 - b as f64) / alive as f64)
        }
        _ => "-".to_string(),
    };
    Ok(format!(
        "| {alive} | {} | {} | {} | {per} | {failed} | {} | {connect_secs:.1} |",
        args.processes,
        mib(before),
        mib(after),
        ok - alive.min(ok),
    ))
}

/// Child process: opens `count` connections, reports, holds them until its
/// standard input ends.
async fn connections_worker(
    target: String,
    count: usize,
    worker: usize,
    connect_rate: u64,
    keep_alive: u16,
) -> anyhow::Result<()> {
    let run = run_id();
    let alive = Arc::new(AtomicUsize::new(0));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<bool>();
    let t0 = Instant::now();
    let ping_every = Duration::from_secs(u64::from(keep_alive.max(2) / 2));
    for i in 0..count {
        let at = t0 + Duration::from_secs_f64(i as f64 / connect_rate.max(1) as f64);
        tokio::time::sleep_until(at.into()).await;
        let target = target.clone();
        let client_id = format!("bench-c{run}-{worker}-{i}");
        let alive = alive.clone();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let mut attempt = 0;
            let conn = loop {
                match open_conn(&target, &client_id, keep_alive).await {
                    Ok(c) => break Some(c),
                    Err(e) => {
                        attempt += 1;
                        if attempt >= 10 {
                            eprintln!("{client_id}: {e:#}");
                            break None;
                        }
                        let backoff = 500 + (i % 1000) as u64;
                        tokio::time::sleep(Duration::from_millis(backoff)).await;
                    }
                }
            };
            let Some(MqttClient {
                reader: mut rd,
                writer: mut wr,
                ..
            }) = conn
            else {
                let _ = done_tx.send(false);
                return;
            };
            alive.fetch_add(1, Ordering::Relaxed);
            let _ = done_tx.send(true);
            drop(done_tx);
            let mut small = [0u8; 64];
            loop {
                tokio::select! {
                    r = rd.read(&mut small) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    },
                    _ = tokio::time::sleep(ping_every) => {
                        if wr.write_all(&[0xC0, 0x00]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            alive.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(done_tx);
    let (mut ok, mut failed) = (0, 0);
    while let Some(success) = done_rx.recv().await {
        if success {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    println!("ready {ok} {failed}");
    std::io::stdout().flush()?;
    // Standard input on a plain thread: `report` asks for the live count, the end
    // of input ends the process (and so every connection).
    let (line_tx, mut line_rx) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = line_rx.recv().await {
        if line.trim() == "report" {
            println!("alive {}", alive.load(Ordering::Relaxed));
            std::io::stdout().flush()?;
        }
    }
    Ok(())
}
