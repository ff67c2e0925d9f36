//! The engine as an agent: it drains every reactor's command ring into the
//! engine and routes the events back through each reactor's event ring.
//!
//! `do_work(now)` does a bounded amount of work and returns how much (0 =
//! idle), so the agent can run on its own pinned thread or share a reactor's
//! thread — either way only through the rings.
//!
//! Back-pressure: before each engine step the engine asks for room in the
//! event rings it will write to (`EventSink::room`). If a reactor's event
//! ring is full, the engine stops between two steps and the agent stops
//! taking commands until `resume` finishes; the reactor drains its ring on
//! its next turn. Command rings then fill, and reactors answer ENGINE_BUSY.
//! Nothing is dropped.
//!
//! Per-key limits: with a [`LimitsFeed`] (`with_limits`), the agent looks at
//! the feed's epoch before every command (one atomic load) and installs a
//! new set of limits into the engine when it moved. The gateway publishes
//! the limits of a key generation before the generation itself, so a
//! command from a session of that generation is always checked against it.

use std::sync::Arc;

use crate::constants::RING_BATCH_MAX;
use crate::engine::risk::LimitsFeed;
use crate::engine::{Command, Engine, Event, EventKind, EventReason, EventSink, Nanos, SessionId};
use crate::link::{CommandRx, EventTx};
use crate::ring::{Consumer, Producer};
use crate::wire::codes::RejectReason;

/// What the engine agent did, for the stats file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    pub commands: u64,
    pub events: u64,
    /// Turns that found an event ring too full to finish a command.
    pub blocked_turns: u64,
    /// Commands naming a reactor that does not exist (a bug upstream);
    /// dropped and counted rather than crashing the engine.
    pub misrouted: u64,
    /// Orders refused PRICE_OUT_OF_BAND (outside the collar, or ≤ 0).
    pub price_rejects: u64,
    /// Orders refused RISK_MAX_NOTIONAL at the prices they would fill at.
    pub notional_rejects: u64,
    /// Orders refused RISK_MAX_OPEN_NOTIONAL.
    pub open_notional_rejects: u64,
    /// Key sweeps (CancelForKey) finished.
    pub key_sweeps: u64,
    /// Resting orders those sweeps canceled.
    pub key_sweep_canceled: u64,
    /// Sets of per-key limits installed (start-up, then one per reload).
    pub limits_installed: u64,
}

struct RingSink<'a> {
    events: &'a mut [EventTx],
    counters: &'a mut EngineCounters,
}

impl EventSink for RingSink<'_> {
    #[inline]
    fn room(&mut self, session: SessionId) -> usize {
        self.events
            .get_mut(session.reactor() as usize)
            .map_or(usize::MAX, |p| p.free())
    }

    #[inline]
    fn emit(&mut self, event: &Event) {
        let Some(ring) = self.events.get_mut(event.session.reactor() as usize) else {
            return;
        };
        let pushed = ring.try_push(*event);
        debug_assert!(
            pushed.is_ok(),
            "the engine emits only after room() promised a slot"
        );
        let c = &mut *self.counters;
        c.events += 1;
        match (event.kind, event.reason) {
            (EventKind::Rejected, EventReason::Reject(r)) => match r {
                RejectReason::PRICE_OUT_OF_BAND => c.price_rejects += 1,
                RejectReason::RISK_MAX_NOTIONAL => c.notional_rejects += 1,
                RejectReason::RISK_MAX_OPEN_NOTIONAL => c.open_notional_rejects += 1,
                _ => {}
            },
            (EventKind::KeySwept, _) => {
                c.key_sweeps += 1;
                c.key_sweep_canceled += u64::from(event.qty);
            }
            _ => {}
        }
    }
}

pub struct EngineAgent<E: Engine> {
    engine: E,
    commands: Box<[CommandRx]>,
    events: Box<[EventTx]>,
    /// The engine stopped mid-command for lack of event-ring room.
    blocked: bool,
    /// Reactor whose ring is drained first next turn (fairness).
    next: usize,
    /// Where the per-key limits come from, and the epoch installed.
    limits: Option<Arc<LimitsFeed>>,
    limits_epoch: u64,
    pub counters: EngineCounters,
}

impl<E: Engine> EngineAgent<E> {
    /// One command consumer and one event producer per reactor, index =
    /// reactor number.
    pub fn new(
        engine: E,
        commands: Vec<Consumer<Command>>,
        events: Vec<Producer<Event>>,
    ) -> EngineAgent<E> {
        EngineAgent::linked(
            engine,
            commands.into_iter().map(CommandRx::from).collect(),
            events.into_iter().map(EventTx::from).collect(),
        )
    }

