//! Change events as CloudEvents 1.0 (structured JSON): what each catalog change is announced as.
//! Changes recorded on a branch become events inside the change's own transaction (the outbox,
//! `store::EventStore`), built here from the commit's changes; other changes build theirs with
//! [`CloudEvent::new`].

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{CommitChange, CommitEvent};

/// The `source` attribute of every event Floe emits.
pub const SOURCE: &str = "/floe";

/// One event, ready to publish: its attributes apart for routing, and the whole CloudEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEvent {
    pub id: Uuid,
    /// The CloudEvents `type`, e.g. `io.floe.table.committed`.
    pub kind: String,
    pub subject: String,
    pub warehouse: Option<Uuid>,
    /// Events with the same key are published in the order they were recorded (a table's
    /// UUID; a namespace's, warehouse's or project's path).
    pub key: String,
    /// The structured-mode CloudEvent, JSON.
    pub body: String,
}

/// The attributes an event carries beyond `type`, `subject` and `data` (as extensions).
#[derive(Debug, Clone, Default)]
pub struct EventContext<'a> {
    pub actor: &'a str,
    pub request_id: &'a str,
    pub warehouse: Option<Uuid>,
    pub reference: Option<&'a str>,
    pub commit: Option<Uuid>,
}

impl CloudEvent {
    /// An event of `kind` (without the `io.floe.` prefix, e.g. `warehouse.renamed`) about
    /// `subject`, ordered with the others of `key`.
    pub fn new(
        kind: &str,
        subject: String,
        key: String,
        context: &EventContext<'_>,
        extra: &[(&str, &str)],
        time: DateTime<Utc>,
        data: Value,
    ) -> CloudEvent {
        let id = Uuid::now_v7();
        let kind = format!("io.floe.{kind}");
        let mut event = Map::new();
        event.insert("specversion".into(), json!("1.0"));
        event.insert("id".into(), json!(id.to_string()));
        event.insert("source".into(), json!(SOURCE));
        event.insert("type".into(), json!(kind));
        event.insert("subject".into(), json!(subject));
        event.insert(
            "time".into(),
            json!(time.to_rfc3339_opts(SecondsFormat::Micros, true)),
        );
        event.insert("datacontenttype".into(), json!("application/json"));
        // Extension attributes: lower-case letters and digits only (CloudEvents 1.0).
        event.insert("actor".into(), json!(context.actor));
        if !context.request_id.is_empty() {
            event.insert("requestid".into(), json!(context.request_id));
        }
        if let Some(warehouse) = context.warehouse {
            event.insert("warehouse".into(), json!(warehouse.to_string()));
        }
        if let Some(reference) = context.reference {
            event.insert("ref".into(), json!(reference));
        }
        if let Some(commit) = context.commit {
            event.insert("commitid".into(), json!(commit.to_string()));
        }
        for (name, value) in extra {
            event.insert((*name).into(), json!(value));
        }
        event.insert("data".into(), data);
        CloudEvent {
            id,
            kind,
            subject,
            warehouse: context.warehouse,
            key,
            body: Value::Object(event).to_string(),
        }
    }
}

