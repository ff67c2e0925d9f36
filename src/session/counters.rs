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
    pub logon_rejects: [u64; 10],
    /// OrderRejected sent, by reason code (index = code). Engine rejects are
    /// counted here too when their event is delivered.
    pub order_rejects: [u64; 11],
    /// Terminate sent, by reason code (index = code).
    pub terminates: [u64; 9],
    /// Orders, cancels, replaces and mass cancels handed to the engine.
    pub commands_out: u64,
    /// Command ring full: ENGINE_BUSY answered (Aeron's "failed offers").
    pub ring_full: u64,
    /// Connections closed at the logon deadline without a reply.
    pub logon_timeouts: u64,
    /// Sessions closed because their transmit buffer could not take a reply.
    pub slow_consumers: u64,
    /// Engine events for a session that had already ended.
    pub events_undeliverable: u64,
    /// Bytes received after a session ended (discarded).
    pub bytes_discarded: u64,
    /// Sessions ended because their key was revoked, disabled or removed.
    pub revocations: u64,
    /// Addresses locked out by this reactor's failed logons.
    pub lockouts: u64,
    /// Ended sessions forgotten by the orphan registry because it was full.
    pub orphans_forgotten: u64,
    /// Ended sessions whose orders a revocation canceled.
    pub orphans_swept: u64,
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
