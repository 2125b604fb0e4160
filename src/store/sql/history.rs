//! Commit history: recording commits on a line (its row locked, its head checked), with the
//! history rows of every namespace and table change, one multi-row insert per table.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use chrono::{DateTime, Utc};
        use sqlx::Row as _;
        use uuid::Uuid;

        use crate::error::{Entity, Error, Result};
        use crate::model::{CommitChange, CommitId, CommitMeta, RefId};
        use crate::store::{HistoryEntry, db_error, not_found};

        /// Takes the line's next seq and records one commit, with a history entry per change, on
        /// a connection inside the change's own transaction.
        pub(crate) async fn record_commit(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            line: RefId,
            meta: &CommitMeta,
            entries: &[HistoryEntry],
            at: DateTime<Utc>,
        ) -> Result<CommitId> {
            record_commit_with(conn, line, meta, entries, at, None).await
        }

        /// `record_commit`, with a second parent for a merge (its id and generation).
        pub(super) async fn record_commit_with(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            line: RefId,
            meta: &CommitMeta,
            entries: &[HistoryEntry],
            at: DateTime<Utc>,
            merged: Option<(CommitId, i64)>,
        ) -> Result<CommitId> {
            let mut head = lock_line(conn, line).await?;
            let ids = write_commits(
                conn,
                line,
                &mut head,
                &[Recorded {
                    meta,
                    entries,
                    at,
                    merged,
                }],
            )
            .await?;
            Ok(ids[0])
        }

        /// A line's head, read with its row locked (until the transaction ends on PostgreSQL;
        /// SQLite's single writer serializes anyway): every commit on a line takes it, so the
        /// line's commits are ordered and its head moves by one writer at a time.
        #[derive(Clone)]
        pub(super) struct LineHead {
            pub(super) warehouse: Uuid,
            /// The branch's name (events carry it).
            pub(super) name: String,
            pub(super) parent: Option<(RefId, i64)>,
            pub(super) seq: i64,
            pub(super) commit: Option<CommitId>,
            pub(super) generation: i64,
        }

        /// Locks a line's row and reads its head; a line that is not a live branch is a conflict.
        pub(super) async fn lock_line(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            line: RefId,
        ) -> Result<LineHead> {
            let failed = |e| db_error("recording a commit", e);
            let row = sqlx::query(concat!(
                "SELECT warehouse_id, name, kind, head_seq, head_commit, head_generation, \
                 retired_at, parent_id, parent_seq FROM refs WHERE id = $1",
                $for_update
            ))
            .bind(line.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(failed)?;
            let Some(row) = row else {
                return Err(not_found(Entity::Ref, line));
            };
            let kind: String = row.try_get("kind").map_err(failed)?;
            let retired: Option<DateTime<Utc>> = row.try_get("retired_at").map_err(failed)?;
            if kind != "branch" || retired.is_some() {
                return Err(Error::conflict(
                    "the branch was deleted or reset meanwhile; nothing was changed",
                ));
            }
            Ok(LineHead {
                warehouse: row.try_get("warehouse_id").map_err(failed)?,
                name: row.try_get("name").map_err(failed)?,
                parent: match (
                    row.try_get::<Option<Uuid>, _>("parent_id")
                        .map_err(failed)?,
                    row.try_get::<Option<i64>, _>("parent_seq")
                        .map_err(failed)?,
                ) {
                    (Some(parent), Some(seq)) => Some((RefId(parent), seq)),
                    _ => None,
                },
                seq: row.try_get("head_seq").map_err(failed)?,
                commit: row
                    .try_get::<Option<Uuid>, _>("head_commit")
                    .map_err(failed)?
                    .map(CommitId),
                generation: row.try_get("head_generation").map_err(failed)?,
            })
        }

        /// One commit to record on a line: its message and author, its history entries, its time,
        /// and for a merge the second parent (its id and generation).
        pub(super) struct Recorded<'a> {
            pub(super) meta: &'a CommitMeta,
            pub(super) entries: &'a [HistoryEntry],
            pub(super) at: DateTime<Utc>,
            pub(super) merged: Option<(CommitId, i64)>,
        }

        /// Rows per multi-row insert (well below both databases' limits on parameters).
        pub(super) const ROWS_PER_INSERT: usize = 500;

        /// Tables whose pointers one statement moves at most (7 values each).
        pub(super) const SWAPS_PER_STATEMENT: usize = 64;

        /// Records commits on a line whose row is locked in this transaction, in order, each the
        /// next seq and the parent of the next: one multi-row insert for the commits, one per
        /// history table, and one update of the head, however many commits (a group commit
        /// records all of a line's commits at once); on PostgreSQL all in one statement. `head`
        /// is what the caller knows of the line's head: read under the lock, or remembered by a
        /// commit writer from its last group. The head moves only if it is still that one;
        /// otherwise this fails with `STALE_HEAD` and the caller rolls back (rows that collided
        /// with the line's newer ones were skipped, not raised, so that the check decides).
        pub(super) async fn write_commits(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            line: RefId,
            head: &mut LineHead,
            commits: &[Recorded<'_>],
        ) -> Result<Vec<CommitId>> {
            type Db = <$store as crate::store::sql::BackendDb>::Db;
            let failed = |e| db_error("recording a commit", e);
            let json = |e| Error::internal("recording a commit", e);
            if commits.is_empty() {
                return Ok(Vec::new());
            }
            let expected_seq = head.seq;
            let mut rows = Vec::with_capacity(commits.len());
            let mut namespace_rows = Vec::new();
            let mut tabular_rows = Vec::new();
            let mut events = Vec::new();
            for commit in commits {
                let seq = head.seq + 1;
                let mut generation = head.generation + 1;
                let mut parents: Vec<CommitId> = head.commit.into_iter().collect();
                if let Some((other, other_generation)) = commit.merged {
                    parents.push(other);
                    generation = generation.max(other_generation + 1);
                }
                let id = CommitId::new();
                let changes: Vec<CommitChange> =
                    commit.entries.iter().map(HistoryEntry::change).collect();
                let described: Vec<(CommitChange, Option<Uuid>)> = commit
                    .entries
                    .iter()
                    .zip(&changes)
                    .map(|(entry, change)| (change.clone(), entry.uuid()))
                    .collect();
                events.extend(crate::model::events::commit_events(
                    head.warehouse,
                    &head.name,
                    id.0,
                    &commit.meta.event,
                    &commit.meta.author,
                    &commit.meta.request_id,
                    &commit.meta.event_data,
                    &described,
                    commit.at,
                ));
                rows.push(CommitRow {
                    id,
                    seq,
                    parents: serde_json::to_string(&parents).map_err(json)?,
                    generation,
                    message: commit.meta.message.clone(),
                    author: commit.meta.author.clone(),
                    at: commit.at,
                    changes: serde_json::to_string(&changes).map_err(json)?,
                });
                for entry in commit.entries {
                    match entry {
                        HistoryEntry::Namespace { .. } => namespace_rows.push((seq, entry)),
                        HistoryEntry::Tabular { .. } => tabular_rows.push((seq, entry)),
                    }
                }
                head.seq = seq;
                head.commit = Some(id);
                head.generation = generation;
            }
            let warehouse = head.warehouse;
            let mut namespace_values = Vec::with_capacity(namespace_rows.len());
            for (seq, entry) in &namespace_rows {
                if let HistoryEntry::Namespace {
                    ident, properties, ..
                } = entry
                {
                    let parent = ident.parent().map(|p| p.joined()).unwrap_or_default();
                    let props = serde_json::to_string(&properties.clone().unwrap_or_default())
                        .map_err(json)?;
                    namespace_values.push((ident.joined(), *seq, parent, props, entry.dropped()));
                }
            }
            let fits_one_statement =
                <$store as crate::store::sql::BackendDb>::WRITES_IN_ONE_STATEMENT
                    && rows.len() <= ROWS_PER_INSERT
                    && namespace_values.len() <= ROWS_PER_INSERT
                    && tabular_rows.len() <= ROWS_PER_INSERT
                    && events.len() <= ROWS_PER_INSERT;
            if fits_one_statement {
                let mut statement = sqlx::QueryBuilder::<Db>::new("WITH c AS (");
                insert_commits(&mut statement, warehouse, line, &rows);
                if !namespace_values.is_empty() {
                    statement.push("), n AS (");
                    insert_namespace_history(&mut statement, line, &namespace_values);
                }
                if !tabular_rows.is_empty() {
                    statement.push("), t AS (");
                    insert_tabular_history(&mut statement, line, &tabular_rows);
                }
                if !events.is_empty() {
                    statement.push("), e AS (");
                    super::events::insert_events(&mut statement, &events);
                }
                statement.push(") UPDATE refs SET head_seq = ");
                statement.push_bind(head.seq);
                statement.push(", head_commit = ");
                statement.push_bind(head.commit.map(|c| c.0));
                statement.push(", head_generation = ");
                statement.push_bind(head.generation);
                statement.push(" WHERE id = ");
                statement.push_bind(line.0);
                statement.push(" AND head_seq = ");
                statement.push_bind(expected_seq);
                statement.push(" AND retired_at IS NULL");
                let done = statement
                    .build()
                    .execute(&mut *conn)
                    .await
                    .map_err(failed)?;
                if done.rows_affected() != 1 {
                    return Err(stale_head());
                }
                return Ok(rows.iter().map(|r| r.id).collect());
            }
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let mut insert = sqlx::QueryBuilder::<Db>::new("");
                insert_commits(&mut insert, warehouse, line, chunk);
                insert.build().execute(&mut *conn).await.map_err(failed)?;
            }
            for chunk in namespace_values.chunks(ROWS_PER_INSERT) {
                let mut insert = sqlx::QueryBuilder::<Db>::new("");
                insert_namespace_history(&mut insert, line, chunk);
                insert.build().execute(&mut *conn).await.map_err(failed)?;
            }
            for chunk in tabular_rows.chunks(ROWS_PER_INSERT) {
                let mut insert = sqlx::QueryBuilder::<Db>::new("");
                insert_tabular_history(&mut insert, line, chunk);
                insert.build().execute(&mut *conn).await.map_err(failed)?;
            }
            // Events after everything they describe (on PostgreSQL a table's events then number
            // in the order its commits land: the table's row was taken first).
            for chunk in events.chunks(ROWS_PER_INSERT) {
                let mut insert = sqlx::QueryBuilder::<Db>::new("");
                super::events::insert_events(&mut insert, chunk);
                insert.build().execute(&mut *conn).await.map_err(failed)?;
            }
            let done = sqlx::query(
                "UPDATE refs SET head_seq = $2, head_commit = $3, head_generation = $4 \
                 WHERE id = $1 AND head_seq = $5 AND retired_at IS NULL",
            )
            .bind(line.0)
            .bind(head.seq)
            .bind(head.commit.map(|c| c.0))
            .bind(head.generation)
            .bind(expected_seq)
            .execute(&mut *conn)
            .await
            .map_err(failed)?;
            if done.rows_affected() != 1 {
                return Err(stale_head());
            }
            Ok(rows.iter().map(|r| r.id).collect())
        }

        /// A commit row as `write_commits` inserts it.
        pub(super) struct CommitRow {
            id: CommitId,
            seq: i64,
            parents: String,
            generation: i64,
            message: String,
            author: String,
            at: DateTime<Utc>,
            changes: String,
        }

        // The inserts of `write_commits`, each one multi-row `INSERT` appended to `statement` (alone,
        // or inside a `WITH`). Rows that collide with existing ones are skipped: only a head
        // remembered from an earlier group and gone stale makes them collide, and then the head
        // check fails and the transaction is rolled back.

        pub(super) fn insert_commits(
            statement: &mut sqlx::QueryBuilder<<$store as crate::store::sql::BackendDb>::Db>,
            warehouse: Uuid,
            line: RefId,
            rows: &[CommitRow],
        ) {
            statement.push(
                "INSERT INTO commits (id, warehouse_id, line_id, seq, parents, generation, \
                 message, author, created_at, changes) ",
            );
            statement.push_values(rows, |mut row, c| {
                row.push_bind(c.id.0)
                    .push_bind(warehouse)
                    .push_bind(line.0)
                    .push_bind(c.seq)
                    .push_bind(c.parents.clone())
                    .push_bind(c.generation)
                    .push_bind(c.message.clone())
                    .push_bind(c.author.clone())
                    .push_bind(c.at)
                    .push_bind(c.changes.clone());
            });
            statement.push(" ON CONFLICT DO NOTHING");
        }

        /// Namespace history rows: name, seq, parent name, properties (JSON), dropped.
        pub(super) fn insert_namespace_history(
            statement: &mut sqlx::QueryBuilder<<$store as crate::store::sql::BackendDb>::Db>,
            line: RefId,
            rows: &[(String, i64, String, String, bool)],
        ) {
            statement.push(
                "INSERT INTO namespace_history (line_id, name, seq, parent_name, properties, \
                 dropped) ",
            );
            statement.push_values(rows, |mut row, (name, seq, parent, props, dropped)| {
                row.push_bind(line.0)
                    .push_bind(name.clone())
                    .push_bind(*seq)
                    .push_bind(parent.clone())
                    .push_bind(props.clone())
                    .push_bind(*dropped);
            });
            statement.push(" ON CONFLICT DO NOTHING");
        }

        pub(super) fn insert_tabular_history(
            statement: &mut sqlx::QueryBuilder<<$store as crate::store::sql::BackendDb>::Db>,
            line: RefId,
            rows: &[(i64, &HistoryEntry)],
        ) {
            statement.push(
                "INSERT INTO tabular_history (line_id, namespace, name, seq, kind, tabular_id, \
                 uuid, location, metadata_location, version, dropped) ",
            );
            statement.push_values(rows, |mut row, (seq, entry)| {
                if let HistoryEntry::Tabular {
                    ident,
                    kind,
                    id,
                    uuid,
                    location,
                    metadata_location,
                    version,
                    ..
                } = entry
                {
                    row.push_bind(line.0)
                        .push_bind(ident.namespace.joined())
                        .push_bind(ident.name.clone())
                        .push_bind(*seq)
                        .push_bind(kind.as_str())
                        .push_bind(id.0)
                        .push_bind(*uuid)
                        .push_bind(location.clone())
                        .push_bind(metadata_location.clone())
                        .push_bind(*version)
                        .push_bind(entry.dropped());
                }
            });
            statement.push(" ON CONFLICT DO NOTHING");
        }

        /// The line moved since its head was read: a commit of this writer that read a head it
        /// had cached redoes its group with the head read under lock.
        pub(super) fn stale_head() -> Error {
            Error::new(crate::error::ErrorKind::Conflict, STALE_HEAD)
        }

        pub(super) const STALE_HEAD: &str =
            "the branch moved while this commit was being recorded; nothing was changed";
    };
}

pub(crate) use stamp;
