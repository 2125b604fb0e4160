//! Authentication: who is calling. The `Authenticator` trait turns request headers into a
//! [`Principal`]. Two implementations: [`NoAuthentication`] (no providers configured: everyone is
//! anonymous, the embedded quickstart) and [`TokenAuthenticator`] (bearer JWTs of OpenID Connect
//! providers and Kubernetes service-account issuers, verified in Floe against each provider's
//! keys; see `oidc`).
//!
//! Depends on the `http` types of the request head, `model` and `error` only; never on axum or
//! any Floe layer above it.

mod claims;
mod config;
mod keys;
mod oidc;
mod token;

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
pub use crate::model::UserKind;

pub use config::{AuthnConfig, KubernetesSubject, ProviderConfig, ProviderKind};
pub use oidc::TokenAuthenticator;

/// A caller a provider vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `<provider>~<subject>`.
    pub id: String,
    pub provider: String,
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub kind: UserKind,
    /// What the provider's `roles-claim` holds (kept for authorization).
    pub roles: Vec<String>,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No providers are configured (the open quickstart).
    Anonymous,
    /// Floe acting on its own behalf (the automatic bootstrap).
    System,
    User(Arc<Identity>),
}

impl Principal {
    /// A short form for logs and events.
    pub fn display_id(&self) -> String {
        self.id().to_string()
    }

    /// The id logs, events and commits name.
    pub fn id(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::System => "floe-system",
            Principal::User(identity) => &identity.id,
        }
    }

    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Principal::User(identity) => Some(identity),
            _ => None,
        }
    }
}

/// What readiness reports of one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderHealth {
    pub id: String,
    /// `None` when its keys were last fetched fine; else why the last fetch failed.
    pub unreachable: Option<String>,
    /// Whether keys are held (a provider down since start has none, so its tokens fail).
    pub has_keys: bool,
}

#[async_trait]
pub trait Authenticator: Send + Sync {
    /// `Unauthenticated` for a missing or invalid credential; its message says why, never
    /// quoting the credential.
    async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal>;
    /// Whether a credential is needed at all (false: everyone is anonymous).
    fn required(&self) -> bool;
    /// The state of each provider, for readiness.
    fn providers(&self) -> Vec<ProviderHealth>;
}

/// Everyone is anonymous.
pub struct NoAuthentication;

#[async_trait]
impl Authenticator for NoAuthentication {
    async fn authenticate(&self, _headers: &http::HeaderMap) -> Result<Principal> {
        Ok(Principal::Anonymous)
    }

    fn required(&self) -> bool {
        false
    }

    fn providers(&self) -> Vec<ProviderHealth> {
        Vec::new()
    }
}
