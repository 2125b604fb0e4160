//! `/management/v1/warehouses/{id}/...`: the branching index (branches, tags, commits, diff,
//! merge, reset). Handlers extract, call one use case, and convert the result.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiResult, ErrorModel, IcebergErrorResponse};
use super::extract::{Ctx, JsonBody, Path, Query};
use crate::error::Error;
use crate::model::{
    Commit, CommitId, ContentKind, MergeStrategy as Strategy, Ref, RefKind, RefSelector,
    WarehouseId,
};
use crate::service::{ContentChange, MergeConflict};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_branches, create_branch))
        .routes(routes!(get_branch, delete_branch))
        .routes(routes!(reset_branch))
        .routes(routes!(get_protected_branches, set_protected_branches))
        .routes(routes!(list_tags, create_tag))
        .routes(routes!(get_tag, delete_tag))
        .routes(routes!(list_commits))
        .routes(routes!(get_commit))
        .routes(routes!(diff))
        .routes(routes!(merge))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RefResponse {
    pub name: String,
    /// `branch` or `tag`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The branch's current commit, or the commit the tag names.
    pub commit_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// The catalog `warehouse` setting that selects this ref (`<warehouse>@<ref>` works too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_prefix: Option<String>,
}

impl RefResponse {
    fn of(r: Ref) -> Self {
        RefResponse {
            catalog_prefix: Some(format!("{}@{}", r.warehouse_id, r.name)),
            name: r.name,
            kind: r.kind.as_str().to_string(),
            commit_id: r.head_commit.map(|c| c.0),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ListRefsResponse {
    pub refs: Vec<RefResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CreateRefRequest {
    /// Letters, digits, `_`, `-` and `.`; at most 128 bytes.
    pub name: String,
    /// A branch, tag or commit id; `main` when absent.
    #[serde(default)]
    pub from: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ResetRequest {
    /// A commit id, branch or tag to point the branch at.
    pub to: String,
}

async fn refs_of(
    state: &AppState,
    ctx: &crate::service::RequestContext,
    warehouse: Uuid,
    kind: RefKind,
) -> ApiResult<Json<ListRefsResponse>> {
    let refs = state
        .services
        .list_refs(ctx, WarehouseId(warehouse))
        .await?
        .into_iter()
        .filter(|r| r.kind == kind)
        .map(RefResponse::of)
        .collect();
    Ok(Json(ListRefsResponse { refs }))
}

/// The warehouse's branches, by name (`main` among them).
#[utoipa::path(get, path = "/warehouses/{id}/branches", tag = "branches",
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = ListRefsResponse), (status = 404, body = IcebergErrorResponse)))]
async fn list_branches(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ListRefsResponse>> {
    refs_of(&state, &ctx, id, RefKind::Branch).await
}

/// Creates a branch from a branch, tag or commit (default `main`). It costs the same for a
/// warehouse of one table or 100,000: nothing is copied.
#[utoipa::path(post, path = "/warehouses/{id}/branches", tag = "branches", request_body = CreateRefRequest,
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 201, body = RefResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse), (status = 409, body = IcebergErrorResponse)))]
async fn create_branch(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<CreateRefRequest>,
) -> ApiResult<(StatusCode, Json<RefResponse>)> {
    let made = state
        .services
        .create_ref(
            &ctx,
            WarehouseId(id),
            &request.name,
            RefKind::Branch,
            &RefSelector::parse(request.from.as_deref()),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(RefResponse::of(made))))
}

/// One branch.
#[utoipa::path(get, path = "/warehouses/{id}/branches/{name}", tag = "branches",
    params(("id" = Uuid, Path, description = "warehouse id"), ("name" = String, Path)),
    responses((status = 200, body = RefResponse), (status = 404, body = IcebergErrorResponse)))]
async fn get_branch(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, name)): Path<(Uuid, String)>,
) -> ApiResult<Json<RefResponse>> {
    let found = state.services.get_ref(&ctx, WarehouseId(id), &name).await?;
    if found.kind != RefKind::Branch {
        return Err(
            Error::not_found(crate::error::Entity::Ref, format!("{name:?} is a tag")).into(),
        );
    }
    Ok(Json(RefResponse::of(found)))
}

