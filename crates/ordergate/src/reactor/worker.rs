//! One reactor thread: its io_uring, its listener, its provided buffers and
//! its [`ReactorCore`], pumped in a loop of turns.
//!
//! A turn:
//!
//! ```text
//!  1. now ← the clock (the turn's one read); switch key generation if a
//!     reload published one
//!  2. reap up to CQE_BATCH completions: accept · recv · send · close
//!        recv: bytes → core.on_bytes (sans-I/O) → buffer recycled at once,
//!              or parked if the session paused (back-pressure, below)
//!  3. engine agent's do_work (when it shares this thread)
//!  4. engine events → sessions (core.poll_events)
//!  5. every TIMER_TICK: session timers, releases, counters
//!  6. for each session touched this turn: a paused one is offered its
//!     parked bytes if it has room again; then one send of its waiting
//!     bytes, or the start of its close
//!  7. enter the kernel only if something is queued or task work is
//!     pending; otherwise the idle strategy decides (spin, yield, park)
//! ```
//!
//! **One clock read per turn.** A vDSO clock read costs ≈30 ns here, and a
//! request takes two turns (one whose enter runs the receive, one that
//! handles it and submits the answer): reading the wall clock, a turn-start
//! instant and a start and end around each receive cost ≈8 reads, a quarter
//! of a microsecond per request. Now each turn reads the monotonic clock
//! once ([`TurnClock`]); the wall clock is that plus an offset re-read every
//! timer tick, a turn's length is measured from its start to the next
//! turn's start (so a busy turn's submit is part of it), and the
//! receive→ring latency runs from the start of the turn that reaped the
//! bytes to the ring push (one read, and only when a command was pushed):
//! queueing behind the turn's earlier completions is counted, as it should
//! be.
//!
//! A connection's descriptor is closed only after its receive and its send
//! have completed (`shutdown` makes both complete promptly), and its slot is
//! reused only after the close completed and its session finished, so the
//! kernel never holds a buffer of a slot that has moved on.
//!
//! **Accept.** Each accepted connection goes through the core's admission
//! policy ([`ReactorCore::admit`], see `reactor::core`): a slot, a wait for
//! a slot being freed by an eviction (its descriptor is held, nothing is
//! armed on it, until a release hands it the slot), or a LogonReject written
//! straight to the socket before it is closed. A failed accept (EMFILE or
//! ENFILE when descriptors run out, or any other error) ends the multishot
//! accept; re-arming it at once would fail at once, every turn: a spin of
//! failing system calls with connections queued. Instead accept pauses,
//! counted (`accept_emfile`, `accept_errors`), for a back-off measured in
//! timer ticks (`ACCEPT_BACKOFF_TICKS_MIN`, doubling to
//! `ACCEPT_BACKOFF_TICKS_MAX`, reset by the next success); the loop only
//! re-arms once the pause is over, so meanwhile the reactor idles as usual
//! and its sessions run unaffected. Nothing sleeps.
//!
//! ## Back-pressure: parking input instead of cutting the client
//!
//! A session reads a frame only if its transmit buffer can hold the answer
//! to it, the first answer to every command it has at the engine, and a
//! Terminate (`Session::input_room_needed`). When it cannot, `on_bytes`
//! returns how many bytes it took, and the connection is *paused*:
//!
//! ```text
//!  recv completion ──▶ on_bytes takes k < len ──▶ park (bid, off + k, len − k)
//!                                                 cancel the multishot receive
//!  later completions for it (already queued) ──▶ park behind, in order
//!  send completes / engine answers ──▶ dirty ──▶ flush: wants_input?
//!        yes: offer the parked bytes in order, recycling each buffer taken
//!             whole; all taken → unpause, re-arm the receive
//!        no:  stay paused (TCP holds the client's further writes)
//! ```
//!
//! - A parked buffer stays out of the provided-buffer ring (the kernel
//!   cannot write it) until the session has taken all of it; it is then
//!   recycled. A connection that closes recycles its parked buffers at once
//!   (`start_close`), their bytes counted as discarded. Parked buffers are
//!   linked through per-buffer arrays (`Parked`), so parking never
//!   allocates and can never lose bytes: a connection holds at most the
//!   buffers the kernel filled before its receive was canceled.
//! - The receive is canceled when the pause begins, so a paused connection
//!   takes no more buffers from its neighbours; its `-ECANCELED` end is not
//!   a close. It is re-armed when the pause ends (or when that end arrives,
//!   if the pause ended first).
//! - Completions are matched to their connection by slot and generation as
//!   always: a stale one never reaches a new session, and its buffer goes
//!   straight back.
//! - `recv_parked` counts buffers parked, `recv_parked_max` is the most one
//!   connection held at once, and `recv_parked_over_cap` counts parkings
//!   beyond `RECV_PARKED_PER_CONN` (the fairness budget). A client that
//!   stops reading is cut by its session's stall timer
//!   (`TX_STALL_TIMEOUT_NS`), which frees its parked buffers.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use io_uring::{IoUring, cqueue, types};

use super::core::{Admission, Output, ParkedInput, ReactorCore, Sent, logon_reject_bytes};
use super::idle::{IdleKind, PARK_MAX, TurnIdle, Wait};
use super::uring::{self, BufRing, Op, SqPoll};
use crate::clock::wall_ns;
use crate::constants::{ACCEPT_BACKOFF_TICKS_MAX, ACCEPT_BACKOFF_TICKS_MIN};
use crate::constants::{RECV_PARKED_PER_CONN, SLOW_SEND_CREDIT};
use crate::engine::agent::EngineAgent;
use crate::engine::book::MatchingEngine;
use crate::engine::{Nanos, SessionId};
use crate::reactor::report::{ReactorReport, UringCounters};
use crate::telemetry::{DutyMeter, EngineStatsWriter, StatsWriter};
use crate::wire::codes::{LogonRejectReason, TerminateReason};

