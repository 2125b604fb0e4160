//! Server-side scan planning (the REST spec's `planTableScan`, `fetchPlanningResult`,
//! `cancelPlanning` and `fetchScanTasks`).
//!
//! The pruning is the `iceberg` crate's: its `TableScan` drops manifests by their partition
//! summaries and data files by partition values and column metrics, and attaches to each data
//! file the delete files that apply to it. Floe lends it the warehouse's store, held to the
//! table's folders ([`files::Reader`]), and writes its answer in the spec's JSON: full content
//! files (the crate's tasks carry only paths) from a second look at the manifests it read.
//!
//! A scan of up to [`PlanningSettings::sync_max_files`] live data files is planned at once. A
//! larger one is held as a plan (`store::ScanPlanStore`, so any instance can answer for it):
//! answered `submitted` with a plan id while an instance splits the snapshot's data manifests
//! into plan tasks of about [`PlanningSettings::files_per_task`] files each; fetching a plan
//! task plans those manifests (with every delete manifest) through the crate. A cancelled or
//! expired plan's tasks are no longer served.
//!
//! Residuals: each task carries what of the request's filter its file's partition values leave
//! to check ([`residual::Residuals`]).

mod expr;
mod files;
mod residual;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt as _;
use iceberg::spec::{
    DataContentType, FormatVersion, ManifestContentType, ManifestFile, ManifestList,
    ManifestListWriter, ManifestStatus, TableMetadata,
};
use iceberg::table::Table;
use iceberg::{NamespaceIdent as IcebergNamespace, TableIdent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::tables::SnapshotsMode;
use super::vending::Delegation;
use super::{RequestContext, Services};
use crate::error::{Entity, Error, ErrorKind, Result};
use crate::model::scan::{PlanState, ScanPlan};
use crate::model::{TabularIdent, WarehouseId};
use crate::storage::Location;

pub use expr::parse_filter;

/// When scans are planned at once and how large plans are split.
#[derive(Debug, Clone, Copy)]
pub struct PlanningSettings {
    /// Scans of up to this many live data files are planned in the request.
    pub sync_max_files: u64,
    /// About how many data files one plan task covers (whole manifests each).
    pub files_per_task: u64,
    /// How long a held plan and its tasks are kept.
    pub lifetime: Duration,
}

impl Default for PlanningSettings {
    fn default() -> Self {
        PlanningSettings {
            sync_max_files: 10_000,
            files_per_task: 5_000,
            lifetime: Duration::from_secs(3600),
        }
    }
}

/// A `PlanTableScanRequest`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScanRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    #[serde(default = "yes")]
    pub case_sensitive: bool,
    #[serde(default)]
    pub use_snapshot_schema: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_snapshot_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_snapshot_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_fields: Option<Vec<String>>,
    /// A hint the spec lets servers ignore; Floe plans every file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rows_requested: Option<i64>,
}

fn yes() -> bool {
    true
}

/// `(prefix, config)` storage credentials.
pub type Credentials = Vec<(String, std::collections::BTreeMap<String, String>)>;

/// What planning answers.
#[derive(Debug)]
pub enum PlanOutcome {
    /// The tasks (`ScanTasks` JSON: `file-scan-tasks`, `delete-files`, `plan-tasks`) and the
    /// storage credentials for their files; a plan id when plan tasks are held.
    Completed {
        plan_id: Option<String>,
        tasks: Value,
        credentials: Credentials,
    },
    Submitted {
        plan_id: String,
    },
    Cancelled,
    /// Planning failed: the error a client is told.
    Failed(Error),
}

/// What a held plan keeps (its `detail` once completed).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct HeldPlan {
    metadata_location: String,
    snapshot_id: i64,
    request: ScanRequest,
    /// Each plan task's data manifests (paths, in manifest list order).
    tasks: Vec<Vec<String>>,
}

/// A scan resolved against the table: what the crate is asked to plan.
struct Scan {
    metadata: Arc<TableMetadata>,
    snapshot_id: i64,
    /// For incremental scans: the append snapshots in `(start, end]`.
    appended_by: Option<HashSet<i64>>,
    filter: Option<iceberg::expr::Predicate>,
    /// The request's filter, narrowed per partition into each task's residual.
    residual: Option<Value>,
    /// The schema the filter was read against.
    schema: iceberg::spec::SchemaRef,
    case_sensitive: bool,
    select: Option<Vec<String>>,
    stats: BTreeSet<i32>,
}

