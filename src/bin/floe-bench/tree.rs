//! The namespace tree of the Polaris-style workloads and the two that walk it whole:
//! `create-tree` makes it, `read-tree` lists, loads and checks every part of it.
//!
//! A tree of width W and depth D has W namespaces `{prefix}_{i}` at the top, each namespace above
//! the leaves has W children `ns{i}`, and every leaf (a namespace D levels deep) holds tables
//! `t{j}` and views `v{j}`. Names depend only on the shape, so every workload that is given the
//! same shape finds what `create-tree` made.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::bail;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::{Catalog, Reply, namespace_param, namespace_path};
use crate::pool;

/// More entities than this is surely a typo in the shape.
const MAX_ENTITIES: usize = 10_000_000;

/// Pages followed per listing at most (every loop is bounded).
const MAX_PAGES: usize = 100_000;

#[derive(Clone, Debug)]
pub struct Shape {
    pub prefix: String,
    pub width: usize,
    pub depth: usize,
    pub tables: usize,
    pub views: usize,
    pub columns: usize,
    pub properties: usize,
}

/// A table or view: its namespace, the namespace as a path segment, its name.
#[derive(Clone, Debug)]
pub struct Entity {
    pub namespace: Arc<Vec<String>>,
    pub namespace_path: Arc<str>,
    pub name: String,
}

impl Entity {
    pub fn table_path(&self) -> String {
        format!("/namespaces/{}/tables/{}", self.namespace_path, self.name)
    }

    pub fn view_path(&self) -> String {
        format!("/namespaces/{}/views/{}", self.namespace_path, self.name)
    }
}

impl Shape {
    /// Refuses shapes that are empty or absurdly large.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.prefix.is_empty() || self.prefix.contains('\u{1f}') {
            bail!("--prefix-name must be a non-empty namespace name");
        }
        if self.width == 0 || self.depth == 0 {
            bail!("--width and --depth must be at least 1");
        }
        let leaves = u32::try_from(self.depth)
            .ok()
            .and_then(|depth| self.width.checked_pow(depth));
        let total = leaves.and_then(|leaves| {
            leaves
                .checked_mul(self.tables + self.views)?
                .checked_add(self.namespace_count()?)
        });
        match total {
            Some(total) if total <= MAX_ENTITIES => Ok(()),
            _ => bail!("the tree would hold more than {MAX_ENTITIES} namespaces, tables and views"),
        }
    }

    fn namespace_count(&self) -> Option<usize> {
        let mut total = 0usize;
        let mut level = 1usize;
        for _ in 0..self.depth {
            level = level.checked_mul(self.width)?;
            total = total.checked_add(level)?;
        }
        Some(total)
    }

    /// Namespaces level by level, the top level first.
    pub fn levels(&self) -> Vec<Vec<Vec<String>>> {
        let mut levels: Vec<Vec<Vec<String>>> = Vec::with_capacity(self.depth);
        let top = (0..self.width)
            .map(|i| vec![format!("{}_{i}", self.prefix)])
            .collect();
        levels.push(top);
        for _ in 1..self.depth {
            let below = levels
                .last()
                .expect("a level")
                .iter()
                .flat_map(|parent| {
                    (0..self.width).map(move |i| {
                        let mut child = parent.clone();
                        child.push(format!("ns{i}"));
                        child
                    })
                })
                .collect();
            levels.push(below);
        }
        levels
    }

    pub fn leaves(&self) -> Vec<Vec<String>> {
        self.levels().pop().unwrap_or_default()
    }

    pub fn tables(&self) -> Vec<Entity> {
        self.entities(self.tables, "t")
    }

    pub fn views(&self) -> Vec<Entity> {
        self.entities(self.views, "v")
    }

    fn entities(&self, per_leaf: usize, stem: &str) -> Vec<Entity> {
        self.leaves()
            .into_iter()
            .flat_map(|leaf| {
                let namespace_path: Arc<str> = namespace_path(&leaf).into();
                let namespace = Arc::new(leaf);
                (0..per_leaf).map(move |j| Entity {
                    namespace: namespace.clone(),
                    namespace_path: namespace_path.clone(),
                    name: format!("{stem}{j}"),
                })
            })
            .collect()
    }
}

/// A struct schema of `columns` optional columns of assorted primitive types.
pub fn schema(columns: usize) -> Value {
    const TYPES: [&str; 8] = [
        "long",
        "string",
        "double",
        "int",
        "boolean",
        "date",
        "timestamp",
        "decimal(10, 2)",
    ];
    let fields: Vec<Value> = (0..columns.max(1))
        .map(|i| {
            json!({
                "id": i + 1,
                "name": format!("c{i}"),
                "required": false,
                "type": TYPES[i % TYPES.len()],
            })
        })
        .collect();
    json!({"type": "struct", "schema-id": 0, "fields": fields})
}

