//! What a reactor (or the control thread) pushes over its audit ring: one
//! fixed-size, `Copy`, allocation-free [`AuditEvent`] per security event.

use core::net::{IpAddr, Ipv6Addr};

use crate::engine::SessionId;
use crate::wire::codes::{LogonRejectReason, TerminateReason};

/// What happened. The discriminant is the `kind` byte of a journal record;
/// 0 is never a kind, so a zeroed record can never decode as an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AuditKind {
    /// A Logon was accepted: `key_id`, `addr`, `session`, and (version 3)
    /// the Logon's `request_time_ns`: the key's replay floor after a
    /// restart.
    LogonAccepted = 1,
    /// A Logon was refused: `key_id` (as claimed; 0 if unparsable), `addr`,
    /// `session` (the connection's slot), `reason` = LogonRejectReason.
    LogonRejected = 2,
    /// A session ended: `reason` = TerminateReason (LOGOUT included).
    Terminated = 3,
    /// A session was ended for ignoring throttling: `reason` =
    /// TerminateReason THROTTLE_BREACH, `detail` = consecutive throttled
    /// messages.
    ThrottleBreach = 4,
    /// An address was locked out after repeated failed logons: `addr`,
    /// `reason` = LogonRejectReason THROTTLED, `detail` = failures counted.
    Lockout = 5,
    /// The keys file was reloaded: `detail` = keys now loaded.
    Reload = 6,
    /// A reload was refused and the old keys kept: `detail` = line of the
    /// keys file at fault (0 if not a line error).
    ReloadFailed = 7,
    /// A key was revoked: `key_id`, `reason` = TerminateReason KEY_REVOKED,
    /// `detail` = sessions ended.
    Revoke = 8,
    /// An operator ended sessions: `key_id` (0 = any key), `session` (0 =
    /// every session of the key), `reason` = the TerminateReason sent,
    /// `detail` = sessions ended.
    Kill = 9,
    /// Events were dropped because the audit ring was full: `reactor`,
    /// `detail` = events dropped (saturates at `u32::MAX`).
    Gap = 10,
    /// The journal was opened (written by the journal thread first of all):
    /// `reason` = [`OpenKind`], `detail` = crash-residue slots discarded.
    JournalOpened = 11,
    /// A connection did not log on before its deadline and was closed:
    /// `addr`, `session`. Pre-auth: the journal thread folds it into a
    /// [`PreAuthAggregate`](Self::PreAuthAggregate).
    LogonTimeout = 12,
    /// Written by the journal thread only: pre-auth events of one source
    /// prefix, kind and reason in one window. `addr` = the prefix (IPv4 /32,
    /// IPv6 /64; `::` = addresses that did not fit the aggregation table),
    /// `reason` = the folded events' reason, `detail` = how many,
    /// `time_ns` = the first one's time; the record's `of_kind` and
    /// `last_ns` fields hold their kind and the last one's time. `key_id`
    /// is the key every one of them named, 0 if they differ; `reactor`
    /// likewise, `0xffff` if they differ.
    PreAuthAggregate = 13,
    /// Written by the journal thread only, as the first record of every
    /// segment after the first: the previous segment's last record hash
    /// (in the bytes of `key_id`, `session` and `addr`), so the chain
    /// continues across files.
    SegmentStart = 14,
    /// Written by the journal itself when it has an anchor key: an
    /// HMAC-SHA256 under that key over the record (its index, time and
    /// `prev_hash`, the chain head: so over every record before it), in the
    /// bytes of `key_id`, `session` and `addr`. `reason` = [`CheckpointKind`],
    /// `detail` = the most records the writer lets pass between two
    /// checkpoints; the record's `last_ns` field holds the anchor key's
    /// tag. See [`super::anchor`].
    Checkpoint = 15,
}

