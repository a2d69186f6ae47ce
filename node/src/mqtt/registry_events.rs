//! Registry events, as AWS IoT publishes them on `$aws/events/thing/...`,
//! `$aws/events/thingType/...`, `$aws/events/thingGroup/...` and
//! `$aws/events/thingGroupMembership/...`: what a registry command changed,
//! published on this node's broker once the command is applied.

use fleetcore_broker::Broker;
use fleetcore_model::RegistryCommand;
use serde_json::json;

/// What a registry command was about, captured before it is proposed (a delete
/// event describes the record as it was).
#[derive(Debug, Clone)]
pub enum RegistryChange {
    /// Thing created, updated or deleted; `before` is the record before a delete.
    Thing {
        /// CREATED, UPDATED or DELETED.
        operation: &'static str,
        /// Thing name.
        name: String,
        /// The thing before a delete.
        before: Option<fleetcore_model::Thing>,
    },
    /// Thing type created, updated (deprecated) or deleted.
    ThingType {
        /// CREATED, UPDATED or DELETED.
        operation: &'static str,
        /// Type name.
        name: String,
    },
    /// Thing group created, updated or deleted.
    ThingGroup {
        /// CREATED, UPDATED or DELETED.
        operation: &'static str,
        /// Group name.
        name: String,
        /// The group before a delete.
        before: Option<fleetcore_model::ThingGroup>,
    },
    /// A thing added to or removed from a group.
    Membership {
        /// ADDED or REMOVED.
        operation: &'static str,
        /// Group name.
        group: String,
        /// Thing name.
        thing: String,
    },
}

impl RegistryChange {
    /// The change a command makes, if it is a registry command; `state` is the
    /// local state, read for what a delete removes.
    pub fn of(command: &fleetcore_model::Command, state: &fleetcore_model::State) -> Option<Self> {
        use fleetcore_model::Command as C;
        match command {
            C::Registry(c) => Some(Self::of_registry(c, state)),
            C::Request { command, .. } => Self::of(command, state),
            C::Shadow(_) | C::Retained(_) | C::Cluster(_) | C::Policy(_) | C::Certificate(_) => {
                None
            }
        }
    }

    fn of_registry(command: &RegistryCommand, state: &fleetcore_model::State) -> Self {
        match command {
            RegistryCommand::CreateThing { name, .. } => RegistryChange::Thing {
                operation: "CREATED",
                name: name.clone(),
                before: None,
            },
            RegistryCommand::UpdateThing { name, .. } => RegistryChange::Thing {
                operation: "UPDATED",
                name: name.clone(),
                before: None,
            },
            RegistryCommand::DeleteThing { name, .. } => RegistryChange::Thing {
                operation: "DELETED",
                name: name.clone(),
                before: state.registry().thing(name).cloned(),
            },
            RegistryCommand::CreateThingType { name, .. } => RegistryChange::ThingType {
                operation: "CREATED",
                name: name.clone(),
            },
            RegistryCommand::DeprecateThingType { name, .. } => RegistryChange::ThingType {
                operation: "UPDATED",
                name: name.clone(),
            },
            RegistryCommand::DeleteThingType { name } => RegistryChange::ThingType {
                operation: "DELETED",
                name: name.clone(),
            },
            RegistryCommand::CreateThingGroup { name, .. } => RegistryChange::ThingGroup {
                operation: "CREATED",
                name: name.clone(),
                before: None,
            },
            RegistryCommand::UpdateThingGroup { name, .. } => RegistryChange::ThingGroup {
                operation: "UPDATED",
                name: name.clone(),
                before: None,
            },
            RegistryCommand::DeleteThingGroup { name, .. } => RegistryChange::ThingGroup {
                operation: "DELETED",
                name: name.clone(),
                before: state.registry().thing_group(name).cloned(),
            },
            RegistryCommand::AddThingToThingGroup { group, thing } => RegistryChange::Membership {
                operation: "ADDED",
                group: group.clone(),
                thing: thing.clone(),
            },
            RegistryCommand::RemoveThingFromThingGroup { group, thing } => {
                RegistryChange::Membership {
                    operation: "REMOVED",
                    group: group.clone(),
                    thing: thing.clone(),
                }
            }
        }
    }
}

