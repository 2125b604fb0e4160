//! Roles and grants: the relationships of the authorization model (`authz/floe.fga`), kept in the
//! catalog database. Roles group users (and other roles' assignees); grants give a user or a
//! role's assignees one of the model's relations on an object.
//!
//! Stored and validated against the model; not yet enforced (the `Authorizer` is still
//! `AllowAll`, issue 18 wires the built-in evaluator).

use super::{RequestContext, Services};
use crate::authz::fga::Model;
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, Result};
use crate::model::{
    NamespaceIdent, Page, PageRequest, ProjectId, Relationship, Role, TabularKind, WarehouseId,
    now, tabular_object_id,
};

/// Who a grant or role assignment names: a user, or the assignees of a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grantee {
    User(String),
    Role(uuid::Uuid),
}

impl Grantee {
    /// `user:<provider>~<subject>` or `role:<id>`.
    pub fn parse(s: &str) -> Result<Grantee> {
        match s.split_once(':') {
            Some(("user", id)) => {
                // `<provider>~<subject>`: the provider as configured ids are, the subject
                // printable and without `#` (which would read as a userset), 512 bytes in all.
                let valid = id.len() <= 512
                    && id.split_once('~').is_some_and(|(p, sub)| {
                        !p.is_empty()
                            && p.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                            && !sub.is_empty()
                            && !sub
                                .chars()
                                .any(|c| c.is_control() || c.is_whitespace() || c == '#')
                    });
                if !valid {
                    return Err(Error::bad_request(format!(
                        "{s:?} is not a user: `user:<provider>~<subject>`"
                    )));
                }
                Ok(Grantee::User(id.to_string()))
            }
            Some(("role", id)) => uuid::Uuid::parse_str(id)
                .map(Grantee::Role)
                .map_err(|_| Error::bad_request(format!("{s:?} is not a role: `role:<role id>`"))),
            _ => Err(Error::bad_request(format!(
                "{s:?} names no user or role: `user:<provider>~<subject>` or `role:<role id>`"
            ))),
        }
    }

    fn subject(&self) -> (String, String, Option<String>) {
        match self {
            Grantee::User(id) => ("user".into(), id.clone(), None),
            Grantee::Role(id) => ("role".into(), id.to_string(), Some("assignee".into())),
        }
    }

    fn of(r: &Relationship) -> Option<Grantee> {
        match (r.subject_type.as_str(), r.subject_relation.as_deref()) {
            ("user", None) => Some(Grantee::User(r.subject_id.clone())),
            ("role", Some("assignee")) => {
                uuid::Uuid::parse_str(&r.subject_id).ok().map(Grantee::Role)
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Grantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grantee::User(id) => write!(f, "user:{id}"),
            Grantee::Role(id) => write!(f, "role:{id}"),
        }
    }
}

/// One grant on an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub grantee: Grantee,
    pub relation: String,
}

/// Grants and revokes (or assignees added and removed) in one request, as OpenFGA allows in one
/// write.
const MAX_CHANGES: usize = 100;

fn relationship(kind: &str, id: &str, relation: &str, grantee: &Grantee) -> Relationship {
    let (subject_type, subject_id, subject_relation) = grantee.subject();
    Relationship {
        object_type: kind.to_string(),
        object_id: id.to_string(),
        relation: relation.to_string(),
        subject_type,
        subject_id,
        subject_relation,
    }
}

fn check_role_name(name: &str, description: Option<&str>) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::bad_request(
            "a role name is 1 to 128 letters, digits, '-', '_' or '.'",
        ));
    }
    if description.is_some_and(|d| d.len() > 1000 || d.chars().any(char::is_control)) {
        return Err(Error::bad_request(
            "a description is at most 1000 characters without control characters",
        ));
    }
    Ok(())
}

impl Services {
    pub async fn create_role(
        &self,
        ctx: &RequestContext,
        name: &str,
        description: Option<String>,
    ) -> Result<Role> {
        self.authorize(ctx, Action::RoleManage, Resource::Server)
            .await?;
        check_role_name(name, description.as_deref())?;
        let at = now();
        let role = Role {
            id: uuid::Uuid::now_v7(),
            name: name.to_string(),
            description,
            created_at: at,
            updated_at: at,
        };
        let events = self.change_event(
            ctx,
            "role.created",
            format!("role/{}", role.id),
            serde_json::json!({ "name": role.name }),
        );
        self.store.authz.create_role(&role, &events).await?;
        self.forget_access();
        Ok(role)
    }

