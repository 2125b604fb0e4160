//! `SealedSecretStore`: sealed secret rows (the `secrets` module seals and opens them), and the
//! references to secrets kept outside the database (Vault).

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;

        use crate::error::Result;
        use crate::model::SecretId;
        use crate::store::{SealedSecret, SealedSecretStore, SecretRef, db_error};

        /// Inserts or replaces where the secret with this id lives.
        async fn upsert_ref<'e, E>(executor: E, id: SecretId, reference: &SecretRef) -> Result<()>
        where
            E: sqlx::Executor<'e, Database = <$store as crate::store::sql::BackendDb>::Db>,
        {
            sqlx::query(
                "INSERT INTO secret_refs (id, store, mount, path, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET store = excluded.store, mount = excluded.mount, \
                 path = excluded.path, version = excluded.version, updated_at = excluded.updated_at",
            )
            .bind(id.0)
            .bind(&reference.store)
            .bind(&reference.mount)
            .bind(&reference.path)
            .bind(reference.version)
            .bind(reference.created_at)
            .bind(reference.updated_at)
            .execute(executor)
            .await
            .map_err(|e| db_error("storing a secret reference", e))?;
            Ok(())
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

            async fn sealed_secret_ids(&self, limit: u32) -> Result<Vec<SecretId>> {
                let rows = sqlx::query("SELECT id FROM secrets ORDER BY id LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(&self.read)
                    .await
                    .map_err(|e| db_error("listing secrets", e))?;
                rows.iter()
                    .map(|row| row.try_get("id").map(SecretId))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| db_error("decoding a secret id", e))
            }

            async fn put_secret_ref(&self, id: SecretId, reference: &SecretRef) -> Result<()> {
                upsert_ref(&self.write, id, reference).await
            }

            async fn get_secret_ref(&self, id: SecretId) -> Result<Option<SecretRef>> {
                let row = sqlx::query(
                    "SELECT store, mount, path, version, created_at, updated_at \
                     FROM secret_refs WHERE id = $1",
                )
                .bind(id.0)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a secret reference", e))?;
                row.map(|row| {
                    Ok(SecretRef {
                        store: row.try_get("store")?,
                        mount: row.try_get("mount")?,
                        path: row.try_get("path")?,
                        version: row.try_get("version")?,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                    })
                })
                .transpose()
                .map_err(|e| db_error("decoding a secret reference", e))
            }

            async fn delete_secret_ref(&self, id: SecretId) -> Result<()> {
                sqlx::query("DELETE FROM secret_refs WHERE id = $1")
                    .bind(id.0)
                    .execute(&self.write)
                    .await
                    .map_err(|e| db_error("deleting a secret reference", e))?;
                Ok(())
            }

            async fn move_secret_to_ref(&self, id: SecretId, reference: &SecretRef) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("moving a secret", e))?;
                upsert_ref(&mut *tx, id, reference).await?;
                sqlx::query("DELETE FROM secrets WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error("moving a secret", e))?;
                tx.commit().await.map_err(|e| db_error("moving a secret", e))?;
                Ok(())
            }
        }
    };
}

pub(crate) use stamp;
