//! The bounded lock-free single-producer single-consumer ring that carries
//! [`Command`](crate::engine::Command)s from a reactor to the engine and
//! [`Event`](crate::engine::Event)s back.
//!
//! [`channel`] allocates the ring once, at start-up; nothing on either end
//! ever allocates, locks or blocks afterwards. [`Producer::try_push`] on a
//! full ring hands the value back at once (`Err(value)`); [`Consumer::pop`]
//! on an empty ring returns `None` at once. Waiting is the caller's idle
//! strategy.
//!
//! # Layout
//!
//! ```text
//!  Arc<Shared<T>>            (x86-64 / aarch64: crossbeam CachePadded = 128 B)
//!
//!  ArcInner +0    strong, weak counts          touched only by clone/drop of the Arc
//!  Shared   +0    ┌────────────────────────────────────────┐
//!                 │ head: AtomicUsize       (+ 120 B pad)  │ written by the consumer only
//!           +128  ├────────────────────────────────────────┤
//!                 │ tail: AtomicUsize       (+ 120 B pad)  │ written by the producer only
//!           +256  ├────────────────────────────────────────┤
//!                 │ slots: ptr, len = capacity             │ read-only after `channel`
//!                 └────────────────────────────────────────┘
//!
//!  slots (one heap allocation, capacity × size_of::<T>()):
//!
//!   index i lives in slot i & (capacity - 1)
//!   ┌────────┬────────┬────────┬────────┬────────┬────────┐
//!   │ free   │ record │ record │ record │ free   │ free   │
//!   └────────┴────────┴────────┴────────┴────────┴────────┘
//!             ▲ head & mask              ▲ tail & mask
//!             └─ consumer's: [head, tail) ┘└─ producer's: [tail, head + capacity) ─▶ (wraps)
//!
//!  Producer (lives with the producer)        Consumer (lives with the consumer)
//!    tail          == shared.tail              head          == shared.head
//!    head_cached   <= shared.head (stale)      tail_cached   <= shared.tail (stale)
//! ```
//!
//! Indices are monotonically increasing `usize`s (wrapping arithmetic, so
//! even a wrap past `usize::MAX` is correct; `capacity` is a power of two and
//! divides 2^64); a slot is `index & (capacity - 1)`. The number of records
//! in the ring is `tail - head`, and always `0 <= tail - head <= capacity`.
//!
//! ## Why 128 bytes between `head` and `tail`
//!
//! `head` is written on every pop by the consumer's core and `tail` on every
//! push by the producer's core. On one 64-byte line they would false-share:
//! each store invalidates the other core's copy. 64 bytes apart is not enough
//! on Intel since Sandy Bridge: the L2 spatial ("adjacent cache line")
//! prefetcher fetches lines in 128-byte-aligned pairs, so a store to one line
//! of a pair still pulls its neighbour across cores. crossbeam's
//! `CachePadded` is therefore 128 bytes on x86-64 (and on aarch64, whose big
//! cores have 128-byte lines); `Shared` is 128-aligned, which also keeps the
//! Arc's reference counts off the index lines. Neighbouring slots still share
//! a pair; that is inherent to any ring and only matters when the ring is
//! nearly empty.
//!
//! # Protocol
//!
//! ```text
//!  producer try_push_leaving(v, reserve)    consumer pop()
//!  1. if capacity - (tail - head_cached)    1. if head == tail_cached:
//!          <= reserve:                           tail_cached = tail.load(Acquire)
//!       head_cached = head.load(Acquire)         if still equal: return None
//!       if still so: return Err(v)
//!  2. slots[tail & mask].write(v)           2. v = slots[head & mask].read()
//!  3. tail += 1; tail.store(Release)        3. head += 1; head.store(Release)
//!
//!  try_push(v) is try_push_leaving(v, 0): step 1 refuses only a full ring.
//! ```
//!
//! - `tail` Release (producer 3) / Acquire (consumer 1): the slot write (2)
//!   happens-before the consumer's read of it. Without it the consumer could
//!   see the new tail but stale or half-written slot bytes, i.e. a torn
//!   record.
//! - `head` Release (consumer 3) / Acquire (producer 1): the consumer's read
//!   of a slot happens-before the producer's next write to that slot. Without
//!   it the producer could overwrite a record the consumer is still copying.
//! - Cached peer index: the producer reads the consumer's `head` line only
//!   when its cached view says the ring is full, and the consumer reads the
//!   producer's `tail` line only when its cached view says the ring is empty.
//!   A refresh usually reveals many slots at once, so while neither side
//!   waits on the other a push touches only the producer's own line and one
//!   slot (Agrona's `OneToOneRingBuffer`, rtrb). A stale cached index is
//!   always behind the real one, so it can only make the ring look fuller
//!   (producer) or emptier (consumer) than it is, never the reverse.
//! - [`Consumer::drain`] takes up to `max` records and stores `head` once at
//!   the end (Agrona's batch read): one store to the shared line per batch.
//! - A reserve ([`Producer::try_push_leaving`]): a push that must leave
//!   `reserve` slots free succeeds only if more than `reserve` are free. The
//!   cached `head` understates what is free, so the consumer's line is read
//!   only when the cached view says the push would reach into the reserve;
//!   in the common case (the ring far from that full) the push costs exactly
//!   what a plain one does. Either way the slot written is below
//!   `head + capacity` (more than `reserve >= 0` slots are free), which is
//!   all the safety argument of step 2 needs. The gateway keeps such a
//!   reserve of its command ring for cancels (`constants::
//!   command_ring_cancel_reserve`): new orders use `try_push_leaving`,
//!   cancels `try_push`.
//!
//! All `unsafe` of the hand-off lives in this module. Both ends are `Send`
//! but neither is `Sync` nor `Clone`: one producer, one consumer.
//!
//! ```compile_fail
//! fn is_sync<T: Sync>() {}
//! is_sync::<ordergate::ring::Producer<u64>>();
//! ```
//!
//! ```compile_fail
//! fn is_sync<T: Sync>() {}
//! is_sync::<ordergate::ring::Consumer<u64>>();
//! ```
//!
//! ```compile_fail
//! let (producer, _consumer) = ordergate::ring::channel::<u64>(2);
//! let _second = producer.clone();
//! ```
//!
//! Model tests (loom, in this file) and a two-thread torn-record stress test
//! (`tests/ring_stress.rs`) check the protocol.

