//! `spec.engine` of DataLakes and Datamarts on a real kube-apiserver +
//! kube-controller-manager (testenv/kube.sh): the API server rejects what is
//! neither `in-process` nor `ballista://HOST:PORT`, the operator gives the
//! run's container `AURUM_ENGINE` (a Datamart without its own engine takes its
//! DataLake's), and the status records where each run went. The stand-in
//! job-runner checks the orchestration only: whether the real job-runner runs
//! on Ballista is the job-runner's tests' business (docs/ballista.md).
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use aurum_operator::crd::{DataLake, Datamart};
use common::*;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const MESSAGE: &str = "engine must be in-process or ballista://HOST:PORT";

/// Applies `obj` and expects the API server to refuse it, saying `want`.
async fn refused<K>(api: &Api<K>, obj: &serde_json::Value, want: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj["metadata"]["name"].as_str().unwrap();
    let pp = PatchParams::apply("tests").force();
    let err = api
        .patch(name, &pp, &Patch::Apply(obj))
        .await
        .expect_err(&format!("{} must be refused", obj["spec"]));
    assert!(
        err.to_string().contains(want),
        "{}: expected {want:?} in {err}",
        obj["spec"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_engines_are_rejected_by_the_api_server() {
    let Some(env) = TestEnv::new("engine-crd", fake_runner()).await else {
        return;
    };
    let dl: Api<DataLake> = env.api();
    let dm: Api<Datamart> = env.api();
    let cases = [
        ("spark://master:7077", MESSAGE),
        ("ballista://scheduler", MESSAGE),
        ("ballista://scheduler:", MESSAGE),
        ("ballista://scheduler:123456", MESSAGE),
        ("ballista://-scheduler:50050", MESSAGE),
        ("ballista://scheduler:50050/", MESSAGE),
        ("ballista://user@scheduler:50050", MESSAGE),
        ("In-Process", MESSAGE),
        (" in-process", MESSAGE),
        ("", "spec.engine in body should be at least 1 chars long"),
    ];
    for (i, (engine, want)) in cases.into_iter().enumerate() {
        let name = format!("bad{i}");
        let spec = json!({ "engine": engine, "suspend": true });
        let lake = env.lake_json(&name, spec.clone());
        refused(&dl, &lake, want).await;
        refused(
            &dm,
            &datamart_json(&name, "lake", "monthly-sales", "pg", spec),
            want,
        )
        .await;
    }
    // The default, Service names (short and cluster-wide) and addresses pass.
    for (i, engine) in [
        "in-process",
        "ballista://aurum-ballista-scheduler:50050",
        "ballista://aurum-ballista-scheduler.data.svc.cluster.local:50050",
        "ballista://10.0.0.7:1",
    ]
    .into_iter()
    .enumerate()
    {
        let lake: DataLake = env
            .apply(env.lake_json(
                &format!("ok{i}"),
                json!({"engine": engine, "suspend": true}),
            ))
            .await;
        assert_eq!(lake.spec.run.engine.as_deref(), Some(engine));
        let mart: Datamart = env
            .apply(datamart_json(
                &format!("ok{i}"),
                "lake",
                "monthly-sales",
                "pg",
                json!({"engine": engine, "suspend": true}),
            ))
            .await;
        assert_eq!(mart.spec.run.engine.as_deref(), Some(engine));
    }
    // Leaving it out is the in-process default.
    let lake: DataLake = env
        .apply(env.lake_json("none", json!({"suspend": true})))
        .await;
    assert_eq!(lake.spec.run.engine, None);
    env.cleanup().await;
}

/// The AURUM_ENGINE each container of `pod` (any of its Jobs) ran with, by
/// container name, in the order the stand-in kubelet ran them.
fn engines_of(env: &TestEnv, pod_prefix: &str) -> Vec<(String, Option<String>)> {
    env.kubelet
        .runs()
        .into_iter()
        .filter(|r| r.pod.starts_with(pod_prefix))
        .map(|r| (r.container, r.env.get("AURUM_ENGINE").cloned()))
        .collect()
}

/// The engine the newest finished run of a resource recorded in its status.
fn last_run_engine(st: &serde_json::Value) -> serde_json::Value {
    st["runs"][0]["engine"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engine_reaches_the_jobs_and_datamarts_inherit_it() {
    let Some(env) = TestEnv::new("engine", fake_runner()).await else {
        return;
    };
    let (_db, url) = reachable_db().await;
    env.secret("pg", &url).await;
    let dl: Api<DataLake> = env.api();
    let dm: Api<Datamart> = env.api();
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    let ballista = "ballista://aurum-ballista-scheduler:50050";

    env.apply::<DataLake>(env.lake_json("lake", json!({ "engine": ballista })))
        .await;
    // One Datamart inherits the lake's engine, one names its own, one opts out.
    env.apply::<Datamart>(datamart_json(
        "inherits",
        "lake",
        "monthly-sales",
        "pg",
        json!({}),
    ))
    .await;
    env.apply::<Datamart>(datamart_json(
        "own",
        "lake",
        "sales-country-year",
        "pg",
        json!({"engine": "ballista://other-scheduler.data.svc:7000"}),
    ))
    .await;
    env.apply::<Datamart>(datamart_json(
        "local",
        "lake",
        "customer-lifetime-value",
        "pg",
        json!({"engine": "in-process"}),
    ))
    .await;

    let l = wait_status(&dl, "lake", "Available", T, available_and_idle).await;
    assert_eq!(last_run_engine(&status_json(&l)), ballista);
    // Preprocess runs on the engine; feed, which only copies CSVs, does not.
    assert_eq!(
        engines_of(&env, "lake-ingest-"),
        [
            ("feed".to_string(), None),
            ("job-runner".to_string(), Some(ballista.to_string())),
        ]
    );
    for (name, want_env, want_status) in [
        ("inherits", Some(ballista), ballista),
        (
            "own",
            Some("ballista://other-scheduler.data.svc:7000"),
            "ballista://other-scheduler.data.svc:7000",
        ),
        // In-process is the job-runner's default: no variable at all.
        ("local", None, "in-process"),
    ] {
        let d = wait_status(&dm, name, "Available on snap-1", T, |st| {
            available_and_idle(st) && st["silverSnapshotId"] == "snap-1"
        })
        .await;
        assert_eq!(last_run_engine(&status_json(&d)), want_status, "{name}");
        assert_eq!(
            engines_of(&env, &format!("{name}-datamart-")),
            [("job-runner".to_string(), want_env.map(String::from))],
            "{name}"
        );
    }
    // The Jobs say where they ran.
    for j in env.jobs().await {
        let ann = j.metadata.annotations.clone().unwrap_or_default();
        let want = match j.metadata.name.as_deref().unwrap_or("") {
            n if n.starts_with("own-") => "ballista://other-scheduler.data.svc:7000",
            n if n.starts_with("local-") => "in-process",
            _ => ballista,
        };
        assert_eq!(
            ann.get("aurum.dev/engine").map(String::as_str),
            Some(want),
            "{:?}",
            j.metadata.name
        );
    }

    // The lake back in-process: its next run (and the inheriting Datamart's
    // next, for the new snapshot) carry no engine.
    env.apply::<DataLake>(env.lake_json("lake", json!({})))
        .await;
    let l = wait_status(&dl, "lake", "snap-2", T, |st| {
        available_and_idle(st) && st["silverSnapshotId"] == "snap-2"
    })
    .await;
    assert_eq!(last_run_engine(&status_json(&l)), "in-process");
    assert_eq!(
        engines_of(&env, "lake-ingest-")[2..],
        [("feed".to_string(), None), ("job-runner".to_string(), None)]
    );
    let d = wait_status(&dm, "inherits", "Available on snap-2", T, |st| {
        available_and_idle(st) && st["silverSnapshotId"] == "snap-2"
    })
    .await;
    assert_eq!(last_run_engine(&status_json(&d)), "in-process");
    assert_eq!(
        engines_of(&env, "inherits-datamart-"),
        [
            ("job-runner".to_string(), Some(ballista.to_string())),
            ("job-runner".to_string(), None),
        ]
    );
    op.stop().await;
    env.cleanup().await;
}
