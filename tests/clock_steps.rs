//! Rate cells and clock steps (docs/TESTING.md case 28). A session's `now`
//! is the reactor's wall clock (one monotonic read per turn plus an offset
//! re-read every timer tick, `reactor::worker::TurnClock`), so an NTP step
//! backwards reaches the rate cells, whose state is an absolute time (the
//! GCRA's TAT). A step back of D must not throttle an honest client for D,
//! nor end it THROTTLE_BREACH; the stall it causes is bounded by
//! `RATE_CLOCK_STEP_SLACK_NS` plus one burst's refill, and no extra token
//! is granted (`limits.rs` unit tests).

mod common;

use common::{KEY_TRADER, MS, Pair, SEC, shared_with};
use ordergate::constants::RATE_CLOCK_STEP_SLACK_NS;
use ordergate::session::GatewayConfig;
use ordergate::wire;
use ordergate::wire::codes::{RejectReason, TerminateReason as TR};

#[test]
fn a_wall_clock_step_back_of_ten_seconds_stalls_an_honest_session_boundedly_and_never_cuts_it() {
    // 100 messages a second, burst 10; the client sends one every 20 ms
    // (half its rate) throughout.
    let shared = shared_with(GatewayConfig {
        session_msgs_per_sec: 100,
        session_burst: 10,
        ..GatewayConfig::default()
    });
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    let mut cl = 0u64;
    let mut send = |p: &mut Pair<'_>| {
        cl += 1;
        let f = p.new_order(cl, 100, 1, 1, 0);
        p.send(&f);
        p.commands.clear();
        let frames = p.frames();
        assert!(
            frames
                .iter()
                .all(|f| common::template(f) != wire::Terminate::TEMPLATE_ID),
            "order {cl} at {} ms ended the session: {:?}",
            (p.now as i128 - common::T0 as i128) / MS as i128,
            p.counters.terminates
        );
        p.now += 20 * MS;
    };
    for _ in 0..20 {
        send(&mut p);
    }
    assert_eq!(p.counters.order_reject(RejectReason::THROTTLED), 0);

    // The wall clock steps back 10 s; the client goes on at the same pace
    // for 4 s.
    p.now -= 10 * SEC;
    for _ in 0..200 {
        send(&mut p);
    }
    let throttled = p.counters.order_reject(RejectReason::THROTTLED);
    // The stall: at most the slack plus one burst (10 × 10 ms), at one
    // order per 20 ms.
    let bound = (RATE_CLOCK_STEP_SLACK_NS + 100 * MS) / (20 * MS) + 1;
    assert!(
        throttled <= bound,
        "a 10 s step back throttled {throttled} orders (bound {bound})"
    );
    assert_eq!(p.counters.terminate(TR::THROTTLE_BREACH), 0);
    assert_eq!(p.counters.messages_in, 220);
}
