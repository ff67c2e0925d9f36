//! The session pipeline under arbitrary interleavings: several clients on
//! one reactor's real sans-I/O core (`reactor::core::ReactorCore`: its
//! session slab, admission, key generations and key sweeps), its real SPSC
//! rings and the real matching engine behind the real engine agent, driven
//! through the core's driver seam as `reactor::worker` drives it (turns;
//! flushes with `output`, `offer_parked`; sends completed, short or failed,
//! with `on_sent`; closes with `on_close_completed`; timer `tick`s) but
//! without sockets, on a virtual clock.
//!
//! The input is a sequence of operations: connect (admitted, made to wait
//! or refused), logons (good, wrongly signed, stale, replayed, malformed),
//! valid orders, cancels, replaces, mass cancels, heartbeats and logouts;
//! corrupted frames (a bit flipped anywhere, the tag replaced, a 15- or
//! 17-byte tag, a lying length), duplicated frames (replayed `seq`),
//! skipped frames (a `seq` gap), another session's frames, raw bytes;
//! delivery in arbitrary splits; clients that stop and start reading, or
//! read a few bytes at a time; peer closes; timer ticks, clock jumps forward
//! and back; an engine that stalls (rings fill, ENGINE_BUSY, deferred
//! cancel-on-disconnect and key sweeps); stale engine events (ended
//! sessions, wrong generations, another reactor) injected into the event
//! ring; key revocations and reloads (scopes narrowed, key removed or
//! disabled, secret rotated or replaced, allow list or environment changed,
//! an expiry).
//!
//! After every step:
//!
//! 1. every gateway frame a client reads is well-formed, passes the
//!    client's tag and sequence check (the next `seq`), is a LogonAck or
//!    LogonReject only first, and nothing follows a Terminate or
//!    LogonReject; a replayed Logon is never accepted;
//! 2. nothing from a refused frame reaches the engine: every command the
//!    engine receives from a session is one of that session's good frames
//!    (sealed with its key and the next `seq`, delivered intact), in order,
//!    each at most once, under the session's key; cancel-on-disconnect only
//!    for a session that asked for it, at most once;
//! 3. a connection only hears about its own orders (every `cl_ord_id` it is
//!    told about is one it sent; every `order_id` one it was told was
//!    accepted; nothing injected ever reaches a client);
//! 4. once the engine is idle, no ended cancel-on-disconnect session keeps a
//!    live order, and no revoked or removed key does;
//! 5. the session's rate state (its own cell, heartbeat allowance, throttled
//!    run), its key's shared rate cell and the messages counted never move
//!    when the first frame completed by a delivery was a refused one;
//!
//! and at the end, once everything is delivered and answered, every order
//! request of a session still logged on got exactly one answer (and none
//! ever got two).
//!
//! The engine (the expensive part) is built once per process and `reset`
//! between inputs; the reactor core, rings and shared state are small
//! (four slots) and built per input, so that nothing of one input (a
//! revoked key, a lockout) leaks into the next.
#![no_main]

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::{Arc, Mutex};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::policy::KeyStatus;
use ordergate::auth::secret::Secret;
use ordergate::client::{ClientSession, FrameReader};
use ordergate::engine::agent::EngineAgent;
use ordergate::engine::book::{EngineConfig, InstrumentRisk, MatchingEngine};
use ordergate::engine::{
    Command, CommandKind, EVENTS_PER_STEP_MAX, Engine, Event, EventKind, EventReason, EventSink,
    KeyLimits, Nanos, SessionId,
};
use ordergate::reactor::core::{
    Admission, Output, ParkedInput, ReactorCore, Sent, logon_reject_bytes,
};
use ordergate::ring;
use ordergate::session::{GatewayConfig, Shared};
use ordergate::wire::codes::{CancelReason, Environment, Scopes};
use ordergate::wire::{self, GatewayFrame};

const T0: u64 = 1_764_000_000_000_000_000;
const MS: u64 = 1_000_000;
const SLOTS: usize = 4;
const RING: usize = 16;
const CONNS_MAX: usize = 8;
const STEPS_MAX: usize = 200;
/// `cl_ord_id`s of frames meant to be refused, and of injected events:
/// none may ever reach the engine or a client.
const POISON: u64 = 0xBAD0_0000_0000_0000;

const K_TRADER: u64 = 11;
const K_CANCEL: u64 = 12;
const K_SLOW: u64 = 13;
const K_RISK: u64 = 14;
const K_SANDBOX: u64 = 15;
const K_UNKNOWN: u64 = 99;
const KEY_IDS: [u64; 6] = [K_TRADER, K_CANCEL, K_SLOW, K_RISK, K_SANDBOX, K_UNKNOWN];

fn secret(key: u64, rotated: bool) -> [u8; 32] {
    [key as u8 + if rotated { 0x80 } else { 0 }; 32]
}

fn peer(p: u8) -> IpAddr {
    [
        "192.0.2.10",
        "192.0.2.11",
        "198.51.100.7",
        "2001:db8::1",
        "2001:db8::2",
    ][p as usize % 5]
        .parse()
        .expect("an address")
}

/// The keys file, in one of the versions a reload installs.
fn table(variant: u8, now: Nanos) -> KeyTable {
    let both = Scopes::TRADE.union(Scopes::CANCEL);
    let prod = Environment::Production;
    let key = |id: u64, scopes: Scopes| {
        KeyEntry::new(id, Secret::from_bytes(secret(id, false)), scopes, prod)
            .with_rate(1_000, 50)
            .allow_any()
    };
    let mut trader = key(K_TRADER, both);
    let mut cancel = key(K_CANCEL, Scopes::CANCEL);
    let mut slow = key(K_SLOW, both).with_rate(10, 4);
    slow.max_sessions = NonZeroU32::new(1);
    let mut risk = key(K_RISK, both).with_allow(vec!["192.0.2.0/24".parse().expect("cidr")]);
    risk.max_order_qty = NonZeroU32::new(20);
    risk.max_open_notional = NonZeroU64::new(3_000);
    let sandbox = KeyEntry::new(
        K_SANDBOX,
        Secret::from_bytes(secret(K_SANDBOX, false)),
        both,
        Environment::Sandbox,
    )
    .allow_any();
    let mut with_slow = true;
    match variant % 8 {
        1 => {
            trader.scopes = Scopes::CANCEL;
            with_slow = false;
        }
        2 => {
            trader.secret = Secret::from_bytes(secret(K_TRADER, true));
            trader = trader.with_secret_next(Secret::from_bytes(secret(K_TRADER, false)));
        }
        3 => trader.secret = Secret::from_bytes(secret(K_TRADER, true)),
        4 => risk = risk.with_allow(vec!["203.0.113.0/24".parse().expect("cidr")]),
        5 => cancel.status = KeyStatus::Revoked,
        6 => trader.not_after_ns = Some(now + 1_000 * MS),
        7 => trader.environment = Environment::Sandbox,
        _ => {}
    }
    let mut entries = vec![trader, cancel, risk, sandbox];
    if with_slow {
        entries.push(slow);
    }
    KeyTable::from_entries(entries).expect("a valid table")
}

