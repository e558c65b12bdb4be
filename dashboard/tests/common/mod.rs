//! Test fixture: a PostgreSQL database loaded by the real job-runner, the real
//! `aurum-api` serving it, and the real `aurum-dashboard` reading the API.
//!
//! Environment (testenv/test.sh provides it):
//! - `DATABASE_URL`: a PostgreSQL with rights to create databases;
//! - `AURUM_JOB_RUNNER_BIN`: the job-runner binary that loads the gold tables;
//! - `AURUM_API_BIN`: the API binary (default: `aurum-api` next to this crate's
//!   binary in the target dir, which `cargo build --workspace --bins` puts there).
//!
//! Without them the tests say so and skip, except under `CI=true`, where a missing
//! one fails the test: CI must never pass by skipping.
//!
//! The API's own fixture (api/tests/common) loads a synthetic SQL file unless told
//! otherwise and uses the API crate's private test helpers; this one always runs the
//! real pipeline and drives the API only as a binary, as the dashboard does. What the
//! two share (databases, the pipeline, child processes) is in `aurum-testkit`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use aurum_testkit::environment::required;
use aurum_testkit::postgres::{connect, create_process_database, url_for};
use aurum_testkit::process::{Process, free_port};
use aurum_testkit::tls::TestCertificates;
use tokio::sync::OnceCell;
use tokio_postgres::Client;

/// Transactions the fixture generates (about 120 customers, two years, 30 countries).
pub const TRANSACTIONS: u32 = 3000;

/// Test users (password, role).
pub const VIEWER: (&str, &str, &str) = ("vera", "viewer-pass-1", "viewer");
/// An admin.
pub const ADMIN: (&str, &str, &str) = ("adam", "admin-pass-1", "admin");

/// The API binary: `AURUM_API_BIN`, else `aurum-api` beside the dashboard binary.
pub fn api_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AURUM_API_BIN")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    let beside = Path::new(env!("CARGO_BIN_EXE_aurum-dashboard")).with_file_name("aurum-api");
    if beside.exists() {
        return Some(beside);
    }
    required("AURUM_API_BIN", "the aurum-api binary").map(PathBuf::from)
}

/// Everything the fixture needs, or `None` to skip.
pub struct Prerequisites {
    /// Admin URL of PostgreSQL.
    pub database_url: String,
    /// The job-runner.
    pub job_runner: PathBuf,
    /// The API.
    pub api: PathBuf,
}

impl Prerequisites {
    /// Reads the environment.
    pub fn from_env() -> Option<Prerequisites> {
        let database_url = required("DATABASE_URL", "a PostgreSQL admin URL");
        let job_runner = required("AURUM_JOB_RUNNER_BIN", "the aurum-job-runner binary");
        let api = api_bin();
        Some(Prerequisites {
            database_url: database_url?,
            job_runner: PathBuf::from(job_runner?),
            api: api?,
        })
    }
}

static GOLD_DB: OnceCell<String> = OnceCell::const_new();

/// The gold database of this test process (one per process, loaded once by the real
/// pipeline; databases of test processes that are gone are dropped).
pub async fn gold_database(p: &Prerequisites) -> String {
    GOLD_DB
        .get_or_init(|| async {
            let name = create_process_database(&p.database_url, "aurum_dash_gold_").await;
            let url = url_for(&p.database_url, &name);
            aurum_testkit::gold::load_with_job_runner(&p.job_runner, &url, TRANSACTIONS);
            url
        })
        .await
        .clone()
}

/// The body of `GET url` when the answer is 200 OK.
async fn ok_text(http: &reqwest::Client, url: &str) -> Option<String> {
    let r = http.get(url).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.text().await.ok()
}

/// How [`Stack::start_with`] starts the API.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiOptions<'a> {
    /// Extra command-line arguments.
    pub args: &'a [&'a str],
    /// Serve HTTPS with a certificate from a test CA, which the dashboard is
    /// given as --api-ca-file.
    pub tls: bool,
}

/// The API, the dashboard in front of it, and the gold database behind them.
pub struct Stack {
    /// The API process.
    pub api: Process,
    /// The dashboard process.
    pub dashboard: Process,
    /// The API's base URL.
    pub api_url: String,
    /// The dashboard's base URL.
    pub url: String,
    /// The gold database URL.
    pub db_url: String,
    /// Holds the users file and logs.
    pub dir: tempfile::TempDir,
    /// An HTTP client that does not follow redirects.
    pub http: reqwest::Client,
}

