//! `GET /metrics` in the Prometheus text exposition format (0.0.4), from
//! the stats file, on threads of its own (`std::net`, no async runtime):
//! one accepting thread and a fixed pool of `METRICS_CONNECTIONS_MAX`
//! workers, started with the endpoint and placed, like every housekeeping
//! thread of `serve`, off the pinned cores. They read the mapped values as
//! any other reader does and never touch a reactor: a scrape costs the
//! reactors nothing.
//!
//! A slow or hostile client cannot hold it:
//!
//! - **Bounded connections.** The accepting thread admits a connection only
//!   while fewer than `METRICS_CONNECTIONS_MAX` are being served and its
//!   peer address holds fewer than `METRICS_CONNECTIONS_PER_PEER`;
//!   otherwise it answers `503` there and then, without blocking, and
//!   closes (`metrics_refused_busy`, `metrics_refused_peer`). Nothing waits
//!   in a queue behind a slow client.
//! - **A whole-request deadline.** A connection has `METRICS_REQUEST_DEADLINE`
//!   from its accept to send its request head and take the response. Every
//!   read and write waits at most what is left of it, so a client trickling
//!   one byte a second is cut at the deadline, not merely at a pause
//!   (`metrics_deadline_cut`; a `408` if its request was not complete).
//!
//! The request head is parsed by `httparse` (hyper's parser); only
//! `GET /metrics` is served, HTTP/1.0 style: one request per connection,
//! `Connection: close`, a `Content-Length`.
//!
//! Why not an HTTP server crate: none of the small blocking ones gives both
//! defences. tiny_http (and rouille, built on it) grows its thread pool
//! without bound and sets no socket time-outs, with no hook to add either;
//! astra bounds its worker threads but not its connections, and its options
//! have no header or request deadline; hyper has one (`header_read_timeout`) but needs an
//! async runtime, a timer and a dozen crates for one URL. A fixed pool and
//! a deadline re-armed before each read is a hundred lines here.
//!
//! ```text
//! # HELP ordergate_messages_in_total Well-formed, authentic, in-sequence frames after logon.
//! # TYPE ordergate_messages_in_total counter
//! ordergate_messages_in_total{reactor="0"} 123
//! # HELP ordergate_order_rejects_total OrderRejected sent, by reason.
//! # TYPE ordergate_order_rejects_total counter
//! ordergate_order_rejects_total{reactor="0",reason="THROTTLED"} 5
//! # TYPE ordergate_recv_to_ring_seconds summary
//! ordergate_recv_to_ring_seconds{reactor="0",quantile="0.99"} 0.000008191
//! ordergate_recv_to_ring_seconds_sum{reactor="0"} 0.000418
//! ordergate_recv_to_ring_seconds_count{reactor="0"} 123
//! # TYPE ordergate_engine_commands_total counter
//! ordergate_engine_commands_total 123
//! # TYPE ordergate_metrics_requests_total counter
//! ordergate_metrics_requests_total 7
//! ```
//!
//! Names follow Prometheus' rules, so that `promtool check metrics` accepts
//! the scrape (`tests/prometheus_names.rs` checks both): `ordergate_` + the
//! label's family (`ordergate_engine_` for the engine's block); units are
//! base units, spelled out and last — a family in ns is exported in
//! seconds (`turn_ns_max` → `ordergate_turn_max_seconds`), one in bytes
//! ends `_bytes` (`bytes_in` → `ordergate_received_bytes_total`), one in
//! ppm is a `_ratio` in 0..1 — and `_total` ends every counter ([`exported`]).
//! A label's detail becomes `reason="…"`. The receive → ring latency is a
//! summary: its `p50`/`p99`/`p999` gauges are the quantiles (since start,
//! as published), with `_sum` and `_count` from the same computation. The
//! endpoint's own counters come last, as `ordergate_metrics_*`.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};

use super::stats::{Kind, Label, Scope, Snapshot, StatsReader, catalog};
use crate::constants::{
    METRICS_CONNECTIONS_MAX, METRICS_CONNECTIONS_PER_PEER, METRICS_REQUEST_DEADLINE,
    METRICS_REQUEST_HEAD_MAX, METRICS_REQUEST_HEADERS_MAX,
};

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
/// Stack of a worker thread: its head buffer and header table, and the
/// rendering (whose text is on the heap).
const WORKER_STACK: usize = 256 * 1024;

