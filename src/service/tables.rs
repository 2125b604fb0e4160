//! Table use cases of the Iceberg REST catalog: create (and stage-create), load, commit (one table
//! or many atomically), drop (with purge), rename, register, metrics and credentials.
//!
//! A commit writes a new metadata file (never overwriting one) and then swaps the table's pointer in
//! the database with a compare-and-swap; all tables of a transaction swap in one database
//! transaction. When the swap loses a race but the request's requirements still hold against the
//! new current metadata, the commit is re-applied on the server (bounded), so clients see 409 only
//! for real conflicts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use iceberg::spec::{Schema, SortOrder, UnboundPartitionSpec};
use iceberg::{TableRequirement, TableUpdate};

use super::metadata::{
    apply_table_commit, check_locations, default_location, file_outside_error, files_of_metadata,
    files_of_updates, files_outside, new_table_metadata, next_metadata_location,
    only_referenced_snapshots, parse_table_metadata, retired_metadata_files, table_metadata_json,
};
use super::table_json::table_json;
use super::{Delegation, ParsedTable, RequestContext, Services, TableAccess};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, ErrorKind, Result};
use crate::model::{
    CommitMeta, NamespaceIdent, Page, PageRequest, Ref, Tabular, TabularId, TabularIdent,
    TabularKind, Warehouse, WarehouseId, now,
};
use crate::storage::{self, Location, ObjectStorage};
use crate::store::TabularChange;

/// A table as a client sees it: where its metadata file is (none for a staged create) and the
/// metadata itself, as JSON.
#[derive(Debug, Clone)]
pub struct TableState {
    /// The table's base location.
    pub location: String,
    /// The table's UUID (the owner of its folder claims).
    pub uuid: uuid::Uuid,
    /// A table this request made with a UUID new to the warehouse: its one folder is its
    /// location, so access to it is decided without reading its claims.
    pub new_uuid: bool,
    pub metadata_location: Option<String>,
    pub metadata: bytes::Bytes,
}

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

/// One table's part of a commit.
#[derive(Debug, Clone)]
pub struct TableChange {
    pub ident: TabularIdent,
    pub requirements: Vec<TableRequirement>,
    pub updates: Vec<TableUpdate>,
}

impl Services {
    /// Refuses a table location that overlaps another table's folder, or a folder another table
    /// still claims (one it moved away from, or a dropped table's that is not purged): equal to
    /// it, inside it, or (for `explicit` locations, which can be anything) containing it. A key
    /// vended for one table must never reach another's files. The table's own claims (`uuid`)
    /// do not count.
    pub(crate) async fn check_location_is_free(
        &self,
        wh: &OpenWarehouse,
        location: &Location,
        explicit: bool,
        uuid: uuid::Uuid,
    ) -> Result<()> {
        let Some(prefixes) = folder_and_parents(&wh.base, location) else {
            return Ok(());
        };
        if let Some(other) = self
            .store
            .tabulars
            .overlapping_table(
                wh.warehouse.id,
                &prefixes,
                explicit.then_some(location.as_str()),
                Some(uuid),
            )
            .await?
        {
            return Err(Error::bad_request(format!(
                "location {location} overlaps the folder of another table at {other}; every \
                 table needs a folder of its own"
            )));
        }
        Ok(())
    }
}

impl Services {
    /// Refuses a new table (a create, or a registered file) whose UUID another table of the
    /// warehouse already has or had: folder claims belong to a UUID, so a table that borrowed
    /// another's UUID could move into that table's folders. Registering a version the warehouse
    /// recorded for that very UUID (bringing a dropped table back) is the one exception. Answers
    /// whether the UUID is new to the warehouse.
    pub(crate) async fn check_new_uuid(
        &self,
        wh: &OpenWarehouse,
        uuid: uuid::Uuid,
        registered: Option<&Location>,
    ) -> Result<bool> {
        if !self
            .store
            .tabulars
            .uuid_known(wh.warehouse.id, uuid, None)
            .await?
        {
            return Ok(true);
        }
        // Only while no row of that UUID lives on this branch: two tables of one UUID on one
        // line would share claims, and purging one would delete the other's files.
        if let Some(file) = registered
            && self
                .store
                .tabulars
                .recorded_version(wh.warehouse.id, uuid, file.as_str())
                .await?
            && !self
                .store
                .tabulars
                .lines_holding(wh.warehouse.id, uuid)
                .await?
                .contains(&wh.branch.id)
        {
            return Ok(false);
        }
        Err(Error::already_exists(
            Entity::Table,
            format!(
                "a table with UUID {uuid} exists or existed in this warehouse; a new table needs \
                 a UUID of its own"
            ),
        ))
    }

