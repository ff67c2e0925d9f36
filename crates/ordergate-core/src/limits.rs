//! Rate limits, the logon nonce replay cache (one per key), the failed-logon
//! lockout and the per-address logon rate, all in fixed-size memory
//! allocated at start-up (a key's nonce cache: when the key is loaded).
//! Pure: every call takes a `now`.
//!
//! The three logon tables are keyed with `RandomState`: SipHash-1-3 under
//! keys the standard library draws from the OS once per process (then
//! varies per table), so nobody outside can aim entries at a slot or a
//! bucket. The gateway's own `/dev/urandom` seed would do as well; this
//! keeps the tables independent of it and of each other.
//!
//! ## Rate limits: GCRA
//!
//! Each limit is a Generic Cell Rate Algorithm cell: one `u64`, the
//! *theoretical arrival time* (TAT) of the next message. With emission
//! interval `T = 1 s / rate` and burst `B`, a message at `now` is admitted iff
//! `max(TAT, now) − now ≤ (B − 1)·T`, and then `TAT = max(TAT, now) + T`.
//! This is a token bucket of `B` tokens refilled at `rate`, but its whole
//! state is one word, so:
//!
//! - a session's cell is a plain `u64` ([`LocalCell`]);
//! - a key's cell, shared by that key's sessions on every reactor, is one
//!   `AtomicU64` updated by compare-and-swap ([`SharedCell`]) — no lock;
//! - `retry_after_ns` is exact: `max(TAT, now) − now − (B − 1)·T`.
//!
//! **Clock steps.** `now` is the reactor's wall clock, which an NTP step can
//! move back. With a monotonic clock a TAT is never more than `B·T` ahead
//! of `now`; one found further ahead than `B·T + RATE_CLOCK_STEP_SLACK_NS`
//! is pulled back to that (an empty bucket at `now`), and stored so
//! (`settle`, before each admission: the one case where a throttled
//! message moves a cell). So a step back of D stalls a session for at most
//! the slack plus one burst's refill, not D, and never grants a token an
//! unbroken clock would not have. A step forward refills the bucket, to
//! its burst at most.
//!
//! **Cancel headroom.** New orders and replaces may only use `B − R` of the
//! burst (`R = B / CANCEL_RESERVE_DIVISOR`); cancels may use all `B`. A flood
//! of new orders therefore leaves `R` tokens that only a cancel can take.
//!
//! **Heartbeats** have a cell of their own per session
//! ([`HeartbeatAllowance`]: a few per keepalive interval, no key cell), so
//! keepalive traffic never takes order or cancel tokens, and a heartbeat
//! flood is throttled like any other.
//!
//! **Two cells, one decision.** A message must pass its session's cell and
//! its key's cell. The session cell is checked first without changing it, the
//! key cell is then taken by CAS, and only if both pass is the session cell
//! advanced: a throttled message moves no cell.

use crate::sync::{AtomicU64, Ordering};
use core::net::IpAddr;
use std::hash::{BuildHasher, Hash, RandomState};

use crate::constants::{
    CANCEL_RESERVE_DIVISOR, HEARTBEAT_BURST, HEARTBEATS_PER_KEEPALIVE, NONCE_CACHE_PROBES_MAX,
    RATE_CLOCK_STEP_SLACK_NS,
};
use crate::engine::Nanos;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Compare-and-swap attempts on a shared cell before a message is treated as
/// throttled. Each failed CAS means another reactor just admitted a message
/// of the same key, so running out means the key is at its rate anyway.
pub const SHARED_CELL_CAS_TRIES: u32 = 16;

/// Which share of a burst a message may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// NewOrder, ReplaceOrder: all but the cancel reserve.
    Order,
    /// CancelOrder, MassCancel: the whole burst.
    Cancel,
}

/// A rate in GCRA terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Nanoseconds between two messages at the sustained rate.
    pub interval_ns: u64,
    /// How far ahead of `now` the TAT may run for a cancel: (B − 1)·T.
    pub cancel_tolerance_ns: u64,
    /// How far ahead for an order: (B − R − 1)·T.
    pub order_tolerance_ns: u64,
}

impl Rate {
    /// `msgs_per_sec` ≥ 1, `burst` ≥ 1 (the keys file enforces both).
    pub const fn new(msgs_per_sec: u32, burst: u32) -> Rate {
        assert!(msgs_per_sec > 0 && burst > 0);
        let interval_ns = NS_PER_SEC.div_ceil(msgs_per_sec as u64);
        let reserve = burst / CANCEL_RESERVE_DIVISOR;
        Rate {
            interval_ns,
            cancel_tolerance_ns: (burst as u64 - 1) * interval_ns,
            order_tolerance_ns: (burst as u64 - 1 - reserve as u64) * interval_ns,
        }
    }

    /// One message every `interval_ns` (≥ 1) with burst `burst` (≥ 1) and
    /// no cancel reserve: both classes alike.
    pub const fn every(interval_ns: u64, burst: u32) -> Rate {
        assert!(interval_ns > 0 && burst > 0);
        let tolerance_ns = (burst as u64 - 1) * interval_ns;
        Rate {
            interval_ns,
            cancel_tolerance_ns: tolerance_ns,
            order_tolerance_ns: tolerance_ns,
        }
    }

    #[inline(always)]
    fn tolerance(&self, class: Class) -> u64 {
        match class {
            Class::Order => self.order_tolerance_ns,
            Class::Cancel => self.cancel_tolerance_ns,
        }
    }

    /// The furthest ahead of `now` a TAT can be on a clock that never
    /// stepped back: one whole burst, plus `RATE_CLOCK_STEP_SLACK_NS`.
    #[inline(always)]
    fn ceiling(&self, now: Nanos) -> u64 {
        now.saturating_add(self.cancel_tolerance_ns)
            .saturating_add(self.interval_ns)
            .saturating_add(RATE_CLOCK_STEP_SLACK_NS)
    }

    /// The TAT after admitting a message at `now`, or the wait until one
    /// would be admitted.
    #[inline(always)]
    fn step(&self, tat: u64, now: Nanos, class: Class) -> Result<u64, u64> {
        // A TAT beyond the ceiling: the clock stepped back (module docs).
        let base = tat.max(now).min(self.ceiling(now));
        let ahead = base - now;
        let tolerance = self.tolerance(class);
        if ahead > tolerance {
            Err(ahead - tolerance)
        } else {
            Ok(base + self.interval_ns)
        }
    }
}

/// A session's own rate cell (one reactor touches it).
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalCell {
    tat: u64,
}

impl LocalCell {
    /// Would a message be admitted? Changes nothing.
    #[inline]
    pub fn peek(&self, rate: &Rate, now: Nanos, class: Class) -> Result<u64, u64> {
        rate.step(self.tat, now, class)
    }

    /// Records the TAT returned by a successful `peek`.
    #[inline]
    pub fn commit(&mut self, tat: u64) {
        self.tat = tat;
    }

    /// Pulls a TAT that only a clock step back can have left beyond
    /// `rate`'s ceiling back to it (module docs, "Clock steps"), so that
    /// the stall ends even while every message is throttled. Moves nothing
    /// on a clock that did not step back.
    #[inline]
    pub fn settle(&mut self, rate: &Rate, now: Nanos) {
        self.tat = self.tat.min(rate.ceiling(now));
    }
}

/// A session's heartbeat allowance: `HEARTBEATS_PER_KEEPALIVE` per
/// keepalive interval, burst `HEARTBEAT_BURST`, in a cell of its own, so
/// heartbeats never take order or cancel tokens and orders never starve the
/// keepalive. One reactor touches it.
#[derive(Clone, Copy, Debug)]
pub struct HeartbeatAllowance {
    rate: Rate,
    cell: LocalCell,
}

