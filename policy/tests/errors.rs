//! Every way `PolicyDocument::parse` rejects a document, and the location it
//! reports (what the API answers as `MalformedPolicyException`).
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns unwrap too.

use fleetcore_policy::{PolicyDocument, PolicyError, MAX_POLICY_DOCUMENT_CHARS};

fn error(json: &str) -> PolicyError {
    match PolicyDocument::parse(json) {
        Ok(document) => panic!("accepted {json}: {document:?}"),
        Err(error) => error,
    }
}

/// A document with `statements` (JSON text) as its statement array.
fn with_statements(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

const OK: &str = r#"{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}"#;

/// A statement with `condition` (JSON text) as its `Condition`, placed second.
fn with_condition(condition: &str) -> String {
    with_statements(&format!(
        r#"{OK},{{"Effect":"Allow","Action":"iot:Publish","Resource":"*","Condition":{condition}}}"#
    ))
}

fn assert_located(error: &PolicyError, location: &str) {
    assert_eq!(error.location(), Some(location), "{error}");
    assert!(
        error.to_string().starts_with(&format!("{location}: ")),
        "message should lead with the location: {error}"
    );
}

#[test]
fn size_limit_counts_characters_without_whitespace() {
    let padding = |n: usize| "x".repeat(n);
    let template = |resource: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:r:a:client/{resource}"}}}}"#
        )
    };
    let base = template("").chars().count();
    let at_limit = template(&padding(MAX_POLICY_DOCUMENT_CHARS - base));
    assert_eq!(at_limit.chars().count(), MAX_POLICY_DOCUMENT_CHARS);
    PolicyDocument::parse(&at_limit).unwrap();
    // Whitespace does not count, however much of it there is.
    let spaced = at_limit.replace(',', ",\n        ");
    assert!(spaced.len() > MAX_POLICY_DOCUMENT_CHARS);
    PolicyDocument::parse(&spaced).unwrap();
    let over = template(&padding(MAX_POLICY_DOCUMENT_CHARS - base + 1));
    assert_eq!(
        error(&over),
        PolicyError::DocumentTooLarge {
            characters: MAX_POLICY_DOCUMENT_CHARS + 1,
            limit: MAX_POLICY_DOCUMENT_CHARS
        }
    );
    // Characters, not bytes.
    let wide = template(&"é".repeat(MAX_POLICY_DOCUMENT_CHARS - base));
    PolicyDocument::parse(&wide).unwrap();
    assert_eq!(error(&over).location(), None);
}

#[test]
fn invalid_json() {
    for (json, line, column) in [
        ("", 1, 0),
        ("{", 1, 1),
        ("{\n  \"Version\": }", 2, 14),
        ("{} x", 1, 4),
    ] {
        match error(json) {
            PolicyError::InvalidJson {
                line: l,
                column: c,
                message,
            } => {
                assert_eq!((l, c), (line, column), "{json:?}: {message}");
                assert!(!message.contains(" at line "), "{message}");
            }
            other => panic!("{json:?}: {other}"),
        }
    }
}

