//! The job-runner's commands, stage after stage, filling one run report.

use crate::resources::{Engine, StageClock};

use chrono::{NaiveDate, Utc};

use crate::datamart::{self, Datamart, DatamartError, GoldRow, Silver};
use crate::feed::{self, FeedError};
use crate::report::{ResourceReport, RunReport, RunStatus, StageReport, timestamp};
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
    /// A query ran out of the memory limit (and could not spill its way under it).
    #[error(
        "{cause}\nthe memory limit, {limit}, is too small for this step: nothing of it was published; \
         raise --memory-limit (AURUM_MEMORY_LIMIT) and the pod's memory limit with it"
    )]
    MemoryLimit {
        /// The limit and where it came from.
        limit: String,
        /// The query's error.
        cause: Box<PipelineError>,
    },
}

impl PipelineError {
    /// Names the memory limit when `self` is a query out of memory.
    pub fn naming_the_memory_limit(self, engine: &Engine) -> PipelineError {
        if !crate::resources::is_memory_exhausted(&self) {
            return self;
        }
        let resources = &engine.resources;
        let limit = match resources.memory_limit {
            Some(bytes) => format!(
                "{} ({bytes} bytes, from {}; {} of it for queries)",
                crate::resources::human_size(bytes),
                match resources.memory_origin {
                    crate::resources::Origin::Option => "--memory-limit",
                    _ => "the cgroup's memory limit",
                },
                crate::resources::human_size(resources.pool_bytes().unwrap_or_default() as u64),
            ),
            None => "none".to_owned(),
        };
        PipelineError::MemoryLimit {
            limit,
            cause: Box::new(self),
        }
    }

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
    clock: StageClock,
    started_at: chrono::DateTime<Utc>,
    engine: Engine,
    spilled: u64,
}

impl Run {
    /// Starts a run of `command` with the cores and memory of `engine`.
    pub fn start(command: &str, engine: Engine) -> Run {
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
                resources: None,
            },
            clock: StageClock::start(),
            started_at,
            engine,
            spilled: 0,
        }
    }

    /// This run's id.
    pub fn id(&self) -> &str {
        &self.report.run_id
    }

    /// Ends the run with the outcome of its work.
    pub fn finish(mut self, outcome: &Result<(), PipelineError>) -> RunReport {
        self.report.finished_at = timestamp(Utc::now());
        self.report.duration_ms = self.clock.wall().as_millis() as u64;
        if self.report.command != "generate" {
            let resources = &self.engine.resources;
            self.report.resources = Some(ResourceReport {
                threads: resources.threads,
                threads_from: resources.threads_origin,
                memory_limit_bytes: resources.memory_limit,
                memory_limit_from: resources.memory_origin,
                query_pool_bytes: resources.pool_bytes().map(|b| b as u64),
                spill_dir: resources.spill_dir.display().to_string(),
                spilled_bytes: self.spilled,
                peak_rss_bytes: crate::resources::peak_rss(),
                cpu_ms: self.clock.cpu().as_millis() as u64,
            });
        }
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
        crate::resources::release_free_memory();
        lake.clean_stale().await?;
        let run_id = self.id().to_owned();
        let outcome = silver::preprocess(lake, &run_id, grace, &self.engine)
            .await
            .map_err(|e| PipelineError::from(e).naming_the_memory_limit(&self.engine))?;
        self.spilled += outcome.reports.iter().map(|r| r.spilled_bytes).sum::<u64>();
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
        crate::resources::release_free_memory();
        let mut warehouse = Warehouse::connect(database_url, db_schema).await?;
        warehouse.migrate().await?;
        if let Some(role) = reader_role {
            warehouse.grant_reader(role).await?;
        }
        let snapshot = Snapshot::require(lake).await?;
        self.report.silver_snapshot_id = Some(snapshot.snapshot_id.clone());
        let mut silver = Silver::open(lake, &snapshot, &self.engine)
            .await
            .map_err(|e| PipelineError::from(e).naming_the_memory_limit(&self.engine))?;
        if datamarts.contains(&Datamart::TopProducts) {
            silver
                .count_products_per_country()
                .await
                .map_err(|e| PipelineError::from(e).naming_the_memory_limit(&self.engine))?;
        }
        let record = RunRecord {
            run_id: self.id().to_owned(),
            started_at: self.started_at,
            silver_snapshot_id: snapshot.snapshot_id.clone(),
        };
        // Opening read the snapshot whole (totals, row counts): its spills count too.
        self.spilled += silver.spilled_bytes();
        for &datamart in datamarts {
            crate::resources::release_free_memory();
            let clock = StageClock::start();
            let spilled_before = silver.spilled_bytes();
            let result = self
                .build(&silver, &mut warehouse, datamart, top_n, &record)
                .await
                .map_err(|e| e.naming_the_memory_limit(&self.engine));
            let spilled = silver.spilled_bytes() - spilled_before;
            self.spilled += spilled;
            match result {
                Ok(published) => {
                    let mut stage = StageReport::new("datamart", datamart.table());
                    stage.rows_read = silver.totals.lines as u64;
                    stage.rows_written = published.rows;
                    stage.spilled_bytes = spilled;
                    stage.load_ms = Some(published.load.as_millis() as u64);
                    stage.finish(clock.wall(), clock.cpu());
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
    ) -> Result<Published, PipelineError> {
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
    ) -> Result<Published, PipelineError> {
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
        let load = std::time::Instant::now();
        warehouse.check_shape(datamart).await?;
        let written = warehouse.publish(datamart, record, rows).await?;
        let load = load.elapsed();
        tracing::info!(
            datamart = %datamart,
            table = datamart.table(),
            rows = written,
            load_ms = load.as_millis() as u64,
            "gold table published"
        );
        Ok(Published {
            rows: written,
            load,
        })
    }
}

/// A gold table just published.
struct Published {
    /// Its rows.
    rows: u64,
    /// The wall time PostgreSQL took to load and swap them in.
    load: std::time::Duration,
}
