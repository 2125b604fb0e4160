//! Floe's integration tests: one binary, real SQLite and PostgreSQL, real HTTP.
//! PostgreSQL is reached at `FLOE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! `scripts/test` starts one when none runs.

/// Runs each listed `async fn(Backend)` once on SQLite and once on PostgreSQL.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

mod bench;
mod branches;
mod commits;
mod common;
mod drops;
mod errors;
mod events;
mod events_server;
mod format_v3;
mod gateway;
mod grants;
mod http2;
mod iceberg_rust;
mod idempotency;
mod lifecycle;
mod management;
mod namespaces;
mod openapi;
mod properties;
mod properties_commits;
mod secrets;
mod store_suite;
mod tables;
mod tasks_crash;
mod vault;
