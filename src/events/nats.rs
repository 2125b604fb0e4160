//! Publishes events to NATS JetStream: subject `<prefix>.<warehouse>.<type>` (`global` for events
//! of no warehouse), the event id as `Nats-Msg-Id` so that JetStream drops a duplicate (an event
//! published again after a crash between the ack and marking it published), and each batch's
//! acknowledgements awaited before the relay marks it published. The stream is created when
//! missing. The client reconnects on its own; while NATS is down publishing fails and the
//! events wait in the outbox.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::EventPublisher;
use crate::error::{Error, ErrorKind, Result};
use crate::model::events::CloudEvent;

/// `events.nats`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    pub url: String,
    /// Authentication, at most one of: a token, a user and password, an NKey seed, a creds file.
    pub token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub nkey_seed: Option<String>,
    pub creds_file: Option<PathBuf>,
    /// Require TLS; `tls_ca_file` adds a root certificate (PEM) to trust.
    pub tls_required: bool,
    pub tls_ca_file: Option<PathBuf>,
    /// Subjects are `<subject_prefix>.<warehouse>.<type>`.
    pub subject_prefix: String,
    /// The JetStream stream, created (over `<subject_prefix>.>`) when missing.
    pub stream: String,
    /// How long the stream keeps messages, in hours (0: forever).
    pub max_age_hours: u64,
    /// JetStream's duplicate window (messages with an id seen within it are dropped), seconds.
    pub duplicate_window_secs: u64,
    /// How long a connection attempt and a publish acknowledgement may take, milliseconds.
    pub timeout_ms: u64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            token: None,
            user: None,
            password: None,
            nkey_seed: None,
            creds_file: None,
            tls_required: false,
            tls_ca_file: None,
            subject_prefix: "floe".into(),
            stream: "FLOE_EVENTS".into(),
            max_age_hours: 168,
            duplicate_window_secs: 300,
            timeout_ms: 5_000,
        }
    }
}

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsConfig")
            .field("url", &self.url)
            .field("token", &hidden(&self.token))
            .field("user", &self.user)
            .field("password", &hidden(&self.password))
            .field("nkey_seed", &hidden(&self.nkey_seed))
            .field("creds_file", &self.creds_file)
            .field("tls_required", &self.tls_required)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("subject_prefix", &self.subject_prefix)
            .field("stream", &self.stream)
            .field("max_age_hours", &self.max_age_hours)
            .field("duplicate_window_secs", &self.duplicate_window_secs)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl NatsConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        let methods = [
            self.token.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.nkey_seed.is_some(),
            self.creds_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(
                "events.nats: give at most one of token, user/password, nkey_seed, creds_file"
                    .into(),
            );
        }
        if self.user.is_some() != self.password.is_some() {
            return Err("events.nats: user and password go together".into());
        }
        let token_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !self.subject_prefix.split('.').all(token_ok) {
            return Err(
                "events.nats.subject_prefix: dot-separated letters, digits, - and _".into(),
            );
        }
        if !token_ok(&self.stream) {
            return Err("events.nats.stream: letters, digits, - and _".into());
        }
        if self.timeout_ms == 0 || self.duplicate_window_secs == 0 {
            return Err(
                "events.nats: timeout_ms and duplicate_window_secs must be positive".into(),
            );
        }
        Ok(())
    }
}

/// The subject an event goes to.
pub fn subject_of(prefix: &str, event: &CloudEvent) -> String {
    let warehouse = event
        .warehouse
        .map(|w| w.to_string())
        .unwrap_or_else(|| "global".into());
    format!("{prefix}.{warehouse}.{}", event.kind)
}

pub struct NatsPublisher {
    config: NatsConfig,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// Set once the stream is known to exist.
    stream_ready: OnceCell<()>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unavailable, format!("NATS: {what} failed: {e}"))
}

impl NatsPublisher {
    /// Connects in the background (a NATS that is down at startup does not stop Floe: events
    /// wait in the outbox until it is up).
    pub async fn start(config: &NatsConfig) -> Result<NatsPublisher> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut options = async_nats::ConnectOptions::new()
            .name("floe")
            .connection_timeout(timeout)
            .retry_on_initial_connect()
            .require_tls(config.tls_required);
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(seed) = &config.nkey_seed {
            options = options.nkey(seed.clone());
        }
        if let Some(path) = &config.creds_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| unavailable("reading the creds file", e))?;
        }
        if let Some(ca) = &config.tls_ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        let client = options
            .connect(config.url.as_str())
            .await
            .map_err(|e| unavailable("connecting", e))?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(timeout);
        Ok(NatsPublisher {
            config: config.clone(),
            client,
            jetstream,
            stream_ready: OnceCell::new(),
        })
    }

    async fn ensure_stream(&self) -> Result<()> {
        self.stream_ready
            .get_or_try_init(|| async {
                let max_age = Duration::from_secs(self.config.max_age_hours * 3600);
                self.jetstream
                    .get_or_create_stream(jetstream::stream::Config {
                        name: self.config.stream.clone(),
                        subjects: vec![format!("{}.>", self.config.subject_prefix)],
                        max_age,
                        duplicate_window: Duration::from_secs(self.config.duplicate_window_secs),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| unavailable("creating the stream", e))?;
                Ok::<(), Error>(())
            })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl EventPublisher for NatsPublisher {
    async fn publish(&self, events: &[CloudEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.ensure_stream().await?;
        // Send them all, then wait for every acknowledgement: one round trip per batch.
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let ack = self
                .jetstream
                .send_publish(
                    subject_of(&self.config.subject_prefix, event),
                    PublishMessage::build()
                        .payload(event.body.clone().into())
                        .message_id(event.id.to_string()),
                )
                .await
                .map_err(|e| unavailable("publishing", e))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await
                .map_err(|e| unavailable("waiting for JetStream's acknowledgement", e))?;
        }
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(Error::new(
                ErrorKind::Unavailable,
                format!("NATS is not connected ({state})"),
            )),
        }
    }

    fn name(&self) -> &'static str {
        "nats"
    }
}
