//! The thing registry: AWS IoT's CreateThing / UpdateThing / DeleteThing rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Rejection;
use crate::limits;
use crate::names;

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
