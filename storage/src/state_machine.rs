//! The state machine: applies committed commands to the in-memory
//! [`fleetcore_model::State`] and persists every changed record together with
//! `last_applied` and the membership in one `WriteBatch`, so a crash never leaves
//! them apart. On open, the state is loaded back from the column families.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use futures::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{AsyncRuntime, EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use fleetcore_model::{Applied, State, StateKey, StateRecord};

use crate::codec;
use crate::error::StorageError;
use crate::keys;
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

    /// The digest of every record (see [`RecordDigest`]): equal on replicas that
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

/// What a snapshot file and a snapshot transfer hold.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    meta: SnapshotMetaOf<TypeConfig>,
    records: Vec<StateRecord>,
}

/// The state-machine store. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    shared: SharedState,
    snapshot_path: PathBuf,
    options: StorageOptions,
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

fn cf<'a>(db: &'a DB, name: &str) -> io::Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| io::Error::other(format!("column family {name} missing")))
}

impl StateMachineStore {
    pub(crate) fn new(
        db: Arc<DB>,
        snapshot_path: PathBuf,
        options: StorageOptions,
    ) -> Result<Self, StorageError> {
        let shared = SharedState::default();
        {
            let mut applied = shared.write();
            for name in keys::STATE_CFS {
                let handle = db.cf_handle(name).ok_or_else(|| StorageError::Corrupt {
                    what: "column family",
                    key: name.as_bytes().to_vec(),
                    reason: "missing".into(),
                })?;
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
            let meta = db
                .cf_handle(keys::CF_SM_META)
                .ok_or_else(|| StorageError::Corrupt {
                    what: "column family",
                    key: keys::CF_SM_META.as_bytes().to_vec(),
                    reason: "missing".into(),
                })?;
            if let Some(bytes) = db.get_cf(meta, keys::SM_LAST_APPLIED)? {
                applied.last_applied =
                    codec::decode_bin("last applied", keys::SM_LAST_APPLIED, &bytes)?;
            }
            if let Some(bytes) = db.get_cf(meta, keys::SM_MEMBERSHIP)? {
                applied.membership = codec::decode_bin("membership", keys::SM_MEMBERSHIP, &bytes)?;
            }
        }
        Ok(StateMachineStore {
            db,
            shared,
            snapshot_path,
            options,
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

    fn write_snapshot_file(&self, body: &SnapshotBody) -> io::Result<Vec<u8>> {
        let bytes = codec::encode_json("snapshot", body)?;
        let tmp = self.snapshot_path.with_extension("tmp");
        std::fs::write(&tmp, &bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.snapshot_path)?;
        Ok(bytes)
    }
}

impl<RT: AsyncRuntime> RaftSnapshotBuilder<Types<RT>> for StateMachineStore {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, Vec<u8>>, io::Error> {
        let body = {
            let applied = self.shared.read();
            SnapshotBody {
                meta: SnapshotMetaOf::<TypeConfig> {
                    last_log_id: applied.last_applied,
                    last_membership: applied.membership.clone(),
                },
                records: applied.state.records().collect(),
            }
        };
        let this = self.clone();
        let (meta, bytes) = crate::blocking(self.options, move || {
            let bytes = this.write_snapshot_file(&body)?;
            Ok((body.meta, bytes))
        })
        .await?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes = bytes.len(), "built snapshot");
        Ok(SnapshotOf::<TypeConfig, Vec<u8>> {
            meta,
            snapshot: bytes,
        })
    }
}

impl<RT: AsyncRuntime> RaftStateMachine<Types<RT>> for StateMachineStore {
    type SnapshotData = Vec<u8>;
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
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let body: SnapshotBody = codec::decode_json("snapshot", b"install", &snapshot)?;
        let mut state = State::default();
        let mut digest = RecordDigest::default();
        let mut batch = WriteBatch::default();
        for name in keys::STATE_CFS {
            let handle = cf(&self.db, name)?;
            // State keys are names of printable ASCII, all below 0xff.
            batch.delete_range_cf(handle, [0u8].as_slice(), [0xffu8; 2].as_slice());
            batch.delete_cf(handle, []);
        }
        for record in &body.records {
            let (cf_name, key) = keys::state_key(&record.key());
            let bytes = codec::encode_json("state record", record)?;
            digest.set(record.key(), Some(&bytes));
            batch.put_cf(cf(&self.db, cf_name)?, key, bytes);
            state.insert(record.clone());
        }
        let meta_cf = cf(&self.db, keys::CF_SM_META)?;
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
        let db = self.db.clone();
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let this = self.clone();
        let file_body = SnapshotBody {
            meta: meta.clone(),
            records: body.records,
        };
        crate::blocking(self.options, move || {
            db.write_opt(batch, &opts).map_err(rocks)?;
            this.write_snapshot_file(&file_body).map(|_| ())
        })
        .await?;
        let mut applied = self.shared.write();
        applied.state = state;
        applied.digest = digest;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        tracing::info!(last_log_id = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>, io::Error> {
        let bytes = match std::fs::read(&self.snapshot_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let body: SnapshotBody = codec::decode_json("snapshot file", b"snapshot", &bytes)?;
        Ok(Some(SnapshotOf::<TypeConfig, Vec<u8>> {
            meta: body.meta,
            snapshot: bytes,
        }))
    }
}
