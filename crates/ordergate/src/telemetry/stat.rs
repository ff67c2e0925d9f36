//! `ordergate stat [--file PATH] [--interval 1s] [--once]`: the stats file
//! of a running gateway as a table, refreshed every interval, from another
//! process (read-only mapping; the reactors never notice).
//!
//! Each refresh prints a line per reactor (sessions, logons, messages and
//! their rate, commands, frames, rejects, ring full, receive → ring
//! latency percentiles since start, the longest turn and the busy share of
//! the last publish window — a timer tick, ~1 ms, as a footnote under the
//! table says), the engine's line, then every non-zero value as
//! `reactor.R.LABEL VALUE [RATE/s]` (`engine.LABEL …` for the engine),
//! one per line, for scripts. Rates are per second between two refreshes,
//! from each block's own publish time; `--once` has none.
//!
//! Exit codes: 0 done (or the gateway stopped while watched); 1 the file
//! is missing, not a stats file, of another version, or stale.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::STATS_FILE_DEFAULT;
use super::stats::{BlockSnapshot, Kind, Scope, Snapshot, StatsReader};

/// A reactor that has not published for this long is flagged (it runs a
/// timer tick every millisecond while it turns).
pub const PUBLISH_AGE_WARN_NS: u64 = 1_000_000_000;

/// `ordergate stat`.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct StatArgs {
    /// The gateway's stats file (`serve --stats-file`)
    #[arg(long, value_name = "PATH", default_value = STATS_FILE_DEFAULT)]
    pub file: PathBuf,
    /// Time between refreshes: a whole number and a unit, ms, s, m or h
    #[arg(long, value_name = "D", default_value = "1s", value_parser = crate::args::parse_duration)]
    pub interval: Duration,
    /// Print one snapshot and exit
    #[arg(long)]
    pub once: bool,
}

/// Runs `ordergate stat`.
pub fn run(args: &StatArgs) -> ExitCode {
    let reader = match StatsReader::open(&args.file) {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!("ordergate: {e}");
            return ExitCode::from(crate::args::EXIT_FAILURE);
        }
    };
    let mut out = std::io::stdout();
    let mut previous = None;
    let terminal = out.is_terminal() && !args.once;
    loop {
        let snapshot = reader.snapshot();
        let mut text = String::new();
        if terminal {
            // Home and clear: a table that refreshes in place.
            text.push_str("\x1b[H\x1b[2J");
        }
        text.push_str(&format(
            &snapshot,
            previous.as_ref(),
            &args.file.display().to_string(),
        ));
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::SUCCESS; // stdout closed (a pipe to `head`)
        }
        if args.once {
            return ExitCode::SUCCESS;
        }
        previous = Some(snapshot);
        std::thread::sleep(args.interval);
        if !reader.writer_alive() {
            eprintln!("ordergate: the gateway (pid {}) has stopped", reader.pid);
            return ExitCode::SUCCESS;
        }
        if !terminal {
            let _ = writeln!(out);
        }
    }
}

/// A duration in ns, in the unit that keeps it short: "999ns", "1.5ms".
fn ns(v: u64) -> String {
    crate::args::short_ns(v, "")
}

fn uptime(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0..60 => format!("{:.1}s", ns as f64 / 1e9),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60),
    }
}

/// Per-second rate of a counter between two publishes of a block.
fn rate(now: &BlockSnapshot, before: Option<&BlockSnapshot>, slot: usize) -> Option<f64> {
    let before = before?;
    let dt = now.publish_ns.checked_sub(before.publish_ns)?;
    if dt == 0 || before.publish_ns == 0 {
        return None;
    }
    let dv = now.values[slot].saturating_sub(before.values[slot]);
    Some(dv as f64 * 1e9 / dt as f64)
}

fn rate_text(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}"),
        Some(r) => format!("{r:.1}"),
        None => "-".to_owned(),
    }
}

