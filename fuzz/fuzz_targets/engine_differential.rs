//! Differential matching: the embedded engine (`engine::book::MatchingEngine`)
//! against a naive reference book written here — one `Vec` of resting
//! orders kept sorted by (instrument, side, price priority, time), searched
//! linearly — for arbitrary command sequences. Both must send the same
//! events, field for field and in the same order (fills, cancels, rejects
//! with their reasons, acks, key sweeps), leave the same book (every order,
//! every level) and count the same.
//!
//! The reference models all of the engine's rules (module docs of
//! `engine::book`): validation order, price collars (a configured
//! reference, none, and prices ≤ 0 allowed), the key limits (notional at the
//! fill prices, open notional) installed and changed mid-run, and the three
//! capacity limits (order pool, levels per side, key records), which the
//! configuration below makes small enough to reach; replace priority rules;
//! mass cancel, cancel-on-disconnect, CancelForRevocation and the key sweep
//! (CancelForKey), in entry order. The sink gives each reactor a room the
//! input chooses (as little as `EVENTS_PER_STEP_MAX`), so commands stall
//! and resume mid-step: stalls must not change any event.
//!
//! One engine is built per process and `reset` between inputs.
#![no_main]

use std::sync::Mutex;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ordergate::engine::book::{EngineConfig, InstrumentRisk, MatchingEngine, OrderView};
use ordergate::engine::{
    Command, CommandKind, Engine, Event, EventKind, EventReason, EventSink, KeyLimits, Nanos,
    SessionId,
};
use ordergate::wire::codes::{CancelReason, RejectReason, Side};

const INSTRUMENTS: u32 = 3;
const ORDERS_MAX: usize = 8;
const LEVELS: usize = 3;
const KEYS_MAX: usize = 2;
const T0: Nanos = 1_000_000;

/// Sessions on three reactors; the last shares its slot with the first
/// (a newer generation: a different session).
const SESSIONS: [SessionId; 5] = [
    SessionId::new(0, 1, 1),
    SessionId::new(0, 2, 1),
    SessionId::new(1, 1, 1),
    SessionId::new(2, 1, 1),
    SessionId::new(0, 1, 2),
];
const KEYS: [u64; 4] = [1, 2, 3, 4];

fn config() -> EngineConfig {
    EngineConfig {
        instruments: INSTRUMENTS,
        orders_max: ORDERS_MAX,
        levels_per_side_max: LEVELS,
        first_order_id: 1,
        keys_max: KEYS_MAX,
        collar_bps: 1_000,
        instrument_risk: vec![
            // A reference before the first trade, a 5 % collar.
            InstrumentRisk {
                reference: Some(1_000),
                collar_bps: Some(500),
                ..InstrumentRisk::new(1)
            },
            // Instrument 2: no reference (no band before its first trade).
            // Prices ≤ 0 allowed, a 100 % collar around −5.
            InstrumentRisk {
                reference: Some(-5),
                collar_bps: Some(10_000),
                nonpositive_prices: true,
                ..InstrumentRisk::new(3)
            },
        ],
    }
}

