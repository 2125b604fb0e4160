//! Persistence: the store traits, split by aggregate, over `model` types, and their two backends,
//! SQLite (embedded, one machine) and PostgreSQL (production, many stateless Floe instances).
//!
//! Architecture invariant: this module is the only place in Floe that speaks SQL. Each trait method is
//! one atomic operation (one database transaction), so services never hold a transaction open and
//! concurrent Floe processes on one database stay consistent. Both backends share their SQL text
//! (`sql/`); their schemas live in `migrations/postgres` and `migrations/sqlite`, and one
//! conformance suite (`tests/it/store_suite.rs`) runs against each.

mod cache;
mod lifecycle;
mod postgres;
mod sql;
mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Entity, Error, Result};
use crate::model::events::CloudEvent;
use crate::model::lifecycle::DropOptions;
use crate::model::{
    AccessKey, Commit, CommitChange, CommitId, CommitMeta, ForkPoint, Namespace, NamespaceIdent,
    Page, PageRequest, Project, ProjectId, Properties, Ref, RefId, RefKind, Relationship, Role,
    SecretId, ServerInfo, StorageProfile, Tabular, TabularId, TabularIdent, TabularKind, User,
    Warehouse, WarehouseId,
};

pub use lifecycle::{IdempotencyStore, LifecycleStore, ScanPlanStore, TaskStore};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The server's own record: bootstrap state, and the database's health.
#[async_trait]
pub trait ServerStore: Send + Sync {
    async fn server_info(&self) -> Result<Option<ServerInfo>>;
    /// Records the bootstrap and creates the default project, atomically, with `events`. A second
    /// bootstrap fails with `Conflict` and changes nothing.
    async fn bootstrap(
        &self,
        info: &ServerInfo,
        default_project: &Project,
        events: &[CloudEvent],
    ) -> Result<()>;
    /// Makes `user` the server's admin if it has none yet (a server bootstrapped while open, or
    /// automatically), with `events`. Returns whether it did.
    async fn claim_admin(&self, user: &str, events: &[CloudEvent]) -> Result<bool>;
    /// A value the server recorded under `key` (e.g. the OpenFGA store it uses).
    async fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Records `value` under `key`, replacing what was there.
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Answers when the database answers.
    async fn health(&self) -> Result<()>;
    /// `sqlite` or `postgres`.
    fn backend_name(&self) -> &'static str;
    /// The connection pools' sizes now, for the metrics.
    fn pool_states(&self) -> Vec<crate::telemetry::PoolState>;
}

#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// `AlreadyExists(Project)` when the name is taken.
    async fn create_project(&self, project: &Project, events: &[CloudEvent]) -> Result<()>;
    async fn list_projects(&self) -> Result<Vec<Project>>;
    async fn get_project(&self, id: ProjectId) -> Result<Option<Project>>;
    /// `NotFound(Project)`, `AlreadyExists(Project)`.
    async fn rename_project(
        &self,
        id: ProjectId,
        name: &str,
        at: DateTime<Utc>,
        events: &[CloudEvent],
    ) -> Result<()>;
    /// `NotFound(Project)`; `NotEmpty(Project)` while it has warehouses or is the default project.
    async fn delete_project(&self, id: ProjectId, events: &[CloudEvent]) -> Result<()>;
}

#[async_trait]
pub trait WarehouseStore: Send + Sync {
    /// Creates the warehouse and its `main` branch atomically. `NotFound(Project)`,
    /// `AlreadyExists(Warehouse)` when the project has a warehouse of that name.
    async fn create_warehouse(
        &self,
        warehouse: &Warehouse,
        main: &Ref,
        events: &[CloudEvent],
    ) -> Result<()>;
    /// Warehouses of one project, or of all projects, by name.
    async fn list_warehouses(&self, project: Option<ProjectId>) -> Result<Vec<Warehouse>>;
    async fn get_warehouse(&self, id: WarehouseId) -> Result<Option<Warehouse>>;
    async fn get_warehouse_by_name(
        &self,
        project: ProjectId,
        name: &str,
    ) -> Result<Option<Warehouse>>;
    /// `NotFound(Warehouse)`, `AlreadyExists(Warehouse)`.
    async fn rename_warehouse(
        &self,
        id: WarehouseId,
        name: &str,
        at: DateTime<Utc>,
        events: &[CloudEvent],
    ) -> Result<()>;
    /// Replaces the storage profile and the credential reference. `NotFound(Warehouse)`.
    async fn update_warehouse_storage(
        &self,
        id: WarehouseId,
        profile: &StorageProfile,
        credential: Option<SecretId>,
        at: DateTime<Utc>,
        events: &[CloudEvent],
    ) -> Result<()>;
    /// Deletes the warehouse and its refs. `NotFound(Warehouse)`; `NotEmpty(Warehouse)` while any
    /// ref holds a namespace, or soft-deleted tables or unfinished tasks remain; `Conflict` while
    /// it is protected, unless `force` (all checked in the delete's transaction).
    async fn delete_warehouse(
        &self,
        id: WarehouseId,
        force: bool,
        events: &[CloudEvent],
    ) -> Result<()>;
    /// A ref of a warehouse by name.
    async fn get_ref(&self, warehouse: WarehouseId, name: &str) -> Result<Option<Ref>>;
}

