//! Stage `preprocess`: the raw layer refined into silver (docs/data-format.md,
//! "Silver layer").
//!
//! Keyed tables (countries, customers, products) are small: they are gathered
//! whole, then the rules run in the contract's order. Transactions grow with
//! the lake, so they never are held whole: the raw files are read by row
//! group on every core, where rules 1 to 9 run and the rows that pass are
//! parsed into silver rows with a fingerprint of their parsed line. One
//! sequencer takes the batches back in stream order, (ingest date, line), and
//! decides `duplicate_row` with a set of fingerprints counted in the run's
//! memory pool, deferring lines to bucket files on disk once the pool is full
//! ([`crate::dedup`]); the batches are written on every core, each month to
//! its own files, then the buckets are decided and written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, Utc};
use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, BooleanArray, BooleanBuilder, Date32Array, Date32Builder,
    Decimal128Builder, Int32Builder, Int64Array, Int64Builder, RecordBatch, StringArray,
    StringBuilder, UInt32Array,
};
use datafusion::arrow::compute::{filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::prelude::{ParquetReadOptions, SessionConfig};
use futures::StreamExt;
use object_store::ObjectMeta;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::AsyncFileReader;
use tokio::sync::mpsc;

use crate::dedup::{self, Bucket, Buckets, Decision, Fingerprints};
use crate::report::{Progress, StageReport, timestamp};
use crate::resources::Engine;
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
    /// A raw file whose lines are not in order (the feed writes them in
    /// order; `duplicate_row` keeps the earliest copy in that order).
    #[error(
        "{location}: line {line} comes after line {previous}: a raw file's lines must be in order"
    )]
    RawOrder {
        /// The raw file.
        location: String,
        /// The line out of order.
        line: i64,
        /// The line before it.
        previous: i64,
    },
    /// The rows the Ballista executors wrote and rejected do not add up to
    /// the raw lines (a write task that ran twice, or lines lost).
    #[error(
        "silver transactions of snapshot {snapshot} on Ballista do not add up: {raw} raw lines, \
         {written} written by the executors ({in_files} in the snapshot's files), {rejected} \
         rejected ({counted} counted by reason); nothing was published"
    )]
    Unbalanced {
        /// The unpublished snapshot.
        snapshot: String,
        /// Raw lines.
        raw: u64,
        /// Silver rows the write reported.
        written: u64,
        /// Silver rows in the snapshot's files.
        in_files: u64,
        /// Rejects the write reported.
        rejected: u64,
        /// Rejects counted by reason.
        counted: u64,
    },
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

    let reports = if let Some(remote) = engine.remote_session() {
        // On Ballista, the executors join the transactions to the keyed
        // tables' silver files: those are written first.
        let remote = remote.map_err(|source| SilverError::Read {
            location: engine.choice.to_string(),
            source,
        })?;
        let [mut c, mut u, mut p] = std::array::from_fn(|_| snapshot.clone());
        let written = futures::join!(
            countries.write(lake, &mut c),
            customers.write(lake, &mut u),
            products.write(lake, &mut p),
        );
        let mut reports = vec![written.0?, written.1?, written.2?];
        for part in [c, u, p] {
            snapshot.tables.extend(part.tables);
            snapshot.rejects.extend(part.rejects);
        }
        reports.push(
            crate::silver_plan::clean_transactions(lake, &mut snapshot, engine, remote).await?,
        );
        reports
    } else {
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
        for part in [c, u, p, t] {
            snapshot.tables.extend(part.tables);
            snapshot.rejects.extend(part.rejects);
        }
        vec![written.0?, written.1?, written.2?, written.3?]
    };

    snapshot.created_at = timestamp(Utc::now());
    snapshot.publish(lake, grace).await?;
    tracing::info!(snapshot = %snapshot.snapshot_id, "silver snapshot published");
    Ok(SilverOutcome { snapshot, reports })
}

/// A raw partition: one table's file for one ingest date.
pub(crate) struct RawPartition {
    pub(crate) ingest_date: String,
    pub(crate) object: ObjectMeta,
}