impl HeartbeatAllowance {
    /// For a session whose Logon asked for `keepalive_ms` (≥
    /// `KEEPALIVE_MS_MIN`, checked at logon).
    pub fn new(keepalive_ms: u16) -> HeartbeatAllowance {
        let keepalive_ns = keepalive_ms.max(1) as u64 * 1_000_000;
        HeartbeatAllowance {
            rate: Rate::every(keepalive_ns / HEARTBEATS_PER_KEEPALIVE, HEARTBEAT_BURST),
            cell: LocalCell::default(),
        }
    }

    /// Takes one heartbeat's token, or `Err(retry_after_ns)`.
    #[inline]
    pub fn admit(&mut self, now: Nanos) -> Result<(), u64> {
        self.cell.settle(&self.rate, now);
        let tat = self.cell.peek(&self.rate, now, Class::Cancel)?;
        self.cell.commit(tat);
        Ok(())
    }
}

/// A key's rate cell, shared by its sessions on every reactor.
#[derive(Debug, Default)]
pub struct SharedCell {
    tat: AtomicU64,
}

impl SharedCell {
    /// [`LocalCell::settle`] for the shared cell: one compare-and-swap,
    /// and only when the TAT is beyond the ceiling (a lost race leaves it
    /// to the next message).
    #[inline]
    pub fn settle(&self, rate: &Rate, now: Nanos) {
        let tat = self.tat.load(Ordering::Relaxed);
        let ceiling = rate.ceiling(now);
        if tat > ceiling {
            let _ = self
                .tat
                .compare_exchange(tat, ceiling, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Takes a token if one is free. `Err(retry_after_ns)` otherwise.
    #[inline]
    pub fn take(&self, rate: &Rate, now: Nanos, class: Class) -> Result<(), u64> {
        let mut tat = self.tat.load(Ordering::Relaxed);
        for _ in 0..SHARED_CELL_CAS_TRIES {
            let next = rate.step(tat, now, class)?;
            // Relaxed is enough: the cell guards no other memory; its own
            // modification order is all the algorithm needs.
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(seen) => tat = seen,
            }
        }
        Err(rate.interval_ns)
    }

    /// Would a message be admitted? Changes nothing (for `retry_after_ns`).
    #[inline]
    pub fn peek(&self, rate: &Rate, now: Nanos, class: Class) -> Result<u64, u64> {
        rate.step(self.tat.load(Ordering::Relaxed), now, class)
    }
}

/// Checks a message against its session's and its key's cells and takes a
/// token from both, or from neither. `Err(retry_after_ns)`: the later of the
/// two cells' waits.
#[inline]
pub fn admit(
    session: &mut LocalCell,
    session_rate: &Rate,
    key: &SharedCell,
    key_rate: &Rate,
    now: Nanos,
    class: Class,
) -> Result<(), u64> {
    // After a clock step back (module docs): no-ops otherwise.
    session.settle(session_rate, now);
    key.settle(key_rate, now);
    match session.peek(session_rate, now, class) {
        Ok(tat) => {
            key.take(key_rate, now, class)?;
            session.commit(tat);
            Ok(())
        }
        Err(session_wait) => {
            let key_wait = key.peek(key_rate, now, class).err().unwrap_or(0);
            Err(session_wait.max(key_wait))
        }
    }
}

/// Why a logon nonce was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceRefusal {
    /// Seen for this key within the window: LogonReject REPLAYED_NONCE.
    Replayed,
    /// Every slot this nonce may use holds a live nonce: LogonReject
    /// THROTTLED. Never admitted unchecked.
    Full,
}

/// One key's logon nonce replay cache, shared by every reactor without a
/// lock. Each key has its own (in its `KeyState`), so one key's logons can
/// never take another key's slots.
///
/// Each slot is one `AtomicU64`: a 40-bit keyed fingerprint of the client
/// nonce and a 24-bit expiry in whole seconds (mod 2^24, ~194 days,
/// compared with wrapping arithmetic). 0 is an empty slot. A nonce probes
/// `NONCE_CACHE_PROBES_MAX` slots from its hash.
///
/// **Check, then record.** [`NonceCache::seen`] only reads; the logon path
/// asks it first, runs its remaining checks, and calls
/// [`NonceCache::admit`] last, so a refused logon takes no slot.
///
/// Two reactors admitting the same nonce at once: each claims a slot by CAS
/// and then rescans its probe range; whoever finds the fingerprint live in
/// another slot gives its own slot back and refuses. So at most one of them
/// is admitted (a rare double refusal is the fail-closed side of the race),
/// and a refused nonce leaves no slot behind. A fingerprint collision (1 in
/// 2^40 per live entry) refuses a fresh nonce as replayed; the client
/// retries with a new nonce.
pub struct NonceCache {
    slots: Box<[AtomicU64]>,
    hasher: NonceHasher,
    /// Seconds a nonce is remembered: the whole skew window, both sides.
    remember_s: u64,
}

/// The nonce cache's keyed hash: `RandomState` (SipHash-1-3 under a
/// per-process random key). Under loom a fixed one, so that every explored
/// execution probes the same slots (loom replays one execution at a time
/// and needs them to agree).
#[cfg(not(loom))]
type NonceHasher = RandomState;
#[cfg(loom)]
type NonceHasher = std::hash::BuildHasherDefault<std::hash::DefaultHasher>;

const FP_SHIFT: u32 = 24;
const EXPIRY_MASK: u64 = (1 << FP_SHIFT) - 1;

impl NonceCache {
    /// `slots` a power of two; `skew_ns` the logon skew window (one side).
    pub fn new(slots: usize, skew_ns: u64) -> NonceCache {
        assert!(slots.is_power_of_two() && slots >= NONCE_CACHE_PROBES_MAX);
        NonceCache {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            hasher: NonceHasher::default(),
            remember_s: Self::remember_s(skew_ns),
        }
    }

    /// Seconds a nonce must be remembered for a skew window of `skew_ns`:
    /// a request time may be up to `skew` in the future, and is accepted
    /// until `skew` in the past, so 2·skew, plus one second for rounding to
    /// whole seconds.
    pub const fn remember_s(skew_ns: u64) -> u64 {
        (2 * skew_ns).div_ceil(NS_PER_SEC) + 1
    }

    /// Slots in this cache.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Never: a cache has at least `NONCE_CACHE_PROBES_MAX` slots.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    #[inline]
    fn live(slot: u64, now_s: u64) -> bool {
        if slot == 0 {
            return false;
        }
        // Live iff the expiry is ahead of now, on the 24-bit circle.
        let d = (slot & EXPIRY_MASK).wrapping_sub(now_s) & EXPIRY_MASK;
        d != 0 && d < (1 << (FP_SHIFT - 1))
    }

    /// The nonce's first slot and its fingerprint (never 0: 0 marks an
    /// empty slot).
    #[inline]
    fn locate(&self, nonce: &[u8; 16]) -> (usize, u64) {
        let hash = self.hasher.hash_one(nonce);
        (
            hash as usize & (self.slots.len() - 1),
            (hash >> FP_SHIFT) | 1,
        )
    }

    #[inline]
    fn probe(&self, start: usize, i: usize) -> &AtomicU64 {
        &self.slots[(start + i) & (self.slots.len() - 1)]
    }

