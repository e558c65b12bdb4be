//! DataLake reconciliation: ingest runs (feed then preprocess) and their status.

use super::{
    Context, Error, JobState, Launch, Result, RunOwner, finish_reconcile, observe_job,
    parse_schedule, requeue_at, start_due_run,
};
use crate::crd::{CatalogState, DataLake, DataLakeStatus, RunOutcome, RunRecord, TableStats};
use crate::job::{datalake_engine, datalake_job};
use crate::plan::plan;
use crate::report::RunReport;
use crate::status::{CATALOG_REGISTERED, finish_run, fmt_time, set_condition};
use chrono::Utc;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use std::sync::Arc;

const KIND: &str = "DataLake";

fn table_stats(reports: &[&RunReport]) -> Vec<TableStats> {
    reports
        .iter()
        .flat_map(|r| r.stages.iter())
        .map(|s| TableStats {
            stage: s.stage.clone(),
            table: s.table.clone(),
            rows_read: s.rows_read,
            rows_written: s.rows_written,
            rows_rejected: s.rows_rejected,
            rejects: s.rejects.clone(),
        })
        .collect()
}

/// Applies the catalog section of a finished ingest's report to
/// `status.catalog` and the CatalogRegistered condition. Neither touches the
/// run's outcome: the job-runner succeeds when only the registration failed.
fn record_catalog(
    status: &mut DataLakeStatus,
    lake: &DataLake,
    record: &RunRecord,
    main: Option<&RunReport>,
    now: chrono::DateTime<Utc>,
) {
    let generation = lake.metadata.generation;
    let conditions = &mut status.state.conditions;
    let Some(report) = main.and_then(|m| m.catalog.as_ref()) else {
        // A succeeded run without the section: the image's job-runner does not
        // know --metastore (older than the catalog), so nothing was registered.
        if lake.spec.catalog.is_some() && record.outcome == Some(RunOutcome::Succeeded) {
            let msg = format!(
                "the report of run {} has no catalog section: is the job-runner image older than catalog support?",
                record.job_name
            );
            set_condition(
                conditions,
                CATALOG_REGISTERED,
                false,
                "NotReported",
                &msg,
                generation,
                now,
            );
        }
        return;
    };
    let ok = report.registered();
    let summary = report.summary();
    let snapshot = report.snapshot_id.clone();
    let msg = if ok {
        format!(
            "silver snapshot {} registered: {summary}",
            snapshot.as_deref().unwrap_or("?")
        )
    } else {
        format!(
            "registration of silver snapshot {} failed (the tables keep their previous snapshot): {summary}",
            snapshot.as_deref().unwrap_or("?")
        )
    };
    let reason = if ok {
        "Registered"
    } else {
        "RegistrationFailed"
    };
    set_condition(
        conditions,
        CATALOG_REGISTERED,
        ok,
        reason,
        &msg,
        generation,
        now,
    );
    let prev = status.catalog.take().unwrap_or_default();
    let when = record
        .completion_time
        .clone()
        .or_else(|| Some(fmt_time(now)));
    let same_target = prev.metastore == report.metastore && prev.database == report.database;
    let (registered_snapshot_id, last_registered_time) = if ok {
        (snapshot.clone(), when.clone())
    } else if same_target {
        (prev.registered_snapshot_id, prev.last_registered_time)
    } else {
        (None, None)
    };
    status.catalog = Some(CatalogState {
        metastore: report.metastore.clone(),
        database: report.database.clone(),
        status: if ok { "Registered" } else { "Failed" }.into(),
        snapshot_id: snapshot,
        message: Some(summary.chars().take(1024).collect()),
        last_attempt_time: when,
        registered_snapshot_id,
        last_registered_time,
    });
}

/// Forgets the catalog state of a DataLake whose `spec.catalog` is gone.
pub fn forget_catalog(status: &mut DataLakeStatus, lake: &DataLake) {
    if lake.spec.catalog.is_none() {
        status.catalog = None;
        status
            .state
            .conditions
            .retain(|c| c.type_ != CATALOG_REGISTERED);
    }
}

