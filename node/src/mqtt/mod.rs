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

/// Requests on reserved topics queued for the shadow service, at most: past this
/// a publish is refused (MQTT 5 PUBACK 0x97; 3.1.1 is disconnected) instead of
/// queued without bound. The queue drains as fast as requests can be spawned.
pub const RESERVED_QUEUE: usize = 4096;
/// Retained stores queued for proposal, at most (a connection has at most 64 in
/// flight). The queue is drained at once, each store in its own task; the bound on
/// proposals in flight (`service::PROPOSALS_IN_FLIGHT_MAX`, refused with 0x97) is
/// what limits them.
pub const RETAINED_QUEUE: usize = 4096;

/// The tasks that serve the broker's requests with the node's service; they stop
/// when this is dropped. The broker holds only the sending ends of their queues,
/// so no `Arc` cycle keeps the service (and the node's database) alive after the
/// node stops.
pub struct BrokerHandlers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for BrokerHandlers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Installs the node's reserved-topic handler (shadows) and the replicated
/// retained-message store on its broker.
pub fn install_handlers<C: Connector>(service: &Service<C>) -> BrokerHandlers {
    let broker = service.broker();
    let shadow_requests = broker.serve_reserved(shadow::serves, RESERVED_QUEUE);
    let shadows = tokio::spawn(shadow::ShadowTopics::new(service.clone()).run(shadow_requests));
    let (stores, store_requests) = mpsc::channel(RETAINED_QUEUE);
    broker.set_retained(Arc::new(retained::RaftRetained::new(
        service.node().state().clone(),
        service.clock(),
        stores,
    )));
    let retained = tokio::spawn(retained::serve_stores(service.clone(), store_requests));
    BrokerHandlers {
        tasks: vec![shadows, retained],
    }
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
