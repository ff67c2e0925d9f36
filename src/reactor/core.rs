//! The sans-I/O half of a reactor: a fixed slab of sessions, its pair of
//! engine rings and its counters. The io_uring driver feeds it bytes,
//! accepts, closes and the time; tests feed it the same without sockets.
//!
//! Slots are identified by index and generation: each `accept` bumps the
//! slot's generation, and the `SessionId` (reactor, slot, generation) goes
//! into every engine command, so an event or an I/O completion for a session
//! that has ended can never reach the next session in the same slot.
//!
//! # Key sweeps: revocation and the kill switch
//!
//! When a key stops being usable — revoked or killed at run time, removed
//! or disabled by a reload, or past its `not_after` — every reactor sends
//! the engine one `CancelForKey` for it, before it revokes the key's
//! sessions on this reactor (so after every command they sent: the ring is
//! FIFO). The engine keeps each resting order's key and cancels every one
//! of them, whichever session entered it and whatever became of that
//! session: nothing is remembered per ended session, so no amount of
//! session churn can make a kill miss an order. The engine's `KeySwept`
//! report comes back on this reactor's event ring after every OrderCanceled
//! it caused here; the reactor then hands each revoking session of the key
//! its marker (they Terminate KEY_REVOKED) and reports the count to
//! [`crate::engine::risk::KeySweeps`] for `kill`'s answer. A sweep that
//! finds the ring full waits in a preallocated queue and is retried every
//! timer tick (`key_sweeps_deferred`).

use std::net::IpAddr;
use std::sync::Arc;

