//! Table maintenance by policy: snapshot expiry as a task, committed through the normal commit
//! path (a concurrent writer wins; the task computes again).
//!
//! The policy is Iceberg's own properties (`history.expire.max-snapshot-age-ms`,
//! `history.expire.min-snapshots-to-keep`, `history.expire.max-ref-age-ms`, and each ref's
//! `max-snapshot-age-ms`, `min-snapshots-to-keep`, `max-ref-age-ms`), taken from the table, else
//! its namespace (nearest first), else the warehouse's maintenance policy, else Iceberg's
//! defaults; `floe.maintenance.enabled` on the table or a namespace turns it on or off there.

use std::collections::{BTreeMap, HashMap, HashSet};

use iceberg::spec::{
    FormatVersion, Manifest, ManifestList, ManifestStatus, SnapshotReference, SnapshotRetention,
    TableMetadata,
};
use iceberg::{TableRequirement, TableUpdate};
use serde_json::json;

use super::tasks::{TaskRun, TaskSettings};
use super::{RequestContext, Services, TableChange};
use crate::error::{Error, Result};
use crate::model::lifecycle::{MaintenancePolicy, NewTask, queues};
use crate::model::{
    Action, MAIN_BRANCH, NamespaceIdent, RefKind, RefSelector, TabularIdent, WarehouseId,
};
use crate::storage::location::Location;

pub const MAX_SNAPSHOT_AGE: &str = "history.expire.max-snapshot-age-ms";
pub const MIN_SNAPSHOTS: &str = "history.expire.min-snapshots-to-keep";
pub const MAX_REF_AGE: &str = "history.expire.max-ref-age-ms";
pub const ENABLED: &str = "floe.maintenance.enabled";
/// Files in a table's folder that nothing references are removed once older than this.
pub const ORPHANS_OLDER_THAN: &str = "floe.maintenance.orphan-files-older-than-ms";
/// Iceberg's default for removing orphan files: three days.
const DEFAULT_ORPHAN_AGE_MS: i64 = 3 * 24 * 3600 * 1000;
/// Younger files may be a write in flight: never removed.
const MIN_ORPHAN_AGE_MS: i64 = 1000;

/// What an expiry decided: refs to remove, the snapshots to expire with their manifest lists,
/// and the table's maintenance properties.
type Decided = (Vec<String>, Vec<(i64, String)>, HashMap<String, String>);

/// The table a maintenance task names: its warehouse, branch (by line and name), name, and the
/// table itself while it is the same table on that branch.
struct TaskTable {
    warehouse: WarehouseId,
    line: crate::model::RefId,
    branch: String,
    ident: TabularIdent,
    table: Option<crate::model::Tabular>,
}

/// What expiry did.
enum Expired {
    /// Nothing was done, and nothing more is: why.
    Skipped(String),
    /// What it did, and the table's maintenance properties.
    Done(String, HashMap<String, String>),
}

/// The statistics files a table's metadata names (`statistics`, `partition-statistics`).
fn statistics_files(json: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Vec::new();
    };
    ["statistics", "partition-statistics"]
        .iter()
        .filter_map(|key| value.get(*key).and_then(|v| v.as_array()))
        .flatten()
        .filter_map(|s| s.get("statistics-path").and_then(|p| p.as_str()))
        .map(str::to_string)
        .collect()
}
/// Iceberg's default: five days.
const DEFAULT_MAX_SNAPSHOT_AGE_MS: i64 = 5 * 24 * 3600 * 1000;

/// The table-wide expiry settings a table ends up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub max_snapshot_age_ms: i64,
    pub min_snapshots_to_keep: usize,
    /// `None`: refs never expire.
    pub max_ref_age_ms: Option<i64>,
}

