//! Remote signing of S3 requests for one table (the Iceberg `sign` endpoints): decides whether a
//! request a client wants signed stays inside the table's folder and uses a method the caller may
//! use, then signs it with SigV4 under the warehouse's own credential, which never leaves Floe.
//!
//! The check reads the request as the store will: the bucket and key from the URI (path style or
//! virtual-host style, percent-decoded), the listing prefix from the query, the source of a copy,
//! and every key of a DeleteObjects body. Anything it does not understand is refused.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

use crate::error::{Error, Result};

pub use crate::model::SignRequest;

/// Where a table's objects live and what the caller may do there.
#[derive(Debug, Clone)]
pub struct SigningScope<'a> {
    /// The store's endpoint as clients address it: `http(s)://host[:port]`.
    pub endpoint: &'a str,
    pub bucket: &'a str,
    pub region: &'a str,
    /// The table's folders as key prefixes, each ending in `/` (where the table is, and where it
    /// was before a `set-location`).
    pub prefixes: &'a [String],
    /// Writes (PUT, POST, DELETE) are signed only when true.
    pub may_write: bool,
    /// Deletes (DELETE of an object, DeleteObjects) are signed only when true; aborting a
    /// multipart upload is not a delete. Where deletes are refused, so is replacing an object:
    /// writes are signed as creates only (`If-None-Match: *`).
    pub may_delete: bool,
}

/// A header Floe adds to a request it signs (and binds to the signature), which the client must
/// send as given.
pub type AddedHeader = (&'static str, &'static str);

/// Iceberg's metadata files: what every branch, tag and commit reads first. No catalog-issued
/// access replaces one.
pub fn is_metadata_file(key: &str) -> bool {
    key.ends_with(".metadata.json")
}

/// The key a request is signed with.
pub struct SigningKey<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// Query parameters of requests on one object, by method.
const OBJECT_READ_PARAMS: &[&str] = &[
    "versionId",
    "partNumber",
    "uploadId",
    "max-parts",
    "part-number-marker",
    "attributes",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "x-id",
];
const OBJECT_PUT_PARAMS: &[&str] = &["partNumber", "uploadId", "x-id"];
const OBJECT_POST_PARAMS: &[&str] = &["uploads", "uploadId", "x-id"];
const OBJECT_DELETE_PARAMS: &[&str] = &["uploadId", "versionId", "x-id"];
/// Query parameters of listings (the bucket itself), which must name a `prefix`.
const LIST_PARAMS: &[&str] = &[
    "list-type",
    "prefix",
    "delimiter",
    "continuation-token",
    "start-after",
    "max-keys",
    "encoding-type",
    "fetch-owner",
    "marker",
    "uploads",
    "key-marker",
    "upload-id-marker",
    "max-uploads",
    "versions",
    "version-id-marker",
    "x-id",
];

fn refuse(message: impl Into<String>) -> Error {
    Error::forbidden(message)
}

/// `http(s)`, the authority as compared (lower case, no default port), path, query.
struct Uri<'a> {
    scheme: &'a str,
    authority: String,
    path: &'a str,
    query: &'a str,
}

fn split_uri(uri: &str) -> Result<Uri<'_>> {
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| refuse("the request URI must be an absolute http(s) URI"))?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(refuse("the request URI must be an absolute http(s) URI"));
    }
    if uri.contains('#') || uri.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return Err(refuse(
            "the request URI must be percent-encoded and carry no fragment",
        ));
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(refuse("the request URI must name a host and no user"));
    }
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, query),
        None => (rest, ""),
    };
    Ok(Uri {
        scheme,
        authority: normalize_authority(scheme, authority),
        path: if path.is_empty() { "/" } else { path },
        query,
    })
}

fn normalize_authority(scheme: &str, authority: &str) -> String {
    let lower = authority.to_ascii_lowercase();
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    match lower.strip_suffix(default_port) {
        Some(host) => host.to_string(),
        None => lower,
    }
}

/// Percent-decodes one URI component; `+` stays `+`. Malformed escapes and non-UTF-8 are refused.
fn decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| refuse("the request URI has a malformed percent escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| refuse("the request URI does not decode to UTF-8"))
}

