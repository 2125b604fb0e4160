//! The task queue under crashes and scale-out: a purge of a table with many files killed with
//! SIGKILL halfway is taken up again after a restart and finishes, keeping every file of its
//! neighbours and of other refs; two instances on one PostgreSQL database share purges without
//! ever running one twice.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, TestDb};

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": false, "type": "long"}
    ]})
}

fn spawn_floe(data_dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        // Batches small enough, and heartbeats often enough, that the purge is seen halfway.
        .env("FLOE__TASKS__PURGE_BATCH", "10")
        .env("FLOE__TASKS__HEARTBEAT_INTERVAL_MS", "20")
        .env("FLOE__TASKS__STALE_AFTER_MS", "500")
        .env("FLOE__TASKS__POLL_INTERVAL_MS", "50")
        .env("FLOE__LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let uri = crate::lifecycle::read_catalog_uri(child.stdout.take().unwrap());
    (child, uri.trim_end_matches("/catalog").to_string())
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

fn local_path(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_killed_halfway_resumes_after_restart_and_keeps_what_others_use() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("floe-data");
    let (mut floe, base) = spawn_floe(&data);
    let client = reqwest::Client::new();
    let config: Value = client
        .get(format!("{base}/catalog/v1/config?warehouse=demo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prefix = config["overrides"]["prefix"].as_str().unwrap().to_string();
    let warehouse = prefix.clone();
    let catalog = format!("{base}/catalog/v1/{prefix}");
    let manage = format!("{base}/management/v1/warehouses/{warehouse}");
    let r = client
        .post(format!("{catalog}/namespaces"))
        .json(&json!({"namespace": ["ns"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut folders = std::collections::BTreeMap::new();
    let mut uuids = std::collections::BTreeMap::new();
    // `shared` exists before the branch `dev` is made, so dev uses its files; the others after.
    for name in ["shared", "big", "big2", "neighbour"] {
        if name == "big" {
            let r = client
                .post(format!("{manage}/branches"))
                .json(&json!({"name": "dev"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        let r = client
            .post(format!("{catalog}/namespaces/ns/tables"))
            .json(&json!({"name": name, "schema": schema()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        // The demo warehouse is served by the gateway: `s3://demo/<key>` is
        // `<data>/warehouses/demo/<key>`.
        let location = body["metadata"]["location"].as_str().unwrap();
        let key = location
            .strip_prefix("s3://demo/")
            .expect("a gateway location");
        folders.insert(name, data.join("warehouses/demo").join(key));
        uuids.insert(
            name,
            body["metadata"]["table-uuid"].as_str().unwrap().to_string(),
        );
    }
    // `big` has thousands of files; the others a few each.
    let big_files = 20_000;
    for i in 0..big_files {
        let sub = folders["big"].join(format!("data/part={}", i % 100));
        if i < 100 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        std::fs::write(sub.join(format!("{i}.parquet")), b"x").unwrap();
    }
    for name in ["neighbour", "shared"] {
        std::fs::create_dir_all(folders[name].join("data")).unwrap();
        for i in 0..20 {
            std::fs::write(folders[name].join(format!("data/{i}.parquet")), b"x").unwrap();
        }
    }
    let neighbour_files = count_files(&folders["neighbour"]);
    let shared_files = count_files(&folders["shared"]);
    // Dropping `shared` on main with purge must keep its files: dev still uses them.
    for name in ["shared", "big"] {
        let r = client
            .delete(format!(
                "{catalog}/namespaces/ns/tables/{name}?purgeRequested=true"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    // Kill the server as soon as the purge of `big` has recorded progress.
    let target = format!("table:{}", uuids["big"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let task_id = loop {
        let listed: Value = client
            .get(format!("{manage}/tasks?target={target}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(task) = listed["tasks"].as_array().and_then(|t| t.first())
            && task["progress"]["deleted"].as_u64().unwrap_or(0) > 0
        {
            floe.kill().unwrap();
            floe.wait().unwrap();
            break task["id"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the purge never started: {listed:#}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let left = count_files(&folders["big"]);
    assert!(
        left > 0 && left < big_files + 1,
        "killed halfway: {left} of {} files left",
        big_files + 1
    );

    // Restarted, a worker takes the abandoned purge up again once its heartbeat is stale.
    let (mut floe, base) = spawn_floe(&data);
    let manage = format!("{base}/management/v1/warehouses/{warehouse}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let task = loop {
        let task: Value = client
            .get(format!("{manage}/tasks/{task_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if task["status"] == "succeeded" {
            break task;
        }
        assert!(
            Instant::now() < deadline,
            "the purge did not finish after the restart: {task:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let outcomes: Vec<&str> = task["attempt-log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["abandoned", "succeeded"], "{task:#}");
    // The count is what was recorded: files deleted after the last heartbeat before the kill
    // are not in it, those the second attempt deleted are.
    let deleted = task["progress"]["deleted"].as_u64().unwrap() as usize;
    assert!(deleted >= left && deleted <= big_files + 1, "{task:#}");
    assert!(!folders["big"].exists(), "the purge finished");
    assert_eq!(count_files(&folders["neighbour"]), neighbour_files);
    assert_eq!(
        count_files(&folders["shared"]),
        shared_files,
        "dev still uses them"
    );
    assert!(folders["big2"].exists());
    assert!(folders["shared"].exists());
    let shared: Value = client
        .get(format!("{manage}/tasks?target=table:{}", uuids["shared"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shared["tasks"][0]["status"], "succeeded");
    assert!(
        shared["tasks"][0]["progress"].is_null(),
        "kept, nothing deleted"
    );
    floe.kill().unwrap();
    floe.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_purges_and_never_run_one_twice() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let tweak = |c: &mut floe::config::Config| {
        c.tasks.queues.insert("purge".into(), 3);
        c.tasks.poll_interval_ms = 20;
        c.tasks.heartbeat_interval_ms = 50;
        c.tasks.stale_after_ms = 5000;
    };
    let a = TestApp::spawn_on(db.clone(), tweak).await;
    assert_eq!(
        a.post("/management/v1/bootstrap", &Value::Null)
            .await
            .status(),
        200
    );
    let b = TestApp::spawn_on(db.clone(), tweak).await;
    let id = a.create_local_warehouse("shared").await;
    let catalog = format!("/catalog/v1/{}", a.prefix("shared").await);
    let r = a
        .post(
            &format!("{catalog}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let count = 40;
    let mut folders = Vec::new();
    for i in 0..count {
        let r = a
            .post(
                &format!("{catalog}/namespaces/ns/tables"),
                &json!({"name": format!("t{i}"), "schema": schema()}),
            )
            .await;
        let body: Value = r.json().await.unwrap();
        let folder = local_path(body["metadata"]["location"].as_str().unwrap());
        std::fs::create_dir_all(folder.join("data")).unwrap();
        for f in 0..30 {
            std::fs::write(folder.join(format!("data/{f}.parquet")), b"x").unwrap();
        }
        folders.push(folder);
    }
    // Drops through both instances, so both wake their workers.
    for i in 0..count {
        let app = if i % 2 == 0 { &a } else { &b };
        let r = app
            .delete(&format!(
                "{catalog}/namespaces/ns/tables/t{i}?purgeRequested=true"
            ))
            .await;
        assert_eq!(r.status(), 204);
    }
    let manage = format!("/management/v1/warehouses/{id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let tasks = loop {
        let listed: Value = a
            .get(&format!("{manage}/tasks?queue=purge&page-size=100"))
            .await
            .json()
            .await
            .unwrap();
        let tasks = listed["tasks"].as_array().unwrap().clone();
        if tasks.len() == count && tasks.iter().all(|t| t["status"] == "succeeded") {
            break tasks;
        }
        assert!(Instant::now() < deadline, "purges did not all finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut instances = std::collections::BTreeSet::new();
    for task in &tasks {
        let one: Value = a
            .get(&format!("{manage}/tasks/{}", task["id"].as_str().unwrap()))
            .await
            .json()
            .await
            .unwrap();
        let log = one["attempt-log"].as_array().unwrap();
        assert_eq!(log.len(), 1, "run once: {one:#}");
        assert_eq!(log[0]["outcome"], "succeeded");
        assert_eq!(one["progress"]["deleted"], 31);
        let worker = log[0]["worker"].as_str().unwrap();
        instances.insert(worker.split('/').next().unwrap().to_string());
    }
    assert_eq!(
        instances.len(),
        2,
        "both instances ran purges: {instances:?}"
    );
    assert!(folders.iter().all(|f| !f.exists()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_workers_leaves_tasks_to_a_workers_only_one() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let serving = TestApp::spawn_on(db.clone(), |c| {
        c.tasks.queues.insert("purge".into(), 0);
        c.tasks.queues.insert("expiry".into(), 0);
    })
    .await;
    assert_eq!(
        serving
            .post("/management/v1/bootstrap", &Value::Null)
            .await
            .status(),
        200
    );
    let id = serving.create_local_warehouse("w").await;
    let catalog = format!("/catalog/v1/{}", serving.prefix("w").await);
    let r = serving
        .post(
            &format!("{catalog}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = serving
        .post(
            &format!("{catalog}/namespaces/ns/tables"),
            &json!({"name": "t", "schema": schema()}),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    let folder = local_path(body["metadata"]["location"].as_str().unwrap());
    let r = serving
        .delete(&format!(
            "{catalog}/namespaces/ns/tables/t?purgeRequested=true"
        ))
        .await;
    assert_eq!(r.status(), 204);
    let manage = format!("/management/v1/warehouses/{id}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listed: Value = serving
        .get(&format!("{manage}/tasks"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["tasks"][0]["status"], "scheduled", "no worker here");
    assert!(folder.exists());

    // `floe worker`: workers (and health) only.
    let mut config = db.config();
    config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    config.tasks.poll_interval_ms = 50;
    let workers = floe::server::Workers::build(&config).await.unwrap();
    let health = workers.metrics_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(workers.run(async move {
        let _ = stopped.await;
    }));
    let r = reqwest::get(format!("http://{health}/health"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed: Value = serving
            .get(&format!("{manage}/tasks"))
            .await
            .json()
            .await
            .unwrap();
        if listed["tasks"][0]["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{listed:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!folder.exists());
    let _ = stop.send(());
    running.await.unwrap();
}
