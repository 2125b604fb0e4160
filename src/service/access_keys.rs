//! S3 access keys of the built-in gateway.
//!
//! Two kinds, and no secret is ever stored:
//! - **Admin keys** (`FLA...`) open one whole warehouse. The database records which ids are valid
//!   (so they can be listed and revoked); the secret is an HMAC of the id under the server's key.
//! - **Scoped keys** (`FLS1...`) are what the catalog vends for one table: the id itself carries the
//!   warehouse, the key prefix, read-only or not, and the expiry, and the secret is an HMAC of the
//!   whole id. Nobody without the server's key can make a secret for an id, so a client cannot widen
//!   its scope by editing the id. They cannot be revoked before they expire; they live one hour.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{KeyInit, Mac};
use rand::Rng;

use super::{RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Error, Result};
use crate::model::{AccessKey, FileAccess, WarehouseId, now};

const ADMIN_PREFIX: &str = "FLA";
const SCOPED_PREFIX: &str = "FLS1";
/// How long a vended key lives, and how often a new one is minted (a key is reused while it has
/// at least `VENDED_LIFETIME - VENDED_WINDOW` left).
const VENDED_LIFETIME: i64 = 3600;
pub(crate) const VENDED_WINDOW: i64 = 900;
/// How long a looked-up admin key is trusted before it is read again (so a revoked key stops
/// working within this time on every instance).
const ADMIN_KEY_TTL: Duration = Duration::from_secs(10);

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What an access key lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub access_key_id: String,
    pub warehouse_id: WarehouseId,
    /// Keys outside these prefixes (relative to the bucket, each ending in '/': a table's folders,
    /// where it is now and where it was) are refused; `None` for the whole warehouse.
    pub prefixes: Option<Vec<String>>,
    pub access: FileAccess,
    pub expires_at: Option<DateTime<Utc>>,
    pub secret: String,
}

impl KeyGrant {
    /// Whether the grant reaches the object `key`.
    pub fn covers(&self, key: &str) -> bool {
        match &self.prefixes {
            None => true,
            Some(prefixes) => prefixes.iter().any(|p| key.starts_with(p.as_str())),
        }
    }

    /// Whether a listing of `prefix` may be asked for. A listing of a scope's own folder without
    /// its trailing '/' is allowed too; the listing itself names nothing outside the scope
    /// (`scope`).
    pub fn covers_listing(&self, prefix: &str) -> bool {
        match &self.prefixes {
            None => true,
            Some(prefixes) => prefixes.iter().any(|scope| {
                prefix.starts_with(scope.as_str()) || scope.strip_suffix('/') == Some(prefix)
            }),
        }
    }

    /// The key prefixes a listing is held to: nothing outside them is named, not as a key, a
    /// common prefix, a marker or a continuation token. Empty for the whole bucket.
    pub fn scope(&self) -> &[String] {
        self.prefixes.as_deref().unwrap_or(&[])
    }
}

/// A key as handed to a client.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The server's key for deriving secrets, and a short-lived cache of admin keys.
pub struct KeyMinter {
    key: [u8; 32],
    admin_cache: Mutex<HashMap<String, (Instant, Option<AccessKey>)>>,
}

impl KeyMinter {
    /// Derives the minting key from the server's secret key, so that every instance sharing that
    /// key accepts the same access keys.
    pub fn new(server_key: &[u8; 32]) -> Self {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(server_key).expect("any key length");
        mac.update(b"floe/s3-gateway/access-keys/v1");
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        KeyMinter {
            key,
            admin_cache: Mutex::new(HashMap::new()),
        }
    }

    fn secret_for(&self, access_key_id: &str) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("any key length");
        mac.update(access_key_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        // 40 characters, like AWS secrets.
        URL_SAFE_NO_PAD.encode(&digest[..30])
    }