    /// Refuses files a commit or a registered table points at (manifest lists, statistics) that
    /// lie outside the table's folders: its location, and the folders the table `uuid` claims.
    pub(crate) async fn check_files_are_the_tables(
        &self,
        wh: &OpenWarehouse,
        uuid: uuid::Uuid,
        location: &Location,
        files: &[(String, &str)],
    ) -> Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let mut folders = vec![location.clone()];
        if files_outside(files, &folders).is_empty() {
            return Ok(());
        }
        for folder in self
            .store
            .tabulars
            .claimed_folders(wh.warehouse.id, uuid, Some(TabularKind::Table))
            .await?
        {
            if let Ok(folder) = Location::parse(&folder) {
                folders.push(folder);
            }
        }
        match files_outside(files, &folders).first() {
            None => Ok(()),
            Some((what, path)) => Err(file_outside_error(what, path)),
        }
    }
}

/// A folder of the warehouse and each folder above it, up to (not including) the warehouse's base;
/// `None` outside the warehouse.
fn folder_and_parents(base: &Location, location: &Location) -> Option<Vec<String>> {
    let relative = location.relative_to(base)?;
    let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
    let base = base.as_str().trim_end_matches('/');
    Some(
        (1..=parts.len())
            .map(|i| format!("{base}/{}", parts[..i].join("/")))
            .collect(),
    )
}

/// A warehouse opened for catalog work: its record, branch, base location and store.
pub(crate) struct OpenWarehouse {
    pub warehouse: Warehouse,
    pub branch: Ref,
    pub base: Location,
    pub storage: Arc<dyn ObjectStorage>,
}

impl OpenWarehouse {
    /// The record of a new table or view of this warehouse's branch, at version 0.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_tabular(
        &self,
        id: TabularId,
        ident: TabularIdent,
        kind: TabularKind,
        uuid: uuid::Uuid,
        location: &Location,
        metadata_location: &Location,
        metadata: bytes::Bytes,
    ) -> Tabular {
        let at = now();
        Tabular {
            id,
            warehouse_id: self.warehouse.id,
            ref_id: self.branch.id,
            ident,
            kind,
            uuid,
            location: location.to_string(),
            metadata_location: metadata_location.to_string(),
            metadata,
            version: 0,
            created_at: at,
            updated_at: at,
        }
    }
}

