//! `fleetcore-bench`: the benchmarks' load generators, kept out of the product's
//! binary. Talks to nodes only over their public protocols (HTTP, MQTT), so it
//! also measures any other MQTT broker; depends on no Fleetcore crate.

mod bench;

use clap::Parser;

/// Load generators for Fleetcore and other MQTT brokers.
#[derive(Debug, Parser)]
#[command(name = "fleetcore-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: bench::BenchCommand,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bench::run(Cli::parse().command).await
}
