//! The task queue's workers and its use cases. Every Floe instance runs the workers its
//! configuration asks for (`tasks.queues`: a count per queue; none at all is fine): each claims a
//! due task of its queue from the database (`store::TaskStore::claim_task`), runs it while
//! heartbeating, and records how it ended. A worker that dies stops heartbeating, and once its
//! heartbeat is older than `stale_after` another worker takes the task up again; a task that keeps
//! failing is retried after a growing backoff and fails for good after `max_attempts`.
//!
//! A worker stops running a task as soon as it learns that it lost it (its heartbeat found another
//! worker's claim) or that cancel was asked; its handler is dropped at its next await point.
//! Handlers are written to be taken up again anywhere (a purge deletes what is left).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::{RequestContext, Services};
use crate::error::{Entity, Error, Result};
use crate::model::lifecycle::{
    Heartbeat, Task, TaskAttempt, TaskFilter, TaskLease, TaskOutcome, queues,
};
use crate::model::{Action, Page, PageRequest, WarehouseId};

/// How the workers run (`tasks.*`).
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// Workers per queue in this instance.
    pub queues: Vec<(String, usize)>,
    /// How often an idle worker looks for due tasks.
    pub poll_interval: Duration,
    /// How often a running task's worker records that it is alive.
    pub heartbeat_interval: Duration,
    /// A running task whose heartbeat is older than this is taken for abandoned.
    pub stale_after: Duration,
    /// Attempts before a task fails for good.
    pub max_attempts: u32,
    /// The wait before the first retry; each further one doubles it, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Objects a purge deletes between two records of its progress.
    pub purge_batch: usize,
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            queues: queues::ALL.iter().map(|q| (q.to_string(), 1)).collect(),
            poll_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            max_attempts: 5,
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            purge_batch: 1000,
        }
    }
}

impl TaskSettings {
    /// The wait before retrying after the `failures`-th failure.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// The running workers; dropping it does not stop them, [`TaskWorkers::stop`] does.
pub struct TaskWorkers {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl TaskWorkers {
    /// Stops every worker at once; a task one was running is taken up again by another worker
    /// once its heartbeat is stale.
    pub fn stop(self) {
        for handle in self.handles {
            handle.abort();
        }
    }

    pub fn count(&self) -> usize {
        self.handles.len()
    }
}

/// What a running task sees: its lease, and where it records progress (written with the next
/// heartbeat).
pub(crate) struct TaskRun {
    pub(crate) lease: TaskLease,
    /// The latest progress, and whether it is newer than what the database holds.
    progress: Mutex<(Option<Value>, bool)>,
}

impl TaskRun {
    pub(crate) fn record_progress(&self, progress: Value) {
        *self.progress.lock().expect("progress lock") = (Some(progress), true);
    }

    /// What an earlier attempt recorded, when this one resumes it.
    pub(crate) fn resumed_progress(&self) -> Option<&Value> {
        self.lease.task.progress.as_ref()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// This instance's name in the task log: host, process and a random tag.
pub(crate) fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "floe".to_string());
    let tag = Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &tag[..6])
}

impl Services {
    /// Starts this instance's workers.
    pub fn spawn_task_workers(&self, settings: TaskSettings) -> TaskWorkers {
        let settings = Arc::new(settings);
        let instance = instance_name();
        let mut handles = Vec::new();
        for (queue, count) in &settings.queues {
            for n in 0..*count {
                let worker = format!("{instance}/{queue}/{n}");
                let (services, settings, queue) = (self.clone(), settings.clone(), queue.clone());
                handles.push(tokio::spawn(async move {
                    services.work(&queue, &worker, &settings).await;
                }));
            }
        }
        if !handles.is_empty() {
            tracing::info!(workers = handles.len(), instance = %instance, "task workers started");
        }
        TaskWorkers { handles }
    }

    async fn work(&self, queue: &str, worker: &str, settings: &TaskSettings) {
        loop {
            let now = now_ms();
            let stale = i64::try_from(settings.stale_after.as_millis()).unwrap_or(i64::MAX);
            match self
                .store
                .tasks
                .claim_task(queue, worker, now, now - stale)
                .await
            {
                Ok(Some(lease)) => self.run_claimed(lease, settings).await,
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(settings.poll_interval) => {}
                        _ = self.task_wake.notified() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(queue, error = %e.message, "claiming a task failed");
                    tokio::time::sleep(settings.poll_interval).await;
                }
            }
        }
    }

