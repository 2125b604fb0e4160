//! Change events on a real NATS JetStream (`nats-server -js`, started by each test on a free
//! port): every change recorded on a branch has exactly one event, written in the change's own
//! transaction and relayed in order per table; with NATS down the events wait in the database
//! (visible in `/ready`) and arrive once it is back.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, TestDb};

/// A `nats-server` with JetStream, on a port found free, storing under its own folder.
pub struct Nats {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Extra arguments of the server (authentication).
    args: Vec<String>,
    /// The token the test's own connections use, when the server asks for one.
    token: Option<String>,
}

impl Nats {
    pub fn start() -> Nats {
        Nats::start_with(Vec::new(), None)
    }

    /// A server with extra arguments (e.g. `--auth TOKEN`); `token` is what the test itself
    /// connects with.
    pub fn start_with(args: Vec<String>, token: Option<String>) -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = Nats {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            args,
            token,
        };
        nats.resume();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port and storage).
    pub fn resume(&mut self) {
        let bin = std::env::var("FLOE_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let store: PathBuf = self.dir.path().join("js");
        let child = Command::new(bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&store)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (Debian `nats-server`, or FLOE_TEST_NATS_SERVER)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every message of the stream about a branch (not the bootstrap's or a warehouse's own
    /// events), in stream order, as (message id, event JSON).
    pub async fn messages(&self, stream: &str) -> Vec<(String, Value)> {
        let mut all = self.all_messages(stream).await;
        all.retain(|(_, e)| e.get("ref").is_some());
        all
    }

    /// Every message of the stream, in stream order.
    pub async fn all_messages(&self, stream: &str) -> Vec<(String, Value)> {
        let options = match &self.token {
            Some(token) => async_nats::ConnectOptions::with_token(token.clone()),
            None => async_nats::ConnectOptions::new(),
        };
        let client = options.connect(self.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = match js.get_stream(stream).await {
            Ok(stream) => stream,
            Err(_) => return Vec::new(),
        };
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let Ok(message) = stream.get_raw_message(seq).await else {
                continue;
            };
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            out.push((id, serde_json::from_slice(&message.payload).unwrap()));
        }
        out
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn ok(response: reqwest::Response, status: u16) -> Value {
    let code = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(code, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "type": "long", "required": true}]})
}

/// Creates table `ns.<name>` under the catalog path `base` and returns the answer.
async fn create_table(app: &TestApp, base: &str, name: &str) -> Value {
    ok(
        app.post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": name, "schema": schema()}),
        )
        .await,
        200,
    )
    .await
}

/// Commits one property to table `ns.<table>` under the catalog path `base`.
async fn set_property(app: &TestApp, base: &str, table: &str, key: &str, value: &str) {
    ok(
        app.post(
            &format!("{base}/namespaces/ns/tables/{table}"),
            &json!({"requirements": [], "updates": [
                {"action": "set-properties", "updates": {key: value}}]}),
        )
        .await,
        200,
    )
    .await;
}

async fn app_with_nats(backend: Backend, nats: &Nats, stream: &str) -> TestApp {
    let db = std::sync::Arc::new(TestDb::new(backend).await);
    let url = nats.url();
    let stream = stream.to_string();
    let app = TestApp::spawn_on(db, move |config| {
        config.events.backends = vec![floe::config::EventsBackend::Nats];
        config.events.nats.url = url;
        config.events.nats.stream = stream;
        config.events.nats.timeout_ms = 1_000;
    })
    .await;
    if backend == Backend::Postgres {
        ok(
            app.post("/management/v1/bootstrap", &Value::Null).await,
            200,
        )
        .await;
        app.create_local_warehouse("demo").await;
    }
    app
}

