//! Rate limits, the logon nonce replay cache and the failed-logon lockout,
//! all in fixed-size memory allocated at start-up. Pure: every call takes a
//! `now`.
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

use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::constants::{
    CANCEL_RESERVE_DIVISOR, HEARTBEAT_BURST, HEARTBEATS_PER_KEEPALIVE, NONCE_CACHE_PROBES_MAX,
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

    /// The TAT after admitting a message at `now`, or the wait until one
    /// would be admitted.
    #[inline(always)]
    fn step(&self, tat: u64, now: Nanos, class: Class) -> Result<u64, u64> {
        let base = tat.max(now);
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

/// The logon nonce replay cache, shared by every reactor without a lock.
///
/// Each slot is one `AtomicU64`: a 40-bit keyed fingerprint of
/// `(key_id, client_nonce)` and a 24-bit expiry in whole seconds (mod 2^24,
/// ~194 days, compared with wrapping arithmetic). 0 is an empty slot. A nonce
/// probes `NONCE_CACHE_PROBES_MAX` slots from its hash.
///
/// Two reactors admitting the same nonce at once: each claims a slot by CAS
/// and then rescans its probe range; whoever finds the fingerprint live in
/// another slot refuses. So at most one of them is admitted (a rare double
/// refusal is the fail-closed side of the race). A fingerprint collision (1
/// in 2^40 per live entry) refuses a fresh nonce as replayed; the client
/// retries with a new nonce.
pub struct NonceCache {
    slots: Box<[AtomicU64]>,
    hasher: RandomState,
    /// Seconds a nonce is remembered: the whole skew window, both sides.
    remember_s: u64,
}

const FP_SHIFT: u32 = 24;
const EXPIRY_MASK: u64 = (1 << FP_SHIFT) - 1;

impl NonceCache {
    /// `slots` a power of two; `skew_ns` the logon skew window (one side).
    pub fn new(slots: usize, skew_ns: u64) -> NonceCache {
        assert!(slots.is_power_of_two() && slots >= NONCE_CACHE_PROBES_MAX);
        NonceCache {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
            // A request time may be up to `skew` in the future, and is
            // accepted until `skew` in the past: remember for 2·skew, plus
            // one second for rounding to whole seconds.
            remember_s: (2 * skew_ns).div_ceil(NS_PER_SEC) + 1,
        }
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

    /// Admits `(key_id, nonce)` once within the window.
    pub fn admit(&self, now: Nanos, key_id: u64, nonce: &[u8; 16]) -> Result<(), NonceRefusal> {
        let hash = {
            let mut h = self.hasher.build_hasher();
            key_id.hash(&mut h);
            nonce.hash(&mut h);
            std::hash::Hasher::finish(&h)
        };
        let fingerprint = (hash >> FP_SHIFT) | 1; // never 0: 0 marks an empty slot
        let now_s = now / NS_PER_SEC;
        let entry = (fingerprint << FP_SHIFT) | ((now_s + self.remember_s) & EXPIRY_MASK);
        let mask = self.slots.len() - 1;
        let start = hash as usize & mask;
        let probe = |i: usize| &self.slots[(start + i) & mask];

        for _ in 0..SHARED_CELL_CAS_TRIES {
            let mut free = None;
            for i in 0..NONCE_CACHE_PROBES_MAX {
                let slot = probe(i).load(Ordering::SeqCst);
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
            if probe(claimed)
                .compare_exchange(old, entry, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            // Did another reactor admit the same nonce into another slot?
            for i in 0..NONCE_CACHE_PROBES_MAX {
                if i != claimed {
                    let slot = probe(i).load(Ordering::SeqCst);
                    if Self::live(slot, now_s) && slot >> FP_SHIFT == fingerprint {
                        return Err(NonceRefusal::Replayed);
                    }
                }
            }
            return Ok(());
        }
        Err(NonceRefusal::Full)
    }
}

/// Failed logons per source address, in a fixed hashed table shared by every
/// reactor. After `failures_max` failures within `window_ns` of the first,
/// the address is locked out until the window ends: its logons are refused
/// THROTTLED before any HMAC is computed.
///
/// Each slot is one `AtomicU64`: the window's start in whole seconds since
/// the epoch (high 32 bits) and the failure count (low 32). Addresses that
/// hash to the same slot share a budget: a collision can lock out an
/// innocent address early, never admit anyone.
pub struct LogonGuard {
    slots: Box<[AtomicU64]>,
    hasher: RandomState,
    failures_max: u32,
    window_s: u64,
}

impl LogonGuard {
    pub fn new(slots: usize, failures_max: u32, window_ns: u64) -> LogonGuard {
        assert!(slots.is_power_of_two() && failures_max > 0);
        LogonGuard {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
            failures_max,
            window_s: window_ns.div_ceil(NS_PER_SEC).max(1),
        }
    }

    fn slot(&self, addr: &IpAddr) -> &AtomicU64 {
        let h = self.hasher.hash_one(addr);
        &self.slots[h as usize & (self.slots.len() - 1)]
    }

    /// `Err(retry_after_ns)` while `addr` is locked out.
    pub fn check(&self, now: Nanos, addr: &IpAddr) -> Result<(), u64> {
        let v = self.slot(addr).load(Ordering::Relaxed);
        let (start_s, failures) = (v >> 32, v as u32);
        let end_ns = (start_s + self.window_s) * NS_PER_SEC;
        if failures >= self.failures_max && now < end_ns {
            Err(end_ns - now)
        } else {
            Ok(())
        }
    }

    /// Counts one failed logon. Returns true if this failure locked the
    /// address out.
    pub fn record_failure(&self, now: Nanos, addr: &IpAddr) -> bool {
        let slot = self.slot(addr);
        let now_s = now / NS_PER_SEC;
        let mut v = slot.load(Ordering::Relaxed);
        loop {
            let (start_s, failures) = (v >> 32, v as u32);
            let next = if failures == 0 || now_s >= start_s + self.window_s {
                (now_s << 32) | 1
            } else {
                (start_s << 32) | failures.saturating_add(1) as u64
            };
            match slot.compare_exchange_weak(v, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next as u32 == self.failures_max,
                Err(seen) => v = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = NS_PER_SEC;
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
    fn nonce_is_admitted_once_per_key_until_it_expires() {
        let c = NonceCache::new(64, 5 * SEC);
        let n = [7u8; 16];
        assert_eq!(c.admit(T0, 1, &n), Ok(()));
        assert_eq!(c.admit(T0, 1, &n), Err(NonceRefusal::Replayed));
        assert_eq!(c.admit(T0 + 10 * SEC, 1, &n), Err(NonceRefusal::Replayed));
        assert_eq!(c.admit(T0, 2, &n), Ok(()), "another key's nonce space");
        // Remembered for 2 x 5 s + 1 s.
        assert_eq!(c.admit(T0 + 11 * SEC, 1, &n), Ok(()));
    }

    #[test]
    fn a_full_nonce_cache_refuses_rather_than_forgets() {
        let c = NonceCache::new(NONCE_CACHE_PROBES_MAX, 5 * SEC);
        for i in 0..NONCE_CACHE_PROBES_MAX as u8 {
            assert_eq!(c.admit(T0, 1, &[i; 16]), Ok(()));
        }
        assert_eq!(c.admit(T0, 1, &[200; 16]), Err(NonceRefusal::Full));
        assert_eq!(c.admit(T0, 1, &[0; 16]), Err(NonceRefusal::Replayed));
        // Once they expire, slots are reused.
        assert_eq!(c.admit(T0 + 12 * SEC, 1, &[200; 16]), Ok(()));
    }

    #[test]
    fn concurrent_admissions_of_one_nonce_admit_it_at_most_once() {
        for round in 0..200u8 {
            let c = std::sync::Arc::new(NonceCache::new(64, 5 * SEC));
            let ok: usize = (0..2)
                .map(|_| {
                    let c = c.clone();
                    std::thread::spawn(move || c.admit(T0, 9, &[round; 16]).is_ok() as usize)
                })
                .map(|h| h.join().unwrap())
                .sum();
            assert!(ok <= 1, "round {round}: admitted {ok} times");
        }
    }

    #[test]
    fn lockout_after_max_failures_until_the_window_ends() {
        let g = LogonGuard::new(64, 5, 60 * SEC);
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        for i in 0..4 {
            assert!(!g.record_failure(T0 + i * SEC, &a));
            assert_eq!(g.check(T0 + i * SEC, &a), Ok(()));
        }
        assert!(
            g.record_failure(T0 + 4 * SEC, &a),
            "the fifth failure locks"
        );
        assert_eq!(g.check(T0 + 5 * SEC, &a), Err(55 * SEC));
        assert_eq!(g.check(T0 + 60 * SEC, &a), Ok(()), "the window has passed");
        // A new failure after the window starts a new window.
        assert!(!g.record_failure(T0 + 61 * SEC, &a));
        assert_eq!(g.check(T0 + 61 * SEC, &a), Ok(()));
    }
}
