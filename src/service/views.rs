//! View use cases: create, load, replace (with `assert-view-uuid`), drop, rename, register, list.
//! Views share their namespace's name space with tables, and their metadata files are written and
//! swapped like tables'.

use std::collections::HashMap;

use iceberg::ViewUpdate;
use iceberg::spec::{Schema, ViewMetadata, ViewVersion};

use super::metadata::{
    ViewRequirement, apply_view_commit, check_locations, default_location, new_view_metadata,
    next_metadata_location, parse_view_metadata, view_metadata_json,
};
use super::{RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, ErrorKind, Result};
use crate::model::{
    NamespaceIdent, Page, PageRequest, Tabular, TabularId, TabularIdent, TabularKind, WarehouseId,
    now,
};
use crate::storage::Location;
use crate::store::TabularChange;

/// A view as a client sees it.
#[derive(Debug, Clone)]
pub struct ViewState {
    pub metadata_location: String,
    pub metadata: bytes::Bytes,
}

#[derive(Debug)]
pub struct CreateView {
    pub name: String,
    pub location: Option<String>,
    pub schema: Schema,
    pub view_version: ViewVersion,
    pub properties: HashMap<String, String>,
}

fn namespace_resource(warehouse: WarehouseId, namespace: &NamespaceIdent) -> Resource {
    Resource::Namespace {
        warehouse,
        namespace: namespace.clone(),
    }
}

fn view_resource(warehouse: WarehouseId, ident: &TabularIdent, uuid: uuid::Uuid) -> Resource {
    Resource::Tabular {
        warehouse,
        ident: ident.clone(),
        uuid,
        kind: TabularKind::View,
    }
}

fn no_such_view(ident: &TabularIdent) -> Error {
    Error::not_found(Entity::View, format!("view {ident} does not exist"))
}

impl Services {
    pub async fn list_views(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        namespace: &NamespaceIdent,
        page: PageRequest,
    ) -> Result<Page<String>> {
        self.authorize(
            ctx,
            Action::ViewList,
            Resource::Namespace {
                warehouse,
                namespace: namespace.clone(),
            },
        )
        .await?;
        let visible = self
            .visible_tabulars(ctx, warehouse, namespace, TabularKind::View)
            .await?;
        let branch = self.request_ref(ctx, warehouse).await?;
        self.require_namespace(&branch, namespace).await?;
        self.store
            .tabulars
            .list_tabulars(
                branch.id,
                namespace,
                TabularKind::View,
                &page,
                visible.only(),
            )
            .await
    }

    pub async fn create_view(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        namespace: NamespaceIdent,
        request: CreateView,
    ) -> Result<ViewState> {
        // validate
        let ident = TabularIdent::new(namespace, request.name)?;
        // authorize
        self.authorize(
            ctx,
            Action::ViewCreate,
            namespace_resource(warehouse, &ident.namespace),
        )
        .await?;
        // act
        let wh = self.open_warehouse(ctx, warehouse).await?;
        self.require_namespace(&wh.branch, &ident.namespace).await?;
        let location = match &request.location {
            Some(location) => Location::parse(location)?,
            None => default_location(&wh.base, ident.namespace.levels(), &ident.name)?,
        };
        let metadata = new_view_metadata(
            &location,
            request.schema,
            request.view_version,
            request.properties,
        )?;
        let location = check_locations(metadata.location(), metadata.properties(), &wh.base)?;
        let file = next_metadata_location(&location, metadata.properties(), None)?;
        let json = bytes::Bytes::from(view_metadata_json(&metadata)?);
        wh.storage.put_new(&file, json.clone()).await?;
        let record = wh.new_tabular(
            TabularId::new(),
            ident.clone(),
            TabularKind::View,
            metadata.uuid(),
            &location,
            &file,
            json.clone(),
        );
        if let Err(e) = self
            .store
            .tabulars
            .commit_tabulars(
                wh.branch.id,
                &[TabularChange::Create(record)],
                &self.commit_meta(ctx, format!("create view {ident}")),
            )
            .await
        {
            let _ = wh.storage.delete(&file).await;
            return Err(e);
        }
        self.own(ctx, view_resource(warehouse, &ident, metadata.uuid()))
            .await;
        Ok(ViewState {
            metadata_location: file.to_string(),
            metadata: json,
        })
    }

