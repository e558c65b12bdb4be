//! `aurum-job-runner`: the batch CLI the operator's Jobs run.

use std::path::PathBuf;
use std::process::ExitCode;

use aurum_job_runner::ballista::{self, ExecutorOptions, SchedulerOptions};
use aurum_job_runner::catalog::{self, Metastore};
use aurum_job_runner::datamart::Datamart;
use aurum_job_runner::engine::EngineChoice;
use aurum_job_runner::pipeline::{PipelineError, Run};
use aurum_job_runner::report::RunStatus;
use aurum_job_runner::resources::{self, CgroupLimits, Engine, Resources};
use aurum_job_runner::snapshot::Snapshot;
use aurum_job_runner::storage::Storage;
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Aurum's batch engine: source CSVs -> raw -> silver -> gold in PostgreSQL.
#[derive(Parser)]
#[command(name = "aurum-job-runner", version, about)]
struct Cli {
    /// Also write the JSON run report, on one line, to this file.
    #[arg(long, env = "AURUM_REPORT", global = true)]
    report: Option<PathBuf>,
    /// Worker threads and query partitions (default: the cgroup's CPU quota,
    /// else the machine's cores).
    #[arg(long, env = "AURUM_THREADS", global = true)]
    threads: Option<usize>,
    /// The memory the run stays under: bytes, or 512MiB, 1GiB, ... (default:
    /// 70% of the cgroup's memory limit; none without one). Sorts spill to
    /// --spill-dir to stay under it; a run that cannot fails, publishing nothing.
    #[arg(long, env = "AURUM_MEMORY_LIMIT", global = true)]
    memory_limit: Option<String>,
    /// Where sorts spill under the memory limit (default: the temp dir, TMPDIR or /tmp).
    #[arg(long, env = "AURUM_SPILL_DIR", global = true)]
    spill_dir: Option<PathBuf>,
    /// Where the queries run: in-process, or ballista://HOST:PORT for a
    /// Ballista scheduler (docs/ballista.md): then the datamarts and the
    /// preprocess of transactions run on its executors (the small keyed
    /// tables stay in this process).
    #[arg(long, env = "AURUM_ENGINE", global = true, default_value = "in-process", value_parser = engine_choice)]
    engine: EngineChoice,
    /// With --engine ballista://...: the partitions of each distributed query
    /// stage, i.e. how many tasks can run at once; set it to the executors'
    /// total slots or more (default: --threads).
    #[arg(long, env = "AURUM_ENGINE_PARTITIONS", global = true, value_parser = clap::value_parser!(u64).range(1..))]
    engine_partitions: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write realistic, deterministic source CSVs (with some dirt) into a folder.
    Generate {
        /// The folder to write countries.csv, customers.csv, products.csv and transactions.csv into.
        #[arg(long, env = "AURUM_OUT")]
        out: PathBuf,
        /// How many transaction lines to write.
        #[arg(long, env = "AURUM_TRANSACTIONS")]
        transactions: u64,
        /// Random seed: the same seed and size give the same files.
        #[arg(long, env = "AURUM_SEED", default_value_t = 42)]
        seed: u64,
    },
    /// Ingest the source CSVs into the lake's raw layer.
    Feed {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        lake: LakeArgs,
    },
    /// Rebuild silver from all raw partitions and publish a new snapshot.
    Preprocess {
        #[command(flatten)]
        lake: LakeArgs,
        #[command(flatten)]
        publish: PublishArgs,
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// Build one gold datamart from the current silver snapshot into PostgreSQL.
    Datamart {
        /// Which datamart.
        #[arg(value_enum)]
        name: Datamart,
        #[command(flatten)]
        lake: LakeArgs,
        #[command(flatten)]
        gold: GoldArgs,
    },
    /// feed, preprocess and all four datamarts.
    Run {
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        lake: LakeArgs,
        #[command(flatten)]
        publish: PublishArgs,
        #[command(flatten)]
        catalog: CatalogArgs,
        #[command(flatten)]
        gold: GoldArgs,
    },
    /// Serve a Ballista scheduler for --engine ballista://HOST:PORT (until SIGTERM).
    BallistaScheduler(SchedulerArgs),
    /// Serve a Ballista executor with the lake's object stores (until SIGTERM).
    BallistaExecutor(ExecutorArgs),
}

fn engine_choice(text: &str) -> Result<EngineChoice, String> {
    text.parse()
        .map_err(|e: aurum_job_runner::engine::EngineError| e.to_string())
}

fn host_port(text: &str) -> Result<(String, u16), String> {
    aurum_job_runner::engine::split_host_port(text)
}

#[derive(Args)]
struct SchedulerArgs {
    /// The address to listen on.
    #[arg(long, env = "AURUM_BALLISTA_BIND_HOST", default_value = "0.0.0.0")]
    bind_host: String,
    /// The gRPC port clients and executors connect to.
    #[arg(long, env = "AURUM_BALLISTA_PORT", default_value_t = 50050)]
    port: u16,
    /// The host name or address executors report task results to, with
    /// --port: on Kubernetes the scheduler Service's name or the pod IP.
    #[arg(
        long,
        env = "AURUM_BALLISTA_EXTERNAL_HOST",
        default_value = "localhost"
    )]
    external_host: String,
    /// Seconds without a heartbeat after which an executor is lost and its
    /// tasks run again elsewhere (more than the executors' --heartbeat-secs).
    #[arg(
        long,
        env = "AURUM_BALLISTA_EXECUTOR_TIMEOUT_SECS",
        default_value_t = 60
    )]
    executor_timeout_secs: u64,
}

