//! Users: recorded on first successful authentication, provisioned ahead of it, listed, deleted;
//! and who the caller is (`whoami`), server admin included.

use std::time::Instant;

use super::caches::{SEEN_USER_TTL, SEEN_USERS};
use super::{RequestContext, Services};
use crate::authn::{Identity, Principal};
use crate::authz::{Action, Resource};
use crate::error::{Entity, Error, Result};
use crate::model::{Page, PageRequest, User, UserKind, now};

/// The caller, as `GET /management/v1/whoami` answers.
#[derive(Debug, Clone)]
pub struct Whoami {
    /// `None` on an open server (no providers): the caller is anonymous.
    pub user: Option<User>,
    pub provider: Option<String>,
    pub roles: Vec<String>,
    /// The Floe roles those IdP roles map to (`authz.role_mappings`), of those that exist.
    pub mapped_roles: Vec<crate::model::Role>,
    pub server_admin: bool,
}

/// A user to provision before their first sign-in (so that grants can name them).
#[derive(Debug, Clone)]
pub struct ProvisionUser {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub kind: UserKind,
}

fn check_text(what: &str, value: &Option<String>) -> Result<()> {
    match value {
        Some(v) if v.len() > 512 || v.chars().any(char::is_control) => Err(Error::bad_request(
            format!("{what} must be at most 512 characters without control characters"),
        )),
        _ => Ok(()),
    }
}

impl Services {
    /// Records a user the authenticator vouched for, the first time this process sees them (and
    /// again when their token's name, email or kind changed, or after a while). Cheap on every
    /// later request: one map lookup.
    pub async fn record_user(&self, identity: &Identity) -> Result<()> {
        {
            let users = self.caches.seen_users.lock().expect("cache lock");
            if let Some((at, (name, email, kind))) = users.get(&identity.id)
                && at.elapsed() < SEEN_USER_TTL
                && *name == identity.name
                && *email == identity.email
                && *kind == identity.kind
            {
                return Ok(());
            }
        }
        let seen = (identity.name.clone(), identity.email.clone(), identity.kind);
        let at = now();
        let user = User {
            id: identity.id.clone(),
            name: identity.name.clone(),
            email: identity.email.clone(),
            kind: identity.kind,
            created_at: at,
            updated_at: at,
            last_seen_at: Some(at),
        };
        // Seeing a user is not announced (it happens on every first request of a process).
        if self.store.users.upsert_user(&user, &[], &[]).await? {
            tracing::info!(user = %user.id, kind = user.kind.as_str(), "new user recorded");
        }
        let mut users = self.caches.seen_users.lock().expect("cache lock");
        if users.len() >= SEEN_USERS {
            users.clear();
        }
        users.insert(identity.id.clone(), (Instant::now(), seen));
        Ok(())
    }

    /// Whether the principal is a server admin: named in `authn.admins`, or the user who
    /// bootstrapped the server.
    pub async fn is_server_admin(&self, principal: &Principal) -> Result<bool> {
        let Some(identity) = principal.identity() else {
            return Ok(matches!(principal, Principal::System));
        };
        if self.admins.contains(&identity.id) {
            return Ok(true);
        }
        Ok(self
            .store
            .server
            .server_info()
            .await?
            .and_then(|info| info.admin)
            .is_some_and(|admin| admin == identity.id))
    }

    pub async fn whoami(&self, ctx: &RequestContext) -> Result<Whoami> {
        self.authorize(ctx, Action::UserReadSelf, Resource::Server)
            .await?;
        let Some(identity) = ctx.principal.identity() else {
            return Ok(Whoami {
                user: None,
                provider: None,
                roles: Vec::new(),
                mapped_roles: Vec::new(),
                server_admin: false,
            });
        };
        // Recorded by the request's own authentication; read back for its dates.
        let user = self.store.users.get_user(&identity.id).await?;
        let names = crate::authz::roles::mapped_roles(
            &self.role_mappings,
            &identity.provider,
            &identity.roles,
        );
        let mapped_roles = if names.is_empty() {
            Vec::new()
        } else {
            let all = self
                .store
                .authz
                .list_roles(None, &PageRequest::all())
                .await?;
            names
                .iter()
                .filter_map(|n| all.items.iter().find(|r| &r.name == n).cloned())
                .collect()
        };
        Ok(Whoami {
            user,
            provider: Some(identity.provider.clone()),
            roles: identity.roles.clone(),
            mapped_roles,
            server_admin: self.is_server_admin(&ctx.principal).await?,
        })
    }

    pub async fn list_users(
        &self,
        ctx: &RequestContext,
        name: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<User>> {
        self.authorize(ctx, Action::UserList, Resource::Server)
            .await?;
        if name.is_some_and(|n| n.len() > 256) {
            return Err(Error::bad_request("name must be at most 256 characters"));
        }
        self.store.users.list_users(name, page).await
    }

    pub async fn get_user(&self, ctx: &RequestContext, id: &str) -> Result<User> {
        self.authorize(ctx, Action::UserRead, Resource::Server)
            .await?;
        self.store
            .users
            .get_user(id)
            .await?
            .ok_or_else(|| Error::not_found(Entity::User, id))
    }

    /// Creates the user, or updates its name, email and kind. Returns it and whether it was new.
    pub async fn provision_user(
        &self,
        ctx: &RequestContext,
        user: ProvisionUser,
    ) -> Result<(User, bool)> {
        self.authorize(ctx, Action::UserProvision, Resource::Server)
            .await?;
        let Some((provider, subject)) = user.id.split_once('~') else {
            return Err(Error::bad_request(
                "a user id is `<provider>~<subject>` (the provider's id in authn.providers)",
            ));
        };
        if !self.providers.iter().any(|p| p == provider) {
            return Err(Error::bad_request(format!(
                "no identity provider {provider:?} is configured"
            )));
        }
        if subject.is_empty() || subject.len() > 256 || subject.chars().any(char::is_control) {
            return Err(Error::bad_request(
                "the subject must be 1 to 256 characters without control characters",
            ));
        }
        check_text("name", &user.name)?;
        check_text("email", &user.email)?;
        let at = now();
        let record = User {
            id: user.id,
            name: user.name,
            email: user.email,
            kind: user.kind,
            created_at: at,
            updated_at: at,
            last_seen_at: None,
        };
        let event = |kind: &str| {
            self.change_event(
                ctx,
                kind,
                format!("user/{}", record.id),
                serde_json::json!({ "kind": record.kind.as_str() }),
            )
        };
        let created = self
            .store
            .users
            .upsert_user(&record, &event("user.created"), &event("user.updated"))
            .await?;
        self.caches
            .seen_users
            .lock()
            .expect("cache lock")
            .remove(&record.id);
        let stored = self
            .store
            .users
            .get_user(&record.id)
            .await?
            .unwrap_or(record);
        Ok((stored, created))
    }

    /// Deletes the user's record. They can still sign in through their provider, which records
    /// them again: to keep someone out, remove them at the provider.
    pub async fn delete_user(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        self.authorize(ctx, Action::UserDelete, Resource::Server)
            .await?;
        self.authz.remove_subject("user", id).await?;
        let events = self.change_event(
            ctx,
            "user.deleted",
            format!("user/{id}"),
            serde_json::json!({}),
        );
        self.store.users.delete_user(id, &events).await?;
        self.forget_access();
        self.caches
            .seen_users
            .lock()
            .expect("cache lock")
            .remove(id);
        Ok(())
    }
}
