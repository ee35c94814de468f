//! The fake's node store: absolute path → value, permissions and a
//! generation number that changes on every modification of the node (its
//! value, permissions or list of children), which is how transactions
//! notice conflicts.

use crate::perms::Perm;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use hypercall::DomId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub value: Vec<u8>,
    pub perms: Vec<Perm>,
    pub gen: u64,
}

/// All nodes, keyed by absolute path. Cloned whole for a transaction's
/// private view (cheap enough for tests).
#[derive(Clone, Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

/// The parent of an absolute path (`None` for the root).
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// Whether `path` is `ancestor` or below it.
pub fn is_at_or_below(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

impl Tree {
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.nodes.get_mut(path)
    }

    pub fn insert(&mut self, path: String, node: Node) {
        self.nodes.insert(path, node);
    }

    pub fn remove(&mut self, path: &str) -> Option<Node> {
        self.nodes.remove(path)
    }

    /// Names of the direct children of `path`, sorted.
    pub fn children(&self, path: &str) -> Vec<String> {
        self.below(path)
            .into_iter()
            .filter_map(|p| {
                let rest = if path == "/" { &p[1..] } else { &p[path.len() + 1..] };
                (!rest.contains('/')).then(|| String::from(rest))
            })
            .collect()
    }

    /// Every path strictly below `path`.
    pub fn below(&self, path: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| p.as_str() != path && is_at_or_below(p, path))
            .cloned()
            .collect()
    }

    /// How many nodes `dom` owns (for the node quota).
    pub fn owned_by(&self, dom: DomId) -> usize {
        self.nodes.values().filter(|n| n.perms.first().is_some_and(|p| p.dom == dom)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn parents_and_ancestry() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(is_at_or_below("/a", "/a"));
        assert!(is_at_or_below("/a", "/"));
        assert!(!is_at_or_below("/ab", "/a"));
        assert!(!is_at_or_below("/a", "/a/b"));
    }

    #[test]
    fn children_are_direct_only() {
        let mut t = Tree::default();
        for p in ["/", "/a", "/a/b", "/a/b/c", "/a/d", "/ab"] {
            t.insert(p.into(), Node { value: vec![], perms: vec![], gen: 0 });
        }
        assert_eq!(t.children("/"), vec!["a", "ab"]);
        assert_eq!(t.children("/a"), vec!["b", "d"]);
        assert_eq!(t.below("/a"), vec!["/a/b", "/a/b/c", "/a/d"]);
    }
}
