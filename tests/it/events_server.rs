//! The bootstrap and users' provisioning and deletion write their events in their own
//! transaction too (the outbox: with NATS down they wait, and arrive in order once it is back),
//! and a refused change writes none.

use std::sync::Arc;
use std::time::Duration;

use floe::error::{Entity, ErrorKind};
use floe::model::UserKind;
use floe::service::{ProvisionUser, RequestContext};
use serde_json::json;

use crate::common::{Backend, TestApp, TestDb};
use crate::events::Nats;

async fn the_bootstrap_and_users_have_their_events(backend: Backend) {
    let nats = Nats::start();
    let url = nats.url();
    let db = Arc::new(TestDb::new(backend).await);
    let app = TestApp::spawn_on(db, move |config| {
        config.events.backends = vec![floe::config::EventsBackend::Nats];
        config.events.nats.url = url;
        config.events.nats.stream = "SERVER_EVENTS".into();
        config.events.nats.timeout_ms = 1_000;
        // Users belong to a provider; this one is never asked (the calls below are the
        // server's own, not requests with tokens).
        config.authn.providers = vec![
            serde_json::from_value(json!({"id": "idp", "kind": "oidc",
                "issuer": "http://127.0.0.1:9/", "audiences": ["floe"]}))
            .unwrap(),
        ];
    })
    .await;
    let services = app.services();
    let system = RequestContext::system();
    // SQLite bootstraps itself at start (its event is relayed at once); PostgreSQL is
    // bootstrapped by a call, below, with NATS down: these events can only wait in the outbox.
    if backend == Backend::Sqlite {
        assert_eq!(server_and_user_events(&nats, 1).await.len(), 1);
    }
    let mut nats = nats;
    nats.stop();
    if backend == Backend::Postgres {
        services.bootstrap(&system).await.unwrap();
    }
    // Refused: no event.
    let err = services.bootstrap(&system).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    let alice = || ProvisionUser {
        id: "idp~alice".into(),
        name: Some("Alice".into()),
        email: None,
        kind: UserKind::Human,
    };
    assert!(services.provision_user(&system, alice()).await.unwrap().1);
    assert!(!services.provision_user(&system, alice()).await.unwrap().1);
    services.delete_user(&system, "idp~alice").await.unwrap();
    let err = services
        .delete_user(&system, "idp~alice")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::User));
    let ready: serde_json::Value = app.get("/ready").await.json().await.unwrap();
    let pending = ready["events"]["pending"].as_u64().unwrap();
    let expected = if backend == Backend::Postgres { 4 } else { 3 };
    assert!(pending >= expected, "{ready}");
    nats.resume();
    services.wake_relay();

    let wanted = [
        "io.floe.server.bootstrapped",
        "io.floe.user.created",
        "io.floe.user.updated",
        "io.floe.user.deleted",
    ];
    assert_eq!(server_and_user_events(&nats, wanted.len()).await, wanted);
}

/// The types of the stream's server and user events, once it holds `count` of them (or 30 s
/// passed).
async fn server_and_user_events(nats: &Nats, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let types: Vec<String> = nats
            .all_messages("SERVER_EVENTS")
            .await
            .into_iter()
            .map(|(_, e)| e["type"].as_str().unwrap_or_default().to_string())
            .filter(|t| t.starts_with("io.floe.server.") || t.starts_with("io.floe.user."))
            .collect();
        if types.len() >= count || std::time::Instant::now() > deadline {
            return types;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// NATS that asks for a token: with a wrong one Floe still serves and the events wait in the
/// outbox (the publisher is down in `/ready`); with the right one they arrive. No credential
/// reaches `/ready` or the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_token_is_used() {
    let nats = Nats::start_with(
        vec!["--auth".into(), "s3cret-token".into()],
        Some("s3cret-token".into()),
    );
    let db = Arc::new(TestDb::new(Backend::Sqlite).await);
    let with = |token: &'static str, url: String| {
        move |config: &mut floe::config::Config| {
            config.events.backends = vec![floe::config::EventsBackend::Nats];
            config.events.nats.url = url;
            config.events.nats.stream = "AUTH_EVENTS".into();
            config.events.nats.timeout_ms = 1_000;
            config.events.nats.token = Some(token.into());
        }
    };
    let app = TestApp::spawn_on(db.clone(), with("wrong-token", nats.url())).await;
    let ready: serde_json::Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert!(ready["events"]["pending"].as_u64().unwrap() >= 1, "{ready}");
    let shown = ready.to_string();
    assert!(
        !shown.contains("wrong-token") && !shown.contains("s3cret-token"),
        "{shown}"
    );
    app.shutdown().await.unwrap();

    let _app = TestApp::spawn_on(db, with("s3cret-token", nats.url())).await;
    let types = server_and_user_events_in(&nats, "AUTH_EVENTS", 1).await;
    assert_eq!(types, ["io.floe.server.bootstrapped"]);
    let logs = crate::common::captured_logs();
    assert!(!logs.contains("s3cret-token") && !logs.contains("wrong-token"));
}

