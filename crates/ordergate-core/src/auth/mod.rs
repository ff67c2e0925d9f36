//! Authentication: the key table parsed from the keys file's text (reading
//! the file is the runtime's: `ordergate::keys_file`) and secrets, the
//! access policy of a key (addresses, validity, risk limits), the logon
//! signature, the per-direction session keys and message tags.

pub mod keys;
pub mod policy;
pub mod secret;
pub mod session_keys;
#[cfg(target_arch = "x86_64")]
pub mod sha_ni;
pub mod tag;
