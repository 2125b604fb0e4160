//! The timed workloads: `load-table` and `read-update` over the tree `create-tree` made, and
//! `commits`, `contention` and `create-table`, which make their own tables in a namespace of
//! their own (`{prefix}_{run-id}`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::{Catalog, Reply, encode};
use crate::pool::{self, Bound};
use crate::tree::{Shape, table_body};

/// The parts of a table's metadata a writer needs (everything else in the body is skipped).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TableMetadata {
    pub location: String,
    #[serde(default)]
    pub last_sequence_number: i64,
    #[serde(default)]
    pub current_schema_id: i64,
    #[serde(default)]
    pub refs: HashMap<String, SnapshotRef>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SnapshotRef {
    #[serde(rename = "snapshot-id")]
    pub snapshot_id: i64,
}

/// A LoadTableResult (what loadTable, createTable and updateTable answer).
#[derive(Deserialize)]
pub struct TableResult {
    pub metadata: TableMetadata,
}

/// Only the snapshot ids of a table, for the final check of `contention`.
#[derive(Deserialize)]
struct SnapshotsResult {
    metadata: SnapshotsOnly,
}

#[derive(Deserialize)]
struct SnapshotsOnly {
    #[serde(default)]
    snapshots: Vec<SnapshotId>,
}

#[derive(Deserialize)]
struct SnapshotId {
    #[serde(rename = "snapshot-id")]
    snapshot_id: i64,
}

impl TableMetadata {
    /// The snapshot `main` points at.
    pub fn main(&self) -> Option<i64> {
        self.refs.get("main").map(|r| r.snapshot_id)
    }
}

