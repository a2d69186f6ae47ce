//! The `Condition` element: operators, their values, and how a condition is
//! decided — as the IAM user guide documents it ("Condition", "Condition
//! operators", "Creating a condition with multiple keys or values"):
//!
//! - Several operators, and several keys under one operator, are ANDed;
//!   several values for one key are ORed. For a negated operator
//!   (`StringNotEquals`, `NotIpAddress`, `ArnNotLike`, ...) the key must match
//!   *none* of the values.
//! - A key absent from the request context makes a positive operator false
//!   and a negated one true; `...IfExists` makes it true either way; `Null`
//!   tests presence (`"true"`: absent).
//! - `ForAllValues:` holds when every request value matches some policy value
//!   — and when the key is absent or empty. `ForAnyValue:` holds when some
//!   request value matches; never for an absent or empty key.
//! - String and ARN operators, and `Bool`, accept policy variables; numeric,
//!   date, IP and `Null` values must be literal (IAM: "You can't use a policy
//!   variable with ...").
//! - `StringLike`/`StringNotLike` use `*`/`?` over the whole string;
//!   `ArnEquals`/`ArnLike` (identical) match each of the six colon-separated
//!   ARN components separately.
//! - Keys are case-insensitive; operator names are read case-insensitively.
//!
//! Conditions on connection-level keys are decided when the policies are
//! compiled for a connection; only the per-request ones reach evaluation.

use crate::context::{ConnectionContext, RequestContext};
use crate::document::{scalar_or_list, JsonPath};
use crate::error::PolicyError;
use crate::glob::{Glob, GlobToken};
use crate::json::Json;
use crate::scalar::{self, Cidr};
use crate::variables::{ContextKey, KeyValue, KeyValues, RequestKey, Template};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    /// No `ForAllValues:`/`ForAnyValue:` prefix.
    Single,
    ForAllValues,
    ForAnyValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

impl Relation {
    /// `request <relation> policy`, e.g. `NumericLessThan` holds when the
    /// request's value is less than the policy's.
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Relation::Equals => request == policy,
            Relation::LessThan => request < policy,
            Relation::LessThanEquals => request <= policy,
            Relation::GreaterThan => request > policy,
            Relation::GreaterThanEquals => request >= policy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Relation),
    Date(Relation),
    Bool,
    IpAddress,
    Arn,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Operator {
    comparison: Comparison,
    /// The `Not` form: holds when the positive form matches none of the values.
    negated: bool,
    if_exists: bool,
    set: SetQualifier,
}

impl Operator {
    fn parse(name: &str) -> Option<Operator> {
        let lower = name.to_ascii_lowercase();
        let (set, rest) = if let Some(rest) = lower.strip_prefix("forallvalues:") {
            (SetQualifier::ForAllValues, rest)
        } else if let Some(rest) = lower.strip_prefix("foranyvalue:") {
            (SetQualifier::ForAnyValue, rest)
        } else {
            (SetQualifier::Single, lower.as_str())
        };
        let (if_exists, base) = match rest.strip_suffix("ifexists") {
            Some(base) => (true, base),
            None => (false, rest),
        };
        use Comparison::*;
        let (comparison, negated) = match base {
            "stringequals" => (StringEquals, false),
            "stringnotequals" => (StringEquals, true),
            "stringequalsignorecase" => (StringEqualsIgnoreCase, false),
            "stringnotequalsignorecase" => (StringEqualsIgnoreCase, true),
            "stringlike" => (StringLike, false),
            "stringnotlike" => (StringLike, true),
            "numericequals" => (Numeric(Relation::Equals), false),
            "numericnotequals" => (Numeric(Relation::Equals), true),
            "numericlessthan" => (Numeric(Relation::LessThan), false),
            "numericlessthanequals" => (Numeric(Relation::LessThanEquals), false),
            "numericgreaterthan" => (Numeric(Relation::GreaterThan), false),
            "numericgreaterthanequals" => (Numeric(Relation::GreaterThanEquals), false),
            "dateequals" => (Date(Relation::Equals), false),
            "datenotequals" => (Date(Relation::Equals), true),
            "datelessthan" => (Date(Relation::LessThan), false),
            "datelessthanequals" => (Date(Relation::LessThanEquals), false),
            "dategreaterthan" => (Date(Relation::GreaterThan), false),
            "dategreaterthanequals" => (Date(Relation::GreaterThanEquals), false),
            "bool" => (Bool, false),
            "ipaddress" => (IpAddress, false),
            "notipaddress" => (IpAddress, true),
            "arnequals" | "arnlike" => (Arn, false),
            "arnnotequals" | "arnnotlike" => (Arn, true),
            "null" => (Null, false),
            _ => return None,
        };
        // IAM: IfExists goes on "any condition operator except the Null
        // condition", and Null tests one key's presence, not a set.
        if comparison == Null && (if_exists || set != SetQualifier::Single) {
            return None;
        }
        Some(Operator {
            comparison,
            negated,
            if_exists,
            set,
        })
    }
}

