//! The operator says what goes wrong, on a real kube-apiserver +
//! kube-controller-manager (testenv/kube.sh): failed reconciles become
//! Warning events and conditions, a broken watch makes /readyz fail, an
//! object the CRD no longer describes is reported and skipped, and every
//! reconcile is counted in /metrics.
//!
//! Two tests here delete or loosen the cluster-wide CRDs; a lock keeps the
//! tests of this file from running while they do (test binaries run one
//! after the other).
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use aurum_operator::crd::{DataLake, Datamart};
use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;
use tokio::sync::RwLock;

const T: Duration = Duration::from_secs(60);

/// Shared by the tests that only use the CRDs, exclusive for those that change them.
static CRDS: RwLock<()> = RwLock::const_new(());

/// The value of the sample `name{labels}` in the operator's /metrics (0 when absent).
async fn metric(op: &Operator, sample: &str) -> f64 {
    let (_, body) = op.get("/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits for an event with `reason` on the object `name`; returns its note.
async fn event_note(env: &TestEnv, name: &str, reason: &str) -> String {
    eventually(T, || async {
        env.events_for(name)
            .await
            .into_iter()
            .find(|(r, _)| r == reason)
            .map(|(_, note)| note)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_foreign_job_is_a_warning_event_and_a_condition_that_says_what_to_do() {
    let _shared = CRDS.read().await;
    let Some(env) = TestEnv::new("foreign", fake_runner()).await else {
        return;
    };
    env.apply::<DataLake>(env.lake_json("lake", json!({})))
        .await;
    let dm = env
        .apply::<Datamart>(datamart_json(
            "top",
            "lake",
            "top-products",
            "pg",
            json!({"suspend": true}),
        ))
        .await;
    // The Jobs the Datamart's first runs would create, already taken by
    // someone else (suspended: no pod ever starts).
    let uid = dm.uid().expect("uid");
    let jobs: Api<Job> = env.api();
    for generation in [1, 2] {
        let name =
            aurum_operator::job::job_name("top", &uid, "datamart", &format!("gen-{generation}"));
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"suspend": true, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]
            }}}
        }))
        .expect("job");
        jobs.create(&PostParams::default(), &job)
            .await
            .expect("create foreign job");
    }
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    let lakes: Api<DataLake> = env.api();
    wait_status(&lakes, "lake", "Available", T, |s| {
        cond_is(s, "Available", "True")
    })
    .await;
    env.apply::<Datamart>(datamart_json(
        "top",
        "lake",
        "top-products",
        "pg",
        json!({}),
    ))
    .await;

    let note = event_note(&env, "top", "ForeignJob").await;
    assert!(
        note.contains("exists but belongs to another object") && note.contains("delete that Job"),
        "{note}"
    );
    let api: Api<Datamart> = env.api();
    let m = wait_status(&api, "top", "Degraded ForeignJob", T, |s| {
        s["conditions"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == "Degraded" && c["status"] == "True" && c["reason"] == "ForeignJob"
            })
        })
    })
    .await;
    let (_, _, message) = cond(&m, "Degraded").expect("Degraded");
    assert!(message.contains("retries every 5 minutes"), "{message}");
    let errors = metric(
        &op,
        "aurum_operator_reconcile_errors_total{kind=\"Datamart\",error=\"foreign_job\"}",
    )
    .await;
    assert!(errors >= 1.0, "errors {errors}");
    let outcomes = metric(
        &op,
        "aurum_operator_reconcile_outcomes_total{kind=\"Datamart\",outcome=\"foreign_job\"}",
    )
    .await;
    assert!(outcomes >= 1.0, "outcomes {outcomes}");
    // Only a person fixes it: the operator does not hammer the API server.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = metric(
        &op,
        "aurum_operator_reconcile_errors_total{kind=\"Datamart\",error=\"foreign_job\"}",
    )
    .await;
    assert!(
        later <= errors + 1.0,
        "retried too soon: {errors} -> {later}"
    );

    // Doing what the condition says, then any change, retries at once.
    let foreign = aurum_operator::job::job_name("top", &uid, "datamart", "gen-2");
    jobs.delete(&foreign, &DeleteParams::background())
        .await
        .expect("delete foreign job");
    eventually(T, || async {
        jobs.get_opt(&foreign).await.ok()?.is_none().then_some(())
    })
    .await;
    api.patch(
        "top",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"example.com/touched": "1"}}})),
    )
    .await
    .expect("annotate");
    let m = wait_status(&api, "top", "run started", T, |s| {
        !s["lastRunTime"].is_null()
    })
    .await;
    let st = status_json(&m);
    let ran = st["activeRun"]["jobName"]
        .as_str()
        .or(st["runs"][0]["jobName"].as_str());
    assert_eq!(ran, Some(foreign.as_str()), "{st:#}");
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gold_table_that_cannot_be_dropped_is_reported_with_its_cause() {
    let _shared = CRDS.read().await;
    let Some(env) = TestEnv::new("dropfail", fake_runner()).await else {
        return;
    };
    // Nothing listens on port 1: the connection is refused.
    env.secret("pg", "postgres://aurum:secret@127.0.0.1:1/aurum")
        .await;
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    env.apply::<DataLake>(env.lake_json("lake", json!({"suspend": true})))
        .await;
    env.apply::<Datamart>(datamart_json(
        "drop",
        "lake",
        "monthly-sales",
        "pg",
        json!({"suspend": true, "deletionPolicy": "Delete"}),
    ))
    .await;
    let api: Api<Datamart> = env.api();
    eventually(T, || async {
        let m = api.get("drop").await.ok()?;
        m.finalizers()
            .iter()
            .any(|f| f == "aurum.dev/gold-table")
            .then_some(())
    })
    .await;
    let sample =
        "aurum_operator_reconcile_outcomes_total{kind=\"Datamart\",outcome=\"drop_table\"}";
    assert_eq!(metric(&op, sample).await, 0.0);
    api.delete("drop", &DeleteParams::default())
        .await
        .expect("delete");

    let note = event_note(&env, "drop", "GoldTableDropFailed").await;
    assert!(
        note.contains("cannot drop gold table \"public\".\"gold_monthly_sales\"")
            && note.contains("connecting to PostgreSQL")
            && note.contains("deletionPolicy to Retain"),
        "{note}"
    );
    let m = wait_status(&api, "drop", "Degraded GoldTableDropFailed", T, |s| {
        s["conditions"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == "Degraded"
                    && c["status"] == "True"
                    && c["reason"] == "GoldTableDropFailed"
            })
        })
    })
    .await;
    assert!(m.metadata.deletion_timestamp.is_some());
    // The cleanup path is timed and counted like any reconcile.
    assert!(metric(&op, sample).await >= 1.0);

    // What the condition says to do works: Retain lets the Datamart go.
    api.patch(
        "drop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"deletionPolicy": "Retain"}})),
    )
    .await
    .expect("patch");
    eventually(T, || async {
        api.get_opt("drop").await.ok()?.is_none().then_some(())
    })
    .await;
    op.stop().await;
    env.cleanup().await;
}