impl Expiry {
    /// From `properties` (the table's, with its namespaces' and the warehouse's filled in).
    pub fn of(properties: &HashMap<String, String>) -> Expiry {
        let int = |key: &str| {
            properties
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        Expiry {
            max_snapshot_age_ms: int(MAX_SNAPSHOT_AGE)
                .filter(|v| *v >= 0)
                .unwrap_or(DEFAULT_MAX_SNAPSHOT_AGE_MS),
            min_snapshots_to_keep: int(MIN_SNAPSHOTS)
                .filter(|v| *v >= 1)
                .map(|v| v as usize)
                .unwrap_or(1),
            max_ref_age_ms: int(MAX_REF_AGE).filter(|v| *v > 0),
        }
    }
}

/// What expiry removes from a table: refs past their age (never `main`) and the snapshots no
/// remaining ref keeps, by Iceberg's rules: each branch keeps its ancestors while fewer than its
/// minimum are kept or they are younger than its maximum age; a tag keeps its snapshot; snapshots
/// no ref reaches are kept while younger than the table's maximum age.
pub fn expire(
    metadata: &TableMetadata,
    refs: &HashMap<String, SnapshotReference>,
    expiry: Expiry,
    now_ms: i64,
) -> (Vec<String>, Vec<i64>) {
    let mut removed_refs = Vec::new();
    let mut retained: HashSet<i64> = HashSet::new();
    for (name, reference) in refs {
        let Some(snapshot) = metadata.snapshot_by_id(reference.snapshot_id) else {
            continue;
        };
        let (max_ref_age, branch) = match &reference.retention {
            SnapshotRetention::Branch {
                min_snapshots_to_keep,
                max_snapshot_age_ms,
                max_ref_age_ms,
            } => (
                max_ref_age_ms.or(expiry.max_ref_age_ms),
                Some((
                    min_snapshots_to_keep
                        .map(|v| v.max(1) as usize)
                        .unwrap_or(expiry.min_snapshots_to_keep),
                    max_snapshot_age_ms.unwrap_or(expiry.max_snapshot_age_ms),
                )),
            ),
            SnapshotRetention::Tag { max_ref_age_ms } => {
                (max_ref_age_ms.or(expiry.max_ref_age_ms), None)
            }
        };
        if name != "main"
            && let Some(age) = max_ref_age
            && now_ms - snapshot.timestamp_ms() > age
        {
            removed_refs.push(name.clone());
            continue;
        }
        match branch {
            None => {
                retained.insert(snapshot.snapshot_id());
            }
            Some((min_keep, max_age)) => {
                let older_than = now_ms - max_age;
                let mut kept = 0usize;
                let mut next = Some(snapshot);
                while let Some(s) = next {
                    if kept < min_keep || s.timestamp_ms() >= older_than {
                        retained.insert(s.snapshot_id());
                        kept += 1;
                    } else {
                        break;
                    }
                    next = s
                        .parent_snapshot_id()
                        .and_then(|p| metadata.snapshot_by_id(p));
                }
            }
        }
    }
    // Snapshots no ref reaches (a staged write, a rolled-back branch): kept while young.
    let reachable: HashSet<i64> = {
        let mut all = HashSet::new();
        for (name, reference) in refs {
            if removed_refs.contains(name) {
                continue;
            }
            let mut next = metadata.snapshot_by_id(reference.snapshot_id);
            while let Some(s) = next {
                if !all.insert(s.snapshot_id()) {
                    break;
                }
                next = s
                    .parent_snapshot_id()
                    .and_then(|p| metadata.snapshot_by_id(p));
            }
        }
        all
    };
    let older_than = now_ms - expiry.max_snapshot_age_ms;
    let mut expired: Vec<i64> = metadata
        .snapshots()
        .filter(|s| !retained.contains(&s.snapshot_id()))
        .filter(|s| reachable.contains(&s.snapshot_id()) || s.timestamp_ms() < older_than)
        .map(|s| s.snapshot_id())
        .collect();
    expired.sort_unstable();
    removed_refs.sort();
    (removed_refs, expired)
}

/// A table's refs, from its metadata JSON (`TableMetadata` does not show them).
pub fn refs_of(json: &[u8]) -> Result<HashMap<String, SnapshotReference>> {
    #[derive(serde::Deserialize)]
    struct Refs {
        #[serde(default)]
        refs: HashMap<String, SnapshotReference>,
    }
    let parsed: Refs =
        serde_json::from_slice(json).map_err(|e| Error::internal("reading a table's refs", e))?;
    Ok(parsed.refs)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The task that maintains one table on a branch (its target: `maintain:<uuid>`, with
/// `@<branch>` for branches other than `main`).
pub fn maintenance_task(
    warehouse: WarehouseId,
    branch: &str,
    ident: &TabularIdent,
    uuid: uuid::Uuid,
    max_attempts: u32,
) -> NewTask {
    let target = if branch == MAIN_BRANCH {
        format!("maintain:{uuid}")
    } else {
        format!("maintain:{uuid}@{branch}")
    };
    NewTask {
        id: uuid::Uuid::now_v7(),
        warehouse_id: warehouse,
        queue: queues::MAINTENANCE,
        target,
        payload: json!({ "table": ident.to_string(), "namespace": ident.namespace.levels(), "name": ident.name, "uuid": uuid, "branch": branch }),
        scheduled_at: now_ms(),
        max_attempts,
    }
}

/// The files of a snapshot's manifest list: the list itself, its manifests and the data and
/// delete files they name (`live`: only entries that are not deleted). The list and its manifests
/// are read only inside the table's `folders`: one outside them (a list a client wrote naming
/// another table's manifests) fails the task, so nothing is deleted on what another table's
/// files say, and nothing it uses is taken for an orphan.
#[allow(clippy::too_many_arguments)]
async fn snapshot_files(
    storage: &dyn crate::storage::ObjectStorage,
    folders: &[Location],
    format: FormatVersion,
    list: &str,
    manifests_seen: &mut HashSet<String>,
    files: &mut HashSet<String>,
    live: bool,
    skip_manifests: &HashSet<String>,
) -> Result<()> {
    if !files.insert(list.to_string()) {
        return Ok(()); // read already (another version of the table lists it too)
    }
    let inside = |path: &str| -> Result<Location> {
        let location = Location::parse(path)?;
        if !folders.iter().any(|f| location.is_within(f)) {
            return Err(Error::forbidden(format!(
                "{path} lies outside the table's folders; maintenance reads nothing there and \
                 deletes nothing"
            )));
        }
        Ok(location)
    };
    let Some(bytes) = storage.get(&inside(list)?).await? else {
        return Ok(());
    };
    let manifests = ManifestList::parse_with_version(&bytes, format)
        .map_err(|e| Error::internal("reading a manifest list", e))?;
    for manifest in manifests.entries() {
        let path = manifest.manifest_path.clone();
        files.insert(path.clone());
        if skip_manifests.contains(&path) || !manifests_seen.insert(path.clone()) {
            continue;
        }
        let Some(bytes) = storage.get(&inside(&path)?).await? else {
            continue;
        };
        let bytes = crate::model::v3_types::lower_manifest(&bytes).unwrap_or(bytes);
        let parsed =
            Manifest::parse_avro(&bytes).map_err(|e| Error::internal("reading a manifest", e))?;
        for entry in parsed.entries() {
            if live && entry.status() == ManifestStatus::Deleted {
                continue;
            }
            files.insert(entry.file_path().to_string());
        }
    }
    Ok(())
}

/// A table's metadata, parsed without holding up the worker's requests when it is large (`cpu`).
fn parse_large(json: &[u8]) -> Result<TableMetadata> {
    super::cpu::bound_if(json.len() >= super::cpu::LARGE_METADATA_BYTES, || {
        super::metadata::parse_table_metadata(json)
    })
}

/// A table metadata file's bytes as JSON (gzip-compressed ones unpacked).
fn metadata_json(bytes: Vec<u8>) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read as _;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::internal("unpacking a metadata file", e))?;
        return Ok(out);
    }
    Ok(bytes)
}

