//! Lifecycle records: a warehouse's delete profile, soft-deleted tables and views, protection,
//! and the durable task queue's tasks and attempts.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{NamespaceIdent, Properties, RefId, TabularIdent, TabularKind, WarehouseId};
use crate::error::{Error, Result};

/// What dropping a table or view does in a warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DeleteProfile {
    /// Gone at once (its files purged when the drop asks for it).
    #[default]
    Hard,
    /// Kept, undroppable, for `expiration-seconds`; then forgotten, and purged when the drop
    /// asked for it.
    Soft {
        #[serde(rename = "expiration-seconds")]
        expiration_seconds: u64,
    },
}

/// The longest a soft-deleted table may be kept: ten years.
pub const MAX_SOFT_DELETE_SECONDS: u64 = 10 * 365 * 24 * 3600;

impl DeleteProfile {
    pub fn validate(&self) -> Result<()> {
        match self {
            DeleteProfile::Hard => Ok(()),
            DeleteProfile::Soft { expiration_seconds } => {
                if *expiration_seconds == 0 || *expiration_seconds > MAX_SOFT_DELETE_SECONDS {
                    Err(Error::bad_request(format!(
                        "expiration-seconds must be between 1 and {MAX_SOFT_DELETE_SECONDS}"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// A table or view dropped under a soft delete profile.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedTabular {
    pub id: Uuid,
    pub warehouse_id: WarehouseId,
    /// The line (branch) it was dropped from, and the only one an undrop restores it on.
    pub line_id: RefId,
    pub ident: TabularIdent,
    pub kind: TabularKind,
    pub uuid: Uuid,
    pub location: String,
    pub metadata_location: String,
    pub purge: bool,
    /// Unix milliseconds.
    pub deleted_at: i64,
    pub expires_at: i64,
    pub deleted_by: String,
    /// The task that forgets (and maybe purges) it at `expires_at`.
    pub task_id: Option<Uuid>,
    /// Whether its metadata was kept with it (a version a branch inherited is read from its
    /// metadata file again on undrop).
    pub metadata_kept: bool,
}

/// What a soft drop records beside removing the row: the deleted entry and its expiry task, in
/// the drop's own transaction.
#[derive(Debug, Clone)]
pub struct SoftDrop {
    pub deleted_id: Uuid,
    pub purge: bool,
    pub expires_at: i64,
    pub deleted_by: String,
    pub expiry: NewTask,
}

/// What comes with a drop, written in its transaction.
#[derive(Debug, Clone, Default)]
pub struct DropOptions {
    /// Drop even what is protected (or contains protected objects).
    pub force: bool,
    /// Keep it as soft-deleted.
    pub soft: Option<SoftDrop>,
    /// A purge to enqueue: the store completes its payload with the dropped table's `uuid` and
    /// `location` (and its target, `table:<uuid>`).
    pub purge: Option<NewTask>,
}

/// A soft-deleted table to restore, optionally under another name.
#[derive(Debug, Clone)]
pub struct Undrop {
    pub id: Uuid,
    pub rename_to: Option<TabularIdent>,
}

/// What can be protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectedObject {
    Warehouse,
    Namespace(NamespaceIdent),
    Tabular(TabularKind, Uuid),
}

impl ProtectedObject {
    /// The kind and key it is stored under.
    pub fn key(&self) -> (&'static str, String) {
        match self {
            ProtectedObject::Warehouse => ("warehouse", String::new()),
            ProtectedObject::Namespace(ns) => ("namespace", ns.joined()),
            ProtectedObject::Tabular(kind, uuid) => (kind.as_str(), uuid.to_string()),
        }
    }
}

/// A task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskStatus {
    Scheduled,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Scheduled => "scheduled",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "scheduled" => TaskStatus::Scheduled,
            "running" => TaskStatus::Running,
            "succeeded" => TaskStatus::Succeeded,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            other => {
                return Err(Error::bad_request(format!(
                    "status must be scheduled, running, succeeded, failed or cancelled, not {other:?}"
                )));
            }
        })
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The queues Floe's workers serve.
pub mod queues {
    /// Deletes a dropped table's files.
    pub const PURGE: &str = "purge";
    /// Forgets a soft-deleted table or view at its expiry (and purges it when asked).
    pub const SOFT_DELETE_EXPIRY: &str = "expiry";
    /// Expires tables' snapshots by policy.
    pub const MAINTENANCE: &str = "maintenance";
    /// Every queue, in the order the configuration lists them.
    pub const ALL: &[&str] = &[PURGE, SOFT_DELETE_EXPIRY, MAINTENANCE];
}

/// A task to enqueue.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: Uuid,
    pub warehouse_id: WarehouseId,
    pub queue: &'static str,
    /// What it acts on (`table:<uuid>`, `deleted:<id>`), to find a target's tasks.
    pub target: String,
    pub payload: serde_json::Value,
    /// Unix milliseconds.
    pub scheduled_at: i64,
    pub max_attempts: u32,
}

/// A task of the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: Uuid,
    pub warehouse_id: WarehouseId,
    pub queue: String,
    pub target: String,
    pub payload: serde_json::Value,
    pub status: TaskStatus,
    /// Every attempt ever made (numbering the log).
    pub attempts: u32,
    /// Failed attempts since the task was last started or retried.
    pub failures: u32,
    pub max_attempts: u32,
    /// When it is due (scheduled), or when it was (unix milliseconds).
    pub scheduled_at: i64,
    pub heartbeat_at: Option<i64>,
    pub worker: Option<String>,
    pub cancel_requested: bool,
    /// What a resumable task has done so far (its own JSON).
    pub progress: Option<serde_json::Value>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One attempt of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TaskAttempt {
    pub attempt: u32,
    pub worker: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `running`, `succeeded`, `failed`, `abandoned` (its worker stopped heartbeating) or
    /// `cancelled`.
    pub outcome: String,
    pub message: Option<String>,
}

/// Which tasks of a warehouse to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub queue: Option<String>,
    pub status: Option<TaskStatus>,
    pub target: Option<String>,
}

/// How a claimed task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    Succeeded(Option<String>),
    /// Failed with this message; retried after the backoff unless attempts are exhausted.
    Failed(String),
    Cancelled,
}

/// The task lease a worker holds: the task and the attempt it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLease {
    pub task: Task,
    pub attempt: u32,
    pub worker: String,
}