impl AuditKind {
    /// Every kind, in code order.
    pub const ALL: &'static [AuditKind] = &[
        AuditKind::LogonAccepted,
        AuditKind::LogonRejected,
        AuditKind::Terminated,
        AuditKind::ThrottleBreach,
        AuditKind::Lockout,
        AuditKind::Reload,
        AuditKind::ReloadFailed,
        AuditKind::Revoke,
        AuditKind::Kill,
        AuditKind::Gap,
        AuditKind::JournalOpened,
        AuditKind::LogonTimeout,
        AuditKind::PreAuthAggregate,
        AuditKind::SegmentStart,
        AuditKind::Checkpoint,
    ];

    /// The kind of a record's `kind` byte, or `None` for an undefined code.
    pub const fn from_code(code: u8) -> Option<AuditKind> {
        match code {
            1 => Some(AuditKind::LogonAccepted),
            2 => Some(AuditKind::LogonRejected),
            3 => Some(AuditKind::Terminated),
            4 => Some(AuditKind::ThrottleBreach),
            5 => Some(AuditKind::Lockout),
            6 => Some(AuditKind::Reload),
            7 => Some(AuditKind::ReloadFailed),
            8 => Some(AuditKind::Revoke),
            9 => Some(AuditKind::Kill),
            10 => Some(AuditKind::Gap),
            11 => Some(AuditKind::JournalOpened),
            12 => Some(AuditKind::LogonTimeout),
            13 => Some(AuditKind::PreAuthAggregate),
            14 => Some(AuditKind::SegmentStart),
            15 => Some(AuditKind::Checkpoint),
            _ => None,
        }
    }

    #[inline]
    pub const fn code(self) -> u8 {
        self as u8
    }

    pub const fn name(self) -> &'static str {
        match self {
            AuditKind::LogonAccepted => "LogonAccepted",
            AuditKind::LogonRejected => "LogonRejected",
            AuditKind::Terminated => "Terminated",
            AuditKind::ThrottleBreach => "ThrottleBreach",
            AuditKind::Lockout => "Lockout",
            AuditKind::Reload => "Reload",
            AuditKind::ReloadFailed => "ReloadFailed",
            AuditKind::Revoke => "Revoke",
            AuditKind::Kill => "Kill",
            AuditKind::Gap => "Gap",
            AuditKind::JournalOpened => "JournalOpened",
            AuditKind::LogonTimeout => "LogonTimeout",
            AuditKind::PreAuthAggregate => "PreAuthAggregate",
            AuditKind::SegmentStart => "SegmentStart",
            AuditKind::Checkpoint => "Checkpoint",
        }
    }

    /// Whether events of this kind come from peers that never
    /// authenticated: the journal thread folds them into
    /// [`PreAuthAggregate`](Self::PreAuthAggregate) records instead of
    /// writing one record per connection. A refusal before logon (of any
    /// reason) and a logon timeout are; a kind added for another pre-auth
    /// refusal (a connection cap, say) belongs here too.
    pub const fn is_pre_auth(self) -> bool {
        matches!(self, AuditKind::LogonRejected | AuditKind::LogonTimeout)
    }

    /// The name of `reason` for this kind: a LogonRejectReason,
    /// TerminateReason or [`OpenKind`] name; `None` when the kind carries no
    /// reason (`reason` 0) or the code is undefined for it.
    pub const fn reason_name(self, reason: u16) -> Option<&'static str> {
        match self {
            AuditKind::LogonRejected | AuditKind::Lockout => {
                match LogonRejectReason::from_wire(reason) {
                    Some(r) => Some(r.name()),
                    None => None,
                }
            }
            AuditKind::Terminated
            | AuditKind::ThrottleBreach
            | AuditKind::Revoke
            | AuditKind::Kill => match TerminateReason::from_wire(reason) {
                Some(r) => Some(r.name()),
                None => None,
            },
            AuditKind::JournalOpened => match OpenKind::from_code(reason) {
                Some(k) => Some(k.name()),
                None => None,
            },
            AuditKind::Checkpoint => match CheckpointKind::from_code(reason) {
                Some(k) => Some(k.name()),
                None => None,
            },
            // An aggregate's reason is named by the kind it folds (the
            // record's `of_kind`).
            AuditKind::LogonAccepted
            | AuditKind::Reload
            | AuditKind::ReloadFailed
            | AuditKind::Gap
            | AuditKind::LogonTimeout
            | AuditKind::PreAuthAggregate
            | AuditKind::SegmentStart => None,
        }
    }
}

/// How a journal was opened: the `reason` of a
/// [`JournalOpened`](AuditKind::JournalOpened) record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum OpenKind {
    /// A new file was created.
    Created = 1,
    /// An existing file was reopened; it ended cleanly (no residue).
    Reopened = 2,
    /// An existing file was reopened after a crash: `detail` slots of
    /// uncommitted or unchained residue after the last good record were
    /// zeroed.
    Recovered = 3,
}

