//! Controllers for DataLake and Datamart, and what they share: following a run's
//! Job to its end, reading the job-runner's report, events, status writes.

pub mod datalake;
pub mod datamart;

use crate::crd::{
    ConcurrencyPolicy, DataLake, Datamart, HasRunState, RUN_NOW_ANNOTATION, RunOutcome, RunPolicy,
    RunRecord, RunState,
};
use crate::job::{FEED_CONTAINER, MAIN_CONTAINER};
use crate::metrics::{ErrorLabels, KindLabels, Metrics, RunLabels, TriggerLabels};
use crate::plan::{DueRun, PlanInput, SnapshotFacts, consume};
use crate::report::RunReport;
use crate::schedule::Schedule;
use crate::status::{finish_run, fmt_time, from_time, parse_time, settle, start_run};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

pub const FIELD_MANAGER: &str = "aurum-operator";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed ({what}): {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("Job {job} exists but belongs to another object")]
    ForeignJob { job: String },
    #[error("cannot drop gold table {table}: {message}")]
    DropTable { table: String, message: String },
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("{kind} {name} has no namespace")]
    NoNamespace { kind: &'static str, name: String },
}

impl Error {
    fn label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::ForeignJob { .. } => "foreign_job",
            Error::DropTable { .. } => "drop_table",
            Error::Finalizer(_) => "finalizer",
            Error::NoNamespace { .. } => "no_namespace",
        }
    }
}

pub fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the reconcilers share.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, instance: Option<String>) -> Context {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
        }
    }

    /// Publishes an event; a failure to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }

    pub fn count_reconcile(&self, kind: &str) {
        self.metrics
            .reconciles
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    pub fn count_start(&self, kind: &str, trigger: &str) {
        self.metrics
            .runs_started
            .get_or_create(&TriggerLabels {
                kind: kind.into(),
                trigger: trigger.into(),
            })
            .inc();
    }

    pub fn count_finish(&self, kind: &str, run: &RunRecord) {
        let outcome = match run.outcome {
            Some(RunOutcome::Succeeded) => "succeeded",
            Some(RunOutcome::Replaced) => "replaced",
            _ => "failed",
        };
        let labels = RunLabels {
            kind: kind.into(),
            outcome: outcome.into(),
        };
        self.metrics.runs_finished.get_or_create(&labels).inc();
        let start = run.start_time.as_deref().and_then(parse_time);
        let end = run.completion_time.as_deref().and_then(parse_time);
        if let (Some(s), Some(e)) = (start, end) {
            let secs = (e - s).num_milliseconds().max(0) as f64 / 1000.0;
            self.metrics
                .run_duration
                .get_or_create(&labels)
                .observe(secs);
        }
    }
}

/// The state of an active run's Job.
pub enum JobState {
    Running {
        deadline: DateTime<Utc>,
    },
    Finished {
        record: Box<RunRecord>,
        main: Box<Option<RunReport>>,
        feed: Box<Option<RunReport>>,
    },
}

fn job_condition<'a>(
    job: &'a Job,
    type_: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// How a container of the run's pod ended, as the kubelet reported it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Termination {
    /// The termination message: the job-runner's report, or the log tail.
    message: Option<String>,
    /// The kubelet's reason, e.g. `Error`, `Completed` or `OOMKilled`.
    reason: Option<String>,
    exit_code: i32,
}

impl Termination {
    fn of(
        statuses: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>,
        name: &str,
    ) -> Option<Self> {
        let t = statuses
            .as_ref()?
            .iter()
            .find(|c| c.name == name)?
            .state
            .as_ref()?
            .terminated
            .as_ref()?;
        Some(Self {
            message: t.message.clone(),
            reason: t.reason.clone(),
            exit_code: t.exit_code,
        })
    }

