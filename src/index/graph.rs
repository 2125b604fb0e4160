//! The commit graph: merge bases and the commits between two points, as sans-IO walkers.
//!
//! A walker never reads anything itself: it says which commit it wants next
//! ([`Walk::wanted`]), the caller fetches it from wherever commits live and hands it over
//! ([`Walk::feed`]), until the walker is done. Commits are visited from the highest generation
//! down (a commit's generation is one more than its highest parent's), so when a commit is
//! visited every path to it from the starting points has been seen and its marks are final —
//! the property git's commit-graph walks rely on.

use std::collections::{BTreeSet, HashMap};

use super::Commit;
use crate::model::CommitId;

const FROM_A: u8 = 1;
const FROM_B: u8 = 2;

/// What a walker needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Fetch this commit and [`Walk::feed`] it.
    Fetch(CommitId),
    /// The walk is over.
    Done,
}

/// A paint-down walk from two starting commits: every commit gets the marks of the starting points
/// it is reachable from.
#[derive(Debug)]
pub struct Walk {
    marks: HashMap<CommitId, u8>,
    /// Commits fetched and not yet visited, by generation; the highest is visited first.
    queue: BTreeSet<(u64, CommitId)>,
    /// Commits fetched so far.
    fetched: HashMap<CommitId, Commit>,
    /// Commits discovered but not fetched yet: they are fetched before the next visit, so that
    /// visits keep to generation order.
    unknown: Vec<CommitId>,
    /// Commits reachable from both, in visiting order (highest generation first).
    common: Vec<CommitId>,
    /// Commits reachable from the first starting point only, in visiting order.
    only_a: Vec<Commit>,
    stop_at_common: bool,
    visited: usize,
}

impl Walk {
    fn new(a: CommitId, b: CommitId, stop_at_common: bool) -> Walk {
        let mut marks = HashMap::new();
        *marks.entry(a).or_insert(0) |= FROM_A;
        *marks.entry(b).or_insert(0) |= FROM_B;
        let mut unknown = vec![a];
        if b != a {
            unknown.push(b);
        }
        Walk {
            marks,
            queue: BTreeSet::new(),
            fetched: HashMap::new(),
            unknown,
            common: Vec::new(),
            only_a: Vec::new(),
            stop_at_common,
            visited: 0,
        }
    }

    /// A walk that finds the merge base of `a` and `b`.
    pub fn merge_base(a: CommitId, b: CommitId) -> Walk {
        Walk::new(a, b, true)
    }

    /// A walk that collects the commits reachable from `head` but not from `base` (what `head`
    /// has that `base` lacks), newest first.
    pub fn commits_since(head: CommitId, base: CommitId) -> Walk {
        Walk::new(head, base, false)
    }

    /// Whether nothing left to visit can change the answer.
    fn finished(&self) -> bool {
        if self.queue.is_empty() {
            return true;
        }
        // Once every queued commit is reachable from both sides, so is everything below them.
        let all_common = self
            .queue
            .iter()
            .all(|(_, id)| self.marks.get(id).copied() == Some(FROM_A | FROM_B));
        all_common && (!self.stop_at_common || !self.common.is_empty())
    }

    /// Visits what it can and says what it needs next: a commit to fetch, or `Done`.
    pub fn wanted(&mut self) -> Step {
        loop {
            if let Some(id) = self.unknown.first() {
                return Step::Fetch(*id);
            }
            if self.finished() {
                return Step::Done;
            }
            let Some(&(generation, id)) = self.queue.iter().next_back() else {
                return Step::Done;
            };
            self.queue.remove(&(generation, id));
            let commit = self.fetched[&id].clone();
            self.visit(commit);
        }
    }

    /// Hands over a commit [`Walk::wanted`] asked for.
    pub fn feed(&mut self, commit: Commit) {
        if let Some(pos) = self.unknown.iter().position(|id| *id == commit.id) {
            self.unknown.remove(pos);
            self.queue.insert((commit.generation, commit.id));
            self.fetched.insert(commit.id, commit);
        }
    }

    fn visit(&mut self, commit: Commit) {
        self.visited += 1;
        let mark = self.marks.get(&commit.id).copied().unwrap_or(0);
        if mark == FROM_A | FROM_B {
            self.common.push(commit.id);
        } else if mark == FROM_A {
            self.only_a.push(commit.clone());
        }
        // Parents have lower generations than anything visited so far, so none of them has been
        // visited yet and the marks given here are complete when they are.
        for parent in &commit.parents {
            let entry = self.marks.entry(*parent).or_insert(0);
            let discovered = *entry == 0;
            *entry |= mark;
            if discovered {
                self.unknown.push(*parent);
            }
        }
    }

    /// How many commits were visited.
    pub fn visited(&self) -> usize {
        self.visited
    }

    /// The merge base: the common ancestor with the highest generation (`None` when the two
    /// histories share nothing).
    pub fn base(&self) -> Option<CommitId> {
        self.common.first().copied()
    }

    /// The commits reachable from the first starting point only, newest first.
    pub fn only_first(&self) -> &[Commit] {
        &self.only_a
    }
}

