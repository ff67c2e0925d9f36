//! The hand-off between reactors and the matching engine, and the engine
//! interface.
//!
//! Every reactor owns one pair of bounded SPSC rings to the engine: commands
//! go one way, events come back. Records are fixed-size and `Copy`; nothing is
//! ever allocated for a message.
//!
//! ```text
//!   reactor 0 ──Command ring──▶ ┌────────┐ ──Event ring──▶ reactor 0
//!   reactor 1 ──Command ring──▶ │ engine │ ──Event ring──▶ reactor 1
//!      …                        └────────┘                    …
//! ```
//!
//! Command record (64 bytes, one cache line):
//!
//! ```text
//!  0        8          16              24       32        40       48    52      56   57   58       59  60      64
//!  ├────────┼──────────┼───────────────┼────────┼─────────┼────────┼─────┼───────┼────┼────┼────────┼───┼───────┤
//!  │session │cl_ord_id │orig_cl_ord_id │ price  │ time_ns │ key_id │ qty │ instr │kind│side│ord_type│tif│reserved│
//! ```
//!
//! Event record (64 bytes, one cache line):
//!
//! ```text
//!  0        8          16        24        32              40      48    52     56    57  58     64
//!  ├────────┼──────────┼─────────┼─────────┼───────────────┼───────┼─────┼──────┼─────┼───┼──────┤
//!  │session │cl_ord_id │order_id │exec_id  │transact_time  │ price │ qty │leaves│kind │rsn│  pad │
//! ```
//!
//! Ordering guarantee: for one session, events come back in the order the
//! engine produced them, and the engine handles one session's commands in the
//! order that session sent them (one ring per reactor, FIFO).
//!
//! Every NewOrder carries the id of the API key its session logged on with
//! (`key_id`): the engine keeps each resting order's key, so that
//! [`CommandKind::CancelForKey`] reaches every resting order of a key —
//! whatever became of the sessions that entered them — and so that the
//! per-key risk limits ([`risk`]) count the key's open orders.

use crate::wire::codes::{CancelReason, RejectReason};

pub mod agent;
pub mod book;
pub mod risk;

pub use risk::KeyLimits;

/// Nanoseconds since the Unix epoch. The only clock the sans-I/O core knows;
/// the reactor reads it once per turn and passes it in.
pub type Nanos = u64;

/// Identifies one logged-on session across the whole gateway, and routes the
/// engine's events back to the reactor that owns it.
///
/// ```text
///  63      56 55          42 41                                        0
///  ├─────────┼──────────────┼───────────────────────────────────────────┤
///  │ reactor │     slot     │                generation                 │
///  │ 8 bits  │   14 bits    │                  42 bits                  │
/// ```
///
/// The generation grows each time a slot takes a connection, so an event
/// for a session that has ended can never reach the next session in the
/// same slot. 42 bits is 4.4 × 10¹² connections per slot: at a million
/// connections a second, all on one slot, 50 days; and a slot whose
/// generation reaches [`SessionId::GENERATION_MAX`] is retired for the rest
/// of the run (`ReactorCore::accept`), so no id is ever issued twice within
/// a run. (It was 32 bits, which connections that never logged on could
/// wrap: an old session's orders would then have reached a new one.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct SessionId(pub u64);

const SLOT_SHIFT: u32 = 42;
const REACTOR_SHIFT: u32 = 56;

impl SessionId {
    /// The largest generation: a slot that reaches it is never reused.
    pub const GENERATION_MAX: u64 = (1 << SLOT_SHIFT) - 1;
    /// Reactors and slots that fit the layout.
    pub const REACTORS_MAX: usize = 1 << (64 - REACTOR_SHIFT);
    pub const SLOTS_MAX: usize = 1 << (REACTOR_SHIFT - SLOT_SHIFT);

