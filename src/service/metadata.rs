//! Iceberg metadata rules the catalog enforces, over the `iceberg` crate's spec types: building new
//! table metadata, checking requirements and applying updates, naming metadata files, and keeping
//! every location a table or view can point to inside the place it belongs.
//!
//! Pure logic: no IO.

use std::collections::HashMap;

use iceberg::spec::{
    FormatVersion, Schema, SortOrder, TableMetadata, TableMetadataBuildResult,
    TableMetadataBuilder, UnboundPartitionSpec, ViewFormatVersion, ViewMetadata,
    ViewMetadataBuilder, ViewVersion,
};
use iceberg::{TableRequirement, TableUpdate, ViewUpdate};
use serde::{Deserialize, Serialize};

use crate::error::{Entity, Error, ErrorKind, Result};
use crate::model::v3_types;
use crate::storage::{Location, path_segment};

/// Properties that redirect where a table writes; each must stay inside the table's location.
pub const WRITE_PATH_PROPERTIES: &[&str] = &[
    "write.data.path",
    "write.metadata.path",
    "write.object-storage.path",
    "write.folder-storage.path",
];

const FORMAT_VERSION: &str = "format-version";
const DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";

/// Maps an `iceberg` error: failed requirements are commit conflicts (409), a missing table is a
/// 404, and anything else the builder refuses is the caller's bad input (400).
pub fn iceberg_error(e: iceberg::Error) -> Error {
    let message = v3_types::mask_placeholders(&e.to_string());
    match e.kind() {
        iceberg::ErrorKind::CatalogCommitConflicts => {
            Error::new(ErrorKind::CommitConflict, message)
        }
        iceberg::ErrorKind::TableNotFound => Error::not_found(Entity::Table, message),
        // A v3 snapshot whose row ids a concurrent commit took first (both passed their
        // requirements, e.g. appends to two branches of the table): the client assigns them
        // again from the refreshed table, as for any lost race.
        _ if message.contains(ROW_IDS_TAKEN) => Error::new(
            ErrorKind::CommitConflict,
            format!(
                "a concurrent commit took the snapshot's row ids; refresh and retry: {message}"
            ),
        ),
        _ => Error::bad_request(format!("invalid metadata update: {message}")),
    }
}

/// How the `iceberg` crate refuses a snapshot whose `first-row-id` is below the table's
/// `next-row-id` (pinned by a test: the crate has no error kind of its own for it).
const ROW_IDS_TAKEN: &str = "first-row-id is behind table next-row-id";

pub fn parse_table_metadata(json: &[u8]) -> Result<TableMetadata> {
    lowered(json).map_err(|e| Error::internal("parsing stored table metadata", e))
}

pub fn parse_view_metadata(json: &[u8]) -> Result<ViewMetadata> {
    lowered(json).map_err(|e| Error::internal("parsing stored view metadata", e))
}

/// Metadata JSON (a stored document or a file to register) as the crate's type, with the v3 types
/// it cannot parse lowered first ([`v3_types`]).
pub fn lowered<T: serde::de::DeserializeOwned>(json: &[u8]) -> anyhow::Result<T> {
    if !v3_types::may_hold(json) {
        return Ok(serde_json::from_slice(json)?);
    }
    let mut doc: serde_json::Value = serde_json::from_slice(json)?;
    v3_types::lower_metadata(&mut doc).map_err(anyhow::Error::msg)?;
    Ok(serde_json::from_value(doc)?)
}

