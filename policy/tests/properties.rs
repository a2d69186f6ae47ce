//! Property tests: the parser and evaluator never panic on arbitrary input,
//! and the wildcard matcher agrees with a plain recursive reference.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns unwrap too.

use fleetcore_policy::{
    wildcard_match, Action, CompiledPolicies, ConnectionContext, Glob, PolicyDocument,
    RequestContext,
};
use proptest::prelude::*;

/// The textbook definition: `*` any run, `?` one character.
fn reference_match(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| reference_match(rest, &text[skip..])),
        Some(('?', rest)) => !text.is_empty() && reference_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && reference_match(rest, &text[1..]),
    }
}

/// Fragments that make up policies, so random strings are often nearly valid.
fn json_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\"Version\"".to_owned()),
        Just("\"2012-10-17\"".to_owned()),
        Just("\"Statement\"".to_owned()),
        Just("\"Effect\"".to_owned()),
        Just("\"Allow\"".to_owned()),
        Just("\"Deny\"".to_owned()),
        Just("\"Action\"".to_owned()),
        Just("\"NotAction\"".to_owned()),
        Just("\"iot:*\"".to_owned()),
        Just("\"iot:Publish\"".to_owned()),
        Just("\"Resource\"".to_owned()),
        Just("\"NotResource\"".to_owned()),
        Just("\"*\"".to_owned()),
        Just("\"arn:aws:iot:r:1:topic/${iot:ClientId}/*\"".to_owned()),
        Just("\"Condition\"".to_owned()),
        Just("\"StringLike\"".to_owned()),
        Just("\"ForAllValues:NumericLessThanIfExists\"".to_owned()),
        Just("\"DateGreaterThan\"".to_owned()),
        Just("\"IpAddress\"".to_owned()),
        Just("\"Null\"".to_owned()),
        Just("\"aws:CurrentTime\"".to_owned()),
        Just("\"iot:Connection.Thing.Attributes[a]\"".to_owned()),
        Just("\"2024-01-01T00:00:00Z\"".to_owned()),
        Just("\"10.0.0.0/8\"".to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("12.5".to_owned()),
        "\"[^\"\\\\]{0,8}\"",
        "[ -~]{0,4}",
    ]
}

fn valid_statement() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("Allow"), Just("Deny")],
        prop_oneof![Just("Action"), Just("NotAction")],
        "iot:[A-Za-z*?]{1,6}",
        prop_oneof![Just("Resource"), Just("NotResource")],
        "arn:aws:iot:r:1:topic/[a-z/*?+#]{0,8}(\\$\\{iot:ClientId\\})?",
    )
        .prop_map(|(effect, action_key, action, resource_key, resource)| {
            format!(
                r#"{{"Effect":"{effect}","{action_key}":"{action}","{resource_key}":"{resource}"}}"#
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
        let _ = PolicyDocument::parse(&text);
    }

    #[test]
    fn parser_never_panics_on_json_like_text(fragments in prop::collection::vec(json_fragment(), 0..60)) {
        let text = fragments.concat();
        if let Ok(document) = PolicyDocument::parse(&text) {
            let compiled = CompiledPolicies::compile(&[document], &ConnectionContext::new("c"));
            let _ = compiled.evaluate(Action::Publish, "arn:aws:iot:r:1:topic/c/x", &RequestContext::at(0));
        }
    }

    #[test]
    fn valid_documents_compile_and_evaluate(
        statements in prop::collection::vec(valid_statement(), 1..5),
        client_id in "[a-z*?+#]{0,4}",
        resource in "[ -~]{0,40}",
        action_name in "[a-zA-Z:*]{0,12}",
    ) {
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(","));
        let document = PolicyDocument::parse(&text).unwrap();
        let compiled = CompiledPolicies::compile(&[document], &ConnectionContext::new(client_id));
        for &action in Action::ALL {
            let by_enum = compiled.evaluate(action, &resource, &RequestContext::default());
            let by_name = compiled.evaluate_action_name(action.name(), &resource, &RequestContext::default());
            prop_assert_eq!(by_enum, by_name);
        }
        let _ = compiled.evaluate_action_name(&action_name, &resource, &RequestContext::default());
    }

    #[test]
    fn glob_matches_its_own_literal_text(text in "[ -~é]{0,20}") {
        // A pattern without wildcards matches exactly itself.
        let literal: String = text.chars().filter(|c| *c != '*' && *c != '?').collect();
        prop_assert!(Glob::new(&literal).matches(&literal));
        let surrounded = format!("x{literal}y");
        let pattern = format!("*{literal}*");
        prop_assert!(wildcard_match(&pattern, &surrounded));
    }
}

proptest! {
    // Small alphabets and short strings, so that matches, near-misses and
    // overlapping head/tail cases all come up often.
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn glob_agrees_with_reference(pattern in "[ab*?]{0,8}", text in "[ab]{0,8}") {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(wildcard_match(&pattern, &text), reference_match(&p, &t), "{} vs {}", pattern, text);
    }

    #[test]
    fn glob_agrees_with_reference_on_arn_characters(
        pattern in "[a/:é*?]{0,10}",
        text in "[a/:é]{0,12}",
    ) {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(wildcard_match(&pattern, &text), reference_match(&p, &t), "{} vs {}", pattern, text);
    }

    #[test]
    fn glob_matches_every_expansion_of_itself(
        pattern in "[ab/*?]{0,10}",
        fills in prop::collection::vec("[ab/é]{0,3}", 10),
    ) {
        // Replace each `*` by some string and each `?` by one character.
        let mut text = String::new();
        for (c, fill) in pattern.chars().zip(&fills) {
            match c {
                '*' => text.push_str(fill),
                '?' => text.push(fill.chars().next().unwrap_or('x')),
                c => text.push(c),
            }
        }
        prop_assert!(wildcard_match(&pattern, &text), "{} vs {}", pattern, text);
    }
}
