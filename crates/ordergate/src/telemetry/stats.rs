//! The stats file: every reactor's counters and the engine's, in a
//! memory-mapped file that the reactors write without locks and any other
//! process (`ordergate stat`, the Prometheus endpoint, a script) reads
//! without touching the hot path. Aeron's CnC counters file, in small.
//!
//! # Layout (version 1)
//!
//! Every field is little-endian (the only byte order ordergate builds for);
//! every offset below is from the start of the file.
//!
//! ```text
//!  0 ┌──────────────────────────── header (HEADER_SIZE = 128) ──────────────────────────┐
//!    │  0 magic "OGSTATS\0"  u64 │  8 version u32      │ 12 header_size u32 (= 128)     │
//!    │ 16 pid u32                │ 20 reactors u32     │ 24 reactor_values u32          │
//!    │ 28 engine_values u32      │ 32 start_ns u64 (Unix epoch, ns)                     │
//!    │ 40 labels_offset u64 (= 128)                    │ 48 label_count u32             │
//!    │ 52 label_size u32 (= 64)  │ 56 values_offset u64 (page aligned)                  │
//!    │ 64 block_stride u64 (multiple of 128)           │ 72 file_size u64               │
//!    │ 80..128 reserved, zero                                                           │
//!  128├──────────────────── label table: label_count × LABEL_SIZE (64) ─────────────────┤
//!    │  0 id u32 (stable)  │ 4 scope u16 (1 reactor, 2 engine) │ 6 kind u16 (1 counter,  │
//!    │  2 gauge)           │ 8 slot u32 (index in its block's values) │ 12 reserved u32  │
//!    │ 16 label [u8; 48], ASCII, NUL-padded: "messages_in", "order_rejects.THROTTLED"   │
//!    ├──────────────── zero padding to values_offset (a page boundary) ─────────────────┤
//!    │ block 0 = reactor 0     block_stride bytes                                       │
//!    │   0 seq u64          even: stable; odd: a publish is under way                   │
//!    │   8 publish_ns u64   wall clock of the last publish (0: never published)         │
//!    │  16 values[reactor_values] u64, in `slot` order                                  │
//!    │  … zero padding to block_stride                                                  │
//!    │ block 1 = reactor 1 …                                                            │
//!    │ block R = the engine (engine_values values, same block shape)                    │
//!    └──────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The label table names a counter once per scope, not once per reactor:
//! reactor `r`'s `order_rejects.THROTTLED` is the value at that label's
//! `slot` in block `r` (the reader and `ordergate stat` show it as
//! `reactor.0.order_rejects.THROTTLED`). Ids are stable across versions
//! (a counter that goes away leaves its id unused); slots may move, so a
//! reader finds a counter by id or by label, never by position.
//!
//! Blocks start on 128-byte boundaries and are padded to a multiple of 128
//! bytes, so no two reactors ever write the same cache line (or the
//! adjacent line the x86 spatial prefetcher pulls in with it).
//!
//! # Writing and reading
//!
//! Each block has exactly one writer (a [`StatsWriter`] or an
//! [`EngineStatsWriter`], handed out once by [`StatsFile::into_writers`]).
//! A publish is a sequence lock's write side: `seq` becomes odd, every
//! value is stored with `Relaxed`, `publish_ns` is stored, `seq` becomes
//! even with `Release`. On x86-64 that is plain stores: no lock, no
//! read-modify-write, nothing a reader can delay. A reader that wants one
//! publish's values together reads `seq`, the values, then `seq` again and
//! retries if it changed or was odd ([`StatsReader::snapshot`]); a reader
//! that reads single values (or gives up retrying) may see values of two
//! consecutive publishes mixed, each value itself whole. Blocks are
//! independent: reactor 0 and reactor 1 in one snapshot come from
//! different ticks.
//!
//! # Lifetime
//!
//! [`StatsFile::create`] writes the whole file under a temporary name and
//! renames it into place, so a reader never sees a half-written header, and
//! a reader that still maps an older file keeps reading that one. It
//! refuses a path whose file belongs to another live process. The file
//! stays after the gateway stops (with the final values); a reader then
//! refuses it as stale because its `pid` is gone.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use hdrhistogram::Histogram;
use memmap2::{MmapOptions, MmapRaw};

use crate::constants::REACTORS_MAX;
use crate::engine::Nanos;
use crate::engine::agent::EngineCounters;
use crate::reactor::report::UringCounters;
use crate::session::Counters;
use crate::wire::codes::{LogonRejectReason, RejectReason, TerminateReason};

/// "OGSTATS\0", little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"OGSTATS\0");
/// Bumped on any change a version-1 reader could misread.
pub const VERSION: u32 = 1;
pub const HEADER_SIZE: usize = 128;
pub const LABEL_SIZE: usize = 64;
/// Bytes of a label's text.
pub const LABEL_TEXT_SIZE: usize = 48;
/// Blocks are aligned and padded to this: two cache lines (the x86
/// adjacent-line prefetcher moves lines in pairs).
pub const BLOCK_ALIGN: usize = 128;
/// The values region starts on a page, so the header and labels (written
/// once) never share a page with values (written every tick).
pub const PAGE: usize = 4096;
/// `seq` and `publish_ns` before a block's values.
pub const BLOCK_HEADER_VALUES: usize = 2;
/// A reader refuses a file claiming more values per block than this
/// (defined in `constants` with its reason).
pub use crate::constants::STATS_BLOCK_VALUES_MAX as BLOCK_VALUES_MAX;
/// How often (in publishes, so ticks of ~1 ms) the receive → ring
/// percentiles are recomputed from the histogram. Counters are published
/// every tick (about 20 ns); the percentile walk costs 2–10 µs depending
/// on how far the latencies spread (`cargo bench --bench stats`), which a
/// reactor should not pay every millisecond: every 100 ms it is under
/// 0.01% of the reactor, and the published percentiles are at most
/// ~100 ms behind.
pub const LATENCY_EVERY_PUBLISHES: u32 = 100;
pub use crate::constants::SNAPSHOT_RETRIES;
/// File mode: the values show each reactor's trading volume, so only the
/// gateway's user reads them (the Prometheus endpoint, in-process, serves
/// them to whoever may reach its address).
pub const FILE_MODE: u32 = 0o600;

const _: () = assert!(
    cfg!(target_endian = "little"),
    "the stats file is little-endian"
);
const _: () = assert!(BLOCK_ALIGN.is_multiple_of(64) && PAGE.is_multiple_of(BLOCK_ALIGN));
const _: () = assert!(LABEL_SIZE == 16 + LABEL_TEXT_SIZE);

// Header field offsets (see the module docs' diagram).
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_HEADER_SIZE: usize = 12;
const OFF_PID: usize = 16;
const OFF_REACTORS: usize = 20;
const OFF_REACTOR_VALUES: usize = 24;
const OFF_ENGINE_VALUES: usize = 28;
const OFF_START_NS: usize = 32;
const OFF_LABELS_OFFSET: usize = 40;
const OFF_LABEL_COUNT: usize = 48;
const OFF_LABEL_SIZE: usize = 52;
const OFF_VALUES_OFFSET: usize = 56;
const OFF_BLOCK_STRIDE: usize = 64;
const OFF_FILE_SIZE: usize = 72;
const _: () = assert!(OFF_FILE_SIZE + 8 <= HEADER_SIZE);

/// Which block a label's slot indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Scope {
    /// One block per reactor.
    Reactor = 1,
    /// The engine's single block.
    Engine = 2,
}

/// What a value means over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    /// Only ever grows (since the gateway started): rates come from deltas.
    Counter = 1,
    /// A level or a figure of the last window: shown as is.
    Gauge = 2,
}

