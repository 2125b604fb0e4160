//! `/management/v1/roles` and `/management/v1/grants`: roles (users and other roles' assignees,
//! nested) and grants of the authorization model's relations on objects (`docs/authz.md`).
//! Stored and validated against the model; enforcement comes with the built-in authorizer.

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
use crate::model::{PageRequest, Role};
use crate::service::{Grant, Grantee};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
        .routes(routes!(list_role_assignees, update_role_assignees))
        .routes(routes!(get_grants, update_grants))
        .routes(routes!(get_permissions))
        .routes(routes!(check_permissions))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct RoleResponse {
    pub id: Uuid,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Role> for RoleResponse {
    fn from(r: Role) -> Self {
        RoleResponse {
            id: r.id,
            name: r.name,
            description: r.description,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RoleRequest {
    /// 1 to 128 letters, digits, `-`, `_` or `.`; unique.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListRolesQuery {
    /// Only roles whose name contains this (case-insensitive).
    pub name: Option<String>,
    pub page_token: Option<String>,
    pub page_size: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ListRolesResponse {
    pub roles: Vec<RoleResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Roles by name, paged.
#[utoipa::path(get, path = "/roles", tag = "roles", params(ListRolesQuery),
    responses((status = 200, body = ListRolesResponse), (status = 400, body = IcebergErrorResponse)))]
async fn list_roles(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Query(query): Query<ListRolesQuery>,
) -> ApiResult<Json<ListRolesResponse>> {
    let page = page_request(query.page_token.as_deref(), query.page_size)?
        .unwrap_or_else(PageRequest::all);
    let name = query.name.as_deref().filter(|n| !n.is_empty());
    let found = state.services.list_roles(&ctx, name, &page).await?;
    Ok(Json(ListRolesResponse {
        roles: found.items.into_iter().map(RoleResponse::from).collect(),
        next_page_token: found.next.as_deref().map(page_token),
    }))
}

/// Creates a role.
#[utoipa::path(post, path = "/roles", tag = "roles", request_body = RoleRequest,
    responses((status = 201, body = RoleResponse), (status = 400, body = IcebergErrorResponse),
              (status = 409, body = IcebergErrorResponse)))]
async fn create_role(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody<RoleRequest>,
) -> ApiResult<(StatusCode, Json<RoleResponse>)> {
    let role = state
        .services
        .create_role(&ctx, &body.name, body.description)
        .await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

/// One role.
#[utoipa::path(get, path = "/roles/{id}", tag = "roles", params(("id" = Uuid, Path)),
    responses((status = 200, body = RoleResponse), (status = 404, body = IcebergErrorResponse)))]
async fn get_role(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<RoleResponse>> {
    Ok(Json(state.services.get_role(&ctx, id).await?.into()))
}

/// Renames a role and sets its description.
#[utoipa::path(put, path = "/roles/{id}", tag = "roles", params(("id" = Uuid, Path)),
    request_body = RoleRequest,
    responses((status = 200, body = RoleResponse), (status = 404, body = IcebergErrorResponse),
              (status = 409, body = IcebergErrorResponse)))]
async fn update_role(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<RoleRequest>,
) -> ApiResult<Json<RoleResponse>> {
    let role = state
        .services
        .update_role(&ctx, id, &body.name, body.description)
        .await?;
    Ok(Json(role.into()))
}

