//! `SealedSecretStore`: sealed secret rows (the `secrets` module seals and opens them).

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;

        use crate::error::Result;
        use crate::model::SecretId;
        use crate::store::{SealedSecret, SealedSecretStore, db_error};

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
    };
}

pub(crate) use stamp;
