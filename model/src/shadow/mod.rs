//! Device shadows with AWS IoT's semantics (AWS IoT Developer Guide, "Device Shadow
//! service documents" and "Shadow document examples"):
//!
//! - An update's `state.desired` / `state.reported` are merged into the document;
//!   objects merge key by key, a `null` value deletes that key, anything else
//!   (arrays included) replaces. `"desired": null` removes the whole section and
//!   `"state": null` clears the document.
//! - `version` starts at 1 and increases by exactly one on every accepted update; an
//!   update or delete that carries `version` is refused with 409 unless it matches.
//!   Deleting keeps the version, so a re-created shadow continues from it.
//! - `metadata` mirrors the state with `{"timestamp": seconds}` on every leaf.
//! - `delta` holds the desired keys whose value differs from reported.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::Rejection;
use crate::limits;
use crate::names;

mod command;
pub use command::{ShadowCommand, Shadows};

/// Which shadow: the thing and the shadow's name (empty for the classic shadow).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShadowKey {
    /// The thing's name.
    pub thing: String,
    /// The named shadow's name; `""` is the classic (unnamed) shadow.
    pub name: String,
}

impl ShadowKey {
    /// The classic shadow of `thing`.
    pub fn classic(thing: impl Into<String>) -> Self {
        ShadowKey {
            thing: thing.into(),
            name: String::new(),
        }
    }

    /// A named shadow of `thing`.
    pub fn named(thing: impl Into<String>, name: impl Into<String>) -> Self {
        ShadowKey {
            thing: thing.into(),
            name: name.into(),
        }
    }

    /// Validates both names.
    pub fn check(&self) -> Result<(), Rejection> {
        names::check_thing_name(&self.thing)?;
        if !self.name.is_empty() {
            names::check_shadow_name(&self.name)?;
        }
        Ok(())
    }

    fn not_found(&self) -> Rejection {
        let name = if self.name.is_empty() {
            "Classic shadow"
        } else {
            &self.name
        };
        Rejection::NotFound {
            what: format!("shadow '{name}' of thing '{}'", self.thing),
        }
    }
}

/// A shadow's contents. Sections are `None` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ShadowDocument {
    /// `state.desired`.
    pub desired: Option<Map<String, Value>>,
    /// `state.reported`.
    pub reported: Option<Map<String, Value>>,
    /// `metadata.desired`, same shape as `desired`, leaves are `{"timestamp": s}`.
    pub metadata_desired: Option<Map<String, Value>>,
    /// `metadata.reported`.
    pub metadata_reported: Option<Map<String, Value>>,
    /// Seconds since the epoch of the last accepted update.
    pub timestamp: u64,
}

/// What the store holds per shadow key: a version that survives deletion, and the
/// document while the shadow exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ShadowRecord {
    /// Version of the last accepted update (0: never updated).
    pub version: u64,
    /// `None` after a delete (or before the first update).
    pub document: Option<ShadowDocument>,
    /// When it was deleted (the delete command's clock), while it is a tombstone:
    /// AWS IoT keeps a deleted shadow's version for 48 hours, then forgets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at_ms: Option<u64>,
}

/// The result of an accepted update: what the MQTT and HTTP layers publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowUpdated {
    /// Body of `/update/accepted` (and of UpdateThingShadow's answer).
    pub accepted: Value,
    /// Body of `/update/documents`.
    pub documents: Value,
    /// Body of `/update/delta`, when desired differs from reported after the update.
    pub delta: Option<Value>,
}

/// A parsed, validated update request.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowUpdateRequest {
    /// `state`: `None` means `"state": null` (clear the document).
    pub state: Option<StateUpdate>,
    /// Expected current version.
    pub version: Option<u64>,
    /// Echoed back.
    pub client_token: Option<String>,
}

/// The `state` of an update. Outer `None`: section untouched; inner `None`: section set to null.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateUpdate {
    /// `state.desired`.
    pub desired: Option<Option<Map<String, Value>>>,
    /// `state.reported`.
    pub reported: Option<Option<Map<String, Value>>>,
}

