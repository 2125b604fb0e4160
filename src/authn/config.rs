//! Authentication's settings (`[authn]` of Floe's configuration).

use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Authentication. With no providers every caller is anonymous (the embedded quickstart); with
/// any, every route but health, readiness and the API docs needs a valid bearer token from one of
/// them, and the S3 gateway keeps its own keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthnConfig {
    /// The identity providers whose tokens Floe accepts, tried by the token's issuer.
    pub providers: Vec<ProviderConfig>,
    /// User ids (`<provider>~<subject>`) that are always server admins (break glass).
    pub admins: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// An unknown key id refetches a provider's keys at most once per this many seconds.
    pub refetch_interval_secs: u64,
    /// Keys are refreshed in the background this often, in seconds (key rotation).
    pub refresh_interval_secs: u64,
    /// Timeout of a discovery or key request to a provider, in seconds.
    pub fetch_timeout_secs: u64,
}

impl Default for AuthnConfig {
    fn default() -> Self {
        AuthnConfig {
            providers: Vec::new(),
            admins: Vec::new(),
            leeway_secs: 30,
            refetch_interval_secs: 30,
            refresh_interval_secs: 300,
            fetch_timeout_secs: 10,
        }
    }
}

/// Where a provider's tokens come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// An OpenID Connect provider (Keycloak, Entra ID, Okta, Dex, Zitadel...).
    Oidc,
    /// A Kubernetes cluster's service-account issuer (projected tokens).
    Kubernetes,
}

/// What names a Kubernetes service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubernetesSubject {
    /// `system:serviceaccount:<namespace>:<name>` (the `sub` claim).
    Name,
    /// The service account's uid (survives nothing: a recreated account is a new user).
    Uid,
}

/// One identity provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Short id, the prefix of its users' ids (`<id>~<subject>`).
    pub id: String,
    pub kind: ProviderKind,
    /// The issuer URL, exactly as tokens name it in `iss`; keys are found by OpenID discovery
    /// (`<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// Claims (dot paths) naming the subject; the first present wins. Default: `sub`.
    #[serde(default, alias = "subject-claims")]
    pub subject_claims: Vec<String>,
    /// Scopes every token must carry (`scope` or `scp` claim).
    #[serde(default, alias = "required-scopes")]
    pub required_scopes: Vec<String>,
    /// A dot path to the token's roles or groups (e.g. `realm_access.roles`, `groups`).
    #[serde(default, alias = "roles-claim")]
    pub roles_claim: Option<String>,
    /// Kubernetes providers: whether users are named by service-account name or uid.
    #[serde(default, alias = "kubernetes-subject")]
    pub kubernetes_subject: Option<KubernetesSubject>,
    /// A PEM file of CA certificates to trust for the provider's HTTPS (a cluster's CA).
    #[serde(default, alias = "ca-cert-file")]
    pub ca_cert_file: Option<PathBuf>,
    /// Where the provider's keys are, when discovery should not be asked (a Kubernetes API server
    /// whose discovery names an address Floe cannot reach, e.g.
    /// `https://kubernetes.default.svc/openid/v1/jwks`). Unset: from discovery.
    #[serde(default, alias = "jwks-uri")]
    pub jwks_uri: Option<String>,
    /// A file holding a bearer token sent with discovery and key requests (a Kubernetes API
    /// server that does not serve discovery anonymously); read at every fetch.
    #[serde(default, alias = "fetch-token-file")]
    pub fetch_token_file: Option<PathBuf>,
    /// The provider's public client for the web console (`/ui`): signing in there uses the
    /// authorization code flow with PKCE, asking for the first of `audiences` as the resource.
    /// Unset: the console does not offer this provider.
    #[serde(default, alias = "console-client-id")]
    pub console_client_id: Option<String>,
    /// Scopes the console asks for (default `openid` and the required scopes).
    #[serde(default, alias = "console-scopes")]
    pub console_scopes: Vec<String>,
}

impl ProviderConfig {
    fn validate(&self) -> anyhow::Result<()> {
        let id = &self.id;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("authn.providers: id {id:?} must be letters, digits, '-' or '_'");
        }
        if !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://")) {
            bail!("authn.providers.{id}.issuer must be an http(s) URL");
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            bail!(
                "authn.providers.{id}.audiences must name at least one audience: without one, \
                 tokens the provider issues for any other application would be accepted"
            );
        }
        if self.kubernetes_subject.is_some() && self.kind != ProviderKind::Kubernetes {
            bail!("authn.providers.{id}.kubernetes_subject is for kind \"kubernetes\" only");
        }
        if let Some(uri) = &self.jwks_uri
            && !(uri.starts_with("https://")
                || (uri.starts_with("http://") && self.issuer.starts_with("http://")))
        {
            bail!(
                "authn.providers.{id}.jwks_uri must be an https URL (http only with an http issuer)"
            );
        }
        if self.fetch_token_file.is_some()
            && !(self.issuer.starts_with("https://")
                && self
                    .jwks_uri
                    .as_deref()
                    .is_none_or(|u| u.starts_with("https://")))
        {
            bail!(
                "authn.providers.{id}.fetch_token_file needs an https issuer and jwks_uri (it sends a credential)"
            );
        }
        if self.subject_claims.iter().any(String::is_empty) {
            bail!("authn.providers.{id}.subject_claims must not hold empty names");
        }
        Ok(())
    }
}

impl AuthnConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut ids = std::collections::HashSet::new();
        for provider in &self.providers {
            provider.validate()?;
            if !ids.insert(provider.id.as_str()) {
                bail!("authn.providers: the id {:?} is used twice", provider.id);
            }
        }
        for admin in &self.admins {
            match admin.split_once('~') {
                Some((provider, subject)) if ids.contains(provider) && !subject.is_empty() => {}
                _ => bail!(
                    "authn.admins: {admin:?} must be a user id `<provider>~<subject>` of a \
                     configured provider"
                ),
            }
        }
        if self.refetch_interval_secs == 0 || self.fetch_timeout_secs == 0 {
            bail!("authn.refetch_interval_secs and authn.fetch_timeout_secs must be positive");
        }
        if self.refresh_interval_secs < self.refetch_interval_secs {
            bail!(
                "authn.refresh_interval_secs must not be shorter than authn.refetch_interval_secs"
            );
        }
        Ok(())
    }
}
