//! The web console at `/ui`: three static files (`ui/` in the repository, plain ES modules with no
//! build step) compiled into the binary. They hold no data: the page calls the management and
//! catalog APIs with the caller's own token, so like the API browser they are served without
//! authentication. A strict Content-Security-Policy keeps the page to its own scripts and
//! styles, to this server and to the identity providers it signs in with.
//!
//! `/ui/config.json` tells the page those providers: each one configured with a console client
//! (`authn.providers[].console-client-id`, a public client) is offered for a sign-in with the
//! authorization code flow and PKCE; the page then calls the APIs with the access token.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../../ui/index.html");
const APP: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/style.css");

/// The identity providers the console signs in with.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    pub providers: Vec<ConsoleProvider>,
}

/// A provider with a public client for the console.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ConsoleProvider {
    pub id: String,
    pub issuer: String,
    pub client_id: String,
    /// The audience to ask the token for (RFC 8707 `resource`).
    pub resource: Option<String>,
    pub scopes: Vec<String>,
}

/// The console's routes.
pub fn router<S: Clone + Send + Sync + 'static>(settings: &ConsoleSettings) -> Router<S> {
    // The page may reach this server and its providers (discovery and the token endpoint).
    let origins: Vec<String> = settings
        .providers
        .iter()
        .filter_map(|p| origin_of(&p.issuer))
        .collect();
    let policy: &'static str = Box::leak(
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' {}; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            origins.join(" ")
        )
        .into_boxed_str(),
    );
    let config: &'static str = Box::leak(
        serde_json::json!({ "providers": settings.providers })
            .to_string()
            .into_boxed_str(),
    );
    Router::new()
        .route(
            "/ui/config.json",
            get(move || async move { asset(config, "application/json", policy) }),
        )
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route(
            "/ui/",
            get(move || async move { asset(INDEX, "text/html; charset=utf-8", policy) }),
        )
        .route(
            "/ui/app.js",
            get(move || async move { asset(APP, "text/javascript; charset=utf-8", policy) }),
        )
        .route(
            "/ui/style.css",
            get(move || async move { asset(STYLE, "text/css; charset=utf-8", policy) }),
        )
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    (!host.is_empty() && matches!(scheme, "http" | "https")).then(|| format!("{scheme}://{host}"))
}

fn asset(body: &'static str, content_type: &'static str, policy: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated on each visit: a new binary serves new files at the same paths.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
