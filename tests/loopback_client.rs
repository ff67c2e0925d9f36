//! End to end on loopback: the real gateway (`Gateway::start`: io_uring
//! reactor, rings, embedded engine) driven by `net_client`, the load
//! generator and the demo.

mod common;

use std::time::Duration;

use ordergate::auth::keys::KeyTable;
use ordergate::engine::book::EngineConfig;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::net_client::{ClientError, ConnectOptions, Connection, Order, Reply};
use ordergate::wire::{
    self,
    codes::{CancelReason, LogonRejectReason, RejectReason, Side, TerminateReason},
};
use ordergate_bench::demo::{DemoParams, run_demo};
use ordergate_bench::load::{LoadParams, run_load};

const KEY: u64 = 4242;
const SECRET: [u8; 32] = [0x3c; 32];
const WAIT: Duration = Duration::from_secs(5);

/// A gateway with one trade+cancel key whose rates never bind, and a small
/// engine (these tests rest a handful of orders).
fn start() -> Gateway {
    let keys = KeyTable::from_entries(vec![common::unthrottled_key(KEY, SECRET)]).unwrap();
    let mut spec = GatewaySpec::default();
    spec.session.session_msgs_per_sec = 1_000_000;
    spec.session.session_burst = 100_000;
    spec.engine_config = EngineConfig {
        orders_max: 1 << 14,
        ..EngineConfig::default()
    };
    Gateway::start(spec, keys).expect("the gateway starts")
}

fn connect(gw: &Gateway) -> Connection {
    Connection::connect(gw.local_addr(), KEY, SECRET, &ConnectOptions::default()).expect("logon")
}

/// The next reply other than a Heartbeat.
fn next(c: &mut Connection) -> Reply {
    loop {
        match c.recv(WAIT).expect("recv").expect("a reply in time") {
            Reply::Heartbeat => continue,
            r => return r,
        }
    }
}

#[test]
fn logon_order_accept_replace_cancel_logout() {
    let gw = start();
    let mut c = connect(&gw);
    assert_ne!(c.session_id(), 0);

    assert_eq!(
        c.send_new_order(&Order::limit(1, 1, Side::Buy, 100, 10))
            .unwrap(),
        1
    );
    let order_id = match next(&mut c) {
        Reply::Accepted {
            cl_ord_id: 1,
            order_id,
            transact_time_ns,
        } => {
            assert!(transact_time_ns > 0);
            order_id
        }
        other => panic!("expected Accepted for 1, got {other:?}"),
    };

    c.send_replace(2, 1, 1, 101, 5).unwrap();
    match next(&mut c) {
        Reply::Replaced {
            cl_ord_id: 2,
            order_id: o,
            leaves_qty: 5,
            ..
        } => assert_eq!(o, order_id),
        other => panic!("expected Replaced for 2, got {other:?}"),
    }

    c.send_cancel(3, 2, 1).unwrap();
    match next(&mut c) {
        Reply::Canceled {
            cl_ord_id: 3,
            order_id: o,
            canceled_qty: 5,
            reason: CancelReason::USER,
            ..
        } => assert_eq!(o, order_id),
        other => panic!("expected Canceled for 3, got {other:?}"),
    }

    c.send_cancel(4, 2, 1).unwrap();
    assert!(matches!(
        next(&mut c),
        Reply::Rejected {
            cl_ord_id: 4,
            reason: RejectReason::UNKNOWN_ORDER,
            ..
        }
    ));

    c.send_logout().unwrap();
    assert_eq!(
        next(&mut c),
        Reply::Terminate {
            reason: TerminateReason::LOGOUT
        }
    );
    assert!(matches!(c.recv(WAIT), Err(ClientError::Closed)));

    let report = gw.shutdown();
    let logons: u64 = report
        .reactors
        .iter()
        .map(|r| r.counters.logons_accepted)
        .sum();
    assert_eq!(logons, 1);
}

