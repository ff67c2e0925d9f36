//! Pre-trade risk that needs the book, and the kill switch's report.
//!
//! The gateway checks what one message shows (`qty ≤ max_order_qty`,
//! `|price| × qty ≤ max_order_notional`, in [`crate::auth::policy`]). Three
//! checks need the engine's state and are made in the engine, exactly, as
//! each NewOrder or ReplaceOrder is taken (see [`crate::engine::book`]):
//!
//! - **price collars** per instrument (PRICE_OUT_OF_BAND): a band around a
//!   reference price — the last trade, or a configured reference before the
//!   first trade — and no price ≤ 0 unless the instrument allows it;
//! - **notional at the fill price** (RISK_MAX_NOTIONAL): a marketable
//!   order's notional is counted at the prices it would trade at, plus its
//!   resting remainder at its limit, against the key's `max_order_notional`;
//! - **open notional** per key (RISK_MAX_OPEN_NOTIONAL): `Σ |price| × leaves`
//!   of the key's resting orders, against its `max_open_notional`.
//!
//! The engine learns each key's limits from a [`LimitsFeed`], which the
//! gateway publishes *before* it publishes the key generation the limits
//! belong to; the engine agent looks at the feed before every command (one
//! atomic load), so no command of a session of a new generation is ever
//! checked against an older generation's limits.
//!
//! [`KeySweeps`] carries the kill switch's answer back: every reactor sends
//! the engine one `CancelForKey` for a revoked key, and reports the count
//! the engine returns; the control plane adds them up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::auth::keys::KeyTable;

/// What the engine enforces for one key. 0 = no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyLimits {
    pub key_id: u64,
    /// Largest notional of one order, at the prices it would fill at (its
    /// resting remainder at its limit price), in price ticks × quantity.
    pub max_order_notional: u64,
    /// Largest `Σ |price| × leaves` over the key's resting orders.
    pub max_open_notional: u64,
}

/// The limits of every key of a table that has any engine-side limit.
pub fn limits_of(table: &KeyTable) -> Arc<[KeyLimits]> {
    table
        .iter()
        .filter(|(_, e)| e.max_order_notional.is_some() || e.max_open_notional.is_some())
        .map(|(_, e)| KeyLimits {
            key_id: e.id,
            max_order_notional: e.max_order_notional.map_or(0, |n| n.get()),
            max_open_notional: e.max_open_notional.map_or(0, |n| n.get()),
        })
        .collect()
}

/// The engine-side limits of the current key generation, published by the
/// control plane and read by the engine agent. The engine takes the lock
/// only when the epoch moved (a reload), never per command.
pub struct LimitsFeed {
    epoch: AtomicU64,
    limits: Mutex<Arc<[KeyLimits]>>,
}

impl LimitsFeed {
    pub fn new(limits: Arc<[KeyLimits]>) -> LimitsFeed {
        LimitsFeed {
            epoch: AtomicU64::new(1),
            limits: Mutex::new(limits),
        }
    }

    /// Installs the limits of a new generation. Call before the generation
    /// itself is published to the reactors.
    pub fn publish(&self, limits: Arc<[KeyLimits]>) {
        let mut current = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        *current = limits;
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// One atomic load: what the agent checks before every command.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The current limits and their epoch (takes the lock).
    pub fn snapshot(&self) -> (u64, Arc<[KeyLimits]>) {
        let current = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        (self.epoch.load(Ordering::Acquire), current.clone())
    }
}

/// One kill (or revocation) waiting for the reactors' sweep reports.
#[derive(Debug)]
struct Tally {
    key_id: u64,
    /// Reports of sweeps tagged with a generation after this one count.
    after_epoch: u64,
    reports: u32,
    canceled: u64,
}

/// The reactors' reports of their `CancelForKey` sweeps, for the control
/// plane waiting on a kill. Only open tallies collect; a report for a key
/// nobody waits on is dropped (the reactor counts it in its own counters).
/// Locked only by the control plane and by a reactor handling a KeySwept
/// event (one per swept key per reactor): never per message.
#[derive(Debug, Default)]
pub struct KeySweeps {
    open: Mutex<Vec<Tally>>,
}

impl KeySweeps {
    /// Starts collecting the reports for `key_id` of sweeps triggered by any
    /// generation after `after_epoch` (the generation current before the
    /// revocation is published).
    pub fn open(&self, key_id: u64, after_epoch: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|t| t.key_id != key_id);
        open.push(Tally {
            key_id,
            after_epoch,
            reports: 0,
            canceled: 0,
        });
    }

    /// A reactor's report: its sweep of `key_id`, triggered by generation
    /// `epoch`, canceled `canceled` orders.
    pub fn record(&self, key_id: u64, epoch: u64, canceled: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = open
            .iter_mut()
            .find(|t| t.key_id == key_id && epoch > t.after_epoch)
        {
            t.reports += 1;
            t.canceled += canceled;
        }
    }

    /// Whether the `reactors` reports for `key_id` are in: then the tally
    /// is closed and [`Sweep::Done`] carries the orders they canceled. The
    /// control thread polls this with its own clock and gives up with
    /// [`close`](Self::close) (`ordergate::waits`); the core neither
    /// blocks nor reads a clock.
    pub fn poll(&self, key_id: u64, reactors: usize) -> Sweep {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let Some(at) = open.iter().position(|t| t.key_id == key_id) else {
            return Sweep::NotOpen;
        };
        if open[at].reports as usize >= reactors {
            return Sweep::Done(open.swap_remove(at).canceled);
        }
        Sweep::Pending
    }

    /// Stops collecting for `key_id` (the revocation did not happen).
    pub fn close(&self, key_id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|t| t.key_id != key_id);
    }
}

/// Where a kill switch's sweep stands ([`KeySweeps::poll`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// Every reactor reported; the orders they canceled. The tally is closed.
    Done(u64),
    /// Some reports are still to come.
    Pending,
    /// No tally for this key (never opened, or already closed).
    NotOpen,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_is_pending_until_every_report_is_in_and_closes_the_tally() {
        let sweeps = KeySweeps::default();
        assert_eq!(sweeps.poll(7, 1), Sweep::NotOpen);
        sweeps.open(7, 1);
        sweeps.record(7, 2, 4);
        assert_eq!(sweeps.poll(7, 2), Sweep::Pending);
        sweeps.record(7, 2, 1);
        assert_eq!(sweeps.poll(7, 2), Sweep::Done(5));
        assert_eq!(sweeps.poll(7, 2), Sweep::NotOpen);
    }

    #[test]
    fn the_feed_moves_its_epoch_on_publish() {
        let feed = LimitsFeed::new(Arc::from([]));
        let (e1, l1) = feed.snapshot();
        assert!(l1.is_empty());
        let limits = KeyLimits {
            key_id: 3,
            max_order_notional: 10,
            max_open_notional: 0,
        };
        feed.publish(Arc::from([limits]));
        let (e2, l2) = feed.snapshot();
        assert!(e2 > e1);
        assert_eq!(feed.epoch(), e2);
        assert_eq!(&l2[..], &[limits]);
    }
}
