//! Extractors that turn every rejection into the Iceberg error shape: malformed JSON, wrong types
//! and bad path or query parameters are 400s, an oversized body is 413, never axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::ApiError;
use crate::error::{Entity, Error, ErrorKind};
use crate::model::v3_types;
use crate::model::{
    NamespaceIdent, PageRequest, TabularIdent, WarehouseId, WarehouseRef, WarehouseSelector,
};
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
        let bytes = body_bytes(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError(Error::bad_request(format!("invalid request body: {e}"))))
    }
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
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
    })
}

/// A request body that carries table or view schemas: the format v3 types the catalog's model
/// cannot parse are lowered before it is parsed ([`v3_types`]), and the properties that carry
/// them are refused when a client sends them.
pub struct SchemaBody<T>(pub T);

/// Where a request's schemas and properties sit, for [`SchemaBody`].
pub trait CarriesSchemas {
    fn lower(body: &mut serde_json::Value) -> Result<(), String>;
}

impl<S, T> FromRequest<S> for SchemaBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + CarriesSchemas,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        let invalid = |e: serde_json::Error| {
            ApiError(Error::bad_request(format!("invalid request body: {e}")))
        };
        if !v3_types::may_hold(&bytes) {
            return serde_json::from_slice(&bytes)
                .map(SchemaBody)
                .map_err(invalid);
        }
        let mut body: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
        T::lower(&mut body)
            .map_err(|e| ApiError(Error::bad_request(format!("invalid request body: {e}"))))?;
        serde_json::from_value(body)
            .map(SchemaBody)
            .map_err(invalid)
    }
}

/// Text with a NUL character (`%00`) names nothing Floe stores (PostgreSQL cannot hold it in
/// text at all), so a path or query carrying one is a client's mistake, refused before any lookup.
fn refuse_nul(part: &str, what: &str) -> Result<(), ApiError> {
    if part.contains("%00") {
        return Err(ApiError(Error::bad_request(format!(
            "invalid {what}: NUL characters (%00) are not allowed"
        ))));
    }
    Ok(())
}

/// Path parameters, percent-decoded; undecodable ones, and ones with NUL characters, are 400.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        refuse_nul(parts.uri.path(), "path parameter")?;
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

/// Query parameters; unparsable ones, and ones with NUL characters, are 400.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        refuse_nul(parts.uri.query().unwrap_or_default(), "query parameter")?;
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

/// The warehouse and ref a catalog `{prefix}` names: Floe's prefixes are `warehouse@ref` with the
/// warehouse's id (see `model::WarehouseRef`), as `/v1/config` hands them out; anything else names
/// no warehouse. The ref goes into the request's context.
pub(super) fn warehouse_of(
    prefix: &str,
    mut ctx: RequestContext,
) -> Result<(WarehouseId, RequestContext), Error> {
    match WarehouseRef::parse(prefix) {
        Some(WarehouseRef {
            warehouse: WarehouseSelector::Id(warehouse),
            reference,
        }) => {
            ctx.reference = reference;
            Ok((warehouse, ctx))
        }
        _ => Err(Error::not_found(
            Entity::Warehouse,
            format!("no warehouse has the prefix {prefix:?}; get it from /v1/config"),
        )),
    }
}

/// The `{namespace}` path parameter: levels separated by the unit separator (`%1F`).
pub(super) fn namespace_of(param: &str) -> Result<NamespaceIdent, Error> {
    NamespaceIdent::from_joined(param)
}

/// A table or view named by the `{namespace}` and `{table}` (or `{view}`) path parameters.
pub(super) fn ident_of(namespace: &str, name: String) -> Result<TabularIdent, Error> {
    TabularIdent::new(namespace_of(namespace)?, name)
}

/// The page size when a client asks to page but names no size, and the largest allowed.
const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;

/// The opaque token that continues a listing after `after`.
pub(super) fn page_token(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(after)
}

/// Turns the client's paging parameters into a store page request; `None` when not paging.
pub(super) fn page_request(
    token: Option<&str>,
    size: Option<u32>,
) -> Result<Option<PageRequest>, Error> {
    if token.is_none() && size.is_none() {
        return Ok(None);
    }
    let limit = size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(Error::bad_request(format!(
            "pageSize must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    let after = match token.filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => Some(
            URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|after| !after.contains('\0'))
                .ok_or_else(|| Error::bad_request("pageToken is not a token this server issued"))?,
        ),
    };
    Ok(Some(PageRequest {
        after,
        limit: Some(limit),
    }))
}

/// A `true`/`false` query flag (any case); absent is `false`.
pub(crate) fn flag(name: &str, value: Option<&str>) -> Result<bool, crate::error::Error> {
    match value.map(str::to_ascii_lowercase) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(crate::error::Error::bad_request(format!(
            "{name} must be true or false, not {v:?}"
        ))),
    }
}
