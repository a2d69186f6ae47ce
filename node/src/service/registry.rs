//! The registry's operations: things (CreateThing ... ListThings), thing types
//! and thing groups.

use std::collections::BTreeMap;

use fleetcore_model::{
    names, registry, Applied, AttributeUpdate, RegistryCommand, Thing, ThingGroup, ThingQuery,
    ThingType,
};
use fleetcore_raft::Connector;

use super::{Service, ServiceError, ServiceResult};

/// A page of things.
#[derive(Debug)]
pub struct ThingPage {
    /// The things.
    pub things: Vec<Thing>,
    /// Token for the next page.
    pub next_token: Option<String>,
}

/// A thing group as DescribeThingGroup shows it.
#[derive(Debug)]
pub struct GroupDescription {
    /// The group.
    pub group: ThingGroup,
    /// Its parents, nearest first.
    pub ancestors: Vec<String>,
}

/// What CreateThingGroup and UpdateThingGroup change.
#[derive(Debug, Default)]
pub struct GroupProperties {
    /// Free text.
    pub description: Option<String>,
    /// Attribute changes (CreateThingGroup: the attributes).
    pub attributes: Option<AttributeUpdate>,
}

fn group_not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("Thing group {name} cannot be found."))
}

impl<C: Connector> Service<C> {
    /// CreateThing.
    pub async fn create_thing(
        &self,
        name: &str,
        thing_type_name: Option<String>,
        attributes: BTreeMap<String, String>,
    ) -> ServiceResult<Thing> {
        names::check_thing_name(name)?;
        let command = RegistryCommand::CreateThing {
            name: name.to_string(),
            thing_type_name,
            attributes,
            thing_id: self.new_id(),
            at_ms: self.now_ms(),
        };
        match self.propose(command).await? {
            Applied::Thing(t) => Ok(t),
            other => Err(ServiceError::unexpected("CreateThing", &other)),
        }
    }

    /// UpdateThing.
    pub async fn update_thing(
        &self,
        name: &str,
        attributes: Option<AttributeUpdate>,
        thing_type_name: Option<String>,
        remove_thing_type: bool,
        expected_version: Option<u64>,
    ) -> ServiceResult<Thing> {
        names::check_thing_name(name)?;
        let command = RegistryCommand::UpdateThing {
            name: name.to_string(),
            attributes,
            thing_type_name,
            remove_thing_type,
            expected_version,
        };
        match self.propose(command).await? {
            Applied::Thing(t) => Ok(t),
            other => Err(ServiceError::unexpected("UpdateThing", &other)),
        }
    }

    /// DeleteThing. Deleting a thing that does not exist succeeds, as in AWS.
    pub async fn delete_thing(
        &self,
        name: &str,
        expected_version: Option<u64>,
    ) -> ServiceResult<()> {
        names::check_thing_name(name)?;
        let command = RegistryCommand::DeleteThing {
            name: name.to_string(),
            expected_version,
        };
        match self.propose(command).await? {
            Applied::ThingDeleted { .. } => Ok(()),
            other => Err(ServiceError::unexpected("DeleteThing", &other)),
        }
    }

