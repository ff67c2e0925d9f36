//! The embedded matching engine: price-time priority limit order books, one
//! per instrument, with every byte allocated in [`MatchingEngine::new`] and
//! none after.
//!
//! # Data structures
//!
//! Everything is addressed by `u32` indices into vectors sized at start-up;
//! [`NIL`] (`u32::MAX`) is the null index. There is no `unsafe` and no
//! pointer.
//!
//! ```text
//!  orders: [Order; orders_max]          one 64-byte node per resting order
//!     ├─ level_prev/level_next          FIFO of its price level (free list while unused)
//!     ├─ session_prev/session_next      circular list of its session's live orders
//!     └─ key                            record of its API key
//!  key_links: [KeyLink; orders_max]     circular list of its key's resting orders
//!
//!  keys: [KeyRecord; keys_max]          per key with resting orders: head, count,
//!                                       open notional (free list while unused)
//!
//!  levels: [Level; instruments × 2 × levels_per_side_max]
//!     book b = (instrument − 1) × 2 + (side − 1) owns levels[b·L .. b·L + L],
//!     of which the first level_counts[b] are active, sorted WORST FIRST, so
//!     the best level is the last one:
//!
//!       bids: 97  98  99  100 ◀ best        asks: 104 103 102 101 ◀ best
//!
//!     Level { price, head, tail }: the FIFO of the orders at that price.
//!
//!  by_id:      (session, cl_ord_id) → order   open addressing, linear probing
//!  by_session: session → first live order     open addressing, linear probing
//!  by_key:     key id → key record             open addressing, linear probing
//!  limits:     key id → KeyLimits              installed per key generation
//!  instruments: [InstrumentState]              collar: reference price, width
//! ```
//!
//! * **Levels** are a sorted array per side, found by binary search and moved
//!   with `copy_within` on insert and remove. Keeping the best level at the
//!   *end* means the common changes — a level traded away at the top, a new
//!   best price — move nothing; only a level opened or emptied deep in the
//!   book moves the (few, 16-byte) levels behind it. Matching reads the best
//!   level in O(1); cancel finds its level in O(log levels).
//! * **Lookup tables** hold 8-byte slots `{ index, hash }`: the key itself
//!   lives in the order node, so a probe compares the 32-bit hash first and
//!   touches the node only on a hash match. Capacity is a power of two
//!   ≥ 2 × `orders_max` and each table holds at most `orders_max` entries, so
//!   the **load factor never exceeds 1/2** (expected probes ≈ 1.5 for a hit,
//!   2.5 for a miss). Deletion is backward-shift, so there are no tombstones
//!   and no load creep. The hash is a folded multiply keyed from the process's
//!   `RandomState` at start-up, so a client cannot aim its `cl_ord_id`s at one
//!   probe chain by precomputing them (a cheap defence, not a cryptographic
//!   one). The hash only decides speed, never which events are produced.
//! * **Session lists** are circular doubly linked lists in entry order; the
//!   head carries a flag, so unlinking any other order touches no table. Mass
//!   cancel, cancel-on-disconnect and revocation walk only that session's
//!   orders: O(orders of the session), never O(book).
//! * **Key lists** are circular doubly linked lists too, of every resting
//!   order of one API key (whichever session entered it, whatever became of
//!   that session), headed by the key's record; the record also keeps the
//!   key's open notional. CancelForKey walks only that key's orders. The
//!   links live beside the nodes (`key_links`: the node's line is full), so
//!   resting an order or taking it out touches one more line. A record is
//!   taken when a key's first order rests and freed with its last one, so
//!   `keys_max` bounds the keys with resting orders at once, not the keys
//!   ever seen.
//!
//! Memory: 64 B per order node + 8 B of key links + 2 × 8 B × (2 ×
//! `orders_max` rounded up to a power of two) of tables ≈ 104–136 B per
//! order (104 B when `orders_max` is a power of two: 104 MiB for
//! `ORDERS_MAX_DEFAULT`), plus 2 × 16 B × `levels_per_side_max` per
//! instrument (128 KiB per instrument at 4096 levels: 12.5 MiB for 100
//! instruments), plus 48 B per key record (768 KiB by default) and 96 KiB of
//! key limits. [`EngineConfig::memory_bytes`] adds it up. The large tables come from the
//! caller's [`TableMemory`] (the engine makes no system call): the runtime
//! backs them with transparent huge pages (`ordergate::sys::HugePages`,
//! `MADV_HUGEPAGE`), because a lookup lands anywhere in a 16 MiB table,
//! and on 4 KiB pages that is a TLB miss per command — under a hypervisor's
//! nested paging, measured at ≈0.4 µs of the ≈0.5 µs the engine took per
//! command in `ordergate-bench compare`.
//!
//! # Semantics, and the choices this engine makes
//!
//! * **Validation order** of a NewOrder: instrument (UNKNOWN_INSTRUMENT), then
//!   side, ord_type, tif, qty (INVALID_FIELD), then a LIVE order of the same
//!   session with that `cl_ord_id` (DUPLICATE_ORDER_ID; the id of a filled or
//!   canceled order may be reused, and other sessions' ids never clash), then
//!   the price collar (PRICE_OUT_OF_BAND), then the key's limits
//!   (RISK_MAX_NOTIONAL, then RISK_MAX_OPEN_NOTIONAL), then capacity
//!   (ENGINE_REJECT).
//! * **Price collars** (pre-trade risk that the price cannot dodge). A price
//!   ≤ 0 is refused unless the instrument is configured with
//!   `nonpositive_prices` (spreads, some futures). Each instrument's
//!   reference is its last trade price, or before its first trade a
//!   configured `reference`; with no reference there is no band (configure
//!   one to collar the first trade). The band is `max(1, |reference| ×
//!   collar_bps / 10^4)` ticks, computed exactly; a buy above `reference +
//!   band` or a sell below `reference − band` is refused. Only the side that
//!   could trade through the book is collared: a buy far below the market
//!   can only trade at its own price or better, so it is accepted (CME's
//!   price banding does the same). Every resting order entered with a
//!   reference stays on the right side of the band (a trade below a resting
//!   bid must take that bid first), so an order inside the band trades at
//!   most `band` away from the last trade. The check costs a few
//!   instructions on the instrument's 16-byte state, which every trade
//!   writes; a ReplaceOrder is collared when it changes the price.
//! * **Key limits** ([`crate::engine::risk`]), only for keys that have them
//!   (others skip the scan): the notional of the order at the prices it
//!   would fill at — each crossing resting order's price times the quantity
//!   taken, plus a Day remainder at the limit price — against
//!   `max_order_notional`; and the key's open notional (`Σ |price| × leaves`
//!   of its resting orders) plus the remainder against `max_open_notional`
//!   (a change that does not raise it always passes). The crossing
//!   liquidity is scanned once for both (the orders the match then walks).
//! * **ENGINE_REJECT** is given only when the order really would have to rest
//!   and could not: a Day order whose remainder after taking all the crossing
//!   liquidity is > 0, and either the order pool is full (and none of the
//!   crossing orders it takes frees a node), or its price needs a new level
//!   on a side that already has `levels_per_side_max`, or its key has no
//!   resting order (so no record) and every key record is in use. An order
//!   that fills completely, and any IOC, never needs a node, a level or a
//!   record. The check scans the crossing liquidity only when a limit is
//!   actually reached.
//! * **Order ids** count up from `first_order_id`, one per accepted order;
//!   rejected commands take none. **Exec ids** count up from 1, one per match:
//!   the aggressor's Fill and the resting order's Fill carry the same exec id
//!   (it identifies the trade). Fills are priced at the resting order's price.
//! * **Self-match is allowed**: an order can trade against a resting order of
//!   its own session (both Fills go to that session, aggressor's first). A
//!   venue would add self-trade prevention (cancel resting / cancel
//!   aggressor); it is a possible later feature and would need a new cancel
//!   reason on the wire.
//! * **Cancel and Replace** find the order by `(session, orig_cl_ord_id)` only,
//!   so another session's orders can never be named. An order that exists
//!   but is on a different instrument than the command says is
//!   UNKNOWN_ORDER (the command names no live order), as is an instrument id
//!   outside `1..=instruments`. The `cl_ord_id` of a CancelOrder is echoed but
//!   not checked for uniqueness: it never names a live order.
//! * **Replace** checks qty > 0 (INVALID_FIELD), then the order
//!   (UNKNOWN_ORDER), then the new `cl_ord_id` (DUPLICATE_ORDER_ID when it is
//!   another live order of the session; equal to `orig_cl_ord_id` is fine),
//!   then a new price against the collar (PRICE_OUT_OF_BAND), then, when it
//!   loses priority, the key's limits as for a new order (the order's own
//!   notional replaced), then capacity (ENGINE_REJECT when the new price
//!   needs a level the side cannot open). `qty` is the new open quantity (leaves); this engine keeps
//!   no cumulative filled quantity. **Priority** (CME-style): kept only when
//!   the price is unchanged and the quantity does not grow (a decrease, or
//!   the same quantity); any price change or quantity increase moves the order
//!   to the back of its (possibly new) level. The order is then known only by
//!   the new `cl_ord_id`. A replace to a price that crosses the book trades
//!   at once as an aggressor: Replaced first, then its Fills under the new
//!   `cl_ord_id`, and the remainder rests (replaced orders are Day orders).
//!   When it fills completely it is gone.
//! * **MassCancel**: `instrument_id` 0 = every instrument, above
//!   `instruments` → UNKNOWN_INSTRUMENT; `side` 0 = both, 1, 2, anything else
//!   → INVALID_FIELD (instrument is checked first). Only the sender's orders
//!   are canceled, oldest first, each Canceled carrying that order's own
//!   `cl_ord_id`; then MassCancelAck with the count (0 is a valid count).
//!   CancelOnDisconnect cancels all of the session's orders the same way
//!   with its own reason and no ack; CancelForRevocation does too and then
//!   acks (MassCancelAck with the command's `cl_ord_id`).
//! * **CancelForKey** (the kill switch) cancels every resting order of the
//!   command's `key_id` in the key's entry order, each with reason
//!   KEY_REVOKED to the order's own session (an ended session's is dropped
//!   and counted by its reactor), then sends KeySwept with the count and the
//!   command's tag to the issuing reactor: O(orders of the key).
//! * Unused event fields are 0; `transact_time_ns` is the `now` of the call
//!   (`submit` or `resume`) that emitted the event.
//!
//! # Steps and back-pressure
//!
//! A command is carried out as a series of atomic steps. Before each step the
//! engine asks [`EventSink::room`] for every reactor the step emits to
//! (adding both counts when the two sessions share a reactor); if one is
//! short, the step is not started, the command's progress is kept in
//! `MatchingEngine::work`, `submit`/`resume` returns `false`, and `resume`
//! continues at exactly that step. The steps:
//!
//! | step | events (→ session) |
//! |---|---|
//! | reject | Rejected (→ sender) |
//! | cancel, in-place replace | Canceled USER / Replaced (→ sender) |
//! | announce + first action | Accepted or Replaced, plus the first fill (→ sender, → resting), or the IOC cancel, or nothing when the order rests |
//! | fill | Fill (→ aggressor), Fill (→ resting) |
//! | IOC cancel | Canceled IMMEDIATE_OR_CANCEL (→ sender) |
//! | sweep | one Canceled per order (→ sender; a key sweep → the order's session) |
//! | mass-cancel ack | MassCancelAck, or KeySwept for a key sweep (→ sender) |
//!
//! The most one step sends to one reactor is 3 (announce and two Fills when
//! both sessions are on it): `EVENTS_PER_STEP_MAX`. Book changes a command
//! makes before its first event (the re-key and unlink of a replace, the
//! removal of a canceled order) are invisible, because no other command can
//! run before the stalled one finishes. Calling `submit` while a command is
//! unfinished is a caller bug: debug builds panic; release builds return
//! `false` WITHOUT taking the new command (the caller must `resume` until
//! `true`, see [`MatchingEngine::is_idle`], then submit it again).

use std::cmp::Ordering;

use crate::constants::{
    COLLAR_BPS_DEFAULT, COLLAR_BPS_MAX, ENGINE_KEYS_BOUND, ENGINE_KEYS_DEFAULT,
    INSTRUMENTS_DEFAULT, INSTRUMENTS_MAX, KEYS_MAX, LEVELS_PER_SIDE_MAX, ORDERS_MAX_DEFAULT,
};
use crate::engine::{
    Command, CommandKind, Engine, Event, EventKind, EventReason, EventSink, KeyLimits, Nanos,
    SessionId,
};
use crate::wire::codes::{CancelReason, OrdType, RejectReason, Side, Tif};

/// The null index of every intrusive list and table slot.
const NIL: u32 = u32::MAX;

/// Defined in `constants` with its reason; here too for the old path.
pub use crate::constants::ENGINE_ORDERS_MAX_BOUND;

/// Price settings of one instrument that differ from the engine's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentRisk {
    /// `1..=instruments`, at most once in a config.
    pub instrument: u32,
    /// The collar's reference before the instrument's first trade (after
    /// it, the last trade price). None: no collar until the first trade.
    pub reference: Option<i64>,
    /// Half-width of the collar in basis points of the reference; None:
    /// [`EngineConfig::collar_bps`].
    pub collar_bps: Option<u32>,
    /// Prices ≤ 0 are accepted (spreads, some futures). Default: refused
    /// PRICE_OUT_OF_BAND.
    pub nonpositive_prices: bool,
}

impl InstrumentRisk {
    /// No override: the engine's defaults for `instrument`.
    pub const fn new(instrument: u32) -> InstrumentRisk {
        InstrumentRisk {
            instrument,
            reference: None,
            collar_bps: None,
            nonpositive_prices: false,
        }
    }
}

/// The embedded engine's start-up configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Instrument ids are `1..=instruments`; at most `INSTRUMENTS_MAX`.
    pub instruments: u32,
    /// Resting orders, all instruments and sessions together.
    pub orders_max: usize,
    /// Price levels one side of one book can hold; at most
    /// `LEVELS_PER_SIDE_MAX`.
    pub levels_per_side_max: usize,
    /// The first order id handed out (≥ 1; 0 means "no order" in events).
    /// A restarted engine can start beyond the ids it gave before.
    pub first_order_id: u64,
    /// API keys that can have resting orders at once (each has a record:
    /// its list of orders and its open notional). At most
    /// `ENGINE_KEYS_BOUND`.
    pub keys_max: usize,
    /// Half-width of every instrument's price collar, in basis points of
    /// its reference price, unless `instrument_risk` says otherwise:
    /// `1..=COLLAR_BPS_MAX`.
    pub collar_bps: u32,
    /// Per-instrument overrides: a reference price before the first trade,
    /// a collar width, prices ≤ 0 allowed.
    pub instrument_risk: Vec<InstrumentRisk>,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            instruments: INSTRUMENTS_DEFAULT,
            orders_max: ORDERS_MAX_DEFAULT,
            levels_per_side_max: LEVELS_PER_SIDE_MAX,
            first_order_id: 1,
            keys_max: ENGINE_KEYS_DEFAULT,
            collar_bps: COLLAR_BPS_DEFAULT,
            instrument_risk: Vec::new(),
        }
    }
}

impl EngineConfig {
    /// Slots of each lookup table: a power of two ≥ 2 × `orders_max`.
    pub fn table_slots(&self) -> usize {
        (2 * self.orders_max).next_power_of_two()
    }

    /// Slots of the key-record table: a power of two ≥ 2 × `keys_max`.
    pub fn key_table_slots(&self) -> usize {
        (2 * self.keys_max).next_power_of_two()
    }

    /// Bytes [`MatchingEngine::new`] allocates for this configuration.
    pub fn memory_bytes(&self) -> usize {
        let books = self.instruments as usize * 2;
        self.orders_max * (size_of::<Order>() + size_of::<KeyLink>())
            + books * self.levels_per_side_max * size_of::<Level>()
            + books * size_of::<u32>()
            + 2 * self.table_slots() * size_of::<Slot>()
            + self.keys_max * size_of::<KeyRecord>()
            + self.key_table_slots() * size_of::<Slot>()
            + KEYS_MAX * size_of::<KeyLimits>()
            + LIMITS_TABLE_SLOTS * size_of::<Slot>()
            + self.instruments as usize * size_of::<InstrumentState>()
    }

    fn check(&self) {
        assert!(
            self.instruments >= 1 && self.instruments <= INSTRUMENTS_MAX,
            "engine: instruments must be in 1..={INSTRUMENTS_MAX}, not {}",
            self.instruments
        );
        assert!(
            self.orders_max >= 1 && self.orders_max <= ENGINE_ORDERS_MAX_BOUND,
            "engine: orders_max must be in 1..={ENGINE_ORDERS_MAX_BOUND}, not {}",
            self.orders_max
        );
        assert!(
            self.levels_per_side_max >= 1 && self.levels_per_side_max <= LEVELS_PER_SIDE_MAX,
            "engine: levels_per_side_max must be in 1..={LEVELS_PER_SIDE_MAX}, not {}",
            self.levels_per_side_max
        );
        assert!(
            self.first_order_id >= 1,
            "engine: first_order_id must be ≥ 1"
        );
        assert!(
            self.keys_max >= 1 && self.keys_max <= ENGINE_KEYS_BOUND,
            "engine: keys_max must be in 1..={ENGINE_KEYS_BOUND}, not {}",
            self.keys_max
        );
        let collar = |bps: u32| (1..=COLLAR_BPS_MAX).contains(&bps);
        assert!(
            collar(self.collar_bps),
            "engine: collar_bps must be in 1..={COLLAR_BPS_MAX}, not {}",
            self.collar_bps
        );
        for (i, r) in self.instrument_risk.iter().enumerate() {
            assert!(
                r.instrument >= 1 && r.instrument <= self.instruments,
                "engine: instrument_risk names instrument {}, outside 1..={}",
                r.instrument,
                self.instruments
            );
            assert!(
                !self.instrument_risk[..i]
                    .iter()
                    .any(|o| o.instrument == r.instrument),
                "engine: instrument_risk names instrument {} twice",
                r.instrument
            );
            assert!(
                r.collar_bps.is_none_or(collar),
                "engine: instrument {}: collar_bps must be in 1..={COLLAR_BPS_MAX}",
                r.instrument
            );
            assert!(
                r.reference.is_none_or(|p| p > 0 || r.nonpositive_prices),
                "engine: instrument {}: a reference price ≤ 0 needs nonpositive_prices",
                r.instrument
            );
        }
    }
}

