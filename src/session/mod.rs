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
//!   bytes arrived      handle_bytes(io, bytes)                → replies queued, commands pushed
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
//! - Logon checks, in this order: address locked out (THROTTLED, no HMAC
//!   computed); key and signature (AUTH_FAILED for either, with the same
//!   HMAC work for an unknown key); field values (MALFORMED); environment
//!   (WRONG_ENVIRONMENT); clock (CLOCK_SKEW); nonce (REPLAYED_NONCE, or
//!   THROTTLED when the replay cache is full). Only AUTH_FAILED counts
//!   toward the address lockout: every later check already proved the
//!   secret.
//! - After logon every frame is decoded (MALFORMED), its tag verified
//!   (BAD_MAC) and its `seq` checked (SEQUENCE_ERROR), in that order; any
//!   failure sends Terminate with that reason and ends the session, and
//!   nothing of the frame moves any state. A frame that passes advances the
//!   sequence even if it is then rejected.
//! - Order messages are checked: rate (THROTTLED with `retry_after_ns`; the
//!   `throttle_breach_run`-th consecutive throttled message gets Terminate
//!   THROTTLE_BREACH instead), then scope (NOT_PERMITTED), then handed to the
//!   engine (ENGINE_BUSY if the ring is full: the order was not forwarded).
//!   Rate comes first so that a flood of unpermitted messages is throttled
//!   like any other. Heartbeat and Logout are never throttled.
//! - Heartbeat is sent after `keepalive_ms` of silence toward the client;
//!   two intervals without a frame from the client end the session with
//!   Terminate HEARTBEAT_TIMEOUT.
//! - However the session ends, if the Logon asked for cancel-on-disconnect
//!   a `CancelOnDisconnect` command goes to the engine. If the ring is full
//!   it is retried every turn (`poll_timeout` says "now"); the slot is not
//!   reused before it is delivered.
//! - A client that does not read: when the transmit buffer cannot take a
//!   reply, the session is closed as a slow consumer (no Terminate fits).

use std::net::IpAddr;

use crate::auth::keys::KeyIndex;
use crate::auth::session_keys::{SessionKeys, verify_logon};
use crate::auth::tag::TagKey;
use crate::constants::{KEEPALIVE_MS_MAX, KEEPALIVE_MS_MIN, RX_PARTIAL_MAX, TX_REPLY_RESERVE};
use crate::engine::{Command, CommandKind, Event, EventKind, EventReason, Nanos, SessionId};
use crate::journal::{AuditEvent, AuditSink, JournalHealth, from_ip};
use crate::limits::{Class, LocalCell, NonceRefusal, Rate, admit};
use crate::wire::codes::{
    CancelReason, Environment, LogonRejectReason, RejectReason, Scopes, TerminateReason,
};
use crate::wire::{self, ClientFrame, DecodeError};

pub mod counters;
pub mod shared;
pub mod tx;

pub use counters::Counters;
pub use shared::{GatewayConfig, KeySet, KeyState, Shared};
pub use tx::TxBuffer;

/// Where a session sends commands: the reactor's ring toward the engine.
pub trait CommandSink {
    /// Hands over one command; `false` if the ring is full (nothing sent).
    fn try_push(&mut self, command: Command) -> bool;
}

