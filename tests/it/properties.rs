//! Property-based tests of the parsers and rules every scope promise rests on (`proptest`, on
//! stable Rust). The invariants: parsing never panics; nothing a key or a location names reaches
//! outside the folder it must stay in; what parses reads back to itself.
//!
//! Inputs are drawn from alphabets rich in what attackers use (`.`, `/`, `\`, `%2e`, `%2f`, NUL,
//! `~`, `@`, U+001F, non-ASCII), as well as from arbitrary strings.

use std::path::Component;

use floe::model::{NamespaceIdent, RefSelector, WarehouseId, WarehouseRef};
use floe::storage::location::Location;
use floe::storage::objects::key_path;
use proptest::prelude::*;

/// Strings made of the pieces path tricks are made of.
fn tricky() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(".".to_string()),
        Just("..".to_string()),
        Just("/".to_string()),
        Just("\\".to_string()),
        Just("%2e".to_string()),
        Just("%2E".to_string()),
        Just("%2f".to_string()),
        Just("%5c".to_string()),
        Just("%00".to_string()),
        Just("\0".to_string()),
        Just("~".to_string()),
        Just("@".to_string()),
        Just("\u{1F}".to_string()),
        Just(".floe~".to_string()),
        Just("é".to_string()),
        "[a-z0-9_-]{1,6}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|parts| parts.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![tricky(), any::<String>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// An S3 key maps to a relative path of plain components, or is refused: never `..`, `.`,
    /// a root or a prefix, never a reserved segment, never a NUL.
    #[test]
    fn s3_keys_never_leave_the_warehouse(key in any_text()) {
        if let Ok(path) = key_path(&key) {
            prop_assert!(path.is_relative(), "{key:?} -> {path:?}");
            for component in path.components() {
                match component {
                    Component::Normal(part) => {
                        let part = part.to_string_lossy();
                        // Floe's own names (`.floe~...`) are out of reach; an empty segment is
                        // stored as `.floe~empty`.
                        prop_assert!(!part.starts_with(".floe~") || part == ".floe~empty",
                            "{key:?} reaches reserved {part:?}");
                        prop_assert!(!part.contains('\0'));
                    }
                    other => prop_assert!(false, "{key:?} -> {path:?} has {other:?}"),
                }
            }
            // Whatever decodes the key later (percent escapes, backslashes) finds no `..` either.
            let decoded = key.replace("%2e", ".").replace("%2E", ".").replace('\\', "/");
            prop_assert!(!decoded.split('/').any(|s| s == ".."), "{key:?}");
        }
    }

    /// A location parses to a normal form that parses to itself, with no `.`, `..` or empty
    /// segment, no control character and no backslash; a file location's path has only plain
    /// components under the root.
    #[test]
    fn locations_parse_to_a_normal_form(text in any_text(), scheme in prop::sample::select(vec!["s3://b/", "file:///", "s3a://", "file:/", ""])) {
        let text = format!("{scheme}{text}");
        if let Ok(location) = Location::parse(&text) {
            let again = Location::parse(location.as_str());
            prop_assert_eq!(again.as_ref().ok(), Some(&location), "{:?}", text);
            let s = location.as_str();
            prop_assert!(!s.chars().any(char::is_control) && !s.contains('\\'));
            let path = s.split_once("://").unwrap().1;
            for segment in path.split('/').skip(1) {
                prop_assert!(!segment.is_empty() && segment != "." && segment != "..", "{s:?}");
            }
            if let Some(local) = location.local_path() {
                prop_assert!(local.is_absolute());
                for component in local.components().skip(1) {
                    prop_assert!(matches!(component, Component::Normal(_)), "{local:?}");
                }
            }
        }
    }

    /// What is joined onto a folder stays in it (or is refused); `relative_to` gives back a path
    /// that joins to the same place.
    #[test]
    fn joining_never_leaves_the_folder(base in prop::sample::select(vec!["s3://bucket/wh/ns/t", "file:///data/wh/t", "s3://b"]), segment in any_text()) {
        let base = Location::parse(base).unwrap();
        if let Ok(joined) = base.join(&segment) {
            prop_assert!(joined.is_within(&base), "{base} + {segment:?} = {joined}");
            let relative = joined.relative_to(&base).unwrap();
            if relative.is_empty() {
                prop_assert_eq!(&joined, &base);
            } else {
                prop_assert_eq!(base.join(&relative).unwrap(), joined);
            }
        }
    }

    /// A sibling whose name starts like the folder's is not inside it.
    #[test]
    fn a_sibling_with_a_longer_name_is_not_within(name in "[a-z]{1,8}", suffix in "[a-z0-9_-]{1,8}") {
        let folder = Location::parse(&format!("s3://b/wh/{name}")).unwrap();
        let sibling = Location::parse(&format!("s3://b/wh/{name}{suffix}")).unwrap();
        prop_assert!(!sibling.is_within(&folder));
        prop_assert!(folder.is_within(&folder));
    }

    /// Namespaces: what is accepted joins and splits back to itself, and its authorization id
    /// reads back to the same namespace and holds no `:`, `#`, `/` (past the warehouse) or space.
    #[test]
    fn namespaces_read_back(levels in prop::collection::vec(any_text(), 0..5)) {
        if let Ok(ident) = NamespaceIdent::new(levels.clone()) {
            prop_assert_eq!(ident.levels(), levels.as_slice());
            let back = NamespaceIdent::from_joined(&ident.joined()).unwrap();
            prop_assert_eq!(&back, &ident);
            let warehouse = WarehouseId(uuid::Uuid::nil());
            let id = ident.object_id(warehouse);
            let (w, read) = NamespaceIdent::from_object_id(&id).unwrap();
            prop_assert_eq!(w, warehouse);
            prop_assert_eq!(read, ident);
            let encoded = id.split_once('/').unwrap().1;
            prop_assert!(!encoded.contains(['/', ':', '#', ' ', '\u{1F}']), "{id:?}");
        }
    }

    /// Reading an authorization id never panics, and only ids Floe writes are accepted.
    #[test]
    fn namespace_ids_from_outside_are_checked(text in any_text()) {
        if let Some((warehouse, ident)) = NamespaceIdent::from_object_id(&text) {
            prop_assert_eq!(ident.object_id(warehouse), text);
        }
    }

    /// `warehouse@ref` never panics, splits at the first `@`, and a prefix reads back.
    #[test]
    fn warehouse_refs_split_at_the_first_at(text in any_text()) {
        if let Some(parsed) = WarehouseRef::parse(&text) {
            let warehouse = text.split('@').next().unwrap();
            prop_assert_eq!(parsed.warehouse.to_string(), warehouse.to_string().parse::<uuid::Uuid>().map(|u| u.to_string()).unwrap_or(warehouse.to_string()));
            match text.split_once('@') {
                Some((_, reference)) if reference != "main" => {
                    prop_assert_eq!(parsed.reference, RefSelector::Named(reference.to_string()))
                }
                _ => prop_assert_eq!(parsed.reference, RefSelector::Main),
            }
        }
        let id = WarehouseId(uuid::Uuid::nil());
        let selector = RefSelector::parse(Some(text.as_str()));
        let prefix = WarehouseRef::prefix(id, &selector);
        let back = WarehouseRef::parse(&prefix).unwrap();
        prop_assert_eq!(back.reference, selector);
    }
}

