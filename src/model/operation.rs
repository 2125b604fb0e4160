//! Every operation Floe's two HTTP surfaces serve, in one exhaustive table, each with the
//! permission it needs (the way garage's `Endpoint::authorization_type` declares it): the catalog
//! and management routes by method and path template, the S3 gateway's by operation name.
//!
//! A route that is not in this table is not served: `api` checks at start that every route it
//! mounts has its operation here (and every operation here its route), and the gateway refuses
//! any S3 operation the table does not name. Adding a variant does not compile until its route
//! and permission are decided, since both are exhaustive matches.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// What a caller wants to do, as the `Authorizer` is asked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ServerBootstrap,
    ServerReadInfo,
    /// Who am I (any authenticated caller).
    UserReadSelf,
    UserList,
    UserRead,
    UserProvision,
    UserDelete,
    /// List and read roles and their assignees.
    RoleRead,
    /// Create, update and delete roles; assign to them.
    RoleManage,
    /// Read the grants on an object.
    GrantsRead,
    /// Grant and revoke on an object.
    GrantsManage,
    ProjectCreate,
    ProjectList,
    ProjectRead,
    ProjectRename,
    ProjectDelete,
    WarehouseCreate,
    WarehouseList,
    WarehouseRead,
    WarehouseRename,
    WarehouseUpdateStorage,
    WarehouseDelete,
    WarehouseManageAccessKeys,
    /// List branches and tags, read the commit log and diffs.
    WarehouseReadHistory,
    /// Create, delete and reset branches and tags.
    WarehouseManageRefs,
    /// Merge one ref into another.
    WarehouseMerge,
    /// Merge into a protected branch.
    WarehouseMergeProtected,
    /// Name the branches that change only by merge.
    WarehouseProtectBranches,
    /// List the warehouse's tasks and read them.
    WarehouseReadTasks,
    /// Cancel, run now and retry tasks.
    WarehouseManageTasks,
    /// Choose what a drop does (hard or soft).
    WarehouseSetDeleteProfile,
    /// List soft-deleted tables and views.
    WarehouseListDeleted,
    /// Restore soft-deleted tables and views (asked on the namespace they return to).
    TabularUndrop,
    /// Whether an object (warehouse, namespace, table, view) is protected.
    ProtectionRead,
    /// Protect an object, or lift its protection.
    ProtectionSet,
    /// What the caller may do on objects (their own permissions).
    PermissionsRead,
    CatalogReadConfig,
    NamespaceList,
    NamespaceCreate,
    NamespaceRead,
    NamespaceUpdateProperties,
    NamespaceDrop,
    TableList,
    TableCreate,
    TableRead,
    TableCommit,
    TableDrop,
    TablePurge,
    TableRename,
    TableRegister,
    TableReportMetrics,
    TableReadCredentials,
    ViewList,
    ViewCreate,
    ViewRead,
    ViewCommit,
    ViewDrop,
    ViewRename,
    ViewRegister,
}

/// What an S3 request does to a warehouse's objects, which its access key's grant must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataAccess {
    /// List and read objects.
    Read,
    /// Write objects (aborting a multipart upload included: it removes only parts of an object
    /// that never existed).
    Write,
    /// Remove objects.
    Delete,
}

/// The permission an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Asked of the `Authorizer` by the use case, on the resource the request names. A use case
    /// may ask more on the way (a drop that purges asks `TablePurge` too; a transaction asks
    /// `TableCommit` of every table it changes).
    Catalog(Action),
    /// Held against the access key's grant by the S3 gateway.
    Data(DataAccess),
}

/// Which HTTP surface serves an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// The management API, under `/management/v1`.
    Management,
    /// The Iceberg REST catalog, under `/catalog`.
    Catalog,
    /// The S3 gateway, on its own listener.
    S3,
}

/// How an operation is addressed: an HTTP method and path template (the catalog and the
/// management API), or an S3 operation name (the gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Http {
        method: &'static str,
        path: &'static str,
    },
    S3(&'static str),
}

