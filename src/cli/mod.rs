//! `floe branch ...`, `floe tag ...`, `floe log`, `floe diff`, `floe merge`: a small client of a
//! running server's management API, in the style of lakeFS's `lakectl`. Warehouses are named as
//! in catalog clients (name in the default project, or id).

pub mod import;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Where the server is and which warehouse to work on.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The server's base URL.
    #[arg(long, env = "FLOE_ENDPOINT", default_value = "http://127.0.0.1:8181")]
    pub endpoint: String,
    /// A bearer token, when the server requires one.
    #[arg(long, env = "FLOE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The warehouse: its name (default project) or id.
    #[arg(long, short = 'w', env = "FLOE_WAREHOUSE", default_value = "demo")]
    pub warehouse: String,
    /// Print the server's JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum BranchCommand {
    /// List branches.
    List,
    /// Create a branch from a branch, tag or commit (default main).
    Create {
        name: String,
        #[arg(long)]
        from: Option<String>,
    },
    /// Delete a branch (its commits stay readable by id).
    Delete { name: String },
    /// Point a branch at a commit, branch or tag.
    Reset {
        name: String,
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TagCommand {
    /// List tags.
    List,
    /// Name a commit (of a branch, tag or commit id; default main).
    Create {
        name: String,
        #[arg(long)]
        from: Option<String>,
    },
    /// Delete a tag.
    Delete { name: String },
}

struct Client {
    http: reqwest::Client,
    target: Target,
}

impl Client {
    fn new(target: Target) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()?;
        Ok(Client { http, target })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/management/v1{path}",
            self.target.endpoint.trim_end_matches('/')
        )
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let request = match &self.target.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("reaching Floe at {}", self.target.endpoint))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, body))
    }

    /// Sends and fails on an error status, with the server's message.
    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let (status, body) = self.send(request).await?;
        if status >= 400 {
            bail!("{}", error_text(status, &body));
        }
        Ok(body)
    }

    /// The warehouse's id.
    async fn warehouse(&self) -> anyhow::Result<String> {
        if self.target.warehouse.parse::<uuid::Uuid>().is_ok() {
            return Ok(self.target.warehouse.clone());
        }
        let body = self.call(self.http.get(self.url("/warehouses"))).await?;
        body["warehouses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["name"] == self.target.warehouse.as_str())
            .and_then(|w| w["id"].as_str())
            .map(str::to_string)
            .with_context(|| format!("no warehouse named {:?}", self.target.warehouse))
    }

    async fn warehouse_url(&self, path: &str) -> anyhow::Result<String> {
        Ok(self.url(&format!("/warehouses/{}/{path}", self.warehouse().await?)))
    }

    fn print(&self, body: &Value, text: impl FnOnce(&Value) -> String) {
        if self.target.json {
            println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
        } else {
            print!("{}", text(body));
        }
    }
}

fn error_text(status: u16, body: &Value) -> String {
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    format!("HTTP {status}: {message}")
}

fn refs_text(body: &Value) -> String {
    let mut out = String::new();
    for r in body["refs"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<32} {}\n",
            r["name"].as_str().unwrap_or_default(),
            r["commit-id"].as_str().unwrap_or_default()
        ));
    }
    out
}