#[derive(Args)]
struct ExecutorArgs {
    /// The scheduler, HOST:PORT.
    #[arg(long, env = "AURUM_BALLISTA_SCHEDULER", value_parser = host_port)]
    scheduler: (String, u16),
    /// The address to listen on.
    #[arg(long, env = "AURUM_BALLISTA_BIND_HOST", default_value = "0.0.0.0")]
    bind_host: String,
    /// The host or address others reach this executor by (the pod IP on
    /// Kubernetes; default: the address the scheduler sees it connect from).
    #[arg(long, env = "AURUM_BALLISTA_EXTERNAL_HOST")]
    external_host: Option<String>,
    /// Arrow Flight port (shuffle and result fetches).
    #[arg(long, env = "AURUM_BALLISTA_FLIGHT_PORT", default_value_t = 50051)]
    flight_port: u16,
    /// gRPC port (the scheduler pushes tasks to it).
    #[arg(long, env = "AURUM_BALLISTA_GRPC_PORT", default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (default: --threads, i.e. the cgroup's CPU quota or the cores).
    #[arg(long, env = "AURUM_BALLISTA_CONCURRENT_TASKS")]
    concurrent_tasks: Option<usize>,
    /// Where shuffle files go (default: a folder per executor in the temp dir).
    #[arg(long, env = "AURUM_BALLISTA_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, env = "AURUM_BALLISTA_HEARTBEAT_SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_secs: u64,
}

#[derive(Args)]
struct SourceArgs {
    /// The folder holding the source CSVs (a path or file:/// URL).
    #[arg(long, env = "AURUM_SOURCE")]
    source: String,
    /// The ingest date of the raw partitions written (default: today, UTC).
    #[arg(long, env = "AURUM_INGEST_DATE")]
    ingest_date: Option<NaiveDate>,
}

#[derive(Args)]
struct LakeArgs {
    /// The lake's root (a path or file:/// URL).
    #[arg(long, env = "AURUM_LAKE")]
    lake: String,
}

#[derive(Args)]
struct PublishArgs {
    /// How long the files of a replaced silver snapshot are kept, in seconds, for
    /// datamart runs still reading it (they are also kept until the snapshot is
    /// two publishes old). At least the longest datamart run: the default is the
    /// operator's default run deadline.
    #[arg(long, env = "AURUM_SNAPSHOT_GRACE_SECS", default_value_t = aurum_job_runner::snapshot::DEFAULT_GRACE.as_secs())]
    snapshot_grace_secs: u64,
}

impl PublishArgs {
    fn grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.snapshot_grace_secs)
    }
}

