//! Condition keys and policy variables (`${...}`), and their values for a
//! connection.
//!
//! What AWS documents, and what this does:
//! - Variables may appear in `Resource`/`NotResource` and in the values of
//!   string, ARN and Bool conditions (IAM "Variables and tags"; AWS IoT
//!   "policy variables"). Key and variable names are case-insensitive
//!   (`${IOT:clientid}` is `${iot:ClientId}`).
//! - `${*}`, `${?}` and `${$}` stand for a literal `*`, `?` and `$`.
//! - `${key, 'default'}` uses `default` when the key has no value (IAM
//!   "Specifying default values").
//! - A variable with no value (no attached thing, a missing attribute, a
//!   certificate field that is absent, an index past the last value) makes
//!   the `Resource`/`NotResource` entry that contains it match nothing, and a
//!   condition value containing it equal/like nothing (IAM "Policy variables
//!   with no value"; AWS IoT "Thing policy examples": "this variable won't be
//!   resolved and will result in an access denied error").
//! - Certificate fields: multi-valued attributes give their first value,
//!   `.N` the (N+1)-th (one-based index *after* the first: `.1` is the
//!   second), `.List` all of them, at most five (AWS IoT "X.509 Certificate
//!   policy variables"). A `.List` key is multi-valued, so it works in
//!   `ForAllValues:`/`ForAnyValue:` conditions but not as a `${}` variable
//!   ("You can't use a multivalued condition key as a variable").
//! - A certificate value containing a wildcard character (`*`, `$`, `+`, `?`,
//!   `#`) or longer than 1024 characters is not substituted. AWS leaves the
//!   `${...}` text in the policy, which "might cause authorization failure";
//!   Fleetcore treats it as a variable with no value, which always fails.
//! - Substituted values are literal text: a client ID of `*` does not turn
//!   `topic/${iot:ClientId}` into a wildcard. (AWS does not say; treating the
//!   value as a pattern would let a client widen its own permissions.)

use std::borrow::Cow;

use crate::context::{AltNameField, ConnectionContext, DnField, RequestContext};
use crate::glob::GlobToken;
use crate::scalar;

/// Certificate attribute arrays are "limited to five items. Additional items
/// are ignored."
const MAX_CERTIFICATE_VALUES: usize = 5;
/// Longer certificate strings are not substituted.
const MAX_CERTIFICATE_VALUE_CHARS: usize = 1024;
/// Characters that keep a certificate value from being substituted.
const CERTIFICATE_WILDCARDS: &[char] = &['*', '$', '+', '?', '#'];

/// A condition key or variable name, recognised once at parse time so that
/// compiling and evaluating never look names up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContextKey {
    /// Fixed for the connection: resolved by `CompiledPolicies::compile`.
    Connection(ConnectionKey),
    /// Varies per request: read from [`RequestContext`].
    Request(RequestKey),
    /// A key Fleetcore never has a value for (IAM accepts any key name;
    /// an unknown one is simply absent from the request context).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectionKey {
    ClientId,
    SourceIp,
    DomainName,
    ThingName,
    ThingTypeName,
    ThingIsAttached,
    /// The attribute name as written inside the brackets.
    ThingAttribute(String),
    CertificateSerialNumber,
    CertificateAvailableKeys,
    CertificateNotBefore,
    CertificateNotAfter,
    Certificate(CertificateField, ValueSelector),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertificateField {
    Subject(DnField),
    Issuer(DnField),
    SubjectAlternativeName(AltNameField),
    IssuerAlternativeName(AltNameField),
}

/// Which values of a multi-valued certificate attribute a key denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueSelector {
    /// No suffix: the first value.
    First,
    /// `.N`: the value after the first N.
    Index(usize),
    /// `.List`: every value.
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKey {
    CurrentTime,
    EpochTime,
    ConnectAttributes,
}

