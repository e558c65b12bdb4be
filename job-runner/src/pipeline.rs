//! The job-runner's commands, stage after stage, filling one run report.

use std::time::Instant;

use chrono::{NaiveDate, Utc};

use crate::datamart::{self, Datamart, DatamartError, GoldRow, Silver};
use crate::feed::{self, FeedError};
use crate::report::{RunReport, RunStatus, StageReport, timestamp};
use crate::silver::{self, SilverError};
use crate::snapshot::{Snapshot, SnapshotError};
use crate::storage::{Storage, StorageError};
use crate::warehouse::{RunRecord, Warehouse, WarehouseError};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The lake or source location is not usable.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Feeding failed.
    #[error("feed: {0}")]
    Feed(#[from] FeedError),
    /// Preprocessing failed.
    #[error("preprocess: {0}")]
    Silver(#[from] SilverError),
    /// The silver snapshot is missing or unreadable.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A datamart could not be computed.
    #[error(transparent)]
    Datamart(#[from] DatamartError),
    /// PostgreSQL failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// A gold check failed: nothing was published.
    #[error("{datamart}: gold checks failed ({checks}); the previous table is kept")]
    ChecksFailed {
        /// The datamart.
        datamart: Datamart,
        /// The failed checks' names.
        checks: String,
    },
    /// Writing the source files failed.
    #[error(transparent)]
    Generate(#[from] crate::generate::GenerateError),
}

impl PipelineError {
    /// Whether the error is a configuration mistake (exit code 2) rather than
    /// a failure of the work (exit code 1).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            PipelineError::Storage(StorageError::Unsupported { .. })
                | PipelineError::Warehouse(
                    WarehouseError::BadUrl(_) | WarehouseError::BadSchema(_)
                )
        )
    }
}

/// A new run id: UTC time and a random suffix, sortable by time.
pub fn new_run_id() -> String {
    let now = Utc::now();
    let noise = now.timestamp_subsec_nanos() as u64 ^ (u64::from(std::process::id()) << 32);
    let suffix = crate::generate::Rng::new(noise).next_u64() & 0xff_ffff;
    format!("{}-{suffix:06x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// A command in progress: its report and its run id.
pub struct Run {
    /// The report being filled.
    pub report: RunReport,
    started: Instant,
    started_at: chrono::DateTime<Utc>,
}

impl Run {
    /// Starts a run of `command`.
    pub fn start(command: &str) -> Run {
        let started_at = Utc::now();
        Run {
            report: RunReport {
                report_version: 1,
                command: command.to_owned(),
                run_id: new_run_id(),
                status: RunStatus::Succeeded,
                error: None,
                started_at: timestamp(started_at),
                finished_at: String::new(),
                duration_ms: 0,
                lake: None,
                silver_snapshot_id: None,
                stages: Vec::new(),
                checks: Vec::new(),
                catalog: None,
            },
            started: Instant::now(),
            started_at,
        }
    }

    /// This run's id.
    pub fn id(&self) -> &str {
        &self.report.run_id
    }

    /// Ends the run with the outcome of its work.
    pub fn finish(mut self, outcome: &Result<(), PipelineError>) -> RunReport {
        self.report.finished_at = timestamp(Utc::now());
        self.report.duration_ms = self.started.elapsed().as_millis() as u64;
        if let Err(e) = outcome {
            self.report.status = RunStatus::Failed;
            self.report.error = Some(e.to_string());
        }
        self.report
    }

    /// `generate`: source files into a local folder.
    pub fn generate(
        &mut self,
        out: &std::path::Path,
        transactions: u64,
        seed: u64,
    ) -> Result<(), PipelineError> {
        self.report
            .stages
            .extend(crate::generate::generate(out, transactions, seed)?);
        Ok(())
    }

    /// `feed`: source files into raw partitions of `ingest_date`.
    pub async fn feed(
        &mut self,
        source: &str,
        lake: &Storage,
        ingest_date: Option<NaiveDate>,
    ) -> Result<(), PipelineError> {
        let source = Storage::open(source, false)?;
        let date = ingest_date.unwrap_or_else(|| Utc::now().date_naive());
        self.report.lake = Some(lake.display().to_owned());
        lake.clean_stale().await?;
        let run_id = self.id().to_owned();
        self.report
            .stages
            .extend(feed::feed(&source, lake, date, &run_id).await?);
        Ok(())
    }

    /// `preprocess`: raw into a new silver snapshot; earlier snapshots' files
    /// are kept for `grace` after they are replaced (see [`Snapshot::publish`]).
    pub async fn preprocess(
        &mut self,
        lake: &Storage,
        grace: std::time::Duration,
    ) -> Result<Snapshot, PipelineError> {
        self.report.lake = Some(lake.display().to_owned());
        lake.clean_stale().await?;
        let run_id = self.id().to_owned();
        let outcome = silver::preprocess(lake, &run_id, grace).await?;
        self.report.stages.extend(outcome.reports);
        self.report.silver_snapshot_id = Some(outcome.snapshot.snapshot_id.clone());
        Ok(outcome.snapshot)
    }

    /// `datamart`: builds `datamarts` from the current silver snapshot and
    /// publishes each to PostgreSQL. Stops at the first failure. With
    /// `reader_role`, that role may read the gold tables and `gold_runs`.
    pub async fn datamarts(
        &mut self,
        lake: &Storage,
        database_url: &str,
        db_schema: &str,
        reader_role: Option<&str>,
        datamarts: &[Datamart],
        top_n: u32,
    ) -> Result<(), PipelineError> {
        self.report.lake = Some(lake.display().to_owned());
        let mut warehouse = Warehouse::connect(database_url, db_schema).await?;
        warehouse.migrate().await?;
        if let Some(role) = reader_role {
            warehouse.grant_reader(role).await?;
        }
        let snapshot = Snapshot::require(lake).await?;
        self.report.silver_snapshot_id = Some(snapshot.snapshot_id.clone());
        let mut silver = Silver::open(lake, &snapshot).await?;
        if datamarts.contains(&Datamart::TopProducts) {
            silver.count_products_per_country().await?;
        }
        let record = RunRecord {
            run_id: self.id().to_owned(),
            started_at: self.started_at,
            silver_snapshot_id: snapshot.snapshot_id.clone(),
        };
        for &datamart in datamarts {
            let started = Instant::now();
            let result = self
                .build(&silver, &mut warehouse, datamart, top_n, &record)
                .await;
            match result {
                Ok(rows) => {
                    let mut stage = StageReport::new("datamart", datamart.table());
                    stage.rows_read = silver.totals.lines as u64;
                    stage.rows_written = rows;
                    stage.finish(started.elapsed());
                    self.report.stages.push(stage);
                }
                Err(e) => {
                    if let Err(record_error) = warehouse
                        .record_failure(datamart, &record, &e.to_string())
                        .await
                    {
                        tracing::warn!(error = %record_error, "could not record the failed run");
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn build(
        &mut self,
        silver: &Silver,
        warehouse: &mut Warehouse,
        datamart: Datamart,
        top_n: u32,
        record: &RunRecord,
    ) -> Result<u64, PipelineError> {
        match datamart {
            Datamart::SalesCountryYear => {
                let rows = silver.sales_country_year().await?;
                let checks = datamart::check_sales_country_year(silver, &rows);
                self.publish(warehouse, datamart, record, &rows, checks)
                    .await
            }
            Datamart::TopProducts => {
                let rows = silver.top_products(top_n).await?;
                let checks = datamart::check_top_products(silver, &rows, top_n);
                self.publish(warehouse, datamart, record, &rows, checks)
                    .await
            }
            Datamart::MonthlySales => {
                let rows = silver.monthly_sales().await?;
                let checks = datamart::check_monthly_sales(silver, &rows);
                self.publish(warehouse, datamart, record, &rows, checks)
                    .await
            }
            Datamart::CustomerLifetimeValue => {
                let rows = silver.customer_lifetime_value().await?;
                let checks = datamart::check_customer_lifetime_value(silver, &rows);
                self.publish(warehouse, datamart, record, &rows, checks)
                    .await
            }
        }
    }

    async fn publish<R: GoldRow>(
        &mut self,
        warehouse: &mut Warehouse,
        datamart: Datamart,
        record: &RunRecord,
        rows: &[R],
        checks: datamart::Checks<'_>,
    ) -> Result<u64, PipelineError> {
        let passed = checks.passed();
        let failed: Vec<String> = checks
            .results
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.check.clone())
            .collect();
        self.report.checks.extend(checks.results);
        if !passed {
            return Err(PipelineError::ChecksFailed {
                datamart,
                checks: failed.join(", "),
            });
        }
        warehouse.check_shape(datamart).await?;
        let written = warehouse.publish(datamart, record, rows).await?;
        tracing::info!(datamart = %datamart, table = datamart.table(), rows = written, "gold table published");
        Ok(written)
    }
}