impl Services {
    /// `planTableScan`.
    pub async fn plan_table_scan(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        request: ScanRequest,
        delegation: Delegation,
    ) -> Result<PlanOutcome> {
        let table = self
            .load_table(ctx, warehouse, ident, SnapshotsMode::All)
            .await?;
        let metadata_location = table.metadata_location.clone().unwrap_or_default();
        let scan = resolve(&table.metadata, &request)?;
        let reader = self.plan_reader(warehouse, &table).await?;
        let Some(list) = manifest_list(&reader, &scan).await? else {
            return Ok(PlanOutcome::Completed {
                plan_id: None,
                tasks: empty_tasks(),
                credentials: self
                    .plan_credentials(ctx, warehouse, ident, &table, delegation)
                    .await?,
            });
        };
        let data: Vec<&ManifestFile> = data_manifests(&list, &scan);
        let files: u64 = data.iter().map(|m| live_files(m)).sum();
        let settings = self.planning;
        if files <= settings.sync_max_files {
            let tasks = plan_manifests(&reader, &scan, &list, None).await?;
            return Ok(PlanOutcome::Completed {
                plan_id: None,
                tasks,
                credentials: self
                    .plan_credentials(ctx, warehouse, ident, &table, delegation)
                    .await?,
            });
        }
        // Large: held, and split into plan tasks by a task of this instance.
        let now = crate::model::now().timestamp_millis();
        let plan_id = uuid::Uuid::new_v4().simple().to_string();
        self.store
            .scan_plans
            .insert_plan(&ScanPlan {
                id: plan_id.clone(),
                table_uuid: table.uuid,
                principal: ctx.principal.id().to_string(),
                state: PlanState::Submitted,
                detail: None,
                created_at: now,
                expires_at: now + settings.lifetime.as_millis() as i64,
            })
            .await?;
        let groups = split(&data, settings.files_per_task);
        let held = HeldPlan {
            metadata_location,
            snapshot_id: scan.snapshot_id,
            request,
            tasks: groups,
        };
        let store = self.store.scan_plans.clone();
        let id = plan_id.clone();
        tokio::spawn(async move {
            let (state, detail) = match serde_json::to_string(&held) {
                Ok(detail) => (PlanState::Completed, detail),
                Err(e) => (
                    PlanState::Failed,
                    json!({"message": format!("the plan could not be kept: {e}")}).to_string(),
                ),
            };
            if let Err(e) = store.finish_plan(&id, state, &detail).await {
                tracing::warn!(plan = %id, error = %e, "could not finish a scan plan");
            }
        });
        Ok(PlanOutcome::Submitted { plan_id })
    }

    /// `fetchPlanningResult`.
    pub async fn fetch_planning_result(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        plan_id: &str,
        delegation: Delegation,
    ) -> Result<PlanOutcome> {
        let (table, plan) = self.held_plan(ctx, warehouse, ident, plan_id).await?;
        Ok(match plan.state {
            PlanState::Submitted => PlanOutcome::Submitted { plan_id: plan.id },
            PlanState::Cancelled => PlanOutcome::Cancelled,
            PlanState::Failed => {
                let message = plan
                    .detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                    .and_then(|d| d.get("message").and_then(Value::as_str).map(String::from))
                    .unwrap_or_else(|| "planning failed".into());
                PlanOutcome::Failed(Error::new(ErrorKind::Internal, message))
            }
            PlanState::Completed => {
                let held = held_of(&plan)?;
                let tasks: Vec<String> = (0..held.tasks.len())
                    .map(|i| format!("{}-{i}", plan.id))
                    .collect();
                let tasks = json!({"plan-tasks": tasks});
                return Ok(PlanOutcome::Completed {
                    plan_id: Some(plan.id),
                    tasks,
                    credentials: self
                        .plan_credentials(ctx, warehouse, ident, &table, delegation)
                        .await?,
                });
            }
        })
    }