/// Keys a table version leaves unusable (their orders are swept).
fn unusable_in(variant: u8) -> &'static [u64] {
    match variant % 8 {
        1 => &[K_SLOW],
        5 => &[K_CANCEL],
        _ => &[],
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        instruments: 2,
        orders_max: 64,
        levels_per_side_max: 8,
        keys_max: 8,
        instrument_risk: vec![InstrumentRisk {
            reference: Some(100),
            ..InstrumentRisk::new(1)
        }],
        ..EngineConfig::default()
    }
}

// ----- input ----------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
enum OrderKind {
    New,
    Cancel,
    Replace,
    Mass,
    Heartbeat,
    Logout,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct OrderSpec {
    kind: OrderKind,
    /// How the `cl_ord_id` is chosen: fresh, one of this connection's, or
    /// one another connection used.
    cl_mode: u8,
    orig: u8,
    price: i8,
    qty: u8,
    side: u8,
    tif: u8,
    instrument: u8,
}

#[derive(Arbitrary, Debug, Clone)]
enum Bad {
    FlipBit {
        at: u8,
        bit: u8,
    },
    Tag([u8; 4]),
    ShortTag,
    LongTag(u8),
    Length(u16),
    /// The connection's last good frame again (same `seq`).
    Duplicate,
    /// A frame sealed and never sent: every later frame is out of sequence.
    Skip,
    /// Another connection's last frame.
    Cross(u8),
    Raw(Vec<u8>),
    /// A Logon after logon.
    Logon,
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Connect {
        key: u8,
        rotated: bool,
        peer: u8,
    },
    Logon {
        conn: u8,
        keepalive: u8,
        flags: u8,
        environment: u8,
        skew: u8,
        wrong_secret: bool,
    },
    /// A byte-exact copy of an accepted Logon on a new connection.
    ReplayLogon {
        of: u8,
        peer: u8,
    },
    Order {
        conn: u8,
        spec: OrderSpec,
        deliver: u8,
    },
    Bad {
        conn: u8,
        bad: Bad,
        order: OrderSpec,
        deliver: u8,
    },
    Deliver {
        conn: u8,
        bytes: u8,
    },
    Reading {
        conn: u8,
        on: bool,
        /// Bytes a read takes at most (0: all).
        chunk: u8,
    },
    PeerClose {
        conn: u8,
    },
    Tick {
        dt: u8,
    },
    ClockBack {
        dt: u8,
    },
    EngineRunning(bool),
    Reload(u8),
    Revoke(u8),
    Inject {
        target: u8,
        how: u8,
        kind: u8,
    },
}

// ----- the engine, spied on -------------------------------------------------

/// The real engine, with every command it takes logged, and stale events
/// the input injects emitted ahead of the next command.
struct Spy {
    engine: MatchingEngine,
    log: Vec<Command>,
}

impl Engine for Spy {
    fn submit<S: EventSink>(&mut self, now: Nanos, command: &Command, out: &mut S) -> bool {
        self.log.push(*command);
        let mut inject = INJECT.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(e) = inject.last() {
            if out.room(e.session) <= EVENTS_PER_STEP_MAX {
                break;
            }
            out.emit(e);
            inject.pop();
        }
        self.engine.submit(now, command, out)
    }

    fn resume<S: EventSink>(&mut self, now: Nanos, out: &mut S) -> bool {
        self.engine.resume(now, out)
    }

    fn set_key_limits(&mut self, limits: &[KeyLimits]) {
        self.engine.set_key_limits(limits);
    }
}

static ENGINE: Mutex<Option<MatchingEngine>> = Mutex::new(None);

/// `OGFUZZ_TRACE=1` prints every step and every frame a client reads (to
/// follow a crashing input: `fuzz/target/…/session_pipeline CRASH-FILE`).
static TRACE: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var_os("OGFUZZ_TRACE").is_some());

// ----- connections ----------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Admitted without a slot: waits for one being freed.
    Waiting,
    Open,
    /// Refused at admission, or closed.
    Gone,
}

/// What the engine must receive for one good frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expect {
    kind: CommandKind,
    cl: u64,
    orig: u64,
    price: i64,
    qty: u32,
    instrument: u32,
    side: u8,
    ord_type: u8,
    tif: u8,
}

impl Expect {
    fn matches(&self, c: &Command) -> bool {
        *self
            == Expect {
                kind: c.kind,
                cl: c.cl_ord_id,
                orig: c.orig_cl_ord_id,
                price: c.price,
                qty: c.qty,
                instrument: c.instrument_id,
                side: c.side,
                ord_type: c.ord_type,
                tif: c.tif,
            }
    }
}

struct Conn {
    phase: Phase,
    id: Option<SessionId>,
    key_id: u64,
    secret: [u8; 32],
    client: ClientSession,
    /// The first Logon sent: (request time, nonce, keepalive, env, flags).
    logon: Option<(u64, [u8; 16], u16, u8, u8)>,
    /// A copy of another connection's accepted Logon.
    replay: bool,
    /// The gateway logged it on (seen in the core, or from its commands).
    gw_logged_on: bool,
    /// The client read its LogonAck.
    acked: bool,
    /// The client read a Terminate or LogonReject.
    ended: bool,
    reader: FrameReader,
    /// Sent by the client, not yet received by the reactor.
    net: VecDeque<u8>,
    /// Received and not taken (the session paused for back-pressure).
    parked: Vec<u8>,
    paused: bool,
    closing: bool,
    /// Unit ends (cumulative bytes sent) and whether the unit is refused.
    units: VecDeque<(u64, bool)>,
    sent_total: u64,
    taken_total: u64,
    /// Bytes of the send the reactor began, not yet read by the client.
    inflight: Vec<u8>,
    reading: bool,
    read_chunk: usize,
    /// Every frame it sealed and sent, last first.
    last_sealed: Option<Vec<u8>>,
    last_good: Option<Vec<u8>>,
    /// A frame was sealed and never sent: later ones are out of sequence.
    gapped: bool,
    good: Vec<Expect>,
    matched: usize,
    /// Order requests sent per `cl_ord_id`, and first answers read.
    requests: HashMap<u64, u32>,
    answers: HashMap<u64, u32>,
    /// Every `cl_ord_id` it used in a good frame (for the book checks).
    cls: BTreeSet<u64>,
    orders: HashSet<u64>,
    cod_commands: u32,
    revocation_commands: u32,
}

