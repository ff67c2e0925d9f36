//! A gateway for unit tests that need a real socket but not io_uring: one
//! thread, non-blocking `std::net` sockets, pumping the real sans-I/O
//! pieces (`ReactorCore`, the rings, `EngineAgent<MatchingEngine>`). It lets
//! the client, the load generator and the demo logic be tested before (and
//! independently of) the io_uring reactor.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::auth::keys::{KeyEntry, KeyTable};
use crate::auth::secret::Secret;
use crate::engine::SessionId;
use crate::engine::agent::EngineAgent;
use crate::engine::book::{EngineConfig, MatchingEngine};
use crate::reactor::core::{ReactorCore, session_limit_reject};
use crate::ring;
use crate::session::{Counters, GatewayConfig, Shared};
use crate::wire::codes::{Environment, Scopes, TerminateReason};

use crate::clock::wall_ns;

pub const KEY_ID: u64 = 7001;
pub const SECRET: [u8; 32] = [0x5a; 32];

pub struct TestGateway {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Counters>>,
}

impl TestGateway {
    /// Key `KEY_ID` with `SECRET`, trade and cancel, rates that never bind.
    pub fn start() -> TestGateway {
        let keys = KeyTable::from_entries(vec![
            KeyEntry::new(
                KEY_ID,
                Secret::from_bytes(SECRET),
                Scopes::TRADE.union(Scopes::CANCEL),
                Environment::Production,
            )
            .with_rate(10_000_000, 1_000_000)
            .allow_any(),
        ])
        .expect("test key");
        let config = GatewayConfig {
            session_msgs_per_sec: 10_000_000,
            session_burst: 1_000_000,
            ..GatewayConfig::default()
        };
        let shared = Arc::new(Shared::new(config, keys, [9; 32]));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || run(listener, shared, &stop2));
        TestGateway {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops (Terminate SHUTDOWN to every session) and returns the counters.
    pub fn shutdown(mut self) -> Counters {
        self.stop.store(true, Ordering::Release);
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("test gateway thread")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Conn {
    id: SessionId,
    stream: TcpStream,
    open: bool,
    /// Bytes read that the session did not take yet (it paused for
    /// back-pressure): offered again before anything more is read.
    held: Vec<u8>,
}

fn tx_idle(session: &crate::session::Session) -> bool {
    session.tx().is_empty()
}

fn run(listener: TcpListener, shared: Arc<Shared>, stop: &AtomicBool) -> Counters {
    let (cmd_tx, cmd_rx) = ring::channel(1024);
    let (evt_tx, evt_rx) = ring::channel(1024);
    let limits = shared.limits.clone();
    let mut core = ReactorCore::new(0, shared, 64, cmd_tx, evt_rx);
    let engine = MatchingEngine::new(EngineConfig {
        instruments: 8,
        orders_max: 4096,
        levels_per_side_max: 256,
        first_order_id: 1,
        ..EngineConfig::default()
    });
    let mut agent = EngineAgent::new(engine, vec![cmd_rx], vec![evt_tx]).with_limits(limits);
    let mut conns: Vec<Conn> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut stopping = false;
    loop {
        let now = wall_ns();
        let mut work = 0;
        if stop.load(Ordering::Acquire) && !stopping {
            stopping = true;
            for c in &conns {
                core.terminate(c.id, now, TerminateReason::SHUTDOWN);
            }
        }
        if !stopping {
            match listener.accept() {
                Ok((stream, peer)) => {
                    work += 1;
                    stream.set_nonblocking(true).expect("non-blocking");
                    stream.set_nodelay(true).expect("nodelay");
                    match core.accept(now, peer.ip()) {
                        Some(id) => conns.push(Conn {
                            id,
                            stream,
                            open: true,
                            held: Vec::new(),
                        }),
                        None => {
                            let _ = (&stream).write_all(&session_limit_reject(now));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
        }
        for c in conns.iter_mut().filter(|c| c.open) {
            if !c.held.is_empty() {
                if core.wants_input(c.id) {
                    let taken = core.on_bytes(c.id, now, &c.held);
                    c.held.drain(..taken);
                    work += 1;
                }
                if !c.held.is_empty() {
                    continue;
                }
            }
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    c.open = false;
                    core.on_closed(c.id, now);
                }
                Ok(n) => {
                    work += 1;
                    let taken = core.on_bytes(c.id, now, &buf[..n]);
                    c.held.extend_from_slice(&buf[taken..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    c.open = false;
                    core.on_closed(c.id, now);
                }
            }
        }
        work += agent.do_work(now);
        work += core.poll_events(now);
        core.run_timers(now);
        for c in conns.iter_mut().filter(|c| c.open) {
            let Some(session) = core.session_mut(c.id) else {
                continue;
            };
            let tx = session.tx_mut();
            if !tx.is_empty() {
                let bytes = tx.begin_send();
                let sent = match c.stream.write(bytes) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(_) => {
                        tx.complete_send(0);
                        c.open = false;
                        core.on_closed(c.id, now);
                        continue;
                    }
                };
                tx.complete_send(sent);
                work += 1;
            }
            if session.wants_close() || (stopping && !session.is_logged_on() && tx_idle(session)) {
                let _ = c.stream.shutdown(Shutdown::Both);
                c.open = false;
                core.on_closed(c.id, now);
            }
        }
        conns.retain(|c| c.open || !core.release(c.id));
        if stopping && conns.iter().all(|c| !c.open) && agent.do_work(now) == 0 {
            // Flush what the last turn produced, then stop.
            return core.counters.clone();
        }
        if work == 0 {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}
