//! The whole replicated state and the pure `apply`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{Applied, Command, Outcome};
use crate::error::Rejection;
use crate::registry::{self, Thing, ThingQuery};
use crate::shadow::{ShadowKey, ShadowRecord, ShadowUpdateRequest};

/// The replicated state. `BTreeMap`s, so iteration order is the same on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    things: BTreeMap<String, Thing>,
    shadows: BTreeMap<ShadowKey, ShadowRecord>,
}

/// The address of one stored record; storage keeps one row per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKey {
    /// A thing, by name.
    Thing(String),
    /// A shadow record.
    Shadow(ShadowKey),
}

/// One stored record, as persisted and as carried in snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateRecord {
    /// A thing.
    Thing(Thing),
    /// A shadow (possibly a tombstone that keeps the version).
    Shadow(ShadowKey, ShadowRecord),
}

impl StateRecord {
    /// The key this record is stored under.
    pub fn key(&self) -> StateKey {
        match self {
            StateRecord::Thing(t) => StateKey::Thing(t.name.clone()),
            StateRecord::Shadow(k, _) => StateKey::Shadow(k.clone()),
        }
    }
}

impl Command {
    /// The one key this command may change. Storage writes exactly this row after `apply`.
    pub fn key(&self) -> StateKey {
        match self {
            Command::CreateThing { name, .. }
            | Command::UpdateThing { name, .. }
            | Command::DeleteThing { name, .. } => StateKey::Thing(name.clone()),
            Command::UpdateShadow { key, .. } | Command::DeleteShadow { key, .. } => {
                StateKey::Shadow(key.clone())
            }
        }
    }
}

fn seconds(at_ms: u64) -> u64 {
    at_ms / 1000
}

impl State {
    /// Applies one command. Same state and same command give the same outcome and the
    /// same next state on every replica: this reads nothing but `self` and `command`.
    /// A rejected command leaves the state unchanged.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        match command {
            Command::CreateThing {
                name,
                thing_type_name,
                attributes,
                thing_id,
                at_ms,
            } => {
                let thing = registry::create(
                    self.things.get(name),
                    name,
                    thing_type_name.as_deref(),
                    attributes,
                    thing_id,
                    *at_ms,
                )?;
                self.things.insert(name.clone(), thing.clone());
                Ok(Applied::Thing(thing))
            }
            Command::UpdateThing {
                name,
                attributes,
                thing_type_name,
                remove_thing_type,
                expected_version,
            } => {
                let thing = registry::update(
                    self.things.get(name),
                    name,
                    attributes.as_ref(),
                    thing_type_name.as_deref(),
                    *remove_thing_type,
                    *expected_version,
                )?;
                self.things.insert(name.clone(), thing.clone());
                Ok(Applied::Thing(thing))
            }
            Command::DeleteThing {
                name,
                expected_version,
            } => {
                let existed = registry::delete(self.things.get(name), *expected_version)?;
                self.things.remove(name);
                Ok(Applied::ThingDeleted { existed })
            }
            Command::UpdateShadow {
                key,
                request,
                at_ms,
            } => {
                let request = ShadowUpdateRequest::parse(request.as_bytes())?;
                let mut record = self.shadows.get(key).cloned().unwrap_or_default();
                let updated = record.update(key, &request, seconds(*at_ms))?;
                self.shadows.insert(key.clone(), record);
                Ok(Applied::ShadowUpdated(updated))
            }
            Command::DeleteShadow {
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
                Ok(Applied::ShadowDeleted(body))
            }
        }
    }

    /// The stored record at `key`, if any.
    pub fn get(&self, key: &StateKey) -> Option<StateRecord> {
        match key {
            StateKey::Thing(name) => self.things.get(name).cloned().map(StateRecord::Thing),
            StateKey::Shadow(k) => self
                .shadows
                .get(k)
                .cloned()
                .map(|r| StateRecord::Shadow(k.clone(), r)),
        }
    }

    /// Puts a record back (loading from disk or a snapshot).
    pub fn insert(&mut self, record: StateRecord) {
        match record {
            StateRecord::Thing(t) => {
                self.things.insert(t.name.clone(), t);
            }
            StateRecord::Shadow(k, r) => {
                self.shadows.insert(k, r);
            }
        }
    }

    /// Every record, in key order (things first, then shadows).
    pub fn records(&self) -> impl Iterator<Item = StateRecord> + '_ {
        let things = self.things.values().cloned().map(StateRecord::Thing);
        let shadows = self
            .shadows
            .iter()
            .map(|(k, r)| StateRecord::Shadow(k.clone(), r.clone()));
        things.chain(shadows)
    }

    /// A thing by name.
    pub fn thing(&self, name: &str) -> Option<&Thing> {
        self.things.get(name)
    }

    /// A shadow record (a tombstone counts as present but has no document).
    pub fn shadow(&self, key: &ShadowKey) -> Option<&ShadowRecord> {
        self.shadows.get(key)
    }

    /// One page of things after `after` (exclusive), in name order, with the name to
    /// continue from when more remain.
    pub fn list_things(
        &self,
        query: &ThingQuery,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Thing>, Option<String>) {
        use std::ops::Bound;
        let start = match after {
            Some(a) => Bound::Excluded(a.to_string()),
            None => Bound::Unbounded,
        };
        let mut page = Vec::new();
        for thing in self
            .things
            .range::<String, _>((start, Bound::Unbounded))
            .map(|(_, t)| t)
            .filter(|t| query.matches(t))
        {
            if page.len() == limit {
                let next = page.last().map(|t: &Thing| t.name.clone());
                return (page, next);
            }
            page.push(thing.clone());
        }
        (page, None)
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

    /// Number of things and shadow records.
    pub fn len(&self) -> (usize, usize) {
        (self.things.len(), self.shadows.len())
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.things.is_empty() && self.shadows.is_empty()
    }
}
