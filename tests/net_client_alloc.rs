//! The client's per-message path allocates nothing: after logon and a
//! warm-up, thousands of orders, replaces, cancels, heartbeats and polls
//! through `net_client::Connection` against the real gateway leave this
//! thread's allocation count where it was. (The gateway's own threads are
//! proven by `zero_alloc.rs`; a thread-local count sees only this one.)

mod common;

use std::time::Duration;

use ordergate::auth::keys::KeyTable;
use ordergate::engine::book::EngineConfig;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::net_client::{ConnectOptions, Connection, Order, Reply};
use ordergate::wire::codes::Side;
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

const SECRET: [u8; 32] = [0x61; 32];
const WAIT: Duration = Duration::from_secs(5);

fn next(c: &mut Connection) -> Reply {
    loop {
        match c.recv(WAIT).expect("recv").expect("a reply in time") {
            Reply::Heartbeat => continue,
            r => return r,
        }
    }
}

/// New → Accepted, Replace → Replaced, Cancel → Canceled, a heartbeat and
/// a poll, with ids from `base`.
fn cycle(c: &mut Connection, base: u64) {
    c.send_new_order(&Order::limit(base, 1, Side::Buy, 100, 5))
        .unwrap();
    assert!(matches!(next(c), Reply::Accepted { .. }));
    c.send_replace(base + 1, base, 1, 99, 4).unwrap();
    assert!(matches!(next(c), Reply::Replaced { .. }));
    c.send_cancel(base + 2, base + 1, 1).unwrap();
    assert!(matches!(next(c), Reply::Canceled { .. }));
    c.send_heartbeat().unwrap();
    assert_eq!(c.recv(Duration::ZERO).unwrap(), None);
}

#[test]
fn orders_replies_and_polls_allocate_nothing_on_the_client() {
    let keys = KeyTable::from_entries(vec![common::unthrottled_key(1, SECRET)]).unwrap();
    let mut spec = GatewaySpec::default();
    spec.session.session_msgs_per_sec = 10_000_000;
    spec.session.session_burst = 1_000_000;
    spec.engine_config = EngineConfig {
        orders_max: 1024,
        ..EngineConfig::default()
    };
    let gw = Gateway::start(spec, keys).expect("the gateway starts");
    let mut c =
        Connection::connect(gw.local_addr(), 1, SECRET, &ConnectOptions::default()).expect("logon");
    for i in 0..100 {
        cycle(&mut c, 3 * i + 1);
    }

    let before = allocations();
    for i in 100..2_100 {
        cycle(&mut c, 3 * i + 1);
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "2000 order/replace/cancel cycles allocated on the client"
    );
    gw.shutdown();
}
