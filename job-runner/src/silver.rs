//! Stage `preprocess`: the raw layer refined into silver (docs/data-format.md,
//! "Silver layer").
//!
//! Keyed tables (countries, customers, products) are small: they are gathered
//! whole, then the rules run in the contract's order. Transactions grow with
//! the lake, so they never are held whole: rules 1 to 9 run on every core over
//! the raw rows as they stream in; the rows that pass (the candidates) go
//! through one DataFusion query, `row_number()` over the copies of each parsed
//! line in (ingest date, line) order, whose sort spills to disk under the
//! run's memory limit; the first copy is kept, the others are `duplicate_row`.
//! Each of the query's partitions then writes its own silver files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, Date32Builder, Decimal128Builder, Int32Builder, Int64Array,
    Int64Builder, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::array::{BooleanBuilder, UInt64Array};
use datafusion::arrow::compute::filter;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Partitioning, lit};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlanProperties, SendableRecordBatchStream};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionConfig};
use futures::StreamExt;
use object_store::ObjectMeta;
use tokio::sync::mpsc;

use crate::report::{Progress, StageReport, timestamp};
use crate::resources::{Engine, spilled_bytes};
use crate::rules;
use crate::snapshot::{Snapshot, SnapshotError, TableFiles};
use crate::storage::{ParquetFileWriter, Storage, StorageError};
use crate::tables::{LINE_COLUMN, SOURCE_FILE_COLUMN, Table};

/// Reject reasons of silver (docs/data-format.md, "Rules and reject reasons").
pub mod reason {
    /// A required column is NULL.
    pub const MISSING_REQUIRED: &str = "missing_required";
    /// An older or earlier row of a key that has a later one.
    pub const DUPLICATE_KEY: &str = "duplicate_key";
    /// Not exactly one `@` with text on both sides.
    pub const BAD_EMAIL: &str = "bad_email";
    /// A customer whose country is not a silver country.
    pub const UNKNOWN_COUNTRY: &str = "unknown_country";
    /// Not an `M/d/yyyy` calendar date.
    pub const BAD_DATE: &str = "bad_date";
    /// Not a 32-bit integer.
    pub const BAD_QUANTITY: &str = "bad_quantity";
    /// Not a decimal with at most 2 fraction and 10 integer digits.
    pub const BAD_PRICE: &str = "bad_price";
    /// A transaction number starting with `C`.
    pub const CANCELLATION: &str = "cancellation";
    /// Quantity <= 0.
    pub const NON_POSITIVE_QUANTITY: &str = "non_positive_quantity";
    /// Price <= 0.
    pub const NON_POSITIVE_PRICE: &str = "non_positive_price";
    /// A product that is not a silver product.
    pub const UNKNOWN_PRODUCT: &str = "unknown_product";
    /// A customer that is not a silver customer.
    pub const UNKNOWN_CUSTOMER: &str = "unknown_customer";
    /// The same parsed line was already kept.
    pub const DUPLICATE_ROW: &str = "duplicate_row";
}

/// Column of the rejects tables holding the raw row's ingest date.
pub const INGEST_DATE_COLUMN: &str = "_ingest_date";

/// Rows per Arrow batch written to silver.
const BATCH_ROWS: usize = 64 * 1024;

/// Why preprocessing failed.
#[derive(Debug, thiserror::Error)]
pub enum SilverError {
    /// The lake could not be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The snapshot could not be published.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A raw Parquet file could not be read.
    #[error("reading {location}: {source}")]
    Read {
        /// The file.
        location: String,
        /// DataFusion's error.
        #[source]
        source: DataFusionError,
    },
    /// A raw file lacks a column the raw layer always has.
    #[error("{location}: column {column} is missing or not of the raw layer's type")]
    RawColumn {
        /// The file.
        location: String,
        /// The column.
        column: String,
    },
    /// A table has no raw partition at all.
    #[error("the lake has no raw {0}: feed it first (`aurum-job-runner feed`)")]
    NoRawData(Table),
    /// quantity * price does not fit numeric(18,2).
    #[error("{location} line {line}: amount {quantity} * {price} does not fit numeric(18,2)")]
    AmountOverflow {
        /// The raw file.
        location: String,
        /// The record number.
        line: i64,
        /// The quantity.
        quantity: i32,
        /// The price text.
        price: String,
    },
    /// A background task died.
    #[error("the raw reader of {0} stopped unexpectedly")]
    ReaderGone(Table),
    /// The silver writer of a table stopped (its error is the cause).
    #[error("writing silver {0} stopped unexpectedly")]
    WriterGone(Table),
    /// A row that passed the rules failed them when read back.
    #[error("{location} line {line}: passed the rules, then failed {reason} when read back")]
    Inconsistent {
        /// The raw file.
        location: String,
        /// The record number.
        line: i64,
        /// The rule.
        reason: &'static str,
    },
}

/// What a preprocess run published.
#[derive(Debug)]
pub struct SilverOutcome {
    /// The new current snapshot.
    pub snapshot: Snapshot,
    /// One report per table.
    pub reports: Vec<StageReport>,
}

/// Rebuilds silver from all raw partitions and publishes it as snapshot `run_id`,
/// keeping earlier snapshots' files for `grace` (see [`Snapshot::publish`]).
pub async fn preprocess(
    lake: &Storage,
    run_id: &str,
    grace: std::time::Duration,
    engine: &Engine,
) -> Result<SilverOutcome, SilverError> {
    let mut snapshot = Snapshot {
        snapshot_id: run_id.to_owned(),
        created_at: String::new(),
        tables: BTreeMap::new(),
        rejects: BTreeMap::new(),
        retained: Vec::new(),
    };
    let countries = clean_keyed(lake, Table::Countries, &KeyedRules::countries(), engine).await?;
    let country_ids = countries.keys();
    let customers = clean_keyed(
        lake,
        Table::Customers,
        &KeyedRules::customers(&country_ids),
        engine,
    )
    .await?;
    let customer_nos = Arc::new(customers.keys());
    let products = clean_keyed(lake, Table::Products, &KeyedRules::products(), engine).await?;
    let product_nos = Arc::new(products.keys());

    // Writing the keyed tables overlaps cleaning the transactions: on HDFS
    // each small file costs round trips that would otherwise add up.
    // All four end before an error is returned (no write left running).
    let [mut c, mut u, mut p, mut t] = std::array::from_fn(|_| snapshot.clone());
    let written = futures::join!(
        countries.write(lake, &mut c),
        customers.write(lake, &mut u),
        products.write(lake, &mut p),
        clean_transactions(lake, &product_nos, &customer_nos, &mut t, engine),
    );
    let reports = vec![written.0?, written.1?, written.2?, written.3?];
    for part in [c, u, p, t] {
        snapshot.tables.extend(part.tables);
        snapshot.rejects.extend(part.rejects);
    }

    snapshot.created_at = timestamp(Utc::now());
    snapshot.publish(lake, grace).await?;
    tracing::info!(snapshot = %snapshot.snapshot_id, "silver snapshot published");
    Ok(SilverOutcome { snapshot, reports })
}

