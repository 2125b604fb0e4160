//! Applying one commit's table and view changes inside an open transaction: creates (folder
//! checked, inserted if absent) and pointer swaps (compare-and-swap on the version).

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use chrono::{DateTime, Utc};
        use sqlx::Row as _;
        use uuid::Uuid;

        use crate::error::{Entity, Error, Result};
        use crate::model::{RefId, TabularId, TabularKind};
        use crate::store::{
            HistoryEntry, TabularChange, compress, db_error, is_foreign_key_violation
        };

        /// Writes one commit's changes on a connection inside an open transaction (`on_branch`:
        /// the line forked from another, so it may inherit rows) and returns what they did, for
        /// the commit that records them, and the time of the last. `blobs` holds the compressed
        /// metadata of each change, in order (compressed before the transaction, so that the
        /// single writer of SQLite does not wait on it).
        pub(super) async fn write_tabular_changes(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            ref_id: RefId,
            on_branch: bool,
            changes: &[TabularChange],
            blobs: &[Vec<u8>],
        ) -> Result<(Vec<HistoryEntry>, Option<DateTime<Utc>>)> {
                let mut entries = Vec::with_capacity(changes.len());
                let mut at = None;
                for (change, blob) in changes.iter().zip(blobs) {
                    // The row the change wrote (an update on a branch may have written a copy).
                    let written: TabularId;
                    match change {
                        TabularChange::Create(t) => {
                            if on_branch
                                && resolve_tabular(conn, ref_id, &t.ident, None).await?.is_some()
                            {
                                return Err(taken(t.kind, &t.ident));
                            }
                            let namespace_id =
                                match own_namespace_row(conn, ref_id, &t.ident.namespace).await {
                                    Ok(id) => id,
                                    Err(e) if matches!(e.kind, crate::error::ErrorKind::NotFound(_)) => {
                                        return Err(Error::not_found(
                                            Entity::Namespace,
                                            format!("namespace {} does not exist", t.ident.namespace),
                                        ));
                                    }
                                    Err(e) => return Err(e),
                                };
                            // The folder is checked before the row is written, so that a commit that
                            // fails wrote nothing (a group commit runs a lone create without a
                            // savepoint); a name that is taken is still reported first.
                            if let Some(other) = overlapping_folder(
                                conn, t.warehouse_id, t.uuid, &t.location,
                                t.kind == TabularKind::View, true,
                            )
                            .await?
                            {
                                let name_taken: Option<i32> = sqlx::query_scalar(
                                    "SELECT 1 FROM tabulars WHERE namespace_id = $1 AND name = $2",
                                )
                                .bind(namespace_id)
                                .bind(&t.ident.name)
                                .fetch_optional(&mut *conn)
                                .await
                                .map_err(|e| db_error("committing", e))?;
                                if name_taken.is_some() {
                                    return Err(taken(t.kind, &t.ident));
                                }
                                if other.is_empty() {
                                    return Err(Error::conflict(format!(
                                        "the table with UUID {} is being purged; its files are \
                                         going",
                                        t.uuid
                                    )));
                                }
                                return Err(overlap_error(&t.location, &other));
                            }
                            // A taken name inserts nothing (and raises nothing, which would end a
                            // PostgreSQL transaction).
                            let inserted: Option<Uuid> = sqlx::query_scalar(
                                "INSERT INTO tabulars (id, warehouse_id, ref_id, namespace_id, name, kind, \
                                 uuid, location, metadata_location, metadata, version, created_at, updated_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                                 ON CONFLICT DO NOTHING RETURNING id",
                            )
                            .bind(t.id.0)
                            .bind(t.warehouse_id.0)
                            .bind(ref_id.0)
                            .bind(namespace_id)
                            .bind(&t.ident.name)
                            .bind(t.kind.as_str())
                            .bind(t.uuid)
                            .bind(&t.location)
                            .bind(&t.metadata_location)
                            .bind(blob)
                            .bind(t.version)
                            .bind(t.created_at)
                            .bind(t.updated_at)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(|e| {
                                if is_foreign_key_violation(&e) {
                                    Error::not_found(
                                        Entity::Namespace,
                                        format!("namespace {} does not exist", t.ident.namespace),
                                    )
                                } else {
                                    db_error("committing", e)
                                }
                            })?;
                            if inserted.is_none() {
                                return Err(taken(t.kind, &t.ident));
                            }
                            claim_folder(conn, t.warehouse_id, &t.location, t.uuid, t.kind).await?;
                            at = Some(t.updated_at);
                            written = t.id;
                            entries.push(HistoryEntry::Tabular {
                                ident: t.ident.clone(),
                                op: "create",
                                kind: t.kind,
                                id: t.id,
                                uuid: t.uuid,
                                location: t.location.clone(),
                                metadata_location: t.metadata_location.clone(),
                                version: t.version,
                            });
                        }
                        TabularChange::Update {
                            id,
                            ident,
                            expected_version,
                            uuid,
                            location,
                            metadata_location,
                            metadata: _,
                            at: when,
                            claims_location: _,
                        } => {
                            let done = sqlx::query(
                                "UPDATE tabulars SET uuid = $3, location = $4, metadata_location = $5, \
                                 metadata = $6, version = version + 1, updated_at = $7 \
                                 WHERE id = $1 AND version = $2 AND ref_id = $8 RETURNING id, kind",
                            )
                            .bind(id.0)
                            .bind(*expected_version)
                            .bind(*uuid)
                            .bind(location)
                            .bind(metadata_location)
                            .bind(blob)
                            .bind(*when)
                            .bind(ref_id.0)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(|e| db_error("committing", e))?;
                            let lost = || {
                                Error::new(
                                    crate::error::ErrorKind::CommitConflict,
                                    format!("{ident} was changed by another commit"),
                                )
                            };
                            let (row_id, kind) = match done {
                                Some(done) => {
                                    let decode = |e| db_error("committing", e);
                                    (
                                        TabularId(done.try_get("id").map_err(decode)?),
                                        done.try_get::<String, _>("kind").map_err(decode)?,
                                    )
                                }
                                // The first commit of a branch to what it inherits: the branch
                                // gets its own row, if it still inherits that very version.
                                None if on_branch => {
                                    if own_tabular(conn, ref_id, ident).await?.is_some() {
                                        return Err(lost());
                                    }
                                    let inherited = resolve_tabular(conn, ref_id, ident, None)
                                        .await?
                                        .filter(|t| t.id == *id && t.version == *expected_version)
                                        .ok_or_else(lost)?;
                                    let mut copy = inherited.clone();
                                    copy.uuid = *uuid;
                                    copy.location = location.clone();
                                    let row_id = copy_onto_line(
                                        conn,
                                        ref_id,
                                        &copy,
                                        metadata_location,
                                        blob,
                                        expected_version + 1,
                                    )
                                    .await?;
                                    (row_id, inherited.kind.as_str().to_string())
                                }
                                None => return Err(lost()),
                            };
                            at = Some(*when);
                            written = row_id;
                            entries.push(HistoryEntry::Tabular {
                                ident: ident.clone(),
                                op: "update",
                                kind: TabularKind::parse(&kind).unwrap_or(TabularKind::Table),
                                id: row_id,
                                uuid: *uuid,
                                location: location.clone(),
                                metadata_location: metadata_location.clone(),
                                version: expected_version + 1,
                            });
                        }
                    }
                    // A table's folder must not overlap any table's or view's; a view's (it gets
                    // no credentials) must only stay out of tables' folders. Checked again here,
                    // where it is final, for an update that moves a folder (a create checked it
                    // above).
                    if let TabularChange::Update {
                        claims_location: Some(warehouse),
                        uuid,
                        location,
                        ..
                    } = change
                    {
                        let kind: String =
                            sqlx::query_scalar("SELECT kind FROM tabulars WHERE id = $1")
                                .bind(written.0)
                                .fetch_one(&mut *conn)
                                .await
                                .map_err(|e| db_error("committing", e))?;
                        if let Some(other) = overlapping_folder(
                            conn, *warehouse, *uuid, location, kind == "view", false,
                        )
                        .await?
                        {
                            return Err(overlap_error(location, &other));
                        }
                        let kind = TabularKind::parse(&kind).unwrap_or(TabularKind::Table);
                        claim_folder(conn, *warehouse, location, *uuid, kind).await?;
                    }
                }
                Ok((entries, at))
        }

        /// Moves the pointers of several tables of one line (their own rows on it) in one
        /// statement, each only if it is still at the version its commit read. Per update, in
        /// order: what the commit records, or the conflict it lost.
        pub(super) async fn swap_pointers<'a>(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            line: RefId,
            updates: impl ExactSizeIterator<Item = (&'a TabularChange, &'a [u8])>,
        ) -> Result<Vec<std::result::Result<(HistoryEntry, DateTime<Utc>), Error>>> {
            type Db = <$store as crate::store::sql::BackendDb>::Db;
            let updates: Vec<(&TabularChange, &[u8])> = updates.collect();
            let mut kinds = std::collections::HashMap::with_capacity(updates.len());
            if !<$store as crate::store::sql::BackendDb>::WRITES_IN_ONE_STATEMENT {
                // SQLite costs no round trip per statement, and would plan the joined form as a
                // scan of every table row.
                for (change, blob) in &updates {
                    let TabularChange::Update { id, expected_version, uuid, location, metadata_location, at, .. } = change else {
                        return Err(Error::internal("committing", std::io::Error::other("a swap that is not an update")));
                    };
                    let done = sqlx::query(
                        "UPDATE tabulars SET uuid = $3, location = $4, metadata_location = $5, \
                         metadata = $6, version = version + 1, updated_at = $7 \
                         WHERE id = $1 AND version = $2 AND ref_id = $8 RETURNING id, kind",
                    )
                    .bind(id.0)
                    .bind(*expected_version)
                    .bind(*uuid)
                    .bind(location)
                    .bind(metadata_location)
                    .bind(*blob)
                    .bind(*at)
                    .bind(line.0)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| db_error("committing", e))?;
                    if let Some(row) = done {
                        let decode = |e| db_error("committing", e);
                        let id: Uuid = row.try_get("id").map_err(decode)?;
                        kinds.insert(id, row.try_get::<String, _>("kind").map_err(decode)?);
                    }
                }
                return Ok(swap_results(&updates, &kinds));
            }
            let mut query = sqlx::QueryBuilder::<Db>::new(
                "UPDATE tabulars SET uuid = v.column3, location = v.column4, \
                 metadata_location = v.column5, metadata = v.column6, version = version + 1, \
                 updated_at = v.column7 FROM (",
            );
            let mut first = true;
            for (change, blob) in &updates {
                let TabularChange::Update { id, expected_version, uuid, location, metadata_location, at, .. } = change else {
                    return Err(Error::internal("committing", std::io::Error::other("a swap that is not an update")));
                };
                query.push(if first { "VALUES (" } else { ", (" });
                first = false;
                let mut row = query.separated(", ");
                row.push_bind(id.0)
                    .push_bind(*expected_version)
                    .push_bind(*uuid)
                    .push_bind(location.as_str())
                    .push_bind(metadata_location.as_str())
                    .push_bind(*blob)
                    .push_bind(*at);
                query.push(")");
            }
            query.push(") AS v WHERE tabulars.id = v.column1 AND tabulars.version = v.column2 AND tabulars.ref_id = ");
            query.push_bind(line.0);
            query.push(" RETURNING id, kind");
            let rows = query
                .build()
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| db_error("committing", e))?;
            for row in rows {
                let decode = |e| db_error("committing", e);
                let id: Uuid = row.try_get("id").map_err(decode)?;
                let kind: String = row.try_get("kind").map_err(decode)?;
                kinds.insert(id, kind);
            }
            Ok(swap_results(&updates, &kinds))
        }

        /// Per swap, in order: what its commit records, or the conflict it lost (`kinds` holds
        /// the kind of each table whose pointer moved).
        pub(super) fn swap_results(
            updates: &[(&TabularChange, &[u8])],
            kinds: &std::collections::HashMap<Uuid, String>,
        ) -> Vec<std::result::Result<(HistoryEntry, DateTime<Utc>), Error>> {
            updates
                .iter()
                .map(|(change, _)| {
                    let TabularChange::Update { id, ident, expected_version, uuid, location, metadata_location, at, .. } = change else {
                        unreachable!("checked above");
                    };
                    match kinds.get(&id.0) {
                        Some(kind) => Ok((
                            HistoryEntry::Tabular {
                                ident: ident.clone(),
                                op: "update",
                                kind: TabularKind::parse(kind).unwrap_or(TabularKind::Table),
                                id: *id,
                                uuid: *uuid,
                                location: location.clone(),
                                metadata_location: metadata_location.clone(),
                                version: expected_version + 1,
                            },
                            *at,
                        )),
                        None => Err(Error::new(
                            crate::error::ErrorKind::CommitConflict,
                            format!("{ident} was changed by another commit"),
                        )),
                    }
                })
                .collect()
        }

        /// The compressed metadata of each change.
        pub(crate) fn compress_changes(changes: &[TabularChange]) -> Result<Vec<Vec<u8>>> {
            changes
                .iter()
                .map(|change| match change {
                    TabularChange::Create(t) => compress(&t.metadata),
                    TabularChange::Update { metadata, .. } => compress(metadata),
                })
                .collect()
        }
    };
}

pub(crate) use stamp;
