//! `POST /catalog/v1/{prefix}/events`: the events feed. It follows the Iceberg REST proposal
//! for catalog events (apache/iceberg#12584), which is not part of the spec yet; the shapes are
//! those of its latest revision Floe knows, and may change with it.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::{ApiResult, IcebergErrorResponse, error_response};
use super::extract::{Ctx, JsonBody, Path, warehouse_of};
use crate::service::feed::EventsQuery;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(query_events))
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QueryEventsRequest {
    /// `next-page-token` of the previous page; from the oldest event kept when absent.
    pub continuation_token: Option<String>,
    /// Most events to return (1 to 1000, 100 when absent).
    pub page_size: Option<u32>,
    /// Only events at or after this time, milliseconds since the epoch.
    pub after_timestamp_ms: Option<i64>,
    /// Only these operation types (`create-table`, `update-table`, `drop-table`,
    /// `rename-table`, `create-view`, `update-view`, `drop-view`, `rename-view`,
    /// `create-namespace`, `update-namespace-properties`, `drop-namespace`, `custom`).
    pub operation_types: Option<Vec<String>>,
    /// Only events about these namespaces, tables or views (levels, then the name), or what
    /// lies under a namespace.
    pub catalog_objects_by_name: Option<Vec<Vec<String>>>,
    /// Only events about the tables or views with these UUIDs.
    pub catalog_objects_by_id: Option<Vec<uuid::Uuid>>,
    /// Only events about these kinds: `namespace`, `table`, `view`.
    pub object_types: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct QueryEventsResponse {
    /// Where to continue from; returned on every page (an empty page too), so a consumer
    /// keeps its place.
    pub next_page_token: String,
    /// The time of the last event the server looked at, milliseconds since the epoch.
    pub highest_processed_timestamp_ms: Option<i64>,
    /// Each: `event-id`, `request-id`, `request-event-count`, `timestamp-ms`, `actor`, and the
    /// `operation` (its `operation-type` and object); Floe adds `x-floe-ref` and
    /// `x-floe-commit-id`.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

/// The changes of the warehouse on the branch of the prefix (and of the warehouse itself),
/// oldest first, from a point a previous page returned. Served when events are on
/// (`events.backends` not empty); follows the Iceberg REST events proposal.
#[utoipa::path(post, path = "/v1/{prefix}/events", operation_id = "queryEvents", tag = "events",
    params(("prefix" = String, Path)),
    request_body = QueryEventsRequest,
    responses((status = 200, body = QueryEventsResponse),
              (status = 400, body = IcebergErrorResponse),
              (status = 403, body = IcebergErrorResponse),
              (status = 404, body = IcebergErrorResponse)))]
async fn query_events(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(prefix): Path<String>,
    JsonBody(request): JsonBody<QueryEventsRequest>,
) -> Response {
    if !state.services.events_enabled() {
        return error_response(
            StatusCode::NOT_FOUND,
            "NotFoundException".into(),
            "the events feed is off: no events backend is configured (events.backends)".into(),
        );
    }
    match query(state, ctx, prefix, request).await {
        Ok(page) => page.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn query(
    state: AppState,
    ctx: crate::service::RequestContext,
    prefix: String,
    request: QueryEventsRequest,
) -> ApiResult<Json<QueryEventsResponse>> {
    let (warehouse, ctx) = warehouse_of(&prefix, ctx)?;
    let page = state
        .services
        .query_events(
            &ctx,
            warehouse,
            &EventsQuery {
                continuation_token: request.continuation_token,
                page_size: request.page_size,
                after_timestamp_ms: request.after_timestamp_ms,
                operation_types: request.operation_types,
                objects_by_name: request.catalog_objects_by_name,
                objects_by_id: request.catalog_objects_by_id,
                object_types: request.object_types,
            },
        )
        .await?;
    Ok(Json(QueryEventsResponse {
        next_page_token: page.next_page_token,
        highest_processed_timestamp_ms: page.highest_processed_timestamp_ms,
        events: page.events,
    }))
}
