//! A seeded whole-gateway simulation (issue 12, item 2; case 43 of
//! docs/TESTING.md): many clients and the real reactor cores, sessions,
//! rings, engine agent and matching engine, key reloads and revocations and
//! the audit rings, on a virtual clock, with faults drawn from one seed.
//!
//! What is real and what is simulated:
//!
//! ```text
//!  clients (simulated: ClientSession + FrameReader, honest, flooding, attacking)
//!     │ bytes ▲                       network (simulated): per connection a
//!     ▼       │                       client→gateway queue and a bounded
//!  ┌──────────┴──────────┐            gateway→client socket buffer; splits at
//!  │ driver (simulated)  │            any byte, delays, FIN, resets
//!  │ = the io_uring      │  the kernel's completions are drawn by the seed:
//!  │   worker's part     │  receive, send (short or failing), close, cancel
//!  └──────────┬──────────┘
//!             │ the seam: ReactorCore::{admit, on_bytes, offer_parked,
//!             │ output, on_sent, on_close_completed, tick, next_waiting}
//!  ┌──────────▼──────────┐   ┌───────────────┐   ┌─────────────────────┐
//!  │ ReactorCore (REAL)  │──▶│ command rings │──▶│ EngineAgent (REAL)  │
//!  │ sessions, admission │◀──│ event rings   │◀──│ MatchingEngine (REAL│
//!  │ key refresh, sweeps │   └───────────────┘   │ behind a tap)       │
//!  └──────────┬──────────┘                       └─────────────────────┘
//!             ▼ audit rings (REAL) → a simulated journal thread
//! ```
//!
//! The turn of a simulated reactor is the worker's (`reactor::worker`):
//! refresh keys, accept, reap completions, the engine (when it shares
//! reactor 0's thread), engine events, the timer tick, flush. Everything the
//! worker decides after an I/O completes is a `ReactorCore` method both
//! call; only the kernel is simulated here.
//!
//! Invariants, checked after every step (`Violation::invariant` names them):
//!
//! - `at-most-once`: each client command reaches the engine at most once,
//!   and a session's commands reach it in the order they were sent.
//! - `authenticated`: every client command the engine takes comes from a
//!   session that logged on and matches, field for field, a frame its
//!   client really sent and sealed (never an attacker's tampered, replayed
//!   or cross-session frame); the gateway's own commands name sessions that
//!   logged on (cancel-on-disconnect only for one that asked, once).
//! - `cancel-on-disconnect`: once a session that asked for it has finished
//!   (closed, its slot free to go) and the engine has drained every ring,
//!   none of its orders rests in the book.
//! - `acknowledged-once`: every client command gets at most one first
//!   answer, only on the session that sent it, and (checked once the
//!   system is quiet) exactly one if the session is still open.
//! - `quantity-conserved`: for every order, resting + filled + canceled =
//!   entered (a replace re-enters the difference), checked against the
//!   engine's book whenever it is idle; both fills of a trade agree.
//! - `gateway-frames`: every frame a client reads passes its tag and
//!   sequence checks, and a client only hears about its own orders.
//! - `fail-closed`: no logon is accepted once the journal has failed.
//! - `revocation`: once quiet, no session stays open and no order rests
//!   under a key that stopped being usable (revoked, removed, disabled,
//!   expired), and no session stays open whose Logon's secret left the keys
//!   file.
//! - `progress`: once faults stop, every open session answers a new order,
//!   every logon in flight is answered, and once every client has gone
//!   every slot comes back (no leak).
//!
//! A panic anywhere (the gateway's code included) is reported as invariant
//! `panic` with the seed.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::Arc;

use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::policy::KeyStatus;
use ordergate::auth::secret::Secret;
use ordergate::client::{ClientSession, FrameReader};
use ordergate::engine::agent::EngineAgent;
use ordergate::engine::book::{EngineConfig, MatchingEngine};
use ordergate::engine::{
    Command, CommandKind, Engine, Event, EventKind, EventReason, EventSink, KeyLimits, Nanos,
    SessionId,
};
use ordergate::journal::{AuditEvent, AuditKind, AuditSink, FailReason, JournalHealth};
use ordergate::reactor::core::{
    Admission, Output, ParkedInput, ReactorCore, Sent, logon_reject_bytes,
};
use ordergate::ring::{self, Consumer};
use ordergate::rng::SplitMix;
use ordergate::session::{Audit, GatewayConfig, LOGON_FLAG_CANCEL_ON_DISCONNECT, Shared};
use ordergate::wire::codes::{CancelReason, Environment, Scopes};
use ordergate::wire::{self, GatewayFrame};

/// The virtual clock's epoch (wall clock = T0 + monotonic + offset).
pub const T0: u64 = 1_764_000_000_000_000_000;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
/// The worker's timer tick (`reactor::worker::TIMER_TICK`).
const TICK_NS: u64 = MS;
/// The worker's provided receive buffers: the most one completion carries.
const RECV_BUFFER: usize = 4096;
/// Key ids of the simulated keys file.
const KEYS: [u64; 4] = [1, 2, 3, 4];
/// The slow key: a low rate, so its sessions meet THROTTLED and breaches.
const SLOW_KEY: u64 = 4;
/// Client order ids of attackers' tampered frames carry this bit; no honest
/// frame does.
const BOGUS: u64 = 1 << 63;

/// The command that replays one seed, for failure messages.
pub fn replay_command(seed: u64, mutation: Mutation) -> String {
    let m = match mutation {
        Mutation::None => String::new(),
        m => format!("SIM_MUTATION={} ", m.name()),
    };
    format!(
        "{m}SIM_SEED={seed} cargo test --profile ci --test simulation -- --ignored --nocapture seeds"
    )
}

/// A bug injected on purpose, to prove each invariant's check can fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mutation {
    #[default]
    None,
    /// The engine takes one client command twice (a ring that replays a
    /// slot). Caught by `at-most-once`.
    DuplicateCommand,
    /// The gateway forwards an attacker's tampered frame as if its tag had
    /// been checked. Caught by `authenticated`.
    ForgeCommand,
    /// The engine never receives a cancel-on-disconnect. Caught by
    /// `cancel-on-disconnect`.
    DropCod,
    /// An OrderAccepted is delivered twice. Caught by `acknowledged-once`.
    DuplicateAck,
    /// One OrderAccepted is never delivered. Caught by `acknowledged-once`
    /// at the end.
    DropAck,
    /// One Fill reports one more than was traded. Caught by
    /// `quantity-conserved`.
    SkewFill,
    /// The engine stops for good when the faults stop. Caught by `progress`.
    StallEngine,
    /// The driver does not receive again after a pause ends (a lost
    /// re-arm). Caught by `progress`.
    NoRearm,
    /// The engine never receives a key sweep (CancelForKey). Caught by
    /// `revocation`.
    DropKeySweep,
}

impl Mutation {
    pub const ALL: [Mutation; 10] = [
        Mutation::None,
        Mutation::DuplicateCommand,
        Mutation::ForgeCommand,
        Mutation::DropCod,
        Mutation::DuplicateAck,
        Mutation::DropAck,
        Mutation::SkewFill,
        Mutation::StallEngine,
        Mutation::NoRearm,
        Mutation::DropKeySweep,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutation::None => "none",
            Mutation::DuplicateCommand => "duplicate-command",
            Mutation::ForgeCommand => "forge-command",
            Mutation::DropCod => "drop-cod",
            Mutation::DuplicateAck => "duplicate-ack",
            Mutation::DropAck => "drop-ack",
            Mutation::SkewFill => "skew-fill",
            Mutation::StallEngine => "stall-engine",
            Mutation::NoRearm => "no-rearm",
            Mutation::DropKeySweep => "drop-key-sweep",
        }
    }

    pub fn from_name(name: &str) -> Option<Mutation> {
        Mutation::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// An invariant that did not hold.
#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
    pub step: usize,
    pub phase: &'static str,
}

/// A seed that failed: its violation, how to replay it, and the last steps
/// of its trace.
#[derive(Clone, Debug)]
pub struct Failure {
    pub seed: u64,
    pub mutation: Mutation,
    pub invariant: &'static str,
    pub detail: String,
    pub step: usize,
    pub phase: &'static str,
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation seed {} failed: invariant `{}` broken in the {} phase at step {}: {}",
            self.seed, self.invariant, self.phase, self.step, self.detail
        )?;
        if self.mutation != Mutation::None {
            write!(f, "\n(bug injected on purpose: {})", self.mutation.name())?;
        }
        write!(
            f,
            "\nreplay it: {}",
            replay_command(self.seed, self.mutation)
        )?;
        if !self.trace.is_empty() {
            write!(f, "\nlast steps of seed {}:", self.seed)?;
            for line in &self.trace {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

/// What one seed did (for the many-seeds report: which faults and paths
/// the seeds reached).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub steps: u64,
    pub commands: u64,
    pub events: u64,
    pub logons: u64,
    pub fills: u64,
    pub input_paused: u64,
    pub slow_consumers: u64,
    pub revocations: u64,
    pub key_sweeps: u64,
    pub engine_busy: u64,
    pub engine_blocked: u64,
    pub audit_gaps: u64,
    /// Orders canceled by cancel-on-disconnect, and by key sweeps.
    pub cod_cancels: u64,
    pub key_revoked_cancels: u64,
    pub evictions: u64,
    pub clock_back: u64,
    pub drops: u64,
    pub floods: u64,
    pub orders_sent: u64,
    pub messages_in: u64,
    pub bytes_discarded: u64,
}

impl Summary {
    pub fn add(&mut self, o: &Summary) {
        self.steps += o.steps;
        self.commands += o.commands;
        self.events += o.events;
        self.logons += o.logons;
        self.fills += o.fills;
        self.input_paused += o.input_paused;
        self.slow_consumers += o.slow_consumers;
        self.revocations += o.revocations;
        self.key_sweeps += o.key_sweeps;
        self.engine_busy += o.engine_busy;
        self.engine_blocked += o.engine_blocked;
        self.audit_gaps += o.audit_gaps;
        self.cod_cancels += o.cod_cancels;
        self.key_revoked_cancels += o.key_revoked_cancels;
        self.evictions += o.evictions;
        self.clock_back += o.clock_back;
        self.drops += o.drops;
        self.floods += o.floods;
        self.orders_sent += o.orders_sent;
        self.messages_in += o.messages_in;
        self.bytes_discarded += o.bytes_discarded;
    }
}

/// Runs one seed; any panic is caught and reported with the seed. A failing
/// seed is run again with its trace on (it is deterministic) for the
/// failure message.
pub fn run_seed(seed: u64, mutation: Mutation) -> Result<Summary, Failure> {
    let first = run_caught(seed, mutation, false);
    let Err(v) = first.0 else {
        return Ok(first.0.unwrap());
    };
    let (again, trace) = run_caught(seed, mutation, true);
    let trace = match again {
        Err(w) if w.invariant == v.invariant && w.step == v.step => trace,
        _ => vec![format!(
            "(the traced run did not fail the same way: not deterministic?)"
        )],
    };
    Err(Failure {
        seed,
        mutation,
        invariant: v.invariant,
        detail: v.detail,
        step: v.step,
        phase: v.phase,
        trace,
    })
}

/// Runs one seed with its whole trace (SIM_TRACE=1 with SIM_SEED).
pub fn trace_seed(seed: u64, mutation: Mutation) -> Vec<String> {
    run_caught_with(seed, mutation, Some(usize::MAX)).1
}

fn run_caught(
    seed: u64,
    mutation: Mutation,
    traced: bool,
) -> (Result<Summary, Violation>, Vec<String>) {
    run_caught_with(seed, mutation, traced.then_some(TRACE_LINES))
}

fn run_caught_with(
    seed: u64,
    mutation: Mutation,
    trace_lines: Option<usize>,
) -> (Result<Summary, Violation>, Vec<String>) {
    let log: Rc<RefCell<VecDeque<String>>> = Rc::new(RefCell::new(VecDeque::new()));
    let tracer = trace_lines.map(|n| (log.clone(), n));
    let step = Rc::new(std::cell::Cell::new((0usize, "setup")));
    let step_seen = step.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut sim = Sim::new(seed, mutation, tracer, step_seen);
        sim.run()
    }));
    let result = match result {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            let (at, phase) = step.get();
            Err(Violation {
                invariant: "panic",
                detail: msg,
                step: at,
                phase,
            })
        }
    };
    let trace = log.borrow().iter().cloned().collect();
    (result, trace)
}

