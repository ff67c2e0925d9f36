//! SPSC rings in memory shared with another process: the shared-memory
//! engine link.
//!
//! The caller maps the memory (the runtime maps a file with memmap2) and
//! hands it in as a [`ShmRegion`]; this module only lays it out and moves
//! records through it. Everything in the region is reached as `AtomicU64`
//! words: the other process is another program, so nothing it writes is
//! trusted, and no access here is a data race in Rust's model even if it
//! misbehaves. Indices, never pointers, live in the region; a peer index
//! that breaks `0 <= tail - head <= capacity` marks the ring corrupt
//! (counted, the link is then treated as dead), and every record read is
//! decoded with its enum bytes checked ([`super::records`]).
//!
//! # File layout (all offsets in bytes; all fields u64 little-endian)
//!
//! ```text
//!  0      header (4096)
//!         +0    magic "OGSHMLK1"      written last by the creator (Release)
//!         +8    version = 1
//!         +16   record size = 64
//!         +24   capacity (slots per ring, power of two)
//!         +32   pairs (ring pairs: one per gateway reactor)
//!         +40   gateway id
//!         +48   cod slots per pair (session slots in the COD table)
//!         +128  attached: 0 = no gateway yet, else the gateway's pid
//!               (a gateway attaches once: compare-and-swap from 0)
//!         +256  engine state: 1 running, 2 stopped cleanly
//!  4096   pair 0: command ring (gateway → engine), event ring (engine → gateway)
//!         …     pair p at 4096 + p × 2 × ring_bytes
//!         then the COD table: pairs × cod_slots × u64
//!
//!  ring (ring_bytes = 256 + capacity × 64):
//!  +0     consumer line (128): head                      written by the consumer
//!  +128   producer line (128): tail, beat, verdict       written by the producer
//!  +256   slots: capacity × 64 bytes, index i in slot i & (capacity - 1)
//! ```
//!
//! `head` and `tail` are 128 bytes apart for the same reason as in
//! [`crate::ring`] (the adjacent-line prefetcher). The producer's line also
//! holds its side's liveness: `beat` (bumped at most every
//! [`BEAT_INTERVAL_NS`] on the producer's turn: the command ring's beat is
//! the gateway's, the event ring's the engine's) and `verdict` (the
//! producer's judgement of its peer: 1 = the peer is dead, see
//! `link::EngineLink`). Both are written only by the producer's process.
//!
//! # Protocol
//!
//! That of [`crate::ring`] (tail Release / Acquire publishes slot writes,
//! head Release / Acquire returns slots), with words instead of `T` and one
//! difference on the consumer side: [`ShmConsumer::pop`] publishes the head
//! of a record only at the next `pop` (or [`ShmConsumer::commit`]), so a
//! command the engine took but had not finished when it died is still in
//! `[head, tail)` for the gateway to answer.

use std::any::Any;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::records::{LinkRecord, RECORD_SIZE, RECORD_WORDS};

/// "OGSHMLK1", little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"OGSHMLK1");
pub const VERSION: u64 = 1;
/// The header: one page.
pub const HEADER_SIZE: usize = 4096;
/// A ring's two index lines.
pub const RING_HEADER_SIZE: usize = 256;
/// The alignment the region must have (the index lines are 128 apart).
pub const REGION_ALIGN: usize = 128;
/// A side's beat moves at most this often: its line is then written about
/// a thousand times a second rather than on every turn, while a dead side
/// still shows within [`crate::constants::ENGINE_LIVENESS_TIMEOUT_NS`].
pub const BEAT_INTERVAL_NS: u64 = 1_000_000;

const H_MAGIC: usize = 0;
const H_VERSION: usize = 8;
const H_RECORD: usize = 16;
const H_CAPACITY: usize = 24;
const H_PAIRS: usize = 32;
const H_GATEWAY: usize = 40;
const H_COD_SLOTS: usize = 48;
const H_ATTACHED: usize = 128;
const H_ENGINE_STATE: usize = 256;

const R_HEAD: usize = 0;
const R_TAIL: usize = 128;
const R_BEAT: usize = 136;
const R_VERDICT: usize = 144;

