//! Benchmarks on the real control plane (ignored by default; run with
//! `cargo test -p aurum-operator --test kube_bench -- --ignored --nocapture`):
//! - apply -> Job latency of a Datamart (p50, p99 over 100 applies), with the
//!   operator binary as a separate process;
//! - the operator's memory and reconcile rate with 1,000 Datamarts.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use aurum_operator::crd::{DataLake, Datamart};
use common::*;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use serde_json::json;
use std::time::{Duration, Instant};

struct OperatorProcess {
    child: std::process::Child,
    port: u16,
}

impl OperatorProcess {
    fn start(ns: &str) -> OperatorProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_aurum-operator"))
            .args(["--namespace", ns, "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start aurum-operator");
        OperatorProcess { child, port }
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0)
    }

    async fn metric(&self, name: &str) -> f64 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return 0.0;
        };
        let req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        if s.write_all(req.as_bytes()).await.is_err() {
            return 0.0;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf).await;
        buf.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark"]
async fn bench_apply_to_job_latency() {
    let Some(env) = TestEnv::new("bench-lat", fake_runner()).await else {
        return;
    };
    let (_db, url) = reachable_db().await;
    env.secret("pg", &url).await;
    let op = OperatorProcess::start(&env.ns);
    env.apply::<DataLake>(env.lake_json("lake", json!({})))
        .await;
    let dl: Api<DataLake> = env.api();
    eventually(Duration::from_secs(60), || async {
        dl.get("lake")
            .await
            .ok()?
            .status?
            .silver_snapshot_id
            .map(|_| ())
    })
    .await;
    let jobs: Api<Job> = env.api();
    let mut lat = Vec::new();
    for i in 0..100 {
        let name = format!("dm-{i}");
        let t = Instant::now();
        env.apply::<Datamart>(datamart_json(
            &name,
            "lake",
            "monthly-sales",
            "pg",
            json!({}),
        ))
        .await;
        let sel = format!("aurum.dev/datamart={name}");
        // Poll every 10 ms (eventually() polls every 200 ms).
        loop {
            let lp = ListParams::default().labels(&sel);
            if jobs.list(&lp).await.is_ok_and(|l| !l.items.is_empty()) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no Job for {name}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    eprintln!(
        "BENCH apply->Job over {} applies: p50 {:?}, p99 {:?}, max {:?}; operator RSS {} KiB",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1],
        op.rss_kib()
    );
    drop(op);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark"]
async fn bench_thousand_datamarts() {
    let Some(env) = TestEnv::new("bench-1k", fake_runner()).await else {
        return;
    };
    // A suspended lake and suspended datamarts: reconciles and status writes,
    // no Jobs, so the figure is the operator's own cost.
    env.apply::<DataLake>(env.lake_json("lake", json!({"suspend": true})))
        .await;
    let n = 1000;
    let t = Instant::now();
    for i in 0..n {
        env.apply::<Datamart>(datamart_json(
            &format!("dm-{i}"),
            "lake",
            "monthly-sales",
            "pg",
            json!({"suspend": true}),
        ))
        .await;
    }
    eprintln!("BENCH applied {n} Datamarts in {:?}", t.elapsed());
    let op = OperatorProcess::start(&env.ns);
    let t = Instant::now();
    let dm: Api<Datamart> = env.api();
    eventually(Duration::from_secs(600), || async {
        let list = dm.list(&ListParams::default()).await.ok()?;
        let done = list
            .items
            .iter()
            .filter(|d| {
                d.status.as_ref().and_then(|s| s.state.phase.as_deref()) == Some("Suspended")
            })
            .count();
        (done == n).then_some(())
    })
    .await;
    let took = t.elapsed();
    let reconciles = op.metric("aurum_operator_reconciles_total").await;
    eprintln!(
        "BENCH {n} Datamarts: all Suspended in {took:?} ({:.0} Datamarts/s); {reconciles} reconciles; operator RSS {} KiB",
        n as f64 / took.as_secs_f64(),
        op.rss_kib()
    );
    // Steady state: a full resync pass.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r0 = op.metric("aurum_operator_reconciles_total").await;
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let r1 = op.metric("aurum_operator_reconciles_total").await;
    eprintln!(
        "BENCH idle reconcile rate {:.1}/s; operator RSS {} KiB",
        (r1 - r0) / t.elapsed().as_secs_f64(),
        op.rss_kib()
    );
    drop(op);
    env.cleanup().await;
}
