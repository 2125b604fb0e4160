//! A provider's signing keys: found by OpenID discovery (`<issuer>/.well-known/openid-configuration`
//! names the `jwks_uri`), cached, refreshed in the background, and refetched on an unknown key id
//! at most once per `refetch_interval` so that a flood of bad tokens cannot make Floe hammer the
//! provider. A provider that is down keeps its cached keys working; its state is what readiness
//! reports.
//!
//! Only the configured issuer's own discovery document is ever fetched; its `issuer` must equal the
//! configured one (OpenID Connect Discovery 1.0, section 4.3). Discovery is read leniently: only
//! `issuer` and `jwks_uri` are needed, so a document with fields or values Floe does not know still
//! works; keys of types Floe cannot use (encryption keys, unknown curves) are skipped one by one.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};

use super::config::ProviderConfig;

/// How long a request waits for a key fetch another one started.
const FETCH_WAIT: Duration = Duration::from_secs(2);

/// The largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// One usable verification key.
pub(super) struct Key {
    kid: Option<String>,
    /// The algorithm the key is for, when the key set says.
    alg: Option<Algorithm>,
    /// For an elliptic-curve key, the one algorithm its curve signs with.
    curve_alg: Option<Algorithm>,
    pub key: DecodingKey,
}

impl Key {
    /// Whether this key may verify a signature made with `alg`.
    fn fits(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|a| a == alg)
            && self.curve_alg.is_none_or(|a| a == alg)
            && self.key.family() == alg.family()
    }
}

#[derive(Default)]
struct State {
    keys: Arc<Vec<Key>>,
    /// Why the last fetch failed (`None` after a success).
    failure: Option<String>,
    loaded: bool,
}

