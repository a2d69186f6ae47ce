//! The whole replicated state and the pure `apply`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::certificate::{Certificate, CertificateCommand, Certificates};
use crate::cluster::ClusterRecords;
use crate::command::{Command, Outcome};
use crate::error::Rejection;
use crate::limits;
use crate::policy::{Policies, Policy};
use crate::registry::{Registry, RegistryCommand, Thing};
use crate::request::{OriginRecord, RequestId, RequestRecord, RequestTable, Seen};
use crate::retained::{RetainedMessage, RetainedStore};
use crate::shadow::{ShadowKey, ShadowRecord, Shadows};
use crate::thing_group::ThingGroup;
use crate::thing_type::ThingType;

/// The replicated state: one part per domain, each changed only by its own
/// commands. `BTreeMap`s inside, so iteration order is the same on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    registry: Registry,
    shadows: Shadows,
    retained: RetainedStore,
    cluster: ClusterRecords,
    requests: RequestTable,
    policies: Policies,
    certificates: Certificates,
}

/// The keys a command wrote, so storage writes exactly those rows.
pub(crate) type Changes = BTreeSet<StateKey>;

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
    /// An IoT policy, by name.
    Policy(String),
    /// A certificate, by id.
    Certificate(String),
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
    /// An IoT policy with its versions and targets.
    Policy(Policy),
    /// A certificate and the things attached to it.
    Certificate(Certificate),
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
            StateRecord::Policy(p) => StateKey::Policy(p.name.clone()),
            StateRecord::Certificate(c) => StateKey::Certificate(c.id.clone()),
        }
    }
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

    /// Hands the command to its domain. A domain leaves its part unchanged when
    /// it refuses, so the keys are dropped then.
    fn apply_once(&mut self, command: &Command) -> (Outcome, BTreeSet<StateKey>) {
        let mut changed = Changes::new();
        let quotas = self.quotas();
        let outcome = match command {
            Command::Registry(RegistryCommand::DeleteThing { name, .. })
                if self.certificates.of_thing(name).next().is_some() =>
            {
                Err(Rejection::invalid(format!(
                    "thing '{name}' has principals attached; detach them first"
                )))
            }
            Command::Registry(c) => self.registry.apply(c, &quotas, &mut changed),
            Command::Shadow(c) => self.shadows.apply(c, &quotas, &mut changed),
            Command::Retained(c) => self.retained.apply(c, &quotas, &mut changed),
            Command::Cluster(c) => self.cluster.apply(c, &mut changed),
            Command::Policy(c) => self.policies.apply(c, &mut changed),
            Command::Certificate(c) => self.apply_certificate(c, &mut changed),
            // Unwrapped in `apply_tracked`; one nested in another is refused there.
            Command::Request { id, .. } => Err(Rejection::invalid(format!(
                "request {id} wraps another request"
            ))),
        };
        if outcome.is_err() {
            changed.clear();
        }
        (outcome, changed)
    }

    /// Certificate commands touch the registry (a thing attached must exist)
    /// and the policies (attached to a certificate's ARN), so the state, which
    /// owns all three, checks those rules around the certificates' own apply.
    fn apply_certificate(
        &mut self,
        command: &CertificateCommand,
        changed: &mut Changes,
    ) -> Outcome {
        let mut detach = Vec::new();
        if let CertificateCommand::Delete { id, arn, force } = command {
            let attached: Vec<String> =
                self.policies.attached_to(arn).map(str::to_string).collect();
            if !attached.is_empty() && !force {
                return Err(Rejection::DeleteConflict(format!(
                    "certificate '{id}' has {} policies attached; detach them or force the delete",
                    attached.len()
                )));
            }
            detach = attached
                .into_iter()
                .map(|name| (name, arn.clone()))
                .collect();
        }
        let registry = &self.registry;
        let outcome =
            self.certificates
                .apply(command, |thing| registry.thing(thing).is_some(), changed)?;
        for (name, target) in detach {
            self.policies.apply(
                &crate::policy::PolicyCommand::Detach { name, target },
                changed,
            )?;
        }
        Ok(outcome)
    }

    /// The exactly-once table.
    pub fn requests(&self) -> &RequestTable {
        &self.requests
    }

    /// Things, thing types and thing groups.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Device shadows.
    pub fn shadows(&self) -> &Shadows {
        &self.shadows
    }

    /// Retained MQTT messages.
    pub fn retained(&self) -> &RetainedStore {
        &self.retained
    }

    /// IoT policies and where they are attached.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Registered certificates and the things attached to them.
    pub fn certificates(&self) -> &Certificates {
        &self.certificates
    }

    /// The quotas in force.
    pub fn quotas(&self) -> limits::Quotas {
        self.cluster.quotas()
    }

    /// The incarnation recorded for member `node`, if any.
    pub fn incarnation(&self, node: u64) -> Option<u64> {
        self.cluster.incarnation(node)
    }

    /// The stored record at `key`, if any.
    pub fn get(&self, key: &StateKey) -> Option<StateRecord> {
        match key {
            StateKey::Thing(name) => self
                .registry
                .things
                .get(name)
                .cloned()
                .map(StateRecord::Thing),
            StateKey::Shadow(k) => self
                .shadows
                .shadows
                .get(k)
                .cloned()
                .map(|r| StateRecord::Shadow(k.clone(), r)),
            StateKey::ThingType(name) => self
                .registry
                .thing_types
                .get(name)
                .cloned()
                .map(StateRecord::ThingType),
            StateKey::ThingGroup(name) => self
                .registry
                .thing_groups
                .get(name)
                .cloned()
                .map(StateRecord::ThingGroup),
            StateKey::Retained(topic) => self
                .retained
                .messages
                .get(topic)
                .cloned()
                .map(StateRecord::Retained),
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
                .cluster
                .incarnations
                .get(node)
                .map(|i| StateRecord::Incarnation(*node, *i)),
            StateKey::Quotas => self.cluster.quotas.map(StateRecord::Quotas),
            StateKey::Policy(name) => self.policies.get(name).cloned().map(StateRecord::Policy),
            StateKey::Certificate(id) => self
                .certificates
                .get(id)
                .cloned()
                .map(StateRecord::Certificate),
        }
    }

    /// Puts a record back (loading from disk or a snapshot).
    pub fn insert(&mut self, record: StateRecord) {
        match record {
            StateRecord::Thing(t) => {
                self.registry.things.insert(t.name.clone(), t);
            }
            StateRecord::Shadow(k, r) => {
                self.shadows.shadows.insert(k, r);
            }
            StateRecord::ThingType(t) => {
                self.registry.thing_types.insert(t.name.clone(), t);
            }
            StateRecord::ThingGroup(g) => {
                self.registry.thing_groups.insert(g.name.clone(), g);
            }
            StateRecord::Retained(m) => self.retained.insert(m),
            StateRecord::Request(id, r) => self.requests.insert_request(id, r),
            StateRecord::RequestOrigin(origin, r) => self.requests.insert_origin(origin, r),
            StateRecord::Incarnation(node, i) => {
                self.cluster.incarnations.insert(node, i);
            }
            StateRecord::Quotas(q) => self.cluster.quotas = Some(q),
            StateRecord::Policy(p) => self.policies.insert(p),
            StateRecord::Certificate(c) => self.certificates.insert(c),
        }
    }

    /// Every record, in key order (things, shadows, thing types, thing groups,
    /// retained messages, remembered requests, request origins, incarnations, quotas,
    /// policies, certificates).
    pub fn records(&self) -> impl Iterator<Item = StateRecord> + '_ {
        let things = self
            .registry
            .things
            .values()
            .cloned()
            .map(StateRecord::Thing);
        let shadows = self
            .shadows
            .shadows
            .iter()
            .map(|(k, r)| StateRecord::Shadow(k.clone(), r.clone()));
        let types = self
            .registry
            .thing_types
            .values()
            .cloned()
            .map(StateRecord::ThingType);
        let groups = self
            .registry
            .thing_groups
            .values()
            .cloned()
            .map(StateRecord::ThingGroup);
        let retained = self.retained.iter().cloned().map(StateRecord::Retained);
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
            .cluster
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
            .chain(self.cluster.quotas.map(StateRecord::Quotas))
            .chain(self.policies.iter().cloned().map(StateRecord::Policy))
            .chain(
                self.certificates
                    .iter()
                    .cloned()
                    .map(StateRecord::Certificate),
            )
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.registry.is_empty()
            && self.shadows.is_empty()
            && self.policies.is_empty()
            && self.certificates.is_empty()
    }
}