impl Conn {
    fn new(key_id: u64, secret: [u8; 32]) -> Conn {
        Conn {
            phase: Phase::Gone,
            id: None,
            key_id,
            secret,
            client: ClientSession::new(key_id, secret),
            logon: None,
            replay: false,
            gw_logged_on: false,
            acked: false,
            ended: false,
            reader: FrameReader::new(8192),
            net: VecDeque::new(),
            parked: Vec::new(),
            paused: false,
            closing: false,
            units: VecDeque::new(),
            sent_total: 0,
            taken_total: 0,
            inflight: Vec::new(),
            reading: true,
            read_chunk: usize::MAX,
            last_sealed: None,
            last_good: None,
            gapped: false,
            good: Vec::new(),
            matched: 0,
            requests: HashMap::new(),
            answers: HashMap::new(),
            cls: BTreeSet::new(),
            orders: HashSet::new(),
            cod_commands: 0,
            revocation_commands: 0,
        }
    }

    fn asked_cod(&self) -> bool {
        self.logon.is_some_and(|l| l.4 & 1 == 1)
    }

    fn queue(&mut self, bytes: &[u8], refused: bool) {
        self.net.extend(bytes);
        self.sent_total += bytes.len() as u64;
        self.units.push_back((self.sent_total, refused));
    }
}

struct Rig {
    shared: Arc<Shared>,
    core: ReactorCore,
    agent: EngineAgent<Spy>,
    now: Nanos,
    running: bool,
    conns: Vec<Conn>,
    by_session: HashMap<u64, usize>,
    /// Commands of the engine log already checked.
    log_seen: usize,
    order_owner: HashMap<u64, usize>,
    next_cl: u64,
    next_poison: u64,
    next_nonce: u64,
    variant: u8,
    revoked: HashSet<u64>,
}

impl Rig {
    fn new(engine: MatchingEngine) -> Rig {
        let config = GatewayConfig {
            throttle_breach_run: 6,
            session_msgs_per_sec: 1_000,
            session_burst: 20,
            ..GatewayConfig::default()
        };
        let shared = Arc::new(Shared::new(config, table(0, T0), [7; 32]));
        let (command_tx, command_rx) = ring::channel::<Command>(RING);
        let (event_tx, event_rx) = ring::channel::<Event>(RING);
        let core = ReactorCore::new(0, shared.clone(), SLOTS, command_tx, event_rx);
        let spy = Spy {
            engine,
            log: Vec::new(),
        };
        let agent = EngineAgent::new(spy, vec![command_rx], vec![event_tx])
            .with_limits(shared.limits.clone());
        Rig {
            shared,
            core,
            agent,
            now: T0,
            running: true,
            conns: Vec::new(),
            by_session: HashMap::new(),
            log_seen: 0,
            order_owner: HashMap::new(),
            next_cl: 1,
            next_poison: POISON,
            next_nonce: 1,
            variant: 0,
            revoked: HashSet::new(),
        }
    }

    fn conn_index(&self, c: u8) -> Option<usize> {
        (!self.conns.is_empty()).then(|| c as usize % self.conns.len())
    }

    fn open(&mut self, c: usize, id: SessionId) {
        self.conns[c].phase = Phase::Open;
        self.conns[c].id = Some(id);
        self.by_session.insert(id.0, c);
    }

    // ----- the reactor's side ----------------------------------------------

    /// The start of a turn: a reload or revocation takes effect.
    fn turn(&mut self) {
        self.core.refresh_keys(self.now);
    }

    fn engine_work(&mut self) {
        for _ in 0..10_000 {
            let mut work = self.core.poll_events(self.now);
            if self.running {
                work += self.agent.do_work(self.now);
            }
            if work == 0 {
                return;
            }
        }
        panic!("engine and reactor never go idle");
    }

    /// Offers received bytes to the session, as `worker::offer` does
    /// (the rest parked, the connection paused, if it stops short).
    fn offer(&mut self, c: usize, bytes: Vec<u8>) {
        let Some(id) = self.conns[c].id else { return };
        let before = self.rate_state(c);
        let taken = self.core.on_bytes(id, self.now, &bytes);
        let conn = &mut self.conns[c];
        conn.parked = bytes[taken..].to_vec();
        conn.paused = taken < bytes.len();
        self.took(c, taken, before);
    }

    /// A paused connection whose session may want input again: its parked
    /// bytes offered through the core (`offer_parked`).
    fn offer_parked(&mut self, c: usize) {
        let Some(id) = self.conns[c].id else { return };
        let before = self.rate_state(c);
        let mut parked = Parked {
            bytes: std::mem::take(&mut self.conns[c].parked),
            taken: 0,
        };
        let all = self.core.offer_parked(id, self.now, &mut parked);
        let conn = &mut self.conns[c];
        conn.parked = parked.bytes;
        conn.paused = !all;
        self.took(c, parked.taken, before);
    }

    /// The session took `taken` more bytes of connection `c`: checks that
    /// the rate state (as it was `before`) did not move when the first
    /// frame they complete is a refused one.
    fn took(&mut self, c: usize, taken: usize, before: (String, String, u64)) {
        let id = self.conns[c].id.expect("bytes offered to a slot");
        if self.core.session(id).is_some_and(|s| s.key_id().is_some()) {
            self.conns[c].gw_logged_on = true;
        }
        let after = self.rate_state(c);
        let conn = &mut self.conns[c];
        conn.taken_total += taken as u64;
        let mut first = None;
        while let Some(&(end, refused)) = conn.units.front() {
            if end > conn.taken_total {
                break;
            }
            conn.units.pop_front();
            first.get_or_insert(refused);
        }
        if first == Some(true) {
            assert_eq!(
                before, after,
                "a refused frame moved the rate state of connection {c}"
            );
        }
    }

