//! Tables, views and transactions over HTTP, on both backends.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, expect_error};

on_both_backends!(
    table_lifecycle_and_etags,
    large_loads_are_gzipped_when_asked,
    refs_mode_loads_only_referenced_snapshots,
    commits_check_requirements_and_write_new_files,
    bad_updates_are_400_and_change_nothing,
    locations_must_stay_inside,
    table_folders_never_overlap,
    staged_create_then_commit,
    transactions_are_all_or_nothing,
    drop_and_purge,
    rename_tables,
    register_tables,
    views_lifecycle,
    metrics_and_credentials,
    old_metadata_files_are_deleted_when_asked,
    concurrent_appends_lose_nothing,
    concurrent_property_commits_take_turns_in_one_process,
);

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": false, "type": "long"},
        {"id": 2, "name": "name", "required": false, "type": "string"}
    ]})
}

/// A warehouse `lake` with namespace `ns`; returns the catalog base path `/catalog/v1/{prefix}`.
async fn setup(app: &TestApp) -> String {
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    let response = app
        .post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
        .await;
    assert_eq!(response.status(), 200);
    base
}

fn warehouse_root(app: &TestApp) -> PathBuf {
    app.db.dir.path().join("wh").join("lake")
}

async fn create_table(app: &TestApp, base: &str, name: &str) -> Value {
    let response = app
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": name, "schema": schema()}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn load(app: &TestApp, base: &str, name: &str) -> Value {
    let response = app
        .get(&format!("{base}/namespaces/ns/tables/{name}"))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn path_of(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").expect("a file location"))
}

fn metadata_files(table: &Value) -> Vec<String> {
    let dir = path_of(table["metadata"]["location"].as_str().unwrap()).join("metadata");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".metadata.json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

async fn commit(app: &TestApp, base: &str, name: &str, body: Value) -> reqwest::Response {
    app.post(&format!("{base}/namespaces/ns/tables/{name}"), &body)
        .await
}

fn snapshot(location: &str, id: i64, parent: Option<i64>, sequence: i64) -> Value {
    json!({
        "snapshot-id": id,
        "parent-snapshot-id": parent,
        "sequence-number": sequence,
        "timestamp-ms": chrono::Utc::now().timestamp_millis(),
        "manifest-list": format!("{location}/metadata/snap-{id}.avro"),
        "summary": {"operation": "append"},
        "schema-id": 0
    })
}

async fn table_lifecycle_and_etags(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let created = create_table(&app, &base, "orders").await;
    let metadata_location = created["metadata-location"].as_str().unwrap();
    assert!(
        metadata_location.contains("/metadata/00000-"),
        "{metadata_location}"
    );
    assert!(metadata_location.ends_with(".metadata.json"));
    assert!(
        path_of(metadata_location).is_file(),
        "the metadata file is written"
    );
    let location = created["metadata"]["location"].as_str().unwrap();
    let root = warehouse_root(&app).canonicalize().unwrap();
    assert!(
        path_of(location).starts_with(root.join("ns")),
        "default location under the namespace: {location}"
    );
    assert_eq!(created["metadata"]["format-version"], 2);

    let response = app
        .get(&format!("{base}/namespaces/ns/tables/orders"))
        .await;
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let loaded: Value = response.json().await.unwrap();
    assert_eq!(loaded["metadata-location"], created["metadata-location"]);
    assert_eq!(loaded["metadata"], created["metadata"]);
    let not_modified = app
        .client
        .get(app.url(&format!("{base}/namespaces/ns/tables/orders")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    let refs = app
        .get(&format!(
            "{base}/namespaces/ns/tables/orders?snapshots=refs"
        ))
        .await;
    assert_eq!(refs.status(), 200);
    assert_ne!(refs.headers()["etag"].to_str().unwrap(), etag);
    expect_error(
        app.get(&format!(
            "{base}/namespaces/ns/tables/orders?snapshots=some"
        ))
        .await,
        400,
    )
    .await;

    assert_eq!(
        app.head(&format!("{base}/namespaces/ns/tables/orders"))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.head(&format!("{base}/namespaces/ns/tables/nope"))
            .await
            .status(),
        404
    );
    let (kind, _) = expect_error(
        app.get(&format!("{base}/namespaces/ns/tables/nope")).await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchTableException");
    let (kind, _) = expect_error(
        app.post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "orders", "schema": schema()}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(kind, "AlreadyExistsException");
    let (kind, _) = expect_error(
        app.post(
            &format!("{base}/namespaces/ghost/tables"),
            &json!({"name": "t", "schema": schema()}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchNamespaceException");

    for name in ["b", "a", "c"] {
        create_table(&app, &base, name).await;
    }
    let list: Value = app
        .get(&format!("{base}/namespaces/ns/tables"))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c", "orders"]);
    assert_eq!(list["identifiers"][0]["namespace"], json!(["ns"]));
    let page: Value = app
        .get(&format!(
            "{base}/namespaces/ns/tables?pageToken=&pageSize=3"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["identifiers"].as_array().unwrap().len(), 3);
    let token = page["next-page-token"].as_str().unwrap();
    let rest: Value = app
        .get(&format!(
            "{base}/namespaces/ns/tables?pageToken={token}&pageSize=3"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["identifiers"][0]["name"], "orders");
    assert!(rest["next-page-token"].is_null());

    let (kind, _) = expect_error(app.delete(&format!("{base}/namespaces/ns")).await, 409).await;
    assert_eq!(kind, "NamespaceNotEmptyException");
}

/// The raw body and headers of a load sent with `accept_encoding` (the test client decodes
/// nothing).
async fn load_raw(
    app: &TestApp,
    base: &str,
    name: &str,
    accept_encoding: Option<&str>,
    if_none_match: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("{base}/namespaces/ns/tables/{name}")));
    if let Some(accept) = accept_encoding {
        request = request.header("accept-encoding", accept);
    }
    if let Some(etag) = if_none_match {
        request = request.header("if-none-match", etag);
    }
    request.send().await.unwrap()
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out)
        .expect("a gzip body");
    out
}

async fn large_loads_are_gzipped_when_asked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    create_table(&app, &base, "small").await;
    create_table(&app, &base, "wide").await;
    // 400 properties of ~100 bytes: ~40 KB of metadata, above the 16 KiB where gzip starts.
    let properties: serde_json::Map<String, Value> = (0..400)
        .map(|i| (format!("p{i:03}"), json!("v".repeat(90))))
        .collect();
    let response = commit(
        &app,
        &base,
        "wide",
        json!({"updates": [{"action": "set-properties", "updates": properties}]}),
    )
    .await;
    assert_eq!(response.status(), 200);

    let plain = load_raw(&app, &base, "wide", None, None).await;
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_etag = plain.headers()["etag"].to_str().unwrap().to_string();
    let plain_body = plain.bytes().await.unwrap();
    assert!(plain_body.len() > 40_000, "{}", plain_body.len());

    for accept in ["gzip", "deflate, gzip;q=0.8", "*"] {
        let gzipped = load_raw(&app, &base, "wide", Some(accept), None).await;
        assert_eq!(gzipped.status(), 200);
        assert_eq!(gzipped.headers()["content-encoding"], "gzip", "{accept}");
        assert_eq!(gzipped.headers()["vary"], "accept-encoding");
        let etag = gzipped.headers()["etag"].to_str().unwrap().to_string();
        assert_ne!(etag, plain_etag, "each coding has its own ETag");
        let length: usize = gzipped.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = gzipped.bytes().await.unwrap();
        assert_eq!(body.len(), length);
        assert!(body.len() * 4 < plain_body.len(), "{} bytes", body.len());
        assert_eq!(gunzip(&body), plain_body, "the same body once decoded");
        // Either ETag of this version is current.
        for held in [&etag, &plain_etag] {
            let again = load_raw(&app, &base, "wide", Some(accept), Some(held)).await;
            assert_eq!(again.status(), 304);
        }
    }
    // Served from the kept compressed start: still the same after a reload.
    let again = load_raw(&app, &base, "wide", Some("gzip"), None).await;
    assert_eq!(gunzip(&again.bytes().await.unwrap()), plain_body);

    // Refused or not asked for: the body as it is.
    for accept in ["identity", "gzip;q=0", "br"] {
        let response = load_raw(&app, &base, "wide", Some(accept), None).await;
        assert!(
            response.headers().get("content-encoding").is_none(),
            "{accept}"
        );
        assert_eq!(response.headers()["etag"].to_str().unwrap(), plain_etag);
        assert_eq!(response.bytes().await.unwrap(), plain_body);
    }
    // A small table is not worth compressing.
    let small = load_raw(&app, &base, "small", Some("gzip"), None).await;
    assert!(small.headers().get("content-encoding").is_none());
    let small: Value = small.json().await.unwrap();
    assert_eq!(small["metadata"]["format-version"], 2);

    // A commit makes a new version, compressed anew.
    let response = commit(
        &app,
        &base,
        "wide",
        json!({"updates": [{"action": "set-properties", "updates": {"owner": "bi"}}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let fresh = load_raw(&app, &base, "wide", Some("gzip"), None).await;
    let fresh: Value = serde_json::from_slice(&gunzip(&fresh.bytes().await.unwrap())).unwrap();
    assert_eq!(fresh["metadata"]["properties"]["owner"], "bi");
    assert_eq!(fresh["metadata"]["properties"]["p399"], "v".repeat(90));
    assert_ne!(
        fresh["metadata-location"],
        serde_json::from_slice::<Value>(&plain_body).unwrap()["metadata-location"]
    );
}

fn snapshot_ids(table: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = table["metadata"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot-id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

async fn load_refs(app: &TestApp, base: &str) -> Value {
    let response = app
        .get(&format!("{base}/namespaces/ns/tables/t?snapshots=refs"))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn refs_mode_loads_only_referenced_snapshots(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let created = create_table(&app, &base, "t").await;
    let location = created["metadata"]["location"]
        .as_str()
        .unwrap()
        .to_string();
    let mut parent = None;
    for id in 1..=3 {
        let response = commit(&app, &base, "t", json!({"updates": [
            {"action": "add-snapshot", "snapshot": snapshot(&location, id, parent, id)},
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": id}
        ]}))
        .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        parent = Some(id);
    }
    let response = commit(
        &app,
        &base,
        "t",
        json!({"updates": [
            {"action": "set-snapshot-ref", "ref-name": "v1", "type": "tag", "snapshot-id": 1}
        ]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let all = load(&app, &base, "t").await;
    assert_eq!(snapshot_ids(&all), vec![1, 2, 3]);
    let first = load_refs(&app, &base).await;
    assert_eq!(snapshot_ids(&first), vec![1, 3], "main's head and the tag");
    let mut expected = all["metadata"].clone();
    expected["snapshots"] = json!(
        all["metadata"]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["snapshot-id"] != 2)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        first["metadata"], expected,
        "all else as in the full metadata"
    );
    // Kept per metadata file: the same again, and a new version gives its own.
    assert_eq!(load_refs(&app, &base).await, first);
    let response = commit(
        &app,
        &base,
        "t",
        json!({"updates": [
            {"action": "add-snapshot", "snapshot": snapshot(&location, 4, Some(3), 4)},
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 4}
        ]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let after = load_refs(&app, &base).await;
    assert_eq!(snapshot_ids(&after), vec![1, 4]);
    assert_ne!(after["metadata-location"], first["metadata-location"]);
}

async fn commits_check_requirements_and_write_new_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let created = create_table(&app, &base, "t").await;
    let uuid = created["metadata"]["table-uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let location = created["metadata"]["location"]
        .as_str()
        .unwrap()
        .to_string();

    let response = commit(
        &app,
        &base,
        "t",
        json!({
            "requirements": [{"type": "assert-table-uuid", "uuid": uuid}],
            "updates": [{"action": "set-properties", "updates": {"owner": "bi"}}]
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let committed: Value = response.json().await.unwrap();
    assert!(
        committed["metadata-location"]
            .as_str()
            .unwrap()
            .contains("/metadata/00001-")
    );
    assert_eq!(committed["metadata"]["properties"]["owner"], "bi");
    assert_eq!(
        committed["metadata"]["metadata-log"][0]["metadata-file"],
        created["metadata-location"]
    );
    assert_eq!(
        load(&app, &base, "t").await["metadata"],
        committed["metadata"]
    );

    // A snapshot, then a commit that expects the old one fails with 409 and changes nothing.
    let append = commit(
        &app,
        &base,
        "t",
        json!({
            "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null}],
            "updates": [
                {"action": "add-snapshot", "snapshot": snapshot(&location, 1, None, 1)},
                {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 1}
            ]
        }),
    )
    .await;
    assert_eq!(append.status(), 200, "{}", append.text().await.unwrap());
    let before = load(&app, &base, "t").await;
    let files_before = metadata_files(&before);
    for requirement in [
        json!({"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null}),
        json!({"type": "assert-table-uuid", "uuid": uuid::Uuid::new_v4()}),
        json!({"type": "assert-current-schema-id", "current-schema-id": 7}),
        json!({"type": "assert-last-assigned-field-id", "last-assigned-field-id": 99}),
        json!({"type": "assert-last-assigned-partition-id", "last-assigned-partition-id": 1234}),
        json!({"type": "assert-default-spec-id", "default-spec-id": 5}),
        json!({"type": "assert-default-sort-order-id", "default-sort-order-id": 5}),
        json!({"type": "assert-create"}),
    ] {
        let (kind, _) = expect_error(
            commit(
                &app,
                &base,
                "t",
                json!({"requirements": [requirement], "updates": [
                    {"action": "set-properties", "updates": {"lost": "yes"}}]}),
            )
            .await,
            409,
        )
        .await;
        assert_eq!(kind, "CommitFailedException", "{requirement}");
    }
    let after = load(&app, &base, "t").await;
    assert_eq!(after["metadata-location"], before["metadata-location"]);
    assert_eq!(
        metadata_files(&after),
        files_before,
        "a failed commit leaves no file"
    );

    // Every requirement that holds lets the commit through.
    let ok = commit(
        &app,
        &base,
        "t",
        json!({"requirements": [
            {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 1},
            {"type": "assert-current-schema-id", "current-schema-id": 0},
            {"type": "assert-last-assigned-field-id", "last-assigned-field-id": 2},
            {"type": "assert-last-assigned-partition-id", "last-assigned-partition-id": 999},
            {"type": "assert-default-spec-id", "default-spec-id": 0},
            {"type": "assert-default-sort-order-id", "default-sort-order-id": 0}
        ], "updates": [{"action": "set-properties", "updates": {"ok": "yes"}}]}),
    )
    .await;
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());

    // Committing to a table that does not exist is a 404.
    let (kind, _) = expect_error(
        commit(
            &app,
            &base,
            "ghost",
            json!({"requirements": [], "updates": []}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchTableException");
}

async fn bad_updates_are_400_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    create_table(&app, &base, "t").await;
    let before = load(&app, &base, "t").await;
    for body in [
        json!({"updates": [{"action": "explode-table"}]}),
        json!({"requirements": [{"type": "assert-nothing"}], "updates": []}),
        json!({"updates": [{"action": "set-current-schema", "schema-id": 42}]}),
        json!({"updates": [{"action": "set-default-spec", "spec-id": 9}]}),
        json!({"updates": [{"action": "set-properties", "updates": {"format-version": "1"}}]}),
        json!({"updates": [{"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 12345}]}),
        json!({"updates": "not a list"}),
    ] {
        let (kind, message) = expect_error(commit(&app, &base, "t", body.clone()).await, 400).await;
        assert_eq!(kind, "BadRequestException", "{body}");
        assert!(!message.is_empty());
    }
    let after = load(&app, &base, "t").await;
    assert_eq!(after["metadata-location"], before["metadata-location"]);
    assert_eq!(metadata_files(&after).len(), 1);
    expect_error(
        app.post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "x", "schema": {"type": "nope"}}),
        )
        .await,
        400,
    )
    .await;
    expect_error(
        app.post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "", "schema": schema()}),
        )
        .await,
        400,
    )
    .await;
}

async fn locations_must_stay_inside(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let root = warehouse_root(&app).canonicalize().unwrap();
    let root = root.to_str().unwrap();
    let outside = [
        format!("file://{root}/../escape"),
        format!("file://{root}/a/%2e%2e/%2e%2e/escape"),
        format!("file://{root}2/sibling"),
        "file:///tmp/elsewhere".to_string(),
        format!("file://{root}"),
        "s3://other-bucket/x".to_string(),
    ];
    for location in &outside {
        let response = app
            .post(
                &format!("{base}/namespaces/ns/tables"),
                &json!({"name": "evil", "schema": schema(), "location": location}),
            )
            .await;
        let status = response.status().as_u16();
        assert!(status == 400 || status == 403, "{location}: {status}");
        expect_error(response, status).await;
    }
    assert!(!PathBuf::from(format!("{root}2")).exists());
    assert!(!PathBuf::from(format!("{root}/../escape")).exists());
    let list: Value = app
        .get(&format!("{base}/namespaces/ns/tables"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        list["identifiers"].as_array().unwrap().is_empty(),
        "nothing was created"
    );

    // An explicit location inside the warehouse is fine.
    let inside = format!("file://{root}/custom/place");
    let created: Value = app
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "placed", "schema": schema(), "location": inside}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["metadata"]["location"], inside.as_str());

    // Write paths outside the table, at create and by commit.
    let response = app
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "paths", "schema": schema(),
                    "properties": {"write.data.path": format!("file://{root}/other-table/data")}}),
        )
        .await;
    assert_eq!(response.status(), 403);
    let before = load(&app, &base, "placed").await;
    // Outside the warehouse or the table: 403; a `..` segment: 400 (as the README says).
    for (update, expected) in [
        (
            json!({"action": "set-location", "location": format!("file://{root}2/x")}),
            403,
        ),
        (
            json!({"action": "set-location", "location": "file:///etc"}),
            403,
        ),
        (
            json!({"action": "set-properties", "updates": {"write.data.path": format!("file://{root}/custom/place2/data")}}),
            403,
        ),
        (
            json!({"action": "set-properties", "updates": {"write.metadata.path": "file:///tmp/meta"}}),
            403,
        ),
        (
            json!({"action": "set-properties", "updates": {"write.object-storage.path": format!("file://{root}/custom/place/../../x")}}),
            400,
        ),
    ] {
        let response = commit(&app, &base, "placed", json!({"updates": [update]})).await;
        assert_eq!(response.status().as_u16(), expected, "{update}");
    }
    let after = load(&app, &base, "placed").await;
    assert_eq!(after["metadata-location"], before["metadata-location"]);
    assert_eq!(metadata_files(&after).len(), 1);

    // Registering a metadata file outside the warehouse.
    let response = app
        .post(
            &format!("{base}/namespaces/ns/register"),
            &json!({"name": "reg", "metadata-location": "file:///etc/passwd"}),
        )
        .await;
    assert_eq!(response.status(), 403);
}

/// A table's folder never contains, equals or lies in another table's: a key vended for one table
/// is scoped to its folder and must not reach another's files.
async fn table_folders_never_overlap(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let root = warehouse_root(&app).canonicalize().unwrap();
    let root = root.to_str().unwrap();
    let t = create_table(&app, &base, "t").await;
    let t_location = t["metadata"]["location"].as_str().unwrap().to_string();
    assert!(t_location.starts_with(&format!("file://{root}/ns/t-")));
    let overlapping = [
        format!("file://{root}/ns"),
        t_location.clone(),
        format!("{t_location}/data"),
        format!("{t_location}/"),
    ];
    for location in &overlapping {
        let response = app
            .post(
                &format!("{base}/namespaces/ns/tables"),
                &json!({"name": "o", "schema": schema(), "location": location}),
            )
            .await;
        let (kind, message) = expect_error(response, 400).await;
        assert_eq!(kind, "BadRequestException");
        assert!(message.contains("overlaps"), "{location}: {message}");
        // Staging a create is refused the same way.
        let response = app
            .post(
                &format!("{base}/namespaces/ns/tables"),
                &json!({"name": "o", "schema": schema(), "location": location, "stage-create": true}),
            )
            .await;
        expect_error(response, 400).await;
    }
    // A sibling folder whose name extends t's is not inside it.
    let sibling = format!("{t_location}x");
    let created = app
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "sibling", "schema": schema(), "location": sibling}),
        )
        .await;
    assert_eq!(created.status(), 200);
    // A table placed at a folder other tables will be created in: later tables there are refused.
    let response = app
        .post(
            &format!("{base}/namespaces"),
            &json!({"namespace": ["other"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let created = app
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "squatter", "schema": schema(), "location": format!("file://{root}/other")}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let response = app
        .post(
            &format!("{base}/namespaces/other/tables"),
            &json!({"name": "later", "schema": schema()}),
        )
        .await;
    let (_, message) = expect_error(response, 400).await;
    assert!(message.contains("overlaps"), "{message}");
    // Moving a table into another's folder by commit, and registering another table's metadata
    // under a copy of its location, are refused too; the table is unchanged.
    let before = load(&app, &base, "sibling").await;
    let response = commit(
        &app,
        &base,
        "sibling",
        json!({"updates": [{"action": "set-location", "location": format!("{t_location}/inner")}]}),
    )
    .await;
    expect_error(response, 400).await;
    let after = load(&app, &base, "sibling").await;
    assert_eq!(after["metadata-location"], before["metadata-location"]);
    let response = app
        .post(
            &format!("{base}/namespaces/ns/register"),
            &json!({"name": "copycat", "metadata-location": t["metadata-location"]}),
        )
        .await;
    let (_, message) = expect_error(response, 409).await;
    assert!(message.contains("UUID"), "{message}");
    let response = app
        .get(&format!("{base}/namespaces/ns/tables/copycat"))
        .await;
    assert_eq!(response.status(), 404, "nothing was registered");
    // Registering metadata of a new UUID whose location lies inside another table's folder (or
    // holds it): refused as an overlap, nothing registered.
    let mut metadata: Value = serde_json::from_slice(
        &std::fs::read(path_of(t["metadata-location"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    for (name, location) in [
        ("nested", format!("{t_location}/inner")),
        ("holder", format!("file://{root}/ns")),
    ] {
        metadata["table-uuid"] = json!(uuid::Uuid::new_v4().to_string());
        metadata["location"] = json!(location);
        let file = format!("{location}/metadata/00000-{name}.metadata.json");
        std::fs::create_dir_all(path_of(&file).parent().unwrap()).unwrap();
        std::fs::write(path_of(&file), metadata.to_string()).unwrap();
        let response = app
            .post(
                &format!("{base}/namespaces/ns/register"),
                &json!({"name": name, "metadata-location": file}),
            )
            .await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body.contains("overlaps"), "{name}: {body}");
        let response = app
            .get(&format!("{base}/namespaces/ns/tables/{name}"))
            .await;
        assert_eq!(response.status(), 404, "{name} was not registered");
    }
    // Claiming another table's UUID does not make its folder one's own: a table's UUID cannot
    // change, and the overlap check does not go by UUID.
    let response = commit(
        &app,
        &base,
        "sibling",
        json!({"updates": [
            {"action": "assign-uuid", "uuid": t["metadata"]["table-uuid"]},
            {"action": "set-location", "location": t_location}]}),
    )
    .await;
    let (_, message) = expect_error(response, 400).await;
    assert!(message.contains("UUID"), "{message}");
    let after = load(&app, &base, "sibling").await;
    assert_eq!(after["metadata-location"], before["metadata-location"]);

    // Two tables of one transaction, one inside the other: refused, neither created.
    let create = |name: &str, location: String| {
        json!({
            "identifier": {"namespace": ["ns"], "name": name},
            "requirements": [{"type": "assert-create"}],
            "updates": [
                {"action": "assign-uuid", "uuid": uuid::Uuid::new_v4().to_string()},
                {"action": "upgrade-format-version", "format-version": 2},
                {"action": "add-schema", "schema": schema()},
                {"action": "set-current-schema", "schema-id": -1},
                {"action": "add-spec", "spec": {"spec-id": 0, "fields": []}},
                {"action": "set-default-spec", "spec-id": -1},
                {"action": "add-sort-order", "sort-order": {"order-id": 0, "fields": []}},
                {"action": "set-default-sort-order", "sort-order-id": -1},
                {"action": "set-location", "location": location},
            ]
        })
    };
    let response = app
        .post(
            &format!("{base}/transactions/commit"),
            &json!({"table-changes": [
                create("outer", format!("file://{root}/nest")),
                create("inner", format!("file://{root}/nest/inner")),
            ]}),
        )
        .await;
    let (_, message) = expect_error(response, 400).await;
    assert!(message.contains("this transaction"), "{message}");
    for name in ["outer", "inner"] {
        let response = app
            .get(&format!("{base}/namespaces/ns/tables/{name}"))
            .await;
        assert_eq!(response.status(), 404);
    }

    // A view inside a table's folder: refused (the table's key would reach its metadata).
    let mut view = view_body("inside", "select 1");
    view["location"] = json!(format!("{t_location}/views/inside"));
    let response = app
        .post(&format!("{base}/namespaces/ns/views"), &view)
        .await;
    let (_, message) = expect_error(response, 400).await;
    assert!(message.contains("overlaps"), "{message}");

    // Committing to a table without moving it is not affected.
    let response = commit(
        &app,
        &base,
        "t",
        json!({"updates": [{"action": "set-properties", "updates": {"k": "v"}}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
}

async fn staged_create_then_commit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let staged: Value = app
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "ctas", "schema": schema(), "stage-create": true,
                    "properties": {"format-version": "2"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(staged["metadata-location"].is_null());
    assert_eq!(
        app.head(&format!("{base}/namespaces/ns/tables/ctas"))
            .await
            .status(),
        404
    );
    let metadata = &staged["metadata"];
    let location = metadata["location"].as_str().unwrap();
    let uuid = metadata["table-uuid"].as_str().unwrap();

    let create_body = json!({
        "requirements": [{"type": "assert-create"}],
        "updates": [
            {"action": "assign-uuid", "uuid": uuid},
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": metadata["schemas"][0]},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "add-spec", "spec": metadata["partition-specs"][0]},
            {"action": "set-default-spec", "spec-id": -1},
            {"action": "add-sort-order", "sort-order": metadata["sort-orders"][0]},
            {"action": "set-default-sort-order", "sort-order-id": -1},
            {"action": "set-location", "location": location},
            {"action": "set-properties", "updates": {"created-by": "ctas"}},
            {"action": "add-snapshot", "snapshot": snapshot(location, 7, None, 1)},
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 7}
        ]
    });
    let response = commit(&app, &base, "ctas", create_body.clone()).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let table = load(&app, &base, "ctas").await;
    assert_eq!(table["metadata"]["table-uuid"], uuid);
    assert_eq!(table["metadata"]["current-snapshot-id"], 7);
    assert_eq!(table["metadata"]["properties"]["created-by"], "ctas");
    assert!(
        table["metadata-location"]
            .as_str()
            .unwrap()
            .contains("/metadata/00000-")
    );

    let (kind, _) = expect_error(commit(&app, &base, "ctas", create_body).await, 409).await;
    assert_eq!(kind, "CommitFailedException");
}

async fn transactions_are_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let a = create_table(&app, &base, "a").await;
    create_table(&app, &base, "b").await;
    let a_uuid = a["metadata"]["table-uuid"].as_str().unwrap();
    let url = format!("{base}/transactions/commit");

    let failing = json!({"table-changes": [
        {"identifier": {"namespace": ["ns"], "name": "a"},
         "requirements": [{"type": "assert-table-uuid", "uuid": a_uuid}],
         "updates": [{"action": "set-properties", "updates": {"tx": "1"}}]},
        {"identifier": {"namespace": ["ns"], "name": "b"},
         "requirements": [{"type": "assert-table-uuid", "uuid": uuid::Uuid::new_v4()}],
         "updates": [{"action": "set-properties", "updates": {"tx": "1"}}]}
    ]});
    let (kind, _) = expect_error(app.post(&url, &failing).await, 409).await;
    assert_eq!(kind, "CommitFailedException");
    for name in ["a", "b"] {
        let table = load(&app, &base, name).await;
        assert!(
            table["metadata"]["properties"].get("tx").is_none(),
            "{name} changed"
        );
        assert_eq!(
            metadata_files(&table).len(),
            1,
            "{name}: no stray metadata file"
        );
    }

    // A new table in the same transaction, the way DuckDB creates tables.
    let ok = json!({"table-changes": [
        {"identifier": {"namespace": ["ns"], "name": "a"},
         "requirements": [{"type": "assert-table-uuid", "uuid": a_uuid}],
         "updates": [{"action": "set-properties", "updates": {"tx": "2"}}]},
        {"identifier": {"namespace": ["ns"], "name": "b"}, "requirements": [],
         "updates": [{"action": "set-properties", "updates": {"tx": "2"}}]},
        {"identifier": {"namespace": ["ns"], "name": "c"},
         "requirements": [{"type": "assert-create"}],
         "updates": [
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": schema()},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "set-properties", "updates": {"tx": "2"}}
         ]}
    ]});
    assert_eq!(app.post(&url, &ok).await.status(), 204);
    for name in ["a", "b", "c"] {
        assert_eq!(
            load(&app, &base, name).await["metadata"]["properties"]["tx"],
            "2",
            "{name}"
        );
    }

    let (kind, _) = expect_error(
        app.post(
            &url,
            &json!({"table-changes": [
                {"identifier": {"namespace": ["ns"], "name": "a"}, "updates": []},
                {"identifier": {"namespace": ["ns"], "name": "a"}, "updates": []}
            ]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(kind, "BadRequestException");
    expect_error(app.post(&url, &json!({"table-changes": []})).await, 400).await;
    expect_error(
        app.post(&url, &json!({"table-changes": [{"updates": []}]}))
            .await,
        400,
    )
    .await;
}

async fn wait_until(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn drop_and_purge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let kept = create_table(&app, &base, "kept").await;
    let purged = create_table(&app, &base, "purged").await;
    let neighbour = create_table(&app, &base, "purged2").await;
    let kept_dir = path_of(kept["metadata"]["location"].as_str().unwrap());
    let purged_dir = path_of(purged["metadata"]["location"].as_str().unwrap());
    let neighbour_dir = path_of(neighbour["metadata"]["location"].as_str().unwrap());
    std::fs::create_dir_all(purged_dir.join("data")).unwrap();
    std::fs::write(purged_dir.join("data/part-0.parquet"), b"rows").unwrap();

    assert_eq!(
        app.delete(&format!("{base}/namespaces/ns/tables/kept"))
            .await
            .status(),
        204
    );
    assert!(
        kept_dir.join("metadata").is_dir(),
        "drop without purge keeps the files"
    );
    assert_eq!(
        app.delete(&format!(
            "{base}/namespaces/ns/tables/purged?purgeRequested=true"
        ))
        .await
        .status(),
        204
    );
    assert!(
        wait_until(|| !purged_dir.exists()).await,
        "purge removes the table's folder"
    );
    assert!(
        neighbour_dir.join("metadata").is_dir(),
        "a neighbour's files stay"
    );
    assert!(warehouse_root(&app).is_dir());
    let (kind, _) = expect_error(
        app.delete(&format!("{base}/namespaces/ns/tables/purged"))
            .await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchTableException");
    expect_error(
        app.delete(&format!(
            "{base}/namespaces/ns/tables/purged2?purgeRequested=maybe"
        ))
        .await,
        400,
    )
    .await;
    // A re-created table gets a fresh location.
    let again = create_table(&app, &base, "kept").await;
    assert_ne!(again["metadata"]["location"], kept["metadata"]["location"]);
}

async fn rename_tables(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    app.post(
        &format!("{base}/namespaces"),
        &json!({"namespace": ["other"]}),
    )
    .await;
    let created = create_table(&app, &base, "t").await;
    create_table(&app, &base, "taken").await;
    let url = format!("{base}/tables/rename");
    let rename = |from: (&str, &str), to: (&str, &str)| {
        json!({"source": {"namespace": [from.0], "name": from.1},
               "destination": {"namespace": [to.0], "name": to.1}})
    };
    assert_eq!(
        app.post(&url, &rename(("ns", "t"), ("ns", "t2")))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.post(&url, &rename(("ns", "t2"), ("other", "moved")))
            .await
            .status(),
        204
    );
    let moved: Value = app
        .get(&format!("{base}/namespaces/other/tables/moved"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        moved["metadata"]["table-uuid"],
        created["metadata"]["table-uuid"]
    );
    assert_eq!(
        app.head(&format!("{base}/namespaces/ns/tables/t"))
            .await
            .status(),
        404
    );
    let (kind, _) = expect_error(
        app.post(&url, &rename(("other", "moved"), ("ns", "taken")))
            .await,
        409,
    )
    .await;
    assert_eq!(kind, "AlreadyExistsException");
    let (kind, _) = expect_error(
        app.post(&url, &rename(("other", "moved"), ("ghost", "x")))
            .await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchNamespaceException");
    let (kind, _) = expect_error(
        app.post(&url, &rename(("ns", "nope"), ("ns", "x"))).await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchTableException");
}

async fn register_tables(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let original = create_table(&app, &base, "original").await;
    let file = original["metadata-location"].as_str().unwrap().to_string();
    assert_eq!(
        app.delete(&format!("{base}/namespaces/ns/tables/original"))
            .await
            .status(),
        204
    );

    let response = app
        .post(
            &format!("{base}/namespaces/ns/register"),
            &json!({"name": "revived", "metadata-location": file}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let revived = load(&app, &base, "revived").await;
    assert_eq!(revived["metadata-location"], file.as_str());
    assert_eq!(
        revived["metadata"]["table-uuid"],
        original["metadata"]["table-uuid"]
    );
    // The next commit numbers its file after the registered one.
    let next: Value = commit(
        &app,
        &base,
        "revived",
        json!({"updates": [
        {"action": "set-properties", "updates": {"k": "v"}}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        next["metadata-location"]
            .as_str()
            .unwrap()
            .contains("/metadata/00001-")
    );

    let (kind, _) = expect_error(
        app.post(
            &format!("{base}/namespaces/ns/register"),
            &json!({"name": "revived", "metadata-location": file}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(kind, "AlreadyExistsException");
    let overwritten = app
        .post(
            &format!("{base}/namespaces/ns/register"),
            &json!({"name": "revived", "metadata-location": file, "overwrite": true}),
        )
        .await;
    assert_eq!(overwritten.status(), 200);
    assert_eq!(
        load(&app, &base, "revived").await["metadata-location"],
        file.as_str()
    );

    let root = warehouse_root(&app).canonicalize().unwrap();
    let missing = format!("file://{}/nothing/here.metadata.json", root.display());
    let (kind, _) = expect_error(
        app.post(
            &format!("{base}/namespaces/ns/register"),
            &json!({"name": "x", "metadata-location": missing}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(kind, "BadRequestException");
    let junk = root.join("junk.metadata.json");
    std::fs::write(&junk, b"{not metadata").unwrap();
    expect_error(
        app.post(
            &format!("{base}/namespaces/ns/register"),
            &json!({"name": "x", "metadata-location": format!("file://{}", junk.display())}),
        )
        .await,
        400,
    )
    .await;
}

fn view_body(name: &str, sql: &str) -> Value {
    json!({
        "name": name,
        "schema": {"type": "struct", "schema-id": 0, "fields": [
            {"id": 1, "name": "id", "required": false, "type": "long"}]},
        "view-version": {
            "version-id": 1, "schema-id": 0, "timestamp-ms": 1_700_000_000_000i64,
            "summary": {"engine-name": "test"},
            "representations": [{"type": "sql", "sql": sql, "dialect": "spark"}],
            "default-namespace": ["ns"]
        },
        "properties": {"comment": "v1"}
    })
}

async fn views_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    let response = app
        .post(
            &format!("{base}/namespaces/ns/views"),
            &view_body("v", "select 1"),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let created: Value = response.json().await.unwrap();
    let file = created["metadata-location"].as_str().unwrap();
    assert!(file.contains("/metadata/00000-") && path_of(file).is_file());
    let uuid = created["metadata"]["view-uuid"]
        .as_str()
        .unwrap()
        .to_string();

    let loaded: Value = app
        .get(&format!("{base}/namespaces/ns/views/v"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(loaded["metadata"], created["metadata"]);
    assert_eq!(
        app.head(&format!("{base}/namespaces/ns/views/v"))
            .await
            .status(),
        204
    );
    let list: Value = app
        .get(&format!("{base}/namespaces/ns/views"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["identifiers"],
        json!([{"namespace": ["ns"], "name": "v"}])
    );
    // Tables and views share names, but not lists or loads.
    let tables: Value = app
        .get(&format!("{base}/namespaces/ns/tables"))
        .await
        .json()
        .await
        .unwrap();
    assert!(tables["identifiers"].as_array().unwrap().is_empty());
    let (kind, _) = expect_error(
        app.get(&format!("{base}/namespaces/ns/tables/v")).await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchTableException");
    let (kind, _) = expect_error(
        app.post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "v", "schema": schema()}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(kind, "AlreadyExistsException");
    expect_error(
        app.post(
            &format!("{base}/namespaces/ns/views"),
            &view_body("v", "select 2"),
        )
        .await,
        409,
    )
    .await;

    let replace = |uuid: String| {
        json!({
            "requirements": [{"type": "assert-view-uuid", "uuid": uuid}],
            "updates": [
                {"action": "add-view-version", "view-version": {
                    "version-id": 2, "schema-id": 0, "timestamp-ms": 1_700_000_000_500i64,
                    "summary": {"engine-name": "test"},
                    "representations": [{"type": "sql", "sql": "select 2", "dialect": "spark"}],
                    "default-namespace": ["ns"]}},
                {"action": "set-current-view-version", "view-version-id": -1},
                {"action": "set-properties", "updates": {"comment": "v2"}}
            ]
        })
    };
    let (kind, _) = expect_error(
        app.post(
            &format!("{base}/namespaces/ns/views/v"),
            &replace(uuid::Uuid::new_v4().to_string()),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(kind, "CommitFailedException");
    let response = app
        .post(
            &format!("{base}/namespaces/ns/views/v"),
            &replace(uuid.clone()),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let replaced: Value = response.json().await.unwrap();
    assert!(
        replaced["metadata-location"]
            .as_str()
            .unwrap()
            .contains("/metadata/00001-")
    );
    assert_eq!(replaced["metadata"]["properties"]["comment"], "v2");
    assert_eq!(replaced["metadata"]["current-version-id"], 2);

    let rename = json!({"source": {"namespace": ["ns"], "name": "v"},
                        "destination": {"namespace": ["ns"], "name": "w"}});
    assert_eq!(
        app.post(&format!("{base}/views/rename"), &rename)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.head(&format!("{base}/namespaces/ns/views/v"))
            .await
            .status(),
        404
    );

    // register-view from the metadata file of the renamed view
    let file = replaced["metadata-location"].as_str().unwrap();
    let registered = app
        .post(
            &format!("{base}/namespaces/ns/register-view"),
            &json!({"name": "again", "metadata-location": file}),
        )
        .await;
    assert_eq!(registered.status(), 200);

    assert_eq!(
        app.delete(&format!("{base}/namespaces/ns/views/w"))
            .await
            .status(),
        204
    );
    let (kind, _) =
        expect_error(app.get(&format!("{base}/namespaces/ns/views/w")).await, 404).await;
    assert_eq!(kind, "NoSuchViewException");
    expect_error(
        app.post(
            &format!("{base}/namespaces/ns/views/again"),
            &json!({"updates": [{"action": "nope"}]}),
        )
        .await,
        400,
    )
    .await;
}

async fn metrics_and_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    create_table(&app, &base, "t").await;
    let report = json!({"report-type": "scan-report", "table-name": "ns.t", "snapshot-id": 1,
                        "filter": {"type": "true"}, "schema-id": 0, "projected-field-ids": [1],
                        "projected-field-names": ["id"], "metrics": {}});
    assert_eq!(
        app.post(&format!("{base}/namespaces/ns/tables/t/metrics"), &report)
            .await
            .status(),
        204
    );
    expect_error(
        app.post(
            &format!("{base}/namespaces/ns/tables/nope/metrics"),
            &report,
        )
        .await,
        404,
    )
    .await;
    let credentials: Value = app
        .get(&format!("{base}/namespaces/ns/tables/t/credentials"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(credentials, json!({"storage-credentials": []}));
}

async fn old_metadata_files_are_deleted_when_asked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = setup(&app).await;
    create_table(&app, &base, "t").await;
    let response = commit(
        &app,
        &base,
        "t",
        json!({"updates": [{"action": "set-properties", "updates": {
        "write.metadata.delete-after-commit.enabled": "true",
        "write.metadata.previous-versions-max": "2"}}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    for i in 0..5 {
        let response = commit(
            &app,
            &base,
            "t",
            json!({"updates": [
            {"action": "set-properties", "updates": {"i": i.to_string()}}]}),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    let table = load(&app, &base, "t").await;
    let files = metadata_files(&table);
    assert_eq!(files.len(), 3, "current + 2 previous: {files:?}");
    assert!(files.last().unwrap().starts_with("00006-"), "{files:?}");
    assert_eq!(
        table["metadata"]["metadata-log"].as_array().unwrap().len(),
        2
    );
}

/// Eight writers append 25 snapshots each to one table, retrying on 409 like Iceberg clients do.
/// Their first appends are all made against the same loaded version (a barrier), so at least
/// seven of them must be refused with 409 and retried by the client.
async fn concurrent_appends_lose_nothing(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let base = Arc::new(setup(&app).await);
    let created = create_table(&app, &base, "hot").await;
    let location = Arc::new(
        created["metadata"]["location"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let together = Arc::new(tokio::sync::Barrier::new(8));
    let mut writers = Vec::new();
    for writer in 0..8i64 {
        let (app, base, location) = (app.clone(), base.clone(), location.clone());
        let together = together.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut conflicts = 0;
            for i in 0..25i64 {
                let id = 1 + writer * 1000 + i;
                loop {
                    let current = load(&app, &base, "hot").await;
                    if i == 0 && conflicts == 0 {
                        together.wait().await;
                    }
                    let parent = current["metadata"]["current-snapshot-id"].as_i64();
                    let sequence = current["metadata"]["last-sequence-number"].as_i64().unwrap() + 1;
                    let response = commit(&app, &base, "hot", json!({
                        "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": parent}],
                        "updates": [
                            {"action": "add-snapshot", "snapshot": snapshot(&location, id, parent, sequence)},
                            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": id}
                        ]
                    }))
                    .await;
                    match response.status().as_u16() {
                        200 => {
                            acknowledged.push(id);
                            break;
                        }
                        409 => conflicts += 1,
                        other => panic!("status {other}: {}", response.text().await.unwrap()),
                    }
                }
            }
            (acknowledged, conflicts)
        }));
    }
    let mut acknowledged = Vec::new();
    let mut conflicts = 0;
    for writer in writers {
        let (ids, refused) = writer.await.unwrap();
        acknowledged.extend(ids);
        conflicts += refused;
    }
    assert_eq!(acknowledged.len(), 200);
    assert!(conflicts >= 7, "only {conflicts} commits were refused");
    let table = load(&app, &base, "hot").await;
    let snapshots = table["metadata"]["snapshots"].as_array().unwrap();
    assert_eq!(
        snapshots.len(),
        200,
        "every acknowledged snapshot is in the metadata"
    );
    let by_id: std::collections::HashMap<i64, &Value> = snapshots
        .iter()
        .map(|s| (s["snapshot-id"].as_i64().unwrap(), s))
        .collect();
    for id in &acknowledged {
        assert!(by_id.contains_key(id), "snapshot {id} was lost");
    }
    // Walking the chain from the current snapshot visits all 200 with strictly falling sequence numbers.
    let mut id = table["metadata"]["current-snapshot-id"].as_i64();
    let mut seen = 0;
    let mut last_sequence = i64::MAX;
    while let Some(current) = id {
        let snapshot = by_id[&current];
        let sequence = snapshot["sequence-number"].as_i64().unwrap();
        assert!(
            sequence < last_sequence,
            "sequence numbers strictly increase"
        );
        last_sequence = sequence;
        seen += 1;
        id = snapshot["parent-snapshot-id"].as_i64();
    }
    assert_eq!(seen, 200);
    assert_eq!(table["metadata"]["last-sequence-number"], 200);
}

/// Commits without requirements never conflict: in one process, commits to one table take turns
/// (the striped commit locks), so none loses its compare-and-swap and all 200 succeed at the
/// first try. (Swaps lost to another instance, and re-applied on the server, are forced in
/// `commits.rs`.)
async fn concurrent_property_commits_take_turns_in_one_process(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let base = Arc::new(setup(&app).await);
    create_table(&app, &base, "props").await;
    let before = app.services().commit_counts();
    let mut writers = Vec::new();
    for writer in 0..8 {
        let (app, base) = (app.clone(), base.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                let response = commit(
                    &app,
                    &base,
                    "props",
                    json!({"updates": [
                    {"action": "set-properties", "updates": {format!("w{writer}-{i}"): "x"}}]}),
                )
                .await;
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let table = load(&app, &base, "props").await;
    assert_eq!(
        table["metadata"]["properties"].as_object().unwrap().len(),
        200
    );
    let after = app.services().commit_counts();
    assert_eq!(after.landed - before.landed, 200);
    assert_eq!(
        after.retried, before.retried,
        "no swap was lost in one process"
    );
    assert_eq!(after.conflicted, before.conflicted);
}