/// Deletes the Datamart CRD and waits until it is gone.
async fn delete_datamart_crd(env: &TestEnv) {
    // A finalizer left by another run would keep the CRD terminating.
    // Untyped: a Datamart left by another test may not deserialize.
    let ar = kube::api::ApiResource::erase::<Datamart>(&());
    let all: Api<kube::api::DynamicObject> = Api::all_with(env.client.clone(), &ar);
    for d in all.list(&ListParams::default()).await.expect("list").items {
        let ns: Api<kube::api::DynamicObject> =
            Api::namespaced_with(env.client.clone(), &d.namespace().unwrap_or_default(), &ar);
        let _ = ns
            .patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    crds.delete("datamarts.aurum.dev", &DeleteParams::default())
        .await
        .expect("delete CRD");
    eventually(Duration::from_secs(90), || async {
        crds.get_opt("datamarts.aurum.dev")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_fails_while_a_crd_is_missing_and_recovers() {
    let _exclusive = CRDS.write().await;
    let Some(env) = TestEnv::new("readyz", fake_runner()).await else {
        return;
    };
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    let watch_ok = "aurum_operator_watch_healthy{watch=\"datamarts\"}";
    eventually(T, || async {
        (metric(&op, watch_ok).await == 1.0).then_some(())
    })
    .await;
    assert_eq!(op.get("/readyz").await.0, 200);

    delete_datamart_crd(&env).await;
    let body = eventually(T, || async {
        let (code, body) = op.get("/readyz").await;
        (code == 503).then_some(body)
    })
    .await;
    assert!(body.contains("watch datamarts broken"), "{body}");
    assert_eq!(metric(&op, watch_ok).await, 0.0);
    assert!(
        metric(
            &op,
            "aurum_operator_watch_errors_total{watch=\"datamarts\"}"
        )
        .await
            >= 1.0
    );
    // The DataLake watches are unaffected.
    assert_eq!(
        metric(&op, "aurum_operator_watch_healthy{watch=\"datalakes\"}").await,
        1.0
    );

    install_crds(&env.client).await;
    eventually(Duration::from_secs(90), || async {
        (op.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    // And the controller works again.
    env.apply::<DataLake>(env.lake_json("lake", json!({})))
        .await;
    env.apply::<Datamart>(datamart_json(
        "mart",
        "lake",
        "monthly-sales",
        "pg",
        json!({"suspend": true}),
    ))
    .await;
    let api: Api<Datamart> = env.api();
    wait_status(&api, "mart", "Suspended", T, |s| s["phase"] == "Suspended").await;
    op.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_that_no_longer_deserializes_is_reported_and_the_others_reconcile() {
    let _exclusive = CRDS.write().await;
    let Some(env) = TestEnv::new("malformed", fake_runner()).await else {
        return;
    };
    let op = Operator::start(&env.client, &env.ns, "op-a").await;
    env.apply::<DataLake>(env.lake_json("lake", json!({"suspend": true})))
        .await;

    // An older CRD that allowed a datamart kind this operator does not know.
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let mut crd =
        serde_json::to_value(crds.get("datamarts.aurum.dev").await.expect("crd")).expect("json");
    let enum_ = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["datamart"]["enum"];
    enum_
        .as_array_mut()
        .expect("datamart enum")
        .push(json!("weekly-sales"));
    let looser: CustomResourceDefinition = serde_json::from_value(crd).expect("crd");
    crds.replace("datamarts.aurum.dev", &PostParams::default(), &looser)
        .await
        .expect("loosen CRD");
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &kube::api::ApiResource::erase::<Datamart>(&()),
    );
    let bad = datamart_json(
        "weekly",
        "lake",
        "weekly-sales",
        "pg",
        json!({"suspend": true}),
    );
    eventually(T, || async {
        // The API server takes a moment to serve the new schema.
        let obj: kube::api::DynamicObject = serde_json::from_value(bad.clone()).ok()?;
        raw.create(&PostParams::default(), &obj).await.ok()
    })
    .await;
    // This version's CRD again: the stored object stays as it is.
    install_crds(&env.client).await;

    let note = event_note(&env, "weekly", "InvalidObject").await;
    assert!(note.contains("weekly-sales"), "{note}");
    assert!(
        metric(
            &op,
            "aurum_operator_reconcile_outcomes_total{kind=\"Datamart\",outcome=\"invalid_object\"}"
        )
        .await
            >= 1.0
    );
    // The watch goes on: a Datamart created afterwards reconciles, and the
    // operator stays ready.
    env.apply::<Datamart>(datamart_json(
        "good",
        "lake",
        "monthly-sales",
        "pg",
        json!({"suspend": true}),
    ))
    .await;
    let api: Api<Datamart> = env.api();
    wait_status(&api, "good", "Suspended", T, |s| s["phase"] == "Suspended").await;
    assert_eq!(op.get("/readyz").await.0, 200);

    // Remove the stored object through the untyped API (the typed one cannot read it).
    raw.delete("weekly", &DeleteParams::default())
        .await
        .expect("delete");
    op.stop().await;
    env.cleanup().await;
}
