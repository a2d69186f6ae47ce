//! Topic filters indexed level by level, so a publish visits only the branches
//! its topic can match (the exact level, `+` and `#` at each level) instead of
//! testing every wildcard filter: with 100,000 `cmd/{id}/#` subscriptions a
//! publish to `cmd/7/reboot` looks at a handful of nodes, not 100,000 filters.

use std::collections::BTreeMap;

/// Filters (with `+` and `#`) mapped to a value each.
#[derive(Debug)]
pub struct FilterTrie<V> {
    root: Node<V>,
    len: usize,
}

#[derive(Debug)]
struct Node<V> {
    /// Children by literal level. Ordered, so matches are visited in the same
    /// order on every run (a simulation seed replays exactly).
    levels: BTreeMap<String, Node<V>>,
    /// The `+` child.
    plus: Option<Box<Node<V>>>,
    /// The value of the filter that ends here with `/#` (or is `#`).
    hash: Option<(String, V)>,
    /// The value of the filter that ends exactly here.
    value: Option<(String, V)>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            levels: BTreeMap::new(),
            plus: None,
            hash: None,
            value: None,
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.levels.is_empty() && self.plus.is_none() && self.hash.is_none() && self.value.is_none()
    }
}

impl<V> Default for FilterTrie<V> {
    fn default() -> Self {
        FilterTrie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> FilterTrie<V> {
    /// Number of filters held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no filter is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `filter`, inserted with `make` when absent.
    pub fn entry(&mut self, filter: &str, make: impl FnOnce() -> V) -> &mut V {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        let slot = loop {
            let Some(level) = levels.next() else {
                break &mut node.value;
            };
            if level == "#" && levels.peek().is_none() {
                break &mut node.hash;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.levels.entry(level.to_string()).or_default()
            };
        };
        if slot.is_none() {
            self.len += 1;
        }
        &mut slot.get_or_insert_with(|| (filter.to_string(), make())).1
    }

    /// The value of `filter`, if held.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        let slot = loop {
            let Some(level) = levels.next() else {
                break &mut node.value;
            };
            if level == "#" && levels.peek().is_none() {
                break &mut node.hash;
            }
            node = if level == "+" {
                node.plus.as_deref_mut()?
            } else {
                node.levels.get_mut(level)?
            };
        };
        slot.as_mut().map(|(_, v)| v)
    }

    /// Removes `filter`; its value if it was held. Empty branches are pruned.
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels)?;
        self.len -= 1;
        Some(removed)
    }

    /// Calls `f` with every held filter that matches `topic`, and its value.
    /// A topic starting with `$` is not matched by a filter starting with a
    /// wildcard (MQTT 4.7.2).
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a str, &'a V)) {
        let levels: Vec<&str> = topic.split('/').collect();
        let dollar = topic.starts_with('$');
        visit(&self.root, &levels, 0, dollar, &mut f);
    }

    /// True when any held filter matches `topic`.
    pub fn matches_any(&self, topic: &str) -> bool {
        let mut any = false;
        self.for_each_match(topic, |_, _| any = true);
        any
    }

    /// Every held filter and its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        let mut stack = vec![&self.root];
        let mut out = Vec::with_capacity(self.len);
        while let Some(node) = stack.pop() {
            for (filter, v) in node.value.iter().chain(node.hash.iter()) {
                out.push((filter.as_str(), v));
            }
            stack.extend(node.levels.values());
            stack.extend(node.plus.as_deref());
        }
        out.into_iter()
    }
}

fn remove_at<V>(node: &mut Node<V>, levels: &[&str]) -> Option<V> {
    let removed = match levels {
        [] => node.value.take().map(|(_, v)| v),
        ["#"] => node.hash.take().map(|(_, v)| v),
        ["+", rest @ ..] => {
            let child = node.plus.as_deref_mut()?;
            let removed = remove_at(child, rest);
            if child.is_empty() {
                node.plus = None;
            }
            removed
        }
        [level, rest @ ..] => {
            let child = node.levels.get_mut(*level)?;
            let removed = remove_at(child, rest);
            if child.is_empty() {
                node.levels.remove(*level);
            }
            removed
        }
    };
    removed
}

