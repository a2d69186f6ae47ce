//! Policy variables through the public API: what each resolves to, what
//! happens when it has no value, and the literal escapes.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns unwrap too.

use fleetcore_policy::{
    topic_arn, Action, CertificateInfo, CompiledPolicies, ConnectedThing, ConnectionContext,
    Decision, PolicyDocument, RequestContext,
};

fn compile(statements: &str, ctx: &ConnectionContext) -> CompiledPolicies {
    let json = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
    CompiledPolicies::compile(&[PolicyDocument::parse(&json).unwrap()], ctx)
}

fn publish(resource_pattern: &str) -> String {
    format!(
        r#"{{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:r:1:topic/{resource_pattern}"}}"#
    )
}

fn topic(name: &str) -> String {
    topic_arn("r", "1", name)
}

fn can_publish(compiled: &CompiledPolicies, name: &str) -> bool {
    compiled.allowed(Action::Publish, &topic(name), &RequestContext::default())
}

fn full_context() -> ConnectionContext {
    let mut thing = ConnectedThing::new("thing-1");
    thing.type_name = Some("lamp".into());
    thing.attributes.insert("site".into(), "berlin".into());
    let mut certificate = CertificateInfo {
        serial_number: Some("921285cbb7a5e086".into()),
        ..CertificateInfo::default()
    };
    certificate.subject.common_name = vec!["LightBulb Device Cert".into()];
    certificate.subject.organizational_unit = vec!["LightBulb".into(), "Lab".into()];
    certificate.issuer.common_name = vec!["IoT Devices Primary CA".into()];
    certificate.subject_alternative_names.dns_name = vec!["example.com".into()];
    ConnectionContext {
        client_id: "client-1".into(),
        source_ip: Some("192.0.2.10".parse().unwrap()),
        domain_name: Some("iot.example.com".into()),
        thing: Some(thing),
        certificate: Some(certificate),
    }
}

#[test]
fn every_connection_variable_substitutes() {
    let ctx = full_context();
    for (variable, value) in [
        ("iot:ClientId", "client-1"),
        ("aws:SourceIp", "192.0.2.10"),
        ("iot:DomainName", "iot.example.com"),
        ("iot:Connection.Thing.ThingName", "thing-1"),
        ("iot:Connection.Thing.ThingTypeName", "lamp"),
        ("iot:Connection.Thing.Attributes[site]", "berlin"),
        ("iot:Connection.Thing.IsAttached", "true"),
        ("iot:Certificate.SerialNumber", "921285cbb7a5e086"),
        (
            "iot:Certificate.Subject.CommonName",
            "LightBulb Device Cert",
        ),
        ("iot:Certificate.Subject.OrganizationalUnit", "LightBulb"),
        ("iot:Certificate.Subject.OrganizationalUnit.1", "Lab"),
        (
            "iot:Certificate.Issuer.CommonName",
            "IoT Devices Primary CA",
        ),
        (
            "iot:Certificate.Subject.AlternativeName.DNSName",
            "example.com",
        ),
    ] {
        let compiled = compile(&publish(&format!("t/${{{variable}}}")), &ctx);
        assert!(can_publish(&compiled, &format!("t/{value}")), "{variable}");
        assert!(!can_publish(&compiled, "t/other"), "{variable}");
        // Variable names ignore case.
        let shouted = compile(
            &publish(&format!("t/${{{}}}", variable.to_uppercase())),
            &ctx,
        );
        let attribute_case_kept = variable.contains('[');
        assert_eq!(
            can_publish(&shouted, &format!("t/{value}")),
            !attribute_case_kept,
            "{variable}"
        );
    }
}

#[test]
fn missing_thing_leaves_thing_variables_without_value() {
    let ctx = ConnectionContext::new("client-1");
    for variable in [
        "iot:Connection.Thing.ThingName",
        "iot:Connection.Thing.ThingTypeName",
        "iot:Connection.Thing.Attributes[site]",
        "iot:Certificate.Subject.CommonName",
        "iot:Certificate.SerialNumber",
        "aws:SourceIp",
        "iot:DomainName",
    ] {
        let compiled = compile(&publish(&format!("t/${{{variable}}}")), &ctx);
        assert_eq!(compiled.statement_count(), 0, "{variable}");
        assert!(!can_publish(&compiled, "t/"), "{variable}");
        assert!(
            !can_publish(&compiled, &format!("t/${{{variable}}}")),
            "{variable}"
        );
    }
    // IsAttached always has a value.
    let compiled = compile(&publish("t/${iot:Connection.Thing.IsAttached}"), &ctx);
    assert!(can_publish(&compiled, "t/false"));
}

#[test]
fn missing_attribute_or_type_of_an_attached_thing() {
    let ctx = ConnectionContext {
        thing: Some(ConnectedThing::new("bare")),
        ..ConnectionContext::new("bare")
    };
    let compiled = compile(
        &[
            publish("a/${iot:Connection.Thing.Attributes[site]}"),
            publish("b/${iot:Connection.Thing.ThingTypeName}"),
            publish("c/${iot:Connection.Thing.ThingName}"),
        ]
        .join(","),
        &ctx,
    );
    assert_eq!(compiled.statement_count(), 1);
    assert!(can_publish(&compiled, "c/bare"));
    assert!(!can_publish(&compiled, "a/"));
    assert!(!can_publish(&compiled, "b/"));
}

