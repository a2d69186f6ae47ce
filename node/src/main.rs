//! The `fleetcore` binary: parses arguments, sets up logging, and calls into the library.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = fleetcore::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(fleetcore::cli::main(cli))
}
