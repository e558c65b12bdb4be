//! Silver in a Hive Metastore: after a preprocess publishes a snapshot, its
//! silver tables and their rejects are registered (created or altered) as
//! external Parquet tables, so that Spark SQL, Trino, Hive or Flink can query
//! them by name (docs/catalog.md).
//!
//! A Hive table or partition points at a directory, and reads every file in
//! it; a silver snapshot's files of one table (or one month of transactions)
//! are therefore alone in a directory named after the snapshot,
//! `silver/<table>/snapshot=<id>/` (see [`crate::silver`]). Registering a
//! snapshot repoints each table (or partition) at its new directory; the
//! previous snapshot's files stay in place for the snapshot grace period, so a
//! query planned a moment before the switch still finds them.
//!
//! What is atomic: an unpartitioned table is switched by one `alter_table`
//! call (one Metastore transaction). A partitioned table (transactions, by
//! year and month) is switched in up to three calls, each one transaction:
//! months that are gone are dropped, months present before and after are
//! repointed together (`alter_partitions`), new months are added; the table's
//! properties name the new snapshot last. Between those calls a reader can see
//! fewer months than the snapshot has, never a month of another snapshot. The
//! tables are switched one after the other, so a query joining two tables
//! during a registration can see one table at the new snapshot and the other
//! at the previous one (the job-runner's own readers, which go through the
//! manifest, never do).

pub mod thrift;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, Schema};
use object_store::ObjectStoreExt;
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::ParquetMetaDataReader;
use serde::Serialize;

use self::thrift::{Connection, ThriftError, Value};
use crate::snapshot::{Snapshot, TableFiles};
use crate::storage::{Storage, StorageError};

/// The default Metastore database of the silver tables.
pub const DEFAULT_DATABASE: &str = "aurum";

/// The table property naming the snapshot a table points at.
pub const SNAPSHOT_PROPERTY: &str = "aurum.snapshot_id";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One call's deadline: adding a few hundred partitions to a Metastore on a
/// busy database takes seconds, not minutes.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_ATTEMPTS: u32 = 3;

const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const PARQUET_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
const OWNER: &str = "aurum";

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// `--metastore` is not `thrift://host:port`.
    #[error("--metastore {0:?}: expected thrift://HOST:PORT")]
    BadUrl(String),
    /// The Metastore could not be reached, or failed a call.
    #[error("Hive Metastore {url}: {source}")]
    Metastore {
        /// The Metastore.
        url: String,
        /// What failed.
        #[source]
        source: ThriftError,
    },
    /// A silver file's footer could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A silver file is not readable Parquet.
    #[error("{path}: {message}")]
    Parquet {
        /// The file.
        path: String,
        /// The reader's message.
        message: String,
    },
    /// The silver layout is not one Hive can describe.
    #[error("{table}: {reason}")]
    Layout {
        /// The Metastore table.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// A table of that name exists and is not one Aurum registered.
    #[error(
        "{database}.{table} exists and was not registered by Aurum (no {SNAPSHOT_PROPERTY} property): not touched"
    )]
    Foreign {
        /// The database.
        database: String,
        /// The table.
        table: String,
    },
    /// The blocking registration task died.
    #[error("the registration task failed: {0}")]
    Task(String),
}

/// Where to register silver: a Metastore and a database in it.
#[derive(Clone, Debug)]
pub struct Metastore {
    /// `thrift://host:port`, as given.
    pub url: String,
    /// `host:port`.
    address: String,
    /// The database.
    pub database: String,
}

impl Metastore {
    /// Parses `thrift://host:port`.
    pub fn new(url: &str, database: &str) -> Result<Metastore, CatalogError> {
        let bad = || CatalogError::BadUrl(url.to_owned());
        let parsed = url::Url::parse(url).map_err(|_| bad())?;
        if parsed.scheme() != "thrift"
            || !parsed.path().trim_matches('/').is_empty()
            || parsed.query().is_some()
        {
            return Err(bad());
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(bad)?;
        let port = parsed.port().ok_or_else(bad)?;
        if database.is_empty()
            || !database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(CatalogError::BadUrl(format!(
                "{url} (database {database:?}: letters, digits and _ only)"
            )));
        }
        Ok(Metastore {
            url: url.to_owned(),
            address: format!("{}:{port}", host.trim_matches(['[', ']'])),
            database: database.to_ascii_lowercase(),
        })
    }
}

