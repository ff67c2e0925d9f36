//! A small blocking OGP v1 client over `std::net`, on top of the sans-I/O
//! [`ClientSession`]: the demo, the load generator and the loopback tests
//! use it. No async runtime, no allocation per message.
//!
//! ```text
//!  Connection::connect ── TCP connect, TCP_NODELAY ── Logon ──▶ gateway
//!                      ◀─ LogonAck (session keys derived, tag checked)
//!                         or LogonReject → ClientError::LogonRejected
//!  send_new_order / send_cancel / … ── seal (next seq, client tag) ──▶
//!  recv(timeout) ◀── FrameReader (fixed buffer) ── tag + seq checked ── Reply
//! ```
//!
//! Every `send_*` writes one whole frame from a stack array and returns the
//! `seq` it carried. [`Connection::recv`] returns an owned, `Copy` [`Reply`]
//! once the client has checked the frame's tag and sequence number; a frame
//! that fails either is a [`ClientError::Frame`] and the connection is
//! unusable from then on (the protocol has no resynchronisation).
//!
//! `recv(Duration::ZERO)` polls: the socket is switched to non-blocking mode
//! (and stays so until a blocking `recv`), which is how the load generator
//! serves several sessions from one thread. Mode and timeout changes are
//! cached, so a steady pattern of calls makes no extra system call.
//!
//! Client nonces come from a [`NonceSource`]: by default 16 bytes read once
//! from the OS (`getrandom`) for the whole process, then a counter added to them,
//! so no two logons of one process ever repeat a nonce.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ordergate_os::clock::wall_ns;

use ordergate_core::client::{self, ClientSession, FrameReader};
use ordergate_core::session::LOGON_FLAG_CANCEL_ON_DISCONNECT;
use ordergate_core::wire::codes::{
    CancelReason, Environment, LogonRejectReason, OrdType, RejectReason, Side, TerminateReason, Tif,
};
use ordergate_core::wire::{self, GatewayFrame};

/// Bytes of a connection's receive buffer: one read takes at most this
/// (~48 of the largest frame, Fill); the rest waits in the kernel's socket
/// buffer for the next. Small, so a load run can hold thousands of sessions.
pub const RECV_BUFFER_SIZE: usize = 4 * 1024;

/// Longest a `send_*` waits for a non-blocking socket to take a frame
/// before giving up with `TimedOut` (defined in `constants` with its
/// reason).
pub use ordergate_core::constants::CLIENT_SEND_STALL_MAX as SEND_STALL_MAX;

/// Where Logon nonces come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NonceSource {
    /// The process-wide source: 16 bytes from the OS ([`read_urandom`]), read on first
    /// use, plus a counter. Never repeats within a process.
    #[default]
    Process,
    /// Exactly this nonce (tests of the replay cache).
    Fixed([u8; 16]),
}

impl NonceSource {
    /// The next nonce.
    ///
    /// # Errors
    ///
    /// The OS random source failed (first use of `Process` only).
    pub fn next(self) -> io::Result<[u8; 16]> {
        match self {
            NonceSource::Fixed(n) => Ok(n),
            NonceSource::Process => {
                static SEED: OnceLock<[u8; 16]> = OnceLock::new();
                static COUNTER: AtomicU64 = AtomicU64::new(0);
                let seed = match SEED.get() {
                    Some(seed) => *seed,
                    None => {
                        let mut fresh = [0u8; 16];
                        read_urandom(&mut fresh)?;
                        *SEED.get_or_init(|| fresh)
                    }
                };
                Ok(nonce_from(seed, COUNTER.fetch_add(1, Ordering::Relaxed)))
            }
        }
    }
}

/// `seed` with `counter` added to its low 8 bytes: distinct for every
/// counter value (2^64 of them), unpredictable to anyone without the seed.
fn nonce_from(seed: [u8; 16], counter: u64) -> [u8; 16] {
    let mut out = seed;
    let low = u64::from_le_bytes(seed[8..].try_into().expect("8 bytes")).wrapping_add(counter);
    out[8..].copy_from_slice(&low.to_le_bytes());
    out
}