    /// (session rate state, key cell, messages counted).
    fn rate_state(&self, c: usize) -> (String, String, u64) {
        let conn = &self.conns[c];
        let session = conn
            .id
            .and_then(|id| self.core.session(id))
            .and_then(|s| s.rate_state())
            .map_or_else(String::new, |s| format!("{s:?}"));
        let keys = self.shared.key_set();
        let cell = keys
            .table
            .get(conn.key_id)
            .map_or_else(String::new, |(i, _)| format!("{:?}", keys.state(i).cell));
        (session, cell, self.core.counters.messages_in)
    }

    /// The network hands the reactor up to `n` bytes of connection `c`.
    fn deliver(&mut self, c: usize, n: usize) {
        let conn = &mut self.conns[c];
        match conn.phase {
            Phase::Waiting => return,
            Phase::Gone => {
                // Nobody reads a closed connection.
                let n = conn.net.len();
                conn.net.clear();
                conn.taken_total += n as u64;
                conn.units.retain(|&(end, _)| end > conn.taken_total);
                return;
            }
            Phase::Open if conn.closing => return,
            Phase::Open => {}
        }
        let n = n.min(conn.net.len());
        if n == 0 {
            return;
        }
        let chunk: Vec<u8> = conn.net.drain(..n).collect();
        if conn.paused {
            conn.parked.extend_from_slice(&chunk);
            return;
        }
        self.offer(c, chunk);
    }

    /// For each session touched: parked input offered again if it has room,
    /// then the close if it wants one, else one send (`worker::flush`).
    fn flush(&mut self) {
        while let Some(id) = self.core.pop_dirty() {
            let Some(&c) = self.by_session.get(&id.0) else {
                continue;
            };
            if self.conns[c].phase != Phase::Open || self.conns[c].closing {
                continue;
            }
            if self.conns[c].paused {
                self.offer_parked(c);
            }
            let in_flight = !self.conns[c].inflight.is_empty();
            match self.core.output(id, in_flight) {
                Output::Idle => {}
                Output::Close => self.start_close(c),
                Output::Send(bytes) => self.conns[c].inflight = bytes.to_vec(),
            }
        }
    }

    /// Shutdown and close (`worker::start_close` … `on_close`): a flight
    /// still out fails (`on_sent(None)`), parked input is dropped, the
    /// close completes (`on_close_completed`: the slot is released if the
    /// session has finished, else at a later tick) and a waiter gets it.
    fn start_close(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        if conn.phase != Phase::Open || conn.closing {
            return;
        }
        conn.closing = true;
        conn.parked.clear();
        conn.paused = false;
        let id = conn.id.expect("an open connection has a slot");
        if !conn.inflight.is_empty() {
            conn.inflight.clear();
            let sent = self.core.on_sent(id, self.now, None);
            assert_ne!(
                sent,
                Sent::Gone,
                "connection {c}: a flight of a session gone"
            );
        }
        self.conns[c].phase = Phase::Gone;
        self.core.on_close_completed(id, self.now);
        self.admit_waiting();
    }

    fn admit_waiting(&mut self) {
        while let Some((handle, id)) = self.core.next_waiting(self.now) {
            self.open(handle as usize, id);
        }
    }

    fn tick(&mut self) {
        self.core.tick(self.now, |_| {});
        self.admit_waiting();
    }

    // ----- the clients' side -----------------------------------------------

    /// Each reading client takes what the reactor sent it and checks every
    /// frame.
    fn read_clients(&mut self) -> bool {
        let mut read = false;
        for c in 0..self.conns.len() {
            let conn = &mut self.conns[c];
            if !conn.reading || conn.inflight.is_empty() {
                continue;
            }
            // A short send when the client reads less than the flight:
            // the rest goes back to waiting and is sent again.
            let n = conn.inflight.len().min(conn.read_chunk);
            let bytes: Vec<u8> = conn.inflight.drain(..n).collect();
            conn.inflight.clear();
            if let Some(id) = conn.id {
                let sent = self.core.on_sent(id, self.now, Some(n));
                assert_eq!(sent, Sent::Done, "connection {c}: a send of a session gone");
            }
            read = true;
            for piece in bytes.chunks(4096) {
                self.conns[c].reader.push(piece);
                self.drain_frames(c);
            }
        }
        read
    }

    fn drain_frames(&mut self, c: usize) {
        loop {
            let conn = &mut self.conns[c];
            let Some(frame) = conn.reader.next_frame() else {
                return;
            };
            let frame = frame
                .unwrap_or_else(|e| panic!("connection {c}: a malformed gateway frame: {e:?}"))
                .to_vec();
            self.client_frame(c, &frame);
        }
    }

