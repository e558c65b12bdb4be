//! The job-runner on a real Apache Ballista cluster: a scheduler and two
//! executors of this project's own binary, started by the test command on
//! loopback (testenv/ballista.sh). `run --engine ballista://...` on the
//! generated dirty data must give the same silver and gold as the in-process
//! run (preprocess of transactions and datamarts on the executors), on a
//! local lake and on the test HDFS; an executor killed in the middle of a
//! run is survived by Ballista's task retry (docs/ballista.md).
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

/// Every silver row and every reject (with its reason) of a published
/// snapshot, per table, as sorted text, after the files' schema: the Parquet
/// files the manifest names, read with DataFusion.
async fn silver_rows(lake: &str) -> Vec<(String, Vec<String>)> {
    use datafusion::prelude::{ParquetReadOptions, SessionContext};
    let lake = aurum_job_runner::storage::Storage::open(lake, false).unwrap();
    let snapshot = aurum_job_runner::snapshot::Snapshot::require(&lake)
        .await
        .unwrap();
    let ctx = SessionContext::new();
    lake.register(&ctx);
    let mut tables = Vec::new();
    let all = snapshot.tables.iter().map(|(t, f)| (t.clone(), f)).chain(
        snapshot
            .rejects
            .iter()
            .map(|(t, f)| (format!("rejects of {t}"), f)),
    );
    for (table, files) in all {
        let mut rows = Vec::new();
        for file in &files.files {
            let url = lake.object_url(&lake.path(file));
            let frame = ctx
                .read_parquet(url.as_str(), ParquetReadOptions::default())
                .await
                .unwrap();
            // Names, types and NOT NULL as the in-process path writes them.
            rows.push(format!("schema {:?}", frame.schema().as_arrow()));
            let batches = frame.collect().await.unwrap();
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
        rows.dedup_by(|a, b| a.starts_with("schema ") && a == b);
        tables.push((table, rows));
    }
    tables
}

/// The report's preprocess stage of transactions.
fn transactions_preprocess(report: &serde_json::Value) -> &serde_json::Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "preprocess" && s["table"] == "transactions")
        .unwrap()
}

