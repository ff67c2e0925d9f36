//! `ordergate-bench compare`: what ordergate adds to a loopback round trip, next
//! to what HAProxy in TCP mode adds, measured in the same run by the same
//! client code.
//!
//! ```text
//!  (a) echo:      client ──64 B──▶ echo thread ──64 B──▶ client                      the floor
//!  (b) ordergate: client ──NewOrder 64 B──▶ gateway ──OrderAccepted 60 B──▶ client   (then a cancel, not timed)
//!  (c) haproxy:   client ──64 B──▶ haproxy ──▶ echo thread ──▶ haproxy ──▶ client     mode tcp, nbthread 1
//!
//!  round 1: a a a … b b b … c c c …   (each: warm-up, not recorded, then N recorded)
//!  round 2: a a a … b b b … c c c …
//!  …        one histogram per row, merged over the rounds
//! ```
//!
//! Every round trip is closed loop (one request outstanding, TCP_NODELAY
//! everywhere), timed from before the write to after the last byte of the
//! answer is read. The client's own work inside the clock is the same in
//! every row: the ordergate row's NewOrder is sealed before the clock starts
//! and the reply's tag is checked after it stops, as the echo row's frame is
//! ready-made and its answer unchecked. The rows take turns by rounds so
//! that a burst of noise
//! from the rest of the machine lands on all three alike.
//!
//! **Noise on a small shared host.** On a 2-core VM with other jobs
//! running, the dominant noise is not bursts but placement: a wake-up that
//! lands on the other CPU, busy with someone's job, apparently waits ~20 µs
//! for that job to be preempted, and the scheduler keeps a thread on its
//! CPU for hundreds of milliseconds. So a row's round p50 jumps by whole
//! multiples of ~20 µs (echo 4 → 42 µs: two wake-ups; HAProxy 13 → 53 →
//! 93 µs: four) for many rounds at a time, independently per row, and
//! interleaving cannot cancel that — worse, one row can stay in a slow placement for a whole run and
//! the run still looks steady (HAProxy at 55 µs instead of 13 µs for all
//! 50 rounds, ratio 3.7% "met"). So by default every thread of the
//! comparison and HAProxy run on one CPU ([`default_cpu`], `--cpu N`; `--cpu
//! any` lets the scheduler place them): every wake-up is then a switch on
//! the CPU just given up, the same condition for all three rows, and five
//! runs agreed within a few percent. The report prints the spread of the
//! rounds' own p50s and flags runs whose rounds disagree.
//!
//! **Added latency** is a row's percentile minus the echo's at the same
//! percentile: `ordergate added = b − a`, `HAProxy added = c − a`. (A
//! difference of percentiles, not a percentile of differences: the rows are
//! separate samples.) The headline is `ordergate added ÷ HAProxy added` at
//! p50: the cost of the gateway — authentication, rate limits, the engine
//! and its rings — as a fraction of the cost of the one proxy hop users
//! would otherwise put in front of an engine. Goals are printed, never
//! asserted.
//!
//! **What the server side costs.** Beside the latency, each row reports
//! per request the system calls, wake-ups and CPU time of its server
//! side ([`ServerCost`]): (a) the echo thread, (b) the reactor thread and
//! its SQPOLL thread if any, (c) HAProxy's process and the echo thread
//! behind it. CPU (the threads' CPU-time clocks) and wake-ups (voluntary
//! context switches) are read around every row of the timed rounds; system
//! calls are counted by a perf counter on the `raw_syscalls:sys_enter`
//! tracepoint per server thread ([`crate::taskstat`]), which adds to each
//! of their system calls, so only in one more round per row after the
//! timed ones, not recorded. Row (b) serves two requests per round trip
//! (the timed NewOrder and its cancel): figures are per request. The
//! reactor's own enter count over the whole run (the `serve` summary's
//! line) closes the table.
//!
//! The gateway runs in process as `demo` starts it ([`crate::inprocess::unthrottled_gateway`]:
//! one reactor with the engine on its thread, a fresh key); only the idle
//! strategy (`--idle`, see [`IDLE_DEFAULT`]) and the reactor's CPU (the
//! pinned one) are chosen here. HAProxy is a
//! child process with a generated config in a private temp dir, killed and
//! the dir removed when [`Haproxy`] drops (on every return path); should
//! ordergate die without unwinding (the release build aborts on panic, or
//! SIGKILL), the kernel kills HAProxy too (`PR_SET_PDEATHSIG`). When it
//! cannot be found the report has two rows and says why; only the command
//! line may install it (`Install::IfRoot`).

use std::fmt::Write as _;

use serde_json::{Value, json};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use zeroize::Zeroizing;

use crate::echo::{
    EchoClient, EchoThreads, WARMUP_ROUND_TRIPS, ordergate_round_trips_into,
    spawn_echo_server_tracked,
};
use crate::inprocess::{default_cpu, unthrottled_gateway_sqpoll};
use crate::load::new_histogram;
use ordergate::constants::KEEPALIVE_MS_MAX;
use ordergate::reactor::idle::IdleKind;
use ordergate::reactor::report::UringCounters;
use ordergate_client::blocking::{ConnectOptions, Connection, read_urandom};

/// Recorded round trips per row per round when `--round-trips` is not
/// given. With [`ROUNDS_DEFAULT`], 40 000 samples a row (40 beyond p99.9)
/// in about 4 s on a 2-core VM; rounds of ~30 ms, short against the
/// bursts of other work on a shared machine, which then land on all three
/// rows alike instead of on one row's whole round.
pub const ROUND_TRIPS_DEFAULT: usize = 800;
/// Bound on `--round-trips`: a round's echo and HAProxy rows leave the
/// ordergate session silent, and 100 000 round trips of each (a few
/// seconds) stay far inside the 2 × keepalive the gateway allows.
pub const ROUND_TRIPS_MAX: usize = 100_000;
/// Rounds when `--rounds` is not given.
pub const ROUNDS_DEFAULT: usize = 50;
/// Bound on `--rounds`.
pub const ROUNDS_MAX: usize = 1_000;
/// Unrecorded round trips at the start of each row in the first round:
/// connection set-up, page faults, caches and CPU frequency settle.
pub const WARMUP_FIRST_ROUND: usize = WARMUP_ROUND_TRIPS;
/// Unrecorded round trips at the start of each row in every later round:
/// the other rows' traffic has just evicted this one's caches and its
/// threads have gone to sleep.
pub const WARMUP_PER_ROUND: usize = 100;

