//! Dropping things, on both backends: delete profiles, soft deletes and undrop (branch-aware),
//! expiry, protection with `force`, and the task queue that carries purges and expiries (its
//! API, retries with backoff, dead workers' tasks taken up again, claims never shared).

use std::sync::Arc;
use std::time::{Duration, Instant};

use floe::model::WarehouseId;
use floe::model::lifecycle::{Heartbeat, NewTask, TaskOutcome, TaskStatus};
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, TestDb, expect_error, purge_outcomes};

on_both_backends!(
    soft_drop_lists_and_undrops_with_data_intact,
    soft_deletes_expire_and_purge_when_asked,
    soft_drops_on_a_branch_are_undone_there_only,
    protected_objects_need_force,
    recursive_drops_take_everything_in_one_commit_and_undrop_brings_namespaces_back,
    maintenance_expires_snapshots_by_policy,
    hard_drop_purges_through_a_task,
    failing_tasks_back_off_stop_and_can_be_retried,
    dead_workers_tasks_are_taken_up_again,
    concurrent_claimers_never_share_a_task,
);

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": false, "type": "long"}
    ]})
}

struct Lake {
    id: String,
    base: String,
}

impl Lake {
    async fn new(app: &TestApp, name: &str) -> Lake {
        let id = app.create_local_warehouse(name).await;
        let base = format!("/catalog/v1/{}", app.prefix(name).await);
        Lake { id, base }
    }

    fn manage(&self, path: &str) -> String {
        format!("/management/v1/warehouses/{}{path}", self.id)
    }

