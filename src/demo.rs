//! `ordergate-bench demo`: the gateway embedded on loopback, driven for a few
//! seconds by the load generator, then a short report.
//!
//! ```text
//!  fresh key (secret from /dev/urandom, in memory only)
//!    → Gateway::start(GatewaySpec::default()) on 127.0.0.1:0 (one reactor, engine on its thread)
//!    → [--compare: closed-loop echo vs ordergate round trips]
//!    → run_load: `sessions` sessions, new/cancel/replace mix, some crossing (fills)
//!    → gateway.shutdown() → report: client round trips and the gateway's receive → ring
//! ```
//!
//! The demo measures the pipeline, not the throttle: its key and the
//! per-session limit are set far above the offered rate (rate limits have
//! their own tests). Everything else is `GatewaySpec::default()`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use zeroize::Zeroizing;

use crate::echo::{compare_interleaved, spawn_echo_server};
use crate::inprocess::{default_cpu, unthrottled_gateway};
use crate::load::{LoadParams, LoadReport, Mix, new_histogram, percentiles_us, run_load};
use ordergate::gateway::{GatewayReport, GatewaySpec};
use ordergate::wire::codes::RejectReason;
use ordergate_client::blocking::{ConnectOptions, Connection, read_urandom};

/// The demo's one API key id.
pub const DEMO_KEY_ID: u64 = 1;

/// Closed-loop round trips of each kind for `--compare`: ~0.1–0.3 s.
pub const COMPARE_ROUND_TRIPS: usize = 2_000;
/// Alternating batches they are measured in, so that noise from the rest of
/// the machine falls on both alike.
pub const COMPARE_ROUNDS: usize = 20;

/// Longest warm-up; shorter runs warm up for a tenth of their time.
pub const WARMUP_MAX: Duration = Duration::from_secs(1);

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoParams {
    /// Whole load time, warm-up included.
    pub seconds: u64,
    pub sessions: usize,
    /// Orders per second, all sessions together. Moderate by default, so a
    /// 2-core machine stays usable.
    pub rate: u64,
    /// Also measure closed-loop round trips against a bare TCP echo.
    pub compare: bool,
}

impl Default for DemoParams {
    fn default() -> Self {
        DemoParams {
            seconds: 5,
            sessions: 4,
            rate: 20_000,
            compare: false,
        }
    }
}

/// Closed-loop round trips, same run: the bare echo and ordergate.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub echo_ns: Histogram<u64>,
    pub ordergate_ns: Histogram<u64>,
}

impl Comparison {
    pub fn render(&self) -> String {
        let e = self.echo_ns.value_at_quantile(0.5) as f64 / 1_000.0;
        let o = self.ordergate_ns.value_at_quantile(0.5) as f64 / 1_000.0;
        format!(
            "round trip vs bare TCP echo (closed loop, same run): echo p50 {e:.2} µs, ordergate p50 {o:.2} µs, added {:.2} µs",
            o - e
        )
    }
}

/// Everything the demo measured.
#[derive(Debug)]
pub struct DemoReport {
    pub addr: SocketAddr,
    pub load: LoadReport,
    pub comparison: Option<Comparison>,
    /// `None` when the gateway was not ours to stop (tests).
    pub gateway: Option<GatewayReport>,
    pub elapsed: Duration,
}

