//! S3 objects kept as files under a warehouse's local root: the store behind the built-in S3
//! gateway. Knows nothing of HTTP; the gateway translates S3 requests into these calls.
//!
//! Layout: the object `a/b/c.parquet` is the file `<root>/a/b/c.parquet`, so the catalog and the
//! gateway see the same tree. What a file system cannot hold as-is is encoded: an empty key segment
//! (`a//b`, or the trailing `/` of a "folder" key) is stored as a file or folder named `.floe~empty`.
//! Names beginning with `.floe~` are Floe's own (temporary files, multipart uploads) and are never
//! valid key segments nor listed. An object's ETag, content type and user metadata are kept in an
//! extended attribute (`user.floe.s3`) written with the file before it becomes visible.
//!
//! Durability: an object is written to a temporary file, synced, then renamed (or hard-linked, for
//! create-only-if-absent) into place and its folder synced, so a reader sees the old object or the
//! whole new one, and concurrent writers of one key leave exactly one writer's bytes.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::md5::Md5;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Prefix of every name Floe keeps for itself inside a warehouse root.
pub const RESERVED: &str = ".floe~";
const EMPTY_SEGMENT: &str = ".floe~empty";
const TMP_DIR: &str = ".floe~tmp";
const UPLOADS_DIR: &str = ".floe~uploads";
const XATTR: &str = "user.floe.s3";
/// S3's limit on key length, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The smallest part S3 accepts in a multipart upload, except the last.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
pub const MAX_PART_NUMBER: i32 = 10_000;

/// What is stored with an object besides its bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The ETag without quotes: the hex MD5 of the bytes, or `<md5 of part md5s>-<parts>`.
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
    /// The size of each part of a multipart object, for reads by part number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_sizes: Vec<u64>,
}

impl ObjectMeta {
    /// The byte range of part `number` (1-based): a multipart object's part, or the whole of any
    /// other object as its only part. `None` when there is no such part.
    pub fn part_range(&self, number: i32, size: u64) -> Option<std::ops::Range<u64>> {
        if self.part_sizes.is_empty() {
            return (number == 1).then_some(0..size);
        }
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        let start: u64 = self.part_sizes.iter().take(index).sum();
        let len = *self.part_sizes.get(index)?;
        Some(start..start + len)
    }
}

/// An object as listed or looked up.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
    pub meta: ObjectMeta,
}

/// Why a key is refused. The gateway maps each to an S3 error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is empty")]
    Empty,
    #[error("the key is longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
    #[error("a key segment is longer than 255 bytes, which a file system cannot store")]
    SegmentTooLong,
    #[error(
        "the key would leave the warehouse: it starts with '/', contains NUL, or has a '.' or '..' \
         segment (plain, percent-encoded or with backslashes)"
    )]
    Escapes,
    #[error("key segments beginning with '.floe~' are reserved by Floe")]
    Reserved,
}

/// Checks an S3 key and returns the relative file path that holds it.
pub fn key_path(key: &str) -> std::result::Result<PathBuf, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong);
    }
    if key.starts_with('/') || key.contains('\0') {
        return Err(KeyError::Escapes);
    }
    let mut path = PathBuf::new();
    for segment in key.split('/') {
        check_segment(segment)?;
        path.push(if segment.is_empty() {
            EMPTY_SEGMENT
        } else {
            segment
        });
    }
    Ok(path)
}

fn check_segment(segment: &str) -> std::result::Result<(), KeyError> {
    if segment.len() > 255 {
        return Err(KeyError::SegmentTooLong);
    }
    if segment.starts_with(RESERVED) {
        return Err(KeyError::Reserved);
    }
    // A segment is also refused when decoding it (percent escapes, backslashes as separators) would
    // give a '.' or '..' segment: whatever later decodes the key must not be able to climb out.
    let decoded = percent_decode(segment);
    let dots = |s: &str| s == "." || s == "..";
    if dots(segment) || decoded.split(['\\', '/']).any(dots) || decoded.contains('\0') {
        return Err(KeyError::Escapes);
    }
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The key segment a stored file or folder name stands for, or `None` for Floe's own names.
fn name_segment(name: &str) -> Option<&str> {
    if name == EMPTY_SEGMENT {
        Some("")
    } else if name.starts_with(RESERVED) {
        None
    } else {
        Some(name)
    }
}

/// The S3 objects of one warehouse root.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    root: PathBuf,
}

