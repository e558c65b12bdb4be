//! The job-runner sized by `--threads` and `--memory-limit`, through the real
//! binary: the same silver and gold whatever the threads, spilling under a
//! small memory limit, and a clean failure (nothing published) under one too
//! small to work.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::path::Path;

use datafusion::arrow::util::display::array_value_to_string;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use support::{path_arg, reference};

/// Every row of the current silver snapshot's `transactions` and their
/// rejects, as sorted text: what must not depend on threads or memory.
fn silver_rows(lake: &Path) -> (Vec<String>, Vec<String>) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lake.join("silver/_snapshot.json")).unwrap())
            .unwrap();
    let read = |files: &serde_json::Value| {
        let mut rows = Vec::new();
        for file in files.as_array().unwrap() {
            let file = std::fs::File::open(lake.join(file.as_str().unwrap())).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                for row in 0..batch.num_rows() {
                    let fields: Vec<String> = batch
                        .columns()
                        .iter()
                        .map(|c| array_value_to_string(c, row).unwrap())
                        .collect();
                    rows.push(fields.join("|"));
                }
            }
        }
        rows.sort();
        rows
    };
    (
        read(&manifest["tables"]["transactions"]["files"]),
        read(&manifest["rejects"]["transactions"]["files"]),
    )
}

/// Two ingest dates of the same source (every transaction of the second is a
/// `duplicate_row` of the first, whose copy must survive), preprocessed and
/// built into `url` with `extra` options; returns the preprocess report.
fn two_days(source: &Path, lake: &Path, url: &str, extra: &[&str]) -> serde_json::Value {
    for day in ["2024-03-01", "2024-03-02"] {
        support::feed(path_arg(source), path_arg(lake), day);
    }
    let mut args = vec!["preprocess", "--lake", path_arg(lake)];
    args.extend_from_slice(extra);
    let report = support::job_runner_ok(&args);
    for name in support::DATAMARTS {
        let mut args = vec![
            "datamart",
            name,
            "--lake",
            path_arg(lake),
            "--database-url",
            url,
        ];
        args.extend_from_slice(extra);
        support::job_runner_ok(&args);
    }
    report
}

fn stage<'a>(report: &'a serde_json::Value, table: &str) -> &'a serde_json::Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["table"] == table)
        .unwrap()
}

#[tokio::test]
async fn threads_are_honoured_and_change_nothing_in_silver_or_gold() {
    let (dir, source) = support::generated_source(20_000, 21);
    let expected = reference::gold(&[&source, &source], 10);
    let mut silvers = Vec::new();
    for threads in ["1", "3"] {
        let url = support::fresh_database(&format!("threads_{threads}")).await;
        let lake = dir.path().join(format!("lake-{threads}"));
        let report = two_days(&source, &lake, &url, &["--threads", threads]);
        assert_eq!(report["status"], "succeeded");
        support::assert_rows_accounted(&report);
        let resources = &report["resources"];
        assert_eq!(resources["threads"].as_u64(), threads.parse::<u64>().ok());
        assert_eq!(resources["threads_from"], "option");
        let transactions = stage(&report, "transactions");
        assert!(transactions["cpu_ms"].as_u64().is_some(), "{transactions}");
        assert!(transactions["cpu_per_wall"].as_f64().is_some());
        // The second day repeats the first: each row kept has a copy rejected.
        let kept = transactions["rows_written"].as_u64().unwrap();
        let copies = transactions["rejects"]["duplicate_row"].as_u64().unwrap();
        assert!(copies >= kept, "{transactions}");
        support::assert_gold_matches(&url, &expected).await;
        silvers.push(silver_rows(&lake));
    }
    assert!(!silvers[0].0.is_empty());
    assert_eq!(
        silvers[0], silvers[1],
        "silver differs between 1 and 3 threads"
    );
    // The earliest copy survives: every line of the second day that passed
    // the other rules is a duplicate (of a kept line, or of a line the first
    // day already had twice), and no line of the second day is kept.
    let copies = |day: &str| {
        silvers[0]
            .1
            .iter()
            .filter(|r| r.ends_with("|duplicate_row") && r.contains(&format!("|{day}|")))
            .count()
    };
    assert_eq!(
        copies("2024-03-02"),
        silvers[0].0.len() + copies("2024-03-01")
    );

    // The environment variable works too.
    let lake = dir.path().join("lake-env");
    support::feed(path_arg(&source), path_arg(&lake), "2024-03-01");
    let output = support::job_runner(
        &["preprocess", "--lake", path_arg(&lake)],
        &[("AURUM_THREADS", "2")],
    );
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["resources"]["threads"], 2);
}

