//! Hot reload and revocation over real loopback TCP: exact codes, nothing
//! after a revocation reaching the engine, and the time a revocation takes to
//! reach every reactor.

mod common;

use std::time::Duration;

use common::net::*;
use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::wire::codes::{CancelReason as CR, LogonRejectReason as LR, TerminateReason as TR};

fn entry(id: u64) -> KeyEntry {
    common::unthrottled_key(id, SECRET)
}

fn two_reactors() -> GatewaySpec {
    GatewaySpec {
        reactors: 2,
        ..spec()
    }
}

#[test]
fn a_revoked_key_gets_its_cancels_then_terminate_and_no_later_order_reaches_the_engine() {
    let gw = Gateway::start(two_reactors(), keys()).unwrap();
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    a.send_order(1, 100, 5, 1, 0);
    a.send_order(2, 101, 7, 1, 0);
    accepted(&a.recv().unwrap());
    accepted(&a.recv().unwrap());

    let report = gw.control().revoke(TRADER).expect("not yet revoked");
    let applied = report
        .applied_in
        .expect("every reactor switched within the timeout");
    eprintln!("revocation reached both reactors in {applied:?}");
    assert!(applied < Duration::from_millis(100), "took {applied:?}");
    // Sent after the revocation took effect: discarded, never reaches the book.
    a.send_order(3, 102, 9, 1, 0);

    let mut cancels = vec![canceled(&a.recv().unwrap()), canceled(&a.recv().unwrap())];
    cancels.sort();
    assert_eq!(
        cancels,
        vec![
            (1, 5, CR::KEY_REVOKED.wire()),
            (2, 7, CR::KEY_REVOKED.wire())
        ]
    );
    assert_eq!(terminate(&a.recv().unwrap()), TR::KEY_REVOKED.wire());
    a.expect_closed();

    // The key can no longer log on.
    let mut again = Conn::connect(addr, TRADER);
    let f = again.logon_frame(0, 1, 1000);
    again.send(&f);
    assert_eq!(
        logon_reject(&again.recv().unwrap()),
        LR::KEY_DISABLED.wire()
    );

    // Nothing of order 3 (nor 1, 2) rests: an IOC sell at 1 (prices ≤ 0
    // are refused PRICE_OUT_OF_BAND; no trade yet, so no collar) finds no bid.
    let mut b = Conn::connect(addr, CANCEL_ONLY);
    b.logon(0);
    let mut c = Conn::connect(addr, SLOW);
    c.logon(0);
    c.send_order(9, 1, 100, 2, 3);
    assert_eq!(accepted(&c.recv().unwrap()).0, 9);
    assert_eq!(
        canceled(&c.recv().unwrap()),
        (9, 100, CR::IMMEDIATE_OR_CANCEL.wire())
    );

    // A second revocation of the same key does nothing, and says so.
    assert_eq!(
        gw.control().revoke(TRADER).err(),
        Some(ordergate::gateway::ControlError::AlreadyRevoked(TRADER))
    );
    let report = gw.shutdown();
    let revocations: u64 = report.reactors.iter().map(|r| r.counters.revocations).sum();
    assert_eq!(revocations, 1);
}

#[test]
fn reload_adds_keys_at_once_and_ends_the_sessions_of_removed_keys() {
    let gw = Gateway::start(
        spec(),
        KeyTable::from_entries(vec![entry(1), entry(2)]).unwrap(),
    )
    .unwrap();
    let addr = gw.local_addr();
    let mut one = Conn::connect(addr, 1);
    one.logon(0);
    let mut new_key = Conn::connect(addr, 3);
    let f = new_key.logon_frame(0, 1, 1000);
    new_key.send(&f);
    assert_eq!(
        logon_reject(&new_key.recv().unwrap()),
        LR::AUTH_FAILED.wire()
    );

    // Key 3 added, key 1 removed.
    let report = gw
        .control()
        .reload(KeyTable::from_entries(vec![entry(2), entry(3)]).unwrap());
    assert_eq!(report.keys, 2);
    assert!(report.applied_in.is_some());
    let mut three = Conn::connect(addr, 3);
    three.logon(0);
    assert_eq!(terminate(&one.recv().unwrap()), TR::KEY_REVOKED.wire());
    one.expect_closed();
    // The added key trades at once.
    three.send_order(1, 10, 1, 1, 0);
    assert_eq!(accepted(&three.recv().unwrap()).0, 1);
    gw.shutdown();
}

#[test]
fn an_invalid_keys_file_keeps_the_old_table_and_says_why() {
    let gw = start();
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    let dir = std::env::temp_dir().join(format!("ordergate-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.toml");
    std::fs::write(&path, "[[key]]\nid = 1\nsecret = \"abc\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = gw.control().reload_file(&path).unwrap_err();
    assert!(err.contains("keys.toml"), "names the file: {err}");
    // The session is untouched and new logons still work.
    a.send_order(1, 10, 1, 1, 0);
    assert_eq!(accepted(&a.recv().unwrap()).0, 1);
    let mut b = Conn::connect(addr, TRADER);
    b.logon(0);
    std::fs::remove_dir_all(&dir).unwrap();
    gw.shutdown();
}

/// Not an assertion on time (a benchmark is for that): measures how long a
/// revocation takes to reach both reactors, prints the median for README.
#[test]
fn revocation_latency_is_measured_across_reactors() {
    let entries: Vec<KeyEntry> = (100..150).map(entry).collect();
    let gw = Gateway::start(two_reactors(), KeyTable::from_entries(entries).unwrap()).unwrap();
    let mut times: Vec<Duration> = (100..150)
        .map(|id| {
            gw.control()
                .revoke(id)
                .unwrap()
                .applied_in
                .expect("applied")
        })
        .collect();
    times.sort();
    eprintln!(
        "revocation reach, 2 reactors, 50 runs: median {:?}, max {:?}",
        times[25], times[49]
    );
    gw.shutdown();
}

#[test]
fn kill_also_cancels_orders_left_by_the_keys_ended_sessions() {
    let gw = Gateway::start(spec(), keys()).unwrap();
    let addr = gw.local_addr();
    // A session without cancel-on-disconnect leaves a resting bid behind.
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    a.send_order(1, 100, 5, 1, 0);
    accepted(&a.recv().unwrap());
    let f =
        a.c.seal(ordergate::wire::Logout { seq: 0, reason: 0 }.to_bytes());
    a.send(&f);
    assert_eq!(terminate(&a.recv().unwrap()), TR::LOGOUT.wire());
    a.expect_closed();
    // Wait until the reactor has released the slot (and remembered it).
    std::thread::sleep(Duration::from_millis(50));

    gw.control().kill(TRADER).expect("not yet revoked");
    std::thread::sleep(Duration::from_millis(50));
    // The bid is gone: an IOC sell at 100 finds nothing to fill.
    let mut c = Conn::connect(addr, SLOW);
    c.logon(0);
    c.send_order(9, 100, 5, 2, 3);
    assert_eq!(accepted(&c.recv().unwrap()).0, 9);
    assert_eq!(
        canceled(&c.recv().unwrap()),
        (9, 5, CR::IMMEDIATE_OR_CANCEL.wire())
    );
    let report = gw.shutdown();
    // One sweep of the key, which found the one order left behind.
    assert_eq!(report.reactors[0].counters.key_sweeps, 1);
    assert_eq!(report.reactors[0].counters.key_sweep_canceled, 1);
}
