//! HTTP handlers and the router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aurum_gold::ident::quote_ident;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AdminOnly, Authenticated, unauthorized};
use crate::gold::params::{PageRequest, QueryParams};
use crate::gold::snapshot::fnv1a;
use crate::gold::store::Slot;
use crate::gold::tables::Datamart;
use crate::login::{LoginError, retry_after_secs};
use crate::metrics::PoolStats;
use crate::problem::Problem;
use crate::state::AppState;

type AppResult = Result<Response, Problem>;

// ----------------------------------------------------------------------------- login

/// Credentials as JSON.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// User name.
    #[schema(min_length = 1, max_length = 256)]
    pub username: String,
    /// Password.
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

/// Credentials as an OAuth2 password grant form (what Swagger UI's Authorize sends).
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginForm {
    /// Must be `password` when present.
    #[schema(pattern = "^password$")]
    pub grant_type: Option<String>,
    /// User name.
    #[schema(min_length = 1, max_length = 256)]
    pub username: String,
    /// Password.
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
    /// Ignored.
    pub scope: Option<String>,
    /// Ignored.
    pub client_id: Option<String>,
    /// Ignored.
    pub client_secret: Option<String>,
}

/// An issued access token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

fn parse_credentials(headers: &HeaderMap, body: &[u8]) -> Result<(String, String), Problem> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (username, password) = match ctype.as_str() {
        "application/json" => {
            let r: LoginRequest = serde_json::from_slice(body).map_err(|e| {
                Problem::bad_request(format!(
                    "the body must be JSON {{\"username\": ..., \"password\": ...}}: {e}"
                ))
            })?;
            (r.username, r.password)
        }
        "application/x-www-form-urlencoded" => {
            let f: LoginForm = serde_urlencoded::from_bytes(body).map_err(|e| {
                Problem::bad_request(format!(
                    "the form must have username and password fields: {e}"
                ))
            })?;
            if let Some(g) = f.grant_type.as_deref()
                && g != "password"
            {
                return Err(Problem::bad_request(format!(
                    "unsupported grant_type `{g}` (only `password`)"
                )));
            }
            (f.username, f.password)
        }
        _ => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send application/json or application/x-www-form-urlencoded",
            ));
        }
    };
    if username.is_empty() || username.len() > 256 {
        return Err(Problem::bad_request("username must be 1 to 256 bytes"));
    }
    if password.is_empty() || password.len() > 1024 {
        return Err(Problem::bad_request("password must be 1 to 1024 bytes"));
    }
    Ok((username, password))
}

fn too_many(wait: Duration) -> Problem {
    let secs = retry_after_secs(wait);
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-login-failures",
        format!("too many failed logins; try again in {secs} s"),
    )
    .with_header(header::RETRY_AFTER, &secs.to_string())
}

/// Exchange credentials for an access token.
#[utoipa::path(
    post, path = "/login", tag = "auth",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Token issued", body = TokenResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong user name or password", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported content type", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Overloaded", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult {
    let body = body.map_err(|e| {
        let status = e.status();
        Problem::new(status, "bad-body", e.body_text())
    })?;
    let (username, password) = parse_credentials(&headers, &body)?;
    let client = state.trusted_proxies.client_ip(
        peer.ip(),
        headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes()),
    );
    let issued = crate::login::login(&state, &username, password, client)
        .await
        .map_err(|e| match e {
            LoginError::RateLimited(wait) => too_many(wait),
            LoginError::WrongCredentials => unauthorized(None, "wrong user name or password"),
            LoginError::Unavailable => Problem::unavailable("shutting down", 1),
            LoginError::CannotIssue => {
                Problem::unavailable("this instance cannot issue tokens", 60)
            }
        })?;
    let (token, expires_in) = (issued.token, issued.expires_in);
    let mut resp = axum::Json(TokenResponse {
        access_token: token,
        token_type: "bearer".into(),
        expires_in,
    })
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

// ----------------------------------------------------------------------------- gold

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

fn not_modified_since(headers: &HeaderMap, last_modified: &str) -> bool {
    if headers.contains_key(header::IF_NONE_MATCH) {
        return false;
    }
    let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
    else {
        return false;
    };
    chrono::DateTime::parse_from_rfc2822(last_modified).is_ok_and(|lm| lm <= ims)
}

