//! ordergate: an order-entry gateway for colocated trading.
//!
//! This crate is the runtime: the io_uring reactors, the keys-file and
//! config loading, the journal's storage and thread, the stats file, the
//! Prometheus endpoint, the admin socket and the `ordergate` commands. The
//! sans-I/O core (wire codec, tags and keys, limits, the session state
//! machine, the engine, rings, audit events) is the `ordergate-core` crate:
//! it takes bytes and a `now` and returns bytes and engine commands; only
//! `reactor` touches sockets, rings and clocks. The blocking TCP client is
//! `ordergate-client`. The load generator, sweep, comparison, echo
//! baseline, plots and demo are the `ordergate-bench` package (the
//! repository's root), which depends on this one and never the other way.
//! README, "Crates and modules", draws the map.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod admin;
pub mod args;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod journal;
pub mod keys_file;
pub mod link_shm;
pub mod reactor;
pub mod sys;
pub mod telemetry;
pub mod waits;

// Compatibility: the modules that moved to `ordergate-core`,
// `ordergate-os` and `ordergate-client` (issue 11) are re-exported at their old paths, so
// `ordergate::wire`, `ordergate::session`, … and the tests, benches and fuzz
// targets written against them keep working. New code may name the crates
// directly.
pub use ordergate_core::{client, constants, engine, limits, link, ring, rng, session, sync, wire};
pub use ordergate_os::{clock, files};

/// Authentication (compatibility path; the code is
/// `ordergate_core::auth`), plus the keys-file loader that stays here
/// because it reads a file ([`crate::keys_file`]).
pub mod auth {
    #[cfg(target_arch = "x86_64")]
    pub use ordergate_core::auth::sha_ni;
    pub use ordergate_core::auth::{policy, secret, session_keys, tag};

    /// `ordergate_core::auth::keys`, and [`KeysFile`](crate::keys_file::KeysFile)
    /// for `KeyTable::load`.
    pub mod keys {
        pub use crate::keys_file::KeysFile;
        pub use ordergate_core::auth::keys::*;
    }
}

/// The blocking TCP client (compatibility path; the code is
/// `ordergate_client::blocking`), and the test gateway the runtime's own
/// unit tests connect it to.
pub mod net_client {
    pub use ordergate_client::blocking::*;

    /// The std-socket gateway unit tests connect the client to (here and,
    /// with the `test-gateway` feature, in `ordergate-bench`).
    #[cfg(any(test, feature = "test-gateway"))]
    pub mod test_gateway;
    #[cfg(test)]
    mod tests;
}