/// A key (or key prefix) must not walk out of its folder, whatever a store does with dot segments.
fn check_key_text(key: &str) -> Result<()> {
    if key.contains('\0')
        || key.contains('\\')
        || key
            .split('/')
            .any(|segment| segment == ".." || segment == ".")
    {
        return Err(refuse(format!(
            "the key {key:?} has '.' or '..' segments, a backslash or NUL"
        )));
    }
    Ok(())
}

/// The decoded query, in order. Raw `+` is refused: stores read it as a space or a plus.
fn parse_query(query: &str) -> Result<Vec<(String, String)>> {
    if query.contains('+') {
        return Err(refuse(
            "the request URI's query must encode '+' (as %2B) and spaces (as %20)",
        ));
    }
    let params: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect::<Result<_>>()?;
    let mut names = std::collections::BTreeSet::new();
    for (name, _) in &params {
        if !names.insert(name.as_str()) {
            return Err(refuse(format!(
                "the query parameter {name:?} appears more than once"
            )));
        }
    }
    Ok(params)
}

/// The bucket and key a request addresses, path style or virtual-host style.
fn bucket_and_key(scope: &SigningScope<'_>, uri: &Uri<'_>) -> Result<(String, String)> {
    let endpoint = split_uri(scope.endpoint)
        .map_err(|_| Error::bad_request("the warehouse's S3 endpoint is not an http(s) URL"))?;
    if !uri.scheme.eq_ignore_ascii_case(endpoint.scheme) {
        return Err(refuse(format!(
            "requests to this table's store go to {}",
            scope.endpoint
        )));
    }
    let path = uri
        .path
        .strip_prefix('/')
        .ok_or_else(|| refuse("the request URI's path must start with '/'"))?;
    if path.contains('+') {
        return Err(refuse(
            "the request URI's path must encode '+' (as %2B): stores differ on reading it",
        ));
    }
    if uri.authority == endpoint.authority {
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        Ok((decode(bucket)?, decode(key)?))
    } else if uri.authority == format!("{}.{}", scope.bucket, endpoint.authority) {
        Ok((scope.bucket.to_string(), decode(path)?))
    } else {
        Err(refuse(format!(
            "the request URI's host is not this table's store ({})",
            scope.endpoint
        )))
    }
}

fn inside(scope: &SigningScope<'_>, key: &str) -> bool {
    scope
        .prefixes
        .iter()
        .any(|prefix| key.starts_with(prefix.as_str()) && key.len() > prefix.len())
}

fn folders(scope: &SigningScope<'_>) -> String {
    scope.prefixes.join(", ")
}

fn check_params(params: &[(String, String)], allowed: &[&str], what: &str) -> Result<()> {
    match params
        .iter()
        .find(|(name, _)| !allowed.contains(&name.as_str()))
    {
        Some((name, _)) => Err(refuse(format!(
            "Floe does not sign {what} with the query parameter {name:?}"
        ))),
        None => Ok(()),
    }
}

/// The request's headers by lower-case name, one value each. A name given twice (in any case) or
/// with several values is refused: what is checked must be exactly what is signed and sent.
fn normalized_headers(headers: &BTreeMap<String, Vec<String>>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, values) in headers {
        let lower = name.to_ascii_lowercase();
        let [value] = values.as_slice() else {
            return Err(refuse(format!(
                "the header {name:?} must have exactly one value"
            )));
        };
        if out.insert(lower, value.clone()).is_some() {
            return Err(refuse(format!(
                "the header {name:?} is given more than once"
            )));
        }
    }
    Ok(out)
}

fn header<'h>(headers: &'h BTreeMap<String, String>, name: &str) -> Option<&'h str> {
    headers.get(name).map(String::as_str)
}

