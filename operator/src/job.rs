//! The desired batch/v1 Job of a run: names, labels, args, env, volumes.

use crate::crd::{DataLake, Datamart, RunPolicy};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    SeccompProfile, SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const JOB_RUNNER_COMMAND: &str = "aurum-job-runner";
pub const MAIN_CONTAINER: &str = "job-runner";
pub const FEED_CONTAINER: &str = "feed";
pub const TERMINATION_LOG: &str = "/dev/termination-log";
pub const SOURCE_MOUNT: &str = "/aurum/source";
pub const HADOOP_CONF_MOUNT: &str = "/etc/hadoop/conf";
/// A writable scratch folder: the root filesystem is read-only.
pub const TMP_MOUNT: &str = "/tmp";
const TMP_VOLUME: &str = "tmp";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_DATALAKE: &str = "aurum.dev/datalake";
pub const LABEL_DATAMART: &str = "aurum.dev/datamart";
pub const MANAGER: &str = "aurum-operator";

pub const ANN_TRIGGER: &str = "aurum.dev/trigger";
pub const ANN_RUN_KEY: &str = "aurum.dev/run-key";
pub const ANN_ATTEMPT: &str = "aurum.dev/attempt";
pub const ANN_SNAPSHOT: &str = "aurum.dev/silver-snapshot";
/// The engine of the run (`in-process` or `ballista://HOST:PORT`).
pub const ANN_ENGINE: &str = "aurum.dev/engine";

/// The job-runner's variable naming the engine (`--engine`).
pub const ENGINE_ENV: &str = "AURUM_ENGINE";
/// The engine of a run whose resource names none: the job-runner's own DataFusion.
pub const IN_PROCESS: &str = "in-process";

/// The engine of a DataLake's runs: its `spec.engine`, else in-process.
pub fn datalake_engine(lake: &DataLake) -> &str {
    lake.spec.run.engine.as_deref().unwrap_or(IN_PROCESS)
}

/// The engine of a Datamart's runs: its own `spec.engine`, else its
/// DataLake's, else in-process. Inheriting lets one field move a lake and
/// every datamart built from it onto a Ballista cluster; a Datamart that sets
/// `in-process` stays off it.
pub fn datamart_engine<'a>(dm: &'a Datamart, lake: &'a DataLake) -> &'a str {
    dm.spec
        .run
        .engine
        .as_deref()
        .unwrap_or_else(|| datalake_engine(lake))
}

/// `AURUM_ENGINE` for a run on `engine`; none for in-process, the
/// job-runner's default, so that the Job does not depend on the job-runner
/// spelling that default the same way.
fn engine_env(engine: &str) -> Option<EnvVar> {
    (engine != IN_PROCESS).then(|| env(ENGINE_ENV, engine))
}

/// What identifies one run of a resource: why it runs and which attempt it is.
#[derive(Debug, Clone, PartialEq)]
pub struct RunIdentity {
    /// SpecChange, RunNow, Schedule, NewSnapshot or Retry.
    pub trigger: String,
    /// Unique per run of this resource (e.g. `gen-3`, `cron-1764000000`).
    pub key: String,
    pub attempt: i32,
}

/// Deterministic Job name for a run: `<name>-<component>-<hash(uid, key)>`, at
/// most 63 characters, so a restarted operator computes the same name and finds
/// the Job it already created instead of launching a duplicate.
pub fn job_name(resource_name: &str, uid: &str, component: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(uid.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    let hash: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let room = 63 - component.len() - hash.len() - 2;
    let mut base: String = resource_name.chars().take(room).collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}-{component}-{hash}")
}

fn labels(instance: &str, component: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(LABEL_NAME.to_string(), "aurum".to_string());
    l.insert(LABEL_INSTANCE.to_string(), instance.to_string());
    l.insert(LABEL_COMPONENT.to_string(), component.to_string());
    l.insert(LABEL_MANAGED_BY.to_string(), MANAGER.to_string());
    for (k, v) in extra {
        l.insert((*k).to_string(), (*v).to_string());
    }
    l
}

