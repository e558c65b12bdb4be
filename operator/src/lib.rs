//! Aurum's Kubernetes operator: `DataLake` and `Datamart` resources reconciled
//! into job-runner Jobs.

pub mod crd;
pub mod job;
pub mod leader;
pub mod metrics;
pub mod overrides;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod schedule;
pub mod status;
pub mod telemetry;

use anyhow::Context as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How to run the operator.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of /metrics, /healthz, /readyz.
    pub listen: SocketAddr,
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_namespace: String,
    pub identity: String,
    pub lease_duration_seconds: u64,
    /// The job-runner image and pod defaults of every run.
    pub jobs: overrides::JobDefaults,
}

/// Serves the HTTP endpoints and runs the controllers (as leader, when leader
/// election is on) until `shutdown` resolves. Returns the bound address through
/// `bound` as soon as it listens (tests bind port 0).
pub async fn run(
    client: kube::Client,
    cfg: Config,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    let health = metrics::Health {
        metrics: metrics.clone(),
        ready: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        watches: Arc::new(metrics::WatchHealth::new(metrics.clone())),
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listen on {}", cfg.listen))?;
    let addr = listener.local_addr().context("local address")?;
    tracing::info!(%addr, "serving /metrics /healthz /readyz");
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let mut rx = stop_rx.clone();
        let app = metrics::router(health.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await
        })
    };
    // The API server answers: ready (as leader or standby).
    client
        .apiserver_version()
        .await
        .context("reach the Kubernetes API server")?;
    health.ready.store(true, Ordering::Relaxed);

    let ctx = Arc::new(reconcile::Context::new(
        client.clone(),
        metrics.clone(),
        health.watches.clone(),
        Some(cfg.identity.clone()),
        cfg.jobs.clone(),
    ));
    let stopped = {
        let rx = stop_rx.clone();
        move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|v| *v).await;
            }
        }
    };
    let work = {
        let client = client.clone();
        let ns = cfg.namespace.clone();
        let stopped = stopped.clone();
        move || reconcile::run_controllers(client.clone(), ns.clone(), ctx.clone(), stopped())
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    if cfg.leader_election {
        leader::run_as_leader(
            client,
            leader::LeaseConfig {
                namespace: cfg.lease_namespace.clone(),
                name: cfg.lease_name.clone(),
                identity: cfg.identity.clone(),
                duration_seconds: cfg.lease_duration_seconds,
                grace_seconds: (cfg.lease_duration_seconds / 3).max(1),
            },
            metrics,
            work,
            stopped(),
        )
        .await?;
    } else {
        metrics.leader.set(1);
        work().await;
    }
    let _ = server.await;
    Ok(())
}