    async fn namespace(&self, app: &TestApp, ns: &str) {
        let r = app
            .post(
                &format!("{}/namespaces", self.base),
                &json!({"namespace": [ns]}),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// Creates a table and puts a data file in its folder; returns its metadata.
    async fn table(&self, app: &TestApp, ns: &str, name: &str) -> Value {
        let r = app
            .post(
                &format!("{}/namespaces/{ns}/tables", self.base),
                &json!({"name": name, "schema": schema()}),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let body: Value = r.json().await.unwrap();
        let folder = local_path(body["metadata"]["location"].as_str().unwrap());
        std::fs::create_dir_all(folder.join("data")).unwrap();
        std::fs::write(folder.join("data/part-0.parquet"), b"rows").unwrap();
        body
    }

    async fn set_profile(&self, app: &TestApp, profile: Value) {
        let r = app.put(&self.manage("/delete-profile"), &profile).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let got: Value = app
            .get(&self.manage("/delete-profile"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(got, profile);
    }

    async fn deleted(&self, app: &TestApp, query: &str) -> Vec<Value> {
        let r = app
            .get(&self.manage(&format!("/deleted-tabulars{query}")))
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let body: Value = r.json().await.unwrap();
        body["tabulars"].as_array().unwrap().clone()
    }

    async fn tasks(&self, app: &TestApp, query: &str) -> Vec<Value> {
        let r = app.get(&self.manage(&format!("/tasks{query}"))).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let body: Value = r.json().await.unwrap();
        body["tasks"].as_array().unwrap().clone()
    }

    async fn task(&self, app: &TestApp, id: &str) -> Value {
        let r = app.get(&self.manage(&format!("/tasks/{id}"))).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// Waits (up to 20 s) until the task's status is `status`.
    async fn task_reaches(&self, app: &TestApp, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let task = self.task(app, id).await;
            if task["status"] == status {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} never became {status}: {task:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn local_path(location: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

/// A Floe whose workers look for work often and give up quickly, so tests do not wait.
async fn quick_app(backend: Backend) -> TestApp {
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(db, |c| {
        c.tasks.poll_interval_ms = 50;
        c.tasks.heartbeat_interval_ms = 50;
        c.tasks.stale_after_ms = 2000;
        c.tasks.backoff_base_ms = 100;
        c.tasks.backoff_max_ms = 200;
        c.tasks.max_attempts = 2;
    })
    .await;
    if backend == Backend::Postgres {
        let r = app.post("/management/v1/bootstrap", &Value::Null).await;
        assert_eq!(r.status(), 200);
    }
    app
}

async fn soft_drop_lists_and_undrops_with_data_intact(backend: Backend) {
    let app = quick_app(backend).await;
    let lake = Lake::new(&app, "soft").await;
    // Hard by default.
    let profile: Value = app
        .get(&lake.manage("/delete-profile"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile, json!({"type": "hard"}));
    for bad in [
        json!({"type": "soft"}),
        json!({"type": "soft", "expiration-seconds": 0}),
        json!({"type": "gentle"}),
        json!({"type": "soft", "expiration-seconds": 1, "extra": 1}),
    ] {
        expect_error(app.put(&lake.manage("/delete-profile"), &bad).await, 400).await;
    }
    lake.set_profile(&app, json!({"type": "soft", "expiration-seconds": 3600}))
        .await;
    lake.namespace(&app, "ns").await;
    let created = lake.table(&app, "ns", "t").await;
    lake.table(&app, "ns", "other").await;
    let metadata_location = created["metadata-location"].as_str().unwrap().to_string();
    let folder = local_path(created["metadata"]["location"].as_str().unwrap());

    let r = app
        .delete(&format!(
            "{}/namespaces/ns/tables/t?purgeRequested=true",
            lake.base
        ))
        .await;
    assert_eq!(r.status(), 204);
    expect_error(
        app.get(&format!("{}/namespaces/ns/tables/t", lake.base))
            .await,
        404,
    )
    .await;
    assert!(folder.join("data/part-0.parquet").exists(), "files kept");

    let listed = lake.deleted(&app, "").await;
    assert_eq!(listed.len(), 1);
    let entry = &listed[0];
    assert_eq!(entry["name"], "t");
    assert_eq!(entry["namespace"], json!(["ns"]));
    assert_eq!(entry["type"], "table");
    assert_eq!(entry["branch"], "main");
    assert_eq!(entry["purge"], true);
    assert_eq!(entry["metadata-location"], metadata_location.as_str());
    assert!(entry["expires-at"].as_i64().unwrap() > entry["deleted-at"].as_i64().unwrap());
    assert_eq!(
        lake.deleted(&app, "?name=T").await.len(),
        1,
        "name filter, any case"
    );
    assert_eq!(lake.deleted(&app, "?name=zz").await.len(), 0);
    assert_eq!(lake.deleted(&app, "?namespace=ns").await.len(), 1);
    assert_eq!(lake.deleted(&app, "?namespace=elsewhere").await.len(), 0);
    let id = entry["id"].as_str().unwrap().to_string();
    // Its expiry is a scheduled task.
    let expiry = lake.tasks(&app, &format!("?target=deleted:{id}")).await;
    assert_eq!(expiry.len(), 1);
    assert_eq!(expiry[0]["queue"], "expiry");
    assert_eq!(expiry[0]["status"], "scheduled");
    assert_eq!(entry["task-id"], expiry[0]["id"]);

    // The name is free again meanwhile: a new table takes it, and undrop then needs a new name.
    lake.table(&app, "ns", "t").await;
    let undrop = |rename: Option<Value>| {
        let mut target = json!({"id": id});
        if let Some(rename) = rename {
            target["rename-to"] = rename;
        }
        json!({"tabulars": [target]})
    };
    let (kind, _) = expect_error(
        app.post(&lake.manage("/deleted-tabulars/undrop"), &undrop(None))
            .await,
        409,
    )
    .await;
    assert_eq!(kind, "AlreadyExistsException");
    let r = app
        .post(
            &lake.manage("/deleted-tabulars/undrop"),
            &undrop(Some(json!({"namespace": ["ns"], "name": "t_restored"}))),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let restored: Value = r.json().await.unwrap();
    assert_eq!(
        restored["restored"],
        json!([{"id": id, "namespace": ["ns"], "name": "t_restored", "branch": "main"}])
    );
    let loaded: Value = app
        .get(&format!("{}/namespaces/ns/tables/t_restored", lake.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(loaded["metadata-location"], metadata_location.as_str());
    assert_eq!(
        loaded["metadata"]["table-uuid"],
        created["metadata"]["table-uuid"]
    );
    assert!(folder.join("data/part-0.parquet").exists());
    assert!(lake.deleted(&app, "").await.is_empty());
    let expiry = lake.task(&app, expiry[0]["id"].as_str().unwrap()).await;
    assert_eq!(
        expiry["status"], "cancelled",
        "an undrop cancels the expiry"
    );
    // A second undrop of the same entry finds nothing.
    expect_error(
        app.post(&lake.manage("/deleted-tabulars/undrop"), &undrop(None))
            .await,
        404,
    )
    .await;
    // The restored table takes commits like any other.
    let r = app
        .post(
            &format!("{}/namespaces/ns/tables/t_restored", lake.base),
            &json!({"requirements": [], "updates": [
                {"action": "set-properties", "updates": {"after": "undrop"}}
            ]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Views are soft-deleted too.
    let r = app
        .post(
            &format!("{}/namespaces/ns/views", lake.base),
            &json!({"name": "v", "schema": schema(), "view-version": {
                "version-id": 1, "schema-id": 0, "timestamp-ms": 1,
                "summary": {"engine-name": "test"}, "default-namespace": ["ns"],
                "representations": [{"type": "sql", "sql": "select 1", "dialect": "spark"}]
            }}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        app.delete(&format!("{}/namespaces/ns/views/v", lake.base))
            .await
            .status(),
        204
    );
    let listed = lake.deleted(&app, "").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["type"], "view");
    let r = app
        .post(
            &lake.manage("/deleted-tabulars/undrop"),
            &json!({"tabulars": [{"id": listed[0]["id"]}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.get(&format!("{}/namespaces/ns/views/v", lake.base))
            .await
            .status(),
        200
    );
    // Bad requests: nothing, too many, a malformed id.
    expect_error(
        app.post(
            &lake.manage("/deleted-tabulars/undrop"),
            &json!({"tabulars": []}),
        )
        .await,
        400,
    )
    .await;
    expect_error(
        app.post(
            &lake.manage("/deleted-tabulars/undrop"),
            &json!({"tabulars": [{"id": "nope"}]}),
        )
        .await,
        400,
    )
    .await;
}

async fn soft_deletes_expire_and_purge_when_asked(backend: Backend) {
    let app = quick_app(backend).await;
    let lake = Lake::new(&app, "expiring").await;
    lake.set_profile(&app, json!({"type": "soft", "expiration-seconds": 1}))
        .await;
    lake.namespace(&app, "ns").await;
    let purged = lake.table(&app, "ns", "purged").await;
    let kept = lake.table(&app, "ns", "kept").await;
    let neighbour = lake.table(&app, "ns", "neighbour").await;
    let folder = |t: &Value| local_path(t["metadata"]["location"].as_str().unwrap());
    for (name, purge) in [("purged", true), ("kept", false)] {
        let r = app
            .delete(&format!(
                "{}/namespaces/ns/tables/{name}?purgeRequested={purge}",
                lake.base
            ))
            .await;
        assert_eq!(r.status(), 204);
    }
    let uuid = purged["metadata"]["table-uuid"].as_str().unwrap();
    assert_eq!(
        purge_outcomes(uuid, 2).await,
        ["kept: soft-deleted", "deleted"]
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lake.deleted(&app, "").await.is_empty() {
        assert!(Instant::now() < deadline, "soft deletes never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!folder(&purged).exists(), "expired with purge: files gone");
    assert!(
        folder(&kept).join("data/part-0.parquet").exists(),
        "no purge asked: kept"
    );
    assert!(folder(&neighbour).join("data/part-0.parquet").exists());
    let purges = lake.tasks(&app, "?queue=purge").await;
    assert_eq!(purges.len(), 1);
    let purge = lake
        .task_reaches(&app, purges[0]["id"].as_str().unwrap(), "succeeded")
        .await;
    assert_eq!(purge["target"], format!("table:{uuid}"));
    assert_eq!(
        purge["progress"]["deleted"], 2,
        "metadata file and data file"
    );
    let log = purge["attempt-log"].as_array().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["outcome"], "succeeded");
    assert_eq!(
        lake.tasks(&app, "?queue=expiry&status=succeeded")
            .await
            .len(),
        2
    );
    expect_error(app.get(&lake.manage("/tasks?status=sleeping")).await, 400).await;
}

async fn soft_drops_on_a_branch_are_undone_there_only(backend: Backend) {
    let app = quick_app(backend).await;
    let lake = Lake::new(&app, "branchy").await;
    lake.set_profile(&app, json!({"type": "soft", "expiration-seconds": 3600}))
        .await;
    lake.namespace(&app, "ns").await;
    lake.table(&app, "ns", "t").await;
    let r = app
        .post(&lake.manage("/branches"), &json!({"name": "dev"}))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let dev = format!("/catalog/v1/{}@dev", lake.id);
    assert_eq!(
        app.delete(&format!("{dev}/namespaces/ns/tables/t"))
            .await
            .status(),
        204
    );
    expect_error(app.get(&format!("{dev}/namespaces/ns/tables/t")).await, 404).await;
    assert_eq!(
        app.get(&format!("{}/namespaces/ns/tables/t", lake.base))
            .await
            .status(),
        200,
        "main still has it"
    );
    let listed = lake.deleted(&app, "").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["branch"], "dev");
    // Meanwhile main drops its own: a second entry, of main.
    assert_eq!(
        app.delete(&format!("{}/namespaces/ns/tables/t", lake.base))
            .await
            .status(),
        204
    );
    let listed = lake.deleted(&app, "").await;
    assert_eq!(listed.len(), 2);
    let on_dev = listed.iter().find(|d| d["branch"] == "dev").unwrap();
    let r = app
        .post(
            &lake.manage("/deleted-tabulars/undrop"),
            &json!({"tabulars": [{"id": on_dev["id"]}]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(
        app.get(&format!("{dev}/namespaces/ns/tables/t"))
            .await
            .status(),
        200,
        "back on dev"
    );
    expect_error(
        app.get(&format!("{}/namespaces/ns/tables/t", lake.base))
            .await,
        404,
    )
    .await;
    let listed = lake.deleted(&app, "").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["branch"], "main");
}

async fn protected_objects_need_force(backend: Backend) {
    let app = quick_app(backend).await;
    let lake = Lake::new(&app, "guarded").await;
    lake.namespace(&app, "ns").await;
    lake.table(&app, "ns", "t").await;
    let protect = |path: String, on: bool| {
        let app = &app;
        async move {
            let r = app.put(&path, &json!({"protected": on})).await;
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            let got: Value = app.get(&path).await.json().await.unwrap();
            assert_eq!(got, json!({"protected": on}));
        }
    };
    let table_path = lake.manage("/namespaces/ns/tables/t/protection");
    let got: Value = app.get(&table_path).await.json().await.unwrap();
    assert_eq!(got, json!({"protected": false}));
    protect(table_path.clone(), true).await;
    let (kind, message) = expect_error(
        app.delete(&format!(
            "{}/namespaces/ns/tables/t?purgeRequested=true",
            lake.base
        ))
        .await,
        409,
    )
    .await;
    assert!(message.contains("protected"), "{kind}: {message}");
    assert_eq!(
        app.get(&format!("{}/namespaces/ns/tables/t", lake.base))
            .await
            .status(),
        200,
        "nothing dropped"
    );
    // Protection follows the table across a rename (it is the table's UUID's).
    let r = app
        .post(
            &format!("{}/tables/rename", lake.base),
            &json!({"source": {"namespace": ["ns"], "name": "t"},
                    "destination": {"namespace": ["ns"], "name": "u"}}),
        )
        .await;
    assert_eq!(r.status(), 204);
    expect_error(
        app.delete(&format!("{}/namespaces/ns/tables/u", lake.base))
            .await,
        409,
    )
    .await;
    expect_error(
        app.delete(&format!("{}/namespaces/ns/tables/u?force=maybe", lake.base))
            .await,
        400,
    )
    .await;
    assert_eq!(
        app.delete(&format!("{}/namespaces/ns/tables/u?force=true", lake.base))
            .await
            .status(),
        204
    );
    // Namespaces.
    let ns_path = lake.manage("/namespaces/ns/protection");
    protect(ns_path.clone(), true).await;
    expect_error(
        app.delete(&format!("{}/namespaces/ns", lake.base)).await,
        409,
    )
    .await;
    protect(ns_path.clone(), false).await;
    assert_eq!(
        app.delete(&format!("{}/namespaces/ns", lake.base))
            .await
            .status(),
        204
    );
    expect_error(app.get(&ns_path).await, 404).await;
    expect_error(
        app.get(&lake.manage("/namespaces/ns/tables/gone/protection"))
            .await,
        404,
    )
    .await;
    // A table that lives only on a branch is found there (`?ref=`), and its protection holds
    // there; an unknown ref is 404.
    let r = app
        .post(&lake.manage("/branches"), &json!({"name": "dev"}))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let dev = format!("/catalog/v1/{}@dev", lake.id);
    assert_eq!(
        app.post(&format!("{dev}/namespaces"), &json!({"namespace": ["b"]}))
            .await
            .status(),
        200
    );
    let r = app
        .post(
            &format!("{dev}/namespaces/b/tables"),
            &json!({"name": "only", "schema": {"type": "struct", "schema-id": 0, "fields": []}}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let only_path = lake.manage("/namespaces/b/tables/only/protection");
    expect_error(app.get(&only_path).await, 404).await;
    expect_error(app.get(&format!("{only_path}?ref=nope")).await, 404).await;
    protect(format!("{only_path}?ref=dev"), true).await;
    expect_error(
        app.delete(&format!("{dev}/namespaces/b/tables/only")).await,
        409,
    )
    .await;
    assert_eq!(
        app.delete(&format!("{dev}/namespaces/b/tables/only?force=true"))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.delete(&format!("{dev}/namespaces/b")).await.status(),
        204
    );
    assert_eq!(
        app.delete(&lake.manage("/branches/dev")).await.status(),
        204
    );
    // The warehouse.
    let wh_path = lake.manage("/protection");
    protect(wh_path.clone(), true).await;
    expect_error(app.delete(&lake.manage("")).await, 409).await;
    assert_eq!(app.delete(&lake.manage("?force=true")).await.status(), 204);
    expect_error(app.get(&wh_path).await, 404).await;
}

async fn hard_drop_purges_through_a_task(backend: Backend) {
    let app = quick_app(backend).await;
    let lake = Lake::new(&app, "hard").await;
    lake.namespace(&app, "ns").await;
    let t = lake.table(&app, "ns", "t").await;
    let n = lake.table(&app, "ns", "n").await;
    let folder = |t: &Value| local_path(t["metadata"]["location"].as_str().unwrap());
    // Many files, so that the purge records progress in batches.
    for i in 0..250 {
        std::fs::write(folder(&t).join(format!("data/extra-{i}.parquet")), b"x").unwrap();
    }
    assert_eq!(
        app.delete(&format!(
            "{}/namespaces/ns/tables/t?purgeRequested=true",
            lake.base
        ))
        .await
        .status(),
        204
    );
    let uuid = t["metadata"]["table-uuid"].as_str().unwrap();
    assert_eq!(purge_outcomes(uuid, 1).await, ["deleted"]);
    assert!(!folder(&t).exists());
    assert!(
        folder(&n).join("data/part-0.parquet").exists(),
        "the neighbour keeps its files"
    );
    let tasks = lake.tasks(&app, &format!("?target=table:{uuid}")).await;
    assert_eq!(tasks.len(), 1);
    let task = lake
        .task_reaches(&app, tasks[0]["id"].as_str().unwrap(), "succeeded")
        .await;
    assert_eq!(task["queue"], "purge");
    assert_eq!(task["progress"]["deleted"], 252);
    assert_eq!(task["payload"]["table"], "ns.t");
    // A drop without purge leaves no task.
    assert_eq!(
        app.delete(&format!("{}/namespaces/ns/tables/n", lake.base))
            .await
            .status(),
        204
    );
    assert_eq!(lake.tasks(&app, "").await.len(), 1);
    // Finished tasks take no more control.
    let id = task["id"].as_str().unwrap();
    for control in ["cancel", "run-now"] {
        expect_error(
            app.post(
                &lake.manage(&format!("/tasks/{id}/{control}")),
                &Value::Null,
            )
            .await,
            409,
        )
        .await;
    }
    expect_error(
        app.get(&lake.manage(&format!("/tasks/{}", uuid::Uuid::now_v7())))
            .await,
        404,
    )
    .await;
}

/// A task the purge worker cannot run (it names no table).
fn broken_purge(warehouse: &str, at: i64) -> NewTask {
    NewTask {
        id: uuid::Uuid::now_v7(),
        warehouse_id: WarehouseId(warehouse.parse().unwrap()),
        queue: "purge",
        target: "table:broken".into(),
        payload: json!({}),
        scheduled_at: at,
        max_attempts: 2,
    }
}

async fn bare_warehouse(store: &floe::store::Persistence, db: &TestDb) -> WarehouseId {
    let info = crate::store_suite::bootstrapped(store).await;
    let (warehouse, _) =
        crate::store_suite::warehouse_in(store, db, info.default_project_id, "tasks").await;
    warehouse.id
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn failing_tasks_back_off_stop_and_can_be_retried(backend: Backend) {
    // Tasks are put into the queue through the store while no server runs (SQLite's file is
    // one process's), then a server's workers take them.
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    if backend == Backend::Postgres {
        let r = app.post("/management/v1/bootstrap", &Value::Null).await;
        assert_eq!(r.status(), 200);
    }
    let lake = Lake::new(&app, "failing").await;
    app.shutdown().await.unwrap();
    let broken = broken_purge(&lake.id, now_ms());
    let later = broken_purge(&lake.id, now_ms() + 3_600_000);
    let much_later = broken_purge(&lake.id, now_ms() + 7_200_000);
    {
        let store = db.persistence().await;
        store
            .tasks
            .enqueue_tasks(&[broken.clone(), later.clone(), much_later.clone()])
            .await
            .unwrap();
    }
    let app = TestApp::spawn_on(db.clone(), |c| {
        c.tasks.poll_interval_ms = 50;
        c.tasks.heartbeat_interval_ms = 50;
        c.tasks.stale_after_ms = 2000;
        c.tasks.backoff_base_ms = 100;
        c.tasks.backoff_max_ms = 200;
    })
    .await;
    let id = broken.id.to_string();
    let failed = lake.task_reaches(&app, &id, "failed").await;
    assert_eq!(failed["attempts"], 2);
    assert_eq!(failed["failures"], 2);
    assert!(
        failed["last-error"]
            .as_str()
            .unwrap()
            .contains("no table UUID"),
        "{failed:#}"
    );
    let log = failed["attempt-log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|a| a["outcome"] == "failed"));
    // The second attempt waited for the backoff after the first.
    assert!(
        log[1]["started-at"].as_i64().unwrap() >= log[0]["finished-at"].as_i64().unwrap() + 100,
        "{log:#?}"
    );
    // Retry: counted afresh, fails twice more, visibly.
    let r = app
        .post(&lake.manage(&format!("/tasks/{id}/retry")), &Value::Null)
        .await;
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let task = lake.task(&app, &id).await;
        if task["status"] == "failed" && task["attempts"] == 4 {
            assert_eq!(task["failures"], 2);
            break;
        }
        assert!(Instant::now() < deadline, "{task:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Filters.
    assert_eq!(lake.tasks(&app, "?status=failed").await.len(), 1);
    assert_eq!(lake.tasks(&app, "?status=scheduled").await.len(), 2);
    assert_eq!(lake.tasks(&app, "?queue=expiry").await.len(), 0);
    let page: Value = app
        .get(&lake.manage("/tasks?page-size=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1);
    let token = page["next-page-token"].as_str().unwrap();
    let rest: Value = app
        .get(&lake.manage(&format!("/tasks?page-size=1&page-token={token}")))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["tasks"].as_array().unwrap().len(), 1);
    assert_ne!(rest["tasks"][0]["id"], page["tasks"][0]["id"]);
    // Cancel a scheduled one; run-now needs it scheduled; retry brings it back (due now).
    let later_id = later.id.to_string();
    let r = app
        .post(
            &lake.manage(&format!("/tasks/{later_id}/cancel")),
            &Value::Null,
        )
        .await;
    assert_eq!(r.status(), 200);
    let cancelled: Value = r.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    expect_error(
        app.post(
            &lake.manage(&format!("/tasks/{later_id}/run-now")),
            &Value::Null,
        )
        .await,
        409,
    )
    .await;
    let r = app
        .post(
            &lake.manage(&format!("/tasks/{later_id}/retry")),
            &Value::Null,
        )
        .await;
    assert_eq!(r.status(), 200);
    lake.task_reaches(&app, &later_id, "failed").await;
    // Run-now makes a task due in two hours run at once.
    let much_later_id = much_later.id.to_string();
    let r = app
        .post(
            &lake.manage(&format!("/tasks/{much_later_id}/run-now")),
            &Value::Null,
        )
        .await;
    assert_eq!(r.status(), 200);
    lake.task_reaches(&app, &much_later_id, "failed").await;
    // Another warehouse's task is not found through this one.
    let other = Lake::new(&app, "elsewhere").await;
    expect_error(app.get(&other.manage(&format!("/tasks/{id}"))).await, 404).await;
}

async fn dead_workers_tasks_are_taken_up_again(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.persistence().await;
    // A warehouse to hang tasks on; no server runs, so no worker competes.
    let app = bare_warehouse(&store, &db).await.to_string();
    let mut task = broken_purge(&app, now_ms());
    task.max_attempts = 2;
    store
        .tasks
        .enqueue_tasks(std::slice::from_ref(&task))
        .await
        .unwrap();
    let now = now_ms();
    let a = store
        .tasks
        .claim_task("purge", "worker-a", now, now - 1000)
        .await
        .unwrap()
        .expect("due");
    assert_eq!(a.attempt, 1);
    assert_eq!(a.task.status, TaskStatus::Running);
    // While A heartbeats, nobody else takes it.
    assert!(
        store
            .tasks
            .claim_task("purge", "worker-b", now + 500, now - 500)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .tasks
            .heartbeat_task(&a, now + 600, None)
            .await
            .unwrap(),
        Heartbeat::Held
    );
    // A stops heartbeating: once its heartbeat is older than the stale limit, B takes over.
    let later = now + 10_000;
    let b = store
        .tasks
        .claim_task("purge", "worker-b", later, later - 5000)
        .await
        .unwrap()
        .expect("stale task taken over");
    assert_eq!(b.task.id, task.id);
    assert_eq!(b.attempt, 2);
    assert_eq!(b.task.failures, 1, "the abandoned attempt counts");
    // A learns it lost the task and can write nothing.
    assert_eq!(
        store
            .tasks
            .heartbeat_task(&a, later + 1, None)
            .await
            .unwrap(),
        Heartbeat::Lost
    );
    assert!(
        !store
            .tasks
            .finish_task(&a, &TaskOutcome::Succeeded(None), later + 2, 0, None)
            .await
            .unwrap()
    );
    // B dies too: no attempts are left, so the task fails, visibly.
    let much_later = later + 60_000;
    assert!(
        store
            .tasks
            .claim_task("purge", "worker-c", much_later, much_later - 5000)
            .await
            .unwrap()
            .is_none()
    );
    let (failed, attempts) = store
        .tasks
        .get_task(task.warehouse_id, task.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    assert!(failed.last_error.unwrap().contains("stopped heartbeating"));
    let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["abandoned", "abandoned"]);
    assert_eq!(attempts[0].worker, "worker-a");
    assert_eq!(attempts[1].worker, "worker-b");
    // Cancel asked of a running task reaches its worker at its next heartbeat.
    let task = broken_purge(&app, now_ms());
    store
        .tasks
        .enqueue_tasks(std::slice::from_ref(&task))
        .await
        .unwrap();
    let now = now_ms();
    let lease = store
        .tasks
        .claim_task("purge", "worker-d", now, now - 1000)
        .await
        .unwrap()
        .unwrap();
    let cancelling = store
        .tasks
        .cancel_task(task.warehouse_id, task.id, now)
        .await
        .unwrap();
    assert!(cancelling.cancel_requested);
    assert_eq!(
        store
            .tasks
            .heartbeat_task(&lease, now + 1, None)
            .await
            .unwrap(),
        Heartbeat::CancelRequested
    );
    assert!(
        store
            .tasks
            .finish_task(&lease, &TaskOutcome::Cancelled, now + 2, 0, None)
            .await
            .unwrap()
    );
    let (done, _) = store
        .tasks
        .get_task(task.warehouse_id, task.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, TaskStatus::Cancelled);
}

async fn concurrent_claimers_never_share_a_task(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.persistence().await;
    let warehouse = bare_warehouse(&store, &db).await;
    let tasks: Vec<NewTask> = (0..120)
        .map(|_| broken_purge(&warehouse.to_string(), now_ms()))
        .collect();
    store.tasks.enqueue_tasks(&tasks).await.unwrap();
    // Several claimers at once (on PostgreSQL, each claim locks with SKIP LOCKED): every task is
    // claimed exactly once.
    let mut handles = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let now = now_ms();
                let claimed = store
                    .tasks
                    .claim_task("purge", &format!("w{w}"), now, now - 600_000)
                    .await
                    .unwrap();
                let Some(lease) = claimed else { break };
                assert!(
                    store
                        .tasks
                        .finish_task(&lease, &TaskOutcome::Succeeded(None), now_ms(), 0, None)
                        .await
                        .unwrap()
                );
                mine.push(lease.task.id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for handle in handles {
        claimed.extend(handle.await.unwrap());
    }
    claimed.sort();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!(before, claimed.len(), "a task was claimed twice");
    assert_eq!(claimed.len(), tasks.len(), "every task was claimed");
}

async fn recursive_drops_take_everything_in_one_commit_and_undrop_brings_namespaces_back(
    backend: Backend,
) {
    let app = quick_app(backend).await;
    let lake = Lake::new(&app, "deep").await;
    let r = app
        .post(
            &format!("{}/namespaces", lake.base),
            &json!({"namespace": ["a"], "properties": {"owner": "ann"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post(
            &format!("{}/namespaces", lake.base),
            &json!({"namespace": ["a", "b"], "properties": {"tier": "gold"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    lake.namespace(&app, "other").await;
    let t1 = lake.table(&app, "a", "t1").await;
    let t2 = lake.table(&app, "a%1Fb", "t2").await;
    let untouched = lake.table(&app, "other", "t3").await;
    let folder = |t: &Value| local_path(t["metadata"]["location"].as_str().unwrap());

    // Not empty, not recursive: refused; purge without recursive: refused.
    expect_error(
        app.delete(&format!("{}/namespaces/a", lake.base)).await,
        409,
    )
    .await;
    expect_error(
        app.delete(&format!("{}/namespaces/a?purge=true", lake.base))
            .await,
        400,
    )
    .await;
    // Something protected inside: refused without force, nothing dropped.
    let r = app
        .put(
            &lake.manage("/namespaces/a%1Fb/tables/t2/protection"),
            &json!({"protected": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, message) = expect_error(
        app.delete(&format!("{}/namespaces/a?recursive=true", lake.base))
            .await,
        409,
    )
    .await;
    assert!(message.contains("a.b.t2"), "{message}");
    assert_eq!(
        app.get(&format!("{}/namespaces/a/tables/t1", lake.base))
            .await
            .status(),
        200
    );

    // Soft profile, forced: one commit takes all of it; the tables are soft-deleted.
    lake.set_profile(&app, json!({"type": "soft", "expiration-seconds": 3600}))
        .await;
    let commits_path = lake.manage("/commits?page-size=100");
    let commits = || async {
        let body: Value = app.get(&commits_path).await.json().await.unwrap();
        body["commits"].as_array().unwrap().clone()
    };
    let before = commits().await.len();
    let r = app
        .delete(&format!(
            "{}/namespaces/a?recursive=true&force=true&purge=true",
            lake.base
        ))
        .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let after = commits().await;
    assert_eq!(after.len(), before + 1, "one commit");
    assert!(
        after[0]["message"]
            .as_str()
            .unwrap()
            .contains("drop namespace a"),
        "{:#}",
        after[0]
    );
    expect_error(app.get(&format!("{}/namespaces/a", lake.base)).await, 404).await;
    expect_error(
        app.get(&format!("{}/namespaces/a%1Fb", lake.base)).await,
        404,
    )
    .await;
    let names: Value = app
        .get(&format!("{}/namespaces", lake.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names["namespaces"], json!([["other"]]));
    assert!(
        folder(&t1).join("data/part-0.parquet").exists(),
        "soft: files kept"
    );
    let listed = lake.deleted(&app, "").await;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|d| d["purge"] == true));
    // Undrop the deepest: both namespaces come back with their properties.
    let t2_entry = listed.iter().find(|d| d["name"] == "t2").unwrap();
    let r = app
        .post(
            &lake.manage("/deleted-tabulars/undrop"),
            &json!({"tabulars": [{"id": t2_entry["id"]}]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let a: Value = app
        .get(&format!("{}/namespaces/a", lake.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["properties"], json!({"owner": "ann"}));
    let ab: Value = app
        .get(&format!("{}/namespaces/a%1Fb", lake.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ab["properties"], json!({"tier": "gold"}));
    let loaded: Value = app
        .get(&format!("{}/namespaces/a%1Fb/tables/t2", lake.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        loaded["metadata"]["table-uuid"],
        t2["metadata"]["table-uuid"]
    );
    // The other one follows into the namespace that is back.
    let t1_entry = listed.iter().find(|d| d["name"] == "t1").unwrap();
    let r = app
        .post(
            &lake.manage("/deleted-tabulars/undrop"),
            &json!({"tabulars": [{"id": t1_entry["id"]}]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Hard profile: a recursive drop with purge purges every table through tasks.
    lake.set_profile(&app, json!({"type": "hard"})).await;
    let r = app
        .delete(&format!(
            "{}/namespaces/a?recursive=true&force=true&purge=true",
            lake.base
        ))
        .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    for t in [&t1, &t2] {
        let uuid = t["metadata"]["table-uuid"].as_str().unwrap();
        let outcomes = purge_outcomes(uuid, 1).await;
        assert_eq!(outcomes.last().unwrap(), "deleted", "{outcomes:?}");
        assert!(!folder(t).exists());
    }
    assert!(folder(&untouched).join("data/part-0.parquet").exists());
    assert!(lake.deleted(&app, "").await.is_empty());
}

/// Commits a snapshot (no files behind it: expiry does not read them) and makes it `main`.
async fn add_snapshot(app: &TestApp, table: &str, location: &str, id: i64, parent: Option<i64>) {
    let mut snapshot = json!({
        "snapshot-id": id, "sequence-number": id, "timestamp-ms": chrono::Utc::now().timestamp_millis(),
        "manifest-list": format!("{location}/metadata/snap-{id}.avro"),
        "summary": {"operation": "append"}, "schema-id": 0
    });
    if let Some(parent) = parent {
        snapshot["parent-snapshot-id"] = json!(parent);
    }
    let r = app
        .post(
            table,
            &json!({"requirements": [], "updates": [
                {"action": "add-snapshot", "snapshot": snapshot},
                {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": id}
            ]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn maintenance_expires_snapshots_by_policy(backend: Backend) {
    let app = quick_app(backend).await;
    let lake = Lake::new(&app, "kept-small").await;
    lake.namespace(&app, "ns").await;
    let created = lake.table(&app, "ns", "t").await;
    let location = created["metadata"]["location"]
        .as_str()
        .unwrap()
        .to_string();
    let table = format!("{}/namespaces/ns/tables/t", lake.base);
    // Off by default.
    let policy: Value = app
        .get(&lake.manage("/maintenance"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(policy["enabled"], false);
    for bad in [
        json!({"enabled": true, "properties": {"history.expire.max-snapshot-age-ms": "soon"}}),
        json!({"enabled": true, "properties": {"write.format.default": "orc"}}),
        json!({"enabled": true, "interval-seconds": 0}),
        json!({"enabled": true, "later": true}),
    ] {
        expect_error(app.put(&lake.manage("/maintenance"), &bad).await, 400).await;
    }
    // 20 old snapshots; a tag on the 5th, a branch on the 3rd that may live 1 s.
    for id in 1..=20 {
        add_snapshot(&app, &table, &location, id, (id > 1).then(|| id - 1)).await;
    }
    let r = app
        .post(
            &table,
            &json!({"requirements": [], "updates": [
                {"action": "set-snapshot-ref", "ref-name": "v1", "type": "tag", "snapshot-id": 5},
                {"action": "set-snapshot-ref", "ref-name": "stale", "type": "branch", "snapshot-id": 3,
                 "max-ref-age-ms": 1000}
            ]}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for id in 21..=23 {
        add_snapshot(&app, &table, &location, id, Some(id - 1)).await;
    }
    // Nothing ran: maintenance is off.
    assert!(lake.tasks(&app, "?queue=maintenance").await.is_empty());
    // The policy: snapshots live 2 s, at least 2 kept; a namespace property keeps 2 as well.
    let r = app
        .put(
            &lake.manage("/maintenance"),
            &json!({"enabled": true, "interval-seconds": 3600, "properties": {
                "history.expire.max-snapshot-age-ms": "2000",
                "history.expire.min-snapshots-to-keep": "2"
            }}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = app
        .post(
            &lake.manage("/maintenance/run"),
            &json!({"namespace": ["ns"], "table": "t"}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["enqueued"], 1);
    let tasks = lake.tasks(&app, "?queue=maintenance").await;
    assert_eq!(tasks.len(), 1);
    let done = lake
        .task_reaches(&app, tasks[0]["id"].as_str().unwrap(), "succeeded")
        .await;
    assert_eq!(done["progress"]["expired-snapshots"], 19, "{done:#}");
    assert_eq!(done["progress"]["removed-refs"], json!(["stale"]));
    let loaded: Value = app.get(&table).await.json().await.unwrap();
    let mut kept: Vec<i64> = loaded["metadata"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot-id"].as_i64().unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept, [5, 21, 22, 23], "the recent ones and the tag's");
    let refs = loaded["metadata"]["refs"].as_object().unwrap();
    let mut names: Vec<&String> = refs.keys().collect();
    names.sort();
    assert_eq!(names, ["main", "v1"]);
    assert_eq!(loaded["metadata"]["current-snapshot-id"], 23);
    // A commit after it, on a table of a warehouse with maintenance on, enqueues the next one
    // (once per interval from this process).
    let r = app
        .put(
            &lake.manage("/maintenance"),
            &json!({"enabled": true, "interval-seconds": 1}),
        )
        .await;
    assert_eq!(r.status(), 200);
    add_snapshot(&app, &table, &location, 24, Some(23)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tasks = lake.tasks(&app, "?queue=maintenance").await;
        if tasks.len() == 2 && tasks.iter().all(|t| t["status"] == "succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "{tasks:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A table may turn it off for itself.
    let r = app
        .post(
            &table,
            &json!({"requirements": [], "updates": [
                {"action": "set-properties", "updates": {"floe.maintenance.enabled": "false"}}
            ]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post(&lake.manage("/maintenance/run"), &Value::Null)
        .await;
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tasks = lake
            .tasks(&app, "?queue=maintenance&status=succeeded")
            .await;
        if tasks.len() == 3 {
            let newest = lake.task(&app, tasks[0]["id"].as_str().unwrap()).await;
            assert_eq!(
                newest["attempt-log"][0]["message"],
                "maintenance is off for this table"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{tasks:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
