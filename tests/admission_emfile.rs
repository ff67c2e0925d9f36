//! Attack 8: the process runs out of file descriptors while connections
//! queue on the listener. Accept must back off (counted) instead of
//! spinning the reactor, and the sessions already logged on must not notice.
//!
//! Lowering RLIMIT_NOFILE affects the whole test binary, so this file holds
//! exactly one test.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::net::*;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::telemetry::stats::StatsReader;
use ordergate::wire;

const HONEST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const FLOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// Connections queued on the listener while descriptors are exhausted.
const QUEUED: usize = 64;
/// Descriptors left to the process once the limit is lowered: the gateway
/// accepts this many queued connections, then hits EMFILE.
const SPARE_FDS: u64 = 4;
/// Reactor turns allowed in a 500 ms window while accept is failing. An
/// idle reactor with the backoff idle strategy parks 200 µs a turn (≈2500
/// turns in the window, plus a few hundred spins and yields after each
/// turn with work); a reactor that re-arms a failing accept every turn never
/// parks and turns hundreds of thousands of times.
const TURNS_IN_WINDOW_MAX: u64 = 60_000;

fn nofile() -> libc::rlimit {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a live rlimit the call writes.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r
}

fn set_nofile(r: libc::rlimit) {
    // SAFETY: r is a live, initialised rlimit the call reads.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
}

/// Restores the descriptor limit when dropped (also when the test fails,
/// so the gateway can still shut down).
struct RestoreLimit(libc::rlimit);

impl Drop for RestoreLimit {
    fn drop(&mut self) {
        set_nofile(self.0);
    }
}

fn conn_from(local: Ipv4Addr, addr: SocketAddr) -> Conn {
    Conn::connect_from(local, addr, TRADER, SECRET).expect("connect")
}

/// Fills the descriptor table up to the limit with duplicates of one
/// descriptor, then gives `spare` of them back. Returns the fillers.
fn exhaust_descriptors(spare: usize) -> Vec<std::fs::File> {
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut fillers = Vec::new();
    loop {
        match null.try_clone() {
            Ok(f) => fillers.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("dup: {e}"),
        }
    }
    drop(null);
    fillers.truncate(fillers.len().saturating_sub(spare - 1));
    fillers
}

#[test]
fn out_of_descriptors_accept_backs_off_and_sessions_keep_trading() {
    let dir = common::serve::TempDir::new("admission-emfile");
    let path = dir.join("gw.stats");

    // A modest limit from the start: io_uring takes RLIMIT_NOFILE when an
    // accept is submitted, so the multishot accept armed at start-up must
    // already see it. Descriptors then run out for real (below), not by
    // lowering the limit under an armed accept.
    let open_fds = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let original = nofile();
    let restore = RestoreLimit(original);
    set_nofile(libc::rlimit {
        rlim_cur: open_fds + 256,
        rlim_max: original.rlim_max,
    });

    let gw = Gateway::start(
        GatewaySpec {
            stats_file: Some(path.clone()),
            ..spec()
        },
        keys(),
    )
    .expect("the gateway starts");
    let addr = gw.local_addr();
    let stats = StatsReader::open(&path).expect("the stats file");
    let value = |label: &str| stats.snapshot().reactor(0, label);

    // One session, logged on before the descriptors run out; a long
    // keepalive, so that it needs no heartbeat during the test.
    let mut trader = conn_from(HONEST, addr);
    let f = trader.logon_frame(0, 1, 60_000);
    trader.send(&f);
    let ack = trader.recv().expect("a reply to Logon");
    assert_eq!(
        template(&ack),
        wire::LogonAck::TEMPLATE_ID,
        "logon accepted"
    );

    // The flood's sockets exist before the descriptors run out (connecting
    // one needs no new descriptor); then only SPARE_FDS are left.
    let flood: Vec<TcpStream> = (0..QUEUED).map(|_| bound_socket(FLOOD).unwrap()).collect();
    let fillers = exhaust_descriptors(SPARE_FDS as usize);
    for s in &flood {
        connect(s, addr).expect("the kernel queues the connection");
    }
    // The gateway takes the spare descriptors, then accept fails.
    let t0 = Instant::now();
    while value("accept_emfile").unwrap_or(0) == 0 && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }

    // Not spinning: the reactor's turns over 500 ms stay far below what a
    // reactor re-arming a failing accept every turn does.
    let turns_before = value("turns").expect("turns");
    std::thread::sleep(Duration::from_millis(500));
    let turns = value("turns").unwrap() - turns_before;
    eprintln!(
        "turns in 500 ms with descriptors exhausted: {turns}; accept_emfile {:?}",
        value("accept_emfile")
    );
    assert!(
        turns < TURNS_IN_WINDOW_MAX,
        "the reactor turned {turns} times in 500 ms while out of descriptors (spinning)"
    );

    // The session already logged on is unaffected.
    trader.send_order(1, 100, 1, 1, 0);
    let f = trader.recv().expect("an answer to the order");
    assert_eq!(accepted(&f).0, 1);

    let emfile = value("accept_emfile").expect("the accept_emfile counter");
    assert!(emfile > 0, "accept never reported EMFILE");

    // Descriptors back: the flood drains and a new logon succeeds.
    drop(fillers);
    drop(restore);
    drop(flood);
    let mut late = conn_from(HONEST, addr);
    let f = late.logon_frame(0, 1, 1000);
    late.send(&f);
    let reply = late.recv().expect("a reply to Logon");
    assert_eq!(
        template(&reply),
        wire::LogonAck::TEMPLATE_ID,
        "logon accepted"
    );

    let report = finish(gw);
    let u = &report.reactors[0].uring;
    assert!(u.accept_emfile >= emfile, "{u:?}");
    assert_eq!(u.accept_errors, 0, "{u:?}");
}
