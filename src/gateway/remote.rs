//! The gateway in front of an S3 bucket (`"s3-gateway": true` on an S3 storage profile): each
//! operation, once the access check and the same key, scope and overwrite checks as for local
//! warehouses have passed, is carried out on the store with the warehouse's own credential. Keys
//! map onto the warehouse's key prefix (`k` is `<prefix>/k` in the store's bucket). Bodies stream
//! through in both directions (never held whole); ETags, upload ids and part ETags are the
//! store's. Nothing is kept on the gateway's disk, so any number of instances serve the same
//! buckets. The store's errors reach the client as S3 errors: its own code when it answered, 503
//! `SlowDown` when it did not answer in time, 500 `InternalError` otherwise (the store named in the
//! log).

use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime as AwsDateTime, DateTimeFormat};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use futures::TryStreamExt;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Response, S3Result, s3_error};

use super::Target;
use super::body::Declared;
use super::checks::*;
use crate::storage::md5::Md5;
use crate::storage::objects::Overwrite;
use crate::storage::s3::S3Bucket;

/// The store's answer as the client's S3 error.
fn store_error<E>(what: &str, bucket: &S3Bucket, err: SdkError<E, HttpResponse>) -> S3Error
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = match (e.code(), status) {
                (_, Some(304)) => S3ErrorCode::NotModified,
                (_, Some(412)) => S3ErrorCode::PreconditionFailed,
                (Some(code), _) => {
                    S3ErrorCode::from_bytes(code.as_bytes()).unwrap_or(S3ErrorCode::InternalError)
                }
                (None, Some(404)) => S3ErrorCode::NoSuchKey,
                (None, Some(416)) => S3ErrorCode::InvalidRange,
                (None, Some(403)) => S3ErrorCode::AccessDenied,
                _ => S3ErrorCode::InternalError,
            };
            if code == S3ErrorCode::InternalError || code == S3ErrorCode::AccessDenied {
                // The store refused Floe's own credential, or failed: the operator's problem.
                tracing::warn!(bucket = %bucket.bucket, status, error = ?err,
                    "the store behind the gateway failed {what}");
            }
            let mut out = S3Error::with_message(
                code,
                e.message()
                    .map(|m| format!("the store answered: {m}"))
                    .unwrap_or_else(|| format!("the store failed {what}")),
            );
            if let Some(status) = status.and_then(|s| http::StatusCode::from_u16(s).ok()) {
                out.set_status_code(status);
            }
            out
        }
        SdkError::TimeoutError(_) => {
            tracing::warn!(bucket = %bucket.bucket, error = ?err,
                "the store behind the gateway did not answer in time ({what})");
            s3_error!(SlowDown, "the store did not answer in time; retry")
        }
        _ => {
            tracing::warn!(bucket = %bucket.bucket, error = ?err,
                "the store behind the gateway could not be reached ({what})");
            s3_error!(InternalError, "the store could not be reached")
        }
    }
}

fn condition(c: &ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".into(),
        ETagCondition::ETag(e) => format!("\"{}\"", e.value()),
    }
}

fn to_aws_time(t: &Timestamp) -> S3Result<AwsDateTime> {
    let mut text = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut text)
        .map_err(|_| s3_error!(InvalidArgument, "an invalid date"))?;
    AwsDateTime::from_str(&String::from_utf8_lossy(&text), DateTimeFormat::HttpDate)
        .map_err(|_| s3_error!(InvalidArgument, "an invalid date"))
}

fn from_aws_time(t: Option<&AwsDateTime>) -> Option<Timestamp> {
    t.and_then(|t| std::time::SystemTime::try_from(*t).ok())
        .map(Timestamp::from)
}

fn etag(text: Option<&str>) -> Option<ETag> {
    text.map(|t| ETag::Strong(t.trim_matches('"').to_string()))
}

/// A store's body as the client's: chunks as they arrive.
fn body_of(stream: ByteStream) -> StreamingBlob {
    let body = stream.into_inner();
    StreamingBlob::wrap(http_body_util::BodyDataStream::new(body).map_err(std::io::Error::other))
}

