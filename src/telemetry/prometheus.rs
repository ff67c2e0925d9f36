//! `GET /metrics` in the Prometheus text exposition format (0.0.4), from
//! the stats file: a plain HTTP/1.0 responder on a thread of its own
//! (`std::net`, one connection at a time, no async runtime), reading the
//! mapped values as any other reader does. It never touches a reactor: a
//! scrape costs the reactors nothing.
//!
//! ```text
//! # HELP ordergate_messages_in_total Well-formed, authentic, in-sequence frames after logon.
//! # TYPE ordergate_messages_in_total counter
//! ordergate_messages_in_total{reactor="0"} 123
//! # HELP ordergate_order_rejects_total OrderRejected sent, by reason.
//! # TYPE ordergate_order_rejects_total counter
//! ordergate_order_rejects_total{reactor="0",reason="THROTTLED"} 5
//! # TYPE ordergate_recv_to_ring_ns gauge
//! ordergate_recv_to_ring_ns{reactor="0",quantile="0.99"} 8191
//! # TYPE ordergate_engine_commands_total counter
//! ordergate_engine_commands_total 123
//! ```
//!
//! Names: `ordergate_` + the label's family (`ordergate_engine_` for the
//! engine's block), `_total` for counters; a family ending `_ppm` is
//! exported as `_ratio` (0..1). A label's detail becomes `reason="…"`, or
//! `quantile="0.99"` for `p99`-style details. Latency quantiles are gauges
//! (since start, as published), not a summary: the file has no sum.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::stats::{Kind, Label, Scope, Snapshot, StatsReader, catalog};

/// Bytes of a request head read before the request is refused (400).
pub const REQUEST_HEAD_MAX: usize = 8 * 1024;
/// How long a scraper may take to send its request or read the answer:
/// one connection is served at a time, so a stuck one must not hold the
/// endpoint for long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The endpoint's thread; stops when dropped.
pub struct PrometheusServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PrometheusServer {
    /// Opens the stats file at `stats` (it must be valid and its gateway
    /// running), binds `addr` and serves it from a new thread.
    ///
    /// # Errors
    ///
    /// The stats file is unusable, or the address cannot be bound.
    pub fn start(addr: SocketAddr, stats: &Path) -> std::io::Result<PrometheusServer> {
        let reader = StatsReader::open(stats).map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("ordergate-prometheus".into())
                .spawn(move || serve(&listener, &reader, &stop))?
        };
        Ok(PrometheusServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port resolved if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, IO_TIMEOUT);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, reader: &StatsReader, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        if let Ok(stream) = stream {
            let _ = answer(stream, reader);
        }
    }
}

/// Reads one request head and writes one response.
fn answer(mut stream: TcpStream, reader: &StatsReader) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > REQUEST_HEAD_MAX {
            break;
        }
        match stream.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let (status, content_type, body) = respond(&head, reader);
    let mut out = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    stream.write_all(&out)?;
    stream.flush()
}

/// The status line's code and text, content type and body for a request
/// head.
fn respond(head: &[u8], reader: &StatsReader) -> (&'static str, &'static str, String) {
    let text = "text/plain; charset=utf-8";
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return ("400 Bad Request", text, "bad request\n".into());
    };
    if !version.starts_with("HTTP/") {
        return ("400 Bad Request", text, "bad request\n".into());
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != "/metrics" {
        return ("404 Not Found", text, "not found: try /metrics\n".into());
    }
    if method != "GET" {
        return ("405 Method Not Allowed", text, "GET only\n".into());
    }
    ("200 OK", CONTENT_TYPE, render(&reader.snapshot()))
}

/// A metric family's exported name, and whether its values are ppm shown
/// as a ratio.
fn metric_name(label: &Label) -> (String, bool) {
    let prefix = match label.scope {
        Scope::Reactor => "ordergate_",
        Scope::Engine => "ordergate_engine_",
    };
    let family = label.family();
    if let Some(base) = family.strip_suffix("_ppm") {
        return (format!("{prefix}{base}_ratio"), true);
    }
    match label.kind {
        Kind::Counter => (format!("{prefix}{family}_total"), false),
        Kind::Gauge => (format!("{prefix}{family}"), false),
    }
}

/// `p99` → `0.99`, `p999` → `0.999`, `p50` → `0.5`; else None.
fn quantile(detail: &str) -> Option<String> {
    let digits = detail.strip_prefix('p')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let q = format!("0.{digits}");
    let q = q.trim_end_matches('0');
    Some(if q.ends_with('.') {
        format!("{q}0")
    } else {
        q.to_owned()
    })
}

/// The whole exposition for one snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = writeln!(
        out,
        "# HELP ordergate_start_time_seconds When the gateway started, Unix time.\n\
         # TYPE ordergate_start_time_seconds gauge\n\
         ordergate_start_time_seconds {}",
        s.start_ns as f64 / 1e9
    );
    let _ = writeln!(
        out,
        "# HELP ordergate_stats_age_seconds Time since the reactor last published its figures.\n\
         # TYPE ordergate_stats_age_seconds gauge"
    );
    for (r, b) in s.reactors.iter().enumerate() {
        let age = if b.publish_ns == 0 {
            f64::NAN
        } else {
            s.taken_ns.saturating_sub(b.publish_ns) as f64 / 1e9
        };
        let _ = writeln!(out, "ordergate_stats_age_seconds{{reactor=\"{r}\"}} {age}");
    }

    // Help text by stable id, from this build's catalog.
    let catalog = catalog();
    // Families in label-table order; each family's samples together.
    let mut done: Vec<(Scope, &str)> = Vec::new();
    for first in s.labels.iter() {
        let family = first.family();
        if done.contains(&(first.scope, family)) {
            continue;
        }
        done.push((first.scope, family));
        let (name, ratio) = metric_name(first);
        let help = catalog
            .iter()
            .find(|c| c.id == first.id)
            .map_or("ordergate counter.", |c| c.help);
        let kind = match first.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        let members = s
            .labels
            .iter()
            .filter(|l| l.scope == first.scope && l.family() == family);
        for label in members {
            let detail = label.detail().map(|d| match quantile(d) {
                Some(q) => format!("quantile=\"{q}\""),
                None => format!("reason=\"{d}\""),
            });
            let blocks: Vec<(Option<usize>, u64)> = match label.scope {
                Scope::Reactor => s
                    .reactors
                    .iter()
                    .enumerate()
                    .map(|(r, b)| (Some(r), b.values[label.slot as usize]))
                    .collect(),
                Scope::Engine => vec![(None, s.engine.values[label.slot as usize])],
            };
            for (reactor, value) in blocks {
                let mut labels: Vec<String> = Vec::new();
                if let Some(r) = reactor {
                    labels.push(format!("reactor=\"{r}\""));
                }
                labels.extend(detail.clone());
                out.push_str(&name);
                if !labels.is_empty() {
                    let _ = write!(out, "{{{}}}", labels.join(","));
                }
                if ratio {
                    let _ = writeln!(out, " {}", value as f64 / 1e6);
                } else {
                    let _ = writeln!(out, " {value}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_details() {
        assert_eq!(quantile("p50").as_deref(), Some("0.5"));
        assert_eq!(quantile("p99").as_deref(), Some("0.99"));
        assert_eq!(quantile("p999").as_deref(), Some("0.999"));
        assert_eq!(quantile("p0").as_deref(), Some("0.0"));
        assert_eq!(quantile("THROTTLED"), None);
        assert_eq!(quantile("p"), None);
        assert_eq!(quantile("pX"), None);
    }
}
