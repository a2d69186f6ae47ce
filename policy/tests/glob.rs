//! Wildcard edge cases through the public API, including resource ARNs.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns unwrap too.

use fleetcore_policy::{wildcard_match, Glob};

#[test]
fn star_crosses_levels_and_arn_components() {
    assert!(wildcard_match(
        "arn:aws:iot:us-east-1:123456789012:topic/a/*/c",
        "arn:aws:iot:us-east-1:123456789012:topic/a/b1/b2/c"
    ));
    assert!(wildcard_match(
        "arn:aws:iot:*:123456789012:topic/*",
        "arn:aws:iot:eu-west-1:123456789012:topic/x"
    ));
    assert!(wildcard_match(
        "arn:aws:iot:us-east-1:123456789012:*",
        "arn:aws:iot:us-east-1:123456789012:topicfilter/a/#"
    ));
    assert!(!wildcard_match(
        "arn:aws:iot:us-east-1:123456789012:topic/*",
        "arn:aws:iot:us-east-1:123456789012:topicfilter/a"
    ));
    assert!(wildcard_match("*", ""));
    assert!(wildcard_match("*", "arn:aws:iot:us-east-1:1:topic/x"));
}

#[test]
fn question_marks_constrain_one_level() {
    // The guide's suggestion: `?????` to stay within one five-character level.
    let pattern = "topic/some/?????/topic";
    assert!(wildcard_match(pattern, "topic/some/abcde/topic"));
    assert!(
        wildcard_match(pattern, "topic/some/ab/de/topic"),
        "`?` matches `/` too"
    );
    assert!(!wildcard_match(pattern, "topic/some/abcdef/topic"));
    assert!(!wildcard_match(pattern, "topic/some/abcd/topic"));
    assert!(wildcard_match(
        "topicfilter/some/sensor???/topic",
        "topicfilter/some/sensor001/topic"
    ));
}

#[test]
fn topic_names_are_case_sensitive() {
    assert!(!wildcard_match("topic/Room*", "topic/room1"));
}

#[test]
fn unicode_and_special_characters() {
    assert!(wildcard_match("t/?/x", "t/ü/x"));
    assert!(wildcard_match("t/*/x", "t/日本/x"));
    assert!(wildcard_match(
        "$aws/things/*/shadow/update",
        "$aws/things/t1/shadow/update"
    ));
    assert!(wildcard_match("a{b}", "a{b}"));
}

#[test]
fn pathological_patterns_finish_on_long_inputs() {
    // A backtracking matcher needs on the order of n^5 steps for these; the
    // linear one answers immediately. No timing: the test just has to end.
    let text = "a".repeat(1 << 20);
    assert!(!wildcard_match("a*a*a*a*a*b", &text));
    assert!(!wildcard_match("*a*a*a*a*a*a*a*a*a*a*b*", &text));
    assert!(!wildcard_match("*a?a*a?a*a?a*a?ab*a", &text));
    assert!(wildcard_match("*a*a*a*a*a*a*a*a*a*a*", &text));
    let glob = Glob::new(&"*a".repeat(200));
    assert!(glob.matches(&text));
    assert!(!glob.matches(&"a".repeat(199)));
}

#[test]
fn glob_reports_its_pattern() {
    assert_eq!(Glob::new("a**b?").as_str(), "a*b?");
    assert!(Glob::new("**").matches_everything());
    assert!(!Glob::new("*a").matches_everything());
}
