//! Authentication: who is calling. The `Authenticator` trait turns request headers into a
//! [`Principal`]; the in-tree default, [`NoAuthentication`], makes everyone anonymous (development).
//! OIDC and Kubernetes service-account tokens come later behind the same trait.
//!
//! Depends on the `http` types of the request head only; never on axum or any Floe layer above it.

use async_trait::async_trait;

use crate::error::Result;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User { id: String, name: Option<String> },
}

impl Principal {
    /// A short form for logs and events.
    pub fn display_id(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".to_string(),
            Principal::User { id, .. } => id.clone(),
        }
    }
}

#[async_trait]
pub trait Authenticator: Send + Sync {
    /// `Unauthenticated` for a missing or invalid credential.
    async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal>;
    async fn health(&self) -> Result<()>;
}

/// Everyone is anonymous.
pub struct NoAuthentication;

#[async_trait]
impl Authenticator for NoAuthentication {
    async fn authenticate(&self, _headers: &http::HeaderMap) -> Result<Principal> {
        Ok(Principal::Anonymous)
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}