pub use crate::constants::CQE_BATCH;
/// How often session timers run (logon deadlines, heartbeats).
pub const TIMER_TICK: Duration = Duration::from_millis(1);
pub use crate::constants::LATENCY_MAX_NS;
pub use crate::constants::STOP_GRACE;
pub use crate::constants::STOP_HARD;
/// Provided-buffer group id of every reactor (each has its own ring).
const BGID: u16 = 0;
pub use crate::constants::REMOTE_ANSWER_HOLD;

#[derive(Clone, Copy, Debug)]
struct Conn {
    fd: RawFd,
    id: SessionId,
    recv_armed: bool,
    send_inflight: bool,
    /// `shutdown` issued; waiting for the receive and send to complete.
    closing: bool,
    close_submitted: bool,
    /// The session paused its input (back-pressure): received bytes are
    /// parked, not offered, until it has room.
    paused: bool,
    /// A cancel of the armed receive was submitted (its end is not a close).
    recv_cancel_sent: bool,
    /// Parked buffers, oldest first: a list through `Parked::next`.
    park_head: u16,
    park_tail: u16,
    parked: u16,
}

impl Conn {
    const EMPTY: Conn = Conn {
        fd: -1,
        id: SessionId(0),
        recv_armed: false,
        send_inflight: false,
        closing: false,
        close_submitted: false,
        paused: false,
        recv_cancel_sent: false,
        park_head: NO_BUF,
        park_tail: NO_BUF,
        parked: 0,
    };
}

/// End of a parked-buffer list (buffer ids are below 32768).
const NO_BUF: u16 = u16::MAX;

/// Received bytes held for paused connections, by buffer id: where the
/// untaken bytes start and how many, the turn that received them (for the
/// receive → ring latency), and the next parked buffer of the same
/// connection. Each buffer is parked by at most one connection at a time,
/// so one entry per buffer is all the room parking can ever need.
struct Parked {
    offset: Box<[u32]>,
    len: Box<[u32]>,
    received_mono: Box<[u64]>,
    next: Box<[u16]>,
}

impl Parked {
    fn new(buffers: u16) -> Parked {
        let n = buffers as usize;
        Parked {
            offset: vec![0; n].into_boxed_slice(),
            len: vec![0; n].into_boxed_slice(),
            received_mono: vec![0; n].into_boxed_slice(),
            next: vec![NO_BUF; n].into_boxed_slice(),
        }
    }
}

/// Removes the oldest parked buffer of `conn` and recycles it.
fn unpark_head(conn: &mut Conn, parked: &Parked, bufs: &mut BufRing) {
    let bid = conn.park_head;
    conn.park_head = parked.next[bid as usize];
    if conn.park_head == NO_BUF {
        conn.park_tail = NO_BUF;
    }
    conn.parked -= 1;
    bufs.recycle(bid);
}

/// One connection's parked buffers, as the core takes them
/// ([`ReactorCore::offer_parked`]).
struct ParkedOf<'a> {
    conn: &'a mut Conn,
    parked: &'a mut Parked,
    bufs: &'a mut BufRing,
    latency: &'a mut Histogram<u64>,
    clock: &'a TurnClock,
}

impl ParkedInput for ParkedOf<'_> {
    fn oldest(&self) -> Option<&[u8]> {
        let bid = self.conn.park_head;
        if bid == NO_BUF {
            return None;
        }
        let (offset, len) = (
            self.parked.offset[bid as usize],
            self.parked.len[bid as usize],
        );
        Some(&self.bufs.bytes(bid, (offset + len) as usize)[offset as usize..])
    }

    fn took(&mut self, n: usize, commands: u64) {
        let bid = self.conn.park_head as usize;
        if commands > 0 {
            let received = self.parked.received_mono[bid];
            let ns = (self.clock.mono() - received).clamp(1, LATENCY_MAX_NS);
            self.latency.saturating_record_n(ns, commands);
        }
        let n = n as u32;
        if n < self.parked.len[bid] {
            self.parked.offset[bid] += n;
            self.parked.len[bid] -= n;
        } else {
            unpark_head(self.conn, self.parked, self.bufs);
        }
    }
}

/// What a reactor thread is given.
pub struct ReactorArgs {
    pub index: u16,
    pub listener: TcpListener,
    pub core: ReactorCore,
    pub agent: Option<EngineAgent<MatchingEngine>>,
    pub uring_entries: u32,
    pub recv_buffers: u16,
    pub recv_buffer_size: u32,
    pub idle: IdleKind,
    /// The back-off reactor's longest spin before it blocks
    /// (`reactors.spin_max_us`).
    pub spin_max: Duration,
    /// A polling kernel thread for this reactor's ring (`reactors.sqpoll`).
    pub sqpoll: Option<SqPoll>,
    pub stop: Arc<AtomicBool>,
    /// This reactor's block of the stats file, if there is one.
    pub stats: Option<StatsWriter>,
    /// The engine's block, on the reactor whose thread runs the agent.
    pub engine_stats: Option<EngineStatsWriter>,
}

