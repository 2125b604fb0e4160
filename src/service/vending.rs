//! What a client needs to reach a table's files: the `config` and `storage-credentials` of a
//! `LoadTableResult`, and the remote signing of its S3 requests.
//!
//! - Warehouses the built-in S3 gateway serves: the gateway's address and a Floe-issued key scoped
//!   to the table's folder, or remote signing when that is all the client asked for.
//! - S3 warehouses: a temporary key from STS `AssumeRole` with a session policy for the table's
//!   folder when the warehouse has STS and the client asked for vended credentials; otherwise
//!   remote signing when the client asked for either (the warehouse's own key never leaves Floe);
//!   otherwise just the store's address, for clients that bring their own keys.
//! - Plain local warehouses need nothing.
//!
//! Credentials are read-write, or read-only for callers that may only read. Answers are cached and
//! reused while the credential in them has at least 15 minutes left.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Error, Result};
use crate::model::{
    FileAccess, RefKind, RefSelector, StorageCredential, StorageProfile, TabularIdent, TabularKind,
    Warehouse, WarehouseId, now,
};
use crate::storage::signing::{self, SignRequest, SigningKey, SigningScope};
use crate::storage::{Location, sts};

/// What the client asked for in `X-Iceberg-Access-Delegation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delegation {
    pub vended_credentials: bool,
    pub remote_signing: bool,
}

impl Delegation {
    /// Parses the header's comma-separated list; unknown modes are ignored.
    pub fn parse(header: Option<&str>) -> Delegation {
        let mut delegation = Delegation::default();
        for mode in header.unwrap_or("").split(',') {
            match mode.trim() {
                "vended-credentials" => delegation.vended_credentials = true,
                "remote-signing" => delegation.remote_signing = true,
                _ => {}
            }
        }
        delegation
    }
}

/// The table config and storage credentials of a response.
#[derive(Debug, Clone, Default)]
pub struct TableAccess {
    pub config: BTreeMap<String, String>,
    /// `(prefix, config)` pairs.
    pub credentials: Vec<(String, BTreeMap<String, String>)>,
    /// A rendering of the above kept by the HTTP layer, which sends the same bytes with every load
    /// of the table while the access is current.
    pub rendered: std::sync::OnceLock<bytes::Bytes>,
}

/// How a client reaches a table's files, as decided from the warehouse and the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AccessMode {
    /// Nothing to hand out (plain local warehouses).
    None,
    /// The store's address only (S3 warehouses, clients with their own keys).
    Address,
    /// A key scoped to the table: Floe-issued for gateway-served warehouses, STS for S3.
    Vended,
    /// The client asks Floe to sign each request.
    RemoteSigning,
}

/// A vended credential is reused until this long before it expires.
const REUSE_MARGIN: i64 = 15 * 60;
/// How long an STS credential is asked to live.
const STS_LIFETIME: Duration = Duration::from_secs(3600);

/// Where an S3 request for a table goes and under which key Floe signs it.
struct SigningTarget {
    endpoint: String,
    bucket: String,
    region: String,
    /// The table's folders relative to the bucket, each ending in `/`: where it is now first,
    /// then every other folder it claims (where it was before a `set-location`).
    prefixes: Vec<String>,
    path_style: bool,
}

/// Percent-encodes one path segment (everything but RFC 3986's unreserved characters).
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The table's sign endpoint relative to the catalog's base URI (`.../catalog`), under the
/// request's prefix: the warehouse id, and `@<ref>` when the request named a branch, tag or commit
/// (a table only that branch has is found there, and a tag's signing stays read-only).
fn sign_endpoint(warehouse: WarehouseId, reference: &RefSelector, ident: &TabularIdent) -> String {
    let namespace = ident
        .namespace
        .levels()
        .iter()
        .map(|level| encode_segment(level))
        .collect::<Vec<_>>()
        .join("%1F");
    let prefix = match reference {
        RefSelector::Named(name) => format!("{warehouse}@{}", encode_segment(name)),
        RefSelector::Main => warehouse.to_string(),
    };
    format!(
        "v1/{prefix}/namespaces/{namespace}/tables/{}/sign",
        encode_segment(&ident.name)
    )
}

