//! Stage `feed`: source CSVs into the raw layer (docs/data-format.md, "Raw layer").
//!
//! Each source file becomes one Parquet file per ingest date,
//! `raw/<table>/ingest_date=YYYY-MM-DD/data.parquet`, written under `_staging/`
//! and published by an atomic rename, so re-ingesting a date replaces the
//! partition whole. Malformed lines go to `raw/_rejects/<table>/...` with why.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayBuilder, ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::report::{Progress, StageReport};
use crate::source_csv::{Header, HeaderError, LineSplitter, Malformed, is_blank, parse_record};
use crate::storage::{Storage, StorageError};
use crate::tables::{LINE_COLUMN, SOURCE_FILE_COLUMN, Table};

/// The reject reason of a line that is not a CSV record.
pub const MALFORMED_RECORD: &str = "malformed_record";

/// Rows per Arrow batch handed to the Parquet writer.
const BATCH_ROWS: usize = 64 * 1024;

/// Why feeding failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Reading the source or writing the lake failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// None of the four source files exists.
    #[error(
        "no source files in {0}: expected countries.csv, customers.csv, products.csv and/or transactions.csv"
    )]
    NoSourceFiles(String),
    /// A source file has no header line.
    #[error("{0}: the file is empty (no header line)")]
    NoHeader(String),
    /// A source file's header lacks a contract column.
    #[error("{file}: {source}")]
    Header {
        /// The source file.
        file: String,
        /// What is wrong with its header.
        #[source]
        source: HeaderError,
    },
    /// The Parquet writer task died.
    #[error("writing the raw partition of {0} stopped unexpectedly")]
    WriterGone(Table),
}

/// The lake path of a raw partition.
pub fn raw_partition_path(table: Table, ingest_date: NaiveDate) -> String {
    format!("raw/{table}/ingest_date={ingest_date}/data.parquet")
}

/// Feeds every source file found in `source` into the raw layer for `ingest_date`.
pub async fn feed(
    source: &Storage,
    lake: &Storage,
    ingest_date: NaiveDate,
    run_id: &str,
) -> Result<Vec<StageReport>, FeedError> {
    let mut present = Vec::new();
    for table in Table::ALL {
        let file = source.path(table.file_name());
        match source.size(&file).await? {
            Some(_) => present.push(table),
            None => {
                tracing::warn!(table = %table, source = source.display(), "no {} in the source folder; skipped", table.file_name())
            }
        }
    }
    if present.is_empty() {
        return Err(FeedError::NoSourceFiles(source.display().to_owned()));
    }
    // The tables are independent: feed them together, so the small ones'
    // round trips to the lake (slow on HDFS) hide behind the big one. All of
    // them end before an error is returned: no write is left running while
    // the process reports it and exits.
    let feeding = present
        .into_iter()
        .map(|table| feed_table(source, lake, table, ingest_date, run_id));
    let reports = futures::future::join_all(feeding)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    lake.delete_prefix(&format!("_staging/{run_id}")).await?;
    Ok(reports)
}

async fn feed_table(
    source: &Storage,
    lake: &Storage,
    table: Table,
    ingest_date: NaiveDate,
    run_id: &str,
) -> Result<StageReport, FeedError> {
    let file_name = table.file_name();
    let file = source.path(file_name);
    let file_url = source.object_url(&file);
    let mut report = StageReport::new("feed", table.name());
    let mut progress = Progress::new("feed", table.name());

    let staging = lake.path(&format!("_staging/{run_id}/raw/{table}/data.parquet"));
    let mut writer = lake.parquet_writer(&staging, table.raw_schema())?;
    let (batches, mut received) = mpsc::channel::<RecordBatch>(2);
    // Parsing runs here, Parquet encoding in its own task: two cores, two jobs.
    let write_task = tokio::spawn(async move {
        while let Some(batch) = received.recv().await {
            writer.write(&batch).await?;
        }
        writer.close().await
    });

    let mut reader = RecordReader::new(table, file_name, file_url.clone());
    let read = async {
        let mut splitter = LineSplitter::default();
        let mut stream = source.read_stream(&file).await?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            report.bytes_read += chunk.len() as u64;
            splitter.push(&chunk, |line| reader.line(line))?;
            if reader.rows.len() >= BATCH_ROWS {
                batches
                    .send(reader.rows.finish())
                    .await
                    .map_err(|_| FeedError::WriterGone(table))?;
            }
            progress.update(reader.records);
        }
        splitter.finish(|line| reader.line(line))?;
        if reader.header.is_none() {
            return Err(FeedError::NoHeader(file_url.clone()));
        }
        if reader.rows.len() > 0 {
            batches
                .send(reader.rows.finish())
                .await
                .map_err(|_| FeedError::WriterGone(table))?;
        }
        Ok(())
    };
    let read = read.await;
    drop(batches);
    // The writer always ends before this returns; when it failed first, its
    // error is the cause (the reader only saw it go).
    let written = write_task.await.map_err(|_| FeedError::WriterGone(table))?;
    report.bytes_written = match (read, written) {
        (Err(FeedError::WriterGone(_)), Err(cause)) => return Err(cause.into()),
        (Err(e), _) => return Err(e),
        (Ok(()), written) => written?,
    };

    report.rows_read = reader.records;
    report.rows_written = reader.records - reader.rejects.len() as u64;
    for _ in 0..reader.rejects.len() {
        report.reject(MALFORMED_RECORD);
    }

    // Rejects first, then the data: the data's rename is the moment the new
    // partition becomes visible.
    let rejects_path = lake.path(&format!(
        "raw/_rejects/{table}/ingest_date={ingest_date}/data.parquet"
    ));
    if reader.rejects.len() > 0 {
        let staged = lake.path(&format!(
            "_staging/{run_id}/raw/_rejects/{table}/data.parquet"
        ));
        let mut rejects_writer = lake.parquet_writer(&staged, malformed_schema())?;
        rejects_writer.write(&reader.rejects.finish()).await?;
        report.bytes_written += rejects_writer.close().await?;
        lake.publish(&staged, &rejects_path).await?;
    } else {
        lake.delete(&rejects_path).await?;
    }
    lake.publish(
        &staging,
        &lake.path(&raw_partition_path(table, ingest_date)),
    )
    .await?;
    report.finish(progress.elapsed(), progress.cpu());
    Ok(report)
}

