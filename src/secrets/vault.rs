//! Secrets in Vault's (or OpenBao's) KV v2 engine: `secrets.backend = "vault"`.
//!
//! Each secret is one KV path, `<path_prefix>/<secret id>` under `mount`; the catalog database
//! keeps only a [`SecretRef`] (store, mount, path and the version the catalog reads). A change
//! writes a new version in Vault and then moves the reference to it, so until the database says
//! otherwise every reader keeps the previous version: a failed change leaves the old credential
//! in force, never half of a new one. Deleting a secret deletes its path with every version.
//!
//! Secrets still sealed in the database (written before the switch to Vault) stay readable, and
//! are moved to Vault when next changed or by `floe secrets migrate --to vault` ([`migrate`]),
//! which moves them one at a time, each in one database transaction, so it can be stopped and
//! run again at any point.
//!
//! Floe logs in with a token or with AppRole, renews its token before it expires (and logs in
//! again when AppRole's maximum lifetime is reached), and starts even when Vault is down: what
//! needs a secret then fails with `Unavailable` (503), everything else works.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use vaultrs::api::kv2::requests::SetSecretRequestOptions;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use super::{DbSecretStore, SealedRows, SecretStore, SecretValue};
use crate::error::{Entity, Error, ErrorKind, Result};
use crate::model::{SecretId, SecretRef, now};

/// `secrets.vault`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    /// Vault's address, e.g. `https://vault.internal:8200`.
    pub url: String,
    /// A token (or `token_file`, e.g. a mounted Kubernetes secret). Renewed while renewable.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// AppRole instead of a token: the role id and its secret id (or `secret_id_file`).
    pub role_id: Option<String>,
    pub secret_id: Option<String>,
    pub secret_id_file: Option<PathBuf>,
    /// Where the AppRole auth method is mounted.
    pub approle_mount: String,
    /// The KV v2 engine's mount.
    pub mount: String,
    /// Secrets live at `<path_prefix>/<secret id>` in the mount.
    pub path_prefix: String,
    /// A Vault Enterprise namespace.
    pub namespace: Option<String>,
    /// A PEM root certificate to trust for Vault's TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// How long one request to Vault may take, milliseconds.
    pub timeout_ms: u64,
}

impl Default for VaultConfig {
    fn default() -> Self {
        VaultConfig {
            url: "http://127.0.0.1:8200".into(),
            token: None,
            token_file: None,
            role_id: None,
            secret_id: None,
            secret_id_file: None,
            approle_mount: "approle".into(),
            mount: "secret".into(),
            path_prefix: "floe".into(),
            namespace: None,
            tls_ca_file: None,
            timeout_ms: 5_000,
        }
    }
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("VaultConfig")
            .field("url", &self.url)
            .field("token", &hidden(&self.token))
            .field("token_file", &self.token_file)
            .field("role_id", &self.role_id)
            .field("secret_id", &hidden(&self.secret_id))
            .field("secret_id_file", &self.secret_id_file)
            .field("approle_mount", &self.approle_mount)
            .field("mount", &self.mount)
            .field("path_prefix", &self.path_prefix)
            .field("namespace", &self.namespace)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl VaultConfig {
    /// Checks the settings without contacting Vault.
    pub fn validate(&self) -> anyhow::Result<()> {
        let url = reqwest::Url::parse(&self.url).context("url is not a URL")?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("url must be http:// or https://");
        }
        let token = self.token.is_some() || self.token_file.is_some();
        let approle =
            self.role_id.is_some() || self.secret_id.is_some() || self.secret_id_file.is_some();
        match (token, approle) {
            (true, true) => bail!("set a token or AppRole's role_id and secret_id, not both"),
            (false, false) => bail!("set token (or token_file), or role_id and secret_id"),
            _ => {}
        }
        if self.token.is_some() && self.token_file.is_some() {
            bail!("set token or token_file, not both");
        }
        if approle {
            if self.role_id.is_none() {
                bail!("AppRole needs role_id");
            }
            if self.secret_id.is_some() == self.secret_id_file.is_some() {
                bail!("AppRole needs one of secret_id and secret_id_file");
            }
        }
        for (name, value) in [
            ("mount", &self.mount),
            ("path_prefix", &self.path_prefix),
            ("approle_mount", &self.approle_mount),
        ] {
            if value.is_empty()
                || value.starts_with('/')
                || value.ends_with('/')
                || value
                    .split('/')
                    .any(|s| s.is_empty() || s == "." || s == "..")
            {
                bail!("{name} must be a relative path like `floe` or `teams/floe`, not {value:?}");
            }
        }
        if self.timeout_ms == 0 {
            bail!("timeout_ms must be positive");
        }
        Ok(())
    }
}

