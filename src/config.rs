//! Floe's one configuration tree, loaded once at start and handed down as typed sub-structs.
//!
//! Layers, later wins: built-in defaults -> optional TOML file (`--config`) -> `FLOE__SECTION__KEY`
//! environment variables -> command-line flags. Unknown keys are errors, and [`Config::validate`]
//! checks values, so a typo stops the server at start with a message that names the setting.
//! No global config: nothing below `main`/`server` reads the environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::store::redact_url;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub database: DatabaseConfig,
    pub secrets: SecretsConfig,
    pub log: LogConfig,
    pub bootstrap: BootstrapConfig,
    pub authn: AuthnConfig,
    pub authz: AuthzConfig,
    pub events: EventsConfig,
    pub gateway: GatewayConfig,
    pub metrics: MetricsConfig,
    pub tasks: TasksConfig,
}

/// The task queue's workers in this instance (`service::tasks`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// Workers per queue in this instance (`purge`, `expiry`); 0 runs none of that
    /// queue here (another instance must).
    pub queues: std::collections::BTreeMap<String, usize>,
    /// How often an idle worker looks for due tasks, milliseconds.
    pub poll_interval_ms: u64,
    /// How often a running task's worker records that it is alive, milliseconds.
    pub heartbeat_interval_ms: u64,
    /// A running task whose heartbeat is older than this is taken up by another worker,
    /// milliseconds.
    pub stale_after_ms: u64,
    /// Attempts before a task fails for good.
    pub max_attempts: u32,
    /// The wait before a failed task's first retry, doubled for each further one, milliseconds.
    pub backoff_base_ms: u64,
    /// The longest wait between retries, milliseconds.
    pub backoff_max_ms: u64,
    /// Objects a purge deletes between two records of its progress.
    pub purge_batch: usize,
}

impl Default for TasksConfig {
    fn default() -> Self {
        let settings = crate::service::tasks::TaskSettings::default();
        TasksConfig {
            queues: settings.queues.into_iter().collect(),
            poll_interval_ms: settings.poll_interval.as_millis() as u64,
            heartbeat_interval_ms: settings.heartbeat_interval.as_millis() as u64,
            stale_after_ms: settings.stale_after.as_millis() as u64,
            max_attempts: settings.max_attempts,
            backoff_base_ms: settings.backoff_base.as_millis() as u64,
            backoff_max_ms: settings.backoff_max.as_millis() as u64,
            purge_batch: settings.purge_batch,
        }
    }
}

impl TasksConfig {
    pub fn settings(&self) -> crate::service::tasks::TaskSettings {
        use std::time::Duration;
        crate::service::tasks::TaskSettings {
            queues: self.queues.iter().map(|(q, n)| (q.clone(), *n)).collect(),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
            stale_after: Duration::from_millis(self.stale_after_ms),
            max_attempts: self.max_attempts,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            purge_batch: self.purge_batch,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        for (queue, count) in &self.queues {
            if !crate::model::lifecycle::queues::ALL.contains(&queue.as_str()) {
                bail!(
                    "tasks.queues.{queue} is not a queue; the queues are {}",
                    crate::model::lifecycle::queues::ALL.join(", ")
                );
            }
            if *count > 64 {
                bail!("tasks.queues.{queue} must be at most 64 workers");
            }
        }
        if self.poll_interval_ms == 0 || self.heartbeat_interval_ms == 0 {
            bail!("tasks.poll_interval_ms and tasks.heartbeat_interval_ms must be at least 1");
        }
        if self.stale_after_ms < 2 * self.heartbeat_interval_ms {
            bail!(
                "tasks.stale_after_ms must be at least twice tasks.heartbeat_interval_ms, or live \
                 workers' tasks would be taken from them"
            );
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            bail!("tasks.max_attempts must be between 1 and 100");
        }
        if self.backoff_base_ms > self.backoff_max_ms {
            bail!("tasks.backoff_base_ms must not exceed tasks.backoff_max_ms");
        }
        if self.purge_batch == 0 || self.purge_batch > 100_000 {
            bail!("tasks.purge_batch must be between 1 and 100000");
        }
        Ok(())
    }
}

/// Prometheus metrics (`/metrics`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Record and serve metrics at all.
    pub enabled: bool,
    /// Serve `/metrics` (and `/health`) on this address of its own, without authentication
    /// (keep it inside the cluster); unset: on the API's listener, where it needs a token once
    /// authentication is on.
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: None,
        }
    }
}