    /// `cancelPlanning`: the plan's tasks are no longer served.
    pub async fn cancel_planning(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        plan_id: &str,
    ) -> Result<()> {
        let (_, plan) = self.held_plan(ctx, warehouse, ident, plan_id).await?;
        let now = crate::model::now().timestamp_millis();
        if !self.store.scan_plans.cancel_plan(&plan.id, now).await? {
            return Err(no_such_plan(plan_id));
        }
        Ok(())
    }

    /// `fetchScanTasks`: plans one plan task's manifests.
    pub async fn fetch_scan_tasks(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        plan_task: &str,
    ) -> Result<Value> {
        let no_such_task = || {
            Error::not_found(
                Entity::PlanTask,
                format!("plan task {plan_task:?} does not exist"),
            )
        };
        let (plan_id, index) = plan_task
            .rsplit_once('-')
            .and_then(|(id, i)| Some((id, i.parse::<usize>().ok()?)))
            .ok_or_else(no_such_task)?;
        let (table, plan) = self
            .held_plan(ctx, warehouse, ident, plan_id)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::NotFound(Entity::PlanId) => no_such_task(),
                _ => e,
            })?;
        if plan.state != PlanState::Completed {
            return Err(no_such_task());
        }
        let held = held_of(&plan)?;
        let manifests: HashSet<&str> = held
            .tasks
            .get(index)
            .ok_or_else(no_such_task)?
            .iter()
            .map(String::as_str)
            .collect();
        // The version the plan was made on, read from its file (the table may have moved on).
        let wh = self.cached_warehouse(warehouse).await?;
        let storage = self.warehouse_storage(&wh).await?;
        let metadata = storage
            .get(&Location::parse(&held.metadata_location)?)
            .await?
            .ok_or_else(|| {
                Error::conflict("the table version this plan was made on is gone; plan again")
            })?;
        let mut request = held.request.clone();
        if request.start_snapshot_id.is_none() && request.end_snapshot_id.is_none() {
            request.snapshot_id = Some(held.snapshot_id);
        }
        let scan = resolve(&metadata, &request)?;
        let reader = self.plan_reader(warehouse, &table).await?;
        let list = manifest_list(&reader, &scan)
            .await?
            .ok_or_else(|| Error::conflict("the planned snapshot is gone; plan again"))?;
        plan_manifests(&reader, &scan, &list, Some(&manifests)).await
    }

    /// A held plan of this caller on this table (any other is "not found").
    async fn held_plan(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        plan_id: &str,
    ) -> Result<(super::commit::TableState, ScanPlan)> {
        let table = self
            .load_table(ctx, warehouse, ident, SnapshotsMode::Refs)
            .await?;
        let now = crate::model::now().timestamp_millis();
        match self.store.scan_plans.get_plan(plan_id, now).await? {
            Some(plan) if plan.table_uuid == table.uuid && plan.principal == ctx.principal.id() => {
                Ok((table, plan))
            }
            _ => Err(no_such_plan(plan_id)),
        }
    }

    /// The storage credentials for a plan's files, as for loadTable.
    async fn plan_credentials(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        table: &super::commit::TableState,
        delegation: Delegation,
    ) -> Result<Credentials> {
        let access = self
            .table_access(
                ctx,
                warehouse,
                ident,
                &table.location,
                (table.uuid, false),
                delegation,
            )
            .await?;
        Ok(access.credentials.clone())
    }

    /// A reader held to the table's folders: its location and the folders it claims.
    async fn plan_reader(
        &self,
        warehouse: WarehouseId,
        table: &super::commit::TableState,
    ) -> Result<Arc<files::Reader>> {
        let wh = self.cached_warehouse(warehouse).await?;
        let storage = self.warehouse_storage(&wh).await?;
        let folders = self
            .table_folders(warehouse, table.uuid, &Location::parse(&table.location)?)
            .await?;
        Ok(files::Reader::new(storage, folders))
    }
}

/// The table property that tells clients where to plan the table's scans: `server` or
/// `client`, sent as `scan-planning-mode` in the table's loadTable config (any other value is
/// ignored).
pub const PLANNING_MODE_PROPERTY: &str = "floe.scan-planning-mode";

