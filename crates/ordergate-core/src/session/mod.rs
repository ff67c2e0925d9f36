//! One connection's OGP session, sans-I/O.
//!
//! A [`Session`] takes bytes and engine events with a `now`, and produces
//! bytes to send and [`Command`]s for the engine. It never touches a socket,
//! a ring or a clock: the reactor (or a test) pumps it.
//!
//! ## Call order
//!
//! ```text
//!   on accept          Session::open(id, peer, now)          (reuses the slot's buffers)
//!   bytes arrived      handle_bytes(io, bytes) → n taken      → replies queued, commands pushed;
//!                      n < bytes.len(): paused, offer the rest again once wants_input()
//!   engine event       handle_event(io, &event)               → reply queued
//!   timer              if now >= poll_timeout(): handle_timeout(io)
//!   socket writable    tx_mut().begin_send() … complete_send(n)
//!   after each turn    if wants_close(): close the socket, then on_transport_closed(io)
//!   peer closed/error  on_transport_closed(io)
//!   slot reusable      when is_finished()
//! ```
//!
//! `io` is an [`Io`]: `now`, the gateway-wide [`Shared`] state, the command
//! sink (the reactor's ring toward the engine) and the reactor's counters.
//!
//! ## Rules (PROTOCOL.md, "Session rules")
//!
//! - Before logon only a Logon is accepted; anything else, or a failed
//!   logon, gets LogonReject and the connection closes. No valid Logon within
//!   the logon timeout: closed without a reply.
//! - Logon checks, in this order (PROTOCOL.md, "Logon checks"): journal
//!   healthy (SESSION_LIMIT); this (client, key id) locked out by its own
//!   failed logons (THROTTLED, no HMAC computed); the client's logon rate
//!   (THROTTLED, no HMAC computed); key and signature (AUTH_FAILED for
//!   either, with the same HMAC work for an unknown key); key revoked or
//!   outside its validity (KEY_DISABLED); address allowed
//!   (ADDRESS_NOT_ALLOWED); field values (MALFORMED); environment
//!   (WRONG_ENVIRONMENT); clock (CLOCK_SKEW); nonce already in the key's
//!   cache (REPLAYED_NONCE, nothing recorded); request time not later than
//!   the key's replay floor (STALE_LOGON: a Logon accepted before the nonce
//!   cache started empty, i.e. before a restart); the key's logon rate
//!   (THROTTLED); the key's session limit (SESSION_LIMIT); and last, the
//!   nonce is recorded in the key's own cache (REPLAYED_NONCE if another
//!   reactor just recorded it, THROTTLED if the key's cache has no free
//!   slot; either gives the session place back). So only a logon that
//!   passed every other check takes a nonce slot, and only its key's.
//!   "Client" is the IPv4 address or the IPv6 /64. Only AUTH_FAILED counts
//!   toward the lockout, per (client, key id as sent): every later check
//!   already proved the secret, and another key at the same address is not
//!   locked out by it.
//! - After logon every frame is decoded (MALFORMED), its tag verified
//!   (BAD_MAC) and its `seq` checked (SEQUENCE_ERROR), in that order; any
//!   failure sends Terminate with that reason and ends the session, and
//!   nothing of the frame moves any state. A frame that passes advances the
//!   sequence even if it is then rejected.
//! - Order messages are checked: rate (THROTTLED with `retry_after_ns`; the
//!   `throttle_breach_run`-th consecutive throttled message gets Terminate
//!   THROTTLE_BREACH instead), then scope (NOT_PERMITTED), then handed to the
//!   engine (ENGINE_BUSY if the ring has no room: the order was not
//!   forwarded). Rate comes first so that a flood of unpermitted messages is
//!   throttled like any other.
//! - The command ring keeps a cancel reserve
//!   ([`command_ring_cancel_reserve`](crate::constants::command_ring_cancel_reserve),
//!   1/8 of it): NewOrder and ReplaceOrder get ENGINE_BUSY once only the
//!   reserve is free (`ring_reserve_refusals`); CancelOrder, MassCancel and
//!   the gateway's own CancelOnDisconnect and CancelForRevocation may use
//!   it, so a client can always get out of risk however many new orders
//!   wait ahead of it.
//! - Heartbeats have an allowance of their own
//!   ([`HeartbeatAllowance`]: `HEARTBEATS_PER_KEEPALIVE` per keepalive
//!   interval, burst `HEARTBEAT_BURST`) and take no order tokens. One beyond
//!   it is throttled: no reply (it has no `cl_ord_id`), counted
//!   (`heartbeats_throttled`), and it counts toward the throttled run like
//!   any throttled message, so a flood ends in Terminate THROTTLE_BREACH.
//!   Any admitted message (order, cancel or heartbeat) ends the run. A
//!   throttled heartbeat still proves the client alive. Logout is never
//!   throttled: it ends the session.
//! - Heartbeat is sent after `keepalive_ms` of silence toward the client;
//!   two intervals without a frame from the client end the session with
//!   Terminate HEARTBEAT_TIMEOUT.
//! - A keys reload reaches a logged-on session between two turns
//!   (`rebind_key`): new scopes and risk limits apply to its next message;
//!   if the reload took away its address, its environment or the secret
//!   that signed its Logon (`may_stay_under`), it is revoked as for a
//!   removed key but ends with Terminate KEY_CHANGED.
//! - However the session ends, if the Logon asked for cancel-on-disconnect
//!   a `CancelOnDisconnect` command goes to the engine. If the ring is full
//!   it is retried every turn (`poll_timeout` says "now"); the slot is not
//!   reused before it is delivered.
//! - Back-pressure, not disconnection: before each client frame the session
//!   needs room in its transmit buffer for that frame's answer, the first
//!   answer to every command it has at the engine, and a Terminate
//!   ([`Session::input_room_needed`]). Without it `handle_bytes` stops and
//!   returns how many bytes it consumed; the reactor keeps the rest and
//!   calls again once sends (or engine answers) made room
//!   ([`Session::wants_input`]). So an engine answer to a client that reads
//!   always fits, and a client that pipelines faster than it reads is slowed
//!   by TCP, never cut.
//! - Every frame but a Terminate leaves room for a Terminate, so a session
//!   can always say why it ends.
//! - A client that does not read is a slow consumer: an engine event that
//!   is not a reserved answer (a Fill, a mass cancel's OrderCanceled) finds
//!   no room, or the transmit buffer holds bytes that no send has taken for
//!   `TX_STALL_TIMEOUT_NS`. It gets Terminate SLOW_CONSUMER and the session
//!   ends; if that Terminate has not gone out after the same time again,
//!   the socket is closed with the rest abandoned (`tx_abandoned`). Any
//!   session that has ended and stops draining is closed that way.

use core::net::IpAddr;

use crate::audit::{AuditEvent, AuditSink, JournalHealth, from_ip};
use crate::auth::keys::{KeyEntry, KeyIndex};
use crate::auth::session_keys::{SessionKeys, verify_logon};
use crate::auth::tag::TagKey;
use crate::auth::tag::constant_time_eq;
use crate::constants::{
    KEEPALIVE_MS_MAX, KEEPALIVE_MS_MIN, RX_PARTIAL_MAX, TX_ANSWER_MAX, TX_REPLY_RESERVE,
    TX_STALL_TIMEOUT_NS,
};
use crate::engine::{Command, CommandKind, Event, EventKind, EventReason, Nanos, SessionId};
use crate::limits::{Class, HeartbeatAllowance, LocalCell, NonceRefusal, Rate, admit};
use crate::ring::Producer;
use crate::wire::codes::{
    CancelReason, Environment, LogonRejectReason, RejectReason, Scopes, TerminateReason,
};
use crate::wire::{self, ClientFrame, DecodeError};

