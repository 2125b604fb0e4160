//! The Iceberg REST catalog at `/catalog/v1`: config and namespaces (tables and views follow).
//! Shapes follow `rest-catalog-open-api.yaml`; `{prefix}` is the warehouse id that `/v1/config`
//! hands out as `overrides.prefix`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, IcebergErrorResponse};
use super::extract::{
    Ctx, JsonBody, Path, Query, namespace_of, page_request, page_token, warehouse_of,
};
use crate::error::{Entity, Error};
use crate::model::{NamespaceIdent, Operation, PageRequest, ProjectId, Route, WarehouseRef};

/// Exactly the routes Floe's catalog serves, as `/v1/config` advertises them (read from the
/// operation table, `model::Operation`).
pub fn endpoints() -> Vec<String> {
    Operation::ALL
        .iter()
        .filter(|op| op.advertised())
        .filter_map(|op| match op.route() {
            Route::Http { method, path } => Some(format!(
                "{method} {}",
                path.strip_prefix("/catalog").unwrap_or(path)
            )),
            Route::S3(_) => None,
        })
        .collect()
}

/// Config and namespaces (tables and views have routers of their own).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_config))
        .routes(routes!(list_namespaces, create_namespace))
        .routes(routes!(load_namespace, namespace_exists, drop_namespace))
        .routes(routes!(update_namespace_properties))
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
    /// How long a client may retry a mutation with its `Idempotency-Key` (ISO-8601); absent
    /// when keys are off.
    #[serde(
        rename = "idempotency-key-lifetime",
        skip_serializing_if = "Option::is_none"
    )]
    pub idempotency_key_lifetime: Option<String>,
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
    let warehouse = query.warehouse.as_deref().unwrap_or("");
    if warehouse.is_empty() {
        return Err(Error::bad_request(
            "the warehouse parameter is required: set `warehouse` in the client's catalog config",
        )
        .into());
    }
    let named = WarehouseRef::parse(warehouse).ok_or_else(|| {
        Error::not_found(
            Entity::Warehouse,
            format!("warehouse {warehouse:?} does not exist"),
        )
    })?;
    let config = state.services.catalog_config(&ctx, &named, project).await?;
    let mut overrides = config.overrides;
    let prefix = WarehouseRef::prefix(config.warehouse.id, &config.branch.selector());
    overrides.insert("prefix".into(), prefix);
    Ok(Json(CatalogConfigResponse {
        defaults: config.defaults,
        overrides,
        // The events feed is served only while events are on.
        endpoints: endpoints()
            .into_iter()
            .filter(|e| state.services.events_enabled() || !e.ends_with("/events"))
            .collect(),
        idempotency_key_lifetime: state
            .services
            .idempotency_lifetime()
            .map(|d| format!("PT{}S", d.as_secs())),
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
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path)), request_body = CreateNamespaceRequest,
    responses((status = 200, body = NamespaceResponse),
              (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "already exists", body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DropNamespaceQuery {
    /// Drop it even when it (or, recursively, anything in it) is protected. `true` or `false`.
    #[serde(default)]
    pub force: Option<String>,
    /// Drop it with every namespace, table and view in it, in one commit (soft-deleted under a
    /// soft delete profile). `true` or `false`.
    #[serde(default)]
    pub recursive: Option<String>,
    /// With `recursive`: purge the tables' files too. `true` or `false`.
    #[serde(default)]
    pub purge: Option<String>,
}

/// Drops an empty namespace; with `recursive=true`, everything in it too, in one commit.
#[utoipa::path(delete, path = "/v1/{prefix}/namespaces/{namespace}", operation_id = "dropNamespace", tag = "namespaces",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path), ("namespace" = String, Path), DropNamespaceQuery),
    responses((status = 204), (status = 404, body = IcebergErrorResponse),
              (status = 409, description = "not empty, or protected and force was not given", body = IcebergErrorResponse), (status = 400, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn drop_namespace(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace)): Path<(String, String)>,
    Query(query): Query<DropNamespaceQuery>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = namespace_of(&namespace)?;
    let request = crate::service::DropNamespaceRequest {
        force: super::extract::flag("force", query.force.as_deref())?,
        recursive: super::extract::flag("recursive", query.recursive.as_deref())?,
        purge: super::extract::flag("purge", query.purge.as_deref())?,
    };
    state
        .services
        .drop_namespace(&ctx, warehouse, &ident, request)
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
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path), ("namespace" = String, Path)),
    request_body = UpdateNamespacePropertiesRequest,
    responses((status = 200, body = UpdateNamespacePropertiesResponse),
              (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse),
              (status = 422, description = "a key both updated and removed, or the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
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
