//! The `ordergate` binary: its help (and `ordergate-bench`'s), and every
//! refusal `serve` makes before it would start a gateway (that it carries
//! none of the bench tools is tests/ordergate/binary.rs). No test here starts one (each case
//! fails before `Gateway::start`), so they hold whatever the reactor does.

mod common;

use std::process::{Command, Output};

use common::serve::{KEY, SECRET_HEX as SECRET, TempDir, ordergate, p as path};

/// `ordergate-bench ARGS…`, run to its end.
fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordergate-bench"))
        .args(args)
        .output()
        .expect("run ordergate-bench")
}

fn keys_text(environment: &str) -> String {
    format!(
        "[[key]]\nid = {KEY}\nsecret = \"{SECRET}\"\nscopes = [\"trade\", \"cancel\"]\nenvironment = \"{environment}\"\n"
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Refused with `code`, nothing on stdout (the "serving on" line is never
/// printed), and stderr as returned.
fn refused(out: &Output, code: i32) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    err
}

#[test]
fn help_lists_every_command_and_flag() {
    let out = ordergate(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "ordergate serve",
        "--listen",
        "--keys",
        "--config",
        "--idle",
        "busy-spin",
        "backoff",
        "ordergate stat",
        "ordergate audit",
        "ordergate keys",
        "ordergate admin",
        "Exit codes",
    ] {
        assert!(
            help.contains(word),
            "--help does not mention {word}:\n{help}"
        );
    }
    let out = ordergate(&["serve", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout).unwrap().contains("--keys"));

    let out = bench(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "ordergate-bench demo",
        "--seconds",
        "--sessions",
        "ordergate-bench load",
        "--connect",
        "--key-id",
        "--secret-file",
        "--rate",
        "--duration",
        "--sweep",
        "ordergate-bench compare",
        "--haproxy",
        "Exit codes",
    ] {
        assert!(
            help.contains(word),
            "ordergate-bench --help does not mention {word}:\n{help}"
        );
    }
}

#[test]
fn no_command_is_a_usage_error() {
    let err = refused(&ordergate(&[]), 2);
    assert!(err.contains("Usage"), "{err}");
}

#[test]
fn serve_without_keys_names_the_flag() {
    let err = refused(&ordergate(&["serve", "--listen", "127.0.0.1:0"]), 2);
    assert!(err.contains("--keys"), "{err}");

    let dir = TempDir::new("nokeys");
    let config = dir.file("gw.toml", "listen = \"127.0.0.1:0\"\n", 0o644);
    let err = refused(&ordergate(&["serve", "--config", path(&config)]), 2);
    assert!(
        err.contains("--keys") && err.contains(path(&config)),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_keys_file_others_can_read() {
    let dir = TempDir::new("mode");
    let keys = dir.file("keys.toml", &keys_text("production"), 0o644);
    let err = refused(&ordergate(&["serve", "--keys", path(&keys)]), 2);
    assert!(err.contains(path(&keys)), "{err}");
    assert!(err.contains("0644"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
}

#[test]
fn serve_refuses_a_missing_keys_file() {
    let dir = TempDir::new("missing");
    let keys = dir.0.join("absent.toml");
    let err = refused(&ordergate(&["serve", "--keys", path(&keys)]), 2);
    assert!(err.contains(path(&keys)), "{err}");
}

#[test]
fn serve_refuses_keys_with_none_for_its_environment() {
    let dir = TempDir::new("env");
    let keys = dir.file("keys.toml", &keys_text("sandbox"), 0o600);
    let err = refused(&ordergate(&["serve", "--keys", path(&keys)]), 2);
    assert!(err.contains(path(&keys)), "{err}");
    assert!(
        err.contains("production") && err.contains("WRONG_ENVIRONMENT"),
        "{err}"
    );
}

#[test]
fn serve_refuses_an_unknown_config_field() {
    let dir = TempDir::new("unknown");
    let keys = dir.file("keys.toml", &keys_text("production"), 0o600);
    let config = dir.file("gw.toml", "[reactors]\ncount = 1\ncuont = 2\n", 0o644);
    let out = ordergate(&["serve", "--config", path(&config), "--keys", path(&keys)]);
    let err = refused(&out, 2);
    assert!(err.contains(path(&config)), "{err}");
    assert!(err.contains("reactors.cuont"), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn serve_refuses_an_empty_journal_or_stats_path() {
    let dir = TempDir::new("emptypath");
    let keys = dir.file("keys.toml", &keys_text("production"), 0o600);
    let config = dir.file("gw.toml", "audit_journal = \"\"\n", 0o644);
    let out = ordergate(&["serve", "--config", path(&config), "--keys", path(&keys)]);
    let err = refused(&out, 2);
    assert_eq!(
        err,
        format!(
            "ordergate: config file {}, line 1, column 1: `audit_journal` is an empty path; \
             give a file, or leave `audit_journal` out for the default, ordergate-audit.journal\n",
            path(&config)
        )
    );
    // As flags, clap refuses an empty value before the config is read.
    for flag in ["--audit-journal", "--stats-file"] {
        let err = refused(&ordergate(&["serve", flag, "", "--keys", path(&keys)]), 2);
        assert!(err.contains(flag), "{err}");
    }
}

#[test]
fn serve_refuses_zero_reactors() {
    let dir = TempDir::new("count");
    let keys = dir.file("keys.toml", &keys_text("production"), 0o600);
    let config = dir.file("gw.toml", "[reactors]\ncount = 0\n", 0o644);
    let out = ordergate(&["serve", "--config", path(&config), "--keys", path(&keys)]);
    let err = refused(&out, 2);
    assert!(err.contains(path(&config)), "{err}");
    assert!(
        err.contains("reactors.count") && err.contains("1..=64"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_core_the_process_may_not_use() {
    let dir = TempDir::new("cores");
    let keys = dir.file("keys.toml", &keys_text("production"), 0o600);
    // No host has 60000 cores in a test runner's affinity mask.
    let config = dir.file(
        "gw.toml",
        "[engine]\nplacement = \"own-thread\"\ncore = 60000\n",
        0o644,
    );
    let out = ordergate(&["serve", "--config", path(&config), "--keys", path(&keys)]);
    let err = refused(&out, 2);
    assert!(err.contains(path(&config)), "{err}");
    assert!(
        err.contains("engine.core") && err.contains("60000"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_bad_idle_flag() {
    let err = refused(&ordergate(&["serve", "--idle", "spin"]), 2);
    assert!(err.contains("busy-spin"), "{err}");
}

#[test]
fn load_refuses_a_duration_without_unit() {
    let out = bench(&[
        "load",
        "--connect",
        "127.0.0.1:9000",
        "--key-id",
        "1",
        "--secret-file",
        "s",
        "--sessions",
        "1",
        "--rate",
        "10",
        "--duration",
        "10",
    ]);
    let err = refused(&out, 2);
    assert!(err.contains("--duration") && err.contains("unit"), "{err}");
}

#[test]
fn demo_refuses_zero_sessions() {
    let err = refused(&bench(&["demo", "--sessions", "0"]), 2);
    assert!(err.contains("--sessions"), "{err}");
}

/// `listen = "localhost:9000"` in a config file is refused with the same
/// explanation as `--listen localhost:9000`, naming the file and the line.
#[test]
fn a_host_name_to_listen_on_is_explained_from_the_flag_and_from_the_config_file() {
    let dir = TempDir::new("listen-name");
    let keys = dir.file("keys.toml", &keys_text("production"), 0o600);
    let flag = ordergate(&["serve", "--listen", "localhost:9000", "--keys", path(&keys)]);
    let flag_err = refused(&flag, 2);
    let why = "`localhost:9000` is not an IP address and a port (`localhost` is not an IP \
               address): give e.g. 127.0.0.1:9000, 0.0.0.0:9000 or [::1]:9000; host names are \
               not looked up";
    assert!(flag_err.contains(why), "{flag_err}");

    let config = dir.file(
        "gw.toml",
        "# the gateway\nlisten = \"localhost:9000\"\n",
        0o644,
    );
    let out = ordergate(&["serve", "--config", path(&config), "--keys", path(&keys)]);
    let err = refused(&out, 2);
    assert_eq!(
        err,
        format!(
            "ordergate: config file {}, line 2, column 10: `listen`: {why}\n",
            path(&config)
        )
    );
}

#[test]
fn audit_subcommands_have_help_and_refuse_bad_arguments() {
    let out = ordergate(&["audit", "verify", "--help"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "FILE",
        "--expect-records",
        "--expect-last",
        "--anchor-key",
        "--expect-closed",
    ] {
        assert!(
            help.contains(word),
            "audit verify --help lacks {word}:\n{help}"
        );
    }
    let out = ordergate(&["audit", "show", "--help"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(String::from_utf8(out.stdout).unwrap().contains("--json"));
    let out = ordergate(&["audit", "--help"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("verify") && help.contains("show"), "{help}");

    let err = refused(&ordergate(&["audit", "verify"]), 2);
    assert!(err.contains("FILE"), "{err}");
    let err = refused(&ordergate(&["audit", "show", "x.journal", "--yaml"]), 2);
    assert!(err.contains("--yaml"), "{err}");
    let err = refused(&ordergate(&["audit", "frobnicate"]), 2);
    assert!(err.contains("frobnicate"), "{err}");
    let err = refused(
        &ordergate(&["audit", "verify", "x.journal", "--expect-closed"]),
        2,
    );
    assert!(err.contains("--expect-closed needs --anchor-key"), "{err}");
}
