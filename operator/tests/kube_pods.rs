//! Run pods a real cluster can place and pull, on a real kube-apiserver +
//! kube-controller-manager (testenv/kube.sh): the operator's default
//! job-runner image, its operator-wide pod defaults and each resource's
//! `podOverrides` end up in the Jobs it creates.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use aurum_operator::crd::{DataLake, Datamart};
use aurum_operator::overrides::JobDefaults;
use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use kube::api::Api;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn env_of(c: &Container, name: &str) -> Option<String> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.init_containers
        .iter()
        .flatten()
        .chain(&pod.containers)
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("container {name}"))
}

/// The Job whose label `label` is `value`, once it exists.
async fn job_with(env: &TestEnv, label: &str, value: &str) -> Job {
    eventually(T, || async {
        env.jobs().await.into_iter().find(|j| {
            j.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(label))
                .is_some_and(|v| v == value)
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn defaults_and_pod_overrides_reach_the_jobs() {
    let Some(env) = TestEnv::new("pods", fake_runner()).await else {
        return;
    };
    let defaults = JobDefaults {
        image: "registry.example/acme/aurum-job-runner:9.9.9".into(),
        pod: Some(
            serde_json::from_value(json!({"spec": {
                "imagePullSecrets": [{"name": "site-pull"}],
                "nodeSelector": {"pool": "batch"},
                "initContainers": [{"name": "feed", "env": [{"name": "HADOOP_USER_NAME", "value": "site"}]}],
                "containers": [{"name": "job-runner", "env": [{"name": "HADOOP_USER_NAME", "value": "site"}]}],
            }}))
            .expect("pod defaults"),
        ),
    };
    let op = Operator::start_with(&env.client, &env.ns, "op-a", defaults).await;

    // A file:// lake on a PersistentVolumeClaim, mounted in both containers.
    let mount = json!([{"name": "lake", "mountPath": "/data"}]);
    env.apply::<DataLake>(env.lake_json(
        "lake",
        json!({"podOverrides": {"spec": {
            "securityContext": {"fsGroup": 65532},
            "volumes": [{"name": "lake", "persistentVolumeClaim": {"claimName": "lake-data"}}],
            "initContainers": [{"name": "feed", "volumeMounts": mount}],
            "containers": [{"name": "job-runner", "volumeMounts": mount}],
        }}}),
    ))
    .await;
    let ingest = job_with(&env, "aurum.dev/datalake", "lake").await;
    let pod = ingest.spec.expect("spec").template.spec.expect("pod");
    assert_eq!(
        pod.volumes
            .iter()
            .flatten()
            .find(|v| v.name == "lake")
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .map(|p| p.claim_name.as_str()),
        Some("lake-data")
    );
    for name in ["feed", "job-runner"] {
        let c = container(&pod, name);
        assert_eq!(
            c.image.as_deref(),
            Some("registry.example/acme/aurum-job-runner:9.9.9")
        );
        let mounts: Vec<&str> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert!(
            mounts.contains(&"/data") && mounts.contains(&"/tmp"),
            "{name}: {mounts:?}"
        );
        assert_eq!(env_of(c, "HADOOP_USER_NAME").as_deref(), Some("site"));
        assert_eq!(env_of(c, "AURUM_LOG_FORMAT").as_deref(), Some("json"));
    }
    let psc = pod.security_context.expect("securityContext");
    assert_eq!(
        (psc.run_as_non_root, psc.fs_group),
        (Some(true), Some(65532))
    );
    let lakes: Api<DataLake> = env.api();
    wait_status(&lakes, "lake", "Available", T, |s| {
        cond_is(s, "Available", "True")
    })
    .await;
    // The stand-in kubelet ran the containers with the merged environment.
    assert!(env.kubelet.runs().iter().any(|r| r.container == "feed"
        && r.env.get("HADOOP_USER_NAME").map(String::as_str) == Some("site")));

    env.apply::<Datamart>(datamart_json(
        "top",
        "lake",
        "top-products",
        "pg",
        json!({"podOverrides": {
            "metadata": {"labels": {"team": "gold"}, "annotations": {"example.com/cost-center": "42"}},
            "spec": {
                "imagePullSecrets": [{"name": "team-pull"}],
                "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                    ]}]
                }}},
                "containers": [{"name": "job-runner", "env": [{"name": "HADOOP_USER_NAME", "value": "gold"}]}],
            },
        }}),
    ))
    .await;
    let job = job_with(&env, "aurum.dev/datamart", "top").await;
    let template = job.spec.expect("spec").template;
    let meta = template.metadata.expect("pod metadata");
    let labels = meta.labels.expect("labels");
    assert_eq!(labels["team"], "gold");
    assert_eq!(labels["aurum.dev/datamart"], "top");
    assert_eq!(
        meta.annotations.expect("annotations")["example.com/cost-center"],
        "42"
    );
    let pod = template.spec.expect("pod");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(
        pod.node_selector.as_ref().expect("nodeSelector")["pool"],
        "batch"
    );
    let secrets: Vec<&str> = pod
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(secrets, ["site-pull", "team-pull"]);
    assert_eq!(
        pod.tolerations.as_ref().expect("tolerations")[0]
            .key
            .as_deref(),
        Some("batch")
    );
    assert!(
        pod.affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .is_some()
    );
    assert_eq!(pod.containers.len(), 1);
    let c = container(&pod, "job-runner");
    assert_eq!(env_of(c, "HADOOP_USER_NAME").as_deref(), Some("gold"));
    assert!(c.env.iter().flatten().any(|e| e.name == "DATABASE_URL"));
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example/acme/aurum-job-runner:9.9.9")
    );

    // spec.image still wins over the operator's default.
    env.apply::<Datamart>(datamart_json(
        "mine",
        "lake",
        "monthly-sales",
        "pg",
        json!({"image": "mine/aurum-job-runner:1.2.3"}),
    ))
    .await;
    let job = job_with(&env, "aurum.dev/datamart", "mine").await;
    let pod = job.spec.expect("spec").template.spec.expect("pod");
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("mine/aurum-job-runner:1.2.3")
    );
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_overrides_that_are_no_pod_template_are_reported() {
    let Some(env) = TestEnv::new("badpods", fake_runner()).await else {
        return;
    };
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    // The CRD checks labels and annotations ...
    let dm: Api<Datamart> = env.api();
    let bad_labels = datamart_json(
        "labels",
        "lake",
        "monthly-sales",
        "pg",
        json!({"podOverrides": {"metadata": {"labels": {"a": 1}}}}),
    );
    let err = dm
        .patch(
            "labels",
            &kube::api::PatchParams::apply("tests").force(),
            &kube::api::Patch::Apply(&bad_labels),
        )
        .await
        .expect_err("labels must be strings");
    assert!(
        err.to_string().contains("podOverrides.metadata.labels"),
        "{err}"
    );
    // ... the operator the pod spec: a Datamart whose overrides are no pod
    // spec is reported, not run.
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &kube::api::ApiResource::erase::<Datamart>(&()),
    );
    let bad = datamart_json(
        "spec",
        "lake",
        "monthly-sales",
        "pg",
        json!({"podOverrides": {"spec": {"containers": "job-runner"}}}),
    );
    raw.create(
        &kube::api::PostParams::default(),
        &serde_json::from_value(bad).expect("obj"),
    )
    .await
    .expect("create");
    let note = eventually(T, || async {
        env.events_for("spec")
            .await
            .into_iter()
            .find(|(r, _)| r == "InvalidObject")
            .map(|(_, n)| n)
    })
    .await;
    assert!(note.to_lowercase().contains("invalid type"), "{note}");
    assert!(env.jobs().await.is_empty());
    raw.delete("spec", &Default::default())
        .await
        .expect("delete");
    op.stop().await;
    env.cleanup().await;
}
