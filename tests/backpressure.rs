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
use ordergate::wire::codes::RejectReason as RR;
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
    use ordergate::auth::keys::{KeyEntry, KeyTable};
    use ordergate::auth::secret::Secret;
    use ordergate::wire::codes::{Environment, Scopes};
    let mut capped = KeyEntry::new(
        CAPPED,
        Secret::from_bytes(SECRET),
        Scopes::TRADE.union(Scopes::CANCEL),
        Environment::Production,
    )
    .with_rate(1_000_000, 100_000)
    .allow_any();
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
}
