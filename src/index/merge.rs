//! What a merge does with each piece of content, decided from its version at the merge base, on
//! the source and on the target (lakeFS and Nessie decide per key too; unlike them, a table changed
//! on both sides is not a conflict by itself: [`Resolution::Compose`] hands it to
//! [`super::table_merge`]).

use std::collections::BTreeMap;

use super::{ContentKind, ContentVersion};

pub use crate::model::MergeStrategy as Strategy;

/// The outcome for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The target keeps what it has (the source did not change it, or made the same change).
    KeepTarget,
    /// The target takes the source's version (`None` on the source: the key is removed).
    TakeSource,
    /// Both sides changed the same table or namespace, which still exists on both with the same
    /// identity: whether the changes compose is decided by looking inside.
    Compose,
    /// The changes cannot be merged; the reason names what each side did.
    Conflict(String),
}

fn describe(base: Option<&ContentVersion>, side: Option<&ContentVersion>) -> &'static str {
    match (base, side) {
        (None, Some(_)) => "created",
        (Some(_), None) => "dropped",
        (Some(b), Some(s)) if b.content_id != s.content_id => "replaced (dropped and recreated)",
        _ => "changed",
    }
}

/// Decides one key. Versions are compared by `version`; identity by `content_id`.
pub fn resolve(
    kind: ContentKind,
    base: Option<&ContentVersion>,
    source: Option<&ContentVersion>,
    target: Option<&ContentVersion>,
    strategy: Strategy,
) -> Resolution {
    if source == base || source == target {
        return Resolution::KeepTarget;
    }
    if target == base {
        return Resolution::TakeSource;
    }
    // Both sides changed the key, differently.
    let same_identity = matches!((base, source, target),
        (Some(b), Some(s), Some(t)) if b.content_id == s.content_id && s.content_id == t.content_id);
    let both_created_namespace =
        kind == ContentKind::Namespace && base.is_none() && source.is_some() && target.is_some();
    if (same_identity && kind != ContentKind::View) || both_created_namespace {
        return Resolution::Compose;
    }
    match strategy {
        Strategy::SourceWins => Resolution::TakeSource,
        Strategy::TargetWins => Resolution::KeepTarget,
        Strategy::Fail => Resolution::Conflict(format!(
            "{} on the source and {} on the target",
            describe(base, source),
            describe(base, target)
        )),
    }
}

/// A three-way merge of two property maps: each key takes the side that changed it; keys both
/// sides changed differently are returned as conflicts.
pub fn merge_properties(
    base: &BTreeMap<String, String>,
    source: &BTreeMap<String, String>,
    target: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut merged = BTreeMap::new();
    let mut conflicts = Vec::new();
    let keys: std::collections::BTreeSet<&String> = base
        .keys()
        .chain(source.keys())
        .chain(target.keys())
        .collect();
    for key in keys {
        let (b, s, t) = (base.get(key), source.get(key), target.get(key));
        let value = if s == b || s == t {
            t
        } else if t == b {
            s
        } else {
            conflicts.push(key.clone());
            continue;
        };
        if let Some(value) = value {
            merged.insert(key.clone(), value.clone());
        }
    }
    if conflicts.is_empty() {
        Ok(merged)
    } else {
        Err(conflicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: u128, version: &str) -> ContentVersion {
        ContentVersion {
            content_id: uuid::Uuid::from_u128(id),
            version: version.to_string(),
        }
    }

    #[test]
    fn keys_changed_on_one_side_take_that_side() {
        let (b, s) = (v(1, "m1"), v(1, "m2"));
        let t = ContentKind::Table;
        assert_eq!(
            resolve(t, Some(&b), Some(&s), Some(&b), Strategy::Fail),
            Resolution::TakeSource
        );
        assert_eq!(
            resolve(t, Some(&b), Some(&b), Some(&s), Strategy::Fail),
            Resolution::KeepTarget
        );
        // Created or dropped on the source only.
        assert_eq!(
            resolve(t, None, Some(&s), None, Strategy::Fail),
            Resolution::TakeSource
        );
        assert_eq!(
            resolve(t, Some(&b), None, Some(&b), Strategy::Fail),
            Resolution::TakeSource
        );
        // The same change on both sides.
        assert_eq!(
            resolve(t, Some(&b), Some(&s), Some(&s), Strategy::Fail),
            Resolution::KeepTarget
        );
        assert_eq!(
            resolve(t, Some(&b), None, None, Strategy::Fail),
            Resolution::KeepTarget
        );
    }

    #[test]
    fn both_sides_changing_a_table_is_composed_not_refused() {
        let (b, s, t) = (v(1, "m1"), v(1, "m2"), v(1, "m3"));
        assert_eq!(
            resolve(
                ContentKind::Table,
                Some(&b),
                Some(&s),
                Some(&t),
                Strategy::Fail
            ),
            Resolution::Compose
        );
        assert_eq!(
            resolve(
                ContentKind::Namespace,
                None,
                Some(&s),
                Some(&t),
                Strategy::Fail
            ),
            Resolution::Compose
        );
        // Views are replaced whole: two different versions conflict.
        assert!(matches!(
            resolve(
                ContentKind::View,
                Some(&b),
                Some(&s),
                Some(&t),
                Strategy::Fail
            ),
            Resolution::Conflict(_)
        ));
    }

    #[test]
    fn incompatible_changes_conflict_or_follow_the_strategy() {
        let (b, s) = (v(1, "m1"), v(1, "m2"));
        let recreated = v(2, "m9");
        let cases = [
            (
                Some(&b),
                None,
                Some(&s),
                "dropped on the source and changed on the target",
            ),
            (
                Some(&b),
                Some(&s),
                None,
                "changed on the source and dropped on the target",
            ),
            (
                None,
                Some(&s),
                Some(&recreated),
                "created on the source and created on the target",
            ),
            (
                Some(&b),
                Some(&recreated),
                Some(&s),
                "replaced (dropped and recreated) on the source and changed on the target",
            ),
        ];
        for (base, source, target, why) in cases {
            assert_eq!(
                resolve(ContentKind::Table, base, source, target, Strategy::Fail),
                Resolution::Conflict(why.to_string())
            );
            assert_eq!(
                resolve(
                    ContentKind::Table,
                    base,
                    source,
                    target,
                    Strategy::SourceWins
                ),
                Resolution::TakeSource
            );
            assert_eq!(
                resolve(
                    ContentKind::Table,
                    base,
                    source,
                    target,
                    Strategy::TargetWins
                ),
                Resolution::KeepTarget
            );
        }
    }

    #[test]
    fn properties_merge_key_by_key() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let base = map(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let source = map(&[("a", "2"), ("b", "1"), ("d", "s")]);
        let target = map(&[("a", "1"), ("b", "3"), ("c", "1"), ("e", "t")]);
        assert_eq!(
            merge_properties(&base, &source, &target).unwrap(),
            map(&[("a", "2"), ("b", "3"), ("d", "s"), ("e", "t")])
        );
        let clash = map(&[("a", "9"), ("b", "1"), ("c", "1")]);
        let other = map(&[("a", "8"), ("b", "1")]);
        assert_eq!(
            merge_properties(&base, &clash, &other).unwrap_err(),
            vec!["a".to_string()]
        );
    }
}
