//! Authentication: the keys file and secrets, the logon signature, the
//! per-direction session keys and message tags.

pub mod keys;
pub mod secret;
pub mod session_keys;
pub mod tag;
