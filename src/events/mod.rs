//! Change events: CloudEvents (`model::events`) handed to every configured [`EventPublisher`].
//! Changes write their events into the outbox inside their own transaction and the relay
//! (`service::relay`) publishes them; only metrics reports, which change nothing, are handed to
//! the publishers directly. The in-tree default, [`LogPublisher`], writes each as a `tracing`
//! line; [`nats`] publishes to NATS JetStream.
//!
//! Depends on `model` only.

pub mod nats;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::events::CloudEvent;

#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes `events` in order; returns once the destination holds them all (an error
    /// leaves outbox events pending, to be published again: destinations drop duplicates by id
    /// where they can).
    async fn publish(&self, events: &[CloudEvent]) -> Result<()>;
    async fn health(&self) -> Result<()>;
    /// The publisher's name in readiness details.
    fn name(&self) -> &'static str;
}

/// Writes each event as an `info` log line with target `floe::events`.
pub struct LogPublisher;

#[async_trait]
impl EventPublisher for LogPublisher {
    async fn publish(&self, events: &[CloudEvent]) -> Result<()> {
        for event in events {
            tracing::info!(
                target: "floe::events",
                event_id = %event.id,
                kind = %event.kind,
                subject = %event.subject,
                event = %event.body,
                "catalog event"
            );
        }
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "log"
    }
}