/// A table's raw partitions, by ingest date.
pub(crate) async fn raw_partitions(
    lake: &Storage,
    table: Table,
) -> Result<Vec<RawPartition>, SilverError> {
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

/// A batch of raw rows of a keyed table: its text stays in Arrow's compact
/// buffers (a `String` per value would take about three times the memory).
struct RawBatch {
    ingest_date: Arc<str>,
    values: Vec<StringArray>,
    source_file: StringArray,
}

/// One raw row of a keyed table: its batch and position.
struct RawRow {
    batch: Arc<RawBatch>,
    row: u32,
    line: i64,
}

impl RawRow {
    fn value(&self, column: usize) -> Option<&str> {
        let array = &self.batch.values[column];
        let row = self.row as usize;
        (!array.is_null(row)).then(|| array.value(row))
    }

    fn ingest_date(&self) -> &str {
        &self.batch.ingest_date
    }

    fn source_file(&self) -> &str {
        self.batch.source_file.value(self.row as usize)
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
    /// The rows' memory in the pool, returned when they are written.
    _reservation: MemoryReservation,
}

async fn clean_keyed(
    lake: &Storage,
    table: Table,
    rules: &KeyedRules<'_>,
    engine: &Engine,
) -> Result<CleanedKeyed, SilverError> {
    let mut report = StageReport::new("preprocess", table.name());
    let progress = Progress::new("preprocess", table.name());
    // Keyed rows are held whole until silver is written: counted in the
    // pool, so a keyed table too big for the limit fails cleanly.
    let reservation =
        MemoryConsumer::new(format!("preprocess {table} rows")).register(engine.memory_pool());
    let mut rows = Vec::new();
    for partition in raw_partitions(lake, table).await? {
        report.bytes_read += partition.object.size;
        let ingest_date: Arc<str> = Arc::from(partition.ingest_date.as_str());
        let location = lake.object_url(&partition.object.location);
        let mut batches = read_partition(lake, &partition, engine).await?;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let columns = RawColumns::of(&batch, table, &location)?;
            reservation
                .try_grow(keyed_bytes(&columns, batch.num_rows()))
                .map_err(|source| SilverError::Read {
                    location: location.clone(),
                    source,
                })?;
            let raw = Arc::new(RawBatch {
                ingest_date: Arc::clone(&ingest_date),
                values: columns.values.iter().map(|&c| c.clone()).collect(),
                source_file: columns.source_file.clone(),
            });
            for row in 0..batch.num_rows() {
                rows.push(RawRow {
                    batch: Arc::clone(&raw),
                    row: row as u32,
                    line: columns.line.value(row),
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
        _reservation: reservation,
    })
}

/// Bytes `rows` keyed rows take: their text and offsets in Arrow's buffers,
/// the row itself, and its key's share of the sets and maps built from it
/// (the winners by key, the keys the transactions are checked against).
fn keyed_bytes(columns: &RawColumns<'_>, rows: usize) -> usize {
    let text: usize = columns
        .values
        .iter()
        .chain([&columns.source_file])
        .map(|c| c.get_array_memory_size())
        .sum();
    text + rows * (std::mem::size_of::<RawRow>() + 96)
}

/// Applies a keyed table's rules in the contract's order: required columns and
/// row rules, then `duplicate_key` (the latest row by ingest date, then line,
/// wins among the rows that passed), then the winner rule. Kept rows come out
/// sorted by key.
fn apply_keyed_rules(
    mut rows: Vec<RawRow>,
    rules: &KeyedRules<'_>,
) -> (Vec<RawRow>, Vec<(RawRow, &'static str)>) {
    rows.sort_by(|a, b| (a.ingest_date(), a.line).cmp(&(b.ingest_date(), b.line)));
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
                row.ingest_date(),
                row.source_file(),
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

/// Raw rows per batch passed between the transactions tasks: a few of them
/// are in flight per thread, so they stay a few MiB each.
const UNIT_ROWS: usize = 16 * 1024;

/// Batches a writer handles before it closes the month files it has not
/// written to since: raw files mostly come in date order, so a month is
/// written in one stretch and then left (its file closed, its memory freed).
const STALE_AFTER: usize = 8;

/// Most bucket files `duplicate_row` spreads deferred lines over.
const MAX_BUCKETS: u64 = 1024;

/// A raw transactions file, opened for reading by row group.
struct RawFile {
    ingest_date: Arc<str>,
    location: String,
    object: ObjectMeta,
    metadata: ArrowReaderMetadata,
}

/// A piece of the raw stream: one row group of one raw file. Units in
/// order are the raw rows in (ingest date, line) order.
#[derive(Clone, Copy)]
struct Unit {
    file: usize,
    row_group: usize,
}

async fn open_raw(
    lake: &Storage,
    partitions: Vec<RawPartition>,
) -> Result<Vec<RawFile>, SilverError> {
    let mut files = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let location = lake.object_url(&partition.object.location);
        let mut reader = raw_reader(lake, &partition.object, &location)?;
        let metadata = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| SilverError::Read {
                location: location.clone(),
                source: e.into(),
            })?;
        files.push(RawFile {
            ingest_date: Arc::from(partition.ingest_date.as_str()),
            location,
            object: partition.object,
            metadata,
        });
    }
    Ok(files)
}

fn raw_reader(
    lake: &Storage,
    file: &ObjectMeta,
    location: &str,
) -> Result<Box<dyn AsyncFileReader>, SilverError> {
    // AsyncFileReader is Send: the box is too, without saying so.
    let reader: Box<dyn AsyncFileReader + Send> =
        DefaultParquetFileReaderFactory::new(Arc::clone(lake.store()))
            .create_reader(
                0,
                PartitionedFile::from(file.clone()),
                None,
                &ExecutionPlanMetricsSet::new(),
            )
            .map_err(|source| SilverError::Read {
                location: location.to_owned(),
                source,
            })?;
    Ok(reader)
}

/// Silver transaction rows being gathered into a batch.
struct SilverRows {
    transaction_no: StringBuilder,
    date: Date32Builder,
    product_no: StringBuilder,
    customer_no: StringBuilder,
    quantity: Int32Builder,
    price: Decimal128Builder,
    amount: Decimal128Builder,
}

impl SilverRows {
    fn new() -> SilverRows {
        SilverRows {
            transaction_no: StringBuilder::new(),
            date: Date32Builder::new(),
            product_no: StringBuilder::new(),
            customer_no: StringBuilder::new(),
            quantity: Int32Builder::new(),
            price: Decimal128Builder::new().with_data_type(DataType::Decimal128(12, 2)),
            amount: Decimal128Builder::new().with_data_type(DataType::Decimal128(18, 2)),
        }
    }

    /// Appends a parsed line; its amount must fit numeric(18,2).
    fn push(
        &mut self,
        parsed: &ParsedTransaction<'_>,
        location: &str,
        line: i64,
        price: Option<&str>,
    ) -> Result<(), SilverError> {
        let Some(amount) = parsed.amount() else {
            return Err(SilverError::AmountOverflow {
                location: location.to_owned(),
                line,
                quantity: parsed.quantity,
                price: price.unwrap_or_default().to_owned(),
            });
        };
        self.transaction_no.append_value(parsed.transaction_no);
        self.date.append_value(parsed.date);
        self.product_no.append_value(parsed.product_no);
        self.customer_no.append_value(parsed.customer_no);
        self.quantity.append_value(parsed.quantity);
        self.price.append_value(i128::from(parsed.price));
        self.amount.append_value(amount);
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch, SilverError> {
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(self.transaction_no.finish()),
            Arc::new(self.date.finish()),
            Arc::new(self.product_no.finish()),
            Arc::new(self.customer_no.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.price.finish()),
            Arc::new(self.amount.finish()),
        ];
        RecordBatch::try_new(transactions_schema(), arrays).map_err(|e| query_error(e.into()))
    }
}

/// The month files one writer has open.
struct MonthFiles {
    lake: Storage,
    /// File name prefix, relative to the month's folder.
    name: String,
    /// Files opened so far (each new file gets the next number).
    opened: usize,
    /// Batches handled so far.
    tick: usize,
    open: BTreeMap<(i32, u32), (ParquetFileWriter, String, usize)>,
}

impl MonthFiles {
    fn new(lake: Storage, name: String) -> MonthFiles {
        MonthFiles {
            lake,
            name,
            opened: 0,
            tick: 0,
            open: BTreeMap::new(),
        }
    }

    /// Writes the rows of `silver` that `keep` selects (all when `None`),
    /// each to its month's file; returns the rows written.
    async fn write(
        &mut self,
        silver: &RecordBatch,
        keep: Option<&BooleanArray>,
    ) -> Result<u64, SilverError> {
        self.tick += 1;
        let dates = silver
            .column(1)
            .as_any()
            .downcast_ref::<Date32Array>()
            .ok_or_else(|| SilverError::RawColumn {
                location: "silver transactions".to_owned(),
                column: "date".to_owned(),
            })?;
        // Consecutive rows mostly share a date: convert each date once.
        let mut keys = Vec::with_capacity(dates.len());
        let mut last: Option<(i32, (i32, u32))> = None;
        for &day in dates.values().iter() {
            let key = match last {
                Some((d, key)) if d == day => key,
                _ => {
                    let date = rules::from_date32(day);
                    (date.year(), date.month())
                }
            };
            last = Some((day, key));
            keys.push(key);
        }
        let mut months = keys.clone();
        months.sort_unstable();
        months.dedup();
        let everything = keep.is_none_or(|k| k.true_count() == k.len());
        let mut written = 0;
        for month in months {
            let part = if everything && keys.first() == keys.last() {
                silver.clone()
            } else {
                let mask: BooleanArray = keys
                    .iter()
                    .enumerate()
                    .map(|(i, key)| Some(*key == month && keep.is_none_or(|k| k.value(i))))
                    .collect();
                filter_record_batch(silver, &mask).map_err(|e| query_error(e.into()))?
            };
            if part.num_rows() == 0 {
                continue;
            }
            if !self.open.contains_key(&month) {
                let path = format!(
                    "silver/transactions/year={}/month={}/{}-{}.parquet",
                    month.0, month.1, self.name, self.opened
                );
                self.opened += 1;
                // A writer keeps a file per month open, up to every month of
                // the lake at once while it writes a duplicate_row bucket:
                // dictionaries of these nearly unique columns were most of
                // that memory (122 MB of 2 writers' at 20M lines) for little
                // compression.
                let writer = self.lake.parquet_writer_without_dictionary(
                    &self.lake.path(&path),
                    transactions_schema(),
                    &["transaction_no", "customer_no"],
                )?;
                self.open.insert(month, (writer, path, self.tick));
            }
            if let Some((writer, _, used)) = self.open.get_mut(&month) {
                writer.write(&part).await?;
                *used = self.tick;
            }
            written += part.num_rows() as u64;
        }
        Ok(written)
    }

    /// Closes the files not written to in the last `after` batches (all of
    /// them when `after` is 0).
    async fn close_older(&mut self, after: usize, counts: &mut Counts) -> Result<(), SilverError> {
        let stale: Vec<(i32, u32)> = self
            .open
            .iter()
            .filter(|(_, (_, _, used))| after == 0 || self.tick - used >= after)
            .map(|(month, _)| *month)
            .collect();
        for month in stale {
            if let Some((writer, path, _)) = self.open.remove(&month) {
                counts.bytes_written += writer.close().await?;
                counts.files.push(path);
            }
        }
        Ok(())
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

/// One batch of raw rows after rules 1 to 9.
struct Checked {
    /// Whether it ends its unit (an empty batch after the unit's last).
    last: bool,
    /// The raw file it comes from.
    file: usize,
    raw: RecordBatch,
    /// The rows of `raw` that passed, then their silver rows and fingerprints.
    passed: Vec<u32>,
    silver: RecordBatch,
    prints: Vec<u128>,
}

impl Checked {
    fn empty(file: usize) -> Checked {
        Checked {
            last: true,
            file,
            raw: RecordBatch::new_empty(Table::Transactions.raw_schema()),
            passed: Vec::new(),
            silver: RecordBatch::new_empty(transactions_schema()),
            prints: Vec::new(),
        }
    }
}

/// Rules 1 to 9 over a batch of raw rows: rejects are gathered, the rows
/// that pass are parsed into silver rows with their fingerprints.
fn check_batch(
    raw: RecordBatch,
    index: usize,
    file: &RawFile,
    rules: &TransactionRules,
    counts: &mut Counts,
    rejects: &mut RejectRows,
) -> Result<Checked, SilverError> {
    let columns = RawColumns::of(&raw, Table::Transactions, &file.location)?;
    let mut passed = Vec::with_capacity(raw.num_rows());
    let mut prints = Vec::with_capacity(raw.num_rows());
    let mut silver = SilverRows::new();
    let mut scratch = Vec::with_capacity(128);
    for row in 0..raw.num_rows() {
        counts.read += 1;
        let value = |c| columns.value(c, row);
        match check_transaction(
            [value(0), value(1), value(2), value(3), value(4), value(5)],
            &rules.products,
            &rules.customers,
        ) {
            Ok(parsed) => {
                silver.push(&parsed, &file.location, columns.line.value(row), value(5))?;
                prints.push(parsed.fingerprint(&mut scratch));
                passed.push(row as u32);
            }
            Err(why) => {
                counts.reject(why);
                rejects.push(
                    (0..6).map(value),
                    &file.ingest_date,
                    columns.source_file.value(row),
                    columns.line.value(row),
                    why,
                );
            }
        }
    }
    let silver = silver.finish()?;
    Ok(Checked {
        last: false,
        file: index,
        raw,
        passed,
        silver,
        prints,
    })
}

/// What the checking tasks share.
struct RawStream {
    lake: Storage,
    files: Vec<RawFile>,
    units: Vec<Unit>,
}

/// Reads units `first`, `first + step`, ... and checks them, sending each
/// batch on in order.
async fn check_units(
    stream: Arc<RawStream>,
    first: usize,
    step: usize,
    rules: Arc<TransactionRules>,
    out: mpsc::Sender<Checked>,
) -> Result<Counts, SilverError> {
    let mut counts = Counts::default();
    let mut rejects = RejectRows::new(Table::Transactions);
    for unit in stream.units.iter().skip(first).step_by(step) {
        let file = &stream.files[unit.file];
        let read_error = |e: parquet::errors::ParquetError| SilverError::Read {
            location: file.location.clone(),
            source: e.into(),
        };
        let mut batches = ParquetRecordBatchStreamBuilder::new_with_metadata(
            raw_reader(&stream.lake, &file.object, &file.location)?,
            file.metadata.clone(),
        )
        .with_row_groups(vec![unit.row_group])
        .with_batch_size(UNIT_ROWS)
        .build()
        .map_err(read_error)?;
        while let Some(batch) = batches.next().await {
            let checked = check_batch(
                batch.map_err(read_error)?,
                unit.file,
                file,
                &rules,
                &mut counts,
                &mut rejects,
            )?;
            if out.send(checked).await.is_err() {
                // The sequencer stopped (its error, or a writer's, is the cause).
                return Ok(counts);
            }
            rules.send_rejects(&mut rejects, BATCH_ROWS).await?;
        }
        // An empty batch ends the unit: the sequencer then turns to the next checker.
        if out.send(Checked::empty(unit.file)).await.is_err() {
            return Ok(counts);
        }
    }
    rules.send_rejects(&mut rejects, 1).await?;
    Ok(counts)
}

/// A checked batch with the `duplicate_row` decision of each row that passed.
struct Decided {
    checked: Checked,
    decisions: Vec<Decision>,
}

/// The schema of lines deferred to a `duplicate_row` bucket: the raw row,
/// its ingest date and its fingerprint.
fn deferred_schema() -> SchemaRef {
    let raw = Table::Transactions.raw_schema();
    let mut fields: Vec<Field> = raw.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(INGEST_DATE_COLUMN, DataType::Utf8, false));
    fields.push(Field::new(FP_HI_COLUMN, DataType::Int64, false));
    fields.push(Field::new(FP_LO_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// Columns of deferred lines: the two halves of the fingerprint.
const FP_HI_COLUMN: &str = "_fp_hi";
const FP_LO_COLUMN: &str = "_fp_lo";

/// Decides `duplicate_row` for the checked batches in stream order: batches
/// of unit k come from checker k mod n and go to writer k mod n. Returns the
/// bucket files of the lines it deferred, and their bytes.
async fn sequence(
    mut inputs: Vec<mpsc::Receiver<Checked>>,
    outputs: Vec<mpsc::Sender<Decided>>,
    stream: Arc<RawStream>,
    engine: Engine,
) -> Result<Option<(Vec<Bucket>, u64)>, SilverError> {
    let n = inputs.len();
    let total_rows: u64 = stream
        .files
        .iter()
        .map(|f| f.metadata.metadata().file_metadata().num_rows().max(0) as u64)
        .sum();
    let mut set = Fingerprints::new(engine.memory_pool(), "duplicate_row fingerprints");
    let mut buckets: Option<Buckets> = None;
    let mut offered = 0u64;
    let mut previous: Option<(usize, i64)> = None;
    for k in 0..stream.units.len() {
        loop {
            let Some(checked) = inputs[k % n].recv().await else {
                return Err(SilverError::ReaderGone(Table::Transactions));
            };
            let file = &stream.files[checked.file];
            let lines = checked
                .raw
                .column_by_name(LINE_COLUMN)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .ok_or_else(|| SilverError::RawColumn {
                    location: file.location.clone(),
                    column: LINE_COLUMN.to_owned(),
                })?;
            // Stream order is (ingest date, line) order only if each raw file
            // is in line order, as the feed writes it.
            for &line in lines.values().iter() {
                if let Some((f, before)) = previous
                    && f == checked.file
                    && line < before
                {
                    return Err(SilverError::RawOrder {
                        location: file.location.clone(),
                        line,
                        previous: before,
                    });
                }
                previous = Some((checked.file, line));
            }
            let mut decisions = Vec::with_capacity(checked.prints.len());
            let mut deferred: Vec<Vec<u32>> = Vec::new();
            for (i, &print) in checked.prints.iter().enumerate() {
                let decision = set.offer(print);
                if decision == Decision::Deferred {
                    let buckets = match &mut buckets {
                        Some(b) => b,
                        None => {
                            // Buckets small enough that n of them fit where
                            // the full set did, with room to spare.
                            let per_bucket = (set.len() as u64 / (2 * n as u64)).max(1 << 12);
                            let count = (total_rows.saturating_sub(offered))
                                .div_ceil(per_bucket)
                                .clamp(n as u64, MAX_BUCKETS);
                            tracing::info!(
                                fingerprints = set.len(),
                                buckets = count,
                                "duplicate_row: the memory limit is reached, later lines go to bucket files"
                            );
                            buckets.insert(
                                Buckets::new(
                                    engine.disk_manager(),
                                    deferred_schema(),
                                    count as usize,
                                )
                                .map_err(query_error)?,
                            )
                        }
                    };
                    let b = buckets.of(print);
                    if deferred.len() <= b {
                        deferred.resize(b + 1, Vec::new());
                    }
                    deferred[b].push(i as u32);
                }
                decisions.push(decision);
            }
            offered += checked.raw.num_rows() as u64;
            if let Some(buckets) = &mut buckets {
                for (b, rows) in deferred.iter().enumerate() {
                    if !rows.is_empty() {
                        let batch = deferred_batch(&checked, file, rows, buckets.schema())?;
                        buckets.write(b, &batch).map_err(query_error)?;
                    }
                }
            }
            let last = checked.last;
            if outputs[k % n]
                .send(Decided { checked, decisions })
                .await
                .is_err()
            {
                return Err(SilverError::WriterGone(Table::Transactions));
            }
            if last {
                break;
            }
        }
    }
    // The buckets are read with sets of their own: this one's memory goes back.
    drop(set);
    buckets.map(|b| b.finish()).transpose().map_err(query_error)
}

/// The deferred lines `rows` (positions among the passed rows) of a batch.
fn deferred_batch(
    checked: &Checked,
    file: &RawFile,
    rows: &[u32],
    schema: &SchemaRef,
) -> Result<RecordBatch, SilverError> {
    let indices = UInt32Array::from_iter_values(rows.iter().map(|&i| checked.passed[i as usize]));
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for column in checked.raw.columns() {
        arrays.push(take(column, &indices, None).map_err(|e| query_error(e.into()))?);
    }
    arrays.push(Arc::new(StringArray::from_iter_values(
        rows.iter().map(|_| &*file.ingest_date),
    )) as ArrayRef);
    let halves: Vec<(i64, i64)> = rows
        .iter()
        .map(|&i| dedup::halves(checked.prints[i as usize]))
        .collect();
    arrays.push(Arc::new(Int64Array::from_iter_values(halves.iter().map(|h| h.0))) as ArrayRef);
    arrays.push(Arc::new(Int64Array::from_iter_values(halves.iter().map(|h| h.1))) as ArrayRef);
    RecordBatch::try_new(Arc::clone(schema), arrays).map_err(|e| query_error(e.into()))
}

/// Writes the decided batches it is sent (first copies to silver, later
/// ones to the rejects), then decides and writes the buckets it is sent.
async fn write_decided(
    mut decided: mpsc::Receiver<Decided>,
    mut buckets: mpsc::UnboundedReceiver<Bucket>,
    stream: Arc<RawStream>,
    rules: Arc<TransactionRules>,
    name: String,
    engine: Engine,
) -> Result<Counts, SilverError> {
    let table = Table::Transactions;
    let mut counts = Counts::default();
    let mut rejects = RejectRows::new(table);
    let mut months = MonthFiles::new(stream.lake.clone(), name);
    while let Some(Decided { checked, decisions }) = decided.recv().await {
        let file = &stream.files[checked.file];
        let columns = RawColumns::of(&checked.raw, table, &file.location)?;
        let mut keep = BooleanBuilder::with_capacity(decisions.len());
        for (i, decision) in decisions.iter().enumerate() {
            keep.append_value(*decision == Decision::First);
            if *decision == Decision::Copy {
                let row = checked.passed[i] as usize;
                counts.reject(reason::DUPLICATE_ROW);
                rejects.push(
                    (0..6).map(|c| columns.value(c, row)),
                    &file.ingest_date,
                    columns.source_file.value(row),
                    columns.line.value(row),
                    reason::DUPLICATE_ROW,
                );
            }
        }
        counts.written += months.write(&checked.silver, Some(&keep.finish())).await?;
        months.close_older(STALE_AFTER, &mut counts).await?;
        rules.send_rejects(&mut rejects, BATCH_ROWS).await?;
    }
    while let Some(bucket) = buckets.recv().await {
        let mut set = Fingerprints::new(engine.memory_pool(), "duplicate_row bucket");
        let location = "a duplicate_row bucket";
        for batch in bucket.batches().map_err(query_error)? {
            let batch = batch.map_err(query_error)?;
            let columns = RawColumns::of(&batch, table, location)?;
            let int64 = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                    .ok_or_else(|| SilverError::RawColumn {
                        location: location.to_owned(),
                        column: name.to_owned(),
                    })
            };
            let (hi, lo) = (int64(FP_HI_COLUMN)?, int64(FP_LO_COLUMN)?);
            let ingest = batch
                .column_by_name(INGEST_DATE_COLUMN)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| SilverError::RawColumn {
                    location: location.to_owned(),
                    column: INGEST_DATE_COLUMN.to_owned(),
                })?;
            let mut silver = SilverRows::new();
            for row in 0..batch.num_rows() {
                let value = |c| columns.value(c, row);
                let line = columns.line.value(row);
                let decision = set
                    .offer_exact(dedup::print_at(hi, lo, row))
                    .map_err(query_error)?;
                if decision != Decision::First {
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
                // The line passed these rules before it was deferred:
                // parsing again is cheaper than carrying parsed columns.
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
                silver.push(&parsed, &rules.location(ingest.value(row)), line, value(5))?;
            }
            counts.written += months.write(&silver.finish()?, None).await?;
            rules.send_rejects(&mut rejects, BATCH_ROWS).await?;
        }
        // A bucket's lines span every month: its files end with it.
        months.close_older(0, &mut counts).await?;
    }
    months.close_older(0, &mut counts).await?;
    rules.send_rejects(&mut rejects, 1).await?;
    Ok(counts)
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

    let files = open_raw(lake, partitions).await?;
    let unit_rows = files
        .iter()
        .flat_map(|f| f.metadata.metadata().row_groups())
        .map(|g| g.num_rows().max(0) as usize)
        .max()
        .unwrap_or(0);
    // What the tasks hold outside the fingerprint set is counted first, so
    // that the set only grows into what is left, and a limit too small for
    // the batches in flight fails here, before anything is written. The
    // keyed tables may still hold their rows (they are written beside this):
    // then less room, down to one batch, rather than a failure.
    let mut lookahead = lookahead_for(unit_rows, n, engine.resources.pool_bytes());
    let in_flight = MemoryConsumer::new("preprocess transactions batches in flight")
        .register(engine.memory_pool());
    while let Err(e) = in_flight.try_grow(in_flight_bytes(n, lookahead)) {
        if lookahead == 1 {
            return Err(query_error(e));
        }
        lookahead /= 2;
    }
    tracing::debug!(
        lookahead,
        tasks = n,
        "batches of room between the transactions tasks"
    );
    let units = files
        .iter()
        .enumerate()
        .flat_map(|(f, file)| {
            (0..file.metadata.metadata().num_row_groups())
                .map(move |row_group| Unit { file: f, row_group })
        })
        .collect();
    let locations = files
        .iter()
        .map(|f| (f.ingest_date.to_string(), f.location.clone()))
        .collect();
    let stream = Arc::new(RawStream {
        lake: lake.clone(),
        files,
        units,
    });

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

    // Rules 1 to 9 on every core (checkers), duplicate_row in stream order
    // (one sequencer: a set lookup per line), writing on every core (writers).
    let mut checking = Vec::with_capacity(n);
    let mut writing = Vec::with_capacity(n);
    let (mut inputs, mut outputs, mut bucket_senders) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let (sender, receiver) = mpsc::channel(lookahead);
        inputs.push(receiver);
        checking.push(tokio::spawn(check_units(
            Arc::clone(&stream),
            i,
            n,
            Arc::clone(&rules),
            sender,
        )));
        let (sender, receiver) = mpsc::channel(lookahead);
        outputs.push(sender);
        let (bucket_sender, bucket_receiver) = mpsc::unbounded_channel();
        bucket_senders.push(bucket_sender);
        writing.push(tokio::spawn(write_decided(
            receiver,
            bucket_receiver,
            Arc::clone(&stream),
            Arc::clone(&rules),
            // In the snapshot's own folder, which a Hive table's partition points at.
            format!("snapshot={snapshot_id}/part-{snapshot_id}-{i}"),
            engine.clone(),
        )));
    }
    drop(rules);
    let sequenced = tokio::spawn(sequence(
        inputs,
        outputs,
        Arc::clone(&stream),
        engine.clone(),
    ))
    .await;

    // Every task ends before this returns, failed or not: no write is left
    // running while the process reports and exits.
    let mut errors = Vec::new();
    match sequenced {
        Ok(Ok(Some((buckets, bytes)))) => {
            report.spilled_bytes = bytes;
            for (b, bucket) in buckets.into_iter().enumerate() {
                // A writer that stopped has its own error to report.
                let _ = bucket_senders[b % n].send(bucket);
            }
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => errors.push(e),
        Err(_) => errors.push(SilverError::ReaderGone(table)),
    }
    drop(bucket_senders);
    let mut counts = Counts::default();
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
    drop(in_flight);
    report.finish(progress.elapsed(), progress.cpu());
    Ok(report)
}

/// Most batches a checker may have ready for the sequencer, and the sequencer
/// for a writer, beyond the one each is working on: a unit's worth (a raw row
/// group of 128k rows is 8 batches). The sequencer takes one checker's unit
/// at a time, so with a single batch of room the checkers (and the writers)
/// took turns instead of working at once (1.63 cores busy at 5M lines on 2
/// cores, against 1.84-1.88 with a unit's worth).
const MAX_LOOKAHEAD: usize = 8;

/// The batches of room between the tasks (see [`MAX_LOOKAHEAD`]) for units of
/// up to `unit_rows` rows and `n` checkers: a unit's worth, halved while the
/// batches in flight would take more than a quarter of the query pool `pool`
/// (the fingerprint set needs the rest), down to one.
fn lookahead_for(unit_rows: usize, n: usize, pool: Option<usize>) -> usize {
    let mut lookahead = unit_rows.div_ceil(UNIT_ROWS).clamp(1, MAX_LOOKAHEAD);
    if let Some(pool) = pool {
        while lookahead > 1 && in_flight_bytes(n, lookahead) > pool / 4 {
            lookahead /= 2;
        }
    }
    lookahead
}

/// Memory the transactions tasks hold besides the fingerprint set: with n
/// checkers and n writers, at most 2n(lookahead + 1) + 1 batches (one being
/// built and `lookahead` queued per checker and per writer, one with the
/// sequencer) of raw and silver rows, and the month files each writer keeps
/// open (at most `STALE_AFTER` batches of encoded rows).
fn in_flight_bytes(n: usize, lookahead: usize) -> usize {
    /// Raw and parsed bytes of a transaction row, with Arrow's offsets.
    const ROW_BYTES: usize = 200;
    /// Encoded bytes of a silver row in an open Parquet row group.
    const ENCODED_ROW_BYTES: usize = 32;
    (2 * n * (lookahead + 1) + 1) * UNIT_ROWS * ROW_BYTES
        + n * STALE_AFTER * UNIT_ROWS * ENCODED_ROW_BYTES
}

/// A transaction line that passed the rules.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParsedTransaction<'a> {
    pub(crate) transaction_no: &'a str,
    /// Arrow `Date32`.
    pub(crate) date: i32,
    pub(crate) product_no: &'a str,
    pub(crate) customer_no: &'a str,
    pub(crate) quantity: i32,
    /// Hundredths.
    pub(crate) price: i64,
}

impl ParsedTransaction<'_> {
    /// quantity * price in hundredths, or `None` when it does not fit
    /// numeric(18,2).
    pub(crate) fn amount(&self) -> Option<i128> {
        let amount = i128::from(self.quantity) * i128::from(self.price);
        (amount.unsigned_abs() < 10u128.pow(18)).then_some(amount)
    }

    /// Its fingerprint for `duplicate_row` (`buffer` is scratch space): the
    /// in-process path and the Ballista plan decide copies on the same value.
    pub(crate) fn fingerprint(&self, buffer: &mut Vec<u8>) -> u128 {
        fingerprint(
            buffer,
            self.transaction_no,
            self.date,
            self.product_no,
            self.customer_no,
            self.quantity,
            self.price,
        )
    }
}

/// Rules 1 to 9 of transactions, in order; the first that fails is the reason.
/// `values` are TransactionNo, Date, ProductNo, CustomerNo, Quantity, Price.
fn check_transaction<'a>(
    values: [Option<&'a str>; 6],
    products: &HashSet<String>,
    customers: &HashSet<String>,
) -> Result<ParsedTransaction<'a>, &'static str> {
    let parsed = check_fields(values)?;
    if !products.contains(parsed.product_no) {
        return Err(reason::UNKNOWN_PRODUCT);
    }
    if !customers.contains(parsed.customer_no) {
        return Err(reason::UNKNOWN_CUSTOMER);
    }
    Ok(parsed)
}

/// Rules 1 to 7 of transactions (those of the line alone), in order; the
/// first that fails is the reason. Rules 8 and 9 need the silver keys:
/// [`check_transaction`] here, joins on Ballista ([`crate::silver_plan`]).
pub(crate) fn check_fields(
    values: [Option<&str>; 6],
) -> Result<ParsedTransaction<'_>, &'static str> {
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
pub(crate) mod tests {
    use super::*;

    fn set(items: &[&str]) -> HashSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn check(values: [Option<&str>; 6]) -> Result<(), &'static str> {
        check_transaction(values, &set(&["P1"]), &set(&["K1"])).map(|_| ())
    }

    /// A transaction line that passes every rule (product P1, customer K1).
    pub(crate) const GOOD: [Option<&str>; 6] = [
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
            batch: Arc::new(RawBatch {
                ingest_date: Arc::from(date),
                values: values.iter().map(|v| StringArray::from(vec![*v])).collect(),
                source_file: StringArray::from(vec!["f.csv"]),
            }),
            row: 0,
            line,
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
                .map(|r| (r.ingest_date().to_string(), r.line))
                .collect(),
            {
                let mut r: Vec<_> = rejected
                    .iter()
                    .map(|(r, why)| (r.ingest_date().to_string(), r.line, *why))
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

    #[test]
    fn lookahead_is_a_unit_unless_the_pool_is_small() {
        let row_group = 128 * 1024;
        assert_eq!(lookahead_for(row_group, 2, None), MAX_LOOKAHEAD);
        // 1 GiB: a pool of 576 MiB holds 8 batches of room.
        assert_eq!(lookahead_for(row_group, 2, Some(576 << 20)), 8);
        // 512 MiB: a pool of 269 MiB, a quarter of it fits 2.
        assert_eq!(lookahead_for(row_group, 2, Some(269 << 20)), 2);
        assert_eq!(lookahead_for(row_group, 2, Some(38 << 20)), 1);
        assert_eq!(lookahead_for(row_group, 32, Some(576 << 20)), 1);
        // Small row groups need less room; an empty lake still has one.
        assert_eq!(lookahead_for(40_000, 2, None), 3);
        assert_eq!(lookahead_for(0, 2, None), 1);
        assert!(in_flight_bytes(2, 2) < in_flight_bytes(2, 4));
    }
}