/// `x-amz-*` headers Floe signs; any other changes what S3 does in ways a table's scope does not
/// cover (ACLs, object lock, tagging, encryption keys, storage class...) and is refused.
fn allowed_amz_header(name: &str) -> bool {
    name.starts_with("x-amz-meta-")
        || name.starts_with("x-amz-checksum-")
        || name.starts_with("x-amz-copy-source")
        || matches!(
            name,
            "x-amz-content-sha256"
                | "x-amz-date"
                | "x-amz-security-token"
                | "x-amz-metadata-directive"
                | "x-amz-sdk-checksum-algorithm"
                | "x-amz-trailer"
                | "x-amz-decoded-content-length"
                | "x-amz-expected-bucket-owner"
                | "x-amz-user-agent"
        )
}

/// Refuses the request unless it stays inside the table's folders with a method the caller may use.
/// A write that must not replace an object (where deletes are refused, and of any metadata file)
/// is signed as a create only: the answer is the `If-None-Match: *` header to add, which the
/// signature then covers, so the store itself refuses to replace an object.
pub fn check(scope: &SigningScope<'_>, request: &SignRequest) -> Result<Option<AddedHeader>> {
    let uri = split_uri(&request.uri)?;
    let (bucket, key) = bucket_and_key(scope, &uri)?;
    if bucket != scope.bucket {
        return Err(refuse(format!(
            "the request addresses bucket {bucket:?}, not this table's bucket"
        )));
    }
    check_key_text(&key)?;
    let headers = normalized_headers(&request.headers)?;
    if let Some(name) = headers
        .keys()
        .find(|name| name.starts_with("x-amz-") && !allowed_amz_header(name))
    {
        return Err(refuse(format!(
            "Floe does not sign requests with the header {name}"
        )));
    }
    let params = parse_query(uri.query)?;
    let method = request.method.to_ascii_uppercase();
    let writes = matches!(method.as_str(), "PUT" | "POST" | "DELETE");
    if writes && !scope.may_write {
        return Err(refuse(format!(
            "the caller may only read this table; {method} is not signed"
        )));
    }
    // An abort names its upload; a DELETE with an empty `uploadId` is a delete to some stores.
    let deletes = (method == "DELETE"
        && !params
            .iter()
            .any(|(name, value)| name == "uploadId" && !value.is_empty()))
        || (method == "POST" && key.is_empty() && params.iter().any(|(name, _)| name == "delete"));
    if deletes && !scope.may_delete {
        return Err(refuse(
            "deletes are not signed while the warehouse has branches or tags, which may still \
             read this table's files",
        ));
    }
    if !key.is_empty() {
        if !inside(scope, &key) {
            return Err(refuse(format!(
                "the object {key:?} is outside this table's folders ({})",
                folders(scope)
            )));
        }
        let has = |name: &str| params.iter().any(|(n, v)| n == name && !v.is_empty());
        let named = |name: &str| params.iter().any(|(n, _)| n == name);
        // A PUT is a part of an upload only with both its upload and its number; stores differ
        // on a PUT with one of them (some write the object), so such a PUT is not signed.
        if method == "PUT"
            && (named("uploadId") || named("partNumber"))
            && !(has("uploadId") && has("partNumber"))
        {
            return Err(refuse(
                "a PUT names a part with both uploadId and partNumber, or neither",
            ));
        }
        // What makes or replaces the object itself: PutObject, CopyObject, and
        // CompleteMultipartUpload (parts and uploads are not the object yet).
        let writes_object = match method.as_str() {
            "PUT" => !has("uploadId"),
            "POST" => named("uploadId"),
            _ => false,
        };
        let create_only = writes_object && (!scope.may_delete || is_metadata_file(&key));
        // A metadata file is not deleted through a table's access either (a delete and a new PUT
        // would replace it); `DELETE ...?uploadId=` aborts an upload and deletes nothing.
        if method == "DELETE" && !has("uploadId") && is_metadata_file(&key) {
            return Err(refuse(
                "metadata files are not deleted through a table's access; the catalog removes \
                 those no version needs",
            ));
        }
        match method.as_str() {
            "GET" | "HEAD" => check_params(&params, OBJECT_READ_PARAMS, "reads")?,
            "PUT" => {
                check_params(&params, OBJECT_PUT_PARAMS, "writes")?;
                if let Some(source) = header(&headers, "x-amz-copy-source") {
                    check_copy_source(scope, source)?;
                    if create_only {
                        return Err(refuse(
                            "copies onto an object are not signed where objects may not be \
                             replaced (metadata files, or while the warehouse has branches or \
                             tags)",
                        ));
                    }
                }
            }
            "POST" => check_params(&params, OBJECT_POST_PARAMS, "object POSTs")?,
            "DELETE" => check_params(&params, OBJECT_DELETE_PARAMS, "deletes")?,
            other => return Err(refuse(format!("Floe does not sign {other} requests"))),
        }
        if !create_only {
            return Ok(None);
        }
        if header(&headers, "if-match").is_some() {
            return Err(refuse(
                "If-Match replaces an object, which is not signed here (metadata files, or while \
                 the warehouse has branches or tags)",
            ));
        }
        match header(&headers, "if-none-match") {
            Some("*") => Ok(None),
            Some(_) => Err(refuse("writes are signed with If-None-Match: * only")),
            None => Ok(Some(("If-None-Match", "*"))),
        }
    } else {
        match method.as_str() {
            "GET" if params.len() == 1 && params[0].0 == "location" => Ok(None),
            "HEAD" if params.iter().all(|(name, _)| name == "x-id") => Ok(None),
            "GET" => {
                check_params(&params, LIST_PARAMS, "listings")?;
                let prefix = params
                    .iter()
                    .find(|(name, _)| name == "prefix")
                    .map(|(_, value)| value.as_str())
                    .unwrap_or("");
                check_key_text(prefix)?;
                if !scope
                    .prefixes
                    .iter()
                    .any(|folder| prefix.starts_with(folder.as_str()))
                {
                    return Err(refuse(format!(
                        "a listing must have a prefix inside one of this table's folders ({})",
                        folders(scope)
                    )));
                }
                Ok(None)
            }
            "POST" if params.iter().any(|(name, _)| name == "delete") => {
                check_params(&params, &["delete", "x-id"], "DeleteObjects")?;
                let body = request.body.as_deref().ok_or_else(|| {
                    refuse("a DeleteObjects request is signed only with its body")
                })?;
                for key in delete_objects_keys(body)? {
                    check_key_text(&key)?;
                    if !inside(scope, &key) {
                        return Err(refuse(format!(
                            "DeleteObjects names {key:?}, outside this table's folders"
                        )));
                    }
                    if is_metadata_file(&key) {
                        return Err(refuse(format!(
                            "DeleteObjects names the metadata file {key:?}; metadata files are \
                             not deleted through a table's access"
                        )));
                    }
                }
                Ok(None)
            }
            _ => Err(refuse(format!(
                "Floe signs no {method} request on the bucket itself"
            ))),
        }
    }
}