    fn client_frame(&mut self, c: usize, frame: &[u8]) {
        let conn = &mut self.conns[c];
        assert!(
            !conn.ended,
            "connection {c}: a frame after Terminate or LogonReject"
        );
        let decoded = match conn.client.receive(frame) {
            Ok(d) => d,
            Err(e) => {
                panic!("connection {c}: the client refuses a gateway frame: {e:?} {frame:02x?}")
            }
        };
        if *TRACE {
            eprintln!("  connection {c} reads {:?}", frame_summary(&decoded));
        }
        let own = |conn: &Conn, cl: u64| conn.requests.get(&cl).is_some_and(|&n| n > 0);
        let mut first_answer = None;
        let mut order_id = None;
        match decoded {
            GatewayFrame::LogonAck(_) => {
                assert!(!conn.acked, "connection {c}: a second LogonAck");
                assert!(
                    !conn.replay,
                    "connection {c}: a replayed Logon was accepted"
                );
                conn.acked = true;
                conn.gw_logged_on = true;
            }
            GatewayFrame::LogonReject(_) => {
                assert!(!conn.acked, "connection {c}: LogonReject after LogonAck");
                conn.ended = true;
            }
            GatewayFrame::Terminate(_) => conn.ended = true,
            GatewayFrame::Heartbeat(_) => {}
            GatewayFrame::OrderAccepted(m) => {
                assert!(
                    own(conn, m.cl_ord_id()),
                    "connection {c}: Accepted for {}",
                    m.cl_ord_id()
                );
                let id = m.order_id();
                if let Some(&owner) = self.order_owner.get(&id) {
                    panic!("connection {c}: order {id} was accepted for connection {owner}");
                }
                self.order_owner.insert(id, c);
                conn.orders.insert(id);
                first_answer = Some(m.cl_ord_id());
            }
            GatewayFrame::OrderRejected(m) => {
                assert!(
                    own(conn, m.cl_ord_id()),
                    "connection {c}: Rejected for {}",
                    m.cl_ord_id()
                );
                first_answer = Some(m.cl_ord_id());
            }
            GatewayFrame::OrderCanceled(m) => {
                order_id = Some(m.order_id());
                if m.reason() == CancelReason::USER.wire() {
                    first_answer = Some(m.cl_ord_id());
                }
                assert!(
                    own(conn, m.cl_ord_id()),
                    "connection {c}: Canceled {}",
                    m.cl_ord_id()
                );
            }
            GatewayFrame::OrderReplaced(m) => {
                order_id = Some(m.order_id());
                first_answer = Some(m.cl_ord_id());
            }
            GatewayFrame::Fill(m) => {
                order_id = Some(m.order_id());
                assert!(
                    own(conn, m.cl_ord_id()),
                    "connection {c}: Fill for {}",
                    m.cl_ord_id()
                );
            }
            GatewayFrame::MassCancelAck(m) => first_answer = Some(m.cl_ord_id()),
        }
        if let Some(id) = order_id {
            assert!(
                conn.orders.contains(&id),
                "connection {c} told about order {id}, not its own (owner {:?})",
                self.order_owner.get(&id)
            );
        }
        if let Some(cl) = first_answer {
            let answers = conn.answers.entry(cl).or_default();
            *answers += 1;
            let requests = conn.requests.get(&cl).copied().unwrap_or(0);
            assert!(
                *answers <= requests,
                "connection {c}: {answers} answers for {requests} requests with cl_ord_id {cl}"
            );
        }
    }

    // ----- checks -----------------------------------------------------------

    /// Every command the engine took since the last look.
    fn check_log(&mut self) {
        let log = self.agent_spy_log();
        for command in &log {
            let conn = self.by_session.get(&command.session.0).copied();
            match command.kind {
                CommandKind::NewOrder
                | CommandKind::Cancel
                | CommandKind::Replace
                | CommandKind::MassCancel => {
                    let c =
                        conn.unwrap_or_else(|| panic!("a command from no connection: {command:?}"));
                    let conn = &mut self.conns[c];
                    conn.gw_logged_on = true;
                    assert_eq!(
                        command.key_id, conn.key_id,
                        "connection {c}: command under another key"
                    );
                    let at = conn.good[conn.matched..]
                        .iter()
                        .position(|e| e.matches(command))
                        .unwrap_or_else(|| {
                            panic!(
                                "connection {c}: the engine got a command no good frame carried \
                                 (or one twice): {command:?}"
                            )
                        });
                    conn.matched += at + 1;
                }
                CommandKind::CancelOnDisconnect => {
                    let c = conn.unwrap_or_else(|| panic!("COD from no connection: {command:?}"));
                    let conn = &mut self.conns[c];
                    assert!(conn.asked_cod(), "connection {c}: COD it did not ask for");
                    conn.cod_commands += 1;
                    assert_eq!(conn.cod_commands, 1, "connection {c}: COD twice");
                }
                CommandKind::CancelForRevocation => {
                    let c = conn.unwrap_or_else(|| panic!("revocation of no connection"));
                    self.conns[c].revocation_commands += 1;
                    assert_eq!(
                        self.conns[c].revocation_commands, 1,
                        "connection {c}: revoked twice"
                    );
                }
                CommandKind::CancelForKey => {}
            }
        }
    }

    fn agent_spy_log(&mut self) -> Vec<Command> {
        // The agent owns the spy: read its log through `engine()` and keep
        // a cursor (the log only grows).
        let log = &self.agent.engine().log;
        let new = log[self.log_seen..].to_vec();
        self.log_seen = log.len();
        new
    }

    fn quiescent(&mut self) -> bool {
        self.running
            && !self.agent.pending()
            && !self.core.events_pending()
            && self.core.sweeps_pending() == 0
    }

    /// With the engine idle: no ended cancel-on-disconnect session and no
    /// revoked or removed key keeps a live order.
    fn check_book(&mut self) {
        if !self.quiescent() {
            return;
        }
        let engine = &self.agent.engine().engine;
        let gone_keys: Vec<u64> = self
            .revoked
            .iter()
            .chain(unusable_in(self.variant))
            .copied()
            .collect();
        for (c, conn) in self.conns.iter().enumerate() {
            let Some(id) = conn.id else { continue };
            if !conn.gw_logged_on {
                continue;
            }
            let session = self.core.session(id);
            let ended = match session {
                None => true,
                Some(s) => s.close_reason().is_some() && s.poll_timeout() != Some(0),
            };
            let cod_done = conn.asked_cod() && ended;
            let key_gone = gone_keys.contains(&conn.key_id);
            if !(cod_done || key_gone) {
                continue;
            }
            for &cl in &conn.cls {
                if let Some(o) = engine.order(id, cl) {
                    panic!(
                        "connection {c} (key {}, cod {}, ended {ended}) keeps live order {cl}: {o:?}",
                        conn.key_id,
                        conn.asked_cod()
                    );
                }
            }
            if cod_done {
                assert_eq!(conn.cod_commands, 1, "connection {c}: ended, COD not sent");
            }
        }
    }

    /// Returns whether a client read anything.
    fn after_step(&mut self) -> bool {
        self.engine_work();
        self.check_log();
        self.flush();
        let read = self.read_clients();
        self.check_book();
        read
    }

    // ----- the clients' actions ---------------------------------------------

    fn fresh_nonce(&mut self) -> [u8; 16] {
        let mut n = [0u8; 16];
        n[..8].copy_from_slice(&self.next_nonce.to_le_bytes());
        self.next_nonce += 1;
        n
    }

