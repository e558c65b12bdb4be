//! Running checked queries on PostgreSQL and streaming their rows as Arrow batches.
//!
//! Each query runs on a connection of the Flight pool in a READ ONLY transaction
//! with `statement_timeout` set; rows come through an unnamed portal
//! (`query_raw`), which tokio-postgres reads with backpressure, and leave as one
//! record batch per `batch_rows` rows, so memory stays bounded by a batch whatever
//! the result size.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::BytesMut;
use deadpool_postgres::{Object, Pool};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{RowStream, Statement};
use tonic::Status;

use crate::flight::pg_arrow::{BatchBuilder, ColumnKind, columns_of};
use crate::flight::sql::CheckedQuery;
use crate::state::AppState;

/// A statement ticket or prepared-statement handle: the client's SQL and, once
/// bound, its parameter values as text. It is opaque to clients but not trusted:
/// the SQL is checked again on every use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueryHandle {
    /// The SQL as the client sent it.
    pub sql: String,
    /// Bound parameters (`None` = SQL NULL), in placeholder order.
    #[serde(default)]
    pub params: Vec<Option<String>>,
}

impl QueryHandle {
    /// The handle's bytes.
    pub fn encode(&self) -> bytes::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    /// Reads a handle.
    pub fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes)
            .map_err(|_| Status::invalid_argument("unknown statement handle or ticket"))
    }
}

/// A parameter sent in PostgreSQL's text format, so the server parses it as the
/// type it inferred for the placeholder (exact for numeric, dates, integers).
#[derive(Debug)]
struct TextParam<'a>(Option<&'a str>);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// Limits of Flight queries.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Rows per record batch.
    pub batch_rows: usize,
    /// Most rows of one result.
    pub max_rows: u64,
    /// PostgreSQL `statement_timeout`.
    pub timeout: Duration,
}

/// What a prepared query returns and takes.
#[derive(Debug, Clone)]
pub struct Described {
    /// The result schema.
    pub schema: SchemaRef,
    /// The parameters' schema (`$1`, `$2`, ... with the types PostgreSQL inferred).
    pub parameters: SchemaRef,
}

/// Maps a PostgreSQL error to a gRPC status a client can act on.
pub fn pg_status(e: &tokio_postgres::Error) -> Status {
    use tokio_postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        tracing::warn!(error = %e, "flight: database unavailable");
        return Status::unavailable("the database is unavailable");
    };
    let code = db.code();
    let msg = format!("PostgreSQL: {}", db.message());
    if *code == SqlState::QUERY_CANCELED {
        Status::deadline_exceeded(
            "the query ran longer than the Flight query timeout (--flight-query-timeout-secs)",
        )
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        Status::permission_denied(msg)
    } else if code.code().starts_with("42")
        || code.code().starts_with("22")
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        || code.code().starts_with("08P01")
    {
        Status::invalid_argument(msg)
    } else {
        tracing::warn!(error = %e, "flight: query failed");
        Status::internal(msg)
    }
}

/// Runs Flight queries on a pool of their own.
pub struct QueryRunner {
    pool: Pool,
    limits: QueryLimits,
}

/// A pooled connection inside our READ ONLY transaction: if the stream is dropped
/// before COMMIT (client gone, error), the connection is discarded rather than
/// returned to the pool with the transaction still open.
struct TxConnection {
    conn: Option<Object>,
    open: bool,
}

impl Drop for TxConnection {
    fn drop(&mut self) {
        if self.open
            && let Some(conn) = self.conn.take()
        {
            drop(Object::take(conn));
        }
    }
}

/// The stream of a running query.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, FlightError>> + Send>>;

struct Streaming {
    tx: TxConnection,
    rows: Pin<Box<RowStream>>,
    builder: BatchBuilder,
    limits: QueryLimits,
    total: u64,
    done: bool,
    state: Arc<AppState>,
}

