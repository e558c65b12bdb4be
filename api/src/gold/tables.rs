//! The four gold datamarts: row types, how to load them, how to filter and order them.

use std::cmp::Ordering;

use chrono::NaiveDate;
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::money::Money;
use super::params::QueryParams;
use crate::problem::Problem;

/// Errors turning a PostgreSQL row into a gold row.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// A column has an unexpected type or is NULL where it must not be.
    #[error("column {column}: {source}")]
    Column {
        /// Column name.
        column: &'static str,
        /// Driver error.
        source: tokio_postgres::Error,
    },
    /// A money column is not a valid decimal.
    #[error("column {column}: {source}")]
    Money {
        /// Column name.
        column: &'static str,
        /// Parse error.
        source: super::money::MoneyParseError,
    },
}

fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
    column: &'static str,
) -> Result<T, RowError> {
    row.try_get(idx)
        .map_err(|source| RowError::Column { column, source })
}

fn money(row: &Row, idx: usize, column: &'static str) -> Result<Money, RowError> {
    let s: String = col(row, idx, column)?;
    s.parse()
        .map_err(|source| RowError::Money { column, source })
}

fn opt_money(row: &Row, idx: usize, column: &'static str) -> Result<Option<Money>, RowError> {
    let s: Option<String> = col(row, idx, column)?;
    s.map(|s| s.parse())
        .transpose()
        .map_err(|source| RowError::Money { column, source })
}

/// NULLs sort after every value, as PostgreSQL does by default.
fn cmp_nulls_last<T: Ord>(a: &Option<T>, b: &Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
    }
}

/// A gold datamart served by the API.
pub trait Datamart: Send + Sync + 'static {
    /// One row of the table.
    type Row: Serialize + Send + Sync + 'static;
    /// The validated filters of a request.
    type Filter: Send + Sync;
    /// The last path segment under `/gold/`.
    const PATH: &'static str;
    /// The `gold_runs.datamart` values that denote this table.
    const RUN_NAMES: &'static [&'static str];
    /// The PostgreSQL table.
    const TABLE: &'static str;
    /// Columns accepted by `order_by`; the first is the default.
    const ORDER_COLUMNS: &'static [&'static str];
    /// Column list of the SELECT (money columns cast to text).
    const SELECT_COLUMNS: &'static str;
    /// Converts a row of `SELECT {SELECT_COLUMNS} FROM {TABLE}`.
    fn from_pg(row: &Row) -> Result<Self::Row, RowError>;
    /// Compares two rows on order column `col` (ascending, NULLs last).
    fn cmp_on(col: usize, a: &Self::Row, b: &Self::Row) -> Ordering;
    /// Compares two rows by primary key (the tie-breaker of every order).
    fn cmp_key(a: &Self::Row, b: &Self::Row) -> Ordering;
    /// Reads this datamart's filters from the query.
    fn parse_filter(q: &QueryParams) -> Result<Self::Filter, Problem>;
    /// Whether the filter keeps every row (fast path).
    fn keeps_all(f: &Self::Filter) -> bool;
    /// Whether a row passes the filter.
    fn matches(f: &Self::Filter, row: &Self::Row) -> bool;
    /// A canonical text of the filter, for the ETag.
    fn filter_key(f: &Self::Filter) -> String;
}

// ---------------------------------------------------------------------------

/// A row of `gold_sales_country_year`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SalesCountryYear {
    /// Calendar year.
    pub year: i32,
    /// Country name.
    pub country: String,
    /// Sum of amounts.
    #[schema(value_type = f64, example = 12345.67)]
    pub total_sales: Money,
    /// Sum of quantities.
    pub total_quantity: i64,
    /// Distinct transactions.
    pub transactions: i64,
    /// Distinct customers.
    pub customers: i64,
}

/// Filters of `/gold/sales-country-year`.
#[derive(Debug, Default)]
pub struct SalesCountryYearFilter {
    year: Option<i32>,
    country: Option<String>,
}

/// The `sales-country-year` datamart.
pub struct SalesCountryYearMart;

