//! The node's side of the MQTT front: the broker lives in `fleetcore-broker`;
//! here are the parts that need the node's replicated state and its transport:
//! the shadow service on reserved topics ([`shadow`]), the replicated retained
//! store ([`retained`]), registry events ([`registry_events`]), and node links carried by the Raft service's relay
//! ([`RaftPeers`], [`LinkRelay`]).

pub mod registry_events;
pub mod retained;
pub mod shadow;

// The broker's modules under their old paths, for the node's and tools' code.
pub use fleetcore_broker::{
    authorize, broker, codec, delivery, events, link, listener, peers, session, tls, topic, ws,
    Broker, MqttLimits,
};

use std::collections::BTreeMap;
use std::sync::Arc;

use fleetcore_broker::link::{LinkError, PeerTransport};
use fleetcore_broker::peers::LinkReceiver;
use fleetcore_raft::{Connector, RaftNode, RelayHandler};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

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

/// Node links over the Raft transport: the members come from the membership,
/// the streams are the Raft service's `Relay`.
pub struct RaftPeers<C: Connector>(pub RaftNode<C>);

impl<C: Connector> PeerTransport for RaftPeers<C> {
    fn peers(&self) -> BTreeMap<u64, String> {
        let me = self.0.id();
        self.0
            .members()
            .into_iter()
            .filter(|(id, _)| *id != me)
            .map(|(id, info)| (id, info.raft_addr))
            .collect()
    }

    fn open(
        &self,
        addr: &str,
        messages: mpsc::Receiver<Vec<u8>>,
    ) -> BoxFuture<'static, Result<(), LinkError>> {
        let node = self.0.clone();
        let addr = addr.to_string();
        Box::pin(async move {
            node.relay_to(&addr, tokio_stream::wrappers::ReceiverStream::new(messages))
                .await
                .map_err(|e| LinkError::Transport(e.to_string()))
        })
    }
}

/// Feeds what the Raft service's relay receives to the broker's links.
pub struct LinkRelay(pub LinkReceiver);

impl RelayHandler for LinkRelay {
    fn message(&self, from: u64, stream: u64, data: &[u8]) {
        self.0.message(from, stream, data);
    }

    fn closed(&self, from: u64, stream: u64) {
        self.0.closed(from, stream);
    }
}
