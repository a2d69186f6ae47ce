//! Commands (what the Raft log carries) and their outcomes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Rejection;
use crate::registry::{AttributeUpdate, Thing};
use crate::shadow::{ShadowKey, ShadowUpdated};
use crate::thing_group::ThingGroup;
use crate::thing_type::ThingType;

/// A change to the replicated state. Everything `apply` needs is inside: time
/// (`at_ms`) and generated ids are stamped by the proposer.
///
/// Encoded with bincode, so no field may be a `serde_json::Value` (bincode cannot
/// decode self-describing data); JSON documents travel as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// AWS CreateThing.
    CreateThing {
        /// Thing name.
        name: String,
        /// Optional thing type.
        thing_type_name: Option<String>,
        /// Initial attributes.
        attributes: BTreeMap<String, String>,
        /// Id chosen by the proposer.
        thing_id: String,
        /// Proposer's clock, ms since the epoch.
        at_ms: u64,
    },
    /// AWS UpdateThing.
    UpdateThing {
        /// Thing name.
        name: String,
        /// Attribute changes, if any.
        attributes: Option<AttributeUpdate>,
        /// New thing type, if any.
        thing_type_name: Option<String>,
        /// Remove the thing type.
        remove_thing_type: bool,
        /// Refuse unless the thing is at this version.
        expected_version: Option<u64>,
    },
    /// AWS DeleteThing.
    DeleteThing {
        /// Thing name.
        name: String,
        /// Refuse unless the thing is at this version.
        expected_version: Option<u64>,
    },
    /// AWS CreateThingType.
    CreateThingType {
        /// Type name.
        name: String,
        /// Free text.
        description: Option<String>,
        /// Searchable attribute names.
        searchable_attributes: Vec<String>,
        /// Id chosen by the proposer.
        thing_type_id: String,
        /// Proposer's clock, ms since the epoch.
        at_ms: u64,
    },
    /// AWS DeprecateThingType (or undo).
    DeprecateThingType {
        /// Type name.
        name: String,
        /// Undo a deprecation.
        undo: bool,
        /// Proposer's clock, ms since the epoch.
        at_ms: u64,
    },
    /// AWS DeleteThingType.
    DeleteThingType {
        /// Type name.
        name: String,
    },
    /// AWS CreateThingGroup.
    CreateThingGroup {
        /// Group name.
        name: String,
        /// Parent group.
        parent: Option<String>,
        /// Free text.
        description: Option<String>,
        /// Attributes.
        attributes: BTreeMap<String, String>,
        /// Id chosen by the proposer.
        thing_group_id: String,
        /// Proposer's clock, ms since the epoch.
        at_ms: u64,
    },
    /// AWS UpdateThingGroup.
    UpdateThingGroup {
        /// Group name.
        name: String,
        /// New description, if given.
        description: Option<String>,
        /// Attribute changes, if given.
        attributes: Option<AttributeUpdate>,
        /// Refuse unless the group is at this version.
        expected_version: Option<u64>,
    },
    /// AWS DeleteThingGroup.
    DeleteThingGroup {
        /// Group name.
        name: String,
        /// Refuse unless the group is at this version.
        expected_version: Option<u64>,
    },
    /// AWS AddThingToThingGroup.
    AddThingToThingGroup {
        /// Group name.
        group: String,
        /// Thing name.
        thing: String,
    },
    /// AWS RemoveThingFromThingGroup.
    RemoveThingFromThingGroup {
        /// Group name.
        group: String,
        /// Thing name.
        thing: String,
    },
    /// AWS UpdateThingShadow / `.../shadow/update`.
    UpdateShadow {
        /// Which shadow.
        key: ShadowKey,
        /// The request body, JSON text, as the client sent it.
        request: String,
        /// Proposer's clock, ms since the epoch.
        at_ms: u64,
    },
    /// AWS DeleteThingShadow / `.../shadow/delete`.
    DeleteShadow {
        /// Which shadow.
        key: ShadowKey,
        /// Refuse unless the shadow is at this version.
        expected_version: Option<u64>,
        /// Echoed back.
        client_token: Option<String>,
        /// Proposer's clock, ms since the epoch.
        at_ms: u64,
    },
    // New variants go last: the variant index is part of format v1.
    /// Stores (or, with an empty payload, clears) a topic's retained message.
    SetRetained(crate::retained::RetainedMessage),
    /// `command`, applied at most once per `id`: a repeat answers the first result
    /// (see [`crate::request`]). Every write a node proposes is wrapped in one.
    Request {
        /// Who proposed it, and which of its requests this is.
        id: crate::request::RequestId,
        /// The write itself (never another `Request`).
        command: Box<Command>,
    },
    /// Records the incarnation (data-dir identity) of member `node`. A node
    /// records its own at start (`replace` false: refused if another is recorded,
    /// i.e. its data dir was wiped or restored); adding a node records the new
    /// one (`replace` true: the operator's replacement).
    RecordIncarnation {
        /// The member.
        node: u64,
        /// Its data dir's incarnation.
        incarnation: u64,
        /// Overwrite a different recorded incarnation.
        replace: bool,
    },
    /// Removes retained messages that expired (MQTT 5 message expiry) by `at_ms`:
    /// proposed by the leader's sweeper with its clock, so `apply` reads none.
    ExpireRetained {
        /// Topics the leader found expired; each is removed only if the stored
        /// message still expires by `at_ms` (a newer one may have replaced it).
        topics: Vec<String>,
        /// The leader's clock, ms since the epoch.
        at_ms: u64,
    },
    /// Replaces the quotas of the replicated state (`PUT /quotas`).
    SetQuotas(crate::limits::Quotas),
    /// Removes shadow tombstones older than `limits::SHADOW_TOMBSTONE_MS` at
    /// `at_ms`: proposed by the leader's sweeper with its clock.
    ForgetShadowTombstones {
        /// Tombstones the leader found old enough; each is removed only if it is
        /// still a tombstone deleted by `at_ms - SHADOW_TOMBSTONE_MS`.
        keys: Vec<ShadowKey>,
        /// The leader's clock, ms since the epoch.
        at_ms: u64,
    },
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateThing { .. } => "create_thing",
            Command::UpdateThing { .. } => "update_thing",
            Command::DeleteThing { .. } => "delete_thing",
            Command::UpdateShadow { .. } => "update_shadow",
            Command::CreateThingType { .. } => "create_thing_type",
            Command::DeprecateThingType { .. } => "deprecate_thing_type",
            Command::DeleteThingType { .. } => "delete_thing_type",
            Command::CreateThingGroup { .. } => "create_thing_group",
            Command::UpdateThingGroup { .. } => "update_thing_group",
            Command::DeleteThingGroup { .. } => "delete_thing_group",
            Command::AddThingToThingGroup { .. } => "add_thing_to_thing_group",
            Command::RemoveThingFromThingGroup { .. } => "remove_thing_from_thing_group",
            Command::SetRetained(_) => "set_retained",
            Command::DeleteShadow { .. } => "delete_shadow",
            Command::Request { command, .. } => command.kind(),
            Command::SetQuotas(_) => "set_quotas",
            Command::ForgetShadowTombstones { .. } => "forget_shadow_tombstones",
            Command::ExpireRetained { .. } => "expire_retained",
            Command::RecordIncarnation { .. } => "record_incarnation",
        }
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Applied {
    /// Entries that carry no command (blank, membership).
    Nothing,
    /// The thing after create or update.
    Thing(Thing),
    /// DeleteThing: whether there was a thing to delete.
    ThingDeleted {
        /// False when the thing did not exist (still a success, as in AWS).
        existed: bool,
    },
    /// A thing type after create or (un)deprecate.
    ThingType(ThingType),
    /// A thing group after create or update.
    ThingGroup(ThingGroup),
    /// A change that returns nothing (deletes, group membership).
    Done,
    /// An accepted shadow update.
    ShadowUpdated(ShadowUpdated),
    /// An accepted shadow delete: the `/delete/accepted` body.
    ShadowDeleted(Value),
}

