//! The pages: login and logout, the overview with its four charts, the runs history,
//! the CSV downloads, and the friendly error pages.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::api_client::ApiError;
use crate::charts::{
    Grouped, HBarChart, HeatMap, HistogramBin, HistogramChart, LineChart, format_money,
    format_month, format_percent, hbar_chart, heat_map, histogram_chart, line_chart,
};
use crate::data::{self, GoldSource};
use crate::filters::{FilterError, FilterQuery, Filters};
use crate::gold::{CustomerLifetimeValue, SalesCountryYear, TopProduct};
use crate::session::{self, Role, Session};
use crate::{config::Config, csv};

/// What every handler shares.
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// The gold data.
    pub gold: GoldSource,
}

/// Shared state of the handlers.
pub type SharedState = Arc<AppState>;

/// Why a page cannot be shown; each becomes a redirect or a friendly HTML page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No session cookie: go to the login page.
    #[error("not logged in")]
    NotLoggedIn,
    /// The API refused the token (expired or invalid): log in again.
    #[error("session expired")]
    SessionExpired,
    /// The user's role may not see this.
    #[error("forbidden")]
    Forbidden,
    /// A bad filter or parameter.
    #[error("{0}")]
    BadRequest(String),
    /// No such page.
    #[error("not found")]
    NotFound,
    /// The data is not published yet.
    #[error("{0}")]
    NotReady(String),
    /// The API failed or could not be reached.
    #[error("{0}")]
    Upstream(String),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        match e {
            ApiError::Unauthorized => PageError::SessionExpired,
            ApiError::Forbidden { .. } => PageError::Forbidden,
            ApiError::BadRequest { detail } => PageError::BadRequest(detail),
            ApiError::NotReady { .. } => PageError::NotReady(e.to_string()),
            other => {
                tracing::warn!(error = %other, "gold API call failed");
                PageError::Upstream(other.to_string())
            }
        }
    }
}

impl From<FilterError> for PageError {
    fn from(e: FilterError) -> PageError {
        PageError::BadRequest(e.to_string())
    }
}

/// A friendly error page.
#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Heading.
    pub title: String,
    /// What happened and what to do.
    pub detail: String,
    /// Whether to offer the login link.
    pub show_login: bool,
}

/// A page with a status code.
pub fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    let page = ErrorPage {
        title: title.to_string(),
        detail: detail.to_string(),
        show_login: matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
    };
    (status, page).into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_string())]).into_response()
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::NotLoggedIn => redirect("/login"),
            PageError::SessionExpired => {
                let mut r = redirect("/login?expired=1");
                // The cookie cannot be used any more: drop it. `Secure` does not
                // matter for a deletion, which every browser honours either way.
                if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(false)) {
                    r.headers_mut().insert(SET_COOKIE, v);
                }
                r
            }
            PageError::Forbidden => error_page(
                StatusCode::FORBIDDEN,
                "Not for this account",
                "This page is for administrators. Log in with an admin account to see it.",
            ),
            PageError::BadRequest(detail) => error_page(
                StatusCode::BAD_REQUEST,
                "That request cannot be answered",
                &detail,
            ),
            PageError::NotFound => error_page(
                StatusCode::NOT_FOUND,
                "No such page",
                "The address does not name a page of the dashboard.",
            ),
            PageError::NotReady(detail) => error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The gold data is not ready yet",
                &format!(
                    "{detail}. The pipeline may not have published the datamarts yet; try again in a minute."
                ),
            ),
            PageError::Upstream(detail) => error_page(
                StatusCode::BAD_GATEWAY,
                "The gold API did not answer",
                &format!("{detail}. Try again in a moment; if it persists, tell the operators."),
            ),
        }
    }
}

/// The session of a request, if its token has not expired by its own claim.
fn require_session(headers: &HeaderMap) -> Result<Session, PageError> {
    let s = session::Session::from_headers(headers).ok_or(PageError::NotLoggedIn)?;
    if s.expired_at(Utc::now().timestamp()) {
        return Err(PageError::SessionExpired);
    }
    Ok(s)
}

// ------------------------------------------------------------------------ login

/// The login page.
#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// A message above the form.
    pub message: Option<String>,
    /// The user name to fill in again.
    pub username: String,
}

/// Query of the login page.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// Set after a session ended.
    #[serde(default)]
    pub expired: Option<String>,
    /// Set after logging out.
    #[serde(default)]
    pub loggedout: Option<String>,
}

/// GET /login
pub async fn login_form(Query(q): Query<LoginQuery>, headers: HeaderMap) -> Response {
    if q.expired.is_none() && q.loggedout.is_none() && require_session(&headers).is_ok() {
        return redirect("/");
    }
    let message = if q.expired.is_some() {
        Some("Your session has ended. Please log in again.".to_string())
    } else if q.loggedout.is_some() {
        Some("You are logged out.".to_string())
    } else {
        None
    };
    LoginPage {
        message,
        username: String::new(),
    }
    .into_response()
}

