//! Silver snapshots: which files make up the silver layer of one run.
//!
//! A preprocess run writes its files under `silver/` with its snapshot id in
//! their names, invisible until `silver/_snapshot.json` names them. Replacing
//! that one file (an atomic rename) publishes all silver tables together, so a
//! reader never mixes two runs; the previous snapshot's files are deleted after.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::storage::{Storage, StorageError};

/// The manifest's path in the lake.
pub const MANIFEST: &str = "silver/_snapshot.json";

/// Why a snapshot could not be read or published.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The lake could not be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The manifest is not valid JSON of the expected shape.
    #[error("{path}: not a silver snapshot manifest: {source}")]
    Corrupt {
        /// The manifest's URL.
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// No preprocess run has published silver yet.
    #[error(
        "the lake {0} has no silver snapshot yet: run `aurum-job-runner preprocess` (or `run`) first"
    )]
    Missing(String),
}

/// The files and row count of one silver table (or of its rejects).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFiles {
    /// Paths relative to the lake root.
    pub files: Vec<String>,
    /// Rows over all files.
    pub rows: u64,
}

/// One published silver layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The snapshot id (the preprocess run's id).
    pub snapshot_id: String,
    /// When it was published (RFC 3339).
    pub created_at: String,
    /// Silver tables by name.
    pub tables: BTreeMap<String, TableFiles>,
    /// Silver rejects by table name.
    pub rejects: BTreeMap<String, TableFiles>,
}

impl Snapshot {
    /// The current snapshot of a lake, if any.
    pub async fn current(lake: &Storage) -> Result<Option<Snapshot>, SnapshotError> {
        let path = lake.path(MANIFEST);
        let Some(bytes) = lake.read_all(&path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| SnapshotError::Corrupt {
                path: lake.object_url(&path),
                source,
            })
    }

    /// The current snapshot, or an error telling the user to build one.
    pub async fn require(lake: &Storage) -> Result<Snapshot, SnapshotError> {
        Snapshot::current(lake)
            .await?
            .ok_or_else(|| SnapshotError::Missing(lake.display().to_owned()))
    }

    /// The files of a silver table.
    pub fn table(&self, name: &str) -> &[String] {
        self.tables
            .get(name)
            .map(|t| t.files.as_slice())
            .unwrap_or_default()
    }

    fn all_files(&self) -> BTreeSet<&str> {
        self.tables
            .values()
            .chain(self.rejects.values())
            .flat_map(|t| t.files.iter().map(String::as_str))
            .collect()
    }

    /// Makes this snapshot the current one, atomically, then deletes every file
    /// under `silver/` that it does not name (the previous snapshot's, and any
    /// left by a run that died before publishing).
    pub async fn publish(&self, lake: &Storage) -> Result<(), SnapshotError> {
        let json = serde_json::to_vec_pretty(self).map_err(|source| SnapshotError::Corrupt {
            path: MANIFEST.to_owned(),
            source,
        })?;
        let staged = lake.path(&format!("_staging/{}/_snapshot.json", self.snapshot_id));
        lake.write_all(&staged, json).await?;
        lake.publish(&staged, &lake.path(MANIFEST)).await?;
        let keep = self.all_files();
        for object in lake.list("silver").await? {
            let relative = lake.relative(&object.location);
            if relative != MANIFEST && !keep.contains(relative.as_str()) {
                lake.delete(&object.location).await?;
            }
        }
        Ok(())
    }
}
