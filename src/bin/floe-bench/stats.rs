//! What was measured: per operation an HDR histogram of latencies (microseconds), the number of
//! requests, errors by HTTP status, and the span from the first request's start to the last one's
//! end (requests per second are taken over that span). Renders the table for people and the JSON
//! for tools. Knows nothing of HTTP clients or workloads.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// How one request ended.
pub enum Outcome {
    /// The server answered with this status (every answer but 429 and 503 lands in the
    /// histogram).
    Status(u16),
    /// No answer: a connection or body error (`transport`) or the client's timeout (`timeout`).
    Failed(&'static str),
}

/// Counters shared by every worker of a run.
pub struct Stats {
    started: Instant,
    ops: Mutex<Vec<OpStats>>,
    requests: AtomicU64,
    errors: AtomicU64,
}

struct OpStats {
    name: &'static str,
    latency_us: Histogram<u64>,
    requests: u64,
    errors: BTreeMap<String, u64>,
    first_start: Instant,
    last_end: Instant,
    /// Successful answers by the second of the run they ended in.
    ok_by_second: Vec<u64>,
}

/// Seconds per window of [`OpReport::windows`].
pub const WINDOW_SECONDS: u64 = 10;

/// The figures of one operation.
pub struct OpReport {
    pub name: &'static str,
    pub requests: u64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: BTreeMap<String, u64>,
    /// Successful answers per second in each window of `WINDOW_SECONDS` (the last may be
    /// shorter), so a rate that declines over a run shows.
    pub windows: Vec<f64>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            started: Instant::now(),
            ops: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records one request of `op` that ran from `start` to `end`. Statuses outside 2xx count as
    /// errors under their number; 429 and 503 answers are not in the latency histogram.
    pub fn record(&self, op: &'static str, start: Instant, end: Instant, outcome: Outcome) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let error = match &outcome {
            Outcome::Status(status) if (200..300).contains(status) => None,
            Outcome::Status(status) => Some(status.to_string()),
            Outcome::Failed(kind) => Some((*kind).to_string()),
        };
        let mut ops = self.ops.lock().expect("stats lock");
        let stats = op_stats(&mut ops, op, start);
        stats.requests += 1;
        stats.first_start = stats.first_start.min(start);
        stats.last_end = stats.last_end.max(end);
        // Latency is of what the server took on: 429 and 503 are load shed at the door, and
        // only counted (under their status), so overload shows as refusals, not as fast answers.
        if let Outcome::Status(status) = outcome
            && status != 429
            && status != 503
        {
            let micros = u64::try_from(end.duration_since(start).as_micros()).unwrap_or(u64::MAX);
            stats.latency_us.saturating_record(micros.max(1));
        }
        if let Some(error) = error {
            self.errors.fetch_add(1, Ordering::Relaxed);
            *stats.errors.entry(error).or_default() += 1;
        } else {
            let second = end.saturating_duration_since(self.started).as_secs() as usize;
            if stats.ok_by_second.len() <= second {
                stats.ok_by_second.resize(second + 1, 0);
            }
            stats.ok_by_second[second] += 1;
        }
    }

    /// Counts an error of `op` that is not a status: an answer with the wrong content
    /// (`mismatch`) or a body that did not parse (`bad-body`).
    pub fn error(&self, op: &'static str, kind: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut ops = self.ops.lock().expect("stats lock");
        *op_stats(&mut ops, op, Instant::now())
            .errors
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// Requests and errors so far, for progress lines.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    /// The figures of every operation, in the order they first ran.
    pub fn report(&self) -> Vec<OpReport> {
        let ops = self.ops.lock().expect("stats lock");
        ops.iter()
            .map(|op| {
                let span = op.last_end.saturating_duration_since(op.first_start);
                let ms = |us: u64| round(us as f64 / 1000.0, 3);
                let answered = !op.latency_us.is_empty();
                let quantile = |q: f64| {
                    if answered {
                        ms(op.latency_us.value_at_quantile(q))
                    } else {
                        0.0
                    }
                };
                OpReport {
                    name: op.name,
                    requests: op.requests,
                    requests_per_second: if span.is_zero() {
                        0.0
                    } else {
                        round(op.requests as f64 / span.as_secs_f64(), 2)
                    },
                    p50_ms: quantile(0.50),
                    p95_ms: quantile(0.95),
                    p99_ms: quantile(0.99),
                    max_ms: if answered {
                        ms(op.latency_us.max())
                    } else {
                        0.0
                    },
                    errors: op.errors.clone(),
                    windows: op
                        .ok_by_second
                        .chunks(WINDOW_SECONDS as usize)
                        .map(|w| round(w.iter().sum::<u64>() as f64 / w.len() as f64, 1))
                        .collect(),
                }
            })
            .collect()
    }
}

fn op_stats<'a>(ops: &'a mut Vec<OpStats>, op: &'static str, start: Instant) -> &'a mut OpStats {
    let index = match ops.iter().position(|o| o.name == op) {
        Some(index) => index,
        None => {
            ops.push(OpStats {
                name: op,
                // 1 µs to one hour, three significant figures.
                latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .expect("valid histogram bounds"),
                requests: 0,
                errors: BTreeMap::new(),
                first_start: start,
                last_end: start,
                ok_by_second: Vec::new(),
            });
            ops.len() - 1
        }
    };
    &mut ops[index]
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// Prints `requests, errors, rate` to stderr every `every` until aborted.
pub fn spawn_progress(
    stats: std::sync::Arc<Stats>,
    every: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if every.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        let mut last = 0;
        loop {
            ticker.tick().await;
            let (requests, errors) = stats.totals();
            eprintln!(
                "[{:>7.1}s] {requests} requests, {errors} errors, {:.1} req/s now",
                stats.elapsed().as_secs_f64(),
                (requests - last) as f64 / every.as_secs_f64(),
            );
            last = requests;
        }
    }))
}

