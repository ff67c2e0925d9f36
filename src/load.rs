//! The load generator behind `ordergate-bench load` and the demo: open or closed
//! loop, one run or a capacity sweep, a progress line while it runs, and
//! the outputs (`.hgrm`, JSON, SVG; see [`execute`]).
//!
//! ```text
//!  Fleet::start ── logs on `sessions` sessions ── spreads them over `threads` threads (optionally pinned)
//!   per step, each thread:
//!     ┌─ epoll: read the sessions whose sockets are readable, match replies to requests
//!     ├─ open loop: send every operation whose INTENDED time has come (a fixed schedule)
//!     │  closed loop: send a session's next operation as soon as its last one is answered
//!     ├─ idle: poll while replies are outstanding or a send is < 2 ms away,
//!     │        else block in epoll_wait until a frame or just before the next send
//!     ├─ every 100 ms: publish its counts and recent latencies (the progress line reads them)
//!     └─ end: wait for the outstanding replies → the step's LoadReport
//!   Fleet::finish: MassCancel + Logout per session
//!  run_load  = one step (warm-up + duration) + finish
//!  run_sweep = steps at rising offered rates (each after a short settle) + finish
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
//! the warm-up are sent but neither counted nor recorded. An operation that
//! falls due while every order slot of its session waits on the gateway is
//! not skipped: it is *deferred*, sent once a reply frees a slot, its
//! latency still from its intended time. Operations due after their session
//! ended are counted apart (`unsent_ended`), never as "behind schedule".
//!
//! **Honest reports.** [`LoadReport::problems`] lists what makes a run's
//! figures something other than the gateway's answer to the load (rejects,
//! sessions ended or failed, replies lost); a run with any says `NOT A
//! CLEAN RUN` first, and `ordergate-bench load` exits 3.
//!
//! **Closed loop.** Each session has one request outstanding: it sends the
//! next as soon as the previous got its first reply, and the latency is
//! from the actual send. That measures service time, not queueing, and the
//! rate is whatever the round trip allows: the report gives the achieved
//! rate and no offered one.
//!
//! **Sweeps.** [`run_sweep`] keeps the same sessions logged on and runs one
//! open-loop step per offered rate (`start`, `start × factor`, …, `max`),
//! each measured after a short settle, until a step's p99 passes the SLO,
//! its achieved rate falls below 95 % of the offered one, or the gateway
//! refuses or loses requests. The last step that passed is the highest
//! sustainable rate.
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
//! Memory is allocated when the sessions are set up and at each step's
//! start and end; the send/receive loop allocates nothing per message.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, IsTerminal, Write as _};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

use ordergate::auth::keys::MSGS_PER_SEC_MAX;

use crate::plot;
use ordergate::rng::SplitMix;
use ordergate::sys::Readiness;
use ordergate::wire::codes::{CancelReason, Environment, RejectReason, Side, TerminateReason};
use ordergate_client::blocking::{
    ClientError, ConnectOptions, Connection, NonceSource, Order, Reply,
};

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

/// Load threads at most: more than any host gives a load generator cores
/// for; each costs a stack and four histograms (~1 MiB).
pub const THREADS_MAX: usize = 256;

/// How long the end of a step waits for the outstanding replies, and the
/// end of a run for the mass cancels' acks, then for the Logouts' Terminates.
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

/// How often a load thread publishes its counts and recent latencies for
/// the progress line: a try-lock and a pointer swap, so it never waits.
const PUBLISH_INTERVAL_NS: u64 = 100_000_000;
/// How often the progress line is printed.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// A step starts this long after it is announced, so every thread starts
/// on the same clock.
const STEP_START_DELAY: Duration = Duration::from_millis(5);
/// Beyond a step's planned end and its drain, how long the coordinator
/// waits for the threads' reports before it gives up on them.
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// The crossing price, and how far from it resting orders go (in ticks).
const PRICE_BASE: i64 = 10_000;
const PRICE_SPREAD: u64 = 20;
const CROSSING_QTY: u32 = 10;
const QTY_MAX: u64 = 100;

/// Percentiles of the table, the JSON summary and the sweep:
/// (label, JSON key, quantile).
pub const PERCENTILES: [(&str, &str, f64); 5] = [
    ("p50", "p50", 0.50),
    ("p90", "p90", 0.90),
    ("p99", "p99", 0.99),
    ("p99.9", "p99_9", 0.999),
    ("p99.99", "p99_99", 0.9999),
];

/// How requests are paced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// At the offered rate on a fixed schedule, latency from the intended
    /// send (coordinated-omission corrected).
    #[default]
    Open,
    /// One request outstanding per session: the next goes when the previous
    /// is answered; latency from the actual send.
    Closed,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Open => "open",
            Mode::Closed => "closed",
        }
    }
}

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
    /// # Errors
    ///
    /// The percentages do not add up, new is 0, or crossing is above 100.
    pub fn check(&self) -> Result<(), String> {
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

    /// "new 50 / cancel 35 / replace 15, crossing 20%".
    pub fn describe(&self) -> String {
        format!(
            "new {} / cancel {} / replace {}, crossing {}%",
            self.new, self.cancel, self.replace, self.crossing
        )
    }
}

/// `--mix`: `KIND=PERCENT` pairs separated by commas, kinds `new`, `cancel`
/// and `replace`, each at most once, summing to 100 (a kind left out is
/// 0%): `new=60,cancel=30,replace=10`. The crossing share is the default
/// one (`--crossing` sets it).
///
/// # Errors
///
/// What is wrong, naming the part of the text that is.
pub fn parse_mix(text: &str) -> Result<Mix, String> {
    const FORM: &str = "give KIND=PERCENT pairs, e.g. new=60,cancel=30,replace=10";
    if text.trim().is_empty() {
        return Err(format!("empty; {FORM}"));
    }
    let mut pct = [None::<u32>; 3];
    for part in text.split(',') {
        let part = part.trim();
        let Some((kind, value)) = part.split_once('=') else {
            return Err(format!("`{part}` is not KIND=PERCENT; {FORM}"));
        };
        let (kind, value) = (kind.trim(), value.trim());
        let index = match kind {
            "new" => 0,
            "cancel" => 1,
            "replace" => 2,
            "crossing" => {
                return Err(format!(
                    "`{part}`: the crossing share has its own flag, --crossing PCT"
                ));
            }
            _ => {
                return Err(format!(
                    "`{part}`: unknown kind `{kind}`; the kinds are new, cancel and replace"
                ));
            }
        };
        let value = value
            .parse::<u32>()
            .ok()
            .filter(|v| *v <= 100)
            .ok_or_else(|| format!("`{part}`: `{value}` is not a whole percentage 0..=100"))?;
        if pct[index].replace(value).is_some() {
            return Err(format!("`{part}`: {kind} is given twice"));
        }
    }
    let mix = Mix {
        new: pct[0].unwrap_or(0),
        cancel: pct[1].unwrap_or(0),
        replace: pct[2].unwrap_or(0),
        crossing: Mix::default().crossing,
    };
    mix.check()?;
    Ok(mix)
}

/// `--pin CORES`: core ids separated by commas, or ranges `a-b`: `2,3`,
/// `4-7`, `0,2-3`. Sorted, without repeats.
///
/// # Errors
///
/// What is wrong, naming the part of the text that is.
pub fn parse_cores(text: &str) -> Result<Vec<usize>, String> {
    /// Above any core id a host has.
    const CORE_ID_MAX: usize = 4095;
    let core = |part: &str, s: &str| -> Result<usize, String> {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|c| *c <= CORE_ID_MAX)
            .ok_or_else(|| {
                format!(
                    "`{part}`: `{}` is not a core id 0..={CORE_ID_MAX}",
                    s.trim()
                )
            })
    };
    let mut cores = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (core(part, a)?, core(part, b)?);
                if a > b {
                    return Err(format!("`{part}`: the range runs backwards"));
                }
                cores.extend(a..=b);
            }
            None => cores.push(core(part, part)?),
        }
    }
    cores.sort_unstable();
    cores.dedup();
    Ok(cores)
}

/// Everything a load run needs. `Debug` does not show the secret.
#[derive(Clone)]
pub struct LoadParams {
    pub connect: SocketAddr,
    pub key_id: u64,
    pub secret: [u8; 32],
    pub sessions: usize,
    pub mode: Mode,
    /// Operations per second, all sessions together (offered rate; open
    /// loop only).
    pub rate: u64,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    /// Time before the measurement: sent, not counted.
    pub warmup: Duration,
    pub mix: Mix,
    /// Threads driving the sessions; 0 = `min(sessions, available_parallelism)`.
    pub threads: usize,
    /// Cores the load threads are pinned to, thread `i` to
    /// `pin_cores[i % len]`; empty = not pinned.
    pub pin_cores: Vec<usize>,
    /// The instrument every order is for (the embedded engine has `1..=100`).
    pub instrument_id: u32,
    pub environment: Environment,
    /// Print a progress line on stderr once a second while it runs.
    pub progress: bool,
}

impl std::fmt::Debug for LoadParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadParams")
            .field("connect", &self.connect)
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("sessions", &self.sessions)
            .field("mode", &self.mode)
            .field("rate", &self.rate)
            .field("duration", &self.duration)
            .field("warmup", &self.warmup)
            .field("mix", &self.mix)
            .field("threads", &self.threads)
            .field("pin_cores", &self.pin_cores)
            .field("instrument_id", &self.instrument_id)
            .field("environment", &self.environment)
            .field("progress", &self.progress)
            .finish()
    }
}

impl LoadParams {
    /// Defaults for everything but where to connect and the key: 4 sessions,
    /// open loop at 20 000 orders/s for 5 s after a 1 s warm-up, the default
    /// mix, threads unpinned, no progress line.
    pub fn new(connect: SocketAddr, key_id: u64, secret: [u8; 32]) -> LoadParams {
        LoadParams {
            connect,
            key_id,
            secret,
            sessions: 4,
            mode: Mode::Open,
            rate: 20_000,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            mix: Mix::default(),
            threads: 0,
            pin_cores: Vec::new(),
            instrument_id: 1,
            environment: Environment::Production,
            progress: false,
        }
    }

