//! Attacks on the logon path over real loopback TCP, from chosen
//! 127.x.y.z source addresses (each client socket is bound before it
//! connects):
//!
//! - one key floods logons and must not take other keys' share of the nonce
//!   replay cache (issue "Hold under attack", attack 3);
//! - failed logons must not lock out another key at the same address, nor,
//!   sprayed from many addresses, everyone else (attack 4).
//!
//! Every loop here is bounded by a count or a deadline and stops by itself.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::net::*;
use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::gateway::{Gateway, GatewayReport};
use ordergate::rng::SplitMix;
use ordergate::wire::codes::LogonRejectReason as LR;
use ordergate::wire::{self};

/// A key that may hold one session at a time (the flooder).
const KEY_ONE_SESSION: u64 = 1001;
/// Another tenant's key.
const KEY_OTHER: u64 = 1002;
/// No such key.
const KEY_UNKNOWN: u64 = 9999;

/// The flood and the spray each want the machine to themselves: run one at
/// a time, so that neither slows the other below the rate its attack needs.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

fn entry(id: u64) -> KeyEntry {
    common::unthrottled_key(id, SECRET)
}

fn start_with(entries: Vec<KeyEntry>) -> Gateway {
    Gateway::start(spec(), KeyTable::from_entries(entries).unwrap()).expect("the gateway starts")
}

/// The gateway's answer to one logon attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Ack,
    Reject(u16),
    /// Closed (or reset, or not connected) without an answer.
    Nothing,
}

/// One logon with `key_id` (signed with `SECRET`) from `from`; the
/// connection is kept when it was accepted.
fn logon_from(
    from: Ipv4Addr,
    to: SocketAddr,
    key_id: u64,
    keepalive_ms: u16,
) -> (Answer, Option<Conn>) {
    signed_logon_from(from, to, key_id, SECRET, keepalive_ms)
}

fn signed_logon_from(
    from: Ipv4Addr,
    to: SocketAddr,
    key_id: u64,
    secret: [u8; 32],
    keepalive_ms: u16,
) -> (Answer, Option<Conn>) {
    let Ok(mut c) = Conn::connect_from(from, to, key_id, secret) else {
        return (Answer::Nothing, None);
    };
    let f = c.logon_frame(0, 1, keepalive_ms);
    if std::io::Write::write_all(&mut c.s, &f).is_err() {
        return (Answer::Nothing, None);
    }
    let reply = loop {
        if let Some(f) = c.r.next_frame() {
            break f.expect("well-formed").to_vec();
        }
        match std::io::Read::read(&mut c.s, c.r.spare()) {
            Ok(0) | Err(_) => return (Answer::Nothing, None),
            Ok(n) => c.r.filled(n),
        }
    };
    if template(&reply) == wire::LogonAck::TEMPLATE_ID {
        c.c.receive(&reply)
            .expect("the client accepts the LogonAck");
        (Answer::Ack, Some(c))
    } else {
        (Answer::Reject(logon_reject(&reply)), None)
    }
}

fn tally(answers: &[Answer]) -> String {
    let mut acks = 0;
    let mut nothing = 0;
    let mut by = std::collections::BTreeMap::new();
    for a in answers {
        match a {
            Answer::Ack => acks += 1,
            Answer::Nothing => nothing += 1,
            Answer::Reject(r) => *by.entry(*r).or_insert(0u32) += 1,
        }
    }
    let names: Vec<String> = by
        .iter()
        .map(|(r, n)| {
            let name = LR::ALL
                .iter()
                .find(|x| x.wire() == *r)
                .map_or("?", |x| x.name());
            format!("{name} {n}")
        })
        .collect();
    format!(
        "{acks} LogonAck, rejects [{}], {nothing} unanswered",
        names.join(", ")
    )
}

fn sum(report: &GatewayReport, f: impl Fn(&ordergate::session::Counters) -> u64) -> u64 {
    report.reactors.iter().map(|r| f(&r.counters)).sum()
}

// ---------------------------------------------------------------- attack 3

