//! The running side of node links: a task per peer that keeps its stream open
//! through a [`PeerTransport`] and feeds it from the peer's queue in [`Links`](crate::link::Links),
//! and the [`LinkReceiver`] that hands what peers send to the broker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::link::{
    decode, encode, LinkMessage, Peer, PeerTransport, Unacked, PEER_QUEUE, UNACKED_MAX,
};

/// Keeps one outgoing stream per cluster member, following membership changes.
pub fn spawn_link_manager(
    transport: Arc<dyn PeerTransport>,
    broker: Broker,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let members = transport.peers();
            {
                let mut peers = broker
                    .links()
                    .peers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                peers.retain(|id, p| {
                    let keep = members.get(id) == Some(&p.addr);
                    if !keep {
                        p.task.abort();
                        if !members.contains_key(id) {
                            broker.forget_peer(*id);
                        }
                    }
                    keep
                });
                for (id, addr) in members {
                    if peers.contains_key(&id) {
                        continue;
                    }
                    let (tx, rx) = mpsc::channel(PEER_QUEUE);
                    let connected = Arc::new(AtomicBool::new(false));
                    let unacked = Unacked::default();
                    let reset = Arc::new(tokio::sync::Notify::new());
                    let task = tokio::spawn(run_peer(
                        transport.clone(),
                        broker.clone(),
                        addr.clone(),
                        rx,
                        connected.clone(),
                        unacked.clone(),
                        reset.clone(),
                    ));
                    peers.insert(
                        id,
                        Peer {
                            tx,
                            connected,
                            addr,
                            unacked,
                            reset,
                            task,
                        },
                    );
                }
            }
            // Acknowledge forwards often: the sender holds them until then.
            for _ in 0..5 {
                broker.links().send_acks();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    })
}

async fn run_peer(
    transport: Arc<dyn PeerTransport>,
    broker: Broker,
    addr: String,
    rx: mpsc::Receiver<LinkMessage>,
    connected: Arc<AtomicBool>,
    unacked: Unacked,
    reset: Arc<tokio::sync::Notify>,
) {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let next_seq = Arc::new(std::sync::atomic::AtomicU64::new(1));
    loop {
        let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(1024);
        let hello = LinkMessage::Routes {
            node: broker.node_id(),
            epoch: broker.links().epoch,
            routes: broker.local_routes(),
        };
        let Ok(first) = encode(&hello) else {
            return;
        };
        if out_tx.send(first).await.is_err() {
            return;
        }
        // Pump: first what the last stream left unacknowledged, then the queue.
        let pump = {
            let rx = rx.clone();
            let connected = connected.clone();
            let unacked = unacked.clone();
            let next_seq = next_seq.clone();
            let broker = broker.clone();
            tokio::spawn(async move {
                let resend: Vec<LinkMessage> = unacked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|(_, m)| m.clone())
                    .collect();
                for m in resend {
                    let Ok(bytes) = encode(&m) else { continue };
                    if out_tx.send(bytes).await.is_err() {
                        return;
                    }
                }
                let mut rx = rx.lock().await;
                while let Some(mut m) = rx.recv().await {
                    if let LinkMessage::Publish { message, seq, .. } = &mut m {
                        if message.qos > 0 {
                            *seq = next_seq.fetch_add(1, Ordering::Relaxed);
                            let mut q = unacked.lock().unwrap_or_else(|p| p.into_inner());
                            if q.len() >= UNACKED_MAX {
                                q.pop_front();
                                broker
                                    .stats()
                                    .forward_dropped
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                            q.push_back((*seq, m.clone()));
                        }
                    }
                    let Ok(bytes) = encode(&m) else { continue };
                    if out_tx.send(bytes).await.is_err() {
                        break;
                    }
                    connected.store(true, Ordering::Relaxed);
                }
            })
        };
        connected.store(true, Ordering::Relaxed);
        let result = tokio::select! {
            biased;
            r = transport.open(&addr, out_rx) => r,
            _ = reset.notified() => Ok(()),
        };
        connected.store(false, Ordering::Relaxed);
        pump.abort();
        let _ = pump.await;
        let failed = result.is_err();
        if let Err(e) = result {
            tracing::debug!(peer = %addr, error = %e, "node link down, reconnecting");
        }
        // What queued while the link was down is kept (up to PEER_QUEUE) and sent
        // after the next stream's full route table: route changes are set
        // operations applied in order, so replaying them after the table still
        // converges, and messages for the peer survive a short outage.
        if failed {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Receives peers' streams: the node feeds it what its transport receives.
pub struct LinkReceiver {
    broker: Broker,
    /// The stream each peer's routes came on: a late close of an older stream
    /// must not erase the routes of the newer one.
    current: Mutex<BTreeMap<u64, u64>>,
}

impl LinkReceiver {
    /// A receiver feeding `broker`.
    pub fn new(broker: Broker) -> Self {
        LinkReceiver {
            broker,
            current: Mutex::default(),
        }
    }
}

impl LinkReceiver {
    /// One message of stream `stream` from node `from`.
    pub fn message(&self, from: u64, stream: u64, data: &[u8]) {
        let message = match decode(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(peer = from, error = %e, "undecodable node-link message");
                return;
            }
        };
        match message {
            LinkMessage::Routes { routes, epoch, .. } => {
                self.broker.links().peer_epoch(from, epoch);
                self.current
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(from, stream);
                self.broker.peer_routes_reset(from, routes)
            }
            LinkMessage::RouteAdd(k) => self.broker.peer_route(from, k, true),
            LinkMessage::RouteDel(k) => self.broker.peer_route(from, k, false),
            LinkMessage::Publish {
                message,
                publisher,
                shared,
                seq,
            } => {
                // A re-send after a reconnect of something already delivered.
                if self.broker.links().accept_seq(from, seq) {
                    self.broker.deliver_forwarded(message, publisher, shared)
                }
            }
            LinkMessage::Ack { epoch, upto } => self.broker.links().acked(from, epoch, upto),
            LinkMessage::Claim {
                client_id,
                node,
                want_state,
            } => {
                let broker = self.broker.clone();
                tokio::spawn(async move { broker.on_claim(client_id, node, want_state).await });
            }
            LinkMessage::ClaimReply {
                client_id,
                from,
                state,
            } => self.broker.on_claim_reply(&client_id, from, state),
        }
    }

    /// Stream `stream` from node `from` ended.
    pub fn closed(&self, from: u64, stream: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.get(&from) == Some(&stream) {
            current.remove(&from);
            drop(current);
            self.broker.peer_gone(from);
        }
    }
}
