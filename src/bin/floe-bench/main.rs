//! `floe-bench`: a load generator for any Apache Iceberg REST catalog, modelled on the Apache
//! Polaris benchmark suite.
//!
//! It speaks plain Iceberg REST over HTTP and shares no code path with the server: it must not
//! import the `floe` library, so that what it measures is what any client would see.
//!
//! ```text
//! floe-bench --uri http://127.0.0.1:8181/catalog --warehouse demo create-tree
//! floe-bench --uri ... --warehouse demo load-table --concurrency 32 --duration 10 --json
//! ```
//!
//! Layout: `client` (HTTP, prefix, timed calls), `stats` (HDR histograms, table and JSON),
//! `pool` (workers and bounds), `tree` (the namespace tree, `create-tree`, `read-tree`),
//! `workloads` (`load-table`, `read-update`, `commits`, `contention`, `create-table`).

mod client;
mod pool;
mod stats;
mod tree;
mod workloads;

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use crate::client::{Catalog, Connect};
use crate::pool::Bound;
use crate::stats::Stats;
use crate::tree::Shape;
use crate::workloads::Scope;

const EXAMPLES: &str = "\
Examples:
  floe-bench --uri http://127.0.0.1:8181/catalog --warehouse demo create-tree
  floe-bench --uri http://127.0.0.1:8181/catalog --warehouse demo read-tree
  floe-bench --uri http://127.0.0.1:8181/catalog --warehouse demo load-table --duration 30 --json
  floe-bench --uri http://127.0.0.1:8181/catalog --warehouse demo contention --writers 16 --count 500

Each operation is reported with requests/s, p50/p95/p99/max latency (ms, HDR histograms) and errors
by HTTP status; --json prints {\"workload\", \"operations\": [...], ...} on stdout.";

/// Load generator for Apache Iceberg REST catalogs.
#[derive(Parser, Debug)]
#[command(name = "floe-bench", version, after_help = EXAMPLES)]
struct Cli {
    /// The catalog's base URI; the tool calls {uri}/v1/config and {uri}/v1/{prefix}/...
    #[arg(long, env = "FLOE_BENCH_URI")]
    uri: String,
    /// The warehouse, sent as `?warehouse=` to /v1/config.
    #[arg(long, env = "FLOE_BENCH_WAREHOUSE")]
    warehouse: String,
    /// Sent as `Authorization: Bearer TOKEN`.
    #[arg(long, global = true, env = "FLOE_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, global = true, default_value_t = 5.0, value_name = "SECS")]
    progress: f64,
    /// Send `Accept-Encoding: gzip`, as PyIceberg and Iceberg's Java client do. Bodies that
    /// are only timed are not decoded (decoding is the client's work, not the catalog's).
    #[arg(long, global = true)]
    gzip: bool,
    /// Client timeout per request, in seconds.
    #[arg(long, global = true, default_value_t = 60.0, value_name = "SECS")]
    timeout: f64,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand, Debug)]
