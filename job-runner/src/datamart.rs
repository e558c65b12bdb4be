//! Stage `datamart`: the four gold datamarts (docs/data-format.md, "Gold tables"), computed
//! with DataFusion over one silver snapshot, then checked before publishing.
//!
//! DataFusion does the heavy part (joins, grouping, distinct counts over all
//! transactions); the small per-group results are ranked and rounded here with
//! exact integer arithmetic.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, Date32Array, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingTableUrl, PartitionedFile};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use postgres_types::ToSql;

use crate::engine::{EngineChoice, register_snapshot_table};
use crate::report::CheckReport;
use crate::resources::{Engine, spilled_bytes};
use crate::rules::from_date32;
use crate::silver::{keyed_silver_schema, transactions_schema};
use crate::snapshot::Snapshot;
use crate::storage::{Storage, StorageError};
use crate::tables::Table;
use aurum_gold::money::{Money, growth_pct};

pub use aurum_gold::Datamart;
pub use aurum_gold::tables::{CustomerLifetimeValue, MonthlySales, SalesCountryYear, TopProduct};

/// Why a datamart could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum DatamartError {
    /// DataFusion failed planning or running a query.
    #[error("computing {datamart}: {source}")]
    Query {
        /// What was being computed.
        datamart: String,
        /// DataFusion's error.
        #[source]
        source: DataFusionError,
    },
    /// A file the snapshot names is gone: read as empty, its table would make
    /// a wrong gold table.
    #[error(
        "silver file {file} of snapshot {snapshot_id} is missing (deleted while this run \
         read it, or the lake was changed by hand); nothing was published: run the datamart again"
    )]
    MissingFile {
        /// The file's URL.
        file: String,
        /// The snapshot naming it.
        snapshot_id: String,
    },
    /// A file the snapshot names could not be looked up.
    #[error("reading silver snapshot {snapshot_id}: {source}")]
    Storage {
        /// The snapshot read.
        snapshot_id: String,
        /// The lake's error (boxed: it is large, and rare).
        #[source]
        source: Box<StorageError>,
    },
    /// A silver table read does not have the rows its snapshot recorded.
    #[error(
        "silver table {table} of snapshot {snapshot_id} reads {read} rows, its snapshot recorded \
         {recorded}; nothing was published"
    )]
    RowsDiffer {
        /// The silver table.
        table: String,
        /// The snapshot read.
        snapshot_id: String,
        /// Rows read.
        read: u64,
        /// Rows the manifest recorded.
        recorded: u64,
    },
}

/// A row of a gold table, as PostgreSQL receives it.
pub trait GoldRow: Send + Sync {
    /// The datamart whose table holds the row; its columns are the row's.
    const DATAMART: Datamart;

    /// The primary key, for the uniqueness check and messages.
    fn key(&self) -> String;

    /// The row's values, in the order of the table's columns.
    fn values(&self) -> Vec<&(dyn ToSql + Sync)>;
}

impl GoldRow for SalesCountryYear {
    const DATAMART: Datamart = Datamart::SalesCountryYear;

    fn key(&self) -> String {
        format!("({}, {})", self.year, self.country)
    }

    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.year,
            &self.country,
            &self.total_sales,
            &self.total_quantity,
            &self.transactions,
            &self.customers,
        ]
    }
}

impl GoldRow for TopProduct {
    const DATAMART: Datamart = Datamart::TopProducts;

    fn key(&self) -> String {
        format!("({}, {})", self.scope, self.rank)
    }

    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.scope,
            &self.rank,
            &self.product_no,
            &self.product_name,
            &self.total_sales,
            &self.total_quantity,
            &self.transactions,
        ]
    }
}

impl GoldRow for MonthlySales {
    const DATAMART: Datamart = Datamart::MonthlySales;

    fn key(&self) -> String {
        self.month.to_string()
    }

    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.month,
            &self.total_sales,
            &self.total_quantity,
            &self.transactions,
            &self.customers,
            &self.avg_transaction_value,
            &self.mom_growth_pct,
        ]
    }
}

impl GoldRow for CustomerLifetimeValue {
    const DATAMART: Datamart = Datamart::CustomerLifetimeValue;

    fn key(&self) -> String {
        self.customer_no.clone()
    }

    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.customer_no,
            &self.first_name,
            &self.last_name,
            &self.country,
            &self.first_purchase,
            &self.last_purchase,
            &self.transactions,
            &self.total_quantity,
            &self.lifetime_value,
            &self.avg_transaction_value,
            &self.value_rank,
            &self.value_quartile,
        ]
    }
}

/// Totals of silver, the reference the gold checks reconcile against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SilverTotals {
    /// Silver transaction lines.
    pub lines: i64,
    /// Sum of `amount`.
    pub amount: Money,
    /// Sum of `quantity`.
    pub quantity: i64,
    /// Distinct customers with a transaction.
    pub customers: i64,
    /// Distinct products with a transaction.
    pub products: i64,
}

/// Totals of the silver transactions of one country's customers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountryTotals {
    /// Transaction lines.
    pub lines: i64,
    /// Sum of `amount`.
    pub amount: Money,
    /// Sum of `quantity`.
    pub quantity: i64,
    /// Distinct customers with a transaction.
    pub customers: i64,
    /// Distinct products sold; only known after
    /// [`Silver::count_products_per_country`] (the top-products check needs it).
    pub products: i64,
}

/// A DataFusion session over one silver snapshot.
pub struct Silver {
    ctx: SessionContext,
    /// The snapshot read.
    pub snapshot_id: String,
    /// Silver totals.
    pub totals: SilverTotals,
    /// Silver totals per country name, over the contract's base join
    /// (transactions → customers → countries).
    pub by_country: BTreeMap<String, CountryTotals>,
    country_names: HashSet<String>,
    product_nos: HashSet<String>,
    customer_nos: HashSet<String>,
    spilled: AtomicU64,
}