/// Waits until the stream holds `count` messages (or 30 s pass), and returns them.
async fn wait_for(nats: &Nats, stream: &str, count: usize) -> Vec<(String, Value)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let messages = nats.messages(stream).await;
        if messages.len() >= count || std::time::Instant::now() > deadline {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn every_branch_change_has_one_event_in_order(backend: Backend) {
    let nats = Nats::start();
    let app = app_with_nats(backend, &nats, "EV1").await;
    let base = format!("/catalog/v1/{}", app.prefix("demo").await);
    ok(
        app.post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
            .await,
        200,
    )
    .await;
    for name in ["a", "b"] {
        create_table(&app, &base, name).await;
    }
    for i in 0..3 {
        set_property(&app, &base, "a", "n", &i.to_string()).await;
    }
    // One transaction over both tables: one event per table, naming the same commit.
    let changes: Vec<Value> = ["a", "b"]
        .iter()
        .map(|t| {
            json!({"identifier": {"namespace": ["ns"], "name": t}, "requirements": [],
                   "updates": [{"action": "set-properties", "updates": {"tx": "1"}}]})
        })
        .collect();
    let tx = json!({ "table-changes": changes });
    let response = app.post(&format!("{base}/transactions/commit"), &tx).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    ok(
        app.post(
            &format!("{base}/tables/rename"),
            &json!({"source": {"namespace": ["ns"], "name": "b"},
                    "destination": {"namespace": ["ns"], "name": "c"}}),
        )
        .await,
        204,
    )
    .await;
    let response = app.delete(&format!("{base}/namespaces/ns/tables/c")).await;
    assert_eq!(response.status(), 204);
    // Branches: created, a commit on it, merged, deleted; and a warehouse change.
    let warehouse = app.prefix("demo").await;
    let api = |path: &str| format!("/management/v1/warehouses/{warehouse}/{path}");
    ok(
        app.post(&api("branches"), &json!({"name": "dev", "from": "main"}))
            .await,
        201,
    )
    .await;
    set_property(
        &app,
        &format!("/catalog/v1/{warehouse}@dev"),
        "a",
        "on",
        "dev",
    )
    .await;
    ok(
        app.post(&api("merge"), &json!({"source": "dev", "target": "main"}))
            .await,
        200,
    )
    .await;
    let response = app.delete(&api("branches/dev")).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());

    let expected = [
        ("io.floe.namespace.created", None),
        ("io.floe.table.created", Some("a")),
        ("io.floe.table.created", Some("b")),
        ("io.floe.table.committed", Some("a")),
        ("io.floe.table.committed", Some("a")),
        ("io.floe.table.committed", Some("a")),
        ("io.floe.table.committed", Some("a")),
        ("io.floe.table.committed", Some("b")),
        ("io.floe.table.renamed", Some("c")),
        ("io.floe.table.dropped", Some("c")),
        ("io.floe.branch.created", None),
        ("io.floe.table.committed", Some("a")),
        ("io.floe.branch.merged", None),
        ("io.floe.branch.deleted", None),
    ];
    let messages = wait_for(&nats, "EV1", expected.len()).await;
    // Nothing more comes (no event twice).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages_later = nats.messages("EV1").await;
    assert_eq!(messages_later.len(), expected.len(), "{messages_later:#?}");
    let got: Vec<(String, Option<String>)> = messages
        .iter()
        .map(|(_, e)| {
            (
                e["type"].as_str().unwrap().to_string(),
                e.get("table").and_then(|t| t.as_str()).map(str::to_string),
            )
        })
        .collect();
    let want: Vec<(String, Option<String>)> = expected
        .iter()
        .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
        .collect();
    assert_eq!(got, want);
    for (id, event) in &messages[..10] {
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(&event["id"], id, "the message id is the event id");
        assert_eq!(event["ref"], "main");
        assert!(event["commitid"].is_string());
        assert!(event["time"].is_string());
    }
    assert_eq!(messages[10].1["ref"], "dev");
    assert_eq!(
        messages[10].1["subject"],
        format!("warehouse/{warehouse}/branch/dev")
    );
    assert_eq!(messages[11].1["ref"], "dev");
    assert_eq!(messages[12].1["ref"], "main");
    assert_eq!(messages[12].1["data"]["source"], "dev");
    assert_eq!(messages[12].1["data"]["changes"][0]["name"], "a");
    assert_eq!(messages[13].1["type"], "io.floe.branch.deleted");
    // Per table, the commits' metadata locations follow each other.
    let a: Vec<&Value> = messages[..10]
        .iter()
        .filter(|(_, e)| e["table"] == "a")
        .map(|(_, e)| &e["data"]["metadata-location"])
        .collect();
    assert_eq!(a.len(), 5);
    let mut seen = std::collections::HashSet::new();
    assert!(a.iter().all(|l| seen.insert(l.as_str().unwrap())));
    assert_eq!(
        messages[3].1["data"]["updates"][0]["action"],
        "set-properties"
    );
    // The transaction's two events name one commit.
    assert_eq!(messages[6].1["commitid"], messages[7].1["commitid"]);
    assert_ne!(messages[5].1["commitid"], messages[6].1["commitid"]);
    assert_eq!(messages[8].1["data"]["from"]["name"], "b");
    assert_eq!(messages[9].1["data"]["purge-requested"], false);

    // The feed holds the same events as the stream, in the same order.
    wait_relayed(&app).await;
    let (feed, _) = read_feed(&app, &warehouse, json!({}), None).await;
    let feed_ids: Vec<&str> = feed
        .iter()
        .filter(|e| e["x-floe-ref"] == "main")
        .map(|e| e["event-id"].as_str().unwrap())
        .collect();
    let stream_ids: Vec<&str> = messages
        .iter()
        .filter(|(_, e)| e["ref"] == "main")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(feed_ids, stream_ids);

    // Management changes go through the outbox too.
    let role = app
        .post("/management/v1/roles", &json!({"name": "analysts"}))
        .await;
    assert!(role.status().is_success(), "{}", role.text().await.unwrap());
    let project = ok(
        app.post("/management/v1/projects", &json!({"name": "p2"}))
            .await,
        201,
    )
    .await;
    let id = project["id"].as_str().unwrap();
    ok(
        app.post(
            &format!("/management/v1/projects/{id}/rename"),
            &json!({"name": "p3"}),
        )
        .await,
        200,
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let types = loop {
        let types: Vec<String> = nats
            .all_messages("EV1")
            .await
            .iter()
            .filter(|(_, e)| e["subject"] == format!("project/{id}"))
            .map(|(_, e)| e["type"].as_str().unwrap().to_string())
            .collect();
        if types.len() >= 2 || std::time::Instant::now() > deadline {
            break types;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        types,
        ["io.floe.project.created", "io.floe.project.renamed"]
    );
    assert!(
        nats.all_messages("EV1")
            .await
            .iter()
            .any(|(_, e)| e["type"] == "io.floe.role.created" && e["data"]["name"] == "analysts")
    );

    // A purge that deleted the files says so, after the drop (of a table no other ref uses).
    create_table(&app, &base, "p").await;
    let dropped = app
        .delete(&format!(
            "{base}/namespaces/ns/tables/p?purgeRequested=true"
        ))
        .await;
    assert_eq!(dropped.status(), 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = nats.all_messages("EV1").await;
        let drop_at = all
            .iter()
            .position(|(_, e)| e["type"] == "io.floe.table.dropped" && e["table"] == "p");
        let purged_at = all
            .iter()
            .position(|(_, e)| e["type"] == "io.floe.table.purged");
        if let (Some(d), Some(p)) = (drop_at, purged_at) {
            assert!(d < p);
            assert_eq!(
                all[p].1["subject"],
                format!("warehouse/{warehouse}/table/ns.p")
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no purged event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ready = ok(app.get("/ready").await, 200).await;
    assert_eq!(ready["events"]["pending"], 0, "{ready}");
    assert_eq!(ready["events"]["publishers"]["nats"], "ok", "{ready}");
    app.shutdown().await.unwrap();
}

async fn with_nats_down_events_wait_and_arrive_once_it_is_back(backend: Backend) {
    let mut nats = Nats::start();
    let app = app_with_nats(backend, &nats, "EV2").await;
    let base = format!("/catalog/v1/{}", app.prefix("demo").await);
    ok(
        app.post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
            .await,
        200,
    )
    .await;
    assert_eq!(wait_for(&nats, "EV2", 1).await.len(), 1);

    nats.stop();
    // Changes go on while NATS is down; their events wait in the database.
    for name in ["t1", "t2", "t3"] {
        create_table(&app, &base, name).await;
    }
    let ready = ok(app.get("/ready").await, 200).await;
    assert_eq!(
        ready["status"], "ready",
        "NATS down does not make Floe unready: {ready}"
    );
    assert_eq!(ready["events"]["pending"], 3, "{ready}");
    assert_ne!(ready["events"]["publishers"]["nats"], "ok", "{ready}");

    nats.resume();
    let messages = wait_for(&nats, "EV2", 4).await;
    let names: Vec<&str> = messages
        .iter()
        .filter_map(|(_, e)| e["table"].as_str())
        .collect();
    assert_eq!(names, ["t1", "t2", "t3"], "{messages:#?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ready = ok(app.get("/ready").await, 200).await;
        if ready["events"]["pending"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.shutdown().await.unwrap();
}

on_both_backends!(
    every_branch_change_has_one_event_in_order,
    with_nats_down_events_wait_and_arrive_once_it_is_back,
    no_event_is_lost_through_kill_9_and_a_nats_outage,
    the_events_feed_pages_resumes_and_filters,
    with_events_off_the_feed_is_not_served,
);

/// One `floe` process of the crash test, on a port found free.
struct Instance {
    child: std::process::Child,
    base: String,
}

fn start_instance(db: &TestDb, nats: &Nats, stream: &str, log: &std::path::Path) -> Instance {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_floe"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--s3-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(db.dir.path().join("data"))
        .env_remove("RUST_LOG")
        .env("FLOE__LOG__LEVEL", "warn")
        .env("FLOE__DATABASE__URL", &db.url)
        .env("FLOE__DATABASE__AUTO_MIGRATE", "true")
        .env("FLOE__BOOTSTRAP__AUTO", "true")
        .env("FLOE__SECRETS__ENCRYPTION_KEY", crate::common::TEST_KEY)
        .env("FLOE__EVENTS__BACKENDS", "[nats]")
        .env("FLOE__EVENTS__NATS__URL", nats.url())
        .env("FLOE__EVENTS__NATS__STREAM", stream)
        .env("FLOE__EVENTS__NATS__TIMEOUT_MS", "1000")
        .stdout(Stdio::null())
        .stderr(log);
    Instance {
        child: command.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/ready")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{base} did not get ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Commits from several clients (one table each, so that each table's acknowledged commits are
/// in the order they landed) while instances are killed with SIGKILL and restarted, and NATS is
/// stopped for a while and started again: afterwards every acknowledged commit has exactly one
/// event in the stream, in order per table. On PostgreSQL two instances serve and relay at once.
async fn no_event_is_lost_through_kill_9_and_a_nats_outage(backend: Backend) {
    use std::sync::{Arc, Mutex};
    let instances = if backend == Backend::Postgres { 2 } else { 1 };
    let outage: u64 = std::env::var("FLOE_TEST_NATS_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let mut nats = Nats::start();
    let db = TestDb::new(backend).await;
    let log = db.dir.path().join("floe.log");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut running: Vec<Instance> = Vec::new();
    for _ in 0..instances {
        let instance = start_instance(&db, &nats, "EV3", &log);
        wait_ready(&client, &instance.base).await;
        running.push(instance);
    }
    let bases: Arc<Mutex<Vec<String>>> =
        Arc::new(Mutex::new(running.iter().map(|i| i.base.clone()).collect()));
    let config: Value = client
        .get(format!(
            "{}/catalog/v1/config?warehouse=demo",
            running[0].base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prefix = config["overrides"]["prefix"].as_str().unwrap().to_string();
    let tables = ["t0", "t1", "t2", "t3"];
    let at = |base: &str, path: &str| format!("{base}/catalog/v1/{prefix}{path}");
    let first = running[0].base.clone();
    let made = client
        .post(at(&first, "/namespaces"))
        .json(&json!({"namespace": ["ns"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    for table in tables {
        let made = client
            .post(at(&first, "/namespaces/ns/tables"))
            .json(&json!({"name": table, "schema": schema()}))
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), 200, "{}", made.text().await.unwrap());
    }

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (i, table) in tables.into_iter().enumerate() {
        let (client, bases, stop, prefix) =
            (client.clone(), bases.clone(), stop.clone(), prefix.clone());
        writers.push(tokio::spawn(async move {
            let mut acked: Vec<String> = Vec::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let base = {
                    let bases = bases.lock().unwrap();
                    bases[(i + n as usize) % bases.len()].clone()
                };
                n += 1;
                let sent = client
                    .post(format!(
                        "{base}/catalog/v1/{prefix}/namespaces/ns/tables/{table}"
                    ))
                    .json(&json!({"requirements": [], "updates": [
                        {"action": "set-properties", "updates": {"n": n.to_string()}}]}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        let body: Value = r.json().await.unwrap();
                        acked.push(body["metadata-location"].as_str().unwrap().to_string());
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            (table, acked)
        }));
    }

    // SIGKILL an instance every 1.5 s (alternating), restarted at once on a new port.
    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let victim = round % instances;
        running[victim].child.kill().unwrap();
        running[victim].child.wait().unwrap();
        let instance = start_instance(&db, &nats, "EV3", &log);
        wait_ready(&client, &instance.base).await;
        bases.lock().unwrap()[victim] = instance.base.clone();
        running[victim] = instance;
    }
    // NATS away while commits go on, and one more SIGKILL while it is.
    nats.stop();
    tokio::time::sleep(Duration::from_secs(outage / 2)).await;
    running[0].child.kill().unwrap();
    running[0].child.wait().unwrap();
    let instance = start_instance(&db, &nats, "EV3", &log);
    wait_ready(&client, &instance.base).await;
    bases.lock().unwrap()[0] = instance.base.clone();
    running[0] = instance;
    tokio::time::sleep(Duration::from_secs(outage - outage / 2)).await;
    let ready: Value = client
        .get(format!("{}/ready", running[0].base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        ready["events"]["pending"].as_u64().unwrap() > 0,
        "events wait while NATS is down: {ready}"
    );
    nats.resume();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for writer in writers {
        acked.push(writer.await.unwrap());
    }

    // Everything relayed: nothing pending.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready: Value = client
            .get(format!("{}/ready", running[0].base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["events"]["pending"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still pending: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let messages = nats.messages("EV3").await;
    let mut ids = std::collections::HashSet::new();
    for (id, _) in &messages {
        assert!(ids.insert(id.clone()), "event {id} is in the stream twice");
    }
    let mut total = 0;
    for (table, locations) in &acked {
        assert!(!locations.is_empty(), "{table}: no commit was acknowledged");
        total += locations.len();
        let events: Vec<&str> = messages
            .iter()
            .filter(|(_, e)| e["type"] == "io.floe.table.committed" && e["table"] == *table)
            .map(|(_, e)| e["data"]["metadata-location"].as_str().unwrap())
            .collect();
        // Exactly one event per acknowledged commit, in the order they landed (events of
        // commits whose answer was lost to a kill may sit between them).
        let mut position = 0;
        for location in locations {
            let found = events.iter().filter(|e| **e == location).count();
            assert_eq!(found, 1, "{table}: {location} has {found} events");
            let at = events.iter().position(|e| *e == location).unwrap();
            assert!(at >= position, "{table}: {location} is out of order");
            position = at;
        }
    }
    eprintln!(
        "{backend:?}: {total} acknowledged commits, {} events in the stream",
        messages.len()
    );
    for mut instance in running {
        let _ = instance.child.kill();
        let _ = instance.child.wait();
    }
}

/// Every page of the feed from `token` on (of `prefix`, with `filter` added to each request).
async fn read_feed(
    app: &TestApp,
    prefix: &str,
    filter: Value,
    token: Option<String>,
) -> (Vec<Value>, String) {
    let mut events = Vec::new();
    let mut token = token;
    loop {
        let mut request = filter.clone();
        request["page-size"] = json!(3);
        if let Some(t) = &token {
            request["continuation-token"] = json!(t);
        }
        let page = ok(
            app.post(&format!("/catalog/v1/{prefix}/events"), &request)
                .await,
            200,
        )
        .await;
        let got = page["events"].as_array().unwrap().clone();
        let next = page["next-page-token"].as_str().unwrap().to_string();
        let done = got.is_empty();
        events.extend(got);
        token = Some(next.clone());
        if done {
            return (events, next);
        }
    }
}

async fn wait_relayed(app: &TestApp) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = ok(app.get("/ready").await, 200).await;
        if ready["events"]["pending"] == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn operation_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e["operation"]["operation-type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|t| t != "custom")
        .collect()
}

/// The events feed (the Iceberg REST events proposal) with no NATS at all (the default log
/// publisher): every change on the prefix's branch in order, paged and resumable, filtered by
/// operation, object and UUID; other branches' changes only on their own prefix.
async fn the_events_feed_pages_resumes_and_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    if backend == Backend::Postgres {
        app.create_local_warehouse("demo").await;
    }
    let warehouse = app.prefix("demo").await;
    let base = format!("/catalog/v1/{warehouse}");
    ok(
        app.post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
            .await,
        200,
    )
    .await;
    let mut uuids = Vec::new();
    for name in ["a", "b"] {
        let made = create_table(&app, &base, name).await;
        uuids.push(made["metadata"]["table-uuid"].as_str().unwrap().to_string());
    }
    for i in 0..2 {
        set_property(&app, &base, "a", "n", &i.to_string()).await;
    }
    let renamed = app
        .post(
            &format!("{base}/tables/rename"),
            &json!({"source": {"namespace": ["ns"], "name": "b"},
                    "destination": {"namespace": ["ns"], "name": "c"}}),
        )
        .await;
    assert_eq!(renamed.status(), 204);
    let api = |path: &str| format!("/management/v1/warehouses/{warehouse}/{path}");
    ok(
        app.post(&api("branches"), &json!({"name": "dev", "from": "main"}))
            .await,
        201,
    )
    .await;
    set_property(
        &app,
        &format!("/catalog/v1/{warehouse}@dev"),
        "a",
        "on",
        "dev",
    )
    .await;
    wait_relayed(&app).await;

    let (events, end) = read_feed(&app, &warehouse, json!({}), None).await;
    assert_eq!(
        operation_types(&events),
        [
            "create-namespace",
            "create-table",
            "create-table",
            "update-table",
            "update-table",
            "rename-table"
        ],
        "{events:#?}"
    );
    let update = events
        .iter()
        .find(|e| e["operation"]["operation-type"] == "update-table")
        .unwrap();
    assert_eq!(
        update["operation"]["identifier"],
        json!({"namespace": ["ns"], "name": "a"})
    );
    assert_eq!(update["operation"]["table-uuid"], uuids[0].as_str());
    assert_eq!(
        update["operation"]["updates"][0]["action"],
        "set-properties"
    );
    assert!(update["event-id"].is_string() && update["timestamp-ms"].is_i64());
    assert_eq!(update["x-floe-ref"], "main");
    let mut ids = std::collections::HashSet::new();
    assert!(
        events.iter().all(|e| ids.insert(e["event-id"].to_string())),
        "no event twice"
    );

    // The branch's own changes are on its prefix.
    let (dev, _) = read_feed(&app, &format!("{warehouse}@dev"), json!({}), None).await;
    assert_eq!(operation_types(&dev), ["update-table"], "{dev:#?}");
    assert!(
        dev.iter()
            .any(|e| e["operation"]["custom-type"] == "x-floe-branch.created")
    );

    // Filters.
    let (updates, _) = read_feed(
        &app,
        &warehouse,
        json!({"operation-types": ["update-table"]}),
        None,
    )
    .await;
    assert_eq!(updates.len(), 2);
    let (about_c, _) = read_feed(
        &app,
        &warehouse,
        json!({"catalog-objects-by-name": [["ns", "c"]]}),
        None,
    )
    .await;
    assert_eq!(operation_types(&about_c), ["rename-table"]);
    let (about_a, _) = read_feed(
        &app,
        &warehouse,
        json!({"catalog-objects-by-id": [uuids[0]]}),
        None,
    )
    .await;
    assert_eq!(
        operation_types(&about_a),
        ["create-table", "update-table", "update-table"]
    );
    let (namespaces, _) = read_feed(
        &app,
        &warehouse,
        json!({"object-types": ["namespace"]}),
        None,
    )
    .await;
    assert_eq!(operation_types(&namespaces), ["create-namespace"]);

    // Resuming from the end gives only what came after.
    let dropped = app.delete(&format!("{base}/namespaces/ns/tables/c")).await;
    assert_eq!(dropped.status(), 204);
    wait_relayed(&app).await;
    let (later, _) = read_feed(&app, &warehouse, json!({}), Some(end)).await;
    assert_eq!(operation_types(&later), ["drop-table"]);

    // A token that is not one is a client error.
    let bad = app
        .post(
            &format!("{base}/events"),
            &json!({"continuation-token": "x"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let unknown = app
        .post(&format!("{base}/events"), &json!({"pageSize": 1}))
        .await;
    assert_eq!(unknown.status(), 400, "unknown fields are refused");
    // Advertised in /v1/config.
    let config = ok(app.get("/catalog/v1/config?warehouse=demo").await, 200).await;
    assert!(
        config["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "POST /v1/{prefix}/events")
    );
    app.shutdown().await.unwrap();
}

/// With no events backend nothing is recorded, and the feed is neither served nor advertised.
async fn with_events_off_the_feed_is_not_served(backend: Backend) {
    let db = std::sync::Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(db, |config| config.events.backends = Vec::new()).await;
    if backend == Backend::Postgres {
        ok(
            app.post("/management/v1/bootstrap", &Value::Null).await,
            200,
        )
        .await;
        app.create_local_warehouse("demo").await;
    }
    let warehouse = app.prefix("demo").await;
    let response = app
        .post(&format!("/catalog/v1/{warehouse}/events"), &json!({}))
        .await;
    assert_eq!(response.status(), 404);
    let config = ok(app.get("/catalog/v1/config?warehouse=demo").await, 200).await;
    assert!(
        !config["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().ends_with("/events"))
    );
    ok(
        app.post(
            &format!("/catalog/v1/{warehouse}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await,
        200,
    )
    .await;
    let ready = ok(app.get("/ready").await, 200).await;
    assert_eq!(
        ready["events"]["pending"], 0,
        "nothing is recorded: {ready}"
    );
    app.shutdown().await.unwrap();
}
