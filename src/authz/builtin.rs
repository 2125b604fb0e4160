//! The built-in backend: relationships in Floe's own database, evaluated by [`super::fga`]
//! against the model, per check, over only what the check can reach: the parent links of the
//! object's ancestry (given by the use case, so nothing about structure is read), the grants the
//! caller (their user and every role they are an assignee of, nested roles included) holds on
//! those objects, and their role memberships. One indexed query per check.

use std::sync::Arc;

use async_trait::async_trait;

use super::fga::{DepthExceeded, Evaluator, MemoryTuples, Model, Subject};
use super::{Authorizer, Caller, Granted, ObjectRef, ObjectType};
use crate::error::{Error, Result};
use crate::model::Relationship;

/// Where the built-in backend reads relationships (the store, in the wiring).
#[async_trait]
pub trait RelationshipReader: Send + Sync {
    /// The roles `user` is an assignee of, directly, through the assignees of `seed_roles`
    /// (role ids) or through nested roles, and the relationships (not role assignments) whose
    /// subject is the user or one of those roles' assignees: only those on `objects` when
    /// given, else all.
    async fn caller_relationships(
        &self,
        user: &str,
        seed_roles: &[String],
        objects: Option<&[ObjectRef]>,
    ) -> Result<(Vec<String>, Vec<Relationship>)>;
}

pub struct Builtin {
    reader: Arc<dyn RelationshipReader>,
}

impl Builtin {
    pub fn new(reader: Arc<dyn RelationshipReader>) -> Self {
        Builtin { reader }
    }
}

/// Evaluates `relation` on the last object of `path` for `caller`, given their roles and the
/// relationships that name them on objects of the path.
pub fn evaluate(
    caller: &Caller,
    roles: &[String],
    grants: &[Relationship],
    relation: &str,
    path: &[ObjectRef],
) -> std::result::Result<bool, DepthExceeded> {
    let Some(object) = path.last() else {
        return Ok(false);
    };
    let mut tuples = MemoryTuples::default();
    for pair in path.windows(2) {
        let (parent, child) = (&pair[0], &pair[1]);
        tuples.push(
            Subject::object(parent.kind.as_str(), &parent.id),
            "parent",
            child.kind.as_str(),
            &child.id,
        );
    }
    let user = Subject::object("user", &caller.user);
    if caller.admin
        && let Some(server) = path.iter().find(|o| o.kind == ObjectType::Server)
    {
        tuples.push(user.clone(), "admin", "server", &server.id);
    }
    for role in roles.iter().chain(&caller.mapped_roles) {
        tuples.push(user.clone(), "assignee", "role", role);
    }
    for r in grants {
        tuples.push(
            Subject {
                kind: r.subject_type.clone(),
                id: r.subject_id.clone(),
                relation: r.subject_relation.clone(),
            },
            &r.relation,
            &r.object_type,
            &r.object_id,
        );
    }
    let evaluator = Evaluator {
        model: Model::shared(),
        tuples: &tuples,
    };
    evaluator.check(
        &user,
        relation,
        &Subject::object(object.kind.as_str(), &object.id),
    )
}

#[async_trait]
impl Authorizer for Builtin {
    async fn check(&self, caller: &Caller, relation: &str, path: &[ObjectRef]) -> Result<bool> {
        let (roles, grants) = self
            .reader
            .caller_relationships(&caller.user, &caller.mapped_roles, Some(path))
            .await?;
        evaluate(caller, &roles, &grants, relation, path).map_err(|DepthExceeded| {
            Error::internal(
                "authorizing",
                anyhow::anyhow!("a check went deeper than the model allows"),
            )
        })
    }

    async fn check_many(
        &self,
        caller: &Caller,
        relations: &[&str],
        path: &[ObjectRef],
    ) -> Result<Vec<bool>> {
        let (roles, grants) = self
            .reader
            .caller_relationships(&caller.user, &caller.mapped_roles, Some(path))
            .await?;
        relations
            .iter()
            .map(|relation| {
                evaluate(caller, &roles, &grants, relation, path).map_err(|DepthExceeded| {
                    Error::internal(
                        "authorizing",
                        anyhow::anyhow!("a check went deeper than the model allows"),
                    )
                })
            })
            .collect()
    }

    async fn granted(&self, caller: &Caller) -> Result<Vec<Granted>> {
        let (_, grants) = self
            .reader
            .caller_relationships(&caller.user, &caller.mapped_roles, None)
            .await?;
        let mut out: Vec<Granted> = grants
            .into_iter()
            .filter_map(|r| {
                Some(Granted {
                    object: ObjectRef::new(ObjectType::parse(&r.object_type)?, r.object_id),
                    relation: r.relation,
                })
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(kinds: &[(ObjectType, &str)]) -> Vec<ObjectRef> {
        kinds
            .iter()
            .map(|(k, id)| ObjectRef::new(*k, *id))
            .collect()
    }

    fn grant(
        object: (&str, &str),
        relation: &str,
        subject: (&str, &str, Option<&str>),
    ) -> Relationship {
        Relationship {
            object_type: object.0.into(),
            object_id: object.1.into(),
            relation: relation.into(),
            subject_type: subject.0.into(),
            subject_id: subject.1.into(),
            subject_relation: subject.2.map(str::to_string),
        }
    }

    fn caller(admin: bool, mapped: &[&str]) -> Caller {
        Caller {
            user: "idp~u".into(),
            mapped_roles: mapped.iter().map(|s| s.to_string()).collect(),
            admin,
        }
    }

    #[test]
    fn grants_inherit_down_the_path_and_only_down() {
        use ObjectType as T;
        let table = path(&[
            (T::Server, "s"),
            (T::Project, "p"),
            (T::Warehouse, "w"),
            (T::Namespace, "w/a"),
            (T::Namespace, "w/a%1Fb"),
            (T::Table, "w/t"),
        ]);
        let on_ns = [grant(
            ("namespace", "w/a"),
            "select",
            ("user", "idp~u", None),
        )];
        let me = caller(false, &[]);
        assert_eq!(evaluate(&me, &[], &on_ns, "can_load", &table), Ok(true));
        assert_eq!(evaluate(&me, &[], &on_ns, "can_commit", &table), Ok(false));
        // Not upward: the warehouse is not describable from a namespace grant.
        assert_eq!(
            evaluate(&me, &[], &on_ns, "describe", &table[..3]),
            Ok(false)
        );
        // Someone else's grant gives nothing.
        let theirs = [grant(
            ("namespace", "w/a"),
            "ownership",
            ("user", "idp~x", None),
        )];
        assert_eq!(evaluate(&me, &[], &theirs, "can_load", &table), Ok(false));
        // Through a role the caller is in (by the store's closure, or mapped from the token).
        let to_role = [grant(
            ("warehouse", "w"),
            "modify",
            ("role", "r1", Some("assignee")),
        )];
        assert_eq!(
            evaluate(&me, &[], &to_role, "can_commit", &table),
            Ok(false)
        );
        assert_eq!(
            evaluate(&me, &["r1".into()], &to_role, "can_commit", &table),
            Ok(true)
        );
        assert_eq!(
            evaluate(&caller(false, &["r1"]), &[], &to_role, "can_commit", &table),
            Ok(true)
        );
        // A server admin holds everything below the server; nobody holds anything without a path.
        assert_eq!(
            evaluate(&caller(true, &[]), &[], &[], "can_drop", &table),
            Ok(true)
        );
        assert_eq!(
            evaluate(&caller(true, &[]), &[], &[], "can_drop", &[]),
            Ok(false)
        );
    }
}