/// One silver table: exactly the files its snapshot names, looked up when the
/// snapshot is opened.
///
/// DataFusion's `ListingTable` lists a path that is not found as a (then empty)
/// folder, so a file deleted under a run would read as an empty table; here a
/// missing file is an error when the snapshot is opened, and a read error if it
/// goes later.
#[derive(Debug)]
struct SnapshotTable {
    schema: SchemaRef,
    store: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
    /// Rows the snapshot recorded, for the planner (hash joins build on the
    /// smaller side). Inexact, so that `COUNT(*)` still reads the files.
    rows: u64,
}

#[async_trait::async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let partitions = state
            .config()
            .target_partitions()
            .clamp(1, self.files.len().max(1));
        let mut groups = vec![Vec::new(); partitions];
        for (index, file) in self.files.iter().enumerate() {
            groups[index % partitions].push(file.clone());
        }
        let format = ParquetFormat::default();
        let source = format.file_source(TableSchema::from(Arc::clone(&self.schema)));
        let bytes: u64 = self.files.iter().map(|f| f.object_meta.size).sum();
        let statistics = Statistics::new_unknown(&self.schema)
            .with_num_rows(Precision::Inexact(self.rows as usize))
            .with_total_byte_size(Precision::Inexact(bytes as usize));
        let config = FileScanConfigBuilder::new(self.store.clone(), source)
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_statistics(statistics)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

fn query_error(what: &str) -> impl Fn(DataFusionError) -> DatamartError + '_ {
    move |source| DatamartError::Query {
        datamart: what.to_owned(),
        source,
    }
}

impl Silver {
    /// Opens a snapshot of a lake for querying.
    pub async fn open(
        lake: &Storage,
        snapshot: &Snapshot,
        engine: &Engine,
    ) -> Result<Silver, DatamartError> {
        let err = query_error("the silver tables");
        let remote = engine.choice != EngineChoice::InProcess;
        let ctx = match engine.remote_session() {
            None => engine.session(engine.config()),
            Some(session) => session.map_err(&err)?,
        };
        lake.register(&ctx);
        for table in Table::ALL {
            let schema = match table {
                Table::Transactions => transactions_schema(),
                keyed => keyed_silver_schema(keyed),
            };
            let files = snapshot.table(table.name());
            let mut parts = Vec::with_capacity(files.len());
            for file in files {
                let path = lake.path(file);
                let size = lake
                    .size(&path)
                    .await
                    .map_err(|source| DatamartError::Storage {
                        snapshot_id: snapshot.snapshot_id.clone(),
                        source: Box::new(source),
                    })?
                    .ok_or_else(|| DatamartError::MissingFile {
                        file: lake.object_url(&path),
                        snapshot_id: snapshot.snapshot_id.clone(),
                    })?;
                parts.push(PartitionedFile::new(path.to_string(), size));
            }
            if remote {
                // The snapshot table below cannot be sent to a scheduler.
                let urls: Vec<String> = files
                    .iter()
                    .map(|f| lake.object_url(&lake.path(f)))
                    .collect();
                register_snapshot_table(&ctx, table.name(), schema, &urls).map_err(&err)?;
                continue;
            }
            let provider: Arc<dyn TableProvider> = if files.is_empty() {
                Arc::new(MemTable::try_new(Arc::clone(&schema), vec![vec![]]).map_err(&err)?)
            } else {
                let store = ListingTableUrl::parse(lake.object_url(&lake.path(&files[0])))
                    .map_err(&err)?
                    .object_store();
                Arc::new(SnapshotTable {
                    schema,
                    store,
                    files: parts,
                    rows: snapshot.tables.get(table.name()).map_or(0, |t| t.rows),
                })
            };
            ctx.register_table(table.name(), provider).map_err(&err)?;
        }
        // The contract's base is transactions joined to products, customers
        // and countries, and every silver transaction resolves. So a datamart
        // joins only the dimensions it groups by, and names are looked up
        // after aggregating: fewer and narrower keys to hash.
        ctx.sql(
            r#"CREATE VIEW sales AS
               SELECT t.transaction_no, t."date", t.product_no, t.customer_no, t.quantity, t.amount,
                      co.country_name
               FROM transactions t
               JOIN customers c ON t.customer_no = c.customer_no
               JOIN countries co ON c.country_id = co.country_id"#,
        )
        .await
        .map_err(&err)?;

        let mut silver = Silver {
            ctx,
            snapshot_id: snapshot.snapshot_id.clone(),
            totals: SilverTotals::default(),
            by_country: BTreeMap::new(),
            country_names: HashSet::new(),
            product_nos: HashSet::new(),
            customer_nos: HashSet::new(),
            spilled: AtomicU64::new(0),
        };
        // Distinct customers and products are counted as the groups of a
        // GROUP BY (which spills) rather than with COUNT(DISTINCT), whose
        // single group merges every partition's distinct set in one piece of
        // memory (at 50 million lines, one 440 MiB allocation).
        let totals = silver
            .query(
                "silver totals",
                "SELECT t.lines, t.amount, t.quantity, c.customers, p.products \
                 FROM (SELECT COUNT(*) AS lines, SUM(amount) AS amount, \
                              SUM(CAST(quantity AS BIGINT)) AS quantity FROM transactions) t \
                 CROSS JOIN (SELECT COUNT(*) AS customers \
                             FROM (SELECT customer_no FROM transactions GROUP BY customer_no)) c \
                 CROSS JOIN (SELECT COUNT(*) AS products \
                             FROM (SELECT product_no FROM transactions GROUP BY product_no)) p",
            )
            .await?;
        for batch in &totals {
            let c = Columns::new(batch);
            for row in 0..batch.num_rows() {
                silver.totals = SilverTotals {
                    lines: c.i64(0, row),
                    amount: c.cents(1, row),
                    quantity: c.i64(2, row),
                    customers: c.i64(3, row),
                    products: c.i64(4, row),
                };
            }
        }
        // Per country, from per-customer sums: the join then only sees one row
        // per customer, so this costs about one pass over the transactions.
        for batch in &silver
            .query(
                "silver totals per country",
                "SELECT co.country_name, SUM(t.lines), SUM(t.amount), SUM(t.quantity), COUNT(*) \
                 FROM (SELECT customer_no, COUNT(*) AS lines, SUM(amount) AS amount, \
                              SUM(CAST(quantity AS BIGINT)) AS quantity \
                       FROM transactions GROUP BY customer_no) t \
                 JOIN customers c ON t.customer_no = c.customer_no \
                 JOIN countries co ON c.country_id = co.country_id \
                 GROUP BY co.country_name",
            )
            .await?
        {
            let c = Columns::new(batch);
            for row in 0..batch.num_rows() {
                silver.by_country.insert(
                    c.string(0, row),
                    CountryTotals {
                        lines: c.i64(1, row),
                        amount: c.cents(2, row),
                        quantity: c.i64(3, row),
                        customers: c.i64(4, row),
                        products: 0,
                    },
                );
            }
        }
        // Each table must read as many rows as the snapshot recorded: a file
        // that reads short would make a gold table that looks whole.
        for table in Table::ALL {
            let Some(recorded) = snapshot.tables.get(table.name()).map(|t| t.rows) else {
                continue;
            };
            // The transactions were just counted with their totals.
            let read = if table == Table::Transactions {
                silver.totals.lines
            } else {
                let mut read = 0;
                for batch in &silver
                    .query(
                        "silver row counts",
                        &format!("SELECT COUNT(*) FROM {}", table.name()),
                    )
                    .await?
                {
                    let c = Columns::new(batch);
                    read += (0..batch.num_rows()).map(|row| c.i64(0, row)).sum::<i64>();
                }
                read
            };
            if read != recorded as i64 {
                return Err(DatamartError::RowsDiffer {
                    table: table.name().to_owned(),
                    snapshot_id: snapshot.snapshot_id.clone(),
                    read: read.max(0) as u64,
                    recorded,
                });
            }
        }
        silver.country_names = silver
            .distinct("SELECT country_name FROM countries")
            .await?;
        silver.product_nos = silver.distinct("SELECT product_no FROM products").await?;
        silver.customer_nos = silver.distinct("SELECT customer_no FROM customers").await?;
        Ok(silver)
    }

