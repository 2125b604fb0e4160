//! The production backend: PostgreSQL through one connection pool. Floe processes keep no state that
//! matters, so any number of them can share one database.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};

use super::{PostgresOptions, redact_url};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    read: PgPool,
    write: PgPool,
    /// Group-commit writers (see `commit_changes`); a line's commits always go to the same one.
    commits: Vec<tokio::sync::mpsc::Sender<CommitJob>>,
}

/// Group-commit writers per process: commits on different lines proceed side by side.
const COMMIT_WRITERS: u32 = 2;

impl super::sql::BackendDb for PostgresStore {
    type Db = sqlx::Postgres;
    const KEEPS_WRITER_CONNECTION: bool = true;
    const WRITES_IN_ONE_STATEMENT: bool = true;
    const SHARED_RELAY: bool = true;
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const ONE_POOL: bool = true;

    fn begin_locking(claims: &[uuid::Uuid], lines: &[uuid::Uuid]) -> Option<String> {
        // The same locks, in the same order, as the statements the group would otherwise run:
        // each warehouse's folder-claim lock, then the lines' rows in id order.
        let mut statement = String::from("BEGIN");
        for warehouse in claims {
            statement.push_str(&format!(
                "; SELECT pg_advisory_xact_lock(hashtext('{warehouse}'))"
            ));
        }
        if !lines.is_empty() {
            let ids: Vec<String> = lines.iter().map(|id| format!("'{id}'")).collect();
            statement.push_str(&format!(
                "; SELECT 1 FROM refs WHERE id IN ({}) ORDER BY id FOR NO KEY UPDATE",
                ids.join(", ")
            ));
        }
        Some(statement)
    }
}

impl PostgresStore {
    pub const BACKEND: &'static str = "postgres";