/// The gateway's idle strategy when `--idle` is not given. Back-off: on a
/// 2-core machine a busy-spinning reactor takes a whole core from the
/// echo, HAProxy and the client during rows (a) and (c), which moves the
/// floor itself (measured here: p99.9 of every row in milliseconds, from
/// time-slice preemption), and row (b) suffers too: the client its send
/// wakes is placed on the reactor's CPU (wake-affine) and waits for the
/// spinner's time slice (measured: row (b) p50 20 µs unpinned). Pinned to
/// the client's CPU, the back-off reactor learns that no spin is ever hit
/// and blocks in the enter that sends each answer: one kernel entry per
/// request (tuning/CAPACITY.md). Busy-spin needs `--cpu any`: pinned to
/// the client's CPU it would starve the client.
pub const IDLE_DEFAULT: IdleKind = IdleKind::Backoff;

/// The issue's goals, printed for context: ordergate should add at most a
/// tenth of what a TCP proxy hop adds, and at most 1.5 µs at p50.
pub const GOAL_RATIO_P50: f64 = 0.10;
pub const GOAL_ADDED_P50_US: f64 = 1.5;

/// How long HAProxy may take to accept on its port after it is started.
pub const HAPROXY_START_TIMEOUT: Duration = Duration::from_secs(5);
/// Fresh ports tried when HAProxy cannot bind the one picked (another
/// process took it between our probe and HAProxy's bind).
const HAPROXY_PORT_ATTEMPTS: usize = 3;

/// The compare session's API key id.
const COMPARE_KEY_ID: u64 = 1;
/// cl_ord_ids of the measured orders: far from any a session numbers from 1.
const CL_ORD_ID_BASE: u64 = 1 << 62;

/// The command that installs HAProxy on Debian and Ubuntu.
pub const HAPROXY_INSTALL_COMMAND: &str = "apt-get install -y haproxy";

// ---------------------------------------------------------------------------
// finding (and installing) haproxy

/// Whether [`locate_haproxy`] may install HAProxy when it is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    /// Never (tests, libraries).
    Never,
    /// `apt-get install -y haproxy` when running as root and apt-get
    /// exists (the command line).
    IfRoot,
}

/// Where the HAProxy row's binary is, or why the row is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaproxyBinary {
    At(PathBuf),
    /// The row is skipped; the note says why and how to include it.
    Missing {
        note: String,
    },
}

/// `explicit` if given (never installed: a path that does not exist is
/// the way to skip the row), else `haproxy` on PATH or in /usr/sbin, else,
/// with `Install::IfRoot`, installed by apt-get (its output on stderr).
pub fn locate_haproxy(explicit: Option<&Path>, install: Install) -> HaproxyBinary {
    if let Some(path) = explicit {
        return if is_executable(path) {
            HaproxyBinary::At(path.to_path_buf())
        } else {
            HaproxyBinary::Missing {
                note: format!(
                    "--haproxy {}: no executable there; row (c) skipped",
                    path.display()
                ),
            }
        };
    }
    if let Some(path) = find_haproxy() {
        return HaproxyBinary::At(path);
    }
    let how = format!("install it ({HAPROXY_INSTALL_COMMAND}, as root) or pass --haproxy PATH");
    if install == Install::Never {
        return HaproxyBinary::Missing {
            note: format!("haproxy not found on PATH; row (c) skipped: {how}"),
        };
    }
    if !ordergate::sys::is_root() || find_on_path("apt-get").is_none() {
        return HaproxyBinary::Missing {
            note: format!(
                "haproxy not found on PATH (and not root with apt-get, so not installing); \
                 row (c) skipped: {how}"
            ),
        };
    }
    eprintln!(
        "ordergate-bench compare: haproxy not found on PATH; running `{HAPROXY_INSTALL_COMMAND}`"
    );
    match apt_get_install() {
        Ok(()) => match find_haproxy() {
            Some(path) => HaproxyBinary::At(path),
            None => HaproxyBinary::Missing {
                note: format!(
                    "`{HAPROXY_INSTALL_COMMAND}` succeeded but no haproxy binary was found; \
                     row (c) skipped: pass --haproxy PATH"
                ),
            },
        },
        Err(e) => HaproxyBinary::Missing {
            note: format!(
                "`{HAPROXY_INSTALL_COMMAND}` failed ({e}); row (c) skipped: \
                 try `apt-get update && {HAPROXY_INSTALL_COMMAND}`, or pass --haproxy PATH"
            ),
        },
    }
}

/// `haproxy` on PATH, else where Debian puts it (/usr/sbin is not on every
/// PATH).
fn find_haproxy() -> Option<PathBuf> {
    find_on_path("haproxy").or_else(|| {
        ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| is_executable(p))
    })
}

/// The first executable `name` in PATH's directories.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs apt-get with its stdout sent to our stderr, so that stdout keeps
/// only the report.
fn apt_get_install() -> Result<(), String> {
    use std::os::fd::AsFd;
    let stderr = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| e.to_string())?;
    let status = Command::new("apt-get")
        .args(["install", "-y", "haproxy"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("apt-get {status}"))
    }
}

// ---------------------------------------------------------------------------
// haproxy as a child process