/// Applies a finished ingest run to the DataLake status.
pub fn record_finished(
    status: &mut DataLakeStatus,
    lake: &DataLake,
    mut record: RunRecord,
    main: Option<&RunReport>,
    feed: Option<&RunReport>,
    now: chrono::DateTime<Utc>,
) {
    if let Some(f) = feed {
        record.duration_ms = Some(record.duration_ms.unwrap_or(0) + f.duration_ms.unwrap_or(0));
    }
    if record.outcome == Some(RunOutcome::Succeeded)
        && let Some(m) = main
    {
        record.rows_written = Some(m.rows_written(Some("preprocess")));
        if m.silver_snapshot_id.is_some() {
            status.silver_snapshot_id = m.silver_snapshot_id.clone();
        }
        status.rows_written = record.rows_written;
        let reports: Vec<&RunReport> = feed.into_iter().chain(Some(m)).collect();
        status.rows_rejected = Some(reports.iter().map(|r| r.rows_rejected()).sum());
        status.tables = table_stats(&reports);
    }
    record_catalog(status, lake, &record, main, now);
    finish_run(
        &mut status.state,
        record,
        &lake.spec.run,
        lake.metadata.generation,
        now,
    );
}

pub async fn reconcile(lake: Arc<DataLake>, ctx: Arc<Context>) -> Result<Action> {
    let ns = lake.namespace().ok_or_else(|| Error::NoNamespace {
        kind: KIND,
        name: lake.name_any(),
    })?;
    let now = Utc::now();
    let generation = lake.metadata.generation;
    let policy = &lake.spec.run;
    let before = lake.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let mut wake = None;
    let owner = RunOwner {
        obj: &*lake,
        kind: KIND,
        action: "Ingest",
        ns: &ns,
        policy,
        generation,
        now,
    };

    let (schedule, invalid) = parse_schedule(policy);

    // Follow the active run.
    if let Some(active) = status.state.active_run.clone() {
        match observe_job(&ctx.client, &ns, &active, policy, now).await? {
            JobState::Running { deadline } => wake = Some(deadline),
            JobState::Finished { record, main, feed } => {
                let ok = record.outcome == Some(RunOutcome::Succeeded);
                ctx.count_finish(KIND, &record);
                let msg = record.message.clone().unwrap_or_default();
                record_finished(
                    &mut status,
                    &lake,
                    *record,
                    (*main).as_ref(),
                    (*feed).as_ref(),
                    now,
                );
                let note = if ok {
                    format!(
                        "ingest {} succeeded: silver snapshot {}",
                        active.job_name,
                        status.silver_snapshot_id.as_deref().unwrap_or("?")
                    )
                } else {
                    format!("ingest {} failed: {msg}", active.job_name)
                };
                owner.announce_finished(&ctx, ok, note).await;
            }
        }
    }

    // Start the run that is due.
    let mut waiting = None;
    if invalid.is_none() {
        let p = plan(&owner.plan_input(&status.state, schedule.as_ref(), None));
        status.state.next_schedule_time = p.next_schedule.map(fmt_time);
        wake = [wake, p.wake_at].into_iter().flatten().min();
        waiting = p.waiting.clone();
        if let Some(due) = p.due {
            let job = datalake_job(&lake, &due.id);
            start_due_run(
                &ctx,
                &owner,
                &mut status.state,
                Launch {
                    due: &due,
                    job: &job,
                    record: RunRecord {
                        engine: Some(datalake_engine(&lake).to_string()),
                        ..Default::default()
                    },
                },
                &mut wake,
                &mut waiting,
            )
            .await?;
        }
    }

    forget_catalog(&mut status, &lake);
    finish_reconcile(
        &ctx,
        &owner,
        &before,
        status,
        invalid.as_deref(),
        waiting.as_ref(),
    )
    .await?;
    Ok(requeue_at(wake, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CatalogSpec, DataLakeSpec, RunPolicy, SourceSpec};
    use crate::status::{condition, settle};

    fn lake() -> DataLake {
        let mut l = DataLake::new(
            "lake",
            DataLakeSpec {
                lake_uri: "file:///l".into(),
                hadoop_config_map: None,
                source: SourceSpec {
                    path: Some("/s".into()),
                    ..Default::default()
                },
                catalog: Some(CatalogSpec {
                    metastore: "thrift://hms:9083".into(),
                    database: "aurum".into(),
                }),
                run: RunPolicy::default(),
            },
        );
        l.metadata.generation = Some(1);
        l
    }

    fn finished(job: &str) -> RunRecord {
        RunRecord {
            job_name: job.into(),
            trigger: "SpecChange".into(),
            outcome: Some(RunOutcome::Succeeded),
            completion_time: Some("2026-12-06T10:00:00Z".into()),
            ..Default::default()
        }
    }

    fn report(snapshot: &str, catalog: &str) -> RunReport {
        RunReport::parse(&format!(
            r#"{{"status":"succeeded","silver_snapshot_id":"{snapshot}","stages":[],"catalog":{catalog}}}"#
        ))
        .expect("report")
    }

    #[test]
    fn a_failed_registration_shows_but_does_not_fail_the_lake() {
        let l = lake();
        let now = Utc::now();
        let mut st = DataLakeStatus::default();
        let ok = report(
            "s1",
            r#"{"metastore":"thrift://hms:9083","database":"aurum","status":"registered","snapshot_id":"s1",
                "tables":[{"table":"transactions","action":"created","partitions":3}]}"#,
        );
        record_finished(&mut st, &l, finished("j1"), Some(&ok), None, now);
        let c = st.catalog.clone().expect("catalog");
        assert_eq!(c.status, "Registered");
        assert_eq!(c.registered_snapshot_id.as_deref(), Some("s1"));
        let cond = condition(&st.state.conditions, CATALOG_REGISTERED).expect("condition");
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("True", "Registered")
        );

        let failed = report(
            "s2",
            r#"{"metastore":"thrift://hms:9083","database":"aurum","status":"failed",
                "error":"Hive Metastore thrift://hms:9083: connection refused","snapshot_id":"s2","tables":[]}"#,
        );
        record_finished(&mut st, &l, finished("j2"), Some(&failed), None, now);
        settle(&mut st.state, false, None, None, Some(1), now);
        assert_eq!(st.state.phase.as_deref(), Some("Ready"));
        assert_eq!(st.silver_snapshot_id.as_deref(), Some("s2"));
        let c = st.catalog.clone().expect("catalog");
        assert_eq!(c.status, "Failed");
        assert_eq!(c.snapshot_id.as_deref(), Some("s2"));
        // The tables still point at the snapshot of the last success.
        assert_eq!(c.registered_snapshot_id.as_deref(), Some("s1"));
        assert!(
            c.message
                .as_deref()
                .is_some_and(|m| m.contains("connection refused"))
        );
        let cond = condition(&st.state.conditions, CATALOG_REGISTERED).expect("condition");
        assert_eq!(cond.status, "False");
        assert_eq!(cond.reason, "RegistrationFailed");
        assert!(
            cond.message.contains("connection refused"),
            "{}",
            cond.message
        );

        let mut l2 = l.clone();
        l2.spec.catalog = None;
        forget_catalog(&mut st, &l2);
        assert!(st.catalog.is_none());
        assert!(condition(&st.state.conditions, CATALOG_REGISTERED).is_none());
    }

    #[test]
    fn a_report_without_catalog_section_is_not_reported() {
        let mut st = DataLakeStatus::default();
        let r = RunReport::parse(r#"{"status":"succeeded","silver_snapshot_id":"s1"}"#)
            .expect("report");
        record_finished(&mut st, &lake(), finished("j1"), Some(&r), None, Utc::now());
        let cond = condition(&st.state.conditions, CATALOG_REGISTERED).expect("condition");
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", "NotReported")
        );
        assert!(st.catalog.is_none());
    }
}
