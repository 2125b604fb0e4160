//! Warehouse use cases. A warehouse is a catalog with its own storage; its storage credential is kept
//! in the `SecretStore` and never returned by any use case.

use std::sync::Arc;

use super::{RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, Result};
use crate::model::{
    ProjectId, Ref, SecretId, StorageCredential, StorageProfile, Warehouse, WarehouseId, now,
    validate_warehouse_name,
};
use crate::secrets::SecretValue;
use crate::storage;

#[derive(Debug, Clone)]
pub struct CreateWarehouse {
    pub name: String,
    /// The default project when unset.
    pub project_id: Option<ProjectId>,
    pub storage_profile: StorageProfile,
    pub storage_credential: Option<StorageCredential>,
}

/// Replaces a warehouse's storage profile and credential (no credential: the warehouse has none).
#[derive(Debug, Clone)]
pub struct UpdateWarehouseStorage {
    pub storage_profile: StorageProfile,
    pub storage_credential: Option<StorageCredential>,
}

fn validate_storage(
    profile: &StorageProfile,
    credential: Option<&StorageCredential>,
) -> Result<()> {
    profile.validate()?;
    if let Some(credential) = credential {
        credential.validate()?;
        credential.check_fits(profile)?;
    }
    Ok(())
}

/// The part of a profile that addresses existing files; it must not change under a warehouse.
fn base_location(profile: &StorageProfile) -> String {
    match profile {
        StorageProfile::Local { root, .. } => format!("file://{}", root.display()),
        StorageProfile::S3 {
            bucket, key_prefix, ..
        } => format!(
            "s3://{bucket}/{}",
            key_prefix.as_deref().unwrap_or("").trim_matches('/')
        ),
    }
}

impl Services {
    pub async fn create_warehouse(
        &self,
        ctx: &RequestContext,
        request: CreateWarehouse,
    ) -> Result<Warehouse> {
        // validate
        validate_warehouse_name(&request.name)?;
        validate_storage(
            &request.storage_profile,
            request.storage_credential.as_ref(),
        )?;
        self.check_gateway_served(&request.name, &request.storage_profile)?;
        let server = self.bootstrapped().await?;
        let project_id = request.project_id.unwrap_or(server.default_project_id);
        // authorize
        self.authorize(ctx, Action::WarehouseCreate, Resource::Project(project_id))
            .await?;
        // act
        storage::probe(
            &request.storage_profile,
            request.storage_credential.as_ref(),
        )
        .await?;
        let secret_id = match &request.storage_credential {
            Some(credential) => Some(self.store_credential(credential).await?),
            None => None,
        };
        let at = now();
        let warehouse = Warehouse {
            id: WarehouseId::new(),
            project_id,
            name: request.name,
            storage_profile: request.storage_profile,
            credential_secret_id: secret_id,
            created_at: at,
            updated_at: at,
        };
        let main = Ref::new_main(warehouse.id, at);
        if let Err(e) = self
            .store
            .warehouses
            .create_warehouse(&warehouse, &main)
            .await
        {
            self.forget_credential(secret_id).await;
            return Err(e);
        }
        // announce
        self.announce(
            ctx,
            "floe.warehouse.created",
            format!("warehouse/{}", warehouse.id),
            serde_json::json!({ "name": warehouse.name, "project-id": project_id }),
        )
        .await;
        Ok(warehouse)
    }

    /// Warehouses of one project, or of every project.
    pub async fn list_warehouses(
        &self,
        ctx: &RequestContext,
        project: Option<ProjectId>,
    ) -> Result<Vec<Warehouse>> {
        self.bootstrapped().await?;
        let resource = match project {
            Some(p) => Resource::Project(p),
            None => Resource::Server,
        };
        self.authorize(ctx, Action::WarehouseList, resource).await?;
        self.store.warehouses.list_warehouses(project).await
    }

    pub async fn get_warehouse(&self, ctx: &RequestContext, id: WarehouseId) -> Result<Warehouse> {
        self.bootstrapped().await?;
        self.authorize(ctx, Action::WarehouseRead, Resource::Warehouse(id))
            .await?;
        self.load_warehouse(id).await
    }