/// Why a client's body failed while it streamed to the store: its own error for the client.
type BodyFailure = Arc<Mutex<Option<S3Error>>>;

/// The client's own failure when its body broke off or did not match its trailing checksum (not
/// the store's), else the store's error.
fn upload_error(failed: &BodyFailure, store: S3Error) -> S3Error {
    failed
        .lock()
        .expect("body failure lock")
        .take()
        .unwrap_or(store)
}

/// Checksums a client sends after its body (`aws-chunked` trailers), checked before the store
/// gets the body's last chunk: a body that does not match never completes at the store.
pub(super) struct Trailing {
    pub trailers: s3s::TrailingHeaders,
    pub algorithm: Option<ChecksumAlgorithm>,
}

fn fail(failed: &BodyFailure, e: S3Error) -> std::io::Error {
    let text = e.message().unwrap_or("the body failed").to_string();
    *failed.lock().expect("body failure lock") = Some(e);
    std::io::Error::other(text)
}

/// The body, with the last chunk held back until the trailing checksums are checked.
fn checked_against_trailers(
    blob: StreamingBlob,
    trailing: Trailing,
    failed: BodyFailure,
) -> StreamingBlob {
    let declared = Declared::default();
    let hasher = declared.hasher(trailing.algorithm.as_ref());
    let state = (
        blob,
        None::<bytes::Bytes>,
        hasher,
        declared,
        trailing,
        failed,
        false,
    );
    StreamingBlob::wrap(futures::stream::unfold(
        state,
        |(mut blob, mut held, mut hasher, mut declared, trailing, failed, done)| async move {
            if done {
                return None;
            }
            loop {
                match futures::StreamExt::next(&mut blob).await {
                    Some(Ok(chunk)) => {
                        hasher.update(&chunk);
                        if let Some(previous) = held.replace(chunk) {
                            let state = (blob, held, hasher, declared, trailing, failed, false);
                            return Some((Ok(previous), state));
                        }
                    }
                    Some(Err(e)) => {
                        let e = fail(
                            &failed,
                            s3_error!(IncompleteBody, "reading the request body failed: {}", e),
                        );
                        return Some((
                            Err(e),
                            (blob, None, hasher, declared, trailing, failed, true),
                        ));
                    }
                    None => {
                        declared.add_trailers(Some(&trailing.trailers));
                        let computed = std::mem::take(&mut hasher).finalize();
                        // Content-MD5 (a header) goes to the store, which checks it.
                        let outcome = match declared.verify(&[0; 16], &computed) {
                            Ok(()) => held.take().map(Ok),
                            Err(e) => Some(Err(fail(&failed, e))),
                        };
                        let state = (blob, None, hasher, declared, trailing, failed, true);
                        return outcome.map(|item| (item, state));
                    }
                }
            }
        },
    ))
}

/// The most of a body of unannounced length (`Transfer-Encoding: chunked` with no
/// `x-amz-decoded-content-length`) the gateway holds to learn its length, which the store needs.
/// S3 itself refuses such bodies (411); Arrow's S3 client sends small ones.
const MAX_UNSIZED: usize = 16 << 20;

