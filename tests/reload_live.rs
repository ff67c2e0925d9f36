//! A reload reaches the sessions already logged on (issue "Hold under
//! attack (2 of 2)", item 3), over real loopback TCP: narrowed scopes apply
//! to the very next message; a session whose address is no longer allowed,
//! whose key's environment changed, or whose secret left the file is ended
//! with Terminate KEY_CHANGED after its orders are canceled as for a
//! revocation; a rotation that keeps the session's secret keeps the session.

mod common;

use common::net::*;
use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::policy::Cidr;
use ordergate::auth::secret::Secret;
use ordergate::gateway::Gateway;
use ordergate::wire;
use ordergate::wire::codes::{
    CancelReason as CR, Environment, RejectReason as RR, Scopes, TerminateReason as TR,
};

const KEY: u64 = 1001;
const OTHER_SECRET: [u8; 32] = [0x77; 32];

fn entry(scopes: Scopes) -> KeyEntry {
    common::unthrottled_key_for(KEY, SECRET, scopes, Environment::Production)
}

fn trade_cancel() -> Scopes {
    Scopes::TRADE.union(Scopes::CANCEL)
}

fn table(e: KeyEntry) -> KeyTable {
    KeyTable::from_entries(vec![e]).unwrap()
}

/// A gateway with key 1001, and a session of it resting order 1.
fn logged_on_with_a_resting_order() -> (Gateway, Conn) {
    let gw = Gateway::start(spec(), table(entry(trade_cancel()))).unwrap();
    let mut c = Conn::connect(gw.local_addr(), KEY);
    c.logon(0);
    c.send_order(1, 100, 5, 1, 0);
    assert_eq!(accepted(&c.recv().unwrap()).0, 1);
    (gw, c)
}

/// The session's resting order is canceled KEY_REVOKED, then Terminate
/// KEY_CHANGED, then the connection closes.
fn expect_ended_by_reload(c: &mut Conn) {
    assert_eq!(canceled(&c.recv().unwrap()), (1, 5, CR::KEY_REVOKED.wire()));
    assert_eq!(terminate(&c.recv().unwrap()), TR::KEY_CHANGED.wire());
    c.expect_closed();
}

fn ended_for_reload(gw: Gateway) {
    let report = gw.shutdown();
    let ended: u64 = report
        .reactors
        .iter()
        .map(|r| r.counters.terminate(TR::KEY_CHANGED))
        .sum();
    assert_eq!(ended, 1);
    let reload_ended: u64 = report
        .reactors
        .iter()
        .map(|r| r.counters.reload_ended)
        .sum();
    assert_eq!(reload_ended, 1);
}

#[test]
fn narrowed_scopes_apply_to_the_next_message() {
    let (gw, mut c) = logged_on_with_a_resting_order();
    let report = gw.control().reload(table(entry(Scopes::CANCEL)));
    assert!(report.applied_in.is_some());
    c.send_order(2, 100, 5, 1, 0);
    let (cl_ord_id, reason, _) = rejected(&c.recv().unwrap());
    assert_eq!((cl_ord_id, reason), (2, RR::NOT_PERMITTED.wire()));
    // Cancel is still in scope: the client can get out of its risk.
    let cancel = c.c.seal(
        wire::CancelOrder {
            seq: 0,
            cl_ord_id: 3,
            orig_cl_ord_id: 1,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    c.send(&cancel);
    assert_eq!(canceled(&c.recv().unwrap()), (3, 5, CR::USER.wire()));
    gw.shutdown();
}

#[test]
fn a_session_whose_address_is_no_longer_allowed_is_ended() {
    let (gw, mut c) = logged_on_with_a_resting_order();
    let elsewhere = Cidr::parse("192.0.2.0/24").unwrap();
    gw.control()
        .reload(table(entry(trade_cancel()).with_allow(vec![elsewhere])));
    expect_ended_by_reload(&mut c);
    ended_for_reload(gw);
}

#[test]
fn a_session_whose_key_changed_environment_is_ended() {
    let (gw, mut c) = logged_on_with_a_resting_order();
    let sandbox = common::unthrottled_key_for(KEY, SECRET, trade_cancel(), Environment::Sandbox);
    gw.control().reload(table(sandbox));
    expect_ended_by_reload(&mut c);
    ended_for_reload(gw);
}

#[test]
fn a_session_whose_secret_left_the_file_is_ended() {
    let (gw, mut c) = logged_on_with_a_resting_order();
    let replaced = common::unthrottled_key(KEY, OTHER_SECRET);
    gw.control().reload(table(replaced));
    expect_ended_by_reload(&mut c);
    ended_for_reload(gw);
}

#[test]
fn a_rotation_that_keeps_the_sessions_secret_keeps_the_session() {
    let (gw, mut c) = logged_on_with_a_resting_order();
    // The old secret becomes `secret_next`'s partner: still in the file.
    let rotating =
        common::unthrottled_key(KEY, SECRET).with_secret_next(Secret::from_bytes(OTHER_SECRET));
    gw.control().reload(table(rotating));
    c.send_order(2, 101, 5, 1, 0);
    assert_eq!(accepted(&c.recv().unwrap()).0, 2);
    // And the other way round: the session's secret is now `secret_next`.
    let rotated =
        common::unthrottled_key(KEY, OTHER_SECRET).with_secret_next(Secret::from_bytes(SECRET));
    gw.control().reload(table(rotated));
    c.send_order(3, 102, 5, 1, 0);
    assert_eq!(accepted(&c.recv().unwrap()).0, 3);
    let report = gw.shutdown();
    let ended: u64 = report
        .reactors
        .iter()
        .map(|r| r.counters.reload_ended)
        .sum();
    assert_eq!(ended, 0);
}
