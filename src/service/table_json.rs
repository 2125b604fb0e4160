//! Table metadata JSON written incrementally.
//!
//! Every commit writes the table's whole metadata, which grows with every snapshot. Through the
//! `iceberg` crate that means cloning every snapshot, encoding it, and parsing the result again
//! to put its lists in order: the larger part of a commit's CPU once a table has a few hundred
//! snapshots. Snapshots never change once added, so the JSON of each is kept with the parsed
//! metadata of the table's last commit ([`JsonParts`]) and reused by the next one, which encodes
//! only the snapshots it adds and the small fields.
//!
//! The document is the one [`table_metadata_json`] writes (keys in alphabetical order, lists
//! sorted); tests check both agree after each kind of update. Formats v2 and v3 (with row
//! lineage: `next-row-id`, each snapshot's `first-row-id` and `added-rows`); v1 tables, v3 tables
//! with encryption keys, a commit that changes the format version, and a table whose last commit
//! left no parts (the first commit after a restart or an eviction from the cache) go through the
//! `iceberg` crate and leave parts for the next commit.
//!
//! Pure logic: no IO.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use iceberg::TableUpdate;
use iceberg::spec::{
    FormatVersion, MAIN_BRANCH, Snapshot, SnapshotReference, Summary, TableMetadata,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::metadata::{raised, table_metadata_json};
use crate::error::{Error, Result};

/// What one serialization leaves for the next: each snapshot's JSON, and the table's refs (which
/// the `iceberg` crate does not expose; they are followed through the commit's changes).
#[derive(Debug)]
pub struct JsonParts {
    /// The format version the snapshots' JSON is written in.
    format: u8,
    refs: HashMap<String, SnapshotReference>,
    snapshots: HashMap<i64, Arc<str>>,
}

impl JsonParts {
    /// The parts of a v2 or v3 document written by [`table_metadata_json`].
    fn read(json: &[u8]) -> Option<JsonParts> {
        #[derive(Deserialize)]
        struct Document<'a> {
            #[serde(rename = "format-version")]
            format_version: u8,
            #[serde(default)]
            refs: HashMap<String, SnapshotReference>,
            #[serde(borrow, default)]
            snapshots: Vec<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Id {
            #[serde(rename = "snapshot-id")]
            snapshot_id: i64,
        }
        let document: Document = serde_json::from_slice(json).ok()?;
        if !matches!(document.format_version, 2 | 3) {
            return None;
        }
        let mut snapshots = HashMap::with_capacity(document.snapshots.len());
        for item in document.snapshots {
            let id: Id = serde_json::from_str(item.get()).ok()?;
            snapshots.insert(id.snapshot_id, Arc::from(item.get()));
        }
        Some(JsonParts {
            format: document.format_version,
            refs: document.refs,
            snapshots,
        })
    }

    /// How many snapshots' JSON is held.
    #[cfg(test)]
    fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }
}

/// The JSON of `metadata`, built from `previous` (the parts of the metadata `changes` were applied
/// to) when it can, and the parts to build the next commit's JSON from.
pub fn table_json(
    metadata: &TableMetadata,
    previous: Option<&JsonParts>,
    changes: &[TableUpdate],
) -> Result<(Vec<u8>, Option<JsonParts>)> {
    let format = match metadata.format_version() {
        FormatVersion::V2 => 2,
        FormatVersion::V3 if metadata.encryption_keys_iter().len() == 0 => 3,
        _ => return Ok((table_metadata_json(metadata)?, None)),
    };
    if let Some(previous) = previous
        && previous.format == format
        && let Some(refs) = follow_refs(metadata, previous, changes)
    {
        let (json, parts) = incremental(metadata, previous, refs)?;
        return Ok((raised(json, metadata.properties())?, Some(parts)));
    }
    let json = table_metadata_json(metadata)?;
    let parts = JsonParts::read(&json);
    Ok((json, parts))
}

