//! Bodies in and out of the gateway: checksums a client declared, checked while an upload is
//! written (a blocking thread writes while the request task hashes), and objects streamed back in
//! 1 MiB chunks.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::*;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3Result, s3_error};

use super::convert::*;
use super::internal;
use crate::storage::md5::Md5;
use crate::storage::objects::{ObjectError, ObjectStore, PendingObject};

/// The checksums a client declared for a body (headers, or trailers after it), checked once the
/// body is in.
#[derive(Default)]
pub(super) struct Declared {
    pub(super) content_md5: Option<String>,
    pub(super) checksums: Checksum,
}

impl Declared {
    pub(super) fn hasher(&self, algorithm: Option<&ChecksumAlgorithm>) -> ChecksumHasher {
        let c = &self.checksums;
        let wants = |name: &str| algorithm.is_some_and(|a| a.as_str().eq_ignore_ascii_case(name));
        ChecksumHasher {
            crc32: (c.checksum_crc32.is_some() || wants("CRC32")).then(Crc32::new),
            crc32c: (c.checksum_crc32c.is_some() || wants("CRC32C")).then(Crc32c::new),
            sha1: (c.checksum_sha1.is_some() || wants("SHA1")).then(Sha1::new),
            sha256: (c.checksum_sha256.is_some() || wants("SHA256")).then(Sha256::new),
            crc64nvme: (c.checksum_crc64nvme.is_some() || wants("CRC64NVME")).then(Crc64Nvme::new),
        }
    }

    /// Adds checksums sent as trailers (`aws-chunked` bodies with `x-amz-trailer`).
    pub(super) fn add_trailers(&mut self, trailers: Option<&s3s::TrailingHeaders>) {
        let Some(headers) = trailers.and_then(|t| t.take()) else {
            return;
        };
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let c = &mut self.checksums;
        c.checksum_crc32 = c
            .checksum_crc32
            .take()
            .or_else(|| get("x-amz-checksum-crc32"));
        c.checksum_crc32c = c
            .checksum_crc32c
            .take()
            .or_else(|| get("x-amz-checksum-crc32c"));
        c.checksum_sha1 = c
            .checksum_sha1
            .take()
            .or_else(|| get("x-amz-checksum-sha1"));
        c.checksum_sha256 = c
            .checksum_sha256
            .take()
            .or_else(|| get("x-amz-checksum-sha256"));
        c.checksum_crc64nvme = c
            .checksum_crc64nvme
            .take()
            .or_else(|| get("x-amz-checksum-crc64nvme"));
    }

    pub(super) fn verify(&self, md5: &[u8; 16], computed: &Checksum) -> S3Result<()> {
        if let Some(expected) = &self.content_md5
            && BASE64.decode(expected.trim()).ok().as_deref() != Some(md5.as_slice())
        {
            return Err(s3_error!(
                BadDigest,
                "the body does not match its Content-MD5"
            ));
        }
        let pairs = [
            (
                &self.checksums.checksum_crc32,
                &computed.checksum_crc32,
                "CRC32",
            ),
            (
                &self.checksums.checksum_crc32c,
                &computed.checksum_crc32c,
                "CRC32C",
            ),
            (
                &self.checksums.checksum_sha1,
                &computed.checksum_sha1,
                "SHA1",
            ),
            (
                &self.checksums.checksum_sha256,
                &computed.checksum_sha256,
                "SHA256",
            ),
            (
                &self.checksums.checksum_crc64nvme,
                &computed.checksum_crc64nvme,
                "CRC64NVME",
            ),
        ];
        for (expected, actual, name) in pairs {
            if let Some(expected) = expected
                && Some(expected) != actual.as_ref()
            {
                return Err(s3_error!(
                    BadDigest,
                    "the body does not match its x-amz-checksum-{}",
                    name.to_ascii_lowercase()
                ));
            }
        }
        Ok(())
    }
}