    async fn current_view(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
    ) -> Result<Tabular> {
        let branch = self.request_ref(ctx, warehouse).await?;
        let view = self
            .store
            .tabulars
            .get_tabular(branch.id, ident)
            .await?
            .filter(|t| t.kind == TabularKind::View)
            .ok_or_else(|| no_such_view(ident))?;
        self.with_metadata(view).await
    }

    pub async fn load_view(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
    ) -> Result<ViewState> {
        let view = self.current_view(ctx, warehouse, ident).await?;
        self.authorize(
            ctx,
            Action::ViewRead,
            view_resource(warehouse, ident, view.uuid),
        )
        .await?;
        Ok(ViewState {
            metadata_location: view.metadata_location,
            metadata: view.metadata,
        })
    }

    pub async fn view_exists(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
    ) -> Result<()> {
        self.load_view(ctx, warehouse, ident).await.map(|_| ())
    }

    /// Replaces a view (`replaceView`): requirements are checked and updates applied on the current
    /// metadata; a lost compare-and-swap is retried on the server.
    pub async fn replace_view(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        requirements: Vec<ViewRequirement>,
        updates: Vec<ViewUpdate>,
    ) -> Result<ViewState> {
        self.authorize_tabular(ctx, Action::ViewCommit, warehouse, ident, TabularKind::View)
            .await?;
        let wh = self.open_warehouse(ctx, warehouse).await?;
        let _turn = self
            .commit_locks
            .lock([(warehouse, wh.branch.id, ident)])
            .await;
        let mut retries = super::commit::Retries::new();
        loop {
            let current = self.current_view(ctx, warehouse, ident).await?;
            let metadata: ViewMetadata = parse_view_metadata(&current.metadata)?;
            let next = apply_view_commit(&metadata, &requirements, updates.clone())?;
            let location = check_locations(next.location(), next.properties(), &wh.base)?;
            let file = next_metadata_location(
                &location,
                next.properties(),
                Some(current.metadata_location.as_str()),
            )?;
            let json = bytes::Bytes::from(view_metadata_json(&next)?);
            wh.storage.put_new(&file, json.clone()).await?;
            let change = TabularChange::Update {
                id: current.id,
                ident: ident.clone(),
                expected_version: current.version,
                uuid: next.uuid(),
                location: location.to_string(),
                metadata_location: file.to_string(),
                metadata: json.clone(),
                at: now(),
                claims_location: (current.location != location.as_str()).then_some(wh.warehouse.id),
            };
            match self
                .store
                .tabulars
                .commit_tabulars(
                    wh.branch.id,
                    &[change],
                    &self.commit_meta(ctx, format!("replace view {ident}")),
                )
                .await
            {
                Ok(()) => {
                    return Ok(ViewState {
                        metadata_location: file.to_string(),
                        metadata: json,
                    });
                }
                Err(e) => {
                    let _ = wh.storage.delete(&file).await;
                    if e.kind != ErrorKind::CommitConflict || !retries.again().await {
                        return Err(e);
                    }
                }
            }
        }
    }

    pub async fn drop_view(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &TabularIdent,
        force: bool,
    ) -> Result<()> {
        self.authorize_tabular(ctx, Action::ViewDrop, warehouse, ident, TabularKind::View)
            .await?;
        let branch = self.writable_ref(ctx, warehouse).await?;
        let request = super::DropRequest {
            purge: false,
            force,
        };
        let options = self
            .drop_options(ctx, warehouse, branch.id, ident, TabularKind::View, request)
            .await?;
        let dropped = self
            .store
            .tabulars
            .drop_tabular(
                branch.id,
                ident,
                TabularKind::View,
                &self.commit_meta(ctx, format!("drop view {ident}")),
                &options,
            )
            .await?;
        if options.soft.is_some() {
            // Kept for undrop; its expiry releases the folders.
            return Ok(());
        }
        // A view has no data to purge: once nothing else reads it (no other line, tag or commit),
        // its folders are free again. Its metadata files stay, unreferenced.
        if dropped.ref_id == branch.id
            && !self
                .store
                .refs
                .table_shared(branch.id, dropped.uuid)
                .await?
        {
            self.store
                .tabulars
                .release_view_claims(warehouse, dropped.uuid)
                .await?;
        }
        Ok(())
    }

