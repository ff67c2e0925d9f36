//! A gateway killed with resting orders, and restarted (docs/TESTING.md
//! case 30). `serve` is a child process killed with SIGKILL: no Terminate,
//! no drain, no summary. After the restart on the same journal:
//!
//! - the journal verifies (`ordergate audit verify` exits 0);
//! - the replay floors hold: a Logon captured before the crash is refused
//!   STALE_LOGON;
//! - the embedded engine's book died with the process (README,
//!   "Crash and restart"): the resting order is unknown (a cancel of it is
//!   UNKNOWN_ORDER) and an order that would have crossed it rests instead;
//! - order ids do not repeat: the new run's first order id is above every
//!   id of the run that crashed.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::thread::sleep;
use std::time::Duration;

use common::net::{Conn, accepted, rejected, template};
use common::serve::{KEY, SECRET_HEX, TempDir, ordergate, p, serve_on_socket, text};
use ordergate::wire::codes::{LogonRejectReason as LR, RejectReason};
use ordergate::wire::{self, GatewayFrame};

fn secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = u8::from_str_radix(&SECRET_HEX[2 * i..2 * i + 2], 16).unwrap();
    }
    s
}

fn serving_addr(line: &str) -> SocketAddr {
    line.strip_prefix("ordergate serving on ")
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("not a serving line: {line}"))
        .parse()
        .unwrap()
}

fn connect(addr: SocketAddr) -> Conn {
    Conn::over(TcpStream::connect(addr).unwrap(), KEY, secret()).unwrap()
}

/// The next frame as sent (no client check: a LogonReject is not sealed
/// for a session). None at EOF.
fn raw_frame(c: &mut Conn) -> Option<Vec<u8>> {
    use std::io::Read;
    loop {
        if let Some(f) = c.r.next_frame() {
            return Some(f.expect("well-formed").to_vec());
        }
        match c.s.read(c.r.spare()) {
            Ok(0) => return None,
            Ok(n) => c.r.filled(n),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn a_gateway_killed_with_resting_orders_restarts_verified_with_its_floors_and_an_empty_book() {
    let dir = TempDir::new("crash");
    let journal = dir.join("gw.journal");
    let (serve, serving, _) = serve_on_socket(&dir, "gw", &dir.join("a.sock"));
    let addr = serving_addr(&serving);

    // A trader logs on (no cancel-on-disconnect) and leaves a buy resting;
    // an attacker has captured its Logon's bytes.
    let mut trader = connect(addr);
    let captured = trader.logon_frame(0, 1, 1000);
    trader.send(&captured);
    assert_eq!(
        template(&trader.recv().unwrap()),
        wire::LogonAck::TEMPLATE_ID
    );
    trader.send_order(1, 100, 5, 1, 0);
    let (cl, resting_id) = accepted(&trader.recv().unwrap());
    assert_eq!(cl, 1);

    // The journal thread writes asynchronously: wait (bounded) until the
    // LogonAccepted record is in the file, as it would be a moment later.
    let mut journaled = false;
    for _ in 0..200 {
        let out = ordergate(&["audit", "show", p(&journal)]);
        if text(&out.stdout).contains(" LogonAccepted ") {
            journaled = true;
            break;
        }
        sleep(Duration::from_millis(25));
    }
    assert!(journaled, "the LogonAccepted record reached the journal");

    // Crash: SIGKILL, nothing flushed or sent.
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(serve.pid() as i32, libc::SIGKILL) };
    drop(serve); // reaps it
    assert!(
        raw_frame(&mut trader).is_none(),
        "the killed gateway sent nothing more (no Terminate)"
    );

    // The journal verifies as it is.
    let out = ordergate(&["audit", "verify", p(&journal)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "audit verify after SIGKILL: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // Restart on the same journal and stats file.
    let (serve, serving, _) = serve_on_socket(&dir, "gw", &dir.join("b.sock"));
    let addr = serving_addr(&serving);

    // The captured Logon is refused STALE_LOGON.
    let mut eve = connect(addr);
    eve.send(&captured);
    let reply = raw_frame(&mut eve).expect("a reply to the replayed Logon");
    match wire::decode_gateway(&reply).unwrap() {
        GatewayFrame::LogonReject(r) => assert_eq!(r.reason(), LR::STALE_LOGON.wire()),
        other => panic!("the replayed Logon was not refused: {other:?}"),
    }

    // The trader logs on again. Its resting buy died with the process.
    let mut trader = connect(addr);
    trader.logon(0);
    let f = trader.c.seal(
        wire::CancelOrder {
            seq: 0,
            cl_ord_id: 2,
            orig_cl_ord_id: 1,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    trader.send(&f);
    let (cl, reason, _) = rejected(&trader.recv().unwrap());
    assert_eq!(
        (cl, reason),
        (2, RejectReason::UNKNOWN_ORDER.wire()),
        "the pre-crash order is not in the new book"
    );
    // A sell at the buy's price rests: nothing to cross.
    trader.send_order(3, 100, 5, 2, 0);
    let (cl, new_id) = accepted(&trader.recv().unwrap());
    assert_eq!(cl, 3);
    assert!(
        new_id > resting_id,
        "order ids do not repeat across a restart: {new_id} after {resting_id}"
    );

    let (status, _) = serve.stop();
    assert!(status.success());
    // Both runs' records verify as one chain.
    let out = ordergate(&["audit", "verify", p(&journal)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
