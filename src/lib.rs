//! ordergate-bench: the tools that measure an ordergate gateway, apart from
//! the gateway binary so that a production host carries none of them.
//!
//! - [`load`]: the load generator behind `ordergate-bench load` (open or
//!   closed loop, one run or a capacity sweep) and the demo.
//! - [`compare`]: bare TCP echo vs ordergate vs HAProxy round trips
//!   (`ordergate-bench compare`).
//! - [`echo`]: the echo server and client both of those compare against.
//! - [`demo`]: `cargo run --release -- demo`, a gateway in process driven by
//!   [`load`] and compared with [`echo`].
//! - [`inprocess`]: the unthrottled gateway `demo` and `compare` start in
//!   process, and the CPU they run on.
//! - [`plot`]: the SVG charts `load --plot` draws.
//! - [`taskstat`]: per-thread CPU time, sleeps and syscall counts that
//!   `compare` reads from /proc and perf.
//! - [`cli`]: the command line.
//!
//! Layering (README, "Crates and modules"): this crate uses `ordergate`
//! (the runtime, for the in-process gateway of `demo` and `compare`) and
//! `ordergate-client` (the blocking client the load sessions are); nothing
//! depends on it. Inside it, each module uses only those below it:
//! `cli` → `demo`, `compare` → `inprocess`, `echo` → `load` → `plot`, and
//! `taskstat` (used by `compare` and `echo`) at the bottom.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod cli;
pub mod compare;
pub mod demo;
pub mod echo;
pub mod inprocess;
pub mod load;
pub mod plot;
pub mod taskstat;