pub mod counters;
pub mod listing;
pub mod shared;
pub mod tx;

pub use counters::Counters;
pub use shared::{GatewayConfig, KeySet, KeyState, Shared};
pub use tx::TxBuffer;

/// Where a session sends commands: the reactor's ring toward the engine.
///
/// The ring keeps a cancel reserve
/// ([`command_ring_cancel_reserve`](crate::constants::command_ring_cancel_reserve)
/// of its capacity): new orders and replaces go through
/// [`try_push_order`](CommandSink::try_push_order), which leaves it free;
/// cancels, mass cancels and the gateway's own commands through
/// [`try_push`](CommandSink::try_push), which may use it.
pub trait CommandSink {
    /// Hands over one command, using any free slot (the cancel reserve
    /// too); `false` if the ring is full (nothing sent).
    fn try_push(&mut self, command: Command) -> bool;

    /// Hands over a NewOrder or Replace only if the cancel reserve stays
    /// free after it; otherwise nothing is sent and the refusal says whether
    /// the ring was full or only the reserve was left.
    fn try_push_order(&mut self, command: Command) -> Result<(), RingRefusal>;

    /// A session has logged on (once per session, never per message): a
    /// link to an engine in another process records the sessions that
    /// asked for cancel-on-disconnect (`link::CommandTx`). Others ignore it.
    fn logged_on(&mut self, session: SessionId, cancel_on_disconnect: bool) {
        let _ = (session, cancel_on_disconnect);
    }
}

/// Why a command ring took no order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingRefusal {
    /// No slot free at all.
    Full,
    /// Only the cancel reserve was free.
    Reserve,
}

/// A vector is a sink with a capacity: tests use it to play a full ring
/// (the engine not draining it), with the same cancel reserve as a ring of
/// that capacity.
impl CommandSink for Vec<Command> {
    fn try_push(&mut self, command: Command) -> bool {
        if self.len() == self.capacity() {
            return false;
        }
        self.push(command);
        true
    }

    fn try_push_order(&mut self, command: Command) -> Result<(), RingRefusal> {
        let free = self.capacity() - self.len();
        if free == 0 {
            return Err(RingRefusal::Full);
        }
        if free <= crate::constants::command_ring_cancel_reserve(self.capacity()) {
            return Err(RingRefusal::Reserve);
        }
        self.push(command);
        Ok(())
    }
}

/// The reactor's command ring to the engine.
impl CommandSink for Producer<Command> {
    #[inline]
    fn try_push(&mut self, command: Command) -> bool {
        Producer::try_push(self, command).is_ok()
    }

    /// Reads the engine's `head` only when the cached view says the push
    /// would reach into the reserve (`ring` module docs).
    #[inline]
    fn try_push_order(&mut self, command: Command) -> Result<(), RingRefusal> {
        let reserve = crate::constants::command_ring_cancel_reserve(self.capacity());
        match self.try_push_leaving(command, reserve) {
            Ok(()) => Ok(()),
            // Exact: a refused push has just looked at `head`.
            Err(_) if self.free_seen() == 0 => Err(RingRefusal::Full),
            Err(_) => Err(RingRefusal::Reserve),
        }
    }
}

/// What one call needs from outside the session.
pub struct Io<'a, S: CommandSink> {
    pub now: Nanos,
    pub shared: &'a Shared,
    /// The key generation the reactor uses this turn.
    pub keys: &'a KeySet,
    pub commands: &'a mut S,
    pub counters: &'a mut Counters,
    /// Where security events go: the reactor's audit ring.
    pub audit: &'a mut Audit,
}

/// A reactor's link to the audit journal: its audit ring and the journal's
/// health. Disabled (no journal) in tests and the demo.
#[derive(Default)]
pub struct Audit {
    sink: Option<AuditSink>,
    health: Option<std::sync::Arc<JournalHealth>>,
}

impl Audit {
    pub fn new(sink: AuditSink, health: std::sync::Arc<JournalHealth>) -> Audit {
        Audit {
            sink: Some(sink),
            health: Some(health),
        }
    }

    /// No journal: events are not recorded and logons are never refused
    /// for it.
    pub fn disabled() -> Audit {
        Audit::default()
    }

    /// Pushes one event (a full ring is counted and later reported as a
    /// Gap record, never silently lost). No allocation, no syscall.
    #[inline]
    pub fn record(&mut self, event: AuditEvent) {
        if let Some(sink) = &mut self.sink {
            sink.record(event);
        }
    }

    /// Whether new logons may be admitted: the journal is writing (fail
    /// closed otherwise).
    #[inline]
    pub fn healthy(&self) -> bool {
        self.health.as_ref().is_none_or(|h| h.is_healthy())
    }

    /// The journal's figures for the stats file (all zero without a
    /// journal): a dozen relaxed loads, once per publish.
    pub fn journal_figures(&self) -> crate::audit::JournalFigures {
        self.health
            .as_ref()
            .map_or_else(Default::default, |h| h.figures())
    }

    /// Reports events dropped to a full ring as a Gap record, once there is
    /// room. Call on idle turns.
    pub fn flush_gap(&mut self, now: Nanos, reactor: u16) {
        if let Some(sink) = &mut self.sink {
            sink.flush_gap(now, reactor);
        }
    }
}

/// `cl_ord_id` of the MassCancelAck a reactor hands a revoked session once
/// the engine has reported its key's sweep: every KEY_REVOKED cancel has
/// been delivered. Not sent on.
pub const REVOKE_MARKER: u64 = u64::MAX;

/// How long a revoked session waits for the engine to report its canceled
/// orders before it is terminated anyway (the engine may be stalled behind a
/// full event ring): its inbound frames are already discarded.
pub const REVOKE_ACK_TIMEOUT_NS: u64 = 100_000_000;

/// Logon flag bits a client may set: bit 0, cancel-on-disconnect.
pub const LOGON_FLAG_CANCEL_ON_DISCONNECT: u8 = 1;

/// What a keys reload took away from a live session
/// ([`Session::may_stay_under`]); the session ends with Terminate
/// KEY_CHANGED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadEnd {
    /// The key's `allow` list no longer holds the session's address.
    AddressNotAllowed,
    /// The key's environment is no longer the gateway's.
    EnvironmentChanged,
    /// The secret the Logon was signed with is in neither `secret` nor
    /// `secret_next` any more.
    SecretRemoved,
}

/// Why a session ended, for counters, the audit journal and the reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// LogonReject sent.
    LogonRejected(LogonRejectReason),
    /// No valid Logon before the deadline; closed without a reply.
    LogonTimeout,
    /// Terminate sent (including LOGOUT in answer to a Logout).
    Terminated(TerminateReason),
    /// The client did not read: an event found no room in the transmit
    /// buffer, or no send took a byte for `TX_STALL_TIMEOUT_NS`.
    SlowConsumer,
    /// The peer closed the connection or it failed.
    TransportClosed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Slot unused.
    Idle,
    AwaitingLogon {
        deadline: Nanos,
    },
    Active,
    /// The key was revoked: inbound frames are discarded, the engine is
    /// canceling the session's orders (their OrderCanceled KEY_REVOKED are
    /// still delivered), then Terminate KEY_REVOKED.
    Revoking {
        deadline: Nanos,
        /// The Terminate that ends it: KEY_REVOKED, or KEY_CHANGED when a
        /// reload took away what the session logged on with.
        reason: TerminateReason,
    },
    /// Ended: flushing what is queued, then the socket closes.
    Closing(CloseReason),
    /// The socket is closed.
    Closed(CloseReason),
}