/// A client's body as the store's, with its length: as announced (streamed through), or, when
/// the client did not say, read first (up to `MAX_UNSIZED`).
async fn upload_body(
    body: Option<StreamingBlob>,
    announced: Option<i64>,
    md5: Option<Arc<Mutex<Md5>>>,
    trailing: Option<Trailing>,
    failed: &BodyFailure,
) -> S3Result<(ByteStream, i64)> {
    let Some(blob) = body else {
        return Ok((ByteStream::from_static(b""), 0));
    };
    let known = announced.or_else(|| {
        s3s::stream::ByteStream::remaining_length(&blob)
            .exact()
            .and_then(|n| i64::try_from(n).ok())
    });
    let blob = match trailing {
        Some(trailing) => checked_against_trailers(blob, trailing, failed.clone()),
        None => blob,
    };
    // The MD5 of what passes, when asked (to recognize a retried write of the same bytes), and
    // why the client's body failed, if it does (a bad chunk signature, a cut connection).
    let failed = failed.clone();
    let mut blob = StreamingBlob::wrap(
        blob.inspect_ok(move |chunk| {
            if let Some(md5) = &md5 {
                md5.lock().expect("md5 lock").update(chunk);
            }
        })
        .map_err(move |e| {
            let mut slot = failed.lock().expect("body failure lock");
            if slot.is_none() {
                *slot = Some(s3_error!(
                    IncompleteBody,
                    "reading the request body failed: {}",
                    e
                ));
            }
            std::io::Error::other(e)
        }),
    );
    if let Some(length) = known {
        let stream = ByteStream::from_body_1_x(http_body_util::StreamBody::new(
            blob.map_ok(hyper::body::Frame::data),
        ));
        return Ok((stream, length));
    }
    let mut held = bytes::BytesMut::new();
    while let Some(chunk) = futures::StreamExt::next(&mut blob).await {
        let chunk =
            chunk.map_err(|e| s3_error!(IncompleteBody, "reading the body failed: {}", e))?;
        if held.len() + chunk.len() > MAX_UNSIZED {
            return Err(s3_error!(
                MissingContentLength,
                "a body over 16 MiB needs its length announced (Content-Length or \
                 x-amz-decoded-content-length)"
            ));
        }
        held.extend_from_slice(&chunk);
    }
    let length = held.len() as i64;
    Ok((ByteStream::from(held.freeze()), length))
}

/// `If-None-Match: *` for writes that may not replace an object (the store refuses with 412 if
/// one is there, which is then the refusal the client would get from a local warehouse).
fn if_absent(overwrite: Overwrite) -> Option<String> {
    (overwrite != Overwrite::Allow).then(|| "*".to_string())
}

fn refused_replace(e: S3Error, overwrite: Overwrite) -> S3Error {
    if overwrite == Overwrite::Never && *e.code() == S3ErrorCode::PreconditionFailed {
        s3_error!(
            AccessDenied,
            "the object exists and this key may not replace it (metadata files are never \
             replaced; other files not while the warehouse has branches or tags, which may still \
             read them)"
        )
    } else {
        e
    }
}

/// `If-Match` on a write or delete, checked against the store's current ETag.
async fn check_if_match(
    bucket: &S3Bucket,
    key: &str,
    if_match: Option<&ETagCondition>,
) -> S3Result<()> {
    let Some(condition) = if_match else {
        return Ok(());
    };
    let current = bucket
        .client
        .head_object()
        .bucket(&bucket.bucket)
        .key(bucket.key(key))
        .send()
        .await;
    let ok = match (current, condition) {
        (Ok(_), ETagCondition::Any) => true,
        (Ok(head), ETagCondition::ETag(e)) => {
            head.e_tag().map(|t| t.trim_matches('"')) == Some(e.value())
        }
        (Err(e), _) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => false,
        (Err(e), _) => return Err(store_error("looking an object up", bucket, e)),
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

pub(super) async fn head_object(
    bucket: Arc<S3Bucket>,
    input: HeadObjectInput,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let mut call = bucket
        .client
        .head_object()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .set_if_match(input.if_match.as_ref().map(condition))
        .set_if_none_match(input.if_none_match.as_ref().map(condition))
        .set_range(input.range.as_ref().map(Range::to_header_string))
        .set_part_number(input.part_number);
    if let Some(t) = &input.if_modified_since {
        call = call.if_modified_since(to_aws_time(t)?);
    }
    if let Some(t) = &input.if_unmodified_since {
        call = call.if_unmodified_since(to_aws_time(t)?);
    }
    let out = call
        .send()
        .await
        .map_err(|e| store_error("looking an object up", &bucket, e))?;
    Ok(S3Response::new(HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: out.content_length,
        content_range: out.content_range,
        content_type: out.content_type,
        e_tag: etag(out.e_tag.as_deref()),
        last_modified: from_aws_time(out.last_modified.as_ref()),
        metadata: out.metadata,
        parts_count: out.parts_count,
        ..Default::default()
    }))
}

pub(super) async fn get_object(
    bucket: Arc<S3Bucket>,
    input: GetObjectInput,
) -> S3Result<S3Response<GetObjectOutput>> {
    let mut call = bucket
        .client
        .get_object()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .set_if_match(input.if_match.as_ref().map(condition))
        .set_if_none_match(input.if_none_match.as_ref().map(condition))
        .set_range(input.range.as_ref().map(Range::to_header_string))
        .set_part_number(input.part_number);
    if let Some(t) = &input.if_modified_since {
        call = call.if_modified_since(to_aws_time(t)?);
    }
    if let Some(t) = &input.if_unmodified_since {
        call = call.if_unmodified_since(to_aws_time(t)?);
    }
    let out = call
        .send()
        .await
        .map_err(|e| store_error("reading an object", &bucket, e))?;
    let partial = out.content_range.is_some();
    let output = GetObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: out.content_length,
        content_range: out.content_range,
        content_type: input.response_content_type.or(out.content_type),
        e_tag: etag(out.e_tag.as_deref()),
        last_modified: from_aws_time(out.last_modified.as_ref()),
        metadata: out.metadata,
        parts_count: out.parts_count,
        body: Some(body_of(out.body)),
        ..Default::default()
    };
    Ok(if partial {
        S3Response::with_status(output, http::StatusCode::PARTIAL_CONTENT)
    } else {
        S3Response::new(output)
    })
}

