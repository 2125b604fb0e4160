//! Tables, views and multi-table transactions of the Iceberg REST catalog. Request and response
//! shapes follow `rest-catalog-open-api.yaml`; the spec's own types (schemas, updates,
//! requirements) are the `iceberg` crate's.

use std::collections::{BTreeMap, HashMap};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iceberg::spec::{Schema, SortOrder, UnboundPartitionSpec};
use iceberg::{TableRequirement, TableUpdate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, IcebergErrorResponse};
use super::extract::{
    CarriesSchemas, Ctx, JsonBody, Path, Query, SchemaBody, ident_of, namespace_of, page_request,
    page_token, warehouse_of,
};
use super::gzip::{self, Deflated};
use crate::error::Error;
use crate::model::v3_types;
use crate::model::{PageRequest, TabularIdent, WarehouseId};
use crate::service::{
    CreateTable, Delegation, SnapshotsMode, TableAccess, TableChange, TableState,
};

/// The table routes of the catalog.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tables, create_table))
        .routes(routes!(load_table, table_exists, update_table, drop_table))
        .routes(routes!(register_table))
        .routes(routes!(rename_table))
        .routes(routes!(report_metrics))
        .routes(routes!(load_credentials))
        .routes(routes!(sign_request))
        .routes(routes!(sign_s3_request))
        .routes(routes!(commit_transaction))
}

/// A table or view identifier in a request body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TableIdentifier {
    pub namespace: Vec<String>,
    pub name: String,
}

impl TableIdentifier {
    pub(super) fn into_ident(self) -> Result<TabularIdent, Error> {
        TabularIdent::new(
            crate::model::NamespaceIdent::new(self.namespace)?,
            self.name,
        )
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub page_token: Option<String>,
    pub page_size: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ListTablesResponse {
    pub identifiers: Vec<TableIdentifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub next_page_token: Option<Option<String>>,
}

pub(super) fn list_response(
    namespace: &crate::model::NamespaceIdent,
    names: crate::model::Page<String>,
    paging: &Option<PageRequest>,
) -> ListTablesResponse {
    ListTablesResponse {
        identifiers: names
            .items
            .into_iter()
            .map(|name| TableIdentifier {
                namespace: namespace.levels().to_vec(),
                name,
            })
            .collect(),
        next_page_token: paging.as_ref().map(|_| names.next.map(|n| page_token(&n))),
    }
}

/// The tables of a namespace.
#[utoipa::path(get, path = "/v1/{prefix}/namespaces/{namespace}/tables", tag = "tables",
    operation_id = "listTables",
    params(("prefix" = String, Path), ("namespace" = String, Path), ListQuery),
    responses((status = 200, body = ListTablesResponse), (status = 404, body = IcebergErrorResponse)))]
