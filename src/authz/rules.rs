//! What each action needs in Floe's authorization model (`authz/floe.fga`): a relation on the
//! object the request names, or only an authenticated caller (lists, which are filtered to what
//! the caller may browse). `docs/authz.md` shows this table per endpoint; a test keeps it current.

use super::Action;

/// The object types of the model that requests name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    Server,
    Project,
    Warehouse,
    Namespace,
    Table,
    View,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Server => "server",
            ObjectType::Project => "project",
            ObjectType::Warehouse => "warehouse",
            ObjectType::Namespace => "namespace",
            ObjectType::Table => "table",
            ObjectType::View => "view",
        }
    }

    pub fn parse(s: &str) -> Option<ObjectType> {
        Some(match s {
            "server" => ObjectType::Server,
            "project" => ObjectType::Project,
            "warehouse" => ObjectType::Warehouse,
            "namespace" => ObjectType::Namespace,
            "table" => ObjectType::Table,
            "view" => ObjectType::View,
            _ => return None,
        })
    }
}

/// What an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Any authenticated caller.
    AnyCaller,
    /// Any authenticated caller; the list holds what the caller may browse.
    Filtered,
    /// The first caller on a server with no admin; then the server's admins.
    FirstCallerOrAdmin,
    /// `relation` on the object the request names; where several types are listed, on whichever
    /// of them it is (a namespace is created in a warehouse or in a namespace).
    Relation {
        relation: &'static str,
        on: &'static [ObjectType],
    },
}

/// The requirement of every action.
pub fn requirement(action: Action) -> Requirement {
    use Action as A;
    use ObjectType as T;
    let on = |relation, on| Requirement::Relation { relation, on };
    match action {
        A::ServerBootstrap => Requirement::FirstCallerOrAdmin,
        A::ServerReadInfo | A::UserReadSelf | A::UserList | A::UserRead => Requirement::AnyCaller,
        A::UserProvision | A::UserDelete => on("can_manage_users", &[T::Server]),
        A::RoleRead => Requirement::AnyCaller,
        A::RoleManage => on("can_manage_roles", &[T::Server]),
        A::GrantsRead | A::GrantsManage => on(
            "can_manage_grants",
            &[
                T::Server,
                T::Project,
                T::Warehouse,
                T::Namespace,
                T::Table,
                T::View,
            ],
        ),
        A::ProjectCreate => on("can_create", &[T::Server]),
        A::ProjectList | A::WarehouseList | A::NamespaceList | A::TableList | A::ViewList => {
            Requirement::Filtered
        }
        // Reading an object's record (a warehouse's storage, a namespace's properties) needs
        // `describe`; `browse` (seeing that it exists, to navigate) is what lists filter by.
        A::ProjectRead => on("describe", &[T::Project]),
        A::ProjectRename => on("can_rename", &[T::Project]),
        A::ProjectDelete => on("can_delete", &[T::Project]),
        A::WarehouseCreate => on("can_create", &[T::Project]),
        A::WarehouseRead => on("describe", &[T::Warehouse]),
        A::CatalogReadConfig => on("browse", &[T::Warehouse]),
        A::WarehouseRename => on("can_rename", &[T::Warehouse]),
        A::WarehouseUpdateStorage => on("can_update_storage", &[T::Warehouse]),
        A::WarehouseDelete => on("can_delete", &[T::Warehouse]),
        A::WarehouseManageAccessKeys => on("can_manage_access_keys", &[T::Warehouse]),
        A::WarehouseReadHistory => on("can_read_history", &[T::Warehouse]),
        A::WarehouseManageRefs => on("can_manage_branches", &[T::Warehouse]),
        A::WarehouseMerge => on("can_merge", &[T::Warehouse]),
        A::WarehouseMergeProtected => on("can_merge_protected", &[T::Warehouse]),
        A::WarehouseProtectBranches => on("can_protect_branches", &[T::Warehouse]),
        A::WarehouseReadTasks => on("can_read_tasks", &[T::Warehouse]),
        A::WarehouseManageTasks => on("can_manage_tasks", &[T::Warehouse]),
        A::WarehouseSetDeleteProfile => on("can_set_delete_profile", &[T::Warehouse]),
        A::WarehouseListDeleted => on("can_list_deleted", &[T::Warehouse]),
        A::TabularUndrop => on("can_undrop", &[T::Warehouse, T::Namespace]),
        A::ProtectionRead => on("describe", &[T::Warehouse, T::Namespace, T::Table, T::View]),
        A::ProtectionSet => on(
            "can_set_protection",
            &[T::Warehouse, T::Namespace, T::Table, T::View],
        ),
        A::PermissionsRead => Requirement::AnyCaller,
        A::NamespaceCreate
        | A::TableCreate
        | A::TableRegister
        | A::ViewCreate
        | A::ViewRegister => on("can_create", &[T::Warehouse, T::Namespace]),
        A::NamespaceRead => on("describe", &[T::Namespace]),
        A::NamespaceUpdateProperties => on("can_update_properties", &[T::Namespace]),
        A::NamespaceDrop => on("can_drop", &[T::Namespace]),
        A::TableRead => on("can_load", &[T::Table]),
        A::TableCommit => on("can_commit", &[T::Table]),
        A::TableDrop | A::TablePurge => on("can_drop", &[T::Table]),
        A::TableRename => on("can_rename", &[T::Table]),
        A::TableReportMetrics => on("can_report_metrics", &[T::Table]),
        A::TableReadCredentials => on("can_read_data", &[T::Table]),
        A::ViewRead => on("can_load", &[T::View]),
        A::ViewCommit => on("can_commit", &[T::View]),
        A::ViewDrop => on("can_drop", &[T::View]),
        A::ViewRename => on("can_rename", &[T::View]),
    }
}

