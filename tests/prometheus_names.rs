//! The Prometheus exposition follows Prometheus' naming rules, checked on a
//! real scrape of a gateway that has done some work: every family has HELP
//! and TYPE; counters and only counters end `_total`; units are base units
//! (`seconds`, `bytes`), spelled out, last in the name; no gauge carries a
//! `quantile` label; latency is a summary with `_sum` and `_count` (or a
//! histogram); ratios lie in 0..1. When `promtool` (Debian package
//! `prometheus`) is installed, `promtool check metrics` must accept the
//! scrape too; without it that half is skipped, and the test says so.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::net::*;

/// Unit abbreviations Prometheus' linter refuses as a word of a name.
const ABBREVIATIONS: [&str; 14] = [
    "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
];
/// Words that name a unit other than the base one (or a scaled base unit).
const NON_BASE: [&str; 12] = [
    "nanoseconds",
    "microseconds",
    "milliseconds",
    "minutes",
    "hours",
    "days",
    "weeks",
    "bits",
    "kilobytes",
    "megabytes",
    "ppm",
    "percent",
];
/// The base units, which come last in a name (before `_total`).
const BASE_UNITS: [&str; 3] = ["seconds", "bytes", "ratio"];

/// `GET /metrics` over HTTP/1.0: the body.
fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    body.to_owned()
}

/// One sample line: name, labels (in order), value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("`series value`");
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a number: {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series.to_owned(), Vec::new()),
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}').expect("labels end with }");
            let labels = inner
                .split(',')
                .map(|pair| {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                    (k.to_owned(), v.expect("a quoted value").to_owned())
                })
                .collect();
            (name.to_owned(), labels)
        }
    };
    Sample {
        name,
        labels,
        value,
    }
}

