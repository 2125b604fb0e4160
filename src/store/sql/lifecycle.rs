//! `LifecycleStore`: delete profiles, protection, and soft-deleted tables and views (their
//! records are written by a drop, in its transaction, through `record_drop`).

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;
        use uuid::Uuid;

        use crate::error::{Entity, Error, Result};
        use crate::model::events::CloudEvent;
        use crate::model::lifecycle::{
            DeleteProfile, DeletedTabular, DropOptions, DroppedNamespaces, MaintenancePolicy,
            NewTask, ProtectedObject, RecursiveDrop, RecursivelyDropped, Undrop,
        };
        use crate::model::{
            CommitMeta, NamespaceIdent, Page, PageRequest, RefId, Tabular, TabularId,
            TabularIdent, TabularKind, WarehouseId,
        };
        use crate::store::{
            HistoryEntry, LifecycleStore, TabularChange, compress, contains_pattern, db_error, decompress,
            fetch_limit, not_found, page_of,
        };

        type LConn = <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection;

        /// Serializes reading a warehouse's protections in a drop's transaction with changing
        /// them: on PostgreSQL an advisory lock of its own until the transaction ends (a drop
        /// reading "unprotected" holds it until the row is gone, so a protect that returned first
        /// is always seen); SQLite's one writer serializes anyway. Taken after the line's row,
        /// and nothing is locked after it.
        async fn lock_protections(conn: &mut LConn, warehouse: WarehouseId) -> Result<()> {
            sqlx::query($location_lock)
                .bind(format!("protections:{}", warehouse.0))
                .execute(&mut *conn)
                .await
                .map_err(|e| db_error("locking protections", e))?;
            Ok(())
        }

        /// Whether the warehouse still has soft-deleted tables or views, or unfinished tasks.
        pub(crate) async fn has_pending(conn: &mut LConn, warehouse: WarehouseId) -> Result<bool> {
            let found: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM deleted_tabulars WHERE warehouse_id = $1 \
                 UNION ALL SELECT 1 FROM tasks WHERE warehouse_id = $1 \
                 AND status IN ('scheduled', 'running') LIMIT 1",
            )
            .bind(warehouse.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a warehouse's tasks", e))?;
            Ok(found.is_some())
        }

        /// `Conflict` when `object` is protected and the drop is not forced.
        pub(crate) async fn check_unprotected(
            conn: &mut LConn,
            warehouse: WarehouseId,
            object: &ProtectedObject,
            force: bool,
            what: &str,
        ) -> Result<()> {
            if force {
                return Ok(());
            }
            lock_protections(conn, warehouse).await?;
            let (kind, key) = object.key();
            let protected: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM protections WHERE warehouse_id = $1 AND kind = $2 AND key = $3",
            )
            .bind(warehouse.0)
            .bind(kind)
            .bind(&key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading protection", e))?;
            if protected.is_some() {
                return Err(Error::conflict(format!(
                    "{what} is protected; drop it with force=true, or unprotect it first"
                )));
            }
            Ok(())
        }

        /// Writes what a drop brings beside removing the row (in the drop's transaction): the
        /// protection check comes first, then the soft-deleted record and the tasks.
        pub(crate) async fn record_drop(
            conn: &mut LConn,
            line: RefId,
            dropped: &Tabular,
            options: &DropOptions,
        ) -> Result<()> {
            record_drop_with(conn, line, dropped, options, "{}").await
        }

        /// `record_drop`, keeping `namespaces` (JSON of `DroppedNamespaces`) with a soft delete.
        async fn record_drop_with(
            conn: &mut LConn,
            line: RefId,
            dropped: &Tabular,
            options: &DropOptions,
            namespaces: &str,
        ) -> Result<()> {
            if let Some(soft) = &options.soft {
                // A version a branch inherits may come without its metadata (its file has it):
                // kept empty, and read from the file again on undrop.
                let blob = if dropped.metadata.is_empty() {
                    Vec::new()
                } else {
                    compress(&dropped.metadata)?
                };
                sqlx::query(
                    "INSERT INTO deleted_tabulars (id, warehouse_id, line_id, namespace, name, kind, \
                     uuid, location, metadata_location, metadata, namespaces, purge, deleted_at, \
                     expires_at, deleted_by, task_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $16, $11, $12, $13, $14, $15)",
                )
                .bind(soft.deleted_id)
                .bind(dropped.warehouse_id.0)
                .bind(line.0)
                .bind(dropped.ident.namespace.joined())
                .bind(&dropped.ident.name)
                .bind(dropped.kind.as_str())
                .bind(dropped.uuid)
                .bind(&dropped.location)
                .bind(&dropped.metadata_location)
                .bind(blob)
                .bind(soft.purge)
                .bind(chrono::Utc::now().timestamp_millis())
                .bind(soft.expires_at)
                .bind(&soft.deleted_by)
                .bind(soft.expiry.id)
                .bind(namespaces)
                .execute(&mut *conn)
                .await
                .map_err(|e| db_error("recording a soft-deleted table", e))?;
                insert_tasks(&mut *conn, std::slice::from_ref(&soft.expiry)).await?;
            }
            if let Some(purge) = &options.purge {
                let mut purge = purge.clone();
                if let Some(payload) = purge.payload.as_object_mut() {
                    payload.insert("uuid".into(), serde_json::json!(dropped.uuid));
                    payload.insert("location".into(), serde_json::json!(dropped.location));
                }
                purge.target = format!("table:{}", dropped.uuid);
                insert_tasks(&mut *conn, std::slice::from_ref(&purge)).await?;
            }
            Ok(())
        }

        /// Brings back, on `line`, the namespace `ident` and those of its parents the line no
        /// longer sees, from what a recursive drop kept (`dropped`); each gets a history entry.
        /// `NotFound(Namespace)` for one the drop did not keep.
        async fn restore_namespaces(
            conn: &mut LConn,
            line: RefId,
            warehouse: WarehouseId,
            ident: &NamespaceIdent,
            dropped: &DroppedNamespaces,
            entries: &mut Vec<HistoryEntry>,
        ) -> Result<()> {
            let levels = ident.levels();
            for depth in 1..=levels.len() {
                let level = NamespaceIdent::new(levels[..depth].to_vec())?;
                if resolve_namespace(conn, line, &level, None).await?.is_some() {
                    continue;
                }
                let Some(properties) = dropped.get(&level.joined()) else {
                    return Err(Error::not_found(
                        Entity::Namespace,
                        format!("namespace {level} does not exist; create it first, or undrop with rename-to"),
                    ));
                };
                let parent_id = match level.parent() {
                    Some(parent) => Some(own_namespace_row(conn, line, &parent).await?),
                    None => None,
                };
                let now = chrono::Utc::now();
                sqlx::query(
                    "INSERT INTO namespaces (id, warehouse_id, ref_id, name, parent_name, parent_id, \
                     properties, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)",
                )
                .bind(Uuid::now_v7())
                .bind(warehouse.0)
                .bind(line.0)
                .bind(level.joined())
                .bind(level.parent().map(|p| p.joined()).unwrap_or_default())
                .bind(parent_id)
                .bind(sqlx::types::Json(properties))
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(|e| db_error("restoring a namespace", e))?;
                entries.push(HistoryEntry::Namespace {
                    ident: level.clone(),
                    op: "create",
                    properties: Some(properties.clone()),
                });
            }
            Ok(())
        }

        /// Everything under `root` as `line` sees it: the namespaces (root first, parents before
        /// children) and the tables and views.
        async fn subtree(
            conn: &mut LConn,
            line: RefId,
            root: &NamespaceIdent,
        ) -> Result<(Vec<crate::model::Namespace>, Vec<Tabular>)> {
            let Some(top) = resolve_namespace(conn, line, root, None).await? else {
                return Err(not_found(Entity::Namespace, root));
            };
            let mut namespaces = vec![top];
            let mut tabulars = Vec::new();
            let mut i = 0;
            while i < namespaces.len() {
                let joined = namespaces[i].ident.joined();
                for kind in [TabularKind::Table, TabularKind::View] {
                    let names = resolve_names(
                        conn,
                        line,
                        None,
                        Scope::Tabulars { namespace: &joined, kind },
                    )
                    .await?;
                    for name in names {
                        let ident = TabularIdent {
                            namespace: namespaces[i].ident.clone(),
                            name,
                        };
                        if let Some(t) = resolve_tabular(conn, line, &ident, None).await?
                            && t.kind == kind
                        {
                            tabulars.push(t);
                        }
                    }
                }
                let children =
                    resolve_names(conn, line, None, Scope::Namespaces { parent: &joined }).await?;
                for child in children {
                    let ident = NamespaceIdent::from_joined(&child)?;
                    if let Some(ns) = resolve_namespace(conn, line, &ident, None).await? {
                        namespaces.push(ns);
                    }
                }
                i += 1;
            }
            Ok((namespaces, tabulars))
        }

        /// `Conflict` naming a protected namespace or table among these, unless forced.
        async fn check_subtree_unprotected(
            conn: &mut LConn,
            warehouse: WarehouseId,
            namespaces: &[crate::model::Namespace],
            tabulars: &[Tabular],
        ) -> Result<()> {
            lock_protections(conn, warehouse).await?;
            let protected: Vec<(String, String)> = sqlx::query_as(
                "SELECT kind, key FROM protections WHERE warehouse_id = $1 AND kind <> 'warehouse'",
            )
            .bind(warehouse.0)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error("reading protection", e))?;
            let is = |kind: &str, key: &str| protected.iter().any(|(k, v)| k == kind && v == key);
            for ns in namespaces {
                if is("namespace", &ns.ident.joined()) {
                    return Err(Error::conflict(format!(
                        "namespace {} is protected; drop with force=true, or unprotect it first",
                        ns.ident
                    )));
                }
            }
            for t in tabulars {
                if is(t.kind.as_str(), &t.uuid.to_string()) {
                    return Err(Error::conflict(format!(
                        "{} {} is protected; drop with force=true, or unprotect it first",
                        t.kind.as_str(),
                        t.ident
                    )));
                }
            }
            Ok(())
        }

        const DELETED_COLUMNS: &str = "id, warehouse_id, line_id, namespace, name, kind, uuid, \
             location, metadata_location, purge, deleted_at, expires_at, deleted_by, task_id, \
             CAST(LENGTH(metadata) AS BIGINT) AS metadata_bytes";

        fn deleted_from_row(row: &$row) -> Result<DeletedTabular> {
            let failed = |e| db_error("decoding a soft-deleted table", e);
            let namespace: String = row.try_get("namespace").map_err(failed)?;
            let kind: String = row.try_get("kind").map_err(failed)?;
            Ok(DeletedTabular {
                id: row.try_get("id").map_err(failed)?,
                warehouse_id: WarehouseId(row.try_get("warehouse_id").map_err(failed)?),
                line_id: RefId(row.try_get("line_id").map_err(failed)?),
                ident: TabularIdent {
                    namespace: NamespaceIdent::from_joined(&namespace)?,
                    name: row.try_get("name").map_err(failed)?,
                },
                kind: if kind == "view" { TabularKind::View } else { TabularKind::Table },
                uuid: row.try_get("uuid").map_err(failed)?,
                location: row.try_get("location").map_err(failed)?,
                metadata_location: row.try_get("metadata_location").map_err(failed)?,
                purge: row.try_get("purge").map_err(failed)?,
                deleted_at: row.try_get("deleted_at").map_err(failed)?,
                expires_at: row.try_get("expires_at").map_err(failed)?,
                deleted_by: row.try_get("deleted_by").map_err(failed)?,
                task_id: row.try_get("task_id").map_err(failed)?,
                metadata_kept: row
                    .try_get::<Option<i64>, _>("metadata_bytes")
                    .map_err(failed)?
                    .is_some_and(|n| n > 0),
            })
        }

        #[async_trait]
        impl LifecycleStore for $store {
            async fn delete_profile(&self, warehouse: WarehouseId) -> Result<DeleteProfile> {
                let profile: Option<String> =
                    sqlx::query_scalar("SELECT delete_profile FROM warehouses WHERE id = $1")
                        .bind(warehouse.0)
                        .fetch_optional(&self.read)
                        .await
                        .map_err(|e| db_error("reading a delete profile", e))?;
                let profile = profile.ok_or_else(|| not_found(Entity::Warehouse, warehouse))?;
                serde_json::from_str(&profile)
                    .map_err(|e| Error::internal("decoding a delete profile", e))
            }

            async fn set_delete_profile(
                &self,
                warehouse: WarehouseId,
                profile: &DeleteProfile,
                events: &[CloudEvent],
            ) -> Result<()> {
                let failed = |e| db_error("setting a delete profile", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let json = serde_json::to_string(profile)
                    .map_err(|e| Error::internal("encoding a delete profile", e))?;
                let done = sqlx::query("UPDATE warehouses SET delete_profile = $1 WHERE id = $2")
                    .bind(json)
                    .bind(warehouse.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::Warehouse, warehouse));
                }
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(failed)
            }

            async fn set_protection(
                &self,
                warehouse: WarehouseId,
                object: &ProtectedObject,
                protected: bool,
                events: &[CloudEvent],
            ) -> Result<()> {
                let failed = |e| db_error("setting protection", e);
                let (kind, key) = object.key();
                let mut tx = self.write.begin().await.map_err(failed)?;
                let exists: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM warehouses WHERE id = $1")
                        .bind(warehouse.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(failed)?;
                if exists.is_none() {
                    return Err(not_found(Entity::Warehouse, warehouse));
                }
                lock_protections(&mut tx, warehouse).await?;
                let statement = if protected {
                    "INSERT INTO protections (warehouse_id, kind, key) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING"
                } else {
                    "DELETE FROM protections WHERE warehouse_id = $1 AND kind = $2 AND key = $3"
                };
                sqlx::query(statement)
                    .bind(warehouse.0)
                    .bind(kind)
                    .bind(&key)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(failed)
            }

            async fn is_protected(
                &self,
                warehouse: WarehouseId,
                object: &ProtectedObject,
            ) -> Result<bool> {
                let (kind, key) = object.key();
                let protected: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM protections WHERE warehouse_id = $1 AND kind = $2 AND key = $3",
                )
                .bind(warehouse.0)
                .bind(kind)
                .bind(&key)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading protection", e))?;
                Ok(protected.is_some())
            }

            async fn list_deleted(
                &self,
                warehouse: WarehouseId,
                namespace: Option<&NamespaceIdent>,
                name: Option<&str>,
                page: &PageRequest,
            ) -> Result<Page<DeletedTabular>> {
                // Ordered by namespace, name and id; the page token is the last entry's id.
                let after = match &page.after {
                    Some(token) => {
                        let id = Uuid::parse_str(token).map_err(|_| {
                            Error::bad_request("pageToken is not one this server gave")
                        })?;
                        let row = sqlx::query(
                            "SELECT namespace, name FROM deleted_tabulars \
                             WHERE warehouse_id = $1 AND id = $2",
                        )
                        .bind(warehouse.0)
                        .bind(id)
                        .fetch_optional(&self.read)
                        .await
                        .map_err(|e| db_error("listing soft-deleted tables", e))?;
                        match row {
                            Some(row) => Some((
                                row.try_get::<String, _>("namespace")
                                    .map_err(|e| db_error("listing soft-deleted tables", e))?,
                                row.try_get::<String, _>("name")
                                    .map_err(|e| db_error("listing soft-deleted tables", e))?,
                                id,
                            )),
                            // Undropped or expired meanwhile: start over is wrong, so refuse.
                            None => {
                                return Err(Error::bad_request(
                                    "pageToken names an entry that is gone; list again",
                                ));
                            }
                        }
                    }
                    None => None,
                };
                let (after_ns, after_name, after_id) = match &after {
                    Some((ns, n, id)) => (Some(ns.clone()), Some(n.clone()), Some(*id)),
                    None => (None, None, None),
                };
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {DELETED_COLUMNS} FROM deleted_tabulars WHERE warehouse_id = $1 \
                     AND ($2 IS NULL OR namespace = $2) \
                     AND ($3 IS NULL OR LOWER(name) LIKE $3 ESCAPE '\\') \
                     AND ($4 IS NULL OR namespace > $4 OR (namespace = $4 AND name > $5) \
                          OR (namespace = $4 AND name = $5 AND id > $6)) \
                     ORDER BY namespace, name, id LIMIT $7"
                )))
                .bind(warehouse.0)
                .bind(namespace.map(|n| n.joined()))
                .bind(contains_pattern(name))
                .bind(after_ns)
                .bind(after_name)
                .bind(after_id)
                .bind(fetch_limit(page))
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing soft-deleted tables", e))?;
                let items = rows.iter().map(deleted_from_row).collect::<Result<Vec<_>>>()?;
                Ok(page_of(items, page, |d| d.id.to_string()))
            }

            async fn get_deleted(
                &self,
                warehouse: WarehouseId,
                id: Uuid,
            ) -> Result<Option<DeletedTabular>> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {DELETED_COLUMNS} FROM deleted_tabulars \
                     WHERE warehouse_id = $1 AND id = $2"
                )))
                .bind(warehouse.0)
                .bind(id)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a soft-deleted table", e))?;
                row.as_ref().map(deleted_from_row).transpose()
            }

            async fn undrop(
                &self,
                warehouse: WarehouseId,
                undrop: &Undrop,
                meta: &CommitMeta,
                metadata: Option<bytes::Bytes>,
            ) -> Result<Tabular> {
                let failed = |e| db_error("undropping", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {DELETED_COLUMNS}, metadata, namespaces FROM deleted_tabulars \
                     WHERE warehouse_id = $1 AND id = $2"
                )))
                .bind(warehouse.0)
                .bind(undrop.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?;
                let Some(row) = row else {
                    return Err(Error::not_found(
                        Entity::DeletedTabular,
                        format!("no soft-deleted table or view has id {}", undrop.id),
                    ));
                };
                let deleted = deleted_from_row(&row)?;
                let mut blob: Vec<u8> = row.try_get("metadata").map_err(failed)?;
                let json = if blob.is_empty() {
                    let json = metadata.ok_or_else(|| {
                        Error::internal(
                            "undropping",
                            anyhow::anyhow!("the soft-deleted table's metadata must be read from its file"),
                        )
                    })?;
                    blob = compress(&json)?;
                    json
                } else {
                    bytes::Bytes::from(decompress(&blob)?)
                };
                let head = lock_line(&mut tx, deleted.line_id).await?;
                let now = chrono::Utc::now();
                let restored = Tabular {
                    id: TabularId::new(),
                    warehouse_id: warehouse,
                    ref_id: deleted.line_id,
                    ident: undrop.rename_to.clone().unwrap_or_else(|| deleted.ident.clone()),
                    kind: deleted.kind,
                    uuid: deleted.uuid,
                    location: deleted.location.clone(),
                    metadata_location: deleted.metadata_location.clone(),
                    metadata: json,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                // A namespace a recursive drop removed comes back with it.
                let kept: String = row.try_get("namespaces").map_err(failed)?;
                let kept: DroppedNamespaces = serde_json::from_str(&kept).unwrap_or_default();
                let mut entries = Vec::new();
                restore_namespaces(
                    &mut tx,
                    deleted.line_id,
                    warehouse,
                    &restored.ident.namespace,
                    &kept,
                    &mut entries,
                )
                .await?;
                // As a create: the name must be free on the line and the namespace there; the
                // folder is the table's own (its UUID's claims were never released).
                let (created, _) = write_tabular_changes(
                    &mut tx,
                    deleted.line_id,
                    head.parent.is_some(),
                    &[TabularChange::Create(restored.clone())],
                    &[blob],
                )
                .await?;
                entries.extend(created);
                record_commit(&mut tx, deleted.line_id, meta, &entries, now).await?;
                sqlx::query("DELETE FROM deleted_tabulars WHERE id = $1")
                    .bind(deleted.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                cancel_target_tasks(&mut tx, warehouse, &format!("deleted:{}", deleted.id))
                    .await?;
                tx.commit().await.map_err(failed)?;
                Ok(restored)
            }

            async fn expire_deleted(
                &self,
                warehouse: WarehouseId,
                id: Uuid,
                purge: Option<NewTask>,
            ) -> Result<Option<DeletedTabular>> {
                let failed = |e| db_error("expiring a soft-deleted table", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM deleted_tabulars WHERE warehouse_id = $1 AND id = $2 \
                     RETURNING {DELETED_COLUMNS}"
                )))
                .bind(warehouse.0)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(failed)?;
                let Some(row) = row else {
                    tx.commit().await.map_err(failed)?;
                    return Ok(None);
                };
                let deleted = deleted_from_row(&row)?;
                if deleted.purge
                    && let Some(task) = purge
                {
                    insert_tasks(&mut tx, std::slice::from_ref(&task)).await?;
                }
                tx.commit().await.map_err(failed)?;
                Ok(Some(deleted))
            }

            async fn drop_namespace_recursive(
                &self,
                line: RefId,
                root: &NamespaceIdent,
                meta: &CommitMeta,
                options: &RecursiveDrop,
            ) -> Result<RecursivelyDropped> {
                let failed = |e| db_error("dropping a namespace", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let head = lock_line(&mut tx, line).await?;
                let warehouse = WarehouseId(head.warehouse);
                let (namespaces, tabulars) = subtree(&mut tx, line, root).await?;
                if !options.force {
                    check_subtree_unprotected(&mut tx, warehouse, &namespaces, &tabulars).await?;
                }
                let kept: DroppedNamespaces = namespaces
                    .iter()
                    .map(|ns| (ns.ident.joined(), ns.properties.clone()))
                    .collect();
                let kept_json = serde_json::to_string(&kept)
                    .map_err(|e| Error::internal("encoding namespaces", e))?;
                let now = chrono::Utc::now().timestamp_millis();
                let mut entries = Vec::with_capacity(namespaces.len() + tabulars.len());
                let mut tasks = 0;
                for t in &tabulars {
                    let mut drop = DropOptions { force: true, ..Default::default() };
                    match &options.soft {
                        Some((expires_at, deleted_by)) => {
                            let deleted_id = Uuid::now_v7();
                            drop.soft = Some(crate::model::lifecycle::SoftDrop {
                                deleted_id,
                                purge: options.purge && t.kind == TabularKind::Table,
                                expires_at: *expires_at,
                                deleted_by: deleted_by.clone(),
                                expiry: crate::model::lifecycle::expiry_task(
                                    warehouse, deleted_id, t.kind, &t.ident, *expires_at,
                                    options.max_attempts,
                                ),
                            });
                        }
                        None if options.purge && t.kind == TabularKind::Table => {
                            drop.purge = Some(crate::model::lifecycle::purge_task(
                                warehouse, line, &t.ident, None, options.max_attempts, now,
                            ));
                        }
                        None => {}
                    }
                    tasks += usize::from(drop.soft.is_some() || drop.purge.is_some());
                    record_drop_with(&mut tx, line, t, &drop, &kept_json).await?;
                    if t.ref_id == line && t.id.0 != Uuid::nil() {
                        sqlx::query("DELETE FROM tabulars WHERE id = $1 AND ref_id = $2")
                            .bind(t.id.0)
                            .bind(line.0)
                            .execute(&mut *tx)
                            .await
                            .map_err(failed)?;
                    }
                    entries.push(dropped_entry(t, "drop"));
                }
                // Children before parents (their rows reference their parents').
                for ns in namespaces.iter().rev() {
                    sqlx::query("DELETE FROM namespaces WHERE ref_id = $1 AND name = $2")
                        .bind(line.0)
                        .bind(ns.ident.joined())
                        .execute(&mut *tx)
                        .await
                        .map_err(failed)?;
                    entries.push(HistoryEntry::Namespace {
                        ident: ns.ident.clone(),
                        op: "drop",
                        properties: None,
                    });
                }
                record_commit(&mut tx, line, meta, &entries, chrono::Utc::now()).await?;
                tx.commit().await.map_err(failed)?;
                Ok(RecursivelyDropped {
                    namespaces: namespaces.into_iter().map(|n| n.ident).collect(),
                    tabulars: tabulars.into_iter().map(|t| t.ident).collect(),
                    tasks,
                })
            }

            async fn maintenance_policy(&self, warehouse: WarehouseId) -> Result<MaintenancePolicy> {
                let policy: Option<String> =
                    sqlx::query_scalar("SELECT maintenance FROM warehouses WHERE id = $1")
                        .bind(warehouse.0)
                        .fetch_optional(&self.read)
                        .await
                        .map_err(|e| db_error("reading a maintenance policy", e))?;
                let policy = policy.ok_or_else(|| not_found(Entity::Warehouse, warehouse))?;
                serde_json::from_str(&policy)
                    .map_err(|e| Error::internal("decoding a maintenance policy", e))
            }

            async fn set_maintenance_policy(
                &self,
                warehouse: WarehouseId,
                policy: &MaintenancePolicy,
                events: &[CloudEvent],
            ) -> Result<()> {
                let failed = |e| db_error("setting a maintenance policy", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let json = serde_json::to_string(policy)
                    .map_err(|e| Error::internal("encoding a maintenance policy", e))?;
                let done = sqlx::query("UPDATE warehouses SET maintenance = $1 WHERE id = $2")
                    .bind(json)
                    .bind(warehouse.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::Warehouse, warehouse));
                }
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(failed)
            }

            async fn tables_in(
                &self,
                line: RefId,
                namespace: Option<&NamespaceIdent>,
            ) -> Result<Vec<(TabularIdent, Uuid)>> {
                let rows = sqlx::query(
                    "SELECT n.name AS namespace, t.name, t.uuid FROM tabulars t \
                     JOIN namespaces n ON n.id = t.namespace_id \
                     WHERE t.ref_id = $1 AND t.kind = 'table' \
                     ORDER BY n.name, t.name",
                )
                .bind(line.0)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing tables", e))?;
                let scope = namespace.map(|n| n.joined());
                let mut tables = Vec::with_capacity(rows.len());
                for row in rows {
                    let failed = |e| db_error("listing tables", e);
                    let ns: String = row.try_get("namespace").map_err(failed)?;
                    if let Some(scope) = &scope
                        && ns != *scope
                        && !ns.starts_with(&format!("{scope}\u{1f}"))
                    {
                        continue;
                    }
                    tables.push((
                        TabularIdent {
                            namespace: NamespaceIdent::from_joined(&ns)?,
                            name: row.try_get("name").map_err(failed)?,
                        },
                        row.try_get("uuid").map_err(failed)?,
                    ));
                }
                Ok(tables)
            }

            async fn has_pending_lifecycle(&self, warehouse: WarehouseId) -> Result<bool> {
                let mut conn = self
                    .read
                    .acquire()
                    .await
                    .map_err(|e| db_error("reading a warehouse's tasks", e))?;
                has_pending(&mut conn, warehouse).await
            }
        }
    };
}

pub(crate) use stamp;
