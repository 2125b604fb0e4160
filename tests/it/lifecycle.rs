//! Starting, restarting, stopping and scaling out: the embedded quickstart, the real `floe`
//! binary, migrations, graceful shutdown, and several instances on one PostgreSQL database.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use floe::server::Floe;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Backend, TestApp, TestDb, expect_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_restart_keeps_everything() {
    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    let info: Value = app.get("/management/v1/info").await.json().await.unwrap();
    let base = format!("/catalog/v1/{}", app.prefix("demo").await);
    let created = app
        .post(
            &format!("{base}/namespaces"),
            &json!({"namespace": ["kept"], "properties": {"k": "v"}}),
        )
        .await;
    assert_eq!(created.status(), 200);
    app.shutdown().await.unwrap();

    let again = TestApp::spawn_on(db.clone(), |_| {}).await;
    let info_again: Value = again.get("/management/v1/info").await.json().await.unwrap();
    assert_eq!(
        info_again["server-id"], info["server-id"],
        "no second bootstrap"
    );
    assert_eq!(format!("/catalog/v1/{}", again.prefix("demo").await), base);
    let kept: Value = again
        .get(&format!("{base}/namespaces/kept"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["properties"], json!({"k": "v"}));
    let warehouses: Value = again
        .get("/management/v1/warehouses")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(warehouses["warehouses"].as_array().unwrap().len(), 1);
    let root = db
        .dir
        .path()
        .join("data/warehouses/demo")
        .canonicalize()
        .unwrap();
    assert_eq!(
        warehouses["warehouses"][0]["storage-profile"]["root"],
        root.to_str().unwrap()
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = db.dir.path().join("data/secret.key");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the generated key is private");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let prefix = app.prefix("demo").await;
    let body = br#"{"namespace": ["in-flight"]}"#;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /catalog/v1/{prefix}/namespaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    stream.flush().await.unwrap();
    // The server answers `100 Continue` once the handler reads the body: the request is in
    // flight from here on.
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut interim))
        .await
        .expect("the server starts on the request")
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");

    // Shut down while the request is half sent.
    let addr = app.addr;
    let db = app.db.clone();
    let stopping = tokio::spawn(app.shutdown());
    assert!(
        eventually(async || tokio::net::TcpStream::connect(addr).await.is_err()).await,
        "no new connections once shutting down"
    );
    stream.write_all(&body[10..]).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the in-flight request is answered")
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes")
        .unwrap()
        .unwrap();

    // The in-flight request's change was committed.
    let again = TestApp::spawn_on(db, |_| {}).await;
    let prefix = again.prefix("demo").await;
    assert_eq!(
        again
            .head(&format!("/catalog/v1/{prefix}/namespaces/in-flight"))
            .await
            .status(),
        204
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_needs_migrate_unless_told_otherwise() {
    let db = TestDb::new(Backend::Postgres).await;
    let mut config = db.config();
    config.database.auto_migrate = None;
    let err = Floe::build(&config)
        .await
        .err()
        .expect("refuses an unmigrated database");
    assert!(format!("{err:#}").contains("floe migrate"), "{err:#}");

    let out = Command::new(env!("CARGO_BIN_EXE_floe"))
        .arg("migrate")
        .env("FLOE__DATABASE__URL", &db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Migrating again is a no-op.
    let out = Command::new(env!("CARGO_BIN_EXE_floe"))
        .arg("migrate")
        .env("FLOE__DATABASE__URL", &db.url)
        .output()
        .unwrap();
    assert!(out.status.success());

    let floe = Floe::build(&config)
        .await
        .expect("starts on a migrated database");
    assert!(
        !floe.auto_bootstrapped,
        "PostgreSQL is bootstrapped explicitly"
    );

    // Without a shared key, PostgreSQL deployments are refused at start.
    let mut keyless = db.config();
    keyless.secrets.encryption_key = None;
    keyless.server.listen = "127.0.0.1:0".parse().unwrap();
    let err = Floe::build(&keyless).await.err().expect("needs a key");
    assert!(format!("{err:#}").contains("encryption_key"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_serve_one_consistent_catalog() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let a = TestApp::spawn_on(db.clone(), |_| {}).await;
    let b = TestApp::spawn_on(db.clone(), |_| {}).await;
    assert_eq!(
        a.post("/management/v1/bootstrap", &Value::Null)
            .await
            .status(),
        200
    );
    expect_error(b.post("/management/v1/bootstrap", &Value::Null).await, 409).await;
    let info: Value = b.get("/management/v1/info").await.json().await.unwrap();
    assert_eq!(info["bootstrapped"], true);

    let id = a.create_local_warehouse("shared").await;
    assert_eq!(b.prefix("shared").await, id);
    let base = format!("/catalog/v1/{id}");

    // The same namespace created through both instances at once: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = reqwest::Client::new();
        let url = if i % 2 == 0 {
            a.url(&format!("{base}/namespaces"))
        } else {
            b.url(&format!("{base}/namespaces"))
        };
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"namespace": ["contested"]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );

    // Concurrent property updates through both: nothing lost.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = reqwest::Client::new();
        let url = if i % 2 == 0 {
            a.url(&format!("{base}/namespaces/contested/properties"))
        } else {
            b.url(&format!("{base}/namespaces/contested/properties"))
        };
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"updates": {format!("key-{i}"): "v"}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let ns: Value = b
        .get(&format!("{base}/namespaces/contested"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ns["properties"].as_object().unwrap().len(), 16);

    // A drop through one is seen by the other at once.
    assert_eq!(
        a.delete(&format!("{base}/namespaces/contested"))
            .await
            .status(),
        204
    );
    assert_eq!(
        b.head(&format!("{base}/namespaces/contested"))
            .await
            .status(),
        404
    );
}

/// Polls `check` for up to five seconds.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_learn_of_each_others_table_changes() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let a = TestApp::spawn_on(db.clone(), |_| {}).await;
    let b = TestApp::spawn_on(db.clone(), |_| {}).await;
    assert_eq!(
        a.post("/management/v1/bootstrap", &Value::Null)
            .await
            .status(),
        200
    );
    let id = a.create_local_warehouse("shared").await;
    let base = format!("/catalog/v1/{id}");
    let created = a
        .post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
        .await;
    assert_eq!(created.status(), 200);
    let created = a
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "t", "schema": {"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": false, "type": "long"}]}}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let table = format!("{base}/namespaces/ns/tables/t");
    let property = async |app: &TestApp, path: &str| -> Option<String> {
        let response = app.get(path).await;
        if response.status() != 200 {
            return None;
        }
        let body: Value = response.json().await.unwrap();
        body["metadata"]["properties"]["round"]
            .as_str()
            .map(str::to_string)
    };
    let commit = async |round: &str| {
        let response = a
            .post(
                &table,
                &json!({"updates": [{"action": "set-properties", "updates": {"round": round}}]}),
            )
            .await;
        assert_eq!(response.status(), 200);
    };

    // B caches the table, A commits: B serves the new version once A's notification arrives.
    for round in ["1", "2", "3"] {
        assert!(b.get(&table).await.status() == 200);
        commit(round).await;
        assert!(
            eventually(async || property(&b, &table).await.as_deref() == Some(round)).await,
            "instance B never saw round {round}"
        );
    }

    // B's listener loses its connection: B keeps answering correctly (validating meanwhile),
    // reconnects, and goes on learning of A's commits.
    let ended = db.listener_pids().await;
    assert_eq!(ended.len(), 2, "each instance listens");
    assert!(eventually(async || db.end_listeners().await > 0).await);
    assert!(
        eventually(async || {
            let now = db.listener_pids().await;
            now.len() == 2 && now.iter().all(|pid| !ended.contains(pid))
        })
        .await,
        "both listeners reconnected"
    );
    commit("4").await;
    assert!(eventually(async || property(&b, &table).await.as_deref() == Some("4")).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(b.get(&table).await.status() == 200);
    commit("5").await;
    assert!(eventually(async || property(&b, &table).await.as_deref() == Some("5")).await);

    // Renames and drops on A reach B too.
    let renamed = a
        .post(
            &format!("{base}/tables/rename"),
            &json!({"source": {"namespace": ["ns"], "name": "t"},
                    "destination": {"namespace": ["ns"], "name": "u"}}),
        )
        .await;
    assert_eq!(renamed.status(), 204);
    assert!(eventually(async || b.get(&table).await.status() == 404).await);
    let moved = format!("{base}/namespaces/ns/tables/u");
    assert_eq!(property(&b, &moved).await.as_deref(), Some("5"));
    assert_eq!(a.delete(&moved).await.status(), 204);
    assert!(eventually(async || b.get(&moved).await.status() == 404).await);
}

/// A listener whose connection goes silent without closing (its server process frozen, as when
/// a NAT forgets the connection) pings itself after a quiet spell, hears nothing, and reconnects;
/// commits of the other instance reach it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_listener_pings_itself_and_reconnects() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let a = TestApp::spawn_on(db.clone(), |c| c.bootstrap.auto = Some(true)).await;
    let b = TestApp::spawn_on(db.clone(), |c| c.bootstrap.auto = Some(true)).await;
    let base = format!("/catalog/v1/{}", a.prefix("demo").await);
    assert_eq!(
        a.post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
            .await
            .status(),
        200
    );
    let table = format!("{base}/namespaces/ns/tables/t");
    let created = a
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "t", "schema": {"type": "struct", "schema-id": 0, "fields": []}}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let frozen = db.listener_pids().await;
    assert_eq!(frozen.len(), 2, "each instance listens");
    let signal = |sig: &str, pids: &[i32]| {
        for pid in pids {
            let status = Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "kill {sig} {pid}");
        }
    };
    signal("-STOP", &frozen);
    // Quiet for 5 s, then a ping that is not heard for 5 s more: both instances reconnect.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut replaced = false;
    while Instant::now() < deadline && !replaced {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = db.listener_pids().await;
        replaced = now.iter().filter(|pid| !frozen.contains(pid)).count() == 2;
    }
    signal("-CONT", &frozen);
    assert!(replaced, "the silent listeners were never replaced");
    assert_eq!(b.get(&table).await.status(), 200);
    let committed = a
        .post(
            &table,
            &json!({"updates": [{"action": "set-properties", "updates": {"after": "ping"}}]}),
        )
        .await;
    assert_eq!(committed.status(), 200);
    assert!(
        eventually(async || {
            let loaded: Value = b.get(&table).await.json().await.unwrap();
            loaded["metadata"]["properties"]["after"] == "ping"
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notifications_every_cached_load_is_checked() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let a = TestApp::spawn_on(db.clone(), |c| c.database.change_notifications = false).await;
    let b = TestApp::spawn_on(db.clone(), |c| c.database.change_notifications = false).await;
    assert_eq!(
        a.post("/management/v1/bootstrap", &Value::Null)
            .await
            .status(),
        200
    );
    let id = a.create_local_warehouse("checked").await;
    let base = format!("/catalog/v1/{id}");
    let created = a
        .post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
        .await;
    assert_eq!(created.status(), 200);
    let created = a
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "t", "schema": {"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": false, "type": "long"}]}}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let table = format!("{base}/namespaces/ns/tables/t");
    // No listener to wait for: B checks its cached copy on every load, so A's commit is seen by
    // the very next load.
    for round in ["1", "2", "3"] {
        assert_eq!(b.get(&table).await.status(), 200);
        let response = a
            .post(
                &table,
                &json!({"updates": [{"action": "set-properties", "updates": {"round": round}}]}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = b.get(&table).await.json().await.unwrap();
        assert_eq!(body["metadata"]["properties"]["round"], round);
    }
    assert_eq!(a.delete(&table).await.status(), 204);
    assert_eq!(b.get(&table).await.status(), 404);
}

/// Reads the binary's stdout (on a thread of its own, so a silent binary cannot hang the test)
/// until the PyIceberg snippet, for at most 60 s, and returns the catalog URI it printed.
pub(crate) fn read_catalog_uri(stdout: impl std::io::Read + Send + 'static) -> String {
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(line) = received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(rest) = line.split("uri=\"").nth(1) {
            return rest.split('"').next().unwrap().to_string();
        }
    }
    panic!("the binary printed no PyIceberg snippet within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_quickstart_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("floe-data"))
        .env("FLOE__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let uri = read_catalog_uri(child.stdout.take().unwrap());
    assert!(uri.ends_with("/catalog"), "{uri}");
    let client = reqwest::Client::new();
    let config: Value = client
        .get(format!("{uri}/v1/config?warehouse=demo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(config["overrides"]["prefix"].is_string());
    assert!(dir.path().join("floe-data/catalog.db").exists());
    assert!(dir.path().join("floe-data/warehouses/demo").is_dir());

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // JSON logs when configured so.
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let first = stderr.lines().next().expect("it logged");
    let line: Value = serde_json::from_str(first).expect("log lines are JSON");
    assert!(line["timestamp"].is_string());
}

#[test]
fn the_binary_rejects_bad_settings_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value, expected) in [
        (
            "FLOE__DATABASE__MAX_CONNECTIONS",
            "0",
            "database.max_connections",
        ),
        ("FLOE__SERVER__LISTEN", "not-an-address", "listen"),
        ("FLOE__LOG__FORMAT", "xml", "format"),
        ("FLOE__SERVER__UNKNOWN_THING", "1", "unknown_thing"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_floe"))
            .arg("serve")
            .current_dir(dir.path())
            .env(key, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{key}={value}: {stderr}");
    }
    // Identity settings that would open a hole are refused at start.
    for (toml, expected) in [
        (
            "[[authn.providers]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"https://idp.example\"\naudiences = []\n",
            "audiences",
        ),
        (
            "[authn]\nadmins = [\"alice\"]\n[[authn.providers]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"https://idp.example\"\naudiences = [\"floe\"]\n",
            "authn.admins",
        ),
        (
            "[[authn.providers]]\nid = \"a~b\"\nkind = \"oidc\"\nissuer = \"https://idp.example\"\naudiences = [\"floe\"]\n",
            "must be letters",
        ),
        (
            "[[authn.providers]]\nid = \"idp\"\nkind = \"oidc\"\nissuer = \"https://idp.example\"\naudiences = [\"floe\"]\nkubernetes-subject = \"uid\"\n",
            "kubernetes",
        ),
        (
            "[[authn.providers]]\nid = \"k8s\"\nkind = \"kubernetes\"\nissuer = \"https://k8s.example\"\naudiences = [\"floe\"]\njwks-uri = \"http://k8s.example/keys\"\n",
            "jwks_uri",
        ),
        (
            "[[authn.providers]]\nid = \"k8s\"\nkind = \"kubernetes\"\nissuer = \"http://k8s.example\"\naudiences = [\"floe\"]\nfetch-token-file = \"/var/run/token\"\n",
            "fetch_token_file",
        ),
        (
            "[authz]\nrole_mappings = [{ provider = \"nope\", matches = \"x\", role = \"r\" }]\n",
            "authz.role_mappings",
        ),
        (
            "[authz]\nrole_mappings = [{ matches = \"x\", role = \"two words\" }]\n",
            "authz.role_mappings",
        ),
    ] {
        let file = dir.path().join("authn.toml");
        std::fs::write(&file, toml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_floe"))
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{toml}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{toml}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["serve", "--config", "/nonexistent/floe.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(
        !dir.path().join("floe-data").exists(),
        "nothing is created on a bad start"
    );
}

/// Writers on two instances commit to one table at once: the instances race each other's
/// compare-and-swap, and the server-side retry absorbs every lost race (no 409 without
/// requirements, nothing lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_commit_to_one_table_without_losses() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let a = Arc::new(TestApp::spawn_on(db.clone(), |c| c.bootstrap.auto = Some(true)).await);
    let b = Arc::new(TestApp::spawn_on(db.clone(), |c| c.bootstrap.auto = Some(true)).await);
    let base = format!("/catalog/v1/{}", a.prefix("demo").await);
    assert_eq!(
        a.post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
            .await
            .status(),
        200
    );
    let created = a
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "shared", "schema": {"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": false, "type": "long"}]}}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let before = [a.services().commit_counts(), b.services().commit_counts()];
    let mut writers = Vec::new();
    for writer in 0..8 {
        let app = if writer % 2 == 0 {
            a.clone()
        } else {
            b.clone()
        };
        let url = app.url(&format!("{base}/namespaces/ns/tables/shared"));
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                let response = app
                    .client
                    .post(&url)
                    .json(&json!({"updates": [{"action": "set-properties",
                        "updates": {format!("w{writer}-{i}"): "x"}}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let table: Value = b
        .get(&format!("{base}/namespaces/ns/tables/shared"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        table["metadata"]["properties"].as_object().unwrap().len(),
        200
    );
    // Every commit landed at its first answer: lost swaps (if any) were re-applied on the
    // server, never turned into 409s. (`commits.rs` forces a lost swap and sees the re-apply.)
    let after = [a.services().commit_counts(), b.services().commit_counts()];
    let landed: u64 = (0..2).map(|i| after[i].landed - before[i].landed).sum();
    assert_eq!(landed, 200);
    assert!((0..2).all(|i| after[i].conflicted == before[i].conflicted));
    // A load through one instance sees a commit made through the other once its notification
    // has arrived (a cached table is served from memory while the listener is connected).
    let url = format!("{base}/namespaces/ns/tables/shared");
    let before: Value = a.get(&url).await.json().await.unwrap();
    let committed = b
        .post(
            &url,
            &json!({"updates": [{"action": "set-properties", "updates": {"last": "b"}}]}),
        )
        .await;
    assert_eq!(committed.status(), 200);
    let committed: Value = committed.json().await.unwrap();
    let mut after = Value::Null;
    assert!(
        eventually(async || {
            after = a.get(&url).await.json().await.unwrap();
            after["metadata-location"] == committed["metadata-location"]
        })
        .await,
        "instance A never saw B's commit"
    );
    assert_ne!(after["metadata-location"], before["metadata-location"]);
    assert_eq!(after["metadata"]["properties"]["last"], "b");
    let table = after;
    // 202 versions, of which the log keeps the default 100 previous ones.
    assert_eq!(
        table["metadata"]["metadata-log"].as_array().unwrap().len(),
        100
    );
    assert!(
        table["metadata-location"]
            .as_str()
            .unwrap()
            .contains("/metadata/00201-")
    );
}

/// The embedded database belongs to one process at a time (its table cache relies on that): a
/// second Floe on the same file is refused with a clear message until the first one stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_owns_an_embedded_database() {
    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    let first = TestApp::spawn_on(db.clone(), |_| {}).await;
    let err = Floe::build(&db.config())
        .await
        .err()
        .expect("a second owner is refused");
    assert!(
        format!("{err:#}").contains("another Floe process"),
        "{err:#}"
    );
    first.shutdown().await.unwrap();
    let second = TestApp::spawn_on(db.clone(), |_| {}).await;
    assert_eq!(second.get("/ready").await.status(), 200);
}
