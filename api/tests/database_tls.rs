//! The real `aurum-api` reads the gold tables over TLS with
//! `sslmode=verify-full` (testenv/postgres.sh runs PostgreSQL with a test CA),
//! and refuses to start on a verifying mode without a CA.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{Api, TestDb, VIEWER};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: eval \"$(testenv/postgres.sh start DIR)\"; export {name}")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_gold_over_verified_tls() {
    let db = TestDb::new().await;
    // The server's certificate names localhost.
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url.replacen("@127.0.0.1:", "@localhost:", 1),
        env("AURUM_PG_TLS_CA")
    );
    assert!(url.contains("@localhost:"), "{url}");
    let api = Api::start(&url, &[]).await;
    api.wait_loaded().await;
    let token = api.login(&VIEWER).await;
    assert_eq!(api.get("/gold/monthly-sales", &token).await.status(), 200);

    // Every connection the API holds to this database is encrypted.
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1 AND a.application_name = 'aurum-api'",
            &[&db.name],
        )
        .await
        .unwrap();
    let (connections, all_tls): (i64, bool) = (row.get(0), row.get(1));
    assert!(
        connections > 0,
        "the API holds no connection to {}",
        db.name
    );
    assert!(all_tls, "an API connection is not encrypted");
}

#[test]
fn a_verifying_mode_without_a_ca_is_a_configuration_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aurum-api"))
        .args([
            "--database-url",
            "postgres://aurum@localhost/aurum?sslmode=verify-full",
            "--dev",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs sslrootcert"), "{stderr}");
}
