//! The Helm quickstart's gold tables, built by job-runner pods on a real node
//! from the sample data in `source/`, checked value by value against the
//! independent reference in `support`.
//!
//! `charts/tests/quickstart.sh` runs it once the quickstart's DataLake and
//! Datamarts are Ready, with `AURUM_QUICKSTART_DATABASE_URL` reaching the
//! in-cluster PostgreSQL (through a port-forward). It is ignored by a plain
//! `cargo test`, which has no cluster.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::path::Path;

use support::{assert_gold_matches, reference};

#[tokio::test]
#[ignore = "needs the Helm quickstart on a real node: charts/tests/quickstart.sh runs it"]
async fn the_quickstart_gold_tables_match_the_reference() {
    let url = std::env::var("AURUM_QUICKSTART_DATABASE_URL").expect(
        "AURUM_QUICKSTART_DATABASE_URL must reach the quickstart's PostgreSQL \
         (charts/tests/quickstart.sh sets it)",
    );
    let top_n = std::env::var("AURUM_QUICKSTART_TOP_N")
        .ok()
        .map(|n| n.parse().expect("AURUM_QUICKSTART_TOP_N is a number"))
        .unwrap_or(10);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../source");
    assert_gold_matches(&url, &reference::gold(&[&source], top_n)).await;
}