pub(super) async fn put_object(
    target: &Target,
    bucket: Arc<S3Bucket>,
    mut input: PutObjectInput,
    trailers: Option<s3s::TrailingHeaders>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let overwrite = overwrite_mode(target, &input.key, input.if_none_match.as_ref())?;
    check_may_replace(target, &input.key, input.if_match.as_ref())?;
    check_if_match(&bucket, &input.key, input.if_match.as_ref()).await?;
    let md5 = (overwrite == Overwrite::Never).then(|| Arc::new(Mutex::new(Md5::new())));
    let failed = BodyFailure::default();
    let trailing = trailers.map(|trailers| Trailing {
        trailers,
        algorithm: input.checksum_algorithm.clone(),
    });
    let (body, length) = upload_body(
        input.body.take(),
        input.content_length,
        md5.clone(),
        trailing,
        &failed,
    )
    .await?;
    let result = bucket
        .client
        .put_object()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .content_length(length)
        .body(body)
        .set_content_type(input.content_type.take())
        .set_content_md5(input.content_md5.take())
        .set_checksum_crc32(input.checksum_crc32.take())
        .set_checksum_crc32_c(input.checksum_crc32c.take())
        .set_checksum_sha1(input.checksum_sha1.take())
        .set_checksum_sha256(input.checksum_sha256.take())
        .set_metadata(input.metadata.take())
        .set_if_none_match(if_absent(overwrite))
        .customize()
        .disable_payload_signing()
        .send()
        .await;
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            let refused = upload_error(&failed, store_error("writing an object", &bucket, e));
            // A write that may not replace the object met one: the very same bytes (a retried
            // write) are accepted as written, as on local warehouses.
            let sent = md5.map(|m| hex(&m.lock().expect("md5 lock").clone().finalize()));
            if let Some(sent) = sent
                && *refused.code() == S3ErrorCode::PreconditionFailed
                && current_etag(&bucket, &input.key).await?.as_deref() == Some(sent.as_str())
            {
                return Ok(S3Response::new(PutObjectOutput {
                    e_tag: Some(ETag::Strong(sent)),
                    size: Some(length),
                    ..Default::default()
                }));
            }
            return Err(refused_replace(refused, overwrite));
        }
    };
    Ok(S3Response::new(PutObjectOutput {
        e_tag: etag(out.e_tag.as_deref()),
        size: Some(length),
        checksum_crc32: out.checksum_crc32,
        checksum_crc32c: out.checksum_crc32_c,
        checksum_sha1: out.checksum_sha1,
        checksum_sha256: out.checksum_sha256,
        ..Default::default()
    }))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The store's ETag of `key` (unquoted), or None when there is no such object.
