//! Line (branch) resolution: what a line sees of a namespace or table, its own rows first and,
//! for names it never touched, its parent's as of the fork (see `docs/branching.md`).

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use chrono::{DateTime, Utc};
        use sqlx::Row as _;
        use sqlx::types::Json;
        use uuid::Uuid;

        use crate::error::{Entity, Error, Result};
        use crate::model::{
            Namespace, NamespaceId, NamespaceIdent, Page, PageRequest, Properties, RefId, Tabular,
            TabularId, TabularIdent, TabularKind, WarehouseId
        };
        use crate::store::{db_error, is_unique_violation, not_found};

        /// A line's warehouse and the point it forked at (`None` for `main`).
        pub(super) async fn line_info(conn: &mut Conn, line: RefId) -> Result<(Uuid, Option<(RefId, i64)>)> {
            let failed = |e| db_error("reading a branch", e);
            let row = sqlx::query("SELECT warehouse_id, parent_id, parent_seq FROM refs WHERE id = $1")
                .bind(line.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(failed)?;
            let Some(row) = row else {
                return Err(not_found(Entity::Ref, line));
            };
            let parent = match (
                row.try_get::<Option<Uuid>, _>("parent_id").map_err(failed)?,
                row.try_get::<Option<i64>, _>("parent_seq").map_err(failed)?,
            ) {
                (Some(parent), Some(seq)) => Some((RefId(parent), seq)),
                _ => None,
            };
            Ok((row.try_get("warehouse_id").map_err(failed)?, parent))
        }

        /// The line's own live row of a table or view.
        pub(super) async fn own_tabular(conn: &mut Conn, line: RefId, ident: &TabularIdent) -> Result<Option<Tabular>> {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {TABULAR_COLUMNS} FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id \
                 WHERE n.ref_id = $1 AND n.name = $2 AND t.name = $3"
            )))
            .bind(line.0)
            .bind(ident.namespace.joined())
            .bind(&ident.name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a table", e))?;
            row.as_ref().map(|row| tabular_from_row(row, ident.clone())).transpose()
        }

        /// The latest history entry of a name on a line, at or below `upto` when given.
        pub(super) async fn tabular_entry(
            conn: &mut Conn,
            line: RefId,
            ident: &TabularIdent,
            upto: Option<i64>,
        ) -> Result<Option<$row>> {
            sqlx::query(
                "SELECT kind, tabular_id, uuid, location, metadata_location, version, dropped \
                 FROM tabular_history WHERE line_id = $1 AND namespace = $2 AND name = $3 \
                 AND seq <= $4 ORDER BY seq DESC LIMIT 1",
            )
            .bind(line.0)
            .bind(ident.namespace.joined())
            .bind(&ident.name)
            .bind(upto.unwrap_or(i64::MAX))
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a table's history", e))
        }

        /// A table or view as a line sees it: at its head (`upto` `None`), or as of a seq. A line
        /// sees its own rows and, for names it never touched, its parent as of the fork. A
        /// version only history still knows comes back with empty `metadata`: its metadata file
        /// has it.
        pub(crate) async fn resolve_tabular(
            conn: &mut Conn,
            line: RefId,
            ident: &TabularIdent,
            upto: Option<i64>,
        ) -> Result<Option<Tabular>> {
            let (mut line, mut upto) = (line, upto);
            loop {
                let Some(seq) = upto else {
                    if let Some(own) = own_tabular(conn, line, ident).await? {
                        return Ok(Some(own));
                    }
                    let (_, parent) = line_info(conn, line).await?;
                    let Some(parent) = parent else {
                        return Ok(None);
                    };
                    if let Some(entry) = tabular_entry(conn, line, ident, None).await? {
                        // Dropped or renamed away on this line; or a commit that gave the line its
                        // own row landed between the two reads (they are not one snapshot), and
                        // the row is there now.
                        let dropped: bool = entry
                            .try_get("dropped")
                            .map_err(|e| db_error("reading a table's history", e))?;
                        if !dropped && let Some(own) = own_tabular(conn, line, ident).await? {
                            return Ok(Some(own));
                        }
                        return Ok(None);
                    }
                    (line, upto) = (parent.0, Some(parent.1));
                    continue;
                };
                let Some(entry) = tabular_entry(conn, line, ident, Some(seq)).await? else {
                    let (_, parent) = line_info(conn, line).await?;
                    let Some(parent) = parent else {
                        return Ok(None);
                    };
                    (line, upto) = (parent.0, Some(parent.1));
                    continue;
                };
                let decode = |e| db_error("reading a table's history", e);
                if entry.try_get::<bool, _>("dropped").map_err(decode)? {
                    return Ok(None);
                }
                let id = TabularId(entry.try_get("tabular_id").map_err(decode)?);
                let version: i64 = entry.try_get("version").map_err(decode)?;
                if let Some(own) = own_tabular(conn, line, ident).await?
                    && own.id == id
                    && own.version == version
                {
                    return Ok(Some(own));
                }
                let (warehouse, _) = line_info(conn, line).await?;
                let kind: String = entry.try_get("kind").map_err(decode)?;
                return Ok(Some(Tabular {
                    id,
                    warehouse_id: WarehouseId(warehouse),
                    ref_id: line,
                    ident: ident.clone(),
                    kind: TabularKind::parse(&kind).unwrap_or(TabularKind::Table),
                    uuid: entry.try_get("uuid").map_err(decode)?,
                    location: entry.try_get("location").map_err(decode)?,
                    metadata_location: entry.try_get("metadata_location").map_err(decode)?,
                    metadata: bytes::Bytes::new(),
                    version,
                    created_at: DateTime::<Utc>::UNIX_EPOCH,
                    updated_at: DateTime::<Utc>::UNIX_EPOCH,
                }));
            }
        }

        pub(super) async fn own_namespace(conn: &mut Conn, line: RefId, ident: &NamespaceIdent) -> Result<Option<Namespace>> {
            let row = sqlx::query(
                "SELECT id, warehouse_id, ref_id, name, properties, created_at, updated_at \
                 FROM namespaces WHERE ref_id = $1 AND name = $2",
            )
            .bind(line.0)
            .bind(ident.joined())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a namespace", e))?;
            row.as_ref().map(namespace_from_row).transpose()
        }

        /// The latest history entry of a namespace on a line: (dropped, properties).
        pub(super) async fn namespace_entry(
            conn: &mut Conn,
            line: RefId,
            ident: &NamespaceIdent,
            upto: Option<i64>,
        ) -> Result<Option<(bool, Properties)>> {
            let row = sqlx::query(
                "SELECT dropped, properties FROM namespace_history WHERE line_id = $1 \
                 AND name = $2 AND seq <= $3 ORDER BY seq DESC LIMIT 1",
            )
            .bind(line.0)
            .bind(ident.joined())
            .bind(upto.unwrap_or(i64::MAX))
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| db_error("reading a namespace's history", e))?;
            let Some(row) = row else {
                return Ok(None);
            };
            let decode = |e| db_error("reading a namespace's history", e);
            let properties: String = row.try_get("properties").map_err(decode)?;
            Ok(Some((
                row.try_get("dropped").map_err(decode)?,
                serde_json::from_str(&properties)
                    .map_err(|e| Error::internal("reading a namespace's history", e))?,
            )))
        }

        /// A namespace as a line sees it (see `resolve_tabular`).
        pub(crate) async fn resolve_namespace(
            conn: &mut Conn,
            line: RefId,
            ident: &NamespaceIdent,
            upto: Option<i64>,
        ) -> Result<Option<Namespace>> {
            let (mut line, mut upto) = (line, upto);
            loop {
                let Some(seq) = upto else {
                    if let Some(own) = own_namespace(conn, line, ident).await? {
                        return Ok(Some(own));
                    }
                    let (_, parent) = line_info(conn, line).await?;
                    let Some(parent) = parent else {
                        return Ok(None);
                    };
                    if let Some((dropped, _)) = namespace_entry(conn, line, ident, None).await? {
                        // As for tables: a write that landed between the two reads left its row.
                        if !dropped && let Some(own) = own_namespace(conn, line, ident).await? {
                            return Ok(Some(own));
                        }
                        return Ok(None);
                    }
                    (line, upto) = (parent.0, Some(parent.1));
                    continue;
                };
                match namespace_entry(conn, line, ident, Some(seq)).await? {
                    Some((true, _)) => return Ok(None),
                    Some((false, properties)) => {
                        let (warehouse, _) = line_info(conn, line).await?;
                        return Ok(Some(Namespace {
                            id: NamespaceId(Uuid::nil()),
                            warehouse_id: WarehouseId(warehouse),
                            ref_id: line,
                            ident: ident.clone(),
                            properties,
                            created_at: DateTime::<Utc>::UNIX_EPOCH,
                            updated_at: DateTime::<Utc>::UNIX_EPOCH,
                        }));
                    }
                    None => {
                        let (_, parent) = line_info(conn, line).await?;
                        let Some(parent) = parent else {
                            return Ok(None);
                        };
                        (line, upto) = (parent.0, Some(parent.1));
                    }
                }
            }
        }

        /// One page of sorted names.
        pub(super) fn page_of(names: std::collections::BTreeSet<String>, page: &PageRequest) -> Page<String> {
            let after = page.after.clone().unwrap_or_default();
            let mut items: Vec<String> = names
                .into_iter()
                .filter(|n| n.as_str() > after.as_str())
                .collect();
            let next = match page.limit {
                Some(l) if items.len() > l as usize => {
                    items.truncate(l as usize);
                    items.last().cloned()
                }
                _ => None,
            };
            Page { items, next }
        }

        /// What a listing covers: the child namespaces of one, or the tables or views of one.
        #[derive(Clone, Copy)]
        pub(crate) enum Scope<'a> {
            Namespaces { parent: &'a str },
            Tabulars { namespace: &'a str, kind: TabularKind },
        }

        /// The names a line sees in a scope (see `resolve_tabular`), sorted.
        pub(crate) async fn resolve_names(
            conn: &mut Conn,
            line: RefId,
            upto: Option<i64>,
            scope: Scope<'_>,
        ) -> Result<std::collections::BTreeSet<String>> {
            use std::collections::BTreeSet;
            let failed = |e| db_error("listing", e);
            let mut seen = BTreeSet::new();
            // Names a nearer line decided (present or dropped), which farther lines cannot change.
            let mut decided: BTreeSet<String> = BTreeSet::new();
            let (mut line, mut upto) = (line, upto);
            loop {
                let (present, touched): (Vec<String>, Vec<String>) = match upto {
                    None => {
                        // History first: a commit that lands between the two reads then
                        // shows in the rows (read second), instead of deciding a name the rows
                        // did not show yet.
                        let touched = match scope {
                            Scope::Namespaces { parent } => sqlx::query_scalar::<_, String>(
                                "SELECT DISTINCT name FROM namespace_history \
                                 WHERE line_id = $1 AND parent_name = $2",
                            )
                            .bind(line.0)
                            .bind(parent)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                            Scope::Tabulars { namespace, .. } => sqlx::query_scalar::<_, String>(
                                "SELECT DISTINCT name FROM tabular_history \
                                 WHERE line_id = $1 AND namespace = $2",
                            )
                            .bind(line.0)
                            .bind(namespace)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                        };
                        let own = match scope {
                            Scope::Namespaces { parent } => sqlx::query_scalar::<_, String>(
                                "SELECT name FROM namespaces WHERE ref_id = $1 AND parent_name = $2",
                            )
                            .bind(line.0)
                            .bind(parent)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                            Scope::Tabulars { namespace, kind } => sqlx::query_scalar::<_, String>(
                                "SELECT t.name FROM tabulars t JOIN namespaces n ON n.id = t.namespace_id \
                                 WHERE n.ref_id = $1 AND n.name = $2 AND t.kind = $3",
                            )
                            .bind(line.0)
                            .bind(namespace)
                            .bind(kind.as_str())
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                        };
                        (own, touched)
                    }
                    Some(seq) => {
                        let rows = match scope {
                            Scope::Namespaces { parent } => sqlx::query(
                                "SELECT h.name, h.dropped, 'namespace' AS kind FROM namespace_history h \
                                 WHERE h.line_id = $1 AND h.parent_name = $2 AND h.seq = \
                                 (SELECT max(h2.seq) FROM namespace_history h2 WHERE h2.line_id = $1 \
                                  AND h2.name = h.name AND h2.seq <= $3)",
                            )
                            .bind(line.0)
                            .bind(parent)
                            .bind(seq)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                            Scope::Tabulars { namespace, .. } => sqlx::query(
                                "SELECT h.name, h.dropped, h.kind FROM tabular_history h \
                                 WHERE h.line_id = $1 AND h.namespace = $2 AND h.seq = \
                                 (SELECT max(h2.seq) FROM tabular_history h2 WHERE h2.line_id = $1 \
                                  AND h2.namespace = $2 AND h2.name = h.name AND h2.seq <= $3)",
                            )
                            .bind(line.0)
                            .bind(namespace)
                            .bind(seq)
                            .fetch_all(&mut *conn)
                            .await
                            .map_err(failed)?,
                        };
                        let mut present = Vec::new();
                        let mut touched = Vec::new();
                        for row in rows {
                            let name: String = row.try_get("name").map_err(failed)?;
                            let dropped: bool = row.try_get("dropped").map_err(failed)?;
                            let kind: String = row.try_get("kind").map_err(failed)?;
                            let wanted = match scope {
                                Scope::Namespaces { .. } => true,
                                Scope::Tabulars { kind: k, .. } => kind == k.as_str(),
                            };
                            if !dropped && wanted {
                                present.push(name.clone());
                            }
                            touched.push(name);
                        }
                        (present, touched)
                    }
                };
                for name in present {
                    if !decided.contains(&name) {
                        seen.insert(name);
                    }
                }
                decided.extend(touched);
                decided.extend(seen.iter().cloned());
                let (_, parent) = line_info(conn, line).await?;
                let Some(parent) = parent else {
                    return Ok(seen);
                };
                (line, upto) = (parent.0, Some(parent.1));
            }
        }

        /// The id of the line's own row of a namespace, copying the row it inherits (and its
        /// parents') onto the line first if needed. `NotFound(Namespace)` when the line does not
        /// see it.
        pub(crate) async fn own_namespace_row(
            conn: &mut Conn,
            line: RefId,
            ident: &NamespaceIdent,
        ) -> Result<Uuid> {
            if let Some(own) = own_namespace(conn, line, ident).await? {
                return Ok(own.id.0);
            }
            let mut parent_id: Option<Uuid> = None;
            let levels = ident.levels();
            for depth in 1..=levels.len() {
                let level = NamespaceIdent::new(levels[..depth].to_vec())?;
                if let Some(own) = own_namespace(conn, line, &level).await? {
                    parent_id = Some(own.id.0);
                    continue;
                }
                let Some(seen) = resolve_namespace(conn, line, &level, None).await? else {
                    return Err(not_found(Entity::Namespace, &level));
                };
                let id = Uuid::new_v4();
                let now = Utc::now();
                let (warehouse, _) = line_info(conn, line).await?;
                sqlx::query(
                    "INSERT INTO namespaces (id, warehouse_id, ref_id, name, parent_name, parent_id, \
                     properties, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)",
                )
                .bind(id)
                .bind(warehouse)
                .bind(line.0)
                .bind(level.joined())
                .bind(level.parent().map(|p| p.joined()).unwrap_or_default())
                .bind(parent_id)
                .bind(Json(&seen.properties))
                .bind(now)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::new(
                            crate::error::ErrorKind::CommitConflict,
                            format!("namespace {level} changed concurrently; retry"),
                        )
                    } else {
                        db_error("copying a namespace onto a branch", e)
                    }
                })?;
                parent_id = Some(id);
            }
            Ok(parent_id.expect("a namespace has at least one level"))
        }

        impl $store {
            /// What `find_tabular` finds when the branch has no row of its own: what it
            /// inherits, if anything.
            pub(super) async fn inherited_tabular(
                &self,
                warehouse: WarehouseId,
                ref_name: &str,
                ident: &TabularIdent,
            ) -> Result<Option<Tabular>> {
                let mut conn = crate::store::sql::acquire(&self.read)
                    .await
                    .map_err(|e| db_error("reading a table", e))?;
                let line: Option<(Uuid, Option<Uuid>)> = sqlx::query_as(
                    "SELECT id, parent_id FROM refs WHERE warehouse_id = $1 AND name = $2 \
                     AND kind = 'branch'",
                )
                .bind(warehouse.0)
                .bind(ref_name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| db_error("reading a table", e))?;
                match line {
                    Some((line, Some(_))) => {
                        resolve_tabular(&mut conn, RefId(line), ident, None).await
                    }
                    _ => Ok(None),
                }
            }
        }
    };
}

pub(crate) use stamp;