/// How Floe logs in to Vault.
enum Login {
    Token(String),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: String,
    },
}

/// What Floe knows of its current token's lifetime.
#[derive(Clone, Copy)]
struct Lease {
    /// Seconds the token had to live when obtained or last renewed (0: it never expires).
    ttl: u64,
    renewable: bool,
    obtained: Instant,
    /// The lifetime AppRole logins give; a renewal that gives much less means the token nears
    /// its maximum lifetime, and Floe logs in again instead.
    login_ttl: u64,
}

/// A logged-in client, replaced as a whole when Floe logs in again.
struct Session {
    url: String,
    ca_file: Option<String>,
    namespace: Option<String>,
    timeout: Duration,
    login: Login,
    client: RwLock<Option<Arc<VaultClient>>>,
    lease: Mutex<Option<Lease>>,
    /// One login at a time.
    logging_in: tokio::sync::Mutex<()>,
    /// Why the last call to Vault failed, until one succeeds (for readiness details and logs).
    last_error: Mutex<Option<String>>,
}

impl Session {
    fn new_client(&self, token: &str) -> Result<VaultClient> {
        let settings = VaultClientSettingsBuilder::default()
            .address(&self.url)
            .token(token)
            .timeout(Some(self.timeout))
            .ca_certs(self.ca_file.iter().cloned().collect())
            .namespace(self.namespace.clone())
            .build()
            .map_err(|e| Error::internal("configuring the Vault client", e))?;
        VaultClient::new(settings).map_err(|e| self.error("building the Vault client", e))
    }

    fn current(&self) -> Option<Arc<VaultClient>> {
        self.client.read().expect("vault client lock").clone()
    }

    /// The logged-in client, logging in first when there is none.
    async fn client(&self) -> Result<Arc<VaultClient>> {
        if let Some(client) = self.current() {
            return Ok(client);
        }
        self.log_in(None).await
    }

