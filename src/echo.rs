//! A baseline for round trips: a bare blocking TCP echo on loopback, and
//! closed-loop ping-pong against it and against ordergate, so the demo can
//! say what the gateway adds over the kernel's own loopback round trip, as a
//! ratio measured in the same run on the same machine.
//!
//! ```text
//!  echo:      client ──64-byte frame──▶ echo thread ──same bytes──▶ client      (one round trip)
//!  ordergate: client ──NewOrder──▶ gateway ──OrderAccepted──▶ client            (recorded)
//!             client ──CancelOrder──▶ gateway ──OrderCanceled──▶ client         (not recorded)
//! ```
//!
//! Both are closed loop (one request outstanding), so they measure service
//! time, not queueing: the load generator measures the latter.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::load::new_histogram;
use ordergate::wire::codes::Side;
use ordergate_client::blocking::{Connection, Order, Reply};

/// Unrecorded round trips before the measured ones: connection set-up,
/// page faults, caches and CPU frequency settle.
pub const WARMUP_ROUND_TRIPS: usize = 200;

/// The longest one ordergate round trip may take before the measurement
/// gives up (a gateway that does not answer).
pub const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(2);

/// cl_ord_ids used by `ordergate_round_trips`: far from those a session
/// numbering from 1 uses.
const ROUND_TRIP_ID_BASE: u64 = 1 << 62;

/// Starts a bare TCP echo server on loopback: one thread accepting, one
/// thread per connection echoing every byte back (TCP_NODELAY). It serves
/// until the process exits; the handle is the accepting thread's.
///
/// # Panics
///
/// If no loopback port can be bound.
pub fn spawn_echo_server() -> (SocketAddr, JoinHandle<()>) {
    let (addr, handle, _) = spawn_echo_server_tracked();
    (addr, handle)
}

/// The echo's live connection threads: each one's peer address and
/// kernel thread id (`compare` measures what each costs).
pub type EchoThreads = Arc<Mutex<Vec<(SocketAddr, i32)>>>;

/// [`spawn_echo_server`], also telling which thread serves which peer.
///
/// # Panics
///
/// If no loopback port can be bound.
pub fn spawn_echo_server_tracked() -> (SocketAddr, JoinHandle<()>, EchoThreads) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port for the echo");
    let addr = listener.local_addr().expect("local address of the echo");
    let threads = EchoThreads::default();
    let registry = threads.clone();
    let handle = std::thread::Builder::new()
        .name("echo-accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let registry = registry.clone();
                let _ = std::thread::Builder::new()
                    .name("echo".into())
                    .spawn(move || {
                        let me = stream
                            .peer_addr()
                            .ok()
                            .map(|peer| (peer, crate::taskstat::gettid()));
                        let lock = || registry.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(entry) = me {
                            lock().push(entry);
                        }
                        let done = echo(stream);
                        // Only live threads are listed.
                        lock().retain(|e| Some(*e) != me);
                        done
                    });
            }
        })
        .expect("start the echo thread");
    (addr, handle, threads)
}

fn echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// One closed-loop client of the echo server.
pub struct EchoClient {
    stream: TcpStream,
    back: Vec<u8>,
}

impl EchoClient {
    /// Connects with TCP_NODELAY (allocates the read-back buffer of
    /// `frame_len` bytes once).
    pub fn connect(addr: SocketAddr, frame_len: usize) -> io::Result<EchoClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(ROUND_TRIP_TIMEOUT))?;
        Ok(EchoClient {
            stream,
            back: vec![0u8; frame_len],
        })
    }

    /// This end's address (the echo thread's peer).
    ///
    /// # Errors
    ///
    /// The socket is gone.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// `skip` unrecorded round trips of `frame`, then `n` recorded into `h`
    /// (ns, from before the write to after the last byte is read back).
    pub fn round_trips(
        &mut self,
        frame: &[u8],
        skip: usize,
        n: usize,
        h: &mut Histogram<u64>,
    ) -> io::Result<()> {
        assert_eq!(frame.len(), self.back.len(), "one frame size per client");
        for i in 0..skip + n {
            let start = Instant::now();
            self.stream.write_all(frame)?;
            self.stream.read_exact(&mut self.back)?;
            let ns = start.elapsed().as_nanos() as u64;
            if i >= skip {
                h.saturating_record(ns.max(1));
            }
        }
        if self.back != frame {
            return Err(io::Error::other("the echo changed the bytes"));
        }
        Ok(())
    }
}

