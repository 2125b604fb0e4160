//! The composition root: the one place that knows which implementation of each module exists and
//! wires them together from the configuration, then serves HTTP until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState, HttpSettings};
use crate::authn::{Authenticator, NoAuthentication, TokenAuthenticator};
use crate::authz::builtin::{Builtin, RelationshipReader};
use crate::authz::{AllowAll, Authorizer, ObjectRef, openfga};
use crate::config::{
    AuthzBackend, Config, DatabaseTarget, EventsBackend, SecretsBackend, SqliteSynchronous,
};
use crate::events::{EventPublisher, LogPublisher};
use crate::gateway::{Gateway, GatewaySettings};
use crate::model::{SealedSecret, SecretId};
use crate::secrets::vault::VaultSecretStore;
use crate::secrets::{
    DbSecretStore, SealedRows, SecretStore, load_or_create_key_file, parse_key, read_key_file,
};
use crate::service::Services;
use crate::store::{
    Persistence, PoolOptions, PostgresOptions, SealedSecretStore, SqliteOptions, SqliteSync,
};

/// A Floe server, built and bound, not yet serving.
pub struct Floe {
    listener: TcpListener,
    /// The metrics' own listener (`metrics.listen`).
    metrics_listener: Option<TcpListener>,
    router: axum::Router,
    gateway: Option<Gateway>,
    shutdown_timeout: Duration,
    limits: crate::listen::ListenerLimits,
    relay: crate::service::relay::RelaySettings,
    tasks: crate::service::tasks::TaskSettings,
    pub services: Services,
    /// Whether this start bootstrapped the server (the embedded quickstart).
    pub auto_bootstrapped: bool,
}

/// What every Floe process builds: the database, the pluggable modules and the use cases (not
/// yet shared, so the caller may still configure them).
struct Core {
    services: Services,
    authn: Arc<dyn Authenticator>,
    backend: &'static str,
    server_key: [u8; 32],
    embedded: bool,
}

/// A Floe that runs only the task workers and the events relay (`floe worker`): no catalog, no
/// gateway; `/health` and `/metrics` on `metrics.listen` when it is set.
pub struct Workers {
    services: Services,
    relay: crate::service::relay::RelaySettings,
    tasks: crate::service::tasks::TaskSettings,
    metrics_listener: Option<TcpListener>,
}

impl Workers {
    pub async fn build(config: &Config) -> anyhow::Result<Workers> {
        let core = build_core(config).await?;
        let metrics_listener = bind_metrics(config).await?;
        Ok(Workers {
            services: core.services,
            relay: config.events.relay(),
            tasks: config.tasks.settings(),
            metrics_listener,
        })
    }

    /// The metrics' own address, when `metrics.listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let relay = self.services.spawn_relay(self.relay.clone());
        let workers = self.services.spawn_task_workers(self.tasks.clone());
        tracing::info!(workers = workers.count(), "running task workers only");
        match self.metrics_listener {
            Some(listener) => {
                let service = hyper_util::service::TowerToHyperService::new(api::metrics_router(
                    self.services.clone(),
                ));
                crate::listen::serve(
                    "metrics",
                    listener,
                    service,
                    &crate::listen::ListenerLimits::default(),
                    shutdown,
                    Duration::from_secs(5),
                )
                .await;
            }
            None => shutdown.await,
        }
        relay.abort();
        workers.stop();
    }
}

async fn bind_metrics(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    Ok(match config.metrics.listen {
        Some(addr) if config.metrics.enabled => {
            Some(TcpListener::bind(addr).await.map_err(|e| {
                bind_error(
                    e,
                    "the metrics",
                    addr,
                    "move them with FLOE__METRICS__LISTEN, or serve them on the API's listener by \
                 leaving metrics.listen unset",
                )
            })?)
        }
        _ => None,
    })
}

