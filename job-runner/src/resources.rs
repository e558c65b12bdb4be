//! The cores and memory a run may use: the pod's cgroup limits (v1 or v2),
//! overridden by `--threads` / `--memory-limit`, turned into the tokio runtime's
//! size and one DataFusion runtime (memory pool and spill directory) that every
//! stage of the run shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManager, DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::engine::EngineChoice;

/// Share of the cgroup memory limit a run takes by default: the rest is left
/// for the allocator's slack and the pod's other usage, so the kernel's OOM
/// killer is never the one to stop a run.
pub const CGROUP_MEMORY_SHARE: f64 = 0.7;

/// What the process holds before it reads any data: the binary's code, the
/// threads' stacks, the runtimes (73 MiB measured for a `preprocess` of an
/// empty lake, release build). It is taken off the limit before the pool's
/// share.
const PROCESS_BASE: u64 = 64 << 20;

/// Share of the run's memory limit, less [`PROCESS_BASE`], given to
/// DataFusion's pool (sorts, aggregations, repartitions). The rest covers
/// what the pool does not track: Parquet writers' open row groups, batches
/// in flight between tasks, the silver key sets, the allocator's slack.
const POOL_SHARE: f64 = 0.6;

/// Why the resource settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// `--memory-limit` is not a size.
    #[error(
        "--memory-limit {0:?} is not a size: use bytes, or a number with KiB, MiB, GiB (or KB, MB, GB)"
    )]
    BadSize(String),
    /// `--threads 0`.
    #[error("--threads must be at least 1")]
    NoThreads,
    /// The spill directory cannot be created.
    #[error("spill directory {dir}: {source}")]
    SpillDir {
        /// The directory.
        dir: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// DataFusion refused the runtime.
    #[error("the query runtime: {0}")]
    Runtime(#[from] DataFusionError),
}

/// Parses a size: bytes, or a number with a unit (`512MiB`, `1GiB`, `1.5G`,
/// `64k`); binary and decimal units, case-insensitive, spaces allowed.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * factor as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// A size for people: `512.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The cgroup v2 `cpu.max` file ("$MAX $PERIOD" or "max $PERIOD") as cores,
/// rounded up; `None` when there is no quota.
pub fn parse_cpu_max(text: &str) -> Option<usize> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period = fields.next().unwrap_or("100000");
    cores(quota.parse().ok()?, period.parse().ok()?)
}

/// The cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` files as cores,
/// rounded up; `None` when there is no quota (-1).
pub fn parse_cfs_quota(quota: &str, period: &str) -> Option<usize> {
    cores(quota.trim().parse().ok()?, period.trim().parse().ok()?)
}

fn cores(quota: i64, period: i64) -> Option<usize> {
    if quota <= 0 || period <= 0 {
        return None;
    }
    // A quota of 1.5 cores can keep two threads busy part of the time:
    // round up, so the quota is used whole.
    Some(((quota + period - 1) / period).max(1) as usize)
}

/// A cgroup memory limit file (v2 `memory.max`, v1 `memory.limit_in_bytes`);
/// `None` for "max" and for v1's "unlimited" (a page-rounded `i64::MAX`).
pub fn parse_memory_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    let bytes: u64 = text.parse().ok()?;
    (bytes > 0 && bytes < 1 << 62).then_some(bytes)
}

/// The limits found in a cgroup hierarchy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Whole cores of the CPU quota, rounded up.
    pub cpus: Option<usize>,
    /// The memory limit in bytes.
    pub memory: Option<u64>,
}

impl CgroupLimits {
    /// Reads the limits of this process's cgroup (`/proc/self/cgroup`,
    /// mounted at `/sys/fs/cgroup`); nothing when there is no cgroup file system.
    pub fn of_this_process() -> CgroupLimits {
        let membership = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        CgroupLimits::read(Path::new("/sys/fs/cgroup"), &membership)
    }

