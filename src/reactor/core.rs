//! The sans-I/O half of a reactor: a fixed slab of sessions, its pair of
//! engine rings and its counters. The io_uring driver feeds it bytes,
//! accepts, closes and the time; tests feed it the same without sockets.
//!
//! Slots are identified by index and generation: each `accept` bumps the
//! slot's generation, and the `SessionId` (reactor, slot, generation) goes
//! into every engine command, so an event or an I/O completion for a session
//! that has ended can never reach the next session in the same slot.

use std::net::IpAddr;
use std::sync::Arc;

use crate::engine::{Command, CommandKind, Event, Nanos, SessionId};
use crate::ring::{Consumer, Producer};
use crate::session::{Audit, CommandSink, Counters, Io, KeySet, Session, Shared};
use crate::wire::codes::{LogonRejectReason, TerminateReason};
use crate::wire::{self};

/// An `Io` over a `ReactorCore`'s fields, borrowed one by one so that a
/// session of the slab can be borrowed beside it.
macro_rules! io {
    ($core:ident, $now:expr, $keys:expr) => {
        Io {
            now: $now,
            shared: &$core.shared,
            keys: $keys,
            commands: &mut $core.commands,
            counters: &mut $core.counters,
            audit: &mut $core.audit,
        }
    };
}

impl CommandSink for Producer<Command> {
    #[inline]
    fn try_push(&mut self, command: Command) -> bool {
        Producer::try_push(self, command).is_ok()
    }
}

pub struct ReactorCore {
    index: u16,
    shared: Arc<Shared>,
    /// The key generation this reactor uses; switched between turns.
    keys: Arc<KeySet>,
    sessions: Box<[Session]>,
    /// Each slot's current generation (`SessionId::generation`).
    generations: Box<[u64]>,
    /// Free slot indices (a stack, preallocated to the slab size).
    free: Vec<u16>,
    /// Slots in use, for timer scans and shutdown.
    live: Vec<u16>,
    /// Slots touched since the driver last looked (may have bytes to send or
    /// want to close), each at most once: `dirty_mark[slot]` says whether it
    /// is listed.
    dirty: Vec<u16>,
    dirty_mark: Box<[bool]>,
    commands: Producer<Command>,
    events: Consumer<Event>,
    pub counters: Counters,
    /// This reactor's audit ring to the journal thread.
    pub audit: Audit,
    /// Ended sessions that may have left orders in the book, as (key id,
    /// session), a ring of `ORPHANS_PER_REACTOR`; key id 0 = empty.
    orphans: Box<[(u64, SessionId)]>,
    orphans_next: usize,
    /// A revocation found the command ring full while sweeping orphans.
    orphans_pending: bool,
}

impl ReactorCore {
    /// Allocates the slab (every session's buffers): start-up only.
    pub fn new(
        index: u16,
        shared: Arc<Shared>,
        sessions: usize,
        commands: Producer<Command>,
        events: Consumer<Event>,
    ) -> ReactorCore {
        assert!(sessions > 0 && sessions <= crate::constants::SESSIONS_PER_REACTOR_MAX);
        ReactorCore {
            index,
            keys: shared.key_set(),
            shared,
            sessions: (0..sessions).map(|_| Session::new_slot()).collect(),
            generations: vec![0; sessions].into_boxed_slice(),
            free: (0..sessions as u16).rev().collect(),
            live: Vec::with_capacity(sessions),
            dirty: Vec::with_capacity(sessions),
            dirty_mark: vec![false; sessions].into_boxed_slice(),
            commands,
            events,
            counters: Counters::default(),
            audit: Audit::disabled(),
            orphans: vec![(0, SessionId(0)); crate::constants::ORPHANS_PER_REACTOR]
                .into_boxed_slice(),
            orphans_next: 0,
            orphans_pending: false,
        }
    }