    /// `reactor < REACTORS_MAX`, `slot < SLOTS_MAX` and
    /// `generation <= GENERATION_MAX` (checked in debug builds; the
    /// constants module pins the configurable bounds inside them).
    #[inline]
    pub const fn new(reactor: u16, slot: u16, generation: u64) -> SessionId {
        debug_assert!((reactor as usize) < Self::REACTORS_MAX);
        debug_assert!((slot as usize) < Self::SLOTS_MAX);
        debug_assert!(generation <= Self::GENERATION_MAX);
        SessionId(
            ((reactor as u64) << REACTOR_SHIFT)
                | ((slot as u64) << SLOT_SHIFT)
                | (generation & Self::GENERATION_MAX),
        )
    }
    #[inline]
    pub const fn reactor(self) -> u16 {
        (self.0 >> REACTOR_SHIFT) as u16
    }
    #[inline]
    pub const fn slot(self) -> u16 {
        ((self.0 >> SLOT_SHIFT) as usize & (Self::SLOTS_MAX - 1)) as u16
    }
    #[inline]
    pub const fn generation(self) -> u64 {
        self.0 & Self::GENERATION_MAX
    }
    /// The low 32 bits of the generation: what an io_uring completion
    /// carries (its user_data has no room for more). Enough to tell a stale
    /// completion from the slot's current one: a completion arrives long
    /// before 2³² more connections could have used the slot.
    #[inline]
    pub const fn io_generation(self) -> u32 {
        self.0 as u32
    }
}

/// What a command asks of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CommandKind {
    /// A NewOrder: `cl_ord_id, price, qty, instrument_id, side, ord_type, tif`.
    NewOrder = 1,
    /// A CancelOrder: `cl_ord_id, orig_cl_ord_id, instrument_id`.
    Cancel = 2,
    /// A ReplaceOrder: `cl_ord_id, orig_cl_ord_id, price, qty, instrument_id`.
    Replace = 3,
    /// A MassCancel: `cl_ord_id, instrument_id` (0 = all), `side` (0 = both).
    MassCancel = 4,
    /// The session has ended and asked for cancel-on-disconnect: cancel every
    /// live order of `session` with reason CANCEL_ON_DISCONNECT.
    CancelOnDisconnect = 5,
    /// Cancel every live order of `session` with reason KEY_REVOKED, then
    /// send a MassCancelAck with the command's `cl_ord_id`. (The gateway
    /// revokes a key with [`CommandKind::CancelForKey`]; this session-scoped
    /// sweep remains part of the engine interface.)
    CancelForRevocation = 6,
    /// The kill switch: cancel every resting order of the key `key_id`, of
    /// whichever session, with reason KEY_REVOKED (each Canceled goes to the
    /// order's own session), then send [`EventKind::KeySwept`] to `session`
    /// (the issuing reactor; slot and generation are not used) with the
    /// count. `orig_cl_ord_id` is a tag, echoed in the KeySwept.
    CancelForKey = 7,
}

/// One request from a reactor to the engine. Fields a kind does not use are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Command {
    pub session: SessionId,
    pub cl_ord_id: u64,
    pub orig_cl_ord_id: u64,
    pub price: i64,
    /// When the reactor received the frame (for latency accounting).
    pub time_ns: Nanos,
    /// The API key of the session (NewOrder: the engine keeps it with the
    /// order; CancelForKey: the key to sweep). Other kinds ignore it.
    pub key_id: u64,
    pub qty: u32,
    pub instrument_id: u32,
    pub kind: CommandKind,
    /// Raw wire values: the engine validates them (INVALID_FIELD).
    pub side: u8,
    pub ord_type: u8,
    pub tif: u8,
}

const _: () = assert!(std::mem::size_of::<Command>() == 64);
const _: () = assert!(std::mem::offset_of!(Command, key_id) == 40);
const _: () = assert!(std::mem::offset_of!(Command, kind) == 56);

impl Command {
    /// A command of `kind` for `session` with every other field zero.
    pub const fn empty(kind: CommandKind, session: SessionId) -> Command {
        Command {
            session,
            cl_ord_id: 0,
            orig_cl_ord_id: 0,
            price: 0,
            time_ns: 0,
            key_id: 0,
            qty: 0,
            instrument_id: 0,
            kind,
            side: 0,
            ord_type: 0,
            tif: 0,
        }
    }
}

