//! The job-runner on a real HDFS (a NameNode and two DataNodes started by the
//! test command, see testenv/hdfs.sh): the same gold as on a local lake, atomic
//! publication seen by a concurrent reader, datamarts racing preprocess, a
//! DataNode dying in the middle of a large write, and clear failures.
//!
//! Needs AURUM_HDFS_URL, HADOOP_CONF_DIR (the cluster's client configuration),
//! AURUM_HDFS_DIR (the cluster's folder, for killing a DataNode) and DATABASE_URL.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]
// The tests share one cluster: the one that kills a DataNode takes this lock
// exclusively, the others shared, across awaits (each test has its own runtime).
#![allow(clippy::await_holding_lock)]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdfs_native::{Client, ClientBuilder, WriteOptions};
use support::race::{expected, race};
use support::{GOLD_TABLES, gold_tables, last_error_line, path_arg, reference};

static CLUSTER: RwLock<()> = RwLock::new(());

fn shared_cluster() -> RwLockReadGuard<'static, ()> {
    CLUSTER.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive_cluster() -> RwLockWriteGuard<'static, ()> {
    CLUSTER.write().unwrap_or_else(|e| e.into_inner())
}

/// The test HDFS's URL (`hdfs://127.0.0.1:port`), started by the test command.
fn hdfs_url() -> String {
    std::env::var("AURUM_HDFS_URL")
        .expect(
            "AURUM_HDFS_URL is not set: these tests need a real HDFS; run them with `make test` \
             (which starts one) or `eval \"$(testenv/hdfs.sh start DIR)\"` and export \
             AURUM_HDFS_URL, HADOOP_CONF_DIR and AURUM_HDFS_DIR=DIR yourself",
        )
        .trim_end_matches('/')
        .to_owned()
}

/// The cluster's folder, for testenv/hdfs.sh kill-datanode and start-datanode.
fn hdfs_dir() -> String {
    std::env::var("AURUM_HDFS_DIR").expect(
        "AURUM_HDFS_DIR is not set: the DataNode test needs the folder given to `testenv/hdfs.sh start`",
    )
}

/// A fresh lake folder under /aurum (which the test user owns): its HDFS path.
async fn fresh_lake(client: &Client, name: &str) -> String {
    let path = format!("/aurum/test-{name}-{}", std::process::id());
    let _ = client.delete(&path, true).await;
    path
}

fn client() -> Client {
    ClientBuilder::new()
        .with_url(hdfs_url())
        .build()
        .expect("an HDFS client for the test cluster")
}

/// Copies a local folder's files to an HDFS folder.
async fn upload(client: &Client, local: &Path, hdfs: &str) {
    client.mkdirs(hdfs, 0o755, true).await.unwrap();
    for entry in std::fs::read_dir(local).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        let target = format!("{hdfs}/{}", entry.file_name().to_str().unwrap());
        let mut writer = client
            .create(&target, WriteOptions::default().overwrite(true))
            .await
            .unwrap();
        writer.write(Bytes::from(bytes)).await.unwrap();
        writer.close().await.unwrap();
    }
}

/// A whole HDFS file, or None when it does not exist. A file replaced (renamed
/// over) while being read can lose its blocks under the reader: read again.
async fn read(client: &Client, path: &str) -> Option<Bytes> {
    let mut attempt = 0;
    loop {
        let result = match client.read(path).await {
            Ok(reader) => reader.read_range(0, reader.file_length()).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(bytes) => return Some(bytes),
            Err(hdfs_native::HdfsError::FileNotFound(_)) => return None,
            // Opening a file reports a missing one as the NameNode's exception.
            Err(hdfs_native::HdfsError::RPCError(class, _))
                if class.ends_with("FileNotFoundException") =>
            {
                return None;
            }
            Err(e) if attempt >= 3 => panic!("reading {path}: {e}"),
            Err(_) => attempt += 1,
        }
    }
}

async fn exists(client: &Client, path: &str) -> bool {
    match client.get_file_info(path).await {
        Ok(_) => true,
        Err(hdfs_native::HdfsError::FileNotFound(_)) => false,
        Err(e) => panic!("{path}: {e}"),
    }
}

