//! The job-runner on a real Apache Ballista cluster: a scheduler and two
//! executors of this project's own binary, started by the test command on
//! loopback (testenv/ballista.sh). `run --engine ballista://...` on the
//! generated dirty data must give the same silver and gold as the in-process
//! run, on a local lake and on the test HDFS; an executor killed in the middle
//! of the datamarts is survived by Ballista's task retry (docs/ballista.md).
//!
//! Needs AURUM_BALLISTA_URL and AURUM_BALLISTA_DIR (the cluster's folder, for
//! killing an executor), DATABASE_URL, and for the HDFS test AURUM_HDFS_URL and
//! HADOOP_CONF_DIR.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{gold_tables, job_runner, last_error_line, path_arg};

/// The tests share one cluster: the one that kills an executor runs alone
/// (an async lock: each test has its own runtime, and holds it across awaits).
static CLUSTER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The test cluster's scheduler, `ballista://127.0.0.1:PORT`.
fn engine() -> String {
    std::env::var("AURUM_BALLISTA_URL").expect(
        "AURUM_BALLISTA_URL is not set: these tests need a real Ballista cluster; run them with \
         `make test` (which starts one) or `eval \"$(testenv/ballista.sh start DIR)\"` and export \
         AURUM_BALLISTA_URL and AURUM_BALLISTA_DIR=DIR yourself",
    )
}

/// The cluster's folder (logs, pid files), for testenv/ballista.sh.
fn cluster_dir() -> PathBuf {
    PathBuf::from(std::env::var("AURUM_BALLISTA_DIR").expect(
        "AURUM_BALLISTA_DIR is not set: the executor test needs the folder given to \
         `testenv/ballista.sh start`",
    ))
}

fn ballista_sh(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testenv/ballista.sh");
    let status = Command::new(script)
        .args(args)
        .env(
            "AURUM_JOB_RUNNER_BIN",
            env!("CARGO_BIN_EXE_aurum-job-runner"),
        )
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "testenv/ballista.sh {args:?}: {status}");
}

/// How many jobs the scheduler has seen finish so far (its log says so once per job).
fn finished_jobs() -> usize {
    let log = std::fs::read_to_string(cluster_dir().join("logs/scheduler.log")).unwrap();
    log.lines().filter(|l| l.contains(FINISHED_JOB)).count()
}

/// What the scheduler logs when a job has succeeded.
const FINISHED_JOB: &str = "Job finished successfully";

/// `run` of `source` into `lake` and `database_url`, with `--engine` when given.
fn run(source: &str, lake: &str, database_url: &str, engine: Option<&str>) -> serde_json::Value {
    let engine_args = engine.map(|engine| ["--engine", engine]);
    support::run_with(
        source,
        lake,
        database_url,
        "2024-03-01",
        engine_args.as_ref().map_or(&[][..], |args| &args[..]),
    )
}

/// Every silver row of a published snapshot, per table, as sorted text: the
/// Parquet files the manifest names, read with DataFusion.
async fn silver_rows(lake: &str) -> Vec<(String, Vec<String>)> {
    use datafusion::prelude::{ParquetReadOptions, SessionContext};
    let lake = aurum_job_runner::storage::Storage::open(lake, false).unwrap();
    let snapshot = aurum_job_runner::snapshot::Snapshot::require(&lake)
        .await
        .unwrap();
    let ctx = SessionContext::new();
    lake.register(&ctx);
    let mut tables = Vec::new();
    for (table, files) in &snapshot.tables {
        let mut rows = Vec::new();
        for file in &files.files {
            let url = lake.object_url(&lake.path(file));
            let batches = ctx
                .read_parquet(url.as_str(), ParquetReadOptions::default())
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string();
            rows.extend(
                text.lines()
                    .skip(3)
                    .filter(|l| l.starts_with('|'))
                    .map(str::to_owned),
            );
        }
        rows.sort();
        tables.push((table.clone(), rows));
    }
    tables
}