    /// Logs in (again): with a token, builds a client for it; with AppRole, asks Vault for a new
    /// token. `stale` is the client that was refused; when another task already replaced it,
    /// its replacement is used.
    async fn log_in(&self, stale: Option<&Arc<VaultClient>>) -> Result<Arc<VaultClient>> {
        let _one = self.logging_in.lock().await;
        if let Some(current) = self.current()
            && stale.is_none_or(|stale| !Arc::ptr_eq(stale, &current))
        {
            return Ok(current);
        }
        let client = match &self.login {
            Login::Token(token) => self.new_client(token)?,
            Login::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let anonymous = self.new_client("")?;
                let auth = vaultrs::auth::approle::login(&anonymous, mount, role_id, secret_id)
                    .await
                    .map_err(|e| self.error("logging in to Vault with AppRole", e))?;
                *self.lease.lock().expect("lease lock") = Some(Lease {
                    ttl: auth.lease_duration,
                    renewable: auth.renewable,
                    obtained: Instant::now(),
                    login_ttl: auth.lease_duration,
                });
                tracing::info!(
                    lease_seconds = auth.lease_duration,
                    renewable = auth.renewable,
                    "logged in to Vault with AppRole"
                );
                self.new_client(&auth.client_token)?
            }
        };
        let client = Arc::new(client);
        *self.client.write().expect("vault client lock") = Some(client.clone());
        Ok(client)
    }

    fn is_approle(&self) -> bool {
        matches!(self.login, Login::AppRole { .. })
    }

    /// Maps a failed call onto Floe's errors (`Unavailable` when Vault cannot be reached or
    /// cannot answer, `NotFound` for an absent path) and remembers it for readiness.
    fn error(&self, what: &str, e: ClientError) -> Error {
        let (kind, reason) = match &e {
            ClientError::APIError { code: 404, .. } => (ErrorKind::NotFound(Entity::Secret), None),
            ClientError::APIError { code, errors } => {
                let said = if errors.is_empty() {
                    String::new()
                } else {
                    format!(": {}", errors.join("; "))
                };
                let reason = match *code {
                    403 => format!("Vault refused Floe's token (403{said})"),
                    code => format!("Vault answered {code}{said}"),
                };
                (ErrorKind::Unavailable, Some(reason))
            }
            ClientError::RestClientError { .. } => (
                ErrorKind::Unavailable,
                Some(format!("Vault at {} did not answer", self.url)),
            ),
            _ => (ErrorKind::Internal, Some(e.to_string())),
        };
        match (kind, reason) {
            (ErrorKind::NotFound(_), _) => Error::not_found(Entity::Secret, what.to_string()),
            (ErrorKind::Unavailable, Some(reason)) => {
                tracing::warn!(error = %reason, cause = ?e, "{what} failed");
                *self.last_error.lock().expect("vault status lock") = Some(reason.clone());
                Error::unavailable(
                    format!("the secret store is unavailable ({what}: {reason})"),
                    anyhow::anyhow!("{e:?}"),
                )
            }
            _ => Error::internal(what.to_string(), anyhow::anyhow!("{e:?}")),
        }
    }

    fn succeeded(&self) {
        let mut last = self.last_error.lock().expect("vault status lock");
        if last.is_some() {
            tracing::info!("Vault answers again");
            *last = None;
        }
    }

    /// Renews the token, or logs in again (AppRole) when it cannot be renewed or has reached its
    /// maximum lifetime. Returns how long to wait before the next refresh (None: never).
    async fn refresh(&self) -> Option<Duration> {
        let lease = *self.lease.lock().expect("lease lock");
        let Some(lease) = lease else {
            // A token whose lifetime is not known yet: look it up.
            return match self.look_up().await {
                Ok(()) => self.next_refresh(),
                Err(_) => Some(Duration::from_secs(5)),
            };
        };
        if lease.ttl == 0 {
            return None;
        }
        let renewed = if lease.renewable {
            match self.client().await {
                Ok(client) => match vaultrs::token::renew_self(&*client, None).await {
                    Ok(auth) => {
                        self.succeeded();
                        Some(auth)
                    }
                    Err(e) => {
                        let _ = self.error("renewing Floe's Vault token", e);
                        None
                    }
                },
                Err(_) => None,
            }
        } else {
            None
        };
        match renewed {
            // Renewed with a useful lifetime left.
            Some(auth) if !self.is_approle() || auth.lease_duration * 2 >= lease.login_ttl => {
                tracing::debug!(
                    lease_seconds = auth.lease_duration,
                    "renewed Floe's Vault token"
                );
                *self.lease.lock().expect("lease lock") = Some(Lease {
                    ttl: auth.lease_duration,
                    renewable: auth.renewable,
                    obtained: Instant::now(),
                    login_ttl: lease.login_ttl,
                });
                self.next_refresh()
            }
            _ if self.is_approle() => {
                let stale = self.current();
                match self.log_in(stale.as_ref()).await {
                    Ok(_) => {
                        self.succeeded();
                        self.next_refresh()
                    }
                    Err(_) => Some(retry_after(lease)),
                }
            }
            // A token that cannot be renewed (or whose renewal failed): try again shortly, until
            // it expires; an operator must then give Floe a new one.
            _ => Some(retry_after(lease)),
        }
    }

    /// Learns a configured token's lifetime.
    async fn look_up(&self) -> Result<()> {
        let client = self.client().await?;
        let info = vaultrs::token::lookup_self(&*client)
            .await
            .map_err(|e| self.error("looking up Floe's Vault token", e))?;
        self.succeeded();
        *self.lease.lock().expect("lease lock") = Some(Lease {
            ttl: info.ttl,
            renewable: info.renewable.unwrap_or(false),
            obtained: Instant::now(),
            login_ttl: info.creation_ttl,
        });
        Ok(())
    }

    fn next_refresh(&self) -> Option<Duration> {
        let lease = (*self.lease.lock().expect("lease lock"))?;
        if lease.ttl == 0 {
            return None;
        }
        // At two thirds of the lifetime, so that a failed attempt has time to be retried.
        let at = Duration::from_millis(lease.ttl * 1000 * 2 / 3).max(Duration::from_millis(500));
        Some(at.saturating_sub(lease.obtained.elapsed()))
    }
}