#[test]
fn document_level_errors() {
    let e = error("[]");
    assert_located(&e, "(document)");
    assert!(matches!(
        e,
        PolicyError::WrongType {
            expected: "a JSON object",
            found: "an array",
            ..
        }
    ));

    let e = error(r#"{"Statement":[]}"#);
    assert!(matches!(
        e,
        PolicyError::MissingElement {
            element: "Version",
            ..
        }
    ));
    assert_located(&e, "(document)");

    let e = error(r#"{"Version":"2012-10-17"}"#);
    assert!(matches!(
        e,
        PolicyError::MissingElement {
            element: "Statement",
            ..
        }
    ));

    let e = error(&format!(r#"{{"Version":"2008-10-17","Statement":{OK}}}"#));
    assert_eq!(
        e,
        PolicyError::UnsupportedVersion {
            location: "Version".into(),
            found: "2008-10-17".into()
        }
    );

    let e = error(&format!(r#"{{"Version":20121017,"Statement":{OK}}}"#));
    assert!(matches!(
        e,
        PolicyError::WrongType {
            found: "a number",
            ..
        }
    ));
    assert_located(&e, "Version");

    let e = error(&format!(
        r#"{{"Version":"2012-10-17","Id":7,"Statement":{OK}}}"#
    ));
    assert_located(&e, "Id");

    let e = error(&format!(
        r#"{{"Version":"2012-10-17","Statement":{OK},"Extra":1}}"#
    ));
    assert!(
        matches!(&e, PolicyError::UnknownElement { element, hint: "", .. } if element == "Extra")
    );
    assert_located(&e, "(document)");

    let e = error(&format!(r#"{{"version":"2012-10-17","Statement":{OK}}}"#));
    assert!(e.to_string().contains("case-sensitive"), "{e}");

    let e = error(&format!(
        r#"{{"Version":"2012-10-17","Statement":{OK},"Statement":{OK}}}"#
    ));
    assert_eq!(
        e,
        PolicyError::DuplicateKey {
            location: "(document)".into(),
            key: "Statement".into()
        }
    );
}

#[test]
fn statement_shape_errors() {
    let e = error(r#"{"Version":"2012-10-17","Statement":"iot:*"}"#);
    assert_located(&e, "Statement");
    assert!(matches!(e, PolicyError::WrongType { .. }));

    let e = error(&with_statements(""));
    assert_eq!(
        e,
        PolicyError::Empty {
            location: "Statement".into()
        }
    );

    let e = error(&with_statements(&format!("{OK},42")));
    assert_located(&e, "Statement[1]");
    assert!(matches!(
        e,
        PolicyError::WrongType {
            found: "a number",
            ..
        }
    ));

    // A single statement object has no index in its location.
    let e = error(r#"{"Version":"2012-10-17","Statement":{"Action":"iot:*","Resource":"*"}}"#);
    assert!(matches!(
        e,
        PolicyError::MissingElement {
            element: "Effect",
            ..
        }
    ));
    assert_located(&e, "Statement");

    let e = error(&with_statements(&format!(
        r#"{OK},{{"Effect":"Allow","Resource":"*"}}"#
    )));
    assert!(matches!(
        e,
        PolicyError::MissingElement {
            element: "Action or NotAction",
            ..
        }
    ));
    assert_located(&e, "Statement[1]");

    let e = error(&with_statements(r#"{"Effect":"Allow","Action":"iot:*"}"#));
    assert!(matches!(
        e,
        PolicyError::MissingElement {
            element: "Resource or NotResource",
            ..
        }
    ));
    assert_located(&e, "Statement[0]");

    let e = error(&with_statements(
        r#"{"Effect":"Allow","Action":"iot:*","NotAction":"iot:Connect","Resource":"*"}"#,
    ));
    assert!(matches!(
        e,
        PolicyError::ConflictingElements {
            first: "Action",
            second: "NotAction",
            ..
        }
    ));
    assert_located(&e, "Statement[0]");

    let e = error(&with_statements(
        r#"{"Effect":"Allow","Action":"iot:*","NotResource":"*","Resource":"*"}"#,
    ));
    assert!(matches!(
        e,
        PolicyError::ConflictingElements {
            first: "NotResource",
            second: "Resource",
            ..
        }
    ));

    let e = error(&with_statements(
        r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"iot:*","Resource":"*"}"#,
    ));
    assert!(matches!(&e, PolicyError::UnknownElement { element, .. } if element == "Principal"));
    assert!(e.to_string().contains("attached"), "{e}");

    let e = error(&with_statements(
        r#"{"effect":"Allow","Action":"iot:*","Resource":"*"}"#,
    ));
    assert!(e.to_string().contains("case-sensitive"), "{e}");
    assert_located(&e, "Statement[0]");

    let e = error(&with_statements(
        r#"{"Effect":"Allow","Effect":"Deny","Action":"iot:*","Resource":"*"}"#,
    ));
    assert_eq!(
        e,
        PolicyError::DuplicateKey {
            location: "Statement[0]".into(),
            key: "Effect".into()
        }
    );
}

#[test]
fn sid_and_effect_errors() {
    let e = error(&with_statements(
        r#"{"Sid":1,"Effect":"Allow","Action":"iot:*","Resource":"*"}"#,
    ));
    assert_located(&e, "Statement[0].Sid");

    let e = error(&with_statements(
        r#"{"Sid":"A","Effect":"Allow","Action":"iot:*","Resource":"*"},
           {"Sid":"B","Effect":"Allow","Action":"iot:*","Resource":"*"},
           {"Sid":"A","Effect":"Deny","Action":"iot:*","Resource":"*"}"#,
    ));
    assert_located(&e, "Statement[2].Sid");
    assert!(e.to_string().contains("Statement[0]"), "{e}");

    let e = error(&with_statements(
        r#"{"Effect":"allow","Action":"iot:*","Resource":"*"}"#,
    ));
    assert_located(&e, "Statement[0].Effect");
    assert!(matches!(e, PolicyError::InvalidValue { .. }));

    let e = error(&with_statements(
        r#"{"Effect":true,"Action":"iot:*","Resource":"*"}"#,
    ));
    assert_located(&e, "Statement[0].Effect");
    assert!(matches!(
        e,
        PolicyError::WrongType {
            found: "a boolean",
            ..
        }
    ));
}

#[test]
fn action_errors() {
    let statement = |action: &str| {
        with_statements(&format!(
            r#"{OK},{{"Effect":"Allow","Action":{action},"Resource":"*"}}"#
        ))
    };
    let e = error(&statement(r#"["iot:Publish","s3:GetObject"]"#));
    assert_located(&e, "Statement[1].Action[1]");
    assert!(e.to_string().contains("\"s3\""), "{e}");

    let e = error(&statement(r#""Publish""#));
    assert_located(&e, "Statement[1].Action");

    let e = error(&statement("[]"));
    assert_eq!(
        e,
        PolicyError::Empty {
            location: "Statement[1].Action".into()
        }
    );

    let e = error(&statement(r#"["iot:Connect",""]"#));
    assert_eq!(
        e,
        PolicyError::Empty {
            location: "Statement[1].Action[1]".into()
        }
    );

    let e = error(&statement(r#"[7]"#));
    assert_located(&e, "Statement[1].Action[0]");
    assert!(matches!(
        e,
        PolicyError::WrongType {
            expected: "a string",
            ..
        }
    ));

    let e = error(&statement(r#"{"iot":"Publish"}"#));
    assert_located(&e, "Statement[1].Action");

    for bad in [
        r#""iot:""#,
        r#""iot:Pub lish""#,
        r#""io*:Publish""#,
        r#""iot:Publish/x""#,
    ] {
        let e = error(&statement(bad));
        assert!(matches!(e, PolicyError::InvalidValue { .. }), "{bad}: {e}");
        assert_located(&e, "Statement[1].Action");
    }

    let e = error(&with_statements(
        r#"{"Effect":"Deny","NotAction":["ec2:*"],"Resource":"*"}"#,
    ));
    assert_located(&e, "Statement[0].NotAction[0]");
}

#[test]
fn resource_errors() {
    let statement = |resource: &str| {
        with_statements(&format!(
            r#"{{"Effect":"Allow","Action":"iot:*","Resource":{resource}}}"#
        ))
    };
    let e = error(&statement(r#"["arn:aws:iot:r:a:topic/x","topic/x"]"#));
    assert_located(&e, "Statement[0].Resource[1]");
    assert!(matches!(e, PolicyError::InvalidValue { .. }));

    let e = error(&statement(r#""""#));
    assert_eq!(
        e,
        PolicyError::Empty {
            location: "Statement[0].Resource".into()
        }
    );

    let e = error(&statement("[]"));
    assert_eq!(
        e,
        PolicyError::Empty {
            location: "Statement[0].Resource".into()
        }
    );

    let e = error(&statement("null"));
    assert_located(&e, "Statement[0].Resource");

    let e = error(&with_statements(
        r#"{"Effect":"Allow","Action":"iot:*","NotResource":["*",["nested"]]}"#,
    ));
    assert_located(&e, "Statement[0].NotResource[1]");
}

#[test]
fn condition_errors() {
    let e = error(&with_condition("[]"));
    assert_located(&e, "Statement[1].Condition");
    assert!(matches!(e, PolicyError::WrongType { .. }));

    let e = error(&with_condition(r#"{"StringEqualz":{"iot:ClientId":"a"}}"#));
    assert_eq!(
        e,
        PolicyError::UnknownConditionOperator {
            location: "Statement[1].Condition".into(),
            operator: "StringEqualz".into()
        }
    );
    for operator in [
        "NullIfExists",
        "ForAllValues:Null",
        "BinaryEquals",
        "ForSomeValues:StringLike",
    ] {
        let e = error(&with_condition(&format!(
            r#"{{"{operator}":{{"iot:ClientId":"a"}}}}"#
        )));
        assert!(
            matches!(e, PolicyError::UnknownConditionOperator { .. }),
            "{operator}: {e}"
        );
    }

    let e = error(&with_condition(r#"{"StringEquals":"iot:ClientId"}"#));
    assert_located(&e, "Statement[1].Condition.StringEquals");

    let e = error(&with_condition(r#"{"StringEquals":{}}"#));
    assert_eq!(
        e,
        PolicyError::Empty {
            location: "Statement[1].Condition.StringEquals".into()
        }
    );

    let e = error(&with_condition(r#"{"StringEquals":{"iot:ClientId":[]}}"#));
    assert_eq!(
        e,
        PolicyError::Empty {
            location: "Statement[1].Condition.StringEquals.iot:ClientId".into()
        }
    );

    let e = error(&with_condition(
        r#"{"StringEquals":{"iot:ClientId":["a",null]}}"#,
    ));
    assert_located(&e, "Statement[1].Condition.StringEquals.iot:ClientId[1]");
    assert!(matches!(e, PolicyError::WrongType { found: "null", .. }));

    let e = error(&with_condition(
        r#"{"StringEquals":{"iot:ClientId":{"a":"b"}}}"#,
    ));
    assert_located(&e, "Statement[1].Condition.StringEquals.iot:ClientId");

    let e = error(&with_condition(
        r#"{"StringEquals":{"iot:ClientId":"a"},"StringEquals":{"iot:ClientId":"b"}}"#,
    ));
    assert_eq!(
        e,
        PolicyError::DuplicateKey {
            location: "Statement[1].Condition".into(),
            key: "StringEquals".into()
        }
    );

    let e = error(&with_condition(
        r#"{"StringEquals":{"iot:ClientId":"a","iot:ClientId":"b"}}"#,
    ));
    assert_located(&e, "Statement[1].Condition.StringEquals");
    assert!(matches!(e, PolicyError::DuplicateKey { .. }));

    for (operator, value) in [
        ("NumericLessThan", r#""ten""#),
        ("NumericEquals", r#""${iot:ClientId}""#),
        ("DateGreaterThan", r#""tomorrow""#),
        ("DateEquals", r#""2023-02-30""#),
        ("IpAddress", r#""300.1.1.1""#),
        ("NotIpAddress", r#""10.0.0.0/40""#),
        ("Bool", r#""yes""#),
        ("Null", r#""maybe""#),
    ] {
        let e = error(&with_condition(&format!(
            r#"{{"{operator}":{{"aws:Key":["ok",{value}]}}}}"#
        )));
        // "ok" itself is invalid for most of these; check the first bad value wins.
        let location = e.location().unwrap_or_default().to_owned();
        assert!(
            location.starts_with(&format!("Statement[1].Condition.{operator}.aws:Key[")),
            "{operator}: {e}"
        );
        let e = error(&with_condition(&format!(
            r#"{{"{operator}":{{"aws:Key":{value}}}}}"#
        )));
        assert!(
            matches!(e, PolicyError::InvalidValue { .. }),
            "{operator}: {e}"
        );
        assert_located(&e, &format!("Statement[1].Condition.{operator}.aws:Key"));
    }
}

#[test]
fn valid_condition_values_of_every_type() {
    let json = with_condition(
        r#"{
            "StringLike": {"iot:ClientId": ["dev-*", "${iot:Connection.Thing.ThingName}"]},
            "NumericGreaterThanEquals": {"aws:EpochTime": [1700000000, "1.5"]},
            "DateLessThan": {"aws:CurrentTime": ["2030-01-01T00:00:00Z", "1900000000"]},
            "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]},
            "Bool": {"iot:Connection.Thing.IsAttached": [true, "${iot:Connection.Thing.IsAttached}"]},
            "Null": {"iot:DomainName": false},
            "ForAnyValue:StringEqualsIgnoreCase": {"iot:ConnectAttributes": "LastWill"},
            "ArnLike": {"aws:SourceArn": "arn:aws:iot:*:*:thing/*"}
        }"#,
    );
    let document = PolicyDocument::parse(&json).unwrap();
    assert!(document.statements()[1].has_conditions());
}
