//! Retained MQTT messages: the last retained message of each topic, replicated so
//! that every node serves it to late subscribers. MQTT 3.1.1 §3.3.1.3: a retained
//! publish with an empty payload clears the topic's retained message.

use serde::{Deserialize, Serialize};

use crate::error::Rejection;

mod command;
pub use command::{RetainedCommand, RetainedStore};

/// Longest topic of a retained message (MQTT's string limit).
pub const TOPIC_BYTES_MAX: usize = 65_535;
/// Largest retained payload (the broker's packet limit bounds it further).
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024;

/// One retained message, with the MQTT 5 properties it was published with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainedMessage {
    /// Topic name.
    pub topic: String,
    /// Payload; empty clears the topic. Base64 in JSON records.
    #[serde(with = "crate::bytes_field")]
    pub payload: Vec<u8>,
    /// QoS it was published with.
    pub qos: u8,
    /// MQTT 5 payload format indicator.
    pub payload_format: Option<u8>,
    /// MQTT 5 content type.
    pub content_type: Option<String>,
    /// MQTT 5 response topic.
    pub response_topic: Option<String>,
    /// MQTT 5 correlation data. Base64 in JSON records.
    #[serde(with = "crate::bytes_field::option")]
    pub correlation_data: Option<Vec<u8>>,
    /// MQTT 5 user properties.
    pub user: Vec<(String, String)>,
    /// When it was stored (stamped by the proposer).
    pub stored_at_ms: u64,
    /// When it expires (MQTT 5 message expiry), if ever.
    pub expires_at_ms: Option<u64>,
}

impl RetainedMessage {
    /// Checks what `apply` relies on.
    pub fn check(&self) -> Result<(), Rejection> {
        if self.topic.is_empty() || self.topic.len() > TOPIC_BYTES_MAX {
            return Err(Rejection::invalid(
                "retained topic must be 1 to 65535 bytes",
            ));
        }
        if self.topic.contains(['+', '#', '\0']) {
            return Err(Rejection::invalid(
                "retained topic may not contain wildcards",
            ));
        }
        if self.payload.len() > PAYLOAD_BYTES_MAX {
            return Err(Rejection::invalid(format!(
                "retained payload is larger than {PAYLOAD_BYTES_MAX} bytes"
            )));
        }
        if self.qos > 2 {
            return Err(Rejection::invalid("qos must be 0, 1 or 2"));
        }
        Ok(())
    }

    /// Still valid at `now_ms`?
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, State, StateKey};

    fn set(m: RetainedMessage) -> Command {
        RetainedCommand::Set(m).into()
    }

    fn msg(topic: &str, payload: &[u8]) -> RetainedMessage {
        RetainedMessage {
            topic: topic.into(),
            payload: payload.to_vec(),
            qos: 1,
            payload_format: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user: Vec::new(),
            stored_at_ms: 10,
            expires_at_ms: Some(20),
        }
    }

    #[test]
    fn set_replace_clear_and_refuse() {
        let mut state = State::default();
        let (out, changed) = state.apply_tracked(&set(msg("a/b", b"1")));
        assert!(out.is_ok());
        assert!(changed.contains(&StateKey::Retained("a/b".into())));
        state.apply(&set(msg("a/b", b"2"))).unwrap();
        let all: Vec<_> = state.retained().iter().map(|m| m.payload.clone()).collect();
        assert_eq!(all, vec![b"2".to_vec()]);
        state.apply(&set(msg("a/b", b""))).unwrap();
        assert_eq!(state.retained().len(), 0);
        let (out, changed) = state.apply_tracked(&set(msg("a/#", b"x")));
        assert!(out.is_err());
        assert!(changed.is_empty());
        assert!(msg("t", b"x").is_live(19));
        assert!(!msg("t", b"x").is_live(20));
    }
}
