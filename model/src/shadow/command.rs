//! The shadow store: its commands, their `apply`, and the queries over it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ShadowKey, ShadowRecord, ShadowUpdateRequest};
use crate::command::{Applied, Outcome};
use crate::error::Rejection;
use crate::limits::{self, Quotas};
use crate::state::{Changes, StateKey};

/// A change to device shadows. Variant order is part of format 2: new variants
/// go last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShadowCommand {
    /// AWS UpdateThingShadow / `.../shadow/update`.
    Update {
        /// Which shadow.
        key: ShadowKey,
        /// The request body, JSON text, as the client sent it.
        request: String,
        /// Proposer's clock, ms since the epoch.
        at_ms: u64,
    },
    /// AWS DeleteThingShadow / `.../shadow/delete`.
    Delete {
        /// Which shadow.
        key: ShadowKey,
        /// Refuse unless the shadow is at this version.
        expected_version: Option<u64>,
        /// Echoed back.
        client_token: Option<String>,
        /// Proposer's clock, ms since the epoch.
        at_ms: u64,
    },
    /// Removes shadow tombstones older than `limits::SHADOW_TOMBSTONE_MS` at
    /// `at_ms`: proposed by the leader's sweeper with its clock.
    ForgetTombstones {
        /// Tombstones the leader found old enough; each is removed only if it is
        /// still a tombstone deleted by `at_ms - SHADOW_TOMBSTONE_MS`.
        keys: Vec<ShadowKey>,
        /// The leader's clock, ms since the epoch.
        at_ms: u64,
    },
}

impl ShadowCommand {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ShadowCommand::Update { .. } => "update_shadow",
            ShadowCommand::Delete { .. } => "delete_shadow",
            ShadowCommand::ForgetTombstones { .. } => "forget_shadow_tombstones",
        }
    }
}

impl std::fmt::Display for ShadowCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShadowCommand::Update { key, .. } | ShadowCommand::Delete { key, .. } => {
                write!(f, "{} {}/{}", self.kind(), key.thing, key.name)
            }
            ShadowCommand::ForgetTombstones { keys, .. } => {
                write!(f, "{} ({} shadows)", self.kind(), keys.len())
            }
        }
    }
}

/// The shadows' part of the replicated state: every shadow by key, tombstones
/// (deleted shadows that keep their version) included.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shadows {
    pub(crate) shadows: BTreeMap<ShadowKey, ShadowRecord>,
}

/// A tombstone deleted at least `SHADOW_TOMBSTONE_MS` before `at_ms`.
fn tombstone_expired(record: &ShadowRecord, at_ms: u64) -> bool {
    record.document.is_none()
        && record
            .deleted_at_ms
            .is_some_and(|d| d.saturating_add(limits::SHADOW_TOMBSTONE_MS) <= at_ms)
}

/// Shadow documents carry seconds.
fn seconds(at_ms: u64) -> u64 {
    at_ms / 1000
}

