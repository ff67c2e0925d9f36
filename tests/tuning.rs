//! `tuning/`: the host check runs here and says what it checked, every
//! example config is one `serve` accepts (and says what `check-host` reads
//! from it), and every script, the sysctl profile and the unit are well
//! formed. Nothing here changes the host: `irq-affinity.sh` only ever runs
//! into its refusals.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ordergate::config::{self, Config, Placement};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tuning(name: &str) -> PathBuf {
    root().join("tuning").join(name)
}

fn bash(args: &[&str]) -> Output {
    Command::new("bash")
        .args(args)
        .current_dir(root())
        .output()
        .expect("run bash")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `tuning/configs/*.toml`, sorted.
fn configs() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(tuning("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 3,
        "expected host-2core, host-8core and host-32core: {paths:?}"
    );
    paths
}

/// Expands a cpulist ("0-1,7") into its core ids.
fn cpulist(list: &str) -> BTreeSet<usize> {
    let mut cores = BTreeSet::new();
    for word in list.split(',') {
        match word.split_once('-') {
            Some((lo, hi)) => cores.extend(lo.parse::<usize>().unwrap()..=hi.parse().unwrap()),
            None => {
                cores.insert(word.parse().unwrap());
            }
        }
    }
    cores
}

/// Items every run prints, whatever the host has.
const ITEMS: &[&str] = &[
    "cores",
    "isolcpus",
    "nohz_full",
    "rcu_nocbs",
    "governor",
    "smt",
    "thp",
    "irqbalance",
    "nic irqs",
    "busy poll",
    "io_uring",
    "SHA-NI",
    "clock source",
    "c-states",
    "swap",
];

/// Checks the shape of a check-host report and returns its item names.
/// Exit 0 without a WARN, 1 with one; every WARN has a `fix:`.
fn check_report(out: &Output) -> Vec<String> {
    let text = stdout(out);
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(1)),
        "check-host exited {code:?}\nstdout:\n{text}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut warns = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with('#') || line.starts_with("      ") {
            continue;
        }
        let (status, rest) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("not `STATUS  item: finding`: {line:?}"));
        assert!(
            matches!(status, "PASS" | "WARN" | "INFO"),
            "status {status:?} in {line:?}"
        );
        let (item, finding) = rest
            .split_once(": ")
            .unwrap_or_else(|| panic!("no `item: finding` in {line:?}"));
        assert!(!finding.is_empty(), "empty finding in {line:?}");
        if status == "WARN" {
            warns += 1;
            assert!(
                lines
                    .get(i + 1)
                    .is_some_and(|next| next.starts_with("      fix: ")),
                "WARN without a fix line: {line:?}"
            );
        }
        items.push(item.to_owned());
    }
    assert_eq!(
        code,
        Some(if warns > 0 { 1 } else { 0 }),
        "exit code against {warns} WARN(s):\n{text}"
    );
    items
}

#[test]
fn check_host_runs_here_and_reports_every_item() {
    let out = bash(&["tuning/check-host"]);
    let items = check_report(&out);
    for item in ITEMS {
        assert!(
            items.iter().any(|i| i == item),
            "no {item:?} line:\n{}",
            stdout(&out)
        );
    }
}

#[test]
fn check_host_reads_the_cores_of_each_config_as_serve_does() {
    for path in configs() {
        let config = config::load(&path).unwrap();
        let out = bash(&["tuning/check-host", "--config", path.to_str().unwrap()]);
        check_report(&out);
        let text = stdout(&out);
        let reactors = text
            .lines()
            .find_map(|l| l.strip_prefix("# reactor cores: "))
            .unwrap_or_else(|| panic!("no reactor cores line:\n{text}"));
        let engine = text
            .lines()
            .find_map(|l| l.strip_prefix("# engine: "))
            .unwrap_or_else(|| panic!("no engine line:\n{text}"));
        let (listed, _) = reactors
            .split_once(" (from ")
            .unwrap_or_else(|| panic!("{}: {reactors:?}", path.display()));
        let cores: BTreeSet<usize> = config.reactors.cores.iter().copied().collect();
        assert_eq!(cpulist(listed), cores, "{}: {reactors:?}", path.display());
        match (config.engine.placement, config.engine.core) {
            (Placement::OwnThread, Some(core)) => assert!(
                engine.starts_with(&format!("own thread on core {core}")),
                "{engine:?}"
            ),
            (Placement::OwnThread, None) => assert!(engine.starts_with("own thread, not pinned")),
            (Placement::Shared, _) => assert!(engine.starts_with("shares reactor 0"), "{engine:?}"),
        }
    }
}

