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

use crate::constants::RING_BATCH_MAX;
use crate::engine::{Command, Engine, Event, EventSink, Nanos, SessionId};
use crate::ring::{Consumer, Producer};

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
}

struct RingSink<'a> {
    events: &'a mut [Producer<Event>],
    emitted: &'a mut u64,
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
        *self.emitted += 1;
    }
}

pub struct EngineAgent<E: Engine> {
    engine: E,
    commands: Box<[Consumer<Command>]>,
    events: Box<[Producer<Event>]>,
    /// The engine stopped mid-command for lack of event-ring room.
    blocked: bool,
    /// Reactor whose ring is drained first next turn (fairness).
    next: usize,
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
        assert_eq!(commands.len(), events.len(), "one ring pair per reactor");
        EngineAgent {
            engine,
            commands: commands.into_boxed_slice(),
            events: events.into_boxed_slice(),
            blocked: false,
            next: 0,
            counters: EngineCounters::default(),
        }
    }

    pub fn engine(&self) -> &E {
        &self.engine
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

    /// Takes at most `RING_BATCH_MAX` commands from each reactor. Returns
    /// the number of commands handled (0 = idle).
    pub fn do_work(&mut self, now: Nanos) -> usize {
        let mut sink = RingSink {
            events: &mut self.events,
            emitted: &mut self.counters.events,
        };
        if self.blocked {
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