/// A raw partition: one table's file for one ingest date.
struct RawPartition {
    ingest_date: String,
    object: ObjectMeta,
}

async fn raw_partitions(lake: &Storage, table: Table) -> Result<Vec<RawPartition>, SilverError> {
    let mut partitions: Vec<RawPartition> = lake
        .list(&format!("raw/{table}"))
        .await?
        .into_iter()
        .filter_map(|object| {
            let relative = lake.relative(&object.location);
            let rest = relative.strip_prefix(&format!("raw/{table}/ingest_date="))?;
            let date = rest.strip_suffix("/data.parquet")?;
            NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
            Some(RawPartition {
                ingest_date: date.to_owned(),
                object,
            })
        })
        .collect();
    if partitions.is_empty() {
        return Err(SilverError::NoRawData(table));
    }
    partitions.sort_by(|a, b| a.ingest_date.cmp(&b.ingest_date));
    Ok(partitions)
}

type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch, SilverError>>;

/// Streams a raw partition's batches in file order (one DataFusion partition,
/// so record order, which the contract's "later line wins" needs, is kept).
async fn read_partition(
    lake: &Storage,
    partition: &RawPartition,
    engine: &Engine,
) -> Result<BatchStream, SilverError> {
    let location = lake.object_url(&partition.object.location);
    let read_error = {
        let location = location.clone();
        move |source| SilverError::Read {
            location: location.clone(),
            source,
        }
    };
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(BATCH_ROWS);
    let ctx = engine.session(config);
    lake.register(&ctx);
    let stream = ctx
        .read_parquet(location.as_str(), ParquetReadOptions::default())
        .await
        .map_err(&read_error)?
        .execute_stream()
        .await
        .map_err(&read_error)?;
    Ok(stream.map(move |batch| batch.map_err(&read_error)).boxed())
}

/// The columns of a raw batch, found by name.
struct RawColumns<'a> {
    values: Vec<&'a StringArray>,
    source_file: &'a StringArray,
    line: &'a Int64Array,
}

impl<'a> RawColumns<'a> {
    fn of(
        batch: &'a RecordBatch,
        table: Table,
        location: &str,
    ) -> Result<RawColumns<'a>, SilverError> {
        let missing = |column: &str| SilverError::RawColumn {
            location: location.to_owned(),
            column: column.to_owned(),
        };
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| missing(name))
        };
        let values = table
            .columns()
            .iter()
            .map(|c| text(c))
            .collect::<Result<Vec<_>, _>>()?;
        let source_file = text(SOURCE_FILE_COLUMN)?;
        let line = batch
            .column_by_name(LINE_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| missing(LINE_COLUMN))?;
        Ok(RawColumns {
            values,
            source_file,
            line,
        })
    }

    fn value(&self, column: usize, row: usize) -> Option<&'a str> {
        let array = self.values[column];
        if array.is_null(row) {
            None
        } else {
            Some(array.value(row))
        }
    }
}

/// One raw row of a keyed table, owned.
struct RawRow {
    ingest_date: Arc<str>,
    source_file: String,
    line: i64,
    values: Vec<Option<String>>,
}

impl RawRow {
    fn value(&self, column: usize) -> Option<&str> {
        self.values[column].as_deref()
    }
}

/// The rules of one keyed table, as column positions in the contract's order.
struct KeyedRules<'a> {
    table: Table,
    key: usize,
    required: &'static [usize],
    /// Rules between `missing_required` and `duplicate_key` (customers' email).
    row_rule: Option<fn(&RawRow) -> Option<&'static str>>,
    /// The rule applied to each winning row after `duplicate_key`.
    winner_rule: Option<(usize, &'a HashSet<String>, &'static str)>,
}

impl<'a> KeyedRules<'a> {
    fn countries() -> KeyedRules<'static> {
        KeyedRules {
            table: Table::Countries,
            key: 0,
            required: &[0, 1],
            row_rule: None,
            winner_rule: None,
        }
    }

    fn customers(country_ids: &'a HashSet<String>) -> KeyedRules<'a> {
        KeyedRules {
            table: Table::Customers,
            key: 0,
            required: &[0, 3],
            row_rule: Some(|row| {
                let email = row.value(3).unwrap_or_default();
                (!rules::is_valid_email(email)).then_some(reason::BAD_EMAIL)
            }),
            winner_rule: Some((4, country_ids, reason::UNKNOWN_COUNTRY)),
        }
    }

    fn products() -> KeyedRules<'static> {
        KeyedRules {
            table: Table::Products,
            key: 0,
            required: &[0, 1],
            row_rule: None,
            winner_rule: None,
        }
    }
}

/// A keyed table after the rules: the rows kept and the rows rejected.
struct CleanedKeyed {
    table: Table,
    key: usize,
    kept: Vec<RawRow>,
    rejected: Vec<(RawRow, &'static str)>,
    report: StageReport,
    progress: Progress,
}

async fn clean_keyed(
    lake: &Storage,
    table: Table,
    rules: &KeyedRules<'_>,
    engine: &Engine,
) -> Result<CleanedKeyed, SilverError> {
    let mut report = StageReport::new("preprocess", table.name());
    let progress = Progress::new("preprocess", table.name());
    let mut rows = Vec::new();
    for partition in raw_partitions(lake, table).await? {
        report.bytes_read += partition.object.size;
        let ingest_date: Arc<str> = Arc::from(partition.ingest_date.as_str());
        let location = lake.object_url(&partition.object.location);
        let mut batches = read_partition(lake, &partition, engine).await?;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let columns = RawColumns::of(&batch, table, &location)?;
            for row in 0..batch.num_rows() {
                rows.push(RawRow {
                    ingest_date: Arc::clone(&ingest_date),
                    source_file: columns.source_file.value(row).to_owned(),
                    line: columns.line.value(row),
                    values: (0..table.columns().len())
                        .map(|c| columns.value(c, row).map(str::to_owned))
                        .collect(),
                });
            }
        }
    }
    report.rows_read = rows.len() as u64;
    let (kept, rejected) = apply_keyed_rules(rows, rules);
    Ok(CleanedKeyed {
        table: rules.table,
        key: rules.key,
        kept,
        rejected,
        report,
        progress,
    })
}

