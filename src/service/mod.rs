//! Use cases: what Floe does, independent of how it is called. Each use case shows its phases
//! (`// validate`, `// authorize`, `// act`, `// announce`), asks the `Authorizer` before acting, and
//! publishes a `CatalogEvent` after a change commits.
//!
//! Architecture invariant: nothing here imports axum or sqlx. Use cases talk to the store traits,
//! `storage`, `secrets`, `authz` and `events` through `Arc<dyn Trait>`s that `server.rs` picks.

pub mod access_keys;
mod branches;
mod catalog;
mod vending;
pub use vending::{Delegation, TableAccess};
pub mod metadata;
mod namespaces;
mod projects;
mod server;
mod table_json;
mod tables;
mod views;
mod warehouses;

use std::collections::HashMap;
use std::sync::Arc;

use crate::authn::Principal;
use crate::authz::{Action, Authorizer, Resource};
use crate::error::Result;
use crate::events::{CatalogEvent, EventPublisher};
use crate::model::{Warehouse, WarehouseId, now};
use crate::secrets::SecretStore;
use crate::store::Persistence;

pub use branches::{CommitPage, ContentChange, MergeConflict, MergeOutcome, validate_ref_name};
pub use catalog::CatalogConfig;
pub use namespaces::{NamespacePropertiesUpdate, NamespacesPage};
pub use server::ServerStatus;
pub use tables::{CreateTable, SnapshotsMode, TableChange, TableState};
pub use views::{CreateView, ViewState};
pub use warehouses::{CreateWarehouse, LocalRoots, UpdateWarehouseStorage};

/// Who is asking, and under which request id.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub principal: Principal,
    pub request_id: String,
    /// The branch, tag or commit a catalog request addresses (its prefix's `@<ref>`); `None`
    /// for `main`.
    pub reference: Option<String>,
}

impl RequestContext {
    /// The record of a catalog change this caller makes (see `store::RefStore`).
    pub fn commit(&self, message: impl Into<String>) -> crate::model::CommitMeta {
        crate::model::CommitMeta::new(self.principal.display_id(), message)
    }

    /// The context of Floe acting on its own behalf (the automatic bootstrap).
    pub fn system() -> Self {
        RequestContext {
            principal: Principal::User {
                id: "floe-system".into(),
                name: None,
            },
            request_id: "startup".into(),
            reference: None,
        }
    }
}

/// Everything the use cases need, shared by all requests.
/// The use cases. Cheap to clone (one shared allocation): every request's handler takes a copy.
#[derive(Clone)]
pub struct Services(Arc<ServicesInner>);

impl std::ops::Deref for Services {
    type Target = ServicesInner;

    fn deref(&self) -> &ServicesInner {
        &self.0
    }
}

/// What the use cases share: modules, stores and caches.
pub struct ServicesInner {
    store: Persistence,
    secrets: Arc<dyn SecretStore>,
    authz: Arc<dyn Authorizer>,
    events: Arc<Vec<Arc<dyn EventPublisher>>>,
    commit_locks: Arc<CommitLocks>,
    parsed_tables: Arc<ParsedTables>,
    /// `snapshots=refs` bodies by metadata file (`ReferencedBodies`).
    referenced: ReferencedBodies,
    /// Mints and checks the S3 gateway's access keys; `None` when the gateway is disabled.
    keys: Option<Arc<access_keys::KeyMinter>>,
    /// The gateway's address as clients reach it (`http://host:port`), when it serves warehouses.
    gateway_endpoint: Option<String>,
    /// The region the gateway signs for.
    gateway_region: String,
    /// Warehouses by id, for hot paths that need a warehouse's storage on every request (the S3
    /// gateway, vended credentials). Entries live a few seconds; this process's own changes
    /// remove them at once.
    warehouses: Arc<WarehouseCache>,
    /// The `main` branch of each warehouse, kept the same way.
    main_branches:
        Arc<std::sync::Mutex<HashMap<WarehouseId, (std::time::Instant, crate::model::Ref)>>>,
    /// Table access by table location, read-only or not, and mode, reused while it is valid.
    vended: std::sync::Mutex<VendedCache>,
    /// Warehouses' storage credentials for signing, by warehouse and settings version.
    credentials: std::sync::Mutex<CredentialCache>,
    /// The catalog's base URI (`.../catalog`) as clients reach it, when configured; remote signing
    /// points clients at it, else they use the URI they reached the catalog at.
    catalog_url: Option<String>,
    /// Object stores by warehouse and settings version (see `warehouse_storage`).
    storages: std::sync::Mutex<StorageCache>,
    /// Warehouses known to have refs besides `main` (which stays so: retired lines keep their
    /// commits readable), and when others were last seen to have none.
    other_refs: std::sync::Mutex<HashMap<WarehouseId, (std::time::Instant, bool)>>,
    /// Where local warehouses may live (none unless configured).
    local_roots: warehouses::LocalRoots,
}

