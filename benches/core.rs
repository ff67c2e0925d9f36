//! Hot-path stages of the sans-I/O core, each measured alone and as the
//! whole per-message pipeline. No sockets. Run: `cargo bench --bench core`.
//!
//! Every figure is per message. On a noisy 2-core machine compare medians
//! within one run (e.g. pipeline ÷ tag_verify, tag_verify ÷
//! sha256_compress_1block, tag_verify_portable ÷ tag_verify), not absolute
//! times.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ordergate::auth::keys::{KeyEntry, KeyTable};
use ordergate::auth::secret::Secret;
use ordergate::auth::tag::TagKey;
use ordergate::client::ClientSession;
use ordergate::engine::{Command, Event, EventKind, SessionId};
use ordergate::limits::{Class, LocalCell, Rate, SharedCell, admit};
use ordergate::session::{Counters, GatewayConfig, Io, Session, Shared};
use ordergate::wire::codes::{Environment, Scopes};
use ordergate::wire::{self, ClientFrame};

const T0: u64 = 1_764_000_000_000_000_000;

fn new_order(seq: u64) -> wire::NewOrder {
    wire::NewOrder {
        seq,
        cl_ord_id: 500_000 + seq,
        price: 101_250_000,
        qty: 10,
        instrument_id: 7,
        side: 1,
        ord_type: 1,
        tif: 0,
    }
}

fn stages(c: &mut Criterion) {
    let key = TagKey::new(&[0x42; 32]);
    // The `_portable` benches run the same tags without SHA-NI, for a
    // same-run ratio. On a CPU without it both measure the portable code.
    let portable = TagKey::new_portable(&[0x42; 32]);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        key.uses_sha_ni(),
        std::arch::is_x86_feature_detected!("sha"),
        "the tag benches must measure the engine the gateway uses"
    );
    let mut frame = new_order(1).to_bytes();
    key.seal(&mut frame);

    // The baseline for the tag: one SHA-256 compression. A tag over a
    // hot-path message should cost about two of these.
    c.bench_function("sha256_compress_1block", |b| {
        let mut state = [0x6a09e667u32; 8];
        let block = [[0x5au8; 64]];
        b.iter(|| {
            sha2::block_api::compress256(black_box(&mut state), black_box(&block));
        })
    });
    c.bench_function("decode_new_order", |b| {
        b.iter(|| match wire::decode_client(black_box(&frame)) {
            Ok(ClientFrame::NewOrder(v)) => black_box(v.qty()),
            _ => unreachable!(),
        })
    });
    let accepted = wire::OrderAccepted {
        seq: 2,
        cl_ord_id: 1,
        order_id: 2,
        transact_time_ns: T0,
    }
    .to_bytes();
    for (suffix, key) in [("", &key), ("_portable", &portable)] {
        c.bench_function(&format!("tag_verify_new_order{suffix}"), |b| {
            b.iter(|| key.verify(black_box(&frame)))
        });
        c.bench_function(&format!("tag_seal_order_accepted{suffix}"), |b| {
            let mut out = accepted;
            b.iter(|| key.seal(black_box(&mut out)))
        });
    }
    c.bench_function("rate_limit_admit", |b| {
        let rate = Rate::new(u32::MAX, u32::MAX);
        let shared = SharedCell::default();
        let mut cell = LocalCell::default();
        let mut now = T0;
        b.iter(|| {
            now += 1;
            admit(
                &mut cell,
                &rate,
                &shared,
                &rate,
                black_box(now),
                Class::Order,
            )
        })
    });
}

fn pipeline(c: &mut Criterion) {
    let keys = KeyTable::from_entries(vec![
        KeyEntry::new(
            1,
            Secret::from_bytes([0x42; 32]),
            Scopes::TRADE.union(Scopes::CANCEL),
            Environment::Production,
        )
        .with_rate(10_000_000, 1_000_000)
        .allow_any(),
    ])
    .unwrap();
    let config = GatewayConfig {
        session_msgs_per_sec: 10_000_000,
        session_burst: 1_000_000,
        ..GatewayConfig::default()
    };
    let shared = Shared::new(config, keys, [1; 32]);
    let mut session = Session::new_slot();
    session.open(
        SessionId::new(0, 0, 1),
        "127.0.0.1".parse().unwrap(),
        T0,
        &shared,
    );
    let mut client = ClientSession::new(1, [0x42; 32]);
    let mut counters = Counters::default();
    let logon = client.logon(T0, [3; 16], 1000, 1, 0);
    // The real command ring: the pipeline ends with the hop to the engine.
    // It is drained between batches, outside the timed region, and every
    // order is answered (Accepted) there: a session reads no further than
    // its transmit buffer can hold the answers it owes (512 × 72 bytes fits
    // in 64 KiB; 1024 would not).
    const BATCH: usize = 512;
    let (mut sink, mut engine_side) = ordergate::ring::channel::<Command>(2 * BATCH);
    let keys = shared.key_set();
    let mut audit = ordergate::session::Audit::disabled();
    let mut io = Io {
        now: T0,
        shared: &shared,
        keys: &keys,
        commands: &mut sink,
        counters: &mut counters,
        audit: &mut audit,
    };
    session.handle_bytes(&mut io, &logon);
    let mut out = Vec::new();
    session.tx_mut().take_all(&mut out);
    client.receive(&out).expect("LogonAck");

    let mut frames = vec![[0u8; 64]; BATCH];
    c.bench_function("pipeline_new_order", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH as u64) as usize;
                for f in frames.iter_mut().take(n) {
                    *f = client.seal(new_order(0).to_bytes());
                }
                // 1 µs of virtual time a message: a tenth of the key's rate.
                io.now += n as u64 * 1_000;
                let start = Instant::now();
                for f in frames.iter().take(n) {
                    session.handle_bytes(&mut io, black_box(f));
                }
                elapsed += start.elapsed();
                left -= n as u64;
                let mut answers = Vec::with_capacity(n);
                let drained = engine_side.drain(usize::MAX, |c| {
                    let mut e = Event::empty(EventKind::Accepted, c.session);
                    e.cl_ord_id = black_box(c).cl_ord_id;
                    answers.push(e);
                });
                assert_eq!(drained, n, "every order reached the ring");
                for e in &answers {
                    session.handle_event(&mut io, e);
                }
                out.clear();
                session.tx_mut().take_all(&mut out);
            }
            elapsed
        })
    });
    assert!(
        session.is_logged_on(),
        "the bench must not have ended the session"
    );
}

criterion_group!(benches, stages, pipeline);
criterion_main!(benches);
