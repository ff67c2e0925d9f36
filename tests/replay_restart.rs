//! Issue 10, item 4: a Logon captured before a restart is refused after
//! it. The nonce cache is in memory; what survives the restart is the
//! audit journal, whose LogonAccepted records give each key's replay floor.

mod common;

use std::io::Read;

use common::net::*;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::journal::{self, AuditEvent, Journal};
use ordergate::wire::codes::LogonRejectReason as LR;
use ordergate::wire::{self, GatewayFrame};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ordergate-replay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit.journal")
}

/// One frame as it came off the wire, not checked by a client session
/// (the replaying peer never logged on itself). None at EOF.
fn raw_frame(c: &mut Conn) -> Option<Vec<u8>> {
    loop {
        if let Some(f) = c.r.next_frame() {
            return Some(f.expect("well-formed").to_vec());
        }
        match c.s.read(c.r.spare()) {
            Ok(0) => return None,
            Ok(n) => c.r.filled(n),
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn a_logon_captured_before_a_restart_is_refused_after_it() {
    let path = temp("restart");
    let spec = || GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_capacity: 1024,
        ..spec()
    };

    // The victim logs on; the attacker captures the Logon's bytes.
    let gw = Gateway::start(spec(), keys()).unwrap();
    let mut victim = Conn::connect(gw.local_addr(), TRADER);
    let captured = victim.logon_frame(0, 1, 1000);
    victim.send(&captured);
    assert_eq!(
        template(&victim.recv().unwrap()),
        wire::LogonAck::TEMPLATE_ID
    );
    gw.shutdown();

    // A new gateway on the same journal, well within the skew window: the
    // floor of key TRADER is the captured Logon's request time.
    let gw = Gateway::start(spec(), keys()).unwrap();
    let floors = gw.logon_floors.clone().expect("read from the journal");
    assert_eq!((floors.book.len(), floors.logons), (1, 1));
    assert_eq!(
        floors.book.floor(TRADER),
        match wire::decode_client(&captured).unwrap() {
            wire::ClientFrame::Logon(l) => l.request_time_ns(),
            _ => unreachable!(),
        }
    );
    let mut eve = Conn::connect(gw.local_addr(), TRADER);
    eve.send(&captured);
    let reply = raw_frame(&mut eve).expect("a reply to the replayed Logon");
    match wire::decode_gateway(&reply).unwrap() {
        GatewayFrame::LogonReject(r) => assert_eq!(r.reason(), LR::STALE_LOGON.wire()),
        other => panic!("the replayed Logon was not refused: {other:?}"),
    }
    assert!(raw_frame(&mut eve).is_none(), "closed after the refusal");

    // The key holder logs on with a fresh Logon (a later request time).
    let mut fresh = Conn::connect(gw.local_addr(), TRADER);
    fresh.logon(0);
    let report = gw.shutdown();
    let c = &report.reactors[0].counters;
    assert_eq!(c.logons_stale, 1, "counted (stats id 72)");
    assert_eq!(c.logon_reject(LR::STALE_LOGON), 1);
    assert_eq!(c.logon_reject(LR::REPLAYED_NONCE), 0);
    assert_eq!(c.logons_accepted, 1);
    assert!(
        ordergate::cli::summary(&report, std::time::Duration::from_secs(1))
            .contains("logon replay floor: 1 logons refused STALE_LOGON"),
    );

    // The journal holds each accepted Logon's request time, and the
    // refusal (folded, as every pre-auth refusal).
    let mut text = Vec::new();
    journal::show(&path, false, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let accepted = text
        .lines()
        .filter(|l| l.contains(" LogonAccepted "))
        .count();
    assert_eq!(accepted, 2, "{text}");
    assert!(
        text.lines()
            .filter(|l| l.contains(" LogonAccepted "))
            .all(|l| l.contains(" request_time=")),
        "{text}"
    );
    assert!(text.contains("reason=STALE_LOGON"), "{text}");
    journal::verify(&path).expect("the journal verifies");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Within one run the nonce cache refuses a replay as before
/// (REPLAYED_NONCE): the floor is not what answers it.
#[test]
fn within_a_run_a_replay_is_still_a_replayed_nonce() {
    let path = temp("same-run");
    let gw = Gateway::start(
        GatewaySpec {
            audit_journal: Some(path.clone()),
            audit_capacity: 1024,
            ..spec()
        },
        keys(),
    )
    .unwrap();
    let mut victim = Conn::connect(gw.local_addr(), TRADER);
    let captured = victim.logon_frame(0, 1, 1000);
    victim.send(&captured);
    assert_eq!(
        template(&victim.recv().unwrap()),
        wire::LogonAck::TEMPLATE_ID
    );
    let mut eve = Conn::connect(gw.local_addr(), TRADER);
    eve.send(&captured);
    let reply = raw_frame(&mut eve).unwrap();
    match wire::decode_gateway(&reply).unwrap() {
        GatewayFrame::LogonReject(r) => assert_eq!(r.reason(), LR::REPLAYED_NONCE.wire()),
        other => panic!("{other:?}"),
    }
    let report = gw.shutdown();
    assert_eq!(report.reactors[0].counters.logons_stale, 0);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// A journal segment that cannot be read to its end stops the start,
/// naming it: the floors it holds cannot be known (docs/JOURNAL.md,
/// "Replay floors"). On main the gateway started on it.
#[test]
fn a_corrupt_earlier_segment_stops_the_start_naming_it() {
    let path = temp("corrupt");
    {
        let mut j = Journal::open_segments(&path, 64, true).unwrap();
        for n in 0..100 {
            j.append(&AuditEvent::reload(1_764_000_000_000_000_000 + n, 1))
                .unwrap();
        }
        j.flush().unwrap();
    }
    assert!(path.with_extension("journal.1").exists());
    // Record 10 of segment 0 edited (its commit no longer matches).
    let mut image = std::fs::read(&path).unwrap();
    image[journal::format::record_offset(10) as usize + 50] ^= 1;
    std::fs::write(&path, image).unwrap();
    let spec = GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_capacity: 64,
        ..spec()
    };
    let err = match Gateway::start(spec, keys()) {
        Ok(gw) => {
            gw.shutdown();
            panic!("the gateway started on a corrupt journal segment")
        }
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("{}: record 10", path.display())) && err.contains("replay floors"),
        "{err}"
    );
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Journals written before version 3 have no request time in their
/// LogonAccepted records: such a logon's floor is its time plus the skew
/// (the latest request time the gateway could have accepted then). A Gap
/// (events lost to a full audit ring, logons among them perhaps) raises
/// every key's floor the same way.
#[test]
fn older_logon_records_and_gaps_give_floors_by_their_time() {
    use ordergate::engine::SessionId;
    const T: u64 = 1_764_000_000_000_000_000;
    const SKEW: u64 = 5_000_000_000;
    let path = temp("legacy");
    {
        let mut j = Journal::open(&path, 64).unwrap();
        let s = SessionId::new(0, 1, 1);
        // As a build before version 3 wrote it: no request time.
        j.append(&AuditEvent::logon_accepted(T, s, 7, journal::ADDR_NONE))
            .unwrap();
        j.append(
            &AuditEvent::logon_accepted(T + 1, s, 8, journal::ADDR_NONE)
                .with_request_time(T - 3_000_000_000),
        )
        .unwrap();
        j.append(&AuditEvent::gap(T - 100 * SKEW, 0, 5)).unwrap();
        j.flush().unwrap();
    }
    let f = journal::read_logon_floors(&path, SKEW, T).unwrap();
    assert_eq!((f.logons, f.logons_without_request_time, f.gaps), (2, 1, 1));
    assert_eq!(f.book.floor(7), T + SKEW);
    assert_eq!(f.book.floor(8), T - 3_000_000_000);
    assert_eq!(
        f.book.floor(9),
        T - 99 * SKEW,
        "the gap's floor, for every key"
    );
    assert!(f.ahead.is_empty(), "{:?}", f.ahead);
    // Read with a clock a minute behind, key 7's floor is ahead of it.
    let f = journal::read_logon_floors(&path, SKEW, T - 60 * 1_000_000_000).unwrap();
    assert_eq!(f.ahead, [(7, T + SKEW), (8, T - 3_000_000_000)]);
    assert!(f.describe().contains("key 7's floor"), "{}", f.describe());
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// The floor in the sans-I/O session: a Logon not later than the key's
/// floor is refused STALE_LOGON (counted), a later one is accepted, other
/// keys are not touched; and a key a reload removes and adds back starts
/// its new nonce cache with the floor of its last accepted logon, so that
/// logon cannot be replayed (on main: accepted, its nonce forgotten).
#[test]
fn sans_io_the_floor_refuses_what_is_not_later_and_survives_a_reload() {
    use common::{KEY_CANCEL_ONLY, KEY_TRADER, Pair, T0, logon_reject_reason};
    use ordergate::limits::FloorBook;
    use ordergate::session::{GatewayConfig, Shared};
    let mut book = FloorBook::new();
    book.raise(KEY_TRADER, T0);
    let config = GatewayConfig {
        session_msgs_per_sec: 1_000_000,
        session_burst: 1_000_000,
        ..GatewayConfig::default()
    };
    let shared = Shared::with_logon_floors(config, common::keys(), [7; 32], book);
    let peer = "192.0.2.10".parse().unwrap();

    // Request time T0, the floor itself: refused.
    let mut stale = Pair::new(&shared, KEY_TRADER, 64);
    let f = stale.logon_frame(1000, 1, 0);
    stale.send(&f);
    assert_eq!(logon_reject_reason(&stale.frames()), LR::STALE_LOGON.wire());
    assert_eq!(stale.counters.logons_stale, 1);
    assert_eq!(stale.counters.logon_reject(LR::STALE_LOGON), 1);
    // One nanosecond later: accepted. Another key has no floor.
    let mut fresh = Pair::at(&shared, KEY_TRADER, 64, peer, T0 + 1);
    let captured = fresh.logon_frame(1000, 1, 0);
    fresh.send(&captured);
    assert_eq!(template_of(&fresh.frames()[0]), wire::LogonAck::TEMPLATE_ID);
    let mut other = Pair::at(&shared, KEY_CANCEL_ONLY, 64, peer, T0 - 1);
    other.logon(0);
    assert_eq!(fresh.counters.logons_stale + other.counters.logons_stale, 0);

    // The key removed by a reload, then added back: a new nonce cache.
    use ordergate::wire::codes::{Environment, Scopes};
    let without = vec![common::unthrottled_key_for(
        KEY_CANCEL_ONLY,
        common::SECRET,
        Scopes::CANCEL,
        Environment::Production,
    )];
    shared.publish_keys(ordergate::auth::keys::KeyTable::from_entries(without).unwrap());
    assert_eq!(
        shared.book_floor(KEY_TRADER),
        T0 + 1,
        "kept while the key is away"
    );
    shared.publish_keys(common::keys());
    let mut replay = Pair::at(&shared, KEY_TRADER, 64, peer, T0 + 2);
    replay.send(&captured);
    assert_eq!(
        logon_reject_reason(&replay.frames()),
        LR::STALE_LOGON.wire()
    );
}

fn template_of(f: &[u8]) -> u16 {
    u16::from_le_bytes([f[6], f[7]])
}
