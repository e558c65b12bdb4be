//! The gold side in PostgreSQL: schema migrations, and publishing a gold table.
//!
//! A publish is one transaction: the rows go into a temporary staging table by
//! binary COPY, then replace the gold table's rows, and the `gold_runs` row is
//! appended. Readers see the previous complete table until the commit and the
//! new complete table after it; a crash at any point rolls back to the old one.
//! Replacing rows (rather than swapping tables) keeps grants, views and indexes
//! users may have put on the gold tables.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use aurum_gold::ident::{qualified, quote_ident};
use aurum_gold::postgres::{PgConfig, explain};
use aurum_gold::tables::RUNS_TABLE;

use crate::datamart::{Datamart, GoldRow};

/// The migrations, in order. Each is written to be idempotent (`IF NOT EXISTS`)
/// and all are applied before every load, so that a gold table dropped by hand
/// or by a Datamart's `deletionPolicy: Delete` comes back (empty) on the next
/// run; `aurum_schema_migrations` records when each was first applied.
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../migrations/0001_gold.sql"))];

/// Environment variable naming a failpoint, for crash tests: with
/// `before-gold-swap` the process aborts after staging, before the swap.
pub const FAILPOINT_ENV: &str = "AURUM_FAILPOINT";

/// A PostgreSQL failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The URL does not parse.
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    /// The schema name is not a plain identifier.
    #[error("invalid database schema name {0:?}: use lower-case letters, digits and _")]
    BadSchema(String),
    /// The server cannot be reached or refused the login.
    #[error("cannot connect to PostgreSQL at {target}: {message}")]
    Connect {
        /// host:port/database, without credentials.
        target: String,
        /// What went wrong.
        message: String,
    },
    /// A statement failed.
    #[error("PostgreSQL, {doing}: {message}")]
    Query {
        /// What was being done.
        doing: String,
        /// The server's or driver's message.
        message: String,
    },
    /// A gold table exists with other columns than the contract's.
    #[error(
        "table {table} does not have the contract's shape: {difference}; \
         rename or drop it and run again (Aurum will create it)"
    )]
    WrongShape {
        /// The table.
        table: String,
        /// The first difference found.
        difference: String,
    },
}

fn query_error(doing: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> WarehouseError {
    let doing = doing.into();
    move |e| WarehouseError::Query {
        doing,
        message: describe(&e),
    }
}

fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => {
            let mut message = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                message = format!("{message}: {cause}");
                source = cause.source();
            }
            message
        }
    }
}

/// What a publish records in `gold_runs`.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// The job-runner's run id.
    pub run_id: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// The silver snapshot the table was built from.
    pub silver_snapshot_id: String,
}

/// A connection to the gold database.
pub struct Warehouse {
    client: Client,
    schema: String,
}

