//! `Idempotency-Key` on the catalog's mutations: a retry with the key gets the first answer and
//! changes nothing more; a duplicate sent while the first runs waits for it; a key reused for
//! another request is refused; final 4xx answers are kept too; keys expire after the advertised
//! lifetime; on PostgreSQL, two instances share the keys.

use std::sync::Arc;
use std::time::Duration;

use floe::service::BeforeSwap;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, TestDb, expect_error};

on_both_backends!(
    retried_mutations_apply_once,
    concurrent_duplicates_wait_for_the_first,
    keys_expire_and_can_be_turned_off,
);

fn key() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Sends `body` (`None`: no body) with the key.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> (u16, bool, String) {
    let mut request = app
        .client
        .request(method, app.url(path))
        .header("Idempotency-Key", key);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let replayed = response.headers().contains_key("idempotency-replayed");
    (
        response.status().as_u16(),
        replayed,
        response.text().await.unwrap(),
    )
}

async fn setup(app: &TestApp) -> String {
    app.create_local_warehouse("lake").await;
    format!("/catalog/v1/{}", app.prefix("lake").await)
}

fn table_body(name: &str) -> Value {
    json!({"name": name, "schema": {"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": false, "type": "long"}]}})
}

/// How many metadata versions the table has had (its log and the current one).
async fn versions(app: &TestApp, table: &str) -> usize {
    let loaded: Value = app.get(table).await.json().await.unwrap();
    loaded["metadata"]["metadata-log"]
        .as_array()
        .map_or(0, Vec::len)
        + 1
}