    /// Whether `nonce` is remembered (live) now. Changes nothing.
    pub fn seen(&self, now: Nanos, nonce: &[u8; 16]) -> bool {
        let (start, fingerprint) = self.locate(nonce);
        let now_s = now / NS_PER_SEC;
        (0..NONCE_CACHE_PROBES_MAX).any(|i| {
            let slot = self.probe(start, i).load(Ordering::SeqCst);
            Self::live(slot, now_s) && slot >> FP_SHIFT == fingerprint
        })
    }

    /// Records `nonce` once within the window; refuses it if it is already
    /// recorded, or if it has no free slot (nothing is then written).
    pub fn admit(&self, now: Nanos, nonce: &[u8; 16]) -> Result<(), NonceRefusal> {
        let (start, fingerprint) = self.locate(nonce);
        let now_s = now / NS_PER_SEC;
        let entry = (fingerprint << FP_SHIFT) | ((now_s + self.remember_s) & EXPIRY_MASK);

        for _ in 0..SHARED_CELL_CAS_TRIES {
            let mut free = None;
            for i in 0..NONCE_CACHE_PROBES_MAX {
                let slot = self.probe(start, i).load(Ordering::SeqCst);
                if Self::live(slot, now_s) {
                    if slot >> FP_SHIFT == fingerprint {
                        return Err(NonceRefusal::Replayed);
                    }
                } else if free.is_none() {
                    free = Some((i, slot));
                }
            }
            let Some((claimed, old)) = free else {
                return Err(NonceRefusal::Full);
            };
            let claimed_slot = self.probe(start, claimed);
            if claimed_slot
                .compare_exchange(old, entry, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            // Did another reactor claim the same nonce in another slot? Then
            // give ours back (it is still ours unless it was already taken
            // over, which only an expired entry can be: ours is live) and
            // refuse. SeqCst on every claim and every scan: of two claimers,
            // at least one sees the other (store then load, both SeqCst), so
            // at most one is admitted.
            for i in 0..NONCE_CACHE_PROBES_MAX {
                if i != claimed {
                    let slot = self.probe(start, i).load(Ordering::SeqCst);
                    if Self::live(slot, now_s) && slot >> FP_SHIFT == fingerprint {
                        let _ = claimed_slot.compare_exchange(
                            entry,
                            0,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                        return Err(NonceRefusal::Replayed);
                    }
                }
            }
            return Ok(());
        }
        Err(NonceRefusal::Full)
    }
}

/// One key's logon replay floor: the request time a Logon of the key must
/// be later than to be accepted (LogonReject STALE_LOGON otherwise), and
/// the latest request time of the key's accepted logons.
///
/// The nonce cache refuses a replay only while it remembers the nonce, and
/// it starts empty: at every start of the gateway, and when a reload adds a
/// key (back). So whenever a key's nonce cache starts empty, its floor is
/// set to the latest request time accepted before — read back from the
/// audit journal at start-up ([`FloorBook`]), or kept from the key's
/// earlier state by a reload — and a Logon captured before cannot be
/// replayed: its request time is at most that floor.
///
/// While the cache is there, `fixed` stays where it was set and the cache
/// refuses this run's replays (REPLAYED_NONCE); [`raise`](Self::raise)
/// only advances `last`, the floor of the next empty cache. (Refusing every
/// logon not later than the key's last one would also refuse a key's
/// concurrent logons that arrive out of request-time order — several
/// hosts, or threads, sharing a key — which the nonce cache does not.)
#[derive(Debug, Default)]
pub struct LogonFloor {
    fixed: u64,
    last: AtomicU64,
}

impl LogonFloor {
    /// A floor at `floor_ns` (0: none).
    pub fn new(floor_ns: u64) -> LogonFloor {
        LogonFloor {
            fixed: floor_ns,
            last: AtomicU64::new(floor_ns),
        }
    }

    /// Whether a Logon with `request_time_ns` may be accepted: it is later
    /// than the floor. One comparison; changes nothing.
    #[inline]
    pub fn admits(&self, request_time_ns: u64) -> bool {
        request_time_ns > self.fixed
    }

    /// An accepted Logon's request time: the latest one becomes the floor
    /// of the key's next empty nonce cache. One atomic max, no lock.
    #[inline]
    pub fn raise(&self, request_time_ns: u64) {
        self.last.fetch_max(request_time_ns, Ordering::Relaxed);
    }

    /// The floor logons are checked against.
    pub fn floor(&self) -> u64 {
        self.fixed
    }

    /// The latest accepted request time (or the floor, if later).
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Relaxed)
    }
}

/// Logon replay floors by key id, kept apart from the key table: read from
/// the audit journal at start-up (each key's latest accepted request
/// time), and, at a reload, the floors of the keys it removed. A key whose
/// nonce cache starts empty takes its floor from here
/// ([`floor`](Self::floor)).
///
/// Bounded: at most `LOGON_FLOOR_KEYS_MAX` key ids. A floor that finds the
/// book full is folded into the floor of every key instead
/// ([`raise_all`](Self::raise_all)): a floor only refuses logons not later
/// than it, so a higher one is never less safe, and once the clock has
/// passed it (the skew window after it) it refuses nothing an honest
/// client sends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloorBook {
    by_key: std::collections::HashMap<u64, u64>,
    all_keys: u64,
    folded: u64,
}

impl FloorBook {
    pub fn new() -> FloorBook {
        FloorBook::default()
    }

    /// Raises `key_id`'s floor to `floor_ns` (if higher). A floor of 0 (a
    /// key that never logged on) takes no room.
    pub fn raise(&mut self, key_id: u64, floor_ns: u64) {
        if floor_ns == 0 {
            return;
        }
        if let Some(f) = self.by_key.get_mut(&key_id) {
            *f = (*f).max(floor_ns);
        } else if self.by_key.len() < crate::constants::LOGON_FLOOR_KEYS_MAX {
            self.by_key.insert(key_id, floor_ns);
        } else {
            self.folded += 1;
            self.raise_all(floor_ns);
        }
    }

    /// Raises the floor of every key to `floor_ns` (if higher).
    pub fn raise_all(&mut self, floor_ns: u64) {
        self.all_keys = self.all_keys.max(floor_ns);
    }

    /// `key_id`'s floor: its own, or every key's if that is higher.
    pub fn floor(&self, key_id: u64) -> u64 {
        self.by_key
            .get(&key_id)
            .copied()
            .unwrap_or(0)
            .max(self.all_keys)
    }

    /// Key ids with a floor of their own.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty() && self.all_keys == 0
    }

    /// The floor every key shares (0: none).
    pub fn all_keys(&self) -> u64 {
        self.all_keys
    }

    /// Floors folded into every key's because the book was full.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// Each key id with its own floor, and the floor (any order).
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.by_key.iter().map(|(k, f)| (*k, *f))
    }
}

/// Who a logon comes from, for the logon limits: an IPv4 address, or an
/// IPv6 /64 — one subscriber's subnet, which a single host can hold all of,
/// so counting its addresses one by one would count nothing. IPv4-mapped
/// IPv6 addresses are their IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    V4(u32),
    V6(u64),
}

impl Client {
    pub fn of(addr: &IpAddr) -> Client {
        match addr.to_canonical() {
            IpAddr::V4(a) => Client::V4(u32::from(a)),
            IpAddr::V6(a) => Client::V6((u128::from(a) >> 64) as u64),
        }
    }

