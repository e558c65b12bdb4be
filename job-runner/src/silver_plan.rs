//! Preprocess of transactions on a Ballista cluster (`--engine ballista://...`,
//! docs/ballista.md): the contract's rules as DataFusion plans whose tasks run
//! on the executors, instead of [`crate::silver`]'s tasks in this process.
//!
//! - Rules 1 to 7 (the line alone) are one scalar UDF, [`RULES_UDF`], built on
//!   [`crate::silver::check_fields`] and so on [`crate::rules`]: it returns
//!   the first failing rule's reason, or the parsed line. The scheduler's and
//!   executors' function registries hold it ([`udfs`], registered by
//!   [`crate::ballista`]), so plans naming it can be decoded there.
//! - Rules 8 and 9 are left joins (anti-joins that keep their rejects) of the
//!   raw lines to the silver product and customer keys that this run has
//!   just written into its unpublished snapshot folder.
//! - Rule 10 (`duplicate_row`): the UDF also gives each line the in-process
//!   path's 128-bit fingerprint of its parsed 6-tuple; sorted by fingerprint,
//!   ingest date and line within buckets of fingerprints, a line whose
//!   predecessor has its fingerprint is a later copy (`LAG`): the first copy
//!   is kept, as in-process.
//! - Silver is written by the executors (a `COPY` partitioned by year, month
//!   and snapshot, the in-process layout), the rejects into the one file
//!   the in-process path writes; the per-reason counts are an aggregate over
//!   that file. Then [`crate::silver::preprocess`] publishes the snapshot as
//!   without Ballista.
//!
//! The raw scan, the UDF, the joins and the window are split into tasks over
//! every executor (the window after a hash shuffle on the buckets). What does
//! not spread: DataFusion's file sink takes one input partition, so each of
//! the two writes is one task, on one executor, fed by the others' shuffle
//! output.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, Decimal128Builder, Int32Builder, Int64Builder,
    StringBuilder, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use object_store::ObjectMeta;

use crate::engine::register_snapshot_table;
use crate::report::{Progress, StageReport};
use crate::resources::Engine;
use crate::rules;
use crate::silver::{
    SilverError, check_fields, keyed_silver_schema, raw_partitions, reason, reject_schema,
};
use crate::snapshot::{Snapshot, TableFiles};
use crate::storage::Storage;
use crate::tables::{LINE_COLUMN, SOURCE_FILE_COLUMN, Table};

/// The scalar UDF of rules 1 to 7, by the name plans carry it under.
pub const RULES_UDF: &str = "aurum_transaction_rules";

/// The functions Aurum's plans call beyond DataFusion's own: every process
/// that decodes or runs a plan (the job-runner, the scheduler, the
/// executors) must know them by name.
pub fn udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(TransactionRules::new())),
        Arc::new(ScalarUDF::from(Required::new())),
    ]
}

/// The UDF that marks a column NOT NULL, by the name plans carry it under.
pub const REQUIRED_UDF: &str = "aurum_required";

/// Its argument, as a non-nullable column: silver's and the rejects' files
/// declare their columns required, as the in-process path writes them, and
/// a NULL there (which the rules exclude) fails the query.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Required {
    signature: Signature,
}

