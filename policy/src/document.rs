//! Policy documents: the grammar AWS IoT accepts, checked with an error that
//! says where the document is wrong.
//!
//! The grammar is IAM's ("IAM JSON policy elements"), as AWS IoT says its
//! policies "follow the same conventions as IAM policies":
//! - Top level: `Version` (required, `"2012-10-17"`: the version that has
//!   policy variables), `Statement` (one object or a non-empty array), and
//!   optionally `Id`.
//! - Statement: `Effect` (`Allow`/`Deny`), exactly one of `Action`/`NotAction`
//!   and one of `Resource`/`NotResource` (a string or a non-empty array of
//!   strings), optional `Condition` and `Sid` (unique in the document, as IAM
//!   requires). `Principal`/`NotPrincipal` are rejected: an AWS IoT policy
//!   applies to the certificate or identity it is attached to.
//! - Element names are case-sensitive; a JSON object must not repeat a key
//!   (a repeated condition block would otherwise be silently dropped).
//! - A resource is `*` or an ARN pattern (`arn:...`); an action is `*` or
//!   `iot:<Name>` (see `action.rs`).
//! - The whole document is at most [`MAX_POLICY_DOCUMENT_CHARS`] characters,
//!   not counting whitespace: the `policyDocument` limit of the AWS IoT
//!   `CreatePolicy`/`CreatePolicyVersion` APIs ("minimum length of 1, with a
//!   maximum length of 2048, excluding whitespace").

use std::fmt;

use crate::action::ActionPattern;
use crate::condition::{parse_condition_block, Condition};
use crate::error::PolicyError;
use crate::json::Json;
use crate::variables::Template;

/// The only policy language version accepted.
pub const POLICY_VERSION: &str = "2012-10-17";

/// AWS IoT's limit on a policy document, in characters excluding whitespace.
pub const MAX_POLICY_DOCUMENT_CHARS: usize = 2048;

/// Whether a statement grants or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `"Allow"`.
    Allow,
    /// `"Deny"`: wins over any Allow.
    Deny,
}

/// A parsed, validated AWS IoT policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    id: Option<String>,
    statements: Vec<Statement>,
}

/// One statement of a [`PolicyDocument`].
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    sid: Option<String>,
    effect: Effect,
    actions: Vec<ActionPattern>,
    not_action: bool,
    resources: Vec<(String, Template)>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

impl PolicyDocument {
    /// Parses and validates a policy document.
    ///
    /// # Errors
    /// [`PolicyError`] naming the first problem found and, where it has one,
    /// its location (`Statement[1].Action[0]`).
    pub fn parse(json: &str) -> Result<PolicyDocument, PolicyError> {
        let characters = json.chars().filter(|c| !c.is_whitespace()).count();
        if characters > MAX_POLICY_DOCUMENT_CHARS {
            return Err(PolicyError::DocumentTooLarge {
                characters,
                limit: MAX_POLICY_DOCUMENT_CHARS,
            });
        }
        let value: Json = serde_json::from_str(json).map_err(|error| {
            let message = error.to_string();
            let position = format!(" at line {} column {}", error.line(), error.column());
            PolicyError::InvalidJson {
                line: error.line(),
                column: error.column(),
                message: message
                    .strip_suffix(&position)
                    .unwrap_or(&message)
                    .to_owned(),
            }
        })?;
        parse_document(&value)
    }

    /// The optional `Id` element.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

impl Statement {
    /// The optional `Sid`.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// `Allow` or `Deny`.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The `Action` (or, if [`Statement::is_not_action`], `NotAction`)
    /// entries as written.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|pattern| pattern.text.as_str())
    }

    /// Whether the actions are a `NotAction` list.
    pub fn is_not_action(&self) -> bool {
        self.not_action
    }

    /// The `Resource` (or `NotResource`) entries as written.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.resources.iter().map(|(text, _)| text.as_str())
    }

    /// Whether the resources are a `NotResource` list.
    pub fn is_not_resource(&self) -> bool {
        self.not_resource
    }

    /// Whether the statement has a non-empty `Condition`.
    pub fn has_conditions(&self) -> bool {
        !self.conditions.is_empty()
    }

    pub(crate) fn action_patterns(&self) -> &[ActionPattern] {
        &self.actions
    }

    pub(crate) fn resource_templates(&self) -> impl Iterator<Item = &Template> {
        self.resources.iter().map(|(_, template)| template)
    }

    pub(crate) fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

/// Where in the document a value is, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonPath(String);

impl JsonPath {
    pub(crate) fn root() -> JsonPath {
        JsonPath(String::new())
    }

    pub(crate) fn member(&self, name: &str) -> JsonPath {
        if self.0.is_empty() {
            JsonPath(name.to_owned())
        } else {
            JsonPath(format!("{}.{name}", self.0))
        }
    }

    pub(crate) fn index(&self, index: usize) -> JsonPath {
        JsonPath(format!("{}[{index}]", self.0))
    }