/// The refs after `changes`, as the `iceberg` builder changes them: set and removed by name, and
/// dropped with the snapshot they point to. `None` when the result disagrees with what the
/// metadata answers (then the caller serializes through the crate).
fn follow_refs(
    metadata: &TableMetadata,
    previous: &JsonParts,
    changes: &[TableUpdate],
) -> Option<HashMap<String, SnapshotReference>> {
    let mut refs = previous.refs.clone();
    for change in changes {
        match change {
            TableUpdate::SetSnapshotRef {
                ref_name,
                reference,
            } => {
                refs.insert(ref_name.clone(), reference.clone());
            }
            TableUpdate::RemoveSnapshotRef { ref_name } => {
                refs.remove(ref_name);
            }
            _ => {}
        }
    }
    refs.retain(|_, r| metadata.snapshot_by_id(r.snapshot_id).is_some());
    let agrees = refs.iter().all(|(name, r)| {
        metadata.snapshot_for_ref(name).map(|s| s.snapshot_id()) == Some(r.snapshot_id)
    });
    let main = refs.get(MAIN_BRANCH).map(|r| r.snapshot_id);
    (agrees && main == metadata.current_snapshot_id()).then_some(refs)
}

/// One snapshot as formats v2 and v3 write it (the fields and order of the crate's forms; the
/// row lineage fields are v3's, absent before).
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct SnapshotJson<'a> {
    snapshot_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_snapshot_id: Option<i64>,
    sequence_number: i64,
    timestamp_ms: i64,
    manifest_list: &'a str,
    summary: &'a Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_id: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_row_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    added_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
}

fn snapshot_json(snapshot: &Snapshot, format: u8) -> Result<Arc<str>> {
    let v3 = format >= 3;
    let json = serde_json::to_string(&SnapshotJson {
        snapshot_id: snapshot.snapshot_id(),
        parent_snapshot_id: snapshot.parent_snapshot_id(),
        sequence_number: snapshot.sequence_number(),
        timestamp_ms: snapshot.timestamp_ms(),
        manifest_list: snapshot.manifest_list(),
        summary: snapshot.summary(),
        schema_id: snapshot.schema_id(),
        first_row_id: snapshot.first_row_id().filter(|_| v3),
        added_rows: snapshot.added_rows_count().filter(|_| v3),
        key_id: snapshot.encryption_key_id().filter(|_| v3),
    })
    .map_err(|e| Error::internal("serializing a snapshot", e))?;
    Ok(Arc::from(json))
}

/// A JSON object written key by key, in the order given.
struct Object {
    out: Vec<u8>,
    empty: bool,
}

