//! The Raft log in RocksDB. Appends are durable before openraft hears they are done:
//! a flusher thread syncs the WAL once for every batch of pending appends (group
//! commit), so many small appends share one fsync.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::Arc;

use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{AsyncRuntime, LogState, OptionalSend, RaftLogReader};
use rocksdb::{IteratorMode, WriteBatch, DB};

use crate::codec;
use crate::error::StorageError;
use crate::keys;
use crate::types::{TypeConfig, Types};
use crate::StorageOptions;

/// Completes one append once the WAL is synced (an openraft `IOFlushed`, boxed so the
/// flusher thread does not depend on the runtime type).
type Callback = Box<dyn FnOnce(io::Result<()>) + Send>;

/// The log store. Cheap to clone; clones share the database and the flusher.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    options: StorageOptions,
    flusher: mpsc::Sender<Callback>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("options", &self.options)
            .finish()
    }
}

fn rocks(e: rocksdb::Error) -> io::Error {
    io::Error::other(e.to_string())
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>, options: StorageOptions) -> Result<Self, StorageError> {
        let (tx, rx) = mpsc::channel::<Callback>();
        // Weak, so dropping the stores closes the database at once (a reopen in the
        // same process, e.g. a simulated restart, must not find it still locked).
        let flush_db = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("fleetcore-wal-sync".into())
            .spawn(move || flush_loop(flush_db, rx))
            .map_err(|e| StorageError::Io {
                what: "start the WAL sync thread".into(),
                source: e,
            })?;
        Ok(LogStore {
            db,
            options,
            flusher: tx,
        })
    }

    fn cf(&self, name: &str) -> io::Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| io::Error::other(format!("column family {name} missing")))
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        let cf = self.cf(keys::CF_RAFT_META)?;
        match self.db.get_cf(cf, key).map_err(rocks)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(codec::decode_bin("raft metadata", key, &bytes)?)),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> io::Result<()> {
        let cf = self.cf(keys::CF_RAFT_META)?;
        let bytes = codec::encode_bin("raft metadata", value)?;
        self.db.put_cf(cf, key, bytes).map_err(rocks)
    }

    fn sync(&self) -> io::Result<()> {
        if self.options.fsync {
            self.db.flush_wal(true).map_err(rocks)?;
        }
        Ok(())
    }

    /// The cluster id this data belongs to, if one was recorded.
    pub fn cluster_id(&self) -> Result<Option<String>, StorageError> {
        self.get_meta(keys::META_CLUSTER_ID)
            .map_err(|e| StorageError::Io {
                what: "read cluster id".into(),
                source: e,
            })
    }

    /// Records the cluster id (durably).
    pub fn set_cluster_id(&self, id: &str) -> Result<(), StorageError> {
        let io = |e| StorageError::Io {
            what: "write cluster id".into(),
            source: e,
        };
        self.put_meta(keys::META_CLUSTER_ID, &id.to_string())
            .map_err(io)?;
        self.db.flush_wal(true).map_err(StorageError::Rocks)
    }

    /// The node id this data belongs to, if one was recorded.
    pub fn node_id(&self) -> Result<Option<u64>, StorageError> {
        self.get_meta(keys::META_NODE_ID)
            .map_err(|e| StorageError::Io {
                what: "read node id".into(),
                source: e,
            })
    }

    /// Records the node id (durably).
    pub fn set_node_id(&self, id: u64) -> Result<(), StorageError> {
        self.put_meta(keys::META_NODE_ID, &id)
            .map_err(|e| StorageError::Io {
                what: "write node id".into(),
                source: e,
            })?;
        self.db.flush_wal(true).map_err(StorageError::Rocks)
    }

    /// This data dir's incarnation: a random number drawn when it first opened,
    /// so a wiped or restored data dir is told apart from the one the cluster
    /// knows under the same node id.
    pub fn incarnation(&self) -> Result<Option<u64>, StorageError> {
        self.get_meta(keys::META_INCARNATION)
            .map_err(|e| StorageError::Io {
                what: "read incarnation".into(),
                source: e,
            })
    }

    /// Records the incarnation (durably).
    pub fn set_incarnation(&self, incarnation: u64) -> Result<(), StorageError> {
        self.put_meta(keys::META_INCARNATION, &incarnation)
            .map_err(|e| StorageError::Io {
                what: "write incarnation".into(),
                source: e,
            })?;
        self.db.flush_wal(true).map_err(StorageError::Rocks)
    }

    /// Whether the log holds anything at all (a pristine node has no vote and no entries).
    pub fn is_pristine(&self) -> Result<bool, StorageError> {
        let cf = self
            .db
            .cf_handle(keys::CF_LOG)
            .ok_or_else(|| StorageError::Corrupt {
                what: "column family",
                key: keys::CF_LOG.as_bytes().to_vec(),
                reason: "missing".into(),
            })?;
        let has_entry = self
            .db
            .iterator_cf(cf, IteratorMode::Start)
            .next()
            .is_some();
        let vote: Option<VoteOf<TypeConfig>> =
            self.get_meta(keys::META_VOTE)
                .map_err(|e| StorageError::Io {
                    what: "read vote".into(),
                    source: e,
                })?;
        Ok(!has_entry && vote.is_none())
    }
}

