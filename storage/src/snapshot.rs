//! The snapshot file: what a node keeps of its state for a follower that is too
//! far behind, and what travels to it, byte for byte.
//!
//! A file is written and read one record at a time, so neither building, sending
//! nor installing one holds the whole state in memory a second time:
//!
//! ```text
//! magic "FCSNAP2\n"
//! u32 meta length, meta (bincode, format byte first)
//! frames: u8 column family (index into keys::STATE_CFS), u32 key length, key,
//!         u32 value length, value (the record's stored bytes, as RocksDB holds them)
//! end:    u8 0xff, u64 frame count, SHA-256 of every byte before it
//! ```
//!
//! Lengths are little-endian. The hash makes a cut or corrupted transfer fail
//! [`check`] before anything is installed.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use openraft::alias::SnapshotMetaOf;
use sha2::{Digest, Sha256};

use crate::codec;
use crate::keys;
use crate::types::TypeConfig;

/// The first bytes of every snapshot file of this format.
pub const MAGIC: &[u8; 8] = b"FCSNAP2\n";
const END: u8 = 0xff;
/// Bounds that a length field read from a file must respect before anything is
/// allocated for it (a corrupt length must not ask for gigabytes).
const META_BYTES_MAX: u32 = 16 << 20;
const KEY_BYTES_MAX: u32 = 64 << 10;
const VALUE_BYTES_MAX: u32 = 64 << 20;

/// A snapshot as openraft passes it around: an open file (so a newer snapshot
/// renamed over the path does not change what is being sent) and where it is.
#[derive(Debug)]
pub struct SnapshotFile {
    /// The open file, positioned anywhere: readers seek from the start.
    pub file: File,
    /// Its path when it was opened.
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: u64,
}

impl SnapshotFile {
    /// Opens the snapshot at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(SnapshotFile {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// A second handle on the same file, read from the start.
    pub fn reopen(&self) -> io::Result<File> {
        let mut file = self.file.try_clone()?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(0))?;
        Ok(file)
    }
}

fn invalid(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

/// Writes a snapshot file record by record, hashing as it goes.
pub struct SnapshotWriter {
    out: BufWriter<File>,
    hash: Sha256,
    count: u64,
    bytes: u64,
}

impl SnapshotWriter {
    /// Creates `path` (replacing it) and writes the header for `meta`.
    pub fn create(path: &Path, meta: &SnapshotMetaOf<TypeConfig>) -> io::Result<Self> {
        let file = File::create(path)?;
        let mut w = SnapshotWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            count: 0,
            bytes: 0,
        };
        let meta = codec::encode_bin("snapshot meta", meta)?;
        w.put(MAGIC)?;
        w.put(&(meta.len() as u32).to_le_bytes())?;
        w.put(&meta)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// Appends one record of column family `cf` (an index into `keys::STATE_CFS`).
    pub fn record(&mut self, cf: u8, key: &[u8], value: &[u8]) -> io::Result<()> {
        if usize::from(cf) >= keys::STATE_CFS.len()
            || key.len() > KEY_BYTES_MAX as usize
            || value.len() > VALUE_BYTES_MAX as usize
        {
            return Err(invalid(format!(
                "record of {} key and {} value bytes in column family {cf} does not fit a snapshot",
                key.len(),
                value.len()
            )));
        }
        self.put(&[cf])?;
        self.put(&(key.len() as u32).to_le_bytes())?;
        self.put(key)?;
        self.put(&(value.len() as u32).to_le_bytes())?;
        self.put(value)?;
        self.count += 1;
        Ok(())
    }

    /// Writes the end marker and hash, and syncs the file. Returns its length.
    pub fn finish(mut self) -> io::Result<u64> {
        self.put(&[END])?;
        let count = self.count.to_le_bytes();
        self.put(&count)?;
        let hash = self.hash.clone().finalize();
        self.out.write_all(&hash)?;
        self.bytes += hash.len() as u64;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.bytes)
    }
}

