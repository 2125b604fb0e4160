//! A request's wait before the server read it (stamped by `listen`, read by each listener's
//! shedding).

use std::time::Duration;

/// How long a request waited in the kernel before the server read it: the time since data last
/// arrived on its connection, read when the request's headers have been parsed (a request read
/// at once has waited about 0). A lower bound when more bytes came after the headers (a body,
/// other HTTP/2 streams), so it never overstates a wait. Absent when the kernel does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued(pub Duration);

impl Queued {
    /// Whether a request with these extensions waited longer than `max`.
    pub fn longer_than(extensions: &http::Extensions, max: Duration) -> Option<Duration> {
        extensions
            .get::<Queued>()
            .map(|q| q.0)
            .filter(|waited| *waited > max)
    }
}
