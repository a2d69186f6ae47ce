//! Accept loops: each accepted stream becomes a session task. The rate limit
//! (connections per second per listener) is enforced here; a refused client still
//! gets a CONNACK that says why. Loops accept from any [`Listener`]: tokio's TCP
//! in production, a simulated network in simulations.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::session::{self, ConnInfo};

/// Counts connections in one-second windows.
struct RateLimit {
    per_second: u32,
    window_start: Instant,
    count: u32,
}

impl RateLimit {
    fn new(per_second: u32) -> Self {
        RateLimit {
            per_second,
            window_start: Instant::now(),
            count: 0,
        }
    }

    /// True when this connection exceeds the rate.
    fn exceeded(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count > self.per_second
    }
}

/// Hands one accepted stream to a session task.
pub fn spawn_session<S>(
    stream: S,
    peer: String,
    listener: &'static str,
    certificate: Option<String>,
    rate_limited: bool,
    broker: &Broker,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let info = ConnInfo {
        peer,
        listener,
        certificate,
        rate_limited,
    };
    tokio::spawn(session::serve(stream, info, broker.clone()));
}

/// A bound socket that yields accepted byte streams.
pub trait Listener: Send + 'static {
    /// An accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection and its peer's address.
    fn accept(&mut self) -> impl Future<Output = std::io::Result<(Self::Io, SocketAddr)>> + Send;
    /// The address it listens on.
    fn local_addr(&self) -> std::io::Result<SocketAddr>;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> std::io::Result<(Self::Io, SocketAddr)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        // Small packets (PUBACKs, Raft replies) are latency-bound.
        let _ = stream.set_nodelay(true);
        Ok((stream, addr))
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }
}

/// The accept loop every listener shares: rate limit, then `handle` each
/// connection (which spawns whatever handshake the transport needs).
async fn accept_loop<L: Listener>(
    mut listener: L,
    name: &'static str,
    broker: &Broker,
    shutdown: impl Future<Output = ()>,
    mut handle: impl FnMut(L::Io, SocketAddr, bool),
) {
    let mut rate = RateLimit::new(broker.limits().connections_per_second);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => handle(stream, addr, rate.exceeded()),
                Err(e) => {
                    // Out of file descriptors, typically: wait instead of spinning.
                    tracing::warn!(error = %e, listener = name, "MQTT accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Serves plain MQTT over TCP until `shutdown` resolves.
pub async fn serve_tcp(
    listener: impl Listener,
    broker: Broker,
    shutdown: impl Future<Output = ()>,
) {
    accept_loop(
        listener,
        "tcp",
        &broker.clone(),
        shutdown,
        |stream, addr, limited| {
            spawn_session(stream, addr.to_string(), "tcp", None, limited, &broker)
        },
    )
    .await
}

/// Serves MQTT over TLS until `shutdown` resolves. The handshake runs in the
/// connection's own task, so a slow client cannot stall the accept loop.
pub async fn serve_tls(
    listener: impl Listener,
    config: std::sync::Arc<rustls::ServerConfig>,
    broker: Broker,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    accept_loop(
        listener,
        "tls",
        &broker.clone(),
        shutdown,
        |stream, addr, limited| {
            let acceptor = acceptor.clone();
            let broker = broker.clone();
            tokio::spawn(async move {
                let tls =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::info!(peer = %addr, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(peer = %addr, "TLS handshake timed out");
                            return;
                        }
                    };
                let certificate = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| crate::tls::certificate_id(c.as_ref()));
                spawn_session(tls, addr.to_string(), "tls", certificate, limited, &broker);
            });
        },
    )
    .await
}

/// Serves MQTT over WebSocket (subprotocol `mqtt`) until `shutdown` resolves.
pub async fn serve_ws(listener: impl Listener, broker: Broker, shutdown: impl Future<Output = ()>) {
    accept_loop(
        listener,
        "ws",
        &broker.clone(),
        shutdown,
        |stream, addr, limited| {
            let broker = broker.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, crate::ws::accept(stream)).await {
                    Ok(Ok(ws)) => spawn_session(ws, addr.to_string(), "ws", None, limited, &broker),
                    Ok(Err(e)) => {
                        tracing::info!(peer = %addr, error = %e, "WebSocket handshake failed")
                    }
                    Err(_) => tracing::info!(peer = %addr, "WebSocket handshake timed out"),
                }
            });
        },
    )
    .await
}

/// Bound on a TLS or WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
