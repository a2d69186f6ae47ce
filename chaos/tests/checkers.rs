//! The checkers fail on known-bad histories and pass on good ones.

use std::collections::{BTreeMap, BTreeSet};

use chaos::check::{applied_entries_agree, registry, replicas_identical, shadow_versions};
use chaos::history::{Event, Op, Outcome};

fn ev(op: Op, invoked_ms: u64, completed_ms: u64, outcome: Outcome) -> Event {
    Event {
        client: 0,
        key: "k".into(),
        op,
        invoked_ms,
        completed_ms,
        outcome,
    }
}

#[test]
fn good_history_passes() {
    let h = vec![
        ev(Op::Update, 0, 10, Outcome::Ok(1)),
        ev(Op::Update, 5, 30, Outcome::Ok(3)), // concurrent with the next one
        ev(Op::Update, 6, 20, Outcome::Ok(2)),
        ev(Op::Update, 7, 40, Outcome::Unknown),
        ev(Op::Read, 31, 35, Outcome::Ok(3)),
        ev(Op::Update, 50, 60, Outcome::Failed),
    ];
    assert_eq!(shadow_versions(&h), Ok(()));
}

#[test]
fn duplicate_version_is_caught() {
    let h = vec![
        ev(Op::Update, 0, 10, Outcome::Ok(1)),
        ev(Op::Update, 5, 15, Outcome::Ok(1)),
    ];
    let v = shadow_versions(&h).unwrap_err();
    assert!(v.rule.contains("same version"), "{v}");
    assert_eq!(v.events.len(), 2);
}

#[test]
fn lost_update_is_caught() {
    // Acknowledged version 5, then a later update gets 3: the first was lost or reordered.
    let h = vec![
        ev(Op::Update, 0, 10, Outcome::Ok(5)),
        ev(Op::Update, 20, 30, Outcome::Ok(3)),
    ];
    assert!(shadow_versions(&h)
        .unwrap_err()
        .rule
        .contains("higher version"));
}

#[test]
fn stale_read_is_caught() {
    let h = vec![
        ev(Op::Update, 0, 10, Outcome::Ok(4)),
        ev(Op::Read, 20, 25, Outcome::Ok(3)),
    ];
    assert!(shadow_versions(&h)
        .unwrap_err()
        .rule
        .contains("missed an update"));
    let h = vec![
        ev(Op::Read, 0, 10, Outcome::Ok(4)),
        ev(Op::Read, 20, 25, Outcome::Ok(2)),
    ];
    assert!(shadow_versions(&h)
        .unwrap_err()
        .rule
        .contains("back in time"));
}

#[test]
fn diverged_replicas_are_caught() {
    assert!(replicas_identical(&[(1, Some(9), "a".into()), (2, Some(9), "a".into())]).is_ok());
    assert!(replicas_identical(&[(1, Some(9), "a".into()), (2, Some(9), "b".into())]).is_err());
    assert!(replicas_identical(&[(1, Some(9), "a".into()), (2, Some(8), "a".into())]).is_err());
}

fn reg(key: &str, op: Op, invoked_ms: u64, outcome: Outcome) -> Event {
    Event {
        client: 0,
        key: key.into(),
        op,
        invoked_ms,
        completed_ms: invoked_ms + 5,
        outcome,
    }
}

#[test]
fn lost_registry_writes_are_caught() {
    let h = vec![
        reg("a", Op::CreateThing, 0, Outcome::Ok(0)),
        reg("a", Op::DeleteThing, 10, Outcome::Ok(0)),
        reg("b", Op::CreateThing, 0, Outcome::Ok(0)),
        reg("c", Op::CreateThing, 0, Outcome::Ok(0)),
        reg("c", Op::DeleteThing, 10, Outcome::Unknown),
        reg("d", Op::CreateThing, 0, Outcome::Failed),
    ];
    // Good: a deleted, b exists, c either way, d never created.
    assert_eq!(registry(&h, |t| t == "b"), Ok(()));
    assert_eq!(registry(&h, |t| t == "b" || t == "c"), Ok(()));
    // b's acknowledged create lost.
    let v = registry(&h, |_| false).unwrap_err();
    assert!(v.rule.contains("create was lost"), "{v}");
    // a's acknowledged delete lost.
    let v = registry(&h, |t| t == "a" || t == "b").unwrap_err();
    assert!(v.rule.contains("delete was lost"), "{v}");
}

