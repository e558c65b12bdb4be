//! DataLake reconciliation: ingest runs (feed then preprocess) and their status.

use super::{
    Context, Error, JobState, Result, apply_status, create_job, delete_job, observe_job, requeue_at,
};
use crate::crd::{DataLake, DataLakeStatus, RUN_NOW_ANNOTATION, RunOutcome, RunRecord, TableStats};
use crate::job::datalake_job;
use crate::plan::{PlanInput, consume, plan};
use crate::report::RunReport;
use crate::schedule::Schedule;
use crate::status::{finish_run, fmt_time, settle, start_run};
use chrono::Utc;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
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
    let timer = std::time::Instant::now();
    ctx.count_reconcile(KIND);
    let ns = lake.namespace().ok_or_else(|| Error::NoNamespace {
        kind: KIND,
        name: lake.name_any(),
    })?;
    let name = lake.name_any();
    let now = Utc::now();
    let generation = lake.metadata.generation;
    let policy = &lake.spec.run;
    let before = lake.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let mut wake = None;

    let schedule = match &policy.schedule {
        Some(s) => Schedule::parse(s, policy.time_zone.as_deref()).map(Some),
        None => Ok(None),
    };
    let invalid = schedule.as_ref().err().map(|e| e.to_string());
    let schedule = schedule.ok().flatten();

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
                if ok {
                    let note = format!(
                        "ingest {} succeeded: silver snapshot {}",
                        active.job_name,
                        status.silver_snapshot_id.as_deref().unwrap_or("?")
                    );
                    ctx.event(&*lake, EventType::Normal, "RunSucceeded", "Ingest", note)
                        .await;
                } else {
                    let note = format!("ingest {} failed: {msg}", active.job_name);
                    ctx.event(&*lake, EventType::Warning, "RunFailed", "Ingest", note)
                        .await;
                }
            }
        }
    }

    // Start the run that is due.
    let mut waiting = None;
    if invalid.is_none() {
        let p = plan(&PlanInput {
            policy,
            state: &status.state,
            generation: generation.unwrap_or(0),
            run_now: lake
                .annotations()
                .get(RUN_NOW_ANNOTATION)
                .map(String::as_str),
            schedule: schedule.as_ref(),
            created: lake
                .creation_timestamp()
                .map(|t| crate::status::from_time(&t))
                .unwrap_or(now),
            now,
            snapshot: None,
        });
        status.state.next_schedule_time = p.next_schedule.map(fmt_time);
        wake = [wake, p.wake_at].into_iter().flatten().min();
        waiting = p.waiting.clone();
        if let Some(due) = p.due {
            let active = status.state.active_run.clone();
            let may_start = match &active {
                None => true,
                Some(a) if policy.concurrency_policy == crate::crd::ConcurrencyPolicy::Replace => {
                    delete_job(&ctx.client, &ns, &a.job_name).await?;
                    let mut r = a.clone();
                    r.outcome = Some(RunOutcome::Replaced);
                    ctx.count_finish(KIND, &r);
                    finish_run(&mut status.state, r, policy, generation, now);
                    true
                }
                Some(_) => false,
            };
            if may_start {
                let job = datalake_job(&lake, &due.id);
                let job_name = job.metadata.name.clone().unwrap_or_default();
                create_job(&ctx.client, &ns, &job, &lake.uid().unwrap_or_default()).await?;
                consume(&mut status.state, &due.mark);
                let record = RunRecord {
                    job_name: job_name.clone(),
                    trigger: due.id.trigger.clone(),
                    attempt: due.id.attempt,
                    start_time: Some(fmt_time(now)),
                    ..Default::default()
                };
                start_run(&mut status.state, record, generation, now);
                ctx.count_start(KIND, &due.id.trigger);
                let note = format!("ingest {job_name} started ({})", due.id.trigger);
                ctx.event(&*lake, EventType::Normal, "RunStarted", "Ingest", note)
                    .await;
                tracing::info!(namespace = %ns, datalake = %name, job = %job_name, trigger = %due.id.trigger, "run started");
                // Check the Job's deadline later.
                let deadline = now + chrono::Duration::seconds(policy.run_deadline_seconds + 31);
                wake = [wake, Some(deadline)].into_iter().flatten().min();
            } else {
                waiting = Some((
                    "WaitingForActiveRun",
                    "a run is due; concurrencyPolicy Forbid waits for the active run".into(),
                ));
            }
        }
    }

    settle(
        &mut status.state,
        policy.suspend,
        invalid.as_deref(),
        waiting.as_ref().map(|(r, m)| (*r, m.as_str())),
        generation,
        now,
    );
    if status != before {
        apply_status(&ctx.client, &*lake, &status).await?;
    }
    ctx.metrics
        .reconcile_duration
        .get_or_create(&crate::metrics::KindLabels { kind: KIND.into() })
        .observe(timer.elapsed().as_secs_f64());
    Ok(requeue_at(wake, now))
}
