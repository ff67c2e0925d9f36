//! Differential decode: the gateway's zero-copy decoder (`wire::decode_client`
//! and `wire::decode_gateway`) against a deliberately simple reference
//! decoder written here from the message tables of PROTOCOL.md, not from the
//! library's layouts. For every input both must take the same decision
//! (accept or refuse) in both directions, and an accepted frame must have
//! the same template and the same value in every field.
//!
//! The reference prints an accepted frame the way `#[derive(Debug)]` prints
//! the library's message struct (`NewOrder { seq: 1, … }`), so the two are
//! compared as text, field by field, without the fuzz target knowing the
//! library's types beyond `to_message()`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ordergate::wire::{self, ClientFrame, GatewayFrame};

#[derive(Clone, Copy)]
enum Kind {
    U8,
    U16,
    U32,
    U64,
    I64,
    Bytes(usize),
}

/// Who sends a template.
#[derive(Clone, Copy, PartialEq)]
enum Dir {
    Client,
    Gateway,
    Both,
}

struct Template {
    name: &'static str,
    id: u16,
    size: usize,
    dir: Dir,
    /// Fields in offset order, tag and pads excluded (PROTOCOL.md, "Messages").
    fields: &'static [(&'static str, usize, Kind)],
}

use Kind::*;

/// Transcribed from PROTOCOL.md's two message tables.
const TEMPLATES: &[Template] = &[
    Template {
        name: "Logon",
        id: 1,
        size: 80,
        dir: Dir::Client,
        fields: &[
            ("key_id", 12, U64),
            ("request_time_ns", 20, U64),
            ("client_nonce", 28, Bytes(16)),
            ("keepalive_ms", 44, U16),
            ("environment", 46, U8),
            ("flags", 47, U8),
            ("signature", 48, Bytes(32)),
        ],
    },
    Template {
        name: "LogonAck",
        id: 2,
        size: 72,
        dir: Dir::Gateway,
        fields: &[
            ("session_id", 12, U64),
            ("server_time_ns", 20, U64),
            ("server_nonce", 28, Bytes(16)),
            ("keepalive_ms", 44, U16),
            ("scopes", 46, U8),
            ("environment", 47, U8),
            ("seq", 48, U64),
        ],
    },
    Template {
        name: "LogonReject",
        id: 3,
        size: 32,
        dir: Dir::Gateway,
        fields: &[("reason", 12, U16), ("server_time_ns", 20, U64)],
    },
    Template {
        name: "Heartbeat",
        id: 4,
        size: 36,
        dir: Dir::Both,
        fields: &[("seq", 12, U64)],
    },
    Template {
        name: "Logout",
        id: 5,
        size: 44,
        dir: Dir::Client,
        fields: &[("seq", 12, U64), ("reason", 20, U16)],
    },
    Template {
        name: "Terminate",
        id: 6,
        size: 44,
        dir: Dir::Gateway,
        fields: &[("seq", 12, U64), ("reason", 20, U16)],
    },
    Template {
        name: "NewOrder",
        id: 10,
        size: 64,
        dir: Dir::Client,
        fields: &[
            ("seq", 12, U64),
            ("cl_ord_id", 20, U64),
            ("price", 28, I64),
            ("qty", 36, U32),
            ("instrument_id", 40, U32),
            ("side", 44, U8),
            ("ord_type", 45, U8),
            ("tif", 46, U8),
        ],
    },
    Template {
        name: "CancelOrder",
        id: 11,
        size: 60,
        dir: Dir::Client,
        fields: &[
            ("seq", 12, U64),
            ("cl_ord_id", 20, U64),
            ("orig_cl_ord_id", 28, U64),
            ("instrument_id", 36, U32),
        ],
    },
    Template {
        name: "ReplaceOrder",
        id: 12,
        size: 68,
        dir: Dir::Client,
        fields: &[
            ("seq", 12, U64),
            ("cl_ord_id", 20, U64),
            ("orig_cl_ord_id", 28, U64),
            ("price", 36, I64),
            ("qty", 44, U32),
            ("instrument_id", 48, U32),
        ],
    },
    Template {
        name: "MassCancel",
        id: 13,
        size: 52,
        dir: Dir::Client,
        fields: &[
            ("seq", 12, U64),
            ("cl_ord_id", 20, U64),
            ("instrument_id", 28, U32),
            ("side", 32, U8),
        ],
    },
    Template {
        name: "OrderAccepted",
        id: 20,
        size: 60,
        dir: Dir::Gateway,
        fields: &[
            ("seq", 12, U64),
            ("cl_ord_id", 20, U64),
            ("order_id", 28, U64),
            ("transact_time_ns", 36, U64),
        ],
    },
    Template {
        name: "OrderRejected",
        id: 21,
        size: 64,
        dir: Dir::Gateway,
        fields: &[
            ("seq", 12, U64),
            ("cl_ord_id", 20, U64),
            ("transact_time_ns", 28, U64),
            ("retry_after_ns", 36, U64),
            ("reason", 44, U16),
        ],
    },
    Template {
        name: "OrderCanceled",
        id: 22,
        size: 68,
        dir: Dir::Gateway,
        fields: &[
            ("seq", 12, U64),
            ("cl_ord_id", 20, U64),
            ("order_id", 28, U64),
            ("transact_time_ns", 36, U64),
            ("canceled_qty", 44, U32),
            ("reason", 48, U16),
        ],
    },
    Template {
        name: "OrderReplaced",
        id: 23,
        size: 68,
        dir: Dir::Gateway,
        fields: &[
            ("seq", 12, U64),
            ("cl_ord_id", 20, U64),
            ("order_id", 28, U64),
            ("transact_time_ns", 36, U64),
            ("leaves_qty", 44, U32),
        ],
    },
    Template {
        name: "Fill",
        id: 24,
        size: 84,
        dir: Dir::Gateway,
        fields: &[
            ("seq", 12, U64),
            ("cl_ord_id", 20, U64),
            ("order_id", 28, U64),
            ("exec_id", 36, U64),
            ("transact_time_ns", 44, U64),
            ("fill_price", 52, I64),
            ("fill_qty", 60, U32),
            ("leaves_qty", 64, U32),
        ],
    },
    Template {
        name: "MassCancelAck",
        id: 25,
        size: 60,
        dir: Dir::Gateway,
        fields: &[
            ("seq", 12, U64),
            ("cl_ord_id", 20, U64),
            ("transact_time_ns", 28, U64),
            ("canceled_count", 36, U32),
        ],
    },
];

