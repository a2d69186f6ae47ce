//! Golden bytes of format version 1: what this version wrote must stay readable by
//! every later version (a newer node reads an older log). If this test fails, a
//! change broke the on-disk or wire format: add a new format version instead.

use fleetcore_model::{Command, ShadowKey, StateRecord};
use fleetcore_storage::{codec, TypeConfig};
use openraft::{Entry, EntryPayload};

fn entry() -> openraft::alias::EntryOf<TypeConfig> {
    Entry {
        log_id: openraft::testing::log_id::<TypeConfig>(3, 2, 42),
        payload: EntryPayload::Normal(Command::UpdateShadow {
            key: ShadowKey::named("lamp-1", "cfg"),
            request: r#"{"state":{"desired":{"on":true}}}"#.into(),
            at_ms: 1_700_000_000_000,
        }),
    }
}

/// The log entry above, as format version 1 encoded it.
const ENTRY_V1_HEX: &str = "0103022a010b066c616d702d3103636667217b227374617465223a7b2264657369726564223a7b226f6e223a747275657d7d7dfd0068e5cf8b010000";

#[test]
fn a_v1_log_entry_still_decodes() {
    let bytes = hex::decode(ENTRY_V1_HEX).expect("hex");
    let decoded: openraft::alias::EntryOf<TypeConfig> =
        codec::decode_bin("log entry", b"golden", &bytes).expect("decodes");
    assert_eq!(decoded, entry());
    // And this version still writes exactly those bytes.
    assert_eq!(
        hex::encode(codec::encode_bin("log entry", &entry()).expect("encodes")),
        ENTRY_V1_HEX
    );
}

#[test]
fn a_v1_state_record_still_decodes() {
    let bytes = br#"{"Shadow":[{"thing":"lamp-1","name":""},{"version":3,"document":{"desired":{"on":true},"reported":null,"metadata_desired":{"on":{"timestamp":17}},"metadata_reported":null,"timestamp":17}}]}"#;
    let mut stored = vec![codec::FORMAT_V1];
    stored.extend_from_slice(bytes);
    let record: StateRecord =
        codec::decode_json("state record", b"golden", &stored).expect("decodes");
    let StateRecord::Shadow(key, shadow) = record else {
        panic!("a shadow record")
    };
    assert_eq!(key, ShadowKey::classic("lamp-1"));
    assert_eq!(shadow.version, 3);
    assert_eq!(
        shadow
            .document
            .and_then(|d| d.desired)
            .map(|d| d["on"].clone()),
        Some(serde_json::json!(true))
    );
}
