//! The Helm quickstart's dashboard, through the cluster's ingress controller, in
//! real headless Chromium: log in with the release's generated admin password,
//! see the overview's four charts, download a CSV and compare it with the gold
//! table in the in-cluster PostgreSQL. A screenshot is kept under
//! `AURUM_TEST_ARTIFACTS`.
//!
//! `charts/tests/quickstart.sh` runs it on a real node, with:
//! - `AURUM_QUICKSTART_DASHBOARD_URL`: the dashboard's URL by its Ingress host name,
//!   e.g. `http://dashboard.aurum.local`;
//! - `AURUM_QUICKSTART_RESOLVE`: where that host name is served, as Chromium's
//!   `--host-resolver-rules` mapping (e.g. `dashboard.aurum.local:80 127.0.0.1:28080`);
//! - `AURUM_QUICKSTART_USER` / `AURUM_QUICKSTART_PASSWORD`: a login;
//! - `AURUM_QUICKSTART_DATABASE_URL`: the quickstart's PostgreSQL (port-forward).
//!
//! A plain `cargo test` has no cluster and ignores it.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod cdp;
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cdp::{Browser, chromium_bin};

fn env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} is not set (charts/tests/quickstart.sh sets it)"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Helm quickstart on a real node: charts/tests/quickstart.sh runs it"]
async fn the_quickstart_dashboard_through_the_ingress() {
    let url = env("AURUM_QUICKSTART_DASHBOARD_URL");
    let resolve = env("AURUM_QUICKSTART_RESOLVE");
    let (user, password) = (
        env("AURUM_QUICKSTART_USER"),
        env("AURUM_QUICKSTART_PASSWORD"),
    );
    let db = aurum_testkit::postgres::connect(&env("AURUM_QUICKSTART_DATABASE_URL")).await;
    let artifacts = PathBuf::from(env("AURUM_TEST_ARTIFACTS"));
    std::fs::create_dir_all(&artifacts).unwrap();
    let chromium = chromium_bin().expect("a Chromium binary");
    let downloads = tempfile::tempdir().unwrap();
    let mut b = Browser::launch_with_args(
        &chromium,
        downloads.path(),
        &[format!("--host-resolver-rules=MAP {resolve}")],
    )
    .await;
    b.viewport(1280, 800, false).await;

    b.goto(&format!("{url}/")).await;
    b.wait_until(
        "location.pathname === '/login' && !!document.getElementById('login-form')",
        "the login page through the ingress",
    )
    .await;
    b.eval(&format!(
        "document.getElementById('username').value = {}; \
         document.getElementById('password').value = {}; \
         document.getElementById('login-submit').click(); true",
        serde_json::to_string(&user).unwrap(),
        serde_json::to_string(&password).unwrap()
    ))
    .await;
    b.wait_until(
        "location.pathname === '/' && document.readyState === 'complete' && !!document.getElementById('chart-top-products')",
        "the overview after login",
    )
    .await;
    let charts = b
        .eval("document.querySelectorAll('svg.chart[role=img]').length")
        .await;
    assert_eq!(charts, 4, "four charts on the overview");
    let bars = b
        .eval("document.querySelectorAll('#chart-top-products rect.bar').length")
        .await;
    let products: i64 = db
        .query_one(
            "SELECT count(*) FROM gold_top_products WHERE scope = 'ALL'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bars, products, "one bar per top product of the gold table");
    let shot = artifacts.join("quickstart-dashboard-1280x800.png");
    b.screenshot(&shot).await;
    println!("screenshot: {}", shot.display());

    // The latest year's CSV of sales by country and year, as PostgreSQL has it.
    let year: i32 = db
        .query_one("SELECT max(year) FROM gold_sales_country_year", &[])
        .await
        .unwrap()
        .get(0);
    b.goto(&format!("{url}/?year={year}")).await;
    b.wait_until(
        "document.readyState === 'complete' && !!document.getElementById('csv-sales-country-year')",
        "the overview of the latest year",
    )
    .await;
    b.eval("document.getElementById('csv-sales-country-year').click(); true")
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let file = loop {
        let done: Option<PathBuf> = std::fs::read_dir(downloads.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "csv"));
        if let Some(f) = done {
            break f;
        }
        assert!(Instant::now() < deadline, "no CSV downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let downloaded = std::fs::read_to_string(&file).unwrap();
    let expected = common::copy_csv(
        &db,
        &format!(
            "SELECT year, country, total_sales, total_quantity, transactions, customers \
             FROM gold_sales_country_year WHERE year = {year} ORDER BY year, country COLLATE \"C\""
        ),
    )
    .await;
    assert_eq!(
        common::unix_lines(&downloaded),
        expected,
        "downloaded CSV vs the gold table"
    );
}