    /// The message for a container the kernel killed at its memory limit: the
    /// log tail of such a container says nothing about why it stopped.
    fn oom_message(&self, container: &str, limit: Option<&str>) -> Option<String> {
        (self.reason.as_deref() == Some("OOMKilled")).then(|| {
            format!(
                "OOMKilled: container {container} was killed at its memory limit ({}) with exit code {}; \
                 raise spec.resources.limits.memory",
                limit.unwrap_or("none set: the node ran out of memory"),
                self.exit_code
            )
        })
    }
}

/// How the job's newest pod ended: (main container, feed init container).
async fn terminations(
    client: &Client,
    ns: &str,
    job: &str,
) -> Result<(Option<Termination>, Option<Termination>)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .map_err(kube_err(format!("list pods of Job {ns}/{job}")))?;
    let newest = list
        .items
        .into_iter()
        .max_by_key(|p| p.metadata.creation_timestamp.clone());
    let Some(status) = newest.and_then(|p| p.status) else {
        return Ok((None, None));
    };
    Ok((
        Termination::of(&status.container_statuses, MAIN_CONTAINER),
        Termination::of(&status.init_container_statuses, FEED_CONTAINER),
    ))
}

/// Follows the active run's Job: still running (with the time its deadline
/// passes), or finished with the outcome and the job-runner's reports.
pub async fn observe_job(
    client: &Client,
    ns: &str,
    active: &RunRecord,
    policy: &RunPolicy,
    now: DateTime<Utc>,
) -> Result<JobState> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let mut record = active.clone();
    let Some(job) = jobs
        .get_opt(&active.job_name)
        .await
        .map_err(kube_err(format!("get Job {ns}/{}", active.job_name)))?
    else {
        record.outcome = Some(RunOutcome::Failed);
        record.message = Some(format!(
            "Job {} disappeared before it finished",
            active.job_name
        ));
        return Ok(JobState::Finished {
            record: Box::new(record),
            main: Box::new(None),
            feed: Box::new(None),
        });
    };
    let complete = job_condition(&job, "Complete");
    let failed = job_condition(&job, "Failed");
    if complete.is_none() && failed.is_none() {
        let start = active
            .start_time
            .as_deref()
            .and_then(parse_time)
            .unwrap_or(now);
        // The Job's activeDeadlineSeconds normally fails it first; this catches a
        // Job the Job controller never started.
        let deadline = start + chrono::Duration::seconds(policy.run_deadline_seconds + 30);
        if now < deadline {
            return Ok(JobState::Running { deadline });
        }
        jobs.delete(&active.job_name, &DeleteParams::background())
            .await
            .map_err(kube_err(format!("delete Job {ns}/{}", active.job_name)))?;
        record.outcome = Some(RunOutcome::Failed);
        record.message = Some(format!(
            "DeadlineExceeded: the run was not finished after runDeadlineSeconds={}",
            policy.run_deadline_seconds
        ));
        record.completion_time = Some(fmt_time(now));
        return Ok(JobState::Finished {
            record: Box::new(record),
            main: Box::new(None),
            feed: Box::new(None),
        });
    }
    let (main_end, feed_end) = terminations(client, ns, &active.job_name).await?;
    let main_msg = main_end.as_ref().and_then(|t| t.message.clone());
    let feed_msg = feed_end.as_ref().and_then(|t| t.message.clone());
    let main = main_msg.as_deref().and_then(RunReport::parse);
    let feed = feed_msg.as_deref().and_then(RunReport::parse);
    let completion = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref().map(from_time))
        .or_else(|| failed.and_then(|c| c.last_transition_time.as_ref().map(from_time)))
        .unwrap_or(now);
    record.completion_time = Some(fmt_time(completion));
    if let Some(r) = main.as_ref() {
        record.run_id = r.run_id.clone();
        record.duration_ms = r.duration_ms;
        record.silver_snapshot_id = r.silver_snapshot_id.clone();
        record.rows_written = Some(r.rows_written(None));
    }
    if complete.is_some() && main.as_ref().is_none_or(RunReport::succeeded) {
        record.outcome = Some(RunOutcome::Succeeded);
        record.message = None;
    } else {
        record.outcome = Some(RunOutcome::Failed);
        let memory_limit = policy
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .map(|q| q.0.as_str());
        let oom = main_end
            .as_ref()
            .and_then(|t| t.oom_message(MAIN_CONTAINER, memory_limit))
            .or_else(|| {
                feed_end
                    .as_ref()
                    .and_then(|t| t.oom_message(FEED_CONTAINER, memory_limit))
            });
        let from_reports = main
            .as_ref()
            .and_then(RunReport::failure_message)
            .or_else(|| feed.as_ref().and_then(RunReport::failure_message));
        // Without a report, the termination message is the log tail.
        let raw = main_msg
            .as_deref()
            .or(feed_msg.as_deref())
            .filter(|m| !m.trim().is_empty() && main.is_none())
            .map(|m| m.trim().lines().last().unwrap_or("").to_string());
        let from_job = failed.map(|c| {
            format!(
                "{}: {}",
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default()
            )
        });
        record.message = Some(
            oom.or(from_reports)
                .or(raw)
                .or(from_job)
                .unwrap_or_else(|| "the Job failed without a report".into()),
        );
    }
    Ok(JobState::Finished {
        record: Box::new(record),
        main: Box::new(main),
        feed: Box::new(feed),
    })
}

