//! The snapshot store: one slot per datamart, refreshed when `gold_runs` shows a
//! newer successful run (polled every `--refresh-interval-ms`).

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use aurum_gold::ident::quote_ident;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::IsolationLevel;

use super::snapshot::{RunInfo, Snapshot};
use super::tables::{
    CustomerLifetimeMart, Datamart, MonthlySalesMart, RowError, SalesCountryYearMart,
    TopProductsMart,
};

/// Why a datamart could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No connection could be had.
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A query failed.
    #[error("reading {table}: {source}")]
    Query {
        /// The table.
        table: &'static str,
        /// Driver error.
        source: tokio_postgres::Error,
    },
    /// A row did not fit the contract's types.
    #[error("reading {table}: {source}")]
    Row {
        /// The table.
        table: &'static str,
        /// Conversion error.
        source: RowError,
    },
    /// Serialising or the blocking task failed.
    #[error("building snapshot of {table}: {reason}")]
    Build {
        /// The table.
        table: &'static str,
        /// Why.
        reason: String,
    },
}

impl LoadError {
    /// The error's text when it says PostgreSQL could not be reached (no
    /// connection, or the connection broke), None when PostgreSQL answered.
    fn connection_error(&self) -> Option<String> {
        match self {
            LoadError::Pool(e) => Some(e.to_string()),
            LoadError::Query { source, .. } if connection_lost(source) => Some(source.to_string()),
            _ => None,
        }
    }
}

/// Whether a driver error is about the connection (closed, or an I/O error)
/// rather than an answer of PostgreSQL or a conversion.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>())
}

/// What the store knows about one datamart, for /readyz and /metrics.
#[derive(Debug, Clone, Default)]
pub struct SlotStatus {
    /// Last load or check error, cleared by a success.
    pub last_error: Option<String>,
    /// Successful loads since start.
    pub loads: u64,
    /// Failed checks or loads since start.
    pub failures: u64,
    /// Last successful check of `gold_runs`.
    pub last_check: Option<DateTime<Utc>>,
}

/// Whether PostgreSQL answered, as the API last saw it (refreshes and readiness
/// checks).
#[derive(Debug, Clone, Default)]
pub struct DatabaseStatus {
    /// None before the first attempt.
    pub reachable: Option<bool>,
    /// The error of the last failed attempt, cleared by a success.
    pub last_error: Option<String>,
    /// When PostgreSQL last answered.
    pub last_ok: Option<DateTime<Utc>>,
}

/// The current snapshot of one datamart.
pub struct Slot<D: Datamart> {
    current: RwLock<Option<Arc<Snapshot<D>>>>,
    status: Mutex<SlotStatus>,
}

impl<D: Datamart> Default for Slot<D> {
    fn default() -> Self {
        Self {
            current: RwLock::new(None),
            status: Mutex::new(SlotStatus::default()),
        }
    }
}

