//! Change events: after a change commits, the use case hands a [`CatalogEvent`] to every configured
//! `EventPublisher`. The in-tree default, [`LogPublisher`], writes each as a `tracing` line;
//! CloudEvents on NATS comes later behind the same trait. A publisher failure is logged and never
//! fails the request, whose change is already committed.
//!
//! Depends on `model` only.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::Result;

/// One committed change. `kind` reads like a CloudEvents type (`floe.namespace.created`).
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEvent {
    pub id: Uuid,
    pub kind: &'static str,
    pub time: DateTime<Utc>,
    /// Who made the change.
    pub actor: String,
    pub request_id: String,
    /// What changed, e.g. `warehouse/<id>/namespace/a.b`.
    pub subject: String,
    pub data: serde_json::Value,
}

#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, event: &CatalogEvent) -> Result<()>;
    async fn health(&self) -> Result<()>;
}

/// Writes each event as an `info` log line with target `floe::events`.
pub struct LogPublisher;

#[async_trait]
impl EventPublisher for LogPublisher {
    async fn publish(&self, event: &CatalogEvent) -> Result<()> {
        tracing::info!(
            target: "floe::events",
            event_id = %event.id,
            kind = event.kind,
            subject = %event.subject,
            actor = %event.actor,
            request_id = %event.request_id,
            data = %event.data,
            "catalog event"
        );
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}
