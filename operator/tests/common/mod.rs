//! Test harness for the operator on a real control plane (testenv/kube.sh):
//! a namespace per test, the CRDs, the operator in-process, and a stand-in
//! kubelet that runs each Job pod's command on the host and writes the pod's
//! status back, so the real Job controller completes or fails the Job.
#![allow(dead_code)]

use aurum_operator::crd::{DataLake, Datamart};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt, ResourceExt};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The stand-in job-runner (tests/fixtures/fake-job-runner.sh).
pub fn fake_runner() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-job-runner.sh")
}

/// The real job-runner, when AURUM_JOB_RUNNER_BIN names an existing file;
/// `None` (with a loud message naming `test`) otherwise.
pub fn real_runner(test: &str) -> Option<PathBuf> {
    let p = std::env::var_os("AURUM_JOB_RUNNER_BIN").map(PathBuf::from);
    let runner = p.filter(|p| p.is_file());
    if runner.is_none() {
        eprintln!(
            "\n!!!!! SKIPPED {test}: AURUM_JOB_RUNNER_BIN is not set or not a file \
             (build aurum-job-runner and point it there) !!!!!\n"
        );
    }
    runner
}

/// A client for the control plane in KUBECONFIG; `None` (with a loud message)
/// when KUBECONFIG is unset.
pub async fn client(test: &str) -> Option<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!(
            "\n!!!!! SKIPPED {test}: KUBECONFIG is not set. Start a control plane with \
             `eval \"$(testenv/kube.sh start ~/.cache/aurum/kube-test)\"; export KUBECONFIG` !!!!!\n"
        );
        return None;
    }
    Some(
        Client::try_default()
            .await
            .expect("kube client from KUBECONFIG"),
    )
}

/// A "database" for the stand-in job-runner, which only checks that something
/// listens at the URL's address: the listener (keep it alive) and the URL.
pub async fn reachable_db() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, format!("postgres://aurum:secret@127.0.0.1:{port}/aurum"))
}

/// Installs (server-side applies) the CRDs and waits until they are established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [DataLake::crd(), Datamart::crd()] {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("aurum-operator-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply CRD");
        eventually(Duration::from_secs(30), || async {
            let c = api.get(&name).await.ok()?;
            let est = c
                .status?
                .conditions?
                .into_iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            est.then_some(())
        })
        .await;
    }
}

/// Polls `f` until it returns `Some`, panicking after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running in-process operator.
pub struct Operator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: JoinHandle<anyhow::Result<()>>,
    pub addr: SocketAddr,
}

impl Operator {
    pub async fn start(client: &Client, ns: &str, identity: &str) -> Operator {
        Self::start_with(client, ns, identity, Default::default()).await
    }