/// The keys of one provider and the means to fetch them.
pub(super) struct ProviderKeys {
    issuer: String,
    /// The configured key set URL, if discovery is skipped.
    jwks_uri: Option<String>,
    fetch_token_file: Option<std::path::PathBuf>,
    http: reqwest::Client,
    refetch_interval: Duration,
    state: RwLock<State>,
    /// Serializes fetches; holds when the last one started.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl ProviderKeys {
    pub fn new(
        config: &ProviderConfig,
        refetch_interval: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // The issuer's documents are fetched where configured, never where a redirect leads.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("floe/", env!("CARGO_PKG_VERSION")));
        if let Some(file) = &config.ca_cert_file {
            let pem = std::fs::read(file).map_err(|e| {
                anyhow::anyhow!(
                    "authn.providers.{}: reading {}: {e}",
                    config.id,
                    file.display()
                )
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                http = http.add_root_certificate(cert);
            }
        }
        Ok(ProviderKeys {
            issuer: config.issuer.clone(),
            jwks_uri: config.jwks_uri.clone(),
            fetch_token_file: config.fetch_token_file.clone(),
            http: http.build()?,
            refetch_interval,
            state: RwLock::new(State::default()),
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    /// The keys that may verify a token signed with `alg` under key id `kid`. An unknown key id
    /// (or no keys yet) refetches, unless a fetch started less than `refetch_interval` ago.
    pub async fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Arc<Vec<Key>> {
        let found = self.matching(kid, alg);
        if !found.is_empty() {
            return Arc::new(found);
        }
        self.fetch(false).await;
        Arc::new(self.matching(kid, alg))
    }

    fn matching(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Key> {
        let state = self.state.read().expect("key state lock");
        state
            .keys
            .iter()
            .filter(|k| k.fits(alg))
            .filter(|k| match kid {
                Some(kid) => k.kid.as_deref() == Some(kid),
                None => true,
            })
            .map(|k| Key {
                kid: k.kid.clone(),
                alg: k.alg,
                curve_alg: k.curve_alg,
                key: k.key.clone(),
            })
            .collect()
    }

    /// Fetches the keys now (`force`) or if the last fetch is older than the refetch interval.
    /// Returns whether keys are held afterwards.
    pub async fn fetch(&self, force: bool) -> bool {
        // A fetch under way is waited for briefly (a request at start finds the keys it brings);
        // past that the caller goes on with the keys held, so a slow provider cannot hold up
        // requests for the length of its timeouts.
        let Ok(mut last) = tokio::time::timeout(FETCH_WAIT, self.last_fetch.lock()).await else {
            return self.state.read().expect("key state lock").loaded;
        };
        if !force && last.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            return self.state.read().expect("key state lock").loaded;
        }
        *last = Some(Instant::now());
        let result = self.load().await;
        let mut state = self.state.write().expect("key state lock");
        match result {
            Ok(keys) => {
                state.keys = Arc::new(keys);
                state.failure = None;
                state.loaded = true;
            }
            Err(reason) => {
                tracing::warn!(issuer = %self.issuer, %reason, "identity provider's keys could not be fetched; cached keys stay in use");
                state.failure = Some(reason);
            }
        }
        state.loaded
    }

    /// `(failure, has keys)` for readiness.
    pub fn health(&self) -> (Option<String>, bool) {
        let state = self.state.read().expect("key state lock");
        (state.failure.clone(), state.loaded)
    }

    /// Keeps the keys fresh: fetches at once, then every `refresh` (every `refetch_interval`
    /// while the provider fails).
    pub fn spawn_refresher(self: &Arc<Self>, refresh: Duration) {
        let keys = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(this) = keys.upgrade() else { return };
                let ok = this.fetch(true).await && this.health().0.is_none();
                let wait = if ok { refresh } else { this.refetch_interval };
                drop(this);
                tokio::time::sleep(wait).await;
            }
        });
    }

    async fn load(&self) -> Result<Vec<Key>, String> {
        let discovered;
        let jwks_uri = match &self.jwks_uri {
            Some(configured) => configured.as_str(),
            None => {
                discovered = self.discover().await?;
                discovered.as_str()
            }
        };
        let set: serde_json::Value = self.get_json(jwks_uri).await?;
        let entries = set
            .get("keys")
            .and_then(|v| v.as_array())
            .ok_or("the key set has no `keys` list")?;
        let keys: Vec<Key> = entries.iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err("the key set holds no usable signing key".into());
        }
        Ok(keys)
    }

