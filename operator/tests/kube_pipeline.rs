//! From `apply` to gold tables: a DataLake and its four Datamarts on a real
//! kube-apiserver + kube-controller-manager, the stand-in kubelet running the
//! real `aurum-job-runner` (AURUM_JOB_RUNNER_BIN) against a real PostgreSQL
//! (DATABASE_URL) and a lake on the host.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use aurum_operator::crd::{DataLake, Datamart};
use common::*;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const MARTS: [(&str, &str); 4] = [
    ("sales-country-year", "gold_sales_country_year"),
    ("top-products", "gold_top_products"),
    ("monthly-sales", "gold_monthly_sales"),
    ("customer-lifetime-value", "gold_customer_lifetime_value"),
];

/// Generates `transactions` source transactions into `out` with the real job-runner.
fn generate(runner: &Path, out: &Path, transactions: &str) {
    let generated = std::process::Command::new(runner)
        .args(["generate", "--out"])
        .arg(out)
        .args(["--transactions", transactions])
        .output()
        .expect("run generate");
    assert!(
        generated.status.success(),
        "generate: {}",
        String::from_utf8_lossy(&generated.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn datalake_and_datamarts_reach_gold_tables() {
    let Some(runner) = real_runner("datalake_and_datamarts_reach_gold_tables") else {
        return;
    };
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "\n!!!!! SKIPPED datalake_and_datamarts_reach_gold_tables: DATABASE_URL is not set !!!!!\n"
        );
        return;
    };
    let Some(env) = TestEnv::new("gold", runner.clone()).await else {
        return;
    };
    let schema = env.ns.replace('-', "_");
    let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    pg.batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");

    let src = env.dir.path().join("source");
    let lake_dir = env.dir.path().join("lake");
    generate(&runner, &src, "3000");

    env.secret("pg", &url).await;
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    let t0 = Instant::now();
    env.apply::<DataLake>(lake_json("lake", &lake_dir, &src, json!({})))
        .await;
    let db = json!({"secretRef": {"name": "pg"}, "schema": schema});
    for (mart, _) in MARTS {
        let extra = if mart == "top-products" {
            json!({"database": db, "topN": 5})
        } else {
            json!({"database": db})
        };
        env.apply::<Datamart>(datamart_json(mart, "lake", mart, "pg", extra))
            .await;
    }
    let dl: Api<DataLake> = env.api();
    let dm: Api<Datamart> = env.api();
    let timeout = Duration::from_secs(240);
    let lake = wait_status(&dl, "lake", "Available", timeout, available_and_idle).await;
    let lst = lake.status.clone().expect("status");
    let snap = lst
        .silver_snapshot_id
        .clone()
        .expect("silver snapshot id reached the status");
    assert!(lst.rows_written.unwrap_or(0) > 0, "{lst:?}");
    assert!(!lst.tables.is_empty());
    eprintln!(
        "DataLake Available after {:?} (snapshot {snap})",
        t0.elapsed()
    );

    for (mart, table) in MARTS {
        let m = wait_status(&dm, mart, "Available on the first snapshot", timeout, |s| {
            available_and_idle(s) && s["silverSnapshotId"] == snap.as_str()
        })
        .await;
        let st = m.status.expect("status");
        let rows: i64 = pg
            .query_one(&format!("SELECT count(*) FROM {schema}.{table}"), &[])
            .await
            .expect("count gold rows")
            .get(0);
        assert!(rows > 0, "{table} is empty");
        assert_eq!(
            st.rows_written,
            Some(rows),
            "{mart}: status rowsWritten vs {table}"
        );
    }
    eprintln!("all four datamarts Available after {:?}", t0.elapsed());

    // A new ingest publishes a new snapshot; every datamart rebuilds from it.
    dl.patch(
        "lake",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"aurum.dev/run-now": "again"}}})),
    )
    .await
    .expect("annotate");
    let lake = wait_status(&dl, "lake", "a new snapshot", timeout, |s| {
        available_and_idle(s) && s["silverSnapshotId"].as_str().is_some_and(|x| x != snap)
    })
    .await;
    let snap2 = lake
        .status
        .expect("status")
        .silver_snapshot_id
        .expect("snapshot");
    for (mart, _) in MARTS {
        wait_status(&dm, mart, "rebuilt on the new snapshot", timeout, |s| {
            available_and_idle(s) && s["silverSnapshotId"] == snap2.as_str()
        })
        .await;
    }
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_database_is_degraded_with_the_job_runners_message() {
    let Some(runner) = real_runner("unreachable_database_is_degraded_with_the_job_runners_message")
    else {
        return;
    };
    let Some(env) = TestEnv::new("gold-fail", runner.clone()).await else {
        return;
    };
    let src = env.dir.path().join("source");
    let lake_dir = env.dir.path().join("lake");
    generate(&runner, &src, "500");
    // Nothing listens on port 1.
    env.secret("pg", "postgres://aurum:x@127.0.0.1:1/aurum")
        .await;
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    env.apply::<DataLake>(lake_json("lake", &lake_dir, &src, json!({})))
        .await;
    env.apply::<Datamart>(datamart_json(
        "ms",
        "lake",
        "monthly-sales",
        "pg",
        json!({"backoffInitialSeconds": 1, "backoffMaxSeconds": 2, "maxRetries": 1}),
    ))
    .await;
    let dm: Api<Datamart> = env.api();
    let m = wait_status(&dm, "ms", "gave up", Duration::from_secs(120), |s| {
        s["consecutiveFailures"] == 2 && s["activeRun"].is_null()
    })
    .await;
    let (status, reason, message) = cond(&m, "Degraded").expect("Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "RunFailed"));
    let run_msg = m.status.as_ref().expect("status").state.runs[0]
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        !run_msg.is_empty() && message.contains(&run_msg),
        "{message} / {run_msg}"
    );
    eprintln!("job-runner's failure as Degraded: {message}");
    op.stop().await;
    env.cleanup().await;
}