/// The endpoint's own counters, as `serve`'s stop summary and the
/// `ordergate_metrics_*` series show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsCounters {
    /// Requests answered (200, or 400/404/405/431): every whole request
    /// head, and every head cut short by its client's close.
    pub requests: u64,
    /// Connections answered 503 at once: `METRICS_CONNECTIONS_MAX` were
    /// being served.
    pub refused_busy: u64,
    /// Connections answered 503 at once: their peer address held
    /// `METRICS_CONNECTIONS_PER_PEER` already.
    pub refused_peer: u64,
    /// Connections closed at `METRICS_REQUEST_DEADLINE` (408 when their
    /// request was not complete; the response unfinished otherwise).
    pub deadline_cut: u64,
    /// Connections being served now (a gauge).
    pub connections: u64,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every worker is serving a connection.
    Busy,
    /// The peer address holds its share of the workers.
    Peer,
}

/// Who holds the workers: sans-I/O admission for the accepting thread,
/// released by the worker when its connection ends.
#[derive(Debug, Default)]
pub struct Slots {
    /// Peer addresses with connections being served, and how many each:
    /// at most `METRICS_CONNECTIONS_MAX` entries.
    peers: Vec<(IpAddr, usize)>,
    open: usize,
}

impl Slots {
    /// Admits a connection from `peer`, or says why not.
    pub fn admit(&mut self, peer: IpAddr) -> Result<(), Refusal> {
        let peer = peer.to_canonical();
        if self.open >= METRICS_CONNECTIONS_MAX {
            return Err(Refusal::Busy);
        }
        match self.peers.iter_mut().find(|(ip, _)| *ip == peer) {
            Some((_, n)) if *n >= METRICS_CONNECTIONS_PER_PEER => return Err(Refusal::Peer),
            Some((_, n)) => *n += 1,
            None => self.peers.push((peer, 1)),
        }
        self.open += 1;
        Ok(())
    }

    /// Releases a connection `admit` let in.
    pub fn release(&mut self, peer: IpAddr) {
        let peer = peer.to_canonical();
        if let Some(i) = self.peers.iter().position(|(ip, _)| *ip == peer) {
            self.peers[i].1 -= 1;
            if self.peers[i].1 == 0 {
                self.peers.swap_remove(i);
            }
            self.open -= 1;
        }
    }

    /// Connections being served.
    pub fn open(&self) -> usize {
        self.open
    }
}

/// What is left of `deadline` at `now`: None once it has passed (never a
/// zero wait, which a socket time-out would take as "forever").
pub fn remaining(deadline: Instant, now: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(now);
    (!left.is_zero()).then_some(left)
}

/// What the accepting thread and the workers share.
struct Shared {
    reader: StatsReader,
    stop: AtomicBool,
    slots: Mutex<Slots>,
    requests: AtomicU64,
    refused_busy: AtomicU64,
    refused_peer: AtomicU64,
    deadline_cut: AtomicU64,
}

impl Shared {
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        // Slots stays consistent across a panic (no partial update), so a
        // poisoned lock is still good.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn counters(&self) -> MetricsCounters {
        MetricsCounters {
            requests: self.requests.load(Ordering::Relaxed),
            refused_busy: self.refused_busy.load(Ordering::Relaxed),
            refused_peer: self.refused_peer.load(Ordering::Relaxed),
            deadline_cut: self.deadline_cut.load(Ordering::Relaxed),
            connections: self.slots().open() as u64,
        }
    }
}

/// An admitted connection, handed to a worker.
struct Admitted {
    stream: TcpStream,
    peer: IpAddr,
    deadline: Instant,
}

/// The endpoint's threads; stop when dropped (or by `stop`).
pub struct PrometheusServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

/// The endpoint's address, bound but not yet served: `serve` binds it
/// before the gateway starts (so a taken address stops nothing), and
/// serves it once the gateway has created its stats file.
pub struct PrometheusListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl PrometheusListener {
    /// Binds `addr`.
    ///
    /// # Errors
    ///
    /// The address cannot be bound (the caller names it: the error does
    /// not).
    pub fn bind(addr: SocketAddr) -> std::io::Result<PrometheusListener> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        Ok(PrometheusListener { listener, addr })
    }

    /// The address bound (the port resolved if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens the stats file at `stats` (it must be valid and its gateway
    /// running) and serves it from new threads: one accepting,
    /// `METRICS_CONNECTIONS_MAX` serving. They inherit the calling
    /// thread's CPU set.
    ///
    /// # Errors
    ///
    /// The stats file is unusable, or a thread cannot be started.
    pub fn serve(self, stats: &Path) -> std::io::Result<PrometheusServer> {
        PrometheusServer::serve(self, stats)
    }
}

