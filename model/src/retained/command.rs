//! The retained-message store: its commands, their `apply`, and the queries over it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RetainedMessage;
use crate::command::{Applied, Outcome};
use crate::error::Rejection;
use crate::limits::Quotas;
use crate::state::{Changes, StateKey};

/// A change to retained messages. Variant order is part of format 2: new
/// variants go last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetainedCommand {
    /// Stores (or, with an empty payload, clears) a topic's retained message.
    Set(RetainedMessage),
    /// Removes retained messages that expired (MQTT 5 message expiry) by `at_ms`:
    /// proposed by the leader's sweeper with its clock, so `apply` reads none.
    Expire {
        /// Topics the leader found expired; each is removed only if the stored
        /// message still expires by `at_ms` (a newer one may have replaced it).
        topics: Vec<String>,
        /// The leader's clock, ms since the epoch.
        at_ms: u64,
    },
}

impl RetainedCommand {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RetainedCommand::Set(_) => "set_retained",
            RetainedCommand::Expire { .. } => "expire_retained",
        }
    }
}

impl std::fmt::Display for RetainedCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetainedCommand::Set(m) => write!(f, "{} {}", self.kind(), m.topic),
            RetainedCommand::Expire { topics, .. } => {
                write!(f, "{} ({} topics)", self.kind(), topics.len())
            }
        }
    }
}

/// The retained messages' part of the replicated state, by topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetainedStore {
    pub(crate) messages: BTreeMap<String, RetainedMessage>,
    /// Topic and payload bytes of `messages` (derived; kept for the quota).
    pub(crate) bytes: usize,
}

/// What a retained message counts against the byte quota.
fn size(m: &RetainedMessage) -> usize {
    m.topic.len() + m.payload.len()
}

impl RetainedStore {
    /// Applies one retained command; `changed` collects the keys it wrote.
    pub(crate) fn apply(
        &mut self,
        command: &RetainedCommand,
        quotas: &Quotas,
        changed: &mut Changes,
    ) -> Outcome {
        match command {
            RetainedCommand::Set(message) => {
                message.check()?;
                let old = self.messages.get(&message.topic).map(size);
                if message.payload.is_empty() {
                    self.messages.remove(&message.topic);
                } else {
                    let payload = message.payload.len() as u64;
                    if payload > quotas.retained_payload_bytes {
                        return Err(Rejection::TooLarge {
                            what: "retained payload (quota retainedPayloadBytes)".into(),
                            bytes: message.payload.len(),
                            max: quotas.retained_payload_bytes as usize,
                        });
                    }
                    let bytes = self.bytes - old.unwrap_or(0) + size(message);
                    if old.is_none() && self.messages.len() as u64 >= quotas.retained_messages {
                        return Err(Rejection::LimitExceeded {
                            what: "retained messages in the cluster (quota retainedMessages)"
                                .into(),
                            limit: quotas.retained_messages,
                        });
                    }
                    if bytes as u64 > quotas.retained_bytes {
                        return Err(Rejection::LimitExceeded {
                            what: "bytes of retained messages in the cluster (quota retainedBytes)"
                                .into(),
                            limit: quotas.retained_bytes,
                        });
                    }
                    self.messages.insert(message.topic.clone(), message.clone());
                    self.bytes += size(message);
                }
                self.bytes -= old.unwrap_or(0);
                changed.insert(StateKey::Retained(message.topic.clone()));
                Ok(Applied::Done)
            }
            RetainedCommand::Expire { topics, at_ms } => {
                for topic in topics {
                    let expired = self.messages.get(topic).is_some_and(|m| !m.is_live(*at_ms));
                    if let Some(old) = expired.then(|| self.messages.remove(topic)).flatten() {
                        self.bytes -= size(&old);
                        changed.insert(StateKey::Retained(topic.clone()));
                    }
                }
                Ok(Applied::Done)
            }
        }
    }

    /// Puts a stored message back (loading from disk or a snapshot).
    pub(crate) fn insert(&mut self, message: RetainedMessage) {
        self.bytes += size(&message);
        if let Some(old) = self.messages.insert(message.topic.clone(), message) {
            self.bytes -= size(&old);
        }
    }

    /// Every retained message, in topic order.
    pub fn iter(&self) -> impl Iterator<Item = &RetainedMessage> + '_ {
        self.messages.values()
    }

    /// How many retained messages are stored.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when none is stored.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// How many retained messages are stored, and their topic and payload bytes.
    pub fn usage(&self) -> (usize, usize) {
        (self.messages.len(), self.bytes)
    }

    /// Retained messages whose topic starts with `prefix`, in topic order, after
    /// `after` (exclusive) when given: one page of a scan that drops its lock
    /// between pages.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a RetainedMessage> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        self.messages
            .range::<String, _>((start, Bound::Unbounded))
            .map(|(_, m)| m)
            .take_while(move |m| m.topic.starts_with(prefix))
    }

    /// Topics whose retained message expired by `now_ms` among the next `scan`
    /// after `after` (exclusive), and where to go on (`None`: the end was reached).
    pub fn expired(
        &self,
        now_ms: u64,
        after: Option<&str>,
        scan: usize,
    ) -> (Vec<String>, Option<String>) {
        let (mut expired, mut last, mut scanned) = (Vec::new(), None, 0);
        for m in self.with_prefix("", after).take(scan) {
            scanned += 1;
            last = Some(m.topic.clone());
            if !m.is_live(now_ms) {
                expired.push(m.topic.clone());
            }
        }
        (expired, last.filter(|_| scanned == scan))
    }
}
