//! Warehouses on S3 and S3-compatible stores (AWS, MinIO, Ceph, moto, Floe's own gateway), through
//! the AWS SDK. Every call has a timeout and the SDK's standard retries (throttling, 5xx, network);
//! errors name the store's error code and message, never a credential.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::{Location, ObjectStorage};
use crate::error::{Error, Result};
use crate::model::{StorageCredential, StorageProfile};

/// A warehouse's bucket and key prefix, with a client holding the warehouse's credential: what
/// the catalog (`S3Storage`) and the gateway (in front of the bucket) call.
pub struct S3Bucket {
    pub client: Client,
    pub bucket: String,
    /// The warehouse's key prefix without slashes around it (empty: the whole bucket).
    pub prefix: String,
}

impl S3Bucket {
    /// The store's key of `relative` (a key below the warehouse).
    pub fn key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    /// The key below the warehouse of a store key (None when outside the prefix).
    pub fn relative<'a>(&self, key: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
        }
    }
}

/// A bucket (and key prefix) as an object store. Objects are named under `base`: the bucket's
/// own `s3://bucket/prefix`, or `s3://<warehouse>` when the gateway serves the warehouse (the
/// same key maps to the same object either way).
pub struct S3Storage {
    store: S3Bucket,
    base: Location,
}

/// How long Floe waits for an S3 store (`storage.s3.*`), and how often it tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Timeouts {
    /// Connecting, in milliseconds.
    pub connect_timeout_ms: u64,
    /// One attempt of a call, in milliseconds.
    pub attempt_timeout_ms: u64,
    /// A call with all its retries, in milliseconds.
    pub operation_timeout_ms: u64,
    /// Attempts of a call that failed for a reason worth retrying (throttling, 5xx, network).
    pub max_attempts: u32,
}

impl Default for S3Timeouts {
    fn default() -> Self {
        S3Timeouts {
            connect_timeout_ms: 5_000,
            attempt_timeout_ms: 20_000,
            operation_timeout_ms: 45_000,
            max_attempts: 4,
        }
    }
}

impl S3Timeouts {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.connect_timeout_ms == 0
            || self.attempt_timeout_ms == 0
            || self.operation_timeout_ms == 0
            || self.max_attempts == 0
        {
            return Err("storage.s3 timeouts and max_attempts must be positive".into());
        }
        Ok(())
    }
}

/// Describes a failed call by the store's own words (code and message), for errors and logs.
fn describe<E: ProvideErrorMetadata + std::fmt::Debug, R>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!(
                "{}: {}",
                e.code().unwrap_or("error"),
                e.message().unwrap_or("no message")
            )
        }
        SdkError::TimeoutError(_) => "the store did not answer in time".to_string(),
        SdkError::DispatchFailure(f) => format!("the store could not be reached ({f:?})"),
        other => format!("{other}"),
    }
}

/// A failed call as the caller sees it: the store answered with an error (502, its code and
/// message named), or did not answer in time or at all (503).
fn store_error<E: ProvideErrorMetadata + std::fmt::Debug, R>(
    what: &str,
    location: &Location,
    err: SdkError<E, R>,
) -> Error {
    let text = describe(&err);
    let message = format!("object storage failed {what} {location}: {text}");
    match err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            Error::bad_gateway(message, std::io::Error::other(text))
        }
        _ => Error::unavailable(message, std::io::Error::other(text)),
    }
}

