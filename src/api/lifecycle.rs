//! `/management/v1/warehouses/{id}/...`: lifecycle: the delete profile, soft-deleted tables and
//! views with undrop, protection of warehouses, namespaces, tables and views, and the task queue.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiResult, IcebergErrorResponse};
use super::extract::{
    Ctx, JsonBody, Path, Query, ident_of, namespace_of, page_request, page_token,
};
use crate::error::Error;
use crate::model::lifecycle::{
    DeleteProfile, DeletedTabular, MaintenancePolicy, Task, TaskAttempt, TaskFilter, TaskStatus,
    Undrop,
};
use crate::model::{PageRequest, TabularIdent, TabularKind, WarehouseId};
use crate::service::ProtectionTarget;
use crate::service::tasks::TaskControl;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_delete_profile, set_delete_profile))
        .routes(routes!(list_deleted_tabulars))
        .routes(routes!(undrop_tabulars))
        .routes(routes!(get_warehouse_protection, set_warehouse_protection))
        .routes(routes!(get_namespace_protection, set_namespace_protection))
        .routes(routes!(get_table_protection, set_table_protection))
        .routes(routes!(get_view_protection, set_view_protection))
        .routes(routes!(get_maintenance, set_maintenance))
        .routes(routes!(run_maintenance))
        .routes(routes!(list_tasks))
        .routes(routes!(get_task))
        .routes(routes!(cancel_task))
        .routes(routes!(run_task_now))
        .routes(routes!(retry_task))
}

// Delete profiles.

/// `{"type": "hard"}` or `{"type": "soft", "expiration-seconds": N}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DeleteProfileBody {
    /// A drop removes the table at once (its files purged when the drop asks for it).
    Hard,
    /// A drop keeps the table, listed under `deleted-tabulars` and undroppable, for
    /// `expiration-seconds`; then it is forgotten (and purged when the drop asked for it).
    Soft {
        #[serde(rename = "expiration-seconds")]
        expiration_seconds: u64,
    },
}

impl From<DeleteProfile> for DeleteProfileBody {
    fn from(p: DeleteProfile) -> Self {
        match p {
            DeleteProfile::Hard => DeleteProfileBody::Hard,
            DeleteProfile::Soft { expiration_seconds } => {
                DeleteProfileBody::Soft { expiration_seconds }
            }
        }
    }
}