/// A running HAProxy forwarding `mode tcp` from a loopback port to one
/// backend. Dropping it kills the process and removes its temp dir.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Haproxy {
    /// Writes the config (see [`haproxy_config`]) into a new private temp
    /// dir and starts `binary -f CFG -db` (foreground), its output going to
    /// a log file beside the config; returns once its port accepts.
    ///
    /// # Errors
    ///
    /// The temp dir could not be made, or HAProxy exited (its log quoted)
    /// or did not accept within [`HAPROXY_START_TIMEOUT`].
    pub fn start(binary: &Path, backend: SocketAddr) -> Result<Haproxy, String> {
        let mut last = String::new();
        for _ in 0..HAPROXY_PORT_ATTEMPTS {
            let dir = private_temp_dir().map_err(|e| format!("temp dir: {e}"))?;
            match Haproxy::start_in(binary, backend, dir) {
                Ok(h) => return Ok(h),
                Err((e, retry)) if retry => last = e,
                Err((e, _)) => return Err(e),
            }
        }
        Err(last)
    }

    /// One attempt; the error says whether a fresh port may help.
    fn start_in(
        binary: &Path,
        backend: SocketAddr,
        dir: PathBuf,
    ) -> Result<Haproxy, (String, bool)> {
        let cleanup = |dir: &Path, e: String, retry: bool| {
            let _ = std::fs::remove_dir_all(dir);
            (e, retry)
        };
        let addr = match free_loopback_port() {
            Ok(addr) => addr,
            Err(e) => return Err(cleanup(&dir, format!("no free port: {e}"), false)),
        };
        let cfg = dir.join("haproxy.cfg");
        let log = dir.join("haproxy.log");
        if let Err(e) = std::fs::write(&cfg, haproxy_config(addr, backend)) {
            return Err(cleanup(&dir, format!("{}: {e}", cfg.display()), false));
        }
        let out = match std::fs::File::create(&log).and_then(|f| Ok((f.try_clone()?, f))) {
            Ok(files) => files,
            Err(e) => return Err(cleanup(&dir, format!("{}: {e}", log.display()), false)),
        };
        let mut command = Command::new(binary);
        command
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(out.0)
            .stderr(out.1);
        // Killed when the thread that started it ends: covers an abort or
        // SIGKILL of ordergate, where Drop never runs.
        ordergate::sys::die_with_parent(&mut command);
        let child = command.spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                return Err(cleanup(
                    &dir,
                    format!("cannot run {}: {e}", binary.display()),
                    false,
                ));
            }
        };
        // From here the guard owns the process and the dir.
        let mut haproxy = Haproxy { child, dir, addr };
        haproxy.wait_ready(&log)?;
        Ok(haproxy)
    }

    fn wait_ready(&mut self, log: &Path) -> Result<(), (String, bool)> {
        let deadline = Instant::now() + HAPROXY_START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let port_taken = text.contains("cannot bind") || text.contains("Address already");
                return Err((
                    format!("haproxy exited ({status}): {}", text.trim()),
                    port_taken,
                ));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
                // It accepts; make sure it is still HAProxy that does.
                std::thread::sleep(Duration::from_millis(10));
                if self.child.try_wait().ok().flatten().is_none() {
                    return Ok(());
                }
                continue;
            }
            if Instant::now() >= deadline {
                return Err((
                    format!(
                        "haproxy did not accept on {} within {HAPROXY_START_TIMEOUT:?}",
                        self.addr
                    ),
                    false,
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Where HAProxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// HAProxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The private temp dir holding its config and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The generated config: one thread, no logging, TCP mode, one frontend on
/// `listen`, one backend server `backend`. HAProxy sets TCP_NODELAY on
/// both sides itself (and uses MSG_MORE only when it knows more data
/// follows, never in a bare TCP forward). `tcp-smart-connect` saves the
/// empty ACK after the backend connect; nothing per message changes.
pub fn haproxy_config(listen: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "# Written by `ordergate-bench compare`: row (c), HAProxy forwarding to the bare echo.
global
    nbthread 1
    maxconn 64

defaults
    mode tcp
    timeout connect 2s
    timeout client 10m
    timeout server 10m

frontend compare_in
    bind {listen}
    default_backend compare_echo

backend compare_echo
    option tcp-smart-connect
    server echo {backend}
"
    )
}

/// A loopback port nothing listens on at this instant.
fn free_loopback_port() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// A new directory only we can read, under the temp dir.
fn private_temp_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = ordergate::clock::wall_ns() % 1_000_000_000;
    let dir = std::env::temp_dir().join(format!(
        "ordergate-compare-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// `haproxy -v`'s first line, e.g. `HAProxy version 2.6.12-1+deb12u4 …`.
pub fn haproxy_version(binary: &Path) -> Option<String> {
    let out = Command::new(binary)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

// ---------------------------------------------------------------------------
// the comparison

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    Echo,
    Ordergate,
    Haproxy,
}

impl RowKind {
    /// The key used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            RowKind::Echo => "echo",
            RowKind::Ordergate => "ordergate",
            RowKind::Haproxy => "haproxy",
        }
    }

    /// What is measured as the row's server side.
    pub fn server_threads(self) -> &'static str {
        match self {
            RowKind::Echo => "the echo thread",
            RowKind::Ordergate => "the reactor thread (and its SQPOLL thread)",
            RowKind::Haproxy => "HAProxy's process and the echo thread behind it",
        }
    }

    /// Requests the server side serves per round trip: the ordergate row
    /// cancels each order it times.
    pub fn requests_per_round_trip(self) -> u64 {
        match self {
            RowKind::Ordergate => 2,
            RowKind::Echo | RowKind::Haproxy => 1,
        }
    }

    /// The row's label in the table.
    pub fn label(self) -> &'static str {
        match self {
            RowKind::Echo => "(a) bare TCP echo",
            RowKind::Ordergate => "(b) ordergate New→Accepted",
            RowKind::Haproxy => "(c) HAProxy tcp → echo",
        }
    }
}

/// A row's round trips, ns.
#[derive(Clone, Debug)]
pub struct Row {
    pub kind: RowKind,
    /// Every recorded round trip of every round.
    pub ns: Histogram<u64>,
    /// Each round's own p50: how much the rounds differ (noise).
    pub rounds_p50_ns: Vec<u64>,
    /// What the row's server side cost the machine.
    pub server: ServerCost,
}

/// The server side's cost in a row: CPU time over the timed rounds, and
/// system calls over the counted round (module docs). Per request: the
/// ordergate row makes two per round trip (the NewOrder and its cancel).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerCost {
    /// CPU time of the server threads during the timed rounds (warm-ups
    /// included), ns, and the requests they served.
    pub cpu_ns: u64,
    pub cpu_requests: u64,
    /// System calls of the server threads during the counted round, and
    /// its requests; None where perf could not count them.
    pub syscalls: Option<u64>,
    pub syscall_requests: u64,
    /// Times the server threads slept (voluntary context switches, each a
    /// wake-up to come) during the timed rounds, over `cpu_requests`.
    pub sleeps: u64,
    /// What the server side is, e.g. "echo thread".
    pub threads: &'static str,
}

impl ServerCost {
    /// CPU µs per request, if measured.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        (self.cpu_requests > 0).then(|| self.cpu_ns as f64 / 1_000.0 / self.cpu_requests as f64)
    }

    /// Sleeps (wake-ups) per request, if measured.
    pub fn sleeps_per_request(&self) -> Option<f64> {
        (self.cpu_requests > 0).then(|| self.sleeps as f64 / self.cpu_requests as f64)
    }

    /// System calls per request, if counted.
    pub fn syscalls_per_request(&self) -> Option<f64> {
        let n = self.syscalls?;
        (self.syscall_requests > 0).then(|| n as f64 / self.syscall_requests as f64)
    }
}

