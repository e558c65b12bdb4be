//! Fixtures shared by the integration tests of `aurum-api` and `aurum-dashboard`:
//! a PostgreSQL database per test process, gold tables loaded into it by the real
//! `aurum-job-runner`, and child processes (the API, the dashboard) that are stopped
//! when a test ends.
//!
//! A dev-dependency only: nothing in the product links it. The environment it reads
//! is the one `testenv/test.sh` provides:
//! - `DATABASE_URL`: a PostgreSQL with the right to create databases
//!   (`eval "$(testenv/postgres.sh start DIR)"`);
//! - `AURUM_JOB_RUNNER_BIN`: the job-runner binary that loads the gold tables.
//!
//! Outside CI a test may skip when a variable is missing ([`environment::required`]);
//! under `CI=true` it fails instead.

pub mod environment;
pub mod gold;
pub mod http;
pub mod postgres;
pub mod process;
pub mod tls;
