//! Matching engine steady-state costs, with a realistic book around the
//! action (20 levels a side, 5 orders a level, on a 100-instrument engine).
//!
//! * `rest_then_cancel`: a non-crossing NewOrder that joins an existing level
//!   inside the book, then its CancelOrder (one iteration = both commands).
//! * `rest_then_cross`: a resting sell at the best ask, then a buy that fills
//!   exactly that order (one iteration = both commands: the re-add is the
//!   first).
//! * `rest_then_cancel_fresh_ids_1mi`: `rest_then_cancel` on the default
//!   1 Mi-order engine with a new cl_ord_id each time: the lookup tables'
//!   cache and TLB misses (why the tables are on huge pages).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ordergate::engine::book::{EngineConfig, MatchingEngine};
use ordergate::engine::{Command, CommandKind, Engine, Event, EventSink, SessionId};
use ordergate::sys::HugePages;

/// Unlimited room; the events only go through `black_box`.
struct NullSink;

impl EventSink for NullSink {
    fn room(&mut self, _session: SessionId) -> usize {
        usize::MAX
    }
    fn emit(&mut self, event: &Event) {
        black_box(event);
    }
}

const INSTRUMENT: u32 = 7;
const MAKER: SessionId = SessionId::new(1, 9, 1);
const TRADER: SessionId = SessionId::new(0, 3, 1);

fn order(session: SessionId, cl_ord_id: u64, side: u8, price: i64, qty: u32) -> Command {
    Command {
        cl_ord_id,
        price,
        qty,
        instrument_id: INSTRUMENT,
        side,
        ord_type: 1,
        tif: 0,
        ..Command::empty(CommandKind::NewOrder, session)
    }
}

/// Bids 980..=999 and asks 1001..=1020, five orders of 10 at each level.
fn engine_with_book() -> MatchingEngine {
    let mut engine = MatchingEngine::new_in(
        EngineConfig {
            orders_max: 1 << 16,
            ..EngineConfig::default()
        },
        &HugePages,
    );
    let mut cl = 1_000_000;
    for level in 0..20 {
        for _ in 0..5 {
            for (side, price) in [(1, 999 - level), (2, 1_001 + level)] {
                cl += 1;
                assert!(engine.submit(0, &order(MAKER, cl, side, price, 10), &mut NullSink));
            }
        }
    }
    engine
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group
        .sample_size(60)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let mut engine = engine_with_book();
    let new = order(TRADER, 1, 1, 997, 3);
    let cancel = Command {
        cl_ord_id: 2,
        orig_cl_ord_id: 1,
        instrument_id: INSTRUMENT,
        ..Command::empty(CommandKind::Cancel, TRADER)
    };
    group.bench_function("rest_then_cancel", |b| {
        b.iter(|| {
            assert!(engine.submit(0, black_box(&new), &mut NullSink));
            assert!(engine.submit(0, black_box(&cancel), &mut NullSink));
        })
    });
    engine.assert_consistent();

    // An empty best-ask level at 1000 so the re-added order is alone there
    // and the buy fills exactly it.
    let mut engine = engine_with_book();
    let resting = order(MAKER, 1, 2, 1_000, 10);
    let crossing = order(TRADER, 1, 1, 1_000, 10);
    group.bench_function("rest_then_cross", |b| {
        b.iter(|| {
            assert!(engine.submit(0, black_box(&resting), &mut NullSink));
            assert!(engine.submit(0, black_box(&crossing), &mut NullSink));
        })
    });
    engine.assert_consistent();
    assert_eq!(engine.orders_live(), 200);

    // As `rest_then_cancel`, on the default-sized engine (1 Mi orders: two
    // 16 MiB lookup tables) with a fresh cl_ord_id every iteration, as a
    // client numbers its orders: each NewOrder's table probe lands on a slot
    // no recent command touched. The gap to `rest_then_cancel` is the
    // memory system's (cache and TLB misses), not the engine's logic.
    // In huge pages, as the gateway builds it.
    let mut engine = MatchingEngine::new_in(EngineConfig::default(), &HugePages);
    let mut next = 1u64;
    group.bench_function("rest_then_cancel_fresh_ids_1mi", |b| {
        b.iter(|| {
            let new = order(TRADER, next, 1, 997, 3);
            let cancel = Command {
                cl_ord_id: next + 1,
                orig_cl_ord_id: next,
                instrument_id: INSTRUMENT,
                ..Command::empty(CommandKind::Cancel, TRADER)
            };
            next += 2;
            assert!(engine.submit(0, black_box(&new), &mut NullSink));
            assert!(engine.submit(0, black_box(&cancel), &mut NullSink));
        })
    });
    assert_eq!(engine.orders_live(), 0);
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