    async fn query(&self, what: &str, sql: &str) -> Result<Vec<RecordBatch>, DatamartError> {
        let err = query_error(what);
        let plan = self
            .ctx
            .sql(sql)
            .await
            .map_err(&err)?
            .create_physical_plan()
            .await
            .map_err(&err)?;
        let batches = datafusion::physical_plan::collect(Arc::clone(&plan), self.ctx.task_ctx())
            .await
            .map_err(&err)?;
        self.spilled
            .fetch_add(spilled_bytes(plan.as_ref()), Ordering::Relaxed);
        Ok(batches)
    }

    /// Bytes this session's queries have spilled to disk so far.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    /// Fills [`CountryTotals::products`]: how many distinct products each
    /// country's customers bought (a pass over the join, so only for the
    /// top-products check, which needs it).
    pub async fn count_products_per_country(&mut self) -> Result<(), DatamartError> {
        let batches = self
            .query(
                "silver products per country",
                "SELECT country_name, COUNT(*) FROM \
                 (SELECT country_name, product_no FROM sales GROUP BY country_name, product_no) \
                 GROUP BY country_name",
            )
            .await?;
        for batch in &batches {
            let c = Columns::new(batch);
            for row in 0..batch.num_rows() {
                if let Some(country) = self.by_country.get_mut(&c.string(0, row)) {
                    country.products = c.i64(1, row);
                }
            }
        }
        Ok(())
    }

    async fn distinct(&self, sql: &str) -> Result<HashSet<String>, DatamartError> {
        let mut values = HashSet::new();
        for batch in self.query("silver keys", sql).await? {
            let c = Columns::new(&batch);
            for row in 0..batch.num_rows() {
                if let Some(v) = c.opt_string(0, row) {
                    values.insert(v);
                }
            }
        }
        Ok(values)
    }

    /// `gold_sales_country_year`.
    pub async fn sales_country_year(&self) -> Result<Vec<SalesCountryYear>, DatamartError> {
        let batches = self
            .query(
                Datamart::SalesCountryYear.name(),
                &distinct_counts(
                    r#"SELECT CAST(date_part('year', "date") AS INT) AS k1, country_name AS k2,
                              transaction_no, customer_no, amount, quantity FROM sales"#,
                ),
            )
            .await?;
        let mut rows = Vec::new();
        for batch in &batches {
            let c = Columns::new(batch);
            for row in 0..batch.num_rows() {
                rows.push(SalesCountryYear {
                    year: c.i32(0, row),
                    country: c.string(1, row),
                    total_sales: c.cents(2, row),
                    total_quantity: c.i64(3, row),
                    transactions: c.i64(4, row),
                    customers: c.i64(5, row),
                });
            }
        }
        rows.sort_by(|a, b| (a.year, &a.country).cmp(&(b.year, &b.country)));
        Ok(rows)
    }

    /// `gold_top_products`, keeping ranks `1..=top_n` of every scope.
    pub async fn top_products(&self, top_n: u32) -> Result<Vec<TopProduct>, DatamartError> {
        let what = Datamart::TopProducts.name();
        let names: HashMap<String, String> = self
            .query(what, "SELECT product_no, product_name FROM products")
            .await?
            .iter()
            .flat_map(|batch| {
                let c = Columns::new(batch);
                (0..batch.num_rows()).map(move |row| (c.string(0, row), c.string(1, row)))
            })
            .collect();
        // Transactions are counted as groups of an inner aggregation by
        // (scope, product, transaction) rather than with COUNT(DISTINCT):
        // plain sums aggregate in parallel and spill compactly, where distinct
        // sets per group do neither. One scope kind at a time: two at once
        // would double the peak.
        let scope_queries = [
            "SELECT 'ALL', product_no, SUM(amount), SUM(quantity), COUNT(*) \
             FROM (SELECT product_no, transaction_no, SUM(amount) AS amount, \
                          SUM(CAST(quantity AS BIGINT)) AS quantity \
                   FROM transactions GROUP BY product_no, transaction_no) \
             GROUP BY product_no",
            "SELECT country_name, product_no, SUM(amount), SUM(quantity), COUNT(*) \
             FROM (SELECT country_name, product_no, transaction_no, SUM(amount) AS amount, \
                          SUM(CAST(quantity AS BIGINT)) AS quantity \
                   FROM sales GROUP BY country_name, product_no, transaction_no) \
             GROUP BY country_name, product_no",
        ];
        let mut scopes: BTreeMap<String, Vec<TopProduct>> = BTreeMap::new();
        for sql in scope_queries {
            for batch in &self.query(what, sql).await? {
                let c = Columns::new(batch);
                for row in 0..batch.num_rows() {
                    let product_no = c.string(1, row);
                    let product = TopProduct {
                        scope: c.string(0, row),
                        rank: 0,
                        product_name: names.get(&product_no).cloned().unwrap_or_default(),
                        product_no,
                        total_sales: c.cents(2, row),
                        total_quantity: c.i64(3, row),
                        transactions: c.i64(4, row),
                    };
                    scopes
                        .entry(product.scope.clone())
                        .or_default()
                        .push(product);
                }
            }
        }
        Ok(rank_top_products(scopes, top_n))
    }