struct Worker {
    ring: IoUring,
    bufs: BufRing,
    parked: Parked,
    listener: TcpListener,
    accept_armed: bool,
    /// After a failed accept: no re-arm before this instant (`clock`'s
    /// monotonic ns), and the next pause, in timer ticks.
    accept_resume_at: u64,
    accept_backoff_ticks: u32,
    conns: Box<[Conn]>,
    core: ReactorCore,
    agent: Option<EngineAgent<MatchingEngine>>,
    uring: UringCounters,
    latency: Histogram<u64>,
    /// Operations submitted whose last completion has not arrived.
    ops_outstanding: u64,
    stopping: bool,
    cqes: Box<[(u64, i32, u32)]>,
    // Stats file (telemetry): published every tick.
    stats: Option<StatsWriter>,
    engine_stats: Option<EngineStatsWriter>,
    duty: DutyMeter,
    clock: TurnClock,
    /// The current turn's start on `clock`'s monotonic scale.
    turn_mono: u64,
    /// The ring has an SQPOLL thread: submissions and task work need no
    /// enter while it polls.
    sqpoll: bool,
    /// Entries pushed so far, and the count at the last SQPOLL wake-up: a
    /// poller woken for these entries is not woken again for them.
    pushed: u64,
    sqpoll_woken_at: u64,
    /// The enters made so far: a send whose completion is reaped after the
    /// turn that follows its enter did not complete as it was submitted.
    enter_seq: u32,
    /// Per slot: the `enter_seq` its last send was queued at, and how many
    /// sends must still complete at once before its sends are again
    /// counted as completing at once (`SLOW_SEND_CREDIT` after a late one).
    send_seq: Box<[u32]>,
    slow_sends: Box<[u8]>,
    /// The tick timeout (multishot) is in place.
    tick_armed: bool,
    /// The kernel takes a multishot timeout (6.4); cleared when it refuses.
    tick_ok: bool,
    /// Its interval, kept for the entry's lifetime.
    tick_ts: Box<types::Timespec>,
    /// The last enter was a blocking wait expecting `own` completions of
    /// its own submissions: the next reap says how it ended.
    waited: Option<u32>,
    /// One-shot operations (send, close, cancel: one completion each)
    /// queued since the last enter: the completions a blocking turn expects
    /// from its own submissions before the one it waits for.
    oneshot: u32,
    /// Nothing reaches this reactor that a completion does not announce:
    /// it runs the engine, for itself alone. Otherwise another thread may
    /// hand it commands or events with no wake-up, and a blocking turn is
    /// capped at [`PARK_MAX`].
    solo: bool,
    /// Until when (monotonic ns) an answer is owed by an engine on another
    /// thread: the reactor spins rather than blocks until then.
    hold_until: u64,
}

/// Builds the ring and buffers (on the reactor's own thread, as
/// SINGLE_ISSUER requires), reports readiness, then runs until stopped.
pub fn run(args: ReactorArgs, ready: impl FnOnce(Result<String, String>)) -> Option<ReactorReport> {
    let setup = (|| -> Result<(IoUring, BufRing, &'static str), String> {
        if let Some(reason) = uring::disabled_reason() {
            return Err(reason);
        }
        let (ring, mode) =
            uring::build_ring(args.uring_entries, args.sqpoll).map_err(|e| match args.sqpoll {
                Some(sq) => format!(
                    "cannot create an io_uring of {} entries with an SQPOLL thread{}: {e}",
                    args.uring_entries,
                    sq.cpu.map_or(String::new(), |c| format!(" on CPU {c}"))
                ),
                None => format!(
                    "cannot create an io_uring of {} entries: {e}",
                    args.uring_entries
                ),
            })?;
        uring::check_support(&ring)?;
        let bufs = BufRing::register(&ring, BGID, args.recv_buffers, args.recv_buffer_size)
            .map_err(|e| format!("cannot register the provided-buffer ring (Linux 5.19+): {e}"))?;
        Ok((ring, bufs, mode))
    })();
    let (ring, bufs, mode) = match setup {
        Ok(ok) => ok,
        Err(e) => {
            ready(Err(e));
            return None;
        }
    };
    let slots = args.core.capacity();
    let solo = args.agent.as_ref().is_some_and(|a| a.reactors() == 1);
    let sqpoll = ring.params().is_setup_sqpoll();
    let mut w = Worker {
        ring,
        bufs,
        parked: Parked::new(args.recv_buffers),
        listener: args.listener,
        accept_armed: false,
        accept_resume_at: 0,
        accept_backoff_ticks: ACCEPT_BACKOFF_TICKS_MIN,
        conns: vec![Conn::EMPTY; slots].into_boxed_slice(),
        core: args.core,
        agent: args.agent,
        uring: UringCounters::default(),
        latency: Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3).expect("valid bounds"),
        ops_outstanding: 0,
        stopping: false,
        cqes: vec![(0, 0, 0); CQE_BATCH].into_boxed_slice(),
        stats: args.stats,
        engine_stats: args.engine_stats,
        duty: DutyMeter::new(wall_ns()),
        clock: TurnClock::new(),
        turn_mono: 0,
        sqpoll,
        pushed: 0,
        sqpoll_woken_at: 0,
        enter_seq: 0,
        send_seq: vec![0; slots].into_boxed_slice(),
        slow_sends: vec![0; slots].into_boxed_slice(),
        tick_armed: false,
        // With SQPOLL the timeout would be the poller's to run; the tick
        // is for blocking waits, which a polling reactor rarely makes.
        tick_ok: !sqpoll,
        // Solo, the tick only runs the timers; otherwise it also bounds
        // how late a blocked reactor sees what another thread handed it.
        tick_ts: Box::new(types::Timespec::from(if solo {
            TIMER_TICK
        } else {
            PARK_MAX
        })),
        waited: None,
        oneshot: 0,
        solo,
        hold_until: 0,
    };
    ready(Ok(mode.to_string()));
    w.run(TurnIdle::new(args.idle, args.spin_max), &args.stop);
    if let Some(stats) = &mut w.stats {
        stats.refresh_latency();
    }
    w.publish_stats(wall_ns());
    let report = ReactorReport {
        counters: w.core.counters.clone(),
        engine: w.agent.as_ref().map(|a| a.counters.clone()),
        uring: w.uring.clone(),
        recv_to_ring_ns: w.latency.clone(),
    };
    w.teardown();
    Some(report)
}