/// The built-in S3 gateway (serves local warehouses as buckets).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Serve the gateway at all.
    pub enabled: bool,
    /// Address the gateway listens on.
    pub listen: SocketAddr,
    /// The URL clients use to reach the gateway (given to engines with vended credentials);
    /// derived from `listen` if unset.
    pub public_url: Option<String>,
    /// `<bucket>.<domain>` hosts are virtual-host style requests; path style always works.
    pub virtual_host_domain: Option<String>,
    /// The region the gateway reports and clients sign for.
    pub region: String,
    /// Multipart uploads not completed within this many seconds are removed.
    pub multipart_expiry_secs: u64,
    /// What each client may hold of the listener (`gateway.limits.*`).
    pub limits: crate::listen::ListenerLimits,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            public_url: None,
            virtual_host_domain: Some("localhost".into()),
            region: "us-east-1".into(),
            multipart_expiry_secs: 24 * 3600,
            limits: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// The URL clients use to reach this server (printed at start); derived from `listen` if unset.
    pub public_url: Option<String>,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests, in seconds.
    pub shutdown_timeout_secs: u64,
    /// What each client may hold of the listener (`server.limits.*`).
    pub limits: crate::listen::ListenerLimits,
    /// How long a client may retry a catalog mutation with its `Idempotency-Key` (advertised as
    /// `idempotency-key-lifetime`), in seconds; keys are kept a sixth longer (5 minutes at most).
    /// 0 turns keys off.
    pub idempotency_key_lifetime_secs: u64,
    /// Server-side scan planning: scans of up to this many live data files are planned in the
    /// request; larger ones are held as a plan of plan tasks.
    pub scan_plan_sync_files: u64,
    /// About how many data files one plan task of a held plan covers.
    pub scan_plan_task_files: u64,
    /// How long a held scan plan (and its tasks) is kept, in seconds.
    pub scan_plan_lifetime_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8181)),
            public_url: None,
            max_body_bytes: 10 * 1024 * 1024,
            shutdown_timeout_secs: 30,
            limits: Default::default(),
            idempotency_key_lifetime_secs: 30 * 60,
            scan_plan_sync_files: 10_000,
            scan_plan_task_files: 5_000,
            scan_plan_lifetime_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Where the embedded defaults live: `catalog.db`, `secret.key`, `warehouses/`.
    pub data_dir: PathBuf,
    /// Folders local warehouses may use besides `<data_dir>/warehouses` (absolute paths). A
    /// local warehouse's root must lie in one of them, and never reaches Floe's own files.
    pub local_roots: Vec<PathBuf>,
    /// How long S3 stores are waited for (`storage.s3.*`).
    pub s3: crate::storage::s3::S3Timeouts,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./floe-data"),
            local_roots: Vec::new(),
            s3: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Off,
    Normal,
    Full,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://...` for PostgreSQL, `sqlite://PATH` for SQLite; unset means SQLite at
    /// `<data_dir>/catalog.db`.
    pub url: Option<String>,
    /// Largest connection pool per Floe process.
    pub max_connections: u32,
    pub min_connections: u32,
    /// How long a request waits for a pooled connection, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// Idle connections are closed after this many seconds.
    pub idle_timeout_secs: u64,
    /// PostgreSQL `statement_timeout`, and SQLite's busy timeout, in milliseconds.
    pub statement_timeout_ms: u64,
    /// SQLite's `synchronous` pragma (the journal is always WAL).
    pub sqlite_synchronous: SqliteSynchronous,
    /// Apply pending migrations when `serve` starts. Unset: yes for SQLite, no for PostgreSQL
    /// (run `floe migrate` once per upgrade instead).
    pub auto_migrate: Option<bool>,
    /// PostgreSQL: learn of other instances' table commits by `LISTEN`/`NOTIFY` and serve cached
    /// tables from memory (another instance's commit is seen within milliseconds); `false` checks
    /// every cached load against the database instead (one small query per load).
    pub change_notifications: bool,
    /// Table metadata (JSON) each process keeps in memory for `loadTable` and commits, in MiB
    /// (each table counts its metadata and 1 KiB more). A table not held is read from the
    /// database. `0` keeps none.
    pub table_cache_mb: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout_ms: 5_000,
            idle_timeout_secs: 600,
            statement_timeout_ms: 30_000,
            sqlite_synchronous: SqliteSynchronous::Full,
            auto_migrate: None,
            change_notifications: true,
            table_cache_mb: 24,
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("auto_migrate", &self.auto_migrate)
            .field("change_notifications", &self.change_notifications)
            .field("table_cache_mb", &self.table_cache_mb)
            .finish()
    }
}

