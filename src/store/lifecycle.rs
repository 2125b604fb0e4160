//! The lifecycle's persistence traits: the durable task queue and delete profiles, protection,
//! soft-deleted tables and maintenance policies.

use async_trait::async_trait;

use crate::error::Result;
use crate::model::events::CloudEvent;
use crate::model::idempotency::{KeyClaim, KeyState, StoredResponse};
use crate::model::lifecycle::{
    DeleteProfile, DeletedTabular, Heartbeat, MaintenancePolicy, NewTask, ProtectedObject,
    RecursiveDrop, RecursivelyDropped, Task, TaskAttempt, TaskFilter, TaskLease, TaskOutcome,
    Undrop,
};
use crate::model::scan::{PlanState, ScanPlan};
use crate::model::{
    CommitMeta, NamespaceIdent, Page, PageRequest, RefId, Tabular, TabularIdent, WarehouseId,
};

/// The durable task queue (`sql/tasks.rs` tells how claims work). Times are unix milliseconds.
#[async_trait]
pub trait TaskStore: Send + Sync {
    async fn enqueue_tasks(&self, tasks: &[NewTask]) -> Result<()>;
    /// Enqueues a task unless one of its queue and target is pending (scheduled or running);
    /// answers whether it did. (Maintenance: one pending per table.)
    async fn enqueue_unique(&self, task: &NewTask) -> Result<bool>;
    /// Claims the oldest due task of `queue` for `worker` (a scheduled one that is due, or a
    /// running one whose heartbeat is older than `stale_before`, whose worker is taken for dead),
    /// marks it running and logs the attempt. Running tasks with a stale heartbeat and no
    /// attempts left are failed first.
    async fn claim_task(
        &self,
        queue: &str,
        worker: &str,
        now: i64,
        stale_before: i64,
    ) -> Result<Option<TaskLease>>;
    /// Records that the lease's worker is alive (and its progress, when given).
    async fn heartbeat_task(
        &self,
        lease: &TaskLease,
        now: i64,
        progress: Option<&serde_json::Value>,
    ) -> Result<Heartbeat>;
    /// Ends the lease's attempt, recording its last `progress` when given: a failure is
    /// scheduled again at `retry_at` unless it was the last attempt allowed. `false` when the
    /// lease was lost (nothing written).
    async fn finish_task(
        &self,
        lease: &TaskLease,
        outcome: &TaskOutcome,
        now: i64,
        retry_at: i64,
        progress: Option<&serde_json::Value>,
    ) -> Result<bool>;
    /// How many tasks of every warehouse are scheduled or running, by queue and status.
    async fn open_task_counts(&self) -> Result<Vec<(String, String, u64)>>;
    /// Newest first.
    async fn list_tasks(
        &self,
        warehouse: WarehouseId,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> Result<Page<Task>>;
    async fn get_task(
        &self,
        warehouse: WarehouseId,
        id: uuid::Uuid,
    ) -> Result<Option<(Task, Vec<TaskAttempt>)>>;
    /// A scheduled task is cancelled; a running one is asked to stop (its worker sees it at its
    /// next heartbeat). `NotFound(Task)`; `Conflict` for a finished one.
    async fn cancel_task(&self, warehouse: WarehouseId, id: uuid::Uuid, now: i64) -> Result<Task>;
    /// A scheduled task becomes due now. `Conflict` unless it is scheduled.
    async fn run_task_now(&self, warehouse: WarehouseId, id: uuid::Uuid, now: i64) -> Result<Task>;
    /// A failed or cancelled task is scheduled again, now, with its attempts counted afresh.
    async fn retry_task(&self, warehouse: WarehouseId, id: uuid::Uuid, now: i64) -> Result<Task>;
}

/// Delete profiles, protection, and soft-deleted tables and views.
#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// `NotFound(Warehouse)`.
    async fn delete_profile(&self, warehouse: WarehouseId) -> Result<DeleteProfile>;
    async fn set_delete_profile(
        &self,
        warehouse: WarehouseId,
        profile: &DeleteProfile,
        events: &[CloudEvent],
    ) -> Result<()>;
    async fn set_protection(
        &self,
        warehouse: WarehouseId,
        object: &ProtectedObject,
        protected: bool,
        events: &[CloudEvent],
    ) -> Result<()>;
    async fn is_protected(&self, warehouse: WarehouseId, object: &ProtectedObject) -> Result<bool>;
    /// Soft-deleted tables and views of a warehouse (every line), by namespace and name; only
    /// those of `namespace`, and whose names contain `name`, when given.
    async fn list_deleted(
        &self,
        warehouse: WarehouseId,
        namespace: Option<&NamespaceIdent>,
        name: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<DeletedTabular>>;
    async fn get_deleted(
        &self,
        warehouse: WarehouseId,
        id: uuid::Uuid,
    ) -> Result<Option<DeletedTabular>>;
    /// Restores one onto the line it was dropped from, in one commit, under its name or
    /// `rename_to`, and cancels its expiry. `NotFound(DeletedTabular)`, `NotFound(Namespace)`,
    /// `AlreadyExists` when the name is taken. `metadata` is the metadata file's content, needed
    /// when the record did not keep it (`DeletedTabular::metadata_kept`).
    async fn undrop(
        &self,
        warehouse: WarehouseId,
        undrop: &Undrop,
        meta: &CommitMeta,
        metadata: Option<bytes::Bytes>,
    ) -> Result<Tabular>;
    /// Forgets an expired one and, when its drop asked for a purge, enqueues `purge`, in one
    /// transaction. `None` when it is gone (undropped).
    async fn expire_deleted(
        &self,
        warehouse: WarehouseId,
        id: uuid::Uuid,
        purge: Option<NewTask>,
    ) -> Result<Option<DeletedTabular>>;
    /// Drops a namespace with every namespace, table and view under it (as the line sees them)
    /// in one commit, with what `options` ask for each table and view (soft-deleted records that
    /// keep the dropped namespaces' properties, purge or expiry tasks). `NotFound(Namespace)`;
    /// `Conflict` when something in it is protected and the drop is not forced.
    async fn drop_namespace_recursive(
        &self,
        line: RefId,
        root: &NamespaceIdent,
        meta: &CommitMeta,
        options: &RecursiveDrop,
    ) -> Result<RecursivelyDropped>;
    /// `NotFound(Warehouse)`.
    async fn maintenance_policy(&self, warehouse: WarehouseId) -> Result<MaintenancePolicy>;
    async fn set_maintenance_policy(
        &self,
        warehouse: WarehouseId,
        policy: &MaintenancePolicy,
        events: &[CloudEvent],
    ) -> Result<()>;
    /// The tables a line holds rows of (on `main`: all of them), in `namespace` and those below
    /// it when given, with their UUIDs.
    async fn tables_in(
        &self,
        line: RefId,
        namespace: Option<&NamespaceIdent>,
    ) -> Result<Vec<(TabularIdent, uuid::Uuid)>>;
    /// Whether the warehouse still has soft-deleted tables or unfinished tasks.
    async fn has_pending_lifecycle(&self, warehouse: WarehouseId) -> Result<bool>;
}

/// Idempotency keys of catalog mutations and the answers kept for them (`sql/idempotency.rs`).
/// Times are unix milliseconds.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims the key for a request (see [`KeyState`]): inserted as running under the claim's
    /// lease, or taken over when it is running past its lease for the same request; a key past
    /// its expiry is forgotten first.
    async fn claim_key(&self, claim: &KeyClaim) -> Result<KeyState>;
    /// Records the key's final answer, if `owner` still holds it (answers whether it did).
    async fn finish_key(
        &self,
        principal: &str,
        key: &str,
        owner: &str,
        response: &StoredResponse,
    ) -> Result<bool>;
    /// Forgets a running key `owner` holds (its request ended without a final answer).
    async fn release_key(&self, principal: &str, key: &str, owner: &str) -> Result<()>;
    /// Forgets keys expired before `now`; returns how many.
    async fn expire_keys(&self, now: i64) -> Result<u64>;
}