/// Two leaders in one term are allowed under `leader_id_adv` (T2-N3 > T2-N2);
/// two different entries applied at one index are not, and are caught.
#[test]
fn different_entries_at_one_index_are_caught() {
    let mut applied: BTreeMap<u64, BTreeSet<(u64, u64)>> = BTreeMap::new();
    applied.entry(5).or_default().insert((2, 2));
    applied.entry(6).or_default().insert((2, 3));
    applied.entry(7).or_default().insert((3, 1));
    assert_eq!(applied_entries_agree(&applied), Ok(()));
    applied.entry(6).or_default().insert((2, 2));
    let e = applied_entries_agree(&applied).unwrap_err();
    assert!(e.contains("log index 6"), "{e}");
}

/// An update applied twice (a retried write that was not deduplicated, as chaos
/// seed 8000014 found) leaves a version nobody acknowledged: caught.
#[test]
fn an_update_applied_twice_is_caught() {
    use chaos::check::linearizable;
    // Each client acknowledged one update; the versions say three happened.
    let doubled = vec![
        ev(Op::Update, 0, 10, Outcome::Ok(1)),
        ev(Op::Update, 20, 30, Outcome::Ok(3)),
        ev(Op::Read, 40, 45, Outcome::Ok(3)),
    ];
    let v = linearizable(&doubled).unwrap_err();
    assert!(v.rule.contains("no linearization"), "{v}");
    // The same with the first update's reply lost (outcome unknown): still one
    // version too many.
    let doubled_unknown = vec![
        ev(Op::Update, 0, 10, Outcome::Unknown),
        ev(Op::Update, 20, 30, Outcome::Ok(3)),
    ];
    assert!(linearizable(&doubled_unknown).is_err());
    // Applied once, acknowledged once: fine.
    let once = vec![
        ev(Op::Update, 0, 10, Outcome::Unknown),
        ev(Op::Update, 20, 30, Outcome::Ok(2)),
    ];
    assert_eq!(linearizable(&once), Ok(()));
}

#[test]
fn conditional_update_at_the_wrong_version_is_caught() {
    let good = vec![
        ev(Op::Update, 0, 10, Outcome::Ok(1)),
        ev(Op::UpdateIfVersion(1), 20, 30, Outcome::Ok(2)),
        ev(Op::UpdateIfVersion(1), 40, 50, Outcome::Failed),
    ];
    assert_eq!(shadow_versions(&good), Ok(()));
    let bad = vec![
        ev(Op::Update, 0, 10, Outcome::Ok(1)),
        ev(Op::UpdateIfVersion(1), 20, 30, Outcome::Ok(3)),
    ];
    let v = shadow_versions(&bad).unwrap_err();
    assert!(v.rule.contains("carried a version"), "{v}");
}

#[test]
fn linearizability_search_accepts_concurrent_orders_and_rejects_impossible_ones() {
    use chaos::check::linearizable;
    // Two concurrent updates may land in either order; a read during them may see
    // either version; an unknown update may or may not have happened.
    let good = vec![
        ev(Op::Update, 0, 10, Outcome::Ok(1)),
        ev(Op::Update, 20, 40, Outcome::Ok(3)),
        ev(Op::Update, 21, 35, Outcome::Ok(2)),
        ev(Op::Read, 22, 30, Outcome::Ok(1)),
        ev(Op::Update, 50, 60, Outcome::Unknown),
        ev(Op::Read, 70, 80, Outcome::Ok(3)),
        ev(Op::UpdateIfVersion(3), 90, 95, Outcome::Ok(4)),
    ];
    assert_eq!(linearizable(&good), Ok(()));
    // The unknown update happened after all: also fine.
    let mut good2 = good.clone();
    good2[5] = ev(Op::Read, 70, 80, Outcome::Ok(4));
    good2[6] = ev(Op::UpdateIfVersion(4), 90, 95, Outcome::Ok(5));
    assert_eq!(linearizable(&good2), Ok(()));
    // A read that saw version 2 and then, strictly later, version 1.
    let bad = vec![
        ev(Op::Update, 0, 10, Outcome::Ok(1)),
        ev(Op::Update, 20, 30, Outcome::Ok(2)),
        ev(Op::Read, 40, 50, Outcome::Ok(2)),
        ev(Op::Read, 60, 70, Outcome::Ok(1)),
    ];
    let v = linearizable(&bad).unwrap_err();
    assert!(v.rule.contains("linearization"), "{v}");
    // A conditional update that succeeded at a version the shadow never had then.
    let bad2 = vec![
        ev(Op::Update, 0, 10, Outcome::Ok(1)),
        ev(Op::Update, 20, 30, Outcome::Ok(2)),
        ev(Op::UpdateIfVersion(1), 40, 50, Outcome::Ok(2)),
    ];
    assert!(linearizable(&bad2).is_err());
}
