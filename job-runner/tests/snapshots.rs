//! Datamarts reading a silver snapshot while `preprocess` replaces it, through
//! the real binary on a local lake and a real PostgreSQL: a datamart run either
//! publishes the right table or fails cleanly and keeps the previous one, and
//! replaced snapshots' files stay until no run can still be reading them.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::race::{expected, race};
use support::{GOLD_TABLES, path_arg, reference};

/// The silver snapshot manifest of a local lake.
fn manifest(lake: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(lake.join("silver/_snapshot.json")).unwrap()).unwrap()
}

/// The files under the lake's `silver/` folder (relative, sorted), hidden ones left out.
fn silver_files(lake: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if !path.file_name().unwrap().to_str().unwrap().starts_with('.') {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned(),
                );
            }
        }
    }
    let mut files = Vec::new();
    walk(&lake.join("silver"), lake, &mut files);
    files.sort();
    files
}

fn files_of(files: &[String], snapshot_id: &str) -> usize {
    files.iter().filter(|f| f.contains(snapshot_id)).count()
}

fn preprocess(lake: &Path, extra: &[&str]) -> String {
    let report =
        support::job_runner_ok(&[&["preprocess", "--lake", path_arg(lake)][..], extra].concat());
    report["silver_snapshot_id"].as_str().unwrap().to_owned()
}

async fn succeeded_runs(client: &tokio_postgres::Client, datamart: &str) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM gold_runs WHERE datamart = $1 AND status = 'succeeded'",
            &[&datamart],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_missing_snapshot_file_fails_the_datamart_and_publishes_nothing() {
    let url = support::fresh_database("missing_file").await;
    let (dir, source) = support::generated_source(1500, 21);
    let lake = dir.path().join("lake");
    support::run(path_arg(&source), path_arg(&lake), &url, "2024-03-01");
    let client = support::connect(&url).await;
    let before = support::gold_tables(&url).await;

    // A dimension file the snapshot names goes away (the race, frozen).
    let customers = manifest(&lake)["tables"]["customers"]["files"][0]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_file(lake.join(&customers)).unwrap();
    // top-products first: read with an empty customers table, it used to
    // publish only its ALL scope and report success.
    for datamart in [
        "top-products",
        "sales-country-year",
        "monthly-sales",
        "customer-lifetime-value",
    ] {
        let output = support::job_runner(
            &[
                "datamart",
                datamart,
                "--lake",
                path_arg(&lake),
                "--database-url",
                &url,
            ],
            &[],
        );
        let line = support::last_error_line(&output);
        assert_eq!(output.status.code(), Some(1), "{datamart}: {line}");
        assert!(
            line.contains("is missing") && line.contains(&customers),
            "{datamart}: {line}"
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["status"], "failed", "{datamart}");
        assert_eq!(succeeded_runs(&client, datamart).await, 1, "{datamart}");
    }
    assert_eq!(support::gold_tables(&url).await, before);
}

