//! The accept loop both listeners (catalog and S3 gateway) share, and the limits it holds every
//! client to: how long a client may take to send a request's headers (which also bounds an idle
//! keep-alive connection: the wait for the next request's headers is the same timer), how many
//! connections are open at once (past the cap a connection gets `503` with `Retry-After` and is
//! closed, rather than waiting in a queue that grows), and HTTP/2's concurrent streams and
//! header size. A slow client costs one connection slot for at most the header timeout.
//!
//! Under overload the queue forms outside the process, as connections waiting to be accepted and
//! requests waiting in socket buffers to be read, where no count kept here sees it. So every request
//! carries [`Queued`], how long its bytes sat in the kernel before the server read them (Linux
//! `TCP_INFO`'s time since data last arrived on the connection), and each listener refuses
//! (503 with `Retry-After`, cheaply) a request that waited longer than `max_queue_ms` instead of
//! serving it late: the server catches up and what it admits keeps a bounded latency.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::model::Queued;

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
    /// How long a request may wait, received but not yet read because the server is behind,
    /// before it is refused (503 with `Retry-After`; S3: `SlowDown`) rather than served late, in
    /// milliseconds. Health and readiness probes are always served.
    pub max_queue_ms: u64,
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
            max_queue_ms: 250,
            http2_max_concurrent_streams: 128,
            max_header_bytes: 64 * 1024,
        }
    }
}

impl ListenerLimits {
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if self.header_timeout_ms == 0
            || self.body_timeout_ms == 0
            || self.request_timeout_ms == 0
            || self.max_queue_ms == 0
        {
            return Err(format!(
                "{name}.header_timeout_ms, body_timeout_ms, request_timeout_ms and max_queue_ms \
                 must be positive"
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

    pub fn max_queue(&self) -> Duration {
        Duration::from_millis(self.max_queue_ms)
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

/// Milliseconds since data last arrived on the TCP socket `fd`.
fn idle_since_data(fd: RawFd) -> Option<Duration> {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a writable buffer of `len` bytes and `fd` is the connection's open socket
    // (the service holding it lives no longer than the connection that owns the socket).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || (len as usize) < std::mem::size_of::<libc::tcp_info>() {
        return None;
    }
    // SAFETY: the kernel filled the whole struct (checked above); it is plain integers.
    let info = unsafe { info.assume_init() };
    Some(Duration::from_millis(u64::from(info.tcpi_last_data_recv)))
}

/// A connection's service that stamps each request with [`Queued`].
#[derive(Clone)]
struct Stamped<S> {
    inner: S,
    fd: RawFd,
}

impl<S> hyper::service::Service<http::Request<hyper::body::Incoming>> for Stamped<S>
where
    S: hyper::service::Service<http::Request<hyper::body::Incoming>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut request: http::Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(waited) = idle_since_data(self.fd) {
            request.extensions_mut().insert(Queued(waited));
        }
        self.inner.call(request)
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
                let stamped = Stamped { inner: service.clone(), fd: stream.as_raw_fd() };
                let conn = builder
                    .serve_connection(TokioIo::new(stream), stamped)
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
    fn the_kernel_says_how_long_unread_bytes_have_waited() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let waited = idle_since_data(server.as_raw_fd()).unwrap();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        let mut buf = [0u8; 64];
        let _ = server.read(&mut buf).unwrap();
        // Bytes that just arrived have not waited.
        client.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let fresh = idle_since_data(server.as_raw_fd()).unwrap();
        assert!(fresh < Duration::from_millis(200), "{fresh:?}");
        // Not a TCP socket: the kernel does not say.
        let file = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(idle_since_data(file.as_raw_fd()), None);
        assert_eq!(
            Queued::longer_than(&http::Extensions::new(), Duration::ZERO),
            None
        );
    }

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