fn table_resource(warehouse: WarehouseId, table: &TabularIdent) -> Resource {
    Resource::Table {
        warehouse,
        table: table.clone(),
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

/// How long a commit keeps re-applying itself after losing races before answering 409.
///
/// Bounded by time, not by a count: a writer that lost keeps a handicap against the one that won
/// (it re-reads from the database what the winner's next commit finds in memory), so against
/// another instance's steady stream of commits to the same table it may lose many times in a
/// row before it wins; a count small enough to answer quickly would turn that into 409s.
const COMMIT_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// The retries of one commit: a short random pause before each (growing a little with the
/// attempts, so that writers that collided spread out), until the budget is spent.
pub(crate) struct Retries {
    started: std::time::Instant,
    attempts: u64,
}

impl Retries {
    pub(crate) fn new() -> Self {
        Retries {
            started: std::time::Instant::now(),
            attempts: 0,
        }
    }

    /// Waits before the next attempt; false when the budget is spent (answer 409 then).
    pub(crate) async fn again(&mut self) -> bool {
        use rand::Rng;
        if self.started.elapsed() >= COMMIT_RETRY_BUDGET {
            return false;
        }
        self.attempts += 1;
        let ceiling = (1 + self.attempts).min(10);
        let millis = rand::thread_rng().gen_range(0..=ceiling);
        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        true
    }
}

/// What a staged change becomes once committed: the client's view, the retired metadata files to
/// delete, and the parsed metadata at its new version (kept for the next commit).
struct Staged {
    state: TableState,
    retired: Vec<Location>,
    parsed: (TabularId, String, Arc<ParsedTable>),
}

/// The outcome of one attempt at a commit.
enum Attempt {
    Done(Vec<Staged>),
    /// The compare-and-swap lost a race; try again on the new state.
    Lost(Error),
}

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
        let branch = self.request_ref(ctx, warehouse).await?;
        self.require_namespace(&branch, namespace).await?;
        self.store
            .tabulars
            .list_tabulars(branch.id, namespace, TabularKind::Table, &page)
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
        self.authorize(ctx, Action::TableCreate, table_resource(warehouse, &ident))
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
                &ctx.commit(format!("create table {ident}")),
            )
            .await
        {
            let _ = wh.storage.delete(&file).await;
            return Err(e);
        }
        // announce
        self.announce(
            ctx,
            "floe.table.created",
            format!("warehouse/{warehouse}/table/{ident}"),
            serde_json::json!({
                "namespace": ident.namespace, "name": ident.name, "ref": wh.branch.name,
                "metadata-location": file.as_str(),
            }),
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
        self.authorize(ctx, Action::TableRead, table_resource(warehouse, ident))
            .await?;
        let table = self.find_table(ctx, warehouse, ident).await?;
        let metadata = match snapshots {
            SnapshotsMode::All => table.metadata,
            SnapshotsMode::Refs => match self.referenced.get(&table.metadata_location) {
                Some(hit) => hit,
                None => {
                    let body = bytes::Bytes::from(only_referenced_snapshots(&table.metadata)?);
                    self.referenced.put(&table.metadata_location, body.clone());
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
        for change in &changes {
            let action = if change
                .requirements
                .iter()
                .any(|r| matches!(r, TableRequirement::NotExist))
            {
                Action::TableCreate
            } else {
                Action::TableCommit
            };
            self.authorize(ctx, action, table_resource(warehouse, &change.ident))
                .await?;
        }
        // act
        let wh = self.open_warehouse(ctx, warehouse).await?;
        let _turn = self
            .commit_locks
            .lock(changes.iter().map(|c| (warehouse, wh.branch.id, &c.ident)))
            .await;
        let meta = ctx.commit(match changes.as_slice() {
            [one] => format!("commit table {}", one.ident),
            many => format!("commit {} tables", many.len()),
        });
        let mut retries = Retries::new();
        loop {
            match self.attempt_commit(&wh, &changes, &meta).await? {
                Attempt::Done(done) => {
                    let mut states = Vec::with_capacity(done.len());
                    for (staged, change) in done.into_iter().zip(&changes) {
                        let Staged {
                            state,
                            retired,
                            parsed,
                        } = staged;
                        self.parsed_tables.put_parsed(parsed.0, parsed.1, parsed.2);
                        for file in retired {
                            if let Err(e) = wh.storage.delete(&file).await {
                                tracing::warn!(file = %file, error = ?e, "deleting a retired metadata file failed");
                            }
                        }
                        // announce
                        self.announce(
                            ctx,
                            "floe.table.committed",
                            format!("warehouse/{warehouse}/table/{}", change.ident),
                            serde_json::json!({
                                "namespace": change.ident.namespace, "name": change.ident.name,
                                "ref": wh.branch.name, "metadata-location": state.metadata_location,
                                "updates": change.updates.len(),
                            }),
                        )
                        .await;
                        states.push(state);
                    }
                    return Ok(states);
                }
                Attempt::Lost(e) => {
                    if !retries.again().await {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// One try: read current state, check, apply, write metadata files, swap all pointers.
    async fn attempt_commit(
        &self,
        wh: &OpenWarehouse,
        changes: &[TableChange],
        meta: &CommitMeta,
    ) -> Result<Attempt> {
        let mut written: Vec<Location> = Vec::new();
        let staged = self.stage_commit(wh, changes, &mut written).await;
        let (store_changes, done) = match staged {
            Ok(staged) => staged,
            Err(e) => {
                self.discard(wh, &written).await;
                return Err(e);
            }
        };
        match self
            .store
            .tabulars
            .commit_tabulars(wh.branch.id, &store_changes, meta)
            .await
        {
            Ok(()) => Ok(Attempt::Done(done)),
            Err(e) => {
                self.discard(wh, &written).await;
                match e.kind {
                    // Another commit got there first; requirements are re-checked on retry.
                    ErrorKind::CommitConflict | ErrorKind::AlreadyExists(_) => Ok(Attempt::Lost(
                        Error::new(ErrorKind::CommitConflict, e.message),
                    )),
                    _ => Err(e),
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    async fn stage_commit(
        &self,
        wh: &OpenWarehouse,
        changes: &[TableChange],
        written: &mut Vec<Location>,
    ) -> Result<(Vec<TabularChange>, Vec<Staged>)> {
        let mut store_changes = Vec::with_capacity(changes.len());
        let mut done = Vec::with_capacity(changes.len());
        let mut placed: Vec<Location> = Vec::new();
        for change in changes {
            // Through the table cache (the compare-and-swap below catches anything stale).
            let current = self
                .store
                .tabulars
                .find_tabular(wh.warehouse.id, &wh.branch.name, &change.ident)
                .await?;
            let current = match current {
                Some(t) => Some(self.with_metadata(t).await?),
                None => None,
            };
            if let Some(t) = &current
                && t.kind != TabularKind::Table
            {
                return Err(Error::new(
                    ErrorKind::CommitConflict,
                    format!("{} is a view, not a table", change.ident),
                ));
            }
            if current.is_none() {
                self.require_namespace(&wh.branch, &change.ident.namespace)
                    .await?;
            }
            let parsed = match &current {
                None => None,
                Some(t) => Some(match self.parsed_tables.get(t.id, &t.metadata_location) {
                    Some(hit) => hit,
                    None => Arc::new(ParsedTable {
                        metadata: parse_table_metadata(&t.metadata)?,
                        parts: None,
                    }),
                }),
            };
            let result = apply_table_commit(
                parsed
                    .as_deref()
                    .map(|p| &p.metadata)
                    .zip(current.as_ref().map(|t| t.metadata_location.as_str())),
                &change.requirements,
                change.updates.clone(),
                || {
                    default_location(
                        &wh.base,
                        change.ident.namespace.levels(),
                        &change.ident.name,
                    )
                },
            )?;
            let metadata = &result.metadata;
            if let Some(before) = &parsed
                && before.metadata.uuid() != metadata.uuid()
            {
                return Err(Error::bad_request(format!(
                    "the UUID of table {} cannot change (from {} to {})",
                    change.ident,
                    before.metadata.uuid(),
                    metadata.uuid()
                )));
            }
            let location = check_locations(metadata.location(), metadata.properties(), &wh.base)?;
            if current.is_none() {
                self.check_new_uuid(wh, metadata.uuid(), None).await?;
            }
            if let Some(t) = &current
                && t.location != location.as_str()
            {
                // Every folder a table claims is in every key vended for it (and in its STS
                // session policy, which AWS bounds), so a table has only so many.
                let folders = self
                    .store
                    .tabulars
                    .claimed_folders(wh.warehouse.id, t.uuid, Some(TabularKind::Table))
                    .await?;
                if !folders.iter().any(|f| f == location.as_str())
                    && folders.len() >= crate::model::MAX_TABLE_FOLDERS
                {
                    return Err(Error::bad_request(format!(
                        "table {} has had {} locations ({}); a table keeps every folder its files \
                         may still be in, and at most {}: move it back to one of them, or create \
                         a new table and copy the data",
                        change.ident,
                        folders.len(),
                        folders.join(", "),
                        crate::model::MAX_TABLE_FOLDERS
                    )));
                }
            }
            if current
                .as_ref()
                .is_none_or(|t| t.location != location.as_str())
            {
                self.check_location_is_free(wh, &location, true, metadata.uuid())
                    .await?;
            }
            self.check_files_are_the_tables(
                wh,
                metadata.uuid(),
                &location,
                &files_of_updates(&change.updates),
            )
            .await?;
            // Tables of one transaction must not overlap each other either.
            if let Some(other) = placed
                .iter()
                .find(|other: &&Location| location.is_within(other) || other.is_within(&location))
            {
                return Err(Error::bad_request(format!(
                    "location {location} overlaps the folder of another table of this \
                     transaction at {other}; every table needs a folder of its own"
                )));
            }
            placed.push(location.clone());
            let file = next_metadata_location(
                &location,
                metadata.properties(),
                current.as_ref().map(|t| t.metadata_location.as_str()),
            )?;
            let (json, parts) = table_json(
                metadata,
                parsed.as_ref().and_then(|p| p.parts.as_ref()),
                &result.changes,
            )?;
            let json = bytes::Bytes::from(json);
            wh.storage.put_new(&file, json.clone()).await?;
            written.push(file.clone());
            let at = now();
            let id = match &current {
                None => TabularId::new(),
                Some(t) => t.id,
            };
            store_changes.push(match &current {
                None => TabularChange::Create(wh.new_tabular(
                    id,
                    change.ident.clone(),
                    TabularKind::Table,
                    metadata.uuid(),
                    &location,
                    &file,
                    json.clone(),
                )),
                Some(t) => TabularChange::Update {
                    id: t.id,
                    ident: change.ident.clone(),
                    expected_version: t.version,
                    uuid: metadata.uuid(),
                    location: location.to_string(),
                    metadata_location: file.to_string(),
                    metadata: json.clone(),
                    at,
                    claims_location: (t.location != location.as_str()).then_some(wh.warehouse.id),
                },
            });
            // Old metadata files may be what a branch, tag or commit reads: they go only while
            // the warehouse has nothing but `main`.
            let mut retired = retired_metadata_files(&result, &location);
            if !retired.is_empty() && self.store.refs.has_other_refs(wh.warehouse.id).await? {
                retired.clear();
            }
            done.push(Staged {
                state: TableState {
                    location: location.to_string(),
                    uuid: metadata.uuid(),
                    // A create here brought a UUID the warehouse never had (`check_new_uuid`).
                    new_uuid: current.is_none(),
                    metadata_location: Some(file.to_string()),
                    metadata: json,
                },
                retired,
                parsed: (
                    id,
                    file.to_string(),
                    Arc::new(ParsedTable {
                        metadata: result.metadata,
                        parts,
                    }),
                ),
            });
        }
        Ok((store_changes, done))
    }

    /// Removes metadata files that no pointer will ever reference.
    async fn discard(&self, wh: &OpenWarehouse, files: &[Location]) {
        for file in files {
            if let Err(e) = wh.storage.delete(file).await {
                tracing::warn!(file = %file, error = ?e, "removing an unused metadata file failed");
            }
        }
    }

    pub async fn drop_table(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        purge: bool,
    ) -> Result<()> {
        // authorize
        self.authorize(ctx, Action::TableDrop, table_resource(warehouse, ident))
            .await?;
        if purge {
            self.authorize(ctx, Action::TablePurge, table_resource(warehouse, ident))
                .await?;
        }
        // act
        let wh = self.open_warehouse(ctx, warehouse).await?;
        let dropped = self
            .store
            .tabulars
            .drop_tabular(
                wh.branch.id,
                ident,
                TabularKind::Table,
                &ctx.commit(format!("drop table {ident}")),
            )
            .await?;
        // Files another branch, tag or commit still references stay (docs/branching.md): only
        // the branch's entry goes.
        let shared = if purge {
            dropped.ref_id != wh.branch.id
                || self
                    .store
                    .refs
                    .table_shared(wh.branch.id, dropped.uuid)
                    .await?
        } else {
            false
        };
        if purge && shared {
            tracing::info!(table = %ident, location = %dropped.location, "not purging files other refs still use");
        } else if purge {
            self.purge_in_background(&wh, &dropped);
        }
        // announce
        self.announce(
            ctx,
            "floe.table.dropped",
            format!("warehouse/{warehouse}/table/{ident}"),
            serde_json::json!({
                "namespace": ident.namespace, "name": ident.name, "ref": wh.branch.name,
                "purge": purge, "location": dropped.location,
            }),
        )
        .await;
        Ok(())
    }

    /// Deletes a dropped table's files after the response: every folder the table claims (where
    /// it is now, and where it was before a `set-location`), each only when it lies inside the
    /// warehouse and no other table's folder or claim overlaps it. The claims are released first
    /// (they still hold the folders for `CLAIM_RELEASE_GRACE`, longer than any key vended for
    /// them lives); a purge that fails, or leaves a folder, takes them back, so what is left stays
    /// the table's.
    fn purge_in_background(&self, wh: &OpenWarehouse, dropped: &Tabular) {
        let tabulars = self.store.tabulars.clone();
        let storage = wh.storage.clone();
        let base = wh.base.clone();
        let warehouse = wh.warehouse.id;
        let (uuid, current) = (dropped.uuid, dropped.location.clone());
        tokio::spawn(async move {
            // The claims are released first (under the lock creates take, and only while no row of
            // any line holds the UUID: another table registered from one of its versions still
            // uses the files); they hold the folders until keys vended for them have expired.
            let mut folders = match tabulars.release_for_purge(warehouse, uuid).await {
                Ok(Some(folders)) => folders,
                Ok(None) => {
                    tracing::info!(table_uuid = %uuid, "not purging files another table of the same UUID uses");
                    return;
                }
                Err(e) => {
                    tracing::warn!(table_uuid = %uuid, error = ?e, "purging a dropped table failed");
                    return;
                }
            };
            if !folders.contains(&current) {
                folders.push(current);
            }
            let purge = async {
                let mut complete = true;
                for folder in folders {
                    let location = match Location::parse(&folder) {
                        Ok(l) if l.is_within(&base) && l != base => l,
                        _ => {
                            tracing::warn!(location = %folder, "not purging a location outside its warehouse");
                            complete = false;
                            continue;
                        }
                    };
                    let prefixes = folder_and_parents(&base, &location).unwrap_or_default();
                    if let Some(other) = tabulars
                        .overlapping_table(
                            warehouse,
                            &prefixes,
                            Some(location.as_str()),
                            Some(uuid),
                        )
                        .await?
                    {
                        tracing::warn!(location = %location, other = %other, "not purging a folder that overlaps another table's");
                        complete = false;
                        continue;
                    }
                    storage.delete_prefix(&location).await?;
                    tracing::info!(location = %location, "purged a dropped table's files");
                }
                Ok::<bool, Error>(complete)
            };
            match purge.await {
                Ok(true) => {}
                // What could not be deleted stays the table's: its claims are taken back.
                outcome => {
                    if let Err(e) = &outcome {
                        tracing::warn!(table_uuid = %uuid, error = ?e, "purging a dropped table failed");
                    }
                    if let Err(e) = tabulars.restore_claims(warehouse, uuid).await {
                        tracing::warn!(table_uuid = %uuid, error = ?e, "restoring a table's folder claims failed");
                    }
                }
            }
        });
    }

    pub async fn table_exists(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
    ) -> Result<()> {
        self.authorize(ctx, Action::TableRead, table_resource(warehouse, ident))
            .await?;
        self.find_table(ctx, warehouse, ident).await.map(|_| ())
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
            None => {
                self.store
                    .tabulars
                    .find_tabular(warehouse, crate::model::MAIN_BRANCH, ident)
                    .await?
            }
            Some(_) => {
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
        self.authorize(ctx, Action::TableRename, table_resource(warehouse, from))
            .await?;
        self.authorize(ctx, Action::TableCreate, table_resource(warehouse, to))
            .await?;
        let branch = self.writable_ref(ctx, warehouse).await?;
        self.store
            .tabulars
            .rename_tabular(
                branch.id,
                from,
                to,
                TabularKind::Table,
                &ctx.commit(format!("rename table {from} to {to}")),
            )
            .await?;
        self.announce(
            ctx,
            "floe.table.renamed",
            format!("warehouse/{warehouse}/table/{from}"),
            serde_json::json!({ "from": from.to_string(), "to": to.to_string(), "ref": branch.name }),
        )
        .await;
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
            table_resource(warehouse, &ident),
        )
        .await?;
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
        let metadata: iceberg::spec::TableMetadata = serde_json::from_slice(&bytes)
            .map_err(|e| Error::bad_request(format!("{file} is not valid table metadata: {e}")))?;
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
                self.check_new_uuid(&wh, metadata.uuid(), Some(&file))
                    .await?
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
                &ctx.commit(format!("register table {ident}")),
            )
            .await?;
        self.announce(
            ctx,
            "floe.table.registered",
            format!("warehouse/{warehouse}/table/{ident}"),
            serde_json::json!({
                "namespace": ident.namespace, "name": ident.name, "ref": wh.branch.name,
                "metadata-location": file.as_str(), "overwrite": overwrite,
            }),
        )
        .await;
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
        self.authorize(
            ctx,
            Action::TableReportMetrics,
            table_resource(warehouse, ident),
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
        self.authorize(
            ctx,
            Action::TableReadCredentials,
            table_resource(warehouse, ident),
        )
        .await?;
        let table = self.find_table(ctx, warehouse, ident).await?;
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
        if self
            .authorize(
                ctx,
                Action::TableReadCredentials,
                table_resource(warehouse, ident),
            )
            .await
            .is_err()
        {
            return Ok(std::sync::Arc::default());
        }
        let may_commit = self
            .authorize(ctx, Action::TableCommit, table_resource(warehouse, ident))
            .await
            .is_ok();
        let access = self.file_access(ctx, warehouse, may_commit).await?;
        self.storage_access(
            warehouse,
            ctx.reference.as_deref(),
            ident,
            location,
            uuid,
            access,
            delegation,
        )
        .await
    }
}