    /// `gold_monthly_sales`.
    pub async fn monthly_sales(&self) -> Result<Vec<MonthlySales>, DatamartError> {
        let batches = self
            .query(
                Datamart::MonthlySales.name(),
                &distinct_counts(
                    r#"SELECT CAST(date_part('year', "date") AS INT) AS k1,
                              CAST(date_part('month', "date") AS INT) AS k2,
                              transaction_no, customer_no, amount, quantity FROM transactions"#,
                ),
            )
            .await?;
        let mut months = Vec::new();
        for batch in &batches {
            let c = Columns::new(batch);
            for row in 0..batch.num_rows() {
                let (year, month) = (c.i32(0, row), c.i32(1, row));
                let Some(first_day) = NaiveDate::from_ymd_opt(year, month as u32, 1) else {
                    continue;
                };
                let total_sales = c.cents(2, row);
                let transactions = c.i64(4, row);
                months.push(MonthlySales {
                    month: first_day,
                    total_sales,
                    total_quantity: c.i64(3, row),
                    transactions,
                    customers: c.i64(5, row),
                    avg_transaction_value: Money::ratio(total_sales, i128::from(transactions)),
                    mom_growth_pct: None,
                });
            }
        }
        Ok(with_growth(months))
    }

    /// `gold_customer_lifetime_value`.
    pub async fn customer_lifetime_value(
        &self,
    ) -> Result<Vec<CustomerLifetimeValue>, DatamartError> {
        // Transactions counted as groups of (customer, transaction), as in
        // top_products: no distinct sets per customer.
        let batches = self
            .query(
                Datamart::CustomerLifetimeValue.name(),
                r#"SELECT a.customer_no, c.first_name, c.last_name, co.country_name, a.first_purchase,
                          a.last_purchase, a.transactions, a.quantity, a.amount
                   FROM (SELECT customer_no, MIN(first_date) AS first_purchase,
                                MAX(last_date) AS last_purchase, COUNT(*) AS transactions,
                                SUM(quantity) AS quantity, SUM(amount) AS amount
                         FROM (SELECT customer_no, transaction_no, MIN("date") AS first_date,
                                      MAX("date") AS last_date,
                                      SUM(CAST(quantity AS BIGINT)) AS quantity, SUM(amount) AS amount
                               FROM transactions GROUP BY customer_no, transaction_no)
                         GROUP BY customer_no) a
                   JOIN customers c ON a.customer_no = c.customer_no
                   JOIN countries co ON c.country_id = co.country_id"#,
            )
            .await?;
        let mut customers = Vec::new();
        for batch in &batches {
            let c = Columns::new(batch);
            for row in 0..batch.num_rows() {
                let transactions = c.i64(6, row);
                let lifetime_value = c.cents(8, row);
                customers.push(CustomerLifetimeValue {
                    customer_no: c.string(0, row),
                    first_name: c.opt_string(1, row),
                    last_name: c.opt_string(2, row),
                    country: c.string(3, row),
                    first_purchase: c.date(4, row),
                    last_purchase: c.date(5, row),
                    transactions,
                    total_quantity: c.i64(7, row),
                    lifetime_value,
                    avg_transaction_value: Money::ratio(lifetime_value, i128::from(transactions)),
                    value_rank: 0,
                    value_quartile: 0,
                });
            }
        }
        Ok(rank_customers(customers))
    }
}

/// Per group (k1, k2) of `rows` (columns k1, k2, transaction_no,
/// customer_no, amount, quantity): the sums of amount and quantity, and the
/// distinct transactions and customers, each counted as the groups of a
/// GROUP BY rather than with COUNT(DISTINCT). A distinct count keeps a set
/// per group that neither spills nor splits (a month of 50 million lines
/// holds a million transaction numbers), where a GROUP BY spills.
fn distinct_counts(rows: &str) -> String {
    let count = |column: &str| {
        format!(
            "SELECT k1, k2, COUNT(*) AS n FROM (SELECT k1, k2, {column} FROM r GROUP BY k1, k2, {column}) \
             GROUP BY k1, k2"
        )
    };
    format!(
        "WITH r AS ({rows}) \
         SELECT s.k1, s.k2, s.amount, s.quantity, t.n, c.n \
         FROM (SELECT k1, k2, SUM(amount) AS amount, SUM(CAST(quantity AS BIGINT)) AS quantity \
               FROM r GROUP BY k1, k2) s \
         JOIN ({transactions}) t ON s.k1 = t.k1 AND s.k2 = t.k2 \
         JOIN ({customers}) c ON s.k1 = c.k1 AND s.k2 = c.k2",
        transactions = count("transaction_no"),
        customers = count("customer_no"),
    )
}

/// Orders each scope by sales descending then product number (bytes), and
/// keeps the first `top_n` with their 1-based rank.
fn rank_top_products(scopes: BTreeMap<String, Vec<TopProduct>>, top_n: u32) -> Vec<TopProduct> {
    let mut ranked = Vec::new();
    for (_, mut products) in scopes {
        products.sort_by(|a, b| {
            b.total_sales
                .cmp(&a.total_sales)
                .then_with(|| a.product_no.cmp(&b.product_no))
        });
        for (index, mut product) in products.into_iter().take(top_n as usize).enumerate() {
            product.rank = index as i32 + 1;
            ranked.push(product);
        }
    }
    ranked
}

