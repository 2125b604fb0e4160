//! Extractors that turn every rejection into the Iceberg error shape: malformed JSON, wrong types
//! and bad path or query parameters are 400s, an oversized body is 413, never axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::error::{Error, ErrorKind};
use crate::service::RequestContext;

/// A JSON request body. The content type is not insisted on (some clients omit it); the body must
/// parse into `T`, or the request fails with 400 naming the problem.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError(Error::new(
                    ErrorKind::PayloadTooLarge,
                    "request body is larger than the limit (server.max_body_bytes)",
                ))
            } else {
                ApiError(Error::bad_request(format!(
                    "could not read the request body: {}",
                    rejection.body_text()
                )))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError(Error::bad_request(format!("invalid request body: {e}"))))
    }
}

/// Path parameters, percent-decoded; undecodable ones are 400.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| {
                ApiError(Error::bad_request(format!(
                    "invalid path parameter: {}",
                    e.body_text()
                )))
            })
    }
}

/// Query parameters; unparsable ones are 400.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| {
                ApiError(Error::bad_request(format!(
                    "invalid query parameter: {}",
                    e.body_text()
                )))
            })
    }
}

/// The caller's [`RequestContext`], put there by the authentication middleware.
pub struct Ctx(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .map(Ctx)
            .ok_or_else(|| {
                ApiError(Error::internal(
                    "request context missing",
                    anyhow::anyhow!("the authentication middleware did not run"),
                ))
            })
    }
}