impl OpenKind {
    pub const fn from_code(code: u16) -> Option<OpenKind> {
        match code {
            1 => Some(OpenKind::Created),
            2 => Some(OpenKind::Reopened),
            3 => Some(OpenKind::Recovered),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            OpenKind::Created => "CREATED",
            OpenKind::Reopened => "REOPENED",
            OpenKind::Recovered => "RECOVERED",
        }
    }
}

/// Why the journal wrote a [`Checkpoint`](AuditKind::Checkpoint): the
/// `reason` of the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CheckpointKind {
    /// The most records allowed between two checkpoints were written, or
    /// the last checkpoint was a second old.
    Periodic = 1,
    /// The last slot of a segment: every full segment ends with one.
    SegmentEnd = 2,
    /// The gateway stopped cleanly: the last record of its run.
    Close = 3,
}

impl CheckpointKind {
    pub const fn from_code(code: u16) -> Option<CheckpointKind> {
        match code {
            1 => Some(CheckpointKind::Periodic),
            2 => Some(CheckpointKind::SegmentEnd),
            3 => Some(CheckpointKind::Close),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            CheckpointKind::Periodic => "PERIODIC",
            CheckpointKind::SegmentEnd => "SEGMENT_END",
            CheckpointKind::Close => "CLOSE",
        }
    }
}

/// One security event, as pushed over a reactor's audit ring and stored in
/// one journal record. 64 bytes (one cache line), `Copy`; every
/// constructor is `const` and allocation-free.
///
/// `time_ns` is wall-clock time, nanoseconds since the Unix epoch (the
/// reactors' `wall_ns`). `addr` is an IPv6 address, IPv4 as IPv4-mapped
/// (`::ffff:a.b.c.d`), all zeros when there is none. `reactor` is the
/// reactor index, [`AuditEvent::REACTOR_NONE`] for the control thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub time_ns: u64,
    pub key_id: u64,
    /// `SessionId` raw value; 0 when the event concerns no one session.
    pub session: u64,
    pub addr: [u8; 16],
    /// Kind-specific count; see [`AuditKind`].
    pub detail: u32,
    /// The wire code for the kind; see [`AuditKind::reason_name`].
    pub reason: u16,
    pub reactor: u16,
    pub kind: AuditKind,
    /// LogonAccepted: the Logon's `request_time_ns` (stored in the record's
    /// `last_ns` field; the key's replay floor when the journal is read
    /// back at start-up). 0 for every other kind.
    pub request_time_ns: u64,
}

const _: () = assert!(std::mem::size_of::<AuditEvent>() == 64);
const _: () = assert!(std::mem::size_of::<AuditEvent>() <= 64);

/// The address of an event that has none.
pub const ADDR_NONE: [u8; 16] = [0; 16];

/// `ip` as 16 bytes: IPv6 as is, IPv4 as IPv4-mapped IPv6.
#[inline]
pub const fn from_ip(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address in 16 bytes, IPv4-mapped shown as IPv4; `None` for
/// [`ADDR_NONE`].
pub fn to_ip(addr: [u8; 16]) -> Option<IpAddr> {
    if addr == ADDR_NONE {
        return None;
    }
    let v6 = Ipv6Addr::from(addr);
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    })
}

impl AuditEvent {
    /// `reactor` of events raised off the reactors (reload, revoke, kill by
    /// the control thread).
    pub const REACTOR_NONE: u16 = u16::MAX;

    /// An event of `kind` with every other field zero (no key, no address,
    /// no session, reactor [`REACTOR_NONE`](Self::REACTOR_NONE)).
    pub const fn empty(kind: AuditKind, time_ns: u64) -> AuditEvent {
        AuditEvent {
            time_ns,
            key_id: 0,
            session: 0,
            addr: ADDR_NONE,
            detail: 0,
            reason: 0,
            reactor: AuditEvent::REACTOR_NONE,
            kind,
            request_time_ns: 0,
        }
    }

    /// This event with `request_time_ns` (a LogonAccepted: the Logon's).
    pub const fn with_request_time(self, request_time_ns: u64) -> AuditEvent {
        AuditEvent {
            request_time_ns,
            ..self
        }
    }

