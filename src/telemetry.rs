//! Prometheus metrics: every metric Floe exports is named, described and recorded here, so that
//! names, units and labels are decided in one place and `/metrics` lists each with its help text.
//!
//! The layers record through the functions below (they take only plain values; no layer learns
//! of Prometheus); `api` renders the exposition at `/metrics`. Names follow Prometheus's
//! conventions: a `floe_` prefix, base units (seconds, bytes), `_total` on counters. Labels hold
//! only bounded values (route templates, methods, statuses, operation names): never a project,
//! warehouse, table or user name, so that a scrape says how Floe is doing, not what it holds.
//!
//! The recorder is process-wide (the `metrics` facade's); several servers in one process (tests)
//! share it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const HTTP_REQUESTS: &str = "floe_http_requests_total";
const HTTP_DURATION: &str = "floe_http_request_duration_seconds";
const HTTP_IN_FLIGHT: &str = "floe_http_requests_in_flight";
const COMMITS: &str = "floe_table_commits_total";
const GROUP_COMMIT_SIZE: &str = "floe_group_commit_size";
const GROUP_COMMIT_DURATION: &str = "floe_group_commit_duration_seconds";
const TABLE_CACHE: &str = "floe_table_cache_requests_total";
const POOL_CONNECTIONS: &str = "floe_db_pool_connections";
const POOL_MAX: &str = "floe_db_pool_max_connections";
const POOL_ACQUIRE: &str = "floe_db_pool_acquire_duration_seconds";
const POOL_TIMEOUTS: &str = "floe_db_pool_timeouts_total";
const GATEWAY_REQUESTS: &str = "floe_gateway_requests_total";
const GATEWAY_DURATION: &str = "floe_gateway_request_duration_seconds";
const GATEWAY_RECEIVED: &str = "floe_gateway_received_bytes_total";
const GATEWAY_SENT: &str = "floe_gateway_sent_bytes_total";
const VENDED: &str = "floe_vended_credentials_total";
const SIGNED: &str = "floe_signed_requests_total";
const EVENTS_BACKLOG: &str = "floe_events_backlog";
const BUILD_INFO: &str = "floe_build_info";
const TASKS_RUN: &str = "floe_tasks_run_total";
const TASK_DURATION: &str = "floe_task_duration_seconds";
const TASKS_OPEN: &str = "floe_tasks";

/// Latency buckets, in seconds: from a cached `loadTable` (a few hundred microseconds) to a
/// request at the end of its timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Commits per group: 1 when idle, up to the writer's bound (64) under contention.
const GROUP_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle) and describes
/// every metric.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(GROUP_COMMIT_SIZE.into()),
                    GROUP_SIZE_BUCKETS,
                )
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness's); Floe's handle then
        // renders only what was recorded before it, so say so once.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// The Prometheus text exposition of everything recorded so far.
pub fn render() -> String {
    install().render()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "Catalog and management API requests answered, by route template, method and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to answer a catalog or management API request, by route template, method and status."
    );
    describe_gauge!(
        HTTP_IN_FLIGHT,
        "Catalog and management API requests being answered now."
    );
    describe_counter!(
        COMMITS,
        "Table commit attempts by outcome: landed, retried (lost a compare-and-swap and was \
         re-applied on the server), conflicted (gave up with 409 after retrying) or rejected (a \
         requirement failed: 409 at once)."
    );
    describe_histogram!(
        GROUP_COMMIT_SIZE,
        metrics::Unit::Count,
        "Commits written together in one database transaction by a group-commit writer."
    );
    describe_histogram!(
        GROUP_COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Time a group-commit writer took for one group, from its connection to its answers."
    );
    describe_counter!(
        TABLE_CACHE,
        "Table lookups of loadTable and commits in the in-memory table cache, by result (hit, miss)."
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        "Database connections of a pool, by pool and state (idle, in_use)."
    );
    describe_gauge!(POOL_MAX, "Largest size of a database connection pool.");
    describe_histogram!(
        POOL_ACQUIRE,
        metrics::Unit::Seconds,
        "Time spent waiting for a pooled database connection where Floe takes one for several \
         statements (group commits, table and namespace reads)."
    );
    describe_counter!(
        POOL_TIMEOUTS,
        "Requests that found no database connection within database.acquire_timeout_ms."
    );
    describe_counter!(
        GATEWAY_REQUESTS,
        "S3 gateway requests answered, by S3 operation and status."
    );
    describe_histogram!(
        GATEWAY_DURATION,
        metrics::Unit::Seconds,
        "Time for the S3 gateway to answer a request (the response's head; a body streams after)."
    );
    describe_counter!(
        GATEWAY_RECEIVED,
        metrics::Unit::Bytes,
        "Object bytes the S3 gateway was sent, as the requests declared them, by S3 operation."
    );
    describe_counter!(
        GATEWAY_SENT,
        metrics::Unit::Bytes,
        "Object bytes the S3 gateway answered with, as the responses declared them, by S3 operation."
    );
    describe_counter!(
        VENDED,
        "Storage access minted for engines' table loads, by kind (sts, gateway_key, \
         remote_signing); a table's access is reused from a cache while it is valid."
    );
    describe_counter!(
        SIGNED,
        "S3 requests presented for remote signing, by outcome (signed, refused)."
    );
    describe_gauge!(
        EVENTS_BACKLOG,
        "Change events in the outbox not yet published (read at scrape time)."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version label is Floe's.");
    describe_counter!(
        TASKS_RUN,
        "Task attempts this instance's workers ended, by queue and outcome (succeeded, \
         retried: failed with attempts left, failed: for good, cancelled, lost: taken over)."
    );
    describe_histogram!(
        TASK_DURATION,
        metrics::Unit::Seconds,
        "How long this instance's task attempts ran, by queue."
    );
    describe_gauge!(
        TASKS_OPEN,
        "Tasks of every warehouse scheduled or running, by queue and status (read at scrape \
         time)."
    );
}

