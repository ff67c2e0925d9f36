//! The session state machine, sans-I/O: every LogonReject, Terminate and
//! OrderRejected reason the session owns, with exact codes and counters.

mod common;

use common::*;
use ordergate::engine::{CommandKind, Event, EventKind, EventReason, SessionId};
use ordergate::session::{CloseReason, GatewayConfig};
use ordergate::wire::codes::{LogonRejectReason as LR, RejectReason as RR, TerminateReason as TR};
use ordergate::wire::{self, GatewayFrame};

// ---------------------------------------------------------------- logon

#[test]
fn logon_is_acknowledged_with_the_keys_scopes_and_seq_1() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    let ack = p.logon(0);
    match wire::decode_gateway(&ack).unwrap() {
        GatewayFrame::LogonAck(a) => {
            assert_eq!(a.seq(), 1);
            assert_eq!(a.scopes(), 0b011);
            assert_eq!(a.environment(), 1);
            assert_eq!(a.keepalive_ms(), 1000);
            assert_eq!(a.server_time_ns(), T0);
            assert_eq!(a.session_id(), SessionId::new(0, 1, 1).0);
        }
        other => panic!("{other:?}"),
    }
    assert!(p.session.is_logged_on());
    assert_eq!(p.counters.logons_accepted, 1);
    assert_eq!(p.session.key_sessions(), Some(1));
}

fn logon_reply(p: &mut Pair<'_>, frame: &[u8]) -> u16 {
    p.send(frame);
    let reason = logon_reject_reason(&p.raw_frames());
    assert!(
        p.session.wants_close(),
        "a failed logon closes the connection"
    );
    reason
}

#[test]
fn unknown_key_and_bad_signature_both_get_auth_failed() {
    let shared = shared();
    let mut p = Pair::new(&shared, 999_999, 4);
    let f = p.logon_frame(1000, 1, 0);
    assert_eq!(logon_reply(&mut p, &f), LR::AUTH_FAILED.wire());

    let mut p = Pair::new(&shared, KEY_TRADER, 4);
    let mut f = p.logon_frame(1000, 1, 0);
    f[79] ^= 1;
    assert_eq!(logon_reply(&mut p, &f), LR::AUTH_FAILED.wire());

    // A correctly signed frame whose signed bytes were altered afterwards.
    let mut p = Pair::new(&shared, KEY_TRADER, 4);
    let mut f = p.logon_frame(1000, 1, 0);
    f[44] = 0xFF; // keepalive changed after signing
    assert_eq!(logon_reply(&mut p, &f), LR::AUTH_FAILED.wire());
    assert_eq!(p.counters.logon_reject(LR::AUTH_FAILED), 1);
}

#[test]
fn five_failures_lock_that_key_at_that_address_out_without_hmac_until_the_window_passes() {
    let shared = shared();
    let peer = "198.51.100.7".parse().unwrap();
    for i in 0..5 {
        let mut p = Pair::with_peer(&shared, 424242, 4, peer);
        let f = p.logon_frame(1000, 1, 0);
        assert_eq!(logon_reply(&mut p, &f), LR::AUTH_FAILED.wire());
        assert_eq!(
            p.counters.lockouts,
            u64::from(i == 4),
            "the fifth failure locks"
        );
    }
    // That key from that address is now THROTTLED, even correctly signed.
    let mut p = Pair::with_peer(&shared, 424242, 4, peer);
    let f = p.logon_frame(1000, 1, 0);
    assert_eq!(logon_reply(&mut p, &f), LR::THROTTLED.wire());
    assert_eq!(
        p.counters.lockouts, 0,
        "this session did not cause the lockout"
    );
    assert_eq!(p.counters.logons_locked_out, 1);
    // Another key at the same address is not affected, nor another address.
    let mut q = Pair::with_peer(&shared, KEY_TRADER, 4, peer);
    q.logon(0);
    let mut q = Pair::new(&shared, KEY_TRADER, 4);
    q.logon(0);
    // After the 60 s window the pair may try again.
    let mut p = Pair::at(&shared, 424242, 4, peer, T0 + 61 * SEC);
    let f = p.logon_frame(1000, 1, 0);
    assert_eq!(logon_reply(&mut p, &f), LR::AUTH_FAILED.wire());
}

