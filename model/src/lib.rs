//! `fleetcore-model`: what Fleetcore's replicated state *means* — the thing
//! registry, device shadow documents (merge, delta, version), retained MQTT
//! messages, IoT policies and certificates with their attachments, and the exactly-once table of
//! recent requests.
//!
//! Owns: [`Command`], [`State::apply`], every validation rule and limit ([`limits`]).
//! Uses: serde, serde_json, thiserror, base64 (binary fields in JSON records). Nothing else.
//! Must not depend on: tokio, openraft, rocksdb, tonic. Must not read a clock,
//! a random number or the environment: time and generated ids arrive inside a
//! [`Command`], so every replica that applies the same log holds identical state.
//!
//! Start at [`State::apply`]: it hands each [`Command`] to its domain's module
//! ([`registry`], [`shadow`], [`retained`], [`cluster`], [`policy`], [`certificate`]), which owns that
//! domain's commands, state and `apply`. [`shadow`] cites the AWS IoT behaviour
//! it reproduces.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bytes_field;
pub mod certificate;
pub mod cluster;
pub mod command;
pub mod error;
pub mod limits;
pub mod names;
pub mod policy;
pub mod registry;
pub mod request;
pub mod retained;
pub mod shadow;
pub mod state;

pub use certificate::{Certificate, CertificateCommand, CertificateStatus};
pub use cluster::ClusterCommand;
pub use command::{Applied, Command, Outcome};
pub use error::Rejection;
pub use policy::{Policy, PolicyCommand};
pub use registry::{thing_group, thing_type};
pub use registry::{AttributeUpdate, RegistryCommand, Thing, ThingQuery};
pub use request::{RequestId, RequestTable};
pub use retained::{RetainedCommand, RetainedMessage};
pub use shadow::{ShadowCommand, ShadowDocument, ShadowKey, ShadowRecord, ShadowUpdated};
pub use state::{State, StateKey, StateRecord};
pub use thing_group::ThingGroup;
pub use thing_type::ThingType;
