//! Bearer JWTs of OpenID Connect providers and Kubernetes service-account issuers, verified in
//! Floe on every request with no call to the provider on the hot path.
//!
//! The order of checks is the security argument:
//! 1. the token's shape and algorithm (`token::inspect`): `none` and HMAC are refused;
//! 2. its `iss` must equal a configured issuer **before any key is looked up**, so a token that
//!    names another issuer (or carries a `jku`/`x5u`/`jwk` header) never causes a fetch;
//! 3. the signature against that provider's cached keys (an unknown `kid` refetches at most once
//!    per interval), then `iss`, `aud`, `exp` and `nbf` (with the configured leeway), then the
//!    required scopes and the subject.
//!
//! A verified token is cached until it expires, so a client that reuses its token pays for the
//! signature once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use super::claims;
use super::config::{AuthnConfig, KubernetesSubject, ProviderConfig, ProviderKind};
use super::keys::ProviderKeys;
use super::token;
use super::{Authenticator, Identity, Principal, ProviderHealth, UserKind};
use crate::error::{Error, ErrorKind, Result};

/// Verified tokens kept at most, and their bytes; when either is passed, expired ones go, then
/// all (every caller then pays one signature check again).
const CACHE_ENTRIES: usize = 16_384;
const CACHE_BYTES: usize = 16 << 20;

/// A verified token is trusted without a new signature check for at most this long (and never
/// past its expiry), so a key its provider withdraws stops working within it.
const CACHE_SECS: i64 = 300;

struct Provider {
    config: ProviderConfig,
    keys: Arc<ProviderKeys>,
}

struct Cached {
    principal: Principal,
    /// The token's own expiry.
    expires_at: i64,
    /// When this entry stops being trusted.
    until: i64,
}

#[derive(Default)]
struct TokenCache {
    entries: HashMap<Box<str>, Cached>,
    bytes: usize,
}

/// Authenticates bearer tokens of the configured providers.
pub struct TokenAuthenticator {
    providers: Vec<Provider>,
    leeway: u64,
    cache: RwLock<TokenCache>,
}

fn unauthenticated(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unauthenticated, message)
}

impl TokenAuthenticator {
    /// Builds the providers' key sets and starts fetching them in the background: a provider
    /// that is down at start does not stop Floe. Needs a Tokio runtime.
    pub fn start(config: &AuthnConfig) -> anyhow::Result<Self> {
        let refetch = Duration::from_secs(config.refetch_interval_secs);
        let timeout = Duration::from_secs(config.fetch_timeout_secs);
        let refresh = Duration::from_secs(config.refresh_interval_secs);
        let mut providers = Vec::new();
        for provider in &config.providers {
            let keys = Arc::new(ProviderKeys::new(provider, refetch, timeout)?);
            keys.spawn_refresher(refresh);
            providers.push(Provider {
                config: provider.clone(),
                keys,
            });
        }
        Ok(TokenAuthenticator {
            providers,
            leeway: config.leeway_secs,
            cache: RwLock::new(TokenCache::default()),
        })
    }

    fn cached(&self, token: &str) -> Option<Principal> {
        let cache = self.cache.read().expect("token cache lock");
        let hit = cache.entries.get(token)?;
        let now = chrono::Utc::now().timestamp();
        (now < hit.until && now < hit.expires_at.saturating_add(self.leeway as i64))
            .then(|| hit.principal.clone())
    }

    fn remember(&self, token: &str, principal: &Principal, expires_at: i64) {
        let now = chrono::Utc::now().timestamp();
        let mut cache = self.cache.write().expect("token cache lock");
        if cache.entries.len() >= CACHE_ENTRIES || cache.bytes + token.len() > CACHE_BYTES {
            let leeway = self.leeway as i64;
            cache
                .entries
                .retain(|_, c| now < c.until && now < c.expires_at.saturating_add(leeway));
            cache.bytes = cache.entries.keys().map(|k| k.len()).sum();
            if cache.entries.len() >= CACHE_ENTRIES || cache.bytes + token.len() > CACHE_BYTES {
                cache.entries.clear();
                cache.bytes = 0;
            }
        }
        let entry = Cached {
            principal: principal.clone(),
            expires_at,
            until: now.saturating_add(CACHE_SECS),
        };
        if cache.entries.insert(token.into(), entry).is_none() {
            cache.bytes += token.len();
        }
    }

