//! What: a voter whose disk was wiped is not heard until an operator replaces it.
//!
//! Three nodes L (leader), X and V. X is cut off from L, so the next writes commit
//! on L and V only. V then loses its disk and restarts empty, still a voter, and L
//! is cut off from everyone. Raft assumes a voter keeps what it acknowledged: if V
//! were heard, X (which lacks the last writes) would win V's vote, lead, and
//! commit over writes that were acknowledged. V's answers carry its new data-dir
//! incarnation, which differs from the one the cluster recorded, so X refuses them:
//! no leader, nothing committed, nothing lost. After the operator removes V and
//! adds it back (which records its new incarnation), the cluster converges with
//! every acknowledged write.
//!
//! Replay one seed with `FLEETCORE_SEED=n cargo test --workspace --test wiped_voter`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos::sim::{add_nodes_on, forward, host_names, members, update, Disks};
use fleetcore_model::ShadowKey;
use fleetcore_raft::wire::{ForwardRequest, ForwardResponse};
use fleetcore_storage::SharedState;
use tokio::time::Instant;

type States = Arc<Mutex<BTreeMap<u64, SharedState>>>;

fn applied_version(states: &States, node: u64) -> Option<u64> {
    let states = states.lock().ok()?;
    let applied = states.get(&node)?.read();
    Some(
        applied
            .state
            .shadows()
            .get(&ShadowKey::classic("k"))
            .map_or(0, |r| r.version),
    )
}