/// One counter as the code defines it: the label table is written from
/// these, and the Prometheus endpoint takes its help text from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterInfo {
    pub id: u32,
    pub scope: Scope,
    pub kind: Kind,
    /// The counter's family, e.g. `order_rejects`.
    pub family: &'static str,
    /// The member of the family (a reason name, a percentile), or "".
    pub detail: &'static str,
    pub help: &'static str,
}

impl CounterInfo {
    /// `family` or `family.detail`: the label in the file.
    pub fn label(&self) -> String {
        if self.detail.is_empty() {
            self.family.to_owned()
        } else {
            format!("{}.{}", self.family, self.detail)
        }
    }
}

/// Where the enumeration of a block's values goes: the label table at
/// creation, the mapped block at each publish. One enumeration for both,
/// so the labels and the stored values can never disagree on the order.
trait Sink {
    fn put(&mut self, info: CounterInfo, value: u64);
}

/// Receive → ring latency as published: since the gateway started, in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Messages measured.
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// The messages' latencies added up, as the histogram holds them (each
    /// at its bucket's middle value: within 0.1%): with `count`, the
    /// `_sum` and `_count` of the Prometheus summary.
    pub sum_ns: u64,
}

impl LatencySummary {
    /// Three walks of the histogram's buckets, each up to its percentile,
    /// and one over all of them for the sum; allocates nothing. `value_at_quantile` sums the buckets in chunks
    /// the compiler vectorizes, which makes three of them cheaper than the
    /// one-pass `value_at_quantiles` (7 µs against 11 µs over a spread to
    /// 2 ms: `cargo bench --bench stats`).
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            p50_ns: h.value_at_quantile(0.50),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            sum_ns: h
                .iter_recorded()
                .map(|v| {
                    u128::from(h.median_equivalent(v.value_iterated_to()))
                        * u128::from(v.count_at_value())
                })
                .sum::<u128>()
                .min(u128::from(u64::MAX)) as u64,
        }
    }
}

/// A reactor's loop over one window (between two publishes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DutyCycle {
    /// Wall time the window covered (0: unknown, the first window).
    pub window_ns: u64,
    /// The longest turn in the window.
    pub turn_ns_max: u64,
    /// Time spent in turns that did work (completions, engine commands,
    /// events).
    pub busy_ns: u64,
    /// Turns in the window.
    pub turns: u64,
}

impl DutyCycle {
    /// `busy_ns / window_ns` in parts per million (0 when the window is
    /// unknown; at most 1 000 000).
    pub fn busy_ppm(&self) -> u64 {
        if self.window_ns == 0 {
            return 0;
        }
        (self.busy_ns.min(self.window_ns) as u128 * 1_000_000 / self.window_ns as u128) as u64
    }
}

/// Measures the reactor loop between two publishes: `turn` after each
/// turn, `take` at each publish. Three adds and a compare per turn.
#[derive(Clone, Copy, Debug, Default)]
pub struct DutyMeter {
    since_ns: Nanos,
    turn_ns_max: u64,
    busy_ns: u64,
    turns: u64,
}

impl DutyMeter {
    /// A meter whose first window starts at `now`.
    pub fn new(now: Nanos) -> DutyMeter {
        DutyMeter {
            since_ns: now,
            ..DutyMeter::default()
        }
    }

    /// One turn took `turn_ns`; `busy` if it found work.
    #[inline]
    pub fn turn(&mut self, turn_ns: u64, busy: bool) {
        self.turns += 1;
        self.turn_ns_max = self.turn_ns_max.max(turn_ns);
        if busy {
            self.busy_ns += turn_ns;
        }
    }

    /// The window that ends at `now` (wall clock), and a new one begins.
    pub fn take(&mut self, now: Nanos) -> DutyCycle {
        let window = DutyCycle {
            window_ns: if self.since_ns == 0 {
                0
            } else {
                now.saturating_sub(self.since_ns)
            },
            turn_ns_max: self.turn_ns_max,
            busy_ns: self.busy_ns,
            turns: self.turns,
        };
        *self = DutyMeter::new(now);
        window
    }
}

/// What one reactor publishes, borrowed from its worker.
struct ReactorSample<'a> {
    counters: &'a Counters,
    uring: &'a UringCounters,
    sessions_live: u64,
    latency: LatencySummary,
    duty: DutyCycle,
}

