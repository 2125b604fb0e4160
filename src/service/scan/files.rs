//! The files a plan reads and the files it names.
//!
//! - [`PlanFiles`] lends the `iceberg` crate's planner the warehouse's object store, read-only
//!   and held to the table's folders: a manifest list naming a manifest outside them (another
//!   table's) is refused rather than read, so a plan never shows another table's file names or
//!   column statistics. It keeps what it read, so the second look at a manifest (for the full
//!   entries the crate's scan tasks leave out) costs no second read, and it can stand a
//!   narrowed manifest list in for the snapshot's (one plan task's share of the manifests).
//! - [`content_file`] writes a manifest entry as the REST spec's `DataFile`/`DeleteFile`.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage,
    StorageConfig, StorageFactory,
};
use iceberg::spec::{DataContentType, DataFile, Datum, Literal, StructType, Type};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::storage::{Location, ObjectStorage};

/// What a plan may read, and what it has read.
pub(super) struct Reader {
    storage: Arc<dyn ObjectStorage>,
    /// The table's folders: its location and every folder it claims.
    folders: Vec<Location>,
    read: Mutex<HashMap<String, Bytes>>,
    /// Files served from memory instead of the store (a plan task's manifest list).
    stand_ins: Mutex<HashMap<String, Bytes>>,
    /// The first file refused for lying outside the folders.
    refused: Mutex<Option<String>>,
}

impl Reader {
    pub(super) fn new(storage: Arc<dyn ObjectStorage>, folders: Vec<Location>) -> Arc<Reader> {
        Arc::new(Reader {
            storage,
            folders,
            read: Mutex::default(),
            stand_ins: Mutex::default(),
            refused: Mutex::default(),
        })
    }

    pub(super) fn stand_in(&self, path: &str, bytes: Bytes) {
        self.stand_ins
            .lock()
            .expect("plan reader lock")
            .insert(path.to_string(), bytes);
    }

    /// Whether the plan read `path` (the crate skips manifests it pruned).
    pub(super) fn has_read(&self, path: &str) -> bool {
        self.read
            .lock()
            .expect("plan reader lock")
            .contains_key(path)
    }

    /// The file outside the table's folders that a read was refused, if any.
    pub(super) fn refused(&self) -> Option<String> {
        self.refused.lock().expect("plan reader lock").clone()
    }

    pub(super) fn file_io(self: &Arc<Self>) -> FileIO {
        FileIOBuilder::new(Arc::new(PlanFilesFactory {
            reader: Some(self.clone()),
        }))
        .build()
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        if let Some(bytes) = self.stand_ins.lock().expect("plan reader lock").get(path) {
            return Ok(bytes.clone());
        }
        if let Some(bytes) = self.read.lock().expect("plan reader lock").get(path) {
            return Ok(bytes.clone());
        }
        let location = Location::parse(path).map_err(|e| invalid(format!("{path}: {e}")))?;
        if !self.folders.iter().any(|f| location.is_within(f)) {
            self.refused
                .lock()
                .expect("plan reader lock")
                .get_or_insert_with(|| path.to_string());
            return Err(invalid(format!("{path} is outside the table's folders")));
        }
        let bytes = self
            .storage
            .get(&location)
            .await
            .map_err(|e| iceberg::Error::new(iceberg::ErrorKind::Unexpected, e.to_string()))?
            .ok_or_else(|| invalid(format!("{path} does not exist")))?;
        // A manifest of a table with v3 types the crate cannot parse: its header's schema too.
        let bytes = match crate::model::v3_types::lower_manifest(&bytes) {
            Some(lowered) => Bytes::from(lowered),
            None => Bytes::from(bytes),
        };
        self.read
            .lock()
            .expect("plan reader lock")
            .insert(path.to_string(), bytes.clone());
        Ok(bytes)
    }
}

fn invalid(message: String) -> iceberg::Error {
    iceberg::Error::new(iceberg::ErrorKind::DataInvalid, message)
}