impl ContextKey {
    pub(crate) fn parse(name: &str) -> ContextKey {
        let lower = name.to_ascii_lowercase();
        let connection = |key| ContextKey::Connection(key);
        match lower.as_str() {
            "iot:clientid" => return connection(ConnectionKey::ClientId),
            "aws:sourceip" => return connection(ConnectionKey::SourceIp),
            "iot:domainname" => return connection(ConnectionKey::DomainName),
            "iot:connection.thing.thingname" => return connection(ConnectionKey::ThingName),
            "iot:connection.thing.thingtypename" => {
                return connection(ConnectionKey::ThingTypeName)
            }
            "iot:connection.thing.isattached" => return connection(ConnectionKey::ThingIsAttached),
            "iot:certificate.serialnumber" => {
                return connection(ConnectionKey::CertificateSerialNumber)
            }
            "iot:certificate.availablekeys" => {
                return connection(ConnectionKey::CertificateAvailableKeys)
            }
            "iot:certificate.validity.notbefore" => {
                return connection(ConnectionKey::CertificateNotBefore)
            }
            "iot:certificate.validity.notafter" => {
                return connection(ConnectionKey::CertificateNotAfter)
            }
            "aws:currenttime" => return ContextKey::Request(RequestKey::CurrentTime),
            "aws:epochtime" => return ContextKey::Request(RequestKey::EpochTime),
            "iot:connectattributes" => return ContextKey::Request(RequestKey::ConnectAttributes),
            _ => {}
        }
        const ATTRIBUTES: &str = "iot:connection.thing.attributes[";
        if lower.starts_with(ATTRIBUTES) && lower.ends_with(']') {
            // Slice the original: attribute names keep their case.
            let attribute = name
                .get(ATTRIBUTES.len()..name.len() - 1)
                .unwrap_or_default();
            if !attribute.is_empty() {
                return connection(ConnectionKey::ThingAttribute(attribute.to_owned()));
            }
        }
        if let Some(rest) = lower.strip_prefix("iot:certificate.") {
            if let Some((field, selector)) = parse_certificate_field(rest) {
                return connection(ConnectionKey::Certificate(field, selector));
            }
        }
        ContextKey::Unknown
    }
}

fn parse_certificate_field(rest: &str) -> Option<(CertificateField, ValueSelector)> {
    let (issuer, rest) = if let Some(rest) = rest.strip_prefix("subject.") {
        (false, rest)
    } else {
        (true, rest.strip_prefix("issuer.")?)
    };
    let (alternative, rest) = match rest.strip_prefix("alternativename.") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let (field_name, selector) = match rest.split_once('.') {
        None => (rest, ValueSelector::First),
        Some((field, "list")) => (field, ValueSelector::List),
        Some((field, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {
            (field, ValueSelector::Index(index.parse().ok()?))
        }
        Some(_) => return None,
    };
    let field = if alternative {
        let field = AltNameField::ALL
            .into_iter()
            .find(|f| f.policy_name().eq_ignore_ascii_case(field_name))?;
        if issuer {
            CertificateField::IssuerAlternativeName(field)
        } else {
            CertificateField::SubjectAlternativeName(field)
        }
    } else {
        let field = DnField::ALL
            .into_iter()
            .find(|f| f.policy_name().eq_ignore_ascii_case(field_name))?;
        if issuer {
            CertificateField::Issuer(field)
        } else {
            CertificateField::Subject(field)
        }
    };
    Some((field, selector))
}

/// One value of a condition key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyValue<'a> {
    Text(Cow<'a, str>),
    /// A point in time, in epoch seconds. String operators see it as
    /// `YYYY-MM-DDThh:mm:ssZ` (`aws:CurrentTime`) or as the number of
    /// seconds (`aws:EpochTime`); numeric operators see the number only for
    /// the latter.
    Instant {
        epoch_seconds: i64,
        as_number: bool,
    },
}

impl KeyValue<'_> {
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            KeyValue::Text(text) => Cow::Borrowed(text),
            KeyValue::Instant {
                epoch_seconds,
                as_number: true,
            } => Cow::Owned(epoch_seconds.to_string()),
            KeyValue::Instant { epoch_seconds, .. } => {
                Cow::Owned(scalar::format_iso8601(*epoch_seconds))
            }
        }
    }

    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            KeyValue::Text(text) => scalar::parse_number(text),
            KeyValue::Instant {
                epoch_seconds,
                as_number: true,
            } => Some(*epoch_seconds as f64),
            KeyValue::Instant { .. } => None,
        }
    }

    pub(crate) fn date_millis(&self) -> Option<i64> {
        match self {
            KeyValue::Text(text) => scalar::parse_date_millis(text),
            KeyValue::Instant { epoch_seconds, .. } => epoch_seconds.checked_mul(1000),
        }
    }
}

