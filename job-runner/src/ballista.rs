//! Aurum's own Apache Ballista scheduler and executor (`aurum-job-runner
//! ballista-scheduler` / `ballista-executor`), built on the Ballista crates
//! with the lake's object stores ([`LakeObjectStores`]) registered, so that
//! the scheduler can list and the executors can read `hdfs://` and `file://`
//! lakes. docs/ballista.md says how they are deployed and sized.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::RuntimeProducer;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::SessionBuilder;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionConfig;

use crate::engine::LakeObjectStores;

/// Why a scheduler or executor stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum BallistaError {
    /// An address or option that cannot be used.
    #[error("{0}")]
    Configuration(String),
    /// Ballista itself failed (binding a port, reaching the scheduler, ...).
    #[error("{what}: {source}")]
    Ballista {
        /// What was being done.
        what: &'static str,
        /// Ballista's error.
        #[source]
        source: ballista_core::error::BallistaError,
    },
    /// The work directory could not be created.
    #[error("work directory {dir}: {source}")]
    WorkDir {
        /// The directory.
        dir: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The scheduler's settings.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// The address the gRPC service listens on.
    pub bind_host: String,
    /// Its port.
    pub port: u16,
    /// The host executors reach the scheduler by: the scheduler sends it
    /// with every task, and the executor reports the task's result there.
    pub external_host: String,
    /// An executor silent for this long is taken as lost: its tasks run
    /// again elsewhere.
    pub executor_timeout_secs: u64,
}

/// The executor's settings.
#[derive(Clone, Debug)]
pub struct ExecutorOptions {
    /// The scheduler's host.
    pub scheduler_host: String,
    /// The scheduler's port.
    pub scheduler_port: u16,
    /// The address both services listen on.
    pub bind_host: String,
    /// The host name or address the scheduler and the other executors reach
    /// this one by (the pod IP on Kubernetes); by default, the address the
    /// scheduler sees the registration come from.
    pub external_host: Option<String>,
    /// Arrow Flight port: shuffle partitions and results are fetched from it.
    pub flight_port: u16,
    /// gRPC port: the scheduler pushes tasks to it.
    pub grpc_port: u16,
    /// Tasks run at once (the executor's slots).
    pub concurrent_tasks: usize,
    /// Where shuffle files are written.
    pub work_dir: PathBuf,
    /// How often the executor tells the scheduler it is alive.
    pub heartbeat_secs: u64,
    /// DataFusion's memory pool of the executor (split between its slots);
    /// `None`: Ballista's default, 70% of the cgroup or host memory.
    pub memory_pool_bytes: Option<u64>,
}

/// How long a session's shuffle files are kept on an executor when the
/// scheduler did not ask for their removal (a job whose client died).
const JOB_DATA_TTL_SECS: u64 = 6 * 3600;

/// The scheduler's and executors' sessions read the lake through the same
/// object stores the job-runner uses.
fn runtime_producer(stores: Arc<LakeObjectStores>, work_dir: Option<PathBuf>) -> RuntimeProducer {
    Arc::new(move |_config: &SessionConfig| {
        let mut builder =
            RuntimeEnvBuilder::new().with_object_store_registry(Arc::clone(&stores) as Arc<_>);
        if let Some(dir) = &work_dir {
            builder = builder.with_temp_file_path(dir.clone());
        }
        builder.build_arc()
    })
}

/// The scheduler decodes the plans it is sent with its sessions' functions:
/// DataFusion's and Aurum's own ([`crate::silver_plan::udfs`]).
fn scheduler_session_builder(stores: Arc<LakeObjectStores>) -> SessionBuilder {
    let runtime = runtime_producer(stores, None);
    Arc::new(move |config: SessionConfig| {
        let state = default_session_builder(config)?;
        let runtime = runtime(state.config())?;
        let mut functions = state
            .scalar_functions()
            .values()
            .cloned()
            .collect::<Vec<_>>();
        functions.extend(crate::silver_plan::udfs());
        Ok(SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(runtime)
            .with_scalar_functions(functions)
            .build())
    })
}