#[async_trait]
pub trait NamespaceStore: Send + Sync {
    /// `NotFound(Namespace)` when the parent of a nested namespace does not exist on the same ref;
    /// `AlreadyExists(Namespace)`.
    async fn create_namespace(&self, namespace: &Namespace, meta: &CommitMeta) -> Result<()>;
    async fn get_namespace(
        &self,
        ref_id: RefId,
        ident: &NamespaceIdent,
    ) -> Result<Option<Namespace>>;
    /// Direct children of `parent` (top-level namespaces when `None`), ordered by name; `after` is
    /// the joined name to continue after.
    /// `only` keeps the children whose joined names it holds (an authorization filter, applied
    /// in the query).
    async fn list_namespaces(
        &self,
        ref_id: RefId,
        parent: Option<&NamespaceIdent>,
        page: &PageRequest,
        only: Option<&[String]>,
    ) -> Result<Page<NamespaceIdent>>;
    /// Sets `updates` and removes `removals` atomically (no lost update under concurrency) and
    /// returns the properties as they were before. `NotFound(Namespace)`.
    async fn update_namespace_properties(
        &self,
        ref_id: RefId,
        ident: &NamespaceIdent,
        updates: &Properties,
        removals: &[String],
        at: DateTime<Utc>,
        meta: &CommitMeta,
    ) -> Result<Properties>;
    /// `NotFound(Namespace)`; `NotEmpty(Namespace)` while it has children; `Conflict` while it
    /// is protected, unless `force` (checked in the drop's transaction, serialized with
    /// `LifecycleStore::set_protection`).
    async fn drop_namespace(
        &self,
        ref_id: RefId,
        ident: &NamespaceIdent,
        force: bool,
        meta: &CommitMeta,
    ) -> Result<()>;
}

/// One change of a multi-table commit.
#[derive(Debug, Clone)]
pub enum TabularChange {
    /// A new table or view; its namespace must exist on the ref and its name be free.
    Create(Tabular),
    /// A new version of an existing one, if it is still at `expected_version`.
    Update {
        id: TabularId,
        ident: TabularIdent,
        expected_version: i64,
        uuid: uuid::Uuid,
        location: String,
        metadata_location: String,
        metadata: bytes::Bytes,
        at: DateTime<Utc>,
        /// `Some(warehouse)` when the update moves the table to a new location, which must not
        /// overlap another table's folder (checked in the commit's transaction).
        claims_location: Option<WarehouseId>,
    },
}

