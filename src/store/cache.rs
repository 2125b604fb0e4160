//! A read-through cache in front of a `TabularStore` for `find_tabular`, the hot path of
//! `loadTable`. No SQL here; the decorator only forwards.
//!
//! - *Exclusive*: the database belongs to this process alone (the embedded SQLite file, locked by
//!   `SqliteStore`), every write goes through this decorator and invalidates exactly, and a hit
//!   is served from memory. A load that raced with a write never caches what it read: writes bump
//!   an epoch after they commit, and a load caches its result only if the epoch did not move.
//! - *Validated*: other processes write too (PostgreSQL); a hit is served only after a cheap read
//!   confirms the table is still at the cached version, which saves transferring and
//!   decompressing its metadata.
//! - *Notified*: other processes write too, and the database tells every process about each
//!   change (PostgreSQL `LISTEN`/`NOTIFY`, sent by a trigger when the change commits). While the
//!   listener is connected, hits are served from memory and each notification forgets its table;
//!   while it is not, hits are validated as above. Another instance's commit is seen once its
//!   notification arrives (milliseconds); this instance's own commits at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::{TabularChange, TabularStore};
use crate::error::Result;
use crate::model::{
    CommitMeta, MAIN_BRANCH, NamespaceIdent, Page, PageRequest, RefId, Tabular, TabularId,
    TabularIdent, TabularKind, WarehouseId,
};

/// How hits are trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exclusive,
    Validated,
    Notified,
}

/// One cached table or view, with the warehouse and ref name it was found under.
#[derive(Clone)]
struct Entry {
    warehouse: WarehouseId,
    ref_name: String,
    tabular: Arc<Tabular>,
}

/// What an entry costs besides its metadata (the row's names and locations, the maps that track
/// it), counted against the cache's size so that many small tables cannot outgrow it.
const ENTRY_OVERHEAD: usize = 1024;

pub struct CachedTabularStore {
    inner: Arc<dyn TabularStore>,
    entries: RwLock<HashMap<TabularIdent, Vec<Entry>>>,
    epoch: AtomicU64,
    bytes: AtomicUsize,
    max_bytes: usize,
    mode: Mode,
    /// In `Notified` mode: whether the listener is connected (hits are trusted only then).
    listening: std::sync::atomic::AtomicBool,
    /// In `Notified` mode: the names each cached table id was cached under (may hold names no
    /// longer cached; cleared with the cache).
    names: std::sync::Mutex<HashMap<TabularId, Vec<TabularIdent>>>,
    /// The latest version known to be committed of each table or view recently written (by this
    /// process, or by others as notified): a load that read an older one does not cache it.
    /// Taken with `entries` held. This, not the epoch, keeps a load racing a commit of the same
    /// table from caching what it read, so that a steady stream of commits to other tables does
    /// not keep every load from filling the cache.
    /// Keyed by row id and, for this process's own commits, the line committed on (a commit on
    /// a branch to a row it inherits writes a copy, not that row); notifications name the row
    /// itself (`None`).
    latest: std::sync::Mutex<HashMap<(TabularId, Option<RefId>), i64>>,
}

