//! Conversions between the object model (`storage::objects`) and S3's types (errors, ETags,
//! times, user metadata), the request's target, and the blocking-thread helper of file work.

use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Result, s3_error};

use super::{Target, internal, storage_full};
use crate::storage::objects::{self, KeyError, ObjectError, ObjectMeta};

/// Bytes read from disk per chunk when serving an object.
pub(super) const READ_CHUNK: usize = 1 << 20;
/// Objects up to this size are read in one piece instead of streamed.
pub(super) const SMALL_OBJECT: u64 = 256 << 10;
/// Keys per listing page when the client does not ask for fewer.
pub(super) const MAX_KEYS: usize = 1000;

pub(super) fn target<T>(req: &S3Request<T>) -> S3Result<Target> {
    req.extensions
        .get::<Target>()
        .cloned()
        .ok_or_else(|| s3_error!(AccessDenied, "requests must be signed"))
}

pub(super) fn object_error(e: ObjectError) -> S3Error {
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
        ObjectError::Io(e) if crate::error::is_storage_full(&e) => storage_full(e),
        ObjectError::Io(e) => internal(e),
    }
}

/// Runs file-system work on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ObjectError> + Send + 'static,
) -> S3Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(internal)?
        .map_err(object_error)
}

pub(super) fn check_key(key: &str) -> S3Result<()> {
    objects::key_path(key)
        .map(|_| ())
        .map_err(|e| object_error(e.into()))
}

pub(super) fn etag_of(meta: &ObjectMeta) -> ETag {
    ETag::Strong(meta.etag.clone())
}

pub(super) fn timestamp(t: std::time::SystemTime) -> Timestamp {
    Timestamp::from(t)
}

pub(super) fn user_metadata(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.user.is_empty()).then(|| meta.user.clone().into_iter().collect())
}