/// Every file (not directory) under an HDFS folder.
async fn files_under(client: &Client, path: &str) -> Vec<String> {
    use futures::TryStreamExt;
    match client
        .list_status_iter(path, true)
        .into_stream()
        .try_collect::<Vec<_>>()
        .await
    {
        Ok(list) => list
            .into_iter()
            .filter(|s| !s.isdir)
            .map(|s| s.path)
            .collect(),
        Err(hdfs_native::HdfsError::FileNotFound(_)) => Vec::new(),
        Err(e) => panic!("listing {path}: {e}"),
    }
}

/// Rows of a complete Parquet file; panics on a partial or corrupt one.
fn parquet_rows(bytes: Bytes, what: &str) -> u64 {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap_or_else(|e| panic!("{what} is not a complete Parquet file: {e}"))
        .build()
        .unwrap();
    reader
        .map(|batch| batch.unwrap_or_else(|e| panic!("{what}: {e}")).num_rows() as u64)
        .sum()
}

/// Writes a small file and backdates it by two hours, like one left by a run that died.
async fn stale_file(client: &Client, path: &str) {
    let mut writer = client
        .create(path, WriteOptions::default().overwrite(true))
        .await
        .unwrap();
    writer
        .write(Bytes::from_static(b"PAR1 half"))
        .await
        .unwrap();
    writer.close().await.unwrap();
    let old = (chrono::Utc::now() - chrono::Duration::hours(2)).timestamp_millis() as u64;
    client.set_times(path, old, old).await.unwrap();
}