/// NATS that asks for a user and password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_user_and_password_are_used() {
    let nats = Nats::start_with(
        vec![
            "--user".into(),
            "floe".into(),
            "--pass".into(),
            "pa55-w0rd".into(),
        ],
        None,
    );
    let url = nats.url();
    let _app = TestApp::spawn_on(
        Arc::new(TestDb::new(Backend::Sqlite).await),
        move |config| {
            config.events.backends = vec![floe::config::EventsBackend::Nats];
            config.events.nats.url = url;
            config.events.nats.user = Some("floe".into());
            config.events.nats.password = Some("pa55-w0rd".into());
            config.events.nats.stream = "USER_EVENTS".into();
            config.events.nats.timeout_ms = 1_000;
        },
    )
    .await;
    let client =
        async_nats::ConnectOptions::with_user_and_password("floe".into(), "pa55-w0rd".into())
            .connect(nats.url())
            .await
            .unwrap();
    wait_for_a_message(client, "USER_EVENTS", "no event arrived").await;
    assert!(!crate::common::captured_logs().contains("pa55-w0rd"));
}

/// NATS whose user is an NKey (a server configured with the user's public key; Floe signs the
/// server's challenge with the seed, which never leaves it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_nkey_is_used() {
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let nats = Nats::start_with(vec!["-c".into(), conf.display().to_string()], None);
    let url = nats.url();
    let floe_seed = seed.clone();
    let _app = TestApp::spawn_on(
        Arc::new(TestDb::new(Backend::Sqlite).await),
        move |config| {
            config.events.backends = vec![floe::config::EventsBackend::Nats];
            config.events.nats.url = url;
            config.events.nats.nkey_seed = Some(floe_seed);
            config.events.nats.stream = "NKEY_EVENTS".into();
            config.events.nats.timeout_ms = 1_000;
        },
    )
    .await;
    let client = async_nats::ConnectOptions::with_nkey(seed.clone())
        .connect(nats.url())
        .await
        .unwrap();
    wait_for_a_message(client, "NKEY_EVENTS", "no event arrived").await;
    assert!(!crate::common::captured_logs().contains(&seed));
}

/// NATS that speaks TLS only, with a certificate of a CA Floe is told to trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_over_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (ca, cert, key) = (path("ca.pem"), path("cert.pem"), path("key.pem"));
    std::fs::write(
        path("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let steps: [Vec<String>; 3] = [
        // A CA of the test's own, then a server certificate it signs.
        "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=floe-test-ca"
            .split(' ')
            .map(String::from)
            .chain(["-keyout".into(), path("ca.key"), "-out".into(), ca.clone()])
            .collect(),
        "req -newkey rsa:2048 -nodes -subj /CN=localhost"
            .split(' ')
            .map(String::from)
            .chain([
                "-keyout".into(),
                key.clone(),
                "-out".into(),
                path("req.csr"),
            ])
            .collect(),
        "x509 -req -days 1 -CAcreateserial"
            .split(' ')
            .map(String::from)
            .chain([
                "-in".into(),
                path("req.csr"),
                "-CA".into(),
                ca.clone(),
                "-CAkey".into(),
                path("ca.key"),
                "-extfile".into(),
                path("ext.cnf"),
                "-out".into(),
                cert.clone(),
            ])
            .collect(),
    ];
    for args in steps {
        let made = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl runs");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let nats = Nats::start_with(
        vec![
            "--tls".into(),
            "--tlscert".into(),
            cert.clone(),
            "--tlskey".into(),
            key.clone(),
        ],
        None,
    );
    let url = nats.url();
    let trusted = std::path::PathBuf::from(&ca);
    let _app = TestApp::spawn_on(
        Arc::new(TestDb::new(Backend::Sqlite).await),
        move |config| {
            config.events.backends = vec![floe::config::EventsBackend::Nats];
            config.events.nats.url = url;
            config.events.nats.tls_required = true;
            config.events.nats.tls_ca_file = Some(trusted);
            config.events.nats.stream = "TLS_EVENTS".into();
            config.events.nats.timeout_ms = 1_000;
        },
    )
    .await;
    let client = async_nats::ConnectOptions::new()
        .require_tls(true)
        .add_root_certificates(std::path::PathBuf::from(&ca))
        .connect(nats.url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = js.get_stream("TLS_EVENTS").await
            && stream.info().await.unwrap().state.messages >= 1
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event arrived over TLS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 30 s) until the stream holds a message, reading it with `client`.
async fn wait_for_a_message(client: async_nats::Client, stream: &str, failure: &str) {
    let js = async_nats::jetstream::new(client);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut found) = js.get_stream(stream).await
            && found.info().await.unwrap().state.messages >= 1
        {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn server_and_user_events_in(nats: &Nats, stream: &str, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let types: Vec<String> = nats
            .all_messages(stream)
            .await
            .into_iter()
            .map(|(_, e)| e["type"].as_str().unwrap_or_default().to_string())
            .filter(|t| t.starts_with("io.floe.server.") || t.starts_with("io.floe.user."))
            .collect();
        if types.len() >= count || std::time::Instant::now() > deadline {
            return types;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_backends!(the_bootstrap_and_users_have_their_events);