#[test]
fn clock_skew_is_refused_beyond_five_seconds_either_way() {
    let shared = shared();
    for (offset, ok) in [
        (5 * SEC as i64, true),
        (5 * SEC as i64 + 1, false),
        (-(5 * SEC as i64) - 1, false),
    ] {
        let mut p = Pair::new(&shared, KEY_TRADER, 4);
        let nonce = p.next_nonce();
        let f = p
            .client
            .logon((T0 as i64 + offset) as u64, nonce, 1000, 1, 0);
        p.send(&f);
        let frames = p.raw_frames();
        if ok {
            assert_eq!(
                template(&frames[0]),
                wire::LogonAck::TEMPLATE_ID,
                "offset {offset}"
            );
        } else {
            assert_eq!(
                logon_reject_reason(&frames),
                LR::CLOCK_SKEW.wire(),
                "offset {offset}"
            );
        }
    }
}

#[test]
fn a_replayed_logon_is_refused_replayed_nonce() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 4);
    let f = p.logon_frame(1000, 1, 0);
    p.send(&f);
    assert_eq!(template(&p.frames()[0]), wire::LogonAck::TEMPLATE_ID);
    let mut q = Pair::new(&shared, KEY_TRADER, 4);
    assert_eq!(logon_reply(&mut q, &f), LR::REPLAYED_NONCE.wire());
}

#[test]
fn environment_mismatch_gateway_or_key_is_wrong_environment() {
    let shared = shared(); // production gateway
    let mut p = Pair::new(&shared, KEY_TRADER, 4);
    let f = p.logon_frame(1000, 2, 0);
    assert_eq!(logon_reply(&mut p, &f), LR::WRONG_ENVIRONMENT.wire());
    let mut p = Pair::new(&shared, KEY_SANDBOX, 4);
    let f = p.logon_frame(1000, 1, 0);
    assert_eq!(logon_reply(&mut p, &f), LR::WRONG_ENVIRONMENT.wire());
    let mut p = Pair::new(&shared, KEY_SANDBOX, 4);
    let f = p.logon_frame(1000, 2, 0);
    assert_eq!(logon_reply(&mut p, &f), LR::WRONG_ENVIRONMENT.wire());
}

#[test]
fn malformed_logons_are_refused_malformed() {
    let shared = shared();
    // Bad field values, correctly signed.
    for (keepalive, env, flags) in [
        (99u16, 1u8, 0u8),
        (60_001, 1, 0),
        (1000, 3, 0),
        (1000, 1, 2),
    ] {
        let mut p = Pair::new(&shared, KEY_TRADER, 4);
        let f = p.logon_frame(keepalive, env, flags);
        assert_eq!(
            logon_reply(&mut p, &f),
            LR::MALFORMED.wire(),
            "{keepalive} {env} {flags}"
        );
    }
    // Not a Logon first.
    let mut p = Pair::new(&shared, KEY_TRADER, 4);
    let hb = wire::Heartbeat { seq: 1 }.to_bytes();
    assert_eq!(logon_reply(&mut p, &hb), LR::MALFORMED.wire());
    // A length prefix no template has, refused from its first two bytes.
    let mut p = Pair::new(&shared, KEY_TRADER, 4);
    assert_eq!(logon_reply(&mut p, &[0x00, 0x10]), LR::MALFORMED.wire());
    // A header that disagrees with the template.
    let mut p = Pair::new(&shared, KEY_TRADER, 4);
    let mut f = p.logon_frame(1000, 1, 0);
    f[4] = 0x43;
    assert_eq!(logon_reply(&mut p, &f), LR::MALFORMED.wire());
    assert_eq!(p.counters.logon_reject(LR::MALFORMED), 1);
}