    /// A scoped key for `prefixes` of one warehouse (at least one; each ends in '/' and holds no
    /// control character), valid until `expires_at`.
    pub fn scoped(
        &self,
        warehouse: WarehouseId,
        prefixes: &[String],
        access: FileAccess,
        expires_at: DateTime<Utc>,
    ) -> IssuedKey {
        // Prefixes are joined by NUL, which no location holds (`Location::parse` refuses control
        // characters); a key with one prefix reads as it always did.
        let prefix = prefixes.join("\0");
        let mut payload = Vec::with_capacity(25 + prefix.len());
        payload.extend_from_slice(warehouse.0.as_bytes());
        payload.extend_from_slice(&expires_at.timestamp().to_be_bytes());
        payload.push(match access {
            FileAccess::Full => 0,
            FileAccess::ReadOnly => 1,
            FileAccess::NoDelete => 2,
        });
        payload.extend_from_slice(prefix.as_bytes());
        let id = format!("{SCOPED_PREFIX}{}", URL_SAFE_NO_PAD.encode(&payload));
        IssuedKey {
            secret_access_key: self.secret_for(&id),
            access_key_id: id,
            expires_at: Some(expires_at),
        }
    }

    /// Reads a scoped key's claims. `None` when the id is not a well-formed scoped key.
    fn parse_scoped(&self, id: &str) -> Option<KeyGrant> {
        let payload = URL_SAFE_NO_PAD
            .decode(id.strip_prefix(SCOPED_PREFIX)?)
            .ok()?;
        if payload.len() < 25 {
            return None;
        }
        let warehouse = uuid::Uuid::from_slice(&payload[..16]).ok()?;
        let expires = i64::from_be_bytes(payload[16..24].try_into().ok()?);
        let access = match payload[24] {
            0 => FileAccess::Full,
            1 => FileAccess::ReadOnly,
            2 => FileAccess::NoDelete,
            _ => return None,
        };
        let prefixes: Vec<String> = String::from_utf8(payload[25..].to_vec())
            .ok()?
            .split('\0')
            .map(str::to_string)
            .collect();
        if prefixes.iter().any(|p| p.is_empty() || !p.ends_with('/')) {
            return None;
        }
        Some(KeyGrant {
            access_key_id: id.to_string(),
            warehouse_id: WarehouseId(warehouse),
            prefixes: Some(prefixes),
            access,
            expires_at: Some(Utc.timestamp_opt(expires, 0).single()?),
            secret: self.secret_for(id),
        })
    }

    /// A fresh admin key id: `FLA` and 17 random upper-case letters and digits (20 characters).
    fn new_admin_id() -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut rng = rand::thread_rng();
        let tail: String = (0..17)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        format!("{ADMIN_PREFIX}{tail}")
    }
}

/// The start (unix seconds) of the current minting window of vended keys.
pub(crate) fn vending_window() -> i64 {
    let now = now().timestamp();
    now - now.rem_euclid(VENDED_WINDOW)
}

/// Why a key does not open anything. The gateway answers each with 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Unknown,
    Expired,
    /// An admin key whose maker may no longer read the warehouse.
    NoRights,
}

impl Services {
    fn minter(&self) -> Result<&KeyMinter> {
        self.keys
            .as_deref()
            .ok_or_else(|| Error::bad_request("the S3 gateway is disabled on this server"))
    }

