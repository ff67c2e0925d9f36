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
    pub order_rejects: [u64; 13],
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
    /// `CancelForKey` commands sent: one per key that stopped being usable
    /// (revoked, killed, removed, expired), per reactor.
    pub key_sweeps: u64,
    /// Resting orders those sweeps canceled (the engine's reports).
    pub key_sweep_canceled: u64,
    /// Times a key sweep found the command ring full and waited for the
    /// next tick.
    pub key_sweeps_deferred: u64,
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
