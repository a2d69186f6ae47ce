//! Golden bytes of the formats this version reads. Format 1 (the flat command
//! enum) is what older nodes wrote: its log entries and snapshot files must stay
//! readable by every later version. Format 2 is what this version writes. If a
//! test here fails, a change broke an on-disk or wire format: add a new format
//! version instead. The files under `golden/` were written by the format-1 code
//! (commit efb1260).

use std::collections::BTreeMap;

use fleetcore_model::limits::Quotas;
use fleetcore_model::{
    AttributeUpdate, ClusterCommand, Command, RegistryCommand, RequestId, RetainedCommand,
    RetainedMessage, ShadowCommand, ShadowKey, StateRecord,
};
use fleetcore_storage::{codec, keys, open, snapshot, SnapshotFile, StorageOptions, TypeConfig};
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftStateMachine};
use openraft::{Entry, EntryPayload};
use tempfile::TempDir;

type LogEntry = openraft::alias::EntryOf<TypeConfig>;

fn entry() -> LogEntry {
    Entry {
        log_id: openraft::testing::log_id::<TypeConfig>(3, 2, 42),
        payload: EntryPayload::Normal(
            ShadowCommand::Update {
                key: ShadowKey::named("lamp-1", "cfg"),
                request: r#"{"state":{"desired":{"on":true}}}"#.into(),
                at_ms: 1_700_000_000_000,
            }
            .into(),
        ),
    }
}

/// The log entry above, as format 1 encoded it.
const ENTRY_V1_HEX: &str = "0103022a010b066c616d702d3103636667217b227374617465223a7b2264657369726564223a7b226f6e223a747275657d7d7dfd0068e5cf8b010000";
/// The same entry as format 2 encodes it.
const ENTRY_V2_HEX: &str = "0203022a010100066c616d702d3103636667217b227374617465223a7b2264657369726564223a7b226f6e223a747275657d7d7dfd0068e5cf8b010000";

#[test]
fn a_v1_log_entry_decodes_and_this_version_writes_v2() {
    let v1 = hex::decode(ENTRY_V1_HEX).expect("hex");
    assert_eq!(
        codec::decode_entry(b"golden", &v1).expect("v1 decodes"),
        entry()
    );
    let written = codec::encode_entry(&entry()).expect("encodes");
    assert_eq!(hex::encode(&written), ENTRY_V2_HEX);
    assert_eq!(
        codec::decode_entry(b"golden", &written).expect("v2 decodes"),
        entry()
    );
}

