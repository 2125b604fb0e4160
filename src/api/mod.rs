//! HTTP: the axum routers of the Iceberg REST catalog (`/catalog`), the management API
//! (`/management/v1`), operations (`/health`, `/ready`) and the API browser (`/docs`).
//!
//! Architecture invariant: this is the only module (with the S3 gateway) that knows HTTP. Handlers
//! extract, call one use case on [`Services`], and convert; wire DTOs live here; every error leaves
//! through `error::ApiError`.

pub mod branches;
pub mod catalog;
pub mod console;
pub mod error;
pub mod events;
pub mod extract;
pub mod grants;
pub(crate) mod gzip;
mod idempotency;
pub mod lifecycle;
pub mod management;
pub mod planning;
pub mod tables;
pub mod users;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::{SwaggerUi, Url};

use crate::authn::Authenticator;
use crate::model::{Operation, Surface};
use crate::service::{RequestContext, Services};
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub authn: Arc<dyn Authenticator>,
    /// The persistence backend's name, for `/management/v1/info` answers.
    pub backend: &'static str,
    /// Compressed starts of large `loadTable` bodies (`api::gzip`).
    pub(crate) gzip: Arc<gzip::GzipCache>,
    /// Pending events past which readiness details raise an alarm.
    pub events_backlog_alarm: u64,
}

/// Compressed bytes `AppState::gzip` keeps: a table with 5,000 snapshots (2 MB of metadata)
/// takes about 150 KB.
pub(crate) const GZIP_CACHE_BYTES: usize = 8 << 20;

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    /// A request body that goes this long without a byte fails.
    pub body_timeout: std::time::Duration,
    /// A request (health probes aside) that takes longer in all answers 503.
    pub request_timeout: std::time::Duration,
    /// Requests served at once (health probes aside); past it, 503 at once.
    pub max_requests_in_flight: usize,
    /// A request that waited longer than this before the server read it (`model::Queued`)
    /// answers 503 at once (health probes aside).
    pub max_queue: std::time::Duration,
    /// Serve `/metrics` on this listener (false: metrics are off, or have a listener of their
    /// own, see [`metrics_router`]).
    pub metrics: bool,
    /// The identity providers the web console signs in with.
    pub console: console::ConsoleSettings,
}

/// What requests are admitted: a slot each, for at most `timeout`.
struct Admission {
    slots: tokio::sync::Semaphore,
    timeout: std::time::Duration,
    services: Services,
}

/// 503 with `Retry-After`: the client should come back shortly.
fn overloaded(message: &str) -> Response {
    let mut response = error::error_response(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException".into(),
        message.to_string(),
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

/// Admits a request if a slot is free (else 503 at once: no queue grows), and bounds its time.
async fn admit(State(admission): State<Arc<Admission>>, request: Request, next: Next) -> Response {
    let Ok(_slot) = admission.slots.try_acquire() else {
        tracing::debug!("request refused: too many in flight");
        return overloaded("too many requests in flight; retry later");
    };
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    match tokio::time::timeout(admission.timeout, next.run(request)).await {
        Ok(response) => {
            if changes && response.status().is_success() {
                // Its events (if any) are in the outbox: relay them now.
                admission.services.wake_relay();
            }
            response
        }
        Err(_) => {
            tracing::warn!(timeout = ?admission.timeout, "request timed out");
            overloaded("the request took too long; retry later")
        }
    }
}

/// Refuses, cheaply and first of all, a request that waited in the kernel longer than the queue
/// limit (the server is behind: serving it late would only make every later one later too).
/// Health and readiness probes are served whatever their wait.
async fn shed_late(
    State(max_queue): State<std::time::Duration>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(waited) = crate::model::Queued::longer_than(request.extensions(), max_queue)
        && !matches!(request.uri().path(), "/health" | "/ready")
    {
        tracing::debug!(?waited, "request refused: waited too long to be read");
        return overloaded("the server is behind; retry later");
    }
    next.run(request).await
}

/// Fails a request body that stalls longer than the body timeout.
async fn slow_bodies(
    State(timeout): State<std::time::Duration>,
    request: Request,
    next: Next,
) -> Response {
    let request = request
        .map(|body| axum::body::Body::new(tower_http::timeout::TimeoutBody::new(timeout, body)));
    next.run(request).await
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Floe management API", description = "Bootstrap, projects, warehouses and the branching index of a Floe server."),
    tags((name = "server"), (name = "users"), (name = "roles"), (name = "projects"), (name = "warehouses"), (name = "branches"), (name = "lifecycle", description = "Delete profiles, soft-deleted tables and views, protection, and the task queue"))
)]
struct ManagementDoc;

#[derive(OpenApi)]
#[openapi(
    info(title = "Floe Iceberg REST catalog", description = "The Apache Iceberg REST catalog API as Floe serves it."),
    tags((name = "configuration"), (name = "namespaces"), (name = "tables"), (name = "views"), (name = "events", description = "The events feed (Iceberg REST proposal apache/iceberg#12584, not yet part of the spec)"))
)]
struct CatalogDoc;

