//! Issue 14: the matching engine as its own process (`ordergate engine
//! --shm PATH`), a gateway (`serve --engine shm:PATH`, or `Gateway::start`
//! with `EngineLink::Shm`) in front of it over a shared-memory file, on
//! real loopback TCP.
//!
//! - Crossing orders from two sessions fill through the other process.
//! - The engine killed (SIGKILL) mid-stream: every order from then on, and
//!   those it had taken and not answered, get OrderRejected
//!   ENGINE_UNAVAILABLE; nothing is silent; counted.
//! - The gateway killed (SIGKILL): the engine cancels the orders of its
//!   cancel-on-disconnect sessions (and only those) within the liveness
//!   bound, and says so.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::net::*;
use common::serve::{KEY, SECRET_HEX, TempDir, p, serve_command};
use ordergate::constants::ENGINE_LIVENESS_TIMEOUT_NS;
use ordergate::gateway::{EngineLink, Gateway, GatewaySpec};
use ordergate::session::LOGON_FLAG_CANCEL_ON_DISCONNECT as COD;
use ordergate::wire::codes::RejectReason;

/// How long past the liveness timeout a verdict may take (the other
/// side's turn, a loaded test machine).
const SLACK: Duration = Duration::from_secs(5);

/// A running `ordergate engine`: its stderr lines (the liveness events)
/// come through a channel.
struct EngineProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: mpsc::Receiver<String>,
}

