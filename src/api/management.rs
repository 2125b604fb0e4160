//! `/management/v1`: server info and bootstrap, projects, warehouses. Kebab-case JSON, errors in the
//! Iceberg `ErrorModel` shape. Handlers extract, call one use case, and convert the result.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiResult, IcebergErrorResponse};
use super::extract::{Ctx, JsonBody, Path, Query, page_request, page_token};
use crate::model::{
    PageRequest, Project, ProjectId, RefSelector, StorageCredential, StorageProfile, Warehouse,
    WarehouseId,
};
use crate::service::{CreateWarehouse, UpdateWarehouseStorage};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_info))
        .routes(routes!(bootstrap))
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, delete_project))
        .routes(routes!(rename_project))
        .routes(routes!(list_warehouses, create_warehouse))
        .routes(routes!(get_warehouse, delete_warehouse))
        .routes(routes!(rename_warehouse))
        .routes(routes!(update_warehouse_storage))
        .routes(routes!(update_warehouse_credential))
        .routes(routes!(list_access_keys, create_access_key))
        .routes(routes!(delete_access_key))
        .routes(routes!(search_tabulars))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ServerInfoResponse {
    /// Floe's version.
    pub version: String,
    pub bootstrapped: bool,
    /// `sqlite` or `postgres`.
    pub persistence_backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_project_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrapped_at: Option<DateTime<Utc>>,
    /// The built-in S3 gateway's URL, when it is enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
}

/// Version, bootstrap state and persistence backend.
#[utoipa::path(get, path = "/info", tag = "server",
    responses((status = 200, body = ServerInfoResponse)))]
async fn get_info(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
) -> ApiResult<Json<ServerInfoResponse>> {
    let status = state.services.server_status(&ctx).await?;
    Ok(Json(ServerInfoResponse {
        version: status.version.to_string(),
        bootstrapped: status.info.is_some(),
        persistence_backend: status.backend.to_string(),
        server_id: status.info.as_ref().map(|i| i.server_id),
        default_project_id: status.info.as_ref().map(|i| i.default_project_id.0),
        bootstrapped_at: status.info.as_ref().map(|i| i.bootstrapped_at),
        s3_endpoint: state.services.gateway_endpoint().map(str::to_string),
    }))
}

/// Bootstraps the server and creates the default project; a second call is a 409.
#[utoipa::path(post, path = "/bootstrap", tag = "server",
    responses((status = 200, body = ServerInfoResponse),
              (status = 409, description = "already bootstrapped", body = IcebergErrorResponse)))]