/// After a failed refresh: again soon, well before the token expires.
fn retry_after(lease: Lease) -> Duration {
    Duration::from_millis((lease.ttl * 1000 / 6).clamp(250, 5_000))
}

/// What a KV v2 path holds for one secret: its bytes as text, or base64 when they are not UTF-8.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "value-base64"
    )]
    value_base64: Option<String>,
}

impl Stored {
    fn of(value: &SecretValue) -> Stored {
        match std::str::from_utf8(&value.0) {
            Ok(text) => Stored {
                value: Some(text.to_string()),
                value_base64: None,
            },
            Err(_) => Stored {
                value: None,
                value_base64: Some(BASE64.encode(&value.0)),
            },
        }
    }

    fn value(self) -> Option<SecretValue> {
        match (self.value, self.value_base64) {
            (Some(text), _) => Some(SecretValue(text.into_bytes())),
            (None, Some(b64)) => BASE64.decode(b64).ok().map(SecretValue),
            (None, None) => None,
        }
    }
}

const STORE: &str = "vault";

/// Secrets in Vault's KV v2; see the module's documentation.
pub struct VaultSecretStore {
    session: Arc<Session>,
    rows: Arc<dyn SealedRows>,
    /// Opens the secrets still sealed in the database.
    sealed: DbSecretStore,
    mount: String,
    path_prefix: String,
}

impl VaultSecretStore {
    /// Reads the credential files and starts the renewal task; does not need Vault to answer.
    pub fn start(
        config: &VaultConfig,
        rows: Arc<dyn SealedRows>,
        key: &[u8; 32],
    ) -> anyhow::Result<VaultSecretStore> {
        config.validate()?;
        let read = |path: &PathBuf| -> anyhow::Result<String> {
            Ok(std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .trim()
                .to_string())
        };
        let login = match (&config.token, &config.token_file, &config.role_id) {
            (Some(token), _, _) => Login::Token(token.clone()),
            (None, Some(file), _) => Login::Token(read(file)?),
            (None, None, Some(role_id)) => Login::AppRole {
                mount: config.approle_mount.clone(),
                role_id: role_id.clone(),
                secret_id: match (&config.secret_id, &config.secret_id_file) {
                    (Some(secret), _) => secret.clone(),
                    (None, Some(file)) => read(file)?,
                    (None, None) => bail!("AppRole needs secret_id"),
                },
            },
            (None, None, None) => bail!("set token (or token_file), or role_id and secret_id"),
        };
        let session = Arc::new(Session {
            url: config.url.clone(),
            ca_file: config
                .tls_ca_file
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            namespace: config.namespace.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            login,
            client: RwLock::new(None),
            lease: Mutex::new(None),
            logging_in: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
        });
        if let Login::Token(token) = &session.login {
            let client = session
                .new_client(token)
                .map_err(|e| anyhow::anyhow!("building the Vault client: {}", e.message))?;
            *session.client.write().expect("vault client lock") = Some(Arc::new(client));
        }
        spawn_renewal(Arc::downgrade(&session));
        Ok(VaultSecretStore {
            session,
            rows: rows.clone(),
            sealed: DbSecretStore::new(rows, key),
            mount: config.mount.clone(),
            path_prefix: config.path_prefix.clone(),
        })
    }

    /// Runs one call to Vault with the current client; when Vault refuses the token and Floe
    /// uses AppRole, logs in again and tries once more.
    async fn call<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = std::result::Result<T, ClientError>>,
    {
        let client = self.session.client().await?;
        let result = match op(client.clone()).await {
            Err(ClientError::APIError { code: 403, .. }) if self.session.is_approle() => {
                let client = self.session.log_in(Some(&client)).await?;
                op(client).await
            }
            result => result,
        };
        match result {
            Ok(value) => {
                self.session.succeeded();
                Ok(value)
            }
            Err(e) => Err(self.session.error(what, e)),
        }
    }

