//! Telemetry that never touches the hot path: the reactors store their
//! counters into a memory-mapped stats file once per timer tick
//! ([`stats`]); everything else reads that file — `ordergate stat`
//! ([`stat`]) from another process, the Prometheus endpoint
//! ([`prometheus`]) from a thread of its own. Layout and use:
//! `docs/STATS.md`.

pub mod prometheus;
pub mod stat;
pub mod stats;

pub use stats::{
    DutyCycle, DutyMeter, EngineStatsWriter, Snapshot, StatsError, StatsFile, StatsReader,
    StatsWriter,
};

/// Where `serve` keeps its stats file unless told otherwise. `/dev/shm` is
/// tmpfs: the pages are memory only, so the kernel never writes them back
/// to a disk, and a reactor's store can never wait on writeback of a page
/// (as it can on a disk file system that needs stable pages).
pub const STATS_FILE_DEFAULT: &str = "/dev/shm/ordergate-stats";
