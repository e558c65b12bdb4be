//! JWT issuing and verification, and the extractor that guards gold endpoints.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aurum_gold::bearer::bearer_token;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;
use crate::state::AppState;
use crate::users::Role;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user name.
    pub sub: String,
    /// The user's role.
    pub role: Role,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Errors building keys or issuing tokens.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key could not be parsed.
    #[error("cannot use {what}: {source}")]
    Key {
        /// Which key.
        what: String,
        /// Why.
        source: jsonwebtoken::errors::Error,
    },
    /// Signing failed.
    #[error("cannot sign token: {0}")]
    Sign(jsonwebtoken::errors::Error),
    /// A login was attempted while no signing key is configured.
    #[error("no signing key configured: tokens can be verified but not issued")]
    NoSigningKey,
}

/// Key material and validation rules for access tokens.
pub struct JwtKeys {
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    /// Token lifetime in seconds.
    pub ttl_secs: u64,
    leeway_secs: u64,
    /// Tokens that passed full verification, by their exact text: a hit skips the
    /// signature check and JSON decoding (the expiry is still checked on each use).
    verified: RwLock<HashMap<Box<str>, Arc<Claims>>>,
}

/// Verified tokens remembered at most (the cache is emptied when full).
const VERIFIED_CACHE_MAX: usize = 10_000;

/// Where the key material comes from.
pub enum KeyMaterial {
    /// A shared HMAC secret (HS256), at least 32 bytes.
    Hs256(Vec<u8>),
    /// PEM key pair for RS256 (private key optional: verify-only).
    Rs256 {
        /// PKCS#1/PKCS#8 private key PEM.
        private_pem: Option<Vec<u8>>,
        /// SPKI/PKCS#1 public key PEM.
        public_pem: Vec<u8>,
    },
    /// PEM key pair for ES256 (P-256).
    Es256 {
        /// PKCS#8 private key PEM.
        private_pem: Option<Vec<u8>>,
        /// SPKI public key PEM.
        public_pem: Vec<u8>,
    },
}

impl JwtKeys {
    /// Builds keys and a strict validation: only the configured algorithm, required
    /// `exp`/`iat`/`iss`/`aud`/`sub`, the given issuer and audience, small leeway.
    pub fn new(
        material: KeyMaterial,
        issuer: &str,
        audience: &str,
        ttl_secs: u64,
        leeway_secs: u64,
    ) -> Result<Self, KeyError> {
        let key_err = |what: &str| {
            let what = what.to_string();
            move |source| KeyError::Key { what, source }
        };
        let (algorithm, encoding, decoding) = match material {
            KeyMaterial::Hs256(secret) => (
                Algorithm::HS256,
                Some(EncodingKey::from_secret(&secret)),
                DecodingKey::from_secret(&secret),
            ),
            KeyMaterial::Rs256 {
                private_pem,
                public_pem,
            } => (
                Algorithm::RS256,
                private_pem
                    .map(|p| EncodingKey::from_rsa_pem(&p))
                    .transpose()
                    .map_err(key_err("RS256 private key"))?,
                DecodingKey::from_rsa_pem(&public_pem).map_err(key_err("RS256 public key"))?,
            ),
            KeyMaterial::Es256 {
                private_pem,
                public_pem,
            } => (
                Algorithm::ES256,
                private_pem
                    .map(|p| EncodingKey::from_ec_pem(&p))
                    .transpose()
                    .map_err(key_err("ES256 private key"))?,
                DecodingKey::from_ec_pem(&public_pem).map_err(key_err("ES256 public key"))?,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.leeway = leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Ok(Self {
            algorithm,
            encoding,
            decoding,
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            ttl_secs,
            leeway_secs,
            verified: RwLock::new(HashMap::new()),
        })
    }

    /// Whether this instance can issue tokens (has a private key or secret).
    pub fn can_issue(&self) -> bool {
        self.encoding.is_some()
    }

    /// Issues a token for `sub` with `role`; returns it and its lifetime in seconds.
    pub fn issue(&self, sub: &str, role: Role) -> Result<(String, u64), KeyError> {
        let key = self.encoding.as_ref().ok_or(KeyError::NoSigningKey)?;
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: sub.to_string(),
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl_secs as i64,
        };
        let token = encode(&Header::new(self.algorithm), &claims, key).map_err(KeyError::Sign)?;
        Ok((token, self.ttl_secs))
    }

    /// Verifies a token (remembering verified ones) and returns its claims, or why
    /// it was refused.
    pub fn verify_cached(&self, token: &str) -> Result<Arc<Claims>, String> {
        let now = chrono::Utc::now().timestamp();
        let hit = self
            .verified
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        if let Some(claims) = hit {
            if claims.exp + (self.leeway_secs as i64) > now {
                return Ok(claims);
            }
            self.verified
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(token);
            return Err("the token has expired".to_string());
        }
        let claims = Arc::new(self.verify(token)?);
        let mut cache = self.verified.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= VERIFIED_CACHE_MAX {
            cache.clear();
        }
        cache.insert(token.into(), claims.clone());
        Ok(claims)
    }

    /// Verifies a token and returns its claims, or why it was refused.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => "the token has expired".to_string(),
                K::InvalidAlgorithm => "the token's algorithm is not accepted".to_string(),
                K::InvalidSignature => "the token's signature is invalid".to_string(),
                K::InvalidIssuer => "the token's issuer is not accepted".to_string(),
                K::InvalidAudience => "the token's audience is not accepted".to_string(),
                K::ImmatureSignature => "the token is not valid yet".to_string(),
                K::MissingRequiredClaim(c) => format!("the token lacks the `{c}` claim"),
                _ => "the token is malformed".to_string(),
            }
        })?;
        let now = chrono::Utc::now().timestamp();
        if data.claims.iat > now + self.leeway_secs as i64 {
            return Err("the token was issued in the future".to_string());
        }
        Ok(data.claims)
    }
}

