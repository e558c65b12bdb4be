//! Arrow Flight SQL against the real `aurum-api` binary and a real PostgreSQL loaded
//! by the real job-runner: handshake, listings, full-table reads equal to the gold
//! tables, prepared statements with parameters, and every rejection.
// A test stops at the line that failed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::array_value_to_string;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
    XdbcDataType,
};
use arrow_flight::{FlightDescriptor, FlightInfo, Ticket};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use aurum_testkit::tls::TestCertificates;
use common::{ADMIN, Api, Env, SECRET, TestUser, VIEWER};
use futures::TryStreamExt;
use prost::Message;
use tonic::transport::Channel;
use tonic::{Code, Status};

fn require_job_runner() {
    assert!(
        aurum_testkit::environment::job_runner_bin().is_some(),
        "the Flight SQL tests read gold tables built by the real job-runner: \
         set AURUM_JOB_RUNNER_BIN (cargo build -p aurum-job-runner)"
    );
}

async fn start(extra: &[&str]) -> Env {
    require_job_runner();
    Env::start(extra).await
}

async fn channel(api: &Api) -> Channel {
    Channel::from_shared(format!("http://{}", api.flight_addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to Flight SQL: {e}: {}", api.log_text()))
}

async fn client(api: &Api) -> FlightSqlServiceClient<Channel> {
    FlightSqlServiceClient::new(channel(api).await)
}

async fn logged_in(api: &Api, user: &TestUser) -> FlightSqlServiceClient<Channel> {
    let mut c = client(api).await;
    c.handshake(user.name, user.password)
        .await
        .unwrap_or_else(|e| panic!("handshake as {}: {e}", user.name));
    c
}

async fn fetch(c: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("endpoint has a ticket");
        let stream = c.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("read batches"));
    }
    batches
}

async fn query(c: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Vec<RecordBatch> {
    let info = c
        .execute(sql.to_string(), None)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    fetch(c, info).await
}

/// Every value of the batches as text (NULL as `None`), row by row.
fn rows_as_text(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| (!c.is_null(r)).then(|| array_value_to_string(c, r).unwrap()))
                    .collect(),
            );
        }
    }
    rows
}

/// The same rows from PostgreSQL, every column cast to text there.
async fn pg_rows_as_text(
    db: &common::TestDb,
    table: &str,
    columns: &[&str],
    order: &str,
) -> Vec<Vec<Option<String>>> {
    let client = db.client().await;
    let select: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
    let sql = format!("SELECT {} FROM {table} ORDER BY {order}", select.join(", "));
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (0..columns.len()).map(|i| row.get(i)).collect())
        .collect()
}

/// The status of a GetFlightInfo for `sql`, sent with raw metadata (bypassing the
/// client's own token handling).
async fn statement_status(api: &Api, token: Option<&str>, sql: &str) -> Result<FlightInfo, Status> {
    let mut raw = FlightServiceClient::new(channel(api).await);
    let cmd = CommandStatementQuery {
        query: sql.to_string(),
        transaction_id: None,
    };
    let mut req = tonic::Request::new(FlightDescriptor::new_cmd(cmd.as_any().encode_to_vec()));
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    raw.get_flight_info(req).await.map(|r| r.into_inner())
}

