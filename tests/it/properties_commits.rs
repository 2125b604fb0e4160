//! Property-based tests of commits and merges (`proptest`). The invariants: applying requirements
//! and updates never panics and never fails as the server's fault; a commit that applies yields
//! metadata that validates (every ref names a snapshot, the current schema and spec exist, no
//! snapshot is ahead of the last sequence number, the format never goes back, the previous file
//! is in the metadata log) and reads back to itself; a requirement that does not hold is a
//! conflict. Merges decide each key the same whichever side is called the source, and only a
//! key both sides changed differently depends on the strategy.

use std::collections::BTreeMap;

use floe::error::ErrorKind;
use floe::index::merge::{Resolution, Strategy as Merge, merge_properties, resolve};
use floe::index::{ContentKind, ContentVersion};
use floe::service::metadata::{apply_table_commit, parse_table_metadata, table_metadata_json};
use floe::storage::location::Location;
use iceberg::spec::TableMetadata;
use iceberg::{TableRequirement, TableUpdate};
use proptest::prelude::*;
use serde_json::{Value, json};

const LOCATION: &str = "s3://lake/ns/t";

fn schema(fields: i64) -> Value {
    let fields: Vec<Value> = (1..=fields)
        .map(|id| json!({"id": id, "name": format!("c{id}"), "required": false, "type": "long"}))
        .collect();
    json!({"type": "struct", "schema-id": 0, "fields": fields})
}

/// A new table's metadata, as a create through the catalog makes it.
fn created() -> (TableMetadata, String) {
    let updates: Vec<TableUpdate> = serde_json::from_value(json!([
        {"action": "assign-uuid", "uuid": "6f1d8ed4-7c3e-4b53-9d34-3a2c7d1f0b11"},
        {"action": "upgrade-format-version", "format-version": 2},
        {"action": "add-schema", "schema": schema(2)},
        {"action": "set-current-schema", "schema-id": -1},
        {"action": "add-spec", "spec": {"spec-id": 0, "fields": []}},
        {"action": "set-default-spec", "spec-id": -1},
        {"action": "add-sort-order", "sort-order": {"order-id": 0, "fields": []}},
        {"action": "set-default-sort-order", "sort-order-id": -1},
        {"action": "set-location", "location": LOCATION},
    ]))
    .unwrap();
    let built = apply_table_commit(None, &[TableRequirement::NotExist], updates, || {
        Location::parse(LOCATION)
    })
    .expect("a valid create");
    (
        built.metadata,
        format!("{LOCATION}/metadata/00000-a.metadata.json"),
    )
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just("k".to_string()), "[a-c]{1,2}", "[a-z.-]{0,12}"]
}

/// Snapshot ids from a small range, so that parents, refs and removals meet existing ones.
fn snapshot_id() -> impl Strategy<Value = i64> {
    1i64..6
}

fn ref_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("main".to_string()),
        Just("dev".to_string()),
        "[a-z]{1,4}"
    ]
}

