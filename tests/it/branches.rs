//! The branching index over HTTP, on both backends: commits for every change, branches that read
//! through their fork point, read-only tags and commits, diffs, merges and resets.

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, expect_error, purge_outcomes};

on_both_backends!(
    every_change_is_a_commit_on_its_branch,
    branches_see_their_fork_point_and_keep_their_own_changes,
    tags_and_commits_read_as_of_their_point_and_refuse_writes,
    merges_take_one_sided_changes_and_compose_or_refuse_two_sided_ones,
    diff_reset_and_delete,
    ref_names_and_unknown_refs_are_refused_clearly,
    purge_on_a_branch_keeps_shared_files,
    the_cli_drives_branches_and_merges,
);

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": false, "type": "long"}
    ]})
}

struct Lake {
    id: String,
    main: String,
}

impl Lake {
    async fn new(app: &TestApp) -> Lake {
        let id = app.create_local_warehouse("lake").await;
        let main = format!("/catalog/v1/{}", app.prefix("lake").await);
        Lake { id, main }
    }

    fn on(&self, reference: &str) -> String {
        format!("/catalog/v1/{}@{reference}", self.id)
    }

    fn api(&self, path: &str) -> String {
        format!("/management/v1/warehouses/{}/{path}", self.id)
    }
}

