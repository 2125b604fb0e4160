//! `floe import`: copies a warehouse of any Iceberg REST catalog into a Floe warehouse, through
//! both catalogs' REST APIs: namespaces with their properties, tables registered at their current
//! metadata file (nothing is rewritten or copied: both catalogs point at the same files), and
//! views registered the same way.
//!
//! Each object is one call on each side, and an object already in Floe is recognised (a table or
//! view at the same metadata file counts as imported), so an interrupted import is resumed by
//! running the same command again. What cannot be imported (a table whose files lie outside the
//! Floe warehouse's storage, a name taken by something else) is skipped, and the report says why.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

/// Where to import from and into.
#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// The source catalog's REST URI (what its clients are given, e.g.
    /// `http://polaris:8181/api/catalog` or `http://lakekeeper:8181/catalog`).
    #[arg(long)]
    pub from_uri: String,
    /// The source's warehouse (its clients' `warehouse` setting).
    #[arg(long)]
    pub warehouse: Option<String>,
    /// A bearer token for the source catalog.
    #[arg(
        long,
        env = "FLOE_IMPORT_TOKEN",
        hide_env_values = true,
        conflicts_with = "credential"
    )]
    pub token: Option<String>,
    /// `CLIENT_ID:CLIENT_SECRET` for the source's OAuth2 client-credentials flow.
    #[arg(long, env = "FLOE_IMPORT_CREDENTIAL", hide_env_values = true)]
    pub credential: Option<String>,
    /// The token endpoint for `--credential` (default: the source's `v1/oauth/tokens`).
    #[arg(long)]
    pub oauth2_server_uri: Option<String>,
    /// The scope asked for with `--credential`.
    #[arg(long, default_value = "catalog")]
    pub scope: String,
    /// The Floe warehouse to import into (its name in the default project, as engines name it).
    #[arg(long)]
    pub into: String,
    /// Floe's base URL.
    #[arg(long, env = "FLOE_ENDPOINT", default_value = "http://127.0.0.1:8181")]
    pub endpoint: String,
    /// A bearer token for Floe, when it requires one.
    #[arg(long = "floe-token", env = "FLOE_TOKEN", hide_env_values = true)]
    pub floe_token: Option<String>,
    /// Import only this namespace and what is under it (dot-separated levels); repeatable.
    #[arg(long = "namespace")]
    pub namespaces: Vec<String>,
}

/// One REST catalog as a client sees it: its base URI, prefix and token.
struct Catalog {
    http: reqwest::Client,
    base: String,
    prefix: Option<String>,
    token: Option<String>,
    name: &'static str,
}

/// An answer: status and JSON body (Null when empty).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {}", self.status))
    }
}

impl Catalog {
    fn url(&self, path: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{}/v1/{}/{path}", self.base, encode(prefix)),
            None => format!("{}/v1/{path}", self.base),
        }
    }

    /// Sends, retrying what may pass (connection failures, 429, 502-504) a few times.
    async fn send(&self, make: impl Fn() -> reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = make();
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let outcome = request.send().await;
            let retry = match &outcome {
                Err(e) => e.is_connect() || e.is_timeout(),
                Ok(r) => matches!(r.status().as_u16(), 429 | 502..=504),
            };
            if retry && attempt < 5 {
                tokio::time::sleep(Duration::from_millis(200 * (1 << attempt))).await;
                continue;
            }
            let response = outcome.with_context(|| format!("reaching the {}", self.name))?;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let body = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            return Ok(Answer { status, body });
        }
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Answer> {
        let url = self.url(path);
        self.send(|| self.http.get(&url).query(query)).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        let url = self.url(path);
        self.send(|| self.http.post(&url).json(body)).await
    }

    /// Reads `/v1/config` and takes the prefix it gives for `warehouse`.
    async fn configure(&mut self, warehouse: Option<&str>) -> anyhow::Result<()> {
        let query: Vec<(&str, String)> = warehouse
            .map(|w| vec![("warehouse", w.to_string())])
            .unwrap_or_default();
        let answer = self.get("config", &query).await?;
        if answer.status != 200 {
            bail!(
                "the {} refused its configuration: {}",
                self.name,
                answer.message()
            );
        }
        let pick = |key: &str| {
            answer.body["overrides"][key]
                .as_str()
                .or_else(|| answer.body["defaults"][key].as_str())
                .map(str::to_string)
        };
        if let Some(uri) = pick("uri") {
            self.base = uri.trim_end_matches('/').to_string();
        }
        self.prefix = pick("prefix");
        Ok(())
    }

    /// Every page of a listing (`key` holds the items).
    async fn list(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<Option<Vec<Value>>> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            if let Some(t) = &token {
                q.push(("pageToken", t.clone()));
            }
            let answer = self.get(path, &q).await?;
            match answer.status {
                200 => {}
                // A catalog without views (or without this listing).
                404 | 501 | 400 if key == "identifiers" && path.ends_with("/views") => {
                    return Ok(None);
                }
                _ => bail!(
                    "listing {path} of the {} failed: {}",
                    self.name,
                    answer.message()
                ),
            }
            items.extend(answer.body[key].as_array().cloned().unwrap_or_default());
            match answer.body["next-page-token"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(Some(items)),
            }
        }
    }
}

