//! The shared-memory engine link's files, and `ordergate engine`: the
//! matching engine as its own process.
//!
//! The sans-I/O half (layout, rings, liveness) is `ordergate_core::link`;
//! here the file is created or opened and mapped with memmap2, and the
//! engine process runs its loop. docs/ENGINE.md draws the file and the
//! liveness rule.
//!
//! ```text
//!  ordergate engine --shm PATH          ordergate serve --engine shm:PATH
//!  ┌───────────────────────────┐        ┌─────────────────────────────┐
//!  │ EngineAgent<MatchingEngine>│◀─cmd──│ reactor 0 (CommandTx::Shm)  │
//!  │  CommandRx::Shm per pair   │──evt─▶│           (EventRx::Shm)    │
//!  │  EngineWatch per pair      │  …    │ reactor n-1                 │
//!  └───────────────────────────┘        └─────────────────────────────┘
//!            one mapped file: header, pairs × (command ring, event ring), COD table
//! ```

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::engine::agent::{EngineAgent, EngineCounters};
use crate::engine::book::{EngineConfig, MatchingEngine};
use crate::link::shm_ring::{ShmError, ShmLink, ShmParams, ShmRegion};
use crate::link::{CommandRx, EngineWatch, EventTx};

/// Maps `file` (its whole length) read-write, shared.
fn map(file: &std::fs::File, path: &Path) -> Result<ShmRegion, String> {
    // SAFETY: the mapping is of a file other processes write at any time;
    // memmap2's `MmapMut` is only used here for its pointer and length, and
    // the region reaches the bytes through atomics only (`ShmRegion::new`'s
    // contract), so no Rust reference to plain bytes of it ever exists.
    let mut mmap = unsafe { memmap2::MmapMut::map_mut(file) }
        .map_err(|e| format!("cannot map {}: {e}", path.display()))?;
    let (base, len) = (mmap.as_mut_ptr(), mmap.len());
    // SAFETY: `base..base + len` is the live mapping, kept alive by the
    // owner Arc that holds the `MmapMut` (moving it does not move the
    // mapping); it is touched only through the region.
    unsafe { ShmRegion::new(base, len, Arc::new(mmap)) }
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Creates the link file (replacing any old one: a gateway still mapping
/// an old file keeps the old inode and sees that engine stopped), sized
/// and initialised for `params`.
pub fn create(path: &Path, params: ShmParams) -> Result<ShmLink, String> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot replace {}: {e}", path.display())),
    }
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?
    };
    file.set_len(params.file_size() as u64)
        .map_err(|e| format!("cannot size {}: {e}", path.display()))?;
    let region = map(&file, path)?;
    ShmLink::create(region, params).map_err(|e| format!("{}: {e}", path.display()))
}

/// Opens an engine's link file as its gateway: checks the header and
/// attaches (once per engine run).
pub fn attach(path: &Path) -> Result<ShmLink, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| {
            format!(
                "cannot open the engine link {}: {e} (is `ordergate engine --shm {}` running?)",
                path.display(),
                path.display()
            )
        })?;
    let region = map(&file, path)?;
    let link = ShmLink::open(region).map_err(|e| format!("{}: {e}", path.display()))?;
    link.attach(u64::from(std::process::id()))
        .map_err(|e: ShmError| format!("{}: {e}", path.display()))?;
    Ok(link)
}

/// `ordergate engine`'s settings.
#[derive(Clone, Debug)]
pub struct EngineProcessSpec {
    pub shm: PathBuf,
    /// Ring pairs: the most reactors the gateway may run.
    pub pairs: usize,
    pub ring_capacity: usize,
    pub engine_config: EngineConfig,
    /// `ENGINE_LIVENESS_TIMEOUT_NS` (a field so tests may shorten it).
    pub liveness_timeout_ns: u64,
}

/// What `ordergate engine` did, for its stop summary.
#[derive(Clone, Debug, Default)]
pub struct EngineProcessReport {
    pub counters: EngineCounters,
    /// Command records refused by the record check.
    pub bad_records: u64,
    /// Pairs whose gateway was judged dead.
    pub gateways_lost: u64,
    /// Sessions in the dead gateways' COD tables (each got a
    /// cancel-on-disconnect).
    pub cod_sessions: u64,
    /// Resting orders those cancel-on-disconnects canceled.
    pub cod_orders_canceled: u64,
    /// COD table entries refused (naming another pair or slot).
    pub cod_bad_entries: u64,
    /// The gateway judged this engine dead and took over its rings.
    pub disowned: bool,
    pub orders_live: usize,
}

/// The engine process's longest sleep between two turns once idle (after
/// spinning, then yielding): the reactors' own park, so an order after a
/// quiet spell waits at most this long; the engine's beat moves at least
/// this often, far inside `ENGINE_LIVENESS_TIMEOUT_NS`.
const ENGINE_PARK_MAX: Duration = crate::constants::IDLE_PARK_MAX;

