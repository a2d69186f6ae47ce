//! `fleetcore bench shadow`: committed shadow updates per second and commit latency
//! against a running cluster, spreading clients over its nodes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
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
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Shadow {
        endpoints,
        clients,
        duration,
    } = command;
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