/// Fills `buf` from the OS random source (the `getrandom` crate: the
/// getrandom(2) system call, or `/dev/urandom` where that is missing).
pub fn read_urandom(buf: &mut [u8]) -> io::Result<()> {
    getrandom::fill(buf).map_err(io::Error::from)
}

/// How to log on.
#[derive(Clone, Copy, Debug)]
pub struct ConnectOptions {
    /// Asked of the gateway; it must be within `KEEPALIVE_MS_MIN..=MAX`.
    pub keepalive_ms: u16,
    /// Logon flag bit 0: the gateway cancels the session's resting orders
    /// however the session ends.
    pub cancel_on_disconnect: bool,
    pub environment: Environment,
    pub nonce: NonceSource,
    /// Bound on the TCP connect, and separately on waiting for the answer
    /// to the Logon.
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            keepalive_ms: 1_000,
            cancel_on_disconnect: true,
            environment: Environment::Production,
            nonce: NonceSource::Process,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Why a connection failed or ended. Holds no secret material.
#[derive(Debug)]
pub enum ClientError {
    /// The socket failed (connect refused, reset, timed out writing…).
    Io(io::Error),
    /// The gateway answered the Logon with LogonReject. `code` is the wire
    /// reason (see [`ClientError::logon_reject_reason`]).
    LogonRejected { code: u16 },
    /// A frame from the gateway failed decoding, its tag or its sequence
    /// number. The connection is unusable.
    Frame(client::ClientError),
    /// A well-formed, authentic frame that has no place here (a second
    /// LogonAck, a LogonReject after logon, a tagged frame before logon).
    Unexpected { template_id: u16 },
    /// A reply carried a code the protocol does not define.
    UndefinedCode { field: &'static str, value: u16 },
    /// No answer to the Logon within `ConnectOptions::timeout`.
    LogonTimeout,
    /// The gateway closed the connection (after a Terminate, or without one).
    Closed,
}

impl ClientError {
    /// The LogonReject reason, when that is what this is and the code is
    /// one the protocol defines.
    pub fn logon_reject_reason(&self) -> Option<LogonRejectReason> {
        match self {
            ClientError::LogonRejected { code } => LogonRejectReason::from_wire(*code),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "socket: {e}"),
            ClientError::LogonRejected { code } => match LogonRejectReason::from_wire(*code) {
                Some(r) => write!(f, "logon rejected: {} ({code})", r.name()),
                None => write!(f, "logon rejected with undefined reason code {code}"),
            },
            ClientError::Frame(e) => write!(f, "bad frame from the gateway: {e:?}"),
            ClientError::Unexpected { template_id } => {
                write!(
                    f,
                    "unexpected frame from the gateway: template {template_id}"
                )
            }
            ClientError::UndefinedCode { field, value } => {
                write!(f, "gateway sent undefined {field} code {value}")
            }
            ClientError::LogonTimeout => write!(f, "no answer to the Logon in time"),
            ClientError::Closed => write!(f, "the gateway closed the connection"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// One checked frame from the gateway, copied out of the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    Accepted {
        cl_ord_id: u64,
        order_id: u64,
        transact_time_ns: u64,
    },
    Rejected {
        cl_ord_id: u64,
        reason: RejectReason,
        retry_after_ns: u64,
        transact_time_ns: u64,
    },
    /// `cl_ord_id` is the cancel request's own id for reason USER, the
    /// order's id for every other reason.
    Canceled {
        cl_ord_id: u64,
        order_id: u64,
        canceled_qty: u32,
        reason: CancelReason,
        transact_time_ns: u64,
    },
    /// `cl_ord_id` is the replace request's id, by which the order is now known.
    Replaced {
        cl_ord_id: u64,
        order_id: u64,
        leaves_qty: u32,
        transact_time_ns: u64,
    },
    Fill {
        cl_ord_id: u64,
        order_id: u64,
        exec_id: u64,
        price: i64,
        qty: u32,
        leaves_qty: u32,
        transact_time_ns: u64,
    },
    MassCancelAck {
        cl_ord_id: u64,
        canceled_count: u32,
        transact_time_ns: u64,
    },
    Heartbeat,
    /// The session has ended; the gateway closes the connection.
    Terminate {
        reason: TerminateReason,
    },
}

impl Reply {
    /// The `cl_ord_id` the reply carries, if any.
    pub fn cl_ord_id(&self) -> Option<u64> {
        match *self {
            Reply::Accepted { cl_ord_id, .. }
            | Reply::Rejected { cl_ord_id, .. }
            | Reply::Canceled { cl_ord_id, .. }
            | Reply::Replaced { cl_ord_id, .. }
            | Reply::Fill { cl_ord_id, .. }
            | Reply::MassCancelAck { cl_ord_id, .. } => Some(cl_ord_id),
            Reply::Heartbeat | Reply::Terminate { .. } => None,
        }
    }
}

/// A new order's fields (the `seq` and tag are the connection's business).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    pub cl_ord_id: u64,
    pub instrument_id: u32,
    pub side: Side,
    pub price: i64,
    pub qty: u32,
    pub tif: Tif,
}

impl Order {
    /// The unsealed NewOrder frame (seq 0, no tag) of this order.
    pub fn frame(&self) -> [u8; wire::NEW_ORDER_SIZE] {
        wire::NewOrder {
            seq: 0,
            cl_ord_id: self.cl_ord_id,
            price: self.price,
            qty: self.qty,
            instrument_id: self.instrument_id,
            side: self.side.wire(),
            ord_type: OrdType::Limit.wire(),
            tif: self.tif.wire(),
        }
        .to_bytes()
    }