impl PrometheusServer {
    /// [`PrometheusListener::bind`], then [`PrometheusListener::serve`].
    ///
    /// # Errors
    ///
    /// The address cannot be bound, the stats file is unusable, or a
    /// thread cannot be started.
    pub fn start(addr: SocketAddr, stats: &Path) -> std::io::Result<PrometheusServer> {
        PrometheusListener::bind(addr)?.serve(stats)
    }

    fn serve(bound: PrometheusListener, stats: &Path) -> std::io::Result<PrometheusServer> {
        let reader = StatsReader::open(stats).map_err(std::io::Error::other)?;
        let PrometheusListener { listener, addr } = bound;
        let shared = Arc::new(Shared {
            reader,
            stop: AtomicBool::new(false),
            slots: Mutex::new(Slots::default()),
            requests: AtomicU64::new(0),
            refused_busy: AtomicU64::new(0),
            refused_peer: AtomicU64::new(0),
            deadline_cut: AtomicU64::new(0),
        });
        let mut server = PrometheusServer {
            addr,
            shared: shared.clone(),
            acceptor: None,
            workers: Vec::with_capacity(METRICS_CONNECTIONS_MAX),
        };
        // Never more admitted connections than workers, so a send never
        // waits.
        let (tx, rx) = crossbeam::channel::bounded::<Admitted>(METRICS_CONNECTIONS_MAX);
        for i in 0..METRICS_CONNECTIONS_MAX {
            let (rx, shared) = (rx.clone(), shared.clone());
            // On failure `server` drops here and stops what did start.
            server.workers.push(
                std::thread::Builder::new()
                    .name(format!("prom-worker-{i}"))
                    .stack_size(WORKER_STACK)
                    .spawn(move || work(&rx, &shared))?,
            );
        }
        server.acceptor = Some(
            std::thread::Builder::new()
                .name("ordergate-prometheus".into())
                .spawn(move || accept(&listener, &tx, &shared))?,
        );
        Ok(server)
    }

    /// The address it listens on (the port resolved if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint's counters so far.
    pub fn counters(&self) -> MetricsCounters {
        self.shared.counters()
    }

