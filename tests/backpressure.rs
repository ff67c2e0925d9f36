//! Attack 6 ("Hold under attack"): a fast client that pipelines more
//! requests than its transmit buffer can hold answers for, over real
//! loopback TCP. A client that reads is paused (back-pressure), never cut,
//! and gets every answer; only a client that does not read is cut, with
//! Terminate SLOW_CONSUMER when there is room for it.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::Duration;

use common::net::*;
use ordergate::wire::codes::{RejectReason as RR, TerminateReason as TR};
use ordergate::wire::{self, GatewayFrame};

/// Orders one client pipelines in one write: their answers (64 bytes each
/// when refused, 60 when accepted) are ~1.5 × the 64 KiB transmit buffer.
const BURST: u64 = 1_500;

/// Writes `bytes` on a clone of the connection's socket from another
/// thread, so that the test can read while the write blocks (TCP
/// back-pressure). The write's result is returned, not unwrapped: a gateway
/// that cuts the client makes it fail.
fn write_in_background(s: &TcpStream, bytes: Vec<u8>) -> JoinHandle<std::io::Result<()>> {
    let mut w = s.try_clone().expect("clone the socket");
    w.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    std::thread::spawn(move || w.write_all(&bytes))
}

/// Reads up to `n` frames other than Heartbeats; stops early at EOF.
fn read_answers(c: &mut Conn, n: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n as usize);
    while (out.len() as u64) < n {
        match c.recv() {
            Some(f) => out.push(f),
            None => break,
        }
    }
    out
}

