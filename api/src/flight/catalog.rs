//! The tables Flight SQL clients see: the four gold datamarts, and `gold_runs` for
//! admins, with their Arrow schemas (docs/data-format.md, "Gold tables", as
//! created by the job-runner's migrations).

use std::sync::Arc;

use arrow_schema::{Field, Schema, SchemaRef};

use crate::flight::pg_arrow::{ColumnKind, NUMERIC_MONEY};
use crate::users::Role;

/// A table readable over Flight SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GoldTable {
    /// `gold_sales_country_year`.
    SalesCountryYear,
    /// `gold_top_products`.
    TopProducts,
    /// `gold_monthly_sales`.
    MonthlySales,
    /// `gold_customer_lifetime_value`.
    CustomerLifetimeValue,
    /// `gold_runs` (admins only).
    Runs,
}

/// The catalog name reported to clients (PostgreSQL has one catalog per database;
/// clients only need a stable name).
pub const CATALOG: &str = "aurum";

impl GoldTable {
    /// Every table, in listing order.
    pub const ALL: [GoldTable; 5] = [
        GoldTable::CustomerLifetimeValue,
        GoldTable::MonthlySales,
        GoldTable::SalesCountryYear,
        GoldTable::TopProducts,
        GoldTable::Runs,
    ];

    /// The PostgreSQL table name.
    pub fn name(self) -> &'static str {
        match self {
            GoldTable::SalesCountryYear => "gold_sales_country_year",
            GoldTable::TopProducts => "gold_top_products",
            GoldTable::MonthlySales => "gold_monthly_sales",
            GoldTable::CustomerLifetimeValue => "gold_customer_lifetime_value",
            GoldTable::Runs => "gold_runs",
        }
    }

    /// The table of a (folded) PostgreSQL name.
    pub fn from_name(name: &str) -> Option<GoldTable> {
        GoldTable::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether `role` may read it.
    pub fn readable_by(self, role: Role) -> bool {
        self != GoldTable::Runs || role == Role::Admin
    }

    /// The tables `role` may read, in listing order.
    pub fn visible_to(role: Role) -> impl Iterator<Item = GoldTable> {
        GoldTable::ALL
            .into_iter()
            .filter(move |t| t.readable_by(role))
    }

    /// Columns and their PostgreSQL types, in table order.
    pub fn columns(self) -> &'static [(&'static str, ColumnKind, bool)] {
        use ColumnKind::*;
        const M: ColumnKind = NUMERIC_MONEY;
        // (name, kind, nullable)
        match self {
            GoldTable::SalesCountryYear => &[
                ("year", Int32, false),
                ("country", Text, false),
                ("total_sales", M, false),
                ("total_quantity", Int64, false),
                ("transactions", Int64, false),
                ("customers", Int64, false),
            ],
            GoldTable::TopProducts => &[
                ("scope", Text, false),
                ("rank", Int32, false),
                ("product_no", Text, false),
                ("product_name", Text, false),
                ("total_sales", M, false),
                ("total_quantity", Int64, false),
                ("transactions", Int64, false),
            ],
            GoldTable::MonthlySales => &[
                ("month", Date, false),
                ("total_sales", M, false),
                ("total_quantity", Int64, false),
                ("transactions", Int64, false),
                ("customers", Int64, false),
                ("avg_transaction_value", M, false),
                (
                    "mom_growth_pct",
                    Numeric {
                        precision: 12,
                        scale: 2,
                    },
                    true,
                ),
            ],
            GoldTable::CustomerLifetimeValue => &[
                ("customer_no", Text, false),
                ("first_name", Text, true),
                ("last_name", Text, true),
                ("country", Text, false),
                ("first_purchase", Date, false),
                ("last_purchase", Date, false),
                ("transactions", Int64, false),
                ("total_quantity", Int64, false),
                ("lifetime_value", M, false),
                ("avg_transaction_value", M, false),
                ("value_rank", Int32, false),
                ("value_quartile", Int32, false),
            ],
            GoldTable::Runs => &[
                ("datamart", Text, false),
                ("run_id", Text, false),
                ("started_at", TimestampTz, false),
                ("finished_at", TimestampTz, false),
                ("rows_written", Int64, false),
                ("status", Text, false),
                ("silver_snapshot_id", Text, true),
                ("message", Text, true),
            ],
        }
    }

    /// The primary key columns, in key order (the job-runner's migrations).
    pub fn primary_key(self) -> &'static [&'static str] {
        match self {
            GoldTable::SalesCountryYear => &["year", "country"],
            GoldTable::TopProducts => &["scope", "rank"],
            GoldTable::MonthlySales => &["month"],
            GoldTable::CustomerLifetimeValue => &["customer_no"],
            GoldTable::Runs => &["datamart", "run_id"],
        }
    }

    /// The Arrow schema of `SELECT * FROM` the table.
    pub fn schema(self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns()
                .iter()
                .map(|(name, kind, nullable)| Field::new(*name, kind.arrow_type(), *nullable))
                .collect::<Vec<_>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_for_admins() {
        assert_eq!(GoldTable::visible_to(Role::Viewer).count(), 4);
        assert_eq!(GoldTable::visible_to(Role::Admin).count(), 5);
    }
}