fn le(b: &[u8]) -> u128 {
    b.iter().rev().fold(0u128, |acc, &x| (acc << 8) | x as u128)
}

/// The reference decision: the frame as `Name { field: value, … }`, or None
/// for a refusal. Rules (PROTOCOL.md, "Framing"): the slice is exactly one
/// frame of `message_size` bytes; encoding 0xCAFE, schema 0x4F47, version 1;
/// a known template sent in this direction, whose size and block length
/// (size − 12) match exactly.
fn reference(frame: &[u8], from_client: bool) -> Option<String> {
    if frame.len() < 12 {
        return None;
    }
    let u16_at = |o: usize| le(&frame[o..o + 2]) as u16;
    let size = u16_at(0) as usize;
    if size != frame.len() || !(32..=84).contains(&size) {
        return None;
    }
    if u16_at(2) != 0xCAFE || u16_at(8) != 0x4F47 || u16_at(10) != 1 {
        return None;
    }
    let t = TEMPLATES.iter().find(|t| t.id == u16_at(6))?;
    let wanted = if from_client {
        Dir::Client
    } else {
        Dir::Gateway
    };
    if !(t.dir == wanted || t.dir == Dir::Both) {
        return None;
    }
    if size != t.size || u16_at(4) as usize != t.size - 12 {
        return None;
    }
    let mut out = format!("{} {{ ", t.name);
    for (i, (name, off, kind)) in t.fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let value = match kind {
            U8 => le(&frame[*off..off + 1]).to_string(),
            U16 => le(&frame[*off..off + 2]).to_string(),
            U32 => le(&frame[*off..off + 4]).to_string(),
            U64 => le(&frame[*off..off + 8]).to_string(),
            I64 => (le(&frame[*off..off + 8]) as u64 as i64).to_string(),
            Bytes(n) => format!("{:?}", &frame[*off..off + n]),
        };
        out.push_str(&format!("{name}: {value}"));
    }
    out.push_str(" }");
    Some(out)
}

