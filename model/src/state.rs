//! The whole replicated state and the pure `apply`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::command::{Applied, Command, Outcome};
use crate::error::Rejection;
use crate::limits;
use crate::registry::{self, Thing, ThingQuery};
use crate::request::{OriginRecord, RequestId, RequestRecord, RequestTable, Seen};
use crate::retained::RetainedMessage;
use crate::shadow::{ShadowKey, ShadowRecord, ShadowUpdateRequest};
use crate::thing_group::{self, ThingGroup, GROUPS_PER_THING_MAX};
use crate::thing_type::{self, ThingType};

/// The replicated state. `BTreeMap`s, so iteration order is the same on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    things: BTreeMap<String, Thing>,
    shadows: BTreeMap<ShadowKey, ShadowRecord>,
    thing_types: BTreeMap<String, ThingType>,
    thing_groups: BTreeMap<String, ThingGroup>,
    retained: BTreeMap<String, RetainedMessage>,
    /// Topic and payload bytes of `retained` (derived; kept for the quota).
    retained_bytes: usize,
    requests: RequestTable,
    /// Each member's data-dir incarnation, as recorded.
    incarnations: BTreeMap<u64, u64>,
    /// The quotas in force; `None` until set: the defaults.
    quotas: Option<limits::Quotas>,
}

/// The address of one stored record; storage keeps one row per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKey {
    /// A thing, by name.
    Thing(String),
    /// A shadow record.
    Shadow(ShadowKey),
    /// A thing type, by name.
    ThingType(String),
    /// A thing group, by name.
    ThingGroup(String),
    /// A retained message, by topic.
    Retained(String),
    /// A remembered request (exactly-once table).
    Request(RequestId),
    /// What the exactly-once table remembers of an origin.
    RequestOrigin(u64),
    /// A member's recorded incarnation.
    Incarnation(u64),
    /// The quotas, once set.
    Quotas,
}

/// One stored record, as persisted and as carried in snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateRecord {
    /// A thing.
    Thing(Thing),
    /// A shadow (possibly a tombstone that keeps the version).
    Shadow(ShadowKey, ShadowRecord),
    /// A thing type.
    ThingType(ThingType),
    /// A thing group.
    ThingGroup(ThingGroup),
    /// A retained message.
    Retained(RetainedMessage),
    /// A remembered request and its first result.
    Request(RequestId, RequestRecord),
    /// An origin of requests.
    RequestOrigin(u64, OriginRecord),
    /// A member (node id) and its recorded incarnation.
    Incarnation(u64, u64),
    /// The quotas set for the cluster.
    Quotas(limits::Quotas),
}

impl StateRecord {
    /// The key this record is stored under.
    pub fn key(&self) -> StateKey {
        match self {
            StateRecord::Thing(t) => StateKey::Thing(t.name.clone()),
            StateRecord::Shadow(k, _) => StateKey::Shadow(k.clone()),
            StateRecord::ThingType(t) => StateKey::ThingType(t.name.clone()),
            StateRecord::ThingGroup(g) => StateKey::ThingGroup(g.name.clone()),
            StateRecord::Retained(m) => StateKey::Retained(m.topic.clone()),
            StateRecord::Request(id, _) => StateKey::Request(*id),
            StateRecord::RequestOrigin(origin, _) => StateKey::RequestOrigin(*origin),
            StateRecord::Incarnation(node, _) => StateKey::Incarnation(*node),
            StateRecord::Quotas(_) => StateKey::Quotas,
        }
    }
}

/// What a retained message counts against the byte quota.
fn retained_size(m: &RetainedMessage) -> usize {
    m.topic.len() + m.payload.len()
}

/// A tombstone deleted at least `SHADOW_TOMBSTONE_MS` before `at_ms`.
fn tombstone_expired(record: &ShadowRecord, at_ms: u64) -> bool {
    record.document.is_none()
        && record
            .deleted_at_ms
            .is_some_and(|d| d.saturating_add(limits::SHADOW_TOMBSTONE_MS) <= at_ms)
}

fn seconds(at_ms: u64) -> u64 {
    at_ms / 1000
}