#[async_trait]
pub trait TabularStore: Send + Sync {
    /// The table or view of that name on the ref (one indexed read, current metadata included).
    async fn get_tabular(&self, ref_id: RefId, ident: &TabularIdent) -> Result<Option<Tabular>>;
    /// The same, naming the ref by warehouse and ref name, still in one read (the hot path of
    /// `loadTable`).
    async fn find_tabular(
        &self,
        warehouse: WarehouseId,
        ref_name: &str,
        ident: &TabularIdent,
    ) -> Result<Option<Tabular>>;
    /// Only the id and version of what `find_tabular` would return (a cheap read that lets a
    /// cache check it still holds the current version).
    async fn find_tabular_version(
        &self,
        warehouse: WarehouseId,
        ref_name: &str,
        ident: &TabularIdent,
    ) -> Result<Option<(TabularId, i64)>>;
    /// A folder a table or view of the warehouse claims (every live row's folder, and those
    /// claims outlive rows for) that overlaps `location`: equal to one of `prefixes` (the location
    /// and its parent folders), or, when `inside`, lying below `location`. The claims of `uuid`
    /// (the table being placed, on any line) are not counted.
    async fn overlapping_table(
        &self,
        warehouse: WarehouseId,
        prefixes: &[String],
        inside: Option<&str>,
        uuid: Option<uuid::Uuid>,
    ) -> Result<Option<String>>;
    /// The folders the table (or view, or either with `None`) with this UUID claims in the
    /// warehouse and has not released, by location: every location it has had on any line.
    async fn claimed_folders(
        &self,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
        kind: Option<TabularKind>,
    ) -> Result<Vec<String>>;
    /// Whether any claim of this UUID (of a table, a view, or either with `None`) exists in the
    /// warehouse, released or not.
    async fn uuid_known(
        &self,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
        kind: Option<TabularKind>,
    ) -> Result<bool>;
    /// Whether some line of the warehouse recorded `metadata_location` as a version of the table
    /// with this UUID (a file Floe itself committed or registered for that table).
    async fn recorded_version(
        &self,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
        metadata_location: &str,
    ) -> Result<bool>;
    /// The lines that hold a row (their own, not inherited) of the table or view with this UUID.
    async fn lines_holding(&self, warehouse: WarehouseId, uuid: uuid::Uuid) -> Result<Vec<RefId>>;
    /// Begins a purge: under the warehouse's folder-claim lock, unless a row of any line holds
    /// the UUID, marks every claim of the table released (now) and returns the folders; `None`
    /// when a row holds it. A released claim still holds its folder for
    /// `model::CLAIM_RELEASE_GRACE`, and a create of that UUID is refused meanwhile; claims
    /// released longer ago are deleted.
    async fn release_for_purge(
        &self,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
    ) -> Result<Option<Vec<String>>>;
    /// Takes back a release whose purge failed (the files are still there): the claims that
    /// still hold their folders (released less than `model::CLAIM_RELEASE_GRACE` ago).
    async fn restore_claims(&self, warehouse: WarehouseId, uuid: uuid::Uuid) -> Result<()>;
    /// Releases a dropped view's claims at once (no key opens a view's folder), unless a row of
    /// any line holds the UUID; answers whether it did.
    async fn release_view_claims(&self, warehouse: WarehouseId, uuid: uuid::Uuid) -> Result<bool>;
    /// Names of the tables (or views) of a namespace, by name; only those named in `only` when
    /// given (an authorization filter, applied in the query).
    async fn list_tabulars(
        &self,
        ref_id: RefId,
        namespace: &NamespaceIdent,
        kind: TabularKind,
        page: &PageRequest,
        only: Option<&[String]>,
    ) -> Result<Page<String>>;
    /// The tables and views the ref sees whose name contains `needle` in any case, ordered by namespace then name; `page.after` and `Page::next` are
    /// `search_key`s.
    async fn search_tabulars(
        &self,
        ref_id: RefId,
        needle: &str,
        page: &PageRequest,
    ) -> Result<Page<(TabularIdent, uuid::Uuid, TabularKind)>>;
    /// Where the tables and views with these UUIDs are, of those the ref sees.
    async fn locate_tabulars(
        &self,
        ref_id: RefId,
        uuids: &[uuid::Uuid],
    ) -> Result<Vec<(TabularIdent, uuid::Uuid, TabularKind)>>;
    /// Applies every change in one transaction, or none: `CommitConflict` when an update's
    /// expected version is no longer current, `AlreadyExists` when a created name is taken,
    /// `NotFound(Namespace)` when a created one's namespace is missing.
    async fn commit_tabulars(
        &self,
        ref_id: RefId,
        changes: &[TabularChange],
        meta: &CommitMeta,
    ) -> Result<()>;
    /// Removes the table (or view) and returns what it was, with what `options` bring in the
    /// same transaction (a soft-deleted record, tasks). `NotFound(Table|View)`; `Conflict` when
    /// it is protected and the drop is not forced.
    async fn drop_tabular(
        &self,
        ref_id: RefId,
        ident: &TabularIdent,
        kind: TabularKind,
        meta: &CommitMeta,
        options: &DropOptions,
    ) -> Result<Tabular>;
    /// Tells a caching store that these names changed behind its back (a merge writes through
    /// `RefStore`). The database itself needs no telling.
    fn forget(&self, _idents: &[TabularIdent]) {}
    /// Renames within or across namespaces of one ref. `NotFound(Table|View)` for the source,
    /// `NotFound(Namespace)` for the destination's namespace, `AlreadyExists` when taken.
    async fn rename_tabular(
        &self,
        ref_id: RefId,
        from: &TabularIdent,
        to: &TabularIdent,
        kind: TabularKind,
        meta: &CommitMeta,
    ) -> Result<()>;
}

