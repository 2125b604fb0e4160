//! The SQL both backends share. The statements are written in the common subset of PostgreSQL and
//! SQLite (`$N` parameters, `RETURNING`, `ON CONFLICT`), so one text serves both and the two cannot
//! drift apart. Each file here holds one concern as a small `stamp!` macro that writes its code
//! for a backend; [`impl_sql_store!`] stamps every file out inside the backend's module (each in a
//! submodule of the same name), so that the code is compiled against the backend's concrete row,
//! connection and pool types.
//!
//! The backend's dialect differences are passed in: the row-lock suffix of a read-modify-write
//! select (`" FOR NO KEY UPDATE"` on PostgreSQL, which leaves foreign keys pointing at the row free
//! to be checked, so inserts of rows that reference it do not deadlock against it; nothing on
//! SQLite, whose single writer already serializes), the statement that takes a warehouse's
//! folder-claim lock, and the constants of [`BackendDb`]. A backend struct must have a `read` and a
//! `write` pool (the same pool on PostgreSQL; SQLite has one writer connection).
//!
//! - `rows`: row mapping shared by the others (columns and `*_from_row`);
//! - `history`: recording commits and history rows on a locked line;
//! - `lines`: what a line (branch) sees: its own rows, else its parent's as of the fork;
//! - `events`: the outbox of change events, and its relay's claims;
//! - `writer`: the group-commit writer; `changes`: one commit's changes inside its transaction;
//!   `claims`: the folder-claim checks and inserts of those changes;
//! - one file per aggregate's store: `server`, `projects`, `warehouses`, `namespaces`,
//!   `tabulars`, `refs`, `secrets`, `access_keys`, `users`, `authz`, `tasks` (the task queue),
//!   `lifecycle` (delete profiles, protection, soft-deleted tables).

pub(super) mod access_keys;
pub(super) mod authz;
pub(super) mod changes;
pub(super) mod claims;
pub(super) mod events;
pub(super) mod history;
pub(super) mod idempotency;
pub(super) mod lifecycle;
pub(super) mod lines;
pub(super) mod namespaces;
pub(super) mod projects;
pub(super) mod refs;
pub(super) mod rows;
pub(super) mod scan_plans;
pub(super) mod secrets;
pub(super) mod server;
pub(super) mod tabulars;
pub(super) mod tasks;
pub(super) mod users;
pub(super) mod warehouses;
pub(super) mod writer;

macro_rules! impl_sql_store {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        mod rows {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::rows::stamp!($store, $row, $for_update, $location_lock);
        }
        mod history {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::history::stamp!($store, $row, $for_update, $location_lock);
        }
        mod lines {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::lines::stamp!($store, $row, $for_update, $location_lock);
        }
        mod writer {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::writer::stamp!($store, $row, $for_update, $location_lock);
        }
        mod claims {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::claims::stamp!($store, $row, $for_update, $location_lock);
        }
        mod changes {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::changes::stamp!($store, $row, $for_update, $location_lock);
        }
        mod events {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::events::stamp!($store, $row, $for_update, $location_lock);
        }
        mod server {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::server::stamp!($store, $row, $for_update, $location_lock);
        }
        mod projects {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::projects::stamp!($store, $row, $for_update, $location_lock);
        }
        mod authz {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::authz::stamp!($store, $row, $for_update, $location_lock);
        }
        mod users {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::users::stamp!($store, $row, $for_update, $location_lock);
        }
        mod warehouses {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::warehouses::stamp!($store, $row, $for_update, $location_lock);
        }
        mod namespaces {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::namespaces::stamp!($store, $row, $for_update, $location_lock);
        }
        mod tabulars {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::tabulars::stamp!($store, $row, $for_update, $location_lock);
        }
        mod refs {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::refs::stamp!($store, $row, $for_update, $location_lock);
        }
        mod secrets {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::secrets::stamp!($store, $row, $for_update, $location_lock);
        }
        mod tasks {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::tasks::stamp!($store, $row, $for_update, $location_lock);
        }
        mod lifecycle {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::lifecycle::stamp!($store, $row, $for_update, $location_lock);
        }
        mod idempotency {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::idempotency::stamp!($store, $row, $for_update, $location_lock);
        }
        mod scan_plans {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::scan_plans::stamp!($store, $row, $for_update, $location_lock);
        }
        mod access_keys {
            #[allow(unused_imports)]
            use super::*;
            $crate::store::sql::access_keys::stamp!($store, $row, $for_update, $location_lock);
        }

        // What the files share, in the backend's module, so that each file sees the others'.
        #[allow(unused_imports)]
        use self::{
            changes::*, claims::*, history::*, lifecycle::*, lines::*, projects::*, rows::*,
            tabulars::*, tasks::*, writer::*,
        };
    };
}

pub(crate) use impl_sql_store;

/// Names the sqlx database type of a backend, for generic helpers inside [`impl_sql_store!`].
/// A connection from `pool`, the wait recorded (`telemetry`).
pub(crate) async fn acquire<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
) -> std::result::Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
    let started = std::time::Instant::now();
    let conn = pool.acquire().await;
    crate::telemetry::pool_acquired(started.elapsed());
    conn
}

pub(crate) trait BackendDb {
    type Db: sqlx::Database;
    /// Whether a group-commit writer keeps its connection from one group to the next. On
    /// PostgreSQL that saves the pool's liveness check, a round trip per group; SQLite's one
    /// writer connection must go back to the pool for the other writes.
    const KEEPS_WRITER_CONNECTION: bool;
    /// Whether one statement can insert into several tables (PostgreSQL's data-modifying `WITH`),
    /// so that a line's commits, history and head are written in one round trip.
    const WRITES_IN_ONE_STATEMENT: bool;
    /// Whether several processes relay events at once (PostgreSQL), sharing the work with row
    /// locks; SQLite's one process relays alone.
    const SHARED_RELAY: bool;
    /// Whether reads and writes share one pool (PostgreSQL); SQLite has a pool of readers and
    /// one writer connection.
    const ONE_POOL: bool;
    /// The suffix of a select that claims a queued row: `FOR UPDATE SKIP LOCKED` where several
    /// processes claim at once (PostgreSQL); nothing on SQLite, whose one writer serializes.
    const SKIP_LOCKED: &'static str;
    /// A `BEGIN` that also takes a group's locks in the same round trip (the folder-claim lock of
    /// each warehouse in `claims`, then each line's row, in the given sorted order), or `None`
    /// where locks cost no round trip (SQLite, whose single writer serializes anyway). Only ids
    /// are formatted into the text: UUIDs, hex digits and dashes.
    fn begin_locking(claims: &[uuid::Uuid], lines: &[uuid::Uuid]) -> Option<String>;
}
