//! The branching index's use cases (docs/branching.md): branches and tags, the commit log, diffs,
//! merges and resets. The rules are `index`'s (pure logic); this module reads the three sides of a
//! merge, writes what a merge of two changed tables needs (replayed manifest lists, a metadata
//! file), and hands the result to the store as one commit.

use std::collections::BTreeSet;

use super::{RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, ErrorKind, Result};
use crate::index::graph::{Step, Walk};
use crate::index::merge::Strategy;
use crate::index::{ContentKey, ContentKind, ContentVersion};
use crate::model::{
    Commit, CommitId, ForkPoint, MAIN_BRANCH, NamespaceIdent, Properties, Ref, RefKind,
    RefSelector, Tabular, TabularIdent, TabularKind, WarehouseId, now,
};

/// The longest branch or tag name, in bytes.
const MAX_REF_NAME: usize = 128;
/// Merges recomputed when the target moved meanwhile.
pub(super) const MERGE_ATTEMPTS: usize = 5;

/// Branch and tag names: letters, digits, `_`, `-` and `.`, starting with a letter, digit or `_`,
/// no `..`, at most 128 bytes (like lakeFS's). They travel in catalog prefixes and URLs as they are.
pub fn validate_ref_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_REF_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.contains("..")
        && name.parse::<CommitId>().is_err();
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "invalid branch or tag name {name:?}: use letters, digits, '_', '-' and '.', start \
             with a letter, digit or '_', no '..', at most {MAX_REF_NAME} bytes, and not a commit id"
        )))
    }
}

/// One page of a ref's history.
#[derive(Debug, Clone)]
pub struct CommitPage {
    pub commits: Vec<Commit>,
    pub next_page_token: Option<String>,
}

/// A difference between two points, or what a merge did, for one namespace, table or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentChange {
    pub kind: ContentKind,
    pub namespace: Vec<String>,
    /// The table's or view's name (absent for a namespace).
    pub name: Option<String>,
    /// Diffs: `added`, `removed` or `changed`. Merges: `taken` (the source's version),
    /// `merged` (both sides' changes composed) or `removed`.
    pub change: &'static str,
    /// Metadata locations (tables and views) on each side.
    pub from_location: Option<String>,
    pub to_location: Option<String>,
}

/// Why one key could not be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeConflict {
    pub kind: ContentKind,
    pub namespace: Vec<String>,
    pub name: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct MergeOutcome {
    /// The merge commit; `None` when the target already had everything.
    pub commit_id: Option<CommitId>,
    /// The target had no changes of its own since the merge base: the source's changes were
    /// taken as they are.
    pub fast_forward: bool,
    pub changes: Vec<ContentChange>,
}

/// A point a merge or diff reads: a ref to read through, and the commit it is at.
pub(super) struct Point {
    pub(super) read: Ref,
    pub(super) commit: CommitId,
    pub(super) generation: i64,
}

/// The content of one key on one side.
#[derive(Debug, Clone)]
pub(super) enum Content {
    Namespace(Properties),
    Tabular(Box<Tabular>),
}

impl Content {
    pub(super) fn version(&self) -> ContentVersion {
        match self {
            Content::Namespace(properties) => ContentVersion {
                content_id: uuid::Uuid::nil(),
                version: serde_json::to_string(properties).unwrap_or_default(),
            },
            Content::Tabular(t) => ContentVersion {
                content_id: t.uuid,
                version: t.metadata_location.clone(),
            },
        }
    }

    pub(super) fn location(&self) -> Option<String> {
        match self {
            Content::Namespace(_) => None,
            Content::Tabular(t) => Some(t.metadata_location.clone()),
        }
    }
}

pub(super) fn key_parts(key: &ContentKey) -> (Vec<String>, Option<String>) {
    match key.kind {
        ContentKind::Namespace => (key.path.clone(), None),
        _ => {
            let mut namespace = key.path.clone();
            let name = namespace.pop();
            (namespace, name)
        }
    }
}

