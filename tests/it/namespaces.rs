//! The Iceberg REST catalog's config and namespace endpoints over HTTP.

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, expect_error};

on_both_backends!(
    config_resolves_warehouses,
    namespace_lifecycle,
    namespace_listing_pages,
    namespace_properties,
    unknown_prefixes_and_namespaces_are_404,
);

async fn config_resolves_warehouses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_local_warehouse("lake").await;
    let config: Value = app
        .get("/catalog/v1/config?warehouse=lake")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(config["overrides"]["prefix"], id.as_str());
    assert!(config["defaults"].is_object());
    let endpoints: Vec<&str> = config["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(endpoints, floe::api::catalog::endpoints());
    // Every advertised endpoint is routed (a 405 or a fallback 404 would mean it is not).
    let prefix = &id;
    for endpoint in &endpoints {
        let (method, path) = endpoint.split_once(' ').unwrap();
        let path = path
            .replace("{prefix}", prefix)
            .replace("{namespace}", "nope");
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(&format!("/catalog{path}")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), 405, "{endpoint}");
        if response.status() == 404 && method != "HEAD" {
            let body: Value = response.json().await.unwrap();
            assert_ne!(
                body["error"]["type"], "NotFoundException",
                "{endpoint} is not routed"
            );
        }
    }

    // By id too.
    let by_id: Value = app
        .get(&format!("/catalog/v1/config?warehouse={id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_id["overrides"]["prefix"], id.as_str());

    // By name in another project, chosen with x-project-id.
    let project: Value = app
        .post("/management/v1/projects", &json!({"name": "other"}))
        .await
        .json()
        .await
        .unwrap();
    let pid = project["id"].as_str().unwrap();
    let root = app.db.dir.path().join("other-lake");
    let other: Value = app
        .post(
            "/management/v1/warehouses",
            &json!({"name": "lake", "project-id": pid, "storage-profile": {"type": "local", "root": root}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let scoped: Value = app
        .client
        .get(app.url("/catalog/v1/config?warehouse=lake"))
        .header("x-project-id", pid)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(scoped["overrides"]["prefix"], other["id"]);

    let (kind, _) = expect_error(app.get("/catalog/v1/config?warehouse=missing").await, 404).await;
    assert_eq!(kind, "NoSuchWarehouseException");
    let (kind, message) = expect_error(app.get("/catalog/v1/config").await, 400).await;
    assert_eq!(kind, "BadRequestException");
    assert!(message.contains("warehouse"), "{message}");
}

async fn namespace_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);

    let created = app
        .post(
            &format!("{base}/namespaces"),
            &json!({"namespace": ["sales"], "properties": {"owner": "data-eng"}}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        created,
        json!({"namespace": ["sales"], "properties": {"owner": "data-eng"}})
    );

    let (kind, _) = expect_error(
        app.post(
            &format!("{base}/namespaces"),
            &json!({"namespace": ["sales"]}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(kind, "AlreadyExistsException");

    // Nested: the parent must exist.
    let (kind, _) = expect_error(
        app.post(
            &format!("{base}/namespaces"),
            &json!({"namespace": ["nope", "eu"]}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchNamespaceException");
    let nested = app
        .post(
            &format!("{base}/namespaces"),
            &json!({"namespace": ["sales", "eu.west"]}),
        )
        .await;
    assert_eq!(nested.status(), 200);

    // %1F separates levels in paths; a dot inside a level stays a dot.
    let loaded: Value = app
        .get(&format!("{base}/namespaces/sales%1Feu.west"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(loaded["namespace"], json!(["sales", "eu.west"]));
    assert_eq!(
        app.head(&format!("{base}/namespaces/sales%1Feu.west"))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.head(&format!("{base}/namespaces/sales%1Fus"))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.head(&format!("{base}/namespaces/sales")).await.status(),
        204
    );

    let top: Value = app
        .get(&format!("{base}/namespaces"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(top, json!({"namespaces": [["sales"]]}));
    let children: Value = app
        .get(&format!("{base}/namespaces?parent=sales"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(children["namespaces"], json!([["sales", "eu.west"]]));
    let (kind, _) = expect_error(
        app.get(&format!("{base}/namespaces?parent=ghost")).await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchNamespaceException");

    let (kind, _) = expect_error(app.delete(&format!("{base}/namespaces/sales")).await, 409).await;
    assert_eq!(kind, "NamespaceNotEmptyException");
    assert_eq!(
        app.delete(&format!("{base}/namespaces/sales%1Feu.west"))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.delete(&format!("{base}/namespaces/sales"))
            .await
            .status(),
        204
    );
    let (kind, _) = expect_error(app.get(&format!("{base}/namespaces/sales")).await, 404).await;
    assert_eq!(kind, "NoSuchNamespaceException");
    let (kind, _) = expect_error(app.delete(&format!("{base}/namespaces/sales")).await, 404).await;
    assert_eq!(kind, "NoSuchNamespaceException");
}

async fn namespace_listing_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    let mut expected = Vec::new();
    for i in 0..23 {
        let name = format!("ns-{i:02}");
        let response = app
            .post(&format!("{base}/namespaces"), &json!({"namespace": [name]}))
            .await;
        assert_eq!(response.status(), 200);
        expected.push(vec![name]);
    }
    // Without pageToken: everything, and no next-page-token key at all.
    let all: Value = app
        .get(&format!("{base}/namespaces"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["namespaces"].as_array().unwrap().len(), 23);
    assert!(all.get("next-page-token").is_none());

    // Paging: `pageToken=` starts, next-page-token continues, null ends.
    let mut seen: Vec<Vec<String>> = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page: Value = app
            .get(&format!("{base}/namespaces?pageToken={token}&pageSize=10"))
            .await
            .json()
            .await
            .unwrap();
        pages += 1;
        let items: Vec<Vec<String>> = serde_json::from_value(page["namespaces"].clone()).unwrap();
        assert!(items.len() <= 10);
        seen.extend(items);
        match page["next-page-token"].as_str() {
            Some(next) => token = next.to_string(),
            None => {
                assert!(page["next-page-token"].is_null(), "the last page says null");
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);

    // Spark's `?pageToken=` without a size pages with the default size.
    let first: Value = app
        .get(&format!("{base}/namespaces?pageToken="))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["namespaces"].as_array().unwrap().len(), 23);
    assert!(first["next-page-token"].is_null());

    for bad in [
        "pageSize=0",
        "pageSize=-1",
        "pageSize=abc",
        "pageSize=100000",
        "pageToken=%%%",
    ] {
        let (kind, _) = expect_error(app.get(&format!("{base}/namespaces?{bad}")).await, 400).await;
        assert_eq!(kind, "BadRequestException", "{bad}");
    }
}

async fn namespace_properties(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    app.post(
        &format!("{base}/namespaces"),
        &json!({"namespace": ["ns"], "properties": {"a": "1", "b": "2"}}),
    )
    .await;
    let url = format!("{base}/namespaces/ns/properties");

    let (kind, _) = expect_error(
        app.post(&url, &json!({"updates": {"a": "9"}, "removals": ["a"]}))
            .await,
        422,
    )
    .await;
    assert_eq!(kind, "UnprocessableEntityException");
    let unchanged: Value = app
        .get(&format!("{base}/namespaces/ns"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["properties"], json!({"a": "1", "b": "2"}));

    let result: Value = app
        .post(
            &url,
            &json!({"updates": {"c": "3", "a": "10"}, "removals": ["b", "zz"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        result,
        json!({"updated": ["a", "c"], "removed": ["b"], "missing": ["zz"]})
    );
    let after: Value = app
        .get(&format!("{base}/namespaces/ns"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["properties"], json!({"a": "10", "c": "3"}));

    let (kind, _) = expect_error(
        app.post(
            &format!("{base}/namespaces/ghost/properties"),
            &json!({"updates": {"x": "1"}}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchNamespaceException");
    let (kind, _) = expect_error(app.post(&url, &json!({"updates": {"": "1"}})).await, 400).await;
    assert_eq!(kind, "BadRequestException");
    let (kind, _) = expect_error(
        app.post(&url, &json!({"updates": {"k": "a\u{0}b"}})).await,
        400,
    )
    .await;
    assert_eq!(kind, "BadRequestException");
}

async fn unknown_prefixes_and_namespaces_are_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for prefix in ["not-a-uuid".to_string(), uuid::Uuid::now_v7().to_string()] {
        let (kind, _) = expect_error(
            app.get(&format!("/catalog/v1/{prefix}/namespaces")).await,
            404,
        )
        .await;
        assert_eq!(kind, "NoSuchWarehouseException");
        let (kind, _) = expect_error(
            app.post(
                &format!("/catalog/v1/{prefix}/namespaces"),
                &json!({"namespace": ["a"]}),
            )
            .await,
            404,
        )
        .await;
        assert_eq!(kind, "NoSuchWarehouseException");
    }
}