/// The reactor's time: one monotonic read per turn, the wall clock derived
/// from it by an offset re-synchronised every timer tick (so an NTP step
/// reaches `now` within [`TIMER_TICK`]).
struct TurnClock {
    base: Instant,
    /// Wall clock minus monotonic, ns.
    offset: i128,
}

impl TurnClock {
    fn new() -> TurnClock {
        let mut c = TurnClock {
            base: Instant::now(),
            offset: 0,
        };
        c.resync();
        c
    }

    /// Monotonic ns since the reactor started: one vDSO read.
    #[inline]
    fn mono(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// The wall clock at monotonic time `mono`.
    #[inline]
    fn wall(&self, mono: u64) -> Nanos {
        (i128::from(mono) + self.offset).max(0) as Nanos
    }

    fn resync(&mut self) {
        let mono = self.mono();
        self.offset = i128::from(wall_ns()) - i128::from(mono);
    }
}

impl Worker {
    fn run(&mut self, mut idle: TurnIdle, stop: &AtomicBool) {
        let tick_ns = TIMER_TICK.as_nanos() as u64;
        let mut last_tick = self.clock.mono();
        let mut stop_at: Option<u64> = None;
        // The previous turn, if it did not block: its start and whether it
        // found work (its length runs to this turn's start, its submit
        // included). A blocking turn is measured before it enters.
        let mut prev: Option<(u64, bool)> = None;
        loop {
            let mono = self.clock.mono();
            self.turn_mono = mono;
            let now = self.clock.wall(mono);
            if let Some((start, busy)) = prev.take() {
                self.record_turn(mono - start, busy);
            }
            // A reload or revocation takes effect here, between two turns:
            // one atomic load when nothing changed.
            self.core.refresh_keys(now);
            if !self.stopping && stop.load(Ordering::Acquire) {
                self.begin_stop(now);
                stop_at = Some(mono);
            }
            if !self.stopping && !self.accept_armed && mono >= self.accept_resume_at {
                let e = uring::accept_multi(uring::raw(&self.listener));
                self.push(&e);
                self.accept_armed = true;
            }
            if !self.stopping && self.tick_ok && !self.tick_armed {
                let e = uring::tick_multishot(&self.tick_ts);
                self.push(&e);
                self.tick_armed = true;
            }

            let commands_before = self.core.counters.commands_out;
            let mut work = self.reap(now);
            if let Some(agent) = &mut self.agent {
                work += agent.do_work(now);
            }
            self.core.poll_link(mono, now);
            work += self.core.poll_events(now);
            let ticked = mono - last_tick >= tick_ns;
            if ticked {
                last_tick = mono;
                self.clock.resync();
                self.uring.spin_hits = idle.hits;
                self.uring.spin_misses = idle.misses;
                self.uring.spin_budget_ns = idle.budget_ns();
                self.tick(now);
            }
            self.flush(now);

            if let Some(at) = stop_at {
                if self.core.live_count() == 0 && self.ops_outstanding == 0 {
                    break;
                }
                let stopping_for = Duration::from_nanos(mono - at);
                if stopping_for >= STOP_GRACE + STOP_HARD {
                    break;
                }
                if stopping_for >= STOP_GRACE {
                    self.close_everything(now);
                }
            }

            // A command handed to an engine on another thread is answered
            // through a ring that wakes nobody: spin for the answer.
            if !self.solo && self.core.counters.commands_out != commands_before {
                self.hold_until = mono + REMOTE_ANSWER_HOLD.as_nanos() as u64;
            }
            let mut wait = idle.next(work, mono, mono < self.hold_until);
            if wait == Wait::Block && self.more_pending() {
                wait = Wait::Spin;
            }
            if wait == Wait::Block {
                // Its length ends here, not when the wait ends: one clock
                // read, only for a turn that did something.
                let turn_ns = if work > 0 || ticked {
                    self.clock.mono() - mono
                } else {
                    0
                };
                self.record_turn(turn_ns, work > 0);
            } else {
                prev = Some((mono, work > 0));
            }
            self.enter(wait, mono, last_tick + tick_ns);
        }
        self.uring.spin_hits = idle.hits;
        self.uring.spin_misses = idle.misses;
        self.uring.spin_budget_ns = idle.budget_ns();
        // Let the engine finish what the last sessions asked (their
        // cancel-on-disconnect) while this thread still runs it.
        if let Some(agent) = &mut self.agent {
            let now = wall_ns();
            for _ in 0..1024 {
                if agent.do_work(now) + self.core.poll_events(now) == 0 {
                    break;
                }
            }
        }
    }

