//! OGP v1 frames (see docs/PROTOCOL.md). Layouts, decode and encode: pure
//! functions over byte slices.

pub mod codes;

pub const HEADER_SIZE: usize = 12;
pub const LOGON_SIZE: usize = 80;
pub const LOGON_ACK_SIZE: usize = 72;
pub const LOGON_REJECT_SIZE: usize = 32;
pub const HEARTBEAT_SIZE: usize = 36;
pub const LOGOUT_SIZE: usize = 44;
pub const TERMINATE_SIZE: usize = 44;
pub const NEW_ORDER_SIZE: usize = 64;
pub const CANCEL_ORDER_SIZE: usize = 60;
pub const REPLACE_ORDER_SIZE: usize = 68;
pub const MASS_CANCEL_SIZE: usize = 52;
pub const ORDER_ACCEPTED_SIZE: usize = 60;
pub const ORDER_REJECTED_SIZE: usize = 64;
pub const ORDER_CANCELED_SIZE: usize = 68;
pub const ORDER_REPLACED_SIZE: usize = 68;
pub const FILL_SIZE: usize = 84;
pub const MASS_CANCEL_ACK_SIZE: usize = 60;
