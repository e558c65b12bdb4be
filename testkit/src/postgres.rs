//! Test databases on the PostgreSQL server of `DATABASE_URL`.

use std::path::Path;

use tokio_postgres::{Client, NoTls};

/// The admin URL in `DATABASE_URL`; panics, saying how to start a server, when it
/// is not set.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must point at a PostgreSQL with admin rights: \
         eval \"$(testenv/postgres.sh start DIR)\"",
    )
}

/// The URL of database `name` on the server of the URL `admin` (same credentials
/// and query parameters).
pub fn url_for(admin: &str, name: &str) -> String {
    let (base, rest) = admin
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{name}{query}")
}

/// A client connected to `url`, its connection driven by a spawned task.
pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Creates the empty database `{prefix}{pid}` of this test process on the server of
/// `admin` and returns its name. One per process, so that concurrent test runs on the
/// same server do not collide; a leftover of this pid and the databases of processes
/// that are gone (`{prefix}` and a pid without a `/proc` entry) are dropped first.
pub async fn create_process_database(admin: &str, prefix: &str) -> String {
    let name = format!("{prefix}{}", std::process::id());
    let client = connect(admin).await;
    let existing = client
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&prefix],
        )
        .await
        .expect("list the test databases");
    for row in existing {
        let db: String = row.get(0);
        let pid = db.trim_start_matches(prefix);
        let numeric = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
        if db == name || (numeric && !Path::new("/proc").join(pid).exists()) {
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await
                .expect("drop an old test database");
        }
    }
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    name
}