    fn record_turn(&mut self, turn_ns: u64, busy: bool) {
        self.uring.turns += 1;
        self.uring.turn_ns_max = self.uring.turn_ns_max.max(turn_ns);
        self.duty.turn(turn_ns, busy);
    }

    /// Work a blocking turn would leave behind: completions beyond the
    /// turn's batch, commands or events beyond the rings' batches.
    fn more_pending(&mut self) -> bool {
        !self.ring.completion().is_empty()
            || self.agent.as_mut().is_some_and(|a| a.pending())
            || self.core.events_pending()
    }

    /// Ends a turn (`mono`: its start; `tick_at`: the next timer tick).
    ///
    /// - [`Wait::Spin`]: enters the kernel only when there is something to
    ///   submit, task work to run (a receive's bytes arrived) or
    ///   overflowed completions to flush; with SQPOLL only to wake a
    ///   sleeping poller or flush an overflow.
    /// - [`Wait::Block`]: the blocking turn. One enter submits the turn's
    ///   sends and sleeps until the next completion — the next request's
    ///   bytes, whose task work the same enter runs — or the tick's. It
    ///   waits for `1 + oneshot` completions, so that its own sends'
    ///   completions (posted as it submits them) do not end it; sends of
    ///   a slot whose last send completed late (a full socket: a slow
    ///   reader) are not counted, so that such a send cannot keep the
    ///   reactor asleep while another session's request waits. No timer is
    ///   armed per wait: the multishot tick's completion ends it at the
    ///   latest (a timer armed and cancelled around every sleep cost ~10 µs
    ///   of CPU per request on a VM, measured with `ordergate-bench compare`);
    ///   only a kernel without multishot timeouts (< 6.4) gets a timeout.
    fn enter(&mut self, wait: Wait, mono: u64, tick_at: u64) {
        let oneshot = std::mem::take(&mut self.oneshot);
        let mut timeout = tick_at.saturating_sub(mono);
        if !self.solo {
            timeout = timeout.min(PARK_MAX.as_nanos() as u64);
        }
        if wait == Wait::Spin || (!self.tick_armed && timeout == 0) {
            let (needed, wake) = {
                let sq = self.ring.submission();
                if self.sqpoll {
                    let wake =
                        !sq.is_empty() && self.pushed != self.sqpoll_woken_at && sq.need_wakeup();
                    (wake || sq.cq_overflow(), wake)
                } else {
                    (!sq.is_empty() || sq.taskrun() || sq.cq_overflow(), false)
                }
            };
            if needed {
                self.uring.enters += 1;
                self.enter_seq = self.enter_seq.wrapping_add(1);
                if wake {
                    self.uring.sqpoll_wakeups += 1;
                    self.sqpoll_woken_at = self.pushed;
                }
                let _ = self.ring.submit_and_wait(0);
            } else {
                std::hint::spin_loop();
            }
            return;
        }
        // With SQPOLL the poller submits on its own time: count no
        // completions in advance.
        let own = if self.sqpoll { 0 } else { oneshot };
        if self.sqpoll && self.ring.submission().need_wakeup() {
            self.uring.sqpoll_wakeups += 1;
        }
        self.uring.enters += 1;
        self.uring.enter_waits += 1;
        self.enter_seq = self.enter_seq.wrapping_add(1);
        self.waited = Some(own);
        let want = 1 + own as usize;
        if self.tick_armed {
            let _ = self.ring.submit_and_wait(want);
            return;
        }
        let ts = types::Timespec::from(Duration::from_nanos(timeout));
        let args = types::SubmitArgs::new().timespec(&ts);
        // ETIME when the timeout comes first: expected.
        let _ = self.ring.submitter().submit_with_args(want, &args);
    }

    fn push(&mut self, entry: &io_uring::squeue::Entry) {
        self.pushed += 1;
        if uring::is_oneshot(entry) {
            let counted = match uring::decode_user_data(entry.get_user_data()) {
                Some((Op::Send, slot, _)) => match self.send_seq.get_mut(slot as usize) {
                    Some(seq) => {
                        *seq = self.enter_seq;
                        self.slow_sends[slot as usize] == 0
                    }
                    None => true,
                },
                _ => true,
            };
            self.oneshot += u32::from(counted);
        }
        match uring::push(&mut self.ring, entry) {
            Ok(flushed) => {
                if flushed {
                    self.uring.sq_full += 1;
                    self.uring.enters += u64::from(!self.sqpoll);
                }
                self.ops_outstanding += 1;
            }
            Err(e) => panic!("io_uring submit failed: {e}"),
        }
    }

