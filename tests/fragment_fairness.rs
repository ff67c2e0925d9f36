//! Fragment fairness (docs/TESTING.md case 7): a session that dribbles a
//! frame one byte per receive slows neither its neighbour on the same
//! reactor nor buys itself time. Its neighbour's orders are all answered
//! while the partial frame is pending, and trickled bytes of an unfinished
//! frame are not traffic: the attacker is cut HEARTBEAT_TIMEOUT two
//! keepalive intervals after its last whole frame, however many bytes it
//! sends meanwhile.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::net::{Conn, TRADER, accepted, finish, start, template, terminate};
use ordergate::wire;
use ordergate::wire::codes::TerminateReason as TR;

/// The attacker's keepalive: it must send a whole frame every 2 × 200 ms.
const KEEPALIVE_MS: u16 = 200;

#[test]
fn a_frame_dribbled_byte_by_byte_neither_slows_a_neighbour_nor_keeps_its_session_alive() {
    let gw = start();
    let addr = gw.local_addr();
    let mut attacker = Conn::connect(addr, TRADER);
    let f = attacker.logon_frame(0, 1, KEEPALIVE_MS);
    attacker.send(&f);
    assert_eq!(
        template(&attacker.recv().unwrap()),
        wire::LogonAck::TEMPLATE_ID
    );
    let logged_on = Instant::now();
    let mut neighbour = Conn::connect(addr, TRADER);
    neighbour.logon(0);

    // Phase 1: each byte of the attacker's first 32 is its own write (and,
    // as the neighbour's round trip follows it, its own receive); between
    // two of them the neighbour places an order and gets its answer.
    let frame = attacker.order(1, 100, 1, 1, 0);
    for (i, b) in frame[..32].iter().enumerate() {
        attacker.s.write_all(&[*b]).unwrap();
        neighbour.send_order(1000 + i as u64, 50 + i as i64, 1, 1, 0);
        let f = neighbour.recv().expect("the neighbour's answer");
        assert_eq!(
            accepted(&f).0,
            1000 + i as u64,
            "the neighbour's order {i} is answered while the attacker's frame is partial"
        );
    }
    // Nothing for the attacker yet: its frame is not whole.
    attacker.s.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let pending = attacker.s.read(&mut byte);
    assert!(
        matches!(&pending, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "no answer to a partial frame: {pending:?}"
    );
    attacker.s.set_nonblocking(false).unwrap();

    // Phase 2: the attacker keeps trickling, one byte every 40 ms (its 31
    // remaining bytes would take 1.24 s, three times its 400 ms bound). It
    // is cut before the frame completes.
    let mut sent = 32;
    let cut = loop {
        attacker.s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        match attacker.s.read(&mut buf) {
            Ok(0) => panic!("closed without a Terminate"),
            Ok(n) => {
                attacker.r.spare()[..n].copy_from_slice(&buf[..n]);
                attacker.r.filled(n);
                // Gateway Heartbeats (it has sent nothing for a keepalive)
                // are skipped: the attacker trickles on.
                let mut other = None;
                while let Some(f) = attacker.r.next_frame() {
                    let f = f.expect("well-formed").to_vec();
                    attacker.c.receive(&f).expect("the client accepts it");
                    if template(&f) != wire::Heartbeat::TEMPLATE_ID {
                        other = Some(f);
                        break;
                    }
                }
                if let Some(f) = other {
                    attacker.s.set_nonblocking(false).unwrap();
                    break f;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
        attacker.s.set_nonblocking(false).unwrap();
        assert!(
            sent < frame.len() - 1,
            "the attacker trickled {sent} bytes over {:?} and was not cut",
            logged_on.elapsed()
        );
        attacker.s.write_all(&frame[sent..sent + 1]).unwrap();
        sent += 1;
        sleep(Duration::from_millis(40));
    };
    assert_eq!(terminate(&cut), TR::HEARTBEAT_TIMEOUT.wire());
    attacker.expect_closed();

    // The neighbour trades on.
    neighbour.send_order(2000, 10, 1, 1, 0);
    assert_eq!(accepted(&neighbour.recv().unwrap()).0, 2000);

    let report = finish(gw);
    let c = &report.reactors[0].counters;
    assert_eq!(
        c.terminate(TR::HEARTBEAT_TIMEOUT),
        1,
        "only the attacker is cut"
    );
    assert_eq!(
        c.commands_out, 33,
        "the neighbour's 33 orders, none of the attacker's"
    );
    assert_eq!(c.logons_accepted, 2);
}
