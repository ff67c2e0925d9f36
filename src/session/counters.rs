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
    /// Ended sessions forgotten by the orphan registry because it was full.
    pub orphans_forgotten: u64,
    /// Ended sessions whose orders a revocation canceled.
    pub orphans_swept: u64,
    /// Times a session stopped reading its client's input because its
    /// transmit buffer could not hold the answers it would owe
    /// (back-pressure; the reactor resumes once sends make room).
    pub input_paused: u64,
    /// Ended sessions closed with bytes still queued because no send took
    /// any for `TX_STALL_TIMEOUT_NS` (their client stopped reading).
    pub tx_abandoned: u64,
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
