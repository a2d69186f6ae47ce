//! One MQTT connection, over any `AsyncRead + AsyncWrite` (TCP, TLS, WebSocket, a
//! turmoil stream): CONNECT, then a loop that reads packets, sends queued
//! deliveries within the client's receive maximum, enforces keepalive, and ends
//! on DISCONNECT, network loss, a protocol error or a takeover.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

use crate::authorize::{Action, Identity};
use crate::broker::{Broker, Delivery, Grant, Kick, Outgoing, ReservedOffer, SubOptions};
use crate::codec::{
    AckCode, Codec, CodecError, ConnAckProps, Connect, ConnectCode, DisconnectCode, Inbound,
    Outbound, Publish, Qos, SubCode, Version, Will,
};
use crate::events;
use crate::topic;

/// How long a new connection may take to send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest client id accepted (AWS IoT's limit).
const CLIENT_ID_MAX: usize = 128;
/// Retained publishes of one connection waiting for their commit. At the bound
/// the connection stops reading (TCP pushes back on the client) until one is
/// done, so a flooding client queues no work on the node and loses nothing.
pub const RETAINED_PUBLISHES_PER_CLIENT_MAX: usize = 64;

/// Facts about a new connection from its listener.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Remote address.
    pub peer: String,
    /// Listener name (`tcp`, `tls`, `ws`).
    pub listener: &'static str,
    /// Subject of the verified client certificate.
    pub certificate: Option<String>,
    /// The listener's connection rate was exceeded: refuse politely.
    pub rate_limited: bool,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// DISCONNECT from the client (MQTT 5 may still ask for the will).
    Clean { with_will: bool },
    /// The network went away.
    Network,
    /// Nothing heard for 1.5 × keepalive.
    KeepAlive,
    /// Closed by the node (takeover, shutdown).
    Kicked(Kick),
    /// Closed for a protocol error or bad input.
    Protocol(DisconnectCode, String),
}

impl End {
    fn aws_reason(&self) -> &'static str {
        match self {
            End::Clean { .. } => "CLIENT_INITIATED_DISCONNECT",
            End::Network => "CONNECTION_LOST",
            End::KeepAlive => "MQTT_KEEP_ALIVE_TIMEOUT",
            End::Kicked(Kick::TakenOver) => "DUPLICATE_CLIENTID",
            End::Kicked(Kick::Shutdown) => "SERVER_INITIATED_DISCONNECT",
            End::Protocol(..) => "CLIENT_ERROR",
        }
    }
}

/// Serves one connection until it ends.
pub async fn serve<S>(stream: S, info: ConnInfo, broker: Broker)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut codec = Codec::new(broker.limits().max_packet_size);
    // Small to start: most devices send small packets, and idle connections are
    // many; the buffer grows for bigger ones.
    let mut buf = BytesMut::with_capacity(512);
    let first = tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            make_room(&mut buf);
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => {
                    return Err(CodecError::Malformed("closed before CONNECT".into()))
                }
                Ok(_) => {}
            }
        }
    })
    .await;
    let connect = match first {
        Err(_) => {
            tracing::debug!(peer = %info.peer, "no CONNECT in time");
            return;
        }
        Ok(Err(CodecError::UnsupportedVersion(level))) => {
            tracing::info!(peer = %info.peer, level, "refused: unsupported MQTT protocol level");
            refuse(&codec, &mut wr, ConnectCode::UnsupportedVersion, None).await;
            return;
        }
        Ok(Err(e)) => {
            broker
                .stats()
                .protocol_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(peer = %info.peer, error = %e, "closed: bad first packet");
            return;
        }
        Ok(Ok(Inbound::Connect(c))) => *c,
        Ok(Ok(_)) => return,
    };
    if info.rate_limited {
        broker.stats().rate_limited.fetch_add(1, Ordering::Relaxed);
        refuse(
            &codec,
            &mut wr,
            ConnectCode::ConnectionRateExceeded,
            Some("connection rate limit of this listener"),
        )
        .await;
        return;
    }
    let span = tracing::info_span!("mqtt", client_id = tracing::field::Empty, peer = %info.peer);
    async move {
        let Some(conn) = accept(connect, &info, &broker, codec, &mut wr).await else {
            return;
        };
        tracing::Span::current().record("client_id", conn.client_id.as_str());
        conn.run(rd, wr, buf).await;
    }
    .instrument(span)
    .await;
}