    fn connect(&mut self, key: u64, secret: [u8; 32], peer: IpAddr) -> Option<usize> {
        if self.conns.len() >= CONNS_MAX {
            return None;
        }
        let c = self.conns.len();
        self.conns.push(Conn::new(key, secret));
        match self.core.admit(self.now, peer, c as i32) {
            Admission::Open(id) => self.open(c, id),
            Admission::Wait => self.conns[c].phase = Phase::Waiting,
            Admission::Refuse(reason) => {
                let reply = logon_reject_bytes(reason, self.now);
                match wire::decode_gateway(&reply) {
                    Ok(GatewayFrame::LogonReject(r)) => assert_eq!(r.reason(), reason.wire()),
                    other => panic!("a refusal that is not a LogonReject: {other:?}"),
                }
            }
        }
        Some(c)
    }

    fn logon(&mut self, c: usize, op: &Op) {
        let Op::Logon {
            keepalive,
            flags,
            environment,
            skew,
            wrong_secret,
            ..
        } = *op
        else {
            return;
        };
        let keepalive = [1_000, 100, 60_000, 50, 500][keepalive as usize % 5];
        let flags = [0, 1, 0, 1, 2][flags as usize % 5];
        let environment = [1, 1, 2, 3][environment as usize % 4];
        let offset = [0i64, 1_000, -1_000, 6_000, -6_000][skew as usize % 5] * MS as i64;
        let time = self.now.saturating_add_signed(offset);
        let nonce = self.fresh_nonce();
        let conn = &mut self.conns[c];
        let frame = if conn.logon.is_none() && !wrong_secret {
            conn.logon = Some((time, nonce, keepalive, environment, flags));
            conn.client
                .logon(time, nonce, keepalive, environment, flags)
        } else {
            let secret = if wrong_secret {
                [0xEE; 32]
            } else {
                conn.secret
            };
            ClientSession::new(conn.key_id, secret).logon(
                time,
                nonce,
                keepalive,
                environment,
                flags,
            )
        };
        // A Logon after logon is refused; before, it is what it is.
        let refused = conn.logon.is_some() && (conn.acked || wrong_secret);
        conn.queue(&frame, refused);
    }

    fn replay_logon(&mut self, of: u8, peer: IpAddr) -> Option<usize> {
        let o = self.conn_index(of)?;
        let (key, secret) = (self.conns[o].key_id, self.conns[o].secret);
        let params = self.conns[o].logon.filter(|_| self.conns[o].acked)?;
        let c = self.connect(key, secret, peer)?;
        let conn = &mut self.conns[c];
        conn.replay = true;
        conn.logon = Some(params);
        let (time, nonce, keepalive, env, flags) = params;
        let frame = conn.client.logon(time, nonce, keepalive, env, flags);
        conn.queue(&frame, false);
        Some(c)
    }

    fn cl_for(&mut self, c: usize, mode: u8) -> u64 {
        match mode % 8 {
            6 => {
                let own: Vec<u64> = self.conns[c].cls.iter().copied().collect();
                own.get(mode as usize / 8 % own.len().max(1))
                    .copied()
                    .unwrap_or(self.next_cl)
            }
            7 => {
                let other = &self.conns[mode as usize / 8 % self.conns.len()];
                other.cls.iter().next().copied().unwrap_or(self.next_cl)
            }
            _ => {
                self.next_cl += 1;
                self.next_cl
            }
        }
    }

    fn orig_for(&self, c: usize, orig: u8) -> u64 {
        let own: Vec<u64> = {
            let mut v: Vec<u64> = self.conns[c].cls.iter().copied().collect();
            v.sort_unstable();
            v
        };
        if own.is_empty() || orig >= 240 {
            return u64::from(orig);
        }
        own[orig as usize % own.len()]
    }

    /// An unsealed frame for `spec` (seq 0, no tag) and what the engine
    /// would receive for it.
    fn frame_for(&self, spec: &OrderSpec, cl: u64, orig: u64) -> (Vec<u8>, Option<Expect>) {
        let instrument = [1u32, 1, 2, 0, 3][spec.instrument as usize % 5];
        let price = 100 + i64::from(spec.price) / 4;
        let qty = if spec.qty >= 250 {
            1_000
        } else {
            u32::from(spec.qty % 30)
        };
        let side = [1u8, 2, 1, 2, 0][spec.side as usize % 5];
        let tif = [0u8, 3, 0, 1][spec.tif as usize % 4];
        let expect = |kind| Expect {
            kind,
            cl,
            orig: 0,
            price: 0,
            qty: 0,
            instrument,
            side: 0,
            ord_type: 0,
            tif: 0,
        };
        match spec.kind {
            OrderKind::New => (
                wire::NewOrder {
                    seq: 0,
                    cl_ord_id: cl,
                    price,
                    qty,
                    instrument_id: instrument,
                    side,
                    ord_type: 1,
                    tif,
                }
                .to_bytes()
                .to_vec(),
                Some(Expect {
                    price,
                    qty,
                    side,
                    ord_type: 1,
                    tif,
                    ..expect(CommandKind::NewOrder)
                }),
            ),
            OrderKind::Cancel => (
                wire::CancelOrder {
                    seq: 0,
                    cl_ord_id: cl,
                    orig_cl_ord_id: orig,
                    instrument_id: instrument,
                }
                .to_bytes()
                .to_vec(),
                Some(Expect {
                    orig,
                    ..expect(CommandKind::Cancel)
                }),
            ),
            OrderKind::Replace => (
                wire::ReplaceOrder {
                    seq: 0,
                    cl_ord_id: cl,
                    orig_cl_ord_id: orig,
                    price,
                    qty,
                    instrument_id: instrument,
                }
                .to_bytes()
                .to_vec(),
                Some(Expect {
                    orig,
                    price,
                    qty,
                    ..expect(CommandKind::Replace)
                }),
            ),
            OrderKind::Mass => (
                wire::MassCancel {
                    seq: 0,
                    cl_ord_id: cl,
                    instrument_id: instrument % 3,
                    side: side % 3,
                }
                .to_bytes()
                .to_vec(),
                Some(Expect {
                    instrument: instrument % 3,
                    side: side % 3,
                    ..expect(CommandKind::MassCancel)
                }),
            ),
            OrderKind::Heartbeat => (wire::Heartbeat { seq: 0 }.to_bytes().to_vec(), None),
            OrderKind::Logout => (wire::Logout { seq: 0, reason: 1 }.to_bytes().to_vec(), None),
        }
    }