/// Sorts months and fills `mom_growth_pct` from the calendar month just before.
fn with_growth(mut months: Vec<MonthlySales>) -> Vec<MonthlySales> {
    months.sort_by_key(|m| m.month);
    let sales: HashMap<NaiveDate, Money> =
        months.iter().map(|m| (m.month, m.total_sales)).collect();
    for month in &mut months {
        let previous = month.month.pred_opt().map(|d| d.with_day(1).unwrap_or(d));
        month.mom_growth_pct = previous
            .and_then(|p| sales.get(&p))
            .and_then(|&prev| growth_pct(month.total_sales, prev));
    }
    months
}

/// Ranks customers by lifetime value descending then customer number (bytes),
/// with `ntile(4)` quartiles over that order.
fn rank_customers(mut customers: Vec<CustomerLifetimeValue>) -> Vec<CustomerLifetimeValue> {
    // Customer numbers are unique, so an unstable sort gives the one order
    // (without a stable sort's buffer of a copy of every row).
    customers.sort_unstable_by(|a, b| {
        b.lifetime_value
            .cmp(&a.lifetime_value)
            .then_with(|| a.customer_no.cmp(&b.customer_no))
    });
    let total = customers.len();
    for (index, customer) in customers.iter_mut().enumerate() {
        customer.value_rank = index as i32 + 1;
        customer.value_quartile = ntile(4, total, index) as i32;
    }
    customers
}

/// SQL `ntile(buckets)` for the 0-based `index` of `total` rows: buckets differ
/// in size by at most one, the larger ones first.
pub fn ntile(buckets: usize, total: usize, index: usize) -> usize {
    let small = total / buckets;
    let large_buckets = total % buckets;
    let large_rows = large_buckets * (small + 1);
    if index < large_rows {
        index / (small + 1) + 1
    } else {
        large_buckets + (index - large_rows) / small.max(1) + 1
    }
}

/// The gold checks of a datamart, run on its rows before publishing.
pub struct Checks<'a> {
    datamart: Datamart,
    silver: &'a Silver,
    /// The outcome of every check.
    pub results: Vec<CheckReport>,
}

impl<'a> Checks<'a> {
    /// Runs the checks of `datamart` on `rows`.
    pub fn run<R: GoldRow>(
        datamart: Datamart,
        silver: &'a Silver,
        rows: &[R],
        specific: impl FnOnce(&mut Checks<'a>),
    ) -> Checks<'a> {
        let mut checks = Checks {
            datamart,
            silver,
            results: Vec::new(),
        };
        let mut seen = HashSet::with_capacity(rows.len());
        // `replace` hands back a key already there: no copy of every key.
        let duplicates: Vec<String> = rows
            .iter()
            .filter_map(|row| seen.replace(row.key()))
            .collect();
        checks.record("primary_key_unique", duplicates);
        // The base every datamart stands on: each silver transaction lands in
        // exactly one country through its customer (none lost to a dimension
        // that read short, none doubled by a duplicate key).
        let countries = silver.by_country.values().fold(
            (0i64, Money(0), 0i64),
            |(lines, amount, quantity), c| {
                (
                    lines + c.lines,
                    Money(amount.0 + c.amount.0),
                    quantity + c.quantity,
                )
            },
        );
        let totals = &silver.totals;
        let unresolved = if countries == (totals.lines, totals.amount, totals.quantity) {
            vec![]
        } else {
            vec![format!(
                "{} transaction lines (amount {}, quantity {}) in silver, {} (amount {}, quantity {}) \
                 in its countries",
                totals.lines, totals.amount, totals.quantity, countries.0, countries.1, countries.2
            )]
        };
        checks.record("transactions_resolve_to_one_country", unresolved);
        specific(&mut checks);
        checks
    }

    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|c| c.passed)
    }

    fn record(&mut self, check: &str, offending: Vec<String>) {
        self.results.push(CheckReport {
            datamart: self.datamart.name().to_owned(),
            check: check.to_owned(),
            passed: offending.is_empty(),
            offending: offending.into_iter().take(5).collect(),
        });
    }
}

/// Checks of `gold_sales_country_year`.
pub fn check_sales_country_year<'a>(silver: &'a Silver, rows: &[SalesCountryYear]) -> Checks<'a> {
    Checks::run(Datamart::SalesCountryYear, silver, rows, |checks| {
        let unknown = rows
            .iter()
            .filter(|r| !silver.country_names.contains(&r.country))
            .map(GoldRow::key)
            .collect();
        checks.record("references_resolve", unknown);
        totals(
            checks,
            rows.iter().map(|r| (r.total_sales, r.total_quantity)),
        );
        countries_reconcile(
            checks,
            rows.iter()
                .map(|r| (r.country.as_str(), r.total_sales, r.total_quantity, None)),
        );
        fits(checks, rows.iter().map(|r| (r, r.total_sales, 18)));
    })
}

/// Checks of `gold_top_products`.
pub fn check_top_products<'a>(silver: &'a Silver, rows: &[TopProduct], top_n: u32) -> Checks<'a> {
    Checks::run(Datamart::TopProducts, silver, rows, |checks| {
        let unknown = rows
            .iter()
            .filter(|r| {
                !silver.product_nos.contains(&r.product_no)
                    || (r.scope != "ALL" && !silver.country_names.contains(&r.scope))
            })
            .map(GoldRow::key)
            .collect();
        checks.record("references_resolve", unknown);
        let all = rows.iter().filter(|r| r.scope == "ALL").count() as i64;
        let expected = silver.totals.products.min(i64::from(top_n));
        let wrong = if all == expected {
            vec![]
        } else {
            vec![format!("scope ALL has {all} ranks, expected {expected}")]
        };
        checks.record("all_scope_complete", wrong);
        let mut by_scope: BTreeMap<&str, Vec<&TopProduct>> = BTreeMap::new();
        for row in rows {
            by_scope.entry(&row.scope).or_default().push(row);
        }
        let out_of_order = by_scope
            .values()
            .flat_map(|ranked| ranked.windows(2))
            .filter(|pair| {
                pair[1].rank != pair[0].rank + 1 || pair[1].total_sales > pair[0].total_sales
            })
            .map(|pair| pair[1].key())
            .collect();
        checks.record("ranks_ordered", out_of_order);
        checks.record(
            "scopes_reconcile",
            top_products_scopes(silver, &by_scope, top_n),
        );
        fits(checks, rows.iter().map(|r| (r, r.total_sales, 18)));
    })
}

