//! End to end in real headless Chromium: log in, see the four charts with the right
//! number of bars and points for the loaded gold data, change the filters and see
//! the charts change (and the back button undo it), download a CSV and compare it
//! with the gold table, log out. Screenshots of the overview at desktop and phone
//! width are saved under `AURUM_TEST_ARTIFACTS` (default: the target dir's
//! `tmp/dashboard-artifacts`).
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod cdp;
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cdp::{Browser, chromium_bin};
use common::{ChartCounts, Stack, VIEWER};
use serde_json::Value;

fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("AURUM_TEST_ARTIFACTS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the page draws: bars, points, cells, binned customers, and the headline.
const COUNTS_JS: &str = r#"JSON.stringify({
  top: document.querySelectorAll('#chart-top-products rect.bar').length,
  months: document.querySelectorAll('#chart-monthly-sales circle.point').length,
  cells: document.querySelectorAll('#chart-sales-country-year rect.cell').length,
  customers: [...document.querySelectorAll('#chart-customer-lifetime rect.bar')]
      .reduce((n, r) => n + Number(r.dataset.count), 0),
  total: document.getElementById('total-sales').textContent,
  charts: [...document.querySelectorAll('svg.chart[role=img]')]
      .filter(s => s.getAttribute('aria-labelledby').split(' ')
      .every(id => document.getElementById(id))).length
})"#;

/// At phone width: the page's widths, and how far right the "Lifetime value"
/// column of the most valuable customers reaches compared with what can be seen
/// without scrolling (the screen, narrowed by any box that clips the table).
const PHONE_FIT_JS: &str = r#"(() => {
  const layout = document.documentElement.clientWidth;
  const t = document.getElementById('table-top-customers');
  const heads = [...t.querySelectorAll('thead th')];
  const i = heads.findIndex(th => th.textContent.trim() === 'Lifetime value');
  const cells = [heads[i], ...[...t.querySelectorAll('tbody tr')].map(r => r.children[i])];
  let visible = layout;
  for (let e = t.parentElement; e; e = e.parentElement) {
    if (getComputedStyle(e).overflowX !== 'visible') {
      visible = Math.min(visible, e.getBoundingClientRect().right);
    }
  }
  return JSON.stringify({
    layout_width: layout,
    scroll_width: document.documentElement.scrollWidth,
    ltv_cells: i < 0 ? 0 : cells.length,
    ltv_right: Math.max(...cells.map(c => c.getBoundingClientRect().right)),
    visible_right: visible,
  });
})()"#;

async fn counts(b: &mut Browser) -> Value {
    serde_json::from_str(b.eval(COUNTS_JS).await.as_str().unwrap()).unwrap()
}