    /// The `jwks_uri` the issuer's discovery document names.
    async fn discover(&self) -> Result<String, String> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let discovery: serde_json::Value = self.get_json(&discovery_url).await?;
        let issuer = discovery
            .get("issuer")
            .and_then(|v| v.as_str())
            .ok_or("the discovery document names no issuer")?;
        if issuer != self.issuer {
            return Err(format!(
                "the discovery document's issuer {issuer:?} is not the configured {:?}",
                self.issuer
            ));
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or("the discovery document names no jwks_uri")?;
        let https = self.issuer.starts_with("https://");
        if !(jwks_uri.starts_with("https://") || (!https && jwks_uri.starts_with("http://"))) {
            return Err(if https {
                "the discovery document's jwks_uri is not an https URL".into()
            } else {
                "the discovery document's jwks_uri is not an http(s) URL".into()
            });
        }
        Ok(jwks_uri.to_string())
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        let mut request = self.http.get(url).header("accept", "application/json");
        // Floe's own credential goes to the issuer's origin, or the configured key set's, only
        // (over https: checked at start), never where a discovery document points.
        if let Some(file) = &self.fetch_token_file
            && (same_origin(url, &self.issuer)
                || self
                    .jwks_uri
                    .as_deref()
                    .is_some_and(|u| same_origin(url, u)))
        {
            let token = std::fs::read_to_string(file)
                .map_err(|e| format!("reading the fetch token file: {e}"))?;
            request = request.bearer_auth(token.trim());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", without_url(&e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: status {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {}", without_url(&e)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("GET {url}: the document is larger than 1 MiB"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }
}

/// Whether `url` has the scheme, host and port of `base`.
fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

/// reqwest's error text, which repeats the URL the caller already names.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A key set entry as a verification key, or `None` for one Floe cannot or must not use.
fn usable_key(entry: &serde_json::Value) -> Option<Key> {
    if entry
        .get("use")
        .and_then(|v| v.as_str())
        .is_some_and(|u| u != "sig")
    {
        return None;
    }
    let text = |name: &str| entry.get(name).and_then(|v| v.as_str());
    // Curves decide the algorithm; a point of the wrong size is refused here rather than handed
    // to a verifier that assumes the size.
    let (curve_alg, point_bytes) = match (text("kty"), text("crv")) {
        (Some("RSA"), _) => (None, None),
        (Some("EC"), Some("P-256")) => (Some(Algorithm::ES256), Some(32)),
        (Some("EC"), Some("P-384")) => (Some(Algorithm::ES384), Some(48)),
        (Some("OKP"), Some("Ed25519")) => (Some(Algorithm::EdDSA), Some(32)),
        // Symmetric keys (HMAC is refused anyway), other curves, other key types.
        _ => return None,
    };
    if let Some(size) = point_bytes {
        let coordinate_ok = |name: &str| {
            text(name)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .is_some_and(|b| b.len() == size)
        };
        let ec = text("kty") == Some("EC");
        if !coordinate_ok("x") || (ec && !coordinate_ok("y")) {
            return None;
        }
    }
    let jwk: Jwk = serde_json::from_value(entry.clone()).ok()?;
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    if key.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return None;
    }
    let alg = match text("alg") {
        None => None,
        Some(alg) => Some(alg.parse::<Algorithm>().ok()?),
    };
    if alg.is_some() && curve_alg.is_some() && alg != curve_alg {
        return None;
    }
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        curve_alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_usable_signing_keys_are_kept() {
        let set: serde_json::Value = serde_json::json!({ "keys": [
            // RSA signing key (kept)
            { "kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig",
              "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
              "e": "AQAB" },
            // an encryption key, an HMAC secret, an unknown curve, an unknown key type (skipped)
            { "kty": "RSA", "kid": "enc", "use": "enc",
              "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
              "e": "AQAB" },
            { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
            { "kty": "OKP", "kid": "x25519", "crv": "X25519", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo" },
            { "kty": "PQC", "kid": "future" },
            { "kty": "RSA", "kid": "unknown-alg", "alg": "RSA-OAEP-999", "n": "AQAB", "e": "AQAB" },
            // curves: a P-256 key labelled ES384, a short Ed25519 point, a short P-256 point
            { "kty": "EC", "kid": "ec-mislabelled", "crv": "P-256", "alg": "ES384",
              "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
            { "kty": "OKP", "kid": "ed-short", "crv": "Ed25519", "x": "AAAA" },
            { "kty": "EC", "kid": "ec-short", "crv": "P-256", "x": "AAAA", "y": "AAAA" },
            // a good P-256 key and a good Ed25519 key (kept)
            { "kty": "EC", "kid": "ec", "crv": "P-256",
              "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" },
            { "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
        ]});
        let keys: Vec<Key> = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(usable_key)
            .collect();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["rsa", "ec", "ed"]);
        // A curve signs with its one algorithm.
        assert!(keys[1].fits(Algorithm::ES256));
        assert!(!keys[1].fits(Algorithm::ES384));
        assert!(keys[2].fits(Algorithm::EdDSA));
        // The RSA key verifies RS and PS signatures only where its `alg` allows: RS256 here.
        assert!(keys[0].fits(Algorithm::RS256));
        assert!(!keys[0].fits(Algorithm::PS256));
        assert!(!keys[0].fits(Algorithm::ES256));
        assert!(!keys[0].fits(Algorithm::HS256));
    }
}
