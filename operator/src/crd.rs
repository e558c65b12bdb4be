//! The `DataLake` and `Datamart` custom resources (group `aurum.dev`, version
//! `v1alpha1`). `aurum-operator crdgen` prints them; `crds/` holds the output.

use k8s_openapi::api::core::v1::{PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "aurum.dev";
/// Annotation that asks for a run now: set it to any new value (a timestamp).
pub const RUN_NOW_ANNOTATION: &str = "aurum.dev/run-now";
/// Finalizer on Datamarts that applies `deletionPolicy` to the gold table.
pub const GOLD_FINALIZER: &str = "aurum.dev/gold-table";
/// Repository of the job-runner image when the operator is not told
/// (`--job-runner-image`); the tag is the operator's own version.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "aurum-job-runner";

/// The job-runner image of this operator's version: runs started by this
/// operator run the job-runner it was released with.
pub fn default_job_runner_image() -> String {
    format!("{DEFAULT_IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// A data lake: where it lives, where its source CSVs come from, and when the
/// operator ingests them (feed then preprocess) into a new silver snapshot.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "aurum.dev",
    version = "v1alpha1",
    kind = "DataLake",
    plural = "datalakes",
    shortname = "dl",
    namespaced,
    status = "DataLakeStatus",
    doc = "A data lake that the operator keeps ingested: each run feeds the source CSVs into the lake and preprocesses them into a new silver snapshot.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Snapshot","type":"string","jsonPath":".status.silverSnapshotId"}"#,
    printcolumn = r#"{"name":"Rows","type":"integer","jsonPath":".status.rowsWritten"}"#,
    printcolumn = r#"{"name":"Catalog","type":"string","priority":1,"jsonPath":".status.catalog.status"}"#,
    printcolumn = r#"{"name":"Engine","type":"string","priority":1,"jsonPath":".spec.engine"}"#,
    printcolumn = r#"{"name":"Last Run","type":"date","jsonPath":".status.lastRunTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.timeZone) || has(self.schedule)", "message": "timeZone needs a schedule"},
    {"rule": "self.backoffMaxSeconds >= self.backoffInitialSeconds", "message": "backoffMaxSeconds must be >= backoffInitialSeconds"}
]))]
pub struct DataLakeSpec {
    /// URI of the lake root, e.g. `hdfs://namenode:8020/aurum/lake` or `file:///data/lake`.
    #[schemars(regex(pattern = r"^(hdfs|file|viewfs)://\S+$"), length(max = 1024))]
    pub lake_uri: String,

    /// Name of a ConfigMap in the same namespace holding the Hadoop client
    /// configuration (core-site.xml, hdfs-site.xml). It is mounted at
    /// /etc/hadoop/conf and `HADOOP_CONF_DIR` points at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 253))]
    pub hadoop_config_map: Option<String>,

    /// Where the source CSV files come from.
    pub source: SourceSpec,

    /// A Hive Metastore in which each preprocess registers the silver and
    /// rejects tables (docs/catalog.md). Without it nothing is registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogSpec>,

    #[serde(flatten)]
    pub run: RunPolicy,
}

/// The Hive Metastore of a DataLake's silver tables; the ingest Jobs get it as
/// `AURUM_METASTORE` and `AURUM_METASTORE_DATABASE`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSpec {
    /// The Metastore's Thrift URL, `thrift://HOST:PORT` (binary protocol, no SASL).
    #[schemars(
        regex(
            pattern = r"^thrift://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):[0-9]{1,5}/?$"
        ),
        length(max = 512)
    )]
    pub metastore: String,
    /// The Metastore database of the tables, created when missing (default `aurum`).
    #[serde(default = "default_catalog_database")]
    #[schemars(regex(pattern = r"^[a-z0-9_]+$"), length(min = 1, max = 128))]
    pub database: String,
}

/// Where the source CSVs come from: exactly one of `path`, `configMap`,
/// `persistentVolumeClaim`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.path), has(self.configMap), has(self.persistentVolumeClaim)].filter(x, x).size() == 1",
    "message": "set exactly one of source.path, source.configMap, source.persistentVolumeClaim"
}]))]
pub struct SourceSpec {
    /// A landing directory as the job-runner sees it: an HDFS URI
    /// (`hdfs://nn:8020/landing`) or a path inside the job container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub path: Option<String>,
    /// Name of a ConfigMap whose keys are the CSV files (small demos); mounted
    /// read-only at /aurum/source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(max = 253)
    )]
    pub config_map: Option<String>,
    /// Name of a PersistentVolumeClaim holding the CSV files; mounted read-only at
    /// /aurum/source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(max = 253)
    )]
    pub persistent_volume_claim: Option<String>,
    /// Sub-directory inside the ConfigMap or PersistentVolumeClaim volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^/].*$"), length(max = 1024))]
    pub sub_path: Option<String>,
}