impl Stack {
    /// Starts the API on the gold database and the dashboard with `dashboard_args`;
    /// `None` when the environment lacks a prerequisite (outside CI).
    pub async fn start(dashboard_args: &[&str]) -> Option<Stack> {
        Self::start_with(ApiOptions::default(), dashboard_args).await
    }

    /// [`Stack::start`] with the API started as `options` say.
    pub async fn start_with(options: ApiOptions<'_>, dashboard_args: &[&str]) -> Option<Stack> {
        let p = Prerequisites::from_env()?;
        let db_url = gold_database(&p).await;
        let dir = tempfile::tempdir().unwrap();
        let mut users = String::new();
        for (name, password, role) in [VIEWER, ADMIN] {
            let mut child = Command::new(&p.api)
                .args(["hash-password", "--username", name, "--role", role])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run aurum-api hash-password");
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(password.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "hash-password: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            users.push_str(&String::from_utf8(out.stdout).unwrap());
        }
        std::fs::write(dir.path().join("users"), users).unwrap();
        std::fs::write(
            dir.path().join("secret"),
            "dashboard-test-secret-0123456789-abcdefghijkl\n",
        )
        .unwrap();
        let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        let tls = options.tls.then(|| TestCertificates::issue(dir.path()));
        if let Some(certs) = &tls {
            http = http.add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).unwrap()).unwrap(),
            );
        }
        let http = http.build().unwrap();

        let api_port = free_port();
        let mut cmd = Command::new(&p.api);
        cmd.args([
            "--listen",
            &format!("127.0.0.1:{api_port}"),
            "--database-url",
            &db_url,
        ])
        .arg("--users-file")
        .arg(dir.path().join("users"))
        .arg("--jwt-secret-file")
        .arg(dir.path().join("secret"))
        .args(["--refresh-interval-ms", "200"])
        .args(options.args);
        if let Some(certs) = &tls {
            cmd.arg("--tls-cert-file")
                .arg(&certs.server_cert)
                .arg("--tls-key-file")
                .arg(&certs.server_key);
        }
        cmd.env_remove("DATABASE_URL")
            .env_remove("AURUM_JWT_SECRET")
            .env_remove("AURUM_LISTEN")
            // The dashboard reads REST only, and several tests' APIs run at once: none
            // serves Flight SQL (an env var, not the flag: API builds from before Flight
            // SQL ignore it).
            .env("AURUM_FLIGHT_DISABLED", "true")
            .env("RUST_LOG", "info");
        let api = Process::spawn(cmd, dir.path().join("api.log"));
        // The certificate names localhost, not the address.
        let api_url = match tls {
            Some(_) => format!("https://localhost:{api_port}"),
            None => format!("http://127.0.0.1:{api_port}"),
        };
        api.wait_until(
            Duration::from_secs(60),
            "aurum-api did not come up",
            async || {
                ok_text(&http, &format!("{api_url}/readyz"))
                    .await
                    .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
                    .is_some_and(|v| {
                        v["datamarts"].as_object().is_some_and(|m| {
                            !m.is_empty() && m.values().all(|d| d["loaded"] == true)
                        })
                    })
            },
        )
        .await;

        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aurum-dashboard"));
        cmd.args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--api-url",
            &api_url,
        ])
        .args(dashboard_args);
        if let Some(certs) = &tls {
            cmd.arg("--api-ca-file").arg(&certs.ca);
        }
        cmd.env_remove("AURUM_LISTEN")
            .env_remove("AURUM_API_URL")
            .env_remove("AURUM_API_CA_FILE")
            .env("RUST_LOG", "info");
        let dashboard = Process::spawn(cmd, dir.path().join("dashboard.log"));
        let url = format!("http://127.0.0.1:{port}");
        dashboard
            .wait_until(
                Duration::from_secs(60),
                "aurum-dashboard did not come up",
                async || ok_text(&http, &format!("{url}/healthz")).await.is_some(),
            )
            .await;
        Some(Stack {
            api,
            dashboard,
            api_url,
            url,
            db_url,
            dir,
            http,
        })
    }

    /// The silver snapshot of the newest successful gold run.
    pub async fn latest_silver_snapshot(&self) -> String {
        self.value(
            "SELECT silver_snapshot_id FROM gold_runs WHERE status = 'succeeded' \
             ORDER BY finished_at DESC LIMIT 1",
        )
        .await
    }

    /// A client of the gold database.
    pub async fn db(&self) -> Client {
        connect(&self.db_url).await
    }

    /// Posts the dashboard's login form with `username` and `password`: the answer
    /// as it is, for tests of failed logins and of the cookie's attributes.
    pub async fn post_login(&self, username: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/login", self.url))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    /// Logs in through the dashboard's form; returns the `Cookie` header value.
    pub async fn login(&self, user: (&str, &str, &str)) -> String {
        let r = self.post_login(user.0, user.1).await;
        assert_eq!(r.status(), 303, "login of {}", user.0);
        session_cookie(r.headers()["set-cookie"].to_str().unwrap())
    }

    /// GET `path` with `cookie`: status, headers, body.
    pub async fn get(
        &self,
        path: &str,
        cookie: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self.http.get(format!("{}{}", self.url, path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    }

    /// PostgreSQL's own CSV of `query` (header line, `\n` line ends).
    pub async fn pg_csv(&self, query: &str) -> String {
        copy_csv(&self.db().await, query).await
    }

    /// The country with the most sales and the latest year: the filters the tests use.
    pub async fn busiest_country_and_latest_year(&self) -> (String, i32) {
        let country = self
            .value(
                "SELECT country FROM gold_sales_country_year GROUP BY country \
                 ORDER BY sum(total_sales) DESC, country LIMIT 1",
            )
            .await;
        let year = self
            .value("SELECT max(year) FROM gold_sales_country_year")
            .await;
        (country, year)
    }

    /// The single value of `query` (its first row's first column).
    pub async fn value<T>(&self, query: &str) -> T
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        self.db()
            .await
            .query_one(query, &[])
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .get(0)
    }

    /// A single number from SQL.
    pub async fn count(&self, query: &str) -> i64 {
        self.value(query).await
    }

    /// The rows the overview's charts must draw: of all the data without a `filter`,
    /// else of one `(country, year)` as the page filters them (top products and
    /// customers of the country, months of the year, the one cell of both).
    pub async fn expected_chart_counts(&self, filter: Option<(&str, i32)>) -> ChartCounts {
        let [products, months, cells, customers] = match filter {
            None => ["scope = 'ALL'", "true", "true", "true"].map(String::from),
            Some((country, year)) => {
                let c = sql_text(country);
                [
                    format!("scope = {c}"),
                    format!("extract(year FROM month) = {year}"),
                    format!("year = {year} AND country = {c}"),
                    format!("country = {c}"),
                ]
            }
        };
        ChartCounts {
            top_products: self
                .count(&format!(
                    "SELECT count(*) FROM gold_top_products WHERE {products}"
                ))
                .await,
            months: self
                .count(&format!(
                    "SELECT count(*) FROM gold_monthly_sales WHERE {months}"
                ))
                .await,
            cells: self
                .count(&format!(
                    "SELECT count(*) FROM gold_sales_country_year WHERE {cells}"
                ))
                .await,
            customers: self
                .count(&format!(
                    "SELECT count(*) FROM gold_customer_lifetime_value WHERE {customers}"
                ))
                .await,
        }
    }
}

/// What the overview's four charts draw, one number each, in gold table rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartCounts {
    /// Bars of the top products chart (`gold_top_products`).
    pub top_products: i64,
    /// Points of the monthly sales line (`gold_monthly_sales`).
    pub months: i64,
    /// Cells of the sales heat map (`gold_sales_country_year`).
    pub cells: i64,
    /// Customers binned by the lifetime value histogram
    /// (`gold_customer_lifetime_value`).
    pub customers: i64,
}