fn link_header(path: &str, q: &QueryParams, req: &PageRequest, total: u64) -> String {
    let base = q.without(&["limit", "offset"]);
    let limit = req.limit.to_string();
    let url = |offset: u64| {
        let off = offset.to_string();
        let mut pairs = base.clone();
        pairs.push(("limit", &limit));
        pairs.push(("offset", &off));
        format!(
            "</gold/{path}?{}>",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    let mut links = vec![format!("{}; rel=\"first\"", url(0))];
    let l = u64::from(req.limit);
    if l > 0 {
        if req.offset > 0 {
            links.push(format!(
                "{}; rel=\"prev\"",
                url(req.offset.saturating_sub(l))
            ));
        }
        if req.offset.saturating_add(l) < total {
            links.push(format!("{}; rel=\"next\"", url(req.offset + l)));
        }
        let last = if total == 0 { 0 } else { (total - 1) / l * l };
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    links.join(", ")
}

fn set_header(resp: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

async fn serve_mart<D: Datamart>(
    slot: &Slot<D>,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> AppResult {
    let q = QueryParams::parse(raw)?;
    let req = q.page(D::ORDER_COLUMNS)?;
    let filter = D::parse_filter(&q)?;
    let snap = slot.get().ok_or_else(|| {
        Problem::unavailable(
            format!("the {} datamart has not been published yet", D::PATH),
            5,
        )
    })?;
    let canonical = format!(
        "{}|{}|{}|{}|{}",
        D::filter_key(&filter),
        req.limit,
        req.offset,
        req.order_by,
        req.descending
    );
    let etag = format!("\"{}-{:016x}\"", snap.tag, fnv1a(0, canonical.as_bytes()));
    let mut resp =
        if etag_matches(headers, &etag) || not_modified_since(headers, &snap.last_modified) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let page = snap.page(&filter, &req);
            let body = snap.render(&page, &req);
            let mut r = Response::new(Body::from(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            set_header(
                &mut r,
                header::LINK,
                &link_header(D::PATH, &q, &req, page.total),
            );
            r
        };
    set_header(&mut resp, header::ETAG, &etag);
    set_header(&mut resp, header::LAST_MODIFIED, &snap.last_modified);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if let Some(run) = &snap.run {
        set_header(
            &mut resp,
            header::HeaderName::from_static("aurum-run-id"),
            &run.run_id,
        );
    }
    Ok(resp)
}

/// A gold datamart endpoint: the same query parameters, headers, responses and
/// handler for each table, only the path, the filters and the page type differ.
macro_rules! gold_endpoint {
    ($(#[doc = $doc:literal])* $name:ident, $path:tt, $slot:ident, $params:ident, $page:ident) => {
        $(#[doc = $doc])*
        #[utoipa::path(
            get, path = $path, tag = "gold",
            params(crate::openapi::PageParams, crate::openapi::$params, crate::openapi::IfNoneMatch),
            security(("bearer" = []), ("oauth2" = [])),
            responses(
                (status = 200, description = "A page of rows", body = crate::openapi::$page, headers(
                    ("ETag" = String, description = "Version of this response"),
                    ("Last-Modified" = String, description = "When the run that published the table finished"),
                    ("Link" = String, description = "first/prev/next/last pages"))),
                (status = 304, description = "Not modified (If-None-Match)"),
                (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
                (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
                (status = 503, description = "Datamart not published yet", body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub async fn $name(
            State(state): State<Arc<AppState>>,
            _auth: Authenticated,
            headers: HeaderMap,
            RawQuery(raw): RawQuery,
        ) -> AppResult {
            serve_mart(&state.gold.$slot, &headers, raw.as_deref()).await
        }
    };
}

gold_endpoint!(
    /// Sales per country and year.
    sales_country_year, "/gold/sales-country-year", sales_country_year,
    SalesCountryYearParams, SalesCountryYearPage
);
gold_endpoint!(
    /// Top products per scope (`ALL` or a country).
    top_products, "/gold/top-products", top_products, TopProductsParams, TopProductsPage
);
gold_endpoint!(
    /// Sales per month.
    monthly_sales, "/gold/monthly-sales", monthly_sales, MonthlySalesParams, MonthlySalesPage
);
gold_endpoint!(
    /// Customer lifetime value.
    customer_lifetime, "/gold/customer-lifetime", customer_lifetime,
    CustomerLifetimeParams, CustomerLifetimePage
);

// ----------------------------------------------------------------------------- runs

pub use aurum_gold::tables::GoldRun;

/// A page of runs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GoldRunsPage {
    /// The runs, newest first.
    pub items: Vec<GoldRun>,
    /// Runs matching the filters.
    pub total: i64,
    /// Page size.
    pub limit: u32,
    /// Rows skipped.
    pub offset: u64,
}

fn db_unavailable(e: impl std::fmt::Display) -> Problem {
    tracing::warn!(error = %e, "database error");
    Problem::unavailable("the database is unavailable", 5)
}

/// History of gold loads (admin only), newest first.
#[utoipa::path(
    get, path = "/gold/runs", tag = "gold",
    params(crate::openapi::RunsParams),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "A page of runs", body = GoldRunsPage),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn runs(
    State(state): State<Arc<AppState>>,
    _admin: AdminOnly,
    RawQuery(raw): RawQuery,
) -> AppResult {
    let q = QueryParams::parse(raw.as_deref())?;
    let page = q.page(&["finished_at"])?;
    let datamart = q.text("datamart")?;
    let status = match q.get("status") {
        None => None,
        Some(s @ ("succeeded" | "failed")) => Some(s.to_string()),
        Some(s) => {
            return Err(Problem::bad_param(
                "status",
                format!("`status` must be succeeded or failed, got `{s}`"),
            ));
        }
    };
    let client = state.pool.get().await.map_err(db_unavailable)?;
    let table = format!("{}.gold_runs", quote_ident(&state.schema));
    let filter = "($1::text IS NULL OR datamart = $1) AND ($2::text IS NULL OR status = $2)";
    let order = if page.descending { "ASC" } else { "DESC" };
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE {filter}"),
            &[&datamart, &status],
        )
        .await
        .map_err(db_unavailable)?
        .try_get(0)
        .map_err(db_unavailable)?;
    let rows = client
        .query(
            &format!(
                "SELECT datamart, run_id, started_at, finished_at, rows_written, status, \
                 silver_snapshot_id, message FROM {table} WHERE {filter} \
                 ORDER BY finished_at {order}, run_id {order} LIMIT $3 OFFSET $4"
            ),
            &[
                &datamart,
                &status,
                &i64::from(page.limit),
                &(page.offset.min(i64::MAX as u64) as i64),
            ],
        )
        .await
        .map_err(db_unavailable)?;
    let items = rows
        .iter()
        .map(|r| -> Result<GoldRun, tokio_postgres::Error> {
            Ok(GoldRun {
                datamart: r.try_get(0)?,
                run_id: r.try_get(1)?,
                started_at: r.try_get(2)?,
                finished_at: r.try_get(3)?,
                rows_written: r.try_get(4)?,
                status: r.try_get(5)?,
                silver_snapshot_id: r.try_get(6)?,
                message: r.try_get(7)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_unavailable)?;
    let mut resp = axum::Json(GoldRunsPage {
        items,
        total,
        limit: page.limit,
        offset: page.offset,
    })
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

// ----------------------------------------------------------------------------- ops

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Alive", body = crate::openapi::Health)))]
pub async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Readiness: the API can serve. It is ready when a datamart snapshot is loaded
/// (it serves that from memory whether PostgreSQL answers or not), or when
/// PostgreSQL answers (so "not published yet" is a true answer). The body says
/// whether PostgreSQL answers `SELECT 1` within 2 s, how old the served data's
/// last confirmation is, and the state of each datamart.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = crate::openapi::Readiness),
        (status = 503, description = "Not ready", body = crate::openapi::Readiness),
    ))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let check = tokio::time::timeout(Duration::from_secs(2), async {
        let client = state.pool.get().await.map_err(|e| e.to_string())?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    })
    .await
    .unwrap_or_else(|_| Err("timed out after 2 s".to_string()));
    state.gold.record_database(check.clone());
    let summaries = state.gold.summaries();
    let loaded = summaries.iter().any(|m| m.rows.is_some());
    let marts: serde_json::Map<String, serde_json::Value> = summaries
        .into_iter()
        .map(|m| {
            (
                m.path.to_string(),
                serde_json::json!({
                    "loaded": m.rows.is_some(),
                    "rows": m.rows,
                    "run_id": m.run_id,
                    "finished_at": m.finished_at,
                    "silver_snapshot_id": m.silver_snapshot_id,
                    "checked_at": m.status.last_check,
                    "error": m.status.last_error,
                }),
            )
        })
        .collect();
    let ready = loaded || check.is_ok();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut resp = (
        status,
        axum::Json(serde_json::json!({
            "status": if ready { "ready" } else { "not ready" },
            "database": if check.is_ok() { "reachable" } else { "unreachable" },
            "database_error": check.err(),
            "snapshot_age_seconds": state.gold.snapshot_age_seconds(),
            "datamarts": marts,
        })),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let s = state.pool.status();
    let text = state.metrics.render(
        PoolStats {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        },
        &state.gold.database(),
        &state.gold.summaries(),
    );
    // The body is OpenMetrics text; a scraper that does not ask for it (curl, an
    // old Prometheus) gets it labelled as the classic text format, which reads it.
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

// ----------------------------------------------------------------------------- middleware

async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = next.run(req).await;
    state.metrics.observe(
        &method,
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        resp.status().as_u16(),
        start.elapsed(),
    );
    resp
}

async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => Problem::unavailable("the request timed out", 1).into_response(),
    }
}

/// Options that shape the router.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// CORS origins (empty: off).
    pub cors_allow_origins: Vec<String>,
}

fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([http::Method::GET, http::Method::POST, http::Method::HEAD])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_NONE_MATCH,
                header::IF_MODIFIED_SINCE,
            ])
            .expose_headers([
                header::ETAG,
                header::LAST_MODIFIED,
                header::LINK,
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Builds the whole application.
pub fn router(state: Arc<AppState>, opts: &RouterOptions) -> Router {
    let swagger = crate::openapi::swagger_ui();
    let mut app = Router::new()
        .route("/login", post(login))
        .route("/gold/sales-country-year", get(sales_country_year))
        .route("/gold/top-products", get(top_products))
        .route("/gold/monthly-sales", get(monthly_sales))
        .route("/gold/customer-lifetime", get(customer_lifetime))
        .route("/gold/runs", get(runs))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(swagger)
        .fallback(|| async { Problem::not_found() })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .layer(DefaultBodyLimit::max(opts.max_body_bytes));
    if let Some(cors) = cors_layer(&opts.cors_allow_origins) {
        app = app.layer(cors);
    }
    app.layer(middleware::from_fn_with_state(
        opts.request_timeout,
        timeout,
    ))
    .layer(middleware::from_fn_with_state(state, track))
}