/// `count` properties `floe-bench.p{i}`.
pub fn properties(count: usize) -> Value {
    let map: Map<String, Value> = (0..count)
        .map(|i| {
            (
                format!("floe-bench.p{i}"),
                Value::from(format!("value-{i}")),
            )
        })
        .collect();
    Value::Object(map)
}

/// A createTable request.
pub fn table_body(name: &str, columns: usize, property_count: usize) -> Value {
    json!({
        "name": name,
        "schema": schema(columns),
        "properties": properties(property_count),
    })
}

/// A createView request: a SQL view over the first table of its namespace.
pub fn view_body(name: &str, namespace: &[String], columns: usize, property_count: usize) -> Value {
    let columns = columns.max(1);
    let select = (0..columns)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    json!({
        "name": name,
        "schema": schema(columns),
        "view-version": {
            "version-id": 1,
            "schema-id": 0,
            "timestamp-ms": chrono::Utc::now().timestamp_millis(),
            "summary": {"engine-name": "floe-bench"},
            "representations": [{
                "type": "sql",
                "sql": format!("SELECT {select} FROM {}.t0", namespace.join(".")),
                "dialect": "spark",
            }],
            "default-namespace": namespace,
        },
        "properties": properties(property_count),
    })
}

/// `create-tree`: namespaces level by level, then the tables, then the views.
pub async fn create_tree(
    catalog: Arc<Catalog>,
    shape: &Shape,
    concurrency: usize,
) -> anyhow::Result<Map<String, Value>> {
    shape.check()?;
    let mut namespaces = 0;
    for level in shape.levels() {
        namespaces += level.len();
        let (catalog, count) = (catalog.clone(), shape.properties);
        pool::each(concurrency, level, move |namespace: Vec<String>| {
            let catalog = catalog.clone();
            async move {
                let body = json!({"namespace": namespace, "properties": properties(count)});
                let request = catalog.post_json("/namespaces", &body);
                catalog.send("createNamespace", request).await;
            }
        })
        .await;
    }
    let tables = shape.tables();
    let table_count = tables.len();
    let (c, columns, count) = (catalog.clone(), shape.columns, shape.properties);
    pool::each(concurrency, tables, move |table: Entity| {
        let catalog = c.clone();
        async move {
            let body = table_body(&table.name, columns, count);
            let path = format!("/namespaces/{}/tables", table.namespace_path);
            catalog
                .send("createTable", catalog.post_json(&path, &body))
                .await;
        }
    })
    .await;
    let views = shape.views();
    let view_count = views.len();
    let c = catalog.clone();
    pool::each(concurrency, views, move |view: Entity| {
        let catalog = c.clone();
        async move {
            let body = view_body(&view.name, &view.namespace, columns, count);
            let path = format!("/namespaces/{}/views", view.namespace_path);
            catalog
                .send("createView", catalog.post_json(&path, &body))
                .await;
        }
    })
    .await;
    let mut extra = Map::new();
    extra.insert("namespaces".into(), namespaces.into());
    extra.insert("tables".into(), table_count.into());
    extra.insert("views".into(), view_count.into());
    Ok(extra)
}

#[derive(Deserialize)]
struct NamespacesPage {
    namespaces: Vec<Vec<String>>,
    #[serde(rename = "next-page-token", default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct IdentifiersPage {
    identifiers: Vec<Identifier>,
    #[serde(rename = "next-page-token", default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Identifier {
    name: String,
}

/// One listing, page after page; the names it holds, or `None` when a page failed.
async fn list_all(
    catalog: &Catalog,
    op: &'static str,
    path: &str,
    parent: Option<&[String]>,
    page_size: Option<u32>,
) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut request = catalog.request(Method::GET, path);
        if let Some(parent) = parent {
            request = request.query(&[("parent", namespace_param(parent))]);
        }
        if let Some(size) = page_size {
            request = request.query(&[("pageSize", size)]);
        }
        if let Some(token) = &token {
            request = request.query(&[("pageToken", token)]);
        }
        let next = if op == "listNamespaces" {
            match catalog.call_json::<NamespacesPage>(op, request).await {
                Reply::Ok(page) => {
                    names.extend(page.namespaces.into_iter().filter_map(|mut ns| ns.pop()));
                    page.next
                }
                _ => return None,
            }
        } else {
            match catalog.call_json::<IdentifiersPage>(op, request).await {
                Reply::Ok(page) => {
                    names.extend(page.identifiers.into_iter().map(|id| id.name));
                    page.next
                }
                _ => return None,
            }
        };
        match next {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Some(names),
        }
    }
    Some(names)
}

/// The names a listing should return.
fn names(stem: &str, count: usize) -> BTreeSet<String> {
    (0..count).map(|i| format!("{stem}{i}")).collect()
}