/// Percent-decodes a URL path (bytes as they are when not a valid escape).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn sign_request() -> impl Strategy<Value = (String, String, String)> {
    let method = prop::sample::select(vec!["GET", "HEAD", "PUT", "POST", "DELETE"]);
    let key = prop_oneof![
        3 => "[a-z0-9_-]{1,8}(/[a-z0-9_.-]{1,8}){0,3}".prop_map(|k| format!("wh/ns/t/{k}")),
        1 => tricky().prop_map(|k| format!("wh/ns/t/{k}")),
        1 => tricky(),
        1 => Just("wh/ns/t/data/../../other/x".to_string()),
        1 => Just("wh/ns/t%2F..%2F..%2Fother/x".to_string()),
        1 => Just("wh/ns/t/../t2/x".to_string()),
        1 => Just("wh/ns/t2/x".to_string()),
    ];
    let query = prop::sample::select(vec![
        "",
        "?uploads",
        "?uploadId=1&partNumber=1",
        "?list-type=2&prefix=wh/ns/t/",
        "?list-type=2&prefix=wh/",
        "?delete",
        "?acl",
        "?x-id=GetObject",
        "?location",
    ]);
    (method, key, query).prop_map(|(m, k, q)| (m.to_string(), k, q.to_string()))
}

/// Remote signing signs nothing outside the table's folder, and nothing the caller may not do:
/// whatever the method, key (with `..`, encoded slashes and dots) and query, a request it accepts
/// addresses the table's bucket, a key under the table's prefix with no `.` or `..` segment once
/// decoded, and writes only for a caller who may write. (Run by hand so that it can also show
/// that many requests were accepted: the property is not vacuous.)
#[test]
fn remote_signing_stays_in_the_table() {
    use floe::storage::signing::{SigningScope, check};
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let accepted = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 3_000,
        ..Config::default()
    });
    let strategy = (sign_request(), any::<bool>(), any::<bool>());
    runner
        .run(
            &strategy,
            |((method, key, query), may_write, may_delete)| {
                let prefixes = vec!["wh/ns/t/".to_string()];
                let scope = SigningScope {
                    endpoint: "http://s3.example:9000",
                    bucket: "lake",
                    region: "us-east-1",
                    prefixes: &prefixes,
                    may_write,
                    may_delete,
                };
                let request = floe::model::SignRequest {
                    method: method.clone(),
                    uri: format!("http://s3.example:9000/lake/{key}{query}"),
                    headers: Default::default(),
                    body: None,
                };
                if check(&scope, &request).is_ok() {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let decoded = String::from_utf8_lossy(&percent_decode(&key)).into_owned();
                    if key.is_empty() {
                        // On the bucket itself: HeadBucket and GetBucketLocation (which name no
                        // object), or a listing under the table's folder.
                        prop_assert!(
                            method == "HEAD" || method == "GET",
                            "{method} on the bucket"
                        );
                        if method == "GET" && query != "?location" {
                            prop_assert!(
                                query.contains("prefix=wh/ns/t/"),
                                "{method} {key}{query}"
                            );
                        }
                    } else {
                        prop_assert!(
                            decoded.starts_with("wh/ns/t/"),
                            "{method} {key}{query} -> {decoded}"
                        );
                        prop_assert!(
                            !decoded.split('/').any(|s| s == ".." || s == "."),
                            "{method} {decoded}"
                        );
                    }
                    if matches!(method.as_str(), "PUT" | "POST" | "DELETE") {
                        prop_assert!(may_write, "{method} {key}{query} signed for a reader");
                    }
                    if method == "DELETE" && !query.contains("uploadId") {
                        prop_assert!(may_delete, "{method} {key}{query} signed without delete");
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    let accepted = accepted.into_inner();
    assert!(
        accepted > 100,
        "only {accepted} of 3000 requests were signed: the property says little"
    );
}
