//! `RefStore`: branches, tags, commits, merges and resets.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::Row as _;
        use sqlx::types::Json;
        use uuid::Uuid;

        use crate::error::{Entity, Error, Result};
        use crate::model::events::CloudEvent;
        use crate::model::{
            Commit, CommitId, CommitMeta, ForkPoint, Ref, RefId, RefKind, WarehouseId
        };
        use crate::store::{
            HistoryEntry, MergeChange, RefStore, TabularChange, db_error, is_foreign_key_violation,
            is_unique_violation, not_found
        };

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
                events: &[CloudEvent],
            ) -> Result<Ref> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("creating a ref", e))?;
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
                .execute(&mut *tx)
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
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("creating a ref", e))?;
                Ok(made)
            }

            async fn delete_ref(
                &self,
                warehouse: WarehouseId,
                name: &str,
                kind: RefKind,
                events: &[CloudEvent],
            ) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("deleting a ref", e))?;
                let done = match kind {
                    RefKind::Tag => sqlx::query(
                        "DELETE FROM refs WHERE warehouse_id = $1 AND name = $2 AND kind = 'tag'",
                    )
                    .bind(warehouse.0)
                    .bind(name)
                    .execute(&mut *tx)
                    .await,
                    // The line stays (its commits may be read, merged or tagged): it loses its
                    // name and takes no more commits.
                    RefKind::Branch => sqlx::query(
                        "UPDATE refs SET name = $3, retired_at = $4 \
                         WHERE warehouse_id = $1 AND name = $2 AND kind = 'branch' \
                         AND retired_at IS NULL",
                    )
                    .bind(warehouse.0)
                    .bind(name)
                    .bind(Ref::retired_name(name))
                    .bind(Utc::now())
                    .execute(&mut *tx)
                    .await,
                }
                .map_err(|e| db_error("deleting a ref", e))?;
                if done.rows_affected() == 0 {
                    return Err(Error::not_found(
                        Entity::Ref,
                        format!("{} {name:?} does not exist", kind.as_str()),
                    ));
                }
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("deleting a ref", e))
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
                let name = Ref::commit_ref_name(commit);
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

            async fn versions_elsewhere(
                &self,
                warehouse: WarehouseId,
                line: RefId,
                uuid: Uuid,
            ) -> Result<Vec<String>> {
                let failed = |e| db_error("reading who uses a table", e);
                let mut found: std::collections::BTreeSet<String> = sqlx::query_scalar(
                    "SELECT DISTINCT h.metadata_location FROM tabular_history h \
                     JOIN refs r ON r.id = h.line_id \
                     WHERE r.warehouse_id = $1 AND h.uuid = $2 AND h.line_id <> $3 AND NOT h.dropped",
                )
                .bind(warehouse.0)
                .bind(uuid)
                .bind(line.0)
                .fetch_all(&self.read)
                .await
                .map_err(failed)?
                .into_iter()
                .collect();
                // Every ref and line, retired ones too: where each forked.
                let rows = sqlx::query(
                    "SELECT id, parent_id, parent_seq FROM refs WHERE warehouse_id = $1",
                )
                .bind(warehouse.0)
                .fetch_all(&self.read)
                .await
                .map_err(failed)?;
                let mut parents = std::collections::HashMap::new();
                for row in &rows {
                    let id: Uuid = row.try_get("id").map_err(failed)?;
                    let parent: Option<Uuid> = row.try_get("parent_id").map_err(failed)?;
                    let seq: Option<i64> = row.try_get("parent_seq").map_err(failed)?;
                    if let (Some(parent), Some(seq)) = (parent, seq) {
                        parents.insert(id, (parent, seq));
                    }
                }
                // A line's own rows of the table up to a seq: the newest (a renamed table's new
                // name before its old name's drop mark at the same seq).
                let newest = "SELECT metadata_location, dropped FROM tabular_history \
                              WHERE line_id = $1 AND uuid = $2 AND seq <= $3 \
                              ORDER BY seq DESC, dropped ASC LIMIT 1";
                let mut points: std::collections::BTreeSet<i64> = std::collections::BTreeSet::new();
                for (parent, seq) in parents.values() {
                    // Up the lines that never touched the table, to the one whose state it reads.
                    let (mut at, mut upto) = (*parent, *seq);
                    for _ in 0..parents.len() + 1 {
                        if at == line.0 {
                            points.insert(upto);
                            break;
                        }
                        let own = sqlx::query(newest)
                            .bind(at)
                            .bind(uuid)
                            .bind(upto)
                            .fetch_optional(&self.read)
                            .await
                            .map_err(failed)?;
                        if own.is_some() {
                            break; // that line's versions are all counted above
                        }
                        match parents.get(&at) {
                            Some((p, s)) => (at, upto) = (*p, (*s).min(upto)),
                            None => break,
                        }
                    }
                }
                for upto in points {
                    let row = sqlx::query(newest)
                        .bind(line.0)
                        .bind(uuid)
                        .bind(upto)
                        .fetch_optional(&self.read)
                        .await
                        .map_err(failed)?;
                    if let Some(row) = row {
                        let dropped: bool = row.try_get("dropped").map_err(failed)?;
                        if !dropped {
                            found.insert(row.try_get("metadata_location").map_err(failed)?);
                        }
                    }
                }
                Ok(found.into_iter().collect())
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
                events: &[CloudEvent],
            ) -> Result<Ref> {
                let failed = |e| db_error("resetting a branch", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                let retired = sqlx::query(
                    "UPDATE refs SET name = $3, retired_at = $4 \
                     WHERE warehouse_id = $1 AND name = $2 AND kind = 'branch' AND retired_at IS NULL",
                )
                .bind(warehouse.0)
                .bind(name)
                .bind(Ref::retired_name(name))
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
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(failed)?;
                Ok(made)
            }

            async fn protected_branches(&self, warehouse: WarehouseId) -> Result<Vec<String>> {
                sqlx::query_scalar(
                    "SELECT name FROM protected_branches WHERE warehouse_id = $1 ORDER BY name",
                )
                .bind(warehouse.0)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("reading protected branches", e))
            }

            async fn set_protected_branches(
                &self,
                warehouse: WarehouseId,
                names: &[String],
                events: &[CloudEvent],
            ) -> Result<()> {
                let failed = |e| db_error("protecting branches", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                sqlx::query("DELETE FROM protected_branches WHERE warehouse_id = $1")
                    .bind(warehouse.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                for name in names {
                    sqlx::query(
                        "INSERT INTO protected_branches (warehouse_id, name) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(warehouse.0)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if is_foreign_key_violation(&e) {
                            not_found(Entity::Warehouse, warehouse)
                        } else {
                            failed(e)
                        }
                    })?;
                }
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(failed)
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
    };
}

pub(crate) use stamp;
