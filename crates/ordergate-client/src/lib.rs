//! ordergate-client: connect a trading system to an ordergate gateway over
//! OGP v1 (docs/PROTOCOL.md).
//!
//! Two layers, use whichever fits your event loop:
//!
//! - [`session`]: the sans-I/O client session ([`ClientSession`],
//!   [`FrameReader`]). It signs the Logon, derives the session keys from
//!   the LogonAck, seals every request with the next sequence number and
//!   checks the tag and sequence of every frame from the gateway. It does
//!   no I/O: you move the bytes (an epoll loop, io_uring, a test).
//! - [`blocking`]: a small blocking client over `std::net::TcpStream`
//!   ([`Connection`]) built on that session: `connect` logs on, `send_*`
//!   writes one sealed frame, `recv` returns a checked [`Reply`]. No async
//!   runtime, no allocation per message; `recv(Duration::ZERO)` polls, so
//!   one thread can serve several sessions.
//!
//! The crate depends on `ordergate-core` (the wire codec and the HMAC
//! session keys it shares with the gateway) and `ordergate-os` (the wall
//! clock and the secret file reader) only: none of the gateway's io_uring,
//! libc or command-line dependencies.
//!
//! # Example
//!
//! Log on, send a limit order, cancel it, and read the answers (the
//! `examples/` directory has runnable versions — `logon`, `order_and_cancel`,
//! `fills` — run as `cargo run -p ordergate-client --example
//! order_and_cancel -- 127.0.0.1:9000 1001 key.hex` against an `ordergate
//! serve` set up as README's "A first run" says):
//!
//! ```no_run
//! use std::time::Duration;
//! use ordergate_client::{ConnectOptions, Connection, Order, Reply};
//! use ordergate_client::wire::codes::Side;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let addr = "127.0.0.1:9000".parse()?;
//! // The key's secret, as `ordergate keys new --secret-file key.hex` wrote it.
//! let secret = ordergate_client::read_secret_file("key.hex".as_ref())?;
//! let mut conn = Connection::connect(addr, 1001, secret, &ConnectOptions::default())?;
//! conn.send_new_order(&Order::limit(1, 1, Side::Buy, 90, 10))?; // cl_ord_id 1, instrument 1
//! conn.send_cancel(2, 1, 1)?; // cl_ord_id 2 cancels order 1 of instrument 1
//! while let Some(reply) = conn.recv(Duration::from_millis(100))? {
//!     match reply {
//!         Reply::Accepted { cl_ord_id, order_id, .. } => println!("{cl_ord_id} rests as {order_id}"),
//!         Reply::Canceled { cl_ord_id, .. } => println!("{cl_ord_id} canceled"),
//!         other => println!("{other:?}"),
//!     }
//! }
//! conn.close();
//! # Ok(())
//! # }
//! ```
//!
//! # Why the session lives in `ordergate-core`
//!
//! [`session`] re-exports `ordergate_core::client` rather than owning it:
//! the client session is the mirror of the gateway's session state machine
//! and shares its wire codec and key derivation, and keeping both ends in
//! the sans-I/O core lets the core's tests and fuzz targets drive one
//! against the other without sockets. This crate adds the I/O.

pub mod blocking;

/// The sans-I/O client session (`ordergate_core::client`).
pub use ordergate_core::client as session;
/// The OGP v1 codec and its codes (`ordergate_core::wire`): sides, order
/// types, reject and cancel reasons.
pub use ordergate_core::wire;

pub use blocking::{
    ClientError, ConnectOptions, Connection, LogonGrant, NonceSource, Order, Reply,
};
pub use ordergate_core::client::{ClientSession, FrameReader};
/// A key's secret from its 0600 file (`ordergate-os`).
pub use ordergate_os::read_secret_file;
