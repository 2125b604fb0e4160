//! Catalog-level use cases: which warehouse (and branch) a client's `warehouse` setting names.

use std::collections::BTreeMap;

use super::{RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, Result};
use crate::model::{MAIN_BRANCH, ProjectId, Ref, Warehouse, WarehouseId};

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
        let found = match warehouse.parse::<WarehouseId>() {
            Ok(id) => self.store.warehouses.get_warehouse(id).await?,
            Err(_) => {
                let project = project.unwrap_or(server.default_project_id);
                self.store
                    .warehouses
                    .get_warehouse_by_name(project, warehouse)
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
        .await?;
        // act
        let branch = self.main_branch(warehouse.id).await?;
        Ok(CatalogConfig {
            warehouse,
            branch,
            defaults: BTreeMap::new(),
            overrides: BTreeMap::new(),
        })
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