    /// The members of an object, which must not repeat a key.
    pub(crate) fn object<'j>(
        &self,
        value: &'j Json,
        expected: &'static str,
    ) -> Result<&'j [(String, Json)], PolicyError> {
        let Json::Object(members) = value else {
            return Err(self.wrong_type(expected, value));
        };
        for (i, (key, _)) in members.iter().enumerate() {
            if members[..i].iter().any(|(earlier, _)| earlier == key) {
                return Err(PolicyError::DuplicateKey {
                    location: self.to_string(),
                    key: key.clone(),
                });
            }
        }
        Ok(members)
    }

    fn wrong_type(&self, expected: &'static str, found: &Json) -> PolicyError {
        PolicyError::WrongType {
            location: self.to_string(),
            expected,
            found: found.kind(),
        }
    }

    fn string<'j>(&self, value: &'j Json) -> Result<&'j str, PolicyError> {
        match value {
            Json::String(text) => Ok(text),
            other => Err(self.wrong_type("a string", other)),
        }
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(document)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// A value that may be written as one item or as a non-empty array of them,
/// with each item's path (`Action` or `Action[2]`).
pub(crate) fn scalar_or_list<'j>(
    value: &'j Json,
    path: &JsonPath,
    item: &'static str,
) -> Result<Vec<(JsonPath, &'j Json)>, PolicyError> {
    match value {
        Json::Array(items) if items.is_empty() => Err(PolicyError::Empty {
            location: path.to_string(),
        }),
        Json::Array(items) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| (path.index(i), item))
            .collect()),
        Json::Object(_) | Json::Null => Err(PolicyError::WrongType {
            location: path.to_string(),
            expected: item,
            found: value.kind(),
        }),
        _ => Ok(vec![(path.clone(), value)]),
    }
}

/// A non-empty string, or a non-empty array of non-empty strings.
fn strings<'j>(value: &'j Json, path: &JsonPath) -> Result<Vec<(JsonPath, &'j str)>, PolicyError> {
    let mut texts = Vec::new();
    for (item_path, item) in scalar_or_list(value, path, "a string or an array of strings")? {
        let text = item_path.string(item)?;
        if text.is_empty() {
            return Err(PolicyError::Empty {
                location: item_path.to_string(),
            });
        }
        texts.push((item_path, text));
    }
    Ok(texts)
}

fn parse_document(value: &Json) -> Result<PolicyDocument, PolicyError> {
    let root = JsonPath::root();
    let mut version = None;
    let mut id = None;
    let mut statement = None;
    for (key, value) in root.object(value, "a JSON object")? {
        match key.as_str() {
            "Version" => version = Some(value),
            "Id" => id = Some(root.member("Id").string(value)?.to_owned()),
            "Statement" => statement = Some(value),
            _ => {
                return Err(unknown_element(
                    &root,
                    key,
                    &["Version", "Id", "Statement"],
                    "",
                ))
            }
        }
    }
    let version_path = root.member("Version");
    let Some(version) = version else {
        return Err(PolicyError::MissingElement {
            location: root.to_string(),
            element: "Version",
        });
    };
    let version = version_path.string(version)?;
    if version != POLICY_VERSION {
        return Err(PolicyError::UnsupportedVersion {
            location: version_path.to_string(),
            found: version.to_owned(),
        });
    }
    let Some(statement) = statement else {
        return Err(PolicyError::MissingElement {
            location: root.to_string(),
            element: "Statement",
        });
    };
    let statement_path = root.member("Statement");
    let items = match statement {
        Json::Object(_) => vec![(statement_path.clone(), statement)],
        Json::Array(items) if items.is_empty() => {
            return Err(PolicyError::Empty {
                location: statement_path.to_string(),
            })
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (statement_path.index(i), item))
            .collect(),
        other => return Err(statement_path.wrong_type("an object or an array of objects", other)),
    };
    let mut statements: Vec<Statement> = Vec::with_capacity(items.len());
    let mut sid_paths: Vec<JsonPath> = Vec::new();
    for (path, item) in items {
        let statement = parse_statement(item, &path)?;
        if let Some(sid) = statement.sid() {
            let earlier = statements
                .iter()
                .zip(&sid_paths)
                .find(|(other, _)| other.sid() == Some(sid));
            if let Some((_, earlier_path)) = earlier {
                return Err(PolicyError::InvalidValue {
                    location: path.member("Sid").to_string(),
                    value: sid.to_owned(),
                    reason: format!("{earlier_path} already uses this Sid; Sids must be unique"),
                });
            }
        }
        sid_paths.push(path);
        statements.push(statement);
    }
    Ok(PolicyDocument { id, statements })
}