    /// # Errors
    ///
    /// What is inconsistent, in words a user of the command line knows.
    pub fn check(&self) -> Result<(), String> {
        if self.sessions == 0 {
            return Err("sessions must be at least 1".into());
        }
        if self.mode == Mode::Open && self.rate < self.sessions as u64 {
            return Err(format!(
                "rate {} orders/s is below one order per second per session ({} sessions)",
                self.rate, self.sessions
            ));
        }
        if self.duration.is_zero() {
            return Err("duration must be above 0".into());
        }
        if self.threads > THREADS_MAX {
            return Err(format!(
                "threads {} is above the most allowed, {THREADS_MAX}",
                self.threads
            ));
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

    /// "4 sessions on 2 threads (pinned to cores 0, 1)".
    fn describe_threads(&self) -> String {
        let threads = self.thread_count();
        let mut s = format!(
            "{} session{} on {} thread{}",
            self.sessions,
            plural(self.sessions as u64),
            threads,
            plural(threads as u64)
        );
        if !self.pin_cores.is_empty() {
            let cores: Vec<String> = self.pin_cores.iter().map(usize::to_string).collect();
            let _ = write!(s, " (pinned to cores {})", cores.join(", "));
        }
        s
    }
}

/// Reads an API secret from a 0600 file of 64 hex digits (`ordergate-os`,
/// which the client library re-exports for firms).
pub use ordergate_os::read_secret_file;

/// What a load run (or one sweep step) saw. Counts cover requests intended
/// after the warm-up (and Fills received after it).
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub sessions: usize,
    pub threads: usize,
    pub mode: Mode,
    /// Offered operations per second (0 in a closed loop: none is offered).
    pub rate: u64,
    pub duration: Duration,
    pub warmup: Duration,
    pub sent_new: u64,
    pub sent_cancel: u64,
    pub sent_replace: u64,
    /// Operations due before the end that the generator never got to send
    /// (it fell behind its schedule; open loop). Not those of a session
    /// that had ended: see `unsent_ended`.
    pub behind: u64,
    /// Operations that could not go out when due because every order slot
    /// of their session was waiting on the gateway (a sign it is far
    /// behind): each was sent as soon as a slot was answered, and its
    /// latency counts from its intended time, so it is in the percentiles
    /// (or, if it was still waiting at the end, in `behind`).
    pub deferred: u64,
    /// Operations due after their session had ended (terminated by the
    /// gateway, or failed): never sent, and not "behind schedule".
    pub unsent_ended: u64,
    /// Of the UNKNOWN_ORDER rejects, those answering a cancel or replace of
    /// an order that had just filled (the Fill came first): a race the
    /// order flow invites, not a refusal of the load.
    pub raced_fill: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Answers to cancels (reason USER).
    pub canceled: u64,
    pub replaced: u64,
    pub fills: u64,
    pub heartbeats: u64,
    /// OrderRejected by reason code (index = code).
    pub rejects: [u64; RejectReason::ALL.len() + 1],
    /// Requests that never got their first reply.
    pub unanswered: u64,
    /// Orders canceled by the end-of-run MassCancel.
    pub cleanup_canceled: u64,
    /// Terminates received by reason code (index = code), LOGOUT included.
    pub terminates: [u64; TerminateReason::ALL.len()],
    /// Sessions that failed (socket or protocol), with what happened.
    pub errors: Vec<String>,
    /// Intended send (open loop) or send (closed loop) → first reply, ns.
    pub latency_ns: Histogram<u64>,
    /// Intended send → actual send, ns: how far the generator itself ran
    /// behind its schedule (part of `latency_ns`, not the gateway's doing).
    /// Empty in a closed loop.
    pub send_lag_ns: Histogram<u64>,
}

impl LoadReport {
    fn empty(params: &LoadParams, threads: usize) -> LoadReport {
        LoadReport {
            sessions: params.sessions,
            threads,
            mode: params.mode,
            rate: match params.mode {
                Mode::Open => params.rate,
                Mode::Closed => 0,
            },
            duration: params.duration,
            warmup: params.warmup,
            sent_new: 0,
            sent_cancel: 0,
            sent_replace: 0,
            behind: 0,
            deferred: 0,
            unsent_ended: 0,
            raced_fill: 0,
            accepted: 0,
            rejected: 0,
            canceled: 0,
            replaced: 0,
            fills: 0,
            heartbeats: 0,
            rejects: [0; RejectReason::ALL.len() + 1],
            unanswered: 0,
            cleanup_canceled: 0,
            terminates: [0; TerminateReason::ALL.len()],
            errors: Vec::new(),
            latency_ns: new_histogram(),
            send_lag_ns: new_histogram(),
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent_new + self.sent_cancel + self.sent_replace
    }

    /// First replies received: `sent - unanswered` when all is well.
    pub fn replies(&self) -> u64 {
        self.accepted + self.rejected + self.canceled + self.replaced
    }

    /// Operations sent per second of measured time.
    pub fn achieved_rate(&self) -> f64 {
        self.sent() as f64 / self.duration.as_secs_f64()
    }

    /// The offered rate, if the loop was open.
    pub fn offered_rate(&self) -> Option<u64> {
        (self.mode == Mode::Open).then_some(self.rate)
    }

    /// Terminates other than LOGOUT: sessions the gateway ended.
    pub fn abnormal_terminates(&self) -> Vec<(&'static str, u64)> {
        TerminateReason::ALL
            .iter()
            .filter(|r| **r != TerminateReason::LOGOUT)
            .map(|r| (r.name(), self.terminates[r.wire() as usize]))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    fn merge(&mut self, other: &LoadReport) {
        self.sent_new += other.sent_new;
        self.sent_cancel += other.sent_cancel;
        self.sent_replace += other.sent_replace;
        self.behind += other.behind;
        self.deferred += other.deferred;
        self.unsent_ended += other.unsent_ended;
        self.raced_fill += other.raced_fill;
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

    /// What the latency is measured from, for labels.
    fn latency_origin(&self) -> &'static str {
        match self.mode {
            Mode::Open => "intended send",
            Mode::Closed => "send",
        }
    }

    /// What makes this run's figures something other than the gateway's
    /// answer to the load offered, most important first: requests refused
    /// (every reject but the UNKNOWN_ORDERs that raced a fill), sessions
    /// the gateway ended or that failed (and what they then never sent),
    /// requests never answered. Empty: a clean run.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, n) in self.rejects_by_name() {
            let n = if name == RejectReason::UNKNOWN_ORDER.name() {
                n.saturating_sub(self.raced_fill)
            } else {
                n
            };
            if n == 0 {
                continue;
            }
            let why = match name {
                "THROTTLED" => {
                    let offered = match self.mode {
                        Mode::Open => format!(
                            " ({} orders/s offered over {} session{}, {} each)",
                            self.rate,
                            self.sessions,
                            plural(self.sessions as u64),
                            self.rate / self.sessions.max(1) as u64
                        ),
                        Mode::Closed => String::new(),
                    };
                    format!(
                        ": the key's msgs_per_sec/burst (keys file) or each session's limit, [session] msgs_per_sec/burst in the gateway's config (default 1000/s, burst 100), is below the load{offered}"
                    )
                }
                "ENGINE_BUSY" => ": the gateway's command ring to its engine was full".to_owned(),
                "NOT_PERMITTED" => ": the key lacks the trade or cancel scope".to_owned(),
                "RISK_MAX_QTY" | "RISK_MAX_NOTIONAL" => format!(
                    ": the key's risk limits refuse orders of up to {QTY_MAX} at about {PRICE_BASE} ticks"
                ),
                _ => String::new(),
            };
            out.push(format!("{n} request{} rejected {name}{why}", plural(n)));
        }
        let abnormal = self.abnormal_terminates();
        if !abnormal.is_empty() {
            let total: u64 = abnormal.iter().map(|x| x.1).sum();
            let list: Vec<String> = abnormal.iter().map(|(n, c)| format!("{n} {c}")).collect();
            let mut line = format!(
                "{total} session{} terminated by the gateway: {}",
                plural(total),
                list.join(", ")
            );
            if abnormal
                .iter()
                .any(|(n, _)| *n == TerminateReason::THROTTLE_BREACH.name())
            {
                line.push_str(
                    " (THROTTLE_BREACH ends a session that keeps sending through a run of THROTTLED: the generator does not slow down for them)",
                );
            }
            out.push(line);
        }
        if !self.errors.is_empty() {
            let n = self.errors.len() as u64;
            out.push(format!(
                "{n} session{} or thread{} failed (the errors are below)",
                plural(n),
                plural(n)
            ));
        }
        if self.unsent_ended > 0 {
            out.push(format!(
                "{} operation{} due after their session ended, never sent",
                self.unsent_ended,
                plural(self.unsent_ended)
            ));
        }
        if self.unanswered > 0 {
            out.push(format!(
                "{} request{} never answered",
                self.unanswered,
                plural(self.unanswered)
            ));
        }
        out
    }

    /// No problems: the figures are the gateway's answer to the load.
    pub fn clean(&self) -> bool {
        self.problems().is_empty()
    }

    /// The report as text (what `print` prints; the demo's form): the
    /// round trip percentiles on one line. A run that was not clean says
    /// so first, with every problem, before any figure.
    pub fn render(&self) -> String {
        self.render_with(false)
    }

    /// As [`render`](Self::render), with the round trip as a percentile
    /// table (p50, p90, p99, p99.9, p99.99, max): what `ordergate-bench load`
    /// prints.
    pub fn render_table(&self) -> String {
        self.render_with(true)
    }