/// Which database a URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Config {
    pub fn database_target(&self) -> anyhow::Result<DatabaseTarget> {
        match self.database.url.as_deref() {
            None => Ok(DatabaseTarget::Sqlite(
                self.storage.data_dir.join("catalog.db"),
            )),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(DatabaseTarget::Postgres(url.to_string()))
            }
            Some(url) if url.starts_with("sqlite://") => {
                let path = url.trim_start_matches("sqlite://");
                let path = path.split('?').next().unwrap_or(path);
                if path.is_empty() {
                    bail!("database.url {url:?} names no SQLite file");
                }
                Ok(DatabaseTarget::Sqlite(PathBuf::from(path)))
            }
            Some(url) => bail!(
                "database.url {:?} is not supported: use postgres://... or sqlite://PATH",
                redact_url(url)
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretsBackend {
    /// AES-256-GCM encrypted in the catalog database.
    Database,
    /// Vault's (or OpenBao's) KV v2 (`secrets.vault`); the database keeps only references.
    Vault,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    pub backend: SecretsBackend,
    /// Base64 of a 32-byte key. With SQLite and no key set, one is generated into
    /// `<data_dir>/secret.key` (mode 0600). PostgreSQL deployments must set it (or `encryption_key_file`)
    /// so that every instance shares it.
    pub encryption_key: Option<String>,
    /// A file holding the base64 key (e.g. a mounted Kubernetes secret).
    pub encryption_key_file: Option<PathBuf>,
    /// With `backend = "vault"`.
    pub vault: crate::secrets::vault::VaultConfig,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            backend: SecretsBackend::Database,
            encryption_key: None,
            encryption_key_file: None,
            vault: Default::default(),
        }
    }
}

impl fmt::Debug for SecretsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsConfig")
            .field("backend", &self.backend)
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "<redacted>"),
            )
            .field("encryption_key_file", &self.encryption_key_file)
            .field("vault", &self.vault)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `floe=debug,sqlx=warn`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info,sqlx=warn".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapConfig {
    /// Bootstrap at start with a default project and a local warehouse. Unset: yes for SQLite,
    /// no for PostgreSQL (call `POST /management/v1/bootstrap` instead).
    pub auto: Option<bool>,
    /// Name of the local warehouse created by the automatic bootstrap, under `<data_dir>/warehouses/`.
    pub warehouse: String,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            auto: None,
            warehouse: "demo".into(),
        }
    }
}