    /// Stops the endpoint (waiting at most `METRICS_REQUEST_DEADLINE` for
    /// the connections being served) and returns its final counters.
    pub fn stop(mut self) -> MetricsCounters {
        self.shutdown();
        self.shared.counters()
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.acceptor.take() {
            // Wake the blocking accept with a connection of our own.
            let mut wake = self.addr;
            if wake.ip().is_unspecified() {
                wake.set_ip(match wake {
                    SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = TcpStream::connect_timeout(&wake, METRICS_REQUEST_DEADLINE);
            let _ = t.join();
        }
        // The acceptor dropped its sender: each worker ends its connection
        // (by the deadline at the latest), finds the channel closed, ends.
        for t in self.workers.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The accepting thread: admits or refuses each connection, never blocking
/// on one.
fn accept(listener: &TcpListener, tx: &Sender<Admitted>, shared: &Shared) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors, or the like: do not spin on it.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let deadline = Instant::now() + METRICS_REQUEST_DEADLINE;
        let peer = peer.ip();
        let admitted = shared.slots().admit(peer);
        let (stream, refusal) = match admitted {
            Err(refusal) => (stream, refusal),
            Ok(()) => match tx.try_send(Admitted {
                stream,
                peer,
                deadline,
            }) {
                Ok(()) => continue,
                // Cannot happen (admitted ≤ workers ≤ capacity): refuse
                // rather than wait.
                Err(e) => {
                    shared.slots().release(peer);
                    (e.into_inner().stream, Refusal::Busy)
                }
            },
        };
        let (counter, body) = match refusal {
            Refusal::Busy => (
                &shared.refused_busy,
                "busy: every metrics connection is in use, try again\n",
            ),
            Refusal::Peer => (
                &shared.refused_peer,
                "busy: this address holds its share of metrics connections\n",
            ),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        refuse(stream, "503 Service Unavailable", body);
    }
}

/// Answers `status` on a connection no worker will serve, without ever
/// blocking: the response is small and the socket's send buffer empty.
fn refuse(mut stream: TcpStream, status: &str, body: &str) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let _ = stream.write(&response(status, TEXT, body));
    close(stream);
}

/// Closes after a response: FIN first, then whatever the client sent that
/// was not read (a few KiB at most, without waiting), so that the close
/// does not reset the connection and lose the response.
fn close(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    if stream.set_nonblocking(true).is_ok() {
        let mut sink = [0u8; 1024];
        for _ in 0..METRICS_REQUEST_HEAD_MAX / sink.len() {
            match stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// A worker: serves admitted connections one at a time until the accepting
/// thread is gone.
fn work(rx: &Receiver<Admitted>, shared: &Shared) {
    for Admitted {
        mut stream,
        peer,
        deadline,
    } in rx.iter()
    {
        if !serve_one(&mut stream, deadline, shared) {
            shared.deadline_cut.fetch_add(1, Ordering::Relaxed);
        }
        close(stream);
        shared.slots().release(peer);
    }
}

/// Reads one request head and writes one response, all by `deadline`.
/// False if the deadline cut it (a 408 is sent if the request was not
/// complete); true otherwise, also when the client went away or failed.
fn serve_one(stream: &mut TcpStream, deadline: Instant, shared: &Shared) -> bool {
    let mut head = [0u8; METRICS_REQUEST_HEAD_MAX];
    let mut len = 0;
    let answer = loop {
        let mut headers = [httparse::EMPTY_HEADER; METRICS_REQUEST_HEADERS_MAX];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                break route(
                    request.method.unwrap_or_default(),
                    request.path.unwrap_or_default(),
                );
            }
            Ok(httparse::Status::Partial) if len == head.len() => {
                break refusal(
                    "431 Request Header Fields Too Large",
                    "request head too long\n",
                );
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                break refusal("431 Request Header Fields Too Large", "too many headers\n");
            }
            Err(_) => break refusal("400 Bad Request", "bad request\n"),
        }
        let Some(left) = remaining(deadline, Instant::now()) else {
            refuse_late(stream);
            return false;
        };
        if stream.set_read_timeout(Some(left)).is_err() {
            return true;
        }
        match stream.read(&mut head[len..]) {
            Ok(0) if len == 0 => return true,
            Ok(0) => break refusal("400 Bad Request", "incomplete request\n"),
            Ok(n) => len += n,
            Err(e) if is_wait(&e) => {}
            Err(_) => return true,
        }
    };
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let out = match answer {
        Answer::Ready(out) => out,
        Answer::Metrics => response("200 OK", CONTENT_TYPE, &metrics(shared)),
    };
    write_by(stream, &out, deadline)
}

/// A 408 for a request the deadline cut: the socket's send buffer is empty,
/// so a non-blocking write takes it whole.
fn refuse_late(stream: &mut TcpStream) {
    if stream.set_nonblocking(true).is_ok() {
        let body = "request not complete within the deadline\n";
        let _ = stream.write(&response("408 Request Timeout", TEXT, body));
    }
}

/// Writes all of `out` by `deadline`: false if the deadline cut it.
fn write_by(stream: &mut TcpStream, out: &[u8], deadline: Instant) -> bool {
    let mut at = 0;
    while at < out.len() {
        let Some(left) = remaining(deadline, Instant::now()) else {
            return false;
        };
        if stream.set_write_timeout(Some(left)).is_err() {
            return true;
        }
        match stream.write(&out[at..]) {
            Ok(0) => return true,
            Ok(n) => at += n,
            Err(e) if is_wait(&e) => {}
            Err(_) => return true,
        }
    }
    true
}

/// A socket time-out (or a signal): time to look at the deadline again.
fn is_wait(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// What to answer a request with.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A response ready to write.
    Ready(Vec<u8>),
    /// `GET /metrics`: rendered from the stats file when written.
    Metrics,
}

fn refusal(status: &str, body: &str) -> Answer {
    Answer::Ready(response(status, TEXT, body))
}

/// A whole HTTP/1.0 response.
fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The answer to a parsed request's method and target.
fn route(method: &str, target: &str) -> Answer {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/metrics" {
        return refusal("404 Not Found", "not found: try /metrics\n");
    }
    if method != "GET" {
        return refusal("405 Method Not Allowed", "GET only\n");
    }
    Answer::Metrics
}

/// The exposition: the stats file's figures, then the endpoint's own.
fn metrics(shared: &Shared) -> String {
    let mut out = render(&shared.reader.snapshot());
    render_endpoint(&mut out, &shared.counters());
    out
}

/// The endpoint's own series, `ordergate_metrics_*`.
pub fn render_endpoint(out: &mut String, c: &MetricsCounters) {
    for (name, kind, help, value) in [
        (
            "ordergate_metrics_requests_total",
            "counter",
            "Requests the metrics endpoint answered (200, 400, 404, 405, 431).",
            c.requests,
        ),
        (
            "ordergate_metrics_refused_busy_total",
            "counter",
            "Connections answered 503 at once: every metrics worker was busy.",
            c.refused_busy,
        ),
        (
            "ordergate_metrics_refused_peer_total",
            "counter",
            "Connections answered 503 at once: their address held its share of metrics workers.",
            c.refused_peer,
        ),
        (
            "ordergate_metrics_deadline_cut_total",
            "counter",
            "Connections closed at the whole-request deadline (408 if the request was not complete).",
            c.deadline_cut,
        ),
        (
            "ordergate_metrics_connections",
            "gauge",
            "Connections the metrics endpoint is serving.",
            c.connections,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

/// Stats families whose exported name says more than the mechanical rule
/// would (`in_bytes` reads poorly): the family, and the name's stem.
const NAME_OVERRIDES: [(&str, &str); 2] =
    [("bytes_in", "received_bytes"), ("bytes_out", "sent_bytes")];

/// How one stats family is exported: its Prometheus name, and the factor
/// that turns its stored integers into the name's unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Exported {
    pub name: String,
    /// Stored units per exported unit: 1 for plain counts, 10⁹ for ns →
    /// seconds, 10⁶ for ppm → ratio. (A division, not a multiplication by
    /// 1e-9: it is correctly rounded, so 1000 ns prints as 0.000001.)
    pub per_unit: u64,
}

/// The stats family `family`'s exported name, by Prometheus' rules: the
/// `ordergate_` namespace (`ordergate_engine_` for the engine's block),
/// units in base units, spelled out and last (`_ns` → `_seconds`,
/// `bytes_*` → `*_bytes`, `_ppm` → `_ratio` in 0..1), and `_total` after
/// them for a counter. `turn_ns_max` → `ordergate_turn_max_seconds`,
/// `bytes_discarded` → `ordergate_discarded_bytes_total`.
pub fn exported(scope: Scope, family: &str, kind: Kind) -> Exported {
    let prefix = match scope {
        Scope::Reactor => "ordergate_",
        Scope::Engine => "ordergate_engine_",
    };
    let family = NAME_OVERRIDES
        .iter()
        .find(|(f, _)| *f == family)
        .map_or(family, |(_, stem)| stem);
    let mut unit = None;
    let mut per_unit = 1;
    let mut words = Vec::new();
    for word in family.split('_') {
        match word {
            "ns" => (unit, per_unit) = (Some("seconds"), 1_000_000_000),
            "us" => (unit, per_unit) = (Some("seconds"), 1_000_000),
            "ms" => (unit, per_unit) = (Some("seconds"), 1_000),
            "ppm" => (unit, per_unit) = (Some("ratio"), 1_000_000),
            "bytes" => unit = Some("bytes"),
            word => words.push(word),
        }
    }
    let mut name = format!("{prefix}{}", words.join("_"));
    if let Some(unit) = unit {
        name.push('_');
        name.push_str(unit);
    }
    if kind == Kind::Counter {
        name.push_str("_total");
    }
    Exported { name, per_unit }
}

/// The family's help text in the exported unit.
fn exported_help(help: &str, per_unit: u64) -> String {
    help.replace(", ppm", ", 0..1")
        .replace(", ns", if per_unit == 1 { ", ns" } else { ", seconds" })
}

/// `p99` → `0.99`, `p999` → `0.999`, `p50` → `0.5`; else None.
fn quantile(detail: &str) -> Option<String> {
    let digits = detail.strip_prefix('p')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let q = format!("0.{digits}");
    let q = q.trim_end_matches('0');
    Some(if q.ends_with('.') {
        format!("{q}0")
    } else {
        q.to_owned()
    })
}

/// A value in its exported unit: integers as they are, scaled ones as
/// decimals.
fn value_text(value: u64, per_unit: u64) -> String {
    if per_unit == 1 {
        value.to_string()
    } else {
        format!("{}", value as f64 / per_unit as f64)
    }
}

/// A latency family exported as a summary: the quantile family (details
/// `p50`, `p99`, …) and, when the file has them, its count (the family
/// without its unit: `recv_to_ring`) and its sum (`…_ns_sum`).
struct SummaryParts<'a> {
    quantiles: &'a str,
    count: Option<&'a str>,
    sum: Option<&'a str>,
}

/// The summaries among a snapshot's families.
fn summaries(s: &Snapshot) -> Vec<SummaryParts<'_>> {
    let mut out: Vec<SummaryParts<'_>> = Vec::new();
    for label in s.labels.iter() {
        let family = label.family();
        if label.detail().and_then(quantile).is_none() || out.iter().any(|p| p.quantiles == family)
        {
            continue;
        }
        let all_quantiles = s
            .labels
            .iter()
            .filter(|l| l.scope == label.scope && l.family() == family)
            .all(|l| l.detail().and_then(quantile).is_some());
        if !all_quantiles {
            continue;
        }
        let stem: Vec<&str> = family
            .split('_')
            .filter(|w| !["ns", "us", "ms"].contains(w))
            .collect();
        let stem = stem.join("_");
        let find = |name: &str| {
            s.labels
                .iter()
                .find(|l| l.scope == label.scope && l.name == name)
                .map(|l| l.family())
        };
        out.push(SummaryParts {
            quantiles: family,
            count: find(&stem),
            sum: find(&format!("{family}_sum")),
        });
    }
    out
}

/// Each block's value of `label`: per reactor, or the engine's.
fn blocks(s: &Snapshot, label: &Label) -> Vec<(Option<usize>, u64)> {
    match label.scope {
        Scope::Reactor => s
            .reactors
            .iter()
            .enumerate()
            .map(|(r, b)| (Some(r), b.values[label.slot as usize]))
            .collect(),
        Scope::Engine => vec![(None, s.engine.values[label.slot as usize])],
    }
}

/// `{reactor="0",reason="THROTTLED"}`, or nothing.
fn label_set(reactor: Option<usize>, extra: Option<String>) -> String {
    let mut labels: Vec<String> = Vec::new();
    if let Some(r) = reactor {
        labels.push(format!("reactor=\"{r}\""));
    }
    labels.extend(extra);
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", labels.join(","))
    }
}

/// The whole exposition for one snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = writeln!(
        out,
        "# HELP ordergate_start_time_seconds When the gateway started, Unix time.\n\
         # TYPE ordergate_start_time_seconds gauge\n\
         ordergate_start_time_seconds {}",
        s.start_ns as f64 / 1e9
    );
    let _ = writeln!(
        out,
        "# HELP ordergate_stats_age_seconds Time since the reactor last published its figures.\n\
         # TYPE ordergate_stats_age_seconds gauge"
    );
    for (r, b) in s.reactors.iter().enumerate() {
        let age = if b.publish_ns == 0 {
            f64::NAN
        } else {
            s.taken_ns.saturating_sub(b.publish_ns) as f64 / 1e9
        };
        let _ = writeln!(out, "ordergate_stats_age_seconds{{reactor=\"{r}\"}} {age}");
    }