#[test]
fn no_logon_before_the_deadline_closes_without_a_reply() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 4);
    assert_eq!(p.session.poll_timeout(), Some(T0 + SEC));
    p.send(&[0x50, 0x00, 0xfe]); // a partial Logon does not extend the deadline
    p.now = T0 + SEC - 1;
    p.tick();
    assert!(!p.session.wants_close());
    p.now = T0 + SEC;
    p.tick();
    assert!(p.session.wants_close());
    assert!(p.raw_frames().is_empty());
    assert_eq!(p.session.close_reason(), Some(CloseReason::LogonTimeout));
    assert_eq!(p.counters.logon_timeouts, 1);
}

#[test]
fn a_logon_after_the_deadline_is_not_accepted_even_before_the_timer_runs() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 4);
    p.now = T0 + SEC;
    let f = p.logon_frame(1000, 1, 0);
    p.send(&f);
    assert!(!p.session.is_logged_on());
    assert!(p.raw_frames().is_empty(), "closed without a reply");
    assert_eq!(p.session.close_reason(), Some(CloseReason::LogonTimeout));
    assert_eq!(p.counters.logon_timeouts, 1);
}

// ------------------------------------------------------------- terminate

fn terminated(p: &mut Pair<'_>) -> u16 {
    let frames = p.frames();
    let last = frames.last().expect("a Terminate");
    assert!(p.session.wants_close());
    terminate_reason(last)
}

#[test]
fn a_bad_tag_terminates_bad_mac_and_reaches_nothing() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    let mut o = p.new_order(1, 100, 1, 1, 0);
    o[30] ^= 0x01;
    p.send(&o);
    assert_eq!(terminated(&mut p), TR::BAD_MAC.wire());
    assert!(
        p.commands.is_empty(),
        "nothing from the refused frame reached the engine"
    );
    assert_eq!(p.counters.messages_in, 0);
    assert_eq!(p.counters.terminate(TR::BAD_MAC), 1);
}

#[test]
fn a_frame_tagged_for_another_direction_or_session_is_bad_mac() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    // Reflect the gateway's own LogonAck... it is not a client template;
    // instead seal a client frame with the gateway key.
    let mut hb = wire::Heartbeat { seq: 1 }.to_bytes();
    p.session.gateway_key().unwrap().seal(&mut hb);
    p.send(&hb);
    assert_eq!(terminated(&mut p), TR::BAD_MAC.wire());
}

#[test]
fn a_sequence_gap_or_repeat_terminates_sequence_error() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    let first = p.new_order(1, 100, 1, 1, 0);
    p.send(&first);
    assert_eq!(p.commands.len(), 1);
    p.send(&first); // replayed within the session
    assert_eq!(terminated(&mut p), TR::SEQUENCE_ERROR.wire());
    assert_eq!(p.commands.len(), 1);

    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    let _skipped = p.new_order(1, 100, 1, 1, 0);
    let second = p.new_order(2, 100, 1, 1, 0);
    p.send(&second);
    assert_eq!(terminated(&mut p), TR::SEQUENCE_ERROR.wire());
    assert!(p.commands.is_empty());
}

#[test]
fn a_malformed_frame_after_logon_terminates_malformed() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    let mut o = p.new_order(1, 100, 1, 1, 0);
    o[2] = 0xEF; // encoding type
    p.send(&o);
    assert_eq!(terminated(&mut p), TR::MALFORMED.wire());
    // A second Logon on a live session is malformed too.
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    let f = p.logon_frame(1000, 1, 0);
    p.send(&f);
    assert_eq!(terminated(&mut p), TR::MALFORMED.wire());
    assert!(p.commands.is_empty());
}

#[test]
fn logout_is_answered_by_terminate_logout() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    let lo = p.client.seal(wire::Logout { seq: 0, reason: 0 }.to_bytes());
    p.send(&lo);
    assert_eq!(terminated(&mut p), TR::LOGOUT.wire());
    assert_eq!(
        p.session.close_reason(),
        Some(CloseReason::Terminated(TR::LOGOUT))
    );
    assert_eq!(p.session.key_sessions(), Some(0));
}

