//! gzip for large `loadTable` bodies (`Content-Encoding: gzip` when the request accepts it).
//!
//! A table's metadata grows with its history (a table with 5,000 snapshots has about 2 MB of it),
//! and every load of one version sends the same bytes, while the end of the body (the vended
//! `config` and `storage-credentials`) is the caller's own. So the start of the body is
//! compressed once per metadata file and kept: raw deflate blocks ending in a sync flush (which
//! leaves the stream byte-aligned, not finished), with the CRC-32 and length of what they hold.
//! Each response then appends its own end as a final *stored* (uncompressed) deflate block and
//! extends the CRC over it. The result is one ordinary gzip member (RFC 1952), which any client
//! that asks for gzip decodes; serving it costs a CRC of a few hundred bytes.

use std::io::Write;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, header};

use crate::service::FifoCache;

/// Bodies smaller than this are sent as they are: on a fast network compressing them saves
/// less than it costs.
pub(super) const MIN_BYTES: usize = 16 * 1024;

/// Metadata of at least this size is compressed on a blocking thread, not a runtime worker.
const BLOCKING_BYTES: usize = 256 * 1024;

/// The ten bytes that open every member: magic, deflate, no flags, no time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// The compressed start of a body.
pub(super) struct Deflated {
    /// Raw deflate blocks, none of them final, ending byte-aligned (sync flush).
    blocks: Bytes,
    /// CRC-32 of the uncompressed bytes the blocks hold.
    crc: u32,
    /// How many uncompressed bytes the blocks hold.
    len: u64,
}

impl Deflated {
    /// Compresses `parts`, one after the other.
    pub(super) fn compress(parts: &[&[u8]]) -> Deflated {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut encoder = flate2::write::DeflateEncoder::new(
            Vec::with_capacity(total / 6 + 64),
            flate2::Compression::new(4),
        );
        let mut crc = crc32fast::Hasher::new();
        for part in parts {
            encoder.write_all(part).expect("writing to memory");
            crc.update(part);
        }
        // A sync flush ends the last block and aligns the stream; nothing is finished, so more
        // blocks may follow. Dropping the encoder afterwards writes its final block into the
        // emptied vector, which is thrown away with it.
        encoder.flush().expect("writing to memory");
        let blocks = std::mem::take(encoder.get_mut());
        Deflated {
            blocks: Bytes::from(blocks),
            crc: crc.finalize(),
            len: total as u64,
        }
    }

    /// Compressed bytes held.
    pub(super) fn size(&self) -> usize {
        self.blocks.len()
    }

    /// The whole gzip member for these blocks followed by `tail`, as chunks: the header, the
    /// shared blocks, and `tail` in stored blocks with the trailer.
    pub(super) fn member(&self, tail: &[u8]) -> [Bytes; 3] {
        let mut end = Vec::with_capacity(tail.len() + tail.len() / 65_535 * 5 + 5 + 8);
        let mut chunks = tail.chunks(u16::MAX as usize).peekable();
        if chunks.peek().is_none() {
            // An empty final stored block.
            end.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
        }
        while let Some(chunk) = chunks.next() {
            // BFINAL in the lowest bit, BTYPE 00 (stored) above it, the rest padding.
            end.push(u8::from(chunks.peek().is_none()));
            let len = chunk.len() as u16;
            end.extend_from_slice(&len.to_le_bytes());
            end.extend_from_slice(&(!len).to_le_bytes());
            end.extend_from_slice(chunk);
        }
        let mut crc = crc32fast::Hasher::new_with_initial_len(self.crc, self.len);
        crc.update(tail);
        end.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32.
        let size = (self.len + tail.len() as u64) as u32;
        end.extend_from_slice(&size.to_le_bytes());
        [
            Bytes::from_static(&HEADER),
            self.blocks.clone(),
            Bytes::from(end),
        ]
    }
}