impl Services {
    /// Decides how the client reaches the table's files.
    fn access_mode(&self, wh: &Warehouse, delegation: Delegation) -> AccessMode {
        match &wh.storage_profile {
            profile if profile.gateway_served() && self.gateway_endpoint.is_some() => {
                // Without a key or signatures the files cannot be reached at all, so a key is
                // vended whatever was asked, unless the client asked for signing alone.
                if delegation.remote_signing && !delegation.vended_credentials {
                    AccessMode::RemoteSigning
                } else {
                    AccessMode::Vended
                }
            }
            StorageProfile::Local { .. } => AccessMode::None,
            StorageProfile::S3 { sts_enabled, .. } => {
                if delegation.vended_credentials && *sts_enabled == Some(true) {
                    AccessMode::Vended
                } else if delegation.vended_credentials || delegation.remote_signing {
                    AccessMode::RemoteSigning
                } else {
                    AccessMode::Address
                }
            }
        }
    }

    /// The store, bucket and folders of the table at `location` that also claims `folders`.
    fn signing_target(
        &self,
        wh: &Warehouse,
        location: &str,
        folders: &[String],
    ) -> Result<SigningTarget> {
        let base = crate::storage::base_location(wh)?;
        let folder = |text: &str| -> Result<(String, String)> {
            let location = Location::parse(text)?;
            let (bucket, key) = location.bucket_and_key().ok_or_else(|| {
                Error::internal(
                    "reaching a table's files",
                    std::io::Error::other(format!("{location} is not an s3:// location")),
                )
            })?;
            if key.is_empty() || !location.is_within(&base) || location == base {
                return Err(Error::forbidden(format!(
                    "the table's location {location} is not a table folder of the warehouse"
                )));
            }
            Ok((bucket.to_string(), format!("{key}/")))
        };
        let (bucket, prefix) = folder(location)?;
        let mut prefixes = vec![prefix];
        for other in folders {
            match folder(other) {
                Ok((b, p)) if b == bucket => {
                    if !prefixes.contains(&p) {
                        prefixes.push(p);
                    }
                }
                _ => {
                    tracing::warn!(folder = %other, "a folder the table claims is not one of its warehouse's; left out of its access")
                }
            }
        }
        let (endpoint, region, path_style) = match &wh.storage_profile {
            // The gateway's bucket (the store's, for a gateway-served S3 warehouse, is Floe's
            // business alone).
            StorageProfile::Local { .. }
            | StorageProfile::S3 {
                s3_gateway: true, ..
            } => (
                self.gateway_endpoint.clone().ok_or_else(|| {
                    Error::bad_request("the S3 gateway is disabled on this server")
                })?,
                self.gateway_region.clone(),
                true,
            ),
            StorageProfile::S3 {
                region,
                endpoint,
                path_style_access,
                ..
            } => (
                endpoint
                    .clone()
                    .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com")),
                region.clone(),
                path_style_access.unwrap_or(false),
            ),
        };
        Ok(SigningTarget {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bucket,
            region,
            prefixes,
            path_style,
        })
    }

    /// What a client may do with a table's files: nothing but read through a tag or a commit,
    /// or without the right to commit; no deletes once the warehouse has refs besides `main` (a
    /// file one line no longer uses may be what another line, tag or commit reads).
    pub(crate) async fn file_access(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        may_commit: bool,
    ) -> Result<FileAccess> {
        if !may_commit
            || (!ctx.reference.is_main()
                && self.request_ref(ctx, warehouse).await?.kind != RefKind::Branch)
        {
            return Ok(FileAccess::ReadOnly);
        }
        // A protected branch changes only by merge: its files too.
        let branch = match &ctx.reference {
            crate::model::RefSelector::Main => crate::model::MAIN_BRANCH.to_string(),
            _ => self.request_ref(ctx, warehouse).await?.name,
        };
        if self.is_protected(warehouse, &branch).await? {
            return Ok(FileAccess::ReadOnly);
        }
        Ok(if self.has_other_refs(warehouse).await? {
            FileAccess::NoDelete
        } else {
            FileAccess::Full
        })
    }

    /// Whether the warehouse has refs besides `main`. Once it has, it always has (retired lines
    /// keep their commits readable), so that answer is kept; "none" is asked again after a few
    /// seconds, for refs other instances make.
    pub(crate) async fn has_other_refs(&self, warehouse: WarehouseId) -> Result<bool> {
        if let Some((at, known)) = self
            .caches
            .other_refs
            .lock()
            .expect("cache lock")
            .get(&warehouse)
            && (*known || at.elapsed() < std::time::Duration::from_secs(5))
        {
            return Ok(*known);
        }
        let known = self.store.refs.has_other_refs(warehouse).await?;
        let mut cache = self.caches.other_refs.lock().expect("cache lock");
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(warehouse, (std::time::Instant::now(), known));
        Ok(known)
    }

