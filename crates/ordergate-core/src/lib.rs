//! ordergate-core: the sans-I/O heart of the ordergate gateway.
//!
//! Everything here takes bytes and a `now` and returns bytes, engine
//! commands and audit events; nothing opens a socket or a file, reads a
//! clock (`clippy.toml` bans `Instant::now` and `SystemTime::now` in this
//! crate) or asks the kernel for anything. The runtime that does — the
//! io_uring reactors, the keys-file loader, the journal's storage, the
//! stats file — is the `ordergate` crate; the blocking TCP client firms
//! link is `ordergate-client`.
//!
//! Layers, each importing only from those below it (README, "Crates and
//! modules"):
//!
//! ```text
//!  client  session                         the two ends of a session
//!  engine (book, risk, agent)  limits      matching and admission
//!  audit (event, format, sink)             what the journal records
//!  auth (keys → policy, tag, session_keys, secret, sha_ni)
//!  ring  sync  rng                         hand-off and randomness
//!  constants                               every limit, with its reason
//!  wire (codes)                            the OGP v1 protocol
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

pub mod audit;
pub mod auth;
pub mod client;
pub mod constants;
pub mod engine;
pub mod limits;
pub mod ring;
pub mod rng;
pub mod session;
pub mod sync;
pub mod wire;
