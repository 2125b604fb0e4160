//! `/management/v1` over HTTP: info, bootstrap, projects and warehouses.

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, captured_logs, expect_error};

on_both_backends!(
    bootstrap_is_once_and_gates_management,
    projects_lifecycle,
    warehouses_lifecycle,
    storage_credentials_are_never_returned_or_logged,
    warehouse_input_is_validated,
);

async fn bootstrap_is_once_and_gates_management(backend: Backend) {
    let app = TestApp::spawn_unbootstrapped(backend).await;
    let info: Value = app.get("/management/v1/info").await.json().await.unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let expected_backend = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(info["persistence-backend"], expected_backend);
    match backend {
        // The embedded default bootstraps itself.
        Backend::Sqlite => assert_eq!(info["bootstrapped"], true),
        Backend::Postgres => {
            assert_eq!(info["bootstrapped"], false);
            let (kind, message) = expect_error(app.get("/management/v1/projects").await, 409).await;
            assert_eq!(kind, "NotBootstrappedException");
            assert!(message.contains("bootstrap"), "{message}");
            let (kind, _) = expect_error(
                app.post("/management/v1/projects", &json!({"name": "early"}))
                    .await,
                409,
            )
            .await;
            assert_eq!(kind, "NotBootstrappedException");
            let response = app.post("/management/v1/bootstrap", &Value::Null).await;
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["bootstrapped"], true);
        }
    }
    let (kind, _) = expect_error(
        app.post("/management/v1/bootstrap", &Value::Null).await,
        409,
    )
    .await;
    assert_eq!(kind, "ConflictException");
    let info: Value = app.get("/management/v1/info").await.json().await.unwrap();
    assert_eq!(info["bootstrapped"], true);
    let projects: Value = app
        .get("/management/v1/projects")
        .await
        .json()
        .await
        .unwrap();
    let projects = projects["projects"].as_array().unwrap();
    assert_eq!(
        projects.len(),
        1,
        "bootstrap creates exactly the default project"
    );
    assert_eq!(projects[0]["id"], info["default-project-id"]);
}