/// The replicated result of one command: every replica computes the same one.
pub type Outcome = Result<Applied, Rejection>;

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::CreateThing { name, .. }
            | Command::UpdateThing { name, .. }
            | Command::DeleteThing { name, .. } => write!(f, "{} {name}", self.kind()),
            Command::UpdateShadow { key, .. } | Command::DeleteShadow { key, .. } => {
                write!(f, "{} {}/{}", self.kind(), key.thing, key.name)
            }
            Command::CreateThingType { name, .. }
            | Command::DeprecateThingType { name, .. }
            | Command::DeleteThingType { name }
            | Command::CreateThingGroup { name, .. }
            | Command::UpdateThingGroup { name, .. }
            | Command::DeleteThingGroup { name, .. } => write!(f, "{} {name}", self.kind()),
            Command::AddThingToThingGroup { group, thing }
            | Command::RemoveThingFromThingGroup { group, thing } => {
                write!(f, "{} {group} {thing}", self.kind())
            }
            Command::SetRetained(m) => write!(f, "{} {}", self.kind(), m.topic),
            Command::Request { id, command } => write!(f, "{command} (request {id})"),
            Command::RecordIncarnation {
                node, incarnation, ..
            } => write!(f, "{} {node} {incarnation:016x}", self.kind()),
            Command::ExpireRetained { topics, .. } => {
                write!(f, "{} ({} topics)", self.kind(), topics.len())
            }
            Command::SetQuotas(q) => write!(f, "{} {q:?}", self.kind()),
            Command::ForgetShadowTombstones { keys, .. } => {
                write!(f, "{} ({} shadows)", self.kind(), keys.len())
            }
        }
    }
}
