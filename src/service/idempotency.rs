//! Idempotent catalog mutations (the Iceberg REST spec's `Idempotency-Key`): a request with a
//! key runs once per caller; its final answer (2xx, or a 4xx that retrying cannot change) is kept
//! in the catalog database and answered to every retry with the key until the key expires; a
//! duplicate that arrives while the first runs waits for it (on any instance: the key's row is
//! the lock, held under a lease). An answer that is not final (5xx, or 401, 403, 408, 429, which
//! time or a grant may change) is not kept: the key is released and a retry runs again.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::Services;
use crate::error::{Error, Result};
use crate::model::idempotency::{KeyClaim, KeyState, StoredResponse};

/// How keys are kept.
#[derive(Debug, Clone)]
pub struct IdempotencySettings {
    /// What the catalog advertises (`idempotency-key-lifetime`): how long a client may retry
    /// with a key. Keys are kept a grace period longer. Zero turns keys off.
    pub lifetime: Duration,
    /// How long a request holds its key before a duplicate may take it over (its instance is
    /// taken for dead): longer than any request may run.
    pub lease: Duration,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        IdempotencySettings {
            lifetime: Duration::from_secs(30 * 60),
            lease: Duration::from_secs(90),
        }
    }
}

/// Keys are kept past the advertised lifetime, for clocks and queues: a sixth of it, at most
/// five minutes.
fn grace(lifetime: Duration) -> Duration {
    (lifetime / 6).min(Duration::from_secs(5 * 60))
}
/// How often an instance forgets expired keys (at most).
const SWEEP_EVERY_MS: i64 = 60_000;
/// How often a duplicate looks whether the first request ended.
const POLL: Duration = Duration::from_millis(25);

/// What to do with a request that carries a key.
pub enum Begun {
    /// Run it, and end the key with its answer.
    Run(KeyGuard),
    /// Answer this (the first request's answer).
    Replay(StoredResponse),
}

/// A key this request holds.
pub struct KeyGuard {
    principal: String,
    key: String,
    owner: String,
}

/// When an instance last forgot expired keys.
#[derive(Default)]
pub struct Sweeps(AtomicI64);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Whether an answer is final (kept and answered to retries).
pub fn is_final(status: u16) -> bool {
    (200..500).contains(&status) && !matches!(status, 401 | 403 | 408 | 429)
}

/// The key a header carries: a UUID in its 36-character form (the spec asks for a UUIDv7; any
/// version is taken), lower case.
pub fn parse_key(header: &str) -> Result<String> {
    match uuid::Uuid::parse_str(header) {
        Ok(key) if header.len() == 36 => Ok(key.hyphenated().to_string()),
        _ => Err(Error::bad_request(
            "Idempotency-Key must be a UUID in its 36-character form (a UUIDv7)",
        )),
    }
}

impl Services {
    /// The advertised key lifetime; `None` when keys are off.
    pub fn idempotency_lifetime(&self) -> Option<Duration> {
        Some(self.idempotency.lifetime).filter(|d| !d.is_zero())
    }

    /// Claims `key` for a request of `principal` whose method, path, query and body digest to
    /// `fingerprint`: runs it, or answers what the first request with the key answered (waiting
    /// for it while it runs). A key used before for another request is refused (422).
    pub async fn begin_idempotent(
        &self,
        principal: &str,
        key: &str,
        fingerprint: String,
    ) -> Result<Begun> {
        let settings = &self.idempotency;
        self.sweep_keys().await;
        let owner = format!("{}/{}", super::tasks::instance_name(), uuid::Uuid::now_v7());
        let deadline = tokio::time::Instant::now() + settings.lease + POLL;
        loop {
            let now = now_ms();
            let claim = KeyClaim {
                principal: principal.to_string(),
                key: key.to_string(),
                fingerprint: fingerprint.clone(),
                owner: owner.clone(),
                now,
                lease_until: now + ms(settings.lease),
                expires_at: now + ms(settings.lifetime + grace(settings.lifetime)),
            };
            let reused = || {
                Error::unprocessable(
                    "this Idempotency-Key was used for another request; use a new key for a new \
                     operation",
                )
            };
            match self.store.idempotency.claim_key(&claim).await? {
                KeyState::Claimed => {
                    return Ok(Begun::Run(KeyGuard {
                        principal: claim.principal,
                        key: claim.key,
                        owner,
                    }));
                }
                KeyState::Done {
                    fingerprint: first,
                    response,
                } => {
                    if first != fingerprint {
                        return Err(reused());
                    }
                    tracing::info!(idempotency_key = %key, status = response.status, "answered a retry with the first request's answer");
                    return Ok(Begun::Replay(response));
                }
                KeyState::Running { fingerprint: first } => {
                    if first != fingerprint {
                        return Err(reused());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::unavailable(
                            "a request with this Idempotency-Key is still running; retry later",
                            anyhow::anyhow!("idempotency key {key} held past its lease"),
                        ));
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// Ends a key: keeps the answer when it is final, else releases the key (a retry runs
    /// again). Errors are logged: the answer goes to the caller either way.
    pub async fn end_idempotent(&self, guard: KeyGuard, response: StoredResponse) {
        let store = &self.store.idempotency;
        let ended = if is_final(response.status) {
            store
                .finish_key(&guard.principal, &guard.key, &guard.owner, &response)
                .await
                .map(|held| {
                    if !held {
                        tracing::warn!(idempotency_key = %guard.key, "an idempotency key was taken over before its request ended");
                    }
                })
        } else {
            store
                .release_key(&guard.principal, &guard.key, &guard.owner)
                .await
        };
        if let Err(e) = ended {
            tracing::warn!(idempotency_key = %guard.key, error = %e.message, "ending an idempotency key failed");
        }
    }

    /// Forgets expired keys, at most once a minute per instance.
    async fn sweep_keys(&self) {
        let now = now_ms();
        let last = self.idempotency_sweeps.0.load(Ordering::Relaxed);
        if now - last < SWEEP_EVERY_MS
            || self
                .idempotency_sweeps
                .0
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match self.store.idempotency.expire_keys(now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(keys = n, "forgot expired idempotency keys"),
            Err(e) => {
                tracing::warn!(error = %e.message, "forgetting expired idempotency keys failed")
            }
        }
    }
}
