//! The journal thread ([`JournalWriter`]), the health flag reactors check
//! before admitting a logon ([`JournalHealth`]), and the producer-side
//! helper that turns a full audit ring into an explicit gap ([`AuditSink`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::appender::{Journal, JournalError, wall_ns};
use super::event::AuditEvent;
use super::{FLUSH_INTERVAL_NS, FLUSH_RECORDS_MAX, IDLE_SLEEP_NS, RECOVERY_WINDOW_RECORDS};
use crate::constants::RING_BATCH_MAX;
use crate::ring::{Consumer, Producer};

/// Why the journal stopped taking records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FailReason {
    /// Every slot is used: rotate the file.
    Full = 1,
    /// A write to the storage failed.
    WriteError = 2,
    /// A flush (msync) failed: records may not be durable, and after a
    /// failed msync the kernel may have dropped the dirty pages, so no later
    /// flush can prove them durable either.
    FlushError = 3,
}

impl FailReason {
    const fn from_code(code: u8) -> Option<FailReason> {
        match code {
            1 => Some(FailReason::Full),
            2 => Some(FailReason::WriteError),
            3 => Some(FailReason::FlushError),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            FailReason::Full => "journal full",
            FailReason::WriteError => "journal write error",
            FailReason::FlushError => "journal flush error",
        }
    }

    fn of(error: &JournalError, flushing: bool) -> FailReason {
        match error {
            JournalError::Full { .. } => FailReason::Full,
            _ if flushing => FailReason::FlushError,
            _ => FailReason::WriteError,
        }
    }
}

/// Shared between the journal thread (the only writer) and every reactor
/// (readers). Fail closed: while [`is_healthy`](Self::is_healthy) is false
/// the session code refuses new logons.
#[derive(Debug, Default)]
pub struct JournalHealth {
    /// Set once, never cleared (a restart with a rotated file clears it).
    failed: AtomicBool,
    /// A [`FailReason`] code; stored before `failed`.
    reason: AtomicU8,
    /// Records in the journal (appended; durable or not).
    records: AtomicU64,
    /// Records covered by a completed flush.
    durable: AtomicU64,
    /// Events drained after the failure and not journaled.
    lost: AtomicU64,
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
}

/// When the journal thread flushes. Whichever comes first: `records_max`
/// unflushed records, or an unflushed record `interval_ns` old; and always
/// on shutdown. `records_max` may not exceed [`RECOVERY_WINDOW_RECORDS`]
/// (the residue `Journal::open` accepts after a crash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    pub records_max: u64,
    pub interval_ns: u64,
}

impl Default for FlushPolicy {
    fn default() -> FlushPolicy {
        FlushPolicy {
            records_max: FLUSH_RECORDS_MAX,
            interval_ns: FLUSH_INTERVAL_NS,
        }
    }
}

/// What the journal thread did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Records appended by this thread (the JournalOpened record included).
    pub appended: u64,
    /// Flushes made.
    pub flushes: u64,
    /// Longest flush, ns.
    pub flush_ns_max: u64,
    /// Gap records appended, and the events they account for.
    pub gaps: u64,
    pub gap_events: u64,
    /// Events drained after a failure and not journaled.
    pub lost: u64,
    /// Records in the journal at the end.
    pub records: u64,
    pub failure: Option<FailReason>,
}

/// The journal thread.
pub struct JournalWriter {
    journal: Journal,
    inputs: Vec<Consumer<AuditEvent>>,
    health: Arc<JournalHealth>,
    policy: FlushPolicy,
    stats: JournalStats,
    /// When the oldest unflushed record was appended.
    unflushed_since: Option<Instant>,
}

impl JournalWriter {
    /// [`spawn_with`](Self::spawn_with) and the default [`FlushPolicy`].
    pub fn spawn(
        journal: Journal,
        inputs: Vec<Consumer<AuditEvent>>,
        health: Arc<JournalHealth>,
        stop: Arc<AtomicBool>,
    ) -> JoinHandle<JournalStats> {
        JournalWriter::spawn_with(journal, inputs, health, stop, FlushPolicy::default())
    }