/// What each line of `golden/v1-log-entries.hex` means in format 2, in order:
/// one entry of every command format 1 knows (log indexes 10, 11, ...).
fn v1_commands_in_v2() -> Vec<Command> {
    let attrs: BTreeMap<String, String> = [("colour".to_string(), "red".to_string())].into();
    let create_thing = RegistryCommand::CreateThing {
        name: "lamp-1".into(),
        thing_type_name: Some("lamp".into()),
        attributes: attrs.clone(),
        thing_id: "0b8f-thing".into(),
        at_ms: 1_700_000_000_001,
    };
    vec![
        create_thing.clone().into(),
        RegistryCommand::UpdateThing {
            name: "lamp-1".into(),
            attributes: Some(AttributeUpdate {
                attributes: attrs.clone(),
                merge: true,
            }),
            thing_type_name: None,
            remove_thing_type: true,
            expected_version: Some(1),
        }
        .into(),
        RegistryCommand::DeleteThing {
            name: "lamp-1".into(),
            expected_version: Some(2),
        }
        .into(),
        RegistryCommand::CreateThingType {
            name: "lamp".into(),
            description: Some("a lamp".into()),
            searchable_attributes: vec!["colour".into()],
            thing_type_id: "0b8f-type".into(),
            at_ms: 1_700_000_000_002,
        }
        .into(),
        RegistryCommand::DeprecateThingType {
            name: "lamp".into(),
            undo: false,
            at_ms: 1_700_000_000_003,
        }
        .into(),
        RegistryCommand::DeleteThingType {
            name: "lamp".into(),
        }
        .into(),
        RegistryCommand::CreateThingGroup {
            name: "floor-1".into(),
            parent: Some("building".into()),
            description: Some("first floor".into()),
            attributes: attrs.clone(),
            thing_group_id: "0b8f-group".into(),
            at_ms: 1_700_000_000_004,
        }
        .into(),
        RegistryCommand::UpdateThingGroup {
            name: "floor-1".into(),
            description: Some("ground floor".into()),
            attributes: Some(AttributeUpdate {
                attributes: attrs,
                merge: false,
            }),
            expected_version: Some(1),
        }
        .into(),
        RegistryCommand::DeleteThingGroup {
            name: "floor-1".into(),
            expected_version: None,
        }
        .into(),
        RegistryCommand::AddThingToThingGroup {
            group: "floor-1".into(),
            thing: "lamp-1".into(),
        }
        .into(),
        RegistryCommand::RemoveThingFromThingGroup {
            group: "floor-1".into(),
            thing: "lamp-1".into(),
        }
        .into(),
        ShadowCommand::Update {
            key: ShadowKey::named("lamp-1", "cfg"),
            request: r#"{"state":{"desired":{"on":true}},"clientToken":"t1"}"#.into(),
            at_ms: 1_700_000_000_005,
        }
        .into(),
        ShadowCommand::Delete {
            key: ShadowKey::classic("lamp-1"),
            expected_version: Some(4),
            client_token: Some("t2".into()),
            at_ms: 1_700_000_000_006,
        }
        .into(),
        RetainedCommand::Set(RetainedMessage {
            topic: "lamp/1/state".into(),
            payload: vec![0, 159, 146, 150],
            qos: 1,
            payload_format: Some(0),
            content_type: Some("application/octet-stream".into()),
            response_topic: Some("lamp/1/reply".into()),
            correlation_data: Some(vec![7, 7]),
            user: vec![("k".into(), "v".into())],
            stored_at_ms: 1_700_000_000_500,
            expires_at_ms: Some(1_700_000_060_500),
        })
        .into(),
        Command::Request {
            id: RequestId {
                origin: 0x1234_5678_9abc_def0,
                seq: 42,
            },
            command: Box::new(create_thing.into()),
        },
        ClusterCommand::RecordIncarnation {
            node: 3,
            incarnation: 0xfeed_beef_0000_0001,
            replace: true,
        }
        .into(),
        RetainedCommand::Expire {
            topics: vec!["lamp/1/state".into(), "lamp/2/state".into()],
            at_ms: 1_700_000_000_007,
        }
        .into(),
        ClusterCommand::SetQuotas(Quotas {
            things: 10,
            thing_groups: 11,
            named_shadows_per_thing: 12,
            shadow_state_bytes: 13,
            retained_messages: 14,
            retained_bytes: 15,
            retained_payload_bytes: 16,
        })
        .into(),
        ShadowCommand::ForgetTombstones {
            keys: vec![
                ShadowKey::classic("lamp-1"),
                ShadowKey::named("lamp-2", "cfg"),
            ],
            at_ms: 1_700_000_000_008,
        }
        .into(),
    ]
}

fn v1_log() -> Vec<Vec<u8>> {
    include_str!("golden/v1-log-entries.hex")
        .lines()
        .map(|line| hex::decode(line).expect("hex"))
        .collect()
}

fn expected_entries() -> Vec<LogEntry> {
    v1_commands_in_v2()
        .into_iter()
        .enumerate()
        .map(|(i, command)| Entry {
            log_id: openraft::testing::log_id::<TypeConfig>(2, 1, 10 + i as u64),
            payload: EntryPayload::Normal(command),
        })
        .collect()
}

#[test]
fn every_v1_command_decodes_to_its_v2_form() {
    let v1 = v1_log();
    let expected = expected_entries();
    assert_eq!(v1.len(), expected.len());
    for (bytes, want) in v1.iter().zip(expected) {
        assert_eq!(bytes[0], codec::FORMAT_V1);
        let got = codec::decode_entry(b"golden", bytes).expect("decodes");
        assert_eq!(got, want);
        // Written again, it is format 2 and reads back the same.
        let again = codec::encode_entry(&got).expect("encodes");
        assert_eq!(again[0], codec::FORMAT_V2);
        assert_eq!(codec::decode_entry(b"again", &again).expect("decodes"), got);
    }
}

