//! The accept loop both listeners (catalog and S3 gateway) share, and the limits it holds every
//! client to: how long a client may take to send a request's headers (which also bounds an idle
//! keep-alive connection: the wait for the next request's headers is the same timer), how many
//! connections are open at once (past the cap a connection gets `503` with `Retry-After` and is
//! closed, rather than waiting in a queue that grows), and HTTP/2's concurrent streams and
//! header size. A slow client costs one connection slot for at most the header timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// Limits of one listener (`server.limits`, `gateway.limits`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerLimits {
    /// How long a client may take to send a request's headers, and how long a keep-alive
    /// connection may sit idle between requests, in milliseconds.
    pub header_timeout_ms: u64,
    /// How long a request body may go without a byte arriving, in milliseconds; past it the
    /// request fails (and the connection closes).
    pub body_timeout_ms: u64,
    /// How long one catalog request may take in all, body included, in milliseconds; past it
    /// the answer is 503 with `Retry-After`. The gateway has none: it streams data of any size,
    /// bounded by `body_timeout_ms` instead.
    pub request_timeout_ms: u64,
    /// Connections open at once; past it, new ones get 503 with `Retry-After` and are closed.
    pub max_connections: usize,
    /// Requests being served at once (health and readiness probes aside); past it, 503 with
    /// `Retry-After` at once (S3: `SlowDown`), never a queue.
    pub max_requests_in_flight: usize,
    /// HTTP/2 streams in flight on one connection.
    pub http2_max_concurrent_streams: u32,
    /// Largest request header section, in bytes (HTTP/1 and HTTP/2).
    pub max_header_bytes: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            request_timeout_ms: 60_000,
            max_connections: 10_000,
            max_requests_in_flight: 1_024,
            http2_max_concurrent_streams: 128,
            max_header_bytes: 64 * 1024,
        }
    }
}

impl ListenerLimits {
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if self.header_timeout_ms == 0 || self.body_timeout_ms == 0 || self.request_timeout_ms == 0
        {
            return Err(format!(
                "{name}.header_timeout_ms, body_timeout_ms and request_timeout_ms must be positive"
            ));
        }
        if self.max_connections == 0
            || self.max_requests_in_flight == 0
            || self.http2_max_concurrent_streams == 0
        {
            return Err(format!(
                "{name}.max_connections, max_requests_in_flight and \
                 http2_max_concurrent_streams must be positive"
            ));
        }
        if self.max_header_bytes < 8 * 1024 {
            return Err(format!("{name}.max_header_bytes must be at least 8192"));
        }
        Ok(())
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    fn builder(&self) -> Builder<TokioExecutor> {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(self.header_timeout_ms))
            .max_buf_size(self.max_header_bytes.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.http2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(Duration::from_millis(self.header_timeout_ms))
            .keep_alive_timeout(Duration::from_millis(self.header_timeout_ms));
        builder
    }
}

/// What a connection over the cap is told.
fn over_capacity() -> Vec<u8> {
    let body = r#"{"error":{"message":"too many connections; retry later","type":"ServiceUnavailableException","code":503}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `listener` with a fresh `service` per connection until `stop` resolves; then stops
/// accepting and gives open connections `drain` to finish. `what` names the listener in logs.
pub async fn serve<S, B>(
    what: &'static str,
    listener: TcpListener,
    service: S,
    limits: &ListenerLimits,
    stop: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = limits.builder();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (mut stream, peer): (_, SocketAddr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors, most likely: wait rather than spin.
                        tracing::warn!(error = %e, listener = what, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(listener = what, %peer, "over the connection cap: 503");
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            let _ = stream.write_all(&over_capacity()).await;
                            let _ = stream.shutdown().await;
                        })
                        .await;
                    });
                    continue;
                };
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service.clone())
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, listener = what, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!(listener = what, "connections did not finish in time; stopping anyway");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_over_capacity_answer_is_well_formed() {
        let bytes = over_capacity();
        let text = std::str::from_utf8(&bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], 503);
    }
}
