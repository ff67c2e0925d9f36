//! `KeyTable::get` runs on every logon: it must not allocate. A counting
//! global allocator proves it (per thread, so parallel tests do not count).

use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::secret::Secret;
use ordergate::constants::{BURST_DEFAULT, KEYS_MAX, MSGS_PER_SEC_DEFAULT};
use ordergate::wire::codes::{Environment, Scopes};
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

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
