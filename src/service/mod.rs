//! Use cases: what Floe does, independent of how it is called. Each use case shows its phases
//! (`// validate`, `// authorize`, `// act`, `// announce`), asks the `Authorizer` before acting, and
//! publishes a `CatalogEvent` after a change commits.
//!
//! Architecture invariant: nothing here imports axum or sqlx. Use cases talk to the store traits,
//! `storage`, `secrets`, `authz` and `events` through `Arc<dyn Trait>`s that `server.rs` picks.

mod access;
pub mod access_keys;
mod branches;
mod caches;
mod catalog;
mod claims;
mod commit;
mod cpu;
pub mod feed;
mod grants;
pub mod idempotency;
mod lifecycle;
pub use lifecycle::{DropNamespaceRequest, DropRequest, ProtectionTarget};
mod vending;
pub use vending::{Delegation, TableAccess};
mod maintenance;
mod merge;
pub mod metadata;
mod namespaces;
mod projects;
pub mod relay;
pub mod scan;
mod search;
mod server;
mod table_json;
mod tables;
pub mod tasks;
mod users;
mod views;
mod warehouses;

use std::sync::Arc;

use crate::authn::Principal;
use crate::authz::Authorizer;
use crate::error::Result;
use crate::events::EventPublisher;
use crate::model::{Warehouse, WarehouseId, now};
use crate::secrets::SecretStore;
use crate::store::Persistence;

pub use branches::{CommitPage, ContentChange, MergeConflict, MergeOutcome, validate_ref_name};
use caches::WAREHOUSE_TTL;
pub(crate) use caches::{FifoCache, ParsedTable};
pub use catalog::CatalogConfig;
pub use commit::{BeforeSwap, CommitCounts};
pub use grants::{Grant, Grantee};
pub use namespaces::{NamespacePropertiesUpdate, NamespacesPage};
pub use server::ServerStatus;
pub use tables::{CreateTable, SnapshotsMode, TableChange, TableState};
pub use users::{ProvisionUser, Whoami};
pub use views::{CreateView, ViewState};
pub use warehouses::{CreateWarehouse, LocalRoots, UpdateWarehouseStorage};

/// Who is asking, and under which request id.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub principal: Principal,
    pub request_id: String,
    /// The branch, tag or commit a catalog request addresses (its prefix's `@<ref>`).
    pub reference: crate::model::RefSelector,
    /// The operation the request calls (`None` for Floe acting on its own behalf).
    pub operation: Option<crate::model::Operation>,
}

impl RequestContext {
    /// The record of a catalog change this caller makes (see `store::RefStore`).
    pub fn commit(&self, message: impl Into<String>) -> crate::model::CommitMeta {
        let mut meta = crate::model::CommitMeta::new(self.principal.display_id(), message);
        meta.request_id = self.request_id.clone();
        meta
    }

    /// The context of Floe acting on its own behalf (the automatic bootstrap).
    pub fn system() -> Self {
        RequestContext {
            principal: Principal::System,
            request_id: "startup".into(),
            reference: crate::model::RefSelector::Main,
            operation: None,
        }
    }
}

/// Everything the use cases need, shared by all requests.
/// The use cases. Cheap to clone (one shared allocation): every request's handler takes a copy.
#[derive(Clone)]
pub struct Services(Arc<ServicesInner>);

impl std::ops::Deref for Services {
    type Target = ServicesInner;

    fn deref(&self) -> &ServicesInner {
        &self.0
    }
}

/// What the use cases share: modules, stores and caches.
pub struct ServicesInner {
    store: Persistence,
    secrets: Arc<dyn SecretStore>,
    authz: Arc<dyn Authorizer>,
    events: Arc<Vec<Arc<dyn EventPublisher>>>,
    /// Wakes this instance's events relay (a change was just made here).
    relay_wake: Arc<tokio::sync::Notify>,
    commit_locks: Arc<commit::CommitLocks>,
    commits: commit::CommitProbe,
    caches: caches::Caches,
    access: access::AccessCaches,
    /// Mints and checks the S3 gateway's access keys; `None` when the gateway is disabled.
    keys: Option<Arc<access_keys::KeyMinter>>,
    /// The gateway's address as clients reach it (`http://host:port`), when it serves warehouses.
    gateway_endpoint: Option<String>,
    /// The region the gateway signs for.
    gateway_region: String,
    /// The catalog's base URI (`.../catalog`) as clients reach it, when configured; remote signing
    /// points clients at it, else they use the URI they reached the catalog at.
    catalog_url: Option<String>,
    /// Where local warehouses may live (none unless configured).
    local_roots: warehouses::LocalRoots,
    /// User ids that are always server admins (`authn.admins`, break glass).
    admins: Vec<String>,
    /// The ids of the configured identity providers (users are `<provider>~<subject>`).
    providers: Vec<String>,
    /// IdP roles that make callers assignees of Floe roles.
    role_mappings: Vec<crate::authz::roles::RoleMapping>,
    /// How long S3 stores are waited for.
    s3_timeouts: crate::storage::s3::S3Timeouts,
    /// Wakes this instance's idle task workers (a task was just enqueued here).
    task_wake: Arc<tokio::sync::Notify>,
    /// Attempts a new task gets before it fails for good.
    task_max_attempts: u32,
    /// How idempotency keys are kept.
    idempotency: idempotency::IdempotencySettings,
    idempotency_sweeps: idempotency::Sweeps,
    /// When scans are planned at once and how large plans are split.
    planning: scan::PlanningSettings,
}