impl Datamart for SalesCountryYearMart {
    type Row = SalesCountryYear;
    type Filter = SalesCountryYearFilter;
    const PATH: &'static str = "sales-country-year";
    const RUN_NAMES: &'static [&'static str] = &["sales-country-year", "gold_sales_country_year"];
    const TABLE: &'static str = "gold_sales_country_year";
    const ORDER_COLUMNS: &'static [&'static str] = &[
        "year",
        "country",
        "total_sales",
        "total_quantity",
        "transactions",
        "customers",
    ];
    const SELECT_COLUMNS: &'static str =
        "year, country, total_sales::text, total_quantity, transactions, customers";

    fn from_pg(r: &Row) -> Result<Self::Row, RowError> {
        Ok(SalesCountryYear {
            year: col(r, 0, "year")?,
            country: col(r, 1, "country")?,
            total_sales: money(r, 2, "total_sales")?,
            total_quantity: col(r, 3, "total_quantity")?,
            transactions: col(r, 4, "transactions")?,
            customers: col(r, 5, "customers")?,
        })
    }

    fn cmp_on(c: usize, a: &Self::Row, b: &Self::Row) -> Ordering {
        match c {
            0 => a.year.cmp(&b.year),
            1 => a.country.cmp(&b.country),
            2 => a.total_sales.cmp(&b.total_sales),
            3 => a.total_quantity.cmp(&b.total_quantity),
            4 => a.transactions.cmp(&b.transactions),
            _ => a.customers.cmp(&b.customers),
        }
    }

    fn cmp_key(a: &Self::Row, b: &Self::Row) -> Ordering {
        a.year.cmp(&b.year).then_with(|| a.country.cmp(&b.country))
    }

    fn parse_filter(q: &QueryParams) -> Result<Self::Filter, Problem> {
        Ok(SalesCountryYearFilter {
            year: q.int("year", 0, 9999)?.map(|v| v as i32),
            country: q.text("country")?,
        })
    }

    fn keeps_all(f: &Self::Filter) -> bool {
        f.year.is_none() && f.country.is_none()
    }

    fn matches(f: &Self::Filter, r: &Self::Row) -> bool {
        f.year.is_none_or(|y| r.year == y) && f.country.as_ref().is_none_or(|c| &r.country == c)
    }

    fn filter_key(f: &Self::Filter) -> String {
        format!("{:?}|{:?}", f.year, f.country)
    }
}

// ---------------------------------------------------------------------------

/// A row of `gold_top_products`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopProduct {
    /// `ALL` or a country name.
    pub scope: String,
    /// 1-based rank within the scope.
    pub rank: i32,
    /// Product number.
    pub product_no: String,
    /// Product name.
    pub product_name: String,
    /// Sum of amounts within the scope.
    #[schema(value_type = f64, example = 12345.67)]
    pub total_sales: Money,
    /// Sum of quantities within the scope.
    pub total_quantity: i64,
    /// Distinct transactions within the scope.
    pub transactions: i64,
}

/// Filters of `/gold/top-products`.
#[derive(Debug)]
pub struct TopProductsFilter {
    scope: String,
}

/// The `top-products` datamart.
pub struct TopProductsMart;

impl Datamart for TopProductsMart {
    type Row = TopProduct;
    type Filter = TopProductsFilter;
    const PATH: &'static str = "top-products";
    const RUN_NAMES: &'static [&'static str] = &["top-products", "gold_top_products"];
    const TABLE: &'static str = "gold_top_products";
    const ORDER_COLUMNS: &'static [&'static str] = &[
        "rank",
        "product_no",
        "product_name",
        "total_sales",
        "total_quantity",
        "transactions",
    ];
    const SELECT_COLUMNS: &'static str =
        "scope, rank, product_no, product_name, total_sales::text, total_quantity, transactions";

    fn from_pg(r: &Row) -> Result<Self::Row, RowError> {
        Ok(TopProduct {
            scope: col(r, 0, "scope")?,
            rank: col(r, 1, "rank")?,
            product_no: col(r, 2, "product_no")?,
            product_name: col(r, 3, "product_name")?,
            total_sales: money(r, 4, "total_sales")?,
            total_quantity: col(r, 5, "total_quantity")?,
            transactions: col(r, 6, "transactions")?,
        })
    }

    fn cmp_on(c: usize, a: &Self::Row, b: &Self::Row) -> Ordering {
        match c {
            0 => a.rank.cmp(&b.rank),
            1 => a.product_no.cmp(&b.product_no),
            2 => a.product_name.cmp(&b.product_name),
            3 => a.total_sales.cmp(&b.total_sales),
            4 => a.total_quantity.cmp(&b.total_quantity),
            _ => a.transactions.cmp(&b.transactions),
        }
    }

    fn cmp_key(a: &Self::Row, b: &Self::Row) -> Ordering {
        a.scope.cmp(&b.scope).then_with(|| a.rank.cmp(&b.rank))
    }

    fn parse_filter(q: &QueryParams) -> Result<Self::Filter, Problem> {
        Ok(TopProductsFilter {
            scope: q.text("scope")?.unwrap_or_else(|| "ALL".to_string()),
        })
    }

    fn keeps_all(_: &Self::Filter) -> bool {
        false
    }

    fn matches(f: &Self::Filter, r: &Self::Row) -> bool {
        r.scope == f.scope
    }

    fn filter_key(f: &Self::Filter) -> String {
        f.scope.clone()
    }
}