/// An append-like commit of snapshot `id` on top of `metadata`: add-snapshot and move `main`,
/// on condition that `main` has not moved.
pub fn append_commit(metadata: &TableMetadata, id: i64) -> Value {
    let parent = metadata.main();
    json!({
        "requirements": [
            {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": parent}
        ],
        "updates": [
            {"action": "add-snapshot", "snapshot": {
                "snapshot-id": id,
                "parent-snapshot-id": parent,
                "sequence-number": metadata.last_sequence_number + 1,
                "timestamp-ms": chrono::Utc::now().timestamp_millis(),
                "manifest-list": format!("{}/metadata/snap-{id}.avro", metadata.location.trim_end_matches('/')),
                "summary": {"operation": "append"},
                "schema-id": metadata.current_schema_id,
            }},
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": id}
        ]
    })
}

/// A fresh random positive snapshot id.
fn snapshot_id(rng: &mut StdRng) -> i64 {
    rng.gen_range(1..i64::MAX)
}

/// The tables of the tree, checked to exist (unmeasured) before a run starts.
async fn tree_tables(catalog: &Catalog, shape: &Shape) -> anyhow::Result<Arc<Vec<String>>> {
    shape.check()?;
    let tables: Vec<String> = shape.tables().iter().map(|t| t.table_path()).collect();
    let Some(first) = tables.first() else {
        bail!("the tree has no tables (--tables 0)");
    };
    let status = catalog.probe(Method::HEAD, first).await?;
    if !(200..300).contains(&status) {
        bail!(
            "table {first} answers {status}: run create-tree first with the same --prefix-name and shape"
        );
    }
    Ok(Arc::new(tables))
}

/// `load-table`: loadTable of random tables of the tree, or of the one `table` (`ns.name`),
/// with `?snapshots=` when given; bodies are read, not parsed.
pub async fn load_table(
    catalog: Arc<Catalog>,
    shape: &Shape,
    table: Option<&str>,
    snapshots: Option<&str>,
    concurrency: usize,
    rate: Option<f64>,
    bound: Arc<Bound>,
) -> anyhow::Result<Map<String, Value>> {
    let tables = match table {
        None => tree_tables(&catalog, shape).await?,
        Some(table) => {
            let levels: Vec<String> = table.split('.').map(str::to_string).collect();
            let Some((name, namespace)) = levels.split_last().filter(|(_, ns)| !ns.is_empty())
            else {
                bail!("--table must look like namespace.name, not {table:?}");
            };
            let path = format!(
                "/namespaces/{}/tables/{}",
                crate::client::namespace_path(namespace),
                crate::client::encode(name)
            );
            let status = catalog.probe(Method::HEAD, &path).await?;
            if !(200..300).contains(&status) {
                bail!("table {table} answers {status}");
            }
            Arc::new(vec![path])
        }
    };
    let snapshots: Option<Arc<str>> = snapshots.map(Arc::from);
    if let Some(rate) = rate {
        return load_table_open_loop(catalog, tables, snapshots, rate, concurrency, bound).await;
    }
    pool::workers(concurrency, |_| {
        let (catalog, tables, bound) = (catalog.clone(), tables.clone(), bound.clone());
        let snapshots = snapshots.clone();
        async move {
            let mut rng = StdRng::from_entropy();
            while bound.take().is_some() {
                let path = &tables[rng.gen_range(0..tables.len())];
                let mut request = catalog.request(Method::GET, path);
                if let Some(mode) = snapshots.as_deref() {
                    request = request.query(&[("snapshots", mode)]);
                }
                catalog.send("loadTable", request).await;
            }
        }
    })
    .await;
    let mut extra = Map::new();
    extra.insert("tables".into(), tables.len().into());
    Ok(extra)
}

/// `load-table --rate`: requests sent at a fixed rate whatever the answers do (an open loop, as
/// independent clients arrive), at most `cap` outstanding; a request due while `cap` are
/// outstanding is not sent and is counted as `not_sent`. A closed loop (a fixed number of
/// clients, each waiting for its answer) cannot overload a server: its queue is never longer
/// than the number of clients.
async fn load_table_open_loop(
    catalog: Arc<Catalog>,
    tables: Arc<Vec<String>>,
    snapshots: Option<Arc<str>>,
    rate: f64,
    cap: usize,
    bound: Arc<Bound>,
) -> anyhow::Result<Map<String, Value>> {
    if !(rate > 0.0 && rate.is_finite()) {
        bail!("--rate must be positive");
    }
    let outstanding = Arc::new(tokio::sync::Semaphore::new(cap));
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut rng = StdRng::from_entropy();
    let mut not_sent = 0u64;
    let mut sent = tokio::task::JoinSet::new();
    while bound.take().is_some() {
        ticks.tick().await;
        let Ok(slot) = outstanding.clone().try_acquire_owned() else {
            not_sent += 1;
            continue;
        };
        let path = tables[rng.gen_range(0..tables.len())].clone();
        let (catalog, snapshots) = (catalog.clone(), snapshots.clone());
        sent.spawn(async move {
            let mut request = catalog.request(Method::GET, &path);
            if let Some(mode) = snapshots.as_deref() {
                request = request.query(&[("snapshots", mode)]);
            }
            catalog.send("loadTable", request).await;
            drop(slot);
        });
        while sent.try_join_next().is_some() {}
    }
    while sent.join_next().await.is_some() {}
    let mut extra = Map::new();
    extra.insert("tables".into(), tables.len().into());
    extra.insert("rate".into(), rate.into());
    extra.insert("not_sent".into(), not_sent.into());
    Ok(extra)
}

/// `read-update`: random tables of the tree; with probability `read_ratio` a loadTable, else an
/// updateTable that sets a property (no requirements, so the catalog may retry it itself).
pub async fn read_update(
    catalog: Arc<Catalog>,
    shape: &Shape,
    concurrency: usize,
    read_ratio: f64,
    bound: Arc<Bound>,
) -> anyhow::Result<Map<String, Value>> {
    let tables = tree_tables(&catalog, shape).await?;
    pool::workers(concurrency, |worker| {
        let (catalog, tables, bound) = (catalog.clone(), tables.clone(), bound.clone());
        async move {
            let mut rng = StdRng::from_entropy();
            while let Some(step) = bound.take() {
                let path = &tables[rng.gen_range(0..tables.len())];
                if rng.gen_bool(read_ratio) {
                    catalog
                        .send("loadTable", catalog.request(Method::GET, path))
                        .await;
                } else {
                    let body = json!({
                        "requirements": [],
                        "updates": [{"action": "set-properties", "updates": {
                            "floe-bench.updated-by": format!("worker-{worker}"),
                            "floe-bench.step": step.to_string(),
                        }}]
                    });
                    catalog
                        .send("updateTable", catalog.post_json(path, &body))
                        .await;
                }
            }
        }
    })
    .await;
    let mut extra = Map::new();
    extra.insert("tables".into(), tables.len().into());
    extra.insert("read_ratio".into(), read_ratio.into());
    Ok(extra)
}

/// Where `commits`, `contention` and `create-table` put their tables.
pub struct Scope {
    pub namespace: String,
    pub columns: usize,
    pub properties: usize,
}

impl Scope {
    fn tables_path(&self) -> String {
        format!("/namespaces/{}/tables", encode(&self.namespace))
    }

    fn table_path(&self, name: &str) -> String {
        format!(
            "/namespaces/{}/tables/{}",
            encode(&self.namespace),
            encode(name)
        )
    }

    /// Creates the run's namespace (measured as createNamespace); it must not exist yet.
    async fn create_namespace(&self, catalog: &Catalog) -> anyhow::Result<()> {
        let body =
            json!({"namespace": [self.namespace], "properties": {"created-by": "floe-bench"}});
        match catalog
            .send("createNamespace", catalog.post_json("/namespaces", &body))
            .await
        {
            Some(200..=299) => Ok(()),
            Some(status) => bail!("creating namespace {} answered {status}", self.namespace),
            None => bail!("creating namespace {} failed", self.namespace),
        }
    }

    /// Creates a table and returns its metadata (loading it when the create failed but the
    /// table is there).
    async fn create_table(&self, catalog: &Catalog, name: &str) -> Option<TableMetadata> {
        let body = table_body(name, self.columns, self.properties);
        let request = catalog.post_json(&self.tables_path(), &body);
        match catalog
            .call_json::<TableResult>("createTable", request)
            .await
        {
            Reply::Ok(table) => Some(table.metadata),
            _ => self.load(catalog, name).await,
        }
    }

    async fn load(&self, catalog: &Catalog, name: &str) -> Option<TableMetadata> {
        let request = catalog.request(Method::GET, &self.table_path(name));
        match catalog.call_json::<TableResult>("loadTable", request).await {
            Reply::Ok(table) => Some(table.metadata),
            _ => None,
        }
    }
}

/// `commits`: every worker creates a table of its own, then appends snapshots to it, keeping
/// the metadata each commit answers so that it never reloads between its own commits.
pub async fn commits(
    catalog: Arc<Catalog>,
    scope: Arc<Scope>,
    concurrency: usize,
    bound: Arc<Bound>,
) -> anyhow::Result<Map<String, Value>> {
    scope.create_namespace(&catalog).await?;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let reloads = Arc::new(AtomicU64::new(0));
    pool::workers(concurrency, |worker| {
        let (catalog, scope, bound) = (catalog.clone(), scope.clone(), bound.clone());
        let (acknowledged, reloads) = (acknowledged.clone(), reloads.clone());
        async move {
            let name = format!("commits_{worker}");
            let Some(mut metadata) = scope.create_table(&catalog, &name).await else {
                return;
            };
            let path = scope.table_path(&name);
            let mut rng = StdRng::from_entropy();
            while bound.take().is_some() {
                let body = append_commit(&metadata, snapshot_id(&mut rng));
                let request = catalog.post_json(&path, &body);
                match catalog
                    .call_json::<TableResult>("updateTable", request)
                    .await
                {
                    Reply::Ok(table) => {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                        metadata = table.metadata;
                    }
                    _ => {
                        // The table is this worker's alone, so this is an error; start again
                        // from what the catalog holds.
                        reloads.fetch_add(1, Ordering::Relaxed);
                        if let Some(reloaded) = scope.load(&catalog, &name).await {
                            metadata = reloaded;
                        }
                    }
                }
            }
        }
    })
    .await;
    let mut extra = Map::new();
    extra.insert("namespace".into(), scope.namespace.clone().into());
    extra.insert("tables".into(), concurrency.into());
    extra.insert(
        "acknowledged_commits".into(),
        acknowledged.load(Ordering::Relaxed).into(),
    );
    extra.insert("reloads".into(), reloads.load(Ordering::Relaxed).into());
    Ok(extra)
}

/// What one `contention` writer saw.
#[derive(Default)]
struct WriterTally {
    acknowledged: Vec<i64>,
    retries: u64,
    non_conflict_errors: u64,
    abandoned: u64,
}

/// `contention`: `writers` writers append to ONE table; on 409 a writer reloads and tries again
/// (at most `max_retries` times per commit, and not past the deadline). At the end the table is
/// loaded and every acknowledged snapshot id must be among its snapshots.
pub async fn contention(
    catalog: Arc<Catalog>,
    scope: Arc<Scope>,
    writers: usize,
    max_retries: u64,
    bound: Arc<Bound>,
) -> anyhow::Result<Map<String, Value>> {
    const TABLE: &str = "contention";
    scope.create_namespace(&catalog).await?;
    let created = scope
        .create_table(&catalog, TABLE)
        .await
        .context("creating the contended table failed")?;
    let tallies = pool::workers(writers, |_| {
        let (catalog, scope, bound) = (catalog.clone(), scope.clone(), bound.clone());
        let mut metadata = created.clone();
        async move {
            let path = scope.table_path(TABLE);
            let mut rng = StdRng::from_entropy();
            let mut tally = WriterTally::default();
            while bound.take().is_some() {
                let mut attempts = 0u64;
                loop {
                    // A fresh id on every attempt: an attempt whose answer was lost may have
                    // landed, and its id must not be offered twice.
                    let id = snapshot_id(&mut rng);
                    let request = catalog.post_json(&path, &append_commit(&metadata, id));
                    match catalog
                        .call_json::<TableResult>("updateTable", request)
                        .await
                    {
                        Reply::Ok(table) => {
                            tally.acknowledged.push(id);
                            metadata = table.metadata;
                            break;
                        }
                        Reply::Status(409) => {}
                        Reply::Status(_) | Reply::Failed => tally.non_conflict_errors += 1,
                    }
                    attempts += 1;
                    if attempts > max_retries || bound.expired() {
                        tally.abandoned += 1;
                        break;
                    }
                    tally.retries += 1;
                    match scope.load(&catalog, TABLE).await {
                        Some(reloaded) => metadata = reloaded,
                        None => tally.non_conflict_errors += 1,
                    }
                }
            }
            tally
        }
    })
    .await;

    let acknowledged: Vec<i64> = tallies
        .iter()
        .flat_map(|t| t.acknowledged.iter().copied())
        .collect();
    let request = catalog.request(Method::GET, &scope.table_path(TABLE));
    let final_snapshots: HashSet<i64> = match catalog
        .call_json::<SnapshotsResult>("loadTable", request)
        .await
    {
        Reply::Ok(table) => table
            .metadata
            .snapshots
            .iter()
            .map(|s| s.snapshot_id)
            .collect(),
        _ => bail!("the final load of the contended table failed"),
    };
    let lost = acknowledged
        .iter()
        .filter(|id| !final_snapshots.contains(id))
        .count();
    let mut extra = Map::new();
    extra.insert("namespace".into(), scope.namespace.clone().into());
    extra.insert("writers".into(), writers.into());
    extra.insert("acknowledged_commits".into(), acknowledged.len().into());
    extra.insert(
        "retries".into(),
        tallies.iter().map(|t| t.retries).sum::<u64>().into(),
    );
    extra.insert(
        "abandoned_commits".into(),
        tallies.iter().map(|t| t.abandoned).sum::<u64>().into(),
    );
    extra.insert(
        "non_409_errors".into(),
        tallies
            .iter()
            .map(|t| t.non_conflict_errors)
            .sum::<u64>()
            .into(),
    );
    extra.insert("final_snapshots".into(), final_snapshots.len().into());
    extra.insert("lost_commits".into(), lost.into());
    Ok(extra)
}

/// `create-table`: createTable of `t{n}` in the run's namespace until the bound.
pub async fn create_table(
    catalog: Arc<Catalog>,
    scope: Arc<Scope>,
    concurrency: usize,
    bound: Arc<Bound>,
) -> anyhow::Result<Map<String, Value>> {
    scope.create_namespace(&catalog).await?;
    let created = Arc::new(AtomicU64::new(0));
    pool::workers(concurrency, |_| {
        let (catalog, scope, bound, created) = (
            catalog.clone(),
            scope.clone(),
            bound.clone(),
            created.clone(),
        );
        async move {
            let path = scope.tables_path();
            while let Some(n) = bound.take() {
                let body = table_body(&format!("t{n}"), scope.columns, scope.properties);
                let status = catalog
                    .send("createTable", catalog.post_json(&path, &body))
                    .await;
                if status.is_some_and(|s| (200..300).contains(&s)) {
                    created.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
    .await;
    let mut extra = Map::new();
    extra.insert("namespace".into(), scope.namespace.clone().into());
    extra.insert(
        "tables_created".into(),
        created.load(Ordering::Relaxed).into(),
    );
    Ok(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_builds_on_main() {
        let metadata: TableResult = serde_json::from_value(json!({
            "metadata-location": "file:///w/t/metadata/00001-x.metadata.json",
            "metadata": {
                "format-version": 2, "location": "file:///w/t/", "last-sequence-number": 7,
                "current-schema-id": 3, "refs": {"main": {"snapshot-id": 42, "type": "branch"}},
                "snapshots": [{"snapshot-id": 42}]
            }
        }))
        .unwrap();
        let commit = append_commit(&metadata.metadata, 43);
        assert_eq!(commit["requirements"][0]["snapshot-id"], 42);
        let snapshot = &commit["updates"][0]["snapshot"];
        assert_eq!(snapshot["parent-snapshot-id"], 42);
        assert_eq!(snapshot["sequence-number"], 8);
        assert_eq!(snapshot["schema-id"], 3);
        assert_eq!(
            snapshot["manifest-list"],
            "file:///w/t/metadata/snap-43.avro"
        );
        assert_eq!(commit["updates"][1]["snapshot-id"], 43);
    }

    #[test]
    fn the_first_append_asserts_no_main() {
        let metadata: TableMetadata =
            serde_json::from_value(json!({"location": "s3://b/t", "refs": {}})).unwrap();
        let commit = append_commit(&metadata, 1);
        assert!(commit["requirements"][0]["snapshot-id"].is_null());
        assert!(commit["updates"][0]["snapshot"]["parent-snapshot-id"].is_null());
        assert_eq!(commit["updates"][0]["snapshot"]["sequence-number"], 1);
    }
}
