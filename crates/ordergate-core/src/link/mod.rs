//! The engine link: how commands reach the matching engine and events come
//! back, whichever side of a process boundary the engine is on.
//!
//! ```text
//!  reactor ── CommandTx ──▶ ┌───────────┐ ── CommandRx ──▶ EngineAgent
//!  reactor ◀── EventRx ──── │ transport │ ◀── EventTx ──── EngineAgent
//!                           └───────────┘
//!  Local: crate::ring (in-process SPSC, the default and the demo's)
//!  Shm:   shm_ring (SPSC rings in a file both processes map, one pair per
//!         reactor, a liveness beat each way)
//! ```
//!
//! The four ends are enums, so the reactor and the engine agent hold one
//! type whatever the transport; a push or pop is one predictable branch
//! more than the bare ring, allocates nothing and takes no lock.
//!
//! # Liveness (shared memory)
//!
//! Each side bumps its beat (the `beat` word of the ring it produces) on
//! its turn, at most every [`shm_ring::BEAT_INTERVAL_NS`]. Each side judges
//! the other by its own clock: a beat unchanged for
//! [`ENGINE_LIVENESS_TIMEOUT_NS`] means the peer is dead.
//!
//! - The gateway ([`GatewayEvents::poll`]) judging the engine dead (or the
//!   engine having said it stopped, or its ring corrupt) writes the verdict
//!   into its command ring and from then on answers every command itself:
//!   first the engine's last events still in the event ring, then each
//!   command the engine had not finished (`[head, tail)` of the command
//!   ring: the engine publishes a command's head only once it has
//!   finished it) and every command pushed later, each with
//!   `OrderRejected ENGINE_UNAVAILABLE` (a session's revocation and a key
//!   sweep get their usual end, with nothing canceled; a
//!   cancel-on-disconnect needs no answer). Nothing is silent.
//! - The engine ([`EngineWatch::poll`]) judging the gateway dead writes the
//!   verdict into the event ring (its events to that gateway are then
//!   dropped, so the engine never waits on a dead reader) and cancels the
//!   orders of every session the gateway marked cancel-on-disconnect in
//!   the link's COD table.
//!
//! [`ENGINE_LIVENESS_TIMEOUT_NS`]: crate::constants::ENGINE_LIVENESS_TIMEOUT_NS

pub mod records;
pub mod shm_ring;

use crate::engine::{Command, CommandKind, Event, EventKind, EventReason, Nanos, SessionId};
use crate::ring::{Consumer, Producer};
use crate::session::{CommandSink, RingRefusal};
use crate::wire::codes::RejectReason;
use shm_ring::{CodTable, Ring, ShmConsumer, ShmLink, ShmProducer, VERDICT_PEER_DEAD};

pub use records::{LinkRecord, RecordError};

/// A reactor's command end.
pub enum CommandTx {
    Local(Producer<Command>),
    Shm(GatewayCommands),
}

/// The gateway's command end of a shared-memory pair.
pub struct GatewayCommands {
    ring: ShmProducer<Command>,
    cod: CodTable,
}

impl From<Producer<Command>> for CommandTx {
    fn from(p: Producer<Command>) -> CommandTx {
        CommandTx::Local(p)
    }
}

impl CommandTx {
    /// Reactor `pair`'s command end on a link the gateway has attached to.
    pub fn shm(link: &ShmLink, pair: usize) -> CommandTx {
        CommandTx::Shm(GatewayCommands {
            ring: link.command_ring(pair).producer(),
            cod: link.cod_table(pair),
        })
    }

    #[inline]
    pub fn try_push(&mut self, command: Command) -> Result<(), Command> {
        match self {
            CommandTx::Local(p) => p.try_push(command),
            CommandTx::Shm(s) => s.ring.try_push(command),
        }
    }