pub use crate::authn::{AuthnConfig, KubernetesSubject, ProviderConfig, ProviderKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthzBackend {
    /// Everything is allowed (development only; the default without authentication).
    AllowAll,
    /// Relationships in Floe's own database, evaluated built in (the default with
    /// authentication).
    Builtin,
    /// Relationships kept in the database and on an OpenFGA server, which evaluates every
    /// check (`authz.openfga`).
    Openfga,
}

pub use crate::authz::openfga::OpenFgaConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthzConfig {
    /// `None`: `builtin` when identity providers are configured, else `allow-all`.
    pub backend: Option<AuthzBackend>,
    /// Identity-provider roles (a provider's `roles-claim` values) that make a caller an
    /// assignee of a Floe role, evaluated from the token on each request.
    pub role_mappings: Vec<crate::authz::roles::RoleMapping>,
    pub openfga: OpenFgaConfig,
}

impl AuthzConfig {
    /// The backend in force: as configured, else `builtin` with authentication and
    /// `allow-all` without.
    pub fn effective_backend(&self, authn: &AuthnConfig) -> AuthzBackend {
        self.backend.unwrap_or(if authn.providers.is_empty() {
            AuthzBackend::AllowAll
        } else {
            AuthzBackend::Builtin
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventsBackend {
    /// Each event is a `tracing` log line.
    Log,
    /// CloudEvents on NATS JetStream (`events.nats`).
    Nats,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Every event goes to each of these.
    pub backends: Vec<EventsBackend>,
    /// Published events stay in the database this long (the events feed reads them), hours.
    pub retention_hours: u64,
    /// Events the relay hands to the publishers at once.
    pub relay_batch: usize,
    /// How often an idle relay looks for new events, milliseconds.
    pub relay_interval_ms: u64,
    /// Pending events past which `/ready` raises `backlog-alarm` (nothing is dropped).
    pub backlog_alarm: u64,
    pub nats: crate::events::nats::NatsConfig,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            backends: vec![EventsBackend::Log],
            retention_hours: 168,
            relay_batch: 256,
            relay_interval_ms: 50,
            backlog_alarm: 10_000,
            nats: Default::default(),
        }
    }
}

impl EventsConfig {
    pub fn relay(&self) -> crate::service::relay::RelaySettings {
        crate::service::relay::RelaySettings {
            batch: self.relay_batch,
            interval: std::time::Duration::from_millis(self.relay_interval_ms),
            retention: std::time::Duration::from_secs(self.retention_hours * 3600),
            backlog_alarm: self.backlog_alarm,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if given), then `FLOE__SECTION__KEY` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // The variables are passed in (not read from the process) so loading is testable; they nest
        // on `__` like figment's `Env::split("__")`.
        let mut overrides = figment::value::Dict::new();
        for (key, value) in env {
            let Some(path) = key.strip_prefix("FLOE__") else {
                continue;
            };
            let path: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
            // A secret is text whatever it looks like (a token of digits is not a number).
            let value = match path.last() {
                Some(leaf) if SECRET_KEYS.contains(&leaf.as_str()) => {
                    figment::value::Value::from(value)
                }
                _ => parse_env_value(&value),
            };
            insert_path(&mut overrides, &path, value);
        }
        figment = figment.merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|errors| {
            // Each error names its setting as the path a user writes (`server.listen`), not
            // figment's source and profile.
            let messages: Vec<String> = errors
                .into_iter()
                .map(|e| {
                    let path = e.path.join(".");
                    if path.is_empty() {
                        e.kind.to_string()
                    } else {
                        format!("{path}: {}", e.kind)
                    }
                })
                .collect();
            anyhow::anyhow!("invalid configuration: {}", messages.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that serde cannot; every message names the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.tasks.validate()?;
        let db = &self.database;
        if db.max_connections == 0 {
            bail!("database.max_connections must be at least 1");
        }
        if db.min_connections > db.max_connections {
            bail!("database.min_connections must not exceed database.max_connections");
        }
        if db.acquire_timeout_ms == 0 || db.statement_timeout_ms == 0 {
            bail!("database.acquire_timeout_ms and database.statement_timeout_ms must be positive");
        }
        self.database_target()?;
        if self.events.relay_batch == 0 || self.events.relay_interval_ms == 0 {
            bail!("events.relay_batch and events.relay_interval_ms must be positive");
        }
        if self.events.backends.contains(&EventsBackend::Nats)
            && let Err(e) = self.events.nats.validate()
        {
            bail!("{e}");
        }
        if self.server.max_body_bytes < 1024 {
            bail!("server.max_body_bytes must be at least 1024");
        }
        if let Some(url) = &self.server.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("server.public_url must start with http:// or https://");
        }
        if let Some(url) = &self.gateway.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("gateway.public_url must start with http:// or https://");
        }
        if let Some(relative) = self.storage.local_roots.iter().find(|p| !p.is_absolute()) {
            bail!(
                "storage.local_roots must hold absolute paths ({} is not)",
                relative.display()
            );
        }
        self.storage.s3.validate().map_err(anyhow::Error::msg)?;
        self.server
            .limits
            .validate("server.limits")
            .map_err(anyhow::Error::msg)?;
        self.gateway
            .limits
            .validate("gateway.limits")
            .map_err(anyhow::Error::msg)?;
        if self.gateway.multipart_expiry_secs == 0 {
            bail!("gateway.multipart_expiry_secs must be positive");
        }
        if self.gateway.region.is_empty() || self.gateway.region.contains('/') {
            bail!("gateway.region must be a region name");
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .with_context(|| format!("log.level {:?} is not a valid filter", self.log.level))?;
        crate::model::validate_warehouse_name(&self.bootstrap.warehouse)
            .map_err(|e| anyhow::anyhow!("bootstrap.warehouse: {}", e.message))?;
        if let Some(key) = &self.secrets.encryption_key {
            crate::secrets::parse_key(key).context("secrets.encryption_key")?;
        }
        if self.secrets.backend == SecretsBackend::Vault {
            self.secrets.vault.validate().context("secrets.vault")?;
        }
        self.authn.validate()?;
        if self.authz.backend == Some(AuthzBackend::Builtin) && self.authn.providers.is_empty() {
            bail!(
                "authz.backend = \"builtin\" checks users' permissions, so it needs \
                 authn.providers (without them every caller is anonymous)"
            );
        }
        if self.authz.backend == Some(AuthzBackend::Openfga) {
            if self.authn.providers.is_empty() {
                bail!(
                    "authz.backend = \"openfga\" checks users' permissions, so it needs \
                     authn.providers (without them every caller is anonymous)"
                );
            }
            let fga = &self.authz.openfga;
            match fga.endpoint.as_deref() {
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => {}
                Some(_) => bail!("authz.openfga.endpoint must start with http:// or https://"),
                None => bail!("authz.backend = \"openfga\" needs authz.openfga.endpoint"),
            }
            if fga.store_id.is_some() != fga.authorization_model_id.is_some() {
                bail!(
                    "authz.openfga.store_id and authz.openfga.authorization_model_id are set \
                     together or not at all"
                );
            }
            if fga.timeout_ms == 0 || fga.retries > 10 {
                bail!("authz.openfga.timeout_ms must be positive and retries at most 10");
            }
            if fga.store_name.is_empty() {
                bail!("authz.openfga.store_name must not be empty");
            }
        }
        for mapping in &self.authz.role_mappings {
            mapping.validate()?;
            if let Some(provider) = &mapping.provider
                && !self.authn.providers.iter().any(|p| &p.id == provider)
            {
                bail!("authz.role_mappings: provider {provider:?} is not configured");
            }
        }
        Ok(())
    }

    /// The URL clients reach the S3 gateway at.
    pub fn gateway_url(&self, bound: SocketAddr) -> String {
        match &self.gateway.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None if bound.ip().is_unspecified() => format!("http://127.0.0.1:{}", bound.port()),
            None => format!("http://{bound}"),
        }
    }

    /// The base URL clients use.
    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.server.listen),
        }
    }
}

