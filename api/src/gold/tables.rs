//! The four gold datamarts: row types, how to load them, how to filter and order them.

use std::cmp::Ordering;

use aurum_gold::money::MoneyParseError;
use aurum_gold::{Datamart as Mart, Money};
use chrono::NaiveDate;
use serde::Serialize;
use tokio_postgres::Row;

pub use aurum_gold::tables::{CustomerLifetimeValue, MonthlySales, SalesCountryYear, TopProduct};

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
        source: MoneyParseError,
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

/// The SELECT list of a gold table: its columns in order, money cast to text so
/// that it is read exactly.
pub fn select_list(mart: Mart) -> String {
    mart.columns()
        .iter()
        .map(|c| {
            if c.sql_type.is_money() {
                format!("{}::text", c.name)
            } else {
                c.name.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
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
    /// The datamart of the contract.
    const MART: Mart;
    /// The last path segment under `/gold/`.
    const PATH: &'static str = Self::MART.rest_path();
    /// The `gold_runs.datamart` values that denote this table.
    const RUN_NAMES: &'static [&'static str] = &[Self::MART.name(), Self::MART.table()];
    /// The PostgreSQL table.
    const TABLE: &'static str = Self::MART.table();
    /// Columns accepted by `order_by`; the first is the default.
    const ORDER_COLUMNS: &'static [&'static str];
    /// Converts a row of `SELECT {select_list(MART)} FROM {TABLE}`.
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
    const MART: Mart = Mart::SalesCountryYear;
    const ORDER_COLUMNS: &'static [&'static str] = &[
        "year",
        "country",
        "total_sales",
        "total_quantity",
        "transactions",
        "customers",
    ];

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
    const MART: Mart = Mart::TopProducts;
    const ORDER_COLUMNS: &'static [&'static str] = &[
        "rank",
        "product_no",
        "product_name",
        "total_sales",
        "total_quantity",
        "transactions",
    ];

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
    const MART: Mart = Mart::MonthlySales;
    const ORDER_COLUMNS: &'static [&'static str] = &[
        "month",
        "total_sales",
        "total_quantity",
        "transactions",
        "customers",
        "avg_transaction_value",
        "mom_growth_pct",
    ];

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
    type Row = CustomerLifetimeValue;
    type Filter = CustomerLifetimeFilter;
    const MART: Mart = Mart::CustomerLifetimeValue;
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

    fn from_pg(r: &Row) -> Result<Self::Row, RowError> {
        Ok(CustomerLifetimeValue {
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
