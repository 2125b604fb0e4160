//! Finding tables and views by name across a whole warehouse (every namespace of one ref), for
//! people who know part of a name but not where it lives. Shows what the caller's lists would.

use std::collections::{BTreeSet, HashMap};

use super::{RequestContext, Services};
use crate::authz::{Action, Caller, ObjectType, Resource};
use crate::error::{Error, Result};
use crate::model::{
    NamespaceIdent, Page, PageRequest, TabularIdent, TabularKind, WarehouseId,
    parse_tabular_object_id,
};
use crate::store::search_key;

/// What a search of a warehouse may show the caller.
enum SearchScope {
    /// Everything in the warehouse.
    All,
    /// Tables and views of namespaces the caller may describe (decided once per namespace), and
    /// those they hold something on.
    Some {
        caller: Caller,
        tabulars: BTreeSet<uuid::Uuid>,
        namespaces: HashMap<NamespaceIdent, bool>,
    },
}

/// The longest search text taken, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

impl Services {
    /// The tables and views of the request's ref whose name contains `text` in any case, by
    /// namespace and name, a page at a time. Needs `NamespaceList` on the warehouse; shows only
    /// what the caller may see.
    pub async fn search_tabulars(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
        text: &str,
        page: PageRequest,
    ) -> Result<Page<(TabularIdent, TabularKind)>> {
        // validate
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::bad_request("search text must not be empty"));
        }
        if text.chars().count() > MAX_SEARCH_CHARS {
            return Err(Error::bad_request(format!(
                "search text is longer than {MAX_SEARCH_CHARS} characters"
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(Error::bad_request(
                "search text must not contain control characters",
            ));
        }
        let limit = page.limit.unwrap_or(100).max(1) as usize;
        // authorize
        self.authorize(ctx, Action::NamespaceList, Resource::Warehouse(warehouse))
            .await?;
        let mut scope = self.search_scope(ctx, warehouse).await?;
        // act
        let reference = self.request_ref(ctx, warehouse).await?;
        let mut out = Vec::new();
        let mut after = page.after;
        loop {
            let found = self
                .store
                .tabulars
                .search_tabulars(
                    reference.id,
                    text,
                    &PageRequest {
                        after: after.clone(),
                        limit: Some((limit - out.len()).max(100) as u32),
                    },
                )
                .await?;
            let more = found.next.is_some();
            let count = found.items.len();
            for (i, (ident, uuid, kind)) in found.items.into_iter().enumerate() {
                if !self
                    .search_shows(&mut scope, warehouse, &ident.namespace, uuid)
                    .await?
                {
                    continue;
                }
                let key = search_key(&ident);
                out.push((ident, kind));
                if out.len() == limit {
                    let rest = more || i + 1 < count;
                    return Ok(Page {
                        items: out,
                        next: rest.then_some(key),
                    });
                }
            }
            match found.next {
                Some(next) => after = Some(next),
                None => {
                    return Ok(Page {
                        items: out,
                        next: None,
                    });
                }
            }
        }
    }

    /// What a search of the warehouse may show the caller: the same as its lists would (all of
    /// a namespace they may describe, else the tables and views they hold something on).
    async fn search_scope(
        &self,
        ctx: &RequestContext,
        warehouse: WarehouseId,
    ) -> Result<SearchScope> {
        let Some((caller, granted)) = self
            .list_scope(ctx, &Resource::Warehouse(warehouse))
            .await?
        else {
            return Ok(SearchScope::All);
        };
        let tabulars = granted
            .iter()
            .filter(|g| matches!(g.object.kind, ObjectType::Table | ObjectType::View))
            .filter_map(|g| parse_tabular_object_id(&g.object.id))
            .filter(|(w, _)| *w == warehouse)
            .map(|(_, uuid)| uuid)
            .collect();
        Ok(SearchScope::Some {
            caller,
            tabulars,
            namespaces: HashMap::new(),
        })
    }

    /// Whether a search result is the caller's to see (see `search_scope`).
    async fn search_shows(
        &self,
        scope: &mut SearchScope,
        warehouse: WarehouseId,
        namespace: &NamespaceIdent,
        uuid: uuid::Uuid,
    ) -> Result<bool> {
        let SearchScope::Some {
            caller,
            tabulars,
            namespaces,
        } = scope
        else {
            return Ok(true);
        };
        if tabulars.contains(&uuid) {
            return Ok(true);
        }
        if let Some(may) = namespaces.get(namespace) {
            return Ok(*may);
        }
        let path = self
            .object_path(&Resource::Namespace {
                warehouse,
                namespace: namespace.clone(),
            })
            .await?;
        let may = self.authz.check(caller, "describe", &path).await?;
        namespaces.insert(namespace.clone(), may);
        Ok(may)
    }
}
