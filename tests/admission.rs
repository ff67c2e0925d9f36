//! Connection admission under attack, over real loopback TCP: connections
//! that never log on cannot take the session slots from clients that do.

mod common;

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::net::*;
use ordergate::constants::LOGON_TIMEOUT_NS_DEFAULT;
use ordergate::constants::PENDING_LOGONS_PER_ADDRESS_DEFAULT;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::telemetry::stats::StatsReader;
use ordergate::wire::{self, codes::LogonRejectReason as LR};

const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const HONEST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The loopback harness's spec with the default logon deadline (1 s): the
/// attack reopens its connections as that deadline closes them.
fn default_spec() -> GatewaySpec {
    let mut spec = spec();
    spec.session.logon_timeout_ns = LOGON_TIMEOUT_NS_DEFAULT;
    spec
}

/// A client connection from `local`, not yet logged on.
fn conn_from(local: Ipv4Addr, addr: SocketAddr, key_id: u64) -> Conn {
    let c = Conn::connect_from(local, addr, key_id, SECRET).expect("connect");
    c.s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Sends a Logon and returns the template of the reply, and the
/// LogonReject reason if it was one (None at EOF).
fn try_logon(c: &mut Conn) -> Option<(u16, Option<u16>)> {
    let f = c.logon_frame(0, 1, 1000);
    c.send(&f);
    let reply = c.recv()?;
    let t = template(&reply);
    let reason = (t == wire::LogonReject::TEMPLATE_ID).then(|| logon_reject(&reply));
    Some((t, reason))
}

/// `count` connections from `local` that never send a byte, each reopened
/// as soon as the gateway closes (or refuses) it, until `stop` or
/// `deadline`. Reopens at most `REOPENS_PER_SWEEP` a millisecond, so the
/// test stays a test of admission rather than of the loopback's SYN path.
/// Returns how many connections it opened in all.
fn idle_attack(
    addr: SocketAddr,
    count: usize,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    deadline: Duration,
) -> std::thread::JoinHandle<u64> {
    const REOPENS_PER_SWEEP: usize = 8;
    std::thread::spawn(move || {
        let open = || -> Option<TcpStream> {
            let s = connect_from(ATTACKER, addr).ok()?;
            s.set_nonblocking(true).unwrap();
            Some(s)
        };
        let mut socks: Vec<Option<TcpStream>> = (0..count).map(|_| open()).collect();
        let mut total = socks.iter().filter(|s| s.is_some()).count() as u64;
        opened.store(total, Ordering::Release);
        let started = Instant::now();
        let mut buf = [0u8; 256];
        while !stop.load(Ordering::Acquire) && started.elapsed() < deadline {
            let mut reopened = 0;
            for s in socks.iter_mut() {
                let closed = match s {
                    None => true,
                    Some(stream) => match stream.read(&mut buf) {
                        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                        // EOF, a LogonReject, or a reset: closed by the gateway.
                        _ => true,
                    },
                };
                if closed && reopened < REOPENS_PER_SWEEP {
                    *s = open();
                    reopened += 1;
                    total += 1;
                } else if closed {
                    *s = None;
                }
            }
            opened.store(total, Ordering::Release);
            std::thread::sleep(Duration::from_millis(1));
        }
        total
    })
}

/// Attack 2: 300 connections from 127.0.0.1 that never log on, reopened as
/// the logon deadline closes them, must not keep 32 logons from 127.0.0.2
/// out. Before the fix they took every slot of the slab (256) and most of
/// the honest logons got LogonReject SESSION_LIMIT.
#[test]
fn idle_connections_from_one_address_do_not_starve_logons_from_another() {
    let gw = Gateway::start(default_spec(), keys()).expect("the gateway starts");
    let addr = gw.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let attack = idle_attack(
        addr,
        300,
        stop.clone(),
        opened.clone(),
        Duration::from_secs(10),
    );
    // Let the first 300 land before the honest clients come.
    let t0 = Instant::now();
    while opened.load(Ordering::Acquire) < 300 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));

    // 32 logons, one every 50 ms: 1.6 s, across a wave of logon deadlines.
    let mut sessions = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..32 {
        let mut c = conn_from(HONEST, addr, TRADER);
        match try_logon(&mut c) {
            Some((t, None)) if t == wire::LogonAck::TEMPLATE_ID => sessions.push(c),
            other => refused.push(other),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The logged-on sessions still trade while the attack goes on: none
    // was displaced.
    for (i, c) in sessions.iter_mut().enumerate() {
        c.send_order(i as u64 + 1, 100, 1, 1, 0);
        let f = c.recv().expect("an answer to the order");
        assert_eq!(accepted(&f).0, i as u64 + 1);
    }
    stop.store(true, Ordering::Release);
    let attacker_opened = attack.join().unwrap();
    let report = finish(gw);
    let c = &report.reactors[0].counters;
    let u = &report.reactors[0].uring;
    eprintln!(
        "honest logons accepted {}/32, refused {:?}; attacker opened {attacker_opened} \
         connections; logon timeouts {}, LogonReject SESSION_LIMIT {}, THROTTLED {}, \
         refused full {}, over the address cap {}, evicted {}",
        sessions.len(),
        refused,
        c.logon_timeouts,
        c.logon_reject(LR::SESSION_LIMIT),
        c.logon_reject(LR::THROTTLED),
        u.accepts_refused_full,
        c.address_cap_refusals,
        c.pending_evictions,
    );
    assert!(
        sessions.len() * 10 >= 32 * 9,
        "only {}/32 logons from 127.0.0.2 succeeded; refusals: {refused:?}",
        sessions.len()
    );
    // The attacker held at most its cap of slots: everything beyond was
    // refused THROTTLED at accept, and the slab never filled (nothing
    // evicted, nothing refused SESSION_LIMIT).
    assert!(c.address_cap_refusals > 0);
    assert_eq!(c.logon_reject(LR::THROTTLED), c.address_cap_refusals);
    assert_eq!(c.pending_evictions, 0);
    assert_eq!(c.accepts_waited, 0);
    assert_eq!(u.accepts_refused_full, 0);
    assert_eq!(c.logon_reject(LR::SESSION_LIMIT), 0);
    assert!(c.logon_timeouts >= 16, "{}", c.logon_timeouts);
    assert_eq!(c.logons_accepted, 32);
}

/// A gateway whose connections have 10 s to log on (so nothing times out
/// during a test), publishing to a stats file of its own.
struct Rig {
    gw: Gateway,
    stats: StatsReader,
    dir: std::path::PathBuf,
}

impl Rig {
    fn start(tag: &str, sessions: usize) -> Rig {
        let dir =
            std::env::temp_dir().join(format!("ordergate-admission-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec = spec();
        spec.session.logon_timeout_ns = 10_000_000_000;
        spec.sessions_per_reactor = sessions;
        spec.stats_file = Some(dir.join("gw.stats"));
        let gw = Gateway::start(spec, keys()).expect("the gateway starts");
        let stats = StatsReader::open(&dir.join("gw.stats")).unwrap();
        Rig { gw, stats, dir }
    }

    fn addr(&self) -> SocketAddr {
        self.gw.local_addr()
    }

    /// Waits until `n` slots are in use.
    fn wait_live(&self, n: u64) {
        let t0 = Instant::now();
        loop {
            let live = self.stats.snapshot().reactor(0, "sessions_live");
            if live == Some(n) {
                return;
            }
            assert!(
                t0.elapsed() < WAIT,
                "sessions_live {live:?}, waited for {n}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn finish(self) -> ordergate::gateway::GatewayReport {
        let report = finish(self.gw);
        let _ = std::fs::remove_dir_all(&self.dir);
        report
    }
}

/// An idle connection from `local`: it never sends a byte.
fn idle_from(local: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let s = connect_from(local, addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// The gateway's answer to a connection that sent nothing: the LogonReject
/// reason, then end of stream.
fn refused_reason(s: &mut TcpStream) -> u16 {
    let mut f = [0u8; wire::LOGON_REJECT_SIZE];
    s.read_exact(&mut f).expect("a LogonReject");
    assert_eq!(template(&f), wire::LogonReject::TEMPLATE_ID);
    let mut more = [0u8; 1];
    assert_eq!(
        s.read(&mut more).unwrap(),
        0,
        "closed after the LogonReject"
    );
    logon_reject(&f)
}

/// Still open, with nothing sent to it.
fn untouched(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = (&*s).read(&mut b);
    s.set_nonblocking(false).unwrap();
    matches!(r, Err(e) if e.kind() == ErrorKind::WouldBlock)
}

fn logged_on(local: Ipv4Addr, addr: SocketAddr) -> Conn {
    let mut c = conn_from(local, addr, TRADER);
    assert_eq!(
        try_logon(&mut c),
        Some((wire::LogonAck::TEMPLATE_ID, None)),
        "logon from {local} accepted"
    );
    c
}

/// The per-address cap: an address holding `pending_logons_per_address`
/// connections not logged on gets LogonReject THROTTLED for the next one at
/// once, while other addresses (even in its /24) log on; closing one of its
/// connections gives the place back.
#[test]
fn over_the_address_cap_a_connection_is_refused_throttled_and_takes_no_slot() {
    const CAP: usize = PENDING_LOGONS_PER_ADDRESS_DEFAULT;
    let greedy = Ipv4Addr::new(127, 0, 0, 3);
    let neighbour = Ipv4Addr::new(127, 0, 0, 4);
    let rig = Rig::start("cap", 256);
    let addr = rig.addr();
    let mut held: Vec<TcpStream> = (0..CAP).map(|_| idle_from(greedy, addr)).collect();
    rig.wait_live(CAP as u64);
    for _ in 0..4 {
        let mut s = idle_from(greedy, addr);
        assert_eq!(refused_reason(&mut s), LR::THROTTLED.wire());
    }
    // Its own logon is over the cap too: the address pays, not others.
    let mut c = conn_from(greedy, addr, TRADER);
    assert_eq!(
        try_logon(&mut c),
        Some((wire::LogonReject::TEMPLATE_ID, Some(LR::THROTTLED.wire())))
    );
    let mut neighbour_session = logged_on(neighbour, addr);
    rig.wait_live(CAP as u64 + 1);
    assert!(held.iter().all(untouched));

    // One of its connections goes: its place comes back.
    drop(held.pop());
    rig.wait_live(CAP as u64);
    let mut own = logged_on(greedy, addr);
    for (i, c) in [&mut neighbour_session, &mut own].into_iter().enumerate() {
        c.send_order(i as u64 + 1, 100, 1, 1, 0);
        assert_eq!(accepted(&c.recv().unwrap()).0, i as u64 + 1);
    }
    let report = rig.finish();
    let c = &report.reactors[0].counters;
    assert_eq!(c.address_cap_refusals, 5);
    assert_eq!(c.logon_reject(LR::THROTTLED), 5);
    assert_eq!(c.logons_accepted, 2);
    assert_eq!(c.pending_evictions, 0);
    assert_eq!(report.reactors[0].uring.accepts, CAP as u64 + 5 + 2);
}

/// A spray of idle connections from many addresses fills the slab: each
/// new connection evicts the oldest connection not logged on (LogonReject
/// SESSION_LIMIT), waits for its slot and logs on; once every slot holds a
/// logged-on session the next connection is refused SESSION_LIMIT and no
/// session is displaced.
#[test]
fn a_full_slab_evicts_its_oldest_idle_connection_never_a_session() {
    const SLOTS: usize = 8;
    let rig = Rig::start("evict", SLOTS);
    let addr = rig.addr();
    let mut idle: Vec<TcpStream> = (0..SLOTS)
        .map(|i| idle_from(Ipv4Addr::new(127, 0, 0, 10 + i as u8), addr))
        .collect();
    rig.wait_live(SLOTS as u64);

    let mut sessions = Vec::new();
    for i in 0..SLOTS {
        sessions.push(logged_on(HONEST, addr));
        assert_eq!(
            refused_reason(&mut idle[i]),
            LR::SESSION_LIMIT.wire(),
            "idle connection {i} evicted"
        );
        assert!(
            idle[i + 1..].iter().all(untouched),
            "only the oldest is evicted"
        );
    }
    // Every slot is a session now: the next connection is refused.
    let mut s = idle_from(HONEST, addr);
    assert_eq!(refused_reason(&mut s), LR::SESSION_LIMIT.wire());
    for (i, c) in sessions.iter_mut().enumerate() {
        c.send_order(i as u64 + 1, 100, 1, 1, 0);
        assert_eq!(accepted(&c.recv().unwrap()).0, i as u64 + 1);
    }
    let report = rig.finish();
    let c = &report.reactors[0].counters;
    let u = &report.reactors[0].uring;
    assert_eq!(c.pending_evictions, SLOTS as u64);
    assert_eq!(c.accepts_waited, SLOTS as u64);
    assert_eq!(u.accepts_refused_full, 1);
    assert_eq!(c.logon_reject(LR::SESSION_LIMIT), SLOTS as u64 + 1);
    assert_eq!(c.logons_accepted, SLOTS as u64);
    assert_eq!(c.address_cap_refusals, 0);
}