impl Services {
    /// The `scan-planning-mode` clients of a table are told: the table's property, else its
    /// warehouse's mode. The property is read once per version of the table (only versions that
    /// name it are parsed); the warehouse's mode is kept a few seconds.
    pub async fn scan_planning_mode(
        &self,
        warehouse: WarehouseId,
        table: &super::commit::TableState,
    ) -> Option<&'static str> {
        let location = table.metadata_location.as_deref()?;
        let own = match self.caches.planning_modes.get(location) {
            Some(mode) => mode,
            None => {
                let mode = planning_mode_of(&table.metadata);
                self.caches
                    .planning_modes
                    .insert(location, mode, location.len() + 16);
                mode
            }
        };
        if own.is_some() {
            return own;
        }
        self.warehouse_planning_mode(warehouse).await
    }

    /// A warehouse's scan planning mode as clients are told it (kept a few seconds; none when
    /// it cannot be read).
    pub(crate) async fn warehouse_planning_mode(
        &self,
        warehouse: WarehouseId,
    ) -> Option<&'static str> {
        if let Some((at, mode)) = self
            .caches
            .warehouse_planning
            .lock()
            .expect("cache lock")
            .get(&warehouse)
            && at.elapsed() < WAREHOUSE_MODE_TTL
        {
            return *mode;
        }
        let mode = match self.store.scan_plans.planning_mode(warehouse).await {
            Ok(mode) => mode.as_deref().and_then(known_mode),
            Err(e) => {
                tracing::warn!(error = %e, "could not read a warehouse's scan planning mode");
                return None;
            }
        };
        let mut cache = self.caches.warehouse_planning.lock().expect("cache lock");
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(warehouse, (std::time::Instant::now(), mode));
        mode
    }

    /// A warehouse's scan planning mode (`server`, `client`, or none set).
    pub async fn warehouse_scan_planning(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<Option<String>> {
        self.authorize_warehouse(ctx, crate::authz::Action::WarehouseRead, warehouse)
            .await?;
        self.store.scan_plans.planning_mode(warehouse).await
    }

    /// Sets (or with `None` clears) where a warehouse's clients are told to plan scans. It
    /// takes the right to change the warehouse's storage.
    pub async fn set_warehouse_scan_planning(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        mode: Option<String>,
    ) -> Result<Option<String>> {
        if let Some(mode) = &mode
            && known_mode(mode).is_none()
        {
            return Err(Error::bad_request(format!(
                "scan planning mode must be \"server\" or \"client\", not {mode:?}"
            )));
        }
        self.authorize_warehouse(ctx, crate::authz::Action::WarehouseUpdateStorage, warehouse)
            .await?;
        let events = self.change_event(
            ctx,
            "warehouse.scan-planning-set",
            format!("warehouse/{warehouse}"),
            json!({ "mode": mode }),
        );
        self.store
            .scan_plans
            .set_planning_mode(warehouse, mode.as_deref(), &events)
            .await?;
        self.caches
            .warehouse_planning
            .lock()
            .expect("cache lock")
            .remove(&warehouse);
        Ok(mode)
    }
}

/// How long this process keeps a warehouse's scan planning mode (another instance's change shows
/// after at most this long).
const WAREHOUSE_MODE_TTL: Duration = Duration::from_secs(5);

fn known_mode(mode: &str) -> Option<&'static str> {
    match mode {
        "server" => Some("server"),
        "client" => Some("client"),
        _ => None,
    }
}

fn planning_mode_of(metadata: &[u8]) -> Option<&'static str> {
    memchr::memmem::find(metadata, PLANNING_MODE_PROPERTY.as_bytes())?;
    let metadata: Value = serde_json::from_slice(metadata).ok()?;
    known_mode(
        metadata
            .get("properties")?
            .get(PLANNING_MODE_PROPERTY)?
            .as_str()?,
    )
}

fn no_such_plan(plan_id: &str) -> Error {
    Error::not_found(Entity::PlanId, format!("plan {plan_id:?} does not exist"))
}

fn held_of(plan: &ScanPlan) -> Result<HeldPlan> {
    serde_json::from_str(plan.detail.as_deref().unwrap_or("")).map_err(|e| {
        Error::internal(
            "reading a held scan plan",
            anyhow::anyhow!("plan {}: {e}", plan.id),
        )
    })
}

fn empty_tasks() -> Value {
    json!({"file-scan-tasks": [], "delete-files": []})
}

