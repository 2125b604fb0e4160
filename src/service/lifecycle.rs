//! Lifecycle use cases: delete profiles, soft deletes and undrop, protection, and the tasks that
//! drops leave behind (purging a dropped table's files, forgetting an expired soft delete).

use serde_json::json;
use uuid::Uuid;

use super::claims::folder_and_parents;
use super::tables::PURGE_LOG;
use super::tasks::{TaskRun, TaskSettings};
use super::{RequestContext, Services};
use crate::authz::Resource;
use crate::error::{Entity, Error, Result};
use crate::model::lifecycle::{
    DeleteProfile, DeletedTabular, DropOptions, ProtectedObject, SoftDrop, Undrop, expiry_task,
    purge_task,
};
use crate::model::{
    Action, NamespaceIdent, Page, PageRequest, RefId, TabularIdent, TabularKind, WarehouseId,
};
use crate::storage::location::Location;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// When a soft delete made now expires.
fn soft_expiry(expiration_seconds: u64) -> i64 {
    now_ms() + i64::try_from(expiration_seconds.saturating_mul(1000)).unwrap_or(i64::MAX / 2)
}

/// A namespace drop as the caller asked it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropNamespaceRequest {
    pub force: bool,
    /// With everything in it, in one commit.
    pub recursive: bool,
    /// Purge the tables a recursive drop removes.
    pub purge: bool,
}

/// A drop as the caller asked it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropRequest {
    pub purge: bool,
    pub force: bool,
}

impl Services {
    pub(crate) async fn authorize_warehouse(
        &self,
        ctx: &RequestContext,
        action: Action,
        warehouse: WarehouseId,
    ) -> Result<()> {
        self.authorize(ctx, action, Resource::Warehouse(warehouse))
            .await?;
        self.load_warehouse(warehouse).await.map(|_| ())
    }

    /// What a drop of a table or view on `line` writes beside removing it: under a soft delete
    /// profile, its record and expiry task; else, for a purge, the purge task.
    pub(crate) async fn drop_options(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        line: RefId,
        ident: &TabularIdent,
        kind: TabularKind,
        request: DropRequest,
    ) -> Result<DropOptions> {
        let profile = self.store.lifecycle.delete_profile(warehouse).await?;
        let mut options = DropOptions {
            force: request.force,
            ..Default::default()
        };
        match profile {
            DeleteProfile::Soft { expiration_seconds } => {
                let deleted_id = Uuid::now_v7();
                let expires_at = soft_expiry(expiration_seconds);
                options.soft = Some(SoftDrop {
                    deleted_id,
                    purge: request.purge,
                    expires_at,
                    deleted_by: ctx.principal.display_id(),
                    expiry: expiry_task(
                        warehouse,
                        deleted_id,
                        kind,
                        ident,
                        expires_at,
                        self.task_max_attempts,
                    ),
                });
            }
            DeleteProfile::Hard if request.purge && kind == TabularKind::Table => {
                options.purge = Some(purge_task(
                    warehouse,
                    line,
                    ident,
                    None,
                    self.task_max_attempts,
                    now_ms(),
                ));
            }
            DeleteProfile::Hard => {}
        }
        Ok(options)
    }

