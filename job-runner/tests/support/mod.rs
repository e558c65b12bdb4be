//! Shared by the integration tests: a fresh database per test, the real
//! binary, and reading gold tables back as text.

#![allow(dead_code)]

pub mod race;
pub mod reference;

use std::path::{Path, PathBuf};
use std::process::Output;

use tokio_postgres::{Client, NoTls};

/// The four gold tables, in the order of [`DATAMARTS`].
pub const GOLD_TABLES: [&str; 4] = [
    "gold_sales_country_year",
    "gold_top_products",
    "gold_monthly_sales",
    "gold_customer_lifetime_value",
];

/// The four datamarts, as `aurum-job-runner datamart` names them.
pub const DATAMARTS: [&str; 4] = [
    "sales-country-year",
    "top-products",
    "monthly-sales",
    "customer-lifetime-value",
];

/// The admin URL of the test PostgreSQL, started by `make test`.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: these tests need a real PostgreSQL; run them with `make test` \
         (which starts one) or export DATABASE_URL yourself",
    )
}

/// Creates an empty database for one test and returns its URL.
pub async fn fresh_database(name: &str) -> String {
    let admin = admin_url();
    let database = format!("aurum_test_{name}_{}", std::process::id());
    let client = connect(&admin).await;
    for statement in [
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        format!("CREATE DATABASE {database}"),
    ] {
        client
            .simple_query(&statement)
            .await
            .expect("create the test database");
    }
    with_database(&admin, &database)
}

/// The same URL with another database name.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let slash = base.rfind('/').expect("a database URL has a path");
    format!("{}/{database}{query}", &base[..slash])
}

/// A connection to `url`.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(connection);
    client
}

/// Runs the real `aurum-job-runner` binary.
pub fn job_runner(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_aurum-job-runner"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run aurum-job-runner")
}

/// Runs the binary and insists it succeeds; returns the JSON report.
pub fn job_runner_ok(args: &[&str]) -> serde_json::Value {
    let output = job_runner(args, &[]);
    assert!(
        output.status.success(),
        "aurum-job-runner {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the run report is JSON")
}

/// A local path as a command-line argument.
pub fn path_arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The last line the binary wrote to stderr (its error line when it failed).
pub fn last_error_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// `feed --source SOURCE --lake LAKE --ingest-date INGEST_DATE`, which must
/// succeed; returns the report.
pub fn feed(source: &str, lake: &str, ingest_date: &str) -> serde_json::Value {
    job_runner_ok(&[
        "feed",
        "--source",
        source,
        "--lake",
        lake,
        "--ingest-date",
        ingest_date,
    ])
}

/// `run --source SOURCE --lake LAKE --database-url DATABASE_URL
/// --ingest-date INGEST_DATE`, which must succeed; returns the report.
pub fn run(source: &str, lake: &str, database_url: &str, ingest_date: &str) -> serde_json::Value {
    run_with(source, lake, database_url, ingest_date, &[])
}

/// [`run`] with more arguments after the usual ones (`--engine ...`).
pub fn run_with(
    source: &str,
    lake: &str,
    database_url: &str,
    ingest_date: &str,
    more: &[&str],
) -> serde_json::Value {
    let mut args = vec![
        "run",
        "--source",
        source,
        "--lake",
        lake,
        "--database-url",
        database_url,
        "--ingest-date",
        ingest_date,
    ];
    args.extend_from_slice(more);
    job_runner_ok(&args)
}

/// Each of the four datamarts of LAKE into DATABASE_URL, in turn; each must succeed.
pub fn build_datamarts(lake: &str, database_url: &str) {
    for name in DATAMARTS {
        job_runner_ok(&[
            "datamart",
            name,
            "--lake",
            lake,
            "--database-url",
            database_url,
        ]);
    }
}

/// A temporary folder with `transactions` generated source transactions (seed
/// `seed`) in its `source` subfolder: the folder (removed when dropped) and that path.
pub fn generated_source(transactions: u64, seed: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    generate(&source, transactions, seed);
    (dir, source)
}

/// Generates source files.
pub fn generate(dir: &Path, transactions: u64, seed: u64) {
    job_runner_ok(&[
        "generate",
        "--out",
        dir.to_str().unwrap(),
        "--transactions",
        &transactions.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
}

/// A gold table read back as sorted rows of text (NULL as "NULL").
pub async fn table_as_text(client: &Client, table: &str) -> Vec<Vec<String>> {
    let columns: Vec<String> = client
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!columns.is_empty(), "table {table} does not exist");
    let select = columns
        .iter()
        .map(|c| format!("COALESCE(\"{c}\"::text, 'NULL')"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut rows: Vec<Vec<String>> = client
        .query(&format!("SELECT {select} FROM {table}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (0..columns.len())
                .map(|i| row.get::<_, String>(i))
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

/// The four gold tables of the database at `url`, each as [`table_as_text`] reads it.
pub async fn gold_tables(url: &str) -> Vec<Vec<Vec<String>>> {
    let client = connect(url).await;
    let mut tables = Vec::new();
    for table in GOLD_TABLES {
        tables.push(table_as_text(&client, table).await);
    }
    tables
}

/// Checks that a report's stages account for every row they read.
pub fn assert_rows_accounted(report: &serde_json::Value) {
    for stage in report["stages"].as_array().expect("stages") {
        let read = stage["rows_read"].as_u64().unwrap();
        let written = stage["rows_written"].as_u64().unwrap();
        let rejected = stage["rows_rejected"].as_u64().unwrap();
        let by_reason: u64 = stage["rejects"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        if stage["stage"] != "datamart" {
            assert_eq!(read, written + rejected, "stage {stage}");
        }
        assert_eq!(rejected, by_reason, "stage {stage}");
    }
}

/// Asserts that the gold tables at `url` hold exactly the reference's rows.
pub async fn assert_gold_matches(url: &str, expected: &reference::Gold) {
    let actual = gold_tables(url).await;
    let wanted = [
        &expected.sales_country_year,
        &expected.top_products,
        &expected.monthly_sales,
        &expected.customer_lifetime_value,
    ];
    for ((table, actual), wanted) in GOLD_TABLES.iter().zip(&actual).zip(wanted) {
        assert!(
            !wanted.is_empty(),
            "the reference computed no rows for {table}"
        );
        assert_eq!(actual.len(), wanted.len(), "{table}: row count");
        for (a, w) in actual.iter().zip(wanted.iter()) {
            assert_eq!(a, w, "{table}: first differing row");
        }
    }
}
