//! The state machine: applies committed commands to the in-memory
//! [`fleetcore_model::State`] and persists every changed record together with
//! `last_applied` and the membership in one `WriteBatch`, so a crash never leaves
//! them apart. On open, the state is loaded back from the column families.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use futures::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{AsyncRuntime, EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};
use sha2::{Digest, Sha256};

use fleetcore_model::{Applied, State, StateKey, StateRecord};

use crate::codec;
use crate::error::StorageError;
use crate::keys;
use crate::snapshot::{SnapshotFile, SnapshotReader, SnapshotRecord, SnapshotWriter};
use crate::types::{TypeConfig, Types};
use crate::StorageOptions;

/// What has been applied: the state and the position in the log it reflects.
#[derive(Debug, Default)]
pub struct AppliedState {
    /// The replicated state.
    pub state: State,
    /// The last applied log id.
    pub last_applied: Option<LogIdOf<TypeConfig>>,
    /// The last applied membership.
    pub membership: StoredMembershipOf<TypeConfig>,
    /// The state's digest, kept up to date as records change.
    digest: RecordDigest,
}

/// A digest of a set of records, updated per record: the sum (mod 2^256) of the
/// SHA-256 of every record's stored bytes. Equal sets give equal digests whatever
/// the order they were built in, and reading it costs nothing, so
/// `/cluster/status` never walks the state under the lock that apply needs.
/// (An additive hash is no defence against crafted collisions; it compares
/// replicas, it authenticates nothing.)
#[derive(Debug, Default)]
struct RecordDigest {
    by_key: BTreeMap<StateKey, [u8; 32]>,
    sum: [u64; 4],
}

impl RecordDigest {
    fn limbs(hash: &[u8; 32]) -> [u64; 4] {
        let mut out = [0u64; 4];
        for (limb, chunk) in out.iter_mut().zip(hash.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(bytes);
        }
        out
    }

    fn add(&mut self, hash: &[u8; 32], negate: bool) {
        let mut limbs = Self::limbs(hash);
        if negate {
            // Two's complement over 256 bits: invert, add one.
            let mut carry = true;
            for limb in &mut limbs {
                let (v, c) = (!*limb).overflowing_add(u64::from(carry));
                *limb = v;
                carry = c;
            }
        }
        let mut carry = false;
        for (acc, limb) in self.sum.iter_mut().zip(limbs) {
            let (v, c1) = acc.overflowing_add(limb);
            let (v, c2) = v.overflowing_add(u64::from(carry));
            *acc = v;
            carry = c1 || c2;
        }
    }

    /// Record `key` now stores `bytes` (its stored encoding), or nothing.
    fn set(&mut self, key: StateKey, bytes: Option<&[u8]>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.add(&old, true);
        }
        if let Some(bytes) = bytes {
            let hash: [u8; 32] = Sha256::digest(bytes).into();
            self.add(&hash, false);
            self.by_key.insert(key, hash);
        }
    }

    fn hex(&self) -> String {
        let mut bytes = Vec::with_capacity(32);
        for limb in self.sum.iter().rev() {
            bytes.extend_from_slice(&limb.to_be_bytes());
        }
        hex::encode(bytes)
    }
}

/// A read handle on the applied state, for local (non-linearizable or post-read-index) reads.
#[derive(Debug, Clone, Default)]
pub struct SharedState(Arc<RwLock<AppliedState>>);

impl SharedState {
    /// Locks for reading. The lock is never held across an await.
    pub fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, AppliedState> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The digest of every record (a sum of per-record SHA-256s): equal on replicas that
    /// applied the same log. Kept as records change, so reading it is O(1).
    pub fn digest(&self) -> String {
        self.read().digest.hex()
    }

    /// The digest recomputed from every record (slow; for tests of the kept one).
    pub fn digest_recomputed(&self) -> Result<String, StorageError> {
        let guard = self.read();
        let mut digest = RecordDigest::default();
        for record in guard.state.records() {
            let bytes = codec::encode_json("state record", &record)?;
            digest.set(record.key(), Some(&bytes));
        }
        Ok(digest.hex())
    }
}

