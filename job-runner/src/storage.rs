//! Where the lake (and the source files) live: one small seam over object_store.
//!
//! Every stage reads and writes through [`Storage`], so a new kind of lake (HDFS)
//! only has to provide an `ObjectStore` with an atomic `rename`.
//!
//! Two kinds of location: a local folder (a path or `file:///` URL) and HDFS
//! (`hdfs://namenode:port/path`, or `hdfs://nameservice/path` with the name
//! service defined in `$HADOOP_CONF_DIR`). On HDFS, object_store's `rename` is
//! the NameNode's `rename2` with overwrite, atomic like a local rename; its
//! writes go to a hidden `.<name>.tmp.<n>` beside the target, renamed on
//! completion, which [`Storage::list`] never shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion::execution::context::SessionContext;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use url::Url;

use datafusion::arrow::datatypes::SchemaRef;

/// A storage failure, naming the location.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The URI is not a path, `file://` URL or supported scheme.
    #[error("unsupported location {uri}: {reason}")]
    Unsupported {
        /// The URI as given.
        uri: String,
        /// Why it is refused.
        reason: String,
    },
    /// An object store operation failed.
    #[error("{operation} {location}: {}", describe(source))]
    ObjectStore {
        /// What was being done.
        operation: &'static str,
        /// The object or prefix.
        location: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// Writing Parquet failed.
    #[error("writing {location}: {}", describe(source))]
    Parquet {
        /// The file being written.
        location: String,
        /// The writer's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A local directory could not be created or resolved.
    #[error("{path}: {source}")]
    Io {
        /// The local path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A folder in an object store: the lake root, or the folder of source CSVs.
#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The store's base URL as DataFusion knows it (`file:///`).
    store_url: Url,
    /// The folder inside the store.
    root: Path,
    /// The location as the user gave it, for messages.
    display: String,
    /// The HDFS client behind `store`, for what object_store cannot do
    /// (deleting a directory tree); `None` for a local folder.
    hdfs: Option<hdfs_native::Client>,
    /// Whether stale staging files were already cleaned up by this process.
    cleaned: Arc<AtomicBool>,
}

/// Staging files and hidden write-in-progress files older than this belong to
/// a run that died: the next feed or preprocess deletes them.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

impl Storage {
    /// Opens a location: a plain path or a `file://` URL. A local folder is
    /// created when `create` is set.
    pub fn open(uri: &str, create: bool) -> Result<Storage, StorageError> {
        let unsupported = |reason: &str| StorageError::Unsupported {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let local_path = if let Some(rest) = uri.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(unsupported(
                    "a file:// URL needs an absolute path (file:///...)",
                ));
            }
            std::path::PathBuf::from(rest)
        } else if uri.starts_with("hdfs://") || uri.starts_with("viewfs://") {
            return Storage::open_hdfs(uri);
        } else if uri.contains("://") {
            return Err(unsupported(
                "use a local path, a file:/// URL or an hdfs:// URL",
            ));
        } else {
            std::path::PathBuf::from(uri)
        };
        let io = |source| StorageError::Io {
            path: local_path.display().to_string(),
            source,
        };
        if create {
            std::fs::create_dir_all(&local_path).map_err(io)?;
        }
        let absolute = std::fs::canonicalize(&local_path).map_err(io)?;
        let root = Path::from_absolute_path(&absolute).map_err(|e| StorageError::ObjectStore {
            operation: "resolving",
            location: absolute.display().to_string(),
            source: e.into(),
        })?;
        let store_url = Url::parse("file:///").map_err(|e| unsupported(&e.to_string()))?;
        Ok(Storage {
            store: Arc::new(LocalFileSystem::new().with_automatic_cleanup(true)),
            store_url,
            root,
            display: format!("file://{}", absolute.display()),
            hdfs: None,
            cleaned: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Opens `hdfs://authority/path` (or `viewfs://`): the authority is a
    /// NameNode `host:port` or a name service from `$HADOOP_CONF_DIR`, which
    /// hdfs-native reads itself. Nothing is contacted yet: the first operation
    /// reports an unreachable NameNode with the path it wanted.
    fn open_hdfs(uri: &str) -> Result<Storage, StorageError> {
        let unsupported = |reason: String| StorageError::Unsupported {
            uri: uri.to_owned(),
            reason,
        };
        let url = Url::parse(uri).map_err(|e| unsupported(format!("not a valid URL: {e}")))?;
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(unsupported(format!(
                "an {}:// URL needs a NameNode host:port or a name service, e.g. {}://namenode:8020/aurum/lake",
                url.scheme(),
                url.scheme()
            )));
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(unsupported(
                "an HDFS URL takes no query or fragment".to_owned(),
            ));
        }
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let base = format!("{}://{authority}", url.scheme());
        let client = hdfs_native::ClientBuilder::new()
            .with_url(&base)
            .build()
            .map_err(|e| {
                unsupported(format!(
                    "cannot set up the HDFS client: {} (check HADOOP_CONF_DIR{})",
                    first_line(&e.to_string()),
                    std::env::var("HADOOP_CONF_DIR")
                        .map(|d| format!("={d}"))
                        .unwrap_or_default()
                ))
            })?;
        let root =
            Path::from_url_path(url.path()).map_err(|e| unsupported(format!("bad path: {e}")))?;
        let store_url = Url::parse(&format!("{base}/")).map_err(|e| unsupported(e.to_string()))?;
        let display = if root.as_ref().is_empty() {
            base.clone()
        } else {
            format!("{base}/{root}")
        };
        Ok(Storage {
            store: Arc::new(hdfs_native_object_store::HdfsObjectStore::new(
                client.clone(),
            )),
            store_url,
            root,
            display,
            hdfs: Some(client),
            cleaned: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The location as a URL, for reports and messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The path of `relative` (slash-separated) under this folder.
    pub fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .filter(|part| !part.is_empty())
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    /// A path relative to this folder, for manifests and messages.
    pub fn relative(&self, path: &Path) -> String {
        path.prefix_match(&self.root)
            .map(|parts| {
                parts
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_else(|| path.to_string())
    }

    /// The URL DataFusion reads an object by.
    pub fn object_url(&self, path: &Path) -> String {
        format!("{}{}", self.store_url, path)
    }

    /// Makes this store known to a DataFusion session.
    pub fn register(&self, ctx: &SessionContext) {
        ctx.register_object_store(&self.store_url, Arc::clone(&self.store));
    }

    /// The underlying object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn error(
        &self,
        operation: &'static str,
        path: &Path,
        source: object_store::Error,
    ) -> StorageError {
        StorageError::ObjectStore {
            operation,
            location: self.object_url(path),
            source,
        }
    }

    /// Every object under a relative prefix (recursively), sorted by path,
    /// except hidden ones (a name starting with `.` below the root): those are
    /// writes in progress (HDFS's `.<name>.tmp.<n>`) or not the lake's.
    pub async fn list(&self, relative: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let mut objects = self.list_all(relative).await?;
        objects.retain(|object| !self.is_hidden(&object.location));
        Ok(objects)
    }

    /// Whether a path has a component starting with `.` below the root.
    fn is_hidden(&self, path: &Path) -> bool {
        match path.prefix_match(&self.root) {
            Some(mut parts) => parts.any(|p| p.as_ref().starts_with('.')),
            None => path.parts().any(|p| p.as_ref().starts_with('.')),
        }
    }

    /// Every object under a relative prefix, hidden ones included.
    async fn list_all(&self, relative: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let prefix = self.path(relative);
        let mut objects: Vec<ObjectMeta> = match self.store.list(Some(&prefix)).try_collect().await
        {
            Ok(objects) => objects,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(self.error("listing", &prefix, e)),
        };
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// The size of an object, or `None` when it does not exist.
    pub async fn size(&self, path: &Path) -> Result<Option<u64>, StorageError> {
        match self.store.head(path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error("reading", path, e)),
        }
    }

    /// Reads a whole (small) object, or `None` when it does not exist.
    pub async fn read_all(&self, path: &Path) -> Result<Option<bytes::Bytes>, StorageError> {
        match self.store.get(path).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|e| self.error("reading", path, e)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error("reading", path, e)),
        }
    }

    /// Streams an object's bytes.
    pub async fn read_stream(
        &self,
        path: &Path,
    ) -> Result<impl futures::Stream<Item = Result<bytes::Bytes, StorageError>> + use<>, StorageError>
    {
        let result = self
            .store
            .get(path)
            .await
            .map_err(|e| self.error("reading", path, e))?;
        let location = self.object_url(path);
        Ok(result
            .into_stream()
            .map_err(move |source| StorageError::ObjectStore {
                operation: "reading",
                location: location.clone(),
                source,
            }))
    }

    /// Writes a small object in one piece.
    pub async fn write_all(&self, path: &Path, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.store
            .put(path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.error("writing", path, e))
    }

    /// Starts a Parquet file at `path`.
    pub fn parquet_writer(
        &self,
        path: &Path,
        schema: SchemaRef,
    ) -> Result<ParquetFileWriter, StorageError> {
        self.parquet_writer_without_dictionary(path, schema, &[])
    }

    /// Starts a Parquet file at `path` whose columns `plain` are written
    /// without a dictionary: for columns of nearly unique values, where a
    /// dictionary saves little and its encoder holds every value of the row
    /// group in memory until the group is written.
    pub fn parquet_writer_without_dictionary(
        &self,
        path: &Path,
        schema: SchemaRef,
        plain: &[&str],
    ) -> Result<ParquetFileWriter, StorageError> {
        let props = plain
            .iter()
            .fold(
                WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(128 * 1024)),
                |builder, &column| {
                    builder.set_column_dictionary_enabled(ColumnPath::from(column), false)
                },
            )
            .build();
        let object = BufWriter::new(Arc::clone(&self.store), path.clone());
        let writer = AsyncArrowWriter::try_new(object, schema, Some(props)).map_err(|source| {
            StorageError::Parquet {
                location: self.object_url(path),
                source,
            }
        })?;
        Ok(ParquetFileWriter {
            writer,
            location: self.object_url(path),
            rows: 0,
        })
    }

    /// Moves `from` to `to`, replacing `to` atomically: readers see the old
    /// object or the new one, never a partial one.
    pub async fn publish(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        self.store
            .rename(from, to)
            .await
            .map_err(|e| self.error("publishing", to, e))
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), StorageError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("deleting", path, e)),
        }
    }

    /// Deletes everything under a relative prefix (on HDFS: the directory
    /// tree, in one NameNode call).
    pub async fn delete_prefix(&self, relative: &str) -> Result<(), StorageError> {
        let prefix = self.path(relative);
        if let Some(client) = &self.hdfs {
            if prefix.as_ref().is_empty() || prefix == self.root {
                return Err(StorageError::Unsupported {
                    uri: self.object_url(&prefix),
                    reason: "refusing to delete the lake's root".to_owned(),
                });
            }
            return match client.delete(&format!("/{prefix}"), true).await {
                Ok(_) | Err(hdfs_native::HdfsError::FileNotFound(_)) => Ok(()),
                Err(e) => Err(self.error(
                    "deleting",
                    &prefix,
                    object_store::Error::Generic {
                        store: "HDFS",
                        source: Box::new(e),
                    },
                )),
            };
        }
        for object in self.list_all(relative).await? {
            self.delete(&object.location).await?;
        }
        Ok(())
    }

    /// Deletes what runs that died left behind, once per process: their
    /// `_staging/<run>/` folders, and hidden write-in-progress files under
    /// `raw/` and `silver/`, when untouched for [`STALE_AFTER`]. Files of a run
    /// that is still writing are younger and stay.
    pub async fn clean_stale(&self) -> Result<(), StorageError> {
        if self.cleaned.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.clean_stale_older_than(STALE_AFTER).await
    }

    /// [`Storage::clean_stale`] with another age limit.
    pub async fn clean_stale_older_than(&self, max_age: Duration) -> Result<(), StorageError> {
        let cutoff = chrono::Duration::from_std(max_age)
            .ok()
            .and_then(|age| chrono::Utc::now().checked_sub_signed(age))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        // The newest file of each run's staging folder decides for the whole folder.
        let mut runs: std::collections::BTreeMap<String, chrono::DateTime<chrono::Utc>> =
            std::collections::BTreeMap::new();
        for object in self.list_all("_staging").await? {
            let relative = self.relative(&object.location);
            let Some(run) = relative
                .strip_prefix("_staging/")
                .and_then(|r| r.split('/').next())
            else {
                continue;
            };
            let newest = runs.entry(run.to_owned()).or_insert(object.last_modified);
            *newest = (*newest).max(object.last_modified);
        }
        for (run, newest) in runs {
            if newest < cutoff {
                tracing::info!(staging = %self.object_url(&self.path(&format!("_staging/{run}"))), "deleting the staging files of a run that died");
                self.delete_prefix(&format!("_staging/{run}")).await?;
            }
        }
        if let Some(client) = &self.hdfs {
            // Empty run folders (their files already gone) are stale too.
            let staging = self.path("_staging");
            let listing: Vec<hdfs_native::client::FileStatus> = match client
                .list_status_iter(&format!("/{staging}"), false)
                .into_stream()
                .try_collect()
                .await
            {
                Ok(listing) => listing,
                Err(hdfs_native::HdfsError::FileNotFound(_)) => Vec::new(),
                Err(e) => {
                    return Err(self.error(
                        "listing",
                        &staging,
                        object_store::Error::Generic {
                            store: "HDFS",
                            source: Box::new(e),
                        },
                    ));
                }
            };
            for status in listing {
                let modified =
                    chrono::DateTime::from_timestamp_millis(status.modification_time as i64);
                let name = status
                    .path
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if status.isdir && modified.is_some_and(|m| m < cutoff) && !name.is_empty() {
                    let empty = self.list_all(&format!("_staging/{name}")).await?.is_empty();
                    if empty {
                        self.delete_prefix(&format!("_staging/{name}")).await?;
                    }
                }
            }
        }
        for layer in ["raw", "silver"] {
            for object in self.list_all(layer).await? {
                if self.is_hidden(&object.location) && object.last_modified < cutoff {
                    tracing::info!(file = %self.object_url(&object.location), "deleting an unfinished write of a run that died");
                    self.delete(&object.location).await?;
                }
            }
        }
        Ok(())
    }
}

/// Whether an error says the object does not exist: object_store's `NotFound`,
/// or on HDFS the NameNode's `FileNotFoundException` (a file deleted between
/// the store's existence check and its opening).
fn is_not_found(error: &object_store::Error) -> bool {
    match error {
        object_store::Error::NotFound { .. } => true,
        object_store::Error::Generic { source, .. } => matches!(
            source.downcast_ref::<hdfs_native::HdfsError>(),
            Some(hdfs_native::HdfsError::RPCError(class, _)) if class.ends_with("FileNotFoundException")
        ),
        _ => false,
    }
}

/// The first line of a message: Hadoop errors carry the Java stack trace after it.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default().trim_end()
}

