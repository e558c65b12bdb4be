//! Leader election with a coordination.k8s.io Lease: only the leader runs the
//! controllers, so two replicas are safe.

use crate::metrics::Metrics;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration_seconds: u64,
    pub grace_seconds: u64,
}

async fn until(rx: &mut watch::Receiver<bool>, want: bool) -> bool {
    rx.wait_for(|v| *v == want).await.is_ok()
}

/// Runs `work` whenever this replica holds the Lease, stopping it when the
/// Lease is lost, until `shutdown` resolves; then releases the Lease.
pub async fn run_as_leader<W, F>(
    client: Client,
    cfg: LeaseConfig,
    metrics: Arc<Metrics>,
    mut work: W,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    W: FnMut() -> F,
    F: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, &cfg.name)
        .with_namespace(&cfg.namespace)
        .with_identity(&cfg.identity)
        .with_duration(cfg.duration_seconds)
        .with_grace(cfg.grace_seconds)
        // One field manager per replica: with a shared one, a replica's
        // server-side apply of holderIdentity would silently take over the
        // Lease instead of conflicting.
        .with_field_manager(format!("aurum-operator-{}", cfg.identity))
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("lease {}/{}: {e}", cfg.namespace, cfg.name))?;
    let (mut rx, task) = manager.watch().await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            ok = until(&mut rx, true) => {
                if !ok { anyhow::bail!("lease manager stopped"); }
            }
        }
        tracing::info!(identity = %cfg.identity, lease = %cfg.name, "became leader");
        metrics.leader.set(1);
        let stop = tokio::select! {
            _ = &mut shutdown => true,
            _ = work() => true,
            _ = until(&mut rx, false) => false,
        };
        metrics.leader.set(0);
        if stop {
            break;
        }
        tracing::warn!(identity = %cfg.identity, "lost the lease; controllers stopped");
    }
    drop(rx);
    match task.await {
        Ok(Ok(_)) => tracing::info!("lease released"),
        Ok(Err(e)) => tracing::warn!(error = %e, "releasing the lease failed"),
        Err(e) => tracing::warn!(error = %e, "lease task failed"),
    }
    Ok(())
}
