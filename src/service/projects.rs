//! Project use cases. A project groups warehouses; bootstrap creates the default one.

use super::{RequestContext, Services};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, Result};
use crate::model::{Project, ProjectId, now, validate_name};

impl Services {
    pub async fn create_project(&self, ctx: &RequestContext, name: String) -> Result<Project> {
        // validate
        validate_name("project name", &name)?;
        self.bootstrapped().await?;
        // authorize
        self.authorize(ctx, Action::ProjectCreate, Resource::Server)
            .await?;
        // act
        let at = now();
        let project = Project {
            id: ProjectId::new(),
            name,
            created_at: at,
            updated_at: at,
        };
        let events = self.change_event(
            ctx,
            "project.created",
            format!("project/{}", project.id),
            serde_json::json!({ "name": project.name }),
        );
        self.store
            .projects
            .create_project(&project, &events)
            .await?;
        self.own(ctx, Resource::Project(project.id)).await;
        Ok(project)
    }

    pub async fn list_projects(&self, ctx: &RequestContext) -> Result<Vec<Project>> {
        self.bootstrapped().await?;
        self.authorize(ctx, Action::ProjectList, Resource::Server)
            .await?;
        let projects = self.store.projects.list_projects().await?;
        self.visible_projects(ctx, projects).await
    }

    pub async fn get_project(&self, ctx: &RequestContext, id: ProjectId) -> Result<Project> {
        self.bootstrapped().await?;
        self.authorize(ctx, Action::ProjectRead, Resource::Project(id))
            .await?;
        self.store.projects.get_project(id).await?.ok_or_else(|| {
            Error::not_found(Entity::Project, format!("project {id} does not exist"))
        })
    }

    pub async fn rename_project(
        &self,
        ctx: &RequestContext,
        id: ProjectId,
        name: String,
    ) -> Result<Project> {
        // validate
        validate_name("project name", &name)?;
        self.bootstrapped().await?;
        // authorize
        self.authorize(ctx, Action::ProjectRename, Resource::Project(id))
            .await?;
        // act
        let events = self.change_event(
            ctx,
            "project.renamed",
            format!("project/{id}"),
            serde_json::json!({ "name": name }),
        );
        self.store
            .projects
            .rename_project(id, &name, now(), &events)
            .await?;
        self.get_project(ctx, id).await
    }

    pub async fn delete_project(&self, ctx: &RequestContext, id: ProjectId) -> Result<()> {
        self.bootstrapped().await?;
        self.authorize(ctx, Action::ProjectDelete, Resource::Project(id))
            .await?;
        let events = self.change_event(
            ctx,
            "project.deleted",
            format!("project/{id}"),
            serde_json::Value::Null,
        );
        self.store.projects.delete_project(id, &events).await?;
        Ok(())
    }
}
