//! Commands and events as the bytes that cross a process boundary.
//!
//! In-process rings move [`Command`] and [`Event`] values; a shared-memory
//! link moves eight little-endian 64-bit words per record instead, because
//! the other end is another program: a byte it writes is not trusted to be
//! a valid enum. Decoding checks every enum byte and every reserved byte;
//! a bad record is an error the consumer counts and skips, never UB.
//!
//! Word layout (the same offsets as the records' `repr(C)` layout drawn in
//! [`crate::engine`], so a hex dump of a slot reads the same either way):
//!
//! ```text
//!  Command                                  Event
//!  w0  session                              w0  session
//!  w1  cl_ord_id                            w1  cl_ord_id
//!  w2  orig_cl_ord_id                       w2  order_id
//!  w3  price (i64)                          w3  exec_id
//!  w4  time_ns                              w4  transact_time_ns
//!  w5  key_id                               w5  price (i64)
//!  w6  qty | instrument_id << 32            w6  qty | leaves_qty << 32
//!  w7  kind | side << 8 | ord_type << 16    w7  kind | reason class << 8
//!      | tif << 24 | 0 (reserved, 32 bits)      | reason code << 16 | 0 (32 bits)
//! ```
//!
//! Reason class: 0 none (code 0), 1 reject (a `RejectReason`), 2 cancel
//! (a `CancelReason`).

use crate::engine::{Command, CommandKind, Event, EventKind, EventReason, SessionId};
use crate::wire::codes::{CancelReason, RejectReason};

/// Words in one record: 64 bytes, one cache line.
pub const RECORD_WORDS: usize = 8;
/// Bytes in one record.
pub const RECORD_SIZE: usize = RECORD_WORDS * 8;

/// Why a record read from another process was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The kind byte names no command or event kind.
    Kind(u8),
    /// The reason class or code names no reason.
    Reason { class: u8, code: u16 },
    /// A reserved bit is set.
    Reserved,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Kind(k) => write!(f, "kind byte {k} names no record kind"),
            RecordError::Reason { class, code } => {
                write!(f, "reason class {class} code {code} names no reason")
            }
            RecordError::Reserved => write!(f, "a reserved bit is set"),
        }
    }
}

impl std::error::Error for RecordError {}

/// A record that crosses a process boundary as [`RECORD_WORDS`] words.
pub trait LinkRecord: Copy {
    fn to_words(&self) -> [u64; RECORD_WORDS];
    /// Checks every enum and reserved byte.
    fn from_words(w: [u64; RECORD_WORDS]) -> Result<Self, RecordError>;
}

fn to_bytes(w: [u64; RECORD_WORDS]) -> [u8; RECORD_SIZE] {
    let mut b = [0u8; RECORD_SIZE];
    for (i, word) in w.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    b
}

fn from_bytes(b: &[u8; RECORD_SIZE]) -> [u64; RECORD_WORDS] {
    let mut w = [0u64; RECORD_WORDS];
    for (i, word) in w.iter_mut().enumerate() {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i * 8..i * 8 + 8]);
        *word = u64::from_le_bytes(x);
    }
    w
}

const fn command_kind(v: u8) -> Option<CommandKind> {
    Some(match v {
        1 => CommandKind::NewOrder,
        2 => CommandKind::Cancel,
        3 => CommandKind::Replace,
        4 => CommandKind::MassCancel,
        5 => CommandKind::CancelOnDisconnect,
        6 => CommandKind::CancelForRevocation,
        7 => CommandKind::CancelForKey,
        _ => return None,
    })
}

const fn event_kind(v: u8) -> Option<EventKind> {
    Some(match v {
        1 => EventKind::Accepted,
        2 => EventKind::Rejected,
        3 => EventKind::Canceled,
        4 => EventKind::Replaced,
        5 => EventKind::Fill,
        6 => EventKind::MassCancelAck,
        7 => EventKind::KeySwept,
        _ => return None,
    })
}

impl LinkRecord for Command {
    #[inline]
    fn to_words(&self) -> [u64; RECORD_WORDS] {
        [
            self.session.0,
            self.cl_ord_id,
            self.orig_cl_ord_id,
            self.price as u64,
            self.time_ns,
            self.key_id,
            u64::from(self.qty) | u64::from(self.instrument_id) << 32,
            u64::from(self.kind as u8)
                | u64::from(self.side) << 8
                | u64::from(self.ord_type) << 16
                | u64::from(self.tif) << 24,
        ]
    }

    #[inline]
    fn from_words(w: [u64; RECORD_WORDS]) -> Result<Command, RecordError> {
        let tag = w[7];
        if tag >> 32 != 0 {
            return Err(RecordError::Reserved);
        }
        let kind = command_kind(tag as u8).ok_or(RecordError::Kind(tag as u8))?;
        Ok(Command {
            session: SessionId(w[0]),
            cl_ord_id: w[1],
            orig_cl_ord_id: w[2],
            price: w[3] as i64,
            time_ns: w[4],
            key_id: w[5],
            qty: w[6] as u32,
            instrument_id: (w[6] >> 32) as u32,
            kind,
            side: (tag >> 8) as u8,
            ord_type: (tag >> 16) as u8,
            tif: (tag >> 24) as u8,
        })
    }
}

impl LinkRecord for Event {
    #[inline]
    fn to_words(&self) -> [u64; RECORD_WORDS] {
        let (class, code) = match self.reason {
            EventReason::None => (0u64, 0u64),
            EventReason::Reject(r) => (1, u64::from(r.wire())),
            EventReason::Cancel(c) => (2, u64::from(c.wire())),
        };
        [
            self.session.0,
            self.cl_ord_id,
            self.order_id,
            self.exec_id,
            self.transact_time_ns,
            self.price as u64,
            u64::from(self.qty) | u64::from(self.leaves_qty) << 32,
            u64::from(self.kind as u8) | class << 8 | code << 16,
        ]
    }

