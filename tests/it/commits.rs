//! What a commit does when it loses a race or dies half-way, forced rather than hoped for: a seam
//! between writing the metadata files and swapping the pointers (`Services::set_before_swap`)
//! lets another writer win the swap, or stands for a crash at that exact point, and the server's
//! own counters (`Services::commit_counts`) show the re-applies and the 409s that happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use floe::service::{BeforeSwap, CommitCounts};
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, TestDb, expect_error};

on_both_backends!(
    a_crash_between_metadata_and_swap_leaves_the_previous_version,
    a_stuck_commit_times_out_with_503_and_the_next_one_lands,
);

fn hook<F, Fut>(f: F) -> Option<BeforeSwap>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Some(Arc::new(move |_tables| Box::pin(f())))
}

/// Two instances on one PostgreSQL database, a warehouse `demo` with table `ns.t`; returns the
/// instances and the table's path.
async fn two_instances() -> (Arc<TestApp>, Arc<TestApp>, String) {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let a = Arc::new(TestApp::spawn_on(db.clone(), |c| c.bootstrap.auto = Some(true)).await);
    let b = Arc::new(TestApp::spawn_on(db.clone(), |c| c.bootstrap.auto = Some(true)).await);
    let base = format!("/catalog/v1/{}", a.prefix("demo").await);
    let table = create_table(&a, &base).await;
    (a, b, table)
}

async fn create_table(app: &TestApp, base: &str) -> String {
    let response = app
        .post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
        .await;
    assert_eq!(response.status(), 200);
    let created = app
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "t", "schema": {"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": false, "type": "long"}]}}),
        )
        .await;
    assert_eq!(created.status(), 200);
    format!("{base}/namespaces/ns/tables/t")
}

fn set_property(key: &str) -> Value {
    json!({"updates": [{"action": "set-properties", "updates": {key: "x"}}]})
}

async fn properties(app: &TestApp, table: &str) -> serde_json::Map<String, Value> {
    let loaded: Value = app.get(table).await.json().await.unwrap();
    loaded["metadata"]["properties"]
        .as_object()
        .unwrap()
        .clone()
}

fn sum(a: CommitCounts, b: CommitCounts) -> CommitCounts {
    CommitCounts {
        landed: a.landed + b.landed,
        retried: a.retried + b.retried,
        conflicted: a.conflicted + b.conflicted,
    }
}

/// Both instances stage a commit against the same version and swap only once both are ready:
/// exactly one swap wins, the other is lost and re-applied on the server; both clients get 200
/// and both changes are in the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_swap_is_reapplied_on_the_server() {
    let (a, b, table) = two_instances().await;
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    for app in [&a, &b] {
        let (barrier, first) = (barrier.clone(), Arc::new(AtomicUsize::new(0)));
        app.services().set_before_swap(hook(move || {
            let (barrier, first) = (barrier.clone(), first.clone());
            async move {
                // Only each instance's first attempt waits; the re-apply goes straight through.
                if first.fetch_add(1, Ordering::SeqCst) == 0 {
                    barrier.wait().await;
                }
            }
        }));
    }
    let (before_a, before_b) = (a.services().commit_counts(), b.services().commit_counts());
    let (from_a, from_b) = (set_property("from-a"), set_property("from-b"));
    let (ra, rb) = tokio::join!(a.post(&table, &from_a), b.post(&table, &from_b));
    assert_eq!(ra.status(), 200, "{}", ra.text().await.unwrap());
    assert_eq!(rb.status(), 200, "{}", rb.text().await.unwrap());
    let after = sum(a.services().commit_counts(), b.services().commit_counts());
    let before = sum(before_a, before_b);
    assert_eq!(after.landed - before.landed, 2);
    assert!(
        after.retried > before.retried,
        "one swap was lost and re-applied: {before:?} -> {after:?}"
    );
    assert_eq!(after.conflicted, before.conflicted);
    for app in [&a, &b] {
        app.services().set_before_swap(None);
    }
    let props = properties(&a, &table).await;
    assert!(
        props.contains_key("from-a") && props.contains_key("from-b"),
        "{props:?}"
    );
}

