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
async fn readiness_follows_the_database() {
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
    let deadline = Instant::now() + Duration::from_secs(15);
    while status_of(&env, "/readyz").await != 503 {
        assert!(
            Instant::now() < deadline,
            "readyz stayed 200 with the database gone"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = env
        .api
        .http
        .get(env.api.url("/readyz"))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "not ready");
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
    while status_of(&env, "/readyz").await != 200 {
        assert!(Instant::now() < deadline, "readyz did not recover");
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
        "aurum_api_request_duration_seconds_bucket{route=\"/gold/customer-lifetime\",le=\"+Inf\"} 4",
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