/// The login form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

/// The `X-Forwarded-For` chain of a request with its peer appended: what the
/// dashboard, as a proxy of the browser, passes on to the API.
fn forwarded_chain(headers: &HeaderMap, peer: IpAddr) -> String {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .chain([peer.to_canonical().to_string().as_str()])
        .collect::<Vec<_>>()
        .join(", ")
}

/// POST /login: checks the credentials with the API and stores the token in the cookie.
pub async fn login_submit(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let again = |status: StatusCode, message: &str| {
        (
            status,
            LoginPage {
                message: Some(message.to_string()),
                username: form.username.clone(),
            },
        )
            .into_response()
    };
    if form.username.trim().is_empty() || form.password.is_empty() {
        return again(StatusCode::BAD_REQUEST, "Enter a user name and a password.");
    }
    match state
        .gold
        .api()
        .login(
            form.username.trim(),
            &form.password,
            &forwarded_chain(&headers, peer.ip()),
        )
        .await
    {
        Ok(token) => {
            if Session::from_token(&token.access_token).is_none() {
                tracing::warn!("the API issued a token without the expected claims");
                return again(
                    StatusCode::BAD_GATEWAY,
                    "The gold API issued an unusable token.",
                );
            }
            let cookie = session::set_cookie(
                &token.access_token,
                token.expires_in,
                state.config.cookie_secure,
            );
            tracing::info!(user = form.username.trim(), "logged in");
            let mut r = redirect("/");
            match HeaderValue::from_str(&cookie) {
                Ok(v) => {
                    r.headers_mut().insert(SET_COOKIE, v);
                    r
                }
                Err(_) => again(
                    StatusCode::BAD_GATEWAY,
                    "The gold API issued an unusable token.",
                ),
            }
        }
        Err(ApiError::InvalidCredentials) => {
            again(StatusCode::UNAUTHORIZED, "Wrong user name or password.")
        }
        Err(ApiError::TooManyAttempts { retry_after_secs }) => again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed logins. Try again in {retry_after_secs} seconds."),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "login failed");
            again(
                StatusCode::BAD_GATEWAY,
                "The gold API cannot be reached right now. Try again in a moment.",
            )
        }
    }
}

/// POST /logout: forgets the token and clears the cookie.
pub async fn logout(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    if let Some(s) = Session::from_headers(&headers) {
        state.gold.cache().forget(&s.token);
    }
    let mut r = redirect("/login?loggedout=1");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(state.config.cookie_secure)) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

// --------------------------------------------------------------------- overview

/// An option of a filter's select box.
pub struct SelectOption {
    /// The value (and label).
    pub value: String,
    /// Whether it is the current filter.
    pub selected: bool,
}

/// A row of the monthly sales table, formatted.
pub struct MonthRow {
    /// `Jan 2024`.
    pub label: String,
    /// Sales.
    pub sales: String,
    /// Growth or `—`.
    pub growth: String,
    /// Transactions.
    pub transactions: i64,
    /// Customers.
    pub customers: i64,
    /// Average transaction value.
    pub avg: String,
}

/// The overview page.
#[derive(Template, WebTemplate)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    /// Logged-in user.
    pub user: String,
    /// Their role's name.
    pub role: &'static str,
    /// Whether to link the runs page.
    pub is_admin: bool,
    /// `?year=...&country=...` for the CSV links (empty without filters).
    pub query: String,
    /// Years offered.
    pub year_options: Vec<SelectOption>,
    /// Countries offered.
    pub country_options: Vec<SelectOption>,
    /// `2024` or `all years`.
    pub year_label: String,
    /// A country or `all countries`.
    pub scope_label: String,
    /// Total sales.
    pub headline_sales: String,
    /// Transactions.
    pub headline_transactions: String,
    /// Customers.
    pub headline_customers: String,
    /// Last refresh.
    pub last_refresh: String,
    /// Silver snapshot(s).
    pub snapshots: String,
    /// Top products chart.
    pub top: HBarChart,
    /// Its rows.
    pub top_rows: Vec<TopProduct>,
    /// Monthly sales chart.
    pub monthly: LineChart,
    /// Its rows, formatted.
    pub monthly_rows: Vec<MonthRow>,
    /// Lifetime value histogram.
    pub clv: HistogramChart,
    /// Its bins.
    pub clv_bins: Vec<HistogramBin>,
    /// The most valuable customers.
    pub top_customers: Vec<CustomerLifetimeValue>,
    /// Sales by country and year.
    pub heat: HeatMap,
    /// Its rows.
    pub sales_rows: Vec<SalesCountryYear>,
}

