//! What the sessions of one reactor did, as plain counters. One reactor
//! writes them; the stats file (a later issue) publishes them.

use crate::wire::codes::{LogonRejectReason, RejectReason, TerminateReason};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Well-formed, authentic, in-sequence frames after logon.
    pub messages_in: u64,
    /// Frames sent (all kinds).
    pub frames_out: u64,
    pub logons_accepted: u64,
    /// LogonReject sent, by reason code (index = code).
    pub logon_rejects: [u64; LogonRejectReason::ALL.len() + 1],
    /// OrderRejected sent, by reason code (index = code). Engine rejects are
    /// counted here too when their event is delivered.
    pub order_rejects: [u64; RejectReason::ALL.len() + 1],
    /// Terminate sent, by reason code (index = code).
    pub terminates: [u64; TerminateReason::ALL.len()],
    /// Orders, cancels, replaces and mass cancels handed to the engine.
    pub commands_out: u64,
    /// Command ring full: ENGINE_BUSY answered (Aeron's "failed offers").
    pub ring_full: u64,
    /// Connections closed at the logon deadline without a reply.
    pub logon_timeouts: u64,
    /// Sessions ended because their client did not read (Terminate
    /// SLOW_CONSUMER): an engine event found no room in the transmit
    /// buffer, or no send took a byte of it for `TX_STALL_TIMEOUT_NS`.
    pub slow_consumers: u64,
    /// Engine events for a session that had already ended.
    pub events_undeliverable: u64,
    /// Bytes received after a session ended (discarded).
    pub bytes_discarded: u64,
    /// Sessions ended because their key was revoked, disabled or removed.
    pub revocations: u64,
    /// Addresses locked out by this reactor's failed logons.
    pub lockouts: u64,
    /// Live sessions a keys reload ended (Terminate KEY_CHANGED): address
    /// no longer allowed, environment changed, or secret gone.
    pub reload_ended: u64,
    /// Session slots retired because every generation of theirs was used
    /// (`SessionId::GENERATION_MAX`): their ids are never issued twice.
    pub slots_retired: u64,
    /// Connections refused LogonReject THROTTLED at accept: their address
    /// (IPv4, or IPv6 /64) already held `pending_logons_per_address`
    /// connections not logged on on this reactor.
    pub address_cap_refusals: u64,
    /// Connections not logged on that got LogonReject SESSION_LIMIT and were
    /// closed to give their slot to a newer connection (every slot taken).
    pub pending_evictions: u64,
    /// New connections that found every slot taken and waited for one being
    /// freed for them (an eviction, or a connection not logged on that was
    /// already closing) instead of being refused.
    pub accepts_waited: u64,
    /// Logons refused THROTTLED because their (client, key id) is locked out
    /// after failed logons; no HMAC computed.
    pub logons_locked_out: u64,
    /// Logons refused THROTTLED by the per-address logon rate; no HMAC
    /// computed.
    pub logons_throttled_address: u64,
    /// Logons refused THROTTLED by the key's logon rate (signature proved).
    pub logons_throttled_key: u64,
    /// Logons refused THROTTLED because the key's nonce cache had no free
    /// slot for the nonce.
    pub logons_nonce_share_full: u64,
    /// Failed-logon records forgotten to make room in a full bucket of the
    /// lockout table.
    pub lockout_evictions: u64,
    /// Per-address logon rate cells still in debt forgotten to make room in
    /// a full bucket.
    pub logon_rate_evictions: u64,
    /// The audit journal's figures, copied from its shared health at each
    /// stats publish (the same in every reactor's block).
    pub journal: crate::audit::JournalFigures,
    /// Heartbeats beyond the session's heartbeat allowance (no reply; they
    /// count toward THROTTLE_BREACH).
    pub heartbeats_throttled: u64,
    /// New orders and replaces answered ENGINE_BUSY because only the command
    /// ring's cancel reserve was free.
    pub ring_reserve_refusals: u64,
    /// Times a session stopped reading its client's input because its
    /// transmit buffer could not hold the answers it would owe
    /// (back-pressure; the reactor resumes once sends make room).
    pub input_paused: u64,
    /// Ended sessions closed with bytes still queued because no send took
    /// any for `TX_STALL_TIMEOUT_NS` (their client stopped reading).
    pub tx_abandoned: u64,
    /// The admin socket's counters (process-wide: reactor 0 carries them,
    /// copied from [`AdminCounters`] each timer tick; 0 on other reactors).
    /// Connections refused because the peer's uid (SO_PEERCRED) is neither
    /// the gateway's nor root.
    pub admin_peers_refused: u64,
    /// Admin requests answered `error:` (unknown key, already revoked, an
    /// unknown request, a reload refused).
    pub admin_requests_refused: u64,
    /// Admin connections that closed without a request: another `serve`
    /// checking that this gateway is alive before it refuses to start.
    pub admin_probes: u64,
    /// `CancelForKey` commands sent: one per key that stopped being usable
    /// (revoked, killed, removed, expired), per reactor.
    pub key_sweeps: u64,
    /// Resting orders those sweeps canceled (the engine's reports).
    pub key_sweep_canceled: u64,
    /// Times a key sweep found the command ring full and waited for the
    /// next tick.
    pub key_sweeps_deferred: u64,
    /// Logons refused STALE_LOGON: their request time was not later than
    /// the key's replay floor (its last accepted logon before the nonce
    /// cache started empty: read from the audit journal at start-up) — a
    /// Logon captured before a restart and replayed after it.
    pub logons_stale: u64,
    /// Orders, cancels, replaces and mass cancels the gateway answered
    /// OrderRejected ENGINE_UNAVAILABLE itself because its shared-memory
    /// engine was judged dead (`link` module docs). Also counted in
    /// `order_rejects`.
    pub engine_unavailable: u64,
    /// 1 once this reactor judged its shared-memory engine dead (no beat
    /// for `ENGINE_LIVENESS_TIMEOUT_NS`, stopped, or a corrupt ring).
    pub engine_lost: u64,
    /// Events from the engine process refused by the record check (a bad
    /// enum or reserved byte): skipped and counted, never trusted.
    pub link_bad_records: u64,
}

/// What the admin thread counts, written by it and read by reactor 0 once
/// per tick (into its [`Counters`], so the stats file publishes them).
#[derive(Debug, Default)]
pub struct AdminCounters {
    pub peers_refused: std::sync::atomic::AtomicU64,
    pub requests_refused: std::sync::atomic::AtomicU64,
    pub probes: std::sync::atomic::AtomicU64,
}

impl AdminCounters {
    /// Copies the current values into `counters`.
    pub fn copy_into(&self, counters: &mut Counters) {
        use std::sync::atomic::Ordering::Relaxed;
        counters.admin_peers_refused = self.peers_refused.load(Relaxed);
        counters.admin_requests_refused = self.requests_refused.load(Relaxed);
        counters.admin_probes = self.probes.load(Relaxed);
    }
}

impl Counters {
    pub fn logon_reject(&self, r: LogonRejectReason) -> u64 {
        self.logon_rejects[r.wire() as usize]
    }
    pub fn order_reject(&self, r: RejectReason) -> u64 {
        self.order_rejects[r.wire() as usize]
    }
    pub fn terminate(&self, r: TerminateReason) -> u64 {
        self.terminates[r.wire() as usize]
    }
}