    /// Seals `frame` with the connection's client (writes `seq`, tag).
    fn seal(&mut self, c: usize, frame: &[u8]) -> Vec<u8> {
        let client = &mut self.conns[c].client;
        let sealed = match frame.len() {
            wire::NEW_ORDER_SIZE => client
                .seal(<[u8; wire::NEW_ORDER_SIZE]>::try_from(frame).expect("size"))
                .to_vec(),
            wire::CANCEL_ORDER_SIZE => client
                .seal(<[u8; wire::CANCEL_ORDER_SIZE]>::try_from(frame).expect("size"))
                .to_vec(),
            wire::REPLACE_ORDER_SIZE => client
                .seal(<[u8; wire::REPLACE_ORDER_SIZE]>::try_from(frame).expect("size"))
                .to_vec(),
            wire::MASS_CANCEL_SIZE => client
                .seal(<[u8; wire::MASS_CANCEL_SIZE]>::try_from(frame).expect("size"))
                .to_vec(),
            wire::HEARTBEAT_SIZE => client
                .seal(<[u8; wire::HEARTBEAT_SIZE]>::try_from(frame).expect("size"))
                .to_vec(),
            wire::LOGOUT_SIZE => client
                .seal(<[u8; wire::LOGOUT_SIZE]>::try_from(frame).expect("size"))
                .to_vec(),
            n => unreachable!("no client frame of {n} bytes"),
        };
        self.conns[c].last_sealed = Some(sealed.clone());
        sealed
    }

    fn order(&mut self, c: usize, spec: &OrderSpec) {
        if !self.conns[c].client.is_logged_on() {
            // Not logged on (as far as the client knows): an unsealed
            // request, which the gateway must refuse.
            let (frame, _) = self.frame_for(spec, self.next_poison, 0);
            self.next_poison += 1;
            self.conns[c].queue(&frame, true);
            return;
        }
        let cl = self.cl_for(c, spec.cl_mode);
        let orig = self.orig_for(c, spec.orig);
        let (frame, expect) = self.frame_for(spec, cl, orig);
        let sealed = self.seal(c, &frame);
        let conn = &mut self.conns[c];
        let refused = conn.gapped;
        if !refused {
            if let Some(e) = expect {
                conn.good.push(e);
                *conn.requests.entry(cl).or_default() += 1;
                conn.cls.insert(cl);
            }
            conn.last_good = Some(sealed.clone());
        }
        conn.queue(&sealed, refused);
    }

    fn bad(&mut self, c: usize, bad: &Bad, spec: &OrderSpec) {
        let logged_on = self.conns[c].client.is_logged_on();
        let poisoned = |rig: &mut Rig| {
            let cl = rig.next_poison;
            rig.next_poison += 1;
            let (frame, _) = rig.frame_for(spec, cl, cl);
            if rig.conns[c].client.is_logged_on() {
                rig.seal(c, &frame)
            } else {
                frame
            }
        };
        let bytes = match bad {
            Bad::FlipBit { at, bit } => {
                let mut f = poisoned(self);
                let at = *at as usize % f.len();
                f[at] ^= 1 << (bit % 8);
                f
            }
            Bad::Tag(t) => {
                let mut f = poisoned(self);
                let n = f.len();
                f[n - 4..].copy_from_slice(t);
                f[n - 8] ^= 0x5A;
                f
            }
            Bad::ShortTag => {
                let mut f = poisoned(self);
                f.pop();
                let n = f.len() as u16;
                f[..2].copy_from_slice(&n.to_le_bytes());
                f
            }
            Bad::LongTag(x) => {
                let mut f = poisoned(self);
                f.push(*x);
                let n = f.len() as u16;
                f[..2].copy_from_slice(&n.to_le_bytes());
                f
            }
            Bad::Length(len) => {
                let mut f = poisoned(self);
                let real = f.len() as u16;
                let len = if *len == real { real ^ 1 } else { *len };
                f[..2].copy_from_slice(&len.to_le_bytes());
                f
            }
            Bad::Duplicate => match self.conns[c].last_good.clone() {
                Some(f) => f,
                None => return,
            },
            Bad::Skip => {
                if logged_on {
                    // Sealed with the next seq and never sent; not a frame
                    // another action may send later either.
                    let last = self.conns[c].last_sealed.take();
                    let _ = poisoned(self);
                    self.conns[c].last_sealed = last;
                    self.conns[c].gapped = true;
                }
                return;
            }
            Bad::Cross(o) => {
                let o = *o as usize % self.conns.len();
                match self.conns[o].last_sealed.clone() {
                    Some(f) => f,
                    None => return,
                }
            }
            Bad::Raw(bytes) => {
                if bytes.is_empty() {
                    return;
                }
                bytes[..bytes.len().min(160)].to_vec()
            }
            Bad::Logon => {
                if !self.conns[c].acked {
                    return;
                }
                let nonce = self.fresh_nonce();
                let conn = &self.conns[c];
                ClientSession::new(conn.key_id, conn.secret)
                    .logon(self.now, nonce, 1_000, 1, 0)
                    .to_vec()
            }
        };
        self.conns[c].queue(&bytes, true);
    }

    fn inject(&mut self, target: u8, how: u8, kind: u8) {
        let Some(c) = self.conn_index(target) else {
            return;
        };
        let Some(id) = self.conns[c].id else { return };
        let stale = match how % 3 {
            // The connection's own id once it has ended.
            0 => match self.core.session(id) {
                Some(s) if s.close_reason().is_none() => return,
                _ => id,
            },
            // A later generation of its slot, not yet issued.
            1 => SessionId::new(0, id.slot(), id.generation() + 1_000),
            // Its slot and generation on another reactor.
            _ => SessionId::new(1, id.slot(), id.generation()),
        };
        let kind = [
            EventKind::Accepted,
            EventKind::Fill,
            EventKind::Canceled,
            EventKind::Rejected,
            EventKind::MassCancelAck,
            EventKind::Replaced,
        ][kind as usize % 6];
        let poison = self.next_poison;
        self.next_poison += 1;
        let event = Event {
            cl_ord_id: poison,
            order_id: poison,
            qty: 1,
            reason: EventReason::Cancel(CancelReason::USER),
            ..Event::empty(kind, stale)
        };
        // The spy is inside the agent: it takes injections from a
        // process-wide queue at its next command.
        INJECT.lock().unwrap_or_else(|e| e.into_inner()).push(event);
    }

    // ----- one operation -----------------------------------------------------