/// What the engine has done since start-up (read by telemetry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Commands taken by `submit`.
    pub commands: u64,
    /// Commands answered by Rejected.
    pub rejects: u64,
    /// Matches (each is two Fill events).
    pub matches: u64,
    /// Times a step waited for event-ring room (back-pressure).
    pub stalls: u64,
    /// Of `rejects`: PRICE_OUT_OF_BAND (collar, or a price ≤ 0).
    pub price_rejects: u64,
    /// Of `rejects`: RISK_MAX_NOTIONAL at the fill prices.
    pub notional_rejects: u64,
    /// Of `rejects`: RISK_MAX_OPEN_NOTIONAL.
    pub open_notional_rejects: u64,
    /// CancelForKey commands carried out.
    pub key_sweeps: u64,
    /// Orders those canceled.
    pub key_sweep_canceled: u64,
}

/// A resting order, as [`MatchingEngine::order`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderView {
    pub order_id: u64,
    pub instrument_id: u32,
    pub side: Side,
    pub price: i64,
    pub leaves_qty: u32,
}

/// One resting order (or a free node). Exactly one cache line.
#[derive(Clone, Copy, Debug)]
struct Order {
    session: SessionId,
    cl_ord_id: u64,
    order_id: u64,
    price: i64,
    /// Open quantity, > 0 while the node is in a level.
    leaves: u32,
    instrument: u32,
    /// FIFO of the order's price level, NIL at the ends. While the node is
    /// free, `level_next` links the free list.
    level_prev: u32,
    level_next: u32,
    /// Circular list of the session's live orders in entry order: the head's
    /// `session_prev` is the tail, the tail's `session_next` the head.
    session_prev: u32,
    session_next: u32,
    /// The record of the order's API key (`keys`), NIL while free. Its
    /// links in the key's list are `key_links[index]`.
    key: u32,
    side: Side,
    /// This node is the head of its session's list (`by_session` points at it).
    session_head: bool,
}

const _: () = assert!(size_of::<Order>() == 64);

impl Order {
    const FREE: Order = Order {
        session: SessionId(0),
        cl_ord_id: 0,
        order_id: 0,
        price: 0,
        leaves: 0,
        instrument: 0,
        level_prev: NIL,
        level_next: NIL,
        session_prev: NIL,
        session_next: NIL,
        key: NIL,
        side: Side::Buy,
        session_head: false,
    };
}

/// An order's place in the circular list of its key's resting orders, in
/// entry order (kept beside the node: the node's cache line is full).
#[derive(Clone, Copy, Debug)]
struct KeyLink {
    prev: u32,
    next: u32,
}

const _: () = assert!(size_of::<KeyLink>() == 8);

impl KeyLink {
    const NONE: KeyLink = KeyLink {
        prev: NIL,
        next: NIL,
    };
}

/// One API key with resting orders: the head of its list and its open
/// notional. A free record links the free list through `head`.
#[derive(Clone, Copy, Debug)]
struct KeyRecord {
    /// `Σ |price| × leaves` of the key's resting orders: below 2^126 (each
    /// term is below 2^95 and there are fewer than 2^31 orders).
    open_notional: u128,
    key_id: u64,
    /// First order of the key's list (NIL: none).
    head: u32,
    /// Orders in the list; 0 while the record is free.
    orders: u32,
}

const _: () = assert!(size_of::<KeyRecord>() == 32);

impl KeyRecord {
    const FREE: KeyRecord = KeyRecord {
        open_notional: 0,
        key_id: 0,
        head: NIL,
        orders: 0,
    };
}

/// Slots of the per-key limits table: at most `KEYS_MAX` entries (one key
/// table), load ≤ 1/2.
const LIMITS_TABLE_SLOTS: usize = (2 * KEYS_MAX).next_power_of_two();

/// One instrument's collar: its settings and reference price.
#[derive(Clone, Copy, Debug)]
struct InstrumentState {
    /// The last trade price, or the configured reference before the first
    /// trade; only meaningful when `has_reference`.
    reference: i64,
    collar_bps: u32,
    has_reference: bool,
    nonpositive_prices: bool,
}

const _: () = assert!(size_of::<InstrumentState>() == 16);

/// The notional of `qty` at `price`: `|price| × qty`, exact (below 2^95).
#[inline]
fn notional(price: i64, qty: u32) -> u128 {
    u128::from(price.unsigned_abs()) * u128::from(qty)
}

/// What an aggressor on one side at one limit could take from the book.
#[derive(Clone, Copy, Debug, Default)]
struct Crossing {
    /// Quantity it would fill, at most the quantity asked.
    taken: u32,
    /// Resting orders it would touch.
    orders: u32,
    /// Notional of those fills, each at its resting price.
    notional: u128,
}

/// One active price level: the FIFO of its orders (never empty).
#[derive(Clone, Copy, Debug)]
struct Level {
    price: i64,
    head: u32,
    tail: u32,
}

const _: () = assert!(size_of::<Level>() == 16);

impl Level {
    const EMPTY: Level = Level {
        price: 0,
        head: NIL,
        tail: NIL,
    };
}

/// One slot of a lookup table: `index` is NIL when the slot is empty; `hash`
/// is the key's full 32-bit hash (the home slot is `hash & mask`).
#[derive(Clone, Copy, Debug)]
struct Slot {
    index: u32,
    hash: u32,
}

const _: () = assert!(size_of::<Slot>() == 8);

/// Open addressing with linear probing and backward-shift deletion. The key
/// is not stored: the caller's `matches` compares it against the node that
/// `index` names. Never more than half full (see the module docs), so every
/// probe ends at an empty slot.
struct IndexTable {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
}

impl IndexTable {
    fn new(slots_count: usize, memory: &impl TableMemory) -> IndexTable {
        assert!(slots_count.is_power_of_two() && slots_count >= 2);
        IndexTable {
            slots: memory.table(
                slots_count,
                Slot {
                    index: NIL,
                    hash: 0,
                },
            ),
            mask: slots_count - 1,
            len: 0,
        }
    }

    /// The slot position and index of the entry with `hash` that `matches`.
    #[inline]
    fn find(&self, hash: u32, mut matches: impl FnMut(u32) -> bool) -> Option<(usize, u32)> {
        let mut pos = hash as usize & self.mask;
        loop {
            let slot = self.slots[pos];
            if slot.index == NIL {
                return None;
            }
            if slot.hash == hash && matches(slot.index) {
                return Some((pos, slot.index));
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Adds an entry; the caller knows the key is not present.
    #[inline]
    fn insert(&mut self, hash: u32, index: u32) {
        assert!(
            self.len < self.slots.len() / 2,
            "lookup table over half full"
        );
        let mut pos = hash as usize & self.mask;
        while self.slots[pos].index != NIL {
            pos = (pos + 1) & self.mask;
        }
        self.slots[pos] = Slot { index, hash };
        self.len += 1;
    }

    /// Empties the table (start-up sized: touches every slot).
    fn clear(&mut self) {
        self.slots.fill(Slot {
            index: NIL,
            hash: 0,
        });
        self.len = 0;
    }

    /// Removes the entry at `pos`, shifting later entries of the probe run
    /// back so that no tombstone is left.
    #[inline]
    fn remove_at(&mut self, pos: usize) {
        debug_assert!(self.slots[pos].index != NIL);
        let mut hole = pos;
        let mut next = (pos + 1) & self.mask;
        loop {
            let slot = self.slots[next];
            if slot.index == NIL {
                break;
            }
            let home = slot.hash as usize & self.mask;
            // The entry may move into the hole if the hole lies cyclically
            // between its home and where it sits now.
            if next.wrapping_sub(home) & self.mask >= next.wrapping_sub(hole) & self.mask {
                self.slots[hole] = slot;
                hole = next;
            }
            next = (next + 1) & self.mask;
        }
        self.slots[hole] = Slot {
            index: NIL,
            hash: 0,
        };
        self.len -= 1;
    }
}

/// A NewOrder, or a replaced order that lost priority, being matched.
#[derive(Clone, Copy, Debug)]
struct Aggressor {
    session: SessionId,
    /// The API key of a new order (a replaced order's node has its key).
    key_id: u64,
    cl_ord_id: u64,
    order_id: u64,
    price: i64,
    leaves: u32,
    instrument: u32,
    side: Side,
    ioc: bool,
    /// Accepted (new order) or Replaced (replace) is still to be sent, with
    /// the first action.
    announce: bool,
    /// The replaced order's node (in the pool, the tables and its session
    /// list, but in no level), or NIL for a new order (no node until it rests).
    node: u32,
}

/// A mass cancel, cancel-on-disconnect or revocation walking the session's
/// list, or a CancelForKey walking the key's list.
#[derive(Clone, Copy, Debug)]
struct Sweep {
    /// Who gets the ack (and, for a session sweep, every Canceled).
    session: SessionId,
    /// The ack's `cl_ord_id` (a CancelForKey: the key id).
    cl_ord_id: u64,
    /// A CancelForKey: the walk follows `key_links`, each Canceled goes to
    /// the order's own session, and the ack is KeySwept carrying `tag`.
    by_key: bool,
    tag: u64,
    /// 0 = every instrument.
    instrument: u32,
    /// 0 = both sides, else the wire side.
    side: u8,
    reason: CancelReason,
    /// Send MassCancelAck at the end.
    ack: bool,
    /// Next order to look at, NIL when the walk is over.
    cursor: u32,
    /// First order the walk kept (NIL until one is kept): reaching it again
    /// means the circular list has been walked once.
    first_kept: u32,
    count: u32,
}

/// The unfinished part of the current command.
#[derive(Clone, Copy, Debug)]
enum Work {
    Idle,
    /// One event still to send (`transact_time_ns` is set when sent).
    Single(Event),
    Match(Aggressor),
    Sweep(Sweep),
}

/// The embedded price-time priority matching engine. See the module docs.
pub struct MatchingEngine {
    config: EngineConfig,
    orders: Vec<Order>,
    /// Head of the free list through `Order::level_next`.
    free_head: u32,
    orders_live: usize,
    /// `instruments × 2` books of `levels_per_side_max` levels each.
    levels: Vec<Level>,
    /// Active levels of each book (the first `level_counts[b]` of its share).
    level_counts: Vec<u32>,
    by_id: IndexTable,
    by_session: IndexTable,
    /// `key_links[i]`: order `i`'s place in its key's list.
    key_links: Vec<KeyLink>,
    /// Records of the keys with resting orders; `by_key` finds them by id.
    keys: Vec<KeyRecord>,
    key_free: u32,
    by_key: IndexTable,
    /// Per-key limits of the current key generation (`set_key_limits`),
    /// found by id through `limits_table`; capacity `KEYS_MAX`, never grown.
    limits: Vec<KeyLimits>,
    limits_table: IndexTable,
    /// Collar state, index = instrument − 1.
    instruments: Vec<InstrumentState>,
    hash_keys: [u64; 3],
    order_id_next: u64,
    exec_id_next: u64,
    work: Work,
    counters: EngineCounters,
}

#[inline]
fn book_index(instrument: u32, side: Side) -> usize {
    (instrument as usize - 1) * 2 + (side as usize - 1)
}

#[inline]
fn opposite(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    }
}

/// Does an aggressor on `side` with limit `limit` trade with a resting price?
#[inline]
fn crosses(side: Side, limit: i64, resting: i64) -> bool {
    match side {
        Side::Buy => resting <= limit,
        Side::Sell => resting >= limit,
    }
}

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    (p as u64) ^ ((p >> 64) as u64)
}

/// Is there room toward `a`'s reactor for `na` events and toward `b`'s for
/// `nb`, counting both against one reactor when they share it?
#[inline]
fn room_for<S: EventSink>(out: &mut S, a: SessionId, na: usize, b: SessionId, nb: usize) -> bool {
    if a.reactor() == b.reactor() {
        out.room(a) >= na + nb
    } else {
        out.room(a) >= na && out.room(b) >= nb
    }
}

/// Where the engine's large tables (the order pool, the levels, the key
/// links and the lookup tables) come from: each is asked for once, when the
/// engine is built. The core does not advise the kernel on memory; the
/// runtime's implementation (`ordergate::sys::HugePages`) backs the tables
/// with transparent huge pages, [`PlainMemory`] with the ordinary heap.
pub trait TableMemory {
    /// A vector of `n` copies of `value`.
    fn table<T: Clone>(&self, n: usize, value: T) -> Vec<T>;
}

/// Ordinary heap pages (`vec![value; n]`): tests, tools, and any caller
/// that does not care about TLB misses.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainMemory;

impl TableMemory for PlainMemory {
    fn table<T: Clone>(&self, n: usize, value: T) -> Vec<T> {
        vec![value; n]
    }
}

impl MatchingEngine {
    /// [`new_in`](Self::new_in) ordinary heap memory ([`PlainMemory`]).
    pub fn new(config: EngineConfig) -> MatchingEngine {
        MatchingEngine::new_in(config, &PlainMemory)
    }