impl Services {
    /// What table commits did since start (landed, re-applied after a lost swap, given up on).
    pub fn commit_counts(&self) -> CommitCounts {
        self.commits.counts()
    }

    /// Sets (or clears) the code run between writing a commit's metadata and swapping its
    /// pointers; see [`BeforeSwap`].
    pub fn set_before_swap(&self, hook: Option<BeforeSwap>) {
        self.commits.set_before_swap(hook);
    }

    pub fn new(
        store: Persistence,
        secrets: Arc<dyn SecretStore>,
        authz: Arc<dyn Authorizer>,
        events: Vec<Arc<dyn EventPublisher>>,
    ) -> Self {
        Services(Arc::new(ServicesInner {
            store,
            secrets,
            authz,
            events: Arc::new(events),
            relay_wake: Arc::new(tokio::sync::Notify::new()),
            commit_locks: Arc::new(commit::CommitLocks::new()),
            commits: commit::CommitProbe::default(),
            caches: caches::Caches::new(),
            access: access::AccessCaches::default(),
            keys: None,
            gateway_endpoint: None,
            gateway_region: String::new(),
            catalog_url: None,
            local_roots: warehouses::LocalRoots::default(),
            admins: Vec::new(),
            providers: Vec::new(),
            role_mappings: Vec::new(),
            s3_timeouts: Default::default(),
            task_wake: Arc::new(tokio::sync::Notify::new()),
            task_max_attempts: tasks::TaskSettings::default().max_attempts,
            idempotency: Default::default(),
            idempotency_sweeps: Default::default(),
            planning: Default::default(),
        }))
    }