    fn step(&mut self, op: &Op) {
        if *TRACE {
            eprintln!("{op:?}");
        }
        self.turn();
        match op {
            Op::Connect {
                key,
                rotated,
                peer: p,
            } => {
                let key_id = KEY_IDS[*key as usize % KEY_IDS.len()];
                self.connect(key_id, secret(key_id, *rotated), peer(*p));
            }
            Op::Logon { conn, .. } => {
                if let Some(c) = self.conn_index(*conn) {
                    self.logon(c, op);
                    self.deliver(c, usize::MAX);
                }
            }
            Op::ReplayLogon { of, peer: p } => {
                if let Some(c) = self.replay_logon(*of, peer(*p)) {
                    self.deliver(c, usize::MAX);
                }
            }
            Op::Order {
                conn,
                spec,
                deliver,
            } => {
                if let Some(c) = self.conn_index(*conn) {
                    self.order(c, spec);
                    self.deliver(c, split(*deliver));
                }
            }
            Op::Bad {
                conn,
                bad,
                order,
                deliver,
            } => {
                if let Some(c) = self.conn_index(*conn) {
                    self.bad(c, bad, order);
                    self.deliver(c, split(*deliver));
                }
            }
            Op::Deliver { conn, bytes } => {
                if let Some(c) = self.conn_index(*conn) {
                    self.deliver(c, split(*bytes));
                }
            }
            Op::Reading { conn, on, chunk } => {
                if let Some(c) = self.conn_index(*conn) {
                    self.conns[c].reading = *on;
                    self.conns[c].read_chunk = if *chunk == 0 {
                        usize::MAX
                    } else {
                        *chunk as usize
                    };
                }
            }
            Op::PeerClose { conn } => {
                if let Some(c) = self.conn_index(*conn)
                    && self.conns[c].phase == Phase::Open
                {
                    let id = self.conns[c].id.expect("open");
                    self.core.on_closed(id, self.now);
                    self.start_close(c);
                }
            }
            Op::Tick { dt } => {
                let dt = [0, 1, 50, 300, 1_000, 2_100, 5_000, 30_000, 120_000][*dt as usize % 9];
                self.now += dt * MS;
                self.tick();
            }
            Op::ClockBack { dt } => {
                let dt = [1, 100, 1_000, 10_000][*dt as usize % 4];
                self.now -= dt * MS;
                self.tick();
            }
            Op::EngineRunning(on) => self.running = *on,
            Op::Reload(v) => {
                self.variant = *v % 8;
                self.shared.publish_keys(table(self.variant, self.now));
                self.turn();
            }
            Op::Revoke(k) => {
                let key_id = KEY_IDS[*k as usize % KEY_IDS.len()];
                self.shared.revoke_key(key_id);
                self.revoked.insert(key_id);
                self.turn();
            }
            Op::Inject { target, how, kind } => self.inject(*target, *how, *kind),
        }
        self.after_step();
    }

    /// Everything delivered and read, the engine running: at the end, every
    /// order request of a session still logged on has its one answer.
    fn finish(&mut self) {
        self.running = true;
        for conn in &mut self.conns {
            conn.reading = true;
            conn.read_chunk = usize::MAX;
        }
        for _ in 0..64 {
            self.turn();
            for c in 0..self.conns.len() {
                self.deliver(c, usize::MAX);
            }
            self.tick();
            let read = self.after_step();
            let busy = self
                .conns
                .iter()
                .any(|c| c.phase == Phase::Open && !c.closing && (!c.net.is_empty() || c.paused));
            if !read && !busy && self.quiescent() {
                break;
            }
        }
        for (c, conn) in self.conns.iter().enumerate() {
            let Some(id) = conn.id else { continue };
            let live = self.core.session(id).is_some_and(|s| s.is_logged_on());
            if !live || !conn.net.is_empty() || conn.paused {
                continue;
            }
            for (cl, &n) in &conn.requests {
                let answered = conn.answers.get(cl).copied().unwrap_or(0);
                assert_eq!(
                    answered, n,
                    "connection {c}: {n} requests with cl_ord_id {cl}, {answered} answers"
                );
            }
        }
    }
}

/// A paused connection's parked bytes, as the core's `offer_parked` takes
/// them (one chunk).
struct Parked {
    bytes: Vec<u8>,
    taken: usize,
}

impl ParkedInput for Parked {
    fn oldest(&self) -> Option<&[u8]> {
        (!self.bytes.is_empty()).then_some(&self.bytes[..])
    }

    fn took(&mut self, n: usize, _commands: u64) {
        self.bytes.drain(..n);
        self.taken += n;
    }
}

/// Stale events to inject, handed to the spy (inside the agent) at its
/// next command.
static INJECT: Mutex<Vec<Event>> = Mutex::new(Vec::new());

/// A gateway frame's template and fields, for the trace.
fn frame_summary(f: &GatewayFrame<'_>) -> String {
    match f {
        GatewayFrame::LogonAck(m) => format!("{:?}", m.to_message()),
        GatewayFrame::LogonReject(m) => format!("{:?}", m.to_message()),
        GatewayFrame::Heartbeat(m) => format!("{:?}", m.to_message()),
        GatewayFrame::Terminate(m) => format!("{:?}", m.to_message()),
        GatewayFrame::OrderAccepted(m) => format!("{:?}", m.to_message()),
        GatewayFrame::OrderRejected(m) => format!("{:?}", m.to_message()),
        GatewayFrame::OrderCanceled(m) => format!("{:?}", m.to_message()),
        GatewayFrame::OrderReplaced(m) => format!("{:?}", m.to_message()),
        GatewayFrame::Fill(m) => format!("{:?}", m.to_message()),
        GatewayFrame::MassCancelAck(m) => format!("{:?}", m.to_message()),
    }
}

/// Bytes delivered at once: everything, or a split.
fn split(d: u8) -> usize {
    match d % 4 {
        0 | 1 => usize::MAX,
        _ => 1 + d as usize / 4,
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut guard = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let mut engine = guard
        .take()
        .unwrap_or_else(|| MatchingEngine::new(engine_config()));
    engine.reset();
    INJECT.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let mut rig = Rig::new(engine);
    for op in ops.iter().take(STEPS_MAX) {
        rig.step(op);
    }
    rig.finish();
    let spy = rig.agent.into_engine();
    if spy.engine.is_idle() {
        *guard = Some(spy.engine);
    }
});