/// Creates the run's Job; an existing Job of the same (deterministic) name and
/// owner is adopted, so a restarted operator never starts a run twice.
pub async fn create_job(client: &Client, ns: &str, job: &Job, owner_uid: &str) -> Result<()> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let name = job.name_any();
    match jobs.create(&PostParams::default(), job).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = jobs
                .get(&name)
                .await
                .map_err(kube_err(format!("get Job {ns}/{name}")))?;
            let ours = existing
                .owner_references()
                .iter()
                .any(|o| o.uid == owner_uid);
            if ours {
                tracing::info!(job = %name, "adopting the existing Job of this run");
                Ok(())
            } else {
                Err(Error::ForeignJob { job: name })
            }
        }
        Err(e) => Err(Error::Kube {
            what: format!("create Job {ns}/{name}"),
            source: e,
        }),
    }
}

/// The object a due run belongs to, as the run-starting logic sees it.
pub struct RunOwner<'a, K> {
    pub obj: &'a K,
    /// `DataLake` or `Datamart`: the metrics label and the log field.
    pub kind: &'static str,
    /// The event action: `Ingest` for lakes, `Build` for datamarts.
    pub action: &'static str,
    pub ns: &'a str,
    pub policy: &'a RunPolicy,
    pub generation: Option<i64>,
    pub now: DateTime<Utc>,
}

impl<K: Resource<DynamicType = ()>> RunOwner<'_, K> {
    /// What `plan` decides from: this object's policy, run-now annotation and
    /// creation time with `state`, `schedule` and, for a Datamart, `snapshot`.
    pub fn plan_input<'b>(
        &'b self,
        state: &'b RunState,
        schedule: Option<&'b Schedule>,
        snapshot: Option<SnapshotFacts<'b>>,
    ) -> PlanInput<'b> {
        PlanInput {
            policy: self.policy,
            state,
            generation: self.generation.unwrap_or(0),
            run_now: self
                .obj
                .annotations()
                .get(RUN_NOW_ANNOTATION)
                .map(String::as_str),
            schedule,
            created: self
                .obj
                .creation_timestamp()
                .map(|t| from_time(&t))
                .unwrap_or(self.now),
            now: self.now,
            snapshot,
        }
    }

    /// Publishes the end of a run: `RunSucceeded` (Normal) when it `succeeded`,
    /// else `RunFailed` (Warning), with `note`.
    pub async fn announce_finished(&self, ctx: &Context, succeeded: bool, note: String) {
        let (type_, reason) = if succeeded {
            (EventType::Normal, "RunSucceeded")
        } else {
            (EventType::Warning, "RunFailed")
        };
        ctx.event(self.obj, type_, reason, self.action, note).await;
    }
}

