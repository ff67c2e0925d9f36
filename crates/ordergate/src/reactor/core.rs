//! The sans-I/O half of a reactor: a fixed slab of sessions, its pair of
//! engine rings and its counters. The io_uring driver feeds it bytes,
//! accepts, closes and the time; tests feed it the same without sockets.
//!
//! Slots are identified by index and generation: each `accept` bumps the
//! slot's generation, and the `SessionId` (reactor, slot, generation) goes
//! into every engine command, so an event or an I/O completion for a session
//! that has ended can never reach the next session in the same slot.
//!
//! ## Admission
//!
//! A connection that has not logged on is *pending*. [`ReactorCore::admit`]
//! decides, in O(1) and without allocating, what a new connection gets:
//!
//! ```text
//!  its address already holds pending_logons_per_address pending
//!  connections here ─────────────────────────▶ Refuse(THROTTLED)  no slot used
//!  a free slot ──────────────────────────────▶ Open(id)
//!  slab full, a pending connection exists ───▶ Wait   the oldest pending one
//!                                                     is claimed for it (below)
//!  slab full, every slot logged on (or ──────▶ Refuse(SESSION_LIMIT)
//!  already claimed)
//! ```
//!
//! **The per-address cap.** Pending connections are counted per source
//! address, an IPv4 address whole and an IPv6 address by its /64 (one host's
//! block: it can pick any address inside it), in an exact open-addressing
//! table allocated at start-up with room for twice as many addresses as can
//! ever be counted ([`PendingByAddress`]); its hash is keyed at random, so
//! a sender of many addresses cannot line them up on one probe run. IPv4 is
//! not grouped by /24: colocated members often share the venue's /24, and
//! one member's flood must not refuse its neighbours (the defence must make
//! the attacker pay, not its neighbours). A spray from many addresses is met
//! by eviction instead. A connection over the cap gets LogonReject THROTTLED
//! (not SESSION_LIMIT: the gateway has room, this address is asking too
//! much at once, and should retry later) and is closed; it never takes a
//! slot. A connection is counted from admission until it logs on or its
//! slot is released (a rejected or timed-out one still holds its slot and
//! descriptor while it closes).
//!
//! **Eviction.** Pending connections are also kept in admission order in an
//! intrusive list (two `u16` links per slot). When every slot is taken, a
//! new connection claims the oldest pending connection's slot: if that one
//! is still waiting for its Logon it is *evicted* — LogonReject
//! SESSION_LIMIT, then closed through the normal path (the honest reason: the
//! slab was full and a newer connection took its place; the client may
//! retry) — and if it is already closing (rejected, timed out) it is just
//! claimed. A logged-on session is never displaced: only when no pending
//! connection is left to claim is the newcomer refused SESSION_LIMIT.
//!
//! **Until the slot is free.** The slot/generation rule stands: a slot is
//! reused only after its close completed and its session finished, which
//! takes a few turns (send the LogonReject, shut down, close). Meanwhile the
//! newcomer waits in a FIFO of accepted connections (its descriptor, as an
//! opaque handle, and its address), preallocated to the slab size: each
//! waiter has claimed a distinct slot, so there are never more waiters than
//! slots being freed. [`ReactorCore::release`] frees a slot and
//! [`ReactorCore::next_waiting`] hands it to the first waiter, whose logon
//! deadline starts then. It receives nothing before: its bytes wait in the
//! socket.
//!
//! Every refusal, eviction and logon timeout is counted (`Counters`) and
//! recorded in the audit journal, one event each (`LogonRejected` with its
//! reason, session 0 when the connection never had a slot; `LogonTimeout`).
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
//!
//! # Driving a core
//!
//! A driver owns the sockets (the io_uring worker, `reactor::worker`; the
//! seeded simulation, `tests/common/sim.rs`) and feeds the core; what to do
//! after each I/O completes is decided here, so that both run the same
//! logic:
//!
//! ```text
//!  new connection        admit → Open / Wait (next_waiting hands the slot later) / Refuse
//!  bytes received        on_bytes → n taken; n < len: park the rest, pause, stop receiving
//!  paused, touched       offer_parked(ParkedInput) → all taken: receive again
//!  session touched       output(id, send in flight) → Send(bytes) / Close / Idle
//!  send completed        on_sent(id, Some(n) | None) → Done / Failed (close) / Gone
//!  end of stream, error  on_closed, then start closing
//!  close completed       on_close_completed → released now, or by a later tick
//!  every timer tick      tick(now, released) → then next_waiting
//!  every turn            refresh_keys first; poll_events; pop_dirty → output
//! ```

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use crate::engine::{Command, CommandKind, Event, EventKind, Nanos, SessionId};
use crate::journal::{AuditEvent, from_ip};
use crate::link::{CommandTx, EventRx};
#[cfg(test)]
use crate::ring::{Consumer, Producer};
use crate::session::{Audit, Counters, Io, KeySet, Session, Shared};
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

/// No slot: the end of the pending list.
const NIL: u16 = u16::MAX;

/// A slot's admission state.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// Its address's key in [`PendingByAddress`].
    key: u128,
    /// Holds one of its address's pending places: from admission until it
    /// logs on or its slot is released.
    counted: bool,
    /// In the pending list: not logged on and not yet claimed by a newcomer.
    listed: bool,
    prev: u16,
    next: u16,
}

impl Pending {
    const NONE: Pending = Pending {
        key: 0,
        counted: false,
        listed: false,
        prev: NIL,
        next: NIL,
    };
}

/// An accepted connection waiting for a slot being freed for it.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    handle: i32,
    peer: IpAddr,
    key: u128,
}

/// What a new connection gets (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A slot: its session is open.
    Open(SessionId),
    /// Every slot is taken and one is being freed for it: it waits, and
    /// [`ReactorCore::next_waiting`] hands it its slot.
    Wait,
    /// Answer LogonReject `reason` ([`logon_reject_bytes`]) and close.
    Refuse(LogonRejectReason),
}