    /// Writes a new version at `path` (`cas: Some(0)`: only if the path is new); returns it.
    async fn write(&self, path: &str, value: &SecretValue, cas: Option<u32>) -> Result<u64> {
        let stored = Stored::of(value);
        let mount = self.mount.as_str();
        let written = self
            .call("writing a secret to Vault", |client| {
                let stored = &stored;
                async move {
                    match cas {
                        Some(cas) => {
                            vaultrs::kv2::set_with_options(
                                &*client,
                                mount,
                                path,
                                stored,
                                SetSecretRequestOptions { cas },
                            )
                            .await
                        }
                        None => vaultrs::kv2::set(&*client, mount, path, stored).await,
                    }
                }
            })
            .await?;
        Ok(written.version)
    }

    fn path_of(&self, id: SecretId) -> String {
        format!("{}/{}", self.path_prefix, id)
    }

    fn reference(&self, path: String, version: u64) -> SecretRef {
        let at = now();
        SecretRef {
            store: STORE.into(),
            mount: self.mount.clone(),
            path,
            version: version as i64,
            created_at: at,
            updated_at: at,
        }
    }

    async fn read_ref(&self, id: SecretId, reference: &SecretRef) -> Result<SecretValue> {
        if reference.store != STORE {
            return Err(Error::internal(
                "reading a secret",
                anyhow::anyhow!("secret {id} is kept in {:?}, not Vault", reference.store),
            ));
        }
        let version = reference.version as u64;
        let stored: Stored = self
            .call("reading a secret from Vault", |client| async move {
                vaultrs::kv2::read_version(&*client, &reference.mount, &reference.path, version)
                    .await
            })
            .await
            .map_err(|e| match e.kind {
                ErrorKind::NotFound(_) => Error::not_found(
                    Entity::Secret,
                    format!(
                        "secret {id} is missing from Vault ({}/{} version {version})",
                        reference.mount, reference.path
                    ),
                ),
                _ => e,
            })?;
        stored.value().ok_or_else(|| {
            Error::internal(
                "reading a secret from Vault",
                anyhow::anyhow!(
                    "{}/{} holds no value Floe wrote",
                    reference.mount,
                    reference.path
                ),
            )
        })
    }