/// Publishes AWS IoT's registry event for a committed change:
/// `$aws/events/thing/{name}/{created,updated,deleted}`,
/// `$aws/events/thingType/...`, `$aws/events/thingGroup/...` and
/// `$aws/events/thingGroupMembership/thingGroup/{group}/thing/{thing}/{added,removed}`.
pub fn registry(
    broker: &Broker,
    change: RegistryChange,
    applied: &fleetcore_model::Applied,
    arn: impl Fn(&str, &str) -> String,
    event_id: String,
) {
    use fleetcore_model::Applied;
    let now = broker.now_ms();
    match change {
        RegistryChange::Thing {
            operation,
            name,
            before,
        } => {
            let thing = match applied {
                Applied::Thing(t) => Some(t.clone()),
                Applied::ThingDeleted { existed: true } => before,
                _ => None,
            };
            let Some(thing) = thing else { return };
            broker.publish_json(
                format!("$aws/events/thing/{name}/{}", operation.to_lowercase()),
                &json!({
                    "eventType": "THING_EVENT",
                    "eventId": event_id,
                    "timestamp": now,
                    "operation": operation,
                    "accountId": "000000000000",
                    "thingId": thing.thing_id,
                    "thingName": thing.name,
                    "versionNumber": thing.version,
                    "thingTypeName": thing.thing_type_name,
                    "attributes": thing.attributes,
                }),
            );
        }
        RegistryChange::ThingType { operation, name } => {
            let mut body = json!({
                "eventType": "THING_TYPE_EVENT",
                "eventId": event_id,
                "timestamp": now,
                "operation": operation,
                "accountId": "000000000000",
                "thingTypeName": name,
            });
            if let Applied::ThingType(t) = applied {
                body["thingTypeId"] = json!(t.thing_type_id);
                body["isDeprecated"] = json!(t.deprecated);
                body["searchableAttributes"] = json!(t.searchable_attributes);
                body["description"] = json!(t.description);
            }
            broker.publish_json(
                format!("$aws/events/thingType/{name}/{}", operation.to_lowercase()),
                &body,
            );
        }
        RegistryChange::ThingGroup {
            operation,
            name,
            before,
        } => {
            let group = match applied {
                Applied::ThingGroup(g) => Some(g.clone()),
                Applied::Done => before,
                _ => None,
            };
            let Some(group) = group else { return };
            broker.publish_json(
                format!("$aws/events/thingGroup/{name}/{}", operation.to_lowercase()),
                &json!({
                    "eventType": "THING_GROUP_EVENT",
                    "eventId": event_id,
                    "timestamp": now,
                    "operation": operation,
                    "accountId": "000000000000",
                    "thingGroupId": group.thing_group_id,
                    "thingGroupName": group.name,
                    "versionNumber": group.version,
                    "parentGroupName": group.parent,
                    "description": group.description,
                    "attributes": group.attributes,
                }),
            );
        }
        RegistryChange::Membership {
            operation,
            group,
            thing,
        } => {
            broker.publish_json(
                format!(
                    "$aws/events/thingGroupMembership/thingGroup/{group}/thing/{thing}/{}",
                    operation.to_lowercase()
                ),
                &json!({
                    "eventType": "THING_GROUP_MEMBERSHIP_EVENT",
                    "eventId": event_id,
                    "timestamp": now,
                    "operation": operation,
                    "accountId": "000000000000",
                    "groupArn": arn("thinggroup", &group),
                    "thingArn": arn("thing", &thing),
                    "thingGroupName": group,
                    "thingName": thing,
                }),
            );
        }
    }
}