fn management_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ManagementDoc::openapi()).nest(
        "/management/v1",
        management::router()
            .merge(users::router())
            .merge(grants::router())
            .merge(branches::router())
            .merge(lifecycle::router())
            .merge(planning::management_router()),
    )
}

fn catalog_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(CatalogDoc::openapi()).nest(
        "/catalog",
        catalog::router()
            .merge(tables::router())
            .merge(planning::router())
            .merge(views::router())
            .merge(events::router()),
    )
}

/// The OpenAPI description of the management API, as checked in at `openapi/management.yaml`.
pub fn management_openapi() -> OpenApiDoc {
    management_routes().split_for_parts().1
}

/// The OpenAPI description of the catalog API, as checked in at `openapi/catalog.yaml`.
pub fn catalog_openapi() -> OpenApiDoc {
    catalog_routes().split_for_parts().1
}

/// Every route of the two API surfaces and its operation (`model::Operation`): a route the
/// table does not name, or an operation of the table no route serves, is an error. The router
/// refuses to start on one, so that no route is served without a decided permission.
pub fn check_operations() -> Result<(), String> {
    let mut served = std::collections::HashSet::new();
    for doc in [management_openapi(), catalog_openapi()] {
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("HEAD", item.head.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
                ("OPTIONS", item.options.is_some()),
                ("TRACE", item.trace.is_some()),
            ];
            for (method, _) in methods.into_iter().filter(|(_, has)| *has) {
                let op = Operation::of_http(method, path).ok_or_else(|| {
                    format!("{method} {path} has no operation in model::Operation")
                })?;
                served.insert(op);
            }
        }
    }
    match Operation::ALL
        .iter()
        .find(|op| op.surface() != Surface::S3 && !served.contains(op))
    {
        Some(op) => Err(format!("operation {op} has no route")),
        None => Ok(()),
    }
}

/// The whole HTTP application.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    if let Err(e) = check_operations() {
        panic!("the API's routes and its operation table disagree: {e}");
    }
    let (management, management_doc) = management_routes().split_for_parts();
    let (catalog, catalog_doc) = catalog_routes().split_for_parts();
    // Runs after `authenticate` (a layer added later wraps those before): keys are the caller's.
    let catalog = catalog.layer(middleware::from_fn_with_state(
        idempotency::Keys {
            state: state.clone(),
            max_body_bytes: settings.max_body_bytes,
        },
        idempotency::idempotency,
    ));
    let request_id = HeaderName::from_static("x-request-id");

    let admission = Arc::new(Admission {
        slots: tokio::sync::Semaphore::new(settings.max_requests_in_flight),
        timeout: settings.request_timeout,
        services: state.services.clone(),
    });
    let mut api = management
        .merge(catalog)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(admission, admit))
        .route("/health", axum::routing::get(health))
        .route("/ready", axum::routing::get(ready));
    if settings.metrics {
        api = api.route("/metrics", axum::routing::get(metrics_behind_authn));
    }
    let api = api
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state);

    Router::new()
        .merge(api)
        .merge(console::router(&settings.console))
        .merge(SwaggerUi::new("/docs").urls(vec![
            (Url::new("management", "/docs/management.json"), management_doc),
            (Url::new("catalog", "/docs/catalog.json"), catalog_doc),
        ]))
        .layer(axum::extract::DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            settings.body_timeout,
            slow_bodies,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id, operation = tracing::field::Empty, actor = tracing::field::Empty)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(middleware::from_fn_with_state(settings.max_queue, shed_late))
        .layer(middleware::from_fn(count_requests))
}

