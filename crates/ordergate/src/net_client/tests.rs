//! The blocking client (`ordergate_client::blocking`) against the runtime's
//! test gateway: a real socket, the real sans-I/O reactor core and engine.
//! (Its tests that need no gateway are in the client crate.)

use std::time::Duration;

use super::test_gateway::{KEY_ID, SECRET, TestGateway};
use super::*;
use crate::wire::{self, codes::*};

const WAIT: Duration = Duration::from_secs(5);

fn connect(gw: &TestGateway) -> Connection {
    Connection::connect(gw.addr(), KEY_ID, SECRET, &ConnectOptions::default()).expect("logon")
}

fn next(conn: &mut Connection) -> Reply {
    conn.recv(WAIT).expect("recv").expect("a reply in time")
}

#[test]
fn order_lifecycle_over_a_real_socket() {
    let gw = TestGateway::start();
    let mut c = connect(&gw);
    assert_ne!(c.session_id(), 0);
    assert_eq!(c.grant().keepalive_ms, 1_000);
    assert_eq!(c.next_seq(), 1);

    // New → Accepted.
    let order = Order::limit(10, 1, Side::Buy, 100, 5);
    assert_eq!(c.send_new_order(&order).unwrap(), 1);
    let order_id = match next(&mut c) {
        Reply::Accepted {
            cl_ord_id: 10,
            order_id,
            ..
        } => order_id,
        other => panic!("expected Accepted for 10, got {other:?}"),
    };

    // Replace → Replaced, known as 11 from now on.
    assert_eq!(c.send_replace(11, 10, 1, 99, 3).unwrap(), 2);
    assert!(matches!(
        next(&mut c),
        Reply::Replaced { cl_ord_id: 11, order_id: o, leaves_qty: 3, .. } if o == order_id
    ));

    // Cancel by the old id → UNKNOWN_ORDER; by the new → Canceled USER.
    assert_eq!(c.send_cancel(12, 10, 1).unwrap(), 3);
    assert!(matches!(
        next(&mut c),
        Reply::Rejected {
            cl_ord_id: 12,
            reason: RejectReason::UNKNOWN_ORDER,
            ..
        }
    ));
    c.send_cancel(13, 11, 1).unwrap();
    assert!(matches!(
        next(&mut c),
        Reply::Canceled {
            cl_ord_id: 13,
            canceled_qty: 3,
            reason: CancelReason::USER,
            ..
        }
    ));

    // Self-match is allowed: the aggressor gets Accepted and its Fill,
    // then the resting order its Fill, same exec id.
    c.send_new_order(&Order::limit(20, 2, Side::Sell, 50, 4))
        .unwrap();
    assert!(matches!(
        next(&mut c),
        Reply::Accepted { cl_ord_id: 20, .. }
    ));
    c.send_new_order(&Order::limit(21, 2, Side::Buy, 55, 4))
        .unwrap();
    assert!(matches!(
        next(&mut c),
        Reply::Accepted { cl_ord_id: 21, .. }
    ));
    let mut fills = Vec::new();
    for _ in 0..2 {
        match next(&mut c) {
            Reply::Fill {
                cl_ord_id,
                exec_id,
                price,
                qty,
                leaves_qty,
                ..
            } => fills.push((cl_ord_id, exec_id, price, qty, leaves_qty)),
            other => panic!("expected Fill, got {other:?}"),
        }
    }
    assert_eq!(fills[0].0, 21, "aggressor first");
    assert_eq!(fills[1].0, 20);
    assert_eq!(fills[0].1, fills[1].1, "one trade, one exec id");
    assert!(fills.iter().all(|f| f.2 == 50 && f.3 == 4 && f.4 == 0));

    // Mass cancel: one Canceled per order, then the ack with the count.
    c.send_new_order(&Order::limit(30, 3, Side::Buy, 10, 1))
        .unwrap();
    c.send_new_order(&Order::limit(31, 3, Side::Sell, 90, 1))
        .unwrap();
    assert!(matches!(
        next(&mut c),
        Reply::Accepted { cl_ord_id: 30, .. }
    ));
    assert!(matches!(
        next(&mut c),
        Reply::Accepted { cl_ord_id: 31, .. }
    ));
    c.send_mass_cancel(32, 0, None).unwrap();
    for id in [30, 31] {
        assert!(matches!(
            next(&mut c),
            Reply::Canceled { cl_ord_id, reason: CancelReason::MASS_CANCEL, .. } if cl_ord_id == id
        ));
    }
    assert!(matches!(
        next(&mut c),
        Reply::MassCancelAck {
            cl_ord_id: 32,
            canceled_count: 2,
            ..
        }
    ));

    // Heartbeats are not answered; polling finds nothing.
    c.send_heartbeat().unwrap();
    assert_eq!(c.recv(Duration::ZERO).unwrap(), None);
    assert_eq!(c.recv(Duration::from_millis(20)).unwrap(), None);

    c.send_logout().unwrap();
    assert_eq!(
        next(&mut c),
        Reply::Terminate {
            reason: TerminateReason::LOGOUT
        }
    );
    assert!(matches!(c.recv(WAIT), Err(ClientError::Closed)));
    gw.shutdown();
}