// ---------------------------------------------------------------------------
// The seed's plan

struct Rng(SplitMix);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.0.below(n) }
    }
    /// `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

/// Sizes and fault rates, all drawn from the seed.
#[derive(Debug)]
struct Plan {
    reactors: usize,
    slots: usize,
    command_ring: usize,
    event_ring: usize,
    audit_ring: usize,
    clients: usize,
    steps: usize,
    engine_on_reactor0: bool,
    orders_max: usize,
    levels: usize,
    pending_cap: usize,
    /// Per mille of completions held back a step (delays).
    delay: u64,
    /// Per mille of steps that inject a fault.
    fault_rate: u64,
    /// A client→gateway delivery takes at most this many bytes (splits).
    chunk_max: usize,
    /// The client's socket receive buffer (gateway→client).
    socket_buffer: usize,
    flooders: usize,
    attackers: usize,
    journal_fails_at: Option<usize>,
}

impl Plan {
    fn draw(rng: &mut Rng) -> Plan {
        let rings = [4usize, 8, 16, 64];
        let steps = rng.range(800, 2400) as usize;
        Plan {
            reactors: rng.range(1, 3) as usize,
            slots: rng.range(2, 6) as usize,
            command_ring: rings[rng.index(rings.len())],
            event_ring: rings[rng.index(rings.len())],
            audit_ring: [4usize, 16, 256][rng.index(3)],
            clients: rng.range(3, 12) as usize,
            steps,
            engine_on_reactor0: rng.chance(500),
            orders_max: [8usize, 64, 512][rng.index(3)],
            levels: [2usize, 8, 64][rng.index(3)],
            pending_cap: rng.range(1, 4) as usize,
            delay: [0u64, 100, 300][rng.index(3)],
            fault_rate: [5u64, 20, 60][rng.index(3)],
            chunk_max: [64usize, 512, RECV_BUFFER, RECV_BUFFER][rng.index(4)],
            socket_buffer: [96usize, 1024, 64 * 1024][rng.index(3)],
            flooders: if rng.chance(500) { 1 } else { 0 },
            attackers: rng.range(0, 2) as usize,
            journal_fails_at: rng.chance(100).then(|| rng.index(steps)),
        }
    }
}

// ---------------------------------------------------------------------------
// The engine behind a tap

/// What the engine took and emitted since the checker last looked.
#[derive(Default)]
struct TapLog {
    /// Commands taken, in order.
    taken: Vec<Command>,
    /// Events emitted (as the engine reported them), in order, each with
    /// the command being carried out.
    events: Vec<(Event, Option<Command>)>,
    /// The command being carried out (None: idle).
    current: Option<Command>,
    /// Commands a buggy gateway forwards unchecked (Mutation::ForgeCommand).
    forged: VecDeque<Command>,
    mutation: Mutation,
    /// The one-shot mutations have struck.
    struck: bool,
}

struct Tap {
    engine: MatchingEngine,
    log: Rc<RefCell<TapLog>>,
    /// Commands to carry out after the current one (a forged one before a
    /// real one; a duplicate after it).
    queue: VecDeque<Command>,
}

struct TapSink<'a, S: EventSink> {
    out: &'a mut S,
    log: &'a mut TapLog,
}

impl<S: EventSink> EventSink for TapSink<'_, S> {
    fn room(&mut self, session: SessionId) -> usize {
        self.out.room(session)
    }

    fn emit(&mut self, event: &Event) {
        let mut e = *event;
        let current = self.log.current;
        match self.log.mutation {
            Mutation::DropAck if e.kind == EventKind::Accepted && !self.log.struck => {
                self.log.struck = true;
                self.log.events.push((e, current));
                return;
            }
            Mutation::DuplicateAck
                if e.kind == EventKind::Accepted
                    && !self.log.struck
                    && self.out.room(e.session) >= 4 =>
            {
                self.log.struck = true;
                self.out.emit(&e);
            }
            Mutation::SkewFill if e.kind == EventKind::Fill && !self.log.struck => {
                self.log.struck = true;
                e.qty += 1;
            }
            _ => {}
        }
        self.log.events.push((e, current));
        self.out.emit(&e);
    }
}

impl Tap {
    fn run_queue<S: EventSink>(&mut self, now: Nanos, out: &mut S) -> bool {
        while let Some(c) = self.queue.pop_front() {
            let mut log = self.log.borrow_mut();
            log.taken.push(c);
            log.current = Some(c);
            let mut sink = TapSink { out, log: &mut log };
            if !self.engine.submit(now, &c, &mut sink) {
                return false;
            }
            log.current = None;
        }
        true
    }
}

impl Engine for Tap {
    fn submit<S: EventSink>(&mut self, now: Nanos, command: &Command, out: &mut S) -> bool {
        {
            let mut log = self.log.borrow_mut();
            if log.mutation == Mutation::DropCod && command.kind == CommandKind::CancelOnDisconnect
            {
                return true;
            }
            if log.mutation == Mutation::DropKeySweep && command.kind == CommandKind::CancelForKey {
                return true;
            }
            if let Some(forged) = log.forged.pop_front() {
                self.queue.push_back(forged);
            }
            self.queue.push_back(*command);
            if log.mutation == Mutation::DuplicateCommand
                && command.kind == CommandKind::NewOrder
                && !log.struck
            {
                log.struck = true;
                self.queue.push_back(*command);
            }
        }
        self.run_queue(now, out)
    }

    fn resume<S: EventSink>(&mut self, now: Nanos, out: &mut S) -> bool {
        {
            let mut log = self.log.borrow_mut();
            let mut sink = TapSink { out, log: &mut log };
            if !self.engine.resume(now, &mut sink) {
                return false;
            }
            log.current = None;
        }
        self.run_queue(now, out)
    }

    fn set_key_limits(&mut self, limits: &[KeyLimits]) {
        self.engine.set_key_limits(limits);
    }
}

// ---------------------------------------------------------------------------
// The simulated kernel and network

/// A connection as the simulated driver holds it (the worker's `Conn`).
#[derive(Default)]
struct SimConn {
    /// The descriptor is open (the worker's `fd >= 0`).
    open: bool,
    pipe: usize,
    id: SessionId,
    recv_armed: bool,
    recv_cancel_sent: bool,
    /// The bytes of the send in flight.
    send: Option<Vec<u8>>,
    closing: bool,
    close_submitted: bool,
    paused: bool,
    parked: VecDeque<Vec<u8>>,
}

/// Parked input as the core takes it.
struct SimParked<'a>(&'a mut VecDeque<Vec<u8>>);

impl ParkedInput for SimParked<'_> {
    fn oldest(&self) -> Option<&[u8]> {
        self.0.front().map(|v| &v[..])
    }

    fn took(&mut self, n: usize, _commands: u64) {
        let front = self.0.front_mut().expect("took from a parked chunk");
        if n >= front.len() {
            self.0.pop_front();
        } else {
            front.drain(..n);
        }
    }
}

/// One TCP connection between a client and the gateway.
struct Pipe {
    client: usize,
    reactor: usize,
    peer: IpAddr,
    /// Bytes the client wrote that the gateway has not received.
    c2g: VecDeque<u8>,
    /// Bytes the gateway sent that the client has not read (bounded: the
    /// client's socket receive buffer).
    g2c: VecDeque<u8>,
    /// The client closed its end: the gateway reads what is left, then the
    /// end of the stream; its sends fail.
    client_fin: bool,
    /// The client reset the connection: what it wrote is lost.
    reset: bool,
    /// The gateway shut down its end (or refused the connection): the
    /// client reads what is left, then the end of the stream.
    gw_fin: bool,
    /// The gateway's descriptor is closed.
    gw_closed: bool,
    /// The Logon the client sent first: whether it asked for
    /// cancel-on-disconnect, and whether it was honest (the key's secret,
    /// a fresh nonce, the time).
    logon_cod: bool,
    logon_honest: bool,
}

struct Reactor {
    core: ReactorCore,
    conns: Vec<SimConn>,
    /// Connections not yet accepted (the listen backlog), by pipe.
    backlog: VecDeque<usize>,
    last_tick: u64,
}

// ---------------------------------------------------------------------------
// Clients

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Honest,
    /// Sends bursts without reading: back-pressure, pauses, slow consumers.
    Flooder,
    /// Garbage before logon, wrong secrets, stale and replayed logons,
    /// tampered, replayed and cross-session frames.
    Attacker,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Offline,
    /// Connected, Logon sent, no answer yet.
    LoggingOn,
    Active,
    /// Terminate or LogonReject read: waiting for the end of the stream.
    Ended,
}

/// A command a client sent, as the engine must see it if it sees it.
struct SentCmd {
    session: u64,
    expect: Command,
    taken: u32,
    answers: u32,
}

struct Client {
    role: Role,
    key: u64,
    peer: IpAddr,
    cod: bool,
    keepalive_ms: u16,
    pipe: Option<usize>,
    phase: Phase,
    cs: ClientSession,
    reader: FrameReader,
    /// The session id of the current (or last) logon.
    session: u64,
    reading: bool,
    next_cl: u64,
    sent: HashMap<u64, SentCmd>,
    /// Orders it believes live (targets for cancels and replaces).
    live: Vec<u64>,
    last_send: u64,
    /// Sealed frames it sent on this session (for replays).
    history: Vec<Vec<u8>>,
    /// The last Logon it built: (secret, request time, nonce), to replay.
    last_logon: Option<([u8; 32], u64, [u8; 16])>,
    connects: u64,
    /// The quiet phase's probe: its order id until answered.
    probe: Option<u64>,
    probed: bool,
}

