//! The RocksDB stores: openraft's storage conformance suite, persistence across a
//! reopen, snapshot build/install, and refusal of corrupt data.

use std::io;

use fleetcore_model::{Command, ShadowKey};
use fleetcore_model::{RegistryCommand, ShadowCommand};
use fleetcore_storage::{
    keys, open, snapshot, LogStore, SnapshotFile, StateMachineStore, StorageOptions, TypeConfig,
};
use futures::stream;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{Entry, EntryPayload, RaftSnapshotBuilder, StorageError};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = TempDir::new().expect("temp dir");
        let (log, sm) = open(dir.path(), StorageOptions::default()).expect("open");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_openraft_storage_suite() {
    Suite::test_all(Builder).await.expect("storage suite");
}

fn entry(index: u64, command: Command) -> Result<EntryResponder<TypeConfig>, io::Error> {
    Ok((
        Entry {
            log_id: openraft::testing::log_id::<TypeConfig>(1, 1, index),
            payload: EntryPayload::Normal(command),
        },
        None,
    ))
}

fn shadow(thing: &str, n: u64) -> Command {
    Command::Shadow(ShadowCommand::Update {
        key: ShadowKey::classic(thing),
        request: format!(r#"{{"state":{{"reported":{{"n":{n}}}}}}}"#),
        at_ms: n * 1000,
    })
}

fn create(thing: &str) -> Command {
    Command::Registry(RegistryCommand::CreateThing {
        name: thing.into(),
        thing_type_name: None,
        attributes: Default::default(),
        thing_id: format!("id-{thing}"),
        at_ms: 5,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_state_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let digest = {
        let (_log, mut sm) = open(dir.path(), StorageOptions::default()).unwrap();
        let entries = vec![
            entry(1, create("a")),
            entry(2, shadow("a", 1)),
            entry(3, shadow("a", 2)),
            entry(
                4,
                Command::Registry(RegistryCommand::DeleteThing {
                    name: "a".into(),
                    expected_version: None,
                }),
            ),
            // Rejected (version conflict): applied, changes nothing.
            entry(
                5,
                Command::Shadow(ShadowCommand::Delete {
                    key: ShadowKey::classic("a"),
                    expected_version: Some(9),
                    client_token: None,
                    at_ms: 0,
                }),
            ),
        ];
        sm.apply(stream::iter(entries)).await.unwrap();
        sm.shared().digest()
    };
    let (_log, mut sm) = open(dir.path(), StorageOptions::default()).unwrap();
    let (applied, _) = RaftStateMachine::<TypeConfig>::applied_state(&mut sm)
        .await
        .unwrap();
    assert_eq!(applied.map(|l| l.index), Some(5));
    assert_eq!(sm.shared().digest(), digest);
    // The digest kept record by record equals one computed from scratch.
    assert_eq!(sm.shared().digest_recomputed().unwrap(), digest);
    let state = sm.shared();
    let guard = state.read();
    assert!(guard.state.registry().thing("a").is_none());
    assert_eq!(
        guard
            .state
            .shadows()
            .get(&ShadowKey::classic("a"))
            .map(|r| r.version),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_installs_into_a_fresh_store() {
    let source_dir = TempDir::new().unwrap();
    let (_log, mut source) = open(source_dir.path(), StorageOptions::default()).unwrap();
    let entries: Vec<_> = (1..=20)
        .map(|i| entry(i, shadow(&format!("t{}", i % 4), i)))
        .collect();
    source.apply(stream::iter(entries)).await.unwrap();
    let mut builder = RaftStateMachine::<TypeConfig>::get_snapshot_builder(&mut source).await;
    let snapshot = RaftSnapshotBuilder::<TypeConfig>::build_snapshot(&mut builder)
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(20));

    let target_dir = TempDir::new().unwrap();
    let (target_log, mut target) = open(target_dir.path(), StorageOptions::default()).unwrap();
    // Something the snapshot must replace.
    target
        .apply(stream::iter(vec![entry(1, create("stale"))]))
        .await
        .unwrap();
    RaftStateMachine::<TypeConfig>::install_snapshot(
        &mut target,
        &snapshot.meta,
        SnapshotFile::open(&snapshot.snapshot.path).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(target.shared().digest(), source.shared().digest());
    assert_eq!(
        source.shared().digest(),
        source.shared().digest_recomputed().unwrap()
    );
    assert!(target
        .shared()
        .read()
        .state
        .registry()
        .thing("stale")
        .is_none());
    let current = RaftStateMachine::<TypeConfig>::get_current_snapshot(&mut target)
        .await
        .unwrap()
        .expect("snapshot kept");
    assert_eq!(current.meta, snapshot.meta);
    drop((target_log, target));
    // And it is durable.
    let (_log, target) = open(target_dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(target.shared().digest(), source.shared().digest());
}

fn once(seq: u64, command: Command) -> Command {
    Command::Request {
        id: fleetcore_model::RequestId { origin: 9, seq },
        command: Box::new(command),
    }
}

/// The exactly-once table is stored state: after a reopen, and in a store that
/// installed a snapshot, a repeated request still answers its first result and
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_survive_reopen_and_snapshots() {
    let dir = TempDir::new().unwrap();
    {
        let (_log, mut sm) = open(dir.path(), StorageOptions::default()).unwrap();
        let entries = vec![
            entry(1, once(1, shadow("a", 1))),
            entry(2, once(1, shadow("a", 1))),
        ];
        sm.apply(stream::iter(entries)).await.unwrap();
        let guard = sm.shared();
        let version = guard
            .read()
            .state
            .shadows()
            .get(&ShadowKey::classic("a"))
            .map(|r| r.version);
        assert_eq!(version, Some(1));
    }
    let (_log, mut sm) = open(dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(sm.shared().read().state.requests().len(), 1);
    sm.apply(stream::iter(vec![entry(3, once(1, shadow("a", 1)))]))
        .await
        .unwrap();
    let version = |sm: &StateMachineStore| {
        sm.shared()
            .read()
            .state
            .shadows()
            .get(&ShadowKey::classic("a"))
            .map(|r| r.version)
    };
    assert_eq!(version(&sm), Some(1));
    let mut builder = RaftStateMachine::<TypeConfig>::get_snapshot_builder(&mut sm).await;
    let snapshot = RaftSnapshotBuilder::<TypeConfig>::build_snapshot(&mut builder)
        .await
        .unwrap();
    let target_dir = TempDir::new().unwrap();
    let (_target_log, mut target) = open(target_dir.path(), StorageOptions::default()).unwrap();
    RaftStateMachine::<TypeConfig>::install_snapshot(
        &mut target,
        &snapshot.meta,
        snapshot.snapshot,
    )
    .await
    .unwrap();
    target
        .apply(stream::iter(vec![
            entry(4, once(1, shadow("a", 1))),
            entry(5, once(2, shadow("a", 2))),
        ]))
        .await
        .unwrap();
    assert_eq!(version(&target), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_records_refuse_to_open() {
    let dir = TempDir::new().unwrap();
    {
        let (_log, mut sm) = open(dir.path(), StorageOptions::default()).unwrap();
        sm.apply(stream::iter(vec![entry(1, create("a"))]))
            .await
            .unwrap();
    }
    {
        let mut opts = rocksdb::Options::default();
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, dir.path().join("db"), keys::ALL_CFS).unwrap();
        let cf = db.cf_handle(keys::CF_THINGS).unwrap();
        db.put_cf(cf, b"a", b"\x07garbage").unwrap();
    }
    let err = open(dir.path(), StorageOptions::default()).expect_err("refused");
    let message = err.to_string();
    assert!(
        message.contains("corrupt state record") && message.contains("unknown format version 7"),
        "{message}"
    );
}

/// A store with 20 applied entries over four things, and its snapshot.
async fn source_with_snapshot(
    dir: &TempDir,
) -> (
    LogStore,
    StateMachineStore,
    openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>,
) {
    let (log, mut source) = open(dir.path(), StorageOptions::default()).expect("open");
    let entries: Vec<_> = (1..=20)
        .map(|i| entry(i, shadow(&format!("t{}", i % 4), i)))
        .collect();
    source.apply(stream::iter(entries)).await.expect("apply");
    let mut builder = RaftStateMachine::<TypeConfig>::get_snapshot_builder(&mut source).await;
    let snapshot = RaftSnapshotBuilder::<TypeConfig>::build_snapshot(&mut builder)
        .await
        .expect("build");
    (log, source, snapshot)
}

/// A transfer cut short, a flipped byte, trailing bytes or a file of another
/// kind fail the check that runs before anything is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_or_corrupt_snapshot_files_fail_the_check() {
    let dir = TempDir::new().unwrap();
    let (_log, _source, snapshot) = source_with_snapshot(&dir).await;
    let bytes = std::fs::read(&snapshot.snapshot.path).unwrap();
    let (meta, records) = snapshot::check(&snapshot.snapshot.path).unwrap();
    assert_eq!(meta, snapshot.meta);
    assert_eq!(records, 4, "four shadows");

    let probe = dir.path().join("probe");
    let refused = |bytes: &[u8]| {
        std::fs::write(&probe, bytes).unwrap();
        snapshot::check(&probe).expect_err("refused").to_string()
    };
    for cut in [0, 5, 20, bytes.len() / 2, bytes.len() - 1] {
        let e = refused(&bytes[..cut]);
        assert!(
            e.contains("cut short") || e.contains("format"),
            "cut at {cut}: {e}"
        );
    }
    for at in [bytes.len() / 2, bytes.len() - 40, bytes.len() - 1] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x40;
        refused(&flipped);
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(refused(&longer).contains("after the end"));
    assert!(refused(b"{\"meta\":{}}").contains("not a snapshot file"));
}

/// A node stopped in the middle of an install (state cleared, records half
/// written) redoes the install from its snapshot file when it opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_install_is_redone_at_open() {
    let source_dir = TempDir::new().unwrap();
    let (_log, source, snapshot) = source_with_snapshot(&source_dir).await;
    let target_dir = TempDir::new().unwrap();
    {
        let (_log, mut target) = open(target_dir.path(), StorageOptions::default()).unwrap();
        RaftStateMachine::<TypeConfig>::install_snapshot(
            &mut target,
            &snapshot.meta,
            SnapshotFile::open(&snapshot.snapshot.path).unwrap(),
        )
        .await
        .unwrap();
    }
    {
        // What a stop between the install's first and last batch leaves.
        let opts = rocksdb::Options::default();
        let db = rocksdb::DB::open_cf(&opts, target_dir.path().join("db"), keys::ALL_CFS).unwrap();
        let shadows = db.cf_handle(keys::CF_SHADOWS).unwrap();
        let first = db
            .iterator_cf(shadows, rocksdb::IteratorMode::Start)
            .next()
            .unwrap()
            .unwrap()
            .0;
        db.delete_cf(shadows, first).unwrap();
        let meta = db.cf_handle(keys::CF_SM_META).unwrap();
        let marker = fleetcore_storage::codec::encode_bin("meta", &snapshot.meta).unwrap();
        db.put_cf(meta, keys::SM_INSTALLING, marker).unwrap();
        db.put_cf(meta, keys::SM_LAST_APPLIED, b"\x07junk").unwrap();
    }
    let (_log, target) = open(target_dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(target.shared().digest(), source.shared().digest());
    assert_eq!(
        target.shared().read().last_applied,
        snapshot.meta.last_log_id
    );

    // Without the snapshot file the install cannot be redone: refused, not half served.
    drop(target);
    drop(_log);
    {
        let opts = rocksdb::Options::default();
        let db = rocksdb::DB::open_cf(&opts, target_dir.path().join("db"), keys::ALL_CFS).unwrap();
        let meta = db.cf_handle(keys::CF_SM_META).unwrap();
        let marker = fleetcore_storage::codec::encode_bin("meta", &snapshot.meta).unwrap();
        db.put_cf(meta, keys::SM_INSTALLING, marker).unwrap();
    }
    std::fs::remove_file(target_dir.path().join("snapshot")).unwrap();
    let err = open(target_dir.path(), StorageOptions::default()).expect_err("refused");
    assert!(
        err.to_string().contains("interrupted snapshot install"),
        "{err}"
    );
}

/// What: policies (their versions and attachments) and certificates are stored rows like any other
/// state: they survive a reopen (with the target index rebuilt from the rows)
/// and travel in a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_survive_reopen_and_snapshots() {
    use fleetcore_model::PolicyCommand;
    let dir = TempDir::new().unwrap();
    let policy = |c: PolicyCommand| Command::Policy(c);
    let digest = {
        let (_log, mut sm) = open(dir.path(), StorageOptions::default()).unwrap();
        let entries = vec![
            entry(
                1,
                policy(PolicyCommand::Create {
                    name: "p".into(),
                    document: "{\"v\":1}".into(),
                    at_ms: 1,
                }),
            ),
            entry(
                2,
                policy(PolicyCommand::CreateVersion {
                    name: "p".into(),
                    document: "{\"v\":2}".into(),
                    set_as_default: true,
                    at_ms: 2,
                }),
            ),
            entry(
                3,
                policy(PolicyCommand::Attach {
                    name: "p".into(),
                    target: "cert-1".into(),
                }),
            ),
            entry(
                4,
                policy(PolicyCommand::Create {
                    name: "gone".into(),
                    document: "{}".into(),
                    at_ms: 3,
                }),
            ),
            entry(
                5,
                policy(PolicyCommand::Delete {
                    name: "gone".into(),
                }),
            ),
            entry(
                6,
                Command::Certificate(fleetcore_model::CertificateCommand::Register {
                    id: "ab".repeat(32),
                    pem: "PEM".into(),
                    status: fleetcore_model::CertificateStatus::Active,
                    not_before_ms: 1,
                    not_after_ms: 2,
                    at_ms: 3,
                }),
            ),
        ];
        sm.apply(stream::iter(entries)).await.unwrap();
        sm.shared().digest()
    };
    let (_log, mut sm) = open(dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(sm.shared().digest(), digest);
    {
        let state = sm.shared();
        let guard = state.read();
        let p = guard.state.policies().get("p").expect("policy p survives");
        assert_eq!(p.default_version, 2);
        assert_eq!(p.default_document(), Some("{\"v\":2}"));
        assert!(guard.state.policies().get("gone").is_none());
        assert_eq!(
            guard
                .state
                .certificates()
                .get(&"ab".repeat(32))
                .map(|c| c.not_after_ms),
            Some(2)
        );
        assert_eq!(
            guard
                .state
                .policies()
                .attached_to("cert-1")
                .collect::<Vec<_>>(),
            ["p"]
        );
    }
    let mut builder = RaftStateMachine::<TypeConfig>::get_snapshot_builder(&mut sm).await;
    let snapshot = RaftSnapshotBuilder::<TypeConfig>::build_snapshot(&mut builder)
        .await
        .unwrap();
    let target_dir = TempDir::new().unwrap();
    let (_target_log, mut target) = open(target_dir.path(), StorageOptions::default()).unwrap();
    RaftStateMachine::<TypeConfig>::install_snapshot(
        &mut target,
        &snapshot.meta,
        SnapshotFile::open(&snapshot.snapshot.path).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(target.shared().digest(), digest);
    assert_eq!(
        target
            .shared()
            .read()
            .state
            .policies()
            .attached_to("cert-1")
            .count(),
        1
    );
}
