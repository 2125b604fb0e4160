//! Format v3 through the REST API: row lineage (the catalog checks each snapshot's
//! `first-row-id` against the table's `next-row-id` and advances it; a snapshot whose row ids a
//! concurrent commit took is a 409 the client retries), default values, nanosecond timestamps,
//! upgrades from v2, and the types the catalog's model does not know (`variant`, `geometry`,
//! `geography`, `unknown`) passed through as clients wrote them.

use serde_json::{Value, json};

use crate::common::{Backend, TestApp, expect_error};

on_both_backends!(
    v3_tables_keep_row_lineage_and_defaults,
    v3_types_the_model_cannot_parse_pass_through,
    v3_types_survive_a_merge_that_composes
);

fn snapshot(id: i64, parent: Option<i64>, sequence: i64, first_row_id: u64, rows: u64) -> Value {
    let mut s = json!({
        "snapshot-id": id, "sequence-number": sequence,
        "timestamp-ms": chrono::Utc::now().timestamp_millis(),
        "manifest-list": format!("{{location}}/metadata/snap-{id}.avro"),
        "summary": {"operation": "append"}, "schema-id": 0,
        "first-row-id": first_row_id, "added-rows": rows
    });
    if let Some(parent) = parent {
        s["parent-snapshot-id"] = parent.into();
    }
    s
}

