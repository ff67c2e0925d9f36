//! The admin socket: mode 0600, every request, and a clear error for
//! anything else.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::net::*;
use ordergate::admin::{AdminServer, request};
use ordergate::wire::codes::{LogonRejectReason as LR, TerminateReason as TR};

#[test]
fn admin_socket_is_private_and_answers_every_request() {
    let gw = start();
    let dir = std::env::temp_dir().join(format!("ordergate-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("admin.sock");
    let keys_path = dir.join("keys.toml");
    std::fs::write(&keys_path, "[[key]]\nid = 1\n").unwrap();
    std::fs::set_permissions(&keys_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let admin = AdminServer::start(&sock, gw.control(), Some(keys_path.clone())).unwrap();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin socket mode {mode:o}");

    let mut a = Conn::connect(gw.local_addr(), TRADER);
    a.logon(0);

    let answer = request(&sock, "sessions").unwrap();
    assert!(answer.starts_with("key_id sessions revoked\n"), "{answer}");
    assert!(
        answer.contains(&format!("\n{TRADER} 1 false\n")),
        "{answer}"
    );
    assert!(answer.ends_with("ok\n"));

    // An invalid keys file: refused, old table kept, the file named.
    let answer = request(&sock, "reload").unwrap();
    assert!(
        answer.starts_with("error: reload refused, the old table stays:"),
        "{answer}"
    );
    assert!(answer.contains("keys.toml"), "{answer}");

    let answer = request(&sock, &format!("kill {TRADER}")).unwrap();
    assert!(
        answer.starts_with(&format!(
            "ok killed key {TRADER}: 1 session ended with KEY_REVOKED; 0 resting orders \
             canceled (generation 2); every reactor switched in "
        )),
        "{answer}"
    );
    assert!(answer.contains("every reactor switched in"), "{answer}");
    assert_eq!(terminate(&a.recv().unwrap()), TR::KEY_REVOKED.wire());
    let mut b = Conn::connect(gw.local_addr(), TRADER);
    let f = b.logon_frame(0, 1, 1000);
    b.send(&f);
    assert_eq!(logon_reject(&b.recv().unwrap()), LR::KEY_DISABLED.wire());
    let answer = request(&sock, &format!("revoke {TRADER}")).unwrap();
    assert_eq!(
        answer,
        format!(
            "error: revoke {TRADER}: key {TRADER} is already revoked; nothing was done (its \
             sessions ended and its orders were canceled then; `kill {TRADER}` still records a \
             kill)\n"
        )
    );
    let answer = request(&sock, "sessions").unwrap();
    assert!(answer.contains(&format!("\n{TRADER} 0 true\n")), "{answer}");

    assert_eq!(
        request(&sock, "revoke x").unwrap(),
        "error: revoke takes one key id (a number)\n"
    );
    let answer = request(&sock, "withdraw 5").unwrap();
    assert!(
        answer.starts_with("error: unknown request \"withdraw 5\""),
        "{answer}"
    );

    drop(admin);
    assert!(!sock.exists(), "the socket file is removed on stop");
    std::fs::remove_dir_all(&dir).unwrap();
    gw.shutdown();
}

/// A logon from `conn` with the longest keepalive (so that no Heartbeat
/// moves the counts while the test runs): the LogonAck's session id and
/// server time, which `sessions` lists as the session and its logon.
fn logon_listed(c: &mut Conn) -> (u64, u64) {
    let f = c.logon_frame(0, 1, ordergate::constants::KEEPALIVE_MS_MAX);
    c.send(&f);
    let ack = c.recv().expect("a LogonAck");
    match ordergate::wire::decode_gateway(&ack).unwrap() {
        ordergate::wire::GatewayFrame::LogonAck(a) => (a.session_id(), a.server_time_ns()),
        other => panic!("expected LogonAck, got {other:?}"),
    }
}

/// `sessions` lists each key's live sessions (every reactor's): session
/// id, reactor, peer address, logon time, messages in (the client's
/// sequenced messages), out (the gateway's frames, LogonAck included) and
/// open orders, exactly.
#[test]
fn sessions_lists_every_live_session_with_its_peer_reactor_and_counts() {
    use ordergate::engine::SessionId;
    use ordergate::gateway::GatewaySpec;
    use ordergate::journal::rfc3339;
    use std::net::Ipv4Addr;

    let gw = ordergate::gateway::Gateway::start(
        GatewaySpec {
            reactors: 2,
            ..spec()
        },
        keys(),
    )
    .expect("the gateway starts");
    let dir = std::env::temp_dir().join(format!("ordergate-admin-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("admin.sock");
    let admin = AdminServer::start(&sock, gw.control(), None).unwrap();

    let (a_ip, b_ip) = (Ipv4Addr::new(127, 0, 0, 5), Ipv4Addr::new(127, 0, 0, 6));
    let mut a = Conn::connect_from(a_ip, gw.local_addr(), TRADER, SECRET).unwrap();
    let (a_id, a_logon) = logon_listed(&mut a);
    let mut b = Conn::connect_from(b_ip, gw.local_addr(), TRADER, SECRET).unwrap();
    let (b_id, b_logon) = logon_listed(&mut b);
    // A: two resting bids, the second canceled.
    a.send_order(1, 100, 5, 1, 0);
    accepted(&a.recv().unwrap());
    a.send_order(2, 99, 5, 1, 0);
    accepted(&a.recv().unwrap());
    let f = a.c.seal(
        ordergate::wire::CancelOrder {
            seq: 0,
            cl_ord_id: 3,
            orig_cl_ord_id: 2,
            instrument_id: 1,
        }
        .to_bytes(),
    );
    a.send(&f);
    assert_eq!(canceled(&a.recv().unwrap()).0, 3);
    // B: sells 2 into A's bid (A keeps 3), then rests an offer.
    b.send_order(1, 100, 2, 2, 0);
    accepted(&b.recv().unwrap());
    assert_eq!(fill(&b.recv().unwrap()).3, 0);
    assert_eq!(fill(&a.recv().unwrap()).3, 3);
    b.send_order(2, 101, 1, 2, 0);
    accepted(&b.recv().unwrap());

    let line = |id: u64, ip: Ipv4Addr, logon: u64, msgs_in: u64, out: u64, open: u32| {
        format!(
            "  session {id} reactor {} peer {ip} logon {} in {msgs_in} out {out} open_orders \
             {open}\n",
            SessionId(id).reactor(),
            rfc3339(logon)
        )
    };
    let mut listed = [
        (a_id, line(a_id, a_ip, a_logon, 3, 5, 1)),
        (b_id, line(b_id, b_ip, b_logon, 2, 4, 1)),
    ];
    listed.sort();
    let answer = ordergate::admin::request(&sock, "sessions").unwrap();
    assert_eq!(
        answer,
        format!(
            "key_id sessions revoked\n{TRADER} 2 false\n{}{}{CANCEL_ONLY} 0 false\n\
             {SANDBOX} 0 false\n{SLOW} 0 false\nok\n",
            listed[0].1, listed[1].1
        )
    );

    drop(admin);
    std::fs::remove_dir_all(&dir).unwrap();
    gw.shutdown();
}
