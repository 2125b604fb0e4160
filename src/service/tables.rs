//! Table use cases of the Iceberg REST catalog: create (and stage-create), load, commit (one table
//! or many atomically), drop (with purge), rename, register, metrics and credentials.
//!
//! A commit writes a new metadata file (never overwriting one) and then swaps the table's pointer in
//! the database with a compare-and-swap; all tables of a transaction swap in one database
//! transaction. When the swap loses a race but the request's requirements still hold against the
//! new current metadata, the commit is re-applied on the server (bounded), so clients see 409 only
//! for real conflicts.

use std::collections::{HashMap, HashSet};

use iceberg::TableRequirement;
use iceberg::spec::{Schema, SortOrder, UnboundPartitionSpec};

use super::caches;
use super::commit::{Attempt, OpenWarehouse, Retries, Staged};
pub use super::commit::{TableChange, TableState};
use super::metadata::{
    check_locations, default_location, files_of_metadata, new_table_metadata,
    next_metadata_location, only_referenced_snapshots, table_metadata_json,
};
use super::{Delegation, RequestContext, Services, TableAccess};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, Result};
use crate::model::{
    NamespaceIdent, Page, PageRequest, Ref, RefSelector, Tabular, TabularId, TabularIdent,
    TabularKind, WarehouseId, now,
};
use crate::storage::{self, Location};
use crate::store::TabularChange;

/// Which snapshots a load returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotsMode {
    All,
    Refs,
}

#[derive(Debug)]
pub struct CreateTable {
    pub name: String,
    pub location: Option<String>,
    pub schema: Schema,
    pub partition_spec: Option<UnboundPartitionSpec>,
    pub write_order: Option<SortOrder>,
    pub properties: HashMap<String, String>,
    pub stage_create: bool,
}

fn namespace_resource(warehouse: WarehouseId, namespace: &NamespaceIdent) -> Resource {
    Resource::Namespace {
        warehouse,
        namespace: namespace.clone(),
    }
}

fn tabular_resource(t: &Tabular) -> Resource {
    Resource::Tabular {
        warehouse: t.warehouse_id,
        ident: t.ident.clone(),
        uuid: t.uuid,
        kind: t.kind,
    }
}

fn no_such_table(ident: &TabularIdent) -> Error {
    Error::not_found(Entity::Table, format!("table {ident} does not exist"))
}

fn no_such_namespace(namespace: &NamespaceIdent) -> Error {
    Error::not_found(
        Entity::Namespace,
        format!("namespace {namespace} does not exist"),
    )
}

/// The log target of what happens to a dropped table's files: every table drop ends in exactly
/// one `purge finished` line on it (at `info`), naming the table's UUID and the outcome
/// (`deleted`, or `kept: ...` saying why, or `incomplete`/`failed`), so operators (and tests) can
/// tell a purge that is done from one that is slow.
pub const PURGE_LOG: &str = "floe::purge";

impl Services {
    pub(crate) async fn open_warehouse(
        &self,
        ctx: &RequestContext,
        id: WarehouseId,
    ) -> Result<OpenWarehouse> {
        // From the short-lived cache: a warehouse's base location never changes, and a stale
        // storage setting for a few seconds is harmless.
        let warehouse = (*self.cached_warehouse(id).await?).clone();
        let branch = self.writable_ref(ctx, id).await?;
        let base = storage::base_location(&warehouse)?;
        let storage = self.warehouse_storage(&warehouse).await?;
        Ok(OpenWarehouse {
            warehouse,
            branch,
            base,
            storage,
        })
    }

