//! The built-in S3 gateway: Floe's second HTTP surface. Each warehouse on local storage is a bucket
//! named after the warehouse; requests are signed (SigV4) with access keys Floe issues (see
//! `service::access_keys`), authorized against the key's warehouse and scope, and carried out by
//! `storage::objects` on the warehouse's root folder. The S3 protocol (parsing, signatures,
//! `aws-chunked` bodies, XML) is the `s3s` crate's.

mod body;
mod checks;
mod convert;
mod remote;
mod s3;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::path::S3Path;
use s3s::service::S3ServiceBuilder;
use s3s::validation::NameValidation;
use s3s::{S3Result, s3_error};
use tokio::net::TcpListener;

use crate::model::{DataAccess, Operation, Permission, StorageProfile, Warehouse, WarehouseId};
use crate::service::Services;
use crate::service::access_keys::{KeyGrant, KeyRefusal};
use crate::storage::objects::ObjectStore;
use crate::storage::s3::S3Bucket;

/// How the gateway is set up.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// A domain under which `<bucket>.<domain>` is virtual-host style addressing (path style works
    /// always).
    pub virtual_host_domain: Option<String>,
    /// What `GetBucketLocation` answers.
    pub region: String,
    /// Multipart uploads begun longer ago than this are removed.
    pub multipart_expiry: Duration,
    /// What each client may hold of the listener.
    pub limits: crate::listen::ListenerLimits,
}

/// The bucket a request addresses, opened for it by the access check.
#[derive(Clone)]
pub(crate) struct Target {
    pub grant: KeyGrant,
    pub bucket: String,
    pub backend: Backend,
}

/// Where a gateway bucket's objects are: files under a local root, or the objects of an S3
/// bucket (and key prefix) the gateway stands in front of.
#[derive(Clone)]
pub(crate) enum Backend {
    Local(ObjectStore),
    Remote(Arc<S3Bucket>),
}

impl Target {
    /// The local root's objects; an operation not yet served in front of S3 storage says so.
    pub fn objects(&self) -> S3Result<&ObjectStore> {
        match &self.backend {
            Backend::Local(objects) => Ok(objects),
            Backend::Remote(_) => Err(s3_error!(
                NotImplemented,
                "this operation is not served for warehouses on S3 storage yet"
            )),
        }
    }

    pub fn remote(&self) -> Option<&Arc<S3Bucket>> {
        match &self.backend {
            Backend::Remote(bucket) => Some(bucket),
            Backend::Local(_) => None,
        }
    }
}

/// Buckets are warehouses, found through the services' short-lived warehouse cache.
struct Buckets {
    services: Services,
}

impl Buckets {
    /// Where the warehouse's objects are: its local root, or the S3 bucket the gateway fronts.
    async fn backend_of(&self, warehouse: &Warehouse) -> S3Result<Backend> {
        match &warehouse.storage_profile {
            StorageProfile::Local { root, .. } => {
                Ok(Backend::Local(ObjectStore::new(root.clone())))
            }
            profile @ StorageProfile::S3 { .. } if profile.gateway_served() => self
                .services
                .warehouse_bucket(warehouse)
                .await
                .map(Backend::Remote)
                .map_err(floe_error),
            StorageProfile::S3 { .. } => Err(s3_error!(
                NoSuchBucket,
                "the warehouse is on S3 storage that the gateway does not serve (s3-gateway is off)"
            )),
        }
    }

    async fn warehouse(&self, id: WarehouseId) -> S3Result<Arc<Warehouse>> {
        match self.services.cached_warehouse(id).await {
            Ok(w) => Ok(w),
            Err(e) if matches!(e.kind, crate::error::ErrorKind::NotFound(_)) => Err(s3_error!(
                NoSuchBucket,
                "the key's warehouse no longer exists"
            )),
            Err(e) => Err(floe_error(e)),
        }
    }
}

/// S3's answer for a full disk: 507 `InsufficientStorage` (the cause goes to the log).
pub(crate) fn storage_full(e: impl std::fmt::Debug) -> s3s::S3Error {
    let id = uuid::Uuid::new_v4();
    tracing::error!(error_id = %id, error = ?e, "S3 gateway request failed: storage full");
    let mut error = s3s::S3Error::with_message(
        s3s::S3ErrorCode::Custom("InsufficientStorage".into()),
        format!("the server's disk is full; retry once space is freed (error id {id})"),
    );
    error.set_status_code(http::StatusCode::INSUFFICIENT_STORAGE);
    error
}