async fn build_core(config: &Config) -> anyhow::Result<Core> {
    install_crypto_provider();
    if config.metrics.enabled {
        crate::telemetry::install();
    }
    let target = config.database_target()?;
    let embedded = matches!(target, DatabaseTarget::Sqlite(_));
    let migrate = config.database.auto_migrate.unwrap_or(embedded);
    let store = open_persistence(config, migrate).await?;

    let server_key = encryption_key(config, embedded)?;
    let secrets: Arc<dyn SecretStore> = match config.secrets.backend {
        SecretsBackend::Database => Arc::new(DbSecretStore::new(secret_rows(&store), &server_key)),
        SecretsBackend::Vault => Arc::new(
            VaultSecretStore::start(&config.secrets.vault, secret_rows(&store), &server_key)
                .context("secrets.vault")?,
        ),
    };
    let authn: Arc<dyn Authenticator> = if config.authn.providers.is_empty() {
        Arc::new(NoAuthentication)
    } else {
        Arc::new(TokenAuthenticator::start(&config.authn)?)
    };
    let authz: Arc<dyn Authorizer> = match config.authz.effective_backend(&config.authn) {
        AuthzBackend::AllowAll => Arc::new(AllowAll),
        AuthzBackend::Builtin => Arc::new(Builtin::new(Arc::new(StoreRelationships(
            store.authz.clone(),
        )))),
        AuthzBackend::Openfga => Arc::new(openfga_backend(config, &store, migrate).await?),
    };
    let mut events: Vec<Arc<dyn EventPublisher>> = Vec::new();
    for backend in &config.events.backends {
        events.push(match backend {
            EventsBackend::Log => Arc::new(LogPublisher),
            EventsBackend::Nats => Arc::new(
                crate::events::nats::NatsPublisher::start(&config.events.nats)
                    .await
                    .map_err(|e| anyhow::anyhow!("events.nats: {}", e.message))?,
            ),
        });
    }

    let backend = store.server.backend_name();
    let mut services = Services::new(store, secrets, authz, events)
        .with_local_roots(local_roots(config)?)
        .with_s3_timeouts(config.storage.s3)
        .with_task_max_attempts(config.tasks.max_attempts)
        .with_idempotency(crate::service::idempotency::IdempotencySettings {
            lifetime: std::time::Duration::from_secs(config.server.idempotency_key_lifetime_secs),
            // Longer than a request may run (its deadline), with a margin for the database.
            lease: config.server.limits.request_timeout() + std::time::Duration::from_secs(30),
        })
        .with_planning(crate::service::scan::PlanningSettings {
            sync_max_files: config.server.scan_plan_sync_files,
            files_per_task: config.server.scan_plan_task_files.max(1),
            lifetime: std::time::Duration::from_secs(config.server.scan_plan_lifetime_secs.max(1)),
        })
        .with_identity(
            config
                .authn
                .providers
                .iter()
                .map(|p| p.id.clone())
                .collect(),
            config.authn.admins.clone(),
        )
        .with_role_mappings(config.authz.role_mappings.clone());
    if let Some(url) = &config.server.public_url {
        services = services.with_catalog_url(format!("{}/catalog", url.trim_end_matches('/')));
    }
    Ok(Core {
        services,
        authn,
        backend,
        server_key,
        embedded,
    })
}

