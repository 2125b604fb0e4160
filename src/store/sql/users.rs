//! `UserStore`: the users Floe knows.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use sqlx::Row as _;

        use crate::error::{Entity, Error, Result};
        use crate::model::events::CloudEvent;
        use crate::model::{Page, PageRequest, User, UserKind};
        use crate::store::{UserStore, contains_pattern, db_error, fetch_limit, not_found, page_of};

        fn user_from_row(row: &$row) -> Result<User> {
            let decode = |e| db_error("decoding a user", e);
            let kind: String = row.try_get("kind").map_err(decode)?;
            Ok(User {
                id: row.try_get("id").map_err(decode)?,
                name: row.try_get("name").map_err(decode)?,
                email: row.try_get("email").map_err(decode)?,
                kind: UserKind::parse(&kind).ok_or_else(|| {
                    Error::internal("stored user kind is invalid", anyhow::anyhow!("{kind}"))
                })?,
                created_at: row.try_get("created_at").map_err(decode)?,
                updated_at: row.try_get("updated_at").map_err(decode)?,
                last_seen_at: row.try_get("last_seen_at").map_err(decode)?,
            })
        }

        #[async_trait]
        impl UserStore for $store {
            async fn upsert_user(
                &self,
                user: &User,
                if_created: &[CloudEvent],
                if_updated: &[CloudEvent],
            ) -> Result<bool> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("recording a user", e))?;
                // `created` is true only for the row this statement inserted.
                let row = sqlx::query(
                    "INSERT INTO users (id, name, email, kind, created_at, updated_at, last_seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email, \
                        kind = excluded.kind, updated_at = excluded.updated_at, \
                        last_seen_at = COALESCE(excluded.last_seen_at, users.last_seen_at) \
                     RETURNING created_at",
                )
                .bind(&user.id)
                .bind(&user.name)
                .bind(&user.email)
                .bind(user.kind.as_str())
                .bind(user.updated_at)
                .bind(user.last_seen_at)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| db_error("recording a user", e))?;
                let created_at: chrono::DateTime<chrono::Utc> = row
                    .try_get("created_at")
                    .map_err(|e| db_error("recording a user", e))?;
                let created = created_at == user.updated_at;
                let events = if created { if_created } else { if_updated };
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(|e| db_error("recording a user", e))?;
                Ok(created)
            }

            async fn get_user(&self, id: &str) -> Result<Option<User>> {
                let row = sqlx::query(
                    "SELECT id, name, email, kind, created_at, updated_at, last_seen_at \
                     FROM users WHERE id = $1",
                )
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await
                    .map_err(|e| db_error("reading a user", e))?;
                row.as_ref().map(user_from_row).transpose()
            }

            async fn list_users(
                &self,
                name: Option<&str>,
                page: &PageRequest,
            ) -> Result<Page<User>> {
                let limit = fetch_limit(page);
                let pattern = contains_pattern(name);
                let rows = sqlx::query(
                    "SELECT id, name, email, kind, created_at, updated_at, last_seen_at \
                     FROM users WHERE id > $1 \
                     AND ($2 IS NULL OR LOWER(COALESCE(name, '')) LIKE $2 ESCAPE '\\' \
                          OR LOWER(id) LIKE $2 ESCAPE '\\') \
                     ORDER BY id LIMIT $3",
                )
                .bind(page.after.clone().unwrap_or_default())
                .bind(pattern)
                .bind(limit)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing users", e))?;
                let items = rows.iter().map(user_from_row).collect::<Result<Vec<_>>>()?;
                Ok(page_of(items, page, |u| u.id.clone()))
            }

            async fn delete_user(&self, id: &str, events: &[CloudEvent]) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("deleting a user", e))?;
                let done = sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error("deleting a user", e))?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::User, id));
                }
                // Their grants and role assignments go with them: a user recorded again later
                // starts with none.
                sqlx::query(
                    "DELETE FROM relationships WHERE subject_type = 'user' AND subject_id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("deleting a user's grants", e))?;
                super::events::write_events(&mut *tx, events).await?;
                tx.commit().await.map_err(|e| db_error("deleting a user", e))
            }
        }
    };
}

pub(crate) use stamp;
