//! Every limit of the replicated state, in one place. Values follow AWS IoT's
//! published quotas where one exists, so firmware that fits AWS fits Fleetcore.

/// Thing names: 1..=128 characters of `[a-zA-Z0-9:_-]` (AWS IoT).
pub const THING_NAME_LEN_MAX: usize = 128;
/// Named shadow names: 1..=64 characters of `[a-zA-Z0-9:_-]` (AWS IoT).
pub const SHADOW_NAME_LEN_MAX: usize = 64;
/// The `state` part of a shadow document, serialized: 8 KiB (AWS IoT).
pub const SHADOW_STATE_BYTES_MAX: usize = 8 * 1024;
/// A shadow update request as a whole (state plus envelope).
pub const SHADOW_REQUEST_BYTES_MAX: usize = 16 * 1024;
/// Object nesting below `desired` / `reported` (AWS IoT: 6 levels).
pub const SHADOW_DEPTH_MAX: usize = 6;
/// Attributes on one thing.
pub const THING_ATTRIBUTES_MAX: usize = 50;
/// Attribute names: `[a-zA-Z0-9_.,@/:#-]`, 1..=128 characters.
pub const ATTRIBUTE_NAME_LEN_MAX: usize = 128;
/// Attribute values: up to 800 characters.
pub const ATTRIBUTE_VALUE_LEN_MAX: usize = 800;
/// Largest page a list call returns.
pub const LIST_PAGE_MAX: usize = 250;
/// Client tokens are echoed back; keep them short (AWS IoT: 64 bytes).
pub const CLIENT_TOKEN_LEN_MAX: usize = 64;

/// Retained messages stored in the cluster (AWS IoT's default quota per account:
/// 500,000). A retained publish on a new topic beyond it is refused.
pub const RETAINED_MESSAGES_MAX: usize = 500_000;
/// Bytes of retained topics and payloads stored in the cluster. Every node keeps
/// them in memory and in every snapshot, so this bounds both.
pub const RETAINED_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Retained messages one SUBSCRIBE delivers (a filter such as `#` on a large
/// store would otherwise queue them all at once; the session queue holds 10,000).
pub const RETAINED_ON_SUBSCRIBE_MAX: usize = 10_000;
/// Named shadows per thing (the classic shadow not counted).
pub const NAMED_SHADOWS_PER_THING_MAX: usize = 100;

/// How long a deleted shadow's version is kept (AWS IoT: 48 hours): an update
/// within it continues the version, after it the leader's sweep removes the
/// tombstone and a new shadow starts again.
pub const SHADOW_TOMBSTONE_MS: u64 = 48 * 3600 * 1000;

/// Things in the cluster. AWS IoT sets no limit; every node keeps every thing in
/// memory, so Fleetcore bounds it (an operator raises it with `PUT /quotas`).
pub const THINGS_MAX: usize = 1_000_000;
/// Thing groups in the cluster; bounded for the same reason as things.
pub const THING_GROUPS_MAX: usize = 100_000;

const _: () = assert!(SHADOW_STATE_BYTES_MAX < SHADOW_REQUEST_BYTES_MAX);
const _: () = assert!(SHADOW_NAME_LEN_MAX <= THING_NAME_LEN_MAX);

/// The quotas of the replicated state: replicated themselves (set with
/// `Command::SetQuotas`), so every replica applies the same ones. A quota lowered
/// below what is stored refuses new entries and removes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quotas {
    /// Things in the cluster.
    pub things: u64,
    /// Thing groups in the cluster.
    pub thing_groups: u64,
    /// Named shadows per thing.
    pub named_shadows_per_thing: u64,
    /// Bytes of a shadow's `state` document.
    pub shadow_state_bytes: u64,
    /// Retained messages in the cluster.
    pub retained_messages: u64,
    /// Bytes of retained topics and payloads in the cluster.
    pub retained_bytes: u64,
    /// Bytes of one retained message's payload (at most the hard limit,
    /// `retained::PAYLOAD_BYTES_MAX`).
    pub retained_payload_bytes: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            things: THINGS_MAX as u64,
            thing_groups: THING_GROUPS_MAX as u64,
            named_shadows_per_thing: NAMED_SHADOWS_PER_THING_MAX as u64,
            shadow_state_bytes: SHADOW_STATE_BYTES_MAX as u64,
            retained_messages: RETAINED_MESSAGES_MAX as u64,
            retained_bytes: RETAINED_BYTES_MAX as u64,
            retained_payload_bytes: crate::retained::PAYLOAD_BYTES_MAX as u64,
        }
    }
}

impl Quotas {
    /// Each quota with the largest value it may be set to. Beyond these a
    /// request could not fit (shadow documents ride in a 16 KiB request; a
    /// retained payload above `retained::PAYLOAD_BYTES_MAX` is refused anyway) or
    /// one node's memory would be the limit.
    pub fn ceilings() -> Quotas {
        Quotas {
            things: 100_000_000,
            thing_groups: 10_000_000,
            named_shadows_per_thing: 10_000,
            shadow_state_bytes: (SHADOW_REQUEST_BYTES_MAX - 1) as u64,
            retained_messages: 100_000_000,
            retained_bytes: 64 << 30,
            retained_payload_bytes: crate::retained::PAYLOAD_BYTES_MAX as u64,
        }
    }

    fn fields(&self) -> [(&'static str, u64); 7] {
        [
            ("things", self.things),
            ("thingGroups", self.thing_groups),
            ("namedShadowsPerThing", self.named_shadows_per_thing),
            ("shadowStateBytes", self.shadow_state_bytes),
            ("retainedMessages", self.retained_messages),
            ("retainedBytes", self.retained_bytes),
            ("retainedPayloadBytes", self.retained_payload_bytes),
        ]
    }

    /// Refuses a quota of 0 or above its ceiling, naming it.
    pub fn check(&self) -> Result<(), crate::error::Rejection> {
        for ((name, value), (_, ceiling)) in
            self.fields().into_iter().zip(Self::ceilings().fields())
        {
            if value == 0 || value > ceiling {
                return Err(crate::error::Rejection::invalid(format!(
                    "quota {name} must be between 1 and {ceiling}, not {value}"
                )));
            }
        }
        Ok(())
    }
}