    /// Drops a namespace with everything in it, in one commit on `branch`; each table and view
    /// is soft-deleted or dropped (and purged) as the warehouse's delete profile says.
    pub(crate) async fn drop_namespace_recursive(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        branch: &crate::model::Ref,
        ident: &NamespaceIdent,
        request: DropNamespaceRequest,
    ) -> Result<()> {
        if request.purge {
            // Purging the tables is asked of each table in a plain drop; here the namespace's
            // owner (ownership holds on everything below) is checked once.
            self.authorize(
                ctx,
                Action::NamespaceDrop,
                Resource::Namespace {
                    warehouse,
                    namespace: ident.clone(),
                },
            )
            .await?;
        }
        if !request.force {
            self.check_unprotected(
                warehouse,
                &ProtectedObject::Namespace(ident.clone()),
                false,
                &format!("namespace {ident}"),
            )
            .await?;
        }
        let soft = match self.store.lifecycle.delete_profile(warehouse).await? {
            DeleteProfile::Soft { expiration_seconds } => {
                Some((soft_expiry(expiration_seconds), ctx.principal.display_id()))
            }
            DeleteProfile::Hard => None,
        };
        let options = crate::model::lifecycle::RecursiveDrop {
            force: request.force,
            purge: request.purge,
            soft,
            max_attempts: self.task_max_attempts,
        };
        let dropped = self
            .store
            .lifecycle
            .drop_namespace_recursive(
                branch.id,
                ident,
                &self.commit_meta(ctx, format!("drop namespace {ident} with everything in it")),
                &options,
            )
            .await?;
        self.store.tabulars.forget(&dropped.tabulars);
        if dropped.tasks > 0 {
            self.wake_workers();
        }
        tracing::info!(namespace = %ident, namespaces = dropped.namespaces.len(), tabulars = dropped.tabulars.len(), "dropped a namespace recursively");
        Ok(())
    }

    // Delete profiles.