/// The v3 types carried in disguise ([`v3_types`]) kept to what the spec allows them: format 3,
/// and no partition or sort transform but `void`.
pub fn check_carried_types(metadata: &TableMetadata) -> Result<()> {
    if !v3_types::holds_carried(metadata.properties().keys()) {
        return Ok(());
    }
    fn walk(ty: &iceberg::spec::Type, id: i32, found: &mut HashMap<i32, u64>) {
        use iceberg::spec::{PrimitiveType, Type};
        match ty {
            Type::Primitive(PrimitiveType::Fixed(length)) if v3_types::is_placeholder(*length) => {
                found.insert(id, *length);
            }
            Type::Primitive(_) => {}
            Type::Struct(s) => {
                for field in s.fields() {
                    walk(&field.field_type, field.id, found);
                }
            }
            Type::List(l) => walk(&l.element_field.field_type, l.element_field.id, found),
            Type::Map(m) => {
                walk(&m.key_field.field_type, m.key_field.id, found);
                walk(&m.value_field.field_type, m.value_field.id, found);
            }
        }
    }
    let mut carried = HashMap::new();
    for schema in metadata.schemas_iter() {
        for field in schema.as_struct().fields() {
            walk(&field.field_type, field.id, &mut carried);
        }
    }
    let name = |length: u64| {
        v3_types::carried_type(length, metadata.properties())
            .unwrap_or("a v3 type")
            .to_string()
    };
    if let Some(length) = carried.values().next()
        && metadata.format_version() < FormatVersion::V3
    {
        return Err(Error::bad_request(format!(
            "type {} needs table format version 3",
            name(*length)
        )));
    }
    let sources = metadata
        .partition_specs_iter()
        .flat_map(|s| s.fields().iter().map(|f| (f.source_id, f.transform)))
        .chain(
            metadata
                .sort_orders_iter()
                .flat_map(|o| o.fields.iter().map(|f| (f.source_id, f.transform))),
        );
    for (source, transform) in sources {
        if let Some(length) = carried.get(&source)
            && transform != iceberg::spec::Transform::Void
        {
            return Err(Error::bad_request(format!(
                "a column of type {} cannot be partitioned or sorted by ({transform})",
                name(*length)
            )));
        }
    }
    Ok(())
}

pub fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::internal("serializing metadata", e))
}

/// Table metadata as JSON with its lists in a stable order: snapshots in commit order (sequence
/// number, then time), schemas, specs and sort orders by id, logs as built. The `iceberg` crate
/// keeps these in hash maps, and clients (PyIceberg's `table.snapshots()[-1]`, Java) expect the
/// order Java writes.
pub fn table_metadata_json(metadata: &TableMetadata) -> Result<Vec<u8>> {
    raised(
        sorted_lists(&to_json(metadata)?, TABLE_LISTS)?,
        metadata.properties(),
    )
}

/// JSON the crate wrote with the carried v3 types put back ([`v3_types`]).
pub fn raised(json: Vec<u8>, properties: &HashMap<String, String>) -> Result<Vec<u8>> {
    v3_types::raise_metadata_json(json, properties.keys())
        .map_err(|e| Error::internal("writing v3 types back into metadata", e))
}

/// View metadata as JSON with versions and schemas ordered by id.
pub fn view_metadata_json(metadata: &ViewMetadata) -> Result<Vec<u8>> {
    let json = to_json(metadata)?;
    raised(
        sorted_lists(
            &json,
            &[("versions", &["version-id"]), ("schemas", &["schema-id"])],
        )?,
        metadata.properties(),
    )
}

/// The integer fields lists of metadata are sorted by (other fields are skipped unparsed).
#[derive(serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
struct SortFields {
    sequence_number: Option<i64>,
    timestamp_ms: Option<i64>,
    snapshot_id: Option<i64>,
    schema_id: Option<i64>,
    spec_id: Option<i64>,
    order_id: Option<i64>,
    version_id: Option<i64>,
}

impl SortFields {
    fn get(&self, field: &str) -> Option<i64> {
        match field {
            "sequence-number" => self.sequence_number,
            "timestamp-ms" => self.timestamp_ms,
            "snapshot-id" => self.snapshot_id,
            "schema-id" => self.schema_id,
            "spec-id" => self.spec_id,
            "order-id" => self.order_id,
            "version-id" => self.version_id,
            _ => None,
        }
    }
}

/// Rewrites a JSON object with some of its lists of objects sorted by integer fields, and its keys
/// in alphabetical order. Elements are moved as raw text: nothing but the sort keys is parsed
/// again, which matters for metadata with thousands of snapshots.
/// The sort key of one list item read straight from its JSON text, without parsing it: each
/// field's first `"name":` followed by an integer. Only trusted when every field is found before
/// any nested object (`summary`, `fields`...) opens, where keys of the item itself are the only
/// ones that can appear (a quote inside a string is escaped, so `"name":` cannot occur in one).
/// `None` sends the caller to a full parse.
fn quick_sort_key(item: &str, fields: &[&str]) -> Option<Vec<i64>> {
    let body = item.strip_prefix('{')?;
    let nested = body.find(['{', '[']).unwrap_or(body.len());
    let head = &body[..nested];
    let mut key = Vec::with_capacity(fields.len());
    for field in fields {
        let pattern = format!("\"{field}\":");
        let Some(at) = head.find(&pattern) else {
            if body.contains(&pattern) {
                return None;
            }
            key.push(i64::MIN);
            continue;
        };
        let rest = head[at + pattern.len()..].trim_start();
        let end = rest
            .char_indices()
            .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        key.push(rest[..end].parse().ok()?);
    }
    Some(key)
}