/// Every value of a reactor block, in slot order. Destructures each
/// counters struct completely, so a field added to one of them does not
/// compile until it is published here.
#[inline(always)]
fn visit_reactor(sink: &mut impl Sink, s: &ReactorSample<'_>) {
    use Kind::{Counter, Gauge};
    let info = |id, kind, family, detail, help| CounterInfo {
        id,
        scope: Scope::Reactor,
        kind,
        family,
        detail,
        help,
    };
    let Counters {
        messages_in,
        frames_out,
        logons_accepted,
        logon_rejects,
        order_rejects,
        terminates,
        commands_out,
        ring_full,
        logon_timeouts,
        slow_consumers,
        events_undeliverable,
        bytes_discarded,
        revocations,
        lockouts,
        address_cap_refusals,
        pending_evictions,
        accepts_waited,
        reload_ended,
        slots_retired,
        logons_locked_out,
        logons_throttled_address,
        logons_throttled_key,
        logons_nonce_share_full,
        lockout_evictions,
        logon_rate_evictions,
        journal,
        heartbeats_throttled,
        ring_reserve_refusals,
        input_paused,
        tx_abandoned,
        admin_peers_refused,
        admin_requests_refused,
        admin_probes,
        key_sweeps,
        key_sweep_canceled,
        key_sweeps_deferred,
        logons_stale,
        engine_unavailable,
        engine_lost,
        link_bad_records,
    } = s.counters;
    #[rustfmt::skip]
    let scalars = [
        (1, *messages_in, "messages_in", "Well-formed, authentic, in-sequence frames after logon."),
        (2, *frames_out, "frames_out", "Frames sent, all kinds."),
        (3, *logons_accepted, "logons_accepted", "Logons accepted."),
        (4, *commands_out, "commands_out", "Orders, cancels, replaces and mass cancels handed to the engine."),
        (5, *ring_full, "ring_full", "Commands refused ENGINE_BUSY because the command ring was full."),
        (6, *logon_timeouts, "logon_timeouts", "Connections closed at the logon deadline."),
        (7, *slow_consumers, "slow_consumers", "Sessions ended because their client did not read (Terminate SLOW_CONSUMER)."),
        (8, *events_undeliverable, "events_undeliverable", "Engine events for sessions that had ended."),
        (9, *bytes_discarded, "bytes_discarded", "Bytes received after a session ended."),
        (10, *revocations, "revocations", "Sessions ended because their key was revoked, disabled or removed."),
        (11, *lockouts, "lockouts", "Addresses locked out by failed logons."),
        (14, *address_cap_refusals, "address_cap_refusals", "Connections refused THROTTLED: their address already held pending_logons_per_address connections not logged on."),
        (15, *pending_evictions, "pending_evictions", "Connections not logged on evicted (SESSION_LIMIT) to give their slot to a newer one."),
        (16, *accepts_waited, "accepts_waited", "New connections that waited for a slot being freed instead of being refused."),
        (70, *reload_ended, "reload_ended", "Live sessions a keys reload ended (Terminate KEY_CHANGED)."),
        (71, *slots_retired, "slots_retired", "Session slots retired after using every generation."),
        (20, *logons_locked_out, "logons_locked_out", "Logons refused THROTTLED: their (client, key id) is locked out after failed logons; no HMAC computed."),
        (21, *logons_throttled_address, "logons_throttled_address", "Logons refused THROTTLED by the per-address logon rate; no HMAC computed."),
        (22, *logons_throttled_key, "logons_throttled_key", "Logons refused THROTTLED by the key's logon rate."),
        (23, *logons_nonce_share_full, "logons_nonce_share_full", "Logons refused THROTTLED: the key's nonce cache had no free slot."),
        (24, *lockout_evictions, "lockout_evictions", "Failed-logon records forgotten to make room in the lockout table."),
        (25, *logon_rate_evictions, "logon_rate_evictions", "Per-address logon rate cells still in debt forgotten to make room."),
        (30, *heartbeats_throttled, "heartbeats_throttled", "Heartbeats beyond the session's heartbeat allowance (count toward THROTTLE_BREACH)."),
        (31, *ring_reserve_refusals, "ring_reserve_refusals", "New orders and replaces refused ENGINE_BUSY to keep the command ring's cancel reserve."),
        (40, *input_paused, "input_paused", "Times a session stopped reading because its transmit buffer could not hold the answers it would owe."),
        (41, *tx_abandoned, "tx_abandoned", "Ended sessions closed with bytes unsent because no send took any for the stall timeout."),
        (50, *admin_peers_refused, "admin_peers_refused", "Admin connections refused: the peer's uid is neither the gateway's nor root (reactor 0 only)."),
        (51, *admin_requests_refused, "admin_requests_refused", "Admin requests answered error: unknown key, already revoked, bad request (reactor 0 only)."),
        (52, *admin_probes, "admin_probes", "Admin connections closed without a request: another serve checking this one is alive (reactor 0 only)."),
        // 12 and 13 (orphans_forgotten, orphans_swept) are retired: kills
        // sweep by key in the engine. Their ids stay reserved.
        (60, *key_sweeps, "key_sweeps", "CancelForKey commands sent: one per key that stopped being usable, per reactor."),
        (61, *key_sweep_canceled, "key_sweep_canceled", "Resting orders canceled by this reactor's key sweeps."),
        (62, *key_sweeps_deferred, "key_sweeps_deferred", "Times a key sweep found the command ring full and waited a tick."),
        (72, *logons_stale, "logons_stale", "Logons refused STALE_LOGON: request time not later than the key's replay floor (its last logon before a restart, from the audit journal)."),
        (90, *engine_unavailable, "engine_unavailable", "Orders, cancels, replaces and mass cancels answered ENGINE_UNAVAILABLE by the gateway: its shared-memory engine was judged dead."),
        (91, *engine_lost, "engine_lost", "1 once this reactor judged its shared-memory engine dead (no beat for the liveness timeout, stopped, or a corrupt ring)."),
        (92, *link_bad_records, "link_bad_records", "Events from the engine process refused by the record check (bad enum or reserved byte)."),
    ];
    for (id, value, family, help) in scalars {
        sink.put(info(id, Counter, family, "", help), value);
    }
    for r in LogonRejectReason::ALL {
        let help = "LogonReject sent, by reason.";
        let value = logon_rejects[r.wire() as usize];
        sink.put(
            info(
                100 + r.wire() as u32,
                Counter,
                "logon_rejects",
                r.name(),
                help,
            ),
            value,
        );
    }
    for r in RejectReason::ALL {
        let help = "OrderRejected sent, by reason.";
        let value = order_rejects[r.wire() as usize];
        sink.put(
            info(
                200 + r.wire() as u32,
                Counter,
                "order_rejects",
                r.name(),
                help,
            ),
            value,
        );
    }
    for r in TerminateReason::ALL {
        let help = "Terminate sent, by reason.";
        let value = terminates[r.wire() as usize];
        sink.put(
            info(300 + r.wire() as u32, Counter, "terminates", r.name(), help),
            value,
        );
    }

    let UringCounters {
        accepts,
        accepts_refused_full,
        recv_completions,
        bytes_in,
        bytes_out,
        send_completions,
        recv_rearms,
        recv_enobufs,
        sq_full,
        cq_overflow,
        stale_completions,
        turns,
        turn_ns_max,
        accept_emfile,
        accept_errors,
        recv_parked,
        recv_parked_max,
        recv_parked_over_cap,
        enters,
        enter_waits,
        enter_wait_timeouts,
        enter_wait_own,
        spin_hits,
        spin_misses,
        spin_budget_ns,
        sqpoll_wakeups,
        cq_dropped,
    } = s.uring;
    #[rustfmt::skip]
    let uring = [
        (400, Counter, *accepts, "accepts", "Connections taken from the kernel, including those then refused."),
        (401, Counter, *accepts_refused_full, "accepts_refused_full", "Connections refused because every session slot was taken."),
        (402, Counter, *recv_completions, "recv_completions", "Receive completions."),
        (403, Counter, *bytes_in, "bytes_in", "Bytes received."),
        (404, Counter, *bytes_out, "bytes_out", "Bytes sent."),
        (405, Counter, *send_completions, "send_completions", "Send completions."),
        (406, Counter, *recv_rearms, "recv_rearms", "Multishot receives re-armed."),
        (407, Counter, *recv_enobufs, "recv_enobufs", "Receives that found no provided buffer free."),
        (408, Counter, *sq_full, "sq_full", "Times the submission queue was full and flushed early."),
        (409, Counter, *cq_overflow, "cq_overflow", "Turns that found the completion queue overflowed (completions kept by the kernel, flushed at the next enter)."),
        (410, Counter, *stale_completions, "stale_completions", "Completions for a slot that had moved on."),
        (411, Counter, *turns, "turns", "Turns of the reactor loop."),
        (412, Gauge, *turn_ns_max, "turn_ns_max", "Longest reactor turn since start, ns."),
        (413, Counter, *accept_emfile, "accept_emfile", "Accepts that failed for want of a descriptor (EMFILE/ENFILE); accept paused with back-off."),
        (414, Counter, *accept_errors, "accept_errors", "Accepts that failed otherwise; accept paused with back-off."),
        (42, Counter, *recv_parked, "recv_parked", "Receive buffers held for a paused connection instead of recycled."),
        (43, Gauge, *recv_parked_max, "recv_parked_max", "Most receive buffers one connection held parked at once, since start."),
        (44, Counter, *recv_parked_over_cap, "recv_parked_over_cap", "Buffers parked beyond RECV_PARKED_PER_CONN for one connection."),
        (420, Counter, *enters, "enters", "io_uring_enter system calls the reactor thread made."),
        (421, Counter, *enter_waits, "enter_waits", "Blocking turns: enters that submitted the turn's sends and waited for the next completion."),
        (422, Counter, *enter_wait_timeouts, "enter_wait_timeouts", "Blocking waits that ended with no completion but the timer tick's."),
        (423, Counter, *enter_wait_own, "enter_wait_own", "Blocking waits that ended with only the turn's own sends' completions and the tick's."),
        (424, Counter, *spin_hits, "spin_hits", "Idle periods whose work arrived while the reactor spun."),
        (425, Counter, *spin_misses, "spin_misses", "Spins that ran out their budget and blocked."),
        (426, Gauge, *spin_budget_ns, "spin_budget_ns", "The adaptive spin budget before blocking, ns."),
        (427, Counter, *sqpoll_wakeups, "sqpoll_wakeups", "Enters made only to wake a sleeping SQPOLL thread."),
        (80, Counter, *cq_dropped, "cq_dropped", "Completions the kernel lost (could not hold an overflowed one); must stay 0."),
    ];
    for (id, kind, value, family, help) in uring {
        sink.put(info(id, kind, family, "", help), value);
    }

    let l = &s.latency;
    let d = &s.duty;
    #[rustfmt::skip]
    let gauges = [
        (500, Gauge, s.sessions_live, "sessions_live", "", "Session slots in use."),
        (501, Gauge, d.turn_ns_max, "duty_turn_ns_max", "", "Longest reactor turn in the last publish window, ns."),
        (502, Gauge, d.busy_ppm(), "duty_busy_ppm", "", "Share of the last publish window spent in turns that did work, ppm."),
        (503, Gauge, d.window_ns, "duty_window_ns", "", "Length of the last publish window, ns."),
        (510, Counter, l.count, "recv_to_ring", "", "Messages whose receive to command-ring latency was measured."),
        (511, Gauge, l.p50_ns, "recv_to_ring_ns", "p50", "Receive completion to command on the ring since start, ns, by percentile."),
        (512, Gauge, l.p99_ns, "recv_to_ring_ns", "p99", "Receive completion to command on the ring since start, ns, by percentile."),
        (513, Gauge, l.p999_ns, "recv_to_ring_ns", "p999", "Receive completion to command on the ring since start, ns, by percentile."),
        (514, Gauge, l.max_ns, "recv_to_ring_ns_max", "", "Longest receive completion to command on the ring since start, ns."),
        (515, Counter, l.sum_ns, "recv_to_ring_ns_sum", "", "Receive completion to command on the ring, every measured message added up, ns."),
    ];
    for (id, kind, value, family, detail, help) in gauges {
        sink.put(info(id, kind, family, detail, help), value);
    }

    // The audit journal's figures: one journal, the same values in every
    // reactor's block (docs/STATS.md, docs/JOURNAL.md).
    let crate::journal::JournalFigures {
        records,
        segment_records,
        capacity,
        segment,
        rollovers,
        rollover_failures,
        high_water,
        aggregates,
        preauth_events,
        preauth_overflow,
        preauth_unjournaled,
        lost,
        failed,
        checkpoints,
    } = *journal;
    #[rustfmt::skip]
    let journal = [
        (600, Gauge, records, "journal_records", "Records in the audit journal, every segment (the same in every reactor's block)."),
        (601, Gauge, segment_records, "journal_segment_records", "Records in the audit journal's current segment."),
        (602, Gauge, capacity, "journal_capacity", "Record slots of the audit journal's current segment."),
        (603, Gauge, segment, "journal_segment", "Number of the audit journal's current segment (0: the first file)."),
        (604, Counter, rollovers, "journal_rollovers", "Audit journal segments started because one was full."),
        (605, Counter, rollover_failures, "journal_rollover_failures", "Audit journal segments that could not be created (the journal then fails closed)."),
        (606, Counter, high_water, "journal_high_water", "Times an audit journal segment crossed its high-water mark (90%)."),
        (607, Counter, aggregates, "journal_aggregates", "PreAuthAggregate records written."),
        (608, Counter, preauth_events, "journal_preauth_events", "Pre-auth events (refused logons, logon timeouts) folded into aggregates."),
        (609, Counter, preauth_overflow, "journal_preauth_overflow", "Pre-auth events folded into other-addresses aggregates because the address table was full."),
        (610, Counter, preauth_unjournaled, "journal_preauth_unjournaled", "Pre-auth events not journaled: rollover off and the segment past its high-water mark."),
        (611, Counter, lost, "journal_lost_events", "Audit events not journaled because the journal had failed."),
        (612, Gauge, failed, "journal_failed", "0 while the audit journal takes records, else why not: 1 full, 2 write error, 3 flush error, 4 rollover failed."),
        (613, Counter, checkpoints, "journal_checkpoints", "Audit journal checkpoints written under the anchor key (0 without audit_anchor_key_file)."),
    ];
    for (id, kind, value, family, help) in journal {
        sink.put(info(id, kind, family, "", help), value);
    }
}