use std::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::sync::{Arc, AtomicUsize, Ordering, UnsafeCell};

/// One record slot. Uninitialised until the producer first writes it; `T:
/// Copy`, so nothing is ever dropped out of it.
type Slot<T> = UnsafeCell<MaybeUninit<T>>;

/// What both ends point to.
#[repr(C)]
struct Shared<T> {
    /// Records ever consumed (wrapping). Stored (Release) only by the
    /// consumer, after it has finished reading every slot below it; loaded
    /// (Acquire) by the producer. Invariant: `tail - head <= capacity`, and
    /// `head` never decreases.
    head: CachePadded<AtomicUsize>,
    /// Records ever produced (wrapping). Stored (Release) only by the
    /// producer, after it has written every slot below it; loaded (Acquire)
    /// by the consumer. Invariant: `tail - head <= capacity`, and `tail`
    /// never decreases.
    tail: CachePadded<AtomicUsize>,
    /// `capacity` slots, `capacity` a power of two >= 2. Slots of indices in
    /// `[head, tail)` hold records and belong to the consumer; slots of
    /// indices in `[tail, head + capacity)` belong to the producer.
    slots: Box<[Slot<T>]>,
}

#[cfg(all(not(loom), target_arch = "x86_64"))]
const _: () = {
    assert!(std::mem::offset_of!(Shared<u64>, head) == 0);
    assert!(std::mem::offset_of!(Shared<u64>, tail) == 128);
    assert!(std::mem::offset_of!(Shared<u64>, slots) == 256);
    assert!(std::mem::align_of::<Shared<u64>>() == 128);
};

impl<T> Shared<T> {
    #[inline(always)]
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot of `index`.
    #[inline(always)]
    fn slot(&self, index: usize) -> &Slot<T> {
        let position = index & (self.slots.len() - 1);
        // SAFETY: `slots.len()` is a power of two >= 2 (asserted in
        // `channel`, never changed), so `index & (len - 1) < len`.
        unsafe { self.slots.get_unchecked(position) }
    }
}