// ---------------------------------------------------------------------------

/// A row of `gold_monthly_sales`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthlySales {
    /// First day of the month.
    pub month: NaiveDate,
    /// Sum of amounts.
    #[schema(value_type = f64, example = 12345.67)]
    pub total_sales: Money,
    /// Sum of quantities.
    pub total_quantity: i64,
    /// Distinct transactions.
    pub transactions: i64,
    /// Distinct customers.
    pub customers: i64,
    /// total_sales / transactions.
    #[schema(value_type = f64, example = 321.5)]
    pub avg_transaction_value: Money,
    /// Growth against the previous calendar month, in percent; null when unknown.
    #[schema(value_type = Option<f64>, example = 4.25)]
    pub mom_growth_pct: Option<Money>,
}

/// Filters of `/gold/monthly-sales`.
#[derive(Debug, Default)]
pub struct MonthlySalesFilter {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// The `monthly-sales` datamart.
pub struct MonthlySalesMart;

impl Datamart for MonthlySalesMart {
    type Row = MonthlySales;
    type Filter = MonthlySalesFilter;
    const PATH: &'static str = "monthly-sales";
    const RUN_NAMES: &'static [&'static str] = &["monthly-sales", "gold_monthly_sales"];
    const TABLE: &'static str = "gold_monthly_sales";
    const ORDER_COLUMNS: &'static [&'static str] = &[
        "month",
        "total_sales",
        "total_quantity",
        "transactions",
        "customers",
        "avg_transaction_value",
        "mom_growth_pct",
    ];
    const SELECT_COLUMNS: &'static str = "month, total_sales::text, total_quantity, transactions, customers, avg_transaction_value::text, mom_growth_pct::text";

    fn from_pg(r: &Row) -> Result<Self::Row, RowError> {
        Ok(MonthlySales {
            month: col(r, 0, "month")?,
            total_sales: money(r, 1, "total_sales")?,
            total_quantity: col(r, 2, "total_quantity")?,
            transactions: col(r, 3, "transactions")?,
            customers: col(r, 4, "customers")?,
            avg_transaction_value: money(r, 5, "avg_transaction_value")?,
            mom_growth_pct: opt_money(r, 6, "mom_growth_pct")?,
        })
    }

    fn cmp_on(c: usize, a: &Self::Row, b: &Self::Row) -> Ordering {
        match c {
            0 => a.month.cmp(&b.month),
            1 => a.total_sales.cmp(&b.total_sales),
            2 => a.total_quantity.cmp(&b.total_quantity),
            3 => a.transactions.cmp(&b.transactions),
            4 => a.customers.cmp(&b.customers),
            5 => a.avg_transaction_value.cmp(&b.avg_transaction_value),
            _ => cmp_nulls_last(&a.mom_growth_pct, &b.mom_growth_pct),
        }
    }

    fn cmp_key(a: &Self::Row, b: &Self::Row) -> Ordering {
        a.month.cmp(&b.month)
    }

    fn parse_filter(q: &QueryParams) -> Result<Self::Filter, Problem> {
        Ok(MonthlySalesFilter {
            from: q.month("from")?,
            to: q.month("to")?,
        })
    }

    fn keeps_all(f: &Self::Filter) -> bool {
        f.from.is_none() && f.to.is_none()
    }

    fn matches(f: &Self::Filter, r: &Self::Row) -> bool {
        f.from.is_none_or(|d| r.month >= d) && f.to.is_none_or(|d| r.month <= d)
    }

    fn filter_key(f: &Self::Filter) -> String {
        format!("{:?}|{:?}", f.from, f.to)
    }
}

// ---------------------------------------------------------------------------

