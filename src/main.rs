//! The `floe` command: `serve` (the default), `migrate`, `openapi`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use floe::config::{Config, LogFormat};
use floe::server::{Floe, shutdown_signal};

/// jemalloc instead of the system allocator. Measured over the benchmark sequence of
/// `benches/README.md` (commits, contention, creates, loads in one process) it used the least
/// memory and the least CPU of the three tried: peak resident memory on PostgreSQL 137-139 MB
/// against 152-193 MB with mimalloc and 125-129 MB with glibc's malloc (which never gave it
/// back), with 10-20% more commits and creates per second than either.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts (before `main`); `_RJEM_MALLOC_CONF` in the
/// environment adds to them and wins where both set an option. A background thread returns
/// freed memory to the system, a second after it was freed, instead of the threads that
/// allocate doing it on their way. Two arenas instead of four per core: with the embedded
/// database's connection threads and the blocking pool spread over eight arenas, each kept
/// memory of its own (peaks of 118-147 MB over the sequence on SQLite, 120-121 MB with two,
/// at the same throughput).
#[unsafe(export_name = "_rjem_malloc_conf")]
#[allow(non_upper_case_globals)]
pub static malloc_conf: Option<&'static u8> =
    Some(&b"background_thread:true,dirty_decay_ms:1000,narenas:2\0"[0]);