async fn list_tables(
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
        .list_tables(
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
pub struct CreateTableRequest {
    pub name: String,
    #[serde(default)]
    pub location: Option<String>,
    #[schema(value_type = Object)]
    pub schema: Schema,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub partition_spec: Option<UnboundPartitionSpec>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub write_order: Option<SortOrder>,
    #[serde(default)]
    pub stage_create: bool,
    #[serde(default)]
    pub properties: HashMap<String, String>,
}

/// The `LoadTableResult` body: built around the stored metadata JSON, which is passed through
/// without being parsed again.
///
/// With `gzip` (the compressed start of this body, see [`gzipped`]) the body is sent
/// `Content-Encoding: gzip`, with an ETag of its own.
fn load_table_response(
    table: &TableState,
    access: &TableAccess,
    mode: SnapshotsMode,
    headers: &HeaderMap,
    with_etag: bool,
    gzip: Option<&Deflated>,
    planning_mode: Option<&'static str>,
) -> Response {
    // Vended keys change every few minutes; they are part of what the ETag stands for.
    let key = access
        .config
        .get("s3.access-key-id")
        .map_or("", String::as_str);
    let etag = table
        .metadata_location
        .as_ref()
        .map(|l| etag_of(&format!("{l}#{key}"), mode));
    // Either coding of this version is a copy the client may keep.
    if let (Some(etag), Some(wanted)) = (&etag, headers.get(header::IF_NONE_MATCH))
        && with_etag
        && wanted.to_str().is_ok_and(|w| {
            let gzipped = gzip_etag(etag);
            w.split(',')
                .map(str::trim)
                .any(|t| t == etag || t == gzipped || t == "*")
        })
    {
        let etag = if gzip.is_some() {
            gzip_etag(etag)
        } else {
            etag.clone()
        };
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, HeaderValue::from_str(&etag).expect("ascii")),
                (header::VARY, HeaderValue::from_static("accept-encoding")),
            ],
        )
            .into_response();
    }
    let render = |planning_mode: Option<&str>| {
        let mut suffix = b",\"config\":".to_vec();
        match planning_mode {
            None => serde_json::to_writer(&mut suffix, &access.config),
            Some(mode) => {
                let mut config = access.config.clone();
                config.insert("scan-planning-mode".into(), mode.into());
                serde_json::to_writer(&mut suffix, &config)
            }
        }
        .expect("maps serialize");
        if !access.credentials.is_empty() {
            suffix.extend_from_slice(b",\"storage-credentials\":");
            let credentials: Vec<StorageCredential> = access
                .credentials
                .iter()
                .map(|(prefix, config)| StorageCredential {
                    prefix: prefix.clone(),
                    config: config.clone().into_iter().collect(),
                })
                .collect();
            serde_json::to_writer(&mut suffix, &credentials).expect("credentials serialize");
        }
        suffix.push(b'}');
        Bytes::from(suffix)
    };
    // The rendering is kept with the access, for the tables (nearly all) without a mode.
    let suffix = match planning_mode {
        None => access.rendered.get_or_init(|| render(None)).clone(),
        Some(mode) => render(Some(mode)),
    };
    let (mut response, etag) = match gzip {
        Some(gzip) => (
            json_chunks(gzip.member(&suffix), Some("gzip")),
            etag.map(|e| gzip_etag(&e)),
        ),
        None => (
            envelope(&table.metadata_location, &table.metadata, suffix),
            etag,
        ),
    };
    let headers = response.headers_mut();
    if let Some(etag) = etag
        && with_etag
    {
        headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("ascii"));
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// The ETag of the gzip coding of the body whose ETag is `etag` (a strong validator names one
/// coding).
fn gzip_etag(etag: &str) -> String {
    format!("{}-gz\"", etag.trim_end_matches('"'))
}

/// The compressed start of a `LoadTableResult` body (envelope and metadata), when the request
/// accepts gzip and the metadata is large enough to gain from it: compressed once per metadata
/// file and snapshot mode, kept in `AppState::gzip`.
async fn gzipped(
    state: &AppState,
    table: &TableState,
    mode: SnapshotsMode,
    headers: &HeaderMap,
) -> Option<std::sync::Arc<Deflated>> {
    let location = table.metadata_location.as_ref()?;
    if table.metadata.len() < gzip::MIN_BYTES || !gzip::accepts_gzip(headers) {
        return None;
    }
    let key = format!("{location}#{}", mode_name(mode));
    let parts = [
        envelope_prefix(&table.metadata_location),
        table.metadata.clone(),
    ];
    Some(state.gzip.get(&key, parts).await)
}

/// A JSON body sent as `chunks` (none of them copied), with its length and, when given, its
/// content coding.
pub(super) fn json_chunks(chunks: [Bytes; 3], encoding: Option<&'static str>) -> Response {
    let length: usize = chunks.iter().map(Bytes::len).sum();
    let body = Body::from_stream(futures::stream::iter(
        chunks.map(Ok::<_, std::convert::Infallible>),
    ));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(encoding) = encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

fn mode_name(mode: SnapshotsMode) -> &'static str {
    match mode {
        SnapshotsMode::All => "all",
        SnapshotsMode::Refs => "refs",
    }
}