/// One of the four gold datamarts.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DatamartKind {
    /// Sales per country and year (`gold_sales_country_year`).
    SalesCountryYear,
    /// Best-selling products (`gold_top_products`); takes `topN`.
    TopProducts,
    /// Sales per month (`gold_monthly_sales`).
    MonthlySales,
    /// Customer lifetime value (`gold_customer_lifetime_value`).
    CustomerLifetimeValue,
}

impl DatamartKind {
    /// The contract's datamart.
    pub fn gold(self) -> aurum_gold::Datamart {
        match self {
            DatamartKind::SalesCountryYear => aurum_gold::Datamart::SalesCountryYear,
            DatamartKind::TopProducts => aurum_gold::Datamart::TopProducts,
            DatamartKind::MonthlySales => aurum_gold::Datamart::MonthlySales,
            DatamartKind::CustomerLifetimeValue => aurum_gold::Datamart::CustomerLifetimeValue,
        }
    }

    /// The name used on the job-runner CLI and in CRs.
    pub fn cli_name(self) -> &'static str {
        self.gold().name()
    }

    /// The PostgreSQL table the datamart writes (docs/data-format.md, "Gold tables").
    pub fn table(self) -> &'static str {
        self.gold().table()
    }
}

/// A gold datamart built from a DataLake's silver snapshot into PostgreSQL.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "aurum.dev",
    version = "v1alpha1",
    kind = "Datamart",
    plural = "datamarts",
    shortname = "dm",
    namespaced,
    status = "DatamartStatus",
    doc = "A gold datamart that the operator keeps built in PostgreSQL from a DataLake's latest silver snapshot.",
    printcolumn = r#"{"name":"Datamart","type":"string","jsonPath":".spec.datamart"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Rows","type":"integer","jsonPath":".status.rowsWritten"}"#,
    printcolumn = r#"{"name":"Snapshot","type":"string","priority":1,"jsonPath":".status.silverSnapshotId"}"#,
    printcolumn = r#"{"name":"Engine","type":"string","priority":1,"jsonPath":".spec.engine"}"#,
    printcolumn = r#"{"name":"Last Run","type":"date","jsonPath":".status.lastRunTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.topN) || self.datamart == 'top-products'", "message": "topN applies only to the top-products datamart"},
    {"rule": "!has(self.timeZone) || has(self.schedule)", "message": "timeZone needs a schedule"},
    {"rule": "self.backoffMaxSeconds >= self.backoffInitialSeconds", "message": "backoffMaxSeconds must be >= backoffInitialSeconds"}
]))]
pub struct DatamartSpec {
    /// The DataLake (same namespace) whose silver snapshots this datamart reads.
    pub data_lake_ref: LocalRef,

    /// Which datamart to build.
    pub datamart: DatamartKind,

    /// How many products `top-products` keeps per scope (only for `top-products`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub top_n: Option<i32>,

    /// The PostgreSQL target.
    pub database: DatabaseSpec,

    /// What happens to the gold table when the Datamart is deleted: `Retain`
    /// (default) keeps it, `Delete` drops it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Re-build whenever the DataLake publishes a new silver snapshot (default true).
    #[serde(default = "default_true")]
    pub refresh_on_new_snapshot: bool,

    #[serde(flatten)]
    pub run: RunPolicy,
}

/// A reference to an object in the same namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct LocalRef {
    /// Name of the object.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
}

/// The PostgreSQL target of a datamart. The URL comes from a Secret, never the spec.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// The Secret (same namespace) holding the PostgreSQL URL; the Job gets it as
    /// the `DATABASE_URL` environment variable.
    pub secret_ref: SecretKeyRef,
    /// PostgreSQL schema of the gold tables (default `public`).
    #[serde(default = "default_schema")]
    #[schemars(regex(pattern = r"^[a-z_][a-z0-9_]{0,62}$"))]
    pub schema: String,
}