#[test]
fn v1_blank_and_membership_entries_decode() {
    // Their encoding did not change between the formats, only the format byte.
    let membership = openraft::Membership::<u64, fleetcore_storage::NodeInfo>::new_with_defaults(
        vec![[1u64, 2, 3].into_iter().collect()],
        [],
    );
    for payload in [EntryPayload::Blank, EntryPayload::Membership(membership)] {
        let entry: LogEntry = Entry {
            log_id: openraft::testing::log_id::<TypeConfig>(4, 1, 7),
            payload,
        };
        let mut bytes = codec::encode_entry(&entry).expect("encodes");
        bytes[0] = codec::FORMAT_V1;
        assert_eq!(
            codec::decode_entry(b"golden", &bytes).expect("decodes"),
            entry
        );
    }
}

#[test]
fn a_corrupt_or_foreign_entry_is_refused() {
    let v1 = v1_log();
    let mut cut = v1[0].clone();
    cut.truncate(cut.len() - 3);
    assert!(codec::decode_entry(b"k", &cut).is_err());
    let mut unknown = v1[0].clone();
    unknown[0] = 9;
    let err = codec::decode_entry(b"k", &unknown).expect_err("refused");
    assert!(
        err.to_string().contains("unknown format version 9"),
        "{err}"
    );
    // RPC payloads are read in format 2 only: format 1 comes from an older node.
    let err = codec::decode_bin_as::<LogEntry>(codec::FORMAT_V2, "rpc", b"", &v1[0])
        .expect_err("refused");
    assert!(err.to_string().contains("format 1"), "{err}");
}

/// A data dir whose log was written in format 1 opens, and its entries read
/// back in their format-2 form, through the real store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_log_on_disk_reads_back() {
    let dir = TempDir::new().unwrap();
    drop(open(dir.path(), StorageOptions::default()).expect("create"));
    {
        let db = rocksdb::DB::open_cf(
            &rocksdb::Options::default(),
            dir.path().join("db"),
            keys::ALL_CFS,
        )
        .expect("raw open");
        let cf = db.cf_handle(keys::CF_LOG).expect("log cf");
        for (i, bytes) in v1_log().iter().enumerate() {
            db.put_cf(&cf, keys::log_key(10 + i as u64), bytes).unwrap();
        }
    }
    let (mut log, _sm) = open(dir.path(), StorageOptions::default()).expect("reopen");
    let expected = expected_entries();
    let state = RaftLogStorage::<TypeConfig>::get_log_state(&mut log)
        .await
        .expect("log state");
    assert_eq!(
        state.last_log_id,
        expected.last().map(|e| e.log_id),
        "last log id"
    );
    let read = RaftLogReader::<TypeConfig>::try_get_log_entries(&mut log, 10..10 + 19)
        .await
        .expect("entries");
    assert_eq!(read, expected);
}

/// A snapshot file written by format 1 (state records of every kind, requests
/// and a refusal remembered) installs into a fresh store of this version with
/// the same records and the same digest, also after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_snapshot_installs_with_the_same_records() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("v1.snapshot");
    std::fs::write(&file, include_bytes!("golden/v1.snapshot")).unwrap();
    let (meta, records) = snapshot::check(&file).expect("a valid snapshot file");
    assert_eq!(meta.last_log_id.map(|l| l.index), Some(14));
    let expected: Vec<StateRecord> = include_str!("golden/v1-snapshot-records.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    assert_eq!(records as usize, expected.len());
    const DIGEST_V1: &str = "89cdc34bb439bd7d5a0c4023f451050dd0b07b8b31897eb90489d05b6c371eb8";

    let store = dir.path().join("store");
    {
        let (_log, mut sm) = open(&store, StorageOptions::default()).expect("open");
        RaftStateMachine::<TypeConfig>::install_snapshot(
            &mut sm,
            &meta,
            SnapshotFile::open(&file).unwrap(),
        )
        .await
        .expect("installs");
        let shared = sm.shared();
        let got: Vec<StateRecord> = shared.read().state.records().collect();
        assert_eq!(got, expected);
        assert_eq!(shared.digest(), DIGEST_V1);
        assert_eq!(shared.digest_recomputed().unwrap(), DIGEST_V1);
    }
    let (_log, sm) = open(&store, StorageOptions::default()).expect("reopen");
    let got: Vec<StateRecord> = sm.shared().read().state.records().collect();
    assert_eq!(got, expected);
    assert_eq!(sm.shared().digest(), DIGEST_V1);
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