/// What the session holds once logged on.
struct Authenticated {
    keys: SessionKeys,
    key: KeyIndex,
    key_id: u64,
    /// The key's rate and its shared cell and session count, held directly
    /// so the per-message path needs no table lookup; rebound on reload.
    key_state: KeyState,
    /// The table `key` indexes (for the per-order risk limits).
    table: std::sync::Arc<crate::auth::keys::KeyTable>,
    scopes: Scopes,
    /// Next `seq` expected from the client.
    next_in: u64,
    /// `seq` of the next frame sent.
    next_out: u64,
    keepalive_ns: u64,
    cancel_on_disconnect: bool,
    cell: LocalCell,
    /// Throttled messages in a row (orders, cancels and heartbeats); any
    /// admitted one resets it.
    throttled_run: u32,
    /// Whether the Logon was signed with the key's `secret_next` (else its
    /// `secret`): a reload ends the session if that secret left the file.
    signed_with_next: bool,
    /// Heartbeats' own rate cell (four per keepalive interval, burst 8).
    heartbeats: HeartbeatAllowance,
    /// When it logged on (the LogonAck's `server_time_ns`).
    logon_ns: Nanos,
    /// Its orders the engine holds, as it was told: Accepted, less those
    /// then filled in full or canceled (`admin sessions`).
    open_orders: u32,
}

pub struct Session {
    id: SessionId,
    peer: IpAddr,
    state: State,
    auth: Option<Authenticated>,
    last_rx: Nanos,
    last_tx: Nanos,
    /// A `CancelOnDisconnect` that found the ring full.
    cod_pending: bool,
    /// A session-scoped `CancelForRevocation` (a reload ended this session
    /// but its key stays usable, so no key sweep comes) that found the ring
    /// full.
    revoke_pending: bool,
    /// The key id a Logon named (for the audit record of its refusal).
    logon_key_id: u64,
    partial: [u8; RX_PARTIAL_MAX],
    /// Bytes of `partial` holding the start of a split frame.
    partial_len: usize,
    tx: TxBuffer,
    /// Client commands handed to the engine whose first answer has not
    /// come back: each holds `TX_ANSWER_MAX` of the transmit buffer.
    outstanding: u32,
    /// `handle_bytes` last stopped short for want of transmit room: the
    /// client's silence is then the gateway's doing (heartbeat timeout).
    input_held: bool,
    /// Stall timer: when the transmit buffer was last seen to make progress
    /// (or became non-empty), and `tx.sent_total()` then.
    tx_watch_at: Nanos,
    tx_watch_sent: u64,
    /// An ended session whose transmit buffer stopped draining: close now.
    tx_abandoned: bool,
}

impl Session {
    /// A session slot with its buffers, idle. Allocates: call at start-up.
    pub fn new_slot() -> Session {
        Session {
            id: SessionId(0),
            peer: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            state: State::Idle,
            auth: None,
            last_rx: 0,
            last_tx: 0,
            cod_pending: false,
            revoke_pending: false,
            logon_key_id: 0,
            partial: [0; RX_PARTIAL_MAX],
            partial_len: 0,
            tx: TxBuffer::default(),
            outstanding: 0,
            input_held: false,
            tx_watch_at: 0,
            tx_watch_sent: 0,
            tx_abandoned: false,
        }
    }