/// A key of a Secret in the same namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
    /// Key inside the Secret (default `url`).
    #[serde(default = "default_secret_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
}

/// What happens to a Datamart's gold table when the Datamart is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the table (default).
    #[default]
    Retain,
    /// Drop the table.
    Delete,
}

/// What to do when a run is due while another is still running.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Let the running run finish; the new one starts afterwards (default).
    #[default]
    Forbid,
    /// Stop the running run and start the new one.
    Replace,
}

/// When and how runs happen; shared by DataLake and Datamart.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunPolicy {
    /// Cron schedule (5 fields, or @hourly/@daily/...) for periodic runs. Without
    /// it, runs happen on creation, on spec change and on request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub schedule: Option<String>,

    /// IANA time zone of `schedule`, e.g. `Europe/Paris` (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"),
        length(max = 64)
    )]
    pub time_zone: Option<String>,

    /// Run when the spec changes (default true). Creation counts as a change.
    #[serde(default = "default_true")]
    pub run_on_spec_change: bool,

    /// No new runs while true; a running run finishes.
    #[serde(default)]
    pub suspend: bool,

    /// What to do when a run is due while another is running.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,

    /// A run still pending or running after this many seconds is failed with
    /// reason DeadlineExceeded (default 3600).
    #[serde(default = "default_deadline")]
    #[schemars(range(min = 10, max = 604800))]
    pub run_deadline_seconds: i64,

    /// Retries of a failed run, with exponential backoff (default 5).
    #[serde(default = "default_max_retries")]
    #[schemars(range(min = 0, max = 100))]
    pub max_retries: i32,

    /// First retry delay in seconds; doubles with each failure (default 10).
    #[serde(default = "default_backoff_initial")]
    #[schemars(range(min = 1, max = 86400))]
    pub backoff_initial_seconds: i64,

    /// Cap of the retry delay in seconds (default 600).
    #[serde(default = "default_backoff_max")]
    #[schemars(range(min = 1, max = 86400))]
    pub backoff_max_seconds: i64,

    /// Finished runs kept in status.runs (default 3).
    #[serde(default = "default_history")]
    #[schemars(range(min = 0, max = 50))]
    pub successful_run_history_limit: i32,

    /// Failed runs kept in status.runs (default 3).
    #[serde(default = "default_history")]
    #[schemars(range(min = 0, max = 50))]
    pub failed_run_history_limit: i32,

    /// Where the run's query work executes: `in-process` (the job-runner's own
    /// DataFusion, the default) or `ballista://HOST:PORT`, a Ballista
    /// scheduler (docs/ballista.md; the chart's `ballista.enabled` deploys
    /// one). The Job gets it as `AURUM_ENGINE`. A Datamart without it uses its
    /// DataLake's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 270),
        extend("x-kubernetes-validations" = [{
            "rule": "self == 'in-process' || self.matches('^ballista://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?:[0-9]{1,5}$')",
            "message": "engine must be in-process or ballista://HOST:PORT (a Ballista scheduler, e.g. ballista://aurum-ballista-scheduler:50050)"
        }])
    )]
    pub engine: Option<String>,

    /// Job-runner container image. Default: the operator's `--job-runner-image`,
    /// the job-runner of the operator's own version (the chart sets it from
    /// `jobRunner.image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Image pull policy of the job container: Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(Always|IfNotPresent|Never)$"))]
    pub image_pull_policy: Option<String>,

    /// Compute resources of the job container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Service account the job pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(max = 253)
    )]
    pub service_account_name: Option<String>,

    /// Seconds a finished Job is kept before Kubernetes deletes it (default 3600).
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 0, max = 2592000))]
    pub job_ttl_seconds_after_finished: i32,

    /// A pod template merged over the run's generated pod, after the
    /// operator-wide defaults (chart value `jobRunner.podDefaults`), like a
    /// strategic merge patch: maps merge; containers, initContainers,
    /// volumes, env and imagePullSecrets merge by `name`, volumeMounts by
    /// `mountPath`; other lists and scalars replace; `null` removes. The
    /// containers are `job-runner` (both kinds) and `feed` (DataLake init
    /// container). For imagePullSecrets, nodeSelector, tolerations, affinity,
    /// extra env, pod labels and annotations, and volumes (e.g. a `file://`
    /// lake on a PersistentVolumeClaim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_overrides_schema")]
    pub pod_overrides: Option<PodTemplateSpec>,
}