/// Applies a keyed table's rules in the contract's order: required columns and
/// row rules, then `duplicate_key` (the latest row by ingest date, then line,
/// wins among the rows that passed), then the winner rule. Kept rows come out
/// sorted by key.
fn apply_keyed_rules(
    mut rows: Vec<RawRow>,
    rules: &KeyedRules<'_>,
) -> (Vec<RawRow>, Vec<(RawRow, &'static str)>) {
    rows.sort_by(|a, b| (&a.ingest_date, a.line).cmp(&(&b.ingest_date, b.line)));
    let mut rejected = Vec::new();
    let mut candidates = Vec::with_capacity(rows.len());
    for row in rows {
        let failed = if rules.required.iter().any(|&c| row.value(c).is_none()) {
            Some(reason::MISSING_REQUIRED)
        } else {
            rules.row_rule.and_then(|rule| rule(&row))
        };
        match failed {
            Some(why) => rejected.push((row, why)),
            None => candidates.push(row),
        }
    }
    let mut latest: HashMap<&str, usize> = HashMap::with_capacity(candidates.len());
    for (index, row) in candidates.iter().enumerate() {
        latest.insert(row.value(rules.key).unwrap_or_default(), index);
    }
    let winners: HashSet<usize> = latest.into_values().collect();
    let mut kept = Vec::with_capacity(winners.len());
    for (index, row) in candidates.into_iter().enumerate() {
        if !winners.contains(&index) {
            rejected.push((row, reason::DUPLICATE_KEY));
            continue;
        }
        match rules.winner_rule {
            Some((column, known, why)) if !row.value(column).is_some_and(|v| known.contains(v)) => {
                rejected.push((row, why));
            }
            _ => kept.push(row),
        }
    }
    kept.sort_by(|a, b| a.value(rules.key).cmp(&b.value(rules.key)));
    (kept, rejected)
}

impl CleanedKeyed {
    fn keys(&self) -> HashSet<String> {
        self.kept
            .iter()
            .filter_map(|row| row.value(self.key).map(str::to_owned))
            .collect()
    }

    async fn write(
        mut self,
        lake: &Storage,
        snapshot: &mut Snapshot,
    ) -> Result<StageReport, SilverError> {
        let table = self.table;
        let id = &snapshot.snapshot_id;
        let schema = keyed_silver_schema(table);
        let path = format!("silver/{table}/snapshot={id}/part-{id}.parquet");
        let mut writer = lake.parquet_writer(&lake.path(&path), Arc::clone(&schema))?;
        for chunk in self.kept.chunks(BATCH_ROWS) {
            let arrays: Vec<ArrayRef> = (0..table.columns().len())
                .map(|c| {
                    Arc::new(
                        chunk
                            .iter()
                            .map(|row| row.value(c))
                            .collect::<StringArray>(),
                    ) as ArrayRef
                })
                .collect();
            let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)
                .expect("silver batch matches its schema");
            writer.write(&batch).await?;
        }
        self.report.rows_written = writer.rows();
        self.report.bytes_written += writer.close().await?;
        snapshot.tables.insert(
            table.name().to_owned(),
            TableFiles {
                files: vec![path],
                rows: self.report.rows_written,
            },
        );

        let mut rejects = RejectRows::new(table);
        for (row, why) in &self.rejected {
            self.report.reject(why);
            rejects.push(
                (0..table.columns().len()).map(|c| row.value(c)),
                &row.ingest_date,
                &row.source_file,
                row.line,
                why,
            );
        }
        let rejects_path = format!("silver/_rejects/{table}/snapshot={id}/part-{id}.parquet");
        let mut writer = lake.parquet_writer(&lake.path(&rejects_path), reject_schema(table))?;
        writer.write(&rejects.finish()).await?;
        self.report.bytes_written += writer.close().await?;
        snapshot.rejects.insert(
            table.name().to_owned(),
            TableFiles {
                files: vec![rejects_path],
                rows: self.report.rows_rejected,
            },
        );
        self.report
            .finish(self.progress.elapsed(), self.progress.cpu());
        Ok(self.report)
    }
}

/// The silver schema of a keyed table: its columns in snake case, all text.
pub fn keyed_silver_schema(table: Table) -> SchemaRef {
    Arc::new(Schema::new(
        table
            .silver_columns()
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// The silver schema of transactions.
pub fn transactions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("transaction_no", DataType::Utf8, false),
        Field::new("date", DataType::Date32, false),
        Field::new("product_no", DataType::Utf8, false),
        Field::new("customer_no", DataType::Utf8, false),
        Field::new("quantity", DataType::Int32, false),
        Field::new("price", DataType::Decimal128(12, 2), false),
        Field::new("amount", DataType::Decimal128(18, 2), false),
    ]))
}

