"""paho-mqtt 2.x (the Eclipse Python MQTT client) against a running Fleetcore node.

Run by `cargo test -p fleetcore-tests --test compat`, which starts one node and
passes its MQTT listener in FLEETCORE_MQTT_HOST / FLEETCORE_MQTT_PORT and its
HTTP API in FLEETCORE_URL. Tests that hold for both protocol versions run for
MQTT 3.1.1 and MQTT 5; the rest are MQTT 5 only.

Every wait is bounded (TIMEOUT). Where a test must show that something did NOT
arrive, it publishes a sentinel after the point where the unwanted message would
have been sent and checks what came before the sentinel, instead of sleeping.
Every test uses its own client ids and topics.
"""
import json
import os
import queue
import socket
import threading
import time
import urllib.request
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

HOST = os.environ.get("FLEETCORE_MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("FLEETCORE_MQTT_PORT", "1883"))
URL = os.environ.get("FLEETCORE_URL", "http://127.0.0.1:8080")
TIMEOUT = 10.0

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5
BOTH = pytest.mark.parametrize("protocol", [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")])


def uid():
    return uuid.uuid4().hex[:12]


def props(packet_type, **values):
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


class Conn:
    """One paho client on its own network thread, with every callback recorded."""

    def __init__(self, protocol, client_id=None, *, clean=True, will=None, manual_ack=False):
        self.protocol = protocol
        self.client_id = client_id or f"paho-{uid()}"
        self.clean = clean
        extra = {"clean_session": clean} if protocol == V311 else {}
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=protocol,
            manual_ack=manual_ack,
            # Never let an automatic reconnect hide a dropped connection.
            reconnect_on_failure=False,
            **extra,
        )
        if will is not None:
            self.client.will_set(**will)
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None
        self.disconnect_reason = None
        self._lock = threading.Condition()
        self._subacks = {}
        self._unsubacks = {}
        self._pubacks = {}
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish
        self.running = False

    # -- callbacks (network thread) --
    def _on_connect(self, _c, _u, flags, reason_code, properties):
        self.connack = (flags.session_present, reason_code, properties)
        self.connected.set()

    def _on_disconnect(self, _c, _u, _flags, reason_code, _properties):
        self.disconnect_reason = reason_code
        self.disconnected.set()

    def _on_subscribe(self, _c, _u, mid, reason_codes, _properties):
        with self._lock:
            self._subacks[mid] = reason_codes
            self._lock.notify_all()

    def _on_unsubscribe(self, _c, _u, mid, reason_codes, _properties):
        with self._lock:
            self._unsubacks[mid] = reason_codes
            self._lock.notify_all()

    def _on_publish(self, _c, _u, mid, reason_code, _properties):
        with self._lock:
            self._pubacks[mid] = reason_code
            self._lock.notify_all()

    def _wait_ack(self, table, mid, what):
        with self._lock:
            assert self._lock.wait_for(lambda: mid in table, TIMEOUT), f"{self.client_id}: no {what} for mid {mid}"
            return table.pop(mid)

    # -- operations (test thread) --
    def connect(self, *, clean_start=True, session_expiry=None, properties=None):
        """Connects and waits for a successful CONNACK; returns session_present."""
        self.connected.clear()
        self.disconnected.clear()
        if self.protocol == V5:
            p = properties or Properties(PacketTypes.CONNECT)
            if session_expiry is not None:
                p.SessionExpiryInterval = session_expiry
            self.client.connect(HOST, PORT, keepalive=30, clean_start=clean_start, properties=p)
        else:
            self.client.connect(HOST, PORT, keepalive=30)
        self.client.loop_start()
        self.running = True
        assert self.connected.wait(TIMEOUT), f"{self.client_id}: no CONNACK"
        session_present, reason, _ = self.connack
        assert not reason.is_failure, f"{self.client_id}: CONNACK {reason}"
        return session_present

    def subscribe(self, topic_filter, qos=2, properties=None):
        """Subscribes and returns the SUBACK reason codes (asserting success)."""
        kwargs = {"properties": properties} if properties is not None else {}
        rc, mid = self.client.subscribe(topic_filter, qos=qos, **kwargs)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        codes = self._wait_ack(self._subacks, mid, f"SUBACK({topic_filter})")
        assert all(not c.is_failure for c in codes), f"SUBACK {topic_filter}: {codes}"
        return codes

    def unsubscribe(self, topic_filter):
        rc, mid = self.client.unsubscribe(topic_filter)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        return self._wait_ack(self._unsubacks, mid, f"UNSUBACK({topic_filter})")

    def publish(self, topic, payload, qos=1, retain=False, properties=None):
        """Publishes and waits until the QoS flow completes (sent, PUBACK or PUBCOMP)."""
        kwargs = {"properties": properties} if properties is not None else {}
        info = self.client.publish(topic, payload, qos=qos, retain=retain, **kwargs)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        reason = self._wait_ack(self._pubacks, info.mid, f"publish completion of {topic!r}")
        if self.protocol == V5 and qos > 0:
            assert not reason.is_failure, f"publish {topic}: {reason}"
        return reason

    def get(self, what="a message"):
        try:
            return self.messages.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no {what} within {TIMEOUT}s") from None

    def until(self, topic, payload):
        """Every message received up to and including (topic, payload)."""
        seen = []
        while True:
            msg = self.get(f"{topic} {payload!r} (after {[(m.topic, m.payload) for m in seen]})")
            seen.append(msg)
            if msg.topic == topic and msg.payload == payload:
                return seen

    def disconnect(self, reasoncode=None, properties=None):
        """Clean DISCONNECT."""
        self.client.disconnect(reasoncode=reasoncode, properties=properties)
        assert self.disconnected.wait(TIMEOUT), f"{self.client_id}: no disconnect"
        self.client.loop_stop()
        self.running = False

    def drop(self):
        """Closes the TCP connection without DISCONNECT (a network failure)."""
        self.client.loop_stop()
        self.running = False
        sock = self.client.socket()
        assert sock is not None
        # Abortive close: RST, as when a device loses power or its network.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()

    def close(self):
        if self.running:
            try:
                self.client.disconnect()
            except Exception:
                pass
            self.client.loop_stop()
            self.running = False


@pytest.fixture
def conns():
    """Factory for connected clients; all are closed when the test ends."""
    made = []

    def make(protocol, client_id=None, *, connect=True, clean=True, will=None, manual_ack=False, **connect_args):
        c = Conn(protocol, client_id, clean=clean, will=will, manual_ack=manual_ack)
        made.append(c)
        if connect:
            c.connect(**connect_args)
        return c

    yield make
    for c in made:
        c.close()


def presence_watch(conns, client_id, kind="disconnected"):
    """A client subscribed to the lifecycle event of `client_id`."""
    w = conns(V311)
    w.subscribe(f"$aws/events/presence/{kind}/{client_id}", qos=1)
    return w


def wait_event(watcher, client_id, kind="disconnected"):
    topic = f"$aws/events/presence/{kind}/{client_id}"
    msg = watcher.get(f"{kind} event of {client_id}")
    assert msg.topic == topic, msg.topic
    event = json.loads(msg.payload)
    assert event["clientId"] == client_id and event["eventType"] == kind, event
    return event


# ---------------------------------------------------------------- both versions


@BOTH
def test_connect_and_wildcard_subscriptions(conns, protocol):
    base = f"paho/{uid()}"
    sub = conns(protocol)
    assert sub.connack[0] is False  # a new client id has no session
    sub.subscribe(f"{base}/+/temp", qos=1)
    sub.subscribe(f"{base}/house/#", qos=1)
    pub = conns(protocol)
    published = [
        f"{base}/kitchen/temp",  # +
        f"{base}/kitchen/humidity",  # no
        f"{base}/house",  # '#' matches its parent level too
        f"{base}/house/a/b",  # #
        f"{base}/kitchen/temp/x",  # no: + is one level
        f"{base}/temp",  # no: + needs a level
        f"{base}//temp",  # +: an empty level is a level
    ]
    for t in published:
        pub.publish(t, t.encode(), qos=1)
    expected = [f"{base}/kitchen/temp", f"{base}/house", f"{base}/house/a/b", f"{base}//temp"]
    got = [sub.get(f"match {i}") for i in range(len(expected))]
    assert sorted(m.topic for m in got) == sorted(expected)
    assert all(m.payload == m.topic.encode() for m in got)
    pub.publish(f"{base}/house/end", b"end", qos=1)
    extra = sub.until(f"{base}/house/end", b"end")[:-1]
    assert [m.topic for m in extra] == [], "delivered on topics that match no subscription"


@BOTH
def test_leading_wildcards_do_not_match_dollar_topics(conns, protocol):
    base = f"paho/{uid()}"
    wild = conns(protocol)
    wild.subscribe("#", qos=1)
    wild.subscribe("+/events/#", qos=1)
    exact = conns(protocol)
    probe_id = f"probe-{uid()}"
    exact.subscribe(f"$aws/events/presence/connected/{probe_id}", qos=1)
    conns(protocol, probe_id)
    wait_event(exact, probe_id, "connected")
    conns(protocol).publish(f"{base}/end", b"end", qos=1)
    before = wild.until(f"{base}/end", b"end")
    dollar = [m.topic for m in before if m.topic.startswith("$")]
    assert dollar == [], "'#' and '+' must not match topics beginning with '$'"


@BOTH
def test_qos_0_1_2_each_delivered_once_with_its_qos(conns, protocol):
    topic = f"paho/{uid()}/qos"
    sub2 = conns(protocol)
    assert [c.value for c in sub2.subscribe(topic, qos=2)] == [2]
    sub1 = conns(protocol)
    assert [c.value for c in sub1.subscribe(topic, qos=1)] == [1]
    pub = conns(protocol)
    for q in (0, 1, 2):
        pub.publish(topic, f"q{q}".encode(), qos=q)
    for sub, cap in ((sub2, 2), (sub1, 1)):
        # Only same-QoS messages are ordered (3.1.1 section 4.6, MQTT 5 section 4.6):
        # take the three first, whatever their order.
        got = [sub.get(f"message {i}") for i in range(3)]
        assert sorted((m.payload, m.qos) for m in got) == [(b"q0", 0), (b"q1", min(1, cap)), (b"q2", min(2, cap))]
        assert not any(m.retain or m.dup for m in got)
    # A duplicate of q1 (q2) would come before a later QoS 1 (QoS 2) message.
    pub.publish(topic, b"end1", qos=1)
    pub.publish(topic, b"end2", qos=2)
    for sub in (sub2, sub1):
        rest = [sub.get("a sentinel").payload for _ in range(2)]
        assert sorted(rest) == [b"end1", b"end2"], f"duplicate deliveries: {rest}"


@BOTH
def test_retained_message_goes_to_later_subscribers_until_cleared(conns, protocol):
    topic = f"paho/{uid()}/retained"
    pub = conns(protocol)
    pub.publish(topic, b"v1", qos=1, retain=True)
    pub.publish(topic, b"v2", qos=1, retain=True)  # replaces v1

    late = conns(protocol)
    late.subscribe(topic, qos=1)
    msg = late.get("the retained message")
    assert (msg.payload, msg.retain, msg.qos) == (b"v2", True, 1)

    # An empty retained payload clears it; an established subscriber still gets
    # the publish, with RETAIN 0 (3.1.1 section 3.3.1.3; MQTT 5 Retain As Published = 0).
    pub.publish(topic, b"", qos=1, retain=True)
    msg = late.get("the clearing publish")
    assert (msg.payload, msg.retain) == (b"", False)

    later = conns(protocol)
    later.subscribe(topic, qos=1)
    pub.publish(topic, b"live", qos=1)
    got = later.until(topic, b"live")
    assert [(m.payload, m.retain) for m in got] == [(b"live", False)], "a cleared retained message was delivered"


@BOTH
def test_will_is_published_when_the_connection_is_lost(conns, protocol):
    topic = f"paho/{uid()}/will"
    watcher = conns(protocol)
    watcher.subscribe(topic, qos=1)
    device = conns(protocol, will={"topic": topic, "payload": b"gone", "qos": 1, "retain": False})
    device.drop()
    msg = watcher.get("the will message")
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == (topic, b"gone", 1, False)


NORMAL = ReasonCode(PacketTypes.DISCONNECT, "Normal disconnection")


@pytest.mark.parametrize(
    "protocol,reason,properties",
    [
        pytest.param(V311, None, None, id="v311"),
        # MQTT 5 section 3.14.2.1: "If the Remaining Length is less than 1 the value
        # of 0x00 (Normal disconnection) is used". paho's plain disconnect() sends E0 00.
        pytest.param(
            V5,
            None,
            None,
            id="v5-E0-00",
        ),
        # Section 3.14.2.2.1: "If the Remaining Length is less than 2, a value of 0 is
        # used" for the Property Length. paho sends E0 01 00 for a reason code alone.
        pytest.param(
            V5,
            NORMAL,
            None,
            id="v5-E0-01-00",
        ),
        pytest.param(V5, NORMAL, Properties(PacketTypes.DISCONNECT), id="v5-E0-02-00-00"),
    ],
)
def test_will_is_not_published_on_clean_disconnect(conns, protocol, reason, properties):
    topic = f"paho/{uid()}/will"
    device_id = f"dev-{uid()}"
    watcher = conns(protocol)
    watcher.subscribe(topic, qos=1)
    gone = presence_watch(conns, device_id)
    device = conns(protocol, device_id, will={"topic": topic, "payload": b"gone", "qos": 1, "retain": False})
    device.disconnect(reason, properties)
    event = wait_event(gone, device_id)
    conns(protocol).publish(topic, b"sentinel", qos=1)
    got = watcher.until(topic, b"sentinel")
    assert [m.payload for m in got] == [b"sentinel"], "will published after a clean DISCONNECT"
    assert (event["clientInitiatedDisconnect"], event["disconnectReason"]) == (True, "CLIENT_INITIATED_DISCONNECT"), event


@BOTH
def test_persistent_session_queues_while_away(conns, protocol):
    topic = f"paho/{uid()}/session"
    device_id = f"persist-{uid()}"
    session = {"clean_start": True, "session_expiry": 300} if protocol == V5 else {}
    resume = {"clean_start": False, "session_expiry": 300} if protocol == V5 else {}
    gone = presence_watch(conns, device_id)

    first = conns(protocol, device_id, clean=False, **session)
    assert first.connack[0] is False
    first.subscribe(topic, qos=2)
    first.disconnect()
    wait_event(gone, device_id)

    pub = conns(protocol)
    pub.publish(topic, b"m1", qos=1)
    pub.publish(topic, b"m2", qos=1)
    pub.publish(topic, b"m3", qos=2)

    second = conns(protocol, device_id, clean=False, connect=False)
    assert second.connect(**resume) is True, "session_present must be 1 when resuming a stored session"
    got = [second.get(f"queued message {i}") for i in range(3)]
    assert sorted((m.payload, m.qos) for m in got) == [(b"m1", 1), (b"m2", 1), (b"m3", 2)]
    assert [m.payload for m in got if m.qos == 1] == [b"m1", b"m2"]  # in order
    # The subscription is still there without subscribing again, and nothing was doubled.
    pub.publish(topic, b"live", qos=1)
    assert [m.payload for m in second.until(topic, b"live")] == [b"live"]
    second.disconnect()
    wait_event(gone, device_id)

    # A clean start throws the session away: no session, no subscription.
    fresh = conns(protocol, device_id, clean=True, connect=False)
    assert fresh.connect() is False
    fresh.subscribe(f"{topic}/other", qos=1)
    pub.publish(topic, b"old-subscription", qos=1)
    pub.publish(f"{topic}/other", b"end", qos=1)
    assert [m.payload for m in fresh.until(f"{topic}/other", b"end")] == [b"end"]


@BOTH
def test_http_publish_reaches_mqtt_subscribers(conns, protocol):
    topic = f"paho/{uid()}/http"
    sub = conns(protocol)
    sub.subscribe(topic, qos=1)
    req = urllib.request.Request(f"{URL}/topics/{topic}?qos=1", data=b'{"from":"http"}', method="POST")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        assert r.status == 200
    msg = sub.get("the HTTP publish")
    assert (msg.topic, msg.payload, msg.qos) == (topic, b'{"from":"http"}', 1)


# ---------------------------------------------------------------- MQTT 5 only


def test_v5_properties_pass_through(conns):
    topic = f"paho/{uid()}/props"
    sub = conns(V5)
    sub.subscribe(topic, qos=1)
    pub = conns(V5)
    user = [("k1", "v1"), ("k2", "v2"), ("k1", "v3")]
    pub.publish(
        topic,
        b"{}",
        qos=1,
        properties=props(
            PacketTypes.PUBLISH,
            UserProperty=user,
            ResponseTopic=f"{topic}/reply",
            CorrelationData=b"\x00corr\xff",
            ContentType="application/json",
            PayloadFormatIndicator=1,
        ),
    )
    msg = sub.get("the publish with properties")
    p = msg.properties
    assert p.UserProperty == user  # order and repeated keys kept (MQTT 5 section 3.3.2.3.7)
    assert p.ResponseTopic == f"{topic}/reply"
    assert p.CorrelationData == b"\x00corr\xff"
    assert p.ContentType == "application/json"
    assert p.PayloadFormatIndicator == 1


def test_v5_message_expiry(conns):
    topic = f"paho/{uid()}/expiry"
    device_id = f"expiry-{uid()}"
    gone = presence_watch(conns, device_id)
    dev = conns(V5, device_id, clean_start=True, session_expiry=300)
    dev.subscribe(topic, qos=1)
    dev.disconnect()
    wait_event(gone, device_id)
    pub = conns(V5)
    pub.publish(topic, b"short", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish(topic, b"long", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=300))
    # Not a settle delay: the point of the test is that 1 s passes while the
    # messages wait in the session.
    time.sleep(2.1)
    back = conns(V5, device_id, connect=False)
    assert back.connect(clean_start=False, session_expiry=300) is True
    pub.publish(topic, b"end", qos=1)
    got = back.until(topic, b"end")
    assert [m.payload for m in got] == [b"long", b"end"], "an expired message was delivered"
    # The forwarded interval is what is left of it (MQTT 5 section 3.3.2.3.3).
    assert got[0].properties.MessageExpiryInterval <= 298


def test_v5_subscription_identifiers(conns):
    base = f"paho/{uid()}"
    sub = conns(V5)
    sub.subscribe(f"{base}/a/#", qos=1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
    sub.subscribe(f"{base}/b", qos=1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=268435455))
    sub.subscribe(f"{base}/c", qos=1)
    pub = conns(V5)
    for t in (f"{base}/a/x", f"{base}/b", f"{base}/c"):
        pub.publish(t, b"x", qos=1)
    got = {}
    for _ in range(3):
        m = sub.get()
        got[m.topic] = getattr(m.properties, "SubscriptionIdentifier", None)
    assert got == {f"{base}/a/x": [7], f"{base}/b": [268435455], f"{base}/c": None}


def test_v5_topic_alias_from_the_publisher(conns):
    base = f"paho/{uid()}"
    sub = conns(V5)
    sub.subscribe(f"{base}/#", qos=1)
    pub = conns(V5)
    advertised = pub.connack[2].TopicAliasMaximum
    assert advertised >= 1, "CONNACK must advertise Topic Alias Maximum"
    alias = lambda n: props(PacketTypes.PUBLISH, TopicAlias=n)  # noqa: E731
    pub.publish(f"{base}/one", b"1", qos=1, properties=alias(1))  # sets alias 1
    pub.publish("", b"2", qos=1, properties=alias(1))  # uses it
    pub.publish(f"{base}/two", b"3", qos=1, properties=alias(1))  # remaps it
    pub.publish("", b"4", qos=1, properties=alias(1))
    pub.publish(f"{base}/max", b"5", qos=1, properties=alias(advertised))
    pub.publish("", b"6", qos=1, properties=alias(advertised))
    got = [sub.get(f"aliased message {i}") for i in range(6)]
    # The subscriber set no Topic Alias Maximum, so it gets full topic names.
    assert [(m.topic, m.payload) for m in got] == [
        (f"{base}/one", b"1"),
        (f"{base}/one", b"2"),
        (f"{base}/two", b"3"),
        (f"{base}/two", b"4"),
        (f"{base}/max", b"5"),
        (f"{base}/max", b"6"),
    ]


def test_v5_topic_alias_above_the_maximum_is_a_protocol_error(conns):
    pub = conns(V5)
    too_big = pub.connack[2].TopicAliasMaximum + 1
    pub.client.publish(f"paho/{uid()}/alias", b"x", qos=1, properties=props(PacketTypes.PUBLISH, TopicAlias=too_big))
    assert pub.disconnected.wait(TIMEOUT), "the server must close a connection that exceeds its Topic Alias Maximum"
    # MQTT 5 section 3.3.2.3.4: DISCONNECT with 0x94 Topic Alias invalid.
    assert pub.disconnect_reason.value == 0x94, pub.disconnect_reason


def share_among_two(conns):
    """Two members of one share group; 40 messages; what each member got."""
    base = f"paho/{uid()}"
    group = f"g{uid()}"
    a, b = conns(V5), conns(V5)
    inbox = queue.Queue()  # (member, message) from both
    for s in (a, b):
        s.client.on_message = lambda _c, _u, msg, who=s.client_id: inbox.put((who, msg))
        s.subscribe(f"$share/{group}/{base}/work/+", qos=1)
        s.subscribe(f"{base}/end", qos=1)
    pub = conns(V5)
    n = 40
    for i in range(n):
        pub.publish(f"{base}/work/{i}", str(i).encode(), qos=1)
    got = {a.client_id: [], b.client_id: []}

    def take():
        try:
            return inbox.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"shared subscription: only {got} within {TIMEOUT}s") from None

    while sum(map(len, got.values())) < n:
        who, msg = take()
        got[who].append(int(msg.payload))
    # Duplicates would come before a later message on the same connection.
    pub.publish(f"{base}/end", b"end", qos=1)
    ended = set()
    while len(ended) < 2:
        who, msg = take()
        if msg.topic == f"{base}/end":
            ended.add(who)
        else:
            got[who].append(int(msg.payload))
    everything = got[a.client_id] + got[b.client_id]
    assert sorted(everything) == list(range(n)), f"each message exactly once across the group: {got}"
    return got


def test_v5_shared_subscription_delivers_each_message_once(conns):
    share_among_two(conns)


def test_v5_shared_subscription_both_members_get_a_share(conns):
    got = share_among_two(conns)
    assert all(got.values()), f"round robin should give each of two members some of 40 messages: {got}"


def test_v5_receive_maximum_limits_unacknowledged_deliveries(conns):
    topic = f"paho/{uid()}/flow"
    sub = conns(V5, manual_ack=True, properties=props(PacketTypes.CONNECT, ReceiveMaximum=2))
    sub.subscribe(topic, qos=1)
    pub = conns(V5)
    for i in range(4):
        pub.publish(topic, f"m{i}".encode(), qos=1)  # each PUBACKed: routed to the subscriber
    first = [sub.get(f"in-flight message {i}") for i in range(2)]
    assert [m.payload for m in first] == [b"m0", b"m1"]
    # A SUBSCRIBE round trip on the same connection: its SUBACK comes after
    # anything the server had already sent, so a third message would be queued
    # by now. (QoS 0 is no probe: a server MAY hold it back too, MQTT 5 section 4.9.)
    sub.subscribe(f"{topic}/other", qos=0)
    assert sub.messages.empty(), "more QoS 1 messages in flight than the client's Receive Maximum"
    sub.client.ack(first[0].mid, 1)
    third = sub.get("the message released by the first PUBACK")
    assert third.payload == b"m2"
    sub.client.ack(first[1].mid, 1)
    assert sub.get("the last message").payload == b"m3"
    sub.client.ack(third.mid, 1)


def test_v5_reason_codes(conns):
    base = f"paho/{uid()}"
    c = conns(V5)
    assert [r.value for r in c.subscribe(f"{base}/x", qos=2)] == [0x02]  # Granted QoS 2
    assert [r.value for r in c.subscribe(f"{base}/y", qos=1)] == [0x01]
    assert [r.value for r in c.unsubscribe(f"{base}/x")] == [0x00]  # Success
    assert [r.value for r in c.unsubscribe(f"{base}/never")] == [0x11]  # No subscription existed
    # DISCONNECT with reason 0x04 asks the server to publish the will anyway.
    topic = f"{base}/will"
    c.subscribe(topic, qos=1)
    dev = conns(V5, will={"topic": topic, "payload": b"bye", "qos": 1})
    dev.disconnect(ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"), Properties(PacketTypes.DISCONNECT))
    assert c.get("the will sent on DISCONNECT 0x04").payload == b"bye"
