//! Authorization in the use cases: who the caller is to the `Authorizer`, where an object sits in
//! the model (its ancestry, from the server down), the check each use case makes once it has
//! found what the request names, and what lists may show.
//!
//! A refusal never tells more than the caller may see: an object the caller may not `browse`
//! (describe, or hold something below) answers exactly as a missing one does; one they may
//! browse but not act on answers 403.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::{RequestContext, Services};
use crate::authn::Principal;
use crate::authz::rules::{Requirement, requirement};
use crate::authz::{Action, Caller, Granted, ObjectRef, ObjectType, Resource};
use crate::error::{Entity, Error, ErrorKind, Result};
use crate::model::{
    AccessKey, FileAccess, NamespaceIdent, PageRequest, ProjectId, ServerInfo, TabularKind,
    WarehouseId, parse_tabular_object_id, tabular_object_id,
};

/// How long this process trusts what it read of the server (its admin) and of role names.
const TTL: Duration = Duration::from_secs(5);

/// What a list may show the caller.
pub(crate) enum Visible {
    /// Everything (no checks, or the caller may describe the whole scope).
    All,
    /// Only these (names of children, as the store lists them).
    Only(Vec<String>),
}

impl Visible {
    pub(crate) fn only(&self) -> Option<&[String]> {
        match self {
            Visible::All => None,
            Visible::Only(names) => Some(names),
        }
    }
}

/// One user's decisions, by key, with when each was made.
type Decisions = HashMap<u64, (Instant, bool)>;

/// A warehouse's protected branches, as read.
type Protected = std::sync::Arc<Vec<String>>;

/// Process-local caches of what every check needs.
#[derive(Default)]
pub(super) struct AccessCaches {
    server: std::sync::Mutex<Option<(Instant, ServerInfo)>>,
    roles: std::sync::Mutex<Option<(Instant, HashMap<String, uuid::Uuid>)>>,
    /// Each warehouse's protected branches.
    protected: std::sync::Mutex<HashMap<WarehouseId, (Instant, Protected)>>,
    /// Decisions of `may`, per user, by a keyed hash of what decides them (see `decision_key`).
    decisions: std::sync::Mutex<HashMap<String, Decisions>>,
    /// The hasher of decision keys (random per process, so keys cannot be aimed at each other).
    decision_hasher: std::hash::RandomState,
    /// Bumped whenever what was decided may be stale: a decision made from an older read is not
    /// kept.
    generation: std::sync::atomic::AtomicU64,
    /// What each admin key of the gateway may do, by key id (see `key_rights`).
    key_rights: std::sync::Mutex<HashMap<String, (Instant, Option<FileAccess>)>>,
}

fn resource_kind(resource: &Resource) -> ObjectType {
    match resource {
        Resource::Server => ObjectType::Server,
        Resource::Project(_) => ObjectType::Project,
        Resource::Warehouse(_) => ObjectType::Warehouse,
        Resource::Namespace { .. } => ObjectType::Namespace,
        Resource::Tabular {
            kind: TabularKind::Table,
            ..
        } => ObjectType::Table,
        Resource::Tabular {
            kind: TabularKind::View,
            ..
        } => ObjectType::View,
    }
}

/// The answer for an object the caller may not see: what the request would get if it did not
/// exist.
fn hidden(resource: &Resource, level: &ObjectRef) -> Error {
    let no_warehouse = |w: &WarehouseId| {
        Error::not_found(Entity::Warehouse, format!("warehouse {w} does not exist"))
    };
    let above_warehouse = matches!(level.kind, ObjectType::Project | ObjectType::Warehouse);
    match resource {
        Resource::Server => Error::forbidden("not allowed"),
        Resource::Project(p) => {
            Error::not_found(Entity::Project, format!("project {p} does not exist"))
        }
        Resource::Warehouse(w) => no_warehouse(w),
        Resource::Namespace { warehouse, .. } | Resource::Tabular { warehouse, .. }
            if above_warehouse =>
        {
            no_warehouse(warehouse)
        }
        Resource::Namespace { namespace, .. } => Error::not_found(
            Entity::Namespace,
            format!("namespace {namespace} does not exist"),
        ),
        Resource::Tabular {
            ident,
            kind: TabularKind::Table,
            ..
        } => Error::not_found(Entity::Table, format!("table {ident} does not exist")),
        Resource::Tabular {
            ident,
            kind: TabularKind::View,
            ..
        } => Error::not_found(Entity::View, format!("view {ident} does not exist")),
    }
}