/// The branching index's refs and commits (docs/branching.md). Every change through
/// `NamespaceStore` and `TabularStore` is recorded as one commit on its line, in the change's own
/// transaction.
#[async_trait]
pub trait RefStore: Send + Sync {
    /// Branches and tags of a warehouse (not retired lines), by name.
    async fn list_refs(&self, warehouse: WarehouseId) -> Result<Vec<Ref>>;
    /// A branch (a new line forked at `from`, one insert whatever the warehouse holds) or a tag
    /// naming `from`'s commit (a line that takes no commits, so it reads as of that point). `AlreadyExists(Ref)` when a branch or tag has that name.
    async fn create_ref(
        &self,
        warehouse: WarehouseId,
        name: &str,
        kind: RefKind,
        from: &ForkPoint,
        at: DateTime<Utc>,
        events: &[CloudEvent],
    ) -> Result<Ref>;
    /// Removes a tag, or retires a branch's line (its commits stay readable). `NotFound(Ref)`.
    async fn delete_ref(
        &self,
        warehouse: WarehouseId,
        name: &str,
        kind: RefKind,
        events: &[CloudEvent],
    ) -> Result<()>;
    async fn get_commit(&self, warehouse: WarehouseId, id: CommitId) -> Result<Option<Commit>>;
    /// A hidden read-only ref that reads the warehouse as of a commit (made on first use, then
    /// reused); `None` when the warehouse has no such commit.
    async fn commit_ref(&self, warehouse: WarehouseId, commit: CommitId) -> Result<Option<Ref>>;
    /// Whether anything but `line`'s own current state may still reference the files of the table
    /// with this UUID: another line's history (a branch that changed or merged it, a retired
    /// line), or a branch, tag or commit forked from `line` since the table appeared on it.
    async fn table_shared(&self, line: RefId, uuid: uuid::Uuid) -> Result<bool>;
    /// The metadata files of the table with this UUID that refs other than `line`'s head may
    /// read: every version of it another line (a branch, a retired line) recorded, and the
    /// version `line` had at each point a branch or tag forked from it (directly, or through
    /// lines that never changed the table).
    async fn versions_elsewhere(
        &self,
        warehouse: WarehouseId,
        line: RefId,
        uuid: uuid::Uuid,
    ) -> Result<Vec<String>>;
    /// Applies a merge's changes to a branch and records them as one commit whose second parent is
    /// `merged` (the source's commit and its generation), if the branch is still at seq
    /// `expected_head`; `CommitConflict` otherwise, having changed nothing.
    async fn merge_into(
        &self,
        line: RefId,
        expected_head: i64,
        changes: &[MergeChange],
        merged: (CommitId, i64),
        meta: &CommitMeta,
    ) -> Result<CommitId>;
    /// Points a branch at a new line forked at `to`, retiring its old line (whose commits stay
    /// readable). `NotFound(Ref)`.
    async fn reset_branch(
        &self,
        warehouse: WarehouseId,
        name: &str,
        to: &ForkPoint,
        at: DateTime<Utc>,
        events: &[CloudEvent],
    ) -> Result<Ref>;
    /// Whether the warehouse has refs besides `main` (branches, tags, commits read by id).
    async fn has_other_refs(&self, warehouse: WarehouseId) -> Result<bool>;
    /// The branches of the warehouse that change only by merge, by name.
    async fn protected_branches(&self, warehouse: WarehouseId) -> Result<Vec<String>>;
    /// Replaces them.
    async fn set_protected_branches(
        &self,
        warehouse: WarehouseId,
        names: &[String],
        events: &[CloudEvent],
    ) -> Result<()>;
    /// A line's first-parent history, newest first: its commits with seq <= `upto`, then its
    /// parent's up to the fork, and so on. Returns at most `limit` commits and, when more
    /// remain, the (line, seq) to continue from.
    async fn list_commits(
        &self,
        line: RefId,
        upto: i64,
        limit: usize,
    ) -> Result<(Vec<Commit>, Option<(RefId, i64)>)>;
}

