//! The embedded matching engine through its public interface: it allocates
//! nothing after `MatchingEngine::new`, stalls included, and it is driven only
//! through the `Engine` trait.

use ordergate::engine::book::{EngineConfig, InstrumentRisk, MatchingEngine};
use ordergate::engine::{
    Command, CommandKind, EVENTS_PER_STEP_MAX, Engine, Event, EventKind, EventSink, KeyLimits,
    SessionId,
};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

/// A sink over a preallocated buffer, with a room budget per reactor that a
/// test can squeeze; it never grows.
struct FixedSink {
    events: Vec<Event>,
    room: [usize; 2],
}

impl FixedSink {
    fn new(capacity: usize) -> FixedSink {
        FixedSink {
            events: Vec::with_capacity(capacity),
            room: [usize::MAX; 2],
        }
    }
}

impl EventSink for FixedSink {
    fn room(&mut self, session: SessionId) -> usize {
        self.room[session.reactor() as usize]
    }
    fn emit(&mut self, event: &Event) {
        let room = &mut self.room[event.session.reactor() as usize];
        assert!(*room > 0);
        *room = room.saturating_sub(1);
        assert!(
            self.events.len() < self.events.capacity(),
            "test sink too small"
        );
        self.events.push(*event);
    }
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// Keys 1..=3; each session's key is fixed by its slot (two sessions of
/// one key on different reactors), key 1 and 2 with engine-side limits.
fn random_command(rng: &mut XorShift) -> Command {
    let (reactor, slot) = (rng.below(2) as u16, rng.below(3) as u16);
    let session = SessionId::new(reactor, slot, 1);
    let kind = match rng.below(1_000) {
        0..600 => CommandKind::NewOrder,
        600..750 => CommandKind::Cancel,
        750..980 => CommandKind::Replace,
        980..993 => CommandKind::MassCancel,
        993..996 => CommandKind::CancelOnDisconnect,
        996..998 => CommandKind::CancelForRevocation,
        _ => CommandKind::CancelForKey,
    };
    // Now and then a price far outside the collar, or 0.
    let price = match rng.below(100) {
        0 => 0,
        1 => 3_000,
        _ => 1_000 + rng.below(40) as i64,
    };
    Command {
        cl_ord_id: rng.below(300),
        orig_cl_ord_id: rng.below(300),
        key_id: 1 + u64::from(slot),
        price,
        qty: 1 + rng.below(50) as u32,
        instrument_id: rng.below(5) as u32,
        side: if kind == CommandKind::MassCancel {
            rng.below(3) as u8
        } else {
            1 + rng.below(2) as u8
        },
        ord_type: 1,
        tif: if rng.below(5) == 0 { 3 } else { 0 },
        ..Command::empty(kind, session)
    }
}

/// Runs one command to the end through the trait, squeezing the room to
/// `EVENTS_PER_STEP_MAX` per call every few commands.
fn drive<E: Engine>(engine: &mut E, now: u64, c: &Command, sink: &mut FixedSink, squeeze: bool) {
    sink.events.clear();
    let room = if squeeze {
        EVENTS_PER_STEP_MAX
    } else {
        usize::MAX
    };
    sink.room = [room; 2];
    let mut done = engine.submit(now, c, sink);
    while !done {
        sink.room = [room; 2];
        done = engine.resume(now, sink);
    }
}

#[test]
fn nothing_is_allocated_after_new() {
    let config = EngineConfig {
        instruments: 4,
        orders_max: 512,
        levels_per_side_max: 32,
        first_order_id: 1,
        keys_max: 8,
        // Instrument 2 has a reference before its first trade.
        instrument_risk: vec![InstrumentRisk {
            reference: Some(1_020),
            ..InstrumentRisk::new(2)
        }],
        ..EngineConfig::default()
    };
    let mut sink = FixedSink::new(config.orders_max + 16);
    let mut engine = MatchingEngine::new(config);
    let limits = [
        KeyLimits {
            key_id: 1,
            max_order_notional: 30_000,
            max_open_notional: 600_000,
        },
        KeyLimits {
            key_id: 2,
            max_order_notional: 0,
            max_open_notional: 600_000,
        },
    ];
    let mut rng = XorShift(0x0bad_5eed);
    let commands: Vec<Command> = (0..100_000).map(|_| random_command(&mut rng)).collect();

    let mut live_peak = 0;
    let before = allocations();
    // Installing limits (a reload) allocates nothing either.
    engine.set_key_limits(&limits);
    for (i, c) in commands.iter().enumerate() {
        drive(&mut engine, i as u64, c, &mut sink, i % 3 == 0);
        live_peak = live_peak.max(engine.orders_live());
        if i % 10_000 == 0 {
            engine.set_key_limits(&limits[i / 10_000 % 2..]);
        }
    }
    assert_eq!(allocations() - before, 0, "the engine allocated");
    engine.assert_consistent();
    // The workload really exercised the book, the back-pressure path, the
    // collars, the key limits and the key sweeps.
    let counters = engine.counters();
    assert!(counters.matches > 10_000, "{counters:?}");
    assert!(counters.stalls > 1_000, "{counters:?}");
    assert!(counters.price_rejects > 500, "{counters:?}");
    assert!(counters.notional_rejects > 100, "{counters:?}");
    assert!(counters.open_notional_rejects > 100, "{counters:?}");
    assert!(counters.key_sweep_canceled > 100, "{counters:?}");
    assert!(live_peak > 50, "{live_peak} {counters:?}");
}

#[test]
fn the_default_configuration_starts_and_trades() {
    let mut engine = MatchingEngine::new(EngineConfig::default());
    let mut sink = FixedSink::new(16);
    let maker = SessionId::new(0, 1, 1);
    let taker = SessionId::new(1, 1, 1);
    let order = |session, side, cl| Command {
        cl_ord_id: cl,
        price: 1_000,
        qty: 5,
        instrument_id: 100,
        side,
        ord_type: 1,
        tif: 0,
        ..Command::empty(CommandKind::NewOrder, session)
    };
    drive(&mut engine, 1, &order(maker, 2, 1), &mut sink, false);
    drive(&mut engine, 2, &order(taker, 1, 1), &mut sink, false);
    let kinds: Vec<_> = sink.events.iter().map(|e| (e.session, e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (taker, EventKind::Accepted),
            (taker, EventKind::Fill),
            (maker, EventKind::Fill)
        ]
    );
    assert!(sink.events.iter().all(|e| e.transact_time_ns == 2));
    assert_eq!(engine.orders_live(), 0);
}
