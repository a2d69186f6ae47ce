//! On-disk encodings. Every value starts with a format-version byte, so a newer
//! node can still read what an older one wrote; an unknown byte is corruption.
//!
//! Log entries and Raft metadata use bincode (compact, fast); state records and
//! snapshots use JSON, because shadow documents are JSON values, which bincode
//! cannot decode.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StorageError;

/// The only format this version writes.
pub const FORMAT_V1: u8 = 1;

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes with bincode behind the format byte.
pub fn encode_bin<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StorageError> {
    let mut out = vec![FORMAT_V1];
    bincode::serde::encode_into_std_write(value, &mut out, bincode_config()).map_err(|e| {
        StorageError::Encode {
            what,
            reason: e.to_string(),
        }
    })?;
    Ok(out)
}

/// Decodes what [`encode_bin`] wrote.
pub fn decode_bin<T: DeserializeOwned>(
    what: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StorageError> {
    let body = body(what, key, bytes)?;
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
    let body = body(what, key, bytes)?;
    serde_json::from_slice(body).map_err(|e| StorageError::Corrupt {
        what,
        key: key.to_vec(),
        reason: e.to_string(),
    })
}

fn body<'a>(what: &'static str, key: &[u8], bytes: &'a [u8]) -> Result<&'a [u8], StorageError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => Ok(body),
        Some((other, _)) => Err(StorageError::Corrupt {
            what,
            key: key.to_vec(),
            reason: format!("unknown format version {other}"),
        }),
        None => Err(StorageError::Corrupt {
            what,
            key: key.to_vec(),
            reason: "empty value".into(),
        }),
    }
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