/// What a heartbeat learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Still the worker's; carry on.
    Held,
    /// Cancel was asked: stop and report `Cancelled`.
    CancelRequested,
    /// Another worker took it over (this one was taken for dead) or it was finished: stop at once
    /// and report nothing.
    Lost,
}

/// The task that purges a dropped table's files. Without `uuid` and `location` the drop's store
/// fills them in as it drops the table (`DropOptions::purge`).
pub fn purge_task(
    warehouse: WarehouseId,
    line: RefId,
    ident: &TabularIdent,
    table: Option<(Uuid, &str)>,
    max_attempts: u32,
    at: i64,
) -> NewTask {
    let (uuid, location) = table.unwrap_or((Uuid::nil(), ""));
    NewTask {
        id: Uuid::now_v7(),
        warehouse_id: warehouse,
        queue: queues::PURGE,
        target: format!("table:{uuid}"),
        payload: serde_json::json!({
            "line": line.0,
            "table": ident.to_string(),
            "uuid": uuid,
            "location": location,
        }),
        scheduled_at: at,
        max_attempts,
    }
}

/// The task that forgets a soft-deleted table or view at `expires_at`.
pub fn expiry_task(
    warehouse: WarehouseId,
    deleted_id: Uuid,
    kind: TabularKind,
    ident: &TabularIdent,
    expires_at: i64,
    max_attempts: u32,
) -> NewTask {
    NewTask {
        id: Uuid::now_v7(),
        warehouse_id: warehouse,
        queue: queues::SOFT_DELETE_EXPIRY,
        target: format!("deleted:{deleted_id}"),
        payload: serde_json::json!({
            "deleted-id": deleted_id,
            "kind": kind.as_str(),
            "name": ident.to_string(),
        }),
        scheduled_at: expires_at,
        max_attempts,
    }
}

/// A namespace dropped with everything in it, in one commit.
#[derive(Debug, Clone)]
pub struct RecursiveDrop {
    pub force: bool,
    /// Purge the tables' files (at once, or when their soft deletes expire).
    pub purge: bool,
    /// Under a soft delete profile: when the records expire, and who dropped them.
    pub soft: Option<(i64, String)>,
    /// Attempts the tasks it enqueues get.
    pub max_attempts: u32,
}

/// What a recursive drop removed.
#[derive(Debug, Clone, Default)]
pub struct RecursivelyDropped {
    pub namespaces: Vec<NamespaceIdent>,
    pub tabulars: Vec<TabularIdent>,
    /// Tasks it enqueued (purges, expiries).
    pub tasks: usize,
}

/// The namespaces a recursive drop removed, with their properties (kept with each soft-deleted
/// table so an undrop can bring back its namespace).
pub type DroppedNamespaces = std::collections::BTreeMap<String, Properties>;

/// A warehouse's table maintenance: whether it runs (tables and namespaces may say otherwise with
/// `floe.maintenance.enabled`), how often at most per table, and the expiry properties its tables
/// get unless they or their namespaces set their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MaintenancePolicy {
    pub enabled: bool,
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

fn default_interval() -> u64 {
    3600
}

impl Default for MaintenancePolicy {
    fn default() -> Self {
        MaintenancePolicy {
            enabled: false,
            interval_seconds: default_interval(),
            properties: Default::default(),
        }
    }
}

/// The properties a maintenance policy may set, and the least each may be.
pub const MAINTENANCE_PROPERTIES: &[(&str, i64)] = &[
    ("history.expire.max-snapshot-age-ms", 0),
    ("history.expire.min-snapshots-to-keep", 1),
    ("history.expire.max-ref-age-ms", 1),
    ("floe.maintenance.orphan-files-older-than-ms", 1000),
];

impl MaintenancePolicy {
    pub fn validate(&self) -> Result<()> {
        if self.interval_seconds == 0 || self.interval_seconds > 30 * 24 * 3600 {
            return Err(Error::bad_request(
                "interval-seconds must be between 1 and 2592000 (30 days)",
            ));
        }
        for (key, value) in &self.properties {
            let Some((_, least)) = MAINTENANCE_PROPERTIES.iter().find(|(k, _)| k == key) else {
                return Err(Error::bad_request(format!(
                    "{key:?} is not a maintenance property; they are {}",
                    MAINTENANCE_PROPERTIES
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            match value.trim().parse::<i64>() {
                Ok(v) if v >= *least => {}
                _ => {
                    return Err(Error::bad_request(format!(
                        "{key} must be a whole number of at least {least}, not {value:?}"
                    )));
                }
            }
        }
        Ok(())
    }
}