/// The schema of a table's silver rejects: the raw values and the reason.
pub fn reject_schema(table: Table) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .columns()
        .iter()
        .map(|c| Field::new(*c, DataType::Utf8, true))
        .collect();
    fields.push(Field::new(INGEST_DATE_COLUMN, DataType::Utf8, false));
    fields.push(Field::new(SOURCE_FILE_COLUMN, DataType::Utf8, false));
    fields.push(Field::new(LINE_COLUMN, DataType::Int64, false));
    fields.push(Field::new("reason", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// Rejected rows being gathered into a batch.
struct RejectRows {
    table: Table,
    values: Vec<StringBuilder>,
    ingest_date: StringBuilder,
    source_file: StringBuilder,
    line: Int64Builder,
    reason: StringBuilder,
}

impl RejectRows {
    fn new(table: Table) -> RejectRows {
        RejectRows {
            table,
            values: table
                .columns()
                .iter()
                .map(|_| StringBuilder::new())
                .collect(),
            ingest_date: StringBuilder::new(),
            source_file: StringBuilder::new(),
            line: Int64Builder::new(),
            reason: StringBuilder::new(),
        }
    }

    fn len(&self) -> usize {
        self.line.len()
    }

    fn push<'v>(
        &mut self,
        values: impl Iterator<Item = Option<&'v str>>,
        ingest_date: &str,
        source_file: &str,
        line: i64,
        reason: &str,
    ) {
        for (builder, value) in self.values.iter_mut().zip(values) {
            builder.append_option(value);
        }
        self.ingest_date.append_value(ingest_date);
        self.source_file.append_value(source_file);
        self.line.append_value(line);
        self.reason.append_value(reason);
    }

    fn finish(&mut self) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = self
            .values
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        arrays.push(Arc::new(self.ingest_date.finish()));
        arrays.push(Arc::new(self.source_file.finish()));
        arrays.push(Arc::new(self.line.finish()));
        arrays.push(Arc::new(self.reason.finish()));
        RecordBatch::try_new(reject_schema(self.table), arrays)
            .expect("reject batch matches its schema")
    }
}

/// A 128-bit fingerprint of a parsed transaction line, for `duplicate_row`.
/// The separator byte 0xff never occurs in UTF-8, so fields cannot run together.
fn fingerprint(
    buffer: &mut Vec<u8>,
    no: &str,
    date: i32,
    product: &str,
    customer: &str,
    quantity: i32,
    price: i64,
) -> u128 {
    buffer.clear();
    buffer.extend_from_slice(no.as_bytes());
    buffer.push(0xff);
    buffer.extend_from_slice(&date.to_le_bytes());
    buffer.extend_from_slice(product.as_bytes());
    buffer.push(0xff);
    buffer.extend_from_slice(customer.as_bytes());
    buffer.push(0xff);
    buffer.extend_from_slice(&quantity.to_le_bytes());
    buffer.extend_from_slice(&price.to_le_bytes());
    twox_hash::XxHash3_128::oneshot(buffer)
}

/// Silver transaction rows of one month, being gathered into a batch.
struct MonthRows {
    path: String,
    writer: ParquetFileWriter,
    transaction_no: StringBuilder,
    date: Date32Builder,
    product_no: StringBuilder,
    customer_no: StringBuilder,
    quantity: Int32Builder,
    price: Decimal128Builder,
    amount: Decimal128Builder,
}

impl MonthRows {
    /// Rows of `year`/`month` for the file named `file` (relative to the
    /// month's folder, without `.parquet`).
    fn new(lake: &Storage, file: &str, year: i32, month: u32) -> Result<MonthRows, SilverError> {
        let path = format!("silver/transactions/year={year}/month={month}/{file}.parquet");
        let writer = lake.parquet_writer(&lake.path(&path), transactions_schema())?;
        Ok(MonthRows {
            path,
            writer,
            transaction_no: StringBuilder::new(),
            date: Date32Builder::new(),
            product_no: StringBuilder::new(),
            customer_no: StringBuilder::new(),
            quantity: Int32Builder::new(),
            price: Decimal128Builder::new().with_data_type(DataType::Decimal128(12, 2)),
            amount: Decimal128Builder::new().with_data_type(DataType::Decimal128(18, 2)),
        })
    }

    fn len(&self) -> usize {
        self.quantity.len()
    }

    async fn flush(&mut self) -> Result<(), SilverError> {
        if self.len() == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(self.transaction_no.finish()),
            Arc::new(self.date.finish()),
            Arc::new(self.product_no.finish()),
            Arc::new(self.customer_no.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.price.finish()),
            Arc::new(self.amount.finish()),
        ];
        let batch = RecordBatch::try_new(transactions_schema(), arrays)
            .expect("silver batch matches its schema");
        self.writer.write(&batch).await?;
        Ok(())
    }
}

/// Column of the candidates: the parsed date (duplicates share it, and the
/// query's output then comes month by month).
const DAY_COLUMN: &str = "_day";
/// Columns of the candidates: the two halves of the parsed line's fingerprint.
const FP_HI_COLUMN: &str = "_fp_hi";
const FP_LO_COLUMN: &str = "_fp_lo";
/// Column of the query's output: the copy's position among its duplicates.
const COPY_COLUMN: &str = "_copy";

/// The schema of the candidates: the raw row, where it comes from, and what
/// identifies its parsed values.
fn candidate_schema() -> SchemaRef {
    let raw = Table::Transactions.raw_schema();
    let mut fields: Vec<Field> = raw.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(INGEST_DATE_COLUMN, DataType::Utf8, false));
    fields.push(Field::new(DAY_COLUMN, DataType::Date32, false));
    fields.push(Field::new(FP_HI_COLUMN, DataType::Int64, false));
    fields.push(Field::new(FP_LO_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// The `duplicate_row` query: each candidate with its position among the
/// copies of its parsed line, earliest (ingest date, then line) first. The
/// partition key starts with the date, so each output partition comes sorted
/// by date: its silver files are written one month at a time.
fn duplicate_row_sql() -> String {
    let raw = Table::Transactions.raw_schema();
    let columns: Vec<String> = raw
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .chain([format!("\"{INGEST_DATE_COLUMN}\"")])
        .collect();
    format!(
        "SELECT {columns}, row_number() OVER (PARTITION BY \"{DAY_COLUMN}\", \"{FP_HI_COLUMN}\", \"{FP_LO_COLUMN}\" \
         ORDER BY \"{INGEST_DATE_COLUMN}\", \"{LINE_COLUMN}\") AS \"{COPY_COLUMN}\" FROM candidates",
        columns = columns.join(", ")
    )
}

/// One partition of the candidates: the batches a rules task sends.
struct CandidateStream {
    schema: SchemaRef,
    batches: std::sync::Mutex<Option<mpsc::Receiver<datafusion::error::Result<RecordBatch>>>>,
}

impl std::fmt::Debug for CandidateStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CandidateStream")
    }
}

impl PartitionStream for CandidateStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let receiver = self.batches.lock().map(|mut r| r.take()).unwrap_or(None);
        let stream: futures::stream::BoxStream<'static, _> = match receiver {
            Some(mut receiver) => {
                futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
            }
            // The plan runs once: a second execution is a bug, not data.
            None => futures::stream::once(async {
                Err(DataFusionError::Internal(
                    "silver candidates read twice".to_owned(),
                ))
            })
            .boxed(),
        };
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

