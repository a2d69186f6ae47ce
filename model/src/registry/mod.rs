//! The thing registry: things, thing types and thing groups, with AWS IoT's
//! rules for creating, changing and deleting them ([`RegistryCommand`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::Rejection;
use crate::limits;
use crate::names;

mod command;
pub mod thing_group;
pub mod thing_type;

pub use command::RegistryCommand;
use thing_group::ThingGroup;
use thing_type::ThingType;

/// The registry's part of the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registry {
    pub(crate) things: BTreeMap<String, Thing>,
    pub(crate) thing_types: BTreeMap<String, ThingType>,
    pub(crate) thing_groups: BTreeMap<String, ThingGroup>,
}

impl Registry {
    /// A thing by name.
    pub fn thing(&self, name: &str) -> Option<&Thing> {
        self.things.get(name)
    }

    /// A thing type by name.
    pub fn thing_type(&self, name: &str) -> Option<&ThingType> {
        self.thing_types.get(name)
    }

    /// A thing group by name.
    pub fn thing_group(&self, name: &str) -> Option<&ThingGroup> {
        self.thing_groups.get(name)
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.things.is_empty() && self.thing_types.is_empty() && self.thing_groups.is_empty()
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
}

/// Name-ordered pagination: of `items` (in name order), those after `after`, at
/// most `limit`, and the token to go on from when more remain.
pub fn page<'a, T: Clone + 'a>(
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

/// A registered thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thing {
    /// Unique name, the key.
    pub name: String,
    /// Id chosen by the proposer when the thing was created (stable across replicas).
    pub thing_id: String,
    /// Optional thing type.
    pub thing_type_name: Option<String>,
    /// Searchable attributes.
    pub attributes: BTreeMap<String, String>,
    /// Starts at 1, increments on every update.
    pub version: u64,
    /// Creation time, milliseconds since the Unix epoch, stamped by the proposer.
    pub created_at_ms: u64,
}

/// How UpdateThing changes attributes (AWS `attributePayload`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AttributeUpdate {
    /// New attributes. With `merge`, an empty value removes that attribute.
    pub attributes: BTreeMap<String, String>,
    /// Merge into the existing attributes instead of replacing them all.
    pub merge: bool,
}

/// Filters of ListThings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThingQuery {
    /// Only things with this attribute...
    pub attribute_name: Option<String>,
    /// ...set to this value.
    pub attribute_value: Option<String>,
    /// Only things of this type.
    pub thing_type_name: Option<String>,
}

impl ThingQuery {
    /// Whether `thing` passes the filters.
    pub fn matches(&self, thing: &Thing) -> bool {
        if let Some(t) = &self.thing_type_name {
            if thing.thing_type_name.as_ref() != Some(t) {
                return false;
            }
        }
        match (&self.attribute_name, &self.attribute_value) {
            (Some(n), Some(v)) => thing.attributes.get(n) == Some(v),
            (Some(n), None) => thing.attributes.contains_key(n),
            (None, Some(v)) => thing.attributes.values().any(|x| x == v),
            (None, None) => true,
        }
    }
}

pub(crate) fn check_attributes(attributes: &BTreeMap<String, String>) -> Result<(), Rejection> {
    if attributes.len() > limits::THING_ATTRIBUTES_MAX {
        return Err(Rejection::invalid(format!(
            "a thing has at most {} attributes, got {}",
            limits::THING_ATTRIBUTES_MAX,
            attributes.len()
        )));
    }
    for (k, v) in attributes {
        names::check_attribute(k, v)?;
    }
    Ok(())
}

/// Attributes after an `attributePayload`: merged (an empty value removes) or replaced.
pub(crate) fn updated_attributes(
    current: &BTreeMap<String, String>,
    update: &AttributeUpdate,
) -> BTreeMap<String, String> {
    let mut out = if update.merge {
        current.clone()
    } else {
        BTreeMap::new()
    };
    for (k, v) in &update.attributes {
        if v.is_empty() {
            out.remove(k);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// CreateThing: idempotent with the same configuration, `AlreadyExists` with another.
pub(crate) fn create(
    existing: Option<&Thing>,
    name: &str,
    thing_type_name: Option<&str>,
    attributes: &BTreeMap<String, String>,
    thing_id: &str,
    at_ms: u64,
) -> Result<Thing, Rejection> {
    names::check_thing_name(name)?;
    if let Some(t) = thing_type_name {
        names::check_thing_name(t)?;
    }
    check_attributes(attributes)?;
    if let Some(old) = existing {
        if old.thing_type_name.as_deref() == thing_type_name && &old.attributes == attributes {
            return Ok(old.clone());
        }
        return Err(Rejection::AlreadyExists {
            what: format!("thing '{name}' with a different configuration"),
        });
    }
    Ok(Thing {
        name: name.to_string(),
        thing_id: thing_id.to_string(),
        thing_type_name: thing_type_name.map(str::to_string),
        attributes: attributes.clone(),
        version: 1,
        created_at_ms: at_ms,
    })
}

/// UpdateThing: attributes replaced or merged, thing type set or removed, version + 1.
pub(crate) fn update(
    existing: Option<&Thing>,
    name: &str,
    attributes: Option<&AttributeUpdate>,
    thing_type_name: Option<&str>,
    remove_thing_type: bool,
    expected_version: Option<u64>,
) -> Result<Thing, Rejection> {
    let Some(old) = existing else {
        return Err(Rejection::NotFound {
            what: format!("thing '{name}'"),
        });
    };
    Rejection::check_version(expected_version, old.version)?;
    if remove_thing_type && thing_type_name.is_some() {
        return Err(Rejection::invalid(
            "removeThingType and thingTypeName cannot be given together",
        ));
    }
    let mut thing = old.clone();
    if let Some(update) = attributes {
        thing.attributes = updated_attributes(&thing.attributes, update);
        check_attributes(&thing.attributes)?;
    }
    if let Some(t) = thing_type_name {
        names::check_thing_name(t)?;
        thing.thing_type_name = Some(t.to_string());
    }
    if remove_thing_type {
        thing.thing_type_name = None;
    }
    thing.version = old.version + 1;
    Ok(thing)
}

/// DeleteThing: `Ok(false)` if there was nothing to delete (AWS answers success then too).
pub(crate) fn delete(
    existing: Option<&Thing>,
    expected_version: Option<u64>,
) -> Result<bool, Rejection> {
    let Some(old) = existing else {
        return Ok(false);
    };
    Rejection::check_version(expected_version, old.version)?;
    Ok(true)
}