impl Row {
    fn new(kind: RowKind) -> Row {
        Row {
            kind,
            ns: new_histogram(),
            rounds_p50_ns: Vec::new(),
            server: ServerCost {
                threads: kind.server_threads(),
                ..ServerCost::default()
            },
        }
    }

    /// The row's value at `quantile`, µs.
    pub fn us(&self, quantile: f64) -> f64 {
        self.ns.value_at_quantile(quantile) as f64 / 1_000.0
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct CompareParams {
    /// Recorded round trips per row per round.
    pub round_trips: usize,
    pub rounds: usize,
    pub haproxy: HaproxyBinary,
    /// The gateway's idle strategy.
    pub idle: IdleKind,
    /// Run every thread of the comparison, and HAProxy, on this one CPU
    /// (module docs); None = wherever the scheduler puts them.
    pub cpu: Option<usize>,
    /// Give the gateway's ring an SQPOLL thread, on this CPU if given.
    pub sqpoll: Option<Option<usize>>,
}

impl CompareParams {
    /// The defaults, with row (c) as `haproxy` says.
    pub fn new(haproxy: HaproxyBinary) -> CompareParams {
        CompareParams {
            round_trips: ROUND_TRIPS_DEFAULT,
            rounds: ROUNDS_DEFAULT,
            haproxy,
            idle: IDLE_DEFAULT,
            cpu: default_cpu(),
            sqpoll: None,
        }
    }
}

/// Everything one comparison measured.
#[derive(Clone, Debug)]
pub struct CompareReport {
    pub round_trips: usize,
    pub rounds: usize,
    pub warmup_first_round: usize,
    pub warmup_per_round: usize,
    /// Bytes each client request carries (the NewOrder's size).
    pub frame_len: usize,
    pub idle: IdleKind,
    /// The one CPU everything ran on, if pinned.
    pub cpu: Option<usize>,
    /// (a), (b) and, unless skipped, (c), in that order.
    pub rows: Vec<Row>,
    pub haproxy_path: Option<PathBuf>,
    pub haproxy_version: Option<String>,
    /// Why row (c) is missing.
    pub haproxy_skipped: Option<String>,
    pub elapsed: Duration,
    /// The SQPOLL thread's CPU, when the gateway had one (`Some(None)`:
    /// unpinned).
    pub sqpoll: Option<Option<usize>>,
    /// Why the system calls could not be counted (no perf or tracefs).
    pub syscalls_note: Option<String>,
    /// The reactor's own counters over the whole run, and its messages in.
    pub reactor: Option<(UringCounters, u64)>,
}

/// A row whose rounds' p50s differ by more than this factor makes the run
/// "noisy": quiet runs here stay within ±10%, runs disturbed by other jobs'
/// CPUs jump by 2–10×.
pub const NOISY_ROUNDS_RATIO: f64 = 1.5;

/// The quantiles the table shows: p50, p99, p99.9.
pub const QUANTILES: [f64; 3] = [0.50, 0.99, 0.999];

impl CompareReport {
    pub fn row(&self, kind: RowKind) -> Option<&Row> {
        self.rows.iter().find(|r| r.kind == kind)
    }

    /// What `kind` adds over the echo at `quantile`, µs.
    pub fn added_us(&self, kind: RowKind, quantile: f64) -> Option<f64> {
        let floor = self.row(RowKind::Echo)?.us(quantile);
        Some(self.row(kind)?.us(quantile) - floor)
    }

    /// `ordergate added ÷ HAProxy added` at `quantile`; None without row
    /// (c), or when HAProxy added nothing measurable (≤ 0).
    pub fn ratio(&self, quantile: f64) -> Option<f64> {
        let gate = self.added_us(RowKind::Ordergate, quantile)?;
        let proxy = self.added_us(RowKind::Haproxy, quantile)?;
        (proxy > 0.0).then(|| gate / proxy)
    }

    /// Each round's p50 of `kind` minus the echo's p50 in the same round,
    /// µs: how much the rounds disagree, i.e. the noise.
    pub fn rounds_added_p50_us(&self, kind: RowKind) -> Option<Vec<f64>> {
        let floor = &self.row(RowKind::Echo)?.rounds_p50_ns;
        let row = &self.row(kind)?.rounds_p50_ns;
        Some(
            row.iter()
                .zip(floor)
                .map(|(&b, &a)| (b as f64 - a as f64) / 1_000.0)
                .collect(),
        )
    }

    /// Each round's `ordergate added ÷ HAProxy added` at p50, leaving out
    /// rounds where HAProxy added nothing measurable.
    pub fn rounds_ratio_p50(&self) -> Option<Vec<f64>> {
        let gate = self.rounds_added_p50_us(RowKind::Ordergate)?;
        let proxy = self.rounds_added_p50_us(RowKind::Haproxy)?;
        Some(
            gate.iter()
                .zip(&proxy)
                .filter(|&(_, &p)| p > 0.0)
                .map(|(&g, &p)| g / p)
                .collect(),
        )
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "ordergate-bench compare: closed-loop round trips, {}-byte requests, {} rounds × {} per row, \
             interleaved a, b, c (unrecorded warm-up per row: {} in round 1, {} in later rounds)",
            self.frame_len,
            self.rounds,
            self.round_trips,
            self.warmup_first_round,
            self.warmup_per_round
        );
        let _ = writeln!(
            s,
            "  gateway: in process, 1 reactor, engine shared with reactor 0, idle {}; {}",
            self.idle.name(),
            match self.cpu {
                Some(cpu) => format!("every thread and HAProxy pinned to CPU {cpu}"),
                None => "threads not pinned (the scheduler places them)".to_string(),
            }
        );
        if let Some(sq) = self.sqpoll {
            let _ = writeln!(
                s,
                "  gateway ring: SQPOLL thread {}",
                sq.map_or("not pinned".to_string(), |c| format!("on CPU {c}"))
            );
        }
        match (&self.haproxy_version, &self.haproxy_skipped) {
            (_, Some(note)) => {
                let _ = writeln!(s, "  haproxy: {note}");
            }
            (version, None) => {
                let _ = writeln!(
                    s,
                    "  haproxy: {} (mode tcp, nbthread 1, no logging)",
                    version.as_deref().unwrap_or("version unknown")
                );
            }
        }
        let _ = writeln!(
            s,
            "\n  {:<28} {:>8} {:>9} {:>9} {:>9}   p50 min–max over rounds",
            "round trip (µs)", "samples", "p50", "p99", "p99.9"
        );
        for row in &self.rows {
            let (lo, hi) = min_max(&row.rounds_p50_ns);
            let _ = writeln!(
                s,
                "  {:<28} {:>8} {:>9.2} {:>9.2} {:>9.2}   {:.2}–{:.2}",
                row.kind.label(),
                row.ns.len(),
                row.us(0.50),
                row.us(0.99),
                row.us(0.999),
                lo as f64 / 1_000.0,
                hi as f64 / 1_000.0,
            );
        }
        let _ = writeln!(
            s,
            "\n  {:<28} {:>8} {:>9} {:>9}   server side",
            "cost per request", "syscalls", "wake-ups", "CPU µs"
        );
        for row in &self.rows {
            let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
            let _ = writeln!(
                s,
                "  {:<28} {:>8} {:>9} {:>9}   {}",
                row.kind.label(),
                opt(row.server.syscalls_per_request()),
                opt(row.server.sleeps_per_request()),
                opt(row.server.cpu_us_per_request()),
                row.server.threads,
            );
        }
        s.push_str(
            "  (row (b) serves two requests per round trip, the NewOrder and its cancel; CPU over \
             the timed rounds, system calls over one more round with counters on)\n",
        );
        if let Some(note) = &self.syscalls_note {
            let _ = writeln!(s, "  {note}");
        }
        if let Some((u, messages)) = &self.reactor {
            let mut line = String::new();
            ordergate::cli::enters_line(&mut line, u, *messages);
            if !line.is_empty() {
                let _ = write!(s, "  reactor's own count, whole run:\n  {line}");
            }
        }
        let _ = writeln!(
            s,
            "\n  {:<28} {:>8} {:>9} {:>9} {:>9}",
            "added over (a) (µs)", "", "p50", "p99", "p99.9"
        );
        for (kind, label) in [
            (RowKind::Ordergate, "ordergate added (b − a)"),
            (RowKind::Haproxy, "HAProxy added (c − a)"),
        ] {
            if self.row(kind).is_none() {
                continue;
            }
            let _ = write!(s, "  {label:<28} {:>8}", "");
            for q in QUANTILES {
                let _ = write!(s, " {:>9.2}", self.added_us(kind, q).unwrap_or(f64::NAN));
            }
            s.push('\n');
        }
        let negative = [RowKind::Ordergate, RowKind::Haproxy]
            .into_iter()
            .flat_map(|kind| QUANTILES.map(|q| self.added_us(kind, q)))
            .any(|added| added.is_some_and(|a| a < 0.0));
        if negative {
            s.push_str(
                "  (negative: that row's tail was shorter than the echo's; the echo thread \
                 sleeps between requests and is woken, a spinning reactor is not)\n",
            );
        }
        s.push('\n');
        if self.row(RowKind::Haproxy).is_some() {
            let pct = |r: Option<f64>| {
                r.map_or("n/a (HAProxy added ≤ 0)".into(), |r| {
                    format!("{:.1}%", r * 100.0)
                })
            };
            let p50 = self.ratio(0.50);
            let _ = writeln!(
                s,
                "  ordergate added ÷ HAProxy added: p50 {} (goal ≤ {:.0}%: {}), p99 {}",
                pct(p50),
                GOAL_RATIO_P50 * 100.0,
                met(p50.is_some_and(|r| r <= GOAL_RATIO_P50)),
                pct(self.ratio(0.99)),
            );
        } else {
            let _ = writeln!(
                s,
                "  ordergate added ÷ HAProxy added: n/a (row (c) skipped)"
            );
        }
        if let Some(added) = self.added_us(RowKind::Ordergate, 0.50) {
            let _ = writeln!(
                s,
                "  ordergate added p50: {added:.2} µs (goal ≤ {GOAL_ADDED_P50_US:.1} µs: {})",
                met(added <= GOAL_ADDED_P50_US)
            );
        }
        let _ = writeln!(
            s,
            "\n  the rounds' own p50s ({} rounds; their spread is this run's noise):",
            self.rounds
        );
        let spread = |label: &str, values: Option<Vec<f64>>, scale: f64, unit: &str| {
            let Some(values) = values else {
                return String::new();
            };
            let (Some(mid), lo, hi) = (median(&values), min_f(&values), max_f(&values)) else {
                return String::new();
            };
            format!(
                "    {label:<26} median {:>7.2}{unit}   min {:>7.2}{unit}   max {:>7.2}{unit}\n",
                mid * scale,
                lo * scale,
                hi * scale
            )
        };
        s.push_str(&spread(
            "ordergate added (b − a)",
            self.rounds_added_p50_us(RowKind::Ordergate),
            1.0,
            " µs",
        ));
        s.push_str(&spread(
            "HAProxy added (c − a)",
            self.rounds_added_p50_us(RowKind::Haproxy),
            1.0,
            " µs",
        ));
        s.push_str(&spread(
            "ordergate ÷ HAProxy added",
            self.rounds_ratio_p50(),
            100.0,
            "%",
        ));
        if self.noisy() {
            let _ = writeln!(
                s,
                "    noisy run: some row's rounds differ by more than half its fastest p50 \
                 (other jobs took the CPU{}); read with care, or rerun",
                if self.cpu.is_some() {
                    ""
                } else {
                    "s; pinning with --cpu N keeps the rows alike"
                }
            );
        }
        let _ = writeln!(s, "  compare took {:.2} s", self.elapsed.as_secs_f64());
        s
    }

    /// Some row's slowest round p50 is over [`NOISY_ROUNDS_RATIO`] × its
    /// fastest: the rows did not run under the same conditions throughout.
    pub fn noisy(&self) -> bool {
        self.rows.iter().any(|row| {
            let (lo, hi) = min_max(&row.rounds_p50_ns);
            hi as f64 > lo as f64 * NOISY_ROUNDS_RATIO
        })
    }

    /// Every number, as one JSON object (keys in `tests/compare.rs`),
    /// written by serde_json; numbers in µs keep 3 decimals (ns), a figure
    /// that is not finite is `null`.
    pub fn to_json(&self) -> String {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                json!({
                    "name": row.kind.name(),
                    "label": row.kind.label(),
                    "samples": row.ns.len(),
                    "p50_us": num(row.us(0.50)),
                    "p99_us": num(row.us(0.99)),
                    "p999_us": num(row.us(0.999)),
                    "max_us": num(row.ns.max() as f64 / 1_000.0),
                    "mean_us": num(row.ns.mean() / 1_000.0),
                    "rounds_p50_us": row
                        .rounds_p50_ns
                        .iter()
                        .map(|&ns| num(ns as f64 / 1_000.0))
                        .collect::<Vec<_>>(),
                    "server_syscalls_per_request": opt_num(row.server.syscalls_per_request()),
                    "server_wakeups_per_request": opt_num(row.server.sleeps_per_request()),
                    "server_cpu_us_per_request": opt_num(row.server.cpu_us_per_request()),
                })
            })
            .collect();
        let added = |kind| match self.row(kind) {
            None => Value::Null,
            Some(_) => json!({
                "p50_us": opt_num(self.added_us(kind, 0.50)),
                "p99_us": opt_num(self.added_us(kind, 0.99)),
                "p999_us": opt_num(self.added_us(kind, 0.999)),
            }),
        };
        let median_of = |v: Option<Vec<f64>>| opt_num(v.as_deref().and_then(median));
        let reactor = match &self.reactor {
            Some((u, messages)) => json!({
                "messages_in": messages,
                "enters": u.enters,
                "enter_waits": u.enter_waits,
                "enter_wait_timeouts": u.enter_wait_timeouts,
                "enter_wait_own": u.enter_wait_own,
                "spin_hits": u.spin_hits,
                "spin_misses": u.spin_misses,
                "spin_budget_ns": u.spin_budget_ns,
                "sqpoll_wakeups": u.sqpoll_wakeups,
            }),
            None => Value::Null,
        };
        let all = json!({
            "round_trips_per_round": self.round_trips,
            "rounds": self.rounds,
            "warmup_first_round": self.warmup_first_round,
            "warmup_per_round": self.warmup_per_round,
            "frame_bytes": self.frame_len,
            "idle": self.idle.name(),
            "cpu": self.cpu,
            "haproxy": {
                "path": self.haproxy_path.as_ref().map(|p| p.display().to_string()),
                "version": self.haproxy_version,
                "skipped": self.haproxy_skipped,
            },
            "rows": rows,
            "added": {
                "ordergate": added(RowKind::Ordergate),
                "haproxy": added(RowKind::Haproxy),
            },
            "ratio_ordergate_to_haproxy": {
                "p50": opt_num(self.ratio(0.50)),
                "p99": opt_num(self.ratio(0.99)),
                "p999": opt_num(self.ratio(0.999)),
            },
            "rounds_median": {
                "ordergate_added_p50_us": median_of(self.rounds_added_p50_us(RowKind::Ordergate)),
                "haproxy_added_p50_us": median_of(self.rounds_added_p50_us(RowKind::Haproxy)),
                "ratio_p50": median_of(self.rounds_ratio_p50()),
            },
            "goals": {
                "ratio_p50_max": num(GOAL_RATIO_P50),
                "ordergate_added_p50_us_max": num(GOAL_ADDED_P50_US),
            },
            "noisy": self.noisy(),
            "sqpoll_cpu": match self.sqpoll {
                None => Value::Null,
                Some(None) => json!("any"),
                Some(Some(c)) => json!(c),
            },
            "syscalls_note": self.syscalls_note,
            "reactor": reactor,
            "elapsed_s": num(self.elapsed.as_secs_f64()),
        });
        let mut text = serde_json::to_string_pretty(&all).expect("a Value always serializes");
        text.push('\n');
        text
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

fn min_f(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max_f(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn min_max(values: &[u64]) -> (u64, u64) {
    let lo = values.iter().copied().min().unwrap_or(0);
    let hi = values.iter().copied().max().unwrap_or(0);
    (lo, hi)
}

/// A JSON number rounded to 3 decimals (ns resolution for µs), `null` if
/// not finite.
fn num(v: f64) -> Value {
    if v.is_finite() {
        json!((v * 1_000.0).round() / 1_000.0)
    } else {
        Value::Null
    }
}

fn opt_num(v: Option<f64>) -> Value {
    v.map_or(Value::Null, num)
}

/// `--cpu`: one CPU, or `any` (let the scheduler place every thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuChoice {
    Any,
    Cpu(usize),
}

impl CpuChoice {
    /// `N` or `any`.
    ///
    /// # Errors
    ///
    /// Neither.
    pub fn parse(text: &str) -> Result<CpuChoice, String> {
        if text == "any" {
            return Ok(CpuChoice::Any);
        }
        text.parse()
            .map(CpuChoice::Cpu)
            .map_err(|_| "expected a CPU number or `any`".to_string())
    }

    /// The CPU to pin to; `None` given means [`default_cpu`].
    pub fn resolve(choice: Option<CpuChoice>) -> Option<usize> {
        match choice {
            None => default_cpu(),
            Some(CpuChoice::Any) => None,
            Some(CpuChoice::Cpu(cpu)) => Some(cpu),
        }
    }
}

/// Refuses parameters the comparison cannot run with (the command line
/// calls it before it looks for HAProxy, so a bad command installs
/// nothing).
///
/// # Errors
///
/// What is wrong, naming the flag.
pub fn check(params: &CompareParams) -> Result<(), String> {
    if !(1..=ROUND_TRIPS_MAX).contains(&params.round_trips) {
        return Err(format!(
            "--round-trips must be 1..={ROUND_TRIPS_MAX}, not {}",
            params.round_trips
        ));
    }
    if !(1..=ROUNDS_MAX).contains(&params.rounds) {
        return Err(format!(
            "--rounds must be 1..={ROUNDS_MAX}, not {}",
            params.rounds
        ));
    }
    let Some(cpu) = params.cpu else {
        return Ok(());
    };
    match params.sqpoll {
        Some(None) => {
            return Err(format!(
                "--sqpoll on CPU {cpu} without --sqpoll-cpu: the poller would inherit CPU {cpu} \
                 and spin there against the client; give it a CPU of its own, or --cpu any"
            ));
        }
        Some(Some(sq)) if sq == cpu => {
            return Err(format!(
                "--sqpoll-cpu {sq} is the CPU of everything else; give the poller another"
            ));
        }
        _ => {}
    }
    if params.idle == IdleKind::BusySpin {
        return Err(format!(
            "--idle busy-spin on CPU {cpu}: the reactor would spin on the CPU the client, \
             the echo and HAProxy need; add --cpu any to spin unpinned"
        ));
    }
    let allowed = ordergate::config::available_cores().unwrap_or_default();
    if !allowed.contains(&cpu) {
        return Err(format!(
            "--cpu {cpu}: not a CPU this process may run on (allowed: {allowed:?})"
        ));
    }
    Ok(())
}

/// Runs the comparison: starts the echo, a gateway with a fresh key and,
/// unless skipped, HAProxy; measures the rows in turn for `rounds` rounds;
/// stops HAProxy and the gateway (also when a row fails).
///
/// # Errors
///
/// Bad parameters, the gateway or HAProxy did not start, or a row failed
/// (named).
pub fn run_compare(params: &CompareParams) -> Result<CompareReport, String> {
    let started = Instant::now();
    check(params)?;
    let Some(cpu) = params.cpu else {
        return run_here(params, started);
    };
    // A thread of its own, pinned: every thread it starts (echo, gateway)
    // and HAProxy's process inherit its CPU; the caller's is untouched.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                    return Err(format!("cannot pin to CPU {cpu}"));
                }
                run_here(params, started)
            })
            .join()
            .unwrap_or_else(|_| Err("the pinned comparison thread panicked".into()))
    })
}

