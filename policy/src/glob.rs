//! IAM-style wildcard matching for resource ARNs, action names and
//! `StringLike`/`ArnLike` condition values.
//!
//! What AWS documents (and so what this implements):
//! - AWS IoT "Publish/Subscribe policy examples": in a policy, `*` represents
//!   any combination of characters and `?` any single character; the MQTT
//!   wildcards `+` and `#` are *literal* characters with no special meaning
//!   (`topicfilter/some/+/topic` matches only the filter `some/+/topic`).
//! - IAM "Resource" element: `*` expands across `/` ("there is no specific
//!   significance when this character is used within a resource ARN"), and a
//!   `*` at the end of an ARN segment "can expand to match beyond the colon
//!   boundaries" — so a resource pattern is matched as one string and `*`
//!   also crosses `:`. (Per-segment matching is only what `ArnLike` does; see
//!   `condition.rs`.)
//!
//! The matcher runs on every publish and delivery, so it must not backtrack
//! exponentially on patterns like `a*a*a*a*b`. A pattern is split into a head
//! (before the first `*`), a tail (after the last `*`) and the segments in
//! between. Head and tail have a fixed length in characters, so they are
//! checked against the two ends of the text; each middle segment is then
//! matched at its leftmost occurrence after the previous one. Taking the
//! leftmost occurrence is always safe (anything a later occurrence could
//! leave for the remaining segments, an earlier one leaves too), so no
//! segment is ever retried: the work is bounded by the text length times the
//! longest segment, and literal-only segments use `str::find`, which is linear.

use std::fmt;

/// One unit of a wildcard pattern after policy variables and escapes
/// (`${*}`, `${?}`, `${$}`) have been resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GlobToken {
    /// Text matched character for character.
    Literal(String),
    /// `?`: exactly one character.
    AnyChar,
    /// `*`: any run of characters, including none.
    AnyRun,
}

/// A piece of a star-free run of the pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    AnyChar,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// No wildcard at all: plain string equality.
    Exact(String),
    /// Nothing but `*`: matches every string.
    Everything,
    /// `?` but no `*`: the pieces must cover the whole text.
    Anchored(Vec<Piece>),
    /// At least one `*`.
    Starred {
        head: Vec<Piece>,
        middle: Vec<Vec<Piece>>,
        tail: Vec<Piece>,
    },
}