/// The registration's outcome, in the run report (`catalog`).
#[derive(Clone, Debug, Serialize)]
pub struct CatalogReport {
    /// The Metastore URL.
    pub metastore: String,
    /// The database.
    pub database: String,
    /// `registered` or `failed`.
    pub status: CatalogStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// The snapshot registered (or that failed to be).
    pub snapshot_id: String,
    /// The tables registered, in order.
    pub tables: Vec<RegisteredTable>,
    /// Wall-clock duration.
    pub duration_ms: u64,
}

/// Outcome of a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogStatus {
    /// Every table points at the new snapshot.
    Registered,
    /// Some or all tables still point at an earlier snapshot (or do not
    /// exist); the silver snapshot itself is published all the same.
    Failed,
}

/// One table registered. Kept small: the operator reads the report from a
/// pod's termination message, which Kubernetes cuts at 4 KiB (the locations
/// follow from the lake and the snapshot id: docs/catalog.md).
#[derive(Clone, Debug, Serialize)]
pub struct RegisteredTable {
    /// The table's name in the database.
    pub table: String,
    /// `created`, `altered`, or `kept_newer` (the table already pointed at a
    /// newer snapshot, registered by an overlapping run, and was left alone).
    pub action: &'static str,
    /// Partitions, for a partitioned table.
    #[serde(skip_serializing_if = "is_zero")]
    pub partitions: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A Hive column.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Column {
    name: String,
    hive_type: String,
}

/// One table to register, as the snapshot lays it out.
#[derive(Debug)]
struct TablePlan {
    name: String,
    silver_table: String,
    kind: &'static str,
    columns: Vec<Column>,
    /// Partition column names (typed `int`: year and month).
    partition_keys: Vec<String>,
    /// The table's location: its snapshot directory, or for a partitioned
    /// table the directory above the partitions.
    location: String,
    /// Partition values and each partition's directory.
    partitions: BTreeMap<Vec<String>, String>,
    rows: u64,
}

/// The Hive type of an Arrow type, as the Parquet files store it.
fn hive_type(data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".to_owned(),
        DataType::Boolean => "boolean".to_owned(),
        DataType::Int8 => "tinyint".to_owned(),
        DataType::Int16 => "smallint".to_owned(),
        DataType::Int32 => "int".to_owned(),
        DataType::Int64 => "bigint".to_owned(),
        DataType::Float32 => "float".to_owned(),
        DataType::Float64 => "double".to_owned(),
        DataType::Date32 => "date".to_owned(),
        DataType::Timestamp(..) => "timestamp".to_owned(),
        DataType::Binary | DataType::LargeBinary => "binary".to_owned(),
        DataType::Decimal128(p, s) if *p <= 38 => format!("decimal({p},{s})"),
        _ => return None,
    })
}

fn columns_of(table: &str, schema: &Schema) -> Result<Vec<Column>, CatalogError> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let hive_type = hive_type(f.data_type()).ok_or_else(|| CatalogError::Layout {
                table: table.to_owned(),
                reason: format!("column {}: no Hive type for {}", f.name(), f.data_type()),
            })?;
            Ok(Column {
                name: f.name().to_ascii_lowercase(),
                hive_type,
            })
        })
        .collect()
}

/// The Arrow schema in a Parquet file's footer.
async fn file_schema(lake: &Storage, relative: &str) -> Result<Schema, CatalogError> {
    let path = lake.path(relative);
    let size = lake
        .size(&path)
        .await?
        .ok_or_else(|| CatalogError::Parquet {
            path: lake.object_url(&path),
            message: "named by the snapshot but missing".to_owned(),
        })?;
    let bad = |message: String| CatalogError::Parquet {
        path: lake.object_url(&path),
        message,
    };
    let read = |range: std::ops::Range<u64>| {
        let path = path.clone();
        async move { lake.store().get_range(&path, range).await }
    };
    // The footer: metadata length and magic in the last 8 bytes, the
    // metadata before them; the data pages are not read.
    if size < 12 {
        return Err(bad(format!("{size} bytes: too small for Parquet")));
    }
    let tail = read(size - 8..size).await.map_err(|e| bad(e.to_string()))?;
    if &tail[4..] != b"PAR1" {
        return Err(bad("no Parquet footer".to_owned()));
    }
    let length = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if length + 8 > size {
        return Err(bad(format!("footer length {length} beyond the file")));
    }
    let footer = read(size - 8 - length..size - 8)
        .await
        .map_err(|e| bad(e.to_string()))?;
    let metadata =
        ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| bad(e.to_string()))?;
    let file = metadata.file_metadata();
    parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
        .map_err(|e| bad(e.to_string()))
}

