//! Catalog-level use cases: which warehouse (and branch) a client's `warehouse` setting names.

use std::collections::BTreeMap;

use super::{RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, Result};
use crate::model::{CommitId, MAIN_BRANCH, ProjectId, Ref, RefKind, Warehouse, WarehouseId};

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
    /// (the default project when unset).
    pub async fn catalog_config(
        &self,
        ctx: &RequestContext,
        warehouse: &str,
        project: Option<ProjectId>,
    ) -> Result<CatalogConfig> {
        // validate
        if warehouse.is_empty() {
            return Err(Error::bad_request(
                "the warehouse parameter is required: set `warehouse` in the client's catalog config",
            ));
        }
        let server = self.bootstrapped().await?;
        let no_such = || {
            Error::not_found(
                Entity::Warehouse,
                format!("warehouse {warehouse:?} does not exist"),
            )
        };
        let project = project.unwrap_or(server.default_project_id);
        let lookup = |name: &str| {
            let name = name.to_string();
            async move {
                match name.parse::<WarehouseId>() {
                    Ok(id) => self.store.warehouses.get_warehouse(id).await,
                    Err(_) => {
                        self.store
                            .warehouses
                            .get_warehouse_by_name(project, &name)
                            .await
                    }
                }
            }
        };
        // `demo@dev` names branch (or tag, or commit) `dev` of warehouse `demo`.
        let (found, reference) = match lookup(warehouse).await? {
            Some(found) => (Some(found), None),
            None => match warehouse.rsplit_once('@') {
                Some((name, reference)) if !name.is_empty() => {
                    (lookup(name).await?, Some(reference.to_string()))
                }
                _ => (None, None),
            },
        };
        let warehouse = found.ok_or_else(no_such)?;
        // authorize
        self.authorize(
            ctx,
            Action::CatalogReadConfig,
            Resource::Warehouse(warehouse.id),
        )
        .await?;
        // act
        let branch = match reference {
            None => self.main_branch(warehouse.id).await?,
            Some(name) => self.named_ref(warehouse.id, &name).await?,
        };
        Ok(CatalogConfig {
            warehouse,
            branch,
            defaults: BTreeMap::new(),
            overrides: BTreeMap::new(),
        })
    }

    /// The ref a catalog request addresses: `main`, or what its prefix names after `@`.
    pub(crate) async fn request_ref(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<Ref> {
        match &ctx.reference {
            None => self.main_branch(warehouse).await,
            Some(name) => self.named_ref(warehouse, name).await,
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
                ctx.reference.as_deref().unwrap_or(&reference.name)
            )));
        }
        Ok(reference)
    }

    /// A branch or tag by name, or a commit by id (read through a hidden read-only ref).
    /// `NotFound(Ref)`.
    pub(crate) async fn named_ref(&self, warehouse: WarehouseId, name: &str) -> Result<Ref> {
        let no_such = || {
            Error::not_found(
                Entity::Ref,
                format!("warehouse {warehouse} has no branch, tag or commit {name:?}"),
            )
        };
        if name.is_empty() || name.starts_with('~') {
            return Err(no_such());
        }
        if let Some(found) = self.store.warehouses.get_ref(warehouse, name).await? {
            return Ok(found);
        }
        match name.parse::<CommitId>() {
            Ok(commit) => {
                let found = self
                    .store
                    .refs
                    .commit_ref(warehouse, commit)
                    .await?
                    .ok_or_else(no_such)?;
                self.refs_made(warehouse);
                Ok(found)
            }
            Err(_) => {
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