async fn retried_mutations_apply_once(backend: Backend) {
    use reqwest::Method;
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let config: Value = app
        .get("/catalog/v1/config?warehouse=lake")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(config["idempotency-key-lifetime"], "PT1800S");

    // Create a namespace: the retry gets the same answer; without a key it is 409.
    let (k, ns) = (key(), json!({"namespace": ["a"]}));
    let first = send(
        &app,
        Method::POST,
        &format!("{base}/namespaces"),
        &k,
        Some(&ns),
    )
    .await;
    assert_eq!((first.0, first.1), (200, false), "{}", first.2);
    let again = send(
        &app,
        Method::POST,
        &format!("{base}/namespaces"),
        &k,
        Some(&ns),
    )
    .await;
    assert_eq!((again.0, again.1, &again.2), (200, true, &first.2));
    expect_error(app.post(&format!("{base}/namespaces"), &ns).await, 409).await;

    // Create a table, twice with one key: one table, the same answer.
    let k = key();
    let tables = format!("{base}/namespaces/a/tables");
    let first = send(&app, Method::POST, &tables, &k, Some(&table_body("t"))).await;
    assert_eq!(first.0, 200, "{}", first.2);
    let again = send(&app, Method::POST, &tables, &k, Some(&table_body("t"))).await;
    assert_eq!((again.0, again.1, &again.2), (200, true, &first.2));
    let table = format!("{tables}/t");
    let loaded: Value = app.get(&table).await.json().await.unwrap();
    let created: Value = serde_json::from_str(&first.2).unwrap();
    assert_eq!(loaded["metadata-location"], created["metadata-location"]);

    // A commit without requirements would apply twice if run twice: it applies once.
    let before = versions(&app, &table).await;
    let (k, change) = (
        key(),
        json!({"updates": [{"action": "set-properties", "updates": {"n": "1"}}]}),
    );
    let first = send(&app, Method::POST, &table, &k, Some(&change)).await;
    assert_eq!(first.0, 200, "{}", first.2);
    for _ in 0..3 {
        let again = send(&app, Method::POST, &table, &k, Some(&change)).await;
        assert_eq!((again.0, again.1, &again.2), (200, true, &first.2));
    }
    assert_eq!(versions(&app, &table).await, before + 1);
    // (Sent again without the key, it does apply again.)
    assert_eq!(app.post(&table, &change).await.status(), 200);
    assert_eq!(versions(&app, &table).await, before + 2);
    let before = before + 1;

    // A multi-table transaction: once.
    let (k, transaction) = (
        key(),
        json!({"table-changes": [{"identifier": {"namespace": ["a"], "name": "t"},
            "requirements": [], "updates": [{"action": "set-properties", "updates": {"m": "1"}}]}]}),
    );
    let commit = format!("{base}/transactions/commit");
    let first = send(&app, Method::POST, &commit, &k, Some(&transaction)).await;
    assert_eq!(first.0, 204, "{}", first.2);
    let again = send(&app, Method::POST, &commit, &k, Some(&transaction)).await;
    assert_eq!((again.0, again.1), (204, true));
    assert_eq!(versions(&app, &table).await, before + 2);

    // The same key for another request is refused, and changes nothing.
    let other = json!({"updates": [{"action": "set-properties", "updates": {"n": "2"}}]});
    let reused = send(&app, Method::POST, &table, &k, Some(&other)).await;
    assert_eq!(reused.0, 422, "{}", reused.2);
    let error: Value = serde_json::from_str(&reused.2).unwrap();
    assert_eq!(error["error"]["code"], 422);
    assert_eq!(versions(&app, &table).await, before + 2);

    // Drop: the retry answers 204 again, not 404.
    let k = key();
    let first = send(&app, Method::DELETE, &table, &k, None).await;
    assert_eq!(first.0, 204, "{}", first.2);
    let again = send(&app, Method::DELETE, &table, &k, None).await;
    assert_eq!((again.0, again.1), (204, true));
    expect_error(app.delete(&table).await, 404).await;

    // A final 4xx is kept: the retry answers 409 even once the conflict is gone.
    let k = key();
    let first = send(
        &app,
        Method::POST,
        &format!("{base}/namespaces"),
        &k,
        Some(&ns),
    )
    .await;
    assert_eq!(first.0, 409, "{}", first.2);
    assert_eq!(
        app.delete(&format!("{base}/namespaces/a")).await.status(),
        204
    );
    let again = send(
        &app,
        Method::POST,
        &format!("{base}/namespaces"),
        &k,
        Some(&ns),
    )
    .await;
    assert_eq!((again.0, again.1, &again.2), (409, true, &first.2));

    // Keys that are not UUIDs are refused; reads ignore the header.
    for bad in [
        "abc",
        "017F22E2-79B0-7CC3-98C4-DC0C0C07398",
        "not-a-uuid-but-thirty-six-characters",
    ] {
        let refused = send(
            &app,
            Method::POST,
            &format!("{base}/namespaces"),
            bad,
            Some(&ns),
        )
        .await;
        assert_eq!(refused.0, 400, "{bad}: {}", refused.2);
    }
    let read = send(
        &app,
        Method::GET,
        &format!("{base}/namespaces"),
        "abc",
        None,
    )
    .await;
    assert_eq!(read.0, 200);
}

fn slow_swaps(delay: Duration) -> Option<BeforeSwap> {
    Some(Arc::new(move |_tables| {
        Box::pin(async move { tokio::time::sleep(delay).await })
    }))
}

/// Eight copies of one commit at once (the first held before its swap): one applies, all get
/// its answer.
async fn concurrent_duplicates_wait_for_the_first(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let base = setup(&app).await;
    assert_eq!(
        app.post(&format!("{base}/namespaces"), &json!({"namespace": ["a"]}))
            .await
            .status(),
        200
    );
    let tables = format!("{base}/namespaces/a/tables");
    assert_eq!(app.post(&tables, &table_body("t")).await.status(), 200);
    let table = format!("{tables}/t");
    let before = versions(&app, &table).await;
    app.services()
        .set_before_swap(slow_swaps(Duration::from_millis(300)));
    let (k, change) = (
        key(),
        json!({"updates": [{"action": "set-properties", "updates": {"n": "1"}}]}),
    );
    let runs = (0..8).map(|_| {
        let (app, table, k, change) = (app.clone(), table.clone(), k.clone(), change.clone());
        tokio::spawn(
            async move { send(&app, reqwest::Method::POST, &table, &k, Some(&change)).await },
        )
    });
    let answers: Vec<(u16, bool, String)> = futures::future::join_all(runs)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    app.services().set_before_swap(None);
    assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
    assert!(answers.iter().all(|a| a.2 == answers[0].2));
    assert_eq!(
        answers.iter().filter(|a| !a.1).count(),
        1,
        "one ran, seven waited"
    );
    assert_eq!(versions(&app, &table).await, before + 1);
}

