//! The tamper-evident audit journal: every security event, appended by one
//! thread to preallocated, memory-mapped segment files as fixed-size,
//! hash-chained, commit-last records. `docs/JOURNAL.md` has the same layout
//! and the verification rules, for operators.
//!
//! # Data flow
//!
//! ```text
//!  reactor 0 ── AuditSink ──▶ SPSC ring<AuditEvent> ──┐
//!  reactor 1 ── AuditSink ──▶ SPSC ring<AuditEvent> ──┼──▶ JournalWriter thread ──────────────▶ Journal ──▶ Storage
//!  control   ── AuditSink ──▶ SPSC ring<AuditEvent> ──┘     drain; pre-auth events ─▶ Aggregator  (segment files,
//!                                                           (fold, 1 s window) ─▶ PreAuthAggregate   or MemStorage)
//!                                                           everything else ─▶ append; flush per     │ full: roll
//!       ▲                                                   policy; high-water alarm                 ▼ over
//!       └── JournalHealth::is_healthy(), figures() ◀───────────────────┘ failed on I/O error,  next segment
//!                                                                        rollover failure, or
//!                                                                        full with rollover off
//! ```
//!
//! A reactor never does journal I/O: [`AuditSink::record`] is one
//! `try_push` of a 64-byte [`AuditEvent`]. A full ring drops the event and
//! counts it; the count is pushed as a [`AuditKind::Gap`] record before the
//! next event that fits, so a gap in the journal is explicit, never silent.
//! Before admitting a logon the session code checks
//! [`JournalHealth::is_healthy`]: once the journal cannot take records
//! (write or flush error, a rollover that failed, a full file with rollover
//! off) logons are refused (fail closed). At each stats publish a reactor
//! copies [`JournalHealth::figures`] into its counters (stats ids 600–612).
//!
//! # Pre-auth aggregates
//!
//! Events of peers that never authenticated — a refused logon of any
//! reason ([`AuditKind::LogonRejected`], only ever sent before logon) and a
//! logon timeout ([`AuditKind::LogonTimeout`]); [`AuditKind::is_pre_auth`]
//! lists them — are not written one per connection: the journal thread
//! folds them ([`aggregate`]) into one
//! [`PreAuthAggregate`](AuditKind::PreAuthAggregate) record per
//! (source prefix, kind, reason) per window:
//!
//! ```text
//!  key    = (IPv4 address | IPv6 /64, folded kind, reason)
//!  record = time_ns first event · last_ns last event · detail count ·
//!           key_id (if all named the same key, else 0) · reactor (same, else 0xffff)
//!  window = JOURNAL_AGGREGATE_WINDOW_NS (1 s) from the first fold; also
//!           written at stop, and early if both tables are full
//!  table  = JOURNAL_AGGREGATE_SLOTS (32) address keys; a new key that does not
//!           fit goes to an "other addresses" key (addr ::) of its kind and
//!           reason, JOURNAL_AGGREGATE_OVERFLOW_SLOTS (16) of them
//! ```
//!
//! So unauthenticated traffic adds at most 48 records per second whatever
//! its number of connections or addresses, and one per second per reason
//! from one address; the 3,000 connections of `tests/journal_flood.rs` add
//! one. Given up: the per-connection session id, and the key id when the
//! refusals of one key named several. Folding is the journal thread's work
//! (a table lookup per event); the reactor's side is unchanged.
//!
//! # Segments and rollover
//!
//! The journal is a chain of segment files: `PATH` (segment 0), `PATH.1`,
//! `PATH.2`, … each of `audit_capacity` slots when created. When a segment
//! is full and rollover is on (the default), the journal thread:
//!
//! ```text
//!  1. flushes the full segment (msync)
//!  2. builds segment n+1: header { segment n+1, base_index = records so far,
//!                                  prev_file_id = segment n's file_id }
//!                         record 0 = SegmentStart { index base_index,
//!                                  key_id‖session‖addr = hash of segment n's last record }
//!  3. creates PATH.n+1 with both in place (PATH.n+1.creating, posix_fallocate,
//!     fsync, rename, fsync of the directory: whole or absent after a crash),
//!     and appends there from then on
//! ```
//!
//! Record indices are global (`base_index + slot`), so the chain, the
//! indices and the anchors run across segments. On start the gateway opens
//! the highest-numbered segment present. If creating the next segment
//! fails (disk full, a file in the way) the journal fails closed as a full
//! one would: `journal_rollover_failures` counts it, stderr says why, new
//! logons are refused.
//!
//! The number of segments is not bounded: the disk is the bound. An audit
//! trail that deletes its own oldest records would let an attacker erase
//! what it did by flooding; old segments are the operator's to archive
//! (`verify` accepts a chain whose first segments were moved away, and says
//! from which segment it checked). Disk use under a flood is bounded by the
//! aggregation above: at most ~6 KB/s from unauthenticated traffic.
//!
//! With rollover off the journal is one file that fails closed when full,
//! as before; to keep pre-auth traffic from getting it there, the slots
//! past the high-water mark are a reserve that pre-auth aggregates do not
//! enter (counted in `journal_preauth_unjournaled` instead).
//!
//! # High water
//!
//! When a segment reaches [`JOURNAL_HIGH_WATER_PERCENT`] (90%) of its
//! slots, the journal thread prints one line to stderr (serve's output) and
//! counts it in `journal_high_water`, once per segment.
//!
//! # File layout
//!
//! All integers little-endian. Each file is preallocated (`posix_fallocate`)
//! to exactly `HEADER_SIZE + capacity × RECORD_SIZE` bytes at creation and
//! never changes length; unused slots are zero.
//!
//! ```text
//!  offset 0                    128                 256                        128 + 128·capacity
//!  ┌───────────────────────────┬───────────────────┬───────────────────┬─────┬───────────────────┐
//!  │ header                    │ record 0          │ record 1          │ ... │ record cap-1      │
//!  └───────────────────────────┴───────────────────┴───────────────────┴─────┴───────────────────┘
//!
//!  header (HEADER_SIZE = 128)
//!  +0    magic        [u8; 8]   "OGAUDIT1"                       HEADER_MAGIC_OFFSET
//!  +8    version      u32       3 (1 and 2 are read too)         HEADER_VERSION_OFFSET
//!  +12   record_size  u32       128                              HEADER_RECORD_SIZE_OFFSET
//!  +16   capacity     u64       record slots                     HEADER_CAPACITY_OFFSET
//!  +24   created_ns   u64       Unix epoch ns                    HEADER_CREATED_NS_OFFSET
//!  +32   file_id      [u8; 16]  random (getrandom)               HEADER_FILE_ID_OFFSET
//!  +48   segment      u64       0 = the first                    HEADER_SEGMENT_OFFSET
//!  +56   base_index   u64       global index of record 0         HEADER_BASE_INDEX_OFFSET
//!  +64   prev_file_id [u8; 16]  previous segment's file_id       HEADER_PREV_FILE_ID_OFFSET
//!                               (0 for segment 0)
//!  +80   reserved     [u8; 16]  zero                             HEADER_RESERVED_OFFSET
//!  +96   header_hash  [u8; 32]  SHA-256(header[0..96])           HEADER_HASH_OFFSET
//!  +128                                                          HEADER_SIZE
//!
//!  record (RECORD_SIZE = 128), slot i at HEADER_SIZE + i × RECORD_SIZE
//!  +0    index        u64       base_index + i                   RECORD_INDEX_OFFSET
//!  +8    time_ns      u64       Unix epoch ns                    RECORD_TIME_OFFSET
//!  +16   key_id       u64                                        RECORD_KEY_ID_OFFSET
//!  +24   session      u64       SessionId raw, 0 = none          RECORD_SESSION_OFFSET
//!  +32   addr         [u8; 16]  IPv6 / IPv4-mapped, 0 = none     RECORD_ADDR_OFFSET
//!  +48   detail       u32       kind-specific count              RECORD_DETAIL_OFFSET
//!  +52   reason       u16       wire code for the kind           RECORD_REASON_OFFSET
//!  +54   reactor      u16       0xffff = control thread          RECORD_REACTOR_OFFSET
//!  +56   kind         u8        AuditKind, 1..=15                RECORD_KIND_OFFSET
//!  +57   of_kind      u8        PreAuthAggregate: kind folded;   RECORD_OF_KIND_OFFSET
//!                               else 0
//!  +58   reserved     [u8; 6]   zero                             RECORD_RESERVED_A_OFFSET
//!  +64   prev_hash    [u8; 32]  hash of record i-1               RECORD_PREV_HASH_OFFSET
//!                               (record 0: header_hash)
//!  +96   last_ns      u64       PreAuthAggregate: last event's   RECORD_LAST_NS_OFFSET
//!                               time; LogonAccepted (v3): the
//!                               Logon's request time; Checkpoint:
//!                               the anchor key's tag; else 0
//!  +104  reserved     [u8; 16]  zero                             RECORD_RESERVED_B_OFFSET
//!  +120  commit       u64       hash(record i)[0..8], WRITTEN    RECORD_COMMIT_OFFSET
//!                               LAST
//!  +128                                                          RECORD_SIZE
//!
//!  hash(record i) = SHA-256(record i bytes [0 .. 120))
//!  SegmentStart (kind 14, record 0 of segments ≥ 1 and nowhere else):
//!  bytes 16..48 (key_id, session, addr) = hash of the previous segment's last record
//!  Checkpoint (kind 15, only with an anchor key; drawn in [`anchor`]):
//!  bytes 16..48 = HMAC-SHA256(anchor key, domain ‖ the record with those bytes zero),
//!  detail = most records between checkpoints, reason = PERIODIC | SEGMENT_END | CLOSE
//! ```
//!
//! Version 2 gave meaning to bytes version 1 kept zero (header 48..80,
//! record 57 and 96..104) and added kinds 12–14; a version-1 file reads as
//! a segment 0 and is continued as it is (its header is never rewritten),
//! so it may then hold records of kinds 12–14, which older builds report as
//! undefined. Version 3 stores a LogonAccepted's request time in bytes
//! 96..104 ([`floors`]: the replay floors read back at start-up) and adds
//! kind 15, the Checkpoint ([`anchor`]); older files are continued as they
//! are, likewise.
//!
//! Every offset constant (in [`format`](mod@format)) is defined as the previous one plus
//! the previous field's size, and the sizes are pinned by `const`
//! assertions. Records are 128-aligned, so none straddles a 4 KiB page
//! (the unit of mmap write-back) or a 512-byte sector.
//!
//! ## Why the commit is a hash prefix
//!
//! The commit field plays the role of Aeron's length-last field: a slot
//! whose commit is not the expected value was never (completely) written.
//! The expected value is the first 8 bytes of the record's own hash, not a
//! constant, so:
//!
//! - a record torn by write-back (the commit reached the disk, some earlier
//!   bytes did not) reads as not written even when it is the last record and
//!   no successor's `prev_hash` could catch it;
//! - every byte of the 128 is bound: bytes 0..120 by the hash, the commit by
//!   being that hash's prefix;
//! - one SHA-256 per record serves both the commit and the chain: the full
//!   32 bytes become the next record's `prev_hash`. (The chain therefore
//!   hashes bytes 0..120 of the previous record rather than all 128; the
//!   last 8 are a function of those.)
//!
//! # Append and durability policy
//!
//! ```text
//!  append(e):  bytes = encode(index, prev_hash, e); h = SHA-256(bytes[0..120])
//!              1. write bytes[0..120]           memcpy into the mapping (page cache)
//!              2. fence(Release)
//!              3. write commit = h[0..8]        the record now exists for any reader
//!              prev_hash = h; records += 1
//!  flush():    msync(MS_SYNC) of the unflushed records' pages; blocks the
//!              journal thread only
//! ```
//!
//! The journal thread flushes when [`FLUSH_RECORDS_MAX`] records are
//! unflushed, or the oldest unflushed record is [`FLUSH_INTERVAL_NS`] old,
//! whichever comes first; right after the JournalOpened record; and on
//! shutdown. Reactors never wait for it.
//!
//! What a failure can lose:
//!
//! - gateway process crash (panic = abort, SIGKILL): nothing that was
//!   appended (the pages belong to the kernel); the events still in the
//!   rings (at most the rings' capacity); a record being appended is torn
//!   and discarded on reopen;
//! - kernel crash or power loss: also the unflushed records: at most
//!   `FLUSH_RECORDS_MAX` records or `FLUSH_INTERVAL_NS` of events.
//!
//! A failed flush fails the journal for good: after a failed `msync` the
//! kernel may already have dropped the dirty pages ("fsyncgate"), so no
//! later flush could prove them durable.
//!
//! Cost per record on the journal thread (`benches/journal.rs`, medians on
//! the 2-core development VM, temp dir on a virtio disk): append 226 ns
//! (the SHA-256 is most of it); append + flush every record 135 µs (the
//! msync); 64 appends + one flush 254 µs, i.e. ~4 µs per record under the
//! default policy at full load.
//!
//! # Reopen and recovery
//!
//! [`Journal::open_segments`] opens the latest segment present (the highest
//! N of `PATH.N`, else `PATH`); [`Journal::open`] checks that segment's
//! whole chain (one SHA-256 per record, ~250 ns measured: about a quarter
//! of a second for 2^20 records) and continues after the last committed,
//! chained record. Crash residue after it (a torn record; or,
//! after a power loss, records written after one that was lost) is zeroed
//! and flushed, provided it lies within [`RECOVERY_WINDOW_RECORDS`] slots of
//! the end, which is all a crash can leave when at most `FLUSH_RECORDS_MAX`
//! records are ever unflushed. The JournalOpened record then says
//! `RECOVERED` with the number of slots discarded. Anything else (a bad
//! header, a committed record that does not chain, residue further out) is
//! [`JournalError::Corrupt`]: the file is left as it is and the gateway does
//! not start on it; an operator moves it aside.
//!
//! # Verification and its limits
//!
//! [`verify()`] checks each segment from the one it is given to the last:
//! the header hash; that slot `i` holds a committed record with
//! `index == base_index + i` and the previous hash; that a continuation
//! segment's record 0, and only it, is its SegmentStart; that after the
//! first empty slot every slot is empty; that the file is as long as the
//! header says. Between segments: the next header names this segment's
//! number + 1 and file id and continues from its record count, and its
//! SegmentStart carries this segment's last hash. It names the first bad
//! (global) index:
//!
//! | tampering                              | named                               |
//! |----------------------------------------|-------------------------------------|
//! | a byte of record k edited              | k (commit no longer matches)        |
//! | record k deleted, later ones shifted   | k (index field says k+1)            |
//! | records a < b swapped                  | a                                   |
//! | file truncated inside record k         | k (file shorter than header says)   |
//! | record k edited, its commit recomputed | k+1 (prev_hash breaks)              |
//! | last record k of a segment removed     | k (the next segment starts at k+1)  |
//! | last record k of a segment rewritten   | k (the next SegmentStart disagrees) |
//! | a middle segment removed or replaced   | header (segment number, file id)    |
//! | last K records zeroed                  | only with an anchor, see below      |
//!
//! The chain has no secret key. Whoever can write the files can remove the
//! last K records (zero them, keeping the length, or delete the last
//! segment files) or rewrite any suffix and recompute every hash after it,
//! and the journal still verifies. Only an anchor kept elsewhere detects
//! that: `verify` prints the record count and the last hash; an operator
//! (or a cron job shipping it to another host) records both, and later runs
//! verify with `--expect-records N` (the journal must hold at least N
//! records) and `--expect-last HASH` (record N-1 must have that hash;
//! without `--expect-records`, the last record must). With an anchor key
//! the journal anchors itself: [`anchor`] checkpoints, checked by
//! [`verify_anchored`] (`--anchor-key`). The journal is also
//! open to its own process: the file is locked (`flock`) against a second
//! gateway, not against root.
//!
//! [`JOURNAL_HIGH_WATER_PERCENT`]: crate::constants::JOURNAL_HIGH_WATER_PERCENT