/// What dropping a table or view does in this warehouse.
#[utoipa::path(get, path = "/warehouses/{id}/delete-profile", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = DeleteProfileBody), (status = 404, body = IcebergErrorResponse)))]
async fn get_delete_profile(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<DeleteProfileBody>> {
    let profile = state.services.delete_profile(&ctx, WarehouseId(id)).await?;
    Ok(Json(profile.into()))
}

/// Sets what dropping a table or view does from now on (drops made before keep theirs).
#[utoipa::path(put, path = "/warehouses/{id}/delete-profile", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id")),
    request_body = DeleteProfileBody,
    responses((status = 200, body = DeleteProfileBody), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn set_delete_profile(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<DeleteProfileBody>,
) -> ApiResult<Json<DeleteProfileBody>> {
    let profile = match body {
        DeleteProfileBody::Hard => DeleteProfile::Hard,
        DeleteProfileBody::Soft { expiration_seconds } => {
            DeleteProfile::Soft { expiration_seconds }
        }
    };
    let profile = state
        .services
        .set_delete_profile(&ctx, WarehouseId(id), profile)
        .await?;
    Ok(Json(profile.into()))
}

// Soft-deleted tables and views.

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "kebab-case")]
#[into_params(parameter_in = Query)]
pub struct ListDeletedQuery {
    /// Only those of this namespace (levels joined by the unit separator, `%1F`, as in catalog
    /// paths).
    pub namespace: Option<String>,
    /// Only those whose name contains this, in any case.
    pub name: Option<String>,
    pub page_token: Option<String>,
    pub page_size: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct DeletedTabularResponse {
    /// The id to undrop it by.
    pub id: Uuid,
    pub namespace: Vec<String>,
    pub name: String,
    /// `table` or `view`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its table or view UUID.
    pub uuid: Uuid,
    /// The branch it was dropped from (and is undropped onto).
    pub branch: String,
    pub location: String,
    pub metadata_location: String,
    /// Whether its files are purged when it expires.
    pub purge: bool,
    /// Unix milliseconds.
    pub deleted_at: i64,
    pub expires_at: i64,
    pub deleted_by: String,
    /// The task that forgets it at `expires-at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ListDeletedResponse {
    pub tabulars: Vec<DeletedTabularResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

fn deleted_response(d: DeletedTabular, branch: String) -> DeletedTabularResponse {
    DeletedTabularResponse {
        id: d.id,
        namespace: d.ident.namespace.levels().to_vec(),
        name: d.ident.name,
        kind: d.kind.as_str().to_string(),
        uuid: d.uuid,
        branch,
        location: d.location,
        metadata_location: d.metadata_location,
        purge: d.purge,
        deleted_at: d.deleted_at,
        expires_at: d.expires_at,
        deleted_by: d.deleted_by,
        task_id: d.task_id,
    }
}

/// Soft-deleted tables and views of every branch, by namespace and name.
#[utoipa::path(get, path = "/warehouses/{id}/deleted-tabulars", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"), ListDeletedQuery),
    responses((status = 200, body = ListDeletedResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn list_deleted_tabulars(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    Query(query): Query<ListDeletedQuery>,
) -> ApiResult<Json<ListDeletedResponse>> {
    let namespace = query.namespace.as_deref().map(namespace_of).transpose()?;
    let page = page_request(query.page_token.as_deref(), query.page_size)?.unwrap_or(PageRequest {
        after: None,
        limit: Some(100),
    });
    let warehouse = WarehouseId(id);
    let found = state
        .services
        .list_deleted(
            &ctx,
            warehouse,
            namespace.as_ref(),
            query.name.as_deref(),
            &page,
        )
        .await?;
    let names = state.services.branch_names(&ctx, warehouse).await?;
    Ok(Json(ListDeletedResponse {
        tabulars: found
            .items
            .into_iter()
            .map(|d| {
                let branch = names
                    .get(&d.line_id)
                    .cloned()
                    .unwrap_or_else(|| d.line_id.to_string());
                deleted_response(d, branch)
            })
            .collect(),
        next_page_token: found.next.as_deref().map(page_token),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UndropTarget {
    /// The soft-deleted entry's id (from the listing).
    pub id: Uuid,
    /// Restore it under this name instead (when its name is taken meanwhile).
    pub rename_to: Option<UndropName>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UndropName {
    pub namespace: Vec<String>,
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UndropRequest {
    /// At most 100.
    pub tabulars: Vec<UndropTarget>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct UndroppedTabular {
    pub id: Uuid,
    pub namespace: Vec<String>,
    pub name: String,
    pub branch: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UndropResponse {
    pub restored: Vec<UndroppedTabular>,
}

/// Restores soft-deleted tables and views onto the branch they were dropped from, data intact,
/// each in a commit of its own. Stops at the first that cannot be restored (its name is taken:
/// give `rename-to`; its namespace is gone: create it first); those before it stay restored.
#[utoipa::path(post, path = "/warehouses/{id}/deleted-tabulars/undrop", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id")),
    request_body = UndropRequest,
    responses((status = 200, body = UndropResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "the name is taken", body = IcebergErrorResponse)))]
async fn undrop_tabulars(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<UndropRequest>,
) -> ApiResult<Json<UndropResponse>> {
    let undrops = body
        .tabulars
        .into_iter()
        .map(|t| {
            let rename_to = t
                .rename_to
                .map(|to| {
                    TabularIdent::new(crate::model::NamespaceIdent::new(to.namespace)?, to.name)
                })
                .transpose()?;
            Ok(Undrop {
                id: t.id,
                rename_to,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let restored = state
        .services
        .undrop(&ctx, WarehouseId(id), &undrops)
        .await?;
    Ok(Json(UndropResponse {
        restored: restored
            .into_iter()
            .map(|(id, ident, branch)| UndroppedTabular {
                id,
                namespace: ident.namespace.levels().to_vec(),
                name: ident.name,
                branch,
            })
            .collect(),
    }))
}

// Protection.

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Protection {
    /// Dropping a protected object needs `force=true`.
    pub protected: bool,
}

/// Where a namespace, table or view is looked up.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OnRef {
    /// The branch or tag to find it on (default `main`); the protection holds on every branch.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

async fn get_protection(
    state: &AppState,
    ctx: &crate::service::RequestContext,
    warehouse: Uuid,
    target: ProtectionTarget,
    on: OnRef,
) -> ApiResult<Json<Protection>> {
    let protected = state
        .services
        .protection(
            ctx,
            WarehouseId(warehouse),
            &target,
            on.reference.as_deref(),
        )
        .await?;
    Ok(Json(Protection { protected }))
}

async fn set_protection(
    state: &AppState,
    ctx: &crate::service::RequestContext,
    warehouse: Uuid,
    target: ProtectionTarget,
    on: OnRef,
    body: Protection,
) -> ApiResult<Json<Protection>> {
    let protected = state
        .services
        .set_protection(
            ctx,
            WarehouseId(warehouse),
            &target,
            on.reference.as_deref(),
            body.protected,
        )
        .await?;
    Ok(Json(Protection { protected }))
}

/// Whether the warehouse is protected (deleting it needs `force=true`).
#[utoipa::path(get, path = "/warehouses/{id}/protection", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = Protection), (status = 404, body = IcebergErrorResponse)))]
async fn get_warehouse_protection(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Protection>> {
    get_protection(
        &state,
        &ctx,
        id,
        ProtectionTarget::Warehouse,
        OnRef::default(),
    )
    .await
}

/// Protects the warehouse, or lifts its protection.
#[utoipa::path(put, path = "/warehouses/{id}/protection", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id")), request_body = Protection,
    responses((status = 200, body = Protection), (status = 404, body = IcebergErrorResponse)))]
async fn set_warehouse_protection(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<Protection>,
) -> ApiResult<Json<Protection>> {
    set_protection(
        &state,
        &ctx,
        id,
        ProtectionTarget::Warehouse,
        OnRef::default(),
        body,
    )
    .await
}

/// Whether a namespace (on every branch) is protected.
#[utoipa::path(get, path = "/warehouses/{id}/namespaces/{namespace}/protection", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"),
           ("namespace" = String, Path, description = "levels joined by %1F, as in catalog paths"), OnRef),
    responses((status = 200, body = Protection), (status = 404, body = IcebergErrorResponse)))]
async fn get_namespace_protection(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, namespace)): Path<(Uuid, String)>,
    Query(on): Query<OnRef>,
) -> ApiResult<Json<Protection>> {
    let ns = namespace_of(&namespace)?;
    get_protection(&state, &ctx, id, ProtectionTarget::Namespace(ns), on).await
}

/// Protects a namespace (found on `main` or the ref named; the protection holds on every
/// branch), or lifts it.
#[utoipa::path(put, path = "/warehouses/{id}/namespaces/{namespace}/protection", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"),
           ("namespace" = String, Path, description = "levels joined by %1F, as in catalog paths"), OnRef),
    request_body = Protection,
    responses((status = 200, body = Protection), (status = 404, body = IcebergErrorResponse)))]
async fn set_namespace_protection(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, namespace)): Path<(Uuid, String)>,
    Query(on): Query<OnRef>,
    JsonBody(body): JsonBody<Protection>,
) -> ApiResult<Json<Protection>> {
    let ns = namespace_of(&namespace)?;
    set_protection(&state, &ctx, id, ProtectionTarget::Namespace(ns), on, body).await
}

/// Whether a table is protected.
#[utoipa::path(get, path = "/warehouses/{id}/namespaces/{namespace}/tables/{table}/protection", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"), ("namespace" = String, Path), ("table" = String, Path), OnRef),
    responses((status = 200, body = Protection), (status = 404, body = IcebergErrorResponse)))]
async fn get_table_protection(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, namespace, table)): Path<(Uuid, String, String)>,
    Query(on): Query<OnRef>,
) -> ApiResult<Json<Protection>> {
    let ident = ident_of(&namespace, table)?;
    get_protection(
        &state,
        &ctx,
        id,
        ProtectionTarget::Tabular(TabularKind::Table, ident),
        on,
    )
    .await
}

