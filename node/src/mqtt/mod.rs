//! The MQTT front: every node terminates MQTT 3.1.1 and 5 itself and the cluster
//! acts as one broker. Bytes become packets only in [`codec`]; [`session`] runs a
//! connection over any byte stream; [`broker`] holds sessions, subscriptions and
//! routes; [`link`] carries routes and messages between nodes; reserved topics
//! (`$aws/things/...`) are served by handlers such as [`shadow`].

pub mod authorize;
pub mod broker;
pub mod codec;
pub mod events;
pub mod link;
pub mod listener;
pub mod retained;
pub mod session;
pub mod tls;
pub mod topic;
pub mod ws;

pub use broker::{Broker, MqttLimits};
pub mod shadow;

use std::sync::Arc;

use fleetcore_raft::Connector;

use crate::service::Service;

/// Installs the node's reserved-topic handlers (shadows) and the replicated
/// retained-message store on its broker.
pub fn install_reserved<C: Connector>(service: &Service<C>) {
    service
        .broker()
        .add_reserved(Arc::new(shadow::ShadowTopics::new(service.clone())));
    service
        .broker()
        .set_retained(Arc::new(retained::RaftRetained::new(service.clone())));
}