#[derive(Args)]
struct CatalogArgs {
    /// A Hive Metastore (thrift://HOST:PORT) to register the published silver
    /// tables and rejects in, as external Parquet tables (docs/catalog.md).
    /// A registration that fails is reported (`catalog.status: failed` in the
    /// run report); the run still succeeds, its silver snapshot published.
    #[arg(long, env = "AURUM_METASTORE", value_parser = metastore_url)]
    metastore: Option<String>,
    /// The Metastore database of the silver tables (created when missing).
    #[arg(long, env = "AURUM_METASTORE_DATABASE", default_value = catalog::DEFAULT_DATABASE, value_parser = metastore_database)]
    metastore_database: String,
}

impl CatalogArgs {
    fn metastore(&self) -> Option<Metastore> {
        // Both were checked when the arguments were parsed.
        self.metastore
            .as_deref()
            .and_then(|url| Metastore::new(url, &self.metastore_database).ok())
    }
}

fn metastore_url(url: &str) -> Result<String, String> {
    Metastore::new(url, catalog::DEFAULT_DATABASE)
        .map(|_| url.to_owned())
        .map_err(|e| e.to_string())
}

fn metastore_database(database: &str) -> Result<String, String> {
    Metastore::new("thrift://localhost:9083", database)
        .map(|_| database.to_owned())
        .map_err(|_| format!("{database:?}: letters, digits and _ only"))
}

/// Registers a published snapshot when a Metastore is given; never fails the run.
async fn register(run: &mut Run, lake: &Storage, snapshot: &Snapshot, catalog: &CatalogArgs) {
    if let Some(metastore) = catalog.metastore() {
        let report = catalog::register_and_report(lake, snapshot, run.id(), &metastore).await;
        run.report.catalog = Some(report);
    }
}