/// The writing end. See the [module docs](self) for the protocol.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Index of the next slot to write. The producer is the only writer of
    /// `shared.tail`, so this always equals it; kept here so a push never
    /// loads the tail line.
    tail: usize,
    /// The consumer's `head` as last loaded. Invariant: never ahead of
    /// `shared.head`, and `tail - head_cached <= capacity`. Refreshed only
    /// when it makes the ring look full, so a push normally does not touch
    /// the consumer's line.
    head_cached: usize,
}

/// The reading end. See the [module docs](self) for the protocol.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Index of the next slot to read. The consumer is the only writer of
    /// `shared.head`, so this always equals it.
    head: usize,
    /// The producer's `tail` as last loaded. Invariant: never ahead of
    /// `shared.tail`, and `head <= tail_cached` (`tail_cached - head <=
    /// capacity`). Refreshed only when it makes the ring look empty (or, for
    /// `drain`, shorter than the batch asked for).
    tail_cached: usize,
}

// SAFETY: A `Producer` is the only handle that writes slots or stores `tail`,
// and a `Consumer` the only one that reads slots or stores `head`; neither is
// `Clone` nor `Sync`, so after a move each role is still held by exactly one
// thread. The two never touch the same slot at the same time: a slot passes
// from producer to consumer only through the Release store / Acquire load of
// `tail`, and back only through those of `head` (module docs, "Protocol").
// Values of `T` cross from one thread to the other through the slots, hence
// `T: Send`. `T: Copy` in every constructor, so dropping `Shared` on either
// thread drops no `T`.
unsafe impl<T: Send> Send for Producer<T> {}

// SAFETY: as for `Producer` above: the consumer role moves with the handle,
// and slot hand-off is ordered by the `tail`/`head` Release/Acquire pairs.
unsafe impl<T: Send> Send for Consumer<T> {}

/// A ring of `capacity` slots, allocated here and never again.
///
/// # Panics
///
/// If `capacity` is not a power of two >= 2 (a start-up configuration
/// error).
pub fn channel<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    channel_from(capacity, 0)
}

/// [`channel`] with both indices starting at `start`, so tests can cross the
/// `usize::MAX` wrap.
fn channel_from<T: Copy + Send>(capacity: usize, start: usize) -> (Producer<T>, Consumer<T>) {
    assert!(
        capacity >= 2 && capacity.is_power_of_two(),
        "ring capacity must be a power of two >= 2, got {capacity}"
    );
    let slots: Box<[Slot<T>]> = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(start)),
        tail: CachePadded::new(AtomicUsize::new(start)),
        slots,
    });
    let producer = Producer {
        shared: Arc::clone(&shared),
        tail: start,
        head_cached: start,
    };
    let consumer = Consumer {
        shared,
        head: start,
        tail_cached: start,
    };
    (producer, consumer)
}