/// Resolves a request against the table's metadata (JSON): the snapshot, the schema names are
/// bound in, the filter, selected and stats fields. Client mistakes are 400s.
fn resolve(metadata: &[u8], request: &ScanRequest) -> Result<Scan> {
    let mut raw: Value = serde_json::from_slice(metadata)
        .map_err(|e| Error::internal("reading table metadata", e))?;
    let incremental = request.start_snapshot_id.is_some() || request.end_snapshot_id.is_some();
    if incremental && request.snapshot_id.is_some() {
        return Err(Error::bad_request(
            "a scan is either point-in-time (snapshot-id) or incremental (start-snapshot-id and \
             end-snapshot-id), not both",
        ));
    }
    if request.start_snapshot_id.is_some() && request.end_snapshot_id.is_none() {
        return Err(Error::bad_request(
            "end-snapshot-id is required with start-snapshot-id",
        ));
    }
    let snapshot_id = request
        .end_snapshot_id
        .or(request.snapshot_id)
        .or_else(|| raw.get("current-snapshot-id").and_then(Value::as_i64))
        .filter(|id| *id != -1);
    // Names bind in the table's current schema unless the snapshot's is asked for: the crate
    // binds in the snapshot's, so the snapshot is shown the current one.
    if let (Some(id), false) = (snapshot_id, request.use_snapshot_schema) {
        let current = raw.get("current-schema-id").cloned();
        if let (Some(current), Some(Value::Array(snapshots))) = (current, raw.get_mut("snapshots"))
        {
            for snapshot in snapshots.iter_mut() {
                if snapshot.get("snapshot-id").and_then(Value::as_i64) == Some(id)
                    && let Some(o) = snapshot.as_object_mut()
                {
                    o.insert("schema-id".into(), current.clone());
                }
            }
        }
    }
    crate::model::v3_types::lower_metadata(&mut raw)
        .map_err(|e| Error::internal("reading table metadata", anyhow::Error::msg(e)))?;
    let metadata: TableMetadata =
        serde_json::from_value(raw).map_err(|e| Error::internal("reading table metadata", e))?;
    let snapshot = match snapshot_id {
        None => None,
        Some(id) => Some(
            metadata
                .snapshot_by_id(id)
                .ok_or_else(|| Error::bad_request(format!("the table has no snapshot {id}")))?,
        ),
    };
    let schema = match snapshot {
        Some(s) if request.use_snapshot_schema => s
            .schema(&metadata)
            .map_err(|e| Error::bad_request(format!("the snapshot's schema: {e}")))?,
        _ => metadata.current_schema().clone(),
    };
    let appended_by = match (request.start_snapshot_id, snapshot) {
        (Some(start), Some(end)) => Some(appends_between(&metadata, start, end.snapshot_id())?),
        (None, Some(end)) if incremental => {
            // From the table's first snapshot on.
            Some(appends_between(&metadata, -1, end.snapshot_id())?)
        }
        _ => None,
    };
    let filter = request
        .filter
        .as_ref()
        .map(|f| expr::parse_filter(f, &schema, request.case_sensitive))
        .transpose()?;
    let select = request
        .select
        .as_ref()
        .map(|names| {
            names
                .iter()
                .map(|n| expr::resolve_name(&schema, n, request.case_sensitive))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let mut stats = BTreeSet::new();
    for name in request.stats_fields.iter().flatten() {
        let name = expr::resolve_name(&schema, name, request.case_sensitive)?;
        stats.insert(schema.field_id_by_name(&name).unwrap_or_default());
    }
    Ok(Scan {
        snapshot_id: snapshot_id.unwrap_or(-1),
        metadata: Arc::new(metadata),
        appended_by,
        filter,
        residual: request.filter.clone(),
        schema: schema.clone(),
        case_sensitive: request.case_sensitive,
        select,
        stats,
    })
}

/// The append snapshots after `start` (exclusive, `-1` for the table's beginning) up to `end`
/// (inclusive), which must descend from `start`.
fn appends_between(metadata: &TableMetadata, start: i64, end: i64) -> Result<HashSet<i64>> {
    let mut found = HashSet::new();
    let mut at = Some(end);
    while let Some(id) = at {
        if id == start {
            return Ok(found);
        }
        let snapshot = metadata
            .snapshot_by_id(id)
            .ok_or_else(|| Error::bad_request(format!("the table has no snapshot {id}")))?;
        if snapshot.summary().operation == iceberg::spec::Operation::Append {
            found.insert(id);
        }
        at = snapshot.parent_snapshot_id();
    }
    if start == -1 {
        return Ok(found);
    }
    Err(Error::bad_request(format!(
        "snapshot {start} is not an ancestor of snapshot {end}"
    )))
}

/// The scanned snapshot's manifest list (`None` when the table has no snapshot).
async fn manifest_list(reader: &Arc<files::Reader>, scan: &Scan) -> Result<Option<ManifestList>> {
    let Some(snapshot) = scan.metadata.snapshot_by_id(scan.snapshot_id) else {
        return Ok(None);
    };
    let bytes = reader
        .file_io()
        .new_input(snapshot.manifest_list())
        .map_err(|e| Error::internal("reading a manifest list", e))?
        .read()
        .await
        .map_err(|e| read_error(reader, "the manifest list", e))?;
    ManifestList::parse_with_version(&bytes, scan.metadata.format_version())
        .map(Some)
        .map_err(|e| Error::internal("reading a manifest list", e))
}

fn read_error(reader: &files::Reader, what: &str, e: iceberg::Error) -> Error {
    match reader.refused() {
        Some(path) => Error::forbidden(format!(
            "the table's metadata names {path}, outside the table's folders; Floe does not \
             read it"
        )),
        None => Error::internal(format!("reading {what}"), e),
    }
}

/// The data manifests a scan reads (for incremental scans, those its appends wrote).
fn data_manifests<'a>(list: &'a ManifestList, scan: &Scan) -> Vec<&'a ManifestFile> {
    list.entries()
        .iter()
        .filter(|m| m.content == ManifestContentType::Data)
        .filter(|m| {
            scan.appended_by
                .as_ref()
                .is_none_or(|s| s.contains(&m.added_snapshot_id))
        })
        .collect()
}