    /// The network the lockout table groups the client by, and bounds the
    /// share of: its IPv4 /24, or its IPv6 /64. One organisation's
    /// addresses (or one attacker's) all fall in one group.
    pub fn prefix(self) -> Prefix {
        match self {
            Client::V4(a) => Prefix::V4(a >> 8),
            Client::V6(p) => Prefix::V6(p),
        }
    }
}

/// An IPv4 /24 or an IPv6 /64 (see [`Client::prefix`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prefix {
    V4(u32),
    V6(u64),
}

/// What recording one failed logon did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failure {
    /// This failure was the `failures_max`-th of its window: its (client,
    /// key) is now locked out.
    pub locked: bool,
    /// A live record of another (client, key) had to be forgotten to make
    /// room (the table is under pressure).
    pub evicted: bool,
}

/// Failed logons per (client, key id), in a fixed table shared by every
/// reactor. After `failures_max` failures of one (client, key id) within
/// `window_ns` of the first, that pair is locked out until the window ends:
/// its logons are refused THROTTLED before any HMAC is computed. Another key
/// at the same address is not affected, nor another address.
///
/// **The key id as sent**, known or not: checking whether a key exists
/// before the HMAC, to count unknown keys per address, would let a sender
/// that locked out "its unknown keys" probe which ids exist (THROTTLED for
/// unknown, AUTH_FAILED for known). Unknown ids cost the prober a slot each
/// in its own prefix's bucket (below) and are bounded by the per-address
/// logon rate.
///
/// **Buckets by prefix.** The table is `buckets × ways` slots; every record
/// of one prefix ([`Client::prefix`], /24 or /64) lives in the one bucket
/// that prefix hashes to, under a keyed hash (`RandomState`: SipHash-1-3
/// with keys drawn from the OS per process, so no one can aim a prefix at
/// another's bucket). A spray from one prefix, however many addresses and
/// key ids it uses, can occupy at most `ways` slots of the table.
///
/// **Records, not shared counters.** Each slot is one `AtomicU64`: a 28-bit
/// keyed fingerprint of (client, key id), the window's start in whole
/// seconds mod 2^26 (~2.1 years, compared with wrapping arithmetic) and a
/// 10-bit failure count (saturating at 1023 ≥ `LOGON_FAILURES_MAX_BOUND`).
/// A check only refuses a pair whose own record is locked; two pairs share
/// a record only on a fingerprint collision within one bucket (`ways` in
/// 2^28). So a flood of failures can never lock out anyone else.
///
/// **Under pressure.** A new record takes an empty or expired slot of its
/// bucket; if there is none it evicts the oldest record that is not locked,
/// and only if every record is locked, the oldest of them. Forgetting
/// failures only ever lets someone in earlier; an attacker that wants its
/// own lock forgotten must first lock `ways` other pairs of its bucket
/// (`ways × failures_max` failures, at the per-address logon rate).
pub struct LogonGuard {
    slots: Box<[AtomicU64]>,
    ways: usize,
    hasher: RandomState,
    failures_max: u32,
    window_s: u64,
}

const GUARD_FP_BITS: u32 = 28;
const GUARD_START_BITS: u32 = 26;
const GUARD_COUNT_BITS: u32 = 10;
const GUARD_START_MASK: u64 = (1 << GUARD_START_BITS) - 1;
const GUARD_COUNT_MAX: u64 = (1 << GUARD_COUNT_BITS) - 1;
const _: () = assert!(GUARD_FP_BITS + GUARD_START_BITS + GUARD_COUNT_BITS == 64);
const _: () = assert!(crate::constants::LOGON_FAILURES_MAX_BOUND as u64 <= GUARD_COUNT_MAX);
// A window must fit the start's circle many times over.
const _: () =
    assert!(crate::constants::LOGON_LOCKOUT_WINDOW_MS_MAX / 1000 < (1 << (GUARD_START_BITS - 1)));

#[derive(Clone, Copy)]
struct GuardRecord {
    fp: u64,
    /// Window start, mod 2^26 s.
    start: u64,
    count: u64,
}

impl GuardRecord {
    fn unpack(v: u64) -> GuardRecord {
        GuardRecord {
            fp: v >> (GUARD_START_BITS + GUARD_COUNT_BITS),
            start: (v >> GUARD_COUNT_BITS) & GUARD_START_MASK,
            count: v & GUARD_COUNT_MAX,
        }
    }

    fn pack(self) -> u64 {
        (self.fp << (GUARD_START_BITS + GUARD_COUNT_BITS))
            | ((self.start & GUARD_START_MASK) << GUARD_COUNT_BITS)
            | self.count.min(GUARD_COUNT_MAX)
    }

    /// Whole seconds since the window started (on the 26-bit circle).
    fn age_s(self, now_s: u64) -> u64 {
        now_s.wrapping_sub(self.start) & GUARD_START_MASK
    }
}

impl LogonGuard {
    /// `buckets` a power of two, `ways` ≥ 1 slots each.
    pub fn new(buckets: usize, ways: usize, failures_max: u32, window_ns: u64) -> LogonGuard {
        assert!(buckets.is_power_of_two() && ways > 0);
        assert!(failures_max > 0 && u64::from(failures_max) <= GUARD_COUNT_MAX);
        let window_s = window_ns.div_ceil(NS_PER_SEC).max(1);
        assert!(window_s < 1 << (GUARD_START_BITS - 1));
        LogonGuard {
            slots: (0..buckets * ways).map(|_| AtomicU64::new(0)).collect(),
            ways,
            hasher: RandomState::new(),
            failures_max,
            window_s,
        }
    }

    /// The bucket of `client`'s prefix, and the pair's fingerprint (never
    /// 0: 0 marks an empty slot).
    #[inline]
    fn locate(&self, client: Client, key_id: u64) -> (&[AtomicU64], u64) {
        let buckets = self.slots.len() / self.ways;
        let b = self.hasher.hash_one(client.prefix()) as usize & (buckets - 1);
        let fp = (self.hasher.hash_one((client, key_id)) >> (64 - GUARD_FP_BITS)).max(1);
        (&self.slots[b * self.ways..(b + 1) * self.ways], fp)
    }

    #[inline]
    fn live(&self, r: GuardRecord, now_s: u64) -> bool {
        r.fp != 0 && r.age_s(now_s) < self.window_s
    }

    /// `Err(retry_after_ns)` while (`addr`, `key_id`) is locked out.
    /// Reads only.
    pub fn check(&self, now: Nanos, addr: &IpAddr, key_id: u64) -> Result<(), u64> {
        let (bucket, fp) = self.locate(Client::of(addr), key_id);
        let now_s = now / NS_PER_SEC;
        let (mut failures, mut age_s) = (0, u64::MAX);
        for slot in bucket {
            let r = GuardRecord::unpack(slot.load(Ordering::Relaxed));
            if r.fp == fp && self.live(r, now_s) {
                // Two records of one pair only after a race of their first
                // failures: count both, the window of the later one.
                failures += r.count;
                age_s = age_s.min(r.age_s(now_s));
            }
        }
        if failures >= u64::from(self.failures_max) {
            let end_ns = (now_s - age_s + self.window_s) * NS_PER_SEC;
            Err(end_ns.saturating_sub(now).max(1))
        } else {
            Ok(())
        }
    }