    pub async fn list_roles(
        &self,
        ctx: &RequestContext,
        name: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Role>> {
        self.authorize(ctx, Action::RoleRead, Resource::Server)
            .await?;
        self.store.authz.list_roles(name, page).await
    }

    pub async fn get_role(&self, ctx: &RequestContext, id: uuid::Uuid) -> Result<Role> {
        self.authorize(ctx, Action::RoleRead, Resource::Server)
            .await?;
        self.role(id).await
    }

    async fn role(&self, id: uuid::Uuid) -> Result<Role> {
        self.store
            .authz
            .get_role(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::Role, format!("role {id} does not exist")))
    }

    pub async fn update_role(
        &self,
        ctx: &RequestContext,
        id: uuid::Uuid,
        name: &str,
        description: Option<String>,
    ) -> Result<Role> {
        self.authorize(ctx, Action::RoleManage, Resource::Server)
            .await?;
        check_role_name(name, description.as_deref())?;
        let events = self.change_event(
            ctx,
            "role.updated",
            format!("role/{id}"),
            serde_json::json!({ "name": name }),
        );
        self.store
            .authz
            .update_role(id, name, description.as_deref(), now(), &events)
            .await?;
        self.forget_access();
        self.role(id).await
    }

    pub async fn delete_role(&self, ctx: &RequestContext, id: uuid::Uuid) -> Result<()> {
        self.authorize(ctx, Action::RoleManage, Resource::Server)
            .await?;
        self.role(id).await?;
        // Out of the authorizer's copy first: a failure after it leaves the role powerless.
        self.authz.remove_subject("role", &id.to_string()).await?;
        let events = self.change_event(
            ctx,
            "role.deleted",
            format!("role/{id}"),
            serde_json::json!({}),
        );
        self.store.authz.delete_role(id, &events).await?;
        self.forget_access();
        Ok(())
    }

    /// The users and roles assigned to a role.
    pub async fn role_assignees(
        &self,
        ctx: &RequestContext,
        id: uuid::Uuid,
    ) -> Result<Vec<Grantee>> {
        self.authorize(ctx, Action::RoleRead, Resource::Server)
            .await?;
        self.role(id).await?;
        let mut out: Vec<Grantee> = self
            .store
            .authz
            .object_relationships("role", &id.to_string())
            .await?
            .iter()
            .filter(|r| r.relation == "assignee")
            .filter_map(Grantee::of)
            .collect();
        out.sort_by_key(ToString::to_string);
        Ok(out)
    }

    /// Assigns and unassigns users and roles, atomically.
    pub async fn update_role_assignees(
        &self,
        ctx: &RequestContext,
        id: uuid::Uuid,
        add: &[Grantee],
        remove: &[Grantee],
    ) -> Result<Vec<Grantee>> {
        self.authorize(ctx, Action::RoleManage, Resource::Server)
            .await?;
        self.role(id).await?;
        if add.len() + remove.len() > MAX_CHANGES {
            return Err(Error::bad_request(format!(
                "at most {MAX_CHANGES} assignees added and removed in one request"
            )));
        }
        if let Some(both) = add.iter().find(|g| remove.contains(g)) {
            return Err(Error::bad_request(format!(
                "{both} is both added and removed"
            )));
        }
        for grantee in add {
            if let Grantee::Role(other) = grantee {
                self.role(*other)
                    .await
                    .map_err(|_| Error::bad_request(format!("role {other} does not exist")))?;
            }
        }
        let key = id.to_string();
        let to_rel = |g: &Grantee| relationship("role", &key, "assignee", g);
        let add: Vec<Relationship> = add.iter().map(to_rel).collect();
        let remove: Vec<Relationship> = remove.iter().map(to_rel).collect();
        let events = self.change_event(
            ctx,
            "role.assignees-updated",
            format!("role/{id}"),
            serde_json::json!({ "added": add.len(), "removed": remove.len() }),
        );
        self.write_relationships(&add, &remove, &events).await?;
        self.forget_access();
        self.role_assignees(ctx, id).await
    }