    /// Reads the limits under a cgroup mount `root`, given the contents of
    /// `/proc/self/cgroup`. v2 (unified) first, then v1's `cpu` and `memory`
    /// controllers. In a container the process's own cgroup is usually the
    /// mount's root; on a host it is a sub-directory: both are looked at,
    /// the process's own first.
    pub fn read(root: &Path, membership: &str) -> CgroupLimits {
        let read = |path: PathBuf| std::fs::read_to_string(path).ok();
        // Lines are "id:controllers:path"; v2's is "0::/path".
        let mut v2_path = None;
        let mut v1_paths = std::collections::HashMap::new();
        for line in membership.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let path = path.trim_start_matches('/');
            if controllers.is_empty() {
                v2_path = Some(path.to_owned());
            }
            for controller in controllers.split(',') {
                v1_paths.insert(controller.to_owned(), path.to_owned());
            }
        }
        let candidates = |base: PathBuf, own: Option<&String>| {
            let mut dirs = Vec::new();
            if let Some(own) = own.filter(|p| !p.is_empty()) {
                dirs.push(base.join(own));
            }
            dirs.push(base);
            dirs
        };

        if root.join("cgroup.controllers").is_file() {
            let mut limits = CgroupLimits::default();
            for dir in candidates(root.to_path_buf(), v2_path.as_ref()) {
                if limits.cpus.is_none() {
                    limits.cpus = read(dir.join("cpu.max")).and_then(|t| parse_cpu_max(&t));
                }
                if limits.memory.is_none() {
                    limits.memory =
                        read(dir.join("memory.max")).and_then(|t| parse_memory_limit(&t));
                }
            }
            return limits;
        }
        let mut limits = CgroupLimits::default();
        for mount in ["cpu", "cpu,cpuacct", "cpuacct,cpu"] {
            for dir in candidates(root.join(mount), v1_paths.get("cpu")) {
                if limits.cpus.is_none()
                    && let (Some(quota), Some(period)) = (
                        read(dir.join("cpu.cfs_quota_us")),
                        read(dir.join("cpu.cfs_period_us")),
                    )
                {
                    limits.cpus = parse_cfs_quota(&quota, &period);
                }
            }
        }
        for dir in candidates(root.join("memory"), v1_paths.get("memory")) {
            if limits.memory.is_none() {
                limits.memory =
                    read(dir.join("memory.limit_in_bytes")).and_then(|t| parse_memory_limit(&t));
            }
        }
        limits
    }
}

/// Where a setting came from, for the run report and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `--threads`, `--memory-limit` or their environment variables.
    Option,
    /// The cgroup's CPU quota or memory limit.
    Cgroup,
    /// The machine's cores; no memory limit.
    Machine,
}

/// What a run may use.
#[derive(Clone, Debug)]
pub struct Resources {
    /// Worker threads, and DataFusion partitions per query.
    pub threads: usize,
    /// Where `threads` came from.
    pub threads_origin: Origin,
    /// The memory the run stays under, when there is a limit.
    pub memory_limit: Option<u64>,
    /// Where `memory_limit` came from.
    pub memory_origin: Origin,
    /// Where sorts and aggregations spill.
    pub spill_dir: PathBuf,
}

impl Resources {
    /// Resolves the options against the cgroup limits and the machine.
    pub fn resolve(
        threads: Option<usize>,
        memory_limit: Option<&str>,
        spill_dir: Option<PathBuf>,
        cgroup: CgroupLimits,
    ) -> Result<Resources, ResourceError> {
        let (threads, threads_origin) = match (threads, cgroup.cpus) {
            (Some(0), _) => return Err(ResourceError::NoThreads),
            (Some(n), _) => (n, Origin::Option),
            (None, Some(n)) => (n, Origin::Cgroup),
            (None, None) => (
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                Origin::Machine,
            ),
        };
        let (memory_limit, memory_origin) = match (memory_limit, cgroup.memory) {
            (Some(text), _) => (
                Some(parse_size(text).ok_or_else(|| ResourceError::BadSize(text.to_owned()))?),
                Origin::Option,
            ),
            (None, Some(bytes)) => (
                Some((bytes as f64 * CGROUP_MEMORY_SHARE) as u64),
                Origin::Cgroup,
            ),
            (None, None) => (None, Origin::Machine),
        };
        Ok(Resources {
            threads,
            threads_origin,
            memory_limit,
            memory_origin,
            spill_dir: spill_dir.unwrap_or_else(std::env::temp_dir),
        })
    }

    /// The bytes DataFusion's pool may hold, when there is a limit.
    pub fn pool_bytes(&self) -> Option<usize> {
        self.memory_limit
            .map(|limit| (limit.saturating_sub(PROCESS_BASE) as f64 * POOL_SHARE) as usize)
    }