    #[inline]
    pub fn try_push_leaving(&mut self, command: Command, reserve: usize) -> Result<(), Command> {
        match self {
            CommandTx::Local(p) => p.try_push_leaving(command, reserve),
            CommandTx::Shm(s) => s.ring.try_push_leaving(command, reserve),
        }
    }

    #[inline]
    pub fn free_seen(&self) -> usize {
        match self {
            CommandTx::Local(p) => p.free_seen(),
            CommandTx::Shm(s) => s.ring.free_seen(),
        }
    }

    #[inline]
    pub fn free(&mut self) -> usize {
        match self {
            CommandTx::Local(p) => p.free(),
            CommandTx::Shm(s) => s.ring.free(),
        }
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        match self {
            CommandTx::Local(p) => p.capacity(),
            CommandTx::Shm(s) => s.ring.capacity(),
        }
    }
}

impl CommandSink for CommandTx {
    #[inline]
    fn try_push(&mut self, command: Command) -> bool {
        CommandTx::try_push(self, command).is_ok()
    }

    #[inline]
    fn try_push_order(&mut self, command: Command) -> Result<(), RingRefusal> {
        let reserve = crate::constants::command_ring_cancel_reserve(self.capacity());
        match self.try_push_leaving(command, reserve) {
            Ok(()) => Ok(()),
            Err(_) if self.free_seen() == 0 => Err(RingRefusal::Full),
            Err(_) => Err(RingRefusal::Reserve),
        }
    }

    /// A shared-memory link records the session in its COD table, so that
    /// an engine that outlives this gateway cancels its orders.
    fn logged_on(&mut self, session: SessionId, cancel_on_disconnect: bool) {
        if let CommandTx::Shm(s) = self {
            s.cod.set(
                usize::from(session.slot()),
                if cancel_on_disconnect { session.0 } else { 0 },
            );
        }
    }
}

/// A reactor's event end.
pub enum EventRx {
    Local(Consumer<Event>),
    Shm(Box<GatewayEvents>),
}

impl From<Consumer<Event>> for EventRx {
    fn from(c: Consumer<Event>) -> EventRx {
        EventRx::Local(c)
    }
}

/// What a gateway's end of a shared-memory pair saw (the reactor adds it
/// to its counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayLinkCounters {
    /// Commands answered by the gateway because the engine is dead.
    pub unavailable: u64,
    /// 1 once this pair judged the engine dead.
    pub engine_lost: u64,
    /// Events refused by the record check (another program's bad bytes).
    pub bad_records: u64,
}

/// The gateway's event end of a shared-memory pair, with the liveness
/// watch (module docs).
pub struct GatewayEvents {
    link: ShmLink,
    events: ShmConsumer<Event>,
    commands: Ring,
    timeout_ns: u64,
    last_beat_sent: Nanos,
    engine_beat: u64,
    /// When `engine_beat` last changed (monotonic), once `watching`.
    engine_beat_at: Nanos,
    watching: bool,
    /// The wall clock of the turn: answers are stamped with it.
    now: Nanos,
    dead: bool,
    /// Next command to answer once the engine is dead.
    answered: u64,
    counters: GatewayLinkCounters,
}

impl EventRx {
    /// Reactor `pair`'s event end on a link the gateway has attached to,
    /// judging the engine dead after `timeout_ns` without a beat.
    pub fn shm(link: &ShmLink, pair: usize, timeout_ns: u64) -> EventRx {
        EventRx::Shm(Box::new(GatewayEvents {
            link: link.clone(),
            events: link.event_ring(pair).consumer(),
            commands: link.command_ring(pair),
            timeout_ns,
            last_beat_sent: 0,
            engine_beat: 0,
            engine_beat_at: 0,
            watching: false,
            now: 0,
            dead: false,
            answered: 0,
            counters: GatewayLinkCounters::default(),
        }))
    }

