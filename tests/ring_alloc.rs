//! The ring allocates in `channel` and never after: push, pop, drain, free,
//! len and is_empty allocate nothing, on a full or an empty ring.

use ordergate::engine::{Command, CommandKind, SessionId};
use ordergate::ring;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

#[test]
fn only_channel_allocates() {
    let before = allocations();
    let (mut producer, mut consumer) = ring::channel::<Command>(64);
    let made = allocations() - before;
    assert!(made >= 1, "channel allocates its slots");

    let before = allocations();
    let mut sum = 0u64;
    for lap in 0..1_000u64 {
        let mut command = Command::empty(CommandKind::NewOrder, SessionId(lap));
        while producer.try_push(command).is_ok() {
            command.cl_ord_id += 1;
        }
        assert_eq!(producer.free(), 0);
        assert_eq!(consumer.len(), 64);
        sum += consumer.pop().unwrap().cl_ord_id;
        sum += consumer.drain(7, |c| assert_eq!(c.session, SessionId(lap))) as u64;
        while let Some(c) = consumer.pop() {
            sum += c.cl_ord_id;
        }
        assert!(consumer.is_empty());
        assert_eq!(producer.free(), 64);
    }
    assert_eq!(
        allocations() - before,
        0,
        "the ring allocated after channel"
    );
    assert!(sum > 0);
}