impl ShadowUpdateRequest {
    /// Parses the JSON body of an update, with AWS's checks and messages.
    pub fn parse(body: &[u8]) -> Result<Self, Rejection> {
        if body.len() > limits::SHADOW_REQUEST_BYTES_MAX {
            return Err(Rejection::TooLarge {
                what: "shadow update request".into(),
                bytes: body.len(),
                max: limits::SHADOW_REQUEST_BYTES_MAX,
            });
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Rejection::invalid(format!("Payload contains invalid json: {e}")))?;
        let Value::Object(mut root) = value else {
            return Err(Rejection::invalid("Payload must be a JSON object"));
        };
        let client_token = match root.remove("clientToken") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= limits::CLIENT_TOKEN_LEN_MAX => Some(s),
            Some(Value::String(_)) => {
                return Err(Rejection::invalid(format!(
                    "clientToken is longer than {} bytes",
                    limits::CLIENT_TOKEN_LEN_MAX
                )))
            }
            Some(_) => return Err(Rejection::invalid("Invalid clientToken: must be a string")),
        };
        let version = match root.remove("version") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| {
                Rejection::invalid("Invalid version: must be a non-negative integer")
            })?),
            Some(_) => return Err(Rejection::invalid("Invalid version: must be a number")),
        };
        let state = match root.remove("state") {
            None => return Err(Rejection::invalid("Missing required node: state")),
            Some(Value::Null) => None,
            Some(Value::Object(mut s)) => {
                let desired = take_section(&mut s, "desired")?;
                let reported = take_section(&mut s, "reported")?;
                if let Some(other) = s.keys().next() {
                    return Err(Rejection::invalid(format!(
                        "State contains an invalid node: '{other}'"
                    )));
                }
                if desired.is_none() && reported.is_none() {
                    return Err(Rejection::invalid(
                        "State node must have a desired or reported node",
                    ));
                }
                Some(StateUpdate { desired, reported })
            }
            Some(_) => return Err(Rejection::invalid("State node must be an object")),
        };
        Ok(ShadowUpdateRequest {
            state,
            version,
            client_token,
        })
    }
}

fn take_section(
    state: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<Option<Map<String, Value>>>, Rejection> {
    match state.remove(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Object(m)) => {
            let depth = depth_of(&m);
            if depth > limits::SHADOW_DEPTH_MAX {
                return Err(Rejection::invalid(format!(
                    "JSON contains too many levels of nesting; maximum is {}",
                    limits::SHADOW_DEPTH_MAX
                )));
            }
            if m.values().any(contains_null_in_array) {
                // `null` means "delete this key" in an update; inside an array it
                // has no meaning, and AWS IoT refuses it.
                return Err(Rejection::invalid(format!(
                    "{name} node contains an array with a null element"
                )));
            }
            Ok(Some(Some(m)))
        }
        Some(_) => Err(Rejection::invalid(format!("{name} node must be an object"))),
    }
}

/// True when an array at any depth of `v` has a `null` element.
fn contains_null_in_array(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().any(|e| e.is_null() || contains_null_in_array(e)),
        Value::Object(m) => m.values().any(contains_null_in_array),
        _ => false,
    }
}

/// Nesting depth of objects: `{}` and `{"a":1}` are 1, `{"a":{"b":1}}` is 2.
fn depth_of(map: &Map<String, Value>) -> usize {
    1 + map.values().map(value_depth).max().unwrap_or(0)
}

fn value_depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => depth_of(m),
        Value::Array(a) => a.iter().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Merges `update` into `target`: null deletes, objects merge, the rest replaces.
/// Returns the metadata of what the update touched, each leaf stamped with `ts`.
fn merge(
    target: &mut Map<String, Value>,
    update: &Map<String, Value>,
    meta: &mut Map<String, Value>,
    ts: u64,
) {
    for (key, value) in update {
        match value {
            Value::Null => {
                target.remove(key);
                meta.remove(key);
            }
            Value::Object(sub) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                let meta_slot = meta
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !meta_slot.is_object() || meta_slot.get("timestamp").is_some() {
                    *meta_slot = Value::Object(Map::new());
                }
                if let (Value::Object(t), Value::Object(m)) = (slot, meta_slot) {
                    merge(t, sub, m, ts);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
                meta.insert(key.clone(), leaf_metadata(other, ts));
            }
        }
    }
}

