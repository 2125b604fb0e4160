//! `AuthzStore`: roles and the relationships of the authorization model.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::Row as _;

        use crate::error::{Entity, Error, Result};
        use crate::model::events::CloudEvent;
        use crate::model::{Page, PageRequest, Relationship, Role};
        use crate::store::{
            AuthzStore, contains_pattern, db_error, fetch_limit, is_unique_violation, not_found,
            page_of,
        };

        /// A row of `relationships` (`subject_relation` '' is a user's: `None`).
        fn relationship_from_row(row: &$row) -> Result<Relationship> {
            let decode = |e| db_error("decoding relationships", e);
            let subject_relation: String = row.try_get("subject_relation").map_err(decode)?;
            Ok(Relationship {
                object_type: row.try_get("object_type").map_err(decode)?,
                object_id: row.try_get("object_id").map_err(decode)?,
                relation: row.try_get("relation").map_err(decode)?,
                subject_type: row.try_get("subject_type").map_err(decode)?,
                subject_id: row.try_get("subject_id").map_err(decode)?,
                subject_relation: (!subject_relation.is_empty()).then_some(subject_relation),
            })
        }

        fn role_from_row(row: &$row) -> Result<Role> {
            let decode = |e| db_error("decoding a role", e);
            Ok(Role {
                id: row.try_get("id").map_err(decode)?,
                name: row.try_get("name").map_err(decode)?,
                description: row.try_get("description").map_err(decode)?,
                created_at: row.try_get("created_at").map_err(decode)?,
                updated_at: row.try_get("updated_at").map_err(decode)?,
            })
        }

        fn role_taken(name: &str) -> Error {
            Error::already_exists(Entity::Role, format!("a role named {name:?} exists"))
        }

        #[async_trait]
        impl AuthzStore for $store {
            async fn create_role(&self, role: &Role, events: &[CloudEvent]) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("recording a change", e))?;
                sqlx::query(
                    "INSERT INTO roles (id, name, description, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(role.id)
                .bind(&role.name)
                .bind(&role.description)
                .bind(role.created_at)
                .bind(role.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        role_taken(&role.name)
                    } else {
                        db_error("creating a role", e)
                    }
                })?;
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("recording a change", e))
            }

            async fn get_role(&self, id: uuid::Uuid) -> Result<Option<Role>> {
                let row = sqlx::query(
                    "SELECT id, name, description, created_at, updated_at FROM roles WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.read)
                .await
                .map_err(|e| db_error("reading a role", e))?;
                row.as_ref().map(role_from_row).transpose()
            }

            async fn list_roles(
                &self,
                name: Option<&str>,
                page: &PageRequest,
            ) -> Result<Page<Role>> {
                let limit = fetch_limit(page);
                let pattern = contains_pattern(name);
                let rows = sqlx::query(
                    "SELECT id, name, description, created_at, updated_at FROM roles \
                     WHERE name > $1 AND ($2 IS NULL OR LOWER(name) LIKE $2 ESCAPE '\\') \
                     ORDER BY name LIMIT $3",
                )
                .bind(page.after.clone().unwrap_or_default())
                .bind(pattern)
                .bind(limit)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("listing roles", e))?;
                let items = rows.iter().map(role_from_row).collect::<Result<Vec<_>>>()?;
                Ok(page_of(items, page, |r| r.name.clone()))
            }

            async fn update_role(
                &self,
                id: uuid::Uuid,
                name: &str,
                description: Option<&str>,
                at: DateTime<Utc>,
                events: &[CloudEvent],
            ) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("recording a change", e))?;
                let done = sqlx::query(
                    "UPDATE roles SET name = $2, description = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(name)
                .bind(description)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        role_taken(name)
                    } else {
                        db_error("updating a role", e)
                    }
                })?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::Role, id));
                }
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("recording a change", e))
            }

            async fn delete_role(&self, id: uuid::Uuid, events: &[CloudEvent]) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("deleting a role", e))?;
                let done = sqlx::query("DELETE FROM roles WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error("deleting a role", e))?;
                if done.rows_affected() == 0 {
                    return Err(not_found(Entity::Role, id));
                }
                sqlx::query(
                    "DELETE FROM relationships WHERE (object_type = 'role' AND object_id = $1) \
                     OR (subject_type = 'role' AND subject_id = $1)",
                )
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| db_error("deleting a role's relationships", e))?;
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("deleting a role", e))
            }

            async fn write_relationships(
                &self,
                add: &[Relationship],
                remove: &[Relationship],
                at: DateTime<Utc>,
                events: &[CloudEvent],
            ) -> Result<()> {
                let mut tx = self
                    .write
                    .begin()
                    .await
                    .map_err(|e| db_error("writing relationships", e))?;
                for r in remove {
                    sqlx::query(
                        "DELETE FROM relationships WHERE object_type = $1 AND object_id = $2 \
                         AND relation = $3 AND subject_type = $4 AND subject_id = $5 \
                         AND subject_relation = $6",
                    )
                    .bind(&r.object_type)
                    .bind(&r.object_id)
                    .bind(&r.relation)
                    .bind(&r.subject_type)
                    .bind(&r.subject_id)
                    .bind(r.subject_relation.as_deref().unwrap_or(""))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error("removing a relationship", e))?;
                }
                for r in add {
                    sqlx::query(
                        "INSERT INTO relationships (object_type, object_id, relation, subject_type, \
                         subject_id, subject_relation, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&r.object_type)
                    .bind(&r.object_id)
                    .bind(&r.relation)
                    .bind(&r.subject_type)
                    .bind(&r.subject_id)
                    .bind(r.subject_relation.as_deref().unwrap_or(""))
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db_error("adding a relationship", e))?;
                }
                super::events::write_events(&mut *tx, events).await?;
                tx.commit()
                    .await
                    .map_err(|e| db_error("writing relationships", e))
            }

            async fn caller_relationships(
                &self,
                user: &str,
                seed_roles: &[String],
                objects: Option<&[(String, String)]>,
            ) -> Result<(Vec<String>, Vec<Relationship>)> {
                // $1 is the user; the seed roles and objects follow.
                let mut n = 1;
                let mut next = || {
                    n += 1;
                    format!("${n}")
                };
                let seeds: Vec<String> = seed_roles.iter().map(|_| next()).collect();
                let seed_list = if seeds.is_empty() { "NULL".to_string() } else { seeds.join(", ") };
                let object_filter = match objects {
                    None => String::new(),
                    Some([]) => " AND 1 = 0".to_string(),
                    Some(objects) => format!(
                        " AND ({})",
                        objects
                            .iter()
                            .map(|_| format!("(object_type = {} AND object_id = {})", next(), next()))
                            .collect::<Vec<_>>()
                            .join(" OR ")
                    ),
                };
                let sql = format!(
                    "WITH RECURSIVE member_of(id) AS (                        SELECT object_id FROM relationships WHERE object_type = 'role'                          AND relation = 'assignee' AND ((subject_type = 'user' AND subject_id = $1                          AND subject_relation = '') OR (subject_type = 'role'                          AND subject_relation = 'assignee' AND subject_id IN ({seed_list})))                        UNION                        SELECT r.object_id FROM relationships r JOIN member_of m ON r.subject_id = m.id                          WHERE r.object_type = 'role' AND r.relation = 'assignee'                          AND r.subject_type = 'role' AND r.subject_relation = 'assignee')                      SELECT 'role' AS object_type, id AS object_id, 'assignee' AS relation,                        'user' AS subject_type, $1 AS subject_id, '' AS subject_relation FROM member_of                      UNION ALL                      SELECT object_type, object_id, relation, subject_type, subject_id, subject_relation                      FROM relationships WHERE object_type <> 'role' AND ((subject_type = 'user'                        AND subject_id = $1 AND subject_relation = '') OR (subject_type = 'role'                        AND subject_relation = 'assignee' AND (subject_id IN (SELECT id FROM member_of)                        OR subject_id IN ({seed_list})))){object_filter}"
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user);
                for role in seed_roles {
                    query = query.bind(role);
                }
                for (kind, id) in objects.unwrap_or_default() {
                    query = query.bind(kind).bind(id);
                }
                let rows = query
                    .fetch_all(&self.read)
                    .await
                    .map_err(|e| db_error("reading the caller's relationships", e))?;
                let mut roles = Vec::new();
                let mut grants = Vec::new();
                for row in &rows {
                    let r = relationship_from_row(row)?;
                    if r.object_type == "role" && r.relation == "assignee" && r.subject_type == "user" {
                        roles.push(r.object_id);
                    } else {
                        grants.push(r);
                    }
                }
                Ok((roles, grants))
            }

            async fn all_relationships(
                &self,
                after: Option<&Relationship>,
                limit: usize,
            ) -> Result<Vec<Relationship>> {
                // No `after`: compared with a key below every row's (types are never empty).
                let start = Relationship {
                    object_type: String::new(),
                    object_id: String::new(),
                    relation: String::new(),
                    subject_type: String::new(),
                    subject_id: String::new(),
                    subject_relation: None,
                };
                let r = after.unwrap_or(&start);
                let rows = sqlx::query(
                    "SELECT object_type, object_id, relation, subject_type, subject_id, subject_relation \
                     FROM relationships \
                     WHERE (object_type, object_id, relation, subject_type, subject_id, subject_relation) \
                         > ($1, $2, $3, $4, $5, $6) \
                     ORDER BY object_type, object_id, relation, subject_type, subject_id, subject_relation \
                     LIMIT $7",
                )
                .bind(&r.object_type)
                .bind(&r.object_id)
                .bind(&r.relation)
                .bind(&r.subject_type)
                .bind(&r.subject_id)
                .bind(r.subject_relation.as_deref().unwrap_or(""))
                .bind(limit as i64)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("reading relationships", e))?;
                rows.iter().map(relationship_from_row).collect()
            }

            async fn object_relationships(
                &self,
                object_type: &str,
                object_id: &str,
            ) -> Result<Vec<Relationship>> {
                let rows = sqlx::query(
                    "SELECT object_type, object_id, relation, subject_type, subject_id, subject_relation \
                     FROM relationships \
                     WHERE object_type = $1 AND object_id = $2 \
                     ORDER BY relation, subject_type, subject_id, subject_relation",
                )
                .bind(object_type)
                .bind(object_id)
                .fetch_all(&self.read)
                .await
                .map_err(|e| db_error("reading relationships", e))?;
                rows.iter().map(relationship_from_row).collect()
            }
        }
    };
}

pub(crate) use stamp;
