//! A minimal MQTT 3.1.1 client over a turmoil stream, for simulated devices
//! (rumqttc dials real sockets, which do not exist inside a simulation). The codec
//! is rumqttc's `mqttbytes`, the one the node uses.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet};
use rumqttc::mqttbytes::Error as CodecError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sim::MQTT_PORT;

/// Errors of the simulated client: I/O, codec, or an unexpected packet.
pub type Error = Box<dyn std::error::Error>;

/// One MQTT connection to a simulated node.
pub struct Client {
    stream: turmoil::net::TcpStream,
    buf: BytesMut,
}

impl Client {
    /// Connects to `host`'s MQTT port as `id` (clean session) and waits for CONNACK.
    pub async fn connect(host: &str, id: &str) -> Result<Self, Error> {
        let stream = turmoil::net::TcpStream::connect((host, MQTT_PORT)).await?;
        let mut c = Client {
            stream,
            buf: BytesMut::new(),
        };
        let mut connect = Connect::new(id);
        connect.keep_alive = 60;
        c.send(Packet::Connect(connect)).await?;
        match c.recv().await? {
            Packet::ConnAck(a) if a.code == ConnectReturnCode::Success => Ok(c),
            other => Err(format!("{id}: no CONNACK: {other:?}").into()),
        }
    }

    /// Writes one packet.
    pub async fn send(&mut self, p: Packet) -> Result<(), Error> {
        let mut out = BytesMut::new();
        p.write(&mut out, usize::MAX)?;
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// Reads the next packet.
    pub async fn recv(&mut self) -> Result<Packet, Error> {
        loop {
            match Packet::read(&mut self.buf, 1 << 20) {
                Ok(p) => return Ok(p),
                Err(CodecError::InsufficientBytes(_)) => {}
                Err(e) => return Err(e.to_string().into()),
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err("connection closed".into());
            }
        }
    }
}