/// Whether `Accept-Encoding` accepts gzip (listed, or `*`, with a non-zero quality).
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut fields = item.split(';');
            let coding = fields.next().unwrap_or("").trim();
            let quality = fields
                .filter_map(|f| f.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            let accepted = quality > 0.0;
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(accepted);
            } else if coding == "*" {
                any = Some(accepted);
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// The compressed starts of recent bodies, by a key naming their content (metadata file and
/// snapshot mode: a metadata file never changes). Bounded by compressed bytes; the oldest go
/// first. Concurrent first loads of one key compress once.
pub(crate) struct GzipCache {
    cells: FifoCache<Arc<tokio::sync::OnceCell<Arc<Deflated>>>>,
}

impl GzipCache {
    pub(crate) fn new(max_bytes: usize) -> Self {
        GzipCache {
            cells: FifoCache::new(max_bytes),
        }
    }

    /// The compressed form of `parts` under `key`, compressing it if no one has yet.
    pub(super) async fn get(&self, key: &str, parts: [Bytes; 2]) -> Arc<Deflated> {
        let cell = self
            .cells
            .get_or_insert_with(key, || Arc::new(tokio::sync::OnceCell::new()));
        let mut fresh = false;
        let deflated = cell
            .get_or_init(|| async {
                fresh = true;
                let size = parts[1].len();
                let compress = move || Arc::new(Deflated::compress(&[&parts[0], &parts[1]]));
                if size >= BLOCKING_BYTES {
                    tokio::task::spawn_blocking(compress)
                        .await
                        .expect("compression does not panic")
                } else {
                    compress()
                }
            })
            .await
            .clone();
        if fresh {
            // Counted once compressed (if it was not dropped meanwhile).
            self.cells
                .resize(key, |held| Arc::ptr_eq(held, &cell), deflated.size());
        }
        deflated
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(chunks: &[Bytes]) -> Vec<u8> {
        let member: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        // `GzDecoder` reads one member and checks its CRC and length.
        let mut decoder = flate2::read::GzDecoder::new(&member[..]);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).expect("a valid gzip member");
        let mut rest = Vec::new();
        decoder.into_inner().read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "one member, nothing after it");
        out
    }

    #[test]
    fn members_decode_to_start_and_tail() {
        let start = b"{\"metadata-location\":\"s3://x/m.json\",\"metadata\":".to_vec();
        let metadata: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{{\"snapshot-id\":{i},\"summary\":{{}}}},").into_bytes())
            .collect();
        let deflated = Deflated::compress(&[&start, &metadata]);
        assert!(deflated.size() < metadata.len() / 4, "{}", deflated.size());
        let long_tail = vec![b'x'; 3 * 65_535 + 17];
        for tail in [
            &b"}"[..],
            b"",
            &b",\"config\":{\"k\":\"v\"}}"[..],
            &long_tail,
        ] {
            let body = gunzip(&deflated.member(tail));
            let mut expected = start.clone();
            expected.extend_from_slice(&metadata);
            expected.extend_from_slice(tail);
            assert_eq!(body.len(), expected.len());
            assert!(body == expected, "tail of {} bytes", tail.len());
        }
    }

    #[test]
    fn accept_encoding_is_negotiated() {
        let accepts = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
            accepts_gzip(&headers)
        };
        assert!(accepts("gzip, deflate"));
        assert!(accepts("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts("*"));
        assert!(accepts("x-gzip"));
        assert!(!accepts("identity"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip;q=0, *"));
        assert!(!accepts("deflate, br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn the_cache_keeps_within_its_bound() {
        let cache = GzipCache::new(4096);
        let random = |seed: u64| -> Bytes {
            // Incompressible bytes, so each entry is about its input's size.
            let mut x = seed | 1;
            (0..2000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect::<Vec<u8>>()
                .into()
        };
        let first = cache.get("a", [Bytes::from_static(b"{"), random(1)]).await;
        let again = cache.get("a", [Bytes::new(), Bytes::new()]).await;
        assert!(Arc::ptr_eq(&first, &again), "a hit does not compress again");
        cache.get("b", [Bytes::new(), random(2)]).await;
        cache.get("c", [Bytes::new(), random(3)]).await;
        assert!(cache.cells.get("a").is_none(), "the oldest went first");
        assert!(cache.cells.get("c").is_some());
    }
}
