//! OGP v1 frames: layouts, decode and encode. Pure functions over byte slices;
//! nothing here allocates, reads a clock or touches a socket.
//!
//! Every frame is a Simple Open Framing Header plus an SBE 1.0 message header,
//! then one fixed-size root block; all integers little-endian
//! (docs/PROTOCOL.md has the full contract, `schema/ogp-v1.xml` the SBE
//! schema, and `tests/sbe_schema.rs` checks these layouts against it).
//!
//! ```text
//!  0              2              4              6              8              10             12
//!  ├──────────────┼──────────────┼──────────────┼──────────────┼──────────────┼──────────────┤
//!  │ message_size │ encoding 0xCAFE │ block_length │ template_id │ schema 0x4F47 │ version 1   │
//!  ├──────────────┴──────────────┴──────────────┴──────────────┴──────────────┴──────────────┤
//!  │ root block: fixed fields of the template (block_length = message_size − 12 bytes)        │
//!  │ … seq u64 at 12 in every tagged message …                                                │
//!  ├────────────────────────────────────────────────────────────────────────────────────────┤
//!  │ mac: HMAC-SHA-256-128 over every byte before it (16 bytes; not in Logon / LogonReject)   │
//!  └────────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Decoding is in place: [`decode_client`] and [`decode_gateway`] check the
//! header against the template and return a *view* over the caller's bytes
//! whose accessors read each field at its fixed offset. Encoding writes a
//! message struct into the caller's buffer; the tag is sealed afterwards by
//! `auth::TagKey::seal` over the same bytes.
//!
//! A frame is accepted only if `message_size`, `block_length`,
//! `encoding_type`, `schema_id` and `version` all agree exactly with its
//! template; there is no skipping of unknown messages. Each disagreement has
//! its own [`DecodeError`] naming the field and both values.

use std::fmt;

pub mod codes;

/// Bytes of SOFH + SBE message header.
pub const HEADER_SIZE: usize = 12;
/// SOFH encoding type of SBE 1.0 little-endian.
pub const ENCODING_TYPE: u16 = 0xCAFE;
/// SBE schema id of OGP ("OG" little-endian).
pub const SCHEMA_ID: u16 = 0x4F47;
/// SBE schema version.
pub const SCHEMA_VERSION: u16 = 1;
/// Bytes of the truncated HMAC tag that ends every tagged message.
pub const MAC_SIZE: usize = 16;
/// Offset of `seq` in every tagged message.
pub const SEQ_OFFSET: usize = 12;

/// A fixed-size field type on the wire.
pub trait WireField: Copy {
    /// Bytes on the wire.
    const LEN: usize;
    /// The SBE primitive type (arrays: the element type; see `SBE_LENGTH`).
    const SBE_TYPE: &'static str;
    /// Elements for an SBE array type, 1 for a scalar.
    const SBE_LENGTH: usize;
    fn read(buf: &[u8], offset: usize) -> Self;
    fn write(self, buf: &mut [u8], offset: usize);
}

macro_rules! int_field {
    ($t:ty, $sbe:literal) => {
        impl WireField for $t {
            const LEN: usize = std::mem::size_of::<$t>();
            const SBE_TYPE: &'static str = $sbe;
            const SBE_LENGTH: usize = 1;
            #[inline(always)]
            fn read(buf: &[u8], offset: usize) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(&buf[offset..offset + Self::LEN]);
                <$t>::from_le_bytes(b)
            }
            #[inline(always)]
            fn write(self, buf: &mut [u8], offset: usize) {
                buf[offset..offset + Self::LEN].copy_from_slice(&self.to_le_bytes());
            }
        }
    };
}
int_field!(u8, "uint8");
int_field!(u16, "uint16");
int_field!(u32, "uint32");
int_field!(u64, "uint64");
int_field!(i64, "int64");

impl<const N: usize> WireField for [u8; N] {
    const LEN: usize = N;
    const SBE_TYPE: &'static str = "uint8";
    const SBE_LENGTH: usize = N;
    #[inline(always)]
    fn read(buf: &[u8], offset: usize) -> Self {
        let mut b = [0u8; N];
        b.copy_from_slice(&buf[offset..offset + N]);
        b
    }
    #[inline(always)]
    fn write(self, buf: &mut [u8], offset: usize) {
        buf[offset..offset + N].copy_from_slice(&self);
    }
}