/// What one task counted.
#[derive(Default)]
struct Counts {
    read: u64,
    written: u64,
    bytes_written: u64,
    rejects: BTreeMap<&'static str, u64>,
    files: Vec<String>,
}

impl Counts {
    fn reject(&mut self, why: &'static str) {
        *self.rejects.entry(why).or_default() += 1;
    }

    fn add(&mut self, other: Counts, report: &mut StageReport) {
        self.read += other.read;
        self.written += other.written;
        self.bytes_written += other.bytes_written;
        self.files.extend(other.files);
        for (why, count) in other.rejects {
            report.rows_rejected += count;
            *report.rejects.entry(why.to_owned()).or_default() += count;
        }
    }
}

/// What a transactions task needs, shared.
struct TransactionRules {
    products: Arc<HashSet<String>>,
    customers: Arc<HashSet<String>>,
    /// Raw file URL per ingest date, for error messages.
    locations: HashMap<String, String>,
    rejects: mpsc::Sender<RecordBatch>,
}

impl TransactionRules {
    fn location(&self, ingest_date: &str) -> String {
        self.locations
            .get(ingest_date)
            .cloned()
            .unwrap_or_else(|| format!("raw transactions of {ingest_date}"))
    }

    async fn send_rejects(
        &self,
        rejects: &mut RejectRows,
        at_least: usize,
    ) -> Result<(), SilverError> {
        if rejects.len() >= at_least.max(1) {
            self.rejects
                .send(rejects.finish())
                .await
                .map_err(|_| SilverError::WriterGone(Table::Transactions))?;
        }
        Ok(())
    }
}

fn query_error(source: DataFusionError) -> SilverError {
    SilverError::Read {
        location: "raw transactions".to_owned(),
        source,
    }
}

/// Rules 1 to 9 over one partition of the raw rows: rejects go to the rejects
/// writer, the rows that pass to the `duplicate_row` query with their fingerprint.
async fn check_partition(
    mut raw: SendableRecordBatchStream,
    rules: Arc<TransactionRules>,
    candidates: mpsc::Sender<datafusion::error::Result<RecordBatch>>,
) -> Result<Counts, SilverError> {
    let table = Table::Transactions;
    let schema = candidate_schema();
    let mut counts = Counts::default();
    let mut rejects = RejectRows::new(table);
    let mut scratch = Vec::with_capacity(128);
    while let Some(batch) = raw.next().await {
        let batch = batch.map_err(query_error)?;
        let ingest = batch
            .column_by_name(INGEST_DATE_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| SilverError::RawColumn {
                location: "raw transactions".to_owned(),
                column: INGEST_DATE_COLUMN.to_owned(),
            })?;
        let location = rules.location(if batch.num_rows() > 0 {
            ingest.value(0)
        } else {
            ""
        });
        let columns = RawColumns::of(&batch, table, &location)?;
        let mut keep = BooleanBuilder::with_capacity(batch.num_rows());
        let mut day = Date32Builder::with_capacity(batch.num_rows());
        let mut fp_hi = Int64Builder::with_capacity(batch.num_rows());
        let mut fp_lo = Int64Builder::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            counts.read += 1;
            let value = |c| columns.value(c, row);
            match check_transaction(
                [value(0), value(1), value(2), value(3), value(4), value(5)],
                &rules.products,
                &rules.customers,
            ) {
                Ok(parsed) => {
                    let print = fingerprint(
                        &mut scratch,
                        parsed.transaction_no,
                        parsed.date,
                        parsed.product_no,
                        parsed.customer_no,
                        parsed.quantity,
                        parsed.price,
                    );
                    keep.append_value(true);
                    day.append_value(parsed.date);
                    fp_hi.append_value((print >> 64) as i64);
                    fp_lo.append_value(print as i64);
                }
                Err(why) => {
                    keep.append_value(false);
                    counts.reject(why);
                    rejects.push(
                        (0..6).map(value),
                        ingest.value(row),
                        columns.source_file.value(row),
                        columns.line.value(row),
                        why,
                    );
                }
            }
        }
        rules.send_rejects(&mut rejects, BATCH_ROWS).await?;
        let keep = keep.finish();
        let mut arrays = Vec::with_capacity(schema.fields().len());
        for field in table.raw_schema().fields() {
            let column =
                batch
                    .column_by_name(field.name())
                    .ok_or_else(|| SilverError::RawColumn {
                        location: location.clone(),
                        column: field.name().clone(),
                    })?;
            arrays.push(filter(column, &keep).map_err(|e| query_error(e.into()))?);
        }
        arrays.push(filter(ingest, &keep).map_err(|e| query_error(e.into()))?);
        arrays.push(Arc::new(day.finish()) as ArrayRef);
        arrays.push(Arc::new(fp_hi.finish()) as ArrayRef);
        arrays.push(Arc::new(fp_lo.finish()) as ArrayRef);
        let kept =
            RecordBatch::try_new(Arc::clone(&schema), arrays).map_err(|e| query_error(e.into()))?;
        if kept.num_rows() > 0 && candidates.send(Ok(kept)).await.is_err() {
            // The query stopped (its error is the cause): nothing to add.
            return Ok(counts);
        }
    }
    rules.send_rejects(&mut rejects, 1).await?;
    Ok(counts)
}

