//! The one error type of the crate: why a policy document was rejected, and
//! where. The API answers these as AWS's `MalformedPolicyException`, so the
//! message names the element (`Statement[1].Action[0]`) the way a user reads
//! the document.

/// Why [`crate::PolicyDocument::parse`] rejected a document.
///
/// Every variant but the size and JSON ones carries a `location`: a path into
/// the document such as `Statement[1].Action[0]` or
/// `Statement[0].Condition.StringEquals.iot:ClientId[2]`. A `Statement`,
/// `Action`, `Resource` or condition value written as a single value rather
/// than an array has no `[index]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Larger than AWS IoT's policy document limit (counted in characters,
    /// whitespace excluded).
    #[error(
        "policy document has {characters} characters excluding whitespace; the limit is {limit}"
    )]
    DocumentTooLarge {
        /// Non-whitespace characters in the document.
        characters: usize,
        /// [`crate::MAX_POLICY_DOCUMENT_CHARS`].
        limit: usize,
    },
    /// Not JSON at all.
    #[error("policy document is not valid JSON (line {line}, column {column}): {message}")]
    InvalidJson {
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// A required element is absent.
    #[error("{location}: missing required element {element}")]
    MissingElement {
        /// The object that lacks it (`(document)` for the top level).
        location: String,
        /// The element's name, e.g. `Effect`.
        element: &'static str,
    },
    /// An element the policy language does not define here (element names
    /// are case-sensitive, as in IAM).
    #[error("{location}: unknown element {element:?}{hint}")]
    UnknownElement {
        /// The object that holds it.
        location: String,
        /// The element's name as written.
        element: String,
        /// Extra explanation, empty or starting with "; ".
        hint: &'static str,
    },
    /// The same key twice in one JSON object.
    #[error("{location}: {key:?} appears more than once")]
    DuplicateKey {
        /// The object that holds it.
        location: String,
        /// The repeated key.
        key: String,
    },
    /// A value of the wrong JSON type.
    #[error("{location}: expected {expected}, found {found}")]
    WrongType {
        /// The offending value.
        location: String,
        /// What the grammar wants there.
        expected: &'static str,
        /// What the document has.
        found: &'static str,
    },
    /// Two elements that exclude each other (`Action` and `NotAction`).
    #[error("{location}: {first} and {second} cannot both appear in one statement")]
    ConflictingElements {
        /// The statement.
        location: String,
        /// The first element.
        first: &'static str,
        /// The second element.
        second: &'static str,
    },
    /// An empty string, array or object where the grammar needs content.
    #[error("{location}: must not be empty")]
    Empty {
        /// The empty value.
        location: String,
    },
    /// A `Version` other than `2012-10-17`.
    #[error("{location}: unsupported policy language version {found:?}; use \"2012-10-17\"")]
    UnsupportedVersion {
        /// Always `Version`.
        location: String,
        /// The version as written.
        found: String,
    },
    /// A condition operator the policy language does not define.
    #[error("{location}: unknown condition operator {operator:?}")]
    UnknownConditionOperator {
        /// The condition block.
        location: String,
        /// The operator as written.
        operator: String,
    },
    /// A well-typed value that the grammar still rejects: an `Effect` other
    /// than Allow/Deny, an action outside AWS IoT, a non-ARN resource, a
    /// condition value the operator cannot read, a repeated `Sid`, ...
    #[error("{location}: invalid value {value:?}: {reason}")]
    InvalidValue {
        /// The offending value.
        location: String,
        /// The value as written.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
}

impl PolicyError {
    /// Where in the document the problem is, if it is in one place.
    pub fn location(&self) -> Option<&str> {
        match self {
            PolicyError::DocumentTooLarge { .. } | PolicyError::InvalidJson { .. } => None,
            PolicyError::MissingElement { location, .. }
            | PolicyError::UnknownElement { location, .. }
            | PolicyError::DuplicateKey { location, .. }
            | PolicyError::WrongType { location, .. }
            | PolicyError::ConflictingElements { location, .. }
            | PolicyError::Empty { location }
            | PolicyError::UnsupportedVersion { location, .. }
            | PolicyError::UnknownConditionOperator { location, .. }
            | PolicyError::InvalidValue { location, .. } => Some(location),
        }
    }
}