fn live_files(m: &ManifestFile) -> u64 {
    // Manifest lists written without counts: take it as large, so it is held, not planned inline.
    match (m.added_files_count, m.existing_files_count) {
        (None, None) => u64::from(u32::MAX),
        (a, e) => u64::from(a.unwrap_or(0)) + u64::from(e.unwrap_or(0)),
    }
}

/// Whole manifests in groups of about `per_task` live files.
fn split(data: &[&ManifestFile], per_task: u64) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut size = u64::MAX;
    for manifest in data {
        let files = live_files(manifest);
        if size.saturating_add(files) > per_task.max(1) && size > 0 {
            groups.push(Vec::new());
            size = 0;
        }
        groups
            .last_mut()
            .expect("a group")
            .push(manifest.manifest_path.clone());
        size = size.saturating_add(files);
    }
    groups
}

/// Plans the scan over the snapshot's manifests through the crate (only the data manifests in
/// `only`, when given), and writes the result as `ScanTasks` JSON.
async fn plan_manifests(
    reader: &Arc<files::Reader>,
    scan: &Scan,
    list: &ManifestList,
    only: Option<&HashSet<&str>>,
) -> Result<Value> {
    let snapshot = scan
        .metadata
        .snapshot_by_id(scan.snapshot_id)
        .expect("a scan with a manifest list has its snapshot");
    // The manifests planned: the data manifests asked for (or the scan's), with every delete
    // manifest (incremental scans read appends only, without deletes, as Iceberg's own do).
    let data: Vec<&ManifestFile> = data_manifests(list, scan)
        .into_iter()
        .filter(|m| only.is_none_or(|o| o.contains(m.manifest_path.as_str())))
        .collect();
    let deletes: Vec<&ManifestFile> = if scan.appended_by.is_some() {
        Vec::new()
    } else {
        list.entries()
            .iter()
            .filter(|m| m.content == ManifestContentType::Deletes)
            .collect()
    };
    if data.is_empty() {
        return Ok(empty_tasks());
    }
    if data.len() + deletes.len() != list.entries().len() {
        let narrowed = narrowed_list(scan, snapshot, data.iter().chain(&deletes)).await?;
        reader.stand_in(snapshot.manifest_list(), narrowed);
    }
    let table = Table::builder()
        .metadata(scan.metadata.clone())
        .identifier(TableIdent::new(
            IcebergNamespace::new("floe".into()),
            "plan".into(),
        ))
        .file_io(reader.file_io())
        .readonly(true)
        .disable_cache()
        .runtime(iceberg::Runtime::current())
        .build()
        .map_err(|e| Error::internal("planning a scan", e))?;
    let mut builder = table.scan().snapshot_id(scan.snapshot_id);
    if let Some(filter) = &scan.filter {
        builder = builder.with_filter(filter.clone());
    }
    if let Some(select) = &scan.select {
        builder = builder.select(select.clone());
    }
    let planned = builder
        .build()
        .map_err(|e| Error::bad_request(format!("the scan cannot be planned: {e}")))?;
    let tasks: Vec<iceberg::scan::FileScanTask> = planned
        .plan_files()
        .await
        .map_err(|e| read_error(reader, "the table's manifests", e))?
        .try_collect()
        .await
        .map_err(|e| read_error(reader, "the table's manifests", e))?;

    // The full entries of the files the crate named, from the manifests it read.
    let wanted: HashSet<&str> = tasks
        .iter()
        .flat_map(|t| {
            std::iter::once(t.data_file_path.as_str())
                .chain(t.deletes.iter().map(|d| d.file_path.as_str()))
        })
        .collect();
    let file_io = reader.file_io();
    let mut entries: HashMap<String, Entry> = HashMap::new();
    // Delete files by path: one Puffin file holds many deletion vectors, an entry each.
    let mut delete_entries: HashMap<String, Vec<Entry>> = HashMap::new();
    for manifest in data.iter().chain(&deletes) {
        if !reader.has_read(&manifest.manifest_path) {
            continue; // pruned by the crate: none of its files is planned
        }
        let parsed = manifest
            .load_manifest(&file_io)
            .await
            .map_err(|e| read_error(reader, "a manifest", e))?;
        // Row lineage (v3): a data file without a first row id of its own takes the next ones
        // of its manifest's range, in manifest order (live entries only, as the range counts).
        let mut next_row_id = manifest.first_row_id;
        for entry in parsed.entries() {
            if entry.status() == ManifestStatus::Deleted {
                continue;
            }
            let file = entry.data_file();
            let first_row_id = match (file.content_type(), file.first_row_id()) {
                (DataContentType::Data, Some(id)) => Some(id as u64),
                (DataContentType::Data, None) => next_row_id.inspect(|next| {
                    next_row_id = Some(next + file.record_count());
                }),
                _ => None,
            };
            if !wanted.contains(entry.file_path()) {
                continue;
            }
            let added_by = (entry.status() == ManifestStatus::Added)
                .then(|| entry.snapshot_id())
                .flatten();
            let planned = Entry {
                file: file.clone(),
                spec_id: manifest.partition_spec_id,
                added_by,
                lineage: first_row_id.zip(entry.sequence_number()),
            };
            if file.content_type() == DataContentType::Data {
                entries.insert(entry.file_path().to_string(), planned);
            } else {
                delete_entries
                    .entry(entry.file_path().to_string())
                    .or_default()
                    .push(planned);
            }
        }
    }

    let partition_types: Mutex<HashMap<i32, Option<iceberg::spec::StructType>>> = Mutex::default();
    let partition_type = |spec_id: i32| {
        partition_types
            .lock()
            .expect("a lock")
            .entry(spec_id)
            .or_insert_with(|| partition_type_of(&scan.metadata, spec_id))
            .clone()
    };
    let mut residuals = scan
        .residual
        .clone()
        .map(|filter| residual::Residuals::new(filter, scan.schema.clone(), scan.case_sensitive))
        .transpose()?;
    let mut delete_files: Vec<Value> = Vec::new();
    let mut delete_index: HashMap<(String, usize), usize> = HashMap::new();
    let mut file_scan_tasks = Vec::with_capacity(tasks.len());
    for task in &tasks {
        let Some(Entry {
            file,
            spec_id,
            added_by,
            lineage,
        }) = entries.get(&task.data_file_path)
        else {
            return Err(Error::internal(
                "planning a scan",
                anyhow::anyhow!(
                    "planned file {} is in no manifest read",
                    task.data_file_path
                ),
            ));
        };
        if let Some(appends) = &scan.appended_by
            && !added_by.is_some_and(|s| appends.contains(&s))
        {
            continue; // carried over, not appended in the range
        }
        let mut references = Vec::new();
        for delete in &task.deletes {
            // The entries of that file that apply to this data file: a position delete file or
            // deletion vector scoped to one data file applies to that file only (the crate
            // attaches it to every file of its partition, and knows a Puffin file of many
            // vectors by its path only).
            for (n, entry) in delete_entries
                .get(&delete.file_path)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if files::referenced_data_file(&entry.file)
                    .is_some_and(|target| target != task.data_file_path)
                    || entry.spec_id != delete.partition_spec_id
                {
                    continue;
                }
                let key = (delete.file_path.clone(), n);
                let index = match delete_index.get(&key) {
                    Some(i) => *i,
                    None => {
                        delete_files.push(files::content_file(
                            &entry.file,
                            entry.spec_id,
                            partition_type(entry.spec_id).as_ref(),
                            &BTreeSet::new(),
                            None,
                        ));
                        delete_index.insert(key, delete_files.len() - 1);
                        delete_files.len() - 1
                    }
                };
                if !references.contains(&index) {
                    references.push(index);
                }
            }
        }
        debug_assert!(file.content_type() == DataContentType::Data);
        let mut out = json!({
            "data-file": files::content_file(
                file,
                *spec_id,
                partition_type(*spec_id).as_ref(),
                &scan.stats,
                *lineage,
            ),
        });
        if !references.is_empty() {
            out["delete-file-references"] = json!(references);
        }
        if let Some(residuals) = &mut residuals {
            out["residual-filter"] = match scan.metadata.partition_spec_by_id(*spec_id) {
                Some(spec) => residuals.of(spec, file.partition()),
                None => scan.residual.clone().unwrap_or(Value::Bool(true)),
            };
        }
        file_scan_tasks.push(out);
    }
    Ok(json!({"file-scan-tasks": file_scan_tasks, "delete-files": delete_files}))
}