/// `engine state` values.
pub const ENGINE_RUNNING: u64 = 1;
pub const ENGINE_STOPPED: u64 = 2;
/// `verdict` value: the producer judged its peer dead.
pub const VERDICT_PEER_DEAD: u64 = 1;

/// What a link file holds, as the engine creates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmParams {
    /// Slots per ring: a power of two in `RING_CAPACITY_MIN..=RING_CAPACITY_MAX`.
    pub capacity: usize,
    /// Ring pairs: the most reactors a gateway on this file may run.
    pub pairs: usize,
    pub gateway_id: u32,
    /// Session slots per pair in the COD table (`SESSIONS_PER_REACTOR_MAX`).
    pub cod_slots: usize,
}

impl ShmParams {
    pub fn ring_bytes(&self) -> usize {
        RING_HEADER_SIZE + self.capacity * RECORD_SIZE
    }

    fn cod_offset(&self) -> usize {
        HEADER_SIZE + self.pairs * 2 * self.ring_bytes()
    }

    /// The size of the file, a whole number of pages.
    pub fn file_size(&self) -> usize {
        (self.cod_offset() + self.pairs * self.cod_slots * 8).next_multiple_of(4096)
    }

    fn check(&self) -> Result<(), ShmError> {
        use crate::constants::{REACTORS_MAX, RING_CAPACITY_MAX, RING_CAPACITY_MIN};
        if !self.capacity.is_power_of_two()
            || !(RING_CAPACITY_MIN..=RING_CAPACITY_MAX).contains(&self.capacity)
        {
            return Err(ShmError::Header("capacity"));
        }
        if self.pairs == 0 || self.pairs > REACTORS_MAX {
            return Err(ShmError::Header("pairs"));
        }
        if self.cod_slots == 0 || self.cod_slots > crate::constants::SESSIONS_PER_REACTOR_MAX {
            return Err(ShmError::Header("cod slots"));
        }
        Ok(())
    }
}

/// Why a region could not be used as a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShmError {
    /// The region is not 128-aligned or is smaller than its header says.
    Region,
    /// No creator has finished writing the header (magic missing).
    NotReady,
    /// A header field is out of bounds or another version: which one.
    Header(&'static str),
    /// Another gateway attached to this file already (one attach per
    /// engine run: an old session's events could otherwise reach a new
    /// session with the same id).
    Attached(u64),
    /// The engine stopped.
    EngineStopped,
}

impl std::fmt::Display for ShmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShmError::Region => write!(
                f,
                "the mapping is misaligned or shorter than its header says"
            ),
            ShmError::NotReady => write!(f, "no engine has initialised the file (magic missing)"),
            ShmError::Header(field) => write!(
                f,
                "header field `{field}` is out of bounds or of another version"
            ),
            ShmError::Attached(pid) => write!(
                f,
                "a gateway (pid {pid}) attached to this engine already; restart the engine to attach another"
            ),
            ShmError::EngineStopped => write!(f, "the engine on this file has stopped"),
        }
    }
}

impl std::error::Error for ShmError {}

/// Memory shared with another process, handed in by the caller.
#[derive(Clone)]
pub struct ShmRegion {
    base: NonNull<u8>,
    len: usize,
    /// Keeps the mapping (or heap block) alive while any handle lives.
    _owner: Arc<dyn Any + Send + Sync>,
}

// SAFETY: the region is only ever accessed through `&AtomicU64` words
// (`word`), which are `Sync`; `owner` is `Send + Sync`. Moving or sharing
// the handle between threads therefore shares only atomics.
unsafe impl Send for ShmRegion {}
// SAFETY: as for `Send`.
unsafe impl Sync for ShmRegion {}

/// A 128-aligned line, for [`ShmRegion::heap`].
#[repr(C, align(128))]
struct Line([u64; 16]);

impl ShmRegion {
    /// A region over `len` bytes at `base`, kept alive by `owner`.
    ///
    /// # Safety
    ///
    /// `base..base + len` must be readable and writable for as long as
    /// `owner` lives, and must be accessed by this process only through
    /// this region's handles (other processes may write it at any time:
    /// that is what every read here is built for).
    pub unsafe fn new(
        base: *mut u8,
        len: usize,
        owner: Arc<dyn Any + Send + Sync>,
    ) -> Result<ShmRegion, ShmError> {
        let base = NonNull::new(base).ok_or(ShmError::Region)?;
        if !(base.as_ptr() as usize).is_multiple_of(REGION_ALIGN) || len < HEADER_SIZE {
            return Err(ShmError::Region);
        }
        Ok(ShmRegion {
            base,
            len,
            _owner: owner,
        })
    }