/// The key a source address is counted under: an IPv4 address (or an
/// IPv4-mapped IPv6 one) whole, as `::ffff:a.b.c.d`; an IPv6 address by its
/// /64, the low 64 bits cleared. The two never meet: an IPv4 key's low 64
/// bits are never zero.
pub fn address_key(ip: IpAddr) -> u128 {
    let v4 = |v4: std::net::Ipv4Addr| u128::from(v4.to_ipv6_mapped());
    match ip {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(a) => v4(a),
            None => u128::from(a) & !u128::from(u64::MAX),
        },
    }
}

/// Pending connections per address key, exact: open addressing with linear
/// probing and backward-shift deletion over a table sized at start-up to at
/// least twice the most keys it can hold (slots plus waiters), so it is at
/// most half full and a probe ends at an empty entry. The hash is SipHash
/// with a random key (std's `RandomState`): an attacker choosing addresses
/// cannot aim them at one run of the table. No allocation after `new`.
struct PendingByAddress {
    keys: Box<[u128]>,
    /// 0 = empty entry.
    counts: Box<[u32]>,
    mask: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl PendingByAddress {
    fn new(keys_max: usize) -> PendingByAddress {
        let size = (2 * keys_max).next_power_of_two().max(16);
        PendingByAddress {
            keys: vec![0; size].into_boxed_slice(),
            counts: vec![0; size].into_boxed_slice(),
            mask: size - 1,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    #[inline]
    fn home(&self, key: u128) -> usize {
        self.hasher.hash_one(key) as usize & self.mask
    }

    /// The entry of `key`, or the empty entry where it would go.
    fn find(&self, key: u128) -> Result<usize, usize> {
        let mut i = self.home(key);
        loop {
            if self.counts[i] == 0 {
                return Err(i);
            }
            if self.keys[i] == key {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn count(&self, key: u128) -> u32 {
        self.find(key).map_or(0, |i| self.counts[i])
    }

    fn increment(&mut self, key: u128) {
        match self.find(key) {
            Ok(i) => self.counts[i] += 1,
            Err(i) => {
                self.keys[i] = key;
                self.counts[i] = 1;
            }
        }
    }

    fn decrement(&mut self, key: u128) {
        let Ok(mut hole) = self.find(key) else {
            debug_assert!(false, "decrement of an address not counted");
            return;
        };
        self.counts[hole] -= 1;
        if self.counts[hole] > 0 {
            return;
        }
        // Backward shift: pull later entries of the run into the hole
        // unless their home lies after the hole (cyclically), so that every
        // entry stays reachable from its home without tombstones.
        let mut j = (hole + 1) & self.mask;
        while self.counts[j] != 0 {
            let home = self.home(self.keys[j]);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.keys[hole] = self.keys[j];
                self.counts[hole] = self.counts[j];
                self.counts[j] = 0;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
    }

    /// Addresses with a pending connection (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.counts.iter().filter(|&&c| c > 0).count()
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
    commands: CommandTx,
    events: EventRx,
    pub counters: Counters,
    /// This reactor's audit ring to the journal thread.
    pub audit: Audit,
    /// Admission (module docs): each slot's pending state, the pending list
    /// in admission order, pending connections per address, its cap, and
    /// the connections waiting for a slot being freed.
    pending: Box<[Pending]>,
    pending_head: u16,
    pending_tail: u16,
    by_address: PendingByAddress,
    pending_per_address: u32,
    waiting: VecDeque<Waiting>,
    /// `CancelForKey`s to send, `(key id, tag)`, oldest first: only
    /// non-empty while the command ring is full.
    sweeps_pending: Vec<(u64, u64)>,
    /// KeySwept reports taken from the event ring this turn, `(key id,
    /// tag, count)`, handled once the batch is drained.
    swept: Vec<(u64, u64, u32)>,
    /// Key expiry: every `not_after` up to this instant has been swept
    /// (moved back with the wall clock: a key expires again).
    expiry_scanned: Nanos,
    /// The earliest `not_after` after `expiry_scanned` (u64::MAX: none).
    expiry_next: Nanos,
    /// Sessions whose socket closed before they finished (a
    /// cancel-on-disconnect waiting for ring room): released by a later
    /// [`tick`](Self::tick). Preallocated to the slab size.
    unreleased: Vec<SessionId>,
}

impl ReactorCore {
    /// Allocates the slab (every session's buffers): start-up only.
    pub fn new(
        index: u16,
        shared: Arc<Shared>,
        sessions: usize,
        commands: impl Into<CommandTx>,
        events: impl Into<EventRx>,
    ) -> ReactorCore {
        assert!(sessions > 0 && sessions <= crate::constants::SESSIONS_PER_REACTOR_MAX);
        shared.listing.reserve(index, sessions);
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
            commands: commands.into(),
            events: events.into(),
            counters: Counters::default(),
            audit: Audit::disabled(),
            pending: vec![Pending::NONE; sessions].into_boxed_slice(),
            pending_head: NIL,
            pending_tail: NIL,
            // Counted: every slot, plus as many waiters.
            by_address: PendingByAddress::new(2 * sessions),
            pending_per_address: crate::constants::PENDING_LOGONS_PER_ADDRESS_DEFAULT as u32,
            waiting: VecDeque::with_capacity(sessions),
            sweeps_pending: Vec::with_capacity(crate::constants::KEY_SWEEPS_PENDING),
            swept: Vec::with_capacity(crate::constants::RING_BATCH_MAX),
            expiry_scanned: 0,
            expiry_next: 0,
            unreleased: Vec::with_capacity(sessions),
        }
    }

    /// Sets the per-address cap on pending connections (start-up; the spec
    /// checked it against `PENDING_LOGONS_PER_ADDRESS_MAX`).
    pub fn set_pending_logons_per_address(&mut self, cap: usize) {
        self.pending_per_address = cap.clamp(1, u32::MAX as usize) as u32;
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

    /// A new connection in a free slot, without the admission policy (no
    /// cap, no eviction): sans-I/O tests and tools. `None` when every slot
    /// is taken: the caller answers with [`session_limit_reject`] and
    /// closes. The reactor uses [`ReactorCore::admit`].
    pub fn accept(&mut self, now: Nanos, peer: IpAddr) -> Option<SessionId> {
        let slot = self.take_free()?;
        let key = address_key(peer);
        self.by_address.increment(key);
        Some(self.open_slot(slot, now, peer, key))
    }

    /// A new connection, through the admission policy (module docs).
    /// `handle` is the driver's for the connection (its descriptor): a
    /// waiting connection gets it back from [`ReactorCore::next_waiting`]
    /// or [`ReactorCore::drain_waiting`]. Refusals are counted and
    /// journaled here; the caller sends the LogonReject and closes.
    pub fn admit(&mut self, now: Nanos, peer: IpAddr, handle: i32) -> Admission {
        let key = address_key(peer);
        if self.by_address.count(key) >= self.pending_per_address {
            self.counters.address_cap_refusals += 1;
            return self.refuse(now, peer, LogonRejectReason::THROTTLED);
        }
        if let Some(slot) = self.take_free() {
            self.by_address.increment(key);
            return Admission::Open(self.open_slot(slot, now, peer, key));
        }
        if self.waiting.len() < self.sessions.len() && self.claim_slot(now) {
            self.by_address.increment(key);
            self.waiting.push_back(Waiting { handle, peer, key });
            self.counters.accepts_waited += 1;
            return Admission::Wait;
        }
        self.refuse(now, peer, LogonRejectReason::SESSION_LIMIT)
    }

    fn refuse(&mut self, now: Nanos, peer: IpAddr, reason: LogonRejectReason) -> Admission {
        self.counters.logon_rejects[reason.wire() as usize] += 1;
        self.audit.record(AuditEvent {
            session: 0,
            reactor: self.index,
            ..AuditEvent::logon_rejected(now, SessionId(0), 0, from_ip(peer), reason)
        });
        Admission::Refuse(reason)
    }

    /// Makes one slot on its way to free for a newcomer: takes the oldest
    /// pending connection off the list and, if it is still waiting for its
    /// Logon, evicts it (LogonReject SESSION_LIMIT, then closed); one
    /// already closing is claimed as it is. `false` if none is left: every
    /// slot is logged on or already claimed.
    fn claim_slot(&mut self, now: Nanos) -> bool {
        let slot = self.pending_head;
        if slot == NIL {
            return false;
        }
        self.unlist(slot);
        let id = self.sessions[slot as usize].id();
        let mut evicted = false;
        self.with_session(id, now, |s, io| evicted = s.evict(io));
        if evicted {
            self.counters.pending_evictions += 1;
        }
        true
    }

    /// A slot off the free list whose generations are not all spent. A
    /// slot whose generation reached `SessionId::GENERATION_MAX` has issued
    /// every id it can: it is retired for the rest of the run (its ids must
    /// never come back), one slot less, and counted.
    fn take_free(&mut self) -> Option<u16> {
        loop {
            let slot = self.free.pop()?;
            if self.generations[slot as usize] < SessionId::GENERATION_MAX {
                return Some(slot);
            }
            self.counters.slots_retired += 1;
        }
    }

    /// Opens `slot` (just taken off the free list) for a connection from
    /// `peer`, already counted under `key`, and lists it as pending.
    fn open_slot(&mut self, slot: u16, now: Nanos, peer: IpAddr, key: u128) -> SessionId {
        let g = &mut self.generations[slot as usize];
        debug_assert!(
            *g < SessionId::GENERATION_MAX,
            "take_free skips spent slots"
        );
        *g += 1;
        let id = SessionId::new(self.index, slot, *g);
        self.sessions[slot as usize].open(id, peer, now, &self.shared);
        self.live.push(slot);
        self.pending[slot as usize] = Pending {
            key,
            counted: true,
            ..Pending::NONE
        };
        self.list(slot);
        id
    }

    /// The first waiting connection, with the slot it now has (its session
    /// open, its logon deadline running from `now`), if a slot is free.
    /// Call after every release until `None`.
    pub fn next_waiting(&mut self, now: Nanos) -> Option<(i32, SessionId)> {
        if self.waiting.is_empty() {
            return None;
        }
        let slot = self.take_free()?;
        let w = self.waiting.pop_front().expect("checked not empty");
        Some((w.handle, self.open_slot(slot, now, w.peer, w.key)))
    }

    /// Takes the next waiting connection off the queue without a slot (the
    /// reactor is stopping): the caller closes its handle.
    pub fn drain_waiting(&mut self) -> Option<i32> {
        let w = self.waiting.pop_front()?;
        self.by_address.decrement(w.key);
        Some(w.handle)
    }

    /// Connections waiting for a slot.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Pending connections (not logged on) counted for `peer`'s address.
    pub fn pending_for(&self, peer: IpAddr) -> u32 {
        self.by_address.count(address_key(peer))
    }

    /// Appends `slot` to the pending list.
    fn list(&mut self, slot: u16) {
        let tail = self.pending_tail;
        let p = &mut self.pending[slot as usize];
        p.listed = true;
        p.prev = tail;
        p.next = NIL;
        if tail == NIL {
            self.pending_head = slot;
        } else {
            self.pending[tail as usize].next = slot;
        }
        self.pending_tail = slot;
    }

    /// Takes `slot` off the pending list.
    fn unlist(&mut self, slot: u16) {
        let p = self.pending[slot as usize];
        if !p.listed {
            return;
        }
        if p.prev == NIL {
            self.pending_head = p.next;
        } else {
            self.pending[p.prev as usize].next = p.next;
        }
        if p.next == NIL {
            self.pending_tail = p.prev;
        } else {
            self.pending[p.next as usize].prev = p.prev;
        }
        let p = &mut self.pending[slot as usize];
        p.listed = false;
        p.prev = NIL;
        p.next = NIL;
    }

    /// `slot` is no longer pending (it logged on, or it is released).
    fn leave_pending(&mut self, slot: usize) {
        self.unlist(slot as u16);
        let p = &mut self.pending[slot];
        if p.counted {
            p.counted = false;
            let key = p.key;
            self.by_address.decrement(key);
        }
    }

    /// After input or a timer for a pending session: it leaves the pending
    /// count once logged on. (A logon timeout is journaled by the session
    /// itself, once.)
    #[cold]
    fn pending_progress(&mut self, id: SessionId, _now: Nanos) {
        let Some(s) = self.session(id) else {
            return;
        };
        if s.is_logged_on() {
            self.leave_pending(id.slot() as usize);
        }
    }

    #[inline]
    fn is_pending(&self, id: SessionId) -> bool {
        self.pending
            .get(id.slot() as usize)
            .is_some_and(|p| p.counted)
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
        f: impl FnOnce(&mut Session, &mut Io<'_, CommandTx>),
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

    /// Answers an `admin sessions` question if one waits (two atomic loads
    /// when none does): every logged-on session's row onto this reactor's
    /// board, without allocating. Call from the timer tick.
    pub fn answer_listing(&mut self) {
        let listing = &self.shared.listing;
        if !listing.wanted(self.index) {
            return;
        }
        let (sessions, live) = (&self.sessions, &self.live);
        listing.answer(self.index, |rows| {
            for &slot in live {
                if let Some(row) = sessions[slot as usize].listing_row() {
                    rows.push(row);
                }
            }
        });
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
        // First every key of the old table whose `not_after` passed since
        // the last tick: below it counts as unusable in both tables, and a
        // reload that removes it must not make this reactor skip its sweep
        // (the other reactors' sweeps may reach the engine before the
        // commands this reactor's sessions sent).
        self.sweep_expired_keys(now);
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
                Some((index, entry)) => {
                    match session.may_stay_under(entry, self.shared.config.environment) {
                        Ok(()) => session.rebind_key(&keys, index),
                        Err(_) => {
                            // Its orders are canceled as for a revocation,
                            // then Terminate KEY_CHANGED.
                            let mut io = io!(self, now, &keys);
                            session.end_for_reload(&mut io);
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
        if now < self.expiry_scanned {
            // The wall clock stepped back (NTP): a key whose `not_after`
            // lies after `now` is usable again and may take orders, so it
            // must be swept again when the clock passes it again.
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

    /// Bytes received for `id`. Returns how many the session took: fewer
    /// than `bytes.len()` when it paused for back-pressure (its transmit
    /// buffer cannot hold the answers it would owe). The caller keeps the
    /// rest and offers it again once [`wants_input`](Self::wants_input).
    /// Bytes for a session that has gone are taken (nobody will read them).
    #[inline]
    pub fn on_bytes(&mut self, id: SessionId, now: Nanos, bytes: &[u8]) -> usize {
        let mut taken = bytes.len();
        self.with_session(id, now, |s, io| taken = s.handle_bytes(io, bytes));
        if self.is_pending(id) {
            self.pending_progress(id, now);
        }
        taken
    }

    /// Whether `id`'s session would take input now (see
    /// [`Session::wants_input`]); `true` for a session that has gone.
    #[inline]
    pub fn wants_input(&self, id: SessionId) -> bool {
        self.session(id).is_none_or(|s| s.wants_input())
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
    /// The shared-memory link's figures into the counters (tick, and after
    /// a drain that answered for a dead engine).
    fn sync_link_counters(&mut self) {
        let link = self.events.link_counters();
        self.counters.engine_unavailable = link.unavailable;
        self.counters.engine_lost = link.engine_lost;
        self.counters.link_bad_records = link.bad_records;
    }

    /// Once per turn, before [`poll_events`](Self::poll_events): on a link
    /// to an engine in another process, this side's beat and the engine's
    /// judged (`link` module docs); nothing for an in-process ring. `mono`
    /// is the turn's monotonic clock, `now` its wall clock.
    pub fn poll_link(&mut self, mono: Nanos, now: Nanos) {
        self.events.poll(mono, now);
    }

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
        if n > 0 && self.events.is_shm() {
            self.sync_link_counters();
        }
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
        if self.index == 0 {
            self.shared.admin.copy_into(&mut self.counters);
        }
        let mut i = 0;
        while i < self.live.len() {
            let slot = self.live[i] as usize;
            let session = &mut self.sessions[slot];
            if session.poll_timeout().is_some_and(|t| t <= now) {
                let mut io = io!(self, now, &self.keys);
                session.handle_timeout(&mut io);
                mark(&mut self.dirty, &mut self.dirty_mark, slot as u16);
                let id = session.id();
                if self.is_pending(id) {
                    self.pending_progress(id, now);
                }
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
            self.leave_pending(slot as usize);
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

    // The driver's seam (module docs, "Driving a core"): what a driver does
    // with a connection after its I/O completes is decided here, for the
    // io_uring worker and the simulation alike.

    /// What `id`'s connection does next, once a turn touched its session
    /// (the driver's flush; a paused connection is first offered its
    /// parked input, [`offer_parked`](Self::offer_parked)): close, once
    /// the session has ended and its queue drained (or was abandoned);
    /// else send every waiting byte, marked in flight until
    /// [`on_sent`](Self::on_sent), unless a send is already in flight
    /// (`send_inflight`) or nothing waits.
    #[inline]
    pub fn output(&mut self, id: SessionId, send_inflight: bool) -> Output<'_> {
        let Some(session) = self.session_mut(id) else {
            return Output::Idle;
        };
        if session.wants_close() {
            return Output::Close;
        }
        if send_inflight || session.tx().waiting().is_empty() {
            return Output::Idle;
        }
        Output::Send(session.tx_mut().begin_send())
    }

    /// A send of `id`'s bytes completed: `Some(n)` bytes taken (a short
    /// send puts the rest back to waiting), `None` the connection failed
    /// (the session is then closed, and the driver must close the socket).
    /// The session is marked for the driver's next flush either way.
    pub fn on_sent(&mut self, id: SessionId, now: Nanos, sent: Option<usize>) -> Sent {
        let Some(session) = self.session_mut(id) else {
            return Sent::Gone;
        };
        let outcome = match sent {
            Some(n) => {
                session.tx_mut().complete_send(n);
                Sent::Done
            }
            None => {
                session.tx_mut().complete_send(0);
                self.on_closed(id, now);
                Sent::Failed
            }
        };
        self.mark_dirty(id);
        outcome
    }

    /// `id`'s socket is closed (its close completed): the session is told,
    /// and its slot released if it has finished. Returns whether it was:
    /// the driver may then forget the connection and hand the slot to a
    /// waiting one ([`next_waiting`](Self::next_waiting)). Otherwise (a
    /// cancel-on-disconnect still waits for ring room) a later
    /// [`tick`](Self::tick) releases it.
    pub fn on_close_completed(&mut self, id: SessionId, now: Nanos) -> bool {
        self.on_closed(id, now);
        if self.release(id) {
            return true;
        }
        if !self.unreleased.contains(&id) {
            self.unreleased.push(id);
        }
        false
    }

    /// The timer tick: session timers, key validity (and sweeps waiting
    /// for ring room), the audit ring's pending gap record, then the
    /// closed sessions that have finished since are released, each handed
    /// to `released` (the driver forgets its connection; then it calls
    /// [`next_waiting`](Self::next_waiting)). O(live sessions).
    pub fn tick(&mut self, now: Nanos, mut released: impl FnMut(SessionId)) {
        self.sync_link_counters();
        self.run_timers(now);
        self.enforce_key_validity(now);
        self.audit.flush_gap(now, self.index);
        self.answer_listing();
        let mut i = 0;
        while i < self.unreleased.len() {
            if self.release(self.unreleased[i]) {
                released(self.unreleased.swap_remove(i));
            } else {
                i += 1;
            }
        }
    }

    /// Offers a paused connection's parked input to its session, oldest
    /// first, once the session wants input again. Returns whether every
    /// parked byte was taken (the connection may receive again); `false`
    /// leaves it paused, the rest still parked.
    pub fn offer_parked(
        &mut self,
        id: SessionId,
        now: Nanos,
        parked: &mut impl ParkedInput,
    ) -> bool {
        if !self.wants_input(id) {
            return false;
        }
        while let Some(bytes) = parked.oldest() {
            let len = bytes.len();
            let before = self.counters.commands_out;
            let taken = self.on_bytes(id, now, bytes);
            parked.took(taken, self.counters.commands_out - before);
            if taken < len {
                return false;
            }
        }
        true
    }
}

/// What a driver does next with a connection ([`ReactorCore::output`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Output<'a> {
    /// Nothing now.
    Idle,
    /// Start closing the socket (shut it down; close it once its receive
    /// and send have completed).
    Close,
    /// Send these bytes: they stay valid and unmoved until the send
    /// completes ([`ReactorCore::on_sent`]).
    Send(&'a [u8]),
}

/// How a completed send left the connection ([`ReactorCore::on_sent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Its session is no longer the slot's (a stale completion).
    Gone,
    Done,
    /// The connection failed: the session is closed; close the socket.
    Failed,
}

/// A paused connection's received bytes the session has not taken yet,
/// oldest first, as the driver keeps them (the worker: provided buffers
/// parked by id; the simulation: a queue of byte strings).
pub trait ParkedInput {
    /// The oldest parked bytes, if any.
    fn oldest(&self) -> Option<&[u8]>;
    /// The session took `n` of them (all: drop that chunk; fewer: keep the
    /// rest, which is offered first next time). `commands` were handed to
    /// the engine meanwhile (the worker's receive → ring latency).
    fn took(&mut self, n: usize, commands: u64);
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
    logon_reject_bytes(LogonRejectReason::SESSION_LIMIT, now)
}

/// The LogonReject for a connection refused before it has a slot
/// ([`Admission::Refuse`]).
pub fn logon_reject_bytes(reason: LogonRejectReason, now: Nanos) -> [u8; wire::LOGON_REJECT_SIZE] {
    wire::LogonReject {
        reason: reason.wire(),
        server_time_ns: now,
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{KeyEntry, KeyTable};
    use crate::auth::secret::Secret;
    use crate::session::{CloseReason, GatewayConfig};
    use crate::waits::SweepWait;
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

    use crate::client::ClientSession;
    use crate::journal::{AuditKind, AuditSink, JournalHealth};
    use crate::ring;
    use std::collections::HashMap;

    const T0: Nanos = 1_764_000_000_000_000_000;
    const SECRET: [u8; 32] = [0x5a; 32];

    struct Rig {
        core: ReactorCore,
        audit: Consumer<AuditEvent>,
        _engine: (Consumer<Command>, Producer<Event>),
    }

    impl Rig {
        fn new(slots: usize, cap: usize) -> Rig {
            let keys = KeyTable::from_entries(vec![
                KeyEntry::new(
                    1,
                    Secret::from_bytes(SECRET),
                    Scopes::TRADE,
                    Environment::Production,
                )
                .allow_any(),
            ])
            .unwrap();
            let shared = Arc::new(Shared::new(GatewayConfig::default(), keys, [3; 32]));
            let (ctx, crx) = ring::channel::<Command>(64);
            let (etx, erx) = ring::channel::<Event>(64);
            let mut core = ReactorCore::new(2, shared, slots, ctx, erx);
            core.set_pending_logons_per_address(cap);
            let (atx, arx) = ring::channel::<AuditEvent>(256);
            core.audit = Audit::new(AuditSink::new(atx), Arc::new(JournalHealth::new()));
            Rig {
                core,
                audit: arx,
                _engine: (crx, etx),
            }
        }

        fn events(&mut self) -> Vec<AuditEvent> {
            let mut out = Vec::new();
            self.audit.drain(usize::MAX, |e| out.push(e));
            out
        }

        fn open(&mut self, peer: &str, handle: i32) -> SessionId {
            match self.core.admit(T0, peer.parse().unwrap(), handle) {
                Admission::Open(id) => id,
                other => panic!("{peer}: {other:?}"),
            }
        }

        /// Closes `id` as the reactor would, and releases its slot.
        fn close(&mut self, id: SessionId) {
            self.core.on_closed(id, T0);
            assert!(self.core.release(id));
        }

        fn logon(&mut self, id: SessionId, nonce: u8) {
            let mut client = ClientSession::new(1, SECRET);
            let f = client.logon(T0, [nonce; 16], 1000, 1, 0);
            self.core.on_bytes(id, T0, &f);
            assert!(self.core.session(id).unwrap().is_logged_on());
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_count_ipv4_whole_and_ipv6_by_its_64() {
        assert_eq!(
            address_key(ip("10.1.2.3")),
            address_key(ip("::ffff:10.1.2.3"))
        );
        assert_ne!(address_key(ip("10.1.2.3")), address_key(ip("10.1.2.4")));
        assert_eq!(
            address_key(ip("2001:db8:1:2::7")),
            address_key(ip("2001:db8:1:2:ffff::1"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::7")),
            address_key(ip("2001:db8:1:3::7"))
        );
        // An IPv4 key is never an IPv6 /64 key (its low 64 bits are not 0).
        assert_ne!(address_key(ip("0.0.0.0")), address_key(ip("::")));
        assert_ne!(address_key(ip("0.0.0.1")), address_key(ip("::1")));
    }

    #[test]
    fn the_address_table_counts_exactly_through_collisions_and_deletions() {
        // A small table (16 entries for up to 8 keys) so that runs collide
        // and wrap; checked against a map after every step.
        let mut table = PendingByAddress::new(8);
        let mut model: HashMap<u128, u32> = HashMap::new();
        let mut rng = crate::rng::SplitMix(7);
        for _ in 0..20_000 {
            let key = 1 + rng.below(12) as u128;
            let held = model.get(&key).copied().unwrap_or(0);
            let distinct = model.len();
            if held > 0 && rng.below(2) == 0 {
                table.decrement(key);
                if held == 1 {
                    model.remove(&key);
                } else {
                    model.insert(key, held - 1);
                }
            } else if held > 0 || distinct < 8 {
                table.increment(key);
                model.insert(key, held + 1);
            }
            for k in 1..=12u128 {
                assert_eq!(
                    table.count(k),
                    model.get(&k).copied().unwrap_or(0),
                    "key {k}"
                );
            }
            assert_eq!(table.len(), model.len());
        }
    }

    #[test]
    fn over_the_cap_an_address_is_refused_throttled_and_journaled() {
        let mut rig = Rig::new(8, 2);
        let a = rig.open("10.0.0.1", 1);
        rig.open("10.0.0.1", 2);
        assert_eq!(
            rig.core.admit(T0, ip("10.0.0.1"), 3),
            Admission::Refuse(LogonRejectReason::THROTTLED)
        );
        // IPv6: one /64 is one budget.
        rig.open("2001:db8::1", 4);
        rig.open("2001:db8::2", 5);
        assert_eq!(
            rig.core.admit(T0, ip("2001:db8::3"), 6),
            Admission::Refuse(LogonRejectReason::THROTTLED)
        );
        rig.open("2001:db8:0:1::1", 7);
        // Another address in the same /24 is not affected.
        rig.open("10.0.0.2", 8);
        let c = &rig.core.counters;
        assert_eq!(c.address_cap_refusals, 2);
        assert_eq!(c.logon_reject(LogonRejectReason::THROTTLED), 2);
        assert_eq!(rig.core.live_count(), 6);
        let refusals: Vec<_> = rig
            .events()
            .into_iter()
            .filter(|e| e.kind == AuditKind::LogonRejected)
            .collect();
        assert_eq!(refusals.len(), 2);
        assert_eq!(refusals[0].addr, from_ip(ip("10.0.0.1")));
        assert_eq!(refusals[0].reason, LogonRejectReason::THROTTLED.wire());
        assert_eq!((refusals[0].session, refusals[0].reactor), (0, 2));
        // Its place comes back when one of them is released, or logs on.
        rig.close(a);
        assert_eq!(rig.core.pending_for(ip("10.0.0.1")), 1);
        let b = rig.open("10.0.0.1", 9);
        rig.logon(b, 1);
        assert_eq!(rig.core.pending_for(ip("10.0.0.1")), 1);
        rig.open("10.0.0.1", 10);
    }

    #[test]
    fn a_full_slab_evicts_its_oldest_pending_connection_for_a_newcomer() {
        let mut rig = Rig::new(3, 16);
        let a = rig.open("10.0.0.1", 1);
        let b = rig.open("10.0.0.2", 2);
        let c = rig.open("10.0.0.3", 3);
        rig.events();
        // D waits; A, the oldest, is evicted: LogonReject SESSION_LIMIT
        // queued, then it closes like any rejected connection.
        assert_eq!(rig.core.admit(T0, ip("10.0.0.4"), 4), Admission::Wait);
        let sa = rig.core.session(a).unwrap();
        assert_eq!(
            sa.close_reason(),
            Some(CloseReason::LogonRejected(LogonRejectReason::SESSION_LIMIT))
        );
        let reject = wire::decode_gateway(sa.tx().waiting()).unwrap();
        assert!(matches!(reject, wire::GatewayFrame::LogonReject(r) if r.reason() == 7));
        assert!(rig.core.session(b).unwrap().close_reason().is_none());
        // E waits too, and takes B's slot.
        assert_eq!(rig.core.admit(T0, ip("10.0.0.5"), 5), Admission::Wait);
        assert!(rig.core.session(b).unwrap().close_reason().is_some());
        assert_eq!(rig.core.waiting_count(), 2);
        // Nothing is free until a close completes.
        assert_eq!(rig.core.next_waiting(T0), None);
        let ev = rig.events();
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| e.kind == AuditKind::LogonRejected
            && e.reason == LogonRejectReason::SESSION_LIMIT.wire()));
        assert_eq!(ev[0].session, a.0);

        rig.close(a);
        let (h, d) = rig.core.next_waiting(T0).expect("D gets A's slot");
        assert_eq!((h, d.slot()), (4, a.slot()));
        assert_eq!(rig.core.next_waiting(T0), None);
        rig.close(b);
        let (h, _) = rig.core.next_waiting(T0).expect("E gets B's slot");
        assert_eq!(h, 5);
        assert_eq!(rig.core.pending_for(ip("10.0.0.1")), 0);
        assert_eq!(rig.core.pending_for(ip("10.0.0.4")), 1);

        // Every slot logged on: a newcomer is refused SESSION_LIMIT, and no
        // session is displaced.
        rig.logon(c, 1);
        rig.logon(d, 2);
        let e = rig.core.live_ids().find(|&id| id != c && id != d).unwrap();
        rig.logon(e, 3);
        assert_eq!(
            rig.core.admit(T0, ip("10.0.0.6"), 6),
            Admission::Refuse(LogonRejectReason::SESSION_LIMIT)
        );
        for id in [c, d, e] {
            assert!(rig.core.session(id).unwrap().is_logged_on());
        }
        let counters = &rig.core.counters;
        assert_eq!(counters.pending_evictions, 2);
        assert_eq!(counters.accepts_waited, 2);
        assert_eq!(counters.logon_reject(LogonRejectReason::SESSION_LIMIT), 3);
    }

    #[test]
    fn a_pending_connection_already_closing_is_claimed_without_an_eviction() {
        let mut rig = Rig::new(1, 16);
        let a = rig.open("10.0.0.1", 1);
        // A misses its logon deadline: closed without a reply, journaled.
        let late = T0 + GatewayConfig::default().logon_timeout_ns;
        rig.core.run_timers(late);
        assert_eq!(
            rig.core.session(a).unwrap().close_reason(),
            Some(CloseReason::LogonTimeout)
        );
        rig.core.run_timers(late + 1);
        let ev = rig.events();
        assert_eq!(ev.len(), 1, "one LogonTimeout event: {ev:?}");
        assert_eq!(ev[0].kind, AuditKind::LogonTimeout);
        assert_eq!((ev[0].session, ev[0].addr), (a.0, from_ip(ip("10.0.0.1"))));
        assert_eq!(rig.core.counters.logon_timeouts, 1);

        assert_eq!(rig.core.admit(late, ip("10.0.0.2"), 2), Admission::Wait);
        assert_eq!(rig.core.counters.pending_evictions, 0);
        // A second newcomer finds nothing left to claim.
        assert_eq!(
            rig.core.admit(late, ip("10.0.0.3"), 3),
            Admission::Refuse(LogonRejectReason::SESSION_LIMIT)
        );
        // Stopping: the waiter is handed back and its place given up.
        assert_eq!(rig.core.drain_waiting(), Some(2));
        assert_eq!(rig.core.drain_waiting(), None);
        assert_eq!(rig.core.pending_for(ip("10.0.0.2")), 0);
    }

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
    fn core_with_keys(ids: &[u64]) -> (ReactorCore, Consumer<Command>, Producer<Event>) {
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
        let (mut core, mut rx, _tx) = core_with_keys(&[1, 2, 3]);
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

    /// Found by the seeded simulation (seed 43): the wall clock stepped
    /// back over a key's `not_after`, the key was usable again and took new
    /// orders, and when the clock passed `not_after` a second time its
    /// sessions were revoked but its orders were never swept.
    #[test]
    fn a_key_that_expires_again_after_the_clock_stepped_back_is_swept_again() {
        let (mut core, mut rx, _tx) = core_with_keys(&[1]);
        let shared = core.shared().clone();
        let mut expiring = entry(5);
        expiring.not_after_ns = Some(NOW + 10);
        let epoch = shared.publish_keys(KeyTable::from_entries(vec![entry(1), expiring]).unwrap());
        core.refresh_keys(NOW);
        core.enforce_key_validity(NOW);
        core.enforce_key_validity(NOW + 10);
        assert_eq!(sweeps(&mut rx), [(5, epoch)]);
        // An NTP step back: key 5 is valid again (and may take orders).
        core.enforce_key_validity(NOW + 2);
        core.enforce_key_validity(NOW + 5);
        assert_eq!(sweeps(&mut rx), []);
        // Past its not_after again: swept again.
        core.enforce_key_validity(NOW + 12);
        assert_eq!(sweeps(&mut rx), [(5, epoch)], "swept again");
        core.enforce_key_validity(NOW + 20);
        assert_eq!(sweeps(&mut rx), []);
    }

    /// Found by the seeded simulation (seed 14961): a key expired, and a
    /// reload removed it before this reactor's next tick; the reactor saw
    /// it unusable in both tables and never swept it, so the commands its
    /// sessions had queued reached the engine after the other reactors'
    /// sweeps and rested under a removed key.
    #[test]
    fn a_key_that_expired_unswept_before_a_reload_removed_it_is_swept() {
        let (mut core, mut rx, _tx) = core_with_keys(&[1]);
        let shared = core.shared().clone();
        let mut expiring = entry(5);
        expiring.not_after_ns = Some(NOW + 10);
        let epoch = shared.publish_keys(KeyTable::from_entries(vec![entry(1), expiring]).unwrap());
        core.refresh_keys(NOW);
        core.enforce_key_validity(NOW);
        assert_eq!(sweeps(&mut rx), []);
        // Expired at NOW + 10; removed before the next tick.
        shared.publish_keys(table(&[1]));
        core.refresh_keys(NOW + 20);
        assert_eq!(sweeps(&mut rx), [(5, epoch)]);
        core.enforce_key_validity(NOW + 21);
        assert_eq!(sweeps(&mut rx), [], "once");
    }

    #[test]
    fn a_sweep_that_finds_the_ring_full_waits_for_the_next_tick() {
        let (mut core, mut rx, _tx) = core_with_keys(&[1, 2]);
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
        let (mut core, _rx, mut tx) = core_with_keys(&[1]);
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

    /// A core with key 1 and one session logged on (cancel-on-disconnect
    /// as asked), its LogonAck still queued.
    fn logged_on(cod: bool) -> (ReactorCore, Consumer<Command>, SessionId) {
        let (mut core, rx, _tx) = core_with_keys(&[1]);
        let id = core.accept(NOW, "127.0.0.1".parse().unwrap()).unwrap();
        let flags = if cod {
            crate::session::LOGON_FLAG_CANCEL_ON_DISCONNECT
        } else {
            0
        };
        let logon = ClientSession::new(1, [3; 32]).logon(NOW, [9; 16], 1000, 1, flags);
        assert_eq!(core.on_bytes(id, NOW, &logon), logon.len());
        assert!(core.session(id).unwrap().is_logged_on());
        (core, rx, id)
    }

    #[test]
    fn output_sends_what_waits_once_and_closes_an_ended_session_once_drained() {
        let (mut core, _rx, id) = logged_on(false);
        let ack = match core.output(id, false) {
            Output::Send(bytes) => bytes.len(),
            other => panic!("{other:?}"),
        };
        assert_eq!(ack, wire::LOGON_ACK_SIZE);
        // One send at a time; a short send puts the rest back.
        assert_eq!(core.output(id, true), Output::Idle);
        assert_eq!(core.on_sent(id, NOW, Some(10)), Sent::Done);
        assert!(matches!(core.output(id, false), Output::Send(b) if b.len() == ack - 10));
        assert_eq!(core.on_sent(id, NOW, Some(ack - 10)), Sent::Done);
        assert_eq!(core.output(id, false), Output::Idle);
        // Ended: the Terminate goes out, then the socket closes.
        core.terminate(id, NOW, TerminateReason::LOGOUT);
        let n = match core.output(id, false) {
            Output::Send(bytes) => bytes.len(),
            other => panic!("{other:?}"),
        };
        assert_eq!(core.on_sent(id, NOW, Some(n)), Sent::Done);
        assert_eq!(core.output(id, false), Output::Close);
        assert!(core.on_close_completed(id, NOW));
        assert_eq!(core.live_count(), 0);
    }

    #[test]
    fn a_failed_send_closes_the_session() {
        let (mut core, _rx, id) = logged_on(false);
        assert!(matches!(core.output(id, false), Output::Send(_)));
        assert_eq!(core.on_sent(id, NOW, None), Sent::Failed);
        assert_eq!(
            core.session(id).unwrap().close_reason(),
            Some(CloseReason::TransportClosed)
        );
        assert!(core.on_close_completed(id, NOW));
    }

    #[test]
    fn a_closed_session_waiting_for_ring_room_is_released_by_a_later_tick() {
        let (mut core, mut rx, id) = logged_on(true);
        for _ in 0..4 {
            assert!(
                core.commands
                    .try_push(Command::empty(CommandKind::Cancel, SessionId(0)))
                    .is_ok()
            );
        }
        // Its cancel-on-disconnect finds the ring full: not released.
        assert!(!core.on_close_completed(id, NOW));
        assert!(!core.on_close_completed(id, NOW), "listed once");
        let mut released = Vec::new();
        core.tick(NOW, |id| released.push(id));
        assert!(released.is_empty());
        assert_eq!(core.live_count(), 1);
        // The engine takes a command: the next tick delivers the
        // cancel-on-disconnect and releases the slot.
        assert_eq!(rx.pop().unwrap().kind, CommandKind::Cancel);
        core.tick(NOW + 1, |id| released.push(id));
        assert_eq!(released, [id]);
        assert_eq!(core.live_count(), 0);
        let kinds: Vec<_> = std::iter::from_fn(|| rx.pop()).map(|c| c.kind).collect();
        assert_eq!(kinds.last(), Some(&CommandKind::CancelOnDisconnect));
    }

    /// Parked chunks as the simulation keeps them.
    struct Chunks(VecDeque<Vec<u8>>);

    impl ParkedInput for Chunks {
        fn oldest(&self) -> Option<&[u8]> {
            self.0.front().map(|v| &v[..])
        }
        fn took(&mut self, n: usize, _commands: u64) {
            let front = self.0.front_mut().unwrap();
            if n == front.len() {
                self.0.pop_front();
            } else {
                front.drain(..n);
            }
        }
    }

    #[test]
    fn parked_input_is_offered_in_order_until_all_is_taken() {
        let (mut core, _rx, id) = logged_on(false);
        let mut client = ClientSession::new(1, [3; 32]);
        client.logon(NOW, [9; 16], 1000, 1, 0);
        let ack = core.session(id).unwrap().tx().waiting().to_vec();
        client.receive(&ack).expect("the LogonAck");
        // Two heartbeats, parked in three chunks split mid-frame.
        let a = client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
        let b = client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
        let bytes = [&a[..], &b[..]].concat();
        let mut parked = Chunks(VecDeque::from([
            bytes[..5].to_vec(),
            bytes[5..40].to_vec(),
            bytes[40..].to_vec(),
        ]));
        assert!(core.offer_parked(id, NOW, &mut parked));
        assert!(parked.0.is_empty());
        assert_eq!(core.counters.messages_in, 2);
        assert!(
            core.session(id).unwrap().is_logged_on(),
            "both frames were whole and in order"
        );
        // A session that has gone takes (discards) everything.
        parked.0.extend([vec![1, 2, 3], vec![4]]);
        core.on_closed(id, NOW);
        assert!(core.offer_parked(id, NOW, &mut parked));
        assert!(parked.0.is_empty());
    }
}