/// The executors run tasks with DataFusion's functions and Aurum's own.
fn executor_functions() -> Arc<BallistaFunctionRegistry> {
    let mut registry = BallistaFunctionRegistry::default();
    for udf in crate::silver_plan::udfs() {
        registry.scalar_functions.insert(udf.name().to_owned(), udf);
    }
    Arc::new(registry)
}

/// Resolves `host:port` to the one address to bind (a name such as
/// `localhost` or `0.0.0.0` included).
fn bind_address(host: &str, port: u16) -> Result<SocketAddr, BallistaError> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| BallistaError::Configuration(format!("cannot bind {host}:{port}")))
}

/// Runs a scheduler until SIGTERM or Ctrl-C.
pub async fn run_scheduler(options: SchedulerOptions) -> Result<(), BallistaError> {
    let address = bind_address(&options.bind_host, options.port)?;
    let stores = Arc::new(LakeObjectStores::default());
    let config = SchedulerConfig {
        bind_host: options.bind_host.clone(),
        bind_port: options.port,
        external_host: options.external_host.clone(),
        executor_timeout_seconds: options.executor_timeout_secs,
        // Ballista's grace for a cluster with no executor left follows the
        // timeout (see SchedulerConfig::validate).
        no_executors_grace_period_seconds: options.executor_timeout_secs,
        override_session_builder: Some(scheduler_session_builder(stores)),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|source| BallistaError::Ballista {
            what: "setting up the scheduler's state",
            source,
        })?;
    tracing::info!(%address, executor_timeout_secs = options.executor_timeout_secs, "ballista scheduler starting");
    tokio::select! {
        served = start_server(cluster, address, Arc::new(config)) => {
            served.map_err(|source| BallistaError::Ballista { what: "serving the scheduler", source })
        }
        () = shutdown_signal() => {
            tracing::info!("ballista scheduler stopping");
            Ok(())
        }
    }
}

/// Runs an executor until SIGTERM or Ctrl-C (Ballista's executor catches
/// both: it tells the scheduler it is leaving, lets running tasks end, then
/// returns).
pub async fn run_executor(options: ExecutorOptions) -> Result<(), BallistaError> {
    bind_address(&options.bind_host, options.flight_port)?;
    if options.concurrent_tasks == 0 {
        return Err(BallistaError::Configuration(
            "--concurrent-tasks must be at least 1".to_owned(),
        ));
    }
    std::fs::create_dir_all(&options.work_dir).map_err(|source| BallistaError::WorkDir {
        dir: options.work_dir.display().to_string(),
        source,
    })?;
    let work_dir = options
        .work_dir
        .to_str()
        .ok_or_else(|| {
            BallistaError::Configuration(format!(
                "work directory {}: not UTF-8",
                options.work_dir.display()
            ))
        })?
        .to_owned();
    let stores = Arc::new(LakeObjectStores::default());
    let config = ExecutorProcessConfig {
        bind_host: options.bind_host.clone(),
        external_host: options.external_host.clone(),
        port: options.flight_port,
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler_host.clone(),
        scheduler_port: options.scheduler_port,
        // Keep trying while the scheduler starts (its pod may come up later).
        scheduler_connect_timeout_seconds: 60,
        vcores: options.concurrent_tasks,
        work_dir: Some(work_dir),
        executor_heartbeat_interval_seconds: options.heartbeat_secs,
        // Shuffle files of jobs whose removal never came are deleted after
        // a while, and all of them when the executor stops.
        job_data_ttl_seconds: JOB_DATA_TTL_SECS,
        job_data_clean_up_interval_seconds: 600,
        memory_pool_size: options.memory_pool_bytes,
        override_runtime_producer: Some(runtime_producer(stores, Some(options.work_dir.clone()))),
        override_function_registry: Some(executor_functions()),
        ..ExecutorProcessConfig::default()
    };
    tracing::info!(
        scheduler = %format!("{}:{}", options.scheduler_host, options.scheduler_port),
        flight_port = options.flight_port,
        grpc_port = options.grpc_port,
        concurrent_tasks = options.concurrent_tasks,
        work_dir = %options.work_dir.display(),
        "ballista executor starting"
    );
    start_executor_process(Arc::new(config))
        .await
        .map_err(|source| BallistaError::Ballista {
            what: "running the executor",
            source,
        })
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
