//! "Hold under attack", attack 1: traffic from peers that never
//! authenticated must not fill the audit journal, and a journal that fills
//! must not refuse logons.
//!
//! - 3,000 connections from 127.0.0.1 that send `ff ff` (not a frame) are
//!   journaled as a few aggregate records whose counts sum to 3,000, and a
//!   valid logon right after succeeds.
//! - Authenticated events past a tiny segment capacity roll over to a new
//!   segment: logons keep succeeding, and `audit verify` follows the chain
//!   across both segments and names a record removed at the boundary.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use common::net::*;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::journal;
use ordergate::wire::codes::LogonRejectReason as LR;

const GARBAGE_CONNECTIONS: u64 = 3_000;
const IDLE_CONNECTIONS: u64 = 20;
/// What the garbage flood may add to the journal, all records counted
/// (JournalOpened, the aggregates, the valid logon and its Terminate at
/// stop): one aggregate per second of flood at most, plus a handful.
const FLOOD_RECORDS_MAX: u64 = 40;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ordergate-journal-flood-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit.journal")
}

/// Every committed record of one segment file, as `show --json` objects.
fn records(path: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    journal::show(path, true, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// One connection that sends two bytes no frame can start with, then waits
/// for the gateway's answer (LogonReject MALFORMED) and its close.
fn garbage(addr: std::net::SocketAddr) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&[0xff, 0xff]).unwrap();
    let mut reply = Vec::new();
    // The gateway answers and closes; a reset after its answer is fine.
    let _ = s.read_to_end(&mut reply);
    assert!(reply.len() >= 8, "a LogonReject, got {reply:?}");
    assert_eq!(logon_reject(&reply), LR::MALFORMED.wire());
}

