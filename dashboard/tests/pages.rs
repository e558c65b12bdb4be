//! The dashboard over HTTP against the real API and a gold database loaded by the
//! real job-runner: login and sessions, the overview's charts against the gold
//! tables, filters, CSV downloads, the runs page, errors, health and shutdown.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{
    ADMIN, ApiOptions, ChartCounts, Stack, VIEWER, count_in_svg, session_cookie, sql_text, svg_of,
    unix_lines,
};

/// The sum of the `data-count` attributes in the SVG `svg_id` of `html`.
fn data_counts(html: &str, svg_id: &str) -> u64 {
    svg_of(html, svg_id)
        .split("data-count=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse::<u64>().unwrap())
        .sum()
}

/// What the overview `html` draws: bars, points, cells and binned customers.
fn drawn_counts(html: &str) -> ChartCounts {
    ChartCounts {
        top_products: count_in_svg(html, "chart-top-products", "<rect class=\"bar\"") as i64,
        months: count_in_svg(html, "chart-monthly-sales", "<circle class=\"point\"") as i64,
        cells: count_in_svg(html, "chart-sales-country-year", "<rect class=\"cell\"") as i64,
        customers: data_counts(html, "chart-customer-lifetime") as i64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_overview_filters_csv_and_logout() {
    let Some(stack) = Stack::start(&[]).await else {
        return;
    };

    // Not logged in: every page sends to the login page.
    let (status, headers, _) = stack.get("/", None).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/login");
    let (status, _, body) = stack.get("/login", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"login-form\"") && body.contains("method=\"post\""));

    // Wrong password: the form again, with a message and 401.
    let r = stack.post_login(VIEWER.0, "wrong").await;
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Wrong user name or password")
    );

    // Right password: a session cookie that scripts cannot read, for every path.
    let r = stack.post_login(VIEWER.0, VIEWER.1).await;
    assert_eq!(r.status(), 303);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(attr), "{attr} missing in {set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "Secure is opt-in: {set_cookie}"
    );
    let cookie = session_cookie(&set_cookie);

    // The overview: four accessible SVG charts drawing exactly the gold rows.
    let (status, headers, html) = stack.get("/", Some(&cookie)).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(!html.contains("<script"), "the pages need no JavaScript");
    for id in [
        "top-products",
        "monthly-sales",
        "customer-lifetime",
        "sales-country-year",
    ] {
        let tag = format!("<svg id=\"chart-{id}\" class=\"chart\" viewBox=\"0 0 640 ");
        assert!(html.contains(&tag), "chart {id}");
        assert!(html.contains(&format!("aria-labelledby=\"{id}-title {id}-desc\"")));
        assert!(html.contains(&format!("<title id=\"{id}-title\">")));
        assert!(
            html.contains(&format!("id=\"table-{id}\"")),
            "table view of {id}"
        );
        assert!(
            html.contains(&format!("id=\"csv-{id}\"")),
            "CSV link of {id}"
        );
    }
    assert!(html.matches("role=\"img\"").count() >= 4);
    let all = stack.expected_chart_counts(None).await;
    assert!(all.top_products > 1 && all.months > 1 && all.cells > 1 && all.customers > 1);
    assert_eq!(drawn_counts(&html), all);
    // Growth bars: one per month that has a previous month, down for a fall.
    let growth = stack
        .count("SELECT count(*) FROM gold_monthly_sales WHERE mom_growth_pct IS NOT NULL")
        .await;
    let falls = stack
        .count("SELECT count(*) FROM gold_monthly_sales WHERE mom_growth_pct < 0")
        .await;
    assert_eq!(
        count_in_svg(&html, "chart-monthly-sales", "<rect class=\"growth") as i64,
        growth
    );
    assert_eq!(
        count_in_svg(
            &html,
            "chart-monthly-sales",
            "<rect class=\"growth negative\""
        ) as i64,
        falls
    );
    // Headline figures equal the gold tables.
    let total: String = stack
        .value("SELECT to_char(sum(total_sales), 'FM999,999,999,999,990.00') FROM gold_sales_country_year")
        .await;
    assert!(
        html.contains(&format!("id=\"total-sales\">{total}<")),
        "total sales {total}"
    );
    assert!(html.contains(&format!("id=\"customers\">{}<", thousands(all.customers))));
    // A viewer sees no runs link, but the silver snapshot the figures come from.
    assert!(!html.contains("href=\"/runs\""));
    let snapshot = stack.latest_silver_snapshot().await;
    assert!(
        html.contains(&snapshot),
        "silver snapshot {snapshot} shown to viewers"
    );

    // Filters: a year and a country, in the URL, change every chart.
    let (country, year) = stack.busiest_country_and_latest_year().await;
    let query =
        serde_urlencoded::to_string([("year", year.to_string()), ("country", country.clone())])
            .unwrap();
    let (status, _, filtered) = stack.get(&format!("/?{query}"), Some(&cookie)).await;
    assert_eq!(status, 200);
    let c = sql_text(&country);
    let one = stack.expected_chart_counts(Some((&country, year))).await;
    assert_eq!(drawn_counts(&filtered), one);
    assert!(one.months < all.months && one.cells < all.cells && one.customers < all.customers);
    assert!(filtered.contains(&format!("<option value=\"{year}\" selected>")));
    // askama escapes `&` in attributes as `&#38;`.
    assert!(filtered.contains(&format!(
        "href=\"/csv/sales-country-year.csv?{}\"",
        query.replace('&', "&#38;")
    )));

    // Each CSV is exactly its chart's rows, equal to the gold table.
    let csv_cases = [
        (
            format!("/csv/sales-country-year.csv?{query}"),
            format!(
                "SELECT year, country, total_sales, total_quantity, transactions, customers \
                 FROM gold_sales_country_year WHERE year = {year} AND country = {c} ORDER BY year, country COLLATE \"C\""
            ),
        ),
        (
            "/csv/sales-country-year.csv".to_string(),
            "SELECT year, country, total_sales, total_quantity, transactions, customers \
             FROM gold_sales_country_year ORDER BY year, country COLLATE \"C\""
                .to_string(),
        ),
        (
            format!("/csv/top-products.csv?{query}"),
            format!(
                "SELECT scope, rank, product_no, product_name, total_sales, total_quantity, transactions \
                 FROM gold_top_products WHERE scope = {c} ORDER BY rank"
            ),
        ),
        (
            format!("/csv/monthly-sales.csv?{query}"),
            format!(
                "SELECT month, total_sales, total_quantity, transactions, customers, avg_transaction_value, \
                 mom_growth_pct FROM gold_monthly_sales WHERE extract(year FROM month) = {year} ORDER BY month"
            ),
        ),
        (
            format!("/csv/top-customers.csv?{query}"),
            format!(
                "SELECT customer_no, first_name, last_name, country, first_purchase, last_purchase, transactions, \
                 total_quantity, lifetime_value, avg_transaction_value, value_rank, value_quartile \
                 FROM gold_customer_lifetime_value WHERE country = {c} ORDER BY value_rank LIMIT 10"
            ),
        ),
    ];
    for (path, sql) in &csv_cases {
        let (status, headers, body) = stack.get(path, Some(&cookie)).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert!(
            headers["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
        let expected = stack.pg_csv(sql).await;
        assert!(expected.lines().count() > 1, "{sql} has rows");
        assert_eq!(unix_lines(&body), expected, "{path} vs {sql}");
    }
    let (_, _, histogram) = stack
        .get(
            &format!("/csv/customer-lifetime-histogram.csv?{query}"),
            Some(&cookie),
        )
        .await;
    let binned: i64 = histogram
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(binned, one.customers);

    // A bad filter is a friendly 400 page; an unknown CSV or page a 404 page.
    let (status, _, body) = stack.get("/?year=20x4", Some(&cookie)).await;
    assert_eq!(status, 400);
    assert!(body.contains("four digits") && body.contains("<html"));
    assert_eq!(stack.get("/csv/nothing.csv", Some(&cookie)).await.0, 404);
    let (status, _, body) = stack.get("/no/such/page", Some(&cookie)).await;
    assert_eq!(status, 404);
    assert!(body.contains("No such page"));

    // Runs are for admins.
    let (status, _, body) = stack.get("/runs", Some(&cookie)).await;
    assert_eq!(status, 403);
    assert!(body.contains("administrators"));
    assert_eq!(stack.get("/csv/runs.csv", Some(&cookie)).await.0, 403);

    // Logout is a POST that clears the cookie.
    let r = stack
        .http
        .post(format!("{}/logout", stack.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?loggedout=1");
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("aurum_session=;") && cleared.contains("Max-Age=0"));
    assert_eq!(
        stack.get("/logout", Some(&cookie)).await.0,
        405,
        "logout is POST only"
    );
}

fn thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_runs_and_snapshots() {
    let Some(stack) = Stack::start(&[]).await else {
        return;
    };
    let cookie = stack.login(ADMIN).await;
    let (status, _, html) = stack.get("/", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(html.contains("href=\"/runs\""));
    let snapshot = stack.latest_silver_snapshot().await;
    assert!(
        html.contains(&snapshot),
        "silver snapshot {snapshot} shown to admins"
    );

    let (status, _, runs) = stack.get("/runs", Some(&cookie)).await;
    assert_eq!(status, 200);
    let total = stack.count("SELECT count(*) FROM gold_runs").await;
    assert_eq!(
        runs.matches("<tr class=\"succeeded\"").count() as i64
            + runs.matches("<tr class=\"failed\"").count() as i64,
        total.min(200)
    );
    // Newest first: the first row is the latest run.
    let newest: String = stack
        .value("SELECT run_id FROM gold_runs ORDER BY finished_at DESC, run_id DESC LIMIT 1")
        .await;
    let first_row = runs.find("<tr class=").unwrap();
    let second_row = runs[first_row + 1..]
        .find("<tr class=")
        .map(|i| i + first_row + 1)
        .unwrap_or(runs.len());
    assert!(runs[first_row..second_row].contains(&newest));
    let (status, _, csv) = stack.get("/csv/runs.csv", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(csv.lines().count() as i64, total.min(200) + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_forged_sessions_go_back_to_login_and_never_read_the_cache() {
    let Some(stack) = Stack::start(&[]).await else {
        return;
    };
    // A real viewer fills the cache.
    let cookie = stack.login(VIEWER).await;
    assert_eq!(stack.get("/", Some(&cookie)).await.0, 200);

    // A token with valid-looking claims but a bad signature: the API says 401, the
    // dashboard drops the cookie and asks for a login, and serves no cached data.
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let exp = chrono::Utc::now().timestamp() + 600;
    for role in ["viewer", "admin"] {
        let forged = format!(
            "{}.{}.{}",
            b64(r#"{"typ":"JWT","alg":"HS256"}"#),
            b64(&format!(
                r#"{{"sub":"mallory","role":"{role}","iss":"aurum-api","aud":"aurum","iat":1,"exp":{exp}}}"#
            )),
            b64("not a signature")
        );
        let forged_cookie = format!("aurum_session={forged}");
        for path in ["/", "/csv/sales-country-year.csv", "/runs"] {
            let (status, headers, body) = stack.get(path, Some(&forged_cookie)).await;
            if role == "viewer" && path == "/runs" {
                assert_eq!(status, 403, "a viewer's claims never see runs");
                continue;
            }
            assert_eq!(status, 303, "{role} {path}: {body}");
            assert_eq!(headers["location"], "/login?expired=1");
            assert!(
                headers["set-cookie"]
                    .to_str()
                    .unwrap()
                    .contains("Max-Age=0")
            );
            assert!(!body.contains("chart-"));
        }
    }
    // An expired token goes to the login page without asking the API.
    let expired = format!(
        "aurum_session={}.{}.x",
        b64(r#"{"alg":"HS256"}"#),
        b64(r#"{"sub":"vera","role":"viewer","exp":1}"#)
    );
    let (status, headers, _) = stack.get("/", Some(&expired)).await;
    assert_eq!(
        (status, headers["location"].to_str().unwrap()),
        (303, "/login?expired=1")
    );
    // Garbage is "not logged in".
    let (status, headers, _) = stack.get("/", Some("aurum_session=garbage")).await;
    assert_eq!(
        (status, headers["location"].to_str().unwrap()),
        (303, "/login")
    );
    let (status, _, body) = stack.get("/login?expired=1", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("Your session has ended"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_secure_cookie_and_graceful_shutdown() {
    let Some(mut stack) = Stack::start(&["--cookie-secure", "--cache-ttl-secs", "0"]).await else {
        return;
    };
    assert_eq!(stack.get("/healthz", None).await.0, 200);
    assert_eq!(stack.get("/readyz", None).await.0, 200);
    assert_eq!(stack.get("/static/style.css", None).await.0, 200);
    let r = stack.post_login(VIEWER.0, VIEWER.1).await;
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.ends_with("; Secure"), "{set_cookie}");
    let cookie = session_cookie(set_cookie);

    // The API goes away: not ready, and pages say so with a 502 page, not a panic.
    assert!(stack.api.terminate().success());
    let (status, _, body) = stack.get("/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    let (status, _, body) = stack.get("/", Some(&cookie)).await;
    assert_eq!(status, 502);
    assert!(body.contains("did not answer"));
    assert_eq!(stack.post_login(VIEWER.0, VIEWER.1).await.status(), 502);

    // SIGTERM: exit 0.
    let status = stack.dashboard.terminate();
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        stack.dashboard.log_text()
    );
}

/// Posts the login form as a proxy in front of the dashboard would, naming the
/// browser in `X-Forwarded-For`.
async fn post_login_from(stack: &Stack, client: &str, user: &str, password: &str) -> u16 {
    stack
        .http
        .post(format!("{}/login", stack.url))
        .header("x-forwarded-for", client)
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_limited_per_browser_when_the_api_trusts_the_dashboard() {
    let api = ApiOptions {
        args: &[
            "--trusted-proxies",
            "127.0.0.1",
            "--login-max-failures-per-ip",
            "2",
            "--login-max-failures-per-user",
            "100",
        ],
        ..ApiOptions::default()
    };
    let Some(stack) = Stack::start_with(api, &[]).await else {
        return;
    };
    for _ in 0..2 {
        assert_eq!(
            post_login_from(&stack, "198.51.100.7", "ghost", "wrong").await,
            401
        );
    }
    // That browser is blocked, even with the right password...
    assert_eq!(
        post_login_from(&stack, "198.51.100.7", VIEWER.0, VIEWER.1).await,
        429
    );
    // ...but every other user of the same dashboard still logs in.
    assert_eq!(
        post_login_from(&stack, "198.51.100.8", VIEWER.0, VIEWER.1).await,
        303
    );
    assert_eq!(stack.post_login(VIEWER.0, VIEWER.1).await.status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_reached_over_tls_trusting_only_the_given_ca() {
    let api = ApiOptions {
        tls: true,
        ..ApiOptions::default()
    };
    let Some(stack) = Stack::start_with(api, &[]).await else {
        return;
    };
    assert!(stack.api_url.starts_with("https://"), "{}", stack.api_url);
    assert_eq!(stack.get("/readyz", None).await.0, 200);
    let cookie = stack.login(VIEWER).await;
    let (status, _, html) = stack.get("/", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"customers\""));

    // A dashboard trusting another CA refuses the API's certificate: not ready.
    let other = tempfile::tempdir().unwrap();
    let other_ca = aurum_testkit::tls::TestCertificates::issue(other.path()).ca;
    let port = aurum_testkit::process::free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_aurum-dashboard"));
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--api-url",
        &stack.api_url,
    ])
    .arg("--api-ca-file")
    .arg(&other_ca)
    .env_remove("AURUM_LISTEN");
    let distrusting =
        aurum_testkit::process::Process::spawn(cmd, other.path().join("dashboard.log"));
    let url = format!("http://127.0.0.1:{port}");
    distrusting
        .wait_until(
            std::time::Duration::from_secs(60),
            "the second dashboard did not come up",
            async || {
                stack
                    .http
                    .get(format!("{url}/healthz"))
                    .send()
                    .await
                    .is_ok()
            },
        )
        .await;
    let readyz = stack
        .http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 503);
}

#[test]
fn bad_configuration_exits_2() {
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "not a certificate\n").unwrap();
    let not_pem = not_pem.path().to_str().unwrap();
    for (args, names) in [
        (&["--api-url", "ftp://nowhere"][..], "--api-url"),
        (&["--api-url", "https://api:8000"][..], "--api-ca-file"),
        (
            &["--api-url", "http://api:8000", "--api-ca-file", not_pem][..],
            "--api-ca-file",
        ),
        (
            &["--api-url", "https://api:8000", "--api-ca-file", not_pem][..],
            "no PEM certificate",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_aurum-dashboard"))
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("AURUM_API_URL")
            .env_remove("AURUM_API_CA_FILE")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.trim_end().lines().last().unwrap().contains(names),
            "{args:?}: {stderr}"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aurum-dashboard"))
        .args(["--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Requests the API has served on `route` (from its own Prometheus counters).
async fn api_requests(stack: &Stack, route: &str) -> u64 {
    let text =
        aurum_testkit::http::get_text(&stack.http, &format!("{}/metrics", stack.api_url)).await;
    let needle = format!("route=\"{route}\"");
    text.lines()
        .filter(|l| l.starts_with("aurum_api_requests_total{") && l.contains(&needle))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_serves_a_second_session_after_one_token_check() {
    let Some(stack) = Stack::start(&[]).await else {
        return;
    };
    let first = stack.login(VIEWER).await;
    // Eight pages at once on a cold cache: one reading of each datamart (the
    // others wait for it), however the requests interleave.
    let pages = futures::future::join_all((0..8).map(|_| stack.get("/", Some(&first)))).await;
    assert!(pages.iter().all(|(status, _, _)| *status == 200));
    let lifetime_reads = api_requests(&stack, "/gold/customer-lifetime").await;
    assert_eq!(lifetime_reads, 1, "one page of customers, read once");
    let monthly_reads = api_requests(&stack, "/gold/monthly-sales").await;
    assert!(lifetime_reads >= 1);

    // Same user, same filters: nothing goes to the API.
    assert_eq!(stack.get("/", Some(&first)).await.0, 200);
    assert_eq!(
        api_requests(&stack, "/gold/customer-lifetime").await,
        lifetime_reads
    );
    assert_eq!(
        api_requests(&stack, "/gold/monthly-sales").await,
        monthly_reads
    );

    // A new session of the same role: its token is checked by the API (an empty
    // page of monthly sales per cached answer it uses), the data comes from the cache.
    // (Tokens carry whole seconds: wait, so the second token differs.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = stack.login(VIEWER).await;
    assert_ne!(first, second);
    assert_eq!(stack.get("/", Some(&second)).await.0, 200);
    assert_eq!(
        api_requests(&stack, "/gold/customer-lifetime").await,
        lifetime_reads
    );
    assert!(api_requests(&stack, "/gold/monthly-sales").await > monthly_reads);

    // An admin's answers are kept apart: the admin's first page reads the API.
    let admin = stack.login(ADMIN).await;
    assert_eq!(stack.get("/", Some(&admin)).await.0, 200);
    assert!(api_requests(&stack, "/gold/customer-lifetime").await > lifetime_reads);
}

/// A gauge of the dashboard's own /metrics.
async fn dashboard_gauge(stack: &Stack, name: &str) -> u64 {
    let (status, _, text) = stack.get("/metrics", None).await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
}

/// Issue 14: keys come from URL filters, so the cache is bounded. Many distinct
/// filter URLs (each a distinct reading of the API) keep the entries under the
/// cap; identical requests at once still make one reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_filter_urls_keep_the_cache_under_its_cap() {
    let Some(stack) = Stack::start(&["--cache-max-entries", "8", "--cache-ttl-secs", "600"]).await
    else {
        return;
    };
    let cookie = stack.login(VIEWER).await;
    assert_eq!(
        dashboard_gauge(&stack, "aurum_dashboard_cache_max_entries").await,
        8
    );
    let reads_before = api_requests(&stack, "/gold/customer-lifetime").await;
    for i in 0..60 {
        let (status, _, body) = stack
            .get(&format!("/?country=Nowhere{i}"), Some(&cookie))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let reads = api_requests(&stack, "/gold/customer-lifetime").await - reads_before;
    assert!(reads >= 60, "each filter read the API ({reads} readings)");
    let entries = dashboard_gauge(&stack, "aurum_dashboard_cache_entries").await;
    assert!(
        (1..=8).contains(&entries),
        "{entries} entries for a cap of 8"
    );

    // Eight identical requests at once for a filter nobody asked yet: one reading.
    let reads_before = api_requests(&stack, "/gold/customer-lifetime").await;
    let pages =
        futures::future::join_all((0..8).map(|_| stack.get("/?country=Elsewhere", Some(&cookie))))
            .await;
    assert!(pages.iter().all(|(status, _, _)| *status == 200));
    assert_eq!(
        api_requests(&stack, "/gold/customer-lifetime").await - reads_before,
        1,
        "one reading for eight identical requests"
    );
    assert!(dashboard_gauge(&stack, "aurum_dashboard_cache_entries").await <= 8);
}