/// The values of one key under one operator, as written.
#[derive(Debug, Clone, PartialEq)]
enum PolicyValues {
    /// String, ARN and Bool values: may hold variables.
    Templates(Vec<Template>),
    Numbers(Vec<f64>),
    /// Milliseconds since the epoch.
    Dates(Vec<i64>),
    Cidrs(Vec<Cidr>),
    /// `true`: the key must be absent.
    Null(Vec<bool>),
}

/// One `"operator": {"key": values}` test of a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    operator: Operator,
    key: ContextKey,
    values: PolicyValues,
}

/// Parses a statement's `Condition` element.
pub(crate) fn parse_condition_block(
    block: &Json,
    path: &JsonPath,
) -> Result<Vec<Condition>, PolicyError> {
    let mut conditions = Vec::new();
    for (operator_name, keys) in path.object(block, "an object of condition operators")? {
        let operator_path = path.member(operator_name);
        let operator = Operator::parse(operator_name).ok_or_else(|| {
            PolicyError::UnknownConditionOperator {
                location: path.to_string(),
                operator: operator_name.clone(),
            }
        })?;
        let members = operator_path.object(keys, "an object of condition keys")?;
        if members.is_empty() {
            return Err(PolicyError::Empty {
                location: operator_path.to_string(),
            });
        }
        for (key_name, values) in members {
            let key_path = operator_path.member(key_name);
            let mut parsed = Vec::new();
            for (value_path, value) in scalar_or_list(values, &key_path, "a condition value")? {
                let text = match value {
                    Json::String(text) | Json::Number(text) => text.clone(),
                    Json::Bool(flag) => flag.to_string(),
                    other => {
                        return Err(PolicyError::WrongType {
                            location: value_path.to_string(),
                            expected: "a string, number or boolean",
                            found: other.kind(),
                        })
                    }
                };
                parsed.push((value_path, text));
            }
            conditions.push(Condition {
                operator,
                key: ContextKey::parse(key_name),
                values: parse_values(operator.comparison, parsed)?,
            });
        }
    }
    Ok(conditions)
}

