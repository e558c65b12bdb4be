//! `podOverrides`: a PodTemplateSpec merged over the pod the operator generates
//! for a run, after the operator-wide defaults (the chart's `jobs.podDefaults`).
//!
//! The merge follows Kubernetes' strategic merge patch for the fields people
//! override: maps merge key by key (labels, annotations, nodeSelector,
//! securityContext, resources, ...); lists of named things merge item by item
//! on their key (containers, initContainers, volumes, env, imagePullSecrets
//! by `name`, volumeMounts by `mountPath`, ports by `containerPort`); every
//! other list (tolerations, args, ...) and every scalar is replaced; a `null`
//! deletes the field. A container entry without `image` that names no
//! container of the pod is left out: defaults may name `feed`, which only a
//! DataLake's pod has.

use crate::crd::default_job_runner_image;
use crate::job::{FEED_CONTAINER, MAIN_CONTAINER};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// What the operator puts into every run's pod beyond the resource's spec.
#[derive(Debug, Clone)]
pub struct JobDefaults {
    /// The job-runner image of a resource without `spec.image`.
    pub image: String,
    /// The operator-wide pod template merged before the resource's own
    /// `podOverrides` (the chart's `jobRunner.podDefaults`).
    pub pod: Option<PodTemplateSpec>,
}

impl Default for JobDefaults {
    fn default() -> Self {
        JobDefaults {
            image: default_job_runner_image(),
            pod: None,
        }
    }
}

/// The run's Job with the operator-wide pod defaults and then the
/// resource's `podOverrides` merged into its pod template, and the default
/// image in the job-runner containers that name none. The pod's
/// restartPolicy stays `Never`: the operator counts retries itself.
pub fn customize(
    mut job: Job,
    defaults: &JobDefaults,
    overrides: Option<&PodTemplateSpec>,
) -> Result<Job, MergeError> {
    let Some(spec) = job.spec.as_mut() else {
        return Ok(job);
    };
    let layers: Vec<&PodTemplateSpec> = defaults.pod.iter().chain(overrides).collect();
    let mut template = merge_pod(&spec.template, &layers)?;
    if let Some(pod) = template.spec.as_mut() {
        pod.restart_policy = Some("Never".into());
        let containers = pod.init_containers.iter_mut().flatten();
        for c in containers.chain(pod.containers.iter_mut()) {
            if c.image.is_none() && (c.name == MAIN_CONTAINER || c.name == FEED_CONTAINER) {
                c.image = Some(defaults.image.clone());
            }
        }
    }
    spec.template = template;
    Ok(job)
}

/// The merge key of the list at the object key `field`, if it has one.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "hostAliases"
        | "resourceClaims"
        | "schedulingGates" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => Some("containerPort"),
        _ => None,
    }
}

/// Merges `over` into `base` (both JSON) with the rules of the module doc.
pub fn merge_json(base: &mut Value, over: &Value) {
    merge_at(base, over, None);
}

fn merge_at(base: &mut Value, over: &Value, field: Option<&str>) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                    continue;
                }
                match b.get_mut(k) {
                    Some(existing) => merge_at(existing, v, Some(k)),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) => match field.and_then(merge_key) {
            Some(key) => {
                for item in o {
                    let id = item.get(key);
                    let slot = id.and_then(|id| b.iter_mut().find(|x| x.get(key) == Some(id)));
                    let is_container = matches!(
                        field,
                        Some("containers" | "initContainers" | "ephemeralContainers")
                    );
                    match slot {
                        Some(existing) => merge_at(existing, item, None),
                        None if is_container && item.get("image").is_none() => {}
                        None => b.push(item.clone()),
                    }
                }
            }
            None => *b = o.clone(),
        },
        (b, o) => *b = o.clone(),
    }
}

