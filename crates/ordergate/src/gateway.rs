//! A running gateway: reactor threads, the engine agent, their rings, and a
//! graceful stop. This is what `serve`, `demo` and the loopback tests start.
//!
//! ```text
//!            ┌──────────── reactor 0 (pinned) ────────────┐
//!  clients ─▶│ io_uring: accept · recv (buffer ring) · send│──Command ring──┐
//!            │ ReactorCore: session slab, sans-I/O sessions│◀─Event ring────┤
//!            └─────────────────────────────────────────────┘                ▼
//!            ┌──────────── reactor 1 (pinned) ────────────┐          ┌──────────┐
//!  clients ─▶│                 …                           │◀────────▶│  engine  │ own core, or
//!            └─────────────────────────────────────────────┘          │  agent   │ shares reactor 0
//!                                                                     └──────────┘
//! ```
//!
//! Each reactor has its own SO_REUSEPORT listener on the same address, so
//! the kernel spreads connections across reactors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::auth::keys::{KeyTable, KeysFile};
use crate::constants::*;
use crate::engine::agent::{EngineAgent, EngineCounters};
use crate::engine::book::{EngineConfig, MatchingEngine};
use crate::engine::{Command, Event, Nanos};
use crate::journal::{
    AuditEvent, AuditSink, Journal, JournalHealth, JournalStats, JournalWriter, WriterConfig,
};
use crate::link::{CommandTx, EventRx};
use crate::reactor::core::ReactorCore;
use crate::reactor::idle::{Idle, IdleAction, IdleKind};
pub use crate::reactor::report::{ReactorReport, UringCounters};
use crate::reactor::uring;
use crate::reactor::worker::{self, ReactorArgs};
use crate::ring;
use crate::session::{Audit, GatewayConfig, Shared};
use crate::telemetry::StatsFile;
use crate::waits::{KeysAppliedWait, SweepWait};

/// The engine thread publishes its stats as often as a reactor ticks.
const TIMER_TICK_NS: Nanos = worker::TIMER_TICK.as_nanos() as Nanos;

pub use crate::constants::LISTEN_BACKLOG;

/// Where the engine agent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnginePlacement {
    /// Its own thread, pinned to `core` if given: big hosts.
    OwnThread { core: Option<usize> },
    /// On reactor 0's thread, after each of its turns, still through the
    /// rings: small hosts (2 cores), so nothing spins against anything else.
    SharedWithReactor0,
}

/// Where the matching engine is (issue 14; docs/ENGINE.md).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum EngineLink {
    /// In this process, through in-process rings (`placement` says which
    /// thread): the default, and the demo's.
    #[default]
    InProcess,
    /// `ordergate engine --shm PATH`, another process on this host, through
    /// the rings of the file it made.
    Shm(std::path::PathBuf),
}

impl EngineLink {
    /// `in-process` or `shm:PATH` (the `--engine` flag and `engine.link`).
    pub fn parse(s: &str) -> Result<EngineLink, String> {
        match s {
            "in-process" => Ok(EngineLink::InProcess),
            _ => match s.strip_prefix("shm:") {
                Some("") => {
                    Err("`shm:` needs the engine's file, e.g. shm:/dev/shm/ordergate-engine".into())
                }
                Some(path) => Ok(EngineLink::Shm(path.into())),
                None => Err(format!(
                    "`{s}` is not an engine link: give `in-process` or `shm:PATH` \
                     (aeron: is not supported yet)"
                )),
            },
        }
    }
}

impl std::fmt::Display for EngineLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineLink::InProcess => f.write_str("in-process"),
            EngineLink::Shm(p) => write!(f, "shm:{}", p.display()),
        }
    }
}

