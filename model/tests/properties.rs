//! Property tests of the pure state machine: determinism and shadow invariants.

use std::collections::BTreeMap;

use fleetcore_model::{Applied, AttributeUpdate, Command, ShadowKey, State};
use fleetcore_model::{RegistryCommand, ShadowCommand};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u32..5).prop_map(|n| json!(n)),
        "[a-c]{0,2}".prop_map(Value::String),
    ]
}

fn section() -> impl Strategy<Value = Value> {
    let value = leaf().prop_recursive(2, 8, 3, |inner| {
        prop::collection::btree_map("[a-d]", inner, 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
    });
    prop::collection::btree_map("[a-d]", value, 1..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn command() -> impl Strategy<Value = Command> {
    let thing = "t[0-2]";
    prop_oneof![
        (
            thing,
            prop::option::of(section()),
            prop::option::of(section()),
            prop::option::of(0u64..4),
            0u64..10_000
        )
            .prop_map(|(t, desired, reported, version, at_ms)| {
                let mut state = Map::new();
                if let Some(d) = desired {
                    state.insert("desired".into(), d);
                }
                if let Some(r) = reported {
                    state.insert("reported".into(), r);
                }
                let mut body = json!({ "state": state });
                if let Some(v) = version {
                    body["version"] = json!(v);
                }
                Command::Shadow(ShadowCommand::Update {
                    key: ShadowKey::classic(t),
                    request: body.to_string(),
                    at_ms,
                })
            }),
        (thing, prop::option::of(0u64..4)).prop_map(|(t, v)| Command::Shadow(
            ShadowCommand::Delete {
                key: ShadowKey::classic(t),
                expected_version: v,
                client_token: None,
                at_ms: 1
            }
        )),
        (
            thing,
            prop::collection::btree_map("[a-b]", "[x-z]{0,1}", 0..3)
        )
            .prop_map(
                |(t, attributes)| Command::Registry(RegistryCommand::CreateThing {
                    name: t.clone(),
                    thing_type_name: None,
                    attributes,
                    thing_id: format!("id-{t}"),
                    at_ms: 7
                })
            ),
        (
            thing,
            prop::collection::btree_map("[a-b]", "[x-z]{0,1}", 0..3),
            any::<bool>(),
            prop::option::of(1u64..4)
        )
            .prop_map(
                |(t, attributes, merge, expected_version)| Command::Registry(
                    RegistryCommand::UpdateThing {
                        name: t,
                        attributes: Some(AttributeUpdate { attributes, merge }),
                        thing_type_name: None,
                        remove_thing_type: false,
                        expected_version
                    }
                )
            ),
        (thing, prop::option::of(1u64..4)).prop_map(|(t, v)| Command::Registry(
            RegistryCommand::DeleteThing {
                name: t,
                expected_version: v
            }
        )),
    ]
}

proptest! {
    /// The same log applied to two fresh states gives identical states and outcomes.
    #[test]
    fn apply_is_deterministic(log in prop::collection::vec(command(), 0..60)) {
        let (mut a, mut b) = (State::default(), State::default());
        for c in &log {
            let before = a.clone();
            let (outcome, changed) = a.apply_tracked(c);
            prop_assert_eq!(&outcome, &b.apply(c));
            // Storage writes only the reported keys: every other record is untouched.
            for r in before.records() {
                if !changed.contains(&r.key()) {
                    prop_assert_eq!(a.get(&r.key()), Some(r));
                }
            }
            for r in a.records() {
                if !changed.contains(&r.key()) {
                    prop_assert_eq!(before.get(&r.key()), Some(r));
                }
            }
        }
        prop_assert_eq!(&a, &b);
        // A snapshot round trip (records out, records in) gives the same state.
        let mut restored = State::default();
        for r in a.records() { restored.insert(r); }
        prop_assert_eq!(&a, &restored);
    }

    /// Versions advance by exactly one per accepted update and never move otherwise.
    #[test]
    fn shadow_versions_increase_by_one(log in prop::collection::vec(command(), 0..60)) {
        let mut s = State::default();
        let mut versions: BTreeMap<ShadowKey, u64> = BTreeMap::new();
        for c in &log {
            let before = s.clone();
            let outcome = s.apply(c);
            if let Command::Shadow(ShadowCommand::Update { key, .. }) = c {
                let old = versions.get(key).copied().unwrap_or(0);
                let new = s.shadows().get(key).map(|r| r.version).unwrap_or(0);
                match outcome {
                    Ok(Applied::ShadowUpdated(u)) => {
                        prop_assert_eq!(new, old + 1);
                        prop_assert_eq!(&u.accepted["version"], &json!(new));
                    }
                    _ => prop_assert_eq!(&s, &before, "a rejected update changes nothing"),
                }
                versions.insert(key.clone(), new);
            }
        }
    }

    /// After the device reports exactly what the delta asked for, no delta remains.
    #[test]
    fn reporting_the_delta_clears_it(desired in section(), reported in section()) {
        let mut s = State::default();
        let key = ShadowKey::classic("d");
        let body = json!({"state": {"desired": desired, "reported": reported}}).to_string();
        if s.apply(&Command::Shadow(ShadowCommand::Update { key: key.clone(), request: body, at_ms: 1 })).is_err() {
            return Ok(());
        }
        let doc = s.shadows().get(&key).unwrap().get_response(&key).unwrap();
        if let Some(delta) = doc["state"].get("delta").cloned() {
            let report = json!({"state": {"reported": delta}}).to_string();
            s.apply(&Command::Shadow(ShadowCommand::Update { key: key.clone(), request: report, at_ms: 2 })).unwrap();
            let doc = s.shadows().get(&key).unwrap().get_response(&key).unwrap();
            prop_assert!(doc["state"].get("delta").is_none(), "delta left: {}", doc);
        }
    }
}