fn visit<'a, V>(
    node: &'a Node<V>,
    levels: &[&str],
    depth: usize,
    dollar: bool,
    f: &mut impl FnMut(&'a str, &'a V),
) {
    let wildcards_allowed = !(depth == 0 && dollar);
    // `a/#` matches `a` itself and everything below it.
    if wildcards_allowed {
        if let Some((filter, v)) = &node.hash {
            f(filter, v);
        }
    }
    let Some((level, rest)) = levels.split_first() else {
        if let Some((filter, v)) = &node.value {
            f(filter, v);
        }
        return;
    };
    if let Some(child) = node.levels.get(*level) {
        visit(child, rest, depth + 1, dollar, f);
    }
    if wildcards_allowed {
        if let Some(child) = node.plus.as_deref() {
            visit(child, rest, depth + 1, dollar, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic;
    use proptest::prelude::*;

    fn matched(trie: &FilterTrie<u32>, topic: &str) -> Vec<String> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |f, _| out.push(f.to_string()));
        out.sort();
        out
    }

    #[test]
    fn levels_plus_hash_and_dollar() {
        let mut trie = FilterTrie::default();
        for (i, f) in ["a/b", "a/+", "a/#", "#", "+/b", "$SYS/#", "+", "a/b/c"]
            .into_iter()
            .enumerate()
        {
            *trie.entry(f, || 0) = i as u32;
        }
        assert_eq!(trie.len(), 8);
        assert_eq!(matched(&trie, "a/b"), ["#", "+/b", "a/#", "a/+", "a/b"]);
        assert_eq!(matched(&trie, "a"), ["#", "+", "a/#"]);
        assert_eq!(matched(&trie, "$SYS/x"), ["$SYS/#"]);
        assert_eq!(matched(&trie, "a/b/c"), ["#", "a/#", "a/b/c"]);
        assert_eq!(trie.remove("a/#"), Some(2));
        assert_eq!(trie.remove("a/#"), None);
        assert_eq!(matched(&trie, "a/b/c"), ["#", "a/b/c"]);
        assert_eq!(trie.get_mut("+/b").copied(), Some(4));
        for f in ["a/b", "a/+", "#", "+/b", "$SYS/#", "+", "a/b/c"] {
            assert!(trie.remove(f).is_some(), "{f}");
        }
        assert!(trie.is_empty() && trie.root.is_empty());
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("".to_string()),
            Just("$x".to_string()),
        ]
    }

    fn filter() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(prop_oneof![3 => level(), 1 => Just("+".to_string())], 1..4),
            any::<bool>(),
        )
            .prop_map(|(mut levels, hash)| {
                if hash {
                    levels.push("#".to_string());
                }
                levels.join("/")
            })
    }

    proptest! {
        /// The trie finds exactly the filters `topic::matches` accepts.
        #[test]
        fn agrees_with_matching_each_filter(
            filters in proptest::collection::btree_set(filter(), 0..20),
            removed in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
            topics in proptest::collection::vec(
                proptest::collection::vec(level(), 1..5).prop_map(|l| l.join("/")),
                1..10,
            ),
        ) {
            let mut held: Vec<String> = filters.into_iter().collect();
            let mut trie = FilterTrie::default();
            for f in &held {
                trie.entry(f, || 0u32);
            }
            for i in removed {
                if held.is_empty() {
                    break;
                }
                let f = held.remove(i.index(held.len()));
                prop_assert!(trie.remove(&f).is_some());
            }
            prop_assert_eq!(trie.len(), held.len());
            for t in topics {
                let mut want: Vec<String> =
                    held.iter().filter(|f| topic::matches(f, &t)).cloned().collect();
                want.sort();
                prop_assert_eq!(matched(&trie, &t), want, "topic {}", t);
            }
        }
    }
}