    /// Once per reactor turn: the gateway's beat, and the engine's judged.
    /// `mono` is a monotonic clock (a wall clock stepped by NTP must not
    /// look like a silent engine); `now`, the wall clock, stamps the
    /// answers the gateway gives for a dead engine.
    #[inline]
    pub fn poll(&mut self, mono: Nanos, now: Nanos) {
        if let EventRx::Shm(g) = self {
            g.poll(mono, now);
        }
    }

    /// Whether this is a shared-memory pair.
    #[inline]
    pub fn is_shm(&self) -> bool {
        matches!(self, EventRx::Shm(_))
    }

    /// The shared-memory pair's counters (zero for a local ring).
    pub fn link_counters(&self) -> GatewayLinkCounters {
        match self {
            EventRx::Local(_) => GatewayLinkCounters::default(),
            EventRx::Shm(g) => GatewayLinkCounters {
                bad_records: g.events.bad_records,
                ..g.counters
            },
        }
    }

    #[inline]
    pub fn is_empty(&mut self) -> bool {
        match self {
            EventRx::Local(c) => c.is_empty(),
            EventRx::Shm(g) => {
                g.events.is_empty() && (!g.dead || g.answered == g.commands.indices().1)
            }
        }
    }

    /// Takes at most `max` events, oldest first.
    #[inline]
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(Event)) -> usize {
        match self {
            EventRx::Local(c) => c.drain(max, f),
            EventRx::Shm(g) => {
                let n = g.events.drain(max, &mut f);
                if g.dead { n + g.answer(max - n, f) } else { n }
            }
        }
    }
}

impl GatewayEvents {
    fn poll(&mut self, mono: Nanos, now: Nanos) {
        self.now = now;
        if mono.wrapping_sub(self.last_beat_sent) >= shm_ring::BEAT_INTERVAL_NS {
            self.commands.bump_beat();
            self.last_beat_sent = mono;
        }
        if self.dead {
            return;
        }
        let beat = self.events.ring().beat();
        if beat != self.engine_beat || !self.watching {
            self.engine_beat = beat;
            self.engine_beat_at = mono;
            self.watching = true;
        }
        if self.link.engine_state() == shm_ring::ENGINE_STOPPED
            || mono.saturating_sub(self.engine_beat_at) >= self.timeout_ns
            || self.events.corrupt()
        {
            self.dead = true;
            self.counters.engine_lost = 1;
            self.commands.set_verdict(VERDICT_PEER_DEAD);
            // The engine's published head: every command above it is
            // unfinished (`ShmConsumer::pop`).
            self.answered = self.commands.indices().0;
        }
    }

    /// Answers up to `max` commands the dead engine will never answer.
    fn answer(&mut self, max: usize, mut f: impl FnMut(Event)) -> usize {
        let tail = self.commands.indices().1;
        let mut n = 0;
        while n < max && self.answered != tail {
            let command = self.commands.peek::<Command>(self.answered);
            self.answered = self.answered.wrapping_add(1);
            n += 1;
            let Ok(c) = command else { continue };
            let event = match c.kind {
                CommandKind::NewOrder
                | CommandKind::Cancel
                | CommandKind::Replace
                | CommandKind::MassCancel => Event {
                    cl_ord_id: c.cl_ord_id,
                    transact_time_ns: self.now,
                    reason: EventReason::Reject(RejectReason::ENGINE_UNAVAILABLE),
                    ..Event::empty(EventKind::Rejected, c.session)
                },
                CommandKind::CancelForRevocation => Event {
                    cl_ord_id: c.cl_ord_id,
                    transact_time_ns: self.now,
                    ..Event::empty(EventKind::MassCancelAck, c.session)
                },
                CommandKind::CancelForKey => Event {
                    cl_ord_id: c.key_id,
                    order_id: c.orig_cl_ord_id,
                    transact_time_ns: self.now,
                    ..Event::empty(EventKind::KeySwept, c.session)
                },
                CommandKind::CancelOnDisconnect => continue,
            };
            if matches!(event.kind, EventKind::Rejected) {
                self.counters.unavailable += 1;
            }
            f(event);
        }
        // The slots are free again for the reactor's next commands.
        self.commands.store_head(self.answered);
        n
    }
}