    /// Moves one secret sealed in the database into Vault (its id stays): writes it (again, if
    /// an earlier attempt wrote it and stopped), then records the reference and deletes the
    /// sealed row in one transaction. Returns false when it was not sealed in the database.
    pub async fn move_sealed(&self, id: SecretId) -> Result<bool> {
        let value = match self.sealed.read(id).await {
            Ok(value) => value,
            Err(e) if matches!(e.kind, ErrorKind::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let version = self.write(&self.path_of(id), &value, None).await?;
        self.rows
            .move_secret_to_ref(id, &self.reference(self.path_of(id), version))
            .await?;
        Ok(true)
    }

    /// Whether Vault answers Floe's token now.
    async fn check(&self) -> Result<()> {
        self.call("checking Floe's Vault token", |client| async move {
            vaultrs::token::lookup_self(&*client).await.map(|_| ())
        })
        .await
    }
}

#[async_trait]
impl SecretStore for VaultSecretStore {
    async fn create(&self, value: &SecretValue) -> Result<SecretId> {
        let id = SecretId::new();
        let path = self.path_of(id);
        let version = self.write(&path, value, Some(0)).await?;
        if let Err(e) = self
            .rows
            .put_secret_ref(id, &self.reference(path.clone(), version))
            .await
        {
            let mount = self.mount.as_str();
            let path = path.as_str();
            let _ = self
                .call("deleting an unused secret from Vault", |client| async move {
                    vaultrs::kv2::delete_metadata(&*client, mount, path).await
                })
                .await;
            return Err(e);
        }
        Ok(id)
    }

    async fn read(&self, id: SecretId) -> Result<SecretValue> {
        match self.rows.get_secret_ref(id).await? {
            Some(reference) => self.read_ref(id, &reference).await,
            None => self.sealed.read(id).await,
        }
    }

    async fn update(&self, id: SecretId, value: &SecretValue) -> Result<()> {
        let Some(mut reference) = self.rows.get_secret_ref(id).await? else {
            // Still sealed in the database: the change moves it to Vault.
            self.sealed.read(id).await?;
            let version = self.write(&self.path_of(id), value, None).await?;
            return self
                .rows
                .move_secret_to_ref(id, &self.reference(self.path_of(id), version))
                .await;
        };
        let stored = Stored::of(value);
        let written = {
            let (mount, path, stored) = (&reference.mount, &reference.path, &stored);
            self.call("writing a secret to Vault", |client| async move {
                vaultrs::kv2::set(&*client, mount, path, stored).await
            })
            .await?
        };
        reference.version = written.version as i64;
        reference.updated_at = now();
        self.rows.put_secret_ref(id, &reference).await
    }

    async fn delete(&self, id: SecretId) -> Result<()> {
        let Some(reference) = self.rows.get_secret_ref(id).await? else {
            return self.sealed.delete(id).await;
        };
        let result = {
            let (mount, path) = (&reference.mount, &reference.path);
            self.call("deleting a secret from Vault", |client| async move {
                vaultrs::kv2::delete_metadata(&*client, mount, path).await
            })
            .await
        };
        match result {
            Ok(()) => {}
            Err(e) if matches!(e.kind, ErrorKind::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        self.rows.delete_secret_ref(id).await
    }

    async fn health(&self) -> Result<()> {
        self.check().await
    }

    fn name(&self) -> &'static str {
        STORE
    }
}

/// Keeps the session's token alive for as long as the store exists.
fn spawn_renewal(session: Weak<Session>) {
    tokio::spawn(async move {
        let mut wait = Duration::ZERO;
        loop {
            tokio::time::sleep(wait).await;
            let Some(session) = session.upgrade() else {
                return;
            };
            if session.is_approle() && session.current().is_none() {
                // Not logged in yet (Vault was down at start): keep trying.
                wait = match session.log_in(None).await {
                    Ok(_) => {
                        session.succeeded();
                        session.next_refresh().unwrap_or(Duration::from_secs(3600))
                    }
                    Err(_) => Duration::from_secs(2),
                };
                continue;
            }
            match session.refresh().await {
                Some(next) => wait = next,
                // A token that never expires: nothing to renew.
                None => return,
            }
        }
    });
}

/// What `floe secrets migrate --to vault` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub moved: u64,
    pub remaining: u64,
}

/// Moves up to `limit` secrets sealed in the database into Vault (all of them when `None`), one
/// at a time. Stopped at any point (or failing on one), it can be run again: what moved is no
/// longer in the database, what did not is still there and readable.
pub async fn migrate(store: &VaultSecretStore, limit: Option<u64>) -> Result<Migrated> {
    let mut done = Migrated::default();
    loop {
        let left = limit.map(|l| l.saturating_sub(done.moved));
        if left == Some(0) {
            break;
        }
        let batch = left.unwrap_or(100).min(100) as u32;
        let ids = store.rows.sealed_secret_ids(batch).await?;
        if ids.is_empty() {
            break;
        }
        for id in ids {
            if store.move_sealed(id).await? {
                done.moved += 1;
            }
        }
    }
    done.remaining = store.rows.sealed_secret_ids(u32::MAX).await?.len() as u64;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token() -> VaultConfig {
        VaultConfig {
            token: Some("s.hunter2".into()),
            ..Default::default()
        }
    }

    #[test]
    fn settings_are_checked_and_credentials_never_shown() {
        with_token().validate().unwrap();
        let approle = VaultConfig {
            role_id: Some("role".into()),
            secret_id: Some("hunter3".into()),
            ..Default::default()
        };
        approle.validate().unwrap();
        let shown = format!("{:?} {:?}", with_token(), approle);
        assert!(!shown.contains("hunter"), "{shown}");

        let bad = [
            VaultConfig::default(),
            VaultConfig {
                role_id: Some("role".into()),
                ..with_token()
            },
            VaultConfig {
                role_id: Some("role".into()),
                ..Default::default()
            },
            VaultConfig {
                url: "vault:8200".into(),
                ..with_token()
            },
            VaultConfig {
                path_prefix: "../other".into(),
                ..with_token()
            },
            VaultConfig {
                mount: "/secret/".into(),
                ..with_token()
            },
            VaultConfig {
                timeout_ms: 0,
                ..with_token()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }

    #[test]
    fn values_round_trip_as_text_or_base64() {
        for bytes in [b"{\"a\":1}".to_vec(), vec![0, 255, 7], Vec::new()] {
            let stored = serde_json::to_value(Stored::of(&SecretValue(bytes.clone()))).unwrap();
            let back: Stored = serde_json::from_value(stored).unwrap();
            assert_eq!(back.value().unwrap().0, bytes);
        }
    }
}