async fn v3_tables_keep_row_lineage_and_defaults(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    let response = app
        .post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
        .await;
    assert_eq!(response.status(), 200);

    // Create: defaults and nanosecond timestamps pass through.
    let schema = json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": false, "type": "long",
         "initial-default": 5, "write-default": 7},
        {"id": 2, "name": "at", "required": false, "type": "timestamptz_ns"},
        {"id": 3, "name": "s", "required": false, "type": "string", "write-default": "x"}
    ]});
    let response = app
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "t", "schema": schema, "properties": {"format-version": "3"}}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let created: Value = response.json().await.unwrap();
    let metadata = &created["metadata"];
    assert_eq!(metadata["format-version"], 3);
    assert_eq!(metadata["next-row-id"], 0);
    assert_eq!(metadata["schemas"][0]["fields"], schema["fields"]);
    let location = metadata["location"].as_str().unwrap().to_string();
    let table = format!("{base}/namespaces/ns/tables/t");
    let with_location = |s: Value| -> Value {
        serde_json::from_str(&s.to_string().replace("{location}", &location)).unwrap()
    };

    // Commits: each snapshot's rows follow the table's next-row-id, which advances.
    let mut parent = None;
    for (n, rows) in [(1_i64, 10_u64), (2, 5), (3, 20)] {
        let first_row_id = match n {
            1 => 0,
            2 => 10,
            _ => 15,
        };
        let response = app
            .post(
                &table,
                &json!({"requirements": [], "updates": [
                    {"action": "add-snapshot",
                     "snapshot": with_location(snapshot(n, parent, n, first_row_id, rows))},
                    {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch",
                     "snapshot-id": n}
                ]}),
            )
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        parent = Some(n);
    }
    let loaded: Value = app.get(&table).await.json().await.unwrap();
    assert_eq!(loaded["metadata"]["next-row-id"], 35);
    let last = loaded["metadata"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["snapshot-id"] == 3)
        .unwrap()
        .clone();
    assert_eq!(
        (&last["first-row-id"], &last["added-rows"]),
        (&json!(15), &json!(20))
    );
    // The stored file (written incrementally) says the same.
    let file = loaded["metadata-location"].as_str().unwrap();
    let stored: Value =
        serde_json::from_slice(&std::fs::read(file.strip_prefix("file://").unwrap()).unwrap())
            .unwrap();
    assert_eq!(stored, loaded["metadata"]);

    // Rows numbered from a stale next-row-id (another commit took them): 409, nothing changes.
    let response = app
        .post(
            &table,
            &json!({"requirements": [], "updates": [
                {"action": "add-snapshot", "snapshot": with_location(snapshot(4, Some(3), 4, 30, 5))}
            ]}),
        )
        .await;
    let (kind, message) = expect_error(response, 409).await;
    assert_eq!(kind, "CommitFailedException");
    assert!(message.contains("refresh and retry"), "{message}");
    let again: Value = app.get(&table).await.json().await.unwrap();
    assert_eq!(again["metadata"]["next-row-id"], 35);
    // A v3 snapshot without row ids is refused.
    let mut bare = with_location(snapshot(5, Some(3), 4, 0, 0));
    bare.as_object_mut().unwrap().remove("first-row-id");
    let response = app
        .post(
            &table,
            &json!({"requirements": [], "updates": [{"action": "add-snapshot", "snapshot": bare}]}),
        )
        .await;
    expect_error(response, 400).await;

    // A required column with an initial default (v3 allows it).
    let response = app
        .post(
            &table,
            &json!({"requirements": [], "updates": [
                {"action": "add-schema", "schema": {"type": "struct", "schema-id": 1, "fields": [
                    schema["fields"][0], schema["fields"][1], schema["fields"][2],
                    {"id": 4, "name": "added", "required": true, "type": "int",
                     "initial-default": 42, "write-default": 1}]}},
                {"action": "set-current-schema", "schema-id": -1}
            ]}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    let added = &body["metadata"]["schemas"][1]["fields"][3];
    assert_eq!(
        (&added["initial-default"], &added["write-default"]),
        (&json!(42), &json!(1))
    );

    // Upgrade from v2: row lineage starts at 0.
    let response = app
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "old", "schema": {"type": "struct", "fields": [
                {"id": 1, "name": "id", "required": false, "type": "long"}]}}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .post(
            &format!("{base}/namespaces/ns/tables/old"),
            &json!({"requirements": [], "updates": [
                {"action": "upgrade-format-version", "format-version": 3}]}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["metadata"]["format-version"], 3);
    assert_eq!(body["metadata"]["next-row-id"], 0);
}

/// Every field of every schema of a metadata document: (name path, type JSON), in order.
fn typed_fields(schema: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, ty: &Value, out: &mut Vec<(String, Value)>) {
        match ty.get("type").and_then(Value::as_str) {
            Some("struct") => {
                for f in ty["fields"].as_array().unwrap() {
                    let name = format!("{prefix}{}", f["name"].as_str().unwrap());
                    // Nested types by kind: create gives the table fresh field ids.
                    let ty = f["type"].get("type").unwrap_or(&f["type"]).clone();
                    out.push((name.clone(), ty));
                    walk(&format!("{name}."), &f["type"], out);
                }
            }
            Some("list") => {
                out.push((format!("{prefix}element"), ty["element"].clone()));
                walk(&format!("{prefix}element."), &ty["element"], out);
            }
            Some("map") => {
                for part in ["key", "value"] {
                    out.push((format!("{prefix}{part}"), ty[part].clone()));
                    walk(&format!("{prefix}{part}."), &ty[part], out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", schema, &mut out);
    out
}

fn no_carrier_properties(metadata: &Value) {
    let text = metadata.to_string();
    assert!(!text.contains("floe.type."), "{text}");
    assert!(!text.contains("fixed[46"), "a placeholder escaped: {text}");
}

async fn v3_types_the_model_cannot_parse_pass_through(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_local_warehouse("lake").await;
    let base = format!("/catalog/v1/{}", app.prefix("lake").await);
    let response = app
        .post(&format!("{base}/namespaces"), &json!({"namespace": ["ns"]}))
        .await;
    assert_eq!(response.status(), 200);
    // Ids not in the order the catalog assigns them on create, nested types, parameters.
    let schema = json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"},
        {"id": 9, "name": "v", "required": false, "type": "variant"},
        {"id": 3, "name": "g", "required": false, "type": "geometry(srid:4326)"},
        {"id": 4, "name": "geo", "required": false, "type": "geography(srid:4269, karney)"},
        {"id": 5, "name": "u", "required": false, "type": "unknown", "initial-default": null},
        {"id": 6, "name": "s", "required": false, "type": {"type": "struct", "fields": [
            {"id": 7, "name": "inner", "required": false, "type": "variant"},
            {"id": 8, "name": "f", "required": false, "type": "fixed[16]"}]}},
        {"id": 2, "name": "l", "required": false, "type": {"type": "list",
            "element-id": 10, "element": "geometry", "element-required": false}},
        {"id": 11, "name": "m", "required": false, "type": {"type": "map",
            "key-id": 12, "key": "string", "value-id": 13, "value": "variant",
            "value-required": false}}
    ]});
    let response = app
        .post(
            &format!("{base}/namespaces/ns/tables"),
            &json!({"name": "t", "schema": schema,
                    "partition-spec": {"fields": [
                        {"source-id": 1, "field-id": 1000, "name": "b", "transform": "bucket[4]"},
                        {"source-id": 9, "field-id": 1001, "name": "gone", "transform": "void"}]},
                    "properties": {"format-version": "3", "owner": "me"}}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let created: Value = response.json().await.unwrap();
    let fields = typed_fields(&schema);
    assert_eq!(typed_fields(&created["metadata"]["schemas"][0]), fields);
    assert_eq!(created["metadata"]["properties"], json!({"owner": "me"}));
    no_carrier_properties(&created);

    // The file engines read holds the types too.
    let file = created["metadata-location"].as_str().unwrap();
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(file.strip_prefix("file://").unwrap()).unwrap())
            .unwrap();
    assert_eq!(typed_fields(&on_disk["schemas"][0]), fields);
    no_carrier_properties(&on_disk);

    // Schema evolution keeps them (the crate sees placeholders; ids are the table's).
    let table = format!("{base}/namespaces/ns/tables/t");
    let mut evolved = created["metadata"]["schemas"][0].clone();
    evolved["schema-id"] = 1.into();
    let next_id = created["metadata"]["last-column-id"].as_i64().unwrap() + 1;
    evolved["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": next_id, "name": "v2", "required": false, "type": "geography"}));
    let response = app
        .post(
            &table,
            &json!({"requirements": [{"type": "assert-current-schema-id", "current-schema-id": 0}],
                    "updates": [{"action": "add-schema", "schema": evolved},
                                {"action": "set-current-schema", "schema-id": -1}]}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        typed_fields(&body["metadata"]["schemas"][1]),
        typed_fields(&evolved)
    );
    assert_eq!(typed_fields(&body["metadata"]["schemas"][0]), fields);
    no_carrier_properties(&body);

    // Commits that do not touch schemas (the incremental writer), in a transaction too.
    let response = app
        .post(
            &format!("{base}/transactions/commit"),
            &json!({"table-changes": [{"identifier": {"namespace": ["ns"], "name": "t"},
                "requirements": [], "updates": [
                    {"action": "set-properties", "updates": {"k": "v"}}]}]}),
        )
        .await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let response = app
        .post(
            &table,
            &json!({"requirements": [], "updates": [
                {"action": "remove-properties", "removals": ["k"]}]}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let loaded: Value = app.get(&table).await.json().await.unwrap();
    assert_eq!(typed_fields(&loaded["metadata"]["schemas"][0]), fields);
    assert_eq!(
        typed_fields(&loaded["metadata"]["schemas"][1]),
        typed_fields(&evolved)
    );
    assert_eq!(loaded["metadata"]["properties"], json!({"owner": "me"}));
    no_carrier_properties(&loaded);
    let location = loaded["metadata-location"].clone();

    // What the spec forbids, and what would forge a carried type: 400, nothing written.
    let refused = [
        json!({"updates": [{"action": "set-properties", "updates": {"floe.type.1": "variant"}}]}),
        json!({"updates": [{"action": "remove-properties", "removals": ["floe.type.1"]}]}),
        json!({"updates": [{"action": "add-spec", "spec": {"fields": [
            {"source-id": 3, "field-id": 1002, "name": "g_id", "transform": "identity"}]}}]}),
        json!({"updates": [{"action": "add-sort-order", "sort-order": {"order-id": 1, "fields": [
            {"source-id": 9, "transform": "identity", "direction": "asc",
             "null-order": "nulls-first"}]}}]}),
        json!({"updates": [{"action": "add-schema", "schema": {"type": "struct", "fields": [
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 99, "name": "w", "required": false, "type": "variant",
             "write-default": {"a": 1}}]}}]}),
        json!({"updates": [{"action": "add-schema", "schema": {"type": "struct", "fields": [
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 99, "name": "w", "required": true, "type": "unknown"}]}}]}),
        json!({"updates": [{"action": "add-schema", "schema": {"type": "struct", "fields": [
            {"id": 99, "name": "w", "required": false, "type": "fixed[4611686018427387904]"}]}}]}),
    ];
    for body in refused {
        let response = app.post(&table, &body).await;
        let (kind, message) = expect_error(response, 400).await;
        assert_eq!(kind, "BadRequestException", "{body}: {message}");
    }
    let after: Value = app.get(&table).await.json().await.unwrap();
    assert_eq!(after["metadata-location"], location);

    // Creates that break the same rules, or put the types in a v2 table.
    for (name, properties, spec) in [
        ("v2", json!({"format-version": "2"}), json!({"fields": []})),
        (
            "forged",
            json!({"format-version": "3", "floe.type.7": "variant"}),
            json!({"fields": []}),
        ),
        (
            "bucketed",
            json!({"format-version": "3"}),
            json!({"fields": [{"source-id": 9, "field-id": 1000, "name": "b",
                               "transform": "bucket[2]"}]}),
        ),
    ] {
        let response = app
            .post(
                &format!("{base}/namespaces/ns/tables"),
                &json!({"name": name, "schema": schema, "partition-spec": spec,
                        "properties": properties}),
            )
            .await;
        let (kind, message) = expect_error(response, 400).await;
        assert_eq!(kind, "BadRequestException", "{name}: {message}");
        let response = app
            .get(&format!("{base}/namespaces/ns/tables/{name}"))
            .await;
        assert_eq!(response.status(), 404, "{name} was created");
    }

    // Register brings the file back with its types.
    let file = after["metadata-location"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&table).await.status(), 204);
    let response = app
        .post(
            &format!("{base}/namespaces/ns/register"),
            &json!({"name": "back", "metadata-location": file}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let back: Value = response.json().await.unwrap();
    assert_eq!(typed_fields(&back["metadata"]["schemas"][0]), fields);
    assert_eq!(
        typed_fields(&back["metadata"]["schemas"][1]),
        typed_fields(&evolved)
    );
    no_carrier_properties(&back);

    // Planning a scan that selects the columns works on the table's placeholders.
    let response = app
        .post(
            &format!("{base}/namespaces/ns/tables/back/plan"),
            &json!({"select": ["id", "v", "g"]}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // Null checks on them plan (by null counts); comparisons with values are refused.
    let plan = format!("{base}/namespaces/ns/tables/back/plan");
    for filter in [
        json!({"type": "is-null", "term": "v"}),
        json!({"type": "not-null", "term": "l.element"}),
    ] {
        let response = app.post(&plan, &json!({"filter": filter})).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let response = app
        .post(
            &plan,
            &json!({"filter": {"type": "eq", "term": "g", "value": "abc"}}),
        )
        .await;
    let (_, message) = expect_error(response, 400).await;
    assert!(message.contains("cannot be compared"), "{message}");
    assert!(
        !message.contains("fixed"),
        "a stand-in type escaped: {message}"
    );

    // Views: the same types in a view's schema.
    let view_schema = json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "v", "required": false, "type": "variant"},
        {"id": 2, "name": "g", "required": false, "type": "geometry(srid:3857)"}]});
    let response = app
        .post(
            &format!("{base}/namespaces/ns/views"),
            &json!({"name": "vw", "schema": view_schema, "properties": {"a": "b"},
                    "view-version": {"version-id": 1, "schema-id": 0,
                        "timestamp-ms": chrono::Utc::now().timestamp_millis(),
                        "summary": {"engine-name": "test"},
                        "default-namespace": ["ns"],
                        "representations": [{"type": "sql", "sql": "select v, g from back",
                                             "dialect": "spark"}]}}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let view: Value = app
        .get(&format!("{base}/namespaces/ns/views/vw"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        typed_fields(&view["metadata"]["schemas"][0]),
        typed_fields(&view_schema)
    );
    assert_eq!(view["metadata"]["properties"], json!({"a": "b"}));
    no_carrier_properties(&view);
}

async fn v3_types_survive_a_merge_that_composes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_local_warehouse("lake").await;
    let main = format!("/catalog/v1/{}", app.prefix("lake").await);
    let dev = format!("/catalog/v1/{id}@dev");
    let response = app
        .post(&format!("{main}/namespaces"), &json!({"namespace": ["ns"]}))
        .await;
    assert_eq!(response.status(), 200);
    let schema = json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": false, "type": "long"},
        {"id": 2, "name": "v", "required": false, "type": "variant"}]});
    let response = app
        .post(
            &format!("{main}/namespaces/ns/tables"),
            &json!({"name": "t", "schema": schema, "properties": {"format-version": "3"}}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let response = app
        .post(
            &format!("/management/v1/warehouses/{id}/branches"),
            &json!({"name": "dev", "from": "main"}),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    // dev evolves the schema with another carried type; main changes a property.
    let mut evolved = schema.clone();
    evolved["schema-id"] = 1.into();
    evolved["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": 3, "name": "shape", "required": false, "type": "geometry(srid:3857)"}));
    let response = app
        .post(
            &format!("{dev}/namespaces/ns/tables/t"),
            &json!({"requirements": [], "updates": [
                {"action": "add-schema", "schema": evolved},
                {"action": "set-current-schema", "schema-id": -1}]}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let response = app
        .post(
            &format!("{main}/namespaces/ns/tables/t"),
            &json!({"requirements": [], "updates": [
                {"action": "set-properties", "updates": {"owner": "main"}}]}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let response = app
        .post(
            &format!("/management/v1/warehouses/{id}/merge"),
            &json!({"source": "dev", "target": "main"}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let merged: Value = response.json().await.unwrap();
    assert_eq!(merged["fast-forward"], false, "{merged}");
    let loaded: Value = app
        .get(&format!("{main}/namespaces/ns/tables/t"))
        .await
        .json()
        .await
        .unwrap();
    let metadata = &loaded["metadata"];
    let current = metadata["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["schema-id"] == metadata["current-schema-id"])
        .unwrap();
    assert_eq!(typed_fields(current), typed_fields(&evolved));
    assert_eq!(metadata["properties"], json!({"owner": "main"}));
    no_carrier_properties(&loaded);
    // The table takes commits after the merge (its stored metadata parses again).
    let response = app
        .post(
            &format!("{main}/namespaces/ns/tables/t"),
            &json!({"requirements": [], "updates": [
                {"action": "set-properties", "updates": {"after": "merge"}}]}),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}
