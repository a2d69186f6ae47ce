//! Thing groups (AWS CreateThingGroup ... ListThingsInThingGroup): groups form a
//! tree through `parent`; a thing belongs to at most [`GROUPS_PER_THING_MAX`] groups.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::check_attributes;
use crate::error::Rejection;
use crate::names;

/// Groups one thing may belong to (AWS IoT: 10).
pub const GROUPS_PER_THING_MAX: usize = 10;
/// Depth of the group tree (AWS IoT: 7 levels).
pub const GROUP_DEPTH_MAX: usize = 7;

/// A thing group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThingGroup {
    /// Unique name.
    pub name: String,
    /// Id chosen by the proposer.
    pub thing_group_id: String,
    /// Parent group, if any (set at creation, as in AWS).
    pub parent: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Starts at 1, increments on every update.
    pub version: u64,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
    /// Direct members.
    pub things: BTreeSet<String>,
}

pub(crate) fn not_found(name: &str) -> Rejection {
    Rejection::NotFound {
        what: format!("thing group '{name}'"),
    }
}

/// Checks a new group's fields. `depth_of_parent` is the parent's depth (root = 1).
pub(crate) fn check_new(
    name: &str,
    attributes: &BTreeMap<String, String>,
    depth_of_parent: Option<usize>,
) -> Result<(), Rejection> {
    names::check_thing_name(name)?;
    check_attributes(attributes)?;
    if depth_of_parent.is_some_and(|d| d + 1 > GROUP_DEPTH_MAX) {
        return Err(Rejection::invalid(format!(
            "thing groups nest at most {GROUP_DEPTH_MAX} levels deep"
        )));
    }
    Ok(())
}
