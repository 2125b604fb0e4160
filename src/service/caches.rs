//! The caches held by the use cases, in one place: every one bounded (by entries or by bytes),
//! none able to serve what the database no longer holds for longer than its stated lifetime.
//! [`FifoCache`] is the one byte-bounded cache of values that never change under their key
//! (the API's gzip cache is one too).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{TableAccess, table_json, vending};
use crate::model::{Ref, Warehouse, WarehouseId};

/// Values by key, bounded by the bytes they hold: the oldest entries go first when a newcomer
/// would pass the bound. For values that never change under their key (a metadata file's
/// derived bodies): there is nothing to invalidate, only room to make.
pub(crate) struct FifoCache<V> {
    inner: Mutex<FifoInner<V>>,
    max_bytes: usize,
}

struct FifoInner<V> {
    /// Each value with the bytes it was counted for.
    entries: HashMap<String, (V, usize)>,
    order: VecDeque<String>,
    bytes: usize,
}

impl<V: Clone> FifoCache<V> {
    pub(crate) fn new(max_bytes: usize) -> Self {
        FifoCache {
            inner: Mutex::new(FifoInner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let inner = self.inner.lock().expect("cache lock");
        inner.entries.get(key).map(|(value, _)| value.clone())
    }

    /// Keeps `value` under `key`, counted as `bytes`, unless the key is held already.
    pub(crate) fn insert(&self, key: &str, value: V, bytes: usize) {
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.entries.contains_key(key) {
            return;
        }
        inner.entries.insert(key.to_string(), (value, 0));
        inner.order.push_back(key.to_string());
        self.count(&mut inner, key, bytes);
    }

    /// The value under `key`, or `make()`'s, kept (counted as no bytes until [`Self::resize`]):
    /// for a value filled in later, such as a cell that concurrent callers wait on.
    pub(crate) fn get_or_insert_with(&self, key: &str, make: impl FnOnce() -> V) -> V {
        let mut inner = self.inner.lock().expect("cache lock");
        if let Some((value, _)) = inner.entries.get(key) {
            return value.clone();
        }
        let value = make();
        inner.entries.insert(key.to_string(), (value.clone(), 0));
        inner.order.push_back(key.to_string());
        value
    }

    /// Counts `bytes` for the entry under `key`, if it is still the one `is_it` recognizes (it
    /// may have been dropped, and the key taken again, meanwhile).
    pub(crate) fn resize(&self, key: &str, is_it: impl Fn(&V) -> bool, bytes: usize) {
        let mut inner = self.inner.lock().expect("cache lock");
        if inner
            .entries
            .get(key)
            .is_some_and(|(value, _)| is_it(value))
        {
            self.count(&mut inner, key, bytes);
        }
    }

    fn count(&self, inner: &mut FifoInner<V>, key: &str, bytes: usize) {
        if let Some((_, counted)) = inner.entries.get_mut(key) {
            inner.bytes = inner.bytes - *counted + bytes;
            *counted = bytes;
        }
        while inner.bytes > self.max_bytes {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some((_, counted)) = inner.entries.remove(&oldest) {
                inner.bytes -= counted;
            }
        }
    }
}

/// The metadata of `loadTable` with `snapshots=refs` (only the snapshots that branches and tags
/// point at), by metadata file: a file never changes, so neither does what it gives, and a table
/// with a long history is then served in that mode without parsing its whole metadata per
/// request. Bounded by bytes; the oldest entries go first.
pub(super) type ReferencedBodies = FifoCache<bytes::Bytes>;

/// Held at most by [`ReferencedBodies`]: a table's referenced snapshots are few, so this keeps
/// hundreds of tables.
pub(super) const REFERENCED_BYTES: usize = 4 << 20;

/// The caches the use cases share. Each is bounded; those of records that change (warehouses,
/// branches) live a few seconds and this process's own changes remove them at once.
pub(super) struct Caches {
    pub(super) parsed_tables: ParsedTables,
    /// `snapshots=refs` bodies by metadata file.
    pub(super) referenced: ReferencedBodies,
    /// The scan planning mode a table version's properties ask for, by metadata file.
    pub(super) planning_modes: FifoCache<Option<&'static str>>,
    /// Warehouses' scan planning modes, kept a few seconds.
    pub(super) warehouse_planning: Mutex<HashMap<WarehouseId, (Instant, Option<&'static str>)>>,
    /// Warehouses by id, for hot paths that need a warehouse's storage on every request (the
    /// S3 gateway, vended credentials).
    pub(super) warehouses: WarehouseCache,
    /// The `main` branch of each warehouse, kept the same way.
    pub(super) main_branches: Mutex<HashMap<WarehouseId, (Instant, Ref)>>,
    /// Table access by table location, read-only or not, and mode, reused while it is valid.
    pub(super) vended: Mutex<VendedCache>,
    /// Warehouses' storage credentials for signing, by warehouse and settings version.
    pub(super) credentials: Mutex<CredentialCache>,
    /// Object stores by warehouse and settings version (see `warehouse_storage`).
    pub(super) storages: Mutex<StorageCache>,
    /// Buckets of S3 warehouses the gateway serves, by warehouse and settings version.
    pub(super) buckets: Mutex<BucketCache>,
    /// Warehouses known to have refs besides `main` (which stays so: retired lines keep their
    /// commits readable), and when others were last seen to have none.
    pub(super) other_refs: Mutex<HashMap<WarehouseId, (Instant, bool)>>,
    /// Users this process recorded, with what it recorded and when (see `users::record_user`).
    pub(super) seen_users: Mutex<HashMap<String, (Instant, SeenUser)>>,
    /// Warehouses' maintenance policies, kept a few seconds.
    pub(super) maintenance:
        Mutex<HashMap<WarehouseId, (Instant, crate::model::lifecycle::MaintenancePolicy)>>,
    /// When this process last enqueued each table's maintenance (by table UUID).
    pub(super) maintained: Mutex<HashMap<(uuid::Uuid, crate::model::RefId), Instant>>,
}

/// Tables whose last maintenance this process remembers at most; past it the memory is cleared.
const MAINTAINED: usize = 65_536;

impl Caches {
    pub(super) fn maintenance(
        &self,
        warehouse: WarehouseId,
    ) -> Option<crate::model::lifecycle::MaintenancePolicy> {
        let cached = self.maintenance.lock().expect("cache lock");
        cached
            .get(&warehouse)
            .filter(|(at, _)| at.elapsed() < super::WAREHOUSE_TTL)
            .map(|(_, p)| p.clone())
    }

    pub(super) fn keep_maintenance(
        &self,
        warehouse: WarehouseId,
        policy: crate::model::lifecycle::MaintenancePolicy,
    ) {
        let mut cached = self.maintenance.lock().expect("cache lock");
        if cached.len() > 10_000 {
            cached.clear();
        }
        cached.insert(warehouse, (Instant::now(), policy));
    }

    pub(super) fn forget_maintenance(&self, warehouse: WarehouseId) {
        self.maintenance
            .lock()
            .expect("cache lock")
            .remove(&warehouse);
    }

    /// Whether a table's maintenance is due from this process (not enqueued within
    /// `interval`); when it is, it counts as enqueued now.
    pub(super) fn maintenance_due(
        &self,
        table: (uuid::Uuid, crate::model::RefId),
        interval: std::time::Duration,
    ) -> bool {
        let mut last = self.maintained.lock().expect("cache lock");
        if let Some(at) = last.get(&table)
            && at.elapsed() < interval
        {
            return false;
        }
        if last.len() >= MAINTAINED {
            last.clear();
        }
        last.insert(table, Instant::now());
        true
    }
}

/// What was recorded of a user, to tell when a token says something new.
pub(super) type SeenUser = (Option<String>, Option<String>, crate::model::UserKind);

/// How long a recorded user is not recorded again (another instance may have deleted it).
pub(super) const SEEN_USER_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Held at most by the planning modes (their keys, metadata file locations, are most of it).
const PLANNING_MODES_BYTES: usize = 4 << 20;

/// Users remembered at most; past it the memory is cleared.
pub(super) const SEEN_USERS: usize = 65_536;

impl Caches {
    pub(super) fn new() -> Self {
        Caches {
            parsed_tables: ParsedTables::for_commits(),
            referenced: FifoCache::new(REFERENCED_BYTES),
            planning_modes: FifoCache::new(PLANNING_MODES_BYTES),
            warehouse_planning: Mutex::new(HashMap::new()),
            warehouses: Mutex::new(HashMap::new()),
            main_branches: Mutex::new(HashMap::new()),
            vended: Mutex::new(VendedCache::default()),
            credentials: Mutex::new(HashMap::new()),
            storages: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            other_refs: Mutex::new(HashMap::new()),
            seen_users: Mutex::new(HashMap::new()),
            maintenance: Mutex::new(HashMap::new()),
            maintained: Mutex::new(HashMap::new()),
        }
    }
}

pub(super) type BucketCache =
    HashMap<(WarehouseId, chrono::DateTime<chrono::Utc>), Arc<crate::storage::s3::S3Bucket>>;

pub(super) type StorageCache =
    HashMap<(WarehouseId, chrono::DateTime<chrono::Utc>), Arc<dyn crate::storage::ObjectStorage>>;

/// What a vended table access is cached under: warehouse, its settings version, ref, table name,
/// location and UUID, what the client may do with the files, mode.
pub(super) type VendedKey = (
    WarehouseId,
    chrono::DateTime<chrono::Utc>,
    String,
    crate::model::FileAccess,
    vending::AccessMode,
);

/// The most bytes of vended table access kept (keys, configs, and the rendering the HTTP layer
/// adds to each): a few thousand tables' keys. Past it the oldest entries go; an entry past its
/// reuse time goes when next looked up or when its turn comes.
pub(super) const VENDED_BYTES: usize = 8 << 20;

/// Vended table access with the unix time each is reused until, bounded by [`VENDED_BYTES`]
/// (estimated) and evicted oldest first. (It was bounded by a count of 10,000 entries before:
/// about 35 MB of keys, which the soak saw as memory growing for as long as new tables came.)
#[derive(Default)]
pub(super) struct VendedCache {
    entries: HashMap<VendedKey, (i64, Arc<TableAccess>, usize, u64)>,
    order: VecDeque<(VendedKey, u64)>,
    bytes: usize,
    next: u64,
}

impl VendedCache {
    /// The access under `key`, while it may still be reused at `now_secs`.
    pub(super) fn get(&mut self, key: &VendedKey, now_secs: i64) -> Option<Arc<TableAccess>> {
        match self.entries.get(key) {
            Some((valid_until, access, _, _)) if now_secs < *valid_until => Some(access.clone()),
            Some(_) => {
                if let Some((_, _, bytes, _)) = self.entries.remove(key) {
                    self.bytes -= bytes;
                }
                None
            }
            None => None,
        }
    }

    pub(super) fn insert(&mut self, key: VendedKey, valid_until: i64, access: Arc<TableAccess>) {
        let strings = |map: &std::collections::BTreeMap<String, String>| -> usize {
            map.iter().map(|(k, v)| k.len() + v.len() + 64).sum()
        };
        let counted = strings(&access.config)
            + access
                .credentials
                .iter()
                .map(|(prefix, config)| prefix.len() + strings(config))
                .sum::<usize>();
        // The HTTP layer's rendering of the same, and the key and the maps' own overhead.
        let bytes = 2 * counted + key.2.len() + 256;
        let generation = self.next;
        self.next += 1;
        if let Some((_, _, old, _)) = self
            .entries
            .insert(key.clone(), (valid_until, access, bytes, generation))
        {
            self.bytes -= old;
        }
        self.bytes += bytes;
        self.order.push_back((key, generation));
        while self.bytes > VENDED_BYTES || self.order.len() > 4 * self.entries.len() + 64 {
            let Some((oldest, generation)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&oldest).is_some_and(|e| e.3 == generation)
                && let Some((_, _, bytes, _)) = self.entries.remove(&oldest)
            {
                self.bytes -= bytes;
            }
        }
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (self.entries.len(), self.bytes)
    }
}

pub(super) type CredentialCache =
    HashMap<(WarehouseId, chrono::DateTime<chrono::Utc>), Arc<crate::model::StorageCredential>>;

pub(super) type WarehouseCache =
    std::sync::Mutex<HashMap<WarehouseId, (std::time::Instant, Arc<Warehouse>)>>;

/// How long a cached warehouse is used before it is read again.
pub(super) const WAREHOUSE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Parsed table metadata by table and version, so that a commit need not parse the JSON of the
/// version it builds on (the one the previous commit produced). Keyed by version, it can never
/// serve anything but the exact version the database holds.
pub(super) type ParsedTables = WeighedCache<Arc<ParsedTable>>;

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
pub(super) struct WeighedCache<V> {
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

    pub(super) fn get(&self, id: crate::model::TabularId, metadata_location: &str) -> Option<V> {
        let mut entries = self.entries.lock().expect("cache lock");
        let entry = entries
            .get_mut(&id)
            .filter(|e| e.file == metadata_location)?;
        entry.used = std::time::Instant::now();
        Some(entry.value.clone())
    }

    pub(super) fn put(&self, id: crate::model::TabularId, file: String, value: V, weight: usize) {
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

    pub(super) fn for_commits() -> Self {
        WeighedCache::new(Self::MAX_ENTRIES, Self::MAX_SNAPSHOTS)
    }

    pub(super) fn put_parsed(
        &self,
        id: crate::model::TabularId,
        file: String,
        parsed: Arc<ParsedTable>,
    ) {
        let weight = parsed.metadata.snapshots().len();
        self.put(id, file, parsed, weight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TabularId;

    #[test]
    fn a_fifo_cache_drops_its_oldest_entries_beyond_its_bytes() {
        let cache: FifoCache<u32> = FifoCache::new(10);
        cache.insert("a", 1, 4);
        cache.insert("b", 2, 4);
        cache.insert("a", 9, 4);
        assert_eq!(cache.get("a"), Some(1), "a held key keeps its value");
        cache.insert("c", 3, 4);
        assert_eq!(cache.get("a"), None, "the oldest went");
        assert_eq!((cache.get("b"), cache.get("c")), (Some(2), Some(3)));
        // Sized later: counted then, and only while it is the same entry.
        assert_eq!(cache.get_or_insert_with("d", || 4), 4);
        assert_eq!(cache.get_or_insert_with("d", || 5), 4);
        cache.resize("d", |v| *v == 5, 100);
        assert_eq!(cache.get("b"), Some(2), "a stranger's size is not counted");
        cache.resize("d", |v| *v == 4, 6);
        assert_eq!(cache.get("b"), None, "4 + 4 + 6 bytes pass the bound");
        assert_eq!((cache.get("c"), cache.get("d")), (Some(3), Some(4)));
        // Larger than the bound alone: not kept.
        cache.insert("e", 5, 11);
        assert_eq!(cache.get("e"), None);
    }

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

    fn access(secret: &str) -> Arc<TableAccess> {
        let mut config = std::collections::BTreeMap::new();
        config.insert("s3.secret-access-key".to_string(), secret.to_string());
        Arc::new(TableAccess {
            credentials: vec![("s3://lake/t".to_string(), config.clone())],
            config,
            rendered: std::sync::OnceLock::new(),
        })
    }

    fn vended_key(n: usize) -> VendedKey {
        (
            WarehouseId(uuid::Uuid::nil()),
            chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            format!("ns.t{n}"),
            crate::model::FileAccess::Full,
            vending::AccessMode::Vended,
        )
    }

    #[test]
    fn vended_access_is_bounded_by_bytes_and_reuse_time() {
        let mut cache = VendedCache::default();
        let secret = "s".repeat(1000);
        for n in 0..20_000 {
            cache.insert(vended_key(n), 100, access(&secret));
            assert!(cache.held().1 <= VENDED_BYTES);
        }
        let (entries, bytes) = cache.held();
        assert!(
            entries > 1000 && bytes > VENDED_BYTES / 2,
            "{entries} {bytes}"
        );
        // The newest are kept, the oldest went first.
        assert!(cache.get(&vended_key(19_999), 50).is_some());
        assert!(cache.get(&vended_key(0), 50).is_none());
        // Replacing an entry counts it once; one past its reuse time is dropped when looked up.
        cache.insert(vended_key(19_999), 100, access("new"));
        cache.insert(vended_key(19_999), 100, access("newer"));
        assert_eq!(
            cache.get(&vended_key(19_999), 50).unwrap().config["s3.secret-access-key"],
            "newer"
        );
        let before = cache.held();
        assert!(cache.get(&vended_key(19_999), 100).is_none());
        assert_eq!(cache.held().0, before.0 - 1);
        assert!(cache.held().1 < before.1);
        // Replacements do not grow the queue without end.
        for _ in 0..10_000 {
            cache.insert(vended_key(1), 100, access("x"));
        }
        assert!(cache.order.len() <= 4 * cache.entries.len() + 64);
    }
}