/// A vector is a sink with a capacity: tests use it to play a full ring.
impl CommandSink for Vec<Command> {
    fn try_push(&mut self, command: Command) -> bool {
        if self.len() == self.capacity() {
            return false;
        }
        self.push(command);
        true
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

/// Why a session ended, for counters, the audit journal and the reactor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// LogonReject sent.
    LogonRejected(LogonRejectReason),
    /// No valid Logon before the deadline; closed without a reply.
    LogonTimeout,
    /// Terminate sent (including LOGOUT in answer to a Logout).
    Terminated(TerminateReason),
    /// The transmit buffer could not take a reply.
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
    throttled_run: u32,
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
    /// The key id a Logon named (for the audit record of its refusal).
    logon_key_id: u64,
    partial: [u8; RX_PARTIAL_MAX],
    /// Bytes of `partial` holding the start of a split frame.
    partial_len: usize,
    tx: TxBuffer,
}

impl Session {
    /// A session slot with its buffers, idle. Allocates: call at start-up.
    pub fn new_slot() -> Session {
        Session {
            id: SessionId(0),
            peer: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            state: State::Idle,
            auth: None,
            last_rx: 0,
            last_tx: 0,
            cod_pending: false,
            logon_key_id: 0,
            partial: [0; RX_PARTIAL_MAX],
            partial_len: 0,
            tx: TxBuffer::default(),
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
        self.logon_key_id = 0;
        self.partial_len = 0;
        self.tx.clear();
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    pub fn peer(&self) -> IpAddr {
        self.peer
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

    /// Points a live session at its key in a new key generation (reload).
    pub fn rebind_key(&mut self, keys: &KeySet, index: KeyIndex) {
        if let Some(a) = &mut self.auth {
            a.key = index;
            a.key_state = keys.state(index).clone();
            a.table = keys.table.clone();
        }
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
        match self.state {
            State::Active => {
                self.state = State::Revoking {
                    deadline: io.now + REVOKE_ACK_TIMEOUT_NS,
                };
            }
            State::AwaitingLogon { .. } => self.end(io, CloseReason::TransportClosed),
            _ => {}
        }
    }

    pub fn tx(&self) -> &TxBuffer {
        &self.tx
    }

    pub fn tx_mut(&mut self) -> &mut TxBuffer {
        &mut self.tx
    }

    /// Close the socket now: the session has ended and everything queued
    /// has been sent — or it ended as a slow consumer, whose queue will
    /// never drain and is abandoned.
    pub fn wants_close(&self) -> bool {
        match self.state {
            State::Closing(CloseReason::SlowConsumer) => true,
            State::Closing(_) => self.tx.is_empty(),
            _ => false,
        }
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
        match (self.state, &self.auth) {
            (State::AwaitingLogon { deadline }, _) => Some(deadline),
            (State::Revoking { deadline }, _) => Some(deadline),
            (State::Active, Some(a)) => {
                Some((self.last_tx + a.keepalive_ns).min(self.last_rx + 2 * a.keepalive_ns))
            }
            _ => None,
        }
    }

    /// Runs the timers: logon deadline, heartbeats, heartbeat timeout, and a
    /// cancel-on-disconnect waiting for ring space.
    pub fn handle_timeout<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        if self.cod_pending {
            self.push_cancel_on_disconnect(io);
        }
        match self.state {
            State::Revoking { deadline } if io.now >= deadline => {
                self.terminate(io, TerminateReason::KEY_REVOKED);
            }
            State::AwaitingLogon { deadline } if io.now >= deadline => {
                io.counters.logon_timeouts += 1;
                self.state = State::Closing(CloseReason::LogonTimeout);
            }
            State::Active => {
                let keepalive_ns = self.auth.as_ref().map_or(0, |a| a.keepalive_ns);
                if io.now >= self.last_rx + 2 * keepalive_ns {
                    self.terminate(io, TerminateReason::HEARTBEAT_TIMEOUT);
                } else if io.now >= self.last_tx + keepalive_ns {
                    self.send_heartbeat(io);
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
                self.end(io, CloseReason::TransportClosed);
                self.state = State::Closed(CloseReason::TransportClosed);
            }
        }
    }

    /// Bytes from the socket, in order. Whole frames are handled straight
    /// from `bytes`; only a frame split across calls is copied (into a
    /// buffer of one frame).
    pub fn handle_bytes<S: CommandSink>(&mut self, io: &mut Io<'_, S>, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if !self.is_reading() {
                io.counters.bytes_discarded += bytes.len() as u64;
                return;
            }
            if self.partial_len > 0 {
                // Complete the length prefix, then the frame.
                if self.partial_len < 2 {
                    self.partial[1] = bytes[0];
                    self.partial_len = 2;
                    bytes = &bytes[1..];
                }
                let size = match wire::frame_size(&self.partial[..2]) {
                    Ok(Some(size)) => size,
                    Ok(None) => unreachable!("two bytes are buffered"),
                    Err(e) => return self.refuse_malformed(io, e),
                };
                let take = (size - self.partial_len).min(bytes.len());
                self.partial[self.partial_len..self.partial_len + take]
                    .copy_from_slice(&bytes[..take]);
                self.partial_len += take;
                bytes = &bytes[take..];
                if self.partial_len == size {
                    let frame = self.partial;
                    self.partial_len = 0;
                    self.handle_frame(io, &frame[..size]);
                }
                continue;
            }
            match wire::frame_size(bytes) {
                Ok(Some(size)) if bytes.len() >= size => {
                    self.handle_frame(io, &bytes[..size]);
                    bytes = &bytes[size..];
                }
                Ok(_) => {
                    // Start of a frame; the rest comes in a later call.
                    self.partial[..bytes.len()].copy_from_slice(bytes);
                    self.partial_len = bytes.len();
                    return;
                }
                Err(e) => return self.refuse_malformed(io, e),
            }
        }
    }

    fn is_reading(&self) -> bool {
        matches!(self.state, State::AwaitingLogon { .. } | State::Active)
    }

    fn handle_frame<S: CommandSink>(&mut self, io: &mut Io<'_, S>, frame: &[u8]) {
        if !self.tx.has_room(TX_REPLY_RESERVE) {
            return self.slow_consumer(io);
        }
        match self.state {
            State::AwaitingLogon { deadline } if io.now >= deadline => {
                // Too late, even if the timer has not run yet this turn.
                io.counters.logon_timeouts += 1;
                self.state = State::Closing(CloseReason::LogonTimeout);
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
        if shared.guard.check(now, &self.peer).is_err() {
            return self.logon_reject(io, LogonRejectReason::THROTTLED);
        }
        // The signature is checked before anything about the key is told.
        let keyset = io.keys;
        let entry = keyset.table.get(logon.key_id());
        // During a rotation both secrets are tried (always both, so the time
        // does not tell which one signed); an unknown key is verified
        // against the decoy so its time matches a known key's.
        let mut secret: &[u8; 32] = shared.decoy_secret();
        let signature_ok = match entry {
            Some((_, e)) => match e.secret_matching(|s| verify_logon(s, logon.bytes())) {
                Some(matched) => {
                    secret = matched.expose();
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
            if shared.guard.record_failure(now, &self.peer) {
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
        let client_nonce = logon.client_nonce();
        match shared.nonces.admit(now, entry.id, &client_nonce) {
            Ok(()) => {}
            Err(NonceRefusal::Replayed) => {
                return self.logon_reject(io, LogonRejectReason::REPLAYED_NONCE);
            }
            Err(NonceRefusal::Full) => {
                return self.logon_reject(io, LogonRejectReason::THROTTLED);
            }
        }

        // Take a place among the key's sessions (all reactors), or give it
        // back and refuse.
        let key_state = keyset.state(key).clone();
        let live = key_state
            .sessions
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if entry.session_limit_reached(live) {
            key_state
                .sessions
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return self.logon_reject(io, LogonRejectReason::SESSION_LIMIT);
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
        });
        self.state = State::Active;
        self.last_rx = now;
        io.counters.logons_accepted += 1;
        io.audit.record(AuditEvent::logon_accepted(
            now,
            self.id,
            entry.id,
            from_ip(self.peer),
        ));
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
            ClientFrame::Heartbeat(_) => return,
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

    /// Rate, scope, then the engine.
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
            auth.throttled_run += 1;
            if auth.throttled_run >= shared.config.throttle_breach_run {
                let (key_id, run) = (auth.key_id, auth.throttled_run);
                io.audit.record(AuditEvent::throttle_breach(
                    io.now,
                    self.id,
                    key_id,
                    from_ip(self.peer),
                    run,
                ));
                return self.terminate(io, TerminateReason::THROTTLE_BREACH);
            }
            return self.reject(
                io,
                command.cl_ord_id,
                RejectReason::THROTTLED,
                retry_after_ns,
            );
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
        if io.commands.try_push(command) {
            io.counters.commands_out += 1;
        } else {
            io.counters.ring_full += 1;
            self.reject(io, command.cl_ord_id, RejectReason::ENGINE_BUSY, 0);
        }
    }

    /// An event from the engine for this session.
    pub fn handle_event<S: CommandSink>(&mut self, io: &mut Io<'_, S>, e: &Event) {
        let revoking = matches!(self.state, State::Revoking { .. });
        if !(self.state == State::Active || revoking) || e.session != self.id {
            io.counters.events_undeliverable += 1;
            return;
        }
        if revoking && e.kind == EventKind::MassCancelAck && e.cl_ord_id == REVOKE_MARKER {
            // Every KEY_REVOKED cancel has been delivered.
            return self.terminate(io, TerminateReason::KEY_REVOKED);
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
        if !matches!(self.state, State::Active | State::Revoking { .. }) {
            return;
        }
        io.counters.terminates[reason.wire() as usize] += 1;
        let key_id = self.auth.as_ref().map_or(0, |a| a.key_id);
        io.audit.record(AuditEvent::terminated(
            io.now,
            self.id,
            key_id,
            from_ip(self.peer),
            reason,
        ));
        self.send_tagged::<{ wire::TERMINATE_SIZE }, S>(io, |seq, buf| {
            wire::Terminate {
                seq,
                reason: reason.wire(),
            }
            .encode(buf)
        });
        self.end(io, CloseReason::Terminated(reason));
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
    /// the gateway key and queues it. A full buffer ends the session as a
    /// slow consumer.
    #[inline]
    fn send_tagged<const N: usize, S: CommandSink>(
        &mut self,
        io: &mut Io<'_, S>,
        encode: impl FnOnce(u64, &mut [u8; N]),
    ) {
        let auth = self.auth.as_mut().expect("tagged frames need session keys");
        let Some(buf) = self.tx.frame::<N>() else {
            return self.slow_consumer(io);
        };
        encode(auth.next_out, buf);
        auth.keys.gateway.seal(buf);
        auth.next_out += 1;
        self.last_tx = io.now;
        io.counters.frames_out += 1;
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

    fn slow_consumer<S: CommandSink>(&mut self, io: &mut Io<'_, S>) {
        io.counters.slow_consumers += 1;
        self.end(io, CloseReason::SlowConsumer);
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

    /// The gateway key of a logged-on session (tests and tools).
    pub fn gateway_key(&self) -> Option<&TagKey> {
        self.auth.as_ref().map(|a| &a.keys.gateway)
    }
}