    /// This reactor's number.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Session slots in the slab.
    pub fn capacity(&self) -> usize {
        self.sessions.len()
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A new connection. `None` when every slot is taken: the caller answers
    /// with [`session_limit_reject`] and closes.
    pub fn accept(&mut self, now: Nanos, peer: IpAddr) -> Option<SessionId> {
        let (slot, generation) = loop {
            let slot = self.free.pop()?;
            let g = &mut self.generations[slot as usize];
            if *g < SessionId::GENERATION_MAX {
                *g += 1;
                break (slot, *g);
            }
            // Every id of this slot has been issued: it is never used
            // again this run (its ids must not come back), one slot less.
            self.counters.slots_retired += 1;
        };
        let id = SessionId::new(self.index, slot, generation);
        self.sessions[slot as usize].open(id, peer, now, &self.shared);
        self.live.push(slot);
        Some(id)
    }

    /// The session of `id` if it is still the one in its slot.
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        let s = self.sessions.get(id.slot() as usize)?;
        (s.id() == id && self.generations[id.slot() as usize] == id.generation()).then_some(s)
    }

    pub fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        let gen_ok = self.generations.get(id.slot() as usize) == Some(&id.generation());
        let s = self.sessions.get_mut(id.slot() as usize)?;
        (gen_ok && s.id() == id).then_some(s)
    }

    fn with_session(
        &mut self,
        id: SessionId,
        now: Nanos,
        f: impl FnOnce(&mut Session, &mut Io<'_, Producer<Command>>),
    ) {
        let gen_ok = self.generations.get(id.slot() as usize) == Some(&id.generation());
        let Some(session) = self.sessions.get_mut(id.slot() as usize) else {
            return;
        };
        if !gen_ok || session.id() != id {
            return;
        }
        let mut io = io!(self, now, &self.keys);
        f(session, &mut io);
        mark(&mut self.dirty, &mut self.dirty_mark, id.slot());
    }

    /// Lists `id` for the driver's next look (e.g. after a send completed).
    pub fn mark_dirty(&mut self, id: SessionId) {
        if (id.slot() as usize) < self.sessions.len() {
            mark(&mut self.dirty, &mut self.dirty_mark, id.slot());
        }
    }

    /// The next session touched since the last call, if any.
    pub fn pop_dirty(&mut self) -> Option<SessionId> {
        let slot = self.dirty.pop()?;
        self.dirty_mark[slot as usize] = false;
        Some(self.sessions[slot as usize].id())
    }

    /// Switches to the newest key generation if it moved (one atomic load
    /// when it did not): every live session is rebound to its key by id
    /// (new scopes and limits apply to its next message), revoked if its
    /// key is gone or no longer usable at `now` (Terminate KEY_REVOKED), or
    /// ended as for a revocation with Terminate KEY_CHANGED if the reload
    /// took away its address, its environment or its secret. Call between
    /// turns. Returns whether it switched.
    pub fn refresh_keys(&mut self, now: Nanos) -> bool {
        let epoch = self.shared.keys_epoch();
        if epoch == self.keys.epoch {
            return false;
        }
        let keys = self.shared.key_set();
        let mut i = 0;
        while i < self.live.len() {
            let slot = self.live[i] as usize;
            i += 1;
            let session = &mut self.sessions[slot];
            let Some(key_id) = session.key_id() else {
                continue;
            };
            let usable = keys
                .table
                .get(key_id)
                .filter(|(_, e)| !keys.is_revoked(key_id) && key_usable(e, now));
            match usable {
                Some((index, entry)) => {
                    match session.may_stay_under(entry, self.shared.config.environment) {
                        Ok(()) => session.rebind_key(&keys, index),
                        Err(_) => {
                            // Its orders are canceled as for a revocation,
                            // then Terminate KEY_CHANGED.
                            let mut io = io!(self, now, &keys);
                            session.revoke_with(&mut io, TerminateReason::KEY_CHANGED);
                            self.counters.reload_ended += 1;
                            mark(&mut self.dirty, &mut self.dirty_mark, slot as u16);
                        }
                    }
                }
                None => {
                    let mut io = io!(self, now, &keys);
                    session.revoke(&mut io);
                    self.counters.revocations += 1;
                    mark(&mut self.dirty, &mut self.dirty_mark, slot as u16);
                }
            }
        }
        let applied = keys.epoch;
        self.keys = keys;
        self.sweep_orphans(now);
        self.shared.acknowledge_keys(self.index, applied);
        true
    }

    /// Cancels (KEY_REVOKED) the orders that ended sessions of keys no
    /// longer usable may have left in the book. Their events are then
    /// undeliverable and counted. Retried each tick if the ring was full.
    pub fn sweep_orphans(&mut self, now: Nanos) {
        self.orphans_pending = false;
        for entry in self.orphans.iter_mut() {
            let (key_id, session) = *entry;
            if key_id == 0 {
                continue;
            }
            let usable = !self.keys.is_revoked(key_id)
                && self
                    .keys
                    .table
                    .get(key_id)
                    .is_some_and(|(_, e)| key_usable(e, now));
            if usable {
                continue;
            }
            let mut command = Command::empty(CommandKind::CancelForRevocation, session);
            command.cl_ord_id = crate::session::REVOKE_MARKER;
            if self.commands.try_push(command).is_ok() {
                self.counters.commands_out += 1;
                self.counters.orphans_swept += 1;
                *entry = (0, SessionId(0));
            } else {
                self.counters.ring_full += 1;
                self.orphans_pending = true;
                return;
            }
        }
    }

    /// Whether an orphan sweep is waiting for ring space (see `tick`).
    pub fn orphans_pending(&self) -> bool {
        self.orphans_pending
    }

    /// Revokes the sessions whose key stopped being usable with the passage
    /// of time (its `not_after` passed). O(live sessions): call per timer
    /// tick, not per message.
    pub fn enforce_key_validity(&mut self, now: Nanos) {
        let keys = self.keys.clone();
        for i in 0..self.live.len() {
            let slot = self.live[i] as usize;
            let session = &mut self.sessions[slot];
            if !session.is_logged_on() {
                continue;
            }
            let Some(index) = session.key() else { continue };
            if key_usable(keys.table.entry(index), now) {
                continue;
            }
            let mut io = io!(self, now, &keys);
            session.revoke(&mut io);
            self.counters.revocations += 1;
            mark(&mut self.dirty, &mut self.dirty_mark, slot as u16);
        }
    }

    /// Bytes received for `id`.
    #[inline]
    pub fn on_bytes(&mut self, id: SessionId, now: Nanos, bytes: &[u8]) {
        self.with_session(id, now, |s, io| s.handle_bytes(io, bytes));
    }

    /// The socket of `id` is closed (by the peer, an error, or us).
    pub fn on_closed(&mut self, id: SessionId, now: Nanos) {
        self.with_session(id, now, |s, io| s.on_transport_closed(io));
    }

    /// Ends `id` with Terminate `reason` (shutdown, revocation).
    pub fn terminate(&mut self, id: SessionId, now: Nanos, reason: TerminateReason) {
        self.with_session(id, now, |s, io| s.terminate(io, reason));
    }

    /// Whether engine events wait in this reactor's event ring (a turn
    /// drains at most a batch): the reactor does not block while they do.
    pub fn events_pending(&mut self) -> bool {
        !self.events.is_empty()
    }

    /// Drains up to a batch of engine events into their sessions. Returns
    /// the number of events.
    pub fn poll_events(&mut self, now: Nanos) -> usize {
        let sessions = &mut self.sessions;
        let mut io = io!(self, now, &self.keys);
        let mut undeliverable = 0;
        let (dirty, dirty_mark) = (&mut self.dirty, &mut self.dirty_mark);
        let n = self
            .events
            .drain(crate::constants::RING_BATCH_MAX, |event| {
                let slot = event.session.slot();
                match sessions.get_mut(slot as usize) {
                    Some(s) => {
                        s.handle_event(&mut io, &event);
                        // The reply must go out this turn, even for a session
                        // that sent nothing in it (the resting side of a fill).
                        mark(dirty, dirty_mark, slot);
                    }
                    None => undeliverable += 1,
                }
            });
        self.counters.events_undeliverable += undeliverable;
        n
    }

    /// Runs every due session timer; releases finished slots. O(live
    /// sessions): call it once per timer tick, not per message.
    pub fn run_timers(&mut self, now: Nanos) {
        let mut i = 0;
        while i < self.live.len() {
            let slot = self.live[i] as usize;
            let session = &mut self.sessions[slot];
            if session.poll_timeout().is_some_and(|t| t <= now) {
                let mut io = io!(self, now, &self.keys);
                session.handle_timeout(&mut io);
                mark(&mut self.dirty, &mut self.dirty_mark, slot as u16);
            }
            i += 1;
        }
    }

    /// Returns `id`'s slot to the free list once its session has finished
    /// (socket closed, cancel-on-disconnect delivered). Returns whether it
    /// was released.
    pub fn release(&mut self, id: SessionId) -> bool {
        let slot = id.slot();
        let Some(s) = self.session(id) else {
            return false;
        };
        if !s.is_finished() {
            return false;
        }
        if let Some(key_id) = s.may_leave_orders() {
            let at = self.orphans_next % self.orphans.len();
            if self.orphans[at].0 != 0 {
                self.counters.orphans_forgotten += 1;
            }
            self.orphans[at] = (key_id, id);
            self.orphans_next = self.orphans_next.wrapping_add(1);
        }
        if let Some(pos) = self.live.iter().position(|&l| l == slot) {
            self.live.swap_remove(pos);
            self.free.push(slot);
            true
        } else {
            false
        }
    }

    /// Ids of every slot in use.
    pub fn live_ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.live.iter().map(|&s| self.sessions[s as usize].id())
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }
}

