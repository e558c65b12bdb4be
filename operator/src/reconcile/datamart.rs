//! Datamart reconciliation: gold builds from the DataLake's silver snapshot,
//! re-runs on new snapshots, and the gold table's fate on deletion.

use super::{
    Context, Error, JobState, Launch, Result, RunOwner, finish_reconcile, kube_err, observe_job,
    parse_schedule, requeue_at, start_due_run,
};
use crate::crd::{
    DataLake, Datamart, DatamartStatus, DeletionPolicy, GOLD_FINALIZER, RunOutcome, RunRecord,
};
use crate::job::{datamart_engine, datamart_job};
use crate::plan::{SnapshotFacts, plan};
use crate::report::RunReport;
use crate::status::{finish_run, fmt_time};
use aurum_gold::ident::qualified;
use aurum_gold::postgres::PgConfig;
use chrono::Utc;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use std::sync::Arc;
use std::time::Duration;

const KIND: &str = "Datamart";

pub async fn reconcile(dm: Arc<Datamart>, ctx: Arc<Context>) -> Result<Action> {
    let ns = dm.namespace().ok_or_else(|| Error::NoNamespace {
        kind: KIND,
        name: dm.name_any(),
    })?;
    let api: Api<Datamart> = Api::namespaced(ctx.client.clone(), &ns);
    if dm.spec.deletion_policy == DeletionPolicy::Retain {
        // Keeping the table needs nothing at deletion, so such a Datamart carries
        // no finalizer: deleting it (or `helm uninstall`, which removes the
        // operator at the same time) never waits for an operator that is gone.
        if dm.finalizers().iter().any(|f| f == GOLD_FINALIZER) {
            remove_gold_finalizer(&api, &dm).await?;
        }
        if dm.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        return apply(dm, ctx, ns).await;
    }
    finalizer(&api, GOLD_FINALIZER, dm, |event| async {
        match event {
            Finalizer::Apply(dm) => apply(dm, ctx.clone(), ns.clone()).await,
            Finalizer::Cleanup(dm) => cleanup(dm, ctx.clone(), ns.clone()).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer {
            source: Box::new(other),
        },
    })
}

/// Removes the gold-table finalizer (left by `deletionPolicy: Delete`, or by an
/// operator that added it to every Datamart), keeping any other finalizer. The
/// resourceVersion makes it a no-op conflict if the object changed meanwhile.
async fn remove_gold_finalizer(api: &Api<Datamart>, dm: &Datamart) -> Result<()> {
    let others: Vec<&String> = dm
        .finalizers()
        .iter()
        .filter(|f| *f != GOLD_FINALIZER)
        .collect();
    let patch = serde_json::json!({
        "metadata": {"finalizers": others, "resourceVersion": dm.resource_version()}
    });
    api.patch(
        &dm.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(kube_err(format!(
        "remove finalizer {GOLD_FINALIZER} from Datamart {}",
        dm.name_any()
    )))?;
    Ok(())
}

/// Applies a finished datamart run to the status.
pub fn record_finished(
    status: &mut DatamartStatus,
    dm: &Datamart,
    mut record: RunRecord,
    main: Option<&RunReport>,
    now: chrono::DateTime<Utc>,
) {
    if record.outcome == Some(RunOutcome::Succeeded) {
        if let Some(m) = main {
            record.rows_written = Some(m.rows_written(Some("datamart")));
        }
        if record.silver_snapshot_id.is_none() {
            record.silver_snapshot_id = status.attempted_snapshot_id.clone();
        }
        status.silver_snapshot_id = record.silver_snapshot_id.clone();
        status.rows_written = record.rows_written;
        status.duration_ms = record.duration_ms;
    }
    finish_run(
        &mut status.state,
        record,
        &dm.spec.run,
        dm.metadata.generation,
        now,
    );
}

async fn apply(dm: Arc<Datamart>, ctx: Arc<Context>, ns: String) -> Result<Action> {
    let now = Utc::now();
    let generation = dm.metadata.generation;
    let policy = &dm.spec.run;
    let before = dm.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let mut wake = None;
    let owner = RunOwner {
        obj: &*dm,
        kind: KIND,
        action: "Build",
        ns: &ns,
        policy,
        generation,
        now,
    };

    let lakes: Api<DataLake> = Api::namespaced(ctx.client.clone(), &ns);
    let lake = lakes
        .get_opt(&dm.spec.data_lake_ref.name)
        .await
        .map_err(kube_err(format!(
            "get DataLake {ns}/{}",
            dm.spec.data_lake_ref.name
        )))?;
    let (schedule, mut invalid) = parse_schedule(policy);
    if lake.is_none() && invalid.is_none() {
        invalid = Some(format!(
            "DataLake {:?} not found in namespace {ns}",
            dm.spec.data_lake_ref.name
        ));
    }

    if let Some(active) = status.state.active_run.clone() {
        match observe_job(&ctx.client, &ns, &active, policy, now).await? {
            JobState::Running { deadline } => wake = Some(deadline),
            JobState::Finished { record, main, .. } => {
                let ok = record.outcome == Some(RunOutcome::Succeeded);
                ctx.count_finish(KIND, &record);
                let msg = record.message.clone().unwrap_or_default();
                record_finished(&mut status, &dm, *record, (*main).as_ref(), now);
                let note = if ok {
                    format!(
                        "{} {} succeeded: {} rows from silver snapshot {}",
                        dm.spec.datamart.cli_name(),
                        active.job_name,
                        status.rows_written.unwrap_or(0),
                        status.silver_snapshot_id.as_deref().unwrap_or("?")
                    )
                } else {
                    format!("{} failed: {msg}", active.job_name)
                };
                owner.announce_finished(&ctx, ok, note).await;
            }
        }
    }

    let mut waiting = None;
    if let (None, Some(lake)) = (&invalid, &lake) {
        let lake_snapshot = lake
            .status
            .as_ref()
            .and_then(|s| s.silver_snapshot_id.clone());
        let p = plan(&owner.plan_input(
            &status.state,
            schedule.as_ref(),
            Some(SnapshotFacts {
                lake_snapshot: lake_snapshot.as_deref(),
                attempted: status.attempted_snapshot_id.as_deref(),
                refresh_on_new_snapshot: dm.spec.refresh_on_new_snapshot,
            }),
        ));
        status.state.next_schedule_time = p.next_schedule.map(fmt_time);
        wake = [wake, p.wake_at].into_iter().flatten().min();
        waiting = p.waiting.clone();
        if let Some(due) = p.due {
            let job = datamart_job(&dm, lake, &due.id, lake_snapshot.as_deref());
            let started = start_due_run(
                &ctx,
                &owner,
                &mut status.state,
                Launch {
                    due: &due,
                    job: &job,
                    record: RunRecord {
                        silver_snapshot_id: lake_snapshot.clone(),
                        engine: Some(datamart_engine(&dm, lake).to_string()),
                        ..Default::default()
                    },
                },
                &mut wake,
                &mut waiting,
            )
            .await?;
            if started {
                status.attempted_snapshot_id = lake_snapshot.clone();
            }
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

async fn drop_gold_table(ctx: &Context, ns: &str, dm: &Datamart) -> Result<String> {
    let table = qualified(&dm.spec.database.schema, dm.spec.datamart.table());
    let fail = |message: String| Error::DropTable {
        table: table.clone(),
        message,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let sref = &dm.spec.database.secret_ref;
    let secret = secrets
        .get_opt(&sref.name)
        .await
        .map_err(kube_err(format!("get Secret {ns}/{}", sref.name)))?
        .ok_or_else(|| fail(format!("Secret {ns}/{} not found", sref.name)))?;
    let url = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&sref.key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        .ok_or_else(|| {
            fail(format!(
                "Secret {ns}/{} has no key {:?}",
                sref.name, sref.key
            ))
        })?;
    let pg = PgConfig::from_url(&url).map_err(|e| fail(e.to_string()))?;
    let (client, connection) = tokio::time::timeout(Duration::from_secs(15), pg.connect())
        .await
        .map_err(|_| fail("timed out connecting to PostgreSQL".into()))?
        .map_err(|e| fail(format!("connecting to PostgreSQL: {e}")))?;
    let conn = tokio::spawn(connection);
    let res = client
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .map_err(|e| fail(e.to_string()));
    drop(client);
    let _ = conn.await;
    res?;
    Ok(table)
}

async fn cleanup(dm: Arc<Datamart>, ctx: Arc<Context>, ns: String) -> Result<Action> {
    // Only Datamarts with deletionPolicy Delete carry the finalizer (see `reconcile`).
    // A failure is reported (event GoldTableDropFailed, Degraded) by `guarded`.
    let table = drop_gold_table(&ctx, &ns, &dm).await?;
    let note = format!("deletionPolicy Delete: gold table {table} dropped");
    ctx.event(&*dm, EventType::Normal, "GoldTableDropped", "Delete", note)
        .await;
    Ok(Action::await_change())
}
