//! `NamespaceStore`.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::Row as _;
        use sqlx::types::Json;
        use uuid::Uuid;

        use crate::error::{Entity, Error, Result};
        use crate::model::{
            CommitMeta, Namespace, NamespaceIdent, Page, PageRequest, Properties, RefId,
            TabularKind
        };
        use crate::store::{
            HistoryEntry, NamespaceStore, db_error, is_foreign_key_violation, is_unique_violation,
            not_found
        };

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
                let mut conn = crate::store::sql::acquire(&self.read)
                    .await
                    .map_err(|e| db_error("reading a namespace", e))?;
                resolve_namespace(&mut conn, ref_id, ident, None).await
            }

            async fn list_namespaces(
                &self,
                ref_id: RefId,
                parent: Option<&NamespaceIdent>,
                page: &PageRequest,
                only: Option<&[String]>,
            ) -> Result<Page<NamespaceIdent>> {
                let parent_name = parent.map(|p| p.joined()).unwrap_or_default();
                let mut conn = crate::store::sql::acquire(&self.read)
                    .await
                    .map_err(|e| db_error("listing namespaces", e))?;
                if only.is_some_and(|o| o.is_empty()) {
                    return Ok(Page { items: Vec::new(), next: None });
                }
                let filter_in_query = only.is_some_and(|o| o.len() <= crate::store::MAX_IN_LIST);
                if line_info(&mut conn, ref_id).await?.1.is_some() || (only.is_some() && !filter_in_query) {
                    // A branch: its own rows over what it inherits.
                    let mut names = resolve_names(
                        &mut conn,
                        ref_id,
                        None,
                        Scope::Namespaces { parent: &parent_name },
                    )
                    .await?;
                    if let Some(only) = only {
                        let only: std::collections::HashSet<&String> = only.iter().collect();
                        names.retain(|n| only.contains(n));
                    }
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
                let only = only.unwrap_or_default();
                let filter = if only.is_empty() {
                    String::new()
                } else {
                    format!(
                        " AND name IN ({})",
                        (0..only.len()).map(|i| format!("${}", i + 5)).collect::<Vec<_>>().join(", ")
                    )
                };
                let sql = format!(
                    "SELECT name FROM namespaces WHERE ref_id = $1 AND parent_name = $2 AND name > $3{filter} \
                     ORDER BY name LIMIT $4"
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ref_id.0)
                .bind(parent_name)
                .bind(page.after.clone().unwrap_or_default())
                .bind(limit);
                for name in only {
                    query = query.bind(name);
                }
                let rows = query
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
                force: bool,
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
                let head = lock_line(&mut tx, ref_id).await?;
                check_unprotected(
                    &mut tx,
                    crate::model::WarehouseId(head.warehouse),
                    &crate::model::lifecycle::ProtectedObject::Namespace(ident.clone()),
                    force,
                    &format!("namespace {ident}"),
                )
                .await?;
                if head.parent.is_some() {
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
    };
}

pub(crate) use stamp;
