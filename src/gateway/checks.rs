//! The rules the gateway holds each request to before it acts: conditions (`If-Match`...),
//! ranges, listing scopes and pages, copy sources, and which objects a key may replace or delete.

use s3s::dto::*;
use s3s::{S3Error, S3Result, s3_error};

use super::convert::*;
use super::{Target, internal};
use crate::storage::objects::{ObjectError, ObjectInfo, ObjectStore, Overwrite};

/// Evaluates GET/HEAD preconditions in the order RFC 9110 gives.
pub(super) fn check_preconditions(
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
pub(super) fn url_encode(text: &str) -> String {
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
pub(super) struct Encoder(pub(super) bool);

impl Encoder {
    pub(super) fn of(encoding: Option<&EncodingType>) -> S3Result<Encoder> {
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

    pub(super) fn apply(&self, text: String) -> String {
        if self.0 { url_encode(&text) } else { text }
    }

    pub(super) fn opt(&self, text: Option<String>) -> Option<String> {
        text.map(|t| self.apply(t))
    }

    pub(super) fn page(&self, mut page: Page) -> Page {
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
pub(super) fn byte_range(
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

pub(super) fn listing_scope(target: &Target, prefix: &str) -> S3Result<()> {
    if target.grant.covers_listing(prefix) {
        Ok(())
    } else {
        Err(s3_error!(
            AccessDenied,
            "the prefix is outside the access key's scope"
        ))
    }
}

pub(super) fn max_keys(asked: Option<i32>) -> S3Result<usize> {
    match asked {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(MAX_KEYS)),
    }
}

pub(super) struct Page {
    pub(super) objects: Vec<Object>,
    pub(super) prefixes: Vec<CommonPrefix>,
    pub(super) next: Option<String>,
}

pub(super) async fn list_page(
    target: &Target,
    prefix: String,
    delimiter: Option<String>,
    after: Option<String>,
    max_keys: usize,
) -> S3Result<Page> {
    listing_scope(target, &prefix)?;
    let objects = target.objects()?.clone();
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

pub(super) fn copy_source_key(target: &Target, source: &CopySource) -> S3Result<String> {
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
pub(super) struct CopyConditions {
    pub(super) if_match: Option<ETagCondition>,
    pub(super) if_none_match: Option<ETagCondition>,
    pub(super) if_modified_since: Option<Timestamp>,
    pub(super) if_unmodified_since: Option<Timestamp>,
}

impl CopyConditions {
    pub(super) fn check(&self, source: &ObjectInfo) -> Result<(), ObjectError> {
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
pub(super) fn overwrite_mode(
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

pub(super) const METADATA_DELETE_REFUSED: &str = "metadata files are not deleted with a table's key (a \
     delete and a new write would replace one); the catalog removes those no version needs";

/// Whether the grant may delete `key`: a table's key never deletes a metadata file (an admin key
/// of the whole warehouse may).
pub(super) fn may_delete_key(grant: &crate::service::access_keys::KeyGrant, key: &str) -> bool {
    grant.prefixes.is_none() || !crate::storage::signing::is_metadata_file(key)
}

/// `If-Match` asks to replace an object, which a key that may not replace it cannot do.
pub(super) fn check_may_replace(
    target: &Target,
    key: &str,
    if_match: Option<&ETagCondition>,
) -> S3Result<()> {
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

pub(super) async fn check_if_match(
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
