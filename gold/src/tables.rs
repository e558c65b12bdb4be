//! The gold tables of the contract (docs/data-format.md, "Gold tables"): which
//! datamarts there are, their PostgreSQL tables and columns, and their rows.
//!
//! The job-runner writes these rows, the API reads and serves them, the
//! dashboard reads them back from the API: one definition keeps the three in step.

use chrono::{DateTime, NaiveDate, Utc};

use crate::money::Money;

/// The table recording every gold load.
pub const RUNS_TABLE: &str = "gold_runs";

/// The gold datamarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Datamart {
    /// `gold_sales_country_year`: sales per calendar year and country.
    SalesCountryYear,
    /// `gold_top_products`: the top N products overall and per country.
    TopProducts,
    /// `gold_monthly_sales`: sales per month with month-over-month growth.
    MonthlySales,
    /// `gold_customer_lifetime_value`: value, rank and quartile per customer.
    CustomerLifetimeValue,
}

/// The PostgreSQL type of a gold column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// `integer`.
    Integer,
    /// `bigint`.
    BigInt,
    /// `text`.
    Text,
    /// `date`.
    Date,
    /// `numeric(18,2)`: every money value.
    Money,
    /// `numeric(12,2)`: a percentage (`mom_growth_pct`).
    Percent,
}

impl SqlType {
    /// The type as `information_schema.columns` shows it (with precision and
    /// scale for numerics).
    pub fn declared(self) -> &'static str {
        match self {
            SqlType::Integer => "integer",
            SqlType::BigInt => "bigint",
            SqlType::Text => "text",
            SqlType::Date => "date",
            SqlType::Money => "numeric(18,2)",
            SqlType::Percent => "numeric(12,2)",
        }
    }

    /// Whether the column holds [`Money`].
    pub fn is_money(self) -> bool {
        matches!(self, SqlType::Money | SqlType::Percent)
    }

    /// The driver's type, for binary COPY.
    #[cfg(feature = "postgres")]
    pub fn pg_type(self) -> postgres_types::Type {
        use postgres_types::Type;
        match self {
            SqlType::Integer => Type::INT4,
            SqlType::BigInt => Type::INT8,
            SqlType::Text => Type::TEXT,
            SqlType::Date => Type::DATE,
            SqlType::Money | SqlType::Percent => Type::NUMERIC,
        }
    }
}

/// A column of a gold table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column's name.
    pub name: &'static str,
    /// Its type.
    pub sql_type: SqlType,
}

const fn col(name: &'static str, sql_type: SqlType) -> Column {
    Column { name, sql_type }
}

use SqlType::{BigInt, Date, Integer, Money as Numeric, Percent, Text};

const SALES_COUNTRY_YEAR: &[Column] = &[
    col("year", Integer),
    col("country", Text),
    col("total_sales", Numeric),
    col("total_quantity", BigInt),
    col("transactions", BigInt),
    col("customers", BigInt),
];

const TOP_PRODUCTS: &[Column] = &[
    col("scope", Text),
    col("rank", Integer),
    col("product_no", Text),
    col("product_name", Text),
    col("total_sales", Numeric),
    col("total_quantity", BigInt),
    col("transactions", BigInt),
];

const MONTHLY_SALES: &[Column] = &[
    col("month", Date),
    col("total_sales", Numeric),
    col("total_quantity", BigInt),
    col("transactions", BigInt),
    col("customers", BigInt),
    col("avg_transaction_value", Numeric),
    col("mom_growth_pct", Percent),
];

const CUSTOMER_LIFETIME_VALUE: &[Column] = &[
    col("customer_no", Text),
    col("first_name", Text),
    col("last_name", Text),
    col("country", Text),
    col("first_purchase", Date),
    col("last_purchase", Date),
    col("transactions", BigInt),
    col("total_quantity", BigInt),
    col("lifetime_value", Numeric),
    col("avg_transaction_value", Numeric),
    col("value_rank", Integer),
    col("value_quartile", Integer),
];

impl Datamart {
    /// All datamarts, in the order the job-runner builds them.
    pub const ALL: [Datamart; 4] = [
        Datamart::SalesCountryYear,
        Datamart::TopProducts,
        Datamart::MonthlySales,
        Datamart::CustomerLifetimeValue,
    ];

