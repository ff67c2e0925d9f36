//! "Hold under attack (2 of 2)", items 1 and 2, over real loopback TCP:
//! the kill switch after session churn, and max notional dodged by the
//! price.

mod common;

use common::net::*;
use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::secret::Secret;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::wire::codes::{
    CancelReason as CR, Environment, LogonRejectReason as LR, RejectReason as RR, Scopes,
    TerminateReason as TR,
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
    KeyEntry::new(
        id,
        Secret::from_bytes(SECRET),
        Scopes::TRADE.union(Scopes::CANCEL),
        Environment::Production,
    )
    .with_rate(1_000_000, 100_000)
    .allow_any()
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
