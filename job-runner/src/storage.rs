//! Where the lake (and the source files) live: one small seam over object_store.
//!
//! Every stage reads and writes through [`Storage`], so a new kind of lake (HDFS)
//! only has to provide an `ObjectStore` with an atomic `rename`.

use std::sync::Arc;

use datafusion::execution::context::SessionContext;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::buffered::BufWriter;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
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
    #[error("{operation} {location}: {source}")]
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
    #[error("writing {location}: {source}")]
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
}

impl Storage {
    /// Opens a location: a plain path or a `file://` URL. A local folder is
    /// created when `create` is set.
    pub fn open(uri: &str, create: bool) -> Result<Storage, StorageError> {
        let unsupported = |reason: &str| StorageError::Unsupported { uri: uri.to_owned(), reason: reason.to_owned() };
        let local_path = if let Some(rest) = uri.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(unsupported("a file:// URL needs an absolute path (file:///...)"));
            }
            std::path::PathBuf::from(rest)
        } else if uri.starts_with("hdfs://") || uri.starts_with("viewfs://") {
            return Err(unsupported("HDFS lakes are not supported by this build"));
        } else if uri.contains("://") {
            return Err(unsupported("use a local path, a file:/// URL or an hdfs:// URL"));
        } else {
            std::path::PathBuf::from(uri)
        };
        let io = |source| StorageError::Io { path: local_path.display().to_string(), source };
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
    pub fn relative<'a>(&self, path: &'a Path) -> String {
        path.prefix_match(&self.root)
            .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>().join("/"))
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

    fn error(&self, operation: &'static str, path: &Path, source: object_store::Error) -> StorageError {
        StorageError::ObjectStore { operation, location: self.object_url(path), source }
    }

    /// Every object under a relative prefix (recursively), sorted by path.
    pub async fn list(&self, relative: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let prefix = self.path(relative);
        let mut objects: Vec<ObjectMeta> = match self.store.list(Some(&prefix)).try_collect().await {
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
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("reading", path, e)),
        }
    }

    /// Reads a whole (small) object, or `None` when it does not exist.
    pub async fn read_all(&self, path: &Path) -> Result<Option<bytes::Bytes>, StorageError> {
        match self.store.get(path).await {
            Ok(result) => result.bytes().await.map(Some).map_err(|e| self.error("reading", path, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("reading", path, e)),
        }
    }

    /// Streams an object's bytes.
    pub async fn read_stream(
        &self,
        path: &Path,
    ) -> Result<impl futures::Stream<Item = Result<bytes::Bytes, StorageError>> + use<>, StorageError> {
        let result = self.store.get(path).await.map_err(|e| self.error("reading", path, e))?;
        let location = self.object_url(path);
        Ok(result.into_stream().map_err(move |source| StorageError::ObjectStore {
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
    pub fn parquet_writer(&self, path: &Path, schema: SchemaRef) -> Result<ParquetFileWriter, StorageError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(128 * 1024))
            .build();
        let object = BufWriter::new(Arc::clone(&self.store), path.clone());
        let writer = AsyncArrowWriter::try_new(object, schema, Some(props)).map_err(|source| StorageError::Parquet {
            location: self.object_url(path),
            source,
        })?;
        Ok(ParquetFileWriter { writer, location: self.object_url(path), rows: 0 })
    }

    /// Moves `from` to `to`, replacing `to` atomically: readers see the old
    /// object or the new one, never a partial one.
    pub async fn publish(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        self.store.rename(from, to).await.map_err(|e| self.error("publishing", to, e))
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, path: &Path) -> Result<(), StorageError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("deleting", path, e)),
        }
    }

    /// Deletes everything under a relative prefix.
    pub async fn delete_prefix(&self, relative: &str) -> Result<(), StorageError> {
        for object in self.list(relative).await? {
            self.delete(&object.location).await?;
        }
        Ok(())
    }
}

/// A Parquet file being written; finish it with [`ParquetFileWriter::close`].
pub struct ParquetFileWriter {
    writer: AsyncArrowWriter<BufWriter>,
    location: String,
    rows: u64,
}

impl ParquetFileWriter {
    /// Appends a batch.
    pub async fn write(&mut self, batch: &datafusion::arrow::record_batch::RecordBatch) -> Result<(), StorageError> {
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch).await.map_err(|source| StorageError::Parquet {
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
        self.writer.flush().await.map_err(|source| StorageError::Parquet {
            location: self.location.clone(),
            source,
        })?;
        let bytes = self.writer.bytes_written() as u64;
        self.writer.close().await.map_err(|source| StorageError::Parquet {
            location: self.location.clone(),
            source,
        })?;
        Ok(bytes)
    }
}