/// One change a merge makes to its target branch.
#[derive(Debug, Clone)]
pub enum MergeChange {
    /// Creates the namespace or sets its properties (the whole map); `None` drops it.
    Namespace {
        ident: NamespaceIdent,
        properties: Option<Properties>,
    },
    /// Creates a table or view, or moves one to new metadata (compare-and-swap on its version).
    Tabular(TabularChange),
    /// Drops a table or view (compare-and-swap on its version).
    DropTabular {
        ident: TabularIdent,
        id: TabularId,
        expected_version: i64,
    },
}

/// What one change did to one name, as a commit records it (see `RefStore`).
#[derive(Debug, Clone)]
pub(crate) enum HistoryEntry {
    Namespace {
        ident: NamespaceIdent,
        op: &'static str,
        /// `None` when dropped.
        properties: Option<Properties>,
    },
    Tabular {
        ident: TabularIdent,
        op: &'static str,
        kind: TabularKind,
        id: TabularId,
        uuid: uuid::Uuid,
        location: String,
        metadata_location: String,
        /// The version the change wrote (of a drop: the version dropped).
        version: i64,
    },
}

impl HistoryEntry {
    pub(crate) fn change(&self) -> CommitChange {
        match self {
            HistoryEntry::Namespace { ident, op, .. } => CommitChange {
                kind: "namespace".into(),
                namespace: ident.levels().to_vec(),
                name: None,
                op: (*op).into(),
                metadata_location: None,
            },
            HistoryEntry::Tabular {
                ident,
                op,
                kind,
                metadata_location,
                ..
            } => CommitChange {
                kind: kind.as_str().into(),
                namespace: ident.namespace.levels().to_vec(),
                name: Some(ident.name.clone()),
                op: (*op).into(),
                metadata_location: (*op != "drop").then(|| metadata_location.clone()),
            },
        }
    }

    /// The table's or view's UUID.
    pub(crate) fn uuid(&self) -> Option<uuid::Uuid> {
        match self {
            HistoryEntry::Namespace { .. } => None,
            HistoryEntry::Tabular { uuid, .. } => Some(*uuid),
        }
    }

    pub(crate) fn dropped(&self) -> bool {
        match self {
            HistoryEntry::Namespace { properties, .. } => properties.is_none(),
            HistoryEntry::Tabular { op, .. } => *op == "drop",
        }
    }
}

pub use crate::model::{SealedSecret, SecretRef};

#[async_trait]
pub trait SealedSecretStore: Send + Sync {
    /// Inserts or replaces the secret with this id.
    async fn put_secret(&self, id: SecretId, secret: &SealedSecret) -> Result<()>;
    async fn get_secret(&self, id: SecretId) -> Result<Option<SealedSecret>>;
    /// Deleting an absent secret is not an error.
    async fn delete_secret(&self, id: SecretId) -> Result<()>;
    /// Up to `limit` ids of the secrets sealed in the database, in id order (for `floe secrets
    /// migrate`).
    async fn sealed_secret_ids(&self, limit: u32) -> Result<Vec<SecretId>>;
    /// Inserts or replaces where the secret with this id lives outside the database.
    async fn put_secret_ref(&self, id: SecretId, reference: &SecretRef) -> Result<()>;
    async fn get_secret_ref(&self, id: SecretId) -> Result<Option<SecretRef>>;
    /// Deleting an absent reference is not an error.
    async fn delete_secret_ref(&self, id: SecretId) -> Result<()>;
    /// In one transaction: records where the secret now lives and deletes its sealed row.
    async fn move_secret_to_ref(&self, id: SecretId, reference: &SecretRef) -> Result<()>;
}

/// The gateway's admin access keys.
#[async_trait]
pub trait AccessKeyStore: Send + Sync {
    /// `NotFound(Warehouse)` when the warehouse is gone.
    async fn create_access_key(&self, key: &AccessKey, events: &[CloudEvent]) -> Result<()>;
    async fn get_access_key(&self, id: &str) -> Result<Option<AccessKey>>;
    async fn list_access_keys(&self, warehouse: WarehouseId) -> Result<Vec<AccessKey>>;
    /// `NotFound(AccessKey)` when the warehouse has no such key.
    async fn delete_access_key(
        &self,
        warehouse: WarehouseId,
        id: &str,
        events: &[CloudEvent],
    ) -> Result<()>;
}

