//! Gold datamarts served from in-memory snapshots.
//!
//! Gold tables change only when a job-runner run publishes them, and that run
//! appends a row to `gold_runs` in the same transaction. The API therefore keeps a
//! snapshot of each table in memory, reloads it when the latest successful run
//! changes, and answers filtering, ordering and pagination from memory.

pub mod params;
pub mod snapshot;
pub mod store;
pub mod tables;