    /// Issues an admin key for one warehouse.
    pub async fn create_access_key(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        description: Option<String>,
        expires_in: Option<Duration>,
    ) -> Result<(AccessKey, IssuedKey)> {
        if let Some(d) = &description
            && (d.len() > 1000 || d.chars().any(char::is_control))
        {
            return Err(Error::bad_request(
                "description must be at most 1000 characters without control characters",
            ));
        }
        let expires_at = match expires_in {
            Some(d) if d.is_zero() || d > Duration::from_secs(10 * 365 * 86400) => {
                return Err(Error::bad_request(
                    "expires-in-seconds must be between 1 and 315360000",
                ));
            }
            Some(d) => Some(now() + chrono::Duration::from_std(d).expect("bounded")),
            None => None,
        };
        let minter = self.minter()?;
        self.authorize(
            ctx,
            Action::WarehouseManageAccessKeys,
            Resource::Warehouse(warehouse),
        )
        .await?;
        self.load_warehouse(warehouse).await?;
        let key = AccessKey {
            id: KeyMinter::new_admin_id(),
            warehouse_id: warehouse,
            description,
            created_at: now(),
            expires_at,
            created_by: ctx.principal.identity().map(|i| i.id.clone()),
        };
        let events = self.change_event(
            ctx,
            "access-key.created",
            format!("warehouse/{warehouse}/access-key/{}", key.id),
            serde_json::json!({}),
        );
        self.store
            .access_keys
            .create_access_key(&key, &events)
            .await?;
        let issued = IssuedKey {
            access_key_id: key.id.clone(),
            secret_access_key: minter.secret_for(&key.id),
            expires_at,
        };
        Ok((key, issued))
    }

