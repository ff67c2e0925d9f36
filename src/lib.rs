//! ordergate: an order-entry gateway for colocated trading.
//!
//! The sans-I/O core (`wire`, `auth`, `limits`, `session`, `engine`) takes
//! bytes and a `now` and returns bytes and engine commands; only `reactor`
//! touches sockets, rings and clocks.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod admin;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod compare;
pub mod config;
pub mod constants;
pub mod demo;
pub mod echo;
pub mod engine;
pub mod files;
pub mod gateway;
pub mod journal;
pub mod limits;
pub mod load;
pub mod net_client;
pub mod plot;
pub mod reactor;
pub mod ring;
pub mod rng;
pub mod session;
pub mod sync;
pub mod sys;
pub mod taskstat;
pub mod telemetry;
pub mod wire;