#[test]
fn the_gateway_heartbeats_and_ends_a_silent_session_after_two_intervals() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    assert_eq!(p.session.poll_timeout(), Some(T0 + 1000 * MS));
    p.now = T0 + 1000 * MS;
    p.tick();
    let frames = p.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(template(&frames[0]), wire::Heartbeat::TEMPLATE_ID);
    // A client heartbeat keeps the session alive.
    let hb = p.client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
    p.now = T0 + 1500 * MS;
    p.send(&hb);
    p.now = T0 + 3000 * MS;
    p.tick();
    assert!(p.session.is_logged_on());
    p.frames();
    p.now = T0 + 3500 * MS;
    p.tick();
    assert_eq!(terminated(&mut p), TR::HEARTBEAT_TIMEOUT.wire());
}

// --------------------------------------------------------------- orders

#[test]
fn an_order_is_handed_to_the_engine_with_every_field() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    let o = p.new_order(77, -12345, 300, 2, 3);
    p.now += 5;
    p.send(&o);
    assert_eq!(p.commands.len(), 1);
    let c = p.commands[0];
    assert_eq!(c.kind, CommandKind::NewOrder);
    assert_eq!(c.session, SessionId::new(0, 1, 1));
    assert_eq!(
        (c.cl_ord_id, c.price, c.qty, c.instrument_id),
        (77, -12345, 300, 1)
    );
    assert_eq!((c.side, c.ord_type, c.tif, c.time_ns), (2, 1, 3, T0 + 5));
    assert!(p.frames().is_empty(), "the engine answers, not the session");
    assert_eq!(p.counters.commands_out, 1);
}

#[test]
fn throttled_orders_get_the_exact_retry_after_and_a_run_ends_the_session() {
    let config = GatewayConfig {
        throttle_breach_run: 3,
        ..GatewayConfig::default()
    };
    let shared = shared_with(config);
    // KEY_SLOW: 10 msgs/s (T = 100 ms), burst 4, reserve 1: orders get 3.
    let mut p = Pair::new(&shared, KEY_SLOW, 16);
    p.logon(0);
    for id in 1..=3 {
        let o = p.new_order(id, 100, 1, 1, 0);
        p.send(&o);
    }
    assert_eq!(p.commands.len(), 3);
    let o = p.new_order(4, 100, 1, 1, 0);
    p.send(&o);
    let frames = p.frames();
    assert_eq!(rejected(&frames[0]), (4, RR::THROTTLED.wire(), 100 * MS));
    // The cancel reserve is still there.
    let c = p.cancel(5, 1);
    p.send(&c);
    assert_eq!(p.commands.len(), 4);
    assert_eq!(p.commands[3].kind, CommandKind::Cancel);
    // Four tokens taken: TAT = T0 + 400 ms. 10 ms later an order (tolerance
    // (4 - 1 - 1) x 100 ms = 200 ms) waits 400 - 10 - 200 = 190 ms.
    p.now += 10 * MS;
    let o = p.new_order(6, 100, 1, 1, 0);
    p.send(&o);
    assert_eq!(
        rejected(&p.frames()[0]),
        (6, RR::THROTTLED.wire(), 190 * MS)
    );
    // Third consecutive throttled message: Terminate THROTTLE_BREACH.
    let o = p.new_order(7, 100, 1, 1, 0);
    p.send(&o);
    let o = p.new_order(8, 100, 1, 1, 0);
    p.send(&o);
    let frames = p.frames();
    assert_eq!(rejected(&frames[0]).1, RR::THROTTLED.wire());
    assert_eq!(terminate_reason(&frames[1]), TR::THROTTLE_BREACH.wire());
    assert_eq!(p.counters.order_reject(RR::THROTTLED), 3);
    assert_eq!(p.counters.terminate(TR::THROTTLE_BREACH), 1);
    assert_eq!(p.commands.len(), 4);
}

