//! The events feed: a warehouse's change events read back over HTTP, in the order they were
//! published, so that a consumer without NATS can follow every change from any point. The
//! shapes follow the Iceberg REST proposal for catalog events (apache/iceberg#12584, not yet
//! part of the spec): each event has an `operation` typed by `operation-type`; Floe's own
//! changes (branches, merges, warehouses, grants) are `custom` operations with a `custom-type`
//! of `x-floe-...`.

use serde_json::{Value, json};

use super::{RequestContext, Services};
use crate::authz::Resource;
use crate::error::{Error, Result};
use crate::model::{Action, RefSelector, WarehouseId};

/// What a consumer asks of the feed.
#[derive(Debug, Clone, Default)]
pub struct EventsQuery {
    /// Where the previous page ended (`next-page-token`); from the start when absent.
    pub continuation_token: Option<String>,
    pub page_size: Option<u32>,
    /// Only events at or after this time (milliseconds since the epoch).
    pub after_timestamp_ms: Option<i64>,
    /// Only these `operation-type`s (`create-table`, `update-table`, ..., `custom`).
    pub operation_types: Option<Vec<String>>,
    /// Only events about these objects or what lies under them (namespace levels, then the
    /// table's or view's name).
    pub objects_by_name: Option<Vec<Vec<String>>>,
    /// Only events about tables or views with these UUIDs.
    pub objects_by_id: Option<Vec<uuid::Uuid>>,
    /// Only events about these kinds of object: `namespace`, `table`, `view`.
    pub object_types: Option<Vec<String>>,
}

/// One page of the feed.
#[derive(Debug, Clone)]
pub struct EventsPage {
    /// Where to continue from (also when this page is empty: the position reached).
    pub next_page_token: String,
    /// The time of the last event looked at, in milliseconds.
    pub highest_processed_timestamp_ms: Option<i64>,
    pub events: Vec<Value>,
}

/// Feed positions read per round while filtering.
const SCAN_BATCH: usize = 500;
/// Rounds one request may read before it answers with what it found.
const SCAN_ROUNDS: usize = 20;

impl Services {
    /// A page of the warehouse's events on the branch the request addresses (and of the
    /// warehouse itself), oldest first.
    pub async fn query_events(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        query: &EventsQuery,
    ) -> Result<EventsPage> {
        self.authorize(
            ctx,
            Action::WarehouseReadHistory,
            Resource::Warehouse(warehouse),
        )
        .await?;
        self.load_warehouse(warehouse).await?;
        let reference = match &ctx.reference {
            RefSelector::Main => crate::model::MAIN_BRANCH.to_string(),
            RefSelector::Named(name) => name.clone(),
        };
        let limit = query.page_size.unwrap_or(100).clamp(1, 1000) as usize;
        let mut after = match query
            .continuation_token
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            None => 0,
            Some(token) => token
                .parse::<i64>()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| {
                    Error::bad_request(format!("invalid continuation token {token:?}"))
                })?,
        };
        let mut events = Vec::new();
        let mut highest = None;
        'scan: for _ in 0..SCAN_ROUNDS {
            let batch = self
                .store
                .events
                .read_feed(warehouse.0, after, SCAN_BATCH)
                .await?;
            let done = batch.len() < SCAN_BATCH;
            for stored in batch {
                let Ok(body) = serde_json::from_str::<Value>(&stored.event.body) else {
                    after = stored.position;
                    continue;
                };
                let time = body["time"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.timestamp_millis());
                let on_ref = body
                    .get("ref")
                    .and_then(Value::as_str)
                    .is_none_or(|r| r == reference);
                if on_ref
                    && let Some(event) = feed_event(&body, time)
                    && matches(&event, query, time)
                {
                    if events.len() == limit {
                        break 'scan;
                    }
                    events.push(event);
                }
                after = stored.position;
                highest = time.or(highest);
            }
            if done {
                break;
            }
        }
        Ok(EventsPage {
            next_page_token: after.to_string(),
            highest_processed_timestamp_ms: highest,
            events,
        })
    }
}

