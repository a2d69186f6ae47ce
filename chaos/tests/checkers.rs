//! The checkers fail on known-bad histories and pass on good ones.

use chaos::check::{replicas_identical, shadow_versions};
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
