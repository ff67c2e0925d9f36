//! Attack 9: slow-loris on the Prometheus endpoint. Clients that open
//! connections and trickle one byte every 200 ms, never finishing their
//! request, must not hold the endpoint: connections over the bound (and a
//! peer's connections over its share) are refused at once with a 503, the
//! ones admitted are cut with a 408 at the whole-request deadline however
//! steadily they trickle, a scraper from another address gets its 200, and
//! the endpoint's own counters (`ordergate_metrics_*`) say exactly what
//! happened.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::net::*;
use ordergate::constants::{
    METRICS_CONNECTIONS_MAX, METRICS_CONNECTIONS_PER_PEER, METRICS_REQUEST_DEADLINE,
};

/// How often a slow client sends its next byte.
const TRICKLE: Duration = Duration::from_millis(200);
/// Where the scraper connects from (never one of the attackers').
const SCRAPER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Scrape attempts before the test gives up.
const ATTEMPTS: u32 = 40;

/// What became of one slow client: the bytes the server sent it, and how
/// long after it connected the server closed it (None: still open when the
/// test stopped watching).
#[derive(Debug)]
struct Outcome {
    answer: String,
    closed_after: Option<Duration>,
}

/// The bytes a slow client sends, one per tick: a request line, then a
/// header that never ends.
fn trickle_byte(i: usize) -> u8 {
    const HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nX-Slow: ";
    HEAD.get(i).copied().unwrap_or(b'x')
}

/// Opens `count` connections from each of `from` and trickles on all of
/// them from a thread of its own until the server has closed every one, or
/// for at most `watch` (longer than any scrape loop of the test, so that
/// the attack lasts while the test scrapes).
fn slow_loris(
    to: SocketAddr,
    from: &[Ipv4Addr],
    count: usize,
    watch: Duration,
) -> std::thread::JoinHandle<Vec<Outcome>> {
    let mut streams = Vec::new();
    for &ip in from {
        for _ in 0..count {
            let s = connect_from(ip, to).unwrap();
            s.set_nonblocking(true).unwrap();
            streams.push((s, Instant::now()));
        }
    }
    std::thread::spawn(move || {
        let mut outcomes: Vec<Outcome> = streams
            .iter()
            .map(|_| Outcome {
                answer: String::new(),
                closed_after: None,
            })
            .collect();
        let start = Instant::now();
        let mut tick = 0;
        while start.elapsed() < watch && outcomes.iter().any(|o| o.closed_after.is_none()) {
            for ((s, opened), o) in streams.iter_mut().zip(outcomes.iter_mut()) {
                if o.closed_after.is_some() {
                    continue;
                }
                // Whatever the server said, first: then the next byte.
                let mut buf = [0u8; 512];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => {
                            o.closed_after = Some(opened.elapsed());
                            break;
                        }
                        Ok(n) => o.answer.push_str(&String::from_utf8_lossy(&buf[..n])),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            o.closed_after = Some(opened.elapsed());
                            break;
                        }
                    }
                }
                if o.closed_after.is_none() && s.write(&[trickle_byte(tick)]).is_err() {
                    o.closed_after = Some(opened.elapsed());
                }
            }
            tick += 1;
            std::thread::sleep(TRICKLE);
        }
        outcomes
    })
}

/// One `GET /metrics` from `from`, waiting at most `WAIT` for the answer:
/// (status line, body), or the error (a time-out: the endpoint is held).
fn scrape(to: SocketAddr, from: Ipv4Addr) -> std::io::Result<(String, String)> {
    let mut s = connect_from(from, to).unwrap();
    s.set_read_timeout(Some(WAIT))?;
    // A refusal may be answered before the request arrives: then the
    // request resets the closed connection. Ignore that error...
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // ...and the reset that may follow the answer.
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !answer.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no head in {answer:?}")))?;
    Ok((
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    ))
}

