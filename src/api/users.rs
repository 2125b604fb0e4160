//! `/management/v1/whoami` and `/management/v1/users`: who the caller is; users recorded on first
//! sign-in or provisioned ahead of it. Floe issues no passwords or API keys of its own: people and
//! programs sign in through their identity provider.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, IcebergErrorResponse};
use super::extract::{Ctx, JsonBody, Path, Query, page_request, page_token};
use crate::model::{PageRequest, User, UserKind};
use crate::service::ProvisionUser;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(list_users, provision_user))
        .routes(routes!(get_user, delete_user))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct UserResponse {
    /// `<provider>~<subject>`.
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `human` or `machine`.
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        UserResponse {
            id: u.id,
            name: u.name,
            email: u.email,
            kind: u.kind.as_str().to_string(),
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_seen_at: u.last_seen_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct WhoamiResponse {
    /// False on a server with no identity providers (everyone is anonymous).
    pub authenticated: bool,
    /// The caller's id (`anonymous` on an open server).
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserResponse>,
    /// What the provider's `roles-claim` holds.
    pub roles: Vec<String>,
    /// The Floe roles those map to (`authz.role_mappings`): names of existing roles.
    pub mapped_roles: Vec<String>,
    pub server_admin: bool,
}

/// The caller, as the server knows them.
#[utoipa::path(get, path = "/whoami", tag = "users",
    responses((status = 200, body = WhoamiResponse), (status = 401, body = IcebergErrorResponse)))]
async fn whoami(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<WhoamiResponse>> {
    let me = state.services.whoami(&ctx).await?;
    Ok(Json(WhoamiResponse {
        authenticated: ctx.principal.identity().is_some(),
        id: ctx.principal.id().to_string(),
        provider: me.provider,
        user: me.user.map(UserResponse::from),
        roles: me.roles,
        mapped_roles: me.mapped_roles.into_iter().map(|r| r.name).collect(),
        server_admin: me.server_admin,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Only users whose name or id contains this (case-insensitive).
    pub name: Option<String>,
    /// From a previous page's `next-page-token`.
    pub page_token: Option<String>,
    /// 1 to 1000; 100 when a token is given without a size.
    pub page_size: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ListUsersResponse {
    pub users: Vec<UserResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Users by id, paged.
#[utoipa::path(get, path = "/users", tag = "users",
    params(ListUsersQuery),
    responses((status = 200, body = ListUsersResponse), (status = 400, body = IcebergErrorResponse)))]
async fn list_users(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Query(query): Query<ListUsersQuery>,
) -> ApiResult<Json<ListUsersResponse>> {
    let page = page_request(query.page_token.as_deref(), query.page_size)?
        .unwrap_or_else(PageRequest::all);
    let name = query.name.as_deref().filter(|n| !n.is_empty());
    let found = state.services.list_users(&ctx, name, &page).await?;
    Ok(Json(ListUsersResponse {
        users: found.items.into_iter().map(UserResponse::from).collect(),
        next_page_token: found.next.as_deref().map(page_token),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProvisionUserRequest {
    /// `<provider>~<subject>`: the id the user will have when they sign in.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `human` (default) or `machine`.
    #[serde(default)]
    pub kind: Option<String>,
}

/// Provisions a user before their first sign-in (so that grants can name them), or updates one.
/// 201 when created, 200 when it existed.
#[utoipa::path(post, path = "/users", tag = "users",
    request_body = ProvisionUserRequest,
    responses((status = 201, body = UserResponse), (status = 200, body = UserResponse),
              (status = 400, body = IcebergErrorResponse)))]
async fn provision_user(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    JsonBody(body): JsonBody<ProvisionUserRequest>,
) -> ApiResult<(StatusCode, Json<UserResponse>)> {
    let kind = match body.kind.as_deref() {
        None => UserKind::Human,
        Some(kind) => UserKind::parse(kind).ok_or_else(|| {
            crate::error::Error::bad_request("kind must be \"human\" or \"machine\"")
        })?,
    };
    let (user, created) = state
        .services
        .provision_user(
            &ctx,
            ProvisionUser {
                id: body.id,
                name: body.name,
                email: body.email,
                kind,
            },
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(user.into())))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, description = "user id, `<provider>~<subject>`")),
    responses((status = 200, body = UserResponse), (status = 404, body = IcebergErrorResponse)))]
async fn get_user(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
) -> ApiResult<Json<UserResponse>> {
    Ok(Json(state.services.get_user(&ctx, &id).await?.into()))
}

/// Deletes a user's record. Signing in through their provider records them again: to keep
/// someone out, remove them at the provider.
#[utoipa::path(delete, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, description = "user id, `<provider>~<subject>`")),
    responses((status = 204), (status = 404, body = IcebergErrorResponse)))]
async fn delete_user(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.delete_user(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
