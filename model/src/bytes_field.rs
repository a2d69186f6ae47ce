//! Serde for binary fields (retained payloads, correlation data): base64 text in
//! human-readable formats (the JSON state records and snapshots), plain bytes in
//! binary ones (bincode log entries, unchanged). Records written before this
//! stored JSON arrays of numbers; those still read.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `#[serde(with = "bytes_field")]` on a `Vec<u8>`.
pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&B64.encode(bytes))
    } else {
        // What `Vec<u8>` wrote before, so log entries keep their encoding.
        bytes.serialize(s)
    }
}

/// `#[serde(with = "bytes_field")]` on a `Vec<u8>`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    if d.is_human_readable() {
        d.deserialize_any(BytesVisitor)
    } else {
        Vec::<u8>::deserialize(d)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("base64 text or an array of bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        B64.decode(v)
            .map_err(|e| E::custom(format!("bad base64: {e}")))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// The same for an `Option<Vec<u8>>`.
pub mod option {
    use super::*;

    /// `#[serde(with = "bytes_field::option")]`.
    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => s.serialize_some(&Wrapped(b)),
            None => s.serialize_none(),
        }
    }

    /// `#[serde(with = "bytes_field::option")]`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<Owned>::deserialize(d)?.map(|o| o.0))
    }

    struct Wrapped<'a>(&'a [u8]);

    impl Serialize for Wrapped<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::serialize(self.0, s)
        }
    }

    struct Owned(Vec<u8>);

    impl<'de> Deserialize<'de> for Owned {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::deserialize(d).map(Owned)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        #[serde(with = "super")]
        payload: Vec<u8>,
        #[serde(with = "super::option")]
        data: Option<Vec<u8>>,
    }

    #[test]
    fn json_is_base64_and_old_number_arrays_still_read() {
        let r = Record {
            payload: vec![0, 1, 2, 255],
            data: Some(b"hi".to_vec()),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"payload":"AAEC/w==","data":"aGk="}"#);
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
        let old = r#"{"payload":[0,1,2,255],"data":[104,105]}"#;
        assert_eq!(serde_json::from_str::<Record>(old).unwrap(), r);
        let none = serde_json::from_str::<Record>(r#"{"payload":"","data":null}"#).unwrap();
        assert_eq!((none.payload.len(), none.data), (0, None));
        assert!(serde_json::from_str::<Record>(r#"{"payload":"%%","data":null}"#).is_err());
        assert!(serde_json::from_str::<Record>(r#"{"payload":[256],"data":null}"#).is_err());
    }
}