#[tokio::test]
async fn run_on_ballista_gives_the_in_process_silver_and_gold_on_a_local_lake() {
    let _cluster = CLUSTER.read().await;
    let (dir, source) = support::generated_source(20_000, 7);

    let local_url = support::fresh_database("ballista_ref").await;
    let local_lake = dir.path().join("lake-in-process");
    run(path_arg(&source), path_arg(&local_lake), &local_url, None);

    let url = support::fresh_database("ballista_local").await;
    let lake = dir.path().join("lake-ballista");
    let jobs_before = finished_jobs();
    let started = Instant::now();
    let report = run(path_arg(&source), path_arg(&lake), &url, Some(&engine()));
    eprintln!("run on Ballista: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(report["status"], "succeeded");
    support::assert_rows_accounted(&report);
    // The datamarts' queries really were Ballista jobs (totals, row counts,
    // keys and the four datamarts: more than a dozen).
    let jobs = finished_jobs() - jobs_before;
    assert!(
        jobs >= 12,
        "only {jobs} Ballista jobs finished during the run"
    );

    let gold = gold_tables(&url).await;
    assert!(gold.iter().all(|t| !t.is_empty()));
    assert_eq!(gold, gold_tables(&local_url).await);
    let expected = support::reference::gold(&[&source], 10);
    support::assert_gold_matches(&url, &expected).await;
    assert_eq!(
        silver_rows(path_arg(&lake)).await,
        silver_rows(path_arg(&local_lake)).await
    );
}

#[tokio::test]
async fn run_on_ballista_gives_the_in_process_silver_and_gold_on_hdfs() {
    let _cluster = CLUSTER.read().await;
    let hdfs = std::env::var("AURUM_HDFS_URL")
        .expect("AURUM_HDFS_URL is not set: start testenv/hdfs.sh (make test does)")
        .trim_end_matches('/')
        .to_owned();
    let (dir, source) = support::generated_source(20_000, 5);
    let local_url = support::fresh_database("ballista_hdfs_ref").await;
    let local_lake = dir.path().join("lake");
    run(path_arg(&source), path_arg(&local_lake), &local_url, None);

    let lake = format!("{hdfs}/aurum/test-ballista-{}/lake", std::process::id());
    let url = support::fresh_database("ballista_hdfs").await;
    let jobs_before = finished_jobs();
    let report = run(path_arg(&source), &lake, &url, Some(&engine()));
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["lake"], lake.as_str());
    assert!(finished_jobs() - jobs_before >= 12);
    assert_eq!(gold_tables(&url).await, gold_tables(&local_url).await);
    assert_eq!(
        silver_rows(&lake).await,
        silver_rows(path_arg(&local_lake)).await
    );
    let client = hdfs_native::ClientBuilder::new()
        .with_url(&hdfs)
        .build()
        .unwrap();
    let _ = client
        .delete(
            &format!("/aurum/test-ballista-{}", std::process::id()),
            true,
        )
        .await;
}

#[tokio::test]
async fn an_unreachable_scheduler_fails_the_datamarts_and_publishes_nothing() {
    let (dir, source) = support::generated_source(2000, 3);
    let url = support::fresh_database("ballista_down").await;
    let lake = dir.path().join("lake");
    // A port nothing listens on (the test cluster's own range starts at 29500).
    let output = job_runner(
        &[
            "run",
            "--source",
            path_arg(&source),
            "--lake",
            path_arg(&lake),
            "--database-url",
            &url,
            "--engine",
            "ballista://127.0.0.1:9",
        ],
        &[],
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let error = last_error_line(&output);
    // The first query of the datamarts names the scheduler it could not reach.
    assert!(
        error.contains("127.0.0.1:9") && error.contains("Connection refused"),
        "{error}"
    );
    let published = support::connect(&url)
        .await
        .query_one(
            "SELECT count(*) FROM gold_runs WHERE status = 'succeeded'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(published, 0);

    // A bad --engine is a usage error.
    let output = job_runner(
        &[
            "datamart",
            "monthly-sales",
            "--lake",
            "x",
            "--database-url",
            &url,
            "--engine",
            "spark://x:1",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
}

/// Waits until `log` has a line containing `needle` after byte `from`.
fn wait_for_log(log: &Path, from: usize, needle: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let text = std::fs::read(log).unwrap_or_default();
        if text.len() > from && String::from_utf8_lossy(&text[from..]).contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[tokio::test]
async fn an_executor_killed_during_the_datamarts_is_survived_by_task_retry() {
    let _cluster = CLUSTER.write().await;
    let dir = cluster_dir();
    let (tmp, source) = support::generated_source(300_000, 13);
    let lake = tmp.path().join("lake");
    let url = support::fresh_database("ballista_kill").await;
    // The gold before: an in-process run.
    run(path_arg(&source), path_arg(&lake), &url, None);
    let before = gold_tables(&url).await;

    // The four datamarts again on Ballista; executor 1 is killed as soon as
    // it runs a task of this run.
    let executor_log = dir.join("logs/executor1.log");
    let offset = std::fs::metadata(&executor_log).unwrap().len() as usize;
    let scheduler_log = dir.join("logs/scheduler.log");
    let scheduler_offset = std::fs::metadata(&scheduler_log).unwrap().len() as usize;
    let child = Command::new(env!("CARGO_BIN_EXE_aurum-job-runner"))
        .args([
            "datamart",
            "customer-lifetime-value",
            "--lake",
            path_arg(&lake),
            "--database-url",
            &url,
            "--engine",
            &engine(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let saw_task = wait_for_log(
        &executor_log,
        offset,
        "Execute task",
        Duration::from_secs(60),
    );
    ballista_sh(&["kill-executor", dir.to_str().unwrap(), "1"]);
    assert!(saw_task, "executor 1 never ran a task of the run");
    let killed_after = started.elapsed();
    let output = child.wait_with_output().unwrap();
    let took = started.elapsed();
    eprintln!(
        "executor 1 killed {:.1} s into the datamart run; the run ended {:.1} s in: {}",
        killed_after.as_secs_f64(),
        took.as_secs_f64(),
        output.status
    );
    // The kill hit a live executor: the scheduler dropped it as lost.
    assert!(wait_for_log(
        &scheduler_log,
        scheduler_offset,
        "Removing executor",
        Duration::from_secs(1)
    ));
    // Executor 1 back for the other tests (the scheduler forgets the dead one
    // by itself).
    ballista_sh(&["start-executor", dir.to_str().unwrap(), "1"]);

    // Documented behaviour (docs/ballista.md): the scheduler takes the killed
    // executor as lost and runs its tasks again on the other one, so the run
    // succeeds with the same gold.
    assert!(
        output.status.success(),
        "the run did not survive the killed executor: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(gold_tables(&url).await, before);
}
