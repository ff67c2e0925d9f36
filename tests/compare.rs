//! `ordergate-bench compare`: the same-run comparison of a bare TCP echo,
//! ordergate and HAProxy, kept small (200 round trips × 3 rounds). Row (c)
//! is measured when HAProxy is installed and skipped, with a note, when it
//! is not; nothing here installs it (only the command line may, and every
//! command line below names its `--haproxy` path, so it never does).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ordergate_bench::compare::{
    CompareParams, CompareReport, Haproxy, HaproxyBinary, Install, RowKind, locate_haproxy,
    run_compare,
};
use ordergate_bench::echo::{EchoClient, spawn_echo_server};

const ROUND_TRIPS: usize = 200;
const ROUNDS: usize = 3;
/// Where no HAProxy is: forces the "missing" path.
const NO_HAPROXY: &str = "/nonexistent/ordergate-test/haproxy";

fn small(haproxy: HaproxyBinary) -> CompareParams {
    CompareParams {
        round_trips: ROUND_TRIPS,
        rounds: ROUNDS,
        ..CompareParams::new(haproxy)
    }
}

/// HAProxy if this machine has it, found without installing anything.
fn installed_haproxy() -> Option<PathBuf> {
    match locate_haproxy(None, Install::Never) {
        HaproxyBinary::At(path) => Some(path),
        HaproxyBinary::Missing { note } => {
            eprintln!("{note}");
            None
        }
    }
}

fn assert_rows(report: &CompareReport, kinds: &[RowKind]) {
    let got: Vec<RowKind> = report.rows.iter().map(|r| r.kind).collect();
    assert_eq!(got, kinds);
    for row in &report.rows {
        assert_eq!(
            row.ns.len() as usize,
            ROUND_TRIPS * ROUNDS,
            "{:?}: every recorded round trip, no warm-up",
            row.kind
        );
        assert!(row.ns.min() >= 1, "{:?}", row.kind);
        assert_eq!(row.rounds_p50_ns.len(), ROUNDS);
        assert!(row.rounds_p50_ns.iter().all(|&p| p > 0), "{:?}", row.kind);
    }
}

#[test]
fn a_missing_haproxy_gives_two_rows_and_says_why() {
    let haproxy = locate_haproxy(Some(Path::new(NO_HAPROXY)), Install::Never);
    assert!(matches!(haproxy, HaproxyBinary::Missing { .. }));
    let report = run_compare(&small(haproxy)).unwrap();
    let text = report.render();
    println!("{text}");
    assert_rows(&report, &[RowKind::Echo, RowKind::Ordergate]);
    let note = report.haproxy_skipped.as_deref().unwrap();
    assert!(
        note.contains(NO_HAPROXY) && note.contains("skipped"),
        "{note}"
    );
    assert!(text.contains(note), "{text}");
    assert!(text.contains("(a) bare TCP echo") && text.contains("(b) ordergate New→Accepted"));
    assert!(!text.contains("(c) HAProxy"), "{text}");
    assert!(text.contains("ordergate added ÷ HAProxy added: n/a (row (c) skipped)"));
    assert!(text.contains("ordergate added p50: "), "{text}");
    assert!(report.ratio(0.5).is_none());
    assert!(report.added_us(RowKind::Ordergate, 0.5).is_some());
}

#[test]
fn with_haproxy_installed_there_are_three_rows_and_the_ratio() {
    let Some(path) = installed_haproxy() else {
        // Nothing more to check here: the test above covers two rows.
        return;
    };
    // Unpinned here (the default pins; the test below pins explicitly).
    let report = run_compare(&CompareParams {
        cpu: None,
        ..small(HaproxyBinary::At(path.clone()))
    })
    .unwrap();
    let text = report.render();
    println!("{text}");
    assert_rows(
        &report,
        &[RowKind::Echo, RowKind::Ordergate, RowKind::Haproxy],
    );
    assert_eq!(report.haproxy_skipped, None);
    assert_eq!(report.haproxy_path.as_deref(), Some(path.as_path()));
    let version = report.haproxy_version.as_deref().unwrap();
    assert!(version.starts_with("HAProxy version "), "{version}");
    assert!(text.contains("(c) HAProxy tcp → echo"), "{text}");
    assert!(
        text.contains("ordergate added ÷ HAProxy added: p50 "),
        "{text}"
    );
    assert!(text.contains("(goal ≤ 10%: "), "{text}");
    assert!(text.contains("(goal ≤ 1.5 µs: "), "{text}");
    // No assertion on the figures themselves: unpinned on a shared 2-core
    // box a row's median can jump tens of µs (a timed test would be flaky);
    // the benchmark command, not the suite, judges latency.
    assert!(report.added_us(RowKind::Haproxy, 0.5).is_some(), "{text}");
}