/// The engine agent's command end.
pub enum CommandRx {
    Local(Consumer<Command>),
    Shm(ShmConsumer<Command>),
}

impl From<Consumer<Command>> for CommandRx {
    fn from(c: Consumer<Command>) -> CommandRx {
        CommandRx::Local(c)
    }
}

impl CommandRx {
    pub fn shm(link: &ShmLink, pair: usize) -> CommandRx {
        CommandRx::Shm(link.command_ring(pair).consumer())
    }

    /// The next command. A shared-memory ring keeps it visible to the
    /// gateway until the next `pop`: the agent finishes a command before it
    /// asks for another.
    #[inline]
    pub fn pop(&mut self) -> Option<Command> {
        match self {
            CommandRx::Local(c) => c.pop(),
            CommandRx::Shm(c) => c.pop(),
        }
    }

    #[inline]
    pub fn is_empty(&mut self) -> bool {
        match self {
            CommandRx::Local(c) => c.is_empty(),
            CommandRx::Shm(c) => c.is_empty(),
        }
    }

    /// Records refused by the record check (0 for a local ring).
    pub fn bad_records(&self) -> u64 {
        match self {
            CommandRx::Local(_) => 0,
            CommandRx::Shm(c) => c.bad_records,
        }
    }
}

/// The engine agent's event end.
pub enum EventTx {
    Local(Producer<Event>),
    Shm(ShmProducer<Event>),
}

impl From<Producer<Event>> for EventTx {
    fn from(p: Producer<Event>) -> EventTx {
        EventTx::Local(p)
    }
}

impl EventTx {
    pub fn shm(link: &ShmLink, pair: usize) -> EventTx {
        EventTx::Shm(link.event_ring(pair).producer())
    }

    /// Free slots. A ring whose reader the engine judged dead always has
    /// room: its events are dropped ([`EventTx::try_push`]).
    #[inline]
    pub fn free(&mut self) -> usize {
        match self {
            EventTx::Local(p) => p.free(),
            EventTx::Shm(p) if p.ring().verdict() == VERDICT_PEER_DEAD => usize::MAX,
            EventTx::Shm(p) => p.free(),
        }
    }

    /// Pushes one event; `Ok` without pushing when the reader is dead.
    #[inline]
    pub fn try_push(&mut self, event: Event) -> Result<(), Event> {
        match self {
            EventTx::Local(p) => p.try_push(event),
            EventTx::Shm(p) if p.ring().verdict() == VERDICT_PEER_DEAD => Ok(()),
            EventTx::Shm(p) => p.try_push(event),
        }
    }
}

/// What the engine's watch on one gateway saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineWatchCounters {
    /// 1 once the engine judged this pair's gateway dead.
    pub gateway_lost: u64,
    /// Sessions whose orders were canceled for it (COD table entries).
    pub cod_sessions: u64,
    /// COD table entries refused (not a session of this pair and slot).
    pub cod_bad_entries: u64,
}

/// The engine's liveness watch on one pair (module docs).
pub struct EngineWatch {
    link: ShmLink,
    pair: usize,
    commands: Ring,
    events: Ring,
    timeout_ns: u64,
    last_beat_sent: Nanos,
    gateway_beat: u64,
    gateway_beat_at: Nanos,
    watching: bool,
    dead: bool,
    pub counters: EngineWatchCounters,
}

impl EngineWatch {
    pub fn new(link: &ShmLink, pair: usize, timeout_ns: u64) -> EngineWatch {
        EngineWatch {
            link: link.clone(),
            pair,
            commands: link.command_ring(pair),
            events: link.event_ring(pair),
            timeout_ns,
            last_beat_sent: 0,
            gateway_beat: 0,
            gateway_beat_at: 0,
            watching: false,
            dead: false,
            counters: EngineWatchCounters::default(),
        }
    }