async fn current_etag(bucket: &S3Bucket, key: &str) -> S3Result<Option<String>> {
    match bucket
        .client
        .head_object()
        .bucket(&bucket.bucket)
        .key(bucket.key(key))
        .send()
        .await
    {
        Ok(head) => Ok(head.e_tag().map(|t| t.trim_matches('"').to_string())),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
        Err(e) => Err(store_error("looking an object up", bucket, e)),
    }
}

pub(super) async fn copy_object(
    target: &Target,
    bucket: Arc<S3Bucket>,
    input: CopyObjectInput,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let source = copy_source_key(target, &input.copy_source)?;
    let overwrite = overwrite_mode(target, &input.key, None)?;
    let mut call = bucket
        .client
        .copy_object()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .copy_source(format!(
            "{}/{}",
            bucket.bucket,
            url_encode(&bucket.key(&source))
        ))
        .set_copy_source_if_match(input.copy_source_if_match.as_ref().map(condition))
        .set_copy_source_if_none_match(input.copy_source_if_none_match.as_ref().map(condition))
        .set_if_none_match(if_absent(overwrite));
    if let Some(t) = &input.copy_source_if_modified_since {
        call = call.copy_source_if_modified_since(to_aws_time(t)?);
    }
    if let Some(t) = &input.copy_source_if_unmodified_since {
        call = call.copy_source_if_unmodified_since(to_aws_time(t)?);
    }
    if input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE)
    {
        call = call
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .set_metadata(input.metadata)
            .set_content_type(input.content_type);
    }
    let out = call
        .send()
        .await
        .map_err(|e| refused_replace(store_error("copying an object", &bucket, e), overwrite))?;
    let result = out.copy_object_result;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: etag(result.as_ref().and_then(|r| r.e_tag())),
            last_modified: from_aws_time(result.as_ref().and_then(|r| r.last_modified())),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub(super) async fn delete_object(
    target: &Target,
    bucket: Arc<S3Bucket>,
    input: DeleteObjectInput,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    if !may_delete_key(&target.grant, &input.key) {
        return Err(s3_error!(AccessDenied, "{}", METADATA_DELETE_REFUSED));
    }
    check_if_match(&bucket, &input.key, input.if_match.as_ref()).await?;
    bucket
        .client
        .delete_object()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .send()
        .await
        .map_err(|e| store_error("deleting an object", &bucket, e))?;
    Ok(S3Response::with_status(
        DeleteObjectOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn delete_objects(
    target: &Target,
    bucket: Arc<S3Bucket>,
    input: DeleteObjectsInput,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut errors = Vec::new();
    let mut allowed = Vec::new();
    for object in input.delete.objects {
        let key = object.key;
        // Each key is authorized on its own: one outside the scope fails alone.
        let refusal = if !target.grant.covers(&key) {
            Some("the key is outside the access key's scope".to_string())
        } else if !may_delete_key(&target.grant, &key) {
            Some(METADATA_DELETE_REFUSED.to_string())
        } else if let Err(e) = crate::storage::objects::key_path(&key) {
            errors.push(Error {
                code: Some("InvalidArgument".into()),
                key: Some(key),
                message: Some(e.to_string()),
                version_id: None,
            });
            continue;
        } else {
            None
        };
        match refusal {
            Some(message) => errors.push(Error {
                code: Some("AccessDenied".into()),
                key: Some(key),
                message: Some(message),
                version_id: None,
            }),
            None => allowed.push(key),
        }
    }
    let mut deleted = Vec::new();
    if !allowed.is_empty() {
        let identifiers = allowed
            .iter()
            .map(|k| ObjectIdentifier::builder().key(bucket.key(k)).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| s3_error!(InternalError, "building a delete: {}", e))?;
        let delete = Delete::builder()
            .set_objects(Some(identifiers))
            .quiet(false)
            .build()
            .map_err(|e| s3_error!(InternalError, "building a delete: {}", e))?;
        let out = bucket
            .client
            .delete_objects()
            .bucket(&bucket.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| store_error("deleting objects", &bucket, e))?;
        for d in out.deleted() {
            if let Some(key) = d.key().and_then(|k| bucket.relative(k)) {
                deleted.push(DeletedObject {
                    key: Some(key.to_string()),
                    ..Default::default()
                });
            }
        }
        for e in out.errors() {
            errors.push(Error {
                code: e.code().map(str::to_string),
                key: e.key().and_then(|k| bucket.relative(k)).map(str::to_string),
                message: e.message().map(str::to_string),
                version_id: None,
            });
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: (!quiet).then_some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}

/// The key's folder a listing of `prefix` must be held to, when `prefix` is that folder without
/// its slash (`ns/t` for `ns/t/`; `listing_scope` allows nothing else outside the folders).
fn narrowed<'a>(target: &'a Target, prefix: &str) -> Option<&'a String> {
    let scope = target.grant.scope();
    if scope.is_empty() || scope.iter().any(|s| prefix.starts_with(s.as_str())) {
        return None;
    }
    scope.iter().find(|s| s.strip_suffix('/') == Some(prefix))
}

/// One page of a listing below `prefix` (relative to the warehouse), as the client sees it.
pub(super) struct RemotePage {
    pub objects: Vec<Object>,
    pub prefixes: Vec<CommonPrefix>,
    /// The store's continuation token when there is more.
    pub next_token: Option<String>,
    /// The last key or prefix of the page, when there is more (ListObjects v1's marker).
    pub next_marker: Option<String>,
}

pub(super) async fn list(
    target: &Target,
    bucket: &S3Bucket,
    prefix: &str,
    delimiter: Option<String>,
    start_after: Option<String>,
    token: Option<String>,
    max: usize,
) -> S3Result<RemotePage> {
    listing_scope(target, prefix)?;
    // The store is only ever asked about what the key may see, so that nothing outside its
    // folders is named back (not as a key, a common prefix, nor inside the store's continuation
    // token): a listing of `ns/t` with a key for `ns/t/` asks the store about `ns/t/`.
    let narrowed = narrowed(target, prefix);
    if let Some(folder) = narrowed
        && delimiter.as_deref() == Some("/")
    {
        // All the key may see groups into the one common prefix `ns/t/`, if anything is there.
        let any = bucket
            .client
            .list_objects_v2()
            .bucket(&bucket.bucket)
            .prefix(bucket.key(folder))
            .max_keys(1)
            .send()
            .await
            .map_err(|e| store_error("listing objects", bucket, e))?;
        let shown = any.key_count().unwrap_or(0) > 0
            && max > 0
            && start_after
                .as_deref()
                .is_none_or(|after| after < folder.as_str())
            && token.is_none();
        return Ok(RemotePage {
            objects: Vec::new(),
            prefixes: if shown {
                vec![CommonPrefix {
                    prefix: Some(folder.clone()),
                }]
            } else {
                Vec::new()
            },
            next_token: None,
            next_marker: None,
        });
    }
    let asked = narrowed.map_or(prefix, String::as_str);
    let out = bucket
        .client
        .list_objects_v2()
        .bucket(&bucket.bucket)
        .prefix(bucket.key(asked))
        .set_delimiter(delimiter)
        .set_start_after(start_after.map(|k| bucket.key(&k)))
        .set_continuation_token(token)
        .max_keys(max as i32)
        .send()
        .await
        .map_err(|e| store_error("listing objects", bucket, e))?;
    let objects: Vec<Object> = out
        .contents()
        .iter()
        .filter_map(|o| {
            let key = bucket.relative(o.key()?)?;
            Some(Object {
                key: Some(key.to_string()),
                size: o.size(),
                e_tag: etag(o.e_tag()),
                last_modified: from_aws_time(o.last_modified()),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            })
        })
        .collect();
    let prefixes: Vec<CommonPrefix> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| {
            Some(CommonPrefix {
                prefix: Some(bucket.relative(p.prefix()?)?.to_string()),
            })
        })
        .collect();
    let truncated = out.is_truncated().unwrap_or(false);
    let next_marker = if truncated {
        let last_key = objects.last().and_then(|o| o.key.clone());
        let last_prefix = prefixes.last().and_then(|p| p.prefix.clone());
        last_key.max(last_prefix)
    } else {
        None
    };
    Ok(RemotePage {
        objects,
        prefixes,
        next_token: out.next_continuation_token.filter(|_| truncated),
        next_marker,
    })
}

pub(super) async fn create_multipart_upload(
    target: &Target,
    bucket: Arc<S3Bucket>,
    input: CreateMultipartUploadInput,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let out = bucket
        .client
        .create_multipart_upload()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .set_content_type(input.content_type)
        .set_metadata(input.metadata)
        .send()
        .await
        .map_err(|e| store_error("starting an upload", &bucket, e))?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(target.bucket.clone()),
        key: Some(input.key),
        upload_id: out.upload_id,
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    bucket: Arc<S3Bucket>,
    mut input: UploadPartInput,
    trailers: Option<s3s::TrailingHeaders>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let failed = BodyFailure::default();
    let trailing = trailers.map(|trailers| Trailing {
        trailers,
        algorithm: input.checksum_algorithm.clone(),
    });
    let (body, length) = upload_body(
        input.body.take(),
        input.content_length,
        None,
        trailing,
        &failed,
    )
    .await?;
    let out = bucket
        .client
        .upload_part()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .upload_id(&input.upload_id)
        .part_number(input.part_number)
        .content_length(length)
        .body(body)
        .set_content_md5(input.content_md5.take())
        .set_checksum_crc32(input.checksum_crc32.take())
        .set_checksum_crc32_c(input.checksum_crc32c.take())
        .set_checksum_sha1(input.checksum_sha1.take())
        .set_checksum_sha256(input.checksum_sha256.take())
        .customize()
        .disable_payload_signing()
        .send()
        .await
        .map_err(|e| upload_error(&failed, store_error("writing a part", &bucket, e)))?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: etag(out.e_tag.as_deref()),
        checksum_crc32: out.checksum_crc32,
        checksum_crc32c: out.checksum_crc32_c,
        checksum_sha1: out.checksum_sha1,
        checksum_sha256: out.checksum_sha256,
        ..Default::default()
    }))
}

