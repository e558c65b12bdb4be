//! Health, readiness (database down and back), metrics, OpenAPI and Swagger UI,
//! problem responses, limits, CORS and graceful shutdown.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Env, VIEWER};
use serde_json::Value;

async fn status_of(env: &Env, path: &str) -> u16 {
    env.api
        .http
        .get(env.api.url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_stays_while_the_database_is_away() {
    let env = Env::start(&[]).await;
    let t = env.api.login(&VIEWER).await;
    assert_eq!(status_of(&env, "/readyz").await, 200);
    let v: Value = env.api.get_public_json("/readyz").await;
    assert_eq!(v["status"], "ready");
    assert_eq!(v["datamarts"]["customer-lifetime"]["loaded"], true);
    // Each datamart names the run and the silver snapshot it came from.
    let published: String = env
        .db
        .client()
        .await
        .query_one(
            "SELECT silver_snapshot_id FROM gold_runs WHERE datamart = 'customer-lifetime-value' \
             AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        v["datamarts"]["customer-lifetime"]["silver_snapshot_id"],
        published.as_str()
    );

    env.db.take_down().await;
    // Ready all along (it serves the loaded snapshot); the body says the database
    // is unreachable.
    let deadline = Instant::now() + Duration::from_secs(15);
    let v = loop {
        let r = env
            .api
            .http
            .get(env.api.url("/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "readyz failed with the database gone");
        let v: Value = r.json().await.unwrap();
        if v["database"] == "unreachable" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "readyz did not notice the database is gone: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v["status"], "ready");
    assert!(v["database_error"].is_string(), "{v}");
    // Liveness is unaffected, and the last published data is still served from memory.
    assert_eq!(status_of(&env, "/healthz").await, 200);
    assert_eq!(
        env.api
            .get("/gold/customer-lifetime?limit=3", &t)
            .await
            .status(),
        200
    );
    // The admin history needs the database: a clean 503, not a 500.
    let admin = env.api.login(&common::ADMIN).await;
    let r = env.api.get("/gold/runs", &admin).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    env.db.bring_up().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.api.get_public_json("/readyz").await["database"] != "reachable" {
        assert!(
            Instant::now() < deadline,
            "readyz did not see the database again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.api.get("/gold/runs", &admin).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_without_a_database_and_catches_up() {
    let db = common::TestDb::new().await;
    db.take_down().await;
    let api = common::Api::start(&db.url, &[]).await;
    let t = api.login(&VIEWER).await;
    let r = api.get("/gold/monthly-sales", &t).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        api.http
            .get(api.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    db.bring_up().await;
    api.wait_loaded().await;
    assert_eq!(api.get("/gold/monthly-sales", &t).await.status(), 200);
}

/// A PostgreSQL server of its own (testenv/postgres.sh), stopped on drop.
struct OwnPostgres {
    dir: tempfile::TempDir,
    url: String,
    /// Away from the ports other test servers scan from (25432 up), so nobody
    /// takes it while this one is stopped.
    port: u16,
}

impl OwnPostgres {
    fn script(args: &[&str], port: Option<u16>) -> String {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testenv/postgres.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .args(args)
            .envs(port.map(|p| ("AURUM_POSTGRES_PORT", p.to_string())))
            .output()
            .expect("run testenv/postgres.sh");
        assert!(
            out.status.success(),
            "postgres.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn start() -> OwnPostgres {
        let dir = tempfile::tempdir().unwrap();
        // The server runs as `postgres`, which must reach the folder.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let port = (26000..28000)
            .cycle()
            .skip(std::process::id() as usize % 2000)
            .take(2000)
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .expect("a free port from 26000 to 27999");
        let mut pg = OwnPostgres {
            dir,
            url: String::new(),
            port,
        };
        pg.url = pg.up();
        pg
    }

    /// Starts the server; returns its DATABASE_URL.
    fn up(&self) -> String {
        let out = Self::script(
            &["start", self.dir.path().to_str().unwrap()],
            Some(self.port),
        );
        out.lines()
            .find_map(|l| l.strip_prefix("DATABASE_URL="))
            .expect("postgres.sh prints DATABASE_URL")
            .to_string()
    }

    fn down(&self) {
        Self::script(&["stop", self.dir.path().to_str().unwrap()], None);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.down();
    }
}

fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Issue 18: the API keeps serving (and stays ready) while its PostgreSQL server
/// is stopped, reports the database as unreachable in /readyz and /metrics, and
/// recovers when the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_last_snapshot_while_postgres_is_stopped() {
    let pg = OwnPostgres::start();
    common::load_gold(&pg.url).await;
    let api = common::Api::start(&pg.url, &[]).await;
    api.wait_loaded().await;
    let t = api.login(&VIEWER).await;
    let admin = api.login(&common::ADMIN).await;
    let before = api.get("/gold/customer-lifetime?limit=5", &t).await;
    assert_eq!(before.status(), 200);
    let before = before.text().await.unwrap();
    let v = api.get_public_json("/readyz").await;
    assert_eq!(v["database"], "reachable", "{v}");
    assert_eq!(
        metric_value(
            &api.get_public_text("/metrics").await,
            "aurum_api_database_up"
        ),
        Some(1.0)
    );

    pg.down();
    // Longer than Kubernetes' default failure window (3 probes, 10 s apart) and
    // the chart's (3, 5 s apart): readiness holds, the data is served.
    let stopped = Instant::now();
    let mut seen_unreachable = false;
    while stopped.elapsed() < Duration::from_secs(16) {
        let r = api.http.get(api.url("/readyz")).send().await.unwrap();
        assert_eq!(
            r.status(),
            200,
            "readyz failed {:?} after the stop",
            stopped.elapsed()
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "ready");
        if v["database"] == "unreachable" {
            seen_unreachable = true;
            assert!(v["database_error"].is_string(), "{v}");
            assert!(v["snapshot_age_seconds"].as_i64().is_some(), "{v}");
        }
        let r = api.get("/gold/customer-lifetime?limit=5", &t).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.text().await.unwrap(),
            before,
            "the same snapshot is served"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        seen_unreachable,
        "readyz never said the database is unreachable"
    );
    let v = api.get_public_json("/readyz").await;
    assert!(
        v["snapshot_age_seconds"].as_i64().unwrap() >= 10,
        "the served data's last confirmation ages: {v}"
    );
    let m = api.get_public_text("/metrics").await;
    assert_eq!(metric_value(&m, "aurum_api_database_up"), Some(0.0), "{m}");
    // What needs the database answers a clean 503.
    assert_eq!(api.get("/gold/runs", &admin).await.status(), 503);

    let url = pg.up();
    assert_eq!(
        url, pg.url,
        "postgres.sh restarted the server on another port"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = api.get_public_json("/readyz").await;
        // Reachable, and the refresher has confirmed the snapshots again.
        if v["database"] == "reachable" && v["snapshot_age_seconds"].as_i64().unwrap() < 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the API did not see PostgreSQL again: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        metric_value(
            &api.get_public_text("/metrics").await,
            "aurum_api_database_up"
        ),
        Some(1.0)
    );
    assert_eq!(api.get("/gold/runs", &admin).await.status(), 200);
}

/// Counters are exact under concurrent requests (no update lost between threads).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_concurrent_requests_exactly() {
    let env = Env::start(&[]).await;
    let api = &env.api;
    let t = api.login(&VIEWER).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let http = api.http.clone();
            let ok = api.url("/gold/top-products?limit=1");
            let missing = api.url("/no-such-path");
            let t = t.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    let r = http.get(&ok).bearer_auth(&t).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    let r = http.get(&missing).send().await.unwrap();
                    assert_eq!(r.status(), 404);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let m = api.get_public_text("/metrics").await;
    for (series, want) in [
        (
            "aurum_api_requests_total{method=\"GET\",route=\"/gold/top-products\",status=\"200\"}",
            400.0,
        ),
        (
            "aurum_api_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
            400.0,
        ),
        (
            "aurum_api_request_duration_seconds_count{route=\"/gold/top-products\"}",
            400.0,
        ),
    ] {
        assert_eq!(metric_value(&m, series), Some(want), "{series} in\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_docs_metrics_and_problems() {
    let env = Env::start(&[]).await;
    let api = &env.api;
    let spec: Value = api.get_public_json("/openapi.json").await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/login",
        "/gold/sales-country-year",
        "/gold/top-products",
        "/gold/monthly-sales",
        "/gold/customer-lifetime",
        "/gold/runs",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(spec["paths"][p].is_object(), "{p} missing from the spec");
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["oauth2"]["flows"]["password"]["tokenUrl"],
        "/login"
    );

    // Swagger UI is served from the binary.
    let r = api.http.get(api.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.to_lowercase().contains("swagger"), "{html}");
    assert!(!html.contains("cdn") && !html.contains("unpkg"), "{html}");
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let r = api.http.get(api.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    let init = api.get_public_text("/docs/swagger-initializer.js").await;
    assert!(init.contains("/openapi.json"), "{init}");

    // Problems for unknown routes and methods.
    let r = api.http.get(api.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = api
        .http
        .delete(api.url("/gold/top-products"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // Metrics count requests by route and status, with latency and pool gauges.
    let t = api.login(&VIEWER).await;
    for _ in 0..3 {
        api.get("/gold/customer-lifetime", &t).await;
    }
    api.http
        .get(api.url("/gold/customer-lifetime"))
        .send()
        .await
        .unwrap();
    let m = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = m.text().await.unwrap();
    for needle in [
        "aurum_api_requests_total{method=\"GET\",route=\"/gold/customer-lifetime\",status=\"200\"} 3",
        "aurum_api_requests_total{method=\"GET\",route=\"/gold/customer-lifetime\",status=\"401\"} 1",
        "aurum_api_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        // prometheus-client writes `le` first (label order means nothing to Prometheus).
        "aurum_api_request_duration_seconds_bucket{le=\"+Inf\",route=\"/gold/customer-lifetime\"} 4",
        "aurum_api_db_pool_max_size 8",
        "aurum_api_datamart_rows{datamart=\"customer-lifetime\"}",
        "aurum_api_login_successes_total 1",
    ] {
        assert!(m.contains(needle), "missing `{needle}` in\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits() {
    let env = Env::start(&["--max-body-bytes", "1024"]).await;
    let api = &env.api;
    let big = format!(
        "{{\"username\": \"vera\", \"password\": \"{}\"}}",
        "x".repeat(4096)
    );
    let r = api
        .http
        .post(api.url("/login"))
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // A request head over the limit is refused (431) or the connection is closed.
    let r = api
        .http
        .get(api.url("/healthz"))
        .header("X-Big", "y".repeat(64 * 1024))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 431);
    }
    assert_eq!(status_of(&env, "/healthz").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_configurable() {
    let env = Env::start(&[]).await;
    let pre = |api: &common::Api| {
        api.http
            .request(reqwest::Method::OPTIONS, api.url("/gold/top-products"))
            .header("Origin", "https://dash.example")
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let r = pre(&env.api).await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    let api2 = common::Api::start(
        &env.db.url,
        &[
            "--cors-allow-origins",
            "https://dash.example,https://other.example",
        ],
    )
    .await;
    let r = pre(&api2).await.unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let t = api2.login(&VIEWER).await;
    let r = api2
        .http
        .get(api2.url("/gold/top-products"))
        .bearer_auth(&t)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully() {
    let mut env = Env::start(&[]).await;
    let t = env.api.login(&VIEWER).await;
    assert_eq!(env.api.get("/gold/top-products", &t).await.status(), 200);
    let st = env.api.terminate();
    assert!(st.success(), "exit status {st:?}: {}", env.api.log_text());
    let log = env.api.log_text();
    assert!(
        log.contains("SIGTERM received") && log.contains("stopped"),
        "{log}"
    );
}