/// A strong validator per metadata file and snapshot mode (a name-based UUID of both).
fn etag_of(metadata_location: &str, mode: SnapshotsMode) -> String {
    let mode = mode_name(mode);
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("{metadata_location}#{mode}").as_bytes(),
    );
    format!("\"{}\"", id.simple())
}

/// Creates a table, or with `stage-create` only returns its would-be metadata (nothing is written).
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/tables", tag = "tables",
    operation_id = "createTable",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path), ("namespace" = String, Path)),
    request_body = CreateTableRequest,
    responses((status = 200, description = "LoadTableResult"),
              (status = 400, body = IcebergErrorResponse), (status = 404, body = IcebergErrorResponse),
              (status = 409, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn create_table(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    Path((prefix, namespace)): Path<(String, String)>,
    SchemaBody(request): SchemaBody<CreateTableRequest>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let namespace = namespace_of(&namespace)?;
    let ident = TabularIdent {
        namespace: namespace.clone(),
        name: request.name.clone(),
    };
    // A staged create records nothing, so a folder the client chose is not reserved by anything
    // yet: no key is vended for it (Floe's own default folders are fresh, named by a new id).
    let unreserved = request.stage_create && request.location.is_some();
    let table = state
        .services
        .create_table(
            &ctx,
            warehouse,
            namespace,
            CreateTable {
                name: request.name,
                location: request.location,
                schema: request.schema,
                partition_spec: request.partition_spec,
                write_order: request.write_order,
                properties: request.properties,
                stage_create: request.stage_create,
            },
        )
        .await?;
    let access = if unreserved {
        std::sync::Arc::default()
    } else {
        access_for(&state, &ctx, warehouse, &ident, &table, &headers).await?
    };
    Ok(load_table_response(
        &table,
        &access,
        SnapshotsMode::All,
        &headers,
        false,
        None,
        state.services.scan_planning_mode(warehouse, &table).await,
    ))
}

/// The config and credentials for a table in a response, as `X-Iceberg-Access-Delegation` asks.
async fn access_for(
    state: &AppState,
    ctx: &crate::service::RequestContext,
    warehouse: WarehouseId,
    ident: &TabularIdent,
    table: &TableState,
    headers: &HeaderMap,
) -> Result<std::sync::Arc<TableAccess>, Error> {
    state
        .services
        .table_access(
            ctx,
            warehouse,
            ident,
            &table.location,
            (table.uuid, table.new_uuid),
            delegation_of(headers),
        )
        .await
}

pub(super) fn delegation_of(headers: &HeaderMap) -> Delegation {
    Delegation::parse(
        headers
            .get("x-iceberg-access-delegation")
            .and_then(|v| v.to_str().ok()),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoadTableQuery {
    /// `all` (default) or `refs`.
    pub snapshots: Option<String>,
}

/// A table's metadata; `If-None-Match` with its ETag gives 304.
#[utoipa::path(get, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}", tag = "tables",
    operation_id = "loadTable",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path), LoadTableQuery),
    responses((status = 200, description = "LoadTableResult"), (status = 304),
              (status = 404, body = IcebergErrorResponse)))]
async fn load_table(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    Query(query): Query<LoadTableQuery>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    let mode = match query.snapshots.as_deref() {
        None | Some("all") => SnapshotsMode::All,
        Some("refs") => SnapshotsMode::Refs,
        Some(other) => {
            return Err(Error::bad_request(format!(
                "snapshots must be all or refs, not {other:?}"
            ))
            .into());
        }
    };
    let table = state
        .services
        .load_table(&ctx, warehouse, &ident, mode)
        .await?;
    let access = access_for(&state, &ctx, warehouse, &ident, &table, &headers).await?;
    let gzip = gzipped(&state, &table, mode, &headers).await;
    Ok(load_table_response(
        &table,
        &access,
        mode,
        &headers,
        true,
        gzip.as_deref(),
        state.services.scan_planning_mode(warehouse, &table).await,
    ))
}

