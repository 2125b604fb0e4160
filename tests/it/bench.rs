//! `floe-bench`, the real binary, against a real Floe: every workload at tiny sizes, checked
//! through its `--json` report (operations present, no errors, nothing lost). Figures are not
//! checked: a timing is a benchmark, never an assertion.

use serde_json::Value;

use crate::common::{Backend, TestApp};

/// Runs `floe-bench` against `app` and returns its exit status, stdout and stderr.
async fn run(app: &TestApp, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_floe-bench"))
        .args(["--uri", &app.url("/catalog"), "--warehouse", "demo"])
        .args(args)
        .args(["--progress", "0"])
        .kill_on_drop(true)
        .output()
        .await
        .expect("floe-bench runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a workload with `--json` and returns the report, which must name `workload`.
async fn bench(app: &TestApp, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (status, stdout, stderr) = run(app, &all).await;
    assert!(status.success(), "floe-bench {args:?} failed: {stderr}");
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    assert_eq!(report["workload"], args[0], "{report}");
    report
}

/// The operation `name` of a report.
fn op<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["operations"]
        .as_array()
        .expect("operations")
        .iter()
        .find(|op| op["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// Every listed operation ran, every figure is there, and no operation had an error.
fn assert_clean(report: &Value, names: &[&str]) {
    for name in names {
        let op = op(report, name);
        assert!(op["requests"].as_u64().unwrap() > 0, "{op}");
        for field in [
            "requests_per_second",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "max_ms",
        ] {
            assert!(op[field].as_f64().is_some(), "{field} in {op}");
        }
    }
    for op in report["operations"].as_array().unwrap() {
        assert_eq!(op["errors"], serde_json::json!({}), "{report}");
    }
}

const SHAPE: [&str; 12] = [
    "--width",
    "2",
    "--depth",
    "2",
    "--tables",
    "2",
    "--views",
    "1",
    "--columns",
    "3",
    "--properties",
    "2",
];

fn with_shape<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(SHAPE);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_workloads() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    let created = bench(&app, &with_shape(&["create-tree", "--concurrency", "4"])).await;
    assert_clean(&created, &["createNamespace", "createTable", "createView"]);
    assert_eq!(op(&created, "createNamespace")["requests"], 6);
    assert_eq!(op(&created, "createTable")["requests"], 8);
    assert_eq!(op(&created, "createView")["requests"], 4);

    // read-tree also checks every listing against the shape (a wrong one is an error).
    let read = bench(&app, &with_shape(&["read-tree", "--concurrency", "4"])).await;
    assert_clean(
        &read,
        &[
            "getConfig",
            "listNamespaces",
            "loadNamespaceMetadata",
            "namespaceExists",
            "listTables",
            "listViews",
            "loadTable",
            "tableExists",
            "loadView",
            "viewExists",
        ],
    );
    let paged = bench(
        &app,
        &with_shape(&["read-tree", "--concurrency", "2", "--page-size", "1"]),
    )
    .await;
    assert_clean(&paged, &["listNamespaces", "listTables"]);
    assert!(
        op(&paged, "listTables")["requests"].as_u64().unwrap()
            > op(&read, "listTables")["requests"].as_u64().unwrap(),
        "one page per table"
    );

    let loads = bench(
        &app,
        &with_shape(&["load-table", "--concurrency", "4", "--count", "40"]),
    )
    .await;
    assert_clean(&loads, &["loadTable"]);
    assert_eq!(op(&loads, "loadTable")["requests"], 40);

    let mixed = bench(
        &app,
        &with_shape(&[
            "read-update",
            "--concurrency",
            "4",
            "--count",
            "40",
            "--read-ratio",
            "0.5",
        ]),
    )
    .await;
    assert_clean(&mixed, &["loadTable", "updateTable"]);
    let total = op(&mixed, "loadTable")["requests"].as_u64().unwrap()
        + op(&mixed, "updateTable")["requests"].as_u64().unwrap();
    assert_eq!(total, 40);

    // The table for people.
    let (status, stdout, stderr) = run(
        &app,
        &with_shape(&["load-table", "--concurrency", "2", "--duration", "0.3"]),
    )
    .await;
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("loadTable") && stdout.contains("p99 ms"),
        "{stdout}"
    );

    // A tree that was never made is refused before the run.
    let (status, _, stderr) = run(
        &app,
        &["load-table", "--prefix-name", "missing", "--count", "5"],
    )
    .await;
    assert!(!status.success());
    assert!(stderr.contains("run create-tree first"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_workloads() {
    let app = TestApp::spawn(Backend::Sqlite).await;

    let commits = bench(&app, &["commits", "--concurrency", "3", "--count", "15"]).await;
    assert_clean(&commits, &["createNamespace", "createTable", "updateTable"]);
    assert_eq!(op(&commits, "createTable")["requests"], 3);
    assert_eq!(op(&commits, "updateTable")["requests"], 15);
    assert_eq!(commits["acknowledged_commits"], 15);

    let contention = bench(&app, &["contention", "--writers", "4", "--count", "20"]).await;
    assert_eq!(contention["lost_commits"], 0, "{contention}");
    assert_eq!(contention["non_409_errors"], 0, "{contention}");
    assert_eq!(contention["abandoned_commits"], 0, "{contention}");
    assert_eq!(contention["acknowledged_commits"], 20, "{contention}");
    assert_eq!(contention["final_snapshots"], 20, "{contention}");
    // Conflicts are expected here, and each one was retried; nothing else may fail.
    let updates = op(&contention, "updateTable");
    let conflicts = updates["errors"].get("409").and_then(Value::as_u64);
    assert_eq!(
        conflicts.unwrap_or(0),
        contention["retries"].as_u64().unwrap()
    );
    for op in contention["operations"].as_array().unwrap() {
        let errors = op["errors"].as_object().unwrap();
        assert!(errors.keys().all(|status| status == "409"), "{contention}");
    }

    // Two runs never collide: each makes a namespace of its own.
    let again = bench(&app, &["commits", "--concurrency", "1", "--count", "2"]).await;
    assert_clean(&again, &["updateTable"]);
    assert_ne!(again["namespace"], commits["namespace"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_workload() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let report = bench(
        &app,
        &[
            "create-table",
            "--concurrency",
            "3",
            "--count",
            "12",
            "--run-id",
            "fixed",
        ],
    )
    .await;
    assert_clean(&report, &["createNamespace", "createTable"]);
    assert_eq!(op(&report, "createTable")["requests"], 12);
    assert_eq!(report["tables_created"], 12);
    assert_eq!(report["namespace"], "bench_fixed");
    let listed: Value = app
        .get(&format!(
            "/catalog/v1/{}/namespaces/bench_fixed/tables",
            app.prefix("demo").await
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["identifiers"].as_array().unwrap().len(), 12);
}
