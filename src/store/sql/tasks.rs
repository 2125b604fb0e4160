//! `TaskStore`: the durable task queue.
//!
//! A claim is one transaction: tasks of the queue whose worker stopped heartbeating and that have
//! no attempts left are failed; then the oldest due task (scheduled and due, or running with a
//! stale heartbeat: its worker is taken for dead) is locked (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so instances claiming at once each take another; SQLite's one writer serializes),
//! marked running under the claiming worker's name, and its attempt logged. Every later write of
//! the worker (heartbeat, finish) names its attempt, so a worker that was taken for dead learns
//! that it lost the task and writes nothing.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;
        use uuid::Uuid;

        use crate::error::{Entity, Error, Result};
        use crate::model::lifecycle::{
            Heartbeat, NewTask, Task, TaskAttempt, TaskFilter, TaskLease, TaskOutcome, TaskStatus,
        };
        use crate::model::{Page, PageRequest, WarehouseId};
        use crate::store::{TaskStore, db_error, fetch_limit, page_of};

        const TASK_COLUMNS: &str = "id, warehouse_id, queue, target, payload, status, attempts, \
             failures, max_attempts, scheduled_at, heartbeat_at, worker, cancel_requested, \
             progress, last_error, created_at, updated_at";

        fn task_from_row(row: &$row) -> Result<Task> {
            let failed = |e| db_error("decoding a task", e);
            let payload: String = row.try_get("payload").map_err(failed)?;
            let progress: Option<String> = row.try_get("progress").map_err(failed)?;
            let status: String = row.try_get("status").map_err(failed)?;
            let int = |name: &str| -> Result<u32> {
                let v: i32 = row.try_get(name).map_err(failed)?;
                Ok(u32::try_from(v).unwrap_or(0))
            };
            Ok(Task {
                id: row.try_get("id").map_err(failed)?,
                warehouse_id: WarehouseId(row.try_get("warehouse_id").map_err(failed)?),
                queue: row.try_get("queue").map_err(failed)?,
                target: row.try_get("target").map_err(failed)?,
                payload: serde_json::from_str(&payload)
                    .map_err(|e| Error::internal("decoding a task's payload", e))?,
                status: TaskStatus::parse(&status)
                    .map_err(|e| Error::internal("decoding a task's status", e))?,
                attempts: int("attempts")?,
                failures: int("failures")?,
                max_attempts: int("max_attempts")?,
                scheduled_at: row.try_get("scheduled_at").map_err(failed)?,
                heartbeat_at: row.try_get("heartbeat_at").map_err(failed)?,
                worker: row.try_get("worker").map_err(failed)?,
                cancel_requested: row.try_get("cancel_requested").map_err(failed)?,
                progress: progress
                    .map(|p| serde_json::from_str(&p))
                    .transpose()
                    .map_err(|e| Error::internal("decoding a task's progress", e))?,
                last_error: row.try_get("last_error").map_err(failed)?,
                created_at: row.try_get("created_at").map_err(failed)?,
                updated_at: row.try_get("updated_at").map_err(failed)?,
            })
        }

        /// Inserts `tasks` on `conn`, inside the caller's transaction.
        pub(crate) async fn insert_tasks(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            tasks: &[NewTask],
        ) -> Result<()> {
            let now = chrono::Utc::now().timestamp_millis();
            for t in tasks {
                sqlx::query(
                    "INSERT INTO tasks (id, warehouse_id, queue, target, payload, status, attempts, \
                     failures, max_attempts, scheduled_at, cancel_requested, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'scheduled', 0, 0, $6, $7, $8, $9, $9)",
                )
                .bind(t.id)
                .bind(t.warehouse_id.0)
                .bind(t.queue)
                .bind(&t.target)
                .bind(t.payload.to_string())
                .bind(i32::try_from(t.max_attempts.max(1)).unwrap_or(i32::MAX))
                .bind(t.scheduled_at)
                .bind(false)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(|e| db_error("enqueueing a task", e))?;
            }
            Ok(())
        }

        /// Cancels the scheduled tasks of `target` (a soft-deleted table that was undropped).
        pub(crate) async fn cancel_target_tasks(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            warehouse: WarehouseId,
            target: &str,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE tasks SET status = 'cancelled', updated_at = $1, \
                 last_error = 'cancelled: its target is gone' \
                 WHERE warehouse_id = $2 AND target = $3 AND status = 'scheduled'",
            )
            .bind(chrono::Utc::now().timestamp_millis())
            .bind(warehouse.0)
            .bind(target)
            .execute(&mut *conn)
            .await
            .map_err(|e| db_error("cancelling tasks", e))?;
            Ok(())
        }

        async fn task_in(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            warehouse: WarehouseId,
            id: Uuid,
        ) -> Result<Task> {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE warehouse_id = $1 AND id = $2"
            )))
            .bind(warehouse.0)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a task", e))?;
            match row {
                Some(row) => task_from_row(&row),
                None => Err(Error::not_found(Entity::Task, format!("task {id} does not exist"))),
            }
        }

        fn wrong_state(task: &Task, what: &str) -> Error {
            Error::conflict(format!(
                "task {} is {}; only {what}",
                task.id, task.status
            ))
        }

        #[async_trait]
        impl TaskStore for $store {
            async fn enqueue_tasks(&self, tasks: &[NewTask]) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("enqueueing a task", e))?;
                insert_tasks(&mut tx, tasks).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("enqueueing a task", e))
            }

            async fn enqueue_unique(&self, task: &NewTask) -> Result<bool> {
                let now = chrono::Utc::now().timestamp_millis();
                // The partial unique index on pending maintenance tasks decides; a conflict
                // inserts nothing.
                let inserted: Option<Uuid> = sqlx::query_scalar(
                    "INSERT INTO tasks (id, warehouse_id, queue, target, payload, status, attempts, \
                     failures, max_attempts, scheduled_at, cancel_requested, created_at, updated_at) \
                     SELECT $1, $2, $3, $4, $5, 'scheduled', 0, 0, $6, $7, $8, $9, $9 \
                     WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE warehouse_id = $2 AND queue = $3 \
                     AND target = $4 AND status IN ('scheduled', 'running')) \
                     ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(task.id)
                .bind(task.warehouse_id.0)
                .bind(task.queue)
                .bind(&task.target)
                .bind(task.payload.to_string())
                .bind(i32::try_from(task.max_attempts.max(1)).unwrap_or(i32::MAX))
                .bind(task.scheduled_at)
                .bind(false)
                .bind(now)
                .fetch_optional(&self.write)
                .await
                .map_err(|e| db_error("enqueueing a task", e))?;
                Ok(inserted.is_some())
            }

            async fn claim_task(
                &self,
                queue: &str,
                worker: &str,
                now: i64,
                stale_before: i64,
            ) -> Result<Option<TaskLease>> {
                let failed = |e| db_error("claiming a task", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                // Dead workers' tasks with no attempts left fail, visibly.
                sqlx::query(
                    "UPDATE task_attempts SET outcome = 'abandoned', finished_at = $1, \
                     message = 'its worker stopped heartbeating' \
                     WHERE outcome = 'running' AND task_id IN (SELECT id FROM tasks \
                     WHERE queue = $2 AND status = 'running' AND heartbeat_at < $3 \
                     AND failures + 1 >= max_attempts)",
                )
                .bind(now)
                .bind(queue)
                .bind(stale_before)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
                sqlx::query(
                    "UPDATE tasks SET status = 'failed', failures = failures + 1, updated_at = $1, \
                     last_error = 'its worker stopped heartbeating, and no attempts are left' \
                     WHERE queue = $2 AND status = 'running' AND heartbeat_at < $3 \
                     AND failures + 1 >= max_attempts",
                )
                .bind(now)
                .bind(queue)
                .bind(stale_before)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
                let candidate = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT id, status FROM tasks WHERE queue = $1 AND \
                     ((status = 'scheduled' AND scheduled_at <= $2) \
                      OR (status = 'running' AND heartbeat_at < $3)) \
                     ORDER BY scheduled_at, id LIMIT 1{}",
                    <$store as crate::store::sql::BackendDb>::SKIP_LOCKED
                )))
                .bind(queue)
                .bind(now)
                .bind(stale_before)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?;
                let Some(candidate) = candidate else {
                    tx.commit().await.map_err(failed)?;
                    return Ok(None);
                };
                let id: Uuid = candidate.try_get("id").map_err(failed)?;
                let status: String = candidate.try_get("status").map_err(failed)?;
                let taken_over = status == "running";
                if taken_over {
                    sqlx::query(
                        "UPDATE task_attempts SET outcome = 'abandoned', finished_at = $1, \
                         message = 'its worker stopped heartbeating' \
                         WHERE task_id = $2 AND outcome = 'running'",
                    )
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                }
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE tasks SET status = 'running', attempts = attempts + 1, \
                     failures = failures + $1, heartbeat_at = $2, worker = $3, updated_at = $2 \
                     WHERE id = $4 RETURNING {TASK_COLUMNS}"
                )))
                .bind(i32::from(taken_over))
                .bind(now)
                .bind(worker)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(failed)?;
                let task = task_from_row(&row)?;
                sqlx::query(
                    "INSERT INTO task_attempts (task_id, attempt, worker, started_at, outcome) \
                     VALUES ($1, $2, $3, $4, 'running')",
                )
                .bind(id)
                .bind(i32::try_from(task.attempts).unwrap_or(i32::MAX))
                .bind(worker)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
                tx.commit().await.map_err(failed)?;
                Ok(Some(TaskLease {
                    attempt: task.attempts,
                    worker: worker.to_string(),
                    task,
                }))
            }

            async fn heartbeat_task(
                &self,
                lease: &TaskLease,
                now: i64,
                progress: Option<&serde_json::Value>,
            ) -> Result<Heartbeat> {
                let cancel: Option<bool> = sqlx::query_scalar(
                    "UPDATE tasks SET heartbeat_at = $1, updated_at = $1, \
                     progress = COALESCE($2, progress) \
                     WHERE id = $3 AND status = 'running' AND worker = $4 AND attempts = $5 \
                     RETURNING cancel_requested",
                )
                .bind(now)
                .bind(progress.map(|p| p.to_string()))
                .bind(lease.task.id)
                .bind(&lease.worker)
                .bind(i32::try_from(lease.attempt).unwrap_or(i32::MAX))
                .fetch_optional(&self.write)
                .await
                .map_err(|e| db_error("recording a task's heartbeat", e))?;
                Ok(match cancel {
                    None => Heartbeat::Lost,
                    Some(true) => Heartbeat::CancelRequested,
                    Some(false) => Heartbeat::Held,
                })
            }

            async fn finish_task(
                &self,
                lease: &TaskLease,
                outcome: &TaskOutcome,
                now: i64,
                retry_at: i64,
                progress: Option<&serde_json::Value>,
            ) -> Result<bool> {
                let failed = |e| db_error("finishing a task", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let (status_sql, attempt_outcome, message) = match outcome {
                    TaskOutcome::Succeeded(m) => ("'succeeded'", "succeeded", m.clone()),
                    TaskOutcome::Cancelled => ("'cancelled'", "cancelled", None),
                    TaskOutcome::Failed(m) => (
                        "CASE WHEN failures + 1 >= max_attempts THEN 'failed' ELSE 'scheduled' END",
                        "failed",
                        Some(m.clone()),
                    ),
                };
                let is_failure = matches!(outcome, TaskOutcome::Failed(_));
                let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE tasks SET status = {status_sql}, \
                     scheduled_at = CASE WHEN $1 AND failures + 1 < max_attempts THEN $2 ELSE scheduled_at END, \
                     failures = failures + CASE WHEN $1 THEN 1 ELSE 0 END, \
                     last_error = CASE WHEN $1 THEN $3 ELSE last_error END, \
                     cancel_requested = CASE WHEN $1 THEN cancel_requested ELSE $4 END, \
                     heartbeat_at = NULL, updated_at = $5, progress = COALESCE($9, progress) \
                     WHERE id = $6 AND status = 'running' AND worker = $7 AND attempts = $8"
                )))
                .bind(is_failure)
                .bind(retry_at)
                .bind(message.clone())
                .bind(false)
                .bind(now)
                .bind(lease.task.id)
                .bind(&lease.worker)
                .bind(i32::try_from(lease.attempt).unwrap_or(i32::MAX))
                .bind(progress.map(|p| p.to_string()))
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE task_attempts SET outcome = $1, finished_at = $2, message = $3 \
                     WHERE task_id = $4 AND attempt = $5",
                )
                .bind(attempt_outcome)
                .bind(now)
                .bind(message)
                .bind(lease.task.id)
                .bind(i32::try_from(lease.attempt).unwrap_or(i32::MAX))
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
                tx.commit().await.map_err(failed)?;
                Ok(true)
            }

            async fn open_task_counts(&self) -> Result<Vec<(String, String, u64)>> {
                let rows = sqlx::query(
                    "SELECT queue, status, count(*) AS n FROM tasks \
                     WHERE status IN ('scheduled', 'running') GROUP BY queue, status",
                )
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("counting tasks", e))?;
                let mut counts = Vec::with_capacity(rows.len());
                for row in rows {
                    let failed = |e| db_error("counting tasks", e);
                    let n: i64 = row.try_get("n").map_err(failed)?;
                    counts.push((
                        row.try_get("queue").map_err(failed)?,
                        row.try_get("status").map_err(failed)?,
                        u64::try_from(n).unwrap_or(0),
                    ));
                }
                Ok(counts)
            }

            async fn list_tasks(
                &self,
                warehouse: WarehouseId,
                filter: &TaskFilter,
                page: &PageRequest,
            ) -> Result<Page<Task>> {
                // Newest first; the page token is the last task's id (UUIDv7, time-ordered).
                let after = match &page.after {
                    Some(token) => Some(Uuid::parse_str(token).map_err(|_| {
                        Error::bad_request("pageToken is not one this server gave")
                    })?),
                    None => None,
                };
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE warehouse_id = $1 \
                     AND ($2 IS NULL OR queue = $2) AND ($3 IS NULL OR status = $3) \
                     AND ($4 IS NULL OR target = $4) AND ($5 IS NULL OR id < $5) \
                     ORDER BY id DESC LIMIT $6"
                )))
                .bind(warehouse.0)
                .bind(filter.queue.clone())
                .bind(filter.status.map(|s| s.as_str()))
                .bind(filter.target.clone())
                .bind(after)
                .bind(fetch_limit(page))
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing tasks", e))?;
                let tasks = rows.iter().map(task_from_row).collect::<Result<Vec<_>>>()?;
                Ok(page_of(tasks, page, |t| t.id.to_string()))
            }

            async fn get_task(
                &self,
                warehouse: WarehouseId,
                id: Uuid,
            ) -> Result<Option<(Task, Vec<TaskAttempt>)>> {
                let failed = |e| db_error("reading a task", e);
                let mut conn = crate::store::sql::acquire(&self.read).await.map_err(failed)?;
                let task = match task_in(&mut conn, warehouse, id).await {
                    Ok(t) => t,
                    Err(e) if matches!(e.kind, crate::error::ErrorKind::NotFound(_)) => {
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                };
                let rows = sqlx::query(
                    "SELECT attempt, worker, started_at, finished_at, outcome, message \
                     FROM task_attempts WHERE task_id = $1 ORDER BY attempt",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await
                .map_err(failed)?;
                let attempts = rows
                    .iter()
                    .map(|row| {
                        let attempt: i32 = row.try_get("attempt")?;
                        Ok(TaskAttempt {
                            attempt: u32::try_from(attempt).unwrap_or(0),
                            worker: row.try_get("worker")?,
                            started_at: row.try_get("started_at")?,
                            finished_at: row.try_get("finished_at")?,
                            outcome: row.try_get("outcome")?,
                            message: row.try_get("message")?,
                        })
                    })
                    .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
                    .map_err(failed)?;
                Ok(Some((task, attempts)))
            }

            async fn cancel_task(&self, warehouse: WarehouseId, id: Uuid, now: i64) -> Result<Task> {
                let failed = |e| db_error("cancelling a task", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let task = task_in(&mut tx, warehouse, id).await?;
                let statement = match task.status {
                    TaskStatus::Scheduled => {
                        "UPDATE tasks SET status = 'cancelled', updated_at = $1 WHERE id = $2"
                    }
                    // Its worker stops at its next heartbeat.
                    TaskStatus::Running => {
                        "UPDATE tasks SET cancel_requested = TRUE, updated_at = $1 WHERE id = $2"
                    }
                    _ => return Err(wrong_state(&task, "a scheduled or running task can be cancelled")),
                };
                sqlx::query(statement)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                let task = task_in(&mut tx, warehouse, id).await?;
                tx.commit().await.map_err(failed)?;
                Ok(task)
            }

            async fn run_task_now(&self, warehouse: WarehouseId, id: Uuid, now: i64) -> Result<Task> {
                let failed = |e| db_error("rescheduling a task", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let task = task_in(&mut tx, warehouse, id).await?;
                if task.status != TaskStatus::Scheduled {
                    return Err(wrong_state(&task, "a scheduled task can be run now"));
                }
                sqlx::query("UPDATE tasks SET scheduled_at = $1, updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                let task = task_in(&mut tx, warehouse, id).await?;
                tx.commit().await.map_err(failed)?;
                Ok(task)
            }

            async fn retry_task(&self, warehouse: WarehouseId, id: Uuid, now: i64) -> Result<Task> {
                let failed = |e| db_error("retrying a task", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let task = task_in(&mut tx, warehouse, id).await?;
                if !matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled) {
                    return Err(wrong_state(&task, "a failed or cancelled task can be retried"));
                }
                sqlx::query(
                    "UPDATE tasks SET status = 'scheduled', failures = 0, cancel_requested = $1, \
                     scheduled_at = $2, updated_at = $2 WHERE id = $3",
                )
                .bind(false)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if crate::store::is_unique_violation(&e) {
                        Error::conflict(format!(
                            "another task of {} is pending; it does the same",
                            task.target
                        ))
                    } else {
                        db_error("retrying a task", e)
                    }
                })?;
                let task = task_in(&mut tx, warehouse, id).await?;
                tx.commit().await.map_err(failed)?;
                Ok(task)
            }
        }
    };
}

pub(crate) use stamp;
