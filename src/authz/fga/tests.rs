//! The assertions of `authz/floe.fga.yaml`, which OpenFGA's engine checks in CI, run one by one
//! against the built-in evaluator: the two must agree on every one.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
struct TupleDoc {
    user: String,
    relation: String,
    object: String,
}

#[derive(Deserialize)]
struct CheckDoc {
    user: String,
    object: String,
    assertions: BTreeMap<String, bool>,
}

#[derive(Deserialize)]
struct ListDoc {
    user: String,
    #[serde(rename = "type")]
    kind: String,
    assertions: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct TestDoc {
    name: String,
    #[serde(default)]
    tuples: Vec<TupleDoc>,
    #[serde(default)]
    check: Vec<CheckDoc>,
    #[serde(default)]
    list_objects: Vec<ListDoc>,
}

#[derive(Deserialize)]
struct StoreDoc {
    tuples: Vec<TupleDoc>,
    tests: Vec<TestDoc>,
}

#[test]
fn the_builtin_evaluator_passes_every_assertion_openfga_passes() {
    let doc: StoreDoc =
        serde_norway::from_str(include_str!("../../../authz/floe.fga.yaml")).unwrap();
    let model = Model::floe();
    let (mut checks, mut lists, mut failures) = (0, 0, Vec::new());
    for test in &doc.tests {
        let mut tuples = MemoryTuples::default();
        for t in doc.tuples.iter().chain(&test.tuples) {
            tuples.write(&t.user, &t.relation, &t.object).unwrap();
        }
        let eval = Evaluator {
            model: &model,
            tuples: &tuples,
        };
        for check in &test.check {
            let user = Subject::parse(&check.user).unwrap();
            let object = Subject::parse(&check.object).unwrap();
            for (relation, expected) in &check.assertions {
                assert!(
                    model.has_relation(&object.kind, relation),
                    "{}: {} has no relation {relation}",
                    test.name,
                    object.kind
                );
                checks += 1;
                let got = eval.check(&user, relation, &object).unwrap();
                if got != *expected {
                    failures.push(format!(
                        "{}: check {} {relation} {}: expected {expected}, got {got}",
                        test.name, check.user, check.object
                    ));
                }
            }
        }
        for list in &test.list_objects {
            let user = Subject::parse(&list.user).unwrap();
            for (relation, expected) in &list.assertions {
                lists += 1;
                let mut expected: Vec<String> = expected.clone();
                expected.sort();
                let got: Vec<String> = eval
                    .list_objects(&user, &list.kind, relation)
                    .unwrap()
                    .into_iter()
                    .map(|id| format!("{}:{id}", list.kind))
                    .collect();
                if got != expected {
                    failures.push(format!(
                        "{}: list {} {relation} {}: expected {expected:?}, got {got:?}",
                        test.name, list.user, list.kind
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The file is not silently emptied: it covers every relation of every type.
    assert!(
        checks >= 200 && lists >= 10,
        "{checks} checks, {lists} lists"
    );
    let mut asserted: HashSet<(String, String)> = HashSet::new();
    for test in &doc.tests {
        for check in &test.check {
            let kind = Subject::parse(&check.object).unwrap().kind;
            for relation in check.assertions.keys() {
                asserted.insert((kind.clone(), relation.clone()));
            }
        }
    }
    for kind in [
        "server",
        "project",
        "warehouse",
        "namespace",
        "table",
        "view",
    ] {
        for relation in model.relations(kind) {
            if matches!(relation, "parent" | "child") {
                continue;
            }
            assert!(
                asserted.contains(&(kind.to_string(), relation.to_string())),
                "authz/floe.fga.yaml asserts nothing of {kind}#{relation}"
            );
        }
    }
}

#[test]
fn grantable_relations_come_from_the_model() {
    let model = Model::floe();
    assert_eq!(
        model.grantable("table"),
        ["describe", "manage_grants", "modify", "ownership", "select"]
    );
    assert_eq!(model.grantable("server"), ["admin", "create_project"]);
    assert!(model.grantable("warehouse").contains(&"merge_protected"));
    assert!(!model.grantable("warehouse").contains(&"parent"));
    assert!(!model.grantable("warehouse").contains(&"can_merge"));
    assert!(model.accepts("namespace", "select", "role", Some("assignee")));
    assert!(!model.accepts("namespace", "select", "role", None));
    assert!(model.accepts("namespace", "parent", "warehouse", None));
    assert!(model.accepts("role", "assignee", "role", Some("assignee")));
}

#[test]
fn usersets_cycles_and_depth_are_handled() {
    let model = Model::from_json(
        r#"{"schema_version":"1.1","type_definitions":[
            {"type":"user"},
            {"type":"group","relations":{"member":{"this":{}}},
             "metadata":{"relations":{"member":{"directly_related_user_types":[{"type":"user"},{"type":"group","relation":"member"}]}}}},
            {"type":"doc",
             "metadata":{"relations":{
                "parent":{"directly_related_user_types":[{"type":"doc"}]},
                "viewer":{"directly_related_user_types":[{"type":"user"},{"type":"group","relation":"member"}]},
                "banned":{"directly_related_user_types":[{"type":"user"}]}}},
             "relations":{
                "parent":{"this":{}},
                "viewer":{"union":{"child":[{"this":{}},{"tupleToUserset":{"tupleset":{"relation":"parent"},"computedUserset":{"relation":"viewer"}}}]}},
                "banned":{"this":{}},
                "reader":{"difference":{"base":{"computedUserset":{"relation":"viewer"}},"subtract":{"computedUserset":{"relation":"banned"}}}},
                "both":{"intersection":{"child":[{"computedUserset":{"relation":"viewer"}},{"computedUserset":{"relation":"banned"}}]}}
            }}]}"#,
    )
    .unwrap();
    let mut tuples = MemoryTuples::default();
    // Two groups that contain each other, and documents that are each other's parent.
    tuples.write("group:a#member", "member", "group:b").unwrap();
    tuples.write("group:b#member", "member", "group:a").unwrap();
    tuples.write("user:u", "member", "group:a").unwrap();
    tuples.write("group:b#member", "viewer", "doc:x").unwrap();
    tuples.write("doc:y", "parent", "doc:x").unwrap();
    tuples.write("doc:x", "parent", "doc:y").unwrap();
    tuples.write("user:v", "banned", "doc:y").unwrap();
    tuples.write("user:v", "viewer", "doc:y").unwrap();
    tuples.write("group:a#member", "banned", "doc:x").unwrap();
    let eval = Evaluator {
        model: &model,
        tuples: &tuples,
    };
    let s = |v: &str| Subject::parse(v).unwrap();
    let check = |user: &str, relation: &str, object: &str| {
        eval.check(&s(user), relation, &s(object)).unwrap()
    };
    assert!(check("user:u", "viewer", "doc:x"));
    assert!(check("user:u", "viewer", "doc:y"));
    assert!(check("user:u", "reader", "doc:y"));
    assert!(!check("user:v", "reader", "doc:y"));
    assert!(check("user:v", "both", "doc:y"));
    assert!(!check("user:w", "viewer", "doc:x"));
    assert!(!check("user:u", "nonsense", "doc:x"));
    assert!(check("group:a#member", "member", "group:b"));
    // banned takes users only: a group written there is ignored, as OpenFGA ignores it.
    assert!(!check("user:u", "banned", "doc:x"));
    assert_eq!(
        eval.list_objects(&s("user:u"), "doc", "viewer").unwrap(),
        ["x", "y"]
    );
    // A chain longer than the resolution depth is an error, never a guess: inside a `but not`
    // a false would become an allow.
    let mut deep = MemoryTuples::default();
    for i in 0..40 {
        deep.write(&format!("doc:d{}", i + 1), "parent", &format!("doc:d{i}"))
            .unwrap();
    }
    deep.write("user:z", "banned", "doc:d0").unwrap();
    deep.write("user:z", "viewer", "doc:d40").unwrap();
    let eval = Evaluator {
        model: &model,
        tuples: &deep,
    };
    assert_eq!(
        eval.check(&s("user:z"), "viewer", &s("doc:d0")),
        Err(DepthExceeded)
    );
    assert_eq!(eval.check(&s("user:z"), "viewer", &s("doc:d30")), Ok(true));
    // A model that names a relation its type lacks is refused.
    assert!(
        Model::from_json(
            r#"{"type_definitions":[{"type":"doc","relations":{"a":{"computedUserset":{"relation":"b"}}}}]}"#
        )
        .is_err()
    );
    for bad in ["user", "user:", ":x", "user:x#", "#r"] {
        assert!(Subject::parse(bad).is_none(), "{bad}");
    }
}
