//! API keys and their secrets: the key table loaded from the keys file.

pub mod keys;
pub mod secret;