fn to_index_commit(commit: Commit) -> crate::index::Commit {
    crate::index::Commit {
        id: commit.id,
        parents: commit.parents,
        generation: commit.generation.max(0) as u64,
        message: commit.message,
        author: commit.author,
        time: commit.created_at,
        changes: commit
            .changes
            .into_iter()
            .map(|c| {
                let mut path = c.namespace;
                let kind = match c.kind.as_str() {
                    "namespace" => ContentKind::Namespace,
                    "view" => ContentKind::View,
                    _ => ContentKind::Table,
                };
                if let Some(name) = c.name {
                    path.push(name);
                }
                ContentKey { kind, path }
            })
            .collect(),
    }
}

/// The longest merge message taken.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;

impl Services {
    /// Branches and tags of a warehouse, by name.
    pub async fn list_refs(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<Vec<Ref>> {
        self.authorize(
            ctx,
            Action::WarehouseReadHistory,
            Resource::Warehouse(warehouse),
        )
        .await?;
        self.main_branch(warehouse).await?;
        self.store.refs.list_refs(warehouse).await
    }

    /// One branch or tag.
    pub async fn get_ref(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        name: &str,
    ) -> Result<Ref> {
        self.authorize(
            ctx,
            Action::WarehouseReadHistory,
            Resource::Warehouse(warehouse),
        )
        .await?;
        self.store
            .warehouses
            .get_ref(warehouse, name)
            .await?
            .filter(|r| !r.is_hidden())
            .ok_or_else(|| {
                Error::not_found(Entity::Ref, format!("no branch or tag named {name:?}"))
            })
    }

    /// The branches of a warehouse that change only by merge.
    pub async fn protected_branches(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<Vec<String>> {
        self.authorize(ctx, Action::WarehouseRead, Resource::Warehouse(warehouse))
            .await?;
        self.load_warehouse(warehouse).await?;
        self.store.refs.protected_branches(warehouse).await
    }

    /// Names the branches of a warehouse that change only by merge (replacing the list): catalog
    /// writes to them are refused, they cannot be reset or deleted, and merging into them needs
    /// `merge_protected` on the warehouse. A name may be protected before its branch exists.
    pub async fn set_protected_branches(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        names: Vec<String>,
    ) -> Result<Vec<String>> {
        // validate
        if names.len() > 100 {
            return Err(Error::bad_request("at most 100 protected branches"));
        }
        for name in &names {
            validate_ref_name(name)?;
        }
        let mut names = names;
        names.sort();
        names.dedup();
        // authorize
        self.authorize(
            ctx,
            Action::WarehouseProtectBranches,
            Resource::Warehouse(warehouse),
        )
        .await?;
        // act
        self.load_warehouse(warehouse).await?;
        let events = self.change_event(
            ctx,
            "warehouse.protected-branches-set",
            format!("warehouse/{warehouse}"),
            serde_json::json!({ "branches": names }),
        );
        self.store
            .refs
            .set_protected_branches(warehouse, &names, &events)
            .await?;
        self.forget_protected(warehouse);
        Ok(names)
    }

    /// Creates a branch or tag at `from` (a branch, tag or commit id; `main` when unset). A
    /// branch costs one insert whatever the warehouse holds.
    pub async fn create_ref(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        name: &str,
        kind: RefKind,
        from: &RefSelector,
    ) -> Result<Ref> {
        validate_ref_name(name)?;
        self.authorize(
            ctx,
            Action::WarehouseManageRefs,
            Resource::Warehouse(warehouse),
        )
        .await?;
        let point = self.fork_point(warehouse, from).await?;
        let events = self.change_event(
            ctx,
            &format!("{}.created", kind.as_str()),
            format!("warehouse/{warehouse}/{}/{name}", kind.as_str()),
            serde_json::json!({ "ref": name, "from-commit": point.commit.0 }),
        );
        let made = self
            .store
            .refs
            .create_ref(warehouse, name, kind, &point, now(), &events)
            .await?;
        self.refs_made(warehouse);
        Ok(made)
    }

    /// Deletes a tag, or a branch (its commits stay readable by id). `main` stays.
    pub async fn delete_ref(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        name: &str,
        kind: RefKind,
    ) -> Result<()> {
        self.authorize(
            ctx,
            Action::WarehouseManageRefs,
            Resource::Warehouse(warehouse),
        )
        .await?;
        if name == MAIN_BRANCH {
            return Err(Error::conflict("the main branch cannot be deleted"));
        }
        if kind == RefKind::Branch && self.is_protected(warehouse, name).await? {
            return Err(Error::forbidden(format!(
                "branch {name:?} is protected: unprotect it before deleting it"
            )));
        }
        self.main_branch(warehouse).await?;
        let events = self.change_event(
            ctx,
            &format!("{}.deleted", kind.as_str()),
            format!("warehouse/{warehouse}/{}/{name}", kind.as_str()),
            serde_json::json!({ "ref": name }),
        );
        self.store
            .refs
            .delete_ref(warehouse, name, kind, &events)
            .await
    }

    /// Points a branch (not `main`) at an earlier commit, or at any branch, tag or commit: O(1),
    /// and the commits it leaves stay readable by id.
    pub async fn reset_branch(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        name: &str,
        to: &RefSelector,
    ) -> Result<Ref> {
        self.authorize(
            ctx,
            Action::WarehouseManageRefs,
            Resource::Warehouse(warehouse),
        )
        .await?;
        if name == MAIN_BRANCH {
            return Err(Error::conflict(
                "main cannot be reset (it serves every client without a branch); merge or \
                 revert the tables instead",
            ));
        }
        if self.is_protected(warehouse, name).await? {
            return Err(Error::forbidden(format!(
                "branch {name:?} is protected: it changes only by merge"
            )));
        }
        let point = self.fork_point(warehouse, to).await?;
        let events = self.change_event(
            ctx,
            "branch.reset",
            format!("warehouse/{warehouse}/branch/{name}"),
            serde_json::json!({ "ref": name, "to-commit": point.commit.0 }),
        );
        self.store
            .refs
            .reset_branch(warehouse, name, &point, now(), &events)
            .await
    }

    /// A ref's first-parent history, newest first.
    pub async fn list_commits(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        reference: &RefSelector,
        page_token: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<CommitPage> {
        self.authorize(
            ctx,
            Action::WarehouseReadHistory,
            Resource::Warehouse(warehouse),
        )
        .await?;
        let limit = page_size.unwrap_or(100).clamp(1, 1000) as usize;
        let start = match page_token.filter(|t| !t.is_empty()) {
            Some(token) => {
                let bad = || Error::bad_request(format!("invalid page token {token:?}"));
                let (line, seq) = token.split_once(':').ok_or_else(bad)?;
                let line = line.parse().map_err(|_| bad())?;
                let seq = seq.parse().map_err(|_| bad())?;
                // The token must name a line of this warehouse.
                let known = self
                    .store
                    .refs
                    .list_commits(line, seq, 1)
                    .await?
                    .0
                    .first()
                    .is_none_or(|c| c.warehouse_id == warehouse);
                if !known {
                    return Err(bad());
                }
                (line, seq)
            }
            None => {
                let point = self.fork_point(warehouse, reference).await?;
                (point.line, point.seq)
            }
        };
        let (commits, next) = self
            .store
            .refs
            .list_commits(start.0, start.1, limit)
            .await?;
        Ok(CommitPage {
            commits,
            next_page_token: next.map(|(line, seq)| format!("{line}:{seq}")),
        })
    }

    pub async fn get_commit(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        id: CommitId,
    ) -> Result<Commit> {
        self.authorize(
            ctx,
            Action::WarehouseReadHistory,
            Resource::Warehouse(warehouse),
        )
        .await?;
        self.store
            .refs
            .get_commit(warehouse, id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Ref, format!("commit {id} does not exist")))
    }

    /// The namespaces, tables and views that differ between two points (added, removed or
    /// changed going from `from` to `to`). Costs the commits since their merge base, not the
    /// warehouse's size.
    pub async fn diff(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        from: &RefSelector,
        to: &RefSelector,
    ) -> Result<Vec<ContentChange>> {
        self.authorize(
            ctx,
            Action::WarehouseReadHistory,
            Resource::Warehouse(warehouse),
        )
        .await?;
        let from = self.point(warehouse, from).await?;
        let to = self.point(warehouse, to).await?;
        let base = self.merge_base(warehouse, from.commit, to.commit).await?;
        let mut keys = self.changed_since(warehouse, from.commit, base).await?;
        keys.extend(self.changed_since(warehouse, to.commit, base).await?);
        let mut changes = Vec::new();
        for key in keys {
            let a = self.content_at(&from.read, &key).await?;
            let b = self.content_at(&to.read, &key).await?;
            let change = match (&a, &b) {
                (None, None) => continue,
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                (Some(x), Some(y)) if x.version() == y.version() => continue,
                _ => "changed",
            };
            let (namespace, name) = key_parts(&key);
            changes.push(ContentChange {
                kind: key.kind,
                namespace,
                name,
                change,
                from_location: a.as_ref().and_then(Content::location),
                to_location: b.as_ref().and_then(Content::location),
            });
        }
        Ok(changes)
    }

    /// Merges `source` (a branch, tag or commit) into branch `target` as one commit with two
    /// parents, deciding each namespace, table and view from the merge base (see
    /// `index::merge`). `Ok(Err(conflicts))` names every key that does not merge, having changed
    /// nothing.
    pub async fn merge(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        source: &RefSelector,
        target: &str,
        message: Option<String>,
        strategy: Strategy,
    ) -> Result<std::result::Result<MergeOutcome, Vec<MergeConflict>>> {
        // A message is free text (lines included), but no NUL and not unbounded: it is stored
        // with the commit and shown in every log.
        if let Some(m) = &message
            && (m.contains('\0') || m.len() > MAX_MESSAGE_BYTES)
        {
            return Err(Error::bad_request(format!(
                "a merge message is at most {MAX_MESSAGE_BYTES} bytes, without NUL characters"
            )));
        }
        let action = if self.is_protected(warehouse, target).await? {
            Action::WarehouseMergeProtected
        } else {
            Action::WarehouseMerge
        };
        self.authorize(ctx, action, Resource::Warehouse(warehouse))
            .await?;
        let meta = self
            .commit_meta(
                ctx,
                message.unwrap_or_else(|| format!("merge {source} into {target}")),
            )
            .announced_as(crate::model::CommitEvent::Merge {
                source: source.to_string(),
            });
        let mut last = None;
        for _ in 0..MERGE_ATTEMPTS {
            match self
                .try_merge(warehouse, source, target, &meta, strategy)
                .await
            {
                Err(e) if e.kind == ErrorKind::CommitConflict => last = Some(e),
                other => return other,
            }
        }
        Err(last
            .unwrap_or_else(|| Error::new(ErrorKind::CommitConflict, "merge kept losing races")))
    }

    /// Where a branch forks or a tag points when made from `name` (a branch, tag or commit id).
    pub(super) async fn fork_point(
        &self,
        warehouse: WarehouseId,
        selector: &RefSelector,
    ) -> Result<ForkPoint> {
        if let Some(commit) = selector.commit()
            && self
                .store
                .warehouses
                .get_ref(warehouse, selector.as_str())
                .await?
                .is_none()
        {
            let found = self
                .store
                .refs
                .get_commit(warehouse, commit)
                .await?
                .ok_or_else(|| {
                    Error::not_found(Entity::Ref, format!("commit {commit} does not exist"))
                })?;
            return Ok(ForkPoint {
                line: found.line,
                seq: found.seq,
                commit: found.id,
                generation: found.generation,
            });
        }
        // Read now, not from the cache of `main` branches: the head must be the current one.
        let found = self.named_ref(warehouse, selector).await?;
        let commit = found.head_commit.ok_or_else(|| {
            Error::internal("reading a ref", anyhow::anyhow!("a ref without a commit"))
        })?;
        Ok(match found.kind {
            RefKind::Branch => ForkPoint {
                line: found.id,
                seq: found.head_seq,
                commit,
                generation: found.head_generation,
            },
            RefKind::Tag => {
                let (line, seq) = found.parent.ok_or_else(|| {
                    Error::internal("reading a tag", anyhow::anyhow!("a tag without a point"))
                })?;
                ForkPoint {
                    line,
                    seq,
                    commit,
                    generation: found.head_generation,
                }
            }
        })
    }

    /// A point to read from that does not move: a tag, or a commit (a branch's current one).
    pub(super) async fn point(
        &self,
        warehouse: WarehouseId,
        selector: &RefSelector,
    ) -> Result<Point> {
        let fork = self.fork_point(warehouse, selector).await?;
        let read = self.commit_ref(warehouse, fork.commit).await?;
        Ok(Point {
            read,
            commit: fork.commit,
            generation: fork.generation,
        })
    }

    pub(super) async fn commit_ref(&self, warehouse: WarehouseId, commit: CommitId) -> Result<Ref> {
        let made = self
            .store
            .refs
            .commit_ref(warehouse, commit)
            .await?
            .ok_or_else(|| {
                Error::not_found(Entity::Ref, format!("commit {commit} does not exist"))
            })?;
        self.refs_made(warehouse);
        Ok(made)
    }

    pub(super) async fn walk(&self, warehouse: WarehouseId, mut walk: Walk) -> Result<Walk> {
        loop {
            match walk.wanted() {
                Step::Done => return Ok(walk),
                Step::Fetch(id) => {
                    let commit = self
                        .store
                        .refs
                        .get_commit(warehouse, id)
                        .await?
                        .ok_or_else(|| {
                            Error::internal(
                                "walking commits",
                                anyhow::anyhow!("commit {id} is missing"),
                            )
                        })?;
                    walk.feed(to_index_commit(commit));
                }
            }
        }
    }

    pub(super) async fn merge_base(
        &self,
        warehouse: WarehouseId,
        a: CommitId,
        b: CommitId,
    ) -> Result<CommitId> {
        let walk = self.walk(warehouse, Walk::merge_base(a, b)).await?;
        walk.base().ok_or_else(|| {
            Error::internal(
                "merging",
                anyhow::anyhow!("commits {a} and {b} share no ancestor"),
            )
        })
    }

    /// Every key the commits from `head` back to (not including) `base` changed.
    pub(super) async fn changed_since(
        &self,
        warehouse: WarehouseId,
        head: CommitId,
        base: CommitId,
    ) -> Result<BTreeSet<ContentKey>> {
        if head == base {
            return Ok(BTreeSet::new());
        }
        let walk = self
            .walk(warehouse, Walk::commits_since(head, base))
            .await?;
        Ok(walk
            .only_first()
            .iter()
            .flat_map(|c| c.changes.iter().cloned())
            .collect())
    }

    pub(super) async fn content_at(&self, at: &Ref, key: &ContentKey) -> Result<Option<Content>> {
        let (namespace, name) = key_parts(key);
        let namespace = NamespaceIdent::new(namespace)?;
        Ok(match name {
            None => self
                .store
                .namespaces
                .get_namespace(at.id, &namespace)
                .await?
                .map(|ns| Content::Namespace(ns.properties)),
            Some(name) => self
                .store
                .tabulars
                .get_tabular(at.id, &TabularIdent::new(namespace, name)?)
                .await?
                .map(|t| Content::Tabular(Box::new(t))),
        })
    }
}

// Only the kinds a `TabularKind` maps to.
impl From<TabularKind> for ContentKind {
    fn from(kind: TabularKind) -> Self {
        match kind {
            TabularKind::Table => ContentKind::Table,
            TabularKind::View => ContentKind::View,
        }
    }
}