/// A compiled wildcard pattern: `*` matches any run of characters (including
/// `/` and `:`), `?` exactly one character, everything else itself.
///
/// Matching is case-sensitive, like IAM resource matching; callers that need
/// case-insensitive matching (action names) lowercase both sides.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    shape: Shape,
    source: String,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl Glob {
    /// Compiles `pattern`, where `*` and `?` are wildcards and every other
    /// character (including `+`, `#`, `$`, `{`) stands for itself.
    pub fn new(pattern: &str) -> Glob {
        let mut tokens = Vec::new();
        let mut literal = String::new();
        for c in pattern.chars() {
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
        Glob::from_tokens(tokens)
    }

    /// Builds a matcher from tokens. Adjacent literals are merged and runs of
    /// `*` collapse into one, so the shapes below are canonical.
    pub(crate) fn from_tokens(tokens: impl IntoIterator<Item = GlobToken>) -> Glob {
        let mut source = String::new();
        // Runs of star-free pieces, separated by `*`.
        let mut runs: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut starred = false;
        let mut previous_was_star = false;
        for token in tokens {
            match token {
                GlobToken::AnyRun => {
                    if !previous_was_star {
                        runs.push(Vec::new());
                        source.push('*');
                    }
                    starred = true;
                    previous_was_star = true;
                }
                GlobToken::AnyChar => {
                    source.push('?');
                    push_piece(&mut runs, Piece::AnyChar);
                    previous_was_star = false;
                }
                GlobToken::Literal(text) => {
                    if text.is_empty() {
                        continue;
                    }
                    // Shown escaped so Debug output reads back as the pattern.
                    for c in text.chars() {
                        match c {
                            '*' => source.push_str("${*}"),
                            '?' => source.push_str("${?}"),
                            _ => source.push(c),
                        }
                    }
                    push_piece(&mut runs, Piece::Literal(text));
                    previous_was_star = false;
                }
            }
        }
        let shape = if !starred {
            let pieces = runs.pop().unwrap_or_default();
            if pieces.iter().all(|p| matches!(p, Piece::Literal(_))) {
                let mut exact = String::new();
                for piece in pieces {
                    if let Piece::Literal(text) = piece {
                        exact.push_str(&text);
                    }
                }
                Shape::Exact(exact)
            } else {
                Shape::Anchored(pieces)
            }
        } else {
            let tail = runs.pop().unwrap_or_default();
            let mut runs = runs.into_iter();
            let head = runs.next().unwrap_or_default();
            let middle: Vec<Vec<Piece>> = runs.filter(|run| !run.is_empty()).collect();
            if head.is_empty() && tail.is_empty() && middle.is_empty() {
                Shape::Everything
            } else {
                Shape::Starred { head, middle, tail }
            }
        };
        Glob { shape, source }
    }

    /// Whether the pattern matches all of `text`.
    pub fn matches(&self, text: &str) -> bool {
        self.matches_metered(text, &mut 0)
    }

    /// Whether the pattern is `*` alone (matches everything).
    pub fn matches_everything(&self) -> bool {
        matches!(self.shape, Shape::Everything)
    }

    /// The pattern as written, with literal `*`/`?` shown as `${*}`/`${?}`.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// [`Glob::matches`], adding to `work` an upper bound of the characters
    /// compared, so tests can check the bound without timing anything.
    pub(crate) fn matches_metered(&self, text: &str, work: &mut usize) -> bool {
        match &self.shape {
            Shape::Exact(exact) => {
                *work += exact.len().min(text.len()) + 1;
                exact == text
            }
            Shape::Everything => true,
            Shape::Anchored(pieces) => match_at(pieces, text, 0, work) == Some(text.len()),
            Shape::Starred { head, middle, tail } => {
                let Some(head_end) = match_at(head, text, 0, work) else {
                    return false;
                };
                let Some(tail_start) = match_ending_at(tail, text, text.len(), work) else {
                    return false;
                };
                if head_end > tail_start {
                    // Head and tail would overlap: the text is too short.
                    return false;
                }
                let window = &text[..tail_start];
                let mut position = head_end;
                for segment in middle {
                    match find_leftmost(segment, window, position, work) {
                        Some(end) => position = end,
                        None => return false,
                    }
                }
                true
            }
        }
    }
}

/// Matches `pattern` against `text` as IAM does for resources: `*` any run of
/// characters (including `/` and `:`), `?` one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    Glob::new(pattern).matches(text)
}

fn push_piece(runs: &mut Vec<Vec<Piece>>, piece: Piece) {
    if runs.is_empty() {
        runs.push(Vec::new());
    }
    let Some(run) = runs.last_mut() else {
        return;
    };
    match (run.last_mut(), piece) {
        (Some(Piece::Literal(previous)), Piece::Literal(text)) => previous.push_str(&text),
        (_, piece) => run.push(piece),
    }
}

/// Matches `pieces` at byte offset `start`; returns where the match ends.
fn match_at(pieces: &[Piece], text: &str, start: usize, work: &mut usize) -> Option<usize> {
    let mut position = start;
    for piece in pieces {
        let rest = text.get(position..)?;
        match piece {
            Piece::Literal(literal) => {
                *work += literal.len();
                if !rest.starts_with(literal.as_str()) {
                    return None;
                }
                position += literal.len();
            }
            Piece::AnyChar => {
                *work += 1;
                position += rest.chars().next()?.len_utf8();
            }
        }
    }
    Some(position)
}

/// Matches `pieces` so that they end at byte offset `end`; returns where the
/// match starts.
fn match_ending_at(pieces: &[Piece], text: &str, end: usize, work: &mut usize) -> Option<usize> {
    let mut position = end;
    for piece in pieces.iter().rev() {
        let before = text.get(..position)?;
        match piece {
            Piece::Literal(literal) => {
                *work += literal.len();
                if !before.ends_with(literal.as_str()) {
                    return None;
                }
                position -= literal.len();
            }
            Piece::AnyChar => {
                *work += 1;
                position -= before.chars().next_back()?.len_utf8();
            }
        }
    }
    Some(position)
}