    /// Once per engine turn, `mono` a monotonic clock: the engine's beat,
    /// and the gateway judged. Returns true on the turn the gateway is
    /// first judged dead.
    pub fn poll(&mut self, mono: Nanos) -> bool {
        if mono.wrapping_sub(self.last_beat_sent) >= shm_ring::BEAT_INTERVAL_NS {
            self.events.bump_beat();
            self.last_beat_sent = mono;
        }
        if self.dead || self.link.attached() == 0 {
            return false;
        }
        let beat = self.commands.beat();
        if beat != self.gateway_beat || !self.watching {
            self.gateway_beat = beat;
            self.gateway_beat_at = mono;
            self.watching = true;
            return false;
        }
        if mono.saturating_sub(self.gateway_beat_at) < self.timeout_ns {
            return false;
        }
        self.dead = true;
        self.counters.gateway_lost = 1;
        self.events.set_verdict(VERDICT_PEER_DEAD);
        true
    }

    /// Whether the gateway judged this engine dead (it answers the
    /// engine's commands itself from then on: the engine must stop).
    pub fn disowned(&self) -> bool {
        self.commands.verdict() == VERDICT_PEER_DEAD
    }

    pub fn gateway_dead(&self) -> bool {
        self.dead
    }

    /// The cancel-on-disconnect commands for the dead gateway's sessions
    /// (each COD table entry checked: it must name this pair and slot).
    pub fn cod_commands(&mut self, mut f: impl FnMut(Command)) {
        let table = self.link.cod_table(self.pair);
        for slot in 0..table.slots() {
            let id = table.get(slot);
            if id == 0 {
                continue;
            }
            let session = SessionId(id);
            if usize::from(session.reactor()) != self.pair || usize::from(session.slot()) != slot {
                self.counters.cod_bad_entries += 1;
                continue;
            }
            self.counters.cod_sessions += 1;
            f(Command::empty(CommandKind::CancelOnDisconnect, session));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shm_ring::{ShmParams, ShmRegion};
    use super::*;
    use crate::constants::ENGINE_LIVENESS_TIMEOUT_NS as T;

    fn link() -> ShmLink {
        let params = ShmParams {
            capacity: 64,
            pairs: 1,
            gateway_id: 0,
            cod_slots: 16,
        };
        let link = ShmLink::create(ShmRegion::heap(params.file_size()), params).unwrap();
        link.attach(7).unwrap();
        link
    }

    fn order(cl: u64) -> Command {
        Command {
            cl_ord_id: cl,
            ..Command::empty(CommandKind::NewOrder, SessionId::new(0, 3, 1))
        }
    }

    fn drain_all(rx: &mut EventRx) -> Vec<Event> {
        let mut out = Vec::new();
        while rx.drain(4, |e| out.push(e)) > 0 {}
        out
    }

    #[test]
    fn a_silent_engine_gets_every_unfinished_and_later_command_answered_once() {
        let l = link();
        let mut tx = CommandTx::shm(&l, 0);
        let mut rx = EventRx::shm(&l, 0, T);
        let mut engine_in = CommandRx::shm(&l, 0);
        let mut engine_out = EventTx::shm(&l, 0);
        let mut watch = EngineWatch::new(&l, 0, T);
        for cl in 1..=3 {
            tx.try_push(order(cl)).unwrap();
        }
        let sweep = Command {
            key_id: 9,
            orig_cl_ord_id: 77,
            ..Command::empty(CommandKind::CancelForKey, SessionId::new(0, 0, 0))
        };
        tx.try_push(sweep).unwrap();
        tx.try_push(Command::empty(
            CommandKind::CancelOnDisconnect,
            SessionId::new(0, 3, 1),
        ))
        .unwrap();
        // The engine finishes order 1 (answered), takes order 2 and dies
        // before answering it.
        rx.poll(1, 1);
        watch.poll(1);
        assert_eq!(engine_in.pop().unwrap().cl_ord_id, 1);
        let accepted = Event {
            cl_ord_id: 1,
            ..Event::empty(EventKind::Accepted, SessionId::new(0, 3, 1))
        };
        engine_out.try_push(accepted).unwrap();
        assert_eq!(engine_in.pop().unwrap().cl_ord_id, 2);
        // Within the timeout: nothing but the real answer.
        rx.poll(T, 5);
        assert_eq!(drain_all(&mut rx), vec![accepted]);
        assert_eq!(rx.link_counters().engine_lost, 0);
        // Past it: orders 2 and 3, the sweep's end, nothing for the COD.
        rx.poll(T + 2, 6);
        assert!(!rx.is_empty());
        let answers = drain_all(&mut rx);
        let unavailable = |cl| Event {
            cl_ord_id: cl,
            transact_time_ns: 6,
            reason: EventReason::Reject(RejectReason::ENGINE_UNAVAILABLE),
            ..Event::empty(EventKind::Rejected, SessionId::new(0, 3, 1))
        };
        assert_eq!(answers.len(), 3, "{answers:?}");
        assert_eq!(answers[0], unavailable(2));
        assert_eq!(answers[1], unavailable(3));
        assert_eq!(
            (
                answers[2].kind,
                answers[2].cl_ord_id,
                answers[2].order_id,
                answers[2].qty
            ),
            (EventKind::KeySwept, 9, 77, 0)
        );
        // Later commands: answered at the next drain, the ring reused.
        for cl in 10..200 {
            tx.try_push(order(cl)).unwrap();
            assert_eq!(drain_all(&mut rx), vec![unavailable(cl)]);
        }
        assert!(rx.is_empty());
        let c = rx.link_counters();
        assert_eq!((c.engine_lost, c.unavailable), (1, 2 + 190));
        // The engine, were it to run again, sees it was disowned.
        assert!(watch.disowned());
    }

    #[test]
    fn a_silent_gateway_gets_its_cod_sessions_swept_and_its_events_dropped() {
        let l = link();
        let mut tx = CommandTx::shm(&l, 0);
        let mut rx = EventRx::shm(&l, 0, T);
        let mut engine_out = EventTx::shm(&l, 0);
        let mut watch = EngineWatch::new(&l, 0, T);
        let cod = SessionId::new(0, 3, 5);
        tx.logged_on(cod, true);
        tx.logged_on(SessionId::new(0, 4, 1), false);
        // Another program's entry: slot 6 claiming to be slot 7.
        l.cod_table(0).set(6, SessionId::new(0, 7, 1).0);
        rx.poll(1, 1);
        assert!(!watch.poll(1));
        // The event ring fills: the engine would wait for the reader.
        while engine_out.free() > 0 {
            engine_out
                .try_push(Event::empty(EventKind::Fill, cod))
                .unwrap();
        }
        assert!(!watch.poll(T));
        assert!(
            watch.poll(T + 2),
            "judged dead once the beat is a timeout old"
        );
        assert!(!watch.poll(T + 3), "once");
        assert_eq!(
            engine_out.free(),
            usize::MAX,
            "a dead reader's ring never blocks"
        );
        engine_out
            .try_push(Event::empty(EventKind::Fill, cod))
            .unwrap();
        let mut sweeps = Vec::new();
        watch.cod_commands(|c| sweeps.push(c));
        assert_eq!(
            sweeps,
            vec![Command::empty(CommandKind::CancelOnDisconnect, cod)]
        );
        assert_eq!(
            watch.counters,
            EngineWatchCounters {
                gateway_lost: 1,
                cod_sessions: 1,
                cod_bad_entries: 1
            }
        );
    }
}