/// A 401 with a `WWW-Authenticate: Bearer` challenge (RFC 6750).
pub fn unauthorized(error: Option<&str>, detail: &str) -> Problem {
    let challenge = match error {
        Some(code) => format!(
            "Bearer realm=\"aurum\", error=\"{code}\", error_description=\"{}\"",
            detail.replace(['"', '\\'], "'")
        ),
        None => "Bearer realm=\"aurum\"".to_string(),
    };
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        .with_header(header::WWW_AUTHENTICATE, &challenge)
}

/// A request authenticated with a valid bearer token (any role).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Claims>);

/// A request authenticated with a valid bearer token of an admin.
#[derive(Debug, Clone)]
pub struct AdminOnly(pub Arc<Claims>);

fn authenticate(parts: &Parts, keys: &JwtKeys) -> Result<Arc<Claims>, Problem> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(None, "a bearer token is required"));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized(Some("invalid_request"), "malformed Authorization header"))?;
    let token =
        bearer_token(value).map_err(|e| unauthorized(Some("invalid_request"), &e.to_string()))?;
    keys.verify_cached(token)
        .map_err(|reason| unauthorized(Some("invalid_token"), &reason))
}

impl FromRequestParts<Arc<AppState>> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, &state.keys).map(Authenticated)
    }
}

impl FromRequestParts<Arc<AppState>> for AdminOnly {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let claims = authenticate(parts, &state.keys)?;
        if claims.role != Role::Admin {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this resource needs the admin role",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"aurum\", error=\"insufficient_scope\"",
            ));
        }
        Ok(AdminOnly(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(KeyMaterial::Hs256(vec![7u8; 32]), "iss", "aud", 60, 0).unwrap()
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let (t, ttl) = k.issue("alice", Role::Admin).unwrap();
        assert_eq!(ttl, 60);
        let c = k.verify(&t).unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.role, Role::Admin);
        // Cached verification gives the same claims, and refuses a tampered token.
        assert_eq!(*k.verify_cached(&t).unwrap(), c);
        assert_eq!(*k.verify_cached(&t).unwrap(), c);
        let mut bad = t.clone();
        bad.pop();
        assert!(k.verify_cached(&bad).is_err());
    }

    #[test]
    fn cached_tokens_still_expire() {
        let k = JwtKeys::new(KeyMaterial::Hs256(vec![7u8; 32]), "iss", "aud", 1, 0).unwrap();
        let (t, _) = k.issue("alice", Role::Viewer).unwrap();
        assert!(k.verify_cached(&t).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(k.verify_cached(&t).is_err());
    }

    #[test]
    fn rejects_other_audience() {
        let k = keys();
        let other = JwtKeys::new(KeyMaterial::Hs256(vec![7u8; 32]), "iss", "x", 60, 0).unwrap();
        let (t, _) = other.issue("alice", Role::Viewer).unwrap();
        assert!(k.verify(&t).is_err());
    }
}