    fn render_with(&self, table: bool) -> String {
        let mut s = String::new();
        let problems = self.problems();
        if !problems.is_empty() {
            let _ = writeln!(
                s,
                "load: NOT A CLEAN RUN: the figures below are not the gateway's answer to this load"
            );
            for p in &problems {
                let _ = writeln!(s, "  - {p}");
            }
        }
        let achieved = self.achieved_rate();
        match self.mode {
            Mode::Open => {
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
                let _ = writeln!(
                    s,
                    "  sent {} (new {}, cancel {}, replace {}); achieved {:.0} orders/s ({:.1}% of offered); behind schedule {}, deferred {}{}",
                    self.sent(),
                    self.sent_new,
                    self.sent_cancel,
                    self.sent_replace,
                    achieved,
                    100.0 * achieved / self.rate.max(1) as f64,
                    self.behind,
                    self.deferred,
                    if self.unsent_ended > 0 {
                        format!(", unsent (session ended) {}", self.unsent_ended)
                    } else {
                        String::new()
                    }
                );
            }
            Mode::Closed => {
                let _ = writeln!(
                    s,
                    "load: closed loop, {} session{} on {} thread{}, one request outstanding per session, for {:.2} s after a {:.2} s warm-up",
                    self.sessions,
                    plural(self.sessions as u64),
                    self.threads,
                    plural(self.threads as u64),
                    self.duration.as_secs_f64(),
                    self.warmup.as_secs_f64()
                );
                let _ = writeln!(
                    s,
                    "  sent {} (new {}, cancel {}, replace {}); achieved {:.0} orders/s",
                    self.sent(),
                    self.sent_new,
                    self.sent_cancel,
                    self.sent_replace,
                    achieved,
                );
            }
        }
        let _ = writeln!(
            s,
            "  replies: accepted {}, rejected {}, canceled {}, replaced {}; fills {}; unanswered {}",
            self.accepted, self.rejected, self.canceled, self.replaced, self.fills, self.unanswered
        );
        let rejects = self.rejects_by_name();
        if !rejects.is_empty() {
            let list: Vec<String> = rejects
                .iter()
                .map(|&(n, c)| {
                    if n == RejectReason::UNKNOWN_ORDER.name() && self.raced_fill > 0 {
                        format!(
                            "{n} {c} ({} of them a cancel or replace that raced a fill: expected)",
                            self.raced_fill
                        )
                    } else {
                        format!("{n} {c}")
                    }
                })
                .collect();
            let _ = writeln!(s, "  rejects by reason: {}", list.join(", "));
        }
        if self.deferred > 0 {
            let _ = writeln!(
                s,
                "  deferred: {} operation{} fell due while all {LIVE_ORDERS_MAX} order slots of their session waited on the gateway, and went out late, once replies freed a slot; their latency runs from the intended send",
                self.deferred,
                plural(self.deferred)
            );
        }
        let abnormal: Vec<String> = self
            .abnormal_terminates()
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
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
        // Every request sent is a sample once answered; what is not in the
        // percentiles is said next to them.
        let mut left_out = Vec::new();
        if self.behind > 0 {
            left_out.push(format!("{} behind schedule, never sent", self.behind));
        }
        if self.unanswered > 0 {
            left_out.push(format!("{} never answered", self.unanswered));
        }
        let left_out = if left_out.is_empty() {
            String::new()
        } else {
            format!("; not in them: {}", left_out.join(", "))
        };
        if table {
            let _ = writeln!(
                s,
                "  round trip from {} to first reply (µs), {} samples{left_out}:",
                self.latency_origin(),
                self.latency_ns.len()
            );
            s.push_str(&percentile_table(&self.latency_ns));
        } else {
            let _ = writeln!(
                s,
                "  round trip from {} (µs): {} ({} samples{left_out})",
                self.latency_origin(),
                percentiles_us(&self.latency_ns),
                self.latency_ns.len()
            );
        }
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

/// The progress line's histograms: the precision of the final ones (3
/// significant digits), so that a p99 shown while the run goes is a value
/// the final table could show too, never above its max. (At 2 digits, a
/// bucket's top is up to 0.8% above the values in it, and "p99 87.9 µs"
/// could precede "max 87.4 µs".) About 220 KiB each, three per thread.
pub fn progress_histogram() -> Histogram<u64> {
    new_histogram()
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

/// The [`PERCENTILES`] and the max of a histogram of nanoseconds, as a
/// two-line table in µs (indented 3; columns of 11, which hold the
/// histogram's highest value, 60 s, as `60000000.00`, plus a space).
pub fn percentile_table(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "    no samples\n".into();
    }
    let mut head = String::from("   ");
    let mut values = String::from("   ");
    for (label, _, q) in PERCENTILES {
        let _ = write!(head, " {label:>11}");
        let _ = write!(values, " {:>11.2}", h.value_at_quantile(q) as f64 / 1_000.0);
    }
    let _ = write!(head, " {:>11}", "max");
    let _ = write!(values, " {:>11.2}", h.max() as f64 / 1_000.0);
    format!("{head}\n{values}\n")
}

/// Runs the load: logs on every session, drives them for warm-up +
/// duration, cancels what is left, logs out, and reports.
///
/// # Errors
///
/// Inconsistent parameters, or a session that could not log on (naming
/// which and why). Failures after the start are in `LoadReport::errors`.
pub fn run_load(params: &LoadParams) -> Result<LoadReport, String> {
    let mut fleet = Fleet::start(params)?;
    let label = params.progress.then_some("load");
    let mut report = fleet.step(params.rate, params.warmup, params.duration, label)?;
    let teardown = fleet.finish()?;
    report.merge(&teardown);
    Ok(report)
}

// ---------------------------------------------------------------------------
// Sweeps

/// A step passes only if its achieved rate is at least this share of the
/// offered one.
pub const SWEEP_ACHIEVED_MIN: f64 = 0.95;
/// Steps one sweep takes at most (a 3 s step: 5 minutes and more).
pub const SWEEP_STEPS_MAX: usize = 100;
/// Bounds on the factor between steps: below 1.05 steps are within the
/// noise of each other; above 10 the knee is missed.
pub const SWEEP_FACTOR_MIN: f64 = 1.05;
pub const SWEEP_FACTOR_MAX: f64 = 10.0;
/// The settle before each step's measurement is a fifth of the step, at
/// most this: time for the queues of the previous, lower rate to change.
pub const SWEEP_SETTLE_MAX: Duration = Duration::from_millis(500);
/// Defaults of the sweep flags.
pub const SWEEP_START_DEFAULT: u64 = 1_000;
pub const SWEEP_FACTOR_DEFAULT: f64 = 1.5;
pub const SWEEP_MAX_DEFAULT: u64 = MSGS_PER_SEC_MAX as u64;
pub const SWEEP_STEP_DEFAULT: Duration = Duration::from_secs(3);

/// What a capacity sweep steps through.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepParams {
    /// A step whose p99 is above this fails.
    pub slo_p99: Duration,
    /// Offered rate of the first step, orders/s.
    pub start: u64,
    /// Each step offers this times the last.
    pub factor: f64,
    /// The last step's rate: the sweep ends there if nothing failed.
    pub max: u64,
    /// Measured time of each step (after its settle).
    pub step_duration: Duration,
}

impl SweepParams {
    /// The defaults around an SLO: from 1000 orders/s, × 1.5, up to the
    /// highest rate a key may have, 3 s steps.
    pub fn new(slo_p99: Duration) -> SweepParams {
        SweepParams {
            slo_p99,
            start: SWEEP_START_DEFAULT,
            factor: SWEEP_FACTOR_DEFAULT,
            max: SWEEP_MAX_DEFAULT,
            step_duration: SWEEP_STEP_DEFAULT,
        }
    }

    /// The offered rate of each step: `start × factor^k` (rounded, always
    /// rising) below `max`, then `max` itself, which replaces the last of
    /// those if it is within `√factor` of it (no near-duplicate last step).
    pub fn rates(&self) -> Vec<u64> {
        let mut out = Vec::new();
        let mut r = self.start.max(1);
        while r < self.max && out.len() <= SWEEP_STEPS_MAX {
            out.push(r);
            r = ((r as f64 * self.factor).round() as u64).max(r + 1);
        }
        if let Some(&last) = out.last()
            && (self.max as f64) / (last as f64) < self.factor.sqrt()
            && out.len() > 1
        {
            out.pop();
        }
        out.push(self.max);
        out
    }

    /// The unmeasured time before each step's measurement.
    pub fn settle(&self) -> Duration {
        (self.step_duration / 5).min(SWEEP_SETTLE_MAX)
    }

    /// # Errors
    ///
    /// What is inconsistent, with these load parameters.
    pub fn check(&self, params: &LoadParams) -> Result<(), String> {
        if params.mode != Mode::Open {
            return Err(
                "a sweep raises the offered rate: it needs the open loop (--mode open)".into(),
            );
        }
        if self.slo_p99.is_zero() {
            return Err("the p99 SLO must be above 0".into());
        }
        if self.start < params.sessions as u64 {
            return Err(format!(
                "sweep start {} orders/s is below one order per second per session ({} sessions)",
                self.start, params.sessions
            ));
        }
        if self.max < self.start {
            return Err(format!(
                "sweep max {} orders/s is below its start, {}",
                self.max, self.start
            ));
        }
        if !(SWEEP_FACTOR_MIN..=SWEEP_FACTOR_MAX).contains(&self.factor) {
            return Err(format!(
                "sweep step factor {} is outside {SWEEP_FACTOR_MIN}..={SWEEP_FACTOR_MAX}",
                self.factor
            ));
        }
        if self.step_duration.is_zero() {
            return Err("the step duration must be above 0".into());
        }
        let steps = self.rates().len();
        if steps > SWEEP_STEPS_MAX {
            return Err(format!(
                "from {} to {} orders/s by × {} is more than {SWEEP_STEPS_MAX} steps: raise the factor or the start, or lower the max",
                self.start, self.max, self.factor
            ));
        }
        Ok(())
    }
}

/// One step of a sweep: its report and why it failed, if it did.
#[derive(Clone, Debug)]
pub struct SweepStep {
    pub offered: u64,
    pub report: LoadReport,
    /// Empty: the step is sustainable.
    pub problems: Vec<String>,
}

impl SweepStep {
    /// Judges a step against the SLO and the other conditions a
    /// sustainable rate must meet: every session alive, every request
    /// answered, no THROTTLED or ENGINE_BUSY (the gateway or the key
    /// refusing load is not capacity), the achieved rate within 95 % of
    /// the offered one, and the p99 within the SLO.
    pub fn judge(report: LoadReport, slo_p99: Duration) -> SweepStep {
        let mut problems = Vec::new();
        let abnormal = report.abnormal_terminates();
        if !report.errors.is_empty() || !abnormal.is_empty() {
            let failed = report.errors.len() as u64 + abnormal.iter().map(|x| x.1).sum::<u64>();
            problems.push(format!("{failed} sessions failed"));
        }
        if report.unanswered > 0 {
            problems.push(format!("{} unanswered", report.unanswered));
        }
        for reason in [RejectReason::THROTTLED, RejectReason::ENGINE_BUSY] {
            let n = report.rejects[reason.wire() as usize];
            if n > 0 {
                problems.push(format!("{} {n}", reason.name()));
            }
        }
        let achieved = report.achieved_rate() / report.rate.max(1) as f64;
        if achieved < SWEEP_ACHIEVED_MIN {
            problems.push(format!("achieved {:.0}% of offered", 100.0 * achieved));
        }
        if report.latency_ns.is_empty() {
            problems.push("no replies".into());
        } else if report.latency_ns.value_at_quantile(0.99) > slo_p99.as_nanos() as u64 {
            problems.push("p99 over the SLO".into());
        }
        SweepStep {
            offered: report.rate,
            report,
            problems,
        }
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// "ok", or the problems.
    pub fn verdict(&self) -> String {
        if self.ok() {
            "ok".into()
        } else {
            self.problems.join("; ")
        }
    }

    /// The step's row of the sweep table.
    pub fn render_row(&self) -> String {
        let h = &self.report.latency_ns;
        let us = |q: Option<f64>| -> String {
            if h.is_empty() {
                return "-".into();
            }
            let ns = q.map_or(h.max(), |q| h.value_at_quantile(q));
            format!("{:.2}", ns as f64 / 1_000.0)
        };
        format!(
            "  {:>10} {:>11.0} {:>10} {:>10} {:>10} {:>10}  {}\n",
            self.offered,
            self.report.achieved_rate(),
            us(Some(0.5)),
            us(Some(0.99)),
            us(Some(0.999)),
            us(None),
            self.verdict()
        )
    }
}

/// A sweep's steps, in order; it stopped at the first that failed.
#[derive(Clone, Debug)]
pub struct SweepReport {
    pub sweep: SweepParams,
    pub steps: Vec<SweepStep>,
    /// The end of the run: mass cancels and logouts (errors and
    /// terminates there).
    pub teardown: LoadReport,
}

/// The sweep's heading and the table's header row.
pub fn sweep_header(params: &LoadParams, sweep: &SweepParams) -> String {
    format!(
        "sweep: {}; p99 SLO {}; steps of {:.2} s after a {:.2} s settle ({:.2} s warm-up first), × {} from {} to {} orders/s; mix {}\n  {:>10} {:>11} {:>10} {:>10} {:>10} {:>10}  verdict\n",
        params.describe_threads(),
        plot::fmt_latency_us(sweep.slo_p99.as_nanos() as f64 / 1_000.0),
        sweep.step_duration.as_secs_f64(),
        sweep.settle().as_secs_f64(),
        params.warmup.max(sweep.settle()).as_secs_f64(),
        sweep.factor,
        sweep.start,
        sweep.max,
        params.mix.describe(),
        "offered/s",
        "achieved/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
    )
}

impl SweepReport {
    /// The offered rate of the last step that passed (they pass in a row:
    /// the sweep stops at the first failure).
    pub fn highest_sustainable(&self) -> Option<u64> {
        self.steps
            .iter()
            .take_while(|s| s.ok())
            .last()
            .map(|s| s.offered)
    }

