//! Whether a table's changes on two branches compose at the Iceberg level, and how.
//!
//! Works on table metadata as the spec's JSON (what the catalog stores), at the merge base, on the
//! source and on the target. The changes compose when:
//! - **snapshots**: the source only appended snapshots to `main` since the base, or the target
//!   added none (then the source's snapshots are taken as they are). When both added snapshots,
//!   the source's must all be appends: they are replayed onto the target's current snapshot, as
//!   Iceberg's own commit retry does (a new manifest list per snapshot: the target's manifests plus
//!   the ones the source's snapshot added). Snapshots removed (expired) on one side while the other
//!   added some do not compose.
//! - **properties**: the sides changed different keys (or made the same change).
//! - **schema**: only one side changed it, or both changed different top-level columns and at most
//!   one side added columns (added columns get fresh ids on each side; two sides adding would hand
//!   out the same ids).
//! - **partition specs and sort orders**: at most one side changed them.
//! - **table refs** (branches and tags inside the table other than `main`): the sides changed
//!   different refs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::merge::merge_properties;

/// How to build the merged table from the target's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TablePlan {
    /// The merged properties (the whole map).
    pub properties: BTreeMap<String, String>,
    /// A schema to add and make current (the source's, or the two merged), when it changed.
    pub schema: Option<Value>,
    /// The source's partition specs and default spec id, when only the source changed them.
    pub partition_specs: Option<(Vec<Value>, i64)>,
    /// The source's sort orders and default sort order id, when only the source changed them.
    pub sort_orders: Option<(Vec<Value>, i64)>,
    /// The source's new `main` snapshots since the base, oldest first.
    pub snapshots: Vec<Value>,
    /// Whether those snapshots must be replayed onto the target's current snapshot (the target
    /// added snapshots too, or has some of theirs ids with other content) or can be added as
    /// they are. A replayed snapshot keeps its id unless the target has it already.
    pub rebase: bool,
    /// Snapshot ids the source removed (expired), to remove on the target too.
    pub removed_snapshots: Vec<i64>,
    /// Table refs other than `main` the source set (name -> ref JSON) or removed (`None`).
    pub refs: BTreeMap<String, Option<Value>>,
}

fn snapshot_id(snapshot: &Value) -> Option<i64> {
    snapshot.get("snapshot-id").and_then(Value::as_i64)
}

fn main_head(metadata: &Value) -> Option<i64> {
    metadata
        .get("refs")
        .and_then(|refs| refs.get("main"))
        .and_then(|r| r.get("snapshot-id"))
        .and_then(Value::as_i64)
        .or_else(|| {
            metadata
                .get("current-snapshot-id")
                .and_then(Value::as_i64)
                .filter(|id| *id >= 0)
        })
}

fn snapshots_by_id(metadata: &Value) -> BTreeMap<i64, &Value> {
    metadata
        .get("snapshots")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(|s| snapshot_id(s).map(|id| (id, s)))
                .collect()
        })
        .unwrap_or_default()
}

/// A side's `main` snapshots that the base does not have as they are, oldest first: walking back
/// from the side's head up to the first snapshot the base has with the same manifest list. A
/// snapshot an earlier merge replayed keeps its id but not its manifest list, so it counts as new.
/// `None` when that history does not hold the base's current snapshot (rolled back or rewritten),
/// or misses a snapshot on the way (expired).
fn new_since<'a>(
    side: &BTreeMap<i64, &'a Value>,
    head: Option<i64>,
    base: &BTreeMap<i64, &Value>,
    base_head: Option<i64>,
) -> Option<Vec<&'a Value>> {
    let list = |s: &Value| s.get("manifest-list").cloned();
    let mut chain = Vec::new();
    let mut saw_base_head = base_head.is_none();
    let mut at = head;
    while let Some(id) = at {
        let snapshot = side.get(&id)?;
        if Some(id) == base_head {
            saw_base_head = true;
        }
        if base.get(&id).is_some_and(|b| list(b) == list(snapshot)) {
            break;
        }
        chain.push(*snapshot);
        at = snapshot.get("parent-snapshot-id").and_then(Value::as_i64);
        if chain.len() > side.len() {
            return None;
        }
    }
    if !saw_base_head {
        return None;
    }
    chain.reverse();
    Some(chain)
}