type StorageCache =
    HashMap<(WarehouseId, chrono::DateTime<chrono::Utc>), Arc<dyn crate::storage::ObjectStorage>>;

/// Table access by (warehouse, its settings version, ref, table name and location, what the
/// client may do with the files, mode), with the unix time it is reused until.
type VendedCache = HashMap<
    (
        WarehouseId,
        chrono::DateTime<chrono::Utc>,
        String,
        crate::model::FileAccess,
        vending::AccessMode,
    ),
    (i64, Arc<TableAccess>),
>;

type CredentialCache =
    HashMap<(WarehouseId, chrono::DateTime<chrono::Utc>), Arc<crate::model::StorageCredential>>;

type WarehouseCache = std::sync::Mutex<HashMap<WarehouseId, (std::time::Instant, Arc<Warehouse>)>>;

/// How long a cached warehouse is used before it is read again.
const WAREHOUSE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Parsed table metadata by table and version, so that a commit need not parse the JSON of the
/// version it builds on (the one the previous commit produced). Keyed by version, it can never
/// serve anything but the exact version the database holds.
type ParsedTables = WeighedCache<Arc<ParsedTable>>;

/// A table's metadata as its last commit here left it: parsed, and the JSON parts the next
/// commit reuses (`None` when it was read from storage or the database).
pub(crate) struct ParsedTable {
    pub(crate) metadata: iceberg::spec::TableMetadata,
    pub(crate) parts: Option<table_json::JsonParts>,
}

/// One value per table, for one metadata file of it, bounded by count and by total weight (for
/// parsed metadata: snapshots, a kilobyte or two each with their JSON; a few hundred tables
/// with long histories would otherwise hold hundreds of megabytes).
///
/// When a newcomer does not fit, entries idle for `IDLE` go first; if it still does not fit, it
/// is not kept. So when more tables are being committed to than fit, those held stay held and
/// keep their hits (a share of commits as large as the bound allows skips parsing), instead of
/// every commit evicting another's entry and none of them hitting.
struct WeighedCache<V> {
    /// By table id: the metadata file the value is of, the value, its weight, and when it was
    /// last put or found. Keyed by file, not by version: on a branch, a commit to an inherited
    /// table writes a copy of it at the next version, and a merge may later give the original
    /// that same version.
    entries: std::sync::Mutex<HashMap<crate::model::TabularId, Weighed<V>>>,
    max_entries: usize,
    max_weight: usize,
}

struct Weighed<V> {
    file: String,
    value: V,
    weight: usize,
    used: std::time::Instant,
}

impl<V: Clone> WeighedCache<V> {
    /// An entry not found nor replaced for this long may make room for a newcomer.
    const IDLE: std::time::Duration = std::time::Duration::from_secs(2);

    fn new(max_entries: usize, max_weight: usize) -> Self {
        WeighedCache {
            entries: std::sync::Mutex::new(HashMap::new()),
            max_entries,
            max_weight,
        }
    }

    fn get(&self, id: crate::model::TabularId, metadata_location: &str) -> Option<V> {
        let mut entries = self.entries.lock().expect("cache lock");
        let entry = entries
            .get_mut(&id)
            .filter(|e| e.file == metadata_location)?;
        entry.used = std::time::Instant::now();
        Some(entry.value.clone())
    }

    fn put(&self, id: crate::model::TabularId, file: String, value: V, weight: usize) {
        let now = std::time::Instant::now();
        let mut entries = self.entries.lock().expect("cache lock");
        // The table's older value is of no use once it has moved on.
        entries.remove(&id);
        if weight > self.max_weight {
            return;
        }
        let mut held: usize = entries.values().map(|e| e.weight).sum();
        let fits = |count: usize, held: usize| {
            count < self.max_entries && held + weight <= self.max_weight
        };
        if !fits(entries.len(), held) {
            let mut idle: Vec<(std::time::Instant, crate::model::TabularId)> = entries
                .iter()
                .filter(|(_, e)| now.duration_since(e.used) >= Self::IDLE)
                .map(|(id, e)| (e.used, *id))
                .collect();
            idle.sort();
            for (_, old) in idle {
                if let Some(gone) = entries.remove(&old) {
                    held -= gone.weight;
                }
                if fits(entries.len(), held) {
                    break;
                }
            }
        }
        if fits(entries.len(), held) {
            entries.insert(
                id,
                Weighed {
                    file,
                    value,
                    weight,
                    used: now,
                },
            );
        }
    }
}

