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
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

/// Labels of a reconcile's outcome: `success`, an error kind (`kube`,
/// `foreign_job`, ...), `invalid_object` or `cancelled`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub kind: String,
    pub outcome: String,
}

/// Labels of one of the controllers' watches, e.g. `datamarts` or `jobs`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub watch: String,
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
    pub reconcile_outcomes: Family<OutcomeLabels, Counter>,
    pub watch_healthy: Family<WatchLabels, Gauge>,
    pub watch_errors: Family<WatchLabels, Counter>,
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
        let reconcile_outcomes = Family::<OutcomeLabels, Counter>::default();
        let watch_healthy = Family::<WatchLabels, Gauge>::default();
        let watch_errors = Family::<WatchLabels, Counter>::default();
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
        registry.register(
            "reconcile_outcomes",
            "Finished reconciliations by outcome (success, an error kind, invalid_object, cancelled)",
            reconcile_outcomes.clone(),
        );
        registry.register(
            "watch_healthy",
            "Whether a watch of the controllers works (0 while it fails, e.g. a CRD is missing)",
            watch_healthy.clone(),
        );
        registry.register(
            "watch_errors",
            "Errors of the controllers' watches",
            watch_errors.clone(),
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
            reconcile_outcomes,
            watch_healthy,
            watch_errors,
            runs_started,
            runs_finished,
            run_duration,
            leader,
        }
    }
}

impl Metrics {
    /// Starts timing one reconcile of a `kind` object and counts it; the
    /// duration and outcome are recorded when the guard drops, so early
    /// returns and cancelled reconciles are recorded too.
    pub fn reconcile_timer(self: &Arc<Self>, kind: &'static str) -> ReconcileTimer {
        self.reconciles
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
        ReconcileTimer {
            metrics: self.clone(),
            kind,
            start: Instant::now(),
            outcome: "cancelled",
        }
    }

    /// The metrics as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records one reconcile's duration and outcome when dropped (see
/// [`Metrics::reconcile_timer`]). The outcome stays `cancelled` unless set.
pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    kind: &'static str,
    start: Instant,
    outcome: &'static str,
}

impl ReconcileTimer {
    /// Sets the outcome recorded at drop: `success` or an error kind.
    pub fn set_outcome(&mut self, outcome: &'static str) {
        self.outcome = outcome;
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let kind = self.kind.to_string();
        self.metrics
            .reconcile_duration
            .get_or_create(&KindLabels { kind: kind.clone() })
            .observe(self.start.elapsed().as_secs_f64());
        self.metrics
            .reconcile_outcomes
            .get_or_create(&OutcomeLabels {
                kind,
                outcome: self.outcome.into(),
            })
            .inc();
    }
}

/// Which of the controllers' watches currently fail, and why. A watch that
/// fails (a CRD deleted, RBAC revoked, the API server away) makes the
/// operator unready until it delivers events again.
pub struct WatchHealth {
    metrics: Arc<Metrics>,
    broken: Mutex<BTreeMap<&'static str, String>>,
}

impl WatchHealth {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        WatchHealth {
            metrics,
            broken: Mutex::new(BTreeMap::new()),
        }
    }

    fn gauge(&self, watch: &str, healthy: bool) {
        self.metrics
            .watch_healthy
            .get_or_create(&WatchLabels {
                watch: watch.into(),
            })
            .set(i64::from(healthy));
    }

    /// The watch delivered an event: it works.
    pub fn ok(&self, watch: &'static str) {
        let was_broken = match self.broken.lock() {
            Ok(mut b) => b.remove(watch).is_some(),
            Err(_) => false,
        };
        if was_broken {
            tracing::info!(watch, "watch works again");
        }
        self.gauge(watch, true);
    }

    /// The watch failed with `error`.
    pub fn failed(&self, watch: &'static str, error: &str) {
        self.metrics
            .watch_errors
            .get_or_create(&WatchLabels {
                watch: watch.into(),
            })
            .inc();
        let first = match self.broken.lock() {
            Ok(mut b) => b.insert(watch, error.to_string()).is_none(),
            Err(_) => false,
        };
        if first {
            tracing::warn!(
                watch,
                error,
                "watch broken; the operator is unready until it recovers"
            );
        }
        self.gauge(watch, false);
    }

    /// Forgets every watch (the controllers stopped, e.g. leadership lost).
    pub fn clear(&self) {
        if let Ok(mut b) = self.broken.lock() {
            b.clear();
        }
        self.metrics.watch_healthy.clear();
    }

    /// The broken watches and their last error.
    pub fn broken(&self) -> Vec<(&'static str, String)> {
        match self.broken.lock() {
            Ok(b) => b.iter().map(|(k, v)| (*k, v.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Shared state of the HTTP endpoints.
#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// The API server answered once.
    pub ready: Arc<AtomicBool>,
    pub watches: Arc<WatchHealth>,
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
    if !h.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting".to_string());
    }
    let broken = h.watches.broken();
    if broken.is_empty() {
        return (StatusCode::OK, "ok".to_string());
    }
    let what: Vec<String> = broken
        .iter()
        .map(|(w, e)| format!("watch {w} broken: {e}"))
        .collect();
    (StatusCode::SERVICE_UNAVAILABLE, what.join("\n"))
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

    #[test]
    fn the_timer_records_on_drop_even_without_an_outcome() {
        let m = Arc::new(Metrics::default());
        {
            let mut t = m.reconcile_timer("Datamart");
            t.set_outcome("success");
        }
        drop(m.reconcile_timer("Datamart"));
        let text = m.encode();
        for line in [
            "aurum_operator_reconciles_total{kind=\"Datamart\"} 2",
            "aurum_operator_reconcile_outcomes_total{kind=\"Datamart\",outcome=\"success\"} 1",
            "aurum_operator_reconcile_outcomes_total{kind=\"Datamart\",outcome=\"cancelled\"} 1",
            "aurum_operator_reconcile_duration_seconds_count{kind=\"Datamart\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    }

    #[test]
    fn a_broken_watch_is_reported_until_it_works_again() {
        let m = Arc::new(Metrics::default());
        let w = WatchHealth::new(m.clone());
        w.ok("jobs");
        w.failed("datamarts", "404");
        assert_eq!(w.broken(), vec![("datamarts", "404".to_string())]);
        assert!(
            m.encode()
                .contains("aurum_operator_watch_healthy{watch=\"datamarts\"} 0")
        );
        w.ok("datamarts");
        assert!(w.broken().is_empty());
        assert!(
            m.encode()
                .contains("aurum_operator_watch_healthy{watch=\"datamarts\"} 1")
        );
    }
}