impl Required {
    fn new() -> Required {
        Required {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    /// The error of a call with other than one argument.
    fn one_argument() -> DataFusionError {
        DataFusionError::Plan(format!("{REQUIRED_UDF} takes one argument"))
    }
}

impl ScalarUDFImpl for Required {
    fn name(&self) -> &str {
        REQUIRED_UDF
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        args.first().cloned().ok_or_else(Required::one_argument)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        let field = args.arg_fields.first().ok_or_else(Required::one_argument)?;
        Ok(Arc::new(Field::new(
            self.name(),
            field.data_type().clone(),
            false,
        )))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let [value] =
            <[ColumnarValue; 1]>::try_from(args.args).map_err(|_| Required::one_argument())?;
        let nulls = match &value {
            ColumnarValue::Array(array) => array.null_count() > 0,
            ColumnarValue::Scalar(scalar) => scalar.is_null(),
        };
        if nulls {
            return Err(DataFusionError::Execution(format!(
                "{REQUIRED_UDF}: a NULL in a column that the rules make required"
            )));
        }
        Ok(value)
    }
}

/// Rules 1 to 7 over the six raw columns: a struct of the first failing
/// rule's `reason` (NULL when all pass) and the parsed `date`, `quantity`,
/// `price`, `amount`, the date's `year` and `month`, and the high and low
/// halves of the line's 128-bit `duplicate_row` fingerprint (`print_hi`,
/// `print_lo`, the in-process path's) (NULL when a rule failed).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TransactionRules {
    signature: Signature,
}

impl TransactionRules {
    fn new() -> TransactionRules {
        TransactionRules {
            signature: Signature::exact(vec![DataType::Utf8; 6], Volatility::Immutable),
        }
    }

    fn fields() -> Fields {
        Fields::from(vec![
            Field::new("reason", DataType::Utf8, true),
            Field::new("date", DataType::Date32, true),
            Field::new("quantity", DataType::Int32, true),
            Field::new("price", DataType::Decimal128(12, 2), true),
            Field::new("amount", DataType::Decimal128(18, 2), true),
            Field::new("year", DataType::Int32, true),
            Field::new("month", DataType::Int32, true),
            Field::new("print_hi", DataType::Int64, true),
            Field::new("print_lo", DataType::Int64, true),
        ])
    }
}

impl ScalarUDFImpl for TransactionRules {
    fn name(&self) -> &str {
        RULES_UDF
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Struct(TransactionRules::fields()))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let columns = arrays
            .iter()
            .map(|a| {
                a.as_string_opt::<i32>().ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "{RULES_UDF} takes Utf8, got {}",
                        a.data_type()
                    ))
                })
            })
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let mut why = StringBuilder::with_capacity(rows, rows * 8);
        let mut date = Date32Builder::with_capacity(rows);
        let mut quantity = Int32Builder::with_capacity(rows);
        let mut price =
            Decimal128Builder::with_capacity(rows).with_data_type(DataType::Decimal128(12, 2));
        let mut amount =
            Decimal128Builder::with_capacity(rows).with_data_type(DataType::Decimal128(18, 2));
        let mut year = Int32Builder::with_capacity(rows);
        let mut month = Int32Builder::with_capacity(rows);
        let mut print_hi = Int64Builder::with_capacity(rows);
        let mut print_lo = Int64Builder::with_capacity(rows);
        let mut scratch = Vec::with_capacity(128);
        for row in 0..rows {
            let value = |c: usize| {
                let column = columns[c];
                (!column.is_null(row)).then(|| column.value(row))
            };
            match check_fields([value(0), value(1), value(2), value(3), value(4), value(5)]) {
                Ok(parsed) => {
                    // The in-process path fails the run here too.
                    let total = parsed.amount().ok_or_else(|| {
                        DataFusionError::Execution(format!(
                            "transaction {} of {}: amount {} * {} does not fit numeric(18,2)",
                            parsed.transaction_no,
                            value(1).unwrap_or_default(),
                            parsed.quantity,
                            value(5).unwrap_or_default()
                        ))
                    })?;
                    let day = rules::from_date32(parsed.date);
                    why.append_null();
                    date.append_value(parsed.date);
                    quantity.append_value(parsed.quantity);
                    price.append_value(i128::from(parsed.price));
                    amount.append_value(total);
                    year.append_value(chrono::Datelike::year(&day));
                    month.append_value(chrono::Datelike::month(&day) as i32);
                    let print = parsed.fingerprint(&mut scratch);
                    print_hi.append_value((print >> 64) as i64);
                    print_lo.append_value(print as i64);
                }
                Err(failed) => {
                    why.append_value(failed);
                    date.append_null();
                    quantity.append_null();
                    price.append_null();
                    amount.append_null();
                    year.append_null();
                    month.append_null();
                    print_hi.append_null();
                    print_lo.append_null();
                }
            }
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(why.finish()),
            Arc::new(date.finish()),
            Arc::new(quantity.finish()),
            Arc::new(price.finish()),
            Arc::new(amount.finish()),
            Arc::new(year.finish()),
            Arc::new(month.finish()),
            Arc::new(print_hi.finish()),
            Arc::new(print_lo.finish()),
        ];
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
            TransactionRules::fields(),
            arrays,
            None,
        )?)))
    }
}

