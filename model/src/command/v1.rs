//! Format 1 of the log: one flat enum whose variant order is the encoding. Only
//! read (a node replays a log or a peer's message written before format 2); it
//! is never written. Do not change it: `storage/tests/formats.rs` holds its
//! golden bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Command;
use crate::cluster::ClusterCommand;
use crate::registry::{AttributeUpdate, RegistryCommand};
use crate::request::RequestId;
use crate::retained::{RetainedCommand, RetainedMessage};
use crate::shadow::{ShadowCommand, ShadowKey};

/// A command as format 1 encoded it. See [`Command`] for what each one does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandV1 {
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
    SetRetained(RetainedMessage),
    /// `command`, applied at most once per `id`: a repeat answers the first result
    /// (see [`crate::request`]). Every write a node proposes is wrapped in one.
    Request {
        /// Who proposed it, and which of its requests this is.
        id: RequestId,
        /// The write itself (never another `Request`).
        command: Box<CommandV1>,
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

impl From<CommandV1> for Command {
    /// Every format-1 command has exactly one format-2 form, with the same meaning.
    fn from(old: CommandV1) -> Self {
        use CommandV1 as V1;
        match old {
            V1::CreateThing {
                name,
                thing_type_name,
                attributes,
                thing_id,
                at_ms,
            } => RegistryCommand::CreateThing {
                name,
                thing_type_name,
                attributes,
                thing_id,
                at_ms,
            }
            .into(),
            V1::UpdateThing {
                name,
                attributes,
                thing_type_name,
                remove_thing_type,
                expected_version,
            } => RegistryCommand::UpdateThing {
                name,
                attributes,
                thing_type_name,
                remove_thing_type,
                expected_version,
            }
            .into(),
            V1::DeleteThing {
                name,
                expected_version,
            } => RegistryCommand::DeleteThing {
                name,
                expected_version,
            }
            .into(),
            V1::CreateThingType {
                name,
                description,
                searchable_attributes,
                thing_type_id,
                at_ms,
            } => RegistryCommand::CreateThingType {
                name,
                description,
                searchable_attributes,
                thing_type_id,
                at_ms,
            }
            .into(),
            V1::DeprecateThingType { name, undo, at_ms } => {
                RegistryCommand::DeprecateThingType { name, undo, at_ms }.into()
            }
            V1::DeleteThingType { name } => RegistryCommand::DeleteThingType { name }.into(),
            V1::CreateThingGroup {
                name,
                parent,
                description,
                attributes,
                thing_group_id,
                at_ms,
            } => RegistryCommand::CreateThingGroup {
                name,
                parent,
                description,
                attributes,
                thing_group_id,
                at_ms,
            }
            .into(),
            V1::UpdateThingGroup {
                name,
                description,
                attributes,
                expected_version,
            } => RegistryCommand::UpdateThingGroup {
                name,
                description,
                attributes,
                expected_version,
            }
            .into(),
            V1::DeleteThingGroup {
                name,
                expected_version,
            } => RegistryCommand::DeleteThingGroup {
                name,
                expected_version,
            }
            .into(),
            V1::AddThingToThingGroup { group, thing } => {
                RegistryCommand::AddThingToThingGroup { group, thing }.into()
            }
            V1::RemoveThingFromThingGroup { group, thing } => {
                RegistryCommand::RemoveThingFromThingGroup { group, thing }.into()
            }
            V1::UpdateShadow {
                key,
                request,
                at_ms,
            } => ShadowCommand::Update {
                key,
                request,
                at_ms,
            }
            .into(),
            V1::DeleteShadow {
                key,
                expected_version,
                client_token,
                at_ms,
            } => ShadowCommand::Delete {
                key,
                expected_version,
                client_token,
                at_ms,
            }
            .into(),
            V1::ForgetShadowTombstones { keys, at_ms } => {
                ShadowCommand::ForgetTombstones { keys, at_ms }.into()
            }
            V1::SetRetained(message) => RetainedCommand::Set(message).into(),
            V1::ExpireRetained { topics, at_ms } => {
                RetainedCommand::Expire { topics, at_ms }.into()
            }
            V1::RecordIncarnation {
                node,
                incarnation,
                replace,
            } => ClusterCommand::RecordIncarnation {
                node,
                incarnation,
                replace,
            }
            .into(),
            V1::SetQuotas(quotas) => ClusterCommand::SetQuotas(quotas).into(),
            V1::Request { id, command } => Command::Request {
                id,
                command: Box::new(Command::from(*command)),
            },
        }
    }
}
