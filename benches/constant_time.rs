//! Timing side channels of the authentication checks, dudect style: does
//! the time of a check depend on a secret-dependent input?
//!
//! For each check, two classes of input are timed one call at a time, in a
//! random interleaving (so drift, frequency changes and other jobs hit both
//! classes alike), and Welch's t-test compares the two distributions after
//! dropping each class's slowest 10% (preemptions and interrupts, which
//! only add noise). |t| above 4.5 is dudect's threshold for "the classes
//! differ": a leak, or a noise source that picked one class. Below it, no
//! difference was found *at this sample size* — evidence, not proof: more
//! samples resolve smaller differences (`CT_SAMPLES`, default 200,000 per
//! class).
//!
//! - `tag verify`: a message tag wrong in its first byte vs wrong in its
//!   last byte (the comparison must not exit at the first difference).
//! - `tag verify, good vs bad`: a right tag vs a wrong one (the only
//!   difference is the answer).
//! - `constant_time_eq`: 32 equal bytes vs 32 bytes differing at byte 0.
//! - `logon verify, key vs decoy`: a Logon's signature checked under a
//!   key's secret vs under the gateway's decoy secret (the path of a Logon
//!   naming an unknown key): the reply time must not tell whether a key id
//!   exists.
//!
//! - `control: early-exit compare`: a byte loop that stops at the first
//!   difference, differing at byte 0 vs byte 31 — a known leak of a few
//!   nanoseconds, which must come out DIFFERENT, or this machine's noise
//!   hides leaks of that size and the rows above say nothing.
//!
//! Run: `cargo bench --bench constant_time` (not a test: a timing verdict
//! on a shared 2-core VM would be flaky; read it from a quiet machine).

use std::hint::black_box;
use std::time::Instant;

use ordergate::auth::session_keys::verify_logon;
use ordergate::auth::tag::{TagKey, constant_time_eq};
use ordergate::wire::LOGON_SIZE;

/// dudect's threshold on |t|.
const T_THRESHOLD: f64 = 4.5;
/// The slowest share of each class dropped before the test.
const CROP: f64 = 0.10;

/// xorshift64*: the interleaving only needs to be unpredictable to the CPU's
/// branch and prefetch machinery, not to an adversary.
struct Coin(u64);

impl Coin {
    fn flip(&mut self) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 63 == 1
    }
}

/// Times `check(class)` `samples` times per class, interleaved at random,
/// and returns Welch's t of the cropped samples and the two medians (ns).
fn measure(samples: usize, mut check: impl FnMut(bool) -> bool) -> (f64, f64, f64) {
    let mut coin = Coin(0x9e37_79b9_7f4a_7c15);
    let mut times = [Vec::with_capacity(samples), Vec::with_capacity(samples)];
    // Warm both paths.
    for i in 0..10_000 {
        black_box(check(i % 2 == 0));
    }
    while times[0].len() < samples || times[1].len() < samples {
        let class = coin.flip();
        if times[class as usize].len() == samples {
            continue;
        }
        let start = Instant::now();
        black_box(check(black_box(class)));
        times[class as usize].push(start.elapsed().as_nanos() as f64);
    }
    for t in &mut times {
        t.sort_unstable_by(f64::total_cmp);
        t.truncate(((1.0 - CROP) * t.len() as f64) as usize);
    }
    let stats = |t: &[f64]| {
        let n = t.len() as f64;
        let mean = t.iter().sum::<f64>() / n;
        let var = t.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        (mean, var, n, t[t.len() / 2])
    };
    let (m0, v0, n0, p50_0) = stats(&times[0]);
    let (m1, v1, n1, p50_1) = stats(&times[1]);
    let t = (m0 - m1) / (v0 / n0 + v1 / n1).sqrt();
    (t, p50_0, p50_1)
}

/// The leak the control row must find: stops at the first difference.
fn early_exit_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    for i in 0..32 {
        if black_box(a[i]) != black_box(b[i]) {
            return false;
        }
    }
    true
}

fn report(name: &str, (t, p50_a, p50_b): (f64, f64, f64)) {
    let verdict = if t.abs() < T_THRESHOLD {
        "no difference found"
    } else {
        "DIFFERENT: a leak, or noise that picked one class (rerun on a quiet machine)"
    };
    println!(
        "{name:<32} |t| {:>7.2}   p50 {p50_a:>6.0} ns vs {p50_b:>6.0} ns   {verdict}",
        t.abs()
    );
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is not supported.
    let samples: usize = std::env::var("CT_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    println!(
        "timing classes, {samples} samples each, slowest {:.0}% dropped; |t| < {T_THRESHOLD}: no difference found",
        CROP * 100.0
    );

    let key = TagKey::new(&[0x5a; 32]);
    let mut good = [0x11u8; 64];
    key.seal(&mut good);
    let mut first = good;
    first[48] ^= 1;
    let mut last = good;
    last[63] ^= 1;
    report(
        "tag verify, first vs last byte",
        measure(samples, |c| key.verify(if c { &first } else { &last })),
    );
    report(
        "tag verify, good vs bad",
        measure(samples, |c| key.verify(if c { &good } else { &last })),
    );

    let a = [0x33u8; 32];
    let mut b = a;
    b[0] ^= 0x80;
    report(
        "constant_time_eq, equal vs first",
        measure(samples, |c| constant_time_eq(&a, if c { &a } else { &b })),
    );

    let mut at_end = a;
    at_end[31] ^= 0x80;
    report(
        "control: early-exit compare",
        measure(samples, |c| early_exit_eq(&a, if c { &b } else { &at_end })),
    );

    let secret = [0x42u8; 32];
    let decoy = [0x24u8; 32];
    let logon = [0x77u8; LOGON_SIZE];
    report(
        "logon verify, key vs decoy",
        measure(samples, |c| {
            verify_logon(if c { &secret } else { &decoy }, &logon)
        }),
    );
}
