//! The cluster's own replicated records: each member's data-dir incarnation and
//! the quotas in force.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{Applied, Outcome};
use crate::error::Rejection;
use crate::limits::Quotas;
use crate::state::{Changes, StateKey};

/// A change to the cluster's records. Variant order is part of format 2: new
/// variants go last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterCommand {
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
    /// Replaces the quotas of the replicated state (`PUT /quotas`).
    SetQuotas(Quotas),
}

impl ClusterCommand {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClusterCommand::RecordIncarnation { .. } => "record_incarnation",
            ClusterCommand::SetQuotas(_) => "set_quotas",
        }
    }
}

impl std::fmt::Display for ClusterCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterCommand::RecordIncarnation {
                node, incarnation, ..
            } => write!(f, "{} {node} {incarnation:016x}", self.kind()),
            ClusterCommand::SetQuotas(q) => write!(f, "{} {q:?}", self.kind()),
        }
    }
}

/// The cluster's part of the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterRecords {
    /// Each member's data-dir incarnation, as recorded.
    pub(crate) incarnations: BTreeMap<u64, u64>,
    /// The quotas in force; `None` until set: the defaults.
    pub(crate) quotas: Option<Quotas>,
}

impl ClusterRecords {
    /// Applies one cluster command; `changed` collects the keys it wrote.
    pub(crate) fn apply(&mut self, command: &ClusterCommand, changed: &mut Changes) -> Outcome {
        match command {
            ClusterCommand::RecordIncarnation {
                node,
                incarnation,
                replace,
            } => {
                match self.incarnations.get(node) {
                    Some(recorded) if recorded != incarnation && !replace => {
                        return Err(Rejection::invalid(format!(
                            "node {node}'s data dir is not the one this cluster knows (incarnation {incarnation:016x}, recorded {recorded:016x}): it was wiped or restored from a backup"
                        )))
                    }
                    Some(recorded) if recorded == incarnation => return Ok(Applied::Done),
                    _ => {}
                }
                self.incarnations.insert(*node, *incarnation);
                changed.insert(StateKey::Incarnation(*node));
                Ok(Applied::Done)
            }
            ClusterCommand::SetQuotas(quotas) => {
                quotas.check()?;
                self.quotas = Some(*quotas);
                changed.insert(StateKey::Quotas);
                Ok(Applied::Done)
            }
        }
    }

    /// The quotas in force.
    pub fn quotas(&self) -> Quotas {
        self.quotas.unwrap_or_default()
    }

    /// The incarnation recorded for member `node`, if any.
    pub fn incarnation(&self, node: u64) -> Option<u64> {
        self.incarnations.get(&node).copied()
    }
}