#[test]
fn crossing_orders_fill_both_sides() {
    let gw = start();
    let mut maker = connect(&gw);
    let mut taker = connect(&gw);

    maker
        .send_new_order(&Order::limit(10, 2, Side::Sell, 500, 7))
        .unwrap();
    assert!(matches!(
        next(&mut maker),
        Reply::Accepted { cl_ord_id: 10, .. }
    ));

    taker
        .send_new_order(&Order::limit(20, 2, Side::Buy, 505, 10))
        .unwrap();
    assert!(matches!(
        next(&mut taker),
        Reply::Accepted { cl_ord_id: 20, .. }
    ));
    let taker_fill = next(&mut taker);
    let maker_fill = next(&mut maker);
    let (
        Reply::Fill {
            cl_ord_id: 20,
            exec_id: taker_exec,
            price: 500,
            qty: 7,
            leaves_qty: 3,
            ..
        },
        Reply::Fill {
            cl_ord_id: 10,
            exec_id: maker_exec,
            price: 500,
            qty: 7,
            leaves_qty: 0,
            ..
        },
    ) = (taker_fill, maker_fill)
    else {
        panic!("expected Fills on both sides, got {taker_fill:?} and {maker_fill:?}")
    };
    assert_eq!(taker_exec, maker_exec, "one trade, one exec id");

    // The taker's remainder rests; mass cancel takes it.
    taker.send_mass_cancel(21, 0, None).unwrap();
    assert!(matches!(
        next(&mut taker),
        Reply::Canceled {
            cl_ord_id: 20,
            canceled_qty: 3,
            reason: CancelReason::MASS_CANCEL,
            ..
        }
    ));
    assert!(matches!(
        next(&mut taker),
        Reply::MassCancelAck {
            cl_ord_id: 21,
            canceled_count: 1,
            ..
        }
    ));
    gw.shutdown();
}

#[test]
fn refused_logons_and_frames_are_answered_with_their_reason() {
    let gw = start();
    let err =
        Connection::connect(gw.local_addr(), KEY, [0; 32], &ConnectOptions::default()).unwrap_err();
    assert_eq!(
        err.logon_reject_reason(),
        Some(LogonRejectReason::AUTH_FAILED),
        "{err}"
    );

    // A frame with a forged tag ends the session with BAD_MAC.
    let mut c = connect(&gw);
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

    // A length prefix no template has ends it with MALFORMED.
    let mut c = connect(&gw);
    c.send_raw(&[200, 0, 0xFE, 0xCA]).unwrap();
    assert_eq!(
        next(&mut c),
        Reply::Terminate {
            reason: TerminateReason::MALFORMED
        }
    );
    gw.shutdown();
}

#[test]
fn shutdown_terminates_every_session() {
    let gw = start();
    let mut a = connect(&gw);
    let mut b = connect(&gw);
    let report = gw.shutdown();
    for c in [&mut a, &mut b] {
        assert_eq!(
            next(c),
            Reply::Terminate {
                reason: TerminateReason::SHUTDOWN
            }
        );
    }
    let shutdowns: u64 = report
        .reactors
        .iter()
        .map(|r| r.counters.terminate(TerminateReason::SHUTDOWN))
        .sum();
    assert_eq!(shutdowns, 2);
}

#[test]
fn a_short_load_run_is_answered_in_full_and_trades() {
    let gw = start();
    let mut p = LoadParams::new(gw.local_addr(), KEY, SECRET);
    p.sessions = 2;
    p.rate = 2_000;
    p.warmup = Duration::from_millis(100);
    p.duration = Duration::from_millis(500);
    let r = run_load(&p).unwrap();
    let text = r.render();
    assert!(r.errors.is_empty(), "{text}");
    assert_eq!(r.unanswered, 0, "{text}");
    assert!(r.sent() > 0, "{text}");
    assert_eq!(
        r.accepted + r.rejected + r.canceled + r.replaced,
        r.sent(),
        "{text}"
    );
    assert!(r.fills > 0, "{text}");
    assert_eq!(
        r.terminates[TerminateReason::LOGOUT.wire() as usize],
        2,
        "{text}"
    );
    let report = gw.shutdown();
    let messages: u64 = report.reactors.iter().map(|r| r.counters.messages_in).sum();
    assert!(messages >= r.sent(), "{messages} < {}", r.sent());
}

#[test]
fn the_demo_runs_for_one_second_with_two_sessions() {
    let report = run_demo(&DemoParams {
        seconds: 1,
        sessions: 2,
        compare: true,
        ..DemoParams::default()
    })
    .expect("the demo runs");
    let text = report.render();
    println!("{text}");
    assert!(report.load.sent() > 0, "{text}");
    assert!(report.load.accepted > 0, "{text}");
    assert!(report.load.fills > 0, "{text}");
    assert!(report.load.errors.is_empty(), "{text}");
    assert!(report.comparison.is_some());
    let ring = report.recv_to_ring_ns().expect("the gateway's histogram");
    assert!(!ring.is_empty(), "{text}");
    assert!(
        report.elapsed < Duration::from_secs(4),
        "1 s of demo took {:?}",
        report.elapsed
    );
    // The plain entry point too.
    ordergate_bench::demo::run(1, 2).expect("demo::run");
}