/// The `name=value` part of a `Set-Cookie` header: what a `Cookie` header sends back.
pub fn session_cookie(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

/// The part of `html` between `<svg id="{svg_id}"` and the next `</svg>`.
pub fn svg_of<'a>(html: &'a str, svg_id: &str) -> &'a str {
    let start = html
        .find(&format!("<svg id=\"{svg_id}\""))
        .unwrap_or_else(|| panic!("no svg #{svg_id}"));
    let end = start + html[start..].find("</svg>").unwrap();
    &html[start..end]
}

/// Counts non-overlapping occurrences of `needle` in the SVG `svg_id` of `html`.
pub fn count_in_svg(html: &str, svg_id: &str, needle: &str) -> usize {
    svg_of(html, svg_id).matches(needle).count()
}

/// PostgreSQL's own CSV of `query` on `client` (header line, `\n` line ends).
pub async fn copy_csv(client: &Client, query: &str) -> String {
    use futures::StreamExt;
    let stream = client
        .copy_out(&format!(
            "COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)"
        ))
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8(out).unwrap()
}

/// `s` as a PostgreSQL string literal.
pub fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// CSV text with `\r\n` line ends turned into `\n`.
pub fn unix_lines(csv: &str) -> String {
    csv.replace("\r\n", "\n")
}
