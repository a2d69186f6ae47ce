//! The data-plane actions Fleetcore authorizes, named as AWS IoT names them
//! ("AWS IoT Core policy actions" in the developer guide), and the `Action`/
//! `NotAction` patterns of a statement.
//!
//! As in IAM ("IAM JSON policy elements: Action"), the service prefix and the
//! action name are case-insensitive (`iot:publish` is `iot:Publish`) and may
//! use `*` and `?` (`iot:*`, `iot:Pub*`); `"*"` alone names every action.
//! Another service's prefix (`s3:*`) is rejected: an AWS IoT policy only
//! grants AWS IoT actions. A policy may name any action string
//! of the AWS IoT services — control-plane ones included — since matching is
//! on the string; [`Action`] lists the ones the broker and the data-plane API
//! ask about.

use std::fmt;

use crate::glob::Glob;

macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// An AWS IoT Core data-plane action, as checked by the broker and the
        /// HTTP data-plane API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $($(#[$doc])* $variant,)*
        }

        impl Action {
            /// Every action, in declaration order (`ALL[a.index()] == a`).
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The action's policy name, e.g. `"iot:Publish"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }
        }
    };
}

actions! {
    /// `iot:Connect`, on `client/<clientId>`: every MQTT CONNECT.
    Connect => "iot:Connect",
    /// `iot:DeleteConnection`, on `client/<clientId>`: forcibly disconnect a client.
    DeleteConnection => "iot:DeleteConnection",
    /// `iot:Publish`, on `topic/<topic>`: every PUBLISH.
    Publish => "iot:Publish",
    /// `iot:Subscribe`, on `topicfilter/<filter>`: every SUBSCRIBE.
    Subscribe => "iot:Subscribe",
    /// `iot:Receive`, on `topic/<topic>`: every delivery to a client.
    Receive => "iot:Receive",
    /// `iot:RetainPublish`, on `topic/<topic>`: a PUBLISH with RETAIN set
    /// (which also needs `iot:Publish`).
    RetainPublish => "iot:RetainPublish",
    /// `iot:GetRetainedMessage`, on `topic/<topic>`.
    GetRetainedMessage => "iot:GetRetainedMessage",
    /// `iot:ListRetainedMessages`, on `*`.
    ListRetainedMessages => "iot:ListRetainedMessages",
    /// `iot:GetThingShadow`, on `thing/<thing>[/<shadow>]`.
    GetThingShadow => "iot:GetThingShadow",
    /// `iot:UpdateThingShadow`, on `thing/<thing>[/<shadow>]`.
    UpdateThingShadow => "iot:UpdateThingShadow",
    /// `iot:DeleteThingShadow`, on `thing/<thing>[/<shadow>]`.
    DeleteThingShadow => "iot:DeleteThingShadow",
    /// `iot:ListNamedShadowsForThing`.
    ListNamedShadowsForThing => "iot:ListNamedShadowsForThing",
    /// `iot:DescribeJobExecution`, on `thing/<thing>` (jobs over HTTPS).
    DescribeJobExecution => "iot:DescribeJobExecution",
    /// `iot:GetPendingJobExecutions`, on `thing/<thing>`.
    GetPendingJobExecutions => "iot:GetPendingJobExecutions",
    /// `iot:StartNextPendingJobExecution`, on `thing/<thing>`.
    StartNextPendingJobExecution => "iot:StartNextPendingJobExecution",
    /// `iot:UpdateJobExecution`, on `thing/<thing>`.
    UpdateJobExecution => "iot:UpdateJobExecution",
    /// `iot:AssumeRoleWithCertificate`, on `rolealias/<alias>`.
    AssumeRoleWithCertificate => "iot:AssumeRoleWithCertificate",
}

impl Action {
    /// Position in [`Action::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The action a name denotes, ignoring case (`"IOT:publish"` is
    /// [`Action::Publish`]); `None` for other names and for patterns.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL
            .iter()
            .copied()
            .find(|action| action.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Service prefixes an AWS IoT policy may name. `iotjobsdata` is how the
/// current "AWS IoT Core action resources" table names the jobs actions of
/// the HTTPS data plane; `iot` covers everything else.
const SERVICES: &[&str] = &["iot", "iotjobsdata"];

/// One entry of a statement's `Action` or `NotAction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActionPattern {
    /// As written in the policy.
    pub(crate) text: String,
    /// Lowercased, so matching against a lowercased name ignores case.
    pub(crate) glob: Glob,
}

impl ActionPattern {
    /// Checks the pattern's shape; the error is the reason, for the caller to
    /// put a location on.
    pub(crate) fn parse(text: &str) -> Result<ActionPattern, String> {
        if text == "*" {
            return Ok(ActionPattern {
                text: text.to_owned(),
                glob: Glob::new("*"),
            });
        }
        let Some((service, name)) = text.split_once(':') else {
            return Err("an action is \"*\" or \"iot:<ActionName>\"".to_owned());
        };
        if !SERVICES
            .iter()
            .any(|known| known.eq_ignore_ascii_case(service))
        {
            return Err(format!(
                "AWS IoT policies only grant AWS IoT actions (service prefix \"iot\"), not {service:?}"
            ));
        }
        if name.is_empty() {
            return Err("the action name after the service prefix is empty".to_owned());
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '*' || *c == '?'))
        {
            return Err(format!(
                "action names contain only letters, digits and the wildcards * and ?, not {bad:?}"
            ));
        }
        Ok(ActionPattern {
            text: text.to_owned(),
            glob: Glob::new(&text.to_ascii_lowercase()),
        })
    }

    /// Whether the pattern names `lowercase_name` (already lowercased).
    pub(crate) fn matches_lowercase(&self, lowercase_name: &str) -> bool {
        self.glob.matches(lowercase_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_ignoring_case() {
        for &action in Action::ALL {
            assert_eq!(Action::from_name(action.name()), Some(action));
            assert_eq!(
                Action::from_name(&action.name().to_ascii_uppercase()),
                Some(action)
            );
            assert_eq!(Action::ALL[action.index()], action);
        }
        assert_eq!(Action::from_name("iot:Pub*"), None);
        assert_eq!(Action::Publish.to_string(), "iot:Publish");
    }

    #[test]
    fn patterns_match_ignoring_case() {
        let pattern = ActionPattern::parse("IOT:pub*").unwrap();
        assert!(pattern.matches_lowercase("iot:publish"));
        assert!(!pattern.matches_lowercase("iot:retainpublish"));
        let pattern = ActionPattern::parse("iot:*Publish").unwrap();
        assert!(pattern.matches_lowercase("iot:retainpublish"));
        assert!(pattern.matches_lowercase("iot:publish"));
        assert!(ActionPattern::parse("*")
            .unwrap()
            .matches_lowercase("anything"));
    }

    #[test]
    fn rejects_other_services_and_malformed_names() {
        assert!(ActionPattern::parse("s3:GetObject").is_err());
        assert!(ActionPattern::parse("iot*:Publish").is_err());
        assert!(ActionPattern::parse("Publish").is_err());
        assert!(ActionPattern::parse("iot:").is_err());
        assert!(ActionPattern::parse("iot:Pub lish").is_err());
        assert!(ActionPattern::parse("iotjobsdata:DescribeJobExecution").is_ok());
    }
}
