//! Reading a verified token's claims: dot paths (`realm_access.roles`, and keys that hold dots
//! themselves, such as Kubernetes' `kubernetes.io`), scopes, subject and roles.

use serde_json::{Map, Value};

/// The value at a dot path. At each level the longest run of segments that is a key wins, so
/// `kubernetes.io.serviceaccount.uid` finds `{"kubernetes.io": {"serviceaccount": {"uid": ..}}}`.
pub(super) fn at_path<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let segments: Vec<&str> = path.split('.').collect();
    find(claims, &segments)
}

fn find<'a>(object: &'a Map<String, Value>, segments: &[&str]) -> Option<&'a Value> {
    for take in (1..=segments.len()).rev() {
        let key = segments[..take].join(".");
        if let Some(value) = object.get(&key) {
            if take == segments.len() {
                return Some(value);
            }
            if let Value::Object(inner) = value
                && let Some(found) = find(inner, &segments[take..])
            {
                return Some(found);
            }
        }
    }
    None
}

/// A claim as a non-empty string (numbers as their text).
pub(super) fn string_at(claims: &Map<String, Value>, path: &str) -> Option<String> {
    match at_path(claims, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The token's scopes: `scope` (space-separated, RFC 8693/9068) or `scp` (a list or a string).
pub(super) fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split_whitespace().map(str::to_string)),
            Some(Value::Array(items)) => {
                out.extend(items.iter().filter_map(|v| v.as_str()).map(str::to_string))
            }
            _ => {}
        }
    }
    out
}

/// Roles or groups at `path`: a list of strings, or one string.
pub(super) fn roles(claims: &Map<String, Value>, path: &str) -> Vec<String> {
    match at_path(claims, path) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn dot_paths_reach_nested_claims_and_dotted_keys() {
        let c = claims(
            r#"{"realm_access":{"roles":["a","b"]},
                "kubernetes.io":{"serviceaccount":{"name":"spark","uid":"u-1"}},
                "groups":"solo","n":7,"empty":""}"#,
        );
        assert_eq!(roles(&c, "realm_access.roles"), vec!["a", "b"]);
        assert_eq!(
            string_at(&c, "kubernetes.io.serviceaccount.uid").as_deref(),
            Some("u-1")
        );
        assert_eq!(roles(&c, "groups"), vec!["solo"]);
        assert_eq!(string_at(&c, "n").as_deref(), Some("7"));
        assert_eq!(string_at(&c, "empty"), None);
        assert_eq!(string_at(&c, "realm_access.missing"), None);
        assert!(roles(&c, "nope").is_empty());
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        assert_eq!(scopes(&claims(r#"{"scope":"a  b"}"#)), vec!["a", "b"]);
        assert_eq!(scopes(&claims(r#"{"scp":["x","y"]}"#)), vec!["x", "y"]);
        assert!(scopes(&claims(r#"{}"#)).is_empty());
    }
}