    /// The sentence under the table.
    pub fn render_conclusion(&self) -> String {
        let mut s = String::new();
        let failed = self.steps.iter().find(|s| !s.ok());
        match (self.highest_sustainable(), failed) {
            (Some(rate), None) => {
                let _ = writeln!(
                    s,
                    "highest sustainable rate: {rate} orders/s (every step passed; the sweep ended at its max: raise --sweep-max to find the limit)"
                );
            }
            (Some(rate), Some(next)) => {
                let _ = writeln!(
                    s,
                    "highest sustainable rate: {rate} orders/s (the next step, {} orders/s, failed: {})",
                    next.offered,
                    next.verdict()
                );
            }
            (None, Some(first)) => {
                let _ = writeln!(
                    s,
                    "no sustainable rate: the first step, {} orders/s, failed: {} (lower --sweep-start)",
                    first.offered,
                    first.verdict()
                );
            }
            (None, None) => {
                let _ = writeln!(s, "no step ran");
            }
        }
        let abnormal = self.teardown.abnormal_terminates();
        if !abnormal.is_empty() {
            let list: Vec<String> = abnormal.iter().map(|(n, c)| format!("{n} {c}")).collect();
            let _ = writeln!(
                s,
                "  at the end, sessions terminated by the gateway: {}",
                list.join(", ")
            );
        }
        for e in &self.teardown.errors {
            let _ = writeln!(s, "  error at the end: {e}");
        }
        s
    }

    /// Header, every row, conclusion.
    pub fn render(&self, params: &LoadParams) -> String {
        let mut s = sweep_header(params, &self.sweep);
        for step in &self.steps {
            s.push_str(&step.render_row());
        }
        s.push_str(&self.render_conclusion());
        s
    }
}

/// Runs a capacity sweep: logs on the sessions once, then one open-loop
/// step per rate of [`SweepParams::rates`] (the first after `params.warmup`
/// or the settle, whichever is longer; the others after the settle), until
/// a step fails ([`SweepStep::judge`]). `on_step` sees each step as it
/// ends (to print its row).
///
/// # Errors
///
/// As [`run_load`], and inconsistent sweep parameters.
pub fn run_sweep(
    params: &LoadParams,
    sweep: &SweepParams,
    mut on_step: impl FnMut(&SweepStep),
) -> Result<SweepReport, String> {
    params.check()?;
    sweep.check(params)?;
    let rates = sweep.rates();
    let mut fleet = Fleet::start(params)?;
    let mut steps = Vec::new();
    for (k, &rate) in rates.iter().enumerate() {
        let settle = if k == 0 {
            params.warmup.max(sweep.settle())
        } else {
            sweep.settle()
        };
        let label = format!("sweep step {}/{} at {rate}/s", k + 1, rates.len());
        let report = fleet.step(
            rate,
            settle,
            sweep.step_duration,
            params.progress.then_some(label.as_str()),
        )?;
        let step = SweepStep::judge(report, sweep.slo_p99);
        on_step(&step);
        let ok = step.ok();
        steps.push(step);
        if !ok {
            break;
        }
    }
    let teardown = fleet.finish()?;
    Ok(SweepReport {
        sweep: sweep.clone(),
        steps,
        teardown,
    })
}

// ---------------------------------------------------------------------------
// JSON

/// A JSON number with 3 decimals (ns resolution for µs and seconds),
/// `null` if not finite.
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1_000.0).round() / 1_000.0)
    } else {
        Value::Null
    }
}

/// The document, indented, with a final newline.
fn render(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a Value has string keys");
    text.push('\n');
    text
}

fn environment_name(environment: Environment) -> &'static str {
    match environment {
        Environment::Production => "production",
        Environment::Sandbox => "sandbox",
    }
}

/// The parameters, never the secret. A sweep sets the rate and the
/// duration per step: they are null here and in the sweep object.
fn params_json(params: &LoadParams, sweep: bool) -> Value {
    let fixed_rate = params.mode == Mode::Open && !sweep;
    json!({
        "connect": params.connect.to_string(),
        "key_id": params.key_id,
        "sessions": params.sessions,
        "threads": params.thread_count(),
        "pin_cores": params.pin_cores,
        "mode": params.mode.name(),
        "rate": fixed_rate.then_some(params.rate),
        "duration_s": if sweep { Value::Null } else { num(params.duration.as_secs_f64()) },
        "warmup_s": num(params.warmup.as_secs_f64()),
        "mix": {
            "new": params.mix.new,
            "cancel": params.mix.cancel,
            "replace": params.mix.replace,
            "crossing": params.mix.crossing,
        },
        "instrument_id": params.instrument_id,
        "environment": environment_name(params.environment),
    })
}

/// Count, min, mean, the [`PERCENTILES`] and max, in ns (null when empty).
fn latency_json(h: &Histogram<u64>) -> Value {
    let value = |v: u64| if h.is_empty() { Value::Null } else { json!(v) };
    let mut map = Map::new();
    map.insert("count".into(), json!(h.len()));
    map.insert("min".into(), value(h.min()));
    map.insert(
        "mean".into(),
        if h.is_empty() {
            Value::Null
        } else {
            num(h.mean())
        },
    );
    for (_, key, q) in PERCENTILES {
        map.insert(key.into(), value(h.value_at_quantile(q)));
    }
    map.insert("max".into(), value(h.max()));
    Value::Object(map)
}

fn by_name(pairs: Vec<(&'static str, u64)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(n, c)| (n.to_owned(), json!(c)))
            .collect(),
    )
}

/// The terminate reasons that ended sessions, by name (those that did).
fn terminates_json(terminates: &[u64]) -> Value {
    by_name(
        TerminateReason::ALL
            .iter()
            .map(|t| (t.name(), terminates[t.wire() as usize]))
            .filter(|&(_, n)| n > 0)
            .collect(),
    )
}

/// Counts, rates and percentiles of one run or step.
fn result_json(r: &LoadReport) -> Map<String, Value> {
    let value = json!({
        "clean": r.clean(),
        "problems": r.problems(),
        "offered_rate": r.offered_rate(),
        "achieved_rate": num(r.achieved_rate()),
        "duration_s": num(r.duration.as_secs_f64()),
        "warmup_s": num(r.warmup.as_secs_f64()),
        "sent": {
            "total": r.sent(),
            "new": r.sent_new,
            "cancel": r.sent_cancel,
            "replace": r.sent_replace,
        },
        "replies": {
            "total": r.replies(),
            "accepted": r.accepted,
            "rejected": r.rejected,
            "canceled": r.canceled,
            "replaced": r.replaced,
        },
        "rejects": by_name(r.rejects_by_name()),
        "fills": r.fills,
        "unanswered": r.unanswered,
        "behind_schedule": r.behind,
        "deferred": r.deferred,
        "unsent_ended_sessions": r.unsent_ended,
        "unknown_order_raced_fill": r.raced_fill,
        "heartbeats": r.heartbeats,
        "cleanup_canceled": r.cleanup_canceled,
        "terminates": terminates_json(&r.terminates),
        "errors": r.errors,
        "latency_ns": latency_json(&r.latency_ns),
        "send_lag_ns": latency_json(&r.send_lag_ns),
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("json! with braces makes an object"),
    }
}

/// The JSON summary of a run: `{"tool", "version", "params", "result"}`.
pub fn report_json(params: &LoadParams, report: &LoadReport) -> String {
    render(&json!({
        "tool": "ordergate-bench load",
        "version": env!("CARGO_PKG_VERSION"),
        "params": params_json(params, false),
        "result": result_json(report),
    }))
}

/// The JSON summary of a sweep: `{"tool", "version", "params", "sweep":
/// {…, "highest_sustainable_rate", "steps": [...], "teardown"}}`.
pub fn sweep_json(params: &LoadParams, sweep: &SweepReport) -> String {
    let steps: Vec<Value> = sweep
        .steps
        .iter()
        .map(|step| {
            let mut map = result_json(&step.report);
            map.insert("offered_rate".into(), json!(step.offered));
            map.insert("ok".into(), json!(step.ok()));
            map.insert("verdict".into(), json!(step.verdict()));
            Value::Object(map)
        })
        .collect();
    let s = &sweep.sweep;
    render(&json!({
        "tool": "ordergate-bench load --sweep",
        "version": env!("CARGO_PKG_VERSION"),
        "params": params_json(params, true),
        "sweep": {
            "slo_p99_ns": s.slo_p99.as_nanos() as u64,
            "start": s.start,
            "factor": num(s.factor),
            "max": s.max,
            "step_duration_s": num(s.step_duration.as_secs_f64()),
            "settle_s": num(s.settle().as_secs_f64()),
            "highest_sustainable_rate": sweep.highest_sustainable(),
            "steps": steps,
            "teardown": {
                "cleanup_canceled": sweep.teardown.cleanup_canceled,
                "terminates": terminates_json(&sweep.teardown.terminates),
                "errors": sweep.teardown.errors,
            },
        },
    }))
}

// ---------------------------------------------------------------------------
// Plots

/// "p50 12.3 · p99 45.6 · p99.9 80.1 · max 140 µs".
fn legend_figures(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let us = |ns: u64| plot::fmt_num(ns as f64 / 1_000.0);
    format!(
        "p50 {} · p99 {} · p99.9 {} · max {} µs",
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max())
    )
}