/// Deletes a role, its assignments and every grant to it.
#[utoipa::path(delete, path = "/roles/{id}", tag = "roles", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = IcebergErrorResponse)))]
async fn delete_role(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.services.delete_role(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct AssigneesResponse {
    /// `user:<provider>~<subject>` or `role:<role id>` (that role's assignees).
    pub assignees: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UpdateAssigneesRequest {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

fn grantees(names: &[String]) -> Result<Vec<Grantee>, crate::error::Error> {
    names.iter().map(|n| Grantee::parse(n)).collect()
}

/// The users and roles assigned to a role.
#[utoipa::path(get, path = "/roles/{id}/assignees", tag = "roles", params(("id" = Uuid, Path)),
    responses((status = 200, body = AssigneesResponse), (status = 404, body = IcebergErrorResponse)))]
async fn list_role_assignees(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<AssigneesResponse>> {
    let assignees = state.services.role_assignees(&ctx, id).await?;
    Ok(Json(AssigneesResponse {
        assignees: assignees.iter().map(ToString::to_string).collect(),
    }))
}

/// Assigns and unassigns users and roles (a role's assignees become this role's too), at once.
#[utoipa::path(post, path = "/roles/{id}/assignees", tag = "roles", params(("id" = Uuid, Path)),
    request_body = UpdateAssigneesRequest,
    responses((status = 200, body = AssigneesResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn update_role_assignees(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<UpdateAssigneesRequest>,
) -> ApiResult<Json<AssigneesResponse>> {
    let assignees = state
        .services
        .update_role_assignees(&ctx, id, &grantees(&body.add)?, &grantees(&body.remove)?)
        .await?;
    Ok(Json(AssigneesResponse {
        assignees: assignees.iter().map(ToString::to_string).collect(),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GrantEntry {
    /// `user:<provider>~<subject>` or `role:<role id>`.
    pub subject: String,
    /// A relation of the model that may be granted on the object's type (`docs/authz.md`).
    pub relation: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct GrantsResponse {
    pub grants: Vec<GrantEntry>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UpdateGrantsRequest {
    #[serde(default)]
    pub grant: Vec<GrantEntry>,
    #[serde(default)]
    pub revoke: Vec<GrantEntry>,
}

fn grants_of(entries: &[GrantEntry]) -> Result<Vec<Grant>, crate::error::Error> {
    entries
        .iter()
        .map(|e| {
            Ok(Grant {
                grantee: Grantee::parse(&e.subject)?,
                relation: e.relation.clone(),
            })
        })
        .collect()
}

fn grants_response(grants: Vec<Grant>) -> GrantsResponse {
    GrantsResponse {
        grants: grants
            .into_iter()
            .map(|g| GrantEntry {
                subject: g.grantee.to_string(),
                relation: g.relation,
            })
            .collect(),
    }
}

/// The grants on an object (`server`, `project`, `warehouse`, `namespace`, `table` or `view`,
/// by id).
#[utoipa::path(get, path = "/grants/{object_type}/{object_id}", tag = "roles",
    params(("object_type" = String, Path), ("object_id" = String, Path)),
    responses((status = 200, body = GrantsResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn get_grants(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((kind, id)): Path<(String, String)>,
) -> ApiResult<Json<GrantsResponse>> {
    let grants = state.services.grants(&ctx, &kind, &id).await?;
    Ok(Json(grants_response(grants)))
}

/// Grants and revokes relations on an object, all at once or none.
#[utoipa::path(post, path = "/grants/{object_type}/{object_id}", tag = "roles",
    params(("object_type" = String, Path), ("object_id" = String, Path)),
    request_body = UpdateGrantsRequest,
    responses((status = 200, body = GrantsResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn update_grants(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((kind, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<UpdateGrantsRequest>,
) -> ApiResult<Json<GrantsResponse>> {
    let grants = state
        .services
        .update_grants(
            &ctx,
            &kind,
            &id,
            &grants_of(&body.grant)?,
            &grants_of(&body.revoke)?,
        )
        .await?;
    Ok(Json(grants_response(grants)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct PermissionsResponse {
    /// The relations of the object's type the caller holds (the `can_*` ones are the actions
    /// endpoints check, see `docs/authz.md`).
    pub relations: Vec<String>,
}

/// What the caller may do on an object (`server`, `project`, `warehouse`, `namespace`, `table`
/// or `view`, named as for grants).
#[utoipa::path(get, path = "/permissions/{object_type}/{object_id}", tag = "roles",
    params(("object_type" = String, Path), ("object_id" = String, Path)),
    responses((status = 200, body = PermissionsResponse), (status = 400, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn get_permissions(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((kind, id)): Path<(String, String)>,
) -> ApiResult<Json<PermissionsResponse>> {
    let relations = state.services.my_permissions(&ctx, &kind, &id).await?;
    Ok(Json(PermissionsResponse { relations }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PermissionCheck {
    pub object_type: String,
    pub object_id: String,
    pub relation: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CheckPermissionsRequest {
    /// At most 100.
    pub checks: Vec<PermissionCheck>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct CheckPermissionsResponse {
    /// One answer per check, in order; `false` also for objects that do not exist or that the
    /// caller may not see.
    pub allowed: Vec<bool>,
}

/// Checks several relations of the caller at once (a console hides what the caller may not do).
#[utoipa::path(post, path = "/permissions/check", tag = "roles", request_body = CheckPermissionsRequest,
    responses((status = 200, body = CheckPermissionsResponse), (status = 400, body = IcebergErrorResponse)))]
async fn check_permissions(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(request): JsonBody<CheckPermissionsRequest>,
) -> ApiResult<Json<CheckPermissionsResponse>> {
    let checks: Vec<(String, String, String)> = request
        .checks
        .into_iter()
        .map(|c| (c.object_type, c.object_id, c.relation))
        .collect();
    let allowed = state.services.check_permissions(&ctx, &checks).await?;
    Ok(Json(CheckPermissionsResponse { allowed }))
}