// ----- input ----------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
struct LimitSpec {
    key: u8,
    order: u8,
    open: u8,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Price {
    /// Near the instrument's usual prices.
    Near(i8),
    /// The edges of the type.
    Extreme(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    New {
        session: u8,
        key: u8,
        cl: u8,
        instrument: u8,
        side: u8,
        ord_type: u8,
        tif: u8,
        price: Price,
        qty: u8,
    },
    Cancel {
        session: u8,
        cl: u8,
        orig: u8,
        instrument: u8,
    },
    Replace {
        session: u8,
        cl: u8,
        orig: u8,
        instrument: u8,
        price: Price,
        qty: u8,
    },
    Mass {
        session: u8,
        cl: u8,
        instrument: u8,
        side: u8,
    },
    CancelOnDisconnect {
        session: u8,
    },
    CancelForRevocation {
        session: u8,
        cl: u8,
    },
    CancelForKey {
        reactor: u8,
        key: u8,
        tag: u8,
    },
    Limits([LimitSpec; 3]),
    Tick,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Event-ring room per reactor after each drain: 0 = unlimited, else
    /// 3 + room % 5 (never below `EVENTS_PER_STEP_MAX`).
    room: u8,
    ops: Vec<Op>,
}

fn session(s: u8) -> SessionId {
    SESSIONS[s as usize % SESSIONS.len()]
}

fn key(k: u8) -> u64 {
    KEYS[k as usize % KEYS.len()]
}

/// Client order ids: a handful, so that duplicates and unknown orders are
/// common.
fn cl(c: u8) -> u64 {
    u64::from(c % 8)
}

/// 0 and 4 are unknown; 1–3 exist.
fn instrument(i: u8) -> u32 {
    u32::from(i % 5)
}

fn price(instrument: u32, p: Price) -> i64 {
    match p {
        Price::Near(p) => match instrument {
            2 => 100 + i64::from(p) / 4,
            3 => i64::from(p) / 16,
            _ => 1_000 + i64::from(p),
        },
        Price::Extreme(e) => {
            [i64::MAX, i64::MIN, i64::MIN + 1, i64::MAX - 1, 1, -1, 0][e as usize % 7]
        }
    }
}

/// Mostly small; sometimes 0 (invalid) or near `u32::MAX`.
fn qty(q: u8) -> u32 {
    if q >= 250 {
        u32::MAX - u32::from(q - 250)
    } else {
        u32::from(q % 12)
    }
}

fn tif(t: u8) -> u8 {
    [0, 3, 0, 3, 1][t as usize % 5]
}

fn ord_type(o: u8) -> u8 {
    if o < 240 { 1 } else { o % 3 }
}

fn limits(specs: &[LimitSpec; 3]) -> Vec<KeyLimits> {
    specs
        .iter()
        .map(|s| KeyLimits {
            key_id: u64::from(s.key % 5),
            max_order_notional: u64::from(s.order % 16) * 2_000,
            max_open_notional: u64::from(s.open % 16) * 3_000,
        })
        .collect()
}

fn command(op: &Op) -> Option<Command> {
    Some(match *op {
        Op::New {
            session: s,
            key: k,
            cl: c,
            instrument: i,
            side,
            ord_type: o,
            tif: t,
            price: p,
            qty: q,
        } => {
            let instrument_id = instrument(i);
            Command {
                key_id: key(k),
                cl_ord_id: cl(c),
                instrument_id,
                side: side % 4,
                ord_type: ord_type(o),
                tif: tif(t),
                price: price(instrument_id, p),
                qty: qty(q),
                ..Command::empty(CommandKind::NewOrder, session(s))
            }
        }
        Op::Cancel {
            session: s,
            cl: c,
            orig,
            instrument: i,
        } => Command {
            cl_ord_id: cl(c),
            orig_cl_ord_id: cl(orig),
            instrument_id: instrument(i),
            ..Command::empty(CommandKind::Cancel, session(s))
        },
        Op::Replace {
            session: s,
            cl: c,
            orig,
            instrument: i,
            price: p,
            qty: q,
        } => {
            let instrument_id = instrument(i);
            Command {
                cl_ord_id: cl(c),
                orig_cl_ord_id: cl(orig),
                instrument_id,
                price: price(instrument_id, p),
                qty: qty(q),
                ..Command::empty(CommandKind::Replace, session(s))
            }
        }
        Op::Mass {
            session: s,
            cl: c,
            instrument: i,
            side,
        } => Command {
            cl_ord_id: cl(c),
            instrument_id: instrument(i),
            side: side % 4,
            ..Command::empty(CommandKind::MassCancel, session(s))
        },
        Op::CancelOnDisconnect { session: s } => {
            Command::empty(CommandKind::CancelOnDisconnect, session(s))
        }
        Op::CancelForRevocation { session: s, cl: c } => Command {
            cl_ord_id: u64::MAX - u64::from(c % 2),
            ..Command::empty(CommandKind::CancelForRevocation, session(s))
        },
        Op::CancelForKey {
            reactor,
            key: k,
            tag,
        } => Command {
            key_id: key(k),
            orig_cl_ord_id: u64::from(tag),
            ..Command::empty(
                CommandKind::CancelForKey,
                SessionId::new(u16::from(reactor % 3), 0, 0),
            )
        },
        Op::Limits(_) | Op::Tick => return None,
    })
}

// ----- the reference book ---------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Resting {
    session: SessionId,
    key: u64,
    cl: u64,
    order_id: u64,
    instrument: u32,
    side: u8,
    price: i64,
    leaves: u32,
    /// When it first rested: session and key sweeps go in this order.
    entry: u64,
    /// Time priority within its price.
    time: u64,
}

struct Reference {
    /// Every resting order, sorted by (instrument, side, best price first,
    /// time).
    book: Vec<Resting>,
    /// Each instrument's collar: reference (last trade), bps, prices ≤ 0.
    reference: [Option<i64>; INSTRUMENTS as usize],
    bps: [u32; INSTRUMENTS as usize],
    nonpositive: [bool; INSTRUMENTS as usize],
    /// Installed key limits, as given (the first with a limit wins).
    limits: Vec<KeyLimits>,
    next_order_id: u64,
    next_exec_id: u64,
    clock: u64,
    // Counters, as the engine's.
    commands: u64,
    rejects: u64,
    matches: u64,
    price_rejects: u64,
    notional_rejects: u64,
    open_notional_rejects: u64,
    key_sweeps: u64,
    key_sweep_canceled: u64,
}

fn notional(price: i64, qty: u32) -> u128 {
    u128::from(price.unsigned_abs()) * u128::from(qty)
}

/// A buy trades with resting prices at or below its limit, a sell at or
/// above.
fn crosses(side: u8, limit: i64, resting: i64) -> bool {
    if side == 1 {
        resting <= limit
    } else {
        resting >= limit
    }
}

fn event(kind: EventKind, session: SessionId, now: Nanos) -> Event {
    Event {
        transact_time_ns: now,
        ..Event::empty(kind, session)
    }
}

impl Reference {
    fn new(config: &EngineConfig) -> Reference {
        let mut r = Reference {
            book: Vec::new(),
            reference: [None; INSTRUMENTS as usize],
            bps: [config.collar_bps; INSTRUMENTS as usize],
            nonpositive: [false; INSTRUMENTS as usize],
            limits: Vec::new(),
            next_order_id: config.first_order_id,
            next_exec_id: 1,
            clock: 0,
            commands: 0,
            rejects: 0,
            matches: 0,
            price_rejects: 0,
            notional_rejects: 0,
            open_notional_rejects: 0,
            key_sweeps: 0,
            key_sweep_canceled: 0,
        };
        for ir in &config.instrument_risk {
            let i = ir.instrument as usize - 1;
            r.reference[i] = ir.reference;
            r.bps[i] = ir.collar_bps.unwrap_or(config.collar_bps);
            r.nonpositive[i] = ir.nonpositive_prices;
        }
        r
    }

