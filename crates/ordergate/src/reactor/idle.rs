//! Idle strategies: what a pinned thread does after a turn (Agrona's
//! `IdleStrategy`).
//!
//! - `busy-spin`: never gives up the core. Lowest latency; the core shows
//!   100% busy. The default for `serve` on isolated cores.
//! - `backoff`: for shared and small hosts. A reactor ([`TurnIdle`]) spins
//!   for an adaptive budget — often none — and then *blocks*: one
//!   `io_uring_enter` submits the turn's sends and sleeps until the next
//!   completion or the next timer tick, so a request costs one kernel entry
//!   (the one that sent the previous answer also brings in its bytes). The
//!   engine's own thread, which has no ring to wait on, uses [`Idle`]: spin,
//!   yield, then park for a growing, capped time.
//!
//! The strategy only decides; the reactor does the waiting.
//!
//! ## How long to spin before blocking
//!
//! Spinning pays only when the next request arrives during the spin: it
//! then saves a sleep and a wake-up, but costs a second enter per request
//! (the receive's task work needs an enter of its own when the reactor is
//! not waiting in the kernel) and a CPU. Whether it arrives depends on
//! where the client runs, which the reactor cannot see — on one CPU shared
//! with its client (a small VM, `ordergate-bench compare`) a spinning reactor only
//! delays the client, and no spin is ever hit. So the budget is learnt from
//! the reactor's own hits and misses:
//!
//! - a hit (work came during the spin, after `g` ns) keeps the budget at
//!   least `2 g`, up to `spin_max`;
//! - a miss (the spin ran out and the reactor blocked) halves it, to 0
//!   below [`SPIN_FLOOR_NS`];
//! - at 0 it blocks at once after every turn; every `probe_every` idle
//!   periods that were short enough to have been caught (≤ `spin_max`), it
//!   tries one spin of twice that gap. A probe that misses doubles
//!   `probe_every` (up to [`PROBE_EVERY_MAX`]), one that hits resets it.
//!
//! On one CPU this settles at budget 0 with one failed probe spin every
//! 1024 requests; with the client on another CPU and requests every few
//! µs it settles at a budget that catches them.

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

/// Turns without work spent spinning before yielding ([`Idle`], the
/// engine thread's strategy).
pub const BACKOFF_SPINS: u32 = 100;
/// Turns without work spent yielding before parking.
pub const BACKOFF_YIELDS: u32 = 100;
/// Shortest and longest park (defined in `constants` with their reason).
pub use crate::constants::{IDLE_PARK_MAX as PARK_MAX, IDLE_PARK_MIN as PARK_MIN};

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

/// A budget below this is no budget: a spin shorter than a microsecond
/// is a few empty turns, never worth a second enter.
pub const SPIN_FLOOR_NS: u64 = 1_000;
/// Short blocked idle periods between two probe spins, at first and at
/// most (each missed probe doubles it; defined in `constants`).
pub use crate::constants::{
    IDLE_PROBE_EVERY_MAX as PROBE_EVERY_MAX, IDLE_PROBE_EVERY_MIN as PROBE_EVERY_MIN,
};

/// What a reactor does after a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Run another turn at once (submitting what the turn queued, without
    /// waiting).
    Spin,
    /// One enter that submits what the turn queued and sleeps until the
    /// next completion (or the next timer tick).
    Block,
}

/// A reactor's idle strategy: busy-spin, or back-off's adaptive spin then
/// block (module docs). Sans-I/O: it is told the work and the time.
#[derive(Clone, Debug)]
pub struct TurnIdle {
    kind: IdleKind,
    spin_max_ns: u64,
    budget_ns: u64,
    /// Start of the current idle period (the first turn without work).
    idle_since: Option<u64>,
    /// The current idle period blocked (its spin, if any, missed).
    blocked: bool,
    /// The current spin is a probe from budget 0.
    probing: bool,
    probe_every: u32,
    probe_countdown: u32,
    /// Idle periods whose work came during the spin.
    pub hits: u64,
    /// Spins that ran out and blocked.
    pub misses: u64,
}

impl TurnIdle {
    /// `spin_max`: the longest spin (`reactors.spin_max_us`); 0 never
    /// spins. The budget starts at 0: block at once until a probe shows
    /// spinning catches requests.
    pub fn new(kind: IdleKind, spin_max: Duration) -> TurnIdle {
        TurnIdle {
            kind,
            spin_max_ns: spin_max.as_nanos() as u64,
            budget_ns: 0,
            idle_since: None,
            blocked: false,
            probing: false,
            probe_every: PROBE_EVERY_MIN,
            probe_countdown: PROBE_EVERY_MIN,
            hits: 0,
            misses: 0,
        }
    }

    pub fn kind(&self) -> IdleKind {
        self.kind
    }

    /// The current spin budget, ns.
    pub fn budget_ns(&self) -> u64 {
        self.budget_ns
    }

    /// After every turn: the work it did and its start (`now`, monotonic
    /// ns). `hold`: something no completion will announce may come soon (a
    /// command owed an answer by an engine on another thread), so spin
    /// rather than block whatever the budget says.
    #[inline]
    pub fn next(&mut self, work: usize, now: u64, hold: bool) -> Wait {
        if self.kind == IdleKind::BusySpin {
            return Wait::Spin;
        }
        if work > 0 {
            if let Some(since) = self.idle_since.take() {
                self.idle_period_ended(now.saturating_sub(since));
            }
            if self.budget_ns == 0 && !hold {
                // Straight from work to the blocking enter: the idle
                // period starts now, asleep.
                self.idle_since = Some(now);
                self.blocked = true;
                return Wait::Block;
            }
            self.blocked = false;
            return Wait::Spin;
        }
        let since = *self.idle_since.get_or_insert(now);
        if hold {
            return Wait::Spin;
        }
        if self.blocked || now.saturating_sub(since) >= self.budget_ns {
            if !self.blocked && self.budget_ns > 0 {
                self.missed();
            }
            self.blocked = true;
            return Wait::Block;
        }
        Wait::Spin
    }