/// `n` closed-loop round trips of `frame` through the echo at `addr`, after
/// `WARMUP_ROUND_TRIPS` unrecorded ones. Each is timed from before the
/// write to after the last byte is read back, in ns.
///
/// # Errors
///
/// The connection failed.
pub fn echo_round_trips(addr: SocketAddr, frame: &[u8], n: usize) -> io::Result<Histogram<u64>> {
    let mut client = EchoClient::connect(addr, frame.len())?;
    let mut h = new_histogram();
    client.round_trips(frame, WARMUP_ROUND_TRIPS, n, &mut h)?;
    Ok(h)
}

/// `n` closed-loop round trips through ordergate on a logged-on `conn`:
/// NewOrder (a buy far below any other order, so it rests and never trades)
/// → its first reply is recorded; then it is canceled and the cancel's reply
/// awaited, not recorded, so the book stays as it was. Preceded by
/// `WARMUP_ROUND_TRIPS` unrecorded ones.
///
/// # Errors
///
/// The connection failed, a reply was not the expected one (a reject names
/// its reason), or none came within `ROUND_TRIP_TIMEOUT`.
pub fn ordergate_round_trips(conn: &mut Connection, n: usize) -> Result<Histogram<u64>, String> {
    let mut h = new_histogram();
    let mut ids = ROUND_TRIP_ID_BASE;
    ordergate_round_trips_into(conn, WARMUP_ROUND_TRIPS, n, &mut h, &mut ids)?;
    Ok(h)
}