/// Finds the leftmost match of `segment` in `window` at or after `from`;
/// returns where it ends.
fn find_leftmost(segment: &[Piece], window: &str, from: usize, work: &mut usize) -> Option<usize> {
    let haystack = window.get(from..)?;
    if let [Piece::Literal(literal)] = segment {
        // `str::find` is linear in the haystack (two-way search).
        let found = haystack.find(literal.as_str());
        *work += found.map_or(haystack.len(), |offset| offset + literal.len()) + 1;
        return found.map(|offset| from + offset + literal.len());
    }
    let mut start = from;
    loop {
        *work += 1;
        if let Some(Piece::Literal(first)) = segment.first() {
            // Skip straight to the next place the segment's first literal occurs.
            let rest = window.get(start..)?;
            let offset = rest.find(first.as_str())?;
            *work += offset;
            start += offset;
        }
        if let Some(end) = match_at(segment, window, start, work) {
            return Some(end);
        }
        start += window.get(start..)?.chars().next()?.len_utf8();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_compare_exactly() {
        assert!(wildcard_match("abc", "abc"));
        assert!(!wildcard_match("abc", "abcd"));
        assert!(!wildcard_match("abc", "ab"));
        assert!(!wildcard_match("abc", "ABC"));
        assert!(wildcard_match("", ""));
        assert!(!wildcard_match("", "a"));
    }

    #[test]
    fn star_spans_slashes_and_colons() {
        assert!(wildcard_match(
            "arn:aws:iot:us-east-1:123456789012:topic/a/*",
            "arn:aws:iot:us-east-1:123456789012:topic/a/b/c"
        ));
        assert!(wildcard_match(
            "arn:aws:iot:*",
            "arn:aws:iot:us-east-1:123456789012:topic/x"
        ));
        assert!(wildcard_match("a*", "a:b/c"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b", "ab"));
        assert!(!wildcard_match("a*b", "a"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(wildcard_match("sensor???", "sensor123"));
        assert!(!wildcard_match("sensor???", "sensor12"));
        assert!(!wildcard_match("sensor???", "sensor1234"));
        assert!(wildcard_match("a?c", "a/c"));
        // One character, not one byte.
        assert!(wildcard_match("a?c", "aéc"));
        assert!(wildcard_match("?*?", "ab"));
        assert!(!wildcard_match("?*?", "a"));
    }

    #[test]
    fn mqtt_wildcards_are_literal() {
        assert!(wildcard_match(
            "topicfilter/some/+/topic",
            "topicfilter/some/+/topic"
        ));
        assert!(!wildcard_match(
            "topicfilter/some/+/topic",
            "topicfilter/some/x/topic"
        ));
        assert!(wildcard_match("topic/a/#", "topic/a/#"));
        assert!(!wildcard_match("topic/a/#", "topic/a/b"));
    }

    #[test]
    fn head_and_tail_must_not_overlap() {
        assert!(!wildcard_match("ab*ba", "aba"));
        assert!(wildcard_match("ab*ba", "abba"));
        assert!(wildcard_match("a?*?a", "abba"));
        assert!(!wildcard_match("a?*?a", "aba"));
    }

    #[test]
    fn middle_segments_match_in_order() {
        assert!(wildcard_match("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!wildcard_match("*c*b*a*", "xxaxxbxxcxx"));
        assert!(wildcard_match("*a?c*", "zzabxabcq"));
        assert!(!wildcard_match("*a?c*", "zzabxabq"));
    }

    #[test]
    fn literal_tokens_never_act_as_wildcards() {
        let glob = Glob::from_tokens([
            GlobToken::Literal("topic/".into()),
            GlobToken::Literal("*".into()),
        ]);
        assert!(glob.matches("topic/*"));
        assert!(!glob.matches("topic/x"));
        assert_eq!(glob.as_str(), "topic/${*}");
    }

    #[test]
    fn runs_of_stars_collapse() {
        assert_eq!(Glob::new("a***b"), Glob::new("a*b"));
        assert!(Glob::new("***").matches_everything());
    }

    /// `a*a*a*a*a*b` against a long run of `a`s is the classic case where a
    /// backtracking matcher explodes. Count the work instead of timing it:
    /// it must stay within a small multiple of the input size.
    #[test]
    fn pathological_patterns_do_linear_work() {
        let text = "a".repeat(100_000);
        for pattern in [
            "a*a*a*a*a*b",
            "*a*a*a*a*a*b*",
            "*a?a*a?a*a?ab*",
            "*?*?*?*?*b",
        ] {
            let glob = Glob::new(pattern);
            let mut work = 0;
            assert!(!glob.matches_metered(&text, &mut work), "{pattern}");
            assert!(
                work <= 8 * (text.len() + pattern.len()),
                "{pattern}: {work} steps for {} characters",
                text.len()
            );
        }
        let mut work = 0;
        assert!(Glob::new("*a*a*a*a*a*").matches_metered(&text, &mut work));
        assert!(work <= 8 * text.len());
    }
}