    /// An idle period of `gap` ns ended with work.
    fn idle_period_ended(&mut self, gap: u64) {
        if !self.blocked {
            // Caught while spinning.
            self.hits += 1;
            self.probing = false;
            self.probe_every = PROBE_EVERY_MIN;
            self.budget_ns = self.budget_ns.max(2 * gap).min(self.spin_max_ns);
            return;
        }
        if self.budget_ns == 0 && gap <= self.spin_max_ns {
            // Short enough that a spin might have caught it.
            self.probe_countdown = self.probe_countdown.saturating_sub(1);
            if self.probe_countdown == 0 {
                self.probe_countdown = self.probe_every;
                self.budget_ns = (2 * gap).clamp(SPIN_FLOOR_NS, self.spin_max_ns);
                self.probing = true;
            }
        }
    }

    fn missed(&mut self) {
        self.misses += 1;
        if self.probing {
            self.probing = false;
            self.budget_ns = 0;
            self.probe_every = (self.probe_every * 2).min(PROBE_EVERY_MAX);
            self.probe_countdown = self.probe_every;
            return;
        }
        self.budget_ns /= 2;
        if self.budget_ns < SPIN_FLOOR_NS {
            self.budget_ns = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: u64 = 1_000;

    /// One request every `gap` ns, reaching the reactor only once it
    /// blocks when `one_cpu` (it shares the CPU with its client): `n`
    /// requests; returns the idle's decisions after each busy turn.
    fn drive(idle: &mut TurnIdle, gap: u64, one_cpu: bool, n: usize) -> Vec<Wait> {
        let mut now = 0;
        let mut after_work = Vec::new();
        for _ in 0..n {
            // The busy turn, which sends the answer; on another CPU the
            // client's next request arrives `gap` later.
            let w = idle.next(1, now, false);
            after_work.push(w);
            let arrival = now + gap;
            if w == Wait::Block {
                now += gap;
                continue;
            }
            // Empty turns of 200 ns until the request is caught or the
            // spin runs out (on one CPU the client only runs then).
            loop {
                now += 200;
                if !one_cpu && now >= arrival {
                    break;
                }
                if idle.next(0, now, false) == Wait::Block {
                    now = if one_cpu { now + gap } else { arrival.max(now) };
                    break;
                }
            }
        }
        after_work
    }

    #[test]
    fn one_cpu_blocks_after_every_turn_and_probes_ever_more_rarely() {
        let mut idle = TurnIdle::new(IdleKind::Backoff, Duration::from_micros(50));
        let waits = drive(&mut idle, 8 * US, true, 20_000);
        let spins = waits.iter().filter(|w| **w == Wait::Spin).count();
        assert_eq!(idle.hits, 0);
        assert_eq!(idle.misses as usize, spins, "every probe missed");
        // After 16, 32, 64, … 1024 (2032 requests), then every 1024: one
        // wasted spin per ~1000 requests.
        assert!(spins <= 7 + 18, "{spins} probes in 20 000 requests");
        assert_eq!(idle.budget_ns(), 0);
    }

    #[test]
    fn another_cpu_sending_every_few_microseconds_is_caught_by_the_spin() {
        let mut idle = TurnIdle::new(IdleKind::Backoff, Duration::from_micros(50));
        let waits = drive(&mut idle, 5 * US, false, 2_000);
        // After the first probe (16 blocked periods) every request is
        // caught while spinning.
        assert!(idle.hits >= 1_900, "hits {}", idle.hits);
        assert!(idle.misses <= 2, "misses {}", idle.misses);
        assert_eq!(waits.last(), Some(&Wait::Spin));
        assert!(idle.budget_ns() >= 10 * US && idle.budget_ns() <= 50 * US);
    }

    #[test]
    fn gaps_longer_than_the_spin_max_are_never_spun_for() {
        let mut idle = TurnIdle::new(IdleKind::Backoff, Duration::from_micros(50));
        let waits = drive(&mut idle, 200 * US, false, 2_000);
        assert!(waits.iter().all(|w| *w == Wait::Block));
        assert_eq!((idle.hits, idle.misses), (0, 0));
    }

    #[test]
    fn spin_max_zero_always_blocks_and_busy_spin_never_does() {
        let mut idle = TurnIdle::new(IdleKind::Backoff, Duration::ZERO);
        let waits = drive(&mut idle, 2 * US, false, 1_000);
        assert!(waits.iter().all(|w| *w == Wait::Block));
        let mut spin = TurnIdle::new(IdleKind::BusySpin, Duration::from_micros(50));
        assert!((0..10_000u64).all(|t| spin.next(0, t * 100, false) == Wait::Spin));
    }

    #[test]
    fn hold_spins_without_counting_a_miss() {
        let mut idle = TurnIdle::new(IdleKind::Backoff, Duration::from_micros(50));
        assert_eq!(idle.next(1, 0, true), Wait::Spin);
        assert!((1..1000u64).all(|t| idle.next(0, t * 1_000, true) == Wait::Spin));
        assert_eq!(idle.next(0, 1_000_000, false), Wait::Block);
        assert_eq!((idle.hits, idle.misses), (0, 0));
    }

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