/// One field of a message layout: what the SBE schema test compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldLayout {
    pub name: &'static str,
    pub offset: usize,
    pub len: usize,
    pub sbe_type: &'static str,
    pub sbe_length: usize,
}

/// The layout of one message template.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub name: &'static str,
    pub template_id: u16,
    pub size: usize,
    /// Where the 16-byte tag starts, or `None` for the two untagged messages.
    pub mac_offset: Option<usize>,
    /// Fields in offset order, header and tag excluded. Gaps are `pad` bytes.
    pub fields: &'static [FieldLayout],
}

impl Layout {
    /// Compile-time proof that a layout is well formed: fields start after
    /// the header, ascend without overlap, end before the tag, the tag is the
    /// last 16 bytes, and tagged messages carry `seq` at offset 12 — except
    /// LogonAck, which carries it at 48.
    pub const fn check(&self) {
        assert!(self.size >= HEADER_SIZE);
        let body_end = match self.mac_offset {
            Some(mac) => {
                assert!(mac + MAC_SIZE == self.size);
                let seq = if self.template_id == 2 { 6 } else { 0 };
                assert!(self.fields.len() > seq);
                assert!(self.fields[seq].len == 8);
                let name = self.fields[seq].name.as_bytes();
                assert!(name.len() == 3 && name[0] == b's' && name[1] == b'e' && name[2] == b'q');
                assert!(self.template_id == 2 || self.fields[seq].offset == SEQ_OFFSET);
                mac
            }
            None => self.size,
        };
        let mut end = HEADER_SIZE;
        let mut i = 0;
        while i < self.fields.len() {
            assert!(self.fields[i].offset >= end);
            end = self.fields[i].offset + self.fields[i].len;
            i += 1;
        }
        assert!(end <= body_end);
    }
}

/// Writes the 12-byte header of `layout` into `buf`.
#[inline(always)]
fn write_header(buf: &mut [u8], layout: &Layout) {
    (layout.size as u16).write(buf, 0);
    ENCODING_TYPE.write(buf, 2);
    ((layout.size - HEADER_SIZE) as u16).write(buf, 4);
    layout.template_id.write(buf, 6);
    SCHEMA_ID.write(buf, 8);
    SCHEMA_VERSION.write(buf, 10);
}

