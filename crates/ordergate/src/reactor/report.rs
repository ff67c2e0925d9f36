//! What a reactor reports: its io_uring driver's counters and, at
//! shutdown, all its figures. Here, under the reactor, so that the worker
//! that fills them imports nothing from the gateway above it (the gateway
//! re-exports both for its callers).

use hdrhistogram::Histogram;

use crate::engine::agent::EngineCounters;
use crate::session::counters::Counters;

/// What one reactor's io_uring driver did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UringCounters {
    /// Connections taken from the kernel, including those then refused.
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
    /// Turns that found the completion queue overflowed (the kernel's
    /// `IORING_SQ_CQ_OVERFLOW` flag: it kept the completions that did not
    /// fit, IORING_FEAT_NODROP, and flushes them at the next enter). An
    /// overflow also ends multishot receives, which are re-armed
    /// (`recv_rearms`).
    pub cq_overflow: u64,
    /// Completions whose generation no longer matched their slot.
    pub stale_completions: u64,
    /// Turns of the loop, and the busiest turn's duration.
    pub turns: u64,
    pub turn_ns_max: u64,
    /// Accepts that failed for want of a file descriptor (EMFILE: the
    /// process limit; ENFILE: the system's); accept paused with back-off.
    pub accept_emfile: u64,
    /// Accepts that failed otherwise (ECONNABORTED, ENOMEM, …); accept
    /// paused with back-off as well.
    pub accept_errors: u64,
    /// Receive buffers held for a paused connection instead of recycled
    /// (back-pressure: its session could not answer more yet).
    pub recv_parked: u64,
    /// Most receive buffers one connection held parked at once.
    pub recv_parked_max: u64,
    /// Buffers parked beyond `RECV_PARKED_PER_CONN` for one connection.
    pub recv_parked_over_cap: u64,
    // Kernel entries (issue 11): what the reactor costs beside its own
    // work. One integer increment where it calls io_uring_enter.
    /// `io_uring_enter` system calls the reactor thread made (submit,
    /// task work, waits, SQPOLL wake-ups): the `enters` of "enters per
    /// message".
    pub enters: u64,
    /// Of `enters`, the blocking turns: enters that submitted the turn's
    /// sends and waited for the next completion.
    pub enter_waits: u64,
    /// Blocking waits that ended with no completion but the timer tick's:
    /// time passing, not requests.
    pub enter_wait_timeouts: u64,
    /// Blocking waits that ended with only the turn's own sends'
    /// completions (and the tick's): the next request had not come within
    /// the tick, so the idle gap, not a request, cost this enter.
    pub enter_wait_own: u64,
    /// Idle periods whose work arrived while the reactor spun (the spin
    /// saved a sleep and a wake-up).
    pub spin_hits: u64,
    /// Spins that ran out their budget and blocked (wasted spinning).
    pub spin_misses: u64,
    /// The adaptive spin budget at the last publish, ns (0: the reactor
    /// blocks as soon as a turn finds nothing to do).
    pub spin_budget_ns: u64,
    /// Enters made only to wake a sleeping SQPOLL thread (0 while it polls).
    pub sqpoll_wakeups: u64,
    /// Completions the kernel lost: it could not even hold an overflowed
    /// one (its `cq_overflow` ring field, which counts only those). Must
    /// stay 0; anything else means a connection may wait for a completion
    /// that never comes.
    pub cq_dropped: u64,
}

/// One reactor's figures at shutdown.
#[derive(Clone, Debug)]
pub struct ReactorReport {
    pub counters: Counters,
    /// The engine agent's counters when it ran on this reactor's thread.
    pub engine: Option<EngineCounters>,
    pub uring: UringCounters,
    /// Receive completion → command published on the ring, per message, ns.
    pub recv_to_ring_ns: Histogram<u64>,
}
