//! Exactly-once writes: a request applied again (a forward retried after its reply
//! was lost) answers the first result and changes nothing; the table stays
//! bounded and refuses, rather than re-applies, a request it has forgotten.

use std::collections::BTreeMap;

use fleetcore_model::request::{REQUEST_ORIGINS_MAX, REQUEST_TABLE_ENTRIES};
use fleetcore_model::ShadowCommand;
use fleetcore_model::{Command, Rejection, RequestId, ShadowKey, State, StateRecord};
use proptest::prelude::*;

fn update(thing: &str, n: u64, expected: Option<u64>) -> Command {
    let version = expected.map_or(String::new(), |v| format!(r#","version":{v}"#));
    Command::Shadow(ShadowCommand::Update {
        key: ShadowKey::classic(thing),
        request: format!(r#"{{"state":{{"reported":{{"n":{n}}}}}{version}}}"#),
        at_ms: n,
    })
}

fn request(origin: u64, seq: u64, command: Command) -> Command {
    Command::Request {
        id: RequestId { origin, seq },
        command: Box::new(command),
    }
}

fn domain_records(s: &State) -> Vec<StateRecord> {
    s.records()
        .filter(|r| !matches!(r, StateRecord::Request(..) | StateRecord::RequestOrigin(..)))
        .collect()
}

proptest! {
    /// Any log of requests, with repeats anywhere: the state is the state of the
    /// log without the repeats, and every repeat answers its first result.
    #[test]
    fn repeats_apply_once(log in prop::collection::vec(
        (0u64..3, 0u64..6, "t[0-1]", prop::option::of(0u64..4)), 0..60)
    ) {
        let mut with_repeats = State::default();
        let mut reference = State::default();
        let mut first: BTreeMap<(u64, u64), fleetcore_model::Outcome> = BTreeMap::new();
        for (i, (origin, seq, _, _)) in log.iter().enumerate() {
            // A repeat carries the same command as the first attempt.
            let (j, (_, _, t, e)) = log[..=i]
                .iter()
                .enumerate()
                .find(|(_, (o, s, _, _))| (o, s) == (origin, seq))
                .unwrap_or((i, &log[i]));
            let command = update(t, j as u64, *e);
            let outcome = with_repeats.apply(&request(*origin, *seq, command.clone()));
            match first.get(&(*origin, *seq)) {
                Some(earlier) => prop_assert_eq!(&outcome, earlier),
                None => {
                    prop_assert_eq!(&outcome, &reference.apply(&command));
                    first.insert((*origin, *seq), outcome);
                }
            }
        }
        prop_assert_eq!(domain_records(&with_repeats), domain_records(&reference));
        // The table survives a snapshot round trip.
        let mut restored = State::default();
        for r in with_repeats.records() { restored.insert(r); }
        prop_assert_eq!(&restored, &with_repeats);
    }
}

/// Seed 8000014's sequence: committed, reply lost, committed again after the heal.
/// The shadow ends at version 1 and the retry hears version 1.
#[test]
fn a_retried_update_answers_the_first_version() {
    let mut s = State::default();
    let write = request(7, 1, update("lamp", 1, None));
    let first = s.apply(&write);
    let again = s.apply(&write);
    assert_eq!(first, again);
    assert_eq!(
        s.shadows()
            .get(&ShadowKey::classic("lamp"))
            .map(|r| r.version),
        Some(1)
    );
    // A refused first attempt is refused again, even though the state changed.
    let conditional = request(7, 2, update("lamp", 2, Some(0)));
    let refused = s.apply(&conditional);
    assert!(
        matches!(refused, Err(Rejection::VersionConflict { .. })),
        "{refused:?}"
    );
    let _ = s.apply(&request(7, 3, update("lamp", 3, None)));
    assert_eq!(s.apply(&conditional), refused);
    // Nested requests are refused.
    let nested = request(7, 4, request(7, 5, update("lamp", 4, None)));
    assert!(matches!(s.apply(&nested), Err(Rejection::Invalid(_))));
    assert_eq!(
        s.shadows()
            .get(&ShadowKey::classic("lamp"))
            .map(|r| r.version),
        Some(2)
    );
}

/// The table keeps the last `REQUEST_TABLE_ENTRIES`; an evicted request retried
/// is refused as expired, not applied twice, while newer ones still deduplicate.
#[test]
fn the_table_is_bounded_and_never_reapplies_a_forgotten_request() {
    let mut s = State::default();
    let total = REQUEST_TABLE_ENTRIES as u64 + 10;
    for seq in 1..=total {
        let _ = s.apply(&request(1, seq, update("t", seq, None)));
    }
    assert_eq!(s.requests().len(), REQUEST_TABLE_ENTRIES);
    let version = s.shadows().get(&ShadowKey::classic("t")).map(|r| r.version);
    assert_eq!(version, Some(total));
    // Evicted: refused, nothing applied.
    let old = s.apply(&request(1, 3, update("t", 3, None)));
    assert!(
        matches!(old, Err(Rejection::RequestExpired { .. })),
        "{old:?}"
    );
    // Still remembered: the first result.
    let recent = s.apply(&request(1, total, update("t", total, None)));
    assert!(recent.is_ok());
    assert_eq!(
        s.shadows().get(&ShadowKey::classic("t")).map(|r| r.version),
        version
    );
    // Another origin's first request is new.
    assert!(s.apply(&request(2, 1, update("t", 0, None))).is_ok());
    assert_eq!(
        s.shadows().get(&ShadowKey::classic("t")).map(|r| r.version),
        Some(total + 1)
    );
}

/// Origins are bounded too: the least recently used leaves first.
#[test]
fn origins_are_bounded() {
    let mut s = State::default();
    for origin in 0..(REQUEST_ORIGINS_MAX as u64 + 5) {
        let _ = s.apply(&request(origin, 1, update("t", origin, None)));
    }
    let origins = s
        .records()
        .filter(|r| matches!(r, StateRecord::RequestOrigin(..)))
        .count();
    assert_eq!(origins, REQUEST_ORIGINS_MAX);
}
