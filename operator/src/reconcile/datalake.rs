//! DataLake reconciliation: ingest runs (feed then preprocess) and their status.

use super::{
    Context, Error, JobState, Launch, Result, RunOwner, finish_reconcile, observe_job,
    parse_schedule, requeue_at, start_due_run,
};
use crate::crd::{DataLake, DataLakeStatus, RunOutcome, RunRecord, TableStats};
use crate::job::datalake_job;
use crate::plan::plan;
use crate::report::RunReport;
use crate::status::{finish_run, fmt_time};
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
                    record: RunRecord::default(),
                },
                &mut wake,
                &mut waiting,
            )
            .await?;
        }
    }

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
