//! Prometheus metrics in the text exposition format: requests by route and status,
//! a latency histogram per route, Flight SQL calls by method and status code, pool usage and datamart freshness.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::gold::store::MartSummary;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct RouteStats {
    requests: HashMap<(&'static str, u16), u64>,
    latency: Histogram,
}

#[derive(Default)]
struct FlightMethodStats {
    calls: HashMap<&'static str, u64>,
    latency: Histogram,
}

#[derive(Default)]
struct Inner {
    routes: HashMap<String, RouteStats>,
    flight: HashMap<&'static str, FlightMethodStats>,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        self.count += 1;
        self.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name` with `labels`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{b}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// Process-wide metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Failed logins.
    pub login_failures: AtomicU64,
    /// Logins refused by the rate limiter.
    pub login_rate_limited: AtomicU64,
    /// Successful logins.
    pub login_successes: AtomicU64,
    /// Rows streamed to Flight SQL clients.
    flight_rows: AtomicU64,
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

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, method: &http::Method, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let stats = match inner.routes.get_mut(route) {
            Some(s) => s,
            None => inner.routes.entry(route.to_string()).or_default(),
        };
        *stats
            .requests
            .entry((method_label(method), status))
            .or_insert(0) += 1;
        stats.latency.observe(secs);
    }

    /// Records one finished Flight call: its gRPC method (e.g. `DoGet`), its status
    /// code name (e.g. `Ok`, `Unauthenticated`) and its duration (for streams, until
    /// the last message).
    pub fn observe_flight(&self, method: &'static str, code: &'static str, elapsed: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let stats = inner.flight.entry(method).or_default();
        *stats.calls.entry(code).or_insert(0) += 1;
        stats.latency.observe(elapsed.as_secs_f64());
    }

    /// Counts rows streamed to Flight SQL clients.
    pub fn flight_rows(&self, rows: u64) {
        self.flight_rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// Renders the text exposition format.
    pub fn render(&self, pool: PoolStats, marts: &[MartSummary]) -> String {
        let mut out = String::with_capacity(4096);
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP aurum_api_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE aurum_api_requests_total counter\n");
        let mut reqs: Vec<_> = inner
            .routes
            .iter()
            .flat_map(|(r, st)| st.requests.iter().map(move |((m, s), n)| (r, *m, *s, *n)))
            .collect();
        reqs.sort();
        for (r, m, s, n) in reqs {
            let _ = writeln!(
                out,
                "aurum_api_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}",
                escape(r)
            );
        }
        out.push_str("# HELP aurum_api_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE aurum_api_request_duration_seconds histogram\n");
        let mut lat: Vec<_> = inner.routes.iter().map(|(r, s)| (r, &s.latency)).collect();
        lat.sort_by(|a, b| a.0.cmp(b.0));
        for (route, h) in lat {
            h.render(
                &mut out,
                "aurum_api_request_duration_seconds",
                &format!("route=\"{}\"", escape(route)),
            );
        }
        out.push_str("# HELP aurum_api_flight_calls_total Arrow Flight SQL calls by gRPC method and status code.\n");
        out.push_str("# TYPE aurum_api_flight_calls_total counter\n");
        let mut calls: Vec<_> = inner
            .flight
            .iter()
            .flat_map(|(m, st)| st.calls.iter().map(move |(c, n)| (*m, *c, *n)))
            .collect();
        calls.sort();
        for (m, c, n) in calls {
            let _ = writeln!(
                out,
                "aurum_api_flight_calls_total{{method=\"{m}\",code=\"{c}\"}} {n}"
            );
        }
        out.push_str("# HELP aurum_api_flight_call_duration_seconds Arrow Flight SQL call duration by gRPC method (streams: until the last message).\n");
        out.push_str("# TYPE aurum_api_flight_call_duration_seconds histogram\n");
        let mut flight: Vec<_> = inner.flight.iter().collect();
        flight.sort_by_key(|(m, _)| **m);
        for (m, st) in flight {
            st.latency.render(
                &mut out,
                "aurum_api_flight_call_duration_seconds",
                &format!("method=\"{m}\""),
            );
        }
        drop(inner);
        for (name, help, v) in [
            (
                "aurum_api_db_pool_max_size",
                "Configured maximum pool size.",
                pool.max_size,
            ),
            (
                "aurum_api_db_pool_connections",
                "Open pool connections.",
                pool.size,
            ),
            (
                "aurum_api_db_pool_idle",
                "Idle pool connections.",
                pool.available,
            ),
            (
                "aurum_api_db_pool_waiting",
                "Tasks waiting for a connection.",
                pool.waiting,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        for (name, help, v) in [
            (
                "aurum_api_login_failures_total",
                "Failed logins.",
                &self.login_failures,
            ),
            (
                "aurum_api_login_rate_limited_total",
                "Logins refused by the rate limiter.",
                &self.login_rate_limited,
            ),
            (
                "aurum_api_login_successes_total",
                "Successful logins (REST and Flight SQL handshakes).",
                &self.login_successes,
            ),
            (
                "aurum_api_flight_rows_total",
                "Rows streamed to Arrow Flight SQL clients.",
                &self.flight_rows,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP aurum_api_datamart_rows Rows in the served snapshot.\n# TYPE aurum_api_datamart_rows gauge\n");
        for m in marts {
            if let Some(rows) = m.rows {
                let _ = writeln!(
                    out,
                    "aurum_api_datamart_rows{{datamart=\"{}\"}} {rows}",
                    m.path
                );
            }
        }
        out.push_str("# HELP aurum_api_datamart_run_finished_timestamp_seconds Finish time of the run that published the served snapshot.\n# TYPE aurum_api_datamart_run_finished_timestamp_seconds gauge\n");
        for m in marts {
            if let Some(t) = m.finished_at {
                let _ = writeln!(
                    out,
                    "aurum_api_datamart_run_finished_timestamp_seconds{{datamart=\"{}\"}} {}",
                    m.path,
                    t.timestamp()
                );
            }
        }
        out.push_str("# HELP aurum_api_datamart_loads_total Snapshot loads.\n# TYPE aurum_api_datamart_loads_total counter\n");
        for m in marts {
            let _ = writeln!(
                out,
                "aurum_api_datamart_loads_total{{datamart=\"{}\"}} {}",
                m.path, m.status.loads
            );
        }
        out.push_str("# HELP aurum_api_datamart_refresh_failures_total Failed checks or loads.\n# TYPE aurum_api_datamart_refresh_failures_total counter\n");
        for m in marts {
            let _ = writeln!(
                out,
                "aurum_api_datamart_refresh_failures_total{{datamart=\"{}\"}} {}",
                m.path, m.status.failures
            );
        }
        out
    }
}