/// Every value of the engine block, in slot order.
#[inline(always)]
fn visit_engine(sink: &mut impl Sink, c: &EngineCounters) {
    let EngineCounters {
        commands,
        events,
        blocked_turns,
        misrouted,
        price_rejects,
        notional_rejects,
        open_notional_rejects,
        key_sweeps,
        key_sweep_canceled,
        limits_installed,
    } = c;
    #[rustfmt::skip]
    let all = [
        (1000, *commands, "commands", "Commands the engine took from the rings."),
        (1001, *events, "events", "Events the engine routed back to the reactors."),
        (1002, *blocked_turns, "blocked_turns", "Engine turns that found an event ring too full to finish a command."),
        (1003, *misrouted, "misrouted", "Commands naming a reactor that does not exist (dropped)."),
        (1004, *price_rejects, "price_rejects", "Orders refused PRICE_OUT_OF_BAND: outside the instrument's collar, or a price <= 0."),
        (1005, *notional_rejects, "notional_rejects", "Orders refused RISK_MAX_NOTIONAL at the prices they would fill at."),
        (1006, *open_notional_rejects, "open_notional_rejects", "Orders refused RISK_MAX_OPEN_NOTIONAL: the key's resting notional would pass its limit."),
        (1007, *key_sweeps, "key_sweeps", "Key sweeps (CancelForKey) finished: revocations, kills, removed and expired keys."),
        (1008, *key_sweep_canceled, "key_sweep_canceled", "Resting orders canceled by key sweeps."),
        (1009, *limits_installed, "limits_installed", "Sets of per-key limits installed in the engine (start-up and reloads)."),
    ];
    for (id, value, family, help) in all {
        let info = CounterInfo {
            id,
            scope: Scope::Engine,
            kind: Kind::Counter,
            family,
            detail: "",
            help,
        };
        sink.put(info, value);
    }
}

struct Collect(Vec<CounterInfo>);

impl Sink for Collect {
    fn put(&mut self, info: CounterInfo, _value: u64) {
        self.0.push(info);
    }
}

/// Every counter of a reactor block then of the engine block, in slot order
/// within each.
pub fn catalog() -> Vec<CounterInfo> {
    let counters = Counters::default();
    let uring = UringCounters::default();
    let mut all = Collect(Vec::new());
    visit_reactor(
        &mut all,
        &ReactorSample {
            counters: &counters,
            uring: &uring,
            sessions_live: 0,
            latency: LatencySummary::default(),
            duty: DutyCycle::default(),
        },
    );
    visit_engine(&mut all, &EngineCounters::default());
    all.0
}

/// The shape of a file: where each part is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    reactors: usize,
    reactor_values: usize,
    engine_values: usize,
    label_count: usize,
    values_offset: usize,
    block_stride: usize,
    file_size: usize,
}

impl Shape {
    fn new(reactors: usize, reactor_values: usize, engine_values: usize) -> Shape {
        let label_count = reactor_values + engine_values;
        let values_offset = (HEADER_SIZE + label_count * LABEL_SIZE).next_multiple_of(PAGE);
        let widest = BLOCK_HEADER_VALUES + reactor_values.max(engine_values);
        let block_stride = (widest * 8).next_multiple_of(BLOCK_ALIGN);
        Shape {
            reactors,
            reactor_values,
            engine_values,
            label_count,
            values_offset,
            block_stride,
            file_size: values_offset + (reactors + 1) * block_stride,
        }
    }

    fn block_offset(&self, block: usize) -> usize {
        self.values_offset + block * self.block_stride
    }
}

/// Why a stats file could not be created or read. Each names the file.
#[derive(Debug)]
pub enum StatsError {
    /// The file (or its directory) cannot be opened, created or mapped.
    Io(PathBuf, std::io::Error),
    /// Not a stats file: too short, or the wrong magic.
    NotStats(PathBuf),
    /// A stats file of another layout version.
    Version { path: PathBuf, found: u32 },
    /// The header contradicts itself or the file's length.
    Corrupt(PathBuf, String),
    /// Written by a process that is no longer running.
    Stale { path: PathBuf, pid: u32 },
    /// Another running process writes this file.
    InUse { path: PathBuf, pid: u32 },
}