impl<T: Copy + Send> Producer<T> {
    /// Appends `value`, or hands it back as `Err(value)` if the ring is full.
    /// Never blocks.
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), T> {
        self.try_push_leaving(value, 0)
    }

    /// Appends `value` only if `reserve` slots stay free after it (more than
    /// `reserve` are free now); otherwise hands it back as `Err(value)`. Never
    /// blocks. After a refusal [`Producer::free_seen`] is exact as of the
    /// refusal: 0 if the ring was full, else at most `reserve`.
    ///
    /// The consumer's `head` is loaded only when the cached view says the
    /// push would reach into the reserve (module docs, "Protocol").
    #[inline]
    pub fn try_push_leaving(&mut self, value: T, reserve: usize) -> Result<(), T> {
        let tail = self.tail;
        let capacity = self.shared.capacity();
        // `tail - head_cached <= capacity` (invariant), so no underflow.
        if capacity - tail.wrapping_sub(self.head_cached) <= reserve {
            self.refresh_head();
            if capacity - tail.wrapping_sub(self.head_cached) <= reserve {
                return Err(value);
            }
        }
        debug_assert!(tail.wrapping_sub(self.head_cached) < capacity);
        self.shared.slot(tail).with_mut(|slot| {
            // SAFETY: more than `reserve >= 0` slots are free by the check
            // above, so `tail - head_cached < capacity`, and `head_cached` is a
            // value of `shared.head` loaded with Acquire (or the start value),
            // so `tail` is in the producer's range `[tail, head + capacity)`:
            // the consumer does not read this slot until we publish a tail
            // above `tail` (step 3 below), and its last read of the slot (one
            // lap ago, index `tail - capacity < head_cached`) happened-before
            // that Acquire load, because the consumer stores `head` with
            // Release only after reading. So no other access to the slot is
            // concurrent with this write. The pointer comes from a live
            // `UnsafeCell` in `slots`, so it is valid and aligned.
            unsafe { slot.write(MaybeUninit::new(value)) }
        });
        let tail = tail.wrapping_add(1);
        self.tail = tail;
        // Release: publishes the slot write above to the consumer's Acquire
        // load of `tail`.
        self.shared.tail.store(tail, Ordering::Release);
        Ok(())
    }

    /// Free slots: how many `try_push`es would succeed now (more may be free
    /// by the time they are made, never fewer).
    ///
    /// The cached view of the consumer's `head` can only understate what is
    /// free. If it already says the whole ring is free the answer is exact
    /// and the consumer's line is not touched; otherwise `head` is loaded
    /// (Acquire) and cached, and the exact count returned.
    #[inline]
    pub fn free(&mut self) -> usize {
        let capacity = self.shared.capacity();
        let free_cached = capacity - self.tail.wrapping_sub(self.head_cached);
        if free_cached < capacity {
            self.refresh_head();
            return capacity - self.tail.wrapping_sub(self.head_cached);
        }
        free_cached
    }

    /// Free slots as of the producer's last look at the consumer's `head`:
    /// never more than are free now. Touches no shared line. Exact right
    /// after a refused push, which always looks.
    #[inline]
    pub fn free_seen(&self) -> usize {
        self.shared.capacity() - self.tail.wrapping_sub(self.head_cached)
    }

    /// Slots in the ring, free or not.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Loads the consumer's `head` into `head_cached`.
    #[inline]
    fn refresh_head(&mut self) {
        // Acquire: pairs with the consumer's Release store of `head`, so every
        // slot read below the loaded value happened-before our next writes.
        let head = self.shared.head.load(Ordering::Acquire);
        assert!(
            self.tail.wrapping_sub(head) <= self.shared.capacity(),
            "ring head {head} is not within capacity of tail {}",
            self.tail
        );
        self.head_cached = head;
    }
}

