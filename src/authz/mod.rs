//! Authorization: may this caller do this action on this object? Every use case in `service/`
//! asks in its authorize phase, after it has found the object the request names, with the
//! object's ancestry (server, project, warehouse, namespaces). The model is `authz/floe.fga`
//! (OpenFGA's DSL); `rules` says which relation each action needs.
//!
//! Backends (`authz.backend`): [`AllowAll`] (development, no checks), [`builtin::Builtin`]
//! (relationships in Floe's own database, evaluated by [`fga`]), [`openfga::OpenFga`]
//! (relationships mirrored to an OpenFGA server, which evaluates every check).
//!
//! Depends on `model` and `error` only; the built-in backend reads relationships through
//! [`builtin::RelationshipReader`], which the wiring implements over the store.

pub mod builtin;
pub mod fga;
pub mod openfga;
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
    /// Mirrors a change of relationships to a backend that keeps its own copy (OpenFGA); the
    /// catalog database holds them either way. Idempotent: present ones stay, absent ones are
    /// ignored.
    async fn write(
        &self,
        _add: &[crate::model::Relationship],
        _remove: &[crate::model::Relationship],
    ) -> Result<()> {
        Ok(())
    }
    /// Removes every relationship that names a user or a role (being deleted) from a backend
    /// that keeps its own copy.
    async fn remove_subject(&self, _kind: &str, _id: &str) -> Result<()> {
        Ok(())
    }
    async fn health(&self) -> Result<()>;
}

/// The relationships a check supplies along with the caller's stored ones: the `parent` links
/// of `path` (server down to the object), `admin` on the server for a server admin, and
/// `assignee` of each role the caller's token maps to. Both backends evaluate with exactly
/// these (the built-in one in memory, OpenFGA as contextual tuples).
pub fn context_relationships(
    caller: &Caller,
    path: &[ObjectRef],
) -> Vec<crate::model::Relationship> {
    use crate::model::Relationship;
    let mut out = Vec::new();
    for pair in path.windows(2) {
        let (parent, child) = (&pair[0], &pair[1]);
        out.push(Relationship {
            object_type: child.kind.as_str().to_string(),
            object_id: child.id.clone(),
            relation: "parent".to_string(),
            subject_type: parent.kind.as_str().to_string(),
            subject_id: parent.id.clone(),
            subject_relation: None,
        });
    }
    let of_user = |object_type: &str, object_id: &str, relation: &str| Relationship {
        object_type: object_type.to_string(),
        object_id: object_id.to_string(),
        relation: relation.to_string(),
        subject_type: "user".to_string(),
        subject_id: caller.user.clone(),
        subject_relation: None,
    };
    if caller.admin
        && let Some(server) = path.iter().find(|o| o.kind == ObjectType::Server)
    {
        out.push(of_user("server", &server.id, "admin"));
    }
    for role in &caller.mapped_roles {
        out.push(of_user("role", role, "assignee"));
    }
    out
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
