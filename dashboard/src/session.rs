//! The browser session: the API's token kept in an HttpOnly, SameSite=Lax cookie.
//!
//! The dashboard does not verify the token itself; the API does on every call. The
//! claims read here (user, role, expiry) only choose what to show and which cache
//! entries may serve the user, and only after the API accepted this very token (see
//! `cache::ResponseCache::is_verified`).

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use base64::Engine;
use serde::Deserialize;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "aurum_session";

/// What a user may see, from the token's `role` claim.
pub use aurum_gold::Role;

/// A logged-in user, as the cookie tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The API token.
    pub token: String,
    /// The `sub` claim.
    pub user: String,
    /// The `role` claim.
    pub role: Role,
    /// The `exp` claim (seconds since the epoch).
    pub expires_at: i64,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    role: String,
    exp: i64,
}

impl Session {
    /// Reads the claims of `token` without verifying it. `None` when it is not a
    /// JWT with `sub`, a known `role` and `exp`.
    pub fn from_token(token: &str) -> Option<Session> {
        let mut parts = token.split('.');
        let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: Claims = serde_json::from_slice(&json).ok()?;
        let role: Role = claims.role.parse().ok()?;
        Some(Session {
            token: token.to_string(),
            user: claims.sub,
            role,
            expires_at: claims.exp,
        })
    }

    /// The session carried by the request's cookie, if any.
    pub fn from_headers(headers: &HeaderMap) -> Option<Session> {
        let token = cookie_value(headers, COOKIE_NAME)?;
        Session::from_token(&token)
    }

    /// Whether the token's own expiry has passed at `now` (seconds since the epoch).
    pub fn expired_at(&self, now: i64) -> bool {
        self.expires_at <= now
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value storing `token` for `max_age_secs`. HttpOnly keeps it from
/// scripts; SameSite=Lax keeps other sites' forms from posting with it (the CSRF
/// defence of the login and logout forms); Path=/ covers every page.
pub fn set_cookie(token: &str, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={token}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn jwt(claims: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b(r#"{"alg":"HS256"}"#), b(claims))
    }

    #[test]
    fn reads_claims_of_a_jwt() {
        let t = jwt(r#"{"sub":"vera","role":"viewer","exp":100,"iat":1}"#);
        let s = Session::from_token(&t).unwrap();
        assert_eq!(
            (s.user.as_str(), s.role, s.expires_at),
            ("vera", Role::Viewer, 100)
        );
        assert!(s.expired_at(100) && !s.expired_at(99));
        assert!(Session::from_token(&jwt(r#"{"sub":"x","role":"root","exp":1}"#)).is_none());
        assert!(Session::from_token("not-a-jwt").is_none());
        assert!(Session::from_token("a.b.c.d").is_none());
    }

    #[test]
    fn finds_the_cookie_among_others() {
        let t = jwt(r#"{"sub":"adam","role":"admin","exp":100}"#);
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(
            COOKIE,
            HeaderValue::from_str(&format!("x=y; {COOKIE_NAME}={t}")).unwrap(),
        );
        assert_eq!(Session::from_headers(&h).unwrap().role, Role::Admin);
        assert!(Session::from_headers(&HeaderMap::new()).is_none());
    }

    #[test]
    fn cookies_are_http_only_and_same_site() {
        let c = set_cookie("tok", 900, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"));
        assert!(!c.contains("Secure"));
        assert!(set_cookie("tok", 900, true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
