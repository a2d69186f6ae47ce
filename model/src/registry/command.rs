//! The registry's commands and their `apply`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{thing_group, thing_type, AttributeUpdate, Registry};
use crate::command::{Applied, Outcome};
use crate::error::Rejection;
use crate::limits::Quotas;
use crate::state::{Changes, StateKey};
use crate::thing_group::{ThingGroup, GROUPS_PER_THING_MAX};

/// A change to things, thing types or thing groups. Variant order is part of
/// format 2: new variants go last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryCommand {
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
}

impl RegistryCommand {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryCommand::CreateThing { .. } => "create_thing",
            RegistryCommand::UpdateThing { .. } => "update_thing",
            RegistryCommand::DeleteThing { .. } => "delete_thing",
            RegistryCommand::CreateThingType { .. } => "create_thing_type",
            RegistryCommand::DeprecateThingType { .. } => "deprecate_thing_type",
            RegistryCommand::DeleteThingType { .. } => "delete_thing_type",
            RegistryCommand::CreateThingGroup { .. } => "create_thing_group",
            RegistryCommand::UpdateThingGroup { .. } => "update_thing_group",
            RegistryCommand::DeleteThingGroup { .. } => "delete_thing_group",
            RegistryCommand::AddThingToThingGroup { .. } => "add_thing_to_thing_group",
            RegistryCommand::RemoveThingFromThingGroup { .. } => "remove_thing_from_thing_group",
        }
    }
}

impl std::fmt::Display for RegistryCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryCommand::CreateThing { name, .. }
            | RegistryCommand::UpdateThing { name, .. }
            | RegistryCommand::DeleteThing { name, .. }
            | RegistryCommand::CreateThingType { name, .. }
            | RegistryCommand::DeprecateThingType { name, .. }
            | RegistryCommand::DeleteThingType { name }
            | RegistryCommand::CreateThingGroup { name, .. }
            | RegistryCommand::UpdateThingGroup { name, .. }
            | RegistryCommand::DeleteThingGroup { name, .. } => write!(f, "{} {name}", self.kind()),
            RegistryCommand::AddThingToThingGroup { group, thing }
            | RegistryCommand::RemoveThingFromThingGroup { group, thing } => {
                write!(f, "{} {group} {thing}", self.kind())
            }
        }
    }
}

impl Registry {
    /// Applies one registry command; `changed` collects the keys it wrote.
    pub(crate) fn apply(
        &mut self,
        command: &RegistryCommand,
        quotas: &Quotas,
        changed: &mut Changes,
    ) -> Outcome {
        match command {
            RegistryCommand::CreateThing {
                name,
                thing_type_name,
                attributes,
                thing_id,
                at_ms,
            } => {
                if !self.things.contains_key(name) {
                    self.check_thing_type_usable(thing_type_name.as_deref())?;
                    if self.things.len() as u64 >= quotas.things {
                        return Err(Rejection::LimitExceeded {
                            what: "things in the cluster (quota things)".into(),
                            limit: quotas.things,
                        });
                    }
                }
                let thing = super::create(
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
            RegistryCommand::UpdateThing {
                name,
                attributes,
                thing_type_name,
                remove_thing_type,
                expected_version,
            } => {
                let thing = super::update(
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
            RegistryCommand::DeleteThing {
                name,
                expected_version,
            } => {
                let existed = super::delete(self.things.get(name), *expected_version)?;
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
            RegistryCommand::CreateThingType {
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
            RegistryCommand::DeprecateThingType { name, undo, at_ms } => {
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
            RegistryCommand::DeleteThingType { name } => {
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
            RegistryCommand::CreateThingGroup {
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
                if self.thing_groups.len() as u64 >= quotas.thing_groups {
                    return Err(Rejection::LimitExceeded {
                        what: "thing groups in the cluster (quota thingGroups)".into(),
                        limit: quotas.thing_groups,
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
            RegistryCommand::UpdateThingGroup {
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
                    group.attributes = super::updated_attributes(&group.attributes, update);
                    super::check_attributes(&group.attributes)?;
                }
                group.version += 1;
                self.thing_groups.insert(name.clone(), group.clone());
                changed.insert(StateKey::ThingGroup(name.clone()));
                Ok(Applied::ThingGroup(group))
            }
            RegistryCommand::DeleteThingGroup {
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
            RegistryCommand::AddThingToThingGroup { group, thing } => {
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
            RegistryCommand::RemoveThingFromThingGroup { group, thing } => {
                let g = self
                    .thing_groups
                    .get_mut(group)
                    .ok_or_else(|| thing_group::not_found(group))?;
                g.things.remove(thing);
                changed.insert(StateKey::ThingGroup(group.clone()));
                Ok(Applied::Done)
            }
        }
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
}
