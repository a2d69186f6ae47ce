//! Shadow semantics, table by table, against the AWS IoT developer guide's examples.

use fleetcore_model::shadow::ShadowUpdateRequest;
use fleetcore_model::ShadowCommand;
use fleetcore_model::{Applied, Command, Rejection, ShadowKey, State};
use serde_json::{json, Value};

fn update(state: &mut State, thing: &str, body: Value, at_s: u64) -> Result<Applied, Rejection> {
    state.apply(&Command::Shadow(ShadowCommand::Update {
        key: ShadowKey::classic(thing),
        request: body.to_string(),
        at_ms: at_s * 1000,
    }))
}

fn get(state: &State, thing: &str) -> Value {
    let key = ShadowKey::classic(thing);
    state
        .shadows()
        .get(&key)
        .expect("shadow exists")
        .get_response(&key)
        .expect("document exists")
}

#[test]
fn desired_and_reported_merge_and_null_deletes() {
    let mut s = State::default();
    update(
        &mut s,
        "lamp",
        json!({"state": {"desired": {"color": "red", "level": 3}}}),
        10,
    )
    .unwrap();
    update(
        &mut s,
        "lamp",
        json!({"state": {"reported": {"color": "blue", "level": 3}}}),
        11,
    )
    .unwrap();
    let doc = get(&s, "lamp");
    assert_eq!(doc["state"]["desired"], json!({"color": "red", "level": 3}));
    assert_eq!(
        doc["state"]["reported"],
        json!({"color": "blue", "level": 3})
    );
    assert_eq!(doc["state"]["delta"], json!({"color": "red"}));
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["metadata"]["desired"]["color"]["timestamp"], 10);
    assert_eq!(doc["metadata"]["reported"]["color"]["timestamp"], 11);

    update(
        &mut s,
        "lamp",
        json!({"state": {"desired": {"level": null}}}),
        12,
    )
    .unwrap();
    let doc = get(&s, "lamp");
    assert_eq!(doc["state"]["desired"], json!({"color": "red"}));
    assert!(doc["metadata"]["desired"].get("level").is_none());
    assert_eq!(doc["version"], 3);
}

#[test]
fn nested_objects_merge_and_arrays_replace() {
    let mut s = State::default();
    update(
        &mut s,
        "t",
        json!({"state": {"reported": {"a": {"x": 1, "y": [1, 2]}}}}),
        1,
    )
    .unwrap();
    update(
        &mut s,
        "t",
        json!({"state": {"reported": {"a": {"z": 2, "y": [3]}}}}),
        2,
    )
    .unwrap();
    let doc = get(&s, "t");
    assert_eq!(
        doc["state"]["reported"],
        json!({"a": {"x": 1, "y": [3], "z": 2}})
    );
    assert_eq!(doc["metadata"]["reported"]["a"]["x"]["timestamp"], 1);
    assert_eq!(
        doc["metadata"]["reported"]["a"]["y"],
        json!([{"timestamp": 2}])
    );
}

#[test]
fn delta_holds_only_differing_nested_keys() {
    let mut s = State::default();
    update(&mut s, "t", json!({"state": {"desired": {"a": {"x": 1, "y": 2}, "b": 1}, "reported": {"a": {"x": 1, "y": 3}, "b": 1}}}), 1).unwrap();
    assert_eq!(get(&s, "t")["state"]["delta"], json!({"a": {"y": 2}}));
}

#[test]
fn accepted_delta_and_documents_bodies() {
    let mut s = State::default();
    let Applied::ShadowUpdated(first) = update(
        &mut s,
        "t",
        json!({"state": {"desired": {"on": true}}, "clientToken": "c1"}),
        5,
    )
    .unwrap() else {
        panic!("expected a shadow update")
    };
    assert_eq!(first.accepted["state"], json!({"desired": {"on": true}}));
    assert_eq!(first.accepted["clientToken"], "c1");
    assert_eq!(first.accepted["version"], 1);
    assert_eq!(first.documents["previous"], Value::Null);
    assert_eq!(first.documents["current"]["version"], 1);
    assert_eq!(first.delta.as_ref().unwrap()["state"], json!({"on": true}));

    let Applied::ShadowUpdated(second) =
        update(&mut s, "t", json!({"state": {"reported": {"on": true}}}), 6).unwrap()
    else {
        panic!("expected a shadow update")
    };
    assert!(second.delta.is_none(), "reported now matches desired");
    assert_eq!(second.documents["previous"]["version"], 1);
    assert_eq!(
        second.documents["current"]["state"]["reported"],
        json!({"on": true})
    );
}