/// [`run_compare`] on the calling thread, wherever it may run.
fn run_here(params: &CompareParams, started: Instant) -> Result<CompareReport, String> {
    let (echo_addr, _echo, echo_threads) = spawn_echo_server_tracked();
    let haproxy = match &params.haproxy {
        HaproxyBinary::At(path) => Some((
            Haproxy::start(path, echo_addr).map_err(|e| format!("haproxy: {e}"))?,
            path.clone(),
        )),
        HaproxyBinary::Missing { .. } => None,
    };
    let secret = Zeroizing::new({
        let mut s = [0u8; 32];
        read_urandom(&mut s).map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
        s
    });
    let gateway = unthrottled_gateway_sqpoll(
        COMPARE_KEY_ID,
        &secret,
        params.idle,
        params.cpu,
        params.sqpoll,
    )?;
    let measured = measure(
        params,
        Servers {
            echo: echo_addr,
            echo_threads: &echo_threads,
            gateway: gateway.local_addr(),
            haproxy: haproxy.as_ref().map(|(h, _)| (h.addr(), h.pid())),
        },
        &secret,
    );
    let gateway_report = gateway.shutdown();
    let (rows, syscalls_note) = measured?;
    let reactor = gateway_report
        .reactors
        .first()
        .map(|r| (r.uring.clone(), r.counters.messages_in));
    let (haproxy_path, haproxy_version) = match &haproxy {
        Some((_, path)) => (Some(path.clone()), haproxy_version(path)),
        None => (None, None),
    };
    drop(haproxy);
    Ok(CompareReport {
        round_trips: params.round_trips,
        rounds: params.rounds,
        warmup_first_round: WARMUP_FIRST_ROUND,
        warmup_per_round: WARMUP_PER_ROUND,
        frame_len: ordergate::wire::NewOrder::SIZE,
        idle: params.idle,
        cpu: params.cpu,
        rows,
        haproxy_path,
        haproxy_version,
        haproxy_skipped: match &params.haproxy {
            HaproxyBinary::Missing { note } => Some(note.clone()),
            HaproxyBinary::At(_) => None,
        },
        elapsed: started.elapsed(),
        sqpoll: params.sqpoll,
        syscalls_note,
        reactor,
    })
}

