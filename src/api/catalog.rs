//! The Iceberg REST catalog at `/catalog/v1`: config and namespaces (tables and views follow).
//! Shapes follow `rest-catalog-open-api.yaml`; `{prefix}` is the warehouse id that `/v1/config`
//! hands out as `overrides.prefix`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, IcebergErrorResponse};
use super::extract::{Ctx, JsonBody, Path, Query};
use super::tables;
use crate::error::{Entity, Error};
use crate::model::{MAIN_BRANCH, NamespaceIdent, PageRequest, ProjectId, WarehouseId};
use crate::service::RequestContext;

/// Exactly the routes Floe serves, as `/v1/config` advertises them.
pub const ENDPOINTS: &[&str] = &[
    "GET /v1/{prefix}/namespaces",
    "POST /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "DELETE /v1/{prefix}/namespaces/{namespace}",
    "POST /v1/{prefix}/namespaces/{namespace}/properties",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/register",
    "POST /v1/{prefix}/tables/rename",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/sign",
    "POST /v1/{prefix}/transactions/commit",
    "GET /v1/{prefix}/namespaces/{namespace}/views",
    "POST /v1/{prefix}/namespaces/{namespace}/views",
    "GET /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "POST /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "POST /v1/{prefix}/views/rename",
    "POST /v1/{prefix}/namespaces/{namespace}/register-view",
];

/// The page size when a client asks to page but names no size, and the largest allowed.
const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_config))
        .routes(routes!(list_namespaces, create_namespace))
        .routes(routes!(load_namespace, namespace_exists, drop_namespace))
        .routes(routes!(update_namespace_properties))
        .routes(routes!(tables::list_tables, tables::create_table))
        .routes(routes!(
            tables::load_table,
            tables::table_exists,
            tables::update_table,
            tables::drop_table
        ))
        .routes(routes!(tables::register_table))
        .routes(routes!(tables::rename_table))
        .routes(routes!(tables::report_metrics))
        .routes(routes!(tables::load_credentials))
        .routes(routes!(tables::sign_request))
        .routes(routes!(tables::sign_s3_request))
        .routes(routes!(tables::commit_transaction))
        .routes(routes!(tables::list_views, tables::create_view))
        .routes(routes!(
            tables::load_view,
            tables::view_exists,
            tables::replace_view,
            tables::drop_view
        ))
        .routes(routes!(tables::rename_view))
        .routes(routes!(tables::register_view))
}

/// The warehouse and ref a `{prefix}` names: Floe's prefixes are a warehouse id, for `main`, or
/// `<warehouse id>@<branch, tag or commit id>`; anything else names no warehouse. The ref goes into
/// the request's context.
pub(super) fn warehouse_of(
    prefix: &str,
    mut ctx: RequestContext,
) -> Result<(WarehouseId, RequestContext), Error> {
    let (warehouse, reference) = match prefix.split_once('@') {
        Some((warehouse, reference)) => (warehouse, Some(reference)),
        None => (prefix, None),
    };
    let warehouse = warehouse.parse().map_err(|_| {
        Error::not_found(
            Entity::Warehouse,
            format!("no warehouse has the prefix {prefix:?}; get it from /v1/config"),
        )
    })?;
    ctx.reference = match reference {
        None | Some(MAIN_BRANCH) => None,
        Some(reference) => Some(reference.to_string()),
    };
    Ok((warehouse, ctx))
}

/// The `{namespace}` path parameter: levels separated by the unit separator (`%1F`).
pub(super) fn namespace_of(param: &str) -> Result<NamespaceIdent, Error> {
    NamespaceIdent::from_joined(param)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfigQuery {
    /// The warehouse: its name (in the project of the `x-project-id` header, else the default
    /// project) or its id.
    pub warehouse: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CatalogConfigResponse {
    pub defaults: BTreeMap<String, String>,
    pub overrides: BTreeMap<String, String>,
    pub endpoints: Vec<String>,
}

/// Catalog configuration for a warehouse: the `prefix` to use and the endpoints Floe serves.
#[utoipa::path(get, path = "/v1/config", operation_id = "getConfig", tag = "configuration", params(ConfigQuery,
        ("x-project-id" = Option<String>, Header, description = "project of a warehouse given by name")),
    responses((status = 200, body = CatalogConfigResponse),
              (status = 400, body = IcebergErrorResponse),
              (status = 404, description = "no such warehouse", body = IcebergErrorResponse)))]
