//! What a client needs to reach a table's files: the `config` and `storage-credentials` of a
//! `LoadTableResult`. For warehouses the built-in S3 gateway serves, that is the gateway's address
//! and a key scoped to the table's location (read-write, or read-only for callers that may only
//! read); plain local warehouses need nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Services;
use crate::error::{Error, Result};
use crate::model::{StorageProfile, WarehouseId};
use crate::storage::Location;

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

impl Services {
    /// The access a client gets to the files of the table at `location`.
    ///
    /// For a gateway-served warehouse a key is vended whatever the client asked: without one the
    /// files cannot be reached at all (remote signing is not offered for these warehouses).
    pub(crate) async fn storage_access(
        &self,
        warehouse: WarehouseId,
        location: &str,
        read_only: bool,
        _delegation: Delegation,
    ) -> Result<Arc<TableAccess>> {
        let wh = self.cached_warehouse(warehouse).await?;
        let StorageProfile::Local {
            s3_gateway: true, ..
        } = wh.storage_profile
        else {
            return Ok(Arc::default());
        };
        let Some(endpoint) = self.gateway_endpoint.clone() else {
            return Ok(Arc::default());
        };
        // Keys are minted per window: within one, the same table gets the same answer.
        let window = super::access_keys::vending_window();
        let cache_key = (warehouse, location.to_string(), read_only);
        if let Some((at, cached)) = self.vended.lock().expect("cache lock").get(&cache_key)
            && *at == window
        {
            return Ok(cached.clone());
        }
        let location = Location::parse(location)?;
        let (bucket, key) = location.bucket_and_key().ok_or_else(|| {
            Error::internal(
                "vending credentials",
                std::io::Error::other(format!("{location} is not an s3:// location")),
            )
        })?;
        if bucket != wh.name || key.is_empty() {
            return Err(Error::forbidden(format!(
                "the table's location {location} is not a table folder of the warehouse's bucket"
            )));
        }
        let prefix = format!("{key}/");
        let key = self.vend_scoped_key(warehouse, &prefix, read_only, window)?;
        let mut config = BTreeMap::new();
        config.insert("s3.endpoint".to_string(), endpoint);
        config.insert("s3.path-style-access".to_string(), "true".to_string());
        config.insert("s3.region".to_string(), self.gateway_region.clone());
        config.insert("client.region".to_string(), self.gateway_region.clone());
        config.insert("s3.access-key-id".to_string(), key.access_key_id);
        config.insert("s3.secret-access-key".to_string(), key.secret_access_key);
        if let Some(at) = key.expires_at {
            config.insert(
                "s3.session-token-expires-at-ms".to_string(),
                at.timestamp_millis().to_string(),
            );
        }
        let access = Arc::new(TableAccess {
            credentials: vec![(location.to_string(), config.clone())],
            config,
            rendered: std::sync::OnceLock::new(),
        });
        let mut cache = self.vended.lock().expect("cache lock");
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(cache_key, (window, access.clone()));
        Ok(access)
    }
}