    /// Checks that grants may name `kind`/`id`: a type of the model whose object exists (projects
    /// and warehouses are looked up; the server is this server). Returns the resource and the id
    /// in its one stored form (a UUID's hyphenated lower case, however the caller wrote it).
    /// Every place the object is comes back: a table or view's UUID can be at more than one
    /// (registered again from its own files, by its owner), and a caller must hold what is asked
    /// at each.
    async fn grant_objects(&self, kind: &str, id: &str) -> Result<(Vec<Resource>, String)> {
        let one = |(resource, id): (Resource, String)| (vec![resource], id);
        let bad = || Error::bad_request(format!("{kind}:{id} is not an object grants can name"));
        match kind {
            "server" => {
                let info = self.bootstrapped().await?;
                if uuid::Uuid::parse_str(id).ok() != Some(info.server_id) {
                    return Err(Error::not_found(
                        Entity::Server,
                        format!("server {id} is not this server"),
                    ));
                }
                Ok(one((Resource::Server, info.server_id.to_string())))
            }
            "project" => {
                let project = ProjectId(uuid::Uuid::parse_str(id).map_err(|_| bad())?);
                self.store
                    .projects
                    .get_project(project)
                    .await?
                    .ok_or_else(|| {
                        Error::not_found(Entity::Project, format!("project {id} does not exist"))
                    })?;
                Ok(one((Resource::Project(project), project.0.to_string())))
            }
            "warehouse" => {
                let warehouse = WarehouseId(uuid::Uuid::parse_str(id).map_err(|_| bad())?);
                self.load_warehouse(warehouse).await?;
                Ok(one((
                    Resource::Warehouse(warehouse),
                    warehouse.0.to_string(),
                )))
            }
            // A namespace is named by its warehouse and path: `<warehouse id>/<levels joined by
            // U+001F>` (in a URL, `/` as `%2F` and the separator as `%1F`, as the catalog API
            // writes namespaces). Its grants hold on every branch, and for a namespace of that
            // name created later.
            "namespace" => {
                let (warehouse, namespace) = id.split_once('/').ok_or_else(bad)?;
                let warehouse = WarehouseId(uuid::Uuid::parse_str(warehouse).map_err(|_| bad())?);
                let namespace = NamespaceIdent::from_joined(namespace).map_err(|_| bad())?;
                self.load_warehouse(warehouse).await?;
                let object_id = namespace.object_id(warehouse);
                Ok(one((
                    Resource::Namespace {
                        warehouse,
                        namespace,
                    },
                    object_id,
                )))
            }
            // A table or view by its warehouse and UUID (`table-uuid`, `view-uuid` of its
            // metadata): it follows the table across branches and renames.
            "table" | "view" => {
                let (warehouse, uuid) = id.split_once('/').ok_or_else(bad)?;
                let warehouse = WarehouseId(uuid::Uuid::parse_str(warehouse).map_err(|_| bad())?);
                let uuid = uuid::Uuid::parse_str(uuid).map_err(|_| bad())?;
                let kind = if kind == "table" {
                    TabularKind::Table
                } else {
                    TabularKind::View
                };
                let found = self.located_on_main(warehouse, uuid, kind).await?;
                if found.is_empty() {
                    return Err(Error::not_found(
                        if kind == TabularKind::Table {
                            Entity::Table
                        } else {
                            Entity::View
                        },
                        format!("{} {uuid} does not exist on main", kind.as_str()),
                    ));
                }
                Ok((
                    found
                        .into_iter()
                        .map(|ident| Resource::Tabular {
                            warehouse,
                            ident,
                            uuid,
                            kind,
                        })
                        .collect(),
                    tabular_object_id(warehouse, uuid),
                ))
            }
            _ => Err(bad()),
        }
    }

    /// The grants on an object.
    pub async fn grants(&self, ctx: &RequestContext, kind: &str, id: &str) -> Result<Vec<Grant>> {
        let named = id;
        async {
            let (at, id) = self.grant_objects(kind, id).await?;
            for resource in at {
                self.authorize(ctx, Action::GrantsRead, resource).await?;
            }
            self.read_grants(kind, &id).await
        }
        .await
        .map_err(|e| missing_as_named(e, kind, named))
    }

