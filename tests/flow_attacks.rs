//! Review attacks 5 and 7 ("Hold under attack"): a heartbeat flood, and
//! cancels starved of command-ring space by new orders. Each attack over
//! real loopback TCP, and again on the sans-I/O session with exact numbers.

mod common;

use std::io::{ErrorKind, Read, Write};

use common::net::{self, Conn, TRADER};
use common::{KEY_SLOW, KEY_TRADER, MS, Pair, rejected, template, terminate_reason};
use ordergate::engine::CommandKind;
use ordergate::gateway::Gateway;
use ordergate::session::{CloseReason, GatewayConfig};
use ordergate::wire::codes::{RejectReason as RR, TerminateReason as TR};
use ordergate::wire::{self, GatewayFrame};

/// The next frame other than a gateway Heartbeat, checked by the client; None
/// at EOF, on a reset, or when nothing comes within the read timeout (so an
/// attack that is *not* stopped fails an assertion instead of a read).
fn next_reply(c: &mut Conn) -> Option<Vec<u8>> {
    loop {
        if let Some(f) = c.r.next_frame() {
            let f = f.expect("well-formed").to_vec();
            c.c.receive(&f)
                .expect("the client accepts the gateway's frame");
            if template(&f) == wire::Heartbeat::TEMPLATE_ID {
                continue;
            }
            return Some(f);
        }
        match c.s.read(c.r.spare()) {
            Ok(0) => return None,
            Ok(n) => c.r.filled(n),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::WouldBlock | ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

// ------------------------------------------------- attack 5, heartbeats

const FLOOD: usize = 200_000;

#[test]
fn a_heartbeat_flood_over_tcp_ends_in_throttle_breach_and_spares_its_neighbour() {
    let gw = net::start();
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    // A 60 s keepalive: the allowance refills one heartbeat per 15 s, so
    // none during the flood and the counts below are exact.
    let f = a.logon_frame(0, 1, 60_000);
    a.send(&f);
    assert_eq!(
        template(&next_reply(&mut a).unwrap()),
        wire::LogonAck::TEMPLATE_ID
    );
    // A neighbour on the same key that trades and heartbeats normally. Its
    // keepalive is long too: on a loaded machine the flood can take longer
    // than two 1 s keepalives, and the neighbour's own heartbeat timeout is
    // not what this test is about.
    let mut b = Conn::connect(addr, TRADER);
    let f = b.logon_frame(0, 1, 60_000);
    b.send(&f);
    assert_eq!(
        template(&next_reply(&mut b).unwrap()),
        wire::LogonAck::TEMPLATE_ID
    );

    let mut flood = Vec::with_capacity(FLOOD * wire::HEARTBEAT_SIZE);
    for _ in 0..FLOOD {
        flood.extend_from_slice(&a.c.seal(wire::Heartbeat { seq: 0 }.to_bytes()));
    }
    let mut w = a.s.try_clone().unwrap();
    // The gateway closes the connection mid-flood: the write then fails.
    let writer = std::thread::spawn(move || w.write_all(&flood).is_ok());

    let reply = next_reply(&mut a);
    assert!(
        reply.is_some(),
        "{FLOOD} authentic heartbeats were all taken: no Terminate"
    );
    let reply = reply.unwrap();
    assert_eq!(
        terminate_reason(&reply),
        TR::THROTTLE_BREACH.wire(),
        "the flood ends in Terminate THROTTLE_BREACH"
    );
    assert!(next_reply(&mut a).is_none(), "then the connection closes");
    assert!(!writer.join().unwrap(), "the flood was cut off");

    // The neighbour is untouched: its heartbeat and its order go through.
    let hb = b.c.seal(wire::Heartbeat { seq: 0 }.to_bytes());
    b.send(&hb);
    b.send_order(1, 100, 1, 1, 0);
    assert_eq!(net::accepted(&b.recv().unwrap()).0, 1);

    let report = net::finish(gw);
    let c = &report.reactors[0].counters;
    assert_eq!(c.terminate(TR::THROTTLE_BREACH), 1);
    assert_eq!(
        c.heartbeats_throttled, 100,
        "the default throttle_breach_run"
    );
    assert_eq!(
        c.order_reject(RR::THROTTLED),
        0,
        "no OrderRejected for a heartbeat"
    );
    assert!(
        c.bytes_discarded > 0,
        "the rest of the flood was never checked"
    );
}

#[test]
fn heartbeats_have_a_small_allowance_and_a_flood_ends_in_throttle_breach() {
    let config = GatewayConfig {
        throttle_breach_run: 100,
        ..GatewayConfig::default()
    };
    let shared = common::shared_with(config);
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    let f = p.logon_frame(1000, 1, 0);
    p.send(&f);
    assert_eq!(template(&p.frames()[0]), wire::LogonAck::TEMPLATE_ID);
    let mut sent = 0;
    while p.session.is_logged_on() && sent < FLOOD {
        let hb = p.client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
        p.send(&hb);
        sent += 1;
    }
    // Keepalive 1 s: a burst of 8, then 100 throttled in a row.
    assert_eq!(sent, 8 + 100, "heartbeats taken before the session ended");
    let frames = p.frames();
    assert_eq!(frames.len(), 1, "no reply to a throttled heartbeat");
    assert_eq!(terminate_reason(&frames[0]), TR::THROTTLE_BREACH.wire());
    assert_eq!(
        p.session.close_reason(),
        Some(CloseReason::Terminated(TR::THROTTLE_BREACH))
    );
    assert_eq!(p.counters.messages_in, 108);
    assert_eq!(p.counters.heartbeats_throttled, 100);
    assert_eq!(p.counters.terminate(TR::THROTTLE_BREACH), 1);
    assert_eq!(p.counters.order_reject(RR::THROTTLED), 0);
    assert!(p.commands.is_empty());
}

#[test]
fn heartbeats_at_the_keepalive_pace_are_never_throttled_and_cost_no_order_tokens() {
    let shared = common::shared();
    // KEY_SLOW: 10 msgs/s, burst 4: orders get 3 tokens.
    let mut p = Pair::new(&shared, KEY_SLOW, 16);
    p.logon(0);
    // Four times the keepalive's need, for an hour of virtual time.
    for _ in 0..(4 * 3600) {
        p.now += 250 * MS;
        let hb = p.client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
        p.send(&hb);
        p.tick();
        p.frames(); // the gateway's own heartbeats
    }
    assert!(p.session.is_logged_on());
    assert_eq!(p.counters.heartbeats_throttled, 0);
    // The order tokens are all still there.
    for id in 1..=3 {
        let o = p.new_order(id, 100, 1, 1, 0);
        p.send(&o);
    }
    assert_eq!(p.commands.len(), 3);
    assert!(p.frames().is_empty());
}

#[test]
fn an_admitted_heartbeat_ends_a_throttled_run() {
    let config = GatewayConfig {
        throttle_breach_run: 3,
        ..GatewayConfig::default()
    };
    let shared = common::shared_with(config);
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    let f = p.logon_frame(1000, 1, 0);
    p.send(&f);
    p.frames();
    let heartbeat = |p: &mut Pair<'_>| {
        let hb = p.client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
        p.send(&hb);
    };
    for _ in 0..8 + 2 {
        heartbeat(&mut p);
    }
    assert!(p.session.is_logged_on(), "two throttled: the run is 2");
    p.now += 250 * MS; // one heartbeat's worth refilled
    heartbeat(&mut p);
    heartbeat(&mut p);
    heartbeat(&mut p);
    assert!(
        p.session.is_logged_on(),
        "the run restarted at the admitted one"
    );
    heartbeat(&mut p);
    let frames = p.frames();
    let last = frames
        .first()
        .expect("Terminate after three throttled in a row");
    assert_eq!(terminate_reason(last), TR::THROTTLE_BREACH.wire());
}

// --------------------------------------------- attack 7, ring reserve

const ORDERS: u64 = 400;
const CANCEL_BASE: u64 = 10_000;

#[test]
fn cancels_keep_a_reserve_of_the_command_ring_sans_io() {
    let shared = common::shared();
    // A ring of 64 the engine does not drain: reserve 64 / 8 = 8.
    let mut p = Pair::new(&shared, KEY_TRADER, 64);
    p.logon(0);
    for id in 1..=ORDERS {
        let o = p.new_order(id, 100, 1, 1, 0);
        p.send(&o);
    }
    for id in 1..=ORDERS {
        let c = p.cancel(CANCEL_BASE + id, id);
        p.send(&c);
    }
    let forwarded = |kind| p.commands.iter().filter(|c| c.kind == kind).count();
    let (orders, cancels) = (
        forwarded(CommandKind::NewOrder),
        forwarded(CommandKind::Cancel),
    );
    let frames = p.frames();
    let busy: Vec<u64> = frames
        .iter()
        .map(|f| rejected(f))
        .inspect(|r| assert_eq!(r.1, RR::ENGINE_BUSY.wire()))
        .map(|r| r.0)
        .collect();
    assert_eq!(
        (orders, cancels),
        (56, 8),
        "new orders stop 8 slots short of a full ring; cancels take those 8"
    );
    assert_eq!(busy.len(), 800 - 64, "every refused request answered");
    assert!(busy[..344].iter().all(|&id| id <= ORDERS));
    assert!(busy[344..].iter().all(|&id| id > CANCEL_BASE + 8));
    assert_eq!(p.counters.order_reject(RR::ENGINE_BUSY), 736);
    assert_eq!(
        p.counters.ring_reserve_refusals, 344,
        "new orders kept out of the reserve"
    );
    assert_eq!(
        p.counters.ring_full, 392,
        "cancels beyond the reserve: a full ring"
    );
    assert_eq!(p.counters.commands_out, 64);
}

#[test]
fn the_reserve_takes_mass_cancels_and_cancel_on_disconnect_but_not_replaces() {
    let shared = common::shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16); // reserve 4
    p.logon(1);
    for id in 1..=12 {
        let o = p.new_order(id, 100, 1, 1, 0);
        p.send(&o);
    }
    let o = p.new_order(13, 100, 1, 1, 0);
    p.send(&o);
    let r = p.client.seal(
        wire::ReplaceOrder {
            seq: 0,
            cl_ord_id: 14,
            orig_cl_ord_id: 1,
            price: 101,
            qty: 1,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    p.send(&r);
    let frames = p.frames();
    assert_eq!(
        (p.commands.len(), frames.len()),
        (12, 2),
        "the order and the replace are refused: only the reserve is free"
    );
    assert_eq!(rejected(&frames[0]), (13, RR::ENGINE_BUSY.wire(), 0));
    assert_eq!(rejected(&frames[1]), (14, RR::ENGINE_BUSY.wire(), 0));
    assert_eq!(
        (p.counters.ring_reserve_refusals, p.counters.ring_full),
        (2, 0)
    );
    let m = p.client.seal(
        wire::MassCancel {
            seq: 0,
            cl_ord_id: 15,
            instrument_id: 0,
            side: 0,
        }
        .to_bytes(),
    );
    p.send(&m);
    let c = p.cancel(16, 2);
    p.send(&c);
    let c = p.cancel(17, 3);
    p.send(&c);
    assert_eq!(p.commands.len(), 15);
    assert!(p.frames().is_empty());
    // The last reserved slot is the gateway's own cancel-on-disconnect.
    p.transport_closed();
    assert_eq!(p.commands.len(), 16);
    assert_eq!(p.commands[15].kind, CommandKind::CancelOnDisconnect);
    assert!(p.session.is_finished());
    assert_eq!(p.counters.ring_full, 0);
}

#[test]
fn cancels_get_through_a_command_ring_flooded_by_new_orders_over_tcp() {
    let mut spec = net::spec();
    spec.ring_capacity = 64; // reserve 8
    let gw = Gateway::start(spec, net::keys()).expect("the gateway starts");
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    a.logon(0);
    // Everything in one write, so the reactor hands most of it to the ring
    // in one turn, before the engine (on the same thread) takes any.
    let mut batch = Vec::new();
    for id in 1..=ORDERS {
        batch.extend_from_slice(&a.order(id, 10, 1, 1, 0));
    }
    for id in 1..=ORDERS {
        batch.extend_from_slice(
            &a.c.seal(
                wire::CancelOrder {
                    seq: 0,
                    cl_ord_id: CANCEL_BASE + id,
                    orig_cl_ord_id: id,
                    instrument_id: 1,
                }
                .to_bytes(),
            ),
        );
    }
    a.send(&batch);

    // Exactly one answer to each request: Accepted or Rejected for an order,
    // Canceled or Rejected for a cancel.
    let mut order_busy = 0u64;
    let mut cancel_busy = Vec::new();
    let mut canceled = Vec::new();
    let mut answered = 0;
    while answered < 2 * ORDERS {
        let f = next_reply(&mut a).expect("an answer to every request");
        match wire::decode_gateway(&f).unwrap() {
            GatewayFrame::OrderAccepted(x) => assert!(x.cl_ord_id() <= ORDERS),
            GatewayFrame::OrderRejected(r) => {
                let id = r.cl_ord_id();
                if id <= ORDERS {
                    assert_eq!(r.reason(), RR::ENGINE_BUSY.wire(), "order {id}");
                    order_busy += 1;
                } else if r.reason() == RR::ENGINE_BUSY.wire() {
                    cancel_busy.push(id);
                } else {
                    // The order it named was itself refused.
                    assert_eq!(r.reason(), RR::UNKNOWN_ORDER.wire(), "cancel {id}");
                }
            }
            GatewayFrame::OrderCanceled(c) => canceled.push(c.cl_ord_id()),
            other => panic!("unexpected {other:?}"),
        }
        answered += 1;
    }
    // Whatever the timing, new orders can never leave fewer than 8 slots
    // free, so the first 8 cancels always find room.
    let first_refused = cancel_busy.iter().min().copied();
    assert!(
        first_refused.is_none_or(|id| id > CANCEL_BASE + 8),
        "a cancel was refused ENGINE_BUSY within the reserve: the first was {first_refused:?} \
         ({} cancels refused, {order_busy} new orders refused)",
        cancel_busy.len()
    );
    for id in 1..=8 {
        assert!(
            canceled.contains(&(CANCEL_BASE + id)),
            "cancel {id} went through"
        );
    }
    eprintln!(
        "{ORDERS} new orders then {ORDERS} cancels through a 64-slot ring: {order_busy} orders \
         and {} cancels refused ENGINE_BUSY, {} cancels went through",
        cancel_busy.len(),
        canceled.len()
    );
    let report = net::finish(gw);
    let c = &report.reactors[0].counters;
    // All new orders came before any cancel: the ring held only orders, so
    // an order could only be refused for the reserve, and a cancel only for
    // a full ring.
    assert_eq!(c.ring_reserve_refusals, order_busy);
    assert_eq!(c.ring_full, cancel_busy.len() as u64);
    assert_eq!(
        c.commands_out,
        2 * ORDERS - order_busy - cancel_busy.len() as u64
    );
    assert!(
        order_busy > 0,
        "the ring never came under pressure: the test proved nothing"
    );
}
