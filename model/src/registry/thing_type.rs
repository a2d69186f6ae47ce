//! Thing types (AWS CreateThingType / DeprecateThingType / DeleteThingType): a
//! deprecated type accepts no new things; only a deprecated type with no things
//! left may be deleted.

use serde::{Deserialize, Serialize};

use crate::error::Rejection;
use crate::names;

/// Most searchable attributes a type declares (AWS IoT: 3).
pub const SEARCHABLE_ATTRIBUTES_MAX: usize = 3;
/// Longest description.
pub const DESCRIPTION_LEN_MAX: usize = 2028;

/// A thing type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingType {
    /// Unique name.
    pub name: String,
    /// Id chosen by the proposer.
    pub thing_type_id: String,
    /// Free text.
    pub description: Option<String>,
    /// Attribute names meant for search.
    pub searchable_attributes: Vec<String>,
    /// Deprecated types take no new things.
    pub deprecated: bool,
    /// When it was deprecated, ms since the epoch.
    pub deprecated_at_ms: Option<u64>,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
}

/// Validates and builds a new type; the same definition again is accepted as is.
pub(crate) fn create(
    existing: Option<&ThingType>,
    name: &str,
    description: Option<&str>,
    searchable_attributes: &[String],
    thing_type_id: &str,
    at_ms: u64,
) -> Result<ThingType, Rejection> {
    names::check_thing_name(name)?;
    if description.is_some_and(|d| d.len() > DESCRIPTION_LEN_MAX) {
        return Err(Rejection::invalid(format!(
            "thingTypeDescription is longer than {DESCRIPTION_LEN_MAX} characters"
        )));
    }
    if searchable_attributes.len() > SEARCHABLE_ATTRIBUTES_MAX {
        return Err(Rejection::invalid(format!(
            "a thing type has at most {SEARCHABLE_ATTRIBUTES_MAX} searchable attributes"
        )));
    }
    for a in searchable_attributes {
        names::check_attribute(a, "")?;
    }
    if let Some(old) = existing {
        if old.description.as_deref() == description
            && old.searchable_attributes == searchable_attributes
        {
            return Ok(old.clone());
        }
        return Err(Rejection::AlreadyExists {
            what: format!("thing type '{name}' with a different definition"),
        });
    }
    Ok(ThingType {
        name: name.to_string(),
        thing_type_id: thing_type_id.to_string(),
        description: description.map(str::to_string),
        searchable_attributes: searchable_attributes.to_vec(),
        deprecated: false,
        deprecated_at_ms: None,
        created_at_ms: at_ms,
    })
}

pub(crate) fn not_found(name: &str) -> Rejection {
    Rejection::NotFound {
        what: format!("thing type '{name}'"),
    }
}