/// A store error in one line, with the HDFS cause named when there is one:
/// an unreachable NameNode, a denied permission, a missing path.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(hdfs) = e.downcast_ref::<hdfs_native::HdfsError>() {
            return describe_hdfs(hdfs);
        }
        current = e.source();
    }
    first_line(&error.to_string()).to_owned()
}

fn describe_hdfs(error: &hdfs_native::HdfsError) -> String {
    use hdfs_native::HdfsError;
    use std::io::ErrorKind;
    match error {
        HdfsError::IOError(io) => match io.kind() {
            ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::TimedOut
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::AddrNotAvailable
            | ErrorKind::NotFound => format!(
                "HDFS unreachable ({}): is the NameNode running, and are the URL's host and port (or the name service in HADOOP_CONF_DIR) right?",
                first_line(&io.to_string())
            ),
            _ if io.to_string().contains("lookup address") => format!(
                "HDFS unreachable ({}): is the URL's host (or the name service in HADOOP_CONF_DIR) right?",
                first_line(&io.to_string())
            ),
            _ => format!("HDFS I/O error: {}", first_line(&io.to_string())),
        },
        HdfsError::RPCError(class, message) | HdfsError::FatalRPCError(class, message) => {
            let class_name = class.rsplit('.').next().unwrap_or(class);
            let message = first_line(message);
            match class_name {
                "AccessControlException" => format!("permission denied on HDFS: {message}"),
                "FileNotFoundException" => format!("path missing on HDFS: {message}"),
                "SafeModeException" => format!("the NameNode is in safe mode: {message}"),
                "StandbyException" => format!(
                    "the NameNode is standby (check the name service in HADOOP_CONF_DIR): {message}"
                ),
                _ => format!("HDFS error {class_name}: {message}"),
            }
        }
        HdfsError::FileNotFound(path) => format!("path missing on HDFS: {path}"),
        other => format!("HDFS error: {}", first_line(&other.to_string())),
    }
}

