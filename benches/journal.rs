//! The audit journal's cost per record, on the journal thread (reactors only
//! pay a ring push: see `benches/ring.rs`).
//!
//! - `append`: one record appended to a journal on a memory-mapped file in
//!   the temp dir, no flush: encode + one SHA-256 + two stores into the
//!   page cache. The steady-state cost with batched flushes.
//! - `append_flush`: the same, then `msync(MS_SYNC)` of that record's page:
//!   the worst case (flush every record), dominated by the device.
//! - `append_flush_64`: 64 appends then one flush, reported per record: the
//!   default policy under load (`FLUSH_RECORDS_MAX` = 64).
//! - `sha256_120`: the hash alone, for the breakdown.
//!
//! Run: `cargo bench --bench journal`

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ordergate::engine::SessionId;
use ordergate::journal::{AuditEvent, Journal, from_ip};
use sha2::{Digest, Sha256};

/// Slots per bench journal: 2^18 × 128 B = 32 MiB; a fresh file is made
/// (outside the timing) when one fills.
const CAPACITY: u64 = 1 << 18;

struct Bench {
    path: PathBuf,
    journal: Option<Journal>,
    files: u64,
}

impl Bench {
    fn new(name: &str) -> Bench {
        Bench {
            path: std::env::temp_dir().join(format!(
                "ordergate-bench-{}-{name}.audit",
                std::process::id()
            )),
            journal: None,
            files: 0,
        }
    }

    /// A journal with room for `n` more records.
    fn journal(&mut self, n: u64) -> &mut Journal {
        let full = match &self.journal {
            Some(j) => j.records() + n > j.capacity(),
            None => true,
        };
        if full {
            self.journal = None;
            let _ = std::fs::remove_file(&self.path);
            self.journal = Some(Journal::open(&self.path, CAPACITY).unwrap());
            self.files += 1;
        }
        self.journal.as_mut().unwrap()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.journal = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

fn event(n: u64) -> AuditEvent {
    AuditEvent::logon_accepted(
        1_764_000_000_000_000_000 + n,
        SessionId::new(1, n as u16, 1),
        1001,
        from_ip("10.0.0.1".parse().unwrap()),
    )
}

/// Times `per_iter` appends (and a flush after every `flush_every`)
/// `iters` times; fresh files are made outside the timed sections.
fn run(bench: &mut Bench, iters: u64, per_iter: u64, flush_every: Option<u64>) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let batch = (iters - done).min(CAPACITY / per_iter);
        let journal = bench.journal(batch * per_iter);
        journal.flush().unwrap();
        let start = Instant::now();
        for i in 0..batch * per_iter {
            black_box(journal.append(black_box(&event(i))).unwrap());
            if let Some(every) = flush_every
                && (i + 1) % every == 0
            {
                journal.flush().unwrap();
            }
        }
        total += start.elapsed();
        done += batch;
    }
    total
}

fn journal(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));

    let mut bench = Bench::new("append");
    group.bench_function("append", |b| {
        b.iter_custom(|iters| run(&mut bench, iters, 1, None))
    });
    drop(bench);

    let mut bench = Bench::new("flush");
    group.bench_function("append_flush", |b| {
        b.iter_custom(|iters| run(&mut bench, iters, 1, Some(1)))
    });
    drop(bench);

    group.throughput(Throughput::Elements(64));
    let mut bench = Bench::new("flush64");
    group.bench_function("append_flush_64", |b| {
        b.iter_custom(|iters| run(&mut bench, iters, 64, Some(64)))
    });
    drop(bench);

    group.throughput(Throughput::Elements(1));
    let bytes = [0x5au8; 120];
    group.bench_function("sha256_120", |b| {
        b.iter(|| -> [u8; 32] { Sha256::digest(black_box(&bytes)).into() })
    });
    group.finish();
}

criterion_group!(benches, journal);
criterion_main!(benches);