/// One partition of the `duplicate_row` query's output: first copies become
/// silver rows (in files of this partition, one month after the other), the
/// others are rejected as `duplicate_row`.
async fn write_partition(
    mut copies: SendableRecordBatchStream,
    rules: Arc<TransactionRules>,
    lake: Storage,
    file: String,
) -> Result<Counts, SilverError> {
    let table = Table::Transactions;
    let mut counts = Counts::default();
    let mut rejects = RejectRows::new(table);
    let mut month: Option<((i32, u32), MonthRows)> = None;
    // Months this partition already closed a file of: a month seen again
    // (only if the output were not sorted by date) gets a further file.
    let mut written: HashMap<(i32, u32), usize> = HashMap::new();
    while let Some(batch) = copies.next().await {
        let batch = batch.map_err(query_error)?;
        let columns = RawColumns::of(&batch, table, "the duplicate_row query")?;
        let ingest = batch
            .column_by_name(INGEST_DATE_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let copy = batch
            .column_by_name(COPY_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>());
        let (Some(ingest), Some(copy)) = (ingest, copy) else {
            return Err(SilverError::RawColumn {
                location: "the duplicate_row query".to_owned(),
                column: COPY_COLUMN.to_owned(),
            });
        };
        for row in 0..batch.num_rows() {
            let value = |c| columns.value(c, row);
            let line = columns.line.value(row);
            if copy.value(row) > 1 {
                counts.reject(reason::DUPLICATE_ROW);
                rejects.push(
                    (0..6).map(value),
                    ingest.value(row),
                    columns.source_file.value(row),
                    line,
                    reason::DUPLICATE_ROW,
                );
                continue;
            }
            // The candidates passed these rules a moment ago: parsing again
            // is cheaper than carrying the parsed columns through the sort.
            let parsed = check_transaction(
                [value(0), value(1), value(2), value(3), value(4), value(5)],
                &rules.products,
                &rules.customers,
            )
            .map_err(|why| SilverError::Inconsistent {
                location: rules.location(ingest.value(row)),
                line,
                reason: why,
            })?;
            let amount = i128::from(parsed.quantity) * i128::from(parsed.price);
            if amount.unsigned_abs() >= 10u128.pow(18) {
                return Err(SilverError::AmountOverflow {
                    location: rules.location(ingest.value(row)),
                    line,
                    quantity: parsed.quantity,
                    price: value(5).unwrap_or_default().to_owned(),
                });
            }
            let date = rules::from_date32(parsed.date);
            let key = (date.year(), date.month());
            if month.as_ref().is_some_and(|(open, _)| *open != key)
                && let Some((closed, rows)) = month.take()
            {
                close_month(rows, &mut counts).await?;
                *written.entry(closed).or_default() += 1;
            }
            let rows = match &mut month {
                Some((_, rows)) => rows,
                None => {
                    let name = match written.get(&key) {
                        None => file.clone(),
                        Some(n) => format!("{file}-{n}"),
                    };
                    &mut month
                        .insert((key, MonthRows::new(&lake, &name, key.0, key.1)?))
                        .1
                }
            };
            rows.transaction_no.append_value(parsed.transaction_no);
            rows.date.append_value(parsed.date);
            rows.product_no.append_value(parsed.product_no);
            rows.customer_no.append_value(parsed.customer_no);
            rows.quantity.append_value(parsed.quantity);
            rows.price.append_value(i128::from(parsed.price));
            rows.amount.append_value(amount);
            counts.written += 1;
            if rows.len() >= BATCH_ROWS {
                rows.flush().await?;
            }
        }
        rules.send_rejects(&mut rejects, BATCH_ROWS).await?;
    }
    if let Some((_, rows)) = month.take() {
        close_month(rows, &mut counts).await?;
    }
    rules.send_rejects(&mut rejects, 1).await?;
    Ok(counts)
}

async fn close_month(mut rows: MonthRows, counts: &mut Counts) -> Result<(), SilverError> {
    rows.flush().await?;
    counts.bytes_written += rows.writer.close().await?;
    counts.files.push(rows.path);
    Ok(())
}

/// The first error of a set of tasks that failed together, preferring a cause
/// over its consequences (a task that only saw another one stop).
fn first_cause(errors: Vec<SilverError>) -> Option<SilverError> {
    let is_consequence =
        |e: &SilverError| matches!(e, SilverError::WriterGone(_) | SilverError::ReaderGone(_));
    let (consequences, causes): (Vec<_>, Vec<_>) = errors.into_iter().partition(is_consequence);
    causes
        .into_iter()
        .next()
        .or_else(|| consequences.into_iter().next())
}

async fn clean_transactions(
    lake: &Storage,
    products: &Arc<HashSet<String>>,
    customers: &Arc<HashSet<String>>,
    snapshot: &mut Snapshot,
    engine: &Engine,
) -> Result<StageReport, SilverError> {
    let table = Table::Transactions;
    let mut report = StageReport::new("preprocess", table.name());
    let progress = Progress::new("preprocess", table.name());
    let partitions = raw_partitions(lake, table).await?;
    report.bytes_read = partitions.iter().map(|p| p.object.size).sum();
    let snapshot_id = snapshot.snapshot_id.clone();
    let n = engine.partitions();

    // Every raw partition, with its ingest date, spread over n partitions.
    // Batches of DataFusion's usual size, not of the writers' BATCH_ROWS: the
    // sort's memory is counted in batches, and small ones let it fit (and
    // spill) under a small memory limit.
    let ctx = engine.session(engine.config().with_batch_size(8192));
    lake.register(&ctx);
    let mut raw: Option<DataFrame> = None;
    let mut locations = HashMap::new();
    for partition in &partitions {
        let location = lake.object_url(&partition.object.location);
        let read_error = |source| SilverError::Read {
            location: location.clone(),
            source,
        };
        let frame = ctx
            .read_parquet(location.as_str(), ParquetReadOptions::default())
            .await
            .map_err(read_error)?
            .with_column(INGEST_DATE_COLUMN, lit(partition.ingest_date.as_str()))
            .map_err(read_error)?;
        raw = Some(match raw {
            None => frame,
            Some(all) => all.union(frame).map_err(read_error)?,
        });
        locations.insert(partition.ingest_date.clone(), location);
    }
    let raw = raw
        .ok_or(SilverError::NoRawData(table))?
        .repartition(Partitioning::RoundRobinBatch(n))
        .map_err(query_error)?;
    let raw_plan = raw.create_physical_plan().await.map_err(query_error)?;
    let task_ctx = ctx.task_ctx();

    // The rejects of every task go to one file.
    let rejects_path =
        format!("silver/_rejects/{table}/snapshot={snapshot_id}/part-{snapshot_id}.parquet");
    let mut rejects_writer =
        lake.parquet_writer(&lake.path(&rejects_path), reject_schema(table))?;
    let (reject_sender, mut reject_batches) = mpsc::channel::<RecordBatch>(4);
    let rejects_task = tokio::spawn(async move {
        while let Some(batch) = reject_batches.recv().await {
            rejects_writer.write(&batch).await?;
        }
        rejects_writer.close().await
    });
    let rules = Arc::new(TransactionRules {
        products: Arc::clone(products),
        customers: Arc::clone(customers),
        locations,
        rejects: reject_sender,
    });

    // Rules 1 to 9 on every core, feeding the duplicate_row query.
    let mut checking = Vec::with_capacity(n);
    let mut streams: Vec<Arc<dyn PartitionStream>> = Vec::with_capacity(n);
    for i in 0..raw_plan.output_partitioning().partition_count() {
        let (sender, receiver) = mpsc::channel(2);
        streams.push(Arc::new(CandidateStream {
            schema: candidate_schema(),
            batches: std::sync::Mutex::new(Some(receiver)),
        }));
        let input = raw_plan
            .execute(i, Arc::clone(&task_ctx))
            .map_err(query_error)?;
        checking.push(tokio::spawn(check_partition(
            input,
            Arc::clone(&rules),
            sender,
        )));
    }
    let candidates = StreamingTable::try_new(candidate_schema(), streams).map_err(query_error)?;
    ctx.register_table("candidates", Arc::new(candidates))
        .map_err(query_error)?;
    let plan = ctx
        .sql(&duplicate_row_sql())
        .await
        .map_err(query_error)?
        .create_physical_plan()
        .await
        .map_err(query_error)?;
    let mut writing = Vec::new();
    for j in 0..plan.output_partitioning().partition_count() {
        let output = plan
            .execute(j, Arc::clone(&task_ctx))
            .map_err(query_error)?;
        writing.push(tokio::spawn(write_partition(
            output,
            Arc::clone(&rules),
            lake.clone(),
            // In the snapshot's own folder, which a Hive table's partition points at.
            format!("snapshot={snapshot_id}/part-{snapshot_id}-{j}"),
        )));
    }
    drop(rules);

    // Every task ends before this returns, failed or not: no write is left
    // running while the process reports and exits.
    let mut counts = Counts::default();
    let mut errors = Vec::new();
    for task in checking.into_iter().chain(writing) {
        match task.await {
            Ok(Ok(task_counts)) => counts.add(task_counts, &mut report),
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push(SilverError::ReaderGone(table)),
        }
    }
    let rejects_written = rejects_task
        .await
        .map_err(|_| SilverError::WriterGone(table));
    if let Some(error) = first_cause(errors) {
        return Err(error);
    }
    report.bytes_written += rejects_written??;
    report.rows_read = counts.read;
    report.rows_written = counts.written;
    report.bytes_written += counts.bytes_written;
    report.spilled_bytes = spilled_bytes(plan.as_ref()) + spilled_bytes(raw_plan.as_ref());
    counts.files.sort();
    snapshot.tables.insert(
        table.name().to_owned(),
        TableFiles {
            files: counts.files,
            rows: report.rows_written,
        },
    );
    snapshot.rejects.insert(
        table.name().to_owned(),
        TableFiles {
            files: vec![rejects_path],
            rows: report.rows_rejected,
        },
    );
    report.finish(progress.elapsed(), progress.cpu());
    Ok(report)
}

/// A transaction line that passed rules 1 to 9.
#[derive(Debug, PartialEq, Eq)]
struct ParsedTransaction<'a> {
    transaction_no: &'a str,
    date: i32,
    product_no: &'a str,
    customer_no: &'a str,
    quantity: i32,
    price: i64,
}

