//! Secrets (storage credentials today): the `SecretStore` trait, its in-tree default
//! [`DbSecretStore`], which keeps AES-256-GCM ciphertext in the catalog database, and
//! [`vault::VaultSecretStore`], which keeps them in Vault's KV v2 (the database holds only where).
//!
//! Depends on `model` alone; the rows it seals live wherever its [`SealedRows`] port puts them (the
//! catalog database, plugged in by `server.rs`). Knows nothing of HTTP. Plain secret values
//! never reach a log: [`SecretValue`]'s `Debug` is redacted.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, bail};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;

use crate::error::{Entity, Error, Result};
use crate::model::{SealedSecret, SecretRef};
use crate::model::{SecretId, now};

pub mod vault;

/// A secret's plain bytes; `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub Vec<u8>);

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn create(&self, value: &SecretValue) -> Result<SecretId>;
    /// `NotFound(Secret)` when absent.
    async fn read(&self, id: SecretId) -> Result<SecretValue>;
    /// Replaces the value. `NotFound(Secret)` when absent.
    async fn update(&self, id: SecretId, value: &SecretValue) -> Result<()>;
    /// Deleting an absent secret is not an error.
    async fn delete(&self, id: SecretId) -> Result<()>;
    /// Whether the store can serve secrets now (reported in readiness details; a store that
    /// cannot does not make Floe unready, since only what needs a secret fails).
    async fn health(&self) -> Result<()>;
    /// The backend's name in readiness details (`database`, `vault`).
    fn name(&self) -> &'static str;
}

/// Where [`DbSecretStore`] keeps its sealed rows: the catalog database, whose store the
/// composition root (`server.rs`) plugs in.
#[async_trait]
pub trait SealedRows: Send + Sync {
    /// Inserts or replaces the secret with this id.
    async fn put_secret(&self, id: SecretId, secret: &SealedSecret) -> Result<()>;
    async fn get_secret(&self, id: SecretId) -> Result<Option<SealedSecret>>;
    /// Deleting an absent secret is not an error.
    async fn delete_secret(&self, id: SecretId) -> Result<()>;
    /// Up to `limit` ids of sealed secrets, in id order.
    async fn sealed_secret_ids(&self, limit: u32) -> Result<Vec<SecretId>>;
    /// Inserts or replaces where a secret kept outside the database lives.
    async fn put_secret_ref(&self, id: SecretId, reference: &SecretRef) -> Result<()>;
    async fn get_secret_ref(&self, id: SecretId) -> Result<Option<SecretRef>>;
    /// Deleting an absent reference is not an error.
    async fn delete_secret_ref(&self, id: SecretId) -> Result<()>;
    /// In one transaction: records where the secret now lives and deletes its sealed row.
    async fn move_secret_to_ref(&self, id: SecretId, reference: &SecretRef) -> Result<()>;
}

/// Secrets sealed with AES-256-GCM (random 96-bit nonce per write; the secret's id is the associated
/// data, so a ciphertext copied onto another row does not open) and kept in the catalog database.
pub struct DbSecretStore {
    rows: Arc<dyn SealedRows>,
    cipher: Aes256Gcm,
}

impl DbSecretStore {
    pub fn new(rows: Arc<dyn SealedRows>, key: &[u8; 32]) -> Self {
        DbSecretStore {
            rows,
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    fn seal(&self, id: SecretId, value: &SecretValue) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &value.0,
                    aad: id.0.as_bytes(),
                },
            )
            .map_err(|_| Error::internal("sealing a secret", anyhow::anyhow!("aes-gcm failed")))?;
        Ok((nonce.to_vec(), ciphertext))
    }
}

#[async_trait]
impl SecretStore for DbSecretStore {
    async fn create(&self, value: &SecretValue) -> Result<SecretId> {
        let id = SecretId::new();
        let (nonce, ciphertext) = self.seal(id, value)?;
        let at = now();
        self.rows
            .put_secret(
                id,
                &SealedSecret {
                    nonce,
                    ciphertext,
                    created_at: at,
                    updated_at: at,
                },
            )
            .await?;
        Ok(id)
    }

    async fn read(&self, id: SecretId) -> Result<SecretValue> {
        let sealed = self.rows.get_secret(id).await?.ok_or_else(|| {
            Error::not_found(Entity::Secret, format!("secret {id} does not exist"))
        })?;
        if sealed.nonce.len() != 12 {
            return Err(Error::internal(
                "opening a secret",
                anyhow::anyhow!("stored nonce of secret {id} has the wrong length"),
            ));
        }
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: id.0.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::internal(
                    "opening a secret",
                    anyhow::anyhow!(
                        "secret {id} does not decrypt: secrets.encryption_key differs from the key it was sealed with"
                    ),
                )
            })?;
        Ok(SecretValue(plain))
    }

    async fn update(&self, id: SecretId, value: &SecretValue) -> Result<()> {
        let existing = self.rows.get_secret(id).await?.ok_or_else(|| {
            Error::not_found(Entity::Secret, format!("secret {id} does not exist"))
        })?;
        let (nonce, ciphertext) = self.seal(id, value)?;
        self.rows
            .put_secret(
                id,
                &SealedSecret {
                    nonce,
                    ciphertext,
                    created_at: existing.created_at,
                    updated_at: now(),
                },
            )
            .await
    }

    async fn delete(&self, id: SecretId) -> Result<()> {
        self.rows.delete_secret(id).await
    }

    async fn health(&self) -> Result<()> {
        // Sealing proves the key works; the database's health is checked by the store itself.
        self.seal(SecretId::new(), &SecretValue(b"health".to_vec()))
            .map(|_| ())
    }

    fn name(&self) -> &'static str {
        "database"
    }
}

/// Decodes a base64 32-byte key.
pub fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = BASE64
        .decode(text.trim())
        .context("the key is not valid base64")?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("the key must be 32 bytes, not {}", b.len()))?;
    Ok(key)
}

/// Reads the key file, or creates it with a fresh random key and mode 0600 when it does not exist.
pub fn load_or_create_key_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the key file {}", path.display()))?;
        return parse_key(&text).with_context(|| format!("key file {}", path.display()));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the key file {}", path.display()))?;
    file.write_all(BASE64.encode(key).as_bytes())?;
    file.sync_all()?;
    Ok(key)
}

/// Reads a key file that must already exist.
pub fn read_key_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    if !path.exists() {
        bail!("key file {} does not exist", path.display());
    }
    load_or_create_key_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.key");
        let key = load_or_create_key_file(&path).unwrap();
        assert_eq!(load_or_create_key_file(&path).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(parse_key("c2hvcnQ=").is_err());
        assert!(parse_key("!!").is_err());
    }

    #[test]
    fn secret_values_are_redacted() {
        assert!(!format!("{:?}", SecretValue(b"hunter2".to_vec())).contains("hunter2"));
    }
}