impl Services {
    /// The server's record, read at most every few seconds.
    pub(crate) async fn server_snapshot(&self) -> Result<Option<ServerInfo>> {
        if let Some((at, info)) = self.access.server.lock().expect("cache lock").as_ref()
            && at.elapsed() < TTL
        {
            return Ok(Some(info.clone()));
        }
        let info = self.store.server.server_info().await?;
        if let Some(info) = &info {
            *self.access.server.lock().expect("cache lock") = Some((Instant::now(), info.clone()));
        }
        Ok(info)
    }

    /// Forgets what this process read of the server and of roles (after it changed them).
    pub(crate) fn forget_access(&self) {
        *self.access.server.lock().expect("cache lock") = None;
        *self.access.roles.lock().expect("cache lock") = None;
        self.access.key_rights.lock().expect("cache lock").clear();
        self.access
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.access.decisions.lock().expect("cache lock").clear();
        self.authz.forget();
    }

    /// Forgets one user's decisions (after something was granted to them).
    fn forget_decisions(&self, user: &str) {
        self.access
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.access
            .decisions
            .lock()
            .expect("cache lock")
            .remove(user);
    }

    /// What a decision of `may` depends on: the caller's identity and the IdP roles of their
    /// token (which decide their mapped roles), the relation, the resource (which decides the
    /// object and its whole ancestry) and the request's ref (lists locate tables on it).
    fn decision_key(
        &self,
        identity: &crate::authn::Identity,
        relation: &str,
        resource: &Resource,
        ctx: &RequestContext,
    ) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = self.access.decision_hasher.build_hasher();
        identity.provider.hash(&mut h);
        identity.roles.hash(&mut h);
        relation.hash(&mut h);
        resource.hash(&mut h);
        ctx.reference.as_str().hash(&mut h);
        h.finish()
    }

    /// The ids of the roles with these names (names without a role are left out).
    async fn role_ids(&self, names: &[String]) -> Result<Vec<String>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let cached = self
            .access
            .roles
            .lock()
            .expect("cache lock")
            .as_ref()
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, roles)| roles.clone());
        let roles = match cached {
            Some(roles) => roles,
            None => {
                let all = self
                    .store
                    .authz
                    .list_roles(None, &PageRequest::all())
                    .await?;
                let roles: HashMap<String, uuid::Uuid> =
                    all.items.into_iter().map(|r| (r.name, r.id)).collect();
                *self.access.roles.lock().expect("cache lock") =
                    Some((Instant::now(), roles.clone()));
                roles
            }
        };
        Ok(names
            .iter()
            .filter_map(|n| roles.get(n).map(|id| id.to_string()))
            .collect())
    }

    /// The caller as the authorizer sees them; `None` when nothing is checked (the allow-all
    /// backend, or Floe acting on its own behalf).
    pub(crate) async fn caller(&self, ctx: &RequestContext) -> Result<Option<Caller>> {
        if !self.authz.enforces() {
            return Ok(None);
        }
        match &ctx.principal {
            Principal::System => Ok(None),
            Principal::Anonymous => Err(Error::new(
                ErrorKind::Unauthenticated,
                "this server checks permissions: sign in",
            )),
            Principal::User(identity) => {
                let names = crate::authz::roles::mapped_roles(
                    &self.role_mappings,
                    &identity.provider,
                    &identity.roles,
                );
                let mapped_roles = self.role_ids(&names).await?;
                let admin = self.admins.contains(&identity.id)
                    || self
                        .server_snapshot()
                        .await?
                        .and_then(|info| info.admin)
                        .is_some_and(|admin| admin == identity.id);
                Ok(Some(Caller {
                    user: identity.id.clone(),
                    mapped_roles,
                    admin,
                }))
            }
        }
    }

    /// The object a resource names, with its ancestry: server first, the object last.
    pub(crate) async fn object_path(&self, resource: &Resource) -> Result<Vec<ObjectRef>> {
        let server = match self.server_snapshot().await? {
            Some(info) => info,
            None => self.bootstrapped().await?,
        };
        let mut path = vec![ObjectRef::new(
            ObjectType::Server,
            server.server_id.to_string(),
        )];
        let warehouse = match resource {
            Resource::Server => return Ok(path),
            Resource::Project(project) => {
                path.push(ObjectRef::new(ObjectType::Project, project.0.to_string()));
                return Ok(path);
            }
            Resource::Warehouse(w)
            | Resource::Namespace { warehouse: w, .. }
            | Resource::Tabular { warehouse: w, .. } => *w,
        };
        let record = self.cached_warehouse(warehouse).await?;
        path.push(ObjectRef::new(
            ObjectType::Project,
            record.project_id.0.to_string(),
        ));
        path.push(ObjectRef::new(
            ObjectType::Warehouse,
            warehouse.0.to_string(),
        ));
        let namespace = match resource {
            Resource::Namespace { namespace, .. } => Some(namespace),
            Resource::Tabular { ident, .. } => Some(&ident.namespace),
            _ => None,
        };
        if let Some(namespace) = namespace {
            let levels = namespace.levels();
            for depth in 1..=levels.len() {
                let level = NamespaceIdent::new(levels[..depth].to_vec())?;
                path.push(ObjectRef::new(
                    ObjectType::Namespace,
                    level.object_id(warehouse),
                ));
            }
        }
        if let Resource::Tabular { uuid, .. } = resource {
            path.push(ObjectRef::new(
                resource_kind(resource),
                tabular_object_id(warehouse, *uuid),
            ));
        }
        Ok(path)
    }

    /// Records a change of relationships (grants, role assignments) in the catalog database and
    /// in the authorizer when it keeps its own copy (OpenFGA). Removals reach the authorizer
    /// first and additions last, so a failure in between leaves fewer rights in force than the
    /// database lists, never more; both writes are idempotent, so repeating the request
    /// converges.
    pub(crate) async fn write_relationships(
        &self,
        add: &[crate::model::Relationship],
        remove: &[crate::model::Relationship],
        events: &[crate::model::events::CloudEvent],
    ) -> Result<()> {
        if !remove.is_empty() {
            self.authz.write(&[], remove).await?;
        }
        self.store
            .authz
            .write_relationships(add, remove, crate::model::now(), events)
            .await?;
        if !add.is_empty() {
            self.authz.write(add, &[]).await?;
        }
        Ok(())
    }

    /// Makes the caller (a user) the owner of what they just created. After the object's own
    /// commit: a failure here is logged and leaves the object to the owners of its parents.
    pub(crate) async fn own(&self, ctx: &RequestContext, resource: Resource) {
        let Some(identity) = ctx.principal.identity() else {
            return;
        };
        let written = async {
            let path = self.object_path(&resource).await?;
            let object = path.last().expect("a path ends at its object");
            let owner = crate::model::Relationship {
                object_type: object.kind.as_str().to_string(),
                object_id: object.id.clone(),
                relation: "ownership".to_string(),
                subject_type: "user".to_string(),
                subject_id: identity.id.clone(),
                subject_relation: None,
            };
            self.write_relationships(std::slice::from_ref(&owner), &[], &[])
                .await?;
            Ok::<_, Error>(owner)
        }
        .await;
        match &written {
            Ok(owner) => self.authz.added(std::slice::from_ref(owner)),
            Err(_) => self.authz.forget(),
        }
        self.forget_decisions(&identity.id);
        if let Err(e) = written {
            tracing::warn!(error = ?e, ?resource, "recording the creator as owner failed");
        }
    }

    /// Authorizes `action` on the table or view the request's ref sees at `ident`. When there is
    /// none, `Ok`: the use case then answers as for any missing one (404), which is also what a
    /// caller who may not see an existing one gets.
    /// Answers the UUID it authorized (`None` when nothing is checked), for an act that can
    /// hold itself to it.
    pub(crate) async fn authorize_tabular(
        &self,
        ctx: &RequestContext,
        action: Action,
        warehouse: WarehouseId,
        ident: &crate::model::TabularIdent,
        kind: TabularKind,
    ) -> Result<Option<uuid::Uuid>> {
        if self.caller(ctx).await?.is_none() {
            return Ok(None);
        }
        let branch = self.request_ref(ctx, warehouse).await?;
        match self.store.tabulars.get_tabular(branch.id, ident).await? {
            Some(t) if t.kind == kind => {
                self.authorize(
                    ctx,
                    action,
                    Resource::Tabular {
                        warehouse,
                        ident: ident.clone(),
                        uuid: t.uuid,
                        kind,
                    },
                )
                .await?;
                Ok(Some(t.uuid))
            }
            // Nothing there (or not of that kind): the answer a missing one gets, whether the
            // caller could have seen it or not, so neither the use case's own errors nor the
            // branch's state tell a hidden object from a missing one.
            _ => Err(match kind {
                TabularKind::Table => {
                    Error::not_found(Entity::Table, format!("table {ident} does not exist"))
                }
                TabularKind::View => {
                    Error::not_found(Entity::View, format!("view {ident} does not exist"))
                }
            }),
        }
    }

    /// Where the table or view with this UUID lives on the warehouse's `main`, by name (a UUID
    /// registered again from its own files can be at more than one place).
    pub(crate) async fn located_on_main(
        &self,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
        kind: TabularKind,
    ) -> Result<Vec<crate::model::TabularIdent>> {
        let main = self.main_branch(warehouse).await?;
        let mut found: Vec<crate::model::TabularIdent> = self
            .store
            .tabulars
            .locate_tabulars(main.id, &[uuid])
            .await?
            .into_iter()
            .filter(|(_, _, k)| *k == kind)
            .map(|(ident, _, _)| ident)
            .collect();
        found.sort();
        Ok(found)
    }

    /// Registering a table or view whose UUID the warehouse has known takes over that object
    /// (its grants follow the UUID): only its owner may, wherever it lives on `main` (at every
    /// place), or, when it lives nowhere there, by ownership given on it or on the warehouse
    /// (never through the namespace it is registered into, which the caller may own).
    pub(crate) async fn require_takeover(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        uuid: uuid::Uuid,
        kind: TabularKind,
    ) -> Result<()> {
        let Some(caller) = self.caller(ctx).await? else {
            return Ok(());
        };
        let located = self.located_on_main(warehouse, uuid, kind).await?;
        let mut paths = Vec::new();
        for ident in located {
            paths.push(
                self.object_path(&Resource::Tabular {
                    warehouse,
                    ident,
                    uuid,
                    kind,
                })
                .await?,
            );
        }
        if paths.is_empty() {
            let mut path = self.object_path(&Resource::Warehouse(warehouse)).await?;
            let object_kind = match kind {
                TabularKind::Table => ObjectType::Table,
                TabularKind::View => ObjectType::View,
            };
            path.push(ObjectRef::new(
                object_kind,
                tabular_object_id(warehouse, uuid),
            ));
            paths.push(path);
        }
        for path in paths {
            if !self.authz.check(&caller, "ownership", &path).await? {
                return Err(Error::forbidden(format!(
                    "the {} with UUID {uuid} is known to this warehouse: registering it again \
                     needs its ownership",
                    kind.as_str()
                )));
            }
        }
        Ok(())
    }

    /// A catalog request touches a warehouse only if the caller may browse it; else it answers
    /// as for a missing warehouse, before any lookup in it can tell what it holds.
    pub(crate) async fn require_browsable(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<()> {
        if self
            .may(
                ctx,
                Action::CatalogReadConfig,
                &Resource::Warehouse(warehouse),
            )
            .await?
        {
            return Ok(());
        }
        Err(Error::not_found(
            Entity::Warehouse,
            format!("warehouse {warehouse} does not exist"),
        ))
    }

    /// Whether `branch` is one of the warehouse's protected branches (read at most every few
    /// seconds per instance).
    pub(crate) async fn is_protected(&self, warehouse: WarehouseId, branch: &str) -> Result<bool> {
        let cached = self
            .access
            .protected
            .lock()
            .expect("cache lock")
            .get(&warehouse)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, names)| names.clone());
        let names = match cached {
            Some(names) => names,
            None => {
                let names =
                    std::sync::Arc::new(self.store.refs.protected_branches(warehouse).await?);
                let mut cache = self.access.protected.lock().expect("cache lock");
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(warehouse, (Instant::now(), names.clone()));
                names
            }
        };
        Ok(names.iter().any(|n| n == branch))
    }

    pub(crate) fn forget_protected(&self, warehouse: WarehouseId) {
        self.access
            .protected
            .lock()
            .expect("cache lock")
            .remove(&warehouse);
    }

    /// What a gateway admin key may do now: what the user who made it may do in its warehouse
    /// (`modify`: read and write; `select`: read), asked when the key is used and trusted for a
    /// few seconds, so a user who loses the rights loses the key's power. Roles from an IdP's
    /// token do not count here (no token comes with an S3 request). `None`: nothing, which is
    /// also the answer for a key made while the server was open (no user made it).
    pub(crate) async fn key_rights(&self, key: &AccessKey) -> Result<Option<FileAccess>> {
        if !self.authz.enforces() {
            return Ok(Some(FileAccess::Full));
        }
        let Some(user) = &key.created_by else {
            return Ok(None);
        };
        let generation = self
            .access
            .generation
            .load(std::sync::atomic::Ordering::SeqCst);
        if let Some((at, rights)) = self
            .access
            .key_rights
            .lock()
            .expect("cache lock")
            .get(&key.id)
            && at.elapsed() < TTL
        {
            return Ok(*rights);
        }
        let caller = Caller {
            user: user.clone(),
            mapped_roles: Vec::new(),
            admin: self.admins.contains(user)
                || self
                    .server_snapshot()
                    .await?
                    .and_then(|info| info.admin)
                    .is_some_and(|admin| &admin == user),
        };
        let path = self
            .object_path(&Resource::Warehouse(key.warehouse_id))
            .await?;
        let rights = if self.authz.check(&caller, "modify", &path).await? {
            Some(FileAccess::Full)
        } else if self.authz.check(&caller, "select", &path).await? {
            Some(FileAccess::ReadOnly)
        } else {
            None
        };
        let mut cache = self.access.key_rights.lock().expect("cache lock");
        if cache.len() > 10_000 {
            cache.clear();
        }
        if self
            .access
            .generation
            .load(std::sync::atomic::Ordering::SeqCst)
            == generation
        {
            cache.insert(key.id.clone(), (Instant::now(), rights));
        }
        Ok(rights)
    }

    /// Whether the caller may take `action` on `resource`, without composing a refusal.
    pub(crate) async fn may(
        &self,
        ctx: &RequestContext,
        action: Action,
        resource: &Resource,
    ) -> Result<bool> {
        if !self.authz.enforces() {
            return Ok(true);
        }
        let identity = match &ctx.principal {
            Principal::System => return Ok(true),
            Principal::Anonymous => {
                return Err(Error::new(
                    ErrorKind::Unauthenticated,
                    "this server checks permissions: sign in",
                ));
            }
            Principal::User(identity) => identity,
        };
        match requirement(action) {
            Requirement::AnyCaller | Requirement::Filtered | Requirement::FirstCallerOrAdmin => {
                Ok(true)
            }
            Requirement::Relation { relation, on } => {
                if !on.contains(&resource_kind(resource)) {
                    return Err(Error::internal(
                        "authorizing",
                        anyhow::anyhow!("{action:?} is not asked of a {resource:?}"),
                    ));
                }
                // A decision is kept as long as what the caller holds is (`builtin::CALLER_TTL`),
                // and forgotten with it.
                let key = self.decision_key(identity, relation, resource, ctx);
                if let Some((at, allowed)) = self
                    .access
                    .decisions
                    .lock()
                    .expect("cache lock")
                    .get(&identity.id)
                    .and_then(|d| d.get(&key))
                    && at.elapsed() < crate::authz::builtin::CALLER_TTL
                {
                    return Ok(*allowed);
                }
                let generation = self
                    .access
                    .generation
                    .load(std::sync::atomic::Ordering::SeqCst);
                let Some(caller) = self.caller(ctx).await? else {
                    return Ok(true);
                };
                let allowed = self.decide(ctx, &caller, relation, resource).await?;
                let mut decisions = self.access.decisions.lock().expect("cache lock");
                if self
                    .access
                    .generation
                    .load(std::sync::atomic::Ordering::SeqCst)
                    != generation
                {
                    return Ok(allowed);
                }
                if decisions.len() >= 10_000 {
                    decisions.clear();
                }
                let mine = decisions.entry(identity.id.clone()).or_default();
                if mine.len() >= 10_000 {
                    mine.clear();
                }
                mine.insert(key, (Instant::now(), allowed));
                Ok(allowed)
            }
        }
    }

    /// Asks the authorizer (no decision cache).
    async fn decide(
        &self,
        ctx: &RequestContext,
        caller: &Caller,
        relation: &str,
        resource: &Resource,
    ) -> Result<bool> {
        let path = self.object_path(resource).await?;
        if self.authz.check(caller, relation, &path).await? {
            return Ok(true);
        }
        // `browse` also holds for who holds something below (the model's `browse from child`,
        // answered from the caller's grants: no child links are read).
        if relation == "browse" {
            let granted = self.authz.granted(caller).await?;
            let object = path.last().expect("a path ends at its object");
            return self.holds_below(ctx, &granted, object).await;
        }
        Ok(false)
    }

    /// The authorize phase of a use case: `Ok` when the caller may take `action` on
    /// `resource`; else 404 as if it did not exist when they may not see it, 403 when they may.
    pub(crate) async fn authorize(
        &self,
        ctx: &RequestContext,
        action: Action,
        resource: Resource,
    ) -> Result<()> {
        if self.may(ctx, action, &resource).await? {
            return Ok(());
        }
        let Some(caller) = self.caller(ctx).await? else {
            return Ok(());
        };
        let path = self.object_path(&resource).await?;
        let granted = self.authz.granted(&caller).await?;
        if let Some(depth) = self.first_hidden(ctx, &caller, &path, &granted).await? {
            return Err(hidden(&resource, &path[depth]));
        }
        Err(Error::forbidden(format!(
            "not allowed: {action:?} needs more than the caller holds on this {}",
            resource_kind(&resource).as_str()
        )))
    }

    /// The first object of `path` (below the server) the caller may not browse.
    async fn first_hidden(
        &self,
        ctx: &RequestContext,
        caller: &Caller,
        path: &[ObjectRef],
        granted: &[Granted],
    ) -> Result<Option<usize>> {
        for depth in 1..path.len() {
            if self
                .authz
                .check(caller, "describe", &path[..=depth])
                .await?
            {
                continue;
            }
            if self.holds_below(ctx, granted, &path[depth]).await? {
                continue;
            }
            return Ok(Some(depth));
        }
        Ok(None)
    }

    /// Whether the caller holds something below the object a resource names.
    pub(crate) async fn holds_something_below(
        &self,
        ctx: &RequestContext,
        caller: &Caller,
        resource: &Resource,
    ) -> Result<bool> {
        let path = self.object_path(resource).await?;
        let granted = self.authz.granted(caller).await?;
        let object = path.last().expect("a path ends at its object");
        self.holds_below(ctx, &granted, object).await
    }

    /// Whether the caller holds something on an object below `object` (so may see it exists).
    async fn holds_below(
        &self,
        ctx: &RequestContext,
        granted: &[Granted],
        object: &ObjectRef,
    ) -> Result<bool> {
        match object.kind {
            ObjectType::Project => {
                for warehouse in granted_warehouses(granted) {
                    if let Ok(record) = self.cached_warehouse(warehouse).await
                        && record.project_id.0.to_string() == object.id
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            ObjectType::Warehouse => {
                let prefix = format!("{}/", object.id);
                Ok(granted.iter().any(|g| {
                    matches!(
                        g.object.kind,
                        ObjectType::Namespace | ObjectType::Table | ObjectType::View
                    ) && g.object.id.starts_with(&prefix)
                }))
            }
            ObjectType::Namespace => {
                let Some((warehouse, namespace)) = NamespaceIdent::from_object_id(&object.id)
                else {
                    return Ok(false);
                };
                let below = |levels: &[String], strictly: bool| {
                    levels.starts_with(namespace.levels())
                        && (!strictly || levels.len() > namespace.levels().len())
                };
                if granted_namespaces(granted, warehouse).any(|n| below(n.levels(), true)) {
                    return Ok(true);
                }
                let located = self.granted_tabulars(ctx, granted, warehouse, None).await?;
                Ok(located
                    .iter()
                    .any(|(ident, _)| below(ident.namespace.levels(), false)))
            }
            ObjectType::Server | ObjectType::Table | ObjectType::View => Ok(false),
        }
    }

    /// The tables and views (of `kind`, or both) the caller holds a grant on in a warehouse,
    /// where the request's ref sees them.
    async fn granted_tabulars(
        &self,
        ctx: &RequestContext,
        granted: &[Granted],
        warehouse: WarehouseId,
        kind: Option<TabularKind>,
    ) -> Result<Vec<(crate::model::TabularIdent, TabularKind)>> {
        let uuids: BTreeSet<uuid::Uuid> = granted
            .iter()
            .filter(|g| match kind {
                None => matches!(g.object.kind, ObjectType::Table | ObjectType::View),
                Some(TabularKind::Table) => g.object.kind == ObjectType::Table,
                Some(TabularKind::View) => g.object.kind == ObjectType::View,
            })
            .filter_map(|g| parse_tabular_object_id(&g.object.id))
            .filter(|(w, _)| *w == warehouse)
            .map(|(_, uuid)| uuid)
            .collect();
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        // Not `request_ref`: that asks whether the caller may browse the warehouse, which may
        // be what is being decided.
        let branch = self.resolve_ref(warehouse, &ctx.reference).await?;
        let uuids: Vec<uuid::Uuid> = uuids.into_iter().collect();
        Ok(self
            .store
            .tabulars
            .locate_tabulars(branch.id, &uuids)
            .await?
            .into_iter()
            .filter(|(_, _, k)| kind.is_none_or(|want| want == *k))
            .map(|(ident, _, k)| (ident, k))
            .collect())
    }

    /// For a list of what is inside `scope`: `All` when the caller may describe the scope, else
    /// the caller's grants to filter by. 404 when they may not see the scope itself.
    pub(super) async fn list_scope(
        &self,
        ctx: &RequestContext,
        scope: &Resource,
    ) -> Result<Option<(Caller, Vec<Granted>)>> {
        let Some(caller) = self.caller(ctx).await? else {
            return Ok(None);
        };
        let path = self.object_path(scope).await?;
        if self.authz.check(&caller, "describe", &path).await? {
            return Ok(None);
        }
        let granted = self.authz.granted(&caller).await?;
        if let Some(depth) = self.first_hidden(ctx, &caller, &path, &granted).await? {
            return Err(hidden(scope, &path[depth]));
        }
        Ok(Some((caller, granted)))
    }

    /// The child namespaces of `parent` (the warehouse's top level when `None`) the caller may
    /// list, by joined name.
    pub(crate) async fn visible_namespaces(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Visible> {
        let scope = match parent {
            Some(namespace) => Resource::Namespace {
                warehouse,
                namespace: namespace.clone(),
            },
            None => Resource::Warehouse(warehouse),
        };
        let Some((_, granted)) = self.list_scope(ctx, &scope).await? else {
            return Ok(Visible::All);
        };
        let depth = parent.map(|p| p.levels().len()).unwrap_or(0);
        let parent_levels: &[String] = parent.map(|p| p.levels()).unwrap_or(&[]);
        let mut names = BTreeSet::new();
        let mut child_of = |levels: &[String]| {
            if levels.len() > depth && levels.starts_with(parent_levels) {
                names.insert(levels[..=depth].join(&NamespaceIdent::SEPARATOR.to_string()));
            }
        };
        for namespace in granted_namespaces(&granted, warehouse) {
            child_of(namespace.levels());
        }
        for (ident, _) in self
            .granted_tabulars(ctx, &granted, warehouse, None)
            .await?
        {
            child_of(ident.namespace.levels());
        }
        Ok(Visible::Only(names.into_iter().collect()))
    }

    /// The tables (or views) of a namespace the caller may list, by name.
    pub(crate) async fn visible_tabulars(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        namespace: &NamespaceIdent,
        kind: TabularKind,
    ) -> Result<Visible> {
        let scope = Resource::Namespace {
            warehouse,
            namespace: namespace.clone(),
        };
        let Some((_, granted)) = self.list_scope(ctx, &scope).await? else {
            return Ok(Visible::All);
        };
        let mut names: Vec<String> = self
            .granted_tabulars(ctx, &granted, warehouse, Some(kind))
            .await?
            .into_iter()
            .filter(|(ident, _)| &ident.namespace == namespace)
            .map(|(ident, _)| ident.name)
            .collect();
        names.sort();
        names.dedup();
        Ok(Visible::Only(names))
    }

    /// Which of these warehouses the caller may see: those of projects they may describe, and
    /// those they hold something on or in.
    pub(crate) async fn visible_warehouses(
        &self,
        ctx: &RequestContext,
        warehouses: Vec<crate::model::Warehouse>,
    ) -> Result<Vec<crate::model::Warehouse>> {
        let Some(caller) = self.caller(ctx).await? else {
            return Ok(warehouses);
        };
        let granted = self.authz.granted(&caller).await?;
        let holds: BTreeSet<WarehouseId> = granted_warehouses(&granted).collect();
        let mut projects: HashMap<ProjectId, bool> = HashMap::new();
        let mut out = Vec::new();
        for w in warehouses {
            let visible = if holds.contains(&w.id) {
                true
            } else {
                match projects.get(&w.project_id) {
                    Some(v) => *v,
                    None => {
                        let path = self.object_path(&Resource::Project(w.project_id)).await?;
                        let v = self.authz.check(&caller, "describe", &path).await?;
                        projects.insert(w.project_id, v);
                        v
                    }
                }
            };
            if visible {
                out.push(w);
            }
        }
        Ok(out)
    }

    /// Which of these projects the caller may see: those they may describe, and those holding a
    /// warehouse they hold something on or in.
    pub(crate) async fn visible_projects(
        &self,
        ctx: &RequestContext,
        projects: Vec<crate::model::Project>,
    ) -> Result<Vec<crate::model::Project>> {
        let Some(caller) = self.caller(ctx).await? else {
            return Ok(projects);
        };
        let granted = self.authz.granted(&caller).await?;
        let mut holding: BTreeSet<ProjectId> = BTreeSet::new();
        for warehouse in granted_warehouses(&granted) {
            if let Ok(record) = self.cached_warehouse(warehouse).await {
                holding.insert(record.project_id);
            }
        }
        let mut out = Vec::new();
        for p in projects {
            let visible = holding.contains(&p.id) || {
                let path = self.object_path(&Resource::Project(p.id)).await?;
                self.authz.check(&caller, "describe", &path).await?
            };
            if visible {
                out.push(p);
            }
        }
        Ok(out)
    }
}

/// The warehouses the caller holds a grant on or inside.
fn granted_warehouses(granted: &[Granted]) -> impl Iterator<Item = WarehouseId> + '_ {
    let mut seen = BTreeSet::new();
    granted
        .iter()
        .filter_map(|g| {
            let id = match g.object.kind {
                ObjectType::Warehouse => g.object.id.as_str(),
                ObjectType::Namespace | ObjectType::Table | ObjectType::View => {
                    g.object.id.split_once('/')?.0
                }
                _ => return None,
            };
            uuid::Uuid::parse_str(id).ok().map(WarehouseId)
        })
        .filter(move |w| seen.insert(*w))
}

/// The namespaces of a warehouse the caller holds a grant on.
fn granted_namespaces(
    granted: &[Granted],
    warehouse: WarehouseId,
) -> impl Iterator<Item = NamespaceIdent> + '_ {
    granted
        .iter()
        .filter(|g| g.object.kind == ObjectType::Namespace)
        .filter_map(|g| NamespaceIdent::from_object_id(&g.object.id))
        .filter(move |(w, _)| *w == warehouse)
        .map(|(_, n)| n)
}