    async fn read_grants(&self, kind: &str, id: &str) -> Result<Vec<Grant>> {
        let mut out: Vec<Grant> = self
            .store
            .authz
            .object_relationships(kind, id)
            .await?
            .iter()
            .filter_map(|r| {
                Some(Grant {
                    grantee: Grantee::of(r)?,
                    relation: r.relation.clone(),
                })
            })
            .collect();
        out.sort_by_key(|g| (g.grantee.to_string(), g.relation.clone()));
        Ok(out)
    }

    /// Grants and revokes relations on an object, atomically. Each relation must be one the model
    /// lets be granted on that type.
    pub async fn update_grants(
        &self,
        ctx: &RequestContext,
        kind: &str,
        id: &str,
        grant: &[Grant],
        revoke: &[Grant],
    ) -> Result<Vec<Grant>> {
        let named = id;
        let (at, id) = async {
            let (at, id) = self.grant_objects(kind, id).await?;
            for resource in &at {
                self.authorize(ctx, Action::GrantsManage, resource.clone())
                    .await?;
            }
            Ok((at, id))
        }
        .await
        .map_err(|e| missing_as_named(e, kind, named))?;
        let id = id.as_str();
        if grant.len() + revoke.len() > MAX_CHANGES {
            return Err(Error::bad_request(format!(
                "at most {MAX_CHANGES} grants and revokes in one request"
            )));
        }
        if let Some(both) = grant.iter().find(|g| revoke.contains(g)) {
            return Err(Error::bad_request(format!(
                "{} {} is both granted and revoked",
                both.grantee, both.relation
            )));
        }
        let model = Model::shared();
        for g in grant.iter().chain(revoke) {
            let (subject_type, _, subject_relation) = g.grantee.subject();
            if !model.accepts(
                kind,
                &g.relation,
                &subject_type,
                subject_relation.as_deref(),
            ) {
                return Err(Error::bad_request(format!(
                    "{:?} cannot be granted on a {kind} (grantable: {})",
                    g.relation,
                    model.grantable(kind).join(", ")
                )));
            }
        }
        // Grant managers hand on only what they hold themselves, and only owners hand on
        // ownership or the right to grant: nobody raises themselves or others above their own.
        let mut held: std::collections::BTreeMap<&str, bool> = Default::default();
        for g in grant.iter().chain(revoke) {
            let needed = match g.relation.as_str() {
                "ownership" | "manage_grants" => "ownership",
                other => other,
            };
            if !held.contains_key(needed) {
                let holds = match self.caller(ctx).await? {
                    None => true,
                    Some(caller) => {
                        let mut all = true;
                        for resource in &at {
                            let path = self.object_path(resource).await?;
                            all &= self.authz.check(&caller, needed, &path).await?;
                        }
                        all
                    }
                };
                held.insert(needed, holds);
            }
            if !held[needed] {
                return Err(Error::forbidden(format!(
                    "granting or revoking {:?} on this {kind} needs {needed:?} on it",
                    g.relation
                )));
            }
        }
        for g in grant {
            if let Grantee::Role(role) = &g.grantee {
                self.role(*role)
                    .await
                    .map_err(|_| Error::bad_request(format!("role {role} does not exist")))?;
            }
        }
        let to_rel = |g: &Grant| relationship(kind, id, &g.relation, &g.grantee);
        let add: Vec<Relationship> = grant.iter().map(to_rel).collect();
        let remove: Vec<Relationship> = revoke.iter().map(to_rel).collect();
        let events = self.change_event(
            ctx,
            "grants.updated",
            format!("{kind}/{id}"),
            serde_json::json!({
                "granted": grant.iter().map(|g| format!("{} {}", g.grantee, g.relation)).collect::<Vec<_>>(),
                "revoked": revoke.iter().map(|g| format!("{} {}", g.grantee, g.relation)).collect::<Vec<_>>(),
            }),
        );
        self.write_relationships(&add, &remove, &events).await?;
        self.forget_access();
        self.read_grants(kind, id).await
    }

