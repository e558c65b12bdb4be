//! Controllers for DataLake and Datamart, and what they share: following a run's
//! Job to its end, reading the job-runner's report, events, status writes.

pub mod datalake;
pub mod datamart;

use crate::crd::{
    ConcurrencyPolicy, DataLake, Datamart, GOLD_FINALIZER, HasRunState, RUN_NOW_ANNOTATION,
    RunOutcome, RunPolicy, RunRecord, RunState,
};
use crate::job::{FEED_CONTAINER, MAIN_CONTAINER};
use crate::metrics::{ErrorLabels, Metrics, RunLabels, TriggerLabels, WatchHealth};
use crate::overrides::JobDefaults;
use crate::plan::{DueRun, PlanInput, SnapshotFacts, consume};
use crate::report::RunReport;
use crate::schedule::Schedule;
use crate::status::{DEGRADED, set_condition};
use crate::status::{finish_run, fmt_time, from_time, parse_time, settle, start_run};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::DeserializeGuard;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const FIELD_MANAGER: &str = "aurum-operator";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed ({what})")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("Job {job} exists but belongs to another object")]
    ForeignJob { job: String },
    #[error("cannot drop gold table {table}: {message}")]
    DropTable { table: String, message: String },
    #[error("finalizer {GOLD_FINALIZER}")]
    Finalizer {
        #[source]
        source: Box<kube::runtime::finalizer::Error<Error>>,
    },
    #[error("{kind} {name} has no namespace")]
    NoNamespace { kind: &'static str, name: String },
    #[error("spec.podOverrides")]
    PodOverrides {
        #[source]
        source: crate::overrides::MergeError,
    },
}

impl Error {
    /// The metrics label of the error's kind.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::ForeignJob { .. } => "foreign_job",
            Error::DropTable { .. } => "drop_table",
            Error::Finalizer { .. } => "finalizer",
            Error::NoNamespace { .. } => "no_namespace",
            Error::PodOverrides { .. } => "pod_overrides",
        }
    }

    /// The reason of the Warning event that reports the error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubeApiError",
            Error::ForeignJob { .. } => "ForeignJob",
            Error::DropTable { .. } => "GoldTableDropFailed",
            Error::Finalizer { .. } => "FinalizerFailed",
            Error::NoNamespace { .. } => "NoNamespace",
            Error::PodOverrides { .. } => "InvalidPodOverrides",
        }
    }

    /// What a person must do about an error that retrying cannot fix; `None`
    /// for errors that may go away by themselves (the API server, conflicts).
    pub fn remedy(&self) -> Option<&'static str> {
        match self {
            Error::ForeignJob { .. } => Some(
                "delete that Job (or rename this object); the operator retries every 5 minutes \
                 and on every change",
            ),
            Error::DropTable { .. } => Some(
                "fix the database access (Secret, network, privileges) or set \
                 spec.deletionPolicy to Retain to let the Datamart go and keep the table; \
                 the operator retries every 5 minutes and on every change",
            ),
            Error::PodOverrides { .. } => Some(
                "fix spec.podOverrides (or the chart's jobRunner.podDefaults); the operator \
                 retries every 5 minutes and on every change",
            ),
            _ => None,
        }
    }

    /// The error and all its causes, each cause once.
    pub fn chain(&self) -> String {
        cause_chain(self)
    }
}

