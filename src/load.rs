//! The open-loop load generator behind `ordergate load` and the demo.
//!
//! ```text
//!  run_load ── logs on `sessions` sessions ── spreads them over ≤ available_parallelism threads
//!     thread: ┌─ epoll: read the sessions whose sockets are readable, match replies to requests
//!             ├─ send every operation whose INTENDED time has come (a fixed schedule)
//!             └─ idle: poll while replies are outstanding or a send is < 2 ms away,
//!                      else block in epoll_wait until a frame or just before the next send
//!  end: MassCancel + Logout per session, histograms merged → LoadReport
//! ```
//!
//! **Open loop, coordinated-omission corrected.** Each session has a fixed
//! schedule: operation `k` is *intended* at `offset + k / rate_per_session`.
//! The generator sends it as soon as it can, and the latency of a request is
//! measured from its intended time to its first reply (Accepted or Rejected
//! for a NewOrder, Canceled or Rejected for a cancel, Replaced or Rejected for
//! a replace). A gateway that stalls therefore shows its stall in every
//! request that should have been sent during it, not only in the one that
//! was waiting (Gil Tene's coordinated omission). Requests intended during
//! the warm-up are sent but neither counted nor recorded.
//!
//! **The order flow.** Each operation is a NewOrder, CancelOrder or
//! ReplaceOrder drawn by the `Mix` percentages. Each session keeps at most
//! [`LIVE_ORDERS_MAX`] orders of its own (a new order with no free slot
//! becomes a cancel), so the book stays small whatever the duration. Orders
//! rest away from a base price (bids below, asks above, never crossing)
//! except the `crossing` share of new orders, which are placed *at* the base
//! price on alternating sides; sessions start on opposite sides, so a buy of
//! one session trades with a sell of another and both get Fills. Cancels and
//! replaces pick resting non-crossing orders first, so they rarely race a
//! Fill (when they do, the gateway answers UNKNOWN_ORDER, counted like any
//! reject). Rejects are counted, never retried: a THROTTLED order is not
//! resent after its `retry_after_ns` (that would close the loop), so a rate
//! above the key's shows as THROTTLED rejects and, after a run of them, a
//! Terminate THROTTLE_BREACH in the report.
//!
//! Memory is allocated when the sessions are set up; the send/receive loop
//! allocates nothing per message.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use zeroize::Zeroizing;

use crate::auth::secret::{SECRET_HEX_LEN, Secret};
use crate::net_client::{ClientError, ConnectOptions, Connection, NonceSource, Order, Reply};
use crate::wire::codes::{CancelReason, Environment, RejectReason, Side, TerminateReason};

/// Resting (or pending) orders one session keeps at most: bounds the book
/// the generator leaves in the engine, and the per-session order table.
pub const LIVE_ORDERS_MAX: usize = 64;

/// Of those, orders resting at the crossing price one session keeps before
/// it cancels the oldest: they are the only ones a cancel can race a Fill on.
pub const CROSSING_RESTING_MAX: usize = 8;

/// Slots of a session's table of outstanding requests, indexed by
/// `cl_ord_id` modulo its size. Every request but the final MassCancel
/// targets an order slot that is then busy until it is answered, so at most
/// `LIVE_ORDERS_MAX + 1` are ever outstanding: twice that means an entry is
/// only overwritten once that many newer requests have gone out while it
/// waited, i.e. its reply was lost (it is then counted unanswered).
pub const INFLIGHT_SLOTS: usize = 2 * LIVE_ORDERS_MAX.next_power_of_two();

const _: () = assert!(INFLIGHT_SLOTS.is_power_of_two() && INFLIGHT_SLOTS > LIVE_ORDERS_MAX + 1);

/// Highest latency the histograms hold (60 s), at 3 significant digits.
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// How long the end of a run waits for outstanding replies and the mass
/// cancels' acks, and then for the Logouts' Terminates.
pub const DRAIN_MAX: Duration = Duration::from_secs(2);
pub const LOGOUT_WAIT_MAX: Duration = Duration::from_millis(500);

/// A thread with nothing outstanding blocks in `epoll_wait` (millisecond
/// timeouts) when its next send is at least this far away, waking this much
/// early; closer sends are waited for by polling, which a sleep could not
/// time (timer slack and wake-up are tens of µs).
const BLOCK_THRESHOLD_NS: u64 = 2_000_000;
const BLOCK_EARLY_NS: u64 = 1_000_000;

/// Events one `epoll_wait` returns at most; more stay ready for the next.
const READY_EVENTS_MAX: usize = 1024;

/// The crossing price, and how far from it resting orders go (in ticks).
const PRICE_BASE: i64 = 10_000;
const PRICE_SPREAD: u64 = 20;
const CROSSING_QTY: u32 = 10;
const QTY_MAX: u64 = 100;

/// What share of operations is of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Percent of operations that are NewOrders.
    pub new: u32,
    /// Percent that are CancelOrders.
    pub cancel: u32,
    /// Percent that are ReplaceOrders. `new + cancel + replace == 100`.
    pub replace: u32,
    /// Percent of NewOrders placed at the crossing price (they trade).
    pub crossing: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            new: 50,
            cancel: 35,
            replace: 15,
            crossing: 20,
        }
    }
}

impl Mix {
    fn check(&self) -> Result<(), String> {
        let sum = self.new + self.cancel + self.replace;
        if sum != 100 {
            return Err(format!(
                "mix: new {} + cancel {} + replace {} is {sum}%, not 100%",
                self.new, self.cancel, self.replace
            ));
        }
        if self.new == 0 {
            return Err(
                "mix: new must be above 0% (nothing to cancel or replace otherwise)".into(),
            );
        }
        if self.crossing > 100 {
            return Err(format!("mix: crossing {}% is above 100%", self.crossing));
        }
        Ok(())
    }
}