/// The object an event is about: (kind, identifier levels).
fn object_of(operation: &Value) -> Option<(&'static str, Vec<String>)> {
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let identifier = |v: &Value| -> Option<Vec<String>> {
        let mut levels = strings(&v["namespace"])?;
        levels.push(v["name"].as_str()?.to_string());
        Some(levels)
    };
    let kind = operation["operation-type"].as_str()?;
    if kind.ends_with("-namespace") || kind == "update-namespace-properties" {
        return Some(("namespace", strings(&operation["namespace"])?));
    }
    let what = if kind.ends_with("-view") {
        "view"
    } else if kind.ends_with("-table") {
        "table"
    } else {
        return None;
    };
    let ident = if kind.starts_with("rename-") {
        identifier(&operation["destination"])?
    } else {
        identifier(&operation["identifier"])?
    };
    Some((what, ident))
}

fn matches(event: &Value, query: &EventsQuery, time: Option<i64>) -> bool {
    let operation = &event["operation"];
    if let Some(after) = query.after_timestamp_ms
        && time.is_some_and(|t| t < after)
    {
        return false;
    }
    if let Some(types) = &query.operation_types
        && !types
            .iter()
            .any(|t| operation["operation-type"].as_str() == Some(t))
    {
        return false;
    }
    let object = object_of(operation);
    if let Some(kinds) = &query.object_types
        && !object
            .as_ref()
            .is_some_and(|(k, _)| kinds.iter().any(|want| want == k))
    {
        return false;
    }
    if let Some(names) = &query.objects_by_name {
        let mut idents = Vec::new();
        if let Some((_, ident)) = &object {
            idents.push(ident.clone());
        }
        // A rename is about where the table was too.
        if let Some(source) = operation.get("source")
            && let (Some(ns), Some(name)) =
                (source["namespace"].as_array(), source["name"].as_str())
        {
            let mut levels: Vec<String> = ns
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            levels.push(name.to_string());
            idents.push(levels);
        }
        if !names
            .iter()
            .any(|want| idents.iter().any(|ident| ident.starts_with(want)))
        {
            return false;
        }
    }
    if let Some(ids) = &query.objects_by_id {
        let uuid = operation["table-uuid"]
            .as_str()
            .or(operation["view-uuid"].as_str())
            .and_then(|u| u.parse::<uuid::Uuid>().ok());
        if !uuid.is_some_and(|u| ids.contains(&u)) {
            return false;
        }
    }
    true
}