/// What an event reports back to the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    /// `cl_ord_id, order_id, transact_time_ns` → OrderAccepted.
    Accepted = 1,
    /// `cl_ord_id, transact_time_ns, reject` → OrderRejected.
    Rejected = 2,
    /// `cl_ord_id, order_id, transact_time_ns, qty` (canceled), `cancel` → OrderCanceled.
    Canceled = 3,
    /// `cl_ord_id, order_id, transact_time_ns, leaves_qty` → OrderReplaced.
    Replaced = 4,
    /// `cl_ord_id, order_id, exec_id, transact_time_ns, price, qty, leaves_qty` → Fill.
    Fill = 5,
    /// `cl_ord_id, transact_time_ns, qty` (canceled count) → MassCancelAck.
    MassCancelAck = 6,
    /// The end of a CancelForKey, to the reactor that sent it (never to a
    /// client): `cl_ord_id` = the key id, `order_id` = the command's tag
    /// (`orig_cl_ord_id`), `qty` = orders canceled, `transact_time_ns`.
    KeySwept = 7,
}

/// The reason carried by an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventReason {
    None,
    Reject(RejectReason),
    Cancel(CancelReason),
}

/// One report from the engine to the session that owns the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Event {
    pub session: SessionId,
    pub cl_ord_id: u64,
    pub order_id: u64,
    pub exec_id: u64,
    pub transact_time_ns: Nanos,
    pub price: i64,
    pub qty: u32,
    pub leaves_qty: u32,
    pub kind: EventKind,
    pub reason: EventReason,
}

const _: () = assert!(std::mem::size_of::<Event>() == 64);

impl Event {
    /// An event of `kind` for `session` with every other field zero.
    pub const fn empty(kind: EventKind, session: SessionId) -> Event {
        Event {
            session,
            cl_ord_id: 0,
            order_id: 0,
            exec_id: 0,
            transact_time_ns: 0,
            price: 0,
            qty: 0,
            leaves_qty: 0,
            kind,
            reason: EventReason::None,
        }
    }
}

/// Where an engine sends its events: in the gateway, the event rings of the
/// reactors; in tests, a vector.
pub trait EventSink {
    /// Free event slots toward the reactor that owns `session`. The engine
    /// asks before every step that emits, so that a step is never half
    /// reported.
    fn room(&mut self, session: SessionId) -> usize;
    /// Sends one event. Only called after `room` promised a slot for it.
    fn emit(&mut self, event: &Event);
}

/// Defined in `constants` with its reason; here too for the old path.
pub use crate::constants::EVENTS_PER_STEP_MAX;

// The configurable bounds fit the session id's layout.
const _: () = assert!(crate::constants::SESSIONS_PER_REACTOR_MAX <= SessionId::SLOTS_MAX);
const _: () = assert!(crate::constants::REACTORS_MAX <= SessionId::REACTORS_MAX);

/// A matching engine. The embedded one is [`book::MatchingEngine`]; a real
/// engine can stand behind the same interface.
///
/// Call order: `submit` a command; if it returns `false`, the engine stopped
/// between two steps because an event ring had no room, keeps the command's
/// progress, and must be `resume`d (until it returns `true`) before it is
/// given another command. Nothing is ever dropped or emitted twice.
pub trait Engine {
    fn submit<S: EventSink>(&mut self, now: Nanos, command: &Command, out: &mut S) -> bool;
    fn resume<S: EventSink>(&mut self, now: Nanos, out: &mut S) -> bool;
    /// Replaces the per-key risk limits (a new key generation): called only
    /// between two commands, never while one is unfinished. Allocates
    /// nothing. An engine without per-key risk ignores it.
    fn set_key_limits(&mut self, limits: &[KeyLimits]) {
        let _ = limits;
    }
}