    /// A zeroed region on the heap: two threads of one process playing
    /// gateway and engine (tests, benches).
    pub fn heap(len: usize) -> ShmRegion {
        let lines = len.div_ceil(128);
        let block: Box<[Line]> = (0..lines).map(|_| Line([0; 16])).collect();
        let mut block = std::mem::ManuallyDrop::new(block);
        let base = block.as_mut_ptr().cast::<u8>();
        let owner: Arc<dyn Any + Send + Sync> = Arc::new(HeapBlock {
            ptr: block.as_mut_ptr(),
            lines,
        });
        // SAFETY: `base` is the start of a live, zeroed, 128-aligned
        // allocation of `lines × 128 >= len` bytes that `owner` frees only
        // when dropped, and nothing else holds a reference to it.
        unsafe { ShmRegion::new(base, lines * 128, owner) }.expect("a heap block is aligned")
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The word at byte `offset`.
    ///
    /// # Panics
    ///
    /// If `offset` is not 8-aligned or the word is outside the region (the
    /// layout is checked when a link is opened, so this is a bug here).
    #[inline(always)]
    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= self.len);
        // SAFETY: `base + offset` is inside the region (just checked), which
        // lives as long as `self` (`_owner`), and 8-aligned (base is
        // 128-aligned, offset 8-aligned); AtomicU64 has the size and
        // alignment of u64 and every bit pattern is valid. The region is
        // touched by this process only through such atomics (`new`'s
        // contract), so creating a shared reference is sound.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU64>() }
    }
}

struct HeapBlock {
    ptr: *mut Line,
    lines: usize,
}

// SAFETY: the block is only freed (in `drop`), never accessed through
// `ptr` otherwise; regions access it through atomics.
unsafe impl Send for HeapBlock {}
// SAFETY: as for `Send`.
unsafe impl Sync for HeapBlock {}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        // SAFETY: `ptr, lines` came from a `Box<[Line]>` leaked in `heap`
        // and are dropped only here, once (the Arc's last owner).
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.lines)) });
    }
}

/// A validated link file: its header and where its rings are.
#[derive(Clone)]
pub struct ShmLink {
    region: ShmRegion,
    params: ShmParams,
}

impl ShmLink {
    /// Writes a fresh header into a zeroed region (the engine, once, before
    /// any gateway opens the file). The magic goes last, with Release.
    pub fn create(region: ShmRegion, params: ShmParams) -> Result<ShmLink, ShmError> {
        params.check()?;
        if region.len() < params.file_size() {
            return Err(ShmError::Region);
        }
        let w = |o: usize, v: u64| region.word(o).store(v, Ordering::Relaxed);
        w(H_VERSION, VERSION);
        w(H_RECORD, RECORD_SIZE as u64);
        w(H_CAPACITY, params.capacity as u64);
        w(H_PAIRS, params.pairs as u64);
        w(H_GATEWAY, u64::from(params.gateway_id));
        w(H_COD_SLOTS, params.cod_slots as u64);
        w(H_ENGINE_STATE, ENGINE_RUNNING);
        region.word(H_MAGIC).store(MAGIC, Ordering::Release);
        Ok(ShmLink { region, params })
    }

    /// Reads and checks the header another process wrote.
    pub fn open(region: ShmRegion) -> Result<ShmLink, ShmError> {
        if region.word(H_MAGIC).load(Ordering::Acquire) != MAGIC {
            return Err(ShmError::NotReady);
        }
        let r = |o: usize| region.word(o).load(Ordering::Relaxed);
        if r(H_VERSION) != VERSION {
            return Err(ShmError::Header("version"));
        }
        if r(H_RECORD) != RECORD_SIZE as u64 {
            return Err(ShmError::Header("record size"));
        }
        let fit = |v: u64, name| usize::try_from(v).map_err(|_| ShmError::Header(name));
        let params = ShmParams {
            capacity: fit(r(H_CAPACITY), "capacity")?,
            pairs: fit(r(H_PAIRS), "pairs")?,
            gateway_id: u32::try_from(r(H_GATEWAY)).map_err(|_| ShmError::Header("gateway id"))?,
            cod_slots: fit(r(H_COD_SLOTS), "cod slots")?,
        };
        params.check()?;
        if region.len() < params.file_size() {
            return Err(ShmError::Region);
        }
        Ok(ShmLink { region, params })
    }

