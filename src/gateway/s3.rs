//! The S3 operations, over `storage::objects`. File-system work runs on the blocking pool; bodies
//! are streamed in both directions and never held whole in memory.

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
use s3s::{S3, S3Error, S3Request, S3Response, S3Result, s3_error};

use super::{Target, internal};
use crate::storage::md5::Md5;
use crate::storage::objects::{
    self, KeyError, ObjectError, ObjectInfo, ObjectMeta, ObjectStore, Overwrite, PendingObject,
    UploadInfo,
};

/// Bytes read from disk per chunk when serving an object.
const READ_CHUNK: usize = 1 << 20;
/// Objects up to this size are read in one piece instead of streamed.
const SMALL_OBJECT: u64 = 256 << 10;
/// Keys per listing page when the client does not ask for fewer.
const MAX_KEYS: usize = 1000;

pub(crate) struct FloeS3 {
    pub region: String,
}

fn target<T>(req: &S3Request<T>) -> S3Result<Target> {
    req.extensions
        .get::<Target>()
        .cloned()
        .ok_or_else(|| s3_error!(AccessDenied, "requests must be signed"))
}

fn object_error(e: ObjectError) -> S3Error {
    match e {
        ObjectError::Key(KeyError::TooLong) => s3_error!(KeyTooLongError, "{}", KeyError::TooLong),
        ObjectError::Key(k) => s3_error!(InvalidArgument, "invalid object key: {}", k),
        ObjectError::NoSuchKey => s3_error!(NoSuchKey),
        ObjectError::NoSuchUpload => s3_error!(NoSuchUpload),
        ObjectError::PreconditionFailed(m) => s3_error!(PreconditionFailed, "{}", m),
        ObjectError::AlreadyExists => s3_error!(
            PreconditionFailed,
            "the object exists and If-None-Match: * asked for none"
        ),
        ObjectError::Replace => s3_error!(
            AccessDenied,
            "the object exists and this key may not replace it (metadata files are never \
             replaced; other files not while the warehouse has branches or tags, which may still \
             read them)"
        ),
        ObjectError::Conflict(m) => s3_error!(OperationAborted, "{}", m),
        ObjectError::InvalidPart(m) if m.contains("InvalidPartOrder") => {
            s3_error!(InvalidPartOrder, "{}", m)
        }
        ObjectError::InvalidPart(m) => s3_error!(InvalidPart, "{}", m),
        ObjectError::EntityTooSmall(m) => s3_error!(EntityTooSmall, "{}", m),
        ObjectError::BadDigest(what) => {
            s3_error!(BadDigest, "the body does not match its {}", what)
        }
        ObjectError::Incomplete(m) => s3_error!(IncompleteBody, "{}", m),
        ObjectError::Io(e) => internal(e),
    }
}

/// Runs file-system work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ObjectError> + Send + 'static,
) -> S3Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(internal)?
        .map_err(object_error)
}

fn check_key(key: &str) -> S3Result<()> {
    objects::key_path(key)
        .map(|_| ())
        .map_err(|e| object_error(e.into()))
}

fn etag_of(meta: &ObjectMeta) -> ETag {
    ETag::Strong(meta.etag.clone())
}

fn timestamp(t: std::time::SystemTime) -> Timestamp {
    Timestamp::from(t)
}

fn user_metadata(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.user.is_empty()).then(|| meta.user.clone().into_iter().collect())
}

/// The checksums a client declared for a body (headers, or trailers after it), checked once the
/// body is in.
#[derive(Default)]
struct Declared {
    content_md5: Option<String>,
    checksums: Checksum,
}

