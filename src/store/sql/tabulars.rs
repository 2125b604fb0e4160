//! `TabularStore`: tables and views, their folder claims, listing, drop and rename (commits go
//! through the group-commit writer in `writer`).

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use chrono::Utc;
        use sqlx::Row as _;
        use uuid::Uuid;

        use crate::error::{Entity, Error, Result};
        use crate::model::{
            CommitMeta, NamespaceIdent, Page, PageRequest, RefId, Tabular, TabularId, TabularIdent,
            TabularKind, WarehouseId
        };
        use crate::store::{
            HistoryEntry, TabularChange, TabularStore, compress, db_error, is_unique_violation,
            not_found
        };

        /// Gives a line its own row of a table or view it inherits (a new row id), holding `blob`
        /// (compressed metadata) at `version`. `CommitConflict` when the line got one meanwhile.
        pub(super) async fn copy_onto_line(
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

        pub(super) fn dropped_entry(t: &Tabular, op: &'static str) -> HistoryEntry {
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

        pub(super) fn taken(kind: TabularKind, ident: &TabularIdent) -> Error {
            Error::already_exists(
                kind.entity(),
                format!("a table or view named {ident} already exists"),
            )
        }

        #[async_trait]
        impl TabularStore for $store {
            async fn get_tabular(
                &self,
                ref_id: RefId,
                ident: &TabularIdent,
            ) -> Result<Option<Tabular>> {
                let mut conn = crate::store::sql::acquire(&self.read)
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

            async fn locate_tabulars(
                &self,
                ref_id: RefId,
                uuids: &[Uuid],
            ) -> Result<Vec<(TabularIdent, Uuid, TabularKind)>> {
                let failed = |e| db_error("locating tables", e);
                let mut conn = crate::store::sql::acquire(&self.read).await.map_err(failed)?;
                let mut out = Vec::new();
                let branch = line_info(&mut conn, ref_id).await?.1.is_some();
                for chunk in uuids.chunks(crate::store::MAX_IN_LIST) {
                    let list = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
                    if !branch {
                        let sql = format!(
                            "SELECT n.name AS namespace, t.name, t.uuid, t.kind FROM tabulars t \
                             JOIN namespaces n ON n.id = t.namespace_id WHERE t.ref_id = $1 AND t.uuid IN ({list})"
                        );
                        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ref_id.0);
                        for u in chunk {
                            query = query.bind(*u);
                        }
                        for row in query.fetch_all(&mut *conn).await.map_err(failed)? {
                            let namespace: String = row.try_get("namespace").map_err(failed)?;
                            let kind: String = row.try_get("kind").map_err(failed)?;
                            out.push((
                                TabularIdent {
                                    namespace: NamespaceIdent::from_joined(&namespace)?,
                                    name: row.try_get("name").map_err(failed)?,
                                },
                                row.try_get::<Uuid, _>("uuid").map_err(failed)?,
                                if kind == "view" { TabularKind::View } else { TabularKind::Table },
                            ));
                        }
                        continue;
                    }
                    // A branch: every name these UUIDs had on the line or the lines it forked
                    // from, then what the line sees at each.
                    let mut candidates = std::collections::BTreeSet::new();
                    let mut line = Some(ref_id);
                    while let Some(current) = line {
                        let sql = format!(
                            "SELECT DISTINCT namespace, name FROM tabular_history \
                             WHERE line_id = $1 AND uuid IN ({list})"
                        );
                        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(current.0);
                        for u in chunk {
                            query = query.bind(*u);
                        }
                        for row in query.fetch_all(&mut *conn).await.map_err(failed)? {
                            let namespace: String = row.try_get("namespace").map_err(failed)?;
                            let name: String = row.try_get("name").map_err(failed)?;
                            candidates.insert((namespace, name));
                        }
                        line = line_info(&mut conn, current).await?.1.map(|(parent, _)| parent);
                    }
                    for (namespace, name) in candidates {
                        let ident = TabularIdent {
                            namespace: NamespaceIdent::from_joined(&namespace)?,
                            name,
                        };
                        if let Some(t) = resolve_tabular(&mut conn, ref_id, &ident, None).await?
                            && chunk.contains(&t.uuid)
                        {
                            out.push((ident, t.uuid, t.kind));
                        }
                    }
                }
                Ok(out)
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
                // A soft-deleted record may still be undropped: its files stay too.
                let held: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM tabulars WHERE warehouse_id = $1 AND uuid = $2 \
                     UNION ALL SELECT 1 FROM deleted_tabulars WHERE warehouse_id = $1 AND uuid = $2 \
                     LIMIT 1",
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
                // Only claims that still hold their folders: one released longer ago may have
                // let another table take an overlapping folder (checked under the claim lock
                // with the same cutoff), and must not come back over it.
                sqlx::query(
                    "UPDATE folder_claims SET released_at = NULL WHERE warehouse_id = $1 \
                     AND table_uuid = $2 AND released_at > $3",
                )
                .bind(warehouse.0)
                .bind(uuid)
                .bind(release_cutoff())
                .execute(&self.write)
                .await
                .map_err(|e| db_error("restoring a table's folders", e))?;
                Ok(())
            }

            async fn release_view_claims(&self, warehouse: WarehouseId, uuid: Uuid) -> Result<bool> {
                let done = sqlx::query(
                    "DELETE FROM folder_claims WHERE warehouse_id = $1 AND table_uuid = $2 \
                     AND kind = 'view' \
                     AND NOT EXISTS (SELECT 1 FROM tabulars WHERE warehouse_id = $1 AND uuid = $2) \
                     AND NOT EXISTS (SELECT 1 FROM deleted_tabulars WHERE warehouse_id = $1 AND uuid = $2)",
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
                only: Option<&[String]>,
            ) -> Result<Page<String>> {
                let mut conn = crate::store::sql::acquire(&self.read)
                    .await
                    .map_err(|e| db_error("listing tables", e))?;
                if only.is_some_and(|o| o.is_empty()) {
                    return Ok(Page { items: Vec::new(), next: None });
                }
                let filter_in_query = only.is_some_and(|o| o.len() <= crate::store::MAX_IN_LIST);
                if line_info(&mut conn, ref_id).await?.1.is_some() || (only.is_some() && !filter_in_query) {
                    let joined = namespace.joined();
                    let mut names = resolve_names(
                        &mut conn,
                        ref_id,
                        None,
                        Scope::Tabulars { namespace: &joined, kind },
                    )
                    .await?;
                    if let Some(only) = only {
                        let only: std::collections::HashSet<&String> = only.iter().collect();
                        names.retain(|n| only.contains(n));
                    }
                    return Ok(page_of(names, page));
                }
                drop(conn);
                let limit = page.limit.map(|l| i64::from(l) + 1).unwrap_or(i64::MAX);
                let only = only.unwrap_or_default();
                let filter = if only.is_empty() {
                    String::new()
                } else {
                    format!(
                        " AND t.name IN ({})",
                        (0..only.len()).map(|i| format!("${}", i + 6)).collect::<Vec<_>>().join(", ")
                    )
                };
                let sql = format!(
                    "SELECT t.name FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id \
                     WHERE n.ref_id = $1 AND n.name = $2 AND t.kind = $3 AND t.name > $4{filter} \
                     ORDER BY t.name LIMIT $5"
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(ref_id.0)
                    .bind(namespace.joined())
                    .bind(kind.as_str())
                    .bind(page.after.clone().unwrap_or_default())
                    .bind(limit);
                for name in only {
                    query = query.bind(name);
                }
                let rows = query
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

            async fn search_tabulars(
                &self,
                ref_id: RefId,
                needle: &str,
                page: &PageRequest,
            ) -> Result<Page<(TabularIdent, Uuid, TabularKind)>> {
                let failed = |e| db_error("searching tables", e);
                let pattern = crate::store::contains_pattern(Some(needle));
                let (after_ns, after_name) = match page.after.as_deref() {
                    Some(key) => crate::store::split_search_key(key)
                        .ok_or_else(|| Error::bad_request("not a page token of this search"))?,
                    None => ("", ""),
                };
                let kind_of = |kind: &str| if kind == "view" { TabularKind::View } else { TabularKind::Table };
                let mut conn = crate::store::sql::acquire(&self.read).await.map_err(failed)?;
                if line_info(&mut conn, ref_id).await?.1.is_none() {
                    // A line of its own (no fork): its rows are what it sees.
                    let rows = sqlx::query(
                        "SELECT n.name AS namespace, t.name, t.uuid, t.kind FROM tabulars t \
                         JOIN namespaces n ON n.id = t.namespace_id \
                         WHERE t.ref_id = $1 AND LOWER(t.name) LIKE $2 ESCAPE '\\' \
                         AND (n.name > $3 OR (n.name = $3 AND t.name > $4)) \
                         ORDER BY n.name, t.name LIMIT $5",
                    )
                    .bind(ref_id.0)
                    .bind(pattern)
                    .bind(after_ns)
                    .bind(after_name)
                    .bind(crate::store::fetch_limit(page))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(failed)?;
                    let mut found = Vec::with_capacity(rows.len());
                    for row in rows {
                        let namespace: String = row.try_get("namespace").map_err(failed)?;
                        let kind: String = row.try_get("kind").map_err(failed)?;
                        found.push((
                            TabularIdent {
                                namespace: NamespaceIdent::from_joined(&namespace)?,
                                name: row.try_get("name").map_err(failed)?,
                            },
                            row.try_get::<Uuid, _>("uuid").map_err(failed)?,
                            kind_of(&kind),
                        ));
                    }
                    return Ok(crate::store::page_of(found, page, |(ident, _, _)| {
                        crate::store::search_key(ident)
                    }));
                }
                // A branch: every matching name the line or the lines it forked from ever held,
                // then what the line sees at each, in order, until the page is full.
                let mut candidates = std::collections::BTreeSet::new();
                let mut line = Some(ref_id);
                while let Some(current) = line {
                    let rows = sqlx::query(
                        "SELECT DISTINCT namespace, name FROM tabular_history \
                         WHERE line_id = $1 AND LOWER(name) LIKE $2 ESCAPE '\\'",
                    )
                    .bind(current.0)
                    .bind(&pattern)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(failed)?;
                    for row in rows {
                        let namespace: String = row.try_get("namespace").map_err(failed)?;
                        let name: String = row.try_get("name").map_err(failed)?;
                        if (namespace.as_str(), name.as_str()) > (after_ns, after_name) {
                            candidates.insert((namespace, name));
                        }
                    }
                    line = line_info(&mut conn, current).await?.1.map(|(parent, _)| parent);
                }
                let want = page.limit.map(|l| l as usize + 1).unwrap_or(usize::MAX);
                let mut found = Vec::new();
                for (namespace, name) in candidates {
                    if found.len() == want {
                        break;
                    }
                    let ident = TabularIdent {
                        namespace: NamespaceIdent::from_joined(&namespace)?,
                        name,
                    };
                    if let Some(t) = resolve_tabular(&mut conn, ref_id, &ident, None).await? {
                        found.push((ident, t.uuid, t.kind));
                    }
                }
                Ok(crate::store::page_of(found, page, |(ident, _, _)| crate::store::search_key(ident)))
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
                options: &crate::model::lifecycle::DropOptions,
            ) -> Result<Tabular> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("dropping a table", e))?;
                // The line's row first, as every commit takes its locks.
                let head = lock_line(&mut tx, ref_id).await?;
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
                    check_unprotected(
                        &mut tx,
                        WarehouseId(head.warehouse),
                        &crate::model::lifecycle::ProtectedObject::Tabular(kind, inherited.uuid),
                        options.force,
                        &format!("{} {ident}", kind.as_str()),
                    )
                    .await?;
                    record_drop(&mut tx, ref_id, &inherited, options).await?;
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
                check_unprotected(
                    &mut tx,
                    dropped.warehouse_id,
                    &crate::model::lifecycle::ProtectedObject::Tabular(kind, dropped.uuid),
                    options.force,
                    &format!("{} {ident}", kind.as_str()),
                )
                .await?;
                record_drop(&mut tx, ref_id, &dropped, options).await?;
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
    };
}

pub(crate) use stamp;