async fn bootstrap(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
) -> ApiResult<Json<ServerInfoResponse>> {
    let info = state.services.bootstrap(&ctx).await?;
    Ok(Json(ServerInfoResponse {
        version: env!("CARGO_PKG_VERSION").to_string(),
        bootstrapped: true,
        persistence_backend: state.backend.to_string(),
        server_id: Some(info.server_id),
        default_project_id: Some(info.default_project_id.0),
        bootstrapped_at: Some(info.bootstrapped_at),
        s3_endpoint: state.services.gateway_endpoint().map(str::to_string),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ProjectResponse {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Project> for ProjectResponse {
    fn from(p: Project) -> Self {
        ProjectResponse {
            id: p.id.0,
            name: p.name,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListProjectsResponse {
    pub projects: Vec<ProjectResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProjectNameRequest {
    pub name: String,
}

/// All projects, by name.
#[utoipa::path(get, path = "/projects", tag = "projects",
    responses((status = 200, body = ListProjectsResponse)))]
async fn list_projects(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
) -> ApiResult<Json<ListProjectsResponse>> {
    let projects = state.services.list_projects(&ctx).await?;
    Ok(Json(ListProjectsResponse {
        projects: projects.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a project.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = ProjectNameRequest,
    responses((status = 201, body = ProjectResponse),
              (status = 400, body = IcebergErrorResponse),
              (status = 409, description = "name taken", body = IcebergErrorResponse)))]
async fn create_project(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(request): JsonBody<ProjectNameRequest>,
) -> ApiResult<(StatusCode, Json<ProjectResponse>)> {
    let project = state.services.create_project(&ctx, request.name).await?;
    Ok((StatusCode::CREATED, Json(project.into())))
}

/// One project.
#[utoipa::path(get, path = "/projects/{id}", tag = "projects",
    params(("id" = Uuid, Path, description = "project id")),
    responses((status = 200, body = ProjectResponse), (status = 404, body = IcebergErrorResponse)))]
async fn get_project(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ProjectResponse>> {
    let project = state.services.get_project(&ctx, ProjectId(id)).await?;
    Ok(Json(project.into()))
}

/// Renames a project.
#[utoipa::path(post, path = "/projects/{id}/rename", tag = "projects", request_body = ProjectNameRequest,
    params(("id" = Uuid, Path, description = "project id")),
    responses((status = 200, body = ProjectResponse), (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "name taken", body = IcebergErrorResponse)))]
async fn rename_project(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<ProjectNameRequest>,
) -> ApiResult<Json<ProjectResponse>> {
    let project = state
        .services
        .rename_project(&ctx, ProjectId(id), request.name)
        .await?;
    Ok(Json(project.into()))
}

/// Deletes a project that has no warehouses (the default project stays).
#[utoipa::path(delete, path = "/projects/{id}", tag = "projects",
    params(("id" = Uuid, Path, description = "project id")),
    responses((status = 204), (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "project not empty", body = IcebergErrorResponse)))]
async fn delete_project(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.services.delete_project(&ctx, ProjectId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct WarehouseResponse {
    pub id: Uuid,
    pub name: String,
    pub project_id: Uuid,
    pub storage_profile: StorageProfile,
    /// Whether a storage credential is set; the credential itself is never returned.
    pub has_storage_credential: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Warehouse> for WarehouseResponse {
    fn from(w: Warehouse) -> Self {
        WarehouseResponse {
            id: w.id.0,
            name: w.name,
            project_id: w.project_id.0,
            storage_profile: w.storage_profile,
            has_storage_credential: w.credential_secret_id.is_some(),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListWarehousesResponse {
    pub warehouses: Vec<WarehouseResponse>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "kebab-case")]
#[into_params(parameter_in = Query)]
pub struct ListWarehousesQuery {
    /// Only this project's warehouses.
    pub project_id: Option<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CreateWarehouseRequest {
    /// 3 to 63 characters of a-z, 0-9 and '-'.
    pub name: String,
    /// The default project when absent.
    #[serde(default)]
    pub project_id: Option<Uuid>,
    pub storage_profile: StorageProfile,
    #[serde(default)]
    pub storage_credential: Option<StorageCredential>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WarehouseNameRequest {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UpdateStorageRequest {
    pub storage_profile: StorageProfile,
    /// The new credential; absent or null leaves the warehouse without one.
    #[serde(default)]
    pub storage_credential: Option<StorageCredential>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UpdateCredentialRequest {
    /// The new credential; null removes it.
    pub storage_credential: Option<StorageCredential>,
}

/// Warehouses, of one project or of all.
#[utoipa::path(get, path = "/warehouses", tag = "warehouses", params(ListWarehousesQuery),
    responses((status = 200, body = ListWarehousesResponse)))]
async fn list_warehouses(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Query(query): Query<ListWarehousesQuery>,
) -> ApiResult<Json<ListWarehousesResponse>> {
    let warehouses = state
        .services
        .list_warehouses(&ctx, query.project_id.map(ProjectId))
        .await?;
    Ok(Json(ListWarehousesResponse {
        warehouses: warehouses.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a warehouse. Its storage is probed first; its credential is stored encrypted and never
/// returned.
#[utoipa::path(post, path = "/warehouses", tag = "warehouses", request_body = CreateWarehouseRequest,
    responses((status = 201, body = WarehouseResponse),
              (status = 400, body = IcebergErrorResponse),
              (status = 404, description = "no such project", body = IcebergErrorResponse),
              (status = 409, description = "name taken", body = IcebergErrorResponse)))]
async fn create_warehouse(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(request): JsonBody<CreateWarehouseRequest>,
) -> ApiResult<(StatusCode, Json<WarehouseResponse>)> {
    let warehouse = state
        .services
        .create_warehouse(
            &ctx,
            CreateWarehouse {
                name: request.name,
                project_id: request.project_id.map(ProjectId),
                storage_profile: request.storage_profile,
                storage_credential: request.storage_credential,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(warehouse.into())))
}

/// One warehouse.
#[utoipa::path(get, path = "/warehouses/{id}", tag = "warehouses",
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = WarehouseResponse), (status = 404, body = IcebergErrorResponse)))]
async fn get_warehouse(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<WarehouseResponse>> {
    let warehouse = state.services.get_warehouse(&ctx, WarehouseId(id)).await?;
    Ok(Json(warehouse.into()))
}

/// Renames a warehouse.
#[utoipa::path(post, path = "/warehouses/{id}/rename", tag = "warehouses", request_body = WarehouseNameRequest,
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = WarehouseResponse), (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "name taken", body = IcebergErrorResponse)))]
async fn rename_warehouse(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<WarehouseNameRequest>,
) -> ApiResult<Json<WarehouseResponse>> {
    let warehouse = state
        .services
        .rename_warehouse(&ctx, WarehouseId(id), request.name)
        .await?;
    Ok(Json(warehouse.into()))
}

/// Replaces the storage profile and credential; the storage location itself cannot change.
#[utoipa::path(put, path = "/warehouses/{id}/storage", tag = "warehouses", request_body = UpdateStorageRequest,
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = WarehouseResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn update_warehouse_storage(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<UpdateStorageRequest>,
) -> ApiResult<Json<WarehouseResponse>> {
    let warehouse = state
        .services
        .update_warehouse_storage(
            &ctx,
            WarehouseId(id),
            UpdateWarehouseStorage {
                storage_profile: request.storage_profile,
                storage_credential: request.storage_credential,
            },
        )
        .await?;
    Ok(Json(warehouse.into()))
}

/// Replaces or removes the storage credential.
#[utoipa::path(put, path = "/warehouses/{id}/storage-credential", tag = "warehouses",
    request_body = UpdateCredentialRequest,
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = WarehouseResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn update_warehouse_credential(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<UpdateCredentialRequest>,
) -> ApiResult<Json<WarehouseResponse>> {
    let warehouse = state
        .services
        .update_warehouse_credential(&ctx, WarehouseId(id), request.storage_credential)
        .await?;
    Ok(Json(warehouse.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteWarehouseQuery {
    /// Delete it even when it is protected. `true` or `false`.
    #[serde(default)]
    pub force: Option<String>,
}

/// Deletes an empty warehouse (no namespaces, no soft-deleted tables, no unfinished tasks).
#[utoipa::path(delete, path = "/warehouses/{id}", tag = "warehouses",
    params(("id" = Uuid, Path, description = "warehouse id"), DeleteWarehouseQuery),
    responses((status = 204), (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "warehouse not empty, or protected and force was not given", body = IcebergErrorResponse)))]
async fn delete_warehouse(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    Query(query): Query<DeleteWarehouseQuery>,
) -> ApiResult<StatusCode> {
    let force = super::extract::flag("force", query.force.as_deref())?;
    state
        .services
        .delete_warehouse(&ctx, WarehouseId(id), force)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CreateAccessKeyRequest {
    /// Shown in listings.
    #[serde(default)]
    pub description: Option<String>,
    /// The key stops working after this many seconds; unset: it works until deleted.
    #[serde(default)]
    pub expires_in_seconds: Option<u64>,
}

/// A new key. The secret is shown only here, once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CreateAccessKeyResponse {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The S3 gateway's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket the key opens: the warehouse's name, or a bucket-safe form of it when the name
    /// is not one (see the README's S3 gateway section).
    pub bucket: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct AccessKeyResponse {
    pub access_key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The user who created the key (absent on an open server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ListAccessKeysResponse {
    pub access_keys: Vec<AccessKeyResponse>,
}

/// Issues an S3 access key for the built-in gateway that opens this whole warehouse (as the bucket
/// named after it). Body optional.
#[utoipa::path(post, path = "/warehouses/{id}/access-keys", tag = "warehouses",
    request_body = CreateAccessKeyRequest,
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 201, body = CreateAccessKeyResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn create_access_key(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<CreateAccessKeyResponse>)> {
    let request: CreateAccessKeyRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CreateAccessKeyRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            crate::error::Error::bad_request(format!("invalid access key request: {e}"))
        })?
    };
    let (key, issued) = state
        .services
        .create_access_key(
            &ctx,
            WarehouseId(id),
            request.description,
            request
                .expires_in_seconds
                .map(std::time::Duration::from_secs),
        )
        .await?;
    let warehouse = state.services.get_warehouse(&ctx, key.warehouse_id).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreateAccessKeyResponse {
            access_key_id: issued.access_key_id,
            secret_access_key: issued.secret_access_key,
            expires_at: issued.expires_at,
            endpoint: state.services.gateway_endpoint().map(str::to_string),
            bucket: crate::model::gateway_bucket_name(&warehouse.name),
        }),
    ))
}

/// The warehouse's access keys (without secrets).
#[utoipa::path(get, path = "/warehouses/{id}/access-keys", tag = "warehouses",
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = ListAccessKeysResponse), (status = 404, body = IcebergErrorResponse)))]
async fn list_access_keys(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ListAccessKeysResponse>> {
    let keys = state
        .services
        .list_access_keys(&ctx, WarehouseId(id))
        .await?;
    Ok(Json(ListAccessKeysResponse {
        access_keys: keys
            .into_iter()
            .map(|k| AccessKeyResponse {
                access_key_id: k.id,
                description: k.description,
                created_at: k.created_at,
                expires_at: k.expires_at,
                created_by: k.created_by,
            })
            .collect(),
    }))
}

/// Revokes an access key (within ten seconds on every instance).
#[utoipa::path(delete, path = "/warehouses/{id}/access-keys/{key_id}", tag = "warehouses",
    params(("id" = Uuid, Path, description = "warehouse id"), ("key_id" = String, Path, description = "access key id")),
    responses((status = 204), (status = 404, body = IcebergErrorResponse)))]