fn unknown_element(path: &JsonPath, key: &str, known: &[&str], hint: &'static str) -> PolicyError {
    let hint = if !hint.is_empty() {
        hint
    } else if known.iter().any(|k| k.eq_ignore_ascii_case(key)) {
        "; element names are case-sensitive"
    } else {
        ""
    };
    PolicyError::UnknownElement {
        location: path.to_string(),
        element: key.to_owned(),
        hint,
    }
}

const STATEMENT_ELEMENTS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

fn parse_statement(value: &Json, path: &JsonPath) -> Result<Statement, PolicyError> {
    let mut sid = None;
    let mut effect = None;
    let mut actions: Option<(&'static str, &Json)> = None;
    let mut resources: Option<(&'static str, &Json)> = None;
    let mut condition = None;
    for (key, value) in path.object(value, "a statement object")? {
        match key.as_str() {
            "Sid" => sid = Some(path.member("Sid").string(value)?.to_owned()),
            "Effect" => effect = Some(value),
            "Action" | "NotAction" => {
                let name = if key == "Action" {
                    "Action"
                } else {
                    "NotAction"
                };
                if let Some((first, _)) = actions {
                    return Err(PolicyError::ConflictingElements {
                        location: path.to_string(),
                        first,
                        second: name,
                    });
                }
                actions = Some((name, value));
            }
            "Resource" | "NotResource" => {
                let name = if key == "Resource" {
                    "Resource"
                } else {
                    "NotResource"
                };
                if let Some((first, _)) = resources {
                    return Err(PolicyError::ConflictingElements {
                        location: path.to_string(),
                        first,
                        second: name,
                    });
                }
                resources = Some((name, value));
            }
            "Condition" => condition = Some(value),
            "Principal" | "NotPrincipal" => {
                return Err(unknown_element(
                    path,
                    key,
                    STATEMENT_ELEMENTS,
                    "; an AWS IoT policy applies to the principal it is attached to",
                ))
            }
            _ => return Err(unknown_element(path, key, STATEMENT_ELEMENTS, "")),
        }
    }

    let Some(effect) = effect else {
        return Err(PolicyError::MissingElement {
            location: path.to_string(),
            element: "Effect",
        });
    };
    let effect_path = path.member("Effect");
    let effect = match effect_path.string(effect)? {
        "Allow" => Effect::Allow,
        "Deny" => Effect::Deny,
        other => {
            return Err(PolicyError::InvalidValue {
                location: effect_path.to_string(),
                value: other.to_owned(),
                reason: "Effect is \"Allow\" or \"Deny\"".to_owned(),
            })
        }
    };

    let Some((action_element, action_value)) = actions else {
        return Err(PolicyError::MissingElement {
            location: path.to_string(),
            element: "Action or NotAction",
        });
    };
    let mut action_patterns = Vec::new();
    for (item_path, text) in strings(action_value, &path.member(action_element))? {
        let pattern = ActionPattern::parse(text).map_err(|reason| PolicyError::InvalidValue {
            location: item_path.to_string(),
            value: text.to_owned(),
            reason,
        })?;
        action_patterns.push(pattern);
    }

    let Some((resource_element, resource_value)) = resources else {
        return Err(PolicyError::MissingElement {
            location: path.to_string(),
            element: "Resource or NotResource",
        });
    };
    let mut resource_templates = Vec::new();
    for (item_path, text) in strings(resource_value, &path.member(resource_element))? {
        if text != "*" && !text.starts_with("arn:") {
            return Err(PolicyError::InvalidValue {
                location: item_path.to_string(),
                value: text.to_owned(),
                reason: "a resource is \"*\" or an ARN such as \
                         arn:aws:iot:us-east-1:123456789012:topic/my/topic"
                    .to_owned(),
            });
        }
        resource_templates.push((text.to_owned(), Template::parse(text)));
    }

    let conditions = match condition {
        Some(block) => parse_condition_block(block, &path.member("Condition"))?,
        None => Vec::new(),
    };

    Ok(Statement {
        sid,
        effect,
        actions: action_patterns,
        not_action: action_element == "NotAction",
        resources: resource_templates,
        not_resource: resource_element == "NotResource",
        conditions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_the_document() {
        let root = JsonPath::root();
        assert_eq!(root.to_string(), "(document)");
        let path = root.member("Statement").index(1).member("Action").index(0);
        assert_eq!(path.to_string(), "Statement[1].Action[0]");
    }

    #[test]
    fn accepts_a_minimal_document() {
        let doc = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#,
        )
        .unwrap();
        assert_eq!(doc.statements().len(), 1);
        let statement = &doc.statements()[0];
        assert_eq!(statement.effect(), Effect::Allow);
        assert_eq!(statement.actions().collect::<Vec<_>>(), ["iot:*"]);
        assert_eq!(statement.resources().collect::<Vec<_>>(), ["*"]);
        assert!(!statement.is_not_action() && !statement.is_not_resource());
        assert!(!statement.has_conditions());
        assert_eq!(statement.sid(), None);
        assert_eq!(doc.id(), None);
    }
}