/// One answered API request. `route` is the matched route's template (`unmatched` when none).
pub fn http_request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("route", route.to_string()),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
}

/// An API request started (`+1`) or ended (`-1`).
pub fn http_in_flight(delta: f64) {
    gauge!(HTTP_IN_FLIGHT).increment(delta);
}

/// How a commit attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum CommitOutcome {
    Landed,
    Retried,
    Conflicted,
    /// A requirement failed (the client's view was stale): 409 at once, for the client to retry.
    Rejected,
}

pub fn commit(outcome: CommitOutcome) {
    let outcome = match outcome {
        CommitOutcome::Landed => "landed",
        CommitOutcome::Retried => "retried",
        CommitOutcome::Conflicted => "conflicted",
        CommitOutcome::Rejected => "rejected",
    };
    counter!(COMMITS, "outcome" => outcome).increment(1);
}

/// A group-commit writer finished a group of `size` commits.
pub fn group_commit(size: usize, elapsed: Duration) {
    histogram!(GROUP_COMMIT_SIZE).record(size as f64);
    histogram!(GROUP_COMMIT_DURATION).record(elapsed.as_secs_f64());
}

/// A lookup in the table cache.
pub fn table_cache(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    counter!(TABLE_CACHE, "result" => result).increment(1);
}

/// A pool's state, read at scrape time.
#[derive(Debug, Clone)]
pub struct PoolState {
    pub pool: &'static str,
    pub size: u32,
    pub idle: usize,
    pub max: u32,
}

pub fn pool_state(state: &PoolState) {
    let in_use = (state.size as usize).saturating_sub(state.idle);
    gauge!(POOL_CONNECTIONS, "pool" => state.pool, "state" => "idle").set(state.idle as f64);
    gauge!(POOL_CONNECTIONS, "pool" => state.pool, "state" => "in_use").set(in_use as f64);
    gauge!(POOL_MAX, "pool" => state.pool).set(state.max as f64);
}

/// Waited this long for a pooled connection.
pub fn pool_acquired(waited: Duration) {
    histogram!(POOL_ACQUIRE).record(waited.as_secs_f64());
}

/// No connection came within the acquire timeout.
pub fn pool_timed_out() {
    counter!(POOL_TIMEOUTS).increment(1);
}

/// One answered S3 gateway request.
pub fn gateway_request(
    operation: &'static str,
    status: u16,
    received: u64,
    sent: u64,
    elapsed: Duration,
) {
    let status = status.to_string();
    counter!(GATEWAY_REQUESTS, "operation" => operation, "status" => status.clone()).increment(1);
    histogram!(GATEWAY_DURATION, "operation" => operation, "status" => status)
        .record(elapsed.as_secs_f64());
    if received > 0 {
        counter!(GATEWAY_RECEIVED, "operation" => operation).increment(received);
    }
    if sent > 0 {
        counter!(GATEWAY_SENT, "operation" => operation).increment(sent);
    }
}

/// What kind of access an engine was handed for a table's files.
#[derive(Debug, Clone, Copy)]
pub enum Vended {
    /// Short-lived STS credentials of the warehouse's store.
    Sts,
    /// A key of Floe's own S3 gateway.
    GatewayKey,
    /// An endpoint to have requests signed by the catalog.
    RemoteSigning,
}

pub fn vended(kind: Vended) {
    let kind = match kind {
        Vended::Sts => "sts",
        Vended::GatewayKey => "gateway_key",
        Vended::RemoteSigning => "remote_signing",
    };
    counter!(VENDED, "kind" => kind).increment(1);
}

pub fn signed(ok: bool) {
    let outcome = if ok { "signed" } else { "refused" };
    counter!(SIGNED, "outcome" => outcome).increment(1);
}

/// A task attempt ended on this instance.
pub fn task_ran(queue: &str, outcome: &'static str, elapsed: Duration) {
    counter!(TASKS_RUN, "queue" => queue.to_string(), "outcome" => outcome).increment(1);
    histogram!(TASK_DURATION, "queue" => queue.to_string()).record(elapsed.as_secs_f64());
}

/// The scheduled and running tasks, by queue and status; every one of `queues` is set (0 when
/// none), so a drained queue reads 0 rather than its last count.
pub fn open_tasks(queues: &[&'static str], counts: &[(String, String, u64)]) {
    for queue in queues {
        for status in ["scheduled", "running"] {
            let n = counts
                .iter()
                .find(|(q, s, _)| q == queue && s == status)
                .map_or(0, |c| c.2);
            gauge!(TASKS_OPEN, "queue" => *queue, "status" => status).set(n as f64);
        }
    }
}

pub fn events_backlog(pending: u64) {
    gauge!(EVENTS_BACKLOG).set(pending as f64);
}