/// The events of one commit on a branch: one per table, view or namespace it changed (a
/// multi-table transaction gives one per table, all naming the commit); a rename gives one
/// `renamed` event, a merge one `branch.merged` event listing what it changed.
#[allow(clippy::too_many_arguments)]
pub fn commit_events(
    warehouse: Uuid,
    reference: &str,
    commit: Uuid,
    event: &CommitEvent,
    actor: &str,
    request_id: &str,
    details: &BTreeMap<String, Value>,
    changes: &[(CommitChange, Option<Uuid>)],
    time: DateTime<Utc>,
) -> Vec<CloudEvent> {
    let context = EventContext {
        actor,
        request_id,
        warehouse: Some(warehouse),
        reference: Some(reference),
        commit: Some(commit),
    };
    if *event == CommitEvent::Silent {
        return Vec::new();
    }
    if let CommitEvent::Merge { source } = event {
        let listed: Vec<&CommitChange> = changes.iter().map(|(c, _)| c).collect();
        return vec![CloudEvent::new(
            "branch.merged",
            format!("warehouse/{warehouse}/branch/{reference}"),
            format!("{warehouse}/branch/{reference}"),
            &context,
            &[],
            time,
            json!({ "source": source, "target": reference, "changes": listed }),
        )];
    }
    let renamed_from = |kind: &str| {
        changes
            .iter()
            .find(|(c, _)| c.kind == kind && c.op == "drop")
            .map(|(c, _)| c)
    };
    let mut events = Vec::with_capacity(changes.len());
    for (change, uuid) in changes {
        let what = change.kind.as_str();
        let (kind, extra_data) = match (what, change.op.as_str(), event) {
            // A rename is a drop and a create: one event, on the create.
            (_, "drop", CommitEvent::Rename) if what != "namespace" => continue,
            (_, "create", CommitEvent::Rename) => (
                "renamed",
                renamed_from(what).map(
                    |from| json!({ "from": { "namespace": from.namespace, "name": from.name } }),
                ),
            ),
            (_, "create", CommitEvent::Register) => ("registered", None),
            (_, "create", _) => ("created", None),
            ("namespace", "update", _) => ("properties-updated", None),
            ("view", "update", _) => ("replaced", None),
            (_, "update", _) => ("committed", None),
            _ => ("dropped", None),
        };
        let ident = match &change.name {
            Some(name) => {
                let mut levels = change.namespace.clone();
                levels.push(name.clone());
                levels.join(".")
            }
            None => change.namespace.join("."),
        };
        let subject = format!("warehouse/{warehouse}/{what}/{ident}");
        let key = match uuid {
            Some(uuid) => format!("{warehouse}/{uuid}"),
            None => format!("{warehouse}/{what}/{ident}"),
        };
        let mut data = Map::new();
        data.insert("namespace".into(), json!(change.namespace));
        if let Some(name) = &change.name {
            data.insert("name".into(), json!(name));
        }
        if let Some(uuid) = uuid {
            data.insert(format!("{what}-uuid"), json!(uuid.to_string()));
        }
        if let Some(location) = &change.metadata_location {
            data.insert("metadata-location".into(), json!(location));
        }
        if let Some(Value::Object(more)) = extra_data {
            data.extend(more);
        }
        if let Some(Value::Object(more)) = details.get(&detail_key(&change.namespace, &change.name))
        {
            data.extend(more.clone());
        }
        let namespace = change.namespace.join(".");
        let mut extra: Vec<(&str, &str)> = vec![("namespace", namespace.as_str())];
        if let Some(name) = &change.name {
            extra.push((if what == "view" { "view" } else { "table" }, name));
        }
        events.push(CloudEvent::new(
            &format!("{what}.{kind}"),
            subject,
            key,
            &context,
            &extra,
            time,
            Value::Object(data),
        ));
    }
    events
}

