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
//! Layers, each importing only from the rows below it or along an arrow in
//! its row (README, "Crates and modules"):
//!
//! ```text
//!  link (CommandTx/EventRx/…: in-process rings or shm_ring; records)
//!  session (state machine, shared, counters, tx, listing)   client
//!  limits (rate cells, nonce caches, floors)   audit (event, format, sink, anchor)
//!  engine (records, Engine trait; book, risk, agent)
//!  auth (keys → policy, secret;  session_keys → tag → sha_ni)
//!  ring → sync   rng                        hand-off and randomness
//!  constants                                every limit, with its reason
//!  wire (codes)                             the OGP v1 protocol
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

pub mod audit;
pub mod auth;
pub mod client;
pub mod constants;
pub mod engine;
pub mod limits;
pub mod link;
pub mod ring;
pub mod rng;
pub mod session;
pub mod sync;
pub mod wire;