/// The JSON document: `{"workload", "operations": [...], ...extra}`.
pub fn to_json(workload: &str, ops: &[OpReport], extra: &Map<String, Value>) -> Value {
    let operations: Vec<Value> = ops
        .iter()
        .map(|op| {
            json!({
                "name": op.name,
                "requests": op.requests,
                "requests_per_second": op.requests_per_second,
                "p50_ms": op.p50_ms,
                "p95_ms": op.p95_ms,
                "p99_ms": op.p99_ms,
                "max_ms": op.max_ms,
                "errors": op.errors,
                "per_second_by_window": op.windows,
            })
        })
        .collect();
    let mut doc = Map::new();
    doc.insert("workload".into(), Value::from(workload));
    doc.insert("operations".into(), Value::from(operations));
    for (key, value) in extra {
        doc.insert(key.clone(), value.clone());
    }
    Value::Object(doc)
}

/// The table for people.
pub fn to_table(workload: &str, ops: &[OpReport], extra: &Map<String, Value>) -> String {
    let mut out = format!("workload: {workload}\n");
    for (key, value) in extra {
        match value {
            Value::String(text) => out.push_str(&format!("  {key}: {text}\n")),
            value => out.push_str(&format!("  {key}: {value}\n")),
        }
    }
    out.push_str(&format!(
        "\n{:<24} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9}  errors\n",
        "operation", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    ));
    for op in ops {
        let errors = if op.errors.is_empty() {
            "-".to_string()
        } else {
            op.errors
                .iter()
                .map(|(kind, n)| format!("{kind}:{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        out.push_str(&format!(
            "{:<24} {:>9} {:>10.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {errors}\n",
            op.name,
            op.requests,
            op.requests_per_second,
            op.p50_ms,
            op.p95_ms,
            op.p99_ms,
            op.max_ms
        ));
    }
    for op in ops.iter().filter(|op| op.windows.len() > 1) {
        let windows: Vec<String> = op.windows.iter().map(|w| format!("{w:.0}")).collect();
        out.push_str(&format!(
            "{} per second, by {WINDOW_SECONDS} s: {}\n",
            op.name,
            windows.join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_status_and_answers_timed() {
        let stats = Stats::new();
        let t0 = Instant::now();
        for ms in 1..=100u64 {
            let end = t0 + Duration::from_millis(ms);
            stats.record("loadTable", t0, end, Outcome::Status(200));
        }
        stats.record(
            "loadTable",
            t0,
            t0 + Duration::from_millis(5),
            Outcome::Status(404),
        );
        stats.record(
            "loadTable",
            t0,
            t0 + Duration::from_millis(5),
            Outcome::Failed("timeout"),
        );
        let report = stats.report();
        assert_eq!(report.len(), 1);
        let op = &report[0];
        assert_eq!(op.requests, 102);
        assert_eq!(op.errors["404"], 1);
        assert_eq!(op.errors["timeout"], 1);
        assert!((op.p50_ms - 50.0).abs() < 1.0, "{}", op.p50_ms);
        assert!((op.max_ms - 100.0).abs() < 0.2, "{}", op.max_ms);
        let doc = to_json("load-table", &report, &Map::new());
        assert_eq!(doc["operations"][0]["name"], "loadTable");
        assert_eq!(doc["operations"][0]["errors"]["404"], 1);
    }
}