fn update() -> impl Strategy<Value = Value> {
    prop_oneof![
        (key(), key()).prop_map(|(k, v)| json!({"action": "set-properties", "updates": {k: v}})),
        key().prop_map(|k| json!({"action": "remove-properties", "removals": [k]})),
        (1i64..6).prop_map(|n| json!({"action": "add-schema", "schema": schema(n)})),
        prop_oneof![Just(-1), 0i64..4]
            .prop_map(|id| json!({"action": "set-current-schema", "schema-id": id})),
        (
            snapshot_id(),
            prop::option::of(snapshot_id()),
            0i64..8,
            prop::option::of(0i64..4)
        )
            .prop_map(
                |(id, parent, sequence, schema)| json!({"action": "add-snapshot", "snapshot": {
                    "snapshot-id": id,
                    "parent-snapshot-id": parent,
                    "sequence-number": sequence,
                    "timestamp-ms": 1_700_000_000_000i64 + id,
                    "manifest-list": format!("{LOCATION}/metadata/snap-{id}.avro"),
                    "summary": {"operation": "append"},
                    "schema-id": schema,
                }})
            ),
        (ref_name(), snapshot_id(), any::<bool>()).prop_map(|(name, id, branch)| json!({
            "action": "set-snapshot-ref", "ref-name": name,
            "type": if branch { "branch" } else { "tag" }, "snapshot-id": id})),
        ref_name().prop_map(|name| json!({"action": "remove-snapshot-ref", "ref-name": name})),
        prop::collection::vec(snapshot_id(), 1..3)
            .prop_map(|ids| json!({"action": "remove-snapshots", "snapshot-ids": ids})),
        (1i64..4).prop_map(|v| json!({"action": "upgrade-format-version", "format-version": v})),
        prop_oneof![
            Just(LOCATION.to_string()),
            Just(format!("{LOCATION}/moved"))
        ]
        .prop_map(|l| json!({"action": "set-location", "location": l})),
        Just(json!({"action": "add-spec", "spec": {"fields": [
            {"source-id": 1, "field-id": 1000, "name": "c1_bucket", "transform": "bucket[4]"}]}})),
        prop_oneof![Just(-1), 0i64..3]
            .prop_map(|id| json!({"action": "set-default-spec", "spec-id": id})),
    ]
}

fn requirement() -> impl Strategy<Value = Value> {
    prop_oneof![
        (ref_name(), prop::option::of(snapshot_id())).prop_map(|(name, id)| json!({
            "type": "assert-ref-snapshot-id", "ref": name, "snapshot-id": id})),
        (0i64..4)
            .prop_map(|id| json!({"type": "assert-current-schema-id", "current-schema-id": id})),
        (0i64..6).prop_map(
            |id| json!({"type": "assert-last-assigned-field-id", "last-assigned-field-id": id})
        ),
        Just(json!({"type": "assert-table-uuid", "uuid": "6f1d8ed4-7c3e-4b53-9d34-3a2c7d1f0b11"})),
        Just(json!({"type": "assert-table-uuid", "uuid": "00000000-0000-4000-8000-000000000000"})),
    ]
}

/// One commit: some requirements and some updates.
fn commit() -> impl Strategy<Value = (Vec<Value>, Vec<Value>)> {
    (
        prop::collection::vec(requirement(), 0..2),
        prop::collection::vec(update(), 0..5),
    )
}

/// Whether `requirement` holds on `metadata`, decided from its JSON (independently of the
/// `iceberg` crate's own check).
fn holds(requirement: &Value, metadata: &Value) -> bool {
    match requirement["type"].as_str().unwrap() {
        "assert-ref-snapshot-id" => {
            let name = requirement["ref"].as_str().unwrap();
            metadata["refs"][name]["snapshot-id"] == requirement["snapshot-id"]
        }
        "assert-current-schema-id" => {
            metadata["current-schema-id"] == requirement["current-schema-id"]
        }
        "assert-last-assigned-field-id" => {
            metadata["last-column-id"] == requirement["last-assigned-field-id"]
        }
        "assert-table-uuid" => metadata["table-uuid"] == requirement["uuid"],
        other => panic!("no rule for {other}"),
    }
}

