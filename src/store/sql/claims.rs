//! Folder claims: the in-transaction checks that no two table UUIDs claim overlapping folders,
//! and the claims a create or a move takes.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use chrono::Utc;
        use uuid::Uuid;

        use crate::error::{Error, Result};
        use crate::model::{TabularKind, WarehouseId};
        use crate::store::db_error;

        /// A folder another table (for a view: another table only) claims that overlaps
        /// `location`, in the warehouse; the claims of `uuid` (the table itself, on any line) do
        /// not count. Every live row's folder is claimed by its UUID, and claims outlive rows
        /// (folders a table moved away from, dropped tables not purged, released claims until
        /// keys vended for them have expired). The caller holds the warehouse's folder-claim lock
        /// (PostgreSQL: an advisory lock until the transaction ends; SQLite has one writer), taken
        /// before any line's row, so the answer is final. Index lookups, not a scan: the folder
        /// itself and each folder above it (equality), and what lies inside it (a range in byte
        /// order, `folder/` up to `folder0`; PostgreSQL's column collation is "C"). Planned for
        /// each call: a cached plan made while the table was small scans it once it is large.
        ///
        /// For a create (`creating`), an empty answer means a purge of `uuid` has begun (its
        /// claims are released): bringing it back would bring back a table whose files are
        /// going. Asked in the same statement, since every create asks.
        pub(super) async fn overlapping_folder(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            warehouse: WarehouseId,
            uuid: Uuid,
            location: &str,
            is_view: bool,
            creating: bool,
        ) -> Result<Option<String>> {
            let location = location.trim_end_matches('/');
            let above: Vec<&str> = location
                .match_indices('/')
                .map(|(i, _)| &location[..i])
                .filter(|prefix| !prefix.is_empty())
                .chain(std::iter::once(location))
                .collect();
            let claims = "warehouse_id = $1 AND table_uuid <> $3 AND (kind = 'table' OR $2 = 'any') \
                 AND (released_at IS NULL OR released_at > $6)";
            let mut listed = String::new();
            for i in 0..above.len() {
                if i > 0 {
                    listed.push_str(", ");
                }
                listed.push_str(&format!("${}", i + 7));
            }
            let purging = if creating {
                "SELECT '' FROM folder_claims WHERE warehouse_id = $1 AND table_uuid = $3 \
                 AND released_at IS NOT NULL UNION ALL "
            } else {
                ""
            };
            let sql = format!(
                "{purging}SELECT location FROM folder_claims WHERE {claims} AND location >= $4 \
                 AND location < $5 UNION ALL SELECT location FROM folder_claims \
                 WHERE {claims} AND location IN ({listed}) LIMIT 1"
            );
            // Only numbered placeholders are formatted into the text; every value is bound.
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(warehouse.0)
                .bind(if is_view { "tables" } else { "any" })
                .bind(uuid)
                .bind(format!("{location}/"))
                .bind(format!("{location}0"))
                .bind(release_cutoff());
            for prefix in above {
                query = query.bind(prefix);
            }
            query
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| db_error("committing", e))
        }

        /// Claims released before this (unix milliseconds) no longer hold their folders.
        pub(super) fn release_cutoff() -> i64 {
            Utc::now().timestamp_millis()
                - i64::try_from(crate::model::CLAIM_RELEASE_GRACE.as_millis()).unwrap_or(i64::MAX)
        }

        /// Records that the table (or view) `uuid` claims `location` (idempotent). The claim stays
        /// when the table moves on or is dropped, until a purge has deleted its files.
        pub(super) async fn claim_folder(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            warehouse: WarehouseId,
            location: &str,
            uuid: Uuid,
            kind: TabularKind,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO folder_claims (warehouse_id, location, table_uuid, kind) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(warehouse.0)
            .bind(location.trim_end_matches('/'))
            .bind(uuid)
            .bind(kind.as_str())
            .execute(&mut *conn)
            .await
            .map_err(|e| db_error("committing", e))?;
            Ok(())
        }

        pub(super) fn overlap_error(location: &str, other: &str) -> Error {
            Error::bad_request(format!(
                "location {} overlaps the folder of another table at {other}; every table needs \
                 a folder of its own",
                location.trim_end_matches('/')
            ))
        }
    };
}

pub(crate) use stamp;