/// A key with `max_sessions = 1`, already logged on, floods logons from
/// three threads for 6 s (each refused SESSION_LIMIT or THROTTLED). Another
/// key, at another address, then logs on 20 times in a row: the flood must
/// not have taken its place in the nonce replay cache.
#[test]
fn a_flooding_key_does_not_take_another_keys_nonce_share() {
    let _heavy = heavy();
    let mut one = entry(KEY_ONE_SESSION);
    one.max_sessions = NonZeroU32::new(1);
    let gw = start_with(vec![one, entry(KEY_OTHER)]);
    let addr = gw.local_addr();

    let flooder: Ipv4Addr = "127.0.0.31".parse().unwrap();
    let (held, _keep) = logon_from(flooder, addr, KEY_ONE_SESSION, 60_000);
    assert_eq!(held, Answer::Ack, "the flooding key's one session");

    // 6 s, and on a slow (shared, loaded) machine on until 5,000 attempts
    // (more than the old shared cache's 4,096 slots), but never past 60 s.
    const FLOOD_MIN: u64 = 5_000;
    let start = Instant::now();
    let attempts = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let attempts = attempts.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                loop {
                    let elapsed = start.elapsed();
                    let done = attempts.load(Ordering::Relaxed) >= FLOOD_MIN;
                    if elapsed >= Duration::from_secs(60)
                        || (elapsed >= Duration::from_secs(6) && done)
                    {
                        return answers;
                    }
                    answers.push(logon_from(flooder, addr, KEY_ONE_SESSION, 1000).0);
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let flood: Vec<Answer> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    eprintln!(
        "flood: {} attempts in {:.1} s: {}",
        flood.len(),
        start.elapsed().as_secs_f64(),
        tally(&flood)
    );
    assert!(
        flood.len() > 4096,
        "the flood outnumbered the old cache's 4,096 slots: {}",
        flood.len()
    );
    assert!(
        flood
            .iter()
            .all(|a| [LR::SESSION_LIMIT.wire(), LR::THROTTLED.wire()]
                .map(Answer::Reject)
                .contains(a)),
        "the key at its session limit is never admitted: {}",
        tally(&flood)
    );

    let other: Ipv4Addr = "127.0.0.32".parse().unwrap();
    let answers: Vec<Answer> = (0..20)
        .map(|_| logon_from(other, addr, KEY_OTHER, 1000).0)
        .collect();
    let acks = answers.iter().filter(|a| **a == Answer::Ack).count();
    eprintln!("another key after the flood: {}", tally(&answers));
    assert!(
        acks >= 18,
        "another key right after the flood: {}",
        tally(&answers)
    );
    let report = finish(gw);
    // Every refusal of the flood is counted by its defence: the key's
    // session limit (its nonce never recorded), the key's logon rate, the
    // address's logon rate; its cache was never full.
    let refused = |r: LR| {
        flood
            .iter()
            .filter(|a| **a == Answer::Reject(r.wire()))
            .count() as u64
    };
    assert_eq!(
        sum(&report, |c| c.logon_reject(LR::SESSION_LIMIT)),
        refused(LR::SESSION_LIMIT)
    );
    let key = sum(&report, |c| c.logons_throttled_key);
    let address = sum(&report, |c| c.logons_throttled_address);
    assert!(key > 0 && address > 0, "key {key}, address {address}");
    assert_eq!(key + address, refused(LR::THROTTLED));
    assert_eq!(sum(&report, |c| c.logons_nonce_share_full), 0);
    assert_eq!(sum(&report, |c| c.logons_locked_out), 0);
}

// ---------------------------------------------------------------- attack 4

/// Failed logons with an unknown key id from 127.0.0.9 lock that (address,
/// key) out, not the valid key of a neighbour at the same address.
#[test]
fn failures_with_one_key_do_not_lock_out_another_key_at_the_same_address() {
    let gw = start_with(vec![entry(KEY_ONE_SESSION)]);
    let addr = gw.local_addr();
    let at: Ipv4Addr = "127.0.0.9".parse().unwrap();

    let attacker: Vec<Answer> = (0..6)
        .map(|_| logon_from(at, addr, KEY_UNKNOWN, 1000).0)
        .collect();
    let mut expected = vec![Answer::Reject(LR::AUTH_FAILED.wire()); 5];
    expected.push(Answer::Reject(LR::THROTTLED.wire()));
    assert_eq!(attacker, expected, "five failures, then the lockout");

    let (neighbour, _conn) = logon_from(at, addr, KEY_ONE_SESSION, 1000);
    assert_eq!(
        neighbour,
        Answer::Ack,
        "a valid key with its right secret at the attacker's address"
    );
    assert_eq!(
        logon_from(at, addr, KEY_UNKNOWN, 1000).0,
        Answer::Reject(LR::THROTTLED.wire()),
        "the attacker itself is still locked out"
    );
    let report = finish(gw);
    assert_eq!(sum(&report, |c| c.lockouts), 1);
    assert_eq!(sum(&report, |c| c.logon_reject(LR::AUTH_FAILED)), 5);
    assert_eq!(sum(&report, |c| c.logon_reject(LR::THROTTLED)), 2);
    assert_eq!(sum(&report, |c| c.logons_locked_out), 2);
    assert_eq!(sum(&report, |c| c.logons_accepted), 1);
}

/// Tens of thousands of failed logons sprayed from random 127.x.y.z
/// addresses (bounded: 40,000 attempts or 10 s), then 50 clients at fresh
/// addresses in a /24 the spray never used log on.
#[test]
fn a_spray_of_failures_from_many_addresses_locks_out_no_one_else() {
    let _heavy = heavy();
    let gw = start_with(vec![entry(KEY_ONE_SESSION)]);
    let addr = gw.local_addr();

    const ATTEMPTS: u64 = 40_000;
    let deadline = Instant::now() + Duration::from_secs(10);
    let next = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let next = next.clone();
            std::thread::spawn(move || {
                let mut rng = SplitMix(0x5eed + t);
                let mut answers = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < ATTEMPTS && Instant::now() < deadline {
                    // 127.1-200.y.z: never 127.250.0.0/24 below, nor 127.0.0.1.
                    let from = Ipv4Addr::new(
                        127,
                        1 + rng.below(200) as u8,
                        rng.below(256) as u8,
                        1 + rng.below(254) as u8,
                    );
                    // Half with an unknown key, half with the clients'
                    // key and a wrong secret.
                    let answer = if rng.below(2) == 0 {
                        logon_from(from, addr, KEY_UNKNOWN, 1000).0
                    } else {
                        signed_logon_from(from, addr, KEY_ONE_SESSION, [0x99; 32], 1000).0
                    };
                    answers.push(answer);
                }
                answers
            })
        })
        .collect();
    let spray: Vec<Answer> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    eprintln!("spray: {} attempts: {}", spray.len(), tally(&spray));
    assert!(
        spray.len() >= 10_000,
        "the spray reached tens of thousands of attempts: {}",
        spray.len()
    );
    assert!(!spray.contains(&Answer::Ack));

    let answers: Vec<Answer> = (1..=50u8)
        .map(|i| {
            let from = Ipv4Addr::new(127, 250, 0, i);
            logon_from(from, addr, KEY_ONE_SESSION, 1000).0
        })
        .collect();
    let acks = answers.iter().filter(|a| **a == Answer::Ack).count();
    assert_eq!(
        acks,
        50,
        "clients at fresh addresses after the spray: {}",
        tally(&answers)
    );
    let report = finish(gw);
    // The table was under pressure (records forgotten), yet no one was
    // refused for another's failures.
    let evictions = sum(&report, |c| c.lockout_evictions);
    eprintln!("spray: {evictions} lockout records forgotten");
    assert!(evictions > 0);
    let locked_out = sum(&report, |c| c.logons_locked_out);
    let throttled = spray
        .iter()
        .filter(|a| **a == Answer::Reject(LR::THROTTLED.wire()))
        .count() as u64;
    assert_eq!(locked_out, throttled, "only a sprayed address's own record");
}

