//! The ring allocates in `channel` and never after: push, pop, drain, free,
//! len and is_empty allocate nothing, on a full or an empty ring.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ordergate::engine::{Command, CommandKind, SessionId};
use ordergate::ring;

/// Counts allocations made by the current thread (other test threads do not
/// disturb the count).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the thread-local counter is const-initialised, so
// touching it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (via `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

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