    /// Starts the journal thread. It appends a JournalOpened record, then
    /// drains every ring (at most `RING_BATCH_MAX` events each per turn),
    /// appends, and flushes per `policy`; it sleeps `IDLE_SLEEP_NS` when a
    /// turn finds nothing. On `stop` it drains what is left, flushes, and
    /// returns its stats. Set `stop` only after the producers have stopped
    /// pushing, or their last events may be left in the rings.
    ///
    /// On the first append or flush error it marks `health` failed and
    /// appends nothing more (it keeps draining, counting `lost`).
    ///
    /// # Panics
    ///
    /// If `policy.records_max` is 0 or above `RECOVERY_WINDOW_RECORDS`, or
    /// the thread cannot be spawned.
    pub fn spawn_with(
        journal: Journal,
        inputs: Vec<Consumer<AuditEvent>>,
        health: Arc<JournalHealth>,
        stop: Arc<AtomicBool>,
        policy: FlushPolicy,
    ) -> JoinHandle<JournalStats> {
        assert!(
            policy.records_max >= 1 && policy.records_max <= RECOVERY_WINDOW_RECORDS,
            "flush every 1..={RECOVERY_WINDOW_RECORDS} records, not {}",
            policy.records_max
        );
        let mut writer = JournalWriter {
            journal,
            inputs,
            health,
            policy,
            stats: JournalStats::default(),
            unflushed_since: None,
        };
        thread::Builder::new()
            .name("ordergate-journal".into())
            .spawn(move || writer.run(&stop))
            .expect("spawn the journal thread")
    }

    fn run(&mut self, stop: &AtomicBool) -> JournalStats {
        self.health
            .records
            .store(self.journal.records(), Ordering::Relaxed);
        self.health
            .durable
            .store(self.journal.flushed_records(), Ordering::Relaxed);
        let opened = self.journal.opened_event(wall_ns());
        self.append(&opened);
        // The open is made durable at once: it is the record that says the
        // gateway (re)started.
        self.flush();
        loop {
            // Read `stop` before draining: everything pushed before it was
            // set is drained in this turn or an earlier one.
            let stopping = stop.load(Ordering::Acquire);
            let work = self.turn();
            if stopping && work == 0 {
                break;
            }
            if work == 0 {
                thread::sleep(Duration::from_nanos(IDLE_SLEEP_NS));
            }
        }
        self.flush();
        self.stats.records = self.journal.records();
        self.stats.failure = self.health.failure();
        self.stats
    }

    /// One pass over every ring; returns the events taken.
    fn turn(&mut self) -> usize {
        let mut work = 0;
        let mut inputs = std::mem::take(&mut self.inputs);
        for input in &mut inputs {
            work += input.drain(RING_BATCH_MAX, |event| self.append(&event));
        }
        self.inputs = inputs;
        if let Some(since) = self.unflushed_since
            && since.elapsed() >= Duration::from_nanos(self.policy.interval_ns)
        {
            self.flush();
        }
        work
    }

    fn append(&mut self, event: &AuditEvent) {
        if !self.health.is_healthy() {
            self.stats.lost += 1;
            self.health.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.journal.append(event) {
            Ok(index) => {
                self.stats.appended += 1;
                if event.kind == super::AuditKind::Gap {
                    self.stats.gaps += 1;
                    self.stats.gap_events += u64::from(event.detail);
                }
                self.health.records.store(index + 1, Ordering::Relaxed);
                if self.unflushed_since.is_none() {
                    self.unflushed_since = Some(Instant::now());
                }
                if self.journal.unflushed_records() >= self.policy.records_max {
                    self.flush();
                }
            }
            Err(error) => {
                self.health.fail(FailReason::of(&error, false));
                self.stats.lost += 1;
                self.health.lost.fetch_add(1, Ordering::Relaxed);
                // What was appended before the failure is still made durable.
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if self.journal.unflushed_records() == 0 {
            self.unflushed_since = None;
            return;
        }
        let start = Instant::now();
        match self.journal.flush() {
            Ok(()) => {
                let took = start.elapsed().as_nanos() as u64;
                self.stats.flushes += 1;
                self.stats.flush_ns_max = self.stats.flush_ns_max.max(took);
                self.health
                    .durable
                    .store(self.journal.flushed_records(), Ordering::Relaxed);
                self.unflushed_since = None;
            }
            Err(error) => {
                self.health.fail(FailReason::of(&error, true));
                self.unflushed_since = None;
            }
        }
    }
}

/// A reactor's end of its audit ring. Never blocks, allocates or makes a
/// syscall. When the ring is full the event is counted, not lost silently:
/// the count goes out as a [`Gap`](super::AuditKind::Gap) record ahead of the
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
