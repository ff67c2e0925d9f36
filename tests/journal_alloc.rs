//! A reactor's side of the audit journal allocates nothing: building any
//! `AuditEvent`, `AuditSink::record` (ring free or full, gap pending or not)
//! and `flush_gap`, `JournalHealth::is_healthy`, and the journal figures a
//! reactor copies at each stats publish.

use ordergate::engine::SessionId;
use ordergate::journal::{AuditEvent, AuditSink, JournalHealth, OpenKind, from_ip};
use ordergate::ring;
use ordergate::wire::codes::{LogonRejectReason, TerminateReason};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

#[test]
fn recording_audit_events_allocates_nothing() {
    let (tx, mut rx) = ring::channel::<AuditEvent>(64);
    let mut sink = AuditSink::new(tx);
    let health = JournalHealth::new();
    let addr = from_ip("10.0.0.1".parse().unwrap());

    let before = allocations();
    let mut taken = 0u64;
    for lap in 0..1_000u64 {
        let s = SessionId::new(1, lap as u16, 1);
        let events = [
            AuditEvent::logon_accepted(lap, s, 7, addr),
            AuditEvent::logon_rejected(lap, s, 7, addr, LogonRejectReason::AUTH_FAILED),
            AuditEvent::terminated(lap, s, 7, addr, TerminateReason::LOGOUT),
            AuditEvent::throttle_breach(lap, s, 7, addr, 100),
            AuditEvent::lockout(lap, 1, addr, 5),
            AuditEvent::reload(lap, 3),
            AuditEvent::reload_failed(lap, 12),
            AuditEvent::revoke(lap, 7, 2),
            AuditEvent::kill(lap, 7, s, TerminateReason::SHUTDOWN, 1),
            AuditEvent::journal_opened(lap, OpenKind::Reopened, 0),
            AuditEvent::logon_timeout(lap, s, addr),
        ];
        // Overfill the ring (drops counted), then drain half of it so the
        // next lap pushes a Gap first.
        for _ in 0..8 {
            for e in events {
                sink.record(e);
            }
        }
        sink.flush_gap(lap, 1);
        taken += rx.drain(32, |e| assert!(e.time_ns <= lap)) as u64;
        assert!(health.is_healthy());
        assert_eq!(health.figures().failed, 0);
    }
    assert_eq!(allocations() - before, 0, "the reactor side allocated");
    assert!(taken > 0);
}
