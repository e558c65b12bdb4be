//! Login, the JWT attack list, roles, rate limiting, users file and key handling.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{ADMIN, AUDIENCE, Api, Env, ISSUER, SECRET, TestDb, VIEWER, claims, now, sign_hs};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

const GOLD: &str = "/gold/customer-lifetime?limit=1";

async fn expect_401(api: &Api, token: &str, what: &str) {
    let r = api
        .http
        .get(api.url(GOLD))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "{what}");
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer realm=\"aurum\""),
        "{what}: {challenge}"
    );
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], 401, "{what}");
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn openssl(args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl {args:?}");
}

/// Writes a new 2048-bit RSA private key (PEM) to `path`.
fn generate_rsa_key(path: &str) {
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        path,
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_json_and_form() {
    let env = Env::start(&[]).await;
    let api = &env.api;
    let r = api
        .http
        .post(api.url("/login"))
        .json(&json!({"username": VIEWER.name, "password": VIEWER.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 900);
    let token = v["access_token"].as_str().unwrap();
    // The claims are the documented ones.
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["sub"], VIEWER.name);
    assert_eq!(payload["role"], "viewer");
    assert_eq!(payload["iss"], ISSUER);
    assert_eq!(payload["aud"], AUDIENCE);
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(api.get(GOLD, token).await.status(), 200);

    // OAuth2 password form, as Swagger UI's Authorize button sends it.
    let r = api
        .http
        .post(api.url("/login"))
        .form(&[
            ("grant_type", "password"),
            ("username", ADMIN.name),
            ("password", ADMIN.password),
            ("scope", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        api.get("/gold/runs", v["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    for (ctype, body, status) in [
        (
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&username=a&password=b",
            400,
        ),
        ("application/x-www-form-urlencoded", "username=a", 400),
        ("application/json", "{\"username\": \"a\"", 400),
        (
            "application/json",
            "{\"username\": \"\", \"password\": \"x\"}",
            400,
        ),
        ("application/json", "[1, 2]", 400),
        ("text/plain", "username=a&password=b", 415),
    ] {
        let r = api
            .http
            .post(api.url("/login"))
            .header("Content-Type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{ctype} {body}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // Wrong password, unknown user: 401 problem with a challenge.
    for (u, p) in [(VIEWER.name, "nope"), ("nobody", "nope")] {
        let r = api
            .http
            .post(api.url("/login"))
            .json(&json!({"username": u, "password": p}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["detail"], "wrong user name or password");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_attack_list_is_rejected() {
    let env = Env::start(&[]).await;
    let api = &env.api;
    let good = sign_hs(
        Algorithm::HS256,
        SECRET.as_bytes(),
        &claims("vera", "viewer"),
    );
    assert_eq!(
        api.get(GOLD, &good).await.status(),
        200,
        "sanity: a well-formed token"
    );

    // No token at all, and other schemes.
    let r = api.http.get(api.url(GOLD)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"aurum\"");
    for auth in [
        "Basic dmVyYTp2aWV3ZXItcGFzcy0x",
        "Bearer",
        "Bearer ",
        "Token abc",
        good.as_str(),
    ] {
        let r = api
            .http
            .get(api.url(GOLD))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{auth}");
    }

    // alg: none (with and without a signature), and case variants.
    let payload = b64(claims("vera", "admin").to_string().as_bytes());
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
        expect_401(api, &format!("{header}.{payload}."), &format!("alg {alg}")).await;
        expect_401(
            api,
            &format!("{header}.{payload}"),
            &format!("alg {alg}, two parts"),
        )
        .await;
        let sig = good.rsplit('.').next().unwrap();
        expect_401(
            api,
            &format!("{header}.{payload}.{sig}"),
            &format!("alg {alg} + signature"),
        )
        .await;
    }
    // Another HMAC algorithm with the right secret.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        expect_401(
            api,
            &sign_hs(alg, SECRET.as_bytes(), &claims("vera", "viewer")),
            &format!("{alg:?}"),
        )
        .await;
    }
    // Wrong secret; tampered payload (role escalated) with the original signature.
    expect_401(
        api,
        &sign_hs(
            Algorithm::HS256,
            b"another-secret-another-secret-12345",
            &claims("vera", "viewer"),
        ),
        "wrong secret",
    )
    .await;
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = b64(claims("vera", "admin").to_string().as_bytes());
    expect_401(api, &parts.join("."), "tampered payload").await;
    // Truncated or garbled signature.
    expect_401(api, &good[..good.len() - 3], "truncated signature").await;
    expect_401(api, "not.a.jwt", "garbage").await;
    expect_401(api, "abc", "one part").await;

    // Claims: issuer, audience, expiry, required claims, role, issued in the future.
    let variants: Vec<(&str, Value)> = vec![
        ("wrong iss", json!({"iss": "someone-else"})),
        ("wrong aud", json!({"aud": "another-api"})),
        ("aud list without ours", json!({"aud": ["x", "y"]})),
        ("expired", json!({"exp": now() - 120, "iat": now() - 1000})),
        ("unknown role", json!({"role": "superuser"})),
        (
            "iat in the future",
            json!({"iat": now() + 3600, "exp": now() + 7200}),
        ),
        ("nbf in the future", json!({"nbf": now() + 3600})),
        ("exp as string", json!({"exp": "tomorrow"})),
    ];
    for (what, patch) in variants {
        let mut c = claims("vera", "viewer");
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        expect_401(api, &sign_hs(Algorithm::HS256, SECRET.as_bytes(), &c), what).await;
    }
    for missing in ["exp", "iat", "iss", "aud", "sub", "role"] {
        let mut c = claims("vera", "viewer");
        c.as_object_mut().unwrap().remove(missing);
        expect_401(
            api,
            &sign_hs(Algorithm::HS256, SECRET.as_bytes(), &c),
            &format!("missing {missing}"),
        )
        .await;
    }

    // An RS256 token (from a key the server does not know) against an HS256 server.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rsa.pem");
    generate_rsa_key(key.to_str().unwrap());
    let rs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::RS256),
        &claims("vera", "admin"),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&key).unwrap()).unwrap(),
    )
    .unwrap();
    expect_401(api, &rs, "RS256 on an HS256 server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_guard_the_runs_history() {
    let env = Env::start(&[]).await;
    let api = &env.api;
    let viewer = api.login(&VIEWER).await;
    let r = api.get("/gold/runs", &viewer).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(api.get(GOLD, &viewer).await.status(), 200);

    let admin = api.login(&ADMIN).await;
    let client = env.db.client().await;
    let total: i64 = client
        .query_one("SELECT count(*) FROM gold_runs", &[])
        .await
        .unwrap()
        .get(0);
    let v = api.get_json("/gold/runs?limit=1000", &admin).await;
    assert_eq!(v["total"].as_i64(), Some(total));
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len() as i64, total);
    let newest: String = client
        .query_one(
            "SELECT run_id FROM gold_runs ORDER BY finished_at DESC, run_id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(items[0]["run_id"], newest.as_str());
    let failed: i64 = client
        .query_one(
            "SELECT count(*) FROM gold_runs WHERE status = 'failed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let v = api.get_json("/gold/runs?status=failed", &admin).await;
    assert_eq!(v["total"].as_i64(), Some(failed));
    let v = api
        .get_json("/gold/runs?datamart=monthly-sales&limit=1", &admin)
        .await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["datamart"] == "monthly-sales")
    );
    assert_eq!(
        api.get("/gold/runs?status=running", &admin).await.status(),
        400
    );
    assert_eq!(api.get("/gold/runs?limit=5000", &admin).await.status(), 400);
    // A NUL cannot reach PostgreSQL (whose text cannot hold it) as a 503.
    let nul = api.get("/gold/runs?datamart=%00", &admin).await;
    assert_eq!(nul.status(), 400);
    let problem: Value = nul.json().await.expect("problem+json");
    assert_eq!(problem["parameter"], "datamart");
}

async fn try_login(api: &Api, user: &str, password: &str) -> reqwest::Response {
    try_login_forwarded(api, user, password, None).await
}

/// A login carrying `X-Forwarded-For: forwarded_for`, as a proxy sends it.
async fn try_login_forwarded(
    api: &Api,
    user: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = api
        .http
        .post(api.url("/login"))
        .json(&json!({"username": user, "password": password}));
    if let Some(chain) = forwarded_for {
        request = request.header("x-forwarded-for", chain);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited_per_user_and_per_address() {
    let env = Env::start(&[
        "--login-max-failures-per-user",
        "3",
        "--login-max-failures-per-ip",
        "6",
        "--login-failure-window-secs",
        "60",
    ])
    .await;
    let api = &env.api;
    for _ in 0..3 {
        assert_eq!(try_login(api, VIEWER.name, "wrong").await.status(), 401);
    }
    // The user is blocked, even with the right password.
    let r = try_login(api, VIEWER.name, VIEWER.password).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // Another user from the same address is not (3 failures < 6)...
    assert_eq!(
        try_login(api, ADMIN.name, ADMIN.password).await.status(),
        200
    );
    // ...until the address has 6 failures, whatever the user names (existing or not).
    for u in ["ghost1", "ghost2", "ghost3"] {
        assert_eq!(try_login(api, u, "wrong").await.status(), 401);
    }
    let r = try_login(api, ADMIN.name, ADMIN.password).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let metrics = api.get_public_text("/metrics").await;
    assert!(
        metrics.contains("aurum_api_login_rate_limited_total 2"),
        "{metrics}"
    );
}

/// The value of a counter series in `/metrics`.
fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_wrong_logins_get_no_more_checks_than_the_limit() {
    // The default limits: 5 failures per user name, 20 per address.
    let env = Env::start(&[]).await;
    let api = &env.api;
    let attempts = (0..40).map(|_| try_login(api, VIEWER.name, "wrong"));
    let responses = futures::future::join_all(attempts).await;
    let mut checked = 0;
    let mut limited = 0;
    for r in responses {
        match r.status().as_u16() {
            401 => checked += 1,
            429 => {
                limited += 1;
                assert_eq!(r.headers()["content-type"], "application/problem+json");
                let retry: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=300).contains(&retry), "{retry}");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    eprintln!(
        "40 simultaneous wrong logins: {checked} password checks (401), {limited} refused (429)"
    );
    assert_eq!(
        checked, 5,
        "{checked} of 40 simultaneous wrong logins got a password check, the limit is 5"
    );
    assert_eq!(checked + limited, 40);
    let metrics = api.get_public_text("/metrics").await;
    assert_eq!(
        metric(&metrics, "aurum_api_login_failures_total"),
        checked as u64
    );
    assert_eq!(
        metric(&metrics, "aurum_api_login_rate_limited_total"),
        limited as u64
    );
    // The user stays blocked, even with the right password...
    assert_eq!(
        try_login(api, VIEWER.name, VIEWER.password).await.status(),
        429
    );
    // ...and another user from the same address is not (5 failures < 20).
    assert_eq!(
        try_login(api, ADMIN.name, ADMIN.password).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_names_the_client_only_behind_trusted_proxies() {
    let limits = [
        "--login-max-failures-per-ip",
        "2",
        "--login-max-failures-per-user",
        "100",
    ];
    // The test's requests come from 127.0.0.1, trusted here like an ingress.
    let trusting =
        Env::start(&[&limits[..], &["--trusted-proxies", "127.0.0.1, 10.0.0.0/8"]].concat()).await;
    let api = &trusting.api;
    for _ in 0..2 {
        let r = try_login_forwarded(api, "ghost", "wrong", Some("198.51.100.7")).await;
        assert_eq!(r.status(), 401);
    }
    // 198.51.100.7 is blocked, also through one more trusted hop...
    for chain in ["198.51.100.7", "198.51.100.7, 10.1.2.3"] {
        let r = try_login_forwarded(api, VIEWER.name, VIEWER.password, Some(chain)).await;
        assert_eq!(r.status(), 429, "{chain}");
    }
    // ...but not another client behind the same proxy, nor the proxy itself.
    for chain in [
        Some("198.51.100.8"),
        Some("198.51.100.7, 198.51.100.8"),
        None,
    ] {
        let r = try_login_forwarded(api, VIEWER.name, VIEWER.password, chain).await;
        assert_eq!(r.status(), 200, "{chain:?}");
    }

    // Without trusted proxies the header is ignored: every failure counts against
    // the peer, whichever addresses it claims.
    let plain = Env::start(&limits).await;
    let api = &plain.api;
    for claimed in ["198.51.100.1", "198.51.100.2"] {
        let r = try_login_forwarded(api, "ghost", "wrong", Some(claimed)).await;
        assert_eq!(r.status(), 401);
    }
    let r = try_login_forwarded(api, VIEWER.name, VIEWER.password, Some("198.51.100.3")).await;
    assert_eq!(r.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_check_takes_as_long_for_unknown_users() {
    let env = Env::start(&[
        "--login-max-failures-per-user",
        "0",
        "--login-max-failures-per-ip",
        "0",
    ])
    .await;
    let api = &env.api;
    // Warm up.
    try_login(api, VIEWER.name, "x").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..8 {
        let t = Instant::now();
        assert_eq!(try_login(api, VIEWER.name, "wrong").await.status(), 401);
        known.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(
            try_login(api, &format!("nobody{i}"), "wrong")
                .await
                .status(),
            401
        );
        unknown.push(t.elapsed());
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[4].as_secs_f64(), unknown[4].as_secs_f64());
    let ratio = u / k;
    assert!(
        (0.6..1.67).contains(&ratio),
        "median known {k:.4}s vs unknown {u:.4}s"
    );
    // And it is a real argon2 check, not a shortcut.
    assert!(k > 0.002, "median {k}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_key_pairs() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    generate_rsa_key(&p("rsa.pem"));
    openssl(&[
        "pkey",
        "-in",
        &p("rsa.pem"),
        "-pubout",
        "-out",
        &p("rsa.pub"),
    ]);
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &p("ec.pem"),
    ]);
    openssl(&["pkey", "-in", &p("ec.pem"), "-pubout", "-out", &p("ec.pub")]);
    for (alg, private, public, other) in [
        ("RS256", p("rsa.pem"), p("rsa.pub"), Algorithm::ES256),
        ("ES256", p("ec.pem"), p("ec.pub"), Algorithm::RS256),
    ] {
        let api = Api::start(
            &db.url,
            &[
                "--jwt-algorithm",
                alg,
                "--jwt-private-key-file",
                &private,
                "--jwt-public-key-file",
                &public,
            ],
        )
        .await;
        api.wait_loaded().await;
        let token = api.login(&VIEWER).await;
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], alg);
        assert_eq!(api.get(GOLD, &token).await.status(), 200, "{alg}");
        // Algorithm confusion: HS256 keyed with the public key's PEM text.
        let pem = std::fs::read(&public).unwrap();
        expect_401(
            &api,
            &sign_hs(Algorithm::HS256, &pem, &claims("vera", "admin")),
            &format!("{alg}: HS256 with the public key"),
        )
        .await;
        // The HS256 test secret is meaningless here.
        expect_401(
            &api,
            &sign_hs(
                Algorithm::HS256,
                SECRET.as_bytes(),
                &claims("vera", "admin"),
            ),
            &format!("{alg}: HS256 token"),
        )
        .await;
        // The other asymmetric algorithm, with a key of its own.
        let key = if other == Algorithm::ES256 {
            p("ec.pem")
        } else {
            p("rsa.pem")
        };
        let bytes = std::fs::read(&key).unwrap();
        let enc = if other == Algorithm::ES256 {
            jsonwebtoken::EncodingKey::from_ec_pem(&bytes).unwrap()
        } else {
            jsonwebtoken::EncodingKey::from_rsa_pem(&bytes).unwrap()
        };
        let t = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(other),
            &claims("vera", "admin"),
            &enc,
        )
        .unwrap();
        expect_401(&api, &t, &format!("{alg}: {other:?} token")).await;
    }
}

fn run_api(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aurum-api"));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("AURUM_JWT_SECRET")
        .env_remove("AURUM_USERS_FILE")
        .env_remove("AURUM_DEV")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_is_refused_when_unsafe() {
    let dir = tempfile::tempdir().unwrap();
    let users = common::write_users(dir.path(), &[&VIEWER]);
    let users = users.to_str().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "0123456789012345678901234567890\n").unwrap(); // 31 bytes + newline
    let url = "postgres://u:p@127.0.0.1:1/db";
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--database-url", url, "--users-file", users],
            vec![],
            "no JWT secret",
        ),
        (
            vec![
                "--database-url",
                url,
                "--users-file",
                users,
                "--jwt-secret-file",
                short.to_str().unwrap(),
            ],
            vec![],
            "at least 32",
        ),
        (
            vec!["--database-url", url, "--users-file", users],
            vec![("AURUM_JWT_SECRET", "too-short")],
            "at least 32",
        ),
        (
            vec!["--database-url", url],
            vec![("AURUM_JWT_SECRET", SECRET)],
            "no users",
        ),
        (
            vec!["--users-file", users],
            vec![("AURUM_JWT_SECRET", SECRET)],
            "no database",
        ),
        (
            vec!["--database-url", url, "--users-file", "/nonexistent/users"],
            vec![("AURUM_JWT_SECRET", SECRET)],
            "cannot read users file",
        ),
        (
            vec![
                "--database-url",
                url,
                "--users-file",
                users,
                "--jwt-algorithm",
                "RS256",
            ],
            vec![],
            "public-key",
        ),
        (
            vec![
                "--database-url",
                url,
                "--users-file",
                users,
                "--jwt-algorithm",
                "none",
            ],
            vec![],
            "invalid value",
        ),
    ];
    for (args, env, needle) in cases {
        let out = run_api(&args, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected `{needle}` in {stderr}"
        );
    }
    // A malformed users file names the line.
    let bad = dir.path().join("bad-users");
    std::fs::write(&bad, "alice:plaintext:viewer\n").unwrap();
    let out = run_api(
        &["--database-url", url, "--users-file", bad.to_str().unwrap()],
        &[("AURUM_JWT_SECRET", SECRET)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("line 1"), "{stderr}");
    // The secret never appears in the output.
    assert!(!stderr.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_is_the_only_built_in_user() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let log = dir.path().join("log");
    let args: Vec<String> = [
        "--dev",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--database-url",
        &db.url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut api = common::spawn_api(&args, &[("AURUM_DEV_PASSWORD", "dev-password-1")], &log);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let token = loop {
        if let Ok(r) = http
            .post(format!("{base}/login"))
            .json(&json!({"username": "dev", "password": "dev-password-1"}))
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            break v["access_token"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "{}", api.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = http
        .get(format!("{base}/gold/runs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = api.child.kill();
    let _ = api.child.wait();
}

#[test]
fn hash_password_reads_stdin() {
    let run = |args: &[&str], input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aurum-api"))
            .arg("hash-password")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(&[], "correct horse\n");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let store =
        aurum_api::users::UserStore::parse(std::path::Path::new("x"), &format!("u:{hash}:viewer"))
            .unwrap();
    assert!(store.verify("u", "correct horse").is_some());
    assert!(store.verify("u", "correct horse\n").is_none());

    let out = run(&["--username", "carol", "--role", "admin"], "pw");
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with("carol:$argon2id$") && line.trim_end().ends_with(":admin"),
        "{line}"
    );
    let out = run(&[], "");
    assert_eq!(out.status.code(), Some(1));
    let out = run(&["--username", "x", "--role", "root"], "pw");
    assert!(!out.status.success());
    // The password is never taken from the command line.
    let out = run(&["--password", "pw"], "");
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_file_changes_are_picked_up() {
    let env = Env::start(&["--users-reload-secs", "1"]).await;
    let api = &env.api;
    const CAROL: common::TestUser = common::TestUser {
        name: "carol",
        password: "carol-pass-1",
        role: "viewer",
    };
    // Replace the file the way a Secret update does: write aside, rename over.
    let users = api.dir.path().join("users");
    let aside = common::write_users(&api.dir.path().join("next"), &[&ADMIN, &CAROL]);
    std::fs::rename(&aside, &users).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while try_login(api, CAROL.name, CAROL.password).await.status() != 200 {
        assert!(
            Instant::now() < deadline,
            "new user not picked up: {}",
            api.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        try_login(api, VIEWER.name, VIEWER.password).await.status(),
        401
    );
    // An invalid file keeps the current users.
    std::fs::write(&users, "carol:not-a-hash:viewer\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        try_login(api, CAROL.name, CAROL.password).await.status(),
        200
    );
    assert!(api.log_text().contains("keeping the current users"));
}