impl std::fmt::Display for StatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatsError::Io(p, e) => write!(f, "stats file {}: {e}", p.display()),
            StatsError::NotStats(p) => write!(
                f,
                "{} is not an ordergate stats file (no \"OGSTATS\" header)",
                p.display()
            ),
            StatsError::Version { path, found } => write!(
                f,
                "stats file {} has layout version {found}; this ordergate reads version {VERSION}",
                path.display()
            ),
            StatsError::Corrupt(p, why) => {
                write!(f, "stats file {} is corrupt: {why}", p.display())
            }
            StatsError::Stale { path, pid } => write!(
                f,
                "stats file {} is stale: the gateway that wrote it (pid {pid}) is no longer running",
                path.display()
            ),
            StatsError::InUse { path, pid } => write!(
                f,
                "stats file {} belongs to a running gateway (pid {pid}); give this one another path",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StatsError {}

/// Whether process `pid` exists (signal 0 checks without sending). A pid
/// reused by an unrelated process reads as alive: the reader cannot tell.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists and
    // may be signalled; it has no other effect and takes no pointers.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A freshly created stats file, before its blocks are handed out.
pub struct StatsFile {
    map: Arc<MmapRaw>,
    shape: Shape,
    path: PathBuf,
}

impl StatsFile {
    /// Creates (or replaces) the stats file at `path` for `reactors`
    /// reactors, every value zero, and maps it. Start-up only: allocates,
    /// writes the file, maps it with its pages populated so the reactors'
    /// first stores do not fault.
    ///
    /// # Errors
    ///
    /// The file belongs to another live process ([`StatsError::InUse`]), or
    /// it cannot be written or mapped.
    pub fn create(path: &Path, reactors: usize) -> Result<StatsFile, StatsError> {
        assert!(
            (1..=REACTORS_MAX).contains(&reactors),
            "1..={REACTORS_MAX} reactors"
        );
        let io = |e| StatsError::Io(path.to_owned(), e);
        let ours = std::process::id();
        if let Ok(existing) = StatsReader::open_any(path)
            && existing.pid != ours
            && pid_alive(existing.pid)
        {
            return Err(StatsError::InUse {
                path: path.to_owned(),
                pid: existing.pid,
            });
        }

        let catalog = catalog();
        let reactor_values = catalog.iter().filter(|c| c.scope == Scope::Reactor).count();
        let engine_values = catalog.len() - reactor_values;
        let shape = Shape::new(reactors, reactor_values, engine_values);

        let mut bytes = vec![0u8; shape.file_size];
        let mut put = |at: usize, v: &[u8]| bytes[at..at + v.len()].copy_from_slice(v);
        put(OFF_MAGIC, &MAGIC.to_le_bytes());
        put(OFF_VERSION, &VERSION.to_le_bytes());
        put(OFF_HEADER_SIZE, &(HEADER_SIZE as u32).to_le_bytes());
        put(OFF_PID, &ours.to_le_bytes());
        put(OFF_REACTORS, &(reactors as u32).to_le_bytes());
        put(OFF_REACTOR_VALUES, &(reactor_values as u32).to_le_bytes());
        put(OFF_ENGINE_VALUES, &(engine_values as u32).to_le_bytes());
        put(OFF_START_NS, &crate::clock::wall_ns().to_le_bytes());
        put(OFF_LABELS_OFFSET, &(HEADER_SIZE as u64).to_le_bytes());
        put(OFF_LABEL_COUNT, &(shape.label_count as u32).to_le_bytes());
        put(OFF_LABEL_SIZE, &(LABEL_SIZE as u32).to_le_bytes());
        put(
            OFF_VALUES_OFFSET,
            &(shape.values_offset as u64).to_le_bytes(),
        );
        put(OFF_BLOCK_STRIDE, &(shape.block_stride as u64).to_le_bytes());
        put(OFF_FILE_SIZE, &(shape.file_size as u64).to_le_bytes());
        let (mut reactor_slot, mut engine_slot) = (0u32, 0u32);
        for (i, c) in catalog.iter().enumerate() {
            let at = HEADER_SIZE + i * LABEL_SIZE;
            let slot = match c.scope {
                Scope::Reactor => &mut reactor_slot,
                Scope::Engine => &mut engine_slot,
            };
            let label = c.label();
            assert!(label.len() <= LABEL_TEXT_SIZE, "label {label} too long");
            put(at, &c.id.to_le_bytes());
            put(at + 4, &(c.scope as u16).to_le_bytes());
            put(at + 6, &(c.kind as u16).to_le_bytes());
            put(at + 8, &slot.to_le_bytes());
            put(at + 16, label.as_bytes());
            *slot += 1;
        }

        // Written whole under a temporary name, then renamed into place.
        let file_name = path
            .file_name()
            .ok_or_else(|| io(std::io::Error::other("not a file path")))?;
        let mut temp_name = file_name.to_owned();
        temp_name.push(format!(".tmp-{ours}"));
        let temp = path.with_file_name(temp_name);
        let write = || -> std::io::Result<File> {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(FILE_MODE)
                .open(&temp)?;
            file.write_all(&bytes)?;
            std::fs::rename(&temp, path)?;
            Ok(file)
        };
        let file = write().map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            io(e)
        })?;
        let map = MmapOptions::new()
            .len(shape.file_size)
            .populate()
            .map_raw(&file)
            .map_err(io)?;
        Ok(StatsFile {
            map: Arc::new(map),
            shape,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One writer per reactor block (index = reactor) and the engine's.
    /// Each is the only writer of its block; the mapping lives until the
    /// last of them is dropped.
    pub fn into_writers(self) -> (Vec<StatsWriter>, EngineStatsWriter) {
        let reactors = (0..self.shape.reactors)
            .map(|r| StatsWriter {
                block: Block::new(&self.map, &self.shape, r, self.shape.reactor_values),
                latency: LatencySummary::default(),
                latency_count: 0,
                since_latency: LATENCY_EVERY_PUBLISHES,
            })
            .collect();
        let engine = EngineStatsWriter {
            block: Block::new(
                &self.map,
                &self.shape,
                self.shape.reactors,
                self.shape.engine_values,
            ),
        };
        (reactors, engine)
    }
}

/// One block of the mapped file and the only right to write it.
struct Block {
    map: Arc<MmapRaw>,
    /// Byte offset of the block (of its `seq`) in the mapping.
    offset: usize,
    /// Values after `seq` and `publish_ns`.
    values: usize,
    /// The last `seq` stored (even); kept here so a publish never loads it.
    seq: u64,
}

impl Block {
    fn new(map: &Arc<MmapRaw>, shape: &Shape, block: usize, values: usize) -> Block {
        let offset = shape.block_offset(block);
        assert!(offset + (BLOCK_HEADER_VALUES + values) * 8 <= map.len());
        Block {
            map: map.clone(),
            offset,
            values,
            seq: 0,
        }
    }

    /// The block's words: `seq`, `publish_ns`, then the values.
    #[inline]
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: `offset` is a multiple of 8 from a page-aligned mapping,
        // and `new` checked that the block's words lie inside the mapping,
        // which `self.map` keeps alive for the borrow. The mapping is shared
        // memory read by other processes, so it is only ever accessed
        // through atomics here, never through plain references.
        unsafe {
            let base = self.map.as_mut_ptr().add(self.offset).cast::<AtomicU64>();
            std::slice::from_raw_parts(base, BLOCK_HEADER_VALUES + self.values)
        }
    }

    /// A publish: `seq` odd, the values, `publish_ns`, `seq` even.
    #[inline]
    fn write(&mut self, now: Nanos, fill: impl FnOnce(&mut Store<'_>)) {
        let seq = self.seq;
        let words = self.words();
        words[0].store(seq + 1, Ordering::Relaxed);
        // Orders the odd `seq` before every value store below, for a reader
        // that sees one of them (its acquire fence pairs with this).
        fence(Ordering::Release);
        let mut store = Store {
            values: &words[BLOCK_HEADER_VALUES..],
            next: 0,
        };
        fill(&mut store);
        debug_assert_eq!(store.next, store.values.len(), "every slot published");
        words[1].store(now, Ordering::Relaxed);
        words[0].store(seq + 2, Ordering::Release);
        self.seq = seq + 2;
    }
}

struct Store<'a> {
    values: &'a [AtomicU64],
    next: usize,
}

impl Sink for Store<'_> {
    #[inline(always)]
    fn put(&mut self, _info: CounterInfo, value: u64) {
        if let Some(slot) = self.values.get(self.next) {
            slot.store(value, Ordering::Relaxed);
        }
        self.next += 1;
    }
}