    /// Allocates every pool, level array and table, the large ones from
    /// `memory`. Panics on a configuration outside the limits (start-up
    /// only).
    pub fn new_in(config: EngineConfig, memory: &impl TableMemory) -> MatchingEngine {
        config.check();
        let orders_count = config.orders_max;
        let mut orders = memory.table(orders_count, Order::FREE);
        for (i, order) in orders.iter_mut().enumerate() {
            order.level_next = if i + 1 < orders_count {
                (i + 1) as u32
            } else {
                NIL
            };
        }
        let books = config.instruments as usize * 2;
        let hash_keys = {
            use std::hash::{BuildHasher, RandomState};
            let state = RandomState::new();
            // `| 1`: an odd multiplier never folds everything to zero.
            [
                state.hash_one(0u64),
                state.hash_one(1u64),
                state.hash_one(2u64) | 1,
            ]
        };
        let mut keys = vec![KeyRecord::FREE; config.keys_max];
        for (i, record) in keys.iter_mut().enumerate() {
            record.head = if i + 1 < config.keys_max {
                (i + 1) as u32
            } else {
                NIL
            };
        }
        let instruments = (1..=config.instruments)
            .map(|instrument| {
                let over = config
                    .instrument_risk
                    .iter()
                    .find(|r| r.instrument == instrument)
                    .copied()
                    .unwrap_or(InstrumentRisk::new(instrument));
                InstrumentState {
                    reference: over.reference.unwrap_or(0),
                    collar_bps: over.collar_bps.unwrap_or(config.collar_bps),
                    has_reference: over.reference.is_some(),
                    nonpositive_prices: over.nonpositive_prices,
                }
            })
            .collect();
        MatchingEngine {
            levels: memory.table(books * config.levels_per_side_max, Level::EMPTY),
            level_counts: vec![0; books],
            by_id: IndexTable::new(config.table_slots(), memory),
            by_session: IndexTable::new(config.table_slots(), memory),
            key_links: memory.table(orders_count, KeyLink::NONE),
            keys,
            key_free: 0,
            by_key: IndexTable::new(config.key_table_slots(), memory),
            limits: Vec::with_capacity(KEYS_MAX),
            limits_table: IndexTable::new(LIMITS_TABLE_SLOTS, memory),
            instruments,
            orders,
            free_head: 0,
            orders_live: 0,
            hash_keys,
            order_id_next: config.first_order_id,
            config,
            exec_id_next: 1,
            work: Work::Idle,
            counters: EngineCounters::default(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn counters(&self) -> EngineCounters {
        self.counters
    }

    /// No command is unfinished: the next call may be `submit`.
    pub fn is_idle(&self) -> bool {
        matches!(self.work, Work::Idle)
    }

    /// Resting orders, all instruments.
    pub fn orders_live(&self) -> usize {
        self.orders_live
    }

    /// The live order `session` knows as `cl_ord_id`.
    pub fn order(&self, session: SessionId, cl_ord_id: u64) -> Option<OrderView> {
        let (_, index) = self.find_order(session, cl_ord_id)?;
        let o = &self.orders[index as usize];
        Some(OrderView {
            order_id: o.order_id,
            instrument_id: o.instrument,
            side: o.side,
            price: o.price,
            leaves_qty: o.leaves,
        })
    }

    /// The levels of one side of a book, best first: `(price, total open
    /// qty, orders)`. Walks the orders; for tools and tests, not the hot path.
    pub fn depth(&self, instrument: u32, side: Side) -> impl Iterator<Item = (i64, u64, u32)> + '_ {
        let levels: &[Level] = if instrument >= 1 && instrument <= self.config.instruments {
            self.book_levels(book_index(instrument, side))
        } else {
            &[]
        };
        levels.iter().rev().map(move |level| {
            let (mut qty, mut count) = (0u64, 0u32);
            let mut i = level.head;
            while i != NIL {
                qty += u64::from(self.orders[i as usize].leaves);
                count += 1;
                i = self.orders[i as usize].level_next;
            }
            (level.price, qty, count)
        })
    }

    /// The best price of one side of a book.
    pub fn best(&self, instrument: u32, side: Side) -> Option<i64> {
        if instrument == 0 || instrument > self.config.instruments {
            return None;
        }
        self.book_levels(book_index(instrument, side))
            .last()
            .map(|l| l.price)
    }

    /// Returns the engine to the state [`MatchingEngine::new`] left it in,
    /// allocating nothing: every resting order is taken out (through the
    /// same unlinking a cancel does), order and exec ids start again at
    /// `first_order_id` and 1, each instrument's collar reference is the
    /// configured one again, the key limits are cleared and the counters
    /// zeroed. No event is sent. O(resting orders + instruments), plus the
    /// key-limits table when limits were installed; only between two
    /// commands (panics if one is unfinished). For fuzz targets and
    /// simulations that reuse one engine for many runs instead of building
    /// one per run.
    pub fn reset(&mut self) {
        assert!(self.is_idle(), "MatchingEngine::reset mid-command");
        for book in 0..self.level_counts.len() {
            let base = book * self.config.levels_per_side_max;
            while self.level_counts[book] > 0 {
                let top = base + self.level_counts[book] as usize - 1;
                let index = self.levels[top].head;
                self.remove_resting(index);
            }
        }
        debug_assert_eq!(self.orders_live, 0);
        for (i, state) in self.instruments.iter_mut().enumerate() {
            let instrument = i as u32 + 1;
            let over = self
                .config
                .instrument_risk
                .iter()
                .find(|r| r.instrument == instrument)
                .copied()
                .unwrap_or(InstrumentRisk::new(instrument));
            state.reference = over.reference.unwrap_or(0);
            state.has_reference = over.reference.is_some();
        }
        if !self.limits.is_empty() {
            self.limits_table.clear();
            self.limits.clear();
        }
        self.order_id_next = self.config.first_order_id;
        self.exec_id_next = 1;
        self.counters = EngineCounters::default();
    }

    // ----- hashing and lookup ------------------------------------------------

    #[inline]
    fn hash(&self, a: u64, b: u64) -> u32 {
        let h = fold(a ^ self.hash_keys[0], b ^ self.hash_keys[1]);
        let h = fold(h, self.hash_keys[2]);
        (h ^ (h >> 32)) as u32
    }

    #[inline]
    fn order_hash(&self, session: SessionId, cl_ord_id: u64) -> u32 {
        self.hash(session.0, cl_ord_id)
    }

    #[inline]
    fn session_hash(&self, session: SessionId) -> u32 {
        self.hash(session.0, 0x5e55_1011_5e55_1011)
    }

    #[inline]
    fn find_order(&self, session: SessionId, cl_ord_id: u64) -> Option<(usize, u32)> {
        let hash = self.order_hash(session, cl_ord_id);
        self.by_id.find(hash, |i| {
            let o = &self.orders[i as usize];
            o.cl_ord_id == cl_ord_id && o.session == session
        })
    }

    #[inline]
    fn find_session(&self, session: SessionId) -> Option<(usize, u32)> {
        let hash = self.session_hash(session);
        self.by_session
            .find(hash, |i| self.orders[i as usize].session == session)
    }

    #[inline]
    fn key_hash(&self, key_id: u64) -> u32 {
        self.hash(key_id, 0x6b65_795f_6b65_795f)
    }

    /// The record of `key_id`, if the key has resting orders.
    #[inline]
    fn find_key(&self, key_id: u64) -> Option<(usize, u32)> {
        let hash = self.key_hash(key_id);
        self.by_key
            .find(hash, |i| self.keys[i as usize].key_id == key_id)
    }

    /// The engine-side limits of `key_id` (None: the key has none).
    #[inline]
    fn limits_of(&self, key_id: u64) -> Option<KeyLimits> {
        if self.limits.is_empty() {
            return None;
        }
        let hash = self.key_hash(key_id);
        self.limits_table
            .find(hash, |i| self.limits[i as usize].key_id == key_id)
            .map(|(_, i)| self.limits[i as usize])
    }

    // ----- keys --------------------------------------------------------------

    /// The record of `key_id`, taken from the free list if the key has none.
    /// The caller has checked that one is free (validation).
    fn key_record(&mut self, key_id: u64) -> u32 {
        if let Some((_, k)) = self.find_key(key_id) {
            return k;
        }
        let k = self.key_free;
        assert!(k != NIL, "key records full at rest (checked at validation)");
        self.key_free = self.keys[k as usize].head;
        self.keys[k as usize] = KeyRecord {
            key_id,
            ..KeyRecord::FREE
        };
        let hash = self.key_hash(key_id);
        self.by_key.insert(hash, k);
        k
    }

    /// Appends a new resting node to its key's list (`orders[index].key` set).
    fn key_link(&mut self, index: u32) {
        let k = self.orders[index as usize].key as usize;
        let record = &mut self.keys[k];
        record.orders += 1;
        let head = record.head;
        if head == NIL {
            record.head = index;
            self.key_links[index as usize] = KeyLink {
                prev: index,
                next: index,
            };
        } else {
            let tail = self.key_links[head as usize].prev;
            self.key_links[tail as usize].next = index;
            self.key_links[head as usize].prev = index;
            self.key_links[index as usize] = KeyLink {
                prev: tail,
                next: head,
            };
        }
    }

    /// Takes a node out of its key's list; frees the record when the key
    /// has no resting order left.
    fn key_unlink(&mut self, index: u32) {
        let k = self.orders[index as usize].key as usize;
        let KeyLink { prev, next } = self.key_links[index as usize];
        self.key_links[index as usize] = KeyLink::NONE;
        let record = &mut self.keys[k];
        record.orders -= 1;
        if record.orders == 0 {
            debug_assert_eq!(
                record.open_notional, 0,
                "a key without orders has none open"
            );
            let key_id = record.key_id;
            let (pos, _) = self.find_key(key_id).expect("a used record is in by_key");
            self.by_key.remove_at(pos);
            self.keys[k] = KeyRecord {
                head: self.key_free,
                ..KeyRecord::FREE
            };
            self.key_free = k as u32;
            return;
        }
        self.key_links[prev as usize].next = next;
        self.key_links[next as usize].prev = prev;
        if record.head == index {
            record.head = next;
        }
    }

    // ----- price collars -----------------------------------------------------

    /// Whether an order on `side` at `price` is inside `instrument`'s
    /// collar: `price > 0` unless the instrument allows it, and with a
    /// reference, a buy at most `reference + band`, a sell at least
    /// `reference − band`, `band = max(1, |reference| × collar_bps / 10^4)`.
    #[inline]
    fn price_in_band(&self, instrument: u32, side: Side, price: i64) -> bool {
        let state = &self.instruments[instrument as usize - 1];
        if price <= 0 && !state.nonpositive_prices {
            return false;
        }
        if !state.has_reference {
            return true;
        }
        // |reference| × bps / 10^4, exactly and in u64 (bps ≤ 10^4).
        let magnitude = state.reference.unsigned_abs();
        let bps = u64::from(state.collar_bps);
        let band = (magnitude / 10_000 * bps + magnitude % 10_000 * bps / 10_000).max(1);
        let (price, reference, band) = (
            i128::from(price),
            i128::from(state.reference),
            i128::from(band),
        );
        match side {
            Side::Buy => price <= reference + band,
            Side::Sell => price >= reference - band,
        }
    }
    // ----- levels ------------------------------------------------------------

    #[inline]
    fn book_levels(&self, book: usize) -> &[Level] {
        let base = book * self.config.levels_per_side_max;
        &self.levels[base..base + self.level_counts[book] as usize]
    }

    /// Position of `price` among the book's active levels (worst first).
    #[inline]
    fn find_level(&self, book: usize, side: Side, price: i64) -> Result<usize, usize> {
        self.book_levels(book)
            .binary_search_by(|level| -> Ordering {
                match side {
                    Side::Buy => level.price.cmp(&price),
                    Side::Sell => price.cmp(&level.price),
                }
            })
    }

    fn level_full(&self, book: usize) -> bool {
        self.level_counts[book] as usize == self.config.levels_per_side_max
    }

    /// Appends a node (fields already set, level links not) to the back of
    /// its price level, opening the level if needed.
    fn level_append(&mut self, index: u32) {
        let o = self.orders[index as usize];
        self.keys[o.key as usize].open_notional += notional(o.price, o.leaves);
        let book = book_index(o.instrument, o.side);
        let base = book * self.config.levels_per_side_max;
        match self.find_level(book, o.side, o.price) {
            Ok(pos) => {
                let level = &mut self.levels[base + pos];
                let tail = level.tail;
                level.tail = index;
                self.orders[tail as usize].level_next = index;
                self.orders[index as usize].level_prev = tail;
            }
            Err(pos) => {
                let count = self.level_counts[book] as usize;
                assert!(count < self.config.levels_per_side_max, "level array full");
                self.levels
                    .copy_within(base + pos..base + count, base + pos + 1);
                self.levels[base + pos] = Level {
                    price: o.price,
                    head: index,
                    tail: index,
                };
                self.level_counts[book] += 1;
                self.orders[index as usize].level_prev = NIL;
            }
        }
        self.orders[index as usize].level_next = NIL;
    }

    /// Takes a node out of the level at `pos` of `book`, closing the level
    /// when it empties.
    fn level_unlink(&mut self, book: usize, pos: usize, index: u32) {
        let base = book * self.config.levels_per_side_max;
        let Order {
            level_prev: prev,
            level_next: next,
            key,
            price,
            leaves,
            ..
        } = self.orders[index as usize];
        self.keys[key as usize].open_notional -= notional(price, leaves);
        if prev != NIL {
            self.orders[prev as usize].level_next = next;
        } else {
            self.levels[base + pos].head = next;
        }
        if next != NIL {
            self.orders[next as usize].level_prev = prev;
        } else {
            self.levels[base + pos].tail = prev;
        }
        if self.levels[base + pos].head == NIL {
            let count = self.level_counts[book] as usize;
            self.levels
                .copy_within(base + pos + 1..base + count, base + pos);
            self.level_counts[book] -= 1;
        }
    }

    /// Takes a resting node out of its level, finding the level by price.
    fn level_unlink_found(&mut self, index: u32) {
        let o = self.orders[index as usize];
        let book = book_index(o.instrument, o.side);
        let pos = self
            .find_level(book, o.side, o.price)
            .expect("a resting order's level is active");
        self.level_unlink(book, pos, index);
    }

    // ----- session lists -----------------------------------------------------

    fn session_link(&mut self, index: u32) {
        let session = self.orders[index as usize].session;
        match self.find_session(session) {
            Some((_, head)) => {
                let tail = self.orders[head as usize].session_prev;
                self.orders[tail as usize].session_next = index;
                self.orders[head as usize].session_prev = index;
                let o = &mut self.orders[index as usize];
                o.session_prev = tail;
                o.session_next = head;
                o.session_head = false;
            }
            None => {
                let o = &mut self.orders[index as usize];
                o.session_prev = index;
                o.session_next = index;
                o.session_head = true;
                let hash = self.session_hash(session);
                self.by_session.insert(hash, index);
            }
        }
    }

    fn session_unlink(&mut self, index: u32) {
        let o = self.orders[index as usize];
        if o.session_next != index {
            self.orders[o.session_prev as usize].session_next = o.session_next;
            self.orders[o.session_next as usize].session_prev = o.session_prev;
        }
        if o.session_head {
            let (pos, head) = self
                .find_session(o.session)
                .expect("a session head is in by_session");
            debug_assert_eq!(head, index);
            if o.session_next == index {
                self.by_session.remove_at(pos);
            } else {
                self.by_session.slots[pos].index = o.session_next;
                self.orders[o.session_next as usize].session_head = true;
            }
        }
    }

    // ----- order nodes -------------------------------------------------------

    /// Drops a node that is in no level: its session list, its lookup entry,
    /// and the pool.
    fn forget(&mut self, index: u32) {
        self.session_unlink(index);
        self.key_unlink(index);
        let o = self.orders[index as usize];
        let (pos, _) = self
            .find_order(o.session, o.cl_ord_id)
            .expect("a live order is in by_id");
        self.by_id.remove_at(pos);
        self.orders[index as usize] = Order {
            level_next: self.free_head,
            ..Order::FREE
        };
        self.free_head = index;
        self.orders_live -= 1;
    }

    /// Cancels or fully fills a resting order: out of everything.
    fn remove_resting(&mut self, index: u32) {
        self.level_unlink_found(index);
        self.forget(index);
    }

    /// Puts the aggressor's remainder in the book.
    fn rest(&mut self, a: &Aggressor) {
        let index = if a.node != NIL {
            let o = &mut self.orders[a.node as usize];
            o.leaves = a.leaves;
            a.node
        } else {
            let index = self.free_head;
            assert!(
                index != NIL,
                "order pool empty at rest (checked at validation)"
            );
            self.free_head = self.orders[index as usize].level_next;
            self.orders[index as usize] = Order {
                session: a.session,
                cl_ord_id: a.cl_ord_id,
                order_id: a.order_id,
                price: a.price,
                leaves: a.leaves,
                instrument: a.instrument,
                side: a.side,
                ..Order::FREE
            };
            self.orders_live += 1;
            self.session_link(index);
            self.orders[index as usize].key = self.key_record(a.key_id);
            self.key_link(index);
            let hash = self.order_hash(a.session, a.cl_ord_id);
            self.by_id.insert(hash, index);
            index
        };
        self.level_append(index);
    }

    /// What an aggressor on `side` at `price` for `qty` could take from the
    /// opposite side: quantity (at most `qty`), resting orders touched and
    /// the notional of those fills. Walks only the orders it would trade
    /// with (the matching that follows walks them again).
    fn crossing(&self, instrument: u32, side: Side, price: i64, qty: u32) -> Crossing {
        let mut x = Crossing::default();
        for level in self
            .book_levels(book_index(instrument, opposite(side)))
            .iter()
            .rev()
        {
            if !crosses(side, price, level.price) {
                break;
            }
            let mut i = level.head;
            while i != NIL {
                let take = self.orders[i as usize].leaves.min(qty - x.taken);
                x.taken += take;
                x.orders += 1;
                x.notional += notional(level.price, take);
                if x.taken == qty {
                    return x;
                }
                i = self.orders[i as usize].level_next;
            }
        }
        x
    }

    /// The key risk checks of an order of `key_id` that would cross with
    /// `x` and rest `rest_qty` at `price`, replacing `replaced` notional of
    /// the key's open orders (a replace; 0 for a new order).
    fn risk_check(
        &self,
        limits: KeyLimits,
        x: Crossing,
        price: i64,
        rest_qty: u32,
        replaced: u128,
    ) -> Option<RejectReason> {
        let rest = notional(price, rest_qty);
        if limits.max_order_notional != 0
            && x.notional + rest > u128::from(limits.max_order_notional)
        {
            return Some(RejectReason::RISK_MAX_NOTIONAL);
        }
        if limits.max_open_notional != 0 {
            let open = self
                .find_key(limits.key_id)
                .map_or(0, |(_, k)| self.keys[k as usize].open_notional);
            let after = open - replaced + rest;
            // A change that does not raise the open notional is always
            // allowed (the limit may have been lowered under it).
            if after > open && after > u128::from(limits.max_open_notional) {
                return Some(RejectReason::RISK_MAX_OPEN_NOTIONAL);
            }
        }
        None
    }

    // ----- commands ----------------------------------------------------------

    fn reject(&mut self, c: &Command, reason: RejectReason) -> Work {
        self.counters.rejects += 1;
        match reason {
            RejectReason::PRICE_OUT_OF_BAND => self.counters.price_rejects += 1,
            RejectReason::RISK_MAX_NOTIONAL => self.counters.notional_rejects += 1,
            RejectReason::RISK_MAX_OPEN_NOTIONAL => self.counters.open_notional_rejects += 1,
            _ => {}
        }
        Work::Single(Event {
            cl_ord_id: c.cl_ord_id,
            reason: EventReason::Reject(reason),
            ..Event::empty(EventKind::Rejected, c.session)
        })
    }

    /// Validates a command and makes the changes that precede its first
    /// event; returns what is left to send.
    fn begin(&mut self, c: &Command) -> Work {
        match c.kind {
            CommandKind::NewOrder => self.begin_new_order(c),
            CommandKind::Cancel => self.begin_cancel(c),
            CommandKind::Replace => self.begin_replace(c),
            CommandKind::MassCancel => {
                if c.instrument_id > self.config.instruments {
                    return self.reject(c, RejectReason::UNKNOWN_INSTRUMENT);
                }
                if c.side > 2 {
                    return self.reject(c, RejectReason::INVALID_FIELD);
                }
                self.begin_sweep(c, c.instrument_id, c.side, CancelReason::MASS_CANCEL, true)
            }
            CommandKind::CancelOnDisconnect => {
                self.begin_sweep(c, 0, 0, CancelReason::CANCEL_ON_DISCONNECT, false)
            }
            // Ends with a MassCancelAck carrying the command's cl_ord_id: the
            // gateway holds the revoked session open until it arrives, so
            // every OrderCanceled KEY_REVOKED reaches the client before its
            // Terminate KEY_REVOKED. The ack itself is not sent on.
            CommandKind::CancelForRevocation => {
                self.begin_sweep(c, 0, 0, CancelReason::KEY_REVOKED, true)
            }
            CommandKind::CancelForKey => {
                self.counters.key_sweeps += 1;
                let cursor = self
                    .find_key(c.key_id)
                    .map_or(NIL, |(_, k)| self.keys[k as usize].head);
                Work::Sweep(Sweep {
                    session: c.session,
                    cl_ord_id: c.key_id,
                    by_key: true,
                    tag: c.orig_cl_ord_id,
                    instrument: 0,
                    side: 0,
                    reason: CancelReason::KEY_REVOKED,
                    ack: true,
                    cursor,
                    first_kept: NIL,
                    count: 0,
                })
            }
        }
    }

    fn begin_new_order(&mut self, c: &Command) -> Work {
        if c.instrument_id == 0 || c.instrument_id > self.config.instruments {
            return self.reject(c, RejectReason::UNKNOWN_INSTRUMENT);
        }
        let (Some(side), Some(OrdType::Limit), Some(tif), true) = (
            Side::from_wire(c.side),
            OrdType::from_wire(c.ord_type),
            Tif::from_wire(c.tif),
            c.qty > 0,
        ) else {
            return self.reject(c, RejectReason::INVALID_FIELD);
        };
        if self.find_order(c.session, c.cl_ord_id).is_some() {
            return self.reject(c, RejectReason::DUPLICATE_ORDER_ID);
        }
        if !self.price_in_band(c.instrument_id, side, c.price) {
            return self.reject(c, RejectReason::PRICE_OUT_OF_BAND);
        }
        let day = tif == Tif::Day;
        // The crossing liquidity is scanned only when a check needs it: the
        // key has engine-side limits, or a capacity limit is reached.
        let mut scan = None;
        if let Some(limits) = self.limits_of(c.key_id) {
            let x = self.crossing(c.instrument_id, side, c.price, c.qty);
            let rest_qty = if day { c.qty - x.taken } else { 0 };
            if let Some(reason) = self.risk_check(limits, x, c.price, rest_qty, 0) {
                return self.reject(c, reason);
            }
            scan = Some(x);
        }
        if day {
            let book = book_index(c.instrument_id, side);
            let pool_full = self.free_head == NIL;
            let level_blocked =
                self.level_full(book) && self.find_level(book, side, c.price).is_err();
            let key_blocked = self.key_free == NIL && self.find_key(c.key_id).is_none();
            if pool_full || level_blocked || key_blocked {
                let x =
                    scan.unwrap_or_else(|| self.crossing(c.instrument_id, side, c.price, c.qty));
                let rests = x.taken < c.qty;
                // A remainder means every crossing order was taken, and each
                // of those frees a node.
                if rests && ((pool_full && x.orders == 0) || level_blocked || key_blocked) {
                    return self.reject(c, RejectReason::ENGINE_REJECT);
                }
            }
        }
        let order_id = self.order_id_next;
        self.order_id_next += 1;
        Work::Match(Aggressor {
            session: c.session,
            key_id: c.key_id,
            cl_ord_id: c.cl_ord_id,
            order_id,
            price: c.price,
            leaves: c.qty,
            instrument: c.instrument_id,
            side,
            ioc: tif == Tif::ImmediateOrCancel,
            announce: true,
            node: NIL,
        })
    }

    /// The live order `c` names by `orig_cl_ord_id` on `c.instrument_id`.
    fn named_order(&self, c: &Command) -> Option<(usize, u32)> {
        self.find_order(c.session, c.orig_cl_ord_id)
            .filter(|&(_, i)| self.orders[i as usize].instrument == c.instrument_id)
    }

    fn begin_cancel(&mut self, c: &Command) -> Work {
        let Some((_, index)) = self.named_order(c) else {
            return self.reject(c, RejectReason::UNKNOWN_ORDER);
        };
        let o = self.orders[index as usize];
        self.remove_resting(index);
        Work::Single(Event {
            cl_ord_id: c.cl_ord_id,
            order_id: o.order_id,
            qty: o.leaves,
            reason: EventReason::Cancel(CancelReason::USER),
            ..Event::empty(EventKind::Canceled, c.session)
        })
    }

    fn begin_replace(&mut self, c: &Command) -> Work {
        if c.qty == 0 {
            return self.reject(c, RejectReason::INVALID_FIELD);
        }
        let Some((pos, index)) = self.named_order(c) else {
            return self.reject(c, RejectReason::UNKNOWN_ORDER);
        };
        if c.cl_ord_id != c.orig_cl_ord_id && self.find_order(c.session, c.cl_ord_id).is_some() {
            return self.reject(c, RejectReason::DUPLICATE_ORDER_ID);
        }
        let o = self.orders[index as usize];
        let keeps_priority = c.price == o.price && c.qty <= o.leaves;
        if c.price != o.price && !self.price_in_band(o.instrument, o.side, c.price) {
            return self.reject(c, RejectReason::PRICE_OUT_OF_BAND);
        }
        // Keeping priority only lowers the order: no risk check.
        let key_id = self.keys[o.key as usize].key_id;
        if !keeps_priority && let Some(limits) = self.limits_of(key_id) {
            let x = self.crossing(o.instrument, o.side, c.price, c.qty);
            let replaced = notional(o.price, o.leaves);
            if let Some(reason) = self.risk_check(limits, x, c.price, c.qty - x.taken, replaced) {
                return self.reject(c, reason);
            }
        }
        if !keeps_priority && c.price != o.price {
            let book = book_index(o.instrument, o.side);
            let alone = o.level_prev == NIL && o.level_next == NIL;
            // Leaving a level it is alone in frees that level first.
            let level_blocked =
                !alone && self.level_full(book) && self.find_level(book, o.side, c.price).is_err();
            if level_blocked {
                let x = self.crossing(o.instrument, o.side, c.price, c.qty);
                if x.taken < c.qty {
                    return self.reject(c, RejectReason::ENGINE_REJECT);
                }
            }
        }
        // Re-key: from now on the order is known by the replace's cl_ord_id.
        if c.cl_ord_id != c.orig_cl_ord_id {
            self.by_id.remove_at(pos);
            self.orders[index as usize].cl_ord_id = c.cl_ord_id;
            let hash = self.order_hash(c.session, c.cl_ord_id);
            self.by_id.insert(hash, index);
        }
        if keeps_priority {
            self.keys[o.key as usize].open_notional -= notional(o.price, o.leaves - c.qty);
            self.orders[index as usize].leaves = c.qty;
            return Work::Single(Event {
                cl_ord_id: c.cl_ord_id,
                order_id: o.order_id,
                leaves_qty: c.qty,
                ..Event::empty(EventKind::Replaced, c.session)
            });
        }
        self.level_unlink_found(index);
        let node = &mut self.orders[index as usize];
        node.price = c.price;
        node.leaves = c.qty;
        Work::Match(Aggressor {
            session: c.session,
            key_id,
            cl_ord_id: c.cl_ord_id,
            order_id: o.order_id,
            price: c.price,
            leaves: c.qty,
            instrument: o.instrument,
            side: o.side,
            ioc: false,
            announce: true,
            node: index,
        })
    }

    fn begin_sweep(
        &mut self,
        c: &Command,
        instrument: u32,
        side: u8,
        reason: CancelReason,
        ack: bool,
    ) -> Work {
        let cursor = self.find_session(c.session).map_or(NIL, |(_, head)| head);
        Work::Sweep(Sweep {
            session: c.session,
            cl_ord_id: c.cl_ord_id,
            by_key: false,
            tag: 0,
            instrument,
            side,
            reason,
            ack,
            cursor,
            first_kept: NIL,
            count: 0,
        })
    }

    // ----- steps -------------------------------------------------------------

    /// Runs the current command's steps until it is done (`true`) or a step
    /// finds no room (`false`).
    fn run<S: EventSink>(&mut self, now: Nanos, out: &mut S) -> bool {
        let done = match self.work {
            Work::Idle => true,
            Work::Single(event) => {
                if out.room(event.session) >= 1 {
                    out.emit(&Event {
                        transact_time_ns: now,
                        ..event
                    });
                    true
                } else {
                    false
                }
            }
            Work::Match(mut a) => {
                let done = self.run_match(now, &mut a, out);
                self.work = Work::Match(a);
                done
            }
            Work::Sweep(mut s) => {
                let done = self.run_sweep(now, &mut s, out);
                self.work = Work::Sweep(s);
                done
            }
        };
        if done {
            self.work = Work::Idle;
        } else {
            self.counters.stalls += 1;
        }
        done
    }

    /// Sends Accepted / Replaced if it is still owed (room already checked).
    #[inline]
    fn announce<S: EventSink>(&mut self, now: Nanos, a: &mut Aggressor, out: &mut S) {
        if !a.announce {
            return;
        }
        a.announce = false;
        let event = if a.node == NIL {
            Event::empty(EventKind::Accepted, a.session)
        } else {
            Event {
                leaves_qty: a.leaves,
                ..Event::empty(EventKind::Replaced, a.session)
            }
        };
        out.emit(&Event {
            cl_ord_id: a.cl_ord_id,
            order_id: a.order_id,
            transact_time_ns: now,
            ..event
        });
    }

    fn run_match<S: EventSink>(&mut self, now: Nanos, a: &mut Aggressor, out: &mut S) -> bool {
        let book = book_index(a.instrument, opposite(a.side));
        let base = book * self.config.levels_per_side_max;
        loop {
            // Accepted / Replaced rides with the first action.
            let owed = usize::from(a.announce);
            let count = self.level_counts[book] as usize;
            let best = if count > 0 {
                let level = self.levels[base + count - 1];
                crosses(a.side, a.price, level.price).then_some(level)
            } else {
                None
            };
            let Some(level) = best else {
                // Nothing (more) to trade with: the remainder is canceled or rests.
                let needed = owed + usize::from(a.ioc);
                if needed > 0 && out.room(a.session) < needed {
                    return false;
                }
                self.announce(now, a, out);
                if a.ioc {
                    out.emit(&Event {
                        cl_ord_id: a.cl_ord_id,
                        order_id: a.order_id,
                        transact_time_ns: now,
                        qty: a.leaves,
                        reason: EventReason::Cancel(CancelReason::IMMEDIATE_OR_CANCEL),
                        ..Event::empty(EventKind::Canceled, a.session)
                    });
                } else {
                    self.rest(a);
                }
                return true;
            };
            let resting_index = level.head;
            let resting = self.orders[resting_index as usize];
            if !room_for(out, a.session, owed + 1, resting.session, 1) {
                return false;
            }
            self.announce(now, a, out);
            let qty = a.leaves.min(resting.leaves);
            a.leaves -= qty;
            let resting_leaves = resting.leaves - qty;
            let exec_id = self.exec_id_next;
            self.exec_id_next += 1;
            self.counters.matches += 1;
            // The last trade is the collar's reference from now on.
            let state = &mut self.instruments[a.instrument as usize - 1];
            state.reference = level.price;
            state.has_reference = true;
            let fill = Event {
                exec_id,
                transact_time_ns: now,
                price: level.price,
                qty,
                ..Event::empty(EventKind::Fill, a.session)
            };
            out.emit(&Event {
                cl_ord_id: a.cl_ord_id,
                order_id: a.order_id,
                leaves_qty: a.leaves,
                ..fill
            });
            out.emit(&Event {
                session: resting.session,
                cl_ord_id: resting.cl_ord_id,
                order_id: resting.order_id,
                leaves_qty: resting_leaves,
                ..fill
            });
            if resting_leaves == 0 {
                self.level_unlink(book, count - 1, resting_index);
                self.forget(resting_index);
            } else {
                self.keys[resting.key as usize].open_notional -= notional(level.price, qty);
                self.orders[resting_index as usize].leaves = resting_leaves;
            }
            if a.leaves == 0 {
                if a.node != NIL {
                    self.forget(a.node);
                }
                return true;
            }
        }
    }

    fn run_sweep<S: EventSink>(&mut self, now: Nanos, s: &mut Sweep, out: &mut S) -> bool {
        while s.cursor != NIL {
            let index = s.cursor;
            let o = self.orders[index as usize];
            let next = if s.by_key {
                self.key_links[index as usize].next
            } else {
                o.session_next
            };
            // Back at the first kept order, or alone in the list: the walk
            // ends after this order (only visited orders are ever removed).
            let last = next == index || next == s.first_kept;
            let selected = (s.instrument == 0 || s.instrument == o.instrument)
                && (s.side == 0 || s.side == o.side as u8);
            if selected {
                // A key's orders belong to many sessions: each is told.
                let to = if s.by_key { o.session } else { s.session };
                if out.room(to) < 1 {
                    return false;
                }
                out.emit(&Event {
                    cl_ord_id: o.cl_ord_id,
                    order_id: o.order_id,
                    transact_time_ns: now,
                    qty: o.leaves,
                    reason: EventReason::Cancel(s.reason),
                    ..Event::empty(EventKind::Canceled, to)
                });
                self.remove_resting(index);
                s.count += 1;
            } else if s.first_kept == NIL {
                s.first_kept = index;
            }
            s.cursor = if last { NIL } else { next };
        }
        if s.ack {
            if out.room(s.session) < 1 {
                return false;
            }
            let ack = if s.by_key {
                self.counters.key_sweep_canceled += u64::from(s.count);
                Event {
                    order_id: s.tag,
                    ..Event::empty(EventKind::KeySwept, s.session)
                }
            } else {
                Event::empty(EventKind::MassCancelAck, s.session)
            };
            out.emit(&Event {
                cl_ord_id: s.cl_ord_id,
                transact_time_ns: now,
                qty: s.count,
                ..ack
            });
        }
        true
    }

    // ----- audit -------------------------------------------------------------

    /// Checks every structural invariant (O(everything)); panics on the first
    /// broken one. For tests and debugging, never the hot path. Only valid
    /// while idle.
    pub fn assert_consistent(&self) {
        assert!(self.is_idle(), "audit of an unfinished command");
        let l = self.config.levels_per_side_max;
        let mut in_levels = 0usize;
        for instrument in 1..=self.config.instruments {
            for side in [Side::Buy, Side::Sell] {
                let book = book_index(instrument, side);
                let levels = self.book_levels(book);
                assert!(levels.len() <= l);
                for pair in levels.windows(2) {
                    // Worst first, strictly.
                    assert!(crosses(opposite(side), pair[0].price, pair[1].price));
                    assert_ne!(pair[0].price, pair[1].price);
                }
                for level in levels {
                    assert!(level.head != NIL && level.tail != NIL, "empty level");
                    let (mut i, mut prev) = (level.head, NIL);
                    while i != NIL {
                        let o = &self.orders[i as usize];
                        assert_eq!(o.level_prev, prev);
                        assert_eq!(
                            (o.instrument, o.side, o.price),
                            (instrument, side, level.price)
                        );
                        assert!(o.leaves > 0);
                        let found = self.find_order(o.session, o.cl_ord_id);
                        assert_eq!(found.map(|f| f.1), Some(i), "order not in by_id");
                        in_levels += 1;
                        prev = i;
                        i = o.level_next;
                    }
                    assert_eq!(level.tail, prev);
                }
            }
            let bid = self.best(instrument, Side::Buy);
            let ask = self.best(instrument, Side::Sell);
            if let (Some(bid), Some(ask)) = (bid, ask) {
                assert!(bid < ask, "book {instrument} crossed: {bid} >= {ask}");
            }
        }
        assert_eq!(in_levels, self.orders_live);
        assert_eq!(self.by_id.len, self.orders_live);
        let mut free = 0usize;
        let mut i = self.free_head;
        while i != NIL {
            free += 1;
            assert!(free <= self.config.orders_max, "free list cycle");
            i = self.orders[i as usize].level_next;
        }
        assert_eq!(free + self.orders_live, self.config.orders_max);
        let mut in_sessions = 0usize;
        for slot in self.by_session.slots.iter().filter(|s| s.index != NIL) {
            let head = slot.index;
            let session = self.orders[head as usize].session;
            assert!(self.orders[head as usize].session_head);
            assert_eq!(self.find_session(session).map(|f| f.1), Some(head));
            let mut i = head;
            loop {
                let o = &self.orders[i as usize];
                assert_eq!(o.session, session);
                assert_eq!(self.orders[o.session_next as usize].session_prev, i);
                assert_eq!(o.session_head, i == head);
                in_sessions += 1;
                assert!(in_sessions <= self.orders_live, "session list cycle");
                i = o.session_next;
                if i == head {
                    break;
                }
            }
        }
        assert_eq!(in_sessions, self.orders_live);

        // Key records: each used one is in by_key, its circular list holds
        // exactly its orders, and its open notional is theirs.
        let mut in_keys = 0usize;
        let mut used = 0usize;
        for (k, record) in self.keys.iter().enumerate() {
            if record.orders == 0 {
                continue;
            }
            used += 1;
            assert_eq!(
                self.find_key(record.key_id).map(|f| f.1),
                Some(k as u32),
                "key record not in by_key"
            );
            let (mut i, mut count, mut open) = (record.head, 0u32, 0u128);
            loop {
                let o = &self.orders[i as usize];
                assert_eq!(o.key, k as u32, "order in another key's list");
                let link = self.key_links[i as usize];
                assert_eq!(self.key_links[link.next as usize].prev, i);
                open += notional(o.price, o.leaves);
                count += 1;
                assert!(count as usize <= self.orders_live, "key list cycle");
                i = link.next;
                if i == record.head {
                    break;
                }
            }
            assert_eq!(count, record.orders);
            assert_eq!(
                open, record.open_notional,
                "open notional of key {}",
                record.key_id
            );
            in_keys += count as usize;
        }
        assert_eq!(in_keys, self.orders_live);
        assert_eq!(self.by_key.len, used);
        let mut free = 0usize;
        let mut k = self.key_free;
        while k != NIL {
            free += 1;
            assert!(free <= self.config.keys_max, "key free list cycle");
            assert_eq!(self.keys[k as usize].orders, 0);
            k = self.keys[k as usize].head;
        }
        assert_eq!(free + used, self.config.keys_max);
    }
}

impl Engine for MatchingEngine {
    fn submit<S: EventSink>(&mut self, now: Nanos, command: &Command, out: &mut S) -> bool {
        debug_assert!(
            self.is_idle(),
            "MatchingEngine::submit while a command is unfinished: resume first"
        );
        if !self.is_idle() {
            return false;
        }
        self.counters.commands += 1;
        self.work = self.begin(command);
        self.run(now, out)
    }

    fn resume<S: EventSink>(&mut self, now: Nanos, out: &mut S) -> bool {
        self.run(now, out)
    }

    /// Replaces every key's limits; allocates nothing (the table and the
    /// list are sized for `KEYS_MAX` at start-up). Keys with no limit set
    /// are left out. Panics beyond `KEYS_MAX` keys (no key table holds more).
    fn set_key_limits(&mut self, limits: &[KeyLimits]) {
        assert!(
            limits.len() <= KEYS_MAX,
            "more key limits than a key table can hold"
        );
        debug_assert!(self.is_idle(), "limits change between commands only");
        self.limits_table.clear();
        self.limits.clear();
        for l in limits {
            if (l.max_order_notional == 0 && l.max_open_notional == 0)
                || self.limits_of(l.key_id).is_some()
            {
                continue;
            }
            let hash = self.key_hash(l.key_id);
            self.limits_table.insert(hash, self.limits.len() as u32);
            self.limits.push(*l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NOW: Nanos = 1_000;
    /// Reactor 0.
    const A: SessionId = SessionId::new(0, 1, 1);
    /// Reactor 1.
    const B: SessionId = SessionId::new(1, 1, 1);
    /// Reactor 0, like A.
    const A2: SessionId = SessionId::new(0, 2, 1);
    /// Reactor 2.
    const C: SessionId = SessionId::new(2, 1, 1);
    const UNLIMITED: usize = usize::MAX;
    const BUY: Side = Side::Buy;
    const SELL: Side = Side::Sell;

    fn config() -> EngineConfig {
        EngineConfig {
            instruments: 100,
            orders_max: 4096,
            levels_per_side_max: 64,
            first_order_id: 1,
            ..EngineConfig::default()
        }
    }

    fn engine() -> MatchingEngine {
        MatchingEngine::new(config())
    }

    /// Collects events; `room` per reactor shrinks as events are sent, and
    /// sending beyond what `room` promised fails the test.
    struct Sink {
        events: Vec<Event>,
        room: [usize; 4],
    }

    impl Sink {
        fn new(room: usize) -> Sink {
            Sink {
                events: Vec::new(),
                room: [room; 4],
            }
        }
    }

    impl EventSink for Sink {
        fn room(&mut self, session: SessionId) -> usize {
            self.room[session.reactor() as usize]
        }
        fn emit(&mut self, event: &Event) {
            let room = &mut self.room[event.session.reactor() as usize];
            assert!(*room > 0, "emit beyond the room promised: {event:?}");
            if *room != UNLIMITED {
                *room -= 1;
            }
            self.events.push(*event);
        }
    }

    /// Submits with unlimited room; the command must finish.
    fn run(e: &mut MatchingEngine, c: Command) -> Vec<Event> {
        let mut sink = Sink::new(UNLIMITED);
        assert!(e.submit(NOW, &c, &mut sink));
        e.assert_consistent();
        sink.events
    }

    fn new_order(s: SessionId, cl: u64, side: Side, price: i64, qty: u32) -> Command {
        new_order_on(s, cl, 1, side, price, qty)
    }

    fn new_order_on(
        s: SessionId,
        cl: u64,
        instr: u32,
        side: Side,
        price: i64,
        qty: u32,
    ) -> Command {
        Command {
            cl_ord_id: cl,
            price,
            qty,
            instrument_id: instr,
            side: side as u8,
            ord_type: OrdType::Limit as u8,
            tif: Tif::Day as u8,
            ..Command::empty(CommandKind::NewOrder, s)
        }
    }

    fn ioc(s: SessionId, cl: u64, side: Side, price: i64, qty: u32) -> Command {
        Command {
            tif: Tif::ImmediateOrCancel as u8,
            ..new_order(s, cl, side, price, qty)
        }
    }

    fn cancel(s: SessionId, cl: u64, orig: u64) -> Command {
        Command {
            cl_ord_id: cl,
            orig_cl_ord_id: orig,
            instrument_id: 1,
            ..Command::empty(CommandKind::Cancel, s)
        }
    }

    fn replace(s: SessionId, cl: u64, orig: u64, price: i64, qty: u32) -> Command {
        Command {
            cl_ord_id: cl,
            orig_cl_ord_id: orig,
            price,
            qty,
            instrument_id: 1,
            ..Command::empty(CommandKind::Replace, s)
        }
    }

    fn mass(s: SessionId, cl: u64, instr: u32, side: u8) -> Command {
        Command {
            cl_ord_id: cl,
            instrument_id: instr,
            side,
            ..Command::empty(CommandKind::MassCancel, s)
        }
    }

    fn accepted(s: SessionId, cl: u64, oid: u64) -> Event {
        Event {
            cl_ord_id: cl,
            order_id: oid,
            transact_time_ns: NOW,
            ..Event::empty(EventKind::Accepted, s)
        }
    }

    fn rejected(s: SessionId, cl: u64, reason: RejectReason) -> Event {
        Event {
            cl_ord_id: cl,
            transact_time_ns: NOW,
            reason: EventReason::Reject(reason),
            ..Event::empty(EventKind::Rejected, s)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fill(
        s: SessionId,
        cl: u64,
        oid: u64,
        exec: u64,
        price: i64,
        qty: u32,
        leaves: u32,
    ) -> Event {
        Event {
            cl_ord_id: cl,
            order_id: oid,
            exec_id: exec,
            transact_time_ns: NOW,
            price,
            qty,
            leaves_qty: leaves,
            ..Event::empty(EventKind::Fill, s)
        }
    }

    fn canceled(s: SessionId, cl: u64, oid: u64, qty: u32, reason: CancelReason) -> Event {
        Event {
            cl_ord_id: cl,
            order_id: oid,
            transact_time_ns: NOW,
            qty,
            reason: EventReason::Cancel(reason),
            ..Event::empty(EventKind::Canceled, s)
        }
    }

    fn replaced(s: SessionId, cl: u64, oid: u64, leaves: u32) -> Event {
        Event {
            cl_ord_id: cl,
            order_id: oid,
            transact_time_ns: NOW,
            leaves_qty: leaves,
            ..Event::empty(EventKind::Replaced, s)
        }
    }

    fn ack(s: SessionId, cl: u64, count: u32) -> Event {
        Event {
            cl_ord_id: cl,
            transact_time_ns: NOW,
            qty: count,
            ..Event::empty(EventKind::MassCancelAck, s)
        }
    }

    fn depth(e: &MatchingEngine, side: Side) -> Vec<(i64, u64, u32)> {
        e.depth(1, side).collect()
    }

    // ----- resting and crossing ----------------------------------------------

    #[test]
    fn non_crossing_order_rests_and_is_accepted() {
        let mut e = engine();
        assert_eq!(
            run(&mut e, new_order(A, 1, BUY, 100, 10)),
            [accepted(A, 1, 1)]
        );
        assert_eq!(
            run(&mut e, new_order(B, 1, SELL, 101, 7)),
            [accepted(B, 1, 2)]
        );
        assert_eq!(e.best(1, BUY), Some(100));
        assert_eq!(e.best(1, SELL), Some(101));
        assert_eq!(e.orders_live(), 2);
        let view = e.order(A, 1).unwrap();
        assert_eq!(
            (view.order_id, view.side, view.price, view.leaves_qty),
            (1, BUY, 100, 10)
        );
    }

    #[test]
    fn crossing_order_fills_fully_at_the_resting_price() {
        let mut e = engine();
        run(&mut e, new_order(B, 9, SELL, 100, 10));
        assert_eq!(
            run(&mut e, new_order(A, 1, BUY, 105, 10)),
            [
                accepted(A, 1, 2),
                fill(A, 1, 2, 1, 100, 10, 0),
                fill(B, 9, 1, 1, 100, 10, 0),
            ]
        );
        assert_eq!(e.orders_live(), 0);
        assert_eq!(e.best(1, SELL), None);
        assert_eq!(e.best(1, BUY), None);
    }

    #[test]
    fn partial_fills_leave_the_rest_open_on_either_side() {
        let mut e = engine();
        run(&mut e, new_order(B, 9, SELL, 100, 10));
        // The aggressor is the smaller one: the resting order keeps 6.
        assert_eq!(
            run(&mut e, new_order(A, 1, BUY, 100, 4)),
            [
                accepted(A, 1, 2),
                fill(A, 1, 2, 1, 100, 4, 0),
                fill(B, 9, 1, 1, 100, 4, 6),
            ]
        );
        assert_eq!(depth(&e, SELL), [(100, 6, 1)]);
        // The aggressor is the larger one: its remainder rests at its limit.
        assert_eq!(
            run(&mut e, new_order(A, 2, BUY, 102, 15)),
            [
                accepted(A, 2, 3),
                fill(A, 2, 3, 2, 100, 6, 9),
                fill(B, 9, 1, 2, 100, 6, 0),
            ]
        );
        assert_eq!(depth(&e, BUY), [(102, 9, 1)]);
        assert_eq!(depth(&e, SELL), []);
        assert_eq!(e.order(A, 2).unwrap().leaves_qty, 9);
    }

    #[test]
    fn sell_aggressor_trades_with_bids_at_or_above_its_limit() {
        let mut e = engine();
        run(&mut e, new_order(B, 1, BUY, 99, 5));
        run(&mut e, new_order(B, 2, BUY, 101, 5));
        assert_eq!(
            run(&mut e, new_order(A, 1, SELL, 100, 8)),
            [
                accepted(A, 1, 3),
                fill(A, 1, 3, 1, 101, 5, 3),
                fill(B, 2, 2, 1, 101, 5, 0),
            ]
        );
        assert_eq!(depth(&e, SELL), [(100, 3, 1)]);
        assert_eq!(depth(&e, BUY), [(99, 5, 1)]);
    }

    #[test]
    fn sweep_takes_levels_best_first_and_stops_at_the_limit() {
        let mut e = engine();
        run(&mut e, new_order(B, 1, SELL, 102, 5));
        run(&mut e, new_order(B, 2, SELL, 100, 5));
        run(&mut e, new_order(B, 3, SELL, 101, 5));
        assert_eq!(
            run(&mut e, new_order(A, 1, BUY, 101, 12)),
            [
                accepted(A, 1, 4),
                fill(A, 1, 4, 1, 100, 5, 7),
                fill(B, 2, 2, 1, 100, 5, 0),
                fill(A, 1, 4, 2, 101, 5, 2),
                fill(B, 3, 3, 2, 101, 5, 0),
            ]
        );
        assert_eq!(depth(&e, BUY), [(101, 2, 1)]);
        assert_eq!(depth(&e, SELL), [(102, 5, 1)]);
    }

    #[test]
    fn orders_at_one_price_fill_first_in_first_out() {
        let mut e = engine();
        run(&mut e, new_order(B, 1, SELL, 100, 5));
        run(&mut e, new_order(C, 1, SELL, 100, 5));
        run(&mut e, new_order(B, 2, SELL, 100, 5));
        assert_eq!(
            run(&mut e, new_order(A, 1, BUY, 100, 7)),
            [
                accepted(A, 1, 4),
                fill(A, 1, 4, 1, 100, 5, 2),
                fill(B, 1, 1, 1, 100, 5, 0),
                fill(A, 1, 4, 2, 100, 2, 0),
                fill(C, 1, 2, 2, 100, 2, 3),
            ]
        );
        assert_eq!(depth(&e, SELL), [(100, 8, 2)]);
    }

    #[test]
    fn self_match_is_allowed() {
        let mut e = engine();
        run(&mut e, new_order(A, 1, SELL, 100, 5));
        assert_eq!(
            run(&mut e, new_order(A, 2, BUY, 100, 5)),
            [
                accepted(A, 2, 2),
                fill(A, 2, 2, 1, 100, 5, 0),
                fill(A, 1, 1, 1, 100, 5, 0),
            ]
        );
        assert_eq!(e.orders_live(), 0);
    }

    #[test]
    fn ioc_remainder_is_canceled_after_the_fills() {
        let mut e = engine();
        run(&mut e, new_order(B, 1, SELL, 100, 5));
        run(&mut e, new_order(B, 2, SELL, 101, 5));
        assert_eq!(
            run(&mut e, ioc(A, 1, BUY, 100, 8)),
            [
                accepted(A, 1, 3),
                fill(A, 1, 3, 1, 100, 5, 3),
                fill(B, 1, 1, 1, 100, 5, 0),
                canceled(A, 1, 3, 3, CancelReason::IMMEDIATE_OR_CANCEL),
            ]
        );
        assert_eq!(depth(&e, BUY), []);
        assert_eq!(e.order(A, 1), None);
        // Fully filled IOC: no cancel.
        assert_eq!(
            run(&mut e, ioc(A, 2, BUY, 101, 5)),
            [
                accepted(A, 2, 4),
                fill(A, 2, 4, 2, 101, 5, 0),
                fill(B, 2, 2, 2, 101, 5, 0),
            ]
        );
    }

    #[test]
    fn ioc_without_a_fill_is_canceled_whole() {
        let mut e = engine();
        run(&mut e, new_order(B, 1, SELL, 101, 5));
        assert_eq!(
            run(&mut e, ioc(A, 1, BUY, 100, 8)),
            [
                accepted(A, 1, 2),
                canceled(A, 1, 2, 8, CancelReason::IMMEDIATE_OR_CANCEL),
            ]
        );
        assert_eq!(e.orders_live(), 1);
    }

    #[test]
    fn order_ids_start_at_first_order_id_and_rejects_take_none() {
        let mut e = MatchingEngine::new(EngineConfig {
            first_order_id: 1_000,
            ..config()
        });
        assert_eq!(
            run(&mut e, new_order(A, 1, BUY, 100, 1)),
            [accepted(A, 1, 1_000)]
        );
        run(&mut e, new_order(A, 2, BUY, 100, 0));
        assert_eq!(
            run(&mut e, new_order(A, 3, BUY, 100, 1)),
            [accepted(A, 3, 1_001)]
        );
    }

    // ----- validation --------------------------------------------------------

    #[test]
    fn unknown_instrument_0_and_beyond_the_last() {
        let mut e = engine();
        for instr in [0, 101, u32::MAX] {
            assert_eq!(
                run(&mut e, new_order_on(A, 5, instr, BUY, 100, 1)),
                [rejected(A, 5, RejectReason::UNKNOWN_INSTRUMENT)]
            );
        }
        assert_eq!(
            run(&mut e, new_order_on(A, 5, 100, BUY, 100, 1)),
            [accepted(A, 5, 1)]
        );
        assert_eq!(e.counters().rejects, 3);
    }

    #[test]
    fn each_invalid_field_is_rejected() {
        let mut e = engine();
        let good = new_order(A, 5, BUY, 100, 1);
        let bad = [
            Command { side: 0, ..good },
            Command { side: 3, ..good },
            Command {
                ord_type: 0,
                ..good
            },
            Command {
                ord_type: 2,
                ..good
            },
            Command { tif: 1, ..good },
            Command { tif: 2, ..good },
            Command { tif: 4, ..good },
            Command { qty: 0, ..good },
        ];
        for c in bad {
            assert_eq!(
                run(&mut e, c),
                [rejected(A, 5, RejectReason::INVALID_FIELD)],
                "{c:?}"
            );
        }
        assert_eq!(e.orders_live(), 0);
        // Unknown instrument is told before a bad field.
        assert_eq!(
            run(
                &mut e,
                Command {
                    side: 0,
                    instrument_id: 0,
                    ..good
                }
            ),
            [rejected(A, 5, RejectReason::UNKNOWN_INSTRUMENT)]
        );
        // Prices ≤ 0 are refused unless the instrument allows them (more
        // in the collar tests); the fields are checked first.
        assert_eq!(
            run(&mut e, Command { price: -5, ..good }),
            [rejected(A, 5, RejectReason::PRICE_OUT_OF_BAND)]
        );
        assert_eq!(
            run(
                &mut e,
                Command {
                    price: 0,
                    qty: 0,
                    ..good
                }
            ),
            [rejected(A, 5, RejectReason::INVALID_FIELD)]
        );
    }

    #[test]
    fn duplicate_id_only_while_the_order_is_live() {
        let mut e = engine();
        run(&mut e, new_order(A, 7, BUY, 100, 5));
        assert_eq!(
            run(&mut e, new_order(A, 7, SELL, 200, 5)),
            [rejected(A, 7, RejectReason::DUPLICATE_ORDER_ID)]
        );
        // Another session's ids never clash.
        assert_eq!(
            run(&mut e, new_order(B, 7, BUY, 99, 5)),
            [accepted(B, 7, 2)]
        );
        // Once filled, the id is free again.
        run(&mut e, new_order(C, 1, SELL, 100, 5));
        assert_eq!(e.order(A, 7), None);
        assert_eq!(
            run(&mut e, new_order(A, 7, BUY, 90, 5)),
            [accepted(A, 7, 4)]
        );
        // Once canceled, too.
        run(&mut e, cancel(A, 8, 7));
        assert_eq!(
            run(&mut e, new_order(A, 7, BUY, 90, 5)),
            [accepted(A, 7, 5)]
        );
        // An IOC that never rested never held its id.
        run(&mut e, ioc(A, 9, BUY, 1, 5));
        assert_eq!(run(&mut e, new_order(A, 9, BUY, 1, 5)), [accepted(A, 9, 7)]);
    }

    // ----- cancel ------------------------------------------------------------

    #[test]
    fn cancel_reports_the_open_quantity_under_the_request_id() {
        let mut e = engine();
        run(&mut e, new_order(A, 1, BUY, 100, 10));
        run(&mut e, new_order(B, 1, SELL, 100, 4));
        assert_eq!(
            run(&mut e, cancel(A, 2, 1)),
            [canceled(A, 2, 1, 6, CancelReason::USER)]
        );
        assert_eq!(e.orders_live(), 0);
        assert_eq!(depth(&e, BUY), []);
        // Canceled once is unknown after.
        assert_eq!(
            run(&mut e, cancel(A, 3, 1)),
            [rejected(A, 3, RejectReason::UNKNOWN_ORDER)]
        );
    }

    #[test]
    fn cancel_of_unknown_foreign_or_other_instrument_order_is_unknown_order() {
        let mut e = engine();
        run(&mut e, new_order(A, 1, BUY, 100, 10));
        assert_eq!(
            run(&mut e, cancel(A, 2, 99)),
            [rejected(A, 2, RejectReason::UNKNOWN_ORDER)]
        );
        // B cannot name A's order, even on the same reactor as A.
        for other in [B, A2, SessionId::new(0, 1, 2)] {
            assert_eq!(
                run(&mut e, cancel(other, 2, 1)),
                [rejected(other, 2, RejectReason::UNKNOWN_ORDER)]
            );
        }
        for instr in [0, 2, 101] {
            assert_eq!(
                run(
                    &mut e,
                    Command {
                        instrument_id: instr,
                        ..cancel(A, 2, 1)
                    }
                ),
                [rejected(A, 2, RejectReason::UNKNOWN_ORDER)]
            );
        }
        assert_eq!(e.order(A, 1).unwrap().leaves_qty, 10);
        // A cancel in the middle of a level keeps the others in order.
        run(&mut e, new_order(A, 2, BUY, 100, 1));
        run(&mut e, new_order(A, 3, BUY, 100, 2));
        run(&mut e, cancel(A, 4, 2));
        assert_eq!(
            run(&mut e, new_order(B, 1, SELL, 100, 12)),
            [
                accepted(B, 1, 4),
                fill(B, 1, 4, 1, 100, 10, 2),
                fill(A, 1, 1, 1, 100, 10, 0),
                fill(B, 1, 4, 2, 100, 2, 0),
                fill(A, 3, 3, 2, 100, 2, 0),
            ]
        );
    }

    // ----- replace -----------------------------------------------------------

    #[test]
    fn replace_down_at_the_same_price_keeps_priority() {
        let mut e = engine();
        run(&mut e, new_order(A, 1, SELL, 100, 10));
        run(&mut e, new_order(B, 1, SELL, 100, 10));
        assert_eq!(
            run(&mut e, replace(A, 2, 1, 100, 5)),
            [replaced(A, 2, 1, 5)]
        );
        // Same quantity and price: still first.
        assert_eq!(
            run(&mut e, replace(A, 3, 2, 100, 5)),
            [replaced(A, 3, 1, 5)]
        );
        assert_eq!(
            run(&mut e, new_order(C, 1, BUY, 100, 6)),
            [
                accepted(C, 1, 3),
                fill(C, 1, 3, 1, 100, 5, 1),
                fill(A, 3, 1, 1, 100, 5, 0),
                fill(C, 1, 3, 2, 100, 1, 0),
                fill(B, 1, 2, 2, 100, 1, 9),
            ]
        );
    }

    #[test]
    fn replace_up_in_quantity_loses_priority() {
        let mut e = engine();
        run(&mut e, new_order(A, 1, SELL, 100, 10));
        run(&mut e, new_order(B, 1, SELL, 100, 10));
        assert_eq!(
            run(&mut e, replace(A, 2, 1, 100, 11)),
            [replaced(A, 2, 1, 11)]
        );
        assert_eq!(depth(&e, SELL), [(100, 21, 2)]);
        assert_eq!(
            run(&mut e, new_order(C, 1, BUY, 100, 12)),
            [
                accepted(C, 1, 3),
                fill(C, 1, 3, 1, 100, 10, 2),
                fill(B, 1, 2, 1, 100, 10, 0),
                fill(C, 1, 3, 2, 100, 2, 0),
                fill(A, 2, 1, 2, 100, 2, 9),
            ]
        );
    }

    #[test]
    fn replace_to_another_price_moves_to_the_back_of_that_level() {
        let mut e = engine();
        run(&mut e, new_order(A, 1, SELL, 101, 10));
        run(&mut e, new_order(B, 1, SELL, 100, 10));
        assert_eq!(
            run(&mut e, replace(A, 2, 1, 100, 3)),
            [replaced(A, 2, 1, 3)]
        );
        assert_eq!(depth(&e, SELL), [(100, 13, 2)]);
        // Away and back again: behind B.
        run(&mut e, new_order(A, 3, SELL, 100, 1));
        run(&mut e, replace(A, 4, 3, 102, 1));
        run(&mut e, replace(A, 5, 4, 100, 1));
        assert_eq!(
            run(&mut e, new_order(C, 1, BUY, 100, 14)),
            [
                accepted(C, 1, 4),
                fill(C, 1, 4, 1, 100, 10, 4),
                fill(B, 1, 2, 1, 100, 10, 0),
                fill(C, 1, 4, 2, 100, 3, 1),
                fill(A, 2, 1, 2, 100, 3, 0),
                fill(C, 1, 4, 3, 100, 1, 0),
                fill(A, 5, 3, 3, 100, 1, 0),
            ]
        );
        assert_eq!(e.orders_live(), 0);
    }

    #[test]
    fn replace_to_a_crossing_price_trades_under_the_new_id() {
        let mut e = engine();
        run(&mut e, new_order(A, 1, BUY, 99, 5));
        run(&mut e, new_order(B, 1, SELL, 101, 10));
        run(&mut e, new_order(B, 2, SELL, 102, 10));
        assert_eq!(
            run(&mut e, replace(A, 2, 1, 101, 12)),
            [
                replaced(A, 2, 1, 12),
                fill(A, 2, 1, 1, 101, 10, 2),
                fill(B, 1, 2, 1, 101, 10, 0),
            ]
        );
        assert_eq!(depth(&e, BUY), [(101, 2, 1)]);
        assert_eq!(e.order(A, 2).unwrap().leaves_qty, 2);
        // Filled completely: gone.
        assert_eq!(
            run(&mut e, replace(A, 3, 2, 102, 2)),
            [
                replaced(A, 3, 1, 2),
                fill(A, 3, 1, 2, 102, 2, 0),
                fill(B, 2, 3, 2, 102, 2, 8),
            ]
        );
        assert_eq!(e.order(A, 3), None);
        assert_eq!(depth(&e, BUY), []);
        assert_eq!(run(&mut e, new_order(A, 3, BUY, 1, 1)), [accepted(A, 3, 4)]);
    }

    #[test]
    fn replace_rekeys_the_order() {
        let mut e = engine();
        run(&mut e, new_order(A, 1, BUY, 99, 5));
        run(&mut e, replace(A, 2, 1, 99, 4));
        assert_eq!(
            run(&mut e, cancel(A, 3, 1)),
            [rejected(A, 3, RejectReason::UNKNOWN_ORDER)]
        );
        assert_eq!(
            run(&mut e, replace(A, 3, 1, 99, 3)),
            [rejected(A, 3, RejectReason::UNKNOWN_ORDER)]
        );
        // The old id is free for a new order.
        assert_eq!(
            run(&mut e, new_order(A, 1, BUY, 98, 1)),
            [accepted(A, 1, 2)]
        );
        assert_eq!(
            run(&mut e, cancel(A, 4, 2)),
            [canceled(A, 4, 1, 4, CancelReason::USER)]
        );
    }

    #[test]
    fn replace_validation() {
        let mut e = engine();
        run(&mut e, new_order(A, 1, BUY, 99, 5));
        run(&mut e, new_order(A, 2, BUY, 98, 5));
        assert_eq!(
            run(&mut e, replace(A, 3, 1, 99, 0)),
            [rejected(A, 3, RejectReason::INVALID_FIELD)]
        );
        // qty is checked before the order is looked up.
        assert_eq!(
            run(&mut e, replace(A, 3, 77, 99, 0)),
            [rejected(A, 3, RejectReason::INVALID_FIELD)]
        );
        assert_eq!(
            run(&mut e, replace(A, 3, 77, 99, 1)),
            [rejected(A, 3, RejectReason::UNKNOWN_ORDER)]
        );
        assert_eq!(
            run(&mut e, replace(B, 3, 1, 99, 1)),
            [rejected(B, 3, RejectReason::UNKNOWN_ORDER)]
        );
        assert_eq!(
            run(
                &mut e,
                Command {
                    instrument_id: 2,
                    ..replace(A, 3, 1, 99, 1)
                }
            ),
            [rejected(A, 3, RejectReason::UNKNOWN_ORDER)]
        );
        assert_eq!(
            run(&mut e, replace(A, 2, 1, 99, 1)),
            [rejected(A, 2, RejectReason::DUPLICATE_ORDER_ID)]
        );
        // Nothing changed.
        assert_eq!(e.order(A, 1).unwrap().leaves_qty, 5);
        assert_eq!(e.order(A, 2).unwrap().leaves_qty, 5);
        // The request may reuse the order's own id.
        assert_eq!(run(&mut e, replace(A, 1, 1, 97, 6)), [replaced(A, 1, 1, 6)]);
        assert_eq!(e.order(A, 1).unwrap().price, 97);
    }

    // ----- mass cancel, COD, revocation --------------------------------------

    /// A: buy/sell on instruments 1 and 2 (cl 1..=4); B: one buy on 1.
    fn two_instrument_book() -> MatchingEngine {
        let mut e = engine();
        run(&mut e, new_order_on(A, 1, 1, BUY, 99, 1));
        run(&mut e, new_order_on(A, 2, 2, SELL, 60, 2));
        run(&mut e, new_order_on(B, 1, 1, BUY, 99, 9));
        run(&mut e, new_order_on(A, 3, 1, SELL, 101, 3));
        run(&mut e, new_order_on(A, 4, 2, BUY, 50, 4));
        e
    }

    #[test]
    fn mass_cancel_by_instrument() {
        let mut e = two_instrument_book();
        assert_eq!(
            run(&mut e, mass(A, 10, 1, 0)),
            [
                canceled(A, 1, 1, 1, CancelReason::MASS_CANCEL),
                canceled(A, 3, 4, 3, CancelReason::MASS_CANCEL),
                ack(A, 10, 2),
            ]
        );
        assert_eq!(depth(&e, BUY), [(99, 9, 1)]);
        assert_eq!(e.orders_live(), 3);
    }

    #[test]
    fn mass_cancel_by_side() {
        let mut e = two_instrument_book();
        assert_eq!(
            run(&mut e, mass(A, 10, 0, 2)),
            [
                canceled(A, 2, 2, 2, CancelReason::MASS_CANCEL),
                canceled(A, 3, 4, 3, CancelReason::MASS_CANCEL),
                ack(A, 10, 2),
            ]
        );
        assert_eq!(
            run(&mut e, mass(A, 11, 2, 1)),
            [
                canceled(A, 4, 5, 4, CancelReason::MASS_CANCEL),
                ack(A, 11, 1)
            ]
        );
        assert_eq!(e.order(A, 1).unwrap().leaves_qty, 1);
    }

    #[test]
    fn mass_cancel_all_then_nothing_left() {
        let mut e = two_instrument_book();
        assert_eq!(
            run(&mut e, mass(A, 10, 0, 0)),
            [
                canceled(A, 1, 1, 1, CancelReason::MASS_CANCEL),
                canceled(A, 2, 2, 2, CancelReason::MASS_CANCEL),
                canceled(A, 3, 4, 3, CancelReason::MASS_CANCEL),
                canceled(A, 4, 5, 4, CancelReason::MASS_CANCEL),
                ack(A, 10, 4),
            ]
        );
        assert_eq!(run(&mut e, mass(A, 11, 0, 0)), [ack(A, 11, 0)]);
        assert_eq!(run(&mut e, mass(C, 12, 7, 1)), [ack(C, 12, 0)]);
        assert_eq!(e.orders_live(), 1);
        assert_eq!(e.order(B, 1).unwrap().leaves_qty, 9);
    }

    #[test]
    fn mass_cancel_carries_ids_after_replace_and_partial_fill() {
        let mut e = two_instrument_book();
        run(&mut e, replace(A, 5, 1, 98, 7));
        run(&mut e, new_order(C, 1, BUY, 101, 1));
        assert_eq!(
            run(&mut e, mass(A, 10, 1, 0)),
            [
                canceled(A, 5, 1, 7, CancelReason::MASS_CANCEL),
                canceled(A, 3, 4, 2, CancelReason::MASS_CANCEL),
                ack(A, 10, 2),
            ]
        );
    }

    #[test]
    fn mass_cancel_validation() {
        let mut e = two_instrument_book();
        assert_eq!(
            run(&mut e, mass(A, 10, 0, 3)),
            [rejected(A, 10, RejectReason::INVALID_FIELD)]
        );
        assert_eq!(
            run(&mut e, mass(A, 10, 101, 0)),
            [rejected(A, 10, RejectReason::UNKNOWN_INSTRUMENT)]
        );
        assert_eq!(
            run(&mut e, mass(A, 10, 101, 9)),
            [rejected(A, 10, RejectReason::UNKNOWN_INSTRUMENT)]
        );
        assert_eq!(e.orders_live(), 5);
    }

    #[test]
    fn cancel_on_disconnect_cancels_everything_without_ack_and_revocation_acks() {
        let mut e = two_instrument_book();
        assert_eq!(
            run(&mut e, Command::empty(CommandKind::CancelOnDisconnect, A)),
            [
                canceled(A, 1, 1, 1, CancelReason::CANCEL_ON_DISCONNECT),
                canceled(A, 2, 2, 2, CancelReason::CANCEL_ON_DISCONNECT),
                canceled(A, 3, 4, 3, CancelReason::CANCEL_ON_DISCONNECT),
                canceled(A, 4, 5, 4, CancelReason::CANCEL_ON_DISCONNECT),
            ]
        );
        assert_eq!(e.orders_live(), 1);
        assert_eq!(
            run(&mut e, Command::empty(CommandKind::CancelForRevocation, B)),
            [
                canceled(B, 1, 3, 9, CancelReason::KEY_REVOKED),
                ack(B, 0, 1)
            ]
        );
        assert_eq!(
            run(&mut e, Command::empty(CommandKind::CancelForRevocation, B)),
            [ack(B, 0, 0)]
        );
        assert_eq!(e.orders_live(), 0);
    }

    // ----- price collars ------------------------------------------------------

    fn keyed(c: Command, key_id: u64) -> Command {
        Command { key_id, ..c }
    }

    fn key_swept(s: SessionId, key_id: u64, tag: u64, count: u32) -> Event {
        Event {
            cl_ord_id: key_id,
            order_id: tag,
            transact_time_ns: NOW,
            qty: count,
            ..Event::empty(EventKind::KeySwept, s)
        }
    }

    fn cancel_for_key(issuer: SessionId, key_id: u64, tag: u64) -> Command {
        Command {
            key_id,
            orig_cl_ord_id: tag,
            ..Command::empty(CommandKind::CancelForKey, issuer)
        }
    }

    const OUT: RejectReason = RejectReason::PRICE_OUT_OF_BAND;

    #[test]
    fn without_a_reference_any_positive_price_is_in_band_and_no_price_at_or_below_0() {
        let mut e = engine();
        assert_eq!(run(&mut e, new_order(A, 1, BUY, 1, 5)), [accepted(A, 1, 1)]);
        assert_eq!(
            run(&mut e, new_order(A, 2, SELL, i64::MAX, 5)),
            [accepted(A, 2, 2)]
        );
        for price in [0, -1, i64::MIN] {
            for side in [BUY, SELL] {
                assert_eq!(
                    run(&mut e, new_order(A, 3, side, price, 5)),
                    [rejected(A, 3, OUT)]
                );
            }
        }
        assert_eq!(e.counters().price_rejects, 6);
        assert_eq!(e.orders_live(), 2);
    }

    #[test]
    fn after_a_trade_buys_above_and_sells_below_the_band_are_refused() {
        let mut e = engine();
        run(&mut e, new_order(B, 1, SELL, 100, 1));
        run(&mut e, new_order(A, 1, BUY, 100, 1)); // trade at 100: band ±10
        assert_eq!(
            run(&mut e, new_order(A, 2, BUY, 111, 5)),
            [rejected(A, 2, OUT)]
        );
        assert_eq!(
            run(&mut e, new_order(A, 2, BUY, 110, 5)),
            [accepted(A, 2, 3)]
        );
        assert_eq!(
            run(&mut e, new_order(B, 2, SELL, 89, 5)),
            [rejected(B, 2, OUT)]
        );
        // Still 100 ± 10: a sell at 90 is in, and trades at the bid, 110.
        assert_eq!(
            run(&mut e, new_order(B, 3, SELL, 90, 1)),
            [
                accepted(B, 3, 4),
                fill(B, 3, 4, 2, 110, 1, 0),
                fill(A, 2, 3, 2, 110, 1, 4)
            ]
        );
        // Now the reference is 110 (the last trade): ±11.
        assert_eq!(
            run(&mut e, new_order(B, 4, SELL, 98, 1)),
            [rejected(B, 4, OUT)]
        );
        assert_eq!(
            run(&mut e, new_order(B, 4, SELL, 99, 1)),
            [
                accepted(B, 4, 5),
                fill(B, 4, 5, 3, 110, 1, 0),
                fill(A, 2, 3, 3, 110, 1, 3)
            ]
        );
        // Passive orders far from the market are harmless and accepted.
        assert_eq!(run(&mut e, new_order(A, 5, BUY, 1, 5)), [accepted(A, 5, 6)]);
        assert_eq!(
            run(&mut e, new_order(B, 5, SELL, 1_000_000, 5)),
            [accepted(B, 5, 7)]
        );
        assert_eq!(e.counters().price_rejects, 3);
    }

    #[test]
    fn a_configured_reference_collars_the_first_trade() {
        let mut e = MatchingEngine::new(EngineConfig {
            collar_bps: 500,
            instrument_risk: vec![InstrumentRisk {
                reference: Some(1_000),
                ..InstrumentRisk::new(1)
            }],
            ..config()
        });
        // ±50 around 1000.
        run(&mut e, new_order(B, 1, BUY, 1_000, 5));
        assert_eq!(
            run(&mut e, new_order(A, 1, SELL, 949, 5)),
            [rejected(A, 1, OUT)]
        );
        assert_eq!(
            run(&mut e, new_order(A, 1, BUY, 1_051, 5)),
            [rejected(A, 1, OUT)]
        );
        assert_eq!(run(&mut e, new_order(A, 1, SELL, 950, 1)).len(), 3);
        // Instrument 2 has no reference: no collar until it trades.
        assert_eq!(
            run(&mut e, new_order_on(A, 2, 2, SELL, 1, 5)),
            [accepted(A, 2, 3)]
        );
    }

    #[test]
    fn the_band_is_at_least_one_tick_and_an_instrument_may_take_prices_at_or_below_0() {
        let mut e = MatchingEngine::new(EngineConfig {
            instrument_risk: vec![
                InstrumentRisk {
                    reference: Some(5),
                    ..InstrumentRisk::new(1)
                },
                InstrumentRisk {
                    reference: Some(-200),
                    collar_bps: Some(100),
                    nonpositive_prices: true,
                    ..InstrumentRisk::new(2)
                },
            ],
            ..config()
        });
        // 10% of 5 is 0.5 ticks: the band is 1 tick, 4..=6.
        assert_eq!(
            run(&mut e, new_order(A, 1, BUY, 7, 1)),
            [rejected(A, 1, OUT)]
        );
        assert_eq!(run(&mut e, new_order(A, 1, BUY, 6, 1)), [accepted(A, 1, 1)]);
        assert_eq!(
            run(&mut e, new_order(A, 2, SELL, 3, 1)),
            [rejected(A, 2, OUT)]
        );
        // 1% of |−200| is 2 ticks: −202..=−198, prices ≤ 0 allowed.
        assert_eq!(
            run(&mut e, new_order_on(A, 3, 2, BUY, -197, 1)),
            [rejected(A, 3, OUT)]
        );
        assert_eq!(
            run(&mut e, new_order_on(A, 3, 2, BUY, -198, 1)),
            [accepted(A, 3, 2)]
        );
        assert_eq!(
            run(&mut e, new_order_on(A, 4, 2, SELL, -203, 1)),
            [rejected(A, 4, OUT)]
        );
        assert_eq!(
            run(&mut e, new_order_on(A, 4, 2, SELL, -202, 2)),
            [
                accepted(A, 4, 3),
                fill(A, 4, 3, 1, -198, 1, 1),
                fill(A, 3, 2, 1, -198, 1, 0),
            ]
        );
        // The last trade (−198) is the reference now, band 1 tick: a buy at
        // 0 is a price like any other there, and far above the band.
        assert_eq!(
            run(&mut e, new_order_on(A, 5, 2, BUY, 0, 1)),
            [rejected(A, 5, OUT)]
        );
        assert_eq!(
            run(&mut e, new_order_on(A, 5, 2, BUY, -197, 1)),
            [
                accepted(A, 5, 4),
                fill(A, 5, 4, 2, -202, 1, 0),
                fill(A, 4, 3, 2, -202, 1, 0),
            ]
        );
    }

    #[test]
    fn a_replace_to_a_new_price_is_collared() {
        let mut e = engine();
        run(&mut e, new_order(B, 1, SELL, 100, 1));
        run(&mut e, new_order(A, 1, BUY, 100, 1)); // reference 100
        run(&mut e, new_order(A, 2, SELL, 105, 5));
        assert_eq!(run(&mut e, replace(A, 3, 2, 89, 5)), [rejected(A, 3, OUT)]);
        assert_eq!(run(&mut e, replace(A, 3, 2, 0, 5)), [rejected(A, 3, OUT)]);
        assert_eq!(run(&mut e, replace(A, 3, 2, 95, 5)), [replaced(A, 3, 3, 5)]);
        // A quantity change at the same price is no new price.
        assert_eq!(run(&mut e, replace(A, 4, 3, 95, 9)), [replaced(A, 4, 3, 9)]);
        assert_eq!(e.counters().price_rejects, 2);
    }

    // ----- key risk ------------------------------------------------------------

    /// Key 5 may trade at most 1,000 of notional per order; key 6 may keep
    /// at most 1,000 resting.
    fn risk_engine() -> MatchingEngine {
        let mut e = engine();
        e.set_key_limits(&[
            KeyLimits {
                key_id: 5,
                max_order_notional: 1_000,
                max_open_notional: 0,
            },
            KeyLimits {
                key_id: 6,
                max_order_notional: 0,
                max_open_notional: 1_000,
            },
        ]);
        e
    }

    #[test]
    fn the_price_0_sell_of_the_attack_is_refused_and_nothing_fills() {
        let mut e = risk_engine();
        run(&mut e, keyed(new_order(B, 1, BUY, 100, 1_000), 9));
        assert_eq!(
            run(&mut e, keyed(ioc(A, 7, SELL, 0, 1_000), 5)),
            [rejected(A, 7, OUT)]
        );
        assert_eq!(depth(&e, BUY), [(100, 1_000, 1)]);
        assert_eq!(e.counters().matches, 0);
    }

    #[test]
    fn a_marketable_order_is_counted_at_the_prices_it_would_fill_at() {
        let mut e = risk_engine();
        run(&mut e, keyed(new_order(B, 1, BUY, 100, 1_000), 9));
        // 1 × 1,000 at the limit, but 100 × 1,000 at the bid.
        assert_eq!(
            run(&mut e, keyed(ioc(A, 7, SELL, 1, 1_000), 5)),
            [rejected(A, 7, RejectReason::RISK_MAX_NOTIONAL)]
        );
        assert_eq!(
            run(&mut e, keyed(ioc(A, 7, SELL, 1, 11), 5)),
            [rejected(A, 7, RejectReason::RISK_MAX_NOTIONAL)]
        );
        assert_eq!(e.counters().notional_rejects, 2);
        assert_eq!(
            run(&mut e, keyed(ioc(A, 8, SELL, 1, 10), 5)),
            [
                accepted(A, 8, 2),
                fill(A, 8, 2, 1, 100, 10, 0),
                fill(B, 1, 1, 1, 100, 10, 990),
            ]
        );
        // A Day order: the fills at 100 plus the remainder at its limit.
        // 5 × 100 + 6 × 90 = 1,040 > 1,000; 5 × 100 + 5 × 90 = 950.
        run(&mut e, keyed(new_order(C, 1, SELL, 100, 985), 9)); // the bid keeps 5
        assert_eq!(
            run(&mut e, keyed(new_order(A, 9, SELL, 90, 11), 5)),
            [rejected(A, 9, RejectReason::RISK_MAX_NOTIONAL)]
        );
        assert_eq!(
            run(&mut e, keyed(new_order(A, 9, SELL, 90, 10), 5)).len(),
            3
        );
        // A replace counts the same way.
        assert_eq!(
            run(&mut e, keyed(replace(A, 10, 9, 90, 12), 5)),
            [rejected(A, 10, RejectReason::RISK_MAX_NOTIONAL)]
        );
        // A key without limits is not checked (the collar still is).
        assert_eq!(run(&mut e, keyed(ioc(A, 11, BUY, 110, 5), 9)).len(), 3);
    }

    #[test]
    fn open_notional_counts_every_resting_order_of_the_key() {
        let mut e = risk_engine();
        let open = |e: &MatchingEngine| {
            e.find_key(6)
                .map_or(0, |(_, k)| e.keys[k as usize].open_notional)
        };
        // Two sessions of key 6.
        assert_eq!(run(&mut e, keyed(new_order(A, 1, BUY, 100, 5), 6)).len(), 1);
        assert_eq!(run(&mut e, keyed(new_order(B, 1, BUY, 99, 4), 6)).len(), 1);
        assert_eq!(open(&e), 896);
        assert_eq!(
            run(&mut e, keyed(new_order(A, 2, SELL, 105, 1), 6)),
            [rejected(A, 2, RejectReason::RISK_MAX_OPEN_NOTIONAL)]
        );
        // An IOC never rests: not counted.
        assert_eq!(run(&mut e, keyed(ioc(A, 2, SELL, 105, 1), 6)).len(), 2);
        assert_eq!(
            run(&mut e, keyed(new_order(A, 2, SELL, 104, 1), 6)).len(),
            1
        );
        assert_eq!(open(&e), 1_000);
        // A partial fill of a resting order lowers it.
        assert_eq!(run(&mut e, keyed(ioc(C, 1, SELL, 100, 2), 9)).len(), 3);
        assert_eq!(open(&e), 800);
        // A replace that raises it is checked; one that lowers it is not.
        assert_eq!(
            run(&mut e, keyed(replace(A, 3, 1, 100, 6), 6)),
            [rejected(A, 3, RejectReason::RISK_MAX_OPEN_NOTIONAL)]
        );
        assert_eq!(
            run(&mut e, replace(A, 3, 1, 100, 1)),
            [replaced(A, 3, 1, 1)]
        );
        assert_eq!(open(&e), 600);
        // Lowered under the key's feet: a move that does not raise it passes.
        e.set_key_limits(&[KeyLimits {
            key_id: 6,
            max_order_notional: 0,
            max_open_notional: 100,
        }]);
        assert_eq!(run(&mut e, replace(B, 2, 1, 98, 4)), [replaced(B, 2, 2, 4)]);
        assert_eq!(open(&e), 596);
        assert_eq!(
            run(&mut e, keyed(new_order(B, 3, BUY, 1, 1), 6)),
            [rejected(B, 3, RejectReason::RISK_MAX_OPEN_NOTIONAL)]
        );
        // Cancels free it.
        run(&mut e, cancel(A, 4, 3));
        run(&mut e, cancel(B, 4, 2));
        run(&mut e, cancel(A, 5, 2));
        assert_eq!(open(&e), 0);
        assert_eq!(run(&mut e, keyed(new_order(B, 3, BUY, 100, 1), 6)).len(), 1);
        assert_eq!(open(&e), 100);
        assert_eq!(e.counters().open_notional_rejects, 3);
    }

    // ----- key sweeps ----------------------------------------------------------

    #[test]
    fn cancel_for_key_reaches_every_order_of_the_key_whatever_its_session() {
        let mut e = engine();
        let gone = SessionId::new(1, 7, 3); // a session that has ended
        run(&mut e, keyed(new_order(A, 1, BUY, 99, 1), 5));
        run(&mut e, keyed(new_order(B, 1, BUY, 98, 2), 5));
        run(&mut e, keyed(new_order(C, 1, SELL, 105, 3), 8)); // another key
        run(&mut e, keyed(new_order_on(gone, 1, 2, SELL, 50, 4), 5));
        run(&mut e, keyed(new_order(A, 2, SELL, 101, 5), 5));
        let issuer = SessionId::new(2, 0, 0);
        assert_eq!(
            run(&mut e, cancel_for_key(issuer, 5, 42)),
            [
                canceled(A, 1, 1, 1, CancelReason::KEY_REVOKED),
                canceled(B, 1, 2, 2, CancelReason::KEY_REVOKED),
                canceled(gone, 1, 4, 4, CancelReason::KEY_REVOKED),
                canceled(A, 2, 5, 5, CancelReason::KEY_REVOKED),
                key_swept(issuer, 5, 42, 4),
            ]
        );
        assert_eq!(e.orders_live(), 1);
        assert!(e.order(C, 1).is_some());
        // Nothing left: an empty sweep still reports.
        assert_eq!(
            run(&mut e, cancel_for_key(issuer, 5, 43)),
            [key_swept(issuer, 5, 43, 0)]
        );
        assert_eq!(
            (e.counters().key_sweeps, e.counters().key_sweep_canceled),
            (2, 4)
        );
    }

    #[test]
    fn a_key_sweep_stalls_on_each_sessions_reactor_and_resumes() {
        let mut e = engine();
        run(&mut e, keyed(new_order(A, 1, BUY, 99, 1), 5));
        run(&mut e, keyed(new_order(B, 1, BUY, 98, 2), 5));
        let issuer = SessionId::new(3, 0, 0);
        // Room toward reactor 0 only: A's cancel goes, B's waits.
        let mut sink = Sink {
            events: Vec::new(),
            room: [1, 0, 0, 0],
        };
        assert!(!e.submit(NOW, &cancel_for_key(issuer, 5, 1), &mut sink));
        assert_eq!(
            sink.events,
            [canceled(A, 1, 1, 1, CancelReason::KEY_REVOKED)]
        );
        sink.room = [0, 1, 0, 0];
        assert!(!e.resume(NOW, &mut sink));
        sink.room = [0, 0, 0, 1];
        assert!(e.resume(NOW, &mut sink));
        assert_eq!(
            sink.events[1..],
            [
                canceled(B, 1, 2, 2, CancelReason::KEY_REVOKED),
                key_swept(issuer, 5, 1, 2)
            ]
        );
        e.assert_consistent();
    }

    #[test]
    fn a_key_without_a_record_cannot_rest_when_every_record_is_in_use() {
        let mut e = MatchingEngine::new(EngineConfig {
            keys_max: 2,
            ..config()
        });
        run(&mut e, keyed(new_order(A, 1, BUY, 90, 1), 1));
        run(&mut e, keyed(new_order(A, 2, BUY, 91, 1), 2));
        assert_eq!(
            run(&mut e, keyed(new_order(A, 3, BUY, 92, 1), 3)),
            [rejected(A, 3, RejectReason::ENGINE_REJECT)]
        );
        // Keys with a record still rest; an IOC and an order that fills
        // completely need none.
        assert_eq!(run(&mut e, keyed(new_order(A, 3, BUY, 92, 1), 2)).len(), 1);
        assert_eq!(run(&mut e, keyed(ioc(B, 1, SELL, 92, 1), 3)).len(), 3);
        assert_eq!(run(&mut e, keyed(new_order(B, 2, SELL, 91, 1), 3)).len(), 3);
        // Key 2's last order is gone: its record is free for key 3.
        assert_eq!(e.orders_live(), 1);
        assert_eq!(run(&mut e, keyed(new_order(B, 3, SELL, 99, 1), 3)).len(), 1);
    }

    // ----- limits ------------------------------------------------------------

    #[test]
    fn full_order_pool_rejects_only_orders_that_would_rest() {
        let mut e = MatchingEngine::new(EngineConfig {
            orders_max: 2,
            ..config()
        });
        run(&mut e, new_order(A, 1, BUY, 99, 5));
        run(&mut e, new_order(A, 2, BUY, 98, 5));
        assert_eq!(
            run(&mut e, new_order(B, 1, BUY, 97, 5)),
            [rejected(B, 1, RejectReason::ENGINE_REJECT)]
        );
        // Same level, still needs a node.
        assert_eq!(
            run(&mut e, new_order(B, 1, BUY, 99, 5)),
            [rejected(B, 1, RejectReason::ENGINE_REJECT)]
        );
        // An IOC never needs one.
        assert_eq!(
            run(&mut e, ioc(B, 1, BUY, 97, 5)),
            [
                accepted(B, 1, 3),
                canceled(B, 1, 3, 5, CancelReason::IMMEDIATE_OR_CANCEL)
            ]
        );
        // Filled completely: no node needed.
        assert_eq!(
            run(&mut e, new_order(B, 2, SELL, 99, 3)),
            [
                accepted(B, 2, 4),
                fill(B, 2, 4, 1, 99, 3, 0),
                fill(A, 1, 1, 1, 99, 3, 2),
            ]
        );
        // Takes a whole resting order, which frees the node its remainder needs.
        assert_eq!(
            run(&mut e, new_order(B, 3, SELL, 99, 4)),
            [
                accepted(B, 3, 5),
                fill(B, 3, 5, 2, 99, 2, 2),
                fill(A, 1, 1, 2, 99, 2, 0),
            ]
        );
        assert_eq!(depth(&e, SELL), [(99, 2, 1)]);
        assert_eq!(e.orders_live(), 2);
    }

    #[test]
    fn full_level_array_rejects_orders_that_would_open_a_level() {
        let mut e = MatchingEngine::new(EngineConfig {
            levels_per_side_max: 2,
            ..config()
        });
        run(&mut e, new_order(A, 1, BUY, 99, 5));
        run(&mut e, new_order(A, 2, BUY, 98, 5));
        run(&mut e, new_order(B, 1, SELL, 101, 5));
        for price in [97, 100] {
            assert_eq!(
                run(&mut e, new_order(A, 3, BUY, price, 5)),
                [rejected(A, 3, RejectReason::ENGINE_REJECT)]
            );
        }
        // Crossing but with a remainder that would need a new level.
        assert_eq!(
            run(&mut e, new_order(A, 3, BUY, 101, 6)),
            [rejected(A, 3, RejectReason::ENGINE_REJECT)]
        );
        // An existing level is fine, and the other side has its own array.
        assert_eq!(
            run(&mut e, new_order(A, 3, BUY, 99, 5)),
            [accepted(A, 3, 4)]
        );
        assert_eq!(
            run(&mut e, new_order(B, 2, SELL, 102, 5)),
            [accepted(B, 2, 5)]
        );
        // IOC never rests.
        assert_eq!(
            run(&mut e, ioc(A, 4, BUY, 97, 1)),
            [
                accepted(A, 4, 6),
                canceled(A, 4, 6, 1, CancelReason::IMMEDIATE_OR_CANCEL)
            ]
        );
        // Filled completely at a price with no bid level: fine.
        assert_eq!(
            run(&mut e, new_order(A, 5, BUY, 101, 5)),
            [
                accepted(A, 5, 7),
                fill(A, 5, 7, 1, 101, 5, 0),
                fill(B, 1, 3, 1, 101, 5, 0),
            ]
        );
        // Replace: an order sharing its level cannot open a new one...
        assert_eq!(
            run(&mut e, replace(A, 6, 1, 96, 5)),
            [rejected(A, 6, RejectReason::ENGINE_REJECT)]
        );
        assert_eq!(e.order(A, 1).unwrap().price, 99);
        // ...but an order alone at its level can move (its level closes).
        assert_eq!(run(&mut e, replace(A, 6, 2, 96, 5)), [replaced(A, 6, 2, 5)]);
        assert_eq!(depth(&e, BUY), [(99, 10, 2), (96, 5, 1)]);
        // And a replace that fills completely needs no level.
        assert_eq!(
            run(&mut e, replace(A, 7, 1, 102, 5)),
            [
                replaced(A, 7, 1, 5),
                fill(A, 7, 1, 2, 102, 5, 0),
                fill(B, 2, 5, 2, 102, 5, 0),
            ]
        );
        // FIFO kept: A 1 was ahead of A 3 at 99 before leaving.
        assert_eq!(depth(&e, BUY), [(99, 5, 1), (96, 5, 1)]);
    }

    #[test]
    #[should_panic(expected = "instruments")]
    fn zero_instruments_is_refused() {
        MatchingEngine::new(EngineConfig {
            instruments: 0,
            ..config()
        });
    }

    #[test]
    #[should_panic(expected = "instruments")]
    fn too_many_instruments_are_refused() {
        MatchingEngine::new(EngineConfig {
            instruments: INSTRUMENTS_MAX + 1,
            ..config()
        });
    }

    #[test]
    #[should_panic(expected = "orders_max")]
    fn zero_orders_are_refused() {
        MatchingEngine::new(EngineConfig {
            orders_max: 0,
            ..config()
        });
    }

    #[test]
    fn default_config_is_the_documented_one() {
        let c = EngineConfig::default();
        assert_eq!(
            (
                c.instruments,
                c.orders_max,
                c.levels_per_side_max,
                c.first_order_id
            ),
            (
                INSTRUMENTS_DEFAULT,
                ORDERS_MAX_DEFAULT,
                LEVELS_PER_SIDE_MAX,
                1
            )
        );
        assert_eq!(
            (c.keys_max, c.collar_bps, c.instrument_risk.len()),
            (ENGINE_KEYS_DEFAULT, COLLAR_BPS_DEFAULT, 0)
        );
        // 104 B per order (node, key link, two table slots) + 128 KiB per
        // instrument (+ 800 B of level counts, 1.6 KiB of collars) + 48 B
        // per key record + 96 KiB of key limits and their table.
        assert_eq!(
            c.memory_bytes(),
            ORDERS_MAX_DEFAULT * 104
                + 100 * 2 * LEVELS_PER_SIDE_MAX * 16
                + 100 * 2 * 4
                + 100 * 16
                + ENGINE_KEYS_DEFAULT * 48
                + KEYS_MAX * 24
                + 2 * KEYS_MAX * 8
        );
    }

    // ----- back-pressure -----------------------------------------------------

    #[test]
    fn a_step_is_never_half_sent() {
        let mut e = engine();
        run(&mut e, new_order(B, 1, SELL, 100, 5));
        // Accepted + Fill to reactor 0 and a Fill to reactor 1.
        let c = new_order(A, 1, BUY, 100, 5);
        let mut sink = Sink {
            events: Vec::new(),
            room: [1, 1, 0, 0],
        };
        assert!(!e.submit(NOW, &c, &mut sink));
        assert!(sink.events.is_empty());
        sink.room = [2, 0, 0, 0];
        assert!(!e.resume(NOW, &mut sink));
        assert!(sink.events.is_empty());
        assert!(!e.is_idle());
        sink.room = [2, 1, 0, 0];
        assert!(e.resume(NOW, &mut sink));
        assert_eq!(sink.events.len(), 3);
        assert!(e.is_idle());
        assert_eq!(e.counters().stalls, 2);

        // Both sessions on one reactor: three slots there.
        run(&mut e, new_order(A2, 1, SELL, 100, 5));
        let c = new_order(A, 2, BUY, 100, 5);
        let mut sink = Sink {
            events: Vec::new(),
            room: [2, UNLIMITED, UNLIMITED, UNLIMITED],
        };
        assert!(!e.submit(NOW, &c, &mut sink));
        assert!(sink.events.is_empty());
        sink.room[0] = 3;
        assert!(e.resume(NOW, &mut sink));
        assert_eq!(
            sink.events,
            [
                accepted(A, 2, 4),
                fill(A, 2, 4, 2, 100, 5, 0),
                fill(A2, 1, 3, 2, 100, 5, 0),
            ]
        );
    }

    #[test]
    fn a_stalled_command_resumes_where_it_stopped_and_stamps_the_resume_time() {
        let mut e = engine();
        for cl in 1..=3 {
            run(&mut e, new_order(B, cl, SELL, 100 + cl as i64, 1));
        }
        let c = ioc(A, 1, BUY, 103, 5);
        let mut sink = Sink::new(0);
        sink.room[0] = 2;
        sink.room[1] = 1;
        assert!(!e.submit(NOW, &c, &mut sink));
        assert_eq!(sink.events.len(), 3); // Accepted + first fill pair.
        sink.room = [1, 1, 0, 0];
        assert!(!e.resume(NOW + 1, &mut sink));
        assert_eq!(sink.events.len(), 5);
        assert_eq!(sink.events[3].transact_time_ns, NOW + 1);
        sink.room = [UNLIMITED; 4];
        assert!(e.resume(NOW + 2, &mut sink));
        let times: Vec<_> = sink.events.iter().map(|ev| ev.transact_time_ns).collect();
        assert_eq!(
            times,
            [NOW, NOW, NOW, NOW + 1, NOW + 1, NOW + 2, NOW + 2, NOW + 2]
        );
        let exec_ids: Vec<_> = sink.events.iter().map(|ev| ev.exec_id).collect();
        assert_eq!(exec_ids, [0, 1, 1, 2, 2, 3, 3, 0]);
        assert_eq!(sink.events[5].leaves_qty, 2);
        assert_eq!(
            sink.events[7],
            Event {
                transact_time_ns: NOW + 2,
                ..canceled(A, 1, 4, 2, CancelReason::IMMEDIATE_OR_CANCEL)
            }
        );
        e.assert_consistent();
        // Resuming an idle engine does nothing.
        assert!(e.resume(NOW, &mut sink));
        assert_eq!(sink.events.len(), 8);
    }

    #[test]
    fn mass_cancel_sends_one_cancel_per_unit_of_room() {
        let mut e = two_instrument_book();
        let mut sink = Sink::new(1);
        let mut calls = 1;
        let mut done = e.submit(NOW, &mass(A, 10, 0, 0), &mut sink);
        while !done {
            assert_eq!(sink.events.len(), calls);
            sink.room = [1; 4];
            done = e.resume(NOW, &mut sink);
            calls += 1;
        }
        assert_eq!(calls, 5);
        let mut f = two_instrument_book();
        assert_eq!(sink.events, run(&mut f, mass(A, 10, 0, 0)));
        e.assert_consistent();
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "unfinished")]
    fn submit_while_unfinished_panics_in_debug() {
        let mut e = engine();
        let mut sink = Sink::new(0);
        assert!(!e.submit(NOW, &new_order(A, 1, BUY, 100, 5), &mut sink));
        e.submit(NOW, &new_order(A, 2, BUY, 100, 5), &mut sink);
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn submit_while_unfinished_is_refused_without_taking_the_command() {
        let mut e = engine();
        let mut sink = Sink::new(0);
        assert!(!e.submit(NOW, &new_order(A, 1, BUY, 100, 5), &mut sink));
        assert!(!e.submit(NOW, &new_order(A, 2, BUY, 100, 5), &mut sink));
        sink.room = [UNLIMITED; 4];
        assert!(e.resume(NOW, &mut sink));
        assert_eq!(sink.events, [accepted(A, 1, 1)]);
        assert_eq!(e.order(A, 2), None);
        assert_eq!(e.counters().commands, 1);
    }

    // ----- randomized --------------------------------------------------------

    use crate::rng::SplitMix;

    /// Two sessions on reactor 0, one each on 1 and 2.
    const SESSIONS: [SessionId; 4] = [A, A2, B, C];

    fn small_config() -> EngineConfig {
        EngineConfig {
            instruments: 3,
            orders_max: 40,
            levels_per_side_max: 4,
            first_order_id: 1,
            ..EngineConfig::default()
        }
    }

    /// The keys of `SESSIONS`: A and B share key 1 (two reactors), A2 has
    /// key 2, C key 3.
    const SESSION_KEYS: [u64; 4] = [1, 2, 1, 3];

    /// Key 2 may keep ~3 orders' notional resting; key 3's orders may not
    /// trade or rest more than 1,500 of notional.
    const RANDOM_LIMITS: [KeyLimits; 2] = [
        KeyLimits {
            key_id: 2,
            max_order_notional: 0,
            max_open_notional: 5_000,
        },
        KeyLimits {
            key_id: 3,
            max_order_notional: 1_500,
            max_open_notional: 0,
        },
    ];

    fn random_engine() -> MatchingEngine {
        let mut e = MatchingEngine::new(small_config());
        e.set_key_limits(&RANDOM_LIMITS);
        e
    }

    /// Mostly valid commands over a small id and price space, so duplicates,
    /// unknown orders, crossings, both capacity limits, collars and key
    /// limits all happen.
    fn random_command(rng: &mut SplitMix) -> Command {
        let who = rng.below(4) as usize;
        let session = SESSIONS[who];
        let instrument = match rng.below(40) {
            0 => 0,
            1 => 4,
            _ => 1 + rng.below(3) as u32,
        };
        let side = match rng.below(50) {
            0 => 0,
            1 => 3,
            _ => 1 + rng.below(2) as u8,
        };
        let qty = if rng.below(50) == 0 {
            0
        } else {
            1 + rng.below(20) as u32
        };
        let c = Command {
            cl_ord_id: 1 + rng.below(16),
            orig_cl_ord_id: 1 + rng.below(16),
            price: match rng.below(60) {
                0 => 0,
                1 => 200,
                _ => 95 + rng.below(11) as i64,
            },
            key_id: SESSION_KEYS[who],
            qty,
            instrument_id: instrument,
            side,
            ord_type: if rng.below(50) == 0 { 2 } else { 1 },
            tif: match rng.below(40) {
                0 => 1,
                1..10 => 3,
                _ => 0,
            },
            ..Command::empty(CommandKind::NewOrder, session)
        };
        let kind = match rng.below(100) {
            0..50 => CommandKind::NewOrder,
            50..64 => CommandKind::Cancel,
            64..86 => CommandKind::Replace,
            86..93 => CommandKind::MassCancel,
            93..97 => CommandKind::CancelOnDisconnect,
            97..99 => CommandKind::CancelForRevocation,
            _ => CommandKind::CancelForKey,
        };
        let side = if kind == CommandKind::MassCancel {
            rng.below(4) as u8
        } else {
            c.side
        };
        Command { kind, side, ..c }
    }

    /// Runs `count` random commands; each stalled command is resumed with a
    /// fresh random room (0..=3 per reactor) until it finishes.
    fn run_random(seed: u64, count: usize, tight: bool) -> (Vec<Event>, MatchingEngine) {
        let mut rng = SplitMix(seed);
        let mut room_rng = SplitMix(seed ^ 0xdead_beef);
        let mut e = random_engine();
        let mut sink = Sink::new(UNLIMITED);
        for i in 0..count {
            let c = random_command(&mut rng);
            if tight {
                sink.room = std::array::from_fn(|_| room_rng.below(4) as usize);
            }
            let mut done = e.submit(NOW, &c, &mut sink);
            let mut resumes = 0;
            while !done {
                assert!(tight);
                sink.room = std::array::from_fn(|_| room_rng.below(4) as usize);
                done = e.resume(NOW, &mut sink);
                resumes += 1;
                assert!(resumes < 10_000, "no progress");
            }
            if i % 64 == 0 {
                e.assert_consistent();
            }
        }
        e.assert_consistent();
        (sink.events, e)
    }

    #[test]
    fn tight_random_room_gives_exactly_the_unlimited_sequence() {
        for seed in [1, 0x1234_5678, 0x9e37_79b9_7f4a_7c15] {
            let (expected, _) = run_random(seed, 5_000, false);
            let (got, e) = run_random(seed, 5_000, true);
            assert!(expected.len() > 5_000);
            assert_eq!(got.len(), expected.len());
            for (i, (g, x)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(g, x, "event {i}, seed {seed:#x}");
            }
            assert!(e.counters().stalls > 1_000);
        }
    }

    #[test]
    fn room_one_then_unlimited_gives_the_unlimited_sequence() {
        let mut rng = SplitMix(77);
        let commands: Vec<Command> = (0..3_000).map(|_| random_command(&mut rng)).collect();
        let mut plain = random_engine();
        let mut stalled = random_engine();
        let mut expected = Sink::new(UNLIMITED);
        let mut got = Sink::new(UNLIMITED);
        for c in &commands {
            assert!(plain.submit(NOW, c, &mut expected));
            got.room = [1; 4];
            if !stalled.submit(NOW, c, &mut got) {
                got.room = [UNLIMITED; 4];
                assert!(stalled.resume(NOW, &mut got));
            }
        }
        assert_eq!(got.events, expected.events);
        stalled.assert_consistent();
    }

    #[test]
    fn room_of_events_per_step_max_always_makes_progress() {
        let mut rng = SplitMix(5);
        let mut e = random_engine();
        let mut sink = Sink::new(0);
        for _ in 0..3_000 {
            let c = random_command(&mut rng);
            sink.room = [crate::engine::EVENTS_PER_STEP_MAX; 4];
            let before = sink.events.len();
            let mut done = e.submit(NOW, &c, &mut sink);
            while !done {
                assert!(
                    sink.events.len() > before,
                    "a full ring of room sent nothing"
                );
                let before = sink.events.len();
                sink.room = [crate::engine::EVENTS_PER_STEP_MAX; 4];
                done = e.resume(NOW, &mut sink);
                assert!(done || sink.events.len() > before);
            }
        }
    }

    /// What the events say about one order.
    struct Tracked {
        session: SessionId,
        cl_ord_id: u64,
        side: Side,
        open: u32,
    }

    #[test]
    fn random_commands_keep_the_book_uncrossed_and_quantities_conserved() {
        for seed in [3, 0xabcdef, 0x5555_aaaa_0f0f] {
            let mut rng = SplitMix(seed);
            let mut e = random_engine();
            let mut open: HashMap<u64, Tracked> = HashMap::new();
            let mut trades: HashMap<u64, Vec<Event>> = HashMap::new();
            let mut sides: HashMap<u64, Side> = HashMap::new();
            let mut reasons: HashMap<String, u32> = HashMap::new();
            let (mut last_order_id, mut last_exec_id) = (0u64, 0u64);
            let mut accepted_qty = 0u64;
            let (mut filled_qty, mut canceled_qty, mut replaced_delta) = (0u64, 0u64, 0i64);
            for _ in 0..6_000 {
                let c = random_command(&mut rng);
                let mut sink = Sink::new(UNLIMITED);
                assert!(e.submit(NOW, &c, &mut sink));
                for ev in &sink.events {
                    *reasons.entry(format!("{:?}", ev.reason)).or_default() += 1;
                    match ev.kind {
                        EventKind::Accepted => {
                            assert!(ev.order_id > last_order_id);
                            last_order_id = ev.order_id;
                            accepted_qty += u64::from(c.qty);
                            let side = Side::from_wire(c.side).unwrap();
                            sides.insert(ev.order_id, side);
                            let t = Tracked {
                                session: ev.session,
                                cl_ord_id: ev.cl_ord_id,
                                side,
                                open: c.qty,
                            };
                            assert!(open.insert(ev.order_id, t).is_none());
                        }
                        EventKind::Fill => {
                            assert!(ev.exec_id >= last_exec_id);
                            if ev.exec_id > last_exec_id {
                                assert_eq!(ev.exec_id, last_exec_id + 1);
                            }
                            last_exec_id = ev.exec_id;
                            let t = open.get_mut(&ev.order_id).expect("fill of an open order");
                            assert_eq!((t.session, t.cl_ord_id), (ev.session, ev.cl_ord_id));
                            t.open -= ev.qty;
                            assert_eq!(t.open, ev.leaves_qty);
                            trades.entry(ev.exec_id).or_default().push(*ev);
                            filled_qty += u64::from(ev.qty);
                        }
                        EventKind::Replaced => {
                            let t = open
                                .get_mut(&ev.order_id)
                                .expect("replace of an open order");
                            assert_eq!(t.session, ev.session);
                            replaced_delta += i64::from(ev.leaves_qty) - i64::from(t.open);
                            t.cl_ord_id = ev.cl_ord_id;
                            t.open = ev.leaves_qty;
                        }
                        EventKind::Canceled => {
                            let t = open.remove(&ev.order_id).expect("cancel of an open order");
                            assert_eq!(t.open, ev.qty);
                            canceled_qty += u64::from(ev.qty);
                        }
                        EventKind::Rejected | EventKind::MassCancelAck | EventKind::KeySwept => {}
                    }
                }
                open.retain(|_, t| t.open > 0);
                // The engine's view equals the events' view.
                assert_eq!(e.orders_live(), open.len());
                for (order_id, t) in &open {
                    let view = e.order(t.session, t.cl_ord_id).expect("open order is live");
                    assert_eq!(
                        (view.order_id, view.side, view.leaves_qty),
                        (*order_id, t.side, t.open)
                    );
                }
                e.assert_consistent();
            }
            // Both sides of every trade: same price and quantity, one buy and one sell.
            for (exec_id, fills) in &trades {
                assert_eq!(fills.len(), 2, "exec {exec_id}");
                assert_eq!(
                    (fills[0].price, fills[0].qty),
                    (fills[1].price, fills[1].qty)
                );
                assert_ne!(sides[&fills[0].order_id], sides[&fills[1].order_id]);
            }
            // Every unit accepted (or added by a replace) was filled, canceled or is open.
            let resting: u64 = (1..=3)
                .flat_map(|i| [BUY, SELL].map(|s| e.depth(i, s).map(|l| l.1).sum::<u64>()))
                .sum();
            let open_qty: u64 = open.values().map(|t| u64::from(t.open)).sum();
            assert_eq!(resting, open_qty);
            assert_eq!(
                accepted_qty as i64 + replaced_delta,
                (filled_qty + canceled_qty + resting) as i64,
                "seed {seed}"
            );
            assert!(
                trades.len() > 500,
                "the test should trade: {}",
                trades.len()
            );
            // The walk reaches every outcome (including both capacity limits).
            for r in RejectReason::ALL.iter().skip(4) {
                // The gateway gives these two, never the engine.
                if *r != RejectReason::ENGINE_BUSY && *r != RejectReason::ENGINE_UNAVAILABLE {
                    let key = format!("{:?}", EventReason::Reject(*r));
                    let n = reasons.get(&key).copied().unwrap_or(0);
                    assert!(n > 5, "{r:?}: {n}");
                }
            }
            for r in CancelReason::ALL {
                let key = format!("{:?}", EventReason::Cancel(*r));
                let n = reasons.get(&key).copied().unwrap_or(0);
                assert!(n > 5, "{r:?}: {n}");
            }
        }
    }

    /// `reset` leaves an engine that behaves exactly as a new one: after a
    /// script that rests orders of several keys on two instruments, trades
    /// (moving a collar reference), installs key limits and stalls
    /// mid-command, a reset engine is consistent and empty, and the same
    /// script then gives the same events as on a fresh engine.
    #[test]
    fn reset_engine_behaves_as_a_new_one() {
        let config = EngineConfig {
            instrument_risk: vec![InstrumentRisk {
                reference: Some(100),
                collar_bps: Some(500),
                ..InstrumentRisk::new(2)
            }],
            ..config()
        };
        let script = |e: &mut MatchingEngine| -> Vec<Event> {
            e.set_key_limits(&[KeyLimits {
                key_id: 7,
                max_order_notional: 0,
                max_open_notional: 2_000,
            }]);
            let mut out = Vec::new();
            let keyed = |c: Command, key_id: u64| Command { key_id, ..c };
            let commands = [
                keyed(new_order(A, 1, BUY, 100, 5), 7),
                keyed(new_order(B, 1, SELL, 103, 5), 8),
                keyed(new_order_on(A, 2, 2, BUY, 104, 3), 7),
                keyed(new_order_on(A, 3, 2, BUY, 106, 3), 7),
                keyed(new_order(C, 1, SELL, 99, 2), 9),
                keyed(new_order(A, 4, BUY, 101, 30), 7),
                replace(A, 5, 1, 102, 4),
                keyed(new_order_on(B, 2, 2, SELL, 104, 1), 8),
                keyed(new_order_on(B, 3, 2, SELL, 90, 1), 8),
            ];
            for c in commands {
                // Room for one step at a time: commands stall mid-way.
                let mut sink = Sink::new(crate::engine::EVENTS_PER_STEP_MAX);
                let mut done = e.submit(NOW, &c, &mut sink);
                out.append(&mut sink.events);
                while !done {
                    let mut sink = Sink::new(crate::engine::EVENTS_PER_STEP_MAX);
                    done = e.resume(NOW, &mut sink);
                    out.append(&mut sink.events);
                }
            }
            e.assert_consistent();
            out
        };
        let mut used = MatchingEngine::new(config.clone());
        let first = script(&mut used);
        assert!(used.orders_live() > 0 && used.counters().matches > 0);
        used.reset();
        used.assert_consistent();
        assert_eq!(used.orders_live(), 0);
        assert_eq!(used.counters(), EngineCounters::default());
        assert_eq!(used.best(1, BUY), None);
        let again = script(&mut used);
        let fresh = script(&mut MatchingEngine::new(config));
        assert_eq!(again, fresh);
        assert_eq!(again, first);
    }
}
