//! Key metadata for JDBC/ODBC-style clients (DBeaver's table properties, ER
//! diagrams): the gold tables' primary keys, and their foreign keys, of which
//! there are none. Result schemas follow the Flight SQL specification of
//! `CommandGetPrimaryKeys` and of the imported/exported/cross-reference commands.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::{Int32Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use crate::flight::catalog::{CATALOG, GoldTable};

static PRIMARY_KEYS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
});

static FOREIGN_KEYS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("pk_catalog_name", true),
        text("pk_db_schema_name", true),
        text("pk_table_name", false),
        text("pk_column_name", false),
        text("fk_catalog_name", true),
        text("fk_db_schema_name", true),
        text("fk_table_name", false),
        text("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        text("fk_key_name", true),
        text("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
});

/// The schema of a primary-keys result.
pub fn primary_keys_schema() -> SchemaRef {
    PRIMARY_KEYS.clone()
}

/// The schema of an imported-, exported- or cross-reference-keys result.
pub fn foreign_keys_schema() -> SchemaRef {
    FOREIGN_KEYS.clone()
}

/// Which table a primary-keys request names: catalog and schema are optional
/// filters (exact names, as in JDBC's `getPrimaryKeys`), the table is required.
#[derive(Debug, Clone, Copy)]
pub struct KeyRequest<'a> {
    /// Catalog filter.
    pub catalog: Option<&'a str>,
    /// Schema filter.
    pub db_schema: Option<&'a str>,
    /// Table name.
    pub table: &'a str,
}

/// The primary key columns of the requested table among `visible`, whose schema is
/// `db_schema`, one row per column in key order. Empty when the request names
/// another catalog or schema, or a table the caller may not see.
pub fn primary_keys(
    request: KeyRequest<'_>,
    db_schema: &str,
    visible: impl IntoIterator<Item = GoldTable>,
) -> Result<RecordBatch, ArrowError> {
    let in_scope = request.catalog.is_none_or(|c| c == CATALOG)
        && request.db_schema.is_none_or(|s| s == db_schema);
    let table = in_scope
        .then(|| visible.into_iter().find(|t| t.name() == request.table))
        .flatten();
    let columns = table.map_or(&[][..], GoldTable::primary_key);
    let mut catalogs = StringBuilder::new();
    let mut schemas = StringBuilder::new();
    let mut tables = StringBuilder::new();
    let mut names = StringBuilder::new();
    let mut key_names = StringBuilder::new();
    let mut sequence = Int32Builder::new();
    for (position, column) in (1..).zip(columns) {
        catalogs.append_value(CATALOG);
        schemas.append_value(db_schema);
        tables.append_value(request.table);
        names.append_value(column);
        // PostgreSQL's default name of a table's primary key constraint.
        key_names.append_value(format!("{}_pkey", request.table));
        sequence.append_value(position);
    }
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(catalogs.finish()),
        Arc::new(schemas.finish()),
        Arc::new(tables.finish()),
        Arc::new(names.finish()),
        Arc::new(key_names.finish()),
        Arc::new(sequence.finish()),
    ];
    RecordBatch::try_new(primary_keys_schema(), arrays)
}

/// Foreign keys between gold tables: none (each datamart stands alone).
pub fn no_foreign_keys() -> RecordBatch {
    RecordBatch::new_empty(foreign_keys_schema())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, StringArray};

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> Vec<&'a str> {
        let array = batch.column_by_name(name).unwrap();
        let strings = array.as_any().downcast_ref::<StringArray>().unwrap();
        strings.iter().map(Option::unwrap).collect()
    }

    fn request(table: &str) -> KeyRequest<'_> {
        KeyRequest {
            catalog: None,
            db_schema: None,
            table,
        }
    }

    #[test]
    fn composite_keys_come_in_key_order() {
        let batch = primary_keys(request("gold_top_products"), "public", GoldTable::ALL).unwrap();
        assert_eq!(column(&batch, "column_name"), ["scope", "rank"]);
        assert_eq!(column(&batch, "key_name"), ["gold_top_products_pkey"; 2]);
        let seq = batch
            .column(5)
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        assert_eq!(seq.values(), &[1, 2]);
        assert_eq!(column(&batch, "db_schema_name"), ["public", "public"]);
    }

    #[test]
    fn other_catalogs_schemas_and_hidden_tables_have_no_keys() {
        let other_schema = KeyRequest {
            db_schema: Some("silver"),
            ..request("gold_monthly_sales")
        };
        assert_eq!(
            primary_keys(other_schema, "public", GoldTable::ALL)
                .unwrap()
                .num_rows(),
            0
        );
        let other_catalog = KeyRequest {
            catalog: Some("postgres"),
            ..request("gold_monthly_sales")
        };
        assert_eq!(
            primary_keys(other_catalog, "public", GoldTable::ALL)
                .unwrap()
                .num_rows(),
            0
        );
        let viewer = GoldTable::visible_to(crate::users::Role::Viewer);
        assert_eq!(
            primary_keys(request("gold_runs"), "public", viewer)
                .unwrap()
                .num_rows(),
            0
        );
        assert_eq!(
            primary_keys(request("gold_runs"), "public", GoldTable::ALL)
                .unwrap()
                .num_rows(),
            2
        );
    }
}