/// Percent-encodes one path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A namespace as a path segment (levels joined by the unit separator, as the spec says).
fn namespace_segment(levels: &[String]) -> String {
    encode(&levels.join("\u{1f}"))
}

fn levels_of(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect()
}

/// What became of each object.
#[derive(Default)]
struct Report {
    namespaces: usize,
    tables: usize,
    views: usize,
    already: usize,
    skipped: Vec<(String, String)>,
}

/// Progress: a bar on a terminal, one line per object otherwise (logs, CI).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    done: u64,
    total: u64,
}

impl Progress {
    fn new(total: u64) -> Self {
        use std::io::IsTerminal as _;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} {elapsed_precise} {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            done: 0,
            total,
        }
    }

    fn step(&mut self, what: &str) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(what.to_string());
                bar.inc(1);
            }
            None => eprintln!("[{}/{}] {what}", self.done, self.total),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn source_token(http: &reqwest::Client, args: &ImportArgs) -> anyhow::Result<Option<String>> {
    if let Some(token) = &args.token {
        return Ok(Some(token.clone()));
    }
    let Some(credential) = &args.credential else {
        return Ok(None);
    };
    let (id, secret) = credential
        .split_once(':')
        .context("--credential is CLIENT_ID:CLIENT_SECRET")?;
    let endpoint = args
        .oauth2_server_uri
        .clone()
        .unwrap_or_else(|| format!("{}/v1/oauth/tokens", args.from_uri.trim_end_matches('/')));
    let response = http
        .post(&endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", args.scope.as_str()),
        ])
        .send()
        .await
        .with_context(|| format!("asking {endpoint} for a token"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    match body["access_token"].as_str() {
        Some(token) if status.is_success() => Ok(Some(token.to_string())),
        _ => bail!("{endpoint} gave no token ({status}): {}", body["error"]),
    }
}

/// Runs an import and prints its report; fails when the catalogs cannot be reached or listed
/// (skipped objects are reported, not failures).
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut source = Catalog {
        http: http.clone(),
        base: args.from_uri.trim_end_matches('/').to_string(),
        prefix: None,
        token: source_token(&http, &args).await?,
        name: "source catalog",
    };
    source.configure(args.warehouse.as_deref()).await?;
    let mut target = Catalog {
        http,
        base: format!("{}/catalog", args.endpoint.trim_end_matches('/')),
        prefix: None,
        token: args.floe_token.clone(),
        name: "Floe catalog",
    };
    target.configure(Some(&args.into)).await?;

    // Everything to import, parents before children.
    let roots: Vec<Vec<String>> = if args.namespaces.is_empty() {
        vec![Vec::new()]
    } else {
        args.namespaces
            .iter()
            .map(|n| n.split('.').map(str::to_string).collect())
            .collect()
    };
    let mut namespaces: Vec<Vec<String>> = Vec::new();
    for root in roots {
        let mut queue = vec![root.clone()];
        if !root.is_empty() {
            let answer = source
                .get(&format!("namespaces/{}", namespace_segment(&root)), &[])
                .await?;
            if answer.status != 200 {
                bail!(
                    "namespace {} of the source: {}",
                    root.join("."),
                    answer.message()
                );
            }
            namespaces.push(root);
        }
        while let Some(parent) = queue.pop() {
            let query: Vec<(&str, String)> = if parent.is_empty() {
                Vec::new()
            } else {
                vec![("parent", parent.join("\u{1f}"))]
            };
            let children = source
                .list("namespaces", "namespaces", &query)
                .await?
                .unwrap_or_default();
            for child in children {
                let levels = levels_of(&child);
                // Some catalogs list every namespace at the top level; keep only children.
                if levels.len() != parent.len() + 1 || !levels.starts_with(&parent) {
                    continue;
                }
                if !namespaces.contains(&levels) {
                    namespaces.push(levels.clone());
                    queue.push(levels);
                }
            }
        }
    }
    namespaces.sort_by_key(|n| n.len());
    let mut objects: Vec<(Vec<String>, Vec<String>, Vec<String>)> = Vec::new();
    let mut views_supported = true;
    for ns in &namespaces {
        let segment = namespace_segment(ns);
        let tables: Vec<String> = source
            .list(&format!("namespaces/{segment}/tables"), "identifiers", &[])
            .await?
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i["name"].as_str().map(str::to_string))
            .collect();
        let views: Vec<String> = match source
            .list(&format!("namespaces/{segment}/views"), "identifiers", &[])
            .await?
        {
            Some(views) => views
                .iter()
                .filter_map(|i| i["name"].as_str().map(str::to_string))
                .collect(),
            None => {
                views_supported = false;
                Vec::new()
            }
        };
        objects.push((ns.clone(), tables, views));
    }
    let total = namespaces.len()
        + objects
            .iter()
            .map(|(_, t, v)| t.len() + v.len())
            .sum::<usize>();
    eprintln!(
        "importing {} namespaces, {} tables and {} views into {}",
        namespaces.len(),
        objects.iter().map(|(_, t, _)| t.len()).sum::<usize>(),
        objects.iter().map(|(_, _, v)| v.len()).sum::<usize>(),
        args.into
    );
    let mut progress = Progress::new(total as u64);
    let mut report = Report::default();
    for (ns, tables, views) in &objects {
        let name = ns.join(".");
        import_namespace(&source, &target, ns, &mut report).await?;
        progress.step(&format!("namespace {name}"));
        for table in tables {
            import_tabular(&source, &target, ns, table, Kind::Table, &mut report).await?;
            progress.step(&format!("table {name}.{table}"));
        }
        for view in views {
            import_tabular(&source, &target, ns, view, Kind::View, &mut report).await?;
            progress.step(&format!("view {name}.{view}"));
        }
    }
    progress.finish();
    println!(
        "imported {} namespaces, {} tables and {} views; {} already there",
        report.namespaces, report.tables, report.views, report.already
    );
    if !views_supported {
        println!("the source catalog lists no views (it does not serve the view endpoints)");
    }
    if !report.skipped.is_empty() {
        println!("skipped {}:", report.skipped.len());
        for (what, why) in &report.skipped {
            println!("  {what}: {why}");
        }
    }
    Ok(())
}