/// Users: recorded on first sight, provisioned, listed, deleted.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user, or updates its name, email and kind (and `last_seen_at` when given),
    /// writing `if_created` or `if_updated` in the same transaction. Returns whether it was
    /// created.
    async fn upsert_user(
        &self,
        user: &User,
        if_created: &[CloudEvent],
        if_updated: &[CloudEvent],
    ) -> Result<bool>;
    async fn get_user(&self, id: &str) -> Result<Option<User>>;
    /// Users by id; `name` filters (case-insensitive substring of the name or id); `after` is the
    /// id to continue after.
    async fn list_users(&self, name: Option<&str>, page: &PageRequest) -> Result<Page<User>>;
    /// Deletes the user and their grants and role assignments, with `events`. `NotFound(User)`.
    async fn delete_user(&self, id: &str, events: &[CloudEvent]) -> Result<()>;
}

/// Roles and the relationships of the authorization model (grants and role assignments).
#[async_trait]
pub trait AuthzStore: Send + Sync {
    /// `AlreadyExists(Role)` when the name is taken.
    async fn create_role(&self, role: &Role, events: &[CloudEvent]) -> Result<()>;
    async fn get_role(&self, id: uuid::Uuid) -> Result<Option<Role>>;
    /// Roles by name; `name` filters (case-insensitive substring); `after` is the name to
    /// continue after.
    async fn list_roles(&self, name: Option<&str>, page: &PageRequest) -> Result<Page<Role>>;
    /// `NotFound(Role)`, `AlreadyExists(Role)`.
    async fn update_role(
        &self,
        id: uuid::Uuid,
        name: &str,
        description: Option<&str>,
        at: DateTime<Utc>,
        events: &[CloudEvent],
    ) -> Result<()>;
    /// Deletes the role and every relationship that names it (as object or as subject).
    /// `NotFound(Role)`.
    async fn delete_role(&self, id: uuid::Uuid, events: &[CloudEvent]) -> Result<()>;
    /// Writes `add` (present ones stay) and deletes `remove` (absent ones are ignored), atomically.
    async fn write_relationships(
        &self,
        add: &[Relationship],
        remove: &[Relationship],
        at: DateTime<Utc>,
        events: &[CloudEvent],
    ) -> Result<()>;
    /// The roles `user` is an assignee of (directly, through the assignees of `seed_roles`, or
    /// through nested roles; `seed_roles` themselves not included), and the relationships other
    /// than role assignments whose subject is the user or the assignees of one of those roles or
    /// of `seed_roles`: only those on `objects` (type, id) when given, else all. One query.
    async fn caller_relationships(
        &self,
        user: &str,
        seed_roles: &[String],
        objects: Option<&[(String, String)]>,
    ) -> Result<(Vec<String>, Vec<Relationship>)>;
    /// Every relationship, in a fixed order, `limit` at a time after `after` (to copy them to
    /// an authorizer that keeps its own).
    async fn all_relationships(
        &self,
        after: Option<&Relationship>,
        limit: usize,
    ) -> Result<Vec<Relationship>>;
    /// The relationships on one object, ordered.
    async fn object_relationships(
        &self,
        object_type: &str,
        object_id: &str,
    ) -> Result<Vec<Relationship>>;
}

/// Where the relay hands pending events; an error leaves them pending.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn deliver(&self, events: &[crate::model::events::CloudEvent]) -> Result<()>;
}

/// An event of the events feed, with its position there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub position: i64,
    pub event: CloudEvent,
}

/// Events written and not yet published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventBacklog {
    pub pending: u64,
    pub oldest: Option<chrono::DateTime<chrono::Utc>>,
}

/// The outbox of change events: every change recorded on a branch writes its events in its own
/// transaction (`model::events::commit_events`); the relay publishes them from here.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Hands up to `limit` pending events to `sink`, oldest first and in order per key, and marks
    /// them published once it accepted them; returns how many. Processes sharing the database
    /// never hand out the same key's events at once.
    async fn publish_pending(&self, limit: usize, sink: &dyn EventSink) -> Result<usize>;
    async fn event_backlog(&self) -> Result<EventBacklog>;
    /// Records events of something that is not a database change (a purge's deleted files),
    /// after it happened.
    async fn record_events(&self, events: &[CloudEvent]) -> Result<()>;
    /// Published events of `warehouse` (and of no warehouse) after feed position `after`, in
    /// feed order, at most `limit`.
    async fn read_feed(
        &self,
        warehouse: uuid::Uuid,
        after: i64,
        limit: usize,
    ) -> Result<Vec<FeedEvent>>;
    /// Deletes events published before `published_before`; returns how many.
    async fn expire_events(&self, published_before: chrono::DateTime<chrono::Utc>) -> Result<u64>;
}