use crate::engine::{Command, CommandKind, Event, EventKind, Nanos, SessionId};
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
    generations: Box<[u32]>,
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
    /// `CancelForKey`s to send, `(key id, tag)`, oldest first: only
    /// non-empty while the command ring is full.
    sweeps_pending: Vec<(u64, u64)>,
    /// KeySwept reports taken from the event ring this turn, `(key id,
    /// tag, count)`, handled once the batch is drained.
    swept: Vec<(u64, u64, u32)>,
    /// Key expiry: every `not_after` up to this instant has been swept.
    expiry_scanned: Nanos,
    /// The earliest `not_after` after `expiry_scanned` (u64::MAX: none).
    expiry_next: Nanos,
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
            sweeps_pending: Vec::with_capacity(crate::constants::KEY_SWEEPS_PENDING),
            swept: Vec::with_capacity(crate::constants::RING_BATCH_MAX),
            expiry_scanned: 0,
            expiry_next: 0,
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
        let slot = self.free.pop()?;
        let g = &mut self.generations[slot as usize];
        *g = g.wrapping_add(1);
        let id = SessionId::new(self.index, slot, *g);
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
    /// when it did not): every live session is rebound to its key by id, or
    /// revoked if its key is gone or no longer usable at `now`. Call between
    /// turns. Returns whether it switched.
    pub fn refresh_keys(&mut self, now: Nanos) -> bool {
        let epoch = self.shared.keys_epoch();
        if epoch == self.keys.epoch {
            return false;
        }
        let keys = self.shared.key_set();
        // Sweep every key that stops being usable here, before its sessions
        // are revoked: tagged with the new generation (see `KeySweeps`).
        let old = self.keys.clone();
        let usable_in = |set: &KeySet, id: u64| {
            !set.is_revoked(id) && set.table.get(id).is_some_and(|(_, e)| key_usable(e, now))
        };
        for (_, e) in old.table.iter() {
            if usable_in(&old, e.id) && !usable_in(&keys, e.id) {
                self.queue_sweep(e.id, keys.epoch);
            }
        }
        // A key revoked now is swept even if it was unusable already, or is
        // in no table: `kill` waits for every reactor's report. (One that
        // was usable was queued just above: each key is queued once.)
        for &id in keys.revoked_ids() {
            if !old.is_revoked(id) && !usable_in(&old, id) {
                self.queue_sweep(id, keys.epoch);
            }
        }
        self.push_sweeps();
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
                Some((index, _)) => session.rebind_key(&keys, index),
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
        // The next tick sweeps whatever expired since the last look, in
        // this table (a key that expired since then was unusable in both).
        if self.expiry_scanned != 0 {
            self.expiry_next = self.next_expiry(self.expiry_scanned);
        }
        self.shared.acknowledge_keys(self.index, applied);
        true
    }

    /// Queues a `CancelForKey` of `key_id`, tagged with the key generation
    /// that stopped the key (see `KeySweeps::record`).
    fn queue_sweep(&mut self, key_id: u64, tag: u64) {
        self.sweeps_pending.push((key_id, tag));
    }

    /// Sends the queued `CancelForKey`s, oldest first, until the ring is
    /// full (the rest wait for the next tick).
    fn push_sweeps(&mut self) {
        let mut sent = 0;
        for &(key_id, tag) in &self.sweeps_pending {
            let command = Command {
                key_id,
                orig_cl_ord_id: tag,
                ..Command::empty(CommandKind::CancelForKey, SessionId::new(self.index, 0, 0))
            };
            if self.commands.try_push(command).is_err() {
                self.counters.key_sweeps_deferred += 1;
                break;
            }
            self.counters.commands_out += 1;
            self.counters.key_sweeps += 1;
            sent += 1;
        }
        self.sweeps_pending.drain(..sent);
    }

    /// `CancelForKey`s waiting for room in the command ring.
    pub fn sweeps_pending(&self) -> usize {
        self.sweeps_pending.len()
    }

    /// The earliest `not_after` after `after` among keys that are not
    /// revoked (u64::MAX: none).
    fn next_expiry(&self, after: Nanos) -> Nanos {
        self.keys
            .table
            .iter()
            .filter_map(|(_, e)| e.not_after_ns)
            .filter(|&t| t > after)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Sweeps the keys whose `not_after` passed since the last look. O(1)
    /// per tick until the next expiry is due, then O(keys) once.
    fn sweep_expired_keys(&mut self, now: Nanos) {
        if self.expiry_scanned == 0 {
            // First look: a key already expired at start-up has no orders.
            self.expiry_scanned = now;
            self.expiry_next = self.next_expiry(now);
            return;
        }
        if now < self.expiry_next {
            return;
        }
        let (from, keys) = (self.expiry_scanned, self.keys.clone());
        for (_, e) in keys.table.iter() {
            let expired = e.not_after_ns.is_some_and(|t| t > from && t <= now);
            if expired && !keys.is_revoked(e.id) {
                self.queue_sweep(e.id, keys.epoch);
            }
        }
        self.expiry_scanned = now;
        self.expiry_next = self.next_expiry(now);
    }

    /// Sweeps keys that expired, retries sweeps that found the ring full,
    /// then revokes the sessions whose key stopped being usable with the
    /// passage of time (its `not_after` passed). O(live sessions): call per
    /// timer tick, not per message.
    pub fn enforce_key_validity(&mut self, now: Nanos) {
        self.sweep_expired_keys(now);
        if !self.sweeps_pending.is_empty() {
            self.push_sweeps();
        }
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

    /// Drains up to a batch of engine events into their sessions. Returns
    /// the number of events.
    pub fn poll_events(&mut self, now: Nanos) -> usize {
        let sessions = &mut self.sessions;
        let mut io = io!(self, now, &self.keys);
        let mut undeliverable = 0;
        let (dirty, dirty_mark) = (&mut self.dirty, &mut self.dirty_mark);
        let swept = &mut self.swept;
        let n = self
            .events
            .drain(crate::constants::RING_BATCH_MAX, |event| {
                if event.kind == EventKind::KeySwept {
                    // At most one per event of the batch: never grows.
                    swept.push((event.cl_ord_id, event.order_id, event.qty));
                    return;
                }
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
        if !self.swept.is_empty() {
            self.key_swept(now);
        }
        n
    }

    /// The engine finished this reactor's sweeps of some keys: every
    /// OrderCanceled they caused here has been handed to its session, so
    /// each revoking session of those keys gets its marker (and ends with
    /// Terminate KEY_REVOKED), and the counts go to the control plane.
    fn key_swept(&mut self, now: Nanos) {
        for k in 0..self.swept.len() {
            let (key_id, tag, count) = self.swept[k];
            self.counters.key_sweep_canceled += u64::from(count);
            self.shared.key_sweeps.record(key_id, tag, u64::from(count));
            let mut io = io!(self, now, &self.keys);
            for &slot in &self.live {
                let session = &mut self.sessions[slot as usize];
                if session.is_revoking() && session.key_id() == Some(key_id) {
                    let marker = Event {
                        cl_ord_id: crate::session::REVOKE_MARKER,
                        ..Event::empty(EventKind::MassCancelAck, session.id())
                    };
                    session.handle_event(&mut io, &marker);
                    mark(&mut self.dirty, &mut self.dirty_mark, slot);
                }
            }
        }
        self.swept.clear();
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
        // Orders it left in the book (no cancel-on-disconnect) stay there,
        // known to the engine by their key: a kill reaches them without
        // anything remembered here.
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

    const NOW: Nanos = 1_764_000_000_000_000_000;

    fn entry(id: u64) -> KeyEntry {
        KeyEntry::new(
            id,
            Secret::from_bytes([3; 32]),
            Scopes::TRADE,
            Environment::Production,
        )
        .allow_any()
    }

    fn table(ids: &[u64]) -> KeyTable {
        KeyTable::from_entries(ids.iter().map(|&id| entry(id)).collect()).unwrap()
    }

    /// A core with a command ring of 4 and the engine's ends of its rings.
    fn core(ids: &[u64]) -> (ReactorCore, Consumer<Command>, Producer<Event>) {
        let shared = Arc::new(Shared::new(GatewayConfig::default(), table(ids), [1; 32]));
        let (commands, command_rx) = crate::ring::channel::<Command>(4);
        let (event_tx, events) = crate::ring::channel::<Event>(4);
        (
            ReactorCore::new(3, shared, 4, commands, events),
            command_rx,
            event_tx,
        )
    }

    fn sweeps(rx: &mut Consumer<Command>) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        while let Some(c) = rx.pop() {
            assert_eq!(c.kind, CommandKind::CancelForKey);
            assert_eq!(c.session, SessionId::new(3, 0, 0), "the issuing reactor");
            out.push((c.key_id, c.orig_cl_ord_id));
        }
        out
    }

    #[test]
    fn each_key_that_stops_being_usable_is_swept_once_tagged_with_its_generation() {
        let (mut core, mut rx, _tx) = core(&[1, 2, 3]);
        let shared = core.shared().clone();
        assert!(!core.refresh_keys(NOW));
        // Revoked: key 1, and an id no table has (a kill still reports).
        shared.revoke_key(1).unwrap();
        shared.revoke_key(99).unwrap();
        assert!(core.refresh_keys(NOW));
        assert_eq!(sweeps(&mut rx), [(1, 3), (99, 3)]);
        // Removed by a reload: key 2; key 3 stays, key 4 is new.
        let epoch = shared.publish_keys(table(&[1, 3, 4]));
        core.refresh_keys(NOW);
        assert_eq!(sweeps(&mut rx), [(2, epoch)]);
        // A key that expires is swept at the first tick past its not_after.
        let mut expiring = entry(5);
        expiring.not_after_ns = Some(NOW + 10);
        let epoch = shared.publish_keys(KeyTable::from_entries(vec![entry(3), expiring]).unwrap());
        core.refresh_keys(NOW);
        assert_eq!(sweeps(&mut rx), [(4, epoch)]);
        core.enforce_key_validity(NOW); // the first look only notes the time
        core.enforce_key_validity(NOW + 9);
        assert_eq!(sweeps(&mut rx), []);
        core.enforce_key_validity(NOW + 10);
        assert_eq!(sweeps(&mut rx), [(5, epoch)]);
        core.enforce_key_validity(NOW + 20);
        assert_eq!(sweeps(&mut rx), []);
        assert_eq!(core.counters.key_sweeps, 5);
    }

    #[test]
    fn a_sweep_that_finds_the_ring_full_waits_for_the_next_tick() {
        let (mut core, mut rx, _tx) = core(&[1, 2]);
        let shared = core.shared().clone();
        for _ in 0..4 {
            assert!(
                core.commands
                    .try_push(Command::empty(CommandKind::Cancel, SessionId(0)))
                    .is_ok()
            );
        }
        shared.revoke_key(2).unwrap();
        core.refresh_keys(NOW);
        assert_eq!(core.sweeps_pending(), 1);
        assert_eq!(core.counters.key_sweeps_deferred, 1);
        core.enforce_key_validity(NOW);
        assert_eq!(core.counters.key_sweeps_deferred, 2);
        // The engine takes one command: the sweep goes at the next tick.
        assert_eq!(rx.pop().unwrap().kind, CommandKind::Cancel);
        core.enforce_key_validity(NOW + 1);
        assert_eq!(core.sweeps_pending(), 0);
        for _ in 0..3 {
            assert_eq!(rx.pop().unwrap().kind, CommandKind::Cancel);
        }
        assert_eq!(sweeps(&mut rx), [(2, 2)]);
        assert_eq!(core.counters.key_sweeps, 1);
    }

    #[test]
    fn the_engines_report_of_a_sweep_goes_to_the_control_planes_tally() {
        let (mut core, _rx, mut tx) = core(&[1]);
        let shared = core.shared().clone();
        shared.key_sweeps.open(1, 1);
        let report = Event {
            cl_ord_id: 1,
            order_id: 2,
            qty: 7,
            ..Event::empty(EventKind::KeySwept, SessionId::new(3, 0, 0))
        };
        assert!(tx.try_push(report).is_ok());
        assert_eq!(core.poll_events(NOW), 1);
        assert_eq!(core.counters.key_sweep_canceled, 7);
        assert_eq!(core.counters.events_undeliverable, 0);
        assert_eq!(
            shared
                .key_sweeps
                .wait(1, 1, std::time::Duration::from_secs(1)),
            Some(7)
        );
    }
}