/// Runs a walk to its end over a lookup function (for callers that have the commits at hand).
pub fn run(walk: &mut Walk, mut lookup: impl FnMut(CommitId) -> Option<Commit>) -> bool {
    loop {
        match walk.wanted() {
            Step::Done => return true,
            Step::Fetch(id) => match lookup(id) {
                Some(commit) => walk.feed(commit),
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A commit graph built by hand: `(name, parents)` in creation order.
    struct Graph {
        ids: HashMap<&'static str, CommitId>,
        commits: HashMap<CommitId, Commit>,
    }

    impl Graph {
        fn new(spec: &[(&'static str, &[&'static str])]) -> Graph {
            let mut graph = Graph {
                ids: HashMap::new(),
                commits: HashMap::new(),
            };
            for (i, (name, parents)) in spec.iter().enumerate() {
                let id = CommitId(uuid::Uuid::from_u128(i as u128 + 1));
                let parents: Vec<CommitId> = parents.iter().map(|p| graph.ids[p]).collect();
                let generation = parents
                    .iter()
                    .map(|p| graph.commits[p].generation + 1)
                    .max()
                    .unwrap_or(0);
                graph.ids.insert(name, id);
                graph.commits.insert(
                    id,
                    Commit {
                        id,
                        parents,
                        generation,
                        message: name.to_string(),
                        author: "test".into(),
                        time: chrono::Utc::now(),
                        changes: vec![],
                    },
                );
            }
            graph
        }

        fn merge_base(&self, a: &str, b: &str) -> Option<&str> {
            let mut walk = Walk::merge_base(self.ids[a], self.ids[b]);
            assert!(run(&mut walk, |id| self.commits.get(&id).cloned()));
            walk.base().map(|id| self.name(id))
        }

        fn since(&self, head: &str, base: &str) -> Vec<&str> {
            let mut walk = Walk::commits_since(self.ids[head], self.ids[base]);
            assert!(run(&mut walk, |id| self.commits.get(&id).cloned()));
            walk.only_first().iter().map(|c| self.name(c.id)).collect()
        }

        fn name(&self, id: CommitId) -> &str {
            self.ids
                .iter()
                .find(|(_, v)| **v == id)
                .map(|(k, _)| *k)
                .unwrap()
        }
    }

    #[test]
    fn merge_base_of_a_fork() {
        // root - a - b - c   (main)
        //         \
        //          d - e     (dev)
        let g = Graph::new(&[
            ("root", &[]),
            ("a", &["root"]),
            ("b", &["a"]),
            ("c", &["b"]),
            ("d", &["a"]),
            ("e", &["d"]),
        ]);
        assert_eq!(g.merge_base("c", "e"), Some("a"));
        assert_eq!(g.merge_base("e", "c"), Some("a"));
        assert_eq!(g.merge_base("c", "b"), Some("b"));
        assert_eq!(g.merge_base("c", "c"), Some("c"));
        assert_eq!(g.since("e", "c"), vec!["e", "d"]);
        assert_eq!(g.since("c", "e"), vec!["c", "b"]);
        assert!(g.since("b", "c").is_empty());
    }

    #[test]
    fn merge_base_after_a_merge_is_the_merged_commit() {
        // main: root - a - m(a, d) - f ; dev: root - a? no: dev forks at root: root - d - g
        let g = Graph::new(&[
            ("root", &[]),
            ("a", &["root"]),
            ("d", &["root"]),
            ("m", &["a", "d"]),
            ("f", &["m"]),
            ("g", &["d"]),
        ]);
        // After dev (at d) was merged into main, the next merge of dev starts from d.
        assert_eq!(g.merge_base("g", "f"), Some("d"));
        assert_eq!(g.since("g", "f"), vec!["g"]);
        assert_eq!(g.since("f", "g"), vec!["f", "m", "a"]);
    }

    #[test]
    fn unrelated_histories_have_no_base_and_the_walk_stops_early() {
        let g = Graph::new(&[("x", &[]), ("y", &[]), ("x1", &["x"]), ("y1", &["y"])]);
        assert_eq!(g.merge_base("x1", "y1"), None);
        // A long shared history below the fork is not walked.
        let mut spec: Vec<(&'static str, Vec<&'static str>)> = vec![("c0", vec![])];
        let names: Vec<&'static str> = (1..200)
            .map(|i| &*Box::leak(format!("c{i}").into_boxed_str()))
            .collect();
        let mut prev = "c0";
        for name in &names {
            spec.push((name, vec![prev]));
            prev = name;
        }
        spec.push(("left", vec![prev]));
        spec.push(("right", vec![prev]));
        let spec: Vec<(&'static str, &[&'static str])> = spec
            .iter()
            .map(|(n, p)| (*n, &*Box::leak(p.clone().into_boxed_slice())))
            .collect();
        let g = Graph::new(&spec);
        let mut walk = Walk::merge_base(g.ids["left"], g.ids["right"]);
        assert!(run(&mut walk, |id| g.commits.get(&id).cloned()));
        assert_eq!(walk.base(), Some(g.ids["c199"]));
        assert!(walk.visited() <= 3, "visited {}", walk.visited());
    }
}
