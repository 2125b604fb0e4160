//! Test harness: fresh databases (a SQLite file in a temp dir, or a new PostgreSQL database) and
//! `spawn_app`, which runs a real Floe on `127.0.0.1:0` and hands back a client for it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use floe::config::Config;
use floe::server::Floe;
use floe::store::Persistence;
use serde_json::Value;
use sqlx::Connection;
use tempfile::TempDir;

/// The PostgreSQL server tests create their databases on (`FLOE_TEST_POSTGRES_URL`).
pub fn postgres_admin_url() -> String {
    std::env::var("FLOE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fixed key for tests; every instance of one test shares it.
pub const TEST_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database; a PostgreSQL one is dropped when this is dropped.
pub struct TestDb {
    pub backend: Backend,
    pub dir: TempDir,
    pub url: String,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
                TestDb {
                    backend,
                    dir,
                    url,
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("floe_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL is required for these tests ({admin}): {e}")
                    });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let (base, _) = admin.rsplit_once('/').unwrap();
                TestDb {
                    backend,
                    dir,
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A configuration that uses this database, a data dir inside the temp dir, and a free port.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.gateway.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.storage.data_dir = self.dir.path().join("data");
        // Tests keep their warehouses in the temp dir, beside the data folder.
        config.storage.local_roots = vec![self.dir.path().to_path_buf()];
        config.database.url = Some(self.url.clone());
        config.database.max_connections = 5;
        config.database.auto_migrate = Some(true);
        config.server.shutdown_timeout_secs = 5;
        if self.backend == Backend::Postgres {
            config.secrets.encryption_key = Some(TEST_KEY.to_string());
        }
        config
    }

    pub async fn persistence(&self) -> Persistence {
        floe::server::open_persistence(&self.config(), true)
            .await
            .unwrap()
    }

    /// Runs one statement on the test database, beside the store (to age a row, say).
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
        }
    }

    /// Ends every connection to the PostgreSQL test database that is waiting on `LISTEN` (the
    /// table change listeners); returns how many were ended.
    pub async fn end_listeners(&self) -> i64 {
        let name = self.pg_name.as_ref().expect("a PostgreSQL test database");
        let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .unwrap();
        sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap()
    }

    /// The server processes of the connections to the PostgreSQL test database that wait on
    /// `LISTEN` (the table change listeners).
    pub async fn listener_pids(&self) -> Vec<i32> {
        let name = self.pg_name.as_ref().expect("a PostgreSQL test database");
        let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .unwrap();
        sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%' \
             ORDER BY pid",
        )
        .bind(name)
        .fetch_all(&mut conn)
        .await
        .unwrap()
    }

    /// Drops a PostgreSQL test database now, with its open connections (to simulate an outage).
    pub async fn kill_postgres(&self) {
        if let Some(name) = &self.pg_name {
            let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Dropped from inside a runtime: do the async work on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A running Floe and an HTTP client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The S3 gateway's address (enabled in tests, on a free port).
    pub s3_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub db: Arc<TestDb>,
    services: floe::service::Services,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// A Floe on a fresh database, bootstrapped (SQLite bootstraps itself; PostgreSQL is
    /// bootstrapped through the API).
    pub async fn spawn(backend: Backend) -> TestApp {
        let app = Self::spawn_unbootstrapped(backend).await;
        if backend == Backend::Postgres {
            let response = app.post("/management/v1/bootstrap", &Value::Null).await;
            assert_eq!(response.status(), 200);
        }
        app
    }

    /// A Floe that has not been bootstrapped (PostgreSQL) or bootstrapped itself (SQLite).
    pub async fn spawn_unbootstrapped(backend: Backend) -> TestApp {
        let db = Arc::new(TestDb::new(backend).await);
        Self::spawn_on(db, |_| {}).await
    }

    /// A Floe on an existing database, with the configuration adjusted by `tweak`.
    pub async fn spawn_on(db: Arc<TestDb>, tweak: impl FnOnce(&mut Config)) -> TestApp {
        init_log_capture();
        let mut config = db.config();
        tweak(&mut config);
        let floe = Floe::build(&config).await.expect("floe starts");
        let addr = floe.local_addr();
        let s3_addr = floe.s3_addr();
        let services = floe.services.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(floe.run(async move {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            s3_addr,
            client: reqwest::Client::new(),
            db,
            services,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The running server's use cases, for checks the HTTP API deliberately cannot make.
    pub fn services(&self) -> &floe::service::Services {
        &self.services
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Signals shutdown and waits for the server to return.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn head(&self, path: &str) -> reqwest::Response {
        self.client.head(self.url(path)).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        let request = self.client.post(self.url(path));
        let request = if body.is_null() {
            request
        } else {
            request.json(body)
        };
        request.send().await.unwrap()
    }

    pub async fn put(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The catalog prefix of a warehouse, from `/v1/config`.
    pub async fn prefix(&self, warehouse: &str) -> String {
        let response = self
            .get(&format!("/catalog/v1/config?warehouse={warehouse}"))
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["overrides"]["prefix"].as_str().unwrap().to_string()
    }

    /// Creates a local warehouse under the test's temp dir and returns its id.
    pub async fn create_local_warehouse(&self, name: &str) -> String {
        let root = self.db.dir.path().join("wh").join(name);
        let response = self
            .post(
                "/management/v1/warehouses",
                &serde_json::json!({
                    "name": name,
                    "storage-profile": {"type": "local", "root": root},
                }),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Reads a JSON body and checks the Iceberg error shape: `{"error": {message, type, code}}` with
/// `code` equal to the status. Returns `(type, message)`.
pub async fn expect_error(response: reqwest::Response, status: u16) -> (String, String) {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let body: Value = response.json().await.expect("error bodies are JSON");
    let error = body["error"].as_object().expect("an `error` object");
    assert_eq!(error["code"].as_u64(), Some(u64::from(status)), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    (
        error["type"].as_str().expect("type").to_string(),
        error["message"].as_str().expect("message").to_string(),
    )
}

/// Everything Floe logged in this test process (debug level and up), for checks that secrets
/// never reach a log line.
/// Waits (up to 20 s) until `count` purges of the table with `uuid` have finished (every purge
/// asked for ends in exactly one `purge finished` line) and returns their outcomes in order.
pub async fn purge_outcomes(uuid: &str, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let logs = captured_logs();
        let outcomes: Vec<String> = logs
            .lines()
            .filter(|l| l.contains("purge finished") && l.contains(uuid))
            .map(|line| {
                let outcome = line
                    .split("outcome=")
                    .nth(1)
                    .unwrap_or_else(|| panic!("no outcome in {line}"));
                outcome
                    .trim_start_matches('"')
                    .split('"')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        if outcomes.len() >= count {
            return outcomes;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {count} purges of {uuid} finished",
            outcomes.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub fn captured_logs() -> String {
    let buffer = LOGS.get().expect("log capture is on");
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_log_capture() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    });
}

/// The repository root, for files checked in beside the code.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