    /// The datamart's name on the command line, in CRs and in `gold_runs`.
    pub const fn name(self) -> &'static str {
        match self {
            Datamart::SalesCountryYear => "sales-country-year",
            Datamart::TopProducts => "top-products",
            Datamart::MonthlySales => "monthly-sales",
            Datamart::CustomerLifetimeValue => "customer-lifetime-value",
        }
    }

    /// The PostgreSQL table it is published to.
    pub const fn table(self) -> &'static str {
        match self {
            Datamart::SalesCountryYear => "gold_sales_country_year",
            Datamart::TopProducts => "gold_top_products",
            Datamart::MonthlySales => "gold_monthly_sales",
            Datamart::CustomerLifetimeValue => "gold_customer_lifetime_value",
        }
    }

    /// The last segment of its REST path under `/gold/`.
    pub const fn rest_path(self) -> &'static str {
        match self {
            Datamart::CustomerLifetimeValue => "customer-lifetime",
            other => other.name(),
        }
    }

    /// The table's columns, in the table's order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Datamart::SalesCountryYear => SALES_COUNTRY_YEAR,
            Datamart::TopProducts => TOP_PRODUCTS,
            Datamart::MonthlySales => MONTHLY_SALES,
            Datamart::CustomerLifetimeValue => CUSTOMER_LIFETIME_VALUE,
        }
    }

    /// The datamart with CLI name or table name `name`.
    pub fn from_name(name: &str) -> Option<Datamart> {
        Datamart::ALL
            .into_iter()
            .find(|d| d.name() == name || d.table() == name)
    }
}

impl std::fmt::Display for Datamart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A row of `gold_sales_country_year`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SalesCountryYear {
    /// Calendar year.
    pub year: i32,
    /// Country name.
    pub country: String,
    /// Sum of amounts.
    #[cfg_attr(feature = "openapi", schema(value_type = f64, example = 12345.67))]
    pub total_sales: Money,
    /// Sum of quantities.
    pub total_quantity: i64,
    /// Distinct transactions.
    pub transactions: i64,
    /// Distinct customers.
    pub customers: i64,
}

/// A row of `gold_top_products`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = f64, example = 12345.67))]
    pub total_sales: Money,
    /// Sum of quantities within the scope.
    pub total_quantity: i64,
    /// Distinct transactions within the scope.
    pub transactions: i64,
}

/// A row of `gold_monthly_sales`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MonthlySales {
    /// First day of the month.
    pub month: NaiveDate,
    /// Sum of amounts.
    #[cfg_attr(feature = "openapi", schema(value_type = f64, example = 12345.67))]
    pub total_sales: Money,
    /// Sum of quantities.
    pub total_quantity: i64,
    /// Distinct transactions.
    pub transactions: i64,
    /// Distinct customers.
    pub customers: i64,
    /// `total_sales / transactions`, rounded.
    #[cfg_attr(feature = "openapi", schema(value_type = f64, example = 321.5))]
    pub avg_transaction_value: Money,
    /// Growth against the previous calendar month, in percent; null when unknown.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>, example = 4.25))]
    pub mom_growth_pct: Option<Money>,
}

/// A row of `gold_customer_lifetime_value`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CustomerLifetime))]
pub struct CustomerLifetimeValue {
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
    #[cfg_attr(feature = "openapi", schema(value_type = f64, example = 12345.67))]
    pub lifetime_value: Money,
    /// `lifetime_value / transactions`, rounded.
    #[cfg_attr(feature = "openapi", schema(value_type = f64, example = 321.5))]
    pub avg_transaction_value: Money,
    /// 1 = most valuable customer (by value, then customer number).
    pub value_rank: i32,
    /// 1 (most valuable quarter) to 4.
    pub value_quartile: i32,
}

/// A row of `gold_runs`: one gold load.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Silver snapshot the datamart was built from.
    pub silver_snapshot_id: Option<String>,
    /// Error message of a failed run.
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tables_and_paths() {
        let shown: Vec<_> = Datamart::ALL
            .iter()
            .map(|d| (d.name(), d.table(), d.rest_path()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "sales-country-year",
                    "gold_sales_country_year",
                    "sales-country-year"
                ),
                ("top-products", "gold_top_products", "top-products"),
                ("monthly-sales", "gold_monthly_sales", "monthly-sales"),
                (
                    "customer-lifetime-value",
                    "gold_customer_lifetime_value",
                    "customer-lifetime"
                ),
            ]
        );
        for d in Datamart::ALL {
            assert_eq!(Datamart::from_name(d.name()), Some(d));
            assert_eq!(Datamart::from_name(d.table()), Some(d));
        }
        assert_eq!(Datamart::from_name("gold_runs"), None);
    }

    /// The migration that creates the tables must declare exactly these columns.
    #[test]
    fn columns_match_the_migration() {
        let sql = include_str!("../../job-runner/migrations/0001_gold.sql");
        for d in Datamart::ALL {
            let start = sql
                .find(&format!("CREATE TABLE IF NOT EXISTS {} (", d.table()))
                .unwrap();
            let body = &sql[start..];
            let body = &body[..body.find(");").unwrap()];
            let declared: Vec<String> = body
                .lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| !l.starts_with("PRIMARY KEY"))
                .map(|l| {
                    let l = l.trim_end_matches(',').trim_end_matches(" NOT NULL");
                    l.to_owned()
                })
                .collect();
            let expected: Vec<String> = d
                .columns()
                .iter()
                .map(|c| format!("{} {}", c.name, c.sql_type.declared()))
                .collect();
            assert_eq!(declared, expected, "{}", d.table());
        }
    }
}
