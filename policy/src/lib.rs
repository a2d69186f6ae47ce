//! `fleetcore-policy`: the AWS IoT Core policy language — parse and validate
//! policy documents, compile them once per connection, and evaluate every
//! request against the compiled form.
//!
//! Owns: the policy grammar and its errors ([`PolicyDocument::parse`],
//! [`PolicyError`]), the data-plane action names ([`Action`]), policy variables
//! and condition keys ([`ConnectionContext`], [`RequestContext`]), condition
//! operators, IAM-style wildcard matching ([`Glob`]), and the decision
//! ([`CompiledPolicies::evaluate`] → [`Decision`]). Also the resource ARN
//! builders ([`topic_arn`] and friends) so callers and policies agree on names.
//!
//! Uses: serde, serde_json, thiserror. Nothing else.
//! Must not depend on: tokio, the broker, raft, storage, or any I/O. Must not
//! read a clock or a random number: the request time arrives in
//! [`RequestContext`], so the same inputs always give the same decision.
//!
//! Life of a policy:
//! 1. [`PolicyDocument::parse`] checks the JSON against the grammar AWS IoT
//!    accepts and reports what is wrong and where (`Statement[1].Action[0]`),
//!    which is what the API answers as `MalformedPolicyException`.
//! 2. When a client connects, [`CompiledPolicies::compile`] substitutes every
//!    connection-level policy variable (`${iot:ClientId}`,
//!    `${iot:Connection.Thing.ThingName}`, certificate fields, ...), decides
//!    every condition that only depends on the connection, drops statements
//!    that can never apply, pre-builds the wildcard matchers and indexes the
//!    statements by [`Action`].
//! 3. Every CONNECT/PUBLISH/SUBSCRIBE/delivery then calls
//!    [`CompiledPolicies::evaluate`]: no JSON, no variable lookups, only the
//!    statements indexed under that action, explicit Deny first.
//!
//! ```
//! use fleetcore_policy::{
//!     topic_arn, Action, CompiledPolicies, ConnectedThing, ConnectionContext, Decision,
//!     PolicyDocument, RequestContext,
//! };
//!
//! let policy = PolicyDocument::parse(r#"{
//!     "Version": "2012-10-17",
//!     "Statement": [
//!         {"Effect": "Allow", "Action": "iot:Publish",
//!          "Resource": "arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}/*"},
//!         {"Effect": "Deny", "Action": "iot:Publish",
//!          "Resource": "arn:aws:iot:us-east-1:123456789012:topic/*/admin"}
//!     ]
//! }"#)?;
//! // On CONNECT: the thing "lamp-1" is attached to the client's certificate.
//! let connection = ConnectionContext {
//!     thing: Some(ConnectedThing::new("lamp-1")),
//!     ..ConnectionContext::new("lamp-1")
//! };
//! let compiled = CompiledPolicies::compile(&[policy], &connection);
//!
//! // On every PUBLISH:
//! let request = RequestContext::at(1_700_000_000);
//! let topic = |name| topic_arn("us-east-1", "123456789012", name);
//! assert_eq!(compiled.evaluate(Action::Publish, &topic("lamp-1/state"), &request), Decision::Allow);
//! assert_eq!(compiled.evaluate(Action::Publish, &topic("lamp-1/admin"), &request), Decision::ExplicitDeny);
//! assert_eq!(compiled.evaluate(Action::Publish, &topic("lamp-2/state"), &request), Decision::ImplicitDeny);
//! # Ok::<(), fleetcore_policy::PolicyError>(())
//! ```
//!
//! The semantics follow the AWS IoT Core developer guide ("AWS IoT Core
//! policies", "policy actions", "action resources", "policy variables",
//! "Publish/Subscribe policy examples") and, where it is silent, the IAM user
//! guide ("Condition operators", "Variables and tags", "Creating a condition
//! with multiple keys or values", "Resource"). Each module cites what it
//! reproduces.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod action;
mod arn;
mod condition;
mod context;
mod document;
mod error;
mod evaluate;
mod glob;
mod json;
mod scalar;
mod variables;

pub use action::Action;
pub use arn::{client_arn, thing_arn, thing_shadow_arn, topic_arn, topicfilter_arn};
pub use context::{
    AlternativeNames, CertificateInfo, ConnectedThing, ConnectionContext, DistinguishedName,
    RequestContext,
};
pub use document::{Effect, PolicyDocument, Statement, MAX_POLICY_DOCUMENT_CHARS, POLICY_VERSION};
pub use error::PolicyError;
pub use evaluate::{CompiledPolicies, Decision};
pub use glob::{wildcard_match, Glob};