    pub fn params(&self) -> &ShmParams {
        &self.params
    }

    /// The gateway attaches (once per engine run): `pid` is recorded.
    pub fn attach(&self, pid: u64) -> Result<(), ShmError> {
        if self.engine_state() == ENGINE_STOPPED {
            return Err(ShmError::EngineStopped);
        }
        self.region
            .word(H_ATTACHED)
            .compare_exchange(0, pid.max(1), Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(ShmError::Attached)
    }

    /// The attached gateway's pid (0: none yet).
    pub fn attached(&self) -> u64 {
        self.region.word(H_ATTACHED).load(Ordering::Acquire)
    }

    pub fn engine_state(&self) -> u64 {
        self.region.word(H_ENGINE_STATE).load(Ordering::Acquire)
    }

    /// The engine says it stopped (a clean exit: the gateway need not wait
    /// out the liveness timeout).
    pub fn set_engine_stopped(&self) {
        self.region
            .word(H_ENGINE_STATE)
            .store(ENGINE_STOPPED, Ordering::Release);
    }

    fn ring(&self, pair: usize, events: bool) -> Ring {
        assert!(pair < self.params.pairs);
        Ring {
            region: self.region.clone(),
            base: HEADER_SIZE + (2 * pair + usize::from(events)) * self.params.ring_bytes(),
            capacity: self.params.capacity as u64,
        }
    }

    /// Pair `pair`'s command ring (gateway → engine).
    pub fn command_ring(&self, pair: usize) -> Ring {
        self.ring(pair, false)
    }

    /// Pair `pair`'s event ring (engine → gateway).
    pub fn event_ring(&self, pair: usize) -> Ring {
        self.ring(pair, true)
    }

    /// Pair `pair`'s cancel-on-disconnect table: one word per session slot,
    /// the id of the slot's session if it asked for cancel-on-disconnect,
    /// else 0. Written by the gateway at logon, read by the engine when it
    /// judges the gateway dead.
    pub fn cod_table(&self, pair: usize) -> CodTable {
        assert!(pair < self.params.pairs);
        CodTable {
            region: self.region.clone(),
            base: self.params.cod_offset() + pair * self.params.cod_slots * 8,
            slots: self.params.cod_slots,
        }
    }
}

/// See [`ShmLink::cod_table`].
#[derive(Clone)]
pub struct CodTable {
    region: ShmRegion,
    base: usize,
    slots: usize,
}

impl CodTable {
    /// Records slot `slot`'s session (`0`: none with cancel-on-disconnect).
    /// Slots beyond the table are ignored (the gateway checks its session
    /// count against `cod_slots` at attach).
    pub fn set(&self, slot: usize, session: u64) {
        if slot < self.slots {
            self.region
                .word(self.base + slot * 8)
                .store(session, Ordering::Release);
        }
    }

    pub fn get(&self, slot: usize) -> u64 {
        if slot < self.slots {
            self.region
                .word(self.base + slot * 8)
                .load(Ordering::Acquire)
        } else {
            0
        }
    }

    pub fn slots(&self) -> usize {
        self.slots
    }
}

/// One ring of a link: where its lines and slots are.
#[derive(Clone)]
pub struct Ring {
    region: ShmRegion,
    base: usize,
    capacity: u64,
}

impl Ring {
    #[inline(always)]
    fn head(&self) -> &AtomicU64 {
        self.region.word(self.base + R_HEAD)
    }
    #[inline(always)]
    fn tail(&self) -> &AtomicU64 {
        self.region.word(self.base + R_TAIL)
    }
    /// The whole region this ring is in (tests: a second opener).
    pub fn region_for_tests(&self) -> ShmRegion {
        self.region.clone()
    }