fn operation(snapshot: &Value) -> &str {
    snapshot
        .get("summary")
        .and_then(|s| s.get("operation"))
        .and_then(Value::as_str)
        .unwrap_or("unknown")
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn current_schema(metadata: &Value) -> Option<&Value> {
    let id = metadata.get("current-schema-id")?.as_i64()?;
    metadata
        .get("schemas")?
        .as_array()?
        .iter()
        .find(|s| s.get("schema-id").and_then(Value::as_i64) == Some(id))
}

/// A schema's top-level columns by field id, compared without the schema's own id.
fn columns(schema: &Value) -> BTreeMap<i64, &Value> {
    schema
        .get("fields")
        .and_then(Value::as_array)
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| f.get("id").and_then(Value::as_i64).map(|id| (id, f)))
                .collect()
        })
        .unwrap_or_default()
}

struct ColumnChanges {
    added: Vec<i64>,
    touched: BTreeSet<i64>,
}

fn column_changes(base: &BTreeMap<i64, &Value>, side: &BTreeMap<i64, &Value>) -> ColumnChanges {
    let added: Vec<i64> = side
        .keys()
        .filter(|id| !base.contains_key(id))
        .copied()
        .collect();
    let mut touched: BTreeSet<i64> = added.iter().copied().collect();
    for (id, column) in base {
        if side.get(id) != Some(column) {
            touched.insert(*id);
        }
    }
    ColumnChanges { added, touched }
}

/// The schema both sides' column changes give, or why they do not compose.
fn merge_schemas(base: &Value, source: &Value, target: &Value) -> Result<Option<Value>, String> {
    let same = |a: &Value, b: &Value| {
        a.get("fields") == b.get("fields")
            && a.get("identifier-field-ids") == b.get("identifier-field-ids")
    };
    if same(source, base) || same(source, target) {
        return Ok(None);
    }
    if same(target, base) {
        return Ok(Some(source.clone()));
    }
    let (b, s, t) = (columns(base), columns(source), columns(target));
    let (sc, tc) = (column_changes(&b, &s), column_changes(&b, &t));
    if !sc.added.is_empty() && !tc.added.is_empty() {
        return Err("both sides added columns".to_string());
    }
    let both: Vec<String> = sc
        .touched
        .intersection(&tc.touched)
        .map(|id| id.to_string())
        .collect();
    if !both.is_empty() {
        return Err(format!(
            "both sides changed the columns with field ids {}",
            both.join(", ")
        ));
    }
    if source.get("identifier-field-ids") != base.get("identifier-field-ids")
        && target.get("identifier-field-ids") != base.get("identifier-field-ids")
    {
        return Err("both sides changed the identifier fields".to_string());
    }
    // The target's columns in order, with the source's changes applied, then the source's new ones.
    let mut fields: Vec<Value> = Vec::new();
    let target_fields = target
        .get("fields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for field in target_fields {
        let Some(id) = field.get("id").and_then(Value::as_i64) else {
            continue;
        };
        if sc.touched.contains(&id) {
            if let Some(changed) = s.get(&id) {
                fields.push((*changed).clone());
            }
            // Dropped on the source: left out.
        } else {
            fields.push(field);
        }
    }
    for id in &sc.added {
        fields.push(s[id].clone());
    }
    let mut merged: Map<String, Value> = target.as_object().cloned().unwrap_or_default();
    merged.insert("fields".into(), Value::Array(fields));
    if source.get("identifier-field-ids") != base.get("identifier-field-ids") {
        match source.get("identifier-field-ids") {
            Some(ids) => merged.insert("identifier-field-ids".into(), ids.clone()),
            None => merged.remove("identifier-field-ids"),
        };
    }
    Ok(Some(Value::Object(merged)))
}

/// Specs or sort orders: the list and the default id, when only the source changed them.
fn one_sided(
    base: &Value,
    source: &Value,
    target: &Value,
    list: &str,
    default: &str,
) -> Result<Option<(Vec<Value>, i64)>, String> {
    let view = |m: &Value| (m.get(list).cloned(), m.get(default).cloned());
    let (b, s, t) = (view(base), view(source), view(target));
    if s == b || s == t {
        return Ok(None);
    }
    if t != b {
        return Err(format!("both sides changed the table's {list}"));
    }
    let items = s.0.and_then(|v| v.as_array().cloned()).unwrap_or_default();
    let id = s.1.and_then(|v| v.as_i64()).unwrap_or(0);
    Ok(Some((items, id)))
}

