//! `aurum_gold::postgres` against the real test PostgreSQL, which runs with TLS
//! on and a test CA (testenv/postgres.sh): every `sslmode`, right and wrong CAs
//! and host names, and a login that the server accepts over TLS only.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

use aurum_gold::postgres::PgConfig;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the test PostgreSQL with TLS: \
             eval \"$(testenv/postgres.sh start DIR)\"; export {name}"
        )
    })
}

/// The TLS-only user's URL (host `localhost`, the name in the server's
/// certificate) with `params` appended.
fn tls_only(params: &str) -> String {
    format!("{}?{params}", env("AURUM_PG_TLS_ONLY_URL"))
}

fn ca() -> String {
    env("AURUM_PG_TLS_CA")
}

/// Connects and answers whether the session is encrypted, or the error text.
async fn encrypted(url: &str) -> Result<bool, String> {
    let pg = PgConfig::from_url(url).map_err(|e| e.to_string())?;
    let (client, connection) = pg.connect().await?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn verify_full_connects_with_the_right_ca_and_host_name() {
    let url = tls_only(&format!("sslmode=verify-full&sslrootcert={}", ca()));
    assert_eq!(encrypted(&url).await, Ok(true));
}

#[tokio::test]
async fn key_value_urls_work_too() {
    let url = env("AURUM_PG_TLS_ONLY_URL");
    let rest = url.strip_prefix("postgres://").unwrap();
    let (cred, host) = rest.split_once('@').unwrap();
    let (user, password) = cred.split_once(':').unwrap();
    let (hostport, db) = host.split_once('/').unwrap();
    let (host, port) = hostport.split_once(':').unwrap();
    let kv = format!(
        "host={host} port={port} user={user} password='{password}' dbname={db} \
         sslmode=verify-full sslrootcert='{}'",
        ca()
    );
    assert_eq!(encrypted(&kv).await, Ok(true));
}

#[tokio::test]
async fn a_wrong_ca_is_refused_clearly() {
    for mode in ["verify-full", "verify-ca", "require"] {
        let other = env("AURUM_PG_TLS_OTHER_CA");
        let url = tls_only(&format!("sslmode={mode}&sslrootcert={other}"));
        let err = encrypted(&url).await.unwrap_err();
        assert!(
            err.contains("not signed by a CA in sslrootcert") && err.contains(&other),
            "{mode}: {err}"
        );
    }
}

#[tokio::test]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_hold() {
    // The certificate names `localhost` only; connect by address.
    let by_address = tls_only(&format!("sslmode=verify-full&sslrootcert={}", ca())).replacen(
        "@localhost:",
        "@127.0.0.1:",
        1,
    );
    let err = encrypted(&by_address).await.unwrap_err();
    assert!(
        err.contains("does not name the host") && err.contains("verify-full"),
        "{err}"
    );
    // verify-ca checks only the chain, so the same address is fine.
    let chain_only = by_address.replacen("sslmode=verify-full", "sslmode=verify-ca", 1);
    assert_eq!(encrypted(&chain_only).await, Ok(true));
}

#[tokio::test]
async fn require_and_prefer_encrypt_without_a_ca() {
    assert_eq!(encrypted(&tls_only("sslmode=require")).await, Ok(true));
    // The server offers TLS, so prefer (also the default) takes it.
    assert_eq!(encrypted(&tls_only("sslmode=prefer")).await, Ok(true));
    assert_eq!(
        encrypted(&env("AURUM_PG_TLS_ONLY_URL")).await,
        Ok(true),
        "no sslmode means prefer"
    );
}

#[tokio::test]
async fn disable_against_a_tls_only_login_fails_clearly() {
    let err = encrypted(&tls_only("sslmode=disable")).await.unwrap_err();
    assert!(
        err.contains("no encryption")
            && err.contains("over TLS only")
            && err.contains("sslmode=disable"),
        "{err}"
    );
    // A login that may go without TLS really does with disable.
    let admin = env("DATABASE_URL");
    let sep = if admin.contains('?') { '&' } else { '?' };
    assert_eq!(
        encrypted(&format!("{admin}{sep}sslmode=disable")).await,
        Ok(false)
    );
}