/// An error of the object store: a client mistake the gateway reports as such, or an I/O failure.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("no such object")]
    NoSuchKey,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("the object exists and the write asked for none")]
    AlreadyExists,
    /// A write that may only create met an object with other bytes.
    #[error("the object exists and may not be replaced")]
    Replace,
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidPart(String),
    #[error("{0}")]
    EntityTooSmall(String),
    #[error("the body does not match its {0}")]
    BadDigest(&'static str),
    #[error("the upload was interrupted: {0}")]
    Incomplete(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<ObjectError> for Error {
    fn from(e: ObjectError) -> Error {
        match e {
            ObjectError::Io(io) => Error::internal("object storage", io),
            other => Error::bad_request(other.to_string()),
        }
    }
}

pub type ObjectResult<T> = std::result::Result<T, ObjectError>;

/// The state of a multipart upload, kept as `upload.json` in its folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadInfo {
    pub key: String,
    pub initiated: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub user: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct PartInfo {
    pub number: i32,
    pub etag: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    pub common_prefixes: Vec<String>,
    /// The last key or common prefix returned when the listing was cut at `max_keys`.
    pub next_marker: Option<String>,
}

/// A file being written, hashed as it goes, that becomes an object only when committed.
pub struct PendingObject {
    file: std::fs::File,
    path: PathBuf,
    md5: Md5,
    /// The MD5 when the caller hashed the bytes itself (to hash and write in parallel).
    known_md5: Option<[u8; 16]>,
    size: u64,
    /// Bytes written since writeback was last started.
    unflushed: u64,
    done: bool,
}

/// How much a pending object accumulates before its writeback is started, so that the final fsync
/// finds little left to write.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl PendingObject {
    pub fn write(&mut self, chunk: &[u8]) -> ObjectResult<()> {
        self.md5.update(chunk);
        self.write_unhashed(chunk)
    }

    /// Writes bytes the caller hashes itself; it must then call `set_md5`.
    pub fn write_unhashed(&mut self, chunk: &[u8]) -> ObjectResult<()> {
        self.file.write_all(chunk)?;
        self.size += chunk.len() as u64;
        self.unflushed += chunk.len() as u64;
        if self.unflushed >= WRITEBACK_EVERY {
            self.start_writeback();
        }
        Ok(())
    }

    /// Asks the kernel to start writing what was written so far (without waiting), overlapping
    /// the disk's work with receiving the rest.
    fn start_writeback(&mut self) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let start = (self.size - self.unflushed) as libc::off64_t;
            // SAFETY: a plain syscall on an open file descriptor; no memory is passed.
            let _ = unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    start,
                    self.unflushed as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
        }
        self.unflushed = 0;
    }

    pub fn set_md5(&mut self, md5: [u8; 16]) {
        self.known_md5 = Some(md5);
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The MD5 of everything written so far.
    pub fn md5(&self) -> [u8; 16] {
        self.known_md5
            .unwrap_or_else(|| self.md5.clone().finalize())
    }
}

impl Drop for PendingObject {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How a write treats an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    Allow,
    /// `If-None-Match: *`: fail with `AlreadyExists` if the key holds an object.
    IfAbsent,
    /// Create only, for writers that may not replace objects: fail with `Replace` if the key
    /// holds an object with other bytes; one with the very same bytes (a retried write) is left
    /// as it is and the write succeeds.
    Never,
}

