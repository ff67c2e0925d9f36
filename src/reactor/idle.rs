//! Idle strategies: what a pinned thread does after a turn that did no work
//! (Agrona's `IdleStrategy`).
//!
//! - [`Idle::BusySpin`]: never gives up the core. Lowest latency; the core
//!   shows 100% busy. The default for `serve` on isolated cores.
//! - [`Idle::Backoff`]: spins for a while, then yields, then parks for a
//!   growing, capped time. The default for `demo` and tests, so that a
//!   2-core machine stays usable.
//!
//! The strategy only decides how long to wait; the reactor does the waiting
//! (in `io_uring_enter` with a timeout when it parks, so a completion still
//! wakes it at once).

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleKind {
    BusySpin,
    Backoff,
}

impl IdleKind {
    pub fn parse(s: &str) -> Option<IdleKind> {
        match s {
            "busy-spin" | "spin" => Some(IdleKind::BusySpin),
            "backoff" => Some(IdleKind::Backoff),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IdleKind::BusySpin => "busy-spin",
            IdleKind::Backoff => "backoff",
        }
    }
}

/// Turns without work spent spinning before yielding.
pub const BACKOFF_SPINS: u32 = 100;
/// Turns without work spent yielding before parking.
pub const BACKOFF_YIELDS: u32 = 100;
/// Shortest and longest park. The longest bounds how late an idle reactor
/// notices an engine event that arrives while it is parked (the event ring
/// has no wake-up): 200 µs keeps an idle gateway at a fraction of a percent
/// of a core while its first reply after a lull is still sub-millisecond.
pub const PARK_MIN: Duration = Duration::from_micros(10);
pub const PARK_MAX: Duration = Duration::from_micros(200);

/// What to do after an idle turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleAction {
    Spin,
    Yield,
    Park(Duration),
}

#[derive(Clone, Debug)]
pub struct Idle {
    kind: IdleKind,
    idle_turns: u32,
    park: Duration,
}

impl Idle {
    pub fn new(kind: IdleKind) -> Idle {
        Idle {
            kind,
            idle_turns: 0,
            park: PARK_MIN,
        }
    }

    pub fn kind(&self) -> IdleKind {
        self.kind
    }

    /// Called after every turn with the work it did.
    #[inline]
    pub fn next(&mut self, work: usize) -> IdleAction {
        if work > 0 {
            self.idle_turns = 0;
            self.park = PARK_MIN;
            return IdleAction::Spin;
        }
        match self.kind {
            IdleKind::BusySpin => IdleAction::Spin,
            IdleKind::Backoff => {
                self.idle_turns = self.idle_turns.saturating_add(1);
                if self.idle_turns <= BACKOFF_SPINS {
                    IdleAction::Spin
                } else if self.idle_turns <= BACKOFF_SPINS + BACKOFF_YIELDS {
                    IdleAction::Yield
                } else {
                    let park = self.park;
                    self.park = (self.park * 2).min(PARK_MAX);
                    IdleAction::Park(park)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_spins_then_yields_then_parks_doubling_to_the_cap_and_resets_on_work() {
        let mut idle = Idle::new(IdleKind::Backoff);
        for _ in 0..BACKOFF_SPINS {
            assert_eq!(idle.next(0), IdleAction::Spin);
        }
        for _ in 0..BACKOFF_YIELDS {
            assert_eq!(idle.next(0), IdleAction::Yield);
        }
        let parks: Vec<_> = (0..7).map(|_| idle.next(0)).collect();
        let us = |n| IdleAction::Park(Duration::from_micros(n));
        assert_eq!(
            parks,
            vec![us(10), us(20), us(40), us(80), us(160), us(200), us(200)]
        );
        assert_eq!(idle.next(1), IdleAction::Spin);
        assert_eq!(idle.next(0), IdleAction::Spin);
    }

    #[test]
    fn busy_spin_never_parks() {
        let mut idle = Idle::new(IdleKind::BusySpin);
        assert!((0..10_000).all(|_| idle.next(0) == IdleAction::Spin));
    }
}
