//! The gold API as the dashboard uses it: log in, read pages of gold rows with the
//! user's token, and check readiness. Every call carries the user's own token, so
//! the API's security rules (roles, expiry) apply to the dashboard's users too.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::gold::Page;

/// The largest page the API serves.
pub const MAX_PAGE: u64 = 1000;

/// What went wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The token is missing, expired or invalid (401): the user must log in again.
    #[error("the session is no longer valid")]
    Unauthorized,
    /// The user's role may not read this (403).
    #[error("{path} is not available to this user")]
    Forbidden {
        /// The API path.
        path: String,
    },
    /// Wrong user name or password at login.
    #[error("wrong user name or password")]
    InvalidCredentials,
    /// Too many failed logins (429).
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    TooManyAttempts {
        /// Seconds until the API accepts logins again.
        retry_after_secs: u64,
    },
    /// The API rejected a parameter (400).
    #[error("{detail}")]
    BadRequest {
        /// The API's explanation.
        detail: String,
    },
    /// A datamart is not published yet or the API is not ready (503).
    #[error("{path}: not available yet ({detail})")]
    NotReady {
        /// The API path.
        path: String,
        /// The API's explanation.
        detail: String,
    },
    /// The API did not answer.
    #[error("the gold API at {url} did not answer: {source}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// Any other answer.
    #[error("{path}: the gold API answered {status}: {detail}")]
    Unexpected {
        /// The API path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The API's explanation, if any.
        detail: String,
    },
    /// A body that is not what the API documents.
    #[error("{path}: unexpected response body: {source}")]
    Decode {
        /// The API path.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// A token issued by `POST /login`.
#[derive(Debug, Clone, Deserialize)]
pub struct IssuedToken {
    /// The bearer token (a JWT).
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

/// One datamart as `/readyz` reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct DatamartReadiness {
    /// Whether a snapshot is loaded.
    pub loaded: bool,
    /// Rows in the loaded snapshot.
    pub rows: Option<u64>,
    /// The run that published it.
    pub run_id: Option<String>,
    /// When that run finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The silver snapshot that run read (absent from APIs older than this field).
    #[serde(default)]
    pub silver_snapshot_id: Option<String>,
}

/// The API's `/readyz` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Readiness {
    /// Per datamart path (`/gold/...`).
    #[serde(default)]
    pub datamarts: BTreeMap<String, DatamartReadiness>,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

/// A client of one API base URL.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the API at `base` (no trailing slash), with a per-request timeout,
    /// trusting `roots` (and nothing else) for HTTPS.
    pub fn new(
        base: String,
        timeout: Duration,
        roots: Vec<reqwest::Certificate>,
    ) -> Result<ApiClient, ApiError> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(32)
            .tls_built_in_root_certs(false);
        let http = roots
            .into_iter()
            .fold(builder, |b, cert| b.add_root_certificate(cert))
            .build()
            .map_err(|source| ApiError::Unreachable {
                url: base.clone(),
                source,
            })?;
        Ok(ApiClient { base, http })
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Exchanges a user name and password for a token. `forwarded_for` is the
    /// `X-Forwarded-For` chain ending with the browser's address, so that an API
    /// trusting the dashboard limits failed logins per browser, not per dashboard.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        forwarded_for: &str,
    ) -> Result<IssuedToken, ApiError> {
        let url = format!("{}/login", self.base);
        let response = self
            .http
            .post(&url)
            .header("x-forwarded-for", forwarded_for)
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .map_err(|source| ApiError::Unreachable { url, source })?;
        let status = response.status();
        let retry_after = retry_after(&response);
        let body = response.bytes().await.unwrap_or_default();
        match status {
            StatusCode::OK => serde_json::from_slice(&body).map_err(|source| ApiError::Decode {
                path: "/login".into(),
                source,
            }),
            StatusCode::UNAUTHORIZED
            | StatusCode::BAD_REQUEST
            | StatusCode::UNPROCESSABLE_ENTITY => Err(ApiError::InvalidCredentials),
            StatusCode::TOO_MANY_REQUESTS => Err(ApiError::TooManyAttempts {
                retry_after_secs: retry_after.unwrap_or(60),
            }),
            other => Err(unexpected("/login", other, &body)),
        }
    }

    /// One page of `path` with `query` (which should carry `limit` and `offset`).
    /// Also returns the `Aurum-Run-Id` of the published version the page came from.
    pub async fn page<T: DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(Page<T>, Option<String>), ApiError> {
        let url = format!("{}{}", self.base, path);
        let response = self
            .http
            .get(&url)
            .bearer_auth(token)
            .query(query)
            .send()
            .await
            .map_err(|source| ApiError::Unreachable { url, source })?;
        let status = response.status();
        let run_id = response
            .headers()
            .get("aurum-run-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|source| ApiError::Unreachable {
                url: format!("{}{}", self.base, path),
                source,
            })?;
        match status {
            StatusCode::OK => {
                let page = serde_json::from_slice(&body).map_err(|source| ApiError::Decode {
                    path: path.to_string(),
                    source,
                })?;
                Ok((page, run_id))
            }
            StatusCode::UNAUTHORIZED => Err(ApiError::Unauthorized),
            StatusCode::FORBIDDEN => Err(ApiError::Forbidden {
                path: path.to_string(),
            }),
            StatusCode::BAD_REQUEST => Err(ApiError::BadRequest {
                detail: problem_detail(&body),
            }),
            StatusCode::SERVICE_UNAVAILABLE => Err(ApiError::NotReady {
                path: path.to_string(),
                detail: problem_detail(&body),
            }),
            other => Err(unexpected(path, other, &body)),
        }
    }

    /// Every row of `path` with `query`, read in pages of 1000: the first page tells
    /// the total, the rest are fetched concurrently. When a new version of the
    /// datamart was published between the pages (their run ids differ), the read
    /// starts over once, so the rows come from one version.
    pub async fn all<T: DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let with_page = |offset: u64| {
                let mut q = query.to_vec();
                q.push(("limit", MAX_PAGE.to_string()));
                q.push(("offset", offset.to_string()));
                q
            };
            let (first, first_run): (Page<T>, _) = self.page(token, path, &with_page(0)).await?;
            let total = first.total;
            let mut items = first.items;
            let offsets: Vec<u64> = (1..total.div_ceil(MAX_PAGE))
                .map(|i| i * MAX_PAGE)
                .collect();
            let rest = futures::future::try_join_all(offsets.iter().map(|offset| {
                let q = with_page(*offset);
                async move { self.page::<T>(token, path, &q).await }
            }))
            .await?;
            let consistent = rest.iter().all(|(_, run)| *run == first_run);
            if !consistent && attempt < 2 {
                tracing::info!(path, "datamart republished while paging; reading again");
                continue;
            }
            items.reserve(rest.iter().map(|(p, _)| p.items.len()).sum());
            for (page, _) in rest {
                items.extend(page.items);
            }
            return Ok(items);
        }
    }

    /// Whether the API accepts `token`: asks for an empty page (`limit=0`) of a
    /// viewer-visible datamart. `Ok` when accepted, `Unauthorized` when not.
    pub async fn check_token(&self, token: &str) -> Result<(), ApiError> {
        self.page::<serde::de::IgnoredAny>(
            token,
            "/gold/monthly-sales",
            &[("limit", "0".to_string())],
        )
        .await
        .map(|_| ())
    }

    /// The API's readiness: `Ok` with the datamarts when it answers 200.
    pub async fn readiness(&self) -> Result<Readiness, ApiError> {
        let url = format!("{}/readyz", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| ApiError::Unreachable { url, source })?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if status != StatusCode::OK {
            return Err(ApiError::NotReady {
                path: "/readyz".into(),
                detail: problem_detail(&body),
            });
        }
        serde_json::from_slice(&body).map_err(|source| ApiError::Decode {
            path: "/readyz".into(),
            source,
        })
    }
}

fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn problem_detail(body: &[u8]) -> String {
    match serde_json::from_slice::<Problem>(body) {
        Ok(p) => p.detail.or(p.title).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

fn unexpected(path: &str, status: StatusCode, body: &[u8]) -> ApiError {
    ApiError::Unexpected {
        path: path.to_string(),
        status: status.as_u16(),
        detail: problem_detail(body),
    }
}