/// What valid metadata always satisfies, on its JSON.
fn check_valid(json: &Value) -> Result<(), TestCaseError> {
    let snapshots: BTreeMap<i64, &Value> = json["snapshots"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| (s["snapshot-id"].as_i64().unwrap(), s))
                .collect()
        })
        .unwrap_or_default();
    if let Some(refs) = json["refs"].as_object() {
        for (name, r) in refs {
            let id = r["snapshot-id"].as_i64().unwrap();
            prop_assert!(
                snapshots.contains_key(&id),
                "ref {name} names missing snapshot {id}"
            );
        }
    }
    let current = json["current-snapshot-id"].as_i64().filter(|id| *id != -1);
    prop_assert_eq!(current, json["refs"]["main"]["snapshot-id"].as_i64());
    let last = json["last-sequence-number"].as_i64().unwrap_or(0);
    for (id, s) in &snapshots {
        let sequence = s["sequence-number"].as_i64().unwrap_or(0);
        prop_assert!(
            sequence <= last,
            "snapshot {id} at {sequence} > last {last}"
        );
    }
    let schema = &json["current-schema-id"];
    prop_assert!(
        json["schemas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| &s["schema-id"] == schema),
        "current schema {schema} missing"
    );
    let spec = &json["default-spec-id"];
    prop_assert!(
        json["partition-specs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| &s["spec-id"] == spec),
        "default spec {spec} missing"
    );
    Ok(())
}

/// Up to four commits in a row on a new table: each either applies, giving valid metadata
/// that reads back to itself, or is refused as the client's mistake (400) or a conflict (409,
/// exactly when a requirement does not hold). Enough of them must apply, and conflict, for the
/// property to say something.
#[test]
fn commits_apply_to_valid_metadata_or_are_refused() {
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (applied, conflicts, refused) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let mut runner = TestRunner::new(Config {
        cases: 3_000,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(commit(), 1..5), |commits| {
            let (mut metadata, mut location) = created();
            for (n, (requirements, updates)) in commits.into_iter().enumerate() {
                let before: Value =
                    serde_json::from_slice(&table_metadata_json(&metadata).unwrap()).unwrap();
                let parsed_requirements: Vec<TableRequirement> =
                    serde_json::from_value(Value::Array(requirements.clone())).unwrap();
                let parsed_updates: Vec<TableUpdate> =
                    match serde_json::from_value(Value::Array(updates.clone())) {
                        Ok(u) => u,
                        // An update the REST format itself refuses never reaches a commit.
                        Err(_) => continue,
                    };
                let all_hold = requirements.iter().all(|r| holds(r, &before));
                let result = apply_table_commit(
                    Some((&metadata, &location)),
                    &parsed_requirements,
                    parsed_updates,
                    || Location::parse(LOCATION),
                );
                match result {
                    Err(e) => {
                        prop_assert!(
                            matches!(e.kind, ErrorKind::BadRequest | ErrorKind::CommitConflict),
                            "{:?}: {}",
                            e.kind,
                            e.message
                        );
                        prop_assert_eq!(
                            e.kind == ErrorKind::CommitConflict,
                            !all_hold,
                            "{} for {:?}",
                            e.message,
                            requirements
                        );
                        let counter = if all_hold { &refused } else { &conflicts };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(built) => {
                        prop_assert!(
                            all_hold,
                            "applied although a requirement fails: {:?}",
                            requirements
                        );
                        let bytes = table_metadata_json(&built.metadata).unwrap();
                        let json: Value = serde_json::from_slice(&bytes).unwrap();
                        check_valid(&json)?;
                        prop_assert_eq!(&parse_table_metadata(&bytes).unwrap(), &built.metadata);
                        prop_assert!(
                            built.metadata.format_version() >= metadata.format_version(),
                            "the format went back"
                        );
                        if !built.changes.is_empty() {
                            applied.fetch_add(1, Ordering::Relaxed);
                            let log = built.metadata.metadata_log();
                            prop_assert_eq!(
                                log.last().map(|l| l.metadata_file.as_str()),
                                Some(location.as_str()),
                                "the previous file is not in the metadata log"
                            );
                        }
                        metadata = built.metadata;
                        location = format!("{LOCATION}/metadata/{:05}-a.metadata.json", n + 1);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    let (applied, conflicts, refused) = (
        applied.into_inner(),
        conflicts.into_inner(),
        refused.into_inner(),
    );
    eprintln!("commits: applied {applied}, conflicts {conflicts}, refused {refused}");
    assert!(
        applied > 1_000 && conflicts > 300 && refused > 300,
        "applied {applied}, conflicts {conflicts}, refused {refused}: the property says little"
    );
}

fn version() -> impl Strategy<Value = Option<ContentVersion>> {
    prop::option::of((0u128..3, 0u8..3).prop_map(|(id, v)| ContentVersion {
        content_id: uuid::Uuid::from_u128(id),
        version: format!("v{v}"),
    }))
}

fn kind() -> impl Strategy<Value = ContentKind> {
    prop_oneof![
        Just(ContentKind::Table),
        Just(ContentKind::View),
        Just(ContentKind::Namespace)
    ]
}

fn properties() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-d]", "[x-z]", 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]

    /// A key only one side changed takes that side's version whatever the strategy; the
    /// strategy decides only keys both sides changed differently, and swapping source and target
    /// swaps what the two "wins" strategies do.
    #[test]
    fn merge_decisions_follow_who_changed_what(
        kind in kind(), base in version(), source in version(), target in version()
    ) {
        let decide = |strategy| resolve(kind, base.as_ref(), source.as_ref(), target.as_ref(), strategy);
        let fail = decide(Merge::Fail);
        if source == base || source == target {
            prop_assert_eq!(&fail, &Resolution::KeepTarget);
        } else if target == base {
            prop_assert_eq!(&fail, &Resolution::TakeSource);
        }
        match &fail {
            Resolution::Conflict(reason) => {
                prop_assert!(source != base && target != base && source != target, "{reason}");
                prop_assert_eq!(decide(Merge::SourceWins), Resolution::TakeSource);
                prop_assert_eq!(decide(Merge::TargetWins), Resolution::KeepTarget);
                let swapped = resolve(kind, base.as_ref(), target.as_ref(), source.as_ref(), Merge::SourceWins);
                prop_assert_eq!(swapped, Resolution::TakeSource);
            }
            other => {
                for strategy in [Merge::SourceWins, Merge::TargetWins] {
                    prop_assert_eq!(&decide(strategy), other);
                }
            }
        }
        if fail == Resolution::Compose {
            prop_assert!(kind != ContentKind::View, "views never compose");
            prop_assert!(source.is_some() && target.is_some());
        }
    }

    /// A three-way merge of properties takes each key from the side that changed it, does not
    /// depend on which side is called the source, and conflicts exactly on keys both sides
    /// changed differently.
    #[test]
    fn property_merges_are_symmetric_and_take_each_change(
        base in properties(), source in properties(), target in properties()
    ) {
        let merged = merge_properties(&base, &source, &target);
        let swapped = merge_properties(&base, &target, &source);
        let mut expected_conflicts: Vec<String> = Vec::new();
        let keys: std::collections::BTreeSet<&String> =
            base.keys().chain(source.keys()).chain(target.keys()).collect();
        for key in &keys {
            let (b, s, t) = (base.get(*key), source.get(*key), target.get(*key));
            if s != b && t != b && s != t {
                expected_conflicts.push((*key).clone());
            }
        }
        match (&merged, &swapped) {
            (Ok(m), Ok(w)) => {
                prop_assert!(expected_conflicts.is_empty());
                prop_assert_eq!(m, w);
                for key in keys {
                    let (b, s, t) = (base.get(key), source.get(key), target.get(key));
                    let want = if s != b { s } else { t };
                    prop_assert_eq!(m.get(key), want, "{}", key);
                }
            }
            (Err(c), Err(d)) => {
                prop_assert_eq!(c, &expected_conflicts);
                prop_assert_eq!(d, &expected_conflicts);
            }
            _ => prop_assert!(false, "one way merges, the other does not"),
        }
        // Nothing changed on one side: the other side's map, whole.
        prop_assert_eq!(merge_properties(&base, &base, &target), Ok(target.clone()));
        prop_assert_eq!(merge_properties(&base, &source, &base), Ok(source.clone()));
    }
}