/// A row of `gold_customer_lifetime_value`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerLifetime {
    /// Customer number.
    pub customer_no: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Country name.
    pub country: String,
    /// Date of the first purchase.
    pub first_purchase: NaiveDate,
    /// Date of the last purchase.
    pub last_purchase: NaiveDate,
    /// Distinct transactions.
    pub transactions: i64,
    /// Sum of quantities.
    pub total_quantity: i64,
    /// Sum of amounts.
    #[schema(value_type = f64, example = 12345.67)]
    pub lifetime_value: Money,
    /// lifetime_value / transactions.
    #[schema(value_type = f64, example = 321.5)]
    pub avg_transaction_value: Money,
    /// 1 = most valuable customer.
    pub value_rank: i32,
    /// 1 (most valuable quarter) to 4.
    pub value_quartile: i32,
}

/// Filters of `/gold/customer-lifetime`.
#[derive(Debug, Default)]
pub struct CustomerLifetimeFilter {
    country: Option<String>,
    quartile: Option<i32>,
    customer_no: Option<String>,
}

/// The `customer-lifetime-value` datamart.
pub struct CustomerLifetimeMart;

impl Datamart for CustomerLifetimeMart {
    type Row = CustomerLifetime;
    type Filter = CustomerLifetimeFilter;
    const PATH: &'static str = "customer-lifetime";
    const RUN_NAMES: &'static [&'static str] =
        &["customer-lifetime-value", "gold_customer_lifetime_value"];
    const TABLE: &'static str = "gold_customer_lifetime_value";
    const ORDER_COLUMNS: &'static [&'static str] = &[
        "value_rank",
        "customer_no",
        "country",
        "first_purchase",
        "last_purchase",
        "transactions",
        "total_quantity",
        "lifetime_value",
        "avg_transaction_value",
    ];
    const SELECT_COLUMNS: &'static str = "customer_no, first_name, last_name, country, first_purchase, last_purchase, transactions, total_quantity, lifetime_value::text, avg_transaction_value::text, value_rank, value_quartile";

    fn from_pg(r: &Row) -> Result<Self::Row, RowError> {
        Ok(CustomerLifetime {
            customer_no: col(r, 0, "customer_no")?,
            first_name: col(r, 1, "first_name")?,
            last_name: col(r, 2, "last_name")?,
            country: col(r, 3, "country")?,
            first_purchase: col(r, 4, "first_purchase")?,
            last_purchase: col(r, 5, "last_purchase")?,
            transactions: col(r, 6, "transactions")?,
            total_quantity: col(r, 7, "total_quantity")?,
            lifetime_value: money(r, 8, "lifetime_value")?,
            avg_transaction_value: money(r, 9, "avg_transaction_value")?,
            value_rank: col(r, 10, "value_rank")?,
            value_quartile: col(r, 11, "value_quartile")?,
        })
    }

    fn cmp_on(c: usize, a: &Self::Row, b: &Self::Row) -> Ordering {
        match c {
            0 => a.value_rank.cmp(&b.value_rank),
            1 => a.customer_no.cmp(&b.customer_no),
            2 => a.country.cmp(&b.country),
            3 => a.first_purchase.cmp(&b.first_purchase),
            4 => a.last_purchase.cmp(&b.last_purchase),
            5 => a.transactions.cmp(&b.transactions),
            6 => a.total_quantity.cmp(&b.total_quantity),
            7 => a.lifetime_value.cmp(&b.lifetime_value),
            _ => a.avg_transaction_value.cmp(&b.avg_transaction_value),
        }
    }

    fn cmp_key(a: &Self::Row, b: &Self::Row) -> Ordering {
        a.customer_no.cmp(&b.customer_no)
    }

    fn parse_filter(q: &QueryParams) -> Result<Self::Filter, Problem> {
        Ok(CustomerLifetimeFilter {
            country: q.text("country")?,
            quartile: q.int("quartile", 1, 4)?.map(|v| v as i32),
            customer_no: q.text("customer_no")?,
        })
    }

    fn keeps_all(f: &Self::Filter) -> bool {
        f.country.is_none() && f.quartile.is_none() && f.customer_no.is_none()
    }

    fn matches(f: &Self::Filter, r: &Self::Row) -> bool {
        f.quartile.is_none_or(|q| r.value_quartile == q)
            && f.country.as_ref().is_none_or(|c| &r.country == c)
            && f.customer_no.as_ref().is_none_or(|c| &r.customer_no == c)
    }

    fn filter_key(f: &Self::Filter) -> String {
        format!("{:?}|{:?}|{:?}", f.country, f.quartile, f.customer_no)
    }
}