impl Floe {
    /// Opens the database, builds every module, bootstraps if configured, and binds the listener.
    pub async fn build(config: &Config) -> anyhow::Result<Floe> {
        let Core {
            mut services,
            authn,
            backend,
            server_key,
            embedded,
        } = build_core(config).await?;
        let gateway_listener = if config.gateway.enabled {
            let listener = Gateway::bind(config.gateway.listen).await.map_err(|e| {
                bind_error(
                    e,
                    "the S3 gateway",
                    config.gateway.listen,
                    "move it with `floe serve --s3-listen HOST:PORT` or FLOE__GATEWAY__LISTEN \
                     (9000 is also MinIO's port), or turn it off with FLOE__GATEWAY__ENABLED=false",
                )
            })?;
            let url = config.gateway_url(listener.local_addr()?);
            services = services.with_gateway(&server_key, url, config.gateway.region.clone());
            Some(listener)
        } else {
            None
        };
        let gateway = gateway_listener.map(|listener| {
            Gateway::new(
                listener,
                services.clone(),
                GatewaySettings {
                    virtual_host_domain: config.gateway.virtual_host_domain.clone(),
                    region: config.gateway.region.clone(),
                    multipart_expiry: Duration::from_secs(config.gateway.multipart_expiry_secs),
                    limits: config.gateway.limits.clone(),
                },
            )
        });

        let auto_bootstrapped = if config.bootstrap.auto.unwrap_or(embedded) {
            let root = warehouses_dir(config)?.join(&config.bootstrap.warehouse);
            services
                .auto_bootstrap(&config.bootstrap.warehouse, root)
                .await
                .map_err(|e| anyhow::anyhow!("automatic bootstrap failed: {e:?}"))?
        } else {
            false
        };

        let state = AppState {
            services: services.clone(),
            authn,
            backend,
            gzip: Arc::new(api::gzip::GzipCache::new(api::GZIP_CACHE_BYTES)),
            events_backlog_alarm: config.events.backlog_alarm,
        };
        let router = api::router(
            state,
            &HttpSettings {
                max_body_bytes: config.server.max_body_bytes,
                body_timeout: config.server.limits.body_timeout(),
                request_timeout: config.server.limits.request_timeout(),
                max_requests_in_flight: config.server.limits.max_requests_in_flight,
                max_queue: config.server.limits.max_queue(),
                metrics: config.metrics.enabled && config.metrics.listen.is_none(),
                console: crate::api::console::ConsoleSettings {
                    providers: config
                        .authn
                        .providers
                        .iter()
                        .filter_map(|p| {
                            Some(crate::api::console::ConsoleProvider {
                                id: p.id.clone(),
                                issuer: p.issuer.clone(),
                                client_id: p.console_client_id.clone()?,
                                resource: p.audiences.first().cloned(),
                                scopes: if p.console_scopes.is_empty() {
                                    std::iter::once("openid".to_string())
                                        .chain(p.required_scopes.iter().cloned())
                                        .collect()
                                } else {
                                    p.console_scopes.clone()
                                },
                            })
                        })
                        .collect(),
                },
            },
        );
        let listener = TcpListener::bind(config.server.listen).await.map_err(|e| {
            bind_error(
                e,
                "the API",
                config.server.listen,
                "move it with `floe serve --listen HOST:PORT` or FLOE__SERVER__LISTEN",
            )
        })?;
        let metrics_listener = bind_metrics(config).await?;
        Ok(Floe {
            listener,
            metrics_listener,
            router,
            gateway,
            shutdown_timeout: Duration::from_secs(config.server.shutdown_timeout_secs),
            limits: config.server.limits.clone(),
            relay: config.events.relay(),
            tasks: config.tasks.settings(),
            services,
            auto_bootstrapped,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The metrics' own address, when `metrics.listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// The S3 gateway's address, when it is enabled.
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.gateway.as_ref().map(Gateway::local_addr)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (for at most `server.shutdown_timeout_secs`) and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let mut gateway_rx = stop_tx.subscribe();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let gateway = self.gateway.map(|gateway| {
            let drain = self.shutdown_timeout;
            tokio::spawn(gateway.run(
                async move {
                    let _ = gateway_rx.wait_for(|stop| *stop).await;
                },
                drain,
            ))
        });
        let relay = self.services.spawn_relay(self.relay.clone());
        let workers = self.services.spawn_task_workers(self.tasks.clone());
        let metrics = self.metrics_listener.map(|listener| {
            let service = hyper_util::service::TowerToHyperService::new(api::metrics_router(
                self.services.clone(),
            ));
            let mut stop = stop_rx.clone();
            let drain = self.shutdown_timeout;
            tokio::spawn(async move {
                crate::listen::serve(
                    "metrics",
                    listener,
                    service,
                    &crate::listen::ListenerLimits::default(),
                    async move {
                        let _ = stop.wait_for(|stop| *stop).await;
                    },
                    drain,
                )
                .await
            })
        });
        let service = hyper_util::service::TowerToHyperService::new(self.router);
        crate::listen::serve(
            "catalog",
            self.listener,
            service,
            &self.limits,
            async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
                tracing::info!("shutting down: finishing in-flight requests");
            },
            self.shutdown_timeout,
        )
        .await;
        relay.abort();
        // A task cut short here is taken up again once its heartbeat is stale.
        workers.stop();
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        if let Some(gateway) = gateway {
            match gateway.await {
                Ok(result) => result?,
                Err(e) => tracing::warn!(error = %e, "the S3 gateway task failed"),
            }
        }
        Ok(())
    }
}

/// A listener that could not be bound: what to do about it, when the address is taken.
fn bind_error(
    e: impl Into<anyhow::Error>,
    what: &str,
    addr: SocketAddr,
    remedy: &str,
) -> anyhow::Error {
    let e: anyhow::Error = e.into();
    let in_use = e
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::AddrInUse);
    if in_use {
        anyhow::anyhow!("{what} cannot listen on {addr}: another program uses that port; {remedy}")
    } else {
        e.context(format!("{what} listening on {addr}"))
    }
}