/// The schedule of `policy` (`None` without one), and the message that makes
/// the object invalid when it does not parse.
pub fn parse_schedule(policy: &RunPolicy) -> (Option<Schedule>, Option<String>) {
    match &policy.schedule {
        None => (None, None),
        Some(s) => match Schedule::parse(s, policy.time_zone.as_deref()) {
            Ok(schedule) => (Some(schedule), None),
            Err(e) => (None, Some(e.to_string())),
        },
    }
}

/// A due run, the Job that carries it out, and what the caller records about
/// it beyond the Job (e.g. the silver snapshot a datamart build reads).
pub struct Launch<'a> {
    pub due: &'a DueRun,
    pub job: &'a Job,
    pub record: RunRecord,
}

/// Starts a due run as its Job, after replacing the active run when the
/// policy is `Replace`. Returns whether it started; when it did,
/// `wake` is moved up to the new Job's deadline, and when `Forbid` makes it
/// wait for the active run, `waiting` says so.
pub async fn start_due_run<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    owner: &RunOwner<'_, K>,
    state: &mut RunState,
    Launch { due, job, record }: Launch<'_>,
    wake: &mut Option<DateTime<Utc>>,
    waiting: &mut Option<(&'static str, String)>,
) -> Result<bool> {
    let RunOwner {
        obj,
        kind,
        action,
        ns,
        policy,
        generation,
        now,
    } = *owner;
    match state.active_run.clone() {
        None => {}
        Some(active) if policy.concurrency_policy == ConcurrencyPolicy::Replace => {
            delete_job(&ctx.client, ns, &active.job_name).await?;
            let mut replaced = active;
            replaced.outcome = Some(RunOutcome::Replaced);
            ctx.count_finish(kind, &replaced);
            finish_run(state, replaced, policy, generation, now);
        }
        Some(_) => {
            *waiting = Some((
                "WaitingForActiveRun",
                "a run is due; concurrencyPolicy Forbid waits for the active run".into(),
            ));
            return Ok(false);
        }
    }
    let job_name = job.name_any();
    create_job(&ctx.client, ns, job, &obj.uid().unwrap_or_default()).await?;
    consume(state, &due.mark);
    let trigger = due.id.trigger.clone();
    let record = RunRecord {
        job_name: job_name.clone(),
        trigger: trigger.clone(),
        attempt: due.id.attempt,
        start_time: Some(fmt_time(now)),
        ..record
    };
    start_run(state, record, generation, now);
    ctx.count_start(kind, &trigger);
    let note = format!("{job_name} started ({trigger})");
    ctx.event(obj, EventType::Normal, "RunStarted", action, note)
        .await;
    tracing::info!(namespace = %ns, kind, name = %obj.name_any(), job = %job_name, %trigger, "run started");
    // Look at the Job again just after its deadline.
    let deadline = now + chrono::Duration::seconds(policy.run_deadline_seconds + 31);
    *wake = [*wake, Some(deadline)].into_iter().flatten().min();
    Ok(true)
}

/// Ends a reconcile: settles the conditions, writes the status when it
/// changed from `before`, and records the reconcile's duration.
pub async fn finish_reconcile<K, S>(
    ctx: &Context,
    owner: &RunOwner<'_, K>,
    before: &S,
    mut status: S,
    invalid: Option<&str>,
    waiting: Option<&(&'static str, String)>,
    started: std::time::Instant,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    S: HasRunState + Serialize + PartialEq,
{
    settle(
        status.run_state_mut(),
        owner.policy.suspend,
        invalid,
        waiting.map(|(reason, message)| (*reason, message.as_str())),
        owner.generation,
        owner.now,
    );
    if status != *before {
        apply_status(&ctx.client, owner.obj, &status).await?;
    }
    ctx.metrics
        .reconcile_duration
        .get_or_create(&KindLabels {
            kind: owner.kind.into(),
        })
        .observe(started.elapsed().as_secs_f64());
    Ok(())
}

/// Deletes a Job (and its pods) of a replaced run.
pub async fn delete_job(client: &Client, ns: &str, name: &str) -> Result<()> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    match jobs.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube {
            what: format!("delete Job {ns}/{name}"),
            source: e,
        }),
    }
}

