//! "Hold under attack (2 of 2)", items 1 and 2, over real loopback TCP:
//! the kill switch after session churn, and max notional dodged by the
//! price.

mod common;

use common::net::*;
use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::wire::codes::{
    CancelReason as CR, LogonRejectReason as LR, RejectReason as RR, TerminateReason as TR,
};
use ordergate::wire::{self, GatewayFrame};

/// The key that is killed.
const VICTIM: u64 = 11;
/// Logs on and off, over and over.
const CHURNER: u64 = 12;
/// Takes liquidity with IOC orders.
const TAKER: u64 = 13;
/// Rests the bid the attacker sells into.
const MAKER: u64 = 14;
/// Limited to a notional of 1,000 per order.
const LIMITED: u64 = 15;

const BUY: u8 = 1;
const SELL: u8 = 2;
const DAY: u8 = 0;
const IOC: u8 = 3;

fn entry(id: u64) -> KeyEntry {
    common::unthrottled_key(id, SECRET)
}

fn attack_keys() -> KeyTable {
    let mut limited = entry(LIMITED);
    limited.max_order_notional = std::num::NonZeroU64::new(1_000);
    KeyTable::from_entries(vec![
        entry(VICTIM),
        entry(CHURNER),
        entry(TAKER),
        entry(MAKER),
        limited,
    ])
    .unwrap()
}

/// The harness spec with a short logon skew window, so that thousands of
/// logons in a few seconds do not fill the nonce replay cache (it remembers
/// each nonce for twice the window).
fn churn_spec() -> GatewaySpec {
    let mut spec = spec();
    spec.session.logon_skew_ns = 50_000_000;
    // The churn is one key logging on 4,200 times as fast as it can: let
    // the logon rates allow it (their defence is not what is tested here).
    spec.session.logon_rate_per_key = 1_000;
    spec.session.logon_burst_per_key = 100_000;
    spec.session.logon_rate_per_address = 1_000;
    spec.session.logon_burst_per_address = 100_000;
    spec
}

fn logout(c: &mut Conn) {
    let f = c.c.seal(wire::Logout { seq: 0, reason: 0 }.to_bytes());
    c.send(&f);
    assert_eq!(terminate(&c.recv().unwrap()), TR::LOGOUT.wire());
    c.expect_closed();
}