/// The schema of `podOverrides`: labels and annotations are checked; the pod
/// spec is kept as given (its full schema would make the CRD ten times larger)
/// and checked by the operator, which reports a bad one as an event.
fn pod_overrides_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A pod template merged over the run's generated pod (strategic-merge rules: maps merge; containers, initContainers, volumes, env, imagePullSecrets merge by name, volumeMounts by mountPath; other lists replace). Containers: job-runner, and feed in a DataLake's pod.",
        "type": "object",
        "properties": {
            "metadata": {
                "description": "Labels and annotations added to the run's pod.",
                "type": "object",
                "properties": {
                    "labels": {"description": "Pod labels.", "type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"description": "Pod annotations.", "type": "object", "additionalProperties": {"type": "string"}}
                }
            },
            "spec": {
                "description": "A (partial) PodSpec.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true
            }
        }
    })
}

impl Default for RunPolicy {
    fn default() -> Self {
        RunPolicy {
            schedule: None,
            time_zone: None,
            run_on_spec_change: true,
            suspend: false,
            concurrency_policy: ConcurrencyPolicy::Forbid,
            run_deadline_seconds: default_deadline(),
            max_retries: default_max_retries(),
            backoff_initial_seconds: default_backoff_initial(),
            backoff_max_seconds: default_backoff_max(),
            successful_run_history_limit: default_history(),
            failed_run_history_limit: default_history(),
            engine: None,
            image: None,
            image_pull_policy: None,
            resources: None,
            service_account_name: None,
            job_ttl_seconds_after_finished: default_ttl(),
            pod_overrides: None,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_catalog_database() -> String {
    "aurum".to_string()
}
fn default_schema() -> String {
    "public".to_string()
}
fn default_secret_key() -> String {
    "url".to_string()
}
fn default_deadline() -> i64 {
    3600
}
fn default_max_retries() -> i32 {
    5
}
fn default_backoff_initial() -> i64 {
    10
}
fn default_backoff_max() -> i64 {
    600
}
fn default_history() -> i32 {
    3
}
fn default_ttl() -> i32 {
    3600
}

/// Outcome of a finished run.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RunOutcome {
    /// The job-runner reported success.
    Succeeded,
    /// The run failed (job-runner error, deadline, Job failure).
    Failed,
    /// The run was stopped because a newer run replaced it.
    Replaced,
}

/// One run, active or finished.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Name of the Job of this run.
    pub job_name: String,
    /// Why the run started: SpecChange, RunNow, Schedule, NewSnapshot, Retry.
    pub trigger: String,
    /// Retry number of this run (0 for a first attempt).
    #[serde(default)]
    pub attempt: i32,
    /// When the Job was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Outcome, when finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RunOutcome>,
    /// The job-runner's run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Rows written by the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_written: Option<i64>,
    /// Duration reported by the job-runner, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Silver snapshot published (DataLake) or read (Datamart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silver_snapshot_id: Option<String>,
    /// Where the run's query work executed: `in-process` or the Ballista
    /// scheduler's `ballista://HOST:PORT` (for a Datamart, its own
    /// `spec.engine` or else its DataLake's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Error message of a failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Row counts of one table in the last successful ingest.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableStats {
    /// Stage that produced the counts: feed or preprocess.
    pub stage: String,
    /// Lake table.
    pub table: String,
    /// Rows read.
    pub rows_read: i64,
    /// Rows written.
    pub rows_written: i64,
    /// Rows rejected.
    pub rows_rejected: i64,
    /// Rejected rows per reject reason.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rejects: std::collections::BTreeMap<String, i64>,
}

/// State shared by both kinds' status: conditions, run bookkeeping, history.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    /// Pending, Running, Ready, Failed, Suspended or Invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Available, Progressing, Degraded and Suspended conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The run in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_run: Option<RunRecord>,
    /// Finished runs, newest first, bounded by the history limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunRecord>,
    /// Start of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<String>,
    /// Completion of the last successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// The generation whose spec-change run has been started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_generation: Option<i64>,
    /// The last handled value of the aurum.dev/run-now annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now: Option<String>,
    /// The last schedule time a run was started for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// The next schedule time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<String>,
    /// Failed runs in a row since the last success.
    #[serde(default)]
    pub consecutive_failures: i32,
    /// When the next retry of a failed run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_time: Option<String>,
}