/// Writes the status with server-side apply: fields left out are removed.
pub async fn apply_status<K, S>(client: &Client, obj: &K, status: &S) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    S: Serialize,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    // The resourceVersion makes the write conditional: a reconcile that read a
    // stale copy from the cache (its status already replaced by a newer
    // reconcile) gets a conflict and is retried on fresh state, instead of
    // overwriting the newer status with what it inferred from the old one.
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "resourceVersion": obj.resource_version() },
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(kube_err(format!(
        "update status of {} {ns}/{}",
        K::kind(&()),
        obj.name_any()
    )))?;
    Ok(())
}

/// When to reconcile again: at the next wake-up time, at least every 5 minutes.
pub fn requeue_at(wake: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Action {
    let max = Duration::from_secs(300);
    let d = wake
        .map(|w| (w - now).to_std().unwrap_or(Duration::from_millis(500)))
        .unwrap_or(max)
        .clamp(Duration::from_millis(500), max);
    Action::requeue(d + Duration::from_millis(200))
}

fn error_policy<K>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    tracing::warn!(kind = %K::kind(&()), name = %obj.name_any(), error = %err, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            kind: K::kind(&()).to_string(),
            error: err.label().into(),
        })
        .inc();
    Action::requeue(Duration::from_secs(5))
}

/// Runs both controllers until `shutdown` resolves.
pub async fn run_controllers(
    client: Client,
    namespace: Option<String>,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (lakes, marts, jobs): (Api<DataLake>, Api<Datamart>, Api<Job>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let managed = format!("{}={}", crate::job::LABEL_MANAGED_BY, crate::job::MANAGER);
    let jobs_cfg = watcher::Config::default().labels(&managed);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };

    let lake_ctl = Controller::new(lakes.clone(), watcher::Config::default().any_semantic())
        .owns(jobs.clone(), jobs_cfg.clone())
        .graceful_shutdown_on(stop(rx.clone()))
        .run(datalake::reconcile, error_policy::<DataLake>, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "datalake controller event");
            }
        });

    let mart_ctl = Controller::new(marts, watcher::Config::default().any_semantic());
    let store = mart_ctl.store();
    let mart_ctl = mart_ctl
        .owns(jobs, jobs_cfg)
        .watches(lakes, watcher::Config::default(), move |lake: DataLake| {
            let ns = lake.namespace();
            let name = lake.name_any();
            store
                .state()
                .into_iter()
                .filter(|dm| dm.namespace() == ns && dm.spec.data_lake_ref.name == name)
                .map(|dm| ObjectRef::from_obj(&*dm))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop(rx))
        .run(datamart::reconcile, error_policy::<Datamart>, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "datamart controller event");
            }
        });
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    tokio::join!(lake_ctl, mart_ctl);
}

#[cfg(test)]
mod tests {
    use super::Termination;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus};

    fn status(name: &str, reason: &str, exit_code: i32, message: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    reason: Some(reason.into()),
                    exit_code,
                    message: Some(message.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_oom_killed_container_is_named_with_its_limit() {
        let statuses = Some(vec![status("job-runner", "OOMKilled", 137, "log tail")]);
        let t = Termination::of(&statuses, "job-runner").unwrap();
        assert_eq!(t.message.as_deref(), Some("log tail"));
        let msg = t.oom_message("job-runner", Some("64Mi")).unwrap();
        assert!(msg.starts_with("OOMKilled: container job-runner"), "{msg}");
        assert!(
            msg.contains("(64Mi)") && msg.contains("exit code 137"),
            "{msg}"
        );
    }

    #[test]
    fn other_failures_keep_their_own_message() {
        let statuses = Some(vec![status("job-runner", "Error", 1, "{}")]);
        let t = Termination::of(&statuses, "job-runner").unwrap();
        assert_eq!(t.oom_message("job-runner", Some("64Mi")), None);
        assert_eq!(Termination::of(&statuses, "feed"), None);
    }
}
