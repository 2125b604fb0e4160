//! The unverified first look at a bearer token: its shape, its algorithm and its issuer. Nothing
//! read here is trusted; it only decides which provider's keys the signature is checked against,
//! and refuses tokens no provider could accept before any key is looked up or fetched.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;

/// The longest token accepted (a JWT with many groups is a few KB).
pub(super) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Signature algorithms Floe accepts: asymmetric only. `none` and the HMAC family are refused
/// (an HMAC "verified" with a provider's public key is the classic algorithm-confusion attack).
pub(super) const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What the unverified token says about itself.
#[derive(Debug)]
pub(super) struct Unverified {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub issuer: String,
}

/// The bearer token of an `Authorization` header value, or why there is none.
pub(super) fn bearer(value: &http::HeaderValue) -> Result<&str, &'static str> {
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not ASCII")?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or("the Authorization header must be `Bearer <token>`")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the Authorization header must use the Bearer scheme");
    }
    let token = token.trim();
    if token.is_empty() {
        return Err("the bearer token is empty");
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err("the bearer token is too long");
    }
    Ok(token)
}

/// Reads the token's header and issuer without trusting either.
pub(super) fn inspect(token: &str) -> Result<Unverified, String> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the bearer token is not a signed JWT (three dot-separated parts)".into());
    };
    if signature.is_empty() {
        return Err("the token is unsigned".into());
    }
    let header: serde_json::Map<String, serde_json::Value> =
        decode_part(header).ok_or("the token's header is not base64url-encoded JSON")?;
    let alg = header
        .get("alg")
        .and_then(|v| v.as_str())
        .ok_or("the token's header names no algorithm")?;
    let alg = match alg.parse::<Algorithm>() {
        Ok(alg) if ACCEPTED.contains(&alg) => alg,
        _ => {
            return Err(format!(
                "tokens signed with {alg:?} are not accepted (asymmetric algorithms only)"
            ));
        }
    };
    if header.contains_key("crit") {
        return Err("the token's header has critical extensions Floe does not understand".into());
    }
    let kid = match header.get("kid") {
        None => None,
        Some(serde_json::Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("the token's key id is not a string".into()),
    };
    let payload: serde_json::Map<String, serde_json::Value> =
        decode_part(payload).ok_or("the token's payload is not base64url-encoded JSON")?;
    let issuer = payload
        .get("iss")
        .and_then(|v| v.as_str())
        .ok_or("the token names no issuer")?
        .to_string();
    Ok(Unverified { alg, kid, issuer })
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", encode(header), encode(payload))
    }

    #[test]
    fn reads_algorithm_key_id_and_issuer() {
        let t = token(
            r#"{"alg":"ES256","kid":"k1"}"#,
            r#"{"iss":"https://idp.example","sub":"a"}"#,
        );
        let u = inspect(&t).unwrap();
        assert_eq!(u.alg, Algorithm::ES256);
        assert_eq!(u.kid.as_deref(), Some("k1"));
        assert_eq!(u.issuer, "https://idp.example");
    }

    #[test]
    fn refuses_none_hmac_and_unknown_algorithms() {
        for alg in ["none", "None", "HS256", "HS384", "HS512", "RSA-OAEP", ""] {
            let t = token(&format!(r#"{{"alg":"{alg}"}}"#), r#"{"iss":"https://i"}"#);
            let e = inspect(&t).unwrap_err();
            assert!(e.contains("not accepted"), "{alg}: {e}");
        }
    }

    #[test]
    fn refuses_malformed_tokens() {
        let good_header = encode(r#"{"alg":"RS256"}"#);
        let good_payload = encode(r#"{"iss":"https://i"}"#);
        for bad in [
            "abc".to_string(),
            format!("{good_header}.{good_payload}"),
            format!("{good_header}.{good_payload}."),
            format!("{good_header}.{good_payload}.sig.extra"),
            format!("{good_header}.%%%.sig"),
            format!(
                "{}.{good_payload}.sig",
                encode(r#"{"alg":"RS256","crit":["b64"]}"#)
            ),
            format!("{good_header}.{}.sig", encode(r#"{"sub":"no issuer"}"#)),
            format!("{good_header}.{}.sig", encode(r#"["not","an","object"]"#)),
        ] {
            assert!(inspect(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bearer_header_is_parsed_strictly() {
        let v = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer(&v("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(&v("bearer abc")).unwrap(), "abc");
        assert!(bearer(&v("Basic abc")).is_err());
        assert!(bearer(&v("Bearer ")).is_err());
        assert!(bearer(&v("Bearer")).is_err());
        assert!(bearer(&v(&format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1)))).is_err());
    }
}