#[test]
fn heartbeats_have_their_own_allowance_and_take_no_order_tokens() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_SLOW, 16);
    p.logon(0);
    // Keepalive 1 s: a burst of 8, then one per 250 ms; the other 42 are
    // throttled without a reply (a run of 42 < 100: no breach).
    for _ in 0..50 {
        let hb = p.client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
        p.send(&hb);
    }
    assert!(p.frames().is_empty());
    assert!(p.session.is_logged_on());
    assert_eq!(p.counters.messages_in, 50);
    assert_eq!(p.counters.heartbeats_throttled, 42);
    // KEY_SLOW's three order tokens are untouched.
    for id in 1..=3 {
        let o = p.new_order(id, 100, 1, 1, 0);
        p.send(&o);
    }
    assert_eq!(p.commands.len(), 3);
    assert!(p.frames().is_empty());
}

#[test]
fn a_cancel_only_key_cannot_trade() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_CANCEL_ONLY, 16);
    let ack = p.logon(0);
    assert_eq!(ack[46], 0b010, "LogonAck.scopes = CANCEL");
    let o = p.new_order(1, 100, 1, 1, 0);
    p.send(&o);
    let r = p.client.seal(
        wire::ReplaceOrder {
            seq: 0,
            cl_ord_id: 2,
            orig_cl_ord_id: 1,
            price: 1,
            qty: 1,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    p.send(&r);
    let c = p.cancel(3, 1);
    p.send(&c);
    let frames = p.frames();
    assert_eq!(rejected(&frames[0]), (1, RR::NOT_PERMITTED.wire(), 0));
    assert_eq!(rejected(&frames[1]), (2, RR::NOT_PERMITTED.wire(), 0));
    assert_eq!(frames.len(), 2);
    assert_eq!(p.commands.len(), 1);
    assert_eq!(p.commands[0].kind, CommandKind::Cancel);
}

#[test]
fn a_full_ring_answers_engine_busy_and_the_sequence_still_advances() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 1);
    p.logon(0);
    let a = p.new_order(1, 100, 1, 1, 0);
    let b = p.new_order(2, 100, 1, 1, 0);
    let c = p.new_order(3, 100, 1, 1, 0);
    p.send(&a);
    p.send(&b);
    assert_eq!(rejected(&p.frames()[0]), (2, RR::ENGINE_BUSY.wire(), 0));
    assert_eq!(p.counters.ring_full, 1);
    p.commands.clear();
    p.send(&c); // seq 3 is accepted: seq 2 counted
    assert_eq!(p.commands.len(), 1);
    assert_eq!(p.commands[0].cl_ord_id, 3);
}

#[test]
fn frames_split_anywhere_are_handled_exactly_like_whole_ones() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 64);
    let logon = p.logon_frame(1000, 1, 0);
    for b in logon.iter() {
        p.send(std::slice::from_ref(b));
    }
    assert_eq!(template(&p.frames()[0]), wire::LogonAck::TEMPLATE_ID);
    let mut stream = Vec::new();
    for id in 1..=20 {
        stream.extend_from_slice(&p.new_order(id, 100 + id as i64, 1, 1, 0));
        stream.extend_from_slice(&p.cancel(1000 + id, id));
    }
    // Odd chunk sizes straddle every frame boundary.
    for chunk in stream.chunks(7) {
        p.send(chunk);
    }
    assert_eq!(p.commands.len(), 40);
    for (i, c) in p.commands.iter().enumerate() {
        let id = i as u64 / 2 + 1;
        if i % 2 == 0 {
            assert_eq!(
                (c.kind, c.cl_ord_id, c.price),
                (CommandKind::NewOrder, id, 100 + id as i64)
            );
        } else {
            assert_eq!(
                (c.kind, c.cl_ord_id, c.orig_cl_ord_id),
                (CommandKind::Cancel, 1000 + id, id)
            );
        }
    }
}

// ----------------------------------------------- cancel-on-disconnect