/// Where the rows' servers are.
struct Servers<'a> {
    echo: SocketAddr,
    echo_threads: &'a EchoThreads,
    gateway: SocketAddr,
    /// HAProxy's address and process id.
    haproxy: Option<(SocketAddr, u32)>,
}

/// How long to wait for the echo to name a new connection's thread.
const ECHO_THREAD_WAIT: Duration = Duration::from_secs(2);

/// The kernel thread id of the echo thread serving `peer`, or (`peer`
/// None) of any echo thread not serving `not`.
fn echo_thread(threads: &EchoThreads, peer: Option<SocketAddr>, not: SocketAddr) -> Option<i32> {
    let deadline = Instant::now() + ECHO_THREAD_WAIT;
    loop {
        let found = threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(p, _)| peer.map_or(*p != not, |want| *p == want))
            .map(|&(_, tid)| tid);
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One row's server side: threads of this process, and a process.
#[derive(Default)]
struct ServerSide {
    own_threads: Vec<i32>,
    process: Option<u32>,
}

impl ServerSide {
    /// CPU time so far, ns.
    fn cpu_ns(&self) -> u64 {
        let own: u64 = self
            .own_threads
            .iter()
            .filter_map(|&t| crate::taskstat::own_thread_cpu_ns(t))
            .sum();
        own + self
            .process
            .and_then(crate::taskstat::process_cpu_ns)
            .unwrap_or(0)
    }

    /// Voluntary context switches so far.
    fn sleeps(&self) -> u64 {
        let me = std::process::id();
        let own: u64 = self
            .own_threads
            .iter()
            .filter_map(|&t| crate::taskstat::thread_sleeps(me, t))
            .sum();
        own + self
            .process
            .and_then(crate::taskstat::process_sleeps)
            .unwrap_or(0)
    }

    /// A disabled system-call counter on every thread.
    fn counters(&self) -> io::Result<Vec<crate::taskstat::SyscallCounter>> {
        let mut tids = self.own_threads.clone();
        if let Some(pid) = self.process {
            tids.extend(crate::taskstat::tasks(pid)?);
        }
        tids.into_iter()
            .map(crate::taskstat::SyscallCounter::on_thread)
            .collect()
    }
}

/// The rounds: (a), (b), then (c) if HAProxy runs, each with its warm-up,
/// timed; then one counted round (module docs). Returns the rows and, if
/// the system calls could not be counted, why.
fn measure(
    params: &CompareParams,
    servers: Servers<'_>,
    secret: &[u8; 32],
) -> Result<(Vec<Row>, Option<String>), String> {
    let frame = ordergate::wire::NewOrder::default().to_bytes();
    let mut echo = EchoClient::connect(servers.echo, frame.len())
        .map_err(|e| format!("echo: connect: {e}"))?;
    let mut proxied = match servers.haproxy {
        Some((addr, _)) => Some(
            EchoClient::connect(addr, frame.len()).map_err(|e| format!("haproxy: connect: {e}"))?,
        ),
        None => None,
    };
    // The session stays silent while the other rows run: ask for the
    // longest keepalive, so the gateway never ends it for that.
    let options = ConnectOptions {
        keepalive_ms: KEEPALIVE_MS_MAX,
        ..ConnectOptions::default()
    };
    let mut conn = Connection::connect(servers.gateway, COMPARE_KEY_ID, *secret, &options)
        .map_err(|e| format!("ordergate: logon: {e}"))?;

    // Each row's server threads.
    let echo_local = echo
        .local_addr()
        .map_err(|e| format!("echo: local address: {e}"))?;
    let echo_side = ServerSide {
        own_threads: echo_thread(servers.echo_threads, Some(echo_local), echo_local)
            .into_iter()
            .collect(),
        process: None,
    };
    let mut gate_side = ServerSide::default();
    for name in ["ordergate-react", "iou-sqp", "iou-wrk"] {
        gate_side
            .own_threads
            .extend(crate::taskstat::own_threads_named(name));
    }
    let proxy_side = ServerSide {
        own_threads: match servers.haproxy {
            Some(_) => echo_thread(servers.echo_threads, None, echo_local)
                .into_iter()
                .collect(),
            None => Vec::new(),
        },
        process: servers.haproxy.map(|(_, pid)| pid),
    };

    let mut rows = vec![Row::new(RowKind::Echo), Row::new(RowKind::Ordergate)];
    if proxied.is_some() {
        rows.push(Row::new(RowKind::Haproxy));
    }
    let side = |kind| match kind {
        RowKind::Echo => &echo_side,
        RowKind::Ordergate => &gate_side,
        RowKind::Haproxy => &proxy_side,
    };
    let mut round = new_histogram();
    let mut ids = CL_ORD_ID_BASE;
    let n = params.round_trips;
    let mut run_row = |kind: RowKind, skip: usize, round: &mut Histogram<u64>| match kind {
        RowKind::Echo => echo
            .round_trips(&frame, skip, n, round)
            .map_err(|e| e.to_string()),
        RowKind::Ordergate => ordergate_round_trips_into(&mut conn, skip, n, round, &mut ids),
        RowKind::Haproxy => match proxied.as_mut() {
            Some(client) => client
                .round_trips(&frame, skip, n, round)
                .map_err(|e| e.to_string()),
            None => Ok(()),
        },
    };
    for r in 0..params.rounds {
        let skip = if r == 0 {
            WARMUP_FIRST_ROUND
        } else {
            WARMUP_PER_ROUND
        };
        for row in &mut rows {
            round.reset();
            let sleeps_before = side(row.kind).sleeps();
            let cpu_before = side(row.kind).cpu_ns();
            run_row(row.kind, skip, &mut round)
                .map_err(|e| format!("round {}: {}: {e}", r + 1, row.kind.name()))?;
            row.server.cpu_ns += side(row.kind).cpu_ns().saturating_sub(cpu_before);
            row.server.sleeps += side(row.kind).sleeps().saturating_sub(sleeps_before);
            row.server.cpu_requests += ((skip + n) as u64) * row.kind.requests_per_round_trip();
            row.rounds_p50_ns.push(round.value_at_quantile(0.5));
            row.ns
                .add(&round)
                .map_err(|e| format!("merging a round's histogram: {e}"))?;
        }
    }
    // The counted round: system calls, with the counters on only here.
    let mut note = None;
    for row in &mut rows {
        let counters = match side(row.kind).counters() {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => {
                note.get_or_insert_with(|| {
                    format!("no server thread found for row {}", row.kind.name())
                });
                continue;
            }
            Err(e) => {
                note.get_or_insert_with(|| {
                    format!(
                        "system calls not counted: perf on the raw_syscalls:sys_enter tracepoint \
                         refused ({e}); run as root, or with kernel.perf_event_paranoid ≤ 1 and \
                         tracefs readable"
                    )
                });
                continue;
            }
        };
        let mut total = Some(0u64);
        for c in &counters {
            if c.start().is_err() {
                total = None;
            }
        }
        round.reset();
        let ran = run_row(row.kind, 0, &mut round);
        for c in &counters {
            match (c.stop(), total.as_mut()) {
                (Ok(k), Some(t)) => *t += k,
                _ => total = None,
            }
        }
        ran.map_err(|e| format!("counted round: {}: {e}", row.kind.name()))?;
        row.server.syscalls = total;
        row.server.syscall_requests = n as u64 * row.kind.requests_per_round_trip();
    }
    let _ = conn.send_logout();
    let _ = conn.recv(Duration::from_millis(200));
    Ok((rows, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_keep_three_decimals_and_null_what_is_not_finite() {
        assert_eq!(num(f64::NAN), Value::Null);
        assert_eq!(num(f64::INFINITY), Value::Null);
        assert_eq!(num(1.23456).to_string(), "1.235");
    }

    #[test]
    fn cpu_is_a_number_or_any() {
        assert_eq!(CpuChoice::parse("any"), Ok(CpuChoice::Any));
        assert_eq!(CpuChoice::parse("3"), Ok(CpuChoice::Cpu(3)));
        assert!(CpuChoice::parse("-1").is_err() && CpuChoice::parse("").is_err());
        assert_eq!(CpuChoice::resolve(Some(CpuChoice::Any)), None);
        assert_eq!(CpuChoice::resolve(Some(CpuChoice::Cpu(3))), Some(3));
        assert_eq!(CpuChoice::resolve(None), default_cpu());
    }

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_two_middle_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn the_config_forwards_one_port_to_the_backend_in_tcp_mode() {
        let cfg = haproxy_config(
            "127.0.0.1:4000".parse().unwrap(),
            "127.0.0.1:5000".parse().unwrap(),
        );
        assert!(cfg.contains("nbthread 1"));
        assert!(cfg.contains("mode tcp"));
        assert!(cfg.contains("bind 127.0.0.1:4000"));
        assert!(cfg.contains("server echo 127.0.0.1:5000"));
        assert!(!cfg.contains("\n    log "), "no logging");
    }

    #[test]
    fn an_explicit_missing_binary_skips_the_row_without_installing() {
        let missing = locate_haproxy(Some(Path::new("/nonexistent/haproxy")), Install::IfRoot);
        let HaproxyBinary::Missing { note } = missing else {
            panic!("{missing:?}")
        };
        assert!(
            note.contains("/nonexistent/haproxy") && note.contains("skipped"),
            "{note}"
        );
    }
}
