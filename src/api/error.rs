//! The one mapping from Floe's [`ErrorKind`] to HTTP: a status and the Iceberg `ErrorModel`
//! (`{"error": {"message", "type", "code"}}`), used by the catalog and the management API alike.
//! A 5xx is logged here with its whole cause chain under a fresh error id; the caller gets only the id.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Entity, Error, ErrorKind};

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct IcebergErrorResponse {
    pub error: ErrorModel,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorModel {
    /// What went wrong, for a person.
    pub message: String,
    /// The exception type, e.g. `NoSuchNamespaceException`.
    #[serde(rename = "type")]
    pub r#type: String,
    /// The HTTP status code.
    pub code: u16,
}

/// An error on its way out of a handler.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

fn entity_name(entity: Entity) -> &'static str {
    match entity {
        Entity::Server => "Server",
        Entity::Project => "Project",
        Entity::Warehouse => "Warehouse",
        Entity::Ref => "Reference",
        Entity::Namespace => "Namespace",
        Entity::Table => "Table",
        Entity::View => "View",
        Entity::Secret => "Secret",
        Entity::AccessKey => "AccessKey",
        Entity::User => "User",
        Entity::Role => "Role",
        Entity::Task => "Task",
        Entity::DeletedTabular => "DeletedTabular",
        Entity::PlanId => "PlanId",
        Entity::PlanTask => "PlanTask",
    }
}

/// Status and Iceberg exception type of a kind.
pub fn status_and_type(kind: ErrorKind) -> (StatusCode, String) {
    use ErrorKind::*;
    match kind {
        BadRequest => (StatusCode::BAD_REQUEST, "BadRequestException".into()),
        Unprocessable => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "UnprocessableEntityException".into(),
        ),
        PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException".into(),
        ),
        NotFound(entity) => (
            StatusCode::NOT_FOUND,
            format!("NoSuch{}Exception", entity_name(entity)),
        ),
        AlreadyExists(_) => (StatusCode::CONFLICT, "AlreadyExistsException".into()),
        NotEmpty(entity) => (
            StatusCode::CONFLICT,
            format!("{}NotEmptyException", entity_name(entity)),
        ),
        Conflict => (StatusCode::CONFLICT, "ConflictException".into()),
        CommitConflict => (StatusCode::CONFLICT, "CommitFailedException".into()),
        NotBootstrapped => (StatusCode::CONFLICT, "NotBootstrappedException".into()),
        Unauthenticated => (StatusCode::UNAUTHORIZED, "NotAuthorizedException".into()),
        Forbidden => (StatusCode::FORBIDDEN, "ForbiddenException".into()),
        Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException".into(),
        ),
        BadGateway => (StatusCode::BAD_GATEWAY, "BadGatewayException".into()),
        InsufficientStorage => (
            StatusCode::INSUFFICIENT_STORAGE,
            "InsufficientStorageException".into(),
        ),
        Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError".into(),
        ),
    }
}

/// An error response with this status, type and message.
pub fn error_response(status: StatusCode, r#type: String, message: String) -> Response {
    let body = IcebergErrorResponse {
        error: ErrorModel {
            message,
            r#type,
            code: status.as_u16(),
        },
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let err = self.0;
        let (status, r#type) = status_and_type(err.kind);
        let message = if err.is_server_error() {
            let error_id = uuid::Uuid::now_v7();
            tracing::error!(%error_id, kind = ?err.kind, context = %err.message,
                cause = ?err.source, "request failed");
            match err.kind {
                // What was unavailable is named (a dependency's own words: no secret is ever
                // put in these messages); the cause stays in the log.
                ErrorKind::Unavailable => format!(
                    "service unavailable: {}; retry later (error id {error_id})",
                    err.message
                ),
                ErrorKind::InsufficientStorage => {
                    format!("insufficient storage: the server's disk is full; error id {error_id}")
                }
                _ => format!("internal error; error id {error_id}"),
            }
        } else {
            err.message
        };
        let mut response = error_response(status, r#type, message);
        if err.kind == ErrorKind::Unauthenticated {
            // RFC 6750, section 3: how to authenticate, and that the token (if any) did not do.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(
                    "Bearer realm=\"floe\", error=\"invalid_token\"",
                ),
            );
        }
        response
    }
}

/// The answer to a path no route serves.
pub(super) async fn no_route(request: axum::extract::Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NotFoundException".into(),
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

/// The answer to a method a route does not serve.
pub(super) async fn method_not_allowed(request: axum::extract::Request) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowedException".into(),
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// A merge that conflicts: 409 with a `MergeConflictException` error model; the handler sends
/// the conflicts beside it.
pub(super) fn merge_conflict(message: String) -> (StatusCode, ErrorModel) {
    let status = StatusCode::CONFLICT;
    (
        status,
        ErrorModel {
            message,
            r#type: "MergeConflictException".to_string(),
            code: status.as_u16(),
        },
    )
}

/// The status of a readiness answer: 200, or 503 while something Floe needs does not answer.
pub(super) fn readiness_status(ready: bool) -> StatusCode {
    if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
