//! The commit engine: one attempt reads the tables' current state, checks the requirements,
//! applies the updates, writes new metadata files, and swaps every pointer in one store call;
//! a swap that lost a race is attempted again on the new state for a while (`Retries`), then
//! answered with 409. Commits to one table in this process take turns (`CommitLocks`).

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::{TableRequirement, TableUpdate};

use super::metadata::{
    apply_table_commit, check_locations, default_location, files_of_updates,
    next_metadata_location, parse_table_metadata, retired_metadata_files,
};
use super::table_json::table_json;
use super::{ParsedTable, Services};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    CommitMeta, Ref, Tabular, TabularId, TabularIdent, TabularKind, Warehouse, now,
};
use crate::storage::{Location, ObjectStorage};
use crate::store::TabularChange;

/// A table as a client sees it: where its metadata file is (none for a staged create) and the
/// metadata itself, as JSON.
#[derive(Debug, Clone)]
pub struct TableState {
    /// The table's base location.
    pub location: String,
    /// The table's UUID (the owner of its folder claims).
    pub uuid: uuid::Uuid,
    /// A table this request made with a UUID new to the warehouse: its one folder is its
    /// location, so access to it is decided without reading its claims.
    pub new_uuid: bool,
    pub metadata_location: Option<String>,
    pub metadata: bytes::Bytes,
}

/// One table's part of a commit.
#[derive(Debug, Clone)]
pub struct TableChange {
    pub ident: TabularIdent,
    pub requirements: Vec<TableRequirement>,
    pub updates: Vec<TableUpdate>,
}

/// A warehouse opened for catalog work: its record, branch, base location and store.
pub(crate) struct OpenWarehouse {
    pub warehouse: Warehouse,
    pub branch: Ref,
    pub base: Location,
    pub storage: Arc<dyn ObjectStorage>,
}

impl OpenWarehouse {
    /// The record of a new table or view of this warehouse's branch, at version 0.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_tabular(
        &self,
        id: TabularId,
        ident: TabularIdent,
        kind: TabularKind,
        uuid: uuid::Uuid,
        location: &Location,
        metadata_location: &Location,
        metadata: bytes::Bytes,
    ) -> Tabular {
        let at = now();
        Tabular {
            id,
            warehouse_id: self.warehouse.id,
            ref_id: self.branch.id,
            ident,
            kind,
            uuid,
            location: location.to_string(),
            metadata_location: metadata_location.to_string(),
            metadata,
            version: 0,
            created_at: at,
            updated_at: at,
        }
    }
}

/// How long a commit keeps re-applying itself after losing races before answering 409.
///
/// Bounded by time, not by a count: a writer that lost keeps a handicap against the one that won
/// (it re-reads from the database what the winner's next commit finds in memory), so against
/// another instance's steady stream of commits to the same table it may lose many times in a
/// row before it wins; a count small enough to answer quickly would turn that into 409s.
const COMMIT_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// What table commits did since the process started: landed, re-applied on the server after
/// losing a compare-and-swap, and given up on with 409 once the budget was spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitCounts {
    pub landed: u64,
    pub retried: u64,
    pub conflicted: u64,
}

