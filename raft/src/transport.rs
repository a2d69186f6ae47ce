//! The transport seam: how a node dials its peers. Listening is the caller's part
//! (any stream of connections goes to [`crate::service::serve`]), so production uses
//! tokio TCP and simulations use turmoil's network without touching this crate.

use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed future of a connection.
pub type ConnectFuture<Io> = Pin<Box<dyn Future<Output = io::Result<Io>> + Send>>;

/// Dials `host:port`, and names the async runtime openraft runs on with it.
pub trait Connector: Clone + Send + Sync + 'static {
    /// The connection type.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// openraft's runtime: tokio in production; in simulations, tokio with randomness
    /// drawn from the seed.
    type Runtime: openraft::AsyncRuntime;
    /// Opens a connection to `addr` (`host:port`).
    fn connect(&self, addr: String) -> ConnectFuture<Self::Io>;
}

/// Plain TCP through tokio, with Nagle off (Raft messages are latency-bound).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Io = tokio::net::TcpStream;
    type Runtime = openraft_rt_tokio::TokioRuntime;
    fn connect(&self, addr: String) -> ConnectFuture<Self::Io> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    }
}