    pub const fn logon_accepted(
        time_ns: u64,
        session: SessionId,
        key_id: u64,
        addr: [u8; 16],
    ) -> AuditEvent {
        AuditEvent {
            key_id,
            session: session.0,
            addr,
            reactor: session.reactor(),
            ..AuditEvent::empty(AuditKind::LogonAccepted, time_ns)
        }
    }

    pub const fn logon_rejected(
        time_ns: u64,
        session: SessionId,
        key_id: u64,
        addr: [u8; 16],
        reason: LogonRejectReason,
    ) -> AuditEvent {
        AuditEvent {
            key_id,
            session: session.0,
            addr,
            reason: reason.wire(),
            reactor: session.reactor(),
            ..AuditEvent::empty(AuditKind::LogonRejected, time_ns)
        }
    }

    pub const fn terminated(
        time_ns: u64,
        session: SessionId,
        key_id: u64,
        addr: [u8; 16],
        reason: TerminateReason,
    ) -> AuditEvent {
        AuditEvent {
            key_id,
            session: session.0,
            addr,
            reason: reason.wire(),
            reactor: session.reactor(),
            ..AuditEvent::empty(AuditKind::Terminated, time_ns)
        }
    }

    /// `run`: consecutive throttled messages that triggered the breach.
    pub const fn throttle_breach(
        time_ns: u64,
        session: SessionId,
        key_id: u64,
        addr: [u8; 16],
        run: u32,
    ) -> AuditEvent {
        AuditEvent {
            key_id,
            session: session.0,
            addr,
            detail: run,
            reason: TerminateReason::THROTTLE_BREACH.wire(),
            reactor: session.reactor(),
            ..AuditEvent::empty(AuditKind::ThrottleBreach, time_ns)
        }
    }

    /// `failures`: failed logons counted from `addr` in the window.
    pub const fn lockout(time_ns: u64, reactor: u16, addr: [u8; 16], failures: u32) -> AuditEvent {
        AuditEvent {
            addr,
            detail: failures,
            reason: LogonRejectReason::THROTTLED.wire(),
            reactor,
            ..AuditEvent::empty(AuditKind::Lockout, time_ns)
        }
    }

    /// `keys`: keys loaded after the reload.
    pub const fn reload(time_ns: u64, keys: u32) -> AuditEvent {
        AuditEvent {
            detail: keys,
            ..AuditEvent::empty(AuditKind::Reload, time_ns)
        }
    }

    /// `line`: line of the keys file at fault, 0 if not a line error.
    pub const fn reload_failed(time_ns: u64, line: u32) -> AuditEvent {
        AuditEvent {
            detail: line,
            ..AuditEvent::empty(AuditKind::ReloadFailed, time_ns)
        }
    }

    /// `sessions_ended`: live sessions of the key that were ended.
    pub const fn revoke(time_ns: u64, key_id: u64, sessions_ended: u32) -> AuditEvent {
        AuditEvent {
            key_id,
            detail: sessions_ended,
            reason: TerminateReason::KEY_REVOKED.wire(),
            ..AuditEvent::empty(AuditKind::Revoke, time_ns)
        }
    }

    /// An operator ended `session` (or, with `SessionId(0)`, every session
    /// of `key_id`), sending `reason`.
    pub const fn kill(
        time_ns: u64,
        key_id: u64,
        session: SessionId,
        reason: TerminateReason,
        sessions_ended: u32,
    ) -> AuditEvent {
        AuditEvent {
            key_id,
            session: session.0,
            detail: sessions_ended,
            reason: reason.wire(),
            ..AuditEvent::empty(AuditKind::Kill, time_ns)
        }
    }

    /// `dropped` events of `reactor` were lost to a full audit ring before
    /// `time_ns`.
    pub const fn gap(time_ns: u64, reactor: u16, dropped: u32) -> AuditEvent {
        AuditEvent {
            detail: dropped,
            reactor,
            ..AuditEvent::empty(AuditKind::Gap, time_ns)
        }
    }

    /// The connection in `session` from `addr` sent no valid Logon before
    /// its deadline and was closed.
    pub const fn logon_timeout(time_ns: u64, session: SessionId, addr: [u8; 16]) -> AuditEvent {
        AuditEvent {
            session: session.0,
            addr,
            reactor: session.reactor(),
            ..AuditEvent::empty(AuditKind::LogonTimeout, time_ns)
        }
    }

