//! The audit journal wired into a running gateway: security events are
//! recorded in order and verify; a journal that cannot be written refuses
//! new logons (fail closed).

mod common;

use common::net::*;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::journal;
use ordergate::wire::codes::{LogonRejectReason as LR, TerminateReason as TR};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ordergate-audit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("audit.journal")
}

#[test]
fn logons_rejects_terminates_and_revocations_are_journaled_and_verify() {
    let path = temp("events");
    let spec = GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_capacity: 1024,
        ..spec()
    };
    let gw = Gateway::start(spec, keys()).unwrap();
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    let mut bad = Conn::connect(addr, 999);
    let f = bad.logon_frame(0, 1, 1000);
    bad.send(&f);
    assert_eq!(logon_reject(&bad.recv().unwrap()), LR::AUTH_FAILED.wire());
    gw.control().kill(TRADER).unwrap();
    assert_eq!(terminate(&a.recv().unwrap()), TR::KEY_REVOKED.wire());
    a.expect_closed();
    gw.shutdown();

    let report = journal::verify(&path).expect("the journal verifies");
    let mut text = Vec::new();
    journal::show(&path, false, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    // One reactor's events keep their order; the control thread's Kill may
    // land before or after the Terminated it caused (two producers). The
    // refused logon (pre-auth) is folded into an aggregate, written when
    // its window ends or at stop: anywhere after the refusal.
    let reactor: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|k| *k != "Kill" && *k != "PreAuthAggregate")
        .collect();
    assert_eq!(
        reactor,
        ["JournalOpened", "LogonAccepted", "Terminated"],
        "journal:\n{text}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "Kill").count(), 1, "{text}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "PreAuthAggregate").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("PreAuthAggregate key=999 addr=127.0.0.1 reason=AUTH_FAILED session=- reactor=0 detail=1 of_kind=LogonRejected"),
        "{text}"
    );
    assert!(
        text.contains("Terminated key=1 addr=127.0.0.1 reason=KEY_REVOKED"),
        "{text}"
    );
    assert_eq!(report.records, 5, "opened + 4 events");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_full_journal_fails_closed_new_logons_are_refused() {
    let path = temp("full");
    // Room for the JournalOpened record and two more, and no rollover.
    let spec = GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_capacity: 3,
        audit_rollover: false,
        ..spec()
    };
    let gw = Gateway::start(spec, keys()).unwrap();
    let addr = gw.local_addr();
    let health = gw.journal_health.clone().unwrap();
    let mut logons = 0;
    let mut refused = None;
    for _ in 0..20 {
        let mut c = Conn::connect(addr, TRADER);
        let f = c.logon_frame(0, 1, 1000);
        c.send(&f);
        let reply = c.recv().unwrap();
        if template(&reply) == ordergate::wire::LogonAck::TEMPLATE_ID {
            logons += 1;
            // Give the journal thread time to write and find itself full.
            std::thread::sleep(std::time::Duration::from_millis(20));
        } else {
            refused = Some(logon_reject(&reply));
            break;
        }
    }
    assert!(!health.is_healthy(), "the journal reports itself failed");
    assert_eq!(
        refused,
        Some(LR::SESSION_LIMIT.wire()),
        "after {logons} logons"
    );
    assert!(logons >= 2);
    gw.shutdown();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Every session end is journaled, whatever its cause: a logged-on session
/// whose peer simply closes the connection leaves a Terminated record with
/// reason NONE (main journaled nothing for it).
#[test]
fn a_session_ended_by_its_peer_is_journaled() {
    let path = temp("peer-close");
    let spec = GatewaySpec {
        audit_journal: Some(path.clone()),
        audit_capacity: 1024,
        ..spec()
    };
    let gw = Gateway::start(spec, keys()).unwrap();
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    a.logon(0);
    drop(a);
    // The close reaches the reactor before the stop's Terminate SHUTDOWN.
    std::thread::sleep(std::time::Duration::from_millis(200));
    gw.shutdown();
    let mut text = Vec::new();
    journal::show(&path, false, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let ends: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" Terminated "))
        .collect();
    assert_eq!(ends.len(), 1, "journal:\n{text}");
    assert!(
        ends[0].contains("Terminated key=1 addr=127.0.0.1 reason=NONE"),
        "{}",
        ends[0]
    );
}