    async fn verify(&self, token: &str) -> Result<(Principal, i64)> {
        let unverified = token::inspect(token).map_err(unauthenticated)?;
        let candidates: Vec<&Provider> = self
            .providers
            .iter()
            .filter(|p| p.config.issuer == unverified.issuer)
            .collect();
        if candidates.is_empty() {
            return Err(unauthenticated(
                "the token's issuer is not one this server accepts",
            ));
        }
        let mut failure = None;
        for provider in candidates {
            match self.verify_with(provider, token, &unverified).await {
                Ok(done) => return Ok(done),
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.expect("at least one candidate"))
    }

    async fn verify_with(
        &self,
        provider: &Provider,
        token: &str,
        unverified: &token::Unverified,
    ) -> Result<(Principal, i64)> {
        let keys = provider
            .keys
            .candidates(unverified.kid.as_deref(), unverified.alg)
            .await;
        if keys.is_empty() {
            return Err(unauthenticated(match provider.keys.health() {
                (_, false) => "the token's issuer cannot be reached for its keys yet".to_string(),
                _ => "the token's signing key is not one of its issuer's keys".to_string(),
            }));
        }
        let mut validation = Validation::new(unverified.alg);
        validation.set_issuer(&[&provider.config.issuer]);
        validation.set_audience(&provider.config.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut last = None;
        for key in keys.iter() {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return self.identify(provider, data.claims),
                Err(e) => last = Some(e),
            }
        }
        Err(unauthenticated(reason(last.expect("at least one key"))))
    }

    /// The principal a verified token names, and when the token expires.
    fn identify(
        &self,
        provider: &Provider,
        claims: Map<String, Value>,
    ) -> Result<(Principal, i64)> {
        let config = &provider.config;
        // A NumericDate may have a fraction (RFC 7519, section 2).
        let expires_at = claims
            .get("exp")
            .and_then(|v| v.as_f64())
            .filter(|v| v.is_finite())
            .ok_or_else(|| unauthenticated("the token's expiry is not a number"))?
            as i64;
        let scopes = claims::scopes(&claims);
        if let Some(missing) = config.required_scopes.iter().find(|s| !scopes.contains(s)) {
            return Err(unauthenticated(format!(
                "the token lacks the required scope {missing:?}"
            )));
        }
        let subject = match (config.kind, config.kubernetes_subject) {
            (ProviderKind::Kubernetes, Some(KubernetesSubject::Uid)) => {
                claims::string_at(&claims, "kubernetes.io.serviceaccount.uid")
            }
            _ if config.subject_claims.is_empty() => claims::string_at(&claims, "sub"),
            _ => config
                .subject_claims
                .iter()
                .find_map(|path| claims::string_at(&claims, path)),
        }
        .ok_or_else(|| unauthenticated("the token names no subject"))?;
        if subject.len() > 256 || subject.chars().any(char::is_control) {
            return Err(unauthenticated("the token's subject is not a usable name"));
        }
        let kind = match config.kind {
            ProviderKind::Kubernetes => UserKind::Machine,
            ProviderKind::Oidc => {
                // A client-credentials token names the client as its subject (RFC 9068).
                let client = claims::string_at(&claims, "client_id")
                    .or_else(|| claims::string_at(&claims, "azp"));
                let sub = claims::string_at(&claims, "sub");
                if client.is_some() && client == sub {
                    UserKind::Machine
                } else {
                    UserKind::Human
                }
            }
        };
        let name = match config.kind {
            ProviderKind::Kubernetes => claims::string_at(&claims, "sub"),
            ProviderKind::Oidc => claims::string_at(&claims, "name")
                .or_else(|| claims::string_at(&claims, "preferred_username")),
        };
        let identity = Identity {
            id: format!("{}~{}", config.id, subject),
            provider: config.id.clone(),
            subject,
            name,
            email: claims::string_at(&claims, "email"),
            kind,
            roles: config
                .roles_claim
                .as_deref()
                .map(|path| claims::roles(&claims, path))
                .unwrap_or_default(),
        };
        Ok((Principal::User(Arc::new(identity)), expires_at))
    }
}

/// Why a token failed, in words (never the token).
fn reason(e: jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "the token has expired".into(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        K::InvalidAudience => "the token is not meant for this server (aud)".into(),
        K::InvalidIssuer => "the token's issuer is not one this server accepts".into(),
        K::InvalidSignature => "the token's signature does not verify".into(),
        K::MissingRequiredClaim(claim) => format!("the token lacks the {claim:?} claim"),
        K::InvalidAlgorithm => "the token's algorithm does not fit its key".into(),
        _ => "the token is not valid".into(),
    }
}

#[async_trait]
impl Authenticator for TokenAuthenticator {
    async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal> {
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let value = values
            .next()
            .ok_or_else(|| unauthenticated("a bearer token is required"))?;
        if values.next().is_some() {
            return Err(unauthenticated("more than one Authorization header"));
        }
        let token = token::bearer(value).map_err(unauthenticated)?;
        if let Some(principal) = self.cached(token) {
            return Ok(principal);
        }
        let (principal, expires_at) = self.verify(token).await?;
        self.remember(token, &principal, expires_at);
        Ok(principal)
    }