#[derive(Args)]
struct GoldArgs {
    /// PostgreSQL URL of the gold database (postgres://user:password@host:port/db).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Schema of the gold tables.
    #[arg(long, env = "AURUM_DB_SCHEMA", default_value = "public")]
    db_schema: String,
    /// Database role that may read the gold tables and `gold_runs` (the API's
    /// own role): granted USAGE on the schema and SELECT on those tables at
    /// every publish, nothing else.
    #[arg(long, env = "AURUM_READER_ROLE")]
    reader_role: Option<String>,
    /// How many products `top-products` keeps per scope.
    #[arg(long, env = "AURUM_TOP_N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    top_n: u32,
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("AURUM_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn execute(run: &mut Run, command: Command) -> Result<(), PipelineError> {
    match command {
        Command::Generate {
            out,
            transactions,
            seed,
        } => run.generate(&out, transactions, seed),
        Command::Feed { source, lake } => {
            let lake = Storage::open(&lake.lake, true)?;
            run.feed(&source.source, &lake, source.ingest_date).await
        }
        Command::Preprocess {
            lake,
            publish,
            catalog,
        } => {
            let lake = Storage::open(&lake.lake, true)?;
            let snapshot = run.preprocess(&lake, publish.grace()).await?;
            register(run, &lake, &snapshot, &catalog).await;
            Ok(())
        }
        Command::Datamart { name, lake, gold } => {
            let lake = Storage::open(&lake.lake, false)?;
            run.datamarts(
                &lake,
                &gold.database_url,
                &gold.db_schema,
                gold.reader_role.as_deref(),
                &[name],
                gold.top_n,
            )
            .await
        }
        Command::Run {
            source,
            lake,
            publish,
            catalog,
            gold,
        } => {
            let lake = Storage::open(&lake.lake, true)?;
            run.feed(&source.source, &lake, source.ingest_date).await?;
            let snapshot = run.preprocess(&lake, publish.grace()).await?;
            register(run, &lake, &snapshot, &catalog).await;
            run.datamarts(
                &lake,
                &gold.database_url,
                &gold.db_schema,
                gold.reader_role.as_deref(),
                &Datamart::ALL,
                gold.top_n,
            )
            .await
        }
        // Served by run_command before a run starts.
        Command::BallistaScheduler(_) | Command::BallistaExecutor(_) => Ok(()),
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Generate { .. } => "generate",
        Command::Feed { .. } => "feed",
        Command::Preprocess { .. } => "preprocess",
        Command::Datamart { .. } => "datamart",
        Command::Run { .. } => "run",
        Command::BallistaScheduler(_) => "ballista-scheduler",
        Command::BallistaExecutor(_) => "ballista-executor",
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let engine = Resources::resolve(
        cli.threads,
        cli.memory_limit.as_deref(),
        cli.spill_dir.clone(),
        CgroupLimits::of_this_process(),
    )
    .and_then(|resources| resources.engine());
    let engine = match engine {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("hint: check the command's arguments and environment (see --help)");
            return ExitCode::from(2);
        }
    };
    resources::bound_allocator(engine.resources.threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(engine.resources.threads)
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run_command(cli, engine)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// The exit of a scheduler or executor: they serve until stopped, with no run report.
fn served(outcome: Result<(), ballista::BallistaError>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ ballista::BallistaError::Configuration(_)) => {
            eprintln!("error: {e}");
            eprintln!("hint: check the command's arguments and environment (see --help)");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run_command(cli: Cli, mut engine: Engine) -> ExitCode {
    let command = match cli.command {
        Command::BallistaScheduler(args) => {
            return served(
                ballista::run_scheduler(SchedulerOptions {
                    bind_host: args.bind_host,
                    port: args.port,
                    external_host: args.external_host,
                    executor_timeout_secs: args.executor_timeout_secs,
                })
                .await,
            );
        }
        Command::BallistaExecutor(args) => {
            let (scheduler_host, scheduler_port) = args.scheduler;
            let work_dir = args.work_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("aurum-ballista-executor-{}", std::process::id()))
            });
            return served(
                ballista::run_executor(ExecutorOptions {
                    scheduler_host,
                    scheduler_port,
                    bind_host: args.bind_host,
                    external_host: args.external_host,
                    flight_port: args.flight_port,
                    grpc_port: args.grpc_port,
                    concurrent_tasks: args.concurrent_tasks.unwrap_or(engine.resources.threads),
                    work_dir,
                    heartbeat_secs: args.heartbeat_secs,
                    memory_pool_bytes: engine.resources.pool_bytes().map(|b| b as u64),
                })
                .await,
            );
        }
        batch => batch,
    };
    engine.choice = match cli.engine.clone() {
        EngineChoice::Ballista { host, port, .. } => EngineChoice::Ballista {
            host,
            port,
            partitions: cli.engine_partitions.map(|p| p as usize),
        },
        EngineChoice::InProcess => EngineChoice::InProcess,
    };
    let resources = &engine.resources;
    tracing::info!(
        threads = resources.threads,
        threads_from = ?resources.threads_origin,
        memory_limit = resources.memory_limit.map(resources::human_size),
        memory_limit_from = ?resources.memory_origin,
        spill_dir = %resources.spill_dir.display(),
        engine = %engine.choice,
        "resources"
    );
    let mut run = Run::start(command_name(&command), engine);
    tracing::info!(command = %run.report.command, run_id = %run.id(), "starting");
    let outcome = execute(&mut run, command).await;
    let configuration_error = outcome
        .as_ref()
        .err()
        .is_some_and(PipelineError::is_configuration);
    let report = run.finish(&outcome);

    match serde_json::to_string_pretty(&report) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("error: cannot serialise the run report: {e}"),
    }
    if let Some(path) = &cli.report {
        let line = serde_json::to_string(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, line) {
            eprintln!(
                "error: cannot write the run report to {}: {e}",
                path.display()
            );
        }
    }
    match (&outcome, report.status) {
        (Ok(()), RunStatus::Succeeded) => ExitCode::SUCCESS,
        (Err(e), _) => {
            eprintln!(
                "error: {}",
                aurum_job_runner::storage::without_stack_traces(&e.to_string())
            );
            if configuration_error {
                eprintln!("hint: check the command's arguments and environment (see --help)");
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
        (Ok(()), RunStatus::Failed) => ExitCode::from(1),
    }
}