    /// One command end and one event end per reactor, of any transport
    /// (`crate::link`), index = reactor number.
    pub fn linked(engine: E, commands: Vec<CommandRx>, events: Vec<EventTx>) -> EngineAgent<E> {
        assert_eq!(commands.len(), events.len(), "one ring pair per reactor");
        EngineAgent {
            engine,
            commands: commands.into_boxed_slice(),
            events: events.into_boxed_slice(),
            blocked: false,
            next: 0,
            limits: None,
            limits_epoch: 0,
            counters: EngineCounters::default(),
        }
    }

    /// Takes per-key limits from `feed` (installed now, and again before the
    /// next command whenever the feed's epoch moves).
    pub fn with_limits(mut self, feed: Arc<LimitsFeed>) -> EngineAgent<E> {
        self.limits = Some(feed);
        self.refresh_limits();
        self
    }

    /// Installs the feed's limits if they changed: one atomic load when
    /// they did not. Only between commands.
    #[inline]
    fn refresh_limits(&mut self) {
        let Some(feed) = &self.limits else { return };
        if feed.epoch() == self.limits_epoch {
            return;
        }
        let (epoch, limits) = feed.snapshot();
        self.engine.set_key_limits(&limits);
        self.limits_epoch = epoch;
        self.counters.limits_installed += 1;
    }

    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The engine back, its rings dropped (a fuzz target or a simulation
    /// that reuses one engine across runs: [`MatchingEngine::reset`]).
    ///
    /// [`MatchingEngine::reset`]: crate::engine::book::MatchingEngine::reset
    pub fn into_engine(self) -> E {
        self.engine
    }

    /// Reactors whose rings this agent serves.
    pub fn reactors(&self) -> usize {
        self.commands.len()
    }

    /// Whether `do_work` has something left: a command waiting in a ring,
    /// or a step stopped for event-ring room. A reactor running the agent
    /// does not block while this holds.
    pub fn pending(&mut self) -> bool {
        self.blocked || self.commands.iter_mut().any(|c| !c.is_empty())
    }

    /// Records refused by the record check on shared-memory command rings
    /// (another program's bad bytes; skipped).
    pub fn bad_records(&self) -> u64 {
        self.commands.iter().map(CommandRx::bad_records).sum()
    }

    /// Hands the engine one command that came from no ring (the engine
    /// process cancelling a dead gateway's cancel-on-disconnect sessions).
    /// Only while nothing is `pending`; a step stopped for room is resumed
    /// by `do_work` as usual.
    pub fn inject(&mut self, now: Nanos, command: &Command) {
        debug_assert!(!self.blocked);
        self.counters.commands += 1;
        let mut sink = RingSink {
            events: &mut self.events,
            counters: &mut self.counters,
        };
        if !self.engine.submit(now, command, &mut sink) {
            self.blocked = true;
            self.counters.blocked_turns += 1;
        }
    }

    /// Takes at most `RING_BATCH_MAX` commands from each reactor. Returns
    /// the number of commands handled (0 = idle).
    pub fn do_work(&mut self, now: Nanos) -> usize {
        if self.blocked {
            let mut sink = RingSink {
                events: &mut self.events,
                counters: &mut self.counters,
            };
            if !self.engine.resume(now, &mut sink) {
                self.counters.blocked_turns += 1;
                return 0;
            }
            self.blocked = false;
        }
        let reactors = self.commands.len();
        let mut work = 0;
        for k in 0..reactors {
            let r = (self.next + k) % reactors;
            for _ in 0..RING_BATCH_MAX {
                let Some(command) = self.commands[r].pop() else {
                    break;
                };
                work += 1;
                self.counters.commands += 1;
                if command.session.reactor() as usize >= reactors {
                    self.counters.misrouted += 1;
                    continue;
                }
                // After the pop: a command pushed by a reactor that had
                // switched to a new key generation finds its limits here.
                self.refresh_limits();
                let mut sink = RingSink {
                    events: &mut self.events,
                    counters: &mut self.counters,
                };
                if !self.engine.submit(now, &command, &mut sink) {
                    self.blocked = true;
                    self.counters.blocked_turns += 1;
                    self.next = r;
                    return work;
                }
            }
        }
        self.next = (self.next + 1) % reactors.max(1);
        work
    }
}