    fn required(&self) -> bool {
        true
    }

    fn providers(&self) -> Vec<ProviderHealth> {
        self.providers
            .iter()
            .map(|p| {
                let (unreachable, has_keys) = p.keys.health();
                ProviderHealth {
                    id: p.config.id.clone(),
                    unreachable,
                    has_keys,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(leeway: u64) -> TokenAuthenticator {
        TokenAuthenticator {
            providers: Vec::new(),
            leeway,
            cache: RwLock::new(TokenCache::default()),
        }
    }

    fn someone() -> Principal {
        Principal::User(Arc::new(Identity {
            id: "idp~someone".into(),
            provider: "idp".into(),
            subject: "someone".into(),
            name: None,
            email: None,
            kind: UserKind::Human,
            roles: Vec::new(),
        }))
    }

    #[test]
    fn the_cache_never_serves_an_expired_or_stale_token() {
        let now = chrono::Utc::now().timestamp();
        let auth = authenticator(0);
        auth.remember("fresh", &someone(), now + 3600);
        auth.remember("expired", &someone(), now - 1);
        assert_eq!(auth.cached("fresh"), Some(someone()));
        assert_eq!(auth.cached("expired"), None);
        assert_eq!(auth.cached("never-seen"), None);
        // Trusted for CACHE_SECS at most, whatever the token's own expiry.
        auth.cache
            .write()
            .unwrap()
            .entries
            .get_mut("fresh")
            .unwrap()
            .until = now - 1;
        assert_eq!(auth.cached("fresh"), None);
        // An expiry at the end of time does not overflow.
        auth.remember("forever", &someone(), i64::MAX);
        assert_eq!(auth.cached("forever"), Some(someone()));
        // The leeway keeps a just-expired token.
        let lenient = authenticator(60);
        lenient.remember("just-expired", &someone(), now - 10);
        assert_eq!(lenient.cached("just-expired"), Some(someone()));
    }

    #[test]
    fn the_cache_is_bounded_by_entries_and_bytes() {
        let now = chrono::Utc::now().timestamp();
        let auth = authenticator(0);
        let big = "x".repeat(token::MAX_TOKEN_BYTES);
        for i in 0..(CACHE_BYTES / big.len() + 10) {
            auth.remember(&format!("{i}{big}"), &someone(), now + 3600);
            let cache = auth.cache.read().unwrap();
            assert!(cache.bytes <= CACHE_BYTES, "{} bytes", cache.bytes);
            assert_eq!(
                cache.bytes,
                cache.entries.keys().map(|k| k.len()).sum::<usize>()
            );
        }
        for i in 0..(CACHE_ENTRIES + 10) {
            auth.remember(&format!("t{i}"), &someone(), now + 3600);
        }
        assert!(auth.cache.read().unwrap().entries.len() <= CACHE_ENTRIES);
    }
}