#[tokio::test]
async fn full_run_on_hdfs_gives_the_same_gold_as_on_a_local_lake() {
    let _cluster = shared_cluster();
    let client = client();
    let (dir, source) = support::generated_source(4000, 11);

    // The local-folder run, as the reference.
    let local_url = support::fresh_database("hdfs_local").await;
    let local_lake = dir.path().join("lake");
    support::run(
        path_arg(&source),
        path_arg(&local_lake),
        &local_url,
        "2024-03-01",
    );

    // The same source files on HDFS, and a lake there.
    let root = fresh_lake(&client, "full_run").await;
    let hdfs_source = format!("{root}/source");
    upload(&client, &source, &hdfs_source).await;
    let lake = format!("{root}/lake");
    let lake_url = format!("{}{lake}", hdfs_url());
    // What a run that died left behind: a staging folder and a hidden
    // unfinished write, both two hours old; and a fresh hidden write of a run
    // still going, which must be neither read nor deleted.
    let dead_staging =
        format!("{lake}/_staging/20240101T000000Z-dead00/raw/transactions/data.parquet");
    let dead_tmp = format!("{lake}/silver/countries/.part-dead.parquet.tmp.1");
    let live_tmp = format!("{lake}/raw/countries/ingest_date=2024-03-01/.data.parquet.tmp.1");
    stale_file(&client, &dead_staging).await;
    stale_file(&client, &dead_tmp).await;
    let mut writer = client
        .create(&live_tmp, WriteOptions::default())
        .await
        .unwrap();
    writer
        .write(Bytes::from_static(b"not parquet"))
        .await
        .unwrap();
    writer.close().await.unwrap();

    let url = support::fresh_database("hdfs_full").await;
    let started = Instant::now();
    let report = support::run(
        &format!("{}{hdfs_source}", hdfs_url()),
        &lake_url,
        &url,
        "2024-03-01",
    );
    eprintln!("run on HDFS: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["lake"], lake_url.as_str());
    support::assert_rows_accounted(&report);
    assert_eq!(report["stages"].as_array().unwrap().len(), 12);

    // Same gold, value for value, as the local run and as the reference.
    let on_hdfs = gold_tables(&url).await;
    assert_eq!(on_hdfs, gold_tables(&local_url).await);
    let expected = support::reference::gold(&[&source], 10);
    assert_eq!(on_hdfs[0], expected.sales_country_year);
    assert_eq!(on_hdfs[3], expected.customer_lifetime_value);

    // The contract's layout, nothing left in staging, the dead run cleaned up.
    assert!(
        exists(
            &client,
            &format!("{lake}/raw/transactions/ingest_date=2024-03-01/data.parquet")
        )
        .await
    );
    assert!(exists(&client, &format!("{lake}/silver/_snapshot.json")).await);
    assert!(
        !exists(&client, &dead_staging).await,
        "stale staging deleted"
    );
    assert!(
        !exists(&client, &dead_tmp).await,
        "stale unfinished write deleted"
    );
    assert!(
        exists(&client, &live_tmp).await,
        "a fresh unfinished write is left alone"
    );
    let staging = files_under(&client, &format!("{lake}/_staging")).await;
    assert!(staging.is_empty(), "left in staging: {staging:?}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &read(&client, &format!("{lake}/silver/_snapshot.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["snapshot_id"], report["silver_snapshot_id"]);
    let tx_files = manifest["tables"]["transactions"]["files"]
        .as_array()
        .unwrap();
    assert!(
        tx_files
            .iter()
            .any(|f| f.as_str().unwrap().starts_with("silver/transactions/year="))
    );

    // Each command on its own, again: preprocess replaces the snapshot, the
    // datamarts read it back from HDFS.
    let again = support::job_runner_ok(&["preprocess", "--lake", &lake_url]);
    assert_ne!(again["silver_snapshot_id"], report["silver_snapshot_id"]);
    support::build_datamarts(&lake_url, &url);
    assert_eq!(gold_tables(&url).await, on_hdfs);
    // The replaced snapshot's files stay (a datamart run may still read them)...
    let old_id = report["silver_snapshot_id"].as_str().unwrap();
    let kept = |files: &[String], id: &str| files.iter().filter(|f| f.contains(id)).count();
    let silver: Vec<String> = files_under(&client, &format!("{lake}/silver")).await;
    let per_snapshot = kept(&silver, old_id);
    assert!(per_snapshot >= 8, "{silver:?}");
    let again_id = again["silver_snapshot_id"].as_str().unwrap();
    assert_eq!(kept(&silver, again_id), per_snapshot, "{silver:?}");
    // ...until it is two publishes old and its grace period is over (none here).
    let third = support::job_runner_ok(&[
        "preprocess",
        "--lake",
        &lake_url,
        "--snapshot-grace-secs",
        "0",
    ]);
    let silver: Vec<String> = files_under(&client, &format!("{lake}/silver")).await;
    assert_eq!(kept(&silver, old_id), 0, "{silver:?}");
    assert_eq!(kept(&silver, again_id), per_snapshot, "{silver:?}");
    let third_id = third["silver_snapshot_id"].as_str().unwrap();
    assert_eq!(kept(&silver, third_id), per_snapshot, "{silver:?}");
    let _ = client.delete(&root, true).await;
}

#[tokio::test]
async fn a_concurrent_reader_never_sees_a_missing_or_partial_file() {
    let _cluster = shared_cluster();
    let client = client();
    let (_dir, source) = support::generated_source(3000, 3);
    let root = fresh_lake(&client, "reader").await;
    let lake = format!("{root}/lake");
    let lake_url = format!("{}{lake}", hdfs_url());
    support::feed(path_arg(&source), &lake_url, "2024-05-01");
    support::job_runner_ok(&["preprocess", "--lake", &lake_url]);

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, reads, lake) = (Arc::clone(&stop), Arc::clone(&reads), lake.clone());
        tokio::spawn(async move {
            let client = self::client();
            let manifest_path = format!("{lake}/silver/_snapshot.json");
            let raw = format!("{lake}/raw/transactions/ingest_date=2024-05-01/data.parquet");
            let mut snapshots = std::collections::BTreeSet::new();
            while !stop.load(Ordering::SeqCst) {
                // The raw partition is always there and always whole.
                let bytes = read(&client, &raw)
                    .await
                    .expect("the raw partition is never missing");
                assert!(parquet_rows(bytes, &raw) > 0);
                // The manifest is always there and names complete files with its row counts.
                let manifest_bytes = read(&client, &manifest_path)
                    .await
                    .expect("the manifest is never missing");
                let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes)
                    .unwrap_or_else(|e| panic!("a partial manifest: {e}"));
                snapshots.insert(manifest["snapshot_id"].as_str().unwrap().to_owned());
                'tables: for (table, files) in manifest["tables"].as_object().unwrap() {
                    let mut rows = 0;
                    for file in files["files"].as_array().unwrap() {
                        let path = format!("{lake}/{}", file.as_str().unwrap());
                        match read(&client, &path).await {
                            Some(bytes) => rows += parquet_rows(bytes, &path),
                            None => {
                                // Only allowed once a newer snapshot has replaced this one
                                // (the previous snapshot's files are deleted after the switch).
                                let now = read(&client, &manifest_path).await.unwrap();
                                assert_ne!(
                                    now, manifest_bytes,
                                    "{path} is missing while the manifest still names it"
                                );
                                break 'tables;
                            }
                        }
                    }
                    assert_eq!(
                        rows,
                        files["rows"].as_u64().unwrap(),
                        "{table}: rows of the manifest's files"
                    );
                }
                reads.fetch_add(1, Ordering::SeqCst);
            }
            snapshots.len()
        })
    };
    for _ in 0..3 {
        let (source, lake_url) = (source.clone(), lake_url.clone());
        tokio::task::spawn_blocking(move || {
            support::feed(path_arg(&source), &lake_url, "2024-05-01");
            support::job_runner_ok(&["preprocess", "--lake", &lake_url]);
        })
        .await
        .unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let snapshots = reader.await.expect("the reader saw only whole files");
    let reads = reads.load(Ordering::SeqCst);
    eprintln!("{reads} consistent reads over {snapshots} snapshots");
    assert!(
        reads >= 3,
        "the reader ran during the reruns ({reads} reads)"
    );
    assert!(
        snapshots >= 2,
        "the reader saw snapshots change ({snapshots})"
    );
    let _ = client.delete(&root, true).await;
}