/// As [`ordergate_round_trips`]: `skip` unrecorded, then `n` recorded into
/// `h`, with cl_ord_ids taken from `*next_id` upwards.
///
/// # Errors
///
/// As [`ordergate_round_trips`].
pub fn ordergate_round_trips_into(
    conn: &mut Connection,
    skip: usize,
    n: usize,
    h: &mut Histogram<u64>,
    next_id: &mut u64,
) -> Result<(), String> {
    for i in 0..skip + n {
        let id = *next_id;
        *next_id += 2;
        // Sealed before the clock starts and checked after it stops, as
        // the echo row's frame is ready-made and its answer unchecked: the
        // rows time the same client work (one write, reads until a whole
        // answer is in), so the difference is the gateway's alone.
        let frame = conn.seal(Order::limit(id, 1, Side::Buy, 1, 1).frame());
        let start = Instant::now();
        conn.send_raw(&frame).map_err(|e| e.to_string())?;
        let arrived = conn
            .wait_frame(ROUND_TRIP_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let ns = start.elapsed().as_nanos() as u64;
        if !arrived {
            return Err(format!("no reply to {id} within {ROUND_TRIP_TIMEOUT:?}"));
        }
        let reply = first_reply(conn, id)?;
        if !matches!(reply, Reply::Accepted { .. }) {
            return Err(format!("round trip {i}: expected Accepted, got {reply:?}"));
        }
        if i >= skip {
            h.saturating_record(ns.max(1));
        }
        conn.send_cancel(id + 1, id, 1).map_err(|e| e.to_string())?;
        let reply = first_reply(conn, id + 1)?;
        if !matches!(reply, Reply::Canceled { .. }) {
            return Err(format!("round trip {i}: expected Canceled, got {reply:?}"));
        }
    }
    Ok(())
}

/// `n` round trips of each kind, interleaved in `rounds` alternating
/// batches (after one warm-up of each), so that a burst of noise from the
/// rest of the machine lands on both sides alike. Returns (echo,
/// ordergate), ns.
///
/// # Errors
///
/// Either side failed (named).
pub fn compare_interleaved(
    echo_addr: SocketAddr,
    conn: &mut Connection,
    n: usize,
    rounds: usize,
) -> Result<(Histogram<u64>, Histogram<u64>), String> {
    let frame = ordergate::wire::NewOrder::default().to_bytes();
    let mut echo = EchoClient::connect(echo_addr, frame.len()).map_err(|e| format!("echo: {e}"))?;
    let (mut echo_h, mut gate_h) = (new_histogram(), new_histogram());
    let mut ids = ROUND_TRIP_ID_BASE;
    let rounds = rounds.clamp(1, n.max(1));
    for r in 0..rounds {
        let batch = n / rounds + usize::from(r < n % rounds);
        let skip = if r == 0 { WARMUP_ROUND_TRIPS } else { 0 };
        echo.round_trips(&frame, skip, batch, &mut echo_h)
            .map_err(|e| format!("echo: {e}"))?;
        ordergate_round_trips_into(conn, skip, batch, &mut gate_h, &mut ids)
            .map_err(|e| format!("ordergate: {e}"))?;
    }
    Ok((echo_h, gate_h))
}

/// The reply for `cl_ord_id`, skipping Heartbeats. Every `recv` is given
/// the same timeout, so no system call to change it lands inside the
/// measured round trip.
fn first_reply(conn: &mut Connection, cl_ord_id: u64) -> Result<Reply, String> {
    let deadline = Instant::now() + ROUND_TRIP_TIMEOUT;
    loop {
        match conn.recv(ROUND_TRIP_TIMEOUT) {
            Ok(Some(r)) if r.cl_ord_id() == Some(cl_ord_id) => return Ok(r),
            Ok(Some(Reply::Heartbeat)) if Instant::now() < deadline => continue,
            Ok(Some(r)) => {
                return Err(format!("unexpected reply {r:?} (waiting for {cl_ord_id})"));
            }
            Ok(None) => {
                return Err(format!(
                    "no reply to {cl_ord_id} within {ROUND_TRIP_TIMEOUT:?}"
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordergate::net_client::ConnectOptions;
    use ordergate::net_client::test_gateway::{KEY_ID, SECRET, TestGateway};
    use ordergate::wire;

    #[test]
    fn echo_returns_every_byte_and_times_each_round_trip() {
        let (addr, _server) = spawn_echo_server();
        let frame = wire::NewOrder::default().to_bytes();
        let h = echo_round_trips(addr, &frame, 50).unwrap();
        assert_eq!(h.len(), 50);
        assert!(h.min() >= 1);
        // A second client is served at the same time (thread per connection).
        let h2 = echo_round_trips(addr, &frame[..10], 5).unwrap();
        assert_eq!(h2.len(), 5);
    }

    #[test]
    fn interleaved_batches_add_up_to_n_of_each() {
        let gw = TestGateway::start();
        let (addr, _server) = spawn_echo_server();
        let mut c =
            Connection::connect(gw.addr(), KEY_ID, SECRET, &ConnectOptions::default()).unwrap();
        let (e, o) = compare_interleaved(addr, &mut c, 23, 5).unwrap();
        assert_eq!((e.len(), o.len()), (23, 23));
        gw.shutdown();
    }

    #[test]
    fn ordergate_round_trips_leave_the_book_empty() {
        let gw = TestGateway::start();
        let mut c =
            Connection::connect(gw.addr(), KEY_ID, SECRET, &ConnectOptions::default()).unwrap();
        let h = ordergate_round_trips(&mut c, 20).unwrap();
        assert_eq!(h.len(), 20);
        // Every order was canceled: a mass cancel finds nothing.
        c.send_mass_cancel(1, 0, None).unwrap();
        assert!(matches!(
            c.recv(Duration::from_secs(2)).unwrap(),
            Some(Reply::MassCancelAck {
                canceled_count: 0,
                ..
            })
        ));
        gw.shutdown();
    }
}