fn read_only() -> iceberg::Error {
    iceberg::Error::new(
        iceberg::ErrorKind::FeatureUnsupported,
        "scan planning reads files only",
    )
}

/// The crate's `Storage` over a [`Reader`]. The crate asks storages to be serializable (to ship
/// them to other processes); a plan's never leaves Floe, so nothing of it is serialized.
#[derive(Default, Serialize, Deserialize)]
struct PlanFiles {
    #[serde(skip)]
    reader: Option<Arc<Reader>>,
}

impl std::fmt::Debug for PlanFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanFiles")
    }
}

impl PlanFiles {
    fn reader(&self) -> iceberg::Result<&Arc<Reader>> {
        self.reader.as_ref().ok_or_else(read_only)
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for PlanFiles {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        Ok(self.reader()?.read(path).await.is_ok())
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let bytes = self.reader()?.read(path).await?;
        Ok(FileMetadata {
            size: bytes.len() as u64,
        })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        self.reader()?.read(path).await
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        Ok(Box::new(InMemory(self.reader()?.read(path).await?)))
    }

    async fn write(&self, _path: &str, _bs: Bytes) -> iceberg::Result<()> {
        Err(read_only())
    }

    async fn writer(&self, _path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        Err(read_only())
    }

    async fn delete(&self, _path: &str) -> iceberg::Result<()> {
        Err(read_only())
    }

    async fn delete_prefix(&self, _path: &str) -> iceberg::Result<()> {
        Err(read_only())
    }

    async fn delete_stream(&self, _paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        Err(read_only())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(
            Arc::new(PlanFiles {
                reader: Some(self.reader()?.clone()),
            }),
            path.to_string(),
        ))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(
            Arc::new(PlanFiles::default()),
            path.to_string(),
        ))
    }
}

#[derive(Default, Serialize, Deserialize)]
struct PlanFilesFactory {
    #[serde(skip)]
    reader: Option<Arc<Reader>>,
}

impl std::fmt::Debug for PlanFilesFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanFilesFactory")
    }
}

#[typetag::serde]
impl StorageFactory for PlanFilesFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(PlanFiles {
            reader: self.reader.clone(),
        }))
    }
}

struct InMemory(Bytes);

#[async_trait]
impl FileRead for InMemory {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        let (start, end) = (range.start as usize, range.end as usize);
        if start > end || end > self.0.len() {
            return Err(invalid(format!(
                "range {start}..{end} is outside a file of {} bytes",
                self.0.len()
            )));
        }
        Ok(self.0.slice(start..end))
    }
}

/// Bytes written into memory (a narrowed manifest list, before it stands in for the real one).
pub(super) struct MemoryWrite(pub Arc<Mutex<Vec<u8>>>);

#[async_trait]
impl FileWrite for MemoryWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        self.0.lock().expect("buffer lock").extend_from_slice(&bs);
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        Ok(())
    }
}

