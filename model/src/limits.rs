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

const _: () = assert!(SHADOW_STATE_BYTES_MAX < SHADOW_REQUEST_BYTES_MAX);
const _: () = assert!(SHADOW_NAME_LEN_MAX <= THING_NAME_LEN_MAX);
