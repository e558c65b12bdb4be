//! `spec.catalog` of a DataLake on a real kube-apiserver +
//! kube-controller-manager (testenv/kube.sh): the API server validates it, the
//! ingest Job's preprocess gets the Metastore, and the run report's catalog
//! section shows in the status without failing the DataLake. The stand-in
//! job-runner (which reports a registration as failed when nothing listens at
//! the Metastore's address) checks the orchestration; the real job-runner
//! (AURUM_JOB_RUNNER_BIN) checks the report it really writes for a Metastore
//! that is down.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use aurum_operator::crd::DataLake;
use common::*;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// A loopback port where nothing listens (bound, then released).
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr").port()
}

/// The preprocess container's AURUM_METASTORE* variables of the ingest Jobs.
async fn metastore_env(env: &TestEnv) -> Vec<Vec<(String, String)>> {
    env.jobs()
        .await
        .into_iter()
        .map(|j| {
            let pod = j.spec.unwrap().template.spec.unwrap();
            let init = &pod.init_containers.unwrap()[0];
            assert!(
                init.env
                    .iter()
                    .flatten()
                    .all(|e| !e.name.starts_with("AURUM_METASTORE")),
                "feed must not get the Metastore"
            );
            pod.containers[0]
                .env
                .iter()
                .flatten()
                .filter(|e| e.name.starts_with("AURUM_METASTORE"))
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_catalogs_are_rejected_by_the_api_server() {
    let Some(env) = TestEnv::new("catalog-crd", fake_runner()).await else {
        return;
    };
    let dl: Api<DataLake> = env.api();
    let pp = PatchParams::apply("tests").force();
    let cases = [
        (
            json!({"metastore": "http://hms:9083"}),
            "spec.catalog.metastore",
        ),
        (
            json!({"metastore": "thrift://hms"}),
            "spec.catalog.metastore",
        ),
        (
            json!({"metastore": "thrift://hms:9083/db"}),
            "spec.catalog.metastore",
        ),
        (
            json!({"database": "aurum"}),
            "spec.catalog.metastore: Required value",
        ),
        (
            json!({"metastore": "thrift://hms:9083", "database": "Silver-DB"}),
            "spec.catalog.database",
        ),
        (
            json!({"metastore": "thrift://hms:9083", "database": ""}),
            "spec.catalog.database",
        ),
    ];
    for (i, (catalog, want)) in cases.into_iter().enumerate() {
        let name = format!("bad{i}");
        let obj = env.lake_json(&name, json!({ "catalog": catalog }));
        let err = dl
            .patch(&name, &pp, &Patch::Apply(&obj))
            .await
            .expect_err(&format!("{catalog} must be rejected"));
        assert!(
            err.to_string().contains(want),
            "{catalog}: expected {want:?} in {err}"
        );
    }
    // Host names, IPv4 and IPv6 addresses are accepted; the database defaults to aurum.
    for (i, url) in [
        "thrift://hive-metastore.data.svc:9083",
        "thrift://10.0.0.7:9083/",
        "thrift://[fd00::7]:9083",
    ]
    .into_iter()
    .enumerate()
    {
        let ok: DataLake = env
            .apply(env.lake_json(
                &format!("ok{i}"),
                json!({"catalog": {"metastore": url}, "suspend": true}),
            ))
            .await;
        let c = ok.spec.catalog.expect("catalog");
        assert_eq!((c.metastore.as_str(), c.database.as_str()), (url, "aurum"));
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_reaches_the_job_and_its_outcome_the_status() {
    let Some(env) = TestEnv::new("catalog", fake_runner()).await else {
        return;
    };
    let dl: Api<DataLake> = env.api();
    let op = Operator::start(&env.client, &env.ns, "op-a").await;

    // A Metastore that is down: the run succeeds, the registration failed.
    let down = format!("thrift://127.0.0.1:{}", closed_port().await);
    env.apply::<DataLake>(env.lake_json(
        "lake",
        json!({"catalog": {"metastore": down, "database": "silver"}}),
    ))
    .await;
    let l = wait_status(&dl, "lake", "catalog Failed", T, |st| {
        available_and_idle(st) && st["catalog"]["status"] == "Failed"
    })
    .await;
    assert_eq!(
        metastore_env(&env).await,
        [[
            ("AURUM_METASTORE".to_string(), down.clone()),
            ("AURUM_METASTORE_DATABASE".to_string(), "silver".to_string()),
        ]]
    );
    let st = status_json(&l);
    assert_eq!(st["phase"], "Ready", "{st:#}");
    assert!(cond_is(&st, "Degraded", "False"), "{st:#}");
    let (status, reason, message) = cond(&l, "CatalogRegistered").expect("CatalogRegistered");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "RegistrationFailed")
    );
    assert!(message.contains("connection refused"), "{message}");
    assert!(message.contains("snap-1"), "{message}");
    let c = &st["catalog"];
    assert_eq!(c["metastore"], down.as_str());
    assert_eq!(c["database"], "silver");
    assert_eq!(c["snapshotId"], "snap-1");
    assert_eq!(st["silverSnapshotId"], "snap-1");
    assert!(c["registeredSnapshotId"].is_null(), "{c:#}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{c:#}"
    );

    // The Metastore is up: the next run (the spec changed) registers.
    let hms = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up = format!("thrift://127.0.0.1:{}", hms.local_addr().unwrap().port());
    env.apply::<DataLake>(env.lake_json("lake", json!({"catalog": {"metastore": up}})))
        .await;
    let l = wait_status(&dl, "lake", "catalog Registered", T, |st| {
        available_and_idle(st) && st["catalog"]["status"] == "Registered"
    })
    .await;
    let st = status_json(&l);
    let c = &st["catalog"];
    assert_eq!(c["database"], "aurum");
    assert_eq!(c["snapshotId"], "snap-2");
    assert_eq!(c["registeredSnapshotId"], "snap-2");
    assert!(c["lastRegisteredTime"].is_string(), "{c:#}");
    let (status, reason, _) = cond(&l, "CatalogRegistered").expect("CatalogRegistered");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Registered"));

    // Down again: Failed, and the tables still point at snap-2.
    drop(hms);
    env.apply::<DataLake>(env.lake_json(
        "lake",
        json!({"catalog": {"metastore": up}, "runOnSpecChange": true, "maxRetries": 4}),
    ))
    .await;
    let l = wait_status(&dl, "lake", "catalog Failed again", T, |st| {
        available_and_idle(st) && st["catalog"]["snapshotId"] == "snap-3"
    })
    .await;
    let st = status_json(&l);
    assert_eq!(st["catalog"]["status"], "Failed", "{st:#}");
    assert_eq!(st["catalog"]["registeredSnapshotId"], "snap-2", "{st:#}");
    assert_eq!(st["phase"], "Ready", "{st:#}");

    // Without spec.catalog, the Job gets no Metastore and the status forgets it.
    env.apply::<DataLake>(env.lake_json("lake", json!({})))
        .await;
    let l = wait_status(&dl, "lake", "catalog forgotten", T, |st| {
        available_and_idle(st) && st["silverSnapshotId"] == "snap-4"
    })
    .await;
    assert!(status_json(&l)["catalog"].is_null());
    assert!(cond(&l, "CatalogRegistered").is_none());
    let envs = metastore_env(&env).await;
    assert_eq!(envs.len(), 4);
    assert!(envs.iter().any(|e| e.is_empty()), "{envs:?}");
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_job_runner_reports_a_metastore_that_is_down() {
    let Some(runner) = real_runner("real_job_runner_reports_a_metastore_that_is_down") else {
        return;
    };
    let Some(env) = TestEnv::new("catalog-real", runner.clone()).await else {
        return;
    };
    let src = env.dir.path().join("src");
    let generated = std::process::Command::new(&runner)
        .args(["generate", "--out"])
        .arg(&src)
        .args(["--transactions", "500"])
        .output()
        .expect("run generate");
    assert!(
        generated.status.success(),
        "generate: {}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let dl: Api<DataLake> = env.api();
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    let down = format!("thrift://127.0.0.1:{}", closed_port().await);
    env.apply::<DataLake>(env.lake_json("lake", json!({"catalog": {"metastore": down}})))
        .await;
    let l = wait_status(
        &dl,
        "lake",
        "catalog reported",
        Duration::from_secs(180),
        |st| {
            st["activeRun"].is_null()
                && (st["catalog"].is_object() || cond_is(st, "Degraded", "True"))
        },
    )
    .await;
    let st = status_json(&l);
    assert_eq!(st["phase"], "Ready", "{st:#}");
    let c = &st["catalog"];
    assert_eq!(c["status"], "Failed", "{st:#}");
    assert_eq!(c["metastore"], down.as_str());
    assert_eq!(c["database"], "aurum");
    // The registration was for the snapshot the run published.
    assert!(st["silverSnapshotId"].is_string(), "{st:#}");
    assert_eq!(c["snapshotId"], st["silverSnapshotId"], "{st:#}");
    let msg = c["message"].as_str().unwrap();
    assert!(msg.contains(&down), "{msg}");
    let (status, reason, _) = cond(&l, "CatalogRegistered").expect("CatalogRegistered");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "RegistrationFailed")
    );

    // A real Metastore (testenv/metastore.sh) when the test has one.
    let Ok(hms) = std::env::var("AURUM_METASTORE_URL") else {
        eprintln!(
            "\n!!!!! SKIPPED the registered half of real_job_runner_reports_a_metastore_that_is_down: \
             AURUM_METASTORE_URL is not set (eval \"$(testenv/metastore.sh start DIR)\") !!!!!\n"
        );
        op.stop().await;
        env.cleanup().await;
        return;
    };
    let database = env.ns.replace('-', "_");
    env.apply::<DataLake>(env.lake_json(
        "lake",
        json!({"catalog": {"metastore": hms, "database": database}}),
    ))
    .await;
    let before = st["silverSnapshotId"].clone();
    let l = wait_status(
        &dl,
        "lake",
        "a new snapshot registered",
        Duration::from_secs(180),
        |st| {
            st["activeRun"].is_null()
                && st["silverSnapshotId"] != before
                && (st["catalog"]["snapshotId"] == st["silverSnapshotId"]
                    || cond_is(st, "Degraded", "True"))
        },
    )
    .await;
    let st = status_json(&l);
    let c = &st["catalog"];
    assert_eq!(c["status"], "Registered", "{st:#}");
    assert_eq!(c["metastore"], hms.as_str());
    assert_eq!(c["database"], database.as_str());
    assert_eq!(c["registeredSnapshotId"], st["silverSnapshotId"], "{st:#}");
    // Silver's 4 tables and their 4 rejects tables.
    let msg = c["message"].as_str().unwrap();
    assert!(msg.starts_with("8 tables registered"), "{msg}");
    let (status, reason, message) = cond(&l, "CatalogRegistered").expect("CatalogRegistered");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Registered"));
    assert!(
        message.contains(st["silverSnapshotId"].as_str().unwrap()),
        "{message}"
    );
    op.stop().await;
    env.cleanup().await;
}