impl ParsedTables {
    const MAX_ENTRIES: usize = 256;
    /// Snapshots held at most, over all entries.
    const MAX_SNAPSHOTS: usize = 16_000;

    fn for_commits() -> Self {
        WeighedCache::new(Self::MAX_ENTRIES, Self::MAX_SNAPSHOTS)
    }

    fn put_parsed(&self, id: crate::model::TabularId, file: String, parsed: Arc<ParsedTable>) {
        let weight = parsed.metadata.snapshots().len();
        self.put(id, file, parsed, weight);
    }
}

/// The metadata of `loadTable` with `snapshots=refs` (only the snapshots that branches and tags
/// point at), by metadata file: a file never changes, so neither does what it gives, and a table
/// with a long history is then served in that mode without parsing its whole metadata per
/// request. Bounded by bytes; the oldest entries go first.
#[derive(Default)]
struct ReferencedBodies {
    inner: std::sync::Mutex<ReferencedInner>,
}

#[derive(Default)]
struct ReferencedInner {
    entries: HashMap<String, bytes::Bytes>,
    order: std::collections::VecDeque<String>,
    bytes: usize,
}

impl ReferencedBodies {
    /// Held at most: a table's referenced snapshots are few, so this keeps hundreds of tables.
    const MAX_BYTES: usize = 4 << 20;

    fn get(&self, metadata_location: &str) -> Option<bytes::Bytes> {
        let inner = self.inner.lock().expect("cache lock");
        inner.entries.get(metadata_location).cloned()
    }

    fn put(&self, metadata_location: &str, body: bytes::Bytes) {
        if body.len() > Self::MAX_BYTES / 8 {
            return;
        }
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.entries.contains_key(metadata_location) {
            return;
        }
        inner.bytes += body.len();
        inner.entries.insert(metadata_location.to_string(), body);
        inner.order.push_back(metadata_location.to_string());
        while inner.bytes > Self::MAX_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.len();
            }
        }
    }
}

/// In-process striped locks that queue commits to the same table, so writers in one Floe process
/// take turns instead of racing each other's compare-and-swap. Commits from other processes still
/// race, and the compare-and-swap (with server-side retry) keeps them correct.
struct CommitLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl CommitLocks {
    const STRIPES: usize = 256;

