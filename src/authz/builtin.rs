//! The built-in backend: relationships in Floe's own database, evaluated by [`super::fga`]
//! against the model, per check, over only what the check can reach: the parent links of the
//! object's ancestry (given by the use case, so nothing about structure is read), the grants the
//! caller (their user and every role they are an assignee of, nested roles included) holds on
//! those objects, and their role memberships.
//!
//! What a caller holds is read in one query (all their grants, indexed by object) and kept for a
//! few seconds ([`CALLER_TTL`]), so a check costs no database round trip. Every relationship
//! write through this instance forgets all of it at once ([`Authorizer::forget`]); other
//! instances see a change within the TTL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::fga::{DepthExceeded, Evaluator, MemoryTuples, Model, Subject};
use super::{Authorizer, Caller, Granted, ObjectRef, ObjectType, context_relationships};
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

/// How long an instance trusts what it read of a caller's grants (a change made through another
/// instance takes effect within this time).
pub const CALLER_TTL: Duration = Duration::from_secs(5);

/// Callers whose grants are kept at most (past it, all are forgotten).
const MAX_CALLERS: usize = 10_000;

/// What one caller holds: their roles and their grants, by object (grants this instance writes
/// for the caller are added in place, see [`Authorizer::added`]).
struct Holdings {
    roles: Vec<String>,
    by_object: std::sync::RwLock<HashMap<(String, String), Vec<Relationship>>>,
}

impl Holdings {
    fn on_path(&self, path: &[ObjectRef]) -> Vec<Relationship> {
        let by_object = self.by_object.read().expect("holdings lock");
        let mut out = Vec::new();
        for object in path {
            if let Some(grants) =
                by_object.get(&(object.kind.as_str().to_string(), object.id.clone()))
            {
                out.extend(grants.iter().cloned());
            }
        }
        out
    }
}

type CallerKey = (String, Vec<String>);

pub struct Builtin {
    reader: Arc<dyn RelationshipReader>,
    holdings: Mutex<HashMap<CallerKey, (Instant, Arc<Holdings>)>>,
    /// Bumped by every `forget`: a read that began before it is not kept.
    generation: AtomicU64,
}

impl Builtin {
    pub fn new(reader: Arc<dyn RelationshipReader>) -> Self {
        Builtin {
            reader,
            holdings: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    async fn holdings(&self, caller: &Caller) -> Result<Arc<Holdings>> {
        let key = (caller.user.clone(), caller.mapped_roles.clone());
        if let Some((at, held)) = self.holdings.lock().expect("cache lock").get(&key)
            && at.elapsed() < CALLER_TTL
        {
            return Ok(held.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let (roles, grants) = self
            .reader
            .caller_relationships(&caller.user, &caller.mapped_roles, None)
            .await?;
        let mut by_object: HashMap<(String, String), Vec<Relationship>> = HashMap::new();
        for r in grants {
            by_object
                .entry((r.object_type.clone(), r.object_id.clone()))
                .or_default()
                .push(r);
        }
        let held = Arc::new(Holdings {
            roles,
            by_object: std::sync::RwLock::new(by_object),
        });
        let mut cache = self.holdings.lock().expect("cache lock");
        if self.generation.load(Ordering::SeqCst) == generation {
            if cache.len() >= MAX_CALLERS {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), held.clone()));
        }
        Ok(held)
    }
}

fn too_deep(DepthExceeded: DepthExceeded) -> Error {
    Error::internal(
        "authorizing",
        anyhow::anyhow!("a check went deeper than the model allows"),
    )
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
    let user = Subject::object("user", &caller.user);
    for role in roles {
        tuples.push(user.clone(), "assignee", "role", role);
    }
    for r in context_relationships(caller, path).iter().chain(grants) {
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
        let held = self.holdings(caller).await?;
        evaluate(caller, &held.roles, &held.on_path(path), relation, path).map_err(too_deep)
    }

    async fn check_many(
        &self,
        caller: &Caller,
        relations: &[&str],
        path: &[ObjectRef],
    ) -> Result<Vec<bool>> {
        let held = self.holdings(caller).await?;
        let grants = held.on_path(path);
        relations
            .iter()
            .map(|relation| {
                evaluate(caller, &held.roles, &grants, relation, path).map_err(too_deep)
            })
            .collect()
    }

    async fn granted(&self, caller: &Caller) -> Result<Vec<Granted>> {
        let held = self.holdings(caller).await?;
        let by_object = held.by_object.read().expect("holdings lock");
        let mut out: Vec<Granted> = by_object
            .values()
            .flatten()
            .filter_map(|r| {
                Some(Granted {
                    object: ObjectRef::new(ObjectType::parse(&r.object_type)?, r.object_id.clone()),
                    relation: r.relation.clone(),
                })
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn forget(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.holdings.lock().expect("cache lock").clear();
    }

    fn added(&self, relationships: &[Relationship]) {
        if relationships
            .iter()
            .any(|r| r.subject_type != "user" || r.subject_relation.is_some())
        {
            return self.forget();
        }
        // A read in flight may have missed them: it is not kept.
        self.generation.fetch_add(1, Ordering::SeqCst);
        let cache = self.holdings.lock().expect("cache lock");
        for ((user, _), (_, held)) in cache.iter() {
            for r in relationships.iter().filter(|r| &r.subject_id == user) {
                held.by_object
                    .write()
                    .expect("holdings lock")
                    .entry((r.object_type.clone(), r.object_id.clone()))
                    .or_default()
                    .push(r.clone());
            }
        }
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
