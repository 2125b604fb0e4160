//! Warehouse use cases. A warehouse is a catalog with its own storage; its storage credential is kept
//! in the `SecretStore` and never returned by any use case.

use std::path::{Path, PathBuf};
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

/// Where local warehouses may live, and the files of Floe's own they must stay away from.
#[derive(Debug, Clone, Default)]
pub struct LocalRoots {
    /// Folders a local warehouse's root must lie in (or be): `<data_dir>/warehouses` and those
    /// `storage.local_roots` adds. None: no local warehouse at all.
    pub allowed: Vec<PathBuf>,
    /// Floe's data folder: no root may be it, contain it, or lie inside it, except inside
    /// `<data_dir>/warehouses`.
    pub data_dir: Option<PathBuf>,
    /// Files no root may contain wherever they are (the database and key files).
    pub protected: Vec<PathBuf>,
}

impl LocalRoots {
    /// Resolves every path (the folders are created if missing, so that symbolic links in them
    /// are followed as the file system will).
    pub fn new(
        allowed: Vec<PathBuf>,
        data_dir: Option<PathBuf>,
        protected: Vec<PathBuf>,
    ) -> std::io::Result<LocalRoots> {
        Ok(LocalRoots {
            allowed: allowed
                .iter()
                .map(|p| resolve_path(p))
                .collect::<std::io::Result<_>>()?,
            data_dir: data_dir.as_deref().map(resolve_path).transpose()?,
            protected: protected
                .iter()
                .map(|p| resolve_path(p))
                .collect::<std::io::Result<_>>()?,
        })
    }