    /// Builds the query runtime every stage shares: one pool, so concurrent
    /// queries of a run split the limit instead of each taking all of it.
    pub fn engine(&self) -> Result<Engine, ResourceError> {
        std::fs::create_dir_all(&self.spill_dir).map_err(|source| ResourceError::SpillDir {
            dir: self.spill_dir.display().to_string(),
            source,
        })?;
        let mut builder = RuntimeEnvBuilder::new().with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![self.spill_dir.clone()])),
        );
        if let Some(bytes) = self.pool_bytes() {
            builder = builder.with_memory_pool(Arc::new(TrackConsumersPool::new(
                SharePool::new(bytes, self.threads),
                std::num::NonZeroUsize::new(3).expect("3 is not zero"),
            )));
        }
        Ok(Engine {
            runtime: builder.build_arc()?,
            resources: self.clone(),
            choice: EngineChoice::InProcess,
        })
    }
}

/// Memory a sort keeps for merging its spill files
/// (`datafusion.execution.sort_spill_reservation_bytes` of every session).
pub const SORT_MERGE_RESERVATION: usize = 4 << 20;

/// DataFusion's `FairSpillPool`, with two changes that keep a run's sorts
/// from starving each other (seen with the fair pool: when one partition's
/// sort ended early, the other took the whole pool, and the first one's merge
/// could no longer get the few MiB it needs, failing a run that fits):
/// a spilling operator's share is the pool divided by at least the number of
/// partitions, whatever number happen to be registered at the moment, and
/// only half of that before it spills (its final in-memory merge needs the
/// rest); and room for every partition's merge reservation is kept out of the
/// spillable part.
#[derive(Debug)]
struct SharePool {
    size: usize,
    partitions: usize,
    state: std::sync::Mutex<ShareState>,
}

#[derive(Debug, Default)]
struct ShareState {
    spillers: usize,
    spillable: usize,
    unspillable: usize,
}

impl SharePool {
    fn new(size: usize, partitions: usize) -> SharePool {
        SharePool {
            size,
            partitions: partitions.max(1),
            state: std::sync::Mutex::new(ShareState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ShareState> {
        // The counters stay consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Display for SharePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "share(pool_size: {}, partitions: {})",
            human_size(self.size as u64),
            self.partitions
        )
    }
}

impl MemoryPool for SharePool {
    fn name(&self) -> &str {
        "share"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            self.state().spillers += 1;
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            let mut state = self.state();
            state.spillers = state.spillers.saturating_sub(1);
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        let mut state = self.state();
        if reservation.consumer().can_spill() {
            state.spillable += additional;
        } else {
            state.unspillable += additional;
        }
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        let mut state = self.state();
        if reservation.consumer().can_spill() {
            state.spillable = state.spillable.saturating_sub(shrink);
        } else {
            state.unspillable = state.unspillable.saturating_sub(shrink);
        }
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        let mut state = self.state();
        let available = if reservation.consumer().can_spill() {
            let merge_room = (SORT_MERGE_RESERVATION * self.partitions).min(self.size / 4);
            let spillable = self.size.saturating_sub(state.unspillable.max(merge_room));
            // Half a fair share: a sort that ends without spilling merges
            // its batches in memory, which takes more than it buffered
            // (unspillable, so it must be there).
            spillable / (state.spillers.max(self.partitions) * 2)
        } else {
            self.size
                .saturating_sub(state.unspillable + state.spillable)
                + reservation.size()
        };
        if reservation.size() + additional > available {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "Failed to allocate additional {} for {} with {} already allocated for this reservation - {} is its share of the total memory pool: {self}",
                human_size(additional as u64),
                reservation.consumer().name(),
                human_size(reservation.size() as u64),
                human_size(available as u64),
            )));
        }
        if reservation.consumer().can_spill() {
            state.spillable += additional;
        } else {
            state.unspillable += additional;
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        let state = self.state();
        state.spillable + state.unspillable
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.size)
    }
}

/// The shared DataFusion runtime of a run and the settings it was built from.
#[derive(Clone, Debug)]
pub struct Engine {
    runtime: Arc<RuntimeEnv>,
    /// The settings.
    pub resources: Resources,
    /// Where the datamarts' and the transactions' preprocess plans run
    /// (`--engine`); the keyed tables' preprocess always runs here.
    pub choice: EngineChoice,
}

impl Engine {
    /// An engine for library callers and tests: the machine's cores, no limit.
    pub fn unlimited() -> Engine {
        Resources::resolve(None, None, None, CgroupLimits::default())
            .and_then(|r| r.engine())
            .expect("an unlimited engine needs nothing that can fail but the temp dir")
    }

