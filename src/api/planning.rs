//! Server-side scan planning: `plan`, `plan/{plan-id}` and `tasks` under a table (the use cases
//! are `service::scan`'s).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, IcebergErrorResponse, status_and_type};
use super::extract::{Ctx, JsonBody, Path, ident_of, warehouse_of};
use super::tables::delegation_of;
use crate::model::WarehouseId;
use crate::service::scan::{PlanOutcome, ScanRequest};

/// The planning routes of the catalog.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plan_table_scan))
        .routes(routes!(fetch_planning_result, cancel_planning))
        .routes(routes!(fetch_scan_tasks))
}

/// The management routes of scan planning: a warehouse's planning mode.
pub fn management_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_scan_planning, set_scan_planning))
}

/// Where a warehouse's clients are told to plan scans.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScanPlanningBody {
    /// `server` or `client`, sent as `scan-planning-mode` in the loadTable config of the
    /// warehouse's tables (a table's `floe.scan-planning-mode` property wins); null: nothing is
    /// said.
    pub mode: Option<String>,
}

/// A warehouse's scan planning mode.
#[utoipa::path(get, path = "/warehouses/{id}/scan-planning", tag = "warehouses",
    params(("id" = uuid::Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = ScanPlanningBody), (status = 404, body = IcebergErrorResponse)))]
async fn get_scan_planning(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<uuid::Uuid>,
) -> ApiResult<Json<ScanPlanningBody>> {
    let mode = state
        .services
        .warehouse_scan_planning(&ctx, WarehouseId(id))
        .await?;
    Ok(Json(ScanPlanningBody { mode }))
}

/// Sets where the warehouse's clients are told to plan scans (the right to change the warehouse's
/// storage is needed).
#[utoipa::path(put, path = "/warehouses/{id}/scan-planning", tag = "warehouses",
    params(("id" = uuid::Uuid, Path, description = "warehouse id")),
    request_body = ScanPlanningBody,
    responses((status = 200, body = ScanPlanningBody), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn set_scan_planning(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<uuid::Uuid>,
    JsonBody(body): JsonBody<ScanPlanningBody>,
) -> ApiResult<Json<ScanPlanningBody>> {
    let mode = state
        .services
        .set_warehouse_scan_planning(&ctx, WarehouseId(id), body.mode)
        .await?;
    Ok(Json(ScanPlanningBody { mode }))
}

/// A planning outcome as the spec's `PlanTableScanResult` / `FetchPlanningResult`.
fn outcome_response(outcome: PlanOutcome) -> Response {
    let body = match outcome {
        PlanOutcome::Completed {
            plan_id,
            mut tasks,
            credentials,
        } => {
            tasks["status"] = json!("completed");
            if let Some(id) = plan_id {
                tasks["plan-id"] = json!(id);
            }
            if !credentials.is_empty() {
                tasks["storage-credentials"] = credentials
                    .into_iter()
                    .map(|(prefix, config)| json!({"prefix": prefix, "config": config}))
                    .collect();
            }
            tasks
        }
        PlanOutcome::Submitted { plan_id } => json!({"status": "submitted", "plan-id": plan_id}),
        PlanOutcome::Cancelled => json!({"status": "cancelled"}),
        PlanOutcome::Failed(error) => {
            let (status, r#type) = status_and_type(error.kind);
            json!({"status": "failed", "error": {
                "message": error.message, "type": r#type, "code": status.as_u16()}})
        }
    };
    Json(body).into_response()
}

/// Plans a scan: small scans answer `completed` with their file scan tasks at once; large ones
/// answer `submitted` with a plan id to poll. Credentials for the files come with completed
/// plans, as `X-Iceberg-Access-Delegation` asks (as for loadTable).
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}/plan", tag = "tables",
    operation_id = "planTableScan",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path)),
    request_body(content = Object, description = "PlanTableScanRequest"),
    responses((status = 200, description = "PlanTableScanResult"),
              (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn plan_table_scan(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    JsonBody(request): JsonBody<ScanRequest>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    let outcome = state
        .services
        .plan_table_scan(&ctx, warehouse, &ident, request, delegation_of(&headers))
        .await?;
    Ok(outcome_response(outcome))
}

/// Where a held plan stands: `submitted`, `completed` with its plan tasks, `cancelled`, or
/// `failed`. Only the caller who submitted it sees it.
#[utoipa::path(get, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}/plan/{plan-id}", tag = "tables",
    operation_id = "fetchPlanningResult",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path),
           ("plan-id" = String, Path)),
    responses((status = 200, description = "FetchPlanningResult"),
              (status = 404, description = "NoSuchPlanIdException", body = IcebergErrorResponse)))]
async fn fetch_planning_result(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    Path((prefix, namespace, table, plan_id)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    let outcome = state
        .services
        .fetch_planning_result(&ctx, warehouse, &ident, &plan_id, delegation_of(&headers))
        .await?;
    Ok(outcome_response(outcome))
}

/// Cancels a held plan: its tasks are no longer served.
#[utoipa::path(delete, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}/plan/{plan-id}", tag = "tables",
    operation_id = "cancelPlanning",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path),
           ("plan-id" = String, Path)),
    responses((status = 204),
              (status = 404, description = "NoSuchPlanIdException", body = IcebergErrorResponse)))]
async fn cancel_planning(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, table, plan_id)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    state
        .services
        .cancel_planning(&ctx, warehouse, &ident, &plan_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct FetchScanTasksRequest {
    /// A plan task from a completed plan.
    pub plan_task: String,
}

/// The file scan tasks (and the delete files they reference) of one plan task.
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}/tasks", tag = "tables",
    operation_id = "fetchScanTasks",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path)),
    request_body = FetchScanTasksRequest,
    responses((status = 200, description = "FetchScanTasksResult"),
              (status = 404, description = "NoSuchPlanTaskException", body = IcebergErrorResponse)))]
async fn fetch_scan_tasks(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    JsonBody(request): JsonBody<FetchScanTasksRequest>,
) -> ApiResult<Json<Value>> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    let tasks = state
        .services
        .fetch_scan_tasks(&ctx, warehouse, &ident, &request.plan_task)
        .await?;
    Ok(Json(tasks))
}