fn thousands(n: i64) -> String {
    crate::charts::format_money(aurum_gold::Money::from_cents(i128::from(n) * 100))
        .trim_end_matches(".00")
        .to_string()
}

fn format_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

/// GET /: the overview.
pub async fn overview(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(q): Query<FilterQuery>,
) -> Result<Response, PageError> {
    let s = require_session(&headers)?;
    let f = Filters::parse(&q)?;
    let gold = &state.gold;
    let (sales, top, monthly, lifetime, fresh) = tokio::try_join!(
        gold.sales_country_year(&s),
        gold.top_products(&s, f.scope()),
        gold.monthly_sales(&s, f.year),
        gold.customer_lifetime(&s, f.country.as_deref()),
        gold.freshness(&s),
    )?;
    let sales_rows = data::filter_sales(&sales, &f);
    let head = data::headline(&sales_rows, &f, lifetime.len());
    let (years, countries) = data::filter_options(&sales);

    let top_chart = hbar_chart(
        &top.iter()
            .map(|p| {
                (
                    format!("{} · {}", p.product_name, p.product_no),
                    p.total_sales,
                )
            })
            .collect::<Vec<_>>(),
    );
    let monthly_chart = line_chart(
        &monthly
            .iter()
            .map(|m| (m.month, m.total_sales, m.mom_growth_pct))
            .collect::<Vec<_>>(),
    );
    let bins = data::lifetime_histogram(&lifetime);
    let clv_chart = histogram_chart(&bins);
    // Heat map rows: countries by total sales, largest first; columns: years.
    let mut by_country: Vec<(String, i128)> = Vec::new();
    for r in &sales_rows {
        match by_country.iter_mut().find(|(c, _)| *c == r.country) {
            Some((_, total)) => *total = total.saturating_add(r.total_sales.cents()),
            None => by_country.push((r.country.clone(), r.total_sales.cents())),
        }
    }
    by_country.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let heat_rows: Vec<String> = by_country.into_iter().map(|(c, _)| c).collect();
    let mut heat_columns: Vec<i32> = sales_rows.iter().map(|r| r.year).collect();
    heat_columns.sort_unstable();
    heat_columns.dedup();
    let heat = heat_map(
        &heat_rows,
        &heat_columns
            .iter()
            .map(|y| y.to_string())
            .collect::<Vec<_>>(),
        &sales_rows
            .iter()
            .map(|r| (r.country.clone(), r.year.to_string(), r.total_sales))
            .collect::<Vec<_>>(),
    );
    let query = match f.query_string() {
        q if q.is_empty() => String::new(),
        q => format!("?{q}"),
    };
    let page = OverviewPage {
        user: s.user.clone(),
        role: s.role.as_str(),
        is_admin: s.role == Role::Admin,
        query,
        year_options: years
            .iter()
            .map(|y| SelectOption {
                value: y.to_string(),
                selected: f.year == Some(*y),
            })
            .collect(),
        country_options: countries
            .iter()
            .map(|c| SelectOption {
                value: c.clone(),
                selected: f.country.as_deref() == Some(c.as_str()),
            })
            .collect(),
        year_label: f
            .year
            .map(|y| y.to_string())
            .unwrap_or_else(|| "all years".into()),
        scope_label: f.country.clone().unwrap_or_else(|| "all countries".into()),
        headline_sales: format_money(head.total_sales),
        headline_transactions: thousands(head.transactions),
        headline_customers: thousands(head.customers),
        last_refresh: format_time(fresh.last_refresh),
        snapshots: if fresh.silver_snapshots.is_empty() {
            "—".into()
        } else {
            fresh.silver_snapshots.join(", ")
        },
        top: top_chart,
        top_rows: top.to_vec(),
        monthly: monthly_chart,
        monthly_rows: monthly
            .iter()
            .map(|m| MonthRow {
                label: format_month(m.month),
                sales: format_money(m.total_sales),
                growth: m
                    .mom_growth_pct
                    .map(format_percent)
                    .unwrap_or_else(|| "—".into()),
                transactions: m.transactions,
                customers: m.customers,
                avg: format_money(m.avg_transaction_value),
            })
            .collect(),
        clv: clv_chart,
        clv_bins: bins,
        top_customers: lifetime
            .iter()
            .take(state.config.top_customers)
            .cloned()
            .collect(),
        heat,
        sales_rows,
    };
    Ok(page.into_response())
}

// ------------------------------------------------------------------------- runs

/// A row of the runs table, formatted.
pub struct RunRow {
    /// Datamart.
    pub datamart: String,
    /// Start time.
    pub started: String,
    /// Duration.
    pub duration: String,
    /// Rows written.
    pub rows: String,
    /// Status.
    pub status: String,
    /// Error message.
    pub message: Option<String>,
    /// Silver snapshot.
    pub snapshot: String,
    /// Run id.
    pub run_id: String,
}

