//! Policy documents from the AWS IoT Core developer guide, evaluated the way
//! the guide says they behave. Each test names the page it comes from.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns unwrap too.

use std::collections::BTreeMap;

use fleetcore_policy::{
    client_arn, thing_arn, topic_arn, topicfilter_arn, Action, CertificateInfo, CompiledPolicies,
    ConnectedThing, ConnectionContext, Decision, PolicyDocument, RequestContext,
};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

fn compile(policy: &str, ctx: &ConnectionContext) -> CompiledPolicies {
    let document = PolicyDocument::parse(policy).unwrap();
    CompiledPolicies::compile(&[document], ctx)
}

fn registered(thing: &str) -> ConnectionContext {
    ConnectionContext {
        thing: Some(ConnectedThing::new(thing)),
        ..ConnectionContext::new(thing)
    }
}

fn topic(name: &str) -> String {
    topic_arn(REGION, ACCOUNT, name)
}

fn filter(name: &str) -> String {
    topicfilter_arn(REGION, ACCOUNT, name)
}

fn client(id: &str) -> String {
    client_arn(REGION, ACCOUNT, id)
}

const NO_REQUEST: RequestContext<'static> = RequestContext {
    current_time: None,
    connect_attributes: None,
};

/// "Basic AWS IoT Core policy variables": `${iot:ClientId}` in Connect and
/// Publish resources.
#[test]
fn client_id_scoped_connect_and_publish() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": [
          {
            "Effect": "Allow",
            "Action": ["iot:Connect"],
            "Resource": ["arn:aws:iot:us-east-1:123451234510:client/${iot:ClientId}"]
          },
          {
            "Effect": "Allow",
            "Action": ["iot:Publish"],
            "Resource": ["arn:aws:iot:us-east-1:123451234510:topic/my/topic/${iot:ClientId}"]
          }
        ]
    }"#;
    let compiled = compile(policy, &ConnectionContext::new("100-234-3456"));
    let arn = |kind: &str, name: &str| format!("arn:aws:iot:us-east-1:123451234510:{kind}/{name}");
    assert!(compiled.allowed(Action::Connect, &arn("client", "100-234-3456"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Connect, &arn("client", "other"), &NO_REQUEST));
    assert!(compiled.allowed(
        Action::Publish,
        &arn("topic", "my/topic/100-234-3456"),
        &NO_REQUEST
    ));
    assert!(!compiled.allowed(
        Action::Publish,
        &arn("topic", "my/topic/other"),
        &NO_REQUEST
    ));
    assert_eq!(
        compiled.evaluate(
            Action::Subscribe,
            &arn("topicfilter", "my/topic/100-234-3456"),
            &NO_REQUEST
        ),
        Decision::ImplicitDeny
    );
}