impl CachedTabularStore {
    /// For a database only this process writes.
    pub fn new(inner: Arc<dyn TabularStore>, max_bytes: usize) -> Self {
        CachedTabularStore {
            inner,
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            bytes: AtomicUsize::new(0),
            max_bytes,
            mode: Mode::Exclusive,
            listening: std::sync::atomic::AtomicBool::new(false),
            names: std::sync::Mutex::new(HashMap::new()),
            latest: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// For a database other processes write too: every hit is checked against the database.
    pub fn validated(inner: Arc<dyn TabularStore>, max_bytes: usize) -> Self {
        CachedTabularStore {
            mode: Mode::Validated,
            ..Self::new(inner, max_bytes)
        }
    }

    /// For a database other processes write too and that notifies changes: hits are trusted
    /// while [`CachedTabularStore::listening`] says the listener is connected.
    pub fn notified(inner: Arc<dyn TabularStore>, max_bytes: usize) -> Self {
        CachedTabularStore {
            mode: Mode::Notified,
            ..Self::new(inner, max_bytes)
        }
    }

    /// The listener connected (after it started listening) or lost its connection. Either way
    /// everything cached is forgotten: notifications may have been missed.
    pub fn listening(&self, connected: bool) {
        if !connected {
            self.listening.store(false, Ordering::SeqCst);
        }
        self.clear();
        if connected {
            self.listening.store(true, Ordering::SeqCst);
        }
    }

    /// A table or view changed in the database (a notification): forget it, or with the version
    /// its pointer moved to, forget only what is older (the commit this instance made itself is
    /// already cached at that version).
    pub fn changed(&self, id: TabularId, version: Option<i64>) {
        let Some(version) = version else {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            let idents = self.names.lock().expect("cache lock").remove(&id);
            if let Some(idents) = idents {
                self.invalidate(idents.iter());
            }
            return;
        };
        let mut entries = self.entries.write().expect("cache lock");
        self.saw_version((id, None), version);
        let idents = self.names.lock().expect("cache lock").get(&id).cloned();
        let Some(idents) = idents else {
            return;
        };
        for ident in &idents {
            if let Some(list) = entries.get_mut(ident) {
                let mut freed = 0;
                list.retain(|e| {
                    let stale = e.tabular.id == id && e.tabular.version < version;
                    if stale {
                        freed += e.tabular.metadata.len() + ENTRY_OVERHEAD;
                    }
                    !stale
                });
                self.bytes.fetch_sub(freed, Ordering::SeqCst);
            }
        }
    }

    /// In `Notified` mode, notes a name a table id is cached under; called with `entries` held.
    fn remember_name(&self, id: TabularId, ident: &TabularIdent) {
        if self.mode != Mode::Notified {
            return;
        }
        let mut names = self.names.lock().expect("cache lock");
        let known = names.entry(id).or_default();
        if !known.contains(ident) {
            known.push(ident.clone());
        }
    }

    /// Whether a version of this row newer than `version` is known to be committed.
    fn newer_known(&self, id: TabularId, line: RefId, version: i64) -> bool {
        let latest = self.latest.lock().expect("cache lock");
        [(id, None), (id, Some(line))]
            .iter()
            .any(|key| latest.get(key).is_some_and(|seen| *seen > version))
    }

    /// Records that `version` of a table is committed; called with `entries` held.
    fn saw_version(&self, id: (TabularId, Option<RefId>), version: i64) {
        let mut latest = self.latest.lock().expect("cache lock");
        if latest.len() >= 100_000 {
            // Forgetting what was seen is safe once no load in flight may cache what it read.
            self.epoch.fetch_add(1, Ordering::SeqCst);
            latest.clear();
        }
        let seen = latest.entry(id).or_insert(version);
        *seen = (*seen).max(version);
    }

    fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let mut entries = self.entries.write().expect("cache lock");
        entries.clear();
        self.bytes.store(0, Ordering::SeqCst);
        self.names.lock().expect("cache lock").clear();
        self.latest.lock().expect("cache lock").clear();
    }

    /// Whether a hit may be served without asking the database.
    fn trusted(&self) -> bool {
        match self.mode {
            Mode::Exclusive => true,
            Mode::Validated => false,
            Mode::Notified => self.listening.load(Ordering::SeqCst),
        }
    }

    fn lookup(
        &self,
        warehouse: WarehouseId,
        ref_name: &str,
        ident: &TabularIdent,
    ) -> Option<Arc<Tabular>> {
        let entries = self.entries.read().expect("cache lock");
        entries.get(ident).and_then(|list| {
            list.iter()
                .find(|e| e.warehouse == warehouse && e.ref_name == ref_name)
                .map(|e| e.tabular.clone())
        })
    }

    /// Forgets every entry of these names (in any warehouse); called after a write committed.
    fn invalidate<'a>(&self, idents: impl IntoIterator<Item = &'a TabularIdent>) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let mut entries = self.entries.write().expect("cache lock");
        for ident in idents {
            if let Some(list) = entries.remove(ident) {
                let freed: usize = list
                    .iter()
                    .map(|e| e.tabular.metadata.len() + ENTRY_OVERHEAD)
                    .sum();
                self.bytes.fetch_sub(freed, Ordering::SeqCst);
            }
        }
    }

    /// The entries an update starts from, taken before it commits: a notification of the very
    /// commit may arrive (and drop them as older) before the commit returns.
    fn bases(&self, ref_id: RefId, changes: &[TabularChange]) -> (u64, Vec<Option<Entry>>) {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let entries = self.entries.read().expect("cache lock");
        let bases = changes
            .iter()
            .map(|change| match change {
                TabularChange::Update {
                    id,
                    ident,
                    expected_version,
                    ..
                } => entries.get(ident).and_then(|list| {
                    list.iter()
                        .find(|e| {
                            e.tabular.id == *id
                                && e.tabular.version == *expected_version
                                && e.tabular.ref_id == ref_id
                        })
                        .cloned()
                }),
                TabularChange::Create(_) => None,
            })
            .collect();
        (epoch, bases)
    }

    /// Applies committed changes to the cache: the entry an update started from (still cached,
    /// or taken by [`Self::bases`] before the commit) becomes the new version, unless a newer one
    /// is known; anything else about those names is forgotten.
    fn advance(&self, ref_id: RefId, changes: &[TabularChange], bases: (u64, Vec<Option<Entry>>)) {
        // A base taken before the commit is used only if nothing was forgotten wholesale since
        // (a reconnected listener may have missed a newer commit).
        let (seen_epoch, bases) = bases;
        // A create may take a name a load in flight found free or held by a dropped table;
        // updates are covered by `latest`.
        if changes
            .iter()
            .any(|c| matches!(c, TabularChange::Create(_)))
        {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
        let mut entries = self.entries.write().expect("cache lock");
        let unchanged = self.epoch.load(Ordering::SeqCst) == seen_epoch;
        for (change, base) in changes.iter().zip(bases) {
            let base = base.filter(|_| unchanged);
            match change {
                TabularChange::Create(t) => {
                    if let Some(list) = entries.remove(&t.ident) {
                        let freed: usize = list
                            .iter()
                            .map(|e| e.tabular.metadata.len() + ENTRY_OVERHEAD)
                            .sum();
                        self.bytes.fetch_sub(freed, Ordering::SeqCst);
                    }
                }
                TabularChange::Update {
                    id,
                    ident,
                    expected_version,
                    uuid,
                    location,
                    metadata_location,
                    metadata,
                    at,
                    claims_location: _,
                } => {
                    let version = expected_version + 1;
                    self.saw_version((*id, Some(ref_id)), version);
                    let newer_known = self.newer_known(*id, ref_id, version);
                    let Some(list) = entries.get_mut(ident) else {
                        if let Some(base) = base.filter(|_| !newer_known) {
                            self.remember_name(*id, ident);
                            self.bytes
                                .fetch_add(metadata.len() + ENTRY_OVERHEAD, Ordering::SeqCst);
                            entries.insert(
                                ident.clone(),
                                vec![advanced(
                                    base,
                                    version,
                                    *uuid,
                                    location,
                                    metadata_location,
                                    metadata,
                                    *at,
                                )],
                            );
                        }
                        continue;
                    };
                    let mut freed = 0;
                    let mut from = base;
                    let mut already = false;
                    list.retain(|e| {
                        if e.tabular.id != *id {
                            return true;
                        }
                        if e.tabular.version == version
                            && e.tabular.metadata_location == *metadata_location
                        {
                            // A load after the commit already cached it.
                            already = true;
                            return true;
                        }
                        if e.tabular.version == *expected_version && e.tabular.ref_id == ref_id {
                            from = Some(e.clone());
                        }
                        freed += e.tabular.metadata.len() + ENTRY_OVERHEAD;
                        false
                    });
                    self.bytes.fetch_sub(freed, Ordering::SeqCst);
                    if let Some(base) = from.filter(|_| !already && !newer_known) {
                        self.bytes
                            .fetch_add(metadata.len() + ENTRY_OVERHEAD, Ordering::SeqCst);
                        list.push(advanced(
                            base,
                            version,
                            *uuid,
                            location,
                            metadata_location,
                            metadata,
                            *at,
                        ));
                    }
                }
            }
        }
    }

    fn insert(&self, warehouse: WarehouseId, ref_name: &str, tabular: Tabular, seen_epoch: u64) {
        let size = tabular.metadata.len() + ENTRY_OVERHEAD;
        let mut entries = self.entries.write().expect("cache lock");
        if self.epoch.load(Ordering::SeqCst) != seen_epoch {
            return;
        }
        if self.newer_known(tabular.id, tabular.ref_id, tabular.version) {
            return;
        }
        if self.bytes.load(Ordering::SeqCst) + size > self.max_bytes {
            // Simple and bounded: start over rather than track recency.
            entries.clear();
            self.bytes.store(0, Ordering::SeqCst);
            self.names.lock().expect("cache lock").clear();
            if size > self.max_bytes {
                return;
            }
        }
        if self.mode == Mode::Notified && self.names.lock().expect("cache lock").len() >= 100_000 {
            self.names.lock().expect("cache lock").clear();
            entries.clear();
            self.bytes.store(0, Ordering::SeqCst);
        }
        self.remember_name(tabular.id, &tabular.ident);
        let list = entries.entry(tabular.ident.clone()).or_default();
        let mut freed = 0;
        list.retain(|e| {
            let same = e.warehouse == warehouse && e.ref_name == ref_name;
            if same {
                freed += e.tabular.metadata.len() + ENTRY_OVERHEAD;
            }
            !same
        });
        self.bytes.fetch_sub(freed, Ordering::SeqCst);
        list.push(Entry {
            warehouse,
            ref_name: ref_name.to_string(),
            tabular: Arc::new(tabular),
        });
        self.bytes.fetch_add(size, Ordering::SeqCst);
    }
}