/// Settings whose values are secrets: shown as `<redacted>` when set.
const SECRET_KEYS: &[&str] = &[
    "encryption_key",
    "token",
    "password",
    "secret_id",
    "role_id",
    "nkey_seed",
    "api_token",
    "client_secret",
];

impl Config {
    /// The configuration in readable lines, one per section (`section: key=value ...`), secrets
    /// redacted: what `serve` logs at start and `floe config check` prints. Unset settings are
    /// left out.
    pub fn summary(&self) -> Vec<String> {
        let value = serde_json::to_value(self).unwrap_or_default();
        let Some(sections) = value.as_object() else {
            return Vec::new();
        };
        sections
            .iter()
            .map(|(section, value)| {
                let mut pairs = Vec::new();
                flatten("", value, &mut pairs);
                let body = pairs
                    .into_iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                format!("{section}: {body}")
            })
            .collect()
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let leaf = prefix.rsplit(['.', ']']).next().unwrap_or(prefix);
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, value) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, value, out);
            }
        }
        _ if SECRET_KEYS.contains(&leaf) => out.push((prefix.to_string(), "<redacted>".into())),
        Value::Array(items) if items.iter().any(|i| i.is_object()) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), item, out);
            }
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(scalar).collect();
            out.push((prefix.to_string(), format!("[{}]", items.join(", "))));
        }
        value => out.push((prefix.to_string(), scalar(value))),
    }
}

/// A scalar as text; a URL's user information is hidden (it may hold a password or a token).
fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => {
            if let Some((scheme, rest)) = s.split_once("://")
                && let Some((userinfo, host)) =
                    rest.split('/').next().unwrap_or("").rsplit_once('@')
            {
                let user = match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***"),
                    None => "***".to_string(),
                };
                let path = &rest[rest.split('/').next().unwrap_or("").len()..];
                return format!("{scheme}://{user}@{host}{path}");
            }
            if s.is_empty() || s.contains(' ') {
                format!("{s:?}")
            } else {
                s.clone()
            }
        }
        other => other.to_string(),
    }
}

fn insert_path(dict: &mut figment::value::Dict, path: &[String], value: figment::value::Value) {
    use figment::value::{Dict, Value};
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            } else {
                let mut inner = Dict::new();
                insert_path(&mut inner, rest, value);
                *entry = Value::from(inner);
            }
        }
    }
}