/// Decides whether the source's and the target's changes to one table compose; on success, the
/// plan to apply to the target's metadata. Errors list every reason the changes do not compose.
pub fn compose(base: &Value, source: &Value, target: &Value) -> Result<TablePlan, Vec<String>> {
    let mut reasons = Vec::new();
    let uuid = |m: &Value| m.get("table-uuid").cloned();
    if uuid(source) != uuid(base) || uuid(target) != uuid(base) {
        return Err(vec!["the table was replaced on one side".to_string()]);
    }

    // Properties.
    let properties = match merge_properties(
        &string_map(base.get("properties")),
        &string_map(source.get("properties")),
        &string_map(target.get("properties")),
    ) {
        Ok(properties) => properties,
        Err(keys) => {
            reasons.push(format!(
                "both sides changed the properties {}",
                keys.join(", ")
            ));
            BTreeMap::new()
        }
    };

    // Schema.
    let schema = match (
        current_schema(base),
        current_schema(source),
        current_schema(target),
    ) {
        (Some(b), Some(s), Some(t)) => merge_schemas(b, s, t).unwrap_or_else(|why| {
            reasons.push(why);
            None
        }),
        _ => {
            reasons.push("a side has no current schema".to_string());
            None
        }
    };

    let partition_specs = one_sided(base, source, target, "partition-specs", "default-spec-id")
        .unwrap_or_else(|why| {
            reasons.push(why);
            None
        });
    let sort_orders = one_sided(base, source, target, "sort-orders", "default-sort-order-id")
        .unwrap_or_else(|why| {
            reasons.push(why);
            None
        });
    // Snapshots.
    let (bs, ss, ts) = (
        snapshots_by_id(base),
        snapshots_by_id(source),
        snapshots_by_id(target),
    );
    let base_head = main_head(base);
    let source_new = new_since(&ss, main_head(source), &bs, base_head);
    let target_new = new_since(&ts, main_head(target), &bs, base_head);
    let removed_on = |side: &BTreeMap<i64, &Value>| -> Vec<i64> {
        bs.keys()
            .filter(|id| !side.contains_key(id))
            .copied()
            .collect()
    };
    let (source_removed, target_removed) = (removed_on(&ss), removed_on(&ts));
    let mut snapshots = Vec::new();
    let mut rebase = false;
    match (source_new, target_new) {
        (None, _) => reasons.push(
            "the source's main history no longer contains the base's current snapshot \
             (rolled back, rewritten or expired)"
                .to_string(),
        ),
        (_, None) => reasons.push(
            "the target's main history no longer contains the base's current snapshot \
             (rolled back, rewritten or expired)"
                .to_string(),
        ),
        (Some(source_new), Some(target_new)) => {
            // A source snapshot whose id the target has with another manifest list: one an
            // earlier merge replayed. Its content must be replayed, not added as it is.
            let collides = source_new
                .iter()
                .any(|s| snapshot_id(s).is_some_and(|id| ts.contains_key(&id)));
            if !source_new.is_empty() && (!target_new.is_empty() || collides) {
                let not_appends: BTreeSet<&str> = source_new
                    .iter()
                    .map(|s| operation(s))
                    .filter(|op| *op != "append")
                    .collect();
                if !not_appends.is_empty() {
                    reasons.push(format!(
                        "both sides added snapshots and the source's include {} (only appends \
                         can be replayed onto a changed target)",
                        not_appends.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
                rebase = true;
            }
            if (!source_removed.is_empty() && !target_new.is_empty())
                || (!target_removed.is_empty() && !source_new.is_empty())
            {
                reasons
                    .push("one side expired snapshots while the other added snapshots".to_string());
            }
            snapshots = source_new.into_iter().cloned().collect();
        }
    }
    let removed_snapshots = source_removed
        .into_iter()
        .filter(|id| ts.contains_key(id))
        .collect();

    // Table refs other than main.
    let refs_of = |m: &Value| -> BTreeMap<String, Value> {
        m.get("refs")
            .and_then(Value::as_object)
            .map(|refs| {
                refs.iter()
                    .filter(|(name, _)| name.as_str() != "main")
                    .map(|(name, r)| (name.clone(), r.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (br, sr, tr) = (refs_of(base), refs_of(source), refs_of(target));
    let mut refs = BTreeMap::new();
    let names: BTreeSet<&String> = br.keys().chain(sr.keys()).chain(tr.keys()).collect();
    for name in names {
        let (b, s, t) = (br.get(name), sr.get(name), tr.get(name));
        if s == b || s == t {
            continue;
        }
        if t != b {
            reasons.push(format!("both sides changed the table ref {name:?}"));
            continue;
        }
        refs.insert(name.clone(), s.cloned());
    }

    if reasons.is_empty() {
        Ok(TablePlan {
            properties,
            schema,
            partition_specs,
            sort_orders,
            snapshots,
            rebase,
            removed_snapshots,
            refs,
        })
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot(id: i64, parent: Option<i64>, seq: i64, op: &str) -> Value {
        let mut s = json!({"snapshot-id": id, "sequence-number": seq, "timestamp-ms": 1,
            "manifest-list": format!("s3://b/t/metadata/snap-{id}.avro"),
            "summary": {"operation": op}, "schema-id": 0});
        if let Some(parent) = parent {
            s["parent-snapshot-id"] = json!(parent);
        }
        s
    }

    fn table(snapshots: Vec<Value>, head: Option<i64>) -> Value {
        let mut m = json!({
            "format-version": 2, "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1",
            "location": "s3://b/t", "last-sequence-number": snapshots.len(),
            "last-column-id": 2, "current-schema-id": 0,
            "schemas": [{"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": false, "type": "long"},
                {"id": 2, "name": "v", "required": false, "type": "string"}]}],
            "default-spec-id": 0, "partition-specs": [{"spec-id": 0, "fields": []}],
            "default-sort-order-id": 0, "sort-orders": [{"order-id": 0, "fields": []}],
            "properties": {"owner": "a"}, "snapshots": snapshots, "refs": {},
        });
        if let Some(head) = head {
            m["current-snapshot-id"] = json!(head);
            m["refs"]["main"] = json!({"snapshot-id": head, "type": "branch"});
        }
        m
    }

    #[test]
    fn appends_on_both_sides_are_replayed_onto_the_target() {
        let s1 = snapshot(1, None, 1, "append");
        let base = table(vec![s1.clone()], Some(1));
        let source = table(
            vec![
                s1.clone(),
                snapshot(2, Some(1), 2, "append"),
                snapshot(3, Some(2), 3, "append"),
            ],
            Some(3),
        );
        let target = table(
            vec![s1.clone(), snapshot(4, Some(1), 2, "overwrite")],
            Some(4),
        );
        let plan = compose(&base, &source, &target).unwrap();
        assert!(plan.rebase);
        let ids: Vec<i64> = plan.snapshots.iter().filter_map(snapshot_id).collect();
        assert_eq!(ids, vec![2, 3]);
        // Only the source changed: its snapshots are added as they are.
        let plan = compose(&base, &source, &base).unwrap();
        assert!(!plan.rebase);
        assert_eq!(plan.snapshots.len(), 2);
        // An empty table appended on both sides.
        let empty = table(vec![], None);
        let a = table(vec![snapshot(7, None, 1, "append")], Some(7));
        let b = table(vec![snapshot(8, None, 1, "append")], Some(8));
        assert!(compose(&empty, &a, &b).unwrap().rebase);
    }

    #[test]
    fn rewrites_on_the_source_do_not_replay_onto_a_changed_target() {
        let s1 = snapshot(1, None, 1, "append");
        let base = table(vec![s1.clone()], Some(1));
        let source = table(vec![s1.clone(), snapshot(2, Some(1), 2, "delete")], Some(2));
        let target = table(vec![s1.clone(), snapshot(4, Some(1), 2, "append")], Some(4));
        let reasons = compose(&base, &source, &target).unwrap_err();
        assert!(reasons[0].contains("delete"), "{reasons:?}");
        // Rolled back on the source: the base's snapshot is no longer in its history.
        let rolled = table(vec![s1.clone(), snapshot(5, None, 2, "append")], Some(5));
        let reasons = compose(&base, &rolled, &target).unwrap_err();
        assert!(reasons[0].contains("rolled back"), "{reasons:?}");
        // Expired on the target while the source appended.
        let expired = table(vec![snapshot(4, Some(1), 2, "append")], Some(4));
        let source = table(vec![s1.clone(), snapshot(2, Some(1), 2, "append")], Some(2));
        let reasons = compose(&base, &source, &expired).unwrap_err();
        assert!(reasons.iter().any(|r| r.contains("expired")), "{reasons:?}");
    }

    #[test]
    fn properties_and_columns_changed_apart_compose() {
        let base = table(vec![], None);
        let mut source = base.clone();
        source["properties"]["source-key"] = json!("s");
        source["schemas"][0]["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": 3, "name": "extra", "required": false, "type": "int"}));
        let mut target = base.clone();
        target["properties"]["owner"] = json!("b");
        target["schemas"][0]["fields"][1]["name"] = json!("renamed");
        let plan = compose(&base, &source, &target).unwrap();
        assert_eq!(plan.properties["owner"], "b");
        assert_eq!(plan.properties["source-key"], "s");
        let fields = plan.schema.unwrap()["fields"].clone();
        assert_eq!(fields[1]["name"], "renamed");
        assert_eq!(fields[2]["name"], "extra");
        assert!(plan.snapshots.is_empty());
    }

    #[test]
    fn the_same_column_or_key_changed_on_both_sides_conflicts() {
        let base = table(vec![], None);
        let mut source = base.clone();
        source["schemas"][0]["fields"][1]["type"] = json!("binary");
        source["properties"]["owner"] = json!("s");
        let mut target = base.clone();
        target["schemas"][0]["fields"][1]["name"] = json!("renamed");
        target["properties"]["owner"] = json!("t");
        let reasons = compose(&base, &source, &target).unwrap_err();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("owner"));
        assert!(reasons[1].contains("field ids 2"));
        // Both adding columns would hand out the same field id.
        let mut a = base.clone();
        a["schemas"][0]["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": 3, "name": "x", "required": false, "type": "int"}));
        let mut b = base.clone();
        b["schemas"][0]["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": 3, "name": "y", "required": false, "type": "int"}));
        let reasons = compose(&base, &a, &b).unwrap_err();
        assert_eq!(reasons, vec!["both sides added columns".to_string()]);
        // A replaced table never composes.
        let mut other = base.clone();
        other["table-uuid"] = json!("00000000-0000-0000-0000-000000000001");
        assert!(compose(&base, &other, &base).is_err());
    }

    #[test]
    fn snapshots_an_earlier_merge_replayed_are_seen_by_their_content() {
        // dev appended 2 while main appended 4; merging dev replayed 2 onto 4 (same id, new list).
        let s1 = snapshot(1, None, 1, "append");
        let s2 = snapshot(2, Some(1), 2, "append");
        let mut s2_on_main = snapshot(2, Some(4), 3, "append");
        s2_on_main["manifest-list"] = json!("s3://b/t/metadata/snap-2-merged.avro");
        let main = table(
            vec![s1.clone(), snapshot(4, Some(1), 2, "append"), s2_on_main],
            Some(2),
        );
        // dev appends 3 and merges again: the base is dev's 2, and main's 2 is not that one.
        let base = table(vec![s1.clone(), s2.clone()], Some(2));
        let dev = table(
            vec![s1.clone(), s2.clone(), snapshot(3, Some(2), 3, "append")],
            Some(3),
        );
        let plan = compose(&base, &dev, &main).unwrap();
        assert!(plan.rebase, "main's 2 holds main's own rows too");
        let ids: Vec<i64> = plan.snapshots.iter().filter_map(snapshot_id).collect();
        assert_eq!(ids, vec![3]);
        // The other way (main synced into dev, which appended 3): main's 4 and its replayed 2
        // are new to dev and are replayed onto 3.
        let plan = compose(&base, &main, &dev).unwrap();
        assert!(plan.rebase);
        let ids: Vec<i64> = plan.snapshots.iter().filter_map(snapshot_id).collect();
        assert_eq!(ids, vec![4, 2]);
        // Even when dev did not move: main's 2 collides with dev's own 2.
        let plan = compose(&base, &main, &base).unwrap();
        assert!(plan.rebase);
    }
}