#[tokio::test]
async fn datamarts_racing_preprocess_on_hdfs_publish_only_right_tables() {
    let _cluster = shared_cluster();
    let client = client();
    let url = support::fresh_database("hdfs_race").await;
    let (_dir, source) = support::generated_source(10_000, 26);
    let root = fresh_lake(&client, "race").await;
    let lake_url = format!("{}{root}/lake", hdfs_url());
    support::run(path_arg(&source), &lake_url, &url, "2024-03-01");
    let gold = reference::gold(&[&source], 10);
    for (index, table) in gold_tables(&url).await.iter().enumerate() {
        assert_eq!(table, expected(&gold, index), "{}", GOLD_TABLES[index]);
    }
    // As deployed: every run reads a whole snapshot.
    let deployed = race(&lake_url, &url, &gold, &[], 5, Duration::from_secs(120)).await;
    eprintln!("HDFS, default grace period: {deployed:?}");
    assert!(deployed.publishes >= 2, "{deployed:?}");
    // `race` has checked that every success equals the reference and every
    // failure was clean (exit 1, nothing published). Unlike a local rename, an
    // HDFS rename over the manifest drops the blocks a reader may still be
    // reading, so a run that starts at that instant can fail (cleanly).
    assert!(deployed.succeeded >= 1, "{deployed:?}");
    // Without a grace period a run may lose its files, and must then fail cleanly.
    let tight = race(
        &lake_url,
        &url,
        &gold,
        &["--snapshot-grace-secs", "0"],
        5,
        Duration::from_secs(120),
    )
    .await;
    eprintln!("HDFS, no grace period: {tight:?}");
    assert!(tight.publishes >= 2, "{tight:?}");
    let _ = client.delete(&root, true).await;
}

