//! The embedded backend: one SQLite file in WAL mode, one writer connection (SQLite allows one
//! writer at a time; a single connection makes writers queue in the pool instead of failing with
//! `SQLITE_BUSY`) and a pool of readers.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};

use super::{SqliteOptions, SqliteSync};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// Held for the store's life: one Floe process per database file, so that its in-memory
    /// table cache sees every write.
    _owner: std::fs::File,
    /// Commits waiting for the group-commit writer (see `commit_changes`).
    commits: tokio::sync::mpsc::Sender<CommitJob>,
}

impl super::sql::BackendDb for SqliteStore {
    type Db = sqlx::Sqlite;
    const KEEPS_WRITER_CONNECTION: bool = false;
    const WRITES_IN_ONE_STATEMENT: bool = false;
    const SHARED_RELAY: bool = false;
    const SKIP_LOCKED: &'static str = "";
    const ONE_POOL: bool = false;

    fn begin_locking(_claims: &[uuid::Uuid], _lines: &[uuid::Uuid]) -> Option<String> {
        None
    }
}

impl SqliteStore {
    pub const BACKEND: &'static str = "sqlite";

    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path, options: &SqliteOptions) -> anyhow::Result<Self> {
        let pool = &options.pool;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the database folder {}", dir.display()))?;
        }
        let lock_path = path.with_extension("db.lock");
        let owner = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        // A process that is still shutting down may hold the lock for a moment: wait a little.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match owner.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                    "another Floe process is using the database {}; stop it first (use PostgreSQL to run several instances)",
                    path.display()
                ),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", lock_path.display()));
                }
            }
        }
        let synchronous = match options.synchronous {
            SqliteSync::Off => sqlx::sqlite::SqliteSynchronous::Off,
            SqliteSync::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
            SqliteSync::Full => sqlx::sqlite::SqliteSynchronous::Full,
        };
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .busy_timeout(pool.statement_timeout);
        let acquire = pool.acquire_timeout;
        let idle = pool.idle_timeout;
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire)
            .idle_timeout(None)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        let read = SqlitePoolOptions::new()
            .max_connections(pool.max_connections)
            .min_connections(pool.min_connections)
            .acquire_timeout(acquire)
            .idle_timeout(idle)
            // 1 MiB of pages per reader instead of SQLite's 2 MiB: ten readers' caches filled by
            // a burst of table creations were a tenth of the server's memory, and the file's
            // pages stay in the kernel's cache anyway.
            .connect_with(options.read_only(true).pragma("cache_size", "-1024"))
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        let (commits, queue) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(group_commit_writer(write.clone(), queue));
        Ok(SqliteStore {
            read,
            write,
            _owner: owner,
            commits,
        })
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

impl SqliteStore {
    /// SQLite has one writer, and each transaction waits for its own fsync of the log. Commits are
    /// therefore queued to one writer task that takes every commit waiting (up to 64) into one
    /// transaction, each inside its own savepoint: a commit whose compare-and-swap fails is rolled
    /// back alone, the others are made durable together by one fsync.
    async fn commit_changes(
        &self,
        ref_id: crate::model::RefId,
        changes: &[super::TabularChange],
        meta: &crate::model::CommitMeta,
    ) -> crate::error::Result<()> {
        submit_commit(&self.commits, ref_id, changes, meta).await
    }
}

// SQLite has one writer: claims of table folders need no lock of their own.
super::sql::impl_sql_store!(SqliteStore, SqliteRow, "", "SELECT length($1)");
