//! `KeyTable::get` runs on every logon: it must not allocate. A counting
//! global allocator proves it (per thread, so parallel tests do not count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::secret::Secret;
use ordergate::constants::{BURST_DEFAULT, KEYS_MAX, MSGS_PER_SEC_DEFAULT};
use ordergate::wire::codes::{Environment, Scopes};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to `System`; the counter is a
// const-initialised thread local, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn get_allocates_nothing() {
    let entries = (0..KEYS_MAX as u64)
        .map(|i| {
            KeyEntry::new(
                i * 3 + 1,
                Secret::from_bytes([7; 32]),
                Scopes::TRADE,
                Environment::Production,
            )
            .with_rate(MSGS_PER_SEC_DEFAULT, BURST_DEFAULT)
            .allow_any()
        })
        .collect();
    let table = KeyTable::from_entries(entries).unwrap();

    let before = allocations();
    let mut found = 0u64;
    for id in 0..(KEYS_MAX as u64 * 3 + 3) {
        if let Some((index, entry)) = table.get(id) {
            assert_eq!(table.entry(index).id, entry.id);
            found += 1;
        }
    }
    assert_eq!(allocations(), before);
    assert_eq!(found, KEYS_MAX as u64);

    // The counter does see this thread's allocations.
    let boxed = std::hint::black_box(Box::new(found));
    assert_eq!(allocations(), before + 1);
    drop(boxed);
}