    // Help text by stable id, from this build's catalog.
    let catalog = catalog();
    let help_of = |id: u32| {
        catalog
            .iter()
            .find(|c| c.id == id)
            .map_or("ordergate counter.", |c| c.help)
    };
    let summaries = summaries(s);
    // Families in label-table order; each family's samples together. The
    // count and sum of a summary go out with it, not on their own.
    let mut done: Vec<(Scope, &str)> = Vec::new();
    for first in s.labels.iter() {
        let family = first.family();
        let part_of_summary = summaries
            .iter()
            .any(|p| p.count == Some(family) || p.sum == Some(family));
        if done.contains(&(first.scope, family)) || part_of_summary {
            continue;
        }
        done.push((first.scope, family));
        let members: Vec<&Label> = s
            .labels
            .iter()
            .filter(|l| l.scope == first.scope && l.family() == family)
            .collect();
        if let Some(parts) = summaries.iter().find(|p| p.quantiles == family) {
            render_summary(&mut out, s, first, &members, parts, help_of(first.id));
            continue;
        }
        let Exported { name, per_unit } = exported(first.scope, family, first.kind);
        let kind = match first.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = exported_help(help_of(first.id), per_unit);
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for label in members {
            let detail = label.detail().map(|d| format!("reason=\"{d}\""));
            for (reactor, value) in blocks(s, label) {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    label_set(reactor, detail.clone()),
                    value_text(value, per_unit)
                );
            }
        }
    }
    out
}

