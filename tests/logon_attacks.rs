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

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::net::*;
use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::secret::Secret;
use ordergate::client::{ClientSession, FrameReader};
use ordergate::gateway::{Gateway, GatewayReport};
use ordergate::rng::SplitMix;
use ordergate::wire::codes::{Environment, LogonRejectReason as LR, Scopes};
use ordergate::wire::{self};

/// A key that may hold one session at a time (the flooder).
const KEY_ONE_SESSION: u64 = 1001;
/// Another tenant's key.
const KEY_OTHER: u64 = 1002;
/// No such key.
const KEY_UNKNOWN: u64 = 9999;

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

fn start_with(entries: Vec<KeyEntry>) -> Gateway {
    Gateway::start(spec(), KeyTable::from_entries(entries).unwrap()).expect("the gateway starts")
}

/// A TCP connection to `to` from `from` (port chosen by the kernel).
fn tcp_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        panic!("the test gateway listens on IPv4 loopback")
    };
    fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
        libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        }
    }
    // SAFETY: plain socket(2) call with constant arguments; the result is
    // checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor this function owns; OwnedFd closes
    // it on every path out.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let local = sockaddr(SocketAddrV4::new(from, 0));
    // SAFETY: `local` is a valid sockaddr_in that outlives the call, and
    // `len` is its size.
    if unsafe { libc::bind(fd.as_raw_fd(), (&raw const local).cast(), len) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let remote = sockaddr(to);
    // SAFETY: as for bind: a valid sockaddr_in of size `len`.
    if unsafe { libc::connect(fd.as_raw_fd(), (&raw const remote).cast(), len) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(TcpStream::from(fd))
}

fn conn_from(
    from: Ipv4Addr,
    to: SocketAddr,
    key_id: u64,
    secret: [u8; 32],
) -> std::io::Result<Conn> {
    let s = tcp_from(from, to)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(WAIT))?;
    Ok(Conn {
        s,
        c: ClientSession::new(key_id, secret),
        r: FrameReader::new(1 << 16),
    })
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
    let Ok(mut c) = conn_from(from, to, key_id, secret) else {
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
    let mut one = entry(KEY_ONE_SESSION);
    one.max_sessions = NonZeroU32::new(1);
    let gw = start_with(vec![one, entry(KEY_OTHER)]);
    let addr = gw.local_addr();

    let flooder: Ipv4Addr = "127.0.0.31".parse().unwrap();
    let (held, _keep) = logon_from(flooder, addr, KEY_ONE_SESSION, 60_000);
    assert_eq!(held, Answer::Ack, "the flooding key's one session");

    let deadline = Instant::now() + Duration::from_secs(6);
    let attempts = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let attempts = attempts.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while Instant::now() < deadline {
                    answers.push(logon_from(flooder, addr, KEY_ONE_SESSION, 1000).0);
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
                answers
            })
        })
        .collect();
    let flood: Vec<Answer> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    eprintln!("flood: {} attempts: {}", flood.len(), tally(&flood));
    assert!(
        !flood.contains(&Answer::Ack),
        "the key at its session limit is never admitted: {}",
        tally(&flood)
    );

    let other: Ipv4Addr = "127.0.0.32".parse().unwrap();
    let answers: Vec<Answer> = (0..20)
        .map(|_| logon_from(other, addr, KEY_OTHER, 1000).0)
        .collect();
    let acks = answers.iter().filter(|a| **a == Answer::Ack).count();
    assert!(
        acks >= 18,
        "another key right after the flood: {}",
        tally(&answers)
    );
    finish(gw);
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
}

/// Tens of thousands of failed logons sprayed from random 127.x.y.z
/// addresses (bounded: 40,000 attempts or 10 s), then 50 clients at fresh
/// addresses in a /24 the spray never used log on.
#[test]
fn a_spray_of_failures_from_many_addresses_locks_out_no_one_else() {
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
    finish(gw);
}