/// The values a key has in a request context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyValues<'a> {
    /// Not present in the request context.
    Absent,
    One(KeyValue<'a>),
    /// A multi-valued key (`.List`, `iot:ConnectAttributes`, ...).
    Many(Vec<KeyValue<'a>>),
}

impl ConnectionKey {
    /// The key's values for `ctx`.
    pub(crate) fn resolve<'c>(&self, ctx: &'c ConnectionContext) -> KeyValues<'c> {
        let text = |value: &'c str| KeyValues::One(KeyValue::Text(Cow::Borrowed(value)));
        let instant = |epoch_seconds: Option<i64>| match epoch_seconds {
            Some(epoch_seconds) => KeyValues::One(KeyValue::Instant {
                epoch_seconds,
                as_number: false,
            }),
            None => KeyValues::Absent,
        };
        let certificate = ctx.certificate.as_ref();
        match self {
            ConnectionKey::ClientId => text(&ctx.client_id),
            ConnectionKey::SourceIp => match ctx.source_ip {
                Some(ip) => KeyValues::One(KeyValue::Text(Cow::Owned(
                    scalar::canonical_ip(ip).to_string(),
                ))),
                None => KeyValues::Absent,
            },
            ConnectionKey::DomainName => ctx.domain_name.as_deref().map_or(KeyValues::Absent, text),
            ConnectionKey::ThingName => ctx
                .thing
                .as_ref()
                .map_or(KeyValues::Absent, |thing| text(&thing.name)),
            ConnectionKey::ThingTypeName => ctx
                .thing
                .as_ref()
                .and_then(|thing| thing.type_name.as_deref())
                .map_or(KeyValues::Absent, text),
            ConnectionKey::ThingAttribute(name) => ctx
                .thing
                .as_ref()
                .and_then(|thing| thing.attributes.get(name))
                .map_or(KeyValues::Absent, |value| text(value)),
            ConnectionKey::ThingIsAttached => {
                KeyValues::One(KeyValue::Text(Cow::Borrowed(if ctx.is_thing_attached() {
                    "true"
                } else {
                    "false"
                })))
            }
            ConnectionKey::CertificateSerialNumber => certificate
                .and_then(|c| c.serial_number.as_deref())
                .map_or(KeyValues::Absent, text),
            ConnectionKey::CertificateNotBefore => instant(certificate.and_then(|c| c.not_before)),
            ConnectionKey::CertificateNotAfter => instant(certificate.and_then(|c| c.not_after)),
            ConnectionKey::CertificateAvailableKeys => match certificate {
                Some(_) => KeyValues::Many(
                    available_certificate_keys(ctx)
                        .into_iter()
                        .map(|key| KeyValue::Text(Cow::Owned(key)))
                        .collect(),
                ),
                None => KeyValues::Absent,
            },
            ConnectionKey::Certificate(field, selector) => {
                let values = certificate_values(ctx, *field);
                let values = &values[..values.len().min(MAX_CERTIFICATE_VALUES)];
                let one = |value: Option<&'c String>| value.map_or(KeyValues::Absent, |v| text(v));
                match selector {
                    ValueSelector::First => one(values.first()),
                    ValueSelector::Index(index) => one(values.get(*index)),
                    ValueSelector::List if values.is_empty() => KeyValues::Absent,
                    ValueSelector::List => KeyValues::Many(
                        values
                            .iter()
                            .map(|v| KeyValue::Text(Cow::Borrowed(v.as_str())))
                            .collect(),
                    ),
                }
            }
        }
    }

    /// The value `${key}` is replaced with, or `None` when it has none.
    fn substitution<'c>(&self, ctx: &'c ConnectionContext) -> Option<Cow<'c, str>> {
        let KeyValues::One(value) = self.resolve(ctx) else {
            return None;
        };
        let text = match value {
            KeyValue::Text(text) => text,
            instant @ KeyValue::Instant { .. } => Cow::Owned(instant.text().into_owned()),
        };
        let from_certificate = matches!(
            self,
            ConnectionKey::Certificate(..) | ConnectionKey::CertificateSerialNumber
        );
        if from_certificate
            && (text.contains(CERTIFICATE_WILDCARDS)
                || text.chars().count() > MAX_CERTIFICATE_VALUE_CHARS)
        {
            return None;
        }
        Some(text)
    }
}

fn certificate_values(ctx: &ConnectionContext, field: CertificateField) -> &[String] {
    let Some(certificate) = ctx.certificate.as_ref() else {
        return &[];
    };
    match field {
        CertificateField::Subject(f) => certificate.subject.values(f),
        CertificateField::Issuer(f) => certificate.issuer.values(f),
        CertificateField::SubjectAlternativeName(f) => {
            certificate.subject_alternative_names.values(f)
        }
        CertificateField::IssuerAlternativeName(f) => {
            certificate.issuer_alternative_names.values(f)
        }
    }
}