    #[inline]
    fn from_words(w: [u64; RECORD_WORDS]) -> Result<Event, RecordError> {
        let tag = w[7];
        if tag >> 32 != 0 {
            return Err(RecordError::Reserved);
        }
        let kind = event_kind(tag as u8).ok_or(RecordError::Kind(tag as u8))?;
        let class = (tag >> 8) as u8;
        let code = (tag >> 16) as u16;
        let reason = match class {
            0 if code == 0 => Some(EventReason::None),
            1 => RejectReason::from_wire(code).map(EventReason::Reject),
            2 => CancelReason::from_wire(code).map(EventReason::Cancel),
            _ => None,
        }
        .ok_or(RecordError::Reason { class, code })?;
        Ok(Event {
            session: SessionId(w[0]),
            cl_ord_id: w[1],
            order_id: w[2],
            exec_id: w[3],
            transact_time_ns: w[4],
            price: w[5] as i64,
            qty: w[6] as u32,
            leaves_qty: (w[6] >> 32) as u32,
            kind,
            reason,
        })
    }
}

impl Command {
    /// The 64 bytes this command crosses a process boundary as.
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        to_bytes(self.to_words())
    }

    /// A command from another process's 64 bytes: every enum and reserved
    /// byte checked.
    pub fn from_bytes(bytes: &[u8; RECORD_SIZE]) -> Result<Command, RecordError> {
        Command::from_words(from_bytes(bytes))
    }
}

impl Event {
    /// The 64 bytes this event crosses a process boundary as.
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        to_bytes(self.to_words())
    }

    /// An event from another process's 64 bytes: every enum and reserved
    /// byte checked.
    pub fn from_bytes(bytes: &[u8; RECORD_SIZE]) -> Result<Event, RecordError> {
        Event::from_words(from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(kind: CommandKind) -> Command {
        Command {
            cl_ord_id: 7,
            orig_cl_ord_id: 8,
            price: -5,
            time_ns: 9,
            key_id: 10,
            qty: 11,
            instrument_id: 12,
            side: 2,
            ord_type: 1,
            tif: 3,
            ..Command::empty(kind, SessionId::new(3, 4, 5))
        }
    }

    #[test]
    fn every_command_kind_round_trips() {
        for k in 1..=7u8 {
            let c = command(command_kind(k).unwrap());
            assert_eq!(Command::from_bytes(&c.to_bytes()), Ok(c));
        }
    }

    #[test]
    fn the_byte_layout_is_the_repr_c_layout() {
        let c = command(CommandKind::Replace);
        let b = c.to_bytes();
        assert_eq!(b[56], 3, "kind at byte 56");
        assert_eq!(b[57], 2, "side at 57");
        assert_eq!(&b[48..52], &11u32.to_le_bytes(), "qty at 48");
        assert_eq!(&b[40..48], &10u64.to_le_bytes(), "key_id at 40");
    }

    #[test]
    fn every_event_kind_and_reason_round_trips() {
        let reasons = [EventReason::None]
            .into_iter()
            .chain(RejectReason::ALL.iter().map(|&r| EventReason::Reject(r)))
            .chain(CancelReason::ALL.iter().map(|&c| EventReason::Cancel(c)));
        for reason in reasons {
            for k in 1..=7u8 {
                let e = Event {
                    cl_ord_id: 1,
                    order_id: 2,
                    exec_id: 3,
                    transact_time_ns: 4,
                    price: -6,
                    qty: 7,
                    leaves_qty: 8,
                    reason,
                    ..Event::empty(event_kind(k).unwrap(), SessionId(99))
                };
                assert_eq!(Event::from_bytes(&e.to_bytes()), Ok(e));
            }
        }
    }

    #[test]
    fn every_bad_kind_reason_or_reserved_byte_is_refused() {
        let good = command(CommandKind::NewOrder).to_bytes();
        for bad in [0u8, 8, 9, 0x80, 0xff] {
            let mut b = good;
            b[56] = bad;
            assert_eq!(Command::from_bytes(&b), Err(RecordError::Kind(bad)));
            let mut e = Event::empty(EventKind::Fill, SessionId(1)).to_bytes();
            e[56] = bad;
            assert_eq!(Event::from_bytes(&e), Err(RecordError::Kind(bad)));
        }
        for i in 60..64 {
            let mut b = good;
            b[i] = 1;
            assert_eq!(Command::from_bytes(&b), Err(RecordError::Reserved));
        }
        let e = Event::empty(EventKind::Rejected, SessionId(1)).to_bytes();
        for (class, code) in [(0u8, 1u16), (1, 0), (1, 999), (2, 0), (2, 77), (3, 1)] {
            let mut b = e;
            b[57] = class;
            b[58..60].copy_from_slice(&code.to_le_bytes());
            assert_eq!(
                Event::from_bytes(&b),
                Err(RecordError::Reason { class, code })
            );
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::rng::SplitMix(7);
        let mut b = [0u8; RECORD_SIZE];
        for _ in 0..20_000 {
            for x in b.iter_mut() {
                *x = rng.next_u64() as u8;
            }
            b[56] = (rng.next_u64() % 10) as u8;
            let _ = Command::from_bytes(&b);
            let _ = Event::from_bytes(&b);
        }
    }
}