/// Scrapes until a 200, 100 ms apart, at most `ATTEMPTS` times and for
/// at most the deadline and `WAIT` (by then the cut has freed every
/// worker): the body and the number of 503s on the way (each one a
/// refusal the endpoint counted).
fn scrape_until_ok(to: SocketAddr) -> (String, u64) {
    let start = Instant::now();
    let (mut busy, mut failed) = (0, Vec::new());
    for _ in 0..ATTEMPTS {
        match scrape(to, SCRAPER) {
            Ok((status, body)) if status == "HTTP/1.0 200 OK" => return (body, busy),
            Ok((status, _)) if status == "HTTP/1.0 503 Service Unavailable" => busy += 1,
            Ok((status, _)) => panic!("unexpected answer {status:?}"),
            Err(e) => failed.push(e.kind()),
        }
        if start.elapsed() > METRICS_REQUEST_DEADLINE + WAIT {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no 200 from /metrics in {:?} while slow clients trickle: {busy} answered 503, \
         {} failed ({failed:?})",
        start.elapsed(),
        failed.len()
    );
}

/// The value of the sample line `name` (no labels) in an exposition.
fn sample(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{body}"))
        .parse()
        .unwrap()
}

fn assert_cut_at_deadline(o: &Outcome) {
    let after = o
        .closed_after
        .unwrap_or_else(|| panic!("never closed: {o:?}"));
    assert!(
        o.answer.starts_with("HTTP/1.0 408 Request Timeout\r\n"),
        "{o:?}"
    );
    // Cut at the deadline, not before: it counts from the accept, which
    // follows the connect.
    assert!(after >= METRICS_REQUEST_DEADLINE - TRICKLE, "{o:?}");
}

fn assert_refused_at_once(o: &Outcome) {
    let after = o
        .closed_after
        .unwrap_or_else(|| panic!("never closed: {o:?}"));
    assert!(
        o.answer.starts_with("HTTP/1.0 503 Service Unavailable\r\n"),
        "{o:?}"
    );
    assert!(after < METRICS_REQUEST_DEADLINE, "{o:?}");
}

/// More slow clients than the endpoint's connection bound, each address
/// within its share: the first `METRICS_CONNECTIONS_MAX` are admitted and
/// cut at the deadline, the rest refused at once; a scraper gets its 200
/// within a bounded number of attempts (503s until the cut frees a worker).
#[test]
fn slow_loris_over_the_connection_bound_is_refused_then_cut_at_the_deadline() {
    let setup = Scraped::start("metrics-bound");
    let to = setup.prom().local_addr();
    // Enough addresses, each with its full share, to pass the bound by two
    // shares.
    let addresses = METRICS_CONNECTIONS_MAX / METRICS_CONNECTIONS_PER_PEER + 2;
    let from: Vec<Ipv4Addr> = (0..addresses as u8)
        .map(|i| Ipv4Addr::new(127, 0, 0, 11 + i))
        .collect();
    let slow = addresses * METRICS_CONNECTIONS_PER_PEER;
    let watch = METRICS_REQUEST_DEADLINE + 2 * WAIT;
    let attack = slow_loris(to, &from, METRICS_CONNECTIONS_PER_PEER, watch);

    let (body, busy) = scrape_until_ok(to);
    assert!(
        body.contains("ordergate_messages_in_total{reactor=\"0\"} 0"),
        "{body}"
    );
    let outcomes = attack.join().unwrap();
    assert_eq!(outcomes.len(), slow);
    let (admitted, refused) = outcomes.split_at(METRICS_CONNECTIONS_MAX);
    admitted.iter().for_each(assert_cut_at_deadline);
    refused.iter().for_each(assert_refused_at_once);

    // The endpoint's own count of it, exact.
    let (status, body) = scrape(to, SCRAPER).unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(
        sample(&body, "ordergate_metrics_deadline_cut_total"),
        METRICS_CONNECTIONS_MAX as u64
    );
    assert_eq!(
        sample(&body, "ordergate_metrics_refused_busy_total"),
        (slow - METRICS_CONNECTIONS_MAX) as u64 + busy
    );
    assert_eq!(sample(&body, "ordergate_metrics_refused_peer_total"), 0);
    // The first 200, and this one.
    assert_eq!(sample(&body, "ordergate_metrics_requests_total"), 2);
    assert_eq!(sample(&body, "ordergate_metrics_connections"), 1);
    assert!(body.contains("# TYPE ordergate_metrics_deadline_cut_total counter\n"));
}

/// One address opening more slow connections than its share: it holds its
/// share until the deadline, its other connections are refused at once,
/// and a scraper from another address is answered at its first attempt
/// while the attack is still under way.
#[test]
fn one_peer_cannot_take_more_than_its_share() {
    let setup = Scraped::start("metrics-peer");
    let to = setup.prom().local_addr();
    let extra = 3;
    let slow = METRICS_CONNECTIONS_PER_PEER + extra;
    let watch = METRICS_REQUEST_DEADLINE + 2 * WAIT;
    let attack = slow_loris(to, &[Ipv4Addr::new(127, 0, 0, 11)], slow, watch);

    let (status, body) = scrape(to, SCRAPER).expect("answered while the attack goes on");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(
        body.contains("ordergate_messages_in_total{reactor=\"0\"} 0"),
        "{body}"
    );
    // Its share, still held, is counted as open (and this scrape).
    assert_eq!(
        sample(&body, "ordergate_metrics_connections"),
        METRICS_CONNECTIONS_PER_PEER as u64 + 1
    );
    let outcomes = attack.join().unwrap();
    let (admitted, refused) = outcomes.split_at(METRICS_CONNECTIONS_PER_PEER);
    admitted.iter().for_each(assert_cut_at_deadline);
    refused.iter().for_each(assert_refused_at_once);

    let (status, body) = scrape(to, SCRAPER).unwrap();
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(
        sample(&body, "ordergate_metrics_deadline_cut_total"),
        METRICS_CONNECTIONS_PER_PEER as u64
    );
    assert_eq!(
        sample(&body, "ordergate_metrics_refused_peer_total"),
        extra as u64
    );
    assert_eq!(sample(&body, "ordergate_metrics_refused_busy_total"), 0);
    assert_eq!(sample(&body, "ordergate_metrics_requests_total"), 2);
}