/// A latency family as a Prometheus summary: per block, its quantiles,
/// `_sum` and `_count`.
fn render_summary(
    out: &mut String,
    s: &Snapshot,
    first: &Label,
    members: &[&Label],
    parts: &SummaryParts<'_>,
    help: &str,
) {
    let Exported { name, per_unit } = exported(first.scope, parts.quantiles, Kind::Gauge);
    let help = exported_help(help, per_unit);
    let _ = writeln!(
        out,
        "# HELP {name} {help} _count: messages measured; _sum: their latencies added up.\n\
         # TYPE {name} summary"
    );
    let find = |family: Option<&str>| {
        family.and_then(|f| {
            s.labels
                .iter()
                .find(|l| l.scope == first.scope && l.name == f)
        })
    };
    let sum = find(parts.sum);
    let count = find(parts.count);
    let reactors: Vec<Option<usize>> = blocks(s, first).into_iter().map(|(r, _)| r).collect();
    for (i, reactor) in reactors.into_iter().enumerate() {
        for label in members {
            let q = label.detail().and_then(quantile).unwrap_or_default();
            let value = blocks(s, label)[i].1;
            let _ = writeln!(
                out,
                "{name}{} {}",
                label_set(reactor, Some(format!("quantile=\"{q}\""))),
                value_text(value, per_unit)
            );
        }
        if let Some(sum) = sum {
            let value = blocks(s, sum)[i].1;
            let _ = writeln!(
                out,
                "{name}_sum{} {}",
                label_set(reactor, None),
                value_text(value, per_unit)
            );
        }
        if let Some(count) = count {
            let value = blocks(s, count)[i].1;
            let _ = writeln!(out, "{name}_count{} {value}", label_set(reactor, None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn slots_bound_all_connections_and_each_peers_share() {
        let mut slots = Slots::default();
        for _ in 0..METRICS_CONNECTIONS_PER_PEER {
            assert_eq!(slots.admit(ip(1)), Ok(()));
        }
        assert_eq!(slots.admit(ip(1)), Err(Refusal::Peer));
        // The same address written as IPv4-mapped IPv6 is the same peer.
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(slots.admit(mapped), Err(Refusal::Peer));
        let mut peer = 2;
        while slots.open() < METRICS_CONNECTIONS_MAX {
            assert_eq!(slots.admit(ip(peer)), Ok(()));
            peer += 1;
        }
        assert_eq!(slots.admit(ip(200)), Err(Refusal::Busy));
        slots.release(mapped);
        assert_eq!(slots.open(), METRICS_CONNECTIONS_MAX - 1);
        assert_eq!(slots.admit(ip(200)), Ok(()));
        assert_eq!(slots.admit(ip(1)), Err(Refusal::Busy));
        // Releasing what was never admitted changes nothing.
        slots.release(ip(250));
        assert_eq!(slots.open(), METRICS_CONNECTIONS_MAX);
        for last in [1, 1, 200, 2] {
            slots.release(ip(last));
        }
        assert_eq!(slots.admit(ip(1)), Ok(()));
        assert_eq!(slots.admit(ip(1)), Ok(()));
        assert_eq!(slots.admit(ip(1)), Err(Refusal::Peer));
    }

    #[test]
    fn remaining_is_never_a_zero_wait() {
        let now = Instant::now();
        let deadline = now + Duration::from_millis(5);
        assert_eq!(remaining(deadline, now), Some(Duration::from_millis(5)));
        assert_eq!(remaining(deadline, deadline), None);
        assert_eq!(remaining(now, deadline), None);
    }

    #[test]
    fn routes_only_get_metrics() {
        assert_eq!(route("GET", "/metrics"), Answer::Metrics);
        assert_eq!(route("GET", "/metrics?x=1"), Answer::Metrics);
        let status = |a: Answer| match a {
            Answer::Ready(out) => String::from_utf8(out)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_owned(),
            Answer::Metrics => "metrics".to_owned(),
        };
        assert_eq!(status(route("GET", "/")), "HTTP/1.0 404 Not Found");
        assert_eq!(status(route("GET", "/metricsx")), "HTTP/1.0 404 Not Found");
        assert_eq!(
            status(route("POST", "/metrics")),
            "HTTP/1.0 405 Method Not Allowed"
        );
    }

    #[test]
    fn responses_carry_their_length_and_close() {
        let out = String::from_utf8(response("200 OK", CONTENT_TYPE, "a 1\n")).unwrap();
        assert_eq!(
            out,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
    }

    #[test]
    fn the_endpoint_series_are_well_formed() {
        let mut out = String::new();
        render_endpoint(
            &mut out,
            &MetricsCounters {
                requests: 7,
                refused_busy: 1,
                refused_peer: 2,
                deadline_cut: 3,
                connections: 4,
            },
        );
        for line in [
            "# TYPE ordergate_metrics_requests_total counter",
            "ordergate_metrics_requests_total 7",
            "ordergate_metrics_refused_busy_total 1",
            "ordergate_metrics_refused_peer_total 2",
            "ordergate_metrics_deadline_cut_total 3",
            "# TYPE ordergate_metrics_connections gauge",
            "ordergate_metrics_connections 4",
        ] {
            assert!(out.lines().any(|l| l == line), "{line:?} in:\n{out}");
        }
        // Every family: HELP, TYPE, one sample.
        assert_eq!(out.lines().count(), 5 * 3);
    }

    #[test]
    fn names_are_in_base_units_spelled_out_and_last() {
        use super::super::stats::{Kind::*, Scope::*};
        let name = |scope, family, kind| exported(scope, family, kind).name;
        assert_eq!(
            name(Reactor, "messages_in", Counter),
            "ordergate_messages_in_total"
        );
        assert_eq!(
            name(Reactor, "turn_ns_max", Gauge),
            "ordergate_turn_max_seconds"
        );
        assert_eq!(
            name(Reactor, "duty_window_ns", Gauge),
            "ordergate_duty_window_seconds"
        );
        assert_eq!(
            name(Reactor, "duty_busy_ppm", Gauge),
            "ordergate_duty_busy_ratio"
        );
        assert_eq!(
            name(Reactor, "bytes_in", Counter),
            "ordergate_received_bytes_total"
        );
        assert_eq!(
            name(Reactor, "bytes_discarded", Counter),
            "ordergate_discarded_bytes_total"
        );
        assert_eq!(
            name(Engine, "commands", Counter),
            "ordergate_engine_commands_total"
        );
        assert_eq!(
            exported(Reactor, "recv_to_ring_ns", Gauge).per_unit,
            1_000_000_000
        );
        assert_eq!(
            exported(Reactor, "duty_busy_ppm", Gauge).per_unit,
            1_000_000
        );
        assert_eq!(value_text(8_191, 1_000_000_000), "0.000008191");
        assert_eq!(value_text(1_000, 1_000_000_000), "0.000001");
        assert_eq!(value_text(500_000, 1_000_000), "0.5");
        assert_eq!(value_text(7, 1), "7");
        assert_eq!(
            exported_help("Longest reactor turn since start, ns.", 1_000_000_000),
            "Longest reactor turn since start, seconds."
        );
    }

    #[test]
    fn the_latency_is_a_summary_with_sum_and_count() {
        use super::super::stats::{BlockSnapshot, Label};
        // Every counter of this build in one reactor block, each valued by
        // its slot, plus the latency figures.
        let catalog = catalog();
        let mut labels = Vec::new();
        let mut values = Vec::new();
        for (slot, c) in catalog
            .iter()
            .filter(|c| c.scope == Scope::Reactor)
            .enumerate()
        {
            labels.push(Label {
                id: c.id,
                scope: c.scope,
                kind: c.kind,
                slot: slot as u32,
                name: c.label(),
            });
            values.push(match c.label().as_str() {
                "recv_to_ring" => 4,
                "recv_to_ring_ns.p50" => 1_000,
                "recv_to_ring_ns.p99" => 3_000,
                "recv_to_ring_ns.p999" => 3_000,
                "recv_to_ring_ns_max" => 3_000,
                "recv_to_ring_ns_sum" => 7_000,
                "duty_busy_ppm" => 250_000,
                _ => slot as u64,
            });
        }
        let snapshot = Snapshot {
            pid: 1,
            start_ns: 1,
            taken_ns: 2,
            labels: labels.into(),
            reactors: vec![BlockSnapshot {
                publish_ns: 1,
                consistent: true,
                values,
            }],
            engine: BlockSnapshot {
                publish_ns: 1,
                consistent: true,
                values: Vec::new(),
            },
        };
        let text = render(&snapshot);
        for line in [
            "# TYPE ordergate_recv_to_ring_seconds summary",
            "ordergate_recv_to_ring_seconds{reactor=\"0\",quantile=\"0.5\"} 0.000001",
            "ordergate_recv_to_ring_seconds{reactor=\"0\",quantile=\"0.99\"} 0.000003",
            "ordergate_recv_to_ring_seconds{reactor=\"0\",quantile=\"0.999\"} 0.000003",
            "ordergate_recv_to_ring_seconds_sum{reactor=\"0\"} 0.000007",
            "ordergate_recv_to_ring_seconds_count{reactor=\"0\"} 4",
            "ordergate_recv_to_ring_max_seconds{reactor=\"0\"} 0.000003",
            "ordergate_duty_busy_ratio{reactor=\"0\"} 0.25",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
        }
        // The count and the sum are not families of their own.
        assert!(!text.contains("ordergate_recv_to_ring_total"), "{text}");
        assert!(!text.contains("sum_seconds"), "{text}");
        assert!(!text.contains("_ns"), "{text}");
        assert!(!text.contains("ppm"), "{text}");
    }

    #[test]
    fn quantiles_from_details() {
        assert_eq!(quantile("p50").as_deref(), Some("0.5"));
        assert_eq!(quantile("p99").as_deref(), Some("0.99"));
        assert_eq!(quantile("p999").as_deref(), Some("0.999"));
        assert_eq!(quantile("p0").as_deref(), Some("0.0"));
        assert_eq!(quantile("THROTTLED"), None);
        assert_eq!(quantile("p"), None);
        assert_eq!(quantile("pX"), None);
    }
}