#[test]
fn one_unresolved_entry_does_not_disable_the_others() {
    let statement = r#"{"Effect":"Allow","Action":"iot:Publish","Resource":[
        "arn:aws:iot:r:1:topic/thing/${iot:Connection.Thing.ThingName}",
        "arn:aws:iot:r:1:topic/client/${iot:ClientId}"]}"#;
    let compiled = compile(statement, &ConnectionContext::new("c1"));
    assert!(can_publish(&compiled, "client/c1"));
    assert!(!can_publish(&compiled, "thing/c1"));
}

#[test]
fn unresolved_not_resource_entries_exclude_nothing() {
    // IAM: an entry with a valueless variable "will not match any resource",
    // so as a NotResource entry it excludes nothing.
    let statement = r#"{"Effect":"Allow","Action":"iot:Publish","NotResource":[
        "arn:aws:iot:r:1:topic/${iot:Connection.Thing.ThingName}/private"]}"#;
    let unattached = compile(statement, &ConnectionContext::new("c1"));
    assert!(can_publish(&unattached, "c1/private"));
    let attached = compile(
        statement,
        &ConnectionContext {
            thing: Some(ConnectedThing::new("c1")),
            ..ConnectionContext::new("c1")
        },
    );
    assert!(!can_publish(&attached, "c1/private"));
    assert!(can_publish(&attached, "c1/public"));
}

#[test]
fn literal_escapes_are_not_wildcards() {
    let ctx = ConnectionContext::new("c");
    let compiled = compile(&publish("price/${$}5/${*}/${?}"), &ctx);
    assert!(can_publish(&compiled, "price/$5/*/?"));
    assert!(!can_publish(&compiled, "price/$5/x/y"));
    let compiled = compile(&publish("a${*}*"), &ctx);
    assert!(can_publish(&compiled, "a*"));
    assert!(can_publish(&compiled, "a*anything"));
    assert!(!can_publish(&compiled, "ab"));
}

#[test]
fn default_values() {
    let compiled = compile(
        &publish("team/${iot:Connection.Thing.Attributes[team], 'company-wide'}/*"),
        &ConnectionContext::new("c"),
    );
    assert!(can_publish(&compiled, "team/company-wide/x"));
    let mut thing = ConnectedThing::new("c");
    thing.attributes.insert("team".into(), "yellow".into());
    let compiled = compile(
        &publish("team/${iot:Connection.Thing.Attributes[team], 'company-wide'}/*"),
        &ConnectionContext {
            thing: Some(thing),
            ..ConnectionContext::new("c")
        },
    );
    assert!(can_publish(&compiled, "team/yellow/x"));
    assert!(!can_publish(&compiled, "team/company-wide/x"));
}

#[test]
fn substituted_values_are_literal() {
    for client_id in ["*", "?", "a*", "#", "+"] {
        let compiled = compile(
            &publish("c/${iot:ClientId}"),
            &ConnectionContext::new(client_id),
        );
        assert!(
            can_publish(&compiled, &format!("c/{client_id}")),
            "{client_id}"
        );
        assert!(!can_publish(&compiled, "c/x"), "{client_id}");
        assert!(!can_publish(&compiled, "c/ab"), "{client_id}");
    }
}

#[test]
fn certificate_values_with_wildcards_are_not_substituted() {
    let mut ctx = full_context();
    if let Some(certificate) = ctx.certificate.as_mut() {
        certificate.subject.common_name = vec!["device+1".into()];
    }
    let compiled = compile(&publish("cn/${iot:Certificate.Subject.CommonName}"), &ctx);
    assert!(!can_publish(&compiled, "cn/device+1"));
    assert!(!can_publish(
        &compiled,
        "cn/${iot:Certificate.Subject.CommonName}"
    ));
    // ...but the client ID, which AWS does not restrict, is substituted.
    let ctx = ConnectionContext::new("device+1");
    let compiled = compile(&publish("cn/${iot:ClientId}"), &ctx);
    assert!(can_publish(&compiled, "cn/device+1"));
}

#[test]
fn variables_in_condition_values() {
    let statement = r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"*",
        "Condition":{"StringEquals":{"iot:ClientId":"${iot:Connection.Thing.ThingName}"}}}"#;
    let connect = |ctx: &ConnectionContext| {
        compile(statement, ctx).evaluate(
            Action::Connect,
            "arn:aws:iot:r:1:client/x",
            &RequestContext::default(),
        )
    };
    let attached = |client: &str, thing: &str| ConnectionContext {
        thing: Some(ConnectedThing::new(thing)),
        ..ConnectionContext::new(client)
    };
    assert_eq!(connect(&attached("dev", "dev")), Decision::Allow);
    assert_eq!(connect(&attached("dev", "other")), Decision::ImplicitDeny);
    assert_eq!(
        connect(&ConnectionContext::new("dev")),
        Decision::ImplicitDeny
    );
}

#[test]
fn request_time_variables_have_no_value_in_resources() {
    let compiled = compile(
        &publish("t/${aws:CurrentTime}"),
        &ConnectionContext::new("c"),
    );
    assert!(!can_publish(&compiled, "t/"));
    assert_eq!(compiled.statement_count(), 0);
}
