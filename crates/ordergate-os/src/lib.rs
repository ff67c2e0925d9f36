//! ordergate-os: what ordergate asks of the operating system through
//! `std`, each in one place, for both the gateway runtime (`ordergate`)
//! and the client library (`ordergate-client`):
//!
//! - [`clock`]: the one wall clock (`wall_ns`). The sans-I/O core never
//!   reads it; its callers hand `now` in.
//! - [`files`]: the one bounded whole-file reader (`read_bounded`), for the
//!   config, the keys file, the anchor key file and secret files.
//! - [`secret_file`]: a key's secret from a 0600 file of 64 hex digits, as
//!   `ordergate keys new --secret-file` writes it.
//!
//! It sits between `ordergate-core` (which may not touch a clock or a
//! file) and the two crates that do, so neither keeps a copy of these.
//! Only `std`: no libc, no io-uring.

pub mod clock;
pub mod files;
pub mod secret_file;

pub use clock::wall_ns;
pub use files::{ReadBoundedError, read_bounded};
pub use secret_file::read_secret_file;