/// Runs the engine over a new link file until `stop`, or until the
/// gateway disowns it. `on_event` hears each liveness verdict as it
/// happens (the CLI prints it).
pub fn run_engine(
    spec: &EngineProcessSpec,
    stop: &AtomicBool,
    mut on_event: impl FnMut(&str),
) -> Result<EngineProcessReport, String> {
    let params = ShmParams {
        capacity: spec.ring_capacity,
        pairs: spec.pairs,
        gateway_id: 0,
        cod_slots: crate::constants::SESSIONS_PER_REACTOR_MAX,
    };
    let link = create(&spec.shm, params)?;
    let engine = MatchingEngine::new_in(spec.engine_config.clone(), &crate::sys::HugePages);
    let mut agent = EngineAgent::linked(
        engine,
        (0..spec.pairs).map(|p| CommandRx::shm(&link, p)).collect(),
        (0..spec.pairs).map(|p| EventTx::shm(&link, p)).collect(),
    );
    let mut watches: Vec<EngineWatch> = (0..spec.pairs)
        .map(|p| EngineWatch::new(&link, p, spec.liveness_timeout_ns))
        .collect();
    let mut sweeps_due: Vec<usize> = Vec::with_capacity(spec.pairs);
    let mut report = EngineProcessReport::default();
    let mut idle_turns: u32 = 0;
    on_event(&format!(
        "engine link {} ready: {} ring pairs of {} slots",
        spec.shm.display(),
        spec.pairs,
        spec.ring_capacity
    ));
    // Liveness runs on a monotonic clock: a stepped wall clock must not
    // look like a silent gateway.
    let base = std::time::Instant::now();
    loop {
        let now = crate::clock::wall_ns();
        let mono = base.elapsed().as_nanos() as u64;
        let mut work = agent.do_work(now);
        for (pair, watch) in watches.iter_mut().enumerate() {
            if watch.poll(mono) {
                sweeps_due.push(pair);
                on_event(&format!(
                    "gateway on pair {pair} judged dead (no beat for {} ms): cancelling its \
                     cancel-on-disconnect sessions",
                    spec.liveness_timeout_ns / 1_000_000
                ));
            }
            if watch.disowned() {
                report.disowned = true;
            }
        }
        if report.disowned {
            on_event("the gateway judged this engine dead and answers its orders itself: stopping");
            break;
        }
        // A dead gateway's last commands are finished first, so that no
        // order of a COD session rests after its sweep.
        if !sweeps_due.is_empty() && !agent.pending() {
            for pair in sweeps_due.drain(..) {
                let before = agent.engine().orders_live();
                let watch = &mut watches[pair];
                watch.cod_commands(|c| {
                    agent.inject(now, &c);
                    // Its events go nowhere (the reader is dead), so a
                    // step never waits for room; finish it regardless.
                    while agent.pending() && agent.do_work(now) == 0 {}
                });
                let canceled = before.saturating_sub(agent.engine().orders_live());
                report.cod_orders_canceled += canceled as u64;
                on_event(&format!(
                    "pair {pair}: {} cancel-on-disconnect sessions, {canceled} orders canceled",
                    watch.counters.cod_sessions
                ));
                work += 1;
            }
        }
        if work == 0 && stop.load(Ordering::Acquire) {
            break;
        }
        if work > 0 {
            idle_turns = 0;
        } else {
            idle_turns = idle_turns.saturating_add(1);
            if idle_turns < 1024 {
                std::hint::spin_loop();
            } else if idle_turns < 2048 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(ENGINE_PARK_MAX);
            }
        }
    }
    link.set_engine_stopped();
    report.counters = agent.counters.clone();
    report.bad_records = agent.bad_records();
    report.orders_live = agent.engine().orders_live();
    for w in &watches {
        report.gateways_lost += w.counters.gateway_lost;
        report.cod_sessions += w.counters.cod_sessions;
        report.cod_bad_entries += w.counters.cod_bad_entries;
    }
    Ok(report)
}

/// `ordergate engine`'s stop summary.
pub fn summary(report: &EngineProcessReport, ran: Duration) -> String {
    let c = &report.counters;
    let mut s = format!(
        "engine ran {:.1} s: {} commands, {} events, {} orders resting\n",
        ran.as_secs_f64(),
        c.commands,
        c.events,
        report.orders_live
    );
    s += &format!(
        "  link: {} gateways judged dead, {} cancel-on-disconnect sessions, {} orders canceled for them\n",
        report.gateways_lost, report.cod_sessions, report.cod_orders_canceled
    );
    if report.bad_records > 0 || report.cod_bad_entries > 0 {
        s += &format!(
            "  link: {} command records refused (bad enum or reserved byte), {} COD table entries refused\n",
            report.bad_records, report.cod_bad_entries
        );
    }
    if report.disowned {
        s += "  link: the gateway judged this engine dead and answered its orders ENGINE_UNAVAILABLE\n";
    }
    if c.price_rejects + c.notional_rejects + c.open_notional_rejects > 0 {
        s += &format!(
            "  risk: {} price out of band, {} notional, {} open notional\n",
            c.price_rejects, c.notional_rejects, c.open_notional_rejects
        );
    }
    s
}