impl Streaming {
    async fn next_batch(&mut self) -> Option<Result<RecordBatch, FlightError>> {
        if self.done {
            return None;
        }
        let status = |s: Status| FlightError::Tonic(Box::new(s));
        loop {
            match self.rows.next().await {
                Some(Ok(row)) => {
                    self.total += 1;
                    if self.total > self.limits.max_rows {
                        self.done = true;
                        return Some(Err(status(Status::resource_exhausted(format!(
                            "the result has more than {} rows (--flight-max-rows); add a LIMIT \
                             or a filter",
                            self.limits.max_rows
                        )))));
                    }
                    if let Err(e) = self.builder.append(&row) {
                        self.done = true;
                        return Some(Err(status(Status::internal(e.to_string()))));
                    }
                    if self.builder.len() >= self.limits.batch_rows {
                        self.state.metrics.flight_rows(self.builder.len() as u64);
                        return Some(self.builder.finish().map_err(FlightError::Arrow));
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(status(pg_status(&e))));
                }
                None => {
                    self.done = true;
                    if let Some(conn) = &self.tx.conn {
                        if let Err(e) = conn.batch_execute("COMMIT").await {
                            return Some(Err(status(pg_status(&e))));
                        }
                        self.tx.open = false;
                    }
                    if self.builder.is_empty() {
                        return None;
                    }
                    self.state.metrics.flight_rows(self.builder.len() as u64);
                    return Some(self.builder.finish().map_err(FlightError::Arrow));
                }
            }
        }
    }
}

fn parameter_schema(statement: &Statement) -> SchemaRef {
    Arc::new(Schema::new(
        statement
            .params()
            .iter()
            .enumerate()
            .map(|(i, ty)| {
                let name = format!("${}", i + 1);
                let data_type = ColumnKind::of(&name, ty, -1)
                    .map(ColumnKind::arrow_type)
                    .unwrap_or(DataType::Utf8);
                Field::new(name, data_type, true)
            })
            .collect::<Vec<_>>(),
    ))
}

impl QueryRunner {
    /// A runner on `pool` (connections opened lazily).
    pub fn new(pool: Pool, limits: QueryLimits) -> Self {
        Self { pool, limits }
    }

    async fn connection(&self) -> Result<Object, Status> {
        self.pool.get().await.map_err(|e| {
            tracing::warn!(error = %e, "flight: no database connection");
            Status::unavailable("the database is unavailable")
        })
    }

    /// Prepares `query` (without running it) to learn its result and parameter schemas.
    pub async fn describe(&self, query: &CheckedQuery) -> Result<Described, Status> {
        let conn = self.connection().await?;
        let statement = conn.prepare(&query.sql).await.map_err(|e| pg_status(&e))?;
        let columns =
            columns_of(&statement).map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Described {
            schema: crate::flight::pg_arrow::schema_of(&columns),
            parameters: parameter_schema(&statement),
        })
    }

    /// Starts `query` with `params` and returns its schema and the stream of its
    /// batches. Errors before the first row (bad SQL, wrong parameter count,
    /// unsupported column types) are returned here.
    pub async fn run(
        &self,
        query: &CheckedQuery,
        params: &[Option<String>],
        state: Arc<AppState>,
    ) -> Result<(SchemaRef, BatchStream), Status> {
        let mut tx = TxConnection {
            conn: None,
            open: true,
        };
        let conn = tx.conn.insert(self.connection().await?);
        let timeout_ms = self.limits.timeout.as_millis().max(1);
        conn.batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET LOCAL statement_timeout = {timeout_ms}"
        ))
        .await
        .map_err(|e| pg_status(&e))?;
        let statement = conn.prepare(&query.sql).await.map_err(|e| pg_status(&e))?;
        if statement.params().len() != params.len() {
            return Err(Status::invalid_argument(format!(
                "the query has {} parameter(s) but {} value(s) are bound",
                statement.params().len(),
                params.len()
            )));
        }
        let columns =
            columns_of(&statement).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let text_params: Vec<TextParam<'_>> =
            params.iter().map(|p| TextParam(p.as_deref())).collect();
        let rows = conn
            .query_raw(&statement, text_params.iter())
            .await
            .map_err(|e| pg_status(&e))?;
        let builder = BatchBuilder::new(columns, self.limits.batch_rows);
        let schema = builder.schema();
        let state = Streaming {
            tx,
            rows: Box::pin(rows),
            builder,
            limits: self.limits,
            total: 0,
            done: false,
            state,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            let item = state.next_batch().await?;
            Some((item, state))
        });
        Ok((schema, Box::pin(stream)))
    }
}