/// Removes Java stack-trace lines (`\tat ...`, `Caused by: ...` and the rest of
/// the trace) from a message, so that an error prints as its first lines only.
pub fn without_stack_traces(message: &str) -> String {
    let mut kept = Vec::new();
    for line in message.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("at ") && line.starts_with(char::is_whitespace)
            || trimmed.starts_with("Caused by:")
            || trimmed.starts_with("... ") && trimmed.ends_with(" more")
        {
            continue;
        }
        kept.push(line.trim_end());
    }
    kept.join(" ")
}

/// A Parquet file being written; finish it with [`ParquetFileWriter::close`].
pub struct ParquetFileWriter {
    writer: AsyncArrowWriter<BufWriter>,
    location: String,
    rows: u64,
}

impl ParquetFileWriter {
    /// Appends a batch.
    pub async fn write(
        &mut self,
        batch: &datafusion::arrow::record_batch::RecordBatch,
    ) -> Result<(), StorageError> {
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .await
            .map_err(|source| StorageError::Parquet {
                location: self.location.clone(),
                source,
            })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes and completes the file; returns the bytes written.
    pub async fn close(mut self) -> Result<u64, StorageError> {
        self.writer
            .flush()
            .await
            .map_err(|source| StorageError::Parquet {
                location: self.location.clone(),
                source,
            })?;
        let bytes = self.writer.bytes_written() as u64;
        self.writer
            .close()
            .await
            .map_err(|source| StorageError::Parquet {
                location: self.location.clone(),
                source,
            })?;
        Ok(bytes)
    }
}