impl Warehouse {
    /// Connects, with a clear message for a bad URL, an unreachable server or
    /// a refused login (the password never appears in it).
    pub async fn connect(url: &str, schema: &str) -> Result<Warehouse, WarehouseError> {
        if schema.is_empty()
            || !schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            || schema.as_bytes()[0].is_ascii_digit()
        {
            return Err(WarehouseError::BadSchema(schema.to_owned()));
        }
        let pg = PgConfig::from_url(url).map_err(|e| WarehouseError::BadUrl(e.to_string()))?;
        let mut config = pg.config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("aurum-job-runner");
        let target = describe_target(&config);
        let (client, connection) = config.connect(pg.tls()).await.map_err(|e| {
            WarehouseError::Connect {
                target: target.clone(),
                message: match e.code() {
                    Some(code)
                        if *code == SqlState::INVALID_PASSWORD
                            || (*code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                                && !e
                                    .as_db_error()
                                    .is_some_and(|db| db.message().ends_with("no encryption"))) =>
                    {
                        format!(
                            "login refused ({}); check the user and password in the database URL",
                            describe(&e)
                        )
                    }
                    _ => explain(&e, pg.ssl_mode, pg.root_cert.as_deref()),
                },
            }
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!(error = %e, "PostgreSQL connection closed");
            }
        });
        Ok(Warehouse {
            client,
            schema: schema.to_owned(),
        })
    }

    fn qualified(&self, table: &str) -> String {
        qualified(&self.schema, table)
    }

    /// Creates the schema, applies pending migrations (once, under a lock), and
    /// checks that every gold table has the contract's shape.
    pub async fn migrate(&mut self) -> Result<(), WarehouseError> {
        let schema = self.schema.clone();
        let tx = self
            .client
            .transaction()
            .await
            .map_err(query_error("starting the migration"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('aurum-migrations'))",
            &[],
        )
        .await
        .map_err(query_error("locking for the migration"))?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             SET LOCAL search_path TO \"{schema}\";
             CREATE TABLE IF NOT EXISTS aurum_schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now());"
        ))
        .await
        .map_err(query_error(format!("creating schema {schema}")))?;
        for (version, sql) in MIGRATIONS {
            tx.batch_execute(sql)
                .await
                .map_err(query_error(format!("applying migration {version}")))?;
            let first_time = tx
                .execute(
                    "INSERT INTO aurum_schema_migrations (version) VALUES ($1)
                     ON CONFLICT (version) DO NOTHING",
                    &[version],
                )
                .await
                .map_err(query_error("recording a migration"))?;
            if first_time == 1 {
                tracing::info!(version, schema = %schema, "migration applied");
            }
        }
        tx.commit()
            .await
            .map_err(query_error("committing the migration"))?;
        Ok(())
    }

    /// Lets `role` read the gold tables and `gold_runs`, and nothing more:
    /// USAGE on the schema, SELECT on those tables. Idempotent, so it runs at
    /// every publish; a publish replaces rows in place, so the grant stays.
    pub async fn grant_reader(&self, role: &str) -> Result<(), WarehouseError> {
        let tables = Datamart::ALL
            .iter()
            .map(|d| self.qualified(d.table()))
            .chain([self.qualified(RUNS_TABLE)])
            .collect::<Vec<_>>()
            .join(", ");
        let role = quote_ident(role);
        self.client
            .batch_execute(&format!(
                "GRANT USAGE ON SCHEMA {} TO {role}; GRANT SELECT ON {tables} TO {role};",
                quote_ident(&self.schema)
            ))
            .await
            .map_err(query_error(format!(
                "granting {role} read access to the gold tables"
            )))
    }

    /// Fails unless the gold table of `datamart` has exactly the contract's columns and
    /// the contract's types.
    pub async fn check_shape(&self, datamart: Datamart) -> Result<(), WarehouseError> {
        let table = datamart.table();
        let rows = self
            .client
            .query(
                "SELECT column_name::text, data_type::text, numeric_precision, numeric_scale
                 FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2
                 ORDER BY ordinal_position",
                &[&self.schema, &table],
            )
            .await
            .map_err(query_error(format!("reading the columns of {table}")))?;
        let found: Vec<(String, String)> = rows
            .iter()
            .map(|row| {
                let data_type: String = row.get(1);
                let shown = match (
                    data_type.as_str(),
                    row.get::<_, Option<i32>>(2),
                    row.get::<_, Option<i32>>(3),
                ) {
                    ("numeric", Some(p), Some(s)) => format!("numeric({p},{s})"),
                    _ => data_type,
                };
                (row.get(0), shown)
            })
            .collect();
        let wrong = |difference: String| WarehouseError::WrongShape {
            table: self.qualified(table),
            difference,
        };
        let columns = datamart.columns();
        for (index, column) in columns.iter().enumerate() {
            let (name, expected) = (column.name, column.sql_type.declared());
            match found.get(index) {
                Some((found_name, found_type)) if found_name == name && *found_type == expected => {
                }
                Some((found_name, found_type)) => {
                    return Err(wrong(format!(
                        "column {} is {found_name} {found_type}, expected {name} {expected}",
                        index + 1
                    )));
                }
                None => return Err(wrong(format!("column {name} {expected} is missing"))),
            }
        }
        if found.len() > columns.len() {
            return Err(wrong(format!(
                "unexpected column {}",
                found[columns.len()].0
            )));
        }
        Ok(())
    }

    /// Replaces the gold table of `datamart` with `rows` and records the run,
    /// in one transaction. Returns the rows written.
    pub async fn publish<R: GoldRow>(
        &mut self,
        datamart: Datamart,
        run: &RunRecord,
        rows: &[R],
    ) -> Result<u64, WarehouseError> {
        let table = self.qualified(datamart.table());
        let runs = self.qualified(RUNS_TABLE);
        let columns = datamart
            .columns()
            .iter()
            .map(|c| quote_ident(c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let types: Vec<_> = datamart
            .columns()
            .iter()
            .map(|c| c.sql_type.pg_type())
            .collect();

        let tx = self
            .client
            .transaction()
            .await
            .map_err(query_error("starting the publish"))?;
        // One load per datamart at a time, whoever runs it.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("aurum-gold:{}", datamart.table())],
        )
        .await
        .map_err(query_error(format!("locking {table}")))?;
        tx.batch_execute(&format!(
            "CREATE TEMPORARY TABLE aurum_staging (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
        ))
        .await
        .map_err(query_error(format!(
            "creating the staging table of {table}"
        )))?;
        let sink = tx
            .copy_in(&format!(
                "COPY aurum_staging ({columns}) FROM STDIN (FORMAT binary)"
            ))
            .await
            .map_err(query_error(format!(
                "starting COPY into the staging table of {table}"
            )))?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        for row in rows {
            writer
                .as_mut()
                .write(&row.values())
                .await
                .map_err(query_error(format!("copying rows of {table}")))?;
        }
        let staged = writer
            .finish()
            .await
            .map_err(query_error(format!("finishing COPY of {table}")))?;

        if std::env::var(FAILPOINT_ENV).as_deref() == Ok("before-gold-swap") {
            tracing::error!(table = %table, "failpoint before-gold-swap: aborting");
            std::process::abort();
        }

        tx.execute(&format!("DELETE FROM {table}"), &[])
            .await
            .map_err(query_error(format!("clearing {table}")))?;
        tx.execute(
            &format!("INSERT INTO {table} ({columns}) SELECT {columns} FROM aurum_staging"),
            &[],
        )
        .await
        .map_err(query_error(format!("swapping the new rows into {table}")))?;
        tx.execute(
            &format!(
                "INSERT INTO {runs} (datamart, run_id, started_at, finished_at, rows_written, status, silver_snapshot_id)
                 VALUES ($1, $2, $3, now(), $4, 'succeeded', $5)"
            ),
            &[&datamart.name(), &run.run_id, &run.started_at, &(staged as i64), &run.silver_snapshot_id],
        )
        .await
        .map_err(query_error("recording the run in gold_runs"))?;
        tx.commit()
            .await
            .map_err(query_error(format!("committing {table}")))?;
        Ok(staged)
    }

    /// Records a failed load in `gold_runs` (the gold table is unchanged).
    pub async fn record_failure(
        &self,
        datamart: Datamart,
        run: &RunRecord,
        message: &str,
    ) -> Result<(), WarehouseError> {
        let runs = self.qualified(RUNS_TABLE);
        self.client
            .execute(
                &format!(
                    "INSERT INTO {runs} (datamart, run_id, started_at, finished_at, rows_written, status, silver_snapshot_id, message)
                     VALUES ($1, $2, $3, now(), 0, 'failed', $4, $5)
                     ON CONFLICT (datamart, run_id) DO NOTHING"
                ),
                &[&datamart.name(), &run.run_id, &run.started_at, &run.silver_snapshot_id, &message],
            )
            .await
            .map_err(query_error("recording a failed run in gold_runs"))?;
        Ok(())
    }
}

fn describe_target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{database}")
}