impl ObjectStore {
    pub fn new(root: PathBuf) -> Self {
        ObjectStore { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> ObjectResult<PathBuf> {
        Ok(self.root.join(key_path(key)?))
    }

    /// Starts writing a new object in Floe's temporary folder (same file system as the root).
    pub fn begin(&self) -> ObjectResult<PendingObject> {
        let dir = self.root.join(TMP_DIR);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(uuid::Uuid::new_v4().simple().to_string());
        let file = std::fs::File::create_new(&path)?;
        Ok(PendingObject {
            file,
            path,
            md5: Md5::new(),
            known_md5: None,
            size: 0,
            unflushed: 0,
            done: false,
        })
    }

    /// Makes a pending file the object `key`: synced, metadata attached, then moved into place.
    pub fn commit(
        &self,
        mut pending: PendingObject,
        key: &str,
        mut meta: ObjectMeta,
        overwrite: Overwrite,
    ) -> ObjectResult<ObjectInfo> {
        let target = self.path(key)?;
        if meta.etag.is_empty() {
            meta.etag = hex::encode(pending.md5());
        }
        pending.file.flush()?;
        pending.file.sync_all()?;
        write_meta(&pending.path, &meta);
        let dir = target.parent().expect("an object path has a folder");
        // A delete of the folder's last object removes the folder; one racing with this write
        // may remove it between its creation and the move, so the two are tried again.
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.make_dirs(dir)?;
            if target.is_dir() {
                return Err(ObjectError::Conflict(format!(
                    "the key {key:?} is also a prefix of other objects, which Floe's file layout cannot hold"
                )));
            }
            let placed = match overwrite {
                Overwrite::Allow => std::fs::rename(&pending.path, &target),
                // A hard link is created only if the name is free: an atomic create-if-absent.
                Overwrite::IfAbsent | Overwrite::Never => {
                    std::fs::hard_link(&pending.path, &target)
                }
            };
            match placed {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 20 => continue,
                Err(e)
                    if overwrite == Overwrite::IfAbsent
                        && e.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    return Err(ObjectError::AlreadyExists);
                }
                Err(e)
                    if overwrite == Overwrite::Never
                        && e.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    // The pending file is removed when `pending` drops.
                    let stat = match std::fs::metadata(&target) {
                        Ok(stat) => stat,
                        // Deleted since: the name is free again.
                        Err(e) if is_absent(&e) && attempts < 20 => continue,
                        Err(e) => return Err(e.into()),
                    };
                    if stat.is_file() && same_bytes(&pending.path, &target)? {
                        let existing = read_meta(&target, &stat);
                        return Ok(ObjectInfo {
                            key: key.to_string(),
                            size: stat.len(),
                            modified: stat.modified()?,
                            meta: existing,
                        });
                    }
                    return Err(ObjectError::Replace);
                }
                Err(e) => return Err(e.into()),
            }
        }
        if overwrite != Overwrite::Allow {
            let _ = std::fs::remove_file(&pending.path);
        }
        pending.done = true;
        std::fs::File::open(dir)?.sync_all()?;
        let stat = std::fs::metadata(&target)?;
        Ok(ObjectInfo {
            key: key.to_string(),
            size: stat.len(),
            modified: stat.modified()?,
            meta,
        })
    }

    fn make_dirs(&self, dir: &Path) -> ObjectResult<()> {
        let conflict = || {
            ObjectError::Conflict(
                "a prefix of the key is itself an object, which Floe's file layout cannot hold"
                    .into(),
            )
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            match std::fs::create_dir_all(dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Err(conflict()),
                // Either an object holds the name, or a concurrent delete removed the folder
                // between creating it failing and checking it: only the first is a conflict.
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        || e.kind() == std::io::ErrorKind::NotFound =>
                {
                    let blocked = dir
                        .ancestors()
                        .take_while(|d| *d != self.root)
                        .any(|d| d.is_file());
                    if blocked {
                        return Err(conflict());
                    }
                    if attempts >= 20 {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Looks an object up without reading it.
    pub fn head(&self, key: &str) -> ObjectResult<ObjectInfo> {
        let path = self.path(key)?;
        info_of(key, &path)
    }

    /// Opens an object for reading.
    pub fn open(&self, key: &str) -> ObjectResult<(std::fs::File, ObjectInfo)> {
        let path = self.path(key)?;
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if is_absent(&e) => return Err(ObjectError::NoSuchKey),
            Err(e) => return Err(e.into()),
        };
        let stat = file.metadata()?;
        if stat.is_dir() {
            return Err(ObjectError::NoSuchKey);
        }
        // From the open file itself, not the path: a writer may have renamed a new object into
        // place since the open, and its metadata (ETag) must not be paired with these bytes.
        let meta = read_meta_of(&file, &stat);
        Ok((
            file,
            ObjectInfo {
                key: key.to_string(),
                size: stat.len(),
                modified: stat.modified()?,
                meta,
            },
        ))
    }

    /// Deletes an object; an absent one is not an error. Folders it leaves empty are removed.
    pub fn delete(&self, key: &str) -> ObjectResult<()> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if is_absent(&e) || e.kind() == std::io::ErrorKind::IsADirectory => {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// Lists objects in key order: those under `prefix` and after `after`, grouped by `delimiter`.
    /// `scope`, when not empty, holds the listing to keys under those prefixes: nothing else is
    /// counted, rolled into a common prefix, or made a marker.
    pub fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max_keys: usize,
        scope: &[String],
    ) -> ObjectResult<Listing> {
        let mut listing = Listing::default();
        if max_keys == 0 {
            return Ok(listing);
        }
        let delimiter = delimiter.filter(|d| !d.is_empty());
        // Start at the deepest folder the prefix names whole.
        let (start_dir_key, _) = prefix.rsplit_once('/').unwrap_or(("", ""));
        let mut start = self.root.clone();
        if !start_dir_key.is_empty() {
            match key_path(start_dir_key) {
                Ok(p) => start.push(p),
                Err(_) => return Ok(listing),
            }
        }
        let base = if start_dir_key.is_empty() {
            String::new()
        } else {
            format!("{start_dir_key}/")
        };
        let mut walker = Walker {
            prefix,
            scope,
            delimiter,
            after,
            max_keys,
            listing: &mut listing,
            last_prefix: None,
            full: false,
        };
        walker.walk(&start, &base)?;
        if !walker.full {
            listing.next_marker = None;
        }
        Ok(listing)
    }
}

/// Reads `len` bytes at `offset` of an object into a pending part (UploadPartCopy).
pub fn copy_range(
    source: &mut std::fs::File,
    offset: u64,
    len: u64,
    into: &mut PendingObject,
) -> ObjectResult<()> {
    source.seek(std::io::SeekFrom::Start(offset))?;
    let mut reader = source.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        into.write(&buf[..n])?;
    }
    if into.size() != len {
        return Err(ObjectError::Incomplete(
            "the source object changed while it was copied".into(),
        ));
    }
    Ok(())
}

fn is_absent(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::NotADirectory
}

fn info_of(key: &str, path: &Path) -> ObjectResult<ObjectInfo> {
    // Size, time and metadata all from one open file (one version of the object), not from the
    // path twice, which a concurrent PUT may swap in between.
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Err(ObjectError::NoSuchKey),
        Err(e) => return Err(e.into()),
    };
    let stat = file.metadata()?;
    if !stat.is_file() {
        return Err(ObjectError::NoSuchKey);
    }
    Ok(ObjectInfo {
        key: key.to_string(),
        size: stat.len(),
        modified: stat.modified()?,
        meta: read_meta_of(&file, &stat),
    })
}

fn write_meta(path: &Path, meta: &ObjectMeta) {
    let json = serde_json::to_vec(meta).expect("object metadata serializes");
    // A file system without extended attributes loses the content type and user metadata; the
    // ETag is then derived from the file's identity instead (see `read_meta`).
    if let Err(e) = xattr::set(path, XATTR, &json) {
        tracing::debug!(error = %e, "extended attributes unavailable; object metadata not kept");
    }
}

/// [`read_meta`] for an open file.
fn read_meta_of(file: &std::fs::File, stat: &std::fs::Metadata) -> ObjectMeta {
    use xattr::FileExt;
    if let Ok(Some(bytes)) = file.get_xattr(XATTR)
        && let Ok(meta) = serde_json::from_slice::<ObjectMeta>(&bytes)
    {
        return meta;
    }
    identity_meta(stat)
}

/// Whether two files hold the same bytes (compared whole: an equal MD5 could be made on purpose).
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut a, mut b) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if a.metadata()?.len() != b.metadata()?.len() {
        return Ok(false);
    }
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(true);
        }
        match b.read_exact(&mut y[..n]) {
            Ok(()) => {}
            // Shortened while compared: not the same bytes.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

/// The stored metadata, or for files written by someone else (the catalog, an operator) an ETag
/// made from the file's identity and modification, stable while the file is unchanged.
fn read_meta(path: &Path, stat: &std::fs::Metadata) -> ObjectMeta {
    if let Ok(Some(bytes)) = xattr::get(path, XATTR)
        && let Ok(meta) = serde_json::from_slice::<ObjectMeta>(&bytes)
    {
        return meta;
    }
    identity_meta(stat)
}

/// An ETag made from the file's identity and modification.
fn identity_meta(stat: &std::fs::Metadata) -> ObjectMeta {
    use std::os::unix::fs::MetadataExt;
    let mut md5 = Md5::new();
    md5.update(&stat.ino().to_le_bytes());
    md5.update(&stat.len().to_le_bytes());
    md5.update(&stat.mtime().to_le_bytes());
    md5.update(&stat.mtime_nsec().to_le_bytes());
    ObjectMeta {
        etag: hex::encode(md5.finalize()),
        ..ObjectMeta::default()
    }
}

/// A depth-first walk in S3 key order. Within a folder, entries are ordered by the key text they
/// stand for, a folder counting as its name followed by '/', so `a-b` comes before `a/x`.
struct Walker<'a> {
    prefix: &'a str,
    /// Key prefixes the listing is held to (empty: everything).
    scope: &'a [String],
    delimiter: Option<&'a str>,
    after: Option<&'a str>,
    max_keys: usize,
    listing: &'a mut Listing,
    last_prefix: Option<String>,
    full: bool,
}