impl Services {
    /// What the table's versions that other refs read use (`RefStore::versions_elsewhere`): the
    /// files of their snapshots (`live`: only entries not marked deleted) and their statistics
    /// files. A version whose metadata file cannot be read fails the task: deleting without
    /// knowing what it uses could break that ref.
    #[allow(clippy::too_many_arguments)]
    async fn files_elsewhere(
        &self,
        storage: &dyn crate::storage::ObjectStorage,
        folders: &[Location],
        warehouse: WarehouseId,
        line: crate::model::RefId,
        uuid: uuid::Uuid,
        live: bool,
        files: &mut HashSet<String>,
    ) -> Result<usize> {
        let versions = self
            .store
            .refs
            .versions_elsewhere(warehouse, line, uuid)
            .await?;
        let (mut seen, none) = (HashSet::new(), HashSet::new());
        for version in &versions {
            let bytes = storage.get(&Location::parse(version)?).await?.ok_or_else(|| {
                Error::conflict(format!(
                    "the metadata file {version}, which another ref reads, is gone; nothing is deleted"
                ))
            })?;
            let json = metadata_json(bytes)?;
            let metadata = parse_large(&json)?;
            for snapshot in metadata.snapshots() {
                snapshot_files(
                    storage,
                    folders,
                    metadata.format_version(),
                    snapshot.manifest_list(),
                    &mut seen,
                    files,
                    live,
                    &none,
                )
                .await?;
            }
            files.extend(statistics_files(&json));
            files.insert(version.clone());
        }
        Ok(versions.len())
    }

