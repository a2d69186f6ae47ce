//! Checkers over a history. Shadow versions order the updates of a key, so
//! linearizability of updates and reads reduces to version checks:
//! 1. no two acknowledged updates of a key produced the same version;
//! 2. an update invoked after another was acknowledged produced a higher version;
//! 3. a read invoked after an update was acknowledged saw at least its version;
//! 4. a read invoked after another read completed saw at least that read's version;
//! 5. an acknowledged update that carried `version` E produced version E + 1.

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

/// Election safety: at most one node led in each term. `leaders` maps a term to
/// every node seen leading in it.
pub fn one_leader_per_term(
    leaders: &BTreeMap<u64, std::collections::BTreeSet<u64>>,
) -> Result<(), String> {
    match leaders.iter().find(|(_, nodes)| nodes.len() > 1) {
        Some((term, nodes)) => Err(format!("term {term} had more than one leader: {nodes:?}")),
        None => Ok(()),
    }
}