impl<D: Datamart> Slot<D> {
    /// The current snapshot, if one was loaded.
    pub fn get(&self) -> Option<Arc<Snapshot<D>>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, s: Arc<Snapshot<D>>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(s);
    }

    /// The slot's status.
    pub fn status(&self) -> SlotStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update_status(&self, f: impl FnOnce(&mut SlotStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Summary of one datamart for health and metrics output.
#[derive(Debug, Clone)]
pub struct MartSummary {
    /// REST path segment.
    pub path: &'static str,
    /// Rows loaded (None: never loaded).
    pub rows: Option<usize>,
    /// Run id of the loaded snapshot.
    pub run_id: Option<String>,
    /// Finish time of that run.
    pub finished_at: Option<DateTime<Utc>>,
    /// The silver snapshot that run read.
    pub silver_snapshot_id: Option<String>,
    /// Slot status.
    pub status: SlotStatus,
}

/// All four datamarts.
pub struct GoldStore {
    schema: String,
    /// `/gold/sales-country-year`.
    pub sales_country_year: Slot<SalesCountryYearMart>,
    /// `/gold/top-products`.
    pub top_products: Slot<TopProductsMart>,
    /// `/gold/monthly-sales`.
    pub monthly_sales: Slot<MonthlySalesMart>,
    /// `/gold/customer-lifetime`.
    pub customer_lifetime: Slot<CustomerLifetimeMart>,
    database: Mutex<DatabaseStatus>,
}

fn summary<D: Datamart>(slot: &Slot<D>) -> MartSummary {
    let snap = slot.get();
    let run = snap.as_ref().and_then(|s| s.run.as_ref());
    MartSummary {
        path: D::PATH,
        rows: snap.as_ref().map(|s| s.len()),
        run_id: run.map(|r| r.run_id.clone()),
        finished_at: run.map(|r| r.finished_at),
        silver_snapshot_id: run.and_then(|r| r.silver_snapshot_id.clone()),
        status: slot.status(),
    }
}

impl GoldStore {
    /// An empty store reading tables from `schema`.
    pub fn new(schema: &str) -> Self {
        Self {
            schema: schema.to_string(),
            sales_country_year: Slot::default(),
            top_products: Slot::default(),
            monthly_sales: Slot::default(),
            customer_lifetime: Slot::default(),
            database: Mutex::new(DatabaseStatus::default()),
        }
    }

    /// Whether PostgreSQL answered the last attempt to reach it.
    pub fn database(&self) -> DatabaseStatus {
        self.database
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the outcome of an attempt to reach PostgreSQL.
    pub fn record_database(&self, outcome: Result<(), String>) {
        let mut db = self.database.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(()) => {
                if db.reachable == Some(false) {
                    tracing::info!("PostgreSQL answers again");
                }
                db.reachable = Some(true);
                db.last_error = None;
                db.last_ok = Some(Utc::now());
            }
            Err(e) => {
                if db.reachable != Some(false) {
                    tracing::warn!(error = %e, "PostgreSQL is unreachable; serving the loaded snapshots");
                }
                db.reachable = Some(false);
                db.last_error = Some(e);
            }
        }
    }

    /// Seconds since the oldest confirmation, among the loaded datamarts, that the
    /// served snapshot is the latest published (a check of `gold_runs`); None when
    /// nothing is loaded. It grows while PostgreSQL is away.
    pub fn snapshot_age_seconds(&self) -> Option<i64> {
        let now = Utc::now();
        self.summaries()
            .into_iter()
            .filter(|m| m.rows.is_some())
            .map(|m| {
                m.status
                    .last_check
                    .map_or(0, |t| (now - t).num_seconds().max(0))
            })
            .max()
    }

    /// One summary per datamart.
    pub fn summaries(&self) -> Vec<MartSummary> {
        vec![
            summary(&self.sales_country_year),
            summary(&self.top_products),
            summary(&self.monthly_sales),
            summary(&self.customer_lifetime),
        ]
    }

    /// Checks every datamart once, reloading those with a newer run. Returns the
    /// number of datamarts reloaded.
    pub async fn refresh_all(&self, pool: &Pool) -> usize {
        let results = futures::join!(
            self.refresh(pool, &self.sales_country_year),
            self.refresh(pool, &self.top_products),
            self.refresh(pool, &self.monthly_sales),
            self.refresh(pool, &self.customer_lifetime),
        );
        [results.0, results.1, results.2, results.3]
            .into_iter()
            .filter(|r| *r)
            .count()
    }

    async fn refresh<D: Datamart>(&self, pool: &Pool, slot: &Slot<D>) -> bool {
        let result = self.try_refresh(pool, slot).await;
        match &result {
            Ok(_) => self.record_database(Ok(())),
            Err(e) => match e.connection_error() {
                Some(msg) => self.record_database(Err(msg)),
                // PostgreSQL answered (with an error about this table).
                None => self.record_database(Ok(())),
            },
        }
        match result {
            Ok(reloaded) => {
                slot.update_status(|s| {
                    if s.last_error.is_some() {
                        tracing::info!(datamart = D::PATH, "datamart check succeeds again");
                    }
                    s.last_error = None;
                    s.last_check = Some(Utc::now());
                    if reloaded {
                        s.loads += 1;
                    }
                });
                reloaded
            }
            Err(e) => {
                let msg = e.to_string();
                slot.update_status(|s| {
                    if s.last_error.as_deref() != Some(msg.as_str()) {
                        tracing::warn!(datamart = D::PATH, error = %msg, "cannot refresh datamart");
                    }
                    s.last_error = Some(msg);
                    s.failures += 1;
                });
                false
            }
        }
    }

    fn runs_sql(&self) -> String {
        format!(
            "SELECT run_id, finished_at, silver_snapshot_id FROM {}.gold_runs \
             WHERE datamart = ANY($1) AND status = 'succeeded' \
             ORDER BY finished_at DESC, run_id DESC LIMIT 1",
            quote_ident(&self.schema)
        )
    }

    async fn latest_run(
        client: &impl tokio_postgres::GenericClient,
        sql: &str,
        names: &[&str],
    ) -> Result<Option<RunInfo>, tokio_postgres::Error> {
        let names: Vec<&str> = names.to_vec();
        match client.query_opt(sql, &[&names]).await {
            Ok(row) => Ok(row
                .map(|r| -> Result<RunInfo, tokio_postgres::Error> {
                    Ok(RunInfo {
                        run_id: r.try_get(0)?,
                        finished_at: r.try_get(1)?,
                        silver_snapshot_id: r.try_get(2)?,
                    })
                })
                .transpose()?),
            // No gold_runs table: the tables are served, just without run metadata.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn try_refresh<D: Datamart>(
        &self,
        pool: &Pool,
        slot: &Slot<D>,
    ) -> Result<bool, LoadError> {
        let runs_sql = self.runs_sql();
        let q = |source| LoadError::Query {
            table: D::TABLE,
            source,
        };
        let mut client = pool.get().await?;
        let current = slot.get();
        if let Some(cur) = &current {
            let c: &tokio_postgres::Client = &client;
            let latest = Self::latest_run(c, &runs_sql, D::RUN_NAMES)
                .await
                .map_err(|source| LoadError::Query {
                    table: "gold_runs",
                    source,
                })?;
            if latest == cur.run {
                return Ok(false);
            }
        }
        // Read the run row and the table in one snapshot: they were published together.
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(q)?;
        let t: &tokio_postgres::Transaction<'_> = &tx;
        let run = Self::latest_run(t, &runs_sql, D::RUN_NAMES)
            .await
            .map_err(q)?;
        let sql = format!(
            "SELECT {} FROM {}.{}",
            super::tables::select_list(D::MART),
            quote_ident(&self.schema),
            D::TABLE
        );
        let pg_rows = tx.query(&sql, &[]).await.map_err(q)?;
        tx.commit().await.map_err(q)?;
        drop(client);
        let snapshot = tokio::task::spawn_blocking(move || -> Result<Snapshot<D>, LoadError> {
            let rows = pg_rows
                .iter()
                .map(D::from_pg)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| LoadError::Row {
                    table: D::TABLE,
                    source,
                })?;
            Snapshot::build(rows, run).map_err(|e| LoadError::Build {
                table: D::TABLE,
                reason: e.to_string(),
            })
        })
        .await
        .map_err(|e| LoadError::Build {
            table: D::TABLE,
            reason: e.to_string(),
        })??;
        tracing::info!(
            datamart = D::PATH,
            rows = snapshot.len(),
            run_id = snapshot
                .run
                .as_ref()
                .map(|r| r.run_id.as_str())
                .unwrap_or("-"),
            "loaded datamart snapshot"
        );
        slot.set(Arc::new(snapshot));
        Ok(true)
    }
}

/// Polls `gold_runs` every `interval` until `shutdown` fires.
pub async fn run_refresher(
    store: Arc<GoldStore>,
    pool: Pool,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => { store.refresh_all(&pool).await; }
            _ = shutdown.changed() => break,
        }
    }
}