macro_rules! message {
    (
        $(#[$meta:meta])*
        $name:ident, $view:ident, template $tid:literal, size $size:literal, mac $mac:expr;
        { $($field:ident : $ty:ty = $off:literal),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
        pub struct $name { $(pub $field: $ty),* }

        impl $name {
            pub const TEMPLATE_ID: u16 = $tid;
            pub const SIZE: usize = $size;
            pub const LAYOUT: Layout = Layout {
                name: stringify!($name),
                template_id: $tid,
                size: $size,
                mac_offset: $mac,
                fields: &[$(FieldLayout {
                    name: stringify!($field),
                    offset: $off,
                    len: <$ty as WireField>::LEN,
                    sbe_type: <$ty as WireField>::SBE_TYPE,
                    sbe_length: <$ty as WireField>::SBE_LENGTH,
                }),*],
            };

            /// Writes the whole frame into `buf`: header, fields, zero pad
            /// bytes and (for tagged messages) a zero tag to be sealed.
            #[inline]
            pub fn encode(&self, buf: &mut [u8; $size]) {
                *buf = [0u8; $size];
                write_header(buf, &Self::LAYOUT);
                $(self.$field.write(buf, $off);)*
            }

            /// The whole frame in a fresh array (tests, tools).
            pub fn to_bytes(&self) -> [u8; $size] {
                let mut buf = [0u8; $size];
                self.encode(&mut buf);
                buf
            }
        }

        const _: () = $name::LAYOUT.check();

        #[doc = concat!("A checked ", stringify!($name), " frame, read in place.")]
        #[derive(Clone, Copy, Debug)]
        pub struct $view<'a>(&'a [u8; $size]);

        impl<'a> $view<'a> {
            $(
                #[inline(always)]
                pub fn $field(&self) -> $ty { <$ty as WireField>::read(self.0, $off) }
            )*

            /// The frame's bytes.
            #[inline(always)]
            pub fn bytes(&self) -> &'a [u8; $size] { self.0 }

            /// Every field, copied out.
            pub fn to_message(&self) -> $name {
                $name { $($field: self.$field()),* }
            }
        }
    };
}

message! {
    /// Client → gateway, template 1. Signed with the API secret over bytes 0..48.
    Logon, LogonView, template 1, size 80, mac None;
    {
        key_id: u64 = 12,
        request_time_ns: u64 = 20,
        client_nonce: [u8; 16] = 28,
        keepalive_ms: u16 = 44,
        environment: u8 = 46,
        flags: u8 = 47,
        signature: [u8; 32] = 48,
    }
}

message! {
    /// Gateway → client, template 2: the session is open. Its tag proves the
    /// gateway holds the secret.
    LogonAck, LogonAckView, template 2, size 72, mac Some(56);
    {
        session_id: u64 = 12,
        server_time_ns: u64 = 20,
        server_nonce: [u8; 16] = 28,
        keepalive_ms: u16 = 44,
        scopes: u8 = 46,
        environment: u8 = 47,
        seq: u64 = 48,
    }
}

message! {
    /// Gateway → client, template 3, untagged: the logon failed; the gateway closes.
    LogonReject, LogonRejectView, template 3, size 32, mac None;
    {
        reason: u16 = 12,
        server_time_ns: u64 = 20,
    }
}

message! {
    /// Both directions, template 4.
    Heartbeat, HeartbeatView, template 4, size 36, mac Some(20);
    { seq: u64 = 12 }
}

message! {
    /// Client → gateway, template 5: answered by Terminate LOGOUT.
    Logout, LogoutView, template 5, size 44, mac Some(28);
    { seq: u64 = 12, reason: u16 = 20 }
}

message! {
    /// Gateway → client, template 6: the session ends; the gateway closes.
    Terminate, TerminateView, template 6, size 44, mac Some(28);
    { seq: u64 = 12, reason: u16 = 20 }
}

message! {
    /// Client → gateway, template 10.
    NewOrder, NewOrderView, template 10, size 64, mac Some(48);
    {
        seq: u64 = 12,
        cl_ord_id: u64 = 20,
        price: i64 = 28,
        qty: u32 = 36,
        instrument_id: u32 = 40,
        side: u8 = 44,
        ord_type: u8 = 45,
        tif: u8 = 46,
    }
}

message! {
    /// Client → gateway, template 11.
    CancelOrder, CancelOrderView, template 11, size 60, mac Some(44);
    {
        seq: u64 = 12,
        cl_ord_id: u64 = 20,
        orig_cl_ord_id: u64 = 28,
        instrument_id: u32 = 36,
    }
}

message! {
    /// Client → gateway, template 12.
    ReplaceOrder, ReplaceOrderView, template 12, size 68, mac Some(52);
    {
        seq: u64 = 12,
        cl_ord_id: u64 = 20,
        orig_cl_ord_id: u64 = 28,
        price: i64 = 36,
        qty: u32 = 44,
        instrument_id: u32 = 48,
    }
}

message! {
    /// Client → gateway, template 13. instrument_id 0 = all, side 0 = both.
    MassCancel, MassCancelView, template 13, size 52, mac Some(36);
    {
        seq: u64 = 12,
        cl_ord_id: u64 = 20,
        instrument_id: u32 = 28,
        side: u8 = 32,
    }
}

message! {
    /// Gateway → client, template 20.
    OrderAccepted, OrderAcceptedView, template 20, size 60, mac Some(44);
    {
        seq: u64 = 12,
        cl_ord_id: u64 = 20,
        order_id: u64 = 28,
        transact_time_ns: u64 = 36,
    }
}

message! {
    /// Gateway → client, template 21.
    OrderRejected, OrderRejectedView, template 21, size 64, mac Some(48);
    {
        seq: u64 = 12,
        cl_ord_id: u64 = 20,
        transact_time_ns: u64 = 28,
        retry_after_ns: u64 = 36,
        reason: u16 = 44,
    }
}

message! {
    /// Gateway → client, template 22.
    OrderCanceled, OrderCanceledView, template 22, size 68, mac Some(52);
    {
        seq: u64 = 12,
        cl_ord_id: u64 = 20,
        order_id: u64 = 28,
        transact_time_ns: u64 = 36,
        canceled_qty: u32 = 44,
        reason: u16 = 48,
    }
}

message! {
    /// Gateway → client, template 23.
    OrderReplaced, OrderReplacedView, template 23, size 68, mac Some(52);
    {
        seq: u64 = 12,
        cl_ord_id: u64 = 20,
        order_id: u64 = 28,
        transact_time_ns: u64 = 36,
        leaves_qty: u32 = 44,
    }
}

message! {
    /// Gateway → client, template 24.
    Fill, FillView, template 24, size 84, mac Some(68);
    {
        seq: u64 = 12,
        cl_ord_id: u64 = 20,
        order_id: u64 = 28,
        exec_id: u64 = 36,
        transact_time_ns: u64 = 44,
        fill_price: i64 = 52,
        fill_qty: u32 = 60,
        leaves_qty: u32 = 64,
    }
}

message! {
    /// Gateway → client, template 25.
    MassCancelAck, MassCancelAckView, template 25, size 60, mac Some(44);
    {
        seq: u64 = 12,
        cl_ord_id: u64 = 20,
        transact_time_ns: u64 = 28,
        canceled_count: u32 = 36,
    }
}

pub const LOGON_SIZE: usize = Logon::SIZE;
pub const LOGON_ACK_SIZE: usize = LogonAck::SIZE;
pub const LOGON_REJECT_SIZE: usize = LogonReject::SIZE;
pub const HEARTBEAT_SIZE: usize = Heartbeat::SIZE;
pub const LOGOUT_SIZE: usize = Logout::SIZE;
pub const TERMINATE_SIZE: usize = Terminate::SIZE;
pub const NEW_ORDER_SIZE: usize = NewOrder::SIZE;
pub const CANCEL_ORDER_SIZE: usize = CancelOrder::SIZE;
pub const REPLACE_ORDER_SIZE: usize = ReplaceOrder::SIZE;
pub const MASS_CANCEL_SIZE: usize = MassCancel::SIZE;
pub const ORDER_ACCEPTED_SIZE: usize = OrderAccepted::SIZE;
pub const ORDER_REJECTED_SIZE: usize = OrderRejected::SIZE;
pub const ORDER_CANCELED_SIZE: usize = OrderCanceled::SIZE;
pub const ORDER_REPLACED_SIZE: usize = OrderReplaced::SIZE;
pub const FILL_SIZE: usize = Fill::SIZE;
pub const MASS_CANCEL_ACK_SIZE: usize = MassCancelAck::SIZE;

/// Largest frame of any template (Fill), and the smallest (LogonReject):
/// facts of the protocol, which the framing check below enforces.
/// `constants::FRAME_SIZE_MAX`/`MIN` are these, with why the gateway bounds
/// a frame by them. (Defined here so that the codec needs nothing above it.)
pub const FRAME_SIZE_MAX: usize = FILL_SIZE;
pub const FRAME_SIZE_MIN: usize = LOGON_REJECT_SIZE;

/// Bytes covered by the Logon signature.
pub const LOGON_SIGNED_LEN: usize = 48;

/// Every template, client's then gateway's (Heartbeat once).
pub const LAYOUTS: &[Layout] = &[
    Logon::LAYOUT,
    Heartbeat::LAYOUT,
    Logout::LAYOUT,
    NewOrder::LAYOUT,
    CancelOrder::LAYOUT,
    ReplaceOrder::LAYOUT,
    MassCancel::LAYOUT,
    LogonAck::LAYOUT,
    LogonReject::LAYOUT,
    Terminate::LAYOUT,
    OrderAccepted::LAYOUT,
    OrderRejected::LAYOUT,
    OrderCanceled::LAYOUT,
    OrderReplaced::LAYOUT,
    Fill::LAYOUT,
    MassCancelAck::LAYOUT,
];

/// The hot-path messages whose tagged region must fit one SHA-256 block
/// after padding (≤ 55 bytes), so a tag costs two compressions.
const _: () = assert!(NewOrder::SIZE - MAC_SIZE <= 55);
const _: () = assert!(CancelOrder::SIZE - MAC_SIZE <= 55);
const _: () = assert!(OrderAccepted::SIZE - MAC_SIZE <= 55);
const _: () = assert!(OrderRejected::SIZE - MAC_SIZE <= 55);
const _: () = assert!(Heartbeat::SIZE - MAC_SIZE <= 55);
const _: () = assert!(MassCancel::SIZE - MAC_SIZE <= 55);

/// Why a frame was refused. Every variant names the field at fault and the
/// values seen and expected, so the reject or log line says exactly what was
/// wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// `message_size` is smaller than the 12-byte header.
    SizeBelowHeader {
        size: u16,
    },
    /// `message_size` is larger than any template's size: refused before
    /// buffering the rest.
    SizeAboveMax {
        size: u16,
    },
    /// `message_size` is in range but smaller than any template's size.
    SizeBelowMin {
        size: u16,
    },
    /// The slice handed to the decoder is not exactly `message_size` long.
    LengthMismatch {
        size: u16,
        len: usize,
    },
    EncodingType {
        found: u16,
    },
    SchemaId {
        found: u16,
    },
    Version {
        found: u16,
    },
    /// No template has this id.
    UnknownTemplate {
        template_id: u16,
    },
    /// The template exists but is never sent in this direction (e.g. a
    /// client sending OrderAccepted).
    WrongDirection {
        template_id: u16,
    },
    /// `message_size` disagrees with the template's fixed size.
    SizeMismatch {
        template_id: u16,
        size: u16,
        expected: u16,
    },
    /// `block_length` disagrees with the template's block length.
    BlockLength {
        template_id: u16,
        found: u16,
        expected: u16,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::SizeBelowHeader { size } => {
                write!(
                    f,
                    "message_size {size} is below the {HEADER_SIZE}-byte header"
                )
            }
            DecodeError::SizeAboveMax { size } => write!(
                f,
                "message_size {size} is above the largest template ({} bytes)",
                FRAME_SIZE_MAX
            ),
            DecodeError::SizeBelowMin { size } => write!(
                f,
                "message_size {size} is below the smallest template ({} bytes)",
                FRAME_SIZE_MIN
            ),
            DecodeError::LengthMismatch { size, len } => {
                write!(
                    f,
                    "message_size {size} but {len} bytes were handed to the decoder"
                )
            }
            DecodeError::EncodingType { found } => {
                write!(
                    f,
                    "encoding_type {found:#06x}, expected {ENCODING_TYPE:#06x}"
                )
            }
            DecodeError::SchemaId { found } => {
                write!(f, "schema_id {found:#06x}, expected {SCHEMA_ID:#06x}")
            }
            DecodeError::Version { found } => {
                write!(f, "version {found}, expected {SCHEMA_VERSION}")
            }
            DecodeError::UnknownTemplate { template_id } => {
                write!(f, "unknown template_id {template_id}")
            }
            DecodeError::WrongDirection { template_id } => {
                write!(f, "template_id {template_id} is not sent in this direction")
            }
            DecodeError::SizeMismatch {
                template_id,
                size,
                expected,
            } => write!(
                f,
                "message_size {size} disagrees with template {template_id} ({expected} bytes)"
            ),
            DecodeError::BlockLength {
                template_id,
                found,
                expected,
            } => write!(
                f,
                "block_length {found} disagrees with template {template_id} ({expected})"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads the length prefix of the frame starting at `buf[0]`.
///
/// `Ok(None)` while fewer than 2 bytes are there; `Err` as soon as the prefix
/// is outside every template's size, so a stream reassembler never buffers
/// bytes of a frame that can never be valid.
#[inline]
pub fn frame_size(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let size = u16::read(buf, 0);
    if (size as usize) < HEADER_SIZE {
        return Err(DecodeError::SizeBelowHeader { size });
    }
    if size as usize > FRAME_SIZE_MAX {
        return Err(DecodeError::SizeAboveMax { size });
    }
    if (size as usize) < FRAME_SIZE_MIN {
        return Err(DecodeError::SizeBelowMin { size });
    }
    Ok(Some(size as usize))
}

/// Checks the header of exactly one frame against `layout`.
#[inline(always)]
fn check_header(frame: &[u8], layout: &Layout) -> Result<(), DecodeError> {
    let size = u16::read(frame, 0);
    if size as usize != layout.size {
        return Err(DecodeError::SizeMismatch {
            template_id: layout.template_id,
            size,
            expected: layout.size as u16,
        });
    }
    let block_length = u16::read(frame, 4);
    if block_length as usize != layout.size - HEADER_SIZE {
        return Err(DecodeError::BlockLength {
            template_id: layout.template_id,
            found: block_length,
            expected: (layout.size - HEADER_SIZE) as u16,
        });
    }
    Ok(())
}

/// Checks what every frame shares: exact length, encoding, schema, version.
/// Returns the template id.
#[inline(always)]
fn check_common(frame: &[u8]) -> Result<u16, DecodeError> {
    let Some(size) = frame_size(frame)? else {
        return Err(DecodeError::LengthMismatch {
            size: 0,
            len: frame.len(),
        });
    };
    if frame.len() != size {
        return Err(DecodeError::LengthMismatch {
            size: size as u16,
            len: frame.len(),
        });
    }
    let encoding = u16::read(frame, 2);
    if encoding != ENCODING_TYPE {
        return Err(DecodeError::EncodingType { found: encoding });
    }
    let schema = u16::read(frame, 8);
    if schema != SCHEMA_ID {
        return Err(DecodeError::SchemaId { found: schema });
    }
    let version = u16::read(frame, 10);
    if version != SCHEMA_VERSION {
        return Err(DecodeError::Version { found: version });
    }
    Ok(u16::read(frame, 6))
}

macro_rules! view {
    ($frame:ident, $msg:ident, $view:ident) => {{
        check_header($frame, &$msg::LAYOUT)?;
        // The header check proved the length; the conversion cannot fail.
        $view($frame.try_into().map_err(|_| DecodeError::LengthMismatch {
            size: $msg::SIZE as u16,
            len: $frame.len(),
        })?)
    }};
}

/// A frame a client sends, checked and viewed in place.
#[derive(Clone, Copy, Debug)]
pub enum ClientFrame<'a> {
    Logon(LogonView<'a>),
    Heartbeat(HeartbeatView<'a>),
    Logout(LogoutView<'a>),
    NewOrder(NewOrderView<'a>),
    CancelOrder(CancelOrderView<'a>),
    ReplaceOrder(ReplaceOrderView<'a>),
    MassCancel(MassCancelView<'a>),
}

/// A frame the gateway sends, checked and viewed in place.
#[derive(Clone, Copy, Debug)]
pub enum GatewayFrame<'a> {
    LogonAck(LogonAckView<'a>),
    LogonReject(LogonRejectView<'a>),
    Heartbeat(HeartbeatView<'a>),
    Terminate(TerminateView<'a>),
    OrderAccepted(OrderAcceptedView<'a>),
    OrderRejected(OrderRejectedView<'a>),
    OrderCanceled(OrderCanceledView<'a>),
    OrderReplaced(OrderReplacedView<'a>),
    Fill(FillView<'a>),
    MassCancelAck(MassCancelAckView<'a>),
}

fn is_template(id: u16) -> bool {
    LAYOUTS.iter().any(|l| l.template_id == id)
}

/// Decodes exactly one frame sent by a client (the slice must be the whole
/// frame, `message_size` bytes). The tag is not checked here.
#[inline]
pub fn decode_client(frame: &[u8]) -> Result<ClientFrame<'_>, DecodeError> {
    let template_id = check_common(frame)?;
    Ok(match template_id {
        NewOrder::TEMPLATE_ID => ClientFrame::NewOrder(view!(frame, NewOrder, NewOrderView)),
        CancelOrder::TEMPLATE_ID => {
            ClientFrame::CancelOrder(view!(frame, CancelOrder, CancelOrderView))
        }
        ReplaceOrder::TEMPLATE_ID => {
            ClientFrame::ReplaceOrder(view!(frame, ReplaceOrder, ReplaceOrderView))
        }
        MassCancel::TEMPLATE_ID => {
            ClientFrame::MassCancel(view!(frame, MassCancel, MassCancelView))
        }
        Heartbeat::TEMPLATE_ID => ClientFrame::Heartbeat(view!(frame, Heartbeat, HeartbeatView)),
        Logout::TEMPLATE_ID => ClientFrame::Logout(view!(frame, Logout, LogoutView)),
        Logon::TEMPLATE_ID => ClientFrame::Logon(view!(frame, Logon, LogonView)),
        id if is_template(id) => return Err(DecodeError::WrongDirection { template_id: id }),
        id => return Err(DecodeError::UnknownTemplate { template_id: id }),
    })
}

/// Decodes exactly one frame sent by the gateway (client side).
pub fn decode_gateway(frame: &[u8]) -> Result<GatewayFrame<'_>, DecodeError> {
    let template_id = check_common(frame)?;
    Ok(match template_id {
        LogonAck::TEMPLATE_ID => GatewayFrame::LogonAck(view!(frame, LogonAck, LogonAckView)),
        LogonReject::TEMPLATE_ID => {
            GatewayFrame::LogonReject(view!(frame, LogonReject, LogonRejectView))
        }
        Heartbeat::TEMPLATE_ID => GatewayFrame::Heartbeat(view!(frame, Heartbeat, HeartbeatView)),
        Terminate::TEMPLATE_ID => GatewayFrame::Terminate(view!(frame, Terminate, TerminateView)),
        OrderAccepted::TEMPLATE_ID => {
            GatewayFrame::OrderAccepted(view!(frame, OrderAccepted, OrderAcceptedView))
        }
        OrderRejected::TEMPLATE_ID => {
            GatewayFrame::OrderRejected(view!(frame, OrderRejected, OrderRejectedView))
        }
        OrderCanceled::TEMPLATE_ID => {
            GatewayFrame::OrderCanceled(view!(frame, OrderCanceled, OrderCanceledView))
        }
        OrderReplaced::TEMPLATE_ID => {
            GatewayFrame::OrderReplaced(view!(frame, OrderReplaced, OrderReplacedView))
        }
        Fill::TEMPLATE_ID => GatewayFrame::Fill(view!(frame, Fill, FillView)),
        MassCancelAck::TEMPLATE_ID => {
            GatewayFrame::MassCancelAck(view!(frame, MassCancelAck, MassCancelAckView))
        }
        id if is_template(id) => return Err(DecodeError::WrongDirection { template_id: id }),
        id => return Err(DecodeError::UnknownTemplate { template_id: id }),
    })
}

/// `seq` of a tagged frame at offset 12: every tagged template but LogonAck
/// (whose `seq` is at 48; read it with `LogonAckView::seq`).
#[inline(always)]
pub fn seq_of(frame: &[u8]) -> u64 {
    u64::read(frame, SEQ_OFFSET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_has_a_unique_template_id_and_the_documented_size() {
        let expected: &[(u16, usize)] = &[
            (1, 80),
            (4, 36),
            (5, 44),
            (10, 64),
            (11, 60),
            (12, 68),
            (13, 52),
            (2, 72),
            (3, 32),
            (6, 44),
            (20, 60),
            (21, 64),
            (22, 68),
            (23, 68),
            (24, 84),
            (25, 60),
        ];
        let got: Vec<(u16, usize)> = LAYOUTS.iter().map(|l| (l.template_id, l.size)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn frame_size_refuses_impossible_prefixes_before_the_frame_arrives() {
        assert_eq!(frame_size(&[0x40]), Ok(None));
        assert_eq!(frame_size(&[0x40, 0x00]), Ok(Some(64)));
        assert_eq!(
            frame_size(&[11, 0]),
            Err(DecodeError::SizeBelowHeader { size: 11 })
        );
        assert_eq!(
            frame_size(&[85, 0]),
            Err(DecodeError::SizeAboveMax { size: 85 })
        );
        assert_eq!(
            frame_size(&[31, 0]),
            Err(DecodeError::SizeBelowMin { size: 31 })
        );
    }

    #[test]
    fn client_decoder_refuses_gateway_templates_by_direction() {
        let ack = OrderAccepted {
            seq: 1,
            ..Default::default()
        }
        .to_bytes();
        assert_eq!(
            decode_client(&ack).unwrap_err(),
            DecodeError::WrongDirection { template_id: 20 }
        );
        let order = NewOrder {
            seq: 1,
            ..Default::default()
        }
        .to_bytes();
        assert_eq!(
            decode_gateway(&order).unwrap_err(),
            DecodeError::WrongDirection { template_id: 10 }
        );
    }

    #[test]
    fn version_and_size_template_disagreement_are_named() {
        let mut hb = Heartbeat { seq: 3 }.to_bytes();
        hb[10] = 2;
        assert_eq!(
            decode_client(&hb).unwrap_err(),
            DecodeError::Version { found: 2 }
        );
        // A Heartbeat header on a 44-byte frame.
        let mut lo = Logout { seq: 1, reason: 0 }.to_bytes();
        lo[6] = 4;
        assert_eq!(
            decode_client(&lo).unwrap_err(),
            DecodeError::SizeMismatch {
                template_id: 4,
                size: 44,
                expected: 36
            }
        );
        assert_eq!(
            decode_client(&lo[..40]).unwrap_err(),
            DecodeError::LengthMismatch { size: 44, len: 40 }
        );
    }
}