/// `x-amz-copy-source` (`[/]bucket/key[?versionId=...]`, percent-encoded) must be in the table.
fn check_copy_source(scope: &SigningScope<'_>, source: &str) -> Result<()> {
    let source = source.split_once('?').map_or(source, |(path, _)| path);
    let source = decode(source.strip_prefix('/').unwrap_or(source))?;
    let (bucket, key) = source.split_once('/').unwrap_or((&source, ""));
    check_key_text(key)?;
    if bucket != scope.bucket || !inside(scope, key) {
        return Err(refuse(
            "the copy source is outside this table's folder".to_string(),
        ));
    }
    Ok(())
}

/// Every `Object/Key` of a DeleteObjects body, as the store will read them (entities resolved,
/// CDATA included). Document types and unknown entities are refused.
fn delete_objects_keys(body: &str) -> Result<Vec<String>> {
    use quick_xml::events::Event;
    let bad =
        |e: &dyn std::fmt::Display| refuse(format!("the DeleteObjects body is not valid: {e}"));
    let mut reader = quick_xml::Reader::from_str(body);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut keys = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(start) => {
                let name = start.local_name().as_ref().to_vec();
                if name == b"Key" && path.last().is_some_and(|p| p == b"Object") {
                    current = Some(String::new());
                }
                path.push(name);
            }
            Event::End(_) => {
                if path.pop().is_some_and(|name| name == b"Key")
                    && let Some(key) = current.take()
                {
                    keys.push(key);
                }
            }
            Event::Empty(start) => {
                if start.local_name().as_ref() == b"Key" {
                    return Err(refuse("the DeleteObjects body has an empty key"));
                }
            }
            Event::Text(text) => {
                if let Some(key) = current.as_mut() {
                    key.push_str(&text.decode().map_err(|e| bad(&e))?);
                }
            }
            Event::CData(data) => {
                if let Some(key) = current.as_mut() {
                    key.push_str(&data.decode().map_err(|e| bad(&e))?);
                }
            }
            Event::GeneralRef(reference) => {
                let ch = match reference.decode().map_err(|e| bad(&e))?.as_ref() {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    _ => reference
                        .resolve_char_ref()
                        .map_err(|e| bad(&e))?
                        .ok_or_else(|| refuse("the DeleteObjects body uses an unknown entity"))?,
                };
                if let Some(key) = current.as_mut() {
                    key.push(ch);
                }
            }
            Event::DocType(_) => {
                return Err(refuse("the DeleteObjects body must not declare a DTD"));
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !path.is_empty() {
        return Err(refuse(
            "the DeleteObjects body is not valid: unclosed elements",
        ));
    }
    if keys.is_empty() {
        return Err(refuse("the DeleteObjects body names no key"));
    }
    Ok(keys)
}

/// Headers the client sent that the signature covers: the ones S3 gives meaning to. Everything
/// else (user agent, SDK invocation ids, retry counters) may change between attempts.
fn signed_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    (name.starts_with("x-amz-")
        && !matches!(
            name.as_str(),
            "x-amz-date" | "x-amz-security-token" | "x-amz-content-sha256"
        ))
        || matches!(
            name.as_str(),
            "content-md5"
                | "content-type"
                | "content-encoding"
                | "content-disposition"
                | "if-none-match"
                | "if-match"
        )
}