    /// Starts a new connection in this slot. Allocates nothing.
    pub fn open(&mut self, id: SessionId, peer: IpAddr, now: Nanos, shared: &Shared) {
        debug_assert!(
            self.is_finished(),
            "slot reused before its session finished"
        );
        self.id = id;
        self.peer = peer;
        self.state = State::AwaitingLogon {
            deadline: now + shared.config.logon_timeout_ns,
        };
        self.auth = None;
        self.last_rx = now;
        self.last_tx = now;
        self.cod_pending = false;
        self.revoke_pending = false;
        self.logon_key_id = 0;
        self.partial_len = 0;
        self.tx.clear();
        self.outstanding = 0;
        self.input_held = false;
        self.tx_watch_at = now;
        self.tx_watch_sent = self.tx.sent_total();
        self.tx_abandoned = false;
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// This session as `admin sessions` lists it: None unless logged on
    /// (or ending a logged-on session).
    pub fn listing_row(&self) -> Option<listing::SessionRow> {
        let auth = self.auth.as_ref()?;
        Some(listing::SessionRow {
            key_id: auth.key_id,
            session: self.id,
            peer: self.peer,
            logon_ns: auth.logon_ns,
            msgs_in: auth.next_in - 1,
            msgs_out: auth.next_out - 1,
            open_orders: auth.open_orders,
        })
    }

    pub fn is_logged_on(&self) -> bool {
        self.state == State::Active
    }

    /// Revoked and waiting for the engine to report its canceled orders.
    pub fn is_revoking(&self) -> bool {
        matches!(self.state, State::Revoking { .. })
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.state {
            State::Closing(r) | State::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// The key the session logged on with (index in the reactor's current
    /// key generation).
    pub fn key(&self) -> Option<KeyIndex> {
        self.auth.as_ref().map(|a| a.key)
    }

    /// The id of the key the session logged on with.
    pub fn key_id(&self) -> Option<u64> {
        self.auth.as_ref().map(|a| a.key_id)
    }

    /// The key of a session that logged on and did not ask for
    /// cancel-on-disconnect: its orders may outlive it in the book.
    pub fn may_leave_orders(&self) -> Option<u64> {
        self.auth
            .as_ref()
            .filter(|a| !a.cancel_on_disconnect)
            .map(|a| a.key_id)
    }

    /// Sessions now logged on with this session's key (all reactors).
    pub fn key_sessions(&self) -> Option<u32> {
        self.auth.as_ref().map(|a| {
            a.key_state
                .sessions
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// Points a live session at its key in a new key generation (reload):
    /// its scopes and risk limits are the new entry's from the next message.
    pub fn rebind_key(&mut self, keys: &KeySet, index: KeyIndex) {
        if let Some(a) = &mut self.auth {
            a.key = index;
            a.key_state = keys.state(index).clone();
            a.table = keys.table.clone();
            a.scopes = keys.table.entry(index).scopes;
        }
    }

    /// Whether a logged-on session may stay on under `entry`, its key's
    /// entry in a reloaded table, with the gateway serving `environment`:
    /// `Err` names what the reload took away. Compares against the entry
    /// the session logged on under (still held until [`rebind_key`]).
    /// Cold: once per session per reload.
    ///
    /// [`rebind_key`]: Self::rebind_key
    pub fn may_stay_under(
        &self,
        entry: &KeyEntry,
        environment: Environment,
    ) -> Result<(), ReloadEnd> {
        let Some(a) = &self.auth else { return Ok(()) };
        if !entry.allows(self.peer) {
            return Err(ReloadEnd::AddressNotAllowed);
        }
        if entry.environment != environment {
            return Err(ReloadEnd::EnvironmentChanged);
        }
        let old = a.table.entry(a.key);
        let signed = if a.signed_with_next {
            old.secret_next.as_ref()
        } else {
            Some(&old.secret)
        };
        let (current, next) = entry.secrets();
        let still_there = signed.is_some_and(|signed| {
            let s = signed.expose();
            constant_time_eq(s, current.expose())
                || next.is_some_and(|n| constant_time_eq(s, n.expose()))
        });
        if !still_there {
            return Err(ReloadEnd::SecretRemoved);
        }
        Ok(())
    }

    /// The session's key was revoked (or disabled, or removed): stop reading,
    /// deliver the OrderCanceled KEY_REVOKED of its orders, then Terminate
    /// KEY_REVOKED. Not logged on: just closed.
    ///
    /// The session sends nothing to the engine: its reactor sends one
    /// `CancelForKey` for the key (before it revokes the key's sessions, so
    /// after every command they sent), which cancels every resting order of
    /// the key, and when the engine reports that sweep done the reactor
    /// hands each revoking session of the key the marker event
    /// (MassCancelAck with [`REVOKE_MARKER`]): every cancel has been
    /// delivered by then. Without it (a stalled engine) the session ends at
    /// its deadline.
    pub fn revoke<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        self.revoke_with(io, TerminateReason::KEY_REVOKED);
    }

    /// As [`revoke`](Self::revoke), ending with Terminate `reason`: the
    /// reactor's `CancelForKey` sweeps the orders.
    pub fn revoke_with<S: CommandSink>(&mut self, io: &mut Io<'_, S>, reason: TerminateReason) {
        match self.state {
            State::Active => {
                self.state = State::Revoking {
                    deadline: io.now + REVOKE_ACK_TIMEOUT_NS,
                    reason,
                };
            }
            State::AwaitingLogon { .. } => self.end(io, CloseReason::TransportClosed),
            _ => {}
        }
    }

    /// A keys reload took away what this session logged on with (its
    /// address, environment or secret) while the key itself stays usable:
    /// ended as for a revocation, with Terminate KEY_CHANGED. No key sweep
    /// comes for a usable key, so the session sends the engine its own
    /// `CancelForRevocation` (this session's orders only, answered with the
    /// marker once every OrderCanceled KEY_REVOKED is delivered).
    pub fn end_for_reload<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        if self.state == State::Active {
            self.revoke_with(io, TerminateReason::KEY_CHANGED);
            self.revoke_pending = true;
            self.push_revocation(io);
        } else {
            self.revoke_with(io, TerminateReason::KEY_CHANGED);
        }
    }

    fn push_revocation<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        let mut command = Command::empty(CommandKind::CancelForRevocation, self.id);
        command.cl_ord_id = REVOKE_MARKER;
        if io.commands.try_push(command) {
            io.counters.commands_out += 1;
            self.revoke_pending = false;
        } else {
            io.counters.ring_full += 1;
        }
    }

    /// The reactor takes this connection's slot for a newer one (every slot
    /// is taken and this is its oldest connection not logged on):
    /// LogonReject SESSION_LIMIT, then the connection closes. Only before
    /// logon; returns whether it was evicted.
    pub fn evict<S: CommandSink>(&mut self, io: &mut Io<'_, S>) -> bool {
        if !matches!(self.state, State::AwaitingLogon { .. }) {
            return false;
        }
        self.logon_reject(io, LogonRejectReason::SESSION_LIMIT);
        true
    }

    pub fn tx(&self) -> &TxBuffer {
        &self.tx
    }

    pub fn tx_mut(&mut self) -> &mut TxBuffer {
        &mut self.tx
    }

    /// Close the socket now: the session has ended and everything queued
    /// has been sent — or its queue stopped draining for
    /// `TX_STALL_TIMEOUT_NS` and is abandoned.
    pub fn wants_close(&self) -> bool {
        match self.state {
            State::Closing(_) => self.tx.is_empty() || self.tx_abandoned,
            _ => false,
        }
    }

    /// Room the transmit buffer must have before the session reads another
    /// client frame: one answer for it and for each command at the engine,
    /// plus a Terminate.
    #[inline]
    pub fn input_room_needed(&self) -> usize {
        TX_REPLY_RESERVE + self.outstanding as usize * TX_ANSWER_MAX
    }

    /// Whether `handle_bytes` would take bytes now: the session has room to
    /// answer a frame, or is no longer reading (bytes are then discarded).
    #[inline]
    pub fn wants_input(&self) -> bool {
        !self.is_reading() || self.tx.has_room(self.input_room_needed())
    }

    /// Client commands at the engine whose first answer is still owed.
    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }

    /// The slot can take a new connection.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Idle | State::Closed(_)) && !self.cod_pending
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        if self.cod_pending {
            return Some(0);
        }
        let timer = match (self.state, &self.auth) {
            (State::AwaitingLogon { deadline }, _) => Some(deadline),
            (State::Revoking { deadline, .. }, _) => Some(deadline),
            (State::Active, Some(a)) => {
                Some((self.last_tx + a.keepalive_ns).min(self.last_rx + 2 * a.keepalive_ns))
            }
            _ => None,
        };
        let stall = match self.state {
            State::Idle | State::Closed(_) => None,
            _ if self.tx.is_empty() => None,
            _ => Some(self.tx_watch_at + TX_STALL_TIMEOUT_NS),
        };
        match (timer, stall) {
            (Some(t), Some(s)) => Some(t.min(s)),
            (t, s) => t.or(s),
        }
    }

    /// Runs the timers: logon deadline, heartbeats, heartbeat timeout, and a
    /// cancel-on-disconnect waiting for ring space.
    pub fn handle_timeout<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        if self.cod_pending {
            self.push_cancel_on_disconnect(io);
        }
        if self.revoke_pending {
            self.push_revocation(io);
        }
        self.check_stall(io);
        match self.state {
            State::Revoking { deadline, reason } if io.now >= deadline => {
                self.terminate(io, reason);
            }
            State::AwaitingLogon { deadline } if io.now >= deadline => self.logon_timeout(io),
            State::Active => {
                let keepalive_ns = self.auth.as_ref().map_or(0, |a| a.keepalive_ns);
                if self.input_held {
                    // Its frames wait on our transmit room, not on the client.
                    self.last_rx = io.now;
                }
                if io.now >= self.last_rx + 2 * keepalive_ns {
                    self.terminate(io, TerminateReason::HEARTBEAT_TIMEOUT);
                } else if io.now >= self.last_tx + keepalive_ns {
                    if self.tx.is_empty() {
                        self.send_heartbeat(io);
                    } else {
                        // Bytes are on their way to the client: it is not
                        // left in silence, and the stall timer watches them.
                        self.last_tx = io.now;
                    }
                }
            }
            _ => {}
        }
    }