/// Everything needed to start a gateway. `Default` is the embedded default
/// used by `demo`: loopback, one reactor, the engine sharing its thread.
#[derive(Clone, Debug)]
pub struct GatewaySpec {
    pub listen: SocketAddr,
    /// Reactor threads.
    pub reactors: usize,
    /// Core for each reactor; empty = not pinned. Else `len == reactors`.
    pub reactor_cores: Vec<usize>,
    pub engine: EnginePlacement,
    pub sessions_per_reactor: usize,
    /// Slots of each command ring and each event ring (power of two).
    pub ring_capacity: usize,
    /// Provided receive buffers per reactor (power of two, ≤ 32768).
    pub recv_buffers: u16,
    /// Bytes of each receive buffer.
    pub recv_buffer_size: u32,
    /// Submission queue entries of each reactor's io_uring (power of two).
    pub uring_entries: u32,
    pub idle: IdleKind,
    pub session: GatewayConfig,
    pub engine_config: EngineConfig,
    /// The tamper-evident audit journal (its first segment; later ones are
    /// `PATH.1`, `PATH.2`, …); None = no journal (tests, demo).
    pub audit_journal: Option<std::path::PathBuf>,
    /// Records each new journal segment is preallocated for.
    pub audit_capacity: u64,
    /// Whether a full segment rolls over to the next (else the journal fails
    /// closed when full). docs/JOURNAL.md, "When a segment fills".
    pub audit_rollover: bool,
    /// The stats file the reactors publish their counters to every timer
    /// tick (docs/STATS.md); None = no stats file (tests, demo).
    pub stats_file: Option<std::path::PathBuf>,
    /// Connections one source address (IPv4, or IPv6 /64) may hold on one
    /// reactor before they log on; more are refused LogonReject THROTTLED.
    pub pending_logons_per_address: usize,
    /// Back-off's longest spin before a reactor blocks (its adaptive
    /// budget never exceeds it); zero blocks after every turn.
    pub spin_max: std::time::Duration,
    /// Each reactor's ring gets an SQPOLL thread: no kernel entry per
    /// request while it polls (isolated cores; tuning/CAPACITY.md).
    pub sqpoll: bool,
    /// The CPU of each reactor's SQPOLL thread; empty = not pinned. Else
    /// `len == reactors`.
    pub sqpoll_cores: Vec<usize>,
    /// The anchor key the journal's checkpoints are made with (a file of
    /// 64 hex digits, mode 0600); None = no checkpoints. docs/JOURNAL.md,
    /// "Checkpoints".
    pub audit_anchor_key_file: Option<std::path::PathBuf>,
    /// How long after the last checkpoint the journal thread writes a
    /// periodic one, when records came since (with an anchor key). Default
    /// `JOURNAL_CHECKPOINT_INTERVAL_NS`; not in the config file: a test or
    /// an embedder that needs the records of a run exactly sets it.
    pub audit_checkpoint_interval: std::time::Duration,
    /// Where the engine is: in this process (default) or another.
    pub engine_link: EngineLink,
}

impl Default for GatewaySpec {
    fn default() -> Self {
        GatewaySpec {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            reactors: 1,
            reactor_cores: Vec::new(),
            engine: EnginePlacement::SharedWithReactor0,
            sessions_per_reactor: SESSIONS_PER_REACTOR_DEFAULT,
            ring_capacity: RING_CAPACITY_DEFAULT,
            recv_buffers: RECV_BUFFERS_DEFAULT,
            recv_buffer_size: RECV_BUFFER_SIZE_DEFAULT,
            uring_entries: URING_ENTRIES_DEFAULT,
            idle: IdleKind::Backoff,
            session: GatewayConfig::default(),
            engine_config: EngineConfig::default(),
            audit_journal: None,
            audit_capacity: crate::journal::CAPACITY_RECORDS_DEFAULT,
            audit_rollover: true,
            stats_file: None,
            pending_logons_per_address: PENDING_LOGONS_PER_ADDRESS_DEFAULT,
            spin_max: std::time::Duration::from_micros(SPIN_MAX_US_DEFAULT.into()),
            sqpoll: false,
            sqpoll_cores: Vec::new(),
            audit_anchor_key_file: None,
            audit_checkpoint_interval: std::time::Duration::from_nanos(
                JOURNAL_CHECKPOINT_INTERVAL_NS,
            ),
            engine_link: EngineLink::InProcess,
        }
    }
}

/// The whole gateway's figures at shutdown.
#[derive(Clone, Debug)]
pub struct GatewayReport {
    pub reactors: Vec<ReactorReport>,
    pub engine: EngineCounters,
    /// The journal thread's figures (None without a journal).
    pub journal: Option<JournalStats>,
}