async fn refuse<W: AsyncWrite + Unpin>(
    codec: &Codec,
    wr: &mut W,
    code: ConnectCode,
    reason: Option<&str>,
) {
    let mut out = BytesMut::new();
    let _ = codec.encode(
        Outbound::ConnAck {
            session_present: false,
            code,
            props: ConnAckProps {
                reason: reason.map(str::to_string),
                ..Default::default()
            },
        },
        &mut out,
    );
    let _ = write_flush(wr, &out).await;
    let _ = wr.shutdown().await;
}

/// Validates CONNECT and claims the session.
async fn accept<W: AsyncWrite + Unpin>(
    connect: Connect,
    info: &ConnInfo,
    broker: &Broker,
    mut codec: Codec,
    wr: &mut W,
) -> Option<Connection> {
    let limits = broker.limits().clone();
    let mut client_id = connect.client_id.clone();
    let mut assigned = None;
    if client_id.is_empty() {
        if connect.clean_start || connect.version == Version::V5 {
            client_id = format!("fc-{}", broker.entropy().uuid().simple());
            assigned = Some(client_id.clone());
        } else {
            refuse(
                &codec,
                wr,
                ConnectCode::BadClientId,
                Some("empty client id"),
            )
            .await;
            return None;
        }
    }
    if client_id.len() > CLIENT_ID_MAX {
        refuse(
            &codec,
            wr,
            ConnectCode::BadClientId,
            Some("client id longer than 128 bytes"),
        )
        .await;
        return None;
    }
    if let Some(will) = &connect.will {
        if let Err(e) = topic::validate_name(&will.message.topic, limits.topic) {
            tracing::info!(error = %e, "refused: invalid will topic");
            refuse(
                &codec,
                wr,
                ConnectCode::ProtocolError,
                Some("invalid will topic"),
            )
            .await;
            return None;
        }
    }
    let identity = Identity {
        client_id: client_id.clone(),
        username: connect.username.clone(),
        certificate: info.certificate.clone(),
        listener: info.listener,
    };
    if !broker.authorize(&identity, Action::Connect, &client_id) {
        refuse(&codec, wr, ConnectCode::NotAuthorized, None).await;
        return None;
    }
    let requested_expiry = match connect.version {
        Version::V311 if connect.clean_start => 0,
        Version::V311 => limits.max_session_expiry_secs,
        Version::V5 => connect.session_expiry.unwrap_or(0),
    };
    let expiry = requested_expiry.min(limits.max_session_expiry_secs);
    let grant = match broker
        .connect(&client_id, connect.clean_start, expiry)
        .await
    {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "refused: session unavailable");
            refuse(
                &codec,
                wr,
                ConnectCode::ServerUnavailable,
                Some(&e.to_string()),
            )
            .await;
            return None;
        }
    };
    codec.set_max_outbound(connect.max_packet_size);
    let mut out = BytesMut::new();
    let ack = Outbound::ConnAck {
        session_present: grant.session_present,
        code: ConnectCode::Success,
        props: ConnAckProps {
            assigned_client_id: assigned,
            receive_maximum: limits.receive_maximum,
            max_packet_size: u32::try_from(limits.max_packet_size).unwrap_or(u32::MAX),
            topic_alias_max: limits.topic_alias_max,
            session_expiry: (requested_expiry != expiry).then_some(expiry),
            reason: None,
        },
    };
    if codec.encode(ack, &mut out).is_err() || write_flush(wr, &out).await.is_err() {
        broker.disconnect(&client_id, grant.epoch, grant.core);
        return None;
    }
    broker.stats().connections.fetch_add(1, Ordering::Relaxed);
    broker
        .stats()
        .connects_total
        .fetch_add(1, Ordering::Relaxed);
    let session_id = broker.entropy().uuid().to_string();
    events::connected(broker, &identity, &session_id, &info.peer);
    tracing::debug!(
        version = ?connect.version,
        clean_start = connect.clean_start,
        session_present = grant.session_present,
        "connected"
    );
    let receive_max = connect.receive_maximum.unwrap_or(u16::MAX).max(1);
    Some(Connection {
        broker: broker.clone(),
        identity,
        client_id,
        session_id,
        version: connect.version,
        codec,
        out: BytesMut::new(),
        keep_alive: (connect.keep_alive > 0)
            .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500)),
        will: connect.will,
        expiry,
        receive_max: usize::from(receive_max.min(limits.receive_maximum.max(1))),
        aliases: HashMap::new(),
        grant: Some(grant),
        deferred: None,
        retained_in_flight: 0,
        retained_qos2_pending: HashSet::new(),
        retained_tails: HashMap::new(),
        retained_seq: 0,
    })
}