    /// Sets how idempotency keys are kept.
    pub fn with_idempotency(mut self, settings: idempotency::IdempotencySettings) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.idempotency = settings;
        self
    }

    /// Sets when scans are planned at once and how large plans are split.
    pub fn with_planning(mut self, settings: scan::PlanningSettings) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.planning = settings;
        self
    }

    /// Sets the attempts new tasks get before they fail for good.
    pub fn with_task_max_attempts(mut self, attempts: u32) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.task_max_attempts = attempts.max(1);
        self
    }

    /// Sets the identity providers' ids and the user ids that are always server admins.
    pub fn with_identity(mut self, providers: Vec<String>, admins: Vec<String>) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.providers = providers;
        inner.admins = admins;
        self
    }

    /// Sets which IdP roles make callers assignees of which Floe roles.
    pub fn with_role_mappings(mut self, mappings: Vec<crate::authz::roles::RoleMapping>) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.role_mappings = mappings;
        self
    }

    /// Sets how long S3 stores are waited for.
    pub fn with_s3_timeouts(mut self, timeouts: crate::storage::s3::S3Timeouts) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.s3_timeouts = timeouts;
        self
    }

    /// Sets where local warehouses may live.
    pub fn with_local_roots(mut self, roots: warehouses::LocalRoots) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.local_roots = roots;
        self
    }

    fn cached_main_branch(&self, warehouse: WarehouseId) -> Option<crate::model::Ref> {
        self.caches
            .main_branches
            .lock()
            .expect("cache lock")
            .get(&warehouse)
            .filter(|(at, _)| at.elapsed() < WAREHOUSE_TTL)
            .map(|(_, branch)| branch.clone())
    }

    fn remember_main_branch(&self, warehouse: WarehouseId, branch: &crate::model::Ref) {
        let mut cache = self.caches.main_branches.lock().expect("cache lock");
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(warehouse, (std::time::Instant::now(), branch.clone()));
    }

    /// A warehouse, from a short-lived cache (see `warehouses`).
    pub(crate) async fn cached_warehouse(&self, id: WarehouseId) -> Result<Arc<Warehouse>> {
        if let Some((at, warehouse)) = self.caches.warehouses.lock().expect("cache lock").get(&id)
            && at.elapsed() < WAREHOUSE_TTL
        {
            return Ok(warehouse.clone());
        }
        let warehouse = Arc::new(self.load_warehouse(id).await?);
        let mut cache = self.caches.warehouses.lock().expect("cache lock");
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(id, (std::time::Instant::now(), warehouse.clone()));
        Ok(warehouse)
    }

    pub(crate) fn forget_warehouse(&self, id: WarehouseId) {
        self.caches
            .warehouses
            .lock()
            .expect("cache lock")
            .remove(&id);
        self.caches
            .main_branches
            .lock()
            .expect("cache lock")
            .remove(&id);
    }

    /// Turns on the S3 gateway's access keys (derived from `server_key`) and, for vended
    /// credentials, the address clients reach the gateway at.
    pub fn with_gateway(mut self, server_key: &[u8; 32], endpoint: String, region: String) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.keys = Some(Arc::new(access_keys::KeyMinter::new(server_key)));
        inner.gateway_endpoint = Some(endpoint);
        inner.gateway_region = region;
        self
    }

    /// Sets the catalog's public base URI (`<public_url>/catalog`), given to remote-signing clients.
    pub fn with_catalog_url(mut self, url: String) -> Self {
        let inner = Arc::get_mut(&mut self.0).expect("configured before it is shared");
        inner.catalog_url = Some(url.trim_end_matches('/').to_string());
        self
    }

    pub fn gateway_endpoint(&self) -> Option<&str> {
        self.gateway_endpoint.as_deref()
    }

    /// The event of a change that is not recorded on a branch (projects, warehouses, refs,
    /// grants), to be written in the change's own transaction; none when no publisher is
    /// configured. `kind` is the type without `io.floe.` (e.g. `warehouse.renamed`).
    fn change_event(
        &self,
        ctx: &RequestContext,
        kind: &str,
        subject: String,
        data: serde_json::Value,
    ) -> Vec<crate::model::events::CloudEvent> {
        if self.events.is_empty() {
            return Vec::new();
        }
        let actor = ctx.principal.display_id();
        let warehouse = subject
            .strip_prefix("warehouse/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|id| id.parse().ok());
        let reference = data.get("ref").and_then(|r| r.as_str()).map(str::to_string);
        vec![crate::model::events::CloudEvent::new(
            kind,
            subject.clone(),
            subject,
            &crate::model::events::EventContext {
                actor: &actor,
                request_id: &ctx.request_id,
                warehouse,
                reference: reference.as_deref(),
                commit: None,
            },
            &[],
            now(),
            data,
        )]
    }

    /// Hands an event that is not a change of the catalog's state (a table's metrics report,
    /// users recorded on sight) to every publisher at once; failures are logged, never
    /// returned.
    async fn announce(
        &self,
        ctx: &RequestContext,
        kind: &'static str,
        subject: String,
        data: serde_json::Value,
    ) {
        let kind = kind.strip_prefix("floe.").unwrap_or(kind);
        let events = self.change_event(ctx, kind, subject, data);
        for publisher in self.events.iter() {
            if let Err(e) = publisher.publish(&events).await {
                tracing::warn!(error = ?e, kind, "publishing an event failed");
            }
        }
    }

    /// The record of a catalog change `ctx` makes: its commit and, when events are published
    /// at all, its events.
    pub(crate) fn commit_meta(
        &self,
        ctx: &RequestContext,
        message: impl Into<String>,
    ) -> crate::model::CommitMeta {
        let meta = ctx.commit(message);
        if self.events.is_empty() {
            meta.announced_as(crate::model::CommitEvent::Silent)
        } else {
            meta
        }
    }

    /// Readiness: the database answers and every module is healthy.
    pub async fn ready(&self) -> Result<()> {
        self.store.server.health().await?;
        self.authz.health().await?;
        // Event publishers do not make Floe unready: their events wait in the outbox (the
        // backlog is in the readiness details). Neither does the secret store: only what needs
        // a secret fails while it is away (its state is in the readiness details too).
        Ok(())
    }

    /// The secret store's backend and whether it answers now (for readiness details).
    pub async fn secrets_status(&self) -> (&'static str, Result<()>) {
        (self.secrets.name(), self.secrets.health().await)
    }

    /// Records the gauges read at scrape time: the database pools and the events' backlog (the
    /// backlog only when the database answers within a second; a scrape never waits longer).
    pub async fn record_gauges(&self) {
        for state in self.store.server.pool_states() {
            crate::telemetry::pool_state(&state);
        }
        let backlog = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            self.store.events.event_backlog(),
        )
        .await;
        if let Ok(Ok(backlog)) = backlog {
            crate::telemetry::events_backlog(backlog.pending);
        }
        let tasks = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            self.store.tasks.open_task_counts(),
        )
        .await;
        if let Ok(Ok(counts)) = tasks {
            crate::telemetry::open_tasks(crate::model::lifecycle::queues::ALL, &counts);
        }
    }
}