    /// Writes a running task's progress at once (not with the next heartbeat).
    async fn save_progress(&self, run: &TaskRun, progress: serde_json::Value) -> Result<()> {
        run.record_progress(progress.clone());
        match self
            .store
            .tasks
            .heartbeat_task(&run.lease, now_ms(), Some(&progress))
            .await?
        {
            crate::model::lifecycle::Heartbeat::Held => Ok(()),
            _ => Err(Error::conflict("the task was taken over or cancelled")),
        }
    }

    /// Deletes the files of expired snapshots (`expiring`: id and manifest list; those still in
    /// the table were not expired and count as kept) that no kept snapshot uses and no version
    /// of the table another ref reads uses (`files_elsewhere`), inside the table's location.
    async fn delete_unreferenced(
        &self,
        run: &TaskRun,
        warehouse: WarehouseId,
        line: crate::model::RefId,
        ident: &TabularIdent,
        expiring: &[(i64, String)],
    ) -> Result<u64> {
        if expiring.is_empty() {
            return Ok(0);
        }
        let Some(table) = self.store.tabulars.get_tabular(line, ident).await? else {
            return Ok(0);
        };
        let metadata = parse_large(&table.metadata)?;
        let location = Location::parse(&table.location)?;
        let folders = self.table_folders(warehouse, table.uuid, &location).await?;
        let wh = self.cached_warehouse(warehouse).await?;
        let storage = self.warehouse_storage(&wh).await?;
        let format = metadata.format_version();
        // What the kept snapshots use.
        let (mut kept_manifests, mut kept) = (HashSet::new(), HashSet::new());
        let none = HashSet::new();
        for snapshot in metadata.snapshots() {
            snapshot_files(
                storage.as_ref(),
                &folders,
                format,
                snapshot.manifest_list(),
                &mut kept_manifests,
                &mut kept,
                true,
                &none,
            )
            .await?;
        }
        self.files_elsewhere(
            storage.as_ref(),
            &folders,
            warehouse,
            line,
            table.uuid,
            true,
            &mut kept,
        )
        .await?;
        // What the expired ones used (manifests the kept ones list are not read again).
        let (mut seen, mut used) = (HashSet::new(), HashSet::new());
        for (id, list) in expiring {
            if metadata.snapshot_by_id(*id).is_some() {
                continue;
            }
            snapshot_files(
                storage.as_ref(),
                &folders,
                format,
                list,
                &mut seen,
                &mut used,
                false,
                &kept_manifests,
            )
            .await?;
        }
        let doomed: Vec<Location> = super::cpu::bound_if(used.len() >= 4096, || {
            let mut doomed: Vec<Location> = used
                .difference(&kept)
                .filter_map(|f| Location::parse(f).ok())
                .filter(|l| l.is_within(&location) && *l != location)
                .collect();
            doomed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            doomed
        });
        let mut deleted = 0u64;
        for file in &doomed {
            storage.delete(file).await?;
            deleted += 1;
            if deleted.is_multiple_of(1000) {
                run.record_progress(json!({ "expiring": expiring, "files-deleted": deleted }));
            }
        }
        tracing::info!(table = %ident, files = deleted, "deleted the files expired snapshots left");
        Ok(deleted)
    }