    /// The socket is gone (peer closed, error, or the reactor closed it after
    /// `wants_close`). Ends the session if it was still open.
    pub fn on_transport_closed<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        match self.state {
            State::Idle | State::Closed(_) => {}
            State::Closing(r) => self.state = State::Closed(r),
            State::AwaitingLogon { .. } | State::Active | State::Revoking { .. } => {
                if let Some(auth) = &self.auth {
                    // A logged-on session ended by its peer (or a failed
                    // socket) is journaled too: Terminated with reason
                    // NONE, as no Terminate was sent.
                    io.audit.record(AuditEvent::terminated(
                        io.now,
                        self.id,
                        auth.key_id,
                        from_ip(self.peer),
                        TerminateReason::NONE,
                    ));
                }
                self.end(io, CloseReason::TransportClosed);
                self.state = State::Closed(CloseReason::TransportClosed);
            }
        }
    }

    /// Bytes from the socket, in order. Whole frames are handled straight
    /// from `bytes`; only a frame split across calls is copied (into a
    /// buffer of one frame).
    ///
    /// Returns how many bytes it took. Fewer than `bytes.len()` only when
    /// the transmit buffer lacks [`input_room_needed`](Self::input_room_needed)
    /// before the next frame (counted `input_paused`): the caller keeps the
    /// rest and offers it again once [`wants_input`](Self::wants_input).
    /// Bytes a session that no longer reads is given are taken (and
    /// discarded).
    pub fn handle_bytes<S: CommandSink>(&mut self, io: &mut Io<'_, S>, bytes: &[u8]) -> usize {
        let mut rest = bytes;
        while !rest.is_empty() {
            if !self.is_reading() {
                io.counters.bytes_discarded += rest.len() as u64;
                break;
            }
            if !self.tx.has_room(self.input_room_needed()) {
                io.counters.input_paused += 1;
                self.input_held = true;
                return bytes.len() - rest.len();
            }
            if self.partial_len > 0 {
                // Complete the length prefix, then the frame.
                if self.partial_len < 2 {
                    self.partial[1] = rest[0];
                    self.partial_len = 2;
                    rest = &rest[1..];
                }
                let size = match wire::frame_size(&self.partial[..2]) {
                    Ok(Some(size)) => size,
                    Ok(None) => unreachable!("two bytes are buffered"),
                    Err(e) => {
                        self.refuse_malformed(io, e);
                        break;
                    }
                };
                let take = (size - self.partial_len).min(rest.len());
                self.partial[self.partial_len..self.partial_len + take]
                    .copy_from_slice(&rest[..take]);
                self.partial_len += take;
                rest = &rest[take..];
                if self.partial_len == size {
                    let frame = self.partial;
                    self.partial_len = 0;
                    self.handle_frame(io, &frame[..size]);
                }
                continue;
            }
            match wire::frame_size(rest) {
                Ok(Some(size)) if rest.len() >= size => {
                    self.handle_frame(io, &rest[..size]);
                    rest = &rest[size..];
                }
                Ok(_) => {
                    // Start of a frame; the rest comes in a later call.
                    self.partial[..rest.len()].copy_from_slice(rest);
                    self.partial_len = rest.len();
                    break;
                }
                Err(e) => {
                    self.refuse_malformed(io, e);
                    break;
                }
            }
        }
        self.input_held = false;
        bytes.len()
    }

    fn is_reading(&self) -> bool {
        matches!(self.state, State::AwaitingLogon { .. } | State::Active)
    }

    fn handle_frame<S: CommandSink>(&mut self, io: &mut Io<'_, S>, frame: &[u8]) {
        match self.state {
            State::AwaitingLogon { deadline } if io.now >= deadline => {
                // Too late, even if the timer has not run yet this turn.
                self.logon_timeout(io);
            }
            State::AwaitingLogon { .. } => match wire::decode_client(frame) {
                Ok(ClientFrame::Logon(logon)) => self.handle_logon(io, logon),
                _ => self.logon_reject(io, LogonRejectReason::MALFORMED),
            },
            State::Active => self.handle_authenticated(io, frame),
            _ => io.counters.bytes_discarded += frame.len() as u64,
        }
    }

    fn refuse_malformed<S: CommandSink>(&mut self, io: &mut Io<'_, S>, _error: DecodeError) {
        match self.state {
            State::AwaitingLogon { .. } => self.logon_reject(io, LogonRejectReason::MALFORMED),
            State::Active => self.terminate(io, TerminateReason::MALFORMED),
            _ => {}
        }
    }

    fn handle_logon<S: CommandSink>(&mut self, io: &mut Io<'_, S>, logon: wire::LogonView<'_>) {
        let shared = io.shared;
        let now = io.now;
        self.logon_key_id = logon.key_id();
        if !io.audit.healthy() {
            // Fail closed: nothing is admitted that could not be recorded.
            return self.logon_reject(io, LogonRejectReason::SESSION_LIMIT);
        }
        // Before any HMAC: this (client, key id) locked out by its own
        // failures, then this client's logon rate.
        if shared.guard.check(now, &self.peer, logon.key_id()).is_err() {
            io.counters.logons_locked_out += 1;
            return self.logon_reject(io, LogonRejectReason::THROTTLED);
        }
        match shared.address_rate.take(now, &self.peer) {
            Ok(taken) => io.counters.logon_rate_evictions += u64::from(taken.evicted),
            Err(_) => {
                io.counters.logons_throttled_address += 1;
                return self.logon_reject(io, LogonRejectReason::THROTTLED);
            }
        }
        // The signature is checked before anything about the key is told.
        let keyset = io.keys;
        let entry = keyset.table.get(logon.key_id());
        // During a rotation both secrets are tried (always both, so the time
        // does not tell which one signed); an unknown key is verified
        // against the decoy so its time matches a known key's.
        let mut secret: &[u8; 32] = shared.decoy_secret();
        let mut signed_with_next = false;
        let signature_ok = match entry {
            Some((_, e)) => match e.secret_matching(|s| verify_logon(s, logon.bytes())) {
                Some(matched) => {
                    secret = matched.expose();
                    signed_with_next = !std::ptr::eq(matched, &e.secret);
                    true
                }
                None => false,
            },
            None => {
                verify_logon(secret, logon.bytes());
                false
            }
        };
        let Some((key, entry)) = entry.filter(|_| signature_ok) else {
            let failure = shared
                .guard
                .record_failure(now, &self.peer, self.logon_key_id);
            io.counters.lockout_evictions += u64::from(failure.evicted);
            if failure.locked {
                io.counters.lockouts += 1;
                io.audit.record(AuditEvent::lockout(
                    now,
                    self.id.reactor(),
                    from_ip(self.peer),
                    shared.config.logon_failures_max,
                ));
            }
            return self.logon_reject(io, LogonRejectReason::AUTH_FAILED);
        };
        if keyset.is_revoked(entry.id) || entry.valid_at(now).is_err() {
            return self.logon_reject(io, LogonRejectReason::KEY_DISABLED);
        }
        if !entry.allows(self.peer) {
            return self.logon_reject(io, LogonRejectReason::ADDRESS_NOT_ALLOWED);
        }
        let keepalive_ms = logon.keepalive_ms();
        let flags = logon.flags();
        let Some(environment) = Environment::from_wire(logon.environment()) else {
            return self.logon_reject(io, LogonRejectReason::MALFORMED);
        };
        if !(KEEPALIVE_MS_MIN..=KEEPALIVE_MS_MAX).contains(&keepalive_ms)
            || flags & !LOGON_FLAG_CANCEL_ON_DISCONNECT != 0
        {
            return self.logon_reject(io, LogonRejectReason::MALFORMED);
        }
        if environment != shared.config.environment || environment != entry.environment {
            return self.logon_reject(io, LogonRejectReason::WRONG_ENVIRONMENT);
        }
        if logon.request_time_ns().abs_diff(now) > shared.config.logon_skew_ns {
            return self.logon_reject(io, LogonRejectReason::CLOCK_SKEW);
        }
        // The key's own nonce cache: a nonce it has recorded is refused
        // before anything else is spent on it. Nothing is recorded yet.
        let client_nonce = logon.client_nonce();
        let key_state = keyset.state(key).clone();
        if key_state.nonces.seen(now, &client_nonce) {
            return self.logon_reject(io, LogonRejectReason::REPLAYED_NONCE);
        }
        // What the nonce cache cannot know: logons accepted before it
        // started empty (before a restart, read back from the journal).
        let request_time_ns = logon.request_time_ns();
        if !key_state.logon_floor.admits(request_time_ns) {
            io.counters.logons_stale += 1;
            return self.logon_reject(io, LogonRejectReason::STALE_LOGON);
        }
        if key_state
            .logon_cell
            .take(&shared.logon_key_rate, now, Class::Cancel)
            .is_err()
        {
            io.counters.logons_throttled_key += 1;
            return self.logon_reject(io, LogonRejectReason::THROTTLED);
        }
        if let Err(reason) = Self::take_session_place(io, &key_state, entry, &client_nonce) {
            return self.logon_reject(io, reason);
        }
        let server_nonce = shared.next_server_nonce();
        let keys = SessionKeys::derive(secret, &client_nonce, &server_nonce, self.id.0);
        self.auth = Some(Authenticated {
            keys,
            key,
            key_id: entry.id,
            key_state,
            table: keyset.table.clone(),
            scopes: entry.scopes,
            next_in: 1,
            next_out: 1,
            keepalive_ns: keepalive_ms as u64 * 1_000_000,
            cancel_on_disconnect: flags & LOGON_FLAG_CANCEL_ON_DISCONNECT != 0,
            cell: LocalCell::default(),
            throttled_run: 0,
            signed_with_next,
            heartbeats: HeartbeatAllowance::new(keepalive_ms),
            logon_ns: now,
            open_orders: 0,
        });
        self.state = State::Active;
        self.last_rx = now;
        io.counters.logons_accepted += 1;
        io.commands
            .logged_on(self.id, flags & LOGON_FLAG_CANCEL_ON_DISCONNECT != 0);
        if let Some(auth) = &self.auth {
            auth.key_state.logon_floor.raise(request_time_ns);
        }
        // With the request time: the key's replay floor after a restart.
        io.audit.record(
            AuditEvent::logon_accepted(now, self.id, entry.id, from_ip(self.peer))
                .with_request_time(request_time_ns),
        );
        let ack = wire::LogonAck {
            session_id: self.id.0,
            server_time_ns: now,
            server_nonce,
            keepalive_ms,
            scopes: entry.scopes.0,
            environment: environment.wire(),
            seq: 0, // set by send_tagged
        };
        self.send_tagged::<{ wire::LOGON_ACK_SIZE }, S>(io, |seq, buf| {
            wire::LogonAck { seq, ..ack }.encode(buf)
        });
    }

    /// Takes a place among the key's live sessions (all reactors), then
    /// records the logon's nonce in the key's cache — the last check, so a
    /// logon refused for anything else leaves no nonce behind. A refused
    /// nonce gives the place back. The place is taken first so that two
    /// reactors racing for a key's last place cannot both pass; the nonce
    /// cache's own claim-and-rescan keeps one nonce from passing twice.
    fn take_session_place<S: CommandSink>(
        io: &mut Io<'_, S>,
        key_state: &KeyState,
        entry: &crate::auth::keys::KeyEntry,
        client_nonce: &[u8; 16],
    ) -> Result<(), LogonRejectReason> {
        use std::sync::atomic::Ordering::AcqRel;
        let live = key_state.sessions.fetch_add(1, AcqRel);
        if entry.session_limit_reached(live) {
            key_state.sessions.fetch_sub(1, AcqRel);
            return Err(LogonRejectReason::SESSION_LIMIT);
        }
        match key_state.nonces.admit(io.now, client_nonce) {
            Ok(()) => Ok(()),
            Err(refusal) => {
                key_state.sessions.fetch_sub(1, AcqRel);
                Err(match refusal {
                    NonceRefusal::Replayed => LogonRejectReason::REPLAYED_NONCE,
                    NonceRefusal::Full => {
                        io.counters.logons_nonce_share_full += 1;
                        LogonRejectReason::THROTTLED
                    }
                })
            }
        }
    }

    fn handle_authenticated<S: CommandSink>(&mut self, io: &mut Io<'_, S>, bytes: &[u8]) {
        let frame = match wire::decode_client(bytes) {
            Ok(ClientFrame::Logon(_)) => return self.terminate(io, TerminateReason::MALFORMED),
            Ok(frame) => frame,
            Err(e) => return self.refuse_malformed(io, e),
        };
        let auth = self
            .auth
            .as_mut()
            .expect("Active sessions are authenticated");
        if !auth.keys.client.verify(bytes) {
            return self.terminate(io, TerminateReason::BAD_MAC);
        }
        if wire::seq_of(bytes) != auth.next_in {
            return self.terminate(io, TerminateReason::SEQUENCE_ERROR);
        }
        auth.next_in += 1;
        let key_id = auth.key_id;
        self.last_rx = io.now;
        io.counters.messages_in += 1;

        let mut command = Command::empty(CommandKind::NewOrder, self.id);
        command.time_ns = io.now;
        command.key_id = key_id;
        let (class, scope) = match frame {
            ClientFrame::Heartbeat(_) => return self.handle_heartbeat(io),
            ClientFrame::Logout(_) => return self.terminate(io, TerminateReason::LOGOUT),
            ClientFrame::Logon(_) => unreachable!("refused above"),
            ClientFrame::NewOrder(m) => {
                command.cl_ord_id = m.cl_ord_id();
                command.price = m.price();
                command.qty = m.qty();
                command.instrument_id = m.instrument_id();
                command.side = m.side();
                command.ord_type = m.ord_type();
                command.tif = m.tif();
                (Class::Order, Scopes::TRADE)
            }
            ClientFrame::ReplaceOrder(m) => {
                command.kind = CommandKind::Replace;
                command.cl_ord_id = m.cl_ord_id();
                command.orig_cl_ord_id = m.orig_cl_ord_id();
                command.price = m.price();
                command.qty = m.qty();
                command.instrument_id = m.instrument_id();
                (Class::Order, Scopes::TRADE)
            }
            ClientFrame::CancelOrder(m) => {
                command.kind = CommandKind::Cancel;
                command.cl_ord_id = m.cl_ord_id();
                command.orig_cl_ord_id = m.orig_cl_ord_id();
                command.instrument_id = m.instrument_id();
                (Class::Cancel, Scopes::CANCEL)
            }
            ClientFrame::MassCancel(m) => {
                command.kind = CommandKind::MassCancel;
                command.cl_ord_id = m.cl_ord_id();
                command.instrument_id = m.instrument_id();
                command.side = m.side();
                (Class::Cancel, Scopes::CANCEL)
            }
        };
        self.handle_request(io, command, class, scope);
    }

    /// A heartbeat: taken from the session's heartbeat allowance, or
    /// throttled. A throttled heartbeat gets no reply (it has no
    /// `cl_ord_id`) but counts toward the throttled run like any message.
    fn handle_heartbeat<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        let auth = self
            .auth
            .as_mut()
            .expect("Active sessions are authenticated");
        if auth.heartbeats.admit(io.now).is_ok() {
            auth.throttled_run = 0;
            return;
        }
        io.counters.heartbeats_throttled += 1;
        self.throttled(io);
    }

    /// Counts one throttled message. The `throttle_breach_run`-th in a row
    /// ends the session with Terminate THROTTLE_BREACH (journaled): returns
    /// true, and the message gets no other answer.
    fn throttled<S: CommandSink>(&mut self, io: &mut Io<'_, S>) -> bool {
        let auth = self
            .auth
            .as_mut()
            .expect("Active sessions are authenticated");
        auth.throttled_run += 1;
        if auth.throttled_run < io.shared.config.throttle_breach_run {
            return false;
        }
        let (key_id, run) = (auth.key_id, auth.throttled_run);
        io.audit.record(AuditEvent::throttle_breach(
            io.now,
            self.id,
            key_id,
            from_ip(self.peer),
            run,
        ));
        self.terminate(io, TerminateReason::THROTTLE_BREACH);
        true
    }

    /// Rate, scope, risk, then the engine.
    fn handle_request<S: CommandSink>(
        &mut self,
        io: &mut Io<'_, S>,
        command: Command,
        class: Class,
        scope: Scopes,
    ) {
        let shared = io.shared;
        let auth = self
            .auth
            .as_mut()
            .expect("Active sessions are authenticated");
        let key = &auth.key_state;
        let session_rate: &Rate = &shared.session_rate;
        if let Err(retry_after_ns) = admit(
            &mut auth.cell,
            session_rate,
            &key.cell,
            &key.rate,
            io.now,
            class,
        ) {
            if !self.throttled(io) {
                self.reject(
                    io,
                    command.cl_ord_id,
                    RejectReason::THROTTLED,
                    retry_after_ns,
                );
            }
            return;
        }
        auth.throttled_run = 0;
        if !auth.scopes.contains(scope) {
            return self.reject(io, command.cl_ord_id, RejectReason::NOT_PERMITTED, 0);
        }
        if matches!(command.kind, CommandKind::NewOrder | CommandKind::Replace)
            && let Err(risk) = auth
                .table
                .entry(auth.key)
                .check_order(command.price, command.qty)
        {
            return self.reject(io, command.cl_ord_id, risk.reason(), 0);
        }
        // New orders and replaces leave the ring's cancel reserve free;
        // cancels may take it, so a client can always get out of risk.
        let pushed = match class {
            Class::Order => io.commands.try_push_order(command),
            Class::Cancel if io.commands.try_push(command) => Ok(()),
            Class::Cancel => Err(RingRefusal::Full),
        };
        match pushed {
            Ok(()) => {
                io.counters.commands_out += 1;
                // Its first answer is owed: the room for it stays reserved.
                self.outstanding += 1;
                debug_assert!(self.outstanding as usize <= crate::constants::TX_OUTSTANDING_MAX);
            }
            Err(refusal) => {
                match refusal {
                    RingRefusal::Full => io.counters.ring_full += 1,
                    RingRefusal::Reserve => io.counters.ring_reserve_refusals += 1,
                }
                self.reject(io, command.cl_ord_id, RejectReason::ENGINE_BUSY, 0);
            }
        }
    }

    /// An event from the engine for this session.
    pub fn handle_event<S: CommandSink>(&mut self, io: &mut Io<'_, S>, e: &Event) {
        let revoking = match self.state {
            State::Revoking { reason, .. } => Some(reason),
            _ => None,
        };
        if !(self.state == State::Active || revoking.is_some()) || e.session != self.id {
            io.counters.events_undeliverable += 1;
            return;
        }
        if let Some(reason) = revoking
            && e.kind == EventKind::MassCancelAck
            && e.cl_ord_id == REVOKE_MARKER
        {
            // Every KEY_REVOKED cancel has been delivered.
            return self.terminate(io, reason);
        }
        if is_first_answer(e) {
            // Its reserved room is the room it uses now.
            self.outstanding = self.outstanding.saturating_sub(1);
        }
        if let Some(auth) = self.auth.as_mut() {
            match e.kind {
                EventKind::Accepted => auth.open_orders += 1,
                EventKind::Canceled => auth.open_orders = auth.open_orders.saturating_sub(1),
                EventKind::Fill if e.leaves_qty == 0 => {
                    auth.open_orders = auth.open_orders.saturating_sub(1)
                }
                _ => {}
            }
        }
        let t = e.transact_time_ns;
        match e.kind {
            EventKind::Accepted => {
                self.send_tagged::<{ wire::ORDER_ACCEPTED_SIZE }, S>(io, |seq, buf| {
                    wire::OrderAccepted {
                        seq,
                        cl_ord_id: e.cl_ord_id,
                        order_id: e.order_id,
                        transact_time_ns: t,
                    }
                    .encode(buf)
                })
            }
            EventKind::Rejected => {
                let reason = match e.reason {
                    EventReason::Reject(r) => r,
                    _ => RejectReason::ENGINE_REJECT,
                };
                io.counters.order_rejects[reason.wire() as usize] += 1;
                self.send_tagged::<{ wire::ORDER_REJECTED_SIZE }, S>(io, |seq, buf| {
                    wire::OrderRejected {
                        seq,
                        cl_ord_id: e.cl_ord_id,
                        transact_time_ns: t,
                        retry_after_ns: 0,
                        reason: reason.wire(),
                    }
                    .encode(buf)
                })
            }
            EventKind::Canceled => {
                let reason = match e.reason {
                    EventReason::Cancel(r) => r,
                    _ => CancelReason::USER,
                };
                self.send_tagged::<{ wire::ORDER_CANCELED_SIZE }, S>(io, |seq, buf| {
                    wire::OrderCanceled {
                        seq,
                        cl_ord_id: e.cl_ord_id,
                        order_id: e.order_id,
                        transact_time_ns: t,
                        canceled_qty: e.qty,
                        reason: reason.wire(),
                    }
                    .encode(buf)
                })
            }
            EventKind::Replaced => {
                self.send_tagged::<{ wire::ORDER_REPLACED_SIZE }, S>(io, |seq, buf| {
                    wire::OrderReplaced {
                        seq,
                        cl_ord_id: e.cl_ord_id,
                        order_id: e.order_id,
                        transact_time_ns: t,
                        leaves_qty: e.leaves_qty,
                    }
                    .encode(buf)
                })
            }
            EventKind::Fill => self.send_tagged::<{ wire::FILL_SIZE }, S>(io, |seq, buf| {
                wire::Fill {
                    seq,
                    cl_ord_id: e.cl_ord_id,
                    order_id: e.order_id,
                    exec_id: e.exec_id,
                    transact_time_ns: t,
                    fill_price: e.price,
                    fill_qty: e.qty,
                    leaves_qty: e.leaves_qty,
                }
                .encode(buf)
            }),
            // The reactor's own report of a key sweep: never a session's.
            EventKind::KeySwept => io.counters.events_undeliverable += 1,
            EventKind::MassCancelAck => {
                self.send_tagged::<{ wire::MASS_CANCEL_ACK_SIZE }, S>(io, |seq, buf| {
                    wire::MassCancelAck {
                        seq,
                        cl_ord_id: e.cl_ord_id,
                        transact_time_ns: t,
                        canceled_count: e.qty,
                    }
                    .encode(buf)
                })
            }
        }
    }

    /// Ends the session with Terminate `reason` (e.g. SHUTDOWN from the
    /// reactor, KEY_REVOKED from a reload).
    pub fn terminate<S: CommandSink>(&mut self, io: &mut Io<'_, S>, reason: TerminateReason) {
        self.end_with_terminate(io, reason, CloseReason::Terminated(reason));
    }

    /// Queues Terminate `reason` (every other frame left room for it),
    /// records it, and ends the session as `close`. Only a live session.
    fn end_with_terminate<S: CommandSink>(
        &mut self,
        io: &mut Io<'_, S>,
        reason: TerminateReason,
        close: CloseReason,
    ) {
        if !matches!(self.state, State::Active | State::Revoking { .. }) {
            return;
        }
        let key_id = self.auth.as_ref().map_or(0, |a| a.key_id);
        io.audit.record(AuditEvent::terminated(
            io.now,
            self.id,
            key_id,
            from_ip(self.peer),
            reason,
        ));
        let queued = self.queue_tagged::<{ wire::TERMINATE_SIZE }, S>(io, 0, |seq, buf| {
            wire::Terminate {
                seq,
                reason: reason.wire(),
            }
            .encode(buf)
        });
        if queued {
            io.counters.terminates[reason.wire() as usize] += 1;
        }
        self.end(io, close);
    }

    fn send_heartbeat<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        self.send_tagged::<{ wire::HEARTBEAT_SIZE }, S>(io, |seq, buf| {
            wire::Heartbeat { seq }.encode(buf)
        });
    }

    fn reject<S: CommandSink>(
        &mut self,
        io: &mut Io<'_, S>,
        cl_ord_id: u64,
        reason: RejectReason,
        retry_after_ns: u64,
    ) {
        io.counters.order_rejects[reason.wire() as usize] += 1;
        let now = io.now;
        self.send_tagged::<{ wire::ORDER_REJECTED_SIZE }, S>(io, |seq, buf| {
            wire::OrderRejected {
                seq,
                cl_ord_id,
                transact_time_ns: now,
                retry_after_ns,
                reason: reason.wire(),
            }
            .encode(buf)
        });
    }

    /// Encodes one tagged frame with the next outbound `seq`, seals it with
    /// the gateway key and queues it, keeping room for a Terminate. A frame
    /// that does not fit means the client is not reading: slow consumer.
    #[inline]
    fn send_tagged<const N: usize, S: CommandSink>(
        &mut self,
        io: &mut Io<'_, S>,
        encode: impl FnOnce(u64, &mut [u8; N]),
    ) {
        if !self.queue_tagged::<N, S>(io, wire::TERMINATE_SIZE, encode) {
            self.slow_consumer(io);
        }
    }

    /// Queues one tagged frame if `N + keep` bytes are free; `false` (and
    /// nothing queued, no `seq` used) otherwise.
    #[inline]
    fn queue_tagged<const N: usize, S: CommandSink>(
        &mut self,
        io: &mut Io<'_, S>,
        keep: usize,
        encode: impl FnOnce(u64, &mut [u8; N]),
    ) -> bool {
        if !self.tx.has_room(N + keep) {
            return false;
        }
        if self.tx.is_empty() {
            // The stall timer starts when bytes start waiting.
            self.tx_watch_at = io.now;
            self.tx_watch_sent = self.tx.sent_total();
        }
        let auth = self.auth.as_mut().expect("tagged frames need session keys");
        let Some(buf) = self.tx.frame::<N>() else {
            unreachable!("room was checked");
        };
        encode(auth.next_out, buf);
        auth.keys.gateway.seal(buf);
        auth.next_out += 1;
        self.last_tx = io.now;
        io.counters.frames_out += 1;
        true
    }

    fn logon_reject<S: CommandSink>(&mut self, io: &mut Io<'_, S>, reason: LogonRejectReason) {
        io.counters.logon_rejects[reason.wire() as usize] += 1;
        io.audit.record(AuditEvent::logon_rejected(
            io.now,
            self.id,
            self.logon_key_id,
            from_ip(self.peer),
            reason,
        ));
        if let Some(buf) = self.tx.frame::<{ wire::LOGON_REJECT_SIZE }>() {
            wire::LogonReject {
                reason: reason.wire(),
                server_time_ns: io.now,
            }
            .encode(buf);
            io.counters.frames_out += 1;
        }
        self.state = State::Closing(CloseReason::LogonRejected(reason));
    }

    /// No valid Logon before the deadline: closed without a reply, and
    /// journaled (the journal thread folds it into a pre-auth aggregate).
    fn logon_timeout<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        io.counters.logon_timeouts += 1;
        io.audit.record(AuditEvent::logon_timeout(
            io.now,
            self.id,
            from_ip(self.peer),
        ));
        self.state = State::Closing(CloseReason::LogonTimeout);
    }

    /// The client is not reading: Terminate SLOW_CONSUMER (room was kept
    /// for it), and the session ends. The stall timer restarts so that the
    /// Terminate gets a full window to go out before the socket is closed.
    fn slow_consumer<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        if !matches!(self.state, State::Active | State::Revoking { .. }) {
            return;
        }
        io.counters.slow_consumers += 1;
        self.tx_watch_at = io.now;
        self.tx_watch_sent = self.tx.sent_total();
        self.end_with_terminate(
            io,
            TerminateReason::SLOW_CONSUMER,
            CloseReason::SlowConsumer,
        );
    }

    /// The stall timer: bytes have waited in the transmit buffer since
    /// `tx_watch_at`; if no send took any in `TX_STALL_TIMEOUT_NS`, a live
    /// session is a slow consumer and an ended one is closed, its queue
    /// abandoned.
    fn check_stall<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        if self.tx.is_empty() || io.now < self.tx_watch_at + TX_STALL_TIMEOUT_NS {
            return;
        }
        let sent = self.tx.sent_total();
        if sent != self.tx_watch_sent {
            // It moved: a client that reads, however slowly.
            self.tx_watch_at = io.now;
            self.tx_watch_sent = sent;
            return;
        }
        match self.state {
            State::Active | State::Revoking { .. } => self.slow_consumer(io),
            State::Closing(_) if !self.tx_abandoned => {
                self.tx_abandoned = true;
                io.counters.tx_abandoned += 1;
            }
            // Nothing is queued before logon but a LogonReject, which
            // ends it (Closing).
            _ => {}
        }
    }

    /// The session is over: stop reading, and cancel its orders if it asked.
    fn end<S: CommandSink>(&mut self, io: &mut Io<'_, S>, reason: CloseReason) {
        let was_logged_on = matches!(self.state, State::Active | State::Revoking { .. });
        if !(self.is_reading() || was_logged_on) {
            return;
        }
        self.state = State::Closing(reason);
        if let Some(auth) = &self.auth {
            if was_logged_on {
                auth.key_state
                    .sessions
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            if auth.cancel_on_disconnect {
                self.cod_pending = true;
                self.push_cancel_on_disconnect(io);
            }
        }
    }

    fn push_cancel_on_disconnect<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        let command = Command::empty(CommandKind::CancelOnDisconnect, self.id);
        if io.commands.try_push(command) {
            io.counters.commands_out += 1;
            self.cod_pending = false;
        } else {
            io.counters.ring_full += 1;
        }
    }

    /// A logged-on session's rate state: its own rate cell, its heartbeat
    /// allowance and its run of throttled messages (tests and fuzz
    /// targets: a refused frame must leave it as it was).
    pub fn rate_state(&self) -> Option<(LocalCell, HeartbeatAllowance, u32)> {
        self.auth
            .as_ref()
            .map(|a| (a.cell, a.heartbeats, a.throttled_run))
    }

    /// The gateway key of a logged-on session (tests and tools).
    pub fn gateway_key(&self) -> Option<&TagKey> {
        self.auth.as_ref().map(|a| &a.keys.gateway)
    }
}

/// Whether `e` is the one answer the engine owes a client command (the
/// answer whose room the session reserved): NewOrder → Accepted or
/// Rejected, CancelOrder → Canceled USER or Rejected, ReplaceOrder →
/// Replaced or Rejected, MassCancel → MassCancelAck (after its cancels).
/// Fills and the cancels of an IOC remainder, a mass cancel,
/// cancel-on-disconnect or a revocation are not.
#[inline]
fn is_first_answer(e: &Event) -> bool {
    match e.kind {
        EventKind::Accepted
        | EventKind::Rejected
        | EventKind::Replaced
        | EventKind::MassCancelAck => true,
        EventKind::Canceled => e.reason == EventReason::Cancel(CancelReason::USER),
        EventKind::Fill | EventKind::KeySwept => false,
    }
}
