//! Running work concurrently and knowing when to stop: a fixed number of tokio tasks, either each
//! with its own loop ([`workers`]) or all pulling from one list of jobs ([`each`]), and a
//! [`Bound`] in time or count that every loop asks before each step.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// When a run ends: at a deadline, after a number of steps, or at whichever comes first.
pub struct Bound {
    deadline: Option<Instant>,
    count: Option<u64>,
    taken: AtomicU64,
}

impl Bound {
    /// Neither given: `default_secs` seconds.
    pub fn new(duration_secs: Option<f64>, count: Option<u64>, default_secs: f64) -> Bound {
        let duration = match (duration_secs, count) {
            (None, Some(_)) => None,
            (duration, _) => Some(duration.unwrap_or(default_secs)),
        };
        Bound {
            deadline: duration.map(|secs| Instant::now() + Duration::from_secs_f64(secs.max(0.0))),
            count,
            taken: AtomicU64::new(0),
        }
    }

    /// The number of the next step, or `None` once the run is over.
    pub fn take(&self) -> Option<u64> {
        if self.expired() {
            return None;
        }
        let n = self.taken.fetch_add(1, Ordering::Relaxed);
        match self.count {
            Some(count) if n >= count => None,
            _ => Some(n),
        }
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// For the report: `"10 s"`, `"500 steps"` or both.
    pub fn describe(&self, started: Instant) -> String {
        match (self.deadline, self.count) {
            (Some(deadline), None) => format!("{:.1} s", (deadline - started).as_secs_f64()),
            (None, Some(count)) => format!("{count} steps"),
            (Some(deadline), Some(count)) => format!(
                "{count} steps or {:.1} s",
                (deadline - started).as_secs_f64()
            ),
            (None, None) => "unbounded".to_string(),
        }
    }
}

/// Runs `n` tasks, task `i` running `work(i)`, and returns their results in task order.
pub async fn workers<F, Fut, T>(n: usize, work: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(work(i))).collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        match handle.await {
            Ok(result) => results.push(result),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => panic!("a worker was cancelled: {error}"),
        }
    }
    results
}

/// Runs `job` for every item of `jobs` on `concurrency` tasks; returns when all are done.
pub async fn each<J, F, Fut>(concurrency: usize, jobs: Vec<J>, job: F)
where
    J: Clone + Send + Sync + 'static,
    F: Fn(J) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if jobs.is_empty() {
        return;
    }
    let tasks = concurrency.clamp(1, jobs.len());
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    workers(tasks, |_| {
        let (jobs, next, job) = (jobs.clone(), next.clone(), job.clone());
        async move {
            while let Some(item) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                job(item.clone()).await;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_bounds_the_steps() {
        let bound = Bound::new(None, Some(3), 10.0);
        assert_eq!(
            (0..5).map(|_| bound.take()).collect::<Vec<_>>(),
            vec![Some(0), Some(1), Some(2), None, None]
        );
        assert!(!bound.expired());
    }

    #[test]
    fn a_deadline_bounds_the_time() {
        let bound = Bound::new(Some(0.0), None, 10.0);
        assert_eq!(bound.take(), None);
    }

    #[tokio::test]
    async fn each_runs_every_job_once() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        each(3, (0..20).collect(), move |i: u32| {
            let sink = sink.clone();
            async move { sink.lock().unwrap().push(i) }
        })
        .await;
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
    }
}
