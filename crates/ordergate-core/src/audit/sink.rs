//! The reactor's end of the audit journal: [`AuditSink`] turns a full
//! audit ring into an explicit gap, and [`JournalHealth`] is the flag and
//! figures the journal thread publishes and every reactor reads (fail
//! closed: no logon while the journal cannot take records). Both are
//! atomics and a ring push: no I/O. The journal thread that drains the
//! rings is the runtime's (`ordergate::journal::JournalWriter`).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use super::event::AuditEvent;
use crate::ring::Producer;

/// Why the journal stopped taking records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FailReason {
    /// Every slot is used and rollover is off: rotate the file.
    Full = 1,
    /// A write to the storage failed.
    WriteError = 2,
    /// A flush (msync) failed: records may not be durable, and after a
    /// failed msync the kernel may have dropped the dirty pages, so no later
    /// flush can prove them durable either.
    FlushError = 3,
    /// The segment was full and the next could not be created (disk full,
    /// a file in the way).
    RolloverFailed = 4,
}

impl FailReason {
    pub const fn from_code(code: u8) -> Option<FailReason> {
        match code {
            1 => Some(FailReason::Full),
            2 => Some(FailReason::WriteError),
            3 => Some(FailReason::FlushError),
            4 => Some(FailReason::RolloverFailed),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            FailReason::Full => "journal full",
            FailReason::WriteError => "journal write error",
            FailReason::FlushError => "journal flush error",
            FailReason::RolloverFailed => "journal rollover failed",
        }
    }
}

/// Shared between the journal thread (the only writer) and every reactor
/// (readers). Fail closed: while [`is_healthy`](Self::is_healthy) is false
/// the session code refuses new logons. The figures are what the reactors
/// publish in the stats file ([`JournalHealth::figures`]).
///
/// The counters are public for the journal thread (`ordergate`'s
/// `JournalWriter`), their only writer; everyone else reads them through
/// [`figures`](Self::figures). The failure flag and its reason are set only
/// through [`fail`](Self::fail), which keeps the two consistent.
#[derive(Debug, Default)]
pub struct JournalHealth {
    /// Set once, never cleared (a restart with a rotated file clears it).
    failed: AtomicBool,
    /// A [`FailReason`] code; stored before `failed`.
    reason: AtomicU8,
    /// Records in the journal, every segment (appended; durable or not).
    pub records: AtomicU64,
    /// Records covered by a completed flush.
    pub durable: AtomicU64,
    /// Events drained after the failure and not journaled.
    pub lost: AtomicU64,
    pub segment: AtomicU64,
    pub segment_records: AtomicU64,
    pub capacity: AtomicU64,
    pub rollovers: AtomicU64,
    pub rollover_failures: AtomicU64,
    pub high_water: AtomicU64,
    pub aggregates: AtomicU64,
    pub preauth_events: AtomicU64,
    pub preauth_overflow: AtomicU64,
    pub preauth_unjournaled: AtomicU64,
    pub checkpoints: AtomicU64,
}

/// The journal's figures as the stats file publishes them (ids 600–612,
/// docs/STATS.md): one snapshot of [`JournalHealth`], the same for every
/// reactor. All zero without a journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalFigures {
    /// Records in the journal, every segment.
    pub records: u64,
    /// Records in the current segment, and its slots.
    pub segment_records: u64,
    pub capacity: u64,
    /// The current segment's number (0: the first file).
    pub segment: u64,
    pub rollovers: u64,
    pub rollover_failures: u64,
    /// Times a segment crossed the high-water mark.
    pub high_water: u64,
    /// PreAuthAggregate records written, and the pre-auth events folded.
    pub aggregates: u64,
    pub preauth_events: u64,
    /// Pre-auth events folded into "other addresses" aggregates because the
    /// address table was full.
    pub preauth_overflow: u64,
    /// Pre-auth events not journaled because rollover is off and the
    /// segment is past its high-water mark (the reserve).
    pub preauth_unjournaled: u64,
    /// Events drained after a failure and not journaled.
    pub lost: u64,
    /// 0 while healthy, else the [`FailReason`] code.
    pub failed: u64,
    /// Checkpoints written under the anchor key since start (0 without
    /// one).
    pub checkpoints: u64,
}