// ---------------------------------------------------------------------------
// The checker's model

struct SessionModel {
    client: usize,
    key: u64,
    cod: bool,
    /// Highest client order id taken by the engine (commands keep order).
    last_cl: u64,
    /// Orders of the session resting (or believed resting) in the book.
    orders: BTreeSet<u64>,
    /// Cancel-on-disconnect verified (finished, book clean): not looked at
    /// again.
    verified: bool,
}

struct OrderModel {
    session: SessionId,
    cl: u64,
    /// Entered quantity, plus what replaces added (minus what they took).
    entered: i64,
    filled: i64,
    canceled: i64,
}

impl OrderModel {
    fn leaves(&self) -> i64 {
        self.entered - self.filled - self.canceled
    }
}

#[derive(Clone, Copy)]
struct KeyModel {
    id: u64,
    secret: [u8; 32],
    next: Option<[u8; 32]>,
    present: bool,
    trade: bool,
    disabled: bool,
    not_after: Option<u64>,
}

// ---------------------------------------------------------------------------
// The simulation

pub struct Sim {
    seed: u64,
    rng: Rng,
    plan: Plan,
    mutation: Mutation,
    /// Virtual monotonic time since start; the wall clock is T0 + mono +
    /// offset (clock jumps move the offset, as an NTP step moves the
    /// worker's wall clock; timer ticks follow the monotonic clock).
    mono: u64,
    offset: i64,
    shared: Arc<Shared>,
    health: Arc<JournalHealth>,
    reactors: Vec<Reactor>,
    agent: EngineAgent<Tap>,
    tap: Rc<RefCell<TapLog>>,
    engine_stall_until: u64,
    engine_dead: bool,
    audit: Vec<Consumer<AuditEvent>>,
    keys: Vec<KeyModel>,
    pipes: Vec<Pipe>,
    clients: Vec<Client>,
    sessions: BTreeMap<u64, SessionModel>,
    orders: BTreeMap<u64, OrderModel>,
    /// Fills by exec id: (qty, price, fills seen).
    trades: HashMap<u64, (u32, i64, u8)>,
    faults: bool,
    step: usize,
    phase: &'static str,
    step_seen: Rc<std::cell::Cell<(usize, &'static str)>>,
    violation: Option<Violation>,
    trace: Option<(Rc<RefCell<VecDeque<String>>>, usize)>,
    logons_at_failure: Option<u64>,
    /// Every session id the driver opened, with its pipe.
    opened: HashMap<u64, usize>,
    /// Sessions whose cancel-on-disconnect the engine took.
    cod_taken: BTreeSet<u64>,
    summary: Summary,
}

const TRACE_LINES: usize = 60;

impl Sim {
    fn new(
        seed: u64,
        mutation: Mutation,
        trace: Option<(Rc<RefCell<VecDeque<String>>>, usize)>,
        step_seen: Rc<std::cell::Cell<(usize, &'static str)>>,
    ) -> Sim {
        let mut rng = Rng(SplitMix(seed ^ 0x05EE_D0F0_CA7E));
        let plan = Plan::draw(&mut rng);
        let keys: Vec<KeyModel> = KEYS
            .iter()
            .map(|&id| KeyModel {
                id,
                secret: secret_bytes(seed, id, 0),
                next: None,
                present: true,
                trade: true,
                disabled: false,
                not_after: None,
            })
            .collect();
        let config = GatewayConfig {
            session_msgs_per_sec: 1_000_000,
            session_burst: 100_000,
            ..GatewayConfig::default()
        };
        let mut shared_seed = [0u8; 32];
        shared_seed[..8].copy_from_slice(&seed.to_le_bytes());
        let shared = Arc::new(Shared::new(config, table_of(&keys), shared_seed));
        let health = Arc::new(JournalHealth::new());
        let mut reactors = Vec::new();
        let mut command_rx = Vec::new();
        let mut event_tx = Vec::new();
        let mut audit = Vec::new();
        for r in 0..plan.reactors {
            let (ctx, crx) = ring::channel::<Command>(plan.command_ring);
            let (etx, erx) = ring::channel::<Event>(plan.event_ring);
            command_rx.push(crx);
            event_tx.push(etx);
            let mut core = ReactorCore::new(r as u16, shared.clone(), plan.slots, ctx, erx);
            core.set_pending_logons_per_address(plan.pending_cap);
            let (atx, arx) = ring::channel::<AuditEvent>(plan.audit_ring);
            core.audit = Audit::new(AuditSink::new(atx), health.clone());
            audit.push(arx);
            reactors.push(Reactor {
                core,
                conns: (0..plan.slots).map(|_| SimConn::default()).collect(),
                backlog: VecDeque::new(),
                last_tick: 0,
            });
        }
        let engine = MatchingEngine::new(EngineConfig {
            instruments: 2,
            orders_max: plan.orders_max,
            levels_per_side_max: plan.levels,
            keys_max: 8,
            ..EngineConfig::default()
        });
        let tap = Rc::new(RefCell::new(TapLog {
            mutation,
            ..TapLog::default()
        }));
        let agent = EngineAgent::new(
            Tap {
                engine,
                log: tap.clone(),
                queue: VecDeque::new(),
            },
            command_rx,
            event_tx,
        )
        .with_limits(shared.limits.clone());
        let mut clients = Vec::new();
        for i in 0..plan.clients {
            let role = if i < plan.flooders {
                Role::Flooder
            } else if i < plan.flooders + plan.attackers {
                Role::Attacker
            } else {
                Role::Honest
            };
            // A flooder's key is fast: its flood meets back-pressure, not
            // the key's rate.
            let key = if role == Role::Flooder {
                KEYS[0]
            } else {
                KEYS[rng.index(KEYS.len())]
            };
            clients.push(Client {
                role,
                key,
                // Neighbours share addresses: the per-address cap and
                // lockouts meet more than one client.
                peer: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 5) as u8)),
                cod: rng.chance(600),
                keepalive_ms: [2000u16, 5000, 30000][rng.index(3)],
                pipe: None,
                phase: Phase::Offline,
                cs: ClientSession::new(key, [0; 32]),
                reader: FrameReader::new(1 << 20),
                session: 0,
                reading: true,
                next_cl: 1,
                sent: HashMap::new(),
                live: Vec::new(),
                last_send: 0,
                history: Vec::new(),
                last_logon: None,
                connects: 0,
                probe: None,
                probed: false,
            });
        }
        let mut sim = Sim {
            seed,
            rng,
            plan,
            mutation,
            mono: 0,
            offset: 0,
            shared,
            health,
            reactors,
            agent,
            tap,
            engine_stall_until: 0,
            engine_dead: false,
            audit,
            keys,
            pipes: Vec::new(),
            clients,
            sessions: BTreeMap::new(),
            orders: BTreeMap::new(),
            trades: HashMap::new(),
            faults: true,
            step: 0,
            phase: "fault",
            step_seen,
            violation: None,
            trace,
            logons_at_failure: None,
            opened: HashMap::new(),
            cod_taken: BTreeSet::new(),
            summary: Summary::default(),
        };
        let plan = format!("{:?}", sim.plan);
        sim.trace(|| format!("seed {seed}: {plan}"));
        sim
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if let Some((t, lines)) = &self.trace {
            let mut t = t.borrow_mut();
            if t.len() == *lines {
                t.pop_front();
            }
            t.push_back(format!("[{} {}] {}", self.phase, self.step, line()));
        }
    }

    fn fail(&mut self, invariant: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                invariant,
                detail,
                step: self.step,
                phase: self.phase,
            });
        }
    }

    fn wall(&self) -> Nanos {
        (i128::from(T0) + i128::from(self.mono) + i128::from(self.offset)) as Nanos
    }

    /// The clients' clock: true time (the gateway's may have jumped).
    fn client_time(&self) -> Nanos {
        T0 + self.mono
    }

    fn run(&mut self) -> Result<Summary, Violation> {
        // The fault phase.
        for step in 0..self.plan.steps {
            self.step = step;
            self.step_seen.set((step, self.phase));
            self.advance();
            self.fault_step();
            self.check_step();
            if let Some(v) = self.violation.take() {
                return Err(v);
            }
        }
        // Faults stop: everything settles, then every open session must
        // answer a new order and every logon in flight be answered.
        self.faults = false;
        self.phase = "quiet";
        if self.mutation == Mutation::StallEngine {
            self.engine_dead = true;
        }
        // The one-shot engine mutations strike during the faults only.
        self.tap.borrow_mut().struck = true;
        for c in &mut self.clients {
            c.reading = true;
        }
        let base = self.plan.steps;
        for round in 0..3_000 {
            self.step = base + round;
            self.step_seen.set((self.step, self.phase));
            self.quiet_round(MS);
            if let Some(v) = self.violation.take() {
                return Err(v);
            }
        }
        self.phase = "probe";
        // Every client that has gone comes back (honestly: no faults now).
        for i in 0..self.clients.len() {
            if self.clients[i].phase == Phase::Offline {
                self.connect(i);
            }
        }
        let base = self.step + 1;
        let mut settled = false;
        for round in 0..4_000 {
            self.step = base + round;
            self.step_seen.set((self.step, self.phase));
            // Each open session, once, sends an order that must be answered.
            for i in 0..self.clients.len() {
                if self.clients[i].phase == Phase::Active && !self.clients[i].probed {
                    let cl = self.send_new_order(i, 1, 100, 1, 0);
                    self.clients[i].probe = Some(cl);
                    self.clients[i].probed = true;
                }
            }
            self.quiet_round(MS);
            if let Some(v) = self.violation.take() {
                return Err(v);
            }
            if self.progress_done() {
                settled = true;
                break;
            }
        }
        if !settled {
            let stuck = self.progress_report();
            self.fail(
                "progress",
                format!("after the faults stopped, 4 s of quiet turns left {stuck}"),
            );
            return Err(self.violation.take().expect("just failed"));
        }
        self.check_all_answered();
        self.check_keys();
        if let Some(v) = self.violation.take() {
            return Err(v);
        }
        // Every client leaves: every slot must come back.
        self.phase = "teardown";
        for i in 0..self.clients.len() {
            self.client_drop(i, false);
        }
        let base = self.step + 1;
        let mut clean = false;
        for round in 0..6_000 {
            self.step = base + round;
            self.step_seen.set((self.step, self.phase));
            self.quiet_round(MS);
            if let Some(v) = self.violation.take() {
                return Err(v);
            }
            if self.reactors.iter().all(|r| r.core.live_count() == 0) && !self.agent.pending() {
                clean = true;
                break;
            }
        }
        if !clean {
            let live: Vec<String> = self
                .reactors
                .iter()
                .enumerate()
                .map(|(r, x)| {
                    let ids: Vec<String> = x
                        .core
                        .live_ids()
                        .map(|id| {
                            let c = &x.conns[id.slot() as usize];
                            let s = x.core.session(id);
                            format!(
                                "{id:?} open {} recv {} cancel {} send {} closing {} close {} paused {} session finished {:?} close reason {:?}",
                                c.open,
                                c.recv_armed,
                                c.recv_cancel_sent,
                                c.send.is_some(),
                                c.closing,
                                c.close_submitted,
                                c.paused,
                                s.map(|s| s.is_finished()),
                                s.and_then(|s| s.close_reason())
                            )
                        })
                        .collect();
                    format!(
                        "reactor {r}: {} slots in use [{}]",
                        x.core.live_count(),
                        ids.join("; ")
                    )
                })
                .collect();
            let engine = if self.agent.pending() {
                "; the engine has commands waiting"
            } else {
                ""
            };
            self.fail(
                "progress",
                format!(
                    "every client closed its connection but 6 s later {}{engine}",
                    live.join(", ")
                ),
            );
        }
        self.check_cod();
        if let Some(v) = self.violation.take() {
            return Err(v);
        }
        self.collect_summary();
        Ok(self.summary.clone())
    }

    fn advance(&mut self) {
        let dt = match self.rng.below(100) {
            0..=69 => self.rng.range(0, 50 * US),
            70..=95 => self.rng.range(50 * US, 2 * MS),
            _ => self.rng.range(2 * MS, 200 * MS),
        };
        self.mono += dt;
    }

    fn fault_step(&mut self) {
        if self.plan.journal_fails_at == Some(self.step) {
            self.journal_fail();
        }
        match self.rng.below(1000) {
            0..=349 => {
                let r = self.rng.index(self.reactors.len());
                self.turn(r);
            }
            350..=449 => {
                if self.plan.engine_on_reactor0 {
                    self.turn(0);
                } else {
                    self.engine_work();
                }
            }
            450..=699 => {
                let c = self.rng.index(self.clients.len());
                self.client_act(c);
            }
            700..=899 => {
                let c = self.rng.index(self.clients.len());
                self.client_read(c);
            }
            900..=949 => {
                let r = self.rng.index(self.reactors.len());
                self.drain_audit(r);
            }
            _ => {}
        }
        if self.rng.below(1000) < self.plan.fault_rate {
            self.inject_fault();
        }
        for c in 0..self.clients.len() {
            self.heartbeat(c);
        }
    }

    /// One round with no faults: every reactor turns, the engine works,
    /// every client reads, the journal drains.
    fn quiet_round(&mut self, dt: u64) {
        self.mono += dt;
        for r in 0..self.reactors.len() {
            self.turn(r);
        }
        if !self.plan.engine_on_reactor0 {
            self.engine_work();
        }
        for c in 0..self.clients.len() {
            self.client_read(c);
            self.heartbeat(c);
        }
        for r in 0..self.reactors.len() {
            self.drain_audit(r);
        }
        self.check_step();
    }

    fn inject_fault(&mut self) {
        match self.rng.below(100) {
            0..=19 => {
                // A clock jump, forward or back (an NTP step): mostly
                // small, sometimes beyond the logon skew window; a clock
                // far off is stepped back toward the truth.
                let max = if self.rng.chance(100) { 8 * SEC } else { SEC };
                let by = self.rng.range(MS, max);
                let back = if self.offset.unsigned_abs() > 3 * SEC {
                    self.offset > 0
                } else {
                    self.rng.chance(500)
                };
                self.offset += if back { -(by as i64) } else { by as i64 };
                if back {
                    self.summary.clock_back += 1;
                }
                let off = self.offset;
                self.trace(|| {
                    format!(
                        "clock jump {}{by} ns (offset {off})",
                        if back { "-" } else { "+" }
                    )
                });
            }
            20..=34 => {
                let until = self.mono + self.rng.range(MS, 80 * MS);
                self.engine_stall_until = until;
                self.trace(|| format!("engine stalls until {until}"));
            }
            35..=54 => {
                let c = self.rng.index(self.clients.len());
                self.clients[c].reading = !self.clients[c].reading;
                let reading = self.clients[c].reading;
                self.trace(|| format!("client {c} reading: {reading}"));
            }
            55..=69 => {
                let c = self.rng.index(self.clients.len());
                let reset = self.rng.chance(500);
                self.client_drop(c, reset);
            }
            70..=76 => self.revoke(),
            77..=94 => self.reload(),
            _ => {
                // The journal thread sleeps: audit rings fill (Gap records).
                let _ = ();
            }
        }
    }

    fn journal_fail(&mut self) {
        if self.logons_at_failure.is_none() {
            self.health.fail(FailReason::WriteError);
            self.logons_at_failure = Some(self.logons_accepted());
            self.trace(|| "journal fails".into());
        }
    }

    fn logons_accepted(&self) -> u64 {
        self.reactors
            .iter()
            .map(|r| r.core.counters.logons_accepted)
            .sum()
    }

    fn revoke(&mut self) {
        let k = self.rng.index(self.keys.len());
        let id = self.keys[k].id;
        // Revoke at most one key (for the rest of the run), so that most
        // clients keep trading.
        let revoked = self.shared.key_set().revoked_ids().len();
        if revoked >= 1 {
            return;
        }
        self.shared.revoke_key(id);
        self.trace(|| format!("revoke key {id}"));
    }

    fn reload(&mut self) {
        let k = self.rng.index(self.keys.len());
        let now = self.wall();
        let present = self.keys.iter().filter(|k| k.present).count();
        let key = &mut self.keys[k];
        match self.rng.below(12) {
            6..=11 => {
                // The operator puts the key right again.
                key.present = true;
                key.trade = true;
                key.disabled = false;
                key.not_after = None;
            }
            0 => {
                // A keys file keeps at least one key.
                if !key.present || present > 1 {
                    key.present = !key.present;
                }
            }
            1 => {
                // Rotation: a next secret appears, or replaces the current.
                match key.next.take() {
                    Some(next) => key.secret = next,
                    None => key.next = Some(secret_bytes(self.seed, key.id, self.mono)),
                }
            }
            2 => key.trade = !key.trade,
            3 => key.disabled = !key.disabled,
            4 => key.not_after = Some(now + self.rng.range(0, 300 * MS)),
            _ => key.not_after = None,
        }
        let id = key.id;
        let model = *key;
        self.shared.publish_keys(table_of(&self.keys));
        self.trace(|| {
            format!(
                "reload: key {id} present {} trade {} disabled {} rotating {} not_after {:?}",
                model.present,
                model.trade,
                model.disabled,
                model.next.is_some(),
                model.not_after
            )
        });
    }

    fn engine_stalled(&self) -> bool {
        self.engine_dead || self.mono < self.engine_stall_until
    }

    fn engine_work(&mut self) {
        if self.engine_stalled() {
            return;
        }
        let now = self.wall();
        let n = self.agent.do_work(now);
        if n > 0 {
            self.trace(|| format!("engine took {n} commands"));
        }
        self.check_engine();
    }

    // ----- the reactor's turn (reactor::worker::Worker::run) -------------

    fn turn(&mut self, r: usize) {
        let now = self.wall();
        self.reactors[r].core.refresh_keys(now);
        // Accepts: part of the backlog, or all of it.
        let accepts = if self.faults {
            self.rng.below(self.reactors[r].backlog.len() as u64 + 1)
        } else {
            self.reactors[r].backlog.len() as u64
        };
        for _ in 0..accepts {
            let Some(p) = self.reactors[r].backlog.pop_front() else {
                break;
            };
            self.accept(r, p, now);
        }
        // Completions, from a random first slot.
        let slots = self.reactors[r].conns.len();
        let first = self.rng.index(slots);
        for k in 0..slots {
            self.reap(r, (first + k) % slots, now);
        }
        if self.plan.engine_on_reactor0 && r == 0 {
            self.engine_work();
        }
        let events = self.reactors[r].core.poll_events(now);
        if events > 0 {
            self.trace(|| format!("reactor {r} polled {events} events"));
        }
        if self.mono - self.reactors[r].last_tick >= TICK_NS {
            self.reactors[r].last_tick = self.mono;
            let Reactor { core, conns, .. } = &mut self.reactors[r];
            core.tick(now, |id| conns[id.slot() as usize] = SimConn::default());
            self.admit_waiting(r, now);
        }
        self.flush(r, now);
    }

    fn accept(&mut self, r: usize, p: usize, now: Nanos) {
        let peer = self.pipes[p].peer;
        let admission = self.reactors[r].core.admit(now, peer, p as i32);
        self.trace(|| format!("reactor {r} accepts pipe {p}: {admission:?}"));
        match admission {
            Admission::Open(id) => self.open_conn(r, p, id),
            Admission::Wait => {}
            Admission::Refuse(reason) => {
                let pipe = &mut self.pipes[p];
                pipe.g2c.extend(logon_reject_bytes(reason, now));
                pipe.gw_fin = true;
                pipe.gw_closed = true;
            }
        }
    }

    fn open_conn(&mut self, r: usize, p: usize, id: SessionId) {
        self.opened.insert(id.0, p);
        self.reactors[r].conns[id.slot() as usize] = SimConn {
            open: true,
            pipe: p,
            id,
            recv_armed: true,
            ..SimConn::default()
        };
    }

    fn admit_waiting(&mut self, r: usize, now: Nanos) {
        while let Some((p, id)) = self.reactors[r].core.next_waiting(now) {
            self.trace(|| format!("reactor {r}: waiting pipe {p} gets {id:?}"));
            self.open_conn(r, p as usize, id);
        }
    }

    /// Whether a completion that could be posted now is (else it is held
    /// back: a delay).
    fn ready(&mut self) -> bool {
        !self.faults || !self.rng.chance(self.plan.delay)
    }

    /// The completions of one connection the simulated kernel posts now.
    fn reap(&mut self, r: usize, slot: usize, now: Nanos) {
        if !self.reactors[r].conns[slot].open {
            return;
        }
        let p = self.reactors[r].conns[slot].pipe;
        let id = self.reactors[r].conns[slot].id;
        // The receive.
        let c = &self.reactors[r].conns[slot];
        if c.recv_armed && self.ready() {
            let c = &self.reactors[r].conns[slot];
            let pipe = &self.pipes[p];
            if c.recv_cancel_sent && self.rng.chance(500) {
                // -ECANCELED: the end of our cancel (the pause); re-armed
                // now if the pause already ended.
                let c = &mut self.reactors[r].conns[slot];
                c.recv_armed = false;
                c.recv_cancel_sent = false;
                if !c.closing {
                    self.arm_recv(r, slot);
                }
            } else if c.closing || pipe.reset || (pipe.c2g.is_empty() && pipe.client_fin) {
                // The end of the stream (0), a reset, or the end our
                // shutdown caused: the session is over.
                let c = &mut self.reactors[r].conns[slot];
                c.recv_armed = false;
                c.recv_cancel_sent = false;
                let why = if pipe.reset { "reset" } else { "end of stream" };
                self.trace(|| format!("reactor {r} slot {slot}: receive ends ({why})"));
                self.reactors[r].core.on_closed(id, now);
                self.start_close(r, slot);
            } else if !pipe.c2g.is_empty() {
                // A multishot receive posts a run of completions (the
                // kernel yields after 32).
                let run = if self.faults {
                    self.rng.range(1, 32)
                } else {
                    32
                };
                for _ in 0..run {
                    let c = &self.reactors[r].conns[slot];
                    if !c.open || c.closing || !c.recv_armed || self.pipes[p].c2g.is_empty() {
                        break;
                    }
                    self.deliver(r, slot, p, now);
                }
            }
        }
        self.maybe_submit_close(r, slot);
        // The send.
        if self.reactors[r].conns[slot].send.is_some() && self.ready() {
            let c = &self.reactors[r].conns[slot];
            let pipe = &self.pipes[p];
            let len = c.send.as_ref().map_or(0, Vec::len);
            let room = self.plan.socket_buffer.saturating_sub(pipe.g2c.len());
            let failed = c.closing || pipe.reset || (pipe.client_fin && self.rng.chance(500));
            let sent = if failed {
                Some(None)
            } else if room > 0 {
                let n = if self.faults && self.rng.chance(300) {
                    self.rng.range(1, len.min(room) as u64) as usize
                } else {
                    len.min(room)
                };
                Some(Some(n))
            } else {
                None // the socket is full: the send waits
            };
            if let Some(sent) = sent {
                let bytes = self.reactors[r].conns[slot].send.take().expect("in flight");
                if let Some(n) = sent {
                    self.pipes[p].g2c.extend(&bytes[..n]);
                }
                match self.reactors[r].core.on_sent(id, now, sent) {
                    Sent::Gone => return,
                    Sent::Done => {}
                    Sent::Failed => {
                        self.trace(|| format!("reactor {r} slot {slot}: send failed"));
                        self.start_close(r, slot);
                    }
                }
                self.maybe_submit_close(r, slot);
            }
        }
        // The close.
        if self.reactors[r].conns[slot].close_submitted && self.ready() {
            self.reactors[r].conns[slot].open = false;
            self.pipes[p].gw_closed = true;
            self.pipes[p].gw_fin = true;
            let why = self.reactors[r]
                .core
                .session(id)
                .and_then(|s| s.close_reason());
            let released = self.reactors[r].core.on_close_completed(id, now);
            self.trace(|| {
                format!("reactor {r} slot {slot} (pipe {p}): closed ({why:?}), released {released}")
            });
            if released {
                self.reactors[r].conns[slot] = SimConn::default();
                self.admit_waiting(r, now);
            }
        }
    }

    /// One receive completion with data: parked behind what is parked if
    /// the connection is paused, else offered.
    fn deliver(&mut self, r: usize, slot: usize, p: usize, now: Nanos) {
        let max = if self.faults {
            self.plan.chunk_max
        } else {
            RECV_BUFFER
        };
        let len = self.pipes[p].c2g.len().min(max);
        let n = if !self.faults {
            len
        } else if self.rng.chance(50) {
            // A trickle: a few bytes at a time.
            self.rng.range(1, len.min(8) as u64) as usize
        } else {
            self.rng.range(1, len as u64) as usize
        };
        let bytes: Vec<u8> = self.pipes[p].c2g.drain(..n).collect();
        if self.reactors[r].conns[slot].paused {
            self.reactors[r].conns[slot].parked.push_back(bytes);
        } else {
            self.offer(r, slot, now, bytes);
        }
    }

    /// Fresh bytes for a session that is not paused (the worker's `offer`).
    fn offer(&mut self, r: usize, slot: usize, now: Nanos, bytes: Vec<u8>) {
        let id = self.reactors[r].conns[slot].id;
        let taken = self.reactors[r].core.on_bytes(id, now, &bytes);
        if taken < bytes.len() {
            self.trace(|| {
                format!(
                    "reactor {r} slot {slot}: paused after {taken} of {} bytes",
                    bytes.len()
                )
            });
            self.reactors[r].conns[slot]
                .parked
                .push_back(bytes[taken..].to_vec());
            self.pause(r, slot);
        }
    }

    fn pause(&mut self, r: usize, slot: usize) {
        let c = &mut self.reactors[r].conns[slot];
        c.paused = true;
        if c.recv_armed && !c.recv_cancel_sent {
            c.recv_cancel_sent = true;
        }
    }

    fn arm_recv(&mut self, r: usize, slot: usize) -> bool {
        let c = &mut self.reactors[r].conns[slot];
        if c.recv_armed || c.closing || c.paused {
            return false;
        }
        c.recv_armed = true;
        true
    }

    fn resume(&mut self, r: usize, slot: usize, now: Nanos) {
        let Reactor { core, conns, .. } = &mut self.reactors[r];
        let c = &mut conns[slot];
        if !c.paused || c.closing {
            return;
        }
        if !core.offer_parked(c.id, now, &mut SimParked(&mut c.parked)) {
            return;
        }
        c.paused = false;
        self.trace(|| format!("reactor {r} slot {slot}: resumed"));
        if self.mutation != Mutation::NoRearm {
            self.arm_recv(r, slot);
        }
    }

    fn start_close(&mut self, r: usize, slot: usize) {
        let c = &mut self.reactors[r].conns[slot];
        if !c.open || c.closing {
            return;
        }
        c.closing = true;
        let p = c.pipe;
        let discarded: usize = c.parked.drain(..).map(|b| b.len()).sum();
        c.paused = false;
        self.reactors[r].core.counters.bytes_discarded += discarded as u64;
        // shutdown(2): the client reads what was sent, then the end.
        self.pipes[p].gw_fin = true;
        self.maybe_submit_close(r, slot);
    }

    fn maybe_submit_close(&mut self, r: usize, slot: usize) {
        let c = &mut self.reactors[r].conns[slot];
        if c.open && c.closing && !c.recv_armed && c.send.is_none() && !c.close_submitted {
            c.close_submitted = true;
        }
    }

    /// The worker's flush: parked input offered if the session has room
    /// again, then one send or the start of the close.
    fn flush(&mut self, r: usize, now: Nanos) {
        while let Some(id) = self.reactors[r].core.pop_dirty() {
            let slot = id.slot() as usize;
            let c = &self.reactors[r].conns[slot];
            if !c.open || c.id != id || c.closing {
                continue;
            }
            if c.paused {
                self.resume(r, slot, now);
            }
            let inflight = self.reactors[r].conns[slot].send.is_some();
            let Reactor { core, conns, .. } = &mut self.reactors[r];
            match core.output(id, inflight) {
                Output::Idle => {}
                Output::Close => self.start_close(r, slot),
                Output::Send(bytes) => conns[slot].send = Some(bytes.to_vec()),
            }
        }
    }

    fn drain_audit(&mut self, r: usize) {
        let max = if self.faults {
            self.rng.range(0, 64) as usize
        } else {
            usize::MAX
        };
        let mut gaps = 0;
        let mut wrong = None;
        self.audit[r].drain(max, |e| {
            if e.kind == AuditKind::Gap {
                gaps += 1;
            }
            if e.reactor as usize != r {
                wrong = Some(e.reactor);
            }
        });
        self.summary.audit_gaps += gaps;
        if let Some(w) = wrong {
            self.fail(
                "gateway-frames",
                format!("reactor {r}'s audit ring carried an event stamped reactor {w}"),
            );
        }
    }

    // ----- clients ---------------------------------------------------------

    fn client_act(&mut self, i: usize) {
        match self.clients[i].phase {
            Phase::Offline => {
                if self.rng.chance(300) {
                    self.connect(i);
                }
            }
            Phase::LoggingOn | Phase::Ended => {}
            Phase::Active => match self.clients[i].role {
                Role::Flooder if self.rng.chance(200) => {
                    self.clients[i].reading = false;
                    let n = self.rng.range(600, 2000);
                    self.trace(|| format!("client {i} floods {n} orders, not reading"));
                    self.summary.floods += 1;
                    for _ in 0..n {
                        let price = self.rng.range(90, 110) as i64;
                        let side = self.rng.range(1, 2) as u8;
                        self.send_new_order(i, 1, price, side, 0);
                    }
                }
                Role::Attacker if self.rng.chance(150) => self.attack(i),
                _ => {
                    for _ in 0..self.rng.range(1, 4) {
                        self.trade(i);
                    }
                }
            },
        }
    }

    fn connect(&mut self, i: usize) {
        let r = self.rng.index(self.reactors.len());
        let p = self.pipes.len();
        self.pipes.push(Pipe {
            client: i,
            reactor: r,
            peer: self.clients[i].peer,
            c2g: VecDeque::new(),
            g2c: VecDeque::new(),
            client_fin: false,
            reset: false,
            gw_fin: false,
            gw_closed: false,
            logon_cod: false,
            logon_honest: false,
        });
        self.reactors[r].backlog.push_back(p);
        let key = self.keys[self
            .keys
            .iter()
            .position(|k| k.id == self.clients[i].key)
            .unwrap()];
        let use_next = key.next.is_some() && self.rng.chance(500);
        let mut secret = if use_next {
            key.next.unwrap()
        } else {
            key.secret
        };
        let role = self.clients[i].role;
        let mut request_time = self.client_time();
        let mut garbage = false;
        let mut signed = true;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.seed.to_le_bytes());
        nonce[8..12].copy_from_slice(&(i as u32).to_le_bytes());
        nonce[12..].copy_from_slice(&(self.clients[i].connects as u32 + 1).to_le_bytes());
        if role == Role::Attacker && self.faults {
            match self.rng.below(6) {
                0 => {
                    secret = secret_bytes(self.seed, 999, self.mono);
                    signed = false;
                }
                1 => request_time -= 20 * SEC,
                2 => garbage = true,
                3 => {
                    // The same Logon again: its nonce is refused if the
                    // gateway ever recorded it.
                    if let Some((s, t, n)) = self.clients[i].last_logon {
                        (secret, request_time, nonce) = (s, t, n);
                    }
                }
                _ => {}
            }
        }
        let c = &mut self.clients[i];
        c.connects += 1;
        c.pipe = Some(p);
        c.phase = Phase::LoggingOn;
        c.cs = ClientSession::new(c.key, secret);
        c.reader = FrameReader::new(1 << 20);
        c.session = 0;
        c.history.clear();
        c.live.clear();
        c.reading = true;
        c.last_send = self.mono;
        let flags = if c.cod {
            LOGON_FLAG_CANCEL_ON_DISCONNECT
        } else {
            0
        };
        let bytes: Vec<u8> = if garbage {
            (0..self.rng.range(1, 200))
                .map(|_| self.rng.below(256) as u8)
                .collect()
        } else {
            c.last_logon = Some((secret, request_time, nonce));
            c.cs.logon(request_time, nonce, c.keepalive_ms, 1, flags)
                .to_vec()
        };
        self.pipes[p].c2g.extend(&bytes);
        self.pipes[p].logon_cod = self.clients[i].cod;
        // Signed with a secret the key has had: the gateway may take it.
        self.pipes[p].logon_honest = !garbage && signed;
        let (key, cod) = (self.clients[i].key, self.clients[i].cod);
        self.trace(|| {
            format!("client {i} connects to reactor {r} (pipe {p}, key {key}, cod {cod}, {role:?}, garbage {garbage})")
        });
    }

    fn write(&mut self, i: usize, bytes: &[u8]) {
        let Some(p) = self.clients[i].pipe else {
            return;
        };
        if self.pipes[p].gw_closed {
            // The gateway closed it: the write fails (a reset, EPIPE); the
            // client knows it has gone.
            self.clients[i].pipe = None;
            self.clients[i].phase = Phase::Offline;
            self.pipes[p].client_fin = true;
            self.trace(|| format!("client {i}'s write to pipe {p} fails: closed"));
            return;
        }
        self.pipes[p].c2g.extend(bytes);
        self.clients[i].last_send = self.mono;
    }

    fn next_cl(&mut self, i: usize) -> u64 {
        let c = &mut self.clients[i];
        let cl = ((i as u64 + 1) << 32) | c.next_cl;
        c.next_cl += 1;
        cl
    }

    /// Records a command the engine must see exactly like this if it sees
    /// it at all.
    fn expect(&mut self, i: usize, expect: Command) {
        let c = &mut self.clients[i];
        c.sent.insert(
            expect.cl_ord_id,
            SentCmd {
                session: c.session,
                expect,
                taken: 0,
                answers: 0,
            },
        );
    }

    fn send_new_order(&mut self, i: usize, instrument: u32, price: i64, side: u8, tif: u8) -> u64 {
        let cl = self.next_cl(i);
        let qty = self.rng.range(1, 20) as u32;
        let frame = wire::NewOrder {
            seq: 0,
            cl_ord_id: cl,
            price,
            qty,
            instrument_id: instrument,
            side,
            ord_type: 1,
            tif,
        }
        .to_bytes();
        let sealed = self.clients[i].cs.seal(frame);
        let session = SessionId(self.clients[i].session);
        self.expect(
            i,
            Command {
                cl_ord_id: cl,
                price,
                qty,
                instrument_id: instrument,
                side,
                ord_type: 1,
                tif,
                ..Command::empty(CommandKind::NewOrder, session)
            },
        );
        self.clients[i].live.push(cl);
        self.keep(i, &sealed);
        self.write(i, &sealed);
        self.summary.orders_sent += 1;
        cl
    }

    fn keep(&mut self, i: usize, sealed: &[u8]) {
        let h = &mut self.clients[i].history;
        if h.len() < 16 {
            h.push(sealed.to_vec());
        }
    }

    fn trade(&mut self, i: usize) {
        let session = SessionId(self.clients[i].session);
        let instrument = if self.rng.chance(30) {
            3
        } else {
            self.rng.range(1, 2) as u32
        };
        match self.rng.below(100) {
            0..=54 => {
                let price = self.rng.range(95, 105) as i64;
                let side = self.rng.range(1, 2) as u8;
                let tif = if self.rng.chance(300) { 3 } else { 0 };
                let cl = self.send_new_order(i, instrument, price, side, tif);
                self.trace(|| format!("client {i} NewOrder {cl:#x} {price} side {side} tif {tif}"));
            }
            55..=71 => {
                let cl = self.next_cl(i);
                let orig = self.pick_live(i);
                let frame = wire::CancelOrder {
                    seq: 0,
                    cl_ord_id: cl,
                    orig_cl_ord_id: orig,
                    instrument_id: instrument,
                }
                .to_bytes();
                let sealed = self.clients[i].cs.seal(frame);
                self.expect(
                    i,
                    Command {
                        cl_ord_id: cl,
                        orig_cl_ord_id: orig,
                        instrument_id: instrument,
                        ..Command::empty(CommandKind::Cancel, session)
                    },
                );
                self.keep(i, &sealed);
                self.write(i, &sealed);
                self.trace(|| format!("client {i} Cancel {cl:#x} of {orig:#x}"));
            }
            72..=84 => {
                let cl = self.next_cl(i);
                let orig = self.pick_live(i);
                let price = self.rng.range(95, 105) as i64;
                let qty = self.rng.range(0, 20) as u32;
                let frame = wire::ReplaceOrder {
                    seq: 0,
                    cl_ord_id: cl,
                    orig_cl_ord_id: orig,
                    price,
                    qty,
                    instrument_id: instrument,
                }
                .to_bytes();
                let sealed = self.clients[i].cs.seal(frame);
                self.expect(
                    i,
                    Command {
                        cl_ord_id: cl,
                        orig_cl_ord_id: orig,
                        price,
                        qty,
                        instrument_id: instrument,
                        ..Command::empty(CommandKind::Replace, session)
                    },
                );
                self.clients[i].live.push(cl);
                self.keep(i, &sealed);
                self.write(i, &sealed);
                self.trace(|| format!("client {i} Replace {cl:#x} of {orig:#x} {price} x {qty}"));
            }
            85..=89 => {
                let cl = self.next_cl(i);
                let instrument = self.rng.range(0, 2) as u32;
                let side = self.rng.range(0, 2) as u8;
                let frame = wire::MassCancel {
                    seq: 0,
                    cl_ord_id: cl,
                    instrument_id: instrument,
                    side,
                }
                .to_bytes();
                let sealed = self.clients[i].cs.seal(frame);
                self.expect(
                    i,
                    Command {
                        cl_ord_id: cl,
                        instrument_id: instrument,
                        side,
                        ..Command::empty(CommandKind::MassCancel, session)
                    },
                );
                self.keep(i, &sealed);
                self.write(i, &sealed);
                self.trace(|| format!("client {i} MassCancel {cl:#x}"));
            }
            90..=97 => {
                let sealed = self.clients[i]
                    .cs
                    .seal(wire::Heartbeat { seq: 0 }.to_bytes());
                self.write(i, &sealed);
            }
            _ => {
                let sealed = self.clients[i]
                    .cs
                    .seal(wire::Logout { seq: 0, reason: 0 }.to_bytes());
                self.write(i, &sealed);
                self.trace(|| format!("client {i} Logout"));
            }
        }
    }

    fn pick_live(&mut self, i: usize) -> u64 {
        let c = &self.clients[i];
        if c.live.is_empty() || self.rng.chance(100) {
            return ((i as u64 + 1) << 32) | 0xFFFF_FFF0;
        }
        let k = self.rng.index(c.live.len());
        self.clients[i].live.swap_remove(k)
    }

    fn attack(&mut self, i: usize) {
        match self.rng.below(3) {
            0 => {
                // A tampered frame: one bit flipped anywhere.
                let cl = self.next_cl(i) | BOGUS;
                let frame = wire::NewOrder {
                    seq: 0,
                    cl_ord_id: cl,
                    price: 100,
                    qty: 5,
                    instrument_id: 1,
                    side: 1,
                    ord_type: 1,
                    tif: 0,
                }
                .to_bytes();
                let mut sealed = self.clients[i].cs.seal(frame);
                let bit = self.rng.index(sealed.len() * 8);
                sealed[bit / 8] ^= 1 << (bit % 8);
                if self.mutation == Mutation::ForgeCommand {
                    // A gateway that skips the tag check forwards it.
                    let session = SessionId(self.clients[i].session);
                    self.tap.borrow_mut().forged.push_back(Command {
                        cl_ord_id: cl,
                        price: 100,
                        qty: 5,
                        instrument_id: 1,
                        side: 1,
                        ord_type: 1,
                        key_id: self.clients[i].key,
                        ..Command::empty(CommandKind::NewOrder, session)
                    });
                }
                self.write(i, &sealed);
                self.trace(|| format!("client {i} sends a tampered frame (bit {bit})"));
            }
            1 => {
                // A replay of one of its own earlier frames.
                let h = &self.clients[i].history;
                if !h.is_empty() {
                    let f = h[self.rng.index(h.len())].clone();
                    self.write(i, &f);
                    self.trace(|| format!("client {i} replays an earlier frame"));
                }
            }
            _ => {
                // Another session's frame.
                let j = self.rng.index(self.clients.len());
                let h = &self.clients[j].history;
                if j != i && !h.is_empty() {
                    let f = h[self.rng.index(h.len())].clone();
                    self.write(i, &f);
                    self.trace(|| format!("client {i} sends client {j}'s frame"));
                }
            }
        }
    }

    fn heartbeat(&mut self, i: usize) {
        let c = &self.clients[i];
        if c.phase == Phase::Active && self.mono - c.last_send >= u64::from(c.keepalive_ms) * MS / 3
        {
            let sealed = self.clients[i]
                .cs
                .seal(wire::Heartbeat { seq: 0 }.to_bytes());
            self.write(i, &sealed);
        }
    }

    /// The client closes its connection: a FIN after what it wrote, or a
    /// reset that loses it.
    fn client_drop(&mut self, i: usize, reset: bool) {
        let Some(p) = self.clients[i].pipe.take() else {
            return;
        };
        let pipe = &mut self.pipes[p];
        if reset {
            pipe.reset = true;
            pipe.c2g.clear();
        } else {
            pipe.client_fin = true;
        }
        self.clients[i].phase = Phase::Offline;
        self.summary.drops += 1;
        self.trace(|| format!("client {i} drops pipe {p} (reset {reset})"));
    }

    fn client_read(&mut self, i: usize) {
        let Some(p) = self.clients[i].pipe else {
            return;
        };
        if !self.clients[i].reading {
            return;
        }
        let avail = self.pipes[p].g2c.len();
        if avail > 0 {
            let n = if self.faults {
                self.rng.range(1, avail as u64) as usize
            } else {
                avail
            };
            let bytes: Vec<u8> = self.pipes[p].g2c.drain(..n).collect();
            self.clients[i].reader.push(&bytes);
            loop {
                let frame = match self.clients[i].reader.next_frame() {
                    None => break,
                    Some(Ok(f)) => f.to_vec(),
                    Some(Err(e)) => {
                        self.fail(
                            "gateway-frames",
                            format!("client {i} read bytes that are no frame: {e:?}"),
                        );
                        return;
                    }
                };
                self.client_frame(i, &frame);
                if self.violation.is_some() {
                    return;
                }
            }
        }
        if self.pipes[p].g2c.is_empty() && self.pipes[p].gw_fin {
            // The end of the stream.
            self.clients[i].pipe = None;
            self.clients[i].phase = Phase::Offline;
            self.pipes[p].client_fin = true;
            self.trace(|| format!("client {i} reads the end of pipe {p}"));
        }
    }

    fn client_frame(&mut self, i: usize, frame: &[u8]) {
        let decoded = match self.clients[i].cs.receive(frame) {
            Ok(f) => f,
            Err(e) => {
                // A LogonReject after an attacker's bad logon is untagged
                // and fine; anything else must pass.
                return self.fail(
                    "gateway-frames",
                    format!(
                        "client {i} (session {:#x}) refused a gateway frame: {e:?} (template {})",
                        self.clients[i].session,
                        u16::from_le_bytes([frame[6], frame[7]])
                    ),
                );
            }
        };
        let session = self.clients[i].session;
        match decoded {
            GatewayFrame::LogonAck(ack) => {
                let id = ack.session_id();
                let c = &mut self.clients[i];
                c.phase = Phase::Active;
                c.session = id;
                let (key, cod) = (c.key, c.cod);
                self.sessions.insert(
                    id,
                    SessionModel {
                        client: i,
                        key,
                        cod,
                        last_cl: 0,
                        orders: BTreeSet::new(),
                        verified: false,
                    },
                );
                self.summary.logons += 1;
                self.trace(|| format!("client {i} logged on: session {id:#x}"));
            }
            GatewayFrame::LogonReject(r) => {
                self.clients[i].phase = Phase::Ended;
                let reason = r.reason();
                self.trace(|| format!("client {i} LogonReject {reason}"));
            }
            GatewayFrame::Terminate(t) => {
                self.clients[i].phase = Phase::Ended;
                let reason = t.reason();
                self.trace(|| format!("client {i} Terminate {reason}"));
            }
            GatewayFrame::Heartbeat(_) => {}
            GatewayFrame::OrderAccepted(a) => {
                self.first_answer(i, session, a.cl_ord_id(), "OrderAccepted")
            }
            GatewayFrame::OrderRejected(r) => {
                let (cl, reason) = (r.cl_ord_id(), r.reason());
                self.trace(|| format!("client {i} OrderRejected {cl:#x} reason {reason}"));
                self.first_answer(i, session, cl, "OrderRejected")
            }
            GatewayFrame::OrderReplaced(r) => {
                self.first_answer(i, session, r.cl_ord_id(), "OrderReplaced")
            }
            GatewayFrame::MassCancelAck(m) => {
                self.first_answer(i, session, m.cl_ord_id(), "MassCancelAck")
            }
            GatewayFrame::OrderCanceled(c) => {
                let cl = c.cl_ord_id();
                if c.reason() == CancelReason::USER.wire() {
                    self.first_answer(i, session, cl, "OrderCanceled USER");
                } else {
                    self.own_order(i, session, cl, "OrderCanceled");
                    self.clients[i].live.retain(|&l| l != cl);
                }
            }
            GatewayFrame::Fill(f) => {
                let cl = f.cl_ord_id();
                self.own_order(i, session, cl, "Fill");
                if f.leaves_qty() == 0 {
                    self.clients[i].live.retain(|&l| l != cl);
                }
            }
        }
    }

    /// The first answer to command `cl`: it must be this client's, sent on
    /// this session, and answered once.
    fn first_answer(&mut self, i: usize, session: u64, cl: u64, what: &str) {
        let Some(s) = self.clients[i].sent.get_mut(&cl) else {
            return self.fail(
                "acknowledged-once",
                format!(
                    "client {i} (session {session:#x}) got {what} for {cl:#x}, which it never sent"
                ),
            );
        };
        s.answers += 1;
        let (answers, on) = (s.answers, s.session);
        if on != session {
            return self.fail(
                "acknowledged-once",
                format!(
                    "client {i} got {what} for {cl:#x} on session {session:#x}, but sent it on session {on:#x}"
                ),
            );
        }
        if answers > 1 {
            self.fail(
                "acknowledged-once",
                format!("client {i} (session {session:#x}) got a second first answer ({what}) for {cl:#x}"),
            );
        }
        if self.clients[i].probe == Some(cl) {
            self.clients[i].probe = None;
        }
    }

    /// A fill or an unsolicited cancel of order `cl`: the client's own.
    fn own_order(&mut self, i: usize, session: u64, cl: u64, what: &str) {
        match self.clients[i].sent.get(&cl) {
            Some(s) if s.session == session => {}
            _ => self.fail(
                "gateway-frames",
                format!("client {i} (session {session:#x}) heard a {what} of order {cl:#x}, not one of its orders on this session"),
            ),
        }
    }

    // ----- the checker -------------------------------------------------------

    /// What the engine took and emitted since the last look.
    fn check_engine(&mut self) {
        let (taken, events, idle) = {
            let mut log = self.tap.borrow_mut();
            let taken = std::mem::take(&mut log.taken);
            let events = std::mem::take(&mut log.events);
            (taken, events, log.current.is_none())
        };
        for c in &taken {
            self.check_command(c);
        }
        for (e, current) in &events {
            self.apply_event(e, current.as_ref());
        }
        self.summary.commands += taken.len() as u64;
        self.summary.events += events.len() as u64;
        if idle && self.agent.engine().engine.is_idle() && (!taken.is_empty() || !events.is_empty())
        {
            self.check_book();
        }
    }

    fn check_command(&mut self, c: &Command) {
        let sid = c.session.0;
        match c.kind {
            CommandKind::CancelForKey => {
                let (key, reactor) = (c.key_id, c.session.reactor());
                self.trace(|| format!("engine takes CancelForKey {key} from reactor {reactor}"));
                if c.session.slot() != 0 || c.session.generation() != 0 {
                    self.fail(
                        "authenticated",
                        format!("CancelForKey from a session, not a reactor: {c:?}"),
                    );
                }
                return;
            }
            CommandKind::CancelOnDisconnect | CommandKind::CancelForRevocation => {
                // The gateway's own commands: for a session whose client
                // sent an honest Logon (it may have gone before reading
                // the LogonAck), cancel-on-disconnect only if it asked,
                // and once.
                let logon = self
                    .opened
                    .get(&sid)
                    .map(|&p| (self.pipes[p].logon_honest, self.pipes[p].logon_cod));
                let Some((true, cod)) = logon else {
                    return self.fail(
                        "authenticated",
                        format!("the engine took a {:?} for session {sid:#x}, whose client sent no valid Logon ({logon:?})", c.kind),
                    );
                };
                if c.kind == CommandKind::CancelOnDisconnect {
                    if !cod {
                        return self.fail(
                            "authenticated",
                            format!("cancel-on-disconnect for session {sid:#x}, which did not ask for it"),
                        );
                    }
                    if !self.cod_taken.insert(sid) {
                        return self.fail(
                            "at-most-once",
                            format!(
                                "cancel-on-disconnect for session {sid:#x} reached the engine twice"
                            ),
                        );
                    }
                }
                return;
            }
            _ => {}
        }
        let Some(s) = self.sessions.get(&sid) else {
            return self.fail(
                "authenticated",
                format!(
                    "the engine took {:?} {:#x} from session {sid:#x}, which never logged on",
                    c.kind, c.cl_ord_id
                ),
            );
        };
        let (client, key, last) = (s.client, s.key, s.last_cl);
        let Some(sent) = self.clients[client].sent.get_mut(&c.cl_ord_id) else {
            return self.fail(
                "authenticated",
                format!(
                    "the engine took {:?} {:#x} from session {sid:#x} (client {client}), a command its client never sent: {c:?}",
                    c.kind, c.cl_ord_id
                ),
            );
        };
        let e = sent.expect;
        let same = e.kind == c.kind
            && sent.session == sid
            && e.orig_cl_ord_id == c.orig_cl_ord_id
            && e.price == c.price
            && e.qty == c.qty
            && e.instrument_id == c.instrument_id
            && e.side == c.side
            && e.ord_type == c.ord_type
            && e.tif == c.tif
            && c.key_id == key;
        if !same {
            let on = sent.session;
            return self.fail(
                "authenticated",
                format!("the engine took {c:?} from session {sid:#x}, but client {client} sent {e:?} on session {on:#x}"),
            );
        }
        sent.taken += 1;
        let taken = sent.taken;
        if taken > 1 {
            return self.fail(
                "at-most-once",
                format!(
                    "{:?} {:#x} of session {sid:#x} (client {client}) reached the engine {taken} times",
                    c.kind, c.cl_ord_id
                ),
            );
        }
        if c.cl_ord_id <= last {
            return self.fail(
                "at-most-once",
                format!(
                    "session {sid:#x}'s commands reached the engine out of order: {:#x} after {last:#x}",
                    c.cl_ord_id
                ),
            );
        }
        self.sessions.get_mut(&sid).expect("checked").last_cl = c.cl_ord_id;
    }

    fn apply_event(&mut self, e: &Event, current: Option<&Command>) {
        let sid = e.session.0;
        match e.kind {
            EventKind::Accepted => {
                let entered = current
                    .filter(|c| c.kind == CommandKind::NewOrder)
                    .map_or(0, |c| c.qty);
                if self.orders.contains_key(&e.order_id) {
                    return self.fail(
                        "quantity-conserved",
                        format!("order id {} accepted twice", e.order_id),
                    );
                }
                self.orders.insert(
                    e.order_id,
                    OrderModel {
                        session: e.session,
                        cl: e.cl_ord_id,
                        entered: i64::from(entered),
                        filled: 0,
                        canceled: 0,
                    },
                );
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.orders.insert(e.order_id);
                }
            }
            EventKind::Replaced => {
                let Some(o) = self.orders.get_mut(&e.order_id) else {
                    return self.fail(
                        "quantity-conserved",
                        format!("Replaced of unknown order id {}", e.order_id),
                    );
                };
                o.entered += i64::from(e.leaves_qty) - o.leaves();
                o.cl = e.cl_ord_id;
            }
            EventKind::Fill => {
                self.summary.fills += 1;
                let Some(o) = self.orders.get_mut(&e.order_id) else {
                    return self.fail(
                        "quantity-conserved",
                        format!("Fill of unknown order id {}", e.order_id),
                    );
                };
                o.filled += i64::from(e.qty);
                let leaves = o.leaves();
                if leaves != i64::from(e.leaves_qty) || leaves < 0 {
                    let detail = format!(
                        "Fill of order {} (session {:#x}, {:#x}): {} filled leaves {} by the engine's report, but entered {} - filled {} - canceled {} = {leaves}",
                        e.order_id,
                        sid,
                        e.cl_ord_id,
                        e.qty,
                        e.leaves_qty,
                        o.entered,
                        o.filled,
                        o.canceled
                    );
                    return self.fail("quantity-conserved", detail);
                }
                if leaves == 0 {
                    self.order_done(e.order_id);
                }
                let t = self.trades.entry(e.exec_id).or_insert((e.qty, e.price, 0));
                t.2 += 1;
                let (qty, price, n) = *t;
                if qty != e.qty || price != e.price || n > 2 {
                    return self.fail(
                        "quantity-conserved",
                        format!("the fills of trade {} disagree: {qty} at {price}, then {} at {} ({n} fills)", e.exec_id, e.qty, e.price),
                    );
                }
                if n == 2 {
                    self.trades.remove(&e.exec_id);
                }
            }
            EventKind::Canceled => {
                let Some(o) = self.orders.get_mut(&e.order_id) else {
                    return self.fail(
                        "quantity-conserved",
                        format!("Canceled of unknown order id {}", e.order_id),
                    );
                };
                let leaves = o.leaves();
                if i64::from(e.qty) != leaves {
                    return self.fail(
                        "quantity-conserved",
                        format!(
                            "order {} (session {sid:#x}) canceled {} but {leaves} were left",
                            e.order_id, e.qty
                        ),
                    );
                }
                o.canceled += i64::from(e.qty);
                self.order_done(e.order_id);
                match e.reason {
                    EventReason::Cancel(CancelReason::CANCEL_ON_DISCONNECT) => {
                        self.summary.cod_cancels += 1;
                    }
                    EventReason::Cancel(CancelReason::KEY_REVOKED) => {
                        self.summary.key_revoked_cancels += 1;
                    }
                    _ => {}
                }
            }
            EventKind::Rejected | EventKind::MassCancelAck | EventKind::KeySwept => {}
        }
    }

    fn order_done(&mut self, order_id: u64) {
        if let Some(o) = self.orders.remove(&order_id)
            && let Some(s) = self.sessions.get_mut(&o.session.0)
        {
            s.orders.remove(&order_id);
        }
    }

    /// The engine is idle: every order the model has open rests with
    /// exactly the quantity the events say, and no trade is half reported.
    fn check_book(&mut self) {
        let engine = &self.agent.engine().engine;
        let mut bad = None;
        for (id, o) in &self.orders {
            let resting = engine.order(o.session, o.cl);
            let leaves = o.leaves();
            match resting {
                Some(v) if v.order_id == *id && i64::from(v.leaves_qty) == leaves => {}
                _ => {
                    bad = Some(format!(
                        "order {id} (session {:#x}, {:#x}): entered {} = filled {} + canceled {} + resting {leaves} by the events, but the book holds {resting:?}",
                        o.session.0, o.cl, o.entered, o.filled, o.canceled
                    ));
                    break;
                }
            }
        }
        if bad.is_none() && engine.orders_live() != self.orders.len() {
            bad = Some(format!(
                "the book holds {} orders, the events account for {}",
                engine.orders_live(),
                self.orders.len()
            ));
        }
        if bad.is_none() && !self.trades.is_empty() {
            bad = Some(format!(
                "{} trades reported by one fill only",
                self.trades.len()
            ));
        }
        if let Some(b) = bad {
            self.fail("quantity-conserved", b);
        }
    }

    /// Sessions that asked for cancel-on-disconnect and have finished: once
    /// the engine has drained every ring, none of their orders rests.
    fn check_cod(&mut self) {
        if self.agent.pending() || !self.tap.borrow().taken.is_empty() {
            return;
        }
        let mut bad = None;
        let mut verified = Vec::new();
        for (&sid, s) in &self.sessions {
            if !s.cod || s.verified {
                continue;
            }
            let id = SessionId(sid);
            let core = &self.reactors[id.reactor() as usize].core;
            let finished = core.session(id).is_none_or(|x| x.is_finished());
            if !finished {
                continue;
            }
            if let Some(&order) = s.orders.iter().next() {
                let o = &self.orders[&order];
                bad = Some(format!(
                    "session {sid:#x} (client {}) asked for cancel-on-disconnect and has finished, the engine has drained every ring, yet its order {:#x} (order id {order}) still rests with {} ({} of its orders rest)",
                    s.client,
                    o.cl,
                    o.leaves(),
                    s.orders.len()
                ));
                break;
            }
            verified.push(sid);
        }
        for sid in verified {
            self.sessions.get_mut(&sid).expect("listed").verified = true;
        }
        if let Some(b) = bad {
            self.fail("cancel-on-disconnect", b);
        }
    }

    fn check_step(&mut self) {
        if self.violation.is_some() {
            return;
        }
        if let Some(before) = self.logons_at_failure {
            let now = self.logons_accepted();
            if now != before {
                self.fail(
                    "fail-closed",
                    format!("{} logons accepted after the journal failed", now - before),
                );
            }
        }
        self.check_cod();
    }

    fn progress_done(&self) -> bool {
        self.clients.iter().all(|c| match c.phase {
            Phase::Active => c.probed && c.probe.is_none(),
            Phase::LoggingOn => false,
            Phase::Offline | Phase::Ended => true,
        })
    }

    fn progress_report(&self) -> String {
        let mut out = Vec::new();
        for (i, c) in self.clients.iter().enumerate() {
            let stuck = match c.phase {
                Phase::Active if c.probe.is_some() => "an order unanswered",
                Phase::LoggingOn => "a logon unanswered",
                _ => continue,
            };
            let conn = c.pipe.map(|p| {
                let pipe = &self.pipes[p];
                let gw = self.reactors[pipe.reactor]
                    .conns
                    .iter()
                    .find(|x| x.open && x.pipe == p)
                    .map(|x| {
                        format!(
                            "recv armed {}, paused {}, {} chunks parked, send in flight {}, closing {}",
                            x.recv_armed,
                            x.paused,
                            x.parked.len(),
                            x.send.is_some(),
                            x.closing
                        )
                    })
                    .unwrap_or_else(|| "no gateway connection".into());
                format!(
                    "pipe {p} on reactor {}: {} bytes unread by the gateway, {} by the client; {gw}",
                    pipe.reactor,
                    pipe.c2g.len(),
                    pipe.g2c.len()
                )
            });
            out.push(format!(
                "client {i} (session {:#x}) with {stuck} ({})",
                c.session,
                conn.unwrap_or_default()
            ));
        }
        out.join("; ")
    }

    /// Quiet and still open: every command sent on the session was
    /// answered exactly once.
    fn check_all_answered(&mut self) {
        let mut bad = None;
        for (i, c) in self.clients.iter().enumerate() {
            if c.phase != Phase::Active {
                continue;
            }
            let mut missing: Vec<u64> = c
                .sent
                .iter()
                .filter(|(_, s)| s.session == c.session && s.answers != 1)
                .map(|(&cl, _)| cl)
                .collect();
            missing.sort_unstable();
            if let Some(&cl) = missing.first() {
                let s = &c.sent[&cl];
                bad = Some(format!(
                    "client {i}'s session {:#x} is open and quiet, but its {:?} {cl:#x} got {} first answers (the engine took it {} times; {} commands so answered)",
                    c.session,
                    s.expect.kind,
                    s.answers,
                    s.taken,
                    missing.len()
                ));
                break;
            }
        }
        if let Some(b) = bad {
            self.fail("acknowledged-once", b);
        }
    }

    /// Quiet, the engine drained: no session stays open, and no order
    /// rests, under a key that stopped being usable (revoked, removed,
    /// disabled, expired), and no session stays open whose Logon's secret
    /// left the keys file.
    fn check_keys(&mut self) {
        if self.agent.pending() {
            return;
        }
        let now = self.wall();
        let set = self.shared.key_set();
        // Unusable now and 200 ms ago: an expiry just past may still be
        // on its way (the next tick, the engine's report, the Terminate).
        let unusable = |id: u64| {
            let usable_at = |t: u64| {
                !set.is_revoked(id)
                    && set
                        .table
                        .get(id)
                        .is_some_and(|(_, e)| e.valid_at(t).is_ok())
            };
            !usable_at(now) && !usable_at(now - 200 * MS)
        };
        let mut bad = None;
        for (i, c) in self.clients.iter().enumerate() {
            if c.phase != Phase::Active {
                continue;
            }
            if unusable(c.key) {
                bad = Some(format!(
                    "client {i}'s session {:#x} is still open under key {}, which stopped being usable",
                    c.session, c.key
                ));
                break;
            }
            let (secret, _, _) = c.last_logon.expect("logged on");
            let signed = set.table.get(c.key).is_some_and(|(_, e)| {
                let (current, next) = e.secrets();
                current.expose() == &secret || next.is_some_and(|n| n.expose() == &secret)
            });
            if !signed {
                bad = Some(format!(
                    "client {i}'s session {:#x} is still open, but the secret its Logon was signed with left key {}",
                    c.session, c.key
                ));
                break;
            }
        }
        if bad.is_none() {
            for (id, o) in &self.orders {
                let Some(s) = self.sessions.get(&o.session.0) else {
                    continue;
                };
                if unusable(s.key) {
                    bad = Some(format!(
                        "order {id} ({:#x} of session {:#x}, {} resting) is still in the book under key {}, which stopped being usable",
                        o.cl,
                        o.session.0,
                        o.leaves(),
                        s.key
                    ));
                    break;
                }
            }
        }
        if let Some(b) = bad {
            self.fail("revocation", b);
        }
    }

    fn collect_summary(&mut self) {
        let s = &mut self.summary;
        s.steps = self.step as u64;
        for r in &self.reactors {
            let c = &r.core.counters;
            s.input_paused += c.input_paused;
            s.slow_consumers += c.slow_consumers;
            s.revocations += c.revocations;
            s.key_sweeps += c.key_sweeps;
            s.engine_busy += c.ring_full + c.ring_reserve_refusals;
            s.evictions += c.pending_evictions;
            s.messages_in += c.messages_in;
            s.bytes_discarded += c.bytes_discarded;
        }
        s.engine_blocked = self.agent.counters.blocked_turns;
    }
}