pub mod aggregate;
mod appender;
mod cli;
pub mod floors;
mod scan;
pub mod storage;
mod verify;
mod writer;

/// The audit event and the record format are sans-I/O and live in
/// `ordergate_core::audit`; re-exported here, where the journal's code and
/// its callers have always found them.
pub use ordergate_core::audit::{anchor, event, format};

pub use anchor::AnchorKey;
pub use appender::{Journal, JournalError};
pub use cli::{AuditCommand, ShowArgs, USAGE, VerifyArgs, audit_main, audit_run};
pub use event::{ADDR_NONE, AuditEvent, AuditKind, CheckpointKind, OpenKind, from_ip, to_ip};
pub use floors::{LogonFloors, read_logon_floors};
pub use format::{Extra, HEADER_INDEX, Hash, hex, parse_hash};
pub use storage::{
    FileSegments, MemSegments, MemStorage, MmapStorage, SegmentFactory, Storage, latest_segment,
    segment_path,
};
pub use verify::{
    AnchorReport, Anchoring, VerifyError, VerifyOptions, VerifyReport, rfc3339, show, show_image,
    verify, verify_anchored, verify_image, verify_images, verify_images_anchored, verify_with,
};
pub use writer::{
    AuditSink, FailReason, FlushPolicy, JournalFigures, JournalHealth, JournalStats, JournalWriter,
    WriterConfig,
};

// The journal's limits, defined in `constants` with their reasons; here
// under the names the journal's code uses.
pub use crate::constants::{
    AUDIT_RING_CAPACITY_DEFAULT, JOURNAL_CAPACITY_RECORDS_DEFAULT as CAPACITY_RECORDS_DEFAULT,
    JOURNAL_FLUSH_INTERVAL_NS as FLUSH_INTERVAL_NS, JOURNAL_FLUSH_RECORDS_MAX as FLUSH_RECORDS_MAX,
    JOURNAL_IDLE_SLEEP_NS as IDLE_SLEEP_NS,
    JOURNAL_RECOVERY_WINDOW_RECORDS as RECOVERY_WINDOW_RECORDS,
};
