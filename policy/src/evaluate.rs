//! Compiling policies for a connection, and the decision for each request.
//!
//! The decision follows IAM's evaluation logic, which AWS IoT says its
//! policies follow ("AWS IoT Core policies"): everything is denied by
//! default; a matching Allow statement allows; a matching Deny statement in
//! any attached policy overrides every Allow. A statement matches a request
//! when its `Action`/`NotAction` names the action, its `Resource`/
//! `NotResource` matches the resource ARN, and all its conditions hold.

use std::fmt;

use crate::action::{Action, ActionPattern};
use crate::condition::{CompiledCondition, RuntimeCondition};
use crate::context::{ConnectionContext, RequestContext};
use crate::document::{Effect, PolicyDocument};
use crate::glob::Glob;

/// The outcome of evaluating a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// An Allow statement matched and no Deny statement did.
    Allow,
    /// A Deny statement matched (whatever the Allow statements say).
    ExplicitDeny,
    /// No statement matched: denied by default.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allow => "allow",
            Decision::ExplicitDeny => "explicit deny",
            Decision::ImplicitDeny => "implicit deny",
        })
    }
}

/// The policies attached to one connection's principal, with the
/// connection's variables substituted and its conditions decided.
///
/// Build once per connection with [`CompiledPolicies::compile`]; evaluate on
/// every request. Recompile when the policies or the connection's facts
/// (thing attachment, attributes) change.
#[derive(Debug, Clone, Default)]
pub struct CompiledPolicies {
    statements: Vec<CompiledStatement>,
    /// For each [`Action`] (by index), the statements that name it: Deny
    /// statements first, so the first Allow that matches is final.
    by_action: Vec<Vec<usize>>,
}

#[derive(Debug, Clone)]
struct CompiledStatement {
    effect: Effect,
    /// Kept for actions named by string ([`CompiledPolicies::evaluate_action_name`]).
    actions: Vec<ActionPattern>,
    not_action: bool,
    /// Entries whose variables have no value are gone: they match nothing.
    resources: Vec<Glob>,
    not_resource: bool,
    /// Only the conditions on per-request keys.
    conditions: Vec<RuntimeCondition>,
}

impl CompiledStatement {
    fn names_action(&self, lowercase_name: &str) -> bool {
        self.actions
            .iter()
            .any(|pattern| pattern.matches_lowercase(lowercase_name))
            != self.not_action
    }

    fn applies(&self, resource: &str, request: &RequestContext<'_>) -> bool {
        let listed = self.resources.iter().any(|glob| glob.matches(resource));
        listed != self.not_resource && self.conditions.iter().all(|c| c.holds(request))
    }
}