#[cfg(test)]
pub(super) fn sorted_lists_for_tests(json: &[u8]) -> Vec<u8> {
    sorted_lists(json, TABLE_LISTS).unwrap()
}

/// The lists of table metadata, and the fields their items are ordered by.
const TABLE_LISTS: &[(&str, &[&str])] = &[
    (
        "snapshots",
        &["sequence-number", "timestamp-ms", "snapshot-id"],
    ),
    ("schemas", &["schema-id"]),
    ("partition-specs", &["spec-id"]),
    ("sort-orders", &["order-id"]),
    ("statistics", &["snapshot-id"]),
    ("partition-statistics", &["snapshot-id"]),
];

fn sorted_lists(json: &[u8], lists: &[(&str, &[&str])]) -> Result<Vec<u8>> {
    use serde_json::value::RawValue;
    let bad = |e: serde_json::Error| Error::internal("reordering metadata", e);
    let object: std::collections::BTreeMap<&str, &RawValue> =
        serde_json::from_slice(json).map_err(bad)?;
    let mut out = Vec::with_capacity(json.len() + 16);
    out.push(b'{');
    for (i, (key, raw)) in object.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).map_err(bad)?;
        out.push(b':');
        let Some((_, fields)) = lists.iter().find(|(name, _)| name == key) else {
            out.extend_from_slice(raw.get().as_bytes());
            continue;
        };
        let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else {
            out.extend_from_slice(raw.get().as_bytes());
            continue;
        };
        let mut keyed = Vec::with_capacity(items.len());
        for item in items {
            let sort_key = match quick_sort_key(item.get(), fields) {
                Some(key) => key,
                None => {
                    let known: SortFields = serde_json::from_str(item.get()).map_err(bad)?;
                    fields
                        .iter()
                        .map(|f| known.get(f).unwrap_or(i64::MIN))
                        .collect()
                }
            };
            keyed.push((sort_key, item));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(b'[');
        for (j, (_, item)) in keyed.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(item.get().as_bytes());
        }
        out.push(b']');
    }
    out.push(b'}');
    Ok(out)
}

/// Reads `format-version` out of creation properties (it is not a stored property).
fn take_format_version(properties: &mut HashMap<String, String>) -> Result<FormatVersion> {
    match properties.remove(FORMAT_VERSION).as_deref() {
        None | Some("2") => Ok(FormatVersion::V2),
        Some("1") => Ok(FormatVersion::V1),
        Some("3") => Ok(FormatVersion::V3),
        Some(other) => Err(Error::bad_request(format!(
            "format-version {other:?} is not supported (1, 2 or 3)"
        ))),
    }
}

/// Metadata for a new table.
pub fn new_table_metadata(
    location: &Location,
    schema: Schema,
    partition_spec: Option<UnboundPartitionSpec>,
    sort_order: Option<SortOrder>,
    mut properties: HashMap<String, String>,
) -> Result<TableMetadata> {
    let format_version = take_format_version(&mut properties)?;
    let builder = TableMetadataBuilder::new(
        schema,
        partition_spec.unwrap_or(UnboundPartitionSpec::builder().build()),
        sort_order.unwrap_or_else(SortOrder::unsorted_order),
        location.to_string(),
        format_version,
        properties,
    )
    .map_err(iceberg_error)?;
    let metadata = builder.build().map_err(iceberg_error)?.metadata;
    check_carried_types(&metadata)?;
    Ok(metadata)
}

/// Checks `requirements` against the current metadata (`None`: the table does not exist) and
/// applies `updates`. A table that does not exist is created from the updates when the
/// requirements include `assert-create`; `default_location` is used when they set none.
pub fn apply_table_commit(
    current: Option<(&TableMetadata, &str)>,
    requirements: &[TableRequirement],
    updates: Vec<TableUpdate>,
    default_location: impl FnOnce() -> Result<Location>,
) -> Result<TableMetadataBuildResult> {
    for requirement in requirements {
        requirement
            .check(current.map(|(m, _)| m))
            .map_err(iceberg_error)?;
    }
    match current {
        Some((metadata, metadata_location)) => {
            let mut builder = TableMetadataBuilder::new_from_metadata(
                metadata.clone(),
                Some(metadata_location.to_string()),
            );
            for update in updates {
                builder = update.apply(builder).map_err(iceberg_error)?;
            }
            let built = builder.build().map_err(iceberg_error)?;
            check_carried_types(&built.metadata)?;
            Ok(built)
        }
        None => {
            if !requirements
                .iter()
                .any(|r| matches!(r, TableRequirement::NotExist))
            {
                return Err(Error::not_found(Entity::Table, "the table does not exist"));
            }
            let built = create_from_updates(updates, default_location)?;
            check_carried_types(&built.metadata)?;
            Ok(built)
        }
    }
}

