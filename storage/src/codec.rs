//! On-disk and wire encodings. Every value starts with a format-version byte, so
//! a newer node can still read what an older one wrote; an unknown byte is
//! corruption.
//!
//! Log entries and Raft metadata use bincode (compact, fast); state records and
//! snapshots use JSON, because shadow documents are JSON values, which bincode
//! cannot decode.
//!
//! Formats:
//! - **1**: the first. Still the format of everything whose shape has not
//!   changed since: Raft metadata, snapshot meta and state records.
//! - **2**: commands grouped by domain (`Command::{Registry, Shadow, ...}`).
//!   Log entries and RPC payloads are written in it. A log entry of format 1 is
//!   still read ([`decode_entry`]) and converted; an RPC of format 1 is refused,
//!   since it comes from a node of an older version (a cluster runs one version).

use fleetcore_model::command::v1::CommandV1;
use openraft::alias::{EntryOf, LogIdOf};
use openraft::{EntryPayload, Membership};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::types::TypeConfig;

/// Format 1: Raft metadata, snapshot meta and state records (unchanged since),
/// and log entries written before format 2.
pub const FORMAT_V1: u8 = 1;
/// Format 2: log entries and RPC payloads, whose commands name their domain.
pub const FORMAT_V2: u8 = 2;

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes with bincode behind format byte 1 (values whose shape format 2 did
/// not change: Raft metadata, snapshot meta).
pub fn encode_bin<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StorageError> {
    encode_bin_as(FORMAT_V1, what, value)
}

/// Decodes what [`encode_bin`] wrote.
pub fn decode_bin<T: DeserializeOwned>(
    what: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StorageError> {
    decode_bin_as(FORMAT_V1, what, key, bytes)
}

/// Encodes with bincode behind the format byte `format`.
pub fn encode_bin_as<T: Serialize>(
    format: u8,
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StorageError> {
    let mut out = vec![format];
    bincode::serde::encode_into_std_write(value, &mut out, bincode_config()).map_err(|e| {
        StorageError::Encode {
            what,
            reason: e.to_string(),
        }
    })?;
    Ok(out)
}

/// Decodes what [`encode_bin_as`] wrote with `format`; any other format byte
/// is refused.
pub fn decode_bin_as<T: DeserializeOwned>(
    format: u8,
    what: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StorageError> {
    let body = body(format, what, key, bytes)?;
    bincode_body(what, key, body)
}

fn bincode_body<T: DeserializeOwned>(
    what: &'static str,
    key: &[u8],
    body: &[u8],
) -> Result<T, StorageError> {
    let (value, read) = bincode::serde::decode_from_slice(body, bincode_config()).map_err(|e| {
        StorageError::Corrupt {
            what,
            key: key.to_vec(),
            reason: e.to_string(),
        }
    })?;
    if read != body.len() {
        return Err(StorageError::Corrupt {
            what,
            key: key.to_vec(),
            reason: format!("{} trailing bytes", body.len() - read),
        });
    }
    Ok(value)
}

/// Encodes as JSON behind the format byte.
pub fn encode_json<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StorageError> {
    let mut out = vec![FORMAT_V1];
    serde_json::to_writer(&mut out, value).map_err(|e| StorageError::Encode {
        what,
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Decodes what [`encode_json`] wrote.
pub fn decode_json<T: DeserializeOwned>(
    what: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StorageError> {
    let body = body(FORMAT_V1, what, key, bytes)?;
    serde_json::from_slice(body).map_err(|e| StorageError::Corrupt {
        what,
        key: key.to_vec(),
        reason: e.to_string(),
    })
}

/// A log entry as format 1 encoded it: openraft's `Entry` (fields in order)
/// around the format-1 command. Field and variant order are the encoding.
#[derive(Deserialize)]
struct EntryV1 {
    log_id: LogIdOf<TypeConfig>,
    payload: PayloadV1,
}

/// openraft's `EntryPayload`, variant for variant, with a format-1 command.
#[derive(Deserialize)]
enum PayloadV1 {
    Blank,
    Normal(CommandV1),
    Membership(Membership<u64, crate::NodeInfo>),
}

/// Encodes a log entry (format 2).
pub fn encode_entry(entry: &EntryOf<TypeConfig>) -> Result<Vec<u8>, StorageError> {
    encode_bin_as(FORMAT_V2, "log entry", entry)
}

/// Decodes a log entry of format 2, or of format 1 (its command converted to
/// its format-2 form, which means the same).
pub fn decode_entry(key: &[u8], bytes: &[u8]) -> Result<EntryOf<TypeConfig>, StorageError> {
    const WHAT: &str = "log entry";
    match bytes.first() {
        Some(&FORMAT_V1) => {
            let old: EntryV1 = bincode_body(WHAT, key, &bytes[1..])?;
            let payload = match old.payload {
                PayloadV1::Blank => EntryPayload::Blank,
                PayloadV1::Normal(command) => EntryPayload::Normal(command.into()),
                PayloadV1::Membership(m) => EntryPayload::Membership(m),
            };
            Ok(EntryOf::<TypeConfig> {
                log_id: old.log_id,
                payload,
            })
        }
        _ => decode_bin_as(FORMAT_V2, WHAT, key, bytes),
    }
}

/// The bytes after the format byte, which must be `format`.
fn body<'a>(
    format: u8,
    what: &'static str,
    key: &[u8],
    bytes: &'a [u8],
) -> Result<&'a [u8], StorageError> {
    let reason = match bytes.split_first() {
        Some((&found, body)) if found == format => return Ok(body),
        Some((&found, _)) if (FORMAT_V1..=FORMAT_V2).contains(&found) => {
            format!("format {found}, where this version reads {what} in format {format}")
        }
        Some((other, _)) => format!("unknown format version {other}"),
        None => "empty value".into(),
    };
    Err(StorageError::Corrupt {
        what,
        key: key.to_vec(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let bytes = encode_bin("x", &(1u64, "a".to_string())).unwrap();
        let back: (u64, String) = decode_bin("x", b"k", &bytes).unwrap();
        assert_eq!(back, (1, "a".into()));
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(matches!(
            decode_bin::<(u64, String)>("x", b"k", &wrong),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(decode_bin::<(u64, String)>("x", b"k", &[]).is_err());
        assert!(decode_bin::<(u64, String)>("x", b"k", &bytes[..2]).is_err());
        assert!(decode_json::<u64>("x", b"k", b"\x01nope").is_err());
    }
}
