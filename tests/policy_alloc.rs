//! The access-policy checks run at every logon (`allows`, `valid_at`, the
//! rotation accessors, the session limit) and on every order
//! (`check_order`): none may allocate. A counting global allocator proves
//! it (per thread, so parallel tests do not count).

use std::hint::black_box;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU64};

use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::policy::{ALLOW_CIDRS_MAX, Cidr, KeyDisabled, RiskReject};
use ordergate::auth::secret::Secret;
use ordergate::wire::codes::{Environment, Scopes};
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

#[test]
fn policy_checks_allocate_nothing() {
    // A full allow list whose only match is its last entry: the longest scan.
    let mut allow: Vec<Cidr> = (0..ALLOW_CIDRS_MAX - 2)
        .map(|i| format!("10.{i}.0.0/16").parse().unwrap())
        .collect();
    allow.push("2001:db8::/32".parse().unwrap());
    allow.push("192.0.2.0/24".parse().unwrap());
    let mut key = KeyEntry::new(
        7,
        Secret::from_bytes([7; 32]),
        Scopes::TRADE,
        Environment::Production,
    )
    .with_allow(allow)
    .with_secret_next(Secret::from_bytes([8; 32]));
    key.not_before_ns = Some(1_000);
    key.not_after_ns = Some(2_000);
    key.max_sessions = NonZeroU32::new(3);
    key.max_order_qty = NonZeroU32::new(100);
    key.max_order_notional = NonZeroU64::new(10_000);
    let table = KeyTable::from_entries(vec![key]).unwrap();
    let peers: Vec<IpAddr> = [
        "192.0.2.9",
        "::ffff:192.0.2.9",
        "2001:db8::1",
        "203.0.113.1",
        "::1",
    ]
    .iter()
    .map(|p| p.parse().unwrap())
    .collect();

    let before = allocations();
    let (_, key) = table.get(7).unwrap();
    let mut allowed = 0;
    let mut valid = 0;
    let mut rejected = 0;
    for round in 0..1_000u64 {
        for peer in &peers {
            allowed += usize::from(key.allows(black_box(*peer)));
        }
        for now in [999, 1_000, 1_999, 2_000] {
            match key.valid_at(black_box(now + round % 2)) {
                Ok(()) => valid += 1,
                Err(KeyDisabled::NotYetValid | KeyDisabled::Expired) => {}
                Err(KeyDisabled::Revoked) => unreachable!(),
            }
        }
        for (price, qty) in [(100, 100), (100, 101), (i64::MIN, u32::MAX), (-101, 100)] {
            match key.check_order(black_box(price), black_box(qty)) {
                Ok(()) => {}
                Err(RiskReject::MaxQty | RiskReject::MaxNotional) => rejected += 1,
            }
        }
        let (current, next) = key.secrets();
        black_box((current.expose(), next.map(Secret::expose)));
        black_box(key.secret_matching(|s| s[0] == 8));
        black_box(key.session_limit_reached(black_box(3)));
    }
    assert_eq!(allocations(), before);
    assert_eq!(allowed, 3_000);
    assert_eq!(valid, 2 * 1_000);
    assert_eq!(rejected, 3 * 1_000);

    // The counter does see this thread's allocations.
    let boxed = black_box(Box::new(allowed));
    assert_eq!(allocations(), before + 1);
    drop(boxed);
}