/// Deletes a branch (not `main`). Its commits stay readable by id.
#[utoipa::path(delete, path = "/warehouses/{id}/branches/{name}", tag = "branches",
    params(("id" = Uuid, Path, description = "warehouse id"), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = IcebergErrorResponse), (status = 409, body = IcebergErrorResponse)))]
async fn delete_branch(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, name)): Path<(Uuid, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_ref(&ctx, WarehouseId(id), &name, RefKind::Branch)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Points a branch (not `main`) at an earlier commit, or at any branch, tag or commit.
#[utoipa::path(post, path = "/warehouses/{id}/branches/{name}/reset", tag = "branches", request_body = ResetRequest,
    params(("id" = Uuid, Path, description = "warehouse id"), ("name" = String, Path)),
    responses((status = 200, body = RefResponse), (status = 404, body = IcebergErrorResponse),
              (status = 409, body = IcebergErrorResponse)))]
async fn reset_branch(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, name)): Path<(Uuid, String)>,
    JsonBody(request): JsonBody<ResetRequest>,
) -> ApiResult<Json<RefResponse>> {
    let reset = state
        .services
        .reset_branch(
            &ctx,
            WarehouseId(id),
            &name,
            &RefSelector::parse(Some(&request.to)),
        )
        .await?;
    Ok(Json(RefResponse::of(reset)))
}

/// The warehouse's tags, by name.
#[utoipa::path(get, path = "/warehouses/{id}/tags", tag = "branches",
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = ListRefsResponse), (status = 404, body = IcebergErrorResponse)))]
async fn list_tags(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ListRefsResponse>> {
    refs_of(&state, &ctx, id, RefKind::Tag).await
}

/// Creates a tag: a read-only name for a commit (of a branch, tag or commit id; default `main`).
#[utoipa::path(post, path = "/warehouses/{id}/tags", tag = "branches", request_body = CreateRefRequest,
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 201, body = RefResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse), (status = 409, body = IcebergErrorResponse)))]
async fn create_tag(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<CreateRefRequest>,
) -> ApiResult<(StatusCode, Json<RefResponse>)> {
    let made = state
        .services
        .create_ref(
            &ctx,
            WarehouseId(id),
            &request.name,
            RefKind::Tag,
            &RefSelector::parse(request.from.as_deref()),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(RefResponse::of(made))))
}

/// One tag.
#[utoipa::path(get, path = "/warehouses/{id}/tags/{name}", tag = "branches",
    params(("id" = Uuid, Path, description = "warehouse id"), ("name" = String, Path)),
    responses((status = 200, body = RefResponse), (status = 404, body = IcebergErrorResponse)))]
async fn get_tag(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, name)): Path<(Uuid, String)>,
) -> ApiResult<Json<RefResponse>> {
    let found = state.services.get_ref(&ctx, WarehouseId(id), &name).await?;
    if found.kind != RefKind::Tag {
        return Err(
            Error::not_found(crate::error::Entity::Ref, format!("{name:?} is a branch")).into(),
        );
    }
    Ok(Json(RefResponse::of(found)))
}

/// Deletes a tag.
#[utoipa::path(delete, path = "/warehouses/{id}/tags/{name}", tag = "branches",
    params(("id" = Uuid, Path, description = "warehouse id"), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = IcebergErrorResponse)))]
