//! Object storage: where warehouses keep their files. The `ObjectStorage` trait is what the catalog
//! needs of a store (write a new object, read, delete, delete a prefix); `LocalStorage` is the
//! in-tree default over a local folder, `s3::S3Storage` the one for S3 and S3-compatible stores.
//! `location` holds the rules every location obeys; `sts` and `signing` give clients access to one
//! table's folder (temporary keys, remote signing).
//!
//! Depends on `model` and `error` only; knows nothing of HTTP or SQL.

pub mod location;
pub mod md5;
pub mod objects;
pub mod s3;
pub mod signing;
pub mod sts;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::model::{StorageCredential, StorageProfile, Warehouse};
pub use location::{Location, path_segment};

/// What the catalog needs of a store. Every location must lie inside the store's root; anything
/// else is refused with `Forbidden`, whatever the caller checked before.
#[async_trait]
pub trait ObjectStorage: Send + Sync {
    /// Writes an object that must not exist yet, durably before returning. `Conflict` if it
    /// exists; an existing object is never replaced.
    async fn put_new(&self, location: &Location, bytes: bytes::Bytes) -> Result<()>;
    /// The object's bytes, or `None` when there is none.
    async fn get(&self, location: &Location) -> Result<Option<Vec<u8>>>;
    /// Deletes one object; deleting an absent one is not an error.
    async fn delete(&self, location: &Location) -> Result<()>;
    /// Deletes everything at or below `location`.
    async fn delete_prefix(&self, location: &Location) -> Result<()>;
    /// Deletes up to `limit` objects at or below `location` and answers how many it deleted;
    /// `0` once nothing is left (a local folder is then removed too). A purge calls it until it
    /// answers `0`, recording progress in between, so that it can stop and resume anywhere.
    async fn delete_some(&self, location: &Location, limit: usize) -> Result<usize>;
    /// Every object at or below `location`, with when it was last written (unix milliseconds).
    async fn list_files(&self, location: &Location) -> Result<Vec<(Location, i64)>>;
    /// Makes `location` ready to receive objects from clients. Object stores need nothing; a local
    /// folder is created, since some engines (DuckDB) do not create folders for the files they write.
    async fn prepare_prefix(&self, location: &Location) -> Result<()>;
}

/// The base location of a warehouse: `s3://<warehouse>` when the built-in gateway serves it (in
/// front of a local root or of a bucket), else its local root or `s3://bucket/prefix`.
pub fn base_location(warehouse: &Warehouse) -> Result<Location> {
    if warehouse.storage_profile.gateway_served() {
        return Location::parse(&format!(
            "s3://{}",
            crate::model::gateway_bucket_name(&warehouse.name)
        ));
    }
    match &warehouse.storage_profile {
        StorageProfile::Local { root, .. } => Location::from_local_path(root),
        StorageProfile::S3 { .. } => base_location_of_s3(&warehouse.storage_profile),
    }
}

/// `s3://bucket/prefix` of an S3 profile.
pub(crate) fn base_location_of_s3(profile: &StorageProfile) -> Result<Location> {
    let StorageProfile::S3 {
        bucket, key_prefix, ..
    } = profile
    else {
        return Err(Error::bad_request("not an S3 storage profile"));
    };
    let prefix = key_prefix.as_deref().unwrap_or("").trim_matches('/');
    if prefix.is_empty() {
        Location::parse(&format!("s3://{bucket}"))
    } else {
        Location::parse(&format!("s3://{bucket}/{prefix}"))
    }
}

/// The store of a warehouse (S3 warehouses need their storage credential).
pub fn for_warehouse(
    warehouse: &Warehouse,
    credential: Option<&StorageCredential>,
    timeouts: &s3::S3Timeouts,
) -> Result<Arc<dyn ObjectStorage>> {
    match &warehouse.storage_profile {
        StorageProfile::Local { root, .. } => Ok(Arc::new(LocalStorage::at(
            base_location(warehouse)?,
            root.clone(),
        ))),
        profile @ StorageProfile::S3 { .. } => Ok(Arc::new(s3::S3Storage::new(
            base_location(warehouse)?,
            profile,
            credential,
            timeouts,
        )?)),
    }
}

