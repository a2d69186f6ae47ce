//! Exactly-once writes: the replicated table of recent request ids.
//!
//! Every write a node proposes carries a [`RequestId`]: the proposing process's
//! `origin` (a random number drawn when the node starts) and a sequence number it
//! counts up. A forward whose reply was lost (the leader died or was cut off after
//! committing) is retried with the same id; `apply` finds the id in this table and
//! answers with the first result instead of applying the command again. So a retry
//! is always safe, and a shadow's version never jumps by two for one request.
//!
//! The table is bounded: it keeps the last [`REQUEST_TABLE_ENTRIES`] requests in
//! apply order. An evicted request's origin remembers the highest sequence number
//! evicted; a request of that origin at or below it that is not in the table is
//! refused ([`Rejection::RequestExpired`]) rather than applied a second time. A
//! request is retried only within one proposal's deadline (seconds), so eviction
//! of a live request needs [`REQUEST_TABLE_ENTRIES`] other writes in that time.
//! Origins are bounded too ([`REQUEST_ORIGINS_MAX`], least recently used leave
//! first): one origin is one start of one node process.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::Outcome;
use crate::error::Rejection;

/// Requests remembered with their results (apply order, oldest leave first).
pub const REQUEST_TABLE_ENTRIES: usize = 20_000;
/// Proposing processes whose evicted-sequence watermark is remembered.
pub const REQUEST_ORIGINS_MAX: usize = 4_096;

/// Who proposed a write and which of its writes it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    /// The proposing process (drawn at random when a node starts).
    pub origin: u64,
    /// Counts up within the origin.
    pub seq: u64,
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}-{}", self.origin, self.seq)
    }
}

/// A remembered request: its place in apply order and its first result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Position in apply order (eviction order).
    pub order: u64,
    /// The first result, as JSON text (outcomes carry JSON documents).
    pub outcome: String,
}

/// What is remembered of an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OriginRecord {
    /// Highest sequence number evicted from the table, if any was.
    pub evicted_up_to: Option<u64>,
    /// Apply order of its latest request (least recently used origins leave first).
    pub last_order: u64,
}

/// The table itself, part of [`crate::State`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestTable {
    pub(crate) entries: BTreeMap<RequestId, RequestRecord>,
    pub(crate) by_order: BTreeMap<u64, RequestId>,
    pub(crate) origins: BTreeMap<u64, OriginRecord>,
    pub(crate) origin_by_order: BTreeMap<u64, u64>,
}

/// What the table says about a request before it applies.
pub(crate) enum Seen {
    /// Applied before: this was its result.
    Before(Outcome),
    /// Never seen: apply it.
    New,
}

impl RequestTable {
    fn next_order(&self) -> u64 {
        let last_entry = self.by_order.keys().next_back().copied();
        let last_origin = self.origin_by_order.keys().next_back().copied();
        last_entry.max(last_origin).map_or(0, |o| o + 1)
    }

    /// Looks `id` up: its first result, new, or refused as too old to tell.
    pub(crate) fn lookup(&self, id: RequestId) -> Result<Seen, Rejection> {
        if let Some(record) = self.entries.get(&id) {
            return serde_json::from_str(&record.outcome)
                .map(Seen::Before)
                .map_err(|e| Rejection::invalid(format!("stored result of request {id}: {e}")));
        }
        match self.origins.get(&id.origin) {
            Some(o) if o.evicted_up_to.is_some_and(|up_to| id.seq <= up_to) => {
                Err(Rejection::RequestExpired {
                    request: id.to_string(),
                })
            }
            _ => Ok(Seen::New),
        }
    }

    /// Remembers `id` with `outcome`; returns every request and origin whose record
    /// changed (added, or evicted to keep the bounds).
    pub(crate) fn remember(
        &mut self,
        id: RequestId,
        outcome: &Outcome,
    ) -> (Vec<RequestId>, Vec<u64>) {
        let order = self.next_order();
        let outcome = serde_json::to_string(outcome).unwrap_or_else(|e| {
            // Outcomes are plain data; a failure here would be a bug, so keep a
            // result that says what happened rather than lose the id.
            serde_json::to_string(&Outcome::Err(Rejection::invalid(format!(
                "result of request {id} could not be stored: {e}"
            ))))
            .unwrap_or_default()
        });
        let mut requests = vec![id];
        let mut origins = vec![id.origin];
        self.entries.insert(id, RequestRecord { order, outcome });
        self.by_order.insert(order, id);
        match self.origins.get_mut(&id.origin) {
            Some(origin) => {
                self.origin_by_order.remove(&origin.last_order);
                origin.last_order = order;
            }
            None => {
                let origin = OriginRecord {
                    evicted_up_to: None,
                    last_order: order,
                };
                self.origins.insert(id.origin, origin);
            }
        }
        self.origin_by_order.insert(order, id.origin);
        while self.entries.len() > REQUEST_TABLE_ENTRIES {
            let Some((_, old)) = self.by_order.pop_first() else {
                break;
            };
            self.entries.remove(&old);
            requests.push(old);
            if let Some(o) = self.origins.get_mut(&old.origin) {
                o.evicted_up_to = Some(o.evicted_up_to.map_or(old.seq, |up_to| up_to.max(old.seq)));
                origins.push(old.origin);
            }
        }
        while self.origins.len() > REQUEST_ORIGINS_MAX {
            let Some((_, old)) = self.origin_by_order.pop_first() else {
                break;
            };
            self.origins.remove(&old);
            origins.push(old);
        }
        (requests, origins)
    }

    /// Puts a stored request back (loading).
    pub(crate) fn insert_request(&mut self, id: RequestId, record: RequestRecord) {
        self.by_order.insert(record.order, id);
        self.entries.insert(id, record);
    }

    /// Puts a stored origin back (loading).
    pub(crate) fn insert_origin(&mut self, origin: u64, record: OriginRecord) {
        self.origin_by_order.insert(record.last_order, origin);
        self.origins.insert(origin, record);
    }

    /// Requests remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no request is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
