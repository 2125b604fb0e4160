//! The one grammar of `warehouse@ref`: how a client names a warehouse and a branch, tag or commit
//! of it (in its `warehouse` setting and in catalog prefixes), and which ref names are hidden.

use std::fmt;

use super::{CommitId, MAIN_BRANCH, WarehouseId};

/// The first character of the names of hidden refs (no branch or tag name may start with it).
pub(super) const HIDDEN_REF_MARK: char = '~';

/// Whether a ref name is one clients may not address.
pub(super) fn is_hidden_ref_name(name: &str) -> bool {
    name.starts_with(HIDDEN_REF_MARK)
}

/// The ref part of `warehouse@ref`: which branch, tag or commit of a warehouse a request reads
/// or writes. Parsed once, where a request names it; `Services::request_ref` resolves it to a
/// [`Ref`], and from there on the ref is addressed by that record alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RefSelector {
    /// No `@`, or `@main`.
    #[default]
    Main,
    /// A branch or tag by name, or a commit by its id (no branch or tag name parses as one).
    Named(String),
}

impl RefSelector {
    /// What follows `@` (`None` when nothing does).
    pub fn parse(text: Option<&str>) -> RefSelector {
        match text {
            None | Some(MAIN_BRANCH) => RefSelector::Main,
            Some(name) => RefSelector::Named(name.to_string()),
        }
    }

    pub fn is_main(&self) -> bool {
        *self == RefSelector::Main
    }

    /// The text a client writes after `@` (`main` for the main branch).
    pub fn as_str(&self) -> &str {
        match self {
            RefSelector::Main => MAIN_BRANCH,
            RefSelector::Named(name) => name,
        }
    }

    /// The commit it names, when it is a commit id.
    pub fn commit(&self) -> Option<CommitId> {
        match self {
            RefSelector::Main => None,
            RefSelector::Named(name) => name.parse().ok(),
        }
    }

    /// Whether it can name no ref a client may address: empty, or a hidden ref's name.
    pub fn is_unaddressable(&self) -> bool {
        match self {
            RefSelector::Main => false,
            RefSelector::Named(name) => name.is_empty() || is_hidden_ref_name(name),
        }
    }
}

impl fmt::Display for RefSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A warehouse as `warehouse@ref` names it: by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseSelector {
    Id(WarehouseId),
    Name(String),
}

/// `warehouse@ref`, the one grammar of a client's `warehouse` setting and of catalog prefixes:
/// a warehouse by id or name, then optionally `@` and a branch, tag or commit id. Neither
/// warehouse names nor ref names may contain `@`, so the first `@` splits them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseRef {
    pub warehouse: WarehouseSelector,
    pub reference: RefSelector,
}

impl fmt::Display for WarehouseSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WarehouseSelector::Id(id) => write!(f, "{id}"),
            WarehouseSelector::Name(name) => f.write_str(name),
        }
    }
}

impl fmt::Display for WarehouseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            RefSelector::Main => write!(f, "{}", self.warehouse),
            RefSelector::Named(name) => write!(f, "{}@{name}", self.warehouse),
        }
    }
}

impl WarehouseRef {
    /// `None` when there is no warehouse part (empty, or starting with `@`).
    pub fn parse(text: &str) -> Option<WarehouseRef> {
        let (warehouse, reference) = match text.split_once('@') {
            Some((warehouse, reference)) => (warehouse, Some(reference)),
            None => (text, None),
        };
        if warehouse.is_empty() {
            return None;
        }
        let warehouse = match warehouse.parse() {
            Ok(id) => WarehouseSelector::Id(id),
            Err(_) => WarehouseSelector::Name(warehouse.to_string()),
        };
        Some(WarehouseRef {
            warehouse,
            reference: RefSelector::parse(reference),
        })
    }

    /// A warehouse's id and a ref of it, as a catalog prefix: `<id>`, or `<id>@<ref>` for any
    /// ref but `main`.
    pub fn prefix(warehouse: WarehouseId, reference: &RefSelector) -> String {
        match reference {
            RefSelector::Main => warehouse.to_string(),
            RefSelector::Named(name) => format!("{warehouse}@{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_for_warehouse_at_ref() {
        let id = WarehouseId(uuid::Uuid::now_v7());
        let parsed = WarehouseRef::parse(&format!("{id}@dev.2")).unwrap();
        assert_eq!(parsed.warehouse, WarehouseSelector::Id(id));
        assert_eq!(parsed.reference, RefSelector::Named("dev.2".into()));
        let parsed = WarehouseRef::parse("demo").unwrap();
        assert_eq!(parsed.warehouse, WarehouseSelector::Name("demo".into()));
        assert!(parsed.reference.is_main());
        assert!(
            WarehouseRef::parse("demo@main")
                .unwrap()
                .reference
                .is_main()
        );
        assert_eq!(
            WarehouseRef::parse("demo@dev").unwrap().to_string(),
            "demo@dev"
        );
        // The first `@` splits: neither names may hold one, so what follows is the ref.
        assert_eq!(
            WarehouseRef::parse("demo@a@b").unwrap().reference,
            RefSelector::Named("a@b".into())
        );
        assert_eq!(WarehouseRef::parse(""), None);
        assert_eq!(WarehouseRef::parse("@dev"), None);
        assert!(RefSelector::parse(Some("")).is_unaddressable());
        assert!(RefSelector::parse(Some("~x")).is_unaddressable());
        assert!(!RefSelector::parse(Some("x")).is_unaddressable());
        let commit = CommitId::new();
        assert_eq!(
            RefSelector::parse(Some(&commit.to_string())).commit(),
            Some(commit)
        );
        assert_eq!(RefSelector::Main.commit(), None);
        assert_eq!(
            WarehouseRef::prefix(id, &RefSelector::Named("t1".into())),
            format!("{id}@t1")
        );
        assert_eq!(WarehouseRef::prefix(id, &RefSelector::Main), id.to_string());
    }

    #[test]
    fn hidden_refs_are_addressed_by_what_they_stand_for() {
        let commit = CommitId::new();
        let mut read =
            crate::model::Ref::new_main(WarehouseId(uuid::Uuid::now_v7()), chrono::Utc::now());
        assert!(!read.is_hidden());
        assert_eq!(read.selector(), RefSelector::Main);
        read.name = crate::model::Ref::commit_ref_name(commit);
        assert!(read.is_hidden());
        assert_eq!(read.selector(), RefSelector::Named(commit.to_string()));
        let retired = crate::model::Ref::retired_name("dev");
        assert!(is_hidden_ref_name(&retired));
        assert_ne!(retired, crate::model::Ref::retired_name("dev"));
    }
}