    /// The producer side's liveness counter.
    #[inline(always)]
    pub fn beat(&self) -> u64 {
        self.region.word(self.base + R_BEAT).load(Ordering::Relaxed)
    }
    /// Bumps the producer side's liveness counter (producer side only).
    #[inline(always)]
    pub fn bump_beat(&self) {
        let w = self.region.word(self.base + R_BEAT);
        w.store(w.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
    /// The producer's verdict on its peer.
    #[inline(always)]
    pub fn verdict(&self) -> u64 {
        self.region
            .word(self.base + R_VERDICT)
            .load(Ordering::Acquire)
    }
    /// Records the producer's verdict (producer side only).
    pub fn set_verdict(&self, v: u64) {
        self.region
            .word(self.base + R_VERDICT)
            .store(v, Ordering::Release);
    }
    /// The indices as published: `(head, tail)`.
    pub fn indices(&self) -> (u64, u64) {
        (
            self.head().load(Ordering::Acquire),
            self.tail().load(Ordering::Acquire),
        )
    }
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    #[inline(always)]
    fn slot_word(&self, index: u64, word: usize) -> &AtomicU64 {
        let slot = (index & (self.capacity - 1)) as usize;
        self.region
            .word(self.base + RING_HEADER_SIZE + slot * RECORD_SIZE + word * 8)
    }

    #[inline(always)]
    fn write_slot(&self, index: u64, words: [u64; RECORD_WORDS]) {
        for (i, w) in words.into_iter().enumerate() {
            self.slot_word(index, i).store(w, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    fn read_slot(&self, index: u64) -> [u64; RECORD_WORDS] {
        let mut words = [0u64; RECORD_WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            *w = self.slot_word(index, i).load(Ordering::Relaxed);
        }
        words
    }

    /// The writing end, continuing from the published tail (a ring is
    /// written by one producer per engine run).
    pub fn producer<T: LinkRecord>(&self) -> ShmProducer<T> {
        let (head, tail) = self.indices();
        ShmProducer {
            ring: self.clone(),
            tail,
            head_cached: if tail.wrapping_sub(head) <= self.capacity {
                head
            } else {
                tail.wrapping_sub(self.capacity)
            },
            corrupt: false,
            _t: std::marker::PhantomData,
        }
    }

    /// The reading end, continuing from the published head.
    pub fn consumer<T: LinkRecord>(&self) -> ShmConsumer<T> {
        let head = self.head().load(Ordering::Acquire);
        ShmConsumer {
            ring: self.clone(),
            head,
            published: head,
            tail_cached: head,
            bad_records: 0,
            corrupt: false,
            _t: std::marker::PhantomData,
        }
    }

    /// Reads the record at `index` without taking it (the gateway answering
    /// a dead engine's unfinished commands).
    pub fn peek<T: LinkRecord>(&self, index: u64) -> Result<T, super::records::RecordError> {
        T::from_words(self.read_slot(index))
    }

    /// Publishes `head` as the consumer (the gateway taking over a dead
    /// engine's command ring).
    pub fn store_head(&self, head: u64) {
        self.head().store(head, Ordering::Release);
    }
}

/// The writing end of a shared-memory ring.
pub struct ShmProducer<T: LinkRecord> {
    ring: Ring,
    tail: u64,
    /// Never ahead of the published head; `tail - head_cached <= capacity`.
    head_cached: u64,
    /// The consumer published a head outside `[tail - capacity, tail]`.
    corrupt: bool,
    _t: std::marker::PhantomData<fn(T)>,
}

impl<T: LinkRecord> ShmProducer<T> {
    /// Appends `value` only if more than `reserve` slots are free;
    /// otherwise hands it back. Never blocks.
    #[inline]
    pub fn try_push_leaving(&mut self, value: T, reserve: usize) -> Result<(), T> {
        let capacity = self.ring.capacity;
        let reserve = reserve as u64;
        if capacity - self.tail.wrapping_sub(self.head_cached) <= reserve {
            self.refresh_head();
            if capacity - self.tail.wrapping_sub(self.head_cached) <= reserve {
                return Err(value);
            }
        }
        // The slot is in [tail, head_cached + capacity): the consumer's
        // Release store of a head above its last read of it was loaded
        // (Acquire) before this write. All slot accesses are atomics.
        self.ring.write_slot(self.tail, value.to_words());
        self.tail = self.tail.wrapping_add(1);
        // Release: publishes the slot's words to the consumer's Acquire.
        self.ring.tail().store(self.tail, Ordering::Release);
        Ok(())
    }

    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), T> {
        self.try_push_leaving(value, 0)
    }

    /// Free slots now (loads the consumer's head unless all are free).
    #[inline]
    pub fn free(&mut self) -> usize {
        let capacity = self.ring.capacity;
        if self.tail.wrapping_sub(self.head_cached) != 0 {
            self.refresh_head();
        }
        (capacity - self.tail.wrapping_sub(self.head_cached)) as usize
    }

    /// Free slots as of the last look at the consumer's head.
    #[inline]
    pub fn free_seen(&self) -> usize {
        (self.ring.capacity - self.tail.wrapping_sub(self.head_cached)) as usize
    }

    pub fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }

    /// Whether the consumer ever published an impossible head.
    pub fn corrupt(&self) -> bool {
        self.corrupt
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    #[inline]
    fn refresh_head(&mut self) {
        let head = self.ring.head().load(Ordering::Acquire);
        // An honest consumer's head is in [head_cached, tail]; anything else
        // is another program's bug: keep the old view (the ring looks full
        // and stays so) and say so.
        if self.tail.wrapping_sub(head) <= self.tail.wrapping_sub(self.head_cached) {
            self.head_cached = head;
        } else {
            self.corrupt = true;
        }
    }
}

/// The reading end of a shared-memory ring.
pub struct ShmConsumer<T: LinkRecord> {
    ring: Ring,
    /// Next record to read.
    head: u64,
    /// The head last stored in the region (`<= head`).
    published: u64,
    /// Never ahead of the published tail; `tail_cached - head <= capacity`.
    tail_cached: u64,
    /// Records refused by [`LinkRecord::from_words`] (skipped).
    pub bad_records: u64,
    /// The producer published a tail outside `[head, head + capacity]`.
    corrupt: bool,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: LinkRecord> ShmConsumer<T> {
    /// Publishes the head of every record taken so far: they are finished.
    #[inline]
    pub fn commit(&mut self) {
        if self.published != self.head {
            self.published = self.head;
            // Release: our reads of those slots happen-before the
            // producer's next writes to them.
            self.ring.head().store(self.head, Ordering::Release);
        }
    }

    /// Takes the next good record (bad ones are counted and skipped),
    /// publishing the head of the previous one first: a record stays in
    /// the ring, as seen by the producer, until the caller has finished it
    /// and come back for the next.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        self.commit();
        loop {
            if self.head == self.tail_cached {
                self.refresh_tail();
                if self.head == self.tail_cached {
                    return None;
                }
            }
            let words = self.ring.read_slot(self.head);
            self.head = self.head.wrapping_add(1);
            match T::from_words(words) {
                Ok(v) => return Some(v),
                Err(_) => self.bad_records += 1,
            }
        }
    }

    /// Takes at most `max` records, calls `f` with each good one, and
    /// publishes the head once at the end. Returns the records taken.
    #[inline]
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        if (self.tail_cached.wrapping_sub(self.head) as usize) < max {
            self.refresh_tail();
        }
        let count = (self.tail_cached.wrapping_sub(self.head) as usize).min(max);
        for _ in 0..count {
            let words = self.ring.read_slot(self.head);
            self.head = self.head.wrapping_add(1);
            match T::from_words(words) {
                Ok(v) => f(v),
                Err(_) => self.bad_records += 1,
            }
        }
        self.commit();
        count
    }

    /// Whether nothing waits (loads the producer's tail if the cached view
    /// says so).
    #[inline]
    pub fn is_empty(&mut self) -> bool {
        if self.head == self.tail_cached {
            self.refresh_tail();
        }
        self.head == self.tail_cached
    }

    pub fn corrupt(&self) -> bool {
        self.corrupt
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    #[inline]
    fn refresh_tail(&mut self) {
        let tail = self.ring.tail().load(Ordering::Acquire);
        if tail.wrapping_sub(self.head) <= self.ring.capacity
            && tail.wrapping_sub(self.tail_cached) <= self.ring.capacity
        {
            self.tail_cached = tail;
        } else {
            self.corrupt = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Command, CommandKind, SessionId};

    fn link(capacity: usize) -> ShmLink {
        let params = ShmParams {
            capacity,
            pairs: 2,
            gateway_id: 1,
            cod_slots: 4,
        };
        ShmLink::create(ShmRegion::heap(params.file_size()), params).unwrap()
    }

    fn cmd(n: u64) -> Command {
        Command {
            cl_ord_id: n,
            ..Command::empty(CommandKind::NewOrder, SessionId(1))
        }
    }

    #[test]
    fn a_second_opener_sees_the_header_and_a_second_attach_is_refused() {
        let a = link(64);
        let b = ShmLink::open(a.region.clone()).unwrap();
        assert_eq!(b.params(), a.params());
        b.attach(42).unwrap();
        assert_eq!(a.attach(43), Err(ShmError::Attached(42)));
    }

    #[test]
    fn a_region_without_magic_or_with_a_bad_field_is_refused() {
        let params = ShmParams {
            capacity: 64,
            pairs: 1,
            gateway_id: 0,
            cod_slots: 4,
        };
        let region = ShmRegion::heap(params.file_size());
        assert_eq!(
            ShmLink::open(region.clone()).err(),
            Some(ShmError::NotReady)
        );
        ShmLink::create(region.clone(), params).unwrap();
        region.word(H_CAPACITY).store(63, Ordering::Relaxed);
        assert_eq!(
            ShmLink::open(region.clone()).err(),
            Some(ShmError::Header("capacity"))
        );
        region.word(H_CAPACITY).store(1 << 40, Ordering::Relaxed);
        assert_eq!(
            ShmLink::open(region).err(),
            Some(ShmError::Header("capacity"))
        );
    }

    #[test]
    fn records_pass_in_order_and_the_ring_fills_and_empties() {
        let l = link(64);
        let mut tx = l.command_ring(1).producer::<Command>();
        let mut rx = l.command_ring(1).consumer::<Command>();
        for round in 0..5u64 {
            for i in 0..64 {
                tx.try_push(cmd(round * 100 + i)).unwrap();
            }
            assert!(tx.try_push(cmd(0)).is_err(), "full");
            for i in 0..64 {
                assert_eq!(rx.pop().unwrap().cl_ord_id, round * 100 + i);
            }
            // The last pop is published only at the next look.
            assert_eq!(tx.free(), 63);
            assert!(rx.pop().is_none());
            assert_eq!(tx.free(), 64);
        }
    }

    #[test]
    fn a_bad_record_is_counted_and_skipped() {
        let l = link(64);
        let ring = l.command_ring(0);
        let mut tx = ring.producer::<Command>();
        let mut rx = ring.consumer::<Command>();
        tx.try_push(cmd(1)).unwrap();
        tx.try_push(cmd(2)).unwrap();
        // Another program scribbles on the first slot's kind byte.
        ring.slot_word(0, 7).store(0xEE, Ordering::Relaxed);
        assert_eq!(rx.pop().unwrap().cl_ord_id, 2);
        assert_eq!(rx.bad_records, 1);
    }

    #[test]
    fn an_impossible_peer_index_marks_the_ring_corrupt_not_ub() {
        let l = link(64);
        let ring = l.command_ring(0);
        let mut tx = ring.producer::<Command>();
        let mut rx = ring.consumer::<Command>();
        ring.tail().store(1000, Ordering::Release);
        assert!(rx.pop().is_none());
        assert!(rx.corrupt());
        ring.tail().store(0, Ordering::Release);
        for i in 0..64 {
            tx.try_push(cmd(i)).unwrap();
        }
        ring.head().store(u64::MAX - 5, Ordering::Release);
        assert!(tx.try_push(cmd(0)).is_err());
        assert!(tx.corrupt());
    }

    #[test]
    fn the_cod_table_keeps_one_word_per_slot() {
        let l = link(64);
        let t = l.cod_table(1);
        t.set(3, 77);
        t.set(4, 1); // beyond the table: ignored
        assert_eq!((t.get(3), t.get(4), l.cod_table(0).get(3)), (77, 0, 0));
    }
}
