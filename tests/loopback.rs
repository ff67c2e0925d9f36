//! The gateway over real loopback TCP (io_uring reactor, embedded engine),
//! each test asserting exact codes.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::net::*;
use ordergate::clock::wall_ns;
use ordergate::gateway::Gateway;
use ordergate::wire::codes::{
    CancelReason as CR, LogonRejectReason as LR, RejectReason as RR, TerminateReason as TR,
};
use ordergate::wire::{self, GatewayFrame};

// ------------------------------------------------------------------ logon

#[test]
fn logon_ok_then_each_logon_reject_with_its_code() {
    let gw = start();
    let addr = gw.local_addr();
    let mut ok = Conn::connect(addr, TRADER);
    ok.logon(0);

    type Case = (u64, Box<dyn Fn(&mut Conn) -> Vec<u8>>, LR);
    let cases: Vec<Case> = vec![
        (
            999,
            Box::new(|c: &mut Conn| c.logon_frame(0, 1, 1000).to_vec()),
            LR::AUTH_FAILED,
        ),
        (
            TRADER,
            Box::new(|c: &mut Conn| {
                let mut f = c.logon_frame(0, 1, 1000);
                f[60] ^= 1;
                f.to_vec()
            }),
            LR::AUTH_FAILED,
        ),
        (
            TRADER,
            Box::new(|c: &mut Conn| {
                let n = [0xEE; 16];
                c.c.logon(wall_ns() - 6_000_000_000, n, 1000, 1, 0).to_vec()
            }),
            LR::CLOCK_SKEW,
        ),
        (
            SANDBOX,
            Box::new(|c: &mut Conn| c.logon_frame(0, 2, 1000).to_vec()),
            LR::WRONG_ENVIRONMENT,
        ),
        (
            TRADER,
            Box::new(|c: &mut Conn| c.logon_frame(0, 1, 50).to_vec()),
            LR::MALFORMED,
        ),
        (
            TRADER,
            Box::new(|_: &mut Conn| wire::Heartbeat { seq: 1 }.to_bytes().to_vec()),
            LR::MALFORMED,
        ),
    ];
    for (key, frame, reason) in cases {
        let mut c = Conn::connect(addr, key);
        let f = frame(&mut c);
        c.send(&f);
        let reply = c.recv().expect("a LogonReject");
        assert_eq!(logon_reject(&reply), reason.wire(), "{}", reason.name());
        c.expect_closed();
    }

    // A replayed Logon frame.
    let mut a = Conn::connect(addr, TRADER);
    let f = a.logon_frame(0, 1, 1000);
    a.send(&f);
    assert_eq!(template(&a.recv().unwrap()), wire::LogonAck::TEMPLATE_ID);
    let mut b = Conn::connect(addr, TRADER);
    b.send(&f);
    assert_eq!(logon_reject(&b.recv().unwrap()), LR::REPLAYED_NONCE.wire());
    b.expect_closed();

    let report = finish(gw);
    let c = &report.reactors[0].counters;
    assert_eq!(c.logons_accepted, 2);
    assert_eq!(c.logon_reject(LR::AUTH_FAILED), 2);
    assert_eq!(c.logon_reject(LR::MALFORMED), 2);
    assert_eq!(c.logon_reject(LR::REPLAYED_NONCE), 1);
}

#[test]
fn five_failed_logons_lock_that_key_at_that_address_out() {
    let gw = start();
    let addr = gw.local_addr();
    for _ in 0..5 {
        let mut c = Conn::connect(addr, 4242);
        let f = c.logon_frame(0, 1, 1000);
        c.send(&f);
        assert_eq!(logon_reject(&c.recv().unwrap()), LR::AUTH_FAILED.wire());
    }
    let mut c = Conn::connect(addr, 4242);
    let f = c.logon_frame(0, 1, 1000);
    c.send(&f);
    assert_eq!(logon_reject(&c.recv().unwrap()), LR::THROTTLED.wire());
    // Another key from the same address is not locked out
    // (tests/logon_attacks.rs has the attacks).
    let mut c = Conn::connect(addr, TRADER);
    c.logon(0);
    finish(gw);
}

#[test]
fn a_full_slab_refuses_with_session_limit() {
    let mut s = spec();
    s.sessions_per_reactor = 2;
    let gw = Gateway::start(s, keys()).unwrap();
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    let mut b = Conn::connect(addr, TRADER);
    b.logon(0);
    let mut c = Conn::connect(addr, TRADER);
    let mut buf = [0u8; 64];
    let n = c.s.read(&mut buf).unwrap();
    assert_eq!(n, wire::LOGON_REJECT_SIZE);
    assert_eq!(logon_reject(&buf[..n]), LR::SESSION_LIMIT.wire());
    let report = finish(gw);
    assert_eq!(report.reactors[0].uring.accepts_refused_full, 1);
}