async fn flight_token(api: &Api, user: &TestUser) -> String {
    let mut c = client(api).await;
    let payload = c.handshake(user.name, user.password).await.unwrap();
    String::from_utf8(payload.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_issues_the_same_jwt_as_login() {
    let env = start(&[]).await;
    let token = flight_token(&env.api, &VIEWER).await;
    // The REST API accepts it as one of its own...
    let r = env.api.get("/gold/customer-lifetime?limit=1", &token).await;
    assert_eq!(r.status(), 200);
    // ...and it carries the same claims /login issues.
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&[common::AUDIENCE]);
    v.set_issuer(&[common::ISSUER]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], VIEWER.name);
    assert_eq!(claims["role"], "viewer");
    let rest = env.api.login(&VIEWER).await;
    let rest_claims = jsonwebtoken::decode::<serde_json::Value>(
        &rest,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(
        rest_claims["exp"].as_i64().unwrap() - rest_claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
    );
    // A token from /login works for Flight SQL too.
    assert!(
        statement_status(
            &env.api,
            Some(&rest),
            "SELECT 1 AS one FROM gold_monthly_sales LIMIT 1"
        )
        .await
        .is_ok()
    );
}

/// A handshake as `user` with `password`, claiming `x-forwarded-for: client`:
/// the error text on failure.
async fn handshake_from(api: &Api, user: &str, password: &str, client: &str) -> Result<(), String> {
    let mut c = self::client(api).await;
    c.set_header("x-forwarded-for", client);
    c.handshake(user, password)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_behind_a_trusted_proxy_are_limited_per_forwarded_client() {
    let env = start(&[
        "--trusted-proxies",
        "127.0.0.1",
        "--login-max-failures-per-ip",
        "2",
        "--login-max-failures-per-user",
        "100",
    ])
    .await;
    for _ in 0..2 {
        let e = handshake_from(&env.api, "ghost", "wrong", "198.51.100.7")
            .await
            .unwrap_err();
        assert!(e.contains("wrong user name or password"), "{e}");
    }
    let e = handshake_from(&env.api, VIEWER.name, VIEWER.password, "198.51.100.7")
        .await
        .unwrap_err();
    assert!(e.contains("too many failed logins"), "{e}");
    handshake_from(&env.api, VIEWER.name, VIEWER.password, "198.51.100.8")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_wrong_handshakes_get_no_more_checks_than_the_limit() {
    // The default limits: 5 failures per user name, 20 per address.
    let env = start(&[]).await;
    let channel = channel(&env.api).await;
    let attempts = (0..40).map(|_| {
        let mut c = FlightSqlServiceClient::new(channel.clone());
        async move {
            c.handshake(VIEWER.name, "wrong")
                .await
                .unwrap_err()
                .to_string()
        }
    });
    let errors = futures::future::join_all(attempts).await;
    let checked = errors
        .iter()
        .filter(|e| e.contains("wrong user name or password"))
        .count();
    let limited = errors
        .iter()
        .filter(|e| e.contains("too many failed logins"))
        .count();
    eprintln!(
        "40 simultaneous wrong handshakes: {checked} password checks, {limited} refused as rate limited"
    );
    assert_eq!(checked + limited, 40, "{errors:?}");
    assert_eq!(
        checked, 5,
        "{checked} of 40 simultaneous wrong handshakes got a password check, the limit is 5"
    );
    // The limit is shared with REST /login: the user is blocked there too.
    let r = env
        .api
        .http
        .post(env.api.url("/login"))
        .json(&serde_json::json!({"username": VIEWER.name, "password": VIEWER.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let mut c = client(&env.api).await;
    let e = c.handshake(VIEWER.name, VIEWER.password).await.unwrap_err();
    assert!(e.to_string().contains("too many failed logins"), "{e}");
    logged_in(&env.api, &ADMIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_calls_are_refused() {
    let env = start(&[]).await;
    // Wrong password, unknown user: Unauthenticated, nothing issued.
    for (user, password) in [(VIEWER.name, "wrong"), ("nobody", VIEWER.password)] {
        let mut c = client(&env.api).await;
        let err = c.handshake(user, password).await.unwrap_err().to_string();
        assert!(
            err.contains("valid authentication credentials") && err.contains("wrong user name"),
            "{user}: {err}"
        );
    }
    let sql = "SELECT * FROM gold_monthly_sales";
    // No token at all.
    let st = statement_status(&env.api, None, sql).await.unwrap_err();
    assert_eq!(st.code(), Code::Unauthenticated, "{st:?}");
    // A forged, an expired and a wrong-algorithm token.
    let mut expired = common::claims(VIEWER.name, "viewer");
    expired["iat"] = (common::now() - 600).into();
    expired["exp"] = (common::now() - 300).into();
    for token in [
        "not-a-jwt".to_string(),
        common::sign_hs(
            jsonwebtoken::Algorithm::HS256,
            b"another-secret-another-secret-another",
            &common::claims(VIEWER.name, "viewer"),
        ),
        common::sign_hs(jsonwebtoken::Algorithm::HS256, SECRET.as_bytes(), &expired),
        common::sign_hs(
            jsonwebtoken::Algorithm::HS384,
            SECRET.as_bytes(),
            &common::claims(VIEWER.name, "viewer"),
        ),
    ] {
        let st = statement_status(&env.api, Some(&token), sql)
            .await
            .unwrap_err();
        assert_eq!(st.code(), Code::Unauthenticated, "{token}: {st:?}");
    }
    // Listings need a token too.
    let mut c = client(&env.api).await;
    let err = c.get_catalogs().await.unwrap_err().to_string();
    assert!(err.contains("valid authentication credentials"), "{err}");
    // A valid token signed with the test secret passes.
    let good = common::sign_hs(
        jsonwebtoken::Algorithm::HS256,
        SECRET.as_bytes(),
        &common::claims(VIEWER.name, "viewer"),
    );
    assert!(statement_status(&env.api, Some(&good), sql).await.is_ok());
}

fn gold_names(batches: &[RecordBatch]) -> Vec<String> {
    rows_as_text(batches)
        .into_iter()
        .map(|r| r[2].clone().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_show_the_gold_tables_and_runs_to_admins() {
    let env = start(&[]).await;
    let mut viewer = logged_in(&env.api, &VIEWER).await;

    let info = viewer.get_catalogs().await.unwrap();
    let catalogs = rows_as_text(&fetch(&mut viewer, info).await);
    assert_eq!(catalogs, vec![vec![Some("aurum".to_string())]]);

    let info = viewer
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let schemas = rows_as_text(&fetch(&mut viewer, info).await);
    assert_eq!(
        schemas,
        vec![vec![Some("aurum".to_string()), Some("public".to_string())]]
    );

    let tables_cmd = CommandGetTables {
        catalog: None,
        db_schema_filter_pattern: None,
        table_name_filter_pattern: None,
        table_types: vec![],
        include_schema: true,
    };
    let info = viewer.get_tables(tables_cmd.clone()).await.unwrap();
    let batches = fetch(&mut viewer, info).await;
    let mut names = gold_names(&batches);
    names.sort();
    assert_eq!(
        names,
        [
            "gold_customer_lifetime_value",
            "gold_monthly_sales",
            "gold_sales_country_year",
            "gold_top_products"
        ]
    );
    // The schema of each table is the one a query returns, with the contract's types.
    let batch = &batches[0];
    let schema_col = batch
        .column_by_name("table_schema")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::BinaryArray>()
        .unwrap();
    let name_col = batch
        .column_by_name("table_name")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::StringArray>()
        .unwrap();
    let clv = (0..batch.num_rows())
        .find(|i| name_col.value(*i) == "gold_customer_lifetime_value")
        .unwrap();
    let schema = arrow_ipc::convert::try_schema_from_ipc_buffer(schema_col.value(clv)).unwrap();
    let types: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    assert_eq!(types[0], ("customer_no".into(), DataType::Utf8));
    assert_eq!(types[4], ("first_purchase".into(), DataType::Date32));
    assert_eq!(types[6], ("transactions".into(), DataType::Int64));
    assert_eq!(
        types[8],
        ("lifetime_value".into(), DataType::Decimal128(18, 2))
    );
    assert_eq!(types[10], ("value_rank".into(), DataType::Int32));

    // A name filter, as generic clients send it.
    let info = viewer
        .get_tables(CommandGetTables {
            table_name_filter_pattern: Some("%lifetime%".into()),
            include_schema: false,
            ..tables_cmd.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        gold_names(&fetch(&mut viewer, info).await),
        ["gold_customer_lifetime_value"]
    );

    // Admins also see gold_runs.
    let mut admin = logged_in(&env.api, &ADMIN).await;
    let info = admin.get_tables(tables_cmd).await.unwrap();
    let names = gold_names(&fetch(&mut admin, info).await);
    assert_eq!(names.len(), 5);
    assert!(names.contains(&"gold_runs".to_string()));

    // SqlInfo names the server and says it is read-only.
    let info = viewer
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    let info_rows = fetch(&mut viewer, info).await;
    assert_eq!(
        info_rows.iter().map(RecordBatch::num_rows).sum::<usize>(),
        2
    );
    let text = format!("{:?}", rows_as_text(&info_rows));
    assert!(text.contains("Aurum"), "{text}");

    let info = viewer.get_table_types().await.unwrap();
    assert_eq!(
        rows_as_text(&fetch(&mut viewer, info).await),
        vec![vec![Some("TABLE".to_string())]]
    );
}

/// The primary key columns of `table` as `client` sees them over Flight SQL.
async fn flight_primary_key(c: &mut FlightSqlServiceClient<Channel>, table: &str) -> Vec<String> {
    let info = c
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: Some("public".into()),
            table: table.into(),
        })
        .await
        .unwrap();
    rows_as_text(&fetch(c, info).await)
        .into_iter()
        .map(|row| row[3].clone().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_type_info_serve_jdbc_style_clients() {
    let env = start(&[]).await;
    let db = env.db.client().await;
    let mut viewer = logged_in(&env.api, &VIEWER).await;
    let mut admin = logged_in(&env.api, &ADMIN).await;
    // Primary keys are PostgreSQL's own, in key order.
    for table in [
        "gold_sales_country_year",
        "gold_top_products",
        "gold_monthly_sales",
        "gold_customer_lifetime_value",
        "gold_runs",
    ] {
        let in_postgres: Vec<String> = db
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1::text::regclass AND i.indisprimary \
                 ORDER BY array_position(i.indkey, a.attnum)",
                &[&table],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!in_postgres.is_empty(), "{table} has a primary key");
        assert_eq!(
            flight_primary_key(&mut admin, table).await,
            in_postgres,
            "{table}"
        );
    }
    // A viewer learns nothing of gold_runs.
    assert!(
        flight_primary_key(&mut viewer, "gold_runs")
            .await
            .is_empty()
    );

    // No foreign keys, but with the specification's columns.
    let info = viewer
        .get_imported_keys(CommandGetImportedKeys {
            catalog: None,
            db_schema: None,
            table: "gold_top_products".into(),
        })
        .await
        .unwrap();
    let schema = Schema::try_from(info.clone()).unwrap();
    assert_eq!(schema.field(2).name(), "pk_table_name");
    assert_eq!(schema.fields().len(), 13);
    let batches = fetch(&mut viewer, info).await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);

    // Type info lists every type a result can have, and filters by XDBC type.
    let info = viewer
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    let names: Vec<String> = rows_as_text(&fetch(&mut viewer, info).await)
        .into_iter()
        .map(|row| row[0].clone().unwrap())
        .collect();
    for expected in [
        "bigint",
        "date",
        "integer",
        "numeric",
        "text",
        "timestamp with time zone",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let info = viewer
        .get_xdbc_type_info(CommandGetXdbcTypeInfo {
            data_type: Some(XdbcDataType::XdbcNumeric as i32),
        })
        .await
        .unwrap();
    let numeric = rows_as_text(&fetch(&mut viewer, info).await);
    assert_eq!(numeric.len(), 1);
    assert_eq!(numeric[0][0].as_deref(), Some("numeric"));
}

const CLV_COLUMNS: [&str; 12] = [
    "customer_no",
    "first_name",
    "last_name",
    "country",
    "first_purchase",
    "last_purchase",
    "transactions",
    "total_quantity",
    "lifetime_value",
    "avg_transaction_value",
    "value_rank",
    "value_quartile",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tables_equal_postgres_row_for_row() {
    // Small batches: the result must arrive as several of them.
    let env = start(&["--flight-batch-rows", "16"]).await;
    let mut c = logged_in(&env.api, &VIEWER).await;

    let batches = query(
        &mut c,
        "SELECT * FROM gold_customer_lifetime_value ORDER BY customer_no",
    )
    .await;
    assert!(batches.len() > 1, "one batch only");
    assert!(batches.iter().all(|b| b.num_rows() <= 16));
    let schema = batches[0].schema();
    let want = Schema::new(vec![
        Field::new("customer_no", DataType::Utf8, true),
        Field::new("first_name", DataType::Utf8, true),
        Field::new("last_name", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("first_purchase", DataType::Date32, true),
        Field::new("last_purchase", DataType::Date32, true),
        Field::new("transactions", DataType::Int64, true),
        Field::new("total_quantity", DataType::Int64, true),
        Field::new("lifetime_value", DataType::Decimal128(18, 2), true),
        Field::new("avg_transaction_value", DataType::Decimal128(18, 2), true),
        Field::new("value_rank", DataType::Int32, true),
        Field::new("value_quartile", DataType::Int32, true),
    ]);
    assert_eq!(schema.as_ref(), &want);
    let got = rows_as_text(&batches);
    let expected = pg_rows_as_text(
        &env.db,
        "gold_customer_lifetime_value",
        &CLV_COLUMNS,
        "customer_no",
    )
    .await;
    assert!(expected.len() > 16, "too few customers: {}", expected.len());
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "row {i}");
    }

    // numeric(12,2) with NULLs, dates.
    let batches = query(&mut c, "SELECT * FROM gold_monthly_sales ORDER BY month").await;
    assert_eq!(
        batches[0].schema().field(6).data_type(),
        &DataType::Decimal128(12, 2)
    );
    let expected = pg_rows_as_text(
        &env.db,
        "gold_monthly_sales",
        &[
            "month",
            "total_sales",
            "total_quantity",
            "transactions",
            "customers",
            "avg_transaction_value",
            "mom_growth_pct",
        ],
        "month",
    )
    .await;
    assert!(expected.iter().any(|r| r[6].is_none()), "no NULL growth");
    assert_eq!(rows_as_text(&batches), expected);

    // Aggregates: sums of numeric(18,2) stay exact.
    let batches = query(
        &mut c,
        "SELECT country, sum(lifetime_value) AS total, count(*) AS n \
         FROM gold_customer_lifetime_value GROUP BY country ORDER BY country",
    )
    .await;
    let client = env.db.client().await;
    let pg = client
        .query(
            "SELECT country, sum(lifetime_value)::numeric(38,10)::text, count(*)::text \
             FROM gold_customer_lifetime_value GROUP BY country ORDER BY country",
            &[],
        )
        .await
        .unwrap();
    let got = rows_as_text(&batches);
    assert_eq!(got.len(), pg.len());
    for (g, row) in got.iter().zip(&pg) {
        let (country, total, n): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(g, &vec![Some(country), Some(total), Some(n)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_read_gold_runs_with_utc_timestamps() {
    let env = start(&[]).await;
    let mut admin = logged_in(&env.api, &ADMIN).await;
    let batches = query(
        &mut admin,
        "SELECT datamart, run_id, finished_at, rows_written FROM gold_runs ORDER BY datamart, run_id",
    )
    .await;
    assert_eq!(
        batches[0].schema().field(2).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let client = env.db.client().await;
    let pg = client
        .query(
            "SELECT datamart, run_id, (extract(epoch FROM finished_at) * 1000000)::bigint, rows_written \
             FROM gold_runs ORDER BY datamart, run_id",
            &[],
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    for b in &batches {
        let ts = b
            .column(2)
            .as_any()
            .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            .unwrap();
        for r in 0..b.num_rows() {
            got.push(ts.value(r));
        }
    }
    let want: Vec<i64> = pg.iter().map(|r| r.get(2)).collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_bind_parameters() {
    let env = start(&[]).await;
    let mut c = logged_in(&env.api, &VIEWER).await;
    let pg = env.db.client().await;
    let country: String = pg
        .query_one(
            "SELECT country FROM gold_customer_lifetime_value GROUP BY country \
             ORDER BY count(*) DESC, country LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let mut stmt = c
        .prepare(
            "SELECT customer_no, lifetime_value FROM gold_customer_lifetime_value \
             WHERE country = ? AND value_quartile = ? AND lifetime_value >= ? ORDER BY customer_no"
                .to_string(),
            None,
        )
        .await
        .unwrap();
    let params = stmt.parameter_schema().unwrap().clone();
    assert_eq!(
        params
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect::<Vec<_>>(),
        vec![
            DataType::Utf8,
            DataType::Int32,
            DataType::Decimal128(38, 10)
        ]
    );
    assert_eq!(
        stmt.dataset_schema().unwrap().field(1).data_type(),
        &DataType::Decimal128(18, 2)
    );
    for (quartile, min_cents) in [(1i32, 0i128), (2, 0), (1, 50_000)] {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("country", DataType::Utf8, false),
                Field::new("quartile", DataType::Int32, false),
                Field::new("min", DataType::Decimal128(18, 2), false),
            ])),
            vec![
                Arc::new(arrow_array::StringArray::from(vec![country.clone()])),
                Arc::new(arrow_array::Int32Array::from(vec![quartile])),
                Arc::new(
                    arrow_array::Decimal128Array::from(vec![min_cents])
                        .with_precision_and_scale(18, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap();
        stmt.set_parameters(batch).unwrap();
        let info = stmt.execute().await.unwrap();
        let got = rows_as_text(&fetch(&mut c, info).await);
        let min = format!("{}.{:02}", min_cents / 100, min_cents % 100);
        let want: Vec<Vec<Option<String>>> = pg
            .query(
                "SELECT customer_no, lifetime_value::text FROM gold_customer_lifetime_value \
                 WHERE country = $1 AND value_quartile = $2 AND lifetime_value >= $3::text::numeric \
                 ORDER BY customer_no",
                &[&country, &quartile, &min],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| vec![Some(r.get(0)), Some(r.get(1))])
            .collect();
        assert!(!want.is_empty(), "quartile {quartile} min {min}: no rows");
        assert_eq!(got, want, "quartile {quartile} min {min}");
    }
    // A prepared statement with $n placeholders and a NULL parameter.
    let mut stmt = c
        .prepare(
            "SELECT count(*) AS n FROM gold_customer_lifetime_value WHERE first_name = $1".into(),
            None,
        )
        .await
        .unwrap();
    stmt.set_parameters(
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("p", DataType::Utf8, true)])),
            vec![Arc::new(arrow_array::StringArray::from(vec![None::<&str>]))],
        )
        .unwrap(),
    )
    .unwrap();
    let info = stmt.execute().await.unwrap();
    assert_eq!(
        rows_as_text(&fetch(&mut c, info).await),
        vec![vec![Some("0".to_string())]]
    );
    stmt.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_statements_are_rejected() {
    let env = start(&[
        "--flight-max-rows",
        "50",
        "--flight-query-timeout-secs",
        "1",
    ])
    .await;
    let viewer = flight_token(&env.api, &VIEWER).await;
    let admin = flight_token(&env.api, &ADMIN).await;
    for sql in [
        "DELETE FROM gold_customer_lifetime_value",
        "UPDATE gold_top_products SET rank = 0",
        "DROP TABLE gold_monthly_sales",
        "SELECT 1; SELECT 2",
        "SELECT * FROM pg_authid",
        "SELECT * FROM pg_catalog.pg_user",
        "SELECT * FROM information_schema.tables",
        "SELECT pg_sleep(5)",
        "SELECT query_to_xml('select * from pg_authid', true, true, '')",
        "SELECT * FROM gold_customer_lifetime_value FOR UPDATE",
        "SELEC nonsense",
        "SELECT no_such_column FROM gold_monthly_sales",
    ] {
        let st = statement_status(&env.api, Some(&admin), sql)
            .await
            .unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument, "{sql}: {st:?}");
        assert!(!st.message().is_empty());
    }
    let st = statement_status(&env.api, Some(&viewer), "DELETE FROM gold_runs")
        .await
        .unwrap_err();
    assert!(st.message().contains("read-only SELECT"), "{st:?}");

    // gold_runs is admin-only data.
    let st = statement_status(&env.api, Some(&viewer), "SELECT * FROM gold_runs")
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::PermissionDenied, "{st:?}");
    let st = statement_status(
        &env.api,
        Some(&viewer),
        "SELECT * FROM gold_monthly_sales WHERE EXISTS (SELECT 1 FROM gold_runs)",
    )
    .await
    .unwrap_err();
    assert_eq!(st.code(), Code::PermissionDenied, "{st:?}");
    assert!(
        statement_status(&env.api, Some(&admin), "SELECT * FROM gold_runs")
            .await
            .is_ok()
    );

    // A forged ticket is checked again when it is redeemed.
    let mut c = logged_in(&env.api, &ADMIN).await;
    let forged = TicketStatementQuery {
        statement_handle: serde_json::to_vec(&serde_json::json!({
            "sql": "DELETE FROM gold_runs", "params": []
        }))
        .unwrap()
        .into(),
    };
    let err = match c.do_get(Ticket::new(forged.as_any().encode_to_vec())).await {
        Ok(stream) => stream
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err()
            .to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("InvalidArgument") || err.contains("read-only"),
        "{err}"
    );
    let client = env.db.client().await;
    let runs: i64 = client
        .query_one("SELECT count(*) FROM gold_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert!(runs > 0, "the forged DELETE ran");

    // Wrong parameter count for a prepared statement.
    let mut stmt = c
        .prepare(
            "SELECT * FROM gold_top_products WHERE scope = ?".into(),
            None,
        )
        .await
        .unwrap();
    let err = stmt.execute().await;
    let err = match err {
        Ok(info) => {
            let ticket = info.endpoint[0].ticket.clone().unwrap();
            match c.do_get(ticket).await {
                Ok(s) => s.try_collect::<Vec<_>>().await.unwrap_err().to_string(),
                Err(e) => e.to_string(),
            }
        }
        Err(e) => e.to_string(),
    };
    assert!(err.contains("parameter"), "{err}");

    // The row limit and the query timeout.
    let info = c
        .execute("SELECT * FROM gold_customer_lifetime_value".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let err = c
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--flight-max-rows"), "{err}");
    let info = c
        .execute(
            // Billions of row combinations: minutes of work, cut by the 1 s timeout.
            "SELECT count(*) FROM gold_top_products a, gold_top_products b, gold_top_products c, \
             gold_top_products d"
                .into(),
            None,
        )
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let started = std::time::Instant::now();
    let err = match c.do_get(ticket).await {
        Ok(s) => s.try_collect::<Vec<_>>().await.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // The API still answers after all of that, and the calls are in /metrics.
    assert!(
        statement_status(&env.api, Some(&viewer), "SELECT * FROM gold_monthly_sales")
            .await
            .is_ok()
    );
    let _ = statement_status(&env.api, None, "SELECT 1").await;
    let metrics = env.api.get_public_text("/metrics").await;
    for needle in [
        "aurum_api_flight_calls_total{method=\"Handshake\",code=\"Ok\"}",
        "aurum_api_flight_calls_total{method=\"GetFlightInfo\",code=\"InvalidArgument\"}",
        "aurum_api_flight_calls_total{method=\"GetFlightInfo\",code=\"PermissionDenied\"}",
        "aurum_api_flight_calls_total{method=\"GetFlightInfo\",code=\"Unauthenticated\"}",
        "aurum_api_flight_calls_total{method=\"DoGet\",code=\"ResourceExhausted\"}",
        "aurum_api_flight_calls_total{method=\"DoGet\",code=\"DeadlineExceeded\"}",
        "aurum_api_flight_call_duration_seconds_count{method=\"DoGet\"}",
        "aurum_api_flight_rows_total",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
}

/// Issue 14: functions by allowlist. Every escape is refused by the SQL check
/// itself (the message names the function), not by PostgreSQL; the functions
/// analysts use run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_functions_run() {
    let env = start(&[]).await;
    let admin = flight_token(&env.api, &ADMIN).await;
    let refused = [
        // Files.
        (
            "SELECT pg_read_file('/etc/passwd')",
            "function `pg_read_file`",
        ),
        (
            "SELECT pg_read_binary_file('/etc/passwd')",
            "function `pg_read_binary_file`",
        ),
        ("SELECT pg_ls_dir('.')", "function `pg_ls_dir`"),
        (
            "SELECT pg_stat_file('postgresql.conf')",
            "function `pg_stat_file`",
        ),
        (
            "SELECT * FROM pg_ls_dir('.')",
            "`pg_ls_dir(...)` is not allowed in FROM",
        ),
        (
            "SELECT * FROM gold_runs, LATERAL pg_ls_dir('.') AS f",
            "is not allowed in FROM",
        ),
        // Settings.
        (
            "SELECT current_setting('data_directory')",
            "function `current_setting`",
        ),
        (
            "SELECT set_config('work_mem', '1GB', false)",
            "function `set_config`",
        ),
        // Large objects.
        ("SELECT lo_import('/etc/passwd')", "function `lo_import`"),
        ("SELECT lo_get(1)", "function `lo_get`"),
        // SQL strings run inside a function.
        (
            "SELECT query_to_xml('select * from pg_authid', true, true, '')",
            "function `query_to_xml`",
        ),
        (
            "SELECT table_to_xml('pg_authid', true, true, '')",
            "function `table_to_xml`",
        ),
        (
            "SELECT xpath('/row', query_to_xml('select 1', true, true, ''))",
            "function `xpath`",
        ),
        // Sleeps.
        ("SELECT pg_sleep(5)", "function `pg_sleep`"),
        (
            "SELECT pg_sleep_for('5 seconds')",
            "function `pg_sleep_for`",
        ),
        // Other servers.
        (
            "SELECT dblink('host=127.0.0.1', 'select 1')",
            "function `dblink`",
        ),
        (
            "SELECT dblink_exec('host=127.0.0.1', 'drop table gold_runs')",
            "function `dblink_exec`",
        ),
        // Set-returning system functions, and row generators.
        ("SELECT pg_ls_waldir()", "function `pg_ls_waldir`"),
        ("SELECT pg_logdir_ls()", "function `pg_logdir_ls`"),
        (
            "SELECT generate_series(1, 100000000)",
            "function `generate_series`",
        ),
        (
            "SELECT * FROM generate_series(1, 3)",
            "is not allowed in FROM",
        ),
        // Qualified and quoted spellings.
        (
            "SELECT pg_catalog.pg_read_file('x')",
            "function `pg_catalog.pg_read_file`",
        ),
        (
            "SELECT \"PG_READ_FILE\"('x')",
            "function `\"PG_READ_FILE\"`",
        ),
        (
            "SELECT \"pg_read_file\"('x')",
            "function `\"pg_read_file\"`",
        ),
        ("SELECT public.upper('x')", "function `public.upper`"),
        // Nested in a CTE, a subquery, a window, a lateral subquery.
        (
            "WITH a AS (SELECT pg_read_file('x') AS f) SELECT * FROM a",
            "function `pg_read_file`",
        ),
        (
            "SELECT * FROM gold_monthly_sales WHERE total_sales > \
             (SELECT max(length(pg_read_file('x'))))",
            "function `pg_read_file`",
        ),
        (
            "SELECT sum(total_sales) OVER (ORDER BY pg_backend_pid()) FROM gold_monthly_sales",
            "function `pg_backend_pid`",
        ),
        (
            "SELECT * FROM gold_runs r, LATERAL (SELECT current_setting('data_directory')) s",
            "function `current_setting`",
        ),
        // The server and the session.
        ("SELECT version()", "function `version`"),
        // Casts that look up the catalogs.
        ("SELECT 'pg_authid'::regclass", "casts to `"),
    ];
    for (sql, needle) in refused {
        let st = statement_status(&env.api, Some(&admin), sql)
            .await
            .expect_err(sql);
        assert_eq!(st.code(), Code::InvalidArgument, "{sql}: {st:?}");
        assert!(
            st.message().contains(needle),
            "{sql}: the check must refuse it naming it ({needle}), got: {}",
            st.message()
        );
    }

    let mut c = logged_in(&env.api, &ADMIN).await;
    let allowed = [
        "SELECT sum(total_sales), count(*), avg(total_sales), min(month), max(month) \
         FROM gold_monthly_sales",
        "SELECT date_trunc('year', month), extract(year FROM month), round(total_sales, 1) \
         FROM gold_monthly_sales",
        "SELECT upper(country), lower(country), length(country) FROM gold_sales_country_year",
        "SELECT scope, row_number() OVER (PARTITION BY scope ORDER BY rank) FROM gold_top_products",
        "SELECT CAST(total_sales AS numeric(14, 2)), year::text FROM gold_sales_country_year",
        "SELECT coalesce(first_name, '-'), nullif(transactions, 0), greatest(1, transactions), \
         least(1, transactions) FROM gold_customer_lifetime_value",
        "SELECT to_char(month, 'YYYY-MM'), abs(mom_growth_pct) FROM gold_monthly_sales",
    ];
    for sql in allowed {
        let rows = rows_as_text(&query(&mut c, sql).await);
        assert!(!rows.is_empty(), "{sql} returned no rows");
    }
    // And the values are PostgreSQL's.
    let rows = rows_as_text(
        &query(
            &mut c,
            "SELECT count(*), sum(total_sales)::text FROM gold_monthly_sales",
        )
        .await,
    );
    let pg = env
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*)::text, sum(total_sales)::text FROM gold_monthly_sales",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some(pg.get::<_, String>(0).as_str()));
    assert_eq!(rows[0][1].as_deref(), Some(pg.get::<_, String>(1).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_both_servers_cleanly() {
    let mut env = start(&[]).await;
    let mut c = logged_in(&env.api, &VIEWER).await;
    assert!(
        !query(&mut c, "SELECT * FROM gold_top_products")
            .await
            .is_empty()
    );
    let st = env.api.terminate();
    assert!(st.success(), "exit status {st:?}: {}", env.api.log_text());
    assert!(
        tokio::net::TcpStream::connect(&env.api.flight_addr)
            .await
            .is_err(),
        "Flight port still open"
    );
}

/// A Flight channel over TLS to `port`, trusting only `ca`, retried until `within`.
async fn tls_channel(port: u16, ca: &std::path::Path, within: Duration) -> Result<Channel, String> {
    let ca_pem = tonic::transport::Certificate::from_pem(std::fs::read(ca).unwrap());
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(ca_pem)
        .domain_name("localhost");
    let endpoint = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    let deadline = std::time::Instant::now() + within;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) if std::time::Instant::now() >= deadline => return Err(format!("{e:?}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Whether `GET https://localhost:port/healthz` answers ok, trusting only `ca` (curl).
fn rest_healthz_over_tls(port: u16, ca: &std::path::Path) -> bool {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-m", "5", "--cacert"])
        .arg(ca)
        .arg(format!("https://localhost:{port}/healthz"))
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).contains("ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_rest_and_flight_and_follows_a_renewed_certificate() {
    require_job_runner();
    let db = common::TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::issue(dir.path());
    let text = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (cert, key) = (text(&certs.server_cert), text(&certs.server_key));
    let port = common::free_port();
    let flight_port = common::free_port();
    let users = common::write_users(dir.path(), &[&VIEWER]);
    let log = dir.path().join("api.log");
    let args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--flight-listen",
        &format!("127.0.0.1:{flight_port}"),
        "--database-url",
        &db.url,
        "--users-file",
        users.to_str().unwrap(),
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-reload-secs",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut api = common::spawn_api(&args, &[("AURUM_JWT_SECRET", SECRET)], &log);
    let channel = tls_channel(flight_port, &certs.ca, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", api.log_text()));
    let mut c = FlightSqlServiceClient::new(channel);
    c.handshake(VIEWER.name, VIEWER.password).await.unwrap();
    let rows = rows_as_text(&query(&mut c, "SELECT count(*) FROM gold_top_products").await);
    assert_eq!(rows.len(), 1);
    // REST over TLS, checked with curl against the same CA; plain HTTP is refused.
    assert!(rest_healthz_over_tls(port, &certs.ca), "{}", api.log_text());
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-m",
            "5",
            &format!("http://127.0.0.1:{port}/healthz"),
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"ok\""));

    // The certificate is renewed in place, by another CA: new connections get it
    // within a reload interval, without a restart.
    let renewed_dir = tempfile::tempdir().unwrap();
    let renewed = TestCertificates::issue(renewed_dir.path());
    std::fs::copy(&renewed.server_key, &key).unwrap();
    std::fs::copy(&renewed.server_cert, &cert).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !rest_healthz_over_tls(port, &renewed.ca) {
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was not served: {}",
            api.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !rest_healthz_over_tls(port, &certs.ca),
        "the old CA still verifies"
    );
    let channel = tls_channel(flight_port, &renewed.ca, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("Flight with the renewed certificate: {e}"));
    let mut c = FlightSqlServiceClient::new(channel);
    c.handshake(VIEWER.name, VIEWER.password).await.unwrap();
    assert!(
        tls_channel(flight_port, &certs.ca, Duration::from_millis(500))
            .await
            .is_err(),
        "Flight still verifies with the old CA"
    );
    assert!(api.log_text().contains("TLS certificate reloaded"));
    let st = api.terminate();
    assert!(st.success(), "{}", api.log_text());
}