enum Workload {
    /// Creates the namespace tree with its tables and views.
    CreateTree {
        #[command(flatten)]
        shape: ShapeArgs,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Lists, loads and HEADs everything of the tree create-tree made.
    ReadTree {
        #[command(flatten)]
        shape: ShapeArgs,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// pageSize for listings (default: the catalog's choice).
        #[arg(long)]
        page_size: Option<u32>,
    },
    /// loadTable of random tables of the tree (or of one table, with --table).
    LoadTable {
        #[command(flatten)]
        shape: ShapeArgs,
        /// Load only this table, `ns1.ns2.name` (e.g. one with a long history), instead of the tree.
        #[arg(long)]
        table: Option<String>,
        /// Sent as `?snapshots=`: `all` (what clients ask by default) or `refs` (only the
        /// snapshots branches and tags point at).
        #[arg(long, value_parser = ["all", "refs"])]
        snapshots: Option<String>,
        /// Requests in flight (with --rate: the most outstanding at once).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Send this many requests per second whatever the answers do (an open loop), instead
        /// of `--concurrency` clients that each wait for their answer.
        #[arg(long)]
        rate: Option<f64>,
        #[command(flatten)]
        bound: BoundArgs,
    },
    /// loadTable and set-properties commits on random tables of the tree.
    ReadUpdate {
        #[command(flatten)]
        shape: ShapeArgs,
        /// Requests in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Share of reads, 0.0 to 1.0.
        #[arg(long, default_value_t = 0.8, value_parser = parse_ratio)]
        read_ratio: f64,
        #[command(flatten)]
        bound: BoundArgs,
    },
    /// Append commits, every worker on a table of its own.
    Commits {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Workers, hence tables.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[command(flatten)]
        bound: BoundArgs,
    },
    /// Writers appending to ONE table, retrying on 409; checks no acknowledged commit is lost.
    Contention {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Concurrent writers.
        #[arg(long, default_value_t = 16)]
        writers: usize,
        /// Retries per commit before it is abandoned.
        #[arg(long, default_value_t = 1000)]
        max_retries: u64,
        #[command(flatten)]
        bound: BoundArgs,
    },
    /// createTable throughput.
    CreateTable {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[command(flatten)]
        bound: BoundArgs,
    },
}

/// The tree: W namespaces at the top, W children under each namespace above the leaves, D levels,
/// T tables and V views per leaf.
#[derive(Args, Debug)]
struct ShapeArgs {
    /// Names the tree: its top namespaces are {prefix}_0, {prefix}_1... (use a new one per
    /// create-tree run, and the same one for the runs that read that tree).
    #[arg(long, default_value = "bench")]
    prefix_name: String,
    /// Namespaces at the top, and children of every namespace above the leaves.
    #[arg(long, default_value_t = 2)]
    width: usize,
    /// Levels of namespaces.
    #[arg(long, default_value_t = 4)]
    depth: usize,
    /// Tables per leaf namespace.
    #[arg(long, default_value_t = 5)]
    tables: usize,
    /// Views per leaf namespace.
    #[arg(long, default_value_t = 3)]
    views: usize,
    /// Columns per table and view.
    #[arg(long, default_value_t = 10)]
    columns: usize,
    /// Properties per namespace, table and view.
    #[arg(long, default_value_t = 10)]
    properties: usize,
}

impl ShapeArgs {
    fn shape(&self) -> Shape {
        Shape {
            prefix: self.prefix_name.clone(),
            width: self.width,
            depth: self.depth,
            tables: self.tables,
            views: self.views,
            columns: self.columns,
            properties: self.properties,
        }
    }
}

/// Where a run's own tables go: namespace {prefix}_{run-id}.
#[derive(Args, Debug)]
struct ScopeArgs {
    /// The run's namespace is {prefix}_{run-id}.
    #[arg(long, default_value = "bench")]
    prefix_name: String,
    /// Defaults to a fresh random id, so repeated runs never collide.
    #[arg(long)]
    run_id: Option<String>,
    /// Columns per table.
    #[arg(long, default_value_t = 10)]
    columns: usize,
    /// Properties per table.
    #[arg(long, default_value_t = 10)]
    properties: usize,
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        let run_id = self
            .run_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string());
        Scope {
            namespace: format!("{}_{run_id}", self.prefix_name),
            columns: self.columns,
            properties: self.properties,
        }
    }
}

/// A run stops after --duration seconds or --count steps, whichever first; 10 s when neither
/// is given.
#[derive(Args, Debug)]
struct BoundArgs {
    /// Seconds to run.
    #[arg(long)]
    duration: Option<f64>,
    /// Steps (requests or commits) to run, over all workers.
    #[arg(long)]
    count: Option<u64>,
}

impl BoundArgs {
    fn bound(&self) -> Arc<Bound> {
        Arc::new(Bound::new(self.duration, self.count, 10.0))
    }
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    let ratio: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err("must be between 0.0 and 1.0".to_string())
    }
}