/// A Floe error met while serving an S3 request.
pub(crate) fn floe_error(e: crate::error::Error) -> s3s::S3Error {
    match e.kind {
        crate::error::ErrorKind::InsufficientStorage => storage_full(e),
        crate::error::ErrorKind::Unavailable => {
            let id = uuid::Uuid::new_v4();
            tracing::error!(error_id = %id, error = ?e, "S3 gateway request failed: unavailable");
            s3_error!(ServiceUnavailable, "service unavailable; error id {}", id)
        }
        _ => internal(e),
    }
}

pub(crate) fn internal(e: impl std::fmt::Debug) -> s3s::S3Error {
    let id = uuid::Uuid::new_v4();
    tracing::error!(error_id = %id, error = ?e, "S3 gateway request failed");
    s3_error!(
        InternalError,
        "internal error; see the server log for error id {}",
        id
    )
}

struct Auth {
    services: Services,
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.services.resolve_access_key(access_key).await {
            Ok(Ok(grant)) => Ok(SecretKey::from(grant.secret)),
            Ok(Err(KeyRefusal::Unknown)) => Err(s3_error!(
                InvalidAccessKeyId,
                "the access key id does not exist"
            )),
            Ok(Err(KeyRefusal::Expired)) => {
                Err(s3_error!(AccessDenied, "the access key has expired"))
            }
            Ok(Err(KeyRefusal::NoRights)) => Err(s3_error!(
                AccessDenied,
                "the access key's maker may no longer read this warehouse"
            )),
            Err(e) => Err(floe_error(e)),
        }
    }
}

struct Access {
    buckets: Arc<Buckets>,
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let operation = cx.s3_op().name().to_string();
        if let Some(slot) = cx.extensions_mut().get::<OperationSlot>() {
            let _ = slot.0.set(operation);
        }
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "requests must be signed"));
        };
        let grant = match self
            .buckets
            .services
            .resolve_access_key(&credentials.access_key)
            .await
        {
            Ok(Ok(grant)) => grant,
            Ok(Err(_)) => return Err(s3_error!(AccessDenied, "the access key is not valid")),
            Err(e) => return Err(floe_error(e)),
        };
        // What the operation needs, from the one operation table; an operation the table
        // does not name is not served, whatever the key.
        let name = cx.s3_op().name();
        let needs = match Operation::of_s3(name).map(Operation::permission) {
            Some(Permission::Data(needs)) => needs,
            _ => {
                return Err(s3_error!(
                    NotImplemented,
                    "the gateway does not serve {}",
                    name
                ));
            }
        };
        if !grant.access.may_write() && needs != DataAccess::Read {
            return Err(s3_error!(AccessDenied, "the access key is read-only"));
        }
        if !grant.access.may_delete() && needs == DataAccess::Delete {
            return Err(s3_error!(
                AccessDenied,
                "the access key may not delete: the warehouse has branches or tags, which may \
                 still read this file"
            ));
        }
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => {
                let warehouse = self.buckets.warehouse(grant.warehouse_id).await?;
                cx.extensions_mut().insert(Target {
                    bucket: crate::model::gateway_bucket_name(&warehouse.name),
                    backend: self.buckets.backend_of(&warehouse).await?,
                    grant,
                });
                return Ok(());
            }
            S3Path::Bucket { bucket } => (bucket.to_string(), None),
            S3Path::Object { bucket, key } => (bucket.to_string(), Some(key.to_string())),
        };
        let warehouse = self.buckets.warehouse(grant.warehouse_id).await?;
        if crate::model::gateway_bucket_name(&warehouse.name) != bucket {
            return Err(s3_error!(
                AccessDenied,
                "the access key does not open this bucket"
            ));
        }
        if let Some(key) = &key
            && !grant.covers(key)
        {
            return Err(s3_error!(
                AccessDenied,
                "the key is outside the access key's scope"
            ));
        }
        cx.extensions_mut().insert(Target {
            bucket,
            backend: self.buckets.backend_of(&warehouse).await?,
            grant,
        });
        Ok(())
    }
}

/// Path style always; `<bucket>.<domain>` is virtual-host style when a domain is configured.
struct Host {
    domain: Option<String>,
}

impl S3Host for Host {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        });
        if let Some(domain) = &self.domain
            && let Some(bucket) = name
                .strip_suffix(domain.as_str())
                .and_then(|b| b.strip_suffix('.'))
            && !bucket.is_empty()
        {
            return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
        }
        Ok(VirtualHost::new(name))
    }
}

