//! Column families and key layouts.

/// Raft log entries, key = big-endian index (key order is index order).
pub const CF_LOG: &str = "log";
/// Raft metadata: vote, last purged log id, cluster id.
pub const CF_RAFT_META: &str = "raft_meta";
/// State machine metadata: last applied log id and membership.
pub const CF_SM_META: &str = "sm_meta";
/// Things, key = thing name.
pub const CF_THINGS: &str = "things";
/// Shadows, key = thing name, 0x00, shadow name (empty for the classic shadow), so a
/// thing's shadows are one range.
pub const CF_SHADOWS: &str = "shadows";

/// Thing types, key = type name.
pub const CF_THING_TYPES: &str = "thing_types";
/// Thing groups, key = group name.
pub const CF_THING_GROUPS: &str = "thing_groups";

/// Retained MQTT messages, key = topic.
pub const CF_RETAINED: &str = "retained";

/// The exactly-once table: `r` + origin + sequence (big-endian) for a request,
/// `o` + origin for what is remembered of an origin.
pub const CF_REQUESTS: &str = "requests";

/// Cluster-wide records: each member's data-dir incarnation as the cluster
/// recorded it (`i` + node id, big-endian), and the quotas (`q`).
pub const CF_NODES: &str = "nodes";

/// IoT policies, key = policy name.
pub const CF_POLICIES: &str = "policies";

/// Certificates, key = certificate id.
pub const CF_CERTIFICATES: &str = "certificates";

/// Every column family, in creation order.
pub const ALL_CFS: [&str; 12] = [
    CF_LOG,
    CF_RAFT_META,
    CF_SM_META,
    CF_THINGS,
    CF_SHADOWS,
    CF_THING_TYPES,
    CF_THING_GROUPS,
    CF_RETAINED,
    CF_REQUESTS,
    CF_NODES,
    CF_POLICIES,
    CF_CERTIFICATES,
];

/// The state column families (cleared and refilled by a snapshot install). A
/// snapshot names a record's family by its index here: new ones go last.
pub const STATE_CFS: [&str; 9] = [
    CF_THINGS,
    CF_SHADOWS,
    CF_THING_TYPES,
    CF_THING_GROUPS,
    CF_RETAINED,
    CF_REQUESTS,
    CF_NODES,
    CF_POLICIES,
    CF_CERTIFICATES,
];

/// Keys in [`CF_RAFT_META`].
pub const META_VOTE: &[u8] = b"vote";
/// Keys in [`CF_RAFT_META`].
pub const META_LAST_PURGED: &[u8] = b"last_purged";
/// The cluster this data belongs to, in [`CF_RAFT_META`].
pub const META_CLUSTER_ID: &[u8] = b"cluster_id";
/// The node id this data belongs to, in [`CF_RAFT_META`].
pub const META_NODE_ID: &[u8] = b"node_id";
/// This data dir's incarnation, in [`CF_RAFT_META`].
pub const META_INCARNATION: &[u8] = b"incarnation";
/// Keys in [`CF_SM_META`].
pub const SM_LAST_APPLIED: &[u8] = b"last_applied";
/// Keys in [`CF_SM_META`].
pub const SM_MEMBERSHIP: &[u8] = b"membership";
/// Present while a snapshot install is under way (its meta): a node that stops
/// in the middle redoes the install from its snapshot file when it opens.
pub const SM_INSTALLING: &[u8] = b"installing";

/// Log key for `index`.
pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Index of a log key; `None` if the key is not 8 bytes.
pub fn log_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Where a state key lives: (column family, key bytes).
pub fn state_key(key: &fleetcore_model::StateKey) -> (&'static str, Vec<u8>) {
    match key {
        fleetcore_model::StateKey::Thing(name) => (CF_THINGS, name.as_bytes().to_vec()),
        fleetcore_model::StateKey::Shadow(k) => {
            let mut bytes = Vec::with_capacity(k.thing.len() + 1 + k.name.len());
            bytes.extend_from_slice(k.thing.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(k.name.as_bytes());
            (CF_SHADOWS, bytes)
        }
        fleetcore_model::StateKey::ThingType(name) => (CF_THING_TYPES, name.as_bytes().to_vec()),
        fleetcore_model::StateKey::ThingGroup(name) => (CF_THING_GROUPS, name.as_bytes().to_vec()),
        fleetcore_model::StateKey::Retained(topic) => (CF_RETAINED, topic.as_bytes().to_vec()),
        fleetcore_model::StateKey::Request(id) => {
            let mut bytes = Vec::with_capacity(17);
            bytes.push(b'r');
            bytes.extend_from_slice(&id.origin.to_be_bytes());
            bytes.extend_from_slice(&id.seq.to_be_bytes());
            (CF_REQUESTS, bytes)
        }
        fleetcore_model::StateKey::Incarnation(node) => {
            let mut bytes = Vec::with_capacity(9);
            bytes.push(b'i');
            bytes.extend_from_slice(&node.to_be_bytes());
            (CF_NODES, bytes)
        }
        fleetcore_model::StateKey::Quotas => (CF_NODES, b"q".to_vec()),
        fleetcore_model::StateKey::Policy(name) => (CF_POLICIES, name.as_bytes().to_vec()),
        fleetcore_model::StateKey::Certificate(id) => (CF_CERTIFICATES, id.as_bytes().to_vec()),
        fleetcore_model::StateKey::RequestOrigin(origin) => {
            let mut bytes = Vec::with_capacity(9);
            bytes.push(b'o');
            bytes.extend_from_slice(&origin.to_be_bytes());
            (CF_REQUESTS, bytes)
        }
    }
}