#[test]
fn check_host_takes_cores_from_the_command_line_and_refuses_nonsense() {
    let out = bash(&["tuning/check-host", "--cores", "0", "--engine-core", "1"]);
    check_report(&out);
    let text = stdout(&out);
    assert!(text.contains("# reactor cores: 0 (from --cores)"), "{text}");
    assert!(text.contains("# engine: own thread on core 1"), "{text}");

    for args in [
        &["--bogus"][..],
        &["--cores", "two"],
        &["--cores", "1", "--engine-core", "1"],
        &["--config", "/nonexistent/ordergate.toml"],
    ] {
        let mut argv = vec!["tuning/check-host"];
        argv.extend_from_slice(args);
        let out = bash(&argv);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
}

#[test]
fn every_config_is_valid_complete_and_names_its_kernel_command_line() {
    let example = fs::read_to_string(tuning("ordergate.example.toml")).unwrap();
    let fields = |text: &str| -> BTreeSet<String> {
        let table: toml::Table = text.parse().unwrap();
        let mut names = BTreeSet::new();
        for (key, value) in &table {
            match value.as_table() {
                Some(section) => names.extend(section.keys().map(|k| format!("{key}.{k}"))),
                None => {
                    names.insert(key.clone());
                }
            }
        }
        names
    };
    // Every field of the example, plus `keys`, `audit_journal`,
    // `stats_file` and `engine.core`, which it leaves commented out (the
    // last only where the engine is pinned).
    let mut expected = fields(&example);
    for field in ["keys", "audit_journal", "stats_file"] {
        expected.insert(field.to_owned());
    }

    for path in configs() {
        let name = path.display();
        // The pure path: parse and check every bound (not the host's cores).
        let config: Config = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let text = fs::read_to_string(&path).unwrap();
        let mut want = expected.clone();
        if config.engine.core.is_some() {
            want.insert("engine.core".to_owned());
        }
        assert_eq!(fields(&text), want, "{name}: fields against the example");

        assert!(!config.reactors.cores.is_empty(), "{name}: reactors pinned");
        assert!(
            !config.reactors.cores.contains(&0),
            "{name}: core 0 is housekeeping"
        );

        // The header names the kernel command line, and it isolates exactly
        // the cores the config pins.
        let cmdline = text
            .lines()
            .take_while(|l| l.starts_with('#') || l.is_empty())
            .find_map(|l| l.trim_start_matches('#').trim().strip_prefix("isolcpus="))
            .unwrap_or_else(|| panic!("{name}: no isolcpus= in the header"));
        let isolated = cpulist(
            cmdline
                .split_whitespace()
                .next()
                .unwrap()
                .trim_start_matches("managed_irq,domain,"),
        );
        let pinned: BTreeSet<usize> = config
            .reactors
            .cores
            .iter()
            .copied()
            .chain(config.engine.core)
            .collect();
        assert_eq!(
            isolated, pinned,
            "{name}: isolcpus against the pinned cores"
        );
        for param in ["nohz_full=", "rcu_nocbs=", "irqaffinity="] {
            assert!(cmdline.contains(param), "{name}: header lacks {param}");
        }
    }
}

#[test]
fn every_script_parses() {
    let mut scripts = 0;
    for entry in fs::read_dir(root().join("tuning")).unwrap() {
        let path = entry.unwrap().path();
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if !text.starts_with("#!/usr/bin/env bash") {
            continue;
        }
        let out = bash(&["-n", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "bash -n {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        scripts += 1;
    }
    assert!(scripts >= 2, "check-host and irq-affinity.sh at least");
}

#[test]
fn irq_affinity_refuses_what_it_cannot_do_and_never_writes_by_default() {
    // No interface, no CPU list, a bad list, an unknown option: usage (2).
    for args in [
        &[][..],
        &["lo"],
        &["no-such-iface0", "0"],
        &["lo", "zero"],
        &["lo", "0", "--force"],
    ] {
        let mut argv = vec!["tuning/irq-affinity.sh"];
        argv.extend_from_slice(args);
        let out = bash(&argv);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // Loopback has no IRQs: nothing to move, said so (1), dry run or not.
    let out = bash(&["tuning/irq-affinity.sh", "lo", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no IRQs of lo"));
}

#[test]
fn sysctl_profile_gives_a_reason_for_every_setting_and_no_obsolete_knob() {
    let text = fs::read_to_string(tuning("sysctl/ordergate.conf")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut settings = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("not `key = value`: {line:?}"));
        assert!(
            key.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'),
            "{key:?}"
        );
        assert!(!value.is_empty() && !value.contains('#'), "{line:?}");
        assert!(
            i > 0 && lines[i - 1].starts_with('#'),
            "{key}: no comment above it"
        );
        settings.push(key);
    }
    for key in [
        "kernel.io_uring_disabled",
        "net.core.somaxconn",
        "vm.swappiness",
        "kernel.numa_balancing",
    ] {
        assert!(settings.contains(&key), "{key} missing");
    }
    for obsolete in [
        "net.ipv4.tcp_low_latency",
        "net.ipv4.tcp_tw_recycle",
        "kernel.sched_rt_runtime_us",
    ] {
        assert!(!settings.contains(&obsolete), "{obsolete} set");
    }
}

#[test]
fn service_unit_runs_serve_with_io_uring_allowed_and_the_8core_cores() {
    let text = fs::read_to_string(tuning("ordergate.service")).unwrap();
    let values = |key: &str| -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    };
    assert_eq!(
        values("ExecStart"),
        [
            "/usr/local/bin/ordergate serve --config /etc/ordergate/ordergate.toml \
          --admin-socket /run/ordergate/admin.sock"
        ]
    );
    // The admin socket goes in the private directory the unit makes for it
    // (serve's default there: $RUNTIME_DIRECTORY/admin.sock).
    assert_eq!(values("RuntimeDirectory"), ["ordergate"]);
    assert_eq!(values("PrivateTmp"), ["yes"]);
    assert_eq!(values("KillSignal"), ["SIGTERM"]);
    assert_eq!(values("LimitMEMLOCK"), ["infinity"]);
    assert_eq!(
        values("RestrictAddressFamilies"),
        ["AF_INET AF_INET6 AF_UNIX"]
    );
    let allowed = values("SystemCallFilter")[0];
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(allowed.split(' ').any(|w| w == call), "{call} not allowed");
    }
    for key in [
        "TimeoutStopSec",
        "LimitNOFILE",
        "LimitCORE",
        "NoNewPrivileges",
        "ProtectSystem",
        "ReadWritePaths",
        "PrivateTmp",
        "ProtectHome",
    ] {
        assert_eq!(values(key).len(), 1, "{key}");
    }

    // The process holds every secret: never a core file.
    assert_eq!(values("LimitCORE"), ["0"]);

    // CPUAffinity must hold every core host-8core.toml pins: serve refuses
    // a core outside the process's mask.
    let config = config::load(&tuning("configs/host-8core.toml")).unwrap();
    let mask: BTreeSet<usize> = values("CPUAffinity")[0]
        .split(' ')
        .flat_map(cpulist)
        .collect();
    for core in config.reactors.cores.iter().chain(&config.engine.core) {
        assert!(mask.contains(core), "core {core} outside CPUAffinity");
    }
    assert!(mask.contains(&0), "a housekeeping core for the main thread");

    // ProtectSystem=strict: every config's audit journal must be under the
    // unit's one writable path, or serve cannot create it.
    let writable = Path::new(values("ReadWritePaths")[0]);
    for path in configs() {
        let journal = config::load(&path).unwrap().audit_journal_path();
        assert!(
            journal.starts_with(writable),
            "{}: audit_journal {} outside ReadWritePaths",
            path.display(),
            journal.display()
        );
    }
}

/// `tuning/sweep.sh`, the README's one-command sweep, end to end with this
/// build's binary and a tiny sweep (3 steps of 300 ms at 200–800 orders/s,
/// an SLO no step on a loaded CI box can miss): it starts `serve` from the
/// config it writes, the load logs on with the key it made, the table and
/// verdict come out, the JSON and SVG land in SWEEP_OUT, and the gateway's
/// stop summary shows it answered every message.
#[test]
fn sweep_script_runs_a_whole_sweep_against_a_gateway_it_starts() {
    let out_dir = std::env::temp_dir().join(format!("ordergate-sweep-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out_dir);
    let out = Command::new("bash")
        .args([
            tuning("sweep.sh").to_str().unwrap(),
            "--sweep-start",
            "200",
            "--sweep-max",
            "800",
            "--sweep-step-factor",
            "2",
            "--step-duration",
            "300ms",
            "--warmup",
            "100ms",
            "--slo-p99",
            "2s",
        ])
        .env("ORDERGATE", common::serve::ordergate_bin())
        .env("ORDERGATE_BENCH", env!("CARGO_BIN_EXE_ordergate-bench"))
        .env("SWEEP_OUT", &out_dir)
        .current_dir(root())
        .output()
        .expect("run sweep.sh");
    let text = stdout(&out);
    let serve_log = fs::read_to_string(out_dir.join("serve.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{text}\n{}\nserve.log:\n{serve_log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("offered/s  achieved/s"), "{text}");
    assert!(
        text.contains("highest sustainable rate: 800 orders/s"),
        "{text}"
    );
    let json = fs::read_to_string(out_dir.join("sweep.json")).expect("sweep.json");
    assert_eq!(json.matches("\"offered_rate\"").count(), 3, "{json}");
    let svg = fs::read_to_string(out_dir.join("sweep.svg")).expect("sweep.svg");
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{svg}");
    // serve stopped cleanly and printed its summary: no rejects but the
    // mix's cancels racing fills, no refused connections.
    assert!(serve_log.contains("ordergate stopped after"), "{serve_log}");
    assert!(serve_log.contains("logon rejects: none"), "{serve_log}");
    let _ = fs::remove_dir_all(&out_dir);
}