#[tokio::test]
async fn a_silver_file_that_reads_short_fails_the_datamart() {
    let url = support::fresh_database("short_file").await;
    let (dir, source) = support::generated_source(800, 22);
    let lake = dir.path().join("lake");
    support::run(path_arg(&source), path_arg(&lake), &url, "2024-03-01");
    let before = support::gold_tables(&url).await;
    // Another snapshot's products file in place of this one's: readable, but
    // not the rows the manifest recorded.
    let products = manifest(&lake)["tables"]["products"]["files"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let (other_dir, other_source) = support::generated_source(100, 23);
    let other_lake = other_dir.path().join("lake");
    support::feed(path_arg(&other_source), path_arg(&other_lake), "2024-03-01");
    preprocess(&other_lake, &[]);
    let other = manifest(&other_lake)["tables"]["products"]["files"][0]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::copy(other_lake.join(other), lake.join(&products)).unwrap();
    let output = support::job_runner(
        &[
            "datamart",
            "top-products",
            "--lake",
            path_arg(&lake),
            "--database-url",
            &url,
        ],
        &[],
    );
    let line = support::last_error_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(line.contains("silver table products"), "{line}");
    assert_eq!(support::gold_tables(&url).await, before);
}

#[tokio::test]
async fn replaced_snapshots_are_kept_two_publishes_and_the_grace_period() {
    let (dir, source) = support::generated_source(300, 24);
    let lake = dir.path().join("lake");
    support::feed(path_arg(&source), path_arg(&lake), "2024-03-01");
    let first = preprocess(&lake, &[]);
    let per_snapshot = files_of(&silver_files(&lake), &first);
    assert!(per_snapshot >= 8, "{:?}", silver_files(&lake));
    // A file no snapshot names: fresh (another run may be writing it) and old
    // (a run that died long ago).
    let fresh_orphan = "silver/countries/part-fresh-orphan.parquet";
    let old_orphan = "silver/countries/part-old-orphan.parquet";
    for orphan in [fresh_orphan, old_orphan] {
        std::fs::write(lake.join(orphan), b"not parquet").unwrap();
    }
    std::fs::File::options()
        .write(true)
        .open(lake.join(old_orphan))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();

    // With the default grace period (an hour), every replaced snapshot stays.
    let second = preprocess(&lake, &[]);
    let third = preprocess(&lake, &[]);
    let files = silver_files(&lake);
    for id in [&first, &second, &third] {
        assert_eq!(files_of(&files, id), per_snapshot, "{id}: {files:?}");
    }
    assert!(files.iter().any(|f| f == fresh_orphan), "{files:?}");
    assert!(!files.iter().any(|f| f == old_orphan), "{files:?}");
    let retained: Vec<String> = manifest(&lake)["retained"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["snapshot_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(retained, [second.clone(), first.clone()]);

    // Without a grace period, only the snapshot just replaced stays with the new one.
    let fourth = preprocess(&lake, &["--snapshot-grace-secs", "0"]);
    let files = silver_files(&lake);
    assert_eq!(files_of(&files, &first), 0, "{files:?}");
    assert_eq!(files_of(&files, &second), 0, "{files:?}");
    assert_eq!(files_of(&files, &third), per_snapshot, "{files:?}");
    assert_eq!(files_of(&files, &fourth), per_snapshot, "{files:?}");
    assert!(!files.iter().any(|f| f.contains("orphan")), "{files:?}");
    assert_eq!(manifest(&lake)["retained"][0]["snapshot_id"], third);
}

#[tokio::test]
async fn datamarts_racing_preprocess_publish_only_right_tables() {
    let url = support::fresh_database("race").await;
    let (dir, source) = support::generated_source(30_000, 25);
    let lake = dir.path().join("lake");
    support::run(path_arg(&source), path_arg(&lake), &url, "2024-03-01");
    let gold = reference::gold(&[&source], 10);
    for (index, table) in support::gold_tables(&url).await.iter().enumerate() {
        assert_eq!(table, expected(&gold, index), "{}", GOLD_TABLES[index]);
    }

    // As deployed (the default grace period): every run reads a whole snapshot.
    let deployed = race(
        path_arg(&lake),
        &url,
        &gold,
        &[],
        8,
        Duration::from_secs(120),
    )
    .await;
    eprintln!("default grace period: {deployed:?}");
    assert!(deployed.publishes >= 2, "{deployed:?}");
    assert_eq!(deployed.failed_cleanly, 0, "{deployed:?}");

    // Without a grace period, files go while runs read them: such a run must
    // fail cleanly, never publish what it could not read.
    let tight = race(
        path_arg(&lake),
        &url,
        &gold,
        &["--snapshot-grace-secs", "0"],
        8,
        Duration::from_secs(120),
    )
    .await;
    eprintln!("no grace period: {tight:?}");
    assert!(tight.publishes >= 2, "{tight:?}");
    assert!(tight.succeeded > 0, "{tight:?}");
}