#[test]
fn cancel_on_disconnect_is_sent_however_the_session_ends() {
    let shared = shared();
    // Logout.
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(1);
    let lo = p.client.seal(wire::Logout { seq: 0, reason: 0 }.to_bytes());
    p.send(&lo);
    assert_eq!(
        p.commands.last().unwrap().kind,
        CommandKind::CancelOnDisconnect
    );
    // Bad tag.
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(1);
    let mut o = p.new_order(1, 1, 1, 1, 0);
    o[63] ^= 1;
    p.send(&o);
    assert_eq!(p.commands.len(), 1);
    assert_eq!(p.commands[0].kind, CommandKind::CancelOnDisconnect);
    assert_eq!(p.commands[0].session, SessionId::new(0, 1, 1));
    // Transport closed.
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(1);
    p.transport_closed();
    assert_eq!(p.commands.len(), 1);
    assert_eq!(p.commands[0].kind, CommandKind::CancelOnDisconnect);
    // Without the flag, nothing.
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    p.transport_closed();
    assert!(p.commands.is_empty());
}

#[test]
fn cancel_on_disconnect_waits_for_ring_space_and_holds_the_slot() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 1);
    p.logon(1);
    let o = p.new_order(1, 1, 1, 1, 0);
    p.send(&o); // fills the one-slot ring
    p.transport_closed();
    assert_eq!(p.commands.len(), 1);
    assert!(
        !p.session.is_finished(),
        "the slot waits for the cancel-on-disconnect"
    );
    assert_eq!(p.session.poll_timeout(), Some(0));
    p.tick();
    assert_eq!(p.commands.len(), 1, "still full");
    p.commands.clear();
    p.tick();
    assert_eq!(p.commands[0].kind, CommandKind::CancelOnDisconnect);
    assert!(p.session.is_finished());
}

// --------------------------------------------------------------- events

#[test]
fn engine_events_become_tagged_replies_in_order() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    let id = p.session.id();
    let mut e = Event::empty(EventKind::Accepted, id);
    e.cl_ord_id = 5;
    e.order_id = 900;
    e.transact_time_ns = T0 + 1;
    p.event(&e);
    let mut f = Event::empty(EventKind::Fill, id);
    (
        f.cl_ord_id,
        f.order_id,
        f.exec_id,
        f.price,
        f.qty,
        f.leaves_qty,
    ) = (5, 900, 1, 101, 2, 3);
    p.event(&f);
    let mut r = Event::empty(EventKind::Rejected, id);
    r.cl_ord_id = 6;
    r.reason = EventReason::Reject(RR::UNKNOWN_ORDER);
    p.event(&r);
    // A stale event for the previous session in this slot is dropped.
    p.event(&Event::empty(EventKind::Accepted, SessionId::new(0, 1, 0)));
    let frames = p.frames();
    assert_eq!(frames.len(), 3);
    match wire::decode_gateway(&frames[0]).unwrap() {
        GatewayFrame::OrderAccepted(a) => {
            assert_eq!(
                (a.seq(), a.cl_ord_id(), a.order_id(), a.transact_time_ns()),
                (2, 5, 900, T0 + 1)
            )
        }
        other => panic!("{other:?}"),
    }
    match wire::decode_gateway(&frames[1]).unwrap() {
        GatewayFrame::Fill(x) => assert_eq!(
            (
                x.seq(),
                x.exec_id(),
                x.fill_price(),
                x.fill_qty(),
                x.leaves_qty()
            ),
            (3, 1, 101, 2, 3)
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(rejected(&frames[2]), (6, RR::UNKNOWN_ORDER.wire(), 0));
    assert_eq!(p.counters.events_undeliverable, 1);
}

#[test]
fn a_client_that_does_not_read_is_terminated_as_a_slow_consumer() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(1);
    let id = p.session.id();
    let mut n = 0;
    while p.session.is_logged_on() {
        let mut f = Event::empty(EventKind::Fill, id);
        f.exec_id = n;
        p.event(&f);
        n += 1;
        assert!(n < 10_000, "bounded");
    }
    // 64 KiB of 84-byte Fills, each leaving room for a Terminate (44), the
    // LogonAck already taken: 779 fit, the 780th does not.
    assert_eq!(n, (64 * 1024 - 44) / 84 + 1);
    assert_eq!(p.session.close_reason(), Some(CloseReason::SlowConsumer));
    assert_eq!(p.session.tx().len(), 779 * 84 + 44, "the Terminate fits");
    assert!(
        !p.session.wants_close(),
        "its Terminate gets a window to go out"
    );
    assert_eq!(p.counters.slow_consumers, 1);
    assert_eq!(p.counters.terminate(TR::SLOW_CONSUMER), 1);
    assert_eq!(p.commands[0].kind, CommandKind::CancelOnDisconnect);
    // A client that reads it then gets every Fill and the Terminate.
    let frames = p.frames();
    assert_eq!(frames.len(), 780);
    assert_eq!(
        terminate_reason(frames.last().unwrap()),
        TR::SLOW_CONSUMER.wire()
    );
    assert!(p.session.wants_close());
}

