//! `ProjectStore`.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};

        use crate::error::{Entity, Error, Result};
        use crate::model::events::CloudEvent;
        use crate::model::{Project, ProjectId};
        use crate::store::{
            ProjectStore, db_error, is_foreign_key_violation, is_unique_violation, not_found,
        };

        pub(super) async fn insert_project<'e, E>(executor: E, project: &Project) -> Result<()>
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
            async fn create_project(&self, project: &Project, events: &[CloudEvent]) -> Result<()> {
                let failed = |e| db_error("creating a project", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                insert_project(&mut *tx, project).await?;
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(failed)
            }

            async fn list_projects(&self) -> Result<Vec<Project>> {
                let rows = sqlx::query(
                    "SELECT id, name, created_at, updated_at FROM projects ORDER BY name",
                )
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing projects", e))?;
                rows.iter()
                    .map(project_from_row)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| db_error("decoding projects", e))
            }

            async fn get_project(&self, id: ProjectId) -> Result<Option<Project>> {
                let row = sqlx::query(
                    "SELECT id, name, created_at, updated_at FROM projects WHERE id = $1",
                )
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
                events: &[CloudEvent],
            ) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("renaming a project", e))?;
                let done =
                    sqlx::query("UPDATE projects SET name = $2, updated_at = $3 WHERE id = $1")
                        .bind(id.0)
                        .bind(name)
                        .bind(at)
                        .execute(&mut *tx)
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
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("renaming a project", e))
            }

            async fn delete_project(&self, id: ProjectId, events: &[CloudEvent]) -> Result<()> {
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
                let has_warehouses =
                    sqlx::query("SELECT 1 FROM warehouses WHERE project_id = $1 LIMIT 1")
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
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("deleting a project", e))
            }
        }
    };
}

pub(crate) use stamp;
