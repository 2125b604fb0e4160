//! The `Idempotency-Key` header of the catalog's mutations: the request's method, path, query
//! and body are digested, the key claimed through the use case (`service::idempotency`), and the
//! request either runs (in a task of its own, so a client that hangs up still gets its outcome
//! recorded for its retry) or is answered what the first request with the key was answered.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tracing::Instrument as _;

use super::AppState;
use super::error::ApiError;
use crate::error::{Error, ErrorKind};
use crate::model::idempotency::StoredResponse;
use crate::service::RequestContext;
use crate::service::idempotency::{Begun, parse_key};

const HEADER: &str = "idempotency-key";
/// Set on an answer that repeats the first request's.
const REPLAYED: &str = "idempotency-replayed";
/// The answer's headers kept with it.
const KEPT_HEADERS: &[&str] = &["content-type", "content-encoding", "etag"];

/// What the layer needs: the use cases and the body limit.
#[derive(Clone)]
pub struct Keys {
    pub state: AppState,
    pub max_body_bytes: usize,
}

pub async fn idempotency(State(keys): State<Keys>, request: Request, next: Next) -> Response {
    let state = &keys.state;
    let Some(header) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let Some(ctx) = request.extensions().get::<RequestContext>().cloned() else {
        return next.run(request).await;
    };
    if !ctx.operation.is_some_and(|op| op.idempotent())
        || state.services.idempotency_lifetime().is_none()
    {
        return next.run(request).await;
    }
    let key = match header
        .to_str()
        .map_err(|_| ())
        .and_then(|h| parse_key(h).map_err(|_| ()))
    {
        Ok(key) => key,
        Err(()) => {
            return ApiError(Error::bad_request(
                "Idempotency-Key must be a UUID in its 36-character form (a UUIDv7)",
            ))
            .into_response();
        }
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, keys.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError(Error::new(
                ErrorKind::PayloadTooLarge,
                "request body is larger than the limit (server.max_body_bytes)",
            ))
            .into_response();
        }
    };
    let mut digest = Sha256::new();
    digest.update(parts.method.as_str().as_bytes());
    digest.update([0]);
    digest.update(parts.uri.path().as_bytes());
    digest.update([0]);
    digest.update(parts.uri.query().unwrap_or("").as_bytes());
    digest.update([0]);
    digest.update(&bytes);
    let fingerprint = hex::encode(digest.finalize());
    let principal = ctx.principal.id().to_string();
    let guard = match state
        .services
        .begin_idempotent(&principal, &key, fingerprint)
        .await
    {
        Ok(Begun::Run(guard)) => guard,
        Ok(Begun::Replay(stored)) => return replay(stored),
        Err(e) => return ApiError(e).into_response(),
    };
    // Run to the end whatever the client does, and keep the answer for its retry.
    let services = state.services.clone();
    let request = Request::from_parts(parts, Body::from(bytes));
    let span = tracing::Span::current();
    let ran = tokio::spawn(
        async move {
            let response = next.run(request).await;
            let (parts, body) = response.into_parts();
            let bytes = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!(error = %e, "reading an answer to keep it failed");
                    services
                        .end_idempotent(
                            guard,
                            StoredResponse {
                                status: 500,
                                headers: Vec::new(),
                                body: Vec::new(),
                            },
                        )
                        .await;
                    return ApiError(Error::internal("reading an answer", e)).into_response();
                }
            };
            let stored = StoredResponse {
                status: parts.status.as_u16(),
                headers: KEPT_HEADERS
                    .iter()
                    .filter_map(|name| {
                        let value = parts.headers.get(*name)?.to_str().ok()?;
                        Some((name.to_string(), value.to_string()))
                    })
                    .collect(),
                body: bytes.to_vec(),
            };
            services.end_idempotent(guard, stored).await;
            Response::from_parts(parts, Body::from(bytes))
        }
        .instrument(span),
    );
    match ran.await {
        Ok(response) => response,
        Err(e) => ApiError(Error::internal("running a request", e)).into_response(),
    }
}

/// The first request's answer, again.
fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