/// The runs page (admins).
#[derive(Template, WebTemplate)]
#[template(path = "runs.html")]
pub struct RunsPage {
    /// Logged-in user.
    pub user: String,
    /// Their role's name.
    pub role: &'static str,
    /// Always true here (the nav shows the runs link).
    pub is_admin: bool,
    /// The runs, newest first.
    pub runs: Vec<RunRow>,
}

fn format_duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// GET /runs: the `gold_runs` history (admins only; the API answers 403 to others).
pub async fn runs(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let s = require_session(&headers)?;
    if s.role != Role::Admin {
        return Err(PageError::Forbidden);
    }
    let runs = state.gold.runs(&s).await?;
    let rows = runs
        .iter()
        .map(|r| RunRow {
            datamart: r.datamart.clone(),
            started: r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            duration: format_duration((r.finished_at - r.started_at).num_milliseconds()),
            rows: thousands(r.rows_written),
            status: r.status.clone(),
            message: r.message.clone(),
            snapshot: r.silver_snapshot_id.clone().unwrap_or_else(|| "—".into()),
            run_id: r.run_id.clone(),
        })
        .collect();
    Ok(RunsPage {
        user: s.user.clone(),
        role: s.role.as_str(),
        is_admin: true,
        runs: rows,
    }
    .into_response())
}

// -------------------------------------------------------------------------- csv

fn csv_response(name: &str, f: &Filters, body: String) -> Response {
    let mut file = name.to_string();
    if let Some(y) = f.year {
        file.push_str(&format!("-{y}"));
    }
    if let Some(c) = &f.country {
        let safe: String = c
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() {
                    ch.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        file.push_str(&format!("-{safe}"));
    }
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}.csv\""),
            ),
            (CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

/// GET /csv/{chart}.csv: exactly the rows the chart draws, with the same filters.
pub async fn csv_download(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(file): Path<String>,
    Query(q): Query<FilterQuery>,
) -> Result<Response, PageError> {
    let s = require_session(&headers)?;
    let f = Filters::parse(&q)?;
    let gold = &state.gold;
    let name = file.strip_suffix(".csv").ok_or(PageError::NotFound)?;
    let body = match name {
        "top-products" => csv::top_products(&gold.top_products(&s, f.scope()).await?),
        "monthly-sales" => csv::monthly_sales(&gold.monthly_sales(&s, f.year).await?),
        "customer-lifetime-histogram" => {
            let rows = gold.customer_lifetime(&s, f.country.as_deref()).await?;
            csv::lifetime_histogram(&data::lifetime_histogram(&rows))
        }
        "top-customers" => {
            let rows = gold.customer_lifetime(&s, f.country.as_deref()).await?;
            let n = state.config.top_customers.min(rows.len());
            csv::customer_lifetime(&rows[..n])
        }
        "sales-country-year" => {
            csv::sales_country_year(&data::filter_sales(&gold.sales_country_year(&s).await?, &f))
        }
        "runs" => {
            if s.role != Role::Admin {
                return Err(PageError::Forbidden);
            }
            csv::runs(&gold.runs(&s).await?)
        }
        _ => return Err(PageError::NotFound),
    };
    Ok(csv_response(name, &f, body))
}

// ------------------------------------------------------------------- the rest

/// The stylesheet, compiled into the binary.
pub const STYLE_CSS: &str = include_str!("../static/style.css");

/// GET /static/style.css
pub async fn style() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE_CSS,
    )
        .into_response()
}

/// GET /healthz: the process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// GET /readyz: ready when the API answers its own readiness check.
pub async fn readyz(State(state): State<SharedState>) -> Response {
    match state.gold.api().readiness().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

/// GET /metrics: the response cache's size, in the OpenMetrics text format.
pub async fn metrics(State(state): State<SharedState>) -> Response {
    use prometheus_client::metrics::gauge::Gauge;
    let cache = state.gold.cache();
    let mut registry = prometheus_client::registry::Registry::with_prefix("aurum_dashboard");
    for (name, help, value) in [
        (
            "cache_entries",
            "API responses held by the cache",
            cache.entry_count().await,
        ),
        (
            "cache_max_entries",
            "The most API responses the cache holds (--cache-max-entries)",
            cache.max_entries(),
        ),
    ] {
        let gauge = Gauge::<i64>::default();
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(name, help, gauge);
    }
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Any other path.
pub async fn not_found() -> Response {
    PageError::NotFound.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_chain_ends_with_the_peer() {
        let peer: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(forwarded_chain(&HeaderMap::new(), peer), "10.1.2.3");
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static(" 10.0.0.1, 10.0.0.2 "),
        );
        assert_eq!(
            forwarded_chain(&headers, peer),
            "198.51.100.7, 10.0.0.1, 10.0.0.2, 10.1.2.3"
        );
    }
}