    pub async fn delete_profile(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<DeleteProfile> {
        self.authorize_warehouse(ctx, Action::WarehouseRead, warehouse)
            .await?;
        self.store.lifecycle.delete_profile(warehouse).await
    }

    pub async fn set_delete_profile(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        profile: DeleteProfile,
    ) -> Result<DeleteProfile> {
        profile.validate()?;
        self.authorize_warehouse(ctx, Action::WarehouseSetDeleteProfile, warehouse)
            .await?;
        let events = self.change_event(
            ctx,
            "warehouse.delete-profile-set",
            format!("warehouse/{warehouse}"),
            serde_json::to_value(profile).unwrap_or_default(),
        );
        self.store
            .lifecycle
            .set_delete_profile(warehouse, &profile, &events)
            .await?;
        Ok(profile)
    }

    // Protection.

    /// The ref objects are looked up on: `main`, or the branch or tag named.
    async fn lookup_ref(
        &self,
        warehouse: WarehouseId,
        name: Option<&str>,
    ) -> Result<crate::model::Ref> {
        match name {
            None | Some(crate::model::MAIN_BRANCH) => self.main_branch(warehouse).await,
            Some(name) => self
                .store
                .warehouses
                .get_ref(warehouse, name)
                .await?
                .filter(|r| !r.is_hidden())
                .ok_or_else(|| Error::not_found(Entity::Ref, format!("ref {name} does not exist"))),
        }
    }

    /// The protected object a request names, authorized for `action` (the catalog's rules: what
    /// the caller may not see answers 404). Namespaces, tables and views are looked up on `main`,
    /// or on the branch or tag `on` names.
    async fn protected_object(
        &self,
        ctx: &RequestContext,
        action: Action,
        warehouse: WarehouseId,
        target: &ProtectionTarget,
        on: Option<&str>,
    ) -> Result<ProtectedObject> {
        match target {
            ProtectionTarget::Warehouse => {
                self.authorize_warehouse(ctx, action, warehouse).await?;
                Ok(ProtectedObject::Warehouse)
            }
            ProtectionTarget::Namespace(ns) => {
                self.require_browsable(ctx, warehouse).await?;
                let main = self.lookup_ref(warehouse, on).await?;
                self.authorize(
                    ctx,
                    action,
                    Resource::Namespace {
                        warehouse,
                        namespace: ns.clone(),
                    },
                )
                .await?;
                self.require_namespace(&main, ns).await?;
                Ok(ProtectedObject::Namespace(ns.clone()))
            }
            ProtectionTarget::Tabular(kind, ident) => {
                let main = self.lookup_ref(warehouse, on).await?;
                let table = self
                    .store
                    .tabulars
                    .get_tabular(main.id, ident)
                    .await?
                    .filter(|t| t.kind == *kind)
                    .ok_or_else(|| {
                        Error::not_found(
                            kind.entity(),
                            format!("{} {ident} does not exist", kind.as_str()),
                        )
                    })?;
                self.authorize(
                    ctx,
                    action,
                    Resource::Tabular {
                        warehouse,
                        ident: ident.clone(),
                        uuid: table.uuid,
                        kind: *kind,
                    },
                )
                .await?;
                Ok(ProtectedObject::Tabular(*kind, table.uuid))
            }
        }
    }

    pub async fn protection(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        target: &ProtectionTarget,
        on: Option<&str>,
    ) -> Result<bool> {
        let object = self
            .protected_object(ctx, Action::ProtectionRead, warehouse, target, on)
            .await?;
        self.store.lifecycle.is_protected(warehouse, &object).await
    }

    pub async fn set_protection(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        target: &ProtectionTarget,
        on: Option<&str>,
        protected: bool,
    ) -> Result<bool> {
        let object = self
            .protected_object(ctx, Action::ProtectionSet, warehouse, target, on)
            .await?;
        let (kind, key) = object.key();
        let events = self.change_event(
            ctx,
            "warehouse.protection-set",
            format!("warehouse/{warehouse}"),
            json!({ "kind": kind, "key": key, "protected": protected }),
        );
        self.store
            .lifecycle
            .set_protection(warehouse, &object, protected, &events)
            .await?;
        Ok(protected)
    }

    /// `Conflict` unless `object` is unprotected or the drop is forced.
    pub(crate) async fn check_unprotected(
        &self,
        warehouse: WarehouseId,
        object: &ProtectedObject,
        force: bool,
        what: &str,
    ) -> Result<()> {
        if !force && self.store.lifecycle.is_protected(warehouse, object).await? {
            return Err(Error::conflict(format!(
                "{what} is protected; drop it with force=true, or unprotect it first"
            )));
        }
        Ok(())
    }

    // Soft-deleted tables and views.

    pub async fn list_deleted(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        namespace: Option<&NamespaceIdent>,
        name: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<DeletedTabular>> {
        self.authorize_warehouse(ctx, Action::WarehouseListDeleted, warehouse)
            .await?;
        self.store
            .lifecycle
            .list_deleted(warehouse, namespace, name, page)
            .await
    }

    /// Restores soft-deleted tables and views, each in a commit of its own on the line it was
    /// dropped from; stops at the first that cannot be restored (those before it stay restored).
    pub async fn undrop(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        undrops: &[Undrop],
    ) -> Result<Vec<(Uuid, TabularIdent, String)>> {
        if undrops.is_empty() || undrops.len() > 100 {
            return Err(Error::bad_request("undrop between 1 and 100 at once"));
        }
        self.require_browsable(ctx, warehouse).await?;
        let mut restored = Vec::with_capacity(undrops.len());
        for undrop in undrops {
            let deleted = self
                .store
                .lifecycle
                .get_deleted(warehouse, undrop.id)
                .await?
                .ok_or_else(|| {
                    Error::not_found(
                        Entity::DeletedTabular,
                        format!("no soft-deleted table or view has id {}", undrop.id),
                    )
                })?;
            let target = undrop.rename_to.as_ref().unwrap_or(&deleted.ident);
            self.authorize(
                ctx,
                Action::TabularUndrop,
                Resource::Namespace {
                    warehouse,
                    namespace: target.namespace.clone(),
                },
            )
            .await?;
            let metadata = if deleted.metadata_kept {
                None
            } else {
                let wh = self.cached_warehouse(warehouse).await?;
                let storage = self.warehouse_storage(&wh).await?;
                let file = Location::parse(&deleted.metadata_location)?;
                let bytes = storage.get(&file).await?.ok_or_else(|| {
                    Error::conflict(format!(
                        "the metadata file {} of {} is gone; it cannot be undropped",
                        deleted.metadata_location, deleted.ident
                    ))
                })?;
                Some(bytes::Bytes::from(bytes))
            };
            let meta = self.commit_meta(ctx, format!("undrop {} {target}", deleted.kind.as_str()));
            let table = self
                .store
                .lifecycle
                .undrop(warehouse, undrop, &meta, metadata)
                .await?;
            self.store.tabulars.forget(std::slice::from_ref(target));
            self.wake_relay();
            let line = self.line_name(warehouse, deleted.line_id).await;
            tracing::info!(deleted_id = %deleted.id, table = %table.ident, table_uuid = %table.uuid, "undropped");
            restored.push((deleted.id, table.ident, line));
        }
        Ok(restored)
    }

    /// The branch name of each line of the warehouse (retired lines are missing).
    pub async fn branch_names(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<std::collections::HashMap<RefId, String>> {
        self.require_browsable(ctx, warehouse).await?;
        Ok(self
            .store
            .refs
            .list_refs(warehouse)
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect())
    }

    /// The name of the branch a line is (its id when it is retired).
    async fn line_name(&self, warehouse: WarehouseId, line: RefId) -> String {
        match self.store.refs.list_refs(warehouse).await {
            Ok(refs) => refs
                .into_iter()
                .find(|r| r.id == line)
                .map(|r| r.name)
                .unwrap_or_else(|| line.to_string()),
            Err(_) => line.to_string(),
        }
    }

    // Task handlers.

    /// Forgets an expired soft-deleted table or view and, when its drop asked for it, enqueues
    /// its purge (in one transaction); a view's folders are released.
    pub(crate) async fn run_soft_delete_expiry(
        &self,
        run: &TaskRun,
        _settings: &TaskSettings,
    ) -> Result<Option<String>> {
        let task = &run.lease.task;
        let id: Uuid = task
            .payload
            .get("deleted-id")
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::bad_request("the task names no soft-deleted table"))?;
        let warehouse = task.warehouse_id;
        let Some(deleted) = self.store.lifecycle.get_deleted(warehouse, id).await? else {
            return Ok(Some("already undropped or forgotten".into()));
        };
        let purge = (deleted.kind == TabularKind::Table).then(|| {
            purge_task(
                warehouse,
                deleted.line_id,
                &deleted.ident,
                Some((deleted.uuid, deleted.location.as_str())),
                self.task_max_attempts,
                now_ms(),
            )
        });
        let Some(expired) = self
            .store
            .lifecycle
            .expire_deleted(warehouse, id, purge)
            .await?
        else {
            return Ok(Some("already undropped or forgotten".into()));
        };
        if expired.kind == TabularKind::View
            && !self
                .store
                .refs
                .table_shared(expired.line_id, expired.uuid)
                .await?
        {
            self.store
                .tabulars
                .release_view_claims(warehouse, expired.uuid)
                .await?;
        }
        if expired.purge && expired.kind == TabularKind::Table {
            self.wake_workers();
            Ok(Some(format!(
                "expired; purge of {} enqueued",
                expired.ident
            )))
        } else {
            Ok(Some(format!(
                "expired; {} forgotten, its files kept",
                expired.ident
            )))
        }
    }

    /// Deletes a dropped table's files: every folder the table claims (where it is now, and
    /// where it was before a `set-location`), each only when it lies inside the warehouse and no
    /// other table's folder or claim overlaps it, and only when nothing else uses the files (no
    /// row of any line, no other line's history, no branch or tag forked since, no soft-deleted
    /// record). The claims are released first (they still hold the folders for
    /// `CLAIM_RELEASE_GRACE`); the folders and the count deleted are recorded as progress, so a
    /// purge taken up again goes on where it stopped. A purge that cannot finish takes the
    /// claims back and fails (retried after its backoff).
    pub(crate) async fn run_purge(
        &self,
        run: &TaskRun,
        settings: &TaskSettings,
    ) -> Result<Option<String>> {
        let task = &run.lease.task;
        let warehouse = task.warehouse_id;
        let payload = &task.payload;
        let uuid: Uuid = payload
            .get("uuid")
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::bad_request("the task names no table UUID"))?;
        let line = payload
            .get("line")
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse().ok())
            .map(RefId)
            .ok_or_else(|| Error::bad_request("the task names no branch"))?;
        let current = payload
            .get("location")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let table = payload
            .get("table")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let kept = |why: &str| {
            let outcome = format!("kept: {why}");
            tracing::info!(target: PURGE_LOG, table = %table, table_uuid = %uuid, outcome = outcome.as_str(), "purge finished");
            Ok(Some(outcome))
        };
        let wh = match self.load_warehouse(warehouse).await {
            Ok(wh) => wh,
            Err(e) if e.kind == crate::error::ErrorKind::NotFound(Entity::Warehouse) => {
                return kept("the warehouse is gone");
            }
            Err(e) => return Err(e),
        };
        let resumed = run.resumed_progress().cloned();
        let mut deleted_so_far = resumed
            .as_ref()
            .and_then(|p| p.get("deleted"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if resumed.is_none() && self.store.refs.table_shared(line, uuid).await? {
            return kept("other refs still use the files");
        }
        // Released again on a resumed purge: that keeps the folders held while it runs.
        let released = self
            .store
            .tabulars
            .release_for_purge(warehouse, uuid)
            .await?;
        let Some(mut folders) = released else {
            return kept("another table of the same UUID uses the files");
        };
        if let Some(recorded) = resumed
            .as_ref()
            .and_then(|p| p.get("folders"))
            .and_then(|v| v.as_array())
        {
            for folder in recorded.iter().filter_map(|f| f.as_str()) {
                if !folders.iter().any(|f| f == folder) {
                    folders.push(folder.to_string());
                }
            }
        }
        if !current.is_empty() && !folders.contains(&current) {
            folders.push(current);
        }
        folders.sort();
        run.record_progress(json!({ "folders": folders, "deleted": deleted_so_far }));
        let base = crate::storage::base_location(&wh)?;
        let storage = self.warehouse_storage(&wh).await?;
        let purge = async {
            let mut complete = true;
            for folder in &folders {
                let location = match Location::parse(folder) {
                    Ok(l) if l.is_within(&base) && l != base => l,
                    _ => {
                        tracing::warn!(location = %folder, "not purging a location outside its warehouse");
                        complete = false;
                        continue;
                    }
                };
                let prefixes = folder_and_parents(&base, &location).unwrap_or_default();
                if let Some(other) = self
                    .store
                    .tabulars
                    .overlapping_table(warehouse, &prefixes, Some(location.as_str()), Some(uuid))
                    .await?
                {
                    tracing::warn!(location = %location, other = %other, "not purging a folder that overlaps another table's");
                    complete = false;
                    continue;
                }
                loop {
                    let n = storage.delete_some(&location, settings.purge_batch).await?;
                    if n == 0 {
                        break;
                    }
                    deleted_so_far += n as u64;
                    run.record_progress(json!({ "folders": folders, "deleted": deleted_so_far }));
                }
                tracing::info!(location = %location, "purged a dropped table's files");
            }
            Ok::<bool, Error>(complete)
        };
        match purge.await {
            Ok(true) => {
                tracing::info!(target: PURGE_LOG, table = %table, table_uuid = %uuid, files = deleted_so_far, outcome = "deleted", "purge finished");
                let ctx = RequestContext::system();
                self.record_purged(
                    &ctx,
                    warehouse,
                    uuid,
                    format!("warehouse/{warehouse}/table/{table}"),
                )
                .await;
                Ok(Some(format!("deleted {deleted_so_far} files")))
            }
            outcome => {
                // What could not be deleted stays the table's: its claims are taken back.
                if let Err(e) = self.store.tabulars.restore_claims(warehouse, uuid).await {
                    tracing::warn!(table_uuid = %uuid, error = ?e, "restoring a table's folder claims failed");
                }
                match outcome {
                    Err(e) => Err(e),
                    _ => {
                        tracing::info!(target: PURGE_LOG, table = %table, table_uuid = %uuid, outcome = "incomplete: what is left stays the table's", "purge finished");
                        Ok(Some(
                            "incomplete: folders outside the warehouse or shared with another table were kept"
                                .into(),
                        ))
                    }
                }
            }
        }
    }
}

/// What a protection request names.
#[derive(Debug, Clone)]
pub enum ProtectionTarget {
    Warehouse,
    Namespace(NamespaceIdent),
    Tabular(TabularKind, TabularIdent),
}
