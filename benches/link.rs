//! Cost of one engine-link hop per transport (issue 14, item 5), for the
//! 64-byte `Command` and `Event`, on one thread (indices and slots in L1):
//! what the transport itself adds per message, beside `benches/ring.rs`.
//!
//! - `in_process/command`: `CommandTx::Local` push + `CommandRx::Local` pop.
//! - `shm/command`: `CommandTx::Shm` push + `CommandRx::Shm` pop over a
//!   shared-memory region: the record crosses as eight atomic words and is
//!   decoded with every enum byte checked, and the consumer's head is
//!   published one pop late (the engine's deferred commit).
//! - `in_process/event`, `shm/event`: the way back (`EventTx` push +
//!   `EventRx` drain of one), the shm one with the gateway's liveness poll
//!   per hop (its beat and the engine's beat judged), as a reactor turn
//!   does.
//!
//! The cross-process round trip is dominated by two cache-line transfers
//! each way, as `ring/ping_pong` shows for threads; the heap region here
//! stands in for the mapped file (same layout, same code).
//!
//! Run: `cargo bench --bench link`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ordergate::engine::{Command, CommandKind, Event, EventKind, SessionId};
use ordergate::link::shm_ring::{ShmLink, ShmParams, ShmRegion};
use ordergate::link::{CommandRx, CommandTx, EventRx, EventTx};
use ordergate::ring;

fn command() -> Command {
    let mut command = Command::empty(CommandKind::NewOrder, SessionId::new(0, 2, 3));
    command.cl_ord_id = 1;
    command.price = 10_025;
    command.qty = 10;
    command.instrument_id = 7;
    command
}

fn event() -> Event {
    Event {
        cl_ord_id: 1,
        order_id: 2,
        qty: 10,
        ..Event::empty(EventKind::Accepted, SessionId::new(0, 2, 3))
    }
}

fn shm_link() -> ShmLink {
    let params = ShmParams {
        capacity: 1024,
        pairs: 1,
        gateway_id: 0,
        cod_slots: 8,
    };
    let link = ShmLink::create(ShmRegion::heap(params.file_size()), params).unwrap();
    link.attach(1).unwrap();
    link
}

fn hops(c: &mut Criterion) {
    let mut group = c.benchmark_group("link");
    group.throughput(Throughput::Elements(1));

    let (p, q) = ring::channel::<Command>(1024);
    let (mut tx, mut rx) = (CommandTx::from(p), CommandRx::from(q));
    group.bench_function("in_process/command", |b| {
        b.iter(|| {
            tx.try_push(black_box(command())).unwrap();
            black_box(rx.pop().unwrap())
        })
    });

    let link = shm_link();
    let (mut tx, mut rx) = (CommandTx::shm(&link, 0), CommandRx::shm(&link, 0));
    group.bench_function("shm/command", |b| {
        b.iter(|| {
            tx.try_push(black_box(command())).unwrap();
            black_box(rx.pop().unwrap())
        })
    });

    let (p, q) = ring::channel::<Event>(1024);
    let (mut tx, mut rx) = (EventTx::from(p), EventRx::from(q));
    group.bench_function("in_process/event", |b| {
        b.iter(|| {
            tx.try_push(black_box(event())).unwrap();
            rx.drain(1, |e| {
                black_box(e);
            })
        })
    });

    let link = shm_link();
    let (mut tx, mut rx) = (EventTx::shm(&link, 0), EventRx::shm(&link, 0, u64::MAX));
    let mut now = 1u64;
    group.bench_function("shm/event", |b| {
        b.iter(|| {
            now += 1;
            rx.poll(now, now);
            tx.try_push(black_box(event())).unwrap();
            rx.drain(1, |e| {
                black_box(e);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, hops);
criterion_main!(benches);
