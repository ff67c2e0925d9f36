//! The journal thread ([`JournalWriter`]). The health flag and figures it
//! publishes ([`JournalHealth`]) and the reactors' end of the audit rings
//! ([`AuditSink`]) are sans-I/O and live in `ordergate_core::audit::sink`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::aggregate::{Aggregator, Folded};
use super::appender::{Journal, JournalError};
use super::event::{AuditEvent, AuditKind, CheckpointKind};
use super::format::Extra;
use super::{FLUSH_INTERVAL_NS, FLUSH_RECORDS_MAX, IDLE_SLEEP_NS, RECOVERY_WINDOW_RECORDS};
use crate::clock::wall_ns;
use crate::constants::{
    JOURNAL_AGGREGATE_OVERFLOW_SLOTS, JOURNAL_AGGREGATE_SLOTS, JOURNAL_AGGREGATE_WINDOW_NS,
    JOURNAL_CHECKPOINT_INTERVAL_NS, JOURNAL_HIGH_WATER_PERCENT, RING_BATCH_MAX,
};
use crate::ring::Consumer;
pub use ordergate_core::audit::sink::{AuditSink, FailReason, JournalFigures, JournalHealth};

/// Why a journal error stops the journal: a failed flush is a
/// [`FlushError`](FailReason::FlushError) whatever the error said.
fn fail_reason_of(error: &JournalError, flushing: bool) -> FailReason {
    match error {
        JournalError::Full { .. } => FailReason::Full,
        JournalError::Rollover { .. } => FailReason::RolloverFailed,
        _ if flushing => FailReason::FlushError,
        _ => FailReason::WriteError,
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

/// How the journal thread runs. `Default` is the gateway's: the default
/// flush policy, pre-auth aggregation on, the high-water alarm at
/// [`JOURNAL_HIGH_WATER_PERCENT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterConfig {
    pub flush: FlushPolicy,
    /// Fold pre-auth events into PreAuthAggregate records (off: one record
    /// per event, as [`JournalWriter::spawn`] does).
    pub aggregate: bool,
    /// Fill of a segment, in percent (1..=100), that raises the high-water
    /// alarm; with rollover off, also where the reserve begins.
    pub high_water_percent: u64,
    /// A periodic checkpoint this long after the last one, if records came
    /// since (with an anchor key).
    pub checkpoint_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> WriterConfig {
        WriterConfig {
            flush: FlushPolicy::default(),
            aggregate: true,
            high_water_percent: JOURNAL_HIGH_WATER_PERCENT,
            checkpoint_interval: Duration::from_nanos(JOURNAL_CHECKPOINT_INTERVAL_NS),
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
    /// Records in the journal at the end, every segment.
    pub records: u64,
    pub failure: Option<FailReason>,
    /// PreAuthAggregate records appended, and the pre-auth events folded
    /// (of which `preauth_overflow` into "other addresses" aggregates, and
    /// `preauth_unjournaled` not written: rollover off, past high water).
    pub aggregates: u64,
    pub preauth_events: u64,
    pub preauth_overflow: u64,
    pub preauth_unjournaled: u64,
    /// Segments started because one was full, and starts that failed.
    pub rollovers: u64,
    pub rollover_failures: u64,
    /// Times a segment crossed the high-water mark.
    pub high_water: u64,
    /// The current segment at the end: its number, records and slots.
    pub segment: u64,
    pub segment_records: u64,
    pub capacity: u64,
    /// Checkpoints written under the anchor key (the closing one included),
    /// and the key's tag; None: no anchor key, no checkpoints.
    pub checkpoints: u64,
    pub anchor_tag: Option<u64>,
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
    /// The pre-auth fold; None: every event is its own record.
    aggregator: Option<Aggregator>,
    /// Monotonic clock of the aggregation windows.
    clock: Instant,
    high_water_percent: u64,
    /// The segment whose high-water alarm has been raised.
    high_water_segment: Option<u64>,
    /// Whether the reserve (rollover off, past high water) has been
    /// announced.
    reserve_told: bool,
    /// When the last checkpoint was written (or the thread started).
    checkpointed_at: Instant,
    /// How long after it the next periodic one is due.
    checkpoint_interval: Duration,
    checkpoints_seen: u64,
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

    /// [`start`](Self::start) without aggregation (every event is its own
    /// record): for tests and tools that want the raw stream.
    pub fn spawn_with(
        journal: Journal,
        inputs: Vec<Consumer<AuditEvent>>,
        health: Arc<JournalHealth>,
        stop: Arc<AtomicBool>,
        policy: FlushPolicy,
    ) -> JoinHandle<JournalStats> {
        let config = WriterConfig {
            flush: policy,
            aggregate: false,
            ..WriterConfig::default()
        };
        JournalWriter::start(journal, inputs, health, stop, config)
    }

    /// Starts the journal thread. It appends a JournalOpened record, then
    /// drains every ring (at most `RING_BATCH_MAX` events each per turn),
    /// folds pre-auth events into aggregates (with `config.aggregate`) and
    /// appends everything else, and flushes per `config.flush`; it sleeps
    /// `IDLE_SLEEP_NS` when a turn finds nothing. Aggregates are written
    /// every `JOURNAL_AGGREGATE_WINDOW_NS`. With an anchor key
    /// ([`Journal::with_anchor`]) it writes a checkpoint a second after the
    /// last one if records followed (the journal writes the others itself).
    /// On `stop` it drains what is left, writes the aggregates, then the
    /// closing checkpoint (with an anchor key), flushes, and returns its
    /// stats. Set
    /// `stop` only after the producers have stopped pushing, or their last
    /// events may be left in the rings.
    ///
    /// On the first append or flush error it marks `health` failed, says so
    /// on stderr, and appends nothing more (it keeps draining, counting
    /// `lost`). A rollover, a high-water crossing and the reserve are said
    /// on stderr too, once each.
    ///
    /// # Panics
    ///
    /// If `config.flush.records_max` is 0 or above
    /// `RECOVERY_WINDOW_RECORDS`, `config.high_water_percent` is not in
    /// 1..=100, or the thread cannot be spawned.
    pub fn start(
        journal: Journal,
        inputs: Vec<Consumer<AuditEvent>>,
        health: Arc<JournalHealth>,
        stop: Arc<AtomicBool>,
        config: WriterConfig,
    ) -> JoinHandle<JournalStats> {
        let policy = config.flush;
        assert!(
            policy.records_max >= 1 && policy.records_max <= RECOVERY_WINDOW_RECORDS,
            "flush every 1..={RECOVERY_WINDOW_RECORDS} records, not {}",
            policy.records_max
        );
        assert!(
            (1..=100).contains(&config.high_water_percent),
            "high water at 1..=100 percent, not {}",
            config.high_water_percent
        );
        let mut writer = JournalWriter {
            journal,
            inputs,
            health,
            policy,
            stats: JournalStats::default(),
            unflushed_since: None,
            aggregator: config.aggregate.then(|| {
                Aggregator::new(
                    JOURNAL_AGGREGATE_SLOTS,
                    JOURNAL_AGGREGATE_OVERFLOW_SLOTS,
                    JOURNAL_AGGREGATE_WINDOW_NS,
                )
            }),
            clock: Instant::now(),
            high_water_percent: config.high_water_percent,
            high_water_segment: None,
            reserve_told: false,
            checkpointed_at: Instant::now(),
            checkpoint_interval: config.checkpoint_interval,
            checkpoints_seen: 0,
        };
        thread::Builder::new()
            .name("ordergate-journal".into())
            .spawn(move || writer.run(&stop))
            .expect("spawn the journal thread")
    }

    fn run(&mut self, stop: &AtomicBool) -> JournalStats {
        self.publish_segment();
        self.health
            .durable
            .store(self.journal.flushed_records(), Ordering::Relaxed);
        let opened = self.journal.opened_event(wall_ns());
        self.append(&opened, &Extra::NONE);
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
        self.write_aggregates();
        // The last record of a clean stop: everything before it is
        // authenticated, and `verify` can tell this end from a cut.
        self.checkpoint(CheckpointKind::Close);
        self.flush();
        self.stats.checkpoints = self.journal.checkpoints();
        self.stats.anchor_tag = self.journal.anchor_tag();
        self.stats.records = self.journal.records();
        self.stats.segment = self.journal.segment();
        self.stats.segment_records = self.journal.segment_records();
        self.stats.capacity = self.journal.capacity();
        self.stats.failure = self.health.failure();
        self.stats
    }

    /// One pass over every ring; returns the events taken.
    fn turn(&mut self) -> usize {
        let mut work = 0;
        let mut inputs = std::mem::take(&mut self.inputs);
        for input in &mut inputs {
            work += input.drain(RING_BATCH_MAX, |event| self.take(&event));
        }
        self.inputs = inputs;
        let now = self.now_ns();
        if self.aggregator.as_ref().is_some_and(|a| a.due(now)) {
            self.write_aggregates();
        }
        if self.journal.since_checkpoint() > 0
            && self.checkpointed_at.elapsed() >= self.checkpoint_interval
        {
            self.checkpoint(CheckpointKind::Periodic);
        }
        if let Some(since) = self.unflushed_since
            && since.elapsed() >= Duration::from_nanos(self.policy.interval_ns)
        {
            self.flush();
        }
        work
    }

    /// A checkpoint now (no-op without an anchor key). A failure fails the
    /// journal, as any append's.
    fn checkpoint(&mut self, kind: CheckpointKind) {
        if self.journal.anchor_tag().is_none() || !self.health.is_healthy() {
            return;
        }
        match self.journal.checkpoint(kind, wall_ns()) {
            Ok(()) => {
                self.publish_segment();
                if self.unflushed_since.is_none() {
                    self.unflushed_since = Some(Instant::now());
                }
            }
            Err(error) => {
                self.failed(fail_reason_of(&error, false), &error);
                self.flush();
            }
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// One event from a ring: folded if pre-auth (and aggregating),
    /// appended otherwise.
    fn take(&mut self, event: &AuditEvent) {
        if !event.kind.is_pre_auth() || self.aggregator.is_none() {
            self.append(event, &Extra::NONE);
            return;
        }
        self.stats.preauth_events += 1;
        self.health.preauth_events.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ns();
        let mut folded = self.fold(event, now);
        if folded == Folded::Full {
            // Both tables are full: write them out early, never drop.
            self.write_aggregates();
            folded = self.fold(event, now);
        }
        debug_assert_ne!(folded, Folded::Full, "an empty table takes any event");
        if folded == Folded::Overflow {
            self.stats.preauth_overflow += 1;
            self.health.preauth_overflow.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fold(&mut self, event: &AuditEvent, now: u64) -> Folded {
        self.aggregator
            .as_mut()
            .expect("aggregating")
            .fold(event, now)
    }

    /// Appends one PreAuthAggregate per entry and empties the tables.
    fn write_aggregates(&mut self) {
        let Some(mut aggregator) = self.aggregator.take() else {
            return;
        };
        aggregator.drain(|event, extra| {
            if self.in_reserve() {
                let count = u64::from(event.detail);
                self.stats.preauth_unjournaled += count;
                self.health
                    .preauth_unjournaled
                    .fetch_add(count, Ordering::Relaxed);
                if !self.reserve_told {
                    self.reserve_told = true;
                    eprintln!(
                        "ordergate: audit journal {} is past its high-water mark and rollover \
                         is off: pre-auth aggregates are no longer written (counted in \
                         journal_preauth_unjournaled), the rest of the segment is kept for \
                         authenticated and operator events",
                        self.location()
                    );
                }
                return;
            }
            if self.append(&event, &extra) {
                self.stats.aggregates += 1;
                self.health.aggregates.fetch_add(1, Ordering::Relaxed);
            }
        });
        self.aggregator = Some(aggregator);
    }

    /// Rollover off and the segment at or past its high-water mark: the
    /// rest is kept for what authenticated peers and operators do.
    fn in_reserve(&self) -> bool {
        !self.journal.rolls_over()
            && self.journal.segment_records() * 100
                >= self.journal.capacity() * self.high_water_percent
    }

    fn location(&self) -> String {
        match self.journal.path() {
            Some(path) => path.display().to_string(),
            None => format!("segment {}", self.journal.segment()),
        }
    }

    fn publish_segment(&mut self) {
        let h = &self.health;
        h.records.store(self.journal.records(), Ordering::Relaxed);
        h.segment.store(self.journal.segment(), Ordering::Relaxed);
        h.segment_records
            .store(self.journal.segment_records(), Ordering::Relaxed);
        h.capacity.store(self.journal.capacity(), Ordering::Relaxed);
        let written = self.journal.checkpoints();
        if written != self.checkpoints_seen {
            // Periodic and segment-end checkpoints are written by the
            // journal's own append.
            self.checkpoints_seen = written;
            self.checkpointed_at = Instant::now();
            h.checkpoints.store(written, Ordering::Relaxed);
        }
    }

    /// Appends one record; whether it was. A record not appended counts
    /// as lost events: one, or an aggregate's count.
    fn append(&mut self, event: &AuditEvent, extra: &Extra) -> bool {
        let weight = if event.kind == AuditKind::PreAuthAggregate {
            u64::from(event.detail)
        } else {
            1
        };
        if !self.health.is_healthy() {
            self.stats.lost += weight;
            self.health.lost.fetch_add(weight, Ordering::Relaxed);
            return false;
        }
        let segment = self.journal.segment();
        match self.journal.append_with(event, extra) {
            Ok(_) => {
                self.stats.appended += 1;
                if event.kind == AuditKind::Gap {
                    self.stats.gaps += 1;
                    self.stats.gap_events += u64::from(event.detail);
                }
                if self.journal.segment() != segment {
                    self.rolled_over(segment);
                }
                self.publish_segment();
                self.check_high_water();
                if self.unflushed_since.is_none() {
                    self.unflushed_since = Some(Instant::now());
                }
                if self.journal.unflushed_records() >= self.policy.records_max {
                    self.flush();
                }
                true
            }
            Err(error) => {
                let reason = fail_reason_of(&error, false);
                if reason == FailReason::RolloverFailed {
                    self.stats.rollover_failures += 1;
                    self.health
                        .rollover_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.failed(reason, &error);
                self.stats.lost += weight;
                self.health.lost.fetch_add(weight, Ordering::Relaxed);
                // What was appended before the failure is still made durable.
                self.flush();
                false
            }
        }
    }

    fn rolled_over(&mut self, from: u64) {
        self.stats.rollovers += 1;
        self.health.rollovers.fetch_add(1, Ordering::Relaxed);
        // Flushed by the rollover itself, with its SegmentStart.
        self.health
            .durable
            .store(self.journal.flushed_records(), Ordering::Relaxed);
        eprintln!(
            "ordergate: audit journal segment {from} is full; continued in segment {} ({}) \
             from record {}",
            self.journal.segment(),
            self.location(),
            self.journal.records() - self.journal.segment_records()
        );
    }

    /// Raises the high-water alarm once per segment.
    fn check_high_water(&mut self) {
        let segment = self.journal.segment();
        let (used, capacity) = (self.journal.segment_records(), self.journal.capacity());
        if self.high_water_segment == Some(segment)
            || used * 100 < capacity * self.high_water_percent
        {
            return;
        }
        self.high_water_segment = Some(segment);
        self.stats.high_water += 1;
        self.health.high_water.fetch_add(1, Ordering::Relaxed);
        let next = if self.journal.rolls_over() {
            "the next segment starts when it is full"
        } else {
            "rollover is off: when it is full new logons are refused (fail closed) until it is \
             moved aside and the gateway restarted"
        };
        eprintln!(
            "ordergate: audit journal {} is at its high-water mark: {used} of {capacity} records \
             ({}%); {next}",
            self.location(),
            self.high_water_percent
        );
    }

    /// Marks the journal failed and says so on stderr (once: later errors
    /// cannot happen, nothing more is appended).
    fn failed(&mut self, reason: FailReason, error: &JournalError) {
        let first = self.health.is_healthy();
        self.health.fail(reason);
        if first {
            eprintln!(
                "ordergate: {} ({}): {error}; new logons are refused (fail closed) until an \
                 operator fixes it and restarts the gateway",
                reason.name(),
                self.location()
            );
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
                self.failed(fail_reason_of(&error, true), &error);
                self.unflushed_since = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SessionId;
    use crate::journal::event::from_ip;
    use crate::journal::format::{HEADER_SIZE, RECORD_SIZE, Slot, decode_slot, record_offset};
    use crate::journal::storage::{MemSegments, MemStorage};
    use crate::ring;
    use crate::wire::codes::{LogonRejectReason, TerminateReason};

    fn mem(capacity: u64) -> MemStorage {
        MemStorage::new(HEADER_SIZE as u64 + capacity * RECORD_SIZE as u64)
    }

    fn kinds(image: &[u8]) -> Vec<(AuditKind, u32)> {
        let mut out = Vec::new();
        for slot in 0.. {
            let at = record_offset(slot) as usize;
            if at + RECORD_SIZE > image.len() {
                break;
            }
            let Slot::Committed(r) = decode_slot(image[at..at + RECORD_SIZE].try_into().unwrap())
            else {
                break;
            };
            out.push((AuditKind::from_code(r.kind_code).unwrap(), r.detail));
        }
        out
    }

    fn rejected(n: u64) -> AuditEvent {
        AuditEvent::logon_rejected(
            n,
            SessionId::new(0, n as u16, 1),
            0,
            from_ip("10.0.0.1".parse().unwrap()),
            LogonRejectReason::MALFORMED,
        )
    }

    fn run(journal: Journal, events: &[AuditEvent]) -> (Arc<JournalHealth>, JournalStats) {
        let (mut tx, rx) = ring::channel::<AuditEvent>(4096);
        for e in events {
            tx.try_push(*e).unwrap();
        }
        let health = Arc::new(JournalHealth::new());
        let stop = Arc::new(AtomicBool::new(true));
        let stats = JournalWriter::start(
            journal,
            vec![rx],
            Arc::clone(&health),
            stop,
            WriterConfig::default(),
        )
        .join()
        .unwrap();
        (health, stats)
    }

    #[test]
    fn pre_auth_events_become_one_aggregate_and_the_rest_stays_in_order() {
        let storage = mem(64);
        let journal = Journal::open_in(Box::new(storage.clone()), 64, 1).unwrap();
        let s = SessionId::new(0, 1, 1);
        let addr = from_ip("10.0.0.2".parse().unwrap());
        let mut events: Vec<AuditEvent> = (0..1000).map(rejected).collect();
        events.push(AuditEvent::logon_accepted(2000, s, 7, addr));
        events.push(AuditEvent::logon_timeout(2001, s, addr));
        events.push(AuditEvent::terminated(
            2002,
            s,
            7,
            addr,
            TerminateReason::LOGOUT,
        ));
        let (health, stats) = run(journal, &events);
        assert_eq!(
            kinds(&storage.live_image()),
            [
                (AuditKind::JournalOpened, 0),
                (AuditKind::LogonAccepted, 0),
                (AuditKind::Terminated, 0),
                (AuditKind::PreAuthAggregate, 1000),
                (AuditKind::PreAuthAggregate, 1),
            ]
        );
        assert_eq!((stats.aggregates, stats.preauth_events), (2, 1001));
        let f = health.figures();
        assert_eq!((f.aggregates, f.preauth_events, f.records), (2, 1001, 5));
        assert_eq!((f.segment_records, f.capacity, f.failed), (5, 64, 0));
    }

    #[test]
    fn a_full_segment_rolls_over_and_raises_the_high_water_alarm_once_per_segment() {
        let segments = MemSegments::new();
        let journal = Journal::open_in(Box::new(mem(64)), 64, 1)
            .unwrap()
            .with_rollover(Box::new(segments.clone()), 64)
            .unwrap();
        let events: Vec<AuditEvent> = (0..100).map(|n| AuditEvent::reload(n, 1)).collect();
        let (health, stats) = run(journal, &events);
        // 101 records and one SegmentStart: 64 + 38.
        assert_eq!((stats.rollovers, stats.segment, stats.records), (1, 1, 102));
        assert_eq!(stats.high_water, 1);
        assert_eq!(stats.failure, None);
        let f = health.figures();
        assert_eq!((f.rollovers, f.segment, f.segment_records), (1, 1, 38));
        assert_eq!(segments.created().len(), 1);
    }

    #[test]
    fn a_failed_rollover_fails_closed_and_is_counted() {
        let segments = MemSegments::new();
        segments.set_failing(true);
        let journal = Journal::open_in(Box::new(mem(64)), 64, 1)
            .unwrap()
            .with_rollover(Box::new(segments), 64)
            .unwrap();
        let events: Vec<AuditEvent> = (0..70).map(|n| AuditEvent::reload(n, 1)).collect();
        let (health, stats) = run(journal, &events);
        assert_eq!(stats.failure, Some(FailReason::RolloverFailed));
        assert_eq!(health.failure(), Some(FailReason::RolloverFailed));
        assert_eq!((stats.rollover_failures, stats.records), (1, 64));
        // 63 events fit after JournalOpened; 7 are lost.
        assert_eq!(stats.lost, 7);
        let f = health.figures();
        assert_eq!((f.failed, f.rollover_failures, f.lost), (4, 1, 7));
    }

    #[test]
    fn without_rollover_the_reserve_keeps_pre_auth_aggregates_out() {
        let storage = mem(10);
        let journal = Journal::open_in(Box::new(storage.clone()), 10, 1).unwrap();
        // 9 records reach the 90% mark; then aggregates are not written.
        let mut events: Vec<AuditEvent> = (0..8).map(|n| AuditEvent::reload(n, 1)).collect();
        events.extend((0..500).map(rejected));
        events.push(AuditEvent::reload(9, 1));
        let (health, stats) = run(journal, &events);
        assert_eq!(stats.preauth_unjournaled, 500);
        assert_eq!(stats.aggregates, 0);
        assert_eq!(
            stats.records, 10,
            "the reserve took the authenticated event"
        );
        assert_eq!(stats.failure, None);
        assert_eq!(health.figures().preauth_unjournaled, 500);
        let k = kinds(&storage.live_image());
        assert!(
            k.iter()
                .all(|(kind, _)| *kind != AuditKind::PreAuthAggregate)
        );
    }
}
