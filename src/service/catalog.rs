//! Catalog-level use cases: which warehouse (and branch) a client's `warehouse` setting names.

use std::collections::BTreeMap;

use super::{RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, Result};
use crate::model::{
    MAIN_BRANCH, ProjectId, Ref, RefKind, RefSelector, Warehouse, WarehouseId, WarehouseRef,
    WarehouseSelector,
};

/// What `GET /v1/config` tells a client, before the HTTP layer adds its own keys (prefix, endpoints).
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    pub warehouse: Warehouse,
    pub branch: Ref,
    pub defaults: BTreeMap<String, String>,
    pub overrides: BTreeMap<String, String>,
}

impl Services {
    /// Resolves a client's `warehouse` setting: a warehouse id, or a warehouse name in `project`
    /// (the default project when unset), and optionally `@` a branch, tag or commit.
    pub async fn catalog_config(
        &self,
        ctx: &RequestContext,
        named: &WarehouseRef,
        project: Option<ProjectId>,
    ) -> Result<CatalogConfig> {
        // validate
        let server = self.bootstrapped().await?;
        let no_such = || {
            Error::not_found(
                Entity::Warehouse,
                format!("warehouse {:?} does not exist", named.to_string()),
            )
        };
        let project = project.unwrap_or(server.default_project_id);
        let found = match &named.warehouse {
            WarehouseSelector::Id(id) => self.store.warehouses.get_warehouse(*id).await?,
            WarehouseSelector::Name(name) => {
                self.store
                    .warehouses
                    .get_warehouse_by_name(project, name)
                    .await?
            }
        };
        let warehouse = found.ok_or_else(no_such)?;
        // authorize
        self.authorize(
            ctx,
            Action::CatalogReadConfig,
            Resource::Warehouse(warehouse.id),
        )
        .await
        .map_err(|e| match e.kind {
            // Answered for the warehouse as the caller named it, as for a missing one.
            crate::error::ErrorKind::NotFound(_) => no_such(),
            _ => e,
        })?;
        // act
        let branch = self.resolve_ref(warehouse.id, &named.reference).await?;
        // The warehouse's scan planning mode, for clients that read it from the catalog's
        // configuration (PyIceberg) rather than from each table's (the spec's place, where a
        // table's own setting is sent too). A default: a client may still plan on its own.
        let mut defaults = BTreeMap::new();
        if let Some(mode) = self.warehouse_planning_mode(warehouse.id).await {
            defaults.insert("scan-planning-mode".to_string(), mode.to_string());
        }
        Ok(CatalogConfig {
            warehouse,
            branch,
            defaults,
            overrides: BTreeMap::new(),
        })
    }

    /// The ref a catalog request addresses: `main`, or what its prefix names after `@`.
    pub(crate) async fn request_ref(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<Ref> {
        self.require_browsable(ctx, warehouse).await?;
        self.resolve_ref(warehouse, &ctx.reference).await
    }

    /// The ref a selector names in a warehouse.
    pub(crate) async fn resolve_ref(
        &self,
        warehouse: WarehouseId,
        selector: &RefSelector,
    ) -> Result<Ref> {
        match selector {
            RefSelector::Main => self.main_branch(warehouse).await,
            RefSelector::Named(_) => self.named_ref(warehouse, selector).await,
        }
    }

    /// The same, for a change: tags and commits are read-only (`Forbidden`).
    pub(crate) async fn writable_ref(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<Ref> {
        let reference = self.request_ref(ctx, warehouse).await?;
        if reference.kind != RefKind::Branch {
            return Err(Error::forbidden(format!(
                "{} is a tag or commit, which is read-only; write to a branch",
                ctx.reference
            )));
        }
        if self.is_protected(warehouse, &reference.name).await? {
            return Err(Error::forbidden(format!(
                "branch {:?} is protected: it changes only by merge; write to another branch and \
                 merge it",
                reference.name
            )));
        }
        Ok(reference)
    }

    /// A branch or tag by name (`main` included), or a commit by id (read through a hidden
    /// read-only ref), as the database holds it now.
    /// `NotFound(Ref)`.
    pub(super) async fn named_ref(
        &self,
        warehouse: WarehouseId,
        selector: &RefSelector,
    ) -> Result<Ref> {
        let name = selector.as_str();
        let no_such = || {
            Error::not_found(
                Entity::Ref,
                format!("warehouse {warehouse} has no branch, tag or commit {name:?}"),
            )
        };
        if selector.is_unaddressable() {
            return Err(no_such());
        }
        if let Some(found) = self.store.warehouses.get_ref(warehouse, name).await? {
            return Ok(found);
        }
        match selector.commit() {
            Some(commit) => {
                let found = self
                    .store
                    .refs
                    .commit_ref(warehouse, commit)
                    .await?
                    .ok_or_else(no_such)?;
                self.refs_made(warehouse);
                Ok(found)
            }
            None => {
                // Say which: a missing warehouse, or a missing ref.
                self.main_branch(warehouse).await?;
                Err(no_such())
            }
        }
    }

    /// The `main` branch of a warehouse; `NotFound(Warehouse)` when there is no such warehouse.
    /// Remembered for a few seconds like warehouses (a branch's id never changes).
    pub(crate) async fn main_branch(&self, warehouse: WarehouseId) -> Result<Ref> {
        if let Some(branch) = self.cached_main_branch(warehouse) {
            return Ok(branch);
        }
        let branch = self
            .store
            .warehouses
            .get_ref(warehouse, MAIN_BRANCH)
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    Entity::Warehouse,
                    format!("warehouse {warehouse} does not exist"),
                )
            })?;
        self.remember_main_branch(warehouse, &branch);
        Ok(branch)
    }
}