/// Everything a load run needs. `Debug` does not show the secret.
#[derive(Clone)]
pub struct LoadParams {
    pub connect: SocketAddr,
    pub key_id: u64,
    pub secret: [u8; 32],
    pub sessions: usize,
    /// Operations per second, all sessions together (offered rate).
    pub rate: u64,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    /// Time before the measurement: sent, not counted.
    pub warmup: Duration,
    pub mix: Mix,
    /// Threads driving the sessions; 0 = `min(sessions, available_parallelism)`.
    pub threads: usize,
    /// The instrument every order is for (the embedded engine has `1..=100`).
    pub instrument_id: u32,
    pub environment: Environment,
}

impl std::fmt::Debug for LoadParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadParams")
            .field("connect", &self.connect)
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("sessions", &self.sessions)
            .field("rate", &self.rate)
            .field("duration", &self.duration)
            .field("warmup", &self.warmup)
            .field("mix", &self.mix)
            .field("threads", &self.threads)
            .field("instrument_id", &self.instrument_id)
            .field("environment", &self.environment)
            .finish()
    }
}

impl LoadParams {
    /// Defaults for everything but where to connect and the key: 4 sessions,
    /// 20 000 orders/s for 5 s after a 1 s warm-up, the default mix.
    pub fn new(connect: SocketAddr, key_id: u64, secret: [u8; 32]) -> LoadParams {
        LoadParams {
            connect,
            key_id,
            secret,
            sessions: 4,
            rate: 20_000,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            mix: Mix::default(),
            threads: 0,
            instrument_id: 1,
            environment: Environment::Production,
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.sessions == 0 {
            return Err("sessions must be at least 1".into());
        }
        if self.rate < self.sessions as u64 {
            return Err(format!(
                "rate {} orders/s is below one order per second per session ({} sessions)",
                self.rate, self.sessions
            ));
        }
        if self.duration.is_zero() {
            return Err("duration must be above 0".into());
        }
        if self.instrument_id == 0 {
            return Err("instrument_id must be at least 1".into());
        }
        self.mix.check()
    }

    /// Threads the run uses.
    pub fn thread_count(&self) -> usize {
        let cap = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        };
        cap.clamp(1, self.sessions.max(1))
    }
}