/// "Basic AWS IoT Core policy variables": a client ID of `+` turns
/// `topicfilter/my/${iot:ClientId}/topic` into the filter `my/+/topic` —
/// which the policy then grants *literally*, not as a wildcard.
#[test]
fn client_id_plus_is_only_the_literal_filter() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Action": ["iot:Subscribe"],
            "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/my/${iot:ClientId}/topic"]
        }
    }"#;
    let compiled = compile(policy, &ConnectionContext::new("+"));
    assert!(compiled.allowed(Action::Subscribe, &filter("my/+/topic"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Subscribe, &filter("my/x/topic"), &NO_REQUEST));
    // And a client ID of `*` is not a wildcard either.
    let compiled = compile(policy, &ConnectionContext::new("*"));
    assert!(compiled.allowed(Action::Subscribe, &filter("my/*/topic"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Subscribe, &filter("my/x/topic"), &NO_REQUEST));
}

/// "Publish/Subscribe policy examples", registered devices (5): connect as
/// the thing, publish under the thing's name.
#[test]
fn per_thing_topics() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"]
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}/*"]
            }
        ]
    }"#;
    let compiled = compile(policy, &registered("thing1"));
    assert!(compiled.allowed(Action::Connect, &client("thing1"), &NO_REQUEST));
    assert!(compiled.allowed(Action::Publish, &topic("thing1/a"), &NO_REQUEST));
    assert!(compiled.allowed(Action::Publish, &topic("thing1/a/b/c"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Publish, &topic("thing2/a"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Publish, &topic("thing1"), &NO_REQUEST));

    // Without an attached thing the variable has no value and nothing matches.
    let unattached = compile(policy, &ConnectionContext::new("thing1"));
    assert_eq!(
        unattached.evaluate(Action::Connect, &client("thing1"), &NO_REQUEST),
        Decision::ImplicitDeny
    );
    assert!(!unattached.allowed(Action::Publish, &topic("thing1/a"), &NO_REQUEST));
    assert_eq!(unattached.statement_count(), 0);
}

/// "Publish/Subscribe policy examples", registered devices (6): subscribe
/// and receive on `<thing>/room*`.
#[test]
fn subscribe_and_receive_with_trailing_star() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/${iot:Connection.Thing.ThingName}/room*"]
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Receive"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}/room*"]
            }
        ]
    }"#;
    let compiled = compile(policy, &registered("thing1"));
    assert!(compiled.allowed(Action::Subscribe, &filter("thing1/room1"), &NO_REQUEST));
    assert!(compiled.allowed(Action::Subscribe, &filter("thing1/room/+"), &NO_REQUEST));
    assert!(compiled.allowed(Action::Receive, &topic("thing1/room2"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Receive, &filter("thing1/room2"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Subscribe, &filter("thing1/kitchen"), &NO_REQUEST));
}

/// "Publish/Subscribe policy examples": `+` and `#` in a policy are literal.
#[test]
fn mqtt_wildcards_in_policies_are_literal() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/some/+/topic"]
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/other/*/topic"]
            }
        ]
    }"#;
    let compiled = compile(policy, &registered("thing1"));
    assert!(compiled.allowed(Action::Subscribe, &filter("some/+/topic"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Subscribe, &filter("some/x/topic"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Subscribe, &filter("some/#"), &NO_REQUEST));
    assert!(compiled.allowed(
        Action::Subscribe,
        &filter("other/string1/topic"),
        &NO_REQUEST
    ));
    assert!(compiled.allowed(Action::Subscribe, &filter("other/+/topic"), &NO_REQUEST));
    // `*` is not confined to one level.
    assert!(compiled.allowed(Action::Subscribe, &filter("other/a/b/topic"), &NO_REQUEST));
}

/// "Publish/Subscribe policy examples", unregistered devices (9): publish
/// under the client ID except to `<clientId>/bar` — Deny wins.
#[test]
fn deny_wins_over_allow() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": [
                    "arn:aws:iot:us-east-1:123456789012:client/client1",
                    "arn:aws:iot:us-east-1:123456789012:client/client2"
                ]
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/*"]
            },
            {
                "Effect": "Deny",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/bar"]
            }
        ]
    }"#;
    let compiled = compile(policy, &ConnectionContext::new("client1"));
    assert_eq!(
        compiled.evaluate(Action::Publish, &topic("client1/foo"), &NO_REQUEST),
        Decision::Allow
    );
    assert_eq!(
        compiled.evaluate(Action::Publish, &topic("client1/bar"), &NO_REQUEST),
        Decision::ExplicitDeny
    );
    assert_eq!(
        compiled.evaluate(Action::Publish, &topic("client2/foo"), &NO_REQUEST),
        Decision::ImplicitDeny
    );
    assert!(compiled.allowed(Action::Connect, &client("client2"), &NO_REQUEST));
}

/// The same, with the Deny in a second attached policy: Deny in *any*
/// policy overrides an Allow in another.
#[test]
fn deny_in_another_policy_wins() {
    let allow = PolicyDocument::parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#,
    )
    .unwrap();
    let deny = PolicyDocument::parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"iot:Pub*",
            "Resource":"arn:aws:iot:us-east-1:123456789012:topic/secret/*"}}"#,
    )
    .unwrap();
    for documents in [[allow.clone(), deny.clone()], [deny, allow]] {
        let compiled = CompiledPolicies::compile(&documents, &ConnectionContext::new("c"));
        assert_eq!(
            compiled.evaluate(Action::Publish, &topic("secret/x"), &NO_REQUEST),
            Decision::ExplicitDeny
        );
        assert_eq!(
            compiled.evaluate(Action::Receive, &topic("secret/x"), &NO_REQUEST),
            Decision::Allow
        );
        assert_eq!(
            compiled.evaluate(Action::Publish, &topic("public/x"), &NO_REQUEST),
            Decision::Allow
        );
    }
}

/// "Publish/Subscribe policy examples": a Deny on `topicfilter/a/restricted/*`
/// does not stop `a/#` from delivering `a/restricted/...`; the documented fix
/// is an Allow on `iot:Receive` with a `NotResource`.
#[test]
fn receive_with_not_resource() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/a/*"
            },
            {
                "Effect": "Deny",
                "Action": "iot:Subscribe",
                "Resource": "arn:aws:iot:us-east-1:123456789012:topicfilter/a/restricted/*"
            },
            {
                "Effect": "Allow",
                "Action": "iot:Receive",
                "NotResource": "arn:aws:iot:us-east-1:123456789012:topic/a/restricted/*"
            }
        ]
    }"#;
    let compiled = compile(policy, &ConnectionContext::new("c"));
    assert!(compiled.allowed(Action::Subscribe, &filter("a/#"), &NO_REQUEST));
    assert_eq!(
        compiled.evaluate(Action::Subscribe, &filter("a/restricted/x"), &NO_REQUEST),
        Decision::ExplicitDeny
    );
    assert!(compiled.allowed(Action::Receive, &topic("a/open"), &NO_REQUEST));
    assert_eq!(
        compiled.evaluate(Action::Receive, &topic("a/restricted/x"), &NO_REQUEST),
        Decision::ImplicitDeny
    );
}

/// "Publish/Subscribe policy examples": subscribing is allowed but every
/// delivery on `device/update` is denied.
#[test]
fn receive_can_be_denied_after_subscribing() {
    let policy = r#"{
       "Version":"2012-10-17",
       "Statement":[
          {
             "Effect":"Allow",
             "Action":"iot:Subscribe",
             "Resource":"arn:aws:iot:us-east-1:123456789012:topicfilter/device/update"
          },
          {
             "Effect":"Deny",
             "Action":"iot:Receive",
             "Resource":"arn:aws:iot:us-east-1:123456789012:topic/device/update"
          }
       ]
    }"#;
    let compiled = compile(policy, &ConnectionContext::new("c"));
    assert!(compiled.allowed(Action::Subscribe, &filter("device/update"), &NO_REQUEST));
    assert_eq!(
        compiled.evaluate(Action::Receive, &topic("device/update"), &NO_REQUEST),
        Decision::ExplicitDeny
    );
}

/// "Connect policy examples": deny two client IDs, allow a thing's own name
/// when the thing is attached.
#[test]
fn connect_as_attached_thing_except_denied_ids() {
    let policy = r#"{
        "Version":"2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": ["iot:Connect"],
                "Resource": [
                    "arn:aws:iot:us-east-1:123456789012:client/client1",
                    "arn:aws:iot:us-east-1:123456789012:client/client2"
                ]
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"],
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
            }
        ]
    }"#;
    let compiled = compile(policy, &registered("sensor-7"));
    assert!(compiled.allowed(Action::Connect, &client("sensor-7"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Connect, &client("sensor-8"), &NO_REQUEST));
    let compiled = compile(policy, &registered("client1"));
    assert_eq!(
        compiled.evaluate(Action::Connect, &client("client1"), &NO_REQUEST),
        Decision::ExplicitDeny
    );
    let compiled = compile(policy, &ConnectionContext::new("sensor-7"));
    assert!(!compiled.allowed(Action::Connect, &client("sensor-7"), &NO_REQUEST));
}

/// "Thing policy examples": connect only with an attached certificate;
/// publish only for a thing of a given type with a given attribute.
#[test]
fn thing_type_and_attribute_conditions() {
    let connect = r#"{
        "Version":"2012-10-17",
        "Statement":[
            {
                "Effect":"Allow",
                "Action":["iot:Connect"],
                "Resource":[ "*" ],
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": ["true"]}}
            }
        ]
    }"#;
    assert!(compile(connect, &registered("t")).allowed(Action::Connect, &client("t"), &NO_REQUEST));
    assert!(!compile(connect, &ConnectionContext::new("t")).allowed(
        Action::Connect,
        &client("t"),
        &NO_REQUEST
    ));

    let publish = r#"{
        "Version":"2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": "arn:aws:iot:us-east-1:123456789012:topic/device/stats",
                "Condition": {
                    "StringEquals": {
                        "iot:Connection.Thing.Attributes[attributeName]": "attributeValue",
                        "iot:Connection.Thing.ThingTypeName": "Thing_Type_Name"
                    },
                    "Bool": {"iot:Connection.Thing.IsAttached": "true"}
                }
            }
        ]
    }"#;
    let mut thing = ConnectedThing::new("t");
    thing.type_name = Some("Thing_Type_Name".into());
    thing.attributes = BTreeMap::from([("attributeName".into(), "attributeValue".into())]);
    let ctx = ConnectionContext {
        thing: Some(thing.clone()),
        ..ConnectionContext::new("t")
    };
    assert!(compile(publish, &ctx).allowed(Action::Publish, &topic("device/stats"), &NO_REQUEST));

    // Each condition key is ANDed: a wrong type or attribute denies.
    let mut wrong_type = thing.clone();
    wrong_type.type_name = Some("Other".into());
    let mut no_attribute = thing;
    no_attribute.attributes.clear();
    for thing in [wrong_type, no_attribute] {
        let ctx = ConnectionContext {
            thing: Some(thing),
            ..ConnectionContext::new("t")
        };
        assert!(!compile(publish, &ctx).allowed(
            Action::Publish,
            &topic("device/stats"),
            &NO_REQUEST
        ));
    }
}

/// "Thing policy examples": a topic prefixed by a thing attribute. "If the
/// device certificate is not associated with the thing, this variable won't
/// be resolved and will result in an access denied error."
#[test]
fn topic_prefixed_by_thing_attribute() {
    let policy = r#"{
        "Version":"2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": "arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.Attributes[attributeName]}/*"
            }
        ]
    }"#;
    let mut thing = ConnectedThing::new("t");
    thing
        .attributes
        .insert("attributeName".into(), "fleet-a".into());
    let ctx = ConnectionContext {
        thing: Some(thing),
        ..ConnectionContext::new("t")
    };
    assert!(compile(policy, &ctx).allowed(Action::Publish, &topic("fleet-a/x"), &NO_REQUEST));
    assert!(!compile(policy, &ctx).allowed(Action::Publish, &topic("fleet-b/x"), &NO_REQUEST));
    let unattached = compile(policy, &ConnectionContext::new("t"));
    assert!(!unattached.allowed(Action::Publish, &topic("fleet-a/x"), &NO_REQUEST));
    // Not even the literal variable text matches.
    assert!(!unattached.allowed(
        Action::Publish,
        &topic("${iot:Connection.Thing.Attributes[attributeName]}/x"),
        &NO_REQUEST
    ));
}

/// "X.509 Certificate AWS IoT Core policy variables": publish only with a
/// certificate whose Organization values are all in the list.
#[test]
fn certificate_organization_list() {
    let policy = r#"{
        "Version":"2012-10-17",
        "Statement":[
          {
            "Effect":"Allow",
            "Action":["iot:Connect"],
            "Resource":["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"]
          },
          {
            "Effect":"Allow",
            "Action":["iot:Publish"],
            "Resource":["arn:aws:iot:us-east-1:123456789012:topic/my/topic/${iot:Connection.Thing.ThingName}"],
            "Condition":{
              "ForAllValues:StringEquals":{
                "iot:Certificate.Subject.Organization.List":["Example Corp", "AnyCompany"]
              }
            }
          }
        ]
    }"#;
    let with_organizations = |organizations: &[&str]| {
        let mut certificate = CertificateInfo::default();
        certificate.subject.organization = organizations.iter().map(|o| o.to_string()).collect();
        ConnectionContext {
            certificate: Some(certificate),
            ..registered("thing1")
        }
    };
    let resource = topic("my/topic/thing1");
    let allowed = |organizations: &[&str]| {
        compile(policy, &with_organizations(organizations)).allowed(
            Action::Publish,
            &resource,
            &NO_REQUEST,
        )
    };
    assert!(allowed(&["Example Corp"]));
    assert!(allowed(&["AnyCompany", "Example Corp"]));
    assert!(!allowed(&["Example Corp", "Other Inc"]));
    // ForAllValues holds for an absent key — IAM's documented caveat.
    assert!(allowed(&[]));
}

/// "Basic AWS IoT Core policy variables" (current page): publish only from
/// one source address.
#[test]
fn source_ip_condition() {
    let policy = r#"{
        "Version":"2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/clientid1"]
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/my/topic/${iot:ClientId}"],
                "Condition": {"IpAddress": {"aws:SourceIp": "123.45.167.89"}}
            }
        ]
    }"#;
    let from = |ip: Option<&str>| ConnectionContext {
        source_ip: ip.map(|ip| ip.parse().unwrap()),
        ..ConnectionContext::new("clientid1")
    };
    let resource = topic("my/topic/clientid1");
    let allowed = |ctx: &ConnectionContext| {
        compile(policy, ctx).allowed(Action::Publish, &resource, &NO_REQUEST)
    };
    assert!(allowed(&from(Some("123.45.167.89"))));
    assert!(allowed(&from(Some("::ffff:123.45.167.89"))));
    assert!(!allowed(&from(Some("123.45.167.90"))));
    assert!(!allowed(&from(None)));
}

/// "Retained message policy examples": connect with a retained Will only.
#[test]
fn connect_attributes_for_last_will() {
    let policy = r#"{
      "Version": "2012-10-17",
      "Statement": [
        {
          "Effect": "Allow",
          "Action": ["iot:Connect"],
          "Resource": ["arn:aws:iot:us-east-1:123456789012:client/*"],
          "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}
        },
        {
          "Effect": "Allow",
          "Action": ["iot:Publish", "iot:RetainPublish"],
          "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/will"]
        }
      ]
    }"#;
    let compiled = compile(policy, &ConnectionContext::new("any"));
    let connect = |attributes: &[&str]| {
        compiled.allowed(
            Action::Connect,
            &client("any"),
            &RequestContext {
                connect_attributes: Some(attributes),
                ..RequestContext::default()
            },
        )
    };
    assert!(connect(&["LastWill"]));
    assert!(connect(&[]));
    assert!(!connect(&["LastWill", "PersistentConnect"]));
    assert!(compiled.allowed(Action::RetainPublish, &topic("will"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::RetainPublish, &topic("other"), &NO_REQUEST));
}

/// "Retained message policy examples": AWS's first example has a stray `{`
/// and is not JSON; the parser says so, with the position.
#[test]
fn the_broken_retained_message_example_is_rejected() {
    let policy = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
    {
      "Effect": "Allow",
      "Action": [
        "iot:Connect"
      ],
      "Resource": [
        "arn:aws:iot:us-east-1:123456789012:client/device1"
      ]
    },
      "Effect": "Allow",
      "Action": [
        "iot:Publish",
        "iot:RetainPublish"
      ],
      "Resource": [
        "arn:aws:iot:us-east-1:123456789012:topic/device/sample/configuration"
      ]
    }
  ]
}"#;
    let error = PolicyDocument::parse(policy).unwrap_err();
    assert!(
        matches!(
            error,
            fleetcore_policy::PolicyError::InvalidJson { line: 5, .. }
        ),
        "{error}"
    );
}

/// "Retained message policy examples": list and get retained messages.
#[test]
fn list_and_get_retained_messages() {
    let policy = r#"{
      "Version": "2012-10-17",
      "Statement": [
        {"Effect": "Allow", "Action": ["iot:ListRetainedMessages"], "Resource": ["*"]},
        {"Effect": "Allow", "Action": ["iot:GetRetainedMessage"],
         "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/foo"]}
      ]
    }"#;
    let compiled = compile(policy, &ConnectionContext::new("app"));
    assert!(compiled.allowed(Action::ListRetainedMessages, "*", &NO_REQUEST));
    assert!(compiled.allowed(Action::GetRetainedMessage, &topic("foo"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::GetRetainedMessage, &topic("bar"), &NO_REQUEST));
}

/// "Publish/Subscribe policy examples" (8)-(10) write `${iot:Thing.ThingName}`,
/// which is not a documented variable: it has no value, so those statements
/// grant nothing.
#[test]
fn the_undocumented_thing_name_variable_has_no_value() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/my/topic/${iot:Thing.ThingName}"]
            }
        ]
    }"#;
    let compiled = compile(policy, &registered("thing1"));
    assert!(!compiled.allowed(Action::Publish, &topic("my/topic/thing1"), &NO_REQUEST));
}

/// Shadow and jobs actions on `thing/<name>` resources, with a `NotAction`.
#[test]
fn shadow_actions_and_not_action() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:*ThingShadow", "iot:DescribeJobExecution"],
                "Resource": "arn:aws:iot:us-east-1:123456789012:thing/${iot:Connection.Thing.ThingName}"
            },
            {
                "Effect": "Deny",
                "NotAction": ["iot:GetThingShadow", "iot:Connect"],
                "Resource": "arn:aws:iot:us-east-1:123456789012:thing/readonly-*"
            }
        ]
    }"#;
    let thing = |name: &str| thing_arn(REGION, ACCOUNT, name);
    let compiled = compile(policy, &registered("dev-1"));
    for action in [
        Action::GetThingShadow,
        Action::UpdateThingShadow,
        Action::DeleteThingShadow,
        Action::DescribeJobExecution,
    ] {
        assert!(
            compiled.allowed(action, &thing("dev-1"), &NO_REQUEST),
            "{action}"
        );
    }
    assert!(!compiled.allowed(Action::UpdateJobExecution, &thing("dev-1"), &NO_REQUEST));
    let readonly = compile(policy, &registered("readonly-1"));
    assert!(readonly.allowed(Action::GetThingShadow, &thing("readonly-1"), &NO_REQUEST));
    assert_eq!(
        readonly.evaluate(Action::UpdateThingShadow, &thing("readonly-1"), &NO_REQUEST),
        Decision::ExplicitDeny
    );
    // Named by string, the same answers.
    assert_eq!(
        readonly.evaluate_action_name("IOT:updatethingshadow", &thing("readonly-1"), &NO_REQUEST),
        Decision::ExplicitDeny
    );
    assert_eq!(
        readonly.evaluate_action_name("iot:GetThingShadow", &thing("readonly-1"), &NO_REQUEST),
        Decision::Allow
    );
    assert_eq!(
        readonly.evaluate_action_name("iot:CreateThing", &thing("other"), &NO_REQUEST),
        Decision::ImplicitDeny
    );
}

/// IAM "Condition operators", `...IfExists`: a time window that also lets
/// through requests made without a known time, and an expiring grant.
#[test]
fn date_conditions_with_if_exists() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": "arn:aws:iot:us-east-1:123456789012:topic/trial/*",
                "Condition": {"DateLessThanIfExists": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}}
            },
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": "arn:aws:iot:us-east-1:123456789012:topic/strict/*",
                "Condition": {
                    "DateGreaterThanEquals": {"aws:CurrentTime": "2024-01-01"},
                    "NumericLessThan": {"aws:EpochTime": "1735689600"}
                }
            }
        ]
    }"#;
    let compiled = compile(policy, &ConnectionContext::new("c"));
    let before = RequestContext::at(1_700_000_000); // 2023-11-14
    let during = RequestContext::at(1_710_000_000); // 2024-03-09
    let after = RequestContext::at(1_740_000_000); // 2025-02-19
    assert!(compiled.allowed(Action::Publish, &topic("trial/x"), &before));
    assert!(!compiled.allowed(Action::Publish, &topic("trial/x"), &during));
    assert!(compiled.allowed(Action::Publish, &topic("trial/x"), &NO_REQUEST));
    assert!(!compiled.allowed(Action::Publish, &topic("strict/x"), &before));
    assert!(compiled.allowed(Action::Publish, &topic("strict/x"), &during));
    assert!(!compiled.allowed(Action::Publish, &topic("strict/x"), &after));
    assert!(!compiled.allowed(Action::Publish, &topic("strict/x"), &NO_REQUEST));
}

/// A Deny with a negated condition still applies when the key is absent
/// (IAM: "the request is still denied even if the tag is missing").
#[test]
fn deny_with_negated_condition_applies_to_absent_keys() {
    let policy = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "iot:Connect",
                "Resource": "*",
                "Condition": {"StringNotEqualsIfExists": {"iot:DomainName": "iot.example.com"}}
            }
        ]
    }"#;
    let at_domain = |domain: Option<&str>| ConnectionContext {
        domain_name: domain.map(str::to_owned),
        ..ConnectionContext::new("c")
    };
    let decision = |ctx: &ConnectionContext| {
        compile(policy, ctx).evaluate(Action::Connect, &client("c"), &NO_REQUEST)
    };
    assert_eq!(
        decision(&at_domain(Some("iot.example.com"))),
        Decision::Allow
    );
    assert_eq!(
        decision(&at_domain(Some("evil.example.com"))),
        Decision::ExplicitDeny
    );
    // No domain known: the negated condition holds, so the Deny applies.
    assert_eq!(decision(&at_domain(None)), Decision::ExplicitDeny);
}
