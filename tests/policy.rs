//! Access policy at logon and per order, sans-I/O, with exact codes:
//! allow lists, validity windows, revocation status, sessions per key,
//! rotation overlap, and pre-trade risk limits.

mod common;

use common::*;
use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::policy::{Cidr, KeyStatus};
use ordergate::auth::secret::Secret;
use ordergate::session::{GatewayConfig, Shared};
use ordergate::wire::codes::{Environment, LogonRejectReason as LR, RejectReason as RR, Scopes};
use ordergate::wire::{self, GatewayFrame};

const NEW_SECRET: [u8; 32] = [0x77; 32];

fn key(id: u64) -> KeyEntry {
    unthrottled_key(id, SECRET)
}

fn shared_of(entries: Vec<KeyEntry>) -> Shared {
    let config = GatewayConfig {
        session_msgs_per_sec: 1_000_000,
        session_burst: 100_000,
        ..GatewayConfig::default()
    };
    Shared::new(config, KeyTable::from_entries(entries).unwrap(), [5; 32])
}

fn logon_result(shared: &Shared, key_id: u64, peer: &str, secret: [u8; 32]) -> Result<(), u16> {
    let mut p = Pair::with_peer(shared, key_id, 16, peer.parse().unwrap());
    p.client = ordergate::client::ClientSession::new(key_id, secret);
    let f = p.logon_frame(1000, 1, 0);
    p.send(&f);
    let frames = p.raw_frames();
    match wire::decode_gateway(&frames[0]).unwrap() {
        GatewayFrame::LogonAck(_) => Ok(()),
        GatewayFrame::LogonReject(r) => Err(r.reason()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_allow_list_admits_only_its_networks() {
    let k = key(1).with_allow(vec![
        Cidr::parse("10.0.0.0/8").unwrap(),
        Cidr::parse("2001:db8::/32").unwrap(),
    ]);
    let shared = shared_of(vec![
        k,
        KeyEntry::new(
            2,
            Secret::from_bytes(SECRET),
            Scopes::TRADE,
            Environment::Production,
        ),
    ]);
    assert_eq!(logon_result(&shared, 1, "10.200.0.1", SECRET), Ok(()));
    assert_eq!(
        logon_result(&shared, 1, "::ffff:10.9.9.9", SECRET),
        Ok(()),
        "IPv4-mapped"
    );
    assert_eq!(logon_result(&shared, 1, "2001:db8::5", SECRET), Ok(()));
    assert_eq!(
        logon_result(&shared, 1, "192.0.2.10", SECRET),
        Err(LR::ADDRESS_NOT_ALLOWED.wire())
    );
    // No allow list: connects from nowhere (deny by default).
    assert_eq!(
        logon_result(&shared, 2, "10.0.0.1", SECRET),
        Err(LR::ADDRESS_NOT_ALLOWED.wire())
    );
    // A wrong signature is still AUTH_FAILED, never ADDRESS_NOT_ALLOWED.
    assert_eq!(
        logon_result(&shared, 1, "192.0.2.10", [0; 32]),
        Err(LR::AUTH_FAILED.wire())
    );
}

#[test]
fn revoked_not_yet_valid_and_expired_keys_are_key_disabled() {
    let mut revoked = key(1);
    revoked.status = KeyStatus::Revoked;
    let mut early = key(2);
    early.not_before_ns = Some(T0 + SEC);
    let mut late = key(3);
    late.not_after_ns = Some(T0);
    let mut window = key(4);
    window.not_before_ns = Some(T0);
    window.not_after_ns = Some(T0 + 1);
    let shared = shared_of(vec![revoked, early, late, window]);
    for id in [1, 2, 3] {
        assert_eq!(
            logon_result(&shared, id, "10.0.0.1", SECRET),
            Err(LR::KEY_DISABLED.wire()),
            "key {id}"
        );
    }
    assert_eq!(
        logon_result(&shared, 4, "10.0.0.1", SECRET),
        Ok(()),
        "not_before inclusive"
    );
    // A revoked key with a bad signature says nothing about its status.
    assert_eq!(
        logon_result(&shared, 1, "10.0.0.1", [0; 32]),
        Err(LR::AUTH_FAILED.wire())
    );
}

#[test]
fn max_sessions_per_key_is_session_limit_and_frees_on_logout() {
    let mut k = key(1);
    k.max_sessions = std::num::NonZeroU32::new(1);
    let shared = shared_of(vec![k]);
    let mut first = Pair::new(&shared, 1, 16);
    first.client = ordergate::client::ClientSession::new(1, SECRET);
    first.logon(0);
    assert_eq!(
        logon_result(&shared, 1, "10.0.0.1", SECRET),
        Err(LR::SESSION_LIMIT.wire())
    );
    let lo = first
        .client
        .seal(wire::Logout { seq: 0, reason: 0 }.to_bytes());
    first.send(&lo);
    assert_eq!(logon_result(&shared, 1, "10.0.0.1", SECRET), Ok(()));
}

#[test]
fn during_a_rotation_both_secrets_log_on_and_after_it_only_the_new_one() {
    let during = key(1).with_secret_next(Secret::from_bytes(NEW_SECRET));
    let shared = shared_of(vec![during]);
    assert_eq!(logon_result(&shared, 1, "10.0.0.1", SECRET), Ok(()));
    assert_eq!(logon_result(&shared, 1, "10.0.0.1", NEW_SECRET), Ok(()));
    // The session keys derive from the secret that signed: the client holding
    // the new secret verifies the LogonAck's tag (logon_result's client checks).
    let after = KeyEntry::new(
        1,
        Secret::from_bytes(NEW_SECRET),
        Scopes::TRADE,
        Environment::Production,
    )
    .allow_any();
    shared.publish_keys(KeyTable::from_entries(vec![after]).unwrap());
    let shared_keys = shared.key_set();
    let mut p = Pair::new(&shared, 1, 16);
    p.keys = shared_keys.clone();
    p.client = ordergate::client::ClientSession::new(1, SECRET);
    let f = p.logon_frame(1000, 1, 0);
    p.send(&f);
    assert_eq!(logon_reject_reason(&p.raw_frames()), LR::AUTH_FAILED.wire());
    let mut q = Pair::new(&shared, 1, 16);
    q.keys = shared_keys;
    q.client = ordergate::client::ClientSession::new(1, NEW_SECRET);
    q.logon(0);
}

#[test]
fn risk_limits_reject_before_the_ring_with_exact_codes() {
    let mut k = key(1);
    k.max_order_qty = std::num::NonZeroU32::new(10);
    k.max_order_notional = std::num::NonZeroU64::new(1_000);
    let shared = shared_of(vec![k]);
    let mut p = Pair::new(&shared, 1, 16);
    p.client = ordergate::client::ClientSession::new(1, SECRET);
    p.logon(0);
    let at_limit = p.new_order(1, 100, 10, 1, 0); // qty 10, notional 1000: both at the limit
    let too_many = p.new_order(2, 1, 11, 1, 0);
    let too_big = p.new_order(3, -101, 10, 2, 0); // |price| x qty = 1010
    p.send(&at_limit);
    p.send(&too_many);
    p.send(&too_big);
    let r = p.client.seal(
        wire::ReplaceOrder {
            seq: 0,
            cl_ord_id: 4,
            orig_cl_ord_id: 1,
            price: 100,
            qty: 11,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    p.send(&r);
    let frames = p.frames();
    assert_eq!(rejected(&frames[0]), (2, RR::RISK_MAX_QTY.wire(), 0));
    assert_eq!(rejected(&frames[1]), (3, RR::RISK_MAX_NOTIONAL.wire(), 0));
    assert_eq!(rejected(&frames[2]), (4, RR::RISK_MAX_QTY.wire(), 0));
    assert_eq!(
        p.commands.len(),
        1,
        "only the order at the limit reached the ring"
    );
    assert_eq!(p.commands[0].cl_ord_id, 1);
    // Cancels are never risk-checked.
    let c = p.cancel(5, 1);
    p.send(&c);
    assert_eq!(p.commands.len(), 2);
}