/// A manifest entry as the REST spec's `DataFile`, `PositionDeleteFile` or `EqualityDeleteFile`.
/// Column statistics are included for the field ids in `stats` only. `lineage` (format v3): the
/// data file's first row id, inherited from its manifest when the entry has none, and its data
/// sequence number, from which readers derive `_row_id` and `_last_updated_sequence_number`.
pub(super) fn content_file(
    file: &DataFile,
    spec_id: i32,
    partition_type: Option<&StructType>,
    stats: &BTreeSet<i32>,
    lineage: Option<(u64, i64)>,
) -> Value {
    let content = match file.content_type() {
        DataContentType::Data => "data",
        DataContentType::PositionDeletes => "position-deletes",
        DataContentType::EqualityDeletes => "equality-deletes",
    };
    let partition: Vec<Value> = file
        .partition()
        .iter()
        .enumerate()
        .map(|(i, value)| match value {
            None => Value::Null,
            Some(literal) => partition_type
                .and_then(|t| t.fields().get(i))
                .and_then(|field| literal.clone().try_into_json(&field.field_type).ok())
                .unwrap_or(Value::Null),
        })
        .collect();
    let mut out = json!({
        "content": content,
        "file-path": file.file_path(),
        "file-format": file.file_format().to_string().to_ascii_lowercase(),
        "spec-id": spec_id,
        "partition": partition,
        "file-size-in-bytes": file.file_size_in_bytes(),
        "record-count": file.record_count(),
    });
    let o = out.as_object_mut().expect("an object");
    if let Some(key) = file.key_metadata() {
        o.insert("key-metadata".into(), json!(hex::encode_upper(key)));
    }
    if let Some(offsets) = file.split_offsets() {
        o.insert("split-offsets".into(), json!(offsets));
    }
    if let Some(id) = file.sort_order_id() {
        o.insert("sort-order-id".into(), json!(id));
    }
    match file.content_type() {
        DataContentType::Data => {
            if let Some((first_row_id, sequence_number)) = lineage {
                o.insert("first-row-id".into(), json!(first_row_id));
                o.insert("data-sequence-number".into(), json!(sequence_number));
            }
        }
        DataContentType::PositionDeletes => {
            if let Some(offset) = file.content_offset() {
                o.insert("content-offset".into(), json!(offset));
            }
            if let Some(size) = file.content_size_in_bytes() {
                o.insert("content-size-in-bytes".into(), json!(size));
            }
            if let Some(data_file) = file.referenced_data_file() {
                o.insert("referenced-data-file".into(), json!(data_file));
            }
        }
        DataContentType::EqualityDeletes => {
            o.insert("equality-ids".into(), json!(file.equality_ids()));
        }
    }
    if !stats.is_empty() {
        let counts = |map: &HashMap<i32, u64>| {
            let mut pairs: Vec<(i32, u64)> = map
                .iter()
                .filter(|(id, _)| stats.contains(id))
                .map(|(id, v)| (*id, *v))
                .collect();
            pairs.sort();
            json!({"keys": pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
                   "values": pairs.iter().map(|p| p.1).collect::<Vec<_>>()})
        };
        let values = |map: &HashMap<i32, Datum>| {
            let mut pairs: Vec<(i32, Value)> = map
                .iter()
                .filter(|(id, _)| stats.contains(id))
                .filter_map(|(id, d)| Some((*id, datum_json(d)?)))
                .collect();
            pairs.sort_by_key(|p| p.0);
            json!({"keys": pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
                   "values": pairs.into_iter().map(|p| p.1).collect::<Vec<_>>()})
        };
        o.insert("column-sizes".into(), counts(file.column_sizes()));
        o.insert("value-counts".into(), counts(file.value_counts()));
        o.insert("null-value-counts".into(), counts(file.null_value_counts()));
        o.insert("nan-value-counts".into(), counts(file.nan_value_counts()));
        o.insert("lower-bounds".into(), values(file.lower_bounds()));
        o.insert("upper-bounds".into(), values(file.upper_bounds()));
    }
    out
}

/// The one data file a position delete file applies to, when it is scoped to one: named by the
/// entry (deletion vectors always are), or by equal bounds of its `file_path` column (as
/// file-scoped position deletes written before `referenced_data_file` existed are).
pub(super) fn referenced_data_file(file: &DataFile) -> Option<String> {
    /// The reserved field id of `file_path` in position delete files.
    const FILE_PATH: i32 = 2_147_483_546;
    if file.content_type() != DataContentType::PositionDeletes {
        return None;
    }
    if let Some(path) = file.referenced_data_file() {
        return Some(path);
    }
    let lower = file.lower_bounds().get(&FILE_PATH)?;
    let upper = file.upper_bounds().get(&FILE_PATH)?;
    match (lower.literal(), upper.literal()) {
        (
            iceberg::spec::PrimitiveLiteral::String(l),
            iceberg::spec::PrimitiveLiteral::String(u),
        ) if l == u => Some(l.clone()),
        _ => None,
    }
}

fn datum_json(datum: &Datum) -> Option<Value> {
    Literal::Primitive(datum.literal().clone())
        .try_into_json(&Type::Primitive(datum.data_type().clone()))
        .ok()
}