/// Another writer wins every swap: the commit keeps re-applying itself for the retry budget
/// (10 seconds) and then answers 409, having changed nothing; every commit of the winner landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_always_loses_answers_409_after_its_budget() {
    let (a, b, table) = two_instances().await;
    let won = Arc::new(AtomicUsize::new(0));
    {
        let (client, url, won) = (b.client.clone(), b.url(&table), won.clone());
        a.services().set_before_swap(hook(move || {
            let (client, url, won) = (client.clone(), url.clone(), won.clone());
            async move {
                let n = won.fetch_add(1, Ordering::SeqCst);
                let response = client
                    .post(&url)
                    .json(&set_property(&format!("b-{n}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
        }));
    }
    let before = a.services().commit_counts();
    let metrics_before = [commit_metric("retried"), commit_metric("conflicted")];
    let started = Instant::now();
    let response = a.post(&table, &set_property("from-a")).await;
    let took = started.elapsed();
    let (kind, message) = expect_error(response, 409).await;
    assert_eq!(kind, "CommitFailedException", "{message}");
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(30),
        "gave up after {took:?}"
    );
    let after = a.services().commit_counts();
    assert_eq!(after.conflicted - before.conflicted, 1);
    assert_eq!(after.landed, before.landed);
    let tries = won.load(Ordering::SeqCst);
    assert!(tries >= 2, "only {tries} attempts in the budget");
    assert_eq!(after.retried - before.retried, tries as u64 - 1);
    // The metrics count the same (process-wide: tests running beside this one only add).
    assert!(commit_metric("retried") - metrics_before[0] >= tries as u64 - 1);
    assert!(commit_metric("conflicted") - metrics_before[1] >= 1);
    a.services().set_before_swap(None);
    let props = properties(&b, &table).await;
    assert!(
        !props.contains_key("from-a"),
        "the losing commit changed nothing"
    );
    for n in 0..tries {
        assert!(props.contains_key(&format!("b-{n}")), "b-{n} was lost");
    }
}

/// The process stops (here: the handler panics) after the new metadata file is written and
/// before the pointer swap: the table stays at its previous version, the orphaned file is
/// referenced by nothing, and the next commit lands.
async fn a_crash_between_metadata_and_swap_leaves_the_previous_version(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    let table = create_table(&app, &base).await;
    let before: Value = app.get(&table).await.json().await.unwrap();
    let folder = std::path::PathBuf::from(
        before["metadata"]["location"]
            .as_str()
            .unwrap()
            .strip_prefix("file://")
            .unwrap(),
    )
    .join("metadata");
    let files = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".metadata.json"))
            .collect();
        names.sort();
        names
    };
    let files_before = files();
    app.services().set_before_swap(hook(|| async {
        panic!("the process stops between writing metadata and the swap")
    }));
    let response = app.post(&table, &set_property("lost")).await;
    assert_eq!(response.status(), 500);
    app.services().set_before_swap(None);

    let written: Vec<String> = files()
        .into_iter()
        .filter(|f| !files_before.contains(f))
        .collect();
    assert_eq!(written.len(), 1, "the new metadata file was written");
    let after: Value = app.get(&table).await.json().await.unwrap();
    assert_eq!(after["metadata-location"], before["metadata-location"]);
    assert!(after["metadata"]["properties"]["lost"].is_null());
    let committed = app.post(&table, &set_property("next")).await;
    assert_eq!(committed.status(), 200);
    let next: Value = committed.json().await.unwrap();
    assert_ne!(next["metadata-location"], before["metadata-location"]);
    assert!(
        !next["metadata-location"]
            .as_str()
            .unwrap()
            .ends_with(&written[0]),
        "the orphaned file is not reused"
    );
    let props = next["metadata"]["properties"].as_object().unwrap();
    assert!(props.contains_key("next") && !props.contains_key("lost"));
}

/// A commit that hangs (here: held between its metadata and its swap) past the request time
/// answers 503 with `Retry-After` when the time is up, instead of holding the table: the next
/// commit to the same table, queued behind it, lands; the stuck one changed nothing.
async fn a_stuck_commit_times_out_with_503_and_the_next_one_lands(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(db, |c| {
        c.bootstrap.auto = Some(true);
        c.server.limits.request_timeout_ms = 2_000;
    })
    .await;
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    let table = create_table(&app, &base).await;
    let calls = Arc::new(AtomicUsize::new(0));
    {
        let calls = calls.clone();
        app.services().set_before_swap(hook(move || {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    std::future::pending::<()>().await;
                }
            }
        }));
    }
    let (stuck, next) = (set_property("stuck"), set_property("next"));
    let started = Instant::now();
    let (stuck, next) = tokio::join!(app.post(&table, &stuck), async {
        // Queued behind the stuck commit (same table, same process), halfway through its time:
        // it gets the table once the stuck one is given up on, with a second of its own left.
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        app.post(&table, &next).await
    });
    assert_eq!(stuck.status(), 503);
    assert_eq!(stuck.headers()["retry-after"], "1");
    let (kind, message) = expect_error(stuck, 503).await;
    assert_eq!(kind, "ServiceUnavailableException");
    assert!(message.contains("took too long"), "{message}");
    assert_eq!(next.status(), 200, "{}", next.text().await.unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    app.services().set_before_swap(None);
    let props = properties(&app, &table).await;
    assert!(
        props.contains_key("next") && !props.contains_key("stuck"),
        "{props:?}"
    );
}

/// `floe_table_commits_total{outcome}` as `/metrics` renders it (0 before the first).
fn commit_metric(outcome: &str) -> u64 {
    let wanted = format!("floe_table_commits_total{{outcome=\"{outcome}\"}} ");
    floe::telemetry::render()
        .lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .map_or(0, |n| n.trim().parse().expect("a counter"))
}
