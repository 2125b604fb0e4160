//! Object storage: where warehouses keep their files. Today this prepares and probes local
//! warehouse roots; S3, credential vending and request signing arrive with the storage issues.
//!
//! Depends on `model` only; knows nothing of HTTP or SQL.

use std::path::Path;

use crate::error::{Error, Result};
use crate::model::StorageProfile;

/// Checks that a warehouse with this profile can work: for local storage, the root is created if
/// missing and a probe file is written, read back and removed.
pub async fn probe(profile: &StorageProfile) -> Result<()> {
    match profile {
        StorageProfile::Local { root } => probe_local(root).await,
        // Probing S3 stores (write/read/list/delete under the prefix) lands with S3 support; until
        // then an S3 profile is checked for well-formedness only.
        StorageProfile::S3 { .. } => Ok(()),
    }
}

async fn probe_local(root: &Path) -> Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        Error::bad_request(format!(
            "local storage root {} is not usable: {what} failed: {e}",
            root.display()
        ))
    };
    tokio::fs::create_dir_all(root)
        .await
        .map_err(|e| fail("creating the folder", e))?;
    let probe = root.join(format!(".floe-probe-{}", uuid::Uuid::new_v4()));
    tokio::fs::write(&probe, b"floe")
        .await
        .map_err(|e| fail("writing a file", e))?;
    let read = tokio::fs::read(&probe).await;
    let _ = tokio::fs::remove_file(&probe).await;
    match read {
        Ok(bytes) if bytes == b"floe" => Ok(()),
        Ok(_) => Err(Error::bad_request(format!(
            "local storage root {} returned different bytes than written",
            root.display()
        ))),
        Err(e) => Err(fail("reading a file", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_probe_creates_the_root_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("wh/one");
        probe(&StorageProfile::Local { root: root.clone() })
            .await
            .unwrap();
        assert!(root.is_dir());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = probe(&StorageProfile::Local { root: file })
            .await
            .unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::BadRequest);
    }
}
