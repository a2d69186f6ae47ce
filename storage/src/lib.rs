//! `fleetcore-storage`: Fleetcore's durable state on one node, in one RocksDB.
//!
//! Owns: the openraft log store ([`LogStore`]), the state-machine store
//! ([`StateMachineStore`]) that applies [`fleetcore_model::Command`]s and persists
//! the result in the same `WriteBatch` as `last_applied`, snapshots, the on-disk
//! encodings (each value starts with a format-version byte), and the openraft type
//! configuration ([`TypeConfig`]), which both stores are written against.
//! Uses: openraft, rocksdb, bincode (log entries), serde_json (state records), model.
//! Must not depend on: tonic, axum, the network, a clock.
//!
//! Start at [`open`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod error;
pub mod keys;
pub mod log_store;
pub mod snapshot;
pub mod state_machine;
pub mod types;

use std::path::Path;
use std::sync::Arc;

pub use error::StorageError;
pub use log_store::LogStore;
pub use snapshot::SnapshotFile;
pub use state_machine::{SharedState, StateMachineStore};
pub use types::{NodeInfo, TypeConfig, Types};

/// How the stores write.
#[derive(Debug, Clone, Copy)]
pub struct StorageOptions {
    /// fsync the WAL before a log append, vote or apply is reported done. On by default;
    /// without it a power loss (not a process crash) can lose acknowledged writes.
    pub fsync: bool,
    /// Run RocksDB writes and syncs on the calling task instead of a blocking thread.
    /// Off in production (a write must not stall the runtime); on in deterministic
    /// simulations, where a blocking thread would finish at a real-time moment that
    /// the simulated clock does not control, and a seed would not replay exactly.
    pub inline_io: bool,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            fsync: true,
            inline_io: false,
        }
    }
}

/// Runs blocking store work `f` as `options` say: on a blocking thread, or inline.
pub async fn blocking<T: Send + 'static>(
    options: StorageOptions,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    if options.inline_io {
        f()
    } else {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Opens (or creates) the node's database in `dir` and returns the two stores that
/// share it. Refuses a directory whose data it cannot read, saying what is wrong.
pub fn open(
    dir: &Path,
    options: StorageOptions,
) -> Result<(LogStore, StateMachineStore), StorageError> {
    std::fs::create_dir_all(dir).map_err(|e| StorageError::Io {
        what: format!("create data dir {}", dir.display()),
        source: e,
    })?;
    let mut db_opts = rocksdb::Options::default();
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    let cfs = keys::ALL_CFS
        .iter()
        .map(|name| rocksdb::ColumnFamilyDescriptor::new(*name, rocksdb::Options::default()));
    let db = rocksdb::DB::open_cf_descriptors(&db_opts, dir.join("db"), cfs).map_err(|e| {
        StorageError::Open {
            dir: dir.display().to_string(),
            source: e,
        }
    })?;
    let db = Arc::new(db);
    let log = LogStore::new(db.clone(), options)?;
    let sm = StateMachineStore::new(db, dir, options)?;
    Ok((log, sm))
}