/// The writer of one reactor's block. `Send`: it moves to its reactor's
/// thread, which alone publishes through it.
pub struct StatsWriter {
    block: Block,
    /// The percentiles last computed, published until the next computation.
    latency: LatencySummary,
    /// The histogram's count when they were computed.
    latency_count: u64,
    /// Publishes since they were computed.
    since_latency: u32,
}

impl StatsWriter {
    /// Publishes the reactor's figures. Called by its own thread every
    /// timer tick; allocates nothing and never waits. The latency
    /// percentiles are recomputed when new messages were measured and
    /// [`LATENCY_EVERY_PUBLISHES`] publishes have passed since the last
    /// computation (or at once after [`StatsWriter::refresh_latency`]).
    #[inline]
    pub fn publish(
        &mut self,
        now: Nanos,
        counters: &Counters,
        uring: &UringCounters,
        sessions_live: usize,
        recv_to_ring: &Histogram<u64>,
        duty: DutyCycle,
    ) {
        self.since_latency = self.since_latency.saturating_add(1);
        if recv_to_ring.len() != self.latency_count && self.since_latency >= LATENCY_EVERY_PUBLISHES
        {
            self.latency = LatencySummary::of(recv_to_ring);
            self.latency_count = recv_to_ring.len();
            self.since_latency = 0;
        }
        let sample = ReactorSample {
            counters,
            uring,
            sessions_live: sessions_live as u64,
            latency: self.latency,
            duty,
        };
        self.block.write(now, |store| visit_reactor(store, &sample));
    }

    /// Makes the next publish recompute the percentiles if anything new was
    /// measured (the last publish, at stop).
    pub fn refresh_latency(&mut self) {
        self.since_latency = LATENCY_EVERY_PUBLISHES;
    }
}

/// The writer of the engine's block: moves to whichever thread runs the
/// engine agent (reactor 0's or its own).
pub struct EngineStatsWriter {
    block: Block,
}

impl EngineStatsWriter {
    /// Publishes the engine's counters; allocates nothing, never waits.
    #[inline]
    pub fn publish(&mut self, now: Nanos, counters: &EngineCounters) {
        self.block.write(now, |store| visit_engine(store, counters));
    }
}

// ---------------------------------------------------------------------------
// Reading

/// One entry of a file's label table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub id: u32,
    pub scope: Scope,
    pub kind: Kind,
    pub slot: u32,
    /// `family` or `family.detail`.
    pub name: String,
}

impl Label {
    /// The family: the name before the first dot.
    pub fn family(&self) -> &str {
        self.name.split_once('.').map_or(&self.name, |(f, _)| f)
    }

    /// The member of the family after the first dot, if any.
    pub fn detail(&self) -> Option<&str> {
        self.name.split_once('.').map(|(_, d)| d)
    }
}

/// One block as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSnapshot {
    /// Wall clock of the publish these values come from (0: never).
    pub publish_ns: u64,
    /// The values are those of one publish (the sequence did not move).
    pub consistent: bool,
    /// In slot order.
    pub values: Vec<u64>,
}

/// Every block of a file at one moment (each block consistent on its own).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub pid: u32,
    pub start_ns: u64,
    /// Wall clock when the snapshot was taken.
    pub taken_ns: u64,
    pub labels: Arc<[Label]>,
    pub reactors: Vec<BlockSnapshot>,
    pub engine: BlockSnapshot,
}

impl Snapshot {
    /// Reactor `reactor`'s value of `label` (`"order_rejects.THROTTLED"`).
    pub fn reactor(&self, reactor: usize, label: &str) -> Option<u64> {
        let block = self.reactors.get(reactor)?;
        self.find(Scope::Reactor, label, block)
    }

    /// The engine's value of `label` (`"commands"`).
    pub fn engine(&self, label: &str) -> Option<u64> {
        self.find(Scope::Engine, label, &self.engine)
    }

    /// Sum of `label` over every reactor.
    pub fn total(&self, label: &str) -> Option<u64> {
        (0..self.reactors.len())
            .map(|r| self.reactor(r, label))
            .sum()
    }

    fn find(&self, scope: Scope, label: &str, block: &BlockSnapshot) -> Option<u64> {
        let l = self
            .labels
            .iter()
            .find(|l| l.scope == scope && l.name == label)?;
        block.values.get(l.slot as usize).copied()
    }

    /// Every value with its label and block: `(Some(reactor) | None for
    /// the engine, label, value)`, reactors first, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Option<usize>, &Label, u64)> + '_ {
        let reactors = self.reactors.iter().enumerate().flat_map(move |(r, b)| {
            self.labels
                .iter()
                .filter(|l| l.scope == Scope::Reactor)
                .map(move |l| (Some(r), l, b.values[l.slot as usize]))
        });
        let engine = self
            .labels
            .iter()
            .filter(|l| l.scope == Scope::Engine)
            .map(move |l| (None, l, self.engine.values[l.slot as usize]));
        reactors.chain(engine)
    }
}