fn leaf_metadata(value: &Value, ts: u64) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| leaf_metadata(v, ts)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), leaf_metadata(v, ts)))
                .collect(),
        ),
        _ => json!({ "timestamp": ts }),
    }
}

/// Metadata for the keys an update mentioned (what `/accepted` carries).
fn request_metadata(update: &Map<String, Value>, ts: u64) -> Map<String, Value> {
    update
        .iter()
        .map(|(k, v)| {
            let m = match v {
                Value::Object(sub) => Value::Object(request_metadata(sub, ts)),
                other => leaf_metadata(other, ts),
            };
            (k.clone(), m)
        })
        .collect()
}

/// The desired keys whose value differs from reported; `None` when there are none.
pub fn delta(
    desired: Option<&Map<String, Value>>,
    reported: Option<&Map<String, Value>>,
) -> Option<Map<String, Value>> {
    let desired = desired?;
    let mut out = Map::new();
    for (key, want) in desired {
        let have = reported.and_then(|r| r.get(key));
        match (want, have) {
            (Value::Object(w), Some(Value::Object(h))) => {
                if let Some(d) = delta(Some(w), Some(h)) {
                    out.insert(key.clone(), Value::Object(d));
                }
            }
            (w, Some(h)) if w == h => {}
            (w, _) => {
                out.insert(key.clone(), w.clone());
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Restricts metadata to the shape of `delta`.
fn metadata_for(
    delta: &Map<String, Value>,
    meta: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in delta {
        let m = meta.and_then(|m| m.get(key));
        match (value, m) {
            (Value::Object(sub), Some(Value::Object(msub))) if msub.get("timestamp").is_none() => {
                out.insert(key.clone(), Value::Object(metadata_for(sub, Some(msub))));
            }
            (_, Some(m)) => {
                out.insert(key.clone(), m.clone());
            }
            _ => {}
        }
    }
    out
}

fn section(m: &Option<Map<String, Value>>) -> Option<Value> {
    m.as_ref().map(|m| Value::Object(m.clone()))
}

impl ShadowDocument {
    /// `{"desired":..,"reported":..}` with absent sections left out.
    pub fn state_json(&self) -> Value {
        let mut s = Map::new();
        if let Some(d) = section(&self.desired) {
            s.insert("desired".into(), d);
        }
        if let Some(r) = section(&self.reported) {
            s.insert("reported".into(), r);
        }
        Value::Object(s)
    }

    /// `metadata` with absent sections left out.
    pub fn metadata_json(&self) -> Value {
        let mut s = Map::new();
        if let Some(d) = section(&self.metadata_desired) {
            s.insert("desired".into(), d);
        }
        if let Some(r) = section(&self.metadata_reported) {
            s.insert("reported".into(), r);
        }
        Value::Object(s)
    }

    /// The current delta, if any.
    pub fn delta(&self) -> Option<Map<String, Value>> {
        delta(self.desired.as_ref(), self.reported.as_ref())
    }

    /// Serialized size of the state (what AWS's 8 KiB limit counts).
    pub fn state_bytes(&self) -> usize {
        serde_json::to_vec(&self.state_json()).map_or(usize::MAX, |v| v.len())
    }
}

impl ShadowRecord {
    /// The body of GetThingShadow / `/get/accepted` (without `timestamp` and `clientToken`,
    /// which belong to the reply, not the document).
    pub fn get_response(&self, key: &ShadowKey) -> Result<Value, Rejection> {
        let Some(doc) = &self.document else {
            return Err(key.not_found());
        };
        let mut state = doc.state_json();
        if let (Some(d), Value::Object(s)) = (doc.delta(), &mut state) {
            s.insert("delta".into(), Value::Object(d));
        }
        Ok(json!({
            "state": state,
            "metadata": doc.metadata_json(),
            "version": self.version,
            "timestamp": doc.timestamp,
        }))
    }

    fn documents_entry(&self) -> Value {
        match &self.document {
            Some(doc) => json!({
                "state": doc.state_json(),
                "metadata": doc.metadata_json(),
                "version": self.version,
            }),
            None => Value::Null,
        }
    }

    /// Applies an update at `ts` (seconds). Deterministic: everything comes in.
    pub fn update(
        &mut self,
        key: &ShadowKey,
        request: &ShadowUpdateRequest,
        ts: u64,
        max_state_bytes: usize,
    ) -> Result<ShadowUpdated, Rejection> {
        key.check()?;
        Rejection::check_version(request.version, self.version)?;
        let previous = self.documents_entry();
        let mut doc = self.document.clone().unwrap_or_default();
        let mut accepted_state = Map::new();
        let mut accepted_meta = Map::new();
        match &request.state {
            None => {
                doc = ShadowDocument::default();
            }
            Some(update) => {
                for (name, change, target, meta) in [
                    (
                        "desired",
                        &update.desired,
                        &mut doc.desired,
                        &mut doc.metadata_desired,
                    ),
                    (
                        "reported",
                        &update.reported,
                        &mut doc.reported,
                        &mut doc.metadata_reported,
                    ),
                ] {
                    match change {
                        None => {}
                        Some(None) => {
                            *target = None;
                            *meta = None;
                            accepted_state.insert(name.into(), Value::Null);
                        }
                        Some(Some(changes)) => {
                            let t = target.get_or_insert_with(Map::new);
                            let m = meta.get_or_insert_with(Map::new);
                            merge(t, changes, m, ts);
                            if t.is_empty() {
                                *target = None;
                                *meta = None;
                            }
                            accepted_state.insert(name.into(), Value::Object(changes.clone()));
                            accepted_meta
                                .insert(name.into(), Value::Object(request_metadata(changes, ts)));
                        }
                    }
                }
            }
        }
        let bytes = doc.state_bytes();
        if bytes > max_state_bytes {
            return Err(Rejection::TooLarge {
                what: "shadow state document".into(),
                bytes,
                max: max_state_bytes,
            });
        }
        for m in [&doc.desired, &doc.reported].into_iter().flatten() {
            if depth_of(m) > limits::SHADOW_DEPTH_MAX {
                return Err(Rejection::invalid(format!(
                    "JSON contains too many levels of nesting; maximum is {}",
                    limits::SHADOW_DEPTH_MAX
                )));
            }
        }
        doc.timestamp = ts;
        let version = self.version + 1;
        assert!(version > self.version, "shadow version must advance");
        let delta_doc = doc.delta();
        self.version = version;
        self.document = Some(doc);

        let token = request.client_token.clone();
        let with_token = |mut v: Value| {
            if let (Some(t), Value::Object(m)) = (&token, &mut v) {
                m.insert("clientToken".into(), Value::String(t.clone()));
            }
            v
        };
        let accepted_state = match &request.state {
            None => Value::Null,
            Some(_) => Value::Object(accepted_state),
        };
        let accepted = with_token(json!({
            "state": accepted_state,
            "metadata": Value::Object(accepted_meta),
            "version": version,
            "timestamp": ts,
        }));
        let documents = with_token(json!({
            "previous": previous,
            "current": self.documents_entry(),
            "timestamp": ts,
        }));
        // AWS publishes /delta when an accepted update leaves desired != reported.
        let delta = delta_doc.map(|d| {
            let meta = self
                .document
                .as_ref()
                .map(|doc| metadata_for(&d, doc.metadata_desired.as_ref()))
                .unwrap_or_default();
            with_token(json!({
                "state": Value::Object(d),
                "metadata": Value::Object(meta),
                "version": version,
                "timestamp": ts,
            }))
        });
        Ok(ShadowUpdated {
            accepted,
            documents,
            delta,
        })
    }

    /// Deletes the document, keeping the version. Returns the `/delete/accepted` body.
    pub fn delete(
        &mut self,
        key: &ShadowKey,
        expected_version: Option<u64>,
        client_token: Option<&str>,
        ts: u64,
    ) -> Result<Value, Rejection> {
        key.check()?;
        if self.document.is_none() {
            return Err(key.not_found());
        }
        Rejection::check_version(expected_version, self.version)?;
        self.document = None;
        let mut body = json!({ "version": self.version, "timestamp": ts });
        if let (Some(t), Value::Object(m)) = (client_token, &mut body) {
            m.insert("clientToken".into(), Value::String(t.to_string()));
        }
        Ok(body)
    }
}
