//! A reactor's side of the audit journal allocates nothing: building any
//! `AuditEvent`, `AuditSink::record` (ring free or full, gap pending or not)
//! and `flush_gap`, and `JournalHealth::is_healthy`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ordergate::engine::SessionId;
use ordergate::journal::{AuditEvent, AuditSink, JournalHealth, OpenKind, from_ip};
use ordergate::ring;
use ordergate::wire::codes::{LogonRejectReason, TerminateReason};

/// Counts allocations made by the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the thread-local counter is const-initialised, so
// touching it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (via `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

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
    }
    assert_eq!(allocations() - before, 0, "the reactor side allocated");
    assert!(taken > 0);
}