impl S3Bucket {
    /// A client for the profile. S3 warehouses need a storage credential.
    pub fn new(
        profile: &StorageProfile,
        credential: Option<&StorageCredential>,
        timeouts: &S3Timeouts,
    ) -> Result<Self> {
        let StorageProfile::S3 {
            bucket,
            key_prefix,
            region,
            endpoint,
            path_style_access,
            ..
        } = profile
        else {
            return Err(Error::bad_request("not an S3 storage profile"));
        };
        let Some(StorageCredential::S3AccessKey {
            access_key_id,
            secret_access_key,
        }) = credential
        else {
            return Err(Error::bad_request(
                "an S3 warehouse needs a storage-credential (s3-access-key)",
            ));
        };
        let mut config = aws_sdk_s3::Config::builder()
            .region(Region::new(region.clone()))
            .credentials_provider(Credentials::new(
                access_key_id.clone(),
                secret_access_key.clone(),
                None,
                None,
                "floe-warehouse",
            ))
            .force_path_style(path_style_access.unwrap_or(false))
            // Bodies are not checksummed by the SDK on the way out (a CRC over every byte the
            // gateway streams through): a client's own checksums are passed on for the store to
            // check, and the catalog's writes are small and create-only.
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard()
                    .with_max_attempts(timeouts.max_attempts),
            )
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(timeouts.connect_timeout_ms))
                    .operation_attempt_timeout(Duration::from_millis(timeouts.attempt_timeout_ms))
                    .operation_timeout(Duration::from_millis(timeouts.operation_timeout_ms))
                    .build(),
            );
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint.clone());
        }
        Ok(S3Bucket {
            client: Client::from_conf(config.build()),
            bucket: bucket.clone(),
            prefix: key_prefix
                .as_deref()
                .unwrap_or("")
                .trim_matches('/')
                .to_string(),
        })
    }
}

impl S3Storage {
    /// The warehouse's bucket, its objects named under `base`.
    pub fn new(
        base: Location,
        profile: &StorageProfile,
        credential: Option<&StorageCredential>,
        timeouts: &S3Timeouts,
    ) -> Result<Self> {
        Ok(S3Storage {
            store: S3Bucket::new(profile, credential, timeouts)?,
            base,
        })
    }

    /// The object key of a location, which must lie inside the warehouse.
    fn key_of(&self, location: &Location) -> Result<String> {
        match location.relative_to(&self.base) {
            Some(relative) if !relative.is_empty() => Ok(self.store.key(&relative)),
            _ => Err(Error::forbidden(format!(
                "location {location} is not an object of the warehouse at {}",
                self.base
            ))),
        }
    }
}

#[async_trait]
impl ObjectStorage for S3Storage {
    async fn put_new(&self, location: &Location, bytes: bytes::Bytes) -> Result<()> {
        let key = self.key_of(location)?;
        let result = self
            .store
            .client
            .put_object()
            .bucket(&self.store.bucket)
            .key(&key)
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                Err(Error::conflict(format!(
                    "{location} already exists and is never overwritten"
                )))
            }
            Err(e) => Err(store_error("writing", location, e)),
        }
    }

    async fn get(&self, location: &Location) -> Result<Option<Vec<u8>>> {
        let key = self.key_of(location)?;
        let result = self
            .store
            .client
            .get_object()
            .bucket(&self.store.bucket)
            .key(&key)
            .send()
            .await;
        match result {
            Ok(object) => {
                let bytes = object.body.collect().await.map_err(|e| {
                    Error::unavailable(format!("object storage failed reading {location}"), e)
                })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(store_error("reading", location, e)),
        }
    }

    async fn delete(&self, location: &Location) -> Result<()> {
        let key = self.key_of(location)?;
        self.store
            .client
            .delete_object()
            .bucket(&self.store.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| store_error("deleting", location, e))?;
        Ok(())
    }

    async fn delete_prefix(&self, location: &Location) -> Result<()> {
        if location == &self.base {
            return Err(Error::forbidden("refusing to delete a whole warehouse"));
        }
        let prefix = format!("{}/", self.key_of(location)?);
        let mut token = None;
        loop {
            let page = self
                .store
                .client
                .list_objects_v2()
                .bucket(&self.store.bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| store_error("listing", location, e))?;
            let keys: Vec<ObjectIdentifier> = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            if !keys.is_empty() {
                let delete = Delete::builder()
                    .set_objects(Some(keys))
                    .quiet(true)
                    .build()
                    .map_err(|e| Error::internal("building a delete request", e))?;
                let done = self
                    .store
                    .client
                    .delete_objects()
                    .bucket(&self.store.bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| store_error("deleting under", location, e))?;
                if let Some(first) = done.errors().first() {
                    return Err(Error::unavailable(
                        format!(
                            "object storage refused deleting {} under {location}: {}",
                            first.key().unwrap_or("?"),
                            first.code().unwrap_or("error")
                        ),
                        std::io::Error::other("delete failed"),
                    ));
                }
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(());
            }
        }
    }

    async fn delete_some(&self, location: &Location, limit: usize) -> Result<usize> {
        if location == &self.base {
            return Err(Error::forbidden("refusing to delete a whole warehouse"));
        }
        let prefix = format!("{}/", self.key_of(location)?);
        let page = self
            .store
            .client
            .list_objects_v2()
            .bucket(&self.store.bucket)
            .prefix(&prefix)
            .max_keys(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| store_error("listing", location, e))?;
        let keys: Vec<ObjectIdentifier> = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
            .collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let count = keys.len();
        let delete = Delete::builder()
            .set_objects(Some(keys))
            .quiet(true)
            .build()
            .map_err(|e| Error::internal("building a delete request", e))?;
        let done = self
            .store
            .client
            .delete_objects()
            .bucket(&self.store.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| store_error("deleting under", location, e))?;
        if let Some(first) = done.errors().first() {
            return Err(Error::unavailable(
                format!(
                    "object storage refused deleting {} under {location}: {}",
                    first.key().unwrap_or("?"),
                    first.code().unwrap_or("error")
                ),
                std::io::Error::other("delete failed"),
            ));
        }
        Ok(count)
    }

    async fn list_files(&self, location: &Location) -> Result<Vec<(Location, i64)>> {
        let prefix = format!("{}/", self.key_of(location)?);
        let mut listed = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .store
                .client
                .list_objects_v2()
                .bucket(&self.store.bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| store_error("listing", location, e))?;
            for object in page.contents() {
                let (Some(key), Some(modified)) = (object.key(), object.last_modified()) else {
                    continue;
                };
                let Some(suffix) = key.strip_prefix(&prefix) else {
                    continue;
                };
                if let Ok(l) = Location::parse(&format!("{}/{suffix}", location.as_str())) {
                    listed.push((l, modified.to_millis().unwrap_or(0)));
                }
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(listed);
            }
        }
    }

    async fn prepare_prefix(&self, _location: &Location) -> Result<()> {
        // Object stores have no folders.
        Ok(())
    }
}