/// A stats file opened read-only, from any process.
pub struct StatsReader {
    map: memmap2::Mmap,
    path: PathBuf,
    pub pid: u32,
    pub start_ns: u64,
    labels: Arc<[Label]>,
    shape: Shape,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl StatsReader {
    /// Opens and checks the file at `path`, and that the gateway that
    /// writes it is running.
    ///
    /// # Errors
    ///
    /// Missing or unreadable, not a stats file, another version, an
    /// inconsistent header, or stale (its pid is gone): each says which.
    pub fn open(path: &Path) -> Result<StatsReader, StatsError> {
        let reader = StatsReader::open_any(path)?;
        if !pid_alive(reader.pid) {
            return Err(StatsError::Stale {
                path: path.to_owned(),
                pid: reader.pid,
            });
        }
        Ok(reader)
    }

    /// As [`StatsReader::open`], without the check that the writer runs
    /// (to read the final values of a stopped gateway).
    ///
    /// # Errors
    ///
    /// As `open`, except `Stale`.
    pub fn open_any(path: &Path) -> Result<StatsReader, StatsError> {
        let io = |e| StatsError::Io(path.to_owned(), e);
        let corrupt = |why: String| StatsError::Corrupt(path.to_owned(), why);
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len() as usize;
        if len < HEADER_SIZE {
            return Err(StatsError::NotStats(path.to_owned()));
        }
        // SAFETY: a read-only shared mapping. The gateway keeps storing to
        // the values region while it is mapped; those bytes are read only
        // through atomic loads (`snapshot`), never as plain references. The
        // header and labels are written before the file is renamed into
        // place and never change after. The file is replaced by rename,
        // never truncated, so the mapping cannot lose its pages.
        let map = unsafe { MmapOptions::new().len(len).map(&file) }.map_err(io)?;
        let h = &map[..HEADER_SIZE];
        if u64_at(h, OFF_MAGIC) != MAGIC {
            return Err(StatsError::NotStats(path.to_owned()));
        }
        let version = u32_at(h, OFF_VERSION);
        if version != VERSION {
            return Err(StatsError::Version {
                path: path.to_owned(),
                found: version,
            });
        }
        let field = |name: &str, found: u64, want: u64| {
            if found == want {
                Ok(())
            } else {
                Err(corrupt(format!("{name} is {found}, not {want}")))
            }
        };
        field(
            "header_size",
            u32_at(h, OFF_HEADER_SIZE).into(),
            HEADER_SIZE as u64,
        )?;
        field(
            "labels_offset",
            u64_at(h, OFF_LABELS_OFFSET),
            HEADER_SIZE as u64,
        )?;
        field(
            "label_size",
            u32_at(h, OFF_LABEL_SIZE).into(),
            LABEL_SIZE as u64,
        )?;
        let reactors = u32_at(h, OFF_REACTORS) as usize;
        let reactor_values = u32_at(h, OFF_REACTOR_VALUES) as usize;
        let engine_values = u32_at(h, OFF_ENGINE_VALUES) as usize;
        if !(1..=REACTORS_MAX).contains(&reactors) {
            return Err(corrupt(format!("{reactors} reactors")));
        }
        if reactor_values > BLOCK_VALUES_MAX || engine_values > BLOCK_VALUES_MAX {
            return Err(corrupt("more values per block than any version has".into()));
        }
        let shape = Shape::new(reactors, reactor_values, engine_values);
        field(
            "label_count",
            u32_at(h, OFF_LABEL_COUNT).into(),
            shape.label_count as u64,
        )?;
        field(
            "values_offset",
            u64_at(h, OFF_VALUES_OFFSET),
            shape.values_offset as u64,
        )?;
        field(
            "block_stride",
            u64_at(h, OFF_BLOCK_STRIDE),
            shape.block_stride as u64,
        )?;
        field(
            "file_size",
            u64_at(h, OFF_FILE_SIZE),
            shape.file_size as u64,
        )?;
        field("the file's length", len as u64, shape.file_size as u64)?;

        let mut labels = Vec::with_capacity(shape.label_count);
        for i in 0..shape.label_count {
            let e = &map[HEADER_SIZE + i * LABEL_SIZE..][..LABEL_SIZE];
            let bad = |why: &str| corrupt(format!("label {i}: {why}"));
            let scope = match u32_at(e, 4) & 0xffff {
                1 => Scope::Reactor,
                2 => Scope::Engine,
                _ => return Err(bad("unknown scope")),
            };
            let kind = match u32_at(e, 4) >> 16 {
                1 => Kind::Counter,
                2 => Kind::Gauge,
                _ => return Err(bad("unknown kind")),
            };
            let slot = u32_at(e, 8);
            let values = match scope {
                Scope::Reactor => reactor_values,
                Scope::Engine => engine_values,
            };
            if slot as usize >= values {
                return Err(bad("slot outside its block"));
            }
            let text = &e[16..];
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            let name = std::str::from_utf8(&text[..end])
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| bad("label is not printable ASCII"))?;
            labels.push(Label {
                id: u32_at(e, 0),
                scope,
                kind,
                slot,
                name: name.to_owned(),
            });
        }
        Ok(StatsReader {
            pid: u32_at(h, OFF_PID),
            start_ns: u64_at(h, OFF_START_NS),
            map,
            path: path.to_owned(),
            labels: labels.into(),
            shape,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn reactors(&self) -> usize {
        self.shape.reactors
    }

    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Whether the gateway that writes the file still runs.
    pub fn writer_alive(&self) -> bool {
        pid_alive(self.pid)
    }

    fn words(&self, block: usize, values: usize) -> &[AtomicU64] {
        let offset = self.shape.block_offset(block);
        let bytes = &self.map[offset..offset + (BLOCK_HEADER_VALUES + values) * 8];
        // SAFETY: the range was bounds-checked by the slice above and starts
        // 8-byte aligned (page-aligned mapping, offsets multiples of 128).
        // The memory is read-only to this process, which only loads from it:
        // `core::sync::atomic` allows atomic loads of read-only memory for
        // lock-free sizes ("Atomic accesses to read-only memory"). Another
        // process stores to it concurrently, hence atomics rather than
        // plain reads.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<AtomicU64>(), bytes.len() / 8) }
    }

    fn read_block(&self, block: usize, values: usize) -> BlockSnapshot {
        let words = self.words(block, values);
        let mut out = vec![0u64; values];
        let mut consistent = false;
        let mut publish_ns = 0;
        for attempt in 0..=SNAPSHOT_RETRIES {
            let before = words[0].load(Ordering::Acquire);
            for (v, w) in out.iter_mut().zip(&words[BLOCK_HEADER_VALUES..]) {
                *v = w.load(Ordering::Relaxed);
            }
            publish_ns = words[1].load(Ordering::Relaxed);
            // Pairs with the writer's release fence: if any value above came
            // from a publish that began after `before`, `after` sees its
            // odd sequence.
            fence(Ordering::Acquire);
            let after = words[0].load(Ordering::Relaxed);
            if before == after && before.is_multiple_of(2) {
                consistent = true;
                break;
            }
            if attempt % 8 == 7 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        BlockSnapshot {
            publish_ns,
            consistent,
            values: out,
        }
    }

    /// Every block, each read consistently (retried while its writer is
    /// mid-publish, up to [`SNAPSHOT_RETRIES`] times).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            pid: self.pid,
            start_ns: self.start_ns,
            taken_ns: crate::clock::wall_ns(),
            labels: self.labels.clone(),
            reactors: (0..self.shape.reactors)
                .map(|r| self.read_block(r, self.shape.reactor_values))
                .collect(),
            engine: self.read_block(self.shape.reactors, self.shape.engine_values),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ordergate-stats-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(tag)
    }

    #[test]
    fn ids_and_labels_are_unique_and_fit() {
        let all = catalog();
        for (i, a) in all.iter().enumerate() {
            assert!(a.label().len() <= LABEL_TEXT_SIZE, "{}", a.label());
            assert!(!a.family.contains('.'), "{}", a.family);
            for b in &all[i + 1..] {
                assert_ne!(a.id, b.id, "{} and {}", a.label(), b.label());
                assert!(
                    a.scope != b.scope || a.label() != b.label(),
                    "{}",
                    a.label()
                );
            }
        }
        // Every reason code of the counters' arrays has a name.
        let c = Counters::default();
        assert_eq!(c.logon_rejects.len(), LogonRejectReason::ALL.len() + 1);
        assert_eq!(c.order_rejects.len(), RejectReason::ALL.len() + 1);
        assert_eq!(c.terminates.len(), TerminateReason::ALL.len());
    }

    #[test]
    fn values_written_are_read_back_by_label() {
        let path = temp("roundtrip");
        let file = StatsFile::create(&path, 2).unwrap();
        let (mut writers, mut engine) = file.into_writers();
        let mut counters = Counters {
            messages_in: 7,
            commands_out: 5,
            ..Counters::default()
        };
        counters.order_rejects[RejectReason::THROTTLED.wire() as usize] = 3;
        counters.terminates[TerminateReason::NONE.wire() as usize] = 1;
        let uring = UringCounters {
            bytes_in: 640,
            turn_ns_max: 9,
            ..UringCounters::default()
        };
        let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
        for ns in 1..=1000 {
            h.record(ns * 10).unwrap();
        }
        let duty = DutyCycle {
            window_ns: 1_000_000,
            turn_ns_max: 4_000,
            busy_ns: 250_000,
            turns: 10,
        };
        writers[1].publish(42, &counters, &uring, 3, &h, duty);
        engine.publish(
            43,
            &EngineCounters {
                commands: 5,
                ..EngineCounters::default()
            },
        );

        let reader = StatsReader::open(&path).unwrap();
        assert_eq!(reader.reactors(), 2);
        let s = reader.snapshot();
        assert_eq!(s.reactor(0, "messages_in"), Some(0));
        assert_eq!(s.reactors[0].publish_ns, 0);
        assert_eq!(s.reactor(1, "messages_in"), Some(7));
        assert_eq!(s.reactor(1, "order_rejects.THROTTLED"), Some(3));
        assert_eq!(s.reactor(1, "terminates.NONE"), Some(1));
        assert_eq!(s.reactor(1, "bytes_in"), Some(640));
        assert_eq!(s.reactor(1, "sessions_live"), Some(3));
        assert_eq!(s.reactor(1, "duty_busy_ppm"), Some(250_000));
        assert_eq!(s.reactor(1, "duty_turn_ns_max"), Some(4_000));
        assert_eq!(s.reactor(1, "recv_to_ring"), Some(1000));
        assert_eq!(
            s.reactor(1, "recv_to_ring_ns.p50"),
            Some(h.value_at_quantile(0.5))
        );
        assert_eq!(
            s.reactor(1, "recv_to_ring_ns.p999"),
            Some(h.value_at_quantile(0.999))
        );
        assert_eq!(s.reactor(1, "recv_to_ring_ns_max"), Some(h.max()));
        assert_eq!(s.reactors[1].publish_ns, 42);
        assert!(s.reactors[1].consistent);
        assert_eq!(s.engine("commands"), Some(5));
        assert_eq!(s.engine.publish_ns, 43);
        assert_eq!(s.total("messages_in"), Some(7));
        assert_eq!(s.reactor(1, "no_such"), None);
        // Two reactor blocks and the engine's.
        let reactor_labels = s
            .labels
            .iter()
            .filter(|l| l.scope == Scope::Reactor)
            .count();
        assert_eq!(
            s.iter().count(),
            2 * reactor_labels + (s.labels.len() - reactor_labels)
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn latency_is_recomputed_only_every_so_many_publishes() {
        let path = temp("cadence");
        let (mut writers, _) = StatsFile::create(&path, 1).unwrap().into_writers();
        let w = &mut writers[0];
        let c = Counters::default();
        let u = UringCounters::default();
        let mut h = Histogram::<u64>::new(3).unwrap();
        h.record(100).unwrap();
        w.publish(1, &c, &u, 0, &h, DutyCycle::default());
        let reader = StatsReader::open(&path).unwrap();
        assert_eq!(reader.snapshot().reactor(0, "recv_to_ring"), Some(1));
        h.record(200).unwrap();
        for _ in 1..LATENCY_EVERY_PUBLISHES {
            w.publish(2, &c, &u, 0, &h, DutyCycle::default());
        }
        assert_eq!(reader.snapshot().reactor(0, "recv_to_ring"), Some(1));
        w.publish(3, &c, &u, 0, &h, DutyCycle::default());
        assert_eq!(reader.snapshot().reactor(0, "recv_to_ring"), Some(2));
        h.record(300).unwrap();
        w.refresh_latency();
        w.publish(4, &c, &u, 0, &h, DutyCycle::default());
        assert_eq!(reader.snapshot().reactor(0, "recv_to_ring"), Some(3));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn duty_meter_windows() {
        let mut m = DutyMeter::new(1_000);
        m.turn(100, true);
        m.turn(300, false);
        m.turn(200, true);
        let d = m.take(2_000);
        assert_eq!(
            d,
            DutyCycle {
                window_ns: 1_000,
                turn_ns_max: 300,
                busy_ns: 300,
                turns: 3
            }
        );
        assert_eq!(d.busy_ppm(), 300_000);
        let d = m.take(2_500);
        assert_eq!((d.window_ns, d.turns, d.busy_ppm()), (500, 0, 0));
        assert_eq!(DutyCycle::default().busy_ppm(), 0);
    }

    #[test]
    fn reader_refuses_what_is_not_a_live_stats_file() {
        let missing = temp("missing");
        let _ = std::fs::remove_file(&missing);
        assert!(matches!(
            StatsReader::open(&missing),
            Err(StatsError::Io(..))
        ));

        let junk = temp("junk");
        std::fs::write(&junk, vec![7u8; 4096]).unwrap();
        let e = StatsReader::open(&junk).err().unwrap();
        assert!(matches!(e, StatsError::NotStats(_)), "{e}");
        assert!(e.to_string().contains("not an ordergate stats file"), "{e}");

        let path = temp("versions");
        drop(StatsFile::create(&path, 1).unwrap());
        let good = std::fs::read(&path).unwrap();
        let mut bytes = good.clone();
        bytes[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&9u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let e = StatsReader::open(&path).err().unwrap();
        assert!(e.to_string().contains("layout version 9"), "{e}");

        let mut bytes = good.clone();
        bytes.truncate(bytes.len() - 8);
        std::fs::write(&path, &bytes).unwrap();
        let e = StatsReader::open(&path).err().unwrap();
        assert!(matches!(e, StatsError::Corrupt(..)), "{e}");

        // A pid that cannot exist (above the kernel's pid_max ceiling).
        let mut bytes = good.clone();
        bytes[OFF_PID..OFF_PID + 4].copy_from_slice(&(1u32 << 23).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let e = StatsReader::open(&path).err().unwrap();
        assert!(
            matches!(e, StatsError::Stale { pid, .. } if pid == 1 << 23),
            "{e}"
        );
        assert!(e.to_string().contains("no longer running"), "{e}");
        assert!(StatsReader::open_any(&path).is_ok());
        // A stale file is replaced by the next gateway.
        drop(StatsFile::create(&path, 1).unwrap());
        assert!(StatsReader::open(&path).is_ok());

        // pid 1 is alive and is not us: in use.
        let mut bytes = good;
        bytes[OFF_PID..OFF_PID + 4].copy_from_slice(&1u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let e = StatsFile::create(&path, 1).err().unwrap();
        assert!(matches!(e, StatsError::InUse { pid: 1, .. }), "{e}");
        for p in [missing, junk, path] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn docs_list_every_counter_with_its_id() {
        let doc = include_str!("../../../../docs/STATS.md");
        for c in catalog() {
            let scope = match c.scope {
                Scope::Reactor => "reactor",
                Scope::Engine => "engine",
            };
            let row = format!("| {} | {scope} | `{}` |", c.id, c.label());
            assert!(doc.contains(&row), "docs/STATS.md lacks the row {row}");
        }
    }

    /// The layout example in docs/STATS.md is this build's: every counter
    /// added moves it, and a stale figure there misleads whoever sizes a
    /// reader by it.
    #[test]
    fn docs_state_this_builds_layout() {
        let doc = include_str!("../../../../docs/STATS.md");
        let all = catalog();
        let reactor = all.iter().filter(|c| c.scope == Scope::Reactor).count();
        let engine = all.len() - reactor;
        let one = Shape::new(1, reactor, engine);
        let many = Shape::new(64, reactor, engine);
        let sentence = format!(
            "* With version 1's {reactor} reactor values and {engine} engine values: labels end at\n  \
             {}, values start at {}, blocks are {} bytes; one reactor makes a\n  \
             {} KiB file ({} bytes), 64 reactors {} KiB ({} bytes).",
            HEADER_SIZE + one.label_count * LABEL_SIZE,
            one.values_offset,
            one.block_stride,
            one.file_size / 1024,
            one.file_size,
            many.file_size / 1024,
            many.file_size,
        );
        assert!(
            doc.contains(&sentence),
            "docs/STATS.md should say:\n{sentence}"
        );
    }

    #[test]
    fn blocks_never_share_a_cache_line_pair() {
        let shape = Shape::new(3, 70, 4);
        assert_eq!(shape.values_offset % PAGE, 0);
        assert_eq!(shape.block_stride % BLOCK_ALIGN, 0);
        assert!(shape.block_stride >= (BLOCK_HEADER_VALUES + 70) * 8);
        assert_eq!(
            shape.file_size,
            shape.values_offset + 4 * shape.block_stride
        );
    }
}