/// `<data_dir>/warehouses`, created and made absolute (warehouse roots are stored as absolute paths).
fn warehouses_dir(config: &Config) -> anyhow::Result<PathBuf> {
    let dir = config.storage.data_dir.join("warehouses");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))
}

/// Where local warehouses may live: `<data_dir>/warehouses` and `storage.local_roots`; never in
/// the data folder otherwise, nor around the database or key files.
fn local_roots(config: &Config) -> anyhow::Result<crate::service::LocalRoots> {
    let mut allowed = vec![warehouses_dir(config)?];
    allowed.extend(config.storage.local_roots.iter().cloned());
    let mut protected = Vec::new();
    if let DatabaseTarget::Sqlite(path) = config.database_target()? {
        protected.push(path);
    }
    if let Some(path) = &config.secrets.encryption_key_file {
        protected.push(path.clone());
    }
    crate::service::LocalRoots::new(allowed, Some(config.storage.data_dir.clone()), protected)
        .context("resolving storage.data_dir and storage.local_roots")
}

/// Picks the TLS library's cryptography for the whole process (AWS-LC, as the AWS SDK uses).
/// Clients that ask rustls for the process default (NATS over TLS among them) would otherwise
/// panic: more than one provider is compiled in, so rustls cannot choose by itself.
pub fn install_crypto_provider() {
    // Already installed (a second server in one process, tests): nothing to do.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// `floe secrets migrate --to vault`: moves up to `limit` secrets sealed in the catalog database
/// into Vault (`secrets.vault`), one at a time; run again, it carries on where it stopped.
pub async fn migrate_secrets(
    config: &Config,
    limit: Option<u64>,
) -> anyhow::Result<crate::secrets::vault::Migrated> {
    install_crypto_provider();
    let target = config.database_target()?;
    let embedded = matches!(target, DatabaseTarget::Sqlite(_));
    let store = open_persistence(config, config.database.auto_migrate.unwrap_or(embedded)).await?;
    let key = encryption_key(config, embedded)?;
    let vault = VaultSecretStore::start(&config.secrets.vault, secret_rows(&store), &key)
        .context("secrets.vault")?;
    crate::secrets::vault::migrate(&vault, limit)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))
}

/// Where the OpenFGA store and model ids `floe migrate` used are recorded.
const FGA_STORE_NAME: &str = "authz.openfga.store_name";
const FGA_STORE_ID: &str = "authz.openfga.store_id";
const FGA_MODEL_ID: &str = "authz.openfga.authorization_model_id";

