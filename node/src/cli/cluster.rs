//! `fleetcore cluster status|join|remove`.

use anyhow::Context;
use clap::Subcommand;
use fleetcore_raft::ClusterStatus;

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Leader, term, members, and each node's applied index and lag.
    Status {
        /// Any node's HTTP URL.
        #[arg(
            long,
            env = "FLEETCORE_ENDPOINT",
            default_value = "http://127.0.0.1:8080"
        )]
        endpoint: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Form a new cluster on a node started with --bootstrap false.
    Init {
        /// That node's HTTP URL.
        #[arg(
            long,
            env = "FLEETCORE_ENDPOINT",
            default_value = "http://127.0.0.1:8080"
        )]
        endpoint: String,
    },
    /// Add a node (started with --bootstrap false) to the cluster: learner, then voter.
    Join {
        /// Any member's HTTP URL.
        #[arg(
            long,
            env = "FLEETCORE_ENDPOINT",
            default_value = "http://127.0.0.1:8080"
        )]
        endpoint: String,
        /// The new node's id.
        #[arg(long)]
        id: u64,
        /// The new node's Raft address.
        #[arg(long)]
        raft_addr: String,
        /// The new node's HTTP address.
        #[arg(long, default_value = "")]
        http_addr: String,
    },
    /// Remove a node from the cluster.
    Remove {
        /// Any member's HTTP URL.
        #[arg(
            long,
            env = "FLEETCORE_ENDPOINT",
            default_value = "http://127.0.0.1:8080"
        )]
        endpoint: String,
        /// The node to remove.
        #[arg(long)]
        id: u64,
    },
}

async fn status_of(client: &reqwest::Client, url: &str) -> anyhow::Result<ClusterStatus> {
    let response = client
        .get(format!("{url}/cluster/status"))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    Ok(response.error_for_status()?.json().await?)
}

fn http_url(addr: &str) -> String {
    if addr.starts_with("http") {
        addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{addr}")
    }
}

pub(crate) async fn run(command: ClusterCommand) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    match command {
        ClusterCommand::Status { endpoint, json } => {
            let endpoint = http_url(&endpoint);
            let status = status_of(&client, &endpoint).await?;
            // Ask every member for its own applied index, so lag is shown from each node's view.
            let mut rows = Vec::new();
            for m in &status.members {
                let own = if m.http_addr.is_empty() {
                    None
                } else {
                    status_of(&client, &http_url(&m.http_addr)).await.ok()
                };
                rows.push((m.clone(), own));
            }
            if json {
                let members: Vec<_> = rows
                    .iter()
                    .map(|(m, own)| {
                        serde_json::json!({
                            "id": m.id, "raft_addr": m.raft_addr, "http_addr": m.http_addr, "role": m.role,
                            "state": own.as_ref().map(|o| o.state.clone()),
                            "applied_index": own.as_ref().and_then(|o| o.applied_index),
                            "matched_index": m.matched_index, "lag": m.lag,
                            "incarnation": m.incarnation,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "cluster_id": status.cluster_id, "leader_id": status.leader_id, "term": status.term,
                        "committed_index": status.committed_index, "members": members,
                    }))?
                );
                return Ok(());
            }
            println!("cluster   {}", status.cluster_id.as_deref().unwrap_or("-"));
            println!(
                "leader    {}",
                status
                    .leader_id
                    .map_or("none".to_string(), |l| l.to_string())
            );
            println!("term      {}", status.term);
            println!(
                "committed {}",
                status.committed_index.map_or("-".into(), |c| c.to_string())
            );
            println!();
            println!(
                "{:<4} {:<8} {:<10} {:<22} {:<22} {:>8} {:>6}  {:<16}",
                "ID", "ROLE", "STATE", "RAFT", "HTTP", "APPLIED", "LAG", "INCARNATION"
            );
            let last = status.committed_index.unwrap_or(0);
            for (m, own) in rows {
                let applied = own.as_ref().and_then(|o| o.applied_index);
                let lag = m.lag.or(applied.map(|a| last.saturating_sub(a)));
                println!(
                    "{:<4} {:<8} {:<10} {:<22} {:<22} {:>8} {:>6}  {:<16}",
                    m.id,
                    m.role,
                    own.as_ref()
                        .map_or("unreachable".to_string(), |o| o.state.clone()),
                    m.raft_addr,
                    if m.http_addr.is_empty() {
                        "-"
                    } else {
                        &m.http_addr
                    },
                    applied.map_or("-".into(), |a| a.to_string()),
                    lag.map_or("-".into(), |l| l.to_string()),
                    m.incarnation.as_deref().unwrap_or("not recorded"),
                );
            }
            Ok(())
        }
        ClusterCommand::Join {
            endpoint,
            id,
            raft_addr,
            http_addr,
        } => {
            let r = client
                .post(format!("{}/cluster/members", http_url(&endpoint)))
                .json(&serde_json::json!({ "id": id, "raft_addr": raft_addr, "http_addr": http_addr }))
                .timeout(std::time::Duration::from_secs(60))
                .send()
                .await?;
            let status = r.status();
            let text = r.text().await?;
            anyhow::ensure!(status.is_success(), "join failed ({status}): {text}");
            println!("node {id} joined");
            Ok(())
        }
        ClusterCommand::Init { endpoint } => {
            let r = client
                .post(format!("{}/cluster/init", http_url(&endpoint)))
                .send()
                .await?;
            let status = r.status();
            let text = r.text().await?;
            anyhow::ensure!(status.is_success(), "init failed ({status}): {text}");
            println!("{text}");
            Ok(())
        }
        ClusterCommand::Remove { endpoint, id } => {
            let r = client
                .delete(format!("{}/cluster/members/{id}", http_url(&endpoint)))
                .send()
                .await?;
            let status = r.status();
            let text = r.text().await?;
            anyhow::ensure!(status.is_success(), "remove failed ({status}): {text}");
            println!("node {id} removed");
            Ok(())
        }
    }
}
