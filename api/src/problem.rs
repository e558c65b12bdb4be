//! RFC 9457 `application/problem+json` error responses.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error as the API reports it: a problem details object plus extra headers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`https://aurum.dev/problems/<slug>`).
    #[serde(rename = "type", serialize_with = "type_uri")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// Short, human-readable summary of the problem type.
    #[schema(value_type = String)]
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    /// The query parameter at fault, for 400s caused by a parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Extra response headers (WWW-Authenticate, Retry-After, ...).
    #[serde(skip)]
    #[schema(ignore)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

fn type_uri<S: serde::Serializer>(slug: &&'static str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("https://aurum.dev/problems/{slug}"))
}

impl Problem {
    /// A problem with the given status, a type URI derived from `slug`, and a detail.
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind: slug,
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            parameter: None,
            headers: Vec::new(),
        }
    }

    /// 400 for a bad query parameter.
    pub fn bad_param(name: &str, detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::BAD_REQUEST, "invalid-parameter", detail);
        p.parameter = Some(name.to_string());
        p
    }

    /// 400 for a bad request body or form.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 404 for an unknown route.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "no such resource")
    }

    /// 405 for a known route with the wrong method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "this method is not allowed on this resource",
        )
    }

    /// 503 when something we depend on is unavailable.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
            .with_header(header::RETRY_AFTER, &retry_after_secs.to_string())
    }

    /// 500 for a bug or an unexpected failure; the detail must not leak internals.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// Adds a response header (silently skipped if the value is not a valid header value).
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (self.status_code(), body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (k, v) in self.headers {
            h.append(k, v);
        }
        resp
    }
}
