//! Checkers over a history. Shadow versions order the updates of a key, so
//! linearizability of updates and reads reduces to version checks:
//! 1. no two acknowledged updates of a key produced the same version;
//! 2. an update invoked after another was acknowledged produced a higher version;
//! 3. a read invoked after an update was acknowledged saw at least its version;
//! 4. a read invoked after another read completed saw at least that read's version;
//! 5. an acknowledged update that carried `version` E produced version E + 1.
//!
//! An update applied twice (a retry that was not deduplicated) leaves a version
//! no operation accounts for; the linearizability search finds no order for it.

use std::collections::BTreeMap;

use crate::history::{Event, Op, Outcome};

/// A violation, with the events that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What is wrong.
    pub rule: &'static str,
    /// The smallest window of events that shows it.
    pub events: Vec<Event>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}:", self.rule)?;
        for e in &self.events {
            writeln!(f, "  {e:?}")?;
        }
        Ok(())
    }
}

fn ok(e: &Event) -> Option<u64> {
    match e.outcome {
        Outcome::Ok(v) => Some(v),
        _ => None,
    }
}

fn is_update(op: &Op) -> bool {
    matches!(op, Op::Update | Op::UpdateIfVersion(_))
}

/// Checks rules 1–5 for every key.
pub fn shadow_versions(history: &[Event]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in history
        .iter()
        .filter(|e| matches!(e.op, Op::Update | Op::UpdateIfVersion(_) | Op::Read))
    {
        by_key.entry(e.key.as_str()).or_default().push(e);
    }
    for events in by_key.values() {
        let updates: Vec<&&Event> = events
            .iter()
            .filter(|e| is_update(&e.op) && ok(e).is_some())
            .collect();
        for u in &updates {
            if let (Op::UpdateIfVersion(expected), Some(v)) = (&u.op, ok(u)) {
                if v != expected + 1 {
                    return Err(Violation {
                        rule: "an update that carried a version was applied at another version",
                        events: vec![(**u).clone()],
                    });
                }
            }
        }
        for (i, a) in updates.iter().enumerate() {
            for b in &updates[i + 1..] {
                if ok(a) == ok(b) {
                    return Err(Violation {
                        rule: "two acknowledged updates produced the same version",
                        events: vec![(**a).clone(), (**b).clone()],
                    });
                }
            }
        }
        for a in events.iter().filter(|e| ok(e).is_some()) {
            for b in events.iter().filter(|e| ok(e).is_some()) {
                if b.invoked_ms <= a.completed_ms {
                    continue;
                }
                let (va, vb) = (ok(a).unwrap_or(0), ok(b).unwrap_or(0));
                let kind = |op: &Op| if is_update(op) { Op::Update } else { Op::Read };
                let broken = match (kind(&a.op), kind(&b.op)) {
                    (Op::Update, Op::Update) if vb <= va => {
                        Some("an update acknowledged earlier has a higher version than a later one")
                    }
                    (Op::Update, Op::Read) if vb < va => {
                        Some("a read missed an update acknowledged before it started")
                    }
                    (Op::Read, Op::Read) if vb < va => Some("a read went back in time"),
                    (Op::Read, Op::Update) if vb <= va => {
                        Some("an update got a version not above one already read")
                    }
                    _ => None,
                };
                if let Some(rule) = broken {
                    return Err(Violation {
                        rule,
                        events: vec![(*a).clone(), (*b).clone()],
                    });
                }
            }
        }
    }
    Ok(())
}

/// Replicas must agree after healing: same applied index, same state digest.
pub fn replicas_identical(replicas: &[(u64, Option<u64>, String)]) -> Result<(), String> {
    match replicas.first() {
        Some((_, applied, digest))
            if replicas.iter().all(|(_, a, d)| a == applied && d == digest) =>
        {
            Ok(())
        }
        None => Err("no replicas".into()),
        _ => Err(format!(
            "replicas differ (node, applied index, digest): {replicas:?}"
        )),
    }
}

/// Registry writes are not lost: for every thing, the last create or delete a
/// client had acknowledged (with nothing after it whose outcome is unknown)
/// decides whether the thing exists in the final state. Each thing name belongs to
/// one client, whose operations are sequential.
pub fn registry(history: &[Event], exists: impl Fn(&str) -> bool) -> Result<(), Violation> {
    let mut by_thing: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in history
        .iter()
        .filter(|e| matches!(e.op, Op::CreateThing | Op::DeleteThing))
    {
        by_thing.entry(e.key.as_str()).or_default().push(e);
    }
    for (thing, mut events) in by_thing {
        events.sort_by_key(|e| e.invoked_ms);
        // Refused operations changed nothing.
        let Some(last) = events.iter().rev().find(|e| e.outcome != Outcome::Failed) else {
            continue;
        };
        if last.outcome == Outcome::Unknown {
            continue;
        }
        let want = last.op == Op::CreateThing;
        if exists(thing) != want {
            return Err(Violation {
                rule: if want {
                    "an acknowledged create was lost"
                } else {
                    "an acknowledged delete was lost"
                },
                events: events.into_iter().cloned().collect(),
            });
        }
    }
    Ok(())
}

