//! The events relay: every Floe instance runs one. It hands the outbox's pending events to every
//! publisher (`store::EventStore::publish_pending`, which on PostgreSQL shares the work between
//! instances key by key), retries with backoff while a publisher fails (the events wait in the
//! database), and expires published events after the retention.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::Services;
use crate::error::Result;
use crate::events::EventPublisher;
use crate::model::events::CloudEvent;
use crate::store::EventSink;

/// How the relay runs (`events.*`).
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Events handed to the publishers at once.
    pub batch: usize,
    /// How often an idle relay looks for new events.
    pub interval: Duration,
    /// Published events are kept this long (the events feed reads them).
    pub retention: Duration,
    /// Pending events past which readiness details raise an alarm.
    pub backlog_alarm: u64,
}

/// What `/ready` shows of events.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct EventsStatus {
    /// Events written and not yet published.
    pub pending: u64,
    /// Age of the oldest pending event, in seconds.
    pub oldest_pending_seconds: Option<i64>,
    /// Whether the backlog passed `events.backlog_alarm`.
    pub backlog_alarm: bool,
    /// Each publisher: `ok`, or why not.
    pub publishers: std::collections::BTreeMap<String, String>,
}

/// How long a woken relay waits for more changes before it reads the outbox.
const COALESCE: Duration = Duration::from_millis(10);

struct Fanout(Arc<Vec<Arc<dyn EventPublisher>>>);

#[async_trait]
impl EventSink for Fanout {
    async fn deliver(&self, events: &[CloudEvent]) -> Result<()> {
        for publisher in self.0.iter() {
            publisher.publish(events).await?;
        }
        Ok(())
    }
}

impl Services {
    /// Runs the relay until the task is aborted.
    pub fn spawn_relay(&self, settings: RelaySettings) -> tokio::task::JoinHandle<()> {
        let store = self.store.events.clone();
        let sink = Fanout(self.events.clone());
        let wake = self.relay_wake.clone();
        tokio::spawn(async move {
            let idle = settings.interval;
            let mut backoff = idle;
            let mut expired_at: Option<tokio::time::Instant> = None;
            loop {
                match store.publish_pending(settings.batch, &sink).await {
                    Ok(n) => {
                        backoff = idle;
                        if n < settings.batch {
                            // Until a change is made here, or another instance's may be due.
                            tokio::select! {
                                () = wake.notified() => {
                                    // Let the changes made meanwhile join the batch: fewer,
                                    // larger rounds cost the writers less.
                                    tokio::time::sleep(COALESCE).await;
                                }
                                () = tokio::time::sleep(idle) => {}
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.message, retry_in = ?backoff, "relaying events failed; they wait in the database");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                if expired_at.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                    expired_at = Some(tokio::time::Instant::now());
                    let cutoff = chrono::Utc::now()
                        - chrono::Duration::from_std(settings.retention)
                            .unwrap_or(chrono::Duration::days(7));
                    if let Err(e) = store.expire_events(cutoff).await {
                        tracing::warn!(error = %e.message, "expiring published events failed");
                    }
                }
            }
        })
    }

    /// Whether events are written and published at all (`events.backends` is not empty).
    pub fn events_enabled(&self) -> bool {
        !self.events.is_empty()
    }

    /// Records that a dropped table's files were purged: its `table.purged` event, ordered with
    /// the table's other events. A failure is logged.
    pub(crate) async fn record_purged(
        &self,
        ctx: &super::RequestContext,
        warehouse: crate::model::WarehouseId,
        uuid: uuid::Uuid,
        subject: String,
    ) {
        if !self.events_enabled() {
            return;
        }
        let actor = ctx.principal.display_id();
        let event = CloudEvent::new(
            "table.purged",
            subject,
            format!("{warehouse}/{uuid}"),
            &crate::model::events::EventContext {
                actor: &actor,
                request_id: &ctx.request_id,
                warehouse: Some(warehouse.0),
                reference: None,
                commit: None,
            },
            &[],
            chrono::Utc::now(),
            serde_json::json!({ "table-uuid": uuid }),
        );
        match self.store.events.record_events(&[event]).await {
            Ok(()) => self.wake_relay(),
            Err(e) => tracing::warn!(error = %e.message, "recording a purge's event failed"),
        }
    }

    /// Tells the relay that changes were just made (their events are in the outbox): it looks
    /// at once instead of at its next interval.
    pub fn wake_relay(&self) {
        self.relay_wake.notify_one();
    }

    /// The outbox's backlog and each publisher's health.
    pub async fn events_status(&self, backlog_alarm: u64) -> Result<EventsStatus> {
        let backlog = self.store.events.event_backlog().await?;
        let mut publishers = std::collections::BTreeMap::new();
        for publisher in self.events.iter() {
            let health = match publisher.health().await {
                Ok(()) => "ok".to_string(),
                Err(e) => e.message,
            };
            publishers.insert(publisher.name().to_string(), health);
        }
        Ok(EventsStatus {
            pending: backlog.pending,
            oldest_pending_seconds: backlog
                .oldest
                .map(|t| (chrono::Utc::now() - t).num_seconds().max(0)),
            backlog_alarm: backlog.pending > backlog_alarm,
            publishers,
        })
    }
}