/// A CloudEvent as the proposal's `Event`.
fn feed_event(body: &Value, time: Option<i64>) -> Option<Value> {
    let kind = body["type"].as_str()?.strip_prefix("io.floe.")?;
    let data = &body["data"];
    let identifier = || json!({ "namespace": data["namespace"], "name": data["name"] });
    let operation = match kind {
        "table.created" | "table.registered" => json!({
            "operation-type": "create-table",
            "identifier": identifier(),
            "table-uuid": data["table-uuid"],
            "updates": [],
        }),
        "table.committed" => json!({
            "operation-type": "update-table",
            "identifier": identifier(),
            "table-uuid": data["table-uuid"],
            "updates": data.get("updates").cloned().unwrap_or_else(|| json!([])),
            "requirements": [],
        }),
        "table.dropped" => json!({
            "operation-type": "drop-table",
            "identifier": identifier(),
            "table-uuid": data["table-uuid"],
            "purge": data.get("purge-requested").cloned().unwrap_or(json!(false)),
        }),
        "table.renamed" | "view.renamed" => {
            let what = if kind == "table.renamed" {
                "table"
            } else {
                "view"
            };
            let uuid = format!("{what}-uuid");
            json!({
                "operation-type": format!("rename-{what}"),
                uuid.clone(): data[&uuid],
                "source": data["from"],
                "destination": identifier(),
            })
        }
        "view.created" | "view.registered" => json!({
            "operation-type": "create-view",
            "identifier": identifier(),
            "view-uuid": data["view-uuid"],
            "updates": [],
        }),
        "view.replaced" => json!({
            "operation-type": "update-view",
            "identifier": identifier(),
            "view-uuid": data["view-uuid"],
            "updates": [],
            "requirements": [],
        }),
        "view.dropped" => json!({
            "operation-type": "drop-view",
            "identifier": identifier(),
            "view-uuid": data["view-uuid"],
        }),
        "namespace.created" => json!({
            "operation-type": "create-namespace",
            "namespace": data["namespace"],
            "properties": data.get("properties").cloned().unwrap_or_else(|| json!({})),
        }),
        "namespace.properties-updated" => json!({
            "operation-type": "update-namespace-properties",
            "namespace": data["namespace"],
            "updated": data["updates"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
            "removed": data.get("removals").cloned().unwrap_or_else(|| json!([])),
            "missing": [],
        }),
        "namespace.dropped" => json!({
            "operation-type": "drop-namespace",
            "namespace": data["namespace"],
        }),
        other => json!({
            "operation-type": "custom",
            "custom-type": format!("x-floe-{other}"),
            "subject": body["subject"],
            "data": data,
        }),
    };
    let mut event = json!({
        "event-id": body["id"],
        "request-id": body.get("requestid").cloned().unwrap_or(Value::Null),
        "request-event-count": 1,
        "timestamp-ms": time,
        "actor": { "type": "principal", "id": body["actor"] },
        "operation": operation,
    });
    if let Some(reference) = body.get("ref") {
        event["x-floe-ref"] = reference.clone();
    }
    if let Some(commit) = body.get("commitid") {
        event["x-floe-commit-id"] = commit.clone();
    }
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_events_become_the_proposals_operations() {
        let body = json!({
            "id": "e1", "type": "io.floe.table.committed", "time": "2026-12-05T10:00:00Z",
            "actor": "u", "requestid": "r", "ref": "main", "commitid": "c",
            "subject": "warehouse/w/table/a.t",
            "data": {"namespace": ["a"], "name": "t", "table-uuid": "u1",
                     "updates": [{"action": "set-properties", "updates": {"k": "v"}}]},
        });
        let event = feed_event(&body, Some(5)).unwrap();
        assert_eq!(event["operation"]["operation-type"], "update-table");
        assert_eq!(event["operation"]["identifier"]["name"], "t");
        assert_eq!(event["operation"]["updates"][0]["action"], "set-properties");
        assert_eq!(event["timestamp-ms"], 5);
        assert_eq!(event["x-floe-commit-id"], "c");
        let renamed = json!({
            "id": "e2", "type": "io.floe.table.renamed", "actor": "u",
            "data": {"namespace": ["b"], "name": "n", "table-uuid": "u1",
                     "from": {"namespace": ["a"], "name": "o"}},
        });
        let event = feed_event(&renamed, None).unwrap();
        assert_eq!(event["operation"]["operation-type"], "rename-table");
        assert_eq!(event["operation"]["table-uuid"], "u1");
        assert_eq!(event["operation"]["source"]["name"], "o");
        // Filters: by the old name and the new one, by kind, by type.
        let by = |names: Vec<Vec<&str>>| EventsQuery {
            objects_by_name: Some(
                names
                    .into_iter()
                    .map(|n| n.into_iter().map(str::to_string).collect())
                    .collect(),
            ),
            ..Default::default()
        };
        assert!(matches(&event, &by(vec![vec!["a", "o"]]), None));
        assert!(matches(&event, &by(vec![vec!["b"]]), None));
        assert!(!matches(&event, &by(vec![vec!["c"]]), None));
        let kinds = EventsQuery {
            object_types: Some(vec!["view".into()]),
            ..Default::default()
        };
        assert!(!matches(&event, &kinds, None));
        let merged = json!({"id": "e3", "type": "io.floe.branch.merged", "actor": "u",
                            "subject": "s", "data": {"source": "dev"}});
        let event = feed_event(&merged, None).unwrap();
        assert_eq!(event["operation"]["custom-type"], "x-floe-branch.merged");
        let types = EventsQuery {
            operation_types: Some(vec!["custom".into()]),
            ..Default::default()
        };
        assert!(matches(&event, &types, None));
    }
}