/// Group commit: take every pending callback, sync once, complete them all.
fn flush_loop(db: std::sync::Weak<DB>, rx: mpsc::Receiver<Callback>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = match db.upgrade() {
            Some(db) => db.flush_wal(true),
            None => return,
        };
        for callback in batch {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::other(e.to_string())),
            };
            callback(r);
        }
    }
}

impl<RT: AsyncRuntime> RaftLogReader<Types<RT>> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = self.cf(keys::CF_LOG)?;
        let from = keys::log_key(start);
        let mut entries = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&from, rocksdb::Direction::Forward))
        {
            let (key, value) = item.map_err(rocks)?;
            let index = keys::log_index(&key).ok_or_else(|| {
                io::Error::from(StorageError::Corrupt {
                    what: "log key",
                    key: key.to_vec(),
                    reason: "not 8 bytes".into(),
                })
            })?;
            if !range.contains(&index) {
                break;
            }
            let entry: EntryOf<TypeConfig> = codec::decode_entry(&key, &value)?;
            if entry.index() != index {
                return Err(StorageError::Corrupt {
                    what: "log entry",
                    key: key.to_vec(),
                    reason: format!("holds index {}", entry.index()),
                }
                .into());
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.get_meta(keys::META_VOTE)
    }
}

impl<RT: AsyncRuntime> RaftLogStorage<Types<RT>> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<Types<RT>>, io::Error> {
        let cf = self.cf(keys::CF_LOG)?;
        let last = match self.db.iterator_cf(cf, IteratorMode::End).next() {
            None => None,
            Some(item) => {
                let (key, value) = item.map_err(rocks)?;
                let entry: EntryOf<TypeConfig> = codec::decode_entry(&key, &value)?;
                Some(entry.log_id())
            }
        };
        let last_purged: Option<LogIdOf<TypeConfig>> = self.get_meta(keys::META_LAST_PURGED)?;
        let last_log_id = last.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.put_meta(keys::META_VOTE, vote)?;
        // A vote must be on disk before it is granted, or a restart could vote twice.
        let this = self.clone();
        crate::blocking(self.options, move || this.sync()).await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<Types<RT>>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
    {
        let cf = self.cf(keys::CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            let value = codec::encode_entry(&entry)?;
            batch.put_cf(cf, keys::log_key(entry.index()), value);
        }
        // Written here (readable when we return), made durable by the flusher thread.
        self.db.write(batch).map_err(rocks)?;
        if !self.options.fsync {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        let callback: Callback = Box::new(move |r| callback.io_completed(r));
        if let Err(mpsc::SendError(callback)) = self.flusher.send(callback) {
            callback(Err(io::Error::other("WAL sync thread stopped")));
        }
        Ok(())
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index() + 1);
        let cf = self.cf(keys::CF_LOG)?;
        self.db
            .delete_range_cf(cf, keys::log_key(from), keys::log_key(u64::MAX))
            .map_err(rocks)?;
        // The entry at u64::MAX is outside the deleted range; it never exists in practice.
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        // Record the purge point first: entries at or before it are ignored from then on.
        self.put_meta(keys::META_LAST_PURGED, &log_id)?;
        let cf = self.cf(keys::CF_LOG)?;
        self.db
            .delete_range_cf(cf, keys::log_key(0), keys::log_key(log_id.index() + 1))
            .map_err(rocks)?;
        Ok(())
    }
}
