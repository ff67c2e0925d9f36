//! The tamper-evident audit journal: every security event, appended by one
//! thread to a preallocated, memory-mapped file as fixed-size, hash-chained,
//! commit-last records. `docs/JOURNAL.md` has the same layout and the
//! verification rules, for operators.
//!
//! # Data flow
//!
//! ```text
//!  reactor 0 ── AuditSink ──▶ SPSC ring<AuditEvent> ──┐
//!  reactor 1 ── AuditSink ──▶ SPSC ring<AuditEvent> ──┼──▶ JournalWriter thread ──▶ Journal ──▶ Storage
//!  control   ── AuditSink ──▶ SPSC ring<AuditEvent> ──┘     drain, append,           (mmap file, or
//!                                                           flush per policy          MemStorage in tests)
//!       ▲                                                         │
//!       └──────────── JournalHealth::is_healthy() ◀───────────────┘ failed on Full / I/O error
//! ```
//!
//! A reactor never does journal I/O: [`AuditSink::record`] is one
//! `try_push` of a 56-byte [`AuditEvent`]. A full ring drops the event and
//! counts it; the count is pushed as a [`AuditKind::Gap`] record before the
//! next event that fits, so a gap in the journal is explicit, never silent.
//! Before admitting a logon the session code checks
//! [`JournalHealth::is_healthy`]: once the journal cannot take records (file
//! full, write or flush error) logons are refused (fail closed).
//!
//! # File layout
//!
//! All integers little-endian. The file is preallocated (`posix_fallocate`)
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
//!  +8    version      u32       1                                HEADER_VERSION_OFFSET
//!  +12   record_size  u32       128                              HEADER_RECORD_SIZE_OFFSET
//!  +16   capacity     u64       record slots                     HEADER_CAPACITY_OFFSET
//!  +24   created_ns   u64       Unix epoch ns                    HEADER_CREATED_NS_OFFSET
//!  +32   file_id      [u8; 16]  random (getrandom)               HEADER_FILE_ID_OFFSET
//!  +48   reserved     [u8; 48]  zero                             HEADER_RESERVED_OFFSET
//!  +96   header_hash  [u8; 32]  SHA-256(header[0..96])           HEADER_HASH_OFFSET
//!  +128                                                          HEADER_SIZE
//!
//!  record (RECORD_SIZE = 128), slot i at HEADER_SIZE + i × RECORD_SIZE
//!  +0    index        u64       == i                             RECORD_INDEX_OFFSET
//!  +8    time_ns      u64       Unix epoch ns                    RECORD_TIME_OFFSET
//!  +16   key_id       u64                                        RECORD_KEY_ID_OFFSET
//!  +24   session      u64       SessionId raw, 0 = none          RECORD_SESSION_OFFSET
//!  +32   addr         [u8; 16]  IPv6 / IPv4-mapped, 0 = none     RECORD_ADDR_OFFSET
//!  +48   detail       u32       kind-specific count              RECORD_DETAIL_OFFSET
//!  +52   reason       u16       wire code for the kind           RECORD_REASON_OFFSET
//!  +54   reactor      u16       0xffff = control thread          RECORD_REACTOR_OFFSET
//!  +56   kind         u8        AuditKind, 1..=11                RECORD_KIND_OFFSET
//!  +57   reserved     [u8; 7]   zero                             RECORD_RESERVED_A_OFFSET
//!  +64   prev_hash    [u8; 32]  hash of record i-1               RECORD_PREV_HASH_OFFSET
//!                               (record 0: header_hash)
//!  +96   reserved     [u8; 24]  zero                             RECORD_RESERVED_B_OFFSET
//!  +120  commit       u64       hash(record i)[0..8], WRITTEN    RECORD_COMMIT_OFFSET
//!                               LAST
//!  +128                                                          RECORD_SIZE
//!
//!  hash(record i) = SHA-256(record i bytes [0 .. 120))
//! ```
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
//! [`Journal::open`] checks the whole chain (one SHA-256 per record, ~250 ns
//! measured: about a quarter of a second for 2^20 records) and continues after the
//! last committed, chained record. Crash residue after it (a torn record; or,
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
//! [`verify()`] checks the header hash; that slot `i` holds a committed record
//! with `index == i` and the previous hash; that after the first empty slot
//! every slot is empty; that the file is as long as the header says. It
//! names the first bad index:
//!
//! | tampering                              | named                               |
//! |----------------------------------------|-------------------------------------|
//! | a byte of record k edited              | k (commit no longer matches)        |
//! | record k deleted, later ones shifted   | k (index field says k+1)            |
//! | records a < b swapped                  | a                                   |
//! | file truncated inside record k         | k (file shorter than header says)   |
//! | record k edited, its commit recomputed | k+1 (prev_hash breaks)              |
//! | last K records zeroed                  | only with an anchor, see below      |
//!
//! The chain has no secret key. Whoever can write the file can remove the
//! last K records (zero them, keeping the length) or rewrite any suffix and
//! recompute every hash after it, and the file still verifies. Only an
//! anchor kept elsewhere detects that: `verify` prints the record count and
//! the last hash; an operator (or a cron job shipping it to another host)
//! records both, and later runs verify with `--expect-records N` (the
//! journal must hold at least N records) and `--expect-last HASH` (record
//! N-1 must have that hash; without `--expect-records`, the last record
//! must). The journal is also open to its own process: the file is locked
//! (`flock`) against a second gateway, not against root.