impl<T: Copy + Send> Consumer<T> {
    /// Takes the oldest record, or `None` if the ring is empty. Never blocks.
    ///
    /// For records with a niche (an enum field, as in `Command`), moving the
    /// returned `Option<T>` can cost more than the hop itself when the slot
    /// was written on the same core (overlapping partial copies defeat
    /// store forwarding: ~13 ns vs ~4 ns in `benches/ring.rs`); hot loops
    /// should use [`Consumer::drain`], which passes a plain `T`.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let head = self.head;
        if head == self.tail_cached {
            self.refresh_tail();
            if head == self.tail_cached {
                return None;
            }
        }
        let value = self.read(head);
        let head = head.wrapping_add(1);
        self.head = head;
        // Release: our read of the slot happens-before the producer's next
        // write to it (it loads `head` with Acquire before writing).
        self.shared.head.store(head, Ordering::Release);
        Some(value)
    }

    /// Takes at most `max` records, oldest first, calls `f` with each, and
    /// returns how many it took. `head` is stored once, at the end
    /// (Agrona's batch read), so the producer sees the whole batch freed at
    /// once. The producer's `tail` is loaded only if the cached view holds
    /// fewer than `max` records.
    ///
    /// If `f` panics, the records already passed to `f` (including the one
    /// it panicked on) count as taken: `head` is published on unwind and no
    /// record is delivered twice.
    #[inline]
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let head = self.head;
        if self.tail_cached.wrapping_sub(head) < max {
            self.refresh_tail();
        }
        let count = self.tail_cached.wrapping_sub(head).min(max);
        if count == 0 {
            return 0;
        }
        let mut batch = Batch {
            consumer: self,
            head,
        };
        for _ in 0..count {
            let value = batch.consumer.read(batch.head);
            batch.head = batch.head.wrapping_add(1);
            f(value);
        }
        // `batch` drops here and publishes `head + count` once.
        count
    }

    /// Records in the ring now. Always loads the producer's `tail`.
    #[inline]
    pub fn len(&mut self) -> usize {
        self.refresh_tail();
        self.tail_cached.wrapping_sub(self.head)
    }

    /// Whether the ring is empty now. Loads the producer's `tail` only if the
    /// cached view says empty.
    #[inline]
    pub fn is_empty(&mut self) -> bool {
        if self.tail_cached != self.head {
            return false;
        }
        self.refresh_tail();
        self.tail_cached == self.head
    }

    /// Copies the record at `index` out of its slot. `index` must be in
    /// `[head, tail_cached)`.
    #[inline(always)]
    fn read(&self, index: usize) -> T {
        debug_assert!(index.wrapping_sub(self.head) < self.tail_cached.wrapping_sub(self.head));
        self.shared.slot(index).with(|slot| {
            // SAFETY: `index` is in `[head, tail_cached)` (callers check it
            // against `tail_cached`), and `tail_cached` was loaded from
            // `shared.tail` with Acquire. The producer stored that tail with
            // Release after writing every slot below it, so this slot is
            // initialised and the write happened-before this read. The
            // producer does not write the slot again until it loads a `head`
            // above `index`, which we store (Release) only after this read
            // has returned. No write is concurrent with this read. The
            // pointer comes from a live `UnsafeCell` in `slots`, so it is
            // valid and aligned; `MaybeUninit<T>: Copy` since `T: Copy`.
            unsafe { (*slot).assume_init() }
        })
    }

    /// Loads the producer's `tail` into `tail_cached`.
    #[inline]
    fn refresh_tail(&mut self) {
        // Acquire: pairs with the producer's Release store of `tail`, so every
        // slot write below the loaded value happened-before our reads.
        let tail = self.shared.tail.load(Ordering::Acquire);
        assert!(
            tail.wrapping_sub(self.head) <= self.shared.capacity(),
            "ring tail {tail} is not within capacity of head {}",
            self.head
        );
        self.tail_cached = tail;
    }
}

/// A batch being drained: publishes `head` when dropped, at the end of the
/// batch or on unwind out of the caller's closure.
struct Batch<'a, T: Copy + Send> {
    consumer: &'a mut Consumer<T>,
    /// One past the last record taken.
    head: usize,
}

