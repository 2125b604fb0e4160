//! `IdempotencyStore`: idempotency keys and the answers kept for them.
//!
//! A claim inserts the key as `running` under the claimer's lease, or takes over a running key
//! whose lease has passed (its instance died) and whose request was the same; a key past its
//! expiry is forgotten first. Every later write names the owner, so a request whose key was taken
//! over writes nothing.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;

        use crate::error::Result;
        use crate::model::idempotency::{KeyClaim, KeyState, StoredResponse};
        use crate::store::{IdempotencyStore, db_error};

        #[async_trait]
        impl IdempotencyStore for $store {
            async fn claim_key(&self, claim: &KeyClaim) -> Result<KeyState> {
                let failed = |e| db_error("claiming an idempotency key", e);
                // A key whose row vanishes between the steps (released, expired) is claimed
                // again; three rounds settle it.
                for _ in 0..3 {
                    sqlx::query(
                        "DELETE FROM idempotency_keys \
                         WHERE principal = $1 AND key = $2 AND expires_at < $3",
                    )
                    .bind(&claim.principal)
                    .bind(&claim.key)
                    .bind(claim.now)
                    .execute(&self.write)
                    .await
                    .map_err(failed)?;
                    let inserted = sqlx::query(
                        "INSERT INTO idempotency_keys (principal, key, fingerprint, state, owner, \
                         lease_until, created_at, expires_at) \
                         VALUES ($1, $2, $3, 'running', $4, $5, $6, $7) \
                         ON CONFLICT (principal, key) DO NOTHING",
                    )
                    .bind(&claim.principal)
                    .bind(&claim.key)
                    .bind(&claim.fingerprint)
                    .bind(&claim.owner)
                    .bind(claim.lease_until)
                    .bind(claim.now)
                    .bind(claim.expires_at)
                    .execute(&self.write)
                    .await
                    .map_err(failed)?;
                    if inserted.rows_affected() == 1 {
                        return Ok(KeyState::Claimed);
                    }
                    let taken = sqlx::query(
                        "UPDATE idempotency_keys SET owner = $1, lease_until = $2 \
                         WHERE principal = $3 AND key = $4 AND state = 'running' \
                         AND lease_until < $5 AND fingerprint = $6",
                    )
                    .bind(&claim.owner)
                    .bind(claim.lease_until)
                    .bind(&claim.principal)
                    .bind(&claim.key)
                    .bind(claim.now)
                    .bind(&claim.fingerprint)
                    .execute(&self.write)
                    .await
                    .map_err(failed)?;
                    if taken.rows_affected() == 1 {
                        return Ok(KeyState::Claimed);
                    }
                    let row = sqlx::query(
                        "SELECT fingerprint, state, status, headers, body FROM idempotency_keys \
                         WHERE principal = $1 AND key = $2",
                    )
                    .bind(&claim.principal)
                    .bind(&claim.key)
                    .fetch_optional(&self.write)
                    .await
                    .map_err(failed)?;
                    let Some(row) = row else { continue };
                    let fingerprint: String = row.try_get("fingerprint").map_err(failed)?;
                    let state: String = row.try_get("state").map_err(failed)?;
                    if state != "done" {
                        return Ok(KeyState::Running { fingerprint });
                    }
                    let status: i32 = row.try_get("status").map_err(failed)?;
                    let headers: Option<String> = row.try_get("headers").map_err(failed)?;
                    let body: Option<Vec<u8>> = row.try_get("body").map_err(failed)?;
                    let headers = headers
                        .map(|h| serde_json::from_str(&h))
                        .transpose()
                        .map_err(|e| {
                            crate::error::Error::internal("decoding an idempotency key's answer", e)
                        })?
                        .unwrap_or_default();
                    return Ok(KeyState::Done {
                        fingerprint,
                        response: StoredResponse {
                            status: u16::try_from(status).unwrap_or(500),
                            headers,
                            body: body.unwrap_or_default(),
                        },
                    });
                }
                Err(crate::error::Error::unavailable(
                    "an idempotency key kept changing; retry the request",
                    anyhow::anyhow!("idempotency key claimed three times"),
                ))
            }

            async fn finish_key(
                &self,
                principal: &str,
                key: &str,
                owner: &str,
                response: &StoredResponse,
            ) -> Result<bool> {
                let headers = serde_json::to_string(&response.headers).map_err(|e| {
                    crate::error::Error::internal("encoding an idempotency key's answer", e)
                })?;
                let done = sqlx::query(
                    "UPDATE idempotency_keys SET state = 'done', status = $1, headers = $2, \
                     body = $3 WHERE principal = $4 AND key = $5 AND owner = $6 \
                     AND state = 'running'",
                )
                .bind(i32::from(response.status))
                .bind(headers)
                .bind(&response.body)
                .bind(principal)
                .bind(key)
                .bind(owner)
                .execute(&self.write)
                .await
                .map_err(|e| db_error("recording an idempotency key's answer", e))?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_key(&self, principal: &str, key: &str, owner: &str) -> Result<()> {
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 \
                     AND owner = $3 AND state = 'running'",
                )
                .bind(principal)
                .bind(key)
                .bind(owner)
                .execute(&self.write)
                .await
                .map_err(|e| db_error("releasing an idempotency key", e))?;
                Ok(())
            }

            async fn expire_keys(&self, now: i64) -> Result<u64> {
                let gone = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.write)
                    .await
                    .map_err(|e| db_error("expiring idempotency keys", e))?;
                Ok(gone.rows_affected())
            }
        }
    };
}

pub(crate) use stamp;