async fn projects_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .post("/management/v1/projects", &json!({"name": "analytics"}))
        .await;
    assert_eq!(response.status(), 201);
    let project: Value = response.json().await.unwrap();
    let id = project["id"].as_str().unwrap().to_string();
    assert_eq!(project["name"], "analytics");

    let (kind, _) = expect_error(
        app.post("/management/v1/projects", &json!({"name": "analytics"}))
            .await,
        409,
    )
    .await;
    assert_eq!(kind, "AlreadyExistsException");

    let got: Value = app
        .get(&format!("/management/v1/projects/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, project);

    let renamed = app
        .post(
            &format!("/management/v1/projects/{id}/rename"),
            &json!({"name": "bi"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let renamed: Value = renamed.json().await.unwrap();
    assert_eq!(renamed["name"], "bi");

    let list: Value = app
        .get("/management/v1/projects")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bi", "default"]);

    // A project holding a warehouse cannot be deleted.
    let root = app.db.dir.path().join("bi-wh");
    let response = app
        .post(
            "/management/v1/warehouses",
            &json!({"name": "bi-wh", "project-id": id, "storage-profile": {"type": "local", "root": root}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let warehouse: Value = response.json().await.unwrap();
    assert_eq!(warehouse["project-id"], id.as_str());
    let (kind, _) = expect_error(
        app.delete(&format!("/management/v1/projects/{id}")).await,
        409,
    )
    .await;
    assert_eq!(kind, "ProjectNotEmptyException");
    let wid = warehouse["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/management/v1/warehouses/{wid}"))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.delete(&format!("/management/v1/projects/{id}"))
            .await
            .status(),
        204
    );
    let (kind, _) =
        expect_error(app.get(&format!("/management/v1/projects/{id}")).await, 404).await;
    assert_eq!(kind, "NoSuchProjectException");

    let info: Value = app.get("/management/v1/info").await.json().await.unwrap();
    let default = info["default-project-id"].as_str().unwrap();
    let (kind, _) = expect_error(
        app.delete(&format!("/management/v1/projects/{default}"))
            .await,
        409,
    )
    .await;
    assert_eq!(kind, "ProjectNotEmptyException");
}

async fn warehouses_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_local_warehouse("sales").await;
    let root = app.db.dir.path().join("wh").join("sales");
    assert!(
        root.is_dir(),
        "creating a local warehouse prepares its root"
    );

    let list: Value = app
        .get("/management/v1/warehouses")
        .await
        .json()
        .await
        .unwrap();
    let found = list["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id.as_str())
        .expect("listed");
    assert_eq!(found["name"], "sales");
    assert_eq!(found["storage-profile"]["type"], "local");
    assert_eq!(found["storage-profile"]["root"], root.to_str().unwrap());

    let (kind, _) = expect_error(
        app.post(
            "/management/v1/warehouses",
            &json!({"name": "sales", "storage-profile": {"type": "local", "root": root}}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(kind, "AlreadyExistsException");

    let renamed = app
        .post(
            &format!("/management/v1/warehouses/{id}/rename"),
            &json!({"name": "revenue"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    assert_eq!(app.prefix("revenue").await, id);
    let (kind, _) = expect_error(app.get("/catalog/v1/config?warehouse=sales").await, 404).await;
    assert_eq!(kind, "NoSuchWarehouseException");

    // The location under existing tables cannot move.
    let (kind, message) = expect_error(
        app.put(
            &format!("/management/v1/warehouses/{id}/storage"),
            &json!({"storage-profile": {"type": "local", "root": app.db.dir.path().join("elsewhere")}}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(kind, "BadRequestException");
    assert!(message.contains("cannot change"), "{message}");
    let same = app
        .put(
            &format!("/management/v1/warehouses/{id}/storage"),
            &json!({"storage-profile": {"type": "local", "root": root}}),
        )
        .await;
    assert_eq!(same.status(), 200);

    // Not empty → 409, and nothing is deleted.
    let prefix = app.prefix("revenue").await;
    let created = app
        .post(
            &format!("/catalog/v1/{prefix}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let (kind, _) = expect_error(
        app.delete(&format!("/management/v1/warehouses/{id}")).await,
        409,
    )
    .await;
    assert_eq!(kind, "WarehouseNotEmptyException");
    assert_eq!(
        app.get(&format!("/management/v1/warehouses/{id}"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.delete(&format!("/catalog/v1/{prefix}/namespaces/ns"))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.delete(&format!("/management/v1/warehouses/{id}"))
            .await
            .status(),
        204
    );
    let (kind, _) = expect_error(
        app.get(&format!("/management/v1/warehouses/{id}")).await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchWarehouseException");
    let (kind, _) = expect_error(
        app.delete(&format!("/management/v1/warehouses/{id}")).await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchWarehouseException");
}

async fn storage_credentials_are_never_returned_or_logged(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The S3 store (probed at creation): Floe's own gateway, serving a local warehouse `lake`,
    // with an access key it issued.
    let root = app.db.dir.path().join("warehouses/lake");
    let lake: Value = app
        .post(
            "/management/v1/warehouses",
            &json!({"name": "lake",
                    "storage-profile": {"type": "local", "root": root, "s3-gateway": true}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let key: Value = app
        .post(
            &format!(
                "/management/v1/warehouses/{}/access-keys",
                lake["id"].as_str().unwrap()
            ),
            &Value::Null,
        )
        .await
        .json()
        .await
        .unwrap();
    let key_id = key["access-key-id"].as_str().unwrap().to_string();
    let secret = key["secret-access-key"].as_str().unwrap().to_string();
    let rotated = format!("never-show-{}", uuid::Uuid::new_v4().simple());
    let response = app
        .post(
            "/management/v1/warehouses",
            &json!({
                "name": "s3-lake",
                "storage-profile": {"type": "s3", "bucket": "lake", "region": "us-east-1",
                                    "endpoint": format!("http://{}", app.s3_addr.unwrap()),
                                    "path-style-access": true},
                "storage-credential": {"type": "s3-access-key", "access-key-id": key_id,
                                       "secret-access-key": secret},
            }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created = response.text().await.unwrap();
    assert!(!created.contains(&secret));
    assert!(!created.contains(&key_id));
    let warehouse: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(warehouse["has-storage-credential"], true);
    let id = warehouse["id"].as_str().unwrap();

    let rotated_response = app
        .put(
            &format!("/management/v1/warehouses/{id}/storage-credential"),
            &json!({"storage-credential": {"type": "s3-access-key", "access-key-id": "AKIDFLOE2",
                                           "secret-access-key": rotated}}),
        )
        .await;
    assert_eq!(rotated_response.status(), 200);
    assert!(!rotated_response.text().await.unwrap().contains(&rotated));

    for path in [
        format!("/management/v1/warehouses/{id}"),
        "/management/v1/warehouses".into(),
    ] {
        let text = app.get(&path).await.text().await.unwrap();
        assert!(
            !text.contains(&secret) && !text.contains(&rotated),
            "{path}: {text}"
        );
    }

    // The stored credential is the rotated one, and it is readable by the server.
    let warehouse = app
        .services()
        .get_warehouse(
            &floe::service::RequestContext::system(),
            id.parse().unwrap(),
        )
        .await
        .unwrap();
    let credential = app
        .services()
        .warehouse_credential(&warehouse)
        .await
        .unwrap()
        .unwrap();
    assert!(format!("{:?}", credential).contains("redacted"));
    let json = serde_json::to_string(&credential).unwrap();
    assert!(json.contains(&rotated));

    // A credential that does not fit the profile is refused.
    let (kind, _) = expect_error(
        app.post(
            "/management/v1/warehouses",
            &json!({
                "name": "local-with-key",
                "storage-profile": {"type": "local", "root": app.db.dir.path().join("x")},
                "storage-credential": {"type": "s3-access-key", "access-key-id": "a", "secret-access-key": secret},
            }),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(kind, "BadRequestException");

    // Removing it works; then no credential is reported.
    let removed: Value = app
        .put(
            &format!("/management/v1/warehouses/{id}/storage-credential"),
            &json!({"storage-credential": null}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(removed["has-storage-credential"], false);

    let logs = captured_logs();
    assert!(!logs.is_empty(), "log capture is working");
    assert!(!logs.contains(&secret), "a credential reached the log");
    assert!(!logs.contains(&rotated), "a credential reached the log");
}

async fn warehouse_input_is_validated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let root = app.db.dir.path().join("v");
    let cases = [
        json!({"name": "bad@name", "storage-profile": {"type": "local", "root": root}}),
        json!({"name": "bad/name", "storage-profile": {"type": "local", "root": root}}),
        json!({"name": "..", "storage-profile": {"type": "local", "root": root}}),
        json!({"name": "ok-name", "storage-profile": {"type": "local", "root": "relative/path"}}),
        json!({"name": "ok-name", "storage-profile": {"type": "local", "root": "/tmp/../etc"}}),
        json!({"name": "ok-name", "storage-profile": {"type": "ftp", "root": "/x"}}),
        json!({"name": "ok-name", "storage-profile": {"type": "s3", "bucket": "B!", "region": "us-east-1"}}),
        json!({"name": "ok-name", "storage-profile": {"type": "s3", "bucket": "lake", "region": "us-east-1",
               "sts-enabled": true}}),
        json!({"name": "ok-name", "storage-profile": {"type": "local", "root": root}, "surprise": 1}),
        json!({"name": "ok-name", "project-id": "not-a-uuid", "storage-profile": {"type": "local", "root": root}}),
    ];
    for case in cases {
        let (kind, _) = expect_error(app.post("/management/v1/warehouses", &case).await, 400).await;
        assert_eq!(kind, "BadRequestException", "{case}");
    }
    let (kind, _) = expect_error(
        app.post(
            "/management/v1/warehouses",
            &json!({"name": "ok-name", "project-id": uuid::Uuid::new_v4(),
                    "storage-profile": {"type": "local", "root": root}}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(kind, "NoSuchProjectException");
    // A root that cannot be a folder is refused with the reason.
    let file = app.db.dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let (_, message) = expect_error(
        app.post(
            "/management/v1/warehouses",
            &json!({"name": "ok-name", "storage-profile": {"type": "local", "root": file}}),
        )
        .await,
        400,
    )
    .await;
    assert!(message.contains("not usable"), "{message}");
    let list: Value = app
        .get("/management/v1/warehouses")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        list["warehouses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["name"] != "ok-name"),
        "nothing was written"
    );
}
