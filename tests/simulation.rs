//! The seeded whole-gateway simulation (tests/common/sim.rs): a fixed set
//! of seeds in every test run, any number on demand, and one test per
//! invariant proving that its check catches a bug injected on purpose.
//!
//! ```text
//! cargo test --profile ci --test simulation                 # the fixed seeds
//! SIM_SEEDS=10000 cargo test --profile ci --test simulation -- --ignored --nocapture seeds
//! SIM_SEED=1234 cargo test --profile ci --test simulation -- --ignored --nocapture seeds
//! ```
//!
//! `seeds` (ignored by default) runs `SIM_SEEDS` seeds from `SIM_FIRST`
//! (default 0) on every core, or the one seed `SIM_SEED` with its trace;
//! `SIM_MUTATION=<name>` injects one of the bugs below. A failing seed
//! prints its invariant, the step, the last steps of its trace and the
//! command that replays it.

#[path = "common/sim.rs"]
mod sim;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sim::{Failure, Mutation, Summary, replay_command, run_seed};

/// Seeds every `cargo test` runs. Each takes a few milliseconds.
const FIXED_SEEDS: u64 = 100;

/// Seeds a mutation test tries before it gives up: every injected bug is
/// caught within the first few.
const MUTATION_SEEDS: u64 = 64;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

/// Runs `seeds` on every core; returns the failures (lowest seed first)
/// and what the passing seeds did.
fn run_many(seeds: std::ops::Range<u64>, mutation: Mutation) -> (Vec<Failure>, Summary) {
    let next = AtomicU64::new(seeds.start);
    let failures = Mutex::new(Vec::new());
    let total = Mutex::new(Summary::default());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Summary::default();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    match run_seed(seed, mutation) {
                        Ok(summary) => mine.add(&summary),
                        Err(f) => failures.lock().unwrap().push(f),
                    }
                }
                total.lock().unwrap().add(&mine);
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|f| f.seed);
    (failures, total.into_inner().unwrap())
}

#[test]
fn the_fixed_seeds_hold_every_invariant() {
    let (failures, summary) = run_many(0..FIXED_SEEDS, Mutation::None);
    if let Some(f) = failures.first() {
        panic!(
            "{} of {FIXED_SEEDS} seeds failed; the first:\n{f}",
            failures.len()
        );
    }
    // The seeds reach what they are meant to: logons, trades, pauses,
    // engine back-pressure, revocations, clock jumps back.
    assert!(summary.logons > 0 && summary.fills > 0, "{summary:?}");
    assert!(
        summary.input_paused > 0,
        "no seed paused a session: {summary:?}"
    );
    assert!(
        summary.engine_blocked > 0,
        "no seed blocked the engine: {summary:?}"
    );
    assert!(
        summary.revocations > 0,
        "no seed revoked a session: {summary:?}"
    );
    assert!(summary.clock_back > 0 && summary.drops > 0, "{summary:?}");
    assert!(
        summary.cod_cancels > 0,
        "no cancel-on-disconnect canceled an order: {summary:?}"
    );
    assert!(
        summary.key_revoked_cancels > 0,
        "no key sweep canceled an order: {summary:?}"
    );
    assert!(summary.audit_gaps > 0, "no audit ring filled: {summary:?}");
}

/// Seeds that found real bugs, kept as regression tests: 43 and 514, a
/// key that expired again after the wall clock stepped back was never swept
/// again; 14961, a key that expired and was removed by a reload before a
/// reactor's next tick was never swept by that reactor.
#[test]
fn the_seeds_that_found_bugs_pass() {
    for seed in [43, 514, 14961] {
        if let Err(f) = run_seed(seed, Mutation::None) {
            panic!("{f}");
        }
    }
}

