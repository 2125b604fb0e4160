//! Server-level use cases: status and bootstrap.

use std::path::PathBuf;

use super::{CreateWarehouse, RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Project, ProjectId, ServerInfo, StorageProfile, now};

/// The name of the project that bootstrap creates.
pub const DEFAULT_PROJECT_NAME: &str = "default";

#[derive(Debug, Clone)]
pub struct ServerStatus {
    pub version: &'static str,
    pub backend: &'static str,
    pub info: Option<ServerInfo>,
}

impl Services {
    pub async fn server_status(&self, ctx: &RequestContext) -> Result<ServerStatus> {
        // authorize
        self.authorize(ctx, Action::ServerReadInfo, Resource::Server)
            .await?;
        // act
        Ok(ServerStatus {
            version: env!("CARGO_PKG_VERSION"),
            backend: self.store.server.backend_name(),
            info: self.store.server.server_info().await?,
        })
    }

    /// Bootstraps the server: records it, creates the default project, and makes an
    /// authenticated caller the server's admin. A second call → `Conflict`, except that on a server
    /// bootstrapped with no admin (while open, or automatically at start) the first authenticated
    /// caller becomes its admin.
    pub async fn bootstrap(&self, ctx: &RequestContext) -> Result<ServerInfo> {
        // authorize
        self.authorize(ctx, Action::ServerBootstrap, Resource::Server)
            .await?;
        // act
        let admin = ctx.principal.identity().map(|i| i.id.clone());
        if let Some(mut info) = self.store.server.server_info().await? {
            if let Some(user) = &admin
                && info.admin.is_none()
            {
                let events = self.change_event(
                    ctx,
                    "server.admin-claimed",
                    "server".into(),
                    serde_json::json!({ "admin": user }),
                );
                if self.store.server.claim_admin(user, &events).await? {
                    self.forget_access();
                    info.admin = Some(user.clone());
                    return Ok(info);
                }
            }
            return Err(Error::conflict("the server is already bootstrapped"));
        }
        let at = now();
        let project = Project {
            id: ProjectId::new(),
            name: DEFAULT_PROJECT_NAME.to_string(),
            created_at: at,
            updated_at: at,
        };
        let info = ServerInfo {
            server_id: uuid::Uuid::now_v7(),
            bootstrapped_at: at,
            default_project_id: project.id,
            admin,
        };
        let events = self.change_event(
            ctx,
            "server.bootstrapped",
            "server".into(),
            serde_json::json!({ "server-id": info.server_id, "default-project-id": project.id }),
        );
        self.store
            .server
            .bootstrap(&info, &project, &events)
            .await?;
        self.forget_access();
        Ok(info)
    }

    /// The bootstrap record, or `NotBootstrapped`.
    pub(crate) async fn bootstrapped(&self) -> Result<ServerInfo> {
        self.store.server.server_info().await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotBootstrapped,
                "the server is not bootstrapped yet: POST /management/v1/bootstrap first",
            )
        })
    }

    /// The embedded quickstart: on a server never bootstrapped, bootstrap and create a local
    /// warehouse `warehouse` under `root`. Returns whether it bootstrapped. Safe when several
    /// processes start at once: only one bootstrap wins, the others find it done.
    pub async fn auto_bootstrap(&self, warehouse: &str, root: PathBuf) -> Result<bool> {
        let ctx = RequestContext::system();
        if self.store.server.server_info().await?.is_some() {
            return Ok(false);
        }
        let info = match self.bootstrap(&ctx).await {
            Ok(info) => info,
            Err(e) if e.kind == ErrorKind::Conflict => return Ok(false),
            Err(e) => return Err(e),
        };
        self.create_warehouse(
            &ctx,
            CreateWarehouse {
                name: warehouse.to_string(),
                project_id: Some(info.default_project_id),
                // The quickstart's warehouse is served by the built-in S3 gateway when it runs,
                // so engines need nothing but the catalog's URI.
                storage_profile: StorageProfile::Local {
                    root,
                    s3_gateway: self.keys.is_some(),
                },
                storage_credential: None,
            },
        )
        .await?;
        Ok(true)
    }
}
