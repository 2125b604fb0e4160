//! `AccessKeyStore`: the recorded ids of admin access keys of the S3 gateway.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;

        use crate::error::{Entity, Result};
        use crate::model::events::CloudEvent;
        use crate::model::{AccessKey, WarehouseId};
        use crate::store::{AccessKeyStore, db_error, is_foreign_key_violation, not_found};

        #[async_trait]
        impl AccessKeyStore for $store {
            async fn create_access_key(&self, key: &AccessKey, events: &[CloudEvent]) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("recording a change", e))?;
                sqlx::query(
                    "INSERT INTO access_keys (id, warehouse_id, description, created_at, expires_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.id)
                .bind(key.warehouse_id.0)
                .bind(&key.description)
                .bind(key.created_at)
                .bind(key.expires_at)
                .bind(&key.created_by)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        not_found(Entity::Warehouse, key.warehouse_id)
                    } else {
                        db_error("creating an access key", e)
                    }
                })?;
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("recording a change", e))
            }

            async fn get_access_key(&self, id: &str) -> Result<Option<AccessKey>> {
                let row = sqlx::query(
                    "SELECT id, warehouse_id, description, created_at, expires_at, created_by \
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
                    "SELECT id, warehouse_id, description, created_at, expires_at, created_by \
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

            async fn delete_access_key(
                &self,
                warehouse: WarehouseId,
                id: &str,
                events: &[CloudEvent],
            ) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("recording a change", e))?;
                let done = sqlx::query("DELETE FROM access_keys WHERE warehouse_id = $1 AND id = $2")
                    .bind(warehouse.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error("deleting an access key", e))?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::AccessKey, id));
                }
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("recording a change", e))
            }
        }
    };
}

pub(crate) use stamp;