/// The transactions' preprocess of `report` ran on the cluster and counted
/// what `reference` (an in-process run) counted, reason by reason.
fn assert_preprocessed_on_ballista(report: &serde_json::Value, reference: &serde_json::Value) {
    let (stage, local) = (
        transactions_preprocess(report),
        transactions_preprocess(reference),
    );
    assert_eq!(stage["engine"], engine().as_str());
    assert!(local.get("engine").is_none());
    for figure in ["rows_read", "rows_written", "rows_rejected", "rejects"] {
        assert_eq!(stage[figure], local[figure], "{figure}");
    }
    assert!(stage["rejects"]["duplicate_row"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn run_on_ballista_gives_the_in_process_silver_and_gold_on_a_local_lake() {
    let _cluster = CLUSTER.read().await;
    let (dir, source) = support::generated_source(20_000, 7);
    // Three ingest dates: another source first, then this one twice (every
    // line of the last ingest a copy of an earlier one: the earliest stays).
    let earlier = dir.path().join("earlier");
    support::generate(&earlier, 5_000, 8);
    let local_lake = dir.path().join("lake-in-process");
    let lake = dir.path().join("lake-ballista");
    for l in [&local_lake, &lake] {
        support::feed(path_arg(&earlier), path_arg(l), "2024-02-01");
        support::feed(path_arg(&source), path_arg(l), "2024-02-15");
    }

    let local_url = support::fresh_database("ballista_ref").await;
    let reference = run(path_arg(&source), path_arg(&local_lake), &local_url, None);

    let url = support::fresh_database("ballista_local").await;
    let jobs_before = finished_jobs();
    let started = Instant::now();
    let report = run(path_arg(&source), path_arg(&lake), &url, Some(&engine()));
    eprintln!("run on Ballista: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(report["status"], "succeeded");
    support::assert_rows_accounted(&report);
    // Preprocess of transactions (writing silver, writing the rejects,
    // counting them) and the datamarts' queries (totals, row counts, keys and
    // the four datamarts) really were Ballista jobs.
    let jobs = finished_jobs() - jobs_before;
    assert!(
        jobs >= 15,
        "only {jobs} Ballista jobs finished during the run"
    );
    assert_preprocessed_on_ballista(&report, &reference);

    let gold = gold_tables(&url).await;
    assert!(gold.iter().all(|t| !t.is_empty()));
    assert_eq!(gold, gold_tables(&local_url).await);
    let expected = support::reference::gold(&[&earlier, &source, &source], 10);
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
    let reference = run(path_arg(&source), path_arg(&local_lake), &local_url, None);

    let lake = format!("{hdfs}/aurum/test-ballista-{}/lake", std::process::id());
    let url = support::fresh_database("ballista_hdfs").await;
    let jobs_before = finished_jobs();
    let report = run(path_arg(&source), &lake, &url, Some(&engine()));
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["lake"], lake.as_str());
    assert!(finished_jobs() - jobs_before >= 15);
    // The executors wrote silver into HDFS.
    assert_preprocessed_on_ballista(&report, &reference);
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
async fn an_unreachable_scheduler_fails_the_run_and_publishes_nothing() {
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
    // The first Ballista query (preprocess's) names the scheduler it could not reach.
    assert!(
        error.contains("127.0.0.1:9") && error.contains("Connection refused"),
        "{error}"
    );
    // No silver was published.
    let opened = aurum_job_runner::storage::Storage::open(path_arg(&lake), false).unwrap();
    assert!(
        aurum_job_runner::snapshot::Snapshot::current(&opened)
            .await
            .unwrap()
            .is_none()
    );
    // Nor gold: the run stopped before the datamarts (no gold table, no
    // gold_runs row).
    let gold = support::connect(&url)
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'gold%'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(gold, 0);

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
    wait_for_logs(&[(log.to_owned(), from)], needle, timeout).is_some()
}

/// Waits until one of `logs` has a line containing `needle` after its byte
/// offset; returns which.
fn wait_for_logs(logs: &[(PathBuf, usize)], needle: &str, timeout: Duration) -> Option<usize> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        for (i, (log, from)) in logs.iter().enumerate() {
            let text = std::fs::read(log).unwrap_or_default();
            if text.len() > *from && String::from_utf8_lossy(&text[*from..]).contains(needle) {
                return Some(i);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The size of a file (where new log lines will start).
fn log_end(log: &Path) -> usize {
    std::fs::metadata(log).unwrap().len() as usize
}

#[tokio::test]
async fn an_executor_killed_during_a_run_is_survived_by_task_retry() {
    let _cluster = CLUSTER.write().await;
    let dir = cluster_dir();
    let (tmp, source) = support::generated_source(300_000, 13);
    let lake = tmp.path().join("lake");
    let url = support::fresh_database("ballista_kill").await;
    // Silver and gold before: an in-process run.
    run(path_arg(&source), path_arg(&lake), &url, None);
    let gold_before = gold_tables(&url).await;
    let silver_before = silver_rows(path_arg(&lake)).await;

    // The same run again on Ballista (the feed replaces the same ingest
    // date); the executor that runs the first task of this run is killed:
    // it is in preprocess of transactions, the run's first Ballista job.
    let executor_logs: Vec<(PathBuf, usize)> = (1..=2)
        .map(|n| {
            let log = dir.join(format!("logs/executor{n}.log"));
            let end = log_end(&log);
            (log, end)
        })
        .collect();
    let scheduler_log = dir.join("logs/scheduler.log");
    let scheduler_offset = log_end(&scheduler_log);
    let child = Command::new(env!("CARGO_BIN_EXE_aurum-job-runner"))
        .args([
            "run",
            "--source",
            path_arg(&source),
            "--lake",
            path_arg(&lake),
            "--database-url",
            &url,
            "--ingest-date",
            "2024-03-01",
            "--engine",
            &engine(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let busy = wait_for_logs(&executor_logs, "Execute task", Duration::from_secs(180))
        .expect("no executor ran a task of the run");
    let victim = (busy + 1).to_string();
    ballista_sh(&["kill-executor", dir.to_str().unwrap(), &victim]);
    let killed_after = started.elapsed();

    let output = child.wait_with_output().unwrap();
    let took = started.elapsed();
    eprintln!(
        "executor {victim} killed {:.1} s into the run; the run ended {:.1} s in: {}",
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
    // The kill hit preprocess: the tasks the scheduler ran again (or whose
    // output it made again) were those of the run's first job, which writes
    // silver transactions.
    let log = std::fs::read_to_string(&scheduler_log).unwrap()[scheduler_offset..].to_owned();
    let first = log
        .split("Submitting execution graph for job_id [")
        .nth(1)
        .unwrap();
    let (job, plan) = first.split_once(']').unwrap();
    assert!(
        plan.lines().take(3).any(|l| l.contains("DataSinkExec")),
        "{plan}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("Reset") && l.contains(&format!("job/stage {job}/"))),
        "no task of job {job} ran again"
    );
    // The executor back for the other tests (the scheduler forgets the dead
    // one by itself).
    ballista_sh(&["start-executor", dir.to_str().unwrap(), &victim]);

    // Documented behaviour (docs/ballista.md): the scheduler takes the killed
    // executor as lost and runs its tasks again on the other one, so the run
    // succeeds with the same silver, rejects and gold.
    assert!(
        output.status.success(),
        "the run did not survive the killed executor: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        transactions_preprocess(&report)["engine"],
        engine().as_str()
    );
    assert_eq!(silver_rows(path_arg(&lake)).await, silver_before);
    assert_eq!(gold_tables(&url).await, gold_before);
}