/// Checks of `gold_monthly_sales`.
pub fn check_monthly_sales<'a>(silver: &'a Silver, rows: &[MonthlySales]) -> Checks<'a> {
    Checks::run(Datamart::MonthlySales, silver, rows, |checks| {
        totals(
            checks,
            rows.iter().map(|r| (r.total_sales, r.total_quantity)),
        );
        fits(
            checks,
            rows.iter()
                .flat_map(|r| [(r, r.total_sales, 18), (r, r.avg_transaction_value, 18)])
                .chain(
                    rows.iter()
                        .filter_map(|r| r.mom_growth_pct.map(|g| (r, g, 12))),
                ),
        );
    })
}

/// Checks of `gold_customer_lifetime_value`.
pub fn check_customer_lifetime_value<'a>(
    silver: &'a Silver,
    rows: &[CustomerLifetimeValue],
) -> Checks<'a> {
    Checks::run(Datamart::CustomerLifetimeValue, silver, rows, |checks| {
        let unknown = rows
            .iter()
            .filter(|r| {
                !silver.customer_nos.contains(&r.customer_no)
                    || !silver.country_names.contains(&r.country)
            })
            .map(GoldRow::key)
            .collect();
        checks.record("references_resolve", unknown);
        totals(
            checks,
            rows.iter().map(|r| (r.lifetime_value, r.total_quantity)),
        );
        let count = rows.len() as i64;
        let wrong = if count == silver.totals.customers {
            vec![]
        } else {
            vec![format!(
                "{count} customers, silver has {} with transactions",
                silver.totals.customers
            )]
        };
        checks.record("customers_reconcile", wrong);
        countries_reconcile(
            checks,
            rows.iter().map(|r| {
                (
                    r.country.as_str(),
                    r.lifetime_value,
                    r.total_quantity,
                    Some(1),
                )
            }),
        );
        fits(
            checks,
            rows.iter()
                .flat_map(|r| [(r, r.lifetime_value, 18), (r, r.avg_transaction_value, 18)]),
        );
    })
}

/// Every country scope of `gold_top_products` is there, for each country whose
/// customers bought something in silver, with `min(top_n, products sold there)`
/// ranks, and its ranked sales add up to no more than the country's silver
/// sales (exactly to them when every product sold there is ranked); `ALL` the
/// same over all of silver.
fn top_products_scopes(
    silver: &Silver,
    by_scope: &BTreeMap<&str, Vec<&TopProduct>>,
    top_n: u32,
) -> Vec<String> {
    let all = (
        "ALL",
        silver.totals.products,
        silver.totals.amount,
        silver.totals.quantity,
    );
    let expected = std::iter::once(all).chain(
        silver
            .by_country
            .iter()
            .map(|(name, c)| (name.as_str(), c.products, c.amount, c.quantity)),
    );
    let mut offending = Vec::new();
    for (scope, products, amount, quantity) in expected {
        let ranked = by_scope.get(scope).map_or(&[][..], Vec::as_slice);
        let ranks = products.min(i64::from(top_n));
        if ranked.len() as i64 != ranks {
            offending.push(format!(
                "scope {scope} has {} ranks, expected {ranks}",
                ranked.len()
            ));
            continue;
        }
        let sales = Money(ranked.iter().map(|r| r.total_sales.0).sum());
        let sold: i64 = ranked.iter().map(|r| r.total_quantity).sum();
        // Silver quantities and prices are positive (DATA_CONTRACT.md §3), so a
        // part of a scope never adds up to more than the whole.
        let whole = ranks == products;
        if (whole && (sales != amount || sold != quantity)) || sales > amount || sold > quantity {
            offending.push(format!(
                "scope {scope}: ranked sales {sales} and quantity {sold} do not fit silver's {amount} and {quantity}"
            ));
        }
    }
    for scope in by_scope.keys() {
        if *scope != "ALL" && !silver.by_country.contains_key(*scope) {
            offending.push(format!("scope {scope} has no silver transactions"));
        }
    }
    offending
}

/// Per country, the gold rows add up to silver's totals of that country
/// (sales, quantity, and with `Some(n)` per row, customers), and every country
/// with silver transactions has rows.
fn countries_reconcile<'r>(
    checks: &mut Checks<'_>,
    rows: impl Iterator<Item = (&'r str, Money, i64, Option<i64>)>,
) {
    let mut gold: BTreeMap<&str, (Money, i64, i64)> = BTreeMap::new();
    for (country, sales, quantity, customers) in rows {
        let entry = gold.entry(country).or_insert((Money(0), 0, 0));
        entry.0 = Money(entry.0.0 + sales.0);
        entry.1 += quantity;
        entry.2 += customers.unwrap_or(0);
    }
    let counts_customers = checks.datamart == Datamart::CustomerLifetimeValue;
    let mut offending = Vec::new();
    for (country, silver) in &checks.silver.by_country {
        let Some(&(sales, quantity, customers)) = gold.get(country.as_str()) else {
            offending.push(format!(
                "{country}: no rows, silver has {} lines",
                silver.lines
            ));
            continue;
        };
        if sales != silver.amount || quantity != silver.quantity {
            offending.push(format!(
                "{country}: sales {sales} and quantity {quantity}, silver has {} and {}",
                silver.amount, silver.quantity
            ));
        }
        if counts_customers && customers != silver.customers {
            offending.push(format!(
                "{country}: {customers} customers, silver has {}",
                silver.customers
            ));
        }
    }
    for country in gold.keys() {
        if !checks.silver.by_country.contains_key(*country) {
            offending.push(format!("{country}: rows, but no silver transactions"));
        }
    }
    checks.record("countries_reconcile", offending);
}