/// Signs the request (SigV4, headers) and returns the headers to add to it: `Authorization`,
/// `x-amz-date`, `x-amz-content-sha256` (unless the client sent one) and `x-amz-security-token`.
pub fn sign_request(
    scope: &SigningScope<'_>,
    request: &SignRequest,
    key: &SigningKey<'_>,
    time: SystemTime,
) -> Result<BTreeMap<String, Vec<String>>> {
    let normalized = normalized_headers(&request.headers)?;
    let client_hash = header(&normalized, "x-amz-content-sha256").map(str::to_string);
    // A body Floe checked (DeleteObjects) is bound to the signature by its hash, so the request
    // cannot be sent with another body.
    let body_hash = request
        .body
        .as_deref()
        .map(|body| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body.as_bytes())));
    if let (Some(hash), Some(sent)) = (&body_hash, &client_hash)
        && sent != hash
    {
        return Err(refuse(
            "x-amz-content-sha256 does not match the body given for signing",
        ));
    }
    let payload_hash = client_hash.clone().or(body_hash);
    let headers: Vec<(String, String)> = normalized
        .iter()
        .filter(|(name, _)| signed_header(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let body = match &payload_hash {
        Some(hash) => SignableBody::Precomputed(hash.clone()),
        None => SignableBody::UnsignedPayload,
    };
    let method = request.method.to_ascii_uppercase();
    let signable = SignableRequest::new(
        &method,
        request.uri.as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body,
    )
    .map_err(|e| refuse(format!("the request cannot be signed: {e}")))?;
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.signature_location = SignatureLocation::Headers;
    let identity = Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        key.session_token.map(str::to_string),
        None,
        "floe-signer",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| Error::internal("building signing parameters", e))?
        .into();
    let output = sign(signable, &params)
        .map_err(|e| refuse(format!("the request cannot be signed: {e}")))?;
    let (instructions, _signature) = output.into_parts();
    let mut added = BTreeMap::new();
    for (name, value) in instructions.headers() {
        if name.eq_ignore_ascii_case("x-amz-content-sha256") && client_hash.is_some() {
            continue;
        }
        added.insert(name.to_string(), vec![value.to_string()]);
    }
    Ok(added)
}

#[cfg(test)]
mod tests;