/// A local folder as an object store. Objects are files; a new object is created exclusively (it
/// never replaces another), written and synced with its folder before `put_new` returns. The
/// folder is addressed by its own `file://` path, or by `s3://<warehouse>/...` when the built-in
/// gateway serves it (the same key maps to the same file either way).
pub struct LocalStorage {
    root: Location,
    dir: PathBuf,
}

impl LocalStorage {
    pub fn new(root: PathBuf) -> Result<Self> {
        Ok(LocalStorage {
            root: Location::from_local_path(&root)?,
            dir: root,
        })
    }

    /// A folder whose objects are named under `base`.
    pub fn at(base: Location, dir: PathBuf) -> Self {
        LocalStorage { root: base, dir }
    }

    fn path_of(&self, location: &Location) -> Result<PathBuf> {
        if !location.is_within(&self.root) {
            return Err(Error::forbidden(format!(
                "location {location} is outside the warehouse at {}",
                self.root
            )));
        }
        let relative = location.relative_to(&self.root).unwrap_or_default();
        let mut path = self.dir.clone();
        if !relative.is_empty() {
            // Locations have no '.', '..' or empty segments (see `location`), so each segment is a
            // plain name below the folder.
            path.push(objects::key_path(&relative).map_err(|e| {
                Error::forbidden(format!("location {location} cannot be stored: {e}"))
            })?);
        }
        Ok(path)
    }
}

fn io_error(what: &str, location: &Location, e: std::io::Error) -> Error {
    Error::internal(format!("{what} {location}"), e)
}

#[async_trait]
impl ObjectStorage for LocalStorage {
    async fn put_new(&self, location: &Location, bytes: bytes::Bytes) -> Result<()> {
        let path = self.path_of(location)?;
        let shown = location.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let dir = path.parent().expect("a located file has a folder");
            std::fs::create_dir_all(dir)
                .map_err(|e| io_error("creating the folder of", &shown, e))?;
            // `create_new` refuses an existing file (O_EXCL), so nothing is ever overwritten. A
            // half-written file may be seen by a directory listing, but the catalog reads files
            // only through pointers, which move after this returns (file and folder synced).
            let written = (|| {
                let mut file = std::fs::File::create_new(&path)?;
                file.write_all(&bytes)?;
                file.sync_all()
            })();
            match written {
                Ok(()) => {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| io_error("syncing the folder of", &shown, e))?;
                    Ok(())
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::conflict(
                    format!("{shown} already exists and is never overwritten"),
                )),
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    Err(io_error("writing", &shown, e))
                }
            }
        })
        .await
        .map_err(|e| Error::internal("writing a file", e))?
    }

    async fn get(&self, location: &Location) -> Result<Option<Vec<u8>>> {
        let path = self.path_of(location)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            // A folder (or a path through a file) holds no object: the caller named none.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::IsADirectory
                        | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(io_error("reading", location, e)),
        }
    }

    async fn delete(&self, location: &Location) -> Result<()> {
        let path = self.path_of(location)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("deleting", location, e)),
        }
    }

    async fn delete_prefix(&self, location: &Location) -> Result<()> {
        let path = self.path_of(location)?;
        if location == &self.root {
            return Err(Error::forbidden("refusing to delete a whole warehouse"));
        }
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => self.delete(location).await,
            Err(e) => Err(io_error("deleting", location, e)),
        }
    }

    async fn delete_some(&self, location: &Location, limit: usize) -> Result<usize> {
        let path = self.path_of(location)?;
        if location == &self.root {
            return Err(Error::forbidden("refusing to delete a whole warehouse"));
        }
        let walked = path.clone();
        let files = tokio::task::spawn_blocking(move || collect_files(&walked, limit.max(1)))
            .await
            .map_err(|e| Error::internal("listing a folder", e))?
            .map_err(|e| io_error("listing", location, e))?;
        if files.is_empty() {
            return self.delete_prefix(location).await.map(|()| 0);
        }
        let count = files.len();
        for file in files {
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("deleting", location, e)),
            }
        }
        Ok(count)
    }

    async fn list_files(&self, location: &Location) -> Result<Vec<(Location, i64)>> {
        let path = self.path_of(location)?;
        let walked = path.clone();
        let files = tokio::task::spawn_blocking(move || collect_files(&walked, usize::MAX))
            .await
            .map_err(|e| Error::internal("listing a folder", e))?
            .map_err(|e| io_error("listing", location, e))?;
        let mut listed = Vec::with_capacity(files.len());
        for file in files {
            let Ok(meta) = std::fs::symlink_metadata(&file) else {
                continue;
            };
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let Ok(relative) = file.strip_prefix(&path) else {
                continue;
            };
            let suffix = relative.to_string_lossy().replace('\\', "/");
            if let Ok(l) = Location::parse(&format!("{}/{suffix}", location.as_str())) {
                listed.push((l, modified));
            }
        }
        Ok(listed)
    }

    async fn prepare_prefix(&self, location: &Location) -> Result<()> {
        let path = self.path_of(location)?;
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(|e| io_error("creating", location, e))
    }
}