/// `err` and its sources joined by `: `; a source whose text its parent's
/// message already contains is skipped (many errors print their source).
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        // The API server's answer, without the Debug dump kube's Display adds.
        let s = match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(st)) => {
                cur = None;
                format!("API server: {} {}: {}", st.code, st.reason, st.message)
            }
            _ => {
                cur = e.source();
                e.to_string()
            }
        };
        if out.is_empty() {
            out = s;
        } else if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
    }
    out
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The Events API's limit on an event's note, in bytes.
pub const EVENT_NOTE_MAX: usize = 1024;

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
    /// Health of the controllers' watches, for /readyz.
    pub watches: Arc<WatchHealth>,
    /// Failed reconciles in a row per object (uid), for the retry backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The job-runner image and pod defaults of every run.
    pub jobs: JobDefaults,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        watches: Arc<WatchHealth>,
        instance: Option<String>,
        jobs: JobDefaults,
    ) -> Context {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            watches,
            failures: Mutex::new(HashMap::new()),
            jobs,
        }
    }

    /// Counts one more failed reconcile of the object `key`; returns the count.
    fn failed_once(&self, key: &str) -> u32 {
        match self.failures.lock() {
            Ok(mut f) => {
                let n = f.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        }
    }

    /// Forgets the failures of the object `key` (it reconciled fine or is gone).
    fn forget_failures(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
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
            note: Some(truncate_bytes(&note, EVENT_NOTE_MAX)),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
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
    // Before anything changes: bad overrides must not stop the active run.
    let job = &crate::overrides::customize(job.clone(), &ctx.jobs, policy.pod_overrides.as_ref())
        .map_err(|source| Error::PodOverrides { source })?;
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

/// Ends a reconcile: settles the conditions and writes the status when it
/// changed from `before`.
pub async fn finish_reconcile<K, S>(
    ctx: &Context,
    owner: &RunOwner<'_, K>,
    before: &S,
    mut status: S,
    invalid: Option<&str>,
    waiting: Option<&(&'static str, String)>,
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

/// A resource the controllers reconcile, with the status they write.
pub trait Reconciled:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    type Status: HasRunState + Serialize + Default + Clone;
    /// `DataLake` or `Datamart`.
    const KIND: &'static str;
    fn status_or_default(&self) -> Self::Status;
}

impl Reconciled for DataLake {
    type Status = crate::crd::DataLakeStatus;
    const KIND: &'static str = "DataLake";
    fn status_or_default(&self) -> Self::Status {
        self.status.clone().unwrap_or_default()
    }
}

impl Reconciled for Datamart {
    type Status = crate::crd::DatamartStatus;
    const KIND: &'static str = "Datamart";
    fn status_or_default(&self) -> Self::Status {
        self.status.clone().unwrap_or_default()
    }
}

fn failure_key<K: Resource>(obj: &K) -> String {
    obj.meta()
        .uid
        .clone()
        .unwrap_or_else(|| format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()))
}

/// Runs one reconcile of a watched object around `apply`: an object that no
/// longer deserializes (the CRD changed under it) is reported and left alone;
/// the reconcile is timed and its outcome recorded whatever way it ends; an
/// error becomes a Warning event with its whole cause chain and, when only a
/// person can fix it, a Degraded condition that says what to do.
pub async fn guarded<K, F, Fut>(
    obj: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
    apply: F,
) -> Result<Action>
where
    K: Reconciled,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    let mut timer = ctx.metrics.reconcile_timer(K::KIND);
    let inner = match &obj.0 {
        Ok(k) => Arc::new(k.clone()),
        Err(invalid) => {
            timer.set_outcome("invalid_object");
            report_invalid::<K>(&ctx, &obj, &invalid.error).await;
            return Ok(Action::await_change());
        }
    };
    let res = apply(inner.clone(), ctx.clone()).await;
    match &res {
        Ok(_) => {
            timer.set_outcome("success");
            ctx.forget_failures(&failure_key(&*inner));
        }
        Err(e) => {
            timer.set_outcome(e.label());
            report_error(&ctx, &*inner, e).await;
        }
    }
    res
}

/// Reports an object that cannot be read as `K`: a warning in the log and a
/// Warning event on the object. Its watch goes on with the other objects.
async fn report_invalid<K: Reconciled>(ctx: &Context, obj: &DeserializeGuard<K>, error: &str) {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    tracing::warn!(kind = K::KIND, namespace = %ns, %name, error, "object does not match the operator's CRD; skipped");
    let note = format!(
        "this {} cannot be read by the operator ({error}); it is skipped until it changes: \
         edit it to match the installed CRD (kubectl explain {}.spec), or install the CRDs of \
         the operator version it was written for",
        K::KIND,
        K::plural(&()),
    );
    ctx.event(obj, EventType::Warning, "InvalidObject", "Reconcile", note)
        .await;
}

/// Publishes a failed reconcile as a Warning event (reason = the error's kind,
/// note = its cause chain); for an error only a person can fix, also sets the
/// Degraded condition to the error and what to do about it.
async fn report_error<K: Reconciled>(ctx: &Context, obj: &K, err: &Error) {
    let chain = err.chain();
    let note = match err.remedy() {
        Some(remedy) => format!("{chain}; {remedy}"),
        None => chain,
    };
    ctx.event(
        obj,
        EventType::Warning,
        err.reason(),
        "Reconcile",
        note.clone(),
    )
    .await;
    if err.remedy().is_some() {
        let mut status = obj.status_or_default();
        set_condition(
            &mut status.run_state_mut().conditions,
            DEGRADED,
            true,
            err.reason(),
            &note,
            obj.meta().generation,
            Utc::now(),
        );
        if let Err(e) = apply_status(&ctx.client, obj, &status).await {
            tracing::warn!(kind = K::KIND, name = %obj.name_any(), error = %cause_chain(&e), "could not write the Degraded condition");
        }
    }
}

/// First retry after a transient error; doubles per failure in a row.
const RETRY_INITIAL: Duration = Duration::from_secs(2);
/// Cap of the transient-error backoff.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Retry period of errors only a person can fix (a change retries at once).
pub const RETRY_HUMAN: Duration = Duration::from_secs(300);

/// The delay before the `n`th retry (1-based) after a transient error.
pub fn transient_backoff(n: u32) -> Duration {
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
    RETRY_INITIAL.saturating_mul(factor).min(RETRY_MAX)
}

/// When to retry a failed reconcile: transient errors (the API server, a
/// conflict) soon, backing off per object; errors that wait for a person
/// (a foreign Job, a gold table that cannot be dropped) every 5 minutes.
fn error_policy<K: Reconciled>(
    obj: Arc<DeserializeGuard<K>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            kind: K::KIND.to_string(),
            error: err.label().into(),
        })
        .inc();
    let after = match err {
        Error::NoNamespace { .. } => None,
        e if e.remedy().is_some() => Some(RETRY_HUMAN),
        _ => Some(transient_backoff(ctx.failed_once(&failure_key(&*obj)))),
    };
    tracing::warn!(
        kind = K::KIND,
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        error = %err.chain(),
        retry_in_s = after.map(|d| d.as_secs_f64()),
        "reconcile failed"
    );
    match after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    }
}

