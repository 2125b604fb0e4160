//! Authorization: may this principal do this action on this resource? Every use case in `service/`
//! asks the `Authorizer` in its authorize phase, so swapping in a real one (OpenFGA, later) changes no
//! use case. The in-tree default, [`AllowAll`], allows everything (development).
//!
//! Depends on `model` and `authn::Principal` only.

pub mod fga;
pub mod roles;
pub mod rules;

use async_trait::async_trait;

use crate::authn::Principal;
use crate::error::Result;
use crate::model::{NamespaceIdent, ProjectId, TabularIdent, WarehouseId};

pub use crate::model::Action;

/// What the action is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Server,
    Project(ProjectId),
    Warehouse(WarehouseId),
    Namespace {
        warehouse: WarehouseId,
        namespace: NamespaceIdent,
    },
    Table {
        warehouse: WarehouseId,
        table: TabularIdent,
    },
    View {
        warehouse: WarehouseId,
        view: TabularIdent,
    },
}

#[async_trait]
pub trait Authorizer: Send + Sync {
    /// `Ok` when allowed; `Forbidden` (or `Unauthenticated` for an anonymous caller who must sign
    /// in) when not.
    async fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
    ) -> Result<()>;
    async fn health(&self) -> Result<()>;
}

/// Allows everything.
pub struct AllowAll;

#[async_trait]
impl Authorizer for AllowAll {
    async fn authorize(&self, _: &Principal, _: Action, _: &Resource) -> Result<()> {
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}