/// Item 1. The victim rests a bid without cancel-on-disconnect and logs
/// off; another key logs on and off 4,200 times (more than the old
/// per-reactor registry of ended sessions held); then the victim is killed.
/// A third key's IOC crossing the bid must find nothing.
#[test]
fn kill_after_4200_logons_of_another_key_still_cancels_the_orders_left_behind() {
    let gw = Gateway::start(churn_spec(), attack_keys()).unwrap();
    let addr = gw.local_addr();
    let mut victim = Conn::connect(addr, VICTIM);
    victim.logon(0);
    victim.send_order(1, 100, 5, BUY, DAY);
    assert_eq!(accepted(&victim.recv().unwrap()).0, 1);
    logout(&mut victim);

    let mut refused = 0;
    let mut churned = 0;
    while churned < 4_200 {
        let mut c = Conn::connect(addr, CHURNER);
        let f = c.logon_frame(0, 1, 1000);
        c.send(&f);
        let reply = c.recv().expect("a reply to Logon");
        if template(&reply) == wire::LogonAck::TEMPLATE_ID {
            logout(&mut c);
            churned += 1;
            continue;
        }
        // The nonce cache is full for a moment: wait for nonces to age out.
        assert_eq!(logon_reject(&reply), LR::THROTTLED.wire());
        refused += 1;
        assert!(refused < 1_000, "the churn makes no progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let report = gw.control().kill(VICTIM).expect("not yet revoked");
    assert_eq!(
        report.orders_canceled,
        Some(1),
        "the kill's answer counts the order"
    );

    let mut taker = Conn::connect(addr, TAKER);
    taker.logon(0);
    taker.send_order(9, 100, 5, SELL, IOC);
    let first = taker.recv().unwrap();
    assert_eq!(accepted(&first).0, 9);
    let second = taker.recv().unwrap();
    assert!(
        !matches!(wire::decode_gateway(&second), Ok(GatewayFrame::Fill(_))),
        "the killed key's bid traded after the kill: {:?}",
        fill(&second)
    );
    assert_eq!(canceled(&second), (9, 5, CR::IMMEDIATE_OR_CANCEL.wire()));
    let report = gw.shutdown();
    let r = &report.reactors[0].counters;
    assert_eq!((r.key_sweeps, r.key_sweep_canceled), (1, 1));
    assert_eq!(
        (report.engine.key_sweeps, report.engine.key_sweep_canceled),
        (1, 1)
    );
}

/// Item 2. A key limited to a notional of 1,000 sells 1,000 @ 0 IOC into a
/// bid of 1,000 @ 100: refused PRICE_OUT_OF_BAND, and nothing trades (the
/// whole bid is still there for the next seller). A sell inside the band
/// and within the limit still fills.
#[test]
fn a_sell_at_price_0_is_refused_price_out_of_band_and_nothing_fills() {
    let gw = Gateway::start(spec(), attack_keys()).unwrap();
    let addr = gw.local_addr();
    let mut maker = Conn::connect(addr, MAKER);
    maker.logon(0);
    maker.send_order(1, 100, 1_000, BUY, DAY);
    assert_eq!(accepted(&maker.recv().unwrap()).0, 1);

    let mut attacker = Conn::connect(addr, LIMITED);
    attacker.logon(0);
    attacker.send_order(7, 0, 1_000, SELL, IOC);
    let reply = attacker.recv().unwrap();
    assert!(
        !matches!(
            wire::decode_gateway(&reply),
            Ok(GatewayFrame::OrderAccepted(_))
        ),
        "the sell at 0 was accepted"
    );
    assert_eq!(rejected(&reply), (7, RR::PRICE_OUT_OF_BAND.wire(), 0));
    assert_eq!(RR::PRICE_OUT_OF_BAND.wire(), 11);

    // Inside the band and within the limit: 10 @ 100 is a notional of 1,000.
    attacker.send_order(8, 100, 10, SELL, IOC);
    assert_eq!(accepted(&attacker.recv().unwrap()).0, 8);
    assert_eq!(fill(&attacker.recv().unwrap()), (8, 100, 10, 0));
    // The maker's first fill is that one: the sell at 0 took nothing.
    assert_eq!(fill(&maker.recv().unwrap()), (1, 100, 10, 990));
    let report = gw.shutdown();
    assert_eq!(report.engine.price_rejects, 1);
    assert_eq!(
        report.reactors[0]
            .counters
            .order_reject(RR::PRICE_OUT_OF_BAND),
        1
    );
}

/// Item 2, the notional of a marketable order at the price it fills at: no
/// trade yet and no configured reference (so no collar), the key limited to
/// 1,000 sells 1,000 @ 1 IOC (1 × 1,000 passes the gateway's |price| × qty)
/// into a bid of 100: it would fill 100,000 of notional. Refused
/// RISK_MAX_NOTIONAL by the engine; nothing trades.
#[test]
fn a_marketable_sell_is_counted_at_the_bid_it_would_fill_at() {
    let gw = Gateway::start(spec(), attack_keys()).unwrap();
    let addr = gw.local_addr();
    let mut maker = Conn::connect(addr, MAKER);
    maker.logon(0);
    maker.send_order(1, 100, 1_000, BUY, DAY);
    assert_eq!(accepted(&maker.recv().unwrap()).0, 1);

    let mut attacker = Conn::connect(addr, LIMITED);
    attacker.logon(0);
    attacker.send_order(7, 1, 1_000, SELL, IOC);
    let reply = attacker.recv().unwrap();
    assert!(
        !matches!(
            wire::decode_gateway(&reply),
            Ok(GatewayFrame::OrderAccepted(_))
        ),
        "the sell at 1 was accepted"
    );
    assert_eq!(rejected(&reply), (7, RR::RISK_MAX_NOTIONAL.wire(), 0));
    // The whole bid is still there.
    let mut taker = Conn::connect(addr, TAKER);
    taker.logon(0);
    taker.send_order(9, 100, 1_000, SELL, IOC);
    assert_eq!(accepted(&taker.recv().unwrap()).0, 9);
    assert_eq!(fill(&taker.recv().unwrap()), (9, 100, 1_000, 0));
    let report = gw.shutdown();
    assert_eq!(report.engine.notional_rejects, 1);
}

/// A kill reaches the key's orders on both reactors, its live sessions' and
/// an ended one's; the admin answer says how many. Each live session gets
/// its OrderCanceled KEY_REVOKED, then Terminate KEY_REVOKED.
#[test]
fn kill_counts_every_resting_order_of_the_key_across_reactors() {
    let gw = Gateway::start(
        GatewaySpec {
            reactors: 2,
            ..spec()
        },
        attack_keys(),
    )
    .unwrap();
    let addr = gw.local_addr();
    let mut sessions: Vec<Conn> = (0..4)
        .map(|i| {
            let mut c = Conn::connect(addr, VICTIM);
            c.logon(0);
            c.send_order(1, 90 + i, 2, BUY, DAY);
            assert_eq!(accepted(&c.recv().unwrap()).0, 1);
            c
        })
        .collect();
    // One ends without cancel-on-disconnect: its bid stays.
    let mut ended = sessions.pop().unwrap();
    logout(&mut ended);
    // Another key's order is not the victim's.
    let mut maker = Conn::connect(addr, MAKER);
    maker.logon(0);
    maker.send_order(1, 80, 3, BUY, DAY);
    assert_eq!(accepted(&maker.recv().unwrap()).0, 1);

    let answer = ordergate::admin::execute(&format!("kill {VICTIM}"), &gw.control(), None);
    assert!(
        answer.starts_with(&format!(
            "ok killed key {VICTIM}: 3 sessions ended with KEY_REVOKED; 4 resting orders \
             canceled"
        )),
        "{answer}"
    );
    for s in &mut sessions {
        assert_eq!(canceled(&s.recv().unwrap()), (1, 2, CR::KEY_REVOKED.wire()));
        assert_eq!(terminate(&s.recv().unwrap()), TR::KEY_REVOKED.wire());
        s.expect_closed();
    }
    // Only the maker's bid is left: an IOC sell at 80 for 20 takes 3.
    let mut taker = Conn::connect(addr, TAKER);
    taker.logon(0);
    taker.send_order(9, 80, 20, SELL, IOC);
    assert_eq!(accepted(&taker.recv().unwrap()).0, 9);
    assert_eq!(fill(&taker.recv().unwrap()), (9, 80, 3, 17));
    assert_eq!(
        canceled(&taker.recv().unwrap()),
        (9, 17, CR::IMMEDIATE_OR_CANCEL.wire())
    );
    let report = gw.shutdown();
    let sweeps: u64 = report.reactors.iter().map(|r| r.counters.key_sweeps).sum();
    let swept: u64 = report
        .reactors
        .iter()
        .map(|r| r.counters.key_sweep_canceled)
        .sum();
    assert_eq!((sweeps, swept), (2, 4), "one sweep per reactor");
}

/// `max_open_notional` counts the resting orders of every session of the
/// key; an IOC never rests and is not counted; a cancel makes room.
#[test]
fn max_open_notional_counts_every_session_of_the_key() {
    let mut capped = entry(LIMITED);
    capped.max_open_notional = std::num::NonZeroU64::new(1_000);
    let keys = KeyTable::from_entries(vec![capped, entry(MAKER)]).unwrap();
    let gw = Gateway::start(spec(), keys).unwrap();
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, LIMITED);
    a.logon(0);
    let mut b = Conn::connect(addr, LIMITED);
    b.logon(0);
    a.send_order(1, 100, 5, BUY, DAY);
    assert_eq!(accepted(&a.recv().unwrap()).0, 1);
    b.send_order(1, 100, 5, BUY, DAY);
    assert_eq!(accepted(&b.recv().unwrap()).0, 1);
    a.send_order(2, 100, 1, BUY, DAY);
    assert_eq!(
        rejected(&a.recv().unwrap()),
        (2, RR::RISK_MAX_OPEN_NOTIONAL.wire(), 0)
    );
    assert_eq!(RR::RISK_MAX_OPEN_NOTIONAL.wire(), 12);
    // An IOC rests nothing.
    a.send_order(3, 200, 1, SELL, IOC);
    assert_eq!(accepted(&a.recv().unwrap()).0, 3);
    assert_eq!(
        canceled(&a.recv().unwrap()),
        (3, 1, CR::IMMEDIATE_OR_CANCEL.wire())
    );
    // A fill of a resting order makes room for exactly its notional.
    let mut maker = Conn::connect(addr, MAKER);
    maker.logon(0);
    maker.send_order(1, 100, 1, SELL, IOC);
    assert_eq!(accepted(&maker.recv().unwrap()).0, 1);
    assert_eq!(fill(&maker.recv().unwrap()), (1, 100, 1, 0));
    assert_eq!(fill(&a.recv().unwrap()), (1, 100, 1, 4));
    a.send_order(4, 100, 1, BUY, DAY);
    assert_eq!(accepted(&a.recv().unwrap()).0, 4);
    let report = gw.shutdown();
    assert_eq!(report.engine.open_notional_rejects, 1);
}

/// Orders left by a key that expires (`not_after`) or that a reload removes
/// are swept too, though no session of the key is alive.
#[test]
fn orders_of_an_expired_or_removed_key_are_swept() {
    let now = ordergate::clock::wall_ns();
    let expiring = || {
        let mut e = entry(VICTIM);
        e.not_after_ns = Some(now + 300_000_000);
        e
    };
    let keys = KeyTable::from_entries(vec![expiring(), entry(CHURNER), entry(TAKER)]).unwrap();
    let gw = Gateway::start(spec(), keys).unwrap();
    let addr = gw.local_addr();
    for (key, price) in [(VICTIM, 100), (CHURNER, 99)] {
        let mut c = Conn::connect(addr, key);
        c.logon(0);
        c.send_order(1, price, 5, BUY, DAY);
        assert_eq!(accepted(&c.recv().unwrap()).0, 1);
        logout(&mut c);
    }
    // The churner's key is removed by a reload (the victim's stays).
    let report = gw
        .control()
        .reload(KeyTable::from_entries(vec![expiring(), entry(TAKER)]).unwrap());
    assert!(report.applied_in.is_some());
    // Well past the victim's not_after (a timer tick notices it).
    let until = now + 900_000_000;
    while ordergate::clock::wall_ns() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut taker = Conn::connect(addr, TAKER);
    taker.logon(0);
    taker.send_order(9, 99, 10, SELL, IOC);
    assert_eq!(accepted(&taker.recv().unwrap()).0, 9);
    let next = taker.recv().unwrap();
    assert!(
        !matches!(wire::decode_gateway(&next), Ok(GatewayFrame::Fill(_))),
        "an order of an expired or removed key traded: {:?}",
        fill(&next)
    );
    assert_eq!(canceled(&next), (9, 10, CR::IMMEDIATE_OR_CANCEL.wire()));
    let report = gw.shutdown();
    let r = &report.reactors[0].counters;
    assert_eq!((r.key_sweeps, r.key_sweep_canceled), (2, 2));
}
