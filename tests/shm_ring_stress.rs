//! Two-thread stress of the shared-memory ring (`ordergate::link::shm_ring`)
//! with the real 64-byte `Command`, as `tests/ring_stress.rs` does for the
//! in-process ring.
//!
//! Every field of record `n` is derived from `n` by a different function,
//! so the consumer can tell a lost record (a gap in `n`), a duplicated or
//! reordered one, and a torn one (fields from two writes disagree). A
//! 64-slot ring forces a lap every 64 records and constant full/empty
//! transitions; the consumer publishes a record's head only at its next
//! pop (the engine's deferred commit), so the producer also races that.
//! Events go the other way on the pair's event ring with `drain`, checked
//! the same way: both directions at once.

use std::thread;

use ordergate::engine::{Command, Event, EventKind, EventReason, SessionId};
use ordergate::link::shm_ring::{ShmLink, ShmParams, ShmRegion};
use ordergate::wire::codes::RejectReason;

const RECORDS: u64 = 1_000_000;
const SPINS_BEFORE_YIELD: u32 = 64;

#[path = "support/records.rs"]
mod records;
use records::record as command;

fn event(n: u64) -> Event {
    Event {
        cl_ord_id: n,
        order_id: !n,
        exec_id: n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        transact_time_ns: n.rotate_left(17),
        price: -(n as i64),
        qty: n as u32,
        leaves_qty: (n >> 32) as u32 ^ 0x5A5A,
        reason: if n.is_multiple_of(3) {
            EventReason::Reject(RejectReason::ENGINE_BUSY)
        } else {
            EventReason::None
        },
        ..Event::empty(
            if n.is_multiple_of(3) {
                EventKind::Rejected
            } else {
                EventKind::Fill
            },
            SessionId(n ^ 0xFFFF),
        )
    }
}

fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins > SPINS_BEFORE_YIELD {
        thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

#[test]
fn two_threads_move_a_million_records_each_way_without_loss_tear_or_reorder() {
    let params = ShmParams {
        capacity: 64,
        pairs: 1,
        gateway_id: 0,
        cod_slots: 1,
    };
    let link = ShmLink::create(ShmRegion::heap(params.file_size()), params).unwrap();
    // Each side opens the region on its own, as two processes would.
    let gateway = ShmLink::open(link.command_ring(0).region_for_tests()).unwrap();
    let engine = link;

    let engine_side = thread::spawn(move || {
        let mut commands = engine.command_ring(0).consumer::<Command>();
        let mut events = engine.event_ring(0).producer::<Event>();
        let (mut expected, mut sent, mut spins) = (0u64, 0u64, 0u32);
        while expected < RECORDS || sent < RECORDS {
            let mut progressed = false;
            if expected < RECORDS
                && let Some(c) = commands.pop()
            {
                assert_eq!(
                    c,
                    command(expected),
                    "command {expected} lost, torn or reordered"
                );
                expected += 1;
                progressed = true;
            }
            if sent < RECORDS && events.try_push(event(sent)).is_ok() {
                sent += 1;
                progressed = true;
            }
            if progressed {
                spins = 0;
            } else {
                backoff(&mut spins);
            }
        }
        commands.commit();
        assert_eq!(commands.bad_records, 0);
        expected
    });

    let mut commands = gateway.command_ring(0).producer::<Command>();
    let mut events = gateway.event_ring(0).consumer::<Event>();
    let (mut sent, mut expected, mut spins) = (0u64, 0u64, 0u32);
    while sent < RECORDS || expected < RECORDS {
        let mut progressed = false;
        if sent < RECORDS {
            // New orders and replaces leave a reserve, as the gateway does.
            let reserve = if sent % 7 == 0 || sent % 7 == 2 { 8 } else { 0 };
            if commands.try_push_leaving(command(sent), reserve).is_ok() {
                sent += 1;
                progressed = true;
            }
        }
        let n = events.drain(16, |e| {
            assert_eq!(
                e,
                event(expected),
                "event {expected} lost, torn or reordered"
            );
            expected += 1;
        });
        if n > 0 {
            progressed = true;
        }
        if progressed {
            spins = 0;
        } else {
            backoff(&mut spins);
        }
    }
    assert_eq!(engine_side.join().unwrap(), RECORDS);
    assert_eq!((expected, events.bad_records), (RECORDS, 0));
    assert!(!commands.corrupt() && !events.corrupt());
    // Everything was taken and published.
    assert_eq!(commands.free(), 64);
}