/// Why the gateway did not start. Each names what is missing or wrong.
#[derive(Debug)]
pub enum StartError {
    /// The spec is inconsistent (names the field and the problem).
    Spec(String),
    /// io_uring, or a feature of it the reactor needs, is unavailable.
    Uring(String),
    /// Binding or configuring the listener on `addr` failed (not because
    /// another process listens there: that is `AddressInUse`).
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Another process already listens on the address (another gateway,
    /// most likely): joining its SO_REUSEPORT group would split the
    /// connections between two books. `holders`: who, from /proc, or why
    /// that could not be found.
    AddressInUse {
        addr: SocketAddr,
        holders: Result<Vec<(u32, String)>, String>,
    },
    /// Pinning a thread to its core failed.
    Affinity(String),
    /// The audit journal cannot be opened (or is corrupt): the gateway does
    /// not start without its record.
    Journal(String),
    /// The stats file cannot be created (or another gateway writes it).
    Stats(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Spec(s) => write!(f, "configuration: {s}"),
            StartError::Uring(s) => write!(f, "io_uring: {s}"),
            StartError::Listen { addr, source } => write!(
                f,
                "listener {addr}: {source}{}",
                crate::sys::bind_hint(*addr, source)
            ),
            StartError::AddressInUse { addr, holders } => write!(
                f,
                "listener {addr}: another process ({}) is already listening on this address; a \
                 second gateway there would take part of its connections with a separate book: \
                 stop that one, or listen elsewhere",
                crate::sys::holders_text(holders)
            ),
            StartError::Affinity(s) => write!(f, "cpu affinity: {s}"),
            StartError::Journal(s) => write!(f, "audit journal: {s}"),
            StartError::Stats(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Stops a gateway from another thread (a signal handler's thread, a test).
#[derive(Clone, Debug)]
pub struct StopHandle {
    stop: Arc<AtomicBool>,
}

impl StopHandle {
    /// Asks every reactor to stop accepting, send Terminate SHUTDOWN to every
    /// session, drain the rings and exit. Returns at once.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Reloads and revocations of a running gateway, from any thread (the
/// signal thread, the admin socket, a test). Never touches a reactor
/// directly: it publishes a new key generation and waits for every reactor
/// to acknowledge it.
#[derive(Clone)]
pub struct GatewayControl {
    shared: Arc<Shared>,
    reactors: usize,
    /// The control plane's own audit ring (reload, revoke, kill).
    audit: Arc<std::sync::Mutex<Audit>>,
}

/// What a reload or revocation did.
#[derive(Clone, Debug)]
pub struct ControlReport {
    pub epoch: u64,
    /// Keys in the table now.
    pub keys: usize,
    /// From publishing the generation until every reactor had switched to
    /// it (and so had stopped reading the revoked sessions): the revocation
    /// latency. None if a reactor did not switch within `CONTROL_TIMEOUT`.
    pub applied_in: Option<std::time::Duration>,
    /// Revoke and kill: the key's live sessions when it was revoked, which
    /// the revocation ends (0 for a reload, and for a kill of a key that
    /// was already revoked).
    pub sessions_ended: u32,
    /// A kill of a key an earlier revoke or kill had already revoked: no
    /// new generation (`epoch` is the current one), nothing left to end,
    /// and the kill journaled all the same.
    pub already_revoked: bool,
    /// A revocation or kill: the key's resting orders the engine canceled,
    /// every session's (ended ones included), once every reactor reported
    /// its sweep. None for a reload, or if a report did not come within
    /// `CONTROL_TIMEOUT` of the switch.
    pub orders_canceled: Option<u64>,
}

/// Why a revoke or kill did nothing. Each names the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// No key with this id in the current table (a mistyped id).
    UnknownKey(u64),
    /// `revoke` of a key already revoked in this run (`kill` records a
    /// kill of such a key instead of refusing it).
    AlreadyRevoked(u64),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::UnknownKey(id) => write!(
                f,
                "key {id} is not in the keys table; nothing was done (`ordergate admin sessions` \
                 lists the keys)"
            ),
            ControlError::AlreadyRevoked(id) => write!(
                f,
                "key {id} is already revoked; nothing was done (its sessions ended and its \
                 orders were canceled then; `kill {id}` still records a kill)"
            ),
        }
    }
}

impl std::error::Error for ControlError {}

/// How long a reload or revocation waits for every reactor to switch.
pub const CONTROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

impl GatewayControl {
    /// Installs `table` (already validated by `KeyTable::load`). New keys
    /// work at once; changed secrets apply from the next logon; sessions of
    /// keys that are gone or no longer usable end with KEY_REVOKED.
    pub fn reload(&self, table: KeyTable) -> ControlReport {
        let keys = table.len();
        let epoch = self.shared.publish_keys(table);
        let applied_in = self.wait(epoch);
        self.record(AuditEvent::reload(crate::clock::wall_ns(), keys as u32));
        ControlReport {
            epoch,
            keys,
            applied_in,
            sessions_ended: 0,
            already_revoked: false,
            orders_canceled: None,
        }
    }

    /// Re-reads the keys file; an invalid file keeps the current table and
    /// returns why.
    pub fn reload_file(&self, path: &std::path::Path) -> Result<ControlReport, String> {
        match KeyTable::load(path) {
            Ok(table) => Ok(self.reload(table)),
            Err(e) => {
                self.record(AuditEvent::reload_failed(crate::clock::wall_ns(), 0));
                Err(e.to_string())
            }
        }
    }

    /// Revokes `key_id` for the rest of the run (see `Shared::revoke_key`),
    /// journaled as a revoke.
    ///
    /// # Errors
    ///
    /// The key is not in the table, or is already revoked: nothing done,
    /// nothing journaled.
    pub fn revoke(&self, key_id: u64) -> Result<ControlReport, ControlError> {
        let report = self.revoke_quietly(key_id)?;
        if report.already_revoked {
            return Err(ControlError::AlreadyRevoked(key_id));
        }
        self.record(AuditEvent::revoke(
            crate::clock::wall_ns(),
            key_id,
            report.sessions_ended,
        ));
        Ok(report)
    }

    /// The kill switch: revokes `key_id`, ending every session of it and
    /// canceling their orders; journaled as a kill. Always journaled for a
    /// key in the table, even one already revoked (then nothing is left to
    /// end: `already_revoked`, 0 sessions ended).
    ///
    /// # Errors
    ///
    /// The key is not in the table: nothing done, nothing journaled.
    pub fn kill(&self, key_id: u64) -> Result<ControlReport, ControlError> {
        let report = self.revoke_quietly(key_id)?;
        let all = crate::engine::SessionId(0);
        let reason = crate::wire::codes::TerminateReason::KEY_REVOKED;
        self.record(AuditEvent::kill(
            crate::clock::wall_ns(),
            key_id,
            all,
            reason,
            report.sessions_ended,
        ));
        Ok(report)
    }

    fn revoke_quietly(&self, key_id: u64) -> Result<ControlReport, ControlError> {
        let set = self.shared.key_set();
        let Some((index, _)) = set.table.get(key_id) else {
            return Err(ControlError::UnknownKey(key_id));
        };
        let live = set.state(index).sessions.load(Ordering::Relaxed);
        let (epoch, applied_in, orders_canceled, sessions_ended, already_revoked) =
            match self.revoke_and_sweep(key_id) {
                Some((epoch, applied_in, canceled)) => (epoch, applied_in, canceled, live, false),
                None => {
                    let epoch = self.shared.keys_epoch();
                    (epoch, self.wait(epoch), Some(0), 0, true)
                }
            };
        Ok(ControlReport {
            epoch,
            keys: set.table.len(),
            applied_in,
            sessions_ended,
            already_revoked,
            orders_canceled,
        })
    }

    /// Revokes `key_id` and waits for every reactor's sweep of it (risk):
    /// each reactor sends the engine one CancelForKey as it switches, and
    /// reports what the engine canceled. Returns the generation, the time
    /// every reactor took to switch, and the orders canceled (None on
    /// timeout); None if the key was already revoked.
    fn revoke_and_sweep(
        &self,
        key_id: u64,
    ) -> Option<(u64, Option<std::time::Duration>, Option<u64>)> {
        let sweeps = &self.shared.key_sweeps;
        sweeps.open(key_id, self.shared.keys_epoch());
        let Some(epoch) = self.shared.revoke_key(key_id) else {
            sweeps.close(key_id);
            return None;
        };
        let applied_in = self.wait(epoch);
        let canceled = sweeps.wait(key_id, self.reactors, CONTROL_TIMEOUT);
        Some((epoch, applied_in, canceled))
    }

    fn wait(&self, epoch: u64) -> Option<std::time::Duration> {
        self.shared
            .wait_keys_applied(self.reactors, epoch, CONTROL_TIMEOUT)
    }

    fn record(&self, event: AuditEvent) {
        self.audit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(event);
    }

    /// The admin socket's counters (reactor 0 publishes them).
    pub fn admin_counters(&self) -> &crate::session::counters::AdminCounters {
        &self.shared.admin
    }

    /// Every reactor's logged-on sessions, in (key, session) order, asked
    /// of the reactors (each answers at its next timer tick), and the
    /// reactors that did not answer within `CONTROL_TIMEOUT`.
    pub fn live_sessions(&self) -> (Vec<crate::session::listing::SessionRow>, Vec<u16>) {
        let listing = &self.shared.listing;
        let _one = listing.one_at_a_time();
        let asked = listing.ask();
        let start = std::time::Instant::now();
        while !listing.answered(self.reactors, asked) && start.elapsed() < CONTROL_TIMEOUT {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        listing.collect(self.reactors, asked)
    }

    /// Each key's id and its live sessions (all reactors).
    pub fn sessions(&self) -> Vec<(u64, u32, bool)> {
        let set = self.shared.key_set();
        set.table
            .iter()
            .map(|(i, e)| {
                (
                    e.id,
                    set.state(i).sessions.load(Ordering::Relaxed),
                    set.is_revoked(e.id),
                )
            })
            .collect()
    }
}

/// A running gateway.
pub struct Gateway {
    control: GatewayControl,
    local_addr: SocketAddr,
    stop: StopHandle,
    reactors: Vec<JoinHandle<Option<ReactorReport>>>,
    engine: Option<JoinHandle<EngineCounters>>,
    engine_stop: Arc<AtomicBool>,
    journal: Option<JoinHandle<JournalStats>>,
    journal_stop: Arc<AtomicBool>,
    /// The journal's health (None without a journal).
    pub journal_health: Option<Arc<JournalHealth>>,
    /// Ring setup of reactor 0 ("single-issuer+defer-taskrun", …).
    pub uring_mode: String,
    /// Whether the CPU has SHA-NI (tags cost about three times more without).
    pub sha_ni: bool,
    /// The logon replay floors read from the journal at start (None: no
    /// journal, so none: a Logon captured before a restart can be replayed
    /// after it within the skew window).
    pub logon_floors: Option<crate::journal::LogonFloors>,
    /// The tag of the anchor key the journal's checkpoints are made with
    /// (None: no anchor key, no checkpoints).
    pub anchor_tag: Option<u64>,
    /// With an anchor key, on a journal whose latest segment holds
    /// checkpoints: whether its last record is a clean stop's checkpoint.
    /// `Some(false)`: the last run crashed, or records were removed from
    /// the journal's end while the gateway was down.
    pub previous_run_closed: Option<bool>,
}

impl GatewaySpec {
    /// Checks the spec against the limits in `constants.rs`.
    pub fn validate(&self) -> Result<(), String> {
        if self.reactors == 0 || self.reactors > REACTORS_MAX {
            return Err(format!(
                "reactors must be 1..={REACTORS_MAX}, not {}",
                self.reactors
            ));
        }
        if !self.reactor_cores.is_empty() && self.reactor_cores.len() != self.reactors {
            return Err(format!(
                "{} reactor cores given for {} reactors",
                self.reactor_cores.len(),
                self.reactors
            ));
        }
        if self.sessions_per_reactor == 0 || self.sessions_per_reactor > SESSIONS_PER_REACTOR_MAX {
            return Err(format!(
                "sessions per reactor must be 1..={SESSIONS_PER_REACTOR_MAX}, not {}",
                self.sessions_per_reactor
            ));
        }
        if !self.ring_capacity.is_power_of_two()
            || self.ring_capacity < crate::engine::EVENTS_PER_STEP_MAX
        {
            return Err(format!(
                "ring capacity must be a power of two >= 4, not {}",
                self.ring_capacity
            ));
        }
        if !self.recv_buffers.is_power_of_two() || self.recv_buffers > 32768 {
            return Err(format!(
                "receive buffers must be a power of two <= 32768, not {}",
                self.recv_buffers
            ));
        }
        if (self.recv_buffer_size as usize) < FRAME_SIZE_MAX {
            return Err(format!(
                "receive buffer size must be at least {FRAME_SIZE_MAX}, not {}",
                self.recv_buffer_size
            ));
        }
        if !self.uring_entries.is_power_of_two() || self.uring_entries > 32768 {
            return Err(format!(
                "io_uring entries must be a power of two <= 32768, not {}",
                self.uring_entries
            ));
        }
        if self.pending_logons_per_address == 0
            || self.pending_logons_per_address > PENDING_LOGONS_PER_ADDRESS_MAX
        {
            return Err(format!(
                "pending logons per address must be 1..={PENDING_LOGONS_PER_ADDRESS_MAX}, not {}",
                self.pending_logons_per_address
            ));
        }
        let capacity_min = if self.audit_rollover {
            JOURNAL_SEGMENT_RECORDS_MIN
        } else {
            1
        };
        let capacity_max = crate::journal::format::CAPACITY_RECORDS_MAX;
        if self.audit_journal.is_some()
            && !(capacity_min..=capacity_max).contains(&self.audit_capacity)
        {
            return Err(format!(
                "audit capacity must be {capacity_min}..={capacity_max} records{}, not {}",
                if self.audit_rollover {
                    " per segment with rollover"
                } else {
                    ""
                },
                self.audit_capacity
            ));
        }
        if self.spin_max > std::time::Duration::from_micros(SPIN_MAX_US_MAX.into()) {
            return Err(format!(
                "spin max must be at most {SPIN_MAX_US_MAX} µs, not {:?}",
                self.spin_max
            ));
        }
        if !self.sqpoll_cores.is_empty()
            && (!self.sqpoll || self.sqpoll_cores.len() != self.reactors)
        {
            return Err(format!(
                "{} SQPOLL cores given for {} reactors{}",
                self.sqpoll_cores.len(),
                self.reactors,
                if self.sqpoll { "" } else { " without sqpoll" }
            ));
        }
        if self.audit_anchor_key_file.is_some() && self.audit_journal.is_none() {
            return Err(
                "an audit anchor key without an audit journal: nothing to checkpoint".into(),
            );
        }
        Ok(())
    }
}

/// 32 bytes from the OS random source (start-up only).
pub fn os_random_32() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)?;
    Ok(seed)
}

/// Whether the CPU has the SHA extensions the tag path relies on.
pub fn has_sha_ni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Pins the calling thread to `core`. Not checked against the calling
/// thread's own mask (`serve` narrows the starting thread to its
/// housekeeping cores before the reactors start): the kernel refuses a
/// core that is offline or outside the process's cpuset.
fn pin(core: usize) -> Result<(), String> {
    crate::sys::set_thread_cpus(&[core])
        .map_err(|e| format!("cannot pin a thread to core {core}: {e}"))
}

impl Gateway {
    /// Checks the host (io_uring and its features; SHA-NI, warning if
    /// absent), binds the listeners and starts every thread. Returns once
    /// every reactor accepts connections.
    pub fn start(spec: GatewaySpec, keys: KeyTable) -> Result<Gateway, StartError> {
        spec.validate().map_err(StartError::Spec)?;
        let sha_ni = has_sha_ni();
        if !sha_ni {
            eprintln!(
                "ordergate: WARNING: this CPU has no SHA-NI; every message tag costs about three \
                 times more and the latency goals will not be met"
            );
        }
        let seed =
            os_random_32().map_err(|e| StartError::Spec(format!("OS random source: {e}")))?;
        // Read before anything is opened: a bad key file names itself.
        let anchor_key = match &spec.audit_anchor_key_file {
            Some(path) => {
                Some(crate::keys_file::load_anchor_key(path).map_err(StartError::Journal)?)
            }
            None => None,
        };

        // Listeners are bound first (they listen only once everything else
        // is ready, below): the first resolves port 0, the rest share it.
        // A fixed port is probed first without SO_REUSEPORT, so that another
        // gateway's group there is refused, not joined (port 0 gets a free
        // port from the kernel).
        // Every failure names the address (the port resolved, once it is).
        let listen_error = |addr: SocketAddr| {
            move |source: std::io::Error| {
                if source.kind() == std::io::ErrorKind::AddrInUse {
                    StartError::AddressInUse {
                        addr,
                        holders: crate::sys::listener_holders(addr),
                    }
                } else {
                    StartError::Listen { addr, source }
                }
            }
        };
        let probe = match spec.listen.port() {
            0 => None,
            _ => Some(uring::exclusive_probe(spec.listen).map_err(listen_error(spec.listen))?),
        };
        let first = uring::reuseport_bound(spec.listen).map_err(listen_error(spec.listen))?;
        let local_addr = first.local_addr().map_err(listen_error(spec.listen))?;
        let mut listeners = vec![first];
        for _ in 1..spec.reactors {
            listeners.push(uring::reuseport_bound(local_addr).map_err(listen_error(local_addr))?);
        }
        drop(probe);

        // The journal first: without its record the gateway does not start.
        let journal = match &spec.audit_journal {
            Some(path) => {
                let journal =
                    Journal::open_segments(path, spec.audit_capacity, spec.audit_rollover)
                        .map_err(|e| StartError::Journal(format!("{}: {e}", path.display())))?;
                Some(match anchor_key {
                    Some(key) => journal
                        .with_anchor(key, JOURNAL_CHECKPOINT_RECORDS)
                        .map_err(|e| StartError::Journal(format!("{}: {e}", path.display())))?,
                    None => journal,
                })
            }
            None => None,
        };
        // Each key's replay floor, from every segment: the nonce caches
        // start empty, the floors keep a Logon accepted before this start
        // from being accepted again (docs/JOURNAL.md, "Replay floors").
        let logon_floors = match &spec.audit_journal {
            Some(path) => Some(
                crate::journal::read_logon_floors(
                    path,
                    spec.session.logon_skew_ns,
                    crate::clock::wall_ns(),
                )
                .map_err(StartError::Journal)?,
            ),
            None => {
                eprintln!(
                    "ordergate: no audit journal: a Logon captured before a restart can be \
                     replayed after it within the skew window (the replay floors are read from \
                     the journal)"
                );
                None
            }
        };
        let floors = logon_floors
            .as_ref()
            .map(|f| f.book.clone())
            .unwrap_or_default();
        let shared = Arc::new(Shared::with_logon_floors(
            spec.session.clone(),
            keys,
            seed,
            floors,
        ));
        let anchor_tag = journal.as_ref().and_then(Journal::anchor_tag);
        let previous_run_closed = journal.as_ref().and_then(|j| {
            let (closed, had_checkpoint) = j.ended_closed();
            (j.anchor_tag().is_some() && had_checkpoint).then_some(closed)
        });
        let health = journal.as_ref().map(|_| Arc::new(JournalHealth::new()));
        let mut audit_rx = Vec::new();
        let mut new_audit = || match &health {
            Some(h) => {
                let (tx, rx) =
                    ring::channel::<AuditEvent>(crate::journal::AUDIT_RING_CAPACITY_DEFAULT);
                audit_rx.push(rx);
                Audit::new(AuditSink::new(tx), h.clone())
            }
            None => Audit::disabled(),
        };

        let mut command_rx = Vec::new();
        let mut event_tx = Vec::new();
        let mut cores = Vec::new();
        let shm = match &spec.engine_link {
            EngineLink::InProcess => None,
            EngineLink::Shm(path) => {
                let link = crate::link_shm::attach(path).map_err(StartError::Spec)?;
                let p = link.params();
                if spec.reactors > p.pairs || spec.sessions_per_reactor > p.cod_slots {
                    return Err(StartError::Spec(format!(
                        "the engine link {} has {} ring pairs for {} sessions each; this \
                         gateway runs {} reactors of {} sessions (start the engine with \
                         --reactors {})",
                        path.display(),
                        p.pairs,
                        p.cod_slots,
                        spec.reactors,
                        spec.sessions_per_reactor,
                        spec.reactors
                    )));
                }
                Some(link)
            }
        };
        for i in 0..spec.reactors {
            let (link_tx, link_rx): (CommandTx, EventRx) = match &shm {
                None => {
                    let (ctx, crx) = ring::channel::<Command>(spec.ring_capacity);
                    let (etx, erx) = ring::channel::<Event>(spec.ring_capacity);
                    command_rx.push(crx);
                    event_tx.push(etx);
                    (ctx.into(), erx.into())
                }
                Some(link) => (
                    CommandTx::shm(link, i),
                    EventRx::shm(link, i, crate::constants::ENGINE_LIVENESS_TIMEOUT_NS),
                ),
            };
            let mut core = ReactorCore::new(
                i as u16,
                shared.clone(),
                spec.sessions_per_reactor,
                link_tx,
                link_rx,
            );
            core.audit = new_audit();
            core.set_pending_logons_per_address(spec.pending_logons_per_address);
            cores.push(core);
        }
        let control_audit = Arc::new(std::sync::Mutex::new(new_audit()));
        let journal_stop = Arc::new(AtomicBool::new(false));
        let journal_thread = journal.map(|j| {
            JournalWriter::start(
                j,
                audit_rx,
                health.clone().expect("a journal has a health"),
                journal_stop.clone(),
                WriterConfig {
                    checkpoint_interval: spec.audit_checkpoint_interval,
                    ..WriterConfig::default()
                },
            )
        });
        // The engine's tables in transparent huge pages (the core makes no
        // system call; the memory is asked for here).
        // (None when the engine is another process.)
        // The engine enforces the keys' notional limits (risk): it follows
        // the key generations through the shared limits feed.
        let mut agent = shm.is_none().then(|| {
            let engine = MatchingEngine::new_in(spec.engine_config.clone(), &crate::sys::HugePages);
            EngineAgent::new(engine, command_rx, event_tx).with_limits(shared.limits.clone())
        });

        // Stats: one writer per reactor, the engine's goes with the agent.
        let (mut stats_writers, mut engine_stats) = match &spec.stats_file {
            Some(path) => {
                let file = StatsFile::create(path, spec.reactors)
                    .map_err(|e| StartError::Stats(e.to_string()))?;
                let (reactors, engine) = file.into_writers();
                (reactors.into_iter().map(Some).collect(), Some(engine))
            }
            None => (Vec::new(), None),
        };

        let stop = Arc::new(AtomicBool::new(false));
        let engine_stop = Arc::new(AtomicBool::new(false));
        // Ready: the journal is open and read, the stats file made. Only now
        // does the kernel take connections (before, a client's Logon would
        // wait in the backlog for the whole start-up and could time out).
        for listener in &listeners {
            uring::start_listening(listener, LISTEN_BACKLOG).map_err(listen_error(local_addr))?;
        }
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
        let mut reactors = Vec::new();
        for (i, (listener, core)) in listeners.into_iter().zip(cores).enumerate() {
            let args = ReactorArgs {
                index: i as u16,
                listener,
                core,
                agent: if i == 0 && spec.engine == EnginePlacement::SharedWithReactor0 {
                    agent.take()
                } else {
                    None
                },
                uring_entries: spec.uring_entries,
                recv_buffers: spec.recv_buffers,
                recv_buffer_size: spec.recv_buffer_size,
                idle: spec.idle,
                spin_max: spec.spin_max,
                sqpoll: spec.sqpoll.then(|| uring::SqPoll {
                    cpu: spec.sqpoll_cores.get(i).copied(),
                }),
                stop: stop.clone(),
                stats: stats_writers.get_mut(i).and_then(Option::take),
                engine_stats: if i == 0 && spec.engine == EnginePlacement::SharedWithReactor0 {
                    engine_stats.take()
                } else {
                    None
                },
            };
            let pin_to = spec.reactor_cores.get(i).copied();
            let ready = ready_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("ordergate-reactor-{i}"))
                .spawn(move || {
                    if let Some(core) = pin_to
                        && let Err(e) = pin(core)
                    {
                        let _ = ready.send(Err(format!("affinity: {e}")));
                        return None;
                    }
                    worker::run(args, |r| {
                        let _ = ready.send(r);
                    })
                })
                .map_err(|e| StartError::Spec(format!("cannot spawn a reactor thread: {e}")))?;
            reactors.push(handle);
        }
        drop(ready_tx);

        let engine = match (spec.engine, agent) {
            (EnginePlacement::OwnThread { core }, Some(mut agent)) => {
                let engine_stop = engine_stop.clone();
                let idle_kind = spec.idle;
                let mut stats = engine_stats.take();
                Some(
                    std::thread::Builder::new()
                        .name("ordergate-engine".into())
                        .spawn(move || {
                            if let Some(core) = core
                                && let Err(e) = pin(core)
                            {
                                eprintln!("ordergate: engine {e}; running unpinned");
                            }
                            let mut idle = Idle::new(idle_kind);
                            let mut published: Nanos = 0;
                            loop {
                                let now = crate::clock::wall_ns();
                                let work = agent.do_work(now);
                                if let Some(stats) = &mut stats
                                    && now.saturating_sub(published) >= TIMER_TICK_NS
                                {
                                    stats.publish(now, &agent.counters);
                                    published = now;
                                }
                                if work == 0 && engine_stop.load(Ordering::Acquire) {
                                    if let Some(stats) = &mut stats {
                                        stats.publish(crate::clock::wall_ns(), &agent.counters);
                                    }
                                    break;
                                }
                                match idle.next(work) {
                                    IdleAction::Spin => std::hint::spin_loop(),
                                    IdleAction::Yield => std::thread::yield_now(),
                                    IdleAction::Park(d) => std::thread::sleep(d),
                                }
                            }
                            agent.counters.clone()
                        })
                        .map_err(|e| {
                            StartError::Spec(format!("cannot spawn the engine thread: {e}"))
                        })?,
                )
            }
            _ => None,
        };

        let mut gateway = Gateway {
            control: GatewayControl {
                shared: shared.clone(),
                reactors: spec.reactors,
                audit: control_audit,
            },
            local_addr,
            stop: StopHandle { stop },
            reactors,
            engine,
            engine_stop,
            journal: journal_thread,
            journal_stop,
            journal_health: health,
            uring_mode: String::new(),
            sha_ni,
            logon_floors,
            anchor_tag,
            previous_run_closed,
        };
        for _ in 0..spec.reactors {
            match ready_rx.recv() {
                Ok(Ok(mode)) => gateway.uring_mode = mode,
                Ok(Err(e)) => {
                    gateway.shutdown();
                    return Err(match e.strip_prefix("affinity: ") {
                        Some(why) => StartError::Affinity(why.to_string()),
                        None => StartError::Uring(e),
                    });
                }
                Err(_) => {
                    gateway.shutdown();
                    return Err(StartError::Uring(
                        "a reactor thread died during start-up".into(),
                    ));
                }
            }
        }
        Ok(gateway)
    }

    /// The address clients connect to (the port is resolved if `listen`
    /// asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The handle for reloads and revocations.
    pub fn control(&self) -> GatewayControl {
        self.control.clone()
    }

    /// Blocks until the gateway has stopped (after `StopHandle::stop`), and
    /// returns its figures.
    pub fn wait(self) -> GatewayReport {
        let mut reports = Vec::new();
        let mut engine_counters = EngineCounters::default();
        for h in self.reactors {
            if let Ok(Some(r)) = h.join() {
                if let Some(e) = &r.engine {
                    engine_counters = e.clone();
                }
                reports.push(r);
            }
        }
        self.engine_stop.store(true, Ordering::Release);
        if let Some(h) = self.engine
            && let Ok(c) = h.join()
        {
            engine_counters = c;
        }
        // Last: every producer has stopped, so the journal drains all of it.
        drop(self.control);
        self.journal_stop.store(true, Ordering::Release);
        let journal = self.journal.and_then(|h| h.join().ok());
        GatewayReport {
            reactors: reports,
            engine: engine_counters,
            journal,
        }
    }

    /// Stops and waits.
    pub fn shutdown(self) -> GatewayReport {
        self.stop.stop();
        self.wait()
    }
}