struct Connection {
    broker: Broker,
    identity: Identity,
    client_id: String,
    session_id: String,
    version: Version,
    codec: Codec,
    out: BytesMut,
    keep_alive: Option<Duration>,
    will: Option<Will>,
    expiry: u32,
    receive_max: usize,
    aliases: HashMap<u16, String>,
    grant: Option<Grant>,
    /// Retained publishes whose commit this connection waits for, to finish
    /// their acknowledgement. Created on first use: a channel costs kilobytes,
    /// and most connections never need one. Unbounded, but at most
    /// `RETAINED_PUBLISHES_PER_CLIENT_MAX` are ever in it.
    deferred: Option<(
        mpsc::UnboundedSender<RetainedStored>,
        mpsc::UnboundedReceiver<RetainedStored>,
    )>,
    /// Retained publishes spawned and not yet back through `deferred`.
    retained_in_flight: usize,
    /// QoS 2 retained publishes whose commit is pending: their packet id joins
    /// the session's `inbound_qos2` only once stored, so a resend after a failed
    /// store is stored again rather than answered as already taken.
    retained_qos2_pending: HashSet<u16>,
    /// Per topic, the last retained store of this connection still in flight
    /// (its sequence number and completion): the next store of the same topic
    /// waits for it, so two publishes to one topic commit in the order sent.
    retained_tails: HashMap<String, (u64, oneshot::Receiver<()>)>,
    retained_seq: u64,
}

/// A retained publish's commit, back on its connection.
#[derive(Debug)]
struct RetainedStored {
    seq: u64,
    pkid: u16,
    qos: Qos,
    topic: String,
    result: Result<(), (AckCode, String)>,
}

impl Connection {
    fn grant(&mut self) -> &mut Grant {
        // Present from accept() until run() ends.
        self.grant
            .as_mut()
            .unwrap_or_else(|| unreachable!("grant taken before the end"))
    }

    fn send(&mut self, packet: Outbound) {
        if let Err(e) = self.codec.encode(packet, &mut self.out) {
            tracing::debug!(error = %e, "packet not sent");
        }
    }