    async fn run_claimed(&self, lease: TaskLease, settings: &TaskSettings) {
        let task = &lease.task;
        tracing::info!(task_id = %task.id, queue = %task.queue, target = %task.target, attempt = lease.attempt, "task started");
        let run = Arc::new(TaskRun {
            lease: lease.clone(),
            progress: Mutex::new((None, false)),
        });
        let started = std::time::Instant::now();
        let handler = self.run_task(run.clone(), settings);
        let heartbeat = self.keep_alive(&run, settings);
        let outcome = tokio::select! {
            result = handler => match result {
                Ok(message) => TaskOutcome::Succeeded(message),
                Err(e) => TaskOutcome::Failed(e.message),
            },
            beat = heartbeat => match beat {
                Heartbeat::CancelRequested => TaskOutcome::Cancelled,
                _ => {
                    crate::telemetry::task_ran(&task.queue, "lost", started.elapsed());
                    tracing::warn!(task_id = %task.id, "task lost: another worker took it over");
                    return;
                }
            },
        };
        crate::telemetry::task_ran(
            &task.queue,
            match &outcome {
                TaskOutcome::Succeeded(_) => "succeeded",
                TaskOutcome::Failed(_) if task.failures + 1 >= task.max_attempts => "failed",
                TaskOutcome::Failed(_) => "retried",
                TaskOutcome::Cancelled => "cancelled",
            },
            started.elapsed(),
        );
        let failures = task.failures + 1;
        let retry_at = now_ms()
            + i64::try_from(settings.backoff(failures).as_millis()).unwrap_or(i64::MAX / 2);
        // The last progress is recorded with the outcome.
        let progress = run.progress.lock().expect("progress lock").0.clone();
        match self
            .store
            .tasks
            .finish_task(&lease, &outcome, now_ms(), retry_at, progress.as_ref())
            .await
        {
            Ok(true) => match &outcome {
                TaskOutcome::Failed(message) if failures >= task.max_attempts => {
                    tracing::warn!(task_id = %task.id, queue = %task.queue, error = %message, attempts = failures, "task failed for good");
                }
                TaskOutcome::Failed(message) => {
                    tracing::warn!(task_id = %task.id, queue = %task.queue, error = %message, "task failed; it will be retried");
                }
                outcome => {
                    tracing::info!(task_id = %task.id, queue = %task.queue, outcome = ?outcome, "task finished");
                }
            },
            Ok(false) => tracing::warn!(task_id = %task.id, "task lost before it finished"),
            Err(e) => {
                tracing::warn!(task_id = %task.id, error = %e.message, "recording a task's end failed")
            }
        }
    }

    /// Heartbeats until the task is lost or cancel is asked (never returns otherwise). A worker
    /// that cannot reach the database for `stale_after` takes the task for lost.
    async fn keep_alive(&self, run: &TaskRun, settings: &TaskSettings) -> Heartbeat {
        let mut last_held = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(settings.heartbeat_interval).await;
            // Progress recorded since the last heartbeat goes with this one.
            let progress = {
                let mut slot = run.progress.lock().expect("progress lock");
                let fresh = std::mem::take(&mut slot.1);
                fresh.then(|| slot.0.clone()).flatten()
            };
            match self
                .store
                .tasks
                .heartbeat_task(&run.lease, now_ms(), progress.as_ref())
                .await
            {
                Ok(Heartbeat::Held) => last_held = tokio::time::Instant::now(),
                Ok(other) => return other,
                Err(e) => {
                    tracing::warn!(task_id = %run.lease.task.id, error = %e.message, "a task's heartbeat failed");
                    if progress.is_some() {
                        run.progress.lock().expect("progress lock").1 = true;
                    }
                    if last_held.elapsed() >= settings.stale_after {
                        return Heartbeat::Lost;
                    }
                }
            }
        }
    }

    /// Runs one task of any queue.
    async fn run_task(&self, run: Arc<TaskRun>, settings: &TaskSettings) -> Result<Option<String>> {
        match run.lease.task.queue.as_str() {
            queues::PURGE => self.run_purge(&run, settings).await,
            queues::SOFT_DELETE_EXPIRY => self.run_soft_delete_expiry(&run, settings).await,
            queues::MAINTENANCE => self.run_maintenance_task(&run, settings).await,
            other => Err(Error::internal(
                "running a task",
                anyhow::anyhow!("no worker knows queue {other:?}"),
            )),
        }
    }

    /// Tells this instance's idle workers that a task was enqueued.
    pub(crate) fn wake_workers(&self) {
        self.task_wake.notify_waiters();
    }

    // The task API.

    pub async fn list_tasks(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> Result<Page<Task>> {
        self.authorize_warehouse(ctx, Action::WarehouseReadTasks, warehouse)
            .await?;
        self.store.tasks.list_tasks(warehouse, filter, page).await
    }

    pub async fn get_task(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        id: Uuid,
    ) -> Result<(Task, Vec<TaskAttempt>)> {
        self.authorize_warehouse(ctx, Action::WarehouseReadTasks, warehouse)
            .await?;
        self.store
            .tasks
            .get_task(warehouse, id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Task, format!("task {id} does not exist")))
    }

    pub async fn control_task(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        id: Uuid,
        control: TaskControl,
    ) -> Result<Task> {
        self.authorize_warehouse(ctx, Action::WarehouseManageTasks, warehouse)
            .await?;
        let now = now_ms();
        let task = match control {
            TaskControl::Cancel => self.store.tasks.cancel_task(warehouse, id, now).await?,
            TaskControl::RunNow => self.store.tasks.run_task_now(warehouse, id, now).await?,
            TaskControl::Retry => self.store.tasks.retry_task(warehouse, id, now).await?,
        };
        tracing::info!(task_id = %id, control = ?control, actor = %ctx.principal.display_id(), "task control");
        if control != TaskControl::Cancel {
            self.wake_workers();
        }
        Ok(task)
    }
}

/// What a caller may do to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskControl {
    Cancel,
    RunNow,
    Retry,
}
