//! Kernel entries per request (issue 11): the reactor's own count of its
//! `io_uring_enter` calls, over a real loopback closed loop.
//!
//! A closed loop sends one request, waits for its answer, sends the next.
//! The blocking turn ("backoff" with no spin) should cost one enter per
//! request: the enter that submits the answer's send also waits for, and
//! runs the task work of, the next request's bytes. Enters that time
//! causes, not requests — a wait that the timer tick ended because the
//! client had not sent yet (this machine may be loaded) — are counted apart
//! and left out; everything else is charged to the requests. Counts, never
//! times.

mod common;

use std::time::Duration;

use common::net::*;
use ordergate::gateway::{Gateway, GatewayReport, GatewaySpec, UringCounters};
use ordergate::reactor::idle::IdleKind;
use ordergate::wire::{self, GatewayFrame};

/// Closed-loop requests per run: NewOrder and CancelOrder alternating.
const REQUESTS: u64 = 2_000;
/// Enters the connection's life costs beside its requests: the accept,
/// the logon, the logout and the stop's terminate, close and drain.
const SETUP_ENTERS_MAX: u64 = 40;

/// One gateway at a time: two reactors and a poller spinning against each
/// other on a small host would measure the contention.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Logs on, runs `REQUESTS` closed-loop requests (each answered before the
/// next is sent), logs out, stops the gateway; its report.
fn closed_loop(spec: GatewaySpec) -> GatewayReport {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gw = Gateway::start(spec, keys()).expect("the gateway starts");
    let mut c = Conn::connect(gw.local_addr(), TRADER);
    c.logon(0);
    for i in 0..REQUESTS / 2 {
        let id = 1_000 + 2 * i;
        c.send_order(id, 1, 1, 1, 0);
        let f = c.recv().expect("an answer to NewOrder");
        assert_eq!(accepted(&f).0, id, "NewOrder {id} accepted");
        let cancel = c.c.seal(
            wire::CancelOrder {
                seq: 0,
                cl_ord_id: id + 1,
                orig_cl_ord_id: id,
                instrument_id: 1,
            }
            .to_bytes(),
        );
        c.send(&cancel);
        let f = c.recv().expect("an answer to CancelOrder");
        match wire::decode_gateway(&f).unwrap() {
            GatewayFrame::OrderCanceled(x) => assert_eq!(x.cl_ord_id(), id + 1),
            other => panic!("expected OrderCanceled for {}, got {other:?}", id + 1),
        }
    }
    drop(c);
    finish(gw)
}

/// Enters charged to requests: all of them less those that time caused.
fn request_enters(u: &UringCounters) -> u64 {
    u.enters - u.enter_wait_timeouts - u.enter_wait_own
}

fn show(u: &UringCounters, messages: u64) -> String {
    format!(
        "{} enters for {messages} messages in ({:.2} per message), {} of them waits \
         ({} ended by the tick alone, {} by the tick with only their own sends' completions), spin hits {} misses {}, SQPOLL wake-ups {}",
        u.enters,
        u.enters as f64 / messages.max(1) as f64,
        u.enter_waits,
        u.enter_wait_timeouts,
        u.enter_wait_own,
        u.spin_hits,
        u.spin_misses,
        u.sqpoll_wakeups,
    )
}

#[test]
fn the_blocking_turn_makes_at_most_one_enter_per_request_in_a_closed_loop() {
    // No spin: every turn ends in the blocking enter (the adaptive spin,
    // which trades a second enter for a wake-up, has unit tests of its own
    // in crates/ordergate/src/reactor/idle.rs).
    let spec = GatewaySpec {
        idle: IdleKind::Backoff,
        spin_max: Duration::ZERO,
        ..spec()
    };
    let report = closed_loop(spec);
    let r = &report.reactors[0];
    let messages = r.counters.messages_in;
    assert!(messages >= REQUESTS, "{messages} messages in");
    let charged = request_enters(&r.uring);
    assert!(
        charged <= messages + SETUP_ENTERS_MAX,
        "more than one enter per request: {}",
        show(&r.uring, messages)
    );
    eprintln!("blocking turn: {}", show(&r.uring, messages));
}

#[test]
fn with_sqpoll_the_reactor_makes_no_enter_per_request() {
    // Busy-spin on the completion queue; the SQPOLL thread submits the
    // sends and runs the receives. It sleeps only after SQPOLL_IDLE_MS
    // without work, far longer than this loop's pauses.
    let spec = GatewaySpec {
        idle: IdleKind::BusySpin,
        sqpoll: true,
        ..spec()
    };
    let report = closed_loop(spec);
    let r = &report.reactors[0];
    let messages = r.counters.messages_in;
    assert!(messages >= REQUESTS, "{messages} messages in");
    assert_eq!(r.uring.enter_waits, 0, "busy-spin never waits");
    // Each enter is a wake-up of a poller that had slept; none is per
    // request. Measured: 0–1 a run (the wake-up at start); on a loaded
    // 2-core host, with another gateway spinning beside it, the poller was
    // seen sleeping between requests (thousands of wake-ups): hence one
    // gateway at a time here, and one wake-up per batch of entries.
    assert!(
        r.uring.enters == r.uring.sqpoll_wakeups && r.uring.enters * 20 <= messages,
        "enters grew with the requests: {}",
        show(&r.uring, messages)
    );
    eprintln!("sqpoll: {}", show(&r.uring, messages));
}
