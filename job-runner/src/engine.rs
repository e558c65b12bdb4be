//! Where the datamarts' and the transactions' preprocess DataFusion plans
//! run: in this process (the default), or
//! on an Apache Ballista cluster (`--engine ballista://HOST:PORT`, docs/ballista.md).
//!
//! A remote session plans here and sends the logical plan to the scheduler,
//! which plans the stages and hands their tasks to the executors; the results
//! come back to this process as record batches, exactly as a local `collect`.
//! Every process of the cluster resolves the lake's URLs (`hdfs://`, `file://`)
//! through [`LakeObjectStores`], so the scheduler can list the files and the
//! executors can read them.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::datasource::ViewTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStore;
use url::Url;

use crate::storage::Storage;

/// Why `--engine` is not usable.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The value is neither `in-process` nor `ballista://HOST:PORT`.
    #[error("--engine {given:?}: {reason} (use in-process or ballista://HOST:PORT)")]
    BadEngine {
        /// What was given.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where a stage's plans run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineChoice {
    /// DataFusion in this process (the default).
    InProcess,
    /// A Ballista scheduler at `host:port`.
    Ballista {
        /// The scheduler's host name or address.
        host: String,
        /// The scheduler's gRPC port.
        port: u16,
        /// Partitions of every distributed query's stages (`--engine-partitions`);
        /// `None`: the run's own partitions (`--threads`).
        partitions: Option<usize>,
    },
}

impl FromStr for EngineChoice {
    type Err = EngineError;

    fn from_str(text: &str) -> Result<EngineChoice, EngineError> {
        let bad = |reason: &str| EngineError::BadEngine {
            given: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() || text == "in-process" {
            return Ok(EngineChoice::InProcess);
        }
        let Some(rest) = text.strip_prefix("ballista://") else {
            return Err(bad("unknown engine"));
        };
        let (host, port) = split_host_port(rest.trim_end_matches('/')).map_err(|r| bad(&r))?;
        Ok(EngineChoice::Ballista {
            host,
            port,
            partitions: None,
        })
    }
}

impl std::fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineChoice::InProcess => f.write_str("in-process"),
            EngineChoice::Ballista { host, port, .. } => write!(f, "ballista://{host}:{port}"),
        }
    }
}

/// Splits `HOST:PORT` (the port is required: a default would hide a
/// misconfigured Service).
pub fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?} is not HOST:PORT"));
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!("{text:?} is not HOST:PORT"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{port:?} is not a port"))?;
    Ok((host.to_owned(), port))
}

/// The object stores of the lake, for every process that plans or runs a
/// stage: `file://` as DataFusion has it, and an HDFS client per NameNode (or
/// name service) made the first time a URL names it, exactly as the job-runner
/// opens its lake ([`Storage::open`], `HADOOP_CONF_DIR` included).
#[derive(Debug, Default)]
pub struct LakeObjectStores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for LakeObjectStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        if !matches!(url.scheme(), "hdfs" | "viewfs") {
            return self.known.get_store(url);
        }
        let authority = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        let base = format!("{}://{authority}/", url.scheme());
        let storage =
            Storage::open(&base, false).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let store = Arc::clone(storage.store());
        // Two tasks racing to the same NameNode each make a client; the one
        // registered last is kept for the next ones. Both work.
        self.known.register_store(url, Arc::clone(&store));
        Ok(store)
    }
}

/// A session whose plans run on the Ballista scheduler at `host:port`, with
/// `config` (partitions, Parquet settings) sent along with every job.
pub fn ballista_session(
    config: SessionConfig,
    host: &str,
    port: u16,
) -> datafusion::error::Result<SessionContext> {
    use ballista_core::extension::SessionStateExt;
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(LakeObjectStores::default()))
        .build_arc()?;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .build()
        .upgrade_for_ballista(format!("http://{host}:{port}"))?;
    Ok(SessionContext::new_with_state(state))
}

/// Registers one silver table for a Ballista session: exactly the snapshot's
/// files (`urls`), as a Parquet listing table that the scheduler's planner
/// and Ballista's plan codec know (the in-process engine's own snapshot table
/// cannot be sent to the scheduler), or an empty relation when the snapshot
/// has no file for it.
pub fn register_snapshot_table(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    urls: &[String],
) -> datafusion::error::Result<()> {
    if urls.is_empty() {
        // A view is inlined into the plan before it is sent: the scheduler
        // sees an empty relation with the table's schema.
        let empty = LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(DFSchema::try_from(Arc::clone(&schema))?),
        });
        ctx.register_table(name, Arc::new(ViewTable::new(empty, None)))?;
        return Ok(());
    }
    let paths = urls
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
    let config = ListingTableConfig::new_with_multi_paths(paths)
        .with_listing_options(options)
        .with_schema(schema);
    ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_values() {
        assert_eq!(
            "in-process".parse::<EngineChoice>().ok(),
            Some(EngineChoice::InProcess)
        );
        assert_eq!(
            "".parse::<EngineChoice>().ok(),
            Some(EngineChoice::InProcess)
        );
        assert_eq!(
            "ballista://sched.aurum:50050".parse::<EngineChoice>().ok(),
            Some(EngineChoice::Ballista {
                host: "sched.aurum".into(),
                port: 50050,
                partitions: None,
            })
        );
        assert_eq!(
            "ballista://127.0.0.1:1/"
                .parse::<EngineChoice>()
                .map(|e| e.to_string())
                .ok(),
            Some("ballista://127.0.0.1:1".to_owned())
        );
        for bad in [
            "spark://h:1",
            "ballista://h",
            "ballista://:50050",
            "ballista://h:0",
            "ballista://h:x",
            "ballista://h:1/x",
        ] {
            assert!(bad.parse::<EngineChoice>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hdfs_stores_are_made_on_demand_and_kept() {
        let stores = LakeObjectStores::default();
        let url = Url::parse("hdfs://127.0.0.1:9/lake/x.parquet").unwrap();
        let first = stores.get_store(&url).unwrap();
        let again = stores.get_store(&url).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(
            stores
                .get_store(&Url::parse("file:///tmp/x").unwrap())
                .is_ok()
        );
        assert!(stores.get_store(&Url::parse("s3://b/x").unwrap()).is_err());
    }
}