async fn import_namespace(
    source: &Catalog,
    target: &Catalog,
    ns: &[String],
    report: &mut Report,
) -> anyhow::Result<()> {
    let segment = namespace_segment(ns);
    let answer = source.get(&format!("namespaces/{segment}"), &[]).await?;
    if answer.status != 200 {
        report.skipped.push((
            format!("namespace {}", ns.join(".")),
            format!("the source could not read it: {}", answer.message()),
        ));
        return Ok(());
    }
    let properties = answer.body["properties"].clone();
    let properties = if properties.is_object() {
        properties
    } else {
        json!({})
    };
    let created = target
        .post(
            "namespaces",
            &json!({ "namespace": ns, "properties": properties }),
        )
        .await?;
    match created.status {
        200 => report.namespaces += 1,
        409 => report.already += 1,
        _ => report
            .skipped
            .push((format!("namespace {}", ns.join(".")), created.message())),
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Table,
    View,
}

async fn import_tabular(
    source: &Catalog,
    target: &Catalog,
    ns: &[String],
    name: &str,
    kind: Kind,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (collection, register, label) = match kind {
        Kind::Table => ("tables", "register", "table"),
        Kind::View => ("views", "register-view", "view"),
    };
    let what = format!("{label} {}.{name}", ns.join("."));
    let segment = namespace_segment(ns);
    let path = format!("namespaces/{segment}/{collection}/{}", encode(name));
    let loaded = source.get(&path, &[]).await?;
    let location = match loaded.body["metadata-location"].as_str() {
        Some(location) if loaded.status == 200 => location.to_string(),
        Some(_) | None if loaded.status == 200 => {
            report
                .skipped
                .push((what, "the source gave no metadata location".into()));
            return Ok(());
        }
        _ => {
            report.skipped.push((
                what,
                format!("the source could not load it: {}", loaded.message()),
            ));
            return Ok(());
        }
    };
    let registered = target
        .post(
            &format!("namespaces/{segment}/{register}"),
            &json!({ "name": name, "metadata-location": location }),
        )
        .await?;
    match registered.status {
        200 => match kind {
            Kind::Table => report.tables += 1,
            Kind::View => report.views += 1,
        },
        409 => {
            // Imported before (an interrupted run), or a different object under the name.
            let existing = target.get(&path, &[]).await?;
            if existing.body["metadata-location"].as_str() == Some(location.as_str()) {
                report.already += 1;
            } else {
                report.skipped.push((
                    what,
                    "Floe already has an object of that name with other metadata".into(),
                ));
            }
        }
        _ => report.skipped.push((what, registered.message())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(namespace_segment(&["a".into(), "b".into()]), "a%1Fb");
        assert_eq!(encode("Sales_Prod-1.x~"), "Sales_Prod-1.x~");
    }
}