/// `iot:Certificate.AvailableKeys`: "the name of all certificate policy
/// variables that contain values".
fn available_certificate_keys(ctx: &ConnectionContext) -> Vec<String> {
    let Some(certificate) = ctx.certificate.as_ref() else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    if certificate.serial_number.is_some() {
        keys.push("iot:Certificate.SerialNumber".to_owned());
    }
    for (prefix, name) in [
        ("iot:Certificate.Subject.", &certificate.subject),
        ("iot:Certificate.Issuer.", &certificate.issuer),
    ] {
        for field in DnField::ALL {
            if !name.values(field).is_empty() {
                keys.push(format!("{prefix}{}", field.policy_name()));
            }
        }
    }
    for (prefix, names) in [
        (
            "iot:Certificate.Subject.AlternativeName.",
            &certificate.subject_alternative_names,
        ),
        (
            "iot:Certificate.Issuer.AlternativeName.",
            &certificate.issuer_alternative_names,
        ),
    ] {
        for field in AltNameField::ALL {
            if !names.values(field).is_empty() {
                keys.push(format!("{prefix}{}", field.policy_name()));
            }
        }
    }
    keys
}

impl RequestKey {
    pub(crate) fn resolve<'r>(self, request: &RequestContext<'r>) -> KeyValues<'r> {
        match self {
            RequestKey::CurrentTime | RequestKey::EpochTime => match request.current_time {
                Some(epoch_seconds) => KeyValues::One(KeyValue::Instant {
                    epoch_seconds,
                    as_number: self == RequestKey::EpochTime,
                }),
                None => KeyValues::Absent,
            },
            RequestKey::ConnectAttributes => match request.connect_attributes {
                Some(attributes) => KeyValues::Many(
                    attributes
                        .iter()
                        .map(|a| KeyValue::Text(Cow::Borrowed(*a)))
                        .collect(),
                ),
                None => KeyValues::Absent,
            },
        }
    }
}

/// A policy string with its `${...}` parts recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    /// Text as written; `*` and `?` in it are wildcards where the operator
    /// has wildcards.
    Text(String),
    /// `${*}`, `${?}`, `${$}`: always the literal character.
    Escaped(char),
    Variable {
        key: ContextKey,
        default: Option<String>,
    },
}

impl Template {
    pub(crate) fn parse(text: &str) -> Template {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let Some(length) = rest[start + 2..].find('}') else {
                break; // an unclosed `${` is plain text
            };
            literal.push_str(&rest[..start]);
            let inner = &rest[start + 2..start + 2 + length];
            rest = &rest[start + 2 + length + 1..];
            let part = match inner {
                "*" => TemplatePart::Escaped('*'),
                "?" => TemplatePart::Escaped('?'),
                "$" => TemplatePart::Escaped('$'),
                _ => {
                    let (name, default) = split_default(inner);
                    TemplatePart::Variable {
                        key: ContextKey::parse(name),
                        default: default.map(str::to_owned),
                    }
                }
            };
            if !literal.is_empty() {
                parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(TemplatePart::Text(literal));
        }
        Template { parts }
    }

    /// Whether the template has a `${...}` part (variable or escape).
    pub(crate) fn has_substitutions(&self) -> bool {
        self.parts
            .iter()
            .any(|part| !matches!(part, TemplatePart::Text(_)))
    }

    /// Wildcard tokens with the connection's values substituted, or `None`
    /// when a variable has no value.
    pub(crate) fn glob_tokens(&self, ctx: &ConnectionContext) -> Option<Vec<GlobToken>> {
        let mut tokens = Vec::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(text) => {
                    let mut literal = String::new();
                    for c in text.chars() {
                        match c {
                            '*' | '?' => {
                                if !literal.is_empty() {
                                    tokens.push(GlobToken::Literal(std::mem::take(&mut literal)));
                                }
                                tokens.push(if c == '*' {
                                    GlobToken::AnyRun
                                } else {
                                    GlobToken::AnyChar
                                });
                            }
                            _ => literal.push(c),
                        }
                    }
                    if !literal.is_empty() {
                        tokens.push(GlobToken::Literal(literal));
                    }
                }
                TemplatePart::Escaped(c) => tokens.push(GlobToken::Literal(c.to_string())),
                TemplatePart::Variable { key, default } => {
                    tokens.push(GlobToken::Literal(
                        substitute(key, default, ctx)?.into_owned(),
                    ));
                }
            }
        }
        Some(tokens)
    }

    /// The text with the connection's values substituted (wildcards are
    /// plain characters here), or `None` when a variable has no value.
    pub(crate) fn text(&self, ctx: &ConnectionContext) -> Option<String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(literal) => text.push_str(literal),
                TemplatePart::Escaped(c) => text.push(*c),
                TemplatePart::Variable { key, default } => {
                    text.push_str(&substitute(key, default, ctx)?);
                }
            }
        }
        Some(text)
    }
}

