//! Unit tests of `service::maintenance`.

use super::*;

/// A v2 table whose snapshots 1..=n (each the parent of the next) were made at `times[i]`,
/// with `refs` as JSON.
fn table(times: &[i64], refs: serde_json::Value) -> (TableMetadata, Vec<u8>) {
    let snapshots: Vec<serde_json::Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let id = i as i64 + 1;
            let mut s = json!({
                "snapshot-id": id, "sequence-number": id, "timestamp-ms": t,
                "manifest-list": format!("s3://b/t/metadata/snap-{id}.avro"),
                "summary": {"operation": "append"}, "schema-id": 0
            });
            if id > 1 {
                s["parent-snapshot-id"] = json!(id - 1);
            }
            s
        })
        .collect();
    let json = json!({
        "format-version": 2,
        "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1",
        "location": "s3://b/t",
        "last-sequence-number": times.len(),
        "last-updated-ms": times.last().copied().unwrap_or(0),
        "last-column-id": 1,
        "current-schema-id": 0,
        "schemas": [{"type": "struct", "schema-id": 0, "fields": [
            {"id": 1, "name": "id", "required": false, "type": "long"}]}],
        "default-spec-id": 0,
        "partition-specs": [{"spec-id": 0, "fields": []}],
        "last-partition-id": 999,
        "default-sort-order-id": 0,
        "sort-orders": [{"order-id": 0, "fields": []}],
        "properties": {},
        "current-snapshot-id": times.len(),
        "snapshots": snapshots,
        "snapshot-log": [],
        "metadata-log": [],
        "refs": refs,
    });
    let bytes = serde_json::to_vec(&json).unwrap();
    (
        super::super::metadata::parse_table_metadata(&bytes).unwrap(),
        bytes,
    )
}

fn expiry(max_age: i64, min_keep: usize) -> Expiry {
    Expiry {
        max_snapshot_age_ms: max_age,
        min_snapshots_to_keep: min_keep,
        max_ref_age_ms: None,
    }
}

#[test]
fn branches_keep_young_ancestors_and_at_least_their_minimum() {
    let (metadata, json) = table(
        &[100, 200, 300, 900, 950],
        json!({"main": {"snapshot-id": 5, "type": "branch"}}),
    );
    let refs = refs_of(&json).unwrap();
    // Young: at or after now - max age = 1000 - 150 = 850.
    assert_eq!(
        expire(&metadata, &refs, expiry(150, 1), 1000),
        (vec![], vec![1, 2, 3])
    );
    // The minimum wins over age.
    assert_eq!(
        expire(&metadata, &refs, expiry(10, 3), 1000),
        (vec![], vec![1, 2])
    );
    // Nothing is old enough.
    assert_eq!(
        expire(&metadata, &refs, expiry(10_000, 1), 1000),
        (vec![], vec![])
    );
    // A gap stops the walk: an old snapshot between young ones ends what the branch keeps.
    let (metadata, json) = table(
        &[900, 100, 950],
        json!({"main": {"snapshot-id": 3, "type": "branch"}}),
    );
    let refs = refs_of(&json).unwrap();
    assert_eq!(
        expire(&metadata, &refs, expiry(150, 1), 1000),
        (vec![], vec![1, 2])
    );
}

#[test]
fn tags_keep_their_snapshot_and_old_refs_go() {
    let (metadata, json) = table(
        &[100, 200, 300, 950],
        json!({
            "main": {"snapshot-id": 4, "type": "branch"},
            "v1": {"snapshot-id": 2, "type": "tag"},
            "old-tag": {"snapshot-id": 1, "type": "tag", "max-ref-age-ms": 500},
            "dev": {"snapshot-id": 3, "type": "branch", "max-ref-age-ms": 500,
                    "min-snapshots-to-keep": 5}
        }),
    );
    let refs = refs_of(&json).unwrap();
    let (removed, expired) = expire(&metadata, &refs, expiry(100, 1), 1000);
    assert_eq!(removed, ["dev", "old-tag"]);
    assert_eq!(expired, [1, 3], "v1 keeps 2; main keeps 4");
    // `main` never expires, whatever its age.
    let (metadata, json) = table(
        &[100],
        json!({"main": {"snapshot-id": 1, "type": "branch", "max-ref-age-ms": 1}}),
    );
    let refs = refs_of(&json).unwrap();
    assert_eq!(
        expire(&metadata, &refs, expiry(1, 1), 1000),
        (vec![], vec![])
    );
}

#[test]
fn properties_fall_back_to_icebergs_defaults() {
    let defaults = Expiry::of(&HashMap::new());
    assert_eq!(defaults.max_snapshot_age_ms, DEFAULT_MAX_SNAPSHOT_AGE_MS);
    assert_eq!(defaults.min_snapshots_to_keep, 1);
    assert_eq!(defaults.max_ref_age_ms, None);
    let set = Expiry::of(&HashMap::from([
        (MAX_SNAPSHOT_AGE.to_string(), "60000".to_string()),
        (MIN_SNAPSHOTS.to_string(), "0".to_string()),
        (MAX_REF_AGE.to_string(), "nonsense".to_string()),
    ]));
    assert_eq!(set.max_snapshot_age_ms, 60_000);
    assert_eq!(set.min_snapshots_to_keep, 1, "at least one is kept");
    assert_eq!(set.max_ref_age_ms, None);
}
