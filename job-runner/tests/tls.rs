//! The real `aurum-job-runner` publishes over TLS with `sslmode=verify-full`, as a
//! login the test PostgreSQL accepts over TLS only (testenv/postgres.sh), and
//! says clearly what is wrong with a wrong CA or `sslmode=disable`.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use support::path_arg;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: eval \"$(testenv/postgres.sh start DIR)\"; export {name}")
    })
}

#[tokio::test]
async fn datamart_publishes_over_verified_tls() {
    // A database of the TLS-only login's own.
    let admin = support::connect(&support::admin_url()).await;
    let database = format!("aurum_test_tls_{}", std::process::id());
    admin
        .simple_query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .simple_query(&format!("CREATE DATABASE {database} OWNER aurum_tls"))
        .await
        .unwrap();
    let tls_only = support::with_database(&env("AURUM_PG_TLS_ONLY_URL"), &database);

    let (dir, source) = support::generated_source(300, 3);
    let lake = dir.path().join("lake");
    support::feed(path_arg(&source), path_arg(&lake), "2024-01-01");
    support::job_runner_ok(&["preprocess", "--lake", path_arg(&lake)]);
    let datamart = |url: &str| {
        support::job_runner(
            &[
                "datamart",
                "monthly-sales",
                "--lake",
                path_arg(&lake),
                "--database-url",
                url,
            ],
            &[],
        )
    };

    let verified = format!(
        "{tls_only}?sslmode=verify-full&sslrootcert={}",
        env("AURUM_PG_TLS_CA")
    );
    let output = datamart(&verified);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let client = support::connect(&support::with_database(&support::admin_url(), &database)).await;
    let rows: i64 = client
        .query_one("SELECT count(*) FROM gold_monthly_sales", &[])
        .await
        .unwrap()
        .get(0);
    assert!(rows > 0);

    let wrong_ca = format!(
        "{tls_only}?sslmode=verify-full&sslrootcert={}",
        env("AURUM_PG_TLS_OTHER_CA")
    );
    let output = datamart(&wrong_ca);
    assert_eq!(output.status.code(), Some(1));
    let message = support::last_error_line(&output);
    assert!(
        message.contains("not signed by a CA in sslrootcert"),
        "{message}"
    );

    let output = datamart(&format!("{tls_only}?sslmode=disable"));
    assert_eq!(output.status.code(), Some(1));
    let message = support::last_error_line(&output);
    assert!(message.contains("over TLS only"), "{message}");

    drop(client);
    admin
        .simple_query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await
        .unwrap();
}
