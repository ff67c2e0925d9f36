//! `serve` survives connection churn: 1,000 connect/disconnect cycles and
//! 1,000 connections that send garbage end with the same descriptor count
//! and the same memory as the gateway started with.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::secret::Secret;
use ordergate::engine::book::EngineConfig;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::wire::codes::{Environment, Scopes};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// Waits until the gateway has closed its side of every connection.
fn settle(baseline: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = open_fds();
        if n <= baseline || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The descriptor count once it has stopped changing (the warm-up's
/// connections all closed on the gateway's side).
fn quiesce() -> usize {
    let mut last = open_fds();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let n = open_fds();
        if n == last {
            return n;
        }
        last = n;
    }
}

#[test]
fn a_thousand_connects_and_a_thousand_garbage_connections_leak_nothing() {
    let keys = KeyTable::from_entries(vec![
        KeyEntry::new(
            1,
            Secret::from_bytes([1; 32]),
            Scopes::TRADE,
            Environment::Production,
        )
        .with_rate(1000, 100)
        .allow_any(),
    ])
    .unwrap();
    let spec = GatewaySpec {
        engine_config: EngineConfig {
            orders_max: 4096,
            ..EngineConfig::default()
        },
        ..GatewaySpec::default()
    };
    let gw = Gateway::start(spec, keys).unwrap();
    let addr = gw.local_addr();

    let malformed_seen = std::cell::Cell::new(0u64);
    let cycle = |garbage: bool, i: usize| {
        let mut s = TcpStream::connect(addr).unwrap();
        if garbage {
            // Alternate: an impossible length prefix (refused at once,
            // LogonReject MALFORMED), and a frame cut short then dropped.
            let bytes: &[u8] = if i.is_multiple_of(2) {
                &[0xFF; 100]
            } else {
                &[0x50, 0x00, 0xFE, 0xCA, 0x44]
            };
            s.write_all(bytes).unwrap();
            if i.is_multiple_of(2) {
                let mut reply = [0u8; 64];
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let n = s.read(&mut reply).unwrap();
                assert_eq!(n, 32, "a LogonReject");
                // MALFORMED; or, when this loop outruns the gateway's
                // closing of earlier connections, SESSION_LIMIT (the slab
                // is momentarily full) or THROTTLED (127.0.0.1 momentarily
                // holds more than pending_logons_per_address connections
                // not logged on).
                match u16::from_le_bytes([reply[12], reply[13]]) {
                    9 => malformed_seen.set(malformed_seen.get() + 1),
                    7 | 8 => {}
                    other => panic!("LogonReject reason {other}"),
                }
            }
        }
    };
    // Warm up: thread stacks, allocator arenas, the kernel's socket caches.
    for i in 0..100 {
        cycle(i % 2 == 0, i);
    }
    let fds_before = quiesce();
    let rss_before = rss_kib();

    for i in 0..1000 {
        cycle(false, i);
    }
    for i in 0..1000 {
        cycle(true, i);
    }
    // A sentinel whose reply proves the gateway has accepted every earlier
    // connection (one listener, accepted in order).
    cycle(true, 0);
    let fds_after = settle(fds_before);
    let rss_after = rss_kib();
    let report = gw.shutdown();
    let r = &report.reactors[0];
    eprintln!(
        "churn: fds {fds_before} -> {fds_after}; rss {rss_before} KiB -> {rss_after} KiB; \
         accepts {}; refused full {}; malformed {}; logon timeouts {}",
        r.uring.accepts,
        r.uring.accepts_refused_full,
        r.counters.logon_rejects[9],
        r.counters.logon_timeouts
    );
    assert_eq!(fds_after, fds_before, "descriptors leaked");
    // Every buffer is preallocated; allow a little allocator noise.
    assert!(
        rss_after <= rss_before + 512,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_eq!(
        r.uring.accepts, 2101,
        "every connection accepted, slot or not"
    );
    assert_eq!(
        r.counters.logon_rejects[9],
        malformed_seen.get(),
        "MALFORMED as the clients saw"
    );
    assert_eq!(r.counters.logon_rejects[7], r.uring.accepts_refused_full);
    assert_eq!(r.counters.logon_rejects[8], r.counters.address_cap_refusals);
}
