//! Two-thread stress of the SPSC ring with the real 64-byte `Command`.
//!
//! Every field of record `n` is derived from `n` by a different function, so
//! the consumer can tell a lost record (a gap in `n`), a duplicated or
//! reordered one (`n` not the next expected) and a torn one (fields from two
//! different writes: they no longer agree on `n`). A small ring forces a lap
//! every 64 records and constant full/empty transitions.
//!
//! As the gateway does, new orders and replaces are pushed leaving a cancel
//! reserve (`try_push_leaving`) and every other kind with a plain push, so
//! both ways into the ring race the consumer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use ordergate::constants::RING_BATCH_MAX;
use ordergate::engine::{Command, CommandKind};
use ordergate::ring::{self, Consumer, Producer};

const RECORDS: u64 = 4_000_000;
const CAPACITY: usize = 64;
/// Slots new orders and replaces leave free, as the gateway's command ring.
const RESERVE: usize = ordergate::constants::command_ring_cancel_reserve(CAPACITY);
/// Spins on a full or empty ring before yielding the core: on a 2-core box
/// (shared with other work) a pure spinner could keep its peer off the CPU.
const SPINS_BEFORE_YIELD: u32 = 64;

#[path = "support/records.rs"]
mod records;
use records::record;

/// Checks that `command` is exactly record `expected`.
#[track_caller]
fn check(command: &Command, expected: u64) {
    if *command != record(expected) {
        let what = if *command == record(command.cl_ord_id) {
            "a whole record, but the wrong one (lost, duplicated, reordered or stale)"
        } else {
            "a torn record (fields from different writes)"
        };
        panic!(
            "record {expected}: got {what}: {command:?}, want {:?}",
            record(expected)
        );
    }
}

/// Set when a thread leaves its loop, normally or by a failed assertion, so
/// the other one stops waiting on the ring: a failure fails the test instead
/// of leaving its peer spinning forever on a full or empty ring.
#[derive(Clone, Default)]
struct Done(Arc<AtomicBool>);

impl Done {
    fn is_set(&self) -> bool {
        // Acquire: everything the peer pushed before leaving is visible.
        self.0.load(Ordering::Acquire)
    }
}

/// Sets `Done` when dropped, including on unwind.
struct SetOnDrop(Done);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.0.store(true, Ordering::Release);
    }
}

struct Backoff(u32);

impl Backoff {
    fn wait(&mut self) {
        if self.0 < SPINS_BEFORE_YIELD {
            self.0 += 1;
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

fn produce(mut producer: Producer<Command>, me: Done, consumer: Done) -> u64 {
    let _done = SetOnDrop(me);
    let mut backoff = Backoff(0);
    let mut full = 0u64;
    for n in 0..RECORDS {
        let mut command = record(n);
        let leaves_reserve = matches!(command.kind, CommandKind::NewOrder | CommandKind::Replace);
        loop {
            let pushed = if leaves_reserve {
                producer.try_push_leaving(command, RESERVE)
            } else {
                producer.try_push(command)
            };
            match pushed {
                Ok(()) => break,
                Err(back) => {
                    // The exact record comes back on a full ring, or one
                    // with no more than the reserve free.
                    assert_eq!(back.cl_ord_id, n);
                    let limit = if leaves_reserve { RESERVE } else { 0 };
                    assert!(producer.free_seen() <= limit, "refused with room");
                    command = back;
                    full += 1;
                    if consumer.is_set() {
                        // The consumer failed; its panic is the report.
                        return full;
                    }
                    backoff.wait();
                }
            }
        }
        backoff.reset();
    }
    full
}

/// Alternates `pop` and `drain` with batch limits 1..=RING_BATCH_MAX.
fn consume(mut consumer: Consumer<Command>, me: Done, producer: Done) -> (u64, u64) {
    let _done = SetOnDrop(me);
    let mut backoff = Backoff(0);
    let mut expected = 0u64;
    let mut empty = 0u64;
    let mut turn = 0usize;
    while expected < RECORDS {
        turn += 1;
        let taken = if turn.is_multiple_of(2) {
            match consumer.pop() {
                Some(command) => {
                    check(&command, expected);
                    expected += 1;
                    1
                }
                None => 0,
            }
        } else {
            let max = turn % RING_BATCH_MAX + 1;
            let before = expected;
            let taken = consumer.drain(max, |command| {
                check(&command, expected);
                expected += 1;
            });
            assert!(taken <= max, "drain took {taken} > max {max}");
            assert_eq!(expected - before, taken as u64, "drain count is exact");
            taken
        };
        if taken == 0 {
            empty += 1;
            if producer.is_set() && consumer.is_empty() {
                // The producer has left and everything it pushed has been
                // read: the rest was lost (or the producer failed).
                break;
            }
            backoff.wait();
        } else {
            backoff.reset();
        }
    }
    // Nothing beyond the last record: none duplicated at the end.
    assert_eq!(consumer.pop(), None);
    assert!(consumer.is_empty());
    (expected, empty)
}

#[test]
fn two_threads_lose_duplicate_reorder_or_tear_nothing() {
    let (producer, consumer) = ring::channel::<Command>(CAPACITY);
    let started = Instant::now();
    let (producer_done, consumer_done) = (Done::default(), Done::default());
    let producer = {
        let (me, peer) = (producer_done.clone(), consumer_done.clone());
        thread::spawn(move || produce(producer, me, peer))
    };
    let consumer = thread::spawn(move || consume(consumer, consumer_done, producer_done));
    // The consumer's panic names the bad record; report it first.
    let consumed = consumer.join();
    let full = producer.join();
    let (received, empty) = consumed.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let full = full.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert_eq!(received, RECORDS, "records lost");
    eprintln!(
        "{RECORDS} records through {CAPACITY} slots in {:?}: {full} full pushes, {empty} empty reads",
        started.elapsed()
    );
}

#[test]
fn full_ring_never_blocks() {
    let (mut producer, consumer) = ring::channel::<Command>(CAPACITY);
    // The consumer is alive (on another thread) but never reads.
    let (stop, stopped) = mpsc::channel::<()>();
    let idle = thread::spawn(move || {
        stopped.recv().ok();
        drop(consumer);
    });
    let (done, finished) = mpsc::channel();
    let pusher = thread::spawn(move || {
        for n in 0..CAPACITY as u64 {
            producer.try_push(record(n)).expect("room");
        }
        assert_eq!(producer.free(), 0);
        for n in 0..100_000u64 {
            let rejected = record(1_000_000 + n);
            assert_eq!(producer.try_push(rejected), Err(rejected));
        }
        done.send(()).unwrap();
    });
    // A blocking push would never report; 10 s is ample on a loaded box.
    // (Checked before joining, so a hang fails the test instead of hanging it.)
    let outcome = finished.recv_timeout(Duration::from_secs(10));
    assert_eq!(outcome, Ok(()), "try_push on a full ring did not return");
    stop.send(()).unwrap();
    pusher.join().expect("pusher");
    idle.join().unwrap();
}