impl<T: Copy + Send> Drop for Batch<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.head = self.head;
        // Release: every read of the batch happens-before the producer's
        // next write to those slots.
        self.consumer
            .shared
            .head
            .store(self.head, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn full_ring_hands_back_the_exact_value() {
        let (mut producer, mut consumer) = channel::<u64>(8);
        for n in 0..8 {
            assert_eq!(producer.try_push(n), Ok(()));
        }
        assert_eq!(producer.try_push(0xDEAD_BEEF), Err(0xDEAD_BEEF));
        assert_eq!(producer.try_push(42), Err(42));
        // A full ring still holds exactly what went in.
        assert_eq!(consumer.len(), 8);
        assert_eq!(consumer.pop(), Some(0));
        assert_eq!(producer.try_push(8), Ok(()));
        assert_eq!(producer.try_push(9), Err(9));
    }

    #[test]
    fn pop_is_fifo() {
        let (mut producer, mut consumer) = channel::<u32>(16);
        assert_eq!(consumer.pop(), None);
        for n in 100..110 {
            producer.try_push(n).unwrap();
        }
        let popped: Vec<u32> = std::iter::from_fn(|| consumer.pop()).collect();
        assert_eq!(popped, (100..110).collect::<Vec<_>>());
        assert_eq!(consumer.pop(), None);
    }

    #[test]
    fn wraps_around_many_times() {
        for capacity in [2usize, 4] {
            let (mut producer, mut consumer) = channel::<u64>(capacity);
            let mut next_in = 0u64;
            let mut next_out = 0u64;
            // Fill levels 1..=capacity in turn, so every slot is the
            // boundary of a full and of an empty ring many times over.
            for lap in 0..10_000usize {
                let fill = lap % capacity + 1;
                for _ in 0..fill {
                    producer.try_push(next_in).unwrap();
                    next_in += 1;
                }
                if fill == capacity {
                    assert_eq!(producer.try_push(u64::MAX), Err(u64::MAX));
                }
                for _ in 0..fill {
                    assert_eq!(consumer.pop(), Some(next_out));
                    next_out += 1;
                }
                assert_eq!(consumer.pop(), None);
            }
            assert_eq!(next_out, next_in);
            assert!(next_in > 10_000);
        }
    }

    #[test]
    fn indices_wrap_past_usize_max() {
        let (mut producer, mut consumer) = channel_from::<u64>(4, usize::MAX - 5);
        for n in 0..100u64 {
            producer.try_push(n).unwrap();
            producer.try_push(n + 1000).unwrap();
            assert_eq!(producer.free(), 2);
            assert_eq!(consumer.len(), 2);
            assert_eq!(consumer.pop(), Some(n));
            let mut got = Vec::new();
            assert_eq!(consumer.drain(8, |v| got.push(v)), 1);
            assert_eq!(got, [n + 1000]);
        }
        for n in 0..4 {
            producer.try_push(n).unwrap();
        }
        assert_eq!(producer.try_push(9), Err(9));
        assert_eq!(producer.free(), 0);
    }

    #[test]
    fn drain_respects_max_and_returns_exact_count() {
        let (mut producer, mut consumer) = channel::<u64>(8);
        for n in 0..7 {
            producer.try_push(n).unwrap();
        }
        assert_eq!(producer.free(), 1);
        let mut got = Vec::new();
        assert_eq!(consumer.drain(0, |v| got.push(v)), 0);
        assert_eq!(consumer.drain(3, |v| got.push(v)), 3);
        assert_eq!(got, [0, 1, 2]);
        // The whole batch was freed at once.
        assert_eq!(producer.free(), 4);
        assert_eq!(consumer.drain(100, |v| got.push(v)), 4);
        assert_eq!(got, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(consumer.drain(100, |v| got.push(v)), 0);
        // A batch that crosses the end of the slot array.
        for n in 7..13 {
            producer.try_push(n).unwrap();
        }
        assert_eq!(consumer.drain(6, |v| got.push(v)), 6);
        assert_eq!(got, (0..13).collect::<Vec<_>>());
        assert!(consumer.is_empty());
    }

    #[test]
    fn drain_publishes_what_it_took_when_the_closure_panics() {
        let (mut producer, mut consumer) = channel::<u64>(4);
        for n in 0..4 {
            producer.try_push(n).unwrap();
        }
        let mut seen = Vec::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            consumer.drain(4, |v| {
                seen.push(v);
                assert_ne!(v, 1, "closure gives up on record 1");
            })
        }));
        assert!(result.is_err());
        assert_eq!(seen, [0, 1]);
        assert_eq!(producer.free(), 2);
        assert_eq!(consumer.pop(), Some(2));
        assert_eq!(consumer.pop(), Some(3));
        assert_eq!(consumer.pop(), None);
    }

    #[test]
    fn free_is_exact() {
        let (mut producer, mut consumer) = channel::<u64>(4);
        assert_eq!(producer.capacity(), 4);
        assert_eq!(producer.free(), 4);
        producer.try_push(1).unwrap();
        assert_eq!(producer.free(), 3);
        producer.try_push(2).unwrap();
        producer.try_push(3).unwrap();
        assert_eq!(producer.free(), 1);
        producer.try_push(4).unwrap();
        assert_eq!(producer.free(), 0);
        // Freed by the consumer: seen without any push attempt.
        assert_eq!(consumer.pop(), Some(1));
        assert_eq!(producer.free(), 1);
        assert_eq!(consumer.drain(2, |_| {}), 2);
        assert_eq!(producer.free(), 3);
        assert_eq!(consumer.pop(), Some(4));
        assert_eq!(producer.free(), 4);
        assert_eq!(producer.free(), 4);
    }

    #[test]
    fn a_push_leaving_a_reserve_stops_short_of_it() {
        let (mut producer, mut consumer) = channel::<u64>(8);
        for n in 0..5 {
            assert_eq!(producer.try_push_leaving(n, 3), Ok(()));
        }
        assert_eq!(producer.try_push_leaving(5, 3), Err(5));
        assert_eq!(producer.free_seen(), 3, "exact after a refusal");
        // The reserve is a plain push's.
        for n in 5..8 {
            assert_eq!(producer.try_push(n), Ok(()));
        }
        assert_eq!(producer.try_push(8), Err(8));
        assert_eq!(producer.try_push_leaving(8, 3), Err(8));
        assert_eq!(producer.free_seen(), 0, "full, not merely reserved");
        // Freed by the consumer: the next push looks at `head` again.
        assert_eq!(consumer.drain(4, |_| {}), 4);
        assert_eq!(producer.free_seen(), 0, "nothing looked yet");
        assert_eq!(producer.try_push_leaving(8, 3), Ok(()));
        assert_eq!(producer.free_seen(), 3);
        assert_eq!(producer.try_push_leaving(9, 3), Err(9));
        // Reserve 0 is a plain push; a reserve of the whole ring takes none.
        assert_eq!(producer.try_push_leaving(9, 0), Ok(()));
        assert_eq!(consumer.drain(8, |_| {}), 6);
        assert_eq!(producer.try_push_leaving(10, 8), Err(10));
        assert_eq!(producer.free_seen(), 8);
        // FIFO across both kinds of push.
        let got: Vec<u64> = std::iter::from_fn(|| consumer.pop()).collect();
        assert!(got.is_empty());
        producer.try_push_leaving(11, 1).unwrap();
        producer.try_push(12).unwrap();
        assert_eq!(consumer.pop(), Some(11));
        assert_eq!(consumer.pop(), Some(12));
    }

    #[test]
    fn a_push_leaving_looks_at_the_consumer_only_near_the_reserve() {
        let (mut producer, mut consumer) = channel::<u64>(8);
        producer.try_push_leaving(0, 3).unwrap();
        producer.try_push_leaving(1, 3).unwrap();
        assert_eq!(consumer.drain(2, |_| {}), 2);
        // The cached view (6 free) leaves room: `head` is not loaded.
        producer.try_push_leaving(2, 3).unwrap();
        producer.try_push_leaving(3, 3).unwrap();
        producer.try_push_leaving(4, 3).unwrap();
        assert_eq!(producer.free_seen(), 3, "still the stale view");
        // Now the cached view says the reserve would be touched: it looks,
        // finds the two freed slots, and pushes.
        producer.try_push_leaving(5, 3).unwrap();
        assert_eq!(producer.free_seen(), 4);
    }

    #[test]
    fn a_push_leaving_a_reserve_wraps_past_usize_max() {
        let (mut producer, mut consumer) = channel_from::<u64>(4, usize::MAX - 2);
        for n in 0..50u64 {
            assert_eq!(producer.try_push_leaving(n, 1), Ok(()));
            assert_eq!(producer.try_push_leaving(n + 100, 1), Ok(()));
            assert_eq!(producer.try_push_leaving(n + 200, 1), Ok(()));
            assert_eq!(producer.try_push_leaving(7, 1), Err(7));
            assert_eq!(producer.free_seen(), 1);
            assert_eq!(consumer.pop(), Some(n));
            assert_eq!(consumer.pop(), Some(n + 100));
            assert_eq!(consumer.pop(), Some(n + 200));
        }
    }

    #[test]
    fn len_and_is_empty() {
        let (mut producer, mut consumer) = channel::<u8>(2);
        assert!(consumer.is_empty());
        assert_eq!(consumer.len(), 0);
        producer.try_push(7).unwrap();
        assert!(!consumer.is_empty());
        producer.try_push(8).unwrap();
        assert_eq!(consumer.len(), 2);
        assert_eq!(consumer.pop(), Some(7));
        assert_eq!(consumer.len(), 1);
        assert_eq!(consumer.pop(), Some(8));
        assert!(consumer.is_empty());
    }

    #[test]
    fn either_end_may_be_dropped() {
        let (mut producer, consumer) = channel::<u64>(2);
        drop(consumer);
        producer.try_push(1).unwrap();
        producer.try_push(2).unwrap();
        assert_eq!(producer.try_push(3), Err(3));

        let (producer, mut consumer) = channel::<u64>(2);
        drop(producer);
        assert_eq!(consumer.pop(), None);
    }

    #[test]
    #[should_panic(expected = "power of two >= 2, got 3")]
    fn capacity_not_power_of_two_panics() {
        let _ = channel::<u64>(3);
    }

    #[test]
    fn capacities_below_two_or_not_powers_of_two_panic() {
        for capacity in [0usize, 1, 6, 100, 1023] {
            let result = std::panic::catch_unwind(|| channel::<u64>(capacity));
            assert!(result.is_err(), "capacity {capacity} was accepted");
        }
        for capacity in [2usize, 4, 1024] {
            assert_eq!(channel::<u64>(capacity).0.capacity(), capacity);
        }
    }
}