#[tokio::test]
async fn hdfs_failures_are_clear() {
    let _cluster = shared_cluster();
    let client = client();
    let (dir, source) = support::generated_source(50, 1);

    // NameNode unreachable: nothing listens on port 1.
    let started = Instant::now();
    let output = support::job_runner(
        &["preprocess", "--lake", "hdfs://127.0.0.1:1/aurum/lake"],
        &[],
    );
    let line = last_error_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(line.starts_with("error: "), "{line}");
    assert!(line.contains("hdfs://127.0.0.1:1/aurum/lake"), "{line}");
    assert!(line.contains("HDFS unreachable"), "{line}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "gave up in {:?}",
        started.elapsed()
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a report even on failure");
    assert_eq!(report["status"], "failed");

    // The same for a datamart and for a source on an unreachable NameNode.
    let output = support::job_runner(
        &[
            "feed",
            "--source",
            "hdfs://127.0.0.1:1/aurum/source",
            "--lake",
            path_arg(&dir.path().join("lake")),
        ],
        &[],
    );
    let line = last_error_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(
        line.contains("hdfs://127.0.0.1:1/aurum/source") && line.contains("HDFS unreachable"),
        "{line}"
    );

    // Permission denied: / belongs to the HDFS superuser, not to us.
    let forbidden = format!("{}/forbidden-{}", hdfs_url(), std::process::id());
    let output = support::job_runner(
        &["feed", "--source", path_arg(&source), "--lake", &forbidden],
        &[],
    );
    let line = last_error_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(line.contains(&forbidden), "{line}");
    assert!(line.contains("permission denied"), "{line}");
    assert!(
        !line.contains("\tat ") && !line.contains(".java:"),
        "no Java stack trace: {line}"
    );
    assert!(!exists(&client, &format!("/forbidden-{}", std::process::id())).await);

    // A source folder that does not exist.
    let root = fresh_lake(&client, "failures").await;
    let missing = format!("{}{root}/no-such-source", hdfs_url());
    let output = support::job_runner(
        &[
            "feed",
            "--source",
            &missing,
            "--lake",
            &format!("{}{root}/lake", hdfs_url()),
        ],
        &[],
    );
    let line = last_error_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(line.contains(&missing), "{line}");

    // A lake without silver yet.
    let url = support::fresh_database("hdfs_failures").await;
    let output = support::job_runner(
        &[
            "datamart",
            "top-products",
            "--lake",
            &format!("{}{root}/lake", hdfs_url()),
            "--database-url",
            &url,
        ],
        &[],
    );
    let line = last_error_line(&output);
    assert_eq!(output.status.code(), Some(1), "{line}");
    assert!(line.contains("has no silver snapshot yet"), "{line}");

    // An HDFS URL without a NameNode: bad usage.
    let output = support::job_runner(&["preprocess", "--lake", "hdfs:///aurum/lake"], &[]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        last_error_line(&output)
    );
    let _ = client.delete(&root, true).await;
}

#[tokio::test]
async fn a_name_service_from_hadoop_conf_dir_works() {
    let _cluster = shared_cluster();
    let client = client();
    let (dir, source) = support::generated_source(200, 2);
    // A Hadoop client configuration naming the test NameNode as an HA name
    // service with one NameNode, as a cluster's hdfs-site.xml would.
    let address = hdfs_url().trim_start_matches("hdfs://").to_owned();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let property = |name: &str, value: &str| {
        format!("<property><name>{name}</name><value>{value}</value></property>")
    };
    std::fs::write(
        conf.join("core-site.xml"),
        format!(
            "<configuration>{}</configuration>",
            property("fs.defaultFS", "hdfs://aurumns")
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("hdfs-site.xml"),
        format!(
            "<configuration>{}{}{}</configuration>",
            property("dfs.nameservices", "aurumns"),
            property("dfs.ha.namenodes.aurumns", "nn1"),
            property("dfs.namenode.rpc-address.aurumns.nn1", &address),
        ),
    )
    .unwrap();
    let root = fresh_lake(&client, "nameservice").await;
    let lake_url = format!("hdfs://aurumns{root}/lake");
    let env = [("HADOOP_CONF_DIR", conf.to_str().unwrap())];
    for args in [
        vec!["feed", "--source", path_arg(&source), "--lake", &lake_url],
        vec!["preprocess", "--lake", &lake_url],
    ] {
        let output = support::job_runner(&args, &env);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            last_error_line(&output)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["lake"], lake_url.as_str());
    }
    assert!(exists(&client, &format!("{root}/lake/silver/_snapshot.json")).await);

    // Without that configuration the name service is unknown: a configuration
    // error (exit 2) that says where the configuration was looked for.
    std::fs::create_dir_all(dir.path().join("none")).unwrap();
    let output = support::job_runner(
        &["preprocess", "--lake", &lake_url],
        &[("HADOOP_CONF_DIR", dir.path().join("none").to_str().unwrap())],
    );
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        line.contains(&lake_url) && line.contains("HADOOP_CONF_DIR"),
        "{line}"
    );
    let _ = client.delete(&root, true).await;
}

