//! The merge engine: reads the three sides of a merge (source, target, and their merge base),
//! decides each namespace, table and view with `index::merge`, composes a table both sides
//! changed (`index::table_merge`: replayed manifest lists and a new metadata file), and hands
//! the result to `RefStore::merge_into` as one commit with two parents.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::Services;
use super::branches::ContentChange;
use super::branches::{Content, MergeConflict, MergeOutcome, key_parts};
use super::metadata::{
    files_outside, next_metadata_location, parse_table_metadata, table_metadata_json,
};
use crate::error::{Entity, Error, Result};
use crate::index::merge::{Resolution, Strategy, merge_properties, resolve};
use crate::index::{ContentKey, ContentKind};
use crate::model::{
    NamespaceIdent, Properties, Ref, RefKind, RefSelector, Tabular, TabularId, TabularIdent,
    WarehouseId, now,
};
use crate::storage::{Location, ObjectStorage};
use crate::store::{MergeChange, TabularChange};

impl Services {
    pub(super) async fn try_merge(
        &self,
        warehouse: WarehouseId,
        source: &RefSelector,
        target: &str,
        meta: &crate::model::CommitMeta,
        strategy: Strategy,
    ) -> Result<std::result::Result<MergeOutcome, Vec<MergeConflict>>> {
        let target_ref = self
            .store
            .warehouses
            .get_ref(warehouse, target)
            .await?
            .filter(|r| r.kind == RefKind::Branch && !r.is_hidden())
            .ok_or_else(|| {
                Error::not_found(Entity::Ref, format!("branch {target:?} does not exist"))
            })?;
        let target_head = target_ref.head_commit.ok_or_else(|| {
            Error::internal("merging", anyhow::anyhow!("a branch without a head"))
        })?;
        let source = self.point(warehouse, source).await?;
        if source.commit == target_head {
            return Ok(Ok(MergeOutcome {
                commit_id: None,
                fast_forward: false,
                changes: vec![],
            }));
        }
        let base = self
            .merge_base(warehouse, source.commit, target_head)
            .await?;
        if base == source.commit {
            // The target already has everything the source has.
            return Ok(Ok(MergeOutcome {
                commit_id: None,
                fast_forward: false,
                changes: vec![],
            }));
        }
        let source_keys = self.changed_since(warehouse, source.commit, base).await?;
        let target_keys = self.changed_since(warehouse, target_head, base).await?;
        let fast_forward = target_keys.is_empty();
        let keys: BTreeSet<ContentKey> = source_keys.union(&target_keys).cloned().collect();
        let base_ref = self.commit_ref(warehouse, base).await?;
        let storage = {
            let wh = self.cached_warehouse(warehouse).await?;
            self.warehouse_storage(&wh).await?
        };

        let mut conflicts = Vec::new();
        let mut namespace_puts = Vec::new();
        let mut namespace_drops = Vec::new();
        let mut tabular_changes = Vec::new();
        let mut composed = Vec::new();
        let mut outcome = Vec::new();
        for key in &keys {
            let b = self.content_at(&base_ref, key).await?;
            let s = self.content_at(&source.read, key).await?;
            let t = self.content_at(&target_ref, key).await?;
            let resolution = resolve(
                key.kind,
                b.as_ref().map(Content::version).as_ref(),
                s.as_ref().map(Content::version).as_ref(),
                t.as_ref().map(Content::version).as_ref(),
                strategy,
            );
            let (namespace, name) = key_parts(key);
            let conflict = |reason: String| MergeConflict {
                kind: key.kind,
                namespace: namespace.clone(),
                name: name.clone(),
                reason,
            };
            let record = |change: &'static str| ContentChange {
                kind: key.kind,
                namespace: namespace.clone(),
                name: name.clone(),
                change,
                from_location: s.as_ref().and_then(Content::location),
                to_location: t.as_ref().and_then(Content::location),
            };
            match resolution {
                Resolution::KeepTarget => {}
                Resolution::Conflict(reason) => conflicts.push(conflict(reason)),
                Resolution::TakeSource => {
                    match (&s, &t) {
                        (Some(Content::Namespace(props)), _) => {
                            namespace_puts
                                .push((NamespaceIdent::new(namespace.clone())?, props.clone()));
                        }
                        (None, Some(Content::Namespace(_))) => {
                            namespace_drops.push(NamespaceIdent::new(namespace.clone())?);
                        }
                        (Some(Content::Tabular(src)), current) => {
                            let src = self.with_metadata((**src).clone()).await?;
                            tabular_changes.push(take_source(
                                &src,
                                current.as_ref().and_then(|c| match c {
                                    Content::Tabular(t) => Some(&**t),
                                    _ => None,
                                }),
                                &target_ref,
                            ));
                        }
                        (None, Some(Content::Tabular(current))) => {
                            tabular_changes.push(MergeChange::DropTabular {
                                ident: current.ident.clone(),
                                id: current.id,
                                expected_version: current.version,
                            });
                        }
                        (None, None) => continue,
                    }
                    outcome.push(record(if s.is_some() { "taken" } else { "removed" }));
                }
                Resolution::Compose => match (&b, &s, &t) {
                    (_, Some(Content::Namespace(sp)), Some(Content::Namespace(tp))) => {
                        let bp = match &b {
                            Some(Content::Namespace(bp)) => bp.clone(),
                            _ => Properties::new(),
                        };
                        match merge_properties(&bp, sp, tp) {
                            Ok(merged) => {
                                namespace_puts
                                    .push((NamespaceIdent::new(namespace.clone())?, merged));
                                outcome.push(record("merged"));
                            }
                            Err(keys) => match strategy {
                                Strategy::SourceWins => {
                                    namespace_puts.push((
                                        NamespaceIdent::new(namespace.clone())?,
                                        sp.clone(),
                                    ));
                                    outcome.push(record("taken"));
                                }
                                Strategy::TargetWins => {}
                                Strategy::Fail => conflicts.push(conflict(format!(
                                    "both sides changed the properties {}",
                                    keys.join(", ")
                                ))),
                            },
                        }
                    }
                    (
                        Some(Content::Tabular(bt)),
                        Some(Content::Tabular(st)),
                        Some(Content::Tabular(tt)),
                    ) => {
                        let bt = self.with_metadata((**bt).clone()).await?;
                        let st = self.with_metadata((**st).clone()).await?;
                        let tt = self.with_metadata((**tt).clone()).await?;
                        let json = |t: &Tabular| -> Result<Value> {
                            serde_json::from_slice(&t.metadata)
                                .map_err(|e| Error::internal("reading table metadata", e))
                        };
                        match crate::index::table_merge::compose(
                            &json(&bt)?,
                            &json(&st)?,
                            &json(&tt)?,
                        ) {
                            Ok(plan) => {
                                composed.push((st, tt, plan));
                                outcome.push(record("merged"));
                            }
                            Err(reasons) => match strategy {
                                Strategy::SourceWins => {
                                    tabular_changes.push(take_source(&st, Some(&tt), &target_ref));
                                    outcome.push(record("taken"));
                                }
                                Strategy::TargetWins => {}
                                Strategy::Fail => conflicts.push(conflict(reasons.join("; "))),
                            },
                        }
                    }
                    _ => conflicts.push(conflict("the two sides cannot be composed".into())),
                },
            }
        }
        if !conflicts.is_empty() {
            return Ok(Err(conflicts));
        }
        // Tables both sides changed: replay and write their merged metadata. Nothing is visible
        // until the commit below; on failure the written files are removed.
        let mut written: Vec<Location> = Vec::new();
        for (source_table, target_table, plan) in composed {
            match self
                .compose_table(
                    storage.as_ref(),
                    &source_table,
                    &target_table,
                    plan,
                    &mut written,
                )
                .await
            {
                Ok(Ok(change)) => tabular_changes.push(change),
                Ok(Err(_)) if strategy == Strategy::SourceWins => {
                    tabular_changes.push(take_source(
                        &source_table,
                        Some(&target_table),
                        &target_ref,
                    ));
                    if let Some(entry) = outcome.iter_mut().find(|c| {
                        c.name.as_deref() == Some(target_table.ident.name.as_str())
                            && c.namespace == target_table.ident.namespace.levels()
                    }) {
                        entry.change = "taken";
                    }
                }
                Ok(Err(_)) if strategy == Strategy::TargetWins => {
                    outcome.retain(|c| {
                        !(c.name.as_deref() == Some(target_table.ident.name.as_str())
                            && c.namespace == target_table.ident.namespace.levels())
                    });
                }
                Ok(Err(reason)) => {
                    conflicts.push(MergeConflict {
                        kind: ContentKind::Table,
                        namespace: target_table.ident.namespace.levels().to_vec(),
                        name: Some(target_table.ident.name.clone()),
                        reason,
                    });
                }
                Err(e) => {
                    discard(storage.as_ref(), &written).await;
                    return Err(e);
                }
            }
        }
        if !conflicts.is_empty() {
            discard(storage.as_ref(), &written).await;
            return Ok(Err(conflicts));
        }
        // Parents before children, tables before the namespaces that held them are dropped.
        namespace_puts.sort_by_key(|(ident, _)| ident.levels().len());
        namespace_drops.sort_by_key(|ident| std::cmp::Reverse(ident.levels().len()));
        let mut changes: Vec<MergeChange> = namespace_puts
            .into_iter()
            .map(|(ident, properties)| MergeChange::Namespace {
                ident,
                properties: Some(properties),
            })
            .collect();
        changes.extend(tabular_changes);
        changes.extend(
            namespace_drops
                .into_iter()
                .map(|ident| MergeChange::Namespace {
                    ident,
                    properties: None,
                }),
        );
        if changes.is_empty() {
            return Ok(Ok(MergeOutcome {
                commit_id: None,
                fast_forward,
                changes: outcome,
            }));
        }
        match self
            .store
            .refs
            .merge_into(
                target_ref.id,
                target_ref.head_seq,
                &changes,
                (source.commit, source.generation),
                meta,
            )
            .await
        {
            Ok(commit) => {
                let idents: Vec<TabularIdent> = changes
                    .iter()
                    .filter_map(|c| match c {
                        MergeChange::Tabular(TabularChange::Create(t)) => Some(t.ident.clone()),
                        MergeChange::Tabular(TabularChange::Update { ident, .. })
                        | MergeChange::DropTabular { ident, .. } => Some(ident.clone()),
                        MergeChange::Namespace { .. } => None,
                    })
                    .collect();
                self.store.tabulars.forget(&idents);
                Ok(Ok(MergeOutcome {
                    commit_id: Some(commit),
                    fast_forward,
                    changes: outcome,
                }))
            }
            Err(e) => {
                discard(storage.as_ref(), &written).await;
                Err(e)
            }
        }
    }

    /// Applies a composition plan to the target's metadata: the source's new snapshots (replayed
    /// onto the target's current snapshot when the target added some too, writing one manifest
    /// list each), properties, schema, specs, sort orders and refs; writes the new metadata file.
    /// `Ok(Err(reason))` when a snapshot cannot be replayed.
    async fn compose_table(
        &self,
        storage: &dyn ObjectStorage,
        source: &Tabular,
        target: &Tabular,
        plan: crate::index::table_merge::TablePlan,
        written: &mut Vec<Location>,
    ) -> Result<std::result::Result<MergeChange, String>> {
        let source_json: Value = serde_json::from_slice(&source.metadata)
            .map_err(|e| Error::internal("reading table metadata", e))?;
        let mut m: Value = serde_json::from_slice(&target.metadata)
            .map_err(|e| Error::internal("reading table metadata", e))?;
        let format = m.get("format-version").and_then(Value::as_i64).unwrap_or(2);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let location = Location::parse(&target.location)?;
        let obj = m.as_object_mut().expect("table metadata is an object");
        obj.insert(
            "properties".into(),
            serde_json::to_value(&plan.properties).unwrap_or_default(),
        );
        if let Some(mut schema) = plan.schema {
            let next_id = obj
                .get("schemas")
                .and_then(Value::as_array)
                .map(|all| {
                    all.iter()
                        .filter_map(|s| s.get("schema-id").and_then(Value::as_i64))
                        .max()
                        .unwrap_or(-1)
                        + 1
                })
                .unwrap_or(0);
            schema["schema-id"] = Value::from(next_id);
            let max_field = max_field_id(&schema);
            let last = obj
                .get("last-column-id")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            obj.insert("last-column-id".into(), Value::from(last.max(max_field)));
            if let Some(Value::Array(schemas)) = obj.get_mut("schemas") {
                schemas.push(schema);
            }
            obj.insert("current-schema-id".into(), Value::from(next_id));
        }
        if let Some((specs, default)) = plan.partition_specs {
            let last = specs
                .iter()
                .flat_map(|s| {
                    s.get("fields")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|f| f.get("field-id").and_then(Value::as_i64))
                .max()
                .unwrap_or(999);
            let current = obj
                .get("last-partition-id")
                .and_then(Value::as_i64)
                .unwrap_or(999);
            obj.insert("partition-specs".into(), Value::Array(specs));
            obj.insert("default-spec-id".into(), Value::from(default));
            obj.insert("last-partition-id".into(), Value::from(last.max(current)));
        }
        if let Some((orders, default)) = plan.sort_orders {
            obj.insert("sort-orders".into(), Value::Array(orders));
            obj.insert("default-sort-order-id".into(), Value::from(default));
        }
        // Snapshots.
        let source_lists: BTreeMap<i64, String> = source_json
            .get("snapshots")
            .and_then(Value::as_array)
            .map(|all| {
                all.iter()
                    .filter_map(|s| {
                        Some((
                            s.get("snapshot-id")?.as_i64()?,
                            s.get("manifest-list")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut head = obj
            .get("refs")
            .and_then(|r| r.get("main"))
            .and_then(|r| r.get("snapshot-id"))
            .and_then(Value::as_i64);
        let mut last_seq = obj
            .get("last-sequence-number")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let lists_of_target: BTreeMap<i64, String> = obj
            .get("snapshots")
            .and_then(Value::as_array)
            .map(|all| {
                all.iter()
                    .filter_map(|s| {
                        Some((
                            s.get("snapshot-id")?.as_i64()?,
                            s.get("manifest-list")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut head_list = head.and_then(|h| lists_of_target.get(&h).cloned());
        // Every manifest list the merge takes or reads lies in the table's own folders: a list
        // elsewhere (another table's) would be read with the warehouse's key and its entries
        // written into this table's folder, where this table's key reads them.
        let folders = self
            .table_folders(target.warehouse_id, target.uuid, &location)
            .await?;
        let mut lists: Vec<(String, &str)> = Vec::new();
        for snapshot in &plan.snapshots {
            if let Some(path) = snapshot.get("manifest-list").and_then(Value::as_str) {
                lists.push(("a manifest list the merge takes".to_string(), path));
            }
            if let Some(parent) = snapshot
                .get("parent-snapshot-id")
                .and_then(Value::as_i64)
                .and_then(|p| source_lists.get(&p))
            {
                lists.push(("a manifest list the merge reads".to_string(), parent));
            }
        }
        if let Some(path) = head_list
            .as_ref()
            .filter(|_| plan.rebase && !plan.snapshots.is_empty())
        {
            lists.push(("a manifest list the merge reads".to_string(), path));
        }
        if let Some((what, path)) = files_outside(&lists, &folders).first() {
            return Ok(Err(format!(
                "{what} ({path}) lies outside the table's folders; it is not merged"
            )));
        }
        // Format v3: where the target numbers its next rows. Snapshots taken as they are keep
        // their numbers, which the source gave after the base; the target then continues after
        // the larger of the two sides' counters.
        let mut next_row_id = (format >= 3).then(|| {
            let target_next = obj.get("next-row-id").and_then(Value::as_u64).unwrap_or(0);
            let source_next = source_json
                .get("next-row-id")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if plan.rebase {
                target_next
            } else {
                target_next.max(source_next)
            }
        });
        let mut added = Vec::new();
        let mut taken_ids: BTreeSet<i64> = lists_of_target.keys().copied().collect();
        for snapshot in plan.snapshots {
            let mut snapshot = snapshot;
            let mut id = snapshot
                .get("snapshot-id")
                .and_then(Value::as_i64)
                .unwrap_or_default();
            let seq = if format >= 2 { last_seq + 1 } else { 0 };
            if plan.rebase {
                // The target has this id (a snapshot an earlier merge replayed): a fresh one.
                while taken_ids.contains(&id) {
                    id = (uuid::Uuid::new_v4().as_u64_pair().0 >> 1) as i64;
                }
                let own_path = snapshot
                    .get("manifest-list")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let parent_path = snapshot
                    .get("parent-snapshot-id")
                    .and_then(Value::as_i64)
                    .and_then(|p| source_lists.get(&p).cloned());
                let read = |path: String| async move {
                    let file = Location::parse(&path)?;
                    storage.get(&file).await?.ok_or_else(|| {
                        Error::internal(
                            "merging",
                            anyhow::anyhow!("the manifest list {path} is missing"),
                        )
                    })
                };
                let own = read(own_path).await?;
                let parent = match parent_path {
                    Some(path) => Some(read(path).await?),
                    None => None,
                };
                let onto = match &head_list {
                    Some(path) => Some(read(path.clone()).await?),
                    None => None,
                };
                let replayed = crate::index::rebase::replay(crate::index::rebase::Replay {
                    format: match format {
                        3.. => iceberg::spec::FormatVersion::V3,
                        2 => iceberg::spec::FormatVersion::V2,
                        _ => iceberg::spec::FormatVersion::V1,
                    },
                    list: &own,
                    parent_list: parent.as_deref(),
                    snapshot_id: id,
                    onto_list: onto.as_deref(),
                    onto_id: head,
                    sequence_number: seq,
                    first_row_id: next_row_id,
                })
                .await;
                let (bytes, after) = match replayed {
                    Ok(Some(replayed)) => (replayed.bytes, replayed.next_row_id),
                    // The target already has everything it added.
                    Ok(None) => continue,
                    Err(reason) => return Ok(Err(reason)),
                };
                let file = location.join(&format!(
                    "metadata/snap-{id}-merged-{}.avro",
                    uuid::Uuid::now_v7().simple()
                ))?;
                storage.put_new(&file, bytes.into()).await?;
                written.push(file.clone());
                snapshot["snapshot-id"] = Value::from(id);
                snapshot["manifest-list"] = Value::from(file.to_string());
                snapshot["parent-snapshot-id"] = head.map(Value::from).unwrap_or(Value::Null);
                snapshot["timestamp-ms"] = Value::from(now_ms);
                // Row lineage (v3): the snapshot's rows numbered after the target's.
                if let (Some(first), Some(after)) = (next_row_id, after) {
                    snapshot["first-row-id"] = Value::from(first);
                    snapshot["added-rows"] = Value::from(after - first);
                    next_row_id = Some(after);
                }
                head_list = Some(file.to_string());
            } else {
                head_list = source_lists.get(&id).cloned();
            }
            if format >= 2 {
                snapshot["sequence-number"] = Value::from(seq);
                last_seq = seq;
            }
            head = Some(id);
            taken_ids.insert(id);
            added.push(snapshot);
        }
        let removed: BTreeSet<i64> = plan.removed_snapshots.iter().copied().collect();
        if let Some(Value::Array(snapshots)) = obj.get_mut("snapshots") {
            snapshots.retain(|s| {
                s.get("snapshot-id")
                    .and_then(Value::as_i64)
                    .is_none_or(|id| !removed.contains(&id))
            });
        }
        if !added.is_empty() {
            let log_entries: Vec<Value> = added
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "snapshot-id": s["snapshot-id"],
                        "timestamp-ms": s.get("timestamp-ms").cloned().unwrap_or(Value::from(now_ms)),
                    })
                })
                .collect();
            match obj.get_mut("snapshots") {
                Some(Value::Array(snapshots)) => snapshots.extend(added),
                _ => {
                    obj.insert("snapshots".into(), Value::Array(added));
                }
            }
            match obj.get_mut("snapshot-log") {
                Some(Value::Array(log)) => log.extend(log_entries),
                _ => {
                    obj.insert("snapshot-log".into(), Value::Array(log_entries));
                }
            }
            let head = head.expect("a snapshot was added");
            obj.insert("current-snapshot-id".into(), Value::from(head));
            let refs = obj
                .entry("refs")
                .or_insert_with(|| Value::Object(Default::default()));
            refs["main"] = serde_json::json!({"snapshot-id": head, "type": "branch"});
            if format >= 2 {
                obj.insert("last-sequence-number".into(), Value::from(last_seq));
            }
        }
        if let Some(next) = next_row_id {
            obj.insert("next-row-id".into(), Value::from(next));
        }
        for (name, table_ref) in plan.refs {
            let refs = obj
                .entry("refs")
                .or_insert_with(|| Value::Object(Default::default()));
            match table_ref {
                Some(r) => refs[name.as_str()] = r,
                None => {
                    if let Some(map) = refs.as_object_mut() {
                        map.remove(&name);
                    }
                }
            }
        }
        let entry = serde_json::json!({
            "timestamp-ms": obj.get("last-updated-ms").cloned().unwrap_or(Value::from(now_ms)),
            "metadata-file": target.metadata_location,
        });
        match obj.get_mut("metadata-log") {
            Some(Value::Array(log)) => log.push(entry),
            _ => {
                obj.insert("metadata-log".into(), Value::Array(vec![entry]));
            }
        }
        obj.insert("last-updated-ms".into(), Value::from(now_ms));
        // Through the catalog's own model: what it would refuse from a client, it refuses here.
        let bytes = serde_json::to_vec(&m).map_err(|e| Error::internal("merging", e))?;
        let metadata = match parse_table_metadata(&bytes) {
            Ok(metadata) => metadata,
            Err(e) => {
                return Ok(Err(format!(
                    "the merged metadata is not valid: {}",
                    e.message
                )));
            }
        };
        let json = bytes::Bytes::from(table_metadata_json(&metadata)?);
        let file = next_metadata_location(
            &location,
            metadata.properties(),
            Some(target.metadata_location.as_str()),
        )?;
        storage.put_new(&file, json.clone()).await?;
        written.push(file.clone());
        Ok(Ok(MergeChange::Tabular(TabularChange::Update {
            id: target.id,
            ident: target.ident.clone(),
            expected_version: target.version,
            uuid: target.uuid,
            location: target.location.clone(),
            metadata_location: file.to_string(),
            metadata: json,
            at: now(),
            claims_location: None,
        })))
    }
}

/// The change that gives the target the source's version of a table or view.
fn take_source(source: &Tabular, current: Option<&Tabular>, target: &Ref) -> MergeChange {
    match current {
        Some(current) => MergeChange::Tabular(TabularChange::Update {
            id: current.id,
            ident: current.ident.clone(),
            expected_version: current.version,
            uuid: source.uuid,
            location: source.location.clone(),
            metadata_location: source.metadata_location.clone(),
            metadata: source.metadata.clone(),
            at: now(),
            claims_location: (current.location != source.location).then_some(target.warehouse_id),
        }),
        None => {
            let at = now();
            MergeChange::Tabular(TabularChange::Create(Tabular {
                id: TabularId::new(),
                warehouse_id: target.warehouse_id,
                ref_id: target.id,
                ident: source.ident.clone(),
                kind: source.kind,
                uuid: source.uuid,
                location: source.location.clone(),
                metadata_location: source.metadata_location.clone(),
                metadata: source.metadata.clone(),
                version: 0,
                created_at: at,
                updated_at: at,
            }))
        }
    }
}

fn max_field_id(value: &Value) -> i64 {
    let mut max = 0;
    match value {
        Value::Object(map) => {
            if let Some(id) = map.get("id").and_then(Value::as_i64)
                && map.contains_key("type")
            {
                max = max.max(id);
            }
            for v in map.values() {
                max = max.max(max_field_id(v));
            }
        }
        Value::Array(items) => {
            for v in items {
                max = max.max(max_field_id(v));
            }
        }
        _ => {}
    }
    max
}

async fn discard(storage: &dyn ObjectStorage, files: &[Location]) {
    for file in files {
        if let Err(e) = storage.delete(file).await {
            tracing::warn!(file = %file, error = ?e, "removing a merge's unused file failed");
        }
    }
}
