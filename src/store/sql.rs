//! The SQL both backends share. The statements are written in the common subset of PostgreSQL and
//! SQLite (`$N` parameters, `RETURNING`, `ON CONFLICT`), and the trait implementations are stamped
//! out once per backend by [`impl_sql_store!`], so the two cannot drift apart. A backend struct must
//! have a `read` and a `write` pool (the same pool on PostgreSQL; SQLite has one writer connection).
//! The one dialect difference is passed in: the row-lock suffix of a read-modify-write select
//! (`" FOR NO KEY UPDATE"` on PostgreSQL, which leaves foreign keys pointing at the row free to be
//! checked, so inserts of rows that reference it do not deadlock against it; nothing on SQLite,
//! whose single writer already serializes).

macro_rules! impl_sql_store {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::Row as _;
        use sqlx::types::Json;
        use uuid::Uuid;

        use crate::error::{Entity, Error, Result};
        use crate::model::{
            AccessKey, Commit, CommitChange, CommitId, CommitMeta, ForkPoint, Namespace,
            NamespaceId, NamespaceIdent, Page, PageRequest, Project, ProjectId, Properties, Ref,
            RefId, RefKind, SecretId, ServerInfo, StorageProfile, Tabular, TabularId, TabularIdent,
            TabularKind, Warehouse, WarehouseId,
        };
        use crate::store::{
            AccessKeyStore, HistoryEntry, MergeChange, NamespaceStore, ProjectStore, RefStore, SealedSecret,
            SealedSecretStore, ServerStore, TabularChange, TabularStore, WarehouseStore, compress,
            db_error, decompress, is_foreign_key_violation, is_unique_violation, not_found,
        };

        /// The columns `ref_from_row` reads.
        const REF_COLUMNS: &str = "id, warehouse_id, name, kind, created_at, parent_id, \
            parent_seq, head_seq, head_commit, head_generation";


        fn project_from_row(row: &$row) -> std::result::Result<Project, sqlx::Error> {
            Ok(Project {
                id: ProjectId(row.try_get("id")?),
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn warehouse_from_row(row: &$row) -> std::result::Result<Warehouse, sqlx::Error> {
            let profile: Json<StorageProfile> = row.try_get("storage_profile")?;
            let secret: Option<Uuid> = row.try_get("credential_secret_id")?;
            Ok(Warehouse {
                id: WarehouseId(row.try_get("id")?),
                project_id: ProjectId(row.try_get("project_id")?),
                name: row.try_get("name")?,
                storage_profile: profile.0,
                credential_secret_id: secret.map(SecretId),
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn ref_from_row(row: &$row) -> std::result::Result<Ref, sqlx::Error> {
            let kind: String = row.try_get("kind")?;
            Ok(Ref {
                id: RefId(row.try_get("id")?),
                warehouse_id: WarehouseId(row.try_get("warehouse_id")?),
                name: row.try_get("name")?,
                kind: RefKind::parse(&kind).ok_or_else(|| {
                    sqlx::Error::Decode(format!("unknown ref kind {kind:?}").into())
                })?,
                created_at: row.try_get("created_at")?,
                parent: match (
                    row.try_get::<Option<Uuid>, _>("parent_id")?,
                    row.try_get::<Option<i64>, _>("parent_seq")?,
                ) {
                    (Some(line), Some(seq)) => Some((RefId(line), seq)),
                    _ => None,
                },
                head_seq: row.try_get("head_seq")?,
                head_commit: row.try_get::<Option<Uuid>, _>("head_commit")?.map(CommitId),
                head_generation: row.try_get("head_generation")?,
            })
        }

        fn commit_from_row(row: &$row) -> Result<Commit> {
            let decode = |e| db_error("decoding a commit", e);
            let parents: String = row.try_get("parents").map_err(decode)?;
            let changes: String = row.try_get("changes").map_err(decode)?;
            let json = |e| Error::internal("decoding a commit", e);
            Ok(Commit {
                id: CommitId(row.try_get("id").map_err(decode)?),
                warehouse_id: WarehouseId(row.try_get("warehouse_id").map_err(decode)?),
                line: RefId(row.try_get("line_id").map_err(decode)?),
                seq: row.try_get("seq").map_err(decode)?,
                parents: serde_json::from_str(&parents).map_err(json)?,
                generation: row.try_get("generation").map_err(decode)?,
                message: row.try_get("message").map_err(decode)?,
                author: row.try_get("author").map_err(decode)?,
                created_at: row.try_get("created_at").map_err(decode)?,
                changes: serde_json::from_str::<Vec<CommitChange>>(&changes).map_err(json)?,
            })
        }

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
        async fn record_commit_with(
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
                &[Recorded { meta, entries, at, merged }],
            )
            .await?;
            Ok(ids[0])
        }

        /// A line's head, read with its row locked (until the transaction ends on PostgreSQL;
        /// SQLite's single writer serializes anyway): every commit on a line takes it, so the
        /// line's commits are ordered and its head moves by one writer at a time.
        #[derive(Clone)]
        struct LineHead {
            warehouse: Uuid,
            parent: Option<(RefId, i64)>,
            seq: i64,
            commit: Option<CommitId>,
            generation: i64,
        }

        /// Locks a line's row and reads its head; a line that is not a live branch is a conflict.
        async fn lock_line(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            line: RefId,
        ) -> Result<LineHead> {
            let failed = |e| db_error("recording a commit", e);
            let row = sqlx::query(concat!(
                "SELECT warehouse_id, kind, head_seq, head_commit, head_generation, retired_at, \
                 parent_id, parent_seq FROM refs WHERE id = $1",
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
                parent: match (
                    row.try_get::<Option<Uuid>, _>("parent_id").map_err(failed)?,
                    row.try_get::<Option<i64>, _>("parent_seq").map_err(failed)?,
                ) {
                    (Some(parent), Some(seq)) => Some((RefId(parent), seq)),
                    _ => None,
                },
                seq: row.try_get("head_seq").map_err(failed)?,
                commit: row.try_get::<Option<Uuid>, _>("head_commit").map_err(failed)?.map(CommitId),
                generation: row.try_get("head_generation").map_err(failed)?,
            })
        }

        /// One commit to record on a line: its message and author, its history entries, its time,
        /// and for a merge the second parent (its id and generation).
        struct Recorded<'a> {
            meta: &'a CommitMeta,
            entries: &'a [HistoryEntry],
            at: DateTime<Utc>,
            merged: Option<(CommitId, i64)>,
        }

        /// Rows per multi-row insert (well below both databases' limits on parameters).
        const ROWS_PER_INSERT: usize = 500;
        /// Tables whose pointers one statement moves at most (7 values each).
        const SWAPS_PER_STATEMENT: usize = 64;

        /// Records commits on a line whose row is locked in this transaction, in order, each the
        /// next seq and the parent of the next: one multi-row insert for the commits, one per
        /// history table, and one update of the head, however many commits (a group commit
        /// records all of a line's commits at once); on PostgreSQL all in one statement. `head`
        /// is what the caller knows of the line's head: read under the lock, or remembered by a
        /// commit writer from its last group. The head moves only if it is still that one;
        /// otherwise this fails with `STALE_HEAD` and the caller rolls back (rows that collided
        /// with the line's newer ones were skipped, not raised, so that the check decides).
        async fn write_commits(
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
                if let HistoryEntry::Namespace { ident, properties, .. } = entry {
                    let parent = ident.parent().map(|p| p.joined()).unwrap_or_default();
                    let props = serde_json::to_string(&properties.clone().unwrap_or_default())
                        .map_err(json)?;
                    namespace_values.push((ident.joined(), *seq, parent, props, entry.dropped()));
                }
            }
            let fits_one_statement = <$store as crate::store::sql::BackendDb>::WRITES_IN_ONE_STATEMENT
                && rows.len() <= ROWS_PER_INSERT
                && namespace_values.len() <= ROWS_PER_INSERT
                && tabular_rows.len() <= ROWS_PER_INSERT;
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
                let done = statement.build().execute(&mut *conn).await.map_err(failed)?;
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
        struct CommitRow {
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

        fn insert_commits(
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
        fn insert_namespace_history(
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

        fn insert_tabular_history(
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
        fn stale_head() -> Error {
            Error::new(crate::error::ErrorKind::Conflict, STALE_HEAD)
        }

        const STALE_HEAD: &str =
            "the branch moved while this commit was being recorded; nothing was changed";

        fn namespace_from_row(row: &$row) -> std::result::Result<Namespace, Error> {
            let decode = |e| db_error("decoding a namespace", e);
            let name: String = row.try_get("name").map_err(decode)?;
            let properties: Json<Properties> = row.try_get("properties").map_err(decode)?;
            Ok(Namespace {
                id: NamespaceId(row.try_get("id").map_err(decode)?),
                warehouse_id: WarehouseId(row.try_get("warehouse_id").map_err(decode)?),
                ref_id: RefId(row.try_get("ref_id").map_err(decode)?),
                ident: NamespaceIdent::from_joined(&name).map_err(|e| {
                    Error::internal("stored namespace name is invalid", anyhow::anyhow!("{e}"))
                })?,
                properties: properties.0,
                created_at: row.try_get("created_at").map_err(decode)?,
                updated_at: row.try_get("updated_at").map_err(decode)?,
            })
        }

        #[async_trait]
        impl ServerStore for $store {
            async fn server_info(&self) -> Result<Option<ServerInfo>> {
                let row = sqlx::query(
                    "SELECT server_id, default_project_id, bootstrapped_at FROM server_info",
                )
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading server info", e))?;
                row.map(|row| {
                    Ok(ServerInfo {
                        server_id: row.try_get("server_id")?,
                        default_project_id: ProjectId(row.try_get("default_project_id")?),
                        bootstrapped_at: row.try_get("bootstrapped_at")?,
                    })
                })
                .transpose()
                .map_err(|e| db_error("decoding server info", e))
            }

            async fn bootstrap(&self, info: &ServerInfo, project: &Project) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("bootstrapping", e))?;
                let exists = sqlx::query("SELECT 1 FROM server_info")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| db_error("bootstrapping", e))?;
                if exists.is_some() {
                    return Err(Error::conflict("the server is already bootstrapped"));
                }
                insert_project(&mut *tx, project).await?;
                let inserted = sqlx::query(
                    "INSERT INTO server_info (singleton, server_id, default_project_id, bootstrapped_at) \
                     VALUES (1, $1, $2, $3)",
                )
                .bind(info.server_id)
                .bind(info.default_project_id.0)
                .bind(info.bootstrapped_at)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err(Error::conflict("the server is already bootstrapped"));
                    }
                    Err(e) => return Err(db_error("bootstrapping", e)),
                }
                tx.commit().await.map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::conflict("the server is already bootstrapped")
                    } else {
                        db_error("bootstrapping", e)
                    }
                })
            }

            async fn health(&self) -> Result<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.read)
                    .await
                    .map_err(|e| Error::unavailable("the database does not answer", e))?;
                Ok(())
            }

            fn backend_name(&self) -> &'static str {
                Self::BACKEND
            }
        }

        async fn insert_project<'e, E>(executor: E, project: &Project) -> Result<()>
        where
            E: sqlx::Executor<'e, Database = <$store as crate::store::sql::BackendDb>::Db>,
        {
            sqlx::query(
                "INSERT INTO projects (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(project.id.0)
            .bind(&project.name)
            .bind(project.created_at)
            .bind(project.updated_at)
            .execute(executor)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::already_exists(
                        Entity::Project,
                        format!("project {:?} already exists", project.name),
                    )
                } else {
                    db_error("creating a project", e)
                }
            })?;
            Ok(())
        }

        #[async_trait]
        impl ProjectStore for $store {
            async fn create_project(&self, project: &Project) -> Result<()> {
                insert_project(&self.write, project).await
            }

            async fn list_projects(&self) -> Result<Vec<Project>> {
                let rows = sqlx::query("SELECT id, name, created_at, updated_at FROM projects ORDER BY name")
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing projects", e))?;
                rows.iter()
                    .map(project_from_row)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| db_error("decoding projects", e))
            }

            async fn get_project(&self, id: ProjectId) -> Result<Option<Project>> {
                let row = sqlx::query("SELECT id, name, created_at, updated_at FROM projects WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a project", e))?;
                row.as_ref()
                    .map(project_from_row)
                    .transpose()
                    .map_err(|e| db_error("decoding a project", e))
            }

            async fn rename_project(
                &self,
                id: ProjectId,
                name: &str,
                at: DateTime<Utc>,
            ) -> Result<()> {
                let done = sqlx::query("UPDATE projects SET name = $2, updated_at = $3 WHERE id = $1")
                    .bind(id.0)
                    .bind(name)
                    .bind(at)
                    .execute(&self.write)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            Error::already_exists(
                                Entity::Project,
                                format!("project {name:?} already exists"),
                            )
                        } else {
                            db_error("renaming a project", e)
                        }
                    })?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::Project, id));
                }
                Ok(())
            }

            async fn delete_project(&self, id: ProjectId) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("deleting a project", e))?;
                let is_default =
                    sqlx::query("SELECT 1 FROM server_info WHERE default_project_id = $1")
                        .bind(id.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| db_error("deleting a project", e))?;
                if is_default.is_some() {
                    return Err(Error::not_empty(
                        Entity::Project,
                        "the default project cannot be deleted",
                    ));
                }
                let has_warehouses = sqlx::query("SELECT 1 FROM warehouses WHERE project_id = $1 LIMIT 1")
                    .bind(id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| db_error("deleting a project", e))?;
                if has_warehouses.is_some() {
                    return Err(Error::not_empty(
                        Entity::Project,
                        format!("project {id} still has warehouses; delete them first"),
                    ));
                }
                let done = sqlx::query("DELETE FROM projects WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            Error::not_empty(
                                Entity::Project,
                                format!("project {id} still has warehouses; delete them first"),
                            )
                        } else {
                            db_error("deleting a project", e)
                        }
                    })?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::Project, id));
                }
                tx.commit()
                    .await
                    .map_err(|e| db_error("deleting a project", e))
            }
        }

        #[async_trait]
        impl WarehouseStore for $store {
            async fn create_warehouse(&self, warehouse: &Warehouse, main: &Ref) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("creating a warehouse", e))?;
                let project = sqlx::query("SELECT 1 FROM projects WHERE id = $1")
                    .bind(warehouse.project_id.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| db_error("creating a warehouse", e))?;
                if project.is_none() {
                    return Err(not_found(Entity::Project, warehouse.project_id));
                }
                sqlx::query("INSERT INTO warehouses (id, project_id, name, storage_profile, credential_secret_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(warehouse.id.0)
                .bind(warehouse.project_id.0)
                .bind(&warehouse.name)
                .bind(Json(&warehouse.storage_profile))
                .bind(warehouse.credential_secret_id.map(|s| s.0))
                .bind(warehouse.created_at)
                .bind(warehouse.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::already_exists(
                            Entity::Warehouse,
                            format!("warehouse {:?} already exists in this project", warehouse.name),
                        )
                    } else if is_foreign_key_violation(&e) {
                        not_found(Entity::Project, warehouse.project_id)
                    } else {
                        db_error("creating a warehouse", e)
                    }
                })?;
                // No two warehouses share storage: checked here, where it is final (creations
                // are serialized by the warehouse-storage lock; SQLite has one writer).
                sqlx::query($location_lock)
                    .bind("floe-warehouse-storage")
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error("creating a warehouse", e))?;
                let others: Vec<(String, Json<StorageProfile>)> =
                    sqlx::query_as("SELECT name, storage_profile FROM warehouses WHERE id <> $1")
                        .bind(warehouse.id.0)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(|e| db_error("creating a warehouse", e))?;
                if let Some((name, _)) = others
                    .iter()
                    .find(|(_, profile)| profile.0.overlaps(&warehouse.storage_profile))
                {
                    return Err(Error::conflict(format!(
                        "the storage of warehouse {name:?} overlaps this one's; every warehouse \
                         needs storage of its own"
                    )));
                }
                let root = main.head_commit.unwrap_or_else(CommitId::new);
                sqlx::query(
                    "INSERT INTO refs (id, warehouse_id, name, kind, created_at, head_seq, \
                     head_commit, head_generation) VALUES ($1, $2, $3, $4, $5, 0, $6, 0)",
                )
                .bind(main.id.0)
                .bind(main.warehouse_id.0)
                .bind(&main.name)
                .bind(main.kind.as_str())
                .bind(main.created_at)
                .bind(root.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("creating a warehouse's main branch", e))?;
                // The root commit every branch of the warehouse descends from.
                sqlx::query(
                    "INSERT INTO commits (id, warehouse_id, line_id, seq, parents, generation, \
                     message, author, created_at, changes) \
                     VALUES ($1, $2, $3, 0, '[]', 0, 'create warehouse', 'floe', $4, '[]')",
                )
                .bind(root.0)
                .bind(main.warehouse_id.0)
                .bind(main.id.0)
                .bind(main.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("creating a warehouse's root commit", e))?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("creating a warehouse", e))
            }

            async fn list_warehouses(&self, project: Option<ProjectId>) -> Result<Vec<Warehouse>> {
                let rows = match project {
                    Some(project) => sqlx::query("SELECT id, project_id, name, storage_profile, credential_secret_id, created_at, updated_at FROM warehouses WHERE project_id = $1 ORDER BY name, id")
                    .bind(project.0)
                    .fetch_all(&self.read)
                    .await,
                    None => sqlx::query("SELECT id, project_id, name, storage_profile, credential_secret_id, created_at, updated_at FROM warehouses ORDER BY name, id")
                    .fetch_all(&self.read)
                    .await,
                }
                .map_err(|e| db_error("listing warehouses", e))?;
                rows.iter()
                    .map(warehouse_from_row)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| db_error("decoding warehouses", e))
            }

            async fn get_warehouse(&self, id: WarehouseId) -> Result<Option<Warehouse>> {
                let row = sqlx::query("SELECT id, project_id, name, storage_profile, credential_secret_id, created_at, updated_at FROM warehouses WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a warehouse", e))?;
                row.as_ref()
                    .map(warehouse_from_row)
                    .transpose()
                    .map_err(|e| db_error("decoding a warehouse", e))
            }

            async fn get_warehouse_by_name(
                &self,
                project: ProjectId,
                name: &str,
            ) -> Result<Option<Warehouse>> {
                let row = sqlx::query("SELECT id, project_id, name, storage_profile, credential_secret_id, created_at, updated_at FROM warehouses WHERE project_id = $1 AND name = $2")
                .bind(project.0)
                .bind(name)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a warehouse", e))?;
                row.as_ref()
                    .map(warehouse_from_row)
                    .transpose()
                    .map_err(|e| db_error("decoding a warehouse", e))
            }

            async fn rename_warehouse(
                &self,
                id: WarehouseId,
                name: &str,
                at: DateTime<Utc>,
            ) -> Result<()> {
                let done =
                    sqlx::query("UPDATE warehouses SET name = $2, updated_at = $3 WHERE id = $1")
                        .bind(id.0)
                        .bind(name)
                        .bind(at)
                        .execute(&self.write)
                        .await
                        .map_err(|e| {
                            if is_unique_violation(&e) {
                                Error::already_exists(
                                    Entity::Warehouse,
                                    format!("warehouse {name:?} already exists in this project"),
                                )
                            } else {
                                db_error("renaming a warehouse", e)
                            }
                        })?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::Warehouse, id));
                }
                Ok(())
            }

            async fn update_warehouse_storage(
                &self,
                id: WarehouseId,
                profile: &StorageProfile,
                credential: Option<SecretId>,
                at: DateTime<Utc>,
            ) -> Result<()> {
                let failed = |e| db_error("updating a warehouse's storage", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                // An S3 warehouse may move to another endpoint: there too, its storage must not
                // overlap another warehouse's.
                sqlx::query($location_lock)
                    .bind("floe-warehouse-storage")
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                let others: Vec<(String, Json<StorageProfile>)> =
                    sqlx::query_as("SELECT name, storage_profile FROM warehouses WHERE id <> $1")
                        .bind(id.0)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(failed)?;
                if let Some((name, _)) = others
                    .iter()
                    .find(|(_, other)| other.0.overlaps(profile))
                {
                    return Err(Error::conflict(format!(
                        "the storage of warehouse {name:?} overlaps this one's; every warehouse \
                         needs storage of its own"
                    )));
                }
                let done = sqlx::query(
                    "UPDATE warehouses SET storage_profile = $2, credential_secret_id = $3, updated_at = $4 \
                     WHERE id = $1",
                )
                .bind(id.0)
                .bind(Json(profile))
                .bind(credential.map(|s| s.0))
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::Warehouse, id));
                }
                tx.commit().await.map_err(failed)?;
                Ok(())
            }

            async fn delete_warehouse(&self, id: WarehouseId) -> Result<()> {
                let not_empty = || {
                    Error::not_empty(
                        Entity::Warehouse,
                        format!("warehouse {id} is not empty; drop its namespaces first"),
                    )
                };
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("deleting a warehouse", e))?;
                let has_namespaces =
                    sqlx::query("SELECT 1 FROM namespaces WHERE warehouse_id = $1 LIMIT 1")
                        .bind(id.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| db_error("deleting a warehouse", e))?;
                if has_namespaces.is_some() {
                    return Err(not_empty());
                }
                for statement in [
                    "DELETE FROM access_keys WHERE warehouse_id = $1",
                    "DELETE FROM folder_claims WHERE warehouse_id = $1",
                ] {
                    sqlx::query(statement)
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db_error("deleting a warehouse", e))?;
                }
                // Its history goes with it: every line's entries and commits, then the lines.
                for statement in [
                    "DELETE FROM tabular_history WHERE line_id IN (SELECT id FROM refs WHERE warehouse_id = $1)",
                    "DELETE FROM namespace_history WHERE line_id IN (SELECT id FROM refs WHERE warehouse_id = $1)",
                    "DELETE FROM commits WHERE warehouse_id = $1",
                ] {
                    sqlx::query(statement)
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db_error("deleting a warehouse", e))?;
                }
                sqlx::query("DELETE FROM refs WHERE warehouse_id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            not_empty()
                        } else {
                            db_error("deleting a warehouse", e)
                        }
                    })?;
                let done = sqlx::query("DELETE FROM warehouses WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            not_empty()
                        } else {
                            db_error("deleting a warehouse", e)
                        }
                    })?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::Warehouse, id));
                }
                tx.commit().await.map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        not_empty()
                    } else {
                        db_error("deleting a warehouse", e)
                    }
                })
            }

            async fn get_ref(&self, warehouse: WarehouseId, name: &str) -> Result<Option<Ref>> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {REF_COLUMNS} FROM refs WHERE warehouse_id = $1 AND name = $2"
                )))
                .bind(warehouse.0)
                .bind(name)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a ref", e))?;
                row.as_ref()
                    .map(ref_from_row)
                    .transpose()
                    .map_err(|e| db_error("decoding a ref", e))
            }
        }

        /// A connection of this backend.
        type Conn = <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection;

        /// The columns `tabular_from_row` reads, of `tabulars t`.
        const TABULAR_COLUMNS: &str = "t.id, t.warehouse_id, t.ref_id, t.kind, t.uuid, \
            t.location, t.metadata_location, t.metadata, t.version, t.created_at, t.updated_at";

        /// A line's warehouse and the point it forked at (`None` for `main`).
        async fn line_info(conn: &mut Conn, line: RefId) -> Result<(Uuid, Option<(RefId, i64)>)> {
            let failed = |e| db_error("reading a branch", e);
            let row = sqlx::query("SELECT warehouse_id, parent_id, parent_seq FROM refs WHERE id = $1")
                .bind(line.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(failed)?;
            let Some(row) = row else {
                return Err(not_found(Entity::Ref, line));
            };
            let parent = match (
                row.try_get::<Option<Uuid>, _>("parent_id").map_err(failed)?,
                row.try_get::<Option<i64>, _>("parent_seq").map_err(failed)?,
            ) {
                (Some(parent), Some(seq)) => Some((RefId(parent), seq)),
                _ => None,
            };
            Ok((row.try_get("warehouse_id").map_err(failed)?, parent))
        }

        /// The line's own live row of a table or view.
        async fn own_tabular(conn: &mut Conn, line: RefId, ident: &TabularIdent) -> Result<Option<Tabular>> {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {TABULAR_COLUMNS} FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id \
                 WHERE n.ref_id = $1 AND n.name = $2 AND t.name = $3"
            )))
            .bind(line.0)
            .bind(ident.namespace.joined())
            .bind(&ident.name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a table", e))?;
            row.as_ref().map(|row| tabular_from_row(row, ident.clone())).transpose()
        }

        /// The latest history entry of a name on a line, at or below `upto` when given.
        async fn tabular_entry(
            conn: &mut Conn,
            line: RefId,
            ident: &TabularIdent,
            upto: Option<i64>,
        ) -> Result<Option<$row>> {
            sqlx::query(
                "SELECT kind, tabular_id, uuid, location, metadata_location, version, dropped \
                 FROM tabular_history WHERE line_id = $1 AND namespace = $2 AND name = $3 \
                 AND seq <= $4 ORDER BY seq DESC LIMIT 1",
            )
            .bind(line.0)
            .bind(ident.namespace.joined())
            .bind(&ident.name)
            .bind(upto.unwrap_or(i64::MAX))
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a table's history", e))
        }

        /// A table or view as a line sees it: at its head (`upto` `None`), or as of a seq. A line
        /// sees its own rows and, for names it never touched, its parent as of the fork. A
        /// version only history still knows comes back with empty `metadata`: its metadata file
        /// has it.
        pub(crate) async fn resolve_tabular(
            conn: &mut Conn,
            line: RefId,
            ident: &TabularIdent,
            upto: Option<i64>,
        ) -> Result<Option<Tabular>> {
            let (mut line, mut upto) = (line, upto);
            loop {
                let Some(seq) = upto else {
                    if let Some(own) = own_tabular(conn, line, ident).await? {
                        return Ok(Some(own));
                    }
                    let (_, parent) = line_info(conn, line).await?;
                    let Some(parent) = parent else {
                        return Ok(None);
                    };
                    if tabular_entry(conn, line, ident, None).await?.is_some() {
                        // Dropped or renamed away on this line.
                        return Ok(None);
                    }
                    (line, upto) = (parent.0, Some(parent.1));
                    continue;
                };
                let Some(entry) = tabular_entry(conn, line, ident, Some(seq)).await? else {
                    let (_, parent) = line_info(conn, line).await?;
                    let Some(parent) = parent else {
                        return Ok(None);
                    };
                    (line, upto) = (parent.0, Some(parent.1));
                    continue;
                };
                let decode = |e| db_error("reading a table's history", e);
                if entry.try_get::<bool, _>("dropped").map_err(decode)? {
                    return Ok(None);
                }
                let id = TabularId(entry.try_get("tabular_id").map_err(decode)?);
                let version: i64 = entry.try_get("version").map_err(decode)?;
                if let Some(own) = own_tabular(conn, line, ident).await?
                    && own.id == id
                    && own.version == version
                {
                    return Ok(Some(own));
                }
                let (warehouse, _) = line_info(conn, line).await?;
                let kind: String = entry.try_get("kind").map_err(decode)?;
                return Ok(Some(Tabular {
                    id,
                    warehouse_id: WarehouseId(warehouse),
                    ref_id: line,
                    ident: ident.clone(),
                    kind: TabularKind::parse(&kind).unwrap_or(TabularKind::Table),
                    uuid: entry.try_get("uuid").map_err(decode)?,
                    location: entry.try_get("location").map_err(decode)?,
                    metadata_location: entry.try_get("metadata_location").map_err(decode)?,
                    metadata: bytes::Bytes::new(),
                    version,
                    created_at: DateTime::<Utc>::UNIX_EPOCH,
                    updated_at: DateTime::<Utc>::UNIX_EPOCH,
                }));
            }
        }

        async fn own_namespace(conn: &mut Conn, line: RefId, ident: &NamespaceIdent) -> Result<Option<Namespace>> {
            let row = sqlx::query(
                "SELECT id, warehouse_id, ref_id, name, properties, created_at, updated_at \
                 FROM namespaces WHERE ref_id = $1 AND name = $2",
            )
            .bind(line.0)
            .bind(ident.joined())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a namespace", e))?;
            row.as_ref().map(namespace_from_row).transpose()
        }

        /// The latest history entry of a namespace on a line: (dropped, properties).
        async fn namespace_entry(
            conn: &mut Conn,
            line: RefId,
            ident: &NamespaceIdent,
            upto: Option<i64>,
        ) -> Result<Option<(bool, Properties)>> {
            let row = sqlx::query(
                "SELECT dropped, properties FROM namespace_history WHERE line_id = $1 \
                 AND name = $2 AND seq <= $3 ORDER BY seq DESC LIMIT 1",
            )
            .bind(line.0)
            .bind(ident.joined())
            .bind(upto.unwrap_or(i64::MAX))
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a namespace's history", e))?;
            let Some(row) = row else {
                return Ok(None);
            };
            let decode = |e| db_error("reading a namespace's history", e);
            let properties: String = row.try_get("properties").map_err(decode)?;
            Ok(Some((
                row.try_get("dropped").map_err(decode)?,
                serde_json::from_str(&properties)
                    .map_err(|e| Error::internal("reading a namespace's history", e))?,
            )))
        }

        /// A namespace as a line sees it (see `resolve_tabular`).
        pub(crate) async fn resolve_namespace(
            conn: &mut Conn,
            line: RefId,
            ident: &NamespaceIdent,
            upto: Option<i64>,
        ) -> Result<Option<Namespace>> {
            let (mut line, mut upto) = (line, upto);
            loop {
                let Some(seq) = upto else {
                    if let Some(own) = own_namespace(conn, line, ident).await? {
                        return Ok(Some(own));
                    }
                    let (_, parent) = line_info(conn, line).await?;
                    let Some(parent) = parent else {
                        return Ok(None);
                    };
                    if namespace_entry(conn, line, ident, None).await?.is_some() {
                        return Ok(None);
                    }
                    (line, upto) = (parent.0, Some(parent.1));
                    continue;
                };
                match namespace_entry(conn, line, ident, Some(seq)).await? {
                    Some((true, _)) => return Ok(None),
                    Some((false, properties)) => {
                        let (warehouse, _) = line_info(conn, line).await?;
                        return Ok(Some(Namespace {
                            id: NamespaceId(Uuid::nil()),
                            warehouse_id: WarehouseId(warehouse),
                            ref_id: line,
                            ident: ident.clone(),
                            properties,
                            created_at: DateTime::<Utc>::UNIX_EPOCH,
                            updated_at: DateTime::<Utc>::UNIX_EPOCH,
                        }));
                    }
                    None => {
                        let (_, parent) = line_info(conn, line).await?;
                        let Some(parent) = parent else {
                            return Ok(None);
                        };
                        (line, upto) = (parent.0, Some(parent.1));
                    }
                }
            }
        }

        /// One page of sorted names.
        fn page_of(names: std::collections::BTreeSet<String>, page: &PageRequest) -> Page<String> {
            let after = page.after.clone().unwrap_or_default();
            let mut items: Vec<String> = names
                .into_iter()
                .filter(|n| n.as_str() > after.as_str())
                .collect();
            let next = match page.limit {
                Some(l) if items.len() > l as usize => {
                    items.truncate(l as usize);
                    items.last().cloned()
                }
                _ => None,
            };
            Page { items, next }
        }

        /// What a listing covers: the child namespaces of one, or the tables or views of one.
        #[derive(Clone, Copy)]
        pub(crate) enum Scope<'a> {
            Namespaces { parent: &'a str },
            Tabulars { namespace: &'a str, kind: TabularKind },
        }

        /// The names a line sees in a scope (see `resolve_tabular`), sorted.
        pub(crate) async fn resolve_names(
            conn: &mut Conn,
            line: RefId,
            upto: Option<i64>,
            scope: Scope<'_>,
        ) -> Result<std::collections::BTreeSet<String>> {
            use std::collections::BTreeSet;
            let failed = |e| db_error("listing", e);
            let mut seen = BTreeSet::new();
            // Names a nearer line decided (present or dropped), which farther lines cannot change.
            let mut decided: BTreeSet<String> = BTreeSet::new();
            let (mut line, mut upto) = (line, upto);
            loop {
                let (present, touched): (Vec<String>, Vec<String>) = match upto {
                    None => {
                        let own = match scope {
                            Scope::Namespaces { parent } => sqlx::query_scalar::<_, String>(
                                "SELECT name FROM namespaces WHERE ref_id = $1 AND parent_name = $2",
                            )
                            .bind(line.0)
                            .bind(parent)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                            Scope::Tabulars { namespace, kind } => sqlx::query_scalar::<_, String>(
                                "SELECT t.name FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id \
                                 WHERE n.ref_id = $1 AND n.name = $2 AND t.kind = $3",
                            )
                            .bind(line.0)
                            .bind(namespace)
                            .bind(kind.as_str())
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                        };
                        let touched = match scope {
                            Scope::Namespaces { parent } => sqlx::query_scalar::<_, String>(
                                "SELECT DISTINCT name FROM namespace_history \
                                 WHERE line_id = $1 AND parent_name = $2",
                            )
                            .bind(line.0)
                            .bind(parent)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                            Scope::Tabulars { namespace, .. } => sqlx::query_scalar::<_, String>(
                                "SELECT DISTINCT name FROM tabular_history \
                                 WHERE line_id = $1 AND namespace = $2",
                            )
                            .bind(line.0)
                            .bind(namespace)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                        };
                        (own, touched)
                    }
                    Some(seq) => {
                        let rows = match scope {
                            Scope::Namespaces { parent } => sqlx::query(
                                "SELECT h.name, h.dropped, 'namespace' AS kind FROM namespace_history h \
                                 WHERE h.line_id = $1 AND h.parent_name = $2 AND h.seq = \
                                 (SELECT max(h2.seq) FROM namespace_history h2 WHERE h2.line_id = $1 \
                                  AND h2.name = h.name AND h2.seq <= $3)",
                            )
                            .bind(line.0)
                            .bind(parent)
                            .bind(seq)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                            Scope::Tabulars { namespace, .. } => sqlx::query(
                                "SELECT h.name, h.dropped, h.kind FROM tabular_history h \
                                 WHERE h.line_id = $1 AND h.namespace = $2 AND h.seq = \
                                 (SELECT max(h2.seq) FROM tabular_history h2 WHERE h2.line_id = $1 \
                                  AND h2.namespace = $2 AND h2.name = h.name AND h2.seq <= $3)",
                            )
                            .bind(line.0)
                            .bind(namespace)
                            .bind(seq)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                        };
                        let mut present = Vec::new();
                        let mut touched = Vec::new();
                        for row in rows {
                            let name: String = row.try_get("name").map_err(failed)?;
                            let dropped: bool = row.try_get("dropped").map_err(failed)?;
                            let kind: String = row.try_get("kind").map_err(failed)?;
                            let wanted = match scope {
                                Scope::Namespaces { .. } => true,
                                Scope::Tabulars { kind: k, .. } => kind == k.as_str(),
                            };
                            if !dropped && wanted {
                                present.push(name.clone());
                            }
                            touched.push(name);
                        }
                        (present, touched)
                    }
                };
                for name in present {
                    if !decided.contains(&name) {
                        seen.insert(name);
                    }
                }
                decided.extend(touched);
                decided.extend(seen.iter().cloned());
                let (_, parent) = line_info(conn, line).await?;
                let Some(parent) = parent else {
                    return Ok(seen);
                };
                (line, upto) = (parent.0, Some(parent.1));
            }
        }

        /// The id of the line's own row of a namespace, copying the row it inherits (and its
        /// parents') onto the line first if needed. `NotFound(Namespace)` when the line does not
        /// see it.
        pub(crate) async fn own_namespace_row(
            conn: &mut Conn,
            line: RefId,
            ident: &NamespaceIdent,
        ) -> Result<Uuid> {
            if let Some(own) = own_namespace(conn, line, ident).await? {
                return Ok(own.id.0);
            }
            let mut parent_id: Option<Uuid> = None;
            let levels = ident.levels();
            for depth in 1..=levels.len() {
                let level = NamespaceIdent::new(levels[..depth].to_vec())?;
                if let Some(own) = own_namespace(conn, line, &level).await? {
                    parent_id = Some(own.id.0);
                    continue;
                }
                let Some(seen) = resolve_namespace(conn, line, &level, None).await? else {
                    return Err(not_found(Entity::Namespace, &level));
                };
                let id = Uuid::new_v4();
                let now = Utc::now();
                let (warehouse, _) = line_info(conn, line).await?;
                sqlx::query(
                    "INSERT INTO namespaces (id, warehouse_id, ref_id, name, parent_name, parent_id, \
                     properties, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)",
                )
                .bind(id)
                .bind(warehouse)
                .bind(line.0)
                .bind(level.joined())
                .bind(level.parent().map(|p| p.joined()).unwrap_or_default())
                .bind(parent_id)
                .bind(Json(&seen.properties))
                .bind(now)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::new(
                            crate::error::ErrorKind::CommitConflict,
                            format!("namespace {level} changed concurrently; retry"),
                        )
                    } else {
                        db_error("copying a namespace onto a branch", e)
                    }
                })?;
                parent_id = Some(id);
            }
            Ok(parent_id.expect("a namespace has at least one level"))
        }

        impl $store {
            /// What `find_tabular` finds when the branch has no row of its own: what it
            /// inherits, if anything.
            async fn inherited_tabular(
                &self,
                warehouse: WarehouseId,
                ref_name: &str,
                ident: &TabularIdent,
            ) -> Result<Option<Tabular>> {
                let mut conn = self
                    .read
                    .acquire()
                    .await
                    .map_err(|e| db_error("reading a table", e))?;
                let line: Option<(Uuid, Option<Uuid>)> = sqlx::query_as(
                    "SELECT id, parent_id FROM refs WHERE warehouse_id = $1 AND name = $2 \
                     AND kind = 'branch'",
                )
                .bind(warehouse.0)
                .bind(ref_name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| db_error("reading a table", e))?;
                match line {
                    Some((line, Some(_))) => {
                        resolve_tabular(&mut conn, RefId(line), ident, None).await
                    }
                    _ => Ok(None),
                }
            }
        }

        #[async_trait]
        impl NamespaceStore for $store {
            async fn create_namespace(&self, ns: &Namespace, meta: &CommitMeta) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("creating a namespace", e))?;
                let exists = || {
                    Error::already_exists(
                        Entity::Namespace,
                        format!("namespace {} already exists", ns.ident),
                    )
                };
                // On a branch the name must also be free of what it inherits.
                if lock_line(&mut tx, ns.ref_id).await?.parent.is_some()
                    && resolve_namespace(&mut tx, ns.ref_id, &ns.ident, None).await?.is_some()
                {
                    return Err(exists());
                }
                let parent_id: Option<Uuid> = match ns.ident.parent() {
                    None => None,
                    Some(parent) => match own_namespace_row(&mut tx, ns.ref_id, &parent).await {
                        Ok(id) => Some(id),
                        Err(e) if matches!(e.kind, crate::error::ErrorKind::NotFound(_)) => {
                            return Err(Error::not_found(
                                Entity::Namespace,
                                format!("parent namespace {parent} does not exist"),
                            ));
                        }
                        Err(e) => return Err(e),
                    },
                };
                let parent_name = ns.ident.parent().map(|p| p.joined()).unwrap_or_default();
                sqlx::query(
                    "INSERT INTO namespaces (id, warehouse_id, ref_id, name, parent_name, parent_id, \
                     properties, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)",
                )
                .bind(ns.id.0)
                .bind(ns.warehouse_id.0)
                .bind(ns.ref_id.0)
                .bind(ns.ident.joined())
                .bind(parent_name)
                .bind(parent_id)
                .bind(Json(&ns.properties))
                .bind(ns.created_at)
                .bind(ns.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::already_exists(
                            Entity::Namespace,
                            format!("namespace {} already exists", ns.ident),
                        )
                    } else if is_foreign_key_violation(&e) {
                        Error::not_found(
                            Entity::Namespace,
                            format!("parent namespace of {} does not exist", ns.ident),
                        )
                    } else {
                        db_error("creating a namespace", e)
                    }
                })?;
                record_commit(
                    &mut tx,
                    ns.ref_id,
                    meta,
                    &[HistoryEntry::Namespace {
                        ident: ns.ident.clone(),
                        op: "create",
                        properties: Some(ns.properties.clone()),
                    }],
                    ns.created_at,
                )
                .await?;
                tx.commit().await.map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        Error::not_found(
                            Entity::Namespace,
                            format!("parent namespace of {} does not exist", ns.ident),
                        )
                    } else {
                        db_error("creating a namespace", e)
                    }
                })
            }

            async fn get_namespace(
                &self,
                ref_id: RefId,
                ident: &NamespaceIdent,
            ) -> Result<Option<Namespace>> {
                let mut conn = self
                    .read
                    .acquire()
                    .await
                    .map_err(|e| db_error("reading a namespace", e))?;
                resolve_namespace(&mut conn, ref_id, ident, None).await
            }

            async fn list_namespaces(
                &self,
                ref_id: RefId,
                parent: Option<&NamespaceIdent>,
                page: &PageRequest,
            ) -> Result<Page<NamespaceIdent>> {
                let parent_name = parent.map(|p| p.joined()).unwrap_or_default();
                let mut conn = self
                    .read
                    .acquire()
                    .await
                    .map_err(|e| db_error("listing namespaces", e))?;
                if line_info(&mut conn, ref_id).await?.1.is_some() {
                    // A branch: its own rows over what it inherits.
                    let names = resolve_names(
                        &mut conn,
                        ref_id,
                        None,
                        Scope::Namespaces { parent: &parent_name },
                    )
                    .await?;
                    let page = page_of(names, page);
                    return Ok(Page {
                        items: page
                            .items
                            .iter()
                            .map(|n| NamespaceIdent::from_joined(n))
                            .collect::<Result<Vec<_>>>()?,
                        next: page.next,
                    });
                }
                drop(conn);
                // One more row than asked tells whether there is a next page.
                let limit = page.limit.map(|l| i64::from(l) + 1).unwrap_or(i64::MAX);
                let rows = sqlx::query(
                    "SELECT name FROM namespaces WHERE ref_id = $1 AND parent_name = $2 AND name > $3 \
                     ORDER BY name LIMIT $4",
                )
                .bind(ref_id.0)
                .bind(parent_name)
                .bind(page.after.clone().unwrap_or_default())
                .bind(limit)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing namespaces", e))?;
                let mut names = rows
                    .iter()
                    .map(|row| row.try_get::<String, _>("name"))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| db_error("decoding namespaces", e))?;
                let next = match page.limit {
                    Some(l) if names.len() > l as usize => {
                        names.truncate(l as usize);
                        names.last().cloned()
                    }
                    _ => None,
                };
                let items = names
                    .iter()
                    .map(|n| NamespaceIdent::from_joined(n))
                    .collect::<Result<Vec<_>>>()
                    .map_err(|e| {
                        Error::internal("stored namespace name is invalid", anyhow::anyhow!("{e}"))
                    })?;
                Ok(Page { items, next })
            }

            async fn update_namespace_properties(
                &self,
                ref_id: RefId,
                ident: &NamespaceIdent,
                updates: &Properties,
                removals: &[String],
                at: DateTime<Utc>,
                meta: &CommitMeta,
            ) -> Result<Properties> {
                // Read, merge and write in one transaction with the row locked (`FOR UPDATE` on
                // PostgreSQL; SQLite has a single writer), so concurrent updates serialize and
                // none is lost. The version check stays as a second guard.
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("updating namespace properties", e))?;
                if lock_line(&mut tx, ref_id).await?.parent.is_some() {
                    // On a branch, an inherited namespace is copied onto it first.
                    own_namespace_row(&mut tx, ref_id, ident).await?;
                }
                let row = sqlx::query(concat!(
                    "SELECT properties, version FROM namespaces WHERE ref_id = $1 AND name = $2",
                    $for_update
                ))
                .bind(ref_id.0)
                .bind(ident.joined())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db_error("updating namespace properties", e))?;
                let Some(row) = row else {
                    return Err(not_found(Entity::Namespace, ident));
                };
                let before: Json<Properties> = row
                    .try_get("properties")
                    .map_err(|e| db_error("updating namespace properties", e))?;
                let version: i64 = row
                    .try_get("version")
                    .map_err(|e| db_error("updating namespace properties", e))?;
                let before = before.0;
                let mut after = before.clone();
                for key in removals {
                    after.remove(key);
                }
                after.extend(updates.iter().map(|(k, v)| (k.clone(), v.clone())));
                let done = sqlx::query(
                    "UPDATE namespaces SET properties = $3, version = version + 1, updated_at = $4 \
                     WHERE ref_id = $1 AND name = $2 AND version = $5",
                )
                .bind(ref_id.0)
                .bind(ident.joined())
                .bind(Json(&after))
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("updating namespace properties", e))?;
                if done.rows_affected() != 1 {
                    return Err(Error::new(
                        crate::error::ErrorKind::CommitConflict,
                        format!("namespace {ident} changed concurrently; retry"),
                    ));
                }
                record_commit(
                    &mut tx,
                    ref_id,
                    meta,
                    &[HistoryEntry::Namespace {
                        ident: ident.clone(),
                        op: "update",
                        properties: Some(after),
                    }],
                    at,
                )
                .await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("updating namespace properties", e))?;
                Ok(before)
            }

            async fn drop_namespace(
                &self,
                ref_id: RefId,
                ident: &NamespaceIdent,
                meta: &CommitMeta,
            ) -> Result<()> {
                let not_empty = || {
                    Error::not_empty(
                        Entity::Namespace,
                        format!("namespace {ident} is not empty"),
                    )
                };
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("dropping a namespace", e))?;
                if lock_line(&mut tx, ref_id).await?.parent.is_some() {
                    // A branch: what it sees decides, and an inherited namespace only gets a
                    // tombstone in the branch's history.
                    if resolve_namespace(&mut tx, ref_id, ident, None).await?.is_none() {
                        return Err(not_found(Entity::Namespace, ident));
                    }
                    let joined = ident.joined();
                    let children =
                        resolve_names(&mut tx, ref_id, None, Scope::Namespaces { parent: &joined })
                            .await?;
                    if !children.is_empty() {
                        return Err(not_empty());
                    }
                    for kind in [TabularKind::Table, TabularKind::View] {
                        let held = resolve_names(
                            &mut tx,
                            ref_id,
                            None,
                            Scope::Tabulars { namespace: &joined, kind },
                        )
                        .await?;
                        if !held.is_empty() {
                            return Err(not_empty());
                        }
                    }
                    sqlx::query("DELETE FROM namespaces WHERE ref_id = $1 AND name = $2")
                        .bind(ref_id.0)
                        .bind(&joined)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            if is_foreign_key_violation(&e) {
                                not_empty()
                            } else {
                                db_error("dropping a namespace", e)
                            }
                        })?;
                    record_commit(
                        &mut tx,
                        ref_id,
                        meta,
                        &[HistoryEntry::Namespace {
                            ident: ident.clone(),
                            op: "drop",
                            properties: None,
                        }],
                        Utc::now(),
                    )
                    .await?;
                    return tx.commit().await.map_err(|e| db_error("dropping a namespace", e));
                }
                let child = sqlx::query(
                    "SELECT 1 FROM namespaces WHERE ref_id = $1 AND parent_name = $2 LIMIT 1",
                )
                .bind(ref_id.0)
                .bind(ident.joined())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db_error("dropping a namespace", e))?;
                if child.is_some() {
                    return Err(not_empty());
                }
                let holds = sqlx::query(
                    "SELECT 1 FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id \
                     WHERE n.ref_id = $1 AND n.name = $2 LIMIT 1",
                )
                .bind(ref_id.0)
                .bind(ident.joined())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db_error("dropping a namespace", e))?;
                if holds.is_some() {
                    return Err(not_empty());
                }
                let done = sqlx::query("DELETE FROM namespaces WHERE ref_id = $1 AND name = $2")
                    .bind(ref_id.0)
                    .bind(ident.joined())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            not_empty()
                        } else {
                            db_error("dropping a namespace", e)
                        }
                    })?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::Namespace, ident));
                }
                record_commit(
                    &mut tx,
                    ref_id,
                    meta,
                    &[HistoryEntry::Namespace {
                        ident: ident.clone(),
                        op: "drop",
                        properties: None,
                    }],
                    Utc::now(),
                )
                .await?;
                tx.commit().await.map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        not_empty()
                    } else {
                        db_error("dropping a namespace", e)
                    }
                })
            }
        }


        fn tabular_from_row(row: &$row, ident: TabularIdent) -> Result<Tabular> {
            let decode = |e| db_error("decoding a table", e);
            let kind: String = row.try_get("kind").map_err(decode)?;
            let stored: Vec<u8> = row.try_get("metadata").map_err(decode)?;
            Ok(Tabular {
                id: TabularId(row.try_get("id").map_err(decode)?),
                warehouse_id: WarehouseId(row.try_get("warehouse_id").map_err(decode)?),
                ref_id: RefId(row.try_get("ref_id").map_err(decode)?),
                ident,
                kind: TabularKind::parse(&kind).ok_or_else(|| {
                    Error::internal("decoding a table", anyhow::anyhow!("unknown kind {kind:?}"))
                })?,
                uuid: row.try_get("uuid").map_err(decode)?,
                location: row.try_get("location").map_err(decode)?,
                metadata_location: row.try_get("metadata_location").map_err(decode)?,
                metadata: decompress(&stored)?.into(),
                version: row.try_get("version").map_err(decode)?,
                created_at: row.try_get("created_at").map_err(decode)?,
                updated_at: row.try_get("updated_at").map_err(decode)?,
            })
        }

        /// Gives a line its own row of a table or view it inherits (a new row id), holding `blob`
        /// (compressed metadata) at `version`. `CommitConflict` when the line got one meanwhile.
        async fn copy_onto_line(
            conn: &mut Conn,
            line: RefId,
            t: &Tabular,
            metadata_location: &str,
            blob: &[u8],
            version: i64,
        ) -> Result<TabularId> {
            let namespace_id = own_namespace_row(conn, line, &t.ident.namespace).await?;
            let id = TabularId::new();
            let now = Utc::now();
            sqlx::query(
                "INSERT INTO tabulars (id, warehouse_id, ref_id, namespace_id, name, kind, \
                 uuid, location, metadata_location, metadata, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(id.0)
            .bind(t.warehouse_id.0)
            .bind(line.0)
            .bind(namespace_id)
            .bind(&t.ident.name)
            .bind(t.kind.as_str())
            .bind(t.uuid)
            .bind(&t.location)
            .bind(metadata_location)
            .bind(blob)
            .bind(version)
            .bind(now)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::new(
                        crate::error::ErrorKind::CommitConflict,
                        format!("{} was changed by another commit", t.ident),
                    )
                } else {
                    db_error("copying a table onto a branch", e)
                }
            })?;
            Ok(id)
        }

        fn dropped_entry(t: &Tabular, op: &'static str) -> HistoryEntry {
            HistoryEntry::Tabular {
                ident: t.ident.clone(),
                op,
                kind: t.kind,
                id: t.id,
                uuid: t.uuid,
                location: t.location.clone(),
                metadata_location: t.metadata_location.clone(),
                version: t.version,
            }
        }

        fn taken(kind: TabularKind, ident: &TabularIdent) -> Error {
            Error::already_exists(
                kind.entity(),
                format!("a table or view named {ident} already exists"),
            )
        }

        /// One `commit_tabulars` call waiting for a group-commit writer.
        pub(crate) struct CommitJob {
            pub(crate) ref_id: RefId,
            pub(crate) changes: Vec<TabularChange>,
            pub(crate) blobs: Vec<Vec<u8>>,
            pub(crate) meta: CommitMeta,
            pub(crate) done: tokio::sync::oneshot::Sender<Result<()>>,
        }

        /// Commits taken into one transaction at most.
        const GROUP_COMMIT_MAX: usize = 64;

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
                    None => write.acquire().await,
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
        enum Group {
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
        async fn run_group(
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

        /// A folder another table (for a view: another table only) claims that overlaps
        /// `location`, in the warehouse; the claims of `uuid` (the table itself, on any line) do
        /// not count. Every live row's folder is claimed by its UUID, and claims outlive rows
        /// (folders a table moved away from, dropped tables not purged, released claims until
        /// keys vended for them have expired). The caller holds the warehouse's folder-claim lock
        /// (PostgreSQL: an advisory lock until the transaction ends; SQLite has one writer), taken
        /// before any line's row, so the answer is final. Index lookups, not a scan: the folder
        /// itself and each folder above it (equality), and what lies inside it (a range in byte
        /// order, `folder/` up to `folder0`; PostgreSQL's column collation is "C"). Planned for
        /// each call: a cached plan made while the table was small scans it once it is large.
        ///
        /// For a create (`creating`), an empty answer means a purge of `uuid` has begun (its
        /// claims are released): bringing it back would bring back a table whose files are
        /// going. Asked in the same statement, since every create asks.
        async fn overlapping_folder(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            warehouse: WarehouseId,
            uuid: Uuid,
            location: &str,
            is_view: bool,
            creating: bool,
        ) -> Result<Option<String>> {
            let location = location.trim_end_matches('/');
            let above: Vec<&str> = location
                .match_indices('/')
                .map(|(i, _)| &location[..i])
                .filter(|prefix| !prefix.is_empty())
                .chain(std::iter::once(location))
                .collect();
            let claims = "warehouse_id = $1 AND table_uuid <> $3 AND (kind = 'table' OR $2 = 'any') \
                 AND (released_at IS NULL OR released_at > $6)";
            let mut listed = String::new();
            for i in 0..above.len() {
                if i > 0 {
                    listed.push_str(", ");
                }
                listed.push_str(&format!("${}", i + 7));
            }
            let purging = if creating {
                "SELECT '' FROM folder_claims WHERE warehouse_id = $1 AND table_uuid = $3 \
                 AND released_at IS NOT NULL UNION ALL "
            } else {
                ""
            };
            let sql = format!(
                "{purging}SELECT location FROM folder_claims WHERE {claims} AND location >= $4 \
                 AND location < $5 UNION ALL SELECT location FROM folder_claims \
                 WHERE {claims} AND location IN ({listed}) LIMIT 1"
            );
            // Only numbered placeholders are formatted into the text; every value is bound.
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(warehouse.0)
                .bind(if is_view { "tables" } else { "any" })
                .bind(uuid)
                .bind(format!("{location}/"))
                .bind(format!("{location}0"))
                .bind(release_cutoff());
            for prefix in above {
                query = query.bind(prefix);
            }
            query
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| db_error("committing", e))
        }

        /// Claims released before this (unix milliseconds) no longer hold their folders.
        fn release_cutoff() -> i64 {
            Utc::now().timestamp_millis()
                - i64::try_from(crate::model::CLAIM_RELEASE_GRACE.as_millis()).unwrap_or(i64::MAX)
        }



        /// Records that the table (or view) `uuid` claims `location` (idempotent). The claim stays
        /// when the table moves on or is dropped, until a purge has deleted its files.
        async fn claim_folder(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            warehouse: WarehouseId,
            location: &str,
            uuid: Uuid,
            kind: TabularKind,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO folder_claims (warehouse_id, location, table_uuid, kind) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(warehouse.0)
            .bind(location.trim_end_matches('/'))
            .bind(uuid)
            .bind(kind.as_str())
            .execute(&mut *conn)
            .await
            .map_err(|e| db_error("committing", e))?;
            Ok(())
        }

        fn overlap_error(location: &str, other: &str) -> Error {
            Error::bad_request(format!(
                "location {} overlaps the folder of another table at {other}; every table needs \
                 a folder of its own",
                location.trim_end_matches('/')
            ))
        }

        /// Writes one commit's changes on a connection inside an open transaction (`on_branch`:
        /// the line forked from another, so it may inherit rows) and returns what they did, for
        /// the commit that records them, and the time of the last. `blobs` holds the compressed
        /// metadata of each change, in order (compressed before the transaction, so that the
        /// single writer of SQLite does not wait on it).
        async fn write_tabular_changes(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            ref_id: RefId,
            on_branch: bool,
            changes: &[TabularChange],
            blobs: &[Vec<u8>],
        ) -> Result<(Vec<HistoryEntry>, Option<DateTime<Utc>>)> {
                let mut entries = Vec::with_capacity(changes.len());
                let mut at = None;
                for (change, blob) in changes.iter().zip(blobs) {
                    // The row the change wrote (an update on a branch may have written a copy).
                    let written: TabularId;
                    match change {
                        TabularChange::Create(t) => {
                            if on_branch
                                && resolve_tabular(conn, ref_id, &t.ident, None).await?.is_some()
                            {
                                return Err(taken(t.kind, &t.ident));
                            }
                            let namespace_id =
                                match own_namespace_row(conn, ref_id, &t.ident.namespace).await {
                                    Ok(id) => id,
                                    Err(e) if matches!(e.kind, crate::error::ErrorKind::NotFound(_)) => {
                                        return Err(Error::not_found(
                                            Entity::Namespace,
                                            format!("namespace {} does not exist", t.ident.namespace),
                                        ));
                                    }
                                    Err(e) => return Err(e),
                                };
                            // The folder is checked before the row is written, so that a commit that
                            // fails wrote nothing (a group commit runs a lone create without a
                            // savepoint); a name that is taken is still reported first.
                            if let Some(other) = overlapping_folder(
                                conn, t.warehouse_id, t.uuid, &t.location,
                                t.kind == TabularKind::View, true,
                            )
                            .await?
                            {
                                let name_taken: Option<i32> = sqlx::query_scalar(
                                    "SELECT 1 FROM tabulars WHERE namespace_id = $1 AND name = $2",
                                )
                                .bind(namespace_id)
                                .bind(&t.ident.name)
                                .fetch_optional(&mut *conn)
                                .await
                                .map_err(|e| db_error("committing", e))?;
                                if name_taken.is_some() {
                                    return Err(taken(t.kind, &t.ident));
                                }
                                if other.is_empty() {
                                    return Err(Error::conflict(format!(
                                        "the table with UUID {} is being purged; its files are \
                                         going",
                                        t.uuid
                                    )));
                                }
                                return Err(overlap_error(&t.location, &other));
                            }
                            // A taken name inserts nothing (and raises nothing, which would end a
                            // PostgreSQL transaction).
                            let inserted: Option<Uuid> = sqlx::query_scalar(
                                "INSERT INTO tabulars (id, warehouse_id, ref_id, namespace_id, name, kind, \
                                 uuid, location, metadata_location, metadata, version, created_at, updated_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                                 ON CONFLICT DO NOTHING RETURNING id",
                            )
                            .bind(t.id.0)
                            .bind(t.warehouse_id.0)
                            .bind(ref_id.0)
                            .bind(namespace_id)
                            .bind(&t.ident.name)
                            .bind(t.kind.as_str())
                            .bind(t.uuid)
                            .bind(&t.location)
                            .bind(&t.metadata_location)
                            .bind(blob)
                            .bind(t.version)
                            .bind(t.created_at)
                            .bind(t.updated_at)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(|e| {
                                if is_foreign_key_violation(&e) {
                                    Error::not_found(
                                        Entity::Namespace,
                                        format!("namespace {} does not exist", t.ident.namespace),
                                    )
                                } else {
                                    db_error("committing", e)
                                }
                            })?;
                            if inserted.is_none() {
                                return Err(taken(t.kind, &t.ident));
                            }
                            claim_folder(conn, t.warehouse_id, &t.location, t.uuid, t.kind).await?;
                            at = Some(t.updated_at);
                            written = t.id;
                            entries.push(HistoryEntry::Tabular {
                                ident: t.ident.clone(),
                                op: "create",
                                kind: t.kind,
                                id: t.id,
                                uuid: t.uuid,
                                location: t.location.clone(),
                                metadata_location: t.metadata_location.clone(),
                                version: t.version,
                            });
                        }
                        TabularChange::Update {
                            id,
                            ident,
                            expected_version,
                            uuid,
                            location,
                            metadata_location,
                            metadata: _,
                            at: when,
                            claims_location: _,
                        } => {
                            let done = sqlx::query(
                                "UPDATE tabulars SET uuid = $3, location = $4, metadata_location = $5, \
                                 metadata = $6, version = version + 1, updated_at = $7 \
                                 WHERE id = $1 AND version = $2 AND ref_id = $8 RETURNING id, kind",
                            )
                            .bind(id.0)
                            .bind(*expected_version)
                            .bind(*uuid)
                            .bind(location)
                            .bind(metadata_location)
                            .bind(blob)
                            .bind(*when)
                            .bind(ref_id.0)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(|e| db_error("committing", e))?;
                            let lost = || {
                                Error::new(
                                    crate::error::ErrorKind::CommitConflict,
                                    format!("{ident} was changed by another commit"),
                                )
                            };
                            let (row_id, kind) = match done {
                                Some(done) => {
                                    let decode = |e| db_error("committing", e);
                                    (
                                        TabularId(done.try_get("id").map_err(decode)?),
                                        done.try_get::<String, _>("kind").map_err(decode)?,
                                    )
                                }
                                // The first commit of a branch to what it inherits: the branch
                                // gets its own row, if it still inherits that very version.
                                None if on_branch => {
                                    if own_tabular(conn, ref_id, ident).await?.is_some() {
                                        return Err(lost());
                                    }
                                    let inherited = resolve_tabular(conn, ref_id, ident, None)
                                        .await?
                                        .filter(|t| t.id == *id && t.version == *expected_version)
                                        .ok_or_else(lost)?;
                                    let mut copy = inherited.clone();
                                    copy.uuid = *uuid;
                                    copy.location = location.clone();
                                    let row_id = copy_onto_line(
                                        conn,
                                        ref_id,
                                        &copy,
                                        metadata_location,
                                        blob,
                                        expected_version + 1,
                                    )
                                    .await?;
                                    (row_id, inherited.kind.as_str().to_string())
                                }
                                None => return Err(lost()),
                            };
                            at = Some(*when);
                            written = row_id;
                            entries.push(HistoryEntry::Tabular {
                                ident: ident.clone(),
                                op: "update",
                                kind: TabularKind::parse(&kind).unwrap_or(TabularKind::Table),
                                id: row_id,
                                uuid: *uuid,
                                location: location.clone(),
                                metadata_location: metadata_location.clone(),
                                version: expected_version + 1,
                            });
                        }
                    }
                    // A table's folder must not overlap any table's or view's; a view's (it gets
                    // no credentials) must only stay out of tables' folders. Checked again here,
                    // where it is final, for an update that moves a folder (a create checked it
                    // above).
                    if let TabularChange::Update {
                        claims_location: Some(warehouse),
                        uuid,
                        location,
                        ..
                    } = change
                    {
                        let kind: String =
                            sqlx::query_scalar("SELECT kind FROM tabulars WHERE id = $1")
                                .bind(written.0)
                                .fetch_one(&mut *conn)
                                .await
                                .map_err(|e| db_error("committing", e))?;
                        if let Some(other) = overlapping_folder(
                            conn, *warehouse, *uuid, location, kind == "view", false,
                        )
                        .await?
                        {
                            return Err(overlap_error(location, &other));
                        }
                        let kind = TabularKind::parse(&kind).unwrap_or(TabularKind::Table);
                        claim_folder(conn, *warehouse, location, *uuid, kind).await?;
                    }
                }
                Ok((entries, at))
        }

        /// Moves the pointers of several tables of one line (their own rows on it) in one
        /// statement, each only if it is still at the version its commit read. Per update, in
        /// order: what the commit records, or the conflict it lost.
        async fn swap_pointers<'a>(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            line: RefId,
            updates: impl ExactSizeIterator<Item = (&'a TabularChange, &'a [u8])>,
        ) -> Result<Vec<std::result::Result<(HistoryEntry, DateTime<Utc>), Error>>> {
            type Db = <$store as crate::store::sql::BackendDb>::Db;
            let updates: Vec<(&TabularChange, &[u8])> = updates.collect();
            let mut kinds = std::collections::HashMap::with_capacity(updates.len());
            if !<$store as crate::store::sql::BackendDb>::WRITES_IN_ONE_STATEMENT {
                // SQLite costs no round trip per statement, and would plan the joined form as a
                // scan of every table row.
                for (change, blob) in &updates {
                    let TabularChange::Update { id, expected_version, uuid, location, metadata_location, at, .. } = change else {
                        return Err(Error::internal("committing", std::io::Error::other("a swap that is not an update")));
                    };
                    let done = sqlx::query(
                        "UPDATE tabulars SET uuid = $3, location = $4, metadata_location = $5, \
                         metadata = $6, version = version + 1, updated_at = $7 \
                         WHERE id = $1 AND version = $2 AND ref_id = $8 RETURNING id, kind",
                    )
                    .bind(id.0)
                    .bind(*expected_version)
                    .bind(*uuid)
                    .bind(location)
                    .bind(metadata_location)
                    .bind(*blob)
                    .bind(*at)
                    .bind(line.0)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| db_error("committing", e))?;
                    if let Some(row) = done {
                        let decode = |e| db_error("committing", e);
                        let id: Uuid = row.try_get("id").map_err(decode)?;
                        kinds.insert(id, row.try_get::<String, _>("kind").map_err(decode)?);
                    }
                }
                return Ok(swap_results(&updates, &kinds));
            }
            let mut query = sqlx::QueryBuilder::<Db>::new(
                "UPDATE tabulars SET uuid = v.column3, location = v.column4, \
                 metadata_location = v.column5, metadata = v.column6, version = version + 1, \
                 updated_at = v.column7 FROM (",
            );
            let mut first = true;
            for (change, blob) in &updates {
                let TabularChange::Update { id, expected_version, uuid, location, metadata_location, at, .. } = change else {
                    return Err(Error::internal("committing", std::io::Error::other("a swap that is not an update")));
                };
                query.push(if first { "VALUES (" } else { ", (" });
                first = false;
                let mut row = query.separated(", ");
                row.push_bind(id.0)
                    .push_bind(*expected_version)
                    .push_bind(*uuid)
                    .push_bind(location.as_str())
                    .push_bind(metadata_location.as_str())
                    .push_bind(*blob)
                    .push_bind(*at);
                query.push(")");
            }
            query.push(") AS v WHERE tabulars.id = v.column1 AND tabulars.version = v.column2 AND tabulars.ref_id = ");
            query.push_bind(line.0);
            query.push(" RETURNING id, kind");
            let rows = query
                .build()
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| db_error("committing", e))?;
            for row in rows {
                let decode = |e| db_error("committing", e);
                let id: Uuid = row.try_get("id").map_err(decode)?;
                let kind: String = row.try_get("kind").map_err(decode)?;
                kinds.insert(id, kind);
            }
            Ok(swap_results(&updates, &kinds))
        }

        /// Per swap, in order: what its commit records, or the conflict it lost (`kinds` holds
        /// the kind of each table whose pointer moved).
        fn swap_results(
            updates: &[(&TabularChange, &[u8])],
            kinds: &std::collections::HashMap<Uuid, String>,
        ) -> Vec<std::result::Result<(HistoryEntry, DateTime<Utc>), Error>> {
            updates
                .iter()
                .map(|(change, _)| {
                    let TabularChange::Update { id, ident, expected_version, uuid, location, metadata_location, at, .. } = change else {
                        unreachable!("checked above");
                    };
                    match kinds.get(&id.0) {
                        Some(kind) => Ok((
                            HistoryEntry::Tabular {
                                ident: ident.clone(),
                                op: "update",
                                kind: TabularKind::parse(kind).unwrap_or(TabularKind::Table),
                                id: *id,
                                uuid: *uuid,
                                location: location.clone(),
                                metadata_location: metadata_location.clone(),
                                version: expected_version + 1,
                            },
                            *at,
                        )),
                        None => Err(Error::new(
                            crate::error::ErrorKind::CommitConflict,
                            format!("{ident} was changed by another commit"),
                        )),
                    }
                })
                .collect()
        }

        /// The compressed metadata of each change.
        pub(crate) fn compress_changes(changes: &[TabularChange]) -> Result<Vec<Vec<u8>>> {
            changes
                .iter()
                .map(|change| match change {
                    TabularChange::Create(t) => compress(&t.metadata),
                    TabularChange::Update { metadata, .. } => compress(metadata),
                })
                .collect()
        }


        #[async_trait]
        impl TabularStore for $store {
            async fn get_tabular(
                &self,
                ref_id: RefId,
                ident: &TabularIdent,
            ) -> Result<Option<Tabular>> {
                let mut conn = self
                    .read
                    .acquire()
                    .await
                    .map_err(|e| db_error("reading a table", e))?;
                resolve_tabular(&mut conn, ref_id, ident, None).await
            }

            async fn find_tabular(
                &self,
                warehouse: WarehouseId,
                ref_name: &str,
                ident: &TabularIdent,
            ) -> Result<Option<Tabular>> {
                let row = sqlx::query(
                    "SELECT t.id, t.warehouse_id, t.ref_id, t.kind, t.uuid, t.location, \
                     t.metadata_location, t.metadata, t.version, t.created_at, t.updated_at \
                     FROM refs r JOIN namespaces n ON n.ref_id = r.id \
                     JOIN tabulars t ON t.namespace_id = n.id \
                     WHERE r.warehouse_id = $1 AND r.name = $2 AND n.name = $3 AND t.name = $4",
                )
                .bind(warehouse.0)
                .bind(ref_name)
                .bind(ident.namespace.joined())
                .bind(&ident.name)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a table", e))?;
                if let Some(row) = row {
                    return tabular_from_row(&row, ident.clone()).map(Some);
                }
                // Not the branch's own: it may inherit it.
                self.inherited_tabular(warehouse, ref_name, ident).await
            }

            async fn find_tabular_version(
                &self,
                warehouse: WarehouseId,
                ref_name: &str,
                ident: &TabularIdent,
            ) -> Result<Option<(TabularId, i64)>> {
                let row = sqlx::query(
                    "SELECT t.id, t.version \
                     FROM refs r JOIN namespaces n ON n.ref_id = r.id \
                     JOIN tabulars t ON t.namespace_id = n.id \
                     WHERE r.warehouse_id = $1 AND r.name = $2 AND n.name = $3 AND t.name = $4",
                )
                .bind(warehouse.0)
                .bind(ref_name)
                .bind(ident.namespace.joined())
                .bind(&ident.name)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a table", e))?;
                if let Some(row) = row {
                    let decode = |e| db_error("reading a table", e);
                    return Ok(Some((
                        TabularId(row.try_get("id").map_err(decode)?),
                        row.try_get("version").map_err(decode)?,
                    )));
                }
                Ok(self
                    .inherited_tabular(warehouse, ref_name, ident)
                    .await?
                    .map(|t| (t.id, t.version)))
            }

            async fn overlapping_table(
                &self,
                warehouse: WarehouseId,
                prefixes: &[String],
                inside: Option<&str>,
                uuid: Option<Uuid>,
            ) -> Result<Option<String>> {
                // Every live row's folder is claimed; claims outlive rows. `$2`: the caller's own
                // UUID, whose claims do not count (nil claims nothing); `$3`: released claims
                // hold their folders until keys vended for them have expired.
                let claims = "warehouse_id = $1 AND table_uuid <> $2 \
                     AND (released_at IS NULL OR released_at > $3)";
                let mut listed = String::new();
                for i in 0..prefixes.len().max(1) {
                    if i > 0 {
                        listed.push_str(", ");
                    }
                    listed.push_str(&format!("${}", i + 4));
                }
                let mut sql = format!(
                    "SELECT location FROM folder_claims WHERE {claims} AND location IN ({listed})"
                );
                // What lies inside a folder is a range of the location index: from `folder/` up
                // to (not including) `folder0` ('0' follows '/'), in byte order (PostgreSQL:
                // the column's collation is "C").
                let inside_param = prefixes.len().max(1) + 4;
                if inside.is_some() {
                    sql.push_str(&format!(
                        " UNION ALL SELECT location FROM folder_claims WHERE {claims} \
                         AND location >= ${inside_param} AND location < ${}",
                        inside_param + 1
                    ));
                }
                sql.push_str(" LIMIT 1");
                // Only numbered placeholders are formatted into the text; every value is bound.
                // Planned for each call, like the check in `write_tabular_changes`.
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .persistent(false)
                    .bind(warehouse.0)
                    .bind(uuid.unwrap_or(Uuid::nil()))
                    .bind(release_cutoff());
                if prefixes.is_empty() {
                    query = query.bind("");
                }
                for prefix in prefixes {
                    query = query.bind(prefix);
                }
                if let Some(inside) = inside {
                    let folder = inside.trim_end_matches('/');
                    query = query.bind(format!("{folder}/")).bind(format!("{folder}0"));
                }
                let row = query
                    .fetch_optional(&self.read)
                    .await
                    .map_err(|e| db_error("checking table locations", e))?;
                row.map(|row| row.try_get::<String, _>("location"))
                    .transpose()
                    .map_err(|e| db_error("checking table locations", e))
            }

            async fn claimed_folders(
                &self,
                warehouse: WarehouseId,
                uuid: Uuid,
                kind: Option<TabularKind>,
            ) -> Result<Vec<String>> {
                sqlx::query_scalar(
                    "SELECT location FROM folder_claims WHERE warehouse_id = $1 AND table_uuid = $2 \
                     AND released_at IS NULL AND (kind = $3 OR $3 = 'any') ORDER BY location",
                )
                .bind(warehouse.0)
                .bind(uuid)
                .bind(kind.map_or("any", TabularKind::as_str))
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("reading a table's folders", e))
            }

            async fn uuid_known(
                &self,
                warehouse: WarehouseId,
                uuid: Uuid,
                kind: Option<TabularKind>,
            ) -> Result<bool> {
                let found: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM folder_claims WHERE warehouse_id = $1 AND table_uuid = $2 \
                     AND (kind = $3 OR $3 = 'any') LIMIT 1",
                )
                .bind(warehouse.0)
                .bind(uuid)
                .bind(kind.map_or("any", TabularKind::as_str))
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a table's folders", e))?;
                Ok(found.is_some())
            }

            async fn recorded_version(
                &self,
                warehouse: WarehouseId,
                uuid: Uuid,
                metadata_location: &str,
            ) -> Result<bool> {
                let found: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM tabular_history h JOIN refs r ON r.id = h.line_id \
                     WHERE h.uuid = $1 AND h.metadata_location = $2 AND r.warehouse_id = $3 LIMIT 1",
                )
                .bind(uuid)
                .bind(metadata_location)
                .bind(warehouse.0)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a table's history", e))?;
                Ok(found.is_some())
            }

            async fn lines_holding(&self, warehouse: WarehouseId, uuid: Uuid) -> Result<Vec<RefId>> {
                let lines: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT DISTINCT ref_id FROM tabulars WHERE warehouse_id = $1 AND uuid = $2",
                )
                .bind(warehouse.0)
                .bind(uuid)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("reading who holds a table", e))?;
                Ok(lines.into_iter().map(RefId).collect())
            }

            async fn release_for_purge(
                &self,
                warehouse: WarehouseId,
                uuid: Uuid,
            ) -> Result<Option<Vec<String>>> {
                let failed = |e| db_error("releasing a table's folders", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                // The lock every create that claims a folder in the warehouse takes: a create of
                // this UUID either landed before (its row stops the purge) or sees the release.
                sqlx::query($location_lock)
                    .bind(warehouse.0.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                let held: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM tabulars WHERE warehouse_id = $1 AND uuid = $2 LIMIT 1",
                )
                .bind(warehouse.0)
                .bind(uuid)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?;
                if held.is_some() {
                    return Ok(None);
                }
                let now = Utc::now().timestamp_millis();
                sqlx::query(
                    "DELETE FROM folder_claims WHERE warehouse_id = $1 AND released_at IS NOT NULL \
                     AND released_at <= $2",
                )
                .bind(warehouse.0)
                .bind(release_cutoff())
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
                let folders: Vec<String> = sqlx::query_scalar(
                    "UPDATE folder_claims SET released_at = $3 WHERE warehouse_id = $1 \
                     AND table_uuid = $2 AND kind = 'table' RETURNING location",
                )
                .bind(warehouse.0)
                .bind(uuid)
                .bind(now)
                .fetch_all(&mut *tx)
                .await
                .map_err(failed)?;
                tx.commit().await.map_err(failed)?;
                Ok(Some(folders))
            }

            async fn restore_claims(&self, warehouse: WarehouseId, uuid: Uuid) -> Result<()> {
                sqlx::query(
                    "UPDATE folder_claims SET released_at = NULL WHERE warehouse_id = $1 \
                     AND table_uuid = $2",
                )
                .bind(warehouse.0)
                .bind(uuid)
                .execute(&self.write)
                .await
                .map_err(|e| db_error("restoring a table's folders", e))?;
                Ok(())
            }

            async fn release_view_claims(&self, warehouse: WarehouseId, uuid: Uuid) -> Result<bool> {
                let done = sqlx::query(
                    "DELETE FROM folder_claims WHERE warehouse_id = $1 AND table_uuid = $2 \
                     AND kind = 'view' \
                     AND NOT EXISTS (SELECT 1 FROM tabulars WHERE warehouse_id = $1 AND uuid = $2)",
                )
                .bind(warehouse.0)
                .bind(uuid)
                .execute(&self.write)
                .await
                .map_err(|e| db_error("releasing a view's folders", e))?;
                Ok(done.rows_affected() > 0)
            }

            async fn list_tabulars(
                &self,
                ref_id: RefId,
                namespace: &NamespaceIdent,
                kind: TabularKind,
                page: &PageRequest,
            ) -> Result<Page<String>> {
                let mut conn = self
                    .read
                    .acquire()
                    .await
                    .map_err(|e| db_error("listing tables", e))?;
                if line_info(&mut conn, ref_id).await?.1.is_some() {
                    let joined = namespace.joined();
                    let names = resolve_names(
                        &mut conn,
                        ref_id,
                        None,
                        Scope::Tabulars { namespace: &joined, kind },
                    )
                    .await?;
                    return Ok(page_of(names, page));
                }
                drop(conn);
                let limit = page.limit.map(|l| i64::from(l) + 1).unwrap_or(i64::MAX);
                let rows = sqlx::query(
                    "SELECT t.name FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id \
                     WHERE n.ref_id = $1 AND n.name = $2 AND t.kind = $3 AND t.name > $4 \
                     ORDER BY t.name LIMIT $5",
                )
                .bind(ref_id.0)
                .bind(namespace.joined())
                .bind(kind.as_str())
                .bind(page.after.clone().unwrap_or_default())
                .bind(limit)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing tables", e))?;
                let mut names = rows
                    .iter()
                    .map(|row| row.try_get::<String, _>("name"))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| db_error("decoding tables", e))?;
                let next = match page.limit {
                    Some(l) if names.len() > l as usize => {
                        names.truncate(l as usize);
                        names.last().cloned()
                    }
                    _ => None,
                };
                Ok(Page { items: names, next })
            }

            async fn commit_tabulars(
                &self,
                ref_id: RefId,
                changes: &[TabularChange],
                meta: &CommitMeta,
            ) -> Result<()> {
                self.commit_changes(ref_id, changes, meta).await
            }

            async fn drop_tabular(
                &self,
                ref_id: RefId,
                ident: &TabularIdent,
                kind: TabularKind,
                meta: &CommitMeta,
            ) -> Result<Tabular> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("dropping a table", e))?;
                // The line's row first, as every commit takes its locks.
                lock_line(&mut tx, ref_id).await?;
                let row = sqlx::query(
                    "SELECT t.id, t.warehouse_id, t.ref_id, t.kind, t.uuid, t.location, \
                     t.metadata_location, t.metadata, t.version, t.created_at, t.updated_at \
                     FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id \
                     WHERE n.ref_id = $1 AND n.name = $2 AND t.name = $3 AND t.kind = $4",
                )
                .bind(ref_id.0)
                .bind(ident.namespace.joined())
                .bind(&ident.name)
                .bind(kind.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db_error("dropping a table", e))?;
                let Some(row) = row else {
                    // A branch may drop what it inherits: a tombstone in its history.
                    let inherited = resolve_tabular(&mut tx, ref_id, ident, None)
                        .await?
                        .filter(|t| t.kind == kind);
                    let Some(inherited) = inherited else {
                        return Err(not_found(kind.entity(), ident));
                    };
                    record_commit(
                        &mut tx,
                        ref_id,
                        meta,
                        &[dropped_entry(&inherited, "drop")],
                        Utc::now(),
                    )
                    .await?;
                    tx.commit()
                        .await
                        .map_err(|e| db_error("dropping a table", e))?;
                    return Ok(inherited);
                };
                let dropped = tabular_from_row(&row, ident.clone())?;
                sqlx::query("DELETE FROM tabulars WHERE id = $1")
                    .bind(dropped.id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error("dropping a table", e))?;
                record_commit(
                    &mut tx,
                    ref_id,
                    meta,
                    &[dropped_entry(&dropped, "drop")],
                    Utc::now(),
                )
                .await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("dropping a table", e))?;
                Ok(dropped)
            }

            async fn rename_tabular(
                &self,
                ref_id: RefId,
                from: &TabularIdent,
                to: &TabularIdent,
                kind: TabularKind,
                meta: &CommitMeta,
            ) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("renaming", e))?;
                let on_branch = lock_line(&mut tx, ref_id).await?.parent.is_some();
                if on_branch {
                    if resolve_tabular(&mut tx, ref_id, to, None).await?.is_some() {
                        return Err(taken(kind, to));
                    }
                    // An inherited table or view is copied onto the branch first.
                    if own_tabular(&mut tx, ref_id, from).await?.is_none()
                        && let Some(inherited) = resolve_tabular(&mut tx, ref_id, from, None)
                            .await?
                            .filter(|t| t.kind == kind)
                    {
                        if inherited.metadata.is_empty() {
                            return Err(Error::conflict(format!(
                                "{from} changed on the branch this one forked from; commit to it \
                                 on this branch before renaming it"
                            )));
                        }
                        let blob = compress(&inherited.metadata)?;
                        copy_onto_line(&mut tx, ref_id, &inherited, &inherited.metadata_location, &blob, inherited.version).await?;
                    }
                    own_namespace_row(&mut tx, ref_id, &to.namespace).await?;
                }
                let source = sqlx::query(
                    "SELECT t.id, t.uuid, t.location, t.metadata_location, t.version \
                     FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id \
                     WHERE n.ref_id = $1 AND n.name = $2 AND t.name = $3 AND t.kind = $4",
                )
                .bind(ref_id.0)
                .bind(from.namespace.joined())
                .bind(&from.name)
                .bind(kind.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| db_error("renaming", e))?;
                let Some(source) = source else {
                    return Err(not_found(kind.entity(), from));
                };
                let id: Uuid = source.try_get("id").map_err(|e| db_error("renaming", e))?;
                let decode = |e| db_error("renaming", e);
                let uuid: Uuid = source.try_get("uuid").map_err(decode)?;
                let location: String = source.try_get("location").map_err(decode)?;
                let metadata_location: String =
                    source.try_get("metadata_location").map_err(decode)?;
                let version: i64 = source.try_get("version").map_err(decode)?;
                let target = sqlx::query("SELECT id FROM namespaces WHERE ref_id = $1 AND name = $2")
                    .bind(ref_id.0)
                    .bind(to.namespace.joined())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| db_error("renaming", e))?;
                let Some(target) = target else {
                    return Err(Error::not_found(
                        Entity::Namespace,
                        format!("namespace {} does not exist", to.namespace),
                    ));
                };
                let namespace_id: Uuid = target.try_get("id").map_err(|e| db_error("renaming", e))?;
                sqlx::query("UPDATE tabulars SET namespace_id = $2, name = $3, version = version + 1 WHERE id = $1")
                    .bind(id)
                    .bind(namespace_id)
                    .bind(&to.name)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            taken(kind, to)
                        } else {
                            db_error("renaming", e)
                        }
                    })?;
                // A rename is recorded as a drop of the old name and a create of the new one.
                let entry = |ident: &TabularIdent, op, version| HistoryEntry::Tabular {
                    ident: ident.clone(),
                    op,
                    kind,
                    id: TabularId(id),
                    uuid,
                    location: location.clone(),
                    metadata_location: metadata_location.clone(),
                    version,
                };
                record_commit(
                    &mut tx,
                    ref_id,
                    meta,
                    &[entry(from, "drop", version), entry(to, "create", version + 1)],
                    Utc::now(),
                )
                .await?;
                tx.commit().await.map_err(|e| db_error("renaming", e))
            }
        }

        /// The columns `commit_from_row` reads.
        const COMMIT_COLUMNS: &str = "id, warehouse_id, line_id, seq, parents, generation, \
            message, author, created_at, changes";

        #[async_trait]
        impl RefStore for $store {
            async fn list_refs(&self, warehouse: WarehouseId) -> Result<Vec<Ref>> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {REF_COLUMNS} FROM refs WHERE warehouse_id = $1 AND retired_at IS NULL \
                     ORDER BY name"
                )))
                .bind(warehouse.0)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing refs", e))?;
                rows.iter()
                    .map(ref_from_row)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| db_error("decoding a ref", e))
            }

            async fn create_ref(
                &self,
                warehouse: WarehouseId,
                name: &str,
                kind: RefKind,
                from: &ForkPoint,
                at: DateTime<Utc>,
            ) -> Result<Ref> {
                // A branch is a new line forked at the point; a tag only names its commit.
                let made = Ref {
                    id: RefId::new(),
                    warehouse_id: warehouse,
                    name: name.to_string(),
                    kind,
                    created_at: at,
                    parent: Some((from.line, from.seq)),
                    head_seq: 0,
                    head_commit: Some(from.commit),
                    head_generation: from.generation,
                };
                let (parent, parent_seq) = match made.parent {
                    Some((line, seq)) => (Some(line.0), Some(seq)),
                    None => (None, None),
                };
                sqlx::query(
                    "INSERT INTO refs (id, warehouse_id, name, kind, created_at, parent_id, \
                     parent_seq, head_seq, head_commit, head_generation) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
                )
                .bind(made.id.0)
                .bind(warehouse.0)
                .bind(name)
                .bind(kind.as_str())
                .bind(at)
                .bind(parent)
                .bind(parent_seq)
                .bind(from.commit.0)
                .bind(from.generation)
                .execute(&self.write)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::already_exists(
                            Entity::Ref,
                            format!("a branch or tag named {name:?} already exists"),
                        )
                    } else if is_foreign_key_violation(&e) {
                        not_found(Entity::Warehouse, warehouse)
                    } else {
                        db_error("creating a ref", e)
                    }
                })?;
                Ok(made)
            }

            async fn delete_ref(
                &self,
                warehouse: WarehouseId,
                name: &str,
                kind: RefKind,
            ) -> Result<()> {
                let done = match kind {
                    RefKind::Tag => sqlx::query(
                        "DELETE FROM refs WHERE warehouse_id = $1 AND name = $2 AND kind = 'tag'",
                    )
                    .bind(warehouse.0)
                    .bind(name)
                    .execute(&self.write)
                    .await,
                    // The line stays (its commits may be read, merged or tagged): it loses its
                    // name and takes no more commits.
                    RefKind::Branch => sqlx::query(
                        "UPDATE refs SET name = '~' || name || '~' || $3, retired_at = $4 \
                         WHERE warehouse_id = $1 AND name = $2 AND kind = 'branch' \
                         AND retired_at IS NULL",
                    )
                    .bind(warehouse.0)
                    .bind(name)
                    .bind(Uuid::new_v4().simple().to_string())
                    .bind(Utc::now())
                    .execute(&self.write)
                    .await,
                }
                .map_err(|e| db_error("deleting a ref", e))?;
                if done.rows_affected() == 0 {
                    return Err(Error::not_found(
                        Entity::Ref,
                        format!("{} {name:?} does not exist", kind.as_str()),
                    ));
                }
                Ok(())
            }

            async fn get_commit(
                &self,
                warehouse: WarehouseId,
                id: CommitId,
            ) -> Result<Option<Commit>> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COMMIT_COLUMNS} FROM commits WHERE id = $1 AND warehouse_id = $2"
                )))
                .bind(id.0)
                .bind(warehouse.0)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a commit", e))?;
                row.as_ref().map(commit_from_row).transpose()
            }

            async fn commit_ref(
                &self,
                warehouse: WarehouseId,
                commit: CommitId,
            ) -> Result<Option<Ref>> {
                let name = format!("~{commit}");
                let select = format!(
                    "SELECT {REF_COLUMNS} FROM refs WHERE warehouse_id = $1 AND name = $2"
                );
                let found = sqlx::query(sqlx::AssertSqlSafe(select.clone()))
                    .bind(warehouse.0)
                    .bind(&name)
                    .fetch_optional(&self.read)
                    .await
                    .map_err(|e| db_error("reading a commit", e))?;
                if let Some(row) = found {
                    return ref_from_row(&row)
                        .map(Some)
                        .map_err(|e| db_error("decoding a ref", e));
                }
                let Some(target) = self.get_commit(warehouse, commit).await? else {
                    return Ok(None);
                };
                let now = Utc::now();
                sqlx::query(
                    "INSERT INTO refs (id, warehouse_id, name, kind, created_at, parent_id, \
                     parent_seq, head_seq, head_commit, head_generation, retired_at) \
                     VALUES ($1, $2, $3, 'tag', $4, $5, $6, 0, $7, $8, $4) \
                     ON CONFLICT (warehouse_id, name) DO NOTHING",
                )
                .bind(Uuid::now_v7())
                .bind(warehouse.0)
                .bind(&name)
                .bind(now)
                .bind(target.line.0)
                .bind(target.seq)
                .bind(commit.0)
                .bind(target.generation)
                .execute(&self.write)
                .await
                .map_err(|e| db_error("reading a commit", e))?;
                let row = sqlx::query(sqlx::AssertSqlSafe(select))
                    .bind(warehouse.0)
                    .bind(&name)
                    .fetch_one(&self.write)
                    .await
                    .map_err(|e| db_error("reading a commit", e))?;
                ref_from_row(&row)
                    .map(Some)
                    .map_err(|e| db_error("decoding a ref", e))
            }

            async fn table_shared(&self, line: RefId, uuid: Uuid) -> Result<bool> {
                let failed = |e| db_error("checking who uses a table", e);
                let elsewhere = sqlx::query(
                    "SELECT 1 FROM tabular_history WHERE uuid = $1 AND line_id <> $2 LIMIT 1",
                )
                .bind(uuid)
                .bind(line.0)
                .fetch_optional(&self.read)
                .await
                .map_err(failed)?;
                if elsewhere.is_some() {
                    return Ok(true);
                }
                let forked = sqlx::query(
                    "SELECT 1 FROM refs WHERE parent_id = $1 AND parent_seq >= \
                     (SELECT min(seq) FROM tabular_history WHERE line_id = $1 AND uuid = $2) LIMIT 1",
                )
                .bind(line.0)
                .bind(uuid)
                .fetch_optional(&self.read)
                .await
                .map_err(failed)?;
                Ok(forked.is_some())
            }

            async fn merge_into(
                &self,
                line: RefId,
                expected_head: i64,
                changes: &[MergeChange],
                merged: (CommitId, i64),
                meta: &CommitMeta,
            ) -> Result<CommitId> {
                let failed = |e| db_error("merging", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                // Locks in the order every commit takes them: a claim of a table folder (the
                // warehouse's location lock) before the line's row, or the two deadlock.
                let claims = changes.iter().find_map(|c| match c {
                    MergeChange::Tabular(TabularChange::Create(t)) => Some(t.warehouse_id),
                    MergeChange::Tabular(TabularChange::Update {
                        claims_location: Some(warehouse),
                        ..
                    }) => Some(*warehouse),
                    _ => None,
                });
                if let Some(warehouse) = claims {
                    sqlx::query($location_lock)
                        .bind(warehouse.0.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(failed)?;
                }
                let head: Option<i64> = sqlx::query_scalar(concat!(
                    "SELECT head_seq FROM refs WHERE id = $1",
                    $for_update
                ))
                .bind(line.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?;
                if head != Some(expected_head) {
                    return Err(Error::new(
                        crate::error::ErrorKind::CommitConflict,
                        "the target branch moved while the merge was computed; retry",
                    ));
                }
                let mut entries = Vec::new();
                for change in changes {
                    match change {
                        MergeChange::Namespace { ident, properties: Some(properties) } => {
                            let seen = resolve_namespace(&mut tx, line, ident, None).await?;
                            if seen.is_some() {
                                own_namespace_row(&mut tx, line, ident).await?;
                                sqlx::query(
                                    "UPDATE namespaces SET properties = $3, version = version + 1, \
                                     updated_at = $4 WHERE ref_id = $1 AND name = $2",
                                )
                                .bind(line.0)
                                .bind(ident.joined())
                                .bind(Json(properties))
                                .bind(Utc::now())
                                .execute(&mut *tx)
                                .await
                                .map_err(failed)?;
                            } else {
                                let parent_id = match ident.parent() {
                                    Some(parent) => Some(own_namespace_row(&mut tx, line, &parent).await?),
                                    None => None,
                                };
                                let (warehouse, _) = line_info(&mut tx, line).await?;
                                let now = Utc::now();
                                sqlx::query(
                                    "INSERT INTO namespaces (id, warehouse_id, ref_id, name, parent_name, \
                                     parent_id, properties, version, created_at, updated_at) \
                                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)",
                                )
                                .bind(Uuid::now_v7())
                                .bind(warehouse)
                                .bind(line.0)
                                .bind(ident.joined())
                                .bind(ident.parent().map(|p| p.joined()).unwrap_or_default())
                                .bind(parent_id)
                                .bind(Json(properties))
                                .bind(now)
                                .execute(&mut *tx)
                                .await
                                .map_err(failed)?;
                            }
                            entries.push(HistoryEntry::Namespace {
                                ident: ident.clone(),
                                op: if seen.is_some() { "update" } else { "create" },
                                properties: Some(properties.clone()),
                            });
                        }
                        MergeChange::Namespace { ident, properties: None } => {
                            sqlx::query("DELETE FROM namespaces WHERE ref_id = $1 AND name = $2")
                                .bind(line.0)
                                .bind(ident.joined())
                                .execute(&mut *tx)
                                .await
                                .map_err(|e| {
                                    if is_foreign_key_violation(&e) {
                                        Error::not_empty(
                                            Entity::Namespace,
                                            format!("namespace {ident} is not empty on the target"),
                                        )
                                    } else {
                                        failed(e)
                                    }
                                })?;
                            entries.push(HistoryEntry::Namespace {
                                ident: ident.clone(),
                                op: "drop",
                                properties: None,
                            });
                        }
                        MergeChange::Tabular(change) => {
                            let blobs = compress_changes(std::slice::from_ref(change))?;
                            let on_branch = line_info(&mut tx, line).await?.1.is_some();
                            let (written, _) = write_tabular_changes(
                                &mut tx,
                                line,
                                on_branch,
                                std::slice::from_ref(change),
                                &blobs,
                            )
                            .await?;
                            entries.extend(written);
                        }
                        MergeChange::DropTabular { ident, id, expected_version } => {
                            let lost = || {
                                Error::new(
                                    crate::error::ErrorKind::CommitConflict,
                                    format!("{ident} was changed by another commit"),
                                )
                            };
                            let current = resolve_tabular(&mut tx, line, ident, None)
                                .await?
                                .filter(|t| t.id == *id && t.version == *expected_version)
                                .ok_or_else(lost)?;
                            if current.ref_id == line {
                                sqlx::query("DELETE FROM tabulars WHERE id = $1")
                                    .bind(current.id.0)
                                    .execute(&mut *tx)
                                    .await
                                    .map_err(failed)?;
                            }
                            entries.push(dropped_entry(&current, "drop"));
                        }
                    }
                }
                let commit = record_commit_with(
                    &mut tx,
                    line,
                    meta,
                    &entries,
                    Utc::now(),
                    Some(merged),
                )
                .await?;
                tx.commit().await.map_err(failed)?;
                Ok(commit)
            }

            async fn reset_branch(
                &self,
                warehouse: WarehouseId,
                name: &str,
                to: &ForkPoint,
                at: DateTime<Utc>,
            ) -> Result<Ref> {
                let failed = |e| db_error("resetting a branch", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let retired = sqlx::query(
                    "UPDATE refs SET name = '~' || name || '~' || $3, retired_at = $4 \
                     WHERE warehouse_id = $1 AND name = $2 AND kind = 'branch' AND retired_at IS NULL",
                )
                .bind(warehouse.0)
                .bind(name)
                .bind(Uuid::new_v4().simple().to_string())
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
                if retired.rows_affected() == 0 {
                    return Err(Error::not_found(
                        Entity::Ref,
                        format!("branch {name:?} does not exist"),
                    ));
                }
                let made = Ref {
                    id: RefId::new(),
                    warehouse_id: warehouse,
                    name: name.to_string(),
                    kind: RefKind::Branch,
                    created_at: at,
                    parent: Some((to.line, to.seq)),
                    head_seq: 0,
                    head_commit: Some(to.commit),
                    head_generation: to.generation,
                };
                sqlx::query(
                    "INSERT INTO refs (id, warehouse_id, name, kind, created_at, parent_id, \
                     parent_seq, head_seq, head_commit, head_generation) \
                     VALUES ($1, $2, $3, 'branch', $4, $5, $6, 0, $7, $8)",
                )
                .bind(made.id.0)
                .bind(warehouse.0)
                .bind(name)
                .bind(at)
                .bind(to.line.0)
                .bind(to.seq)
                .bind(to.commit.0)
                .bind(to.generation)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
                tx.commit().await.map_err(failed)?;
                Ok(made)
            }

            async fn has_other_refs(&self, warehouse: WarehouseId) -> Result<bool> {
                let other = sqlx::query(
                    "SELECT 1 FROM refs WHERE warehouse_id = $1 AND parent_id IS NOT NULL LIMIT 1",
                )
                .bind(warehouse.0)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("listing refs", e))?;
                Ok(other.is_some())
            }

            async fn list_commits(
                &self,
                line: RefId,
                upto: i64,
                limit: usize,
            ) -> Result<(Vec<Commit>, Option<(RefId, i64)>)> {
                let mut commits = Vec::new();
                let mut at = Some((line, upto));
                while let Some((line, upto)) = at {
                    if commits.len() >= limit {
                        break;
                    }
                    // One more than still wanted tells whether this line goes on.
                    let wanted = (limit - commits.len()) as i64;
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COMMIT_COLUMNS} FROM commits WHERE line_id = $1 AND seq <= $2 \
                         ORDER BY seq DESC LIMIT $3"
                    )))
                    .bind(line.0)
                    .bind(upto)
                    .bind(wanted + 1)
                    .fetch_all(&self.read)
                    .await
                    .map_err(|e| db_error("listing commits", e))?;
                    let mut page = rows
                        .iter()
                        .map(commit_from_row)
                        .collect::<Result<Vec<_>>>()?;
                    if page.len() as i64 > wanted {
                        let next = page.pop().expect("one more than wanted");
                        commits.extend(page);
                        return Ok((commits, Some((next.line, next.seq))));
                    }
                    commits.extend(page);
                    // Then the line it forked from, up to the fork.
                    let parent = sqlx::query("SELECT parent_id, parent_seq FROM refs WHERE id = $1")
                        .bind(line.0)
                        .fetch_optional(&self.read)
                        .await
                        .map_err(|e| db_error("listing commits", e))?;
                    at = match parent {
                        Some(row) => {
                            let decode = |e| db_error("listing commits", e);
                            match (
                                row.try_get::<Option<Uuid>, _>("parent_id").map_err(decode)?,
                                row.try_get::<Option<i64>, _>("parent_seq").map_err(decode)?,
                            ) {
                                (Some(parent), Some(seq)) => Some((RefId(parent), seq)),
                                _ => None,
                            }
                        }
                        None => None,
                    };
                }
                Ok((commits, at))
            }
        }

        #[async_trait]
        impl SealedSecretStore for $store {
            async fn put_secret(&self, id: SecretId, secret: &SealedSecret) -> Result<()> {
                sqlx::query(
                    "INSERT INTO secrets (id, nonce, ciphertext, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (id) DO UPDATE SET nonce = excluded.nonce, \
                     ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
                )
                .bind(id.0)
                .bind(&secret.nonce)
                .bind(&secret.ciphertext)
                .bind(secret.created_at)
                .bind(secret.updated_at)
                .execute(&self.write)
                .await
                .map_err(|e| db_error("storing a secret", e))?;
                Ok(())
            }

            async fn get_secret(&self, id: SecretId) -> Result<Option<SealedSecret>> {
                let row = sqlx::query(
                    "SELECT nonce, ciphertext, created_at, updated_at FROM secrets WHERE id = $1",
                )
                .bind(id.0)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a secret", e))?;
                row.map(|row| {
                    Ok(SealedSecret {
                        nonce: row.try_get("nonce")?,
                        ciphertext: row.try_get("ciphertext")?,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                    })
                })
                .transpose()
                .map_err(|e| db_error("decoding a secret", e))
            }

            async fn delete_secret(&self, id: SecretId) -> Result<()> {
                sqlx::query("DELETE FROM secrets WHERE id = $1")
                    .bind(id.0)
                    .execute(&self.write)
                    .await
                    .map_err(|e| db_error("deleting a secret", e))?;
                Ok(())
            }
        }

        fn access_key_from_row(row: &$row) -> std::result::Result<AccessKey, sqlx::Error> {
            Ok(AccessKey {
                id: row.try_get("id")?,
                warehouse_id: WarehouseId(row.try_get("warehouse_id")?),
                description: row.try_get("description")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        }

        #[async_trait]
        impl AccessKeyStore for $store {
            async fn create_access_key(&self, key: &AccessKey) -> Result<()> {
                sqlx::query(
                    "INSERT INTO access_keys (id, warehouse_id, description, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&key.id)
                .bind(key.warehouse_id.0)
                .bind(&key.description)
                .bind(key.created_at)
                .bind(key.expires_at)
                .execute(&self.write)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        not_found(Entity::Warehouse, key.warehouse_id)
                    } else {
                        db_error("creating an access key", e)
                    }
                })?;
                Ok(())
            }

            async fn get_access_key(&self, id: &str) -> Result<Option<AccessKey>> {
                let row = sqlx::query(
                    "SELECT id, warehouse_id, description, created_at, expires_at \
                     FROM access_keys WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading an access key", e))?;
                row.as_ref()
                    .map(access_key_from_row)
                    .transpose()
                    .map_err(|e| db_error("decoding an access key", e))
            }

            async fn list_access_keys(&self, warehouse: WarehouseId) -> Result<Vec<AccessKey>> {
                let rows = sqlx::query(
                    "SELECT id, warehouse_id, description, created_at, expires_at \
                     FROM access_keys WHERE warehouse_id = $1 ORDER BY created_at, id",
                )
                .bind(warehouse.0)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing access keys", e))?;
                rows.iter()
                    .map(access_key_from_row)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| db_error("decoding an access key", e))
            }

            async fn delete_access_key(&self, warehouse: WarehouseId, id: &str) -> Result<()> {
                let done = sqlx::query("DELETE FROM access_keys WHERE warehouse_id = $1 AND id = $2")
                    .bind(warehouse.0)
                    .bind(id)
                    .execute(&self.write)
                    .await
                    .map_err(|e| db_error("deleting an access key", e))?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::AccessKey, id));
                }
                Ok(())
            }
        }
    };
}

pub(crate) use impl_sql_store;

/// Names the sqlx database type of a backend, for generic helpers inside [`impl_sql_store!`].
pub(crate) trait BackendDb {
    type Db: sqlx::Database;
    /// Whether a group-commit writer keeps its connection from one group to the next. On
    /// PostgreSQL that saves the pool's liveness check, a round trip per group; SQLite's one
    /// writer connection must go back to the pool for the other writes.
    const KEEPS_WRITER_CONNECTION: bool;
    /// Whether one statement can insert into several tables (PostgreSQL's data-modifying `WITH`),
    /// so that a line's commits, history and head are written in one round trip.
    const WRITES_IN_ONE_STATEMENT: bool;
    /// A `BEGIN` that also takes a group's locks in the same round trip (the folder-claim lock of
    /// each warehouse in `claims`, then each line's row, in the given sorted order), or `None`
    /// where locks cost no round trip (SQLite, whose single writer serializes anyway). Only ids
    /// are formatted into the text: UUIDs, hex digits and dashes.
    fn begin_locking(claims: &[uuid::Uuid], lines: &[uuid::Uuid]) -> Option<String>;
}
