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

use hdrhistogram::Histogram;

use crate::auth::keys::KeyTable;
use crate::constants::*;
use crate::engine::agent::EngineCounters;
use crate::engine::book::EngineConfig;
use crate::reactor::idle::IdleKind;
use crate::session::{Counters, GatewayConfig};

/// Where the engine agent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnginePlacement {
    /// Its own thread, pinned to `core` if given: big hosts.
    OwnThread { core: Option<usize> },
    /// On reactor 0's thread, after each of its turns, still through the
    /// rings: small hosts (2 cores), so nothing spins against anything else.
    SharedWithReactor0,
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
        }
    }
}

/// What one reactor's io_uring driver did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UringCounters {
    pub accepts: u64,
    /// Connections refused because every session slot was taken.
    pub accepts_refused_full: u64,
    pub recv_completions: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub send_completions: u64,
    /// Multishot receives re-armed (ENOBUFS or the kernel ended them).
    pub recv_rearms: u64,
    /// Receives that found no provided buffer free.
    pub recv_enobufs: u64,
    /// Times the submission queue was full and had to be flushed early.
    pub sq_full: u64,
    /// Times the completion queue overflowed (the kernel kept the
    /// completions; they were flushed by the next enter).
    pub cq_overflow: u64,
    /// Completions whose generation no longer matched their slot.
    pub stale_completions: u64,
    /// Turns of the loop, and the busiest turn's duration.
    pub turns: u64,
    pub turn_ns_max: u64,
}

/// One reactor's figures at shutdown.
#[derive(Clone, Debug)]
pub struct ReactorReport {
    pub counters: Counters,
    pub uring: UringCounters,
    /// Receive completion → command published on the ring, per message, ns.
    pub recv_to_ring_ns: Histogram<u64>,
}

/// The whole gateway's figures at shutdown.
#[derive(Clone, Debug)]
pub struct GatewayReport {
    pub reactors: Vec<ReactorReport>,
    pub engine: EngineCounters,
}

/// Why the gateway did not start. Each names what is missing or wrong.
#[derive(Debug)]
pub enum StartError {
    /// The spec is inconsistent (names the field and the problem).
    Spec(String),
    /// io_uring, or a feature of it the reactor needs, is unavailable.
    Uring(String),
    /// Binding or configuring the listener failed.
    Listen(std::io::Error),
    /// Pinning a thread to its core failed.
    Affinity(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Spec(s) => write!(f, "configuration: {s}"),
            StartError::Uring(s) => write!(f, "io_uring: {s}"),
            StartError::Listen(e) => write!(f, "listener: {e}"),
            StartError::Affinity(s) => write!(f, "cpu affinity: {s}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Stops a gateway from another thread (a signal handler's thread, a test).
#[derive(Clone, Debug)]
pub struct StopHandle {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StopHandle {
    /// Asks every reactor to stop accepting, send Terminate SHUTDOWN to every
    /// session, drain the rings and exit. Returns at once.
    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// A running gateway.
pub struct Gateway {
    local_addr: SocketAddr,
    stop: StopHandle,
}

impl Gateway {
    /// Checks the host (io_uring and its features; SHA-NI, warning if
    /// absent), binds the listeners and starts every thread. Returns once
    /// the gateway accepts connections.
    pub fn start(spec: GatewaySpec, keys: KeyTable) -> Result<Gateway, StartError> {
        let _ = (spec, keys);
        Err(StartError::Uring("the reactor is being written".into()))
    }

    /// The address clients connect to (the port is resolved if `listen`
    /// asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Blocks until the gateway has stopped (after `StopHandle::stop`), and
    /// returns its figures.
    pub fn wait(self) -> GatewayReport {
        unimplemented!("the reactor is being written")
    }

    /// Stops and waits.
    pub fn shutdown(self) -> GatewayReport {
        self.stop.stop();
        self.wait()
    }
}