#[derive(Parser)]
#[command(
    name = "floe",
    version,
    about = "An Apache Iceberg REST catalog in one binary"
)]
struct Cli {
    /// A TOML configuration file (settings there are overridden by FLOE__SECTION__KEY variables).
    #[arg(long, global = true, env = "FLOE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the catalog and management APIs (the default).
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8181 (server.listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Folder of the embedded database, secrets key and local warehouses (storage.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address the S3 gateway listens on, e.g. 0.0.0.0:9000 (gateway.listen).
        #[arg(long)]
        s3_listen: Option<std::net::SocketAddr>,
    },
    /// Run only the task workers (purges, soft-delete expiry) and the events relay: no catalog,
    /// no S3 gateway. `/health` and `/metrics` are served on metrics.listen when it is set. For a
    /// PostgreSQL catalog, beside instances that serve (which may run no workers:
    /// FLOE__TASKS__QUEUES__PURGE=0 ...).
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the configuration (defaults, --config file, FLOE__ variables) without starting.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Ask a running server whether it is alive (GET /health), or ready (GET /ready): exit 0
    /// when it is, 1 when not. For container health checks, where no HTTP client is installed.
    Health {
        /// The server's base URL (default: `server.listen` of the configuration, on loopback
        /// when it listens on every address).
        #[arg(long, env = "FLOE_ENDPOINT")]
        endpoint: Option<String>,
        /// Ask /ready instead of /health.
        #[arg(long)]
        ready: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Secrets kept by the server (warehouses' storage credentials).
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Write the OpenAPI descriptions (management.yaml, catalog.yaml) into a folder.
    Openapi {
        #[arg(long, default_value = "openapi")]
        out_dir: PathBuf,
    },
    /// Branches of a warehouse on a running server (list, create, delete, reset).
    Branch {
        #[command(flatten)]
        target: floe::cli::Target,
        #[command(subcommand)]
        command: floe::cli::BranchCommand,
    },
    /// Tags of a warehouse on a running server (list, create, delete).
    Tag {
        #[command(flatten)]
        target: floe::cli::Target,
        #[command(subcommand)]
        command: floe::cli::TagCommand,
    },
    /// A branch's, tag's or commit's history, newest first.
    Log {
        #[command(flatten)]
        target: floe::cli::Target,
        /// A branch, tag or commit id (default main).
        #[arg(long = "ref")]
        reference: Option<String>,
        /// Commits to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// What differs from one branch, tag or commit to another.
    Diff {
        #[command(flatten)]
        target: floe::cli::Target,
        from: String,
        to: String,
    },
    /// Copy namespaces, tables and views from another Iceberg REST catalog into a Floe warehouse
    /// (tables and views are registered at their current metadata files; nothing is rewritten).
    /// Run it again to resume an interrupted import.
    Import {
        #[command(flatten)]
        args: floe::cli::import::ImportArgs,
    },
    /// Merge a branch, tag or commit into a branch (one atomic commit).
    Merge {
        #[command(flatten)]
        target: floe::cli::Target,
        source: String,
        /// The branch to merge into.
        #[arg(long, default_value = "main")]
        into: String,
        #[arg(long, short = 'm')]
        message: Option<String>,
        /// fail (default), source-wins or target-wins.
        #[arg(long)]
        strategy: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration as `serve` would, without opening anything; exit 0
    /// and print it (secrets redacted) when valid, exit 2 naming the setting when not.
    Check,
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Move the secrets sealed in the catalog database to another store (`vault`, set up under
    /// `secrets.vault`). Each moves in one step; stopped, it can be run again to carry on.
    /// Switch every instance to `secrets.backend = "vault"` first: it still reads the secrets not
    /// yet moved from the database.
    Migrate {
        /// The store to move them to.
        #[arg(long, value_parser = ["vault"])]
        to: String,
        /// Move at most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The health probe needs no configuration (it runs in the server's container, beside it).
    if let Some(Command::Health {
        endpoint,
        ready,
        timeout,
    }) = &cli.command
    {
        let endpoint = endpoint.clone().unwrap_or_else(|| {
            let listen = Config::load(cli.config.as_deref(), std::env::vars())
                .map(|c| c.server.listen)
                .unwrap_or_else(|_| Config::default().server.listen);
            let host = if listen.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                listen.ip()
            };
            format!("http://{}", std::net::SocketAddr::new(host, listen.port()))
        });
        let runtime = tokio::runtime::Runtime::new()?;
        match runtime.block_on(floe::cli::health(&endpoint, *ready, *timeout)) {
            Ok(status) => {
                println!("{status}");
                return Ok(());
            }
            Err(e) => {
                eprintln!("floe: {e:#}");
                std::process::exit(1);
            }
        }
    }
    let mut config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("floe: {e:#}");
            std::process::exit(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve {
        listen: None,
        data_dir: None,
        s3_listen: None,
    });
    if let Command::Serve {
        listen,
        data_dir,
        s3_listen,
    } = &command
    {
        if let Some(addr) = s3_listen {
            config.gateway.listen = *addr;
        }
        if let Some(listen) = listen {
            config.server.listen = *listen;
        }
        if let Some(dir) = data_dir {
            config.storage.data_dir = dir.clone();
        }
    }
    let runtime = tokio::runtime::Runtime::new()?;
    // The client commands talk to a server; they need no configuration or log setup.
    let client = match command {
        Command::Branch { target, command } => {
            Some(runtime.block_on(floe::cli::branch(target, command)))
        }
        Command::Tag { target, command } => Some(runtime.block_on(floe::cli::tag(target, command))),
        Command::Log {
            target,
            reference,
            limit,
        } => Some(runtime.block_on(floe::cli::log(target, reference, limit))),
        Command::Import { args } => Some(runtime.block_on(floe::cli::import::import(args))),
        Command::Diff { target, from, to } => {
            Some(runtime.block_on(floe::cli::diff(target, from, to)))
        }
        Command::Merge {
            target,
            source,
            into,
            message,
            strategy,
        } => Some(runtime.block_on(floe::cli::merge(target, source, into, message, strategy))),
        command => {
            init_logging(&config);
            if let Err(e) = runtime.block_on(run(config, command)) {
                eprintln!("floe: {e:#}");
                std::process::exit(1);
            }
            return Ok(());
        }
    };
    match client {
        Some(Err(e)) => {
            eprintln!("floe: {e:#}");
            std::process::exit(1);
        }
        _ => Ok(()),
    }
}

async fn run(config: Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => serve(config).await,
        Command::Worker => {
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                "starting floe (task workers only)"
            );
            for line in config.summary() {
                tracing::info!("config {line}");
            }
            floe::server::Workers::build(&config)
                .await?
                .run(shutdown_signal())
                .await;
            Ok(())
        }
        Command::Migrate => {
            let store = floe::server::open_persistence(&config, true).await?;
            println!("migrations applied");
            if let Some(done) = floe::server::migrate_openfga(&config, &store).await? {
                println!(
                    "OpenFGA store {} uses authorization model {}; {} relationships copied",
                    done.store_id, done.model_id, done.copied
                );
            }
            Ok(())
        }
        Command::Secrets {
            command: SecretsCommand::Migrate { to: _, limit },
        } => {
            let done = floe::server::migrate_secrets(&config, limit).await?;
            println!(
                "moved {} secrets to Vault; {} still in the database",
                done.moved, done.remaining
            );
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            println!("the configuration is valid");
            for line in config.summary() {
                println!("  {line}");
            }
            Ok(())
        }
        Command::Openapi { out_dir } => {
            std::fs::create_dir_all(&out_dir)?;
            for (name, doc) in [
                ("management.yaml", floe::api::management_openapi()),
                ("catalog.yaml", floe::api::catalog_openapi()),
            ] {
                let path = out_dir.join(name);
                std::fs::write(&path, doc.to_yaml()?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Health { .. } => unreachable!("the health probe is handled in main"),
        _ => unreachable!("client commands are handled in main"),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting floe");
    for line in config.summary() {
        tracing::info!("config {line}");
    }
    let floe = Floe::build(&config).await?;
    let url = match &config.server.public_url {
        Some(_) => config.public_url(),
        None => format!("http://{}", floe.local_addr()),
    };
    let warehouse = &config.bootstrap.warehouse;
    let providers = &config.authn.providers;
    let (authn, credential) = if providers.is_empty() {
        ("none: every caller is anonymous".to_string(), String::new())
    } else {
        (
            format!(
                "bearer tokens of {}",
                providers
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ",\n      credential=\"CLIENT_ID:CLIENT_SECRET\", **{\"oauth2-server-uri\": \"<the IdP's token endpoint>\"}"
                .to_string(),
        )
    };
    let authz = match config.authz.effective_backend(&config.authn) {
        floe::config::AuthzBackend::AllowAll => "none: every caller may do everything",
        floe::config::AuthzBackend::Builtin => "built in: grants in the catalog database",
        floe::config::AuthzBackend::Openfga => "OpenFGA: every check asks the OpenFGA server",
    };
    println!(
        "\nFloe {version} is serving\n  \
         Iceberg REST catalog  {url}/catalog\n  \
         Management API        {url}/management/v1\n  \
         API browser           {url}/docs/\n  \
         Authentication        {authn}\n  \
         Authorization         {authz}\n\n\
         PyIceberg:\n  \
         from pyiceberg.catalog import load_catalog\n  \
         catalog = load_catalog(\"floe\", type=\"rest\", uri=\"{url}/catalog\", warehouse=\"{warehouse}\"{credential})\n",
        version = env!("CARGO_PKG_VERSION"),
    );
    if floe.auto_bootstrapped {
        tracing::info!(
            warehouse,
            "bootstrapped with a default project and a local warehouse"
        );
    }
    floe.run(shutdown_signal()).await
}

/// Libraries that log whole requests (headers included, so S3 signatures) below `info`; they are
/// held at `info` whatever level is asked for, so no credential or signature reaches the log.
const QUIET_TARGETS: &[&str] = &[
    "s3s",
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "hyper",
    "hyper_util",
    "reqwest",
];

fn init_logging(config: &Config) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    for target in QUIET_TARGETS {
        filter = filter.add_directive(format!("{target}=info").parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