impl Object {
    fn new(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Object { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        self.key(key);
        serde_json::to_writer(&mut self.out, value)
            .map_err(|e| Error::internal("serializing metadata", e))
    }

    fn list<'a, T: Serialize + 'a>(
        &mut self,
        key: &str,
        items: impl IntoIterator<Item = (i64, &'a T)>,
    ) -> Result<()> {
        let mut items: Vec<(i64, &T)> = items.into_iter().collect();
        items.sort_by_key(|(id, _)| *id);
        let items: Vec<&T> = items.into_iter().map(|(_, item)| item).collect();
        self.field(key, &items)
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

fn incremental(
    metadata: &TableMetadata,
    previous: &JsonParts,
    refs: HashMap<String, SnapshotReference>,
) -> Result<(Vec<u8>, JsonParts)> {
    let mut snapshots: Vec<&Arc<Snapshot>> = metadata.snapshots().collect();
    snapshots.sort_by_key(|s| (s.sequence_number(), s.timestamp_ms(), s.snapshot_id()));
    let mut fragments = HashMap::with_capacity(snapshots.len());
    let mut ordered = Vec::with_capacity(snapshots.len());
    let mut snapshot_bytes = 0;
    for snapshot in snapshots {
        let fragment = match previous.snapshots.get(&snapshot.snapshot_id()) {
            Some(fragment) => fragment.clone(),
            None => snapshot_json(snapshot, previous.format)?,
        };
        snapshot_bytes += fragment.len() + 1;
        fragments.insert(snapshot.snapshot_id(), fragment.clone());
        ordered.push(fragment);
    }

    // Keys in alphabetical order, as `table_metadata_json` leaves them.
    let mut o = Object::new(snapshot_bytes + 4096 + 64 * metadata.history().len());
    o.field("current-schema-id", &metadata.current_schema_id())?;
    if let Some(id) = metadata.current_snapshot_id() {
        o.field("current-snapshot-id", &id)?;
    }
    o.field("default-sort-order-id", &metadata.default_sort_order_id())?;
    o.field("default-spec-id", &metadata.default_partition_spec_id())?;
    o.field("format-version", &previous.format)?;
    o.field("last-column-id", &metadata.last_column_id())?;
    o.field("last-partition-id", &metadata.last_partition_id())?;
    o.field("last-sequence-number", &metadata.last_sequence_number())?;
    o.field("last-updated-ms", &metadata.last_updated_ms())?;
    o.field("location", metadata.location())?;
    if !metadata.metadata_log().is_empty() {
        o.field("metadata-log", metadata.metadata_log())?;
    }
    if previous.format >= 3 {
        o.field("next-row-id", &metadata.next_row_id())?;
    }
    o.list(
        "partition-specs",
        metadata
            .partition_specs_iter()
            .map(|s| (i64::from(s.spec_id()), &**s)),
    )?;
    if metadata.partition_statistics_iter().len() > 0 {
        o.list(
            "partition-statistics",
            metadata
                .partition_statistics_iter()
                .map(|s| (s.snapshot_id, s)),
        )?;
    }
    if !metadata.properties().is_empty() {
        o.field("properties", metadata.properties())?;
    }
    let sorted_refs: BTreeMap<&str, &SnapshotReference> =
        refs.iter().map(|(name, r)| (name.as_str(), r)).collect();
    o.field("refs", &sorted_refs)?;
    o.list(
        "schemas",
        metadata
            .schemas_iter()
            .map(|s| (i64::from(s.schema_id()), &**s)),
    )?;
    if !metadata.history().is_empty() {
        o.field("snapshot-log", metadata.history())?;
    }
    if !ordered.is_empty() {
        o.key("snapshots");
        o.out.push(b'[');
        for (i, fragment) in ordered.iter().enumerate() {
            if i > 0 {
                o.out.push(b',');
            }
            o.out.extend_from_slice(fragment.as_bytes());
        }
        o.out.push(b']');
    }
    o.list(
        "sort-orders",
        metadata.sort_orders_iter().map(|s| (s.order_id, &**s)),
    )?;
    if metadata.statistics_iter().len() > 0 {
        o.list(
            "statistics",
            metadata.statistics_iter().map(|s| (s.snapshot_id, s)),
        )?;
    }
    o.field("table-uuid", &metadata.uuid())?;
    Ok((
        o.finish(),
        JsonParts {
            format: previous.format,
            refs,
            snapshots: fragments,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::metadata::{
        apply_table_commit, new_table_metadata, sorted_lists_for_tests,
    };
    use crate::storage::Location;
    use iceberg::TableRequirement;
    use iceberg::spec::Schema;

    fn schema() -> Schema {
        serde_json::from_value(serde_json::json!({
            "type": "struct", "schema-id": 0,
            "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]
        }))
        .unwrap()
    }

    fn snapshot(
        id: i64,
        parent: Option<i64>,
        sequence: i64,
        summary: serde_json::Value,
    ) -> serde_json::Value {
        let mut s = serde_json::json!({
            "action": "add-snapshot",
            "snapshot": {
                "snapshot-id": id, "sequence-number": sequence,
                // Now: the builder refuses a snapshot older than the table's last update, and
                // an update older than the last snapshot.
                "timestamp-ms": chrono::Utc::now().timestamp_millis(),
                "manifest-list": format!("file:///wh/t/metadata/snap-{id}.avro"),
                "summary": summary, "schema-id": 0
            }
        });
        if let Some(parent) = parent {
            s["snapshot"]["parent-snapshot-id"] = parent.into();
        }
        s
    }

    fn main_to(id: i64) -> serde_json::Value {
        serde_json::json!({"action": "set-snapshot-ref", "ref-name": "main", "type": "branch",
                           "snapshot-id": id})
    }

    /// Every kind of update a client sends, one commit at a time: after each, the incremental
    /// JSON is the crate's JSON (same values, same key and list order) and parses back to the
    /// same metadata.
    #[test]
    fn incremental_json_is_the_crates_json_after_every_kind_of_update() {
        every_kind_of_update("2");
    }

    /// The same for format v3: each snapshot carries its row range, the table its `next-row-id`.
    #[test]
    fn incremental_v3_json_is_the_crates_json_after_every_kind_of_update() {
        every_kind_of_update("3");
    }

    fn every_kind_of_update(format: &str) {
        let location = Location::parse("file:///wh/t").unwrap();
        let mut metadata = new_table_metadata(
            &location,
            schema(),
            None,
            None,
            HashMap::from([
                ("owner".to_string(), "me".to_string()),
                ("format-version".to_string(), format.to_string()),
            ]),
        )
        .unwrap();
        let mut next_row_id = 0_u64;
        let mut file = "file:///wh/t/metadata/00000-a.metadata.json".to_string();
        let mut parts = JsonParts::read(&table_metadata_json(&metadata).unwrap()).unwrap();
        let commits = vec![
            vec![
                snapshot(11, None, 1, serde_json::json!({"operation": "append"})),
                main_to(11),
            ],
            vec![serde_json::json!({"action": "set-properties",
                                    "updates": {"a": "1", "quote\"d": "x\\y\u{e9}"}})],
            vec![
                snapshot(
                    -22,
                    Some(11),
                    2,
                    serde_json::json!({"operation": "overwrite",
                    "added-data-files": "3", "added-records": "30", "total-records": "30"}),
                ),
                main_to(-22),
                serde_json::json!({"action": "set-snapshot-ref", "ref-name": "audit",
                    "type": "branch", "snapshot-id": 11, "min-snapshots-to-keep": 2,
                    "max-snapshot-age-ms": 1000}),
                serde_json::json!({"action": "set-snapshot-ref", "ref-name": "v1",
                    "type": "tag", "snapshot-id": 11, "max-ref-age-ms": 5000}),
            ],
            // A staged snapshot (write-audit-publish): on no ref.
            vec![snapshot(
                33,
                Some(-22),
                3,
                serde_json::json!({"operation": "append"}),
            )],
            vec![
                serde_json::json!({"action": "add-schema", "schema": {"type": "struct",
                    "schema-id": 1, "fields": [
                        {"id": 1, "name": "id", "required": true, "type": "long"},
                        {"id": 2, "name": "name", "required": false, "type": "string"}]}}),
                serde_json::json!({"action": "set-current-schema", "schema-id": -1}),
            ],
            vec![
                serde_json::json!({"action": "add-spec", "spec": {"fields": [
                    {"source-id": 1, "field-id": 1000, "name": "id_bucket",
                     "transform": "bucket[4]"}]}}),
                serde_json::json!({"action": "set-default-spec", "spec-id": -1}),
                serde_json::json!({"action": "add-sort-order", "sort-order": {"order-id": 1,
                    "fields": [{"source-id": 1, "transform": "identity", "direction": "asc",
                                "null-order": "nulls-first"}]}}),
                serde_json::json!({"action": "set-default-sort-order", "sort-order-id": -1}),
            ],
            vec![
                serde_json::json!({"action": "set-statistics", "snapshot-id": -22,
                    "statistics": {"snapshot-id": -22, "statistics-path": "file:///wh/t/s.puffin",
                        "file-size-in-bytes": 10, "file-footer-size-in-bytes": 2,
                        "blob-metadata": []}}),
                serde_json::json!({"action": "set-partition-statistics",
                    "partition-statistics": {"snapshot-id": 11,
                        "statistics-path": "file:///wh/t/p.parquet", "file-size-in-bytes": 7}}),
            ],
            vec![serde_json::json!({"action": "remove-snapshot-ref", "ref-name": "audit"})],
            // Removing a snapshot also drops the tag that points to it.
            vec![serde_json::json!({"action": "remove-snapshots", "snapshot-ids": [11]})],
            vec![serde_json::json!({"action": "remove-properties", "removals": ["a"]})],
            vec![serde_json::json!({"action": "remove-snapshot-ref", "ref-name": "main"})],
            vec![
                snapshot(44, Some(33), 4, serde_json::json!({"operation": "append"})),
                main_to(44),
            ],
        ];
        for (i, mut commit) in commits.into_iter().enumerate() {
            if format == "3" {
                for update in &mut commit {
                    if update["action"] == "add-snapshot" {
                        update["snapshot"]["first-row-id"] = next_row_id.into();
                        update["snapshot"]["added-rows"] = 10.into();
                        next_row_id += 10;
                    }
                }
            }
            let updates: Vec<TableUpdate> = serde_json::from_value(commit.into()).unwrap();
            let result =
                apply_table_commit(Some((&metadata, &file)), &[], updates, || unreachable!())
                    .unwrap();
            let slow = table_metadata_json(&result.metadata).unwrap();
            let refs = follow_refs(&result.metadata, &parts, &result.changes)
                .unwrap_or_else(|| panic!("commit {i}: refs not followed"));
            let (fast, next) = incremental(&result.metadata, &parts, refs).unwrap();
            let value = |json: &[u8]| serde_json::from_slice::<serde_json::Value>(json).unwrap();
            assert_eq!(value(&fast), value(&slow), "commit {i}");
            assert_eq!(
                sorted_lists_for_tests(&fast),
                fast,
                "commit {i}: keys or lists out of order"
            );
            let back: TableMetadata = serde_json::from_slice(&fast).unwrap();
            assert_eq!(back, result.metadata, "commit {i}");
            // What `table_json` answers is the same document.
            let (through, _) = table_json(&result.metadata, Some(&parts), &result.changes).unwrap();
            assert_eq!(through, fast);
            assert_eq!(next.snapshot_count(), result.metadata.snapshots().len());
            metadata = result.metadata;
            parts = next;
            file = format!("file:///wh/t/metadata/{:05}-a.metadata.json", i + 1);
        }
        assert!(metadata.snapshot_for_ref("v1").is_none());
        assert_eq!(metadata.current_snapshot_id(), Some(44));
        if format == "3" {
            assert_eq!(metadata.next_row_id(), 40);
            assert_eq!(
                metadata.snapshot_by_id(44).unwrap().row_range(),
                Some((30, 10))
            );
        }
    }

    /// Refs the changes do not explain send the commit through the crate, which then leaves
    /// fresh parts; so does a commit that changes the format version.
    #[test]
    fn unexplained_refs_and_format_upgrades_go_through_the_crate() {
        let location = Location::parse("file:///wh/t").unwrap();
        let metadata = new_table_metadata(&location, schema(), None, None, HashMap::new()).unwrap();
        let parts = JsonParts::read(&table_metadata_json(&metadata).unwrap()).unwrap();
        let file = "file:///wh/t/metadata/00000-a.metadata.json";
        let updates: Vec<TableUpdate> = serde_json::from_value(serde_json::json!([
            snapshot(1, None, 1, serde_json::json!({"operation": "append"})),
            main_to(1)
        ]))
        .unwrap();
        let result =
            apply_table_commit(Some((&metadata, file)), &[], updates, || unreachable!()).unwrap();
        // Changes that leave out the ref the builder set: the check notices.
        assert!(follow_refs(&result.metadata, &parts, &[]).is_none());
        let (json, fresh) = table_json(&result.metadata, Some(&parts), &[]).unwrap();
        assert_eq!(json, table_metadata_json(&result.metadata).unwrap());
        assert_eq!(fresh.unwrap().refs.len(), 1);

        let upgrade: Vec<TableUpdate> = serde_json::from_value(serde_json::json!([
            {"action": "upgrade-format-version", "format-version": 3}
        ]))
        .unwrap();
        let v3 = apply_table_commit(
            Some((
                &result.metadata,
                "file:///wh/t/metadata/00001-a.metadata.json",
            )),
            &[TableRequirement::UuidMatch {
                uuid: result.metadata.uuid(),
            }],
            upgrade,
            || unreachable!(),
        )
        .unwrap();
        let (json, parts) = table_json(&v3.metadata, Some(&parts), &v3.changes).unwrap();
        assert_eq!(parts.unwrap().format, 3);
        assert_eq!(json, table_metadata_json(&v3.metadata).unwrap());
    }
}
