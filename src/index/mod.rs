//! The branching index: git-like commits over a whole warehouse, and the rules for merging them.
//! Pure logic, no IO: the service layer fetches commits and table metadata and hands them in.
//!
//! - [`graph`]: merge bases and the commits between two points of the commit graph, as sans-IO
//!   walkers (they ask for commits one at a time).
//! - [`merge`]: what a merge does with each table, view and namespace given its content at the
//!   merge base, on the source and on the target, and the merge strategy.
//! - [`table_merge`]: when a table changed on both sides, whether the two changes compose at the
//!   Iceberg level (appended snapshots rebased onto the target, property and schema changes that
//!   touch different keys and fields), and the plan to apply if they do.
//! - [`rebase`]: replaying an appended snapshot onto another parent (its new manifest list).

pub mod graph;
pub mod merge;
pub mod rebase;
pub mod table_merge;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::CommitId;

/// What a commit can change: a namespace, a table or a view, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ContentKey {
    pub kind: ContentKind,
    /// Namespace levels, then the table's or view's name (for namespaces: the levels only).
    pub path: Vec<String>,
}

pub use crate::model::ContentKind;

/// One commit of a warehouse's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub id: CommitId,
    /// None for the first commit of a warehouse, two for a merge.
    pub parents: Vec<CommitId>,
    /// One more than the highest parent's (0 for a root).
    pub generation: u64,
    pub message: String,
    pub author: String,
    pub time: DateTime<Utc>,
    /// What the commit changed.
    pub changes: Vec<ContentKey>,
}

/// The version of one piece of content at some commit, as far as merging needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentVersion {
    /// Stays the same across the content's versions (a table's UUID); a dropped and recreated
    /// table has a new one.
    pub content_id: uuid::Uuid,
    /// Identifies the version: a table's or view's metadata location, a namespace's properties
    /// version.
    pub version: String,
}
