//! Prometheus metrics and the /metrics, /healthz, /readyz endpoints.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    pub kind: String,
    pub trigger: String,
}

fn histogram_secs() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 20))
}

/// The operator's metrics.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<KindLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub runs_started: Family<TriggerLabels, Counter>,
    pub runs_finished: Family<RunLabels, Counter>,
    pub run_duration: Family<RunLabels, Histogram, fn() -> Histogram>,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("aurum_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration =
            Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                histogram_secs,
            );
        let runs_started = Family::<TriggerLabels, Counter>::default();
        let runs_finished = Family::<RunLabels, Counter>::default();
        let run_duration =
            Family::<RunLabels, Histogram, fn() -> Histogram>::new_with_constructor(histogram_secs);
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciliations", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciliations that returned an error",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            reconcile_duration.clone(),
        );
        registry.register("runs_started", "Runs (Jobs) started", runs_started.clone());
        registry.register(
            "runs_finished",
            "Runs finished, by outcome",
            runs_finished.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Run duration from Job creation to completion",
            run_duration.clone(),
        );
        registry.register(
            "leader",
            "Whether this replica holds the leader Lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            runs_started,
            runs_finished,
            run_duration,
            leader,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Shared state of the HTTP endpoints.
#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

pub fn router(h: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_families() {
        let m = Metrics::default();
        m.reconciles
            .get_or_create(&KindLabels {
                kind: "Datamart".into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("aurum_operator_reconciles_total{kind=\"Datamart\"} 1"),
            "{text}"
        );
    }
}
