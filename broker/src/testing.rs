//! One small MQTT 3.1.1 client over any byte stream, for the tests, the
//! simulation (turmoil streams, where rumqttc cannot dial) and the load
//! generators (which split a connection into a reader and a writer task). The
//! codec is rumqttc's `mqttbytes`, the broker's own. Compiled with the `testing`
//! feature only; the broker itself never uses it.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    Connect, ConnectReturnCode, Packet, Subscribe, SubscribeFilter, SubscribeReasonCode,
};
use rumqttc::mqttbytes::{self, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

/// Largest packet the client reads.
pub const PACKET_BYTES_MAX: usize = 1 << 20;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The stream failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The broker sent bytes that are not an MQTT packet, or a packet could not
    /// be encoded.
    #[error("codec: {0}")]
    Codec(String),
    /// The broker closed the connection.
    #[error("connection closed by the broker")]
    Closed,
    /// The broker refused (CONNECT or SUBSCRIBE) or answered out of turn.
    #[error("{0}")]
    Refused(String),
}

impl From<mqttbytes::Error> for ClientError {
    fn from(e: mqttbytes::Error) -> Self {
        ClientError::Codec(e.to_string())
    }
}

/// One MQTT connection: a reader, a writer and the bytes read but not yet parsed.
/// The fields are public so a caller can split the connection between tasks.
pub struct MqttClient<R, W> {
    /// The reading side.
    pub reader: R,
    /// The writing side.
    pub writer: W,
    /// Read, not yet parsed.
    pub buf: BytesMut,
}

/// `stream` as the reader and writer of one client.
pub fn split<S: AsyncRead + AsyncWrite>(stream: S) -> (ReadHalf<S>, WriteHalf<S>) {
    tokio::io::split(stream)
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> MqttClient<R, W> {
    /// Sends CONNECT (clean session) as `client_id` and waits for a successful
    /// CONNACK.
    pub async fn connect(
        reader: R,
        writer: W,
        client_id: &str,
        keep_alive: u16,
    ) -> Result<Self, ClientError> {
        let mut client = MqttClient {
            reader,
            writer,
            buf: BytesMut::with_capacity(1024),
        };
        let mut connect = Connect::new(client_id);
        connect.keep_alive = keep_alive;
        client.send(Packet::Connect(connect)).await?;
        match client.recv().await? {
            Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => Ok(client),
            Packet::ConnAck(ack) => Err(ClientError::Refused(format!(
                "CONNECT of {client_id} refused: {:?}",
                ack.code
            ))),
            other => Err(ClientError::Refused(format!(
                "expected CONNACK, got {other:?}"
            ))),
        }
    }

    /// Writes one packet.
    pub async fn send(&mut self, packet: Packet) -> Result<(), ClientError> {
        let mut out = BytesMut::new();
        packet.write(&mut out, usize::MAX)?;
        self.writer.write_all(&out).await?;
        Ok(())
    }

    /// The next whole packet already read, if any.
    pub fn parse(&mut self) -> Result<Option<Packet>, ClientError> {
        match Packet::read(&mut self.buf, PACKET_BYTES_MAX) {
            Ok(p) => Ok(Some(p)),
            Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads whatever the stream has (cancel safe).
    pub async fn fill(&mut self) -> Result<(), ClientError> {
        self.buf.reserve(64 * 1024);
        if self.reader.read_buf(&mut self.buf).await? == 0 {
            return Err(ClientError::Closed);
        }
        Ok(())
    }

    /// The next packet.
    pub async fn recv(&mut self) -> Result<Packet, ClientError> {
        loop {
            if let Some(p) = self.parse()? {
                return Ok(p);
            }
            self.fill().await?;
        }
    }

    /// Subscribes to `filters` (packet id 1) and waits for a SUBACK granting
    /// every one; PINGRESPs on the way are skipped.
    pub async fn subscribe(&mut self, filters: &[String], qos: QoS) -> Result<(), ClientError> {
        let mut subscribe =
            Subscribe::new_many(filters.iter().map(|f| SubscribeFilter::new(f.clone(), qos)));
        subscribe.pkid = 1;
        self.send(Packet::Subscribe(subscribe)).await?;
        loop {
            match self.recv().await? {
                Packet::SubAck(ack) => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, SubscribeReasonCode::Failure))
                    {
                        return Err(ClientError::Refused(format!(
                            "subscription refused: {filters:?}"
                        )));
                    }
                    return Ok(());
                }
                Packet::PingResp => {}
                other => {
                    return Err(ClientError::Refused(format!(
                        "expected SUBACK, got {other:?}"
                    )))
                }
            }
        }
    }

    /// Sends DISCONNECT and shuts the writer down; errors are ignored (the
    /// connection is going away either way).
    pub async fn disconnect(mut self) {
        let _ = self.send(Packet::Disconnect).await;
        let _ = self.writer.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorize::AllowAll;
    use crate::clock::SystemClock;
    use crate::session::{serve, ConnInfo};
    use crate::{Broker, MqttLimits};
    use rumqttc::mqttbytes::v4::Publish;
    use std::sync::Arc;

    /// The client against the broker itself, over an in-memory stream: connect,
    /// subscribe, and a publish of another client arrives.
    #[tokio::test]
    async fn talks_to_the_broker() {
        let broker = Broker::new(
            1,
            MqttLimits::default(),
            Arc::new(SystemClock),
            Arc::new(crate::entropy::OsEntropy),
            Arc::new(AllowAll),
        );
        let open = |name: &'static str| {
            let (ours, theirs) = tokio::io::duplex(1 << 16);
            let info = ConnInfo {
                peer: name.into(),
                listener: "test",
                certificate: None,
                rate_limited: false,
            };
            tokio::spawn(serve(theirs, info, broker.clone()));
            ours
        };
        let (r, w) = split(open("sub"));
        let mut sub = MqttClient::connect(r, w, "sub", 30).await.expect("connect");
        sub.subscribe(&["lamp/+".to_string()], QoS::AtMostOnce)
            .await
            .expect("subscribe");
        let (r, w) = split(open("pub"));
        let mut publisher = MqttClient::connect(r, w, "pub", 30).await.expect("connect");
        publisher
            .send(Packet::Publish(Publish::new(
                "lamp/1",
                QoS::AtMostOnce,
                "on",
            )))
            .await
            .expect("publish");
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), sub.recv())
            .await
            .expect("in time")
            .expect("a packet");
        let Packet::Publish(p) = got else {
            panic!("expected PUBLISH, got {got:?}")
        };
        assert_eq!(
            (p.topic.as_str(), p.payload.as_ref()),
            ("lamp/1", &b"on"[..])
        );
        publisher.disconnect().await;
        assert!(matches!(
            sub.subscribe(&["#/bad".to_string()], QoS::AtMostOnce).await,
            Err(ClientError::Refused(_)) | Err(ClientError::Closed)
        ));
    }
}
