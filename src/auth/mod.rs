//! Authentication: message tags, logon signatures, session keys.

pub mod keys;
pub mod session_keys;
pub mod tag;
