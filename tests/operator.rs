//! The operator's mistakes, each over real `serve` processes on loopback:
//! a second gateway on the same port (item 8) or on the same admin socket
//! (item 9) is refused, naming the first one's pid; the admin socket lives
//! in a private directory and serves only its own user (and root); admin
//! commands that did nothing exit non-zero, and every kill is journaled
//! (item 10).

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::net::*;
use common::serve::*;
use ordergate::gateway::{ControlError, Gateway, GatewaySpec, StartError};
use ordergate::wire::codes::TerminateReason as TR;

/// `ordergate admin [--socket PATH] ARGS…` with `env`.
fn admin(socket: Option<&Path>, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(ordergate_bin());
    cmd.arg("admin").env_remove("RUNTIME_DIRECTORY");
    if let Some(socket) = socket {
        cmd.args(["--socket", p(socket)]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("run ordergate admin")
}

/// A port on 127.0.0.1 nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serving_addr(line: &str) -> SocketAddr {
    line.strip_prefix("ordergate serving on ")
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("not a serving line: {line}"))
        .parse()
        .unwrap()
}

/// Reactor 0's `label` in a running gateway's stats file, once it reads
/// `want` (published each tick) or, after `WAIT`, whatever it reads.
fn published(stats: &Path, label: &str, want: u64) -> u64 {
    let reader = ordergate::telemetry::stats::StatsReader::open(stats).expect("the stats file");
    let deadline = Instant::now() + WAIT;
    loop {
        let value = reader
            .snapshot()
            .reactor(0, label)
            .expect("a published label");
        if value == want || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The stop summary's admin line.
fn admin_line(rest: &[String]) -> &str {
    rest.iter()
        .find(|l| l.starts_with("admin: "))
        .unwrap_or_else(|| panic!("no admin line in the summary:\n{}", rest.join("\n")))
}

// ---------------------------------------------------------------------------
// Item 8: a second gateway on the same port

#[test]
fn a_second_serve_on_the_same_port_refuses_naming_the_first_pid() {
    let dir = TempDir::new("port");
    let listen = format!("127.0.0.1:{}", free_port());
    let first_sock = dir.join("first.sock");
    let (first, serving, _) = Serve::start(serve_command(
        &dir,
        "first",
        &listen,
        &["--admin-socket", p(&first_sock)],
        &[],
    ));
    assert_eq!(serving_addr(&serving).to_string(), listen);

    let second_sock = dir.join("second.sock");
    let out = refused_serve(serve_command(
        &dir,
        "second",
        &listen,
        &["--admin-socket", p(&second_sock)],
        &[],
    ));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(
        err,
        format!(
            "ordergate: cannot start: listener {listen}: another process (pid {}, ordergate) is \
             already listening on this address; a second gateway there would take part of its \
             connections with a separate book: stop that one, or listen elsewhere\n",
            first.pid()
        )
    );
    // The refused one left nothing behind that the first needs, and took
    // no admin socket.
    assert!(!second_sock.exists());

    // The first keeps serving: every connection reaches it, and its admin
    // socket answers.
    for _ in 0..8 {
        TcpStream::connect(&listen).expect("the first still listens");
    }
    let out = admin(Some(&first_sock), &["sessions"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("key_id sessions revoked\n{KEY} 0 false\nok\n")
    );
    let (status, _) = first.stop();
    assert!(status.success());
}

/// Reactors of one gateway still share their port (the probe is only
/// against other processes' listeners); a second gateway in the same
/// process is refused with the address and this process as the holder.
#[test]
fn reactors_share_a_fixed_port_and_a_second_gateway_is_refused() {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::start(
        GatewaySpec {
            listen,
            reactors: 2,
            ..spec()
        },
        keys(),
    )
    .expect("two reactors on one fixed port");
    assert_eq!(gw.local_addr(), listen);
    let mut a = Conn::connect(listen, TRADER);
    a.logon(0);

    let err = Gateway::start(GatewaySpec { listen, ..spec() }, keys())
        .err()
        .expect("a second gateway on the same port is refused");
    let StartError::AddressInUse { addr, holders } = &err else {
        panic!("not AddressInUse: {err}");
    };
    assert_eq!(*addr, listen);
    let holders = holders.as_ref().expect("this process is visible in /proc");
    assert!(
        holders.iter().any(|(pid, _)| *pid == std::process::id()),
        "{holders:?}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("listener {listen}: another process (pid ")),
        "{err}"
    );
    // The first is untouched.
    a.send_order(1, 100, 5, 1, 0);
    accepted(&a.recv().unwrap());
    gw.shutdown();
}

// ---------------------------------------------------------------------------
// Item 9: a second gateway on the same admin socket; where it lives; who
// may use it

#[test]
fn a_second_serve_on_the_same_admin_socket_refuses_naming_the_first_pid() {
    let dir = TempDir::new("sock");
    let sock = dir.join("admin.sock");
    let (first, _, admin_line_1) = serve_on_socket(&dir, "first", &sock);
    assert!(
        admin_line_1.starts_with(&format!("admin socket {};", p(&sock))),
        "{admin_line_1}"
    );

    let out = refused_serve(serve_command(
        &dir,
        "second",
        "127.0.0.1:0",
        &["--admin-socket", p(&sock)],
        &[],
    ));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(
        err,
        format!(
            "ordergate: cannot open the admin socket {}: a running gateway answers on it (pid {}, \
             ordergate): a second one would take its admin socket, and `ordergate admin` would \
             reach the wrong gateway; stop that one, or give this one another --admin-socket\n",
            p(&sock),
            first.pid()
        )
    );
    // Refused before the gateway started: no journal, no stats file.
    assert!(!dir.join("second.journal").exists());
    assert!(!dir.join("second.stats").exists());

    // The first saw the second's check, and its socket is still its own.
    assert_eq!(published(&dir.join("first.stats"), "admin_probes", 1), 1);
    let out = admin(Some(&sock), &["sessions"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (status, rest) = first.stop();
    assert!(status.success());
    assert_eq!(
        admin_line(&rest),
        "admin: 0 peers refused (not the gateway's uid or root), 0 requests refused, 1 probes \
         from another serve"
    );
    assert!(!sock.exists(), "removed when the first stopped");
}

#[test]
fn a_stale_admin_socket_is_replaced() {
    let dir = TempDir::new("stale");
    let sock = dir.join("admin.sock");
    // A gateway that died: the file stays, nobody listens on it.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let (serve, _, line) = serve_on_socket(&dir, "gw", &sock);
    assert!(
        line.starts_with(&format!("admin socket {};", p(&sock))),
        "{line}"
    );
    let out = admin(Some(&sock), &["sessions"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (status, _) = serve.stop();
    assert!(status.success());
}

#[test]
fn an_admin_socket_in_a_directory_others_can_write_is_refused() {
    let dir = TempDir::new("open");
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = open.join("admin.sock");
    let out = refused_serve(serve_command(
        &dir,
        "gw",
        "127.0.0.1:0",
        &["--admin-socket", p(&sock)],
        &[],
    ));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(
        err,
        format!(
            "ordergate: cannot open the admin socket {}: its directory {} is writable by others \
             (mode 0777) without the sticky bit: anyone who can write there could delete the \
             socket and bind their own in its place, and `ordergate admin` would talk to theirs; \
             use a private directory (the default) or `chmod go-w {}`\n",
            p(&sock),
            p(&open),
            p(&open)
        )
    );
    assert!(!sock.exists());
    assert!(!dir.join("gw.journal").exists());
}

#[test]
fn serve_and_admin_find_the_default_socket_in_the_runtime_directory() {
    let dir = TempDir::new("runtime");
    let run = dir.join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    let env: &[(&str, &Path)] = &[("RUNTIME_DIRECTORY", &run)];
    let (serve, _, line) = Serve::start(serve_command(&dir, "gw", "127.0.0.1:0", &[], env));
    let sock = run.join("admin.sock");
    assert!(
        line.starts_with(&format!("admin socket {};", p(&sock))),
        "{line}"
    );
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // `ordergate admin` without --socket finds the same one.
    let out = admin(None, &["sessions"], env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("ok\n"));
    let (status, _) = serve.stop();
    assert!(status.success());
    assert!(!sock.exists());

    // Nothing running: the error names the default and where it came from.
    let out = admin(None, &["sessions"], env);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "ordergate: cannot reach the admin socket {} (the default, from $RUNTIME_DIRECTORY):",
            p(&sock)
        )),
        "{err}"
    );
}

/// Root only (the test must run a process of another uid): a peer that is
/// neither the gateway's uid nor root is refused by SO_PEERCRED, even
/// when the socket's mode would let it in, and counted.
#[test]
fn an_admin_peer_of_another_uid_is_refused_and_counted() {
    if !ordergate::sys::is_root() {
        eprintln!("skipped: needs root to run a client as another uid");
        return;
    }
    const NOBODY: u32 = 65534;
    let dir = TempDir::new("peer");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.join("admin.sock");
    let (serve, _, _) = serve_on_socket(&dir, "gw", &sock);
    // Widen the socket: only the peer check is left to refuse.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new(ordergate_bin())
        .args(["admin", "--socket", p(&sock), "sessions"])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run ordergate admin as nobody");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let answer = text(&out.stdout);
    assert!(
        answer.starts_with(&format!("error: uid {NOBODY} (pid ")),
        "{answer}"
    );
    assert!(
        answer.ends_with(") may not use this admin socket: only uid 0 (the gateway's) or root\n"),
        "{answer}"
    );
    assert_eq!(
        published(&dir.join("gw.stats"), "admin_peers_refused", 1),
        1
    );
    // Root still may.
    let out = admin(Some(&sock), &["sessions"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (status, rest) = serve.stop();
    assert!(status.success());
    assert_eq!(
        admin_line(&rest),
        "admin: 1 peers refused (not the gateway's uid or root), 0 requests refused, 0 probes \
         from another serve"
    );
}

// ---------------------------------------------------------------------------
// Item 10: commands that did nothing fail; every kill is journaled

#[test]
fn mistyped_and_repeated_admin_commands_fail_and_every_kill_is_journaled() {
    let dir = TempDir::new("cmds");
    let sock = dir.join("admin.sock");
    let (serve, _, _) = serve_on_socket(&dir, "gw", &sock);
    let run = |args: &[&str]| {
        let out = admin(Some(&sock), args, &[]);
        (out.status.code(), text(&out.stdout))
    };

    // A key that does not exist: an error naming it, exit 1.
    for verb in ["revoke", "kill"] {
        assert_eq!(
            run(&[verb, "9999"]),
            (
                Some(1),
                format!(
                    "error: {verb} 9999: key 9999 is not in the keys table; nothing was done \
                     (`ordergate admin sessions` lists the keys)\n"
                )
            )
        );
    }

    // The first revoke works; the second did nothing: exit 1.
    let (code, answer) = run(&["revoke", &KEY.to_string()]);
    assert_eq!(code, Some(0), "{answer}");
    assert!(
        answer.starts_with(&format!(
            "ok revoked key {KEY}: 0 sessions ended with KEY_REVOKED; 0 resting orders \
             canceled (generation 2); every reactor switched in "
        )),
        "{answer}"
    );
    assert_eq!(
        run(&["revoke", &KEY.to_string()]),
        (
            Some(1),
            format!(
                "error: revoke {KEY}: key {KEY} is already revoked; nothing was done (its \
                 sessions ended and its orders were canceled then; `kill {KEY}` still records a \
                 kill)\n"
            )
        )
    );

    // A kill after the revoke is recorded all the same.
    assert_eq!(
        run(&["kill", &KEY.to_string()]),
        (
            Some(0),
            format!(
                "ok killed key {KEY}: it was already revoked, so 0 sessions ended now (its \
                 sessions ended and their orders were canceled when it was revoked); the kill is \
                 recorded\n"
            )
        )
    );
    let (status, rest) = serve.stop();
    assert!(status.success());
    assert_eq!(
        admin_line(&rest),
        "admin: 0 peers refused (not the gateway's uid or root), 3 requests refused, 0 probes \
         from another serve"
    );

    let out = Command::new(ordergate_bin())
        .args(["audit", "show", p(&dir.join("gw.journal"))])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let kinds: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(
        kinds,
        ["JournalOpened", "Revoke", "Kill"],
        "one Revoke, one Kill, nothing for the refused ones:\n{shown}"
    );
    let kill = shown.lines().find(|l| l.contains(" Kill ")).unwrap();
    assert!(kill.contains(&format!("key={KEY}")), "{kill}");
}

/// In process: a kill ends the live sessions and says how many; the
/// errors are typed.
#[test]
fn a_kill_says_how_many_sessions_it_ended() {
    let gw = start();
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    a.logon(0);
    let mut b = Conn::connect(gw.local_addr(), TRADER);
    b.logon(0);
    let control = gw.control();
    assert_eq!(
        control.kill(9999).err(),
        Some(ControlError::UnknownKey(9999))
    );
    assert_eq!(
        control.revoke(9999).err(),
        Some(ControlError::UnknownKey(9999))
    );
    let report = control.kill(TRADER).expect("a known key");
    assert_eq!(report.sessions_ended, 2);
    assert!(!report.already_revoked);
    assert_eq!(terminate(&a.recv().unwrap()), TR::KEY_REVOKED.wire());
    assert_eq!(terminate(&b.recv().unwrap()), TR::KEY_REVOKED.wire());
    let again = control.kill(TRADER).expect("a kill is always recorded");
    assert!(again.already_revoked);
    assert_eq!(again.sessions_ended, 0);
    assert_eq!(
        control.revoke(TRADER).err(),
        Some(ControlError::AlreadyRevoked(TRADER))
    );
    gw.shutdown();
}

// ---------------------------------------------------------------------------
// Issue 11, item 6: errors name what they refer to

/// The Prometheus address is taken (here by this test): `serve` refuses
/// before the gateway starts, naming the address and who holds it.
#[test]
fn a_prometheus_address_in_use_is_refused_before_the_start_naming_it_and_its_holder() {
    let dir = TempDir::new("prom-in-use");
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let sock = dir.join("admin.sock");
    let out = refused_serve(serve_command(
        &dir,
        "gw",
        "127.0.0.1:0",
        &["--admin-socket", p(&sock), "--prometheus", &addr],
        &[],
    ));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let me = std::process::id();
    let name = ordergate::sys::process_name(me).unwrap();
    assert_eq!(
        err,
        format!(
            "ordergate: cannot serve prometheus metrics on {addr}: another process (pid {me}, \
             {name}) is already listening on this address: stop it, or give --prometheus \
             another address\n"
        )
    );
    // Refused before the gateway started, and the admin socket given back.
    assert!(!dir.join("gw.journal").exists());
    assert!(!sock.exists());
}

/// A bind the kernel refuses for another reason than "in use" (here a
/// port below 1024 for a user without the privilege: the test runs
/// `serve` as nobody when it is root) names the address too, for the
/// gateway's listener and for the Prometheus endpoint.
#[test]
fn a_bind_the_kernel_refuses_names_its_address() {
    const NOBODY: u32 = 65534;
    let unprivileged_start: u16 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1024);
    let root = ordergate::sys::is_root();
    // A privileged port nobody listens on (root can probe for one).
    let port = (1..unprivileged_start)
        .rev()
        .find(|&port| !root || TcpListener::bind(("127.0.0.1", port)).is_ok());
    let Some(port) = port else {
        eprintln!("skipped: every port may be bound without privilege here");
        return;
    };
    let dir = TempDir::new("eacces");
    if root {
        std::os::unix::fs::chown(&dir.0, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let keys = dir.keys();
    if root {
        std::os::unix::fs::chown(&keys, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let privileged = format!("127.0.0.1:{port}");
    for (tag, listen, extra, what) in [
        (
            "listener",
            privileged.as_str(),
            None,
            "cannot start: listener",
        ),
        (
            "prometheus",
            "127.0.0.1:0",
            Some(privileged.as_str()),
            "cannot serve prometheus metrics on",
        ),
    ] {
        let sock = dir.join(&format!("{tag}.sock"));
        let mut args = vec!["--admin-socket", p(&sock)];
        if let Some(prometheus) = extra {
            args.extend(["--prometheus", prometheus]);
        }
        let mut cmd = serve_command(&dir, tag, listen, &args, &[]);
        if root {
            cmd.uid(NOBODY).gid(NOBODY);
        }
        let out = refused_serve(cmd);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "stderr: {err}");
        assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
        // The last line (a warning may come first: memory a user without
        // privilege cannot lock).
        assert_eq!(
            err.lines().last(),
            Some(
                format!(
                    "ordergate: {what} {privileged}: Permission denied (os error 13); a port \
                     below {unprivileged_start} needs root or CAP_NET_BIND_SERVICE"
                )
                .as_str()
            ),
            "{err}"
        );
    }
}

/// `ordergate admin` takes `--socket` before or after the request.
#[test]
fn admin_takes_the_socket_before_or_after_the_request() {
    let dir = TempDir::new("socket-order");
    let sock = dir.join("admin.sock");
    let (serve, _, _) = serve_on_socket(&dir, "gw", &sock);
    let want = format!("key_id sessions revoked\n{KEY} 0 false\nok\n");
    for args in [
        ["admin", "--socket", p(&sock), "sessions"],
        ["admin", "sessions", "--socket", p(&sock)],
    ] {
        let out = Command::new(ordergate_bin())
            .args(args)
            .env_remove("RUNTIME_DIRECTORY")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), want, "{args:?}");
    }
    let out = Command::new(ordergate_bin())
        .args(["admin", "kill", &KEY.to_string(), "--socket", p(&sock)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!("ok killed key {KEY}: ")),
        "{}",
        text(&out.stdout)
    );
    let (status, _) = serve.stop();
    assert!(status.success());
}
