//! Least privilege: with `--reader-role`, the job-runner lets the API's own
//! database role read the gold tables and `gold_runs`, and that role can do
//! nothing else, even with SQL that a Flight SQL check would have let through.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use support::{DATAMARTS, GOLD_TABLES, path_arg};
use tokio_postgres::error::SqlState;

/// `url` with another user and password.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (_, host) = rest.split_once('@').unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

#[tokio::test]
async fn the_reader_role_reads_gold_and_nothing_else() {
    let url = support::fresh_database("reader").await;
    let admin = support::connect(&url).await;
    let role = format!("aurum_reader_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'reader-pw';
             CREATE TABLE private_notes (note text); INSERT INTO private_notes VALUES ('secret');
             CREATE SCHEMA other; CREATE TABLE other.t (x int);"
        ))
        .await
        .unwrap();

    let (dir, source) = support::generated_source(300, 5);
    let lake = dir.path().join("lake");
    support::feed(path_arg(&source), path_arg(&lake), "2024-01-01");
    support::job_runner_ok(&["preprocess", "--lake", path_arg(&lake)]);
    let publish = |name: &str| {
        support::job_runner_ok(&[
            "datamart",
            name,
            "--lake",
            path_arg(&lake),
            "--database-url",
            &url,
            "--reader-role",
            &role,
        ])
    };
    for name in DATAMARTS {
        publish(name);
    }
    // A second publish replaces the rows; the grant must survive it.
    publish("top-products");

    let reader = support::connect(&as_user(&url, &role, "reader-pw")).await;
    for table in GOLD_TABLES.iter().chain(&["gold_runs"]) {
        let rows: i64 = reader
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap_or_else(|e| panic!("{role} cannot read {table}: {e}"))
            .get(0);
        assert!(rows > 0, "{table} is empty");
    }

    let denied = [
        "INSERT INTO gold_runs (datamart, run_id, started_at, finished_at, rows_written, status) \
         VALUES ('x', 'x', now(), now(), 0, 'failed')",
        "UPDATE gold_top_products SET rank = 0",
        "DELETE FROM gold_monthly_sales",
        "TRUNCATE gold_sales_country_year",
        "DROP TABLE gold_customer_lifetime_value",
        "ALTER TABLE gold_runs ADD COLUMN x int",
        "CREATE TABLE public.mine (a int)",
        "CREATE SCHEMA mine",
        "SELECT * FROM aurum_schema_migrations",
        "SELECT * FROM private_notes",
        "SELECT * FROM other.t",
        "SELECT rolname, rolpassword FROM pg_authid",
        "SELECT * FROM pg_shadow",
        "SELECT pg_read_file('PG_VERSION')",
        "COPY gold_runs TO '/tmp/aurum-reader-copy'",
        "SET ROLE aurum",
    ];
    for sql in denied {
        let err = reader
            .batch_execute(sql)
            .await
            .expect_err(&format!("{role} may run: {sql}"));
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }
    // The gold tables are as the job-runner left them.
    let runs: i64 = admin
        .query_one("SELECT count(*) FROM gold_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 5);

    drop(reader);
    let _ = admin.batch_execute(&format!("DROP OWNED BY {role}")).await;
    drop(admin);
    let server = support::connect(&support::admin_url()).await;
    // The database still holds the grants: drop it before the role.
    let database = url.rsplit('/').next().unwrap().to_owned();
    for statement in [
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {role}"),
    ] {
        server.batch_execute(&statement).await.unwrap();
    }
}