/// Checks that a warehouse on this store can work: writes, reads back, lists and deletes an
/// object under its prefix. A failure is a 400 that names the store's error.
pub async fn probe(
    profile: &StorageProfile,
    credential: Option<&StorageCredential>,
    timeouts: &S3Timeouts,
) -> Result<()> {
    let storage = S3Storage::new(
        super::base_location_of_s3(profile)?,
        profile,
        credential,
        timeouts,
    )?;
    let location = storage
        .base
        .join(&format!(".floe-probe-{}", uuid::Uuid::new_v4().simple()))?;
    let key = storage.key_of(&location)?;
    let fail = |step: &str, text: String| {
        Error::bad_request(format!(
            "the S3 store of this warehouse is not usable: {step} failed: {text}"
        ))
    };
    storage
        .store
        .client
        .put_object()
        .bucket(&storage.store.bucket)
        .key(&key)
        .body(ByteStream::from_static(b"floe"))
        .send()
        .await
        .map_err(|e| fail("writing a probe object", describe(&e)))?;
    let read = async {
        let object = storage
            .store
            .client
            .get_object()
            .bucket(&storage.store.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| fail("reading it back", describe(&e)))?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| fail("reading it back", e.to_string()))?;
        if bytes.into_bytes().as_ref() != b"floe" {
            return Err(fail(
                "reading it back",
                "different bytes came back".to_string(),
            ));
        }
        let listed = storage
            .store
            .client
            .list_objects_v2()
            .bucket(&storage.store.bucket)
            .prefix(&key)
            .send()
            .await
            .map_err(|e| fail("listing", describe(&e)))?;
        if !listed
            .contents()
            .iter()
            .any(|o| o.key() == Some(key.as_str()))
        {
            return Err(fail(
                "listing",
                "the probe object is not listed".to_string(),
            ));
        }
        Ok(())
    }
    .await;
    let deleted = storage
        .store
        .client
        .delete_object()
        .bucket(&storage.store.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| fail("deleting the probe object", describe(&e)));
    read?;
    deleted.map(|_| ())
}