/// An entry moved to the version a commit wrote.
fn advanced(
    base: Entry,
    version: i64,
    uuid: uuid::Uuid,
    location: &str,
    metadata_location: &str,
    metadata: &bytes::Bytes,
    at: chrono::DateTime<chrono::Utc>,
) -> Entry {
    let mut next = (*base.tabular).clone();
    next.version = version;
    next.uuid = uuid;
    next.location = location.to_string();
    next.metadata_location = metadata_location.to_string();
    next.metadata = metadata.clone();
    next.updated_at = at;
    Entry {
        tabular: Arc::new(next),
        ..base
    }
}

#[async_trait]
impl TabularStore for CachedTabularStore {
    async fn get_tabular(&self, ref_id: RefId, ident: &TabularIdent) -> Result<Option<Tabular>> {
        self.inner.get_tabular(ref_id, ident).await
    }

    async fn find_tabular(
        &self,
        warehouse: WarehouseId,
        ref_name: &str,
        ident: &TabularIdent,
    ) -> Result<Option<Tabular>> {
        // Only `main` is cached: a branch may see another line's row (what it inherits), which
        // that line's commits must not move.
        if ref_name != MAIN_BRANCH {
            return self.inner.find_tabular(warehouse, ref_name, ident).await;
        }
        let trusted = self.trusted();
        if let Some(hit) = self.lookup(warehouse, ref_name, ident) {
            if trusted {
                crate::telemetry::table_cache(true);
                return Ok(Some((*hit).clone()));
            }
            match self
                .inner
                .find_tabular_version(warehouse, ref_name, ident)
                .await?
            {
                Some((id, version)) if id == hit.id && version == hit.version => {
                    crate::telemetry::table_cache(true);
                    return Ok(Some((*hit).clone()));
                }
                None => return Ok(None),
                Some(_) => {}
            }
        }
        crate::telemetry::table_cache(false);
        let seen_epoch = self.epoch.load(Ordering::SeqCst);
        let found = self.inner.find_tabular(warehouse, ref_name, ident).await?;
        if let Some(tabular) = &found {
            self.insert(warehouse, ref_name, tabular.clone(), seen_epoch);
        }
        Ok(found)
    }