/// Sales and quantity summed over gold equal silver's.
fn totals(checks: &mut Checks<'_>, rows: impl Iterator<Item = (Money, i64)>) {
    let (sales, quantity) = rows.fold((Money(0), 0i64), |(s, q), (rs, rq)| {
        (Money(s.0 + rs.0), q + rq)
    });
    let silver = &checks.silver.totals;
    let mut offending = Vec::new();
    if sales != silver.amount {
        offending.push(format!(
            "sum of sales {sales} != silver sum of amount {}",
            silver.amount
        ));
    }
    if quantity != silver.quantity {
        offending.push(format!(
            "sum of quantity {quantity} != silver sum of quantity {}",
            silver.quantity
        ));
    }
    checks.record("totals_reconcile", offending);
}

/// Every money value fits its numeric column: (row, value, precision).
fn fits<'r, R: GoldRow + 'r>(
    checks: &mut Checks<'_>,
    values: impl Iterator<Item = (&'r R, Money, u32)>,
) {
    // Keys are formatted for the offending rows only: one string per value
    // of every row was most of the checks' time on a large table.
    let offending = values
        .filter(|(_, value, precision)| !value.fits_precision(*precision))
        .map(|(row, value, precision)| {
            format!("{}: {value} does not fit numeric({precision},2)", row.key())
        })
        .collect();
    checks.record("values_fit_columns", offending);
}

/// Typed access to the columns of a query result, whatever Arrow type
/// DataFusion chose (views, wider decimals). Each column is cast once, on
/// first use: casting per cell copied the whole column for every row read.
struct Columns<'a> {
    batch: &'a RecordBatch,
    cast: Vec<OnceCell<Arc<dyn Array>>>,
}