    pub async fn rename_warehouse(
        &self,
        ctx: &RequestContext,
        id: WarehouseId,
        name: String,
    ) -> Result<Warehouse> {
        // validate
        validate_warehouse_name(&name)?;
        self.bootstrapped().await?;
        // authorize
        self.authorize(ctx, Action::WarehouseRename, Resource::Warehouse(id))
            .await?;
        // act
        let current = self.load_warehouse(id).await?;
        if matches!(
            current.storage_profile,
            StorageProfile::Local {
                s3_gateway: true,
                ..
            }
        ) && current.name != name
        {
            return Err(Error::conflict(format!(
                "warehouse {} is served by the S3 gateway as the bucket of that name, and its \
                 tables' locations name the bucket; it cannot be renamed",
                current.name
            )));
        }
        self.store
            .warehouses
            .rename_warehouse(id, &name, now())
            .await?;
        self.forget_warehouse(id);
        // announce
        self.announce(
            ctx,
            "floe.warehouse.renamed",
            format!("warehouse/{id}"),
            serde_json::json!({ "name": name }),
        )
        .await;
        self.load_warehouse(id).await
    }

    /// Replaces the storage profile and credential. The base location (local root, or bucket and
    /// key prefix) cannot change: existing tables point into it.
    pub async fn update_warehouse_storage(
        &self,
        ctx: &RequestContext,
        id: WarehouseId,
        request: UpdateWarehouseStorage,
    ) -> Result<Warehouse> {
        // validate
        validate_storage(
            &request.storage_profile,
            request.storage_credential.as_ref(),
        )?;
        self.bootstrapped().await?;
        // authorize
        self.authorize(ctx, Action::WarehouseUpdateStorage, Resource::Warehouse(id))
            .await?;
        // act
        let current = self.load_warehouse(id).await?;
        if base_location(&current.storage_profile) != base_location(&request.storage_profile) {
            return Err(Error::bad_request(format!(
                "the storage location of a warehouse cannot change (it is {}); \
                 endpoint, region, STS settings and the credential can",
                base_location(&current.storage_profile)
            )));
        }
        let served = |p: &StorageProfile| {
            matches!(
                p,
                StorageProfile::Local {
                    s3_gateway: true,
                    ..
                }
            )
        };
        if served(&current.storage_profile) != served(&request.storage_profile) {
            return Err(Error::bad_request(
                "s3-gateway cannot change on an existing warehouse: its tables' locations depend on it",
            ));
        }
        storage::probe(
            &request.storage_profile,
            request.storage_credential.as_ref(),
        )
        .await?;
        self.replace_storage(
            &current,
            &request.storage_profile,
            request.storage_credential.as_ref(),
        )
        .await?;
        self.forget_warehouse(id);
        // announce
        self.announce(
            ctx,
            "floe.warehouse.storage-updated",
            format!("warehouse/{id}"),
            serde_json::json!({ "storage-profile": request.storage_profile }),
        )
        .await;
        self.load_warehouse(id).await
    }

    /// Replaces (or, with `None`, removes) only the storage credential.
    pub async fn update_warehouse_credential(
        &self,
        ctx: &RequestContext,
        id: WarehouseId,
        credential: Option<StorageCredential>,
    ) -> Result<Warehouse> {
        self.bootstrapped().await?;
        self.authorize(ctx, Action::WarehouseUpdateStorage, Resource::Warehouse(id))
            .await?;
        let current = self.load_warehouse(id).await?;
        validate_storage(&current.storage_profile, credential.as_ref())?;
        self.replace_storage(&current, &current.storage_profile, credential.as_ref())
            .await?;
        self.forget_warehouse(id);
        self.announce(
            ctx,
            "floe.warehouse.credential-updated",
            format!("warehouse/{id}"),
            serde_json::Value::Null,
        )
        .await;
        self.load_warehouse(id).await
    }