impl Shadows {
    /// Applies one shadow command; `changed` collects the keys it wrote.
    pub(crate) fn apply(
        &mut self,
        command: &ShadowCommand,
        quotas: &Quotas,
        changed: &mut Changes,
    ) -> Outcome {
        match command {
            ShadowCommand::Update {
                key,
                request,
                at_ms,
            } => {
                let request = ShadowUpdateRequest::parse(request.as_bytes())?;
                let existing = self.shadows.get(key);
                if !key.name.is_empty() && existing.is_none_or(|r| r.document.is_none()) {
                    key.check()?;
                    let named = self.named_shadows(&key.thing).len() as u64;
                    let quota = quotas.named_shadows_per_thing;
                    if named >= quota {
                        return Err(Rejection::LimitExceeded {
                            what: format!(
                                "named shadows of thing '{}' (quota namedShadowsPerThing)",
                                key.thing
                            ),
                            limit: quota,
                        });
                    }
                }
                let mut record = existing.cloned().unwrap_or_default();
                let max_state = quotas.shadow_state_bytes as usize;
                let updated = record.update(key, &request, seconds(*at_ms), max_state)?;
                record.deleted_at_ms = None;
                self.shadows.insert(key.clone(), record);
                changed.insert(StateKey::Shadow(key.clone()));
                Ok(Applied::ShadowUpdated(updated))
            }
            ShadowCommand::Delete {
                key,
                expected_version,
                client_token,
                at_ms,
            } => {
                let Some(record) = self.shadows.get_mut(key) else {
                    key.check()?;
                    return Err(Rejection::NotFound {
                        what: format!("shadow '{}' of thing '{}'", key.name, key.thing),
                    });
                };
                let body = record.delete(
                    key,
                    *expected_version,
                    client_token.as_deref(),
                    seconds(*at_ms),
                )?;
                record.deleted_at_ms = Some(*at_ms);
                changed.insert(StateKey::Shadow(key.clone()));
                Ok(Applied::ShadowDeleted(body))
            }
            ShadowCommand::ForgetTombstones { keys, at_ms } => {
                for key in keys {
                    let old_enough = self
                        .shadows
                        .get(key)
                        .is_some_and(|r| tombstone_expired(r, *at_ms));
                    if old_enough {
                        self.shadows.remove(key);
                        changed.insert(StateKey::Shadow(key.clone()));
                    }
                }
                Ok(Applied::Done)
            }
        }
    }

    /// A shadow record (a tombstone counts as present but has no document).
    pub fn get(&self, key: &ShadowKey) -> Option<&ShadowRecord> {
        self.shadows.get(key)
    }

    /// True when no shadow (not even a tombstone) is stored.
    pub fn is_empty(&self) -> bool {
        self.shadows.is_empty()
    }

    /// Names of the thing's named shadows that currently exist, in order.
    pub fn named_shadows(&self, thing: &str) -> Vec<String> {
        let start = ShadowKey::named(thing, "");
        self.shadows
            .range(start..)
            .take_while(|(k, _)| k.thing == thing)
            .filter(|(k, r)| !k.name.is_empty() && r.document.is_some())
            .map(|(k, _)| k.name.clone())
            .collect()
    }

    /// ListNamedShadowsForThing: up to `limit` names of `thing`'s live named
    /// shadows after `after`, in name order, and the name to go on from.
    pub fn named_shadows_page(
        &self,
        thing: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<String>, Option<String>) {
        let start = ShadowKey::named(thing, after.unwrap_or(""));
        let mut names: Vec<String> = self
            .shadows
            .range(start..)
            .take_while(|(k, _)| k.thing == thing)
            .filter(|(k, r)| {
                !k.name.is_empty()
                    && r.document.is_some()
                    && after.is_none_or(|a| k.name.as_str() > a)
            })
            .map(|(k, _)| k.name.clone())
            .take(limit.saturating_add(1))
            .collect();
        if names.len() > limit {
            names.truncate(limit);
            let next = names.last().cloned();
            (names, next)
        } else {
            (names, None)
        }
    }

    /// Shadow tombstones old enough to forget at `now_ms`, among the `scan`
    /// shadows after `after` (exclusive), and where the next page starts: the
    /// leader's sweep reads a page at a time under the lock.
    pub fn stale_tombstones(
        &self,
        now_ms: u64,
        after: Option<&ShadowKey>,
        scan: usize,
    ) -> (Vec<ShadowKey>, Option<ShadowKey>) {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.clone()));
        let (mut stale, mut last, mut scanned) = (Vec::new(), None, 0);
        for (key, record) in self.shadows.range((start, Bound::Unbounded)).take(scan) {
            scanned += 1;
            last = Some(key.clone());
            if tombstone_expired(record, now_ms) {
                stale.push(key.clone());
            }
        }
        (stale, last.filter(|_| scanned == scan))
    }
}