/// Reads an API secret from a file holding its 64 hex digits (surrounding
/// whitespace allowed). Refuses a file group or others may access, naming
/// its mode. Errors never contain the secret.
pub fn read_secret_file(path: &Path) -> Result<[u8; 32], String> {
    /// Longer than any secret with its whitespace: refused unread.
    const SECRET_FILE_SIZE_MAX: u64 = 4096;
    let name = path.display();
    let mut file = File::open(path).map_err(|e| format!("secret file {name}: cannot open: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("secret file {name}: cannot inspect: {e}"))?;
    if !meta.is_file() {
        return Err(format!("secret file {name}: not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "secret file {name} has mode {mode:04o}: it must not be accessible by group or others (chmod 600)"
        ));
    }
    if meta.len() > SECRET_FILE_SIZE_MAX {
        return Err(format!(
            "secret file {name} is {} bytes: a secret file holds 64 hex digits",
            meta.len()
        ));
    }
    let mut text = Zeroizing::new(Vec::with_capacity(SECRET_FILE_SIZE_MAX as usize));
    (&mut file)
        .take(SECRET_FILE_SIZE_MAX)
        .read_to_end(&mut text)
        .map_err(|e| format!("secret file {name}: cannot read: {e}"))?;
    let trimmed = std::str::from_utf8(&text)
        .map_err(|_| {
            format!("secret file {name}: not text; it must hold {SECRET_HEX_LEN} hex digits")
        })?
        .trim();
    let secret = Secret::from_hex(trimmed).map_err(|e| format!("secret file {name}: {e}"))?;
    Ok(*secret.expose())
}

/// What a load run saw. Counts cover requests intended after the warm-up
/// (and Fills received after it).
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub sessions: usize,
    pub threads: usize,
    /// Offered operations per second.
    pub rate: u64,
    pub duration: Duration,
    pub warmup: Duration,
    pub sent_new: u64,
    pub sent_cancel: u64,
    pub sent_replace: u64,
    /// Operations due before the end that the generator never got to send
    /// (it fell behind its schedule).
    pub behind: u64,
    /// Operations due with every order slot waiting on the gateway (nothing
    /// could be sent): a sign the gateway is far behind.
    pub skipped: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Answers to cancels (reason USER).
    pub canceled: u64,
    pub replaced: u64,
    pub fills: u64,
    pub heartbeats: u64,
    /// OrderRejected by reason code (index = code).
    pub rejects: [u64; 11],
    /// Requests that never got their first reply.
    pub unanswered: u64,
    /// Orders canceled by the end-of-run MassCancel.
    pub cleanup_canceled: u64,
    /// Terminates received by reason code (index = code), LOGOUT included.
    pub terminates: [u64; 9],
    /// Sessions that failed (socket or protocol), with what happened.
    pub errors: Vec<String>,
    /// Intended send → first reply, ns.
    pub latency_ns: Histogram<u64>,
    /// Intended send → actual send, ns: how far the generator itself ran
    /// behind its schedule (part of `latency_ns`, not the gateway's doing).
    pub send_lag_ns: Histogram<u64>,
}

impl LoadReport {
    fn empty(params: &LoadParams, threads: usize) -> LoadReport {
        LoadReport {
            sessions: params.sessions,
            threads,
            rate: params.rate,
            duration: params.duration,
            warmup: params.warmup,
            sent_new: 0,
            sent_cancel: 0,
            sent_replace: 0,
            behind: 0,
            skipped: 0,
            accepted: 0,
            rejected: 0,
            canceled: 0,
            replaced: 0,
            fills: 0,
            heartbeats: 0,
            rejects: [0; 11],
            unanswered: 0,
            cleanup_canceled: 0,
            terminates: [0; 9],
            errors: Vec::new(),
            latency_ns: new_histogram(),
            send_lag_ns: new_histogram(),
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent_new + self.sent_cancel + self.sent_replace
    }

    /// Operations sent per second of measured time.
    pub fn achieved_rate(&self) -> f64 {
        self.sent() as f64 / self.duration.as_secs_f64()
    }

    fn merge(&mut self, other: &LoadReport) {
        self.sent_new += other.sent_new;
        self.sent_cancel += other.sent_cancel;
        self.sent_replace += other.sent_replace;
        self.behind += other.behind;
        self.skipped += other.skipped;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.canceled += other.canceled;
        self.replaced += other.replaced;
        self.fills += other.fills;
        self.heartbeats += other.heartbeats;
        for (a, b) in self.rejects.iter_mut().zip(other.rejects) {
            *a += b;
        }
        self.unanswered += other.unanswered;
        self.cleanup_canceled += other.cleanup_canceled;
        for (a, b) in self.terminates.iter_mut().zip(other.terminates) {
            *a += b;
        }
        self.errors.extend(other.errors.iter().cloned());
        self.latency_ns
            .add(&other.latency_ns)
            .expect("histograms of the same bounds");
        self.send_lag_ns
            .add(&other.send_lag_ns)
            .expect("histograms of the same bounds");
    }

    /// Rejects as `NAME count` pairs, most frequent first.
    pub fn rejects_by_name(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<(&'static str, u64)> = RejectReason::ALL
            .iter()
            .map(|r| (r.name(), self.rejects[r.wire() as usize]))
            .filter(|&(_, n)| n > 0)
            .collect();
        out.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        out
    }

    /// The report as text (what `print` prints).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "load: {} session{} on {} thread{}; offered {} orders/s for {:.2} s after a {:.2} s warm-up",
            self.sessions,
            plural(self.sessions as u64),
            self.threads,
            plural(self.threads as u64),
            self.rate,
            self.duration.as_secs_f64(),
            self.warmup.as_secs_f64()
        );
        let achieved = self.achieved_rate();
        let _ = writeln!(
            s,
            "  sent {} (new {}, cancel {}, replace {}); achieved {:.0} orders/s ({:.1}% of offered); behind schedule {}, skipped {}",
            self.sent(),
            self.sent_new,
            self.sent_cancel,
            self.sent_replace,
            achieved,
            100.0 * achieved / self.rate as f64,
            self.behind,
            self.skipped
        );
        let _ = writeln!(
            s,
            "  replies: accepted {}, rejected {}, canceled {}, replaced {}; fills {}; unanswered {}",
            self.accepted, self.rejected, self.canceled, self.replaced, self.fills, self.unanswered
        );
        let rejects = self.rejects_by_name();
        if !rejects.is_empty() {
            let list: Vec<String> = rejects.iter().map(|(n, c)| format!("{n} {c}")).collect();
            let _ = writeln!(s, "  rejects by reason: {}", list.join(", "));
        }
        let abnormal: Vec<String> = TerminateReason::ALL
            .iter()
            .filter(|r| **r != TerminateReason::LOGOUT)
            .filter(|r| self.terminates[r.wire() as usize] > 0)
            .map(|r| format!("{} {}", r.name(), self.terminates[r.wire() as usize]))
            .collect();
        if !abnormal.is_empty() {
            let _ = writeln!(
                s,
                "  sessions terminated by the gateway: {}",
                abnormal.join(", ")
            );
        }
        for e in &self.errors {
            let _ = writeln!(s, "  error: {e}");
        }
        let _ = writeln!(
            s,
            "  round trip from intended send (µs): {} ({} samples)",
            percentiles_us(&self.latency_ns),
            self.latency_ns.len()
        );
        if !self.send_lag_ns.is_empty() {
            let us = |ns: u64| ns as f64 / 1_000.0;
            let _ = writeln!(
                s,
                "  of which the generator's own lag, intended → sent (µs): p50 {:.2}  p99 {:.2}  max {:.2}",
                us(self.send_lag_ns.value_at_quantile(0.5)),
                us(self.send_lag_ns.value_at_quantile(0.99)),
                us(self.send_lag_ns.max())
            );
        }
        s
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A latency histogram with the bounds every part of a run shares.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, 3).expect("valid histogram bounds")
}

/// `p50 … max` of a histogram of nanoseconds, in µs with 2 decimals.
pub fn percentiles_us(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let us = |ns: u64| ns as f64 / 1_000.0;
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.90)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max())
    )
}