    /// Handles up to CQE_BATCH completions. Returns how many, the timer
    /// tick's not counted (it is time passing, not work).
    fn reap(&mut self, now: Nanos) -> usize {
        // Completions that did not fit wait in the kernel (NODROP) until
        // an enter flushes them: counted once per turn that sees it.
        if self.ring.submission().cq_overflow() {
            self.uring.cq_overflow += 1;
        }
        let mut n = 0;
        for cqe in self.ring.completion().take(CQE_BATCH) {
            self.cqes[n] = (cqe.user_data(), cqe.result(), cqe.flags());
            n += 1;
        }
        let mut ticks = 0;
        for i in 0..n {
            let (data, res, flags) = self.cqes[i];
            let Some((op, slot, generation)) = uring::decode_user_data(data) else {
                continue;
            };
            if !cqueue::more(flags) {
                self.ops_outstanding -= 1;
            }
            match op {
                Op::Accept => self.on_accept(now, res, flags),
                Op::Recv => self.on_recv(now, slot, generation, res, flags),
                Op::Send => {
                    // Reaped after the turn that follows its enter: it
                    // waited for room in the socket.
                    if let Some(seq) = self.send_seq.get(slot as usize) {
                        let late = self.enter_seq.wrapping_sub(*seq) > 1;
                        let credit = &mut self.slow_sends[slot as usize];
                        *credit = if late {
                            SLOW_SEND_CREDIT
                        } else {
                            credit.saturating_sub(1)
                        };
                    }
                    self.on_send(now, slot, generation, res)
                }
                Op::Close => self.on_close(now, slot, generation),
                Op::Cancel => {}
                Op::Tick => {
                    ticks += 1;
                    if !cqueue::more(flags) {
                        self.tick_armed = false;
                        // -ETIME is a tick; anything else (EINVAL: a
                        // kernel without multishot timeouts) ends them.
                        if res != -libc::ETIME && res != -libc::ECANCELED {
                            self.tick_ok = false;
                        }
                    }
                }
            }
        }
        let work = n - ticks;
        // How the last blocking wait ended: nothing but time (the tick or
        // its timeout), or only its own sends' completions.
        if let Some(own) = self.waited.take() {
            if work == 0 {
                self.uring.enter_wait_timeouts += 1;
            } else if work <= own as usize {
                self.uring.enter_wait_own += 1;
            }
        }
        work
    }

    fn conn(&mut self, slot: u16, generation: u32) -> Option<&mut Conn> {
        let c = self.conns.get_mut(slot as usize)?;
        (c.fd >= 0 && c.id.io_generation() == generation).then_some(c)
    }

    fn on_accept(&mut self, now: Nanos, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            self.accept_armed = false;
        }
        if res < 0 {
            self.on_accept_error(-res, more);
            return;
        }
        self.accept_backoff_ticks = ACCEPT_BACKOFF_TICKS_MIN;
        let fd = res;
        if self.stopping {
            uring::reply_and_close(fd, &[]);
            return;
        }
        self.uring.accepts += 1;
        let peer = uring::peer_addr(fd).map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let _ = uring::set_nodelay(fd);
        match self.core.admit(now, peer, fd) {
            Admission::Open(id) => self.open_conn(fd, id),
            Admission::Wait => {}
            Admission::Refuse(reason) => {
                if reason == LogonRejectReason::SESSION_LIMIT {
                    self.uring.accepts_refused_full += 1;
                }
                uring::reply_and_close(fd, &logon_reject_bytes(reason, now));
            }
        }
    }

    /// A failed accept (`errno`): counted, and accept paused for the
    /// back-off (module docs). A multishot accept the kernel kept armed is
    /// canceled, so that it too waits out the pause.
    #[cold]
    fn on_accept_error(&mut self, errno: i32, more: bool) {
        if errno == libc::ECANCELED {
            return; // begin_stop's cancel, or ours below
        }
        if errno == libc::EMFILE || errno == libc::ENFILE {
            self.uring.accept_emfile += 1;
        } else {
            self.uring.accept_errors += 1;
        }
        let ticks = self.accept_backoff_ticks;
        self.accept_resume_at = self.turn_mono + u64::from(ticks) * TIMER_TICK.as_nanos() as u64;
        self.accept_backoff_ticks = (ticks * 2).min(ACCEPT_BACKOFF_TICKS_MAX);
        if more {
            let e = uring::cancel(uring::user_data(Op::Accept, uring::NO_SLOT, 0));
            self.push(&e);
        }
    }

    /// A connection that has its slot: receive on it.
    fn open_conn(&mut self, fd: RawFd, id: SessionId) {
        self.conns[id.slot() as usize] = Conn {
            fd,
            id,
            recv_armed: true,
            ..Conn::EMPTY
        };
        let e = uring::recv_multi(fd, self.bufs.bgid(), id.slot(), id.io_generation());
        self.push(&e);
    }

    /// Hands freed slots to the connections waiting for them.
    fn admit_waiting(&mut self, now: Nanos) {
        while let Some((fd, id)) = self.core.next_waiting(now) {
            self.open_conn(fd, id);
        }
    }

    fn on_recv(&mut self, now: Nanos, slot: u16, generation: u32, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        let Some(conn) = self.conn(slot, generation) else {
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            self.uring.stale_completions += 1;
            return;
        };
        let canceled_by_us = conn.recv_cancel_sent;
        if !more {
            conn.recv_armed = false;
            conn.recv_cancel_sent = false;
        }
        let id = conn.id;
        let closing = conn.closing;
        let paused = conn.paused;
        self.uring.recv_completions += 1;
        if res > 0 {
            let bid = bid.expect("a receive with data names its buffer");
            self.uring.bytes_in += res as u64;
            if paused {
                // Behind bytes already parked: order is kept.
                self.park(slot, bid, 0, res as u32, self.turn_mono);
            } else {
                // (A closing connection is never paused: its session has
                // ended and takes, and discards, everything.)
                self.offer(now, slot, bid, 0, res as u32, self.turn_mono);
            }
            if !more && !closing && self.arm_recv(slot) {
                self.uring.recv_rearms += 1;
            }
        } else {
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            if res == -libc::ENOBUFS && !closing {
                self.uring.recv_enobufs += 1;
                if !more && self.arm_recv(slot) {
                    self.uring.recv_rearms += 1;
                }
            } else if res == -libc::ECANCELED && canceled_by_us && !closing {
                // Paused for back-pressure: re-armed when the pause ends
                // (now, if it already has).
                if self.arm_recv(slot) {
                    self.uring.recv_rearms += 1;
                }
            } else {
                // End of stream (0), reset, or cancellation: the session is over.
                self.core.on_closed(id, now);
                self.start_close(slot);
            }
        }
        self.maybe_submit_close(slot);
    }

