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