    fn new() -> Self {
        CommitLocks {
            stripes: (0..Self::STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Locks the stripes of every key, in a fixed order so that transactions cannot deadlock.
    async fn lock<K: std::hash::Hash>(
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
    pub fn new(
        store: Persistence,
        secrets: Arc<dyn SecretStore>,
        authz: Arc<dyn Authorizer>,
        events: Vec<Arc<dyn EventPublisher>>,
    ) -> Self {
        Services(Arc::new(ServicesInner {
            store,
            secrets,
            authz,
            events: Arc::new(events),
            commit_locks: Arc::new(CommitLocks::new()),
            parsed_tables: Arc::new(ParsedTables::for_commits()),
            referenced: ReferencedBodies::default(),
            keys: None,
            gateway_endpoint: None,
            gateway_region: String::new(),
            warehouses: Arc::new(std::sync::Mutex::new(HashMap::new())),
            main_branches: Arc::new(std::sync::Mutex::new(HashMap::new())),
            vended: std::sync::Mutex::new(HashMap::new()),
            credentials: std::sync::Mutex::new(HashMap::new()),
            catalog_url: None,
            storages: std::sync::Mutex::new(HashMap::new()),
            other_refs: std::sync::Mutex::new(HashMap::new()),
            local_roots: warehouses::LocalRoots::default(),
        }))
    }

    /// Sets where local warehouses may live.
    pub fn with_local_roots(mut self, roots: warehouses::LocalRoots) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.local_roots = roots;
        self
    }

    fn cached_main_branch(&self, warehouse: WarehouseId) -> Option<crate::model::Ref> {
        self.main_branches
            .lock()
            .expect("cache lock")
            .get(&warehouse)
            .filter(|(at, _)| at.elapsed() < WAREHOUSE_TTL)
            .map(|(_, branch)| branch.clone())
    }

    fn remember_main_branch(&self, warehouse: WarehouseId, branch: &crate::model::Ref) {
        let mut cache = self.main_branches.lock().expect("cache lock");
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(warehouse, (std::time::Instant::now(), branch.clone()));
    }

    /// A warehouse, from a short-lived cache (see `warehouses`).
    pub(crate) async fn cached_warehouse(&self, id: WarehouseId) -> Result<Arc<Warehouse>> {
        if let Some((at, warehouse)) = self.warehouses.lock().expect("cache lock").get(&id)
            && at.elapsed() < WAREHOUSE_TTL
        {
            return Ok(warehouse.clone());
        }
        let warehouse = Arc::new(self.load_warehouse(id).await?);
        let mut cache = self.warehouses.lock().expect("cache lock");
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(id, (std::time::Instant::now(), warehouse.clone()));
        Ok(warehouse)
    }

    pub(crate) fn forget_warehouse(&self, id: WarehouseId) {
        self.warehouses.lock().expect("cache lock").remove(&id);
        self.main_branches.lock().expect("cache lock").remove(&id);
    }

    /// Turns on the S3 gateway's access keys (derived from `server_key`) and, for vended
    /// credentials, the address clients reach the gateway at.
    pub fn with_gateway(mut self, server_key: &[u8; 32], endpoint: String, region: String) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.keys = Some(Arc::new(access_keys::KeyMinter::new(server_key)));
        inner.gateway_endpoint = Some(endpoint);
        inner.gateway_region = region;
        self
    }

    /// Sets the catalog's public base URI (`<public_url>/catalog`), given to remote-signing clients.
    pub fn with_catalog_url(mut self, url: String) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.catalog_url = Some(url.trim_end_matches('/').to_string());
        self
    }

    pub fn gateway_endpoint(&self) -> Option<&str> {
        self.gateway_endpoint.as_deref()
    }

    async fn authorize(
        &self,
        ctx: &RequestContext,
        action: Action,
        resource: Resource,
    ) -> Result<()> {
        self.authz
            .authorize(&ctx.principal, action, &resource)
            .await
    }

    /// Hands a committed change to every publisher; failures are logged, never returned.
    async fn announce(
        &self,
        ctx: &RequestContext,
        kind: &'static str,
        subject: String,
        data: serde_json::Value,
    ) {
        let event = CatalogEvent {
            id: uuid::Uuid::now_v7(),
            kind,
            time: now(),
            actor: ctx.principal.display_id(),
            request_id: ctx.request_id.clone(),
            subject,
            data,
        };
        for publisher in self.events.iter() {
            if let Err(e) = publisher.publish(&event).await {
                tracing::warn!(error = ?e, kind, "publishing an event failed");
            }
        }
    }

    /// Readiness: the database answers and every module is healthy.
    pub async fn ready(&self) -> Result<()> {
        self.store.server.health().await?;
        self.secrets.health().await?;
        self.authz.health().await?;
        for publisher in self.events.iter() {
            publisher.health().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TabularId;

    #[test]
    fn a_full_weighed_cache_keeps_what_it_holds_and_gives_way_when_idle() {
        let cache: WeighedCache<u32> = WeighedCache::new(10, 100);
        let (a, b, c) = (TabularId::new(), TabularId::new(), TabularId::new());
        cache.put(a, "a1".into(), 1, 60);
        cache.put(b, "b1".into(), 2, 30);
        assert_eq!(cache.get(a, "a1"), Some(1));
        assert_eq!(cache.get(a, "a0"), None, "only the file it is of");
        // No room, nothing idle: the newcomer is not kept, the others stay.
        cache.put(c, "c1".into(), 3, 30);
        assert_eq!(cache.get(c, "c1"), None);
        assert_eq!(cache.get(a, "a1"), Some(1));
        assert_eq!(cache.get(b, "b1"), Some(2));
        // A table's next version replaces its last one, in the room it left.
        cache.put(a, "a2".into(), 4, 65);
        assert_eq!(cache.get(a, "a1"), None);
        assert_eq!(cache.get(a, "a2"), Some(4));
        // Too heavy alone: not kept, and the old version is gone too.
        cache.put(b, "b2".into(), 5, 101);
        assert_eq!(cache.get(b, "b1"), None);
        assert_eq!(cache.get(b, "b2"), None);
        // Idle entries make room, the least recently used first.
        cache.put(b, "b3".into(), 6, 30);
        {
            let mut entries = cache.entries.lock().unwrap();
            let long_ago = std::time::Instant::now() - 2 * WeighedCache::<u32>::IDLE;
            entries.get_mut(&a).unwrap().used = long_ago;
            entries.get_mut(&b).unwrap().used = long_ago + std::time::Duration::from_millis(1);
        }
        cache.put(c, "c2".into(), 7, 40);
        assert_eq!(cache.get(c, "c2"), Some(7));
        assert_eq!(cache.get(a, "a2"), None, "the older idle entry went");
        assert_eq!(cache.get(b, "b3"), Some(6), "one was enough");
        // The count bounds too.
        let small: WeighedCache<u32> = WeighedCache::new(1, 100);
        small.put(a, "a".into(), 1, 1);
        small.put(b, "b".into(), 2, 1);
        assert_eq!(small.get(a, "a"), Some(1));
        assert_eq!(small.get(b, "b"), None);
    }
}