/// Builds a new table from the updates of a create transaction (`assign-uuid`,
/// `upgrade-format-version`, `add-schema`, `set-current-schema`, `add-spec`, `set-default-spec`,
/// `add-sort-order`, `set-default-sort-order`, `set-location`, `set-properties`), then applies the
/// rest (e.g. a CTAS's first snapshot) in order.
fn create_from_updates(
    updates: Vec<TableUpdate>,
    default_location: impl FnOnce() -> Result<Location>,
) -> Result<TableMetadataBuildResult> {
    let mut schema = None;
    let mut spec = None;
    let mut order = None;
    let mut location = None;
    let mut format_version = FormatVersion::V2;
    let mut uuid = None;
    let mut properties = HashMap::new();
    let (mut current_schema_set, mut default_spec_set, mut default_order_set) =
        (false, false, false);
    let mut rest = Vec::new();
    for update in updates {
        match update {
            TableUpdate::AddSchema { schema: s } if schema.is_none() => schema = Some(s),
            TableUpdate::SetCurrentSchema { .. } if !current_schema_set => {
                current_schema_set = true
            }
            TableUpdate::AddSpec { spec: s } if spec.is_none() => spec = Some(s),
            TableUpdate::SetDefaultSpec { .. } if !default_spec_set => default_spec_set = true,
            TableUpdate::AddSortOrder { sort_order } if order.is_none() => order = Some(sort_order),
            TableUpdate::SetDefaultSortOrder { .. } if !default_order_set => {
                default_order_set = true
            }
            TableUpdate::SetLocation { location: l } => location = Some(l),
            TableUpdate::UpgradeFormatVersion { format_version: v } => format_version = v,
            TableUpdate::AssignUuid { uuid: u } => uuid = Some(u),
            TableUpdate::SetProperties { updates } if rest.is_empty() => properties.extend(updates),
            other => rest.push(other),
        }
    }
    let schema =
        schema.ok_or_else(|| Error::bad_request("creating a table needs an add-schema update"))?;
    if let Some(v) = properties.remove(FORMAT_VERSION) {
        format_version = take_format_version(&mut HashMap::from([(FORMAT_VERSION.into(), v)]))?;
    }
    let location = match location {
        Some(l) => l,
        None => default_location()?.to_string(),
    };
    let mut builder = TableMetadataBuilder::new(
        schema,
        spec.unwrap_or(UnboundPartitionSpec::builder().build()),
        order.unwrap_or_else(SortOrder::unsorted_order),
        location,
        format_version,
        properties,
    )
    .map_err(iceberg_error)?;
    if let Some(uuid) = uuid {
        builder = builder.assign_uuid(uuid);
    }
    for update in rest {
        builder = update.apply(builder).map_err(iceberg_error)?;
    }
    builder.build().map_err(iceberg_error)
}

/// Checks that a table's or view's location lies inside the warehouse and that its write paths lie
/// inside its location; returns the location.
pub fn check_locations(
    location: &str,
    properties: &HashMap<String, String>,
    warehouse: &Location,
) -> Result<Location> {
    // Every path that ends here (create, commit, register, views) holds the same limits on
    // properties as namespaces do.
    crate::model::validate_properties(
        properties
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str()))),
    )?;
    let location = Location::parse(location)?;
    if !location.is_within(warehouse) || &location == warehouse {
        return Err(Error::forbidden(format!(
            "location {location} is outside the warehouse at {warehouse}"
        )));
    }
    for key in WRITE_PATH_PROPERTIES {
        if let Some(path) = properties.get(*key) {
            let path = Location::parse(path)?;
            if !path.is_within(&location) {
                return Err(Error::forbidden(format!(
                    "{key} {path} is outside the table's location {location}"
                )));
            }
        }
    }
    Ok(location)
}