/// The chart counts of a `counts` answer.
fn chart_counts(counts: &Value) -> ChartCounts {
    ChartCounts {
        top_products: counts["top"].as_i64().unwrap(),
        months: counts["months"].as_i64().unwrap(),
        cells: counts["cells"].as_i64().unwrap(),
        customers: counts["customers"].as_i64().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_filters_downloads_and_logs_out_in_chromium() {
    let Some(chromium) = chromium_bin() else {
        return;
    };
    let Some(stack) = Stack::start(&[]).await else {
        return;
    };
    let artifacts = artifacts_dir();
    let downloads = tempfile::tempdir().unwrap();
    let mut b = Browser::launch(&chromium, downloads.path()).await;
    b.viewport(1280, 800, false).await;

    // Any page first asks for a login.
    b.goto(&format!("{}/", stack.url)).await;
    b.wait_until(
        "location.pathname === '/login' && !!document.getElementById('login-form')",
        "the login page",
    )
    .await;
    b.eval(&format!(
        "document.getElementById('username').value = '{}'; \
         document.getElementById('password').value = '{}'; \
         document.getElementById('login-submit').click(); true",
        VIEWER.0, VIEWER.1
    ))
    .await;
    b.wait_until(
        "location.pathname === '/' && document.readyState === 'complete' && !!document.getElementById('chart-top-products')",
        "the overview after login",
    )
    .await;
    // The session cookie is HttpOnly: scripts cannot read it.
    assert!(
        !b.eval("document.cookie")
            .await
            .as_str()
            .unwrap()
            .contains("aurum_session")
    );

    // Four charts with exactly the loaded data.
    let all = counts(&mut b).await;
    assert_eq!(all["charts"], 4, "four labelled SVG charts: {all}");
    assert_eq!(
        chart_counts(&all),
        stack.expected_chart_counts(None).await,
        "bars, points, cells and binned customers vs the gold tables"
    );

    // Screenshots at desktop and phone width; the phone layout must not scroll sideways.
    let desktop = artifacts.join("overview-desktop-1280x800.png");
    b.screenshot(&desktop).await;
    b.full_page_screenshot(&artifacts.join("overview-desktop-full.png"))
        .await;
    b.viewport(390, 844, true).await;
    // A phone zooms out to show content wider than the screen (so innerWidth
    // grows with it): compare with the 390 px layout width instead.
    let phone: Value = serde_json::from_str(b.eval(PHONE_FIT_JS).await.as_str().unwrap()).unwrap();
    assert_eq!(phone["layout_width"], 390, "{phone}");
    assert!(
        phone["scroll_width"].as_f64().unwrap() <= 390.0,
        "horizontal overflow at phone width: {phone}"
    );
    assert!(phone["ltv_cells"].as_i64().unwrap() > 1, "{phone}");
    assert!(
        phone["ltv_right"].as_f64().unwrap() <= phone["visible_right"].as_f64().unwrap() + 0.5,
        "the lifetime value column of the most valuable customers is cut at phone width: {phone}"
    );
    let phone = artifacts.join("overview-phone-390x844.png");
    b.screenshot(&phone).await;
    b.full_page_screenshot(&artifacts.join("overview-phone-full.png"))
        .await;
    b.viewport(1280, 800, false).await;
    // Dark colours follow the browser's preference.
    let light_bg = b
        .eval("getComputedStyle(document.body).backgroundColor")
        .await;
    b.color_scheme("dark").await;
    let dark_bg = b
        .eval("getComputedStyle(document.body).backgroundColor")
        .await;
    assert_ne!(
        light_bg, dark_bg,
        "prefers-color-scheme: dark changes the page"
    );
    b.screenshot(&artifacts.join("overview-dark-1280x800.png"))
        .await;
    b.color_scheme("light").await;
    println!("screenshots: {} and {}", desktop.display(), phone.display());

    // Filter by the latest year and the busiest country: every chart changes.
    let (country, year) = stack.busiest_country_and_latest_year().await;
    b.eval(&format!(
        "document.getElementById('year').value = '{year}'; \
         document.getElementById('country').value = {}; \
         document.getElementById('apply').click(); true",
        serde_json::to_string(&country).unwrap()
    ))
    .await;
    b.wait_until(
        "location.search.includes('year=') && document.readyState === 'complete' && !!document.getElementById('chart-top-products')",
        "the filtered overview",
    )
    .await;
    let filtered = counts(&mut b).await;
    assert_eq!(
        chart_counts(&filtered),
        stack.expected_chart_counts(Some((&country, year))).await,
        "filtered charts vs the gold tables"
    );
    assert_ne!(
        filtered["total"], all["total"],
        "the headline follows the filters"
    );
    assert_ne!(filtered["months"], all["months"]);
    b.screenshot(&artifacts.join("overview-filtered-1280x800.png"))
        .await;

    // The filters live in the URL: back shows all data again, forward the filter.
    b.eval("history.back(); true").await;
    b.wait_until("location.search === '' && document.readyState === 'complete' && !!document.getElementById('chart-top-products')", "back")
        .await;
    assert_eq!(counts(&mut b).await["cells"], all["cells"]);
    b.eval("history.forward(); true").await;
    b.wait_until("location.search.includes('year=') && document.readyState === 'complete' && !!document.getElementById('chart-top-products')", "forward")
        .await;

    // Download the sales-by-country-and-year CSV and compare it with the gold table.
    b.eval("document.getElementById('csv-sales-country-year').click(); true")
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let file = loop {
        let done: Vec<PathBuf> = std::fs::read_dir(downloads.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        if let Some(f) = done.into_iter().next() {
            break f;
        }
        assert!(Instant::now() < deadline, "no CSV downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with(&format!("sales-country-year-{year}-")),
        "{name}"
    );
    let downloaded = std::fs::read_to_string(&file).unwrap();
    let c = common::sql_text(&country);
    let expected = stack
        .pg_csv(&format!(
            "SELECT year, country, total_sales, total_quantity, transactions, customers \
             FROM gold_sales_country_year WHERE year = {year} AND country = {c} ORDER BY year, country COLLATE \"C\""
        ))
        .await;
    assert_eq!(
        common::unix_lines(&downloaded),
        expected,
        "downloaded CSV vs the gold table"
    );

    // Log out: back at the login page, and the overview asks for a login again.
    b.eval("document.getElementById('logout').click(); true")
        .await;
    b.wait_until("location.pathname === '/login' && document.body.textContent.includes('You are logged out')", "logout")
        .await;
    b.goto(&format!("{}/", stack.url)).await;
    b.wait_until(
        "location.pathname === '/login'",
        "login required after logout",
    )
    .await;
    println!("artifacts in {}", artifacts.display());
}