fn query_error(what: &'static str) -> impl Fn(DataFusionError) -> SilverError {
    move |source| SilverError::Read {
        location: format!("transactions on Ballista ({what})"),
        source,
    }
}

/// Quotes a text as an SQL literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The raw transactions of `dates` as table `raw_transactions`, with their
/// ingest date as a column (from the folder name, as the in-process path
/// reads it): the scheduler lists the files and splits them into tasks.
fn register_raw(ctx: &SessionContext, lake: &Storage) -> datafusion::error::Result<()> {
    let root = format!("{}/", lake.object_url(&lake.path("raw/transactions")));
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        // The feed's file name: writes in progress (hidden or staged
        // names) end otherwise.
        .with_file_extension("data.parquet")
        .with_table_partition_cols(vec![("ingest_date".to_owned(), DataType::Utf8)]);
    let config = ListingTableConfig::new(ListingTableUrl::parse(root)?)
        .with_listing_options(options)
        .with_schema(Table::Transactions.raw_schema());
    ctx.register_table("raw_transactions", Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// Buckets of fingerprints that the `duplicate_row` window partitions by:
/// enough to spread over any cluster's tasks, few enough that the window
/// keeps a handful of partitions' state per task (a partition per line, as a
/// window over the 6-tuple has, cost most of the plan's CPU).
const COPY_BUCKETS: u32 = 4096;

/// The lines after rules 1 to 9 (`reason` NULL for those that passed), with
/// `later_copy` true for a line that passed but is not the earliest (by
/// ingest date, then line) of those with its fingerprint (the in-process
/// path's 128-bit fingerprint of the parsed 6-tuple).
///
/// The copies of a fingerprint are next to each other in the window's order
/// (fingerprint, ingest date, line), so a line is a later copy when the one
/// before it has the same fingerprint: `LAG`, over partitions of a few
/// thousand buckets of fingerprints (a sort on four small keys, not on the
/// 6-tuple's strings). `reason` is a key too: rejects never sit between
/// copies, and silver's `reason IS NULL` applies before the shuffle.
/// Rejected lines have no fingerprint (rules 1 to 7) or share theirs only
/// with lines rejected for the same reason (rules 8 and 9 depend on the
/// 6-tuple alone); their `later_copy` is not used. Those without one are
/// spread over the buckets by line.
fn plan_sql(dates: &[String]) -> String {
    let copies = format!(
        r#"(PARTITION BY c.reason, COALESCE(c.p['print_hi'], c."{LINE_COLUMN}") % {COPY_BUCKETS}
             ORDER BY c.p['print_hi'], c.p['print_lo'], c.ingest_date, c."{LINE_COLUMN}")"#
    );
    let dates = dates
        .iter()
        .map(|d| literal(d))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"WITH parsed AS (
             SELECT r."TransactionNo", r."Date", r."ProductNo", r."CustomerNo", r."Quantity",
                    r."Price", r."{SOURCE_FILE_COLUMN}", r."{LINE_COLUMN}", r.ingest_date,
                    {RULES_UDF}(r."TransactionNo", r."Date", r."ProductNo", r."CustomerNo",
                                r."Quantity", r."Price") AS p
             FROM raw_transactions r
             WHERE r.ingest_date IN ({dates})
           ),
           checked AS (
             SELECT l.*,
                    COALESCE(l.p['reason'],
                             CASE WHEN pr.product_no IS NULL THEN '{unknown_product}'
                                  WHEN cu.customer_no IS NULL THEN '{unknown_customer}' END) AS reason
             FROM parsed l
             LEFT JOIN silver_products pr ON l."ProductNo" = pr.product_no
             LEFT JOIN silver_customers cu ON l."CustomerNo" = cu.customer_no
           ),
           numbered AS (
             SELECT c.*,
                    (LAG(c.p['print_hi']) OVER {copies} = c.p['print_hi']
                     AND LAG(c.p['print_lo']) OVER {copies} = c.p['print_lo']) AS later_copy
             FROM checked c
           )"#,
        unknown_product = reason::UNKNOWN_PRODUCT,
        unknown_customer = reason::UNKNOWN_CUSTOMER,
    )
}