/// Protects a table (found on `main` or the ref named, protected by its UUID on every branch
/// and across renames), or lifts it.
#[utoipa::path(put, path = "/warehouses/{id}/namespaces/{namespace}/tables/{table}/protection", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"), ("namespace" = String, Path), ("table" = String, Path), OnRef),
    request_body = Protection,
    responses((status = 200, body = Protection), (status = 404, body = IcebergErrorResponse)))]
async fn set_table_protection(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, namespace, table)): Path<(Uuid, String, String)>,
    Query(on): Query<OnRef>,
    JsonBody(body): JsonBody<Protection>,
) -> ApiResult<Json<Protection>> {
    let ident = ident_of(&namespace, table)?;
    set_protection(
        &state,
        &ctx,
        id,
        ProtectionTarget::Tabular(TabularKind::Table, ident),
        on,
        body,
    )
    .await
}

/// Whether a view is protected.
#[utoipa::path(get, path = "/warehouses/{id}/namespaces/{namespace}/views/{view}/protection", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"), ("namespace" = String, Path), ("view" = String, Path), OnRef),
    responses((status = 200, body = Protection), (status = 404, body = IcebergErrorResponse)))]
async fn get_view_protection(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, namespace, view)): Path<(Uuid, String, String)>,
    Query(on): Query<OnRef>,
) -> ApiResult<Json<Protection>> {
    let ident = ident_of(&namespace, view)?;
    get_protection(
        &state,
        &ctx,
        id,
        ProtectionTarget::Tabular(TabularKind::View, ident),
        on,
    )
    .await
}