pub(super) async fn complete_multipart_upload(
    target: &Target,
    bucket: Arc<S3Bucket>,
    input: CompleteMultipartUploadInput,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let overwrite = overwrite_mode(target, &input.key, input.if_none_match.as_ref())?;
    check_may_replace(target, &input.key, input.if_match.as_ref())?;
    check_if_match(&bucket, &input.key, input.if_match.as_ref()).await?;
    let parts: Vec<CompletedPart> = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            CompletedPart::builder()
                .set_part_number(p.part_number)
                .set_e_tag(p.e_tag.map(|e| format!("\"{}\"", e.value())))
                .set_checksum_crc32(p.checksum_crc32)
                .set_checksum_crc32_c(p.checksum_crc32c)
                .set_checksum_sha1(p.checksum_sha1)
                .set_checksum_sha256(p.checksum_sha256)
                .build()
        })
        .collect();
    let out = bucket
        .client
        .complete_multipart_upload()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .upload_id(&input.upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .set_if_none_match(if_absent(overwrite))
        .send()
        .await
        .map_err(|e| refused_replace(store_error("completing an upload", &bucket, e), overwrite))?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(target.bucket.clone()),
        key: Some(input.key),
        e_tag: etag(out.e_tag.as_deref()),
        ..Default::default()
    }))
}