/// One refresh of the table: `previous` gives the rates.
pub fn format(s: &Snapshot, previous: Option<&Snapshot>, path: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ordergate stats {path}: pid {}, up {}, {} reactor{}",
        s.pid,
        uptime(s.taken_ns.saturating_sub(s.start_ns)),
        s.reactors.len(),
        if s.reactors.len() == 1 { "" } else { "s" }
    );
    let slot = |label: &str| {
        s.labels
            .iter()
            .find(|l| l.scope == Scope::Reactor && l.name == label)
            .map(|l| l.slot as usize)
    };
    let sum_family = |b: &BlockSnapshot, family: &str| -> u64 {
        s.labels
            .iter()
            .filter(|l| l.scope == Scope::Reactor && l.family() == family)
            .map(|l| b.values[l.slot as usize])
            .sum()
    };
    let _ = writeln!(
        out,
        "{:>7} {:>6} {:>7} {:>12} {:>9} {:>12} {:>12} {:>8} {:>8} {:>9}  {:<36} {:>9} {:>6}",
        "reactor",
        "live",
        "logons",
        "msgs_in",
        "msg/s",
        "cmds_out",
        "frames_out",
        "ord_rej",
        "lgn_rej",
        "ring_full",
        "recv→ring p50 / p99 / p99.9 / max",
        "turn_max*",
        "busy*"
    );
    let mut warnings = Vec::new();
    // The window the starred columns cover: each reactor's last publish
    // window (a timer tick, ~1 ms), from reactor 0's figure.
    let window = s
        .reactors
        .first()
        .and_then(|b| slot("duty_window_ns").map(|i| b.values[i]))
        .unwrap_or(0);
    for (r, b) in s.reactors.iter().enumerate() {
        let v = |label: &str| slot(label).map_or(0, |i| b.values[i]);
        let before = previous.and_then(|p| p.reactors.get(r));
        let msg_rate = slot("messages_in").and_then(|i| rate(b, before, i));
        let latency = if v("recv_to_ring") == 0 {
            "-".to_owned()
        } else {
            format!(
                "{} / {} / {} / {}",
                ns(v("recv_to_ring_ns.p50")),
                ns(v("recv_to_ring_ns.p99")),
                ns(v("recv_to_ring_ns.p999")),
                ns(v("recv_to_ring_ns_max"))
            )
        };
        let _ = writeln!(
            out,
            "{:>7} {:>6} {:>7} {:>12} {:>9} {:>12} {:>12} {:>8} {:>8} {:>9}  {:<36} {:>9} {:>5.1}%",
            r,
            v("sessions_live"),
            v("logons_accepted"),
            v("messages_in"),
            rate_text(msg_rate),
            v("commands_out"),
            v("frames_out"),
            sum_family(b, "order_rejects"),
            sum_family(b, "logon_rejects"),
            v("ring_full"),
            latency,
            ns(v("duty_turn_ns_max")),
            v("duty_busy_ppm") as f64 / 1e4,
        );
        if b.publish_ns == 0 {
            warnings.push(format!("reactor {r} has not published yet"));
        } else {
            let age = s.taken_ns.saturating_sub(b.publish_ns);
            if age > PUBLISH_AGE_WARN_NS {
                warnings.push(format!(
                    "reactor {r} has not published for {} (stalled, or stopping)",
                    ns(age)
                ));
            }
        }
    }
    let e = |label: &str| s.engine(label).unwrap_or(0);
    let engine_rate = s
        .labels
        .iter()
        .find(|l| l.scope == Scope::Engine && l.name == "commands")
        .and_then(|l| rate(&s.engine, previous.map(|p| &p.engine), l.slot as usize));
    let _ = writeln!(
        out,
        "engine: {} commands ({}/s), {} events, {} blocked turns, {} misrouted",
        e("commands"),
        rate_text(engine_rate),
        e("events"),
        e("blocked_turns"),
        e("misrouted")
    );
    let _ = writeln!(
        out,
        "* turn_max, busy: the longest turn and the busy share of each reactor's last publish window ({}, one timer tick), not since start; the longest turn since start is reactor.R.turn_ns_max below; recv→ring is since start",
        if window == 0 {
            "not measured yet".to_owned()
        } else {
            ns(window)
        }
    );
    for w in warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for (reactor, label, value) in s.iter() {
        if value == 0 {
            continue;
        }
        let (name, block, before) = match reactor {
            Some(r) => (
                format!("reactor.{r}.{}", label.name),
                &s.reactors[r],
                previous.and_then(|p| p.reactors.get(r)),
            ),
            None => (
                format!("engine.{}", label.name),
                &s.engine,
                previous.map(|p| &p.engine),
            ),
        };
        let _ = write!(out, "{name:<48} {value:>16}");
        if label.kind == Kind::Counter
            && let Some(r) = rate(block, before, label.slot as usize)
        {
            let _ = write!(out, "  {}/s", rate_text(Some(r)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-reactor snapshot of this build's labels, every value 0 but
    /// those given.
    fn snapshot(values: &[(&str, u64)]) -> Snapshot {
        use super::super::stats::{Label, catalog};
        let mut labels = Vec::new();
        let mut block = Vec::new();
        for (slot, c) in catalog()
            .iter()
            .filter(|c| c.scope == Scope::Reactor)
            .enumerate()
        {
            let name = c.label();
            block.push(values.iter().find(|(l, _)| *l == name).map_or(0, |v| v.1));
            labels.push(Label {
                id: c.id,
                scope: c.scope,
                kind: c.kind,
                slot: slot as u32,
                name,
            });
        }
        Snapshot {
            pid: 1,
            start_ns: 1_000,
            taken_ns: 2_000,
            labels: labels.into(),
            reactors: vec![BlockSnapshot {
                publish_ns: 1_500,
                consistent: true,
                values: block,
            }],
            engine: BlockSnapshot {
                publish_ns: 1_500,
                consistent: true,
                values: Vec::new(),
            },
        }
    }

    #[test]
    fn the_table_says_which_window_turn_max_covers() {
        let s = snapshot(&[
            ("duty_window_ns", 1_000_000),
            ("duty_turn_ns_max", 2_100),
            ("turn_ns_max", 90_000),
        ]);
        let text = format(&s, None, "f");
        assert!(text.contains("turn_max*"), "{text}");
        assert!(
            text.contains(
                "* turn_max, busy: the longest turn and the busy share of each reactor's last publish window (1.0ms, one timer tick), not since start"
            ),
            "{text}"
        );
        assert!(text.contains("2.1µs"), "the window's longest turn: {text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("reactor.0.turn_ns_max") && l.ends_with("90000")),
            "the longest since start: {text}"
        );
    }

    #[test]
    fn short_units() {
        assert_eq!(ns(999), "999ns");
        assert_eq!(ns(1_500), "1.5µs");
        assert_eq!(ns(2_500_000), "2.5ms");
        assert_eq!(uptime(1_500_000_000), "1.5s");
        assert_eq!(uptime(125_000_000_000), "2m05s");
        assert_eq!(uptime(3_725_000_000_000), "1h02m05s");
    }
}
