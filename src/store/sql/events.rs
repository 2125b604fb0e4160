//! `EventStore`: the outbox of change events. Events are inserted by `history::write_commits`
//! inside the change's own transaction; the relay publishes the pending ones here.
//!
//! On PostgreSQL several instances relay at once and share the work: each claims the oldest
//! pending event of as many keys as it can lock (`FOR UPDATE SKIP LOCKED`, so two relays never
//! take the same key), publishes those keys' pending events in order, marks them published and
//! commits; a key another relay holds is skipped until it is done. SQLite's one process reads its
//! pending events and marks them afterwards, without holding its one writer while publishing.

macro_rules! stamp {
    ($store:ty, $row:ty, $for_update:literal, $location_lock:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::Row as _;

        use crate::error::Result;
        use crate::model::events::CloudEvent;
        use crate::store::{EventBacklog, EventSink, EventStore, FeedEvent, db_error};

        /// Appends a multi-row insert of `events` to `statement`.
        pub(crate) fn insert_events(
            statement: &mut sqlx::QueryBuilder<<$store as crate::store::sql::BackendDb>::Db>,
            events: &[CloudEvent],
        ) {
            statement.push(
                "INSERT INTO events (id, event_key, type, subject, warehouse_id, created_at, body) ",
            );
            let now = Utc::now();
            statement.push_values(events, |mut row, e| {
                row.push_bind(e.id)
                    .push_bind(e.key.clone())
                    .push_bind(e.kind.clone())
                    .push_bind(e.subject.clone())
                    .push_bind(e.warehouse)
                    .push_bind(now)
                    .push_bind(e.body.clone());
            });
        }

        /// Inserts `events` on `conn`, inside the caller's transaction (nothing when none).
        pub(crate) async fn write_events(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            events: &[CloudEvent],
        ) -> Result<()> {
            for chunk in events.chunks(500) {
                let mut insert = sqlx::QueryBuilder::new("");
                insert_events(&mut insert, chunk);
                insert
                    .build()
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| db_error("recording events", e))?;
            }
            Ok(())
        }

        /// `mark_published` in one statement (PostgreSQL: a data-modifying `WITH`).
        async fn mark_published_in_one(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            seqs: &[i64],
        ) -> Result<()> {
            let count = i64::try_from(seqs.len()).unwrap_or(i64::MAX);
            let mut update = sqlx::QueryBuilder::<<$store as crate::store::sql::BackendDb>::Db>::new(
                "WITH f AS (UPDATE event_feed SET last_seq = last_seq + ",
            );
            update.push_bind(count);
            update.push(" WHERE singleton = 1 RETURNING last_seq - ");
            update.push_bind(count);
            update.push(" AS base) UPDATE events SET published_at = ");
            update.push_bind(Utc::now());
            update.push(", feed_seq = (SELECT base FROM f) + CASE seq");
            for (i, seq) in seqs.iter().enumerate() {
                update.push(" WHEN ");
                update.push_bind(*seq);
                update.push(" THEN ");
                update.push_bind(1 + i as i64);
            }
            update.push(" END WHERE seq IN (");
            let mut list = update.separated(", ");
            for seq in seqs {
                list.push_bind(*seq);
            }
            update.push(")");
            update
                .build()
                .execute(&mut *conn)
                .await
                .map_err(|e| db_error("marking events published", e))?;
            Ok(())
        }

        fn event_from_row(row: &$row) -> std::result::Result<(i64, CloudEvent), sqlx::Error> {
            Ok((
                row.try_get("seq")?,
                CloudEvent {
                    id: row.try_get("id")?,
                    kind: row.try_get("type")?,
                    subject: row.try_get("subject")?,
                    warehouse: row.try_get("warehouse_id")?,
                    key: row.try_get("event_key")?,
                    body: row.try_get("body")?,
                },
            ))
        }

        /// Marks events published (`seqs` in the order they were recorded) and gives them their
        /// feed positions, next after the last given: `event_feed`'s row stays locked until the
        /// caller's transaction commits, so positions become visible in order.
        async fn mark_published(
            conn: &mut <<$store as crate::store::sql::BackendDb>::Db as sqlx::Database>::Connection,
            seqs: &[i64],
        ) -> Result<()> {
            let failed = |e| db_error("marking events published", e);
            let count = i64::try_from(seqs.len()).unwrap_or(i64::MAX);
            let last: i64 = sqlx::query_scalar(
                "UPDATE event_feed SET last_seq = last_seq + $1 WHERE singleton = 1 RETURNING last_seq",
            )
            .bind(count)
            .fetch_one(&mut *conn)
            .await
            .map_err(failed)?;
            let base = last - count;
            let mut update = sqlx::QueryBuilder::<<$store as crate::store::sql::BackendDb>::Db>::new(
                "UPDATE events SET published_at = ",
            );
            update.push_bind(Utc::now());
            update.push(", feed_seq = CASE seq");
            for (i, seq) in seqs.iter().enumerate() {
                update.push(" WHEN ");
                update.push_bind(*seq);
                update.push(" THEN ");
                update.push_bind(base + 1 + i as i64);
            }
            update.push(" END WHERE seq IN (");
            let mut list = update.separated(", ");
            for seq in seqs {
                list.push_bind(*seq);
            }
            update.push(")");
            update.build().execute(&mut *conn).await.map_err(failed)?;
            Ok(())
        }

        #[async_trait]
        impl EventStore for $store {
            async fn publish_pending(&self, limit: usize, sink: &dyn EventSink) -> Result<usize> {
                let failed = |e| db_error("relaying events", e);
                let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
                if !<$store as crate::store::sql::BackendDb>::SHARED_RELAY {
                    let rows = sqlx::query(
                        "SELECT seq, id, event_key, type, subject, warehouse_id, body FROM events \
                         WHERE published_at IS NULL ORDER BY seq LIMIT $1",
                    )
                    .bind(limit)
                    .fetch_all(&self.read)
                    .await
                    .map_err(failed)?;
                    let claimed = rows
                        .iter()
                        .map(event_from_row)
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(failed)?;
                    if claimed.is_empty() {
                        return Ok(0);
                    }
                    let events: Vec<CloudEvent> = claimed.iter().map(|(_, e)| e.clone()).collect();
                    sink.deliver(&events).await?;
                    let seqs: Vec<i64> = claimed.iter().map(|(seq, _)| *seq).collect();
                    // Marks need no fsync of their own: one lost to a power cut only has its
                    // events published again, which JetStream drops as duplicates.
                    let mut conn = crate::store::sql::acquire(&self.write).await.map_err(failed)?;
                    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(failed)?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await
                        .map_err(failed)?;
                    let marked = async {
                        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(failed)?;
                        mark_published(&mut tx, &seqs).await?;
                        tx.commit().await.map_err(failed)
                    }
                    .await;
                    let restore = match sync {
                        0 => "PRAGMA synchronous = OFF",
                        1 => "PRAGMA synchronous = NORMAL",
                        3 => "PRAGMA synchronous = EXTRA",
                        _ => "PRAGMA synchronous = FULL",
                    };
                    sqlx::query(restore)
                        .execute(&mut *conn)
                        .await
                        .map_err(failed)?;
                    marked?;
                    return Ok(events.len());
                }
                let mut tx = self.write.begin().await.map_err(failed)?;
                // One statement: the oldest pending event of as many keys as this relay can lock
                // (whoever holds a key's oldest event relays the key), and those keys' pending
                // events in order. The transaction's commit needs no flush of its own: a mark
                // lost to a crash of the database only has its events published again, which
                // JetStream drops as duplicates.
                let rows = sqlx::query(
                    "WITH s AS (SELECT set_config('synchronous_commit', 'off', true) AS v), \
                     heads AS (SELECT event_key FROM events WHERE published_at IS NULL AND seq IN \
                     (SELECT min(seq) FROM events WHERE published_at IS NULL GROUP BY event_key) \
                     ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) \
                     SELECT seq, id, event_key, type, subject, warehouse_id, body FROM events \
                     WHERE published_at IS NULL AND event_key IN (SELECT event_key FROM heads) \
                     AND (SELECT v FROM s) IS NOT NULL ORDER BY seq LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(failed)?;
                if rows.is_empty() {
                    return Ok(0);
                }
                let claimed = rows
                    .iter()
                    .map(event_from_row)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(failed)?;
                let events: Vec<CloudEvent> = claimed.iter().map(|(_, e)| e.clone()).collect();
                sink.deliver(&events).await?;
                let seqs: Vec<i64> = claimed.iter().map(|(seq, _)| *seq).collect();
                mark_published_in_one(&mut tx, &seqs).await?;
                tx.commit().await.map_err(failed)?;
                Ok(events.len())
            }

            async fn record_events(&self, events: &[CloudEvent]) -> Result<()> {
                let failed = |e| db_error("recording events", e);
                let mut tx = self.write.begin().await.map_err(failed)?;
                write_events(&mut tx, events).await?;
                tx.commit().await.map_err(failed)
            }

            async fn event_backlog(&self) -> Result<EventBacklog> {
                let row = sqlx::query(
                    "SELECT count(*) AS pending, min(created_at) AS oldest FROM events \
                     WHERE published_at IS NULL",
                )
                .fetch_one(&self.read)
                .await
                .map_err(|e| db_error("counting pending events", e))?;
                Ok(EventBacklog {
                    pending: row
                        .try_get::<i64, _>("pending")
                        .map_err(|e| db_error("counting pending events", e))?
                        .max(0) as u64,
                    oldest: row
                        .try_get("oldest")
                        .map_err(|e| db_error("counting pending events", e))?,
                })
            }

            async fn read_feed(
                &self,
                warehouse: uuid::Uuid,
                after: i64,
                limit: usize,
            ) -> Result<Vec<FeedEvent>> {
                let failed = |e| db_error("reading the events feed", e);
                let rows = sqlx::query(
                    "SELECT feed_seq, seq, id, event_key, type, subject, warehouse_id, body \
                     FROM events WHERE feed_seq > $1 AND (warehouse_id = $2 OR warehouse_id IS NULL) \
                     ORDER BY feed_seq LIMIT $3",
                )
                .bind(after)
                .bind(warehouse)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.read)
                .await
                .map_err(failed)?;
                rows.iter()
                    .map(|row| {
                        let (_, event) = event_from_row(row)?;
                        Ok(FeedEvent {
                            position: row.try_get("feed_seq")?,
                            event,
                        })
                    })
                    .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
                    .map_err(failed)
            }

            async fn expire_events(&self, published_before: DateTime<Utc>) -> Result<u64> {
                let done = sqlx::query(
                    "DELETE FROM events WHERE published_at IS NOT NULL AND published_at < $1",
                )
                .bind(published_before)
                .execute(&self.write)
                .await
                .map_err(|e| db_error("expiring events", e))?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use stamp;