    pub const fn journal_opened(time_ns: u64, how: OpenKind, discarded_slots: u32) -> AuditEvent {
        AuditEvent {
            detail: discarded_slots,
            reason: how as u16,
            ..AuditEvent::empty(AuditKind::JournalOpened, time_ns)
        }
    }

    /// The first record of a segment after the first: `prev_last` is the
    /// hash of the previous segment's last record, stored in the 32 bytes
    /// of `key_id`, `session` and `addr` (little-endian, in that order: the
    /// record's bytes 16..48 are the hash as is).
    pub fn segment_start(time_ns: u64, prev_last: &[u8; 32]) -> AuditEvent {
        let word = |at: usize| u64::from_le_bytes(prev_last[at..at + 8].try_into().expect("8"));
        AuditEvent {
            key_id: word(0),
            session: word(8),
            addr: prev_last[16..32].try_into().expect("16 bytes"),
            ..AuditEvent::empty(AuditKind::SegmentStart, time_ns)
        }
    }

    /// The previous segment's last hash a
    /// [`SegmentStart`](AuditKind::SegmentStart) event carries; `None` for
    /// other kinds.
    pub fn prev_segment_hash(&self) -> Option<[u8; 32]> {
        if self.kind != AuditKind::SegmentStart {
            return None;
        }
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&self.key_id.to_le_bytes());
        h[8..16].copy_from_slice(&self.session.to_le_bytes());
        h[16..].copy_from_slice(&self.addr);
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn kinds_round_trip_and_zero_is_no_kind() {
        for (i, kind) in AuditKind::ALL.iter().enumerate() {
            assert_eq!(kind.code() as usize, i + 1);
            assert_eq!(AuditKind::from_code(kind.code()), Some(*kind));
        }
        assert_eq!(AuditKind::from_code(0), None);
        assert_eq!(AuditKind::from_code(16), None);
        let pre_auth: Vec<_> = AuditKind::ALL.iter().filter(|k| k.is_pre_auth()).collect();
        assert_eq!(
            pre_auth,
            [&AuditKind::LogonRejected, &AuditKind::LogonTimeout]
        );
    }

    #[test]
    fn addresses_map_ipv4_and_back() {
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        let bytes = from_ip(v4);
        assert_eq!(&bytes[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(to_ip(bytes), Some(v4));
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert_eq!(to_ip(from_ip(v6)), Some(v6));
        assert_eq!(to_ip(ADDR_NONE), None);
    }

    #[test]
    fn reasons_are_named_with_the_wire_enum_of_their_kind() {
        let s = SessionId::new(3, 4, 5);
        let e = AuditEvent::logon_rejected(1, s, 9, ADDR_NONE, LogonRejectReason::CLOCK_SKEW);
        assert_eq!(e.reactor, 3);
        assert_eq!(e.kind.reason_name(e.reason), Some("CLOCK_SKEW"));
        let e = AuditEvent::terminated(1, s, 9, ADDR_NONE, TerminateReason::BAD_MAC);
        assert_eq!(e.kind.reason_name(e.reason), Some("BAD_MAC"));
        assert_eq!(AuditKind::Gap.reason_name(0), None);
        assert_eq!(AuditKind::LogonRejected.reason_name(99), None);
        let e = AuditEvent::journal_opened(1, OpenKind::Recovered, 2);
        assert_eq!(e.kind.reason_name(e.reason), Some("RECOVERED"));
    }

    #[test]
    fn a_segment_start_carries_the_previous_hash() {
        let mut h = [0u8; 32];
        for (i, b) in h.iter_mut().enumerate() {
            *b = i as u8 * 7 + 1;
        }
        let e = AuditEvent::segment_start(5, &h);
        assert_eq!(e.prev_segment_hash(), Some(h));
        assert_eq!(AuditEvent::reload(5, 1).prev_segment_hash(), None);
        let t = AuditEvent::logon_timeout(9, SessionId::new(2, 3, 4), ADDR_NONE);
        assert_eq!(
            (t.kind, t.reactor, t.reason),
            (AuditKind::LogonTimeout, 2, 0)
        );
    }
}