#[test]
fn a_wrong_secret_is_a_logon_reject_carrying_its_reason() {
    let gw = TestGateway::start();
    let err =
        Connection::connect(gw.addr(), KEY_ID, [1; 32], &ConnectOptions::default()).unwrap_err();
    assert_eq!(
        err.logon_reject_reason(),
        Some(LogonRejectReason::AUTH_FAILED),
        "{err}"
    );
    assert_eq!(err.to_string(), "logon rejected: AUTH_FAILED (1)");
    let options = ConnectOptions {
        environment: Environment::Sandbox,
        ..ConnectOptions::default()
    };
    let err = Connection::connect(gw.addr(), KEY_ID, SECRET, &options).unwrap_err();
    assert_eq!(
        err.logon_reject_reason(),
        Some(LogonRejectReason::WRONG_ENVIRONMENT)
    );
    gw.shutdown();
}

#[test]
fn a_replayed_nonce_is_refused() {
    let gw = TestGateway::start();
    let options = ConnectOptions {
        nonce: NonceSource::Fixed([0x77; 16]),
        ..ConnectOptions::default()
    };
    let first = Connection::connect(gw.addr(), KEY_ID, SECRET, &options).unwrap();
    let err = Connection::connect(gw.addr(), KEY_ID, SECRET, &options).unwrap_err();
    assert_eq!(
        err.logon_reject_reason(),
        Some(LogonRejectReason::REPLAYED_NONCE)
    );
    first.close();
    gw.shutdown();
}

#[test]
fn raw_bytes_reach_the_gateway_unsealed() {
    let gw = TestGateway::start();
    let mut c = connect(&gw);
    // A NewOrder with seq 1 and a zero tag: BAD_MAC.
    let forged = wire::NewOrder {
        seq: 1,
        cl_ord_id: 1,
        price: 1,
        qty: 1,
        instrument_id: 1,
        side: 1,
        ord_type: 1,
        tif: 0,
    }
    .to_bytes();
    c.send_raw(&forged).unwrap();
    assert_eq!(
        next(&mut c),
        Reply::Terminate {
            reason: TerminateReason::BAD_MAC
        }
    );

    // A sealed frame with a length prefix of no template: MALFORMED.
    let mut c = connect(&gw);
    let mut sealed = c.seal(wire::Heartbeat { seq: 0 }.to_bytes());
    sealed[4] = 0; // block_length
    c.send_raw(&sealed).unwrap();
    assert_eq!(
        next(&mut c),
        Reply::Terminate {
            reason: TerminateReason::MALFORMED
        }
    );
    gw.shutdown();
}

#[test]
fn shutdown_reaches_the_client_as_terminate() {
    let gw = TestGateway::start();
    let mut c = connect(&gw);
    let counters = gw.shutdown();
    assert_eq!(counters.logons_accepted, 1);
    assert_eq!(
        next(&mut c),
        Reply::Terminate {
            reason: TerminateReason::SHUTDOWN
        }
    );
}
