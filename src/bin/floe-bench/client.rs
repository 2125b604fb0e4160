//! The catalog as a client sees it: one pooled `reqwest::Client`, the prefix read from
//! `GET {uri}/v1/config?warehouse=NAME`, URLs under `{uri}/v1/{prefix}`, and timed calls whose
//! latency (from sending the request to the last byte of the body) lands in [`Stats`]. Talks only
//! to the URI it was given.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue,
};
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;

use crate::stats::{Outcome, Stats};

/// Connection settings from the command line.
pub struct Connect<'a> {
    pub uri: &'a str,
    pub warehouse: &'a str,
    pub token: Option<&'a str>,
    pub pool: usize,
    pub timeout: Duration,
    /// Send `Accept-Encoding: gzip` (bodies are decoded only where they are parsed).
    pub gzip: bool,
}

pub struct Catalog {
    http: reqwest::Client,
    uri: String,
    warehouse: String,
    /// `{uri}/v1/{prefix}`, or `{uri}/v1` when the catalog has no prefix.
    base: String,
    pub prefix: Option<String>,
    pub stats: Arc<Stats>,
}

/// How a call whose body is wanted ended.
pub enum Reply<T> {
    /// 2xx with a body that parsed.
    Ok(T),
    /// Any other answer (or a 2xx body that did not parse: status 0).
    Status(u16),
    /// No answer at all.
    Failed,
}

impl Catalog {
    /// Builds the client and reads the prefix of `warehouse` (this call is not measured).
    pub async fn connect(connect: Connect<'_>, stats: Arc<Stats>) -> anyhow::Result<Catalog> {
        let mut headers = HeaderMap::new();
        if let Some(token) = connect.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token is not a valid header value")?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        if connect.gzip {
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(connect.pool)
            .tcp_nodelay(true)
            .timeout(connect.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("floe-bench/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        let uri = connect.uri.trim_end_matches('/');
        if !uri.starts_with("http://") && !uri.starts_with("https://") {
            bail!("--uri must start with http:// or https://: {uri}");
        }
        let config_url = format!("{uri}/v1/config");
        let response = http
            .get(&config_url)
            .query(&[("warehouse", connect.warehouse)])
            .send()
            .await
            .with_context(|| format!("GET {config_url}"))?;
        let status = response.status();
        let gzipped = is_gzip(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        let body = decoded(&body, gzipped)
            .and_then(|b| String::from_utf8(b.into_owned()).ok())
            .unwrap_or_default();
        if !status.is_success() {
            bail!(
                "GET {config_url}?warehouse={}: {status}: {body}",
                connect.warehouse
            );
        }
        let config: serde_json::Value =
            serde_json::from_str(&body).context("the config response is not JSON")?;
        let prefix = ["overrides", "defaults"]
            .iter()
            .find_map(|section| config[section]["prefix"].as_str())
            .map(str::to_string);
        let base = match &prefix {
            Some(prefix) => format!("{uri}/v1/{prefix}"),
            None => format!("{uri}/v1"),
        };
        Ok(Catalog {
            http,
            uri: uri.to_string(),
            warehouse: connect.warehouse.to_string(),
            base,
            prefix,
            stats,
        })
    }

    /// The config request this catalog was found with, for workloads that measure it.
    pub fn config_request(&self) -> RequestBuilder {
        self.http
            .get(format!("{}/v1/config", self.uri))
            .query(&[("warehouse", &self.warehouse)])
    }

    /// A request to `path` under the prefix (`path` starts with `/`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A POST of a JSON body to `path`.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> RequestBuilder {
        self.request(Method::POST, path)
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).expect("JSON serializes"))
    }

    /// Sends, reads the whole body, records the call as `op`, then hands status, body and
    /// whether the body is gzip to `read` (outside the measured time). `None` when no answer
    /// came.
    async fn exchange<R>(
        &self,
        op: &'static str,
        request: RequestBuilder,
        read: impl FnOnce(u16, &[u8], bool) -> R,
    ) -> Option<R> {
        let start = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let gzipped = is_gzip(response.headers());
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body, gzipped))
        }
        .await;
        let end = Instant::now();
        match result {
            Ok((status, body, gzipped)) => {
                self.stats.record(op, start, end, Outcome::Status(status));
                Some(read(status, &body, gzipped))
            }
            Err(error) => {
                let kind = if error.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                };
                self.stats.record(op, start, end, Outcome::Failed(kind));
                None
            }
        }
    }

    /// Sends and records the call; the body is read (the latency covers it) and dropped
    /// unparsed. Returns the status, `None` when no answer came.
    pub async fn send(&self, op: &'static str, request: RequestBuilder) -> Option<u16> {
        self.exchange(op, request, |status, _, _| status).await
    }

    /// Sends and records the call, then parses a 2xx body as `T`.
    pub async fn call_json<T: DeserializeOwned>(
        &self,
        op: &'static str,
        request: RequestBuilder,
    ) -> Reply<T> {
        let parsed = self
            .exchange(op, request, |status, body, gzipped| {
                if (200..300).contains(&status) {
                    let body = decoded(body, gzipped).ok_or(0u16)?;
                    serde_json::from_slice(&body).map_err(|_| 0u16)
                } else {
                    Err(status)
                }
            })
            .await;
        match parsed {
            Some(Ok(value)) => Reply::Ok(value),
            Some(Err(0)) => {
                self.stats.error(op, "bad-body");
                Reply::Status(0)
            }
            Some(Err(status)) => Reply::Status(status),
            None => Reply::Failed,
        }
    }

    /// An unmeasured status check (for preconditions before a run starts).
    pub async fn probe(&self, method: Method, path: &str) -> anyhow::Result<u16> {
        let response = self
            .request(method, path)
            .send()
            .await
            .with_context(|| format!("{}{path}", self.base))?;
        Ok(response.status().as_u16())
    }
}

fn is_gzip(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"))
}

/// The body as sent before any content coding; `None` when gzip does not decode.
fn decoded(body: &[u8], gzipped: bool) -> Option<Cow<'_, [u8]>> {
    if !gzipped {
        return Some(Cow::Borrowed(body));
    }
    let mut out = Vec::with_capacity(body.len() * 8);
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out).ok()?;
    Some(Cow::Owned(out))
}

/// A namespace in a path: levels percent-encoded and joined by `%1F`.
pub fn namespace_path(levels: &[String]) -> String {
    levels
        .iter()
        .map(|level| encode(level))
        .collect::<Vec<_>>()
        .join("%1F")
}

/// A namespace in a `parent` query parameter: levels joined by the unit separator (the query
/// encoder turns it into `%1F`).
pub fn namespace_param(levels: &[String]) -> String {
    levels.join("\u{1f}")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_encoded_per_level() {
        let levels = vec!["a b".to_string(), "c/d".to_string(), "é".to_string()];
        assert_eq!(namespace_path(&levels), "a%20b%1Fc%2Fd%1F%C3%A9");
    }
}
