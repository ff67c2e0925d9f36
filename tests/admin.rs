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
