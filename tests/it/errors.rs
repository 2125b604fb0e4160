//! Bad input gets the Iceberg error shape, the right status, and writes nothing; server-side
//! failures return only an error id.

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, captured_logs, expect_error};

on_both_backends!(
    malformed_bodies_are_400_and_write_nothing,
    invalid_names_are_400_and_write_nothing,
    oversized_bodies_are_413,
    nul_characters_anywhere_are_400_and_write_nothing,
    unknown_routes_and_methods_use_the_error_model,
);

async fn namespace_count(app: &TestApp, base: &str) -> usize {
    let list: Value = app
        .get(&format!("{base}/namespaces"))
        .await
        .json()
        .await
        .unwrap();
    list["namespaces"].as_array().unwrap().len()
}

async fn malformed_bodies_are_400_and_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    let bodies: &[&[u8]] = &[
        b"",
        b"{",
        b"not json",
        b"{\"namespace\": \"a\"}",
        b"{\"namespace\": [1, 2]}",
        b"{\"namespace\": [\"a\"], \"properties\": {\"k\": 1}}",
        b"{\"namespace\": [\"a\"], \"properties\": []}",
        b"{\"namespace\": [\"a\"], \"unexpected\": true}",
        b"[\"a\"]",
        b"\xff\xfe{}",
    ];
    for body in bodies {
        let response = app
            .post_raw(&format!("{base}/namespaces"), body.to_vec())
            .await;
        let (kind, message) = expect_error(response, 400).await;
        assert_eq!(
            kind,
            "BadRequestException",
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(!message.is_empty());
    }
    let response = app
        .post_raw("/management/v1/projects", b"{\"name\": 5}".to_vec())
        .await;
    expect_error(response, 400).await;
    assert_eq!(namespace_count(&app, &base).await, 0);
}

async fn invalid_names_are_400_and_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    let long = "x".repeat(floe::model::MAX_NAME_BYTES + 1);
    let deep: Vec<String> = (0..=floe::model::MAX_NAMESPACE_LEVELS)
        .map(|i| format!("l{i}"))
        .collect();
    let cases = vec![
        json!([]),
        json!([""]),
        json!(["a\u{0}b"]),
        json!(["/"]),
        json!(["///"]),
        json!([".."]),
        json!(["a\u{1f}b"]),
        json!(["tab\there"]),
        json!([long]),
        json!(deep),
    ];
    for namespace in cases {
        let (kind, _) = expect_error(
            app.post(
                &format!("{base}/namespaces"),
                &json!({"namespace": namespace}),
            )
            .await,
            400,
        )
        .await;
        assert_eq!(kind, "BadRequestException", "{namespace}");
    }
    assert_eq!(namespace_count(&app, &base).await, 0);
    // Path parameters go through the same rules.
    let (kind, _) = expect_error(app.get(&format!("{base}/namespaces/%00")).await, 400).await;
    assert_eq!(kind, "BadRequestException");
    let (kind, _) = expect_error(app.get(&format!("{base}/namespaces/a%1F")).await, 400).await;
    assert_eq!(kind, "BadRequestException");
    let (kind, _) = expect_error(app.get(&format!("{base}/namespaces/%FF%FE")).await, 400).await;
    assert_eq!(kind, "BadRequestException");

    for name in ["", "\u{0}", "/", &long] {
        let (kind, _) = expect_error(
            app.post("/management/v1/projects", &json!({"name": name}))
                .await,
            400,
        )
        .await;
        assert_eq!(kind, "BadRequestException");
    }
    let projects: Value = app
        .get("/management/v1/projects")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(projects["projects"].as_array().unwrap().len(), 1);
}