    /// Like `start`, with the operator-wide job-runner image and pod defaults.
    pub async fn start_with(
        client: &Client,
        ns: &str,
        identity: &str,
        jobs: aurum_operator::overrides::JobDefaults,
    ) -> Operator {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cfg = aurum_operator::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            namespace: Some(ns.to_string()),
            leader_election: true,
            lease_name: "aurum-operator".into(),
            lease_namespace: ns.to_string(),
            identity: identity.to_string(),
            lease_duration_seconds: 10,
            jobs,
        };
        let handle = tokio::spawn(aurum_operator::run(
            client.clone(),
            cfg,
            Some(tx),
            async move {
                let _ = stopped.await;
            },
        ));
        let addr = rx.await.expect("operator bound its port");
        Operator {
            stop: Some(stop),
            handle,
            addr,
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match tokio::time::timeout(Duration::from_secs(20), &mut self.handle).await {
            Ok(r) => r.expect("operator task").expect("operator run"),
            Err(_) => self.handle.abort(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.expect("read");
        let code = buf
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = buf
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    }
}

/// What the stand-in kubelet ran: one entry per container run.
#[derive(Debug, Clone)]
pub struct Ran {
    pub pod: String,
    pub container: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub exit_code: i32,
}

/// Plays the kubelet for one namespace.
pub struct Kubelet {
    handle: JoinHandle<()>,
    pub ran: Arc<Mutex<Vec<Ran>>>,
    /// Extra environment for every process (the stand-in's knobs).
    pub extra_env: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Kubelet {
    pub fn start(client: &Client, ns: &str, runner: PathBuf, workdir: PathBuf) -> Kubelet {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let extra_env = Arc::new(Mutex::new(BTreeMap::new()));
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let (ran2, env2) = (ran.clone(), extra_env.clone());
        let handle = tokio::spawn(async move {
            let mut seen = HashSet::new();
            loop {
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    for pod in list.items {
                        let uid = pod.uid().unwrap_or_default();
                        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
                        let fresh = matches!(phase.as_deref(), None | Some("Pending"));
                        if pod.metadata.deletion_timestamp.is_none() && fresh && seen.insert(uid) {
                            let extra = env2.lock().expect("env").clone();
                            tokio::spawn(run_pod(
                                pods.clone(),
                                secrets.clone(),
                                pod,
                                runner.clone(),
                                workdir.clone(),
                                extra,
                                ran2.clone(),
                            ));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        });
        Kubelet {
            handle,
            ran,
            extra_env,
        }
    }

    pub fn set_env(&self, k: &str, v: &str) {
        self.extra_env
            .lock()
            .expect("env")
            .insert(k.into(), v.into());
    }

    pub fn clear_env(&self) {
        self.extra_env.lock().expect("env").clear();
    }

    pub fn runs(&self) -> Vec<Ran> {
        self.ran.lock().expect("ran").clone()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn resolve_env(
    secrets: &Api<Secret>,
    c: &Container,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for e in c.env.clone().unwrap_or_default() {
        if let Some(v) = e.value {
            out.insert(e.name, v);
        } else if let Some(sel) = e.value_from.and_then(|f| f.secret_key_ref) {
            // As the kubelet: an optional key or Secret that is missing leaves
            // the variable unset; a required one fails the container.
            let optional = sel.optional == Some(true);
            let Some(s) = secrets
                .get_opt(&sel.name)
                .await
                .map_err(|err| err.to_string())?
            else {
                if optional {
                    continue;
                }
                return Err(format!("secret \"{}\" not found", sel.name));
            };
            match s.data.and_then(|d| d.get(&sel.key).cloned()) {
                Some(v) => {
                    out.insert(e.name, String::from_utf8_lossy(&v.0).to_string());
                }
                None if optional => {}
                None => {
                    return Err(format!(
                        "couldn't find key {} in Secret {}",
                        sel.key, sel.name
                    ));
                }
            }
        }
    }
    Ok(out)
}

struct Terminated {
    name: String,
    image: String,
    exit_code: i32,
    message: String,
    started: String,
}

fn terminated_status(t: &Terminated) -> serde_json::Value {
    json!({
        "name": t.name,
        "image": t.image,
        "imageID": "",
        "ready": false,
        "restartCount": 0,
        "state": {"terminated": {
            "exitCode": t.exit_code,
            "reason": if t.exit_code == 0 { "Completed" } else { "Error" },
            "message": t.message,
            "startedAt": t.started,
            "finishedAt": now(),
        }},
    })
}

fn waiting_status(c: &Container, reason: &str) -> serde_json::Value {
    json!({
        "name": c.name,
        "image": c.image.clone().unwrap_or_default(),
        "imageID": "",
        "ready": false,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason}},
    })
}

async fn run_container(
    c: &Container,
    secrets: &Api<Secret>,
    pod: &str,
    runner: &Path,
    dir: &Path,
    extra: &BTreeMap<String, String>,
    ran: &Arc<Mutex<Vec<Ran>>>,
) -> Terminated {
    let started = now();
    let image = c.image.clone().unwrap_or_default();
    let fail = |msg: String| Terminated {
        name: c.name.clone(),
        image: image.clone(),
        exit_code: 128,
        message: msg,
        started: started.clone(),
    };
    let env = match resolve_env(secrets, c).await {
        Ok(e) => e,
        Err(e) => return fail(format!("CreateContainerConfigError: {e}")),
    };
    let cmd = c.command.clone().unwrap_or_default();
    let mut argv: Vec<String> = cmd
        .into_iter()
        .chain(c.args.clone().unwrap_or_default())
        .collect();
    if argv.is_empty() {
        return fail("no command".into());
    }
    let program = if argv[0] == aurum_operator::job::JOB_RUNNER_COMMAND {
        runner.to_path_buf()
    } else {
        PathBuf::from(&argv[0])
    };
    argv.remove(0);
    let tpath = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    let term_file = dir.join(format!("{pod}-{}.termination-log", c.name));
    let _ = std::fs::write(&term_file, "");
    let args: Vec<String> = argv
        .iter()
        .map(|a| {
            if *a == tpath {
                term_file.display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let log_file = dir.join(format!("{pod}-{}.log", c.name));
    let out = tokio::process::Command::new(&program)
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(&env)
        .envs(extra)
        .output()
        .await;
    let (code, logs) = match out {
        Ok(o) => {
            let mut logs = String::from_utf8_lossy(&o.stdout).to_string();
            logs.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.code().unwrap_or(137), logs)
        }
        Err(e) => (128, format!("exec {}: {e}", program.display())),
    };
    let _ = std::fs::write(&log_file, &logs);
    ran.lock().expect("ran").push(Ran {
        pod: pod.to_string(),
        container: c.name.clone(),
        args: argv.clone(),
        env: env.clone(),
        exit_code: code,
    });
    let mut message = std::fs::read_to_string(&term_file).unwrap_or_default();
    if message.trim().is_empty() && code != 0 {
        // FallbackToLogsOnError: the tail of the log.
        let lines: Vec<&str> = logs.lines().collect();
        message = lines[lines.len().saturating_sub(80)..].join("\n");
    }
    if message.len() > 4096 {
        message.truncate(4096);
    }
    Terminated {
        name: c.name.clone(),
        image,
        exit_code: code,
        message,
        started,
    }
}

async fn run_pod(
    pods: Api<Pod>,
    secrets: Api<Secret>,
    pod: Pod,
    runner: PathBuf,
    dir: PathBuf,
    extra: BTreeMap<String, String>,
    ran: Arc<Mutex<Vec<Ran>>>,
) {
    let name = pod.name_any();
    let Some(spec) = pod.spec.clone() else { return };
    let start = now();
    let set_status = |status: serde_json::Value| {
        let pods = pods.clone();
        let name = name.clone();
        async move {
            let r = pods
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await;
            if let Err(e) = r {
                eprintln!("kubelet: status of pod {name}: {e}");
            }
        }
    };
    let inits = spec.init_containers.clone().unwrap_or_default();
    let waiting: Vec<_> = spec
        .containers
        .iter()
        .map(|c| waiting_status(c, "PodInitializing"))
        .collect();
    set_status(json!({"phase": "Pending", "startTime": start, "containerStatuses": waiting})).await;
    let mut init_statuses = Vec::new();
    for c in &inits {
        let t = run_container(c, &secrets, &name, &runner, &dir, &extra, &ran).await;
        let failed = t.exit_code != 0;
        init_statuses.push(terminated_status(&t));
        if failed {
            set_status(json!({
                "phase": "Failed",
                "initContainerStatuses": init_statuses,
                "containerStatuses": waiting,
            }))
            .await;
            return;
        }
    }
    let running: Vec<_> = spec
        .containers
        .iter()
        .map(|c| {
            json!({"name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                   "ready": true, "restartCount": 0, "started": true,
                   "state": {"running": {"startedAt": now()}}})
        })
        .collect();
    set_status(json!({"phase": "Running", "initContainerStatuses": init_statuses, "containerStatuses": running})).await;
    let mut statuses = Vec::new();
    let mut ok = true;
    for c in &spec.containers {
        let t = run_container(c, &secrets, &name, &runner, &dir, &extra, &ran).await;
        ok &= t.exit_code == 0;
        statuses.push(terminated_status(&t));
    }
    set_status(json!({
        "phase": if ok { "Succeeded" } else { "Failed" },
        "initContainerStatuses": init_statuses,
        "containerStatuses": statuses,
    }))
    .await;
}

/// One test's world: its namespace, a work dir, the kubelet.
pub struct TestEnv {
    pub client: Client,
    pub ns: String,
    pub dir: tempfile::TempDir,
    pub kubelet: Kubelet,
}

impl TestEnv {
    /// `None` when KUBECONFIG is unset (the test then skips loudly).
    pub async fn new(test: &str, runner: PathBuf) -> Option<TestEnv> {
        let client = client(test).await?;
        install_crds(&client).await;
        let suffix: String = format!("{:x}", chrono::Utc::now().timestamp_micros())
            .chars()
            .rev()
            .take(6)
            .collect();
        let ns = format!("t-{test}-{suffix}").replace('_', "-");
        let nss: Api<Namespace> = Api::all(client.clone());
        // Pod Security admission rejects any run pod that is not "restricted".
        let n: Namespace = serde_json::from_value(json!({"metadata": {
            "name": ns,
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
        }}))
        .expect("ns");
        nss.create(&PostParams::default(), &n)
            .await
            .expect("create namespace");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubelet = Kubelet::start(&client, &ns, runner, dir.path().to_path_buf());
        Some(TestEnv {
            client,
            ns,
            dir,
            kubelet,
        })
    }

    /// A DataLake over this test's `lake/` folder, fed from its `src/` folder.
    pub fn lake_json(&self, name: &str, extra: serde_json::Value) -> serde_json::Value {
        let dir = self.dir.path();
        lake_json(name, &dir.join("lake"), &dir.join("src"), extra)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn secret(&self, name: &str, url: &str) {
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": name},
            "stringData": {"url": url},
        }))
        .expect("secret");
        self.api::<Secret>()
            .create(&PostParams::default(), &s)
            .await
            .expect("create secret");
    }

    pub async fn apply<K>(&self, obj: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply("tests").force(),
                &Patch::Apply(&obj),
            )
            .await
            .expect("apply")
    }

    pub async fn jobs(&self) -> Vec<Job> {
        self.api::<Job>()
            .list(&ListParams::default())
            .await
            .expect("list jobs")
            .items
    }

    pub async fn events_for(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> = self.api();
        api.list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    pub async fn cleanup(self) {
        // With the operator gone, its finalizer would keep the namespace
        // terminating forever.
        let dms: Api<Datamart> = self.api();
        if let Ok(list) = dms.list(&ListParams::default()).await {
            for d in list.items {
                let _ = dms
                    .patch(
                        &d.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                    )
                    .await;
            }
        }
        let nss: Api<Namespace> = Api::all(self.client.clone());
        let _ = nss.delete(&self.ns, &DeleteParams::background()).await;
    }
}

pub fn lake_json(
    name: &str,
    lake_dir: &Path,
    source_dir: &Path,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut spec = json!({
        "lakeUri": format!("file://{}", lake_dir.display()),
        "source": {"path": source_dir.display().to_string()},
    });
    merge(&mut spec, extra);
    json!({"apiVersion": "aurum.dev/v1alpha1", "kind": "DataLake", "metadata": {"name": name}, "spec": spec})
}

pub fn datamart_json(
    name: &str,
    lake: &str,
    datamart: &str,
    secret: &str,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut spec = json!({
        "dataLakeRef": {"name": lake},
        "datamart": datamart,
        "database": {"secretRef": {"name": secret}},
    });
    merge(&mut spec, extra);
    json!({"apiVersion": "aurum.dev/v1alpha1", "kind": "Datamart", "metadata": {"name": name}, "spec": spec})
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        for (k, v) in b {
            a.insert(k, v);
        }
    }
}

/// A resource's `status` as JSON.
pub fn status_json<K: serde::Serialize>(k: &K) -> serde_json::Value {
    serde_json::to_value(k).expect("json")["status"].clone()
}

/// Whether the status JSON `st` has the condition `type_` with `status`.
pub fn cond_is(st: &serde_json::Value, type_: &str, status: &str) -> bool {
    st["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == type_ && c["status"] == status)
    })
}

/// Whether the status JSON `st` says Available and no run is active.
pub fn available_and_idle(st: &serde_json::Value) -> bool {
    cond_is(st, "Available", "True") && st["activeRun"].is_null()
}

/// Polls the resource `name` every 200 ms until its status JSON satisfies `f`
/// and returns it; panics with `what` and the last status after `timeout`.
pub async fn wait_status<K, F>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    mut f: F,
) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    F: FnMut(&serde_json::Value) -> bool,
{
    let start = Instant::now();
    loop {
        let obj = api.get(name).await.expect("get");
        let st = status_json(&obj);
        if f(&st) {
            return obj;
        }
        if start.elapsed() > timeout {
            panic!("{name}: {what} not reached; status: {st:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The status of a condition of a resource's status JSON.
pub fn cond(obj: &impl serde::Serialize, type_: &str) -> Option<(String, String, String)> {
    let v = serde_json::to_value(obj).ok()?;
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
}