/// A watch stream that reports its health (`name`) to `health`: every event
/// marks it working, every error broken.
fn watched<S, T>(
    stream: S,
    name: &'static str,
    health: Arc<WatchHealth>,
) -> impl futures::Stream<Item = std::result::Result<T, watcher::Error>> + Send
where
    S: futures::Stream<Item = std::result::Result<T, watcher::Error>> + Send,
{
    stream.inspect(move |ev| match ev {
        Ok(_) => health.ok(name),
        Err(e) => health.failed(name, &cause_chain(e)),
    })
}

/// Logs what the controller's output stream reports: reconcile failures are
/// logged by `error_policy`; queue (watch) and runner errors here, at warn.
fn log_controller_result<E1, E2>(
    controller: &'static str,
    res: std::result::Result<impl std::fmt::Debug, kube::runtime::controller::Error<E1, E2>>,
) where
    E1: std::error::Error + 'static,
    E2: std::error::Error + 'static,
{
    use kube::runtime::controller::Error as E;
    match res {
        Ok(_) | Err(E::ReconcilerFailed(..)) => {}
        Err(E::ObjectNotFound(obj)) => {
            tracing::debug!(controller, object = %obj, "reconcile of an object already gone")
        }
        Err(e) => tracing::warn!(controller, error = %cause_chain(&e), "controller error"),
    }
}