/// With `authz.backend = "openfga"`: finds or creates the store and writes Floe's model (unless
/// the configuration pins a store and model), and records both ids in the catalog database.
/// Returns (store id, model id). Without OpenFGA answering, it fails.
pub async fn migrate_openfga(
    config: &Config,
    store: &Persistence,
) -> anyhow::Result<Option<OpenFgaMigration>> {
    if config.authz.effective_backend(&config.authn) != AuthzBackend::Openfga {
        return Ok(None);
    }
    let fga = &config.authz.openfga;
    let connection = openfga::Connection::new(fga).map_err(|e| anyhow::anyhow!(e.message))?;
    let endpoint = fga.endpoint.as_deref().unwrap_or_default();
    let unreachable = |e: crate::error::Error| anyhow::anyhow!("{} at {endpoint}", e.message);
    let (store_id, model_id) = match (&fga.store_id, &fga.authorization_model_id) {
        (Some(store_id), Some(model_id)) => (store_id.clone(), model_id.clone()),
        _ => {
            let (store_id, model_id) = connection
                .migrate(&fga.store_name)
                .await
                .map_err(unreachable)?;
            for (key, value) in [
                (FGA_STORE_NAME, fga.store_name.as_str()),
                (FGA_STORE_ID, store_id.as_str()),
                (FGA_MODEL_ID, model_id.as_str()),
            ] {
                store.server.set_setting(key, value).await?;
            }
            (store_id, model_id)
        }
    };
    // The grants the database holds (made before OpenFGA was the backend, or whose mirroring
    // failed) are written to OpenFGA; present ones stay.
    let backend = connection.backend(&store_id, &model_id);
    // The model is there to be used (a pinned one too).
    backend.health().await.map_err(unreachable)?;
    let mut copied = 0;
    let mut after = None;
    loop {
        let page = store.authz.all_relationships(after.as_ref(), 500).await?;
        if page.is_empty() {
            break;
        }
        backend.write(&page, &[]).await.map_err(unreachable)?;
        copied += page.len();
        after = page.last().cloned();
    }
    Ok(Some(OpenFgaMigration {
        store_id,
        model_id,
        copied,
    }))
}

/// What `migrate_openfga` did.
pub struct OpenFgaMigration {
    pub store_id: String,
    pub model_id: String,
    /// Relationships copied from the database to OpenFGA.
    pub copied: usize,
}

/// The OpenFGA backend on the pinned store and model, else on those `floe migrate` recorded
/// (written now when migrations run at start).
async fn openfga_backend(
    config: &Config,
    store: &Persistence,
    migrate: bool,
) -> anyhow::Result<openfga::OpenFga> {
    let fga = &config.authz.openfga;
    let connection = openfga::Connection::new(fga).map_err(|e| anyhow::anyhow!(e.message))?;
    let pinned = fga.store_id.clone().zip(fga.authorization_model_id.clone());
    let recorded = async {
        let name = store.server.setting(FGA_STORE_NAME).await?;
        let store_id = store.server.setting(FGA_STORE_ID).await?;
        let model_id = store.server.setting(FGA_MODEL_ID).await?;
        Ok::<_, crate::error::Error>(match (name, store_id, model_id) {
            (Some(name), Some(s), Some(m)) if name == fga.store_name => Some((s, m)),
            _ => None,
        })
    };
    let (store_id, model_id) = match pinned {
        Some(ids) => ids,
        None if migrate => {
            let done = migrate_openfga(config, store)
                .await?
                .expect("the backend is openfga");
            (done.store_id, done.model_id)
        }
        None => recorded.await?.with_context(|| {
            format!(
                "authz.backend = \"openfga\": no model is recorded for OpenFGA store {:?}; \
                 run `floe migrate` (or pin authz.openfga.store_id and authorization_model_id)",
                fga.store_name
            )
        })?,
    };
    tracing::info!(store_id, model_id, "authorizing on OpenFGA");
    Ok(connection.backend(&store_id, &model_id))
}