/// One backend, seen through each aggregate's trait.
#[derive(Clone)]
pub struct Persistence {
    pub server: Arc<dyn ServerStore>,
    pub projects: Arc<dyn ProjectStore>,
    pub warehouses: Arc<dyn WarehouseStore>,
    pub namespaces: Arc<dyn NamespaceStore>,
    pub tabulars: Arc<dyn TabularStore>,
    pub refs: Arc<dyn RefStore>,
    pub secrets: Arc<dyn SealedSecretStore>,
    pub access_keys: Arc<dyn AccessKeyStore>,
    pub users: Arc<dyn UserStore>,
    pub authz: Arc<dyn AuthzStore>,
    pub events: Arc<dyn EventStore>,
    pub tasks: Arc<dyn TaskStore>,
    pub lifecycle: Arc<dyn LifecycleStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub scan_plans: Arc<dyn ScanPlanStore>,
}

impl Persistence {
    pub fn from_backend<B>(backend: Arc<B>) -> Self
    where
        B: ServerStore
            + ProjectStore
            + WarehouseStore
            + NamespaceStore
            + TabularStore
            + RefStore
            + SealedSecretStore
            + AccessKeyStore
            + UserStore
            + AuthzStore
            + EventStore
            + TaskStore
            + LifecycleStore
            + IdempotencyStore
            + ScanPlanStore
            + 'static,
    {
        Persistence {
            server: backend.clone(),
            projects: backend.clone(),
            warehouses: backend.clone(),
            namespaces: backend.clone(),
            tabulars: backend.clone(),
            refs: backend.clone(),
            secrets: backend.clone(),
            access_keys: backend.clone(),
            users: backend.clone(),
            authz: backend.clone(),
            events: backend.clone(),
            tasks: backend.clone(),
            lifecycle: backend.clone(),
            idempotency: backend.clone(),
            scan_plans: backend,
        }
    }

    /// The embedded backend: the SQLite file at `path` (created with its folder when needed),
    /// owned by this process alone, behind an exact table cache. Migrations are applied when
    /// `migrate` is true; otherwise a database that lacks some is refused.
    pub async fn sqlite(
        path: &Path,
        options: &SqliteOptions,
        migrate: bool,
    ) -> anyhow::Result<Self> {
        let store = SqliteStore::open(path, options).await?;
        store.migrate(migrate).await?;
        let mut persistence = Self::from_backend(Arc::new(store));
        // This process owns the file alone (SqliteStore holds its lock), so every write
        // passes the cache and loads can be served from memory.
        persistence.tabulars = Arc::new(cache::CachedTabularStore::new(
            persistence.tabulars.clone(),
            options.pool.table_cache_bytes,
        ));
        Ok(persistence)
    }

    /// PostgreSQL at `url`, which other Floe instances may share. Migrations as for
    /// [`Persistence::sqlite`].
    pub async fn postgres(
        url: &str,
        options: &PostgresOptions,
        migrate: bool,
    ) -> anyhow::Result<Self> {
        let store = Arc::new(PostgresStore::connect(url, options).await?);
        store.migrate(migrate).await?;
        let mut persistence = Self::from_backend(store.clone());
        // Other instances write too. With change notifications, cached loads are served
        // from memory while the listener is connected; without, each is checked against
        // the current version with a cheap read first.
        let bytes = options.pool.table_cache_bytes;
        if options.change_notifications {
            let cache = Arc::new(cache::CachedTabularStore::notified(
                persistence.tabulars.clone(),
                bytes,
            ));
            store.spawn_change_listener(cache.clone());
            persistence.tabulars = cache;
        } else {
            persistence.tabulars = Arc::new(cache::CachedTabularStore::validated(
                persistence.tabulars.clone(),
                bytes,
            ));
        }
        Ok(persistence)
    }
}

/// Connection-pool settings both backends take (the configuration's `database` section, as
/// `server.rs` maps it).
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    /// The longest a statement may run (on SQLite: wait for a lock).
    pub statement_timeout: Duration,
    /// The bytes of table metadata kept in memory for loads and commits.
    pub table_cache_bytes: usize,
}

/// When SQLite waits for its log to reach the disk (its `synchronous` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    Off,
    Normal,
    Full,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub pool: PoolOptions,
    pub synchronous: SqliteSync,
}

#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub pool: PoolOptions,
    /// Learn of other instances' commits by `LISTEN`/`NOTIFY` (else check each cached read).
    pub change_notifications: bool,
}