    /// The partitions each query runs with.
    pub fn partitions(&self) -> usize {
        self.resources.threads
    }

    /// The run's memory pool, for memory held outside DataFusion's operators.
    pub fn memory_pool(&self) -> &Arc<dyn MemoryPool> {
        &self.runtime.memory_pool
    }

    /// Where the run's spill files go.
    pub fn disk_manager(&self) -> &Arc<DiskManager> {
        &self.runtime.disk_manager
    }

    /// A session configuration with [`Engine::partitions`] partitions.
    pub fn config(&self) -> SessionConfig {
        SessionConfig::new()
            .with_target_partitions(self.partitions())
            .set_usize(
                "datafusion.execution.sort_spill_reservation_bytes",
                SORT_MERGE_RESERVATION,
            )
    }

    /// A session whose plans run on the Ballista cluster of `--engine`, with
    /// `--engine-partitions` partitions (the run's own by default); `None`
    /// when the engine is in-process.
    pub fn remote_session(&self) -> Option<datafusion::error::Result<SessionContext>> {
        match &self.choice {
            EngineChoice::InProcess => None,
            EngineChoice::Ballista {
                host,
                port,
                partitions,
            } => {
                let config = self
                    .config()
                    .with_target_partitions(partitions.unwrap_or(self.partitions()));
                Some(crate::engine::ballista_session(config, host, *port))
            }
        }
    }

    /// A session on the shared runtime (pool and spill directory), reading
    /// Parquet text as plain strings (the lake's readers expect `Utf8`).
    pub fn session(&self, config: SessionConfig) -> SessionContext {
        let config = config.set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        );
        SessionContext::new_with_config_rt(config, Arc::clone(&self.runtime))
    }
}

/// Bytes an executed plan spilled to disk, summed over its operators.
pub fn spilled_bytes(plan: &dyn ExecutionPlan) -> u64 {
    let own = plan
        .metrics()
        .and_then(|m| m.spilled_bytes())
        .unwrap_or_default() as u64;
    own + plan
        .children()
        .into_iter()
        .map(|child| spilled_bytes(child.as_ref()))
        .sum::<u64>()
}