    /// Deletes an empty warehouse and its credential.
    pub async fn delete_warehouse(&self, ctx: &RequestContext, id: WarehouseId) -> Result<()> {
        self.bootstrapped().await?;
        self.authorize(ctx, Action::WarehouseDelete, Resource::Warehouse(id))
            .await?;
        let warehouse = self.load_warehouse(id).await?;
        self.store.warehouses.delete_warehouse(id).await?;
        self.forget_warehouse(id);
        self.forget_credential(warehouse.credential_secret_id).await;
        self.announce(
            ctx,
            "floe.warehouse.deleted",
            format!("warehouse/{id}"),
            serde_json::json!({ "name": warehouse.name }),
        )
        .await;
        Ok(())
    }

    /// A warehouse the gateway serves needs the gateway to run. (Warehouse names already follow
    /// S3's bucket naming rules, so every warehouse can be a bucket.)
    fn check_gateway_served(&self, _name: &str, profile: &StorageProfile) -> Result<()> {
        if matches!(
            profile,
            StorageProfile::Local {
                s3_gateway: true,
                ..
            }
        ) && self.keys.is_none()
        {
            return Err(Error::bad_request(
                "s3-gateway is set but the S3 gateway is disabled on this server",
            ));
        }
        Ok(())
    }

    /// The object store of a warehouse, built once per version of its settings (an S3 client is
    /// costly to build, and its credential is read from the `SecretStore`).
    pub(crate) async fn warehouse_storage(
        &self,
        warehouse: &Warehouse,
    ) -> Result<Arc<dyn storage::ObjectStorage>> {
        let key = (warehouse.id, warehouse.updated_at);
        if let Some(store) = self.storages.lock().expect("cache lock").get(&key) {
            return Ok(store.clone());
        }
        let credential = self.warehouse_credential(warehouse).await?;
        let store = storage::for_warehouse(warehouse, credential.as_ref())?;
        let mut cache = self.storages.lock().expect("cache lock");
        cache.retain(|(id, _), _| *id != warehouse.id);
        if cache.len() >= 1_000 {
            cache.clear();
        }
        cache.insert(key, store.clone());
        Ok(store)
    }

    /// Every warehouse of every project, for the server's own housekeeping (no authorization).
    pub(crate) async fn all_warehouses(&self) -> Result<Vec<Warehouse>> {
        self.store.warehouses.list_warehouses(None).await
    }

    pub(crate) async fn load_warehouse(&self, id: WarehouseId) -> Result<Warehouse> {
        self.store
            .warehouses
            .get_warehouse(id)
            .await?
            .ok_or_else(|| {
                Error::not_found(Entity::Warehouse, format!("warehouse {id} does not exist"))
            })
    }

    /// The warehouse's storage credential, for the storage layer (never for a response).
    pub async fn warehouse_credential(
        &self,
        warehouse: &Warehouse,
    ) -> Result<Option<StorageCredential>> {
        let Some(id) = warehouse.credential_secret_id else {
            return Ok(None);
        };
        let value = self.secrets.read(id).await?;
        serde_json::from_slice(&value.0)
            .map(Some)
            .map_err(|e| Error::internal("decoding a stored storage credential", e))
    }

    async fn replace_storage(
        &self,
        current: &Warehouse,
        profile: &StorageProfile,
        credential: Option<&StorageCredential>,
    ) -> Result<()> {
        let new_secret = match credential {
            Some(credential) => Some(self.store_credential(credential).await?),
            None => None,
        };
        if let Err(e) = self
            .store
            .warehouses
            .update_warehouse_storage(current.id, profile, new_secret, now())
            .await
        {
            self.forget_credential(new_secret).await;
            return Err(e);
        }
        self.forget_credential(current.credential_secret_id).await;
        Ok(())
    }

    async fn store_credential(&self, credential: &StorageCredential) -> Result<SecretId> {
        let bytes = serde_json::to_vec(credential)
            .map_err(|e| Error::internal("encoding a storage credential", e))?;
        self.secrets.create(&SecretValue(bytes)).await
    }

    /// Best-effort removal of a secret no longer referenced; a failure leaves an orphan, logged.
    async fn forget_credential(&self, id: Option<SecretId>) {
        if let Some(id) = id
            && let Err(e) = self.secrets.delete(id).await
        {
            tracing::warn!(secret_id = %id, error = ?e, "deleting an unused secret failed");
        }
    }
}