// ------------------------------------------- sans-I/O: the logon check order

mod check_order {
    use super::common::{self as sans, Pair};
    use ordergate::auth::keys::KeyTable;
    use ordergate::session::{GatewayConfig, Shared};
    use ordergate::wire::codes::LogonRejectReason as LR;
    use std::num::NonZeroU32;

    const KEY: u64 = 1001;
    const T0: u64 = sans::T0;
    const SEC: u64 = sans::SEC;

    fn table(max_sessions: Option<u32>) -> KeyTable {
        let mut e = sans::unthrottled_key_for(
            KEY,
            sans::SECRET,
            ordergate::wire::codes::Scopes::TRADE,
            ordergate::wire::codes::Environment::Production,
        )
        .with_rate(1000, 100);
        e.max_sessions = max_sessions.and_then(NonZeroU32::new);
        KeyTable::from_entries(vec![e]).unwrap()
    }

    fn shared(config: GatewayConfig, max_sessions: Option<u32>) -> Shared {
        Shared::new(config, table(max_sessions), [3; 32])
    }

    /// The reply to `frame`: 0 for LogonAck, else the LogonReject reason.
    fn reply(p: &mut Pair<'_>, frame: &[u8]) -> u16 {
        p.send(frame);
        let frames = p.raw_frames();
        assert_eq!(frames.len(), 1);
        if sans::template(&frames[0]) == ordergate::wire::LogonAck::TEMPLATE_ID {
            0
        } else {
            sans::logon_reject_reason(&frames)
        }
    }

