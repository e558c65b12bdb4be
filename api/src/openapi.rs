//! The OpenAPI document (generated from the handlers) and the embedded Swagger UI.

use serde::Serialize;
use utoipa::openapi::security::{
    Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::gold::tables::{CustomerLifetimeValue, MonthlySales, SalesCountryYear, TopProduct};
use crate::problem::Problem;
use crate::routes::{GoldRun, GoldRunsPage, LoginForm, LoginRequest, TokenResponse};
use crate::users::Role;

/// Sort direction.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Ascending (default).
    Asc,
    /// Descending.
    Desc,
}

/// Pagination and direction, common to every gold endpoint.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size (0 to 1000, default 50; 0 returns only `total`).
    #[param(minimum = 0, maximum = 1000, default = 50)]
    pub limit: Option<i64>,
    /// Rows to skip (default 0). Past the end gives an empty page.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Sort direction of `order_by` (ties are broken by the primary key, ascending).
    pub order: Option<Direction>,
}

/// The `If-None-Match` header.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatch {
    /// An ETag from a previous response: answers 304 when the data has not changed.
    #[param(rename = "If-None-Match")]
    pub if_none_match: Option<String>,
}

macro_rules! order_enum {
    ($name:ident, $doc:literal, [$($variant:ident),+ $(,)?]) => {
        #[doc = $doc]
        #[derive(Debug, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        #[allow(missing_docs)]
        pub enum $name { $($variant),+ }
    };
}

order_enum!(
    SalesCountryYearOrder,
    "Order columns of sales-country-year.",
    [
        Year,
        Country,
        TotalSales,
        TotalQuantity,
        Transactions,
        Customers
    ]
);
order_enum!(
    TopProductsOrder,
    "Order columns of top-products.",
    [
        Rank,
        ProductNo,
        ProductName,
        TotalSales,
        TotalQuantity,
        Transactions
    ]
);
order_enum!(
    MonthlySalesOrder,
    "Order columns of monthly-sales.",
    [
        Month,
        TotalSales,
        TotalQuantity,
        Transactions,
        Customers,
        AvgTransactionValue,
        MomGrowthPct
    ]
);
order_enum!(
    CustomerLifetimeOrder,
    "Order columns of customer-lifetime.",
    [
        ValueRank,
        CustomerNo,
        Country,
        FirstPurchase,
        LastPurchase,
        Transactions,
        TotalQuantity,
        LifetimeValue,
        AvgTransactionValue
    ]
);

/// Filters of `/gold/sales-country-year`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SalesCountryYearParams {
    /// Only this year.
    #[param(minimum = 0, maximum = 9999)]
    pub year: Option<i32>,
    /// Only this country (exact name).
    #[param(min_length = 1, max_length = 512)]
    pub country: Option<String>,
    /// Order column (default `year`, then country).
    pub order_by: Option<SalesCountryYearOrder>,
}

/// Filters of `/gold/top-products`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopProductsParams {
    /// `ALL` (default) or a country name.
    #[param(min_length = 1, max_length = 512)]
    pub scope: Option<String>,
    /// Order column (default `rank`).
    pub order_by: Option<TopProductsOrder>,
}

/// Filters of `/gold/monthly-sales`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthlySalesParams {
    /// First month, inclusive: `YYYY-MM` (or a date `YYYY-MM-DD`, meaning its month).
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$")]
    pub from: Option<String>,
    /// Last month, inclusive: `YYYY-MM` (or a date `YYYY-MM-DD`, meaning its month).
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$")]
    pub to: Option<String>,
    /// Order column (default `month`).
    pub order_by: Option<MonthlySalesOrder>,
}

/// Filters of `/gold/customer-lifetime`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerLifetimeParams {
    /// Only customers of this country (exact name).
    #[param(min_length = 1, max_length = 512)]
    pub country: Option<String>,
    /// Only this value quartile (1 = most valuable).
    #[param(minimum = 1, maximum = 4)]
    pub quartile: Option<i32>,
    /// Only this customer.
    #[param(min_length = 1, max_length = 512)]
    pub customer_no: Option<String>,
    /// Order column (default `value_rank`).
    pub order_by: Option<CustomerLifetimeOrder>,
}