    async fn run<R, W>(mut self, mut rd: R, mut wr: W, mut buf: BytesMut)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        self.resend_inflight();
        let mut last_heard = Instant::now();
        let Some(mut kick) = self.grant.as_mut().map(|g| {
            let (_tx, rx) = tokio::sync::oneshot::channel();
            std::mem::replace(&mut g.kick, rx)
        }) else {
            return;
        };
        let mailbox = self.grant().mailbox.clone();
        let end = 'conn: loop {
            // Packets already buffered (several may arrive in one read), until
            // the retained bound says wait.
            while self.retained_in_flight < RETAINED_PUBLISHES_PER_CLIENT_MAX {
                match self.codec.decode(&mut buf) {
                    Ok(Some(packet)) => {
                        if let Err(end) = self.handle(packet) {
                            break 'conn end;
                        }
                    }
                    Ok(None) => break,
                    Err(CodecError::TooLarge(n)) => {
                        break 'conn End::Protocol(
                            DisconnectCode::PacketTooLarge,
                            format!("packet of {n} bytes"),
                        )
                    }
                    Err(e) => break 'conn End::Protocol(DisconnectCode::Malformed, e.to_string()),
                }
            }
            self.pump();
            if !self.out.is_empty() {
                if write_flush(&mut wr, &self.out).await.is_err() {
                    break End::Network;
                }
                self.out.clear();
            }
            // Not reading is the node's choice, not the client's silence: no
            // keepalive while paused, and the clock restarts when reading does.
            let paused = self.retained_in_flight >= RETAINED_PUBLISHES_PER_CLIENT_MAX;
            let deadline = self.keep_alive.filter(|_| !paused).map(|k| last_heard + k);
            make_room(&mut buf);
            // Biased, so the same readiness always takes the same branch (a seed
            // replays exactly); nothing starves: the mailbox is pumped every turn
            // and a client that floods reads waits for its acks sooner or later.
            tokio::select! {
                biased;
                k = &mut kick => break End::Kicked(k.unwrap_or(Kick::TakenOver)),
                Some(done) = recv_deferred(&mut self.deferred) => {
                    if paused {
                        last_heard = Instant::now();
                    }
                    if let Err(end) = self.on_retained_stored(done) {
                        break end;
                    }
                }
                _ = mailbox.notify.notified() => {}
                r = rd.read_buf(&mut buf), if !paused => match r {
                    Ok(0) | Err(_) => break End::Network,
                    Ok(_) => last_heard = Instant::now(),
                },
                _ = sleep_until(deadline), if deadline.is_some() => break End::KeepAlive,
            }
        };
        self.finish(end, &mut wr).await;
    }

    async fn finish<W: AsyncWrite + Unpin>(mut self, end: End, wr: &mut W) {
        let code = match &end {
            End::Protocol(code, why) => {
                self.broker
                    .stats()
                    .protocol_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(reason = ?code, detail = %why, "closing connection: protocol error");
                Some(*code)
            }
            End::KeepAlive => {
                tracing::info!("closing connection: keepalive timeout");
                Some(DisconnectCode::KeepAliveTimeout)
            }
            End::Kicked(Kick::TakenOver) => {
                tracing::info!("closing connection: client id taken over");
                Some(DisconnectCode::SessionTakenOver)
            }
            End::Kicked(Kick::Shutdown) => Some(DisconnectCode::ServerShuttingDown),
            End::Clean { .. } | End::Network => None,
        };
        if let Some(code) = code {
            if self.version == Version::V5 {
                self.send(Outbound::Disconnect(code));
            }
        }
        if !self.out.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(1), write_flush(wr, &self.out)).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
        self.broker
            .stats()
            .connections
            .fetch_sub(1, Ordering::Relaxed);
        let publish_will = !matches!(end, End::Clean { with_will: false });
        if let Some(grant) = self.grant.take() {
            let epoch = grant.epoch;
            self.broker.disconnect(&self.client_id, epoch, grant.core);
            if publish_will {
                if let Some(will) = self.will.take() {
                    send_will(
                        self.broker.clone(),
                        self.client_id.clone(),
                        epoch,
                        will,
                        self.expiry,
                    );
                }
            }
        }
        events::disconnected(
            &self.broker,
            &self.identity,
            &self.session_id,
            matches!(end, End::Clean { .. }),
            end.aws_reason(),
        );
    }

    /// Resends what a previous connection left unacknowledged.
    fn resend_inflight(&mut self) {
        let grant = self.grant();
        let order: Vec<u16> = grant.core.inflight_order.iter().copied().collect();
        let mut packets = Vec::new();
        for pkid in order {
            if let Some(o) = grant.core.inflight.get(&pkid) {
                if o.released {
                    packets.push(Outbound::PubRel(pkid));
                } else {
                    packets.push(Outbound::Publish(Publish {
                        message: o.delivery.message.clone(),
                        pkid,
                        dup: true,
                        topic_alias: None,
                        subscription_ids: o.delivery.subscription_ids.clone(),
                    }));
                }
            }
        }
        for p in packets {
            self.send(p);
        }
    }

    /// Moves queued deliveries to the client while the in-flight window has room.
    fn pump(&mut self) {
        loop {
            let room = self
                .receive_max
                .saturating_sub(self.grant().core.inflight.len());
            let batch = self.grant().mailbox.take(64);
            if batch.is_empty() {
                return;
            }
            let now = Instant::now();
            let mut rest = batch.into_iter();
            let mut used = 0;
            while let Some(d) = rest.next() {
                if d.message.qos != Qos::AtMostOnce && used >= room {
                    let mut back = vec![d];
                    back.extend(rest);
                    self.grant().mailbox.requeue_front(back);
                    return;
                }
                if d.expires_at.is_some_and(|at| at <= now) {
                    self.broker.stats().expired.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if !self
                    .broker
                    .authorize(&self.identity, Action::Receive, &d.message.topic)
                {
                    continue;
                }
                if d.message.qos != Qos::AtMostOnce {
                    used += 1;
                }
                self.deliver(d, now);
            }
        }
    }

    fn deliver(&mut self, mut d: Delivery, now: Instant) {
        if let Some(at) = d.expires_at {
            let left = at.saturating_duration_since(now).as_secs().max(1);
            d.message.props.message_expiry = Some(u32::try_from(left).unwrap_or(u32::MAX));
        }
        let pkid = if d.message.qos == Qos::AtMostOnce {
            0
        } else {
            let core = &mut self.grant().core;
            let mut pkid = core.last_pkid;
            loop {
                pkid = pkid.wrapping_add(1).max(1);
                if !core.inflight.contains_key(&pkid) {
                    break;
                }
            }
            core.last_pkid = pkid;
            core.inflight.insert(
                pkid,
                Outgoing {
                    delivery: d.clone(),
                    released: false,
                },
            );
            core.inflight_order.push_back(pkid);
            pkid
        };
        let packet = Outbound::Publish(Publish {
            message: d.message,
            pkid,
            dup: false,
            topic_alias: None,
            subscription_ids: d.subscription_ids,
        });
        let before = self.out.len();
        self.send(packet);
        if self.out.len() == before && pkid != 0 {
            // Too large for the client's maximum packet size: dropped, as MQTT 5 says.
            self.ack_out(pkid);
        } else {
            self.broker
                .stats()
                .publishes_out
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ack_out(&mut self, pkid: u16) -> bool {
        let core = &mut self.grant().core;
        if core.inflight.remove(&pkid).is_some() {
            core.inflight_order.retain(|p| *p != pkid);
            true
        } else {
            false
        }
    }

    fn handle(&mut self, packet: Inbound) -> Result<(), End> {
        match packet {
            Inbound::Connect(_) => {
                return Err(End::Protocol(
                    DisconnectCode::ProtocolError,
                    "second CONNECT".into(),
                ))
            }
            Inbound::Publish(p) => self.on_publish(p)?,
            Inbound::PubAck(pkid) | Inbound::PubComp(pkid) => {
                if !self.ack_out(pkid) {
                    tracing::debug!(pkid, "ack for an unknown packet id");
                }
            }
            Inbound::PubRec(pkid) => {
                if let Some(o) = self.grant().core.inflight.get_mut(&pkid) {
                    o.released = true;
                }
                self.send(Outbound::PubRel(pkid));
            }
            Inbound::PubRel(pkid) => {
                self.grant().core.inbound_qos2.remove(&pkid);
                self.send(Outbound::PubComp(pkid));
            }
            Inbound::Subscribe { pkid, filters, id } => self.on_subscribe(pkid, filters, id),
            Inbound::Unsubscribe { pkid, filters } => {
                let mut existed = Vec::new();
                let mut removed = Vec::new();
                for raw in filters {
                    let was = self.grant().core.subscriptions.remove(&raw).is_some();
                    if was {
                        if let Ok(key) = topic::parse_filter(&raw, self.broker.limits().topic) {
                            self.broker.unsubscribe(&self.client_id, &key);
                        }
                        removed.push(raw);
                    }
                    existed.push(was);
                }
                self.send(Outbound::UnsubAck(pkid, existed));
                if !removed.is_empty() {
                    events::subscriptions(
                        &self.broker,
                        &self.identity,
                        &self.session_id,
                        "unsubscribed",
                        &removed,
                    );
                }
            }
            Inbound::PingReq => self.send(Outbound::PingResp),
            Inbound::Disconnect {
                with_will,
                session_expiry,
            } => {
                if let Some(e) = session_expiry {
                    if self.expiry == 0 && e > 0 {
                        return Err(End::Protocol(
                            DisconnectCode::ProtocolError,
                            "session expiry set on DISCONNECT after 0 on CONNECT".into(),
                        ));
                    }
                    self.expiry = e.min(self.broker.limits().max_session_expiry_secs);
                    self.broker.set_expiry(&self.client_id, self.expiry);
                }
                return Err(End::Clean { with_will });
            }
            Inbound::Unexpected(what) => {
                return Err(End::Protocol(
                    DisconnectCode::ProtocolError,
                    format!("{what} from a client"),
                ))
            }
        }
        Ok(())
    }

    fn on_publish(&mut self, mut p: Publish) -> Result<(), End> {
        self.broker
            .stats()
            .publishes_in
            .fetch_add(1, Ordering::Relaxed);
        let limits = self.broker.limits().clone();
        if let Some(alias) = p.topic_alias {
            if alias == 0 || alias > limits.topic_alias_max {
                return Err(End::Protocol(
                    DisconnectCode::TopicAliasInvalid,
                    format!("topic alias {alias}"),
                ));
            }
            if p.message.topic.is_empty() {
                match self.aliases.get(&alias) {
                    Some(t) => p.message.topic = t.clone(),
                    None => {
                        return Err(End::Protocol(
                            DisconnectCode::ProtocolError,
                            format!("unknown topic alias {alias}"),
                        ))
                    }
                }
            } else {
                self.aliases.insert(alias, p.message.topic.clone());
            }
        }
        if let Err(e) = topic::validate_name(&p.message.topic, limits.topic) {
            return Err(End::Protocol(
                DisconnectCode::TopicNameInvalid,
                e.to_string(),
            ));
        }
        let qos = p.message.qos;
        if qos == Qos::ExactlyOnce {
            if self.grant().core.inbound_qos2.contains(&p.pkid) {
                // A resend of a message already taken: acknowledge, do not route again.
                self.send(Outbound::PubRec(p.pkid, AckCode::Success));
                return Ok(());
            }
            if self.retained_qos2_pending.contains(&p.pkid) {
                // A resend while its retained store is in flight: the PUBREC
                // follows the commit.
                return Ok(());
            }
            if self.grant().core.inbound_qos2.len() + self.retained_qos2_pending.len()
                >= usize::from(limits.receive_maximum)
            {
                return Err(End::Protocol(
                    DisconnectCode::ReceiveMaximumExceeded,
                    "too many QoS 2 messages awaiting PUBREL".into(),
                ));
            }
        }
        let code = self.route(p.message.clone());
        if code == AckCode::NotAuthorized && self.version == Version::V311 {
            // 3.1.1 cannot say no in PUBACK: close, as AWS IoT does.
            return Err(End::Protocol(
                DisconnectCode::NotAuthorized,
                format!("publish to {} not allowed", p.message.topic),
            ));
        }
        if code == AckCode::QuotaExceeded && qos != Qos::AtMostOnce && self.version == Version::V311
        {
            // Refused, and 3.1.1 cannot say so in a PUBACK: close rather than
            // acknowledge what was not taken.
            return Err(End::Protocol(
                DisconnectCode::QuotaExceeded,
                format!(
                    "publish to {} refused: its handler is overloaded",
                    p.message.topic
                ),
            ));
        }
        match qos {
            Qos::AtMostOnce => {}
            Qos::AtLeastOnce => {
                if code != AckCode::Success || !p.message.retain {
                    self.send(Outbound::PubAck(p.pkid, code));
                }
            }
            Qos::ExactlyOnce => {
                if code == AckCode::Success {
                    if p.message.retain {
                        self.retained_qos2_pending.insert(p.pkid);
                    } else {
                        self.grant().core.inbound_qos2.insert(p.pkid);
                    }
                }
                if code != AckCode::Success || !p.message.retain {
                    self.send(Outbound::PubRec(p.pkid, code));
                }
            }
        }
        if p.message.retain && code == AckCode::Success {
            self.store_retained(p);
        }
        Ok(())
    }

    /// Routes a message from this client; the code for its acknowledgement.
    fn route(&mut self, message: crate::codec::Message) -> AckCode {
        if message.props.payload_format == Some(1) && std::str::from_utf8(&message.payload).is_err()
        {
            return AckCode::PayloadFormatInvalid;
        }
        if !self
            .broker
            .authorize(&self.identity, Action::Publish, &message.topic)
        {
            return AckCode::NotAuthorized;
        }
        // AWS IoT reserves every topic that starts with `$`: only the ones a
        // handler serves (shadow requests) may be published to.
        if message.topic.starts_with('$') {
            return match self.broker.offer_reserved(Some(&self.client_id), message) {
                // Subscribers of a request topic see the request too, as in
                // AWS IoT; the handler then serves it.
                ReservedOffer::Queued => AckCode::Success,
                // Its handler is that far behind: refused, never acknowledged.
                ReservedOffer::Full => AckCode::QuotaExceeded,
                ReservedOffer::Stopped => AckCode::Unspecified,
                // Clients may not publish on the node's own reserved topics
                // (lifecycle events, shadow replies) or any other `$` topic.
                ReservedOffer::NotServed => AckCode::NotAuthorized,
            };
        }
        self.broker.publish(message, Some(&self.client_id));
        AckCode::Success
    }

    /// Stores a retained message through Raft; a QoS 1/2 publish is acknowledged
    /// once it is committed (`on_retained_stored`).
    fn store_retained(&mut self, p: Publish) {
        let Some(store) = self.broker.retained() else {
            return;
        };
        let (pkid, qos, topic) = (p.pkid, p.message.qos, p.message.topic.clone());
        let done = self
            .deferred
            .get_or_insert_with(mpsc::unbounded_channel)
            .0
            .clone();
        self.retained_in_flight += 1;
        self.retained_seq += 1;
        let seq = self.retained_seq;
        let (finished, finished_rx) = oneshot::channel();
        let before = self
            .retained_tails
            .insert(topic.clone(), (seq, finished_rx))
            .map(|(_, rx)| rx);
        // Lazy: the proposal starts when polled, after the previous store of
        // this topic finished (however it ended).
        let fut = store.store(p.message);
        tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            let result = fut.await;
            let _ = finished.send(());
            let _ = done.send(RetainedStored {
                seq,
                pkid,
                qos,
                topic,
                result,
            });
        });
    }

    /// Finishes a retained publish's acknowledgement. MQTT 3.1.1 cannot refuse in
    /// PUBACK/PUBREC, and acknowledging would tell the client a message was kept
    /// that was not: the connection is closed instead (the client resends it).
    fn on_retained_stored(&mut self, done: RetainedStored) -> Result<(), End> {
        self.retained_in_flight = self.retained_in_flight.saturating_sub(1);
        if self
            .retained_tails
            .get(&done.topic)
            .is_some_and(|(seq, _)| *seq == done.seq)
        {
            self.retained_tails.remove(&done.topic);
        }
        if done.qos == Qos::ExactlyOnce {
            self.retained_qos2_pending.remove(&done.pkid);
        }
        let code = match done.result {
            Ok(()) => AckCode::Success,
            Err((code, why)) => {
                if done.qos != Qos::AtMostOnce && self.version == Version::V311 {
                    return Err(End::Protocol(
                        DisconnectCode::QuotaExceeded,
                        format!("retained publish to {} not stored: {why}", done.topic),
                    ));
                }
                code
            }
        };
        match done.qos {
            Qos::AtMostOnce => {}
            Qos::AtLeastOnce => self.send(Outbound::PubAck(done.pkid, code)),
            Qos::ExactlyOnce => {
                // Taken only once stored; a PUBREC with an error ends the
                // exchange (no PUBREL follows).
                if code == AckCode::Success {
                    self.grant().core.inbound_qos2.insert(done.pkid);
                }
                self.send(Outbound::PubRec(done.pkid, code));
            }
        }
        Ok(())
    }

    fn on_subscribe(
        &mut self,
        pkid: u16,
        filters: Vec<crate::codec::SubscribeFilter>,
        id: Option<usize>,
    ) {
        let limits = self.broker.limits().clone();
        let mut codes = Vec::with_capacity(filters.len());
        let mut retained_for = Vec::new();
        let mut added = Vec::new();
        for f in filters {
            let key = match topic::parse_filter(&f.filter, limits.topic) {
                Ok(k) => k,
                Err(e) => {
                    tracing::info!(filter = %f.filter, error = %e, "subscription refused");
                    codes.push(SubCode::FilterInvalid);
                    continue;
                }
            };
            if !self
                .broker
                .authorize(&self.identity, Action::Subscribe, &f.filter)
            {
                codes.push(SubCode::NotAuthorized);
                continue;
            }
            let existed = self.grant().core.subscriptions.contains_key(&f.filter);
            if !existed && self.grant().core.subscriptions.len() >= limits.max_subscriptions {
                codes.push(SubCode::QuotaExceeded);
                continue;
            }
            let opts = SubOptions {
                qos: f.qos as u8,
                no_local: f.no_local,
                retain_as_published: f.retain_as_published,
                id,
            };
            self.grant()
                .core
                .subscriptions
                .insert(f.filter.clone(), opts);
            self.broker.subscribe(&self.client_id, &key, opts);
            codes.push(SubCode::Granted(f.qos));
            added.push(f.filter.clone());
            let wants_retained = match f.retain_handling {
                0 => true,
                1 => !existed,
                _ => false,
            };
            if key.share.is_none() && wants_retained {
                retained_for.push((key.filter, opts));
            }
        }
        self.send(Outbound::SubAck(pkid, codes));
        if let Some(store) = self.broker.retained() {
            for (filter, opts) in retained_for {
                for m in store.matching(&filter) {
                    let qos = m.qos.min(Qos::from_u8(opts.qos).unwrap_or(Qos::AtMostOnce));
                    let expires_at = m
                        .props
                        .message_expiry
                        .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
                    self.broker.deliver_to(
                        &self.client_id,
                        Delivery {
                            message: crate::codec::Message {
                                qos,
                                retain: true,
                                ..m
                            },
                            subscription_ids: opts.id.into_iter().collect(),
                            expires_at,
                        },
                    );
                }
            }
        }
        if !added.is_empty() {
            events::subscriptions(
                &self.broker,
                &self.identity,
                &self.session_id,
                "subscribed",
                &added,
            );
        }
    }
}

/// Publishes a will now, or after its delay unless the session came back.
fn send_will(broker: Broker, client_id: String, epoch: u64, will: Will, expiry: u32) {
    let delay = Duration::from_secs(u64::from(will.delay_secs.min(expiry)));
    if delay.is_zero() {
        broker.publish(will.message, Some(&client_id));
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        // A reconnect within the delay cancels the will.
        if broker.is_current(&client_id, epoch) {
            broker.publish(will.message, Some(&client_id));
        }
    });
}

/// Grows the read buffer in steps before a read, so a large packet is read in
/// few calls while an idle connection keeps its small buffer.
fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 256 {
        buf.reserve(8192);
    }
}

/// The next finished retained publish, or never when there is no channel yet.
async fn recv_deferred(
    deferred: &mut Option<(
        mpsc::UnboundedSender<RetainedStored>,
        mpsc::UnboundedReceiver<RetainedStored>,
    )>,
) -> Option<RetainedStored> {
    match deferred {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes and flushes: TLS and WebSocket streams buffer until flushed.
async fn write_flush<W: AsyncWrite + Unpin>(wr: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    wr.write_all(bytes).await?;
    wr.flush().await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