    /// Offers `len` bytes of buffer `bid` from `offset` to the connection's
    /// session; recycles the buffer if it took them all, else parks the
    /// rest (at the front: nothing of this connection is parked before it)
    /// and pauses the connection.
    fn offer(&mut self, now: Nanos, slot: u16, bid: u16, offset: u32, len: u32, received: u64) {
        let taken = self.consume(now, slot, bid, offset, len, received);
        if taken == len {
            self.bufs.recycle(bid);
        } else {
            self.park(slot, bid, offset + taken, len - taken, received);
            self.pause(slot);
        }
    }

    /// Hands parked or fresh bytes to the session; returns how many it took.
    fn consume(
        &mut self,
        now: Nanos,
        slot: u16,
        bid: u16,
        offset: u32,
        len: u32,
        received: u64,
    ) -> u32 {
        let id = self.conns[slot as usize].id;
        let before = self.core.counters.commands_out;
        let end = (offset + len) as usize;
        let bytes = &self.bufs.bytes(bid, end)[offset as usize..];
        let taken = self.core.on_bytes(id, now, bytes) as u32;
        let published = self.core.counters.commands_out - before;
        if published > 0 {
            let ns = (self.clock.mono() - received).clamp(1, LATENCY_MAX_NS);
            self.latency.saturating_record_n(ns, published);
        }
        taken
    }

    /// Appends buffer `bid` (its bytes `offset .. offset + len`) to the
    /// connection's parked list.
    fn park(&mut self, slot: u16, bid: u16, offset: u32, len: u32, received: u64) {
        let p = &mut self.parked;
        p.offset[bid as usize] = offset;
        p.len[bid as usize] = len;
        p.received_mono[bid as usize] = received;
        p.next[bid as usize] = NO_BUF;
        let c = &mut self.conns[slot as usize];
        if c.park_tail == NO_BUF {
            c.park_head = bid;
        } else {
            p.next[c.park_tail as usize] = bid;
        }
        c.park_tail = bid;
        c.parked += 1;
        self.uring.recv_parked += 1;
        self.uring.recv_parked_max = self.uring.recv_parked_max.max(u64::from(c.parked));
        if c.parked as usize > RECV_PARKED_PER_CONN {
            self.uring.recv_parked_over_cap += 1;
        }
    }

    /// Removes the oldest parked buffer of the connection and recycles it.
    fn unpark_head(&mut self, slot: u16) {
        unpark_head(&mut self.conns[slot as usize], &self.parked, &mut self.bufs);
    }

    /// Stops reading a connection: its receive is canceled so that it
    /// takes no more buffers; what was already received is parked.
    fn pause(&mut self, slot: u16) {
        let c = &mut self.conns[slot as usize];
        c.paused = true;
        if c.recv_armed && !c.recv_cancel_sent {
            c.recv_cancel_sent = true;
            let target = uring::user_data(Op::Recv, slot, c.id.io_generation());
            let e = uring::cancel(target);
            self.push(&e);
        }
    }

    /// A paused connection whose session has room again: offers its parked
    /// bytes in order (`ReactorCore::offer_parked`); once all are taken,
    /// unpauses and receives again.
    fn resume(&mut self, now: Nanos, slot: u16) {
        let c = self.conns[slot as usize];
        if !c.paused || c.closing {
            return;
        }
        let mut parked = ParkedOf {
            conn: &mut self.conns[slot as usize],
            parked: &mut self.parked,
            bufs: &mut self.bufs,
            latency: &mut self.latency,
            clock: &self.clock,
        };
        if !self.core.offer_parked(c.id, now, &mut parked) {
            // Paused again (counted by the session): the rest stays parked.
            return;
        }
        self.conns[slot as usize].paused = false;
        // If the cancel's end has not come back yet, it re-arms instead.
        if self.arm_recv(slot) {
            self.uring.recv_rearms += 1;
        }
    }

    /// Recycles every parked buffer of a connection that is closing; their
    /// bytes will never be read.
    fn drop_parked(&mut self, slot: u16) {
        while self.conns[slot as usize].park_head != NO_BUF {
            let bid = self.conns[slot as usize].park_head;
            self.core.counters.bytes_discarded += u64::from(self.parked.len[bid as usize]);
            self.unpark_head(slot);
        }
        self.conns[slot as usize].paused = false;
    }

    /// Arms the connection's multishot receive unless one is armed, it is
    /// closing, or its input is paused. Returns whether it armed one.
    fn arm_recv(&mut self, slot: u16) -> bool {
        let c = self.conns[slot as usize];
        if c.recv_armed || c.closing || c.paused {
            return false;
        }
        self.conns[slot as usize].recv_armed = true;
        let e = uring::recv_multi(c.fd, self.bufs.bgid(), slot, c.id.io_generation());
        self.push(&e);
        true
    }