async fn ok(response: reqwest::Response, status: u16) -> Value {
    let code = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(code, status, "{text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

async fn create_namespace(app: &TestApp, base: &str, ns: &str) {
    ok(
        app.post(&format!("{base}/namespaces"), &json!({"namespace": [ns]}))
            .await,
        200,
    )
    .await;
}

async fn create_table(app: &TestApp, base: &str, ns: &str, name: &str) -> Value {
    ok(
        app.post(
            &format!("{base}/namespaces/{ns}/tables"),
            &json!({"name": name, "schema": schema()}),
        )
        .await,
        200,
    )
    .await
}

async fn set_property(app: &TestApp, base: &str, table: &str, key: &str, value: &str) -> Value {
    ok(
        app.post(
            &format!("{base}/namespaces/ns/tables/{table}"),
            &json!({"requirements": [], "updates": [
                {"action": "set-properties", "updates": {key: value}}]}),
        )
        .await,
        200,
    )
    .await
}

async fn load(app: &TestApp, base: &str, table: &str) -> reqwest::Response {
    app.get(&format!("{base}/namespaces/ns/tables/{table}"))
        .await
}

async fn location_of(app: &TestApp, base: &str, table: &str) -> String {
    let body = ok(load(app, base, table).await, 200).await;
    body["metadata-location"].as_str().unwrap().to_string()
}

async fn property(app: &TestApp, base: &str, table: &str, key: &str) -> Option<String> {
    let body = ok(load(app, base, table).await, 200).await;
    body["metadata"]["properties"][key]
        .as_str()
        .map(str::to_string)
}

async fn tables(app: &TestApp, base: &str) -> Vec<String> {
    let body = ok(app.get(&format!("{base}/namespaces/ns/tables")).await, 200).await;
    body["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

async fn branch(app: &TestApp, lake: &Lake, name: &str, from: &str) -> Value {
    ok(
        app.post(&lake.api("branches"), &json!({"name": name, "from": from}))
            .await,
        201,
    )
    .await
}

async fn head(app: &TestApp, lake: &Lake, name: &str) -> String {
    let body = ok(app.get(&lake.api(&format!("branches/{name}"))).await, 200).await;
    body["commit-id"].as_str().unwrap().to_string()
}

async fn every_change_is_a_commit_on_its_branch(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = Lake::new(&app).await;
    create_namespace(&app, &lake.main, "ns").await;
    create_table(&app, &lake.main, "ns", "t").await;
    set_property(&app, &lake.main, "t", "owner", "bi").await;
    ok(
        app.post(
            &format!("{}/tables/rename", lake.main),
            &json!({"source": {"namespace": ["ns"], "name": "t"},
                    "destination": {"namespace": ["ns"], "name": "u"}}),
        )
        .await,
        204,
    )
    .await;
    ok(
        app.delete(&format!("{}/namespaces/ns/tables/u", lake.main))
            .await,
        204,
    )
    .await;

    let log = ok(app.get(&lake.api("commits?ref=main")).await, 200).await;
    let commits = log["commits"].as_array().unwrap();
    let messages: Vec<&str> = commits
        .iter()
        .map(|c| c["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "drop table ns.u",
            "rename table ns.t to ns.u",
            "commit table ns.t",
            "create table ns.t",
            "create namespace ns",
            "create warehouse"
        ]
    );
    // Each commit's parent is the one before it; the first has none.
    for pair in commits.windows(2) {
        assert_eq!(pair[0]["parents"], json!([pair[1]["id"]]));
    }
    assert_eq!(commits.last().unwrap()["parents"], json!([]));
    assert_eq!(commits[0]["author"], "anonymous");
    let rename = &commits[1]["changes"];
    assert_eq!(rename[0]["op"], "drop");
    assert_eq!(rename[0]["name"], "t");
    assert_eq!(rename[1]["op"], "create");
    assert_eq!(rename[1]["name"], "u");
    assert!(
        commits[2]["changes"][0]["metadata-location"]
            .as_str()
            .unwrap()
            .ends_with(".metadata.json")
    );
    // A multi-table transaction is one commit.
    create_table(&app, &lake.main, "ns", "a").await;
    create_table(&app, &lake.main, "ns", "b").await;
    let change = |name: &str| {
        json!({"identifier": {"namespace": ["ns"], "name": name}, "requirements": [],
               "updates": [{"action": "set-properties", "updates": {"k": "v"}}]})
    };
    ok(
        app.post(
            &format!("{}/transactions/commit", lake.main),
            &json!({"table-changes": [change("a"), change("b")]}),
        )
        .await,
        204,
    )
    .await;
    let log = ok(app.get(&lake.api("commits?page-size=1")).await, 200).await;
    let last = &log["commits"][0];
    assert_eq!(last["message"], "commit 2 tables");
    assert_eq!(last["changes"].as_array().unwrap().len(), 2);
    // Paging walks the whole log once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("commits?page-size=3&page-token={t}"),
            None => "commits?page-size=3".to_string(),
        };
        let page = ok(app.get(&lake.api(&path)).await, 200).await;
        for c in page["commits"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_string());
        }
        match page["next-page-token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 9, "{seen:?}");
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
    expect_error(app.get(&lake.api("commits?page-token=garbage")).await, 400).await;
}

async fn branches_see_their_fork_point_and_keep_their_own_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = Lake::new(&app).await;
    create_namespace(&app, &lake.main, "ns").await;
    create_table(&app, &lake.main, "ns", "t").await;
    create_table(&app, &lake.main, "ns", "gone").await;
    set_property(&app, &lake.main, "t", "stage", "one").await;
    let at_fork = location_of(&app, &lake.main, "t").await;
    let made = branch(&app, &lake, "dev", "main").await;
    assert_eq!(made["type"], "branch");
    assert_eq!(
        made["commit-id"].as_str().unwrap(),
        head(&app, &lake, "main").await
    );
    let dev = lake.on("dev");
    // The config endpoint hands out the branch's prefix.
    let config = ok(app.get("/catalog/v1/config?warehouse=lake@dev").await, 200).await;
    assert_eq!(
        config["overrides"]["prefix"].as_str().unwrap(),
        format!("{}@dev", lake.id)
    );

    // Main moves on; the branch still sees the fork point (its metadata read from the file).
    set_property(&app, &lake.main, "t", "stage", "two").await;
    assert_eq!(location_of(&app, &dev, "t").await, at_fork);
    assert_eq!(
        property(&app, &dev, "t", "stage").await.as_deref(),
        Some("one")
    );
    ok(
        app.delete(&format!("{}/namespaces/ns/tables/gone", lake.main))
            .await,
        204,
    )
    .await;
    assert_eq!(tables(&app, &dev).await, ["gone", "t"]);
    assert_eq!(tables(&app, &lake.main).await, ["t"]);

    // The branch's own changes stay on it.
    set_property(&app, &dev, "t", "stage", "dev").await;
    assert_eq!(
        property(&app, &dev, "t", "stage").await.as_deref(),
        Some("dev")
    );
    assert_eq!(
        property(&app, &lake.main, "t", "stage").await.as_deref(),
        Some("two")
    );
    // A stale commit on the branch loses its compare-and-swap.
    let stale = ok(
        app.post(
            &format!("{dev}/namespaces/ns/tables/t"),
            &json!({"requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 1}],
                    "updates": []}),
        )
        .await,
        409,
    );
    drop(stale.await);
    create_table(&app, &dev, "ns", "only_dev").await;
    create_namespace(&app, &dev, "dev_ns").await;
    ok(
        app.delete(&format!("{dev}/namespaces/ns/tables/gone"))
            .await,
        204,
    )
    .await;
    assert_eq!(tables(&app, &dev).await, ["only_dev", "t"]);
    assert_eq!(tables(&app, &lake.main).await, ["t"]);
    expect_error(load(&app, &lake.main, "only_dev").await, 404).await;
    expect_error(
        app.get(&format!("{}/namespaces/dev_ns", lake.main)).await,
        404,
    )
    .await;
    let namespaces = ok(app.get(&format!("{dev}/namespaces")).await, 200).await;
    assert_eq!(namespaces["namespaces"], json!([["dev_ns"], ["ns"]]));
    // Dropping an inherited namespace's last tables on the branch leaves main's alone.
    ok(
        app.delete(&format!("{dev}/namespaces/ns/tables/t")).await,
        204,
    )
    .await;
    ok(
        app.delete(&format!("{dev}/namespaces/ns/tables/only_dev"))
            .await,
        204,
    )
    .await;
    ok(app.delete(&format!("{dev}/namespaces/ns")).await, 204).await;
    expect_error(app.get(&format!("{dev}/namespaces/ns")).await, 404).await;
    assert_eq!(tables(&app, &lake.main).await, ["t"]);
    // A branch of a branch sees its parent's state at its own fork point.
    let nested = branch(&app, &lake, "nested", "dev").await;
    assert_eq!(nested["type"], "branch");
    let namespaces = ok(
        app.get(&format!("{}/namespaces", lake.on("nested"))).await,
        200,
    )
    .await;
    assert_eq!(namespaces["namespaces"], json!([["dev_ns"]]));
}

async fn tags_and_commits_read_as_of_their_point_and_refuse_writes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = Lake::new(&app).await;
    create_namespace(&app, &lake.main, "ns").await;
    create_table(&app, &lake.main, "ns", "t").await;
    set_property(&app, &lake.main, "t", "v", "1").await;
    let commit = head(&app, &lake, "main").await;
    let tag = ok(
        app.post(&lake.api("tags"), &json!({"name": "v1"})).await,
        201,
    )
    .await;
    assert_eq!(tag["type"], "tag");
    assert_eq!(tag["commit-id"].as_str().unwrap(), commit);
    set_property(&app, &lake.main, "t", "v", "2").await;
    create_table(&app, &lake.main, "ns", "later").await;
    for point in [lake.on("v1"), lake.on(&commit)] {
        assert_eq!(property(&app, &point, "t", "v").await.as_deref(), Some("1"));
        assert_eq!(tables(&app, &point).await, ["t"]);
        let before = location_of(&app, &point, "t").await;
        let (kind, message) = expect_error(
            app.post(
                &format!("{point}/namespaces/ns/tables/t"),
                &json!({"requirements": [], "updates": [
                    {"action": "set-properties", "updates": {"v": "3"}}]}),
            )
            .await,
            403,
        )
        .await;
        assert_eq!(kind, "ForbiddenException");
        assert!(message.contains("read-only"), "{message}");
        expect_error(
            app.post(
                &format!("{point}/namespaces/ns/tables"),
                &json!({"name": "new", "schema": schema()}),
            )
            .await,
            403,
        )
        .await;
        expect_error(
            app.post(&format!("{point}/namespaces"), &json!({"namespace": ["x"]}))
                .await,
            403,
        )
        .await;
        expect_error(
            app.delete(&format!("{point}/namespaces/ns/tables/t")).await,
            403,
        )
        .await;
        assert_eq!(location_of(&app, &point, "t").await, before);
    }
    assert_eq!(
        property(&app, &lake.main, "t", "v").await.as_deref(),
        Some("2")
    );
    // A branch from a tag starts there.
    branch(&app, &lake, "fix", "v1").await;
    assert_eq!(
        property(&app, &lake.on("fix"), "t", "v").await.as_deref(),
        Some("1")
    );
    let tags = ok(app.get(&lake.api("tags")).await, 200).await;
    assert_eq!(tags["refs"].as_array().unwrap().len(), 1);
    ok(app.delete(&lake.api("tags/v1")).await, 204).await;
    expect_error(app.get("/catalog/v1/config?warehouse=lake@v1").await, 404).await;
}

async fn merges_take_one_sided_changes_and_compose_or_refuse_two_sided_ones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = Lake::new(&app).await;
    create_namespace(&app, &lake.main, "ns").await;
    create_table(&app, &lake.main, "ns", "both").await;
    create_table(&app, &lake.main, "ns", "dropped").await;
    create_table(&app, &lake.main, "ns", "clash").await;
    branch(&app, &lake, "dev", "main").await;
    let dev = lake.on("dev");
    set_property(&app, &dev, "both", "from-dev", "yes").await;
    set_property(&app, &lake.main, "both", "from-main", "yes").await;
    create_table(&app, &dev, "ns", "new").await;
    ok(
        app.delete(&format!("{dev}/namespaces/ns/tables/dropped"))
            .await,
        204,
    )
    .await;
    set_property(&app, &dev, "clash", "owner", "dev").await;
    set_property(&app, &lake.main, "clash", "owner", "main").await;

    // One conflict fails the whole merge: nothing changes, every conflict is named.
    let main_before = head(&app, &lake, "main").await;
    let locations_before = location_of(&app, &lake.main, "both").await;
    let response = app
        .post(
            &lake.api("merge"),
            &json!({"source": "dev", "target": "main"}),
        )
        .await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "MergeConflictException");
    assert_eq!(body["error"]["code"], 409);
    let conflicts = body["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{body}");
    assert_eq!(conflicts[0]["name"], "clash");
    assert!(
        conflicts[0]["reason"].as_str().unwrap().contains("owner"),
        "{body}"
    );
    assert_eq!(head(&app, &lake, "main").await, main_before);
    assert_eq!(
        location_of(&app, &lake.main, "both").await,
        locations_before
    );
    assert_eq!(tables(&app, &lake.main).await, ["both", "clash", "dropped"]);

    // Let the source win the clash: the rest merges as it composes.
    let merged = ok(
        app.post(
            &lake.api("merge"),
            &json!({"source": "dev", "target": "main", "strategy": "source-wins",
                    "message": "bring dev in"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(merged["fast-forward"], false);
    let outcome: std::collections::BTreeMap<String, String> = merged["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(outcome["both"], "merged");
    assert_eq!(outcome["new"], "taken");
    assert_eq!(outcome["dropped"], "removed");
    assert_eq!(outcome["clash"], "taken");
    assert_eq!(tables(&app, &lake.main).await, ["both", "clash", "new"]);
    assert_eq!(
        property(&app, &lake.main, "both", "from-dev")
            .await
            .as_deref(),
        Some("yes")
    );
    assert_eq!(
        property(&app, &lake.main, "both", "from-main")
            .await
            .as_deref(),
        Some("yes")
    );
    assert_eq!(
        property(&app, &lake.main, "clash", "owner")
            .await
            .as_deref(),
        Some("dev")
    );
    // One commit with two parents: main's previous head and dev's head.
    let commit_id = merged["commit-id"].as_str().unwrap();
    let commit = ok(
        app.get(&lake.api(&format!("commits/{commit_id}"))).await,
        200,
    )
    .await;
    assert_eq!(commit["message"], "bring dev in");
    assert_eq!(
        commit["parents"],
        json!([main_before, head(&app, &lake, "dev").await])
    );
    assert_eq!(head(&app, &lake, "main").await, commit_id);
    // The source is unchanged by the merge.
    assert_eq!(tables(&app, &dev).await, ["both", "clash", "new"]);
    assert_eq!(property(&app, &dev, "both", "from-main").await, None);
    // Merging again has nothing to do.
    let again = ok(
        app.post(
            &lake.api("merge"),
            &json!({"source": "dev", "target": "main"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(again["commit-id"], Value::Null);
    // A branch with no changes of its own since the base takes the source's as they are.
    branch(&app, &lake, "quiet", "main").await;
    set_property(&app, &lake.main, "new", "later", "yes").await;
    let ff = ok(
        app.post(
            &lake.api("merge"),
            &json!({"source": "main", "target": "quiet"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ff["fast-forward"], true);
    assert_eq!(
        property(&app, &lake.on("quiet"), "new", "later")
            .await
            .as_deref(),
        Some("yes")
    );
    // Tags are not merge targets; unknown sources are 404.
    ok(
        app.post(&lake.api("tags"), &json!({"name": "t1"})).await,
        201,
    )
    .await;
    expect_error(
        app.post(
            &lake.api("merge"),
            &json!({"source": "dev", "target": "t1"}),
        )
        .await,
        404,
    )
    .await;
    expect_error(
        app.post(
            &lake.api("merge"),
            &json!({"source": "nope", "target": "main"}),
        )
        .await,
        404,
    )
    .await;
    expect_error(
        app.post(
            &lake.api("merge"),
            &json!({"source": "dev", "target": "main", "strategy": "maybe"}),
        )
        .await,
        400,
    )
    .await;
}

async fn diff_reset_and_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = Lake::new(&app).await;
    create_namespace(&app, &lake.main, "ns").await;
    create_table(&app, &lake.main, "ns", "t").await;
    branch(&app, &lake, "dev", "main").await;
    let dev = lake.on("dev");
    let fork = head(&app, &lake, "dev").await;
    set_property(&app, &dev, "t", "k", "v").await;
    create_table(&app, &dev, "ns", "added").await;
    create_table(&app, &lake.main, "ns", "on_main").await;
    let diff = ok(app.get(&lake.api("diff?from=main&to=dev")).await, 200).await;
    let mut changes: Vec<(String, String)> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            ("added".to_string(), "added".to_string()),
            ("on_main".to_string(), "removed".to_string()),
            ("t".to_string(), "changed".to_string())
        ]
    );
    let t = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "t")
        .unwrap();
    assert_eq!(
        t["to-metadata-location"].as_str().unwrap(),
        location_of(&app, &dev, "t").await
    );
    // Reset the branch to its fork point: its own changes are gone from it.
    let reset = ok(
        app.post(&lake.api("branches/dev/reset"), &json!({"to": fork}))
            .await,
        200,
    )
    .await;
    assert_eq!(reset["commit-id"].as_str().unwrap(), fork);
    assert_eq!(tables(&app, &dev).await, ["t"]);
    assert_eq!(property(&app, &dev, "t", "k").await, None);
    expect_error(
        app.post(&lake.api("branches/main/reset"), &json!({"to": fork}))
            .await,
        409,
    )
    .await;
    // Deleting a branch keeps its commits readable; main stays.
    ok(app.delete(&lake.api("branches/dev")).await, 204).await;
    expect_error(app.get("/catalog/v1/config?warehouse=lake@dev").await, 404).await;
    expect_error(app.delete(&lake.api("branches/main")).await, 409).await;
    expect_error(app.delete(&lake.api("branches/dev")).await, 404).await;
    let branches = ok(app.get(&lake.api("branches")).await, 200).await;
    let names: Vec<&str> = branches["refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main"]);
    ok(app.get(&lake.api(&format!("commits/{fork}"))).await, 200).await;
}

async fn ref_names_and_unknown_refs_are_refused_clearly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = Lake::new(&app).await;
    for bad in ["a/b", "..", "", "-x", "a..b", "a b", "~x", &"x".repeat(200)] {
        expect_error(
            app.post(&lake.api("branches"), &json!({"name": bad})).await,
            400,
        )
        .await;
    }
    // A commit id is not a name: it already means that commit.
    expect_error(
        app.post(
            &lake.api("branches"),
            &json!({"name": uuid::Uuid::now_v7().to_string()}),
        )
        .await,
        400,
    )
    .await;
    branch(&app, &lake, "dev", "main").await;
    let (kind, _) = expect_error(
        app.post(&lake.api("branches"), &json!({"name": "dev"}))
            .await,
        409,
    )
    .await;
    assert_eq!(kind, "AlreadyExistsException");
    expect_error(
        app.post(&lake.api("branches"), &json!({"name": "x", "from": "nope"}))
            .await,
        404,
    )
    .await;
    expect_error(
        app.post(&lake.api("branches"), &json!({"name": "x", "extra": 1}))
            .await,
        400,
    )
    .await;
    expect_error(app.get("/catalog/v1/config?warehouse=lake@nope").await, 404).await;
    expect_error(
        app.get(&format!("{}/namespaces", lake.on("nope"))).await,
        404,
    )
    .await;
    expect_error(
        app.get(&format!(
            "{}/namespaces",
            lake.on(&uuid::Uuid::now_v7().to_string())
        ))
        .await,
        404,
    )
    .await;
    expect_error(
        app.get(&format!(
            "/management/v1/warehouses/{}/branches",
            uuid::Uuid::now_v7()
        ))
        .await,
        404,
    )
    .await;
}

async fn purge_on_a_branch_keeps_shared_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = Lake::new(&app).await;
    create_namespace(&app, &lake.main, "ns").await;
    create_table(&app, &lake.main, "ns", "shared").await;
    branch(&app, &lake, "dev", "main").await;
    let dev = lake.on("dev");
    create_table(&app, &dev, "ns", "mine").await;
    let shared = location_of(&app, &lake.main, "shared").await;
    let mine = location_of(&app, &dev, "mine").await;
    let path = |location: &str| std::path::PathBuf::from(location.trim_start_matches("file://"));
    assert!(path(&shared).exists());
    let uuid = async |base: &str, table: &str| {
        ok(load(&app, base, table).await, 200).await["metadata"]["table-uuid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (shared_uuid, mine_uuid) = (uuid(&lake.main, "shared").await, uuid(&dev, "mine").await);
    ok(
        app.delete(&format!(
            "{dev}/namespaces/ns/tables/shared?purgeRequested=true"
        ))
        .await,
        204,
    )
    .await;
    ok(
        app.delete(&format!(
            "{dev}/namespaces/ns/tables/mine?purgeRequested=true"
        ))
        .await,
        204,
    )
    .await;
    // Purges finish after the response: wait for each to be done, then look.
    assert_eq!(purge_outcomes(&mine_uuid, 1).await, ["deleted"]);
    assert_eq!(
        purge_outcomes(&shared_uuid, 1).await,
        ["kept: other refs still use the files"]
    );
    assert!(
        !path(&mine).exists(),
        "a table only the branch had is purged"
    );
    assert!(path(&shared).exists(), "main still uses {shared}");
    assert_eq!(location_of(&app, &lake.main, "shared").await, shared);
    // On main, a table a branch still sees keeps its files too.
    ok(
        app.delete(&format!(
            "{}/namespaces/ns/tables/shared?purgeRequested=true",
            lake.main
        ))
        .await,
        204,
    )
    .await;
    assert_eq!(
        purge_outcomes(&shared_uuid, 2).await[1],
        "kept: other refs still use the files"
    );
    assert!(
        path(&shared).exists(),
        "the branch's history still references it"
    );
}

/// Runs `floe <args>` against the test server; returns (exit code, stdout, stderr).
async fn floe_cli(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(args)
        .env("FLOE_ENDPOINT", app.url(""))
        .env("FLOE_WAREHOUSE", "lake")
        .output()
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn the_cli_drives_branches_and_merges(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let lake = Lake::new(&app).await;
    create_namespace(&app, &lake.main, "ns").await;
    create_table(&app, &lake.main, "ns", "t").await;
    let (code, out, err) = floe_cli(&app, &["branch", "create", "dev"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("created branch dev at "), "{out}");
    set_property(&app, &lake.on("dev"), "t", "k", "v").await;
    set_property(&app, &lake.main, "t", "k", "other").await;
    let (code, out, _) = floe_cli(&app, &["branch", "list"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        out.lines()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect::<Vec<_>>(),
        ["dev", "main"]
    );
    let (code, out, _) = floe_cli(&app, &["diff", "main", "dev"]).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "~ table     ns.t");
    // A conflict: exit 1, each conflict named, nothing changed.
    let before = head(&app, &lake, "main").await;
    let (code, _, err) = floe_cli(&app, &["merge", "dev", "--into", "main"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("table ns.t: both sides changed the properties k"),
        "{err}"
    );
    assert_eq!(head(&app, &lake, "main").await, before);
    let (code, out, err) = floe_cli(
        &app,
        &[
            "merge",
            "dev",
            "--strategy",
            "source-wins",
            "-m",
            "take dev",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("merged dev into main: commit "), "{out}");
    assert_eq!(
        property(&app, &lake.main, "t", "k").await.as_deref(),
        Some("v")
    );
    let (code, out, _) = floe_cli(&app, &["log", "--limit", "1", "--json"]).await;
    assert_eq!(code, 0);
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["commits"][0]["message"], "take dev");
    assert_eq!(log["commits"][0]["parents"].as_array().unwrap().len(), 2);
    let (code, _, err) = floe_cli(&app, &["branch", "create", "a/b"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 400"), "{err}");
    let (code, _, err) = floe_cli(&app, &["tag", "delete", "nope"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 404"), "{err}");
}
