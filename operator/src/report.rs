//! The job-runner's run report (docs/run-report.md), as read from a Job pod's
//! termination message. Unknown fields are ignored: the shape only grows.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RunReport {
    #[serde(default)]
    pub report_version: Option<i64>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    #[serde(default)]
    pub lake: Option<String>,
    #[serde(default)]
    pub silver_snapshot_id: Option<String>,
    #[serde(default)]
    pub stages: Vec<StageReport>,
    #[serde(default)]
    pub checks: Vec<CheckReport>,
    /// The registration in a Hive Metastore (`preprocess` given `--metastore`).
    #[serde(default)]
    pub catalog: Option<CatalogReport>,
}

/// The `catalog` section: how the published snapshot's registration went.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CatalogReport {
    #[serde(default)]
    pub metastore: String,
    #[serde(default)]
    pub database: String,
    /// `registered` or `failed`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub snapshot_id: Option<String>,
    #[serde(default)]
    pub tables: Vec<CatalogTable>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
}

/// One table of the catalog section.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CatalogTable {
    #[serde(default)]
    pub table: String,
    /// `created`, `altered` or `kept_newer`.
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub partitions: i64,
}

impl CatalogReport {
    /// Whether every table points at the new snapshot.
    pub fn registered(&self) -> bool {
        self.status == "registered"
    }

    /// A one-line account: the error of a failed registration, or the tables.
    pub fn summary(&self) -> String {
        if !self.registered() {
            return self
                .error
                .clone()
                .unwrap_or_else(|| format!("registration {}", self.status));
        }
        let partitions: i64 = self.tables.iter().map(|t| t.partitions).sum();
        format!(
            "{} tables registered in {} at {} ({partitions} partitions)",
            self.tables.len(),
            self.database,
            self.metastore
        )
    }
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct StageReport {
    #[serde(default)]
    pub stage: String,
    #[serde(default)]
    pub table: String,
    #[serde(default)]
    pub rows_read: i64,
    #[serde(default)]
    pub rows_written: i64,
    #[serde(default)]
    pub rows_rejected: i64,
    #[serde(default)]
    pub rejects: BTreeMap<String, i64>,
    #[serde(default)]
    pub duration_ms: i64,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub struct CheckReport {
    #[serde(default)]
    pub datamart: String,
    #[serde(default)]
    pub check: String,
    #[serde(default)]
    pub passed: bool,
}

impl RunReport {
    /// Parses a termination message; `None` when it is not a report (e.g. the
    /// log tail Kubernetes falls back to, or an empty message).
    pub fn parse(message: &str) -> Option<RunReport> {
        let trimmed = message.trim();
        if let Ok(r) = serde_json::from_str::<RunReport>(trimmed) {
            return Some(r);
        }
        // A report written as the last line after other output.
        trimmed
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<RunReport>(l.trim()).ok())
    }

    pub fn succeeded(&self) -> bool {
        self.status.as_deref() == Some("succeeded")
    }

    /// Rows written by the stages of `stage` (all stages when `None`).
    pub fn rows_written(&self, stage: Option<&str>) -> i64 {
        self.stages
            .iter()
            .filter(|s| stage.is_none_or(|st| s.stage == st))
            .map(|s| s.rows_written)
            .sum()
    }

    pub fn rows_rejected(&self) -> i64 {
        self.stages.iter().map(|s| s.rows_rejected).sum()
    }

    /// A one-line failure description: the error, or the failed checks.
    pub fn failure_message(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: check {} failed", c.datamart, c.check))
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"report_version":1,"command":"preprocess","run_id":"r1","status":"succeeded","error":null,
      "started_at":"2026-11-25T22:01:02.123Z","finished_at":"2026-11-25T22:01:09.456Z","duration_ms":7333,
      "lake":"file:///l","silver_snapshot_id":"snap-1","future_field":1,
      "stages":[{"stage":"preprocess","table":"transactions","rows_read":10,"rows_written":8,"rows_rejected":2,
      "rejects":{"malformed_record":2},"duration_ms":5}],"checks":[]}"#;

    #[test]
    fn parses_the_documented_shape() {
        let r = RunReport::parse(SAMPLE).expect("report");
        assert!(r.succeeded());
        assert_eq!(r.silver_snapshot_id.as_deref(), Some("snap-1"));
        assert_eq!(r.rows_written(Some("preprocess")), 8);
        assert_eq!(r.rows_rejected(), 2);
        assert_eq!(r.stages[0].rejects["malformed_record"], 2);
    }

    #[test]
    fn parses_the_catalog_section() {
        let ok = r#"{"status":"succeeded","silver_snapshot_id":"s2","catalog":{"metastore":"thrift://hms:9083",
          "database":"aurum","status":"registered","error":null,"snapshot_id":"s2",
          "tables":[{"table":"transactions","action":"altered","partitions":24},{"table":"countries","action":"created"}],
          "duration_ms":840}}"#;
        let c = RunReport::parse(ok)
            .expect("report")
            .catalog
            .expect("catalog");
        assert!(c.registered());
        assert_eq!(c.snapshot_id.as_deref(), Some("s2"));
        assert_eq!(c.tables[0].partitions, 24);
        assert_eq!(c.tables[1].partitions, 0);
        assert_eq!(
            c.summary(),
            "2 tables registered in aurum at thrift://hms:9083 (24 partitions)"
        );

        let failed = r#"{"status":"succeeded","catalog":{"metastore":"thrift://127.0.0.1:1","database":"aurum",
          "status":"failed","error":"Hive Metastore thrift://127.0.0.1:1: connection refused","snapshot_id":"s3",
          "tables":[],"duration_ms":3}}"#;
        let r = RunReport::parse(failed).expect("report");
        // A failed registration leaves the run succeeded.
        assert!(r.succeeded());
        let c = r.catalog.expect("catalog");
        assert!(!c.registered());
        assert_eq!(
            c.summary(),
            "Hive Metastore thrift://127.0.0.1:1: connection refused"
        );
        assert!(RunReport::parse(SAMPLE).expect("report").catalog.is_none());
    }

    #[test]
    fn finds_the_report_on_the_last_line() {
        let msg = format!("some log line\n{}", SAMPLE.replace('\n', ""));
        assert!(RunReport::parse(&msg).is_some());
        assert!(RunReport::parse("panic: boom").is_none());
        assert!(RunReport::parse("").is_none());
    }

    #[test]
    fn failure_message_prefers_error_then_checks() {
        let r = RunReport {
            status: Some("failed".into()),
            error: Some("db down".into()),
            ..Default::default()
        };
        assert_eq!(r.failure_message().as_deref(), Some("db down"));
        let r = RunReport {
            status: Some("failed".into()),
            checks: vec![CheckReport {
                datamart: "monthly-sales".into(),
                check: "total".into(),
                passed: false,
            }],
            ..Default::default()
        };
        assert_eq!(
            r.failure_message().as_deref(),
            Some("monthly-sales: check total failed")
        );
    }
}
