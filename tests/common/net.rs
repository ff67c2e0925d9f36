//! A loopback harness: a gateway started in-process and raw TCP clients
//! that check every frame (tag, sequence) with the sans-I/O client, each
//! from the loopback address a test chooses (127.0.0.x) when it matters.
#![allow(dead_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ordergate::auth::keys::KeyTable;
use ordergate::client::{ClientSession, FrameReader};
use ordergate::clock::wall_ns;
use ordergate::engine::book::EngineConfig;
use ordergate::gateway::{Gateway, GatewayReport, GatewaySpec};
use ordergate::telemetry::prometheus::PrometheusServer;
use ordergate::wire::{self, GatewayFrame};
use socket2::{Domain, SockRef, Socket, Type};

use super::serve::TempDir;

pub const SECRET: [u8; 32] = [0x17; 32];
pub const TRADER: u64 = 1;
pub const CANCEL_ONLY: u64 = 2;
pub const SANDBOX: u64 = 3;
pub const SLOW: u64 = 4;
pub const WAIT: Duration = Duration::from_secs(3);

pub fn keys() -> KeyTable {
    super::four_keys([TRADER, CANCEL_ONLY, SANDBOX, SLOW], SECRET)
}

pub fn spec() -> GatewaySpec {
    let mut spec = GatewaySpec::default();
    spec.session.session_msgs_per_sec = 1_000_000;
    spec.session.session_burst = 100_000;
    spec.session.logon_timeout_ns = 300_000_000;
    spec.engine_config = EngineConfig {
        orders_max: 4096,
        ..EngineConfig::default()
    };
    spec
}

pub fn start() -> Gateway {
    Gateway::start(spec(), keys()).expect("the gateway starts")
}

/// [`start`], publishing to the stats file at `stats`.
pub fn start_publishing(stats: &std::path::Path) -> Gateway {
    let spec = GatewaySpec {
        stats_file: Some(stats.to_path_buf()),
        ..spec()
    };
    Gateway::start(spec, keys()).expect("the gateway starts")
}

/// A gateway publishing to a stats file in a directory of its own, and its
/// Prometheus endpoint on 127.0.0.1. On drop the endpoint stops, then the
/// gateway, and the directory is removed.
pub struct Scraped {
    gw: Option<Gateway>,
    prom: Option<PrometheusServer>,
    pub dir: TempDir,
}

impl Scraped {
    pub fn start(tag: &str) -> Scraped {
        let dir = TempDir::new(tag);
        let path = dir.join("ordergate.stats");
        let gw = start_publishing(&path);
        let prom = PrometheusServer::start("127.0.0.1:0".parse().unwrap(), &path).unwrap();
        Scraped {
            gw: Some(gw),
            prom: Some(prom),
            dir,
        }
    }

    pub fn gw(&self) -> &Gateway {
        self.gw.as_ref().unwrap()
    }

    pub fn prom(&self) -> &PrometheusServer {
        self.prom.as_ref().unwrap()
    }
}

impl Drop for Scraped {
    fn drop(&mut self) {
        drop(self.prom.take());
        if let Some(gw) = self.gw.take() {
            gw.shutdown();
        }
    }
}

static NONCE: AtomicU64 = AtomicU64::new(1);

pub struct Conn {
    pub s: TcpStream,
    pub c: ClientSession,
    pub r: FrameReader,
}

impl Conn {
    pub fn connect(addr: SocketAddr, key_id: u64) -> Conn {
        Conn::over(TcpStream::connect(addr).unwrap(), key_id, SECRET).unwrap()
    }

    /// A connection to `to` from the loopback address `from` (see
    /// [`connect_from`]) for `key_id` signing with `secret`, not yet logged
    /// on.
    pub fn connect_from(
        from: Ipv4Addr,
        to: SocketAddr,
        key_id: u64,
        secret: [u8; 32],
    ) -> io::Result<Conn> {
        Conn::over(connect_from(from, to)?, key_id, secret)
    }