macro_rules! operations {
    ($($op:ident),* $(,)?) => {
        /// One operation of Floe's HTTP surfaces.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($op),*
        }

        impl Operation {
            /// Every operation, in the order of the table.
            pub const ALL: &'static [Operation] = &[$(Operation::$op),*];

            /// The operation's name, as logs and traces show it.
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$op => stringify!($op)),*
                }
            }
        }
    };
}

operations!(
    // management: server and projects
    ServerInfo,
    Bootstrap,
    // management: users
    Whoami,
    ListUsers,
    ProvisionUser,
    GetUser,
    DeleteUser,
    // management: roles and grants
    ListRoles,
    CreateRole,
    GetRole,
    UpdateRole,
    DeleteRole,
    ListRoleAssignees,
    UpdateRoleAssignees,
    GetGrants,
    UpdateGrants,
    ListProjects,
    CreateProject,
    GetProject,
    RenameProject,
    DeleteProject,
    // management: warehouses
    ListWarehouses,
    CreateWarehouse,
    GetWarehouse,
    RenameWarehouse,
    UpdateWarehouseStorage,
    UpdateWarehouseCredential,
    DeleteWarehouse,
    CreateAccessKey,
    ListAccessKeys,
    DeleteAccessKey,
    // management: the branching index
    ListBranches,
    CreateBranch,
    GetBranch,
    DeleteBranch,
    ResetBranch,
    ListTags,
    CreateTag,
    GetTag,
    DeleteTag,
    ListCommits,
    GetCommit,
    Diff,
    Merge,
    GetProtectedBranches,
    SetProtectedBranches,
    // management: lifecycle (delete profiles, soft-deleted tables, protection, tasks)
    GetDeleteProfile,
    SetDeleteProfile,
    GetScanPlanning,
    SetScanPlanning,
    ListDeletedTabulars,
    SearchTabulars,
    UndropTabulars,
    GetWarehouseProtection,
    SetWarehouseProtection,
    GetNamespaceProtection,
    SetNamespaceProtection,
    GetTableProtection,
    SetTableProtection,
    GetViewProtection,
    SetViewProtection,
    GetMaintenance,
    SetMaintenance,
    RunMaintenance,
    ListTasks,
    GetTask,
    CancelTask,
    RunTaskNow,
    RetryTask,
    // management: the caller's permissions
    GetPermissions,
    CheckPermissions,
    // catalog: config and namespaces
    GetConfig,
    ListNamespaces,
    CreateNamespace,
    LoadNamespace,
    NamespaceExists,
    DropNamespace,
    UpdateNamespaceProperties,
    // catalog: tables
    ListTables,
    CreateTable,
    LoadTable,
    TableExists,
    UpdateTable,
    DropTable,
    RegisterTable,
    RenameTable,
    ReportMetrics,
    LoadCredentials,
    PlanTableScan,
    FetchPlanningResult,
    CancelPlanning,
    FetchScanTasks,
    SignRequest,
    SignS3Request,
    CommitTransaction,
    // catalog: views
    ListViews,
    CreateView,
    LoadView,
    ViewExists,
    ReplaceView,
    DropView,
    RenameView,
    RegisterView,
    // catalog: the events feed (Iceberg REST proposal)
    QueryEvents,
    // S3 gateway
    S3ListBuckets,
    S3HeadBucket,
    S3GetBucketLocation,
    S3ListObjects,
    S3ListObjectsV2,
    S3HeadObject,
    S3GetObject,
    S3ListParts,
    S3ListMultipartUploads,
    S3PutObject,
    S3CopyObject,
    S3CreateMultipartUpload,
    S3UploadPart,
    S3UploadPartCopy,
    S3CompleteMultipartUpload,
    S3AbortMultipartUpload,
    S3DeleteObject,
    S3DeleteObjects,
);