/// How one table's files of a snapshot lie: `prefix/[k=v/...]snapshot=<id>/file`.
async fn plan_table(
    lake: &Storage,
    snapshot: &Snapshot,
    name: String,
    silver_table: &str,
    kind: &'static str,
    prefix: &str,
    files: &TableFiles,
) -> Result<TablePlan, CatalogError> {
    let layout = |reason: String| CatalogError::Layout {
        table: name.clone(),
        reason,
    };
    let snapshot_dir = format!("snapshot={}", snapshot.snapshot_id);
    let mut columns: Option<Vec<Column>> = None;
    let mut keys: Option<Vec<String>> = None;
    let mut partitions: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for file in &files.files {
        let rest = file
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| layout(format!("{file} is not under {prefix}/")))?;
        let segments: Vec<&str> = rest.split('/').collect();
        // ..., snapshot=<id>, file name
        let n = segments.len();
        if n < 2 || segments[n - 2] != snapshot_dir {
            return Err(layout(format!(
                "{file} is not in a {snapshot_dir}/ directory of its own (a silver layout older than the catalog support: run preprocess again)"
            )));
        }
        let mut file_keys = Vec::new();
        let mut values = Vec::new();
        for segment in &segments[..n - 2] {
            let (k, v) = segment
                .split_once('=')
                .ok_or_else(|| layout(format!("{file}: {segment} is not a key=value directory")))?;
            file_keys.push(k.to_owned());
            values.push(v.to_owned());
        }
        match &keys {
            None => keys = Some(file_keys),
            Some(k) if *k != file_keys => {
                return Err(layout(format!(
                    "{file}: partition keys {file_keys:?}, other files {k:?}"
                )));
            }
            Some(_) => {}
        }
        let dir = format!("{prefix}/{}", segments[..n - 1].join("/"));
        if let Some(other) = partitions.insert(values, dir.clone())
            && other != dir
        {
            return Err(layout(format!(
                "one partition in two directories: {other}, {dir}"
            )));
        }
        let file_columns = columns_of(&name, &file_schema(lake, file).await?)?;
        match &columns {
            None => columns = Some(file_columns),
            Some(c) if *c != file_columns => {
                return Err(layout(format!(
                    "{file} has another schema than the table's other files"
                )));
            }
            Some(_) => {}
        }
    }
    let partition_keys = keys.unwrap_or_default();
    let columns = match columns {
        Some(columns) => columns,
        // Silver writes a file for every keyed table and rejects table, even
        // empty; only transactions can have none (no month at all), and then
        // its schema and keys are the silver writer's.
        None if silver_table == "transactions" && kind == "silver" => {
            columns_of(&name, &crate::silver::transactions_schema())?
        }
        None => return Err(layout("the snapshot names no file".to_owned())),
    };
    let partition_keys = if files.files.is_empty() && silver_table == "transactions" {
        vec!["year".to_owned(), "month".to_owned()]
    } else {
        partition_keys
    };
    let location = if partition_keys.is_empty() {
        let dir = partitions
            .remove(&Vec::new())
            .ok_or_else(|| layout("no directory".to_owned()))?;
        lake.object_url(&lake.path(&dir))
    } else {
        lake.object_url(&lake.path(prefix))
    };
    let partitions = partitions
        .into_iter()
        .map(|(values, dir)| (values, lake.object_url(&lake.path(&dir))))
        .collect();
    Ok(TablePlan {
        name,
        silver_table: silver_table.to_owned(),
        kind,
        columns,
        partition_keys,
        location,
        partitions,
        rows: files.rows,
    })
}