/// Any number of seeds (`SIM_SEEDS`, from `SIM_FIRST`), or one (`SIM_SEED`)
/// with its trace; `SIM_MUTATION` injects a bug.
#[test]
#[ignore = "run on demand: SIM_SEEDS=10000 or SIM_SEED=n"]
fn seeds() {
    let mutation = std::env::var("SIM_MUTATION").map_or(Mutation::None, |m| {
        Mutation::from_name(&m).unwrap_or_else(|| {
            let names: Vec<_> = Mutation::ALL.iter().map(|m| m.name()).collect();
            panic!("SIM_MUTATION={m}: not one of {names:?}")
        })
    });
    if let Some(seed) = env_u64("SIM_SEED") {
        if env_u64("SIM_TRACE") == Some(1) {
            for line in sim::trace_seed(seed, mutation) {
                println!("{line}");
            }
        }
        match run_seed(seed, mutation) {
            Ok(summary) => println!("seed {seed} passed: {summary:?}"),
            Err(f) => panic!("{f}"),
        }
        return;
    }
    let count = env_u64("SIM_SEEDS").unwrap_or(1000);
    let first = env_u64("SIM_FIRST").unwrap_or(0);
    let start = Instant::now();
    let (failures, summary) = run_many(first..first + count, mutation);
    let took = start.elapsed();
    println!(
        "simulation: {count} seeds from {first}: {} passed, {} failed in {:.1} s",
        count - failures.len() as u64,
        failures.len(),
        took.as_secs_f64()
    );
    println!("what the passing seeds did: {summary:?}");
    for f in failures.iter().take(5) {
        println!("\n{f}");
    }
    assert!(
        failures.is_empty(),
        "{} seeds failed; replay the first with: {}",
        failures.len(),
        replay_command(failures[0].seed, mutation)
    );
}

/// Runs seeds with `mutation` until one fails; it must fail `invariant`,
/// and its message must name the seed and how to replay it.
fn caught(mutation: Mutation, invariant: &str) -> Failure {
    caught_by(mutation, &[invariant])
}

/// [`caught`], by any of `invariants`.
fn caught_by(mutation: Mutation, invariants: &[&str]) -> Failure {
    for seed in 0..MUTATION_SEEDS {
        if let Err(f) = run_seed(seed, mutation) {
            let text = f.to_string();
            assert!(
                invariants.contains(&f.invariant),
                "the wrong invariant caught it:\n{text}"
            );
            assert!(
                text.contains(&format!("simulation seed {seed} failed")),
                "{text}"
            );
            assert!(text.contains(&replay_command(seed, mutation)), "{text}");
            assert!(text.contains(mutation.name()), "{text}");
            return f;
        }
    }
    panic!(
        "{} was not caught in {MUTATION_SEEDS} seeds",
        mutation.name()
    );
}

#[test]
fn a_command_taken_twice_is_caught() {
    let f = caught(Mutation::DuplicateCommand, "at-most-once");
    assert!(f.detail.contains("reached the engine 2 times"), "{f}");
}

#[test]
fn a_frame_forwarded_without_its_tag_checked_is_caught() {
    let f = caught(Mutation::ForgeCommand, "authenticated");
    assert!(f.detail.contains("never sent"), "{f}");
}

#[test]
fn a_lost_cancel_on_disconnect_is_caught() {
    let f = caught(Mutation::DropCod, "cancel-on-disconnect");
    assert!(f.detail.contains("still rests"), "{f}");
}

#[test]
fn an_answer_delivered_twice_is_caught() {
    let f = caught(Mutation::DuplicateAck, "acknowledged-once");
    assert!(f.detail.contains("second first answer"), "{f}");
}

#[test]
fn an_answer_never_delivered_is_caught() {
    let f = caught(Mutation::DropAck, "acknowledged-once");
    assert!(f.detail.contains("got 0 first answers"), "{f}");
}

#[test]
fn a_fill_that_misreports_its_quantity_is_caught() {
    let f = caught(Mutation::SkewFill, "quantity-conserved");
    assert!(f.detail.contains("Fill of order"), "{f}");
}

#[test]
fn an_engine_that_stops_is_caught() {
    // Either way it shows: the progress check, or the probe phase finding
    // a quiet session's order the engine never took (which of the two
    // comes first depends on how the seed's clock steps throttled it).
    let f = caught_by(Mutation::StallEngine, &["progress", "acknowledged-once"]);
    assert!(
        f.detail.contains("an order unanswered")
            || f.detail.contains("the engine has commands waiting")
            || f.detail.contains("the engine took it 0 times"),
        "{f}"
    );
}

#[test]
fn a_receive_never_rearmed_after_a_pause_is_caught() {
    let f = caught(Mutation::NoRearm, "progress");
    assert!(f.detail.contains("recv armed false"), "{f}");
}

#[test]
fn a_key_sweep_that_never_reaches_the_engine_is_caught() {
    let f = caught(Mutation::DropKeySweep, "revocation");
    assert!(f.detail.contains("which stopped being usable"), "{f}");
}