impl Walker<'_> {
    fn count(&self) -> usize {
        self.listing.objects.len() + self.listing.common_prefixes.len()
    }

    /// Walks `dir`, whose entries have keys starting with `base`. Returns whether the walk must stop.
    fn walk(&mut self, dir: &Path, base: &str) -> ObjectResult<bool> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if is_absent(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let mut items: Vec<(String, PathBuf, bool)> = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some(segment) = name_segment(&name) else {
                continue;
            };
            let is_dir = entry.file_type()?.is_dir();
            let key = if is_dir {
                format!("{base}{segment}/")
            } else {
                format!("{base}{segment}")
            };
            items.push((key, entry.path(), is_dir));
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, path, is_dir) in items {
            // Skip what cannot match the prefix, in both directions of containment.
            if !(key.starts_with(self.prefix) || (is_dir && self.prefix.starts_with(&key))) {
                continue;
            }
            // And what lies outside the scope: a folder above a scope is walked into, never
            // summarized (a common prefix of it could name what lies outside).
            let inside = self.scope.is_empty() || self.scope.iter().any(|s| key.starts_with(s));
            let above_scope = is_dir && self.scope.iter().any(|s| s.starts_with(&key));
            if !(inside || above_scope) {
                continue;
            }
            if let Some(after) = self.after {
                // A folder whose keys all sort at or before `after` is skipped whole.
                if !is_dir && key.as_str() <= after {
                    continue;
                }
                if is_dir && !after.starts_with(&key) && key.as_str() <= after {
                    continue;
                }
            }
            if is_dir {
                if inside && let Some(group) = self.group(&key) {
                    // The whole folder falls in one common prefix: no need to look inside beyond
                    // knowing it holds an object.
                    if group.len() <= key.len()
                        && self.after.is_none_or(|a| group.as_str() > a)
                        && self.last_prefix.as_deref() != Some(group.as_str())
                    {
                        if has_object(&path)? && self.push_prefix(group) {
                            return Ok(true);
                        }
                        continue;
                    }
                }
                if self.walk(&path, &key)? {
                    return Ok(true);
                }
            } else {
                if let Some(group) = self.group(&key) {
                    if self.after.is_some_and(|a| group.as_str() <= a)
                        || self.last_prefix.as_deref() == Some(group.as_str())
                    {
                        continue;
                    }
                    if self.push_prefix(group) {
                        return Ok(true);
                    }
                    continue;
                }
                if self.count() == self.max_keys {
                    self.full = true;
                    return Ok(true);
                }
                let stat = std::fs::metadata(&path)?;
                let meta = read_meta(&path, &stat);
                self.listing.objects.push(ObjectInfo {
                    key: key.clone(),
                    size: stat.len(),
                    modified: stat.modified()?,
                    meta,
                });
                self.listing.next_marker = Some(key);
            }
        }
        Ok(false)
    }

    /// The common prefix a key falls in: the prefix, then up to and including the first delimiter.
    fn group(&self, key: &str) -> Option<String> {
        let delimiter = self.delimiter?;
        let rest = key.strip_prefix(self.prefix)?;
        let at = rest.find(delimiter)?;
        Some(format!("{}{}", self.prefix, &rest[..at + delimiter.len()]))
    }

    /// Adds a common prefix; true when the page is full and the walk must stop.
    fn push_prefix(&mut self, group: String) -> bool {
        if self.count() == self.max_keys {
            self.full = true;
            return true;
        }
        self.last_prefix = Some(group.clone());
        self.listing.next_marker = Some(group.clone());
        self.listing.common_prefixes.push(group);
        false
    }
}

/// Whether a folder holds at least one object (folders left empty do not show in listings).
fn has_object(dir: &Path) -> ObjectResult<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_absent(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name_segment(&name).is_none() {
            continue;
        }
        if entry.file_type()?.is_dir() {
            if has_object(&entry.path())? {
                return Ok(true);
            }
        } else {
            return Ok(true);
        }
    }
    Ok(false)
}

mod uploads;

#[cfg(test)]
mod tests;