    /// Counts one failed logon of (`addr`, `key_id`).
    pub fn record_failure(&self, now: Nanos, addr: &IpAddr, key_id: u64) -> Failure {
        let (bucket, fp) = self.locate(Client::of(addr), key_id);
        let now_s = now / NS_PER_SEC;
        let max = u64::from(self.failures_max);
        for _ in 0..SHARED_CELL_CAS_TRIES {
            let mut own = None;
            let mut others = 0;
            let mut free = None;
            // (locked, age) of the best victim so far: unlocked before
            // locked, then the oldest.
            let mut victim: Option<(usize, u64, bool, u64)> = None;
            for (i, slot) in bucket.iter().enumerate() {
                let v = slot.load(Ordering::Relaxed);
                let r = GuardRecord::unpack(v);
                if !self.live(r, now_s) {
                    if free.is_none() {
                        free = Some((i, v));
                    }
                } else if r.fp == fp {
                    if own.is_none() {
                        own = Some((i, v, r));
                    } else {
                        others += r.count;
                    }
                } else {
                    let locked = r.count >= max;
                    let age = r.age_s(now_s);
                    let better = match victim {
                        None => true,
                        Some((_, _, vl, va)) => (locked, u64::MAX - age) < (vl, u64::MAX - va),
                    };
                    if better {
                        victim = Some((i, v, locked, age));
                    }
                }
            }
            let (i, old, next, evicted) = match (own, free, victim) {
                (Some((i, v, r)), _, _) => {
                    let next = GuardRecord {
                        count: r.count + 1,
                        ..r
                    };
                    (i, v, next, false)
                }
                (None, Some((i, v)), _) | (None, None, Some((i, v, _, _))) => {
                    let next = GuardRecord {
                        fp,
                        start: now_s,
                        count: 1,
                    };
                    (i, v, next, free.is_none())
                }
                (None, None, None) => unreachable!("a bucket has at least one slot"),
            };
            if bucket[i]
                .compare_exchange(old, next.pack(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return Failure {
                    locked: others + next.count.min(GUARD_COUNT_MAX) == max,
                    evicted,
                };
            }
        }
        // Sixteen lost races on one bucket in a row: other reactors are
        // recording failures of the same prefix at this very moment. This
        // one goes uncounted.
        Failure::default()
    }
}

/// What taking a per-address logon token did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// The cell of another client, still in debt, had to be forgotten to
    /// make room (that client gets a fresh burst).
    pub evicted: bool,
}

/// A GCRA cell per client ([`Client`]: IPv4 address or IPv6 /64) for logon
/// attempts, in a fixed table shared by every reactor and checked before any
/// HMAC is computed.
///
/// The table is `buckets × ways` slots; a client's cell lives in the bucket
/// its keyed hash (`RandomState`, as [`LogonGuard`]) picks. Each slot is one
/// `AtomicU64`: a 24-bit fingerprint of the client and its TAT in whole
/// milliseconds mod 2^40 (~35 years, compared with wrapping arithmetic). A
/// client without a cell is as one whose cell is full: a new cell takes an
/// empty slot or one whose TAT has passed (forgetting it loses nothing), and
/// only if there is none, the cell nearest to full again — the client that
/// used least. A spray of single attempts from many addresses therefore
/// evicts one another, never a flooding client's debt. Under pressure the
/// limit only ever errs towards admitting: no one is refused for another's
/// attempts but on a fingerprint collision within a bucket (`ways` in 2^24).
pub struct AddressRate {
    slots: Box<[AtomicU64]>,
    ways: usize,
    hasher: RandomState,
    interval_ms: u64,
    tolerance_ms: u64,
}

const RATE_TAT_BITS: u32 = 40;
const RATE_TAT_MASK: u64 = (1 << RATE_TAT_BITS) - 1;
const NS_PER_MS: u64 = 1_000_000;

impl AddressRate {
    /// `buckets` a power of two, `ways` ≥ 1; `per_sec` in 1..=1000 (the
    /// cell counts whole milliseconds), `burst` ≥ 1.
    pub fn new(buckets: usize, ways: usize, per_sec: u32, burst: u32) -> AddressRate {
        assert!(buckets.is_power_of_two() && ways > 0);
        assert!((1..=1000).contains(&per_sec) && burst > 0);
        let interval_ms = 1000u64.div_ceil(u64::from(per_sec));
        AddressRate {
            slots: (0..buckets * ways).map(|_| AtomicU64::new(0)).collect(),
            ways,
            hasher: RandomState::new(),
            interval_ms,
            tolerance_ms: (u64::from(burst) - 1) * interval_ms,
        }
    }

    /// How far ahead of `now_ms` a slot's TAT is (0: not ahead).
    #[inline]
    fn ahead_ms(slot: u64, now_ms: u64) -> u64 {
        if slot == 0 {
            return 0;
        }
        let d = (slot & RATE_TAT_MASK).wrapping_sub(now_ms) & RATE_TAT_MASK;
        if d < 1 << (RATE_TAT_BITS - 1) { d } else { 0 }
    }

