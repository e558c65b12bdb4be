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

    /// Records the duration and rate, and logs the stage's figures.
    pub fn finish(&mut self, elapsed: Duration) {
        self.duration_ms = elapsed.as_millis() as u64;
        self.rows_per_sec = rate(self.rows_read.max(self.rows_written), elapsed);
        tracing::info!(
            stage = self.stage,
            table = %self.table,
            rows_read = self.rows_read,
            rows_written = self.rows_written,
            rows_rejected = self.rows_rejected,
            bytes_written = self.bytes_written,
            duration_ms = self.duration_ms,
            rows_per_sec = self.rows_per_sec as u64,
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
}