// ------------------------------------------- issue 12: the cases' map

/// Issue 12, case 9 (docs/TESTING.md): a tag one byte short (15 bytes) or
/// one byte long (17), `message_size` adjusted to match, is MALFORMED (no
/// template has that size), and nothing of the frame moves any state.
#[test]
fn a_tag_one_byte_short_or_long_terminates_malformed_and_reaches_nothing() {
    let shared = shared();
    for longer in [false, true] {
        let mut p = Pair::new(&shared, KEY_TRADER, 16);
        p.logon(0);
        let mut f = p.new_order(1, 100, 1, 1, 0).to_vec();
        if longer {
            f.push(0x5A);
        } else {
            f.pop();
        }
        let size = f.len() as u16;
        f[..2].copy_from_slice(&size.to_le_bytes());
        p.send(&f);
        assert_eq!(terminated(&mut p), TR::MALFORMED.wire(), "{size} bytes");
        assert!(p.commands.is_empty());
        assert_eq!(p.counters.messages_in, 0);
    }
}

/// Issue 12, case 11: a frame sealed in one session and sent, with the
/// `seq` expected there, on another session of the same key is BAD_MAC:
/// session keys are derived per session (both nonces, the session id).
#[test]
fn a_frame_of_another_session_of_the_same_key_is_bad_mac() {
    let shared = shared();
    let mut a = Pair::new(&shared, KEY_TRADER, 16);
    let mut b = Pair::new(&shared, KEY_TRADER, 16);
    a.logon(0);
    b.logon(0);
    let from_a = a.new_order(1, 100, 1, 1, 0);
    b.send(&from_a);
    assert_eq!(terminated(&mut b), TR::BAD_MAC.wire());
    assert!(b.commands.is_empty());
    assert_eq!(b.counters.messages_in, 0);
    // Its own session takes it.
    a.send(&from_a);
    assert_eq!(a.commands.len(), 1);
}

/// Issue 12, case 5 (slowloris after logon): bytes that never complete a
/// frame do not keep a session alive. One byte of an order every 300 ms:
/// the session ends with Terminate HEARTBEAT_TIMEOUT at the first timer
/// run two keepalive intervals (2 s) after its last whole frame, and the
/// unfinished order never reaches the engine.
#[test]
fn trickled_bytes_of_an_unfinished_frame_do_not_keep_a_session_alive() {
    let shared = shared();
    let mut p = Pair::new(&shared, KEY_TRADER, 16);
    p.logon(0);
    let order = p.new_order(1, 100, 1, 1, 0);
    let mut ended = None;
    for i in 1..=20u64 {
        p.now = T0 + i * 300 * MS;
        p.send(&order[i as usize - 1..i as usize]);
        p.tick();
        if let Some(f) = p
            .frames()
            .into_iter()
            .find(|f| template(f) == wire::Terminate::TEMPLATE_ID)
        {
            ended = Some((terminate_reason(&f), (p.now - T0) / MS));
            break;
        }
    }
    assert_eq!(ended, Some((TR::HEARTBEAT_TIMEOUT.wire(), 2100)));
    assert!(p.commands.is_empty());
    assert_eq!(p.counters.messages_in, 0);
}