impl State {
    /// Applies one command. Same state and same command give the same outcome and the
    /// same next state on every replica: this reads nothing but `self` and `command`.
    /// A rejected command leaves the state unchanged.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        self.apply_tracked(command).0
    }

    /// [`State::apply`], also returning every key whose record may have changed, so
    /// storage writes exactly those rows (empty when the command was rejected).
    pub fn apply_tracked(&mut self, command: &Command) -> (Outcome, BTreeSet<StateKey>) {
        let Command::Request { id, command } = command else {
            return self.apply_once(command);
        };
        if matches!(**command, Command::Request { .. }) {
            let refused = Err(Rejection::invalid(format!(
                "request {id} wraps another request"
            )));
            return (refused, BTreeSet::new());
        }
        match self.requests.lookup(*id) {
            Ok(Seen::Before(first)) => (first, BTreeSet::new()),
            Err(refused) => (Err(refused), BTreeSet::new()),
            Ok(Seen::New) => {
                let (outcome, mut changed) = self.apply_once(command);
                // A refusal is remembered too: a retry must get the same answer,
                // not one judged against the state the first attempt left.
                let (requests, origins) = self.requests.remember(*id, &outcome);
                changed.extend(requests.into_iter().map(StateKey::Request));
                changed.extend(origins.into_iter().map(StateKey::RequestOrigin));
                (outcome, changed)
            }
        }
    }

    fn apply_once(&mut self, command: &Command) -> (Outcome, BTreeSet<StateKey>) {
        let mut changed = BTreeSet::new();
        let outcome = self.apply_inner(command, &mut changed);
        if outcome.is_err() {
            changed.clear();
        }
        (outcome, changed)
    }

    /// The exactly-once table.
    pub fn requests(&self) -> &RequestTable {
        &self.requests
    }

    /// The quotas in force.
    pub fn quotas(&self) -> limits::Quotas {
        self.quotas.unwrap_or_default()
    }

    /// The incarnation recorded for member `node`, if any.
    pub fn incarnation(&self, node: u64) -> Option<u64> {
        self.incarnations.get(&node).copied()
    }

    fn check_thing_type_usable(&self, name: Option<&str>) -> Result<(), Rejection> {
        let Some(name) = name else { return Ok(()) };
        match self.thing_types.get(name) {
            None => Err(thing_type::not_found(name)),
            Some(t) if t.deprecated => Err(Rejection::invalid(format!(
                "thing type '{name}' is deprecated and takes no new things"
            ))),
            Some(_) => Ok(()),
        }
    }

    fn group_depth(&self, name: &str) -> usize {
        let mut depth = 0;
        let mut cursor = Some(name);
        while let Some(n) = cursor {
            depth += 1;
            cursor = self.thing_groups.get(n).and_then(|g| g.parent.as_deref());
            assert!(
                depth <= thing_group::GROUP_DEPTH_MAX + 1,
                "group tree has a cycle"
            );
        }
        depth
    }

    fn apply_inner(&mut self, command: &Command, changed: &mut BTreeSet<StateKey>) -> Outcome {
        match command {
            Command::CreateThing {
                name,
                thing_type_name,
                attributes,
                thing_id,
                at_ms,
            } => {
                if !self.things.contains_key(name) {
                    self.check_thing_type_usable(thing_type_name.as_deref())?;
                    let quota = self.quotas().things;
                    if self.things.len() as u64 >= quota {
                        return Err(Rejection::LimitExceeded {
                            what: "things in the cluster (quota things)".into(),
                            limit: quota,
                        });
                    }
                }
                let thing = registry::create(
                    self.things.get(name),
                    name,
                    thing_type_name.as_deref(),
                    attributes,
                    thing_id,
                    *at_ms,
                )?;
                self.things.insert(name.clone(), thing.clone());
                changed.insert(StateKey::Thing(name.clone()));
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
                if let Some(t) = thing_type_name {
                    self.check_thing_type_usable(Some(t))?;
                }
                self.things.insert(name.clone(), thing.clone());
                changed.insert(StateKey::Thing(name.clone()));
                Ok(Applied::Thing(thing))
            }
            Command::DeleteThing {
                name,
                expected_version,
            } => {
                let existed = registry::delete(self.things.get(name), *expected_version)?;
                self.things.remove(name);
                changed.insert(StateKey::Thing(name.clone()));
                // A deleted thing leaves every group it was in.
                for group in self.thing_groups.values_mut() {
                    if group.things.remove(name) {
                        changed.insert(StateKey::ThingGroup(group.name.clone()));
                    }
                }
                Ok(Applied::ThingDeleted { existed })
            }
            Command::UpdateShadow {
                key,
                request,
                at_ms,
            } => {
                let request = ShadowUpdateRequest::parse(request.as_bytes())?;
                let existing = self.shadows.get(key);
                if !key.name.is_empty() && existing.is_none_or(|r| r.document.is_none()) {
                    key.check()?;
                    let named = self.named_shadows(&key.thing).len() as u64;
                    let quota = self.quotas().named_shadows_per_thing;
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
                let max_state = self.quotas().shadow_state_bytes as usize;
                let updated = record.update(key, &request, seconds(*at_ms), max_state)?;
                record.deleted_at_ms = None;
                self.shadows.insert(key.clone(), record);
                changed.insert(StateKey::Shadow(key.clone()));
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
                record.deleted_at_ms = Some(*at_ms);
                changed.insert(StateKey::Shadow(key.clone()));
                Ok(Applied::ShadowDeleted(body))
            }
            Command::CreateThingType {
                name,
                description,
                searchable_attributes,
                thing_type_id,
                at_ms,
            } => {
                let t = thing_type::create(
                    self.thing_types.get(name),
                    name,
                    description.as_deref(),
                    searchable_attributes,
                    thing_type_id,
                    *at_ms,
                )?;
                self.thing_types.insert(name.clone(), t.clone());
                changed.insert(StateKey::ThingType(name.clone()));
                Ok(Applied::ThingType(t))
            }
            Command::DeprecateThingType { name, undo, at_ms } => {
                let t = self
                    .thing_types
                    .get_mut(name)
                    .ok_or_else(|| thing_type::not_found(name))?;
                t.deprecated = !undo;
                t.deprecated_at_ms = (!undo).then_some(*at_ms);
                let t = t.clone();
                changed.insert(StateKey::ThingType(name.clone()));
                Ok(Applied::ThingType(t))
            }
            Command::DeleteThingType { name } => {
                let t = self
                    .thing_types
                    .get(name)
                    .ok_or_else(|| thing_type::not_found(name))?;
                if !t.deprecated {
                    return Err(Rejection::invalid(format!(
                        "thing type '{name}' must be deprecated before it is deleted"
                    )));
                }
                if let Some(thing) = self
                    .things
                    .values()
                    .find(|th| th.thing_type_name.as_deref() == Some(name.as_str()))
                {
                    return Err(Rejection::invalid(format!(
                        "thing type '{name}' is still used by thing '{}'",
                        thing.name
                    )));
                }
                self.thing_types.remove(name);
                changed.insert(StateKey::ThingType(name.clone()));
                Ok(Applied::Done)
            }
            Command::CreateThingGroup {
                name,
                parent,
                description,
                attributes,
                thing_group_id,
                at_ms,
            } => {
                if let Some(old) = self.thing_groups.get(name) {
                    if &old.parent == parent
                        && &old.description == description
                        && &old.attributes == attributes
                    {
                        return Ok(Applied::ThingGroup(old.clone()));
                    }
                    return Err(Rejection::AlreadyExists {
                        what: format!("thing group '{name}' with a different configuration"),
                    });
                }
                let quota = self.quotas().thing_groups;
                if self.thing_groups.len() as u64 >= quota {
                    return Err(Rejection::LimitExceeded {
                        what: "thing groups in the cluster (quota thingGroups)".into(),
                        limit: quota,
                    });
                }
                let parent_depth = match parent {
                    Some(p) if !self.thing_groups.contains_key(p) => {
                        return Err(thing_group::not_found(p))
                    }
                    Some(p) => Some(self.group_depth(p)),
                    None => None,
                };
                thing_group::check_new(name, attributes, parent_depth)?;
                let group = ThingGroup {
                    name: name.clone(),
                    thing_group_id: thing_group_id.clone(),
                    parent: parent.clone(),
                    description: description.clone(),
                    attributes: attributes.clone(),
                    version: 1,
                    created_at_ms: *at_ms,
                    things: BTreeSet::new(),
                };
                self.thing_groups.insert(name.clone(), group.clone());
                changed.insert(StateKey::ThingGroup(name.clone()));
                Ok(Applied::ThingGroup(group))
            }
            Command::UpdateThingGroup {
                name,
                description,
                attributes,
                expected_version,
            } => {
                let old = self
                    .thing_groups
                    .get(name)
                    .ok_or_else(|| thing_group::not_found(name))?;
                Rejection::check_version(*expected_version, old.version)?;
                let mut group = old.clone();
                if let Some(d) = description {
                    group.description = Some(d.clone());
                }
                if let Some(update) = attributes {
                    group.attributes = registry::updated_attributes(&group.attributes, update);
                    registry::check_attributes(&group.attributes)?;
                }
                group.version += 1;
                self.thing_groups.insert(name.clone(), group.clone());
                changed.insert(StateKey::ThingGroup(name.clone()));
                Ok(Applied::ThingGroup(group))
            }
            Command::DeleteThingGroup {
                name,
                expected_version,
            } => {
                let Some(old) = self.thing_groups.get(name) else {
                    // As in AWS, deleting a group that does not exist succeeds.
                    return Ok(Applied::Done);
                };
                Rejection::check_version(*expected_version, old.version)?;
                if let Some(child) = self
                    .thing_groups
                    .values()
                    .find(|g| g.parent.as_deref() == Some(name.as_str()))
                {
                    return Err(Rejection::invalid(format!(
                        "thing group '{name}' has child group '{}'; delete it first",
                        child.name
                    )));
                }
                self.thing_groups.remove(name);
                changed.insert(StateKey::ThingGroup(name.clone()));
                Ok(Applied::Done)
            }
            Command::AddThingToThingGroup { group, thing } => {
                if !self.things.contains_key(thing) {
                    return Err(Rejection::NotFound {
                        what: format!("thing '{thing}'"),
                    });
                }
                let in_groups = self
                    .thing_groups
                    .values()
                    .filter(|g| g.things.contains(thing))
                    .count();
                let g = self
                    .thing_groups
                    .get_mut(group)
                    .ok_or_else(|| thing_group::not_found(group))?;
                if !g.things.contains(thing) && in_groups >= GROUPS_PER_THING_MAX {
                    return Err(Rejection::invalid(format!(
                        "thing '{thing}' is already in {GROUPS_PER_THING_MAX} groups, the most allowed"
                    )));
                }
                g.things.insert(thing.clone());
                changed.insert(StateKey::ThingGroup(group.clone()));
                Ok(Applied::Done)
            }
            Command::RemoveThingFromThingGroup { group, thing } => {
                let g = self
                    .thing_groups
                    .get_mut(group)
                    .ok_or_else(|| thing_group::not_found(group))?;
                g.things.remove(thing);
                changed.insert(StateKey::ThingGroup(group.clone()));
                Ok(Applied::Done)
            }
            Command::SetRetained(message) => {
                message.check()?;
                let old = self.retained.get(&message.topic).map(retained_size);
                if message.payload.is_empty() {
                    self.retained.remove(&message.topic);
                } else {
                    let quotas = self.quotas();
                    let size = message.payload.len() as u64;
                    if size > quotas.retained_payload_bytes {
                        return Err(Rejection::TooLarge {
                            what: "retained payload (quota retainedPayloadBytes)".into(),
                            bytes: message.payload.len(),
                            max: quotas.retained_payload_bytes as usize,
                        });
                    }
                    let bytes = self.retained_bytes - old.unwrap_or(0) + retained_size(message);
                    if old.is_none() && self.retained.len() as u64 >= quotas.retained_messages {
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
                    self.retained.insert(message.topic.clone(), message.clone());
                    self.retained_bytes += retained_size(message);
                }
                self.retained_bytes -= old.unwrap_or(0);
                changed.insert(StateKey::Retained(message.topic.clone()));
                Ok(Applied::Done)
            }
            Command::RecordIncarnation {
                node,
                incarnation,
                replace,
            } => {
                match self.incarnations.get(node) {
                    Some(recorded) if recorded != incarnation && !replace => {
                        return Err(Rejection::invalid(format!(
                            "node {node}'s data dir is not the one this cluster knows (incarnation {incarnation:016x}, recorded {recorded:016x}): it was wiped or restored from a backup"
                        )))
                    }
                    Some(recorded) if recorded == incarnation => return Ok(Applied::Done),
                    _ => {}
                }
                self.incarnations.insert(*node, *incarnation);
                changed.insert(StateKey::Incarnation(*node));
                Ok(Applied::Done)
            }
            Command::ExpireRetained { topics, at_ms } => {
                for topic in topics {
                    let expired = self.retained.get(topic).is_some_and(|m| !m.is_live(*at_ms));
                    if let Some(old) = expired.then(|| self.retained.remove(topic)).flatten() {
                        self.retained_bytes -= retained_size(&old);
                        changed.insert(StateKey::Retained(topic.clone()));
                    }
                }
                Ok(Applied::Done)
            }
            Command::ForgetShadowTombstones { keys, at_ms } => {
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
            Command::SetQuotas(quotas) => {
                quotas.check()?;
                self.quotas = Some(*quotas);
                changed.insert(StateKey::Quotas);
                Ok(Applied::Done)
            }
            // Unwrapped in `apply_tracked`; one nested in another is refused there.
            Command::Request { id, .. } => Err(Rejection::invalid(format!(
                "request {id} wraps another request"
            ))),
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
            StateKey::ThingType(name) => self
                .thing_types
                .get(name)
                .cloned()
                .map(StateRecord::ThingType),
            StateKey::ThingGroup(name) => self
                .thing_groups
                .get(name)
                .cloned()
                .map(StateRecord::ThingGroup),
            StateKey::Retained(topic) => {
                self.retained.get(topic).cloned().map(StateRecord::Retained)
            }
            StateKey::Request(id) => self
                .requests
                .entries
                .get(id)
                .cloned()
                .map(|r| StateRecord::Request(*id, r)),
            StateKey::RequestOrigin(origin) => self
                .requests
                .origins
                .get(origin)
                .map(|r| StateRecord::RequestOrigin(*origin, *r)),
            StateKey::Incarnation(node) => self
                .incarnations
                .get(node)
                .map(|i| StateRecord::Incarnation(*node, *i)),
            StateKey::Quotas => self.quotas.map(StateRecord::Quotas),
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
            StateRecord::ThingType(t) => {
                self.thing_types.insert(t.name.clone(), t);
            }
            StateRecord::ThingGroup(g) => {
                self.thing_groups.insert(g.name.clone(), g);
            }
            StateRecord::Retained(m) => {
                self.retained_bytes += retained_size(&m);
                if let Some(old) = self.retained.insert(m.topic.clone(), m) {
                    self.retained_bytes -= retained_size(&old);
                }
            }
            StateRecord::Request(id, r) => self.requests.insert_request(id, r),
            StateRecord::RequestOrigin(origin, r) => self.requests.insert_origin(origin, r),
            StateRecord::Incarnation(node, i) => {
                self.incarnations.insert(node, i);
            }
            StateRecord::Quotas(q) => self.quotas = Some(q),
        }
    }

    /// Every record, in key order (things, shadows, thing types, thing groups,
    /// retained messages, remembered requests, request origins, incarnations, quotas).
    pub fn records(&self) -> impl Iterator<Item = StateRecord> + '_ {
        let things = self.things.values().cloned().map(StateRecord::Thing);
        let shadows = self
            .shadows
            .iter()
            .map(|(k, r)| StateRecord::Shadow(k.clone(), r.clone()));
        let types = self
            .thing_types
            .values()
            .cloned()
            .map(StateRecord::ThingType);
        let groups = self
            .thing_groups
            .values()
            .cloned()
            .map(StateRecord::ThingGroup);
        let retained = self.retained.values().cloned().map(StateRecord::Retained);
        let requests = self
            .requests
            .entries
            .iter()
            .map(|(id, r)| StateRecord::Request(*id, r.clone()));
        let origins = self
            .requests
            .origins
            .iter()
            .map(|(origin, r)| StateRecord::RequestOrigin(*origin, *r));
        let incarnations = self
            .incarnations
            .iter()
            .map(|(node, i)| StateRecord::Incarnation(*node, *i));
        things
            .chain(shadows)
            .chain(types)
            .chain(groups)
            .chain(retained)
            .chain(requests)
            .chain(origins)
            .chain(incarnations)
            .chain(self.quotas.map(StateRecord::Quotas))
    }

    /// Every retained message, by topic.
    pub fn retained(&self) -> impl Iterator<Item = &RetainedMessage> + '_ {
        self.retained.values()
    }

    /// Retained messages whose topic starts with `prefix`, in topic order, after
    /// `after` (exclusive) when given: one page of a scan that drops its lock
    /// between pages.
    pub fn retained_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a RetainedMessage> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        self.retained
            .range::<String, _>((start, Bound::Unbounded))
            .map(|(_, m)| m)
            .take_while(move |m| m.topic.starts_with(prefix))
    }

    /// Topics whose retained message expired by `now_ms` among the next `scan`
    /// after `after` (exclusive), and where to go on (`None`: the end was reached).
    pub fn expired_retained(
        &self,
        now_ms: u64,
        after: Option<&str>,
        scan: usize,
    ) -> (Vec<String>, Option<String>) {
        let (mut expired, mut last, mut scanned) = (Vec::new(), None, 0);
        for m in self.retained_with_prefix("", after).take(scan) {
            scanned += 1;
            last = Some(m.topic.clone());
            if !m.is_live(now_ms) {
                expired.push(m.topic.clone());
            }
        }
        (expired, last.filter(|_| scanned == scan))
    }

    /// Shadow tombstones old enough to forget at `now_ms`, among the `scan`
    /// shadows after `after` (exclusive), and where the next page starts: the
    /// leader's sweep reads a page at a time under the lock.
    pub fn stale_shadow_tombstones(
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

    /// How many retained messages are stored, and their payload bytes.
    pub fn retained_usage(&self) -> (usize, usize) {
        (self.retained.len(), self.retained_bytes)
    }

    /// A thing by name.
    pub fn thing(&self, name: &str) -> Option<&Thing> {
        self.things.get(name)
    }

    /// A shadow record (a tombstone counts as present but has no document).
    pub fn shadow(&self, key: &ShadowKey) -> Option<&ShadowRecord> {
        self.shadows.get(key)
    }

    /// A thing type by name.
    pub fn thing_type(&self, name: &str) -> Option<&ThingType> {
        self.thing_types.get(name)
    }

    /// A thing group by name.
    pub fn thing_group(&self, name: &str) -> Option<&ThingGroup> {
        self.thing_groups.get(name)
    }

    /// One page of things after `after` (exclusive), in name order, with the name to
    /// continue from when more remain.
    pub fn list_things(
        &self,
        query: &ThingQuery,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Thing>, Option<String>) {
        page(
            self.things.values().filter(|t| query.matches(t)),
            |t| &t.name,
            after,
            limit,
        )
    }

    /// One page of thing types.
    pub fn list_thing_types(
        &self,
        name: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<ThingType>, Option<String>) {
        page(
            self.thing_types
                .values()
                .filter(|t| name.is_none_or(|n| t.name == n)),
            |t| &t.name,
            after,
            limit,
        )
    }

    /// One page of thing groups: under `parent` (direct children, or all descendants
    /// with `recursive`), names starting with `prefix`.
    pub fn list_thing_groups(
        &self,
        parent: Option<&str>,
        prefix: Option<&str>,
        recursive: bool,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<ThingGroup>, Option<String>) {
        let under = |g: &ThingGroup| match parent {
            None => recursive || g.parent.is_none(),
            Some(p) if recursive => self.ancestors(&g.name).iter().any(|a| a == p),
            Some(p) => g.parent.as_deref() == Some(p),
        };
        page(
            self.thing_groups
                .values()
                .filter(|g| under(g) && prefix.is_none_or(|x| g.name.starts_with(x))),
            |g| &g.name,
            after,
            limit,
        )
    }

    /// Parents of a group, nearest first.
    pub fn ancestors(&self, group: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = self.thing_groups.get(group).and_then(|g| g.parent.clone());
        while let Some(p) = cursor {
            cursor = self.thing_groups.get(&p).and_then(|g| g.parent.clone());
            out.push(p);
            if out.len() > thing_group::GROUP_DEPTH_MAX {
                break;
            }
        }
        out
    }

    /// Things in a group (and, with `recursive`, in its descendants), sorted, deduplicated.
    pub fn things_in_group(&self, group: &str, recursive: bool) -> Vec<String> {
        let mut names = BTreeSet::new();
        for g in self.thing_groups.values() {
            let included = g.name == group
                || (recursive && self.ancestors(&g.name).iter().any(|a| a == group));
            if included {
                names.extend(g.things.iter().cloned());
            }
        }
        names.into_iter().collect()
    }

    /// Groups a thing belongs to directly, in name order.
    pub fn groups_of_thing(&self, thing: &str) -> Vec<String> {
        self.thing_groups
            .values()
            .filter(|g| g.things.contains(thing))
            .map(|g| g.name.clone())
            .collect()
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

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.things.is_empty()
            && self.shadows.is_empty()
            && self.thing_types.is_empty()
            && self.thing_groups.is_empty()
    }
}

/// Name-ordered pagination: items after `after`, at most `limit`, and the token to go on.
fn page<'a, T: Clone + 'a>(
    items: impl Iterator<Item = &'a T>,
    name: impl Fn(&T) -> &String,
    after: Option<&str>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    let mut out: Vec<T> = Vec::new();
    for item in items.filter(|i| after.is_none_or(|a| name(i).as_str() > a)) {
        if out.len() == limit {
            let next = out.last().map(|t| name(t).clone());
            return (out, next);
        }
        out.push(item.clone());
    }
    (out, None)
}