/// Receives a body into a pending object. Three stages run at once: this task takes chunks off
/// the connection (and computes any requested CRC/SHA checksum), one blocking thread computes the
/// MD5 (the ETag; the slowest stage), another writes the file. The file is removed if anything
/// fails.
pub(super) async fn receive(
    objects: &ObjectStore,
    body: Option<StreamingBlob>,
    declared: &mut Declared,
    algorithm: Option<&ChecksumAlgorithm>,
    trailers: Option<&s3s::TrailingHeaders>,
) -> S3Result<(PendingObject, Checksum)> {
    let store = objects.clone();
    let pending = blocking(move || store.begin()).await?;
    let (write_tx, mut write_rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let writer = tokio::task::spawn_blocking(move || -> Result<PendingObject, ObjectError> {
        let mut pending = pending;
        while let Some(chunk) = write_rx.blocking_recv() {
            pending.write_unhashed(&chunk)?;
        }
        Ok(pending)
    });
    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let hasher_thread = tokio::task::spawn_blocking(move || {
        let mut md5 = Md5::new();
        while let Some(chunk) = hash_rx.blocking_recv() {
            md5.update(&chunk);
        }
        md5.finalize()
    });
    let mut hasher = declared.hasher(algorithm);
    let mut failure = None;
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    hasher.update(&chunk);
                    if hash_tx.send(chunk.clone()).await.is_err()
                        || write_tx.send(chunk).await.is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    drop(write_tx);
    drop(hash_tx);
    let written = writer.await.map_err(internal)?;
    let md5 = hasher_thread.await.map_err(internal)?;
    if let Some(e) = failure {
        // Dropping the pending object (inside `written`) removes its file.
        drop(written);
        return Err(s3_error!(
            IncompleteBody,
            "reading the request body failed: {}",
            e
        ));
    }
    let mut pending = written.map_err(object_error)?;
    pending.set_md5(md5);
    declared.add_trailers(trailers);
    let computed = hasher.finalize();
    declared.verify(&md5, &computed)?;
    Ok((pending, computed))
}

/// The body of a PutObject or UploadPart and what its sender declared about it.
pub(super) struct Upload {
    pub(super) body: Option<StreamingBlob>,
    pub(super) content_length: Option<i64>,
    pub(super) declared: Declared,
    pub(super) algorithm: Option<ChecksumAlgorithm>,
}

/// Takes the body and declarations out of a PutObject or UploadPart input (same field names).
macro_rules! upload_of {
    ($input:expr) => {
        Upload {
            body: $input.body.take(),
            content_length: $input.content_length,
            algorithm: $input.checksum_algorithm.clone(),
            declared: Declared {
                content_md5: $input.content_md5.clone(),
                checksums: Checksum {
                    checksum_crc32: $input.checksum_crc32.clone(),
                    checksum_crc32c: $input.checksum_crc32c.clone(),
                    checksum_sha1: $input.checksum_sha1.clone(),
                    checksum_sha256: $input.checksum_sha256.clone(),
                    checksum_crc64nvme: $input.checksum_crc64nvme.clone(),
                    ..Default::default()
                },
            },
        }
    };
}
pub(super) use upload_of;

/// Receives an upload's body (see `receive`) and checks it is as long as announced.
pub(super) async fn receive_upload(
    objects: &ObjectStore,
    mut upload: Upload,
    trailers: Option<&s3s::TrailingHeaders>,
) -> S3Result<(PendingObject, Checksum)> {
    let (pending, computed) = receive(
        objects,
        upload.body,
        &mut upload.declared,
        upload.algorithm.as_ref(),
        trailers,
    )
    .await?;
    if let Some(length) = upload.content_length
        && length as u64 != pending.size()
    {
        return Err(s3_error!(
            IncompleteBody,
            "the body is shorter than its Content-Length"
        ));
    }
    Ok((pending, computed))
}

/// An object's bytes as a stream, read on a blocking thread in large chunks.
pub(super) struct FileStream {
    pub(super) rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    pub(super) remaining: usize,
}

impl FileStream {
    pub(super) fn new(mut file: std::fs::File, offset: u64, len: u64) -> Self {
        use std::io::{Read, Seek};
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = file.seek(std::io::SeekFrom::Start(offset)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut left = len;
            while left > 0 {
                let want = (left as usize).min(READ_CHUNK);
                // `read_to_end` reads into the spare capacity without zeroing it first.
                let mut buf = Vec::with_capacity(want);
                match (&mut file).take(want as u64).read_to_end(&mut buf) {
                    Ok(n) if n == want => {}
                    Ok(_) => {
                        let _ = tx.blocking_send(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the object was truncated while it was read",
                        )));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
                left -= want as u64;
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
        });
        FileStream {
            rx,
            remaining: len as usize,
        }
    }
}

impl Stream for FileStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &polled {
            self.remaining = self.remaining.saturating_sub(chunk.len());
        }
        polled
    }
}

impl ByteStream for FileStream {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::new_exact(self.remaining)
    }
}

/// Adapts the file stream's `io::Error` to the error type `StreamingBlob::new` takes.
pub(super) struct WrapErr(pub(super) FileStream);

impl Stream for WrapErr {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|o| o.map(|r| r.map_err(|e| Box::new(e) as s3s::StdError)))
    }
}

impl ByteStream for WrapErr {
    fn remaining_length(&self) -> RemainingLength {
        self.0.remaining_length()
    }
}
