//! `ServerStore`: the server's record (bootstrap) and the database's health.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;

        use crate::error::{Error, Result};
        use crate::model::events::CloudEvent;
        use crate::model::{Project, ProjectId, ServerInfo};
        use crate::store::{ServerStore, db_error, is_unique_violation};

        #[async_trait]
        impl ServerStore for $store {
            async fn server_info(&self) -> Result<Option<ServerInfo>> {
                let row = sqlx::query(
                    "SELECT server_id, default_project_id, bootstrapped_at, admin_user_id FROM server_info",
                )
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading server info", e))?;
                row.map(|row| {
                    Ok(ServerInfo {
                        server_id: row.try_get("server_id")?,
                        default_project_id: ProjectId(row.try_get("default_project_id")?),
                        bootstrapped_at: row.try_get("bootstrapped_at")?,
                        admin: row.try_get("admin_user_id")?,
                    })
                })
                .transpose()
                .map_err(|e| db_error("decoding server info", e))
            }

            async fn bootstrap(
                &self,
                info: &ServerInfo,
                project: &Project,
                events: &[CloudEvent],
            ) -> Result<()> {
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
                    "INSERT INTO server_info (singleton, server_id, default_project_id, bootstrapped_at, admin_user_id) \
                     VALUES (1, $1, $2, $3, $4)",
                )
                .bind(info.server_id)
                .bind(info.default_project_id.0)
                .bind(info.bootstrapped_at)
                .bind(&info.admin)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        return Err(Error::conflict("the server is already bootstrapped"));
                    }
                    Err(e) => return Err(db_error("bootstrapping", e)),
                }
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::conflict("the server is already bootstrapped")
                    } else {
                        db_error("bootstrapping", e)
                    }
                })
            }

            async fn claim_admin(&self, user: &str, events: &[CloudEvent]) -> Result<bool> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("claiming the server's admin", e))?;
                let done = sqlx::query(
                    "UPDATE server_info SET admin_user_id = $1 WHERE admin_user_id IS NULL",
                )
                .bind(user)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("claiming the server's admin", e))?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("claiming the server's admin", e))?;
                Ok(true)
            }

            async fn setting(&self, key: &str) -> Result<Option<String>> {
                sqlx::query_scalar("SELECT value FROM server_settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.read)
                    .await
                    .map_err(|e| db_error("reading a server setting", e))
            }

            async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
                sqlx::query(
                    "INSERT INTO server_settings (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(&self.write)
                .await
                .map_err(|e| db_error("writing a server setting", e))?;
                Ok(())
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

            fn pool_states(&self) -> Vec<crate::telemetry::PoolState> {
                fn state<DB: sqlx::Database>(
                    pool: &'static str,
                    of: &sqlx::Pool<DB>,
                ) -> crate::telemetry::PoolState {
                    crate::telemetry::PoolState {
                        pool,
                        size: of.size(),
                        idle: of.num_idle(),
                        max: of.options().get_max_connections(),
                    }
                }
                if <$store as crate::store::sql::BackendDb>::ONE_POOL {
                    vec![state("main", &self.write)]
                } else {
                    vec![state("read", &self.read), state("write", &self.write)]
                }
            }
        }
    };
}

pub(crate) use stamp;