#[test]
fn the_haproxy_guard_forwards_then_kills_it_and_removes_its_dir() {
    let Some(path) = installed_haproxy() else {
        return;
    };
    let (echo, _server) = spawn_echo_server();
    let haproxy = Haproxy::start(&path, echo).unwrap();
    let (addr, pid, dir) = (haproxy.addr(), haproxy.pid(), haproxy.dir().to_path_buf());
    assert!(dir.join("haproxy.cfg").is_file());
    let mut client = EchoClient::connect(addr, 64).unwrap();
    let mut h = ordergate_bench::load::new_histogram();
    client.round_trips(&[7u8; 64], 5, 20, &mut h).unwrap();
    assert_eq!(h.len(), 20);
    drop(client);
    drop(haproxy);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "haproxy {pid} still exists"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
}

#[test]
fn a_haproxy_that_cannot_start_is_an_error_naming_it() {
    // `false` exits at once: the start must fail, not hang or skip.
    let Some(bin) = ordergate_bench::compare::find_on_path("false") else {
        return;
    };
    let (echo, _server) = spawn_echo_server();
    let e = Haproxy::start(&bin, echo).unwrap_err();
    assert!(e.contains("haproxy exited"), "{e}");
}

fn cli_json(tag: &str, haproxy: &Path) -> (serde_json::Value, String) {
    let dir = std::env::temp_dir().join(format!(
        "ordergate-compare-test-{}-{tag}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("compare.json");
    let out = Command::new(env!("CARGO_BIN_EXE_ordergate-bench"))
        .args([
            "compare",
            "--round-trips",
            "200",
            "--rounds",
            "3",
            "--haproxy",
        ])
        .arg(haproxy)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_dir(&dir);
    (value, stdout)
}

fn check_json(v: &serde_json::Value, rows: &[&str]) {
    for key in [
        "round_trips_per_round",
        "rounds",
        "warmup_first_round",
        "warmup_per_round",
        "frame_bytes",
        "idle",
        "cpu",
        "haproxy",
        "rows",
        "added",
        "ratio_ordergate_to_haproxy",
        "rounds_median",
        "noisy",
        "goals",
        "elapsed_s",
    ] {
        assert!(v.get(key).is_some(), "no {key} in {v}");
    }
    assert_eq!(v["round_trips_per_round"], 200);
    assert_eq!(v["rounds"], 3);
    assert_eq!(v["frame_bytes"], 64);
    assert_eq!(v["idle"], "backoff");
    assert_eq!(
        v["cpu"].as_u64(),
        ordergate_bench::inprocess::default_cpu().map(|c| c as u64),
        "pinned by default"
    );
    let got: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, rows);
    for row in v["rows"].as_array().unwrap() {
        assert_eq!(row["samples"], 600, "{row}");
        for key in ["p50_us", "p99_us", "p999_us", "max_us", "mean_us"] {
            assert!(row[key].as_f64().unwrap() > 0.0, "{key} in {row}");
        }
        assert_eq!(row["rounds_p50_us"].as_array().unwrap().len(), 3);
        // The server side's cost (issue 11): CPU and wake-ups always,
        // system calls where perf allows (root here: counted).
        assert!(
            row["server_cpu_us_per_request"].as_f64().unwrap() > 0.0,
            "{row}"
        );
        assert!(row["server_wakeups_per_request"].is_f64(), "{row}");
        let syscalls = &row["server_syscalls_per_request"];
        assert!(
            syscalls.as_f64().is_some_and(|n| n > 0.0) || !v["syscalls_note"].is_null(),
            "{row}"
        );
    }
    // The reactor's own count of its kernel entries.
    let reactor = &v["reactor"];
    assert!(
        reactor["messages_in"].as_u64().unwrap() >= 1200,
        "{reactor}"
    );
    assert!(reactor["enters"].as_u64().unwrap() > 0, "{reactor}");
    assert!(v["added"]["ordergate"]["p50_us"].is_f64());
    assert!(v["rounds_median"]["ordergate_added_p50_us"].is_f64());
    assert_eq!(v["goals"]["ratio_p50_max"].as_f64(), Some(0.1));
    assert_eq!(v["goals"]["ordergate_added_p50_us_max"].as_f64(), Some(1.5));
}

#[test]
fn the_command_writes_json_with_every_number_without_haproxy() {
    let (v, stdout) = cli_json("without", Path::new(NO_HAPROXY));
    check_json(&v, &["echo", "ordergate"]);
    assert!(v["haproxy"]["path"].is_null());
    assert!(
        v["haproxy"]["skipped"]
            .as_str()
            .unwrap()
            .contains(NO_HAPROXY)
    );
    assert!(v["added"]["haproxy"].is_null());
    assert!(v["ratio_ordergate_to_haproxy"]["p50"].is_null());
    assert!(stdout.contains("row (c) skipped"), "{stdout}");
}

#[test]
fn the_command_writes_json_with_every_number_with_haproxy() {
    let Some(path) = installed_haproxy() else {
        return;
    };
    let (v, stdout) = cli_json("with", &path);
    check_json(&v, &["echo", "ordergate", "haproxy"]);
    assert_eq!(v["haproxy"]["path"].as_str(), path.to_str());
    assert!(v["haproxy"]["skipped"].is_null());
    assert!(v["added"]["haproxy"]["p50_us"].is_f64());
    assert!(v["ratio_ordergate_to_haproxy"]["p50"].is_f64());
    assert!(stdout.contains("(c) HAProxy tcp → echo"), "{stdout}");
}

#[test]
fn pinned_to_one_cpu_every_row_still_runs() {
    let cpu = ordergate::config::available_cores().unwrap()[0];
    let haproxy = match installed_haproxy() {
        Some(path) => HaproxyBinary::At(path),
        None => locate_haproxy(Some(Path::new(NO_HAPROXY)), Install::Never),
    };
    let three = matches!(haproxy, HaproxyBinary::At(_));
    let report = run_compare(&CompareParams {
        cpu: Some(cpu),
        ..small(haproxy)
    })
    .unwrap();
    let text = report.render();
    println!("{text}");
    assert_eq!(report.cpu, Some(cpu));
    assert!(text.contains(&format!("pinned to CPU {cpu}")), "{text}");
    if three {
        assert_rows(
            &report,
            &[RowKind::Echo, RowKind::Ordergate, RowKind::Haproxy],
        );
    } else {
        assert_rows(&report, &[RowKind::Echo, RowKind::Ordergate]);
    }
}

#[test]
fn the_command_refuses_bad_flags_before_looking_for_haproxy() {
    let cases: [(&[&str], &str); 7] = [
        (&["--round-trips", "0"], "--round-trips"),
        (&["--rounds", "0"], "--rounds"),
        (&["--round-trips", "100001"], "--round-trips"),
        (&["--cpu", "0", "--idle", "busy-spin"], "busy-spin"),
        // Pinned by default, so spinning needs `--cpu any`.
        (&["--idle", "busy-spin"], "--cpu any"),
        (&["--cpu", "100000"], "--cpu 100000"),
        (&["--cpu", "first"], "--cpu"),
    ];
    for (args, named) in cases {
        // No --haproxy: were the flags accepted, it might install HAProxy;
        // they are refused first.
        let out = Command::new(env!("CARGO_BIN_EXE_ordergate-bench"))
            .arg("compare")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(!stderr.contains("apt-get"), "{stderr}");
    }
}