/// Protects a view, or lifts it.
#[utoipa::path(put, path = "/warehouses/{id}/namespaces/{namespace}/views/{view}/protection", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"), ("namespace" = String, Path), ("view" = String, Path), OnRef),
    request_body = Protection,
    responses((status = 200, body = Protection), (status = 404, body = IcebergErrorResponse)))]
async fn set_view_protection(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, namespace, view)): Path<(Uuid, String, String)>,
    Query(on): Query<OnRef>,
    JsonBody(body): JsonBody<Protection>,
) -> ApiResult<Json<Protection>> {
    let ident = ident_of(&namespace, view)?;
    set_protection(
        &state,
        &ctx,
        id,
        ProtectionTarget::Tabular(TabularKind::View, ident),
        on,
        body,
    )
    .await
}

// Maintenance.

/// A warehouse's table maintenance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MaintenanceBody {
    /// Expire snapshots of the warehouse's tables (a table or namespace may say otherwise with
    /// the property `floe.maintenance.enabled`).
    pub enabled: bool,
    /// A table is maintained at most this often, seconds (default 3600); maintenance is looked
    /// for after each commit to a table on `main`.
    #[serde(default)]
    pub interval_seconds: Option<u64>,
    /// Defaults for `history.expire.max-snapshot-age-ms`, `history.expire.min-snapshots-to-keep`
    /// and `history.expire.max-ref-age-ms`; a namespace's or table's own properties win.
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

fn maintenance_body(p: MaintenancePolicy) -> MaintenanceBody {
    MaintenanceBody {
        enabled: p.enabled,
        interval_seconds: Some(p.interval_seconds),
        properties: p.properties,
    }
}