async fn plan(lake: &Storage, snapshot: &Snapshot) -> Result<Vec<TablePlan>, CatalogError> {
    let mut plans = Vec::new();
    for (table, files) in &snapshot.tables {
        let prefix = format!("silver/{table}");
        plans.push(
            plan_table(
                lake,
                snapshot,
                table.clone(),
                table,
                "silver",
                &prefix,
                files,
            )
            .await?,
        );
    }
    for (table, files) in &snapshot.rejects {
        let prefix = format!("silver/_rejects/{table}");
        let name = format!("{table}_rejects");
        plans.push(plan_table(lake, snapshot, name, table, "rejects", &prefix, files).await?);
    }
    Ok(plans)
}

/// Registers `snapshot`'s tables in the Metastore, creating the database if
/// it is missing. `run_id` is the registering run's id.
pub async fn register(
    lake: &Storage,
    snapshot: &Snapshot,
    run_id: &str,
    metastore: &Metastore,
) -> Result<Vec<RegisteredTable>, CatalogError> {
    let plans = plan(lake, snapshot).await?;
    let properties = Properties {
        snapshot_id: snapshot.snapshot_id.clone(),
        created_at: snapshot.created_at.clone(),
        run_id: run_id.to_owned(),
        lake: lake.display().to_owned(),
    };
    let metastore = metastore.clone();
    tokio::task::spawn_blocking(move || {
        let mut session = Session::connect(&metastore)?;
        session.ensure_database()?;
        plans
            .iter()
            .map(|plan| session.register(plan, &properties))
            .collect()
    })
    .await
    .map_err(|e| CatalogError::Task(e.to_string()))?
}