/// The raw columns of a reject, then its ingest date, file, line.
const REJECT_COLUMNS: &str = r#""TransactionNo", "Date", "ProductNo", "CustomerNo", "Quantity", "Price",
    ingest_date AS "_ingest_date", "_source_file", "_line""#;

/// The `count` of a write's result.
fn written_rows(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| c.as_primitive_opt::<datafusion::arrow::datatypes::UInt64Type>())
        .flat_map(|c| c.iter().flatten())
        .sum()
}

/// Rows in Parquet files by their footers (no data read), in this process.
async fn footer_rows(
    engine: &Engine,
    lake: &Storage,
    urls: Vec<String>,
) -> Result<u64, SilverError> {
    if urls.is_empty() {
        return Ok(0);
    }
    let ctx = engine.session(engine.config());
    lake.register(&ctx);
    let count = ctx
        .read_parquet(urls, ParquetReadOptions::default())
        .await
        .map_err(query_error("counting rows"))?
        .count()
        .await
        .map_err(query_error("counting rows"))?;
    Ok(count as u64)
}

/// Registers what the plans read in `ctx`: the UDFs, the lake's object
/// store, the raw transactions and the silver product and customer keys of
/// `snapshot`.
fn register_inputs(
    ctx: &SessionContext,
    lake: &Storage,
    snapshot: &Snapshot,
) -> Result<(), SilverError> {
    // DataFusion's leaf-expression pushdown would move each `p['...']`
    // below the projection that names `p`, so the rules would run once per
    // field read (three times a line, measured); the setting goes with every
    // job to the scheduler.
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .optimizer
        .enable_leaf_expression_pushdown = false;
    lake.register(ctx);
    for udf in udfs() {
        ctx.register_udf(udf.as_ref().clone());
    }
    register_raw(ctx, lake).map_err(query_error("the raw files"))?;
    for keyed in [Table::Products, Table::Customers] {
        let urls: Vec<String> = snapshot
            .table(keyed.name())
            .iter()
            .map(|f| lake.object_url(&lake.path(f)))
            .collect();
        register_snapshot_table(
            ctx,
            &format!("silver_{keyed}"),
            keyed_silver_schema(keyed),
            &urls,
        )
        .map_err(query_error("the silver keys"))?;
    }
    Ok(())
}

/// The silver rows of the raw lines of `dates`, for snapshot `id`.
fn silver_sql(dates: &[String], id: &str) -> String {
    format!(
        r#"{with}
           SELECT {REQUIRED_UDF}("TransactionNo") AS transaction_no,
                  {REQUIRED_UDF}(p['date']) AS "date",
                  {REQUIRED_UDF}("ProductNo") AS product_no,
                  {REQUIRED_UDF}("CustomerNo") AS customer_no,
                  {REQUIRED_UDF}(p['quantity']) AS quantity,
                  {REQUIRED_UDF}(p['price']) AS price,
                  {REQUIRED_UDF}(p['amount']) AS amount,
                  p['year'] AS year, p['month'] AS month, {snapshot} AS snapshot
           FROM numbered WHERE reason IS NULL AND later_copy IS NOT TRUE"#,
        with = plan_sql(dates),
        snapshot = literal(id),
    )
}