async fn delete_tag(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, name)): Path<(Uuid, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_ref(&ctx, WarehouseId(id), &name, RefKind::Tag)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "kebab-case")]
#[into_params(parameter_in = Query)]
pub struct ListCommitsQuery {
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
pub struct CommitChangeResponse {
    /// `namespace`, `table` or `view`.
    pub kind: String,
    pub namespace: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `create`, `update` or `drop` (a rename is a drop and a create).
    pub op: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_location: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CommitResponse {
    pub id: Uuid,
    /// One parent; two for a merge; none for the warehouse's first commit.
    pub parents: Vec<Uuid>,
    pub message: String,
    pub author: String,
    pub time: DateTime<Utc>,
    pub changes: Vec<CommitChangeResponse>,
}

impl CommitResponse {
    fn of(c: Commit) -> Self {
        CommitResponse {
            id: c.id.0,
            parents: c.parents.into_iter().map(|p| p.0).collect(),
            message: c.message,
            author: c.author,
            time: c.created_at,
            changes: c
                .changes
                .into_iter()
                .map(|ch| CommitChangeResponse {
                    kind: ch.kind,
                    namespace: ch.namespace,
                    name: ch.name,
                    op: ch.op,
                    metadata_location: ch.metadata_location,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ListCommitsResponse {
    pub commits: Vec<CommitResponse>,
    /// Present while more commits follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A ref's history, newest first, following first parents (a merge shows as one commit).
#[utoipa::path(get, path = "/warehouses/{id}/commits", tag = "branches",
    params(("id" = Uuid, Path, description = "warehouse id"), ListCommitsQuery),
    responses((status = 200, body = ListCommitsResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn list_commits(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    Query(query): Query<ListCommitsQuery>,
) -> ApiResult<Json<ListCommitsResponse>> {
    let page = state
        .services
        .list_commits(
            &ctx,
            WarehouseId(id),
            &RefSelector::parse(query.reference.as_deref()),
            query.page_token.as_deref(),
            query.page_size,
        )
        .await?;
    Ok(Json(ListCommitsResponse {
        commits: page.commits.into_iter().map(CommitResponse::of).collect(),
        next_page_token: page.next_page_token,
    }))
}

/// One commit.
#[utoipa::path(get, path = "/warehouses/{id}/commits/{commit}", tag = "branches",
    params(("id" = Uuid, Path, description = "warehouse id"), ("commit" = Uuid, Path)),
    responses((status = 200, body = CommitResponse), (status = 404, body = IcebergErrorResponse)))]
async fn get_commit(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, commit)): Path<(Uuid, Uuid)>,
) -> ApiResult<Json<CommitResponse>> {
    let found = state
        .services
        .get_commit(&ctx, WarehouseId(id), CommitId(commit))
        .await?;
    Ok(Json(CommitResponse::of(found)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "kebab-case")]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// A branch, tag or commit id.
    pub from: String,
    /// A branch, tag or commit id.
    pub to: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ContentChangeResponse {
    /// `namespace`, `table` or `view`.
    pub kind: String,
    pub namespace: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Diffs: `added`, `removed`, `changed`. Merges: `taken` (the source's version), `merged`
    /// (both sides' changes composed), `removed`.
    pub change: String,
    /// The metadata location on the `from` side (merges: the source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_metadata_location: Option<String>,
    /// The metadata location on the `to` side (merges: the target before the merge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_metadata_location: Option<String>,
}

fn kind_name(kind: ContentKind) -> String {
    match kind {
        ContentKind::Namespace => "namespace",
        ContentKind::Table => "table",
        ContentKind::View => "view",
    }
    .to_string()
}

impl ContentChangeResponse {
    fn of(c: ContentChange) -> Self {
        ContentChangeResponse {
            kind: kind_name(c.kind),
            namespace: c.namespace,
            name: c.name,
            change: c.change.to_string(),
            from_metadata_location: c.from_location,
            to_metadata_location: c.to_location,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct DiffResponse {
    pub changes: Vec<ContentChangeResponse>,
}

/// What differs going from one branch, tag or commit to another.
#[utoipa::path(get, path = "/warehouses/{id}/diff", tag = "branches",
    params(("id" = Uuid, Path, description = "warehouse id"), DiffQuery),
    responses((status = 200, body = DiffResponse), (status = 404, body = IcebergErrorResponse)))]
async fn diff(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    Query(query): Query<DiffQuery>,
) -> ApiResult<Json<DiffResponse>> {
    let changes = state
        .services
        .diff(
            &ctx,
            WarehouseId(id),
            &RefSelector::parse(Some(&query.from)),
            &RefSelector::parse(Some(&query.to)),
        )
        .await?;
    Ok(Json(DiffResponse {
        changes: changes.into_iter().map(ContentChangeResponse::of).collect(),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MergeRequest {
    /// A branch, tag or commit id.
    pub source: String,
    /// A branch.
    pub target: String,
    #[serde(default)]
    pub message: Option<String>,
    /// What to do with keys both sides changed in ways that do not compose: `fail` (default:
    /// change nothing, report each), `source-wins` or `target-wins`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub strategy: Option<Strategy>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct MergeResponse {
    /// The merge commit (two parents); null when the target already had everything.
    pub commit_id: Option<Uuid>,
    /// The target had no changes of its own since the merge base.
    pub fast_forward: bool,
    /// What the merge changed on the target.
    pub tables: Vec<ContentChangeResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct MergeConflictResponse {
    pub kind: String,
    pub namespace: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub reason: String,
}

/// The 409 of a merge that does not go through: the error, and every conflicting key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct MergeConflictsResponse {
    pub error: ErrorModel,
    pub conflicts: Vec<MergeConflictResponse>,
}

/// Merges a branch, tag or commit into a branch: one atomic commit with two parents. Tables
/// changed on both sides merge when their changes compose (appends are replayed onto the
/// target; properties and schema changes touching different keys and fields); otherwise the
/// merge changes nothing and answers 409 naming every conflict.
#[utoipa::path(post, path = "/warehouses/{id}/merge", tag = "branches", request_body = MergeRequest,
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = MergeResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse), (status = 409, body = MergeConflictsResponse)))]
async fn merge(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<MergeRequest>,
) -> ApiResult<Response> {
    let outcome = state
        .services
        .merge(
            &ctx,
            WarehouseId(id),
            &RefSelector::parse(Some(&request.source)),
            &request.target,
            request.message,
            request.strategy.unwrap_or_default(),
        )
        .await?;
    Ok(match outcome {
        Ok(done) => Json(MergeResponse {
            commit_id: done.commit_id.map(|c| c.0),
            fast_forward: done.fast_forward,
            tables: done
                .changes
                .into_iter()
                .map(ContentChangeResponse::of)
                .collect(),
        })
        .into_response(),
        Err(conflicts) => conflicts_response(conflicts),
    })
}

fn conflicts_response(conflicts: Vec<MergeConflict>) -> Response {
    let listed: Vec<String> = conflicts
        .iter()
        .map(|c| {
            let mut path = c.namespace.join(".");
            if let Some(name) = &c.name {
                path = format!("{path}.{name}");
            }
            format!("{} {path}: {}", kind_name(c.kind), c.reason)
        })
        .collect();
    let (status, error) = super::error::merge_conflict(format!(
        "the merge conflicts and changed nothing: {}",
        listed.join("; ")
    ));
    let body = MergeConflictsResponse {
        error,
        conflicts: conflicts
            .into_iter()
            .map(|c| MergeConflictResponse {
                kind: kind_name(c.kind),
                namespace: c.namespace,
                name: c.name,
                reason: c.reason,
            })
            .collect(),
    };
    (status, Json(body)).into_response()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProtectedBranches {
    /// Branches that change only by merge: catalog writes to them are refused, they cannot be
    /// reset or deleted, and merging into them needs `merge_protected` on the warehouse.
    pub branches: Vec<String>,
}

/// The warehouse's protected branches.
#[utoipa::path(get, path = "/warehouses/{id}/protected-branches", tag = "branches",
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = ProtectedBranches), (status = 404, body = IcebergErrorResponse)))]
async fn get_protected_branches(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ProtectedBranches>> {
    let branches = state
        .services
        .protected_branches(&ctx, WarehouseId(id))
        .await?;
    Ok(Json(ProtectedBranches { branches }))
}

/// Names the warehouse's protected branches (the whole list; `[]` protects none).
#[utoipa::path(put, path = "/warehouses/{id}/protected-branches", tag = "branches",
    request_body = ProtectedBranches,
    params(("id" = Uuid, Path, description = "warehouse id")),
    responses((status = 200, body = ProtectedBranches), (status = 400, body = IcebergErrorResponse),
              (status = 403, body = IcebergErrorResponse), (status = 404, body = IcebergErrorResponse)))]
async fn set_protected_branches(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(request): JsonBody<ProtectedBranches>,
) -> ApiResult<Json<ProtectedBranches>> {
    let branches = state
        .services
        .set_protected_branches(&ctx, WarehouseId(id), request.branches)
        .await?;
    Ok(Json(ProtectedBranches { branches }))
}