    /// The root as the file system resolves it, if a local warehouse may live there.
    fn check(&self, root: &Path) -> Result<PathBuf> {
        let resolved = resolve_path(root).map_err(|e| {
            Error::bad_request(format!(
                "local storage root {root:?} cannot be resolved: {e}"
            ))
        })?;
        let refuse = |why: String| {
            Err(Error::forbidden(format!(
                "local storage root {} {why}",
                resolved.display()
            )))
        };
        if !self.allowed.iter().any(|dir| resolved.starts_with(dir)) {
            return refuse(format!(
                "is outside the folders local warehouses may use ({}); add its parent to \
                 storage.local_roots",
                self.allowed
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(data) = &self.data_dir {
            let warehouses = data.join("warehouses");
            if data.starts_with(&resolved)
                || (resolved.starts_with(data)
                    && !(resolved.starts_with(&warehouses) && resolved != warehouses))
            {
                return refuse(
                    "would reach Floe's own data folder (its database and keys); local \
                     warehouses live in folders of their own (under <data_dir>/warehouses/)"
                        .to_string(),
                );
            }
        }
        if self
            .protected
            .iter()
            .any(|file| file.starts_with(&resolved))
        {
            return refuse("would contain Floe's database or key file".to_string());
        }
        Ok(resolved)
    }
}

/// A path with every symbolic link resolved: its longest existing ancestor canonicalized, the rest
/// (which must be plain names) appended.
pub(crate) fn resolve_path(path: &Path) -> std::io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(resolved) => {
                let mut resolved = resolved;
                for part in rest.iter().rev() {
                    resolved.push(part);
                }
                return Ok(resolved);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(name) = existing.file_name().map(|n| n.to_os_string()) else {
                    return Err(e);
                };
                rest.push(name);
                if !existing.pop() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
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
        // Local roots are checked before anything is written there, and kept as the file system
        // resolves them; no warehouse's storage may overlap another's (checked again, finally,
        // when the warehouse is recorded).
        if self
            .store
            .warehouses
            .get_warehouse_by_name(project_id, &request.name)
            .await?
            .is_some()
        {
            return Err(Error::already_exists(
                Entity::Warehouse,
                format!(
                    "warehouse {:?} already exists in this project",
                    request.name
                ),
            ));
        }
        let mut request = request;
        if let StorageProfile::Local { root, .. } = &mut request.storage_profile {
            *root = self.local_roots.check(root)?;
        }
        self.check_storage_is_free(&request.storage_profile, None)
            .await?;
        storage::probe(
            &request.storage_profile,
            request.storage_credential.as_ref(),
            &self.s3_timeouts,
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
        let events = self.change_event(
            ctx,
            "warehouse.created",
            format!("warehouse/{}", warehouse.id),
            serde_json::json!({ "name": warehouse.name, "project-id": project_id }),
        );
        if let Err(e) = self
            .store
            .warehouses
            .create_warehouse(&warehouse, &main, &events)
            .await
        {
            self.forget_credential(secret_id).await;
            return Err(e);
        }
        // announce
        self.own(ctx, Resource::Warehouse(warehouse.id)).await;
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
        let warehouses = self.store.warehouses.list_warehouses(project).await?;
        self.visible_warehouses(ctx, warehouses).await
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
        if current.storage_profile.gateway_served() && current.name != name {
            return Err(Error::conflict(format!(
                "warehouse {} is served by the S3 gateway as the bucket of that name, and its \
                 tables' locations name the bucket; it cannot be renamed",
                current.name
            )));
        }
        let events = self.change_event(
            ctx,
            "warehouse.renamed",
            format!("warehouse/{id}"),
            serde_json::json!({ "name": name }),
        );
        self.store
            .warehouses
            .rename_warehouse(id, &name, now(), &events)
            .await?;
        self.forget_warehouse(id);
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
        if current.storage_profile.gateway_served() != request.storage_profile.gateway_served() {
            return Err(Error::bad_request(
                "s3-gateway cannot change on an existing warehouse: its tables' locations depend on it",
            ));
        }
        self.check_storage_is_free(&request.storage_profile, Some(id))
            .await?;
        storage::probe(
            &request.storage_profile,
            request.storage_credential.as_ref(),
            &self.s3_timeouts,
        )
        .await?;
        let events = self.change_event(
            ctx,
            "warehouse.storage-updated",
            format!("warehouse/{id}"),
            serde_json::json!({ "storage-profile": request.storage_profile }),
        );
        self.replace_storage(
            &current,
            &request.storage_profile,
            request.storage_credential.as_ref(),
            &events,
        )
        .await?;
        self.forget_warehouse(id);
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
        let events = self.change_event(
            ctx,
            "warehouse.credential-updated",
            format!("warehouse/{id}"),
            serde_json::Value::Null,
        );
        self.replace_storage(
            &current,
            &current.storage_profile,
            credential.as_ref(),
            &events,
        )
        .await?;
        self.forget_warehouse(id);
        self.load_warehouse(id).await
    }

    /// Deletes an empty warehouse and its credential.
    pub async fn delete_warehouse(
        &self,
        ctx: &RequestContext,
        id: WarehouseId,
        force: bool,
    ) -> Result<()> {
        self.bootstrapped().await?;
        self.authorize(ctx, Action::WarehouseDelete, Resource::Warehouse(id))
            .await?;
        let warehouse = self.load_warehouse(id).await?;
        self.check_unprotected(
            id,
            &crate::model::lifecycle::ProtectedObject::Warehouse,
            force,
            &format!("warehouse {}", warehouse.name),
        )
        .await?;
        // Soft-deleted tables could still be undropped, and purges still need the storage.
        if self.store.lifecycle.has_pending_lifecycle(id).await? {
            return Err(Error::not_empty(
                crate::error::Entity::Warehouse,
                format!(
                    "warehouse {} still has soft-deleted tables or views, or unfinished tasks \
                     (purges); undrop or wait for them",
                    warehouse.name
                ),
            ));
        }
        if warehouse.credential_secret_id.is_some() {
            // Its credential goes with it: not while the secret store is away, where it would
            // stay, unreferenced.
            self.secrets.health().await?;
        }
        let events = self.change_event(
            ctx,
            "warehouse.deleted",
            format!("warehouse/{id}"),
            serde_json::json!({ "name": warehouse.name }),
        );
        self.store
            .warehouses
            .delete_warehouse(id, force, &events)
            .await?;
        self.forget_warehouse(id);
        self.forget_credential(warehouse.credential_secret_id).await;
        Ok(())
    }

    /// Refuses storage that overlaps another warehouse's: the same local root (as the file system
    /// resolves it) or bucket and prefix, or one inside the other.
    async fn check_storage_is_free(
        &self,
        profile: &StorageProfile,
        except: Option<WarehouseId>,
    ) -> Result<()> {
        let resolved = |p: &StorageProfile| match p {
            StorageProfile::Local { root, s3_gateway } => StorageProfile::Local {
                root: resolve_path(root).unwrap_or_else(|_| root.clone()),
                s3_gateway: *s3_gateway,
            },
            other => other.clone(),
        };
        let mine = resolved(profile);
        for other in self.store.warehouses.list_warehouses(None).await? {
            if Some(other.id) != except && resolved(&other.storage_profile).overlaps(&mine) {
                return Err(Error::conflict(format!(
                    "the storage of warehouse {:?} overlaps this one's; every warehouse needs \
                     storage of its own",
                    other.name
                )));
            }
        }
        Ok(())
    }

    /// A warehouse the gateway serves needs the gateway to run. (Every warehouse can be a bucket:
    /// `model::gateway_bucket_name` gives names that are not bucket names a bucket-safe form.)
    fn check_gateway_served(&self, _name: &str, profile: &StorageProfile) -> Result<()> {
        if profile.gateway_served() && self.keys.is_none() {
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
        if let Some(store) = self.caches.storages.lock().expect("cache lock").get(&key) {
            return Ok(store.clone());
        }
        let credential = self.warehouse_credential(warehouse).await?;
        let store = storage::for_warehouse(warehouse, credential.as_ref(), &self.s3_timeouts)?;
        let mut cache = self.caches.storages.lock().expect("cache lock");
        cache.retain(|(id, _), _| *id != warehouse.id);
        if cache.len() >= 1_000 {
            cache.clear();
        }
        cache.insert(key, store.clone());
        Ok(store)
    }

    /// The bucket of an S3 warehouse, with a client holding its credential: what the gateway
    /// calls in front of it. Built once per version of the warehouse's settings.
    pub async fn warehouse_bucket(
        &self,
        warehouse: &Warehouse,
    ) -> Result<Arc<crate::storage::s3::S3Bucket>> {
        let key = (warehouse.id, warehouse.updated_at);
        if let Some(bucket) = self.caches.buckets.lock().expect("cache lock").get(&key) {
            return Ok(bucket.clone());
        }
        let credential = self.warehouse_credential(warehouse).await?;
        let bucket = Arc::new(crate::storage::s3::S3Bucket::new(
            &warehouse.storage_profile,
            credential.as_ref(),
            &self.s3_timeouts,
        )?);
        let mut cache = self.caches.buckets.lock().expect("cache lock");
        cache.retain(|(id, _), _| *id != warehouse.id);
        if cache.len() >= 1_000 {
            cache.clear();
        }
        cache.insert(key, bucket.clone());
        Ok(bucket)
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

    /// Sets a warehouse's storage and credential. A credential that replaces another is written
    /// as a new version of the same secret (with Vault, a new KV version), restored if the
    /// warehouse's row cannot be updated; a first credential is a new secret, deleted again then.
    async fn replace_storage(
        &self,
        current: &Warehouse,
        profile: &StorageProfile,
        credential: Option<&StorageCredential>,
        events: &[crate::model::events::CloudEvent],
    ) -> Result<()> {
        match (current.credential_secret_id, credential) {
            (Some(id), Some(credential)) => {
                let previous = self.secrets.read(id).await?;
                self.secrets
                    .update(id, &encode_credential(credential)?)
                    .await?;
                if let Err(e) = self
                    .store
                    .warehouses
                    .update_warehouse_storage(current.id, profile, Some(id), now(), events)
                    .await
                {
                    if let Err(undo) = self.secrets.update(id, &previous).await {
                        tracing::error!(secret_id = %id, error = ?undo,
                            "restoring a warehouse's previous credential failed");
                    }
                    return Err(e);
                }
            }
            (None, Some(credential)) => {
                let new_secret = Some(self.store_credential(credential).await?);
                if let Err(e) = self
                    .store
                    .warehouses
                    .update_warehouse_storage(current.id, profile, new_secret, now(), events)
                    .await
                {
                    self.forget_credential(new_secret).await;
                    return Err(e);
                }
            }
            (old, None) => {
                if old.is_some() {
                    // Not deleted while the store is away: it would stay there, unreferenced.
                    self.secrets.health().await?;
                }
                self.store
                    .warehouses
                    .update_warehouse_storage(current.id, profile, None, now(), events)
                    .await?;
                self.forget_credential(old).await;
            }
        }
        Ok(())
    }

    async fn store_credential(&self, credential: &StorageCredential) -> Result<SecretId> {
        self.secrets.create(&encode_credential(credential)?).await
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

fn encode_credential(credential: &StorageCredential) -> Result<SecretValue> {
    serde_json::to_vec(credential)
        .map(SecretValue)
        .map_err(|e| Error::internal("encoding a storage credential", e))
}
