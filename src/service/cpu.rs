//! Long stretches of CPU work (parsing or writing the metadata of a table with thousands of
//! snapshots, reading thousands of manifests) on the async workers would hold up every request
//! queued behind them: on a small machine the server then sheds those requests (`max_queue_ms`)
//! while one background task computes. [`bound`] runs such a stretch with the worker's other
//! tasks handed to another thread (`tokio::task::block_in_place`), so they go on meanwhile.

/// Metadata documents at least this large are parsed and written through [`bound`]; smaller ones
/// take well under a millisecond, less than handing the worker's tasks over would.
pub(crate) const LARGE_METADATA_BYTES: usize = 256 * 1024;

/// Runs `f`, a stretch of CPU work, without holding up the other tasks of this worker: on a
/// multi-threaded runtime they move to another thread while `f` runs; elsewhere (a
/// current-thread runtime, as in unit tests, or outside any runtime) `f` simply runs.
pub(crate) fn bound<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// [`bound`] when `large`, else `f` inline.
pub(crate) fn bound_if<R>(large: bool, f: impl FnOnce() -> R) -> R {
    if large { bound(f) } else { f() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_outside_a_runtime() {
        assert_eq!(bound(|| 2 + 2), 4);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_inline_on_a_current_thread_runtime() {
        assert_eq!(bound(|| "inline"), "inline");
    }

    /// On a multi-threaded runtime, the worker's other tasks go on while `f` holds its thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_tasks_go_on_meanwhile() {
        // The test's body runs outside the workers: this runs on one.
        let on_a_worker = tokio::spawn(async {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            // Spawned from the worker, it waits in that worker's own slot, which no other worker
            // takes: without the hand-over it could not run until `f` returns, and `f` waits
            // for it.
            let other = tokio::spawn(async move { tx.send(()).unwrap() });
            let got = bound(|| rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok());
            other.await.unwrap();
            got
        });
        assert!(
            on_a_worker.await.unwrap(),
            "the other task did not run while the CPU stretch held the worker"
        );
    }
}