#[test]
fn version_mismatch_is_a_conflict_and_changes_nothing() {
    let mut s = State::default();
    update(&mut s, "t", json!({"state": {"desired": {"a": 1}}}), 1).unwrap();
    let before = s.clone();
    let err = update(
        &mut s,
        "t",
        json!({"state": {"desired": {"a": 2}}, "version": 7}),
        2,
    )
    .unwrap_err();
    assert_eq!(
        err,
        Rejection::VersionConflict {
            requested: 7,
            current: 1
        }
    );
    assert_eq!(s, before);
    update(
        &mut s,
        "t",
        json!({"state": {"desired": {"a": 2}}, "version": 1}),
        2,
    )
    .unwrap();
    assert_eq!(get(&s, "t")["version"], 2);
}

#[test]
fn state_null_clears_and_delete_keeps_version() {
    let mut s = State::default();
    update(
        &mut s,
        "t",
        json!({"state": {"desired": {"a": 1}, "reported": {"a": 1}}}),
        1,
    )
    .unwrap();
    update(&mut s, "t", json!({"state": null}), 2).unwrap();
    let doc = get(&s, "t");
    assert_eq!(doc["state"], json!({}));
    assert_eq!(doc["version"], 2);

    let deleted = s
        .apply(&Command::Shadow(ShadowCommand::Delete {
            key: ShadowKey::classic("t"),
            expected_version: None,
            client_token: None,
            at_ms: 3000,
        }))
        .unwrap();
    assert_eq!(
        deleted,
        Applied::ShadowDeleted(json!({"version": 2, "timestamp": 3}))
    );
    let key = ShadowKey::classic("t");
    assert!(matches!(
        s.shadows().get(&key).unwrap().get_response(&key),
        Err(Rejection::NotFound { .. })
    ));
    update(&mut s, "t", json!({"state": {"reported": {"b": 1}}}), 4).unwrap();
    assert_eq!(
        get(&s, "t")["version"],
        3,
        "a re-created shadow continues its version"
    );
}

#[test]
fn bad_requests_are_rejected_with_aws_messages() {
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "invalid json"),
        (b"[1]", "must be a JSON object"),
        (b"{}", "Missing required node: state"),
        (br#"{"state": 3}"#, "must be an object"),
        (br#"{"state": {}}"#, "desired or reported"),
        (
            br#"{"state": {"desired": 1}}"#,
            "desired node must be an object",
        ),
        (br#"{"state": {"other": {}}}"#, "invalid node"),
        (
            br#"{"state": {"desired": {}}, "version": -1}"#,
            "non-negative",
        ),
        (
            br#"{"state": {"desired": {"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}"#,
            "nesting",
        ),
        (
            br#"{"state": {"reported": {"temps": [20, null, 21]}}}"#,
            "array with a null element",
        ),
        (
            br#"{"state": {"desired": {"a": {"b": [[1], [null]]}}}}"#,
            "array with a null element",
        ),
    ];
    for (body, message) in cases {
        let err = ShadowUpdateRequest::parse(body).unwrap_err();
        assert!(
            err.to_string().contains(message),
            "{} -> {err}, expected '{message}'",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn oversized_state_is_refused_whole() {
    let mut s = State::default();
    let big = "x".repeat(9000);
    let err = update(&mut s, "t", json!({"state": {"desired": {"a": big}}}), 1).unwrap_err();
    assert!(matches!(err, Rejection::TooLarge { .. }), "{err}");
    assert!(s.is_empty());
}

#[test]
fn invalid_names_are_refused() {
    let mut s = State::default();
    let err = update(
        &mut s,
        "bad/name",
        json!({"state": {"desired": {"a": 1}}}),
        1,
    )
    .unwrap_err();
    assert!(matches!(err, Rejection::Invalid(_)));
    let err = s
        .apply(&Command::Shadow(ShadowCommand::Update {
            key: ShadowKey::named("t", "x".repeat(65)),
            request: json!({"state": {"desired": {"a": 1}}}).to_string(),
            at_ms: 0,
        }))
        .unwrap_err();
    assert!(matches!(err, Rejection::Invalid(_)));
}