/// Everything wrong with an exposition, by Prometheus' naming rules (and
/// the ones this gateway adds: base units last, ratios in 0..1).
fn naming_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut help: BTreeSet<String> = BTreeSet::new();
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    // Families in the order their samples appear, to catch a split family.
    let mut order: Vec<String> = Vec::new();
    // Per summary or histogram family and label set (minus quantile/le):
    // which of its parts were seen.
    let mut parts: BTreeMap<(String, String), BTreeSet<&'static str>> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            if text.trim().is_empty() {
                problems.push(format!("{name}: no help text"));
            }
            help.insert(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            if kinds.insert(name.to_owned(), kind.to_owned()).is_some() {
                problems.push(format!("{name}: a second TYPE line"));
            }
            if !help.contains(name) {
                problems.push(format!("{name}: TYPE without HELP before it"));
            }
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            samples.push(parse_sample(line));
        }
    }
    for s in &samples {
        // The family a sample belongs to: summaries and histograms own
        // their `_sum`, `_count` (and `_bucket`) series.
        let family = ["_sum", "_count", "_bucket"]
            .iter()
            .find_map(|suffix| {
                let base = s.name.strip_suffix(suffix)?;
                matches!(
                    kinds.get(base).map(String::as_str),
                    Some("summary" | "histogram")
                )
                .then(|| base.to_owned())
            })
            .unwrap_or_else(|| s.name.clone());
        let Some(kind) = kinds.get(&family) else {
            problems.push(format!("{}: a sample without a TYPE", s.name));
            continue;
        };
        if order.last() != Some(&family) {
            if order.contains(&family) {
                problems.push(format!("{family}: its samples are not together"));
            }
            order.push(family.clone());
        }
        let has = |label: &str| s.labels.iter().any(|(k, _)| k == label);
        if has("quantile") && kind != "summary" {
            problems.push(format!("{family}: a {kind} with a quantile label"));
        }
        if has("le") && kind != "histogram" {
            problems.push(format!("{family}: a {kind} with an le label"));
        }
        if kind == "summary" || kind == "histogram" {
            let key: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "quantile" && k != "le")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let part = if s.name.ends_with("_sum") && s.name != family {
                "sum"
            } else if s.name.ends_with("_count") && s.name != family {
                "count"
            } else if has("quantile") {
                "quantile"
            } else if has("le") {
                "bucket"
            } else {
                problems.push(format!("{}: a bare sample of a {kind}", s.name));
                "bare"
            };
            parts
                .entry((family.clone(), key.join(",")))
                .or_default()
                .insert(part);
        }
        if family.ends_with("_ratio") && !(0.0..=1.0).contains(&s.value) {
            problems.push(format!("{}: ratio {} outside 0..1", s.name, s.value));
        }
    }
    for (name, kind) in &kinds {
        if !name.starts_with("ordergate_") {
            problems.push(format!("{name}: not in the ordergate_ namespace"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            problems.push(format!("{name}: not snake_case ASCII"));
        }
        match (kind.as_str(), name.ends_with("_total")) {
            ("counter", false) => problems.push(format!("{name}: a counter without _total")),
            ("counter", true) => {}
            (_, true) => problems.push(format!("{name}: a {kind} ending _total")),
            _ => {}
        }
        if !["counter", "gauge", "summary", "histogram"].contains(&kind.as_str()) {
            problems.push(format!("{name}: type {kind}"));
        }
        let words: Vec<&str> = name.split('_').collect();
        for w in &words {
            if ABBREVIATIONS.contains(w) {
                problems.push(format!("{name}: abbreviated unit `{w}`"));
            }
            if NON_BASE.contains(w) {
                problems.push(format!("{name}: `{w}` is not a base unit"));
            }
            if ["counter", "gauge", "summary", "histogram"].contains(w) {
                problems.push(format!("{name}: its type in its name"));
            }
        }
        let stem = name.strip_suffix("_total").unwrap_or(name);
        let stem_words: Vec<&str> = stem.split('_').collect();
        for unit in BASE_UNITS {
            if let Some(i) = stem_words.iter().position(|w| *w == unit)
                && i + 1 != stem_words.len()
            {
                problems.push(format!("{name}: the unit `{unit}` is not last"));
            }
        }
        if !help.contains(name) {
            problems.push(format!("{name}: no HELP"));
        }
        if kind == "summary" || kind == "histogram" {
            let seen: Vec<_> = parts.iter().filter(|((f, _), _)| f == name).collect();
            if seen.is_empty() {
                problems.push(format!("{name}: a {kind} without samples"));
            }
            for ((_, labels), have) in seen {
                for needed in ["sum", "count"] {
                    if !have.contains(needed) {
                        problems.push(format!("{name}{{{labels}}}: a {kind} without _{needed}"));
                    }
                }
            }
        }
    }
    problems
}

/// A scrape after real traffic: orders accepted (so the latency summary
/// has samples), one THROTTLED, and the receive → ring percentiles
/// published (they follow within ~100 ms).
fn scrape_after_traffic(setup: &Scraped) -> String {
    let gw = setup.gw();
    let mut a = Conn::connect(gw.local_addr(), TRADER);
    a.logon(0);
    for i in 0..10u64 {
        a.send_order(i + 1, 100 + i as i64, 1, 1, 0);
    }
    for _ in 0..10 {
        accepted(&a.recv().unwrap());
    }
    let mut slow = Conn::connect(gw.local_addr(), SLOW);
    slow.logon(0);
    let mut batch = Vec::new();
    for i in 0..4u64 {
        batch.extend_from_slice(&slow.order(1000 + i, 10, 1, 1, 0));
    }
    slow.send(&batch);
    for _ in 0..4 {
        slow.recv().unwrap();
    }
    let addr = setup.prom().local_addr();
    let deadline = Instant::now() + WAIT;
    loop {
        let body = scrape(addr);
        // The latency's count, under either naming: the percentiles are
        // published once 13 commands (10 + 3 admitted) were measured.
        let measured = body.lines().any(|l| {
            (l.starts_with("ordergate_recv_to_ring_total{")
                || l.starts_with("ordergate_recv_to_ring_seconds_count{"))
                && l.ends_with(" 13")
        });
        if measured {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the latency was never published:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_exposition_follows_the_naming_rules_and_promtool_accepts_it() {
    let setup = Scraped::start("prom-names");
    let body = scrape_after_traffic(&setup);
    let problems = naming_problems(&body);
    assert!(
        problems.is_empty(),
        "{} naming problems:\n  {}\n\nthe scrape:\n{body}",
        problems.len(),
        problems.join("\n  ")
    );

    // Latency in seconds, as a summary whose count is the messages measured.
    let count = body
        .lines()
        .find(|l| l.starts_with("ordergate_recv_to_ring_seconds_count{reactor=\"0\"}"))
        .unwrap_or_else(|| panic!("no latency summary:\n{body}"));
    assert!(count.ends_with(" 13"), "{count}");
    assert!(body.contains("# TYPE ordergate_recv_to_ring_seconds summary"));
    let sum = parse_sample(
        body.lines()
            .find(|l| l.starts_with("ordergate_recv_to_ring_seconds_sum{reactor=\"0\"}"))
            .unwrap(),
    );
    let p99 = parse_sample(
        body.lines()
            .find(|l| {
                l.starts_with("ordergate_recv_to_ring_seconds{") && l.contains("quantile=\"0.99\"")
            })
            .unwrap(),
    );
    let max = parse_sample(
        body.lines()
            .find(|l| l.starts_with("ordergate_recv_to_ring_max_seconds{reactor=\"0\"}"))
            .unwrap(),
    );
    // Seconds, not nanoseconds: a receive → ring hop is far below a second
    // and above a nanosecond; the sum of 13 lies between p99-ish and 13 × max.
    assert!(p99.value > 1e-9 && p99.value < 1.0, "{p99:?}");
    assert!(p99.value <= max.value, "{p99:?} {max:?}");
    assert!(
        sum.value > 0.0 && sum.value <= 13.0 * max.value * 1.01,
        "{sum:?}"
    );
    // Bytes, spelled out and last.
    assert!(
        body.lines()
            .any(|l| l.starts_with("ordergate_received_bytes_total{reactor=\"0\"} ")),
        "{body}"
    );
    assert!(body.contains("# TYPE ordergate_turn_max_seconds gauge"));

    match Command::new("promtool").arg("--version").output() {
        Err(_) => eprintln!(
            "prometheus_names: promtool check metrics skipped: promtool is not installed \
             (apt-get install prometheus; .ci/run installs it)"
        ),
        Ok(_) => {
            let mut child = Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(body.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success(),
                "promtool check metrics refused the scrape:\n{said}"
            );
        }
    }
}

#[test]
fn the_rules_catch_what_they_name() {
    // The checker itself: each rule fires on an exposition that breaks it.
    let bad = "\
# HELP ordergate_x_ns a gauge in ns
# TYPE ordergate_x_ns gauge
ordergate_x_ns{quantile=\"0.99\"} 5
# HELP ordergate_y a counter
# TYPE ordergate_y counter
ordergate_y 1
# HELP ordergate_z_total a gauge
# TYPE ordergate_z_total gauge
ordergate_z_total 1
# HELP ordergate_busy_ratio share
# TYPE ordergate_busy_ratio gauge
ordergate_busy_ratio 1.5
# HELP ordergate_bytes_in_total bytes
# TYPE ordergate_bytes_in_total counter
ordergate_bytes_in_total 1
# HELP ordergate_lat_seconds latency
# TYPE ordergate_lat_seconds summary
ordergate_lat_seconds{quantile=\"0.5\"} 0.1
";
    let problems = naming_problems(bad).join("\n");
    for expected in [
        "ordergate_x_ns: a gauge with a quantile label",
        "ordergate_x_ns: abbreviated unit `ns`",
        "ordergate_y: a counter without _total",
        "ordergate_z_total: a gauge ending _total",
        "ordergate_busy_ratio: ratio 1.5 outside 0..1",
        "ordergate_bytes_in_total: the unit `bytes` is not last",
        "ordergate_lat_seconds{}: a summary without _sum",
        "ordergate_lat_seconds{}: a summary without _count",
    ] {
        assert!(problems.contains(expected), "{expected}:\n{problems}");
    }
}