    pub async fn maintenance_policy(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<MaintenancePolicy> {
        self.authorize_warehouse(ctx, Action::WarehouseRead, warehouse)
            .await?;
        self.store.lifecycle.maintenance_policy(warehouse).await
    }

    pub async fn set_maintenance_policy(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        policy: MaintenancePolicy,
    ) -> Result<MaintenancePolicy> {
        policy.validate()?;
        self.authorize_warehouse(ctx, Action::WarehouseManageTasks, warehouse)
            .await?;
        let events = self.change_event(
            ctx,
            "warehouse.maintenance-policy-set",
            format!("warehouse/{warehouse}"),
            serde_json::to_value(&policy).unwrap_or_default(),
        );
        self.store
            .lifecycle
            .set_maintenance_policy(warehouse, &policy, &events)
            .await?;
        self.caches.forget_maintenance(warehouse);
        Ok(policy)
    }

    /// Enqueues maintenance now for one table, or every table of a namespace (with those below
    /// it), or of the warehouse, on a branch (`main` unless named). Returns how many tasks were
    /// enqueued (a table that has one pending already gets no second).
    pub async fn run_maintenance(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        branch: Option<&str>,
        namespace: Option<NamespaceIdent>,
        table: Option<String>,
    ) -> Result<usize> {
        self.authorize_warehouse(ctx, Action::WarehouseManageTasks, warehouse)
            .await?;
        let main = match branch.unwrap_or(MAIN_BRANCH) {
            MAIN_BRANCH => self.main_branch(warehouse).await?,
            name => self
                .store
                .warehouses
                .get_ref(warehouse, name)
                .await?
                .filter(|r| r.kind == RefKind::Branch)
                .ok_or_else(|| {
                    Error::not_found(
                        crate::error::Entity::Ref,
                        format!("branch {name} does not exist"),
                    )
                })?,
        };
        let mut tables = Vec::new();
        match (namespace, table) {
            (Some(ns), Some(name)) => {
                let ident = TabularIdent::new(ns, name)?;
                let t = self
                    .store
                    .tabulars
                    .get_tabular(main.id, &ident)
                    .await?
                    .filter(|t| t.kind == crate::model::TabularKind::Table)
                    .ok_or_else(|| {
                        Error::not_found(
                            crate::error::Entity::Table,
                            format!("table {ident} does not exist"),
                        )
                    })?;
                tables.push((ident, t.uuid));
            }
            (None, Some(_)) => {
                return Err(Error::bad_request("a table is named with its namespace"));
            }
            (scope, None) => {
                tables = self
                    .store
                    .lifecycle
                    .tables_in(main.id, scope.as_ref())
                    .await?;
            }
        }
        let mut enqueued = 0;
        for (ident, uuid) in &tables {
            let task =
                maintenance_task(warehouse, &main.name, ident, *uuid, self.task_max_attempts);
            if self.store.tasks.enqueue_unique(&task).await? {
                enqueued += 1;
            }
        }
        if enqueued > 0 {
            self.wake_workers();
        }
        Ok(enqueued)
    }

    /// After a commit to a table on a branch: enqueues its maintenance there when the
    /// warehouse's policy (or the table's `floe.maintenance.enabled`) turns it on and this
    /// instance has not done so within the policy's interval. Errors are logged, never the
    /// commit's.
    pub(crate) async fn after_commit(
        &self,
        warehouse: WarehouseId,
        branch: &crate::model::Ref,
        ident: &TabularIdent,
        metadata: &TableMetadata,
    ) {
        let policy = match self.cached_maintenance(warehouse).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e.message, "reading the maintenance policy failed");
                return;
            }
        };
        let enabled = match metadata.properties().get(ENABLED).map(String::as_str) {
            Some(v) => v.eq_ignore_ascii_case("true"),
            None => policy.enabled,
        };
        if !enabled || metadata.snapshots().len() < 2 {
            return;
        }
        let uuid = metadata.uuid();
        if !self.caches.maintenance_due(
            (uuid, branch.id),
            std::time::Duration::from_secs(policy.interval_seconds),
        ) {
            return;
        }
        let task = maintenance_task(warehouse, &branch.name, ident, uuid, self.task_max_attempts);
        match self.store.tasks.enqueue_unique(&task).await {
            Ok(true) => self.wake_workers(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e.message, "enqueueing maintenance failed"),
        }
    }

    async fn cached_maintenance(&self, warehouse: WarehouseId) -> Result<MaintenancePolicy> {
        if let Some(policy) = self.caches.maintenance(warehouse) {
            return Ok(policy);
        }
        let policy = self.store.lifecycle.maintenance_policy(warehouse).await?;
        self.caches.keep_maintenance(warehouse, policy.clone());
        Ok(policy)
    }

    /// The properties that decide a table's maintenance: the warehouse's policy, then each
    /// namespace from the top down, then the table's own (later wins).
    async fn effective_properties(
        &self,
        warehouse: WarehouseId,
        main: crate::model::RefId,
        ident: &TabularIdent,
        table: &TableMetadata,
    ) -> Result<HashMap<String, String>> {
        let policy = self.store.lifecycle.maintenance_policy(warehouse).await?;
        let mut properties: HashMap<String, String> = policy.properties.into_iter().collect();
        properties.insert(ENABLED.into(), policy.enabled.to_string());
        let levels = ident.namespace.levels();
        for depth in 1..=levels.len() {
            let ns = NamespaceIdent::new(levels[..depth].to_vec())?;
            if let Some(found) = self.store.namespaces.get_namespace(main, &ns).await? {
                for key in [
                    MAX_SNAPSHOT_AGE,
                    MIN_SNAPSHOTS,
                    MAX_REF_AGE,
                    ENABLED,
                    ORPHANS_OLDER_THAN,
                ] {
                    if let Some(v) = found.properties.get(key) {
                        properties.insert(key.into(), v.clone());
                    }
                }
            }
        }
        for (k, v) in table.properties() {
            properties.insert(k.clone(), v.clone());
        }
        Ok(properties)
    }

    /// Expires a table's snapshots by its policy, through the normal commit path: the commit
    /// asserts every ref as it was read, so a concurrent writer wins and the expiry is computed
    /// again on the new state.
    pub(crate) async fn run_maintenance_task(
        &self,
        run: &TaskRun,
        _settings: &TaskSettings,
    ) -> Result<Option<String>> {
        let (expired, properties) = match self.expire_table(run).await? {
            Expired::Skipped(why) => return Ok(Some(why)),
            Expired::Done(message, properties) => (message, properties),
        };
        let older_than = properties
            .get(ORPHANS_OLDER_THAN)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v >= MIN_ORPHAN_AGE_MS)
            .unwrap_or(DEFAULT_ORPHAN_AGE_MS);
        let orphans = self.remove_orphans(run, older_than).await?;
        Ok(Some(format!("{expired}; removed {orphans} orphan files")))
    }

    /// The table a maintenance task names, on its branch, if it is still the same table there
    /// (`None` too when the branch is gone).
    async fn task_table(&self, run: &TaskRun) -> Result<TaskTable> {
        let task = &run.lease.task;
        let warehouse = task.warehouse_id;
        let namespace: Vec<String> =
            serde_json::from_value(task.payload.get("namespace").cloned().unwrap_or_default())
                .map_err(|_| Error::bad_request("the task names no namespace"))?;
        let name = task
            .payload
            .get("name")
            .and_then(|v| v.as_str())
            .ok_or_else(|| Error::bad_request("the task names no table"))?;
        let ident = TabularIdent::new(NamespaceIdent::new(namespace)?, name.to_string())?;
        let uuid = task
            .payload
            .get("uuid")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let branch = task
            .payload
            .get("branch")
            .and_then(|v| v.as_str())
            .unwrap_or(MAIN_BRANCH)
            .to_string();
        let line = match self.store.warehouses.get_ref(warehouse, &branch).await? {
            Some(r) if r.kind == RefKind::Branch => r.id,
            _ => {
                return Ok(TaskTable {
                    warehouse,
                    line: crate::model::RefId(uuid::Uuid::nil()),
                    branch,
                    ident,
                    table: None,
                });
            }
        };
        let table = self
            .store
            .tabulars
            .get_tabular(line, &ident)
            .await?
            .filter(|t| t.uuid.to_string() == uuid);
        Ok(TaskTable {
            warehouse,
            line,
            branch,
            ident,
            table,
        })
    }

    /// Removes files in the table's folder that nothing references (no kept snapshot's manifest
    /// list, manifest or data file, no metadata or statistics file, nothing a version of the
    /// table another ref reads uses) and that were last written longer ago than
    /// `older_than_ms` (files of writes not yet committed are younger).
    async fn remove_orphans(&self, run: &TaskRun, older_than_ms: i64) -> Result<u64> {
        let TaskTable {
            warehouse,
            line,
            ident,
            table,
            ..
        } = self.task_table(run).await?;
        let Some(table) = table else {
            return Ok(0);
        };
        let metadata = parse_large(&table.metadata)?;
        let location = Location::parse(&table.location)?;
        let folders = self.table_folders(warehouse, table.uuid, &location).await?;
        let wh = self.cached_warehouse(warehouse).await?;
        let storage = self.warehouse_storage(&wh).await?;
        let (mut seen, mut referenced) = (HashSet::new(), HashSet::new());
        let none = HashSet::new();
        for snapshot in metadata.snapshots() {
            snapshot_files(
                storage.as_ref(),
                &folders,
                metadata.format_version(),
                snapshot.manifest_list(),
                &mut seen,
                &mut referenced,
                false,
                &none,
            )
            .await?;
        }
        referenced.extend(statistics_files(&table.metadata));
        self.files_elsewhere(
            storage.as_ref(),
            &folders,
            warehouse,
            line,
            table.uuid,
            false,
            &mut referenced,
        )
        .await?;
        let cutoff = now_ms() - older_than_ms;
        let mut removed = 0u64;
        for (file, modified) in storage.list_files(&location).await? {
            let path = file.as_str();
            if modified > cutoff
                || referenced.contains(path)
                || path.ends_with(".metadata.json")
                || path.ends_with("version-hint.text")
            {
                continue;
            }
            storage.delete(&file).await?;
            removed += 1;
        }
        if removed > 0 {
            tracing::info!(table = %ident, files = removed, "removed orphan files");
        }
        Ok(removed)
    }

    /// Expires a table's snapshots (see the module's doc). The expiry is decided on the table as
    /// it is when this process's writers to it have taken their turn (`commit_prepared`), and
    /// committed with every ref asserted as it was then: a writer in another instance that
    /// commits in between wins, and the expiry is decided again.
    async fn expire_table(&self, run: &TaskRun) -> Result<Expired> {
        let TaskTable {
            warehouse,
            line,
            branch,
            ident,
            table,
        } = self.task_table(run).await?;
        // An attempt that died between its commit and the end of its deletions: finish those.
        if let Some(expiring) = run
            .resumed_progress()
            .and_then(|p| p.get("expiring"))
            .and_then(|e| serde_json::from_value::<Vec<(i64, String)>>(e.clone()).ok())
        {
            self.delete_unreferenced(run, warehouse, line, &ident, &expiring)
                .await?;
        }
        let Some(table) = table else {
            return Ok(Expired::Skipped(format!(
                "{ident} is gone, or another table now"
            )));
        };
        let uuid = table.uuid;
        let metadata = parse_large(&table.metadata)?;
        // The warehouse's and namespaces' part; the table's own properties are read again with
        // the table at commit time.
        let mut inherited = self
            .effective_properties(warehouse, line, &ident, &metadata)
            .await?;
        for key in metadata.properties().keys() {
            inherited.remove(key);
        }
        let enabled = |properties: &HashMap<String, String>| {
            properties
                .get(ENABLED)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        };
        let ctx = RequestContext {
            reference: RefSelector::parse(Some(&branch)),
            ..RequestContext::system()
        };
        let mut decided: Option<Decided> = None;
        let mut off = false;
        let committed = self
            .commit_prepared(&ctx, warehouse, &ident, 5, |table| {
                decided = None;
                if table.uuid != uuid {
                    return Ok(None);
                }
                let metadata = parse_large(&table.metadata)?;
                let mut properties = inherited.clone();
                for (k, v) in metadata.properties() {
                    properties.insert(k.clone(), v.clone());
                }
                if !enabled(&properties) {
                    off = true;
                    return Ok(None);
                }
                let large = table.metadata.len() >= super::cpu::LARGE_METADATA_BYTES;
                let (refs_now, (refs, snapshots)) = super::cpu::bound_if(large, || {
                    let refs_now = refs_of(&table.metadata)?;
                    let expired = expire(&metadata, &refs_now, Expiry::of(&properties), now_ms());
                    Ok::<_, Error>((refs_now, expired))
                })?;
                let expiring: Vec<(i64, String)> = snapshots
                    .iter()
                    .filter_map(|id| {
                        metadata
                            .snapshot_by_id(*id)
                            .map(|s| (*id, s.manifest_list().to_string()))
                    })
                    .collect();
                decided = Some((refs.clone(), expiring, properties));
                if refs.is_empty() && snapshots.is_empty() {
                    return Ok(None);
                }
                let mut requirements = vec![TableRequirement::UuidMatch {
                    uuid: metadata.uuid(),
                }];
                let sorted: BTreeMap<&String, i64> =
                    refs_now.iter().map(|(n, r)| (n, r.snapshot_id)).collect();
                for (name, snapshot) in sorted {
                    requirements.push(TableRequirement::RefSnapshotIdMatch {
                        r#ref: name.to_string(),
                        snapshot_id: Some(snapshot),
                    });
                }
                let mut updates: Vec<TableUpdate> = refs
                    .iter()
                    .map(|r| TableUpdate::RemoveSnapshotRef {
                        ref_name: r.clone(),
                    })
                    .collect();
                if !snapshots.is_empty() {
                    updates.push(TableUpdate::RemoveSnapshots {
                        snapshot_ids: snapshots,
                    });
                }
                Ok(Some(TableChange {
                    ident: ident.clone(),
                    requirements,
                    updates,
                }))
            })
            .await?;
        if off {
            return Ok(Expired::Skipped("maintenance is off for this table".into()));
        }
        let Some((refs, expiring, properties)) = decided else {
            return Ok(Expired::Skipped(format!(
                "{ident} is gone, or another table now"
            )));
        };
        if committed.is_none() {
            return Ok(Expired::Done("nothing to expire".into(), properties));
        }
        tracing::info!(table = %ident, expired_snapshots = expiring.len(), removed_refs = refs.len(), "expired snapshots");
        // The expired snapshots' files are known only from what they were: recorded first, so
        // a worker that dies now leaves its successor the list (and what no one deletes is an
        // orphan, removed later).
        self.save_progress(run, json!({ "expiring": expiring }))
            .await?;
        let files = self
            .delete_unreferenced(run, warehouse, line, &ident, &expiring)
            .await?;
        run.record_progress(json!({
            "expired-snapshots": expiring.len(),
            "removed-refs": refs,
            "files-deleted": files,
        }));
        let message = format!(
            "expired {} snapshots and {} refs; deleted {files} files",
            expiring.len(),
            refs.len()
        );
        Ok(Expired::Done(message, properties))
    }
}

#[cfg(test)]
mod tests;
