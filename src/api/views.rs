//! The view routes of the Iceberg REST catalog: list, create, load, replace, drop, rename and
//! register views. Bodies are sent around the stored metadata bytes, as tables' are.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use iceberg::ViewUpdate;
use iceberg::spec::{Schema, ViewVersion};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, IcebergErrorResponse};
use super::extract::{
    CarriesSchemas, Ctx, JsonBody, Path, Query, SchemaBody, ident_of, namespace_of, page_request,
    warehouse_of,
};
use super::tables::{
    ListQuery, ListTablesResponse, RenameTableRequest, TableIdentifier, envelope, list_response,
};
use crate::error::Error;
use crate::model::PageRequest;
use crate::service::CreateView;
use crate::service::metadata::ViewRequirement;

/// The view routes of the catalog.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_views, create_view))
        .routes(routes!(load_view, view_exists, replace_view, drop_view))
        .routes(routes!(rename_view))
        .routes(routes!(register_view))
}

/// The views of a namespace.
#[utoipa::path(get, path = "/v1/{prefix}/namespaces/{namespace}/views", tag = "views",
    operation_id = "listViews",
    params(("prefix" = String, Path), ("namespace" = String, Path), ListQuery),
    responses((status = 200, body = ListTablesResponse), (status = 404, body = IcebergErrorResponse)))]
async fn list_views(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult<axum::Json<ListTablesResponse>> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let namespace = namespace_of(&namespace)?;
    let paging = page_request(query.page_token.as_deref(), query.page_size)?;
    let names = state
        .services
        .list_views(
            &ctx,
            warehouse,
            &namespace,
            paging.clone().unwrap_or_else(PageRequest::all),
        )
        .await?;
    Ok(axum::Json(list_response(&namespace, names, &paging)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CreateViewRequest {
    pub name: String,
    #[serde(default)]
    pub location: Option<String>,
    #[schema(value_type = Object)]
    pub schema: Schema,
    #[schema(value_type = Object)]
    pub view_version: ViewVersion,
    #[serde(default)]
    pub properties: HashMap<String, String>,
}

impl CarriesSchemas for CreateViewRequest {
    fn lower(body: &mut serde_json::Value) -> Result<(), String> {
        crate::model::v3_types::lower_create(body)
    }
}

impl CarriesSchemas for CommitViewRequest {
    fn lower(body: &mut serde_json::Value) -> Result<(), String> {
        match body.get_mut("updates") {
            Some(updates) => crate::model::v3_types::lower_updates(updates),
            None => Ok(()),
        }
    }
}

fn view_response(view: &crate::service::ViewState) -> Response {
    envelope(
        &Some(view.metadata_location.clone()),
        &view.metadata,
        b",\"config\":{}}".to_vec(),
    )
}

/// Creates a view.
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/views", tag = "views",
    operation_id = "createView",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path), ("namespace" = String, Path)), request_body = CreateViewRequest,
    responses((status = 200, description = "LoadViewResult"), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse), (status = 409, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn create_view(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace)): Path<(String, String)>,
    SchemaBody(request): SchemaBody<CreateViewRequest>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let namespace = namespace_of(&namespace)?;
    let view = state
        .services
        .create_view(
            &ctx,
            warehouse,
            namespace,
            CreateView {
                name: request.name,
                location: request.location,
                schema: request.schema,
                view_version: request.view_version,
                properties: request.properties,
            },
        )
        .await?;
    Ok(view_response(&view))
}

/// A view's metadata.
#[utoipa::path(get, path = "/v1/{prefix}/namespaces/{namespace}/views/{view}", tag = "views",
    operation_id = "loadView",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("view" = String, Path)),
    responses((status = 200, description = "LoadViewResult"), (status = 404, body = IcebergErrorResponse)))]
async fn load_view(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, view)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, view)?;
    let view = state.services.load_view(&ctx, warehouse, &ident).await?;
    Ok(view_response(&view))
}

/// 204 when the view exists.
#[utoipa::path(head, path = "/v1/{prefix}/namespaces/{namespace}/views/{view}", tag = "views",
    operation_id = "viewExists",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("view" = String, Path)),
    responses((status = 204), (status = 404)))]
async fn view_exists(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, view)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, view)?;
    state.services.view_exists(&ctx, warehouse, &ident).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CommitViewRequest {
    #[serde(default)]
    pub identifier: Option<TableIdentifier>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub requirements: Vec<ViewRequirement>,
    #[schema(value_type = Vec<Object>)]
    pub updates: Vec<ViewUpdate>,
}

/// Replaces a view (a new version, schema or properties).
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/views/{view}", tag = "views",
    operation_id = "replaceView",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path), ("namespace" = String, Path), ("view" = String, Path)),
    request_body = CommitViewRequest,
    responses((status = 200, description = "LoadViewResult"), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse), (status = 409, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn replace_view(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, view)): Path<(String, String, String)>,
    SchemaBody(request): SchemaBody<CommitViewRequest>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, view)?;
    if let Some(identifier) = request.identifier
        && identifier.into_ident()? != ident
    {
        return Err(Error::bad_request("the body's identifier differs from the path").into());
    }
    let view = state
        .services
        .replace_view(
            &ctx,
            warehouse,
            &ident,
            request.requirements,
            request.updates,
        )
        .await?;
    Ok(view_response(&view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DropViewQuery {
    /// Drop it even when it is protected. `true` or `false`.
    #[serde(default)]
    pub force: Option<String>,
}

/// Drops a view (kept for undrop under a soft delete profile).
#[utoipa::path(delete, path = "/v1/{prefix}/namespaces/{namespace}/views/{view}", tag = "views",
    operation_id = "dropView",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path), ("namespace" = String, Path), ("view" = String, Path), DropViewQuery),
    responses((status = 204), (status = 404, body = IcebergErrorResponse),
        (status = 409, description = "the view is protected and force was not given", body = IcebergErrorResponse), (status = 400, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn drop_view(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, view)): Path<(String, String, String)>,
    Query(query): Query<DropViewQuery>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, view)?;
    let force = super::extract::flag("force", query.force.as_deref())?;
    state
        .services
        .drop_view(&ctx, warehouse, &ident, force)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Renames a view.
#[utoipa::path(post, path = "/v1/{prefix}/views/rename", tag = "views", operation_id = "renameView",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path)), request_body = RenameTableRequest,
    responses((status = 204), (status = 404, body = IcebergErrorResponse), (status = 409, body = IcebergErrorResponse), (status = 400, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn rename_view(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(prefix): Path<String>,
    JsonBody(request): JsonBody<RenameTableRequest>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let from = request.source.into_ident()?;
    let to = request.destination.into_ident()?;
    state
        .services
        .rename_view(&ctx, warehouse, &from, &to)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RegisterViewRequest {
    pub name: String,
    pub metadata_location: String,
}

/// Registers an existing view metadata file (inside the warehouse) as a view.
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/register-view", tag = "views",
    operation_id = "registerView",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path), ("namespace" = String, Path)), request_body = RegisterViewRequest,
    responses((status = 200, description = "LoadViewResult"), (status = 400, body = IcebergErrorResponse),
              (status = 403, body = IcebergErrorResponse), (status = 409, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn register_view(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace)): Path<(String, String)>,
    JsonBody(request): JsonBody<RegisterViewRequest>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, request.name)?;
    let view = state
        .services
        .register_view(&ctx, warehouse, ident, &request.metadata_location)
        .await?;
    Ok(view_response(&view))
}