/// The percentile distribution of a run: the round trip, and in an open
/// loop the generator's own lag (intended → sent) under it.
pub fn report_chart(params: &LoadParams, report: &LoadReport) -> plot::Chart {
    let title = match report.mode {
        Mode::Open => format!(
            "ordergate-bench load: open loop at {} orders/s offered",
            report.rate
        ),
        Mode::Closed => {
            "ordergate-bench load: closed loop, one request outstanding per session".to_owned()
        }
    };
    let subtitle = format!(
        "{} · {:.1} s measured after {:.1} s warm-up · mix {}\nachieved {:.0} orders/s · {} samples",
        params.describe_threads(),
        report.duration.as_secs_f64(),
        report.warmup.as_secs_f64(),
        params.mix.describe(),
        report.achieved_rate(),
        report.latency_ns.len()
    );
    let mut series = vec![(
        format!(
            "round trip, {} → first reply: {}",
            report.latency_origin(),
            legend_figures(&report.latency_ns)
        ),
        &report.latency_ns,
    )];
    if !report.send_lag_ns.is_empty() {
        series.push((
            format!(
                "generator lag, intended → sent: {}",
                legend_figures(&report.send_lag_ns)
            ),
            &report.send_lag_ns,
        ));
    }
    plot::percentile_chart(&title, &subtitle, &series)
}

/// p50, p99, p99.9 against the offered rate, the SLO and the highest
/// sustainable rate.
pub fn sweep_chart(params: &LoadParams, sweep: &SweepReport) -> plot::Chart {
    let points: Vec<plot::SweepPoint> = sweep
        .steps
        .iter()
        .filter(|s| !s.report.latency_ns.is_empty())
        .map(|s| {
            let h = &s.report.latency_ns;
            plot::SweepPoint {
                offered: s.offered as f64,
                p50_ns: h.value_at_quantile(0.5) as f64,
                p99_ns: h.value_at_quantile(0.99) as f64,
                p999_ns: h.value_at_quantile(0.999) as f64,
            }
        })
        .collect();
    let slo = plot::fmt_latency_us(sweep.sweep.slo_p99.as_nanos() as f64 / 1_000.0);
    let title = match sweep.highest_sustainable() {
        Some(r) => format!(
            "ordergate-bench load --sweep: highest sustainable {} orders/s at p99 ≤ {slo}",
            plot::fmt_rate(r as f64)
        ),
        None => format!("ordergate-bench load --sweep: no step met p99 ≤ {slo}"),
    };
    let verdict = match sweep.steps.iter().find(|s| !s.ok()) {
        Some(failed) => format!(
            "stopped at {}/s: {}",
            plot::fmt_rate(failed.offered as f64),
            failed.verdict()
        ),
        None => "every step passed".to_owned(),
    };
    let subtitle = format!(
        "{} · {:.1} s steps after {:.1} s settle · mix {}\n{verdict}",
        params.describe_threads(),
        sweep.sweep.step_duration.as_secs_f64(),
        sweep.sweep.settle().as_secs_f64(),
        params.mix.describe()
    );
    plot::sweep_chart(
        &title,
        &subtitle,
        &points,
        sweep.sweep.slo_p99.as_nanos() as f64,
        sweep.highest_sustainable().map(|r| r as f64),
    )
}

// ---------------------------------------------------------------------------
// Outputs and the command

/// The files `ordergate-bench load` writes besides its report on stdout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    /// The round trip's percentile distribution (`.hgrm`, µs); a sweep
    /// writes one per step, see [`step_hgrm_path`].
    pub hgrm: Option<PathBuf>,
    /// The JSON summary.
    pub json: Option<PathBuf>,
    /// The SVG plot.
    pub plot: Option<PathBuf>,
}

/// Where a sweep step's `.hgrm` goes: `out.hgrm` → `out-1500.hgrm`.
pub fn step_hgrm_path(base: &Path, offered: u64) -> PathBuf {
    let stem = base
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{offered}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{offered}"),
    };
    base.with_file_name(name)
}

impl Outputs {
    /// Refuses what cannot be written as asked: a plot is SVG, so a
    /// `--plot` path must end `.svg` (a `.png` holding SVG would be a lie).
    ///
    /// # Errors
    ///
    /// The path and what to do instead.
    pub fn check(&self) -> Result<(), String> {
        if let Some(path) = &self.plot {
            let svg = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
            if !svg {
                return Err(format!(
                    "--plot {}: the plot is drawn as SVG only; give a path ending .svg (convert it afterwards if need be, e.g. rsvg-convert -o plot.png plot.svg)",
                    path.display()
                ));
            }
        }
        Ok(())
    }