/// A line of `docs/authz.md`'s table for a requirement.
pub fn describe(requirement: Requirement) -> String {
    match requirement {
        Requirement::AnyCaller => "any authenticated caller".to_string(),
        Requirement::Filtered => {
            "any authenticated caller; lists what the caller may `browse`".to_string()
        }
        Requirement::FirstCallerOrAdmin => {
            "the first caller (server with no admin), then `admin` on the server".to_string()
        }
        Requirement::Relation { relation, on } => format!(
            "`{relation}` on the {}",
            on.iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}

/// The table of `docs/authz.md`: every endpoint and what it needs.
pub fn endpoint_table() -> String {
    use crate::model::{DataAccess, Operation, Permission, Route};
    let mut out = String::from("| endpoint | action | needs |\n| --- | --- | --- |\n");
    for op in Operation::ALL {
        let endpoint = match op.route() {
            Route::Http { method, path } => format!("`{method} {path}`"),
            Route::S3(name) => format!("S3 `{name}`"),
        };
        let (action, needs) = match op.permission() {
            Permission::Catalog(action) => (format!("{action:?}"), describe(requirement(action))),
            Permission::Data(access) => (
                format!("data {}", format!("{access:?}").to_lowercase()),
                match access {
                    DataAccess::Read => "an access key that may read the object".to_string(),
                    DataAccess::Write => "an access key that may write the object".to_string(),
                    DataAccess::Delete => "an access key that may delete the object".to_string(),
                },
            ),
        };
        out.push_str(&format!("| {endpoint} | {action} | {needs} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::fga::Model;
    use crate::model::{Operation, Permission};

    #[test]
    fn every_required_relation_exists_in_the_model() {
        let model = Model::floe();
        for op in Operation::ALL {
            if let Permission::Catalog(action) = op.permission()
                && let Requirement::Relation { relation, on } = requirement(action)
            {
                for kind in on {
                    assert!(
                        model.has_relation(kind.as_str(), relation),
                        "{op}: {action:?} needs {relation} on {}, which the model lacks",
                        kind.as_str()
                    );
                }
            }
        }
    }
}
