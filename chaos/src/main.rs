//! `cargo run -p chaos --release -- sim --seeds 10000`: long simulation campaigns
//! with a summary table. A violation prints its seed, fault schedule and events and
//! makes the command fail.

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Run seeds `first..first+seeds` for each cluster size and print a summary.
    Sim {
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
    },
}

fn main() -> anyhow::Result<()> {
    let Command::Sim {
        seeds,
        first,
        nodes,
        workload_secs,
    } = Cli::parse().command;
    println!("| nodes | seeds | faults | operations | acknowledged | violations | slowest seed |");
    println!("|------:|------:|-------:|-----------:|-------------:|-----------:|:-------------|");
    let mut failed = false;
    for n in nodes.split(',') {
        let n: usize = n.trim().parse()?;
        let (mut faults, mut ops, mut acked, mut violations) = (0, 0, 0, 0);
        let mut slowest = (Duration::ZERO, 0);
        for seed in first..first + seeds {
            let config = SimConfig {
                nodes: n,
                seed,
                clients: 3,
                workload: Duration::from_secs(workload_secs),
                reads: ReadMode::Linearizable,
            };
            let started = Instant::now();
            match run(&config) {
                Ok(report) => {
                    faults += report.faults.len();
                    ops += report.operations;
                    acked += report.acknowledged;
                }
                Err(e) => {
                    violations += 1;
                    failed = true;
                    eprintln!(
                        "{e}\nreplay: FLEETCORE_SEED={seed} cargo test -p chaos --test seeds\n"
                    );
                }
            }
            slowest = slowest.max((started.elapsed(), seed));
        }
        println!(
            "| {n} | {seeds} | {faults} | {ops} | {acked} | {violations} | {} ({:.1} s) |",
            slowest.1,
            slowest.0.as_secs_f64()
        );
    }
    anyhow::ensure!(!failed, "violations found");
    Ok(())
}