    /// Takes a logon token of `addr`'s client, or `Err(retry_after_ns)`
    /// (nothing changed).
    pub fn take(&self, now: Nanos, addr: &IpAddr) -> Result<Taken, u64> {
        let hash = self.hasher.hash_one(Client::of(addr));
        let buckets = self.slots.len() / self.ways;
        let b = hash as usize & (buckets - 1);
        let bucket = &self.slots[b * self.ways..(b + 1) * self.ways];
        let fp = (hash >> RATE_TAT_BITS).max(1);
        let now_ms = now / NS_PER_MS;
        for _ in 0..SHARED_CELL_CAS_TRIES {
            let mut own = None;
            let mut fresh = None;
            let mut victim: Option<(usize, u64, u64)> = None;
            for (i, slot) in bucket.iter().enumerate() {
                let v = slot.load(Ordering::Relaxed);
                let ahead = Self::ahead_ms(v, now_ms);
                if v != 0 && v >> RATE_TAT_BITS == fp {
                    own = Some((i, v, ahead));
                    break;
                } else if ahead == 0 {
                    fresh = fresh.or(Some((i, v)));
                } else if victim.is_none_or(|(_, _, a)| ahead < a) {
                    victim = Some((i, v, ahead));
                }
            }
            let (i, old, ahead, evicted) = match (own, fresh, victim) {
                (Some((i, v, ahead)), _, _) => (i, v, ahead, false),
                (None, Some((i, v)), _) => (i, v, 0, false),
                (None, None, Some((i, v, _))) => (i, v, 0, true),
                (None, None, None) => unreachable!("a bucket has at least one slot"),
            };
            if ahead > self.tolerance_ms {
                return Err((ahead - self.tolerance_ms) * NS_PER_MS);
            }
            let tat = (now_ms + ahead + self.interval_ms) & RATE_TAT_MASK;
            let next = (fp << RATE_TAT_BITS) | tat;
            if bucket[i]
                .compare_exchange(old, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(Taken { evicted });
            }
        }
        // Sixteen lost races on one bucket: the client (or its bucket) is
        // logging on as fast as reactors can run. Refuse, as a full cell.
        Err(self.interval_ms * NS_PER_MS)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const SEC: u64 = NS_PER_SEC;
    const MS: u64 = NS_PER_MS;
    const T0: u64 = 1_764_000_000 * SEC;

    #[test]
    fn a_burst_is_admitted_then_throttled_with_the_exact_wait() {
        let rate = Rate::new(1000, 4); // T = 1 ms, reserve 1
        let key = SharedCell::default();
        let key_rate = Rate::new(1_000_000, 1_000_000);
        let mut s = LocalCell::default();
        // Orders may use B - R = 3 tokens.
        for _ in 0..3 {
            admit(&mut s, &rate, &key, &key_rate, T0, Class::Order).unwrap();
        }
        // TAT is T0 + 3 ms; order tolerance is 2 ms: wait 1 ms.
        assert_eq!(
            admit(&mut s, &rate, &key, &key_rate, T0, Class::Order),
            Err(1_000_000)
        );
        // The reserved token is a cancel's.
        admit(&mut s, &rate, &key, &key_rate, T0, Class::Cancel).unwrap();
        assert_eq!(
            admit(&mut s, &rate, &key, &key_rate, T0, Class::Cancel),
            Err(1_000_000)
        );
        // After the wait one order fits again.
        assert_eq!(
            admit(&mut s, &rate, &key, &key_rate, T0 + 2_000_000, Class::Order),
            Ok(())
        );
    }

    /// Messages `cell` admits when offered one every 100 µs for `span`
    /// from `from` (settled before each, as `admit` does).
    fn admitted(cell: &mut LocalCell, rate: &Rate, from: Nanos, span: u64) -> u64 {
        let mut n = 0;
        let mut now = from;
        while now < from + span {
            cell.settle(rate, now);
            if let Ok(tat) = cell.peek(rate, now, Class::Cancel) {
                cell.commit(tat);
                n += 1;
            }
            now += MS / 10;
        }
        n
    }

    #[test]
    fn a_clock_step_back_stalls_boundedly_and_grants_no_extra_token() {
        let rate = Rate::new(1000, 8); // T = 1 ms, B·T = 8 ms
        for d in [1, MS, 7 * MS, 9 * MS, 100 * MS, SEC, 3600 * SEC, T0] {
            // A cell used at twice its rate for a second up to T0.
            let mut cell = LocalCell::default();
            admitted(&mut cell, &rate, T0 - SEC, SEC);
            let mut unstepped = cell;
            // The clock steps back by d: the wait is bounded, not d.
            let back = T0 - d;
            let wait = cell.peek(&rate, back, Class::Cancel).err().unwrap_or(0);
            assert!(
                wait <= RATE_CLOCK_STEP_SLACK_NS + 8 * MS,
                "a step back of {d} ns stalls {wait} ns"
            );
            // And over the next second the stepped cell admits no more
            // than the same cell on a clock that did not step.
            let with_step = admitted(&mut cell, &rate, back, SEC);
            let without = admitted(&mut unstepped, &rate, T0, SEC);
            assert!(
                with_step <= without,
                "a step back of {d} ns: {with_step} admitted, {without} without the step"
            );
            assert!(with_step >= 1000 - (RATE_CLOCK_STEP_SLACK_NS + 8 * MS) / MS - 1);
        }
        // No panic or overflow at the ends of time, and never a token more
        // than a whole burst.
        let mut cell = LocalCell::default();
        cell.commit(u64::MAX);
        assert!(cell.peek(&rate, 0, Class::Cancel).is_err());
        let mut cell = LocalCell::default();
        assert_eq!(admitted(&mut cell, &rate, u64::MAX - SEC, MS / 10), 1);
        let key = SharedCell::default();
        key.tat.store(T0 + 3600 * SEC, Ordering::Relaxed);
        let wait = key.take(&rate, T0, Class::Cancel).unwrap_err();
        assert!(wait <= RATE_CLOCK_STEP_SLACK_NS + 8 * MS, "{wait}");
    }

    #[test]
    fn heartbeats_get_a_burst_then_four_per_keepalive() {
        let mut h = HeartbeatAllowance::new(1000); // one per 250 ms, burst 8
        for _ in 0..HEARTBEAT_BURST {
            assert_eq!(h.admit(T0), Ok(()));
        }
        // TAT = T0 + 2 s, tolerance 7 x 250 ms: wait 250 ms.
        assert_eq!(h.admit(T0), Err(250_000_000));
        assert_eq!(h.admit(T0 + 100_000_000), Err(150_000_000));
        let before = h.cell.tat;
        assert_eq!(h.admit(T0 + 100_000_000), Err(150_000_000));
        assert_eq!(h.cell.tat, before, "a throttled heartbeat moves no cell");
        assert_eq!(h.admit(T0 + 250_000_000), Ok(()));
        assert_eq!(h.admit(T0 + 250_000_000), Err(250_000_000));
        // At four per keepalive, forever.
        let mut h = HeartbeatAllowance::new(100);
        for i in 0..100_000u64 {
            assert_eq!(h.admit(T0 + i * 25_000_000), Ok(()), "heartbeat {i}");
        }
    }

    #[test]
    fn a_throttled_message_moves_no_cell() {
        let rate = Rate::new(10, 1); // T = 100 ms, no reserve
        let key = SharedCell::default();
        let mut s = LocalCell::default();
        admit(&mut s, &rate, &key, &rate, T0, Class::Order).unwrap();
        let before = (s.tat, key.tat.load(Ordering::Relaxed));
        for _ in 0..10 {
            assert_eq!(
                admit(&mut s, &rate, &key, &rate, T0, Class::Order),
                Err(100_000_000)
            );
        }
        assert_eq!((s.tat, key.tat.load(Ordering::Relaxed)), before);
    }

    #[test]
    fn the_key_cell_is_shared_by_sessions() {
        let session_rate = Rate::new(1000, 100);
        let key_rate = Rate::new(10, 2); // T = 100 ms, reserve 0
        let key = SharedCell::default();
        let (mut a, mut b) = (LocalCell::default(), LocalCell::default());
        admit(&mut a, &session_rate, &key, &key_rate, T0, Class::Order).unwrap();
        admit(&mut b, &session_rate, &key, &key_rate, T0, Class::Order).unwrap();
        let a_tat = a.tat;
        assert_eq!(
            admit(&mut a, &session_rate, &key, &key_rate, T0, Class::Order),
            Err(100_000_000)
        );
        assert_eq!(
            a.tat, a_tat,
            "the session cell is untouched when the key refuses"
        );
    }

    #[test]
    fn shared_cell_admits_exactly_the_burst_across_threads() {
        let rate = Rate::new(1, 1000); // no refill within the test
        let key = std::sync::Arc::new(SharedCell::default());
        let admitted: u32 = (0..2)
            .map(|_| {
                let key = key.clone();
                std::thread::spawn(move || {
                    (0..2000)
                        .filter(|_| key.take(&rate, T0, Class::Cancel).is_ok())
                        .count() as u32
                })
            })
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(admitted, 1000);
    }

    #[test]
    fn nonce_is_admitted_once_until_it_expires() {
        let c = NonceCache::new(64, 5 * SEC);
        let n = [7u8; 16];
        assert!(!c.seen(T0, &n));
        assert_eq!(c.admit(T0, &n), Ok(()));
        assert!(c.seen(T0, &n));
        assert_eq!(c.admit(T0, &n), Err(NonceRefusal::Replayed));
        assert_eq!(c.admit(T0 + 10 * SEC, &n), Err(NonceRefusal::Replayed));
        // Remembered for 2 x 5 s + 1 s.
        assert!(!c.seen(T0 + 11 * SEC, &n));
        assert_eq!(c.admit(T0 + 11 * SEC, &n), Ok(()));
    }

    #[test]
    fn seen_records_nothing() {
        let c = NonceCache::new(NONCE_CACHE_PROBES_MAX, 5 * SEC);
        for i in 0..100u8 {
            assert!(!c.seen(T0, &[i; 16]));
        }
        // Every slot is still free: as many nonces as slots fit.
        for i in 0..NONCE_CACHE_PROBES_MAX as u8 {
            assert_eq!(c.admit(T0, &[i; 16]), Ok(()));
        }
    }

    #[test]
    fn a_full_nonce_cache_refuses_rather_than_forgets() {
        let c = NonceCache::new(NONCE_CACHE_PROBES_MAX, 5 * SEC);
        for i in 0..NONCE_CACHE_PROBES_MAX as u8 {
            assert_eq!(c.admit(T0, &[i; 16]), Ok(()));
        }
        assert_eq!(c.admit(T0, &[200; 16]), Err(NonceRefusal::Full));
        assert!(!c.seen(T0, &[200; 16]), "a refused nonce is not recorded");
        assert_eq!(c.admit(T0, &[0; 16]), Err(NonceRefusal::Replayed));
        // Once they expire, slots are reused.
        assert_eq!(c.admit(T0 + 12 * SEC, &[200; 16]), Ok(()));
    }

    #[test]
    fn concurrent_admissions_of_one_nonce_admit_it_at_most_once_and_leave_no_refused_slot() {
        for round in 0..200u8 {
            let c = std::sync::Arc::new(NonceCache::new(64, 5 * SEC));
            let ok: usize = (0..2)
                .map(|_| {
                    let c = c.clone();
                    std::thread::spawn(move || c.admit(T0, &[round; 16]).is_ok() as usize)
                })
                .map(|h| h.join().unwrap())
                .sum();
            assert!(ok <= 1, "round {round}: admitted {ok} times");
            let live = c
                .slots
                .iter()
                .filter(|s| NonceCache::live(s.load(Ordering::Relaxed), T0 / SEC))
                .count();
            assert_eq!(live, ok, "round {round}: a refused claim was given back");
        }
    }

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_64() {
        let c = |s: &str| Client::of(&s.parse().unwrap());
        assert_eq!(c("10.1.2.3"), Client::V4(0x0A01_0203));
        assert_eq!(c("::ffff:10.1.2.3"), c("10.1.2.3"));
        assert_eq!(c("2001:db8:1:2::1"), c("2001:db8:1:2:ffff::9"));
        assert_ne!(c("2001:db8:1:2::1"), c("2001:db8:1:3::1"));
        assert_eq!(c("10.1.2.3").prefix(), c("10.1.2.200").prefix());
        assert_ne!(c("10.1.2.3").prefix(), c("10.1.3.3").prefix());
        assert_eq!(
            c("2001:db8:1:2::1").prefix(),
            Prefix::V6(0x2001_0db8_0001_0002)
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lockout_after_max_failures_of_one_client_and_key_until_the_window_ends() {
        let g = LogonGuard::new(64, 16, 5, 60 * SEC);
        let a = ip("10.1.2.3");
        for i in 0..4 {
            assert_eq!(g.record_failure(T0 + i * SEC, &a, 9999), Failure::default());
            assert_eq!(g.check(T0 + i * SEC, &a, 9999), Ok(()));
        }
        let fifth = g.record_failure(T0 + 4 * SEC, &a, 9999);
        assert!(fifth.locked, "the fifth failure locks");
        assert_eq!(g.check(T0 + 5 * SEC, &a, 9999), Err(55 * SEC));
        assert_eq!(g.check(T0 + 5 * SEC + 1, &a, 9999), Err(55 * SEC - 1));
        // Not another key at the same address, nor the same key elsewhere.
        assert_eq!(g.check(T0 + 5 * SEC, &a, 1001), Ok(()));
        assert_eq!(g.check(T0 + 5 * SEC, &ip("10.1.2.4"), 9999), Ok(()));
        assert_eq!(
            g.check(T0 + 60 * SEC, &a, 9999),
            Ok(()),
            "the window has passed"
        );
        // A new failure after the window starts a new window.
        assert!(!g.record_failure(T0 + 61 * SEC, &a, 9999).locked);
        assert_eq!(g.check(T0 + 61 * SEC, &a, 9999), Ok(()));
    }

    #[test]
    fn an_ipv6_64_is_one_client_for_the_lockout() {
        let g = LogonGuard::new(64, 16, 3, 60 * SEC);
        for i in 1..=3u8 {
            g.record_failure(T0, &ip(&format!("2001:db8:0:7::{i}")), 1001);
        }
        assert_eq!(g.check(T0, &ip("2001:db8:0:7::99"), 1001), Err(60 * SEC));
        assert_eq!(g.check(T0, &ip("2001:db8:0:8::1"), 1001), Ok(()));
    }

    #[test]
    fn a_spray_of_failures_locks_out_no_one_else() {
        // A small table: 8 buckets of 4. Every (address, key) fails 4 times
        // (one short of the lockout), thousands of them.
        let g = LogonGuard::new(8, 4, 5, 60 * SEC);
        let mut evicted = 0;
        for i in 0..5000u32 {
            let a = IpAddr::V4(core::net::Ipv4Addr::from(0x0A00_0000 + i * 7919));
            for _ in 0..4 {
                evicted += g.record_failure(T0, &a, 9999).evicted as u32;
            }
        }
        assert!(evicted > 4000, "the table was under pressure: {evicted}");
        for i in 0..1000u32 {
            let fresh = IpAddr::V4(core::net::Ipv4Addr::from(0xC000_0000 | i));
            assert_eq!(g.check(T0, &fresh, 1001), Ok(()));
            assert_eq!(g.check(T0, &fresh, 9999), Ok(()));
        }
    }

    #[test]
    fn a_full_bucket_forgets_unlocked_records_before_a_lock() {
        // One bucket of 4 slots: every record shares it.
        let g = LogonGuard::new(1, 4, 2, 60 * SEC);
        let attacker = ip("10.0.0.1");
        g.record_failure(T0, &attacker, 7);
        assert!(g.record_failure(T0, &attacker, 7).locked);
        // Fresher single failures of other pairs churn through the other
        // three slots; the lock, the oldest record, stays.
        for k in 0..100 {
            let f = g.record_failure(T0 + SEC, &attacker, 1000 + k);
            assert_eq!(f.evicted, k >= 3, "key {k}");
            assert_eq!(g.check(T0 + SEC, &attacker, 7), Err(59 * SEC));
        }
        // Once every record is a lock, the oldest lock goes.
        for k in 0..3 {
            g.record_failure(T0 + 2 * SEC, &attacker, 50 + k);
            g.record_failure(T0 + 2 * SEC, &attacker, 50 + k);
        }
        assert_eq!(g.check(T0 + 2 * SEC, &attacker, 7), Err(58 * SEC));
        let f = g.record_failure(T0 + 3 * SEC, &attacker, 60);
        assert_eq!(
            f,
            Failure {
                locked: false,
                evicted: true
            }
        );
        assert_eq!(g.check(T0 + 3 * SEC, &attacker, 7), Ok(()));
        assert_eq!(g.check(T0 + 3 * SEC, &attacker, 50), Err(59 * SEC));
    }

    #[test]
    fn one_prefix_only_ever_fills_its_own_bucket() {
        let g = LogonGuard::new(64, 16, 5, 60 * SEC);
        // Lock one pair in each of 64 /24s, then spray a single /24 with
        // ten thousand (address, key) failures.
        let locked: Vec<IpAddr> = (0..64u32)
            .map(|i| IpAddr::V4(core::net::Ipv4Addr::from(0x0B00_0001 | (i << 8))))
            .collect();
        for a in &locked {
            for _ in 0..5 {
                g.record_failure(T0, a, 1);
            }
        }
        let spray_prefix = 0x0C00_0000;
        for i in 0..10_000u32 {
            let a = IpAddr::V4(core::net::Ipv4Addr::from(spray_prefix | (i & 0xFF)));
            g.record_failure(T0 + SEC, &a, u64::from(i));
        }
        // Every lock holds (the spray's records are not locked, so even in
        // its own bucket it evicts only its own), and outside the spray's
        // bucket the table holds nothing but those locks.
        for a in &locked {
            assert_eq!(g.check(T0 + SEC, a, 1), Err(59 * SEC), "{a}");
        }
        let bucket_of = |c: Client| g.hasher.hash_one(c.prefix()) as usize & 63;
        let spray_bucket = bucket_of(Client::V4(spray_prefix));
        let outside = |i: &usize| i / 16 != spray_bucket;
        let used_outside = (0..g.slots.len())
            .filter(outside)
            .filter(|i| g.slots[*i].load(Ordering::Relaxed) != 0)
            .count();
        let locks_outside = locked
            .iter()
            .filter(|a| bucket_of(Client::of(a)) != spray_bucket)
            .count();
        assert_eq!(used_outside, locks_outside);
    }

    #[test]
    fn address_rate_admits_the_burst_then_refuses_with_the_exact_wait() {
        let r = AddressRate::new(64, 8, 10, 3); // T = 100 ms, tolerance 200 ms
        let a = ip("10.1.2.3");
        for _ in 0..3 {
            assert_eq!(r.take(T0, &a), Ok(Taken::default()));
        }
        assert_eq!(r.take(T0, &a), Err(100 * MS));
        assert_eq!(r.take(T0 + 40 * MS, &a), Err(60 * MS));
        assert_eq!(r.take(T0 + 100 * MS, &a), Ok(Taken::default()));
        assert_eq!(r.take(T0 + 100 * MS, &a), Err(100 * MS));
        // Another client has its own cell; an IPv6 /64 is one client.
        assert_eq!(r.take(T0, &ip("10.1.2.4")), Ok(Taken::default()));
        let v6 = |s| r.take(T0, &ip(s));
        for _ in 0..3 {
            assert!(v6("2001:db8::1").is_ok());
        }
        assert_eq!(v6("2001:db8::2"), Err(100 * MS));
    }

    #[test]
    fn a_full_rate_bucket_forgets_the_client_nearest_to_full_again() {
        let r = AddressRate::new(1, 3, 10, 10); // one bucket of 3 cells
        let (a, b, c, d) = (
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            ip("10.0.0.3"),
            ip("10.0.0.4"),
        );
        // a floods to its limit, b takes 2 tokens, c one.
        while r.take(T0, &a).is_ok() {}
        r.take(T0, &b).unwrap();
        r.take(T0, &b).unwrap();
        r.take(T0, &c).unwrap();
        // d needs a cell: c's, the one with the least debt.
        assert_eq!(r.take(T0, &d), Ok(Taken { evicted: true }));
        assert_eq!(r.take(T0, &a), Err(100 * MS), "the flooder keeps its debt");
        // A cell whose TAT has passed is taken without eviction.
        assert_eq!(r.take(T0 + SEC, &c), Ok(Taken { evicted: false }));
    }

    #[test]
    fn a_logon_floor_refuses_request_times_not_later_than_it_and_raise_moves_only_last() {
        let floor = LogonFloor::new(T0);
        assert!(!floor.admits(T0 - 1));
        assert!(!floor.admits(T0), "equal is a replay of the last logon");
        assert!(floor.admits(T0 + 1));
        floor.raise(T0 + 5 * SEC);
        floor.raise(T0 + 2 * SEC); // out of order: the latest stays
        assert_eq!((floor.floor(), floor.last()), (T0, T0 + 5 * SEC));
        // Concurrent logons of the key keep being checked against the
        // floor they started with (the nonce cache refuses this run's
        // replays), so one that arrives after a later one is accepted.
        assert!(floor.admits(T0 + 3 * SEC));
        assert!(LogonFloor::new(0).admits(1));
    }

    #[test]
    fn a_floor_book_keeps_each_key_latest_and_folds_beyond_its_bound() {
        let mut book = FloorBook::new();
        assert!(book.is_empty());
        book.raise(7, T0);
        book.raise(7, T0 - SEC);
        book.raise(8, T0 + SEC);
        assert_eq!(
            (book.floor(7), book.floor(8), book.floor(9)),
            (T0, T0 + SEC, 0)
        );
        book.raise_all(T0 + 2 * SEC);
        assert_eq!(book.floor(7), T0 + 2 * SEC, "every key's floor applies");
        let mut full = FloorBook::new();
        let max = crate::constants::LOGON_FLOOR_KEYS_MAX as u64;
        for id in 0..max {
            full.raise(id, T0);
        }
        full.raise(max + 1, 0); // nothing to keep: takes no room
        assert_eq!(full.folded(), 0);
        full.raise(max, T0 + SEC);
        assert_eq!((full.len() as u64, full.folded()), (max, 1));
        assert_eq!(full.floor(max), T0 + SEC, "folded, never dropped");
        assert_eq!(full.floor(0), T0 + SEC);
    }
}

/// Loom models of the lock-free shared limits: every interleaving of two
/// reactors on one key's rate cell and on one key's nonce cache. Run with
/// (README, "Testing"):
///
/// ```text
/// CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" \
///     cargo test --release -p ordergate-core --lib loom_tests -- --test-threads=1
/// ```
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    const NOW: Nanos = 1_000 * NS_PER_SEC;

    /// Two reactors each take one token from a key's cell at the same
    /// instant: with a burst of 1 exactly one is admitted (a lost update —
    /// a load and a store instead of the compare-and-swap — admits both),
    /// with a burst of 2 both are (the bounded CAS retry never refuses a
    /// token that is there, against one competitor).
    fn two_takers(burst: u32) -> usize {
        let rate = Rate::every(NS_PER_SEC, burst);
        let cell = Arc::new(SharedCell::default());
        let other = cell.clone();
        let handle = thread::spawn(move || other.take(&rate, NOW, Class::Cancel).is_ok());
        let here = cell.take(&rate, NOW, Class::Cancel).is_ok();
        let there = handle.join().unwrap();
        usize::from(here) + usize::from(there)
    }

    #[test]
    fn a_shared_cell_admits_exactly_its_burst_to_two_reactors() {
        loom::model(|| assert_eq!(two_takers(1), 1));
        loom::model(|| assert_eq!(two_takers(2), 2));
    }

    /// Two reactors admit the same logon nonce at once: exactly one is
    /// admitted, the other refused REPLAYED_NONCE, and exactly one slot
    /// holds it (the refused one left nothing behind).
    #[test]
    fn one_nonce_admitted_by_two_reactors_at_once_is_admitted_once() {
        let mut builder = loom::model::Builder::new();
        // 16 probes and a rescan per admission: bound the preemptions so
        // the search ends (3 is enough to put either reactor's claim
        // between the other's scan and its claim, and its rescan after).
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let cache = Arc::new(NonceCache::new(NONCE_CACHE_PROBES_MAX, NS_PER_SEC));
            let other = cache.clone();
            let nonce = [7u8; 16];
            let handle = thread::spawn(move || other.admit(NOW, &nonce));
            let here = cache.admit(NOW, &nonce);
            let there = handle.join().unwrap();
            let admitted = [here, there].iter().filter(|r| r.is_ok()).count();
            assert_eq!(admitted, 1, "{here:?} {there:?}");
            assert!(
                [here, there].contains(&Err(NonceRefusal::Replayed)),
                "{here:?} {there:?}"
            );
            let used = cache
                .slots
                .iter()
                .filter(|s| s.load(Ordering::SeqCst) != 0)
                .count();
            assert_eq!(used, 1);
            assert!(cache.seen(NOW, &nonce));
        });
    }
}