impl Operation {
    /// How the operation is addressed. HTTP paths are templates as the router writes them,
    /// from the server's root.
    pub fn route(self) -> Route {
        use Operation::*;
        let http = |method, path| Route::Http { method, path };
        match self {
            ServerInfo => http("GET", "/management/v1/info"),
            Bootstrap => http("POST", "/management/v1/bootstrap"),
            Whoami => http("GET", "/management/v1/whoami"),
            ListUsers => http("GET", "/management/v1/users"),
            ProvisionUser => http("POST", "/management/v1/users"),
            GetUser => http("GET", "/management/v1/users/{id}"),
            DeleteUser => http("DELETE", "/management/v1/users/{id}"),
            ListRoles => http("GET", "/management/v1/roles"),
            CreateRole => http("POST", "/management/v1/roles"),
            GetRole => http("GET", "/management/v1/roles/{id}"),
            UpdateRole => http("PUT", "/management/v1/roles/{id}"),
            DeleteRole => http("DELETE", "/management/v1/roles/{id}"),
            ListRoleAssignees => http("GET", "/management/v1/roles/{id}/assignees"),
            UpdateRoleAssignees => http("POST", "/management/v1/roles/{id}/assignees"),
            GetGrants => http("GET", "/management/v1/grants/{object_type}/{object_id}"),
            UpdateGrants => http("POST", "/management/v1/grants/{object_type}/{object_id}"),
            ListProjects => http("GET", "/management/v1/projects"),
            CreateProject => http("POST", "/management/v1/projects"),
            GetProject => http("GET", "/management/v1/projects/{id}"),
            RenameProject => http("POST", "/management/v1/projects/{id}/rename"),
            DeleteProject => http("DELETE", "/management/v1/projects/{id}"),
            ListWarehouses => http("GET", "/management/v1/warehouses"),
            CreateWarehouse => http("POST", "/management/v1/warehouses"),
            GetWarehouse => http("GET", "/management/v1/warehouses/{id}"),
            RenameWarehouse => http("POST", "/management/v1/warehouses/{id}/rename"),
            UpdateWarehouseStorage => http("PUT", "/management/v1/warehouses/{id}/storage"),
            UpdateWarehouseCredential => {
                http("PUT", "/management/v1/warehouses/{id}/storage-credential")
            }
            DeleteWarehouse => http("DELETE", "/management/v1/warehouses/{id}"),
            CreateAccessKey => http("POST", "/management/v1/warehouses/{id}/access-keys"),
            ListAccessKeys => http("GET", "/management/v1/warehouses/{id}/access-keys"),
            DeleteAccessKey => http(
                "DELETE",
                "/management/v1/warehouses/{id}/access-keys/{key_id}",
            ),
            GetDeleteProfile => http("GET", "/management/v1/warehouses/{id}/delete-profile"),
            SetDeleteProfile => http("PUT", "/management/v1/warehouses/{id}/delete-profile"),
            GetScanPlanning => http("GET", "/management/v1/warehouses/{id}/scan-planning"),
            SetScanPlanning => http("PUT", "/management/v1/warehouses/{id}/scan-planning"),
            ListDeletedTabulars => http("GET", "/management/v1/warehouses/{id}/deleted-tabulars"),
            SearchTabulars => http("GET", "/management/v1/warehouses/{id}/search"),
            UndropTabulars => http(
                "POST",
                "/management/v1/warehouses/{id}/deleted-tabulars/undrop",
            ),
            GetWarehouseProtection => http("GET", "/management/v1/warehouses/{id}/protection"),
            SetWarehouseProtection => http("PUT", "/management/v1/warehouses/{id}/protection"),
            GetNamespaceProtection => http(
                "GET",
                "/management/v1/warehouses/{id}/namespaces/{namespace}/protection",
            ),
            SetNamespaceProtection => http(
                "PUT",
                "/management/v1/warehouses/{id}/namespaces/{namespace}/protection",
            ),
            GetTableProtection => http(
                "GET",
                "/management/v1/warehouses/{id}/namespaces/{namespace}/tables/{table}/protection",
            ),
            SetTableProtection => http(
                "PUT",
                "/management/v1/warehouses/{id}/namespaces/{namespace}/tables/{table}/protection",
            ),
            GetViewProtection => http(
                "GET",
                "/management/v1/warehouses/{id}/namespaces/{namespace}/views/{view}/protection",
            ),
            SetViewProtection => http(
                "PUT",
                "/management/v1/warehouses/{id}/namespaces/{namespace}/views/{view}/protection",
            ),
            GetMaintenance => http("GET", "/management/v1/warehouses/{id}/maintenance"),
            SetMaintenance => http("PUT", "/management/v1/warehouses/{id}/maintenance"),
            RunMaintenance => http("POST", "/management/v1/warehouses/{id}/maintenance/run"),
            ListTasks => http("GET", "/management/v1/warehouses/{id}/tasks"),
            GetTask => http("GET", "/management/v1/warehouses/{id}/tasks/{task_id}"),
            CancelTask => http(
                "POST",
                "/management/v1/warehouses/{id}/tasks/{task_id}/cancel",
            ),
            RunTaskNow => http(
                "POST",
                "/management/v1/warehouses/{id}/tasks/{task_id}/run-now",
            ),
            RetryTask => http(
                "POST",
                "/management/v1/warehouses/{id}/tasks/{task_id}/retry",
            ),
            ListBranches => http("GET", "/management/v1/warehouses/{id}/branches"),
            CreateBranch => http("POST", "/management/v1/warehouses/{id}/branches"),
            GetBranch => http("GET", "/management/v1/warehouses/{id}/branches/{name}"),
            DeleteBranch => http("DELETE", "/management/v1/warehouses/{id}/branches/{name}"),
            ResetBranch => http(
                "POST",
                "/management/v1/warehouses/{id}/branches/{name}/reset",
            ),
            ListTags => http("GET", "/management/v1/warehouses/{id}/tags"),
            CreateTag => http("POST", "/management/v1/warehouses/{id}/tags"),
            GetTag => http("GET", "/management/v1/warehouses/{id}/tags/{name}"),
            DeleteTag => http("DELETE", "/management/v1/warehouses/{id}/tags/{name}"),
            ListCommits => http("GET", "/management/v1/warehouses/{id}/commits"),
            GetCommit => http("GET", "/management/v1/warehouses/{id}/commits/{commit}"),
            Diff => http("GET", "/management/v1/warehouses/{id}/diff"),
            Merge => http("POST", "/management/v1/warehouses/{id}/merge"),
            GetProtectedBranches => {
                http("GET", "/management/v1/warehouses/{id}/protected-branches")
            }
            SetProtectedBranches => {
                http("PUT", "/management/v1/warehouses/{id}/protected-branches")
            }
            GetPermissions => http(
                "GET",
                "/management/v1/permissions/{object_type}/{object_id}",
            ),
            CheckPermissions => http("POST", "/management/v1/permissions/check"),
            GetConfig => http("GET", "/catalog/v1/config"),
            ListNamespaces => http("GET", "/catalog/v1/{prefix}/namespaces"),
            CreateNamespace => http("POST", "/catalog/v1/{prefix}/namespaces"),
            LoadNamespace => http("GET", "/catalog/v1/{prefix}/namespaces/{namespace}"),
            NamespaceExists => http("HEAD", "/catalog/v1/{prefix}/namespaces/{namespace}"),
            DropNamespace => http("DELETE", "/catalog/v1/{prefix}/namespaces/{namespace}"),
            UpdateNamespaceProperties => http(
                "POST",
                "/catalog/v1/{prefix}/namespaces/{namespace}/properties",
            ),
            ListTables => http("GET", "/catalog/v1/{prefix}/namespaces/{namespace}/tables"),
            CreateTable => http("POST", "/catalog/v1/{prefix}/namespaces/{namespace}/tables"),
            LoadTable => http(
                "GET",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}",
            ),
            TableExists => http(
                "HEAD",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}",
            ),
            UpdateTable => http(
                "POST",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}",
            ),
            DropTable => http(
                "DELETE",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}",
            ),
            RegisterTable => http(
                "POST",
                "/catalog/v1/{prefix}/namespaces/{namespace}/register",
            ),
            RenameTable => http("POST", "/catalog/v1/{prefix}/tables/rename"),
            QueryEvents => http("POST", "/catalog/v1/{prefix}/events"),
            ReportMetrics => http(
                "POST",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
            ),
            LoadCredentials => http(
                "GET",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials",
            ),
            PlanTableScan => http(
                "POST",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}/plan",
            ),
            FetchPlanningResult => http(
                "GET",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}/plan/{plan-id}",
            ),
            CancelPlanning => http(
                "DELETE",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}/plan/{plan-id}",
            ),
            FetchScanTasks => http(
                "POST",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}/tasks",
            ),
            SignRequest => http(
                "POST",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}/sign",
            ),
            SignS3Request => http(
                "POST",
                "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}/v1/aws/s3/sign",
            ),
            CommitTransaction => http("POST", "/catalog/v1/{prefix}/transactions/commit"),
            ListViews => http("GET", "/catalog/v1/{prefix}/namespaces/{namespace}/views"),
            CreateView => http("POST", "/catalog/v1/{prefix}/namespaces/{namespace}/views"),
            LoadView => http(
                "GET",
                "/catalog/v1/{prefix}/namespaces/{namespace}/views/{view}",
            ),
            ViewExists => http(
                "HEAD",
                "/catalog/v1/{prefix}/namespaces/{namespace}/views/{view}",
            ),
            ReplaceView => http(
                "POST",
                "/catalog/v1/{prefix}/namespaces/{namespace}/views/{view}",
            ),
            DropView => http(
                "DELETE",
                "/catalog/v1/{prefix}/namespaces/{namespace}/views/{view}",
            ),
            RenameView => http("POST", "/catalog/v1/{prefix}/views/rename"),
            RegisterView => http(
                "POST",
                "/catalog/v1/{prefix}/namespaces/{namespace}/register-view",
            ),
            S3ListBuckets => Route::S3("ListBuckets"),
            S3HeadBucket => Route::S3("HeadBucket"),
            S3GetBucketLocation => Route::S3("GetBucketLocation"),
            S3ListObjects => Route::S3("ListObjects"),
            S3ListObjectsV2 => Route::S3("ListObjectsV2"),
            S3HeadObject => Route::S3("HeadObject"),
            S3GetObject => Route::S3("GetObject"),
            S3ListParts => Route::S3("ListParts"),
            S3ListMultipartUploads => Route::S3("ListMultipartUploads"),
            S3PutObject => Route::S3("PutObject"),
            S3CopyObject => Route::S3("CopyObject"),
            S3CreateMultipartUpload => Route::S3("CreateMultipartUpload"),
            S3UploadPart => Route::S3("UploadPart"),
            S3UploadPartCopy => Route::S3("UploadPartCopy"),
            S3CompleteMultipartUpload => Route::S3("CompleteMultipartUpload"),
            S3AbortMultipartUpload => Route::S3("AbortMultipartUpload"),
            S3DeleteObject => Route::S3("DeleteObject"),
            S3DeleteObjects => Route::S3("DeleteObjects"),
        }
    }

    /// The permission the operation needs.
    pub fn permission(self) -> Permission {
        use Action as A;
        use DataAccess as D;
        use Operation::*;
        let catalog = Permission::Catalog;
        let data = Permission::Data;
        match self {
            ServerInfo => catalog(A::ServerReadInfo),
            Bootstrap => catalog(A::ServerBootstrap),
            Whoami => catalog(A::UserReadSelf),
            ListUsers => catalog(A::UserList),
            ProvisionUser => catalog(A::UserProvision),
            GetUser => catalog(A::UserRead),
            DeleteUser => catalog(A::UserDelete),
            ListRoles | GetRole | ListRoleAssignees => catalog(A::RoleRead),
            CreateRole | UpdateRole | DeleteRole | UpdateRoleAssignees => catalog(A::RoleManage),
            GetGrants => catalog(A::GrantsRead),
            UpdateGrants => catalog(A::GrantsManage),
            ListProjects => catalog(A::ProjectList),
            CreateProject => catalog(A::ProjectCreate),
            GetProject => catalog(A::ProjectRead),
            RenameProject => catalog(A::ProjectRename),
            DeleteProject => catalog(A::ProjectDelete),
            ListWarehouses => catalog(A::WarehouseList),
            CreateWarehouse => catalog(A::WarehouseCreate),
            GetWarehouse => catalog(A::WarehouseRead),
            RenameWarehouse => catalog(A::WarehouseRename),
            UpdateWarehouseStorage | UpdateWarehouseCredential => {
                catalog(A::WarehouseUpdateStorage)
            }
            DeleteWarehouse => catalog(A::WarehouseDelete),
            CreateAccessKey | ListAccessKeys | DeleteAccessKey => {
                catalog(A::WarehouseManageAccessKeys)
            }
            ListBranches | GetBranch | ListTags | GetTag | ListCommits | GetCommit | Diff => {
                catalog(A::WarehouseReadHistory)
            }
            Merge => catalog(A::WarehouseMerge),
            GetDeleteProfile => catalog(A::WarehouseRead),
            SetDeleteProfile => catalog(A::WarehouseSetDeleteProfile),
            GetScanPlanning => catalog(A::WarehouseRead),
            SetScanPlanning => catalog(A::WarehouseUpdateStorage),
            ListDeletedTabulars => catalog(A::WarehouseListDeleted),
            SearchTabulars => catalog(A::NamespaceList),
            UndropTabulars => catalog(A::TabularUndrop),
            GetWarehouseProtection
            | GetNamespaceProtection
            | GetTableProtection
            | GetViewProtection => catalog(A::ProtectionRead),
            SetWarehouseProtection
            | SetNamespaceProtection
            | SetTableProtection
            | SetViewProtection => catalog(A::ProtectionSet),
            GetMaintenance => catalog(A::WarehouseRead),
            SetMaintenance | RunMaintenance => catalog(A::WarehouseManageTasks),
            ListTasks | GetTask => catalog(A::WarehouseReadTasks),
            CancelTask | RunTaskNow | RetryTask => catalog(A::WarehouseManageTasks),
            GetProtectedBranches => catalog(A::WarehouseRead),
            SetProtectedBranches => catalog(A::WarehouseProtectBranches),
            GetPermissions | CheckPermissions => catalog(A::PermissionsRead),
            CreateBranch | DeleteBranch | ResetBranch | CreateTag | DeleteTag => {
                catalog(A::WarehouseManageRefs)
            }
            GetConfig => catalog(A::CatalogReadConfig),
            ListNamespaces => catalog(A::NamespaceList),
            CreateNamespace => catalog(A::NamespaceCreate),
            LoadNamespace | NamespaceExists => catalog(A::NamespaceRead),
            DropNamespace => catalog(A::NamespaceDrop),
            UpdateNamespaceProperties => catalog(A::NamespaceUpdateProperties),
            ListTables => catalog(A::TableList),
            CreateTable => catalog(A::TableCreate),
            LoadTable | TableExists => catalog(A::TableRead),
            PlanTableScan | FetchPlanningResult | CancelPlanning | FetchScanTasks => {
                catalog(A::TableRead)
            }
            UpdateTable | CommitTransaction => catalog(A::TableCommit),
            DropTable => catalog(A::TableDrop),
            RegisterTable => catalog(A::TableRegister),
            RenameTable => catalog(A::TableRename),
            ReportMetrics => catalog(A::TableReportMetrics),
            QueryEvents => catalog(A::WarehouseReadHistory),
            LoadCredentials | SignRequest | SignS3Request => catalog(A::TableReadCredentials),
            ListViews => catalog(A::ViewList),
            CreateView => catalog(A::ViewCreate),
            LoadView | ViewExists => catalog(A::ViewRead),
            ReplaceView => catalog(A::ViewCommit),
            DropView => catalog(A::ViewDrop),
            RenameView => catalog(A::ViewRename),
            RegisterView => catalog(A::ViewRegister),
            S3ListBuckets
            | S3HeadBucket
            | S3GetBucketLocation
            | S3ListObjects
            | S3ListObjectsV2
            | S3HeadObject
            | S3GetObject
            | S3ListParts
            | S3ListMultipartUploads => data(D::Read),
            S3PutObject
            | S3CopyObject
            | S3CreateMultipartUpload
            | S3UploadPart
            | S3UploadPartCopy
            | S3CompleteMultipartUpload
            | S3AbortMultipartUpload => data(D::Write),
            S3DeleteObject | S3DeleteObjects => data(D::Delete),
        }
    }

    /// The surface that serves it.
    /// Whether the operation honours an `Idempotency-Key` (the catalog's mutations).
    pub fn idempotent(self) -> bool {
        use Operation::*;
        matches!(
            self,
            CreateNamespace
                | DropNamespace
                | UpdateNamespaceProperties
                | CreateTable
                | UpdateTable
                | DropTable
                | RegisterTable
                | RenameTable
                | CommitTransaction
                | CreateView
                | ReplaceView
                | DropView
                | RenameView
                | RegisterView
        )
    }

    pub fn surface(self) -> Surface {
        match self.route() {
            Route::S3(_) => Surface::S3,
            Route::Http { path, .. } if path.starts_with("/catalog/") => Surface::Catalog,
            Route::Http { .. } => Surface::Management,
        }
    }

    /// Whether `/v1/config` lists it among the catalog's endpoints: every catalog route but the
    /// config itself and the legacy signer path (which clients find through the table's config).
    pub fn advertised(self) -> bool {
        self.surface() == Surface::Catalog
            && !matches!(self, Operation::GetConfig | Operation::SignS3Request)
    }

    /// The operation served at this method and path template (the method in any case).
    pub fn of_http(method: &str, path: &str) -> Option<Operation> {
        static BY_ROUTE: OnceLock<HashMap<(&'static str, &'static str), Operation>> =
            OnceLock::new();
        let table = BY_ROUTE.get_or_init(|| {
            Operation::ALL
                .iter()
                .filter_map(|op| match op.route() {
                    Route::Http { method, path } => Some(((method, path), *op)),
                    Route::S3(_) => None,
                })
                .collect()
        });
        let method = ["GET", "HEAD", "POST", "PUT", "DELETE"]
            .into_iter()
            .find(|m| m.eq_ignore_ascii_case(method))?;
        table.get(&(method, path)).copied()
    }

    /// The gateway operation of this S3 operation name.
    pub fn of_s3(name: &str) -> Option<Operation> {
        Operation::ALL
            .iter()
            .copied()
            .find(|op| matches!(op.route(), Route::S3(n) if n == name))
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_one_operations() {
        for (i, a) in Operation::ALL.iter().enumerate() {
            for b in &Operation::ALL[i + 1..] {
                assert_ne!(a.route(), b.route(), "{a} and {b} share a route");
            }
            match a.route() {
                Route::Http { method, path } => {
                    assert_eq!(Operation::of_http(method, path), Some(*a));
                    assert_eq!(Operation::of_http(&method.to_lowercase(), path), Some(*a));
                }
                Route::S3(name) => assert_eq!(Operation::of_s3(name), Some(*a)),
            }
        }
        assert_eq!(Operation::of_http("GET", "/catalog/v1/nothing"), None);
        assert_eq!(Operation::of_http("PATCH", "/management/v1/info"), None);
        assert_eq!(Operation::of_s3("PutBucketPolicy"), None);
    }

    #[test]
    fn gateway_operations_need_data_access_and_the_rest_an_action() {
        for op in Operation::ALL {
            match (op.surface(), op.permission()) {
                (Surface::S3, Permission::Data(_)) => {}
                (Surface::Catalog | Surface::Management, Permission::Catalog(_)) => {}
                (surface, permission) => panic!("{op} on {surface:?} needs {permission:?}"),
            }
        }
        assert_eq!(
            Operation::S3DeleteObjects.permission(),
            Permission::Data(DataAccess::Delete)
        );
        assert_eq!(
            Operation::S3AbortMultipartUpload.permission(),
            Permission::Data(DataAccess::Write)
        );
        assert_eq!(
            Operation::S3ListMultipartUploads.permission(),
            Permission::Data(DataAccess::Read)
        );
    }
}