/// Buckets are warehouses' gateway buckets (`model::gateway_bucket_name`, bucket-safe); the
/// check here is only that a name can be one, the access check decides whether it is.
struct WarehouseNames;

impl NameValidation for WarehouseNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        !name.is_empty() && name.len() <= 255 && !name.contains('/')
    }
}

/// The bound gateway, not yet serving.
pub struct Gateway {
    listener: TcpListener,
    service: s3s::service::S3Service,
    services: Services,
    settings: GatewaySettings,
}

impl Gateway {
    /// Binds the gateway's address (before the services are built, which need to know it).
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("S3 gateway listening on {addr}"))
    }

    pub fn new(listener: TcpListener, services: Services, settings: GatewaySettings) -> Gateway {
        let buckets = Arc::new(Buckets {
            services: services.clone(),
        });
        let mut builder = S3ServiceBuilder::new(s3::FloeS3 {
            region: settings.region.clone(),
        });
        builder.set_auth(Auth {
            services: services.clone(),
        });
        builder.set_access(Access { buckets });
        builder.set_host(Host {
            domain: settings.virtual_host_domain.clone(),
        });
        builder.set_validation(WarehouseNames);
        Gateway {
            listener,
            service: builder.build(),
            services,
            settings,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `stop` resolves; then stops accepting and gives open connections `drain` to
    /// finish.
    pub async fn run(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
        drain: Duration,
    ) -> anyhow::Result<()> {
        let cleaner = tokio::spawn(clean_abandoned_uploads(
            self.services.clone(),
            self.settings.multipart_expiry,
        ));
        crate::listen::serve(
            "S3 gateway",
            self.listener,
            CloseUnreadBodies {
                inner: self.service.clone(),
                in_flight: Arc::new(tokio::sync::Semaphore::new(
                    self.settings.limits.max_requests_in_flight,
                )),
                body_timeout: self.settings.limits.body_timeout(),
                max_queue: self.settings.limits.max_queue(),
            },
            &self.settings.limits,
            stop,
            drain,
        )
        .await;
        cleaner.abort();
        Ok(())
    }
}

/// Closes the connection after an error answer to a request that carried a body: the body may not
/// have been read (a PUT refused before its bytes), and a client that got the answer before sending
/// it (`Expect: 100-continue`) may reuse the connection without ever sending it, so the server must
/// not read the next request as this one's body.
///
/// Also where the gateway holds clients to its limits: requests in flight past the cap get
/// `SlowDown` (503, `Retry-After`) at once, as do requests that waited longer than the queue limit
/// before they were read, and a request body that stalls longer than the body timeout fails.
#[derive(Clone)]
struct CloseUnreadBodies {
    inner: s3s::service::S3Service,
    in_flight: Arc<tokio::sync::Semaphore>,
    body_timeout: Duration,
    /// A request that waited longer than this before it was read gets `SlowDown` at once.
    max_queue: Duration,
}

/// Where the access check leaves the S3 operation s3s routed a request to, for the metrics.
#[derive(Clone, Default)]
struct OperationSlot(Arc<std::sync::OnceLock<String>>);

/// A request's bytes as its headers declare them (an `aws-chunked` body's decoded length).
fn declared_length(headers: &http::HeaderMap) -> u64 {
    headers
        .get("x-amz-decoded-content-length")
        .or_else(|| headers.get(http::header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// An S3 error answer made here, before s3s sees the request.
fn s3_answer(status: http::StatusCode, code: &str, message: &str) -> s3s::HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message></Error>"
    );
    let mut response = http::Response::new(s3s::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    response
}

/// S3's answer to a client that should slow down.
fn slow_down() -> s3s::HttpResponse {
    let mut response = s3_answer(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "SlowDown",
        "Too many requests in flight; retry later.",
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}

/// The S3 operations the gateway serves, as metric labels (anything else is `Other`, and a
/// request refused before it was routed is `Unknown`).
const GATEWAY_OPERATIONS: &[&str] = &[
    "ListBuckets",
    "HeadBucket",
    "GetBucketLocation",
    "ListObjects",
    "ListObjectsV2",
    "HeadObject",
    "GetObject",
    "PutObject",
    "CopyObject",
    "DeleteObject",
    "DeleteObjects",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
    "ListMultipartUploads",
];

/// Bodies up to this size that declare their SHA-256 are checked before s3s reads them (s3s
/// answers a mismatch in a body it buffers, such as DeleteObjects', with a 500).
const CHECKED_BODY_BYTES: u64 = 1 << 20;

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for CloseUnreadBodies {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>,
    >;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let headers = req.headers();
        let has_body = headers.contains_key(http::header::TRANSFER_ENCODING)
            || headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|n| n > 0);
        let inner = self.inner.clone();
        let started = std::time::Instant::now();
        let received = declared_length(headers);
        let late = crate::model::Queued::longer_than(req.extensions(), self.max_queue);
        if let Some(waited) = late {
            tracing::debug!(?waited, "request refused: waited too long to be read");
        }
        let slot = match late {
            None => self.in_flight.clone().try_acquire_owned().ok(),
            Some(_) => None,
        };
        let Some(slot) = slot else {
            let mut response = slow_down();
            if has_body {
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            crate::telemetry::gateway_request(
                "Unknown",
                response.status().as_u16(),
                0,
                0,
                started.elapsed(),
            );
            return Box::pin(async move { Ok(response) });
        };
        let operation = OperationSlot::default();
        let timeout = self.body_timeout;
        let length = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let declared_sha256 = headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
            .filter(|_| length.is_some_and(|n| n > 0 && n <= CHECKED_BODY_BYTES));
        Box::pin(async move {
            let mut req = req;
            req.extensions_mut().insert(operation.clone());
            let req = match declared_sha256 {
                // A small body that declares its hash: read it (within the body timeout) and
                // check it here, so that a mismatch is the client's 400, as on S3.
                Some(declared) => {
                    let (parts, body) = req.into_parts();
                    let timed = tower_http::timeout::TimeoutBody::new(timeout, body);
                    let bytes = match http_body_util::BodyExt::collect(timed).await {
                        Ok(collected) => collected.to_bytes(),
                        Err(e) => {
                            let mut response = s3_answer(
                                http::StatusCode::BAD_REQUEST,
                                "IncompleteBody",
                                &format!("reading the request body failed: {e}"),
                            );
                            response.headers_mut().insert(
                                http::header::CONNECTION,
                                http::HeaderValue::from_static("close"),
                            );
                            return Ok(response);
                        }
                    };
                    use sha2::Digest as _;
                    if hex::encode(sha2::Sha256::digest(&bytes)) != declared {
                        return Ok(s3_answer(
                            http::StatusCode::BAD_REQUEST,
                            "XAmzContentSHA256Mismatch",
                            "The provided 'x-amz-content-sha256' header does not match what \
                             was computed.",
                        ));
                    }
                    http::Request::from_parts(parts, s3s::Body::from(bytes))
                }
                // Only a body that is coming is timed (the wrapper hides the body's size, which
                // s3s reads to tell a bodiless request).
                None => req.map(|body| {
                    if has_body {
                        s3s::Body::http_body_unsync(tower_http::timeout::TimeoutBody::new(
                            timeout, body,
                        ))
                    } else {
                        s3s::Body::from(body)
                    }
                }),
            };
            let mut response = inner.call(req).await?;
            drop(slot);
            let status = response.status();
            let name = operation.0.get().map(String::as_str).unwrap_or("Unknown");
            let operation = GATEWAY_OPERATIONS
                .iter()
                .copied()
                .find(|known| *known == name)
                .unwrap_or("Other");
            let sent = if status.is_success() {
                declared_length(response.headers())
            } else {
                0
            };
            let received = if status.is_success() { received } else { 0 };
            crate::telemetry::gateway_request(
                operation,
                status.as_u16(),
                received,
                sent,
                started.elapsed(),
            );
            if has_body && response.status().as_u16() >= 300 {
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok(response)
        })
    }
}

/// Every so often, removes multipart uploads (and temporary files) older than `expiry` from every
/// local warehouse.
async fn clean_abandoned_uploads(services: Services, expiry: Duration) {
    let every = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        tokio::time::sleep(every).await;
        let warehouses = match services.all_warehouses().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = ?e, "listing warehouses for upload cleanup failed");
                continue;
            }
        };
        let cutoff = crate::model::now()
            - chrono::Duration::from_std(expiry).unwrap_or(chrono::Duration::days(1));
        for warehouse in warehouses {
            if let StorageProfile::Local { root, .. } = &warehouse.storage_profile {
                let objects = ObjectStore::new(root.clone());
                match tokio::task::spawn_blocking(move || objects.clean_abandoned(cutoff)).await {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(warehouse = %warehouse.name, uploads = n, "removed abandoned multipart uploads");
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(warehouse = %warehouse.name, error = %e, "upload cleanup failed");
                    }
                    _ => {}
                }
            }
        }
    }
}