impl DemoReport {
    /// Every reactor's receive → ring histogram, merged.
    pub fn recv_to_ring_ns(&self) -> Option<Histogram<u64>> {
        let g = self.gateway.as_ref()?;
        let mut h = new_histogram();
        for r in &g.reactors {
            h.add(&r.recv_to_ring_ns).ok()?;
        }
        Some(h)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "ordergate-bench demo: gateway on {}", self.addr);
        s.push_str(&self.load.render());
        if let Some(g) = &self.gateway {
            if let Some(h) = self.recv_to_ring_ns() {
                let _ = writeln!(
                    s,
                    "  gateway receive → ring (µs): {} ({} messages)",
                    percentiles_us(&h),
                    h.len()
                );
            }
            let mut messages_in = 0;
            let mut rejects = [0u64; RejectReason::ALL.len() + 1];
            let mut ring_full = 0;
            let mut slow = 0;
            for r in &g.reactors {
                messages_in += r.counters.messages_in;
                ring_full += r.counters.ring_full;
                slow += r.counters.slow_consumers;
                for (a, b) in rejects.iter_mut().zip(r.counters.order_rejects) {
                    *a += b;
                }
            }
            let by_reason: Vec<String> = RejectReason::ALL
                .iter()
                .filter(|r| rejects[r.wire() as usize] > 0)
                .map(|r| format!("{} {}", r.name(), rejects[r.wire() as usize]))
                .collect();
            let _ = writeln!(
                s,
                "  gateway: {} reactor{}, {} messages in; rejects {}; ring full {}, slow consumers {}",
                g.reactors.len(),
                if g.reactors.len() == 1 { "" } else { "s" },
                messages_in,
                if by_reason.is_empty() {
                    "none".to_string()
                } else {
                    by_reason.join(", ")
                },
                ring_full,
                slow
            );
            for (i, r) in g.reactors.iter().enumerate() {
                if g.reactors.len() > 1 {
                    let _ = writeln!(s, "  reactor {i}:");
                }
                ordergate::cli::uring_health(&mut s, &r.uring);
            }
        }
        if let Some(c) = &self.comparison {
            let _ = writeln!(s, "{}", c.render());
        }
        let _ = writeln!(s, "  demo took {:.2} s", self.elapsed.as_secs_f64());
        s
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// The embedded default: `seconds` of load with `sessions` sessions, printed.
///
/// # Errors
///
/// The gateway did not start, or a session could not log on.
pub fn run(seconds: u64, sessions: usize) -> Result<(), String> {
    let report = run_demo(&DemoParams {
        seconds,
        sessions,
        ..DemoParams::default()
    })?;
    report.print();
    Ok(())
}

/// As [`run`], with every parameter (`compare` among them), returning the
/// report instead of printing it.
pub fn run_demo(params: &DemoParams) -> Result<DemoReport, String> {
    let started = Instant::now();
    check(params)?;
    let secret = Zeroizing::new({
        let mut s = [0u8; 32];
        read_urandom(&mut s).map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
        s
    });
    // The reactor on the last CPU, and the comparison's client and echo
    // with it, as `ordergate-bench compare` places them: unpinned, a wake-up that
    // lands on the other CPU costs tens of µs on a small VM and the line
    // would measure the scheduler (seen: echo 4.4 µs, ordergate 22.5 µs).
    let cpu = default_cpu();
    let gateway = unthrottled_gateway(DEMO_KEY_ID, &secret, GatewaySpec::default().idle, cpu)?;
    let addr = gateway.local_addr();
    let driven = drive(addr, DEMO_KEY_ID, *secret, params, cpu);
    let gateway_report = gateway.shutdown();
    let (load, comparison) = driven?;
    Ok(DemoReport {
        addr,
        load,
        comparison,
        gateway: Some(gateway_report),
        elapsed: started.elapsed(),
    })
}

fn check(params: &DemoParams) -> Result<(), String> {
    if params.seconds == 0 {
        return Err("demo: seconds must be at least 1".into());
    }
    if params.sessions == 0 {
        return Err("demo: sessions must be at least 1".into());
    }
    Ok(())
}

/// The warm-up and measured time `seconds` splits into.
fn split(seconds: u64) -> (Duration, Duration) {
    let total = Duration::from_secs(seconds);
    let warmup = (total / 10).min(WARMUP_MAX);
    (warmup, total - warmup)
}

/// The client side of the demo against a gateway at `addr`.
fn drive(
    addr: SocketAddr,
    key_id: u64,
    secret: [u8; 32],
    params: &DemoParams,
    cpu: Option<usize>,
) -> Result<(LoadReport, Option<Comparison>), String> {
    let comparison = if params.compare {
        Some(std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // Best effort: unpinned, the line is noisier, not wrong.
                    if let Some(id) = cpu {
                        core_affinity::set_for_current(core_affinity::CoreId { id });
                    }
                    compare(addr, key_id, secret)
                })
                .join()
                .unwrap_or_else(|_| Err("the comparison thread panicked".into()))
        })?)
    } else {
        None
    };
    let (warmup, duration) = split(params.seconds);
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = LoadParams {
        sessions: params.sessions,
        rate: params.rate.max(params.sessions as u64),
        duration,
        warmup,
        mix: Mix::default(),
        // Leave a core to the gateway's reactor.
        threads: parallelism.saturating_sub(1).max(1),
        ..LoadParams::new(addr, key_id, secret)
    };
    let report = run_load(&load)?;
    Ok((report, comparison))
}

fn compare(addr: SocketAddr, key_id: u64, secret: [u8; 32]) -> Result<Comparison, String> {
    let (echo_addr, _echo) = spawn_echo_server();
    let mut conn = Connection::connect(addr, key_id, secret, &ConnectOptions::default())
        .map_err(|e| format!("compare session: {e}"))?;
    let (echo_ns, ordergate_ns) =
        compare_interleaved(echo_addr, &mut conn, COMPARE_ROUND_TRIPS, COMPARE_ROUNDS)
            .map_err(|e| format!("round trip comparison: {e}"))?;
    let _ = conn.send_logout();
    let _ = conn.recv(Duration::from_millis(200));
    Ok(Comparison {
        echo_ns,
        ordergate_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordergate::net_client::test_gateway::{KEY_ID, SECRET, TestGateway};

    #[test]
    fn seconds_split_into_a_capped_warm_up_and_the_rest() {
        assert_eq!(
            split(5),
            (Duration::from_millis(500), Duration::from_millis(4_500))
        );
        assert_eq!(
            split(1),
            (Duration::from_millis(100), Duration::from_millis(900))
        );
        assert_eq!(split(60), (Duration::from_secs(1), Duration::from_secs(59)));
        assert!(
            check(&DemoParams {
                seconds: 0,
                ..DemoParams::default()
            })
            .is_err()
        );
    }

    #[test]
    fn the_demo_drives_a_gateway_and_compares_with_the_echo() {
        let gw = TestGateway::start();
        let params = DemoParams {
            seconds: 1,
            sessions: 2,
            rate: 4_000,
            compare: true,
        };
        let (load, comparison) = drive(gw.addr(), KEY_ID, SECRET, &params, None).unwrap();
        let comparison = comparison.unwrap();
        assert_eq!(comparison.echo_ns.len() as usize, COMPARE_ROUND_TRIPS);
        assert_eq!(comparison.ordergate_ns.len() as usize, COMPARE_ROUND_TRIPS);
        assert!(
            comparison
                .render()
                .starts_with("round trip vs bare TCP echo (closed loop, same run): echo p50 ")
        );
        assert!(load.sent() > 0);
        assert!(load.fills > 0, "{}", load.render());
        assert_eq!(load.unanswered, 0, "{}", load.render());
        let report = DemoReport {
            addr: gw.addr(),
            load,
            comparison: Some(comparison),
            gateway: None,
            elapsed: Duration::from_secs(1),
        };
        let text = report.render();
        println!("{text}");
        assert!(
            text.contains("round trip from intended send (µs): p50 "),
            "{text}"
        );
        gw.shutdown();
    }
}