fn substitute<'c>(
    key: &ContextKey,
    default: &'c Option<String>,
    ctx: &'c ConnectionContext,
) -> Option<Cow<'c, str>> {
    let value = match key {
        ContextKey::Connection(key) => key.substitution(ctx),
        // Request keys are not substituted at compile time, and the compiled
        // form is per connection: treat them as having no value.
        ContextKey::Request(_) | ContextKey::Unknown => None,
    };
    value.or_else(|| default.as_deref().map(Cow::Borrowed))
}

/// `name, 'default'` → (`name`, `Some(default)`).
fn split_default(inner: &str) -> (&str, Option<&str>) {
    if let Some((name, default)) = inner.split_once(',') {
        let default = default.trim();
        if default.len() >= 2 && default.starts_with('\'') && default.ends_with('\'') {
            return (name.trim(), Some(&default[1..default.len() - 1]));
        }
    }
    (inner, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{CertificateInfo, ConnectedThing};

    fn context() -> ConnectionContext {
        let mut thing = ConnectedThing::new("thing-1");
        thing.type_name = Some("sensor".into());
        thing.attributes.insert("Floor".into(), "3".into());
        let mut certificate = CertificateInfo::default();
        certificate.subject.common_name = vec!["device-cn".into()];
        certificate.subject.country = vec!["US".into(), "DE".into()];
        certificate.subject.organization = vec!["Example*Corp".into()];
        ConnectionContext {
            client_id: "client-1".into(),
            source_ip: Some("::ffff:10.0.0.1".parse().unwrap()),
            domain_name: Some("iot.example.com".into()),
            thing: Some(thing),
            certificate: Some(certificate),
        }
    }

    fn substituted(template: &str, ctx: &ConnectionContext) -> Option<String> {
        Template::parse(template).text(ctx)
    }

    #[test]
    fn recognises_keys_ignoring_case() {
        assert_eq!(
            ContextKey::parse("IOT:clientID"),
            ContextKey::Connection(ConnectionKey::ClientId)
        );
        assert_eq!(
            ContextKey::parse("iot:Connection.Thing.Attributes[Floor]"),
            ContextKey::Connection(ConnectionKey::ThingAttribute("Floor".into()))
        );
        assert_eq!(
            ContextKey::parse("iot:Certificate.Subject.Country.List"),
            ContextKey::Connection(ConnectionKey::Certificate(
                CertificateField::Subject(DnField::Country),
                ValueSelector::List
            ))
        );
        assert_eq!(
            ContextKey::parse("iot:Certificate.Issuer.AlternativeName.DNSName.2"),
            ContextKey::Connection(ConnectionKey::Certificate(
                CertificateField::IssuerAlternativeName(AltNameField::DnsName),
                ValueSelector::Index(2)
            ))
        );
        assert_eq!(
            ContextKey::parse("aws:CurrentTime"),
            ContextKey::Request(RequestKey::CurrentTime)
        );
        for unknown in [
            "iot:Thing.ThingName",
            "iot:Connection.Thing.Attributes[]",
            "iot:Certificate.Subject.Nickname",
            "iot:Certificate.Subject.Country.x",
            "iot:Certificate.Subject.Country.",
        ] {
            assert_eq!(ContextKey::parse(unknown), ContextKey::Unknown, "{unknown}");
        }
    }

    #[test]
    fn substitutes_connection_values() {
        let ctx = context();
        assert_eq!(
            substituted(
                "topic/${iot:ClientId}/${iot:Connection.Thing.ThingName}",
                &ctx
            ),
            Some("topic/client-1/thing-1".into())
        );
        assert_eq!(
            substituted("${iot:Connection.Thing.ThingTypeName}", &ctx),
            Some("sensor".into())
        );
        assert_eq!(
            substituted("${iot:Connection.Thing.Attributes[Floor]}", &ctx),
            Some("3".into())
        );
        assert_eq!(
            substituted("${iot:Connection.Thing.IsAttached}", &ctx),
            Some("true".into())
        );
        assert_eq!(
            substituted("${aws:SourceIp}", &ctx),
            Some("10.0.0.1".into())
        );
        assert_eq!(
            substituted("${iot:DomainName}", &ctx),
            Some("iot.example.com".into())
        );
    }

    #[test]
    fn missing_values_leave_nothing_to_match() {
        let ctx = ConnectionContext::new("client-1");
        for template in [
            "a/${iot:Connection.Thing.ThingName}",
            "${iot:Connection.Thing.ThingTypeName}",
            "${iot:Connection.Thing.Attributes[Floor]}",
            "${iot:Certificate.Subject.CommonName}",
            "${aws:SourceIp}",
            "${aws:CurrentTime}",
            "${iot:NoSuchVariable}",
        ] {
            assert_eq!(substituted(template, &ctx), None, "{template}");
        }
        assert_eq!(
            substituted("${iot:Connection.Thing.IsAttached}", &ctx),
            Some("false".into())
        );
        let attached = context();
        assert_eq!(
            substituted("${iot:Connection.Thing.Attributes[floor]}", &attached),
            None,
            "attribute names keep their case"
        );
    }

    #[test]
    fn certificate_values_follow_the_documented_limits() {
        let ctx = context();
        assert_eq!(
            substituted("${iot:Certificate.Subject.CommonName}", &ctx),
            Some("device-cn".into())
        );
        assert_eq!(
            substituted("${iot:Certificate.Subject.Country}", &ctx),
            Some("US".into())
        );
        assert_eq!(
            substituted("${iot:Certificate.Subject.Country.1}", &ctx),
            Some("DE".into())
        );
        assert_eq!(
            substituted("${iot:Certificate.Subject.Country.2}", &ctx),
            None
        );
        assert_eq!(
            substituted("${iot:Certificate.Subject.Country.List}", &ctx),
            None,
            "multi-valued keys are not variables"
        );
        assert_eq!(
            substituted("${iot:Certificate.Subject.Organization}", &ctx),
            None,
            "values with wildcard characters are not substituted"
        );
        let mut long = context();
        if let Some(certificate) = long.certificate.as_mut() {
            certificate.subject.common_name = vec!["x".repeat(1025)];
            certificate.subject.country = (0..7).map(|i| format!("C{i}")).collect();
        }
        assert_eq!(
            substituted("${iot:Certificate.Subject.CommonName}", &long),
            None
        );
        assert_eq!(
            substituted("${iot:Certificate.Subject.Country.4}", &long),
            Some("C4".into())
        );
        assert_eq!(
            substituted("${iot:Certificate.Subject.Country.5}", &long),
            None,
            "only the first five values count"
        );
    }

    #[test]
    fn escapes_defaults_and_unclosed_braces() {
        let ctx = ConnectionContext::new("c");
        assert_eq!(
            substituted("a${*}b${?}c${$}d", &ctx),
            Some("a*b?c$d".into())
        );
        assert_eq!(
            substituted("${iot:Connection.Thing.ThingName, 'nobody'}", &ctx),
            Some("nobody".into())
        );
        assert_eq!(
            substituted("${iot:ClientId, 'nobody'}", &ctx),
            Some("c".into())
        );
        assert_eq!(substituted("cost${", &ctx), Some("cost${".into()));
        assert_eq!(substituted("$5 ${iot:ClientId}", &ctx), Some("$5 c".into()));
        assert!(Template::parse("${*}").has_substitutions());
        assert!(!Template::parse("plain*").has_substitutions());
    }

    #[test]
    fn substituted_values_are_literal_in_patterns() {
        let ctx = ConnectionContext::new("*");
        let tokens = Template::parse("topic/${iot:ClientId}/x*${?}")
            .glob_tokens(&ctx)
            .unwrap();
        assert_eq!(
            tokens,
            vec![
                GlobToken::Literal("topic/".into()),
                GlobToken::Literal("*".into()),
                GlobToken::Literal("/x".into()),
                GlobToken::AnyRun,
                GlobToken::Literal("?".into()),
            ]
        );
    }

    #[test]
    fn available_keys_lists_present_certificate_fields() {
        let ctx = context();
        let KeyValues::Many(keys) = ConnectionKey::CertificateAvailableKeys.resolve(&ctx) else {
            panic!("multi-valued");
        };
        let keys: Vec<_> = keys.iter().map(|k| k.text().into_owned()).collect();
        assert_eq!(
            keys,
            vec![
                "iot:Certificate.Subject.Country",
                "iot:Certificate.Subject.Organization",
                "iot:Certificate.Subject.CommonName",
            ]
        );
    }
}