#[test]
fn garbage_connections_are_aggregated_and_a_valid_logon_succeeds() {
    let path = temp("garbage");
    let spec = GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_capacity: 1 << 14,
        ..spec()
    };
    let gw = Gateway::start(spec, keys()).unwrap();
    let addr = gw.local_addr();
    for _ in 0..GARBAGE_CONNECTIONS {
        garbage(addr);
    }
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    let health = gw.journal_health.clone().unwrap();
    assert!(health.is_healthy());
    let stats = gw.shutdown().journal.expect("a journal");

    let all = records(&path);
    let text: Vec<String> = all.iter().map(|r| r.to_string()).collect();
    let head = text[..text.len().min(8)].join("\n");
    assert!(
        all.len() as u64 <= FLOOD_RECORDS_MAX,
        "the journal holds {} records after {GARBAGE_CONNECTIONS} garbage connections, \
         at most {FLOOD_RECORDS_MAX} wanted; first:\n{head}",
        all.len()
    );
    let aggregated: u64 = all
        .iter()
        .filter(|r| r["kind"] == "PreAuthAggregate")
        .map(|r| {
            assert_eq!(r["of_kind"], "LogonRejected", "{r}");
            assert_eq!(r["reason"], "MALFORMED", "{r}");
            assert_eq!(r["addr"], "127.0.0.1", "{r}");
            assert!(r["last_time_ns"].as_u64() >= r["time_ns"].as_u64(), "{r}");
            r["detail"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(aggregated, GARBAGE_CONNECTIONS, "aggregate counts");
    let aggregates = all
        .iter()
        .filter(|r| r["kind"] == "PreAuthAggregate")
        .count() as u64;
    eprintln!(
        "{GARBAGE_CONNECTIONS} garbage connections: {} records, {aggregates} aggregates",
        all.len()
    );
    // The counters say the same (stats file ids 607, 608; serve's summary).
    assert_eq!(stats.preauth_events, GARBAGE_CONNECTIONS);
    assert_eq!(stats.aggregates, aggregates);
    assert_eq!((stats.preauth_overflow, stats.gap_events), (0, 0));
    assert_eq!(stats.failure, None);
    assert_eq!(
        all.iter().filter(|r| r["kind"] == "LogonRejected").count(),
        0,
        "no per-connection record"
    );
    assert_eq!(
        all.iter().filter(|r| r["kind"] == "LogonAccepted").count(),
        1
    );
    journal::verify(&path).expect("the journal verifies");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Logon, Logout, wait for the close: three journal records per cycle
/// (LogonAccepted, Terminated LOGOUT), all from an authenticated peer.
fn logon_logout(addr: std::net::SocketAddr) -> Result<(), u16> {
    let mut c = Conn::connect(addr, TRADER);
    let f = c.logon_frame(0, 1, 1000);
    c.send(&f);
    let reply = c.recv().expect("a reply to Logon");
    if template(&reply) != ordergate::wire::LogonAck::TEMPLATE_ID {
        return Err(logon_reject(&reply));
    }
    let lo =
        c.c.seal(ordergate::wire::Logout { seq: 0, reason: 0 }.to_bytes());
    c.send(&lo);
    let _ = c.recv();
    c.expect_closed();
    Ok(())
}

#[test]
fn a_full_segment_rolls_over_and_verify_follows_the_chain() {
    const CAPACITY: u64 = 64;
    const CYCLES: u64 = 50;
    let path = temp("rollover");
    let spec = GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_capacity: CAPACITY,
        ..spec()
    };
    let gw = Gateway::start(spec, keys()).unwrap();
    let addr = gw.local_addr();
    for cycle in 0..CYCLES {
        if let Err(reason) = logon_logout(addr) {
            panic!(
                "logon {cycle} of {CYCLES} refused with reason {reason} \
                 (SESSION_LIMIT is {}): the journal of {CAPACITY} records filled",
                LR::SESSION_LIMIT.wire()
            );
        }
    }
    let health = gw.journal_health.clone().unwrap();
    assert!(health.is_healthy());
    let stats = gw.shutdown().journal.expect("a journal");
    // JournalOpened + 50 × (LogonAccepted, Terminated LOGOUT) = 101 records,
    // and segment 1's SegmentStart: 64 in segment 0, 38 in segment 1.
    assert_eq!((stats.rollovers, stats.rollover_failures), (1, 0));
    assert_eq!((stats.segment, stats.segment_records), (1, 38));
    assert_eq!(stats.records, 102);
    assert_eq!(
        stats.high_water, 1,
        "segment 0 crossed 90%, segment 1 did not"
    );
    assert_eq!(stats.failure, None);

    let mut second = path.clone().into_os_string();
    second.push(".1");
    let second = PathBuf::from(second);
    assert!(second.exists(), "a second segment {}", second.display());
    let first = records(&path);
    assert_eq!(first.len() as u64, CAPACITY, "the first segment is full");
    let next = records(&second);
    assert_eq!(next[0]["kind"], "SegmentStart", "{}", next[0]);
    assert_eq!(
        next[0]["prev_segment_hash"],
        first.last().unwrap()["hash"],
        "the new segment starts with the previous segment's head"
    );
    // Global record indices continue across the boundary.
    assert_eq!(next[0]["index"], CAPACITY);

    // A restart continues in the latest segment.
    let spec = GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_capacity: CAPACITY,
        ..common::net::spec()
    };
    let gw = Gateway::start(spec, keys()).unwrap();
    logon_logout(gw.local_addr()).expect("a logon after the restart");
    gw.shutdown();
    let next = records(&second);
    let reopened = &next[next.len() - 3];
    assert_eq!(reopened["kind"], "JournalOpened", "{reopened}");
    assert_eq!(reopened["reason"], "REOPENED", "{reopened}");

    let report = journal::verify(&path).expect("the chain verifies");
    let total = CAPACITY + next.len() as u64;
    assert_eq!(report.records, total);
    assert_eq!(report.segments, 2);

    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = journal::audit_main(&args, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    let file = path.to_str().unwrap();
    let (code, out, err) = run(&["verify", file]);
    eprint!("{out}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("records {total} ")), "{out}");
    assert!(out.contains("segments 2"), "{out}");

    // Remove the last record of the first segment (zeroed: the file alone
    // still verifies, a chopped tail) — the chain across segments breaks.
    let mut bytes = std::fs::read(&path).unwrap();
    let end = bytes.len();
    bytes[end - journal::format::RECORD_SIZE..].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    let e = journal::verify(&path).expect_err("a removed boundary record");
    assert_eq!(e.index, CAPACITY - 1, "{e}");
    let (code, _, err) = run(&["verify", file]);
    eprint!("{err}");
    assert_eq!(code, 1);
    assert!(err.contains(&format!("record {}", CAPACITY - 1)), "{err}");
    assert!(err.contains("audit.journal.1"), "names the segment: {err}");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn logon_timeouts_are_journaled_as_one_aggregate() {
    let path = temp("timeouts");
    let spec = GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_capacity: 1 << 10,
        // Every idle connection is admitted (none refused over the
        // per-address cap): each one times out.
        pending_logons_per_address: IDLE_CONNECTIONS as usize,
        ..spec()
    };
    let gw = Gateway::start(spec, keys()).unwrap();
    let addr = gw.local_addr();
    // Connections that never send a byte: closed at the logon deadline
    // (300 ms in the test spec), without a reply.
    let mut idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    for s in &mut idle {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut byte = [0u8; 1];
        assert!(matches!(s.read(&mut byte), Ok(0) | Err(_)), "closed");
    }
    let stats = gw.shutdown().journal.expect("a journal");
    let all = records(&path);
    let timeouts: Vec<&serde_json::Value> = all
        .iter()
        .filter(|r| r["kind"] == "PreAuthAggregate" && r["of_kind"] == "LogonTimeout")
        .collect();
    let count: u64 = timeouts.iter().map(|r| r["detail"].as_u64().unwrap()).sum();
    assert_eq!(count, IDLE_CONNECTIONS, "{all:?}");
    assert!(
        timeouts.len() <= 2,
        "one aggregate per window: {timeouts:?}"
    );
    assert_eq!(timeouts[0]["addr"], "127.0.0.1");
    assert_eq!(timeouts[0]["reason"], serde_json::Value::Null);
    assert_eq!(stats.preauth_events, IDLE_CONNECTIONS);
    journal::verify(&path).expect("the journal verifies");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
