//! The four gold endpoints against the gold tables: values, filters, ordering,
//! pagination edges, Link and freshness headers.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{ADMIN, Env, VIEWER};
use serde_json::Value;

async fn sql_rows(env: &Env, sql: &str) -> Vec<Value> {
    let client = env.db.client().await;
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
        .collect()
}

/// Every item of an endpoint, page by page (1000 at a time).
async fn all_items(env: &Env, token: &str, path_and_query: &str) -> Vec<Value> {
    let sep = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut items = Vec::new();
    let mut offset = 0;
    loop {
        let v = env
            .api
            .get_json(
                &format!("{path_and_query}{sep}limit=1000&offset={offset}"),
                token,
            )
            .await;
        let page = v["items"].as_array().unwrap().clone();
        let total = v["total"].as_u64().unwrap();
        offset += page.len();
        items.extend(page);
        if offset as u64 >= total {
            assert_eq!(items.len() as u64, total);
            return items;
        }
    }
}

async fn check(env: &Env, token: &str, path: &str, sql: &str) {
    let expected = sql_rows(env, sql).await;
    let actual = all_items(env, token, path).await;
    assert_eq!(actual.len(), expected.len(), "{path}: row count vs {sql}");
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "{path}: row {i} differs from SQL ({sql})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_match_the_gold_tables() {
    let env = Env::start(&[]).await;
    let t = env.api.login(&VIEWER).await;
    let clv = "SELECT to_jsonb(t)::text FROM gold_customer_lifetime_value t";
    let cases: Vec<(String, String)> = vec![
        ("/gold/customer-lifetime".into(), format!("{clv} ORDER BY value_rank, customer_no COLLATE \"C\"")),
        ("/gold/customer-lifetime?order_by=customer_no".into(), format!("{clv} ORDER BY customer_no COLLATE \"C\"")),
        ("/gold/customer-lifetime?order_by=customer_no&order=desc".into(), format!("{clv} ORDER BY customer_no COLLATE \"C\" DESC")),
        ("/gold/customer-lifetime?order_by=lifetime_value&order=desc".into(), format!("{clv} ORDER BY lifetime_value DESC, customer_no COLLATE \"C\"")),
        ("/gold/customer-lifetime?order_by=first_purchase".into(), format!("{clv} ORDER BY first_purchase, customer_no COLLATE \"C\"")),
        ("/gold/customer-lifetime?order_by=transactions&order=desc&quartile=2".into(),
            format!("{clv} WHERE value_quartile = 2 ORDER BY transactions DESC, customer_no COLLATE \"C\"")),
        ("/gold/sales-country-year".into(),
            "SELECT to_jsonb(t)::text FROM gold_sales_country_year t ORDER BY year, country COLLATE \"C\"".into()),
        ("/gold/sales-country-year?order_by=total_sales&order=desc".into(),
            "SELECT to_jsonb(t)::text FROM gold_sales_country_year t ORDER BY total_sales DESC, year, country COLLATE \"C\"".into()),
        ("/gold/top-products".into(),
            "SELECT to_jsonb(t)::text FROM gold_top_products t WHERE scope = 'ALL' ORDER BY rank".into()),
        ("/gold/top-products?order_by=product_no&order=desc".into(),
            "SELECT to_jsonb(t)::text FROM gold_top_products t WHERE scope = 'ALL' ORDER BY product_no COLLATE \"C\" DESC, rank".into()),
        ("/gold/monthly-sales".into(),
            "SELECT to_jsonb(t)::text FROM gold_monthly_sales t ORDER BY month".into()),
        ("/gold/monthly-sales?order_by=mom_growth_pct&order=desc".into(),
            "SELECT to_jsonb(t)::text FROM gold_monthly_sales t ORDER BY mom_growth_pct DESC NULLS FIRST, month".into()),
        ("/gold/monthly-sales?order_by=mom_growth_pct".into(),
            "SELECT to_jsonb(t)::text FROM gold_monthly_sales t ORDER BY mom_growth_pct ASC NULLS LAST, month".into()),
    ];
    for (path, sql) in &cases {
        check(&env, &t, path, sql).await;
    }

    // Filters whose values come from the data itself.
    let client = env.db.client().await;
    let country: String = client
        .query_one(
            "SELECT country FROM gold_customer_lifetime_value ORDER BY customer_no LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let enc = |s: &str| serde_urlencoded::to_string([("v", s)]).unwrap()[2..].to_string();
    check(
        &env,
        &t,
        &format!(
            "/gold/customer-lifetime?country={}&quartile=1",
            enc(&country)
        ),
        &format!(
            "{clv} WHERE country = '{}' AND value_quartile = 1 ORDER BY value_rank",
            country.replace('\'', "''")
        ),
    )
    .await;
    let scope: String = client
        .query_one(
            "SELECT scope FROM gold_top_products WHERE scope <> 'ALL' ORDER BY scope LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    check(
        &env,
        &t,
        &format!("/gold/top-products?scope={}", enc(&scope)),
        &format!(
            "SELECT to_jsonb(t)::text FROM gold_top_products t WHERE scope = '{}' ORDER BY rank",
            scope.replace('\'', "''")
        ),
    )
    .await;
    let (year, ycountry): (i32, String) = {
        let r = client
            .query_one("SELECT year, country FROM gold_sales_country_year ORDER BY year DESC, country LIMIT 1", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    check(&env, &t, &format!("/gold/sales-country-year?year={year}"),
        &format!("SELECT to_jsonb(t)::text FROM gold_sales_country_year t WHERE year = {year} ORDER BY country COLLATE \"C\"")).await;
    check(&env, &t, &format!("/gold/sales-country-year?year={year}&country={}", enc(&ycountry)),
        &format!("SELECT to_jsonb(t)::text FROM gold_sales_country_year t WHERE year = {year} AND country = '{}'", ycountry.replace('\'', "''"))).await;
    let months: Vec<String> = client
        .query(
            "SELECT to_char(month, 'YYYY-MM') FROM gold_monthly_sales ORDER BY month",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    if months.len() >= 3 {
        let (from, to) = (&months[1], &months[months.len() - 2]);
        check(&env, &t, &format!("/gold/monthly-sales?from={from}&to={to}-15"),
            &format!("SELECT to_jsonb(t)::text FROM gold_monthly_sales t WHERE month >= '{from}-01' AND month <= '{to}-01' ORDER BY month")).await;
    }
    // from after to: an empty page, not an error.
    let v = env
        .api
        .get_json("/gold/monthly-sales?from=2030-01&to=2020-01", &t)
        .await;
    assert_eq!(v["total"], 0);
    let v = env
        .api
        .get_json("/gold/customer-lifetime?country=Atlantis", &t)
        .await;
    assert_eq!(
        (v["total"].as_u64(), v["items"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_is_exact_and_text_is_escaped() {
    let env = Env::start(&[]).await;
    let t = env.api.login(&VIEWER).await;
    if !common::synthetic() {
        return;
    }
    let r = env
        .api
        .get("/gold/customer-lifetime?customer_no=07", &t)
        .await;
    assert_eq!(r.headers()["content-type"], "application/json");
    let body = r.text().await.unwrap();
    assert!(body.contains("\"lifetime_value\":1234.50"), "{body}");
    assert!(body.contains("\"avg_transaction_value\":411.50"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["items"][0]["first_name"], "Åsa \"Q\"");
    assert_eq!(v["items"][0]["last_name"], "O'Brien \\ Ünïcode");
    // "07" and "7" are different keys.
    let v = env
        .api
        .get_json("/gold/customer-lifetime?customer_no=7", &t)
        .await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["first_name"], Value::Null);
}

async fn problem(env: &Env, token: &str, path: &str) -> Value {
    let r = env.api.get(path, token).await;
    assert_eq!(r.status(), 400, "{path}");
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "{path}"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], 400);
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_edges_and_bad_parameters() {
    let env = Env::start(&[]).await;
    let t = env.api.login(&VIEWER).await;
    let client = env.db.client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM gold_customer_lifetime_value", &[])
        .await
        .unwrap()
        .get(0);
    let n = n as u64;

    // Defaults.
    let r = env.api.get("/gold/customer-lifetime", &t).await;
    let link = r.headers()["link"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["limit"].as_u64(),
            v["offset"].as_u64(),
            v["total"].as_u64()
        ),
        (Some(50), Some(0), Some(n))
    );
    assert_eq!(v["items"].as_array().unwrap().len(), 50.min(n as usize));
    assert!(
        link.contains("</gold/customer-lifetime?limit=50&offset=50>; rel=\"next\""),
        "{link}"
    );
    assert!(!link.contains("rel=\"prev\""), "{link}");
    assert!(link.contains("rel=\"last\""), "{link}");

    // Middle page keeps the other parameters in its links.
    let r = env
        .api
        .get(
            "/gold/customer-lifetime?order_by=customer_no&limit=10&offset=20",
            &t,
        )
        .await;
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.contains(
            "</gold/customer-lifetime?order_by=customer_no&limit=10&offset=10>; rel=\"prev\""
        ),
        "{link}"
    );
    assert!(
        link.contains(
            "</gold/customer-lifetime?order_by=customer_no&limit=10&offset=30>; rel=\"next\""
        ),
        "{link}"
    );

    // Last partial page, exactly at the end, past the end.
    let v = env
        .api
        .get_json(
            &format!("/gold/customer-lifetime?limit=7&offset={}", n - 3),
            &t,
        )
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 3);
    let r = env
        .api
        .get(&format!("/gold/customer-lifetime?offset={n}"), &t)
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        !r.headers()["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"next\"")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["items"].as_array().unwrap().len(), v["total"].as_u64()),
        (0, Some(n))
    );
    let v = env
        .api
        .get_json(
            "/gold/customer-lifetime?offset=9223372036854775807&limit=1000",
            &t,
        )
        .await;
    assert_eq!(
        (v["items"].as_array().unwrap().len(), v["total"].as_u64()),
        (0, Some(n))
    );

    // limit=0: only the total. limit=1000: the maximum.
    let v = env
        .api
        .get_json("/gold/customer-lifetime?limit=0", &t)
        .await;
    assert_eq!(
        (
            v["items"].as_array().unwrap().len(),
            v["total"].as_u64(),
            v["limit"].as_u64()
        ),
        (0, Some(n), Some(0))
    );
    let v = env
        .api
        .get_json("/gold/customer-lifetime?limit=1000", &t)
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1000.min(n as usize));

    for (q, param) in [
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("limit=1.5", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("offset=9223372036854775808", "offset"),
        ("order_by=password", "order_by"),
        ("order_by=value_rank;DROP%20TABLE%20gold_runs", "order_by"),
        ("order=sideways", "order"),
        ("quartile=5", "quartile"),
        ("quartile=0", "quartile"),
        ("quartile=one", "quartile"),
        ("country=", "country"),
        ("limit=5&limit=6", "limit"),
    ] {
        let v = problem(&env, &t, &format!("/gold/customer-lifetime?{q}")).await;
        assert_eq!(v["parameter"], param, "{q}");
    }
    for path in [
        "/gold/monthly-sales?from=2023-13",
        "/gold/monthly-sales?from=2023",
        "/gold/monthly-sales?to=2023-02-30",
        "/gold/monthly-sales?order_by=country",
        "/gold/sales-country-year?year=abc",
        "/gold/sales-country-year?year=-1",
        "/gold/top-products?scope=",
        "/gold/top-products?order_by=scope",
    ] {
        problem(&env, &t, path).await;
    }
    // Invalid UTF-8 in a value is decoded lossily: it matches nothing, and is no error.
    let v = env
        .api
        .get_json("/gold/customer-lifetime?country=%FF%FE", &t)
        .await;
    assert_eq!(v["total"], 0);
    // The table is still there.
    let _: i64 = client
        .query_one("SELECT count(*) FROM gold_runs", &[])
        .await
        .unwrap()
        .get(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_headers_and_conditional_requests() {
    let env = Env::start(&[]).await;
    let t = env.api.login(&ADMIN).await;
    let client = env.db.client().await;
    let path = "/gold/customer-lifetime?limit=5";
    let r = env.api.get(path, &t).await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let last_modified = r.headers()["last-modified"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    // Last-Modified is the finish time of the latest successful run.
    let expected: String = client
        .query_one(
            "SELECT to_char(max(finished_at) AT TIME ZONE 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS \"GMT\"') \
             FROM gold_runs WHERE datamart IN ('customer-lifetime-value', 'gold_customer_lifetime_value') AND status = 'succeeded'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(last_modified, expected);

    let cond = |tag: String| {
        env.api
            .http
            .get(env.api.url(path))
            .bearer_auth(&t)
            .header("If-None-Match", tag)
            .send()
    };
    let r = cond(etag.clone()).await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.text().await.unwrap().is_empty());
    let r = cond(format!("\"other\", W/{etag}")).await.unwrap();
    assert_eq!(r.status(), 304);
    let r = cond("\"stale\"".into()).await.unwrap();
    assert_eq!(r.status(), 200);
    // Another query has another ETag.
    let other = env.api.get("/gold/customer-lifetime?limit=6", &t).await;
    assert_ne!(other.headers()["etag"].to_str().unwrap(), etag);
    // If-Modified-Since.
    let r = env
        .api
        .http
        .get(env.api.url(path))
        .bearer_auth(&t)
        .header("If-Modified-Since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // A 304 still needs a valid token.
    let r = env
        .api
        .http
        .get(env.api.url(path))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A failed run changes nothing; a new successful run is picked up within a second or so.
    client
        .batch_execute(
            "INSERT INTO gold_runs VALUES ('customer-lifetime-value', 'later-failed', now(), now() + interval '1 hour', 0, 'failed', NULL, 'boom')",
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(cond(etag.clone()).await.unwrap().status(), 304);
    let top: String = client
        .query_one(
            "SELECT customer_no FROM gold_customer_lifetime_value ORDER BY value_rank LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "WITH u AS (UPDATE gold_customer_lifetime_value SET first_name = 'Refreshed' WHERE customer_no = $1) \
             INSERT INTO gold_runs VALUES ('customer-lifetime-value', 'run-2', now(), now() + interval '2 hours', 1, 'succeeded', 's2', NULL)",
            &[&top],
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = cond(etag.clone()).await.unwrap();
        if r.status() == 200 {
            assert_eq!(r.headers()["aurum-run-id"], "run-2");
            assert_ne!(
                r.headers()["last-modified"].to_str().unwrap(),
                last_modified
            );
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["items"][0]["first_name"], "Refreshed");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new run not picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
