//! Test fixture: a fresh PostgreSQL database per test (copied from a per-test-file
//! template loaded with gold data) and a real `aurum-api` process serving it.
//!
//! Needs `DATABASE_URL` with admin rights (see testenv/postgres.sh). Gold data comes
//! from the job-runner when `AURUM_JOB_RUNNER_BIN` names its executable (it generates
//! 2000 transactions and runs the pipeline), otherwise from
//! `tests/fixtures/synthetic_gold.sql`. What it shares with the dashboard's fixture
//! (databases, the pipeline, child processes) is in `aurum-testkit`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aurum_testkit::environment::job_runner_bin;
use aurum_testkit::postgres::{admin_url, connect, create_process_database};
use aurum_testkit::process::Process;
pub use aurum_testkit::process::free_port;
use tokio::sync::{Mutex, OnceCell};
use tokio_postgres::{Client, NoTls};

/// Customers in the synthetic fixture.
pub const SYNTHETIC_CUSTOMERS: usize = 2000;

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static CREATE_LOCK: Mutex<()> = Mutex::const_new(());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The URL of database `name` on the server of `DATABASE_URL`.
pub fn url_for(name: &str) -> String {
    aurum_testkit::postgres::url_for(&admin_url(), name)
}

/// True when the gold data is the synthetic fixture (so its special rows exist).
pub fn synthetic() -> bool {
    job_runner_bin().is_none()
}

fn crate_tag() -> String {
    env!("CARGO_CRATE_NAME").replace('-', "_")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn load_template(name: &str) {
    load_gold(&url_for(name)).await;
}

/// Loads gold tables into the (empty) database at `url`: the job-runner's, or the
/// synthetic fixture without one.
pub async fn load_gold(url: &str) {
    let url = url.to_string();
    if let Some(bin) = job_runner_bin() {
        aurum_testkit::gold::load_with_job_runner(&bin, &url, 2000);
    } else {
        let client = connect(&url).await;
        let migration =
            std::fs::read_to_string(repo_root().join("job-runner/migrations/0001_gold.sql"))
                .expect("read 0001_gold.sql");
        client
            .batch_execute(&migration)
            .await
            .expect("apply 0001_gold.sql");
        let fixture = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/synthetic_gold.sql"),
        )
        .expect("read synthetic_gold.sql")
        .replace("{{customers}}", &SYNTHETIC_CUSTOMERS.to_string());
        client
            .batch_execute(&fixture)
            .await
            .expect("load synthetic gold data");
    }
}

async fn template() -> String {
    TEMPLATE
        .get_or_init(|| async {
            // One template per test binary and process (see create_process_database).
            let prefix = format!("aurum_api_tpl_{}_", crate_tag());
            let name = create_process_database(&admin_url(), &prefix).await;
            load_template(&name).await;
            name
        })
        .await
        .clone()
}