/// The state-machine store. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    shared: SharedState,
    /// The data dir: the snapshot file and its temporary siblings live here.
    dir: PathBuf,
    snapshot_path: PathBuf,
    options: StorageOptions,
    /// Held while a file is moved to `snapshot_path`, so a build that finishes
    /// after an install cannot put an older snapshot back.
    snapshot_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for StateMachineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachineStore")
            .field("snapshot", &self.snapshot_path)
            .finish()
    }
}

fn rocks(e: rocksdb::Error) -> io::Error {
    io::Error::other(e.to_string())
}

fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, StorageError> {
    db.cf_handle(name).ok_or_else(|| StorageError::Corrupt {
        what: "column family",
        key: name.as_bytes().to_vec(),
        reason: "missing".into(),
    })
}

/// Temporary files get distinct names, so a build and an install never share one.
static TMP_SEQ: AtomicU64 = AtomicU64::new(1);

/// Where the Raft service writes a snapshot as it arrives: in the data dir, so
/// installing it is a rename.
pub fn incoming_snapshot_path(dir: &Path) -> PathBuf {
    dir.join(format!(
        "snapshot.incoming.{}",
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Reads every record of a snapshot, checking that each decodes and is stored
/// under its own key, and, when `build`, returns the state they make (a check
/// alone keeps one record at a time in memory). Touches no store.
fn read_snapshot(
    input: impl io::Read,
    build: bool,
) -> Result<(SnapshotMetaOf<TypeConfig>, State, RecordDigest, u64), StorageError> {
    let mut reader = SnapshotReader::new(input)?;
    let mut state = State::default();
    let mut digest = RecordDigest::default();
    let mut records = 0u64;
    while let Some(SnapshotRecord {
        cf: cf_name,
        key,
        value,
    }) = reader.next_record()?
    {
        let record: StateRecord = codec::decode_json("state record", &key, &value)?;
        let (expect_cf, expect_key) = keys::state_key(&record.key());
        if expect_cf != cf_name || expect_key != key {
            return Err(StorageError::Corrupt {
                what: "snapshot record",
                key,
                reason: "stored under another key".into(),
            });
        }
        records += 1;
        if !build {
            continue;
        }
        // Re-encoded, as at open, so the digest does not depend on the writer's version.
        let bytes = codec::encode_json("state record", &record)?;
        digest.set(record.key(), Some(&bytes));
        state.insert(record);
    }
    Ok((reader.meta().clone(), state, digest, records))
}

/// Checks the snapshot file at `path` whole: framing, hash, and that every record
/// decodes under its own key, as an install needs. Returns what it covers and its
/// record count. The Raft service runs it on a received file before openraft may
/// install it, so a bad transfer is refused and the current state stays.
pub fn check_snapshot(path: &Path) -> Result<(SnapshotMetaOf<TypeConfig>, u64), StorageError> {
    let (meta, _, _, records) = read_snapshot(std::fs::File::open(path)?, false)?;
    Ok((meta, records))
}

/// Installs the snapshot file at `path` into the store, replacing the state
/// column families, and returns the state it makes. The file is read and checked
/// whole first; then three steps, each atomic: clear and mark "installing"; the
/// records' stored bytes, in batches of a few MiB; the applied position and
/// membership, with the mark removed. A node stopped in between finds the mark
/// when it opens and redoes the install from the file.
fn install_records(
    db: &DB,
    path: &Path,
    meta: &SnapshotMetaOf<TypeConfig>,
) -> Result<(State, RecordDigest, u64), StorageError> {
    const BATCH_BYTES: usize = 4 << 20;
    let (file_meta, state, digest, records) = read_snapshot(std::fs::File::open(path)?, true)?;
    if &file_meta != meta {
        return Err(StorageError::Corrupt {
            what: "snapshot",
            key: b"snapshot".to_vec(),
            reason: format!(
                "the file covers {:?}, the install asked for {:?}",
                file_meta.last_log_id, meta.last_log_id
            ),
        });
    }
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    let meta_cf = cf(db, keys::CF_SM_META)?;
    let mut batch = WriteBatch::default();
    for name in keys::STATE_CFS {
        let handle = cf(db, name)?;
        // State keys are printable names or tagged ids: all sort below 0xff 0xff.
        batch.delete_range_cf(handle, [0u8].as_slice(), [0xffu8; 2].as_slice());
        batch.delete_cf(handle, []);
    }
    batch.put_cf(
        meta_cf,
        keys::SM_INSTALLING,
        codec::encode_bin("snapshot meta", meta)?,
    );
    db.write_opt(batch, &sync)?;

    let mut reader = SnapshotReader::new(std::fs::File::open(path)?)?;
    let mut batch = WriteBatch::default();
    while let Some(record) = reader.next_record()? {
        batch.put_cf(cf(db, record.cf)?, &record.key, &record.value);
        if batch.size_in_bytes() >= BATCH_BYTES {
            db.write(std::mem::take(&mut batch))?;
        }
    }
    batch.put_cf(
        meta_cf,
        keys::SM_LAST_APPLIED,
        codec::encode_bin("last applied", &meta.last_log_id)?,
    );
    batch.put_cf(
        meta_cf,
        keys::SM_MEMBERSHIP,
        codec::encode_bin("membership", &meta.last_membership)?,
    );
    batch.delete_cf(meta_cf, keys::SM_INSTALLING);
    db.write_opt(batch, &sync)?;
    Ok((state, digest, records))
}

/// Reads the state column families and the applied position back into memory.
fn load(db: &DB) -> Result<AppliedState, StorageError> {
    let mut applied = AppliedState::default();
    for name in keys::STATE_CFS {
        let handle = cf(db, name)?;
        for item in db.iterator_cf(handle, IteratorMode::Start) {
            let (key, value) = item?;
            let record: StateRecord = codec::decode_json("state record", &key, &value)?;
            // Re-encoded rather than the stored bytes, so a digest does not
            // depend on which version wrote a record.
            let bytes = codec::encode_json("state record", &record)?;
            applied.digest.set(record.key(), Some(&bytes));
            let (expect_cf, expect_key) = keys::state_key(&record.key());
            if expect_cf != name || expect_key.as_slice() != &*key {
                return Err(StorageError::Corrupt {
                    what: "state record",
                    key: key.to_vec(),
                    reason: "stored under another key".into(),
                });
            }
            applied.state.insert(record);
        }
    }
    let meta = cf(db, keys::CF_SM_META)?;
    if let Some(bytes) = db.get_cf(meta, keys::SM_LAST_APPLIED)? {
        applied.last_applied = codec::decode_bin("last applied", keys::SM_LAST_APPLIED, &bytes)?;
    }
    if let Some(bytes) = db.get_cf(meta, keys::SM_MEMBERSHIP)? {
        applied.membership = codec::decode_bin("membership", keys::SM_MEMBERSHIP, &bytes)?;
    }
    Ok(applied)
}

/// What the snapshot file at `path` covers, if it is one of this format.
fn file_meta(path: &Path) -> io::Result<Option<SnapshotMetaOf<TypeConfig>>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match SnapshotReader::new(file) {
        Ok(reader) => Ok(Some(reader.meta().clone())),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(None),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl StateMachineStore {
    pub(crate) fn new(
        db: Arc<DB>,
        dir: &Path,
        options: StorageOptions,
    ) -> Result<Self, StorageError> {
        let snapshot_path = dir.join("snapshot");
        // Leftovers of transfers and builds that a stop interrupted.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("snapshot.incoming.") || name.starts_with("snapshot.tmp") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let meta_cf = cf(&db, keys::CF_SM_META)?;
        if let Some(bytes) = db.get_cf(meta_cf, keys::SM_INSTALLING)? {
            let meta: SnapshotMetaOf<TypeConfig> =
                codec::decode_bin("snapshot meta", keys::SM_INSTALLING, &bytes)?;
            tracing::warn!(last_log_id = ?meta.last_log_id, "a snapshot install was interrupted; redoing it");
            if !snapshot_path.exists() {
                return Err(StorageError::Io {
                    what: format!(
                        "an interrupted snapshot install needs {}",
                        snapshot_path.display()
                    ),
                    source: io::ErrorKind::NotFound.into(),
                });
            }
            install_records(&db, &snapshot_path, &meta)?;
        }
        let shared = SharedState::default();
        *shared.write() = load(&db)?;
        Ok(StateMachineStore {
            db,
            shared,
            dir: dir.to_path_buf(),
            snapshot_path,
            options,
            snapshot_lock: Arc::default(),
        })
    }

    /// A read handle on the applied state.
    pub fn shared(&self) -> SharedState {
        self.shared.clone()
    }

    fn write_opts(&self) -> WriteOptions {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.options.fsync);
        opts
    }

    fn tmp_path(&self) -> PathBuf {
        self.dir.join(format!(
            "snapshot.tmp.{}",
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Writes a snapshot of the store as it is now, from a RocksDB snapshot: no
    /// lock of the applied state is held, and apply goes on meanwhile.
    fn build_file(&self) -> Result<(SnapshotFile, u64), StorageError> {
        let started = std::time::Instant::now();
        let view = self.db.snapshot();
        let meta_cf = cf(&self.db, keys::CF_SM_META)?;
        let last_log_id = match view.get_cf(meta_cf, keys::SM_LAST_APPLIED)? {
            Some(bytes) => codec::decode_bin("last applied", keys::SM_LAST_APPLIED, &bytes)?,
            None => None,
        };
        let last_membership = match view.get_cf(meta_cf, keys::SM_MEMBERSHIP)? {
            Some(bytes) => codec::decode_bin("membership", keys::SM_MEMBERSHIP, &bytes)?,
            None => Default::default(),
        };
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id,
            last_membership,
        };
        let tmp = self.tmp_path();
        let io_err = |what: &str, e: io::Error| StorageError::Io {
            what: format!("{what} {}", tmp.display()),
            source: e,
        };
        let mut writer = SnapshotWriter::create(&tmp, &meta).map_err(|e| io_err("create", e))?;
        let mut records = 0u64;
        for (index, name) in keys::STATE_CFS.iter().enumerate() {
            let handle = cf(&self.db, name)?;
            for item in view.iterator_cf(handle, IteratorMode::Start) {
                let (key, value) = item?;
                writer
                    .record(index as u8, &key, &value)
                    .map_err(|e| io_err("write", e))?;
                records += 1;
            }
        }
        drop(view);
        writer.finish().map_err(|e| io_err("finish", e))?;
        // Opened before the rename: the handle stays this file whatever replaces the path.
        let mut file = SnapshotFile::open(&tmp).map_err(|e| io_err("open", e))?;
        {
            let _guard = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
            let current = file_meta(&self.snapshot_path).ok().flatten();
            if current.is_none_or(|c| c.last_log_id <= meta.last_log_id) {
                std::fs::rename(&tmp, &self.snapshot_path).map_err(|e| io_err("rename", e))?;
                file.path = self.snapshot_path.clone();
            } else {
                // An install moved the state past this build meanwhile.
                let _ = std::fs::remove_file(&tmp);
            }
        }
        sync_dir(&self.dir).map_err(|e| io_err("sync the directory of", e))?;
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            records,
            bytes = file.len,
            ms = started.elapsed().as_millis() as u64,
            "built snapshot"
        );
        Ok((file, records))
    }

    /// Moves (or, for a file outside the data dir, copies) `snapshot` to
    /// `snapshot_path`, synced, so an interrupted install can be redone from it.
    fn keep_snapshot_file(&self, snapshot: &SnapshotFile) -> io::Result<()> {
        let ours = snapshot.path.parent() == Some(self.dir.as_path())
            && snapshot
                .path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("snapshot.incoming."));
        // A received file is moved; any other (or one whose path is gone: the
        // receiver gave up on the transfer after handing it on) is copied from
        // the open handle to a temporary file first, outside the lock.
        let source = if ours {
            snapshot.path.clone()
        } else {
            let tmp = self.tmp_path();
            let mut out = std::fs::File::create(&tmp)?;
            io::copy(&mut snapshot.reopen()?, &mut out)?;
            out.sync_all()?;
            tmp
        };
        {
            let _guard = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
            match std::fs::rename(&source, &self.snapshot_path) {
                Ok(()) => {}
                Err(e) if ours && e.kind() == io::ErrorKind::NotFound => {
                    drop(_guard);
                    let tmp = self.tmp_path();
                    let mut out = std::fs::File::create(&tmp)?;
                    io::copy(&mut snapshot.reopen()?, &mut out)?;
                    out.sync_all()?;
                    let _guard = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
                    std::fs::rename(&tmp, &self.snapshot_path)?;
                }
                Err(e) => return Err(e),
            }
        }
        sync_dir(&self.dir)
    }
}

impl<RT: AsyncRuntime> RaftSnapshotBuilder<Types<RT>> for StateMachineStore {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
        let this = self.clone();
        let (file, _records) = crate::blocking(self.options, move || {
            this.build_file().map_err(io::Error::from)
        })
        .await?;
        let reader = SnapshotReader::new(file.reopen()?)?;
        Ok(SnapshotOf::<TypeConfig, SnapshotFile> {
            meta: reader.meta().clone(),
            snapshot: file,
        })
    }
}

impl<RT: AsyncRuntime> RaftStateMachine<Types<RT>> for StateMachineStore {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        let applied = self.shared.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<Types<RT>>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut replies = Vec::new();
        let meta_cf = cf(&self.db, keys::CF_SM_META)?;
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let outcome = {
                let mut applied = self.shared.write();
                if let Some(last) = &applied.last_applied {
                    assert!(log_id.index() > last.index(), "apply must move forward");
                }
                let outcome = match &entry.payload {
                    EntryPayload::Blank => Ok(Applied::Nothing),
                    EntryPayload::Normal(command) => {
                        let (outcome, changed) = applied.state.apply_tracked(command);
                        for key in changed {
                            let (cf_name, key_bytes) = keys::state_key(&key);
                            let handle = cf(&self.db, cf_name)?;
                            match applied.state.get(&key) {
                                Some(record) => {
                                    let bytes = codec::encode_json("state record", &record)?;
                                    applied.digest.set(key, Some(&bytes));
                                    batch.put_cf(handle, key_bytes, bytes);
                                }
                                None => {
                                    applied.digest.set(key, None);
                                    batch.delete_cf(handle, key_bytes);
                                }
                            }
                        }
                        outcome
                    }
                    EntryPayload::Membership(membership) => {
                        applied.membership =
                            StoredMembershipOf::<TypeConfig>::new(Some(log_id), membership.clone());
                        batch.put_cf(
                            meta_cf,
                            keys::SM_MEMBERSHIP,
                            codec::encode_bin("membership", &applied.membership)?,
                        );
                        Ok(Applied::Nothing)
                    }
                };
                applied.last_applied = Some(log_id);
                outcome
            };
            if let Some(responder) = responder {
                replies.push((responder, outcome));
            }
        }
        let last = self.shared.read().last_applied;
        batch.put_cf(
            meta_cf,
            keys::SM_LAST_APPLIED,
            codec::encode_bin("last applied", &last)?,
        );
        let db = self.db.clone();
        let opts = self.write_opts();
        crate::blocking(self.options, move || {
            db.write_opt(batch, &opts).map_err(rocks)
        })
        .await?;
        // Reply only once the applied state is durable.
        for (responder, outcome) in replies {
            responder.send(outcome);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let started = std::time::Instant::now();
        let this = self.clone();
        let wanted = meta.clone();
        let (state, digest, records) = crate::blocking(self.options, move || {
            this.keep_snapshot_file(&snapshot)?;
            install_records(&this.db, &this.snapshot_path, &wanted).map_err(io::Error::from)
        })
        .await?;
        let mut applied = self.shared.write();
        applied.state = state;
        applied.digest = digest;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        drop(applied);
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            records,
            ms = started.elapsed().as_millis() as u64,
            "installed snapshot"
        );
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        let file = {
            let _guard = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
            match SnapshotFile::open(&self.snapshot_path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        match SnapshotReader::new(file.reopen()?) {
            Ok(reader) => Ok(Some(SnapshotOf::<TypeConfig, SnapshotFile> {
                meta: reader.meta().clone(),
                snapshot: file,
            })),
            // A file of an older format: openraft builds a new one when it needs it.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(error = %e, "ignoring the snapshot file");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
