//! Topic names and filters: validation, matching (with the `$` rule of MQTT
//! 3.1.1 §4.7.2 / 5.0 §4.7.2: a filter starting with a wildcard does not match a
//! topic starting with `$`), and shared-subscription parsing.

/// Limits on topics, from the node's config.
#[derive(Debug, Clone, Copy)]
pub struct TopicLimits {
    /// Longest topic name or filter, bytes.
    pub max_len: usize,
    /// Most `/`-separated levels.
    pub max_levels: usize,
}

impl Default for TopicLimits {
    fn default() -> Self {
        // AWS IoT allows 256 bytes and 8 levels for client topics; reserved topics
        // such as `$aws/things/{name}/shadow/name/{shadow}/update/accepted` are
        // longer, so the defaults leave room for them.
        TopicLimits {
            max_len: 1024,
            max_levels: 16,
        }
    }
}

/// Why a topic or filter is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Empty.
    #[error("topic is empty")]
    Empty,
    /// Longer than the limit.
    #[error("topic is longer than {0} bytes")]
    TooLong(usize),
    /// More levels than the limit.
    #[error("topic has more than {0} levels")]
    TooManyLevels(usize),
    /// Wildcard in a topic name, or misplaced in a filter.
    #[error("invalid wildcard use in {0:?}")]
    Wildcard(String),
    /// NUL character.
    #[error("topic contains NUL")]
    Nul,
    /// A malformed `$share/group/filter`.
    #[error("invalid shared subscription {0:?}")]
    Shared(String),
}

fn common(topic: &str, limits: TopicLimits) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > limits.max_len {
        return Err(TopicError::TooLong(limits.max_len));
    }
    if topic.contains('\0') {
        return Err(TopicError::Nul);
    }
    if topic.split('/').count() > limits.max_levels {
        return Err(TopicError::TooManyLevels(limits.max_levels));
    }
    Ok(())
}

/// A topic name a client may publish to.
pub fn validate_name(topic: &str, limits: TopicLimits) -> Result<(), TopicError> {
    common(topic, limits)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::Wildcard(topic.to_string()));
    }
    Ok(())
}

/// A filter (without any `$share/` prefix).
pub fn validate_filter(filter: &str, limits: TopicLimits) -> Result<(), TopicError> {
    common(filter, limits)?;
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let bad = match *level {
            "#" => i != levels.len() - 1,
            "+" => false,
            l => l.contains(['+', '#']),
        };
        if bad {
            return Err(TopicError::Wildcard(filter.to_string()));
        }
    }
    Ok(())
}

/// A subscription filter, split into its share group (if any) and the filter.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ParsedFilter {
    /// `Some(group)` for `$share/{group}/{filter}`.
    pub share: Option<String>,
    /// The topic filter proper.
    pub filter: String,
}

/// Parses and validates a filter as a client sends it.
pub fn parse_filter(raw: &str, limits: TopicLimits) -> Result<ParsedFilter, TopicError> {
    if let Some(rest) = raw.strip_prefix("$share/") {
        let (group, filter) = rest
            .split_once('/')
            .ok_or_else(|| TopicError::Shared(raw.to_string()))?;
        if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
            return Err(TopicError::Shared(raw.to_string()));
        }
        validate_filter(filter, limits)?;
        return Ok(ParsedFilter {
            share: Some(group.to_string()),
            filter: filter.to_string(),
        });
    }
    validate_filter(raw, limits)?;
    Ok(ParsedFilter {
        share: None,
        filter: raw.to_string(),
    })
}

/// True when `filter` has a wildcard.
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Does `filter` match `topic`? Both are assumed valid.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_table() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true), // '#' also matches the parent level
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/+", "/x", true),
            ("+", "", true),
            ("a/+/c", "a//c", true),
            ("#", "$SYS/x", false),
            ("+/x", "$aws/x", false),
            ("$aws/#", "$aws/things/t/shadow/update", true),
            (
                "$aws/things/+/shadow/update/accepted",
                "$aws/things/t/shadow/update/accepted",
                true,
            ),
            ("a/b", "a/b/", false),
        ];
        for (filter, topic, want) in cases {
            assert_eq!(matches(filter, topic), want, "{filter} vs {topic}");
        }
    }

    #[test]
    fn validation() {
        let l = TopicLimits::default();
        assert!(validate_name("a/b", l).is_ok());
        assert!(validate_name("a/+", l).is_err());
        assert!(validate_name("", l).is_err());
        assert!(validate_name("a\0b", l).is_err());
        assert!(validate_filter("a/#", l).is_ok());
        assert!(validate_filter("a/#/b", l).is_err());
        assert!(validate_filter("a/b+", l).is_err());
        assert!(validate_filter("a/+/b", l).is_ok());
        let deep = vec!["x"; 17].join("/");
        assert_eq!(validate_name(&deep, l), Err(TopicError::TooManyLevels(16)));
        assert_eq!(
            parse_filter("$share/g/a/+", l),
            Ok(ParsedFilter {
                share: Some("g".into()),
                filter: "a/+".into()
            })
        );
        assert!(parse_filter("$share/g", l).is_err());
        assert!(parse_filter("$share//a", l).is_err());
    }
}
