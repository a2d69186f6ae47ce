//! What the clients did and saw: one [`Event`] per operation, with its invocation
//! and completion times (simulated ms) and its result.

use std::sync::{Arc, Mutex};

/// An operation: on one shadow, or on one thing of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A shadow update.
    Update,
    /// A shadow update carrying `version`: applied only if the shadow is at it.
    UpdateIfVersion(u64),
    /// A linearizable read of the shadow's version.
    Read,
    /// CreateThing (the key is the thing name).
    CreateThing,
    /// DeleteThing (the key is the thing name).
    DeleteThing,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: the version the update produced, or the version the read saw
    /// (0 when the shadow did not exist).
    Ok(u64),
    /// Refused: certainly not applied.
    Failed,
    /// Timed out or lost: may or may not have been applied.
    Unknown,
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Which client.
    pub client: usize,
    /// Which shadow (thing name).
    pub key: String,
    /// What it did.
    pub op: Op,
    /// Invocation time, simulated ms.
    pub invoked_ms: u64,
    /// Completion time, simulated ms.
    pub completed_ms: u64,
    /// The result.
    pub outcome: Outcome,
}

/// A shared, append-only history.
#[derive(Debug, Clone, Default)]
pub struct History(Arc<Mutex<Vec<Event>>>);

impl History {
    /// Records a completed operation.
    pub fn record(&self, event: Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
