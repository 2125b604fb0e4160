//! The embedded backend: one SQLite file in WAL mode, one writer connection (SQLite allows one
//! writer at a time; a single connection makes writers queue in the pool instead of failing with
//! `SQLITE_BUSY`) and a pool of readers.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};

use crate::config::{DatabaseConfig, SqliteSynchronous};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl super::sql::BackendDb for SqliteStore {
    type Db = sqlx::Sqlite;
}

impl SqliteStore {
    pub const BACKEND: &'static str = "sqlite";

    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path, config: &DatabaseConfig) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database folder {}", dir.display()))?;
        }
        let synchronous = match config.sqlite_synchronous {
            SqliteSynchronous::Off => sqlx::sqlite::SqliteSynchronous::Off,
            SqliteSynchronous::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
            SqliteSynchronous::Full => sqlx::sqlite::SqliteSynchronous::Full,
        };
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .busy_timeout(Duration::from_millis(config.statement_timeout_ms));
        let acquire = Duration::from_millis(config.acquire_timeout_ms);
        let idle = Duration::from_secs(config.idle_timeout_secs);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire)
            .idle_timeout(None)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        let read = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(acquire)
            .idle_timeout(idle)
            .connect_with(options.read_only(true))
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        Ok(SqliteStore { read, write })
    }

    /// Applies pending migrations, or (with `apply` false) fails if any are pending.
    pub async fn migrate(&self, apply: bool) -> anyhow::Result<()> {
        if apply {
            MIGRATOR
                .run(&self.write)
                .await
                .context("applying SQLite migrations")?;
            return Ok(());
        }
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&self.read)
            .await
            .unwrap_or_default();
        super::check_migrations(&MIGRATOR, &applied)
    }
}

super::sql::impl_sql_store!(SqliteStore, SqliteRow, "");
