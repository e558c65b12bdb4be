//! The operator on a real kube-apiserver + kube-controller-manager
//! (testenv/kube.sh), with the stand-in kubelet running the stand-in job-runner
//! (tests/fixtures/fake-job-runner.sh). These tests check orchestration only:
//! Jobs, status, conditions, events, retries, suspend, restarts, leader
//! election and deletion; they claim no gold results.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use aurum_operator::crd::{DataLake, Datamart};
use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// A TCP listener standing in for a reachable database (the stand-in
/// job-runner only connects).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crds_install_and_reject_invalid_resources() {
    let Some(env) = TestEnv::new("crds", fake_runner()).await else {
        return;
    };
    let src = env.dir.path().join("src");
    let lake = env.dir.path().join("lake");
    let dl: Api<DataLake> = env.api();
    let dm: Api<Datamart> = env.api();
    let pp = PatchParams::apply("tests").force();

    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            datamart_json("d1", "lake", "monthly-sales", "pg", json!({"topN": 5})),
            "topN applies only to the top-products datamart",
        ),
        (
            datamart_json("d2", "lake", "best-sellers", "pg", json!({})),
            "supported values: \"sales-country-year\"",
        ),
        (
            datamart_json("d3", "lake", "top-products", "pg", json!({"topN": 0})),
            "spec.topN",
        ),
        (
            datamart_json(
                "d4",
                "lake",
                "top-products",
                "pg",
                json!({"timeZone": "Europe/Paris"}),
            ),
            "timeZone needs a schedule",
        ),
        (
            datamart_json(
                "d5",
                "lake",
                "top-products",
                "pg",
                json!({"concurrencyPolicy": "Allow"}),
            ),
            "spec.concurrencyPolicy",
        ),
        (
            datamart_json(
                "d6",
                "lake",
                "top-products",
                "pg",
                json!({"runDeadlineSeconds": 1}),
            ),
            "spec.runDeadlineSeconds",
        ),
    ];
    for (obj, want) in cases {
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        let err = dm
            .patch(&name, &pp, &Patch::Apply(&obj))
            .await
            .expect_err(&format!("{name} must be rejected"));
        let msg = err.to_string();
        assert!(msg.contains(want), "{name}: expected {want:?} in {msg}");
    }
    let bad_lakes: Vec<(serde_json::Value, &str)> = vec![
        (
            lake_json("l1", &lake, &src, json!({"lakeUri": "s3://bucket/lake"})),
            "spec.lakeUri",
        ),
        (
            lake_json(
                "l2",
                &lake,
                &src,
                json!({"source": {"path": "/a", "configMap": "b"}}),
            ),
            "set exactly one of source.path, source.configMap, source.persistentVolumeClaim",
        ),
        (
            lake_json(
                "l3",
                &lake,
                &src,
                json!({"backoffInitialSeconds": 100, "backoffMaxSeconds": 10}),
            ),
            "backoffMaxSeconds must be >= backoffInitialSeconds",
        ),
    ];
    for (obj, want) in bad_lakes {
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        let err = dl
            .patch(&name, &pp, &Patch::Apply(&obj))
            .await
            .expect_err(&format!("{name} must be rejected"));
        assert!(
            err.to_string().contains(want),
            "{name}: expected {want:?} in {err}"
        );
    }
    // A valid one is accepted and defaulted.
    let ok: Datamart = env
        .apply(datamart_json(
            "ok",
            "lake",
            "top-products",
            "pg",
            json!({"topN": 3}),
        ))
        .await;
    assert_eq!(ok.spec.run.max_retries, 5);
    assert_eq!(ok.spec.database.secret_ref.key, "url");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn datalake_and_datamart_run_and_follow_new_snapshots() {
    let Some(env) = TestEnv::new("flow", fake_runner()).await else {
        return;
    };
    let (_db, url) = reachable_db().await;
    env.secret("pg", &url).await;
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    let lake_dir = env.dir.path().join("lake");
    let src = env.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("src");

    let t0 = Instant::now();
    env.apply::<DataLake>(env.lake_json("lake", json!({})))
        .await;
    env.apply::<Datamart>(datamart_json(
        "top",
        "lake",
        "top-products",
        "pg",
        json!({"topN": 5}),
    ))
    .await;
    let dl: Api<DataLake> = env.api();
    let dm: Api<Datamart> = env.api();

    let lake = wait_status(&dl, "lake", "Available", T, available_and_idle).await;
    let st = lake.status.as_ref().expect("status");
    assert_eq!(st.silver_snapshot_id.as_deref(), Some("snap-1"));
    assert_eq!(st.rows_written, Some(10));
    assert_eq!(st.rows_rejected, Some(2));
    assert_eq!(st.tables.len(), 2, "{:?}", st.tables);
    assert_eq!(st.state.phase.as_deref(), Some("Ready"));
    assert_eq!(st.state.observed_generation, lake.metadata.generation);
    assert_eq!(st.state.runs.len(), 1);

    let mart = wait_status(&dm, "top", "Available on snap-1", T, |s| {
        cond_is(s, "Available", "True") && s["silverSnapshotId"] == "snap-1"
    })
    .await;
    eprintln!("lake + datamart Available in {:?}", t0.elapsed());
    let mst = mart.status.as_ref().expect("status");
    assert_eq!(mst.rows_written, Some(4));
    assert!(cond_is(&status_json(&mart), "Degraded", "False"));

    // The Jobs: args, env, owner references, labels.
    let jobs = env.jobs().await;
    assert_eq!(
        jobs.len(),
        2,
        "{:?}",
        jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
    let ingest = jobs
        .iter()
        .find(|j| {
            j.labels()
                .get("app.kubernetes.io/component")
                .map(String::as_str)
                == Some("ingest")
        })
        .expect("ingest job");
    assert_eq!(ingest.labels()["aurum.dev/datalake"], "lake");
    assert_eq!(
        ingest.labels()["app.kubernetes.io/managed-by"],
        "aurum-operator"
    );
    assert_eq!(ingest.owner_references()[0].kind, "DataLake");
    assert_eq!(ingest.owner_references()[0].uid, lake.uid().expect("uid"));
    let dmjob = jobs
        .iter()
        .find(|j| j.labels().get("aurum.dev/datamart").map(String::as_str) == Some("top"))
        .expect("datamart job");
    assert_eq!(dmjob.owner_references()[0].kind, "Datamart");
    assert_eq!(
        dmjob
            .spec
            .as_ref()
            .and_then(|s| s.ttl_seconds_after_finished),
        Some(3600)
    );
    let runs = env.kubelet.runs();
    let feed = runs
        .iter()
        .find(|r| r.container == "feed")
        .expect("feed ran");
    assert_eq!(feed.args[0], "feed");
    let dmrun = runs
        .iter()
        .find(|r| r.args.first().map(String::as_str) == Some("datamart"))
        .expect("datamart ran");
    assert_eq!(
        dmrun.args[..4],
        [
            "datamart",
            "top-products",
            "--lake",
            &format!("file://{}", lake_dir.display())
        ]
    );
    assert!(dmrun.args.windows(2).any(|w| w == ["--top-n", "5"]));
    assert_eq!(
        dmrun.env.get("DATABASE_URL"),
        Some(&url),
        "DATABASE_URL from the Secret"
    );

    // Events.
    let evs = env.events_for("top").await;
    assert!(evs.iter().any(|(r, _)| r == "RunStarted"), "{evs:?}");
    assert!(evs.iter().any(|(r, _)| r == "RunSucceeded"), "{evs:?}");

    // Run now -> a new snapshot -> the datamart follows.
    dl.patch(
        "lake",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"aurum.dev/run-now": "1"}}})),
    )
    .await
    .expect("annotate");
    wait_status(&dl, "lake", "snap-2", T, |s| {
        s["silverSnapshotId"] == "snap-2"
    })
    .await;
    let mart = wait_status(&dm, "top", "rebuilt on snap-2", T, |s| {
        s["silverSnapshotId"] == "snap-2" && s["activeRun"].is_null()
    })
    .await;
    let runs = &mart.status.as_ref().expect("status").state.runs;
    assert_eq!(runs[0].trigger, "NewSnapshot");
    assert_eq!(env.jobs().await.len(), 4);

    // The endpoints.
    let (code, body) = op.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("aurum_operator_runs_started_total"), "{body}");
    assert!(
        body.lines().any(|l| l == "aurum_operator_leader 1"),
        "{body}"
    );
    assert_eq!(op.get("/healthz").await.0, 200);
    assert_eq!(op.get("/readyz").await.0, 200);
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_run_is_degraded_and_retried_with_backoff() {
    let Some(env) = TestEnv::new("fail", fake_runner()).await else {
        return;
    };
    // Nothing listens on port 1: the database is unreachable.
    env.secret("pg", "postgres://aurum:x@127.0.0.1:1/aurum")
        .await;
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    env.apply::<DataLake>(env.lake_json("lake", json!({})))
        .await;
    env.apply::<Datamart>(datamart_json(
        "cl",
        "lake",
        "customer-lifetime-value",
        "pg",
        json!({"backoffInitialSeconds": 2, "backoffMaxSeconds": 3, "maxRetries": 2}),
    ))
    .await;
    let dm: Api<Datamart> = env.api();
    let m = wait_status(&dm, "cl", "Degraded", T, |s| cond_is(s, "Degraded", "True")).await;
    let (_, reason, message) = cond(&m, "Degraded").expect("Degraded");
    assert_eq!(reason, "RunFailed");
    assert!(message.contains("connection refused"), "{message}");
    let st = &m.status.as_ref().expect("status").state;
    assert!(st.next_retry_time.is_some());
    assert_eq!(st.phase.as_deref(), Some("Failed"));

    // Retries back off and stop after maxRetries.
    let m = wait_status(&dm, "cl", "gave up", T, |s| {
        s["consecutiveFailures"] == 3 && s["activeRun"].is_null()
    })
    .await;
    let st = &m.status.as_ref().expect("status").state;
    assert!(st.next_retry_time.is_none());
    let (_, _, message) = cond(&m, "Degraded").expect("Degraded");
    assert!(message.contains("gave up after 2 retries"), "{message}");
    let mut starts: Vec<_> = st
        .runs
        .iter()
        .filter_map(|r| r.start_time.clone())
        .collect();
    starts.sort();
    assert_eq!(
        st.runs.len(),
        3,
        "history keeps failedRunHistoryLimit=3 runs"
    );
    assert_eq!(st.runs[0].trigger, "Retry");
    let evs = env.events_for("cl").await;
    assert!(
        evs.iter()
            .any(|(r, n)| r == "RunFailed" && n.contains("connection refused")),
        "{evs:?}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dm_jobs = env
        .jobs()
        .await
        .into_iter()
        .filter(|j| j.labels().contains_key("aurum.dev/datamart"))
        .count();
    assert_eq!(dm_jobs, 3, "first attempt + 2 retries, then no more");

    // Fix the database and ask for a run: the error clears.
    let (_db, url) = reachable_db().await;
    let secrets: Api<Secret> = env.api();
    secrets
        .patch(
            "pg",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"url": url}})),
        )
        .await
        .expect("fix secret");
    dm.patch(
        "cl",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"aurum.dev/run-now": "fixed"}}})),
    )
    .await
    .expect("annotate");
    let m = wait_status(&dm, "cl", "recovered", T, |s| {
        cond_is(s, "Available", "True") && cond_is(s, "Degraded", "False")
    })
    .await;
    assert_eq!(
        m.status
            .as_ref()
            .expect("status")
            .state
            .consecutive_failures,
        0
    );
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suspend_stops_runs_and_deadline_fails_stuck_runs() {
    let Some(env) = TestEnv::new("suspend", fake_runner()).await else {
        return;
    };
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    env.apply::<DataLake>(env.lake_json("lake", json!({"suspend": true})))
        .await;
    let dl: Api<DataLake> = env.api();
    wait_status(&dl, "lake", "Suspended", T, |s| {
        cond_is(s, "Suspended", "True") && s["phase"] == "Suspended"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        env.jobs().await.is_empty(),
        "a suspended DataLake starts no run"
    );

    // Resume with a run that hangs past its deadline.
    env.kubelet.set_env("FAKE_SLEEP", "40");
    env.apply::<DataLake>(env.lake_json(
        "lake",
        json!({"suspend": false, "runDeadlineSeconds": 10, "maxRetries": 0}),
    ))
    .await;
    wait_status(&dl, "lake", "Running", T, |s| s["phase"] == "Running").await;
    let l = wait_status(&dl, "lake", "deadline failure", T, |s| {
        cond_is(s, "Degraded", "True")
    })
    .await;
    let (_, _, message) = cond(&l, "Degraded").expect("Degraded");
    assert!(message.contains("DeadlineExceeded"), "{message}");
    assert!(cond_is(&status_json(&l), "Suspended", "False"));
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_restart_creates_no_duplicate_jobs() {
    let Some(env) = TestEnv::new("restart", fake_runner()).await else {
        return;
    };
    env.kubelet.set_env("FAKE_SLEEP", "4");
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    env.apply::<DataLake>(env.lake_json("lake", json!({})))
        .await;
    let dl: Api<DataLake> = env.api();
    wait_status(&dl, "lake", "Running", T, |s| s["phase"] == "Running").await;
    op.stop().await;
    // Worst case: the status write after creating the Job was lost.
    dl.patch_status(
        "lake",
        &PatchParams::apply("aurum-operator").force(),
        &Patch::Apply(
            json!({"apiVersion": "aurum.dev/v1alpha1", "kind": "DataLake", "status": {}}),
        ),
    )
    .await
    .expect("clear status");
    let op = Operator::start(&env.client, &env.ns, "op-b").await;
    let l = wait_status(&dl, "lake", "Available", T, |s| {
        cond_is(s, "Available", "True")
    })
    .await;
    assert_eq!(
        env.jobs().await.len(),
        1,
        "the restarted operator adopted the Job"
    );
    assert_eq!(
        l.status
            .as_ref()
            .expect("status")
            .silver_snapshot_id
            .as_deref(),
        Some("snap-1")
    );
    let feeds = env
        .kubelet
        .runs()
        .iter()
        .filter(|r| r.container == "feed")
        .count();
    assert_eq!(feeds, 1);
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let Some(env) = TestEnv::new("leader", fake_runner()).await else {
        return;
    };
    let a = Operator::start(&env.client, &env.ns, "op-a").await;
    let leader_of = |body: &str| body.lines().any(|l| l == "aurum_operator_leader 1");
    let start = Instant::now();
    while !leader_of(&a.get("/metrics").await.1) {
        assert!(start.elapsed() < T, "op-a never became leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let b = Operator::start(&env.client, &env.ns, "op-b").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ma, mb) = (a.get("/metrics").await.1, b.get("/metrics").await.1);
    assert!(
        leader_of(&ma) && !leader_of(&mb),
        "exactly op-a leads: op-a {} / op-b {}",
        ma.lines()
            .find(|l| l.starts_with("aurum_operator_leader "))
            .unwrap_or("-"),
        mb.lines()
            .find(|l| l.starts_with("aurum_operator_leader "))
            .unwrap_or("-")
    );
    assert_eq!(b.get("/readyz").await.0, 200, "a standby is ready");
    a.stop().await;
    let start = Instant::now();
    while !leader_of(&b.get("/metrics").await.1) {
        assert!(start.elapsed() < T, "op-b never took over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("standby took over in {:?}", start.elapsed());
    env.apply::<DataLake>(env.lake_json("lake", json!({})))
        .await;
    let dl: Api<DataLake> = env.api();
    wait_status(&dl, "lake", "Available", T, |s| {
        cond_is(s, "Available", "True")
    })
    .await;
    b.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletion_policy_retains_or_drops_the_gold_table() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "\n!!!!! SKIPPED deletion_policy: DATABASE_URL is not set (testenv/postgres.sh start DIR) !!!!!\n"
        );
        return;
    };
    let Some(env) = TestEnv::new("delete", fake_runner()).await else {
        return;
    };
    let schema = env.ns.replace('-', "_");
    let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.gold_monthly_sales (month text); \
         CREATE TABLE {schema}.gold_top_products (scope text)"
    ))
    .await
    .expect("create tables");
    env.secret("pg", &url).await;
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    env.apply::<DataLake>(env.lake_json("lake", json!({})))
        .await;
    let db = json!({"secretRef": {"name": "pg"}, "schema": schema});
    env.apply::<Datamart>(datamart_json(
        "keep",
        "lake",
        "top-products",
        "pg",
        json!({"database": db}),
    ))
    .await;
    env.apply::<Datamart>(datamart_json(
        "drop",
        "lake",
        "monthly-sales",
        "pg",
        json!({"database": db, "deletionPolicy": "Delete"}),
    ))
    .await;
    let dm: Api<Datamart> = env.api();
    for name in ["keep", "drop"] {
        let m = wait_status(&dm, name, "Available", T, |s| {
            cond_is(s, "Available", "True")
        })
        .await;
        // Only dropping the table needs the operator at deletion time.
        assert_eq!(
            m.finalizers().iter().any(|f| f == "aurum.dev/gold-table"),
            name == "drop",
            "{name}: {:?}",
            m.finalizers()
        );
    }
    for name in ["keep", "drop"] {
        dm.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    eventually(T, || async {
        let left = dm.list(&Default::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;
    let exists = |t: &'static str| {
        let pg = &pg;
        let schema = schema.clone();
        async move {
            pg.query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
                &[&schema, &t],
            )
            .await
            .expect("query")
            .get::<_, i64>(0)
                == 1
        }
    };
    assert!(exists("gold_top_products").await, "Retain keeps the table");
    assert!(
        !exists("gold_monthly_sales").await,
        "Delete drops the table"
    );
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_spec_surfaces_as_a_condition() {
    let Some(env) = TestEnv::new("badspec", fake_runner()).await else {
        return;
    };
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    env.apply::<DataLake>(env.lake_json("lake", json!({"schedule": "0 25 * * *"})))
        .await;
    env.apply::<Datamart>(datamart_json(
        "orphan",
        "nolake",
        "monthly-sales",
        "pg",
        json!({}),
    ))
    .await;
    let dl: Api<DataLake> = env.api();
    let dm: Api<Datamart> = env.api();
    let l = wait_status(&dl, "lake", "Invalid", T, |s| s["phase"] == "Invalid").await;
    let (_, reason, message) = cond(&l, "Degraded").expect("Degraded");
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("invalid schedule"), "{message}");
    let m = wait_status(&dm, "orphan", "Invalid", T, |s| s["phase"] == "Invalid").await;
    let (_, _, message) = cond(&m, "Degraded").expect("Degraded");
    assert!(
        message.contains("DataLake \"nolake\" not found"),
        "{message}"
    );
    assert!(env.jobs().await.is_empty());
    // Fixing the spec starts the run.
    env.apply::<DataLake>(env.lake_json("lake", json!({"schedule": "0 5 * * *"})))
        .await;
    let l = wait_status(&dl, "lake", "Available", T, |s| {
        cond_is(s, "Available", "True")
    })
    .await;
    assert!(
        l.status
            .as_ref()
            .expect("status")
            .state
            .next_schedule_time
            .is_some()
    );
    let _ = PostParams::default();
    let _: Option<Job> = None;
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_policy_stops_the_active_run_for_a_new_one() {
    let Some(env) = TestEnv::new("replace", fake_runner()).await else {
        return;
    };
    env.kubelet.set_env("FAKE_SLEEP", "60");
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    env.apply::<DataLake>(env.lake_json("lake", json!({"concurrencyPolicy": "Replace"})))
        .await;
    let dl: Api<DataLake> = env.api();
    let first = wait_status(&dl, "lake", "Running", T, |s| s["phase"] == "Running").await;
    let first_job = first
        .status
        .expect("status")
        .state
        .active_run
        .expect("active")
        .job_name;
    env.kubelet.clear_env();
    dl.patch(
        "lake",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"aurum.dev/run-now": "now"}}})),
    )
    .await
    .expect("annotate");
    let l = wait_status(&dl, "lake", "Available", T, |s| {
        cond_is(s, "Available", "True")
    })
    .await;
    let st = l.status.expect("status");
    assert_eq!(st.state.runs[0].trigger, "RunNow");
    let replaced = st
        .state
        .runs
        .iter()
        .find(|r| r.job_name == first_job)
        .expect("first run in history");
    assert_eq!(
        replaced.outcome,
        Some(aurum_operator::crd::RunOutcome::Replaced)
    );
    let jobs: Api<Job> = env.api();
    eventually(T, || async {
        let j = jobs.get_opt(&first_job).await.ok()?;
        j.is_none_or(|j| j.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cron_schedule_starts_runs() {
    let Some(env) = TestEnv::new("cron", fake_runner()).await else {
        return;
    };
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    env.apply::<DataLake>(env.lake_json(
        "lake",
        json!({"schedule": "* * * * *", "timeZone": "Asia/Kolkata", "runOnSpecChange": false}),
    ))
    .await;
    let dl: Api<DataLake> = env.api();
    let l = wait_status(&dl, "lake", "nextScheduleTime", T, |s| {
        s["nextScheduleTime"].is_string()
    })
    .await;
    let st = l.status.expect("status");
    assert!(st.state.runs.is_empty() && st.state.active_run.is_none());
    assert_eq!(
        cond(&dl.get("lake").await.expect("get"), "Progressing").map(|c| c.1),
        Some("WaitingForSchedule".to_string())
    );
    // The next minute boundary starts a run (within ~60 s + slack).
    let start = Instant::now();
    loop {
        let l = dl.get("lake").await.expect("get");
        let st = l.status.clone().unwrap_or_default();
        if let Some(r) = st.state.runs.first() {
            assert_eq!(r.trigger, "Schedule");
            assert!(st.state.last_schedule_time.is_some());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no scheduled run"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    op.stop().await;
    env.cleanup().await;
}