/// Loom model tests. Run with:
///
/// ```text
/// CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" \
///     cargo test --release --lib ring -- --test-threads=1
/// ```
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    const VALUES: [u64; 3] = [11, 22, 33];

    /// Pushes `VALUES` into a ring of 2 slots, retrying while full.
    fn produce(mut producer: Producer<u64>) {
        for value in VALUES {
            let mut value = value;
            while let Err(back) = producer.try_push(value) {
                value = back;
                thread::yield_now();
            }
        }
    }

    #[test]
    fn pop_receives_every_value_in_order() {
        loom::model(|| {
            let (producer, mut consumer) = channel::<u64>(2);
            let handle = thread::spawn(move || produce(producer));
            let mut received = Vec::new();
            while received.len() < VALUES.len() {
                match consumer.pop() {
                    Some(value) => received.push(value),
                    None => thread::yield_now(),
                }
            }
            handle.join().unwrap();
            assert_eq!(received, VALUES);
            assert_eq!(consumer.pop(), None);
        });
    }

    #[test]
    fn drain_receives_every_value_in_order() {
        loom::model(|| {
            let (producer, mut consumer) = channel::<u64>(2);
            let handle = thread::spawn(move || produce(producer));
            let mut received = Vec::new();
            while received.len() < VALUES.len() {
                if consumer.drain(2, |value| received.push(value)) == 0 {
                    thread::yield_now();
                }
            }
            handle.join().unwrap();
            assert_eq!(received, VALUES);
            assert!(consumer.is_empty());
        });
    }

    /// Pushes that leave one slot of two free never take it, whatever the
    /// consumer does meanwhile; the reserved slot stays a plain push's.
    #[test]
    fn a_push_leaving_a_reserve_never_takes_it() {
        loom::model(|| {
            let (producer, mut consumer) = channel::<u64>(2);
            let handle = thread::spawn(move || {
                let mut producer = producer;
                for value in VALUES {
                    let mut value = value;
                    while let Err(back) = producer.try_push_leaving(value, 1) {
                        assert!(producer.free_seen() <= 1);
                        value = back;
                        thread::yield_now();
                    }
                }
                producer
            });
            let mut received = Vec::new();
            while received.len() < VALUES.len() {
                assert!(consumer.len() <= 1, "a reserved slot was taken");
                match consumer.pop() {
                    Some(value) => received.push(value),
                    None => thread::yield_now(),
                }
            }
            let mut producer = handle.join().unwrap();
            assert_eq!(received, VALUES);
            assert_eq!(producer.try_push_leaving(1, 1), Ok(()));
            assert_eq!(producer.try_push_leaving(2, 1), Err(2));
            assert_eq!(producer.try_push(3), Ok(()));
            assert_eq!(producer.free_seen(), 0);
        });
    }

    #[test]
    fn free_never_overstates() {
        loom::model(|| {
            let (mut producer, mut consumer) = channel::<u64>(2);
            let handle = thread::spawn(move || {
                let mut pushed = 0;
                while pushed < VALUES.len() {
                    let free = producer.free();
                    for _ in 0..free.min(VALUES.len() - pushed) {
                        // `free` promised these slots: the push must succeed.
                        assert_eq!(producer.try_push(VALUES[pushed]), Ok(()));
                        pushed += 1;
                    }
                    if free == 0 {
                        thread::yield_now();
                    }
                }
            });
            let mut received = Vec::new();
            while received.len() < VALUES.len() {
                match consumer.pop() {
                    Some(value) => received.push(value),
                    None => thread::yield_now(),
                }
            }
            handle.join().unwrap();
            assert_eq!(received, VALUES);
        });
    }
}