/// Whether a key may keep its sessions: active and within its validity
/// window.
fn key_usable(entry: &crate::auth::keys::KeyEntry, now: Nanos) -> bool {
    entry.valid_at(now).is_ok()
}

#[inline]
fn mark(dirty: &mut Vec<u16>, dirty_mark: &mut [bool], slot: u16) {
    if !dirty_mark[slot as usize] {
        dirty_mark[slot as usize] = true;
        dirty.push(slot);
    }
}

/// The reply to a connection that found every slot taken.
pub fn session_limit_reject(now: Nanos) -> [u8; wire::LOGON_REJECT_SIZE] {
    wire::LogonReject {
        reason: LogonRejectReason::SESSION_LIMIT.wire(),
        server_time_ns: now,
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{KeyEntry, KeyTable};
    use crate::auth::secret::Secret;
    use crate::session::GatewayConfig;
    use crate::wire::codes::{Environment, Scopes};

    fn core(sessions: usize) -> ReactorCore {
        let keys = KeyTable::from_entries(vec![
            KeyEntry::new(
                1,
                Secret::from_bytes([1; 32]),
                Scopes::TRADE,
                Environment::Production,
            )
            .allow_any(),
        ])
        .unwrap();
        let shared = Arc::new(Shared::new(GatewayConfig::default(), keys, [7; 32]));
        let (commands, _) = crate::ring::channel::<Command>(64);
        let (_, events) = crate::ring::channel::<Event>(64);
        ReactorCore::new(0, shared, sessions, commands, events)
    }

    fn connect_and_close(core: &mut ReactorCore) -> SessionId {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let id = core.accept(1, peer).expect("a free slot");
        core.on_closed(id, 2);
        assert!(
            core.release(id),
            "a connection that never logged on is done"
        );
        id
    }

    #[test]
    fn a_slot_that_used_every_generation_is_retired_never_reused() {
        let mut core = core(2);
        // Slot 0 (the top of the free stack) one connection from its last id.
        core.generations[0] = SessionId::GENERATION_MAX - 1;
        let last = connect_and_close(&mut core);
        assert_eq!(
            (last.slot(), last.generation()),
            (0, SessionId::GENERATION_MAX)
        );
        // Its ids are spent: the next connection takes slot 1, and slot 0
        // never comes back, however many connections follow.
        for n in 1..=1000 {
            let id = connect_and_close(&mut core);
            assert_eq!((id.slot(), id.generation()), (1, n));
        }
        assert_eq!(core.counters.slots_retired, 1);
        // With every slot spent the reactor refuses rather than reuse an id.
        core.generations[1] = SessionId::GENERATION_MAX;
        assert_eq!(core.accept(3, "127.0.0.1".parse().unwrap()), None);
        assert_eq!(core.counters.slots_retired, 2);
    }

    #[test]
    fn a_session_id_round_trips_every_field_at_its_bounds() {
        use crate::constants::{REACTORS_MAX, SESSIONS_PER_REACTOR_MAX};
        let r = (REACTORS_MAX - 1) as u16;
        let s = (SESSIONS_PER_REACTOR_MAX - 1) as u16;
        let id = SessionId::new(r, s, SessionId::GENERATION_MAX);
        assert_eq!(
            (id.reactor(), id.slot(), id.generation()),
            (r, s, SessionId::GENERATION_MAX)
        );
        let id = SessionId::new(r, s, 1);
        assert_eq!((id.reactor(), id.slot(), id.generation()), (r, s, 1));
        assert_eq!(SessionId::new(0, 0, 1 << 33).io_generation(), 0);
    }
}
