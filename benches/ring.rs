//! Cost of one ring hop for a 64-byte `Command`.
//!
//! - `hop`: one `try_push` + one `pop` on one thread (indices and slot in
//!   L1): the fixed cost the ring adds per message in the pipeline.
//! - `hop_drain`: the same hop taken with `drain(1, ..)`. Moving an
//!   `Option<Command>` (niche in `kind` at byte 48) copies bytes 49..64 as
//!   two overlapping 8-byte moves, which defeats store-to-load forwarding
//!   when the slot was just written on the same core; `drain` hands the
//!   closure a plain `Command` and avoids it. Prefer `drain` in hot loops.
//! - `batch_64`: 64 pushes then one `drain(64)`, reported per record: the
//!   engine's batched read.
//! - `ping_pong`: one round trip between two threads over two rings (the
//!   cross-core cost: two cache-line transfers each way). Spins, then
//!   yields, so it completes on a loaded 2-core box; numbers there are only
//!   indicative.
//!
//! Run: `cargo bench --bench ring`

use std::hint::black_box;
use std::thread;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ordergate::engine::{Command, CommandKind, SessionId};
use ordergate::ring;

const SPINS_BEFORE_YIELD: u32 = 10_000;
const STOP: u64 = u64::MAX;

fn command(n: u64) -> Command {
    let mut command = Command::empty(CommandKind::NewOrder, SessionId::new(1, 2, 3));
    command.cl_ord_id = n;
    command.price = 10_025;
    command.qty = 10;
    command.instrument_id = 7;
    command
}

fn wait(spins: &mut u32) {
    if *spins < SPINS_BEFORE_YIELD {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        thread::yield_now();
    }
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");

    let (mut producer, mut consumer) = ring::channel::<Command>(1024);
    let record = command(1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("hop", |b| {
        b.iter(|| {
            producer.try_push(black_box(record)).unwrap();
            black_box(consumer.pop().unwrap())
        })
    });

    group.bench_function("hop_drain", |b| {
        b.iter(|| {
            producer.try_push(black_box(record)).unwrap();
            consumer.drain(1, |c| {
                black_box(c);
            })
        })
    });

    group.throughput(Throughput::Elements(64));
    group.bench_function("batch_64", |b| {
        b.iter(|| {
            for n in 0..64 {
                producer.try_push(black_box(command(n))).unwrap();
            }
            consumer.drain(64, |c| {
                black_box(c);
            })
        })
    });
    group.finish();
}

fn ping_pong(c: &mut Criterion) {
    let (mut to_echo, mut echo_in) = ring::channel::<Command>(64);
    let (mut echo_out, mut from_echo) = ring::channel::<Command>(64);
    let echo = thread::spawn(move || {
        let mut spins = 0;
        loop {
            match echo_in.pop() {
                Some(c) if c.cl_ord_id == STOP => break,
                Some(mut c) => {
                    spins = 0;
                    while let Err(back) = echo_out.try_push(c) {
                        c = back;
                        wait(&mut spins);
                    }
                }
                None => wait(&mut spins),
            }
        }
    });

    let mut group = c.benchmark_group("ring");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ping_pong", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for n in 0..iters {
                to_echo.try_push(command(n)).expect("echo keeps up");
                let mut spins = 0;
                let back = loop {
                    if let Some(c) = from_echo.pop() {
                        break c;
                    }
                    wait(&mut spins);
                };
                assert_eq!(back.cl_ord_id, n);
            }
            started.elapsed()
        })
    });
    group.finish();

    to_echo.try_push(command(STOP)).expect("room for stop");
    echo.join().unwrap();
}

criterion_group!(benches, single_thread, ping_pong);
criterion_main!(benches);
