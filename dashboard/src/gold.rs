//! The rows of the API's gold endpoints, as the dashboard reads them. Field names
//! and order follow the gold tables (docs/data-format.md, "Gold tables"), so a
//! CSV written from
//! these rows has the table's columns in the table's order.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::money::Money;

/// A row of `/gold/sales-country-year`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SalesCountryYear {
    /// Calendar year.
    pub year: i32,
    /// Country name.
    pub country: String,
    /// Sum of amounts.
    pub total_sales: Money,
    /// Sum of quantities.
    pub total_quantity: i64,
    /// Distinct transactions.
    pub transactions: i64,
    /// Distinct customers.
    pub customers: i64,
}

/// A row of `/gold/top-products`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    pub total_sales: Money,
    /// Sum of quantities within the scope.
    pub total_quantity: i64,
    /// Distinct transactions within the scope.
    pub transactions: i64,
}

/// A row of `/gold/monthly-sales`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MonthlySales {
    /// First day of the month.
    pub month: NaiveDate,
    /// Sum of amounts.
    pub total_sales: Money,
    /// Sum of quantities.
    pub total_quantity: i64,
    /// Distinct transactions.
    pub transactions: i64,
    /// Distinct customers.
    pub customers: i64,
    /// Sales per transaction.
    pub avg_transaction_value: Money,
    /// Growth over the previous calendar month, in percent (none without one).
    pub mom_growth_pct: Option<Money>,
}

/// A row of `/gold/customer-lifetime`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    pub lifetime_value: Money,
    /// Lifetime value per transaction.
    pub avg_transaction_value: Money,
    /// Position by lifetime value (1 = most valuable).
    pub value_rank: i32,
    /// Quartile by lifetime value (1 = most valuable).
    pub value_quartile: i32,
}

/// A row of `/gold/runs` (admins only).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GoldRun {
    /// Datamart name.
    pub datamart: String,
    /// Run id.
    pub run_id: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Finish time.
    pub finished_at: DateTime<Utc>,
    /// Rows written.
    pub rows_written: i64,
    /// `succeeded` or `failed`.
    pub status: String,
    /// The silver snapshot the run read.
    pub silver_snapshot_id: Option<String>,
    /// What went wrong, for a failed run.
    pub message: Option<String>,
}

/// A page of any gold endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows matching the filters, over all pages.
    pub total: u64,
}
