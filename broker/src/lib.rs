//! `fleetcore-broker`: the MQTT broker every Fleetcore node runs. Every node
//! terminates MQTT 3.1.1 and 5 itself and the cluster acts as one broker.
//!
//! Owns: bytes to packets ([`codec`]), a connection over any byte stream
//! ([`session`]), sessions, subscriptions and routes ([`broker`]), routes and
//! messages between nodes ([`link`]), listeners for TCP, TLS and WebSocket
//! ([`listener`], [`tls`], [`ws`]), topic rules ([`topic`]) and the filter
//! index a publish is matched with ([`trie`]), lifecycle events
//! ([`events`]) and the authorization hook ([`authorize`]).
//!
//! Must not depend on Raft, RocksDB or the HTTP API: what it needs from the node
//! comes through traits and queues it defines here: [`link::PeerTransport`]
//! (streams to other nodes), bounded queues of [`broker::ReservedRequest`]s
//! (`$aws/...` handlers such as shadows; the broker holds only the sending end),
//! [`broker::RetainedStore`] (replicated retained messages),
//! [`authorize::Authorizer`], [`clock::Clock`], [`entropy::Entropy`] and
//! [`listener::Listener`] (accepted streams of any network). CI checks the boundary with
//! `cargo tree -p fleetcore-broker -e normal`.
#![forbid(unsafe_code)]

pub mod authorize;
pub mod broker;
pub mod clock;
pub mod codec;
pub mod delivery;
pub mod entropy;
pub mod events;
pub mod link;
pub mod listener;
pub mod peers;
pub mod session;
pub mod tls;
pub mod topic;
pub mod trie;
pub mod ws;

#[cfg(feature = "testing")]
pub mod testing;

pub use broker::{Broker, MqttLimits};
