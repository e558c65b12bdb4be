//! `aurum-operator`: runs the controllers, or prints the CRDs (`crdgen`).

use anyhow::Context as _;
use aurum_operator::{Config, run, telemetry};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;

#[derive(Parser, Debug)]
#[command(
    name = "aurum-operator",
    version,
    about = "Reconciles Aurum DataLake and Datamart resources into job-runner Jobs"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "AURUM_LISTEN",
        default_value = "0.0.0.0:8080",
        global = true
    )]
    listen: SocketAddr,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "AURUM_NAMESPACE", global = true)]
    namespace: Option<String>,

    /// Run the controllers only while holding the leader Lease.
    #[arg(long, env = "AURUM_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    leader_election: bool,

    /// Name of the leader Lease.
    #[arg(
        long,
        env = "AURUM_LEASE_NAME",
        default_value = "aurum-operator",
        global = true
    )]
    lease_name: String,

    /// Namespace of the leader Lease (default: --namespace, else POD_NAMESPACE, else default).
    #[arg(long, env = "AURUM_LEASE_NAMESPACE", global = true)]
    lease_namespace: Option<String>,

    /// Lease duration in seconds.
    #[arg(
        long,
        env = "AURUM_LEASE_DURATION",
        default_value_t = 15,
        global = true
    )]
    lease_duration: u64,

    /// This replica's identity in the Lease (default: POD_NAME or hostname, and the pid).
    #[arg(long, env = "AURUM_IDENTITY", global = true)]
    identity: Option<String>,

    /// Job-runner image of the runs whose resource sets no spec.image
    /// (default: aurum-job-runner tagged with this operator's version).
    #[arg(long, env = "AURUM_JOB_RUNNER_IMAGE", global = true)]
    job_runner_image: Option<String>,

    /// Pod template (JSON or YAML) merged into every run's pod before the
    /// resource's own spec.podOverrides: pull secrets, placement, env, volumes.
    #[arg(long, env = "AURUM_JOB_POD_DEFAULTS", global = true)]
    job_pod_defaults: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator (the default).
    Run,
    /// Print the DataLake and Datamart CRDs as YAML.
    Crdgen,
}

fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "aurum-operator".into());
    format!("{host}-{}", std::process::id())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

async fn operate(cli: Cli) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("build a Kubernetes client (in-cluster config or KUBECONFIG)")?;
    let lease_namespace = cli
        .lease_namespace
        .or_else(|| cli.namespace.clone())
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".into());
    let pod = match cli.job_pod_defaults.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            serde_yaml::from_str::<k8s_openapi::api::core::v1::PodTemplateSpec>(text)
                .context("--job-pod-defaults (AURUM_JOB_POD_DEFAULTS) is no pod template")?,
        ),
    };
    let jobs = aurum_operator::overrides::JobDefaults {
        image: cli
            .job_runner_image
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(aurum_operator::crd::default_job_runner_image),
        pod,
    };
    let cfg = Config {
        listen: cli.listen,
        namespace: cli.namespace,
        leader_election: cli.leader_election,
        lease_name: cli.lease_name,
        lease_namespace,
        identity: cli.identity.unwrap_or_else(default_identity),
        lease_duration_seconds: cli.lease_duration.max(2),
        jobs,
    };
    run(client, cfg, None, shutdown_signal()).await
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crdgen) => match aurum_operator::crd::crds_yaml() {
            Ok(y) => print!("{y}"),
            Err(e) => {
                eprintln!("aurum-operator: cannot serialize the CRDs: {e}");
                std::process::exit(1);
            }
        },
        Some(Command::Run) | None => {
            telemetry::init();
            if let Err(e) = operate(cli).await {
                eprintln!(
                    "aurum-operator: {e:#}; check KUBECONFIG / the service account and retry"
                );
                std::process::exit(1);
            }
        }
    }
}