    /// DescribeThing, linearizable.
    pub async fn describe_thing(&self, name: &str) -> ServiceResult<Thing> {
        names::check_thing_name(name)?;
        self.read(|s| s.registry().thing(name).cloned())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("Thing {name} cannot be found.")))
    }

    /// ListThings, linearizable, paginated in name order.
    pub async fn list_things(
        &self,
        query: &ThingQuery,
        next_token: Option<&str>,
        limit: usize,
    ) -> ServiceResult<ThingPage> {
        let (things, next_token) = self
            .read(|s| s.registry().list_things(query, next_token, limit))
            .await?;
        Ok(ThingPage { things, next_token })
    }

    /// CreateThingType.
    pub async fn create_thing_type(
        &self,
        name: &str,
        description: Option<String>,
        searchable_attributes: Vec<String>,
    ) -> ServiceResult<ThingType> {
        names::check_thing_name(name)?;
        let command = RegistryCommand::CreateThingType {
            name: name.to_string(),
            description,
            searchable_attributes,
            thing_type_id: self.new_id(),
            at_ms: self.now_ms(),
        };
        match self.propose(command).await? {
            Applied::ThingType(t) => Ok(t),
            other => Err(ServiceError::unexpected("CreateThingType", &other)),
        }
    }

    /// DescribeThingType, linearizable.
    pub async fn describe_thing_type(&self, name: &str) -> ServiceResult<ThingType> {
        names::check_thing_name(name)?;
        self.read(|s| s.registry().thing_type(name).cloned())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("Thing type {name} cannot be found.")))
    }

    /// ListThingTypes, linearizable: one page, and the token to go on.
    pub async fn list_thing_types(
        &self,
        name: Option<&str>,
        next_token: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<ThingType>, Option<String>)> {
        self.read(|s| s.registry().list_thing_types(name, next_token, limit))
            .await
    }

    /// DeprecateThingType (or, with `undo`, its reversal).
    pub async fn deprecate_thing_type(&self, name: &str, undo: bool) -> ServiceResult<()> {
        names::check_thing_name(name)?;
        let command = RegistryCommand::DeprecateThingType {
            name: name.to_string(),
            undo,
            at_ms: self.now_ms(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// DeleteThingType.
    pub async fn delete_thing_type(&self, name: &str) -> ServiceResult<()> {
        names::check_thing_name(name)?;
        let command = RegistryCommand::DeleteThingType {
            name: name.to_string(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// CreateThingGroup.
    pub async fn create_thing_group(
        &self,
        name: &str,
        parent: Option<String>,
        properties: GroupProperties,
    ) -> ServiceResult<ThingGroup> {
        names::check_thing_name(name)?;
        let command = RegistryCommand::CreateThingGroup {
            name: name.to_string(),
            parent,
            description: properties.description,
            attributes: properties
                .attributes
                .map(|a| a.attributes)
                .unwrap_or_default(),
            thing_group_id: self.new_id(),
            at_ms: self.now_ms(),
        };
        match self.propose(command).await? {
            Applied::ThingGroup(g) => Ok(g),
            other => Err(ServiceError::unexpected("CreateThingGroup", &other)),
        }
    }

    /// DescribeThingGroup, linearizable.
    pub async fn describe_thing_group(&self, name: &str) -> ServiceResult<GroupDescription> {
        names::check_thing_name(name)?;
        let (group, ancestors) = self
            .read(|s| {
                let registry = s.registry();
                (
                    registry.thing_group(name).cloned(),
                    registry.ancestors(name),
                )
            })
            .await?;
        let group = group.ok_or_else(|| group_not_found(name))?;
        Ok(GroupDescription { group, ancestors })
    }

    /// UpdateThingGroup.
    pub async fn update_thing_group(
        &self,
        name: &str,
        properties: GroupProperties,
        expected_version: Option<u64>,
    ) -> ServiceResult<ThingGroup> {
        names::check_thing_name(name)?;
        let command = RegistryCommand::UpdateThingGroup {
            name: name.to_string(),
            description: properties.description,
            attributes: properties.attributes,
            expected_version,
        };
        match self.propose(command).await? {
            Applied::ThingGroup(g) => Ok(g),
            other => Err(ServiceError::unexpected("UpdateThingGroup", &other)),
        }
    }

    /// DeleteThingGroup. Deleting a group that does not exist succeeds, as in AWS.
    pub async fn delete_thing_group(
        &self,
        name: &str,
        expected_version: Option<u64>,
    ) -> ServiceResult<()> {
        names::check_thing_name(name)?;
        let command = RegistryCommand::DeleteThingGroup {
            name: name.to_string(),
            expected_version,
        };
        self.propose(command).await.map(|_| ())
    }

    /// ListThingGroups, linearizable: under `parent` (direct children, or every
    /// descendant with `recursive`), names starting with `prefix`.
    pub async fn list_thing_groups(
        &self,
        parent: Option<&str>,
        prefix: Option<&str>,
        recursive: bool,
        next_token: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<ThingGroup>, Option<String>)> {
        self.read(|s| {
            s.registry()
                .list_thing_groups(parent, prefix, recursive, next_token, limit)
        })
        .await
    }

    /// AddThingToThingGroup.
    pub async fn add_thing_to_group(&self, group: &str, thing: &str) -> ServiceResult<()> {
        names::check_thing_name(group)?;
        names::check_thing_name(thing)?;
        let command = RegistryCommand::AddThingToThingGroup {
            group: group.to_string(),
            thing: thing.to_string(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// RemoveThingFromThingGroup.
    pub async fn remove_thing_from_group(&self, group: &str, thing: &str) -> ServiceResult<()> {
        names::check_thing_name(group)?;
        names::check_thing_name(thing)?;
        let command = RegistryCommand::RemoveThingFromThingGroup {
            group: group.to_string(),
            thing: thing.to_string(),
        };
        self.propose(command).await.map(|_| ())
    }

    /// ListThingsInThingGroup, linearizable: one page of thing names.
    pub async fn things_in_group(
        &self,
        group: &str,
        recursive: bool,
        next_token: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<String>, Option<String>)> {
        names::check_thing_name(group)?;
        let found = self
            .read(|s| {
                let registry = s.registry();
                registry
                    .thing_group(group)
                    .map(|_| registry.things_in_group(group, recursive))
            })
            .await?
            .ok_or_else(|| group_not_found(group))?;
        Ok(registry::page(found.iter(), |n| n, next_token, limit))
    }

    /// ListThingGroupsForThing, linearizable: one page of group names.
    pub async fn groups_of_thing(
        &self,
        thing: &str,
        next_token: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<String>, Option<String>)> {
        names::check_thing_name(thing)?;
        let found = self
            .read(|s| {
                let registry = s.registry();
                registry
                    .thing(thing)
                    .map(|_| registry.groups_of_thing(thing))
            })
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("Thing {thing} cannot be found.")))?;
        Ok(registry::page(found.iter(), |n| n, next_token, limit))
    }
}