    /// A client over `s` (no delay; reads time out after `WAIT`).
    pub fn over(s: TcpStream, key_id: u64, secret: [u8; 32]) -> io::Result<Conn> {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(WAIT))?;
        Ok(Conn {
            s,
            c: ClientSession::new(key_id, secret),
            r: FrameReader::new(1 << 16),
        })
    }

    pub fn logon_frame(&mut self, flags: u8, env: u8, keepalive_ms: u16) -> [u8; 80] {
        let n = NONCE.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        nonce[8..].copy_from_slice(&(std::process::id() as u64).to_le_bytes());
        self.c.logon(wall_ns(), nonce, keepalive_ms, env, flags)
    }

    pub fn logon(&mut self, flags: u8) {
        let f = self.logon_frame(flags, 1, 1000);
        self.send(&f);
        let ack = self.recv().expect("a reply to Logon");
        assert_eq!(
            template(&ack),
            wire::LogonAck::TEMPLATE_ID,
            "logon accepted"
        );
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// The next frame other than a gateway Heartbeat (which may come at any
    /// time on a loaded machine), checked by the client. None at EOF.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            let f = self.recv_any()?;
            if template(&f) != wire::Heartbeat::TEMPLATE_ID {
                return Some(f);
            }
        }
    }

    /// The next frame, checked by the client (tag, seq). None at EOF.
    pub fn recv_any(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(f) = self.r.next_frame() {
                let f = f.expect("well-formed").to_vec();
                self.c
                    .receive(&f)
                    .expect("the client accepts the gateway's frame");
                return Some(f);
            }
            match self.s.read(self.r.spare()) {
                Ok(0) => return None,
                Ok(n) => self.r.filled(n),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The connection is closed by the gateway within WAIT, with no more
    /// frames.
    pub fn expect_closed(&mut self) {
        assert!(
            self.recv().is_none(),
            "expected the gateway to close the connection"
        );
    }

    pub fn order(&mut self, cl_ord_id: u64, price: i64, qty: u32, side: u8, tif: u8) -> [u8; 64] {
        self.c
            .seal(super::new_order_frame(cl_ord_id, price, qty, side, tif))
    }

    pub fn send_order(&mut self, cl_ord_id: u64, price: i64, qty: u32, side: u8, tif: u8) {
        let f = self.order(cl_ord_id, price, qty, side, tif);
        self.send(&f);
    }
}

pub fn template(f: &[u8]) -> u16 {
    u16::from_le_bytes([f[6], f[7]])
}

pub fn logon_reject(f: &[u8]) -> u16 {
    match wire::decode_gateway(f).unwrap() {
        GatewayFrame::LogonReject(r) => r.reason(),
        other => panic!("expected LogonReject, got {other:?}"),
    }
}

pub fn terminate(f: &[u8]) -> u16 {
    match wire::decode_gateway(f).unwrap() {
        GatewayFrame::Terminate(t) => t.reason(),
        other => panic!("expected Terminate, got {other:?}"),
    }
}

pub fn accepted(f: &[u8]) -> (u64, u64) {
    match wire::decode_gateway(f).unwrap() {
        GatewayFrame::OrderAccepted(a) => (a.cl_ord_id(), a.order_id()),
        other => panic!("expected OrderAccepted, got {other:?}"),
    }
}

pub fn rejected(f: &[u8]) -> (u64, u16, u64) {
    match wire::decode_gateway(f).unwrap() {
        GatewayFrame::OrderRejected(r) => (r.cl_ord_id(), r.reason(), r.retry_after_ns()),
        other => panic!("expected OrderRejected, got {other:?}"),
    }
}

pub fn canceled(f: &[u8]) -> (u64, u32, u16) {
    match wire::decode_gateway(f).unwrap() {
        GatewayFrame::OrderCanceled(c) => (c.cl_ord_id(), c.canceled_qty(), c.reason()),
        other => panic!("expected OrderCanceled, got {other:?}"),
    }
}

pub fn fill(f: &[u8]) -> (u64, i64, u32, u32) {
    match wire::decode_gateway(f).unwrap() {
        GatewayFrame::Fill(x) => (x.cl_ord_id(), x.fill_price(), x.fill_qty(), x.leaves_qty()),
        other => panic!("expected Fill, got {other:?}"),
    }
}

pub fn finish(gw: Gateway) -> GatewayReport {
    gw.shutdown()
}

// ---------------------------------------------------------------------------
// Clients from a chosen loopback address: std has no bind-before-connect, so
// these use libc (a dependency of the crate) and hand the socket to a
// `TcpStream`.

/// An unconnected IPv4 stream socket bound to `local` (any port).
pub fn bound_socket(local: Ipv4Addr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket
        .bind(&SocketAddr::from((local, 0)).into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {local}: {e}")))?;
    Ok(socket.into())
}

/// Connects `stream` (from [`bound_socket`]) to `to`, blocking.
pub fn connect(stream: &TcpStream, to: SocketAddr) -> io::Result<()> {
    let SocketAddr::V4(to) = to else {
        return Err(io::Error::other("IPv4 only"));
    };
    SockRef::from(stream)
        .connect(&SocketAddr::V4(to).into())
        .map_err(|e| io::Error::new(e.kind(), format!("connect {to}: {e}")))
}

/// A TCP connection to `to` from the loopback address `local` (port
/// chosen by the kernel), with no delay.
pub fn connect_from(local: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    let stream = bound_socket(local)?;
    connect(&stream, to)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