/// Files that a commit's updates point at, which the table's own writers made and Floe may read
/// (a merge reads manifest lists): manifest lists of added snapshots, statistics and partition
/// statistics files. `(what, path)` pairs.
pub fn files_of_updates(updates: &[TableUpdate]) -> Vec<(String, &str)> {
    let mut files = Vec::new();
    for update in updates {
        match update {
            TableUpdate::AddSnapshot { snapshot } => files.push((
                format!("the manifest list of snapshot {}", snapshot.snapshot_id()),
                snapshot.manifest_list(),
            )),
            TableUpdate::SetStatistics { statistics } => files.push((
                format!("the statistics file of snapshot {}", statistics.snapshot_id),
                statistics.statistics_path.as_str(),
            )),
            TableUpdate::SetPartitionStatistics {
                partition_statistics,
            } => files.push((
                format!(
                    "the partition statistics file of snapshot {}",
                    partition_statistics.snapshot_id
                ),
                partition_statistics.statistics_path.as_str(),
            )),
            _ => {}
        }
    }
    files
}

/// The same files for a whole table's metadata (what `register` brings in).
pub fn files_of_metadata(metadata: &TableMetadata) -> Vec<(String, &str)> {
    let mut files = Vec::new();
    for snapshot in metadata.snapshots() {
        files.push((
            format!("the manifest list of snapshot {}", snapshot.snapshot_id()),
            snapshot.manifest_list(),
        ));
    }
    for statistics in metadata.statistics_iter() {
        files.push((
            format!("the statistics file of snapshot {}", statistics.snapshot_id),
            statistics.statistics_path.as_str(),
        ));
    }
    for statistics in metadata.partition_statistics_iter() {
        files.push((
            format!(
                "the partition statistics file of snapshot {}",
                statistics.snapshot_id
            ),
            statistics.statistics_path.as_str(),
        ));
    }
    files
}

/// The files among `files` that lie in none of `folders` (each checked as a location: a path that
/// does not parse is outside everything).
pub fn files_outside<'a>(
    files: &'a [(String, &'a str)],
    folders: &[Location],
) -> Vec<&'a (String, &'a str)> {
    files
        .iter()
        .filter(|(_, path)| {
            Location::parse(path)
                .map(|file| {
                    !folders
                        .iter()
                        .any(|folder| file.is_within(folder) && &file != folder)
                })
                .unwrap_or(true)
        })
        .collect()
}

/// The refusal of a file outside the table's folders.
pub fn file_outside_error(what: &str, path: &str) -> Error {
    Error::forbidden(format!(
        "{what} ({path}) is outside the table's folders; a table's files must lie in its own \
         folder"
    ))
}

/// The default location of a new table or view: under its namespace's folders, named after it, with
/// a fresh id so that a re-created table never shares files with an old one.
pub fn default_location(
    warehouse: &Location,
    namespace: &[String],
    name: &str,
) -> Result<Location> {
    let mut path: Vec<String> = namespace.iter().map(|l| path_segment(l)).collect();
    path.push(format!(
        "{}-{}",
        path_segment(name),
        uuid::Uuid::now_v7().simple()
    ));
    warehouse.join(&path.join("/"))
}

/// `<dir>/<NNNNN>-<uuid>.metadata.json`, numbered one after the previous file (`00000` first).
/// `dir` is `write.metadata.path` when set, else `<location>/metadata`.
pub fn next_metadata_location(
    location: &Location,
    properties: &HashMap<String, String>,
    previous: Option<&str>,
) -> Result<Location> {
    let dir = match properties.get("write.metadata.path") {
        Some(path) => Location::parse(path)?,
        None => location.join("metadata")?,
    };
    let number = previous
        .and_then(|p| p.rsplit('/').next())
        .and_then(|file| file.split('-').next())
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| n + 1)
        .unwrap_or(0);
    dir.join(&format!(
        "{number:05}-{}.metadata.json",
        uuid::Uuid::new_v4()
    ))
}

/// Metadata files a commit retired that the table asked to delete
/// (`write.metadata.delete-after-commit.enabled`), limited to files inside its location.
pub fn retired_metadata_files(
    result: &TableMetadataBuildResult,
    location: &Location,
) -> Vec<Location> {
    let enabled = result
        .metadata
        .properties()
        .get(DELETE_AFTER_COMMIT)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !enabled {
        return Vec::new();
    }
    result
        .expired_metadata_logs
        .iter()
        .filter_map(|log| Location::parse(&log.metadata_file).ok())
        .filter(|l| l.is_within(location))
        .collect()
}