/// Runs the load: logs on every session, drives them for warm-up +
/// duration, cancels what is left, logs out, and reports.
///
/// # Errors
///
/// Inconsistent parameters, or a session that could not log on (naming
/// which and why). Failures after the start are in `LoadReport::errors`.
pub fn run_load(params: &LoadParams) -> Result<LoadReport, String> {
    params.check()?;
    let threads = params.thread_count();
    let options = ConnectOptions {
        keepalive_ms: 1_000,
        cancel_on_disconnect: true,
        environment: params.environment,
        nonce: NonceSource::Process,
        timeout: Duration::from_secs(2),
    };
    let mut per_thread: Vec<Vec<SessionLoad>> = (0..threads).map(|_| Vec::new()).collect();
    for index in 0..params.sessions {
        let conn = Connection::connect(params.connect, params.key_id, params.secret, &options)
            .map_err(|e| format!("session {index} of {}: {e}", params.sessions))?;
        per_thread[index % threads].push(SessionLoad::new(conn, index, params));
    }
    // Every thread starts on the same clock, shortly after all are spawned.
    let t0 = Instant::now() + Duration::from_millis(5);
    let warmup_ns = params.warmup.as_nanos() as u64;
    let end_ns = warmup_ns + params.duration.as_nanos() as u64;
    let handles: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(i, sessions)| {
            let mut report = LoadReport::empty(params, threads);
            let mix = params.mix;
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || {
                    let mut driver = Driver {
                        sessions,
                        t0,
                        warmup_ns,
                        end_ns,
                        mix,
                        report: &mut report,
                    };
                    driver.run();
                    report
                })
                .map_err(|e| format!("cannot start load thread {i}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut total = LoadReport::empty(params, threads);
    for h in handles {
        let part = h.join().map_err(|_| "a load thread panicked".to_string())?;
        total.merge(&part);
    }
    Ok(total)
}

/// A small, fast PRNG (SplitMix64): the order flow needs variety, not
/// unpredictability.
#[derive(Clone, Copy, Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    /// NewOrder sent, not yet answered.
    Pending,
    /// Resting in the book.
    Live,
    /// A cancel or replace of it is outstanding.
    Busy,
    /// Filled completely while a cancel or replace of it was outstanding:
    /// freed when that request is answered.
    GoneBusy,
}

#[derive(Clone, Copy, Debug)]
struct OrderSlot {
    state: SlotState,
    /// The id the gateway knows the order by now.
    cl_ord_id: u64,
    side: Side,
    price: i64,
    qty: u32,
    crossing: bool,
    /// When it was placed (op number): the oldest crossing order goes first.
    placed: u64,
}

const FREE_SLOT: OrderSlot = OrderSlot {
    state: SlotState::Free,
    cl_ord_id: 0,
    side: Side::Buy,
    price: 0,
    qty: 0,
    crossing: false,
    placed: 0,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    New,
    Cancel,
    /// The new price and quantity, applied on OrderReplaced.
    Replace {
        price: i64,
        qty: u32,
    },
    MassCancel,
}

/// A request waiting for its first reply. `id == 0`: empty.
#[derive(Clone, Copy, Debug)]
struct Inflight {
    id: u64,
    intended_ns: u64,
    kind: Kind,
    slot: u16,
    measured: bool,
}

const NO_INFLIGHT: Inflight = Inflight {
    id: 0,
    intended_ns: 0,
    kind: Kind::New,
    slot: 0,
    measured: false,
};

struct SessionLoad {
    conn: Connection,
    index: usize,
    /// Operations per second of this session.
    rate: u64,
    /// Intended time of operation 0, ns after t0.
    offset_ns: u64,
    /// Next operation number.
    op: u64,
    next_cl_ord_id: u64,
    crossing_count: u64,
    instrument_id: u32,
    orders: [OrderSlot; LIVE_ORDERS_MAX],
    inflight: Box<[Inflight; INFLIGHT_SLOTS]>,
    inflight_count: usize,
    rng: SplitMix,
    /// Still sending (logged on, no error, not terminated).
    alive: bool,
    /// The end-of-run MassCancel has been answered.
    cleaned: bool,
    /// A Terminate (or an error) was received.
    ended: bool,
}

impl SessionLoad {
    fn new(conn: Connection, index: usize, params: &LoadParams) -> SessionLoad {
        let sessions = params.sessions as u64;
        let i = index as u64;
        let rate = params.rate / sessions + u64::from(i < params.rate % sessions);
        SessionLoad {
            conn,
            index,
            rate,
            offset_ns: i * 1_000_000_000 / params.rate,
            op: 0,
            next_cl_ord_id: 1,
            crossing_count: 0,
            instrument_id: params.instrument_id,
            orders: [FREE_SLOT; LIVE_ORDERS_MAX],
            inflight: Box::new([NO_INFLIGHT; INFLIGHT_SLOTS]),
            inflight_count: 0,
            rng: SplitMix(0xC0FF_EE00 ^ (i + 1).wrapping_mul(0x2545_F491_4F6C_DD1D)),
            alive: true,
            cleaned: false,
            ended: false,
        }
    }

    /// Intended time of operation `op`, ns after t0.
    fn intended_ns(&self, op: u64) -> u64 {
        self.offset_ns + (op as u128 * 1_000_000_000 / self.rate as u128) as u64
    }

    /// Operations intended in `[from_ns, to_ns)`.
    fn ops_between(&self, from_ns: u64, to_ns: u64) -> u64 {
        self.first_op_at(to_ns) - self.first_op_at(from_ns)
    }

    /// The first operation intended at or after `t_ns`.
    fn first_op_at(&self, t_ns: u64) -> u64 {
        if t_ns <= self.offset_ns {
            return 0;
        }
        let d = (t_ns - self.offset_ns) as u128 * self.rate as u128;
        d.div_ceil(1_000_000_000) as u64
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_cl_ord_id;
        self.next_cl_ord_id += 1;
        id
    }

    fn inflight_index(&self, id: u64) -> usize {
        (id as usize) & (INFLIGHT_SLOTS - 1)
    }

    fn track(&mut self, entry: Inflight, report: &mut LoadReport) {
        let i = self.inflight_index(entry.id);
        let old = self.inflight[i];
        if old.id != 0 {
            // Unanswered for a whole window of ids: given up.
            if old.measured {
                report.unanswered += 1;
            }
            self.inflight_count -= 1;
        }
        self.inflight[i] = entry;
        self.inflight_count += 1;
    }

    fn complete(&mut self, id: u64) -> Option<Inflight> {
        let i = self.inflight_index(id);
        let entry = self.inflight[i];
        if entry.id != id || id == 0 {
            return None;
        }
        self.inflight[i] = NO_INFLIGHT;
        self.inflight_count -= 1;
        Some(entry)
    }

    fn find_order(&self, cl_ord_id: u64) -> Option<usize> {
        self.orders.iter().position(|o| {
            o.cl_ord_id == cl_ord_id
                && matches!(
                    o.state,
                    SlotState::Pending | SlotState::Live | SlotState::Busy
                )
        })
    }

    /// A resting order to cancel or replace: non-crossing first, from a
    /// random start so every slot gets its turn.
    fn pick_live(&mut self, allow_crossing: bool) -> Option<usize> {
        let start = self.rng.below(LIVE_ORDERS_MAX as u64) as usize;
        let scan = |crossing_ok: bool| {
            (0..LIVE_ORDERS_MAX)
                .map(|k| (start + k) % LIVE_ORDERS_MAX)
                .find(|&i| {
                    let o = &self.orders[i];
                    o.state == SlotState::Live && (crossing_ok || !o.crossing)
                })
        };
        scan(false).or_else(|| if allow_crossing { scan(true) } else { None })
    }

    /// The oldest crossing order resting, if more than the cap rest.
    fn crossing_over_cap(&self) -> Option<usize> {
        let resting = self
            .orders
            .iter()
            .filter(|o| o.crossing && o.state == SlotState::Live)
            .count();
        if resting < CROSSING_RESTING_MAX {
            return None;
        }
        (0..LIVE_ORDERS_MAX)
            .filter(|&i| self.orders[i].crossing && self.orders[i].state == SlotState::Live)
            .min_by_key(|&i| self.orders[i].placed)
    }

    /// Sends operation `self.op`, intended at `intended_ns`.
    fn send_op(
        &mut self,
        intended_ns: u64,
        measured: bool,
        mix: &Mix,
        report: &mut LoadReport,
    ) -> Result<(), ClientError> {
        let roll = self.rng.below(100) as u32;
        let free = self.orders.iter().position(|o| o.state == SlotState::Free);
        let wanted = if roll < mix.new {
            Kind::New
        } else if roll < mix.new + mix.cancel {
            Kind::Cancel
        } else {
            Kind::Replace { price: 0, qty: 0 }
        };
        // Keep the book bounded: too many crossing orders resting, or no
        // free slot, turns the operation into a cancel.
        let forced_cancel = self.crossing_over_cap();
        let kind = match (wanted, free) {
            _ if forced_cancel.is_some() && wanted != Kind::New => Kind::Cancel,
            (Kind::New, None) => Kind::Cancel,
            (k, _) => k,
        };
        let target = match kind {
            Kind::Cancel => forced_cancel.or_else(|| self.pick_live(true)),
            Kind::Replace { .. } => self.pick_live(false),
            _ => None,
        };
        match (kind, target, free) {
            (Kind::Cancel, Some(slot), _) => self.send_cancel(slot, intended_ns, measured, report),
            (Kind::Replace { .. }, Some(slot), _) => {
                self.send_replace(slot, intended_ns, measured, report)
            }
            (_, _, Some(slot)) => self.send_new(slot, intended_ns, measured, mix, report),
            (_, _, None) => match self.pick_live(true) {
                Some(slot) => self.send_cancel(slot, intended_ns, measured, report),
                None => {
                    // Every slot waits on the gateway: nothing to send.
                    if measured {
                        report.skipped += 1;
                    }
                    Ok(())
                }
            },
        }
    }

    fn send_new(
        &mut self,
        slot: usize,
        intended_ns: u64,
        measured: bool,
        mix: &Mix,
        report: &mut LoadReport,
    ) -> Result<(), ClientError> {
        let crossing = (self.rng.below(100) as u32) < mix.crossing;
        let (side, price, qty) = if crossing {
            // Alternate sides, sessions starting on opposite ones.
            let buy = (self.crossing_count + self.index as u64) % 2 == 0;
            self.crossing_count += 1;
            let side = if buy { Side::Buy } else { Side::Sell };
            (side, PRICE_BASE, CROSSING_QTY)
        } else {
            let side = if self.rng.below(2) == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            (side, self.resting_price(side), self.random_qty())
        };
        let id = self.take_id();
        self.conn
            .send_new_order(&Order::limit(id, self.instrument_id, side, price, qty))?;
        self.orders[slot] = OrderSlot {
            state: SlotState::Pending,
            cl_ord_id: id,
            side,
            price,
            qty,
            crossing,
            placed: self.op,
        };
        self.track(
            Inflight {
                id,
                intended_ns,
                kind: Kind::New,
                slot: slot as u16,
                measured,
            },
            report,
        );
        if measured {
            report.sent_new += 1;
        }
        Ok(())
    }

    fn send_cancel(
        &mut self,
        slot: usize,
        intended_ns: u64,
        measured: bool,
        report: &mut LoadReport,
    ) -> Result<(), ClientError> {
        let id = self.take_id();
        let orig = self.orders[slot].cl_ord_id;
        self.conn.send_cancel(id, orig, self.instrument_id)?;
        self.orders[slot].state = SlotState::Busy;
        self.track(
            Inflight {
                id,
                intended_ns,
                kind: Kind::Cancel,
                slot: slot as u16,
                measured,
            },
            report,
        );
        if measured {
            report.sent_cancel += 1;
        }
        Ok(())
    }

    fn send_replace(
        &mut self,
        slot: usize,
        intended_ns: u64,
        measured: bool,
        report: &mut LoadReport,
    ) -> Result<(), ClientError> {
        let id = self.take_id();
        let o = self.orders[slot];
        let price = self.resting_price(o.side);
        let qty = self.random_qty();
        self.conn
            .send_replace(id, o.cl_ord_id, self.instrument_id, price, qty)?;
        self.orders[slot].state = SlotState::Busy;
        self.track(
            Inflight {
                id,
                intended_ns,
                kind: Kind::Replace { price, qty },
                slot: slot as u16,
                measured,
            },
            report,
        );
        if measured {
            report.sent_replace += 1;
        }
        Ok(())
    }

    /// A price that never crosses: bids below the base, asks above.
    fn resting_price(&mut self, side: Side) -> i64 {
        let away = 1 + self.rng.below(PRICE_SPREAD) as i64;
        match side {
            Side::Buy => PRICE_BASE - away,
            Side::Sell => PRICE_BASE + away,
        }
    }

    fn random_qty(&mut self) -> u32 {
        1 + self.rng.below(QTY_MAX) as u32
    }

    fn send_mass_cancel(
        &mut self,
        now_ns: u64,
        report: &mut LoadReport,
    ) -> Result<(), ClientError> {
        let id = self.take_id();
        self.conn.send_mass_cancel(id, self.instrument_id, None)?;
        self.track(
            Inflight {
                id,
                intended_ns: now_ns,
                kind: Kind::MassCancel,
                slot: 0,
                measured: false,
            },
            report,
        );
        Ok(())
    }

    /// A reply received at `t_ns`.
    fn on_reply(&mut self, reply: Reply, t_ns: u64, warmup_ns: u64, report: &mut LoadReport) {
        // The first reply of a request completes it and gives its latency.
        let first = |s: &mut SessionLoad, id: u64, report: &mut LoadReport| {
            let entry = s.complete(id)?;
            if entry.measured {
                report
                    .latency_ns
                    .saturating_record(t_ns.saturating_sub(entry.intended_ns).max(1));
            }
            Some(entry)
        };
        match reply {
            Reply::Accepted { cl_ord_id, .. } => {
                if let Some(e) = first(self, cl_ord_id, report) {
                    if e.measured {
                        report.accepted += 1;
                    }
                    let o = &mut self.orders[e.slot as usize];
                    if o.state == SlotState::Pending && o.cl_ord_id == cl_ord_id {
                        o.state = SlotState::Live;
                    }
                }
            }
            Reply::Rejected {
                cl_ord_id, reason, ..
            } => {
                if let Some(e) = first(self, cl_ord_id, report) {
                    if e.measured {
                        report.rejected += 1;
                        report.rejects[reason.wire() as usize] += 1;
                    }
                    if e.kind == Kind::MassCancel {
                        self.cleaned = true;
                        return;
                    }
                    let o = &mut self.orders[e.slot as usize];
                    o.state = match (e.kind, o.state) {
                        (Kind::New, _) | (_, SlotState::GoneBusy) => SlotState::Free,
                        // The order is no longer there (filled meanwhile).
                        _ if reason == RejectReason::UNKNOWN_ORDER => SlotState::Free,
                        _ => SlotState::Live,
                    };
                }
            }
            Reply::Canceled {
                cl_ord_id, reason, ..
            } => {
                if reason == CancelReason::USER {
                    if let Some(e) = first(self, cl_ord_id, report) {
                        if e.measured {
                            report.canceled += 1;
                        }
                        self.orders[e.slot as usize].state = SlotState::Free;
                    }
                } else {
                    // MASS_CANCEL (ours, at the end), or a gateway-initiated cancel.
                    if reason == CancelReason::MASS_CANCEL {
                        report.cleanup_canceled += 1;
                    }
                    if let Some(i) = self.find_order(cl_ord_id) {
                        self.orders[i].state = match self.orders[i].state {
                            SlotState::Busy => SlotState::GoneBusy,
                            _ => SlotState::Free,
                        };
                    }
                }
            }
            Reply::Replaced {
                cl_ord_id,
                leaves_qty,
                ..
            } => {
                if let Some(e) = first(self, cl_ord_id, report) {
                    if e.measured {
                        report.replaced += 1;
                    }
                    if let Kind::Replace { price, .. } = e.kind {
                        let o = &mut self.orders[e.slot as usize];
                        o.cl_ord_id = cl_ord_id;
                        o.price = price;
                        o.qty = leaves_qty;
                        o.state = if leaves_qty == 0 {
                            SlotState::Free
                        } else {
                            SlotState::Live
                        };
                    }
                }
            }
            Reply::Fill {
                cl_ord_id,
                leaves_qty,
                ..
            } => {
                if t_ns >= warmup_ns {
                    report.fills += 1;
                }
                if let Some(i) = self.find_order(cl_ord_id) {
                    let o = &mut self.orders[i];
                    o.qty = leaves_qty;
                    if leaves_qty == 0 {
                        o.state = match o.state {
                            SlotState::Busy => SlotState::GoneBusy,
                            _ => SlotState::Free,
                        };
                    }
                }
            }
            Reply::MassCancelAck { cl_ord_id, .. } => {
                if first(self, cl_ord_id, report).is_some() {
                    self.cleaned = true;
                }
            }
            Reply::Heartbeat => report.heartbeats += 1,
            Reply::Terminate { reason } => {
                report.terminates[reason.wire() as usize] += 1;
                self.alive = false;
                self.ended = true;
            }
        }
    }

    fn fail(&mut self, error: &ClientError, report: &mut LoadReport) {
        if !self.ended {
            report
                .errors
                .push(format!("session {}: {error}", self.index));
        }
        self.alive = false;
        self.ended = true;
    }

    /// Reads every reply already arrived. Returns how many.
    fn poll(&mut self, t0: Instant, warmup_ns: u64, report: &mut LoadReport) -> usize {
        let mut n = 0;
        while !self.ended {
            match self.conn.recv(Duration::ZERO) {
                Ok(Some(reply)) => {
                    n += 1;
                    let t = t0.elapsed().as_nanos() as u64;
                    self.on_reply(reply, t, warmup_ns, report);
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(&e, report);
                    break;
                }
            }
        }
        n
    }
}

/// Readiness of many sockets in one system call: epoll, level-triggered,
/// each socket registered with its session's index as token. The only
/// `unsafe` of the load generator; every call is a plain libc call on
/// descriptors this type owns or that outlive their registration.
struct Readiness {
    epfd: OwnedFd,
    events: Box<[libc::epoll_event]>,
}

impl Readiness {
    /// Room for `capacity` events per wait (more stay pending: level-triggered).
    fn new(capacity: usize) -> io::Result<Readiness> {
        // SAFETY: epoll_create1 takes no pointer; a negative result is an
        // error, checked before the descriptor is used.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1: open, and owned
        // by nothing else.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Readiness {
            epfd,
            events: vec![empty; capacity.max(1)].into_boxed_slice(),
        })
    }

    fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open for the duration of the call
        // (`fd` is borrowed, `epfd` owned), and `event` is a valid
        // epoll_event the kernel only reads.
        let r = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd.as_raw_fd(), &mut event) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    fn remove(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0)
    }

    /// Waits up to `timeout_ms` (0: only what is ready now) and returns how
    /// many events `token` can be asked for.
    fn wait(&mut self, timeout_ms: i32) -> io::Result<usize> {
        let max = self.events.len().min(i32::MAX as usize) as libc::c_int;
        // SAFETY: `events` is a live buffer of at least `max` epoll_event
        // that the kernel fills; `epfd` is open.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                max,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n as usize)
    }

    /// The token of event `i` of the last wait.
    fn token(&self, i: usize) -> u64 {
        // A copy out of a packed struct: no reference to the field is made.
        let event = self.events[i];
        event.u64
    }
}