/// A database of its own for one test, dropped at the end.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let tpl = template().await;
        let name = format!(
            "aurum_api_t_{}_{}_{}",
            crate_tag(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let _guard = CREATE_LOCK.lock().await;
        let admin = connect(&admin_url()).await;
        let mut tries = 0;
        loop {
            match admin
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {tpl}"))
                .await
            {
                Ok(()) => break,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("create {name}: {e}"),
            }
        }
        let url = url_for(&name);
        TestDb { name, url }
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }

    /// Refuse new connections and terminate existing ones (the database "goes away").
    pub async fn take_down(&self) {
        let admin = connect(&admin_url()).await;
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS false",
                self.name
            ))
            .await
            .expect("refuse connections");
        admin
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                self.name
            ))
            .await
            .expect("terminate backends");
    }

    /// Accept connections again.
    pub async fn bring_up(&self) {
        let admin = connect(&admin_url()).await;
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                self.name
            ))
            .await
            .expect("bring database up");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((c, conn)) = tokio_postgres::connect(&admin_url(), NoTls).await {
                    tokio::spawn(conn);
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

pub const SECRET: &str = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
pub const ISSUER: &str = "aurum-api";
pub const AUDIENCE: &str = "aurum";

/// A user of the users file.
pub struct TestUser {
    pub name: &'static str,
    pub password: &'static str,
    pub role: &'static str,
}

pub const VIEWER: TestUser = TestUser {
    name: "vera",
    password: "viewer-pass-1",
    role: "viewer",
};
pub const ADMIN: TestUser = TestUser {
    name: "adam",
    password: "admin-pass-1",
    role: "admin",
};

/// A running `aurum-api` process.
pub struct Api {
    process: Process,
    pub base: String,
    /// `host:port` of the Flight SQL endpoint.
    pub flight_addr: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub fn write_users(dir: &Path, users: &[&TestUser]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("users");
    let mut content = String::from("# test users\n");
    for u in users {
        // Light argon2id parameters keep the tests quick; the server copies them for
        // its dummy hash, so unknown users still cost the same.
        let params = argon2::Params::new(4096, 2, 1, None).unwrap();
        let hash = aurum_api::users::hash_password(u.password, Some(params)).unwrap();
        content.push_str(&format!("{}:{}:{}\n", u.name, hash, u.role));
    }
    std::fs::write(&path, content).unwrap();
    path
}

impl Api {
    /// Starts the API on `db_url` with the test users and HS256 secret plus `extra` flags.
    pub async fn start(db_url: &str, extra: &[&str]) -> Api {
        Self::start_with(db_url, extra, &[]).await
    }

    pub async fn start_with(db_url: &str, extra: &[&str], env: &[(&str, &str)]) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let users = write_users(dir.path(), &[&VIEWER, &ADMIN]);
        let secret = dir.path().join("secret");
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        let port = free_port();
        let flight_port = free_port();
        let log = dir.path().join("api.log");
        let mut args: Vec<String> = vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            // Each test's API gets a Flight SQL port of its own (tests run in parallel).
            "--flight-listen".into(),
            format!("127.0.0.1:{flight_port}"),
            "--database-url".into(),
            db_url.into(),
            "--users-file".into(),
            users.to_str().unwrap().into(),
            "--jwt-secret-file".into(),
            secret.to_str().unwrap().into(),
            "--refresh-interval-ms".into(),
            "200".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let process = spawn_api(&args, env, &log);
        let api = Api {
            process,
            base: format!("http://127.0.0.1:{port}"),
            flight_addr: format!("127.0.0.1:{flight_port}"),
            dir,
            http: reqwest::Client::builder().build().unwrap(),
        };
        api.wait_healthy().await;
        api
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    async fn wait_healthy(&self) {
        self.process
            .wait_until(Duration::from_secs(60), "API did not start", async || {
                self.http
                    .get(self.url("/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            })
            .await;
    }

    /// Waits until every datamart snapshot is loaded.
    pub async fn wait_loaded(&self) {
        self.process
            .wait_until(
                Duration::from_secs(30),
                "datamarts not loaded",
                async || {
                    let Ok(r) = self.http.get(self.url("/readyz")).send().await else {
                        return false;
                    };
                    r.json::<serde_json::Value>().await.is_ok_and(|v| {
                        v["datamarts"]
                            .as_object()
                            .is_some_and(|m| m.values().all(|d| d["loaded"] == true))
                    })
                },
            )
            .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The body of `GET path` without a token, as text.
    pub async fn get_public_text(&self, path: &str) -> String {
        aurum_testkit::http::get_text(&self.http, &self.url(path)).await
    }

    /// The body of `GET path` without a token, as JSON.
    pub async fn get_public_json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.get_public_text(path).await).unwrap()
    }

    pub async fn login(&self, user: &TestUser) -> String {
        let r = self
            .http
            .post(self.url("/login"))
            .json(&serde_json::json!({"username": user.name, "password": user.password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login {}", user.name);
        let v: serde_json::Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        let r = self.get(path, token).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.process.terminate()
    }
}

/// Spawns `aurum-api` with `args` and `env`, its stderr into `log`.
pub fn spawn_api(args: &[String], env: &[(&str, &str)], log: &Path) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aurum-api"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("AURUM_JWT_SECRET")
        // Never the shared default port 50051 (tests run in parallel); --flight-listen wins.
        .env("AURUM_FLIGHT_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Process::spawn(cmd, log.to_path_buf())
}

/// A test database with an API serving it (the API is stopped first on drop).
pub struct Env {
    pub api: Api,
    pub db: TestDb,
}

impl Env {
    pub async fn start(extra: &[&str]) -> Env {
        let db = TestDb::new().await;
        let api = Api::start(&db.url, extra).await;
        api.wait_loaded().await;
        Env { api, db }
    }
}

/// Signs arbitrary claims with HS256 and the test secret.
pub fn sign_hs(alg: jsonwebtoken::Algorithm, secret: &[u8], claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn claims(sub: &str, role: &str) -> serde_json::Value {
    serde_json::json!({
        "sub": sub, "role": role, "iss": ISSUER, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 300,
    })
}
