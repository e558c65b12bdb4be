//! The run report every command prints (shape documented in docs/run-report.md).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// The report of one command: what it read, wrote and rejected, stage by stage.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// Version of this shape.
    pub report_version: u32,
    /// The command (`feed`, `preprocess`, `datamart`, `run`, `generate`).
    pub command: String,
    /// This run's id.
    pub run_id: String,
    /// `succeeded` or `failed`.
    pub status: RunStatus,
    /// What failed, when the run failed.
    pub error: Option<String>,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// When the run ended (RFC 3339).
    pub finished_at: String,
    /// Wall-clock duration.
    pub duration_ms: u64,
    /// The lake, when the command uses one.
    pub lake: Option<String>,
    /// The silver snapshot published or read.
    pub silver_snapshot_id: Option<String>,
    /// One entry per stage and table.
    pub stages: Vec<StageReport>,
    /// The gold checks run before publishing.
    pub checks: Vec<CheckReport>,
    /// The registration of the published silver snapshot in a Hive Metastore
    /// (`preprocess` and `run` with `--metastore` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<crate::catalog::CatalogReport>,
    /// The cores and memory the run used (absent for `generate`).
    pub resources: Option<ResourceReport>,
}

/// What a run was allowed and what it took.
#[derive(Debug, Serialize)]
pub struct ResourceReport {
    /// Worker threads and query partitions.
    pub threads: usize,
    /// Where `threads` came from: `option`, `cgroup` or `machine`.
    pub threads_from: crate::resources::Origin,
    /// The memory limit the run stays under, in bytes (none: unlimited).
    pub memory_limit_bytes: Option<u64>,
    /// Where the limit came from: `option`, `cgroup` or `machine` (none).
    pub memory_limit_from: crate::resources::Origin,
    /// The part of the limit given to the query engine's pool.
    pub query_pool_bytes: Option<u64>,
    /// Where sorts spill.
    pub spill_dir: String,
    /// Bytes spilled to `spill_dir`, all stages.
    pub spilled_bytes: u64,
    /// The process's peak resident memory.
    pub peak_rss_bytes: u64,
    /// The process's CPU time (user + system).
    pub cpu_ms: u64,
}

/// Outcome of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Everything the command had to do is done.
    Succeeded,
    /// The command stopped on an error; see `error`.
    Failed,
}

/// Figures of one stage on one table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageReport {
    /// `generate`, `feed`, `preprocess` or `datamart`.
    pub stage: &'static str,
    /// The lake table or gold table.
    pub table: String,
    /// Records read.
    pub rows_read: u64,
    /// Rows kept and written.
    pub rows_written: u64,
    /// Rows rejected (quarantined with a reason).
    pub rows_rejected: u64,
    /// Rejected rows per reason.
    pub rejects: BTreeMap<String, u64>,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Wall-clock duration.
    pub duration_ms: u64,
    /// Rows processed (read, or written by `generate`) per second.
    pub rows_per_sec: f64,
    /// The process's CPU time (all threads) during the stage; stages that run
    /// at the same time (the small tables beside the big one) share it.
    pub cpu_ms: u64,
    /// cpu_ms / duration_ms: how many cores the stage kept busy.
    pub cpu_per_wall: f64,
    /// Bytes the stage's queries spilled to disk under the memory limit.
    pub spilled_bytes: u64,
    /// `datamart` stages: the part of `duration_ms` spent loading the gold
    /// table into PostgreSQL (COPY into staging, then the swap), where this
    /// process mostly waits: `cpu_ms / (duration_ms - load_ms)` is how many
    /// cores the computing part kept busy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<u64>,
    /// Where the stage's plans ran when not in this process
    /// (`ballista://HOST:PORT`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

impl StageReport {
    /// An empty report for a stage on a table.
    pub fn new(stage: &'static str, table: impl Into<String>) -> StageReport {
        StageReport {
            stage,
            table: table.into(),
            ..StageReport::default()
        }
    }

    /// Counts a rejected row.
    pub fn reject(&mut self, reason: &str) {
        self.rows_rejected += 1;
        match self.rejects.get_mut(reason) {
            Some(count) => *count += 1,
            None => {
                self.rejects.insert(reason.to_owned(), 1);
            }
        }
    }

    /// Records the wall and CPU time and the rate, and logs the stage's figures.
    pub fn finish(&mut self, elapsed: Duration, cpu: Duration) {
        self.duration_ms = elapsed.as_millis() as u64;
        self.rows_per_sec = rate(self.rows_read.max(self.rows_written), elapsed);
        self.cpu_ms = cpu.as_millis() as u64;
        self.cpu_per_wall = if elapsed.is_zero() {
            0.0
        } else {
            (cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0).round() / 100.0
        };
        tracing::info!(
            stage = self.stage,
            table = %self.table,
            rows_read = self.rows_read,
            rows_written = self.rows_written,
            rows_rejected = self.rows_rejected,
            bytes_written = self.bytes_written,
            duration_ms = self.duration_ms,
            rows_per_sec = self.rows_per_sec as u64,
            cpu_ms = self.cpu_ms,
            cpu_per_wall = self.cpu_per_wall,
            spilled_bytes = self.spilled_bytes,
            "stage done"
        );
    }
}

/// The outcome of one gold check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// The datamart checked.
    pub datamart: String,
    /// The check's name.
    pub check: String,
    /// Whether the gold table passed it.
    pub passed: bool,
    /// Up to five offending rows, described.
    pub offending: Vec<String>,
}

fn rate(rows: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        (rows as f64 / seconds).round()
    } else {
        0.0
    }
}

/// Formats a time as RFC 3339 with milliseconds.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Logs progress of a long stage at most once a second.
pub struct Progress {
    stage: &'static str,
    table: String,
    started: Instant,
    last: Instant,
    clock: crate::resources::StageClock,
}

impl Progress {
    /// Starts the clock for a stage on a table.
    pub fn new(stage: &'static str, table: impl Into<String>) -> Progress {
        let now = Instant::now();
        Progress {
            stage,
            table: table.into(),
            started: now,
            last: now,
            clock: crate::resources::StageClock::start(),
        }
    }

    /// Reports `rows` processed so far, if a second has passed since the last report.
    pub fn update(&mut self, rows: u64) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            tracing::info!(
                stage = self.stage,
                table = %self.table,
                rows,
                rows_per_sec = rate(rows, self.started.elapsed()) as u64,
                "progress"
            );
        }
    }

    /// Time since the stage started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The process's CPU time since the stage started.
    pub fn cpu(&self) -> Duration {
        self.clock.cpu()
    }
}