/// PostgreSQL cannot store NUL in text, so every way a NUL can arrive (a path segment, a query
/// parameter, a page token that decodes to one, a JSON string) must be refused as the client's
/// mistake before it reaches the database, on both backends alike (the API fuzzer found a 500).
async fn nul_characters_anywhere_are_400_and_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wid = app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    // "AA" is the page token of the one-character text "\0".
    for path in [
        "/management/v1/users/idp~a%00b".to_string(),
        "/management/v1/roles/a%00b".to_string(),
        "/management/v1/projects/a%00b".to_string(),
        format!("/management/v1/warehouses/{wid}/branches/a%00b"),
        format!("/management/v1/warehouses/{wid}/commits?ref=a%00b"),
        format!("/management/v1/warehouses/{wid}/diff?from=main&to=a%00b"),
        "/management/v1/users?name=a%00b".to_string(),
        "/management/v1/users?pageToken=AA".to_string(),
        "/management/v1/roles?pageToken=AA".to_string(),
        format!("{base}/namespaces?pageToken=AA"),
        format!("{base}/namespaces?parent=a%00b"),
        format!("{base}/namespaces/ns/tables/a%00b"),
    ] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 400, "{path}");
        let (kind, _) = expect_error(response, 400).await;
        assert_eq!(kind, "BadRequestException", "{path}");
    }
    for (path, body) in [
        ("/management/v1/roles", json!({"name": "r\u{0}"})),
        (
            "/management/v1/roles",
            json!({"name": "r", "description": "a\u{0}b"}),
        ),
        ("/management/v1/projects", json!({"name": "p\u{0}"})),
    ] {
        let response = app.post(path, &body).await;
        let (kind, _) = expect_error(response, 400).await;
        assert_eq!(kind, "BadRequestException", "{path} {body}");
    }
    let roles: Value = app.get("/management/v1/roles").await.json().await.unwrap();
    assert_eq!(roles["roles"].as_array().unwrap().len(), 0, "{roles}");
    // A merge whose message holds NUL: refused, the target unchanged.
    let branch = app
        .post(
            &format!("/management/v1/warehouses/{wid}/branches"),
            &json!({"name": "dev"}),
        )
        .await;
    assert_eq!(branch.status(), 201);
    let on_dev = base.replacen(&wid, &format!("{wid}@dev"), 1);
    let created = app
        .post(
            &format!("{on_dev}/namespaces"),
            &json!({"namespace": ["only-dev"]}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let merge = app
        .post(
            &format!("/management/v1/warehouses/{wid}/merge"),
            &json!({"source": "dev", "target": "main", "message": "a\u{0}b"}),
        )
        .await;
    let (kind, _) = expect_error(merge, 400).await;
    assert_eq!(kind, "BadRequestException");
    assert_eq!(namespace_count(&app, &base).await, 0);
}

async fn oversized_bodies_are_413(backend: Backend) {
    let db = std::sync::Arc::new(crate::common::TestDb::new(backend).await);
    let app = TestApp::spawn_on(db, |c| {
        c.server.max_body_bytes = 64 * 1024;
        c.bootstrap.auto = Some(true);
    })
    .await;
    let base = format!("/catalog/v1/{}", app.prefix("demo").await);
    let big = json!({"namespace": ["big"], "properties": {"blob": "x".repeat(100 * 1024)}});
    let (kind, _) = expect_error(app.post(&format!("{base}/namespaces"), &big).await, 413).await;
    assert_eq!(kind, "PayloadTooLargeException");
    assert_eq!(namespace_count(&app, &base).await, 0);
    let small = json!({"namespace": ["small"], "properties": {"blob": "x".repeat(1024)}});
    assert_eq!(
        app.post(&format!("{base}/namespaces"), &small)
            .await
            .status(),
        200
    );
}

async fn unknown_routes_and_methods_use_the_error_model(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (kind, _) = expect_error(app.get("/catalog/v1/nothing/here/at/all").await, 404).await;
    assert_eq!(kind, "NotFoundException");
    let (kind, _) = expect_error(app.put("/management/v1/info", &json!({})).await, 405).await;
    assert_eq!(kind, "MethodNotAllowedException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_failures_return_only_an_error_id() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.create_local_warehouse("lake").await;
    let prefix = app.prefix("lake").await;
    assert_eq!(app.get("/ready").await.status(), 200);
    app.db.kill_postgres().await;

    let response = app.get(&format!("/catalog/v1/{prefix}/namespaces")).await;
    let status = response.status().as_u16();
    assert!(status == 500 || status == 503, "status {status}");
    let (kind, message) = expect_error(response, status).await;
    assert!(kind == "InternalServerError" || kind == "ServiceUnavailableException");
    let id = message.rsplit(' ').next().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "the message ends with the error id: {message}"
    );
    assert!(
        !message.to_lowercase().contains("database \""),
        "no internals: {message}"
    );
    // The log has the id beside the cause.
    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains(id))
        .expect("the error id is logged");
    assert!(line.contains("cause"), "{line}");

    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    let health = app.get("/health").await;
    assert_eq!(
        health.status(),
        200,
        "liveness does not depend on the database"
    );
}

/// PostgreSQL out of disk (`disk_full`, 53100), raised by the database itself on the insert a
/// namespace create makes (a trigger stands for the full disk, which cannot be filled here
/// safely): 507 naming the database, nothing written, and the next create works once the
/// "space" is back, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_postgres_disk_is_507_and_recovers() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    app.db
        .execute(
            "CREATE FUNCTION floe_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' \
             USING ERRCODE = 'disk_full'; END $$",
        )
        .await;
    app.db
        .execute(
            "CREATE TRIGGER floe_test_disk_full BEFORE INSERT ON namespaces \
             FOR EACH ROW EXECUTE FUNCTION floe_test_disk_full()",
        )
        .await;
    let response = app
        .post(
            &format!("{base}/namespaces"),
            &json!({"namespace": ["full"]}),
        )
        .await;
    let (kind, message) = expect_error(response, 507).await;
    assert_eq!(kind, "InsufficientStorageException");
    assert!(message.contains("disk is full"), "{message}");
    app.db
        .execute("DROP TRIGGER floe_test_disk_full ON namespaces")
        .await;
    assert_eq!(namespace_count(&app, &base).await, 0, "nothing was written");
    let response = app
        .post(
            &format!("{base}/namespaces"),
            &json!({"namespace": ["full"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
}