/// Code run after a commit attempt's metadata files are written and before its pointers are
/// swapped, given the tables committed. A seam for tests (and fault drills): it can let another
/// writer win the swap, hold the commit there, or stand for a crash at that exact point.
pub type BeforeSwap = Arc<
    dyn Fn(Vec<TabularIdent>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// The counters behind [`CommitCounts`] and the [`BeforeSwap`] seam, shared by the use cases.
#[derive(Default)]
pub(super) struct CommitProbe {
    landed: std::sync::atomic::AtomicU64,
    retried: std::sync::atomic::AtomicU64,
    conflicted: std::sync::atomic::AtomicU64,
    before_swap: std::sync::RwLock<Option<BeforeSwap>>,
}

impl CommitProbe {
    pub(super) fn counts(&self) -> CommitCounts {
        use std::sync::atomic::Ordering::Relaxed;
        CommitCounts {
            landed: self.landed.load(Relaxed),
            retried: self.retried.load(Relaxed),
            conflicted: self.conflicted.load(Relaxed),
        }
    }

    pub(super) fn landed(&self) {
        crate::telemetry::commit(crate::telemetry::CommitOutcome::Landed);
        self.landed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records a lost swap: re-applied when `again`, else given up on (409).
    pub(super) fn lost(&self, again: bool) {
        let (counter, outcome) = if again {
            (&self.retried, crate::telemetry::CommitOutcome::Retried)
        } else {
            (
                &self.conflicted,
                crate::telemetry::CommitOutcome::Conflicted,
            )
        };
        crate::telemetry::commit(outcome);
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn set_before_swap(&self, hook: Option<BeforeSwap>) {
        *self.before_swap.write().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    async fn before_swap(&self, changes: &[TableChange]) {
        let hook = self
            .before_swap
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(hook) = hook {
            hook(changes.iter().map(|c| c.ident.clone()).collect()).await;
        }
    }
}

/// The retries of one commit: a short random pause before each (growing a little with the
/// attempts, so that writers that collided spread out), until the budget is spent.
pub(crate) struct Retries {
    started: std::time::Instant,
    attempts: u64,
}

impl Retries {
    pub(crate) fn new() -> Self {
        Retries {
            started: std::time::Instant::now(),
            attempts: 0,
        }
    }

    /// Waits before the next attempt; false when the budget is spent (answer 409 then).
    pub(crate) async fn again(&mut self) -> bool {
        use rand::Rng;
        if self.started.elapsed() >= COMMIT_RETRY_BUDGET {
            return false;
        }
        self.attempts += 1;
        let ceiling = (1 + self.attempts).min(10);
        let millis = rand::thread_rng().gen_range(0..=ceiling);
        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        true
    }
}

/// What a staged change becomes once committed: the client's view, the retired metadata files to
/// delete, and the parsed metadata at its new version (kept for the next commit).
pub(super) struct Staged {
    pub(super) state: TableState,
    pub(super) retired: Vec<Location>,
    pub(super) parsed: (TabularId, String, Arc<ParsedTable>),
}

/// The outcome of one attempt at a commit.
pub(super) enum Attempt {
    Done(Vec<Staged>),
    /// The compare-and-swap lost a race; try again on the new state.
    Lost(Error),
}

/// In-process striped locks that queue commits to the same table, so writers in one Floe process
/// take turns instead of racing each other's compare-and-swap. Commits from other processes still
/// race, and the compare-and-swap (with server-side retry) keeps them correct.
pub(super) struct CommitLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl CommitLocks {
    const STRIPES: usize = 256;

    pub(super) fn new() -> Self {
        CommitLocks {
            stripes: (0..Self::STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Locks the stripes of every key, in a fixed order so that transactions cannot deadlock.
    pub(super) async fn lock<K: std::hash::Hash>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        use std::hash::{DefaultHasher, Hasher};
        let mut indexes: Vec<usize> = keys
            .into_iter()
            .map(|key| {
                let mut hasher = DefaultHasher::new();
                key.hash(&mut hasher);
                (hasher.finish() % Self::STRIPES as u64) as usize
            })
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut guards = Vec::with_capacity(indexes.len());
        for index in indexes {
            guards.push(self.stripes[index].lock().await);
        }
        guards
    }
}

impl Services {
    /// One try: read current state, check, apply, write metadata files, swap all pointers.
    pub(super) async fn attempt_commit(
        &self,
        wh: &OpenWarehouse,
        changes: &[TableChange],
        meta: &CommitMeta,
        authorized: &HashMap<TabularIdent, uuid::Uuid>,
    ) -> Result<Attempt> {
        let mut written: Vec<Location> = Vec::new();
        let staged = self
            .stage_commit(wh, changes, &mut written, authorized)
            .await;
        let (store_changes, done) = match staged {
            Ok(staged) => staged,
            Err(e) => {
                self.discard(wh, &written).await;
                return Err(e);
            }
        };
        self.commits.before_swap(changes).await;
        match self
            .store
            .tabulars
            .commit_tabulars(wh.branch.id, &store_changes, meta)
            .await
        {
            Ok(()) => Ok(Attempt::Done(done)),
            Err(e) => {
                self.discard(wh, &written).await;
                match e.kind {
                    // Another commit got there first; requirements are re-checked on retry.
                    ErrorKind::CommitConflict | ErrorKind::AlreadyExists(_) => Ok(Attempt::Lost(
                        Error::new(ErrorKind::CommitConflict, e.message),
                    )),
                    _ => Err(e),
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    async fn stage_commit(
        &self,
        wh: &OpenWarehouse,
        changes: &[TableChange],
        written: &mut Vec<Location>,
        authorized: &HashMap<TabularIdent, uuid::Uuid>,
    ) -> Result<(Vec<TabularChange>, Vec<Staged>)> {
        let mut store_changes = Vec::with_capacity(changes.len());
        let mut done = Vec::with_capacity(changes.len());
        let mut placed: Vec<Location> = Vec::new();
        for change in changes {
            // Through the table cache (the compare-and-swap below catches anything stale).
            let current = self
                .store
                .tabulars
                .find_tabular(wh.warehouse.id, &wh.branch.name, &change.ident)
                .await?;
            let current = match current {
                Some(t) => Some(self.with_metadata(t).await?),
                None => None,
            };
            // The table the caller was authorized for, not one put under its name since.
            if let Some(uuid) = authorized.get(&change.ident)
                && current.as_ref().map(|t| t.uuid) != Some(*uuid)
            {
                return Err(Error::new(
                    ErrorKind::CommitConflict,
                    format!(
                        "{} was replaced while the commit was checked; retry",
                        change.ident
                    ),
                ));
            }
            if let Some(t) = &current
                && t.kind != TabularKind::Table
            {
                return Err(Error::new(
                    ErrorKind::CommitConflict,
                    format!("{} is a view, not a table", change.ident),
                ));
            }
            if current.is_none() {
                self.require_namespace(&wh.branch, &change.ident.namespace)
                    .await?;
            }
            // A large table's metadata is parsed, changed and written without holding up the
            // worker's other requests (`cpu`).
            let large = current
                .as_ref()
                .is_some_and(|t| t.metadata.len() >= super::cpu::LARGE_METADATA_BYTES);
            let parsed = match &current {
                None => None,
                Some(t) => Some(
                    match self.caches.parsed_tables.get(t.id, &t.metadata_location) {
                        Some(hit) => hit,
                        None => Arc::new(ParsedTable {
                            metadata: super::cpu::bound_if(large, || {
                                parse_table_metadata(&t.metadata)
                            })?,
                            parts: None,
                        }),
                    },
                ),
            };
            let result = super::cpu::bound_if(large, || {
                apply_table_commit(
                    parsed
                        .as_deref()
                        .map(|p| &p.metadata)
                        .zip(current.as_ref().map(|t| t.metadata_location.as_str())),
                    &change.requirements,
                    change.updates.clone(),
                    || {
                        default_location(
                            &wh.base,
                            change.ident.namespace.levels(),
                            &change.ident.name,
                        )
                    },
                )
            })?;
            let metadata = &result.metadata;
            if let Some(before) = &parsed
                && before.metadata.uuid() != metadata.uuid()
            {
                return Err(Error::bad_request(format!(
                    "the UUID of table {} cannot change (from {} to {})",
                    change.ident,
                    before.metadata.uuid(),
                    metadata.uuid()
                )));
            }
            let location = check_locations(metadata.location(), metadata.properties(), &wh.base)?;
            if current.is_none() {
                self.check_new_uuid(wh, metadata.uuid(), None).await?;
            }
            if let Some(t) = &current
                && t.location != location.as_str()
            {
                // Every folder a table claims is in every key vended for it (and in its STS
                // session policy, which AWS bounds), so a table has only so many.
                let folders = self
                    .store
                    .tabulars
                    .claimed_folders(wh.warehouse.id, t.uuid, Some(TabularKind::Table))
                    .await?;
                if !folders.iter().any(|f| f == location.as_str())
                    && folders.len() >= crate::model::MAX_TABLE_FOLDERS
                {
                    return Err(Error::bad_request(format!(
                        "table {} has had {} locations ({}); a table keeps every folder its files \
                         may still be in, and at most {}: move it back to one of them, or create \
                         a new table and copy the data",
                        change.ident,
                        folders.len(),
                        folders.join(", "),
                        crate::model::MAX_TABLE_FOLDERS
                    )));
                }
            }
            if current
                .as_ref()
                .is_none_or(|t| t.location != location.as_str())
            {
                self.check_location_is_free(wh, &location, true, metadata.uuid())
                    .await?;
            }
            self.check_files_are_the_tables(
                wh,
                metadata.uuid(),
                &location,
                &files_of_updates(&change.updates),
            )
            .await?;
            // Tables of one transaction must not overlap each other either.
            if let Some(other) = placed
                .iter()
                .find(|other: &&Location| location.is_within(other) || other.is_within(&location))
            {
                return Err(Error::bad_request(format!(
                    "location {location} overlaps the folder of another table of this \
                     transaction at {other}; every table needs a folder of its own"
                )));
            }
            placed.push(location.clone());
            let file = next_metadata_location(
                &location,
                metadata.properties(),
                current.as_ref().map(|t| t.metadata_location.as_str()),
            )?;
            let (json, parts) = super::cpu::bound_if(large, || {
                table_json(
                    metadata,
                    parsed.as_ref().and_then(|p| p.parts.as_ref()),
                    &result.changes,
                )
            })?;
            let json = bytes::Bytes::from(json);
            wh.storage.put_new(&file, json.clone()).await?;
            written.push(file.clone());
            let at = now();
            let id = match &current {
                None => TabularId::new(),
                Some(t) => t.id,
            };
            store_changes.push(match &current {
                None => TabularChange::Create(wh.new_tabular(
                    id,
                    change.ident.clone(),
                    TabularKind::Table,
                    metadata.uuid(),
                    &location,
                    &file,
                    json.clone(),
                )),
                Some(t) => TabularChange::Update {
                    id: t.id,
                    ident: change.ident.clone(),
                    expected_version: t.version,
                    uuid: metadata.uuid(),
                    location: location.to_string(),
                    metadata_location: file.to_string(),
                    metadata: json.clone(),
                    at,
                    claims_location: (t.location != location.as_str()).then_some(wh.warehouse.id),
                },
            });
            // Old metadata files may be what a branch, tag or commit reads: they go only while
            // the warehouse has nothing but `main`.
            let mut retired = retired_metadata_files(&result, &location);
            if !retired.is_empty() && self.store.refs.has_other_refs(wh.warehouse.id).await? {
                retired.clear();
            }
            done.push(Staged {
                state: TableState {
                    location: location.to_string(),
                    uuid: metadata.uuid(),
                    // A create here brought a UUID the warehouse never had (`check_new_uuid`).
                    new_uuid: current.is_none(),
                    metadata_location: Some(file.to_string()),
                    metadata: json,
                },
                retired,
                parsed: (
                    id,
                    file.to_string(),
                    Arc::new(ParsedTable {
                        metadata: result.metadata,
                        parts,
                    }),
                ),
            });
        }
        Ok((store_changes, done))
    }

    /// Removes metadata files that no pointer will ever reference.
    pub(super) async fn discard(&self, wh: &OpenWarehouse, files: &[Location]) {
        for file in files {
            if let Err(e) = wh.storage.delete(file).await {
                tracing::warn!(file = %file, error = ?e, "removing an unused metadata file failed");
            }
        }
    }
}