/// Whether an error (or one of its causes) is DataFusion running out of its
/// memory pool.
pub fn is_memory_exhausted(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(df) = e.downcast_ref::<DataFusionError>()
            && matches!(df.find_root(), DataFusionError::ResourcesExhausted(_))
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The process's CPU time (user + system, all threads) so far.
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The process's peak resident memory so far, in bytes.
pub fn peak_rss() -> u64 {
    // SAFETY: as above.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    // Linux reports kilobytes.
    usage.ru_maxrss.max(0) as u64 * 1024
}

/// Glibc's malloc keeps memory a run has freed resident: each thread that
/// allocates gets its own arena (up to eight per core) and freed blocks stay
/// in it. Measured at 5M transactions under a 256 MiB limit, that slack put
/// the peak resident memory 50 to 75 MiB above what the same run needs with
/// arenas capped at the run's threads, blocks of 256 KiB and more mapped on
/// their own (returned to the kernel when freed) and the heap's free top
/// trimmed past 256 KiB, at no measurable CPU cost. Called once, before any
/// thread starts.
pub fn bound_allocator(threads: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const RETURNED_FROM: libc::c_int = 256 << 10;
        let arenas = libc::c_int::try_from(threads.clamp(1, 64)).unwrap_or(1);
        // SAFETY: mallopt only changes the allocator's tuning parameters; an
        // unknown parameter or value is refused with 0, leaving the default.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
            libc::mallopt(libc::M_MMAP_THRESHOLD, RETURNED_FROM);
            libc::mallopt(libc::M_TRIM_THRESHOLD, RETURNED_FROM);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = threads;
}

/// Hands the memory the allocator holds free back to the kernel. Called
/// between the stages of one process (`run`), so that what one stage freed
/// does not stay resident under the next stage's peak.
pub fn release_free_memory() {
    // SAFETY: malloc_trim only returns free pages of the allocator's own
    // arenas to the kernel.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Wall and CPU time of a stage, from its start.
#[derive(Clone, Copy, Debug)]
pub struct StageClock {
    wall: Instant,
    cpu: Duration,
}

impl StageClock {
    /// Starts both clocks.
    pub fn start() -> StageClock {
        StageClock {
            wall: Instant::now(),
            cpu: process_cpu_time(),
        }
    }

    /// Wall time since the start.
    pub fn wall(&self) -> Duration {
        self.wall.elapsed()
    }

    /// The process's CPU time since the start (every thread's, so stages that
    /// overlap share it).
    pub fn cpu(&self) -> Duration {
        process_cpu_time().saturating_sub(self.cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("512 mib"), Some(512 << 20));
        assert_eq!(parse_size("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_size("2G"), Some(2_000_000_000));
        assert_eq!(parse_size("64k"), Some(64_000));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        for bad in ["", "GiB", "1 parsec", "-1GiB", "0", "1..5G", "0.1"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(human_size(1 << 30), "1.0 GiB");
        assert_eq!(human_size(512), "512 B");
    }

    #[test]
    fn cpu_quotas() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("150000 100000"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("1600000 100000"), Some(16));
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cfs_quota("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs_quota("400000\n", "100000\n"), Some(4));
        assert_eq!(parse_cfs_quota("25000", "100000"), Some(1));
        assert_eq!(parse_cfs_quota("garbage", "100000"), None);
    }

    #[test]
    fn memory_limits() {
        assert_eq!(parse_memory_limit("max\n"), None);
        assert_eq!(parse_memory_limit("1073741824\n"), Some(1 << 30));
        // cgroup v1's "no limit".
        assert_eq!(parse_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_memory_limit(""), None);
    }

    fn write(root: &Path, file: &str, text: &str) {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn cgroup_v2_in_a_container() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "cgroup.controllers", "cpu memory pids\n");
        write(dir.path(), "cpu.max", "300000 100000\n");
        write(dir.path(), "memory.max", "2147483648\n");
        assert_eq!(
            CgroupLimits::read(dir.path(), "0::/\n"),
            CgroupLimits {
                cpus: Some(3),
                memory: Some(2 << 30)
            }
        );
    }

    #[test]
    fn cgroup_v2_own_group_first_and_max_means_none() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "cgroup.controllers", "cpu memory\n");
        write(dir.path(), "cpu.max", "max 100000\n");
        write(dir.path(), "memory.max", "max\n");
        write(dir.path(), "kubepods/pod1/cpu.max", "max 100000\n");
        write(dir.path(), "kubepods/pod1/memory.max", "536870912\n");
        assert_eq!(
            CgroupLimits::read(dir.path(), "0::/kubepods/pod1\n"),
            CgroupLimits {
                cpus: None,
                memory: Some(512 << 20)
            }
        );
    }

    #[test]
    fn cgroup_v1() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "cpu,cpuacct/cpu.cfs_quota_us", "150000\n");
        write(dir.path(), "cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        write(
            dir.path(),
            "memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        let membership = "12:memory:/\n4:cpu,cpuacct:/\n";
        assert_eq!(
            CgroupLimits::read(dir.path(), membership),
            CgroupLimits {
                cpus: Some(2),
                memory: None
            }
        );
        write(dir.path(), "memory/memory.limit_in_bytes", "1073741824\n");
        assert_eq!(
            CgroupLimits::read(dir.path(), membership).memory,
            Some(1 << 30)
        );
    }

    #[test]
    fn no_cgroup_files_means_no_limits() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CgroupLimits::read(dir.path(), ""), CgroupLimits::default());
        assert_eq!(
            CgroupLimits::read(Path::new("/nonexistent/cgroup"), "0::/\n"),
            CgroupLimits::default()
        );
    }

    #[test]
    fn options_override_the_cgroup() {
        let cgroup = CgroupLimits {
            cpus: Some(4),
            memory: Some(1000),
        };
        let r = Resources::resolve(None, None, None, cgroup).unwrap();
        assert_eq!((r.threads, r.threads_origin), (4, Origin::Cgroup));
        assert_eq!(
            (r.memory_limit, r.memory_origin),
            (Some(700), Origin::Cgroup)
        );
        let r = Resources::resolve(Some(3), Some("1GiB"), None, cgroup).unwrap();
        assert_eq!((r.threads, r.threads_origin), (3, Origin::Option));
        assert_eq!(r.memory_limit, Some(1 << 30));
        let r = Resources::resolve(None, None, None, CgroupLimits::default()).unwrap();
        assert_eq!(r.threads_origin, Origin::Machine);
        assert_eq!(r.memory_limit, None);
        assert!(Resources::resolve(Some(0), None, None, cgroup).is_err());
        assert!(Resources::resolve(None, Some("lots"), None, cgroup).is_err());
    }
}