fn real_client(frame: &[u8]) -> Option<String> {
    Some(match wire::decode_client(frame).ok()? {
        ClientFrame::Logon(m) => format!("{:?}", m.to_message()),
        ClientFrame::Heartbeat(m) => format!("{:?}", m.to_message()),
        ClientFrame::Logout(m) => format!("{:?}", m.to_message()),
        ClientFrame::NewOrder(m) => format!("{:?}", m.to_message()),
        ClientFrame::CancelOrder(m) => format!("{:?}", m.to_message()),
        ClientFrame::ReplaceOrder(m) => format!("{:?}", m.to_message()),
        ClientFrame::MassCancel(m) => format!("{:?}", m.to_message()),
    })
}

fn real_gateway(frame: &[u8]) -> Option<String> {
    Some(match wire::decode_gateway(frame).ok()? {
        GatewayFrame::LogonAck(m) => format!("{:?}", m.to_message()),
        GatewayFrame::LogonReject(m) => format!("{:?}", m.to_message()),
        GatewayFrame::Heartbeat(m) => format!("{:?}", m.to_message()),
        GatewayFrame::Terminate(m) => format!("{:?}", m.to_message()),
        GatewayFrame::OrderAccepted(m) => format!("{:?}", m.to_message()),
        GatewayFrame::OrderRejected(m) => format!("{:?}", m.to_message()),
        GatewayFrame::OrderCanceled(m) => format!("{:?}", m.to_message()),
        GatewayFrame::OrderReplaced(m) => format!("{:?}", m.to_message()),
        GatewayFrame::Fill(m) => format!("{:?}", m.to_message()),
        GatewayFrame::MassCancelAck(m) => format!("{:?}", m.to_message()),
    })
}

fuzz_target!(|data: &[u8]| {
    // Most random inputs fail the header at once; steer half of them onto
    // a valid header of a template the first byte picks, so the field
    // comparisons run too.
    let mut steered;
    let frame = if data.first().is_some_and(|b| b & 1 == 1) && data.len() > 1 {
        let t = &TEMPLATES[data[1] as usize % TEMPLATES.len()];
        steered = data[2.min(data.len())..].to_vec();
        steered.resize(t.size, 0);
        steered[0..2].copy_from_slice(&(t.size as u16).to_le_bytes());
        steered[2..4].copy_from_slice(&0xCAFEu16.to_le_bytes());
        steered[4..6].copy_from_slice(&((t.size - 12) as u16).to_le_bytes());
        steered[6..8].copy_from_slice(&t.id.to_le_bytes());
        steered[8..10].copy_from_slice(&0x4F47u16.to_le_bytes());
        steered[10..12].copy_from_slice(&1u16.to_le_bytes());
        &steered[..]
    } else {
        data
    };
    assert_eq!(
        real_client(frame),
        reference(frame, true),
        "client {frame:02x?}"
    );
    assert_eq!(
        real_gateway(frame),
        reference(frame, false),
        "gateway {frame:02x?}"
    );
    // The length prefix check agrees with the full decode on what a prefix
    // above the largest or below the smallest template means.
    if let Ok(Some(size)) = wire::frame_size(frame) {
        assert!((32..=84).contains(&size));
    }
});