    fn sort(&mut self) {
        self.book.sort_by_key(|o| {
            let price = if o.side == 1 {
                -i128::from(o.price)
            } else {
                i128::from(o.price)
            };
            (o.instrument, o.side, price, o.time)
        });
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn find(&self, session: SessionId, cl: u64) -> Option<usize> {
        self.book
            .iter()
            .position(|o| o.session == session && o.cl == cl)
    }

    fn in_band(&self, instrument: u32, side: u8, price: i64) -> bool {
        let i = instrument as usize - 1;
        if price <= 0 && !self.nonpositive[i] {
            return false;
        }
        let Some(reference) = self.reference[i] else {
            return true;
        };
        let band = (u128::from(reference.unsigned_abs()) * u128::from(self.bps[i]) / 10_000).max(1);
        let (price, reference, band) = (i128::from(price), i128::from(reference), band as i128);
        if side == 1 {
            price <= reference + band
        } else {
            price >= reference - band
        }
    }

    fn limits_of(&self, key: u64) -> Option<KeyLimits> {
        self.limits
            .iter()
            .find(|l| l.key_id == key && (l.max_order_notional != 0 || l.max_open_notional != 0))
            .copied()
    }

    /// What an aggressor could take: (quantity, orders touched, notional).
    fn crossing(&self, instrument: u32, side: u8, price: i64, qty: u32) -> (u32, u32, u128) {
        let (mut taken, mut orders, mut value) = (0u32, 0u32, 0u128);
        for o in self
            .book
            .iter()
            .filter(|o| o.instrument == instrument && o.side != side)
        {
            if taken == qty || !crosses(side, price, o.price) {
                break;
            }
            let take = o.leaves.min(qty - taken);
            taken += take;
            orders += 1;
            value += notional(o.price, take);
        }
        (taken, orders, value)
    }

    fn open_notional(&self, key: u64) -> u128 {
        self.book
            .iter()
            .filter(|o| o.key == key)
            .map(|o| notional(o.price, o.leaves))
            .sum()
    }

    fn risk(
        &self,
        limits: KeyLimits,
        crossing: u128,
        price: i64,
        rest: u32,
        replaced: u128,
    ) -> Option<RejectReason> {
        let rest = notional(price, rest);
        if limits.max_order_notional != 0 && crossing + rest > u128::from(limits.max_order_notional)
        {
            return Some(RejectReason::RISK_MAX_NOTIONAL);
        }
        if limits.max_open_notional != 0 {
            let open = self.open_notional(limits.key_id);
            let after = open - replaced + rest;
            if after > open && after > u128::from(limits.max_open_notional) {
                return Some(RejectReason::RISK_MAX_OPEN_NOTIONAL);
            }
        }
        None
    }

    fn levels(&self, instrument: u32, side: u8) -> Vec<i64> {
        let mut prices: Vec<i64> = self
            .book
            .iter()
            .filter(|o| o.instrument == instrument && o.side == side)
            .map(|o| o.price)
            .collect();
        prices.dedup();
        prices
    }

    fn reject(&mut self, c: &Command, reason: RejectReason, now: Nanos, out: &mut Vec<Event>) {
        self.rejects += 1;
        match reason {
            RejectReason::PRICE_OUT_OF_BAND => self.price_rejects += 1,
            RejectReason::RISK_MAX_NOTIONAL => self.notional_rejects += 1,
            RejectReason::RISK_MAX_OPEN_NOTIONAL => self.open_notional_rejects += 1,
            _ => {}
        }
        out.push(Event {
            cl_ord_id: c.cl_ord_id,
            reason: EventReason::Reject(reason),
            ..event(EventKind::Rejected, c.session, now)
        });
    }

    fn submit(&mut self, now: Nanos, c: &Command, out: &mut Vec<Event>) {
        self.commands += 1;
        match c.kind {
            CommandKind::NewOrder => self.new_order(now, c, out),
            CommandKind::Cancel => self.cancel(now, c, out),
            CommandKind::Replace => self.replace(now, c, out),
            CommandKind::MassCancel => {
                if c.instrument_id > INSTRUMENTS {
                    return self.reject(c, RejectReason::UNKNOWN_INSTRUMENT, now, out);
                }
                if c.side > 2 {
                    return self.reject(c, RejectReason::INVALID_FIELD, now, out);
                }
                let count = self.sweep(
                    now,
                    out,
                    c.session,
                    None,
                    c.instrument_id,
                    c.side,
                    CancelReason::MASS_CANCEL,
                );
                out.push(Event {
                    cl_ord_id: c.cl_ord_id,
                    qty: count,
                    ..event(EventKind::MassCancelAck, c.session, now)
                });
            }
            CommandKind::CancelOnDisconnect => {
                self.sweep(
                    now,
                    out,
                    c.session,
                    None,
                    0,
                    0,
                    CancelReason::CANCEL_ON_DISCONNECT,
                );
            }
            CommandKind::CancelForRevocation => {
                let count = self.sweep(now, out, c.session, None, 0, 0, CancelReason::KEY_REVOKED);
                out.push(Event {
                    cl_ord_id: c.cl_ord_id,
                    qty: count,
                    ..event(EventKind::MassCancelAck, c.session, now)
                });
            }
            CommandKind::CancelForKey => {
                self.key_sweeps += 1;
                let count = self.sweep(
                    now,
                    out,
                    c.session,
                    Some(c.key_id),
                    0,
                    0,
                    CancelReason::KEY_REVOKED,
                );
                self.key_sweep_canceled += u64::from(count);
                out.push(Event {
                    cl_ord_id: c.key_id,
                    order_id: c.orig_cl_ord_id,
                    qty: count,
                    ..event(EventKind::KeySwept, c.session, now)
                });
            }
        }
    }

    /// Cancels, in entry order, the orders of `session` (or of `key`, each
    /// told to its own session) on `instrument` (0: all) and `side` (0:
    /// both). Returns the count.
    #[allow(clippy::too_many_arguments)]
    fn sweep(
        &mut self,
        now: Nanos,
        out: &mut Vec<Event>,
        session: SessionId,
        key: Option<u64>,
        instrument: u32,
        side: u8,
        reason: CancelReason,
    ) -> u32 {
        let mut chosen: Vec<Resting> = self
            .book
            .iter()
            .filter(|o| match key {
                Some(k) => o.key == k,
                None => o.session == session,
            })
            .filter(|o| {
                (instrument == 0 || o.instrument == instrument) && (side == 0 || o.side == side)
            })
            .copied()
            .collect();
        chosen.sort_by_key(|o| o.entry);
        for o in &chosen {
            out.push(Event {
                cl_ord_id: o.cl,
                order_id: o.order_id,
                qty: o.leaves,
                reason: EventReason::Cancel(reason),
                ..event(EventKind::Canceled, o.session, now)
            });
            let at = self.find(o.session, o.cl).expect("chosen from the book");
            self.book.remove(at);
        }
        chosen.len() as u32
    }

    fn new_order(&mut self, now: Nanos, c: &Command, out: &mut Vec<Event>) {
        if c.instrument_id == 0 || c.instrument_id > INSTRUMENTS {
            return self.reject(c, RejectReason::UNKNOWN_INSTRUMENT, now, out);
        }
        let valid =
            matches!(c.side, 1 | 2) && c.ord_type == 1 && matches!(c.tif, 0 | 3) && c.qty > 0;
        if !valid {
            return self.reject(c, RejectReason::INVALID_FIELD, now, out);
        }
        if self.find(c.session, c.cl_ord_id).is_some() {
            return self.reject(c, RejectReason::DUPLICATE_ORDER_ID, now, out);
        }
        if !self.in_band(c.instrument_id, c.side, c.price) {
            return self.reject(c, RejectReason::PRICE_OUT_OF_BAND, now, out);
        }
        let day = c.tif == 0;
        let (taken, orders, value) = self.crossing(c.instrument_id, c.side, c.price, c.qty);
        if let Some(limits) = self.limits_of(c.key_id) {
            let rest = if day { c.qty - taken } else { 0 };
            if let Some(reason) = self.risk(limits, value, c.price, rest, 0) {
                return self.reject(c, reason, now, out);
            }
        }
        if day && taken < c.qty {
            let pool_full = self.book.len() == ORDERS_MAX;
            let levels = self.levels(c.instrument_id, c.side);
            let level_blocked = levels.len() == LEVELS && !levels.contains(&c.price);
            let mut keys: Vec<u64> = self.book.iter().map(|o| o.key).collect();
            keys.sort_unstable();
            keys.dedup();
            let key_blocked = keys.len() == KEYS_MAX && !keys.contains(&c.key_id);
            if (pool_full && orders == 0) || level_blocked || key_blocked {
                return self.reject(c, RejectReason::ENGINE_REJECT, now, out);
            }
        }
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let order = Resting {
            session: c.session,
            key: c.key_id,
            cl: c.cl_ord_id,
            order_id,
            instrument: c.instrument_id,
            side: c.side,
            price: c.price,
            leaves: c.qty,
            entry: 0,
            time: 0,
        };
        self.aggress(now, order, c.tif == 3, false, out);
    }

    /// Matches an aggressor (a new order, or a replaced order taken out of
    /// the book); announces it with its first action; rests the rest.
    fn aggress(
        &mut self,
        now: Nanos,
        mut a: Resting,
        ioc: bool,
        replaced: bool,
        out: &mut Vec<Event>,
    ) {
        let mut announce = true;
        let announce_event = |a: &Resting, out: &mut Vec<Event>, announce: &mut bool| {
            if std::mem::take(announce) {
                out.push(if replaced {
                    Event {
                        cl_ord_id: a.cl,
                        order_id: a.order_id,
                        leaves_qty: a.leaves,
                        ..event(EventKind::Replaced, a.session, now)
                    }
                } else {
                    Event {
                        cl_ord_id: a.cl,
                        order_id: a.order_id,
                        ..event(EventKind::Accepted, a.session, now)
                    }
                });
            }
        };
        loop {
            let best = self
                .book
                .iter()
                .position(|o| o.instrument == a.instrument && o.side != a.side);
            let best = best.filter(|&i| crosses(a.side, a.price, self.book[i].price));
            let Some(i) = best else {
                announce_event(&a, out, &mut announce);
                if ioc {
                    out.push(Event {
                        cl_ord_id: a.cl,
                        order_id: a.order_id,
                        qty: a.leaves,
                        reason: EventReason::Cancel(CancelReason::IMMEDIATE_OR_CANCEL),
                        ..event(EventKind::Canceled, a.session, now)
                    });
                } else {
                    if !replaced {
                        a.entry = self.tick();
                    }
                    a.time = self.tick();
                    self.book.push(a);
                    self.sort();
                }
                return;
            };
            announce_event(&a, out, &mut announce);
            let resting = &mut self.book[i];
            let qty = a.leaves.min(resting.leaves);
            a.leaves -= qty;
            resting.leaves -= qty;
            let resting = *resting;
            let exec_id = self.next_exec_id;
            self.next_exec_id += 1;
            self.matches += 1;
            self.reference[a.instrument as usize - 1] = Some(resting.price);
            let fill = Event {
                exec_id,
                price: resting.price,
                qty,
                ..event(EventKind::Fill, a.session, now)
            };
            out.push(Event {
                cl_ord_id: a.cl,
                order_id: a.order_id,
                leaves_qty: a.leaves,
                ..fill
            });
            out.push(Event {
                session: resting.session,
                cl_ord_id: resting.cl,
                order_id: resting.order_id,
                leaves_qty: resting.leaves,
                ..fill
            });
            if resting.leaves == 0 {
                self.book.remove(i);
            }
            if a.leaves == 0 {
                return;
            }
        }
    }

    fn named(&self, c: &Command) -> Option<usize> {
        self.find(c.session, c.orig_cl_ord_id)
            .filter(|&i| self.book[i].instrument == c.instrument_id)
    }

    fn cancel(&mut self, now: Nanos, c: &Command, out: &mut Vec<Event>) {
        let Some(i) = self.named(c) else {
            return self.reject(c, RejectReason::UNKNOWN_ORDER, now, out);
        };
        let o = self.book.remove(i);
        out.push(Event {
            cl_ord_id: c.cl_ord_id,
            order_id: o.order_id,
            qty: o.leaves,
            reason: EventReason::Cancel(CancelReason::USER),
            ..event(EventKind::Canceled, c.session, now)
        });
    }

    fn replace(&mut self, now: Nanos, c: &Command, out: &mut Vec<Event>) {
        if c.qty == 0 {
            return self.reject(c, RejectReason::INVALID_FIELD, now, out);
        }
        let Some(i) = self.named(c) else {
            return self.reject(c, RejectReason::UNKNOWN_ORDER, now, out);
        };
        if c.cl_ord_id != c.orig_cl_ord_id && self.find(c.session, c.cl_ord_id).is_some() {
            return self.reject(c, RejectReason::DUPLICATE_ORDER_ID, now, out);
        }
        let o = self.book[i];
        let keeps_priority = c.price == o.price && c.qty <= o.leaves;
        if c.price != o.price && !self.in_band(o.instrument, o.side, c.price) {
            return self.reject(c, RejectReason::PRICE_OUT_OF_BAND, now, out);
        }
        let (taken, _, value) = self.crossing(o.instrument, o.side, c.price, c.qty);
        if !keeps_priority && let Some(limits) = self.limits_of(o.key) {
            let replaced = notional(o.price, o.leaves);
            if let Some(reason) = self.risk(limits, value, c.price, c.qty - taken, replaced) {
                return self.reject(c, reason, now, out);
            }
        }
        if !keeps_priority && c.price != o.price {
            let alone = self
                .book
                .iter()
                .filter(|x| x.instrument == o.instrument && x.side == o.side && x.price == o.price)
                .count()
                == 1;
            let levels = self.levels(o.instrument, o.side);
            let blocked = !alone && levels.len() == LEVELS && !levels.contains(&c.price);
            if blocked && taken < c.qty {
                return self.reject(c, RejectReason::ENGINE_REJECT, now, out);
            }
        }
        self.book[i].cl = c.cl_ord_id;
        if keeps_priority {
            self.book[i].leaves = c.qty;
            out.push(Event {
                cl_ord_id: c.cl_ord_id,
                order_id: o.order_id,
                leaves_qty: c.qty,
                ..event(EventKind::Replaced, c.session, now)
            });
            return;
        }
        let mut a = self.book.remove(i);
        a.price = c.price;
        a.leaves = c.qty;
        self.aggress(now, a, false, true, out);
    }
}

// ----- the engine side ------------------------------------------------------

/// Collects events; each reactor has `room` until the driver drains it.
struct Sink {
    events: Vec<Event>,
    room: [usize; 3],
    refill: usize,
}

impl EventSink for Sink {
    fn room(&mut self, session: SessionId) -> usize {
        self.room[session.reactor() as usize]
    }
    fn emit(&mut self, event: &Event) {
        let room = &mut self.room[event.session.reactor() as usize];
        assert!(*room > 0, "emitted beyond the room promised: {event:?}");
        *room -= 1;
        self.events.push(*event);
    }
}

static ENGINE: Mutex<Option<MatchingEngine>> = Mutex::new(None);

fn book_of_engine(e: &MatchingEngine) -> Vec<(u32, Side, Vec<(i64, u64, u32)>)> {
    let mut out = Vec::new();
    for i in 1..=INSTRUMENTS {
        for side in [Side::Buy, Side::Sell] {
            out.push((i, side, e.depth(i, side).collect()));
        }
    }
    out
}

fn book_of_reference(r: &Reference) -> Vec<(u32, Side, Vec<(i64, u64, u32)>)> {
    let mut out = Vec::new();
    for i in 1..=INSTRUMENTS {
        for side in [Side::Buy, Side::Sell] {
            let mut levels: Vec<(i64, u64, u32)> = Vec::new();
            for o in r
                .book
                .iter()
                .filter(|o| o.instrument == i && o.side == side as u8)
            {
                match levels.last_mut() {
                    Some(l) if l.0 == o.price => {
                        l.1 += u64::from(o.leaves);
                        l.2 += 1;
                    }
                    _ => levels.push((o.price, u64::from(o.leaves), 1)),
                }
            }
            out.push((i, side, levels));
        }
    }
    out
}

fuzz_target!(|input: Input| {
    let mut guard = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let engine = guard.get_or_insert_with(|| MatchingEngine::new(config()));
    engine.reset();
    let mut reference = Reference::new(engine.config());
    let refill = if input.room == 0 {
        usize::MAX
    } else {
        3 + input.room as usize % 5
    };
    let mut sink = Sink {
        events: Vec::new(),
        room: [refill; 3],
        refill,
    };
    let mut now = T0;
    for (step, op) in input.ops.iter().take(256).enumerate() {
        match op {
            Op::Tick => {
                now += 1_000;
                continue;
            }
            Op::Limits(specs) => {
                let l = limits(specs);
                engine.set_key_limits(&l);
                reference.limits = l;
                continue;
            }
            _ => {}
        }
        let c = command(op).expect("a command op");
        sink.events.clear();
        let mut done = engine.submit(now, &c, &mut sink);
        while !done {
            // The reactors drain their rings; the engine goes on.
            sink.room = [sink.refill; 3];
            done = engine.resume(now, &mut sink);
        }
        let mut expected = Vec::new();
        reference.submit(now, &c, &mut expected);
        assert_eq!(
            sink.events, expected,
            "step {step}: {c:?}\nengine events (left) differ from the reference's (right)"
        );
        engine.assert_consistent();
        assert_eq!(
            book_of_engine(engine),
            book_of_reference(&reference),
            "step {step}: books differ after {c:?}"
        );
        assert_eq!(engine.orders_live(), reference.book.len(), "step {step}");
        for o in &reference.book {
            let side = Side::from_wire(o.side).expect("resting side");
            assert_eq!(
                engine.order(o.session, o.cl),
                Some(OrderView {
                    order_id: o.order_id,
                    instrument_id: o.instrument,
                    side,
                    price: o.price,
                    leaves_qty: o.leaves,
                }),
                "step {step}"
            );
        }
        let k = engine.counters();
        assert_eq!(
            (
                k.commands,
                k.rejects,
                k.matches,
                k.price_rejects,
                k.notional_rejects,
                k.open_notional_rejects,
                k.key_sweeps,
                k.key_sweep_canceled,
            ),
            (
                reference.commands,
                reference.rejects,
                reference.matches,
                reference.price_rejects,
                reference.notional_rejects,
                reference.open_notional_rejects,
                reference.key_sweeps,
                reference.key_sweep_canceled,
            ),
            "step {step}: counters"
        );
        sink.room = [sink.refill; 3];
    }
});