#[tokio::test]
async fn a_small_memory_limit_spills_and_gives_the_same_silver_and_gold() {
    let (dir, source) = support::generated_source(150_000, 22);
    let expected = reference::gold(&[&source, &source], 10);

    let url = support::fresh_database("unlimited").await;
    let lake = dir.path().join("lake-unlimited");
    let unlimited = two_days(&source, &lake, &url, &["--threads", "2"]);
    assert_eq!(unlimited["resources"]["spilled_bytes"], 0);
    assert!(unlimited["resources"]["memory_limit_bytes"].is_null());
    support::assert_gold_matches(&url, &expected).await;
    let unlimited_silver = silver_rows(&lake);

    let url = support::fresh_database("limited").await;
    let lake = dir.path().join("lake-limited");
    let spill = dir.path().join("spill");
    let limited = two_days(
        &source,
        &lake,
        &url,
        &[
            "--threads",
            "2",
            // Past the batches in flight (about 36 MiB of the 38 MiB pool
            // of a 128 MiB limit with two threads), too little for every
            // fingerprint: later lines go to duplicate_row's bucket files.
            "--memory-limit",
            "128MiB",
            "--spill-dir",
            path_arg(&spill),
        ],
    );
    assert_eq!(limited["resources"]["memory_limit_bytes"], 128 << 20);
    assert_eq!(limited["resources"]["memory_limit_from"], "option");
    let spilled = stage(&limited, "transactions")["spilled_bytes"]
        .as_u64()
        .unwrap();
    assert!(spilled > 0, "nothing spilled: {limited}");
    assert_eq!(
        limited["resources"]["spilled_bytes"].as_u64(),
        Some(spilled)
    );
    support::assert_gold_matches(&url, &expected).await;
    assert_eq!(silver_rows(&lake), unlimited_silver);
    // Spill files are gone once the run is over.
    let left: Vec<_> = walk(&spill);
    assert!(left.is_empty(), "spill files left: {left:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_limit_too_small_fails_cleanly_naming_it_and_publishes_nothing() {
    let url = support::fresh_database("tiny_limit").await;
    let (dir, source) = support::generated_source(20_000, 23);
    let lake = dir.path().join("lake");
    let first = support::run(path_arg(&source), path_arg(&lake), &url, "2024-03-01");
    let snapshot = first["silver_snapshot_id"].as_str().unwrap().to_owned();
    let gold = support::gold_tables(&url).await;
    let manifest = std::fs::read(lake.join("silver/_snapshot.json")).unwrap();

    // The whole run: feed needs no query memory, preprocess does.
    let output = support::job_runner(
        &[
            "run",
            "--source",
            path_arg(&source),
            "--lake",
            path_arg(&lake),
            "--ingest-date",
            "2024-03-02",
            "--memory-limit",
            "1MiB",
        ],
        &[("DATABASE_URL", &url)],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the memory limit, 1.0 MiB (1048576 bytes, from --memory-limit"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing of it was published"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["status"], "failed");
    // The previous silver snapshot and gold tables stay, untouched.
    assert_eq!(
        std::fs::read(lake.join("silver/_snapshot.json")).unwrap(),
        manifest
    );
    assert_eq!(support::gold_tables(&url).await, gold);

    // A datamart alone under the same limit fails the same way, gold kept.
    let output = support::job_runner(
        &[
            "datamart",
            "customer-lifetime-value",
            "--lake",
            path_arg(&lake),
            "--memory-limit",
            "1MiB",
        ],
        &[("DATABASE_URL", &url)],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the memory limit, 1.0 MiB"), "{stderr}");
    assert_eq!(support::gold_tables(&url).await, gold);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["silver_snapshot_id"], snapshot.as_str());

    // A limit that is not a size is a configuration error.
    let output = support::job_runner(
        &[
            "preprocess",
            "--lake",
            path_arg(&lake),
            "--memory-limit",
            "lots",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(support::last_error_line(&output).contains("hint"));
}