    async fn find_tabular_version(
        &self,
        warehouse: WarehouseId,
        ref_name: &str,
        ident: &TabularIdent,
    ) -> Result<Option<(crate::model::TabularId, i64)>> {
        self.inner
            .find_tabular_version(warehouse, ref_name, ident)
            .await
    }

    async fn list_tabulars(
        &self,
        ref_id: RefId,
        namespace: &NamespaceIdent,
        kind: TabularKind,
        page: &PageRequest,
        only: Option<&[String]>,
    ) -> Result<Page<String>> {
        self.inner
            .list_tabulars(ref_id, namespace, kind, page, only)
            .await
    }

    async fn search_tabulars(
        &self,
        ref_id: RefId,
        needle: &str,
        page: &PageRequest,
    ) -> Result<Page<(TabularIdent, uuid::Uuid, TabularKind)>> {
        self.inner.search_tabulars(ref_id, needle, page).await
    }

    async fn locate_tabulars(
        &self,
        ref_id: RefId,
        uuids: &[uuid::Uuid],
    ) -> Result<Vec<(TabularIdent, uuid::Uuid, TabularKind)>> {
        self.inner.locate_tabulars(ref_id, uuids).await
    }

    async fn overlapping_table(
        &self,
        warehouse: WarehouseId,
        prefixes: &[String],
        inside: Option<&str>,
        uuid: Option<uuid::Uuid>,
    ) -> Result<Option<String>> {
        self.inner
            .overlapping_table(warehouse, prefixes, inside, uuid)
            .await
    }