/// Registers and records the outcome in a report: a failure is logged and
/// reported (`status: failed`), not returned, because the silver snapshot is
/// published whatever the catalog does (docs/catalog.md says why).
pub async fn register_and_report(
    lake: &Storage,
    snapshot: &Snapshot,
    run_id: &str,
    metastore: &Metastore,
) -> CatalogReport {
    let started = Instant::now();
    let outcome = register(lake, snapshot, run_id, metastore).await;
    let (status, error, tables) = match outcome {
        Ok(tables) => {
            tracing::info!(
                metastore = %metastore.url,
                database = %metastore.database,
                tables = tables.len(),
                snapshot_id = %snapshot.snapshot_id,
                "silver registered in the Hive Metastore"
            );
            (CatalogStatus::Registered, None, tables)
        }
        Err(e) => {
            tracing::warn!(
                metastore = %metastore.url,
                error = %e,
                "silver is published but NOT registered in the Hive Metastore: its tables still point at an earlier snapshot"
            );
            (CatalogStatus::Failed, Some(e.to_string()), Vec::new())
        }
    };
    CatalogReport {
        metastore: metastore.url.clone(),
        database: metastore.database.clone(),
        status,
        error,
        snapshot_id: snapshot.snapshot_id.clone(),
        tables,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

struct Properties {
    snapshot_id: String,
    created_at: String,
    run_id: String,
    lake: String,
}

struct Session<'a> {
    metastore: &'a Metastore,
    connection: Connection,
}

/// NoSuchObjectException's position in `get_database`'s and `get_table_req`'s `throws`.
const GET_DATABASE_NO_SUCH_OBJECT: i16 = 1;
const GET_TABLE_NO_SUCH_OBJECT: i16 = 2;

impl<'a> Session<'a> {
    fn connect(metastore: &'a Metastore) -> Result<Session<'a>, CatalogError> {
        let mut attempt = 1;
        loop {
            match Connection::connect(&metastore.address, CONNECT_TIMEOUT) {
                Ok(mut connection) => {
                    connection
                        .set_timeout(CALL_TIMEOUT)
                        .map_err(|e| CatalogError::Metastore {
                            url: metastore.url.clone(),
                            source: e,
                        })?;
                    return Ok(Session {
                        metastore,
                        connection,
                    });
                }
                Err(e) if attempt < CONNECT_ATTEMPTS => {
                    tracing::warn!(metastore = %metastore.url, attempt, error = %e, "connecting to the Hive Metastore again");
                    std::thread::sleep(Duration::from_secs(u64::from(attempt)));
                    attempt += 1;
                }
                Err(e) => {
                    return Err(CatalogError::Metastore {
                        url: metastore.url.clone(),
                        source: e,
                    });
                }
            }
        }
    }

    fn call(
        &mut self,
        method: &str,
        args: Vec<(i16, Value)>,
    ) -> Result<Option<Value>, ThriftError> {
        self.connection.call(method, args)
    }

    fn fail(&self, source: ThriftError) -> CatalogError {
        CatalogError::Metastore {
            url: self.metastore.url.clone(),
            source,
        }
    }

    fn ensure_database(&mut self) -> Result<(), CatalogError> {
        let db = self.metastore.database.clone();
        match self.call("get_database", vec![(1, Value::str(&db))]) {
            Ok(_) => Ok(()),
            Err(ThriftError::Declared { id, .. }) if id == GET_DATABASE_NO_SUCH_OBJECT => {
                let database = Value::Struct(vec![
                    (1, Value::str(&db)),
                    (
                        2,
                        Value::str(
                            "Aurum silver tables (registered by aurum-job-runner preprocess)",
                        ),
                    ),
                    (4, Value::string_map([])),
                    (6, Value::str(OWNER)),
                    (7, Value::I32(1)),
                ]);
                match self.call("create_database", vec![(1, database)]) {
                    // AlreadyExistsException: another run created it meanwhile.
                    Ok(_) | Err(ThriftError::Declared { id: 1, .. }) => Ok(()),
                    Err(e) => Err(self.fail(e)),
                }
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn register(
        &mut self,
        plan: &TablePlan,
        properties: &Properties,
    ) -> Result<RegisteredTable, CatalogError> {
        let db = self.metastore.database.clone();
        // get_table_req, not get_table: Hive 4 dropped get_table; both 3.x
        // and 4.x have get_table_req.
        let request = Value::Struct(vec![(1, Value::str(&db)), (2, Value::str(&plan.name))]);
        let existing = match self.call("get_table_req", vec![(1, request)]) {
            // GetTableResult { 1: Table }
            Ok(result) => result.and_then(|r| r.field(1).cloned()),
            Err(ThriftError::Declared { id, .. }) if id == GET_TABLE_NO_SUCH_OBJECT => None,
            Err(e) => return Err(self.fail(e)),
        };
        let now = chrono::Utc::now().timestamp() as i32;
        let table_value = |create_time: i32| table(&db, plan, properties, create_time);
        let action = match existing {
            None => {
                self.call("create_table", vec![(1, table_value(now))])
                    .map_err(|e| self.fail(e))?;
                // The partitions of a new table all go in in one call.
                self.add_partitions(&db, plan, &plan.partitions, properties)?;
                "created"
            }
            Some(existing) => {
                let registered = existing
                    .field(9)
                    .and_then(|p| map_get(p, SNAPSHOT_PROPERTY))
                    .and_then(Value::as_str);
                let Some(registered) = registered else {
                    return Err(CatalogError::Foreign {
                        database: db,
                        table: plan.name.clone(),
                    });
                };
                // Snapshot ids sort by time. Two preprocess runs that overlap
                // register in either order; the older must not win, or the
                // table would end up on files deleted after the grace period.
                if registered > properties.snapshot_id.as_str() {
                    tracing::warn!(table = %plan.name, registered, snapshot_id = %properties.snapshot_id, "the table already points at a newer snapshot: left as it is");
                    return Ok(RegisteredTable {
                        table: plan.name.clone(),
                        action: "kept_newer",
                        partitions: 0,
                    });
                }
                let create_time = match existing.field(4) {
                    Some(Value::I32(t)) => *t,
                    _ => now,
                };
                let keys: Vec<&str> = existing
                    .field(8)
                    .map(Value::items)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|f| f.field(1).and_then(Value::as_str))
                    .collect();
                if keys != plan.partition_keys {
                    // Hive cannot change a table's partition keys: the table
                    // goes and comes back (not atomic; only after a layout change).
                    tracing::warn!(table = %plan.name, ?keys, new = ?plan.partition_keys, "partition keys changed: dropping and creating the table");
                    self.call(
                        "drop_table",
                        vec![
                            (1, Value::str(&db)),
                            (2, Value::str(&plan.name)),
                            (3, Value::Bool(false)),
                        ],
                    )
                    .map_err(|e| self.fail(e))?;
                    self.call("create_table", vec![(1, table_value(create_time))])
                        .map_err(|e| self.fail(e))?;
                    self.add_partitions(&db, plan, &plan.partitions, properties)?;
                } else if plan.partition_keys.is_empty() {
                    // One call, one Metastore transaction: the switch itself.
                    self.alter_table(&db, plan, table_value(create_time))?;
                } else {
                    self.switch_partitions(&db, plan, properties)?;
                    // The table's properties name the new snapshot once all
                    // its partitions point at it.
                    self.alter_table(&db, plan, table_value(create_time))?;
                }
                "altered"
            }
        };
        tracing::info!(table = %format!("{db}.{}", plan.name), action, location = %plan.location, partitions = plan.partitions.len(), "registered");
        Ok(RegisteredTable {
            table: plan.name.clone(),
            action,
            partitions: plan.partitions.len(),
        })
    }

    fn alter_table(
        &mut self,
        db: &str,
        plan: &TablePlan,
        table: Value,
    ) -> Result<(), CatalogError> {
        self.call(
            "alter_table",
            vec![(1, Value::str(db)), (2, Value::str(&plan.name)), (3, table)],
        )
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn add_partitions(
        &mut self,
        db: &str,
        plan: &TablePlan,
        partitions: &BTreeMap<Vec<String>, String>,
        properties: &Properties,
    ) -> Result<(), CatalogError> {
        if partitions.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp() as i32;
        let parts = partitions
            .iter()
            .map(|(values, location)| partition(db, plan, values, location, properties, now))
            .collect();
        self.call("add_partitions", vec![(1, Value::structs(parts))])
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Repoints a partitioned table's partitions: gone months dropped, kept
    /// months altered in one call, new months added in one call.
    fn switch_partitions(
        &mut self,
        db: &str,
        plan: &TablePlan,
        properties: &Properties,
    ) -> Result<(), CatalogError> {
        let existing = self
            .call(
                "get_partitions",
                vec![
                    (1, Value::str(db)),
                    (2, Value::str(&plan.name)),
                    (3, Value::I16(-1)),
                ],
            )
            .map_err(|e| self.fail(e))?;
        let mut current: BTreeMap<Vec<String>, i32> = BTreeMap::new();
        for part in existing.as_ref().map(Value::items).unwrap_or_default() {
            let values: Vec<String> = part
                .field(1)
                .map(Value::items)
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            let created = match part.field(4) {
                Some(Value::I32(t)) => *t,
                _ => 0,
            };
            current.insert(values, created);
        }
        for values in current.keys().filter(|v| !plan.partitions.contains_key(*v)) {
            self.call(
                "drop_partition",
                vec![
                    (1, Value::str(db)),
                    (2, Value::str(&plan.name)),
                    (3, Value::strings(values.iter().map(String::as_str))),
                    // never the data: the files belong to the lake
                    (4, Value::Bool(false)),
                ],
            )
            .map_err(|e| self.fail(e))?;
        }
        let kept: Vec<Value> = plan
            .partitions
            .iter()
            .filter_map(|(values, location)| {
                current
                    .get(values)
                    .map(|created| partition(db, plan, values, location, properties, *created))
            })
            .collect();
        if !kept.is_empty() {
            self.call(
                "alter_partitions",
                vec![
                    (1, Value::str(db)),
                    (2, Value::str(&plan.name)),
                    (3, Value::structs(kept)),
                ],
            )
            .map_err(|e| self.fail(e))?;
        }
        let new: BTreeMap<Vec<String>, String> = plan
            .partitions
            .iter()
            .filter(|(values, _)| !current.contains_key(*values))
            .map(|(v, l)| (v.clone(), l.clone()))
            .collect();
        self.add_partitions(db, plan, &new, properties)
    }
}

fn map_get<'v>(map: &'v Value, key: &str) -> Option<&'v Value> {
    match map {
        Value::Map(_, _, entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn field_schemas<'a>(columns: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    Value::structs(
        columns
            .into_iter()
            .map(|(name, ty)| Value::Struct(vec![(1, Value::str(name)), (2, Value::str(ty))]))
            .collect(),
    )
}

fn storage_descriptor(plan: &TablePlan, location: &str) -> Value {
    Value::Struct(vec![
        (
            1,
            field_schemas(
                plan.columns
                    .iter()
                    .map(|c| (c.name.as_str(), c.hive_type.as_str())),
            ),
        ),
        (2, Value::str(location)),
        (3, Value::str(PARQUET_INPUT)),
        (4, Value::str(PARQUET_OUTPUT)),
        (5, Value::Bool(false)),
        (6, Value::I32(-1)),
        (
            7,
            Value::Struct(vec![
                (2, Value::str(PARQUET_SERDE)),
                (3, Value::string_map([("serialization.format", "1")])),
            ]),
        ),
        (8, Value::strings([])),
        (9, Value::structs(Vec::new())),
        (10, Value::string_map([])),
    ])
}

fn table_properties(plan: &TablePlan, properties: &Properties) -> Vec<(String, String)> {
    vec![
        ("EXTERNAL".to_owned(), "TRUE".to_owned()),
        // dropping the table in the catalog never deletes the lake's files
        ("external.table.purge".to_owned(), "false".to_owned()),
        (SNAPSHOT_PROPERTY.to_owned(), properties.snapshot_id.clone()),
        (
            "aurum.snapshot_created_at".to_owned(),
            properties.created_at.clone(),
        ),
        ("aurum.run_id".to_owned(), properties.run_id.clone()),
        ("aurum.lake".to_owned(), properties.lake.clone()),
        ("aurum.silver_table".to_owned(), plan.silver_table.clone()),
        ("aurum.kind".to_owned(), plan.kind.to_owned()),
        ("aurum.rows".to_owned(), plan.rows.to_string()),
        (
            "comment".to_owned(),
            format!(
                "Aurum silver {} of {}, snapshot {} (managed by aurum-job-runner: changes here are overwritten)",
                plan.kind, plan.silver_table, properties.snapshot_id
            ),
        ),
    ]
}

fn table(db: &str, plan: &TablePlan, properties: &Properties, create_time: i32) -> Value {
    let params = table_properties(plan, properties);
    Value::Struct(vec![
        (1, Value::str(&plan.name)),
        (2, Value::str(db)),
        (3, Value::str(OWNER)),
        (4, Value::I32(create_time)),
        (5, Value::I32(0)),
        (6, Value::I32(0)),
        (7, storage_descriptor(plan, &plan.location)),
        (
            8,
            field_schemas(plan.partition_keys.iter().map(|k| (k.as_str(), "int"))),
        ),
        (
            9,
            Value::string_map(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        ),
        (12, Value::str("EXTERNAL_TABLE")),
    ])
}

fn partition(
    db: &str,
    plan: &TablePlan,
    values: &[String],
    location: &str,
    properties: &Properties,
    create_time: i32,
) -> Value {
    Value::Struct(vec![
        (1, Value::strings(values.iter().map(String::as_str))),
        (2, Value::str(db)),
        (3, Value::str(&plan.name)),
        (4, Value::I32(create_time)),
        (5, Value::I32(0)),
        (6, storage_descriptor(plan, location)),
        (
            7,
            Value::string_map([(SNAPSHOT_PROPERTY, properties.snapshot_id.as_str())]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metastore_urls() {
        let m = Metastore::new("thrift://127.0.0.1:9083", "aurum").unwrap();
        assert_eq!(m.address, "127.0.0.1:9083");
        assert_eq!(
            Metastore::new("thrift://hms.data:9083/", "Silver_1")
                .unwrap()
                .database,
            "silver_1"
        );
        for bad in [
            "http://127.0.0.1:9083",
            "thrift://127.0.0.1",
            "thrift://:9083",
            "thrift://h:1/x",
            "127.0.0.1:9083",
        ] {
            assert!(Metastore::new(bad, "aurum").is_err(), "{bad}");
        }
        assert!(Metastore::new("thrift://h:1", "a-b").is_err());
    }

    #[test]
    fn hive_types_follow_the_parquet_schema() {
        assert_eq!(
            hive_type(&DataType::Decimal128(18, 2)).unwrap(),
            "decimal(18,2)"
        );
        assert_eq!(hive_type(&DataType::Date32).unwrap(), "date");
        assert_eq!(hive_type(&DataType::Int32).unwrap(), "int");
        assert_eq!(hive_type(&DataType::Utf8).unwrap(), "string");
        assert!(hive_type(&DataType::Null).is_none());
    }
}
