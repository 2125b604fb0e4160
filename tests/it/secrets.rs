//! The `SecretStore` conformance suite, run by the in-tree default (`DbSecretStore`) over both
//! database backends.

use std::sync::Arc;

use floe::error::{Entity, ErrorKind};
use floe::model::SecretId;
use floe::secrets::{DbSecretStore, SecretStore, SecretValue, parse_key};

use crate::common::{Backend, TEST_KEY, TestDb};

/// The `SecretStore` conformance suite (also run by the Vault store, in `vault.rs`).
pub async fn suite(store: &dyn SecretStore) {
    let value = SecretValue(b"{\"secret-access-key\":\"s3cr3t\"}".to_vec());
    let id = store.create(&value).await.unwrap();
    assert_eq!(store.read(id).await.unwrap(), value);

    let other = store.create(&value).await.unwrap();
    assert_ne!(id, other);

    let rotated = SecretValue(b"rotated".to_vec());
    store.update(id, &rotated).await.unwrap();
    assert_eq!(store.read(id).await.unwrap(), rotated);
    assert_eq!(store.read(other).await.unwrap(), value);

    store.delete(id).await.unwrap();
    let err = store.read(id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Secret));
    let err = store.update(id, &rotated).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound(Entity::Secret));
    store.delete(id).await.unwrap();
    store.health().await.unwrap();
}

async fn db_secret_store(backend: Backend) {
    let db = TestDb::new(backend).await;
    let persistence = db.persistence().await;
    let key = parse_key(TEST_KEY).unwrap();
    let store = DbSecretStore::new(floe::server::secret_rows(&persistence), &key);
    suite(&store).await;

    // What the database holds is ciphertext, bound to its row.
    let plain = b"plain-text-credential-value".to_vec();
    let id = store.create(&SecretValue(plain.clone())).await.unwrap();
    let sealed = persistence.secrets.get_secret(id).await.unwrap().unwrap();
    assert!(
        !sealed
            .ciphertext
            .windows(plain.len())
            .any(|w| w == plain.as_slice())
    );
    let moved = SecretId::new();
    persistence
        .secrets
        .put_secret(moved, &sealed)
        .await
        .unwrap();
    let err = store.read(moved).await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::Internal,
        "a ciphertext copied to another id must not open"
    );

    // Another key cannot open it.
    let wrong = DbSecretStore::new(floe::server::secret_rows(&persistence), &[7u8; 32]);
    let err = wrong.read(id).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    let _: Arc<dyn SecretStore> = Arc::new(wrong);
}

#[tokio::test]
async fn db_secret_store_on_sqlite() {
    db_secret_store(Backend::Sqlite).await;
}

#[tokio::test]
async fn db_secret_store_on_postgres() {
    db_secret_store(Backend::Postgres).await;
}