    /// A Day limit order.
    pub fn limit(cl_ord_id: u64, instrument_id: u32, side: Side, price: i64, qty: u32) -> Order {
        Order {
            cl_ord_id,
            instrument_id,
            side,
            price,
            qty,
            tif: Tif::Day,
        }
    }
}

/// How the socket is set for reads, cached to skip redundant system calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadMode {
    NonBlocking,
    Blocking(Duration),
}

/// What the LogonAck granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogonGrant {
    pub session_id: u64,
    pub keepalive_ms: u16,
    pub scopes: u8,
    pub environment: u8,
    pub server_time_ns: u64,
}

/// A logged-on OGP session over TCP.
pub struct Connection {
    stream: TcpStream,
    session: ClientSession,
    reader: FrameReader,
    mode: ReadMode,
    grant: LogonGrant,
    /// Set once the stream cannot be trusted (bad frame) or has ended.
    broken: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.stream.peer_addr().ok())
            .field("grant", &self.grant)
            .field("next_seq", &self.session.next_seq())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects, sets TCP_NODELAY, logs on and waits for the LogonAck.
    ///
    /// # Errors
    ///
    /// [`ClientError::LogonRejected`] with the reason code when the gateway
    /// refuses the Logon; `Io`, `LogonTimeout`, `Closed` or `Frame`
    /// otherwise.
    pub fn connect(
        addr: SocketAddr,
        key_id: u64,
        secret: [u8; 32],
        options: &ConnectOptions,
    ) -> Result<Connection, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, options.timeout)?;
        stream.set_nodelay(true)?;
        let mut conn = Connection {
            stream,
            session: ClientSession::new(key_id, secret),
            reader: FrameReader::new(RECV_BUFFER_SIZE),
            mode: ReadMode::Blocking(Duration::ZERO),
            grant: LogonGrant {
                session_id: 0,
                keepalive_ms: 0,
                scopes: 0,
                environment: 0,
                server_time_ns: 0,
            },
            broken: false,
        };
        let flags = if options.cancel_on_disconnect {
            LOGON_FLAG_CANCEL_ON_DISCONNECT
        } else {
            0
        };
        let nonce = options.nonce.next()?;
        let logon = conn.session.logon(
            wall_ns(),
            nonce,
            options.keepalive_ms,
            options.environment.wire(),
            flags,
        );
        conn.write_frame(&logon)?;

        let deadline = Instant::now() + options.timeout;
        loop {
            if let Some(frame) = conn.reader.next_frame() {
                let frame =
                    frame.map_err(|e| ClientError::Frame(client::ClientError::Decode(e)))?;
                return match conn.session.receive(frame).map_err(ClientError::Frame)? {
                    GatewayFrame::LogonAck(ack) => {
                        conn.grant = LogonGrant {
                            session_id: ack.session_id(),
                            keepalive_ms: ack.keepalive_ms(),
                            scopes: ack.scopes(),
                            environment: ack.environment(),
                            server_time_ns: ack.server_time_ns(),
                        };
                        Ok(conn)
                    }
                    GatewayFrame::LogonReject(r) => {
                        Err(ClientError::LogonRejected { code: r.reason() })
                    }
                    other => Err(ClientError::Unexpected {
                        template_id: template_of(&other),
                    }),
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::LogonTimeout);
            }
            match conn.fill(deadline - now) {
                Ok(true) => {}
                Ok(false) => return Err(ClientError::LogonTimeout),
                Err(e) => return Err(e),
            }
        }
    }

    /// What the gateway granted at logon.
    pub fn grant(&self) -> &LogonGrant {
        &self.grant
    }

    pub fn session_id(&self) -> u64 {
        self.grant.session_id
    }

    /// The `seq` the next `send_*` will carry.
    pub fn next_seq(&self) -> u64 {
        self.session.next_seq()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Sends a NewOrder. Returns its `seq`.
    pub fn send_new_order(&mut self, order: &Order) -> Result<u64, ClientError> {
        self.send_sealed(order.frame())
    }

    /// Sends a CancelOrder for the order this session knows as
    /// `orig_cl_ord_id`. Returns its `seq`.
    pub fn send_cancel(
        &mut self,
        cl_ord_id: u64,
        orig_cl_ord_id: u64,
        instrument_id: u32,
    ) -> Result<u64, ClientError> {
        let frame = wire::CancelOrder {
            seq: 0,
            cl_ord_id,
            orig_cl_ord_id,
            instrument_id,
        }
        .to_bytes();
        self.send_sealed(frame)
    }

    /// Sends a ReplaceOrder: `qty` is the new open quantity. After the
    /// OrderReplaced the order is known as `cl_ord_id`. Returns its `seq`.
    pub fn send_replace(
        &mut self,
        cl_ord_id: u64,
        orig_cl_ord_id: u64,
        instrument_id: u32,
        price: i64,
        qty: u32,
    ) -> Result<u64, ClientError> {
        let frame = wire::ReplaceOrder {
            seq: 0,
            cl_ord_id,
            orig_cl_ord_id,
            price,
            qty,
            instrument_id,
        }
        .to_bytes();
        self.send_sealed(frame)
    }

    /// Sends a MassCancel: `instrument_id` 0 = every instrument, `side`
    /// `None` = both. Returns its `seq`.
    pub fn send_mass_cancel(
        &mut self,
        cl_ord_id: u64,
        instrument_id: u32,
        side: Option<Side>,
    ) -> Result<u64, ClientError> {
        let frame = wire::MassCancel {
            seq: 0,
            cl_ord_id,
            instrument_id,
            side: side.map_or(0, Side::wire),
        }
        .to_bytes();
        self.send_sealed(frame)
    }

    /// Sends a Heartbeat. Returns its `seq`.
    pub fn send_heartbeat(&mut self) -> Result<u64, ClientError> {
        self.send_sealed(wire::Heartbeat { seq: 0 }.to_bytes())
    }

    /// Sends a Logout (reason LOGOUT); the gateway answers Terminate LOGOUT
    /// and closes. Returns its `seq`.
    pub fn send_logout(&mut self) -> Result<u64, ClientError> {
        let frame = wire::Logout {
            seq: 0,
            reason: TerminateReason::LOGOUT.wire(),
        }
        .to_bytes();
        self.send_sealed(frame)
    }

    /// Writes `bytes` as they are: no seq, no tag (tests of malformed or
    /// forged frames). The client's own sequence is not advanced.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.write_frame(bytes)
    }

    /// Seals `frame` (next seq, client tag) for tests that send a frame the
    /// typed senders cannot build (e.g. a field value out of range), without
    /// writing it. Advances the client's sequence.
    pub fn seal<const N: usize>(&mut self, frame: [u8; N]) -> [u8; N] {
        self.session.seal(frame)
    }

    fn send_sealed<const N: usize>(&mut self, frame: [u8; N]) -> Result<u64, ClientError> {
        let seq = self.session.next_seq();
        let frame = self.session.seal(frame);
        self.write_frame(&frame)?;
        Ok(seq)
    }

    /// Writes one whole frame, also in non-blocking mode (waits for room,
    /// at most `SEND_STALL_MAX`): a frame is never left half written.
    fn write_frame(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if self.broken {
            return Err(ClientError::Closed);
        }
        let mut written = 0;
        let mut stalled_since: Option<Instant> = None;
        while written < bytes.len() {
            match self.stream.write(&bytes[written..]) {
                Ok(0) => {
                    self.broken = true;
                    return Err(ClientError::Closed);
                }
                Ok(n) => {
                    written += n;
                    stalled_since = None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let since = *stalled_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > SEND_STALL_MAX {
                        self.broken = true;
                        return Err(ClientError::Io(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the gateway took no bytes for SEND_STALL_MAX",
                        )));
                    }
                    std::thread::yield_now();
                }
                Err(e) => {
                    self.broken = true;
                    return Err(ClientError::Io(e));
                }
            }
        }
        Ok(())
    }

    /// The next reply, waiting at most `timeout` (`Duration::ZERO`: only
    /// what has already arrived). `Ok(None)`: nothing in time.
    ///
    /// # Errors
    ///
    /// `Frame` for a frame that fails decoding, tag or sequence; `Closed`
    /// when the gateway has closed the connection; `Unexpected` /
    /// `UndefinedCode` for a frame with no place here. After any error the
    /// connection is unusable.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Reply>, ClientError> {
        let start = (!timeout.is_zero()).then(Instant::now);
        // The first read waits exactly `timeout`, so a caller that always
        // passes the same value makes no system call to set it; only a read
        // that brought part of a frame shortens the wait for the rest.
        let mut wait = timeout;
        loop {
            if let Some(reply) = self.next_buffered()? {
                return Ok(Some(reply));
            }
            if self.broken {
                return Err(ClientError::Closed);
            }
            if !self.fill(wait)? {
                return Ok(None);
            }
            if let Some(start) = start {
                let elapsed = start.elapsed();
                if elapsed >= timeout {
                    return self.next_buffered();
                }
                wait = timeout - elapsed;
            }
        }
    }

    /// Reads until a whole frame is buffered, without decoding or checking
    /// it (the next [`Connection::recv`] does). For timing a round trip to
    /// the arrival of the answer's last byte, as `compare` times a bare
    /// echo, leaving the client's own tag check outside the clock.
    /// `Ok(false)`: nothing whole within `timeout`.
    pub fn wait_frame(&mut self, timeout: Duration) -> Result<bool, ClientError> {
        let start = Instant::now();
        let mut wait = timeout;
        loop {
            if self.reader.has_frame() {
                return Ok(true);
            }
            if self.broken {
                return Err(ClientError::Closed);
            }
            if !self.fill(wait)? {
                return Ok(self.reader.has_frame());
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                return Ok(self.reader.has_frame());
            }
            wait = timeout - elapsed;
        }
    }

    /// A reply already in the buffer, checked.
    fn next_buffered(&mut self) -> Result<Option<Reply>, ClientError> {
        let Some(frame) = self.reader.next_frame() else {
            return Ok(None);
        };
        let result = match frame {
            Err(e) => Err(ClientError::Frame(client::ClientError::Decode(e))),
            Ok(frame) => match self.session.receive(frame) {
                Ok(decoded) => reply_of(&decoded),
                Err(e) => Err(ClientError::Frame(e)),
            },
        };
        if result.is_err() {
            self.broken = true;
        }
        result.map(Some)
    }

    /// One read into the buffer. `Ok(false)`: nothing arrived within
    /// `timeout` (zero: nothing was there).
    fn fill(&mut self, timeout: Duration) -> Result<bool, ClientError> {
        self.set_mode(if timeout.is_zero() {
            ReadMode::NonBlocking
        } else {
            ReadMode::Blocking(timeout)
        })?;
        let spare = self.reader.spare();
        if spare.is_empty() {
            // A full buffer of partial frame cannot happen: a frame is at
            // most FRAME_SIZE_MAX and whole frames are taken first.
            unreachable!("receive buffer full without a whole frame");
        }
        loop {
            match self.stream.read(spare) {
                Ok(0) => {
                    self.broken = true;
                    return Err(ClientError::Closed);
                }
                Ok(n) => {
                    self.reader.filled(n);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(false);
                }
                Err(e) => {
                    self.broken = true;
                    return Err(ClientError::Io(e));
                }
            }
        }
    }

    fn set_mode(&mut self, mode: ReadMode) -> io::Result<()> {
        if self.mode == mode {
            return Ok(());
        }
        match mode {
            ReadMode::NonBlocking => self.stream.set_nonblocking(true)?,
            ReadMode::Blocking(t) => {
                if self.mode == ReadMode::NonBlocking {
                    self.stream.set_nonblocking(false)?;
                }
                self.stream.set_read_timeout(Some(t))?;
            }
        }
        self.mode = mode;
        Ok(())
    }

    /// Closes the socket without a Logout (as a crashed client would).
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The socket, for readiness polling (the load generator's epoll). Reading
/// or writing it directly would desynchronise the session.
impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

fn template_of(frame: &GatewayFrame<'_>) -> u16 {
    match frame {
        GatewayFrame::LogonAck(_) => wire::LogonAck::TEMPLATE_ID,
        GatewayFrame::LogonReject(_) => wire::LogonReject::TEMPLATE_ID,
        GatewayFrame::Heartbeat(_) => wire::Heartbeat::TEMPLATE_ID,
        GatewayFrame::Terminate(_) => wire::Terminate::TEMPLATE_ID,
        GatewayFrame::OrderAccepted(_) => wire::OrderAccepted::TEMPLATE_ID,
        GatewayFrame::OrderRejected(_) => wire::OrderRejected::TEMPLATE_ID,
        GatewayFrame::OrderCanceled(_) => wire::OrderCanceled::TEMPLATE_ID,
        GatewayFrame::OrderReplaced(_) => wire::OrderReplaced::TEMPLATE_ID,
        GatewayFrame::Fill(_) => wire::Fill::TEMPLATE_ID,
        GatewayFrame::MassCancelAck(_) => wire::MassCancelAck::TEMPLATE_ID,
    }
}

/// The owned reply for a frame the session has checked.
fn reply_of(frame: &GatewayFrame<'_>) -> Result<Reply, ClientError> {
    Ok(match *frame {
        GatewayFrame::OrderAccepted(m) => Reply::Accepted {
            cl_ord_id: m.cl_ord_id(),
            order_id: m.order_id(),
            transact_time_ns: m.transact_time_ns(),
        },
        GatewayFrame::OrderRejected(m) => Reply::Rejected {
            cl_ord_id: m.cl_ord_id(),
            reason: RejectReason::from_wire(m.reason()).ok_or(ClientError::UndefinedCode {
                field: "OrderRejected.reason",
                value: m.reason(),
            })?,
            retry_after_ns: m.retry_after_ns(),
            transact_time_ns: m.transact_time_ns(),
        },
        GatewayFrame::OrderCanceled(m) => Reply::Canceled {
            cl_ord_id: m.cl_ord_id(),
            order_id: m.order_id(),
            canceled_qty: m.canceled_qty(),
            reason: CancelReason::from_wire(m.reason()).ok_or(ClientError::UndefinedCode {
                field: "OrderCanceled.reason",
                value: m.reason(),
            })?,
            transact_time_ns: m.transact_time_ns(),
        },
        GatewayFrame::OrderReplaced(m) => Reply::Replaced {
            cl_ord_id: m.cl_ord_id(),
            order_id: m.order_id(),
            leaves_qty: m.leaves_qty(),
            transact_time_ns: m.transact_time_ns(),
        },
        GatewayFrame::Fill(m) => Reply::Fill {
            cl_ord_id: m.cl_ord_id(),
            order_id: m.order_id(),
            exec_id: m.exec_id(),
            price: m.fill_price(),
            qty: m.fill_qty(),
            leaves_qty: m.leaves_qty(),
            transact_time_ns: m.transact_time_ns(),
        },
        GatewayFrame::MassCancelAck(m) => Reply::MassCancelAck {
            cl_ord_id: m.cl_ord_id(),
            canceled_count: m.canceled_count(),
            transact_time_ns: m.transact_time_ns(),
        },
        GatewayFrame::Heartbeat(_) => Reply::Heartbeat,
        GatewayFrame::Terminate(m) => Reply::Terminate {
            reason: TerminateReason::from_wire(m.reason()).ok_or(ClientError::UndefinedCode {
                field: "Terminate.reason",
                value: m.reason(),
            })?,
        },
        GatewayFrame::LogonAck(_) | GatewayFrame::LogonReject(_) => {
            return Err(ClientError::Unexpected {
                template_id: template_of(frame),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The key the scripted gateway checks the Logon with (the same as the
    // runtime's test gateway, whose tests of this client are in
    // `ordergate`'s `net_client::tests`).
    const KEY_ID: u64 = 7001;
    const SECRET: [u8; 32] = [0x5a; 32];

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn process_nonces_never_repeat_and_fixed_ones_do() {
        let a = NonceSource::Process.next().unwrap();
        let b = NonceSource::Process.next().unwrap();
        assert_ne!(a, b);
        assert_eq!(a[..8], b[..8], "one seed per process");
        let f = NonceSource::Fixed([3; 16]);
        assert_eq!(f.next().unwrap(), f.next().unwrap());
        // The counter carries into the low half only, wrapping.
        let mut seed = [0u8; 16];
        seed[8..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(nonce_from(seed, 1)[8..], [0u8; 8]);
    }

    /// A scripted gateway: acks the Logon, then sends a Heartbeat in two
    /// parts `gap` apart, then a frame with a bad tag.
    fn scripted(gap: Duration) -> SocketAddr {
        use ordergate_core::auth::session_keys::SessionKeys;
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut logon = [0u8; wire::LOGON_SIZE];
            s.read_exact(&mut logon).unwrap();
            let Ok(wire::ClientFrame::Logon(l)) = wire::decode_client(&logon) else {
                panic!("expected a Logon");
            };
            let keys = SessionKeys::derive(&SECRET, &l.client_nonce(), &[8; 16], 99);
            let mut ack = wire::LogonAck {
                session_id: 99,
                server_time_ns: wall_ns(),
                server_nonce: [8; 16],
                keepalive_ms: l.keepalive_ms(),
                scopes: 3,
                environment: 1,
                seq: 1,
            }
            .to_bytes();
            keys.gateway.seal(&mut ack);
            s.write_all(&ack).unwrap();
            let mut hb = wire::Heartbeat { seq: 2 }.to_bytes();
            keys.gateway.seal(&mut hb);
            s.write_all(&hb[..10]).unwrap();
            std::thread::sleep(gap);
            s.write_all(&hb[10..]).unwrap();
            let mut forged = wire::Heartbeat { seq: 3 }.to_bytes();
            keys.client.seal(&mut forged); // the wrong direction's key
            s.write_all(&forged).unwrap();
            std::thread::sleep(Duration::from_secs(1));
        });
        addr
    }

    #[test]
    fn a_split_frame_waits_for_its_rest_and_a_bad_tag_breaks_the_connection() {
        let addr = scripted(Duration::from_millis(300));
        let mut c = Connection::connect(addr, KEY_ID, SECRET, &ConnectOptions::default()).unwrap();
        assert_eq!(c.session_id(), 99);
        let t = Instant::now();
        assert_eq!(c.recv(Duration::ZERO).unwrap(), None);
        assert_eq!(c.recv(Duration::from_millis(50)).unwrap(), None);
        assert!(t.elapsed() < Duration::from_millis(250));
        assert_eq!(c.recv(WAIT).unwrap(), Some(Reply::Heartbeat));
        assert!(matches!(
            c.recv(WAIT),
            Err(ClientError::Frame(client::ClientError::BadMac))
        ));
        assert!(matches!(c.recv(WAIT), Err(ClientError::Closed)));
        assert!(matches!(c.send_heartbeat(), Err(ClientError::Closed)));
    }
}