async fn get_config(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    Query(query): Query<ConfigQuery>,
) -> ApiResult<Json<CatalogConfigResponse>> {
    let project = match headers.get("x-project-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<ProjectId>().ok())
                .ok_or_else(|| Error::bad_request("x-project-id must be a project id"))?,
        ),
    };
    let config = state
        .services
        .catalog_config(&ctx, query.warehouse.as_deref().unwrap_or(""), project)
        .await?;
    let mut overrides = config.overrides;
    let prefix = if config.branch.name == MAIN_BRANCH {
        config.warehouse.id.to_string()
    } else {
        format!(
            "{}@{}",
            config.warehouse.id,
            config.branch.name.trim_start_matches('~')
        )
    };
    overrides.insert("prefix".into(), prefix);
    Ok(Json(CatalogConfigResponse {
        defaults: config.defaults,
        overrides,
        endpoints: ENDPOINTS.iter().map(|e| e.to_string()).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListNamespacesQuery {
    /// Opaque token from a previous page; empty to start paging.
    pub page_token: Option<String>,
    /// Largest page (1 to 1000; 100 when paging without a size).
    pub page_size: Option<u32>,
    /// List the children of this namespace (levels separated by `%1F`).
    pub parent: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ListNamespacesResponse {
    pub namespaces: Vec<Vec<String>>,
    /// Present when paging: the token of the next page, or null after the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub next_page_token: Option<Option<String>>,
}

/// The opaque token that continues a listing after `after`.
pub(super) fn page_token(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(after)
}

/// Turns the client's paging parameters into a store page request; `None` when not paging.
pub(super) fn page_request(
    token: Option<&str>,
    size: Option<u32>,
) -> Result<Option<PageRequest>, Error> {
    if token.is_none() && size.is_none() {
        return Ok(None);
    }
    let limit = size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(Error::bad_request(format!(
            "pageSize must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    let after = match token.filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => Some(
            URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Error::bad_request("pageToken is not a token this server issued"))?,
        ),
    };
    Ok(Some(PageRequest {
        after,
        limit: Some(limit),
    }))
}

/// Namespaces at the top level, or under `parent`.
#[utoipa::path(get, path = "/v1/{prefix}/namespaces", operation_id = "listNamespaces", tag = "namespaces",
    params(("prefix" = String, Path), ListNamespacesQuery),
    responses((status = 200, body = ListNamespacesResponse),
              (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn list_namespaces(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(prefix): Path<String>,
    Query(query): Query<ListNamespacesQuery>,
) -> ApiResult<Json<ListNamespacesResponse>> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let parent = query.parent.as_deref().map(namespace_of).transpose()?;
    let paging = page_request(query.page_token.as_deref(), query.page_size)?;
    let page = state
        .services
        .list_namespaces(
            &ctx,
            warehouse,
            parent,
            paging.clone().unwrap_or_else(PageRequest::all),
        )
        .await?;
    Ok(Json(ListNamespacesResponse {
        namespaces: page
            .namespaces
            .into_iter()
            .map(|ns| ns.levels().to_vec())
            .collect(),
        next_page_token: paging.map(|_| page.next.map(|n| page_token(&n))),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CreateNamespaceRequest {
    pub namespace: Vec<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NamespaceResponse {
    pub namespace: Vec<String>,
    pub properties: BTreeMap<String, String>,
}

/// Creates a namespace; a nested one needs its parent.
#[utoipa::path(post, path = "/v1/{prefix}/namespaces", operation_id = "createNamespace", tag = "namespaces",
    params(("prefix" = String, Path)), request_body = CreateNamespaceRequest,
    responses((status = 200, body = NamespaceResponse),
              (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "already exists", body = IcebergErrorResponse)))]
async fn create_namespace(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(prefix): Path<String>,
    JsonBody(request): JsonBody<CreateNamespaceRequest>,
) -> ApiResult<Json<NamespaceResponse>> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = NamespaceIdent::new(request.namespace)?;
    let namespace = state
        .services
        .create_namespace(&ctx, warehouse, ident, request.properties)
        .await?;
    Ok(Json(NamespaceResponse {
        namespace: namespace.ident.levels().to_vec(),
        properties: namespace.properties,
    }))
}

/// A namespace and its properties.
#[utoipa::path(get, path = "/v1/{prefix}/namespaces/{namespace}", operation_id = "loadNamespaceMetadata", tag = "namespaces",
    params(("prefix" = String, Path), ("namespace" = String, Path, description = "levels separated by %1F")),
    responses((status = 200, body = NamespaceResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn load_namespace(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace)): Path<(String, String)>,
) -> ApiResult<Json<NamespaceResponse>> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = namespace_of(&namespace)?;
    let namespace = state
        .services
        .load_namespace(&ctx, warehouse, &ident)
        .await?;
    Ok(Json(NamespaceResponse {
        namespace: namespace.ident.levels().to_vec(),
        properties: namespace.properties,
    }))
}

/// 204 when the namespace exists, 404 when not.
#[utoipa::path(head, path = "/v1/{prefix}/namespaces/{namespace}", operation_id = "namespaceExists", tag = "namespaces",
    params(("prefix" = String, Path), ("namespace" = String, Path)),
    responses((status = 204), (status = 404)))]
async fn namespace_exists(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = namespace_of(&namespace)?;
    state
        .services
        .load_namespace(&ctx, warehouse, &ident)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Drops an empty namespace.
#[utoipa::path(delete, path = "/v1/{prefix}/namespaces/{namespace}", operation_id = "dropNamespace", tag = "namespaces",
    params(("prefix" = String, Path), ("namespace" = String, Path)),
    responses((status = 204), (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "not empty", body = IcebergErrorResponse)))]
async fn drop_namespace(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = namespace_of(&namespace)?;
    state
        .services
        .drop_namespace(&ctx, warehouse, &ident)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UpdateNamespacePropertiesRequest {
    #[serde(default)]
    pub removals: Vec<String>,
    #[serde(default)]
    pub updates: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpdateNamespacePropertiesResponse {
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub missing: Vec<String>,
}

/// Sets and removes properties in one step; a key in both lists is a 422.
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/properties", operation_id = "updateProperties", tag = "namespaces",
    params(("prefix" = String, Path), ("namespace" = String, Path)),
    request_body = UpdateNamespacePropertiesRequest,
    responses((status = 200, body = UpdateNamespacePropertiesResponse),
              (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse),
              (status = 422, body = IcebergErrorResponse)))]
async fn update_namespace_properties(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace)): Path<(String, String)>,
    JsonBody(request): JsonBody<UpdateNamespacePropertiesRequest>,
) -> ApiResult<Json<UpdateNamespacePropertiesResponse>> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = namespace_of(&namespace)?;
    let result = state
        .services
        .update_namespace_properties(&ctx, warehouse, &ident, request.updates, request.removals)
        .await?;
    Ok(Json(UpdateNamespacePropertiesResponse {
        updated: result.updated,
        removed: result.removed,
        missing: result.missing,
    }))
}
