//! Row mapping shared by every store file: the columns each record is read from, and the
//! functions that turn a row into a `model` record.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use sqlx::Row as _;
        use sqlx::types::Json;
        use uuid::Uuid;

        use crate::error::{Error, Result};
        use crate::model::{
            AccessKey, Commit, CommitChange, CommitId, Namespace, NamespaceId, NamespaceIdent,
            Project, ProjectId, Properties, Ref, RefId, RefKind, SecretId, StorageProfile, Tabular,
            TabularId, TabularIdent, TabularKind, Warehouse, WarehouseId
        };
        use crate::store::{db_error, decompress};

        /// The columns `ref_from_row` reads.
        pub(super) const REF_COLUMNS: &str = "id, warehouse_id, name, kind, created_at, parent_id, \
            parent_seq, head_seq, head_commit, head_generation";

        pub(super) fn project_from_row(row: &$row) -> std::result::Result<Project, sqlx::Error> {
            Ok(Project {
                id: ProjectId(row.try_get("id")?),
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        pub(super) fn warehouse_from_row(row: &$row) -> std::result::Result<Warehouse, sqlx::Error> {
            let profile: Json<StorageProfile> = row.try_get("storage_profile")?;
            let secret: Option<Uuid> = row.try_get("credential_secret_id")?;
            Ok(Warehouse {
                id: WarehouseId(row.try_get("id")?),
                project_id: ProjectId(row.try_get("project_id")?),
                name: row.try_get("name")?,
                storage_profile: profile.0,
                credential_secret_id: secret.map(SecretId),
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        pub(super) fn ref_from_row(row: &$row) -> std::result::Result<Ref, sqlx::Error> {
            let kind: String = row.try_get("kind")?;
            Ok(Ref {
                id: RefId(row.try_get("id")?),
                warehouse_id: WarehouseId(row.try_get("warehouse_id")?),
                name: row.try_get("name")?,
                kind: RefKind::parse(&kind).ok_or_else(|| {
                    sqlx::Error::Decode(format!("unknown ref kind {kind:?}").into())
                })?,
                created_at: row.try_get("created_at")?,
                parent: match (
                    row.try_get::<Option<Uuid>, _>("parent_id")?,
                    row.try_get::<Option<i64>, _>("parent_seq")?,
                ) {
                    (Some(line), Some(seq)) => Some((RefId(line), seq)),
                    _ => None,
                },
                head_seq: row.try_get("head_seq")?,
                head_commit: row.try_get::<Option<Uuid>, _>("head_commit")?.map(CommitId),
                head_generation: row.try_get("head_generation")?,
            })
        }

        pub(super) fn commit_from_row(row: &$row) -> Result<Commit> {
            let decode = |e| db_error("decoding a commit", e);
            let parents: String = row.try_get("parents").map_err(decode)?;
            let changes: String = row.try_get("changes").map_err(decode)?;
            let json = |e| Error::internal("decoding a commit", e);
            Ok(Commit {
                id: CommitId(row.try_get("id").map_err(decode)?),
                warehouse_id: WarehouseId(row.try_get("warehouse_id").map_err(decode)?),
                line: RefId(row.try_get("line_id").map_err(decode)?),
                seq: row.try_get("seq").map_err(decode)?,
                parents: serde_json::from_str(&parents).map_err(json)?,
                generation: row.try_get("generation").map_err(decode)?,
                message: row.try_get("message").map_err(decode)?,
                author: row.try_get("author").map_err(decode)?,
                created_at: row.try_get("created_at").map_err(decode)?,
                changes: serde_json::from_str::<Vec<CommitChange>>(&changes).map_err(json)?,
            })
        }

        pub(super) fn namespace_from_row(row: &$row) -> std::result::Result<Namespace, Error> {
            let decode = |e| db_error("decoding a namespace", e);
            let name: String = row.try_get("name").map_err(decode)?;
            let properties: Json<Properties> = row.try_get("properties").map_err(decode)?;
            Ok(Namespace {
                id: NamespaceId(row.try_get("id").map_err(decode)?),
                warehouse_id: WarehouseId(row.try_get("warehouse_id").map_err(decode)?),
                ref_id: RefId(row.try_get("ref_id").map_err(decode)?),
                ident: NamespaceIdent::from_joined(&name).map_err(|e| {
                    Error::internal("stored namespace name is invalid", anyhow::anyhow!("{e}"))
                })?,
                properties: properties.0,
                created_at: row.try_get("created_at").map_err(decode)?,
                updated_at: row.try_get("updated_at").map_err(decode)?,
            })
        }

        /// A connection of this backend.
        pub(super) type Conn = <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection;

        /// The columns `tabular_from_row` reads, of `tabulars t`.
        pub(super) const TABULAR_COLUMNS: &str = "t.id, t.warehouse_id, t.ref_id, t.kind, t.uuid, \
            t.location, t.metadata_location, t.metadata, t.version, t.created_at, t.updated_at";

        pub(super) fn tabular_from_row(row: &$row, ident: TabularIdent) -> Result<Tabular> {
            let decode = |e| db_error("decoding a table", e);
            let kind: String = row.try_get("kind").map_err(decode)?;
            let stored: Vec<u8> = row.try_get("metadata").map_err(decode)?;
            Ok(Tabular {
                id: TabularId(row.try_get("id").map_err(decode)?),
                warehouse_id: WarehouseId(row.try_get("warehouse_id").map_err(decode)?),
                ref_id: RefId(row.try_get("ref_id").map_err(decode)?),
                ident,
                kind: TabularKind::parse(&kind).ok_or_else(|| {
                    Error::internal("decoding a table", anyhow::anyhow!("unknown kind {kind:?}"))
                })?,
                uuid: row.try_get("uuid").map_err(decode)?,
                location: row.try_get("location").map_err(decode)?,
                metadata_location: row.try_get("metadata_location").map_err(decode)?,
                metadata: decompress(&stored)?.into(),
                version: row.try_get("version").map_err(decode)?,
                created_at: row.try_get("created_at").map_err(decode)?,
                updated_at: row.try_get("updated_at").map_err(decode)?,
            })
        }

        /// The columns `commit_from_row` reads.
        pub(super) const COMMIT_COLUMNS: &str = "id, warehouse_id, line_id, seq, parents, generation, \
            message, author, created_at, changes";

        pub(super) fn access_key_from_row(row: &$row) -> std::result::Result<AccessKey, sqlx::Error> {
            Ok(AccessKey {
                id: row.try_get("id")?,
                warehouse_id: WarehouseId(row.try_get("warehouse_id")?),
                description: row.try_get("description")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                created_by: row.try_get("created_by")?,
            })
        }
    };
}

pub(crate) use stamp;
