//! The production backend: PostgreSQL through one connection pool. Floe processes keep no state that
//! matters, so any number of them can share one database.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};

use crate::config::{DatabaseConfig, redact_url};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    read: PgPool,
    write: PgPool,
}

impl super::sql::BackendDb for PostgresStore {
    type Db = sqlx::Postgres;
}

impl PostgresStore {
    pub const BACKEND: &'static str = "postgres";

    pub async fn connect(url: &str, config: &DatabaseConfig) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .with_context(|| format!("database.url {} is not a valid URL", redact_url(url)))?;
        let options = options
            .application_name("floe")
            .options([("statement_timeout", config.statement_timeout_ms.to_string())]);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            .idle_timeout(Duration::from_secs(config.idle_timeout_secs))
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redact_url(url)))?;
        Ok(PostgresStore {
            read: pool.clone(),
            write: pool,
        })
    }

    /// Applies pending migrations (concurrent runs are serialized by sqlx's advisory lock), or
    /// (with `apply` false) fails if any are pending.
    pub async fn migrate(&self, apply: bool) -> anyhow::Result<()> {
        if apply {
            MIGRATOR
                .run(&self.write)
                .await
                .context("applying PostgreSQL migrations")?;
            return Ok(());
        }
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&self.read)
            .await
            .unwrap_or_default();
        super::check_migrations(&MIGRATOR, &applied)
    }
}

impl PostgresStore {
    /// One transaction per commit: PostgreSQL takes concurrent writers itself.
    async fn commit_changes(
        &self,
        ref_id: crate::model::RefId,
        changes: &[super::TabularChange],
    ) -> crate::error::Result<()> {
        let blobs = compress_changes(changes)?;
        let mut tx = self
            .write
            .begin()
            .await
            .map_err(|e| super::db_error("committing", e))?;
        apply_tabular_changes(&mut tx, ref_id, changes, &blobs).await?;
        tx.commit()
            .await
            .map_err(|e| super::db_error("committing", e))
    }
}

super::sql::impl_sql_store!(PostgresStore, PgRow, " FOR UPDATE");