    pub async fn list_access_keys(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<Vec<AccessKey>> {
        self.authorize(
            ctx,
            Action::WarehouseManageAccessKeys,
            Resource::Warehouse(warehouse),
        )
        .await?;
        self.load_warehouse(warehouse).await?;
        self.store.access_keys.list_access_keys(warehouse).await
    }

    pub async fn delete_access_key(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        id: &str,
    ) -> Result<()> {
        self.authorize(
            ctx,
            Action::WarehouseManageAccessKeys,
            Resource::Warehouse(warehouse),
        )
        .await?;
        let events = self.change_event(
            ctx,
            "access-key.deleted",
            format!("warehouse/{warehouse}/access-key/{id}"),
            serde_json::json!({}),
        );
        self.store
            .access_keys
            .delete_access_key(warehouse, id, &events)
            .await?;
        if let Ok(minter) = self.minter() {
            minter.admin_cache.lock().expect("cache lock").remove(id);
        }
        Ok(())
    }

    /// What an access key id opens, for the gateway's signature check.
    pub async fn resolve_access_key(
        &self,
        id: &str,
    ) -> Result<std::result::Result<KeyGrant, KeyRefusal>> {
        let minter = self.minter()?;
        let grant = if id.starts_with(SCOPED_PREFIX) {
            match minter.parse_scoped(id) {
                Some(grant) => grant,
                None => return Ok(Err(KeyRefusal::Unknown)),
            }
        } else if id.starts_with(ADMIN_PREFIX) && id.len() == 20 {
            let cached = minter
                .admin_cache
                .lock()
                .expect("cache lock")
                .get(id)
                .filter(|(at, _)| at.elapsed() < ADMIN_KEY_TTL)
                .map(|(_, key)| key.clone());
            let key = match cached {
                Some(key) => key,
                None => {
                    let key = self.store.access_keys.get_access_key(id).await?;
                    let mut cache = minter.admin_cache.lock().expect("cache lock");
                    if cache.len() > 10_000 {
                        cache.clear();
                    }
                    cache.insert(id.to_string(), (Instant::now(), key.clone()));
                    key
                }
            };
            let Some(key) = key else {
                return Ok(Err(KeyRefusal::Unknown));
            };
            let Some(access) = self.key_rights(&key).await? else {
                return Ok(Err(KeyRefusal::NoRights));
            };
            KeyGrant {
                access_key_id: key.id.clone(),
                warehouse_id: key.warehouse_id,
                prefixes: None,
                access,
                expires_at: key.expires_at,
                secret: minter.secret_for(&key.id),
            }
        } else {
            return Ok(Err(KeyRefusal::Unknown));
        };
        if grant.expires_at.is_some_and(|at| at <= now()) {
            return Ok(Err(KeyRefusal::Expired));
        }
        Ok(Ok(grant))
    }

    /// A key for `prefixes` (relative to the warehouse's bucket, each ending in '/') that lives
    /// about an hour. Keys are minted on a fixed 15-minute grid, so callers within one window
    /// share a key.
    pub(crate) fn vend_scoped_key(
        &self,
        warehouse: WarehouseId,
        prefixes: &[String],
        access: FileAccess,
        window_start: i64,
    ) -> Result<IssuedKey> {
        let minter = self.minter()?;
        let expires = Utc
            .timestamp_opt(window_start + VENDED_LIFETIME, 0)
            .single()
            .expect("in range");
        Ok(minter.scoped(warehouse, prefixes, access, expires))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_keys_carry_their_claims_and_cannot_be_edited() {
        let minter = KeyMinter::new(&[7u8; 32]);
        let warehouse = WarehouseId(uuid::Uuid::new_v4());
        let expires = Utc.timestamp_opt(4_000_000_000, 0).unwrap();
        let one = |p: &str| vec![p.to_string()];
        let key = minter.scoped(warehouse, &one("ns/t-1/"), FileAccess::ReadOnly, expires);
        let grant = minter.parse_scoped(&key.access_key_id).unwrap();
        assert_eq!(grant.warehouse_id, warehouse);
        assert_eq!(grant.prefixes, Some(one("ns/t-1/")));
        assert_eq!(grant.access, FileAccess::ReadOnly);
        let keeping = minter.scoped(warehouse, &one("ns/t-1/"), FileAccess::NoDelete, expires);
        let keeping = minter.parse_scoped(&keeping.access_key_id).unwrap();
        assert_eq!(keeping.access, FileAccess::NoDelete);
        assert_ne!(keeping.secret, grant.secret);
        assert_eq!(grant.expires_at, Some(expires));
        assert_eq!(grant.secret, key.secret_access_key);
        assert_eq!(key.secret_access_key.len(), 40);
        assert!(grant.covers("ns/t-1/data/x.parquet"));
        assert!(!grant.covers("ns/t-10/data/x.parquet"));
        assert!(!grant.covers("ns/t-1"));
        assert!(grant.covers_listing("ns/t-1"));
        assert!(!grant.covers_listing("ns/"));

        // The same claims with a wider prefix make a different id, whose secret differs.
        let wider = minter.scoped(warehouse, &one("ns/"), FileAccess::ReadOnly, expires);
        assert_ne!(wider.secret_access_key, key.secret_access_key);
        // A table that moved has a key for each of its folders, and for nothing between them.
        let moved = vec!["ns/x1/".to_string(), "ns/x2/".to_string()];
        let both = minter.scoped(warehouse, &moved, FileAccess::Full, expires);
        let both = minter.parse_scoped(&both.access_key_id).unwrap();
        assert_eq!(both.prefixes, Some(moved));
        assert!(both.covers("ns/x1/metadata/snap.avro") && both.covers("ns/x2/data/a"));
        assert!(!both.covers("ns/x3/a") && !both.covers("ns/x1"));
        assert!(both.covers_listing("ns/x2") && !both.covers_listing("ns/x"));
        // A prefix that does not end a folder is never accepted, however the id was made.
        let odd = URL_SAFE_NO_PAD.encode([&[0u8; 25][..], b"ns/x1/\0ns/x"].concat());
        assert!(
            minter
                .parse_scoped(&format!("{SCOPED_PREFIX}{odd}"))
                .is_none()
        );
        // Another server key derives other secrets for the same id.
        let other = KeyMinter::new(&[8u8; 32]);
        assert_ne!(other.secret_for(&key.access_key_id), key.secret_access_key);
        assert!(minter.parse_scoped("FLS1!!").is_none());
        assert!(minter.parse_scoped("FLS1AAAA").is_none());
        assert_eq!(KeyMinter::new_admin_id().len(), 20);
    }
}