/// A planned file's manifest entry.
struct Entry {
    file: iceberg::spec::DataFile,
    spec_id: i32,
    /// The snapshot that added it, when the entry says it was added.
    added_by: Option<i64>,
    /// Format v3: the file's first row id (its own or inherited) and data sequence number.
    lineage: Option<(u64, i64)>,
}

/// A spec's partition type, in the current schema or, for a spec whose source columns were
/// dropped since, the newest schema that has them.
fn partition_type_of(metadata: &TableMetadata, spec_id: i32) -> Option<iceberg::spec::StructType> {
    let spec = metadata.partition_spec_by_id(spec_id)?;
    let mut schemas: Vec<_> = metadata.schemas_iter().collect();
    schemas.sort_by_key(|s| std::cmp::Reverse(s.schema_id()));
    std::iter::once(metadata.current_schema())
        .chain(schemas)
        .find_map(|schema| spec.partition_type(schema).ok())
}

/// A manifest list of only `manifests`, to stand in for the snapshot's.
async fn narrowed_list<'a>(
    scan: &Scan,
    snapshot: &iceberg::spec::Snapshot,
    manifests: impl Iterator<Item = &'a &'a ManifestFile>,
) -> Result<bytes::Bytes> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let out = Box::new(files::MemoryWrite(buffer.clone()));
    let (id, parent, seq) = (
        snapshot.snapshot_id(),
        snapshot.parent_snapshot_id(),
        snapshot.sequence_number(),
    );
    let mut writer = match scan.metadata.format_version() {
        FormatVersion::V1 => ManifestListWriter::v1(out, id, parent),
        // v3 lists are written as v2 (read back as v3, row ids unset): the row ids a plan
        // reports come from the real manifests, not from this list.
        _ => ManifestListWriter::v2(out, id, parent, seq),
    };
    let failed = |e| Error::internal("narrowing a manifest list", e);
    writer
        .add_manifests(manifests.map(|m| (*m).clone()))
        .map_err(failed)?;
    writer.close().await.map_err(failed)?;
    let bytes = std::mem::take(&mut *buffer.lock().expect("buffer lock"));
    Ok(bytes::Bytes::from(bytes))
}