/// Records each answered request in the metrics, by its route's template (what a 404 matched is
/// `unmatched`: a path a client made up never becomes a label).
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().clone();
    let started = std::time::Instant::now();
    crate::telemetry::http_in_flight(1.0);
    let response = next.run(request).await;
    crate::telemetry::http_in_flight(-1.0);
    crate::telemetry::http_request(
        &route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `/metrics` on the API's listener: with authentication on, it needs a valid token like every
/// other route but health and docs (a Prometheus scrape sends one, or the metrics get a listener
/// of their own, `metrics.listen`, which is meant to stay inside the cluster).
async fn metrics_behind_authn(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(e) = state.authn.authenticate(&headers).await {
        tracing::info!(reason = %e.message, "metrics scrape refused: not authenticated");
        return ApiError(e).into_response();
    }
    metrics_exposition(&state.services).await
}

async fn metrics_exposition(services: &Services) -> Response {
    services.record_gauges().await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
        .into_response()
}

/// The router of the metrics' own listener (`metrics.listen`): `/metrics` without
/// authentication, and `/health`.
pub fn metrics_router(services: Services) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(services): State<Services>| async move {
                metrics_exposition(&services).await
            }),
        )
        .route("/health", axum::routing::get(health))
        .with_state(services)
}

/// Authenticates the caller and stores the request's [`RequestContext`] for the handlers.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let principal = match state.authn.authenticate(request.headers()).await {
        Ok(principal) => principal,
        Err(e) => {
            tracing::info!(reason = %e.message, "request refused: not authenticated");
            return ApiError(e).into_response();
        }
    };
    tracing::Span::current().record("actor", principal.id());
    if let Some(identity) = principal.identity()
        && let Err(e) = state.services.record_user(identity).await
    {
        // The request goes on: recording is bookkeeping, and the next request retries it.
        tracing::warn!(error = ?e, "recording the user failed");
    }
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // The operation of the route (routing ran before this layer): every route has one.
    let operation = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| Operation::of_http(request.method().as_str(), path.as_str()));
    if let Some(op) = operation {
        tracing::Span::current().record("operation", op.name());
    }
    request.extensions_mut().insert(RequestContext {
        principal,
        request_id,
        reference: crate::model::RefSelector::Main,
        operation,
    });
    next.run(request).await
}

/// Liveness: the process answers.
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the database and the authorizer answer (503 when one does not). Identity
/// providers, event publishers and the secret store are reported but do not make Floe unready:
/// cached keys keep working, events wait in the outbox, and only what needs a secret fails.
async fn ready(State(state): State<AppState>) -> Response {
    let providers: serde_json::Map<String, serde_json::Value> = state
        .authn
        .providers()
        .into_iter()
        .map(|p| {
            // Why a fetch failed (addresses, network errors) goes to the log, not to this
            // unauthenticated answer.
            let status = match (&p.unreachable, p.has_keys) {
                (None, _) => serde_json::json!({ "status": "ok" }),
                (Some(_), has_keys) => serde_json::json!({
                    "status": "unreachable",
                    "cached-keys": has_keys,
                }),
            };
            (p.id, status)
        })
        .collect();
    let checked = tokio::time::timeout(Duration::from_secs(5), state.services.ready()).await;
    let (status, mut body) = match checked {
        Ok(Ok(())) => (
            axum::http::StatusCode::OK,
            serde_json::json!({ "status": "ready" }),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "not ready");
            (
                error::readiness_status(false),
                serde_json::json!({ "status": "unavailable", "reason": e.message }),
            )
        }
        Err(_) => (
            error::readiness_status(false),
            serde_json::json!({ "status": "unavailable", "reason": "readiness check timed out" }),
        ),
    };
    if !providers.is_empty() {
        body["identity-providers"] = serde_json::Value::Object(providers);
    }
    // The events' backlog and publishers: reported, never a reason to be unready (events wait
    // in the database while a publisher is down).
    if let Ok(Ok(events)) = tokio::time::timeout(
        Duration::from_secs(2),
        state.services.events_status(state.events_backlog_alarm),
    )
    .await
    {
        body["events"] = serde_json::to_value(events).unwrap_or_default();
    }
    // The secret store: reported, never a reason to be unready (only what needs a secret
    // fails while it is away). Why it failed goes to the log.
    let secrets = tokio::time::timeout(Duration::from_secs(2), state.services.secrets_status());
    body["secrets"] = match secrets.await {
        Ok((backend, Ok(()))) => serde_json::json!({ "backend": backend, "status": "ok" }),
        Ok((backend, Err(_))) => serde_json::json!({ "backend": backend, "status": "unavailable" }),
        Err(_) => serde_json::json!({ "status": "unavailable" }),
    };
    (status, Json(body)).into_response()
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    ApiError(crate::error::Error::internal(
        "handler panicked",
        anyhow::anyhow!("panic: {detail}"),
    ))
    .into_response()
}