impl Workload {
    fn name(&self) -> &'static str {
        match self {
            Workload::CreateTree { .. } => "create-tree",
            Workload::ReadTree { .. } => "read-tree",
            Workload::LoadTable { .. } => "load-table",
            Workload::ReadUpdate { .. } => "read-update",
            Workload::Commits { .. } => "commits",
            Workload::Contention { .. } => "contention",
            Workload::CreateTable { .. } => "create-table",
        }
    }

    fn concurrency(&self) -> usize {
        match self {
            Workload::CreateTree { concurrency, .. }
            | Workload::ReadTree { concurrency, .. }
            | Workload::LoadTable { concurrency, .. }
            | Workload::ReadUpdate { concurrency, .. }
            | Workload::Commits { concurrency, .. }
            | Workload::CreateTable { concurrency, .. } => *concurrency,
            Workload::Contention { writers, .. } => *writers,
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("floe-bench: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let concurrency = cli.workload.concurrency();
    if concurrency == 0 {
        anyhow::bail!("--concurrency and --writers must be at least 1");
    }
    let stats = Arc::new(Stats::new());
    let catalog = Arc::new(
        Catalog::connect(
            Connect {
                uri: &cli.uri,
                warehouse: &cli.warehouse,
                token: cli.token.as_deref(),
                pool: concurrency,
                timeout: Duration::from_secs_f64(cli.timeout.max(0.001)),
                gzip: cli.gzip,
            },
            stats.clone(),
        )
        .await?,
    );
    let workload = cli.workload.name();
    eprintln!(
        "floe-bench: {workload} against {} (warehouse {}, prefix {}), concurrency {concurrency}",
        cli.uri,
        cli.warehouse,
        catalog.prefix.as_deref().unwrap_or("none"),
    );
    let progress = stats::spawn_progress(
        stats.clone(),
        Duration::from_secs_f64(cli.progress.max(0.0)),
    );
    let started = std::time::Instant::now();
    let mut bound_text = None;
    let result = match &cli.workload {
        Workload::CreateTree { shape, concurrency } => {
            tree::create_tree(catalog.clone(), &shape.shape(), *concurrency).await
        }
        Workload::ReadTree {
            shape,
            concurrency,
            page_size,
        } => tree::read_tree(catalog.clone(), &shape.shape(), *concurrency, *page_size).await,
        Workload::LoadTable {
            shape,
            table,
            snapshots,
            concurrency,
            rate,
            bound,
        } => {
            let bound = bound.bound();
            bound_text = Some(bound.describe(started));
            workloads::load_table(
                catalog.clone(),
                &shape.shape(),
                table.as_deref(),
                snapshots.as_deref(),
                *concurrency,
                *rate,
                bound,
            )
            .await
        }
        Workload::ReadUpdate {
            shape,
            concurrency,
            read_ratio,
            bound,
        } => {
            let bound = bound.bound();
            bound_text = Some(bound.describe(started));
            workloads::read_update(
                catalog.clone(),
                &shape.shape(),
                *concurrency,
                *read_ratio,
                bound,
            )
            .await
        }
        Workload::Commits {
            scope,
            concurrency,
            bound,
        } => {
            let bound = bound.bound();
            bound_text = Some(bound.describe(started));
            workloads::commits(
                catalog.clone(),
                Arc::new(scope.scope()),
                *concurrency,
                bound,
            )
            .await
        }
        Workload::Contention {
            scope,
            writers,
            max_retries,
            bound,
        } => {
            let bound = bound.bound();
            bound_text = Some(bound.describe(started));
            workloads::contention(
                catalog.clone(),
                Arc::new(scope.scope()),
                *writers,
                *max_retries,
                bound,
            )
            .await
        }
        Workload::CreateTable {
            scope,
            concurrency,
            bound,
        } => {
            let bound = bound.bound();
            bound_text = Some(bound.describe(started));
            workloads::create_table(
                catalog.clone(),
                Arc::new(scope.scope()),
                *concurrency,
                bound,
            )
            .await
        }
    };
    if let Some(progress) = progress {
        progress.abort();
    }
    let workload_extra = result?;

    let mut extra = Map::new();
    extra.insert("uri".into(), cli.uri.clone().into());
    extra.insert("warehouse".into(), cli.warehouse.clone().into());
    extra.insert("concurrency".into(), concurrency.into());
    if let Some(bound) = bound_text {
        extra.insert("bound".into(), bound.into());
    }
    let elapsed = started.elapsed().as_secs_f64();
    extra.insert(
        "elapsed_s".into(),
        Value::from((elapsed * 1000.0).round() / 1000.0),
    );
    extra.extend(workload_extra);
    let ops = stats.report();
    if cli.json {
        println!("{}", stats::to_json(workload, &ops, &extra));
    } else {
        print!("{}", stats::to_table(workload, &ops, &extra));
    }
    let lost = extra
        .get("lost_commits")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if lost > 0 {
        eprintln!("floe-bench: {lost} acknowledged commits are missing from the table");
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
