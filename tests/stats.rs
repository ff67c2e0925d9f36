//! The stats file end to end: a gateway publishes into it while it runs,
//! and the reader API, `ordergate stat --once` and the Prometheus endpoint
//! all show the exact counts of the traffic sent; `serve` wires both flags
//! and both config fields; a publish allocates nothing.

mod common;
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::net::*;
use common::serve::*;
use hdrhistogram::Histogram;
use ordergate::clock::wall_ns;
use ordergate::engine::agent::EngineCounters;
use ordergate::gateway::{Gateway, GatewaySpec, UringCounters};
use ordergate::session::Counters;
use ordergate::telemetry::prometheus::PrometheusServer;
use ordergate::telemetry::stats::{self, DutyCycle, Snapshot, StatsReader};
use ordergate::telemetry::{StatsError, StatsFile};
use ordergate::wire::{self, codes::RejectReason as RR};

/// A snapshot in which every block was published after `t` (so it holds
/// everything the gateway had done by then), at least 20 ms after `t`.
fn published_after(reader: &StatsReader, t: u64) -> Snapshot {
    std::thread::sleep(Duration::from_millis(20));
    let deadline = Instant::now() + WAIT;
    loop {
        let s = reader.snapshot();
        let fresh = s.reactors.iter().all(|b| b.publish_ns > t) && s.engine.publish_ns > t;
        if fresh {
            assert!(s.reactors.iter().all(|b| b.consistent) && s.engine.consistent);
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no publish after {t} within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `GET path` over HTTP/1.0: (status line, body).
fn http_get(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap().to_owned();
    if status.contains("200") {
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a Content-Length")
        .parse()
        .unwrap();
    assert_eq!(length, body.len());
    (status, body.to_owned())
}

/// Whether some line of `text` is exactly these whitespace-separated words.
fn has_line(text: &str, words: &[&str]) -> bool {
    text.lines().any(|l| {
        l.split_whitespace()
            .take(words.len())
            .eq(words.iter().copied())
    })
}

const ORDERS: u64 = 20;

#[test]
fn the_file_the_stat_tool_and_prometheus_show_the_exact_counts() {
    let dir = TempDir::new("stats-live");
    let path = dir.join("ordergate.stats");
    let gw = start_publishing(&path);
    let reader = StatsReader::open(&path).expect("the gateway created its stats file");
    assert_eq!(reader.pid, std::process::id());
    assert_eq!(reader.reactors(), 1);

    // One trader: N orders, each accepted.
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    a.logon(0);
    for i in 0..ORDERS {
        a.send_order(i + 1, 100 + i as i64, 1, 1, 0);
    }
    for _ in 0..ORDERS {
        accepted(&a.recv().unwrap());
    }
    // One slow key (burst 4, the logon took one): three accepted, one
    // THROTTLED.
    let mut slow = Conn::connect(gw.local_addr(), SLOW);
    slow.logon(0);
    let mut batch = Vec::new();
    for i in 0..4u64 {
        batch.extend_from_slice(&slow.order(1000 + i, 10, 1, 1, 0));
    }
    slow.send(&batch);
    let mut throttled = 0;
    for _ in 0..4 {
        let f = slow.recv().unwrap();
        if template(&f) == wire::OrderRejected::TEMPLATE_ID {
            assert_eq!(rejected(&f).1, RR::THROTTLED.wire());
            throttled += 1;
        }
    }
    assert_eq!(throttled, 1);
    let answered = wall_ns();

    let s = published_after(&reader, answered);
    let commands = ORDERS + 3;
    let r = |label| s.reactor(0, label).unwrap_or_else(|| panic!("no {label}"));
    assert_eq!(r("messages_in"), ORDERS + 4);
    assert_eq!(r("logons_accepted"), 2);
    assert_eq!(r("commands_out"), commands);
    assert_eq!(r("order_rejects.THROTTLED"), 1);
    assert_eq!(r("order_rejects.ENGINE_BUSY"), 0);
    assert_eq!(r("ring_full"), 0);
    assert_eq!(r("logon_rejects.AUTH_FAILED"), 0);
    assert_eq!(r("sessions_live"), 2);
    assert_eq!(r("accepts"), 2);
    assert_eq!(
        r("bytes_in"),
        2 * wire::LOGON_SIZE as u64 + (ORDERS + 4) * wire::NEW_ORDER_SIZE as u64
    );
    // Two logon acks, the accepts and the reject; heartbeats may add a few.
    let replies = 2 + commands + 1;
    assert!(r("frames_out") >= replies, "{}", r("frames_out"));
    assert!(r("turns") > 0 && r("duty_window_ns") > 0);
    assert!(r("duty_busy_ppm") <= 1_000_000);
    assert_eq!(s.engine("commands"), Some(commands));
    assert_eq!(s.engine("events"), Some(commands));
    assert_eq!(s.engine("misrouted"), Some(0));

    // The percentiles follow within LATENCY_EVERY_PUBLISHES ticks.
    let deadline = Instant::now() + WAIT;
    let s = loop {
        let s = reader.snapshot();
        if s.reactor(0, "recv_to_ring") == Some(commands) {
            break s;
        }
        assert!(Instant::now() < deadline, "latency never published");
        std::thread::sleep(Duration::from_millis(5));
    };
    let q = |label| s.reactor(0, label).unwrap();
    assert!(q("recv_to_ring_ns.p50") > 0);
    assert!(q("recv_to_ring_ns.p50") <= q("recv_to_ring_ns.p99"));
    assert!(q("recv_to_ring_ns.p99") <= q("recv_to_ring_ns.p999"));
    assert!(q("recv_to_ring_ns.p999") <= q("recv_to_ring_ns_max"));

    // `ordergate stat --once`, from another process.
    let out = ordergate(&["stat", "--once", "--file", p(&path)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("ordergate stats "), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    let messages = (ORDERS + 4).to_string();
    let commands_text = commands.to_string();
    for line in [
        &["reactor.0.messages_in", messages.as_str()][..],
        &["reactor.0.logons_accepted", "2"],
        &["reactor.0.commands_out", commands_text.as_str()],
        &["reactor.0.order_rejects.THROTTLED", "1"],
        &["reactor.0.sessions_live", "2"],
        &["engine.commands", commands_text.as_str()],
    ] {
        assert!(has_line(&text, line), "no line {line:?} in:\n{text}");
    }
    // The table row: reactor 0, 2 live, 2 logons, the messages.
    assert!(
        has_line(&text, &["0", "2", "2", messages.as_str(), "-"]),
        "{text}"
    );
    assert!(
        !text.contains("order_rejects.ENGINE_BUSY"),
        "zeros are left out:\n{text}"
    );

    // Prometheus, from the same mapped values.
    let prom = PrometheusServer::start("127.0.0.1:0".parse().unwrap(), &path).unwrap();
    let (status, body) = http_get(prom.local_addr(), "GET", "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    for line in [
        "# TYPE ordergate_messages_in_total counter".to_owned(),
        format!(
            "ordergate_messages_in_total{{reactor=\"0\"}} {}",
            ORDERS + 4
        ),
        format!("ordergate_commands_out_total{{reactor=\"0\"}} {commands}"),
        "ordergate_logons_accepted_total{reactor=\"0\"} 2".to_owned(),
        "# TYPE ordergate_order_rejects_total counter".to_owned(),
        "ordergate_order_rejects_total{reactor=\"0\",reason=\"THROTTLED\"} 1".to_owned(),
        "ordergate_order_rejects_total{reactor=\"0\",reason=\"ENGINE_BUSY\"} 0".to_owned(),
        "# TYPE ordergate_sessions_live gauge".to_owned(),
        "ordergate_sessions_live{reactor=\"0\"} 2".to_owned(),
        format!("ordergate_engine_commands_total {commands}"),
        "# TYPE ordergate_recv_to_ring_seconds summary".to_owned(),
        format!("ordergate_recv_to_ring_seconds_count{{reactor=\"0\"}} {commands}"),
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "no line {line:?} in:\n{body}"
        );
    }
    assert!(body.contains("ordergate_recv_to_ring_seconds{reactor=\"0\",quantile=\"0.99\"} "));
    assert!(body.contains("ordergate_recv_to_ring_seconds_sum{reactor=\"0\"} "));
    assert!(body.contains("# HELP ordergate_messages_in_total Well-formed"));
    assert!(
        body.lines()
            .any(|l| l.starts_with("ordergate_duty_busy_ratio{reactor=\"0\"} "))
    );
    // Every sample line is `name{labels} value` with a number.
    for l in body.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = l.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
    }
    let (status, body) = http_get(prom.local_addr(), "GET", "/");
    assert_eq!(status, "HTTP/1.0 404 Not Found");
    assert!(body.contains("/metrics"));
    assert_eq!(
        http_get(prom.local_addr(), "GET", "/metricsx").0,
        "HTTP/1.0 404 Not Found"
    );
    assert_eq!(
        http_get(prom.local_addr(), "POST", "/metrics").0,
        "HTTP/1.0 405 Method Not Allowed"
    );
    assert_eq!(
        http_get(prom.local_addr(), "GET", "/metrics?x=1").0,
        "HTTP/1.0 200 OK"
    );
    drop(prom);

    // After the stop, the file keeps the final figures: the sessions'
    // cancel-on-disconnect commands included.
    drop(a);
    drop(slow);
    let report = gw.shutdown();
    let s = StatsReader::open_any(&path).unwrap().snapshot();
    let c = &report.reactors[0].counters;
    assert_eq!(s.reactor(0, "messages_in"), Some(c.messages_in));
    assert_eq!(s.reactor(0, "commands_out"), Some(c.commands_out));
    assert_eq!(s.reactor(0, "frames_out"), Some(c.frames_out));
    assert_eq!(s.reactor(0, "sessions_live"), Some(0));
    assert_eq!(
        s.reactor(0, "recv_to_ring"),
        Some(report.reactors[0].recv_to_ring_ns.len())
    );
    assert_eq!(
        s.reactor(0, "recv_to_ring_ns_max"),
        Some(report.reactors[0].recv_to_ring_ns.max())
    );
    assert_eq!(s.engine("commands"), Some(report.engine.commands));
}

#[test]
fn two_reactors_and_an_engine_thread_each_publish_their_own_block() {
    let dir = TempDir::new("two");
    let path = dir.join("two.stats");
    let gw = Gateway::start(
        GatewaySpec {
            stats_file: Some(path.clone()),
            reactors: 2,
            engine: ordergate::gateway::EnginePlacement::OwnThread { core: None },
            ..spec()
        },
        keys(),
    )
    .unwrap();
    let reader = StatsReader::open(&path).unwrap();
    assert_eq!(reader.reactors(), 2);
    let mut conns = Vec::new();
    for i in 0..4u64 {
        let mut c = Conn::connect(gw.local_addr(), TRADER);
        c.logon(0);
        c.send_order(i + 1, 50, 1, 1, 0);
        conns.push(c);
    }
    // The engine's block is published by its own thread. (Not waiting for
    // the OrderAccepted replies: with the engine on its own thread they
    // wait for the next heartbeat, see the report of this change.)
    let deadline = Instant::now() + WAIT;
    let s = loop {
        let s = reader.snapshot();
        if s.engine("commands") == Some(4) && s.total("commands_out") == Some(4) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the engine's block never showed 4 commands"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(s.engine.publish_ns > 0 && s.engine.consistent);
    assert_eq!(s.total("logons_accepted"), Some(4));
    assert_eq!(s.total("messages_in"), Some(4));
    assert_eq!(s.total("sessions_live"), Some(4));
    assert_eq!(s.total("accepts"), Some(4));
    // Each reactor publishes its own block, sessions or not.
    assert!(s.reactors.iter().all(|b| b.publish_ns > 0));
    drop(conns);
    gw.shutdown();
}

#[test]
fn stat_refuses_missing_foreign_and_stale_files() {
    let dir = TempDir::new("refuse");
    let missing = dir.join("absent");
    let out = ordergate(&["stat", "--once", "--file", p(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(p(&missing)) && err.contains("No such file"),
        "{err}"
    );

    let junk = dir.join("junk");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let out = ordergate(&["stat", "--once", "--file", p(&junk)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an ordergate stats file"), "{err}");

    // A file a gateway of this process wrote, then with its pid changed to
    // one no process can have, then with another version.
    let path = dir.join("stale");
    drop(StatsFile::create(&path, 1).unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16..20].copy_from_slice(&(1u32 << 23).to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let out = ordergate(&["stat", "--once", "--file", p(&path)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stale") && err.contains("8388608"), "{err}");
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let out = ordergate(&["stat", "--once", "--file", p(&path)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("layout version 2"), "{err}");
    assert!(matches!(
        StatsReader::open(&path),
        Err(StatsError::Version { found: 2, .. })
    ));
}

#[test]
fn serve_publishes_to_its_stats_file_and_serves_metrics() {
    let dir = TempDir::new("stats-serve");
    let stats_path = dir.join("serve.stats");
    let mut child = Serve::spawn(serve_command(
        &dir,
        "serve",
        "127.0.0.1:0",
        &[
            "--admin-socket",
            p(&dir.join("admin.sock")),
            "--prometheus",
            "127.0.0.1:0",
        ],
        &[],
    ));
    let mut metrics = None;
    for _ in 0..3 {
        let line = child.line();
        if let Some(addr) = line
            .strip_prefix("prometheus metrics on http://")
            .and_then(|l| l.strip_suffix("/metrics"))
        {
            metrics = Some(addr.parse::<SocketAddr>().unwrap());
        }
        if line.starts_with("admin socket") {
            assert!(line.contains(p(&stats_path)), "{line}");
        }
    }
    let metrics = metrics.expect("a prometheus line");
    let (status, body) = http_get(metrics, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(
        body.contains("ordergate_messages_in_total{reactor=\"0\"} 0"),
        "{body}"
    );

    let out = ordergate(&["stat", "--once", "--file", p(&stats_path)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("pid {}", child.pid())), "{text}");

    let (status, rest) = child.stop();
    assert!(status.success());
    // The stop summary ends with the endpoint's line: the one scrape.
    assert_eq!(
        rest.last().map(String::as_str),
        Some(
            "prometheus: 1 requests, 0 refused busy, 0 refused per address, 0 cut at the deadline"
        ),
        "{}",
        rest.join("\n")
    );
    // Stopped: the file remains, refused as stale.
    let out = ordergate(&["stat", "--once", "--file", p(&stats_path)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale"));
}

/// `audit_journal` and `stats_file` from the config file, relative to its
/// directory (not to where `serve` runs); and the stop summary's io_uring
/// line for the reactor that ran.
#[test]
fn serve_takes_both_paths_from_its_config_file() {
    let dir = TempDir::new("stats-serve-config");
    dir.keys(); // named by the config as "keys.toml"
    let config = dir.join("gw.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nkeys = \"keys.toml\"\naudit_journal = \"audit.journal\"\n\
         stats_file = \"gw.stats\"\n[reactors]\nidle = \"backoff\"\n",
    )
    .unwrap();
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let mut cmd = serve_with(&[
        "--config",
        p(&config),
        "--admin-socket",
        p(&dir.join("admin.sock")),
    ]);
    cmd.current_dir(&elsewhere);
    let (child, serving, files) = Serve::start(cmd);
    assert!(serving.starts_with("ordergate serving on "), "{serving}");
    let journal = dir.join("audit.journal");
    let stats_path = dir.join("gw.stats");
    assert!(
        files.ends_with(&format!(
            "; audit journal {}; stats file {}",
            p(&journal),
            p(&stats_path)
        )),
        "{files}"
    );
    assert!(journal.is_file() && stats_path.is_file(), "{files}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // Give the reactor work before the stop: a stop right after "serving"
    // could come before its first timer tick, and a reactor that never
    // turned with work has no longest turn to explain (turn_ns_max 0, seen
    // under load). A garbage frame before logon is closed by the gateway:
    // the read returns once the reactor has handled it.
    {
        let addr = serving["ordergate serving on ".len()..]
            .split_whitespace()
            .next()
            .unwrap();
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = conn.write_all(&[0xff; 64]);
        let _ = conn.read(&mut [0u8; 64]);
    }

    let (status, rest) = child.stop();
    assert!(status.success());
    let uring = rest
        .iter()
        .position(|l| l.starts_with("  io_uring: sq_full "))
        .unwrap_or_else(|| panic!("no io_uring line:\n{}", rest.join("\n")));
    assert!(rest[uring].contains(", turn_ns_max "), "{}", rest[uring]);
    // The reactor turned, so its longest turn is not zero and is explained.
    assert!(
        rest[uring + 1..]
            .iter()
            .any(|l| l.starts_with("    turn_ns_max: every message that arrived")),
        "{}",
        rest.join("\n")
    );
}

#[test]
fn publish_allocates_nothing() {
    let dir = TempDir::new("alloc");
    let path = dir.join("alloc.stats");
    let (mut writers, mut engine) = StatsFile::create(&path, 1).unwrap().into_writers();
    let w = &mut writers[0];
    let mut counters = Counters::default();
    let mut uring = UringCounters::default();
    let mut engine_counters = EngineCounters::default();
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    for ns in 1..10_000u64 {
        h.record(ns * 7).unwrap();
    }
    let duty = DutyCycle {
        window_ns: 1_000_000,
        turn_ns_max: 5_000,
        busy_ns: 100_000,
        turns: 200,
    };

    let before = allocations();
    for i in 0..3 * stats::LATENCY_EVERY_PUBLISHES as u64 {
        counters.messages_in = i;
        counters.order_rejects[RR::THROTTLED.wire() as usize] = i;
        uring.bytes_in = i * 64;
        engine_counters.commands = i;
        h.record(1 + i).unwrap();
        if i % 10 == 0 {
            w.refresh_latency();
        }
        w.publish(i + 1, &counters, &uring, 3, &h, duty);
        engine.publish(i + 1, &engine_counters);
    }
    assert_eq!(allocations() - before, 0, "publish allocated");

    let s = StatsReader::open(&path).unwrap().snapshot();
    let last = 3 * stats::LATENCY_EVERY_PUBLISHES as u64 - 1;
    assert_eq!(s.reactor(0, "messages_in"), Some(last));
    assert_eq!(s.reactor(0, "order_rejects.THROTTLED"), Some(last));
    assert_eq!(s.engine("commands"), Some(last));
}