/// 204 when the table exists.
#[utoipa::path(head, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}", tag = "tables",
    operation_id = "tableExists",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path)),
    responses((status = 204), (status = 404)))]
async fn table_exists(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    state.services.table_exists(&ctx, warehouse, &ident).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CommitTableRequest {
    #[serde(default)]
    pub identifier: Option<TableIdentifier>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub requirements: Vec<TableRequirement>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub updates: Vec<TableUpdate>,
}

impl CarriesSchemas for CreateTableRequest {
    fn lower(body: &mut serde_json::Value) -> Result<(), String> {
        v3_types::lower_create(body)
    }
}

impl CarriesSchemas for CommitTableRequest {
    fn lower(body: &mut serde_json::Value) -> Result<(), String> {
        match body.get_mut("updates") {
            Some(updates) => v3_types::lower_updates(updates),
            None => Ok(()),
        }
    }
}

impl CarriesSchemas for CommitTransactionRequest {
    fn lower(body: &mut serde_json::Value) -> Result<(), String> {
        let Some(serde_json::Value::Array(changes)) = body.get_mut("table-changes") else {
            return Ok(());
        };
        for change in changes {
            CommitTableRequest::lower(change)?;
        }
        Ok(())
    }
}

fn commit_response(table: &TableState) -> Response {
    let mut response = envelope(&table.metadata_location, &table.metadata, b"}".to_vec());
    if let Some(location) = &table.metadata_location {
        response.headers_mut().insert(
            header::ETAG,
            HeaderValue::from_str(&etag_of(location, SnapshotsMode::All)).expect("ascii"),
        );
    }
    response
}

/// Commits updates to one table after checking its requirements (409 when one fails).
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}", tag = "tables",
    operation_id = "updateTable",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path)),
    request_body = CommitTableRequest,
    responses((status = 200, description = "CommitTableResponse"),
              (status = 400, body = IcebergErrorResponse), (status = 404, body = IcebergErrorResponse),
              (status = 409, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn update_table(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    SchemaBody(request): SchemaBody<CommitTableRequest>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    if let Some(identifier) = request.identifier
        && identifier.clone().into_ident()? != ident
    {
        return Err(Error::bad_request("the body's identifier differs from the path").into());
    }
    let table = state
        .services
        .commit_table(
            &ctx,
            warehouse,
            TableChange {
                ident,
                requirements: request.requirements,
                updates: request.updates,
            },
        )
        .await?;
    Ok(commit_response(&table))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DropTableQuery {
    /// Also delete the table's files (by a purge task; under a soft delete profile, when the
    /// soft delete expires). `true` or `false`, any case.
    #[serde(default)]
    pub purge_requested: Option<String>,
    /// Drop it even when it is protected. `true` or `false`.
    #[serde(default)]
    pub force: Option<String>,
}

/// Drops a table; with `purgeRequested=true` its files are deleted too. Under the warehouse's
/// soft delete profile it is kept, and can be undropped, until the profile's expiry.
#[utoipa::path(delete, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}", tag = "tables",
    operation_id = "dropTable",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path), DropTableQuery),
    responses((status = 204), (status = 404, body = IcebergErrorResponse),
        (status = 409, description = "the table is protected and force was not given", body = IcebergErrorResponse), (status = 400, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn drop_table(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    Query(query): Query<DropTableQuery>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    let request = crate::service::DropRequest {
        purge: super::extract::flag("purgeRequested", query.purge_requested.as_deref())?,
        force: super::extract::flag("force", query.force.as_deref())?,
    };
    state
        .services
        .drop_table(&ctx, warehouse, &ident, request)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RenameTableRequest {
    pub source: TableIdentifier,
    pub destination: TableIdentifier,
}

/// Renames a table, within or across namespaces.
#[utoipa::path(post, path = "/v1/{prefix}/tables/rename", tag = "tables", operation_id = "renameTable",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path)), request_body = RenameTableRequest,
    responses((status = 204), (status = 404, body = IcebergErrorResponse), (status = 409, body = IcebergErrorResponse), (status = 400, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn rename_table(
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
        .rename_table(&ctx, warehouse, &from, &to)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RegisterTableRequest {
    pub name: String,
    pub metadata_location: String,
    #[serde(default)]
    pub overwrite: bool,
}

/// Registers an existing metadata file (inside the warehouse) as a table.
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/register", tag = "tables",
    operation_id = "registerTable",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path), ("namespace" = String, Path)), request_body = RegisterTableRequest,
    responses((status = 200, description = "LoadTableResult"), (status = 400, body = IcebergErrorResponse),
              (status = 403, body = IcebergErrorResponse), (status = 409, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn register_table(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    Path((prefix, namespace)): Path<(String, String)>,
    JsonBody(request): JsonBody<RegisterTableRequest>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, request.name)?;
    let table = state
        .services
        .register_table(
            &ctx,
            warehouse,
            ident.clone(),
            &request.metadata_location,
            request.overwrite,
        )
        .await?;
    let access = access_for(&state, &ctx, warehouse, &ident, &table, &headers).await?;
    Ok(load_table_response(
        &table,
        &access,
        SnapshotsMode::All,
        &headers,
        false,
        None,
        state.services.scan_planning_mode(warehouse, &table).await,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct TableChangeRequest {
    pub identifier: TableIdentifier,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub requirements: Vec<TableRequirement>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub updates: Vec<TableUpdate>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CommitTransactionRequest {
    pub table_changes: Vec<TableChangeRequest>,
}

/// Commits changes to several tables atomically: all or none.
#[utoipa::path(post, path = "/v1/{prefix}/transactions/commit", tag = "tables",
    operation_id = "commitTransaction",
    params(("Idempotency-Key" = Option<String>, Header, description = "a UUID (36 characters) that makes retries of this request safe: a retry with it gets the first answer and applies nothing again (see idempotency-key-lifetime in /v1/config)"), ("prefix" = String, Path)), request_body = CommitTransactionRequest,
    responses((status = 204), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse), (status = 409, body = IcebergErrorResponse), (status = 422, description = "the Idempotency-Key was used for another request", body = IcebergErrorResponse)))]
async fn commit_transaction(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(prefix): Path<String>,
    SchemaBody(request): SchemaBody<CommitTransactionRequest>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let changes = request
        .table_changes
        .into_iter()
        .map(|c| {
            Ok(TableChange {
                ident: c.identifier.into_ident()?,
                requirements: c.requirements,
                updates: c.updates,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    state
        .services
        .commit_transaction(&ctx, warehouse, changes)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts a scan or commit report.
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics", tag = "tables",
    operation_id = "reportMetrics",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path)),
    request_body = Object,
    responses((status = 204), (status = 404, body = IcebergErrorResponse)))]
async fn report_metrics(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    JsonBody(report): JsonBody<serde_json::Value>,
) -> ApiResult<StatusCode> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    state
        .services
        .report_metrics(&ctx, warehouse, &ident, report)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StorageCredential {
    pub prefix: String,
    pub config: HashMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct LoadCredentialsResponse {
    pub storage_credentials: Vec<StorageCredential>,
}

/// Storage credentials for the table's location: a key scoped to it for warehouses the built-in S3
/// gateway serves (none are needed for plain local warehouses).
#[utoipa::path(get, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials", tag = "tables",
    operation_id = "loadCredentials",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path)),
    responses((status = 200, body = LoadCredentialsResponse), (status = 404, body = IcebergErrorResponse)))]
async fn load_credentials(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<LoadCredentialsResponse>> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    let access = state
        .services
        .load_credentials(&ctx, warehouse, &ident, delegation_of(&headers))
        .await?;
    Ok(axum::Json(LoadCredentialsResponse {
        storage_credentials: access
            .credentials
            .iter()
            .map(|(prefix, config)| StorageCredential {
                prefix: prefix.clone(),
                config: config.clone().into_iter().collect(),
            })
            .collect(),
    }))
}

/// A request a client asks Floe to sign (`RemoteSignRequest`, and the legacy `S3SignRequest`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RemoteSignRequest {
    pub region: String,
    pub uri: String,
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    pub body: Option<String>,
    /// `s3` (the default); no other provider is signed.
    pub provider: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemoteSignResult {
    pub uri: String,
    /// Headers to add to the request.
    pub headers: BTreeMap<String, Vec<String>>,
}

/// Signs an S3 request for one table (remote signing). Floe signs only requests inside the
/// table's folder, and writes only for callers that may commit to the table; anything else is 403.
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}/sign", tag = "tables",
    operation_id = "signRequest",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path)),
    request_body = RemoteSignRequest,
    responses((status = 200, body = RemoteSignResult), (status = 403, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn sign_request(
    state: State<AppState>,
    ctx: Ctx,
    path: Path<(String, String, String)>,
    body: JsonBody<RemoteSignRequest>,
) -> ApiResult<Response> {
    sign(state, ctx, path, body).await
}

/// The legacy S3 signer request shape (`POST .../v1/aws/s3/sign`, the deprecated s3-signer API),
/// served under the table it signs for.
#[utoipa::path(post, path = "/v1/{prefix}/namespaces/{namespace}/tables/{table}/v1/aws/s3/sign",
    tag = "tables", operation_id = "signS3Request",
    params(("prefix" = String, Path), ("namespace" = String, Path), ("table" = String, Path)),
    request_body = RemoteSignRequest,
    responses((status = 200, body = RemoteSignResult), (status = 403, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn sign_s3_request(
    state: State<AppState>,
    ctx: Ctx,
    path: Path<(String, String, String)>,
    body: JsonBody<RemoteSignRequest>,
) -> ApiResult<Response> {
    sign(state, ctx, path, body).await
}

async fn sign(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    JsonBody(request): JsonBody<RemoteSignRequest>,
) -> ApiResult<Response> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let ident = ident_of(&namespace, table)?;
    if request.provider.as_deref().is_some_and(|p| p != "s3") {
        return Err(Error::bad_request(format!(
            "Floe signs requests for the s3 provider only, not {:?}",
            request.provider.unwrap_or_default()
        ))
        .into());
    }
    let uri = request.uri.clone();
    let headers = state
        .services
        .sign_request(
            &ctx,
            warehouse,
            &ident,
            crate::model::SignRequest {
                method: request.method,
                uri: request.uri,
                headers: request.headers,
                body: request.body,
            },
        )
        .await?;
    let mut response = axum::Json(RemoteSignResult { uri, headers }).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    Ok(response)
}

/// `{"metadata-location": ..., "metadata": <stored JSON>` + `suffix`, sent as three chunks so
/// that the (possibly large) metadata is never copied or parsed again.
pub(super) fn envelope(
    metadata_location: &Option<String>,
    metadata: &Bytes,
    suffix: impl Into<Bytes>,
) -> Response {
    let chunks = [
        envelope_prefix(metadata_location),
        metadata.clone(),
        suffix.into(),
    ];
    json_chunks(chunks, None)
}

/// `{"metadata-location": ..., "metadata":`, what comes before the metadata in a body.
fn envelope_prefix(metadata_location: &Option<String>) -> Bytes {
    let mut prefix = b"{\"metadata-location\":".to_vec();
    serde_json::to_writer(&mut prefix, metadata_location).expect("strings serialize");
    prefix.extend_from_slice(b",\"metadata\":");
    Bytes::from(prefix)
}
