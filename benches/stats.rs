//! Cost of publishing to the stats file, as a reactor pays it.
//!
//! - `publish_counters`: one reactor publish whose percentiles are not due
//!   (the histogram did not change, or fewer than
//!   `LATENCY_EVERY_PUBLISHES` publishes passed): what every 1 ms tick
//!   costs. Every value is stored, the sequence counter bumped twice.
//! - `publish_with_percentiles`: the same publish when the percentiles are
//!   recomputed (every `LATENCY_EVERY_PUBLISHES` ticks, ~100 ms), over a
//!   histogram of a million latencies spread 300 ns .. 2 ms.
//! - `percentiles`: the percentile computation alone
//!   (`LatencySummary::of`: three `value_at_quantile` walks), and
//!   `percentiles_one_pass`: the same with `value_at_quantiles`, which is
//!   slower (its per-bucket iterator is not vectorized).
//! - `publish_engine`: the engine's block.
//! - `snapshot`: a reader's consistent copy of a 2-reactor file (another
//!   process's cost, for scale).
//!
//! Run: `cargo bench --bench stats`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use ordergate::engine::agent::EngineCounters;
use ordergate::gateway::UringCounters;
use ordergate::session::Counters;
use ordergate::telemetry::StatsFile;
use ordergate::telemetry::stats::{DutyCycle, LatencySummary, StatsReader};

fn histogram() -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    // A skewed spread: most near 1 µs, a tail to 2 ms (xorshift, fixed seed).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..1_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        let ns = 300.0 * (1.0 / (1.0 - u * 0.9995)).powf(1.2);
        h.record((ns as u64).clamp(1, 2_000_000)).unwrap();
    }
    h
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("ordergate-bench-stats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.stats");
    let (mut writers, mut engine) = StatsFile::create(&path, 2).unwrap().into_writers();
    let mut counters = Counters {
        messages_in: 1_000_000,
        frames_out: 2_000_000,
        commands_out: 999_000,
        ..Counters::default()
    };
    counters.order_rejects[2] = 1_000;
    let uring = UringCounters {
        bytes_in: 64_000_000,
        turns: 5_000_000,
        ..UringCounters::default()
    };
    let h = histogram();
    let duty = DutyCycle {
        window_ns: 1_000_000,
        turn_ns_max: 4_000,
        busy_ns: 120_000,
        turns: 900,
    };
    let mut now = 1u64;
    let w = &mut writers[0];
    // Percentiles computed once; from here the histogram does not change.
    w.publish(now, &counters, &uring, 3, &h, duty);
    c.bench_function("publish_counters", |b| {
        b.iter(|| {
            now += 1;
            counters.messages_in += 1;
            w.publish(now, black_box(&counters), &uring, 3, &h, duty);
        })
    });
    let mut h2 = h.clone();
    c.bench_function("publish_with_percentiles", |b| {
        b.iter(|| {
            now += 1;
            h2.record(1_000).unwrap();
            w.refresh_latency();
            w.publish(now, black_box(&counters), &uring, 3, &h2, duty);
        })
    });
    c.bench_function("percentiles", |b| {
        b.iter(|| black_box(LatencySummary::of(black_box(&h))))
    });
    c.bench_function("percentiles_one_pass", |b| {
        b.iter(|| {
            let mut q = black_box(&h).value_at_quantiles([0.5, 0.99, 0.999]);
            black_box([q.next(), q.next(), q.next()])
        })
    });
    let mut ec = EngineCounters::default();
    c.bench_function("publish_engine", |b| {
        b.iter(|| {
            now += 1;
            ec.commands += 1;
            engine.publish(now, black_box(&ec));
        })
    });
    let reader = StatsReader::open(&path).unwrap();
    c.bench_function("snapshot", |b| b.iter(|| black_box(reader.snapshot())));
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