/// Env values are strings; like figment's `Env`, read numbers, booleans and `[a, b]` lists as such.
fn parse_env_value(value: &str) -> figment::value::Value {
    value
        .parse::<figment::value::Value>()
        .unwrap_or_else(|_| figment::value::Value::from(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secrets_from_the_environment_stay_text() {
        let config = Config::load(
            None,
            env(&[
                ("FLOE__EVENTS__NATS__TOKEN", "123456"),
                ("FLOE__SECRETS__VAULT__TOKEN", "true"),
                ("FLOE__AUTHZ__OPENFGA__API_TOKEN", "1.5"),
            ]),
        )
        .unwrap();
        assert_eq!(config.events.nats.token.as_deref(), Some("123456"));
        assert_eq!(config.secrets.vault.token.as_deref(), Some("true"));
        assert_eq!(config.authz.openfga.api_token.as_deref(), Some("1.5"));
    }

    #[test]
    fn the_summary_shows_settings_and_hides_secrets() {
        let secret = "SENTINEL-SECRET";
        let url = format!("postgres://floe:{secret}@db:5432/floe");
        let nats = format!("nats://{secret}@nats:4222");
        let key = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode([7u8; 32])
        };
        let config = Config::load(
            None,
            env(&[
                ("FLOE__DATABASE__URL", &url),
                ("FLOE__SECRETS__ENCRYPTION_KEY", &key),
                ("FLOE__EVENTS__NATS__URL", &nats),
                ("FLOE__EVENTS__NATS__TOKEN", secret),
                ("FLOE__EVENTS__NATS__PASSWORD", secret),
                ("FLOE__EVENTS__NATS__NKEY_SEED", secret),
                ("FLOE__SECRETS__VAULT__TOKEN", secret),
                ("FLOE__SECRETS__VAULT__SECRET_ID", secret),
                ("FLOE__SECRETS__VAULT__ROLE_ID", secret),
                ("FLOE__AUTHZ__OPENFGA__API_TOKEN", secret),
                ("FLOE__SERVER__LISTEN", "0.0.0.0:8181"),
            ]),
        )
        .unwrap();
        let lines = config.summary().join("\n");
        assert!(!lines.contains(secret), "{lines}");
        assert!(
            !lines.contains("BwcH"),
            "the encryption key leaked: {lines}"
        );
        assert!(
            lines.contains(" url=postgres://floe:***@db:5432/floe"),
            "{lines}"
        );
        assert!(
            config
                .summary()
                .iter()
                .any(|l| l.starts_with("server: ") && l.contains(" listen=0.0.0.0:8181 ")),
            "{lines}"
        );
        assert!(lines.contains("encryption_key=<redacted>"), "{lines}");
        assert!(lines.contains("nats.url=nats://***@nats:4222"), "{lines}");
        // One line per section, each section of the tree.
        assert_eq!(config.summary().len(), 12, "{lines}");
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8181");
        assert_eq!(
            config.database_target().unwrap(),
            DatabaseTarget::Sqlite(PathBuf::from("./floe-data/catalog.db"))
        );
    }

    #[test]
    fn env_overrides_file_and_nested_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floe.toml");
        std::fs::write(
            &file,
            "[database]\nmax_connections = 3\nurl = \"postgres://u:pw@localhost/db\"\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("FLOE__DATABASE__MAX_CONNECTIONS", "7"),
                ("FLOE__LOG__FORMAT", "json"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.database.max_connections, 7);
        assert_eq!(config.log.format, LogFormat::Json);
        assert!(matches!(
            config.database_target().unwrap(),
            DatabaseTarget::Postgres(_)
        ));
        assert!(!format!("{config:?}").contains("pw"));
        let config = Config::load(
            None,
            env(&[("FLOE__STORAGE__LOCAL_ROOTS", "[\"/srv/lake\", \"/data/x\"]")]),
        )
        .unwrap();
        assert_eq!(
            config.storage.local_roots,
            [PathBuf::from("/srv/lake"), PathBuf::from("/data/x")]
        );
        let err = Config::load(None, env(&[("FLOE__STORAGE__LOCAL_ROOTS", "[\"lake\"]")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.local_roots"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::load(None, env(&[("FLOE__DATABASE__MAX_CONNECTIONS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.max_connections"), "{err}");
        let err = Config::load(None, env(&[("FLOE__SERVER__LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");
        let err = Config::load(None, env(&[("FLOE__DATABASE__NOPE", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        let err = Config::load(None, env(&[("FLOE__DATABASE__URL", "mysql://x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported"), "{err}");
    }
}