/// Opens the configured database with the backend its URL selects (creating the SQLite file and
/// its folder when needed). Migrations are applied when `migrate` is true; otherwise a database
/// that lacks some is refused.
pub async fn open_persistence(config: &Config, migrate: bool) -> anyhow::Result<Persistence> {
    let db = &config.database;
    let pool = PoolOptions {
        max_connections: db.max_connections,
        min_connections: db.min_connections,
        acquire_timeout: Duration::from_millis(db.acquire_timeout_ms),
        idle_timeout: Duration::from_secs(db.idle_timeout_secs),
        statement_timeout: Duration::from_millis(db.statement_timeout_ms),
        table_cache_bytes: db.table_cache_mb * 1024 * 1024,
    };
    match config.database_target()? {
        DatabaseTarget::Sqlite(path) => {
            let options = SqliteOptions {
                pool,
                synchronous: match db.sqlite_synchronous {
                    SqliteSynchronous::Off => SqliteSync::Off,
                    SqliteSynchronous::Normal => SqliteSync::Normal,
                    SqliteSynchronous::Full => SqliteSync::Full,
                },
            };
            Persistence::sqlite(&path, &options, migrate).await
        }
        DatabaseTarget::Postgres(url) => {
            let options = PostgresOptions {
                pool,
                change_notifications: db.change_notifications,
            };
            Persistence::postgres(&url, &options, migrate).await
        }
    }
}

/// The catalog database's secret rows, as the database secret store's port.
pub fn secret_rows(store: &Persistence) -> Arc<dyn SealedRows> {
    Arc::new(SecretRows(store.secrets.clone()))
}

/// The built-in authorizer's relationships: the store's.
struct StoreRelationships(Arc<dyn crate::store::AuthzStore>);

#[async_trait::async_trait]
impl RelationshipReader for StoreRelationships {
    async fn caller_relationships(
        &self,
        user: &str,
        seed_roles: &[String],
        objects: Option<&[ObjectRef]>,
    ) -> crate::error::Result<(Vec<String>, Vec<crate::model::Relationship>)> {
        let objects: Option<Vec<(String, String)>> = objects.map(|objects| {
            objects
                .iter()
                .map(|o| (o.kind.as_str().to_string(), o.id.clone()))
                .collect()
        });
        self.0
            .caller_relationships(user, seed_roles, objects.as_deref())
            .await
    }
}

struct SecretRows(Arc<dyn SealedSecretStore>);

#[async_trait::async_trait]
impl SealedRows for SecretRows {
    async fn put_secret(&self, id: SecretId, secret: &SealedSecret) -> crate::error::Result<()> {
        self.0.put_secret(id, secret).await
    }

    async fn get_secret(&self, id: SecretId) -> crate::error::Result<Option<SealedSecret>> {
        self.0.get_secret(id).await
    }

    async fn delete_secret(&self, id: SecretId) -> crate::error::Result<()> {
        self.0.delete_secret(id).await
    }

    async fn sealed_secret_ids(&self, limit: u32) -> crate::error::Result<Vec<SecretId>> {
        self.0.sealed_secret_ids(limit).await
    }

    async fn put_secret_ref(
        &self,
        id: SecretId,
        reference: &crate::model::SecretRef,
    ) -> crate::error::Result<()> {
        self.0.put_secret_ref(id, reference).await
    }

    async fn get_secret_ref(
        &self,
        id: SecretId,
    ) -> crate::error::Result<Option<crate::model::SecretRef>> {
        self.0.get_secret_ref(id).await
    }

    async fn delete_secret_ref(&self, id: SecretId) -> crate::error::Result<()> {
        self.0.delete_secret_ref(id).await
    }

    async fn move_secret_to_ref(
        &self,
        id: SecretId,
        reference: &crate::model::SecretRef,
    ) -> crate::error::Result<()> {
        self.0.move_secret_to_ref(id, reference).await
    }
}

/// The secrets key: configured inline, from a file, or (embedded only) generated into the data dir.
fn encryption_key(config: &Config, embedded: bool) -> anyhow::Result<[u8; 32]> {
    if let Some(key) = &config.secrets.encryption_key {
        return parse_key(key).context("secrets.encryption_key");
    }
    if let Some(path) = &config.secrets.encryption_key_file {
        return read_key_file(path).context("secrets.encryption_key_file");
    }
    if embedded {
        return load_or_create_key_file(&config.storage.data_dir.join("secret.key"));
    }
    anyhow::bail!(
        "secrets.encryption_key (or secrets.encryption_key_file) must be set with PostgreSQL, \
         the same on every Floe instance: e.g. FLOE__SECRETS__ENCRYPTION_KEY=$(openssl rand -base64 32)"
    )
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