pub mod aggregate;
mod appender;
mod cli;
pub mod event;
pub mod format;
mod scan;
pub mod storage;
mod verify;
mod writer;

pub use appender::{Journal, JournalError, wall_ns};
pub use cli::{USAGE, audit_main};
pub use event::{ADDR_NONE, AuditEvent, AuditKind, OpenKind, from_ip, to_ip};
pub use format::{Extra, HEADER_INDEX, Hash, hex, parse_hash};
pub use storage::{
    FileSegments, MemSegments, MemStorage, MmapStorage, SegmentFactory, Storage, latest_segment,
    segment_path,
};
pub use verify::{
    VerifyError, VerifyOptions, VerifyReport, rfc3339, show, show_image, verify, verify_image,
    verify_images, verify_with,
};
pub use writer::{
    AuditSink, FailReason, FlushPolicy, JournalFigures, JournalHealth, JournalStats, JournalWriter,
    WriterConfig,
};

/// Unflushed records after which the journal thread flushes. Bounds what a
/// power loss can take, and the crash residue `open` must accept. Each
/// flush is one msync; 64 records is 8 KiB, two pages.
pub const FLUSH_RECORDS_MAX: u64 = 64;

/// Age of the oldest unflushed record after which the journal thread
/// flushes: with security events as rare as logons, this is the bound that
/// usually applies (10 ms of events lost at most on power loss).
pub const FLUSH_INTERVAL_NS: u64 = 10_000_000;

/// Slots after the last good record in which `open` accepts (and zeroes)
/// crash residue. At least `FLUSH_RECORDS_MAX`: a crash can only leave
/// residue in unflushed slots.
pub const RECOVERY_WINDOW_RECORDS: u64 = FLUSH_RECORDS_MAX;

/// What the journal thread sleeps when a turn finds every ring empty: audit
/// latency, not throughput, and the thread costs nothing while idle. A ring
/// of `AUDIT_RING_CAPACITY_DEFAULT` fills in one sleep only above ~1 M
/// events/s from one reactor.
pub const IDLE_SLEEP_NS: u64 = 1_000_000;

/// Journal slots when the config says nothing: 2^20 records, 128 MiB, is
/// months of logons for a venue's members. A full journal fails closed.
pub const CAPACITY_RECORDS_DEFAULT: u64 = 1 << 20;

/// Slots of each audit ring: 1024 × 56 B = 56 KiB per reactor. A full ring
/// drops and counts events; the count becomes a Gap record.
pub const AUDIT_RING_CAPACITY_DEFAULT: usize = 1024;

const _: () = assert!(FLUSH_RECORDS_MAX >= 1);
const _: () = assert!(FLUSH_RECORDS_MAX <= RECOVERY_WINDOW_RECORDS);
const _: () = assert!(AUDIT_RING_CAPACITY_DEFAULT.is_power_of_two());
const _: () = assert!(CAPACITY_RECORDS_DEFAULT <= format::CAPACITY_RECORDS_MAX);