    pub async fn connect(url: &str, options: &PostgresOptions) -> anyhow::Result<Self> {
        let config = &options.pool;
        let options: PgConnectOptions = url
            .parse()
            .with_context(|| format!("database.url {} is not a valid URL", redact_url(url)))?;
        // Every statement is planned with its values (PostgreSQL would otherwise switch a
        // prepared statement to a generic plan after five runs and keep it: one made while a
        // table was small keeps scanning it once it has grown, the way a fresh warehouse that
        // receives thousands of tables in a minute grows).
        let options = options.application_name("floe").options([
            (
                "statement_timeout",
                config.statement_timeout.as_millis().to_string(),
            ),
            ("plan_cache_mode", "force_custom_plan".to_string()),
        ]);
        // Group-commit writers have a connection each; the rest of `max_connections` is shared.
        let writers = (config.max_connections / 2).clamp(1, COMMIT_WRITERS);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.saturating_sub(writers).max(1))
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(config.idle_timeout)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("connecting to PostgreSQL at {}", redact_url(url)))?;
        let commits = (0..writers)
            .map(|i| {
                let (commits, queue) = tokio::sync::mpsc::channel(1024);
                let options = options.clone();
                let acquire_timeout = config.acquire_timeout;
                // A thread, runtime and connection of its own: a group's round trips then wait
                // only for PostgreSQL, not for a runtime worker to finish some request's JSON
                // (the workers also poll the sockets of their runtime's connections). The line's
                // row stays locked for the group's round trips, so their latency bounds every
                // line's commit rate.
                std::thread::Builder::new()
                    .name(format!("floe-commit-{i}"))
                    .spawn(move || {
                        let runtime = match tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            Ok(runtime) => runtime,
                            Err(e) => {
                                tracing::error!(error = %e, "starting a commit writer failed");
                                return;
                            }
                        };
                        runtime.block_on(async move {
                            let own = PgPoolOptions::new()
                                .max_connections(1)
                                .min_connections(0)
                                .acquire_timeout(acquire_timeout)
                                .connect_lazy_with(options);
                            group_commit_writer(own, queue).await;
                        });
                    })
                    .context("starting a commit writer thread")?;
                Ok(commits)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(PostgresStore {
            read: pool.clone(),
            write: pool,
            commits,
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

/// The channel the `tabulars` trigger notifies (migration 0005), with the changed row's id.
pub const TABULAR_CHANGES: &str = "floe_tabulars";

/// A notification's payload: the changed row's id, and the version its pointer moved to when
/// that is all that changed (`<id>:<version>`, migration 0007).
fn parse_change(payload: &str) -> Option<(crate::model::TabularId, Option<i64>)> {
    let (id, version) = match payload.split_once(':') {
        Some((id, version)) => (id, Some(version.parse::<i64>().ok()?)),
        None => (payload, None),
    };
    Some((crate::model::TabularId(id.parse().ok()?), version))
}

/// After this long without a notification the listener pings itself; if the ping does not arrive
/// within the same time the connection is taken as lost.
const LISTENER_QUIET: Duration = Duration::from_secs(5);

impl PostgresStore {
    /// Keeps `cache` told about every committed change of a table or view, by any instance:
    /// listens on [`TABULAR_CHANGES`] and forgets each table named; whenever the connection is
    /// lost (or not yet made) the cache is told, so it stops trusting what it holds, and the
    /// listener reconnects with a growing pause. Runs until the process ends.
    pub fn spawn_change_listener(&self, cache: std::sync::Arc<super::cache::CachedTabularStore>) {
        let pool = self.read.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            loop {
                cache.listening(false);
                let listener = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                    listener.listen(TABULAR_CHANGES).await?;
                    Ok::<_, sqlx::Error>(listener)
                }
                .await;
                let mut listener = match listener {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for table changes; validating cached tables meanwhile");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(10));
                        continue;
                    }
                };
                // Listening from here on: what was cached before may have missed a change.
                cache.listening(true);
                pause = Duration::from_millis(100);
                // A connection can die silently (a NAT forgetting it, a pooler that drops
                // LISTEN): after a quiet spell the listener notifies itself and expects to hear it.
                let mut awaiting_ping = false;
                loop {
                    let received = match tokio::time::timeout(LISTENER_QUIET, listener.try_recv())
                        .await
                    {
                        Ok(received) => received,
                        Err(_) if awaiting_ping => {
                            tracing::warn!("the table change listener stopped hearing anything");
                            break;
                        }
                        Err(_) => {
                            awaiting_ping = true;
                            // Bounded too: the pool's connection may be as silently dead.
                            let ping = sqlx::query("SELECT pg_notify($1, 'ping')")
                                .bind(TABULAR_CHANGES)
                                .execute(&pool);
                            match tokio::time::timeout(LISTENER_QUIET, ping).await {
                                Ok(Ok(_)) => {}
                                Ok(Err(e)) => {
                                    tracing::warn!(error = %e, "the table change listener cannot ping");
                                    break;
                                }
                                Err(_) => {
                                    tracing::warn!(
                                        "the table change listener's ping did not finish"
                                    );
                                    break;
                                }
                            }
                            continue;
                        }
                    };
                    awaiting_ping = false;
                    match received {
                        Ok(Some(notification)) if notification.payload() == "ping" => {}
                        Ok(Some(notification)) => match parse_change(notification.payload()) {
                            Some((id, version)) => cache.changed(id, version),
                            // Not one of ours: forget everything rather than guess.
                            None => cache.listening(true),
                        },
                        Ok(None) => {
                            tracing::warn!("the table change listener lost its connection");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the table change listener failed");
                            break;
                        }
                    }
                }
            }
        });
    }

    /// A commit holds its line's row from its commit record to the end of its transaction,
    /// including the log flush, so commits on one line take turns. They are therefore queued to
    /// group-commit writers (a line always to the same one) that take every commit waiting into
    /// one transaction, each in its own savepoint: one flush for the group.
    async fn commit_changes(
        &self,
        ref_id: crate::model::RefId,
        changes: &[super::TabularChange],
        meta: &crate::model::CommitMeta,
    ) -> crate::error::Result<()> {
        let writer = (ref_id.0.as_u128() % self.commits.len() as u128) as usize;
        submit_commit(&self.commits[writer], ref_id, changes, meta).await
    }
}

super::sql::impl_sql_store!(
    PostgresStore,
    PgRow,
    " FOR NO KEY UPDATE",
    "SELECT pg_advisory_xact_lock(hashtext($1))"
);

#[cfg(test)]
mod tests {
    use super::parse_change;

    #[test]
    fn change_payloads_name_the_row_and_maybe_its_version() {
        let id = "0191b2d0-7c1e-7cc0-a8a4-3e0f1a2b3c4d";
        let (row, version) = parse_change(id).unwrap();
        assert_eq!(row.0.to_string(), id);
        assert_eq!(version, None);
        let (row, version) = parse_change(&format!("{id}:42")).unwrap();
        assert_eq!(row.0.to_string(), id);
        assert_eq!(version, Some(42));
        assert!(parse_change("ping").is_none());
        assert!(parse_change(&format!("{id}:x")).is_none());
        assert!(parse_change("not-a-uuid:1").is_none());
    }
}