    fn on_send(&mut self, now: Nanos, slot: u16, generation: u32, res: i32) {
        let Some(conn) = self.conn(slot, generation) else {
            self.uring.stale_completions += 1;
            return;
        };
        conn.send_inflight = false;
        let id = conn.id;
        self.uring.send_completions += 1;
        match self.core.on_sent(id, now, usize::try_from(res).ok()) {
            Sent::Gone => return,
            Sent::Done => self.uring.bytes_out += res as u64,
            Sent::Failed => self.start_close(slot),
        }
        self.maybe_submit_close(slot);
    }

    fn on_close(&mut self, now: Nanos, slot: u16, generation: u32) {
        let Some(conn) = self.conn(slot, generation) else {
            self.uring.stale_completions += 1;
            return;
        };
        let id = conn.id;
        conn.fd = -1;
        // Not finished yet (a cancel-on-disconnect waiting for ring room):
        // the core releases it at a later tick.
        if self.core.on_close_completed(id, now) {
            self.conns[slot as usize] = Conn::EMPTY;
            self.admit_waiting(now);
        }
    }

    /// Stops reading and writing on a connection; its close follows once
    /// its operations have completed.
    fn start_close(&mut self, slot: u16) {
        let c = &mut self.conns[slot as usize];
        if c.fd < 0 || c.closing {
            return;
        }
        c.closing = true;
        uring::shutdown(c.fd);
        self.drop_parked(slot);
        self.maybe_submit_close(slot);
    }

    fn maybe_submit_close(&mut self, slot: u16) {
        let c = self.conns[slot as usize];
        if c.fd >= 0 && c.closing && !c.recv_armed && !c.send_inflight && !c.close_submitted {
            self.conns[slot as usize].close_submitted = true;
            let e = uring::close(c.fd, slot, c.id.io_generation());
            self.push(&e);
        }
    }

    /// For each touched session: parked input offered if it has room again,
    /// then one send, or the start of its close.
    fn flush(&mut self, now: Nanos) {
        while let Some(id) = self.core.pop_dirty() {
            let slot = id.slot();
            let conn = self.conns[slot as usize];
            if conn.fd < 0 || conn.id != id || conn.closing {
                continue;
            }
            if conn.paused {
                // May mark it dirty again: it is then looked at once more.
                self.resume(now, slot);
            }
            let send_inflight = self.conns[slot as usize].send_inflight;
            match self.core.output(id, send_inflight) {
                Output::Idle => {}
                Output::Close => self.start_close(slot),
                Output::Send(bytes) => {
                    let e = uring::send(
                        conn.fd,
                        bytes.as_ptr(),
                        bytes.len() as u32,
                        slot,
                        id.io_generation(),
                    );
                    self.conns[slot as usize].send_inflight = true;
                    self.push(&e);
                }
            }
        }
    }

    fn tick(&mut self, now: Nanos) {
        let conns = &mut self.conns;
        self.core
            .tick(now, |id| conns[id.slot() as usize] = Conn::EMPTY);
        self.admit_waiting(now);
        self.uring.cq_dropped = u64::from(self.ring.completion().overflow());
        self.publish_stats(now);
    }

    /// Stores this reactor's figures (and the engine's, if it runs here)
    /// into the stats file: plain stores, no allocation, no waiting.
    fn publish_stats(&mut self, now: Nanos) {
        let duty = self.duty.take(now);
        self.core.counters.journal = self.core.audit.journal_figures();
        if let Some(stats) = &mut self.stats {
            let live = self.core.live_count();
            stats.publish(
                now,
                &self.core.counters,
                &self.uring,
                live,
                &self.latency,
                duty,
            );
        }
        if let (Some(stats), Some(agent)) = (&mut self.engine_stats, &self.agent) {
            stats.publish(now, &agent.counters);
        }
    }

    fn begin_stop(&mut self, now: Nanos) {
        self.stopping = true;
        if self.accept_armed {
            let e = uring::cancel(uring::user_data(Op::Accept, uring::NO_SLOT, 0));
            self.push(&e);
        }
        while let Some(fd) = self.core.drain_waiting() {
            uring::reply_and_close(fd, &[]);
        }
        if self.tick_armed {
            let e = uring::cancel(uring::user_data(Op::Tick, uring::NO_SLOT, 0));
            self.push(&e);
        }
        let ids: Vec<SessionId> = self.core.live_ids().collect();
        for id in ids {
            let logged_on = self.core.session(id).is_some_and(|s| s.is_logged_on());
            if logged_on {
                self.core.terminate(id, now, TerminateReason::SHUTDOWN);
            } else if self.conns[id.slot() as usize].fd >= 0 {
                self.start_close(id.slot());
            }
        }
    }

    fn close_everything(&mut self, now: Nanos) {
        for slot in 0..self.conns.len() as u16 {
            if self.conns[slot as usize].fd >= 0 && !self.conns[slot as usize].closing {
                let id = self.conns[slot as usize].id;
                self.core.on_closed(id, now);
                self.start_close(slot);
            }
        }
    }

    fn teardown(self) {
        let Worker {
            ring,
            bufs,
            ops_outstanding,
            ..
        } = self;
        if ops_outstanding == 0 {
            let _ = ring.submitter().unregister_buf_ring(bufs.bgid());
            drop(ring);
            drop(bufs);
        } else {
            // The kernel may still write into the buffers: never free them.
            eprintln!(
                "ordergate: reactor stopped with {ops_outstanding} io_uring operations outstanding; \
                 leaking its receive buffers rather than freeing memory the kernel may write"
            );
            drop(ring);
            std::mem::forget(bufs);
        }
    }
}
