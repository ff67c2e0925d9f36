//! io_uring's own failures on a real ring (docs/TESTING.md cases 34 and
//! 35): the provided-buffer ring running dry (ENOBUFS) and the completion
//! queue overflowing, each forced by a tiny configuration and many
//! sessions sending at once. Every order still gets exactly one answer and
//! no session is dropped; the counters say what happened.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::net::{Conn, TRADER, accepted, finish, spec, template};
use ordergate::constants::FRAME_SIZE_MAX;
use ordergate::gateway::{Gateway, GatewayReport, GatewaySpec};
use ordergate::wire;
use ordergate::wire::codes::TerminateReason as TR;

const SESSIONS: usize = 32;
const ORDERS: u64 = 48;

/// `SESSIONS` clients log on, wait for each other, then each writes
/// `ORDERS` resting orders in one write and reads their answers. Each
/// order's answer must be its OrderAccepted, in order, exactly once; a
/// last order then gets the next answer (so nothing extra came before it).
/// Returns the gateway's report after a clean stop.
fn storm(spec: GatewaySpec) -> GatewayReport {
    let gw = Gateway::start(spec, common::net::keys()).expect("the gateway starts");
    let addr = gw.local_addr();
    // Log on one by one (32 logons at once from one address would meet
    // the pending-logon cap), then send all at once.
    let conns: Vec<Conn> = (0..SESSIONS)
        .map(|_| {
            let mut c = Conn::connect(addr, TRADER);
            c.logon(0);
            c
        })
        .collect();
    let go = Arc::new(Barrier::new(SESSIONS));
    let clients: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(s, mut c)| {
            let go = Arc::clone(&go);
            thread::spawn(move || {
                let base = (s as u64 + 1) * 1_000_000;
                let mut batch = Vec::new();
                for i in 0..ORDERS {
                    // Buys below any sell: every order rests.
                    batch.extend_from_slice(&c.order(base + i, 100 + i as i64, 1, 1, 0));
                }
                go.wait();
                c.send(&batch);
                for i in 0..ORDERS {
                    let f = c.recv().expect("an answer, not a close");
                    assert_eq!(
                        accepted(&f).0,
                        base + i,
                        "session {s}: answer {i} is the accept of order {i}"
                    );
                }
                c.send_order(base + ORDERS, 99, 1, 1, 0);
                let f = c.recv().expect("the last order's answer");
                assert_eq!(
                    template(&f),
                    wire::OrderAccepted::TEMPLATE_ID,
                    "session {s}: nothing more than one answer per order"
                );
                assert_eq!(accepted(&f).0, base + ORDERS);
                c
            })
        })
        .collect();
    // Keep every connection open until all have been answered: a client
    // closing early is not the gateway dropping it.
    let conns: Vec<Conn> = clients
        .into_iter()
        .map(|t| t.join().expect("the client's checks hold"))
        .collect();
    let report = finish(gw);
    drop(conns);
    report
}

fn no_session_dropped(report: &GatewayReport) {
    let c = &report.reactors[0].counters;
    assert_eq!(c.logons_accepted, SESSIONS as u64);
    assert_eq!(
        c.commands_out,
        SESSIONS as u64 * (ORDERS + 1),
        "every order reached the engine once"
    );
    for &r in TR::ALL {
        if r != TR::SHUTDOWN {
            assert_eq!(c.terminate(r), 0, "no session ended {r:?}");
        }
    }
    assert_eq!(c.slow_consumers, 0);
    assert_eq!(c.bytes_discarded, 0, "no received byte was thrown away");
}

/// Case 34: two receive buffers of one frame each for 32 sessions writing
/// 48 orders at once. Receives find the ring empty (ENOBUFS), are re-armed
/// once buffers are recycled, and every order is answered exactly once.
#[test]
fn enobufs_storm_every_order_answered_once_and_no_session_dropped() {
    let report = storm(GatewaySpec {
        recv_buffers: 2,
        recv_buffer_size: FRAME_SIZE_MAX as u32,
        ..spec()
    });
    no_session_dropped(&report);
    let u = &report.reactors[0].uring;
    eprintln!(
        "recv_enobufs {} recv_rearms {} recv_completions {}",
        u.recv_enobufs, u.recv_rearms, u.recv_completions
    );
    assert!(u.recv_enobufs > 0, "the buffer ring ran dry: {u:?}");
    assert!(
        u.recv_rearms >= u.recv_enobufs,
        "each ENOBUFS end of a receive was re-armed: {u:?}"
    );
}

/// Case 35: an io_uring of one submission entry (a completion queue of
/// four) for 32 sessions writing 48 orders at once. Completions beyond the
/// queue wait in the kernel's overflow list (IORING_FEAT_NODROP, required
/// at start) and are flushed by the next enter: none is lost, every order
/// is answered exactly once.
#[test]
fn cq_overflow_loses_no_completion_and_every_order_is_answered_once() {
    let report = storm(GatewaySpec {
        uring_entries: 1,
        ..spec()
    });
    no_session_dropped(&report);
    let u = &report.reactors[0].uring;
    eprintln!(
        "cq_overflow {} cq_dropped {} recv_rearms {} sq_full {} recv_completions {} send_completions {}",
        u.cq_overflow,
        u.cq_dropped,
        u.recv_rearms,
        u.sq_full,
        u.recv_completions,
        u.send_completions
    );
    assert!(u.cq_overflow > 0, "the completion queue overflowed: {u:?}");
    assert_eq!(u.cq_dropped, 0, "and the kernel lost no completion");
    assert!(
        u.recv_rearms > 0,
        "multishot receives ended by the overflow were re-armed: {u:?}"
    );
}