/// State machine safety: no two nodes applied different entries at the same log
/// index. `applied` maps an index to every log id seen applied there, as (term,
/// node id) of the leader that proposed it.
///
/// This, not "one leader per term", is what Fleetcore's openraft configuration
/// promises: with `leader_id_adv` a leader id is (term, node id) and two nodes may
/// both lead in one term (n3 may win term 2 after n2 did, since T2-N3 > T2-N2), but
/// their entries carry different leader ids and at most one of them commits at
/// any index.
pub fn applied_entries_agree(
    applied: &BTreeMap<u64, std::collections::BTreeSet<(u64, u64)>>,
) -> Result<(), String> {
    match applied.iter().find(|(_, ids)| ids.len() > 1) {
        Some((index, ids)) => Err(format!(
            "different entries applied at log index {index} (term, leader): {ids:?}"
        )),
        None => Ok(()),
    }
}

/// Linearizability of each shadow's history, by search (Wing & Gong, with the
/// memoization of Lowe / Porcupine): is there an order of the operations, within
/// their real-time bounds, in which a sequential shadow version counter gives every
/// acknowledged result? Updates add one (a conditional one only at its version),
/// reads return the counter. Operations with an unknown outcome may take effect at
/// any point after their invocation, or never; refused ones never do.
pub fn linearizable(history: &[Event]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in history
        .iter()
        .filter(|e| matches!(e.op, Op::Update | Op::UpdateIfVersion(_) | Op::Read))
        .filter(|e| e.outcome != Outcome::Failed)
        // A read whose outcome is unknown says nothing.
        .filter(|e| !(e.op == Op::Read && e.outcome == Outcome::Unknown))
    {
        by_key.entry(e.key.as_str()).or_default().push(e);
    }
    for events in by_key.values() {
        match search(events) {
            Search::Linearizable => {}
            Search::Stuck(events) => {
                return Err(Violation {
                    rule: "no linearization of this shadow's history exists",
                    events,
                })
            }
            Search::GaveUp => {
                return Err(Violation {
                    rule: "inconclusive: the linearizability search gave up (too many operations with unknown outcomes on this shadow)",
                    events: events.iter().map(|e| (*e).clone()).collect(),
                })
            }
        }
    }
    Ok(())
}

/// States the search may visit per shadow before it gives up: a verdict in
/// bounded time (about a second) even when many outcomes are unknown.
pub const SEARCH_STATES_MAX: usize = 2_000_000;

enum Search {
    Linearizable,
    /// No order exists; the operations at the frontier where every order failed.
    Stuck(Vec<Event>),
    GaveUp,
}

fn search(events: &[&Event]) -> Search {
    let n = events.len();
    let words = n.div_ceil(64);
    // Unknown outcomes may complete never: no real-time bound from them.
    let completes = |e: &Event| match e.outcome {
        Outcome::Unknown => u64::MAX,
        _ => e.completed_ms,
    };
    let required: Vec<bool> = events
        .iter()
        .map(|e| e.outcome != Outcome::Unknown)
        .collect();
    let mut seen: std::collections::HashSet<(Vec<u64>, u64)> = std::collections::HashSet::new();
    let mut best: (usize, Vec<usize>) = (0, Vec::new());
    // Depth-first, iterative: (done set, version, ops done).
    let mut stack: Vec<(Vec<u64>, u64, usize)> = vec![(vec![0; words], 0, 0)];
    let is_done = |done: &[u64], i: usize| done[i / 64] & (1 << (i % 64)) != 0;
    while let Some((done, version, count)) = stack.pop() {
        if !seen.insert((done.clone(), version)) {
            continue;
        }
        if seen.len() > SEARCH_STATES_MAX {
            return Search::GaveUp;
        }
        if (0..n).all(|i| !required[i] || is_done(&done, i)) {
            return Search::Linearizable;
        }
        // The earliest completion among required operations not yet linearized:
        // nothing invoked after it may go before it.
        let horizon = (0..n)
            .filter(|&i| required[i] && !is_done(&done, i))
            .map(|i| completes(events[i]))
            .min()
            .unwrap_or(u64::MAX);
        let candidates: Vec<usize> = (0..n)
            .filter(|&i| !is_done(&done, i) && events[i].invoked_ms <= horizon)
            .collect();
        if count >= best.0 {
            best = (count, candidates.clone());
        }
        for &i in candidates.iter().rev() {
            let e = events[i];
            let next = match (&e.op, &e.outcome) {
                (Op::Read, Outcome::Ok(v)) => (*v == version).then_some(version),
                (Op::Update, Outcome::Ok(v)) => (*v == version + 1).then_some(version + 1),
                (Op::Update, _) => Some(version + 1),
                (Op::UpdateIfVersion(expected), Outcome::Ok(v)) => {
                    (*expected == version && *v == version + 1).then_some(version + 1)
                }
                // Unknown: applied only if the version matched then.
                (Op::UpdateIfVersion(expected), _) => (*expected == version).then_some(version + 1),
                _ => None,
            };
            if let Some(v) = next {
                let mut d = done.clone();
                d[i / 64] |= 1 << (i % 64);
                stack.push((d, v, count + 1));
            }
        }
    }
    Search::Stuck(best.1.into_iter().map(|i| events[i].clone()).collect())
}
