//! The rows of the API's gold endpoints, as the dashboard reads them: the gold
//! contract's own rows (field names and order follow the gold tables, so a CSV
//! written from these rows has the table's columns in the table's order).

use serde::Deserialize;

pub use aurum_gold::tables::{
    CustomerLifetimeValue, GoldRun, MonthlySales, SalesCountryYear, TopProduct,
};

/// A page of any gold endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Rows matching the filters, over all pages.
    pub total: u64,
}
