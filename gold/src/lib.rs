//! Aurum's gold contract in one place, shared by the job-runner (writes the gold
//! tables), the API (reads and serves them), the dashboard (shows them) and the
//! operator (connects to the same database).
//!
//! - [`tables`]: the datamarts, their PostgreSQL tables, columns and rows.
//! - [`money`]: exact money, its text, JSON and PostgreSQL encodings.
//! - [`role`]: what a user may do.
//! - [`ident`]: PostgreSQL identifiers in SQL text.
//! - [`bearer`]: bearer tokens in `Authorization` values.
//! - `postgres` (feature `postgres`): connections honouring `sslmode`, with rustls.
//!
//! Features keep each user's dependencies small: `serde` (JSON), `openapi`
//! (schemas for the API's documentation), `clap` (datamarts on a command line),
//! `postgres` (money's binary `numeric` encoding, connections with TLS).

pub mod bearer;
pub mod ident;
pub mod money;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod role;
pub mod tables;

pub use money::Money;
pub use role::Role;
pub use tables::Datamart;