impl CompiledPolicies {
    /// Compiles every statement of `documents` for the connection `ctx`.
    pub fn compile(documents: &[PolicyDocument], ctx: &ConnectionContext) -> CompiledPolicies {
        let lowercase_actions: Vec<String> = Action::ALL
            .iter()
            .map(|action| action.name().to_ascii_lowercase())
            .collect();
        let mut statements = Vec::new();
        'statements: for statement in documents.iter().flat_map(|d| d.statements()) {
            let mut conditions = Vec::new();
            for condition in statement.conditions() {
                match condition.compile(ctx) {
                    CompiledCondition::Decided(true) => {}
                    // Can never apply to this connection.
                    CompiledCondition::Decided(false) => continue 'statements,
                    CompiledCondition::Runtime(condition) => conditions.push(condition),
                }
            }
            let resources: Vec<Glob> = statement
                .resource_templates()
                .filter_map(|template| template.glob_tokens(ctx))
                .map(Glob::from_tokens)
                .collect();
            if resources.is_empty() && !statement.is_not_resource() {
                // Every Resource entry had a variable without a value.
                continue;
            }
            statements.push(CompiledStatement {
                effect: statement.effect(),
                actions: statement.action_patterns().to_vec(),
                not_action: statement.is_not_action(),
                resources,
                not_resource: statement.is_not_resource(),
                conditions,
            });
        }
        let mut by_action = vec![Vec::new(); Action::ALL.len()];
        for effect in [Effect::Deny, Effect::Allow] {
            for (index, statement) in statements.iter().enumerate() {
                if statement.effect != effect {
                    continue;
                }
                for (list, name) in by_action.iter_mut().zip(&lowercase_actions) {
                    if statement.names_action(name) {
                        list.push(index);
                    }
                }
            }
        }
        CompiledPolicies {
            statements,
            by_action,
        }
    }

    /// Decides whether `action` on `resource` (a full ARN, see
    /// [`crate::topic_arn`]) is allowed for this connection.
    pub fn evaluate(
        &self,
        action: Action,
        resource: &str,
        request: &RequestContext<'_>,
    ) -> Decision {
        let Some(candidates) = self.by_action.get(action.index()) else {
            return Decision::ImplicitDeny;
        };
        for statement in candidates.iter().filter_map(|&i| self.statements.get(i)) {
            if statement.applies(resource, request) {
                // Denies come first: reaching an Allow means none matched.
                return match statement.effect {
                    Effect::Deny => Decision::ExplicitDeny,
                    Effect::Allow => Decision::Allow,
                };
            }
        }
        Decision::ImplicitDeny
    }

    /// [`CompiledPolicies::evaluate`] for an action given by name (any
    /// string, case-insensitive), e.g. a control-plane action or one of the
    /// `iotjobsdata:` actions.
    pub fn evaluate_action_name(
        &self,
        action: &str,
        resource: &str,
        request: &RequestContext<'_>,
    ) -> Decision {
        let name = action.to_ascii_lowercase();
        let matching = |effect: Effect| {
            self.statements.iter().any(|statement| {
                statement.effect == effect
                    && statement.names_action(&name)
                    && statement.applies(resource, request)
            })
        };
        if matching(Effect::Deny) {
            Decision::ExplicitDeny
        } else if matching(Effect::Allow) {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }

    /// Whether [`CompiledPolicies::evaluate`] allows the request.
    pub fn allowed(&self, action: Action, resource: &str, request: &RequestContext<'_>) -> bool {
        self.evaluate(action, resource, request).is_allowed()
    }

    /// How many statements can still apply to this connection (for metrics
    /// and tests: statements whose conditions failed at compile time, or
    /// whose every resource had an unresolved variable, are gone).
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(statements: &str) -> CompiledPolicies {
        let json = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
        let document = PolicyDocument::parse(&json).unwrap();
        CompiledPolicies::compile(&[document], &ConnectionContext::new("c"))
    }

    #[test]
    fn shareable_between_connection_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CompiledPolicies>();
        assert_send_sync::<PolicyDocument>();
    }

    #[test]
    fn no_policies_deny_implicitly() {
        let request = RequestContext::default();
        assert_eq!(
            CompiledPolicies::default().evaluate(Action::Connect, "*", &request),
            Decision::ImplicitDeny
        );
        let empty = CompiledPolicies::compile(&[], &ConnectionContext::new("c"));
        assert_eq!(
            empty.evaluate_action_name("iot:Connect", "*", &request),
            Decision::ImplicitDeny
        );
        assert!(!empty.allowed(Action::Connect, "*", &request));
    }

    #[test]
    fn statements_are_indexed_by_action_with_denies_first() {
        let compiled = compile(
            r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"},
               {"Effect":"Allow","Action":"iot:Publish","Resource":"*"},
               {"Effect":"Deny","Action":"iot:Pub*","Resource":"*"},
               {"Effect":"Deny","NotAction":"iot:Connect","Resource":"arn:aws:iot:r:1:topic/x"}"#,
        );
        let listed = |action: Action| compiled.by_action[action.index()].clone();
        assert_eq!(listed(Action::Publish), [2, 3, 0, 1]);
        assert_eq!(listed(Action::Connect), [0]);
        assert_eq!(listed(Action::Receive), [3, 0]);
        assert_eq!(listed(Action::RetainPublish), [3, 0]);
    }

    #[test]
    fn decided_conditions_drop_or_keep_statements() {
        let compiled = compile(
            r#"{"Effect":"Allow","Action":"iot:*","Resource":"*",
                "Condition":{"StringEquals":{"iot:ClientId":"someone-else"}}},
               {"Effect":"Deny","Action":"iot:*","Resource":"*",
                "Condition":{"StringEquals":{"iot:ClientId":"c"}}}"#,
        );
        assert_eq!(compiled.statement_count(), 1);
        assert!(compiled.statements[0].conditions.is_empty());
        assert_eq!(
            compiled.evaluate(Action::Publish, "anything", &RequestContext::default()),
            Decision::ExplicitDeny
        );
    }

    #[test]
    fn decision_display() {
        assert_eq!(Decision::Allow.to_string(), "allow");
        assert_eq!(Decision::ExplicitDeny.to_string(), "explicit deny");
        assert_eq!(Decision::ImplicitDeny.to_string(), "implicit deny");
        assert!(Decision::Allow.is_allowed());
        assert!(!Decision::ExplicitDeny.is_allowed());
    }
}