impl Declared {
    fn hasher(&self, algorithm: Option<&ChecksumAlgorithm>) -> ChecksumHasher {
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
    fn add_trailers(&mut self, trailers: Option<&s3s::TrailingHeaders>) {
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

    fn verify(&self, md5: &[u8; 16], computed: &Checksum) -> S3Result<()> {
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
async fn receive(
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
struct Upload {
    body: Option<StreamingBlob>,
    content_length: Option<i64>,
    declared: Declared,
    algorithm: Option<ChecksumAlgorithm>,
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

/// Receives an upload's body (see `receive`) and checks it is as long as announced.
async fn receive_upload(
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
struct FileStream {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    remaining: usize,
}

impl FileStream {
    fn new(mut file: std::fs::File, offset: u64, len: u64) -> Self {
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

/// Evaluates GET/HEAD preconditions in the order RFC 9110 gives.
fn check_preconditions(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let etag = etag_of(&info.meta);
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag.value(),
    };
    let modified = time::OffsetDateTime::from(info.modified)
        .replace_nanosecond(0)
        .expect("zero is a valid nanosecond");
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(s3_error!(
                PreconditionFailed,
                "If-Match does not match the ETag"
            ));
        }
    } else if let Some(t) = if_unmodified_since
        && modified > time::OffsetDateTime::from(t.clone())
    {
        return Err(s3_error!(
            PreconditionFailed,
            "modified since If-Unmodified-Since"
        ));
    }
    if let Some(c) = if_none_match {
        if matches(c) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(t) = if_modified_since
        && modified <= time::OffsetDateTime::from(t.clone())
    {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

/// S3's `encoding-type=url`: every byte but unreserved characters and '/' percent-encoded.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes listing fields when the client asked for `encoding-type=url`.
struct Encoder(bool);

impl Encoder {
    fn of(encoding: Option<&EncodingType>) -> S3Result<Encoder> {
        match encoding.map(EncodingType::as_str) {
            None => Ok(Encoder(false)),
            Some(EncodingType::URL) => Ok(Encoder(true)),
            Some(other) => Err(s3_error!(
                InvalidArgument,
                "encoding-type must be url, not {:?}",
                other
            )),
        }
    }

    fn apply(&self, text: String) -> String {
        if self.0 { url_encode(&text) } else { text }
    }

    fn opt(&self, text: Option<String>) -> Option<String> {
        text.map(|t| self.apply(t))
    }

    fn page(&self, mut page: Page) -> Page {
        for object in &mut page.objects {
            object.key = self.opt(object.key.take());
        }
        for prefix in &mut page.prefixes {
            prefix.prefix = self.opt(prefix.prefix.take());
        }
        page
    }
}

/// The bytes a GET or HEAD returns: a `Range`, a `partNumber`, or the whole object, with the
/// `Content-Range` to send for the first two.
fn byte_range(
    info: &ObjectInfo,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<(u64, u64, Option<String>)> {
    let shown = |r: &std::ops::Range<u64>| {
        Some(format!(
            "bytes {}-{}/{}",
            r.start,
            r.end.saturating_sub(1),
            info.size
        ))
    };
    match (range, part_number) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "Range and partNumber cannot be used together"
        )),
        (Some(range), None) => {
            let r = range
                .check(info.size)
                .map_err(|_| s3_error!(InvalidRange))?;
            Ok((r.start, r.end, shown(&r)))
        }
        (None, Some(number)) => {
            let r = info.meta.part_range(number, info.size).ok_or_else(|| {
                let mut e = S3Error::with_message(
                    s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
                    format!("the object has no part {number}"),
                );
                e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
                e
            })?;
            Ok((r.start, r.end, shown(&r)))
        }
        (None, None) => Ok((0, info.size, None)),
    }
}

fn listing_scope(target: &Target, prefix: &str) -> S3Result<()> {
    if target.grant.covers_listing(prefix) {
        Ok(())
    } else {
        Err(s3_error!(
            AccessDenied,
            "the prefix is outside the access key's scope"
        ))
    }
}

fn max_keys(asked: Option<i32>) -> S3Result<usize> {
    match asked {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(MAX_KEYS)),
    }
}

struct Page {
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    next: Option<String>,
}

async fn list_page(
    target: &Target,
    prefix: String,
    delimiter: Option<String>,
    after: Option<String>,
    max_keys: usize,
) -> S3Result<Page> {
    listing_scope(target, &prefix)?;
    let objects = target.objects.clone();
    let scope = target.grant.scope().to_vec();
    // The walk itself skips everything outside the key's folders, so nothing outside them is
    // named: not as a key, a common prefix, nor the marker a page ends on.
    let listing = blocking(move || {
        objects.list(
            &prefix,
            delimiter.as_deref(),
            after.as_deref(),
            max_keys,
            &scope,
        )
    })
    .await?;
    Ok(Page {
        objects: listing
            .objects
            .into_iter()
            .map(|o| Object {
                e_tag: Some(etag_of(&o.meta)),
                key: Some(o.key),
                last_modified: Some(timestamp(o.modified)),
                size: Some(o.size as i64),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect(),
        prefixes: listing
            .common_prefixes
            .into_iter()
            .map(|p| CommonPrefix { prefix: Some(p) })
            .collect(),
        next: listing.next_marker,
    })
}

fn copy_source_key(target: &Target, source: &CopySource) -> S3Result<String> {
    let CopySource::Bucket { bucket, key, .. } = source else {
        return Err(s3_error!(
            NotImplemented,
            "copying from an access point is not supported"
        ));
    };
    if bucket.as_ref() != target.bucket {
        return Err(s3_error!(
            AccessDenied,
            "objects are copied within one bucket only"
        ));
    }
    if !target.grant.covers(key) {
        return Err(s3_error!(
            AccessDenied,
            "the copy source is outside the access key's scope"
        ));
    }
    check_key(key)?;
    Ok(key.to_string())
}

/// The `x-amz-copy-source-if-*` conditions: any that fails is a 412 (never a 304).
struct CopyConditions {
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
    if_modified_since: Option<Timestamp>,
    if_unmodified_since: Option<Timestamp>,
}

impl CopyConditions {
    fn check(&self, source: &ObjectInfo) -> Result<(), ObjectError> {
        let outcome = check_preconditions(
            source,
            self.if_match.as_ref(),
            self.if_none_match.as_ref(),
            self.if_modified_since.as_ref(),
            self.if_unmodified_since.as_ref(),
        );
        match outcome {
            Ok(()) => Ok(()),
            Err(_) => Err(ObjectError::PreconditionFailed(
                "a copy-source condition does not hold".into(),
            )),
        }
    }
}

/// How a write of `key` may treat an object already there: as the client asked, but never
/// replacing one where the key may not delete (a branch, tag or commit may still read it) nor any
/// metadata file (what every ref reads first).
fn overwrite_mode(
    target: &Target,
    key: &str,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Overwrite> {
    match if_none_match {
        Some(ETagCondition::Any) => Ok(Overwrite::IfAbsent),
        Some(_) => Err(s3_error!(
            NotImplemented,
            "If-None-Match on writes takes only '*'"
        )),
        None if !target.grant.access.may_delete()
            || crate::storage::signing::is_metadata_file(key) =>
        {
            Ok(Overwrite::Never)
        }
        None => Ok(Overwrite::Allow),
    }
}

const METADATA_DELETE_REFUSED: &str = "metadata files are not deleted with a table's key (a \
     delete and a new write would replace one); the catalog removes those no version needs";

/// Whether the grant may delete `key`: a table's key never deletes a metadata file (an admin key
/// of the whole warehouse may).
fn may_delete_key(grant: &crate::service::access_keys::KeyGrant, key: &str) -> bool {
    grant.prefixes.is_none() || !crate::storage::signing::is_metadata_file(key)
}

/// `If-Match` asks to replace an object, which a key that may not replace it cannot do.
fn check_may_replace(target: &Target, key: &str, if_match: Option<&ETagCondition>) -> S3Result<()> {
    if if_match.is_some()
        && (!target.grant.access.may_delete() || crate::storage::signing::is_metadata_file(key))
    {
        return Err(s3_error!(
            AccessDenied,
            "If-Match replaces an object, and this key may not replace it"
        ));
    }
    Ok(())
}

async fn check_if_match(
    objects: &ObjectStore,
    key: &str,
    if_match: Option<&ETagCondition>,
) -> S3Result<()> {
    let Some(condition) = if_match else {
        return Ok(());
    };
    let store = objects.clone();
    let k = key.to_string();
    let current = tokio::task::spawn_blocking(move || store.head(&k))
        .await
        .map_err(internal)?;
    let ok = match (current, condition) {
        (Ok(_), ETagCondition::Any) => true,
        (Ok(info), ETagCondition::ETag(e)) => e.value() == info.meta.etag,
        (Err(ObjectError::NoSuchKey), _) => false,
        (Err(e), _) => return Err(object_error(e)),
    };
    if ok {
        Ok(())
    } else {
        Err(s3_error!(
            PreconditionFailed,
            "If-Match does not match the ETag"
        ))
    }
}

#[async_trait::async_trait]
impl S3 for FloeS3 {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let target = target(&req)?;
        let created = std::fs::metadata(target.objects.root())
            .and_then(|m| m.created().or_else(|_| m.modified()))
            .ok()
            .map(timestamp);
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(vec![Bucket {
                name: Some(target.bucket),
                creation_date: created,
                bucket_region: Some(self.region.clone()),
            }]),
            ..Default::default()
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        target(&req)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        target(&req)?;
        // S3 answers an empty constraint for us-east-1.
        let constraint = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: constraint,
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let target = target(&req)?;
        let input = req.input;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let token_after = match &input.continuation_token {
            Some(token) => Some(
                BASE64
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(InvalidArgument, "the continuation token is invalid")
                    })?,
            ),
            None => None,
        };
        let after = token_after.or_else(|| input.start_after.clone());
        let encoder = Encoder::of(input.encoding_type.as_ref())?;
        let page = list_page(&target, prefix, input.delimiter.clone(), after, max).await?;
        let page = encoder.page(page);
        let key_count = (page.objects.len() + page.prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(target.bucket),
            prefix: encoder.opt(input.prefix),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.next.is_some()),
            next_continuation_token: page.next.map(|k| BASE64.encode(k)),
            contents: Some(page.objects),
            common_prefixes: Some(page.prefixes),
            delimiter: encoder.opt(input.delimiter),
            encoding_type: input.encoding_type,
            start_after: encoder.opt(input.start_after),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let target = target(&req)?;
        let input = req.input;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let encoder = Encoder::of(input.encoding_type.as_ref())?;
        let page = list_page(
            &target,
            prefix,
            input.delimiter.clone(),
            input.marker.clone(),
            max,
        )
        .await?;
        let page = encoder.page(page);
        let truncated = page.next.is_some();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(target.bucket),
            prefix: encoder.opt(input.prefix),
            marker: encoder.opt(input.marker),
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            // Sent even without a delimiter: clients may use it instead of the last key.
            next_marker: encoder.opt(page.next),
            contents: Some(page.objects),
            common_prefixes: Some(page.prefixes),
            delimiter: encoder.opt(input.delimiter),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let objects = target.objects.clone();
        let key = input.key.clone();
        let info = blocking(move || objects.head(&key)).await?;
        check_preconditions(
            &info,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let (start, end, content_range) =
            byte_range(&info, input.range.as_ref(), input.part_number)?;
        let length = end - start;
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(length as i64),
            content_range,
            content_type: info.meta.content_type.clone(),
            e_tag: Some(etag_of(&info.meta)),
            last_modified: Some(timestamp(info.modified)),
            metadata: user_metadata(&info.meta),
            parts_count: info.meta.parts.map(|p| p as i32),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let objects = target.objects.clone();
        let key = input.key.clone();
        // Small objects are read whole in the same trip to the blocking pool as the lookup.
        let (file, info, small) = blocking(move || {
            let (mut file, info) = objects.open(&key)?;
            let small = if info.size <= SMALL_OBJECT {
                let mut bytes = Vec::with_capacity(info.size as usize);
                std::io::Read::read_to_end(&mut file, &mut bytes)?;
                Some(Bytes::from(bytes))
            } else {
                None
            };
            Ok((file, info, small))
        })
        .await?;
        check_preconditions(
            &info,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )?;
        let (start, end, content_range) =
            byte_range(&info, input.range.as_ref(), input.part_number)?;
        let length = end - start;
        let body = match small {
            Some(bytes) if bytes.len() as u64 == info.size => {
                StreamingBlob::from(s3s::Body::from(bytes.slice(start as usize..end as usize)))
            }
            _ => StreamingBlob::new(WrapErr(FileStream::new(file, start, length))),
        };
        let output = GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            body: Some(body),
            content_length: Some(length as i64),
            content_range: content_range.clone(),
            content_type: input
                .response_content_type
                .or(info.meta.content_type.clone()),
            e_tag: Some(etag_of(&info.meta)),
            last_modified: Some(timestamp(info.modified)),
            metadata: user_metadata(&info.meta),
            parts_count: info.meta.parts.map(|p| p as i32),
            ..Default::default()
        };
        if content_range.is_some() {
            Ok(S3Response::with_status(
                output,
                http::StatusCode::PARTIAL_CONTENT,
            ))
        } else {
            Ok(S3Response::new(output))
        }
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let target = target(&req)?;
        let trailers = req.trailing_headers.clone();
        let mut input = req.input;
        check_key(&input.key)?;
        let overwrite = overwrite_mode(&target, &input.key, input.if_none_match.as_ref())?;
        check_may_replace(&target, &input.key, input.if_match.as_ref())?;
        check_if_match(&target.objects, &input.key, input.if_match.as_ref()).await?;
        let (pending, computed) =
            receive_upload(&target.objects, upload_of!(input), trailers.as_ref()).await?;
        let meta = ObjectMeta {
            etag: String::new(),
            content_type: input.content_type,
            user: input.metadata.unwrap_or_default().into_iter().collect(),
            parts: None,
            part_sizes: Vec::new(),
        };
        let objects = target.objects.clone();
        let key = input.key;
        let info = blocking(move || objects.commit(pending, &key, meta, overwrite)).await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag_of(&info.meta)),
            size: Some(info.size as i64),
            checksum_crc32: computed.checksum_crc32,
            checksum_crc32c: computed.checksum_crc32c,
            checksum_sha1: computed.checksum_sha1,
            checksum_sha256: computed.checksum_sha256,
            checksum_crc64nvme: computed.checksum_crc64nvme,
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let source = copy_source_key(&target, &input.copy_source)?;
        let overwrite = overwrite_mode(&target, &input.key, None)?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let objects = target.objects.clone();
        let key = input.key.clone();
        let content_type = input.content_type.clone();
        let metadata = input.metadata.clone();
        let conditions = CopyConditions {
            if_match: input.copy_source_if_match.clone(),
            if_none_match: input.copy_source_if_none_match.clone(),
            if_modified_since: input.copy_source_if_modified_since.clone(),
            if_unmodified_since: input.copy_source_if_unmodified_since.clone(),
        };
        let info = blocking(move || {
            let (mut file, source_info) = objects.open(&source)?;
            conditions.check(&source_info)?;
            let mut pending = objects.begin()?;
            objects::copy_range(&mut file, 0, source_info.size, &mut pending)?;
            let mut meta = if replace {
                ObjectMeta {
                    content_type,
                    user: metadata.unwrap_or_default().into_iter().collect(),
                    ..ObjectMeta::default()
                }
            } else {
                ObjectMeta {
                    etag: String::new(),
                    ..source_info.meta
                }
            };
            // A copy is one whole object: its ETag is its MD5 (even when the source was multipart).
            meta.etag = String::new();
            meta.parts = None;
            meta.part_sizes = Vec::new();
            objects.commit(pending, &key, meta, overwrite)
        })
        .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag_of(&info.meta)),
                last_modified: Some(timestamp(info.modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        if !may_delete_key(&target.grant, &input.key) {
            return Err(s3_error!(AccessDenied, "{}", METADATA_DELETE_REFUSED));
        }
        check_if_match(&target.objects, &input.key, input.if_match.as_ref()).await?;
        let objects = target.objects.clone();
        let key = input.key;
        blocking(move || objects.delete(&key)).await?;
        Ok(S3Response::with_status(
            DeleteObjectOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let target = target(&req)?;
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "at most 1000 keys are deleted per request"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let grant = target.grant.clone();
        let objects = target.objects.clone();
        let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
        let (deleted, errors) = blocking(move || {
            let mut deleted = Vec::new();
            let mut errors = Vec::new();
            for key in keys {
                // Each key is authorized on its own: one outside the scope fails alone.
                let outcome = if !grant.covers(&key) {
                    Err((
                        "AccessDenied",
                        "the key is outside the access key's scope".to_string(),
                    ))
                } else if !may_delete_key(&grant, &key) {
                    Err(("AccessDenied", METADATA_DELETE_REFUSED.to_string()))
                } else {
                    match objects.delete(&key) {
                        Ok(()) => Ok(()),
                        Err(ObjectError::Key(e)) => Err(("InvalidArgument", e.to_string())),
                        Err(e) => Err(("InternalError", e.to_string())),
                    }
                };
                match outcome {
                    Ok(()) => deleted.push(DeletedObject {
                        key: Some(key),
                        ..Default::default()
                    }),
                    Err((code, message)) => errors.push(Error {
                        code: Some(code.into()),
                        key: Some(key),
                        message: Some(message),
                        version_id: None,
                    }),
                }
            }
            Ok((deleted, errors))
        })
        .await?;
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!quiet).then_some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let info = UploadInfo {
            key: input.key.clone(),
            initiated: crate::model::now(),
            content_type: input.content_type,
            user: input.metadata.unwrap_or_default().into_iter().collect(),
        };
        let objects = target.objects.clone();
        let upload_id = blocking(move || objects.create_upload(&info)).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(target.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let target = target(&req)?;
        let trailers = req.trailing_headers.clone();
        let mut input = req.input;
        check_key(&input.key)?;
        {
            let objects = target.objects.clone();
            let (key, id) = (input.key.clone(), input.upload_id.clone());
            blocking(move || objects.upload(&key, &id)).await?;
        }
        let (pending, computed) =
            receive_upload(&target.objects, upload_of!(input), trailers.as_ref()).await?;
        let objects = target.objects.clone();
        let (key, id, number) = (input.key, input.upload_id, input.part_number);
        let part = blocking(move || objects.commit_part(pending, &key, &id, number)).await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            checksum_crc32: computed.checksum_crc32,
            checksum_crc32c: computed.checksum_crc32c,
            checksum_sha1: computed.checksum_sha1,
            checksum_sha256: computed.checksum_sha256,
            checksum_crc64nvme: computed.checksum_crc64nvme,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let source = copy_source_key(&target, &input.copy_source)?;
        let range = match &input.copy_source_range {
            None => None,
            Some(text) => {
                let parsed = text
                    .strip_prefix("bytes=")
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                    .filter(|(a, b)| a <= b)
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "x-amz-copy-source-range must be bytes=first-last"
                        )
                    })?;
                Some(parsed)
            }
        };
        let objects = target.objects.clone();
        let (key, id, number) = (input.key, input.upload_id, input.part_number);
        let conditions = CopyConditions {
            if_match: input.copy_source_if_match,
            if_none_match: input.copy_source_if_none_match,
            if_modified_since: input.copy_source_if_modified_since,
            if_unmodified_since: input.copy_source_if_unmodified_since,
        };
        let part = blocking(move || {
            objects.upload(&key, &id)?;
            let (mut file, info) = objects.open(&source)?;
            conditions.check(&info)?;
            let (offset, len) = match range {
                None => (0, info.size),
                Some((first, last)) => {
                    if last >= info.size {
                        return Err(ObjectError::InvalidPart(
                            "the copy range is outside the source object".into(),
                        ));
                    }
                    (first, last - first + 1)
                }
            };
            let mut pending = objects.begin()?;
            objects::copy_range(&mut file, offset, len, &mut pending)?;
            objects.commit_part(pending, &key, &id, number)
        })
        .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(timestamp(part.modified)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let overwrite = overwrite_mode(&target, &input.key, input.if_none_match.as_ref())?;
        check_may_replace(&target, &input.key, input.if_match.as_ref())?;
        check_if_match(&target.objects, &input.key, input.if_match.as_ref()).await?;
        let parts: Vec<(i32, String)> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let number = p
                    .part_number
                    .ok_or_else(|| s3_error!(InvalidPart, "a part has no PartNumber"))?;
                let etag = p
                    .e_tag
                    .map(ETag::into_value)
                    .ok_or_else(|| s3_error!(InvalidPart, "a part has no ETag"))?;
                Ok((number, etag))
            })
            .collect::<S3Result<_>>()?;
        let objects = target.objects.clone();
        let (key, id) = (input.key.clone(), input.upload_id);
        let info = blocking(move || objects.complete_upload(&key, &id, &parts, overwrite)).await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(target.bucket),
            key: Some(input.key),
            e_tag: Some(etag_of(&info.meta)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let objects = target.objects.clone();
        blocking(move || objects.abort_upload(&input.key, &input.upload_id)).await?;
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let target = target(&req)?;
        let input = req.input;
        check_key(&input.key)?;
        let max = input.max_parts.map_or(1000, |n| n.clamp(0, 1000) as usize);
        let marker = input.part_number_marker.unwrap_or(0);
        let objects = target.objects.clone();
        let (key, id) = (input.key.clone(), input.upload_id.clone());
        let parts = blocking(move || objects.list_parts(&key, &id)).await?;
        let mut page: Vec<Part> = Vec::new();
        let mut truncated = false;
        for p in parts.into_iter().filter(|p| p.number > marker) {
            if page.len() == max {
                truncated = true;
                break;
            }
            page.push(Part {
                e_tag: Some(ETag::Strong(p.etag)),
                last_modified: Some(timestamp(p.modified)),
                part_number: Some(p.number),
                size: Some(p.size as i64),
                ..Default::default()
            });
        }
        let next = page.last().and_then(|p| p.part_number);
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(target.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            is_truncated: Some(truncated),
            parts: Some(page),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let target = target(&req)?;
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        listing_scope(&target, &prefix)?;
        let max = input
            .max_uploads
            .map_or(1000, |n| n.clamp(0, 1000) as usize);
        let objects = target.objects.clone();
        let uploads = blocking(move || objects.list_uploads()).await?;
        let encoder = Encoder::of(input.encoding_type.as_ref())?;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone().unwrap_or_default();
        let mut page = Vec::new();
        let mut prefixes: Vec<CommonPrefix> = Vec::new();
        let mut truncated = false;
        for (id, info) in uploads {
            if !info.key.starts_with(&prefix) || !target.grant.covers(&info.key) {
                continue;
            }
            // With a key marker alone, uploads of keys after it; with an upload id marker too,
            // also the marker key's uploads after that id.
            if !key_marker.is_empty() {
                let skip = if id_marker.is_empty() {
                    info.key <= key_marker
                } else {
                    (info.key.as_str(), id.as_str()) <= (key_marker.as_str(), id_marker.as_str())
                };
                if skip {
                    continue;
                }
            }
            if let Some(d) = input.delimiter.as_deref().filter(|d| !d.is_empty())
                && let Some(at) = info.key[prefix.len()..].find(d)
            {
                let group = format!(
                    "{}{}",
                    prefix,
                    &info.key[prefix.len()..prefix.len() + at + d.len()]
                );
                if prefixes.last().and_then(|p| p.prefix.as_deref()) != Some(group.as_str()) {
                    prefixes.push(CommonPrefix {
                        prefix: Some(group),
                    });
                }
                continue;
            }
            if page.len() == max {
                truncated = true;
                break;
            }
            page.push(MultipartUpload {
                initiated: Some(Timestamp::from(std::time::SystemTime::from(info.initiated))),
                key: Some(info.key),
                upload_id: Some(id),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            });
        }
        let (next_key, next_id) = match (truncated, page.last()) {
            (true, Some(last)) => (last.key.clone(), last.upload_id.clone()),
            _ => (None, None),
        };
        for upload in &mut page {
            upload.key = encoder.opt(upload.key.take());
        }
        for prefix in &mut prefixes {
            prefix.prefix = encoder.opt(prefix.prefix.take());
        }
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(target.bucket),
            prefix: encoder.opt(input.prefix),
            delimiter: encoder.opt(input.delimiter),
            key_marker: encoder.opt(input.key_marker),
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: encoder.opt(next_key),
            next_upload_id_marker: next_id,
            uploads: Some(page),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

/// Adapts the file stream's `io::Error` to the error type `StreamingBlob::new` takes.
struct WrapErr(FileStream);

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
