//! What a session receives and how it subscribed: the types the broker, the
//! sessions and the node links share.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::codec::{Message, Qos};

/// Options of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubOptions {
    /// Granted QoS.
    pub qos: u8,
    /// MQTT 5 no-local.
    pub no_local: bool,
    /// MQTT 5 retain-as-published.
    pub retain_as_published: bool,
    /// MQTT 5 subscription identifier.
    pub id: Option<usize>,
}

impl SubOptions {
    pub(crate) fn qos(&self) -> Qos {
        Qos::from_u8(self.qos).unwrap_or(Qos::AtMostOnce)
    }
}

/// A message queued for one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message; `qos` and `retain` already as delivered.
    pub message: Message,
    /// Subscription identifiers of the matching subscriptions.
    pub subscription_ids: Vec<usize>,
    /// When it expires (MQTT 5 message expiry).
    pub expires_at: Option<Instant>,
}