fn lines_of(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl EngineProcess {
    fn start(shm: &Path) -> EngineProcess {
        let mut child = Command::new(common::serve::ordergate_bin())
            .args(["engine", "--shm", p(shm), "--reactors", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ordergate engine");
        let lines = lines_of(child.stderr.take().unwrap());
        let stdout = lines_of(child.stdout.take().unwrap());
        let mut e = EngineProcess {
            child,
            lines,
            stdout,
        };
        let ready = e.line_with("ready", SLACK);
        assert!(ready.contains("1 ring pairs"), "{ready}");
        e
    }

    /// The next stderr line containing `needle`, within `within`.
    fn line_with(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("the engine printed no line with `{needle}` within {within:?}"),
            }
        }
    }

    fn kill9(&mut self) {
        // SAFETY: kill(2) on our child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// SIGTERM; its stop summary.
    fn stop(mut self) -> String {
        // SAFETY: kill(2) on our child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "engine exit {status:?}");
        let mut out = String::new();
        while let Ok(line) = self.stdout.recv_timeout(SLACK) {
            out += &line;
            out.push('\n');
        }
        out
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shm_path(dir: &TempDir) -> PathBuf {
    dir.join("engine.shm")
}

fn gateway_on(shm: &Path) -> Gateway {
    let spec = GatewaySpec {
        engine_link: EngineLink::Shm(shm.to_path_buf()),
        ..spec()
    };
    Gateway::start(spec, keys()).expect("the gateway starts on the engine's link")
}

#[test]
fn crossing_orders_from_two_sessions_fill_through_the_engine_process() {
    let dir = TempDir::new("link-fill");
    let engine = EngineProcess::start(&shm_path(&dir));
    let gw = gateway_on(&shm_path(&dir));
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    let mut b = Conn::connect(addr, TRADER);
    b.logon(0);

    a.send_order(1, 100, 10, 1, 0);
    assert_eq!(accepted(&a.recv().unwrap()).0, 1);
    b.send_order(7, 99, 4, 2, 0);
    assert_eq!(accepted(&b.recv().unwrap()).0, 7);
    assert_eq!(fill(&b.recv().unwrap()), (7, 100, 4, 0));
    assert_eq!(fill(&a.recv().unwrap()), (1, 100, 4, 6));

    drop((a, b));
    let report = finish(gw);
    let c = &report.reactors[0].counters;
    assert_eq!((c.engine_lost, c.engine_unavailable), (0, 0));
    let summary = engine.stop();
    assert!(summary.contains("2 commands"), "{summary}");
    assert!(summary.contains("1 orders resting"), "{summary}");
}

#[test]
fn an_engine_killed_mid_stream_leaves_no_order_unanswered() {
    let dir = TempDir::new("link-kill-engine");
    let mut engine = EngineProcess::start(&shm_path(&dir));
    let gw = gateway_on(&shm_path(&dir));
    let addr = gw.local_addr();
    let mut a = Conn::connect(addr, TRADER);
    a.logon(0);
    a.send_order(1, 100, 10, 1, 0);
    assert_eq!(accepted(&a.recv().unwrap()).0, 1);

    engine.kill9();
    // Orders sent before the gateway can know, then after: every one is
    // answered, each exactly once, ENGINE_UNAVAILABLE.
    const ORDERS: u64 = 20;
    let mut answered = Vec::new();
    for cl in 2..2 + ORDERS {
        a.send_order(cl, 100, 1, 1, 0);
        if cl == 2 + ORDERS / 2 {
            // Half of them wait for the verdict; the rest come after it.
            // The client keeps its session alive meanwhile.
            let until =
                Instant::now() + Duration::from_nanos(ENGINE_LIVENESS_TIMEOUT_NS) + SLACK / 5;
            while Instant::now() < until {
                let hb = a.c.seal(ordergate::wire::Heartbeat { seq: 0 }.to_bytes());
                a.send(&hb);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_nanos(ENGINE_LIVENESS_TIMEOUT_NS) + SLACK;
    while (answered.len() as u64) < ORDERS && Instant::now() < deadline {
        let Some(f) = a.recv() else { break };
        let (cl, reason, _) = rejected(&f);
        assert_eq!(
            reason,
            RejectReason::ENGINE_UNAVAILABLE.wire(),
            "order {cl} answered with reason {reason}"
        );
        answered.push(cl);
    }
    assert_eq!(
        answered,
        (2..2 + ORDERS).collect::<Vec<_>>(),
        "every order after the engine died is answered ENGINE_UNAVAILABLE, in order, once"
    );
    // A cancel too.
    let cancel = a.c.seal(
        ordergate::wire::CancelOrder {
            seq: 0,
            cl_ord_id: 99,
            orig_cl_ord_id: 1,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    a.send(&cancel);
    let (cl, reason, _) = rejected(&a.recv().expect("the cancel is answered"));
    assert_eq!((cl, reason), (99, RejectReason::ENGINE_UNAVAILABLE.wire()));

    drop(a);
    let report = finish(gw);
    let c = &report.reactors[0].counters;
    assert_eq!(c.engine_lost, 1);
    assert_eq!(c.engine_unavailable, ORDERS + 1);
    assert_eq!(c.order_reject(RejectReason::ENGINE_UNAVAILABLE), ORDERS + 1);
    let summary = ordergate::cli::summary(&report, Duration::from_secs(1));
    assert!(
        summary.contains(
            "engine link: engine judged dead yes, commands answered ENGINE_UNAVAILABLE 21"
        ),
        "{summary}"
    );
}

/// The serve.rs key's secret, as bytes.
fn serve_secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = u8::from_str_radix(&SECRET_HEX[2 * i..2 * i + 2], 16).unwrap();
    }
    s
}

#[test]
fn a_killed_gateway_has_its_cancel_on_disconnect_orders_canceled_by_the_engine() {
    let dir = TempDir::new("link-kill-gw");
    let shm = shm_path(&dir);
    let mut engine = EngineProcess::start(&shm);
    let link = format!("shm:{}", p(&shm));
    let (serve, serving, _) = common::serve::Serve::start(serve_command(
        &dir,
        "gw",
        "127.0.0.1:0",
        &[
            "--engine",
            &link,
            "--admin-socket",
            p(&dir.join("admin.sock")),
        ],
        &[],
    ));
    let addr: std::net::SocketAddr = serving
        .strip_prefix("ordergate serving on ")
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("not a serving line: {serving}"))
        .parse()
        .unwrap();
    let connect = || {
        Conn::over(
            std::net::TcpStream::connect(addr).unwrap(),
            KEY,
            serve_secret(),
        )
        .unwrap()
    };
    let mut cod = connect();
    cod.logon(COD);
    let mut keep = connect();
    keep.logon(0);
    cod.send_order(1, 100, 5, 1, 0);
    assert_eq!(accepted(&cod.recv().unwrap()).0, 1);
    cod.send_order(2, 101, 5, 1, 0);
    assert_eq!(accepted(&cod.recv().unwrap()).0, 2);
    keep.send_order(3, 102, 5, 1, 0);
    assert_eq!(accepted(&keep.recv().unwrap()).0, 3);

    // SIGKILL: no CancelOnDisconnect is ever sent by the gateway.
    // SAFETY: kill(2) on our child's pid; no memory is involved.
    unsafe { libc::kill(serve.pid() as i32, libc::SIGKILL) };
    let killed = Instant::now();
    let line = engine.line_with(
        "orders canceled",
        Duration::from_nanos(ENGINE_LIVENESS_TIMEOUT_NS) + SLACK,
    );
    assert!(
        killed.elapsed() >= Duration::from_nanos(ENGINE_LIVENESS_TIMEOUT_NS) / 2,
        "not before the bound"
    );
    assert_eq!(
        line,
        "ordergate: pair 0: 1 cancel-on-disconnect sessions, 2 orders canceled"
    );
    let summary = engine.stop();
    assert!(
        summary.contains(
            "link: 1 gateways judged dead, 1 cancel-on-disconnect sessions, 2 orders canceled for them"
        ),
        "{summary}"
    );
    // The session that did not ask for cancel-on-disconnect keeps its order.
    assert!(summary.contains("1 orders resting"), "{summary}");
}
