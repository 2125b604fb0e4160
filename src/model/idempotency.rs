//! Idempotency keys of catalog mutations (the Iceberg REST spec's `Idempotency-Key` header).

/// A request's claim on its key. Times are unix milliseconds.
#[derive(Debug, Clone)]
pub struct KeyClaim {
    /// Who sent it: keys are per caller, so no one is answered another caller's outcome.
    pub principal: String,
    /// The header's UUID, lower case.
    pub key: String,
    /// What the request was (method, path, query, body, digested): a retry carries the same.
    pub fingerprint: String,
    /// The instance and request running it.
    pub owner: String,
    pub now: i64,
    /// Until when the owner is taken to be alive and running it.
    pub lease_until: i64,
    /// When the key and its outcome are forgotten.
    pub expires_at: i64,
}

/// A final answer, kept to be answered again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// The headers that describe the body (content type and encoding, ETag).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Where a key stands when a request claims it.
#[derive(Debug, Clone)]
pub enum KeyState {
    /// The request owns the key now: it runs.
    Claimed,
    /// Another request with the key is running (its fingerprint).
    Running { fingerprint: String },
    /// A request with the key ended: its fingerprint and answer.
    Done {
        fingerprint: String,
        response: StoredResponse,
    },
}
