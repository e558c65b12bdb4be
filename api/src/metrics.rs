//! Prometheus metrics with `prometheus-client` (as the operator's): requests by
//! route and status, a latency histogram per route, Flight SQL calls by method and
//! status code, login outcomes, and, read at scrape time, pool usage, database
//! reachability and datamart freshness.
//!
//! The request path only touches the metric families: a family takes a shared
//! read lock to find an existing series and atomics to count, so concurrent
//! requests do not wait for each other (a write lock is taken once per new label
//! set, e.g. the first 404 of a route).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::gold::store::{DatabaseStatus, MartSummary};

/// Upper bounds (seconds) of the latency histogram buckets.
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlightCallLabels {
    method: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlightMethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DatamartLabels {
    datamart: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Process-wide metrics.
pub struct Metrics {
    /// The metrics counted as things happen.
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RouteLabels>,
    flight_calls: Family<FlightCallLabels, Counter>,
    flight_duration: HistogramFamily<FlightMethodLabels>,
    /// Failed logins.
    pub login_failures: Counter,
    /// Logins refused by the rate limiter.
    pub login_rate_limited: Counter,
    /// Successful logins.
    pub login_successes: Counter,
    /// Rows streamed to Flight SQL clients.
    flight_rows: Counter,
}

/// Pool state at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    /// Configured maximum.
    pub max_size: usize,
    /// Open connections.
    pub size: usize,
    /// Idle connections.
    pub available: usize,
    /// Tasks waiting for a connection.
    pub waiting: usize,
}

fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

fn gauge(v: i64) -> Gauge {
    let g = Gauge::default();
    g.set(v);
    g
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("aurum_api");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration =
            HistogramFamily::<RouteLabels>::new_with_constructor(latency_histogram);
        let flight_calls = Family::<FlightCallLabels, Counter>::default();
        let flight_duration =
            HistogramFamily::<FlightMethodLabels>::new_with_constructor(latency_histogram);
        let login_failures = Counter::default();
        let login_rate_limited = Counter::default();
        let login_successes = Counter::default();
        let flight_rows = Counter::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Request latency by route",
            request_duration.clone(),
        );
        registry.register(
            "flight_calls",
            "Arrow Flight SQL calls by gRPC method and status code",
            flight_calls.clone(),
        );
        registry.register(
            "flight_call_duration_seconds",
            "Arrow Flight SQL call duration by gRPC method (streams: until the last message)",
            flight_duration.clone(),
        );
        registry.register("login_failures", "Failed logins", login_failures.clone());
        registry.register(
            "login_rate_limited",
            "Logins refused by the rate limiter",
            login_rate_limited.clone(),
        );
        registry.register(
            "login_successes",
            "Successful logins (REST and Flight SQL handshakes)",
            login_successes.clone(),
        );
        registry.register(
            "flight_rows",
            "Rows streamed to Arrow Flight SQL clients",
            flight_rows.clone(),
        );
        Self {
            registry,
            requests,
            request_duration,
            flight_calls,
            flight_duration,
            login_failures,
            login_rate_limited,
            login_successes,
            flight_rows,
        }
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, method: &http::Method, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                route: route.to_string(),
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one finished Flight call: its gRPC method (e.g. `DoGet`), its status
    /// code name (e.g. `Ok`, `Unauthenticated`) and its duration (for streams, until
    /// the last message).
    pub fn observe_flight(&self, method: &'static str, code: &'static str, elapsed: Duration) {
        self.flight_calls
            .get_or_create(&FlightCallLabels { method, code })
            .inc();
        self.flight_duration
            .get_or_create(&FlightMethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts rows streamed to Flight SQL clients.
    pub fn flight_rows(&self, rows: u64) {
        self.flight_rows.inc_by(rows);
    }

    /// Renders the OpenMetrics text format (which Prometheus's classic text
    /// parser also reads).
    pub fn render(
        &self,
        pool: PoolStats,
        database: &DatabaseStatus,
        marts: &[MartSummary],
    ) -> String {
        // Values that live elsewhere (the pool, the snapshot store) are read now,
        // into a registry made for this scrape.
        let mut scrape = Registry::with_prefix("aurum_api");
        for (name, help, v) in [
            (
                "db_pool_max_size",
                "Configured maximum pool size",
                pool.max_size,
            ),
            ("db_pool_connections", "Open pool connections", pool.size),
            ("db_pool_idle", "Idle pool connections", pool.available),
            (
                "db_pool_waiting",
                "Tasks waiting for a connection",
                pool.waiting,
            ),
        ] {
            scrape.register(name, help, gauge(i64::try_from(v).unwrap_or(i64::MAX)));
        }
        scrape.register(
            "database_up",
            "1 when PostgreSQL answered the API's last attempt (a refresh or a readiness \
             check), 0 when it did not, -1 before the first",
            gauge(database.reachable.map_or(-1, i64::from)),
        );
        let rows = Family::<DatamartLabels, Gauge>::default();
        let finished = Family::<DatamartLabels, Gauge>::default();
        let loads = Family::<DatamartLabels, Counter>::default();
        let failures = Family::<DatamartLabels, Counter>::default();
        for m in marts {
            let labels = DatamartLabels { datamart: m.path };
            if let Some(r) = m.rows {
                rows.get_or_create(&labels)
                    .set(i64::try_from(r).unwrap_or(i64::MAX));
            }
            if let Some(t) = m.finished_at {
                finished.get_or_create(&labels).set(t.timestamp());
            }
            loads.get_or_create(&labels).inc_by(m.status.loads);
            failures.get_or_create(&labels).inc_by(m.status.failures);
        }
        scrape.register("datamart_rows", "Rows in the served snapshot", rows);
        scrape.register(
            "datamart_run_finished_timestamp_seconds",
            "Finish time of the run that published the served snapshot",
            finished,
        );
        scrape.register("datamart_loads", "Snapshot loads", loads);
        scrape.register(
            "datamart_refresh_failures",
            "Failed checks or loads",
            failures,
        );

        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &scrape);
        let _ = encode_eof(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_series_names() {
        let m = Metrics::default();
        m.observe(
            &http::Method::GET,
            "/gold/top-products",
            200,
            Duration::ZERO,
        );
        m.observe_flight("DoGet", "Ok", Duration::from_millis(3));
        m.flight_rows(7);
        m.login_failures.inc();
        let text = m.render(
            PoolStats {
                max_size: 8,
                size: 1,
                available: 1,
                waiting: 0,
            },
            &DatabaseStatus {
                reachable: Some(true),
                ..Default::default()
            },
            &[],
        );
        for needle in [
            "aurum_api_requests_total{method=\"GET\",route=\"/gold/top-products\",status=\"200\"} 1",
            "aurum_api_request_duration_seconds_bucket{le=\"+Inf\",route=\"/gold/top-products\"} 1",
            "aurum_api_flight_calls_total{method=\"DoGet\",code=\"Ok\"} 1",
            "aurum_api_flight_call_duration_seconds_count{method=\"DoGet\"} 1",
            "aurum_api_flight_rows_total 7",
            "aurum_api_login_failures_total 1",
            "aurum_api_db_pool_max_size 8",
            "aurum_api_database_up 1",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