#[test]
fn an_idle_unauthenticated_connection_is_closed_at_the_logon_deadline() {
    let gw = start();
    let mut c = Conn::connect(gw.local_addr(), TRADER);
    let t = Instant::now();
    c.expect_closed();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(290),
        "closed after {waited:?}, deadline is 300 ms"
    );
    let report = finish(gw);
    assert_eq!(report.reactors[0].counters.logon_timeouts, 1);
}

// ----------------------------------------------------------------- orders

#[test]
fn order_accept_cross_fills_both_sides_cancel_replace_mass_cancel_and_ioc() {
    let gw = start();
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    let mut b = Conn::connect(addr, TRADER);
    b.logon(0);

    a.send_order(1, 100, 10, 1, 0);
    let (cl, order_id) = accepted(&a.recv().unwrap());
    assert_eq!(cl, 1);
    // B sells 4 at 100: both sides get a Fill at the resting price.
    b.send_order(7, 99, 4, 2, 0);
    assert_eq!(accepted(&b.recv().unwrap()).0, 7);
    assert_eq!(fill(&b.recv().unwrap()), (7, 100, 4, 0));
    assert_eq!(fill(&a.recv().unwrap()), (1, 100, 4, 6));
    // Replace A's order to 8 open.
    let r = a.c.seal(
        wire::ReplaceOrder {
            seq: 0,
            cl_ord_id: 2,
            orig_cl_ord_id: 1,
            price: 100,
            qty: 8,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    a.send(&r);
    match wire::decode_gateway(&a.recv().unwrap()).unwrap() {
        GatewayFrame::OrderReplaced(x) => {
            assert_eq!(
                (x.cl_ord_id(), x.order_id(), x.leaves_qty()),
                (2, order_id, 8)
            )
        }
        other => panic!("{other:?}"),
    }
    // Cancel by its new id.
    let c = a.c.seal(
        wire::CancelOrder {
            seq: 0,
            cl_ord_id: 3,
            orig_cl_ord_id: 2,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    a.send(&c);
    assert_eq!(canceled(&a.recv().unwrap()), (3, 8, CR::USER.wire()));
    // Cancel again: it is gone.
    let c = a.c.seal(
        wire::CancelOrder {
            seq: 0,
            cl_ord_id: 4,
            orig_cl_ord_id: 2,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    a.send(&c);
    assert_eq!(
        rejected(&a.recv().unwrap()),
        (4, RR::UNKNOWN_ORDER.wire(), 0)
    );
    // Two resting orders, then a mass cancel.
    a.send_order(5, 90, 1, 1, 0);
    a.send_order(6, 91, 1, 1, 0);
    a.recv().unwrap();
    a.recv().unwrap();
    let m = a.c.seal(
        wire::MassCancel {
            seq: 0,
            cl_ord_id: 8,
            instrument_id: 0,
            side: 0,
        }
        .to_bytes(),
    );
    a.send(&m);
    let mut ids = vec![canceled(&a.recv().unwrap()), canceled(&a.recv().unwrap())];
    ids.sort();
    assert_eq!(
        ids,
        vec![
            (5, 1, CR::MASS_CANCEL.wire()),
            (6, 1, CR::MASS_CANCEL.wire())
        ]
    );
    match wire::decode_gateway(&a.recv().unwrap()).unwrap() {
        GatewayFrame::MassCancelAck(x) => assert_eq!((x.cl_ord_id(), x.canceled_count()), (8, 2)),
        other => panic!("{other:?}"),
    }
    // IOC with nothing to cross: accepted, then its remainder canceled
    // (at 95: inside the ±10% collar around the last trade, 100).
    b.send_order(9, 95, 3, 2, 3);
    assert_eq!(accepted(&b.recv().unwrap()).0, 9);
    assert_eq!(
        canceled(&b.recv().unwrap()),
        (9, 3, CR::IMMEDIATE_OR_CANCEL.wire())
    );
    finish(gw);
}

#[test]
fn a_bad_tag_terminates_bad_mac_and_nothing_reaches_the_book() {
    let gw = start();
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    let mut f = a.order(1, 100, 5, 1, 0);
    f[30] ^= 0x40;
    a.send(&f);
    assert_eq!(terminate(&a.recv().unwrap()), TR::BAD_MAC.wire());
    a.expect_closed();
    // Had the buy reached the book, this IOC sell would fill.
    let mut b = Conn::connect(addr, TRADER);
    b.logon(0);
    b.send_order(1, 100, 5, 2, 3);
    assert_eq!(accepted(&b.recv().unwrap()).0, 1);
    assert_eq!(
        canceled(&b.recv().unwrap()),
        (1, 5, CR::IMMEDIATE_OR_CANCEL.wire())
    );
    let report = finish(gw);
    assert_eq!(report.reactors[0].counters.terminate(TR::BAD_MAC), 1);
}

#[test]
fn a_sequence_gap_terminates_sequence_error() {
    let gw = start();
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    a.logon(0);
    let _skipped = a.order(1, 100, 1, 1, 0);
    let f = a.order(2, 100, 1, 1, 0);
    a.send(&f);
    assert_eq!(terminate(&a.recv().unwrap()), TR::SEQUENCE_ERROR.wire());
    a.expect_closed();
    finish(gw);
}

#[test]
fn a_malformed_frame_terminates_malformed() {
    let gw = start();
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    a.logon(0);
    let mut f = a.order(1, 100, 1, 1, 0);
    f[8] = 0x01; // schema id
    a.send(&f);
    assert_eq!(terminate(&a.recv().unwrap()), TR::MALFORMED.wire());
    a.expect_closed();
    finish(gw);
}

#[test]
fn frames_sent_one_byte_at_a_time_are_answered() {
    let gw = start();
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    let logon = a.logon_frame(0, 1, 1000);
    for b in logon {
        a.send(&[b]);
    }
    assert_eq!(template(&a.recv().unwrap()), wire::LogonAck::TEMPLATE_ID);
    let f = a.order(11, 100, 1, 1, 0);
    for b in f {
        a.send(&[b]);
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(accepted(&a.recv().unwrap()).0, 11);
    finish(gw);
}

#[test]
fn two_hundred_frames_in_one_write_are_answered_in_order() {
    let gw = start();
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    a.logon(0);
    let mut batch = Vec::new();
    for i in 0..200u64 {
        batch.extend_from_slice(&a.order(1000 + i, 10 + i as i64, 1, 1, 0));
    }
    a.send(&batch);
    for i in 0..200u64 {
        assert_eq!(accepted(&a.recv().unwrap()).0, 1000 + i);
    }
    finish(gw);
}

#[test]
fn the_gateway_heartbeats_an_idle_session() {
    let gw = start();
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    let f = a.logon_frame(0, 1, 100);
    a.send(&f);
    assert_eq!(template(&a.recv().unwrap()), wire::LogonAck::TEMPLATE_ID);
    let t = Instant::now();
    assert_eq!(
        template(&a.recv_any().unwrap()),
        wire::Heartbeat::TEMPLATE_ID
    );
    assert!(t.elapsed() >= Duration::from_millis(90));
    // Silent for two intervals: Terminate HEARTBEAT_TIMEOUT.
    let mut last = a.recv_any().unwrap();
    while template(&last) == wire::Heartbeat::TEMPLATE_ID {
        last = a.recv_any().unwrap();
    }
    assert_eq!(terminate(&last), TR::HEARTBEAT_TIMEOUT.wire());
    a.expect_closed();
    finish(gw);
}

#[test]
fn logout_is_answered_by_terminate_logout_then_close() {
    let gw = start();
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    a.logon(0);
    let f = a.c.seal(wire::Logout { seq: 0, reason: 0 }.to_bytes());
    a.send(&f);
    assert_eq!(terminate(&a.recv().unwrap()), TR::LOGOUT.wire());
    a.expect_closed();
    finish(gw);
}

#[test]
fn cancel_on_disconnect_cancels_resting_orders_when_the_client_vanishes() {
    let gw = start();
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    a.logon(1);
    a.send_order(1, 100, 5, 1, 0);
    accepted(&a.recv().unwrap());
    drop(a);
    let mut b = Conn::connect(addr, TRADER);
    b.logon(0);
    // Give the reactor a moment to see the EOF and the engine the cancel.
    let deadline = Instant::now() + WAIT;
    let mut id = 1;
    loop {
        b.send_order(id, 100, 5, 2, 3);
        assert_eq!(accepted(&b.recv().unwrap()).0, id);
        let next = b.recv().unwrap();
        if template(&next) == wire::OrderCanceled::TEMPLATE_ID {
            assert_eq!(canceled(&next), (id, 5, CR::IMMEDIATE_OR_CANCEL.wire()));
            break;
        }
        // Still resting: the IOC filled against it (the cancel had not
        // arrived yet). That can happen only in the first moments.
        assert_eq!(template(&next), wire::Fill::TEMPLATE_ID);
        assert!(
            Instant::now() < deadline,
            "the disconnected session's order was never canceled"
        );
        b.recv().unwrap(); // the IOC's remainder
        id += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    finish(gw);
}

#[test]
fn throttled_orders_say_when_to_retry() {
    let gw = start();
    let mut a = Conn::connect(gw.local_addr(), SLOW);
    a.logon(0);
    let mut batch = Vec::new();
    for i in 0..4u64 {
        batch.extend_from_slice(&a.order(i + 1, 10, 1, 1, 0));
    }
    a.send(&batch);
    // The throttle reject is the gateway's own and is sent at once; the
    // accepts come back from the engine: replies to different orders may
    // overtake each other (docs/PROTOCOL.md).
    let mut accepted_ids = Vec::new();
    let mut throttled = None;
    for _ in 0..4 {
        let f = a.recv().unwrap();
        if template(&f) == wire::OrderRejected::TEMPLATE_ID {
            throttled = Some(rejected(&f));
        } else {
            accepted_ids.push(accepted(&f).0);
        }
    }
    assert_eq!(accepted_ids, vec![1, 2, 3]);
    let (cl, reason, retry) = throttled.expect("one order throttled");
    assert_eq!((cl, reason), (4, RR::THROTTLED.wire()));
    assert!(
        retry > 0 && retry <= 100_000_000,
        "retry_after_ns {retry} within one interval"
    );
    finish(gw);
}

#[test]
fn a_cancel_only_key_cannot_trade() {
    let gw = start();
    let mut a = Conn::connect(gw.local_addr(), CANCEL_ONLY);
    a.logon(0);
    a.send_order(1, 10, 1, 1, 0);
    assert_eq!(
        rejected(&a.recv().unwrap()),
        (1, RR::NOT_PERMITTED.wire(), 0)
    );
    let c = a.c.seal(
        wire::CancelOrder {
            seq: 0,
            cl_ord_id: 2,
            orig_cl_ord_id: 1,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    a.send(&c);
    assert_eq!(
        rejected(&a.recv().unwrap()),
        (2, RR::UNKNOWN_ORDER.wire(), 0)
    );
    finish(gw);
}

#[test]
fn shutdown_sends_terminate_shutdown_to_every_session() {
    let gw = start();
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    let mut b = Conn::connect(addr, TRADER);
    b.logon(0);
    let stop = gw.stop_handle();
    let waiter = std::thread::spawn(move || gw.wait());
    stop.stop();
    assert_eq!(terminate(&a.recv().unwrap()), TR::SHUTDOWN.wire());
    assert_eq!(terminate(&b.recv().unwrap()), TR::SHUTDOWN.wire());
    a.expect_closed();
    let report = waiter.join().unwrap();
    assert_eq!(report.reactors[0].counters.terminate(TR::SHUTDOWN), 2);
}

/// The resting side of a fill sent nothing in the turn its Fill arrives; the
/// Fill must still go out at once. With keepalive at 60 s no timer can
/// rescue a reply the reactor forgot to flush, so a forgotten one times out.
#[test]
fn engine_replies_go_out_at_once_whatever_the_engine_placement() {
    use ordergate::gateway::EnginePlacement;
    for engine in [
        EnginePlacement::SharedWithReactor0,
        EnginePlacement::OwnThread { core: None },
    ] {
        let gw =
            Gateway::start(ordergate::gateway::GatewaySpec { engine, ..spec() }, keys()).unwrap();
        let addr = gw.local_addr();
        let mut a = Conn::connect(addr, TRADER);
        let f = a.logon_frame(0, 1, 60_000);
        a.send(&f);
        assert_eq!(template(&a.recv().unwrap()), wire::LogonAck::TEMPLATE_ID);
        let mut b = Conn::connect(addr, TRADER);
        let f = b.logon_frame(0, 1, 60_000);
        b.send(&f);
        assert_eq!(template(&b.recv().unwrap()), wire::LogonAck::TEMPLATE_ID);
        a.send_order(1, 100, 5, 1, 0);
        assert_eq!(accepted(&a.recv().unwrap()).0, 1, "{engine:?}");
        b.send_order(2, 100, 5, 2, 0);
        assert_eq!(accepted(&b.recv().unwrap()).0, 2, "{engine:?}");
        assert_eq!(fill(&b.recv().unwrap()), (2, 100, 5, 0), "{engine:?}");
        assert_eq!(fill(&a.recv().unwrap()), (1, 100, 5, 0), "{engine:?}");
        finish(gw);
    }
}