    pub async fn rename_view(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        from: &TabularIdent,
        to: &TabularIdent,
    ) -> Result<()> {
        self.authorize_tabular(ctx, Action::ViewRename, warehouse, from, TabularKind::View)
            .await?;
        self.authorize(
            ctx,
            Action::ViewCreate,
            namespace_resource(warehouse, &to.namespace),
        )
        .await?;
        let branch = self.writable_ref(ctx, warehouse).await?;
        self.store
            .tabulars
            .rename_tabular(
                branch.id,
                from,
                to,
                TabularKind::View,
                &self
                    .commit_meta(ctx, format!("rename view {from} to {to}"))
                    .announced_as(crate::model::CommitEvent::Rename),
            )
            .await?;
        Ok(())
    }

    /// Registers an existing view metadata file (inside the warehouse) as a view.
    pub async fn register_view(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: TabularIdent,
        metadata_location: &str,
    ) -> Result<ViewState> {
        let file = Location::parse(metadata_location)?;
        self.authorize(
            ctx,
            Action::ViewRegister,
            namespace_resource(warehouse, &ident.namespace),
        )
        .await?;
        let wh = self.open_warehouse(ctx, warehouse).await?;
        if !file.is_within(&wh.base) {
            return Err(Error::forbidden(format!(
                "metadata location {file} is outside the warehouse at {}",
                wh.base
            )));
        }
        self.require_namespace(&wh.branch, &ident.namespace).await?;
        let bytes =
            wh.storage.get(&file).await?.ok_or_else(|| {
                Error::bad_request(format!("there is no metadata file at {file}"))
            })?;
        let metadata: ViewMetadata = super::metadata::lowered(&bytes)
            .map_err(|e| Error::bad_request(format!("{file} is not valid view metadata: {e}")))?;
        let location = check_locations(metadata.location(), metadata.properties(), &wh.base)?;
        // As for tables: the file lies in the folder it names. Claims belong to a UUID, so a view
        // may not take a table's (it could release the table's claims); views of one UUID (a
        // view registered again from its file) share only view claims, which open nothing.
        if !file.is_within(&location) || file == location {
            return Err(Error::forbidden(format!(
                "metadata file {file} is not inside the view location it names ({location})"
            )));
        }
        if self
            .store
            .tabulars
            .uuid_known(wh.warehouse.id, metadata.uuid(), Some(TabularKind::Table))
            .await?
        {
            return Err(Error::already_exists(
                Entity::View,
                format!(
                    "UUID {} belongs to a table of this warehouse; a view needs a UUID of its own",
                    metadata.uuid()
                ),
            ));
        }
        // A view registered again from its file shares its UUID, and so its grants, with the
        // first: registering it gives no ownership of them.
        let new_uuid = !self
            .store
            .tabulars
            .uuid_known(wh.warehouse.id, metadata.uuid(), Some(TabularKind::View))
            .await?;
        if !new_uuid {
            self.require_takeover(ctx, warehouse, metadata.uuid(), TabularKind::View)
                .await?;
        }
        let json = bytes::Bytes::from(view_metadata_json(&metadata)?);
        self.store
            .tabulars
            .commit_tabulars(
                wh.branch.id,
                &[TabularChange::Create(wh.new_tabular(
                    TabularId::new(),
                    ident.clone(),
                    TabularKind::View,
                    metadata.uuid(),
                    &location,
                    &file,
                    json.clone(),
                ))],
                &self
                    .commit_meta(ctx, format!("register view {ident}"))
                    .announced_as(crate::model::CommitEvent::Register),
            )
            .await?;
        if new_uuid {
            self.own(ctx, view_resource(warehouse, &ident, metadata.uuid()))
                .await;
        }
        Ok(ViewState {
            metadata_location: file.to_string(),
            metadata: json,
        })
    }
}