    async fn claimed_folders(
        &self,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
        kind: Option<TabularKind>,
    ) -> Result<Vec<String>> {
        self.inner.claimed_folders(warehouse, uuid, kind).await
    }

    async fn uuid_known(
        &self,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
        kind: Option<TabularKind>,
    ) -> Result<bool> {
        self.inner.uuid_known(warehouse, uuid, kind).await
    }

    async fn recorded_version(
        &self,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
        metadata_location: &str,
    ) -> Result<bool> {
        self.inner
            .recorded_version(warehouse, uuid, metadata_location)
            .await
    }

    async fn lines_holding(
        &self,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
    ) -> Result<Vec<crate::model::RefId>> {
        self.inner.lines_holding(warehouse, uuid).await
    }

    async fn release_for_purge(
        &self,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
    ) -> Result<Option<Vec<String>>> {
        self.inner.release_for_purge(warehouse, uuid).await
    }

    async fn restore_claims(&self, warehouse: WarehouseId, uuid: uuid::Uuid) -> Result<()> {
        self.inner.restore_claims(warehouse, uuid).await
    }

    async fn release_view_claims(&self, warehouse: WarehouseId, uuid: uuid::Uuid) -> Result<bool> {
        self.inner.release_view_claims(warehouse, uuid).await
    }

    async fn commit_tabulars(
        &self,
        ref_id: RefId,
        changes: &[TabularChange],
        meta: &CommitMeta,
    ) -> Result<()> {
        let bases = self.bases(ref_id, changes);
        let result = self.inner.commit_tabulars(ref_id, changes, meta).await;
        if result.is_ok() {
            // What was committed is known exactly: cached versions move forward with it, so the
            // next commit to the same table starts from memory.
            self.advance(ref_id, changes, bases);
        } else {
            // Invalidate on failure: a failed commit may have changed nothing, but a lost
            // connection mid-commit leaves its outcome unknown.
            self.invalidate(changes.iter().map(|c| match c {
                TabularChange::Create(t) => &t.ident,
                TabularChange::Update { ident, .. } => ident,
            }));
        }
        result
    }

    fn forget(&self, idents: &[TabularIdent]) {
        self.invalidate(idents.iter());
    }

    async fn drop_tabular(
        &self,
        ref_id: RefId,
        ident: &TabularIdent,
        kind: TabularKind,
        meta: &CommitMeta,
        options: &crate::model::lifecycle::DropOptions,
    ) -> Result<Tabular> {
        let result = self
            .inner
            .drop_tabular(ref_id, ident, kind, meta, options)
            .await;
        self.invalidate([ident]);
        result
    }

    async fn rename_tabular(
        &self,
        ref_id: RefId,
        from: &TabularIdent,
        to: &TabularIdent,
        kind: TabularKind,
        meta: &CommitMeta,
    ) -> Result<()> {
        let result = self
            .inner
            .rename_tabular(ref_id, from, to, kind, meta)
            .await;
        self.invalidate([from, to]);
        result
    }
}