    /// Creates (empties) every file now, so that a path that cannot be
    /// written fails before the run rather than after it; for a sweep's
    /// `.hgrm` files, checks their directory.
    ///
    /// # Errors
    ///
    /// The file and why it cannot be written.
    pub fn prepare(&self, sweep: bool) -> Result<(), String> {
        self.check()?;
        for path in [&self.json, &self.plot].into_iter().flatten() {
            File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        if let Some(path) = &self.hgrm {
            if sweep {
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                if !dir.is_dir() {
                    return Err(format!(
                        "cannot write {}: {} is not a directory",
                        step_hgrm_path(path, 0).display(),
                        dir.display()
                    ));
                }
            } else {
                File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
}

fn write_file(path: &Path, text: &str, what: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("load: wrote {} ({what})", path.display());
    Ok(())
}

/// Writes a run's `.hgrm`, JSON and plot, as `outputs` asks.
///
/// # Errors
///
/// A file that could not be written.
pub fn write_report_outputs(
    params: &LoadParams,
    report: &LoadReport,
    outputs: &Outputs,
) -> Result<(), String> {
    if let Some(path) = &outputs.hgrm {
        let text = plot::hgrm(&report.latency_ns, plot::NS_PER_US);
        write_file(path, &text, "percentile distribution, µs")?;
    }
    if let Some(path) = &outputs.json {
        write_file(path, &report_json(params, report), "JSON summary")?;
    }
    if let Some(path) = &outputs.plot {
        let svg = plot::svg(&report_chart(params, report));
        write_file(path, &svg, "percentile plot")?;
    }
    Ok(())
}

/// Writes a sweep's `.hgrm` per step, JSON and plot, as `outputs` asks.
///
/// # Errors
///
/// A file that could not be written.
pub fn write_sweep_outputs(
    params: &LoadParams,
    sweep: &SweepReport,
    outputs: &Outputs,
) -> Result<(), String> {
    if let Some(base) = &outputs.hgrm {
        for step in &sweep.steps {
            let text = plot::hgrm(&step.report.latency_ns, plot::NS_PER_US);
            let path = step_hgrm_path(base, step.offered);
            write_file(&path, &text, "percentile distribution of the step, µs")?;
        }
    }
    if let Some(path) = &outputs.json {
        write_file(path, &sweep_json(params, sweep), "JSON summary")?;
    }
    if let Some(path) = &outputs.plot {
        let svg = plot::svg(&sweep_chart(params, sweep));
        write_file(path, &svg, "sweep plot")?;
    }
    Ok(())
}

/// `ordergate-bench load`: one run, or a sweep; the report on stdout (a sweep's
/// rows as its steps end), the progress line on stderr if
/// `params.progress`, then the files of `outputs`. Returns whether a run
/// was clean ([`LoadReport::problems`]; its report then says so first). A
/// sweep is judged step by step and returns true: its conclusion names
/// the step that failed and why.
///
/// # Errors
///
/// As [`run_load`] / [`run_sweep`], or a file that could not be written.
pub fn execute(
    params: &LoadParams,
    sweep: Option<&SweepParams>,
    outputs: &Outputs,
) -> Result<bool, String> {
    match sweep {
        None => {
            let report = run_load(params)?;
            print!("{}", report.render_table());
            write_report_outputs(params, &report, outputs)?;
            Ok(report.clean())
        }
        Some(sweep) => {
            params.check()?;
            sweep.check(params)?;
            print!("{}", sweep_header(params, sweep));
            let _ = io::stdout().flush();
            let report = run_sweep(params, sweep, |step| {
                print!("{}", step.render_row());
                let _ = io::stdout().flush();
            })?;
            print!("{}", report.render_conclusion());
            write_sweep_outputs(params, &report, outputs)?;
            Ok(true)
        }
    }
}

// ---------------------------------------------------------------------------
// Progress

/// One load thread's share of the live figures. The thread stores its
/// counts and swaps its recent latencies in every 100 ms; the progress line
/// reads them once a second.
struct ThreadLive {
    /// Requests sent since the fleet started (warm-up included).
    sent: AtomicU64,
    /// First replies received since the fleet started.
    answered: AtomicU64,
    /// Latencies the progress line has not read yet. The thread only swaps
    /// its own in when this is empty (the line has read and reset it), so
    /// nothing is counted twice and the thread never waits: it `try_lock`s.
    recent_ns: Mutex<Histogram<u64>>,
}

impl ThreadLive {
    fn new() -> ThreadLive {
        ThreadLive {
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            recent_ns: Mutex::new(progress_histogram()),
        }
    }
}

/// A thread's own side of [`ThreadLive`].
struct Live {
    sent: u64,
    answered: u64,
    recent_ns: Histogram<u64>,
    /// When to publish next, ns after the step's t0.
    next_publish_ns: u64,
}

/// The progress line: "load    3 s measuring: sent 59812, replies 59800,
/// p99 87.30 µs", where p99 is over the last second's measured replies
/// (none during the warm-up: "p99 -").
pub fn progress_text(
    label: &str,
    elapsed: Duration,
    warming_up: bool,
    sent: u64,
    replies: u64,
    p99_ns: Option<u64>,
) -> String {
    let p99 = p99_ns.map_or_else(
        || "-".to_owned(),
        // As the final table prints it, so a p99 equal to the max reads
        // the same in both.
        |ns| format!("{:.2} µs", ns as f64 / 1_000.0),
    );
    format!(
        "{label} {:>4.0} s {}: sent {sent}, replies {replies}, p99 {p99}",
        elapsed.as_secs_f64(),
        if warming_up { "warm-up" } else { "measuring" },
    )
}

struct ProgressLine {
    label: String,
    /// Rewrite one line with `\r` (a terminal), or print a line each time.
    tty: bool,
    t0: Instant,
    warmup: Duration,
    base_sent: u64,
    base_answered: u64,
    recent_ns: Histogram<u64>,
    shown: bool,
}

fn live_totals(live: &[ThreadLive]) -> (u64, u64) {
    live.iter().fold((0, 0), |(s, a), t| {
        (
            s + t.sent.load(Ordering::Relaxed),
            a + t.answered.load(Ordering::Relaxed),
        )
    })
}

impl ProgressLine {
    fn new(label: &str, t0: Instant, warmup: Duration, live: &[ThreadLive]) -> ProgressLine {
        let (base_sent, base_answered) = live_totals(live);
        ProgressLine {
            label: label.to_owned(),
            tty: io::stderr().is_terminal(),
            t0,
            warmup,
            base_sent,
            base_answered,
            recent_ns: progress_histogram(),
            shown: false,
        }
    }

    fn tick(&mut self, live: &[ThreadLive]) {
        let (sent, answered) = live_totals(live);
        for t in live {
            let mut h = t.recent_ns.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = self.recent_ns.add(&*h);
            h.reset();
        }
        let p99 = (!self.recent_ns.is_empty()).then(|| self.recent_ns.value_at_quantile(0.99));
        self.recent_ns.reset();
        let elapsed = self.t0.elapsed();
        let line = progress_text(
            &self.label,
            elapsed,
            elapsed < self.warmup,
            sent - self.base_sent,
            answered - self.base_answered,
            p99,
        );
        if self.tty {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
        self.shown = true;
    }

    /// Clears a terminal's line, so that the report starts clean.
    fn done(&mut self) {
        if self.tty && self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

// ---------------------------------------------------------------------------
// The fleet: sessions, threads, steps

/// What a load thread is told to do next.
enum Phase {
    Step(StepPlan),
    /// Cancel what is left, log out, report, end.
    Finish,
}

/// One step, on every thread's clock alike.
#[derive(Clone, Copy, Debug)]
struct StepPlan {
    t0: Instant,
    /// Offered rate, all sessions together (open loop).
    rate: u64,
    warmup_ns: u64,
    end_ns: u64,
}

/// The logged-on sessions and the threads driving them, between steps.
struct Fleet {
    phases: Vec<mpsc::Sender<Phase>>,
    reports: mpsc::Receiver<LoadReport>,
    handles: Vec<JoinHandle<()>>,
    live: Arc<[ThreadLive]>,
    threads: usize,
}

impl Fleet {
    /// Logs every session on (in order), spreads them over the threads
    /// round robin, starts the threads (pinned if asked); they wait for a
    /// step.
    fn start(params: &LoadParams) -> Result<Fleet, String> {
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
        let live: Arc<[ThreadLive]> = (0..threads).map(|_| ThreadLive::new()).collect();
        let (report_tx, reports) = mpsc::channel();
        let blank = LoadReport::empty(params, threads);
        let mut phases = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for (i, sessions) in per_thread.into_iter().enumerate() {
            let (phase_tx, phase_rx) = mpsc::channel();
            let core = (!params.pin_cores.is_empty())
                .then(|| params.pin_cores[i % params.pin_cores.len()]);
            let driver = Driver {
                thread: i,
                sessions,
                sessions_total: params.sessions,
                mode: params.mode,
                mix: params.mix,
                ready: None,
                t0: Instant::now(),
                warmup_ns: 0,
                end_ns: 0,
                report: blank.clone(),
                blank: blank.clone(),
                live: Live {
                    sent: 0,
                    answered: 0,
                    recent_ns: progress_histogram(),
                    next_publish_ns: 0,
                },
                shared: Arc::clone(&live),
                setup_errors: Vec::new(),
            };
            let report_tx = report_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || thread_main(driver, core, &phase_rx, &report_tx))
                .map_err(|e| format!("cannot start load thread {i}: {e}"))?;
            phases.push(phase_tx);
            handles.push(handle);
        }
        Ok(Fleet {
            phases,
            reports,
            handles,
            live,
            threads,
        })
    }

    /// One step: `warmup` unmeasured, then `duration` measured at `rate`
    /// (open loop), then the outstanding replies; the threads' reports
    /// merged. Prints the progress line once a second if `progress` names it.
    fn step(
        &mut self,
        rate: u64,
        warmup: Duration,
        duration: Duration,
        progress: Option<&str>,
    ) -> Result<LoadReport, String> {
        let t0 = Instant::now() + STEP_START_DELAY;
        let warmup_ns = warmup.as_nanos() as u64;
        let plan = StepPlan {
            t0,
            rate,
            warmup_ns,
            end_ns: warmup_ns + duration.as_nanos() as u64,
        };
        for tx in &self.phases {
            tx.send(Phase::Step(plan))
                .map_err(|_| "a load thread has stopped".to_string())?;
        }
        let deadline = t0 + warmup + duration + DRAIN_MAX + REPORT_GRACE;
        let mut line = progress.map(|label| ProgressLine::new(label, t0, warmup, &self.live));
        let result = self.collect(deadline, line.as_mut());
        if let Some(line) = &mut line {
            line.done();
        }
        result
    }

    /// Ends the run: every thread cancels its sessions' orders and logs
    /// them out; their reports merged; the threads joined.
    fn finish(&mut self) -> Result<LoadReport, String> {
        for tx in &self.phases {
            tx.send(Phase::Finish)
                .map_err(|_| "a load thread has stopped".to_string())?;
        }
        let deadline = Instant::now() + DRAIN_MAX + LOGOUT_WAIT_MAX + REPORT_GRACE;
        let report = self.collect(deadline, None);
        self.phases.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        report
    }

    /// One report from each thread, merged, by `deadline`.
    fn collect(
        &mut self,
        deadline: Instant,
        mut line: Option<&mut ProgressLine>,
    ) -> Result<LoadReport, String> {
        let mut total: Option<LoadReport> = None;
        let mut received = 0;
        let mut next_tick = Instant::now() + PROGRESS_INTERVAL;
        if let Some(line) = &line {
            next_tick = line.t0 + PROGRESS_INTERVAL;
        }
        while received < self.threads {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "{} of {} load threads did not report in time",
                    self.threads - received,
                    self.threads
                ));
            }
            let wake = if line.is_some() {
                next_tick.min(deadline)
            } else {
                deadline
            };
            match self
                .reports
                .recv_timeout(wake.saturating_duration_since(now))
            {
                Ok(part) => {
                    match &mut total {
                        None => total = Some(part),
                        Some(t) => t.merge(&part),
                    }
                    received += 1;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(line) = line.as_deref_mut()
                        && Instant::now() >= next_tick
                    {
                        line.tick(&self.live);
                        next_tick += PROGRESS_INTERVAL;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the load threads stopped before reporting".into());
                }
            }
        }
        total.ok_or_else(|| "no load thread".to_string())
    }
}

impl Drop for Fleet {
    /// Threads not told to finish (an error between steps) still cancel
    /// and log out when their channel closes; they are waited for.
    fn drop(&mut self) {
        self.phases.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn thread_main(
    mut driver: Driver,
    core: Option<usize>,
    phases: &mpsc::Receiver<Phase>,
    reports: &mpsc::Sender<LoadReport>,
) {
    if let Some(core) = core
        && !core_affinity::set_for_current(core_affinity::CoreId { id: core })
    {
        driver.setup_errors.push(format!(
            "load thread {}: cannot pin it to core {core}",
            driver.thread
        ));
    }
    driver.register();
    while let Ok(phase) = phases.recv() {
        match phase {
            Phase::Step(plan) => {
                let report = driver.step(plan);
                if reports.send(report).is_err() {
                    break;
                }
            }
            Phase::Finish => {
                let _ = reports.send(driver.finish());
                return;
            }
        }
    }
    driver.finish();
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
    /// Its first cl_ord_id (ids only grow): the oldest crossing order goes first.
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
    /// Operations per second of this session in the current step (open
    /// loop; at least 1).
    rate: u64,
    /// Intended time of operation 0 of the step, ns after the step's t0.
    offset_ns: u64,
    /// Next operation number within the step.
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
    /// When it ended, ns after the current step's t0 (0: before the step).
    ended_at_ns: Option<u64>,
    /// An operation is due that could not be sent: every order slot waits
    /// on the gateway.
    blocked: bool,
    /// When it last stopped being blocked, ns after the step's t0: the
    /// operations intended before then and sent after are deferred (they
    /// waited on the gateway, not on the generator).
    unblocked_ns: u64,
}

impl SessionLoad {
    fn new(conn: Connection, index: usize, params: &LoadParams) -> SessionLoad {
        let i = index as u64;
        let mut s = SessionLoad {
            conn,
            index,
            rate: 1,
            offset_ns: 0,
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
            ended_at_ns: None,
            blocked: false,
            unblocked_ns: 0,
        };
        s.schedule(params.rate, params.sessions);
        s
    }

    /// This session's share of `rate_total` operations per second over
    /// `sessions` sessions, staggered by the global interval so the
    /// sessions' sends interleave; operation numbers start again at 0.
    fn schedule(&mut self, rate_total: u64, sessions: usize) {
        let sessions = sessions.max(1) as u64;
        let rate_total = rate_total.max(sessions);
        let i = self.index as u64;
        self.rate = rate_total / sessions + u64::from(i < rate_total % sessions);
        self.offset_ns = i * 1_000_000_000 / rate_total;
        self.op = 0;
        self.blocked = false;
        self.unblocked_ns = 0;
        // A session that ended in an earlier step sends nothing in this one.
        self.ended_at_ns = (!self.alive).then_some(0);
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

    /// Tracks a request just written to `slot`'s order and, if measured,
    /// counts it as sent.
    fn sent(
        &mut self,
        id: u64,
        kind: Kind,
        slot: usize,
        intended_ns: u64,
        measured: bool,
        report: &mut LoadReport,
    ) {
        self.track(
            Inflight {
                id,
                intended_ns,
                kind,
                slot: slot as u16,
                measured,
            },
            report,
        );
        if measured {
            match kind {
                Kind::New => report.sent_new += 1,
                Kind::Cancel => report.sent_cancel += 1,
                Kind::Replace { .. } => report.sent_replace += 1,
                // The clean-up when the run ends, never measured.
                Kind::MassCancel => {}
            }
        }
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

    /// Sends operation `self.op`, intended at `intended_ns`. Returns
    /// whether anything was sent (not when every order slot waits on the
    /// gateway).
    fn send_op(
        &mut self,
        intended_ns: u64,
        measured: bool,
        mix: &Mix,
        report: &mut LoadReport,
    ) -> Result<bool, ClientError> {
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
            (Kind::Cancel, Some(slot), _) => {
                self.send_cancel(slot, intended_ns, measured, report)?
            }
            (Kind::Replace { .. }, Some(slot), _) => {
                self.send_replace(slot, intended_ns, measured, report)?
            }
            (_, _, Some(slot)) => self.send_new(slot, intended_ns, measured, mix, report)?,
            (_, _, None) => match self.pick_live(true) {
                Some(slot) => self.send_cancel(slot, intended_ns, measured, report)?,
                None => {
                    // Every slot waits on the gateway: nothing to send
                    // now; the operation goes when a slot is answered.
                    self.blocked = true;
                    return Ok(false);
                }
            },
        }
        Ok(true)
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
            let buy = (self.crossing_count + self.index as u64).is_multiple_of(2);
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
            placed: id,
        };
        self.sent(id, Kind::New, slot, intended_ns, measured, report);
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
        self.sent(id, Kind::Cancel, slot, intended_ns, measured, report);
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
        self.sent(
            id,
            Kind::Replace { price, qty },
            slot,
            intended_ns,
            measured,
            report,
        );
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
        self.sent(id, Kind::MassCancel, 0, now_ns, false, report);
        Ok(())
    }

    /// A reply received at `t_ns` (after the step's t0).
    fn on_reply(
        &mut self,
        reply: Reply,
        t_ns: u64,
        warmup_ns: u64,
        report: &mut LoadReport,
        live: &mut Live,
    ) {
        // The first reply of a request completes it and gives its latency.
        let mut first = |s: &mut SessionLoad, id: u64, report: &mut LoadReport| {
            let entry = s.complete(id)?;
            let latency_ns = t_ns.saturating_sub(entry.intended_ns).max(1);
            if entry.kind != Kind::MassCancel {
                live.answered += 1;
            }
            // The progress line's p99 is over measured samples only, so it
            // is a percentile of a subset of the final figures and can
            // never pass their max (a warm-up reply is not in either).
            if entry.measured {
                live.recent_ns.saturating_record(latency_ns);
                report.latency_ns.saturating_record(latency_ns);
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
                    if e.kind == Kind::MassCancel {
                        if e.measured {
                            report.rejected += 1;
                            report.rejects[reason.wire() as usize] += 1;
                        }
                        self.cleaned = true;
                        return;
                    }
                    let o = &mut self.orders[e.slot as usize];
                    if e.measured {
                        report.rejected += 1;
                        report.rejects[reason.wire() as usize] += 1;
                        // The order filled (or the gateway canceled it)
                        // while this cancel or replace was on its way.
                        if reason == RejectReason::UNKNOWN_ORDER
                            && e.kind != Kind::New
                            && o.state == SlotState::GoneBusy
                        {
                            report.raced_fill += 1;
                        }
                    }
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
                self.ended_at_ns.get_or_insert(t_ns);
            }
        }
    }

    /// The session failed at `t_ns` (after the step's t0).
    fn fail(&mut self, error: &ClientError, t_ns: u64, report: &mut LoadReport) {
        if !self.ended {
            report
                .errors
                .push(format!("session {}: {error}", self.index));
        }
        self.alive = false;
        self.ended = true;
        self.ended_at_ns.get_or_insert(t_ns);
    }

    /// Reads every reply already arrived. Returns how many.
    fn poll(
        &mut self,
        t0: Instant,
        warmup_ns: u64,
        report: &mut LoadReport,
        live: &mut Live,
    ) -> usize {
        let mut n = 0;
        while !self.ended {
            match self.conn.recv(Duration::ZERO) {
                Ok(Some(reply)) => {
                    n += 1;
                    let t = t0.elapsed().as_nanos() as u64;
                    self.on_reply(reply, t, warmup_ns, report, live);
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(&e, t0.elapsed().as_nanos() as u64, report);
                    break;
                }
            }
        }
        n
    }
}

/// One load thread: its sessions, driven step after step.
struct Driver {
    thread: usize,
    sessions: Vec<SessionLoad>,
    /// Sessions of the whole fleet (each session's share of the rate).
    sessions_total: usize,
    mode: Mode,
    mix: Mix,
    /// None if the sockets could not be registered (every session ended).
    ready: Option<Readiness>,
    /// The current step's clock: times are ns after `t0`.
    t0: Instant,
    warmup_ns: u64,
    end_ns: u64,
    /// The current step's (or the finish's) report.
    report: LoadReport,
    /// An empty report with the run's figures, to start each step from.
    blank: LoadReport,
    live: Live,
    shared: Arc<[ThreadLive]>,
    /// Pinning or registration failures, reported with the next report.
    setup_errors: Vec<String>,
}

impl Driver {
    fn now_ns(&self) -> u64 {
        Instant::now()
            .checked_duration_since(self.t0)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    fn register(&mut self) {
        let registered = Readiness::new(self.sessions.len().min(READY_EVENTS_MAX)).and_then(|r| {
            for (i, s) in self.sessions.iter().enumerate() {
                r.add(s.conn.as_fd(), i as u64)?;
            }
            Ok(r)
        });
        match registered {
            Ok(r) => self.ready = Some(r),
            Err(e) => {
                self.setup_errors.push(format!(
                    "load thread {}: cannot poll its sockets: {e}",
                    self.thread
                ));
                for s in &mut self.sessions {
                    s.alive = false;
                    s.ended = true;
                }
            }
        }
    }

    /// Runs one step and returns its report.
    fn step(&mut self, plan: StepPlan) -> LoadReport {
        self.t0 = plan.t0;
        self.warmup_ns = plan.warmup_ns;
        self.end_ns = plan.end_ns;
        let mut report = self.blank.clone();
        if self.mode == Mode::Open {
            report.rate = plan.rate;
        }
        report.warmup = Duration::from_nanos(plan.warmup_ns);
        report.duration = Duration::from_nanos(plan.end_ns - plan.warmup_ns);
        report.errors.append(&mut self.setup_errors);
        self.report = report;
        for s in &mut self.sessions {
            s.schedule(plan.rate, self.sessions_total);
        }
        self.live.next_publish_ns = 0;
        if let Some(wait) = self.t0.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        self.drive();
        let sent_by_end: Vec<u64> = self.sessions.iter().map(|s| s.op).collect();
        self.settle();
        if self.mode == Mode::Open {
            for (s, sent_ops) in self.sessions.iter().zip(sent_by_end) {
                // Measured operations due before the end (or before the
                // session ended: after that it could send nothing, and is
                // not late) that were never sent.
                let until = s
                    .ended_at_ns
                    .map_or(self.end_ns, |t| t.clamp(self.warmup_ns, self.end_ns));
                let due = s.ops_between(self.warmup_ns, until);
                let first_measured = s.first_op_at(self.warmup_ns);
                let sent_measured = sent_ops.saturating_sub(first_measured);
                self.report.behind += due.saturating_sub(sent_measured);
                self.report.unsent_ended += s.ops_between(until, self.end_ns);
            }
        }
        for s in &mut self.sessions {
            for e in s.inflight.iter_mut().filter(|e| e.id != 0 && e.measured) {
                // Counted here; a late answer in a later step is not counted again.
                self.report.unanswered += 1;
                e.measured = false;
            }
        }
        self.publish(true);
        std::mem::replace(&mut self.report, self.blank.clone())
    }

    /// Publishes the counts and, if the progress line has taken the last
    /// batch, the recent latencies. `force`: wait for the lock, and merge
    /// rather than drop (the end of a step).
    fn publish(&mut self, force: bool) {
        let slot = &self.shared[self.thread];
        slot.sent.store(self.live.sent, Ordering::Relaxed);
        slot.answered.store(self.live.answered, Ordering::Relaxed);
        if self.live.recent_ns.is_empty() {
            return;
        }
        let guard = if force {
            Some(
                slot.recent_ns
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            )
        } else {
            match slot.recent_ns.try_lock() {
                Ok(g) => Some(g),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            }
        };
        if let Some(mut shared) = guard {
            if shared.is_empty() {
                std::mem::swap(&mut *shared, &mut self.live.recent_ns);
            } else if force {
                let _ = shared.add(&self.live.recent_ns);
                self.live.recent_ns.reset();
            }
        }
    }

    /// Reads the replies of every session whose socket is readable, waiting
    /// up to `timeout_ms` for one. Returns the replies read.
    fn poll_ready(&mut self, timeout_ms: i32) -> usize {
        let Some(ready) = self.ready.as_mut() else {
            return 0;
        };
        let n = match ready.wait(timeout_ms) {
            Ok(n) => n,
            Err(e) => {
                // Cannot happen with a valid epoll descriptor and buffer;
                // if it does, the run cannot be measured any more.
                self.report
                    .errors
                    .push(format!("load thread {}: epoll_wait: {e}", self.thread));
                let now = self.now_ns();
                for s in &mut self.sessions {
                    s.alive = false;
                    s.ended = true;
                    s.ended_at_ns.get_or_insert(now);
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
            work += s.poll(self.t0, self.warmup_ns, &mut self.report, &mut self.live);
            if s.ended {
                // Its socket stays readable (end of stream): stop watching.
                let _ = ready.remove(s.conn.as_fd());
            }
        }
        work
    }

    /// The step's run: read what arrived, send what is due, idle.
    fn drive(&mut self) {
        loop {
            let mut work = self.poll_ready(0);
            let now = self.now_ns();
            if now >= self.end_ns {
                return;
            }
            if now >= self.live.next_publish_ns {
                self.publish(false);
                self.live.next_publish_ns = now + PUBLISH_INTERVAL_NS;
            }
            let mut next_due = u64::MAX;
            let mut outstanding = false;
            for s in self.sessions.iter_mut() {
                match self.mode {
                    Mode::Open => {
                        while s.alive {
                            let intended = s.intended_ns(s.op);
                            if intended > now || intended >= self.end_ns {
                                break;
                            }
                            let measured = intended >= self.warmup_ns;
                            match s.send_op(intended, measured, &self.mix, &mut self.report) {
                                Ok(true) => {
                                    let sent_at = self.t0.elapsed().as_nanos() as u64;
                                    if s.blocked {
                                        s.blocked = false;
                                        s.unblocked_ns = sent_at;
                                    }
                                    // Due while every slot waited on the
                                    // gateway: deferred. Otherwise any
                                    // lateness is the generator's own lag.
                                    if measured && intended < s.unblocked_ns {
                                        self.report.deferred += 1;
                                    } else if measured {
                                        let lag = sent_at.saturating_sub(intended);
                                        self.report.send_lag_ns.saturating_record(lag.max(1));
                                    }
                                    self.live.sent += 1;
                                    s.op += 1;
                                    work += 1;
                                }
                                // Every order slot waits on the gateway:
                                // the operation goes once one is answered
                                // (its latency still runs from `intended`).
                                Ok(false) => break,
                                Err(e) => {
                                    s.fail(
                                        &e,
                                        self.t0.elapsed().as_nanos() as u64,
                                        &mut self.report,
                                    );
                                    break;
                                }
                            }
                        }
                    }
                    Mode::Closed => {
                        if s.alive && s.inflight_count == 0 {
                            // The previous request is answered: the next
                            // goes now, and its latency runs from now.
                            let at = self.t0.elapsed().as_nanos() as u64;
                            let measured = at >= self.warmup_ns;
                            match s.send_op(at, measured, &self.mix, &mut self.report) {
                                Ok(true) => {
                                    self.live.sent += 1;
                                    s.op += 1;
                                    work += 1;
                                }
                                // Nothing outstanding leaves a slot free or
                                // an order to cancel: not expected; tried
                                // again on the next pass.
                                Ok(false) => {}
                                Err(e) => s.fail(&e, at, &mut self.report),
                            }
                        }
                    }
                }
                if s.alive {
                    let due = match self.mode {
                        Mode::Open => s.intended_ns(s.op),
                        Mode::Closed if s.inflight_count == 0 => now,
                        Mode::Closed => self.end_ns,
                    };
                    next_due = next_due.min(due);
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
            let until = next_due
                .min(self.end_ns)
                .min(self.live.next_publish_ns.max(now));
            if !outstanding && until > now + BLOCK_THRESHOLD_NS {
                // Nothing to wait for but the clock: sleep in the kernel
                // until a frame arrives or shortly before the next send.
                let ms = (until - now - BLOCK_EARLY_NS) / 1_000_000;
                self.poll_ready(ms.clamp(1, i32::MAX as u64) as i32);
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// After a step's end: wait for the outstanding replies.
    fn settle(&mut self) {
        let deadline = Instant::now() + DRAIN_MAX;
        while Instant::now() < deadline
            && self
                .sessions
                .iter()
                .any(|s| !s.ended && s.inflight_count > 0)
        {
            self.poll_ready(1);
        }
    }

    /// The end of the run: cancel what is left, wait for the outstanding
    /// answers, log out. Returns what that saw (cleanup, terminates).
    fn finish(&mut self) -> LoadReport {
        self.report = self.blank.clone();
        self.report.errors.append(&mut self.setup_errors);
        let now = self.now_ns();
        for s in self.sessions.iter_mut().filter(|s| s.alive) {
            if let Err(e) = s.send_mass_cancel(now, &mut self.report) {
                s.fail(&e, now, &mut self.report);
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
            self.poll_ready(1);
        }
        for s in self.sessions.iter_mut().filter(|s| s.alive) {
            if let Err(e) = s.conn.send_logout() {
                s.fail(&e, now, &mut self.report);
            }
            s.alive = false;
        }
        let deadline = Instant::now() + LOGOUT_WAIT_MAX;
        while Instant::now() < deadline && self.sessions.iter().any(|s| !s.ended) {
            self.poll_ready(1);
        }
        self.publish(true);
        std::mem::replace(&mut self.report, self.blank.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use ordergate::net_client::test_gateway::{KEY_ID, SECRET, TestGateway};

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
        // Blocking in epoll never makes it late; a thread descheduled for
        // milliseconds by a loaded host (2 shared cores) can be, and then
        // its lag shows it.
        assert!(
            r.behind == 0 || r.send_lag_ns.max() > BLOCK_EARLY_NS,
            "{text}"
        );
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

    #[test]
    fn mix_flags_parse_and_errors_name_the_bad_part() {
        assert_eq!(
            parse_mix("new=60,cancel=30,replace=10"),
            Ok(Mix {
                new: 60,
                cancel: 30,
                replace: 10,
                crossing: Mix::default().crossing
            })
        );
        assert_eq!(parse_mix(" new = 100 ").unwrap().cancel, 0);
        for (bad, named) in [
            ("new=60,cancle=30,replace=10", "`cancle=30`"),
            ("new=60,cancel=3x,replace=10", "`cancel=3x`"),
            ("new=60,cancel,replace=10", "`cancel`"),
            ("new=60,new=30,replace=10", "given twice"),
            ("new=60,cancel=30,replace=20", "110%"),
            ("new=0,cancel=100", "new must be above 0%"),
            ("new=101", "`new=101`"),
            ("crossing=20,new=100", "--crossing"),
            ("", "empty"),
        ] {
            let e = parse_mix(bad).unwrap_err();
            assert!(e.contains(named), "{bad}: {e}");
        }
    }

    #[test]
    fn core_lists_parse() {
        assert_eq!(parse_cores("2,3"), Ok(vec![2, 3]));
        assert_eq!(parse_cores("4-6,0,5"), Ok(vec![0, 4, 5, 6]));
        assert!(parse_cores("3-1").unwrap_err().contains("`3-1`"));
        assert!(parse_cores("1,x").unwrap_err().contains("`x`"));
        assert!(parse_cores("").is_err());
    }

    #[test]
    fn sweep_rates_rise_geometrically_to_the_max() {
        let mut s = SweepParams::new(Duration::from_micros(300));
        s.start = 200;
        s.factor = 2.0;
        s.max = 800;
        assert_eq!(s.rates(), vec![200, 400, 800]);
        s.start = 1000;
        s.factor = 1.5;
        s.max = 5100; // 5062 would be a near-duplicate of the max
        assert_eq!(s.rates(), vec![1000, 1500, 2250, 3375, 5100]);
        s.max = 1000;
        assert_eq!(s.rates(), vec![1000]);
        s.step_duration = Duration::from_secs(3);
        assert_eq!(s.settle(), Duration::from_millis(500));
        s.step_duration = Duration::from_millis(300);
        assert_eq!(s.settle(), Duration::from_millis(60));

        let p = LoadParams::new("127.0.0.1:1".parse().unwrap(), 1, [0; 32]);
        let mut s = SweepParams::new(Duration::from_micros(300));
        assert!(s.check(&p).is_ok());
        assert!(s.rates().len() <= SWEEP_STEPS_MAX);
        s.factor = 1.01;
        assert!(s.check(&p).unwrap_err().contains("factor"));
        s.factor = 1.05;
        assert!(s.check(&p).unwrap_err().contains("steps"));
        s.factor = 1.5;
        s.start = 2;
        assert!(s.check(&p).unwrap_err().contains("4 sessions"));
        let closed = LoadParams {
            mode: Mode::Closed,
            ..p
        };
        assert!(
            SweepParams::new(Duration::from_micros(1))
                .check(&closed)
                .is_err()
        );
    }

    #[test]
    fn steps_are_judged_on_every_condition() {
        let p = LoadParams {
            duration: Duration::from_secs(1),
            rate: 1000,
            ..LoadParams::new("127.0.0.1:1".parse().unwrap(), 1, [0; 32])
        };
        let mut r = LoadReport::empty(&p, 1);
        r.sent_new = 990;
        r.accepted = 990;
        for _ in 0..990 {
            r.latency_ns.record(100_000).unwrap();
        }
        let slo = Duration::from_micros(200);
        assert!(SweepStep::judge(r.clone(), slo).ok());
        assert_eq!(SweepStep::judge(r.clone(), slo).verdict(), "ok");
        assert_eq!(
            SweepStep::judge(r.clone(), Duration::from_micros(50)).verdict(),
            "p99 over the SLO"
        );
        let mut slow = r.clone();
        slow.sent_new = 900;
        assert_eq!(
            SweepStep::judge(slow, slo).verdict(),
            "achieved 90% of offered"
        );
        let mut refused = r.clone();
        refused.rejects[RejectReason::ENGINE_BUSY.wire() as usize] = 3;
        refused.unanswered = 1;
        refused.terminates[TerminateReason::THROTTLE_BREACH.wire() as usize] = 1;
        assert_eq!(
            SweepStep::judge(refused, slo).verdict(),
            "1 sessions failed; 1 unanswered; ENGINE_BUSY 3"
        );
        let mut empty = LoadReport::empty(&p, 1);
        empty.sent_new = 1000;
        assert_eq!(SweepStep::judge(empty, slo).verdict(), "no replies");
    }

    #[test]
    fn a_progress_p99_never_exceeds_the_final_max() {
        // The same samples in a progress histogram and in the final one:
        // the progress line's p99 (over any subset) is at most the final
        // max, for values across the whole range.
        let mut v = 1u64;
        while v < LATENCY_NS_MAX {
            for sample in [v, v + v / 3, v + v / 7 + 1] {
                let mut progress = progress_histogram();
                let mut last = new_histogram();
                progress.record(sample).unwrap();
                last.record(sample).unwrap();
                assert!(
                    progress.value_at_quantile(0.99) <= last.max(),
                    "{sample} ns: progress p99 {} above the final max {}",
                    progress.value_at_quantile(0.99),
                    last.max()
                );
            }
            v = v * 3 + 1;
        }
    }

    #[test]
    fn progress_lines_and_json_strings() {
        assert_eq!(
            progress_text(
                "load",
                Duration::from_millis(3_020),
                false,
                59_812,
                59_800,
                Some(87_300)
            ),
            "load    3 s measuring: sent 59812, replies 59800, p99 87.30 µs"
        );
        assert_eq!(
            progress_text("load", Duration::from_secs(1), true, 0, 0, None),
            "load    1 s warm-up: sent 0, replies 0, p99 -"
        );
        assert_eq!(num(1.23456), json!(1.235));
        assert_eq!(num(f64::NAN), Value::Null);
        assert_eq!(render(&json!({"a": "b\"c"})), "{\n  \"a\": \"b\\\"c\"\n}\n");
        assert_eq!(
            step_hgrm_path(Path::new("/tmp/x/run.hgrm"), 1500),
            Path::new("/tmp/x/run-1500.hgrm")
        );
        assert_eq!(step_hgrm_path(Path::new("run"), 7), Path::new("run-7"));
    }

    #[test]
    fn a_closed_loop_keeps_one_request_outstanding_per_session() {
        let gw = TestGateway::start();
        let mut p = LoadParams::new(gw.addr(), KEY_ID, SECRET);
        p.mode = Mode::Closed;
        p.sessions = 2;
        p.rate = 0; // not used by a closed loop
        p.warmup = Duration::from_millis(50);
        p.duration = Duration::from_millis(300);
        p.threads = 1;
        let r = run_load(&p).unwrap();
        let text = r.render_table();
        assert!(r.errors.is_empty(), "{text}");
        assert_eq!(r.unanswered, 0, "{text}");
        assert_eq!(r.behind, 0, "{text}");
        assert!(r.sent() > 50, "{text}");
        assert_eq!(r.replies(), r.sent(), "{text}");
        assert!(r.send_lag_ns.is_empty(), "{text}");
        assert_eq!(r.offered_rate(), None);
        assert!(text.contains("closed loop, 2 sessions"), "{text}");
        assert!(
            text.contains("round trip from send to first reply (µs)"),
            "{text}"
        );
        gw.shutdown();
    }
}