/// A database URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.rsplit_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

/// A `LIKE ... ESCAPE '\'` pattern matching values that contain `filter`, case-insensitively
/// (compared against `LOWER(column)`); `%` and `_` in the filter match only themselves.
pub(crate) fn contains_pattern(filter: Option<&str>) -> Option<String> {
    filter.map(|f| {
        let escaped = f
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    })
}

/// The row limit for a page: one more than asked, which tells whether there is a next page.
pub(crate) fn fetch_limit(page: &PageRequest) -> i64 {
    page.limit.map(|l| i64::from(l) + 1).unwrap_or(i64::MAX)
}

/// The page of `items` fetched with [`fetch_limit`]: cut to the limit, continuing after the key
/// of its last item when there was more.
pub(crate) fn page_of<T>(
    mut items: Vec<T>,
    page: &PageRequest,
    key: impl Fn(&T) -> String,
) -> Page<T> {
    let next = match page.limit {
        Some(l) if items.len() > l as usize => {
            items.truncate(l as usize);
            items.last().map(key)
        }
        _ => None,
    };
    Page { items, next }
}

/// Maps a database error that the caller did not expect to `Unavailable` (pool exhausted, connection
/// lost) or `Internal`.
pub(crate) fn db_error(context: &'static str, err: sqlx::Error) -> Error {
    if matches!(err, sqlx::Error::PoolTimedOut) {
        crate::telemetry::pool_timed_out();
    }
    // SQLite's SQLITE_FULL (13, with its extended codes), PostgreSQL's disk_full (53100).
    let full = match &err {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code == "53100" || code.parse::<u32>().is_ok_and(|c| c & 0xff == 13)
        }),
        sqlx::Error::Io(io) => crate::error::is_storage_full(io),
        _ => false,
    };
    if full {
        return Error::insufficient_storage(format!("the database is full while {context}"), err);
    }
    // PostgreSQL refuses text holding NUL (22021) or a character its encoding lacks (22P05): the
    // value came from the client, whose mistake it is, whichever check upstream missed it.
    if let sqlx::Error::Database(db) = &err
        && db
            .code()
            .is_some_and(|code| code == "22021" || code == "22P05")
    {
        return Error::bad_request(format!(
            "a value holds a character that cannot be stored (such as NUL) while {context}"
        ));
    }
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            Error::unavailable(format!("database unavailable while {context}"), err)
        }
        err => Error::internal(format!("database error while {context}"), err),
    }
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}

pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_foreign_key_violation())
}

/// The most values a query binds in one `IN (...)` list (below SQLite's and PostgreSQL's limits
/// on parameters); longer lists are split or filtered in memory.
pub(crate) const MAX_IN_LIST: usize = 2000;

/// A search result's place in the order of `TabularStore::search_tabulars`: the joined
/// namespace, a record separator (names hold no control characters), the name.
pub fn search_key(ident: &TabularIdent) -> String {
    format!("{}\u{1e}{}", ident.namespace.joined(), ident.name)
}

/// The namespace and name of a `search_key` (`None` for one this did not make).
pub(crate) fn split_search_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('\u{1e}')
}

pub(crate) fn not_found(entity: Entity, what: impl std::fmt::Display) -> Error {
    Error::not_found(entity, format!("{} {what} does not exist", entity.as_str()))
}

/// Fails with a message telling the operator to run `floe migrate` when a migration is pending.
pub(crate) fn check_migrations(
    migrator: &sqlx::migrate::Migrator,
    applied: &[i64],
) -> anyhow::Result<()> {
    let pending: Vec<String> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if pending.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "the database schema is out of date (pending migrations: {}); run `floe migrate`",
            pending.join(", ")
        )
    }
}

/// Current metadata is kept zstd-compressed.
pub(crate) fn compress(json: &[u8]) -> Result<Vec<u8>> {
    zstd::bulk::compress(json, -1).map_err(|e| Error::internal("compressing metadata", e))
}

pub(crate) fn decompress(stored: &[u8]) -> Result<Vec<u8>> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let size = match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(size)) => size as usize,
        _ => {
            return zstd::stream::decode_all(stored)
                .map_err(|e| Error::internal("decompressing metadata", e));
        }
    };
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| Error::internal("decompressing metadata", e))?,
            );
        }
        slot.as_mut()
            .expect("just set")
            .decompress(stored, size)
            .map_err(|e| Error::internal("decompressing metadata", e))
    })
}