fn ref_text(verb: &str) -> impl FnOnce(&Value) -> String {
    move |r: &Value| {
        format!(
            "{verb} {} {} at {}\n",
            r["type"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default(),
            r["commit-id"].as_str().unwrap_or_default()
        )
    }
}

fn path_of(c: &Value) -> String {
    let mut path: Vec<String> = c["namespace"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    if let Some(name) = c["name"].as_str() {
        path.push(name.to_string());
    }
    path.join(".")
}

pub async fn branch(target: Target, command: BranchCommand) -> anyhow::Result<()> {
    let client = Client::new(target)?;
    match command {
        BranchCommand::List => {
            let body = client
                .call(client.http.get(client.warehouse_url("branches").await?))
                .await?;
            client.print(&body, refs_text);
        }
        BranchCommand::Create { name, from } => {
            let body = client
                .call(
                    client
                        .http
                        .post(client.warehouse_url("branches").await?)
                        .json(&json!({"name": name, "from": from})),
                )
                .await?;
            client.print(&body, ref_text("created"));
        }
        BranchCommand::Delete { name } => {
            client
                .call(
                    client
                        .http
                        .delete(client.warehouse_url(&format!("branches/{name}")).await?),
                )
                .await?;
            if !client.target.json {
                println!("deleted branch {name}");
            }
        }
        BranchCommand::Reset { name, to } => {
            let body = client
                .call(
                    client
                        .http
                        .post(
                            client
                                .warehouse_url(&format!("branches/{name}/reset"))
                                .await?,
                        )
                        .json(&json!({"to": to})),
                )
                .await?;
            client.print(&body, ref_text("reset"));
        }
    }
    Ok(())
}

pub async fn tag(target: Target, command: TagCommand) -> anyhow::Result<()> {
    let client = Client::new(target)?;
    match command {
        TagCommand::List => {
            let body = client
                .call(client.http.get(client.warehouse_url("tags").await?))
                .await?;
            client.print(&body, refs_text);
        }
        TagCommand::Create { name, from } => {
            let body = client
                .call(
                    client
                        .http
                        .post(client.warehouse_url("tags").await?)
                        .json(&json!({"name": name, "from": from})),
                )
                .await?;
            client.print(&body, ref_text("created"));
        }
        TagCommand::Delete { name } => {
            client
                .call(
                    client
                        .http
                        .delete(client.warehouse_url(&format!("tags/{name}")).await?),
                )
                .await?;
            if !client.target.json {
                println!("deleted tag {name}");
            }
        }
    }
    Ok(())
}

pub async fn log(target: Target, reference: Option<String>, limit: u32) -> anyhow::Result<()> {
    let client = Client::new(target)?;
    let mut query = vec![("page-size", limit.to_string())];
    if let Some(reference) = reference {
        query.push(("ref", reference));
    }
    let body = client
        .call(
            client
                .http
                .get(client.warehouse_url("commits").await?)
                .query(&query),
        )
        .await?;
    client.print(&body, |body| {
        let mut out = String::new();
        for c in body["commits"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "commit {}\nAuthor: {}\nDate:   {}\n",
                c["id"].as_str().unwrap_or_default(),
                c["author"].as_str().unwrap_or_default(),
                c["time"].as_str().unwrap_or_default()
            ));
            let parents = c["parents"].as_array().map(Vec::len).unwrap_or(0);
            if parents > 1 {
                out.push_str(&format!(
                    "Merge:  {}\n",
                    c["parents"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
            out.push_str(&format!(
                "\n    {}\n\n",
                c["message"].as_str().unwrap_or_default()
            ));
            for change in c["changes"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "    {:<7} {:<9} {}\n",
                    change["op"].as_str().unwrap_or_default(),
                    change["kind"].as_str().unwrap_or_default(),
                    path_of(change)
                ));
            }
            out.push('\n');
        }
        out
    });
    Ok(())
}

pub async fn diff(target: Target, from: String, to: String) -> anyhow::Result<()> {
    let client = Client::new(target)?;
    let body = client
        .call(
            client
                .http
                .get(client.warehouse_url("diff").await?)
                .query(&[("from", from), ("to", to)]),
        )
        .await?;
    client.print(&body, |body| {
        let mut out = String::new();
        for c in body["changes"].as_array().into_iter().flatten() {
            let sign = match c["change"].as_str() {
                Some("added") => "+",
                Some("removed") => "-",
                _ => "~",
            };
            out.push_str(&format!(
                "{sign} {:<9} {}\n",
                c["kind"].as_str().unwrap_or_default(),
                path_of(c)
            ));
        }
        out
    });
    Ok(())
}

pub async fn merge(
    target: Target,
    source: String,
    into: String,
    message: Option<String>,
    strategy: Option<String>,
) -> anyhow::Result<()> {
    let client = Client::new(target)?;
    let (status, body) = client
        .send(client.http.post(client.warehouse_url("merge").await?).json(
            &json!({"source": source, "target": into, "message": message,
                              "strategy": strategy}),
        ))
        .await?;
    if status == 409 && body["conflicts"].is_array() {
        if client.target.json {
            println!("{}", serde_json::to_string_pretty(&body)?);
        } else {
            eprintln!("merge of {source} into {into} conflicts; nothing was changed:");
            for c in body["conflicts"].as_array().into_iter().flatten() {
                eprintln!(
                    "  {} {}: {}",
                    c["kind"].as_str().unwrap_or_default(),
                    path_of(c),
                    c["reason"].as_str().unwrap_or_default()
                );
            }
        }
        bail!("merge conflicts");
    }
    if status >= 400 {
        bail!("{}", error_text(status, &body));
    }
    client.print(&body, |body| {
        let mut out = match body["commit-id"].as_str() {
            Some(commit) => format!(
                "merged {source} into {into}{}: commit {commit}\n",
                if body["fast-forward"] == true {
                    " (fast-forward)"
                } else {
                    ""
                }
            ),
            None => format!("{into} already has everything {source} has\n"),
        };
        for c in body["tables"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {:<7} {:<9} {}\n",
                c["change"].as_str().unwrap_or_default(),
                c["kind"].as_str().unwrap_or_default(),
                path_of(c)
            ));
        }
        out
    });
    Ok(())
}

/// Asks a server's `/health` (or `/ready`); the answer's status when it is 200.
pub async fn health(endpoint: &str, ready: bool, timeout_secs: u64) -> anyhow::Result<String> {
    let path = if ready { "ready" } else { "health" };
    let url = format!("{}/{path}", endpoint.trim_end_matches('/'));
    // A proxy set for the container's other traffic must not catch the probe.
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout_secs))
        .no_proxy()
        .build()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("asking {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    let said = body["status"].as_str().unwrap_or("no status").to_string();
    if !status.is_success() {
        bail!("{url} answered {status}: {said}");
    }
    Ok(said)
}