/// The rejected lines of `dates`, with their reasons.
fn rejects_sql(dates: &[String]) -> String {
    format!(
        r#"{with}
           SELECT {REJECT_COLUMNS},
                  {REQUIRED_UDF}(COALESCE(reason, '{duplicate}')) AS reason
           FROM numbered WHERE reason IS NOT NULL OR later_copy IS TRUE"#,
        with = plan_sql(dates),
        duplicate = reason::DUPLICATE_ROW,
    )
}

/// Rebuilds silver transactions on the Ballista cluster into `snapshot`
/// (unpublished), against the silver products and customers it already
/// holds. The report counts what the executors wrote and rejected.
pub async fn clean_transactions(
    lake: &Storage,
    snapshot: &mut Snapshot,
    engine: &Engine,
    ctx: SessionContext,
) -> Result<StageReport, SilverError> {
    let table = Table::Transactions;
    let mut report = StageReport::new("preprocess", table.name());
    report.engine = Some(engine.choice.to_string());
    let progress = Progress::new("preprocess", table.name());
    let partitions = raw_partitions(lake, table).await?;
    report.bytes_read = partitions.iter().map(|p| p.object.size).sum();
    let dates: Vec<String> = partitions.iter().map(|p| p.ingest_date.clone()).collect();
    let id = snapshot.snapshot_id.clone();

    register_inputs(&ctx, lake, snapshot)?;
    let parquet = {
        let mut options = TableParquetOptions::default();
        options.global.compression = Some("snappy".to_owned());
        options.global.max_row_group_size = 128 * 1024;
        options
    };

    // Silver, in the snapshot's own folder of each month (as in-process).
    let silver_sql = silver_sql(&dates, &id);
    let silver_root = format!("{}/", lake.object_url(&lake.path("silver/transactions")));
    let written = ctx
        .sql(&silver_sql)
        .await
        .map_err(query_error("planning silver"))?
        .write_parquet(
            &silver_root,
            DataFrameWriteOptions::new().with_partition_by(vec![
                "year".to_owned(),
                "month".to_owned(),
                "snapshot".to_owned(),
            ]),
            Some(parquet.clone()),
        )
        .await
        .map_err(query_error("writing silver"))?;
    let written = written_rows(&written);

    // The rejects, into the one file the in-process path writes.
    let rejects_path = format!("silver/_rejects/{table}/snapshot={id}/part-{id}.parquet");
    let rejects_sql = rejects_sql(&dates);
    let rejects_url = lake.object_url(&lake.path(&rejects_path));
    let rejected = ctx
        .sql(&rejects_sql)
        .await
        .map_err(query_error("planning the rejects"))?
        .write_parquet(
            &rejects_url,
            DataFrameWriteOptions::new().with_single_file_output(true),
            Some(parquet),
        )
        .await
        .map_err(query_error("writing the rejects"))?;
    let rejected = written_rows(&rejected);

    // The report's counts per reason: an aggregate over the rejects file.
    register_snapshot_table(
        &ctx,
        "written_rejects",
        reject_schema(table),
        std::slice::from_ref(&rejects_url),
    )
    .map_err(query_error("the rejects"))?;
    let counts = ctx
        .sql("SELECT reason, COUNT(*) AS n FROM written_rejects GROUP BY reason")
        .await
        .map_err(query_error("counting the rejects"))?
        .collect()
        .await
        .map_err(query_error("counting the rejects"))?;
    for batch in &counts {
        let (Some(why), Some(n)) = (
            batch.column(0).as_string_opt::<i32>(),
            batch
                .column(1)
                .as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>(),
        ) else {
            return Err(query_error("counting the rejects")(
                DataFusionError::Internal("unexpected result columns".to_owned()),
            ));
        };
        for row in 0..batch.num_rows() {
            let count = n.value(row).max(0) as u64;
            report.rows_rejected += count;
            *report.rejects.entry(why.value(row).to_owned()).or_default() += count;
        }
    }

    // The files of this snapshot's silver. One write names all its files
    // alike (a random id per run of the sink task): a sink task that died
    // after closing some files and ran again elsewhere leaves those behind
    // under another name. So the files are grouped by name, and the group
    // holding exactly the rows the write reported is silver; the others are
    // left for the publish's clean-up of unnamed files.
    let prefix = format!("/snapshot={id}/");
    let mut groups: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
    for object in lake.list("silver/transactions").await? {
        let relative = lake.relative(&object.location);
        if relative.contains(&prefix)
            && let Some(name) = object
                .location
                .filename()
                .filter(|n| n.ends_with(".parquet"))
        {
            groups.entry(name.to_owned()).or_default().push(object);
        }
    }
    let mut chosen = None;
    let mut in_files = 0;
    for (name, objects) in groups {
        let urls = objects
            .iter()
            .map(|o| lake.object_url(&o.location))
            .collect();
        in_files = footer_rows(engine, lake, urls).await?;
        if in_files == written {
            chosen = Some(objects);
            break;
        }
        tracing::warn!(
            files = %name,
            rows = in_files,
            written,
            "silver files of an earlier try of the write task are left out"
        );
    }
    let objects = chosen.unwrap_or_default();
    let files: Vec<String> = objects.iter().map(|o| lake.relative(&o.location)).collect();
    report.bytes_written += objects.iter().map(|o| o.size).sum::<u64>();
    let raw_urls = partitions
        .iter()
        .map(|p| lake.object_url(&p.object.location))
        .collect();
    let raw_rows = footer_rows(engine, lake, raw_urls).await?;
    if (files.is_empty() && written > 0)
        || report.rows_rejected != rejected
        || written + rejected != raw_rows
    {
        return Err(SilverError::Unbalanced {
            snapshot: id,
            raw: raw_rows,
            written,
            in_files,
            rejected,
            counted: report.rows_rejected,
        });
    }
    report.bytes_written += lake.size(&lake.path(&rejects_path)).await?.unwrap_or(0);
    report.rows_read = raw_rows;
    report.rows_written = written;
    snapshot.tables.insert(
        table.name().to_owned(),
        TableFiles {
            files,
            rows: written,
        },
    );
    snapshot.rejects.insert(
        table.name().to_owned(),
        TableFiles {
            files: vec![rejects_path],
            rows: rejected,
        },
    );
    report.finish(progress.elapsed(), progress.cpu());
    tracing::info!(
        rows = report.rows_read,
        written = report.rows_written,
        rejected = report.rows_rejected,
        "silver transactions written by the Ballista executors"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::Field;

    fn invoke(rows: &[[Option<&str>; 6]]) -> datafusion::error::Result<StructArray> {
        let udf = TransactionRules::new();
        let args = (0..6)
            .map(|c| {
                ColumnarValue::Array(Arc::new(rows.iter().map(|r| r[c]).collect::<StringArray>()))
            })
            .collect();
        let result = udf.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields: (0..6)
                .map(|c| Arc::new(Field::new(format!("c{c}"), DataType::Utf8, true)))
                .collect(),
            number_rows: rows.len(),
            return_field: Arc::new(Field::new(
                "r",
                DataType::Struct(TransactionRules::fields()),
                true,
            )),
            config_options: Arc::default(),
        })?;
        let ColumnarValue::Array(array) = result else {
            panic!("an array");
        };
        Ok(array.as_struct().clone())
    }

    /// Not a test: the per-operator metrics of the silver and rejects
    /// writes, run in this process on a lake given as AURUM_PLAN_LAKE (one
    /// with raw transactions and a published snapshot, e.g. after an
    /// in-process `run`), written under AURUM_PLAN_OUT (default: a temp dir).
    /// `cargo test --workspace silver_plan::tests::plan_metrics -- --ignored --nocapture`
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement on a lake given by AURUM_PLAN_LAKE"]
    async fn plan_metrics() {
        let lake = Storage::open(&std::env::var("AURUM_PLAN_LAKE").unwrap(), false).unwrap();
        let out = std::env::var("AURUM_PLAN_OUT").unwrap_or_else(|_| {
            std::env::temp_dir()
                .join(format!("aurum-plan-metrics-{}", std::process::id()))
                .display()
                .to_string()
        });
        let snapshot = Snapshot::require(&lake).await.unwrap();
        let dates: Vec<String> = raw_partitions(&lake, Table::Transactions)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.ingest_date)
            .collect();
        let engine = Engine::unlimited();
        let ctx = engine.session(engine.config().with_target_partitions(2));
        register_inputs(&ctx, &lake, &snapshot).unwrap();
        let statements = [
            (
                "silver",
                format!(
                    "COPY ({}) TO '{out}/silver/' STORED AS PARQUET PARTITIONED BY (year, month, snapshot)",
                    silver_sql(&dates, "measure")
                ),
            ),
            (
                "rejects",
                format!(
                    "COPY ({}) TO '{out}/rejects.parquet' STORED AS PARQUET",
                    rejects_sql(&dates)
                ),
            ),
        ];
        for (name, sql) in statements {
            let clock = crate::report::Progress::new("measure", name);
            let plan = ctx
                .sql(&format!("EXPLAIN ANALYZE {sql}"))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            println!(
                "== {name}: {:?} wall, {:?} CPU\n{}",
                clock.elapsed(),
                clock.cpu(),
                datafusion::arrow::util::pretty::pretty_format_batches(&plan).unwrap()
            );
        }
    }

    #[test]
    fn the_udf_gives_the_first_failing_rule_or_the_parsed_line() {
        let good = crate::silver::tests::GOOD;
        let mut cancelled = good;
        cancelled[0] = Some("C1");
        cancelled[4] = Some("-3");
        let mut missing = good;
        missing[5] = None;
        let out = invoke(&[good, cancelled, missing]).unwrap();
        let why = out.column(0).as_string::<i32>();
        assert!(why.is_null(0));
        assert_eq!(why.value(1), reason::CANCELLATION);
        assert_eq!(why.value(2), reason::MISSING_REQUIRED);
        let date = out
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Date32Type>();
        assert_eq!(date.value(0), 19362);
        assert!(date.is_null(1));
        let amount = out
            .column(4)
            .as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
        assert_eq!(amount.value(0), 750);
        let year = out
            .column(5)
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let month = out
            .column(6)
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        assert_eq!((year.value(0), month.value(0)), (2023, 1));
    }

    #[test]
    fn the_udf_gives_the_in_process_fingerprint_of_the_parsed_line() {
        let good = crate::silver::tests::GOOD;
        // The same parsed line written otherwise: a copy.
        let mut same = good;
        same[5] = Some("2.5");
        let mut other = good;
        other[4] = Some("4");
        let mut cancelled = good;
        cancelled[0] = Some("C1");
        let out = invoke(&[good, same, other, cancelled]).unwrap();
        let half = |c: usize| {
            out.column(c)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .clone()
        };
        let (hi, lo) = (half(7), half(8));
        let print = |row: usize| ((hi.value(row) as u128) << 64) | u128::from(lo.value(row) as u64);
        let expected = check_fields(good).unwrap().fingerprint(&mut Vec::new());
        assert_eq!(print(0), expected);
        assert_eq!(print(1), expected);
        assert_ne!(print(2), expected);
        assert!(hi.is_null(3) && lo.is_null(3));
    }

    #[test]
    fn an_amount_past_numeric_18_2_fails_the_query() {
        let mut line = crate::silver::tests::GOOD;
        line[4] = Some("2147483647");
        line[5] = Some("9999999999.99");
        let error = invoke(&[line]).unwrap_err();
        assert!(
            error.to_string().contains("does not fit numeric(18,2)"),
            "{error}"
        );
    }
}
