//! Aurum's batch engine: source CSVs into the lake's raw layer, raw into silver,
//! silver into the gold datamarts in PostgreSQL, exactly as docs/data-format.md says.
//!
//! The modules follow the data: [`generate`] makes source files, [`source_csv`]
//! reads them, [`feed`] writes the raw layer, [`silver`] applies the contract's
//! [`rules`] and publishes a [`snapshot`], [`datamart`] computes and checks the
//! gold tables with DataFusion, and [`warehouse`] publishes them to PostgreSQL.
//! [`resources`] sizes the run to its pod's cores and memory; [`dedup`] decides
//! `duplicate_row` within that memory.
//! [`storage`] is the one seam to the lake's file system; [`pipeline`] runs the
//! commands and fills the [`report`]; [`catalog`] registers a published
//! snapshot's tables in a Hive Metastore, when one is given. [`engine`] chooses
//! where the datamarts' queries run (in this process or on Ballista),
//! [`silver_plan`] is preprocess of transactions as plans on Ballista, and
//! [`ballista`] is the job-runner's own Ballista scheduler and executor.

pub mod ballista;
pub mod catalog;
pub mod datamart;
pub mod dedup;
pub mod engine;
pub mod feed;
pub mod generate;
pub mod pipeline;
pub mod report;
pub mod resources;
pub mod rules;
pub mod silver;
pub mod silver_plan;
pub mod snapshot;
pub mod source_csv;
pub mod storage;
pub mod tables;
pub mod warehouse;