/// Sends `request` to each node in turn until one acknowledges, for at most `within`.
async fn write_anywhere(
    names: &[String],
    request: &ForwardRequest,
    within: Duration,
) -> Option<String> {
    let give_up = Instant::now() + within;
    while Instant::now() < give_up {
        for name in names {
            if let Ok(ForwardResponse::Written(json)) =
                forward(name, request, Duration::from_millis(800)).await
            {
                if let Ok(Ok(_)) = serde_json::from_str::<fleetcore_model::Outcome>(&json) {
                    return Some(name.clone());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn until(what: &str, within: Duration, check: impl Fn() -> bool) -> Result<(), String> {
    let give_up = Instant::now() + within;
    while !check() {
        if Instant::now() >= give_up {
            return Err(format!("not within {within:?}: {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(180))
        .tick_duration(Duration::from_millis(1))
        .build();
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let disks = Disks::new(&dirs);
    let states: States = Arc::default();
    add_nodes_on(
        &mut sim,
        seed,
        3,
        &disks,
        states.clone(),
        Default::default(),
    );
    let names = host_names(3);
    // The client asks the driver (which owns `sim`) to wipe a node.
    let wipe: Arc<Mutex<Option<u64>>> = Arc::default();
    let wiped: Arc<Mutex<bool>> = Arc::default();
    let verdict: Arc<Mutex<Option<Result<(), String>>>> = Arc::default();
    {
        let (states, wipe, wiped, verdict, names) = (
            states.clone(),
            wipe.clone(),
            wiped.clone(),
            verdict.clone(),
            names.clone(),
        );
        sim.client("operator", async move {
            let result = async {
                let n = std::cell::Cell::new(0u64);
                let write = |names: Vec<String>| {
                    n.set(n.get() + 1);
                    let request = update("k", 0, n.get());
                    async move { write_anywhere(&names, &request, Duration::from_secs(30)).await }
                };
                let leader = write(names.clone()).await.ok_or("no write on a healthy cluster")?;
                let l = names.iter().position(|x| *x == leader).unwrap_or(0);
                let (x, v) = ((l + 1) % 3, (l + 2) % 3);
                let (lid, xid, vid) = (l as u64 + 1, x as u64 + 1, v as u64 + 1);
                // Every member has recorded its incarnation.
                until("incarnations recorded", Duration::from_secs(30), || {
                    let states = states.lock().map(|s| s.clone()).unwrap_or_default();
                    states.get(&lid).is_some_and(|s| {
                        let applied = s.read();
                        (1..=3).all(|id| applied.state.incarnation(id).is_some())
                    })
                })
                .await?;
                for _ in 0..2 {
                    write(vec![leader.clone()]).await.ok_or("write before the cut")?;
                }
                // X falls behind: the next writes commit on L and V only.
                turmoil::partition(names[l].as_str(), names[x].as_str());
                for _ in 0..3 {
                    write(vec![leader.clone()]).await.ok_or("write on L and V")?;
                }
                let acknowledged = n.get();
                until("V applied every write", Duration::from_secs(10), || {
                    applied_version(&states, vid) == Some(acknowledged)
                })
                .await?;
                // V loses its disk and comes back empty, still a voter.
                *wipe.lock().map_err(|_| "poisoned")? = Some(vid);
                until("V wiped", Duration::from_secs(10), || {
                    wiped.lock().map(|w| *w).unwrap_or(false)
                })
                .await?;
                // L is cut off from everyone: X and V alone.
                turmoil::partition(names[l].as_str(), names[v].as_str());
                let pair = vec![names[x].clone(), names[v].clone()];
                let attempt = write(pair).await;
                if let Some(node) = attempt {
                    return Err(format!(
                        "a write committed through {node} while only X and the wiped V could answer: V was heard"
                    ));
                }
                // Heal; the operator replaces V: remove it, add it back.
                turmoil::repair(names[l].as_str(), names[x].as_str());
                turmoil::repair(names[l].as_str(), names[v].as_str());
                let others = [names[l].clone(), names[x].clone()];
                let give_up = Instant::now() + Duration::from_secs(60);
                let mut step = ForwardRequest::RemoveNode { id: vid };
                let mut added = false;
                while !added {
                    if Instant::now() >= give_up {
                        return Err("the operator could not replace V".into());
                    }
                    for node in &others {
                        let answer = forward(node, &step, Duration::from_secs(20)).await;
                        if let Ok(ForwardResponse::Done) = answer {
                            if matches!(step, ForwardRequest::AddNode { .. }) {
                                added = true;
                                break;
                            }
                            step = ForwardRequest::AddNode {
                                id: vid,
                                info: members(3)[&vid].clone(),
                            };
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                // Nothing acknowledged was lost, on any replica.
                until(
                    "every replica holds every acknowledged write",
                    Duration::from_secs(60),
                    || {
                        [lid, xid, vid]
                            .iter()
                            .all(|id| applied_version(&states, *id) == Some(acknowledged))
                    },
                )
                .await
                .map_err(|e| {
                    let seen: Vec<_> = (1..=3).map(|id| applied_version(&states, id)).collect();
                    format!("{e}; versions on nodes 1-3: {seen:?}, acknowledged {acknowledged}")
                })
            }
            .await;
            if let Ok(mut v) = verdict.lock() {
                *v = Some(result);
            }
            Ok(())
        });
    }
    let mut spare: Vec<tempfile::TempDir> = Vec::new();
    loop {
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Err(format!("seed {seed}: {e}")),
        }
        let request = wipe.lock().ok().and_then(|mut r| r.take());
        if let Some(id) = request {
            let host = names[(id - 1) as usize].clone();
            sim.crash(host.as_str());
            let fresh = tempfile::tempdir().map_err(|e| e.to_string())?;
            disks.wipe(id, fresh.path().to_path_buf());
            spare.push(fresh);
            sim.bounce(host.as_str());
            if let Ok(mut w) = wiped.lock() {
                *w = true;
            }
        }
    }
    let verdict = verdict.lock().map_err(|_| "poisoned")?.take();
    verdict
        .unwrap_or_else(|| Err("the operator did not finish".into()))
        .map_err(|e| format!("seed {seed}: {e}"))
}

#[test]
fn a_wiped_voter_is_not_heard_until_replaced() {
    for seed in chaos::seeds(3) {
        if let Err(e) = run_seed(seed) {
            panic!("{e}\nreplay: FLEETCORE_SEED={seed} cargo test --workspace --test wiped_voter");
        }
    }
}
