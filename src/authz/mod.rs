//! Authorization: may this caller do this action on this object? Every use case in `service/`
//! asks in its authorize phase, after it has found the object the request names, with the
//! object's ancestry (server, project, warehouse, namespaces). The model is `authz/floe.fga`
//! (OpenFGA's DSL); `rules` says which relation each action needs.
//!
//! Backends (`authz.backend`): [`AllowAll`] (development, no checks), [`builtin::Builtin`]
//! (relationships in Floe's own database, evaluated by [`fga`]).
//!
//! Depends on `model` and `authn` only; the built-in backend reads relationships through
//! [`builtin::RelationshipReader`], which the wiring implements over the store.

pub mod builtin;
pub mod fga;
pub mod roles;
pub mod rules;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{NamespaceIdent, ProjectId, TabularIdent, TabularKind, WarehouseId};

pub use crate::model::Action;
pub use rules::ObjectType;

/// What an action is on, as a use case names it once it has found the object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    Server,
    Project(ProjectId),
    Warehouse(WarehouseId),
    Namespace {
        warehouse: WarehouseId,
        namespace: NamespaceIdent,
    },
    /// A table or view that exists, named by its UUID (which follows it across branches and
    /// renames) and found at `ident`.
    Tabular {
        warehouse: WarehouseId,
        ident: TabularIdent,
        uuid: uuid::Uuid,
        kind: TabularKind,
    },
}

/// One object of the model: `kind:id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: ObjectType,
    pub id: String,
}

impl ObjectRef {
    pub fn new(kind: ObjectType, id: impl Into<String>) -> Self {
        ObjectRef {
            kind,
            id: id.into(),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

/// A caller as the authorizer sees them: a user, the Floe roles their IdP roles map to (by id,
/// from the token of this request), and whether they are a server admin by configuration or
/// bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub mapped_roles: Vec<String>,
    pub admin: bool,
}

/// A relation the caller holds on an object directly (given to them or to a role they are an
/// assignee of), not inherited.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Granted {
    pub object: ObjectRef,
    pub relation: String,
}

#[async_trait]
pub trait Authorizer: Send + Sync {
    /// False for a backend that allows everything (use cases then skip the work of asking).
    fn enforces(&self) -> bool {
        true
    }
    /// Whether `caller` has `relation` on the last object of `path`; `path` runs from the
    /// server down to it, each object the parent of the next.
    async fn check(&self, caller: &Caller, relation: &str, path: &[ObjectRef]) -> Result<bool>;
    /// Several relations on one object, answered in order.
    async fn check_many(
        &self,
        caller: &Caller,
        relations: &[&str],
        path: &[ObjectRef],
    ) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(relations.len());
        for relation in relations {
            out.push(self.check(caller, relation, path).await?);
        }
        Ok(out)
    }
    /// Every relation the caller holds directly, on any object: what lists start from (an
    /// object below one of these, or above one, is one the caller may see).
    async fn granted(&self, caller: &Caller) -> Result<Vec<Granted>>;
    /// Relationships changed through this instance: what the backend kept of them is stale.
    fn forget(&self) {}
    /// These relationships were just written through this instance (nothing removed).
    fn added(&self, _relationships: &[crate::model::Relationship]) {
        self.forget();
    }
    async fn health(&self) -> Result<()>;
}

/// Allows everything.
pub struct AllowAll;

#[async_trait]
impl Authorizer for AllowAll {
    fn enforces(&self) -> bool {
        false
    }

    async fn check(&self, _: &Caller, _: &str, _: &[ObjectRef]) -> Result<bool> {
        Ok(true)
    }

    async fn granted(&self, _: &Caller) -> Result<Vec<Granted>> {
        Ok(Vec::new())
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}
