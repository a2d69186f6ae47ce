//! Storage errors: operating errors of one node, never replicated.

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB could not open the data directory.
    #[error("cannot open the database in {dir}: {source}")]
    Open {
        /// The data directory.
        dir: String,
        /// RocksDB's reason.
        source: rocksdb::Error,
    },
    /// A RocksDB read or write failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored value cannot be decoded: the data directory is corrupt or was written
    /// by an incompatible version.
    #[error("corrupt {what} at key {key:02x?}: {reason}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Its key.
        key: Vec<u8>,
        /// Why it could not be decoded.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being written.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// File I/O (snapshots) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl From<std::io::Error> for StorageError {
    fn from(source: std::io::Error) -> Self {
        StorageError::Io {
            what: "snapshot file".into(),
            source,
        }
    }
}

impl From<StorageError> for std::io::Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Io { source, .. } => source,
            StorageError::Corrupt { .. } => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
            }
            other => std::io::Error::other(other.to_string()),
        }
    }
}