impl JournalHealth {
    pub fn new() -> JournalHealth {
        JournalHealth::default()
    }

    /// Whether the journal still takes records. One Acquire load of a line
    /// written once per flush: cheap enough for every logon.
    #[inline]
    pub fn is_healthy(&self) -> bool {
        !self.failed.load(Ordering::Acquire)
    }

    /// Why it failed, once it has.
    pub fn failure(&self) -> Option<FailReason> {
        if self.is_healthy() {
            return None;
        }
        FailReason::from_code(self.reason.load(Ordering::Relaxed))
    }

    /// Marks the journal failed (the writer does this; an integrator may
    /// too, e.g. if the journal thread cannot be started).
    pub fn fail(&self, reason: FailReason) {
        if self.is_healthy() {
            self.reason.store(reason as u8, Ordering::Relaxed);
        }
        // Release: a reader that sees `failed` sees `reason`.
        self.failed.store(true, Ordering::Release);
    }

    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    pub fn durable_records(&self) -> u64 {
        self.durable.load(Ordering::Relaxed)
    }

    pub fn lost_events(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Every figure, each loaded Relaxed (a reactor calls this once per
    /// stats publish: a dozen loads, no allocation).
    pub fn figures(&self) -> JournalFigures {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        JournalFigures {
            records: load(&self.records),
            segment_records: load(&self.segment_records),
            capacity: load(&self.capacity),
            segment: load(&self.segment),
            rollovers: load(&self.rollovers),
            rollover_failures: load(&self.rollover_failures),
            high_water: load(&self.high_water),
            aggregates: load(&self.aggregates),
            preauth_events: load(&self.preauth_events),
            preauth_overflow: load(&self.preauth_overflow),
            preauth_unjournaled: load(&self.preauth_unjournaled),
            lost: load(&self.lost),
            failed: self.failure().map_or(0, |r| r as u64),
            checkpoints: load(&self.checkpoints),
        }
    }
}

/// A reactor's end of its audit ring. Never blocks, allocates or makes a
/// syscall. When the ring is full the event is counted, not lost silently:
/// the count goes out as a [`Gap`](super::event::AuditKind::Gap) record ahead of the
/// next event that fits (or at the next [`flush_gap`](Self::flush_gap)).
pub struct AuditSink {
    ring: Producer<AuditEvent>,
    /// Events dropped since the last Gap was pushed; saturates at
    /// `u32::MAX`.
    dropped: u32,
}

impl AuditSink {
    pub fn new(ring: Producer<AuditEvent>) -> AuditSink {
        AuditSink { ring, dropped: 0 }
    }

    /// Pushes a pending Gap (stamped with `e`'s time and reactor), then `e`.
    /// Returns whether `e` went in; if not, it is counted in the next Gap.
    #[inline]
    pub fn record(&mut self, e: AuditEvent) -> bool {
        if self.dropped > 0 && !self.flush_gap(e.time_ns, e.reactor) {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        if self.ring.try_push(e).is_err() {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        true
    }

    /// Pushes the pending Gap, if any, alone: a reactor calls it on idle
    /// turns so a gap shows up without waiting for the next event. Returns
    /// whether nothing is pending any more.
    #[inline]
    pub fn flush_gap(&mut self, time_ns: u64, reactor: u16) -> bool {
        if self.dropped == 0 {
            return true;
        }
        if self
            .ring
            .try_push(AuditEvent::gap(time_ns, reactor, self.dropped))
            .is_err()
        {
            return false;
        }
        self.dropped = 0;
        true
    }

    /// Events dropped and not yet reported in a Gap.
    #[inline]
    pub fn dropped(&self) -> u32 {
        self.dropped
    }
}
