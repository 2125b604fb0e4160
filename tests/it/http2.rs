//! HTTP/2 limits on both listeners, spoken frame by frame (a client library would hold itself to
//! the server's settings, and so never show the server holding anyone to them): the settings
//! each listener advertises, a stream past the concurrent-stream cap refused, and a header list
//! past the size cap refused, while requests within the limits are answered.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Backend, TestApp, TestDb};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const REFUSED_STREAM: u32 = 0x7;

struct Frame {
    kind: u8,
    stream: u32,
    payload: Vec<u8>,
}

struct Conn(TcpStream);

impl Conn {
    /// Connects, sends the preface and empty settings, and returns the server's settings.
    async fn open(addr: SocketAddr) -> (Conn, Vec<(u16, u32)>) {
        let mut conn = Conn(TcpStream::connect(addr).await.unwrap());
        conn.0.write_all(PREFACE).await.unwrap();
        conn.send(SETTINGS, 0, 0, &[]).await;
        let settings = loop {
            let frame = conn.read().await.expect("the server's settings");
            if frame.kind == SETTINGS && frame.payload.len() % 6 == 0 && !frame.payload.is_empty() {
                break frame
                    .payload
                    .chunks(6)
                    .map(|c| {
                        (
                            u16::from_be_bytes([c[0], c[1]]),
                            u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                        )
                    })
                    .collect();
            }
        };
        conn.send(SETTINGS, ACK, 0, &[]).await;
        (conn, settings)
    }

    async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.0.write_all(&frame).await.unwrap();
    }

    /// The next frame, or `None` once the server closed the connection or 10 s passed.
    async fn read(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(10), self.0.read_exact(&mut head))
            .await
            .ok()?
            .ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        self.0.read_exact(&mut payload).await.ok()?;
        Some(Frame {
            kind: head[3],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        })
    }

    /// Sends a request's headers (split over CONTINUATION frames when long); the stream stays
    /// open for a body unless `end`.
    async fn request(
        &mut self,
        stream: u32,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        end: bool,
    ) {
        let mut block = Vec::new();
        for (name, value) in [
            (":method", method),
            (":scheme", "http"),
            (":path", path),
            (":authority", "floe"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        {
            // A literal field without indexing, with a literal name (RFC 7541 6.2.2).
            block.push(0);
            hpack_string(&mut block, name);
            hpack_string(&mut block, value);
        }
        let chunks: Vec<&[u8]> = block.chunks(16_000).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let mut flags = if last { END_HEADERS } else { 0 };
            let kind = if i == 0 {
                if end {
                    flags |= END_STREAM;
                }
                HEADERS
            } else {
                CONTINUATION
            };
            self.send(kind, flags, stream, chunk).await;
        }
    }

    /// What became of `stream`: `Ok(header block)` when the server answered it, `Err(code)`
    /// when it reset the stream, `Err(0)` when the connection ended first.
    async fn outcome(&mut self, stream: u32) -> Result<Vec<u8>, u32> {
        while let Some(frame) = self.read().await {
            match frame.kind {
                HEADERS if frame.stream == stream => return Ok(frame.payload),
                RST_STREAM if frame.stream == stream => {
                    return Err(u32::from_be_bytes(frame.payload[..4].try_into().unwrap()));
                }
                GOAWAY => return Err(0),
                _ => {}
            }
        }
        Err(0)
    }
}

/// An HPACK string literal, not Huffman-coded, with its 7-bit-prefix length.
fn hpack_string(out: &mut Vec<u8>, text: &str) {
    let mut len = text.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        len -= 127;
        while len >= 128 {
            out.push((len % 128 + 128) as u8);
            len /= 128;
        }
        out.push(len as u8);
    }
    out.extend_from_slice(text.as_bytes());
}

/// A listener to try: its name, address, a path it answers at once, and a request (method, path,
/// headers) that waits for a body.
type Listener<'a> = (
    &'a str,
    SocketAddr,
    &'a str,
    (&'a str, &'a str),
    Vec<(&'a str, &'a str)>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_stream_and_header_limits_hold_on_both_listeners() {
    let db = std::sync::Arc::new(TestDb::new(Backend::Sqlite).await);
    let app = TestApp::spawn_on(db, |c| {
        for limits in [&mut c.server.limits, &mut c.gateway.limits] {
            limits.http2_max_concurrent_streams = 4;
            limits.max_header_bytes = 16 * 1024;
        }
    })
    .await;
    let hash = "0".repeat(64);
    // Requests that wait for a body that never comes: they hold their streams open.
    let held: [Listener; 2] = [
        (
            "catalog",
            app.addr,
            "/health",
            ("POST", "/management/v1/projects"),
            vec![
                ("content-length", "10"),
                ("content-type", "application/json"),
            ],
        ),
        (
            "gateway",
            app.s3_addr.unwrap(),
            "/",
            ("PUT", "/demo/held"),
            vec![("content-length", "10"), ("x-amz-content-sha256", &hash)],
        ),
    ];
    for (what, addr, path, (method, held_path), held_headers) in held {
        let (mut conn, settings) = Conn::open(addr).await;
        // SETTINGS_MAX_CONCURRENT_STREAMS (3) and SETTINGS_MAX_HEADER_LIST_SIZE (6).
        assert!(settings.contains(&(3, 4)), "{what}: {settings:?}");
        assert!(settings.contains(&(6, 16 * 1024)), "{what}: {settings:?}");

        // Within the limits: answered.
        conn.request(1, "GET", path, &[], true).await;
        assert!(conn.outcome(1).await.is_ok(), "{what}");

        // Four streams held open (their bodies never come), then a fifth: refused.
        for stream in [3, 5, 7, 9] {
            conn.request(stream, method, held_path, &held_headers, false)
                .await;
        }
        conn.request(11, "GET", path, &[], true).await;
        assert_eq!(
            conn.outcome(11).await,
            Err(REFUSED_STREAM),
            "{what}: a stream past the cap"
        );

        // A header list past the cap, on a fresh connection: never answered as a request.
        let (mut conn, _) = Conn::open(addr).await;
        let big = "x".repeat(20 * 1024);
        conn.request(1, "GET", path, &[("x-big", &big)], true).await;
        let refused = conn.outcome(1).await;
        assert!(
            refused.as_deref().map_or(true, is_status_431),
            "{what}: an oversized header list was served: {refused:?}"
        );
    }
}

/// Whether a response header block begins with `:status: 431` (the static table's `:status`
/// name, index 8, with the value as a plain or Huffman-coded literal).
fn is_status_431(block: &[u8]) -> bool {
    let name = [0x48, 0x08, 0x18];
    let values: [&[u8]; 2] = [&[0x03, b'4', b'3', b'1'], &[0x83, 0x69, 0x90, 0xff]];
    block.split_first().is_some_and(|(first, rest)| {
        name.contains(first) && values.iter().any(|v| rest.starts_with(v))
    })
}
