//! The stress tests' command records: record `n` sets every field to a
//! different function of `n`, so a torn, lost or reordered record is seen
//! field by field. Shared by the in-process ring's and the shared-memory
//! ring's stress tests (`#[path]`-included by each).

use ordergate::engine::{Command, CommandKind, SessionId};

pub const KINDS: [CommandKind; 7] = [
    CommandKind::NewOrder,
    CommandKind::Cancel,
    CommandKind::Replace,
    CommandKind::MassCancel,
    CommandKind::CancelOnDisconnect,
    CommandKind::CancelForRevocation,
    CommandKind::CancelForKey,
];

/// Record `n`: every field a different function of `n`.
pub fn record(n: u64) -> Command {
    Command {
        session: SessionId(n.rotate_left(32) ^ 0x5555_5555_5555_5555),
        cl_ord_id: n,
        orig_cl_ord_id: !n,
        price: n as i64 * 3,
        time_ns: n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        key_id: n.wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
        qty: n as u32 ^ 0xA5A5,
        instrument_id: (n as u32).wrapping_mul(2_654_435_761),
        kind: KINDS[(n % 7) as usize],
        side: n as u8,
        ord_type: (n >> 8) as u8,
        tif: (n >> 16) as u8,
    }
}