    /// This process made a ref in the warehouse.
    pub(crate) fn refs_made(&self, warehouse: WarehouseId) {
        self.caches
            .other_refs
            .lock()
            .expect("cache lock")
            .insert(warehouse, (std::time::Instant::now(), true));
    }

    /// The access a client gets to the files of the table `ident` (UUID `uuid.0`) at `location`:
    /// its folder, and every other folder the table claims (its current snapshot may still live
    /// where it was before a `set-location`). `uuid.1`: the table was just made with a UUID new
    /// to the warehouse, so its location is its only folder.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn storage_access(
        &self,
        warehouse: WarehouseId,
        reference: &RefSelector,
        ident: &TabularIdent,
        location: &str,
        (uuid, new_uuid): (uuid::Uuid, bool),
        access: FileAccess,
        delegation: Delegation,
    ) -> Result<Arc<TableAccess>> {
        let wh = self.cached_warehouse(warehouse).await?;
        let mode = self.access_mode(&wh, delegation);
        if mode == AccessMode::None {
            return Ok(Arc::default());
        }
        let now_secs = now().timestamp();
        // The ref and the name are part of the key (the signer endpoint names them), and so is
        // the warehouse's settings version (endpoint, role); the table's UUID too (the folders a
        // key opens are its claims: a table re-created at the same place after a purge has
        // others).
        let cache_key = (
            warehouse,
            wh.updated_at,
            format!(
                "{}\u{1f}{ident}\u{1f}{location}\u{1f}{uuid}",
                if reference.is_main() {
                    ""
                } else {
                    reference.as_str()
                }
            ),
            access,
            mode,
        );
        let cached = self
            .caches
            .vended
            .lock()
            .expect("cache lock")
            .get(&cache_key, now_secs);
        if let Some(cached) = cached {
            return Ok(cached);
        }
        let folders = if new_uuid {
            Vec::new()
        } else {
            self.store
                .tabulars
                .claimed_folders(warehouse, uuid, Some(TabularKind::Table))
                .await?
        };
        let target = self.signing_target(&wh, location, &folders)?;
        let mut config = BTreeMap::new();
        config.insert("s3.endpoint".to_string(), target.endpoint.clone());
        config.insert(
            "s3.path-style-access".to_string(),
            target.path_style.to_string(),
        );
        config.insert("s3.region".to_string(), target.region.clone());
        config.insert("client.region".to_string(), target.region.clone());
        let mut credentials = Vec::new();
        // Address and signing configs do not expire; they are kept as long as a vended key.
        let mut valid_until = now_secs + REUSE_MARGIN;
        match mode {
            AccessMode::None | AccessMode::Address => {}
            AccessMode::RemoteSigning => {
                crate::telemetry::vended(crate::telemetry::Vended::RemoteSigning);
                let endpoint = sign_endpoint(warehouse, reference, ident);
                config.insert("s3.remote-signing-enabled".into(), "true".into());
                config.insert("s3.signer".into(), "S3V4RestSigner".into());
                config.insert("s3.signer.endpoint".into(), endpoint.clone());
                config.insert("signer.endpoint".into(), endpoint);
                if let Some(base) = &self.catalog_url {
                    config.insert("s3.signer.uri".into(), base.clone());
                    config.insert("signer.uri".into(), base.clone());
                }
                // PyIceberg signs through its fsspec FileIO only.
                config.insert(
                    "py-io-impl".into(),
                    "pyiceberg.io.fsspec.FsspecFileIO".into(),
                );
            }
            AccessMode::Vended => {
                let (key_id, secret, token, expires_at) = match &wh.storage_profile {
                    StorageProfile::Local { .. }
                    | StorageProfile::S3 {
                        s3_gateway: true, ..
                    } => {
                        crate::telemetry::vended(crate::telemetry::Vended::GatewayKey);
                        let window = super::access_keys::vending_window();
                        let key =
                            self.vend_scoped_key(warehouse, &target.prefixes, access, window)?;
                        valid_until = window + super::access_keys::VENDED_WINDOW;
                        (
                            key.access_key_id,
                            key.secret_access_key,
                            None,
                            key.expires_at,
                        )
                    }
                    StorageProfile::S3 { .. } => {
                        let key = self.assume_table_role(&wh, &target, access).await?;
                        crate::telemetry::vended(crate::telemetry::Vended::Sts);
                        valid_until = key.expires_at.timestamp() - REUSE_MARGIN;
                        (
                            key.access_key_id,
                            key.secret_access_key,
                            Some(key.session_token),
                            Some(key.expires_at),
                        )
                    }
                };
                config.insert("s3.access-key-id".to_string(), key_id);
                config.insert("s3.secret-access-key".to_string(), secret);
                if let Some(token) = token {
                    config.insert("s3.session-token".to_string(), token);
                }
                if let Some(at) = expires_at {
                    config.insert(
                        "s3.session-token-expires-at-ms".to_string(),
                        at.timestamp_millis().to_string(),
                    );
                }
                // One entry per folder (engines pick the longest prefix that matches a file); the
                // key opens all of them.
                for prefix in &target.prefixes {
                    let folder = format!("s3://{}/{}", target.bucket, prefix.trim_end_matches('/'));
                    credentials.push((folder, config.clone()));
                }
            }
        }
        let access = Arc::new(TableAccess {
            credentials,
            config,
            rendered: std::sync::OnceLock::new(),
        });
        self.caches.vended.lock().expect("cache lock").insert(
            cache_key,
            valid_until,
            access.clone(),
        );
        Ok(access)
    }

    /// A temporary STS key for the table's folder.
    async fn assume_table_role(
        &self,
        wh: &Warehouse,
        target: &SigningTarget,
        access: FileAccess,
    ) -> Result<sts::TemporaryKey> {
        let StorageProfile::S3 {
            sts_role_arn: Some(role_arn),
            sts_endpoint,
            region,
            ..
        } = &wh.storage_profile
        else {
            return Err(Error::bad_request("the warehouse has no STS role"));
        };
        let credential = self.signing_credential(wh).await?;
        let StorageCredential::S3AccessKey {
            access_key_id,
            secret_access_key,
        } = credential.as_ref();
        let policy = sts::table_policy(&target.bucket, &target.prefixes, access, region);
        sts::assume_role(sts::AssumeRole {
            endpoint: sts_endpoint.as_deref(),
            region,
            access_key_id,
            secret_access_key,
            role_arn,
            session_name: "floe-vended",
            policy: &policy,
            duration: STS_LIFETIME,
        })
        .await
    }

    /// The warehouse's storage credential, cached per version of the warehouse's settings.
    async fn signing_credential(&self, wh: &Warehouse) -> Result<Arc<StorageCredential>> {
        let key = (wh.id, wh.updated_at);
        if let Some(credential) = self
            .caches
            .credentials
            .lock()
            .expect("cache lock")
            .get(&key)
        {
            return Ok(credential.clone());
        }
        let credential = Arc::new(self.warehouse_credential(wh).await?.ok_or_else(|| {
            Error::bad_request("the warehouse has no storage credential to sign with")
        })?);
        let mut cache = self.caches.credentials.lock().expect("cache lock");
        cache.retain(|(id, _), _| *id != wh.id);
        if cache.len() >= 1_000 {
            cache.clear();
        }
        cache.insert(key, credential.clone());
        Ok(credential)
    }

    /// Signs an S3 request for the table `ident` (remote signing): only requests inside the
    /// table's folder, and writes only for callers that may commit to the table. The key is one
    /// scoped to the table where there is one (gateway-served warehouses; S3 with STS); otherwise
    /// the warehouse's own, and the store's SigV4 checks (unsigned `x-amz-*` headers and payload
    /// hashes refused, as AWS does) are what keep a signed request from being altered.
    pub async fn sign_request(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        request: SignRequest,
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let table = self.find_table(ctx, warehouse, ident).await?;
        let resource = Resource::Tabular {
            warehouse,
            ident: ident.clone(),
            uuid: table.uuid,
            kind: TabularKind::Table,
        };
        self.authorize(ctx, Action::TableReadCredentials, resource.clone())
            .await?;
        let may_commit = self.may(ctx, Action::TableCommit, &resource).await?;
        let access = self.file_access(ctx, warehouse, may_commit).await?;
        let may_write = access.may_write();
        let wh = self.cached_warehouse(warehouse).await?;
        if matches!(
            wh.storage_profile,
            StorageProfile::Local {
                s3_gateway: false,
                ..
            }
        ) {
            return Err(Error::bad_request(
                "the table's warehouse is on local disk; there is nothing to sign",
            ));
        }
        let folders = self
            .store
            .tabulars
            .claimed_folders(warehouse, table.uuid, Some(TabularKind::Table))
            .await?;
        let target = self.signing_target(&wh, &table.location, &folders)?;
        let scope = SigningScope {
            endpoint: &target.endpoint,
            bucket: &target.bucket,
            region: &target.region,
            prefixes: &target.prefixes,
            may_write,
            may_delete: access.may_delete(),
        };
        // A write that must not replace an object is signed with `If-None-Match: *`, which the
        // client is told to send (the signature covers it).
        let mut request = request;
        let added =
            signing::check(&scope, &request).inspect_err(|_| crate::telemetry::signed(false))?;
        if let Some((name, value)) = added {
            request
                .headers
                .insert(name.to_string(), vec![value.to_string()]);
        }
        let mut signed = self
            .sign_checked(
                ctx, warehouse, ident, &table, &wh, &target, &scope, &request, access,
            )
            .await?;
        if let Some((name, value)) = added {
            signed.insert(name.to_string(), vec![value.to_string()]);
        }
        crate::telemetry::signed(true);
        Ok(signed)
    }

    /// Signs a request `check` passed, with the key that fits the warehouse.
    #[allow(clippy::too_many_arguments)]
    async fn sign_checked(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        table: &crate::model::Tabular,
        wh: &Warehouse,
        target: &SigningTarget,
        scope: &SigningScope<'_>,
        request: &SignRequest,
        access: FileAccess,
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let (scope, request) = (scope.clone(), request.clone());
        match &wh.storage_profile {
            // Signed with a gateway key scoped to the table: never with the store's credential.
            StorageProfile::Local { .. }
            | StorageProfile::S3 {
                s3_gateway: true, ..
            } => {
                let window = super::access_keys::vending_window();
                let key = self.vend_scoped_key(warehouse, &target.prefixes, access, window)?;
                signing::sign_request(
                    &scope,
                    &request,
                    &SigningKey {
                        access_key_id: &key.access_key_id,
                        secret_access_key: &key.secret_access_key,
                        session_token: None,
                    },
                    SystemTime::now(),
                )
            }
            StorageProfile::S3 {
                sts_enabled: Some(true),
                ..
            } => {
                // A temporary key whose session policy holds it to the table's folder (and to
                // reads for readers), so the store itself refuses anything the check let through.
                let access = self
                    .storage_access(
                        warehouse,
                        &ctx.reference,
                        ident,
                        &table.location,
                        (table.uuid, false),
                        access,
                        Delegation {
                            vended_credentials: true,
                            remote_signing: false,
                        },
                    )
                    .await?;
                let part = |name: &str| {
                    access.config.get(name).map(String::as_str).ok_or_else(|| {
                        Error::internal(
                            "signing with a table key",
                            std::io::Error::other(format!("the vended access has no {name}")),
                        )
                    })
                };
                signing::sign_request(
                    &scope,
                    &request,
                    &SigningKey {
                        access_key_id: part("s3.access-key-id")?,
                        secret_access_key: part("s3.secret-access-key")?,
                        session_token: Some(part("s3.session-token")?),
                    },
                    SystemTime::now(),
                )
            }
            StorageProfile::S3 { .. } => {
                let credential = self.signing_credential(wh).await?;
                let StorageCredential::S3AccessKey {
                    access_key_id,
                    secret_access_key,
                } = credential.as_ref();
                signing::sign_request(
                    &scope,
                    &request,
                    &SigningKey {
                        access_key_id,
                        secret_access_key,
                        session_token: None,
                    },
                    SystemTime::now(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NamespaceIdent;

    #[test]
    fn sign_endpoints_encode_every_part() {
        let warehouse = WarehouseId(uuid::Uuid::nil());
        let ident = TabularIdent::new(
            NamespaceIdent::new(vec!["a b".into(), "c/d".into()]).unwrap(),
            "t*?$%\"".into(),
        )
        .unwrap();
        assert_eq!(
            sign_endpoint(warehouse, &RefSelector::Main, &ident),
            "v1/00000000-0000-0000-0000-000000000000/namespaces/a%20b%1Fc%2Fd/tables/t%2A%3F%24%25%22/sign"
        );
        assert_eq!(
            sign_endpoint(warehouse, &RefSelector::Named("dev.2".into()), &ident),
            "v1/00000000-0000-0000-0000-000000000000@dev.2/namespaces/a%20b%1Fc%2Fd/tables/t%2A%3F%24%25%22/sign"
        );
    }
}
