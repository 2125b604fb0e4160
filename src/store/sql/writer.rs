//! The group-commit writer: every commit waiting is applied in one transaction, each in its own
//! savepoint where it needs one, so one log flush covers them all.
//!
//! A group locks each line it writes once, at the start (on PostgreSQL in the `BEGIN`'s round
//! trip, `BackendDb::begin_locking`, with the line heads the writer's last group left; the head
//! is checked when it moves, and a line moved by anyone else sends the group round again under
//! lock). The plain swaps of a line (one table's pointer each) are one `UPDATE ... FROM (VALUES
//! ...)` on PostgreSQL and one `UPDATE` per table on SQLite, each moving its pointer or changing
//! nothing; a lone create checks its folder first and inserts with `ON CONFLICT DO NOTHING` (a
//! failed swap or create wrote nothing and is answered at once); anything else runs in its own
//! savepoint. At the end each line's commits, history rows and head are written (`history`; one
//! statement with data-modifying `WITH` on PostgreSQL), so a PostgreSQL group is four round
//! trips. Metadata is compressed before it reaches the writer (`submit_commit`), and PostgreSQL
//! stores it as is, without TOAST compression.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use chrono::{DateTime, Utc};
        use uuid::Uuid;

        use crate::error::{Error, Result};
        use crate::model::{CommitMeta, RefId, WarehouseId};
        use crate::store::{HistoryEntry, TabularChange, db_error};

        /// One `commit_tabulars` call waiting for a group-commit writer.
        pub(crate) struct CommitJob {
            pub(crate) ref_id: RefId,
            pub(crate) changes: Vec<TabularChange>,
            pub(crate) blobs: Vec<Vec<u8>>,
            pub(crate) meta: CommitMeta,
            pub(crate) done: tokio::sync::oneshot::Sender<Result<()>>,
        }

        /// Commits taken into one transaction at most.
        pub(super) const GROUP_COMMIT_MAX: usize = 64;

        /// Hands one commit to a group-commit writer and waits for its outcome. Metadata is
        /// compressed here, before the writer, which would otherwise wait on it.
        pub(crate) async fn submit_commit(
            writer: &tokio::sync::mpsc::Sender<CommitJob>,
            ref_id: RefId,
            changes: &[TabularChange],
            meta: &CommitMeta,
        ) -> Result<()> {
            let blobs = compress_changes(changes)?;
            let (done, result) = tokio::sync::oneshot::channel();
            let job = CommitJob {
                ref_id,
                changes: changes.to_vec(),
                blobs,
                meta: meta.clone(),
                done,
            };
            let closed = || {
                Error::unavailable(
                    "the database writer has stopped",
                    std::io::Error::other("group-commit queue closed"),
                )
            };
            writer.send(job).await.map_err(|_| closed())?;
            result.await.map_err(|_| closed())?
        }

        /// A group-commit writer: takes every commit waiting (up to 64) into one transaction, each
        /// inside its own savepoint, so a commit whose compare-and-swap fails is rolled back
        /// alone and the others are made durable together by one log flush. Runs until the
        /// queue's senders are dropped.
        pub(crate) async fn group_commit_writer(
            write: sqlx::Pool<<$store as crate::store::sql::BackendDb>::Db>,
            mut queue: tokio::sync::mpsc::Receiver<CommitJob>,
        ) {
            let mut batch = Vec::with_capacity(GROUP_COMMIT_MAX);
            // The head of each line as this writer's last group left it: a group whose lines
            // are all here reads no head (and on PostgreSQL locks them in its `BEGIN`); the head
            // is checked when it is moved, and a group that finds it moved redoes its work.
            let mut heads: std::collections::HashMap<RefId, LineHead> = std::collections::HashMap::new();
            let mut held = None;
            while queue.recv_many(&mut batch, GROUP_COMMIT_MAX).await > 0 {
                let mut waiting: Vec<Option<tokio::sync::oneshot::Sender<Result<()>>>> = Vec::new();
                let mut jobs = Vec::with_capacity(batch.len());
                for job in batch.drain(..) {
                    let CommitJob { ref_id, changes, blobs, meta, done } = job;
                    waiting.push(Some(done));
                    jobs.push((ref_id, changes, blobs, meta));
                }
                let started = std::time::Instant::now();
                let kept = held.take();
                let was_kept = kept.is_some();
                let conn = match kept {
                    Some(conn) => Ok(conn),
                    None => {
                        let waiting = std::time::Instant::now();
                        let conn = write.acquire().await;
                        crate::telemetry::pool_acquired(waiting.elapsed());
                        conn
                    }
                };
                let results = match conn {
                    Err(e) => {
                        let e = db_error("committing", e);
                        jobs.iter().map(|_| Err(Error::new(e.kind, e.message.clone()))).collect()
                    }
                    Ok(mut conn) => {
                        let mut outcome = run_group(&mut conn, &jobs, &mut waiting, &mut heads).await;
                        if was_kept && matches!(outcome, Group::NotBegun(_)) {
                            // The kept connection may have died with the database's restart:
                            // nothing was done, so the group goes again on a fresh one.
                            match write.acquire().await {
                                Ok(fresh) => {
                                    conn = fresh;
                                    outcome = run_group(&mut conn, &jobs, &mut waiting, &mut heads).await;
                                }
                                Err(e) => outcome = Group::NotBegun(db_error("committing", e)),
                            }
                        }
                        if matches!(outcome, Group::Stale) {
                            tracing::debug!("a line moved since this writer's last group; redoing the group");
                            heads.clear();
                            outcome = run_group(&mut conn, &jobs, &mut waiting, &mut heads).await;
                        }
                        let results = match outcome {
                            Group::Done(results) => results,
                            Group::Stale => jobs.iter().map(|_| Err(stale_head())).collect(),
                            Group::NotBegun(e) => {
                                tracing::error!(error = ?e, commits = jobs.len(), "a group commit failed");
                                jobs.iter().map(|_| Err(Error::new(e.kind, e.message.clone()))).collect()
                            }
                        };
                        // A connection whose group failed as a whole may be broken: let it go.
                        let whole_failure = !results.is_empty() && results.iter().all(|r| {
                            r.as_ref().is_err_and(|e| matches!(e.kind, crate::error::ErrorKind::Internal | crate::error::ErrorKind::Unavailable))
                        });
                        if <$store as crate::store::sql::BackendDb>::KEEPS_WRITER_CONNECTION && !whole_failure {
                            held = Some(conn);
                        }
                        if whole_failure {
                            heads.clear();
                        }
                        results
                    }
                };
                crate::telemetry::group_commit(jobs.len(), started.elapsed());
                tracing::trace!(
                    commits = jobs.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "group committed"
                );
                for (done, result) in waiting.into_iter().zip(results) {
                    if let Some(done) = done {
                        let _ = done.send(result);
                    }
                }
            }
        }

        /// How a try at a group commit ended.
        pub(super) enum Group {
            /// Each commit's result (those answered already are not answered again).
            Done(Vec<Result<()>>),
            /// A head the writer had cached had moved; nothing was changed.
            Stale,
            /// The transaction could not begin; nothing was done.
            NotBegun(Error),
        }

        /// A group's commits in one transaction. A commit that fails is answered at once (it
        /// changed nothing, whatever becomes of the rest), so that a writer that lost a race
        /// retries without waiting for the group's flush; the others are answered after it.
        /// Commits already answered (by an earlier try of the group) are left out.
        ///
        /// Round trips are what a group saves: each line the group writes is locked once, at the
        /// start (with the `BEGIN`, where the line's head is known from the last group); a plain
        /// compare-and-swap (one table's pointer on a line of its own rows) is a single `UPDATE`
        /// for all of a line's tables, which moves each pointer or leaves it, so it needs no
        /// savepoint; and the line's commits, history rows and head are written at the end, in
        /// one statement on PostgreSQL.
        pub(super) async fn run_group(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            batch: &[(RefId, Vec<TabularChange>, Vec<Vec<u8>>, CommitMeta)],
            waiting: &mut [Option<tokio::sync::oneshot::Sender<Result<()>>>],
            cache: &mut std::collections::HashMap<RefId, LineHead>,
        ) -> Group {
            use sqlx::Connection as _;
            let failed = |e: sqlx::Error| db_error("committing", e);
            // A failure of the transaction itself fails every commit in it (none is durable).
            let all = |e: Error| {
                tracing::error!(error = ?e, commits = batch.len(), "a group commit failed");
                Group::Done(
                    batch
                        .iter()
                        .map(|_| Err(Error::new(e.kind, e.message.clone())))
                        .collect::<Vec<_>>(),
                )
            };
            let answer = |waiting: &mut [Option<tokio::sync::oneshot::Sender<Result<()>>>], i: usize, e: Error| {
                if let Some(done) = waiting[i].take() {
                    let _ = done.send(Err(e));
                }
            };
            let live: Vec<bool> = waiting.iter().map(Option::is_some).collect();
            let mut claimed: Vec<WarehouseId> = batch
                .iter()
                .enumerate()
                .filter(|(i, _)| live[*i])
                .flat_map(|(_, job)| job.1.iter())
                .filter_map(|change| match change {
                    TabularChange::Create(t) => Some(t.warehouse_id),
                    TabularChange::Update {
                        claims_location, ..
                    } => *claims_location,
                })
                .collect();
            claimed.sort_by_key(|w| w.0);
            claimed.dedup();
            let mut lines: Vec<RefId> = batch
                .iter()
                .enumerate()
                .filter(|(i, _)| live[*i])
                .map(|(_, job)| job.0)
                .collect();
            lines.sort_by_key(|line| line.0);
            lines.dedup();
            // Heads remembered from the last group are used only where the locks come with the
            // `BEGIN` (PostgreSQL): that is the round trip they save.
            let locking = <$store as crate::store::sql::BackendDb>::begin_locking(
                &claimed.iter().map(|w| w.0).collect::<Vec<_>>(),
                &lines.iter().map(|l| l.0).collect::<Vec<_>>(),
            );
            let cached: Option<Vec<LineHead>> = locking
                .as_ref()
                .and_then(|_| lines.iter().map(|line| cache.get(line).cloned()).collect());
            let (begun, locked) = match (&cached, locking) {
                (Some(_), Some(statement)) => {
                    (conn.begin_with(sqlx::AssertSqlSafe(statement)).await, true)
                }
                _ => (conn.begin().await, false),
            };
            let mut tx = match begun {
                Ok(tx) => tx,
                Err(e) => return Group::NotBegun(failed(e)),
            };
            // Locks in the order every transaction takes them: the folder-claim lock of each
            // warehouse the group claims in (sorted), then each line's row (sorted), then table
            // rows. Otherwise a commit's claim would wait, holding a line, on a transaction that
            // holds the claim lock and waits for that line.
            if !locked {
                for warehouse in &claimed {
                    if let Err(e) = sqlx::query($location_lock)
                        .bind(warehouse.0.to_string())
                        .execute(&mut *tx)
                        .await
                    {
                        return all(failed(e));
                    }
                }
            }
            let mut heads: std::collections::HashMap<RefId, std::result::Result<LineHead, Error>> =
                std::collections::HashMap::with_capacity(lines.len());
            match cached {
                Some(cached) => {
                    heads.extend(lines.iter().copied().zip(cached.into_iter().map(Ok)));
                }
                None => {
                    for line in &lines {
                        match lock_line(&mut tx, *line).await {
                            Ok(head) => {
                                heads.insert(*line, Ok(head));
                            }
                            // A line that is gone or no longer a branch fails its own commits only.
                            Err(e) if matches!(e.kind, crate::error::ErrorKind::NotFound(_) | crate::error::ErrorKind::Conflict) => {
                                heads.insert(*line, Err(e));
                            }
                            Err(e) => return all(e),
                        }
                    }
                }
            }
            let mut recorded: Vec<(usize, Vec<HistoryEntry>, DateTime<Utc>)> = Vec::with_capacity(batch.len());
            // The plain updates of each line (one table's pointer, on a line of its own rows, the
            // folder kept) are one statement for many tables: a round trip per table was what
            // bounded a line's commit rate on PostgreSQL. A table is in at most one of them (a
            // process takes its tables' commit locks before it commits).
            let mut swaps: std::collections::BTreeMap<Uuid, Vec<usize>> = std::collections::BTreeMap::new();
            let mut swapped_tables = std::collections::HashSet::new();
            for (i, (ref_id, changes, _, _)) in batch.iter().enumerate() {
                if live[i]
                    && let Some(Ok(head)) = heads.get(ref_id)
                    && head.parent.is_none()
                    && let [TabularChange::Update { id, claims_location: None, .. }] = changes.as_slice()
                    && swapped_tables.insert(*id)
                {
                    swaps.entry(ref_id.0).or_default().push(i);
                }
            }
            let mut handled = vec![false; batch.len()];
            for (line, jobs) in &swaps {
                for chunk in jobs.chunks(SWAPS_PER_STATEMENT) {
                    let swapped = match swap_pointers(&mut tx, RefId(*line), chunk.iter().map(|i| (&batch[*i].1[0], batch[*i].2[0].as_slice()))).await {
                        Ok(swapped) => swapped,
                        Err(e) => return all(e),
                    };
                    for (&i, entry) in chunk.iter().zip(swapped) {
                        handled[i] = true;
                        match entry {
                            Ok((entry, at)) => recorded.push((i, vec![entry], at)),
                            Err(e) => answer(waiting, i, e),
                        }
                    }
                }
            }
            for (i, (ref_id, changes, blobs, _)) in batch.iter().enumerate() {
                if handled[i] || !live[i] {
                    continue;
                }
                let on_branch = match &heads[ref_id] {
                    Ok(head) => head.parent.is_some(),
                    Err(e) => {
                        answer(waiting, i, Error::new(e.kind, e.message.clone()));
                        continue;
                    }
                };
                // A lone create, or a lone update that keeps its folder, on a line of its own
                // rows writes at most one row, last, after every check: when it fails it wrote
                // nothing, and (short of a database failure) raised nothing that would end a
                // PostgreSQL transaction.
                let plain = !on_branch
                    && matches!(
                        changes.as_slice(),
                        [TabularChange::Update { claims_location: None, .. }]
                            | [TabularChange::Create(_)]
                    );
                if !plain && let Err(e) = sqlx::query("SAVEPOINT floe_commit").execute(&mut *tx).await {
                    return all(failed(e));
                }
                let applied = write_tabular_changes(&mut tx, *ref_id, on_branch, changes, blobs).await;
                match applied {
                    Ok((entries, at)) => {
                        if !plain && let Err(e) = sqlx::query("RELEASE floe_commit").execute(&mut *tx).await {
                            return all(failed(e));
                        }
                        if !entries.is_empty() {
                            recorded.push((i, entries, at.unwrap_or_else(Utc::now)));
                        }
                    }
                    Err(e) => {
                        if plain {
                            // Nothing was written; a failure of the database itself may have
                            // ended the transaction.
                            if matches!(
                                e.kind,
                                crate::error::ErrorKind::Internal | crate::error::ErrorKind::Unavailable
                            ) {
                                return all(e);
                            }
                        } else if let Err(e) = sqlx::raw_sql("ROLLBACK TO floe_commit; RELEASE floe_commit")
                            .execute(&mut *tx)
                            .await
                        {
                            return all(failed(e));
                        }
                        answer(waiting, i, e);
                    }
                }
            }
            // Commits are recorded in the order they were queued.
            recorded.sort_by_key(|(i, _, _)| *i);
            for line in &lines {
                let Some(Ok(head)) = heads.get_mut(line) else {
                    continue;
                };
                let commits: Vec<Recorded<'_>> = recorded
                    .iter()
                    .filter(|(i, _, _)| batch[*i].0 == *line)
                    .map(|(i, entries, at)| Recorded {
                        meta: &batch[*i].3,
                        entries,
                        at: *at,
                        merged: None,
                    })
                    .collect();
                match write_commits(&mut tx, *line, head, &commits).await {
                    Ok(_) => {}
                    Err(e) if e.message == STALE_HEAD => {
                        if let Err(e) = tx.rollback().await {
                            return all(failed(e));
                        }
                        return Group::Stale;
                    }
                    Err(e) => return all(e),
                }
            }
            match tx.commit().await {
                Ok(()) => {
                    for (line, head) in heads {
                        match head {
                            Ok(head) => {
                                cache.insert(line, head);
                            }
                            Err(_) => {
                                cache.remove(&line);
                            }
                        }
                    }
                    Group::Done(batch.iter().map(|_| Ok(())).collect())
                }
                Err(e) => {
                    cache.clear();
                    all(failed(e))
                }
            }
        }
    };
}

pub(crate) use stamp;