fn parse_values(
    comparison: Comparison,
    values: Vec<(JsonPath, String)>,
) -> Result<PolicyValues, PolicyError> {
    let invalid = |path: &JsonPath, text: &str, reason: &str| PolicyError::InvalidValue {
        location: path.to_string(),
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    Ok(match comparison {
        Comparison::StringEquals
        | Comparison::StringEqualsIgnoreCase
        | Comparison::StringLike
        | Comparison::Arn => PolicyValues::Templates(
            values
                .iter()
                .map(|(_, text)| Template::parse(text))
                .collect(),
        ),
        Comparison::Bool => {
            let mut templates = Vec::new();
            for (path, text) in &values {
                let template = Template::parse(text);
                if !template.has_substitutions() && parse_bool(text).is_none() {
                    return Err(invalid(path, text, "Bool takes \"true\" or \"false\""));
                }
                templates.push(template);
            }
            PolicyValues::Templates(templates)
        }
        Comparison::Numeric(_) => PolicyValues::Numbers(
            values
                .iter()
                .map(|(path, text)| {
                    scalar::parse_number(text).ok_or_else(|| {
                        invalid(path, text, "not an integer or decimal number (numeric conditions take no policy variables)")
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Comparison::Date(_) => PolicyValues::Dates(
            values
                .iter()
                .map(|(path, text)| {
                    scalar::parse_date_millis(text).ok_or_else(|| {
                        invalid(path, text, "not an ISO 8601 date (e.g. 2024-01-31T12:00:00Z) or epoch seconds")
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Comparison::IpAddress => PolicyValues::Cidrs(
            values
                .iter()
                .map(|(path, text)| {
                    Cidr::parse(text).ok_or_else(|| {
                        invalid(path, text, "not an IPv4 or IPv6 address or CIDR block")
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Comparison::Null => PolicyValues::Null(
            values
                .iter()
                .map(|(path, text)| {
                    parse_bool(text)
                        .ok_or_else(|| invalid(path, text, "Null takes \"true\" or \"false\""))
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Policy values ready to compare: variables substituted, patterns built.
/// A value whose variable has no value is dropped: it can equal nothing, so
/// it never makes a positive match and never blocks a negated one.
#[derive(Debug, Clone, PartialEq)]
enum CompiledValues {
    Exact(Vec<String>),
    /// Lowercased.
    IgnoreCase(Vec<String>),
    Like(Vec<Glob>),
    Arn(Vec<ArnPattern>),
    Bool(Vec<bool>),
    Numbers(Vec<f64>),
    Dates(Vec<i64>),
    Cidrs(Vec<Cidr>),
    Null(Vec<bool>),
}

impl CompiledValues {
    /// Whether the positive form of the operator holds between one request
    /// value and at least one policy value.
    fn any_matches(&self, comparison: Comparison, value: &KeyValue<'_>) -> bool {
        match self {
            CompiledValues::Exact(policy) => {
                let text = value.text();
                policy.iter().any(|p| *p == *text)
            }
            CompiledValues::IgnoreCase(policy) => {
                let text = value.text().to_lowercase();
                policy.contains(&text)
            }
            CompiledValues::Like(policy) => {
                let text = value.text();
                policy.iter().any(|glob| glob.matches(&text))
            }
            CompiledValues::Arn(policy) => {
                let text = value.text();
                policy.iter().any(|pattern| pattern.matches(&text))
            }
            CompiledValues::Bool(policy) => match parse_bool(&value.text()) {
                Some(flag) => policy.contains(&flag),
                None => false,
            },
            CompiledValues::Numbers(policy) => {
                let (Comparison::Numeric(relation), Some(number)) = (comparison, value.number())
                else {
                    return false;
                };
                policy.iter().any(|p| relation.holds(number, *p))
            }
            CompiledValues::Dates(policy) => {
                let (Comparison::Date(relation), Some(millis)) = (comparison, value.date_millis())
                else {
                    return false;
                };
                policy.iter().any(|p| relation.holds(millis, *p))
            }
            CompiledValues::Cidrs(policy) => match value.text().parse() {
                Ok(address) => policy.iter().any(|cidr| cidr.contains(address)),
                Err(_) => false,
            },
            // Presence is decided before any value is looked at.
            CompiledValues::Null(_) => false,
        }
    }
}

/// An `ArnEquals`/`ArnLike` value: one pattern per ARN component, the last
/// one taking the rest of the ARN (resource names may contain `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ArnPattern {
    /// `*` alone matches any value.
    Anything,
    Components(Vec<Glob>),
}

const ARN_COMPONENTS: usize = 6;

impl ArnPattern {
    /// `None` for a value with fewer than six components: it cannot match
    /// an ARN component by component.
    fn new(tokens: Vec<GlobToken>) -> Option<ArnPattern> {
        if matches!(tokens.as_slice(), [GlobToken::AnyRun]) {
            return Some(ArnPattern::Anything);
        }
        let mut components: Vec<Vec<GlobToken>> = vec![Vec::new()];
        for token in tokens {
            let GlobToken::Literal(text) = token else {
                components.last_mut()?.push(token);
                continue;
            };
            let mut rest = text.as_str();
            while components.len() < ARN_COMPONENTS {
                let Some((before, after)) = rest.split_once(':') else {
                    break;
                };
                components
                    .last_mut()?
                    .push(GlobToken::Literal(before.to_owned()));
                components.push(Vec::new());
                rest = after;
            }
            components
                .last_mut()?
                .push(GlobToken::Literal(rest.to_owned()));
        }
        if components.len() < ARN_COMPONENTS {
            return None;
        }
        Some(ArnPattern::Components(
            components.into_iter().map(Glob::from_tokens).collect(),
        ))
    }

    fn matches(&self, arn: &str) -> bool {
        match self {
            ArnPattern::Anything => true,
            ArnPattern::Components(patterns) => {
                let components: Vec<&str> = arn.splitn(ARN_COMPONENTS, ':').collect();
                components.len() == ARN_COMPONENTS
                    && patterns
                        .iter()
                        .zip(&components)
                        .all(|(pattern, component)| pattern.matches(component))
            }
        }
    }
}

/// A condition left for request time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuntimeCondition {
    operator: Operator,
    key: RequestKey,
    values: CompiledValues,
}

impl RuntimeCondition {
    pub(crate) fn holds(&self, request: &RequestContext<'_>) -> bool {
        decide(&self.operator, &self.values, &self.key.resolve(request))
    }
}

/// A condition after compiling for a connection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CompiledCondition {
    /// It only depends on the connection, and this is its outcome.
    Decided(bool),
    Runtime(RuntimeCondition),
}

impl Condition {
    pub(crate) fn compile(&self, ctx: &ConnectionContext) -> CompiledCondition {
        let values = self.compile_values(ctx);
        match &self.key {
            ContextKey::Connection(key) => {
                CompiledCondition::Decided(decide(&self.operator, &values, &key.resolve(ctx)))
            }
            ContextKey::Unknown => {
                CompiledCondition::Decided(decide(&self.operator, &values, &KeyValues::Absent))
            }
            ContextKey::Request(key) => CompiledCondition::Runtime(RuntimeCondition {
                operator: self.operator,
                key: *key,
                values,
            }),
        }
    }

    fn compile_values(&self, ctx: &ConnectionContext) -> CompiledValues {
        match (&self.values, self.operator.comparison) {
            (PolicyValues::Templates(templates), comparison) => {
                let texts = || templates.iter().filter_map(|t| t.text(ctx));
                match comparison {
                    Comparison::StringEqualsIgnoreCase => {
                        CompiledValues::IgnoreCase(texts().map(|t| t.to_lowercase()).collect())
                    }
                    Comparison::StringLike => CompiledValues::Like(
                        templates
                            .iter()
                            .filter_map(|t| t.glob_tokens(ctx))
                            .map(Glob::from_tokens)
                            .collect(),
                    ),
                    Comparison::Arn => CompiledValues::Arn(
                        templates
                            .iter()
                            .filter_map(|t| t.glob_tokens(ctx))
                            .filter_map(ArnPattern::new)
                            .collect(),
                    ),
                    Comparison::Bool => {
                        CompiledValues::Bool(texts().filter_map(|t| parse_bool(&t)).collect())
                    }
                    _ => CompiledValues::Exact(texts().collect()),
                }
            }
            (PolicyValues::Numbers(numbers), _) => CompiledValues::Numbers(numbers.clone()),
            (PolicyValues::Dates(dates), _) => CompiledValues::Dates(dates.clone()),
            (PolicyValues::Cidrs(cidrs), _) => CompiledValues::Cidrs(cidrs.clone()),
            (PolicyValues::Null(expect), _) => CompiledValues::Null(expect.clone()),
        }
    }
}

/// Decides one condition given the key's values in the request context.
fn decide(operator: &Operator, values: &CompiledValues, key: &KeyValues<'_>) -> bool {
    let request_values: &[KeyValue<'_>] = match key {
        KeyValues::Absent => &[],
        KeyValues::One(value) => std::slice::from_ref(value),
        KeyValues::Many(values) => values,
    };
    if let CompiledValues::Null(expect_absent) = values {
        let absent = request_values.is_empty();
        return expect_absent.contains(&absent);
    }
    if request_values.is_empty() {
        return match operator.set {
            SetQualifier::Single => operator.if_exists || operator.negated,
            SetQualifier::ForAnyValue => operator.if_exists,
            SetQualifier::ForAllValues => true,
        };
    }
    let satisfied =
        |value: &KeyValue<'_>| values.any_matches(operator.comparison, value) != operator.negated;
    match operator.set {
        // A negated operator on a multi-valued key without a qualifier holds
        // only if no value matches: the exact negation of the positive form.
        SetQualifier::Single if operator.negated => request_values.iter().all(satisfied),
        SetQualifier::Single | SetQualifier::ForAnyValue => request_values.iter().any(satisfied),
        SetQualifier::ForAllValues => request_values.iter().all(satisfied),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::context::ConnectedThing;

    fn condition(operator: &str, key: &str, values: &[&str]) -> Condition {
        let json = serde_json::json!({ operator: { key: values } }).to_string();
        let block: Json = serde_json::from_str(&json).unwrap();
        let mut parsed =
            parse_condition_block(&block, &JsonPath::root().member("Condition")).unwrap();
        assert_eq!(parsed.len(), 1);
        parsed.remove(0)
    }

    fn holds(operator: &str, values: &[&str], request: &[&str]) -> bool {
        let condition = condition(operator, "aws:SomeKey", values);
        let compiled = condition.compile_values(&ConnectionContext::new("c"));
        let key = match request {
            [] => KeyValues::Absent,
            [one] => KeyValues::One(KeyValue::Text(Cow::Borrowed(one))),
            many => KeyValues::Many(
                many.iter()
                    .map(|v| KeyValue::Text(Cow::Borrowed(*v)))
                    .collect(),
            ),
        };
        decide(&condition.operator, &compiled, &key)
    }

    #[test]
    fn string_operators() {
        assert!(holds("StringEquals", &["a", "b"], &["b"]));
        assert!(!holds("StringEquals", &["a"], &["A"]));
        assert!(holds("StringEqualsIgnoreCase", &["ÄBC"], &["äbc"]));
        assert!(holds("StringEqualsIgnoreCase", &["ABC"], &["abc"]));
        assert!(!holds("StringNotEqualsIgnoreCase", &["ABC"], &["abc"]));
        assert!(holds("StringNotEquals", &["a", "b"], &["c"]));
        assert!(
            !holds("StringNotEquals", &["a", "b"], &["b"]),
            "negated: none may match"
        );
        assert!(holds("StringLike", &["home/*"], &["home/x/y"]));
        assert!(!holds("StringLike", &["home/*"], &["Home/x"]));
        assert!(holds("StringNotLike", &["home/*"], &["work/x"]));
        assert!(
            !holds("StringEquals", &["a*"], &["ab"]),
            "no wildcards in Equals"
        );
        assert!(holds("StringEquals", &["a*"], &["a*"]));
    }

    #[test]
    fn absent_keys() {
        assert!(!holds("StringEquals", &["a"], &[]));
        assert!(holds("StringNotEquals", &["a"], &[]));
        assert!(holds("StringEqualsIfExists", &["a"], &[]));
        assert!(!holds("StringEqualsIfExists", &["a"], &["b"]));
        assert!(holds("StringNotLikeIfExists", &["a"], &[]));
        assert!(holds("Null", &["true"], &[]));
        assert!(!holds("Null", &["true"], &["x"]));
        assert!(holds("Null", &["false"], &["x"]));
        assert!(!holds("NumericLessThan", &["5"], &[]));
        assert!(holds("NumericLessThanIfExists", &["5"], &[]));
    }

    #[test]
    fn set_qualifiers() {
        let allowed = ["PersistentConnect", "LastWill"];
        assert!(holds("ForAllValues:StringEquals", &allowed, &["LastWill"]));
        assert!(!holds(
            "ForAllValues:StringEquals",
            &allowed,
            &["LastWill", "Other"]
        ));
        assert!(
            holds("ForAllValues:StringEquals", &allowed, &[]),
            "vacuously true"
        );
        assert!(holds(
            "ForAnyValue:StringEquals",
            &allowed,
            &["Other", "LastWill"]
        ));
        assert!(!holds("ForAnyValue:StringEquals", &allowed, &["Other"]));
        assert!(!holds("ForAnyValue:StringEquals", &allowed, &[]));
        assert!(holds("ForAnyValue:StringEqualsIfExists", &allowed, &[]));
        assert!(holds("ForAllValues:StringNotEquals", &allowed, &["A", "B"]));
        assert!(!holds(
            "ForAllValues:StringNotEquals",
            &allowed,
            &["A", "LastWill"]
        ));
        assert!(holds(
            "ForAnyValue:StringNotEquals",
            &allowed,
            &["A", "LastWill"]
        ));
        // Without a qualifier a multi-valued key matches if any value does.
        assert!(holds("StringEquals", &allowed, &["A", "LastWill"]));
        assert!(!holds("StringNotEquals", &allowed, &["A", "LastWill"]));
    }

    #[test]
    fn numeric_and_date_operators() {
        assert!(holds("NumericLessThanEquals", &["10"], &["10"]));
        assert!(!holds("NumericLessThan", &["10"], &["10"]));
        assert!(holds("NumericGreaterThan", &["1.5"], &["2"]));
        assert!(holds("NumericNotEquals", &["1", "2"], &["3"]));
        assert!(
            !holds("NumericEquals", &["1"], &["one"]),
            "unreadable request value"
        );
        assert!(holds(
            "DateGreaterThan",
            &["2020-01-01T00:00:01Z"],
            &["2021-06-01"]
        ));
        assert!(holds(
            "DateLessThan",
            &["2020-01-01T00:00:00Z"],
            &["1577836799"]
        ));
        assert!(holds("DateEquals", &["2020-01-01"], &["1577836800"]));
        assert!(holds("DateNotEquals", &["2020-01-01"], &["1577836801"]));
    }

    #[test]
    fn bool_ip_and_arn_operators() {
        assert!(holds("Bool", &["true"], &["true"]));
        assert!(holds("Bool", &["TRUE"], &["true"]));
        assert!(!holds("Bool", &["true"], &["false"]));
        assert!(!holds("Bool", &["true"], &["yes"]));
        assert!(holds(
            "IpAddress",
            &["203.0.113.0/24", "2001:DB8::/32"],
            &["2001:db8::5"]
        ));
        assert!(!holds("IpAddress", &["203.0.113.0/24"], &["203.0.114.1"]));
        assert!(holds("NotIpAddress", &["203.0.113.0/24"], &["203.0.114.1"]));
        assert!(!holds("IpAddress", &["203.0.113.0/24"], &["not-an-ip"]));
        let pattern = ["arn:aws:someservice:*:111122223333:finance/*"];
        let foreign = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt";
        // The IAM guide's example: StringLike matches across components, ArnLike does not.
        assert!(holds("StringLike", &pattern, &[foreign]));
        assert!(!holds("ArnLike", &pattern, &[foreign]));
        assert!(holds(
            "ArnLike",
            &pattern,
            &["arn:aws:someservice:us-east-2:111122223333:finance/a:b"]
        ));
        assert!(holds(
            "ArnEquals",
            &pattern,
            &["arn:aws:someservice:eu-west-1:111122223333:finance/x"]
        ));
        assert!(holds("ArnNotLike", &pattern, &[foreign]));
        assert!(!holds(
            "ArnLike",
            &["arn:aws:*"],
            &["arn:aws:iot:r:a:topic/x"]
        ));
        assert!(holds("ArnLike", &["*"], &["arn:aws:iot:r:a:topic/x"]));
    }

    #[test]
    fn operator_names() {
        for name in [
            "StringEquals",
            "stringequals",
            "ForAllValues:StringLikeIfExists",
            "ForAnyValue:ArnNotLike",
            "DateGreaterThanEqualsIfExists",
            "NotIpAddressIfExists",
            "Null",
            "BoolIfExists",
        ] {
            assert!(Operator::parse(name).is_some(), "{name}");
        }
        for name in [
            "StringEqual",
            "NullIfExists",
            "ForAllValues:Null",
            "ForSomeValues:StringEquals",
            "BinaryEquals",
            "StringEqualsIfExistsIfExists",
            "",
        ] {
            assert!(Operator::parse(name).is_none(), "{name}");
        }
    }

    #[test]
    fn connection_keys_are_decided_at_compile_time() {
        let mut ctx = ConnectionContext::new("client-1");
        let is_attached = condition("Bool", "iot:Connection.Thing.IsAttached", &["true"]);
        assert_eq!(is_attached.compile(&ctx), CompiledCondition::Decided(false));
        ctx.thing = Some(ConnectedThing::new("client-1"));
        assert_eq!(is_attached.compile(&ctx), CompiledCondition::Decided(true));
        let same_thing = condition(
            "StringEquals",
            "iot:ClientId",
            &["${iot:Connection.Thing.ThingName}"],
        );
        assert_eq!(same_thing.compile(&ctx), CompiledCondition::Decided(true));
        let unknown = condition("StringEquals", "aws:PrincipalTag/team", &["x"]);
        assert_eq!(unknown.compile(&ctx), CompiledCondition::Decided(false));
        let time = condition("DateLessThan", "aws:CurrentTime", &["2030-01-01"]);
        assert!(matches!(time.compile(&ctx), CompiledCondition::Runtime(_)));
    }

    #[test]
    fn unresolved_variables_equal_nothing() {
        let ctx = ConnectionContext::new("client-1");
        let equals = condition(
            "StringEquals",
            "iot:ClientId",
            &["${iot:Connection.Thing.ThingName}"],
        );
        assert_eq!(equals.compile(&ctx), CompiledCondition::Decided(false));
        let not_equals = condition(
            "StringNotEquals",
            "iot:ClientId",
            &["${iot:Connection.Thing.ThingName}"],
        );
        assert_eq!(not_equals.compile(&ctx), CompiledCondition::Decided(true));
    }
}