fn owner_ref<K: Resource<DynamicType = ()>>(obj: &K) -> Option<OwnerReference> {
    obj.controller_owner_ref(&())
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn runner_container(
    name: &str,
    policy: &RunPolicy,
    args: Vec<String>,
    env: Vec<EnvVar>,
) -> Container {
    Container {
        name: name.into(),
        // `None` until `overrides::customize` puts the operator's default in.
        image: policy.image.clone(),
        image_pull_policy: policy.image_pull_policy.clone(),
        command: Some(vec![JOB_RUNNER_COMMAND.into()]),
        args: Some(args),
        env: Some(env),
        resources: policy.resources.clone(),
        termination_message_path: Some(TERMINATION_LOG.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        // Pod Security "restricted": namespaces that enforce it accept the run.
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Mounts the DataLake's Hadoop configuration ConfigMap and points
/// `HADOOP_CONF_DIR` at it.
fn mount_hadoop_conf(
    config_map: &str,
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
    env_vars: &mut Vec<EnvVar>,
) {
    volumes.push(Volume {
        name: "hadoop-conf".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    mounts.push(VolumeMount {
        name: "hadoop-conf".into(),
        mount_path: HADOOP_CONF_MOUNT.into(),
        read_only: Some(true),
        ..Default::default()
    });
    env_vars.push(env("HADOOP_CONF_DIR", HADOOP_CONF_MOUNT));
}

/// Gives every container of the pod a writable `/tmp` on an emptyDir.
fn with_scratch(mut pod: PodSpec) -> PodSpec {
    let mount = VolumeMount {
        name: TMP_VOLUME.into(),
        mount_path: TMP_MOUNT.into(),
        ..Default::default()
    };
    let containers = pod.init_containers.iter_mut().flatten();
    for c in containers.chain(pod.containers.iter_mut()) {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(mount.clone());
    }
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: TMP_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    pod
}

#[allow(clippy::too_many_arguments)]
fn job(
    name: String,
    namespace: Option<String>,
    owner: Option<OwnerReference>,
    labels: BTreeMap<String, String>,
    run: &RunIdentity,
    snapshot: Option<&str>,
    engine: &str,
    policy: &RunPolicy,
    pod: PodSpec,
) -> Job {
    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_TRIGGER.to_string(), run.trigger.clone());
    annotations.insert(ANN_RUN_KEY.to_string(), run.key.clone());
    annotations.insert(ANN_ATTEMPT.to_string(), run.attempt.to_string());
    if let Some(s) = snapshot {
        annotations.insert(ANN_SNAPSHOT.to_string(), s.to_string());
    }
    annotations.insert(ANN_ENGINE.to_string(), engine.to_string());
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace,
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(policy.run_deadline_seconds),
            ttl_seconds_after_finished: Some(policy.job_ttl_seconds_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: policy.service_account_name.clone(),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..with_scratch(pod)
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The ingest Job of a DataLake: an init container `feed` then the main
/// container `preprocess`, each writing its report to the termination message.
pub fn datalake_job(lake: &DataLake, run: &RunIdentity) -> Job {
    let name = lake.name_any();
    let spec = &lake.spec;
    let job_name = job_name(&name, &lake.uid().unwrap_or_default(), "ingest", &run.key);
    let labels = labels(&name, "ingest", &[(LABEL_DATALAKE, &name)]);

    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let mut env_vars = vec![env("AURUM_LOG_FORMAT", "json")];
    if let Some(cm) = &spec.hadoop_config_map {
        mount_hadoop_conf(cm, &mut volumes, &mut mounts, &mut env_vars);
    }
    let source_dir = if let Some(path) = &spec.source.path {
        path.clone()
    } else {
        let vol = if let Some(cm) = &spec.source.config_map {
            Volume {
                name: "source".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: cm.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }
        } else {
            Volume {
                name: "source".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: spec
                        .source
                        .persistent_volume_claim
                        .clone()
                        .unwrap_or_default(),
                    read_only: Some(true),
                }),
                ..Default::default()
            }
        };
        volumes.push(vol);
        mounts.push(VolumeMount {
            name: "source".into(),
            mount_path: SOURCE_MOUNT.into(),
            read_only: Some(true),
            ..Default::default()
        });
        match &spec.source.sub_path {
            Some(sub) => format!("{SOURCE_MOUNT}/{sub}"),
            None => SOURCE_MOUNT.to_string(),
        }
    };

    let report = ["--report".to_string(), TERMINATION_LOG.to_string()];
    let mut feed_args = vec![
        "feed".to_string(),
        "--source".to_string(),
        source_dir,
        "--lake".to_string(),
        spec.lake_uri.clone(),
    ];
    feed_args.extend(report.clone());
    let mut pre_args = vec![
        "preprocess".to_string(),
        "--lake".to_string(),
        spec.lake_uri.clone(),
    ];
    pre_args.extend(report);

    let mut feed = runner_container(FEED_CONTAINER, &spec.run, feed_args, env_vars.clone());
    // Only preprocess registers silver: feed never sees the Metastore. Feed
    // only copies CSVs into raw: it has no query work for an engine either.
    let mut pre_env = env_vars;
    if let Some(catalog) = &spec.catalog {
        pre_env.push(env("AURUM_METASTORE", &catalog.metastore));
        pre_env.push(env("AURUM_METASTORE_DATABASE", &catalog.database));
    }
    let engine = datalake_engine(lake);
    pre_env.extend(engine_env(engine));
    let mut pre = runner_container(MAIN_CONTAINER, &spec.run, pre_args, pre_env);
    if !mounts.is_empty() {
        feed.volume_mounts = Some(mounts.clone());
        pre.volume_mounts = Some(mounts);
    }
    let pod = PodSpec {
        init_containers: Some(vec![feed]),
        containers: vec![pre],
        volumes: (!volumes.is_empty()).then_some(volumes),
        ..Default::default()
    };
    job(
        job_name,
        lake.namespace(),
        owner_ref(lake),
        labels,
        run,
        None,
        engine,
        &spec.run,
        pod,
    )
}

/// Key of the Datamart's database Secret that may name the reader role.
pub const READER_ROLE_KEY: &str = "readerRole";

/// The Job of a Datamart run: `aurum-job-runner datamart NAME --lake URI`.
pub fn datamart_job(
    dm: &Datamart,
    lake: &DataLake,
    run: &RunIdentity,
    snapshot: Option<&str>,
) -> Job {
    let name = dm.name_any();
    let spec = &dm.spec;
    let job_name = job_name(&name, &dm.uid().unwrap_or_default(), "datamart", &run.key);
    let lake_name = lake.name_any();
    let labels = labels(
        &name,
        "datamart",
        &[(LABEL_DATAMART, &name), (LABEL_DATALAKE, &lake_name)],
    );
    let mut args = vec![
        "datamart".to_string(),
        spec.datamart.cli_name().to_string(),
        "--lake".to_string(),
        lake.spec.lake_uri.clone(),
    ];
    if let Some(n) = spec.top_n {
        args.push("--top-n".into());
        args.push(n.to_string());
    }
    // `public` is the job-runner's default: pass the flag only when it differs.
    if spec.database.schema != "public" {
        args.push("--db-schema".into());
        args.push(spec.database.schema.clone());
    }
    args.extend(["--report".to_string(), TERMINATION_LOG.to_string()]);
    let from_secret = |name: &str, key: &str, optional: bool| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: spec.database.secret_ref.name.clone(),
                key: key.into(),
                optional: Some(optional),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut env_vars = vec![
        from_secret("DATABASE_URL", &spec.database.secret_ref.key, false),
        // The API's database role, if the Secret names one: the job-runner
        // grants it SELECT on the gold tables (docs/production.md).
        from_secret("AURUM_READER_ROLE", READER_ROLE_KEY, true),
        env("AURUM_LOG_FORMAT", "json"),
    ];
    let engine = datamart_engine(dm, lake);
    env_vars.extend(engine_env(engine));
    let mut volumes = Vec::new();
    let mut container_mounts = Vec::new();
    if let Some(cm) = &lake.spec.hadoop_config_map {
        mount_hadoop_conf(cm, &mut volumes, &mut container_mounts, &mut env_vars);
    }
    let mut c = runner_container(MAIN_CONTAINER, &spec.run, args, env_vars);
    if !container_mounts.is_empty() {
        c.volume_mounts = Some(container_mounts);
    }
    let pod = PodSpec {
        containers: vec![c],
        volumes: (!volumes.is_empty()).then_some(volumes),
        ..Default::default()
    };
    job(
        job_name,
        dm.namespace(),
        owner_ref(dm),
        labels,
        run,
        snapshot,
        engine,
        &spec.run,
        pod,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        CatalogSpec, DataLakeSpec, DatabaseSpec, DatamartKind, DatamartSpec, DeletionPolicy,
        LocalRef, SecretKeyRef, SourceSpec,
    };

    fn lake() -> DataLake {
        let mut l = DataLake::new(
            "lake",
            DataLakeSpec {
                lake_uri: "file:///data/lake".into(),
                hadoop_config_map: None,
                source: SourceSpec {
                    path: Some("/data/source".into()),
                    ..Default::default()
                },
                catalog: None,
                run: RunPolicy::default(),
            },
        );
        l.metadata.namespace = Some("ns".into());
        l.metadata.uid = Some("uid-lake".into());
        l
    }

    fn datamart() -> Datamart {
        let mut d = Datamart::new(
            "top",
            DatamartSpec {
                data_lake_ref: LocalRef {
                    name: "lake".into(),
                },
                datamart: DatamartKind::TopProducts,
                top_n: Some(7),
                database: DatabaseSpec {
                    secret_ref: SecretKeyRef {
                        name: "pg".into(),
                        key: "url".into(),
                    },
                    schema: "public".into(),
                },
                deletion_policy: DeletionPolicy::Retain,
                refresh_on_new_snapshot: true,
                run: RunPolicy::default(),
            },
        );
        d.metadata.namespace = Some("ns".into());
        d.metadata.uid = Some("uid-dm".into());
        d
    }

    fn run() -> RunIdentity {
        RunIdentity {
            trigger: "SpecChange".into(),
            key: "gen-1".into(),
            attempt: 0,
        }
    }

    #[test]
    fn job_names_are_deterministic_and_short() {
        let a = job_name("lake", "u1", "ingest", "gen-1");
        assert_eq!(a, job_name("lake", "u1", "ingest", "gen-1"));
        assert_ne!(a, job_name("lake", "u1", "ingest", "gen-2"));
        assert_ne!(a, job_name("lake", "u2", "ingest", "gen-1"));
        assert!(a.starts_with("lake-ingest-"));
        let long = job_name(&"x".repeat(250), "u", "datamart", "k");
        assert!(long.len() <= 63, "{long}");
        let dashy = job_name(&format!("{}-y", "a".repeat(42)), "u", "datamart", "k");
        assert!(!dashy.contains("--"), "{dashy}");
    }

    #[test]
    fn datalake_job_feeds_then_preprocesses() {
        let j = datalake_job(&lake(), &run());
        let meta = &j.metadata;
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
        let labels = meta.labels.as_ref().expect("labels");
        assert_eq!(labels[LABEL_MANAGED_BY], "aurum-operator");
        assert_eq!(labels[LABEL_COMPONENT], "ingest");
        assert_eq!(labels[LABEL_DATALAKE], "lake");
        let owner = &meta.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.kind, "DataLake");
        assert_eq!(owner.controller, Some(true));
        let spec = j.spec.as_ref().expect("spec");
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(3600));
        assert_eq!(spec.ttl_seconds_after_finished, Some(3600));
        let pod = spec.template.spec.as_ref().expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let feed = &pod.init_containers.as_ref().expect("init")[0];
        assert_eq!(
            feed.args.as_ref().expect("args"),
            &[
                "feed",
                "--source",
                "/data/source",
                "--lake",
                "file:///data/lake",
                "--report",
                "/dev/termination-log"
            ]
        );
        assert_eq!(
            pod.containers[0].args.as_ref().expect("args"),
            &[
                "preprocess",
                "--lake",
                "file:///data/lake",
                "--report",
                "/dev/termination-log"
            ]
        );
    }

    #[test]
    fn datalake_job_passes_the_catalog_to_preprocess_only() {
        let envs = |c: &Container| -> Vec<(String, String)> {
            c.env
                .iter()
                .flatten()
                .filter(|e| e.name.starts_with("AURUM_METASTORE"))
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        };
        let pod = |l: &DataLake| {
            datalake_job(l, &run())
                .spec
                .expect("spec")
                .template
                .spec
                .expect("pod")
        };
        let p = pod(&lake());
        assert!(envs(&p.containers[0]).is_empty());

        let mut l = lake();
        l.spec.catalog = Some(CatalogSpec {
            metastore: "thrift://hms:9083".into(),
            database: "lake_db".into(),
        });
        let p = pod(&l);
        assert_eq!(
            envs(&p.containers[0]),
            [
                (
                    "AURUM_METASTORE".to_string(),
                    "thrift://hms:9083".to_string()
                ),
                (
                    "AURUM_METASTORE_DATABASE".to_string(),
                    "lake_db".to_string()
                ),
            ]
        );
        assert!(envs(&p.init_containers.expect("init")[0]).is_empty());
    }

    /// The AURUM_ENGINE values of a pod's containers, by container name.
    fn engine_envs(j: &Job) -> Vec<(String, Option<String>)> {
        let pod = j.spec.clone().expect("spec").template.spec.expect("pod");
        pod.init_containers
            .iter()
            .flatten()
            .chain(&pod.containers)
            .map(|c| {
                let v = c.env.iter().flatten().find(|e| e.name == ENGINE_ENV);
                (c.name.clone(), v.and_then(|e| e.value.clone()))
            })
            .collect()
    }

    fn engine_annotation(j: &Job) -> String {
        j.metadata.annotations.as_ref().expect("ann")[ANN_ENGINE].clone()
    }

    #[test]
    fn datalake_engine_reaches_preprocess_only() {
        let j = datalake_job(&lake(), &run());
        assert_eq!(
            engine_envs(&j),
            [(FEED_CONTAINER.into(), None), (MAIN_CONTAINER.into(), None)]
        );
        assert_eq!(engine_annotation(&j), IN_PROCESS);

        let mut l = lake();
        l.spec.run.engine = Some("ballista://sched:50050".into());
        let j = datalake_job(&l, &run());
        assert_eq!(
            engine_envs(&j),
            [
                (FEED_CONTAINER.into(), None),
                (MAIN_CONTAINER.into(), Some("ballista://sched:50050".into()))
            ]
        );
        assert_eq!(engine_annotation(&j), "ballista://sched:50050");

        // Naming the default is the same as leaving it out.
        l.spec.run.engine = Some(IN_PROCESS.into());
        let j = datalake_job(&l, &run());
        assert_eq!(engine_envs(&j)[1], (MAIN_CONTAINER.into(), None));
        assert_eq!(engine_annotation(&j), IN_PROCESS);
    }

    #[test]
    fn datamart_engine_is_its_own_else_its_lakes() {
        let mut l = lake();
        let mut d = datamart();
        let env_of = |d: &Datamart, l: &DataLake| {
            let j = datamart_job(d, l, &run(), None);
            (engine_envs(&j)[0].1.clone(), engine_annotation(&j))
        };
        assert_eq!(env_of(&d, &l), (None, IN_PROCESS.into()));

        l.spec.run.engine = Some("ballista://lake-sched:50050".into());
        let inherited = "ballista://lake-sched:50050".to_string();
        assert_eq!(env_of(&d, &l), (Some(inherited.clone()), inherited));

        d.spec.run.engine = Some("ballista://dm-sched:7000".into());
        let own = "ballista://dm-sched:7000".to_string();
        assert_eq!(env_of(&d, &l), (Some(own.clone()), own));

        d.spec.run.engine = Some(IN_PROCESS.into());
        assert_eq!(env_of(&d, &l), (None, IN_PROCESS.into()));
    }

    #[test]
    fn datalake_job_mounts_configmap_source_and_hadoop_conf() {
        let mut l = lake();
        l.spec.source = SourceSpec {
            config_map: Some("csvs".into()),
            ..Default::default()
        };
        l.spec.hadoop_config_map = Some("hadoop".into());
        let j = datalake_job(&l, &run());
        let pod = j.spec.expect("spec").template.spec.expect("pod");
        let feed = &pod.init_containers.expect("init")[0];
        assert_eq!(feed.args.as_ref().expect("args")[2], SOURCE_MOUNT);
        let envs = feed.env.as_ref().expect("env");
        assert!(envs.iter().any(|e| e.name == "HADOOP_CONF_DIR"));
        let volumes: Vec<String> = pod
            .volumes
            .expect("volumes")
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(volumes.len(), 3, "{volumes:?}");
    }

    #[test]
    fn runs_meet_the_restricted_pod_security_level() {
        let jobs = [
            datalake_job(&lake(), &run()),
            datamart_job(&datamart(), &lake(), &run(), None),
        ];
        for j in jobs {
            let pod = j.spec.expect("spec").template.spec.expect("pod");
            let psc = pod.security_context.as_ref().expect("pod securityContext");
            assert_eq!(psc.run_as_non_root, Some(true));
            let seccomp = psc.seccomp_profile.as_ref().map(|p| p.type_.as_str());
            assert_eq!(seccomp, Some("RuntimeDefault"));
            for c in pod.init_containers.iter().flatten().chain(&pod.containers) {
                let sc = c.security_context.as_ref().expect("securityContext");
                assert_eq!(sc.allow_privilege_escalation, Some(false));
                assert_eq!(sc.read_only_root_filesystem, Some(true));
                let dropped = sc.capabilities.as_ref().and_then(|c| c.drop.clone());
                assert_eq!(dropped, Some(vec!["ALL".to_string()]));
                let mounts = c.volume_mounts.iter().flatten();
                assert!(
                    mounts.clone().any(|m| m.mount_path == TMP_MOUNT),
                    "{}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn datamart_job_takes_the_url_from_the_secret() {
        let j = datamart_job(&datamart(), &lake(), &run(), Some("snap-1"));
        let labels = j.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[LABEL_DATAMART], "top");
        assert_eq!(labels[LABEL_DATALAKE], "lake");
        assert_eq!(
            j.metadata.annotations.as_ref().expect("ann")[ANN_SNAPSHOT],
            "snap-1"
        );
        let pod = j.spec.expect("spec").template.spec.expect("pod");
        let c = &pod.containers[0];
        assert_eq!(c.command.as_ref().expect("cmd"), &[JOB_RUNNER_COMMAND]);
        assert_eq!(
            c.args.as_ref().expect("args"),
            &[
                "datamart",
                "top-products",
                "--lake",
                "file:///data/lake",
                "--top-n",
                "7",
                "--report",
                "/dev/termination-log"
            ]
        );
        let db = c
            .env
            .as_ref()
            .expect("env")
            .iter()
            .find(|e| e.name == "DATABASE_URL")
            .expect("DATABASE_URL");
        assert!(db.value.is_none());
        let sel = db
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secret ref");
        assert_eq!((sel.name.as_str(), sel.key.as_str()), ("pg", "url"));
        let reader = c
            .env
            .as_ref()
            .expect("env")
            .iter()
            .find(|e| e.name == "AURUM_READER_ROLE")
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("AURUM_READER_ROLE from the Secret");
        assert_eq!(
            (reader.name.as_str(), reader.key.as_str(), reader.optional),
            ("pg", READER_ROLE_KEY, Some(true))
        );
    }
}