    #[test]
    fn a_logon_refused_at_the_session_limit_leaves_its_nonce_unrecorded() {
        let shared = shared(GatewayConfig::default(), Some(1));
        let mut a = Pair::new(&shared, KEY, 4);
        a.logon(0);
        let mut b = Pair::new(&shared, KEY, 4);
        let f = b.logon_frame(1000, 1, 0);
        assert_eq!(reply(&mut b, &f), LR::SESSION_LIMIT.wire());
        a.transport_closed();
        // The same frame again: its nonce was never recorded, so it is
        // admitted now that a place is free, and only then recorded.
        let mut c = Pair::new(&shared, KEY, 4);
        assert_eq!(reply(&mut c, &f), 0);
        let mut d = Pair::new(&shared, KEY, 4);
        assert_eq!(reply(&mut d, &f), LR::REPLAYED_NONCE.wire());
        assert_eq!(c.session.key_sessions(), Some(1));
    }

    #[test]
    fn the_keys_logon_rate_refuses_throttled_and_a_replay_spends_no_token() {
        let config = GatewayConfig {
            logon_rate_per_key: 1,
            logon_burst_per_key: 2,
            ..GatewayConfig::default()
        };
        let shared = shared(config, None);
        let mut p = Pair::new(&shared, KEY, 4);
        let first = p.logon_frame(1000, 1, 0);
        assert_eq!(reply(&mut p, &first), 0);
        let mut p = Pair::new(&shared, KEY, 4);
        p.logon(0);
        // A replay is refused for its nonce, before the rate: it spends
        // none of the key's tokens (a stranger replaying cannot throttle
        // the key).
        let mut r = Pair::new(&shared, KEY, 4);
        assert_eq!(reply(&mut r, &first), LR::REPLAYED_NONCE.wire());
        let mut p = Pair::new(&shared, KEY, 4);
        let f = p.logon_frame(1000, 1, 0);
        assert_eq!(reply(&mut p, &f), LR::THROTTLED.wire());
        assert_eq!(p.counters.logons_throttled_key, 1);
        assert_eq!(r.counters.logons_throttled_key, 0);
        // Its nonce was not recorded either: the same frame a second later
        // is admitted.
        let mut q = Pair::at(&shared, KEY, 4, "192.0.2.10".parse().unwrap(), T0 + SEC);
        assert_eq!(reply(&mut q, &f), 0);
    }

    #[test]
    fn the_address_rate_refuses_before_the_signature_and_only_that_client() {
        let config = GatewayConfig {
            logon_rate_per_address: 1,
            logon_burst_per_address: 2,
            ..GatewayConfig::default()
        };
        let shared = shared(config, None);
        let at: std::net::IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..2 {
            let mut p = Pair::with_peer(&shared, KEY, 4, at);
            p.logon(0);
        }
        let mut p = Pair::with_peer(&shared, KEY, 4, at);
        let f = p.logon_frame(1000, 1, 0);
        assert_eq!(reply(&mut p, &f), LR::THROTTLED.wire());
        assert_eq!(p.counters.logons_throttled_address, 1);
        // Even a wrong signature is refused THROTTLED: the rate comes first,
        // and the failure is not counted toward the lockout.
        let mut w = Pair::with_peer(&shared, 9999, 4, at);
        let g = w.logon_frame(1000, 1, 0);
        assert_eq!(reply(&mut w, &g), LR::THROTTLED.wire());
        assert_eq!(w.counters.logon_reject(LR::AUTH_FAILED), 0);
        // Another client is not affected; this one is again a second later.
        let mut o = Pair::with_peer(&shared, KEY, 4, "198.51.100.8".parse().unwrap());
        o.logon(0);
        let mut l = Pair::at(&shared, KEY, 4, at, T0 + SEC);
        l.logon(0);
    }

    #[test]
    fn a_reload_keeps_each_keys_nonces_and_logon_tokens() {
        let config = GatewayConfig {
            logon_rate_per_key: 1,
            logon_burst_per_key: 1,
            ..GatewayConfig::default()
        };
        let shared = shared(config, None);
        let mut p = Pair::new(&shared, KEY, 4);
        let f = p.logon_frame(1000, 1, 0);
        assert_eq!(reply(&mut p, &f), 0);
        shared.publish_keys(table(None));
        // The new generation still knows the nonce, and the key's burst is
        // still spent.
        let mut r = Pair::new(&shared, KEY, 4);
        assert_eq!(reply(&mut r, &f), LR::REPLAYED_NONCE.wire());
        let mut t = Pair::new(&shared, KEY, 4);
        let g = t.logon_frame(1000, 1, 0);
        assert_eq!(reply(&mut t, &g), LR::THROTTLED.wire());
        assert_eq!(t.counters.logons_throttled_key, 1);
    }
}
