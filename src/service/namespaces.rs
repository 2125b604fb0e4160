//! Namespace use cases of the Iceberg REST catalog.

use std::collections::BTreeSet;

use super::{RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, Result};
use crate::model::{
    Namespace, NamespaceId, NamespaceIdent, PageRequest, Properties, WarehouseId, now,
    validate_properties,
};

#[derive(Debug, Clone)]
pub struct NamespacesPage {
    pub namespaces: Vec<NamespaceIdent>,
    /// The joined name to continue after, when there are more.
    pub next: Option<String>,
}

/// The outcome of a properties update, as the Iceberg spec reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePropertiesUpdate {
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub missing: Vec<String>,
}

fn namespace_resource(warehouse: WarehouseId, namespace: &NamespaceIdent) -> Resource {
    Resource::Namespace {
        warehouse,
        namespace: namespace.clone(),
    }
}

fn no_such_namespace(ident: &NamespaceIdent) -> Error {
    Error::not_found(
        Entity::Namespace,
        format!("namespace {ident} does not exist"),
    )
}

impl Services {
    pub async fn list_namespaces(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        parent: Option<NamespaceIdent>,
        page: PageRequest,
    ) -> Result<NamespacesPage> {
        // authorize
        self.authorize(
            ctx,
            Action::NamespaceList,
            match &parent {
                Some(parent) => namespace_resource(warehouse, parent),
                None => Resource::Warehouse(warehouse),
            },
        )
        .await?;
        let visible = self
            .visible_namespaces(ctx, warehouse, parent.as_ref())
            .await?;
        // act
        let branch = self.request_ref(ctx, warehouse).await?;
        if let Some(parent) = &parent
            && self
                .store
                .namespaces
                .get_namespace(branch.id, parent)
                .await?
                .is_none()
        {
            return Err(no_such_namespace(parent));
        }
        let page = self
            .store
            .namespaces
            .list_namespaces(branch.id, parent.as_ref(), &page, visible.only())
            .await?;
        Ok(NamespacesPage {
            namespaces: page.items,
            next: page.next,
        })
    }

    pub async fn create_namespace(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: NamespaceIdent,
        properties: Properties,
    ) -> Result<Namespace> {
        // validate
        validate_properties(
            properties
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_str()))),
        )?;
        // authorize
        self.authorize(
            ctx,
            Action::NamespaceCreate,
            match ident.parent() {
                Some(parent) => namespace_resource(warehouse, &parent),
                None => Resource::Warehouse(warehouse),
            },
        )
        .await?;
        // act
        let branch = self.writable_ref(ctx, warehouse).await?;
        let at = now();
        let namespace = Namespace {
            id: NamespaceId::new(),
            warehouse_id: warehouse,
            ref_id: branch.id,
            ident,
            properties,
            created_at: at,
            updated_at: at,
        };
        self.store
            .namespaces
            .create_namespace(
                &namespace,
                &self.commit_meta(ctx, format!("create namespace {}", namespace.ident)),
            )
            .await?;
        self.own(
            ctx,
            Resource::Namespace {
                warehouse,
                namespace: namespace.ident.clone(),
            },
        )
        .await;
        Ok(namespace)
    }

    pub async fn load_namespace(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &NamespaceIdent,
    ) -> Result<Namespace> {
        self.authorize(
            ctx,
            Action::NamespaceRead,
            namespace_resource(warehouse, ident),
        )
        .await?;
        let branch = self.request_ref(ctx, warehouse).await?;
        self.store
            .namespaces
            .get_namespace(branch.id, ident)
            .await?
            .ok_or_else(|| no_such_namespace(ident))
    }

    pub async fn drop_namespace(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &NamespaceIdent,
        request: super::DropNamespaceRequest,
    ) -> Result<()> {
        let force = request.force;
        // authorize
        self.authorize(
            ctx,
            Action::NamespaceDrop,
            namespace_resource(warehouse, ident),
        )
        .await?;
        // act
        let branch = self.writable_ref(ctx, warehouse).await?;
        if request.recursive {
            return self
                .drop_namespace_recursive(ctx, warehouse, &branch, ident, request)
                .await;
        }
        if request.purge {
            return Err(Error::bad_request(
                "purge applies to the tables a recursive drop removes; add recursive=true",
            ));
        }
        self.check_unprotected(
            warehouse,
            &crate::model::lifecycle::ProtectedObject::Namespace(ident.clone()),
            force,
            &format!("namespace {ident}"),
        )
        .await?;
        self.store
            .namespaces
            .drop_namespace(
                branch.id,
                ident,
                force,
                &self.commit_meta(ctx, format!("drop namespace {ident}")),
            )
            .await?;
        Ok(())
    }

    pub async fn update_namespace_properties(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        ident: &NamespaceIdent,
        updates: Properties,
        removals: Vec<String>,
    ) -> Result<NamespacePropertiesUpdate> {
        // validate
        let removal_set: BTreeSet<&String> = removals.iter().collect();
        let both: Vec<&str> = updates
            .keys()
            .filter(|k| removal_set.contains(k))
            .map(String::as_str)
            .collect();
        if !both.is_empty() {
            return Err(Error::unprocessable(format!(
                "keys {both:?} are both updated and removed"
            )));
        }
        validate_properties(
            updates
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_str())))
                .chain(removals.iter().map(|k| (k.as_str(), None))),
        )?;
        // authorize
        self.authorize(
            ctx,
            Action::NamespaceUpdateProperties,
            namespace_resource(warehouse, ident),
        )
        .await?;
        // act
        let branch = self.writable_ref(ctx, warehouse).await?;
        let before = self
            .store
            .namespaces
            .update_namespace_properties(
                branch.id,
                ident,
                &updates,
                &removals,
                now(),
                &self
                    .commit_meta(ctx, format!("update properties of namespace {ident}"))
                    .with_event_data(
                        ident.levels(),
                        &None,
                        serde_json::json!({ "updates": updates, "removals": removals }),
                    ),
            )
            .await?;
        let (removed, missing): (Vec<String>, Vec<String>) = removal_set
            .into_iter()
            .cloned()
            .partition(|k| before.contains_key(k));
        let result = NamespacePropertiesUpdate {
            updated: updates.keys().cloned().collect(),
            removed,
            missing,
        };
        Ok(result)
    }
}
