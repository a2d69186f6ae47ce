//! `cargo run -p chaos --release -- sim --seeds 10000`: long simulation campaigns
//! with a summary table. A violation prints its seed, fault schedule and events and
//! makes the command fail.
//!
//! `cargo run -p chaos --release -- drill`: the same checks against real
//! `fleetcore` processes that are killed, paused and cut off, with failover times.

use std::time::{Duration, Instant};

use chaos::sim::{run, ReadMode, SimConfig};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chaos",
    about = "Deterministic simulations of a Fleetcore cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `sim` runs.
#[derive(Debug, clap::Args)]
struct SimArgs {
    /// How many seeds per cluster size.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Cluster sizes, comma-separated.
    #[arg(long, default_value = "3,5")]
    nodes: String,
    /// Simulated workload per seed, in seconds.
    #[arg(long, default_value_t = 20)]
    workload_secs: u64,
    /// Let the nemesis replace a node (remove, wipe, add back) once per seed.
    #[arg(long)]
    replace_nodes: bool,
    /// Simulated devices working on the same shadows over MQTT.
    #[arg(long, default_value_t = 1)]
    mqtt_clients: usize,
    /// Simulated backends working on the same shadows through the HTTP API.
    #[arg(long, default_value_t = 1)]
    http_clients: usize,
    /// Print each seed's simulated duration.
    #[arg(long)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run seeds `first..first+seeds` for each cluster size and print a summary.
    Sim(SimArgs),
    /// Kill, pause and cut off real node processes; report failover p50/p99.
    Drill {
        /// How many times the leader is killed.
        #[arg(long, default_value_t = 20)]
        kills: usize,
        /// The fleetcore binary [default: target/release/fleetcore, else target/debug].
        #[arg(long, env = "FLEETCORE_BIN")]
        binary: Option<std::path::PathBuf>,
        /// Where data and logs go [default: a temp dir].
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

fn drill(
    kills: usize,
    binary: Option<std::path::PathBuf>,
    dir: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let binary = binary
        .or_else(|| {
            ["release", "debug"]
                .iter()
                .map(|p| std::path::Path::new(&target).join(p).join("fleetcore"))
                .find(|p| p.exists())
        })
        .ok_or_else(|| {
            anyhow::anyhow!("no fleetcore binary: cargo build --release -p fleetcore")
        })?;
    let temp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| temp.path().to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(chaos::drill::run(chaos::drill::DrillConfig {
        binary: binary.clone(),
        kills,
        dir: dir.clone(),
    }));
    let report = report.map_err(|e| anyhow::anyhow!("{e}\nlogs: {}", dir.display()))?;
    println!(
        "| kills | failover p50 | failover p99 | max | operations | acknowledged | violations |"
    );
    println!(
        "|------:|-------------:|-------------:|----:|-----------:|-------------:|-----------:|"
    );
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {} | {} | {} | {} | {} | {} | 0 |",
        report.failovers.len(),
        ms(report.failover_quantile(0.5)),
        ms(report.failover_quantile(0.99)),
        ms(report.failover_quantile(1.0)),
        report.operations,
        report.acknowledged
    );
    println!("other faults: {}", report.other_faults.join("; "));
    println!("binary: {}", binary.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // RUST_LOG=openraft=info,fleetcore_raft=debug shows what the nodes did.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let SimArgs {
        seeds,
        first,
        nodes,
        workload_secs,
        replace_nodes,
        mqtt_clients,
        http_clients,
        verbose,
    } = match Cli::parse().command {
        Command::Drill { kills, binary, dir } => return drill(kills, binary, dir),
        Command::Sim(args) => args,
    };
    println!("| nodes | seeds | faults | with a replacement | operations | acknowledged | violations | slowest seed |");
    println!("|------:|------:|-------:|-------------------:|-----------:|-------------:|-----------:|:-------------|");
    let mut failed = false;
    for n in nodes.split(',') {
        let n: usize = n.trim().parse()?;
        let (mut faults, mut ops, mut acked, mut violations) = (0, 0, 0, 0);
        let mut replacing_seeds = 0;
        let mut slowest = (Duration::ZERO, 0);
        for seed in first..first + seeds {
            let config = SimConfig {
                nodes: n,
                seed,
                clients: 3,
                workload: Duration::from_secs(workload_secs),
                reads: ReadMode::Linearizable,
                replace_nodes,
                mqtt_clients,
                http_clients,
            };
            let started = Instant::now();
            match run(&config) {
                Ok(report) => {
                    let replaced = report
                        .faults
                        .iter()
                        .filter(|f| f.contains("added node"))
                        .count();
                    replacing_seeds += usize::from(replaced > 0);
                    if verbose {
                        eprintln!(
                            "{n} nodes, seed {seed}: ok, {} operations, {} acknowledged, {} faults \
                             ({replaced} nodes replaced), {} simulated ms, {:.1} s",
                            report.operations,
                            report.acknowledged,
                            report.faults.len(),
                            report.simulated_ms,
                            started.elapsed().as_secs_f64()
                        );
                    }
                    faults += report.faults.len();
                    ops += report.operations;
                    acked += report.acknowledged;
                }
                Err(e) => {
                    violations += 1;
                    failed = true;
                    let replace = if replace_nodes {
                        " --replace-nodes"
                    } else {
                        ""
                    };
                    eprintln!(
                        "{e}\nreplay: cargo run -p chaos --release -- sim --first {seed} --seeds 1 \
                         --nodes {n} --workload-secs {workload_secs} --mqtt-clients {mqtt_clients} --http-clients {http_clients}{replace}\n"
                    );
                }
            }
            slowest = slowest.max((started.elapsed(), seed));
        }
        println!(
            "| {n} | {seeds} | {faults} | {replacing_seeds} | {ops} | {acked} | {violations} | {} ({:.1} s) |",
            slowest.1,
            slowest.0.as_secs_f64()
        );
    }
    anyhow::ensure!(!failed, "violations found");
    Ok(())
}