/// `read-tree`: one phase per operation so that each one's rate is its own: the config, the
/// namespace listings (top level and under every inner namespace), load and HEAD of every
/// namespace, table and view listings of every leaf, load and HEAD of every table and view.
/// Listings are checked against the shape (a wrong answer counts as a `mismatch` error).
pub async fn read_tree(
    catalog: Arc<Catalog>,
    shape: &Shape,
    concurrency: usize,
    page_size: Option<u32>,
) -> anyhow::Result<Map<String, Value>> {
    shape.check()?;
    catalog.send("getConfig", catalog.config_request()).await;

    // Namespace listings: the top level holds (at least) ours, every inner namespace W children.
    let levels = shape.levels();
    let top: BTreeSet<String> = levels[0].iter().map(|ns| ns[0].clone()).collect();
    let mut parents: Vec<Option<Vec<String>>> = vec![None];
    parents.extend(
        levels[..levels.len() - 1]
            .iter()
            .flatten()
            .cloned()
            .map(Some),
    );
    let (c, width) = (catalog.clone(), shape.width);
    pool::each(concurrency, parents, move |parent: Option<Vec<String>>| {
        let (catalog, top) = (c.clone(), top.clone());
        async move {
            let listed = list_all(
                &catalog,
                "listNamespaces",
                "/namespaces",
                parent.as_deref(),
                page_size,
            )
            .await;
            let right = match (&parent, listed) {
                (_, None) => true,
                (None, Some(listed)) => listed.is_superset(&top),
                (Some(_), Some(listed)) => listed == names("ns", width),
            };
            if !right {
                catalog.stats.error("listNamespaces", "mismatch");
            }
        }
    })
    .await;

    let namespaces: Vec<String> = levels
        .iter()
        .flatten()
        .map(|ns| namespace_path(ns))
        .collect();
    let namespace_count = namespaces.len();
    for (op, method) in [
        ("loadNamespaceMetadata", Method::GET),
        ("namespaceExists", Method::HEAD),
    ] {
        let c = catalog.clone();
        pool::each(concurrency, namespaces.clone(), move |ns: String| {
            let (catalog, method) = (c.clone(), method.clone());
            async move {
                let request = catalog.request(method, &format!("/namespaces/{ns}"));
                catalog.send(op, request).await;
            }
        })
        .await;
    }

    let leaves: Vec<String> = shape.leaves().iter().map(|ns| namespace_path(ns)).collect();
    for (op, kind, stem, expected) in [
        ("listTables", "tables", "t", shape.tables),
        ("listViews", "views", "v", shape.views),
    ] {
        let c = catalog.clone();
        pool::each(concurrency, leaves.clone(), move |ns: String| {
            let catalog = c.clone();
            async move {
                let path = format!("/namespaces/{ns}/{kind}");
                let listed = list_all(&catalog, op, &path, None, page_size).await;
                if listed.is_some_and(|listed| listed != names(stem, expected)) {
                    catalog.stats.error(op, "mismatch");
                }
            }
        })
        .await;
    }

    let tables: Vec<String> = shape.tables().iter().map(Entity::table_path).collect();
    let views: Vec<String> = shape.views().iter().map(Entity::view_path).collect();
    let (table_count, view_count) = (tables.len(), views.len());
    for (op, method, paths) in [
        ("loadTable", Method::GET, &tables),
        ("tableExists", Method::HEAD, &tables),
        ("loadView", Method::GET, &views),
        ("viewExists", Method::HEAD, &views),
    ] {
        let c = catalog.clone();
        pool::each(concurrency, paths.clone(), move |path: String| {
            let (catalog, method) = (c.clone(), method.clone());
            async move {
                catalog.send(op, catalog.request(method, &path)).await;
            }
        })
        .await;
    }

    let mut extra = Map::new();
    extra.insert("namespaces".into(), namespace_count.into());
    extra.insert("tables".into(), table_count.into());
    extra.insert("views".into(), view_count.into());
    Ok(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(width: usize, depth: usize) -> Shape {
        Shape {
            prefix: "b".into(),
            width,
            depth,
            tables: 5,
            views: 3,
            columns: 10,
            properties: 10,
        }
    }

    #[test]
    fn the_default_tree_has_the_polaris_sizes() {
        let shape = shape(2, 4);
        shape.check().unwrap();
        let levels = shape.levels();
        assert_eq!(
            levels.iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 4, 8, 16]
        );
        assert_eq!(levels[3][5], ["b_0", "ns1", "ns0", "ns1"]);
        assert_eq!(shape.tables().len(), 80);
        assert_eq!(shape.views().len(), 48);
        assert_eq!(
            shape.tables()[0].table_path(),
            "/namespaces/b_0%1Fns0%1Fns0%1Fns0/tables/t0"
        );
    }

    #[test]
    fn absurd_shapes_are_refused() {
        assert!(shape(10, 9).check().is_err());
        assert!(shape(0, 3).check().is_err());
        assert!(shape(usize::MAX, 3).check().is_err());
    }
}