    /// What the caller may do on an object: each relation of its type they hold (inherited ones
    /// included). An object the caller may not see answers 404, as a missing one does.
    pub async fn my_permissions(
        &self,
        ctx: &RequestContext,
        kind: &str,
        id: &str,
    ) -> Result<Vec<String>> {
        self.authorize(ctx, Action::PermissionsRead, Resource::Server)
            .await?;
        let named = id;
        let (at, _) = self
            .grant_objects(kind, id)
            .await
            .map_err(|e| missing_as_named(e, kind, named))?;
        let relations: Vec<&str> = Model::shared()
            .relations(kind)
            .into_iter()
            .filter(|r| !matches!(*r, "parent" | "child"))
            .collect();
        let Some(caller) = self.caller(ctx).await? else {
            return Ok(relations.into_iter().map(str::to_string).collect());
        };
        // What is held at every place the object is.
        let mut held: Option<Vec<String>> = None;
        for resource in &at {
            let here = self
                .relations_held(ctx, &caller, &relations, resource)
                .await?;
            held = Some(match held {
                None => here,
                Some(before) => before.into_iter().filter(|r| here.contains(r)).collect(),
            });
        }
        let held = held.unwrap_or_default();
        if held.is_empty() {
            // Nothing held, not even `browse`: as if it did not exist.
            for resource in at {
                self.authorize(ctx, Action::GrantsRead, resource)
                    .await
                    .map_err(|e| missing_as_named(e, kind, named))?;
            }
        }
        Ok(held)
    }

    /// Which of `relations` the caller holds on the object.
    async fn relations_held(
        &self,
        ctx: &RequestContext,
        caller: &crate::authz::Caller,
        relations: &[&str],
        resource: &Resource,
    ) -> Result<Vec<String>> {
        let path = self.object_path(resource).await?;
        let answers = self.authz.check_many(caller, relations, &path).await?;
        let mut held = Vec::new();
        for (relation, holds) in relations.iter().zip(answers) {
            // `browse` also holds for who holds something below (see `access`).
            let holds = holds
                || (*relation == "browse"
                    && self.holds_something_below(ctx, caller, resource).await?);
            if holds {
                held.push(relation.to_string());
            }
        }
        Ok(held)
    }

    /// Answers several checks of the caller at once (at most 100): whether they hold each
    /// relation on each object. An object that does not exist, or that they may not see, is
    /// `false`, as is a relation its type does not have.
    pub async fn check_permissions(
        &self,
        ctx: &RequestContext,
        checks: &[(String, String, String)],
    ) -> Result<Vec<bool>> {
        self.authorize(ctx, Action::PermissionsRead, Resource::Server)
            .await?;
        if checks.len() > MAX_CHANGES {
            return Err(Error::bad_request(format!(
                "at most {MAX_CHANGES} checks in one request"
            )));
        }
        let caller = self.caller(ctx).await?;
        let mut out = Vec::with_capacity(checks.len());
        for (kind, id, relation) in checks {
            if !Model::shared().has_relation(kind, relation) {
                out.push(false);
                continue;
            }
            let at = match self.grant_objects(kind, id).await {
                Ok((at, _)) => at,
                Err(e) if matches!(e.kind, crate::error::ErrorKind::NotFound(_)) => {
                    out.push(false);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let holds = match &caller {
                None => true,
                Some(caller) => {
                    let mut all = true;
                    for resource in &at {
                        all &= !self
                            .relations_held(ctx, caller, &[relation.as_str()], resource)
                            .await?
                            .is_empty();
                    }
                    all
                }
            };
            out.push(holds);
        }
        Ok(out)
    }
}

/// A missing or hidden object of the grants and permissions APIs, answered the same way and
/// naming only what the caller named (never where a table is, which a hidden one would tell).
fn missing_as_named(e: Error, kind: &str, named: &str) -> Error {
    match e.kind {
        crate::error::ErrorKind::NotFound(entity) => Error::not_found(
            entity_of(kind).unwrap_or(entity),
            format!("{kind} {named} does not exist"),
        ),
        _ => e,
    }
}

fn entity_of(kind: &str) -> Option<Entity> {
    Some(match kind {
        "project" => Entity::Project,
        "warehouse" => Entity::Warehouse,
        "namespace" => Entity::Namespace,
        "table" => Entity::Table,
        "view" => Entity::View,
        _ => return None,
    })
}