    /// Fails with `NotFound(Namespace)` unless the namespace exists on the branch.
    pub(crate) async fn require_namespace(
        &self,
        branch: &Ref,
        namespace: &NamespaceIdent,
    ) -> Result<()> {
        match self
            .store
            .namespaces
            .get_namespace(branch.id, namespace)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(no_such_namespace(namespace)),
        }
    }

    pub async fn list_tables(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        namespace: &NamespaceIdent,
        page: PageRequest,
    ) -> Result<Page<String>> {
        self.authorize(
            ctx,
            Action::TableList,
            Resource::Namespace {
                warehouse,
                namespace: namespace.clone(),
            },
        )
        .await?;
        let visible = self
            .visible_tabulars(ctx, warehouse, namespace, TabularKind::Table)
            .await?;
        let branch = self.request_ref(ctx, warehouse).await?;
        self.require_namespace(&branch, namespace).await?;
        self.store
            .tabulars
            .list_tabulars(
                branch.id,
                namespace,
                TabularKind::Table,
                &page,
                visible.only(),
            )
            .await
    }

    pub async fn create_table(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        namespace: NamespaceIdent,
        request: CreateTable,
    ) -> Result<TableState> {
        // validate
        let ident = TabularIdent::new(namespace, request.name)?;
        // authorize
        self.authorize(
            ctx,
            Action::TableCreate,
            namespace_resource(warehouse, &ident.namespace),
        )
        .await?;
        // act
        let wh = self.open_warehouse(ctx, warehouse).await?;
        self.require_namespace(&wh.branch, &ident.namespace).await?;
        if self
            .store
            .tabulars
            .get_tabular(wh.branch.id, &ident)
            .await?
            .is_some()
        {
            return Err(Error::already_exists(
                Entity::Table,
                format!("a table or view named {ident} already exists"),
            ));
        }
        let location = match &request.location {
            Some(location) => Location::parse(location)?,
            None => default_location(&wh.base, ident.namespace.levels(), &ident.name)?,
        };
        check_locations(location.as_str(), &request.properties, &wh.base)?;
        let metadata = new_table_metadata(
            &location,
            request.schema,
            request.partition_spec,
            request.write_order,
            request.properties,
        )?;
        check_locations(metadata.location(), metadata.properties(), &wh.base)?;
        self.check_location_is_free(&wh, &location, request.location.is_some(), metadata.uuid())
            .await?;
        let json = bytes::Bytes::from(table_metadata_json(&metadata)?);
        if request.stage_create {
            // Nothing is recorded, but the location is made ready for the files the client writes
            // before it commits the create.
            for folder in ["metadata", "data"] {
                wh.storage.prepare_prefix(&location.join(folder)?).await?;
            }
            return Ok(TableState {
                location: location.to_string(),
                uuid: metadata.uuid(),
                new_uuid: true,
                metadata_location: None,
                metadata: json,
            });
        }
        let file = next_metadata_location(&location, metadata.properties(), None)?;
        wh.storage.put_new(&file, json.clone()).await?;
        let record = wh.new_tabular(
            TabularId::new(),
            ident.clone(),
            TabularKind::Table,
            metadata.uuid(),
            &location,
            &file,
            json.clone(),
        );
        if let Err(e) = self
            .store
            .tabulars
            .commit_tabulars(
                wh.branch.id,
                &[TabularChange::Create(record)],
                &self.commit_meta(ctx, format!("create table {ident}")),
            )
            .await
        {
            let _ = wh.storage.delete(&file).await;
            return Err(e);
        }
        self.own(
            ctx,
            Resource::Tabular {
                warehouse,
                ident: ident.clone(),
                uuid: metadata.uuid(),
                kind: TabularKind::Table,
            },
        )
        .await;
        Ok(TableState {
            location: location.to_string(),
            uuid: metadata.uuid(),
            new_uuid: true,
            metadata_location: Some(file.to_string()),
            metadata: json,
        })
    }

    /// The table's current state, in one indexed read of the database.
    pub async fn load_table(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        snapshots: SnapshotsMode,
    ) -> Result<TableState> {
        let table = self.find_table(ctx, warehouse, ident).await?;
        self.authorize(ctx, Action::TableRead, tabular_resource(&table))
            .await?;
        let metadata = match snapshots {
            SnapshotsMode::All => table.metadata,
            SnapshotsMode::Refs => match self.caches.referenced.get(&table.metadata_location) {
                Some(hit) => hit,
                None => {
                    let body = bytes::Bytes::from(only_referenced_snapshots(&table.metadata)?);
                    if body.len() <= caches::REFERENCED_BYTES / 8 {
                        self.caches.referenced.insert(
                            &table.metadata_location,
                            body.clone(),
                            body.len(),
                        );
                    }
                    body
                }
            },
        };
        Ok(TableState {
            location: table.location,
            uuid: table.uuid,
            new_uuid: false,
            metadata_location: Some(table.metadata_location),
            metadata,
        })
    }

    /// Commits one table (`updateTable`). A table that does not exist is created when the
    /// requirements include `assert-create` (the second half of a staged create).
    pub async fn commit_table(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        change: TableChange,
    ) -> Result<TableState> {
        let mut states = self
            .commit_transaction(ctx, warehouse, vec![change])
            .await?;
        Ok(states.remove(0))
    }

    /// Commits every change atomically, or none (`transactions/commit`).
    pub async fn commit_transaction(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        changes: Vec<TableChange>,
    ) -> Result<Vec<TableState>> {
        // validate
        if changes.is_empty() {
            return Err(Error::bad_request(
                "a commit needs at least one table change",
            ));
        }
        let mut seen = HashSet::new();
        for change in &changes {
            if !seen.insert(&change.ident) {
                return Err(Error::bad_request(format!(
                    "table {} appears twice in one transaction",
                    change.ident
                )));
            }
        }
        // authorize
        // Every table before anything changes: one refused table refuses the whole commit.
        let mut authorized: HashMap<TabularIdent, uuid::Uuid> = HashMap::new();
        for change in &changes {
            if change
                .requirements
                .iter()
                .any(|r| matches!(r, TableRequirement::NotExist))
            {
                self.authorize(
                    ctx,
                    Action::TableCreate,
                    namespace_resource(warehouse, &change.ident.namespace),
                )
                .await?;
            } else if let Some(uuid) = self
                .authorize_tabular(
                    ctx,
                    Action::TableCommit,
                    warehouse,
                    &change.ident,
                    TabularKind::Table,
                )
                .await?
            {
                authorized.insert(change.ident.clone(), uuid);
            }
        }
        // act
        let wh = self.open_warehouse(ctx, warehouse).await?;
        let _turn = self
            .commit_locks
            .lock(changes.iter().map(|c| (warehouse, wh.branch.id, &c.ident)))
            .await;
        self.commit_in_turn(ctx, warehouse, &wh, &changes, &authorized)
            .await
    }

    /// Floe's own commit to one table on the request's branch (maintenance): `prepare` decides
    /// the change from the table as it is once this process's commits to it have taken their
    /// turn, so a writer here cannot slip in between; one elsewhere makes the commit's
    /// requirements fail, and `prepare` is asked again, up to `attempts` times. `Ok(None)`
    /// when `prepare` wants no change (or the table is gone).
    pub(crate) async fn commit_prepared(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        attempts: usize,
        mut prepare: impl FnMut(&Tabular) -> Result<Option<TableChange>>,
    ) -> Result<Option<TableState>> {
        let wh = self.open_warehouse(ctx, warehouse).await?;
        let _turn = self
            .commit_locks
            .lock(std::iter::once((warehouse, wh.branch.id, ident)))
            .await;
        let mut last = None;
        for _ in 0..attempts.max(1) {
            let Some(table) = self.store.tabulars.get_tabular(wh.branch.id, ident).await? else {
                return Ok(None);
            };
            let Some(change) = prepare(&table)? else {
                return Ok(None);
            };
            let authorized = HashMap::from([(ident.clone(), table.uuid)]);
            match self
                .commit_in_turn(
                    ctx,
                    warehouse,
                    &wh,
                    std::slice::from_ref(&change),
                    &authorized,
                )
                .await
            {
                Ok(mut states) => return Ok(Some(states.remove(0))),
                Err(e) if e.kind == crate::error::ErrorKind::CommitConflict => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::conflict(format!("{ident} kept changing"))))
    }

    /// A commit whose tables' turns this process holds (`commit_locks`).
    async fn commit_in_turn(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        wh: &OpenWarehouse,
        changes: &[TableChange],
        authorized: &HashMap<TabularIdent, uuid::Uuid>,
    ) -> Result<Vec<TableState>> {
        let mut meta = self.commit_meta(
            ctx,
            match changes {
                [one] => format!("commit table {}", one.ident),
                many => format!("commit {} tables", many.len()),
            },
        );
        for change in changes {
            meta = meta.with_event_data(
                change.ident.namespace.levels(),
                &Some(change.ident.name.clone()),
                {
                    // What the client sent: the v3 types lowered for the crate go back.
                    let mut updates = serde_json::to_value(&change.updates).unwrap_or_default();
                    crate::model::v3_types::raise_updates(&mut updates);
                    serde_json::json!({ "updates": updates })
                },
            );
        }
        let mut retries = Retries::new();
        loop {
            match self
                .attempt_commit(wh, changes, &meta, authorized)
                .await
                .inspect_err(|e| {
                    if matches!(e.kind, crate::error::ErrorKind::CommitConflict) {
                        crate::telemetry::commit(crate::telemetry::CommitOutcome::Rejected);
                    }
                })? {
                Attempt::Done(done) => {
                    self.commits.landed();
                    let mut states = Vec::with_capacity(done.len());
                    for (staged, change) in done.into_iter().zip(changes) {
                        let Staged {
                            state,
                            retired,
                            parsed,
                        } = staged;
                        // Maintenance's own commits (Floe's, as `System`) do not call for more.
                        if !matches!(ctx.principal, crate::authn::Principal::System) {
                            self.after_commit(
                                warehouse,
                                &wh.branch,
                                &change.ident,
                                &parsed.2.metadata,
                            )
                            .await;
                        }
                        self.caches
                            .parsed_tables
                            .put_parsed(parsed.0, parsed.1, parsed.2);
                        for file in retired {
                            if let Err(e) = wh.storage.delete(&file).await {
                                tracing::warn!(file = %file, error = ?e, "deleting a retired metadata file failed");
                            }
                        }
                        if state.new_uuid {
                            self.own(
                                ctx,
                                Resource::Tabular {
                                    warehouse,
                                    ident: change.ident.clone(),
                                    uuid: state.uuid,
                                    kind: TabularKind::Table,
                                },
                            )
                            .await;
                        }
                        states.push(state);
                    }
                    return Ok(states);
                }
                Attempt::Lost(e) => {
                    let again = retries.again().await;
                    self.commits.lost(again);
                    if !again {
                        return Err(e);
                    }
                }
            }
        }
    }

    pub async fn drop_table(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        request: super::DropRequest,
    ) -> Result<()> {
        // authorize
        let action = if request.purge {
            Action::TablePurge
        } else {
            Action::TableDrop
        };
        self.authorize_tabular(ctx, action, warehouse, ident, TabularKind::Table)
            .await?;
        // act
        let wh = self.open_warehouse(ctx, warehouse).await?;
        let options = self
            .drop_options(
                ctx,
                warehouse,
                wh.branch.id,
                ident,
                TabularKind::Table,
                request,
            )
            .await?;
        let dropped = self
            .store
            .tabulars
            .drop_tabular(
                wh.branch.id,
                ident,
                TabularKind::Table,
                &self
                    .commit_meta(ctx, format!("drop table {ident}"))
                    .with_event_data(
                        ident.namespace.levels(),
                        &Some(ident.name.clone()),
                        serde_json::json!({
                            "purge-requested": request.purge,
                            "soft": options.soft.is_some(),
                        }),
                    ),
                &options,
            )
            .await?;
        // What happens to the files is a task's (purge), or waits for the soft delete's expiry.
        if options.soft.is_some() {
            tracing::info!(target: PURGE_LOG, table = %ident, table_uuid = %dropped.uuid, outcome = "kept: soft-deleted", "purge finished");
        } else if options.purge.is_some() {
            self.wake_workers();
        } else {
            tracing::info!(target: PURGE_LOG, table = %ident, table_uuid = %dropped.uuid, outcome = "kept: no purge was asked", "purge finished");
        }
        Ok(())
    }

    pub async fn table_exists(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
    ) -> Result<()> {
        let table = self.find_table(ctx, warehouse, ident).await?;
        self.authorize(ctx, Action::TableRead, tabular_resource(&table))
            .await
    }

    /// The table on the request's ref: on `main` in one read; when there is none, says whether
    /// the warehouse or the table is missing.
    pub(super) async fn find_table(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
    ) -> Result<Tabular> {
        let found = match &ctx.reference {
            RefSelector::Main => {
                self.require_browsable(ctx, warehouse).await?;
                self.store
                    .tabulars
                    .find_tabular(warehouse, crate::model::MAIN_BRANCH, ident)
                    .await?
            }
            RefSelector::Named(_) => {
                let reference = self.request_ref(ctx, warehouse).await?;
                self.store.tabulars.get_tabular(reference.id, ident).await?
            }
        };
        match found {
            Some(t) if t.kind == TabularKind::Table => self.with_metadata(t).await,
            _ => {
                self.request_ref(ctx, warehouse).await?;
                Err(no_such_table(ident))
            }
        }
    }

    /// A table or view whose version only history knows (a branch's view of a table its parent
    /// changed since) comes from the store without its metadata: read it from its file.
    pub(crate) async fn with_metadata(&self, mut t: Tabular) -> Result<Tabular> {
        if !t.metadata.is_empty() {
            return Ok(t);
        }
        let warehouse = self.cached_warehouse(t.warehouse_id).await?;
        let storage = self.warehouse_storage(&warehouse).await?;
        let file = Location::parse(&t.metadata_location)?;
        t.metadata = storage
            .get(&file)
            .await?
            .ok_or_else(|| {
                Error::internal(
                    "reading a table's metadata",
                    anyhow::anyhow!("the metadata file {file} is missing"),
                )
            })?
            .into();
        Ok(t)
    }

    pub async fn rename_table(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        from: &TabularIdent,
        to: &TabularIdent,
    ) -> Result<()> {
        self.authorize_tabular(
            ctx,
            Action::TableRename,
            warehouse,
            from,
            TabularKind::Table,
        )
        .await?;
        self.authorize(
            ctx,
            Action::TableCreate,
            namespace_resource(warehouse, &to.namespace),
        )
        .await?;
        let branch = self.writable_ref(ctx, warehouse).await?;
        self.store
            .tabulars
            .rename_tabular(
                branch.id,
                from,
                to,
                TabularKind::Table,
                &self
                    .commit_meta(ctx, format!("rename table {from} to {to}"))
                    .announced_as(crate::model::CommitEvent::Rename),
            )
            .await?;
        Ok(())
    }

    /// Registers an existing metadata file (inside the warehouse) as a table; with `overwrite`, an
    /// existing table of that name is pointed at it instead.
    pub async fn register_table(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: TabularIdent,
        metadata_location: &str,
        overwrite: bool,
    ) -> Result<TableState> {
        // validate
        let file = Location::parse(metadata_location)?;
        // authorize
        self.authorize(
            ctx,
            Action::TableRegister,
            namespace_resource(warehouse, &ident.namespace),
        )
        .await?;
        if overwrite {
            // Pointing an existing table at another file is a commit to it.
            self.authorize_tabular(
                ctx,
                Action::TableCommit,
                warehouse,
                &ident,
                TabularKind::Table,
            )
            .await?;
        }
        // act
        let wh = self.open_warehouse(ctx, warehouse).await?;
        if !file.is_within(&wh.base) || file == wh.base {
            return Err(Error::forbidden(format!(
                "metadata location {file} is outside the warehouse at {}",
                wh.base
            )));
        }
        self.require_namespace(&wh.branch, &ident.namespace).await?;
        let bytes =
            wh.storage.get(&file).await?.ok_or_else(|| {
                Error::bad_request(format!("there is no metadata file at {file}"))
            })?;
        let metadata: iceberg::spec::TableMetadata = super::metadata::lowered(&bytes)
            .map_err(|e| Error::bad_request(format!("{file} is not valid table metadata: {e}")))?;
        super::metadata::check_carried_types(&metadata)?;
        let location = check_locations(metadata.location(), metadata.properties(), &wh.base)?;
        // The file lies in the folder it names, as every metadata file Floe writes does: only
        // someone who could already write in that folder can have made it.
        if !file.is_within(&location) || file == location {
            return Err(Error::forbidden(format!(
                "metadata file {file} is not inside the table location it names ({location})"
            )));
        }
        let json = bytes::Bytes::from(table_metadata_json(&metadata)?);
        let existing = self
            .store
            .tabulars
            .get_tabular(wh.branch.id, &ident)
            .await?;
        let replaced = existing
            .as_ref()
            .filter(|t| overwrite && t.kind == TabularKind::Table)
            .map(|t| t.id);
        if existing.is_some() && replaced.is_none() {
            return Err(Error::already_exists(
                Entity::Table,
                format!("a table or view named {ident} already exists"),
            ));
        }
        let new_uuid = match &existing {
            Some(t) if t.uuid != metadata.uuid() => {
                return Err(Error::bad_request(format!(
                    "registering {file} over table {ident} would change its UUID (from {} to {}); \
                     drop the table first or register under another name",
                    t.uuid,
                    metadata.uuid()
                )));
            }
            Some(_) => false,
            None => {
                let new = self
                    .check_new_uuid(&wh, metadata.uuid(), Some(&file))
                    .await?;
                if !new {
                    self.require_takeover(ctx, warehouse, metadata.uuid(), TabularKind::Table)
                        .await?;
                }
                new
            }
        };
        self.check_location_is_free(&wh, &location, true, metadata.uuid())
            .await?;
        self.check_files_are_the_tables(
            &wh,
            metadata.uuid(),
            &location,
            &files_of_metadata(&metadata),
        )
        .await?;
        let at = now();
        let change = match existing {
            None => TabularChange::Create(wh.new_tabular(
                TabularId::new(),
                ident.clone(),
                TabularKind::Table,
                metadata.uuid(),
                &location,
                &file,
                json.clone(),
            )),
            Some(t) if overwrite && t.kind == TabularKind::Table => TabularChange::Update {
                id: t.id,
                ident: ident.clone(),
                expected_version: t.version,
                uuid: metadata.uuid(),
                location: location.to_string(),
                metadata_location: file.to_string(),
                metadata: json.clone(),
                at,
                claims_location: (t.location != location.as_str()).then_some(wh.warehouse.id),
            },
            Some(_) => {
                return Err(Error::already_exists(
                    Entity::Table,
                    format!("a table or view named {ident} already exists"),
                ));
            }
        };
        self.store
            .tabulars
            .commit_tabulars(
                wh.branch.id,
                &[change],
                &self
                    .commit_meta(ctx, format!("register table {ident}"))
                    .announced_as(crate::model::CommitEvent::Register),
            )
            .await?;
        // A UUID the warehouse knew (a dropped table brought back) keeps the grants it had; the
        // caller gets no ownership of it by registering it.
        if new_uuid {
            self.own(
                ctx,
                Resource::Tabular {
                    warehouse,
                    ident: ident.clone(),
                    uuid: metadata.uuid(),
                    kind: TabularKind::Table,
                },
            )
            .await;
        }
        Ok(TableState {
            location: location.to_string(),
            uuid: metadata.uuid(),
            new_uuid,
            metadata_location: Some(file.to_string()),
            metadata: json,
        })
    }

    /// Accepts a scan or commit report and hands it to the event publishers. The table need not
    /// exist yet: Spark reports a CTAS's commit just before the commit that creates the table.
    pub async fn report_metrics(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        report: serde_json::Value,
    ) -> Result<()> {
        if !report.is_object() {
            return Err(Error::bad_request("a metrics report is a JSON object"));
        }
        self.authorize_tabular(
            ctx,
            Action::TableReportMetrics,
            warehouse,
            ident,
            TabularKind::Table,
        )
        .await?;
        self.table_exists(ctx, warehouse, ident).await?;
        self.announce(
            ctx,
            "floe.table.metrics-reported",
            format!("warehouse/{warehouse}/table/{ident}"),
            report,
        )
        .await;
        Ok(())
    }

    /// Storage credentials for a table's location. Local warehouses need none; vended S3
    /// credentials arrive with S3 support.
    pub async fn load_credentials(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        delegation: Delegation,
    ) -> Result<std::sync::Arc<TableAccess>> {
        let table = self.find_table(ctx, warehouse, ident).await?;
        self.authorize(ctx, Action::TableReadCredentials, tabular_resource(&table))
            .await?;
        self.table_access(
            ctx,
            warehouse,
            ident,
            &table.location,
            (table.uuid, false),
            delegation,
        )
        .await
    }

    /// The config and storage credentials that go with a table the caller loaded or created:
    /// read-write when the caller may commit to it, read-only otherwise, none when the caller may
    /// not have credentials for it at all.
    pub async fn table_access(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        location: &str,
        uuid: (uuid::Uuid, bool),
        delegation: Delegation,
    ) -> Result<std::sync::Arc<TableAccess>> {
        // A table just created (or staged) by this caller: who may create it may write it.
        let may_commit = if uuid.1 {
            self.may(
                ctx,
                Action::TableCreate,
                &namespace_resource(warehouse, &ident.namespace),
            )
            .await?
        } else {
            let table = Resource::Tabular {
                warehouse,
                ident: ident.clone(),
                uuid: uuid.0,
                kind: TabularKind::Table,
            };
            if !self.may(ctx, Action::TableReadCredentials, &table).await? {
                return Ok(std::sync::Arc::default());
            }
            self.may(ctx, Action::TableCommit, &table).await?
        };
        let access = self.file_access(ctx, warehouse, may_commit).await?;
        self.storage_access(
            warehouse,
            &ctx.reference,
            ident,
            location,
            uuid,
            access,
            delegation,
        )
        .await
    }
}