/// The key of a name's entry in `CommitMeta::event_data`.
pub fn detail_key(namespace: &[String], name: &Option<String>) -> String {
    let mut key = namespace.join("\u{1f}");
    if let Some(name) = name {
        key.push('\u{1e}');
        key.push_str(name);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: &str, ns: &[&str], name: Option<&str>, op: &str) -> CommitChange {
        CommitChange {
            kind: kind.into(),
            namespace: ns.iter().map(|s| s.to_string()).collect(),
            name: name.map(Into::into),
            op: op.into(),
            metadata_location: (op != "drop").then(|| "s3://b/m.json".to_string()),
        }
    }

    fn parsed(event: &CloudEvent) -> Value {
        serde_json::from_str(&event.body).unwrap()
    }

    #[test]
    fn a_transaction_gives_one_event_per_table_naming_the_commit() {
        let warehouse = Uuid::now_v7();
        let commit = Uuid::now_v7();
        let (u1, u2) = (Uuid::now_v7(), Uuid::now_v7());
        let mut details = BTreeMap::new();
        details.insert(
            detail_key(&["a".into()], &Some("t1".into())),
            json!({ "updates": [{ "action": "set-properties" }] }),
        );
        let events = commit_events(
            warehouse,
            "main",
            commit,
            &CommitEvent::Changes,
            "user:1",
            "req-1",
            &details,
            &[
                (change("table", &["a"], Some("t1"), "update"), Some(u1)),
                (change("table", &["a"], Some("t2"), "create"), Some(u2)),
            ],
            Utc::now(),
        );
        assert_eq!(events.len(), 2);
        let first = parsed(&events[0]);
        assert_eq!(first["specversion"], "1.0");
        assert_eq!(first["type"], "io.floe.table.committed");
        assert_eq!(
            first["subject"],
            format!("warehouse/{warehouse}/table/a.t1")
        );
        assert_eq!(first["commitid"], commit.to_string());
        assert_eq!(first["ref"], "main");
        assert_eq!(first["actor"], "user:1");
        assert_eq!(first["requestid"], "req-1");
        assert_eq!(first["table"], "t1");
        assert_eq!(first["data"]["updates"][0]["action"], "set-properties");
        assert_eq!(first["id"], events[0].id.to_string());
        assert_eq!(events[0].key, format!("{warehouse}/{u1}"));
        let second = parsed(&events[1]);
        assert_eq!(second["type"], "io.floe.table.created");
        assert_eq!(second["commitid"], commit.to_string());
        assert!(second["data"].get("updates").is_none());
        assert_ne!(events[0].id, events[1].id);
    }

    #[test]
    fn a_rename_is_one_event_and_a_merge_one_event() {
        let warehouse = Uuid::now_v7();
        let uuid = Some(Uuid::now_v7());
        let renamed = commit_events(
            warehouse,
            "main",
            Uuid::now_v7(),
            &CommitEvent::Rename,
            "a",
            "",
            &BTreeMap::new(),
            &[
                (change("view", &["a"], Some("old"), "drop"), uuid),
                (change("view", &["b"], Some("new"), "create"), uuid),
            ],
            Utc::now(),
        );
        assert_eq!(renamed.len(), 1);
        let body = parsed(&renamed[0]);
        assert_eq!(body["type"], "io.floe.view.renamed");
        assert_eq!(body["data"]["from"]["name"], "old");
        assert_eq!(body["view"], "new");
        assert!(body.get("requestid").is_none());
        let merged = commit_events(
            warehouse,
            "main",
            Uuid::now_v7(),
            &CommitEvent::Merge {
                source: "dev".into(),
            },
            "a",
            "r",
            &BTreeMap::new(),
            &[
                (change("table", &["a"], Some("t"), "update"), uuid),
                (change("namespace", &["n"], None, "create"), None),
            ],
            Utc::now(),
        );
        assert_eq!(merged.len(), 1);
        let body = parsed(&merged[0]);
        assert_eq!(body["type"], "io.floe.branch.merged");
        assert_eq!(body["data"]["source"], "dev");
        assert_eq!(body["data"]["changes"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn namespace_and_view_changes_have_their_own_types() {
        let warehouse = Uuid::now_v7();
        let events = commit_events(
            warehouse,
            "dev",
            Uuid::now_v7(),
            &CommitEvent::Changes,
            "a",
            "r",
            &BTreeMap::new(),
            &[
                (change("namespace", &["a", "b"], None, "update"), None),
                (change("namespace", &["c"], None, "drop"), None),
                (
                    change("view", &["a"], Some("v"), "update"),
                    Some(Uuid::now_v7()),
                ),
                (
                    change("table", &["a"], Some("t"), "drop"),
                    Some(Uuid::now_v7()),
                ),
            ],
            Utc::now(),
        );
        let types: Vec<String> = events
            .iter()
            .map(|e| parsed(e)["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            types,
            [
                "io.floe.namespace.properties-updated",
                "io.floe.namespace.dropped",
                "io.floe.view.replaced",
                "io.floe.table.dropped"
            ]
        );
        assert_eq!(events[0].key, format!("{warehouse}/namespace/a.b"));
        assert_eq!(parsed(&events[0])["namespace"], "a.b");
    }
}