/// Observed state of a DataLake.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataLakeStatus {
    #[serde(flatten)]
    pub state: RunState,
    /// The silver snapshot published by the last successful ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silver_snapshot_id: Option<String>,
    /// Rows written to silver by the last successful ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_written: Option<i64>,
    /// Rows rejected (feed and preprocess) by the last successful ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_rejected: Option<i64>,
    /// Per-table counts of the last successful ingest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableStats>,
    /// The registration of silver in the Hive Metastore of `spec.catalog`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogState>,
}

/// How the last ingest's registration in the Hive Metastore went. A failed
/// registration does not fail the run: silver is published, and the
/// Metastore's tables keep pointing at `registeredSnapshotId`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogState {
    /// The Metastore of the last registration.
    pub metastore: String,
    /// Its database.
    pub database: String,
    /// `Registered` or `Failed` (the last registration).
    pub status: String,
    /// The snapshot the last registration was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Why the last registration failed; or what it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the last registration was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_time: Option<String>,
    /// The snapshot of the last successful registration: what the
    /// Metastore's tables point at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_snapshot_id: Option<String>,
    /// When the last successful registration was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_registered_time: Option<String>,
}

/// Observed state of a Datamart.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatamartStatus {
    #[serde(flatten)]
    pub state: RunState,
    /// The silver snapshot the gold table was last built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silver_snapshot_id: Option<String>,
    /// The DataLake snapshot the last run (successful or not) was started for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_snapshot_id: Option<String>,
    /// Rows written by the last successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_written: Option<i64>,
    /// Duration of the last successful run in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// A status that embeds the shared run state.
pub trait HasRunState {
    fn run_state_mut(&mut self) -> &mut RunState;
}

impl HasRunState for DataLakeStatus {
    fn run_state_mut(&mut self) -> &mut RunState {
        &mut self.state
    }
}

impl HasRunState for DatamartStatus {
    fn run_state_mut(&mut self) -> &mut RunState {
        &mut self.state
    }
}

/// Both CRDs as one multi-document YAML stream (what `crdgen` prints).
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in [DataLake::crd(), Datamart::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_match_generated() {
        let generated = crds_yaml().expect("serialize CRDs");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/aurum.dev.yaml");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/aurum.dev.yaml is stale: run `cargo run -p aurum-operator -- crdgen > crds/aurum.dev.yaml`"
        );
    }

    #[test]
    fn every_property_has_a_description() {
        fn walk(path: &str, v: &serde_json::Value, missing: &mut Vec<String>) {
            if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
                for (k, child) in props {
                    let p = format!("{path}.{k}");
                    if child.get("description").is_none() && !path.ends_with(".metadata") {
                        missing.push(p.clone());
                    }
                    walk(&p, child, missing);
                }
            }
            if let Some(items) = v.get("items") {
                walk(&format!("{path}[]"), items, missing);
            }
        }
        let mut missing = Vec::new();
        for crd in [DataLake::crd(), Datamart::crd()] {
            let v = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema json");
            let root = &v["openAPIV3Schema"];
            for top in ["spec", "status"] {
                walk(
                    &format!("{}.{top}", crd.spec.names.kind),
                    &root["properties"][top],
                    &mut missing,
                );
            }
        }
        // Conditions come from k8s-openapi and are documented there.
        missing.retain(|p| !p.contains(".conditions[]."));
        assert!(
            missing.is_empty(),
            "fields without description: {missing:?}"
        );
    }

    #[test]
    fn datamart_kind_names() {
        let k: DatamartKind = serde_json::from_str("\"customer-lifetime-value\"").expect("parse");
        assert_eq!(k, DatamartKind::CustomerLifetimeValue);
        assert_eq!(k.cli_name(), "customer-lifetime-value");
        assert_eq!(DatamartKind::TopProducts.table(), "gold_top_products");
    }

    #[test]
    fn run_policy_defaults_apply() {
        let spec: DatamartSpec = serde_json::from_value(serde_json::json!({
            "dataLakeRef": {"name": "lake"},
            "datamart": "top-products",
            "database": {"secretRef": {"name": "pg"}}
        }))
        .expect("parse");
        assert_eq!(spec.run, RunPolicy::default());
        assert_eq!(spec.database.schema, "public");
        assert_eq!(spec.database.secret_ref.key, "url");
        assert_eq!(spec.deletion_policy, DeletionPolicy::Retain);
        assert!(spec.refresh_on_new_snapshot);
    }
}