/// Keeps only the snapshots that a branch or tag references (`snapshots=refs`).
pub fn only_referenced_snapshots(json: &[u8]) -> Result<Vec<u8>> {
    let mut value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| Error::internal("parsing metadata", e))?;
    let referenced: Vec<i64> = value
        .get("refs")
        .and_then(|r| r.as_object())
        .map(|refs| {
            refs.values()
                .filter_map(|r| r.get("snapshot-id").and_then(|s| s.as_i64()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(snapshots) = value.get_mut("snapshots").and_then(|s| s.as_array_mut()) {
        snapshots.retain(|s| {
            s.get("snapshot-id")
                .and_then(|id| id.as_i64())
                .is_some_and(|id| referenced.contains(&id))
        });
    }
    to_json(&value)
}

/// The one requirement a view commit can carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ViewRequirement {
    #[serde(rename = "assert-view-uuid")]
    AssertViewUuid { uuid: uuid::Uuid },
}

/// Metadata for a new view.
pub fn new_view_metadata(
    location: &Location,
    schema: Schema,
    version: ViewVersion,
    properties: HashMap<String, String>,
) -> Result<ViewMetadata> {
    let builder = ViewMetadataBuilder::new(
        location.to_string(),
        schema,
        version,
        ViewFormatVersion::V1,
        properties,
    )
    .map_err(iceberg_error)?;
    Ok(builder.build().map_err(iceberg_error)?.metadata)
}

/// Checks the requirements and applies the updates of a view commit.
pub fn apply_view_commit(
    current: &ViewMetadata,
    requirements: &[ViewRequirement],
    updates: Vec<ViewUpdate>,
) -> Result<ViewMetadata> {
    for requirement in requirements {
        match requirement {
            ViewRequirement::AssertViewUuid { uuid } => {
                if current.uuid() != *uuid {
                    return Err(Error::new(
                        ErrorKind::CommitConflict,
                        format!("view uuid is {}, not {uuid}", current.uuid()),
                    ));
                }
            }
        }
    }
    let mut builder = ViewMetadataBuilder::new_from_metadata(current.clone());
    for update in updates {
        builder = match update {
            // A view's UUID is its identity, as a table's is: it cannot change.
            ViewUpdate::AssignUuid { uuid } if uuid != current.uuid() => {
                return Err(Error::bad_request(format!(
                    "the UUID of a view cannot change (from {} to {uuid})",
                    current.uuid()
                )));
            }
            ViewUpdate::AssignUuid { uuid } => builder.assign_uuid(uuid),
            ViewUpdate::UpgradeFormatVersion { format_version } => builder
                .upgrade_format_version(format_version)
                .map_err(iceberg_error)?,
            ViewUpdate::AddSchema { schema, .. } => builder.add_schema(schema),
            ViewUpdate::SetLocation { location } => builder.set_location(location),
            ViewUpdate::SetProperties { updates } => {
                builder.set_properties(updates).map_err(iceberg_error)?
            }
            ViewUpdate::RemoveProperties { removals } => builder.remove_properties(&removals),
            ViewUpdate::AddViewVersion { view_version } => {
                builder.add_version(view_version).map_err(iceberg_error)?
            }
            ViewUpdate::SetCurrentViewVersion { view_version_id } => builder
                .set_current_version_id(view_version_id)
                .map_err(iceberg_error)?,
        };
    }
    Ok(builder.build().map_err(iceberg_error)?.metadata)
}

#[cfg(test)]
mod tests {
    #[test]
    fn quick_sort_keys_agree_with_a_full_parse_or_step_aside() {
        let fields = &["sequence-number", "timestamp-ms", "snapshot-id"];
        let full = |item: &str| -> Vec<i64> {
            let known: SortFields = serde_json::from_str(item).unwrap();
            fields
                .iter()
                .map(|f| known.get(f).unwrap_or(i64::MIN))
                .collect()
        };
        for item in [
            r#"{"snapshot-id":7,"parent-snapshot-id":3,"sequence-number":2,"timestamp-ms":1700000000000,"manifest-list":"s3://b/\"sequence-number\":9","summary":{"operation":"append","sequence-number":"99"},"schema-id":0}"#,
            r#"{"snapshot-id":-7,"sequence-number":2,"timestamp-ms":5}"#,
            r#"{"snapshot-id":7,"timestamp-ms":5}"#,
        ] {
            assert_eq!(quick_sort_key(item, fields).unwrap(), full(item), "{item}");
        }
        // A field that only appears after a nested object: the full parse decides.
        let late = r#"{"timestamp-ms":5,"summary":{"operation":"append"},"sequence-number":3,"snapshot-id":1}"#;
        assert_eq!(quick_sort_key(late, fields), None);
        // A value that is not an integer: the full parse decides.
        assert_eq!(quick_sort_key(r#"{"sequence-number":null}"#, fields), None);
    }

    use super::*;

    fn schema() -> Schema {
        serde_json::from_value(serde_json::json!({
            "type": "struct", "schema-id": 0,
            "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]
        }))
        .unwrap()
    }

    #[test]
    fn metadata_files_are_numbered_after_the_previous_one() {
        let location = Location::parse("file:///wh/t").unwrap();
        let first = next_metadata_location(&location, &HashMap::new(), None).unwrap();
        assert!(
            first.as_str().starts_with("file:///wh/t/metadata/00000-"),
            "{first}"
        );
        assert!(first.as_str().ends_with(".metadata.json"));
        let second =
            next_metadata_location(&location, &HashMap::new(), Some(first.as_str())).unwrap();
        assert!(second.file_name().starts_with("00001-"), "{second}");
        let custom = HashMap::from([(
            "write.metadata.path".to_string(),
            "file:///wh/t/meta".to_string(),
        )]);
        let third = next_metadata_location(&location, &custom, Some("file:///x/v12.metadata.json"))
            .unwrap();
        assert!(
            third.as_str().starts_with("file:///wh/t/meta/00000-"),
            "{third}"
        );
    }

    #[test]
    fn locations_stay_inside() {
        let wh = Location::parse("file:///wh").unwrap();
        let none = HashMap::new();
        assert!(check_locations("file:///wh/ns/t", &none, &wh).is_ok());
        for bad in [
            "file:///wh2/t",
            "file:///other",
            "file:///wh",
            "file:///wh/../x",
            "file:///wh/%2e%2e/x",
        ] {
            assert!(check_locations(bad, &none, &wh).is_err(), "{bad}");
        }
        let props = HashMap::from([(
            "write.data.path".to_string(),
            "file:///wh/ns/t2/data".to_string(),
        )]);
        assert_eq!(
            check_locations("file:///wh/ns/t", &props, &wh)
                .unwrap_err()
                .kind,
            ErrorKind::Forbidden
        );
        let props = HashMap::from([(
            "write.data.path".to_string(),
            "file:///wh/ns/t/data".to_string(),
        )]);
        assert!(check_locations("file:///wh/ns/t", &props, &wh).is_ok());
    }

    /// Format v3: a snapshot whose row ids a concurrent commit took is a conflict the client
    /// retries (409), not a bad request; the crate's wording it is told by is pinned here.
    #[test]
    fn row_ids_taken_by_a_concurrent_commit_are_a_conflict() {
        let location = Location::parse("file:///wh/t").unwrap();
        let metadata = new_table_metadata(
            &location,
            schema(),
            None,
            None,
            HashMap::from([("format-version".into(), "3".into())]),
        )
        .unwrap();
        let add = |id: i64, first_row_id: u64| -> Vec<TableUpdate> {
            serde_json::from_value(serde_json::json!([{
                "action": "add-snapshot",
                "snapshot": {
                    "snapshot-id": id, "sequence-number": id,
                    "timestamp-ms": chrono::Utc::now().timestamp_millis(),
                    "manifest-list": format!("file:///wh/t/metadata/snap-{id}.avro"),
                    "summary": {"operation": "append"}, "schema-id": 0,
                    "first-row-id": first_row_id, "added-rows": 10
                }
            }]))
            .unwrap()
        };
        let file = "file:///wh/t/metadata/00000-a.metadata.json";
        let first = apply_table_commit(Some((&metadata, file)), &[], add(1, 0), || {
            Ok(location.clone())
        })
        .unwrap();
        assert_eq!(first.metadata.next_row_id(), 10);
        let err = apply_table_commit(Some((&first.metadata, file)), &[], add(2, 5), || {
            Ok(location.clone())
        })
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::CommitConflict, "{err:?}");
        assert!(err.message.contains(ROW_IDS_TAKEN), "{}", err.message);
        let ok = apply_table_commit(Some((&first.metadata, file)), &[], add(2, 10), || {
            Ok(location.clone())
        })
        .unwrap();
        assert_eq!(ok.metadata.next_row_id(), 20);
    }

    #[test]
    fn requirements_decide_conflicts() {
        let location = Location::parse("file:///wh/t").unwrap();
        let metadata = new_table_metadata(&location, schema(), None, None, HashMap::new()).unwrap();
        let wrong_uuid = [TableRequirement::UuidMatch {
            uuid: uuid::Uuid::new_v4(),
        }];
        let err = apply_table_commit(
            Some((&metadata, "file:///wh/t/metadata/00000-a.metadata.json")),
            &wrong_uuid,
            vec![],
            || Ok(location.clone()),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::CommitConflict);
        let err = apply_table_commit(
            Some((&metadata, "x")),
            &[TableRequirement::NotExist],
            vec![],
            || Ok(location.clone()),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::CommitConflict);
        let err = apply_table_commit(None, &[], vec![], || Ok(location.clone())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound(Entity::Table));

        let ok = apply_table_commit(
            Some((&metadata, "file:///wh/t/metadata/00000-a.metadata.json")),
            &[TableRequirement::UuidMatch {
                uuid: metadata.uuid(),
            }],
            vec![TableUpdate::SetProperties {
                updates: HashMap::from([("k".into(), "v".into())]),
            }],
            || Ok(location.clone()),
        )
        .unwrap();
        assert_eq!(
            ok.metadata.properties().get("k").map(String::as_str),
            Some("v")
        );
        assert_eq!(ok.metadata.metadata_log().len(), 1);

        let bad = apply_table_commit(
            Some((&metadata, "x")),
            &[],
            vec![TableUpdate::SetCurrentSchema { schema_id: 42 }],
            || Ok(location.clone()),
        )
        .unwrap_err();
        assert_eq!(bad.kind, ErrorKind::BadRequest);
    }

    #[test]
    fn create_transactions_build_from_updates() {
        let location = Location::parse("file:///wh/t").unwrap();
        let uuid = uuid::Uuid::new_v4();
        let updates: Vec<TableUpdate> = serde_json::from_value(serde_json::json!([
            {"action": "assign-uuid", "uuid": uuid},
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": {"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": false, "type": "long"}]}},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "add-spec", "spec": {"spec-id": 0, "fields": []}},
            {"action": "set-default-spec", "spec-id": -1},
            {"action": "add-sort-order", "sort-order": {"order-id": 0, "fields": []}},
            {"action": "set-default-sort-order", "sort-order-id": -1},
            {"action": "set-properties", "updates": {"owner": "me"}}
        ]))
        .unwrap();
        let built = apply_table_commit(None, &[TableRequirement::NotExist], updates, || {
            Ok(location.clone())
        })
        .unwrap();
        assert_eq!(built.metadata.uuid(), uuid);
        assert_eq!(built.metadata.location(), "file:///wh/t");
        assert_eq!(
            built.metadata.properties().get("owner").map(String::as_str),
            Some("me")
        );
    }

    #[test]
    fn table_json_lists_snapshots_in_commit_order() {
        let location = Location::parse("file:///wh/t").unwrap();
        let mut metadata =
            new_table_metadata(&location, schema(), None, None, HashMap::new()).unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        for (i, id) in [17i64, 3, 99, 42, 5, 8, 1000, 1].into_iter().enumerate() {
            let i = i as i64;
            let update: TableUpdate = serde_json::from_value(serde_json::json!({
                "action": "add-snapshot",
                "snapshot": {
                    "snapshot-id": id, "sequence-number": i + 1, "timestamp-ms": now + i,
                    "manifest-list": "file:///wh/t/m.avro", "summary": {"operation": "append"},
                    "schema-id": 0
                }
            }))
            .unwrap();
            let builder = TableMetadataBuilder::new_from_metadata(metadata.clone(), None);
            let builder = update.apply(builder).unwrap();
            metadata = builder.build().unwrap().metadata;
        }
        let json: serde_json::Value =
            serde_json::from_slice(&table_metadata_json(&metadata).unwrap()).unwrap();
        let sequence: Vec<i64> = json["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sequence-number"].as_i64().unwrap())
            .collect();
        assert_eq!(sequence, (1..=8).collect::<Vec<_>>());
        let roundtrip: TableMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(roundtrip, metadata);
    }

    #[test]
    fn snapshots_refs_keeps_referenced_ones() {
        let json = serde_json::json!({
            "refs": {"main": {"snapshot-id": 2, "type": "branch"}},
            "snapshots": [{"snapshot-id": 1}, {"snapshot-id": 2}]
        });
        let filtered = only_referenced_snapshots(&serde_json::to_vec(&json).unwrap()).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&filtered).unwrap();
        assert_eq!(value["snapshots"], serde_json::json!([{"snapshot-id": 2}]));
    }
}