#[test]
fn a_reading_client_pipelining_refused_orders_gets_every_answer_and_stays() {
    let gw = start();
    let mut c = Conn::connect(gw.local_addr(), CANCEL_ONLY);
    c.logon(0);
    let mut batch = Vec::with_capacity(BURST as usize * wire::NEW_ORDER_SIZE);
    for i in 0..BURST {
        batch.extend_from_slice(&c.order(1 + i, 100, 1, 1, 0));
    }
    let writer = write_in_background(&c.s, batch);
    let answers = read_answers(&mut c, BURST);
    let written = writer.join().unwrap();
    let not_permitted = answers
        .iter()
        .filter(|f| rejected(f).1 == RR::NOT_PERMITTED.wire())
        .count();
    assert_eq!(
        (answers.len(), not_permitted),
        (BURST as usize, BURST as usize),
        "every pipelined order answered NOT_PERMITTED (write: {written:?})"
    );
    for (i, f) in answers.iter().enumerate() {
        assert_eq!(rejected(f).0, 1 + i as u64, "answers in order");
    }
    // The session is alive: a cancel still reaches the engine.
    let f = c.c.seal(
        wire::CancelOrder {
            seq: 0,
            cl_ord_id: 9_000,
            orig_cl_ord_id: 1,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    c.send(&f);
    assert_eq!(
        rejected(&c.recv().expect("an answer")),
        (9_000, RR::UNKNOWN_ORDER.wire(), 0)
    );
    drop(c);
    let report = finish(gw);
    let r = &report.reactors[0];
    assert_eq!(r.counters.slow_consumers, 0);
    assert_eq!(r.counters.order_reject(RR::NOT_PERMITTED), BURST);
    assert!(
        r.counters.input_paused > 0,
        "the burst paused the session's input: {:?}",
        r.counters
    );
    assert!(r.uring.recv_parked > 0, "{:?}", r.uring);
}

#[test]
fn a_reading_client_pipelining_accepted_orders_gets_every_acknowledgement() {
    let gw = start();
    let mut c = Conn::connect(gw.local_addr(), TRADER);
    c.logon(0);
    let mut batch = Vec::with_capacity(BURST as usize * wire::NEW_ORDER_SIZE);
    for i in 0..BURST {
        // Buys below every sell: nothing crosses, every order rests.
        batch.extend_from_slice(&c.order(1 + i, 100 + (i % 50) as i64, 1, 1, 0));
    }
    let writer = write_in_background(&c.s, batch);
    let answers = read_answers(&mut c, BURST);
    let written = writer.join().unwrap();
    let accepted: Vec<u64> = answers
        .iter()
        .filter_map(|f| match wire::decode_gateway(f).unwrap() {
            GatewayFrame::OrderAccepted(a) => Some(a.cl_ord_id()),
            _ => None,
        })
        .collect();
    assert_eq!(
        (answers.len(), accepted.len()),
        (BURST as usize, BURST as usize),
        "every pipelined order acknowledged (write: {written:?})"
    );
    assert_eq!(accepted, (1..=BURST).collect::<Vec<_>>(), "in order");
    c.send_order(9_000, 99, 1, 1, 0);
    assert_eq!(accepted_id(&c.recv().expect("an answer")), 9_000);
    drop(c);
    let report = finish(gw);
    let r = &report.reactors[0];
    assert_eq!(r.counters.slow_consumers, 0);
    assert_eq!(r.counters.events_undeliverable, 0);
    assert_eq!(report.engine.commands, BURST + 1);
}

/// A key whose risk limit refuses any order above 10 lots.
const CAPPED: u64 = 5;

#[test]
fn a_burst_of_accepted_then_refused_orders_acknowledges_every_accepted_one() {
    use ordergate::auth::keys::KeyTable;
    let mut capped = common::unthrottled_key(CAPPED, SECRET);
    capped.max_order_qty = std::num::NonZeroU32::new(10);
    let table = KeyTable::from_entries(vec![capped]).unwrap();
    let gw = ordergate::gateway::Gateway::start(spec(), table).expect("starts");
    let mut c = Conn::connect(gw.local_addr(), CAPPED);
    c.logon(0);
    // 300 orders the engine accepts, then 1,200 refused at once
    // (RISK_MAX_QTY): the refusals alone are 76,800 bytes of answers.
    let (good, refused) = (300u64, 1_200u64);
    let mut batch = Vec::new();
    for i in 0..good {
        batch.extend_from_slice(&c.order(1 + i, 100, 1, 1, 0));
    }
    for i in 0..refused {
        batch.extend_from_slice(&c.order(10_000 + i, 100, 1_000, 1, 0));
    }
    let writer = write_in_background(&c.s, batch);
    let answers = read_answers(&mut c, good + refused);
    let written = writer.join().unwrap();
    let mut acked = 0;
    let mut risk = 0;
    for f in &answers {
        match wire::decode_gateway(f).unwrap() {
            GatewayFrame::OrderAccepted(_) => acked += 1,
            GatewayFrame::OrderRejected(r) if r.reason() == RR::RISK_MAX_QTY.wire() => risk += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(
        (acked, risk),
        (good, refused),
        "every accepted order acknowledged, every refusal sent (write: {written:?})"
    );
    drop(c);
    let report = finish(gw);
    let r = &report.reactors[0];
    assert_eq!(r.counters.slow_consumers, 0);
    assert_eq!(r.counters.events_undeliverable, 0);
}

fn accepted_id(f: &[u8]) -> u64 {
    accepted(f).0
}

#[test]
fn a_client_that_never_reads_is_cut_its_orders_canceled_and_others_trade_on() {
    let gw = start();
    let addr = gw.local_addr();
    // The victim-to-be: rests five sells, asks for cancel-on-disconnect,
    // then floods requests and never reads an answer.
    let mut a = Conn::connect(addr, TRADER);
    a.logon(1);
    for i in 0..5 {
        a.send_order(1 + i, 200, 1, 2, 0);
    }
    // Cancels of unknown orders: each answered by the engine (64 bytes).
    // 120,000 of them is ~7.7 MB of answers, more than the loopback
    // socket buffers of both ends take.
    let mut flood = Vec::with_capacity(120_000 * wire::CANCEL_ORDER_SIZE);
    for i in 0..120_000u64 {
        flood.extend_from_slice(
            &a.c.seal(
                wire::CancelOrder {
                    seq: 0,
                    cl_ord_id: 100 + i,
                    orig_cl_ord_id: 1_000_000 + i,
                    instrument_id: 1,
                }
                .to_bytes(),
            ),
        );
    }
    let writer = write_in_background(&a.s, flood);

    // Meanwhile another client trades normally.
    let mut b = Conn::connect(addr, TRADER);
    b.logon(0);
    b.send_order(1, 150, 1, 1, 0);
    assert_eq!(accepted_id(&b.recv().expect("B's answer")), 1);

    // The flooder is cut once its transmit buffer has made no progress for
    // TX_STALL_TIMEOUT_NS (and its Terminate none for as long again): a
    // write then fails. B keeps its session alive meanwhile. Bounded: 10 s.
    let mut cut = false;
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(50));
        let hb = b.c.seal(wire::Heartbeat { seq: 0 }.to_bytes());
        b.send(&hb);
        if writer.is_finished() {
            let probe = a.c.seal(wire::Heartbeat { seq: 0 }.to_bytes());
            if a.s.write_all(&probe).is_err() {
                cut = true;
                break;
            }
        }
    }
    let written = writer.join().unwrap();
    assert!(
        cut || written.is_err(),
        "the gateway cut the client that never reads"
    );

    // Its sells were canceled on disconnect: B's buy at 200 rests unfilled.
    b.send_order(2, 200, 5, 1, 0);
    assert_eq!(accepted_id(&b.recv().expect("B's answer")), 2);
    // Nothing filled it: the next answer B gets is its next order's.
    b.send_order(3, 1, 1, 1, 0);
    assert_eq!(accepted_id(&b.recv().expect("B's answer")), 3);
    drop(a);
    drop(b);
    let report = finish(gw);
    let r = &report.reactors[0];
    assert_eq!(r.counters.slow_consumers, 1, "{:?}", r.counters);
    assert_eq!(r.counters.terminate(TR::SLOW_CONSUMER), 1);
}

// ------------------------------------------------------------- sans-I/O
//
// The same rules on the session alone, with exact byte counts.

mod sans_io {
    use super::common::{self, Pair};
    use ordergate::constants::{TX_BUFFER_SIZE, TX_OUTSTANDING_MAX, TX_STALL_TIMEOUT_NS};
    use ordergate::engine::{Event, EventKind};
    use ordergate::session::CloseReason;
    use ordergate::wire;
    use ordergate::wire::codes::{RejectReason as RR, TerminateReason as TR};

    const ORDER: usize = wire::NEW_ORDER_SIZE;
    const REFUSAL: usize = wire::ORDER_REJECTED_SIZE;
    /// What a session needs free before it reads a frame with nothing at
    /// the engine: the largest answer (LogonAck, 72) and a Terminate (44).
    const ROOM: usize = 72 + 44;

    fn orders(p: &mut Pair<'_>, n: u64) -> Vec<u8> {
        let mut batch = Vec::with_capacity(n as usize * ORDER);
        for i in 0..n {
            batch.extend_from_slice(&p.new_order(1 + i, 100, 1, 1, 0));
        }
        batch
    }

    #[test]
    fn handle_bytes_stops_where_the_refusals_would_not_fit_and_resumes() {
        let shared = common::shared();
        let mut p = Pair::new(&shared, common::KEY_CANCEL_ONLY, 16);
        p.logon(0);
        let batch = orders(&mut p, 1_500);
        // Refused at once, 64 bytes each, into an empty 64 KiB buffer: a
        // frame is read while 116 bytes are free, so 1,023 are.
        let read = (TX_BUFFER_SIZE - ROOM) / REFUSAL + 1;
        assert_eq!(read, 1_023);
        let taken = p.send(&batch);
        assert_eq!(taken, read * ORDER, "stops exactly before frame 1,024");
        assert_eq!(p.session.tx().len(), read * REFUSAL);
        assert_eq!(p.session.tx().free(), 64);
        assert!(!p.session.wants_input());
        assert!(p.session.is_logged_on(), "paused, not cut");
        assert_eq!(p.counters.input_paused, 1);
        assert_eq!(p.counters.slow_consumers, 0);
        // Offered again without room: takes nothing.
        assert_eq!(p.send(&batch[taken..]), 0);
        assert_eq!(p.counters.input_paused, 2);

        // The client reads: room again, the rest is taken whole.
        let frames = p.frames();
        assert_eq!(frames.len(), read);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(
                common::rejected(f),
                (1 + i as u64, RR::NOT_PERMITTED.wire(), 0)
            );
        }
        assert!(p.session.wants_input());
        assert_eq!(p.send(&batch[taken..]), batch.len() - taken);
        let frames = p.frames();
        assert_eq!(frames.len(), 1_500 - read);
        assert_eq!(common::rejected(&frames[0]).0, read as u64 + 1);
        assert_eq!(p.counters.order_reject(RR::NOT_PERMITTED), 1_500);
    }

    #[test]
    fn a_partial_frame_at_the_boundary_is_kept_by_the_caller_not_the_session() {
        let shared = common::shared();
        let mut p = Pair::new(&shared, common::KEY_CANCEL_ONLY, 16);
        p.logon(0);
        let batch = orders(&mut p, 1_100);
        // 1,023 whole frames and 10 bytes of the next: the 10 bytes are not
        // taken (the room check comes first), so nothing is half-read.
        let cut = 1_023 * ORDER + 10;
        assert_eq!(p.send(&batch[..cut]), 1_023 * ORDER);
        p.frames();
        // The next call starts at the unread bytes and splits anywhere.
        let rest = &batch[1_023 * ORDER..];
        assert_eq!(p.send(&rest[..10]), 10);
        assert_eq!(p.send(&rest[10..]), rest.len() - 10);
        let frames = p.frames();
        assert_eq!(frames.len(), 1_100 - 1_023);
        assert_eq!(common::rejected(&frames[0]).0, 1_024);
    }

    #[test]
    fn commands_at_the_engine_hold_room_for_their_first_answers() {
        let shared = common::shared();
        let mut p = Pair::new(&shared, common::KEY_TRADER, 4_096);
        p.logon(0);
        let batch = orders(&mut p, 1_500);
        // Nothing is queued yet, but each order at the engine owes an
        // answer of up to 72 bytes: 909 fit beside a Terminate.
        let taken = p.send(&batch);
        assert_eq!(TX_OUTSTANDING_MAX, 909);
        assert_eq!(taken, TX_OUTSTANDING_MAX * ORDER);
        assert_eq!(p.commands.len(), TX_OUTSTANDING_MAX);
        assert_eq!(p.session.outstanding(), TX_OUTSTANDING_MAX as u32);
        assert!(p.session.tx().is_empty());
        assert!(!p.session.wants_input());
        // The engine answers every one (a client that does not read yet):
        // each fits in the room held for it.
        let id = p.session.id();
        let commands: Vec<_> = p.commands.drain(..).collect();
        for c in commands {
            let mut e = Event::empty(EventKind::Accepted, id);
            e.cl_ord_id = c.cl_ord_id;
            p.event(&e);
        }
        assert!(p.session.is_logged_on());
        assert_eq!(p.session.outstanding(), 0);
        assert_eq!(
            p.session.tx().len(),
            TX_OUTSTANDING_MAX * wire::ORDER_ACCEPTED_SIZE
        );
        // Room for (free − 44) / 72 more orders before it pauses again.
        let free = p.session.tx().free();
        let more = (free - wire::TERMINATE_SIZE) / 72;
        assert_eq!(p.send(&batch[taken..]), more * ORDER);
        assert_eq!(p.commands.len(), more, "all handed to the engine");
        assert_eq!(p.counters.input_paused, 2);
        assert_eq!(p.counters.slow_consumers, 0);
    }

    #[test]
    fn only_a_transmit_buffer_that_makes_no_progress_is_a_slow_consumer() {
        let shared = common::shared();
        let mut p = Pair::new(&shared, common::KEY_CANCEL_ONLY, 16);
        let f = p.logon_frame(10_000, 1, 0);
        p.send(&f);
        p.frames();
        let batch = orders(&mut p, 1_100);
        let taken = p.send(&batch);
        assert!(taken < batch.len(), "paused");
        // The client reads a little in every window: never cut, and its
        // held input does not count as silence (heartbeat timeout).
        for _ in 0..25 {
            p.now += TX_STALL_TIMEOUT_NS / 2;
            let tx = p.session.tx_mut();
            tx.begin_send();
            tx.complete_send(REFUSAL);
            p.tick();
            assert!(p.session.is_logged_on());
        }
        assert_eq!(p.counters.slow_consumers, 0);
        // Then it stops reading: within two windows it is a slow consumer.
        for _ in 0..4 {
            p.now += TX_STALL_TIMEOUT_NS / 2;
            p.tick();
        }
        assert_eq!(p.session.close_reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(p.counters.slow_consumers, 1);
        assert_eq!(p.counters.terminate(TR::SLOW_CONSUMER), 1);
        assert!(!p.session.wants_close(), "the Terminate gets its window");
        // Still nothing read: the rest is abandoned and the socket closed.
        for _ in 0..4 {
            p.now += TX_STALL_TIMEOUT_NS / 2;
            p.tick();
        }
        assert!(p.session.wants_close());
        assert_eq!(p.counters.tx_abandoned, 1);
        // Input of an ended session is taken and discarded.
        assert_eq!(p.send(&batch[taken..]), batch.len() - taken);
    }

    #[test]
    fn the_terminate_of_a_session_that_reads_always_fits() {
        // A buffer too full to read another frame still holds the
        // Terminate the gateway sends (here SHUTDOWN).
        let shared = common::shared();
        let mut p = Pair::new(&shared, common::KEY_CANCEL_ONLY, 16);
        p.logon(0);
        let batch = orders(&mut p, 1_023);
        assert_eq!(p.send(&batch), batch.len());
        assert!(!p.session.wants_input());
        p.terminate(TR::SHUTDOWN);
        let frames = p.frames();
        assert_eq!(frames.len(), 1_024);
        assert_eq!(
            common::terminate_reason(frames.last().unwrap()),
            TR::SHUTDOWN.wire()
        );
        assert_eq!(p.counters.terminate(TR::SHUTDOWN), 1);
    }
}