/// Status filter of the runs history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Published.
    Succeeded,
    /// Failed.
    Failed,
}

/// Parameters of `/gold/runs`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsParams {
    /// Page size (0 to 1000, default 50).
    #[param(minimum = 0, maximum = 1000, default = 50)]
    pub limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// `desc` (default): newest first; `asc`: oldest first.
    pub order: Option<Direction>,
    /// Only this datamart.
    #[param(min_length = 1, max_length = 512)]
    pub datamart: Option<String>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
}

macro_rules! page {
    ($name:ident, $row:ty) => {
        /// A page of rows.
        #[derive(Debug, ToSchema)]
        pub struct $name {
            /// The rows of this page.
            pub items: Vec<$row>,
            /// Rows matching the filters.
            pub total: u64,
            /// Page size.
            pub limit: u32,
            /// Rows skipped.
            pub offset: u64,
        }
    };
}

page!(SalesCountryYearPage, SalesCountryYear);
page!(TopProductsPage, TopProduct);
page!(MonthlySalesPage, MonthlySales);
page!(CustomerLifetimePage, CustomerLifetimeValue);

/// Liveness answer.
#[derive(Debug, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// Readiness answer.
#[derive(Debug, ToSchema)]
pub struct Readiness {
    /// `ready` (a snapshot is loaded, or PostgreSQL answers) or `not ready`.
    pub status: String,
    /// `reachable` or `unreachable`: whether PostgreSQL answered `SELECT 1` within
    /// 2 s. An API that serves loaded snapshots stays ready without it.
    pub database: String,
    /// Why PostgreSQL could not be reached (null when it answered).
    pub database_error: Option<String>,
    /// Seconds since the served data was last confirmed to be the latest
    /// published (the oldest confirmation among the loaded datamarts); null when
    /// nothing is loaded. It grows while PostgreSQL is away.
    pub snapshot_age_seconds: Option<i64>,
    /// State of each datamart snapshot, by REST path: `loaded`, `rows`, `run_id`,
    /// `finished_at`, `silver_snapshot_id` (the silver snapshot the run read),
    /// `checked_at` (the last check of `gold_runs`) and `error` (of the last refresh).
    #[schema(value_type = Object)]
    pub datamarts: serde_json::Value,
}

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/login",
                Scopes::new(),
            ))])),
        );
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aurum gold API",
        description = "JWT-secured, paginated REST over Aurum's gold datamarts. \
            Log in with POST /login (or the Authorize button), then call the /gold endpoints \
            with `Authorization: Bearer <token>`.",
    ),
    paths(
        crate::routes::login,
        crate::routes::sales_country_year,
        crate::routes::top_products,
        crate::routes::monthly_sales,
        crate::routes::customer_lifetime,
        crate::routes::runs,
        crate::routes::healthz,
        crate::routes::readyz,
        crate::routes::metrics,
    ),
    components(schemas(
        Problem, LoginRequest, LoginForm, TokenResponse, Role, GoldRun, GoldRunsPage,
        SalesCountryYearPage, TopProductsPage, MonthlySalesPage, CustomerLifetimePage,
        Health, Readiness, Direction, RunStatus, SalesCountryYearOrder, TopProductsOrder,
        MonthlySalesOrder, CustomerLifetimeOrder,
    )),
    modifiers(&SecurityAddon),
    tags(
        (name = "auth", description = "Log in"),
        (name = "gold", description = "Gold datamarts"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// Swagger UI at `/docs` (assets embedded in the binary) and the spec at `/openapi.json`.
pub fn swagger_ui() -> SwaggerUi {
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .config(utoipa_swagger_ui::Config::default().persist_authorization(true))
}