async fn keys_expire_and_can_be_turned_off(backend: Backend) {
    use reqwest::Method;
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(db.clone(), |c| {
        c.bootstrap.auto = Some(true);
        c.server.idempotency_key_lifetime_secs = 1;
    })
    .await;
    let base = format!("/catalog/v1/{}", app.prefix("demo").await);
    let config: Value = app
        .get("/catalog/v1/config?warehouse=demo")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(config["idempotency-key-lifetime"], "PT1S");
    let (k, ns) = (key(), json!({"namespace": ["a"]}));
    let path = format!("{base}/namespaces");
    assert_eq!(send(&app, Method::POST, &path, &k, Some(&ns)).await.0, 200);
    assert!(send(&app, Method::POST, &path, &k, Some(&ns)).await.1);
    // Past the lifetime (and its grace), the key is forgotten: the request runs again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = send(&app, Method::POST, &path, &k, Some(&ns)).await;
    assert_eq!((again.0, again.1), (409, false), "{}", again.2);
    app.shutdown().await.unwrap();

    // Off: not advertised, and the header changes nothing.
    let app = TestApp::spawn_on(db, |c| {
        c.bootstrap.auto = Some(true);
        c.server.idempotency_key_lifetime_secs = 0;
    })
    .await;
    let config: Value = app
        .get("/catalog/v1/config?warehouse=demo")
        .await
        .json()
        .await
        .unwrap();
    assert!(config.get("idempotency-key-lifetime").is_none(), "{config}");
    let k = key();
    let ns = json!({"namespace": ["b"]});
    assert_eq!(send(&app, Method::POST, &path, &k, Some(&ns)).await.0, 200);
    assert_eq!(send(&app, Method::POST, &path, &k, Some(&ns)).await.0, 409);
}

/// Two instances on one PostgreSQL database: a retry sent to the other instance gets the first
/// answer, and duplicates sent to both at once apply once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_keys() {
    use reqwest::Method;
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let a = Arc::new(TestApp::spawn_on(db.clone(), |c| c.bootstrap.auto = Some(true)).await);
    let b = Arc::new(TestApp::spawn_on(db.clone(), |c| c.bootstrap.auto = Some(true)).await);
    let base = format!("/catalog/v1/{}", a.prefix("demo").await);
    let (k, ns) = (key(), json!({"namespace": ["a"]}));
    let path = format!("{base}/namespaces");
    let first = send(&a, Method::POST, &path, &k, Some(&ns)).await;
    assert_eq!(first.0, 200);
    let again = send(&b, Method::POST, &path, &k, Some(&ns)).await;
    assert_eq!((again.0, again.1, &again.2), (200, true, &first.2));

    let tables = format!("{base}/namespaces/a/tables");
    assert_eq!(a.post(&tables, &table_body("t")).await.status(), 200);
    let table = format!("{tables}/t");
    let before = versions(&a, &table).await;
    for app in [&a, &b] {
        app.services()
            .set_before_swap(slow_swaps(Duration::from_millis(300)));
    }
    let (k, change) = (
        key(),
        json!({"updates": [{"action": "set-properties", "updates": {"n": "1"}}]}),
    );
    let runs = (0..6).map(|i| {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (table, k, change) = (table.clone(), k.clone(), change.clone());
        tokio::spawn(async move { send(&app, Method::POST, &table, &k, Some(&change)).await })
    });
    let answers: Vec<(u16, bool, String)> = futures::future::join_all(runs)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    for app in [&a, &b] {
        app.services().set_before_swap(None);
    }
    assert!(
        answers.iter().all(|x| x.0 == 200 && x.2 == answers[0].2),
        "{answers:?}"
    );
    assert_eq!(answers.iter().filter(|x| !x.1).count(), 1);
    assert_eq!(versions(&a, &table).await, before + 1);
}