async fn delete_access_key(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, key_id)): Path<(Uuid, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_access_key(&ctx, WarehouseId(id), &key_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "kebab-case")]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Part of a table's or view's name, in any case (at most 200 characters).
    pub name: String,
    /// A branch, tag or commit id; `main` when absent.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// From a previous page's `next-page-token`.
    pub page_token: Option<String>,
    /// 1 to 1000; 100 when absent.
    pub page_size: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct SearchHit {
    pub namespace: Vec<String>,
    pub name: String,
    /// `table` or `view`.
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct SearchResponse {
    /// By namespace, then name.
    pub tabulars: Vec<SearchHit>,
    /// Present while more follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Tables and views of every namespace of one ref whose name contains the text, in any case;
/// only those the caller's lists would show.
#[utoipa::path(get, path = "/warehouses/{id}/search", tag = "warehouses",
    params(("id" = Uuid, Path, description = "warehouse id"), SearchQuery),
    responses((status = 200, body = SearchResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn search_tabulars(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    Query(query): Query<SearchQuery>,
) -> ApiResult<Json<SearchResponse>> {
    let page = page_request(query.page_token.as_deref(), query.page_size)?.unwrap_or(PageRequest {
        after: None,
        limit: Some(100),
    });
    let ctx = crate::service::RequestContext {
        reference: RefSelector::parse(query.reference.as_deref()),
        ..ctx
    };
    let found = state
        .services
        .search_tabulars(&ctx, WarehouseId(id), &query.name, page)
        .await?;
    Ok(Json(SearchResponse {
        tabulars: found
            .items
            .into_iter()
            .map(|(ident, kind)| SearchHit {
                namespace: ident.namespace.levels().to_vec(),
                name: ident.name,
                kind: kind.as_str().to_string(),
            })
            .collect(),
        next_page_token: found.next.as_deref().map(page_token),
    }))
}