/// Error of a merge whose result is no PodTemplateSpec.
#[derive(Debug, thiserror::Error)]
#[error("podOverrides do not make a valid pod template: {0}")]
pub struct MergeError(#[from] serde_json::Error);

/// `base` with each of `layers` merged over it, in order.
pub fn merge_pod(
    base: &PodTemplateSpec,
    layers: &[&PodTemplateSpec],
) -> Result<PodTemplateSpec, MergeError> {
    if layers.is_empty() {
        return Ok(base.clone());
    }
    let mut v = serde_json::to_value(base)?;
    for layer in layers {
        merge_json(&mut v, &serde_json::to_value(layer)?);
    }
    Ok(serde_json::from_value(v)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).expect("pod template")
    }

    fn base() -> PodTemplateSpec {
        pod(json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "aurum"}},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": true},
                "initContainers": [{"name": "feed", "image": "runner:1",
                    "env": [{"name": "AURUM_LOG_FORMAT", "value": "json"}],
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                "containers": [{"name": "job-runner", "image": "runner:1",
                    "args": ["preprocess", "--lake", "file:///data/lake"],
                    "env": [{"name": "AURUM_LOG_FORMAT", "value": "json"}],
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
                "tolerations": [{"key": "a", "operator": "Exists"}]
            }
        }))
    }

    #[test]
    fn maps_merge_and_named_lists_merge_by_key() {
        let over = pod(json!({
            "metadata": {"labels": {"team": "data"}, "annotations": {"a": "b"}},
            "spec": {
                "nodeSelector": {"disk": "ssd"},
                "securityContext": {"fsGroup": 1000},
                "imagePullSecrets": [{"name": "regcred"}],
                "containers": [{"name": "job-runner",
                    "env": [{"name": "HADOOP_USER_NAME", "value": "aurum"},
                            {"name": "AURUM_LOG_FORMAT", "value": "text"}],
                    "volumeMounts": [{"name": "lake", "mountPath": "/data"}]}],
                "volumes": [{"name": "lake", "persistentVolumeClaim": {"claimName": "lake"}}]
            }
        }));
        let m = merge_pod(&base(), &[&over]).expect("merge");
        let meta = m.metadata.expect("meta");
        let labels = meta.labels.expect("labels");
        assert_eq!(labels["app.kubernetes.io/name"], "aurum");
        assert_eq!(labels["team"], "data");
        assert_eq!(meta.annotations.expect("ann")["a"], "b");
        let spec = m.spec.expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        let sc = spec.security_context.expect("sc");
        assert_eq!((sc.run_as_non_root, sc.fs_group), (Some(true), Some(1000)));
        assert_eq!(spec.node_selector.expect("ns")["disk"], "ssd");
        assert_eq!(spec.image_pull_secrets.expect("ips")[0].name, "regcred");
        let c = &spec.containers[0];
        assert_eq!(spec.containers.len(), 1);
        assert_eq!(c.image.as_deref(), Some("runner:1"));
        assert_eq!(c.args.as_ref().expect("args")[0], "preprocess");
        let env: Vec<(String, String)> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            env,
            [
                ("AURUM_LOG_FORMAT".to_string(), "text".to_string()),
                ("HADOOP_USER_NAME".to_string(), "aurum".to_string())
            ]
        );
        let mounts: Vec<&str> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/tmp", "/data"]);
        // The init container is untouched: overrides name the container they change.
        let feed = &spec.init_containers.expect("init")[0];
        assert_eq!(feed.volume_mounts.as_ref().expect("mounts").len(), 1);
        let volumes: Vec<String> = spec
            .volumes
            .expect("volumes")
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(volumes, ["tmp", "lake"]);
    }

    #[test]
    fn unkeyed_lists_and_scalars_are_replaced_and_null_deletes() {
        let over = pod(json!({"spec": {
            "tolerations": [{"key": "b", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "job-runner", "args": ["--help"], "image": "mine:2"}],
        }}));
        let m = merge_pod(&base(), &[&over]).expect("merge");
        let spec = m.spec.expect("spec");
        let tol = spec.tolerations.expect("tolerations");
        assert_eq!(tol.len(), 1);
        assert_eq!(tol[0].key.as_deref(), Some("b"));
        assert_eq!(
            spec.containers[0].args.as_deref(),
            Some(&["--help".to_string()][..])
        );
        assert_eq!(spec.containers[0].image.as_deref(), Some("mine:2"));

        let mut v = serde_json::to_value(base()).expect("json");
        merge_json(&mut v, &json!({"spec": {"tolerations": null}}));
        assert!(v["spec"].get("tolerations").is_none());
    }

    #[test]
    fn a_container_without_image_that_the_pod_lacks_is_left_out() {
        let over = pod(json!({"spec": {
            "initContainers": [{"name": "feed", "env": [{"name": "HADOOP_USER_NAME", "value": "a"}]}],
            "containers": [{"name": "feed", "env": [{"name": "HADOOP_USER_NAME", "value": "a"}]}],
        }}));
        let m = merge_pod(&base(), &[&over]).expect("merge");
        let spec = m.spec.expect("spec");
        assert_eq!(spec.containers.len(), 1);
        let feed = &spec.init_containers.expect("init")[0];
        assert_eq!(feed.env.as_ref().expect("env").len(), 2);
    }

    #[test]
    fn customize_fills_the_image_and_keeps_restart_never() {
        use k8s_openapi::api::batch::v1::JobSpec;
        let job = Job {
            spec: Some(JobSpec {
                template: base(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut template = base();
        let spec = template.spec.as_mut().expect("spec");
        spec.containers[0].image = None;
        let job = Job {
            spec: Some(JobSpec {
                template,
                ..job.spec.expect("spec")
            }),
            ..Default::default()
        };
        let own = pod(json!({"spec": {"restartPolicy": "OnFailure", "nodeSelector": {"a": "b"}}}));
        let defaults = JobDefaults::default();
        let out = customize(job, &defaults, Some(&own)).expect("customize");
        let pod = out.spec.expect("spec").template.spec.expect("pod");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.node_selector.expect("ns")["a"], "b");
        let image = pod.containers[0].image.clone().expect("image");
        assert_eq!(
            image,
            format!("aurum-job-runner:{}", env!("CARGO_PKG_VERSION"))
        );
        // An explicit image stays.
        let feed = &pod.init_containers.expect("init")[0];
        assert_eq!(feed.image.as_deref(), Some("runner:1"));
    }

    #[test]
    fn layers_apply_in_order_and_a_new_container_is_added() {
        let defaults = pod(json!({"spec": {
            "nodeSelector": {"pool": "batch"},
            "imagePullSecrets": [{"name": "site"}],
        }}));
        let own = pod(json!({"spec": {
            "nodeSelector": {"pool": "gold"},
            "imagePullSecrets": [{"name": "team"}],
            "containers": [{"name": "sidecar", "image": "proxy:1"}],
        }}));
        let m = merge_pod(&base(), &[&defaults, &own]).expect("merge");
        let spec = m.spec.expect("spec");
        assert_eq!(spec.node_selector.expect("ns")["pool"], "gold");
        let secrets: Vec<String> = spec
            .image_pull_secrets
            .expect("ips")
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(secrets, ["site", "team"]);
        let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["job-runner", "sidecar"]);
    }
}
