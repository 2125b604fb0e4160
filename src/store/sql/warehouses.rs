//! `WarehouseStore`: warehouses, their `main` branch, and refs by name.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::types::Json;

        use crate::error::{Entity, Error, Result};
        use crate::model::events::CloudEvent;
        use crate::model::{
            CommitId, ProjectId, Ref, SecretId, StorageProfile, Warehouse, WarehouseId
        };
        use crate::store::{
            WarehouseStore, db_error, is_foreign_key_violation, is_unique_violation, not_found
        };

        #[async_trait]
        impl WarehouseStore for $store {
            async fn create_warehouse(
                &self,
                warehouse: &Warehouse,
                main: &Ref,
                events: &[CloudEvent],
            ) -> Result<()> {
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
                super::events::write_events(&mut *tx, events).await?;
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
                events: &[CloudEvent],
            ) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("renaming a warehouse", e))?;
                let done =
                    sqlx::query("UPDATE warehouses SET name = $2, updated_at = $3 WHERE id = $1")
                        .bind(id.0)
                        .bind(name)
                        .bind(at)
                        .execute(&mut *tx)
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
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("renaming a warehouse", e))
            }

            async fn update_warehouse_storage(
                &self,
                id: WarehouseId,
                profile: &StorageProfile,
                credential: Option<SecretId>,
                at: DateTime<Utc>,
                events: &[CloudEvent],
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
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(failed)?;
                Ok(())
            }

            async fn delete_warehouse(
                &self,
                id: WarehouseId,
                force: bool,
                events: &[CloudEvent],
            ) -> Result<()> {
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
                check_unprotected(
                    &mut tx,
                    id,
                    &crate::model::lifecycle::ProtectedObject::Warehouse,
                    force,
                    &format!("warehouse {id}"),
                )
                .await?;
                let has_namespaces =
                    sqlx::query("SELECT 1 FROM namespaces WHERE warehouse_id = $1 LIMIT 1")
                        .bind(id.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| db_error("deleting a warehouse", e))?;
                if has_namespaces.is_some() {
                    return Err(not_empty());
                }
                // Soft-deleted tables could still be undropped and purges still need the
                // storage; read after the namespaces, so a drop that left either committed first.
                if has_pending(&mut tx, id).await? {
                    return Err(Error::not_empty(
                        Entity::Warehouse,
                        format!(
                            "warehouse {id} still has soft-deleted tables or views, or unfinished \
                             tasks (purges); undrop or wait for them"
                        ),
                    ));
                }
                for statement in [
                    "DELETE FROM access_keys WHERE warehouse_id = $1",
                    "DELETE FROM folder_claims WHERE warehouse_id = $1",
                    "DELETE FROM protected_branches WHERE warehouse_id = $1",
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
                super::events::write_events(&mut *tx, events).await?;
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
    };
}

pub(crate) use stamp;
