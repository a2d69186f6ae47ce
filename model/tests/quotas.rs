//! Quotas on replicated state: a full quota refuses with AWS's error, naming the
//! quota and its value, and changes nothing; expired retained messages leave
//! through the leader's `ExpireRetained`, judged by the time in the command.

use fleetcore_model::limits::{
    Quotas, NAMED_SHADOWS_PER_THING_MAX, RETAINED_BYTES_MAX, RETAINED_MESSAGES_MAX,
};
use fleetcore_model::{ClusterCommand, RegistryCommand, RetainedCommand, ShadowCommand};
use fleetcore_model::{Command, Rejection, RetainedMessage, ShadowKey, State};

fn retained(topic: &str, payload: Vec<u8>, expires_at_ms: Option<u64>) -> Command {
    Command::Retained(RetainedCommand::Set(RetainedMessage {
        topic: topic.into(),
        payload,
        qos: 1,
        payload_format: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user: Vec::new(),
        stored_at_ms: 0,
        expires_at_ms,
    }))
}

#[test]
fn retained_messages_are_bounded_in_count() {
    let mut s = State::default();
    for i in 0..RETAINED_MESSAGES_MAX {
        assert!(s.apply(&retained(&format!("t/{i}"), vec![1], None)).is_ok());
    }
    let full = s.apply(&retained("t/one-more", vec![1], None));
    match full {
        Err(Rejection::LimitExceeded { what, limit }) => {
            assert!(what.contains("retained messages"), "{what}");
            assert_eq!(limit, RETAINED_MESSAGES_MAX as u64);
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    // Replacing or clearing an existing topic still works at the limit.
    assert!(s.apply(&retained("t/0", vec![2, 2], None)).is_ok());
    assert!(s.apply(&retained("t/1", Vec::new(), None)).is_ok());
    assert!(s.apply(&retained("t/one-more", vec![1], None)).is_ok());
    assert_eq!(s.retained().usage().0, RETAINED_MESSAGES_MAX);
}

#[test]
fn retained_messages_are_bounded_in_bytes() {
    let mut s = State::default();
    let big = 200 * 1024;
    let fits = RETAINED_BYTES_MAX / (big + 8);
    for i in 0..fits {
        assert!(s
            .apply(&retained(&format!("b/{i:05}"), vec![7; big], None))
            .is_ok());
    }
    let refused = s.apply(&retained("b/over", vec![7; big], None));
    assert!(
        matches!(&refused, Err(Rejection::LimitExceeded { what, .. }) if what.contains("bytes")),
        "{refused:?}"
    );
    // Clearing frees the bytes.
    assert!(s.apply(&retained("b/00000", Vec::new(), None)).is_ok());
    assert!(s.apply(&retained("b/over", vec![7; big], None)).is_ok());
}

#[test]
fn expired_retained_messages_are_removed_by_the_leaders_command() {
    let mut s = State::default();
    assert!(s.apply(&retained("e/short", vec![1], Some(1_000))).is_ok());
    assert!(s.apply(&retained("e/long", vec![1], Some(9_000))).is_ok());
    assert!(s.apply(&retained("e/never", vec![1], None)).is_ok());
    let (expired, more) = s.retained().expired(5_000, None, 100);
    assert_eq!(expired, vec!["e/short".to_string()]);
    assert_eq!(more, None);
    // Judged by the command's time: "e/long" is not expired at 5 s, even if named.
    let sweep = Command::Retained(RetainedCommand::Expire {
        topics: vec!["e/short".into(), "e/long".into()],
        at_ms: 5_000,
    });
    assert!(s.apply(&sweep).is_ok());
    let left: Vec<&str> = s.retained().iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(left, vec!["e/long", "e/never"]);
    let bytes = "e/long".len() + 1 + "e/never".len() + 1;
    assert_eq!(s.retained().usage(), (2, bytes));
}

#[test]
fn named_shadows_per_thing_are_bounded() {
    let mut s = State::default();
    let update = |name: &str| {
        Command::Shadow(ShadowCommand::Update {
            key: ShadowKey::named("lamp", name),
            request: r#"{"state":{"reported":{"on":true}}}"#.into(),
            at_ms: 0,
        })
    };
    for i in 0..NAMED_SHADOWS_PER_THING_MAX {
        assert!(s.apply(&update(&format!("s{i}"))).is_ok());
    }
    let refused = s.apply(&update("one-more"));
    assert!(
        matches!(&refused, Err(Rejection::LimitExceeded { limit, .. }) if *limit == NAMED_SHADOWS_PER_THING_MAX as u64),
        "{refused:?}"
    );
    // Existing ones still update; the classic shadow does not count.
    assert!(s.apply(&update("s0")).is_ok());
    let classic = Command::Shadow(ShadowCommand::Update {
        key: ShadowKey::classic("lamp"),
        request: r#"{"state":{"reported":{"on":true}}}"#.into(),
        at_ms: 0,
    });
    assert!(s.apply(&classic).is_ok());
}

fn create_thing(name: &str) -> Command {
    Command::Registry(RegistryCommand::CreateThing {
        name: name.into(),
        thing_type_name: None,
        attributes: Default::default(),
        thing_id: format!("id-{name}"),
        at_ms: 0,
    })
}

fn create_group(name: &str) -> Command {
    Command::Registry(RegistryCommand::CreateThingGroup {
        name: name.into(),
        parent: None,
        description: None,
        attributes: Default::default(),
        thing_group_id: format!("id-{name}"),
        at_ms: 0,
    })
}

/// Quotas are replicated state: set by a command, enforced by every replica the
/// same way, refusals naming the quota; lowering one removes nothing.
#[test]
fn quotas_are_set_by_command_and_name_themselves_when_full() {
    let mut s = State::default();
    assert_eq!(s.quotas(), Quotas::default());
    let quotas = Quotas {
        things: 2,
        thing_groups: 1,
        named_shadows_per_thing: 1,
        shadow_state_bytes: 40,
        retained_messages: 1,
        retained_payload_bytes: 20,
        ..Quotas::default()
    };
    assert!(s
        .apply(&Command::Cluster(ClusterCommand::SetQuotas(quotas)))
        .is_ok());
    assert_eq!(s.quotas(), quotas);

    assert!(s.apply(&create_thing("a")).is_ok());
    assert!(s.apply(&create_thing("b")).is_ok());
    match s.apply(&create_thing("c")) {
        Err(Rejection::LimitExceeded { what, limit }) => {
            assert!(what.contains("quota things"), "{what}");
            assert_eq!(limit, 2);
        }
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    // Re-creating an existing thing is not a new one.
    assert!(s.apply(&create_thing("a")).is_ok());

    assert!(s.apply(&create_group("g1")).is_ok());
    let refused = s.apply(&create_group("g2"));
    assert!(
        matches!(&refused, Err(Rejection::LimitExceeded { what, limit: 1 }) if what.contains("thingGroups")),
        "{refused:?}"
    );

    let shadow = |name: &str, body: &str| {
        Command::Shadow(ShadowCommand::Update {
            key: ShadowKey::named("a", name),
            request: body.into(),
            at_ms: 0,
        })
    };
    assert!(s
        .apply(&shadow("n1", r#"{"state":{"reported":{"x":1}}}"#))
        .is_ok());
    let refused = s.apply(&shadow("n2", r#"{"state":{"reported":{"x":1}}}"#));
    assert!(
        matches!(&refused, Err(Rejection::LimitExceeded { what, .. }) if what.contains("namedShadowsPerThing")),
        "{refused:?}"
    );
    let refused = s.apply(&shadow(
        "n1",
        r#"{"state":{"reported":{"long":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}}"#,
    ));
    assert!(
        matches!(&refused, Err(Rejection::TooLarge { max: 40, .. })),
        "{refused:?}"
    );

    let refused = s.apply(&retained("r/big", vec![1; 30], None));
    assert!(
        matches!(&refused, Err(Rejection::TooLarge { what, max: 20, .. }) if what.contains("retainedPayloadBytes")),
        "{refused:?}"
    );
    assert!(s.apply(&retained("r/1", vec![1], None)).is_ok());
    assert!(s.apply(&retained("r/2", vec![1], None)).is_err());

    // Lowered below what is stored: nothing is removed, nothing new fits.
    let lower = Quotas {
        things: 1,
        ..quotas
    };
    assert!(s
        .apply(&Command::Cluster(ClusterCommand::SetQuotas(lower)))
        .is_ok());
    assert!(s.registry().thing("b").is_some());
    assert!(s.apply(&create_thing("d")).is_err());

    // The quotas are a stored record, so they survive a reload and a snapshot.
    let mut reloaded = State::default();
    for record in s.records() {
        reloaded.insert(record);
    }
    assert_eq!(reloaded, s);
    assert_eq!(reloaded.quotas(), lower);
}

#[test]
fn a_quota_of_zero_or_above_its_ceiling_is_refused() {
    let mut s = State::default();
    for bad in [
        Quotas {
            things: 0,
            ..Quotas::default()
        },
        Quotas {
            retained_bytes: Quotas::ceilings().retained_bytes + 1,
            ..Quotas::default()
        },
    ] {
        let refused = s.apply(&Command::Cluster(ClusterCommand::SetQuotas(bad)));
        assert!(
            matches!(&refused, Err(Rejection::Invalid(m)) if m.contains("quota")),
            "{refused:?}"
        );
    }
    assert_eq!(s.quotas(), Quotas::default());
}

/// A deleted shadow keeps its version for 48 hours (an update within them
/// continues it, as AWS IoT does); after that the leader's command forgets the
/// tombstone, judged by the time in the command, and a new shadow starts at 1.
#[test]
fn shadow_tombstones_are_forgotten_after_48_hours() {
    use fleetcore_model::limits::SHADOW_TOMBSTONE_MS;
    let mut s = State::default();
    let update = |at_ms: u64| {
        Command::Shadow(ShadowCommand::Update {
            key: ShadowKey::classic("lamp"),
            request: r#"{"state":{"reported":{"on":true}}}"#.into(),
            at_ms,
        })
    };
    let delete = |at_ms: u64| {
        Command::Shadow(ShadowCommand::Delete {
            key: ShadowKey::classic("lamp"),
            expected_version: None,
            client_token: None,
            at_ms,
        })
    };
    let version = |s: &State| {
        s.shadows()
            .get(&ShadowKey::classic("lamp"))
            .map(|r| r.version)
    };
    assert!(s.apply(&update(1_000)).is_ok());
    assert!(s.apply(&update(2_000)).is_ok());
    assert!(s.apply(&delete(3_000)).is_ok());
    // Within 48 hours: nothing is stale, and an update continues the version.
    let (stale, _) = s
        .shadows()
        .stale_tombstones(3_000 + SHADOW_TOMBSTONE_MS - 1, None, 100);
    assert!(stale.is_empty());
    assert!(s.apply(&update(4_000)).is_ok());
    assert_eq!(version(&s), Some(3));
    assert!(s.apply(&delete(5_000)).is_ok());
    // A sweep stamped too early removes nothing, even when it names the shadow.
    let early = Command::Shadow(ShadowCommand::ForgetTombstones {
        keys: vec![ShadowKey::classic("lamp")],
        at_ms: 5_000 + SHADOW_TOMBSTONE_MS - 1,
    });
    assert!(s.apply(&early).is_ok());
    assert_eq!(version(&s), Some(3));
    let at = 5_000 + SHADOW_TOMBSTONE_MS;
    let (stale, more) = s.shadows().stale_tombstones(at, None, 100);
    assert_eq!(stale, vec![ShadowKey::classic("lamp")]);
    assert_eq!(more, None);
    let sweep = Command::Shadow(ShadowCommand::ForgetTombstones {
        keys: stale,
        at_ms: at,
    });
    assert!(s.apply(&sweep).is_ok());
    assert_eq!(version(&s), None);
    assert!(s.apply(&update(at + 1)).is_ok());
    assert_eq!(version(&s), Some(1));
    // A live shadow named in a sweep is left alone.
    assert!(s
        .apply(&Command::Shadow(ShadowCommand::ForgetTombstones {
            keys: vec![ShadowKey::classic("lamp")],
            at_ms: u64::MAX,
        }))
        .is_ok());
    assert_eq!(version(&s), Some(1));
}