/// The warehouse's table maintenance policy.
#[utoipa::path(get, path = "/warehouses/{id}/maintenance", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = MaintenanceBody), (status = 404, body = IcebergErrorResponse)))]
async fn get_maintenance(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<MaintenanceBody>> {
    let policy = state
        .services
        .maintenance_policy(&ctx, WarehouseId(id))
        .await?;
    Ok(Json(maintenance_body(policy)))
}

/// Sets the warehouse's table maintenance policy.
#[utoipa::path(put, path = "/warehouses/{id}/maintenance", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id")), request_body = MaintenanceBody,
    responses((status = 200, body = MaintenanceBody), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn set_maintenance(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<MaintenanceBody>,
) -> ApiResult<Json<MaintenanceBody>> {
    let mut policy = MaintenancePolicy {
        enabled: body.enabled,
        properties: body.properties,
        ..Default::default()
    };
    if let Some(interval) = body.interval_seconds {
        policy.interval_seconds = interval;
    }
    let policy = state
        .services
        .set_maintenance_policy(&ctx, WarehouseId(id), policy)
        .await?;
    Ok(Json(maintenance_body(policy)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunMaintenanceRequest {
    /// Only the tables of this namespace (and those below it).
    pub namespace: Option<Vec<String>>,
    /// Only this table (of `namespace`).
    pub table: Option<String>,
    /// The branch whose tables are maintained (default `main`).
    pub branch: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunMaintenanceResponse {
    /// Tasks enqueued (a table with one pending gets no second).
    pub enqueued: usize,
}

/// Enqueues maintenance now for the tables of the warehouse on a branch (`main` unless named; or
/// of a namespace, or one table), whatever their interval; what each does follows their policy.
#[utoipa::path(post, path = "/warehouses/{id}/maintenance/run", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id")), request_body = RunMaintenanceRequest,
    responses((status = 200, body = RunMaintenanceResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn run_maintenance(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> ApiResult<Json<RunMaintenanceResponse>> {
    let request: RunMaintenanceRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RunMaintenanceRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Error::bad_request(format!("invalid request body: {e}")))?
    };
    let namespace = request
        .namespace
        .map(crate::model::NamespaceIdent::new)
        .transpose()?;
    let enqueued = state
        .services
        .run_maintenance(
            &ctx,
            WarehouseId(id),
            request.branch.as_deref(),
            namespace,
            request.table,
        )
        .await?;
    Ok(Json(RunMaintenanceResponse { enqueued }))
}

// Tasks.

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "kebab-case")]
#[into_params(parameter_in = Query)]
pub struct ListTasksQuery {
    /// `purge`, `expiry` (of soft-deleted tables and views) or `maintenance`.
    pub queue: Option<String>,
    /// `scheduled`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// What the task acts on: `table:<uuid>` or `deleted:<id>`.
    pub target: Option<String>,
    pub page_token: Option<String>,
    pub page_size: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct TaskResponse {
    pub id: Uuid,
    pub queue: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// `scheduled`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Failed attempts since it was last started or retried.
    pub failures: u32,
    pub max_attempts: u32,
    /// When it is due, or was (unix milliseconds).
    pub scheduled_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<i64>,
    /// The worker that runs it, or last ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    pub cancel_requested: bool,
    /// What it has done so far (a purge: its folders and the files it deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub progress: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Every attempt (only when one task is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptResponse>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct AttemptResponse {
    pub attempt: u32,
    pub worker: String,
    pub started_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// `running`, `succeeded`, `failed`, `abandoned` (its worker stopped heartbeating) or
    /// `cancelled`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn task_response(t: Task, attempts: Option<Vec<TaskAttempt>>) -> TaskResponse {
    TaskResponse {
        id: t.id,
        queue: t.queue,
        target: t.target,
        payload: t.payload,
        status: t.status.as_str().to_string(),
        attempts: t.attempts,
        failures: t.failures,
        max_attempts: t.max_attempts,
        scheduled_at: t.scheduled_at,
        heartbeat_at: t.heartbeat_at,
        worker: t.worker,
        cancel_requested: t.cancel_requested,
        progress: t.progress,
        last_error: t.last_error,
        created_at: t.created_at,
        updated_at: t.updated_at,
        attempt_log: attempts.map(|a| {
            a.into_iter()
                .map(|a| AttemptResponse {
                    attempt: a.attempt,
                    worker: a.worker,
                    started_at: a.started_at,
                    finished_at: a.finished_at,
                    outcome: a.outcome,
                    message: a.message,
                })
                .collect()
        }),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ListTasksResponse {
    pub tasks: Vec<TaskResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// The warehouse's tasks, newest first.
#[utoipa::path(get, path = "/warehouses/{id}/tasks", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"), ListTasksQuery),
    responses((status = 200, body = ListTasksResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn list_tasks(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    Query(query): Query<ListTasksQuery>,
) -> ApiResult<Json<ListTasksResponse>> {
    let filter = TaskFilter {
        queue: query.queue,
        status: query.status.as_deref().map(TaskStatus::parse).transpose()?,
        target: query.target,
    };
    let page = page_request(query.page_token.as_deref(), query.page_size)?.unwrap_or(PageRequest {
        after: None,
        limit: Some(100),
    });
    let found = state
        .services
        .list_tasks(&ctx, WarehouseId(id), &filter, &page)
        .await?;
    Ok(Json(ListTasksResponse {
        tasks: found
            .items
            .into_iter()
            .map(|t| task_response(t, None))
            .collect(),
        next_page_token: found.next.as_deref().map(page_token),
    }))
}

/// One task, with the log of its attempts.
#[utoipa::path(get, path = "/warehouses/{id}/tasks/{task_id}", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"), ("task_id" = Uuid, Path)),
    responses((status = 200, body = TaskResponse), (status = 404, body = IcebergErrorResponse)))]
async fn get_task(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, task_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<TaskResponse>> {
    let (task, attempts) = state
        .services
        .get_task(&ctx, WarehouseId(id), task_id)
        .await?;
    Ok(Json(task_response(task, Some(attempts))))
}

async fn control(
    state: &AppState,
    ctx: &crate::service::RequestContext,
    warehouse: Uuid,
    task: Uuid,
    control: TaskControl,
) -> ApiResult<Json<TaskResponse>> {
    let task = state
        .services
        .control_task(ctx, WarehouseId(warehouse), task, control)
        .await?;
    Ok(Json(task_response(task, None)))
}

/// Cancels a scheduled task, or asks a running one to stop (its worker stops at its next
/// heartbeat; a purge stopped halfway keeps what it did not delete).
#[utoipa::path(post, path = "/warehouses/{id}/tasks/{task_id}/cancel", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"), ("task_id" = Uuid, Path)),
    responses((status = 200, body = TaskResponse), (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "the task has finished", body = IcebergErrorResponse)))]
async fn cancel_task(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, task_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<TaskResponse>> {
    control(&state, &ctx, id, task_id, TaskControl::Cancel).await
}

/// Makes a scheduled task due now (a soft delete's expiry, a retry waiting for its backoff).
#[utoipa::path(post, path = "/warehouses/{id}/tasks/{task_id}/run-now", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"), ("task_id" = Uuid, Path)),
    responses((status = 200, body = TaskResponse), (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "the task is not scheduled", body = IcebergErrorResponse)))]
async fn run_task_now(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, task_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<TaskResponse>> {
    control(&state, &ctx, id, task_id, TaskControl::RunNow).await
}

/// Schedules a failed or cancelled task again, now, with its attempts counted afresh.
#[utoipa::path(post, path = "/warehouses/{id}/tasks/{task_id}/retry", tag = "lifecycle",
    params(("id" = Uuid, Path, description = "warehouse id"), ("task_id" = Uuid, Path)),
    responses((status = 200, body = TaskResponse), (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "the task is not failed or cancelled", body = IcebergErrorResponse)))]
async fn retry_task(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, task_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<TaskResponse>> {
    control(&state, &ctx, id, task_id, TaskControl::Retry).await
}