/// Up to `limit` files at or below `path` (the path itself when it is a file); symbolic links
/// count as files (removed, never followed).
fn collect_files(path: &Path, limit: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        found.push(path.to_path_buf());
        return Ok(found);
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                found.push(entry.path());
                if found.len() >= limit {
                    return Ok(found);
                }
            }
        }
    }
    Ok(found)
}

/// Whether an error means "the object already exists".
pub fn is_already_there(e: &Error) -> bool {
    e.kind == ErrorKind::Conflict
}

/// Checks that a warehouse with this profile can work: for local storage, the root is created if
/// missing and a probe file is written, read back and removed.
pub async fn probe(
    profile: &StorageProfile,
    credential: Option<&StorageCredential>,
    timeouts: &s3::S3Timeouts,
) -> Result<()> {
    match profile {
        StorageProfile::Local { root, .. } => probe_local(root).await,
        StorageProfile::S3 { .. } => s3::probe(profile, credential, timeouts).await,
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
    async fn local_storage_writes_once_and_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path().join("wh")).unwrap();
        let root = Location::from_local_path(&dir.path().join("wh")).unwrap();
        let file = root.join("t/metadata/00001.json").unwrap();
        storage
            .put_new(&file, bytes::Bytes::from_static(b"one"))
            .await
            .unwrap();
        let again = storage
            .put_new(&file, bytes::Bytes::from_static(b"two"))
            .await
            .unwrap_err();
        assert!(is_already_there(&again));
        assert_eq!(storage.get(&file).await.unwrap().unwrap(), b"one");
        // A folder, or a path through a file, holds no object (not an error of the store).
        for nothing in [
            root.clone(),
            root.join("t/metadata").unwrap(),
            file.join("below").unwrap(),
        ] {
            assert!(storage.get(&nothing).await.unwrap().is_none(), "{nothing}");
        }
        let folder = std::fs::read_dir(dir.path().join("wh/t/metadata")).unwrap();
        assert_eq!(folder.count(), 1, "no temporary file is left behind");

        let outside = Location::from_local_path(&dir.path().join("other/x")).unwrap();
        let err = storage
            .put_new(&outside, bytes::Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden);
        let sibling = Location::from_local_path(&dir.path().join("wh2/x")).unwrap();
        assert_eq!(
            storage.get(&sibling).await.unwrap_err().kind,
            ErrorKind::Forbidden
        );
        assert_eq!(
            storage.delete_prefix(&root).await.unwrap_err().kind,
            ErrorKind::Forbidden
        );

        storage
            .delete_prefix(&root.join("t").unwrap())
            .await
            .unwrap();
        assert!(storage.get(&file).await.unwrap().is_none());
        storage.delete(&file).await.unwrap();
    }

    #[tokio::test]
    async fn local_probe_creates_the_root_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("wh/one");
        probe(
            &StorageProfile::Local {
                root: root.clone(),
                s3_gateway: false,
            },
            None,
            &s3::S3Timeouts::default(),
        )
        .await
        .unwrap();
        assert!(root.is_dir());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = probe(
            &StorageProfile::Local {
                root: file,
                s3_gateway: false,
            },
            None,
            &s3::S3Timeouts::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::BadRequest);
    }
}
