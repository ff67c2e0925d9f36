//! Reactors: one pinned thread per core, each with its own io_uring, its own
//! listener and a fixed slab of sessions, feeding the sans-I/O core.

pub mod core;
pub mod idle;
pub mod report;
pub mod uring;
pub mod worker;