fn secret_bytes(seed: u64, key: u64, salt: u64) -> [u8; 32] {
    let mut r = SplitMix(seed ^ key.wrapping_mul(0x9E37_79B9) ^ salt.rotate_left(17));
    let mut s = [0u8; 32];
    for chunk in s.chunks_mut(8) {
        chunk.copy_from_slice(&r.next_u64().to_le_bytes());
    }
    s
}

fn table_of(keys: &[KeyModel]) -> KeyTable {
    let entries = keys
        .iter()
        .filter(|k| k.present)
        .map(|k| {
            let scopes = if k.trade {
                Scopes::TRADE.union(Scopes::CANCEL)
            } else {
                Scopes::CANCEL
            };
            let (rate, burst) = if k.id == SLOW_KEY {
                (200, 40)
            } else {
                (1_000_000, 100_000)
            };
            let mut e = KeyEntry::new(
                k.id,
                Secret::from_bytes(k.secret),
                scopes,
                Environment::Production,
            )
            .with_rate(rate, burst)
            .allow_any();
            if let Some(next) = k.next {
                e = e.with_secret_next(Secret::from_bytes(next));
            }
            if k.disabled {
                e.status = KeyStatus::Revoked;
            }
            e.not_after_ns = k.not_after;
            e
        })
        .collect();
    KeyTable::from_entries(entries).expect("a valid simulated keys file")
}
