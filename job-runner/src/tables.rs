//! The four tables of the contract: their source files, columns and raw schema.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// A table of the lake, one per source file (docs/data-format.md, "Source files").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `countries.csv`: CountryID, CountryName.
    Countries,
    /// `customers.csv`: CustomerNo, FirstName, LastName, Email, CountryID.
    Customers,
    /// `products.csv`: ProductNo, ProductName.
    Products,
    /// `transactions.csv`: TransactionNo, Date, ProductNo, CustomerNo, Quantity, Price.
    Transactions,
}

/// Name of the raw column holding the source file name.
pub const SOURCE_FILE_COLUMN: &str = "_source_file";
/// Name of the raw column holding the 1-based record number in the source file.
pub const LINE_COLUMN: &str = "_line";

impl Table {
    /// All tables, in the order the silver rules need them (references first).
    pub const ALL: [Table; 4] = [
        Table::Countries,
        Table::Customers,
        Table::Products,
        Table::Transactions,
    ];

    /// The table's name in the lake (`countries`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Table::Countries => "countries",
            Table::Customers => "customers",
            Table::Products => "products",
            Table::Transactions => "transactions",
        }
    }

    /// The source file the table is fed from.
    pub fn file_name(self) -> &'static str {
        match self {
            Table::Countries => "countries.csv",
            Table::Customers => "customers.csv",
            Table::Products => "products.csv",
            Table::Transactions => "transactions.csv",
        }
    }

    /// The contract's columns, in the contract's order; raw columns use these names.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Countries => &["CountryID", "CountryName"],
            Table::Customers => &["CustomerNo", "FirstName", "LastName", "Email", "CountryID"],
            Table::Products => &["ProductNo", "ProductName"],
            Table::Transactions => &[
                "TransactionNo",
                "Date",
                "ProductNo",
                "CustomerNo",
                "Quantity",
                "Price",
            ],
        }
    }

    /// The silver column names of a keyed table (the contract's columns in
    /// snake case, same order). Transactions have their own typed schema.
    pub fn silver_columns(self) -> &'static [&'static str] {
        match self {
            Table::Countries => &["country_id", "country_name"],
            Table::Customers => &[
                "customer_no",
                "first_name",
                "last_name",
                "email",
                "country_id",
            ],
            Table::Products => &["product_no", "product_name"],
            Table::Transactions => &[
                "transaction_no",
                "date",
                "product_no",
                "customer_no",
                "quantity",
                "price",
                "amount",
            ],
        }
    }

    /// The raw layer's schema: every contract column as nullable text, then
    /// `_source_file` and `_line`.
    pub fn raw_schema(self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns()
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect();
        fields.push(Field::new(SOURCE_FILE_COLUMN, DataType::Utf8, false));
        fields.push(Field::new(LINE_COLUMN, DataType::Int64, false));
        Arc::new(Schema::new(fields))
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