impl<'a> Columns<'a> {
    fn new(batch: &'a RecordBatch) -> Columns<'a> {
        Columns {
            batch,
            cast: vec![OnceCell::new(); batch.num_columns()],
        }
    }

    fn cast(&self, column: usize, to: &DataType) -> Arc<dyn Array> {
        // Every cast used here (string views, wider integers and decimals) is lossless.
        let cast_to = |to: &DataType| {
            cast(self.batch.column(column), to).expect("lossless cast of a query result")
        };
        let array = self.cast[column].get_or_init(|| cast_to(to));
        if array.data_type() == to {
            Arc::clone(array)
        } else {
            cast_to(to)
        }
    }

    fn string(&self, column: usize, row: usize) -> String {
        self.opt_string(column, row).unwrap_or_default()
    }

    fn opt_string(&self, column: usize, row: usize) -> Option<String> {
        let array = self.cast(column, &DataType::Utf8);
        let strings = array.as_any().downcast_ref::<StringArray>()?;
        (!strings.is_null(row)).then(|| strings.value(row).to_owned())
    }

    fn i64(&self, column: usize, row: usize) -> i64 {
        let array = self.cast(column, &DataType::Int64);
        array
            .as_any()
            .downcast_ref::<Int64Array>()
            .map_or(0, |a| if a.is_null(row) { 0 } else { a.value(row) })
    }

    fn i32(&self, column: usize, row: usize) -> i32 {
        let array = self.cast(column, &DataType::Int32);
        array
            .as_any()
            .downcast_ref::<Int32Array>()
            .map_or(0, |a| a.value(row))
    }

    fn cents(&self, column: usize, row: usize) -> Money {
        let array = self.cast(column, &DataType::Decimal128(38, 2));
        array
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .map_or(Money(0), |a| {
                if a.is_null(row) {
                    Money(0)
                } else {
                    Money(a.value(row))
                }
            })
    }

    fn date(&self, column: usize, row: usize) -> NaiveDate {
        let array = self.cast(column, &DataType::Date32);
        from_date32(
            array
                .as_any()
                .downcast_ref::<Date32Array>()
                .map_or(0, |a| a.value(row)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntile_matches_sql() {
        // 10 rows in 4 buckets: 3, 3, 2, 2.
        let buckets: Vec<usize> = (0..10).map(|i| ntile(4, 10, i)).collect();
        assert_eq!(buckets, vec![1, 1, 1, 2, 2, 2, 3, 3, 4, 4]);
        // Fewer rows than buckets: one each.
        let buckets: Vec<usize> = (0..3).map(|i| ntile(4, 3, i)).collect();
        assert_eq!(buckets, vec![1, 2, 3]);
        let buckets: Vec<usize> = (0..8).map(|i| ntile(4, 8, i)).collect();
        assert_eq!(buckets, vec![1, 1, 2, 2, 3, 3, 4, 4]);
        assert_eq!(ntile(4, 1, 0), 1);
    }

    fn product(scope: &str, no: &str, cents: i128) -> TopProduct {
        TopProduct {
            scope: scope.into(),
            rank: 0,
            product_no: no.into(),
            product_name: format!("name {no}"),
            total_sales: Money(cents),
            total_quantity: 1,
            transactions: 1,
        }
    }

    /// A silver of two countries: France bought p1 (3 for 3.00) and p2 (2 for
    /// 2.00), Japan p1 (1 for 1.00), one customer each.
    fn two_countries() -> Silver {
        let country = |lines, cents, quantity, products| CountryTotals {
            lines,
            amount: Money(cents),
            quantity,
            customers: 1,
            products,
        };
        let by_country = BTreeMap::from([
            ("France".to_owned(), country(2, 500, 5, 2)),
            ("Japan".to_owned(), country(1, 100, 1, 1)),
        ]);
        Silver {
            ctx: SessionContext::new(),
            snapshot_id: "test".into(),
            totals: SilverTotals {
                lines: 3,
                amount: Money(600),
                quantity: 6,
                customers: 2,
                products: 2,
            },
            country_names: by_country.keys().cloned().collect(),
            by_country,
            product_nos: ["p1", "p2"].map(str::to_owned).into(),
            customer_nos: ["c1", "c2"].map(str::to_owned).into(),
            spilled: AtomicU64::new(0),
        }
    }

    fn ranked(scope: &str, rank: i32, no: &str, cents: i128, quantity: i64) -> TopProduct {
        TopProduct {
            rank,
            total_quantity: quantity,
            ..product(scope, no, cents)
        }
    }

    fn failed(checks: &Checks<'_>) -> Vec<String> {
        checks
            .results
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {:?}", c.check, c.offending))
            .collect()
    }

    #[test]
    fn top_products_checks_catch_a_missing_scope() {
        let silver = two_countries();
        let all = vec![
            ranked("ALL", 1, "p1", 400, 4),
            ranked("ALL", 2, "p2", 200, 2),
            ranked("France", 1, "p1", 300, 3),
            ranked("France", 2, "p2", 200, 2),
            ranked("Japan", 1, "p1", 100, 1),
        ];
        let checks = check_top_products(&silver, &all, 10);
        assert!(checks.passed(), "{:?}", failed(&checks));
        // Only the ALL scope (what a run that read an empty customers table made).
        let only_all = &all[..2];
        let checks = check_top_products(&silver, only_all, 10);
        let failed = failed(&checks);
        assert!(
            failed.iter().any(
                |f| f.starts_with("scopes_reconcile") && f.contains("scope France has 0 ranks")
            ),
            "{failed:?}"
        );
        // A scope that misses a product it sold, or ranks sales it did not have.
        let short = [&all[..3], &all[4..]].concat();
        assert!(!check_top_products(&silver, &short, 10).passed());
        let mut inflated = all.clone();
        inflated[4].total_sales = Money(150);
        assert!(!check_top_products(&silver, &inflated, 10).passed());
        // With N = 1, France ranks only p1: part of its sales, and that is right.
        let top1 = vec![all[0].clone(), all[2].clone(), all[4].clone()];
        let checks = check_top_products(&silver, &top1, 1);
        assert!(checks.passed(), "{:?}", self::failed(&checks));
    }

    #[test]
    fn per_country_checks_catch_a_missing_or_wrong_country() {
        let silver = two_countries();
        let year = |country: &str, cents, quantity| SalesCountryYear {
            year: 2024,
            country: country.into(),
            total_sales: Money(cents),
            total_quantity: quantity,
            transactions: 1,
            customers: 1,
        };
        let right = vec![year("France", 500, 5), year("Japan", 100, 1)];
        let checks = check_sales_country_year(&silver, &right);
        assert!(checks.passed(), "{:?}", failed(&checks));
        // The totals add up, but Japan's sales are booked to France.
        let moved = vec![year("France", 600, 6)];
        let failed = failed(&check_sales_country_year(&silver, &moved));
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].starts_with("countries_reconcile"), "{failed:?}");
        assert!(failed[0].contains("Japan: no rows"), "{failed:?}");
    }

    #[test]
    fn every_datamart_checks_that_silver_transactions_resolve() {
        let mut silver = two_countries();
        // Japan's line did not join (its customer read as missing).
        silver.by_country.remove("Japan");
        let months = vec![MonthlySales {
            total_quantity: 6,
            ..month(2024, 1, 600)
        }];
        let failed = failed(&check_monthly_sales(&silver, &months));
        assert!(
            failed
                .iter()
                .any(|f| f.starts_with("transactions_resolve_to_one_country")),
            "{failed:?}"
        );
    }

    #[test]
    fn top_products_rank_by_sales_then_product_bytes() {
        let mut scopes = BTreeMap::new();
        scopes.insert(
            "ALL".to_owned(),
            vec![
                product("ALL", "b", 100),
                product("ALL", "B", 100),
                product("ALL", "a", 300),
                product("ALL", "c", 50),
            ],
        );
        let ranked = rank_top_products(scopes, 3);
        let order: Vec<(&str, i32)> = ranked
            .iter()
            .map(|p| (p.product_no.as_str(), p.rank))
            .collect();
        // "B" < "b" in bytes.
        assert_eq!(order, vec![("a", 1), ("B", 2), ("b", 3)]);
    }

    fn month(y: i32, m: u32, cents: i128) -> MonthlySales {
        MonthlySales {
            month: NaiveDate::from_ymd_opt(y, m, 1).unwrap(),
            total_sales: Money(cents),
            total_quantity: 0,
            transactions: 1,
            customers: 1,
            avg_transaction_value: Money(cents),
            mom_growth_pct: None,
        }
    }

    #[test]
    fn growth_needs_the_calendar_month_before() {
        let months = with_growth(vec![
            month(2023, 3, 300),
            month(2023, 1, 100),
            month(2022, 12, 200),
            month(2023, 4, 0),
            month(2023, 5, 10),
        ]);
        let growth: Vec<Option<Money>> = months.iter().map(|m| m.mom_growth_pct).collect();
        // Dec 2022: none before; Jan 2023: -50%; Mar: Feb missing; Apr: -100%; May: prev = 0.
        assert_eq!(
            growth,
            vec![None, Some(Money(-5000)), None, Some(Money(-10000)), None]
        );
    }

    #[test]
    fn customers_rank_and_quartile() {
        let customer = |no: &str, cents: i128| CustomerLifetimeValue {
            customer_no: no.into(),
            first_name: None,
            last_name: None,
            country: "X".into(),
            first_purchase: NaiveDate::MIN,
            last_purchase: NaiveDate::MIN,
            transactions: 1,
            total_quantity: 1,
            lifetime_value: Money(cents),
            avg_transaction_value: Money(cents),
            value_rank: 0,
            value_quartile: 0,
        };
        let ranked = rank_customers(vec![
            customer("k2", 10),
            customer("k1", 10),
            customer("k3", 30),
            customer("k4", 5),
            customer("k5", 1),
        ]);
        let order: Vec<(&str, i32, i32)> = ranked
            .iter()
            .map(|c| (c.customer_no.as_str(), c.value_rank, c.value_quartile))
            .collect();
        assert_eq!(
            order,
            vec![
                ("k3", 1, 1),
                ("k1", 2, 1),
                ("k2", 3, 2),
                ("k4", 4, 3),
                ("k5", 5, 4)
            ]
        );
    }
}
