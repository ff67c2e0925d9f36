//! The audit journal: round trips, every tampering case on a real file,
//! crash simulation through `MemStorage`, fail-closed on a full file, gap
//! accounting, `show` output, and the writer thread.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ordergate::engine::SessionId;
use ordergate::journal::format::{
    HEADER_SIZE, Header, RECORD_SIZE, Slot, decode_slot, encode_record, record_offset,
};
use ordergate::journal::{
    ADDR_NONE, AuditEvent, AuditKind, AuditSink, FailReason, FlushPolicy, HEADER_INDEX, Journal,
    JournalError, JournalHealth, JournalWriter, MemStorage, OpenKind, Storage, VerifyOptions,
    audit_main, from_ip, hex, show, show_image, verify, verify_image, verify_with,
};
use ordergate::ring;
use ordergate::wire::codes::{LogonRejectReason, TerminateReason};

const T0: u64 = 1_764_000_000_000_000_000;

/// A fresh path under the temp dir, removed (with its `.creating` twin) when
/// dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "ordergate-journal-test-{}-{name}-{n}.audit",
            std::process::id()
        ));
        let _ = fs::remove_file(&path);
        TempPath(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

impl std::ops::Deref for TempPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

fn event(n: u64) -> AuditEvent {
    let session = SessionId::new((n % 3) as u16, n as u16, 7);
    match n % 5 {
        0 => AuditEvent::logon_accepted(
            T0 + n,
            session,
            1000 + n,
            from_ip("10.0.0.1".parse().unwrap()),
        ),
        1 => AuditEvent::logon_rejected(
            T0 + n,
            session,
            1000 + n,
            from_ip("2001:db8::1".parse().unwrap()),
            LogonRejectReason::AUTH_FAILED,
        ),
        2 => AuditEvent::terminated(
            T0 + n,
            session,
            1000 + n,
            ADDR_NONE,
            TerminateReason::LOGOUT,
        ),
        3 => AuditEvent::reload(T0 + n, n as u32),
        _ => AuditEvent::lockout(T0 + n, 1, from_ip("192.0.2.9".parse().unwrap()), 5),
    }
}

/// A journal file of `records` records (capacity `capacity`), flushed and
/// closed. Returns the hash after each record.
fn journal_file(path: &Path, capacity: u64, records: u64) -> Vec<[u8; 32]> {
    let mut j = Journal::open(path, capacity).unwrap();
    assert_eq!(j.opened(), (OpenKind::Created, 0));
    let mut hashes = Vec::new();
    for n in 0..records {
        assert_eq!(j.append(&event(n)).unwrap(), n);
        hashes.push(j.last_hash());
    }
    j.flush().unwrap();
    hashes
}

fn mem_storage(capacity: u64) -> MemStorage {
    MemStorage::new(HEADER_SIZE as u64 + capacity * RECORD_SIZE as u64)
}

fn expect_error(path: &Path, opts: &VerifyOptions) -> (u64, String) {
    match verify_with(path, opts) {
        Ok(report) => panic!("verified: {report}"),
        Err(e) => (e.index, e.problem),
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

// Round trip ------------------------------------------------------------

#[test]
fn append_reopen_round_trip() {
    let path = TempPath::new("roundtrip");
    let hashes = journal_file(&path, 32, 5);

    let report = verify(&path).unwrap();
    assert_eq!(report.records, 5);
    assert_eq!(report.capacity, 32);
    assert_eq!(report.last_hash, hashes[4]);
    assert_eq!(
        fs::metadata(&*path).unwrap().len(),
        128 + 32 * 128,
        "preallocated"
    );

    let mut j = Journal::open(&path, 999).unwrap();
    assert_eq!(j.opened(), (OpenKind::Reopened, 0));
    assert_eq!(j.capacity(), 32, "an existing file keeps its capacity");
    assert_eq!(j.records(), 5);
    assert_eq!(j.last_hash(), hashes[4]);
    assert_eq!(j.append(&event(5)).unwrap(), 5);
    j.flush().unwrap();
    drop(j);

    let report = verify(&path).unwrap();
    assert_eq!(report.records, 6);
    let mut out = Vec::new();
    assert_eq!(show(&path, false, &mut out).unwrap(), 6);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 6);
    assert!(text.lines().nth(5).unwrap().starts_with("5 "));
}

#[test]
fn a_second_writer_is_locked_out() {
    let path = TempPath::new("locked");
    let _first = Journal::open(&path, 8).unwrap();
    assert!(matches!(Journal::open(&path, 8), Err(JournalError::Locked)));
}

// Tampering on a real file ----------------------------------------------

const RECORDS: u64 = 10;
const CAPACITY: u64 = 16;

fn tamper(name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> (TempPath, Vec<[u8; 32]>) {
    let path = TempPath::new(name);
    let hashes = journal_file(&path, CAPACITY, RECORDS);
    let mut bytes = fs::read(&*path).unwrap();
    edit(&mut bytes);
    fs::write(&*path, &bytes).unwrap();
    (path, hashes)
}

fn slot_range(index: u64) -> std::ops::Range<usize> {
    let at = record_offset(index) as usize;
    at..at + RECORD_SIZE
}

#[test]
fn an_edited_byte_of_record_k_is_named_k() {
    for k in [0, 4, RECORDS - 1] {
        for at in [0usize, 8, 33, 56, 64, 100, 120, 127] {
            let (path, _) = tamper("edit", |b| b[slot_range(k).start + at] ^= 0x01);
            let (index, problem) = expect_error(&path, &VerifyOptions::default());
            assert_eq!(index, k, "byte {at} of record {k}: {problem}");
            assert!(problem.contains("commit"), "{problem}");
        }
    }
}

#[test]
fn a_deleted_record_k_is_named_k() {
    for k in [0, 3, RECORDS - 2] {
        // Cut out, file one record shorter.
        let (path, _) = tamper("delete", |b| {
            b.drain(slot_range(k));
        });
        let (index, problem) = expect_error(&path, &VerifyOptions::default());
        assert_eq!(index, k, "{problem}");
        assert!(problem.contains("index field says"), "{problem}");

        // Cut out and the length restored with a zero slot at the end.
        let (path, _) = tamper("delete-pad", |b| {
            b.drain(slot_range(k));
            b.extend_from_slice(&[0; RECORD_SIZE]);
        });
        assert_eq!(expect_error(&path, &VerifyOptions::default()).0, k);
    }
    // Deleting the last record and zero-padding is the "chopped tail" case:
    // see the anchor test.
}

#[test]
fn swapped_records_are_named_at_the_first() {
    for (a, b) in [(2u64, 7u64), (0, 1), (8, 9)] {
        let (path, _) = tamper("swap", |bytes| {
            let ra = bytes[slot_range(a)].to_vec();
            let rb = bytes[slot_range(b)].to_vec();
            bytes[slot_range(a)].copy_from_slice(&rb);
            bytes[slot_range(b)].copy_from_slice(&ra);
        });
        let (index, problem) = expect_error(&path, &VerifyOptions::default());
        assert_eq!(index, a, "{problem}");
    }
}

#[test]
fn truncation_inside_a_record_names_it() {
    let k = 7;
    let (path, _) = tamper("truncate", |b| b.truncate(record_offset(k) as usize + 50));
    let (index, problem) = expect_error(&path, &VerifyOptions::default());
    assert_eq!(index, k, "{problem}");
    assert!(problem.contains("50 bytes into this slot"), "{problem}");

    // Truncated at a slot boundary beyond the last record: still shorter
    // than the header says.
    let (path, _) = tamper("truncate-empty", |b| b.truncate(record_offset(12) as usize));
    assert_eq!(expect_error(&path, &VerifyOptions::default()).0, 12);

    // Below the header.
    let (path, _) = tamper("truncate-header", |b| b.truncate(100));
    assert_eq!(
        expect_error(&path, &VerifyOptions::default()).0,
        HEADER_INDEX
    );
}

#[test]
fn an_edit_with_a_recomputed_commit_is_named_at_the_next_record() {
    let k = 4;
    let (path, _) = tamper("recommit", |b| {
        let mut slot = [0u8; RECORD_SIZE];
        slot.copy_from_slice(&b[slot_range(k)]);
        let Slot::Committed(record) = decode_slot(&slot) else {
            panic!("record {k} not committed")
        };
        let mut forged = record.event().unwrap();
        forged.key_id = 666;
        let (bytes, _) = encode_record(k, &record.prev_hash, &forged);
        b[slot_range(k)].copy_from_slice(&bytes);
    });
    let (index, problem) = expect_error(&path, &VerifyOptions::default());
    assert_eq!(index, k + 1, "{problem}");
    assert!(problem.contains("prev_hash"), "{problem}");
}

#[test]
fn an_edited_header_is_named() {
    let (path, _) = tamper("header", |b| b[20] ^= 1);
    assert_eq!(
        expect_error(&path, &VerifyOptions::default()).0,
        HEADER_INDEX
    );
    // Record 0 of another journal (or after a header rewrite) breaks at 0.
    let (path, _) = tamper("header-rewrite", |b| {
        let mut h = [0u8; HEADER_SIZE];
        h.copy_from_slice(&b[..HEADER_SIZE]);
        let (mut header, _) = Header::decode(&h).unwrap();
        header.file_id[0] ^= 1;
        b[..HEADER_SIZE].copy_from_slice(&header.encode().0);
    });
    let (index, problem) = expect_error(&path, &VerifyOptions::default());
    assert_eq!(index, 0, "{problem}");
}

#[test]
fn a_chopped_tail_is_detected_only_with_an_anchor() {
    let chop = 3;
    let (path, hashes) = tamper("chop", |b| {
        for k in RECORDS - chop..RECORDS {
            b[slot_range(k)].fill(0);
        }
    });
    let left = RECORDS - chop;

    // Without an anchor the shorter journal is indistinguishable from one
    // that was never longer.
    let report = verify(&path).unwrap();
    assert_eq!(report.records, left);
    assert_eq!(report.last_hash, hashes[left as usize - 1]);

    // --expect-records.
    let opts = VerifyOptions {
        expect_records: Some(RECORDS),
        expect_last: None,
    };
    let (index, problem) = expect_error(&path, &opts);
    assert_eq!(index, left, "{problem}");
    assert!(problem.contains("removed"), "{problem}");

    // --expect-last alone.
    let opts = VerifyOptions {
        expect_records: None,
        expect_last: Some(hashes[RECORDS as usize - 1]),
    };
    let (index, problem) = expect_error(&path, &opts);
    assert_eq!(index, left, "{problem}");

    // Both.
    let opts = VerifyOptions {
        expect_records: Some(RECORDS),
        expect_last: Some(hashes[RECORDS as usize - 1]),
    };
    assert_eq!(expect_error(&path, &opts).0, left);
}

#[test]
fn anchors_accept_the_journal_they_were_taken_from_and_its_growth() {
    let path = TempPath::new("anchor-ok");
    let hashes = journal_file(&path, CAPACITY, RECORDS);
    let last = hashes[RECORDS as usize - 1];
    let exact = VerifyOptions {
        expect_records: Some(RECORDS),
        expect_last: Some(last),
    };
    assert_eq!(verify_with(&path, &exact).unwrap().records, RECORDS);
    let alone = VerifyOptions {
        expect_records: None,
        expect_last: Some(last),
    };
    assert_eq!(verify_with(&path, &alone).unwrap().records, RECORDS);

    // An anchor taken at record 5 still holds as the journal grows...
    let prefix = VerifyOptions {
        expect_records: Some(6),
        expect_last: Some(hashes[5]),
    };
    assert!(verify_with(&path, &prefix).is_ok());
    // ... but as the *last* hash it names the first record after it.
    let stale = VerifyOptions {
        expect_records: None,
        expect_last: Some(hashes[5]),
    };
    assert_eq!(expect_error(&path, &stale).0, 6);
    // A wrong hash at the anchored record is named there.
    let wrong = VerifyOptions {
        expect_records: Some(6),
        expect_last: Some(hashes[4]),
    };
    assert_eq!(expect_error(&path, &wrong).0, 5);
}

#[test]
fn open_refuses_a_tampered_journal_and_leaves_it_alone() {
    let (path, _) = tamper("open-tampered", |b| {
        let (x, y) = (slot_range(2), slot_range(5));
        let rx = b[x.clone()].to_vec();
        let ry = b[y.clone()].to_vec();
        b[x].copy_from_slice(&ry);
        b[y].copy_from_slice(&rx);
    });
    let before = fs::read(&*path).unwrap();
    match Journal::open(&path, CAPACITY) {
        Err(JournalError::Corrupt { index, .. }) => assert_eq!(index, 2),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened a tampered journal"),
    }
    assert_eq!(fs::read(&*path).unwrap(), before);
}

#[test]
fn open_refuses_residue_further_out_than_a_crash_can_leave() {
    let storage = mem_storage(200);
    let mut j = Journal::open_in(Box::new(storage.clone()), 200, T0).unwrap();
    for n in 0..150 {
        j.append(&event(n)).unwrap();
    }
    j.flush().unwrap();
    drop(j);
    // Zero record 10: 139 committed records follow it.
    let mut s = storage.clone();
    s.write_at(record_offset(10), &[0; RECORD_SIZE]).unwrap();
    match Journal::open_in(Box::new(storage), 200, T0) {
        Err(JournalError::Corrupt { index, problem }) => assert_eq!(index, 10, "{problem}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened"),
    }
}

// Crash simulation ------------------------------------------------------

/// A MemStorage journal with `flushed` records flushed and `unflushed` more
/// appended after the flush.
fn crashed_setup(capacity: u64, flushed: u64, unflushed: u64) -> (MemStorage, Vec<[u8; 32]>) {
    let storage = mem_storage(capacity);
    let mut j = Journal::open_in(Box::new(storage.clone()), capacity, T0).unwrap();
    let mut hashes = Vec::new();
    for n in 0..flushed {
        j.append(&event(n)).unwrap();
        hashes.push(j.last_hash());
    }
    j.flush().unwrap();
    for n in flushed..flushed + unflushed {
        j.append(&event(n)).unwrap();
        hashes.push(j.last_hash());
    }
    assert_eq!(
        storage.pending_writes() as u64,
        2 * unflushed,
        "two writes per record"
    );
    (storage, hashes)
}

fn reopen(storage: &MemStorage, capacity: u64) -> Journal {
    Journal::open_in(Box::new(storage.clone()), capacity, T0 + 1_000).unwrap()
}

#[test]
fn a_crash_loses_unflushed_records_and_the_chain_continues() {
    let (storage, hashes) = crashed_setup(32, 5, 3);
    storage.crash_losing_unflushed();
    assert_eq!(
        verify_image(&storage.live_image(), &VerifyOptions::default())
            .unwrap()
            .records,
        5
    );

    let mut j = reopen(&storage, 32);
    assert_eq!(j.opened(), (OpenKind::Reopened, 0));
    assert_eq!(j.records(), 5);
    assert_eq!(j.last_hash(), hashes[4]);
    assert_eq!(j.append(&event(100)).unwrap(), 5);
    j.flush().unwrap();
    let report = verify_image(&storage.live_image(), &VerifyOptions::default()).unwrap();
    assert_eq!(report.records, 6);
}

#[test]
fn a_torn_last_record_is_ignored_then_discarded() {
    let (storage, hashes) = crashed_setup(32, 5, 2);
    // Record 5 reached the disk whole (body + commit); record 6 only its
    // first 60 bytes.
    storage.crash_tearing(2, 60);
    let image = storage.live_image();
    let err = verify_image(&image, &VerifyOptions::default()).unwrap_err();
    assert_eq!(err.index, 6, "{err}");

    let mut j = reopen(&storage, 32);
    assert_eq!(j.opened(), (OpenKind::Recovered, 1));
    assert_eq!(j.records(), 6);
    assert_eq!(j.last_hash(), hashes[5]);
    let opened = j.opened_event(T0 + 2_000);
    assert_eq!(
        (opened.kind, opened.reason, opened.detail),
        (AuditKind::JournalOpened, 3, 1)
    );
    assert_eq!(j.append(&opened).unwrap(), 6);
    assert_eq!(j.append(&event(200)).unwrap(), 7);
    j.flush().unwrap();
    assert_eq!(
        verify_image(&storage.live_image(), &VerifyOptions::default())
            .unwrap()
            .records,
        8
    );
}

#[test]
fn a_commit_that_landed_without_its_body_is_not_a_record() {
    let (storage, _) = crashed_setup(32, 5, 1);
    // Write-back took the commit (write 1) but not the body (write 0).
    storage.crash(|n, _, len| if n == 1 { len } else { 0 });
    let mut j = reopen(&storage, 32);
    assert_eq!(j.opened(), (OpenKind::Recovered, 1));
    assert_eq!(j.records(), 5);
    j.append(&event(5)).unwrap();
    j.flush().unwrap();
    assert!(verify_image(&storage.live_image(), &VerifyOptions::default()).is_ok());
}

#[test]
fn records_after_a_lost_one_are_discarded() {
    let (storage, _) = crashed_setup(32, 5, 3);
    // Power loss with pages written back out of order: record 5 lost,
    // records 6 and 7 on disk.
    storage.crash(|n, _, len| if n < 2 { 0 } else { len });
    let err = verify_image(&storage.live_image(), &VerifyOptions::default()).unwrap_err();
    assert_eq!(err.index, 5, "{err}");
    let j = reopen(&storage, 32);
    assert_eq!(j.opened(), (OpenKind::Recovered, 2));
    assert_eq!(j.records(), 5);
    assert!(verify_image(&storage.live_image(), &VerifyOptions::default()).is_ok());
}

#[test]
fn every_crash_point_reopens_to_a_verifiable_prefix() {
    // Crash after every prefix of the pending writes, torn at several
    // points inside the next one; the reopened journal always holds exactly
    // the whole records, continues, and verifies.
    let unflushed = 4u64;
    for whole in 0..=(2 * unflushed as usize) {
        for torn in [0usize, 1, 57, 119, 120, 127] {
            let (storage, hashes) = crashed_setup(16, 3, unflushed);
            storage.crash_tearing(whole, torn);
            let mut j = reopen(&storage, 16);
            // Record r is whole when both its writes (2r, 2r+1) landed, or
            // its body landed whole and the torn write is its commit, whole.
            let mut expect = 3 + whole as u64 / 2;
            if whole % 2 == 1 && torn >= 8 {
                expect += 1;
            }
            assert_eq!(j.records(), expect, "whole {whole} torn {torn}");
            assert_eq!(j.last_hash(), hashes[expect as usize - 1]);
            j.append(&event(99)).unwrap();
            j.flush().unwrap();
            let report = verify_image(&storage.live_image(), &VerifyOptions::default())
                .unwrap_or_else(|e| panic!("whole {whole} torn {torn}: {e}"));
            assert_eq!(report.records, expect + 1);
        }
    }
}

// Fail closed ------------------------------------------------------------

#[test]
fn a_full_file_fails_closed_and_the_writer_marks_health_failed() {
    let path = TempPath::new("full");
    let journal = Journal::open(&path, 4).unwrap();
    let (mut tx, rx) = ring::channel::<AuditEvent>(16);
    let health = Arc::new(JournalHealth::new());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = JournalWriter::spawn(journal, vec![rx], Arc::clone(&health), Arc::clone(&stop));
    for n in 0..6 {
        tx.try_push(event(n)).unwrap();
    }
    wait_until("the journal to fail", || !health.is_healthy());
    assert_eq!(health.failure(), Some(FailReason::Full));
    stop.store(true, Ordering::Release);
    let stats = writer.join().unwrap();
    // JournalOpened + 3 events fill the 4 slots; 3 events are lost.
    assert_eq!(stats.records, 4);
    assert_eq!(stats.appended, 4);
    assert_eq!(stats.lost, 3);
    assert_eq!(stats.failure, Some(FailReason::Full));
    assert_eq!(health.records(), 4);
    assert_eq!(health.durable_records(), 4, "what was appended is flushed");
    assert_eq!(verify(&path).unwrap().records, 4);

    // The journal itself refuses with Full.
    let mut j = Journal::open(&path, 4).unwrap();
    assert!(matches!(
        j.append(&event(9)),
        Err(JournalError::Full { capacity: 4 })
    ));
}

#[test]
fn a_full_file_at_start_fails_closed_at_once() {
    let path = TempPath::new("full-at-start");
    journal_file(&path, 3, 3);
    let journal = Journal::open(&path, 3).unwrap();
    let health = Arc::new(JournalHealth::new());
    let stop = Arc::new(AtomicBool::new(true));
    let stats = JournalWriter::spawn(journal, vec![], Arc::clone(&health), stop)
        .join()
        .unwrap();
    assert_eq!(stats.failure, Some(FailReason::Full));
    assert!(!health.is_healthy());
}

#[test]
fn a_write_error_fails_closed() {
    let storage = mem_storage(64);
    let journal = Journal::open_in(Box::new(storage.clone()), 64, T0).unwrap();
    let (mut tx, rx) = ring::channel::<AuditEvent>(16);
    let health = Arc::new(JournalHealth::new());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = JournalWriter::spawn(journal, vec![rx], Arc::clone(&health), Arc::clone(&stop));
    wait_until("the open record", || health.records() == 1);
    storage.set_failing(true, false);
    tx.try_push(event(1)).unwrap();
    wait_until("the journal to fail", || !health.is_healthy());
    assert_eq!(health.failure(), Some(FailReason::WriteError));
    stop.store(true, Ordering::Release);
    let stats = writer.join().unwrap();
    assert_eq!(stats.records, 1);
}

#[test]
fn a_flush_error_fails_closed() {
    let storage = mem_storage(64);
    let journal = Journal::open_in(Box::new(storage.clone()), 64, T0).unwrap();
    let health = Arc::new(JournalHealth::new());
    let stop = Arc::new(AtomicBool::new(true));
    storage.set_failing(false, true);
    let stats = JournalWriter::spawn(journal, vec![], Arc::clone(&health), stop)
        .join()
        .unwrap();
    assert_eq!(stats.failure, Some(FailReason::FlushError));
    assert_eq!(health.durable_records(), 0);
}

// Gaps -----------------------------------------------------------------

#[test]
fn a_full_audit_ring_becomes_an_explicit_gap() {
    let path = TempPath::new("gap");
    let (tx, rx) = ring::channel::<AuditEvent>(8);
    let mut sink = AuditSink::new(tx);
    for n in 0..8 {
        assert!(sink.record(event(n)));
    }
    for n in 8..13 {
        assert!(!sink.record(event(n)), "ring full");
    }
    assert_eq!(sink.dropped(), 5);

    let journal = Journal::open(&path, 64).unwrap();
    let health = Arc::new(JournalHealth::new());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = JournalWriter::spawn(journal, vec![rx], Arc::clone(&health), Arc::clone(&stop));
    wait_until("the ring to drain", || health.records() == 9);

    let after = AuditEvent::terminated(
        T0 + 50,
        SessionId::new(2, 1, 1),
        7,
        ADDR_NONE,
        TerminateReason::LOGOUT,
    );
    assert!(sink.record(after));
    assert_eq!(sink.dropped(), 0);
    wait_until("the gap", || health.records() == 11);
    stop.store(true, Ordering::Release);
    let stats = writer.join().unwrap();
    assert_eq!((stats.gaps, stats.gap_events), (1, 5));

    let mut out = Vec::new();
    show(&path, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 11);
    assert!(lines[0].contains(" JournalOpened "), "{}", lines[0]);
    assert!(
        lines[9].starts_with("9 ")
            && lines[9].contains(" Gap ")
            && lines[9].ends_with("reactor=2 detail=5"),
        "{}",
        lines[9]
    );
    assert!(lines[10].contains(" Terminated "), "{}", lines[10]);
    assert!(verify(&path).is_ok());
}

#[test]
fn a_pending_gap_goes_out_alone_when_asked_and_counts_a_failed_gap_push() {
    let (tx, mut rx) = ring::channel::<AuditEvent>(2);
    let mut sink = AuditSink::new(tx);
    assert!(sink.flush_gap(T0, 0), "nothing pending");
    assert!(sink.record(event(0)));
    assert!(sink.record(event(1)));
    assert!(!sink.record(event(2)));
    assert!(!sink.flush_gap(T0, 0), "ring still full");
    assert_eq!(rx.pop(), Some(event(0)));
    // One slot free: the gap takes it, the event does not fit and is counted.
    assert!(!sink.record(event(3)));
    assert_eq!(sink.dropped(), 1);
    assert_eq!(rx.pop(), Some(event(1)));
    let gap = rx.pop().unwrap();
    assert_eq!((gap.kind, gap.detail), (AuditKind::Gap, 1));
    assert!(sink.flush_gap(T0 + 9, 4));
    let gap = rx.pop().unwrap();
    assert_eq!(
        (gap.kind, gap.detail, gap.reactor, gap.time_ns),
        (AuditKind::Gap, 1, 4, T0 + 9)
    );
    assert_eq!(rx.pop(), None);
}

// show -----------------------------------------------------------------

/// A small journal with a fixed header, so every hash is fixed too.
fn fixed_image() -> Vec<u8> {
    let capacity = 8;
    let header = Header {
        capacity,
        created_ns: T0,
        file_id: [0x11; 16],
        link: None,
    };
    let mut image = vec![0u8; (HEADER_SIZE as u64 + capacity * RECORD_SIZE as u64) as usize];
    image[..HEADER_SIZE].copy_from_slice(&header.encode().0);
    let storage = MemStorage::from_image(image);
    let mut j = Journal::open_in(Box::new(storage.clone()), capacity, 0).unwrap();
    let s = SessionId::new(1, 2, 3);
    let events = [
        AuditEvent::journal_opened(T0, OpenKind::Created, 0),
        AuditEvent::logon_accepted(
            T0 + 1_500_000_000,
            s,
            1001,
            from_ip("10.1.2.3".parse().unwrap()),
        ),
        AuditEvent::logon_rejected(
            T0 + 2_000_000_001,
            SessionId::new(0, 9, 1),
            77,
            from_ip("2001:db8::5".parse().unwrap()),
            LogonRejectReason::CLOCK_SKEW,
        ),
        AuditEvent::terminated(
            T0 + 3_000_000_000,
            s,
            1001,
            from_ip("10.1.2.3".parse().unwrap()),
            TerminateReason::BAD_MAC,
        ),
        AuditEvent::reload(T0 + 4_000_000_000, 12),
        AuditEvent::gap(T0 + 5_000_000_000, 1, 5),
    ];
    for e in &events {
        j.append(e).unwrap();
    }
    j.flush().unwrap();
    storage.live_image()
}

#[test]
fn show_prints_one_exact_line_per_record() {
    let image = fixed_image();
    let path = TempPath::new("show");
    fs::write(&*path, &image).unwrap();
    let mut out = Vec::new();
    assert_eq!(show(&path, false, &mut out).unwrap(), 6);
    let expected = "\
0 2025-11-24T16:00:00.000000000Z JournalOpened key=0 addr=- reason=CREATED session=- reactor=- detail=0
1 2025-11-24T16:00:01.500000000Z LogonAccepted key=1001 addr=10.1.2.3 reason=- session=1/2/3 reactor=1 detail=0
2 2025-11-24T16:00:02.000000001Z LogonRejected key=77 addr=2001:db8::5 reason=CLOCK_SKEW session=0/9/1 reactor=0 detail=0
3 2025-11-24T16:00:03.000000000Z Terminated key=1001 addr=10.1.2.3 reason=BAD_MAC session=1/2/3 reactor=1 detail=0
4 2025-11-24T16:00:04.000000000Z Reload key=0 addr=- reason=- session=- reactor=- detail=12
5 2025-11-24T16:00:05.000000000Z Gap key=0 addr=- reason=- session=- reactor=1 detail=5
";
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn show_json_prints_one_exact_object_per_line() {
    let image = fixed_image();
    let mut out = Vec::new();
    assert_eq!(show_image(&image, true, &mut out).unwrap(), 6);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);

    let report = verify_image(&image, &VerifyOptions::default()).unwrap();
    let expected_2 = "{\"index\":2,\"time\":\"2025-11-24T16:00:02.000000001Z\",\"time_ns\":1764000002000000001,\
                      \"kind\":\"LogonRejected\",\"key_id\":77,\"addr\":\"2001:db8::5\",\"reason\":\"CLOCK_SKEW\",\
                      \"reason_code\":2,\"session\":\"0/9/1\",\"reactor\":0,\"detail\":0,\"hash\":\"";
    assert!(lines[2].starts_with(expected_2), "{}", lines[2]);
    let expected_4 = "{\"index\":4,\"time\":\"2025-11-24T16:00:04.000000000Z\",\"time_ns\":1764000004000000000,\
                      \"kind\":\"Reload\",\"key_id\":0,\"addr\":null,\"reason\":null,\"reason_code\":0,\
                      \"session\":null,\"reactor\":null,\"detail\":12,\"hash\":\"";
    assert!(lines[4].starts_with(expected_4), "{}", lines[4]);

    // Every line is valid JSON, and the last record's hash is verify's.
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(v["index"], i as u64);
    }
    let last: serde_json::Value = serde_json::from_str(lines[5]).unwrap();
    assert_eq!(last["hash"], hex(&report.last_hash));
    assert_eq!(last["kind"], "Gap");
    assert_eq!(last["detail"], 5);
}

// Writer thread ---------------------------------------------------------

#[test]
fn the_writer_drains_two_rings_and_stops_cleanly() {
    const PER_RING: u32 = 5_000;
    let path = TempPath::new("two-rings");
    let journal = Journal::open(&path, 16_384).unwrap();
    let (tx0, rx0) = ring::channel::<AuditEvent>(64);
    let (tx1, rx1) = ring::channel::<AuditEvent>(64);
    let health = Arc::new(JournalHealth::new());
    let stop = Arc::new(AtomicBool::new(false));
    let policy = FlushPolicy {
        records_max: 16,
        interval_ns: 1_000_000,
    };
    let writer = JournalWriter::spawn_with(
        journal,
        vec![rx0, rx1],
        Arc::clone(&health),
        Arc::clone(&stop),
        policy,
    );
    let producers: Vec<_> = [(0u16, tx0), (1u16, tx1)]
        .into_iter()
        .map(|(reactor, mut tx)| {
            thread::spawn(move || {
                for i in 0..PER_RING {
                    let mut e = AuditEvent::gap(T0 + u64::from(i), reactor, i);
                    // Spin on a full ring: this test wants every event.
                    while let Err(back) = tx.try_push(e) {
                        e = back;
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    let stats = writer.join().unwrap();
    let total = 1 + 2 * u64::from(PER_RING);
    assert_eq!(stats.records, total);
    assert_eq!(stats.failure, None);
    assert!(stats.flushes >= total / 16, "{stats:?}");
    assert!(health.is_healthy());
    assert_eq!(health.durable_records(), total);
    assert_eq!(verify(&path).unwrap().records, total);

    // Each ring's events are in the journal in their order.
    let bytes = fs::read(&*path).unwrap();
    let mut next = [0u32; 2];
    for index in 1..total {
        let mut slot = [0u8; RECORD_SIZE];
        slot.copy_from_slice(&bytes[slot_range(index)]);
        let Slot::Committed(record) = decode_slot(&slot) else {
            panic!("slot {index}")
        };
        let r = record.reactor as usize;
        assert_eq!(record.detail, next[r]);
        next[r] += 1;
    }
    assert_eq!(next, [PER_RING, PER_RING]);
}

// CLI --------------------------------------------------------------------

fn run_cli(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = audit_main(&args, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn the_audit_command_verifies_and_shows() {
    let (path, hashes) = tamper("cli", |_| {});
    let file = path.to_str().unwrap();
    let last = hex(&hashes[RECORDS as usize - 1]);

    let (code, out, _) = run_cli(&["verify", file]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("records {RECORDS} of {CAPACITY} last-hash {last}")),
        "{out}"
    );

    let (code, _, _) = run_cli(&[
        "verify",
        file,
        "--expect-records",
        "10",
        "--expect-last",
        &last,
    ]);
    assert_eq!(code, 0);
    let (code, _, err) = run_cli(&["verify", file, "--expect-records", "11"]);
    assert_eq!(code, 1);
    assert!(err.contains("record 10:"), "{err}");

    let (code, out, _) = run_cli(&["show", file, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), RECORDS as usize);

    assert_eq!(run_cli(&["verify"]).0, 2);
    assert_eq!(run_cli(&["verify", file, "--expect-last", "abc"]).0, 2);
    assert_eq!(run_cli(&["show", file, "--yaml"]).0, 2);
    assert_eq!(run_cli(&["frobnicate"]).0, 2);
    assert_eq!(run_cli(&["verify", "/nonexistent/ordergate.audit"]).0, 1);
}

/// A show that meets a bad record says so and exits 1, after printing the
/// records before it; it used to stop there and exit 0, as if the file
/// ended.
#[test]
fn show_reports_a_corrupt_record_and_exits_non_zero() {
    let (path, _) = tamper("show-bad", |b| b[slot_range(4).start + 8] ^= 0x01);
    let file = path.to_str().unwrap();
    let (code, out, err) = run_cli(&["show", file]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(err.contains("record 4:"), "{err}");
    assert!(err.contains("commit field does not match"), "{err}");
}