/// Turns physical lines into raw rows and malformed-record rejects.
struct RecordReader {
    table: Table,
    file_name: &'static str,
    file_url: String,
    header: Option<Header>,
    /// Records seen so far (the `_line` of the last one).
    records: u64,
    rows: RawRows,
    rejects: MalformedRows,
}

impl RecordReader {
    fn new(table: Table, file_name: &'static str, file_url: String) -> RecordReader {
        RecordReader {
            table,
            file_name,
            file_url,
            header: None,
            records: 0,
            rows: RawRows::new(table),
            rejects: MalformedRows::default(),
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<(), FeedError> {
        if is_blank(line) {
            return Ok(());
        }
        let Some(header) = &self.header else {
            let text = String::from_utf8_lossy(line);
            let header = Header::parse(&text, self.table).map_err(|source| FeedError::Header {
                file: self.file_url.clone(),
                source,
            })?;
            self.header = Some(header);
            return Ok(());
        };
        self.records += 1;
        let parsed = std::str::from_utf8(line)
            .map_err(|_| Malformed::NotUtf8)
            .and_then(|text| {
                let record = parse_record(text)?;
                header.check_width(record.len())?;
                Ok(record)
            });
        match parsed {
            Ok(record) => self
                .rows
                .push(header.select(&record), self.file_name, self.records),
            Err(why) => self.rejects.push(
                self.file_name,
                self.records,
                &String::from_utf8_lossy(line),
                &why,
            ),
        }
        Ok(())
    }
}

/// Raw rows being gathered into an Arrow batch.
struct RawRows {
    schema: SchemaRef,
    columns: Vec<StringBuilder>,
    source_file: StringBuilder,
    line: Int64Builder,
}

impl RawRows {
    fn new(table: Table) -> RawRows {
        RawRows {
            schema: table.raw_schema(),
            columns: table
                .columns()
                .iter()
                .map(|_| StringBuilder::new())
                .collect(),
            source_file: StringBuilder::new(),
            line: Int64Builder::new(),
        }
    }

    fn len(&self) -> usize {
        self.line.len()
    }

    fn push<'a>(&mut self, values: impl Iterator<Item = Option<&'a str>>, file: &str, line: u64) {
        for (builder, value) in self.columns.iter_mut().zip(values) {
            builder.append_option(value);
        }
        self.source_file.append_value(file);
        self.line.append_value(line as i64);
    }

    fn finish(&mut self) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        arrays.push(Arc::new(self.source_file.finish()));
        arrays.push(Arc::new(self.line.finish()));
        // The arrays match the schema by construction.
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .expect("raw batch matches its schema")
    }
}

/// The schema of raw rejects: the line as read, and why it is not a record.
pub fn malformed_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(SOURCE_FILE_COLUMN, DataType::Utf8, false),
        Field::new(LINE_COLUMN, DataType::Int64, false),
        Field::new("record", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
    ]))
}

#[derive(Default)]
struct MalformedRows {
    source_file: StringBuilder,
    line: Int64Builder,
    record: StringBuilder,
    detail: StringBuilder,
}

impl MalformedRows {
    fn len(&self) -> usize {
        self.line.len()
    }

    fn push(&mut self, file: &str, line: u64, record: &str, why: &Malformed) {
        self.source_file.append_value(file);
        self.line.append_value(line as i64);
        self.record.append_value(record);
        self.detail.append_value(why.to_string());
    }

    fn finish(&mut self) -> RecordBatch {
        let rows = self.len();
        let mut reason = StringBuilder::with_capacity(rows, rows * MALFORMED_RECORD.len());
        for _ in 0..rows {
            reason.append_value(MALFORMED_RECORD);
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(self.source_file.finish()),
            Arc::new(self.line.finish()),
            Arc::new(self.record.finish()),
            Arc::new(reason.finish()),
            Arc::new(self.detail.finish()),
        ];
        RecordBatch::try_new(malformed_schema(), arrays).expect("reject batch matches its schema")
    }
}