/// Runs both controllers until `shutdown` resolves. Objects that no longer
/// deserialize are handed to the reconcilers as errors (and reported), so one
/// bad object never stops a watch; each watch's health feeds /readyz.
pub async fn run_controllers(
    client: Client,
    namespace: Option<String>,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    type Lake = DeserializeGuard<DataLake>;
    type Mart = DeserializeGuard<Datamart>;
    fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let health = ctx.watches.clone();
    let managed = format!("{}={}", crate::job::LABEL_MANAGED_BY, crate::job::MANAGER);
    let jobs_cfg = watcher::Config::default().labels(&managed);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let jobs = |name: &'static str| {
        watched(
            watcher(
                api::<PartialObjectMeta<Job>>(&client, &namespace),
                jobs_cfg.clone(),
            ),
            name,
            health.clone(),
        )
        .touched_objects()
    };

    let (lake_reader, lake_writer) = reflector::store::<Lake>();
    let lake_stream = watched(
        watcher(
            api::<Lake>(&client, &namespace),
            watcher::Config::default().any_semantic(),
        ),
        "datalakes",
        health.clone(),
    )
    .reflect(lake_writer)
    .applied_objects();
    let lake_ctl = Controller::for_stream(lake_stream, lake_reader)
        .owns_stream(jobs("datalake-jobs"))
        .graceful_shutdown_on(stop(rx.clone()))
        .run(
            |obj, ctx| guarded(obj, ctx, datalake::reconcile),
            error_policy::<DataLake>,
            ctx.clone(),
        )
        .for_each(|res| async move { log_controller_result("datalake", res) });

    let (mart_reader, mart_writer) = reflector::store::<Mart>();
    let mart_stream = watched(
        watcher(
            api::<Mart>(&client, &namespace),
            watcher::Config::default().any_semantic(),
        ),
        "datamarts",
        health.clone(),
    )
    .reflect(mart_writer)
    .applied_objects();
    let store = mart_reader.clone();
    let lakes_for_marts = watched(
        watcher(api::<Lake>(&client, &namespace), watcher::Config::default()),
        "datalakes-for-datamarts",
        health.clone(),
    )
    .touched_objects();
    let mart_ctl = Controller::for_stream(mart_stream, mart_reader)
        .owns_stream(jobs("datamart-jobs"))
        .watches_stream(lakes_for_marts, move |lake: Lake| {
            let ns = lake.namespace();
            let name = lake.name_any();
            store
                .state()
                .into_iter()
                .filter(|dm| {
                    dm.namespace() == ns
                        && dm
                            .0
                            .as_ref()
                            .is_ok_and(|dm| dm.spec.data_lake_ref.name == name)
                })
                .map(|dm| ObjectRef::from_obj(&*dm))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop(rx))
        .run(
            |obj, ctx| guarded(obj, ctx, datamart::reconcile),
            error_policy::<Datamart>,
            ctx.clone(),
        )
        .for_each(|res| async move { log_controller_result("datamart", res) });
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    tokio::join!(lake_ctl, mart_ctl);
    // A standby replica watches nothing: its readiness no longer depends on them.
    health.clear();
}

#[cfg(test)]
mod tests {
    use super::{Error, RETRY_MAX, Termination, transient_backoff, truncate_bytes};
    use std::time::Duration;

    #[test]
    fn the_cause_chain_names_every_cause_once() {
        let api = kube::Error::Api(
            kube::core::Status::failure("datalakes.aurum.dev \"x\" is forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        let e = Error::Kube {
            what: "get DataLake ns/x".into(),
            source: api,
        };
        let chain = e.chain();
        assert!(
            chain.starts_with("Kubernetes API call failed (get DataLake ns/x): "),
            "{chain}"
        );
        assert!(
            chain.ends_with("API server: 403 Forbidden: datalakes.aurum.dev \"x\" is forbidden"),
            "{chain}"
        );
        // The finalizer's own error keeps its source.
        let fin = Error::Finalizer {
            source: Box::new(kube::runtime::finalizer::Error::AddFinalizer(
                kube::Error::Api(
                    kube::core::Status::failure("conflict on datamarts", "Conflict")
                        .with_code(409)
                        .boxed(),
                ),
            )),
        };
        let chain = fin.chain();
        assert!(chain.contains("failed to add finalizer"), "{chain}");
        assert!(chain.contains("conflict on datamarts"), "{chain}");
        assert_eq!(fin.reason(), "FinalizerFailed");
    }

    #[test]
    fn event_notes_are_cut_to_the_api_limit_on_a_char_boundary() {
        let long = "é".repeat(800);
        let cut = truncate_bytes(&long, 1024);
        assert!(cut.len() <= 1024, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate_bytes("short", 1024), "short");
    }

    #[test]
    fn transient_errors_back_off_exponentially_to_a_cap() {
        assert_eq!(transient_backoff(1), Duration::from_secs(2));
        assert_eq!(transient_backoff(2), Duration::from_secs(4));
        assert_eq!(transient_backoff(5), Duration::from_secs(32));
        assert_eq!(transient_backoff(50), RETRY_MAX);
        assert!(Error::ForeignJob { job: "j".into() }.remedy().is_some());
        assert!(
            Error::NoNamespace {
                kind: "Datamart",
                name: "x".into()
            }
            .remedy()
            .is_none()
        );
    }
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