pub(super) async fn abort_multipart_upload(
    bucket: Arc<S3Bucket>,
    input: AbortMultipartUploadInput,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    bucket
        .client
        .abort_multipart_upload()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .upload_id(&input.upload_id)
        .send()
        .await
        .map_err(|e| store_error("aborting an upload", &bucket, e))?;
    Ok(S3Response::with_status(
        AbortMultipartUploadOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn list_parts(
    target: &Target,
    bucket: Arc<S3Bucket>,
    input: ListPartsInput,
) -> S3Result<S3Response<ListPartsOutput>> {
    let out = bucket
        .client
        .list_parts()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .upload_id(&input.upload_id)
        .set_max_parts(input.max_parts)
        .set_part_number_marker(input.part_number_marker.map(|m| m.to_string()))
        .send()
        .await
        .map_err(|e| store_error("listing parts", &bucket, e))?;
    let parts = out
        .parts()
        .iter()
        .map(|p| Part {
            e_tag: etag(p.e_tag()),
            last_modified: from_aws_time(p.last_modified()),
            part_number: p.part_number(),
            size: p.size(),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(target.bucket.clone()),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: out.max_parts,
        part_number_marker: input.part_number_marker,
        next_part_number_marker: out.next_part_number_marker.and_then(|m| m.parse().ok()),
        is_truncated: out.is_truncated,
        parts: Some(parts),
        ..Default::default()
    }))
}

pub(super) async fn upload_part_copy(
    target: &Target,
    bucket: Arc<S3Bucket>,
    input: UploadPartCopyInput,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let source = copy_source_key(target, &input.copy_source)?;
    let mut call = bucket
        .client
        .upload_part_copy()
        .bucket(&bucket.bucket)
        .key(bucket.key(&input.key))
        .upload_id(&input.upload_id)
        .part_number(input.part_number)
        .copy_source(format!(
            "{}/{}",
            bucket.bucket,
            url_encode(&bucket.key(&source))
        ))
        .set_copy_source_range(input.copy_source_range)
        .set_copy_source_if_match(input.copy_source_if_match.as_ref().map(condition))
        .set_copy_source_if_none_match(input.copy_source_if_none_match.as_ref().map(condition));
    if let Some(t) = &input.copy_source_if_modified_since {
        call = call.copy_source_if_modified_since(to_aws_time(t)?);
    }
    if let Some(t) = &input.copy_source_if_unmodified_since {
        call = call.copy_source_if_unmodified_since(to_aws_time(t)?);
    }
    let out = call
        .send()
        .await
        .map_err(|e| store_error("copying a part", &bucket, e))?;
    let result = out.copy_part_result;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: etag(result.as_ref().and_then(|r| r.e_tag())),
            last_modified: from_aws_time(result.as_ref().and_then(|r| r.last_modified())),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// The store's unfinished uploads under the prefix (the listing scope was checked), each named
/// as the client knows its key; uploads outside the key's grant are left out.
pub(super) async fn list_multipart_uploads(
    target: &Target,
    bucket: Arc<S3Bucket>,
    input: ListMultipartUploadsInput,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let prefix = input.prefix.clone().unwrap_or_default();
    let asked = narrowed(target, &prefix).map_or(prefix.as_str(), String::as_str);
    let encoder = Encoder::of(input.encoding_type.as_ref())?;
    let out = bucket
        .client
        .list_multipart_uploads()
        .bucket(&bucket.bucket)
        .prefix(bucket.key(asked))
        .set_delimiter(input.delimiter.clone())
        .set_key_marker(input.key_marker.as_ref().map(|k| bucket.key(k)))
        .set_upload_id_marker(input.upload_id_marker.clone())
        .set_max_uploads(input.max_uploads)
        .send()
        .await
        .map_err(|e| store_error("listing uploads", &bucket, e))?;
    let uploads = out
        .uploads()
        .iter()
        .filter_map(|u| {
            let key = bucket.relative(u.key()?)?;
            target.grant.covers(key).then(|| MultipartUpload {
                initiated: from_aws_time(u.initiated()),
                key: encoder.opt(Some(key.to_string())),
                upload_id: u.upload_id().map(str::to_string),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
        })
        .collect();
    let prefixes = out
        .common_prefixes()
        .iter()
        .filter_map(|p| {
            Some(CommonPrefix {
                prefix: encoder.opt(Some(bucket.relative(p.prefix()?)?.to_string())),
            })
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(target.bucket.clone()),
        prefix: encoder.opt(input.prefix),
        delimiter: encoder.opt(input.delimiter),
        key_marker: encoder.opt(input.key_marker),
        upload_id_marker: input.upload_id_marker,
        max_uploads: out.max_uploads,
        is_truncated: out.is_truncated,
        next_key_marker: encoder.opt(
            out.next_key_marker
                .as_deref()
                .and_then(|k| bucket.relative(k))
                .map(str::to_string),
        ),
        next_upload_id_marker: out.next_upload_id_marker,
        uploads: Some(uploads),
        common_prefixes: Some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}