/// Scan plans held for clients (`sql/scan_plans.rs`). Times are unix milliseconds; a plan past
/// its expiry is never answered.
#[async_trait]
pub trait ScanPlanStore: Send + Sync {
    /// Holds a new plan (and forgets the expired ones).
    async fn insert_plan(&self, plan: &ScanPlan) -> Result<()>;
    /// The plan, unless it is unknown or expired by `now`.
    async fn get_plan(&self, id: &str, now: i64) -> Result<Option<ScanPlan>>;
    /// Ends a submitted plan as completed or failed, with what that state holds; answers false
    /// when the plan is no longer submitted (cancelled meanwhile) or gone.
    async fn finish_plan(&self, id: &str, state: PlanState, detail: &str) -> Result<bool>;
    /// Cancels a plan that is not expired by `now` (its tasks are no longer served); answers
    /// whether there was one.
    async fn cancel_plan(&self, id: &str, now: i64) -> Result<bool>;
    /// Where a warehouse's clients are told to plan scans (`server`, `client`, or nothing).
    /// `NotFound(Warehouse)`.
    async fn planning_mode(&self, warehouse: WarehouseId) -> Result<Option<String>>;
    async fn set_planning_mode(
        &self,
        warehouse: WarehouseId,
        mode: Option<&str>,
        events: &[CloudEvent],
    ) -> Result<()>;
}