/// Runs testenv/hdfs.sh with a cluster command.
fn cluster(command: &str, node: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testenv/hdfs.sh");
    let status = std::process::Command::new(script)
        .args([command, &hdfs_dir(), node])
        .status()
        .expect("run testenv/hdfs.sh");
    assert!(status.success(), "testenv/hdfs.sh {command} {node} failed");
}

/// Starts a killed DataNode again when dropped, so a failing test does not
/// leave the next tests a cluster with one DataNode.
struct RestartDataNode(&'static str);

impl Drop for RestartDataNode {
    fn drop(&mut self) {
        cluster("start-datanode", self.0);
    }
}

#[tokio::test]
async fn a_datanode_dying_mid_write_never_leaves_a_corrupt_or_half_visible_file() {
    let _cluster = exclusive_cluster();
    let client = client();
    let (_dir, source) = support::generated_source(400_000, 21);
    let root = fresh_lake(&client, "datanode").await;
    let lake = format!("{root}/lake");
    let lake_url = format!("{}{lake}", hdfs_url());
    let partition = format!("{lake}/raw/transactions/ingest_date=2024-06-01/data.parquet");

    let feed = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_aurum-job-runner"))
            .args([
                "feed",
                "--source",
                path_arg(&source),
                "--lake",
                &lake_url,
                "--ingest-date",
                "2024-06-01",
            ])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run aurum-job-runner")
    };
    let child = feed();
    // Kill DataNode 2 once the transactions partition is being written to HDFS.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let writing = files_under(&client, &format!("{lake}/_staging"))
            .await
            .iter()
            .any(|f| {
                f.contains("/raw/transactions/")
                    && f.rsplit('/')
                        .next()
                        .unwrap()
                        .starts_with(".data.parquet.tmp")
            });
        if writing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the feed never started writing the transactions partition"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster("kill-datanode", "2");
    let _restart = RestartDataNode("2");
    let killed_at = Instant::now();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let first_ok = output.status.success();
    eprintln!(
        "feed with a DataNode killed mid-write: {} after {:.1} s; {}",
        if first_ok { "completed" } else { "failed" },
        killed_at.elapsed().as_secs_f64(),
        last_error_line(&output)
    );
    let report: serde_json::Value = if first_ok {
        serde_json::from_slice(&output.stdout).unwrap()
    } else {
        // A clean failure: exit 1, the failing file and cause on the last line,
        // and no partition published.
        let line = last_error_line(&output);
        assert_eq!(output.status.code(), Some(1), "{line}");
        assert!(
            line.starts_with("error: ") && line.contains("hdfs://"),
            "{line}"
        );
        assert!(!line.contains("\tat "), "{line}");
        assert!(!exists(&client, &partition).await, "nothing half-published");
        // Rerun once the NameNode has given up on the dead DataNode.
        cluster("wait-datanode-dead", "2");
        support::feed(path_arg(&source), &lake_url, "2024-06-01")
    };
    assert_eq!(report["status"], "succeeded");
    let written = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["table"] == "transactions")
        .unwrap()["rows_written"]
        .as_u64()
        .unwrap();
    assert!(written > 390_000, "{written}");
    // Whatever happened, the partition is whole and has every row.
    let bytes = read(&client, &partition)
        .await
        .expect("the partition is published");
    assert_eq!(parquet_rows(bytes, &partition), written);
    // No visible file other than the contract's (hidden unfinished writes may stay until stale).
    for file in files_under(&client, &format!("{lake}/raw")).await {
        let name = file.rsplit('/').next().unwrap();
        assert!(
            name == "data.parquet" || name.starts_with('.'),
            "unexpected file {file}"
        );
    }
    // And the lake is usable: preprocess reads it all. Its new files go to
    // the surviving DataNode once the NameNode has given up on the dead one
    // (until then it may still place a block there, and hdfs-native does
    // not rebuild a pipeline that fails to open).
    cluster("wait-datanode-dead", "2");
    let report = support::job_runner_ok(&["preprocess", "--lake", &lake_url]);
    assert_eq!(report["status"], "succeeded");

    let _ = client.delete(&root, true).await;
}