/// Rules 1 to 9 of transactions, in order; the first that fails is the reason.
/// `values` are TransactionNo, Date, ProductNo, CustomerNo, Quantity, Price.
fn check_transaction<'a>(
    values: [Option<&'a str>; 6],
    products: &HashSet<String>,
    customers: &HashSet<String>,
) -> Result<ParsedTransaction<'a>, &'static str> {
    let [
        Some(no),
        Some(date),
        Some(product),
        Some(customer),
        Some(quantity),
        Some(price),
    ] = values
    else {
        return Err(reason::MISSING_REQUIRED);
    };
    let date = rules::parse_date(date).ok_or(reason::BAD_DATE)?;
    let quantity = rules::parse_quantity(quantity).ok_or(reason::BAD_QUANTITY)?;
    let price = rules::parse_price(price).ok_or(reason::BAD_PRICE)?;
    if rules::is_cancellation(no) {
        return Err(reason::CANCELLATION);
    }
    if quantity <= 0 {
        return Err(reason::NON_POSITIVE_QUANTITY);
    }
    if price <= 0 {
        return Err(reason::NON_POSITIVE_PRICE);
    }
    if !products.contains(product) {
        return Err(reason::UNKNOWN_PRODUCT);
    }
    if !customers.contains(customer) {
        return Err(reason::UNKNOWN_CUSTOMER);
    }
    Ok(ParsedTransaction {
        transaction_no: no,
        date: rules::date32(date),
        product_no: product,
        customer_no: customer,
        quantity,
        price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> HashSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn check(values: [Option<&str>; 6]) -> Result<(), &'static str> {
        check_transaction(values, &set(&["P1"]), &set(&["K1"])).map(|_| ())
    }

    const GOOD: [Option<&str>; 6] = [
        Some("536365"),
        Some("1/5/2023"),
        Some("P1"),
        Some("K1"),
        Some("3"),
        Some("2.50"),
    ];

    fn with(index: usize, value: Option<&'static str>) -> [Option<&'static str>; 6] {
        let mut values = GOOD;
        values[index] = value;
        values
    }

    #[test]
    fn a_good_line_parses() {
        let parsed = check_transaction(GOOD, &set(&["P1"]), &set(&["K1"])).unwrap();
        assert_eq!(parsed.quantity, 3);
        assert_eq!(parsed.price, 250);
        assert_eq!(parsed.date, 19362);
    }

    #[test]
    fn each_rule_names_its_reason() {
        for index in 0..6 {
            assert_eq!(check(with(index, None)), Err(reason::MISSING_REQUIRED));
        }
        assert_eq!(check(with(1, Some("2023-01-05"))), Err(reason::BAD_DATE));
        assert_eq!(check(with(4, Some("2.5"))), Err(reason::BAD_QUANTITY));
        assert_eq!(check(with(5, Some("$4.50"))), Err(reason::BAD_PRICE));
        assert_eq!(check(with(0, Some("C536365"))), Err(reason::CANCELLATION));
        assert_eq!(
            check(with(4, Some("0"))),
            Err(reason::NON_POSITIVE_QUANTITY)
        );
        assert_eq!(
            check(with(5, Some("0.00"))),
            Err(reason::NON_POSITIVE_PRICE)
        );
        assert_eq!(check(with(5, Some("-1"))), Err(reason::NON_POSITIVE_PRICE));
        assert_eq!(check(with(2, Some("P2"))), Err(reason::UNKNOWN_PRODUCT));
        assert_eq!(check(with(3, Some("K2"))), Err(reason::UNKNOWN_CUSTOMER));
    }

    #[test]
    fn the_first_failing_rule_wins() {
        // A cancellation with a negative quantity is a cancellation...
        let mut values = with(0, Some("C1"));
        values[4] = Some("-3");
        assert_eq!(check(values), Err(reason::CANCELLATION));
        // ...but a bad date comes before it.
        values[1] = Some("1/5/23");
        assert_eq!(check(values), Err(reason::BAD_DATE));
        // A bad quantity comes before a bad price and an unknown product.
        let mut values = with(4, Some("1e3"));
        values[5] = Some(".5");
        values[2] = Some("nope");
        assert_eq!(check(values), Err(reason::BAD_QUANTITY));
        // An unknown product comes before an unknown customer.
        let mut values = with(2, Some("P9"));
        values[3] = Some("K9");
        assert_eq!(check(values), Err(reason::UNKNOWN_PRODUCT));
    }

    fn raw(date: &str, line: i64, values: &[Option<&str>]) -> RawRow {
        RawRow {
            ingest_date: Arc::from(date),
            source_file: "f.csv".into(),
            line,
            values: values.iter().map(|v| v.map(str::to_owned)).collect(),
        }
    }

    /// A row by (ingest date, line).
    type RowId = (String, i64);
    /// A rejected row by (ingest date, line, reason).
    type Rejected = (String, i64, &'static str);

    fn outcome(
        kept: &[RawRow],
        rejected: &[(RawRow, &'static str)],
    ) -> (Vec<RowId>, Vec<Rejected>) {
        (
            kept.iter()
                .map(|r| (r.ingest_date.to_string(), r.line))
                .collect(),
            {
                let mut r: Vec<_> = rejected
                    .iter()
                    .map(|(r, why)| (r.ingest_date.to_string(), r.line, *why))
                    .collect();
                r.sort();
                r
            },
        )
    }

    #[test]
    fn later_ingest_date_then_later_line_wins() {
        let rows = vec![
            raw("2024-01-02", 1, &[Some("1"), Some("New name")]),
            raw("2024-01-01", 5, &[Some("1"), Some("Old name")]),
            raw("2024-01-01", 2, &[Some("1"), Some("Older name")]),
            raw("2024-01-01", 3, &[Some("2"), Some("Two")]),
            raw("2024-01-01", 4, &[Some("2"), Some("Two again")]),
        ];
        let (kept, rejected) = apply_keyed_rules(rows, &KeyedRules::countries());
        let (kept, rejected) = outcome(&kept, &rejected);
        assert_eq!(
            kept,
            vec![("2024-01-02".into(), 1), ("2024-01-01".into(), 4)]
        );
        assert_eq!(
            rejected,
            vec![
                ("2024-01-01".into(), 2, reason::DUPLICATE_KEY),
                ("2024-01-01".into(), 3, reason::DUPLICATE_KEY),
                ("2024-01-01".into(), 5, reason::DUPLICATE_KEY),
            ]
        );
    }

    #[test]
    fn a_later_row_without_a_name_does_not_displace_a_valid_one() {
        let rows = vec![
            raw("2024-01-01", 1, &[Some("1"), Some("Sweden")]),
            raw("2024-01-02", 1, &[Some("1"), None]),
        ];
        let (kept, rejected) = apply_keyed_rules(rows, &KeyedRules::countries());
        assert_eq!(kept[0].value(1), Some("Sweden"));
        assert_eq!(rejected[0].1, reason::MISSING_REQUIRED);
    }

    #[test]
    fn customer_rules_in_order() {
        let countries = set(&["1"]);
        let rules = KeyedRules::customers(&countries);
        let rows = vec![
            raw("d", 1, &[Some("K1"), None, None, Some("a@b"), Some("1")]),
            // A later row with a bad email is rejected and does not displace line 1.
            raw("d", 2, &[Some("K1"), None, None, Some("a@@b"), Some("1")]),
            raw("d", 3, &[Some("K2"), None, None, None, Some("1")]),
            // The winner of K3 has an unknown country: K3 is gone, its older row a duplicate.
            raw("d", 4, &[Some("K3"), None, None, Some("x@y"), Some("1")]),
            raw("d", 5, &[Some("K3"), None, None, Some("x@y"), Some("9")]),
            raw("d", 6, &[Some("K4"), None, None, Some("x@y"), None]),
        ];
        let (kept, rejected) = apply_keyed_rules(rows, &rules);
        let (kept, rejected) = outcome(&kept, &rejected);
        assert_eq!(kept, vec![("d".into(), 1)]);
        assert_eq!(
            rejected,
            vec![
                ("d".into(), 2, reason::BAD_EMAIL),
                ("d".into(), 3, reason::MISSING_REQUIRED),
                ("d".into(), 4, reason::DUPLICATE_KEY),
                ("d".into(), 5, reason::UNKNOWN_COUNTRY),
                ("d".into(), 6, reason::UNKNOWN_COUNTRY),
            ]
        );
    }

    #[test]
    fn keys_compare_as_exact_text() {
        let rows = vec![
            raw("d", 1, &[Some("7"), Some("P")]),
            raw("d", 2, &[Some("07"), Some("Q")]),
        ];
        let (kept, rejected) = apply_keyed_rules(rows, &KeyedRules::products());
        assert_eq!(kept.len(), 2);
        assert!(rejected.is_empty());
    }

    #[test]
    fn fingerprints_separate_fields() {
        let mut buffer = Vec::new();
        let a = fingerprint(&mut buffer, "12", 1, "3", "4", 5, 6);
        let b = fingerprint(&mut buffer, "1", 1, "23", "4", 5, 6);
        let c = fingerprint(&mut buffer, "12", 1, "3", "4", 5, 6);
        assert_ne!(a, b);
        assert_eq!(a, c);
    }
}
