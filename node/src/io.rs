//! What a node takes from the world, injected: listening sockets, dialing, the
//! clock and entropy. [`SystemIo`] is tokio's network and the OS clock and
//! generator; a simulation passes its own network, a simulated clock and a
//! seeded generator, and runs the very same [`crate::run`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use fleetcore_broker::listener::Listener;
use fleetcore_raft::{Connector, TcpConnector};

use crate::clock::{SharedClock, SystemClock};
use crate::entropy::{OsEntropy, SharedEntropy};

/// The node's view of the world.
pub trait NodeIo: Clone + Send + Sync + 'static {
    /// Dials peers (Raft, node links, joining through a member's HTTP API), and
    /// names openraft's runtime.
    type Connector: Connector;
    /// A listening socket.
    type Listener: Listener;

    /// Listens on `addr` (`host:port`).
    fn bind(&self, addr: &str) -> impl Future<Output = std::io::Result<Self::Listener>> + Send;
    /// How this node dials.
    fn connector(&self) -> Self::Connector;
    /// Wall-clock time for proposers.
    fn clock(&self) -> SharedClock;
    /// Random ids.
    fn entropy(&self) -> SharedEntropy;
    /// Whether storage runs its writes on the calling task instead of a blocking
    /// thread. A simulation needs it: a blocking thread finishes at a real-time
    /// moment, and a seed would no longer replay exactly.
    fn inline_storage(&self) -> bool {
        false
    }
}

/// Production: tokio's TCP, the system clock, the OS's random numbers.
#[derive(Clone)]
pub struct SystemIo {
    clock: SharedClock,
    entropy: SharedEntropy,
}

impl Default for SystemIo {
    fn default() -> Self {
        SystemIo {
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
        }
    }
}

impl NodeIo for SystemIo {
    type Connector = TcpConnector;
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, addr: &str) -> std::io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(addr).await
    }
    fn connector(&self) -> TcpConnector {
        TcpConnector
    }
    fn clock(&self) -> SharedClock {
        self.clock.clone()
    }
    fn entropy(&self) -> SharedEntropy {
        self.entropy.clone()
    }
}

/// A [`Listener`] as axum serves it: accept errors (out of file descriptors,
/// typically) are logged and retried after a pause instead of ending the server.
pub(crate) struct HttpListener<L>(pub L);

impl<L: Listener> axum::serve::Listener for HttpListener<L> {
    type Io = L::Io;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}