/// Reads a snapshot file record by record; the hash is checked when the end
/// marker is reached, so a caller that must not act on a corrupt file runs
/// [`check`] first.
pub struct SnapshotReader<R: Read> {
    input: BufReader<R>,
    hash: Sha256,
    meta: SnapshotMetaOf<TypeConfig>,
    count: u64,
    done: bool,
}

/// One record of a snapshot: its column family's name, key and stored value.
pub struct SnapshotRecord {
    /// The column family (one of `keys::STATE_CFS`).
    pub cf: &'static str,
    /// The key as stored.
    pub key: Vec<u8>,
    /// The value as stored.
    pub value: Vec<u8>,
}

impl<R: Read> SnapshotReader<R> {
    /// Reads the header.
    pub fn new(input: R) -> io::Result<Self> {
        let mut r = SnapshotReader {
            input: BufReader::with_capacity(1 << 20, input),
            hash: Sha256::new(),
            meta: SnapshotMetaOf::<TypeConfig>::default(),
            count: 0,
            done: false,
        };
        let magic = r.take(MAGIC.len() as u32, MAGIC.len() as u32, "magic")?;
        if magic.as_slice() != MAGIC {
            return Err(invalid("not a snapshot file of this format"));
        }
        let len = r.u32()?;
        let meta = r.take(len, META_BYTES_MAX, "meta")?;
        r.meta = codec::decode_bin("snapshot meta", b"snapshot", &meta)?;
        Ok(r)
    }

    /// What the snapshot covers.
    pub fn meta(&self) -> &SnapshotMetaOf<TypeConfig> {
        &self.meta
    }

    fn exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                invalid("snapshot file is cut short")
            } else {
                e
            }
        })?;
        self.hash.update(&*buf);
        Ok(())
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn take(&mut self, len: u32, max: u32, what: &str) -> io::Result<Vec<u8>> {
        if len > max {
            return Err(invalid(format!(
                "snapshot {what} of {len} bytes exceeds {max}"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        self.exact(&mut buf)?;
        Ok(buf)
    }

    /// The next record, or `None` after the last one (once the count and hash
    /// have been checked).
    pub fn next_record(&mut self) -> io::Result<Option<SnapshotRecord>> {
        if self.done {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.exact(&mut tag)?;
        if tag[0] == END {
            let mut count = [0u8; 8];
            self.exact(&mut count)?;
            if u64::from_le_bytes(count) != self.count {
                return Err(invalid("snapshot record count does not match"));
            }
            let expected: [u8; 32] = self.hash.clone().finalize().into();
            let mut stored = [0u8; 32];
            self.input
                .read_exact(&mut stored)
                .map_err(|_| invalid("snapshot file is cut short"))?;
            if stored != expected {
                return Err(invalid("snapshot checksum does not match"));
            }
            let mut rest = [0u8; 1];
            if self.input.read(&mut rest)? != 0 {
                return Err(invalid("bytes after the end of the snapshot"));
            }
            self.done = true;
            return Ok(None);
        }
        let cf = keys::STATE_CFS
            .get(usize::from(tag[0]))
            .copied()
            .ok_or_else(|| invalid(format!("unknown column family {} in snapshot", tag[0])))?;
        let len = self.u32()?;
        let key = self.take(len, KEY_BYTES_MAX, "key")?;
        let len = self.u32()?;
        let value = self.take(len, VALUE_BYTES_MAX, "value")?;
        self.count += 1;
        Ok(Some(SnapshotRecord { cf, key, value }))
    }
}

/// Reads the whole file at `path`, checking its framing, count and hash; returns
/// what it covers and its number of records.
pub fn check(path: &Path) -> io::Result<(SnapshotMetaOf<TypeConfig>, u64)> {
    let mut reader = SnapshotReader::new(File::open(path)?)?;
    let mut records = 0;
    while reader.next_record()?.is_some() {
        records += 1;
    }
    Ok((reader.meta.clone(), records))
}

/// The index of column family `name` in `keys::STATE_CFS`.
pub fn cf_index(name: &str) -> Option<u8> {
    keys::STATE_CFS
        .iter()
        .position(|n| *n == name)
        .and_then(|i| u8::try_from(i).ok())
}
