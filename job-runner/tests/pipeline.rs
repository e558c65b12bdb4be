//! The whole pipeline through the real binary, against a real PostgreSQL,
//! checked value by value against the independent reference in `support`.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::path::Path;

use support::{assert_gold_matches, path_arg, reference};

#[tokio::test]
async fn full_run_on_dirty_data_matches_the_reference() {
    let url = support::fresh_database("full_run").await;
    let (dir, source) = support::generated_source(4000, 11);
    let lake = dir.path().join("lake");

    let report = support::run(path_arg(&source), path_arg(&lake), &url, "2024-03-01");
    assert_eq!(report["status"], "succeeded");
    support::assert_rows_accounted(&report);
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 12, "4 feeds, 4 preprocess, 4 datamarts");
    // Every kind of dirt the generator makes is caught and named.
    let rejects = |stage: &str, table: &str| {
        stages
            .iter()
            .find(|s| s["stage"] == stage && s["table"] == table)
            .unwrap()["rejects"]
            .clone()
    };
    let silver_tx = rejects("preprocess", "transactions");
    for reason in [
        "missing_required",
        "bad_date",
        "bad_quantity",
        "bad_price",
        "cancellation",
        "duplicate_row",
    ] {
        assert!(
            silver_tx[reason].as_u64().unwrap_or(0) > 0,
            "no {reason} in {silver_tx}"
        );
    }
    assert!(
        rejects("feed", "transactions")["malformed_record"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        rejects("preprocess", "customers")["bad_email"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        rejects("preprocess", "countries")["duplicate_key"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true)
    );

    // The lake has the contract's layout.
    assert!(
        lake.join("raw/transactions/ingest_date=2024-03-01/data.parquet")
            .is_file()
    );
    assert!(lake.join("silver/_snapshot.json").is_file());
    assert!(lake.join("silver/transactions/year=2023/month=1").is_dir());
    assert!(lake.join("silver/_rejects/transactions").is_dir());

    assert_gold_matches(&url, &reference::gold(&[&source], 10)).await;

    let client = support::connect(&url).await;
    let runs = client
        .query("SELECT datamart, status, silver_snapshot_id, rows_written FROM gold_runs ORDER BY datamart", &[])
        .await
        .unwrap();
    assert_eq!(runs.len(), 4);
    for run in &runs {
        assert_eq!(run.get::<_, String>(1), "succeeded");
        assert_eq!(
            run.get::<_, Option<String>>(2).as_deref(),
            report["silver_snapshot_id"].as_str()
        );
        assert!(run.get::<_, i64>(3) > 0);
    }
}

#[tokio::test]
async fn later_ingest_dates_win_and_rerunning_is_idempotent() {
    let url = support::fresh_database("ingest_order").await;
    let dir = tempfile::tempdir().unwrap();
    let day1 = dir.path().join("day1");
    let day2 = dir.path().join("day2");
    let lake = dir.path().join("lake");
    support::generate(&day1, 1500, 5);
    // Day 2: a country renamed, a customer moved to another country, a product
    // renamed, a row without a name that must not displace the earlier one, and
    // transactions that repeat day 1's (duplicates) plus new ones.
    std::fs::create_dir_all(&day2).unwrap();
    std::fs::write(
        day2.join("countries.csv"),
        "CountryID,CountryName\n1,Great Britain\n2,\n",
    )
    .unwrap();
    std::fs::write(
        day2.join("customers.csv"),
        "CustomerNo,FirstName,LastName,Email,CountryID\n12346,Ada,Lovelace,ada@example.com,5\n",
    )
    .unwrap();
    std::fs::write(
        day2.join("products.csv"),
        "ProductNo,ProductName\n20000,Renamed Mug\n",
    )
    .unwrap();
    let day1_transactions = std::fs::read_to_string(day1.join("transactions.csv")).unwrap();
    let mut day2_transactions: Vec<&str> = day1_transactions.lines().take(200).collect();
    day2_transactions.push("999001,2/29/2024,20000,Mug,3.10,7,12346,UK");
    std::fs::write(day2.join("transactions.csv"), day2_transactions.join("\n")).unwrap();

    // The header of day 2's transactions is day 1's (the seed's column order).
    let feed = |source: &Path, date: &str| support::feed(path_arg(source), path_arg(&lake), date);
    let report = feed(&day1, "2024-01-01");
    support::assert_rows_accounted(&report);
    feed(&day2, "2024-01-02");
    let build = || {
        let report = support::job_runner_ok(&["preprocess", "--lake", path_arg(&lake)]);
        support::assert_rows_accounted(&report);
        support::build_datamarts(path_arg(&lake), &url);
        report
    };
    let first = build();
    let expected = reference::gold(&[&day1, &day2], 10);
    assert_gold_matches(&url, &expected).await;
    let client = support::connect(&url).await;
    let moved = client
        .query_one("SELECT country, first_name FROM gold_customer_lifetime_value WHERE customer_no = '12346'", &[])
        .await
        .unwrap();
    assert_eq!(
        moved.get::<_, String>(0),
        "Sweden",
        "customer 12346 moved to country 5"
    );
    assert_eq!(moved.get::<_, Option<String>>(1).as_deref(), Some("Ada"));
    let duplicates = first["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "preprocess" && s["table"] == "transactions")
        .unwrap()["rejects"]["duplicate_row"]
        .as_u64()
        .unwrap();
    assert!(
        duplicates >= 150,
        "day 2 repeats day 1's lines: {duplicates} duplicate rows"
    );

    // Feeding day 2 again replaces its partition whole; rebuilding gives the same gold.
    feed(&day2, "2024-01-02");
    build();
    assert_gold_matches(&url, &expected).await;
    let partitions = std::fs::read_dir(lake.join("raw/transactions"))
        .unwrap()
        .count();
    assert_eq!(partitions, 2);
    let runs: i64 = client
        .query_one("SELECT count(*) FROM gold_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 8);
}

#[tokio::test]
async fn a_crash_between_staging_and_swap_keeps_the_old_table() {
    let url = support::fresh_database("crash").await;
    let (dir, source) = support::generated_source(1200, 8);
    let lake = dir.path().join("lake");
    support::run(path_arg(&source), path_arg(&lake), &url, "2024-01-01");
    let client = support::connect(&url).await;
    let before = support::table_as_text(&client, "gold_top_products").await;

    let top_two = [
        "datamart",
        "top-products",
        "--lake",
        path_arg(&lake),
        "--database-url",
        &url,
        "--top-n",
        "2",
    ];
    let output = support::job_runner(&top_two, &[("AURUM_FAILPOINT", "before-gold-swap")]);
    assert!(!output.status.success(), "the failpoint aborts the process");
    assert_eq!(
        support::table_as_text(&client, "gold_top_products").await,
        before
    );
    let runs: i64 = client
        .query_one(
            "SELECT count(*) FROM gold_runs WHERE datamart = 'top-products'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 1);

    // And without the failpoint the new table replaces the old one.
    support::job_runner_ok(&top_two);
    let after = support::table_as_text(&client, "gold_top_products").await;
    assert!(after.len() < before.len());
    assert!(after.iter().all(|r| r[1] == "1" || r[1] == "2"));
}

#[tokio::test]
async fn database_problems_fail_clearly() {
    let url = support::fresh_database("bad_db").await;
    let (dir, source) = support::generated_source(300, 1);
    let lake = dir.path().join("lake");
    support::job_runner_ok(&[
        "feed",
        "--source",
        path_arg(&source),
        "--lake",
        path_arg(&lake),
    ]);
    support::job_runner_ok(&["preprocess", "--lake", path_arg(&lake)]);
    let datamart = |database_url: &str| {
        let output = support::job_runner(
            &[
                "datamart",
                "monthly-sales",
                "--lake",
                path_arg(&lake),
                "--database-url",
                database_url,
            ],
            &[],
        );
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("a report even on failure");
        assert_eq!(report["status"], "failed");
        (
            output.status.code(),
            stderr
                .lines()
                .rfind(|l| l.starts_with("error:"))
                .unwrap_or_default()
                .to_owned(),
        )
    };

    // A wrong password: exit 1, says the login was refused, never shows the password.
    let wrong = url.replacen("://aurum:", "://aurum:wrong", 1);
    let (code, message) = datamart(&wrong);
    assert_eq!(code, Some(1));
    assert!(message.contains("login refused"), "{message}");
    assert!(!message.contains("wrong"), "{message}");

    // Nothing listening: exit 1, names host and port.
    let (code, message) = datamart("postgres://aurum:x@127.0.0.1:1/aurum");
    assert_eq!(code, Some(1));
    assert!(
        message.contains("cannot connect to PostgreSQL at 127.0.0.1:1/aurum"),
        "{message}"
    );

    // Not a URL at all: a configuration error, exit 2.
    let (code, message) = datamart("postgres://[broken");
    assert_eq!(code, Some(2));
    assert!(message.contains("invalid database URL"), "{message}");

    // A gold table of another shape is reported, not silently replaced.
    let client = support::connect(&url).await;
    client.batch_execute("CREATE TABLE gold_monthly_sales (month date PRIMARY KEY, total_sales double precision)").await.unwrap();
    let (code, message) = datamart(&url);
    assert_eq!(code, Some(1));
    assert!(
        message.contains("does not have the contract's shape"),
        "{message}"
    );
    assert!(
        message.contains("total_sales double precision"),
        "{message}"
    );
}

#[tokio::test]
async fn datamart_without_silver_says_what_to_do() {
    let url = support::fresh_database("no_silver").await;
    let dir = tempfile::tempdir().unwrap();
    let output = support::job_runner(
        &[
            "datamart",
            "top-products",
            "--lake",
            path_arg(dir.path()),
            "--database-url",
            &url,
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no silver snapshot yet"), "{stderr}");
}

#[tokio::test]
async fn a_dropped_gold_table_is_created_again_by_the_next_run() {
    let url = support::fresh_database("dropped_gold").await;
    let (dir, source) = support::generated_source(400, 2);
    let lake = dir.path().join("lake");
    support::run(path_arg(&source), path_arg(&lake), &url, "2024-01-01");
    let client = support::connect(&url).await;
    let before = support::table_as_text(&client, "gold_top_products").await;
    assert!(!before.is_empty());

    // As a Datamart with `deletionPolicy: Delete` does when it is deleted.
    client
        .batch_execute("DROP TABLE gold_top_products")
        .await
        .unwrap();
    support::job_runner_ok(&[
        "datamart",
        "top-products",
        "--lake",
        path_arg(&lake),
        "--database-url",
        &url,
    ]);
    assert_eq!(
        support::table_as_text(&client, "gold_top_products").await,
        before
    );
    let migrations: i64 = client
        .query_one("SELECT count(*) FROM aurum_schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(migrations, 1, "one record per migration, however many runs");
}
