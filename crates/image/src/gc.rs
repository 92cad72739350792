//! Mark-and-sweep garbage collection over images → manifests → configs and
//! layers, and images → snapshot chains, from the roots: every image row,
//! every lease, and every active snapshot. What is not marked is swept.
//!
//! The marking and the sweep plan are pure functions (unit-tested here);
//! [`crate::ImageStore::gc`] gathers the graph and performs the plan.

use std::collections::{HashMap, HashSet};

use crate::digest::Digest;

/// A node of the reference graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    Image(String),
    Blob(Digest),
    Snapshot(String),
}

/// Everything reachable from `roots` along `edges`.
pub fn mark(
    edges: &HashMap<Node, Vec<Node>>,
    roots: impl IntoIterator<Item = Node>,
) -> HashSet<Node> {
    let mut marked = HashSet::new();
    let mut stack: Vec<Node> = roots.into_iter().collect();
    while let Some(n) = stack.pop() {
        if marked.insert(n.clone())
            && let Some(next) = edges.get(&n)
        {
            stack.extend(next.iter().filter(|m| !marked.contains(*m)).cloned());
        }
    }
    marked
}

/// A snapshot as the sweep sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNode {
    pub key: String,
    pub parent: Option<String>,
}

/// What to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepPlan {
    pub blobs: Vec<Digest>,
    /// Children before parents, so each removal finds no children left.
    pub snapshots: Vec<String>,
}

/// Plans the sweep of everything not in `marked`. Snapshot removal is
/// ordered leaves first.
pub fn plan(blobs: &[Digest], snapshots: &[SnapshotNode], marked: &HashSet<Node>) -> SweepPlan {
    let blobs = blobs
        .iter()
        .filter(|d| !marked.contains(&Node::Blob((*d).clone())))
        .cloned()
        .collect();
    let parent: HashMap<&str, Option<&str>> = snapshots
        .iter()
        .map(|s| (s.key.as_str(), s.parent.as_deref()))
        .collect();
    let depth = |key: &str| {
        let mut d = 0usize;
        let mut cur = parent.get(key).copied().flatten();
        while let Some(p) = cur {
            d += 1;
            cur = parent.get(p).copied().flatten();
        }
        d
    };
    let mut doomed: Vec<(usize, String)> = snapshots
        .iter()
        .filter(|s| !marked.contains(&Node::Snapshot(s.key.clone())))
        .map(|s| (depth(&s.key), s.key.clone()))
        .collect();
    doomed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    SweepPlan {
        blobs,
        snapshots: doomed.into_iter().map(|(_, k)| k).collect(),
    }
}

/// What a collection freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: Vec<Digest>,
    pub snapshots_removed: Vec<String>,
    /// Bytes of blobs removed.
    pub bytes_freed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::sha256_of(s.as_bytes())
    }

    #[test]
    fn marks_through_images_and_snapshot_parents() {
        let mut edges = HashMap::new();
        edges.insert(
            Node::Image("i1".into()),
            vec![
                Node::Blob(d("m1")),
                Node::Blob(d("c1")),
                Node::Blob(d("l1")),
                Node::Snapshot("s2".into()),
            ],
        );
        edges.insert(
            Node::Snapshot("s2".into()),
            vec![Node::Snapshot("s1".into())],
        );
        edges.insert(
            Node::Snapshot("s3".into()),
            vec![Node::Snapshot("s2".into())],
        );
        let marked = mark(&edges, [Node::Image("i1".into())]);
        assert!(marked.contains(&Node::Snapshot("s1".into())));
        assert!(marked.contains(&Node::Blob(d("l1"))));
        assert!(!marked.contains(&Node::Snapshot("s3".into())));
        let snaps = vec![
            SnapshotNode {
                key: "s1".into(),
                parent: None,
            },
            SnapshotNode {
                key: "s2".into(),
                parent: Some("s1".into()),
            },
            SnapshotNode {
                key: "s3".into(),
                parent: Some("s2".into()),
            },
            SnapshotNode {
                key: "s4".into(),
                parent: Some("s3".into()),
            },
        ];
        let p = plan(&[d("m1"), d("l1"), d("orphan")], &snaps, &marked);
        assert_eq!(p.blobs, vec![d("orphan")]);
        assert_eq!(p.snapshots, ["s4", "s3"], "leaves first");
    }

    #[test]
    fn shared_layers_survive_removing_one_image() {
        let mut edges = HashMap::new();
        edges.insert(
            Node::Image("a".into()),
            vec![Node::Blob(d("shared")), Node::Blob(d("only-a"))],
        );
        edges.insert(Node::Image("b".into()), vec![Node::Blob(d("shared"))]);
        // Image a was removed: only b is a root.
        let marked = mark(&edges, [Node::Image("b".into())]);
        let p = plan(&[d("shared"), d("only-a")], &[], &marked);
        assert_eq!(p.blobs, vec![d("only-a")]);
    }
}