struct Driver<'r> {
    sessions: Vec<SessionLoad>,
    t0: Instant,
    warmup_ns: u64,
    end_ns: u64,
    mix: Mix,
    report: &'r mut LoadReport,
}

impl Driver<'_> {
    fn now_ns(&self) -> u64 {
        Instant::now()
            .checked_duration_since(self.t0)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    fn run(&mut self) {
        let mut ready = match self.register() {
            Ok(ready) => ready,
            Err(e) => {
                self.report
                    .errors
                    .push(format!("load thread: cannot poll its sockets: {e}"));
                return;
            }
        };
        if let Some(wait) = self.t0.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        self.drive(&mut ready);
        let sent_by_end: Vec<u64> = self.sessions.iter().map(|s| s.op).collect();
        self.drain(&mut ready);
        for (s, sent_ops) in self.sessions.iter().zip(sent_by_end) {
            // Measured operations due before the end that were never sent.
            let due = s.ops_between(self.warmup_ns, self.end_ns);
            let first_measured = s.first_op_at(self.warmup_ns);
            let sent_measured = sent_ops.saturating_sub(first_measured);
            self.report.behind += due.saturating_sub(sent_measured);
        }
        for s in &self.sessions {
            let left = s.inflight.iter().filter(|e| e.id != 0 && e.measured);
            self.report.unanswered += left.count() as u64;
        }
    }

    fn register(&self) -> io::Result<Readiness> {
        let ready = Readiness::new(self.sessions.len().min(READY_EVENTS_MAX))?;
        for (i, s) in self.sessions.iter().enumerate() {
            ready.add(s.conn.as_fd(), i as u64)?;
        }
        Ok(ready)
    }

    /// Reads the replies of every session whose socket is readable, waiting
    /// up to `timeout_ms` for one. Returns the replies read.
    fn poll_ready(&mut self, ready: &mut Readiness, timeout_ms: i32) -> usize {
        let n = match ready.wait(timeout_ms) {
            Ok(n) => n,
            Err(e) => {
                // Cannot happen with a valid epoll descriptor and buffer;
                // if it does, the run cannot be measured any more.
                self.report
                    .errors
                    .push(format!("load thread: epoll_wait: {e}"));
                for s in &mut self.sessions {
                    s.alive = false;
                    s.ended = true;
                }
                return 0;
            }
        };
        let mut work = 0;
        for i in 0..n {
            let Some(s) = self.sessions.get_mut(ready.token(i) as usize) else {
                continue;
            };
            if s.ended {
                continue;
            }
            work += s.poll(self.t0, self.warmup_ns, self.report);
            if s.ended {
                // Its socket stays readable (end of stream): stop watching.
                let _ = ready.remove(s.conn.as_fd());
            }
        }
        work
    }

    /// The measured run: read what arrived, send what is due, idle.
    fn drive(&mut self, ready: &mut Readiness) {
        loop {
            let mut work = self.poll_ready(ready, 0);
            let now = self.now_ns();
            if now >= self.end_ns {
                return;
            }
            let mut next_due = u64::MAX;
            let mut outstanding = false;
            for s in self.sessions.iter_mut() {
                while s.alive {
                    let intended = s.intended_ns(s.op);
                    if intended > now || intended >= self.end_ns {
                        break;
                    }
                    let measured = intended >= self.warmup_ns;
                    if measured {
                        let lag = (self.t0.elapsed().as_nanos() as u64).saturating_sub(intended);
                        self.report.send_lag_ns.saturating_record(lag.max(1));
                    }
                    if let Err(e) = s.send_op(intended, measured, &self.mix, self.report) {
                        s.fail(&e, self.report);
                        break;
                    }
                    s.op += 1;
                    work += 1;
                }
                if s.alive {
                    next_due = next_due.min(s.intended_ns(s.op));
                    outstanding |= s.inflight_count > 0;
                }
            }
            if next_due == u64::MAX {
                return; // every session has ended
            }
            if work > 0 {
                continue;
            }
            let now = self.now_ns();
            let until = next_due.min(self.end_ns);
            if !outstanding && until > now + BLOCK_THRESHOLD_NS {
                // Nothing to wait for but the clock: sleep in the kernel
                // until a frame arrives or shortly before the next send.
                let ms = (until - now - BLOCK_EARLY_NS) / 1_000_000;
                self.poll_ready(ready, ms.clamp(1, i32::MAX as u64) as i32);
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// After the end: cancel what is left, wait for the outstanding
    /// answers, log out.
    fn drain(&mut self, ready: &mut Readiness) {
        let now = self.now_ns();
        for s in self.sessions.iter_mut().filter(|s| s.alive) {
            if let Err(e) = s.send_mass_cancel(now, self.report) {
                s.fail(&e, self.report);
            }
        }
        let deadline = Instant::now() + DRAIN_MAX;
        while Instant::now() < deadline {
            let pending = self
                .sessions
                .iter()
                .any(|s| !s.ended && (s.inflight_count > 0 || !s.cleaned));
            if !pending {
                break;
            }
            self.poll_ready(ready, 1);
        }
        for s in self.sessions.iter_mut().filter(|s| s.alive) {
            if let Err(e) = s.conn.send_logout() {
                s.fail(&e, self.report);
            }
            s.alive = false;
        }
        let deadline = Instant::now() + LOGOUT_WAIT_MAX;
        while Instant::now() < deadline && self.sessions.iter().any(|s| !s.ended) {
            self.poll_ready(ready, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::net_client::test_gateway::{KEY_ID, SECRET, TestGateway};

    fn temp_file(name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ordergate-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut f = File::create(&path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn secret_files_must_be_private_and_hold_64_hex_digits() {
        let hex = "8f1c2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccddeeff0";
        let ok = temp_file("ok", &format!("{hex}\n"), 0o600);
        let secret = read_secret_file(&ok).unwrap();
        assert_eq!(secret[0], 0x8f);
        assert_eq!(secret[31], 0xf0);

        let open = temp_file("open", hex, 0o644);
        let err = read_secret_file(&open).unwrap_err();
        assert!(err.contains("mode 0644"), "{err}");
        assert!(!err.contains(hex));

        let short = temp_file("short", &hex[..63], 0o600);
        let err = read_secret_file(&short).unwrap_err();
        assert!(err.contains("63 characters"), "{err}");
        assert!(
            !err.contains(&hex[..8]),
            "the secret is never echoed: {err}"
        );

        let bad = temp_file("bad", &hex.replace('8', "x"), 0o400);
        let err = read_secret_file(&bad).unwrap_err();
        assert!(err.contains("not a hex digit"), "{err}");
        assert!(read_secret_file(Path::new("/nonexistent/secret")).is_err());
    }

    #[test]
    fn params_are_checked_and_the_secret_is_not_debug_printed() {
        let mut p = LoadParams::new("127.0.0.1:1".parse().unwrap(), 1, [0xAB; 32]);
        assert!(p.check().is_ok());
        assert!(!format!("{p:?}").contains("171"), "0xAB is 171");
        p.mix.cancel = 40;
        assert!(p.check().unwrap_err().contains("105%"));
        p.mix = Mix::default();
        p.rate = 3;
        assert!(p.check().is_err());
        p.rate = 100;
        p.sessions = 3;
        p.threads = 8;
        assert_eq!(p.thread_count(), 3);
    }

    #[test]
    fn the_schedule_is_fixed_and_counts_what_is_due() {
        let gw = TestGateway::start();
        let mut p = LoadParams::new(gw.addr(), KEY_ID, SECRET);
        p.sessions = 3;
        p.rate = 1_000; // 334 + 333 + 333
        let conn =
            Connection::connect(gw.addr(), KEY_ID, SECRET, &ConnectOptions::default()).unwrap();
        let s = SessionLoad::new(conn, 1, &p);
        assert_eq!(s.rate, 333);
        assert_eq!(s.offset_ns, 1_000_000); // staggered by the global interval
        assert_eq!(s.intended_ns(0), 1_000_000);
        assert_eq!(s.intended_ns(333), 1_001_000_000);
        assert_eq!(s.first_op_at(0), 0);
        assert_eq!(s.first_op_at(1_000_000), 0);
        assert_eq!(s.first_op_at(1_000_001), 1);
        assert_eq!(s.ops_between(0, 1_001_000_000), 333);
        assert_eq!(s.ops_between(0, 1_001_000_001), 334);
        gw.shutdown();
    }

    #[test]
    fn many_slow_sessions_on_one_thread_wait_in_epoll() {
        let gw = TestGateway::start();
        let mut p = LoadParams::new(gw.addr(), KEY_ID, SECRET);
        p.sessions = 40;
        p.rate = 400; // 10 a second each: the thread blocks between sends
        p.warmup = Duration::from_millis(50);
        p.duration = Duration::from_millis(500);
        p.threads = 1;
        let started = Instant::now();
        let r = run_load(&p).unwrap();
        let text = r.render();
        assert!(started.elapsed() < Duration::from_secs(3), "{text}");
        assert!(r.errors.is_empty(), "{text}");
        assert_eq!(r.unanswered, 0, "{text}");
        assert_eq!(r.behind, 0, "{text}");
        // 40 sessions × 10/s × 0.5 s, give or take the edges.
        assert!((180..=220).contains(&r.sent()), "{text}");
        assert_eq!(
            r.accepted + r.rejected + r.canceled + r.replaced,
            r.sent(),
            "{text}"
        );
        assert_eq!(
            r.terminates[TerminateReason::LOGOUT.wire() as usize],
            40,
            "{text}"
        );
        gw.shutdown();
    }

    #[test]
    fn a_short_run_is_answered_in_full_and_trades() {
        let gw = TestGateway::start();
        let mut p = LoadParams::new(gw.addr(), KEY_ID, SECRET);
        p.sessions = 3;
        p.rate = 3_000;
        p.warmup = Duration::from_millis(100);
        p.duration = Duration::from_millis(400);
        p.threads = 2;
        let r = run_load(&p).unwrap();
        let text = r.render();
        assert_eq!(r.threads, 2);
        assert!(r.errors.is_empty(), "{text}");
        assert_eq!(r.unanswered, 0, "{text}");
        assert!(r.sent() > 0 && r.sent() <= 1_200, "{text}");
        assert_eq!(
            r.accepted + r.rejected + r.canceled + r.replaced,
            r.sent(),
            "every measured request has exactly one first reply: {text}"
        );
        assert_eq!(r.latency_ns.len(), r.sent(), "{text}");
        assert!(r.fills > 0, "{text}");
        assert!(r.sent_cancel > 0 && r.sent_replace > 0, "{text}");
        // Everything left was canceled at the end, and every session logged out.
        assert_eq!(
            r.terminates[TerminateReason::LOGOUT.wire() as usize],
            3,
            "{text}"
        );
        assert!(
            text.contains("round trip from intended send (µs): p50 "),
            "{text}"
        );
        let counters = gw.shutdown();
        assert_eq!(
            counters.terminates[TerminateReason::SHUTDOWN.wire() as usize],
            0
        );
    }
}
