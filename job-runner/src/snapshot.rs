//! Silver snapshots: which files make up the silver layer of one run.
//!
//! A preprocess run writes its files under `silver/` with its snapshot id in
//! their names, each table's (or month's) in a `snapshot=<id>/` directory of
//! its own (so that a Hive Metastore table can point at exactly one snapshot:
//! see [`crate::catalog`]), invisible until `silver/_snapshot.json` names them. Replacing
//! that one file (an atomic rename) publishes all silver tables together, so a
//! reader never mixes two runs.
//!
//! A datamart run reads the files of the snapshot that was current when it
//! started, for as long as it runs (minutes on a large lake), so a publish must
//! not delete them under it. The rule: a snapshot's files are deleted only once
//! the snapshot is at least two publishes old (neither current nor the one just
//! replaced) AND was replaced longer than the grace period ago
//! (`--snapshot-grace-secs`, by default an hour, the operator's default run
//! deadline: no run that read it can still be running). The manifest lists the
//! snapshots it still keeps under `retained`, with when each was replaced. Files
//! under `silver/` that no manifest names (a run died before publishing, or
//! another run is still writing) are deleted once older than the grace period.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::storage::{Storage, StorageError};

/// The manifest's path in the lake.
pub const MANIFEST: &str = "silver/_snapshot.json";

/// How many times a manifest read is tried before its error is reported.
const MANIFEST_READ_ATTEMPTS: u32 = 4;

/// The pause after a failed manifest read, times the attempt number.
const MANIFEST_RETRY_DELAY: Duration = Duration::from_millis(100);

/// How long the files of a replaced snapshot are kept by default: the operator's
/// default run deadline, so a datamart run that read it has ended (or been stopped).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

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
    /// Earlier snapshots whose files are still kept, newest first (set by
    /// [`Snapshot::publish`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<Retained>,
}

/// An earlier snapshot whose files are kept for the runs that may still read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    /// Its snapshot id.
    pub snapshot_id: String,
    /// When the next snapshot replaced it (RFC 3339).
    pub replaced_at: String,
    /// Its files, relative to the lake root.
    pub files: Vec<String>,
}

impl Snapshot {
    /// The current snapshot of a lake, if any.
    ///
    /// A read that fails, or returns bytes that do not parse, is tried again a
    /// few times: on HDFS a publish renaming a new manifest over the old one
    /// can cut off a read of the old one, and the next read sees the new one
    /// whole. A manifest that is still unreadable after that is an error.
    pub async fn current(lake: &Storage) -> Result<Option<Snapshot>, SnapshotError> {
        let mut attempt = 1;
        loop {
            match Snapshot::read_manifest(lake).await {
                Err(error) if attempt < MANIFEST_READ_ATTEMPTS => {
                    tracing::warn!(attempt, %error, "reading the silver manifest again");
                    tokio::time::sleep(MANIFEST_RETRY_DELAY * attempt).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn read_manifest(lake: &Storage) -> Result<Option<Snapshot>, SnapshotError> {
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

    /// Makes this snapshot the current one, atomically, then deletes the files
    /// no run can still be reading: those of snapshots at least two publishes
    /// old replaced more than `grace` ago, and files under `silver/` that no
    /// snapshot names, once older than `grace` (see the module documentation).
    pub async fn publish(&mut self, lake: &Storage, grace: Duration) -> Result<(), SnapshotError> {
        let now = Utc::now();
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let cutoff = now
            .checked_sub_signed(grace)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        // The snapshot being replaced is kept whatever its age: a run may have
        // read its manifest an instant ago.
        let previous = match Snapshot::current(lake).await {
            Ok(previous) => previous,
            Err(SnapshotError::Corrupt { path, source }) => {
                tracing::warn!(%path, error = %source, "replacing an unreadable snapshot manifest");
                None
            }
            Err(e) => return Err(e),
        };
        self.retained.clear();
        if let Some(previous) = previous.filter(|p| p.snapshot_id != self.snapshot_id) {
            self.retained.push(Retained {
                snapshot_id: previous.snapshot_id.clone(),
                replaced_at: crate::report::timestamp(now),
                files: previous
                    .all_files()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            });
            // Older ones stay until their grace period is over.
            self.retained
                .extend(previous.retained.into_iter().filter(|r| {
                    DateTime::parse_from_rfc3339(&r.replaced_at)
                        .map_or(true, |replaced| replaced.with_timezone(&Utc) > cutoff)
                }));
        }
        let json = serde_json::to_vec_pretty(self).map_err(|source| SnapshotError::Corrupt {
            path: MANIFEST.to_owned(),
            source,
        })?;
        let staged = lake.path(&format!("_staging/{}/_snapshot.json", self.snapshot_id));
        lake.write_all(&staged, json).await?;
        lake.publish(&staged, &lake.path(MANIFEST)).await?;
        let mut keep = self.all_files();
        keep.extend(
            self.retained
                .iter()
                .flat_map(|r| r.files.iter().map(String::as_str)),
        );
        for object in lake.list("silver").await? {
            let relative = lake.relative(&object.location);
            if relative != MANIFEST
                && !keep.contains(relative.as_str())
                && object.last_modified <= cutoff
            {
                lake.delete(&object.location).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(id: &str) -> Snapshot {
        Snapshot {
            snapshot_id: id.to_owned(),
            created_at: "2026-01-01T00:00:00Z".to_owned(),
            tables: BTreeMap::new(),
            rejects: BTreeMap::new(),
            retained: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_manifest_cut_off_by_a_publish_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Storage::open(dir.path().to_str().unwrap(), true).unwrap();
        let manifest = lake.path(MANIFEST);
        // What a reader gets when the rename cuts its read short.
        lake.write_all(&manifest, br#"{"snapshot_id": "ol"#.to_vec())
            .await
            .unwrap();
        let whole = serde_json::to_vec(&snapshot("new")).unwrap();
        let writer = {
            let lake = Storage::open(dir.path().to_str().unwrap(), false).unwrap();
            tokio::spawn(async move {
                tokio::time::sleep(MANIFEST_RETRY_DELAY / 2).await;
                lake.write_all(&lake.path(MANIFEST), whole).await.unwrap();
            })
        };
        let read = Snapshot::current(&lake).await.unwrap();
        writer.await.unwrap();
        assert_eq!(read.unwrap().snapshot_id, "new");
    }

    #[tokio::test]
    async fn a_manifest_that_stays_corrupt_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Storage::open(dir.path().to_str().unwrap(), true).unwrap();
        lake.write_all(&lake.path(MANIFEST), b"not json".to_vec())
            .await
            .unwrap();
        let error = Snapshot::current(&lake).await.unwrap_err();
        assert!(
            error.to_string().contains("not a silver snapshot manifest"),
            "{error}"
        );
    }
}
