//! The `ordergate-bench` command line: `demo`, `load` (one run or a
//! `--sweep`) and `compare` (parsed by clap; `ordergate-bench --help` shows
//! every command and flag). `cargo run --release -- demo` at the
//! repository's root runs this binary (the root package's `default-run`).
//! The gateway's own commands (`serve`, `stat`, `audit`, `keys`, `admin`)
//! are the `ordergate` binary's.
//!
//! # Exit codes
//!
//! 0: done. 1: the run failed ([`EXIT_FAILURE`]). 2: the command line was
//! refused ([`EXIT_USAGE`], as clap's own usage errors). 3: `load` ran but
//! the run was not clean ([`EXIT_UNCLEAN_RUN`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use ordergate::auth::keys::MSGS_PER_SEC_MAX;
pub use ordergate::cli::{EXIT_FAILURE, EXIT_USAGE};
use ordergate::cli::{IdleArg, parse_duration};
use ordergate::config::{self, parse_socket_addr};
use ordergate::constants::{SESSIONS_PER_REACTOR_DEFAULT, SESSIONS_PER_REACTOR_MAX};
use ordergate::reactor::idle::IdleKind;

/// `load`: the run went, but was not clean (orders rejected or throttled,
/// sessions ended, replies lost); its report says so first. `--accept-rejects`
/// makes it 0.
pub const EXIT_UNCLEAN_RUN: u8 = 3;

/// `demo --seconds` when not given, and its bound: an hour is a soak test,
/// not a demo.
pub const DEMO_SECONDS_DEFAULT: u64 = 5;
pub const DEMO_SECONDS_MAX: u64 = 3_600;
/// `demo --sessions` when not given, and its bound: the demo gateway has
/// the default session slots (one reactor).
pub const DEMO_SESSIONS_DEFAULT: usize = 4;
pub const DEMO_SESSIONS_MAX: usize = SESSIONS_PER_REACTOR_DEFAULT;
/// Bound on `load --sessions`: one reactor's slots at most.
pub const LOAD_SESSIONS_MAX: usize = SESSIONS_PER_REACTOR_MAX;
/// Bound on `load --rate`: all sessions share one key, and no key may be
/// allowed more than `MSGS_PER_SEC_MAX`.
pub const LOAD_RATE_MAX: u64 = MSGS_PER_SEC_MAX as u64;

const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 the run failed; 2 the command line was refused; 3 \
(load) the run was not clean: requests rejected or throttled, sessions \
ended or replies lost, as the report's first lines say (--accept-rejects: 0).
The gateway itself is the `ordergate` binary (serve, stat, audit, keys, admin).";

/// Bench tools for ordergate: the demo, the load generator and capacity
/// sweep, and the echo / ordergate / HAProxy comparison.
#[derive(Debug, Parser)]
#[command(
    name = "ordergate-bench",
    version,
    flatten_help = true,
    after_help = EXIT_CODES,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process and matched at once: the size difference
// between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a gateway and a load generator against it on loopback, then print both sides' figures
    Demo(DemoArgs),
    /// Send signed order traffic to a running gateway and report latency and rejects
    Load(LoadArgs),
    /// Round trips, same run: bare TCP echo vs ordergate vs HAProxy (mode tcp) in front of the echo
    Compare(CompareArgs),
}

/// `ordergate-bench demo`: what `demo::run` takes.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct DemoArgs {
    /// How long the load runs, in seconds (1..=3600)
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEMO_SECONDS_DEFAULT,
        value_parser = clap::value_parser!(u64).range(1..=DEMO_SECONDS_MAX),
    )]
    pub seconds: u64,
    /// Client sessions (1..=256)
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEMO_SESSIONS_DEFAULT,
        value_parser = parse_demo_sessions,
    )]
    pub sessions: usize,
    /// Skip the closed-loop comparison against a bare TCP echo
    #[arg(long)]
    pub no_compare: bool,
}

/// `ordergate-bench load`: what `load::execute` takes, once [`plan_load`] has
/// checked that the flags agree.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct LoadArgs {
    /// Gateway address, e.g. 127.0.0.1:9000
    #[arg(long, value_name = "ADDR", value_parser = parse_socket_addr)]
    pub connect: SocketAddr,
    /// API key id every session logs on with
    #[arg(long, value_name = "N")]
    pub key_id: u64,
    /// File holding that key's secret (64 hex digits, as in the keys file), mode 0600
    #[arg(long, value_name = "FILE")]
    pub secret_file: PathBuf,
    /// Sessions to open (1..=16384)
    #[arg(long, value_name = "S", value_parser = parse_load_sessions)]
    pub sessions: usize,
    /// open: send at --rate on a fixed schedule, latency from the intended send (coordinated-omission corrected); closed: each session sends its next order when the previous one is answered
    #[arg(long, value_enum, value_name = "MODE", default_value_t = LoadModeArg::Open)]
    pub mode: LoadModeArg,
    /// Messages per second, all sessions together (1..=10000000) [open loop without --sweep: required]
    #[arg(
        long,
        value_name = "R",
        value_parser = clap::value_parser!(u64).range(1..=LOAD_RATE_MAX),
    )]
    pub rate: Option<u64>,
    /// How long to measure: a whole number and a unit, ms, s, m or h (e.g. 500ms, 10s, 2m) [required without --sweep]
    #[arg(
        long,
        value_name = "D",
        value_parser = parse_duration,
        required_unless_present = "sweep"
    )]
    pub duration: Option<Duration>,
    /// Time before the measurement: sent, not counted (0s for none)
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_warmup)]
    pub warmup: Duration,
    /// Load threads (1..=256) [default: one per core, at most one per session]
    #[arg(long, value_name = "N", value_parser = parse_load_threads)]
    pub threads: Option<usize>,
    /// Pin load thread i to the i-th of CORES (e.g. 2,3 or 4-7), or of the cores this process may use when none are given [default: not pinned]
    #[arg(long, value_name = "CORES", num_args = 0..=1, value_parser = parse_core_list)]
    pub pin: Option<Option<CoreList>>,
    /// Percent of each operation, summing to 100, e.g. new=60,cancel=30,replace=10 [default: new=50,cancel=35,replace=15]
    #[arg(long, value_name = "MIX", value_parser = crate::load::parse_mix)]
    pub mix: Option<crate::load::Mix>,
    /// Percent of new orders placed at the crossing price, so that they trade (0..=100) [default: 20]
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub crossing: Option<u32>,
    /// Write the round trip's percentile distribution here, HdrHistogram .hgrm text in µs (with --sweep: one file per step, FILE-<rate>.hgrm)
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write a JSON summary here: parameters (never the secret), counts, rejects by reason, rates, percentiles in ns (with --sweep: every step)
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw an SVG plot here: the percentile distribution (with --sweep: p50/p99/p99.9 against the offered rate, and the SLO)
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Capacity sweep: raise the offered rate step by step until a step's p99 passes --slo-p99, its achieved rate falls below 95% of offered, or the gateway refuses (THROTTLED, ENGINE_BUSY) or loses requests; report the highest sustainable rate
    #[arg(long, requires = "slo_p99")]
    pub sweep: bool,
    /// The p99 round trip a sustainable sweep step stays within: a number and a unit, ns, us, ms or s (e.g. 300us; a bare number is µs)
    #[arg(long, value_name = "LATENCY", value_parser = parse_latency, requires = "sweep")]
    pub slo_p99: Option<Duration>,
    /// Offered rate of the sweep's first step, orders/s
    #[arg(
        long,
        value_name = "R0",
        default_value_t = crate::load::SWEEP_START_DEFAULT,
        value_parser = clap::value_parser!(u64).range(1..=LOAD_RATE_MAX),
        requires = "sweep"
    )]
    pub sweep_start: u64,
    /// Each sweep step offers this times the last (1.05..=10)
    #[arg(
        long,
        value_name = "F",
        default_value_t = crate::load::SWEEP_FACTOR_DEFAULT,
        value_parser = parse_step_factor,
        requires = "sweep"
    )]
    pub sweep_step_factor: f64,
    /// Offered rate of the sweep's last step, orders/s
    #[arg(
        long,
        value_name = "RMAX",
        default_value_t = crate::load::SWEEP_MAX_DEFAULT,
        value_parser = clap::value_parser!(u64).range(1..=LOAD_RATE_MAX),
        requires = "sweep"
    )]
    pub sweep_max: u64,
    /// Measured time of each sweep step, after a settle of a fifth of it (at most 0.5 s)
    #[arg(
        long,
        value_name = "D",
        default_value = "3s",
        value_parser = parse_duration,
        requires = "sweep"
    )]
    pub step_duration: Duration,
    /// Exit 0 even when the run was not clean (requests rejected or throttled, sessions ended, replies lost): for a run meant to test the gateway's refusals. The report still says so first
    #[arg(long)]
    pub accept_rejects: bool,
}

/// `ordergate-bench compare`: what `compare::run_compare` takes (see
/// `compare.rs` for the method).
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct CompareArgs {
    /// Recorded round trips per row per round (1..=100000)
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::compare::ROUND_TRIPS_DEFAULT,
        value_parser = parse_compare_round_trips,
    )]
    pub round_trips: usize,
    /// Rounds the rows take turns in (1..=1000)
    #[arg(
        long,
        value_name = "R",
        default_value_t = crate::compare::ROUNDS_DEFAULT,
        value_parser = parse_compare_rounds,
    )]
    pub rounds: usize,
    /// HAProxy binary [default: `haproxy` on PATH, installed with apt-get if missing and root; a path that does not exist skips row (c)]
    #[arg(long, value_name = "PATH")]
    pub haproxy: Option<PathBuf>,
    /// The gateway's idle strategy [default: backoff: busy-spin steals a core from the other rows on a small host]
    #[arg(long, value_enum, value_name = "IDLE")]
    pub idle: Option<IdleArg>,
    /// The one CPU every thread of the comparison and HAProxy run on, so all rows see the same conditions; `any` lets the scheduler place them (needed for --idle busy-spin) [default: the last CPU this process may use]
    #[arg(long, value_name = "N|any", value_parser = crate::compare::CpuChoice::parse)]
    pub cpu: Option<crate::compare::CpuChoice>,
    /// Give the gateway's ring an SQPOLL thread (no kernel entry per request; it spins on a CPU of its own: see --sqpoll-cpu)
    #[arg(long)]
    pub sqpoll: bool,
    /// The SQPOLL thread's CPU (implies --sqpoll); needed with a pinned --cpu, and must differ from it
    #[arg(long, value_name = "N")]
    pub sqpoll_cpu: Option<usize>,
    /// Also write every number to FILE as JSON
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

fn parse_compare_round_trips(s: &str) -> Result<usize, String> {
    parse_count(s, crate::compare::ROUND_TRIPS_MAX)
}

fn parse_compare_rounds(s: &str) -> Result<usize, String> {
    parse_count(s, crate::compare::ROUNDS_MAX)
}

/// `load --mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LoadModeArg {
    /// At --rate on a fixed schedule; latency from the intended send
    Open,
    /// One request outstanding per session; latency from the send
    Closed,
}

impl From<LoadModeArg> for crate::load::Mode {
    fn from(mode: LoadModeArg) -> crate::load::Mode {
        match mode {
            LoadModeArg::Open => crate::load::Mode::Open,
            LoadModeArg::Closed => crate::load::Mode::Closed,
        }
    }
}

/// `load --pin CORES`: core ids (a named type, so that clap takes the list
/// as one value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreList(pub Vec<usize>);

/// Parses the arguments of this process and runs the command.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Demo(args) => run_demo(args),
        Command::Load(args) => run_load(args),
        Command::Compare(args) => run_compare(&args),
    }
}

/// `ordergate-bench demo`: a gateway on loopback with a fresh key, driven for
/// `--seconds` by `--sessions` sessions, then the report.
pub fn run_demo(args: DemoArgs) -> ExitCode {
    let params = crate::demo::DemoParams {
        seconds: args.seconds,
        sessions: args.sessions,
        compare: !args.no_compare,
        ..crate::demo::DemoParams::default()
    };
    match crate::demo::run_demo(&params) {
        Ok(report) => {
            report.print();
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_FAILURE, format!("demo: {e}")),
    }
}

/// `ordergate-bench compare`: the report on stdout (and `--json`); exit 0 also
/// when row (c) was skipped (the report says why), 1 when a row failed.
pub fn run_compare(args: &CompareArgs) -> ExitCode {
    use crate::compare::{CompareParams, HaproxyBinary, Install, locate_haproxy};
    let mut params = CompareParams {
        round_trips: args.round_trips,
        rounds: args.rounds,
        idle: args
            .idle
            .map_or(crate::compare::IDLE_DEFAULT, IdleKind::from),
        cpu: crate::compare::CpuChoice::resolve(args.cpu),
        sqpoll: (args.sqpoll || args.sqpoll_cpu.is_some()).then_some(args.sqpoll_cpu),
        ..CompareParams::new(HaproxyBinary::Missing {
            note: String::new(),
        })
    };
    // Refused before looking for HAProxy, so a bad command installs nothing.
    if let Err(e) = crate::compare::check(&params) {
        return fail(EXIT_USAGE, format!("compare: {e}"));
    }
    params.haproxy = locate_haproxy(args.haproxy.as_deref(), Install::IfRoot);
    let report = match crate::compare::run_compare(&params) {
        Ok(report) => report,
        Err(e) => return fail(EXIT_FAILURE, format!("compare: {e}")),
    };
    print!("{}", report.render());
    if let Some(path) = &args.json
        && let Err(e) = std::fs::write(path, report.to_json())
    {
        return fail(EXIT_FAILURE, format!("compare: {}: {e}", path.display()));
    }
    ExitCode::SUCCESS
}

/// `ordergate-bench load`: signed order traffic against a running gateway.
pub fn run_load(args: LoadArgs) -> ExitCode {
    let mut plan = match plan_load(&args, config::available_cores().as_deref()) {
        Ok(plan) => plan,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    plan.params.secret = match crate::load::read_secret_file(&args.secret_file) {
        Ok(secret) => secret,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    plan.params.progress = true;
    if let Err(e) = plan.outputs.prepare(plan.sweep.is_some()) {
        return fail(EXIT_USAGE, e);
    }
    match crate::load::execute(&plan.params, plan.sweep.as_ref(), &plan.outputs) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) if args.accept_rejects => ExitCode::SUCCESS,
        Ok(false) => fail(
            EXIT_UNCLEAN_RUN,
            "load: the run was not clean, as the report's first lines say (exit 3; --accept-rejects to exit 0 when that was the point)",
        ),
        Err(e) => fail(EXIT_FAILURE, format!("load: {e}")),
    }
}

/// What `ordergate-bench load` runs, once its flags agree. The secret is not in
/// it yet (all zeros): it is read from its file after the flags are checked.
#[derive(Debug)]
pub struct LoadPlan {
    pub params: crate::load::LoadParams,
    pub sweep: Option<crate::load::SweepParams>,
    pub outputs: crate::load::Outputs,
}

/// Checks what clap cannot about `load`'s flags and turns them into a
/// plan. `available` is what [`config::available_cores`] says (a parameter
/// so tests can give any host).
///
/// # Errors
///
/// The message to print; the exit code is [`EXIT_USAGE`].
pub fn plan_load(args: &LoadArgs, available: Option<&[usize]>) -> Result<LoadPlan, String> {
    use crate::load::{LoadParams, Mode, SweepParams};
    let mode = Mode::from(args.mode);
    let sweep = match (args.sweep, args.slo_p99) {
        (true, Some(slo_p99)) => Some(SweepParams {
            slo_p99,
            start: args.sweep_start,
            factor: args.sweep_step_factor,
            max: args.sweep_max,
            step_duration: args.step_duration,
        }),
        _ => None,
    };
    if mode == Mode::Closed && args.rate.is_some() {
        return Err(
            "--rate is the offered rate of an open loop; a closed loop (--mode closed) sends each session's next order when the previous one is answered"
                .into(),
        );
    }
    if sweep.is_some() {
        if args.rate.is_some() {
            return Err(
                "--sweep sets the rate of each step: use --sweep-start and --sweep-max, not --rate"
                    .into(),
            );
        }
        if args.duration.is_some() {
            return Err("--sweep times each step with --step-duration, not --duration".into());
        }
    }
    let rate = match (mode, &sweep, args.rate) {
        (Mode::Open, None, None) => {
            return Err("the open loop needs --rate R (orders per second), or --sweep".into());
        }
        (_, _, Some(rate)) => rate,
        (_, Some(sweep), None) => sweep.start,
        (Mode::Closed, None, None) => args.sessions as u64,
    };
    let duration = match (&sweep, args.duration) {
        (Some(sweep), _) => sweep.step_duration,
        (None, Some(duration)) => duration,
        (None, None) => return Err("give --duration D (e.g. 10s), or --sweep".into()),
    };
    let mut mix = args.mix.unwrap_or_default();
    if let Some(crossing) = args.crossing {
        mix.crossing = crossing;
    }
    let pin_cores = match (&args.pin, available) {
        (None, _) => Vec::new(),
        (Some(None), Some(available)) => available.to_vec(),
        (Some(None), None) => {
            return Err("--pin: this host does not say which cores this process may use; name them, e.g. --pin 2,3".into());
        }
        (Some(Some(CoreList(cores))), available) => {
            if let Some(available) = available
                && let Some(bad) = cores.iter().find(|c| !available.contains(c))
            {
                return Err(format!(
                    "--pin: core {bad} is not one this process may run on ({})",
                    available
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            cores.clone()
        }
    };
    let params = LoadParams {
        sessions: args.sessions,
        mode,
        rate,
        duration,
        warmup: args.warmup,
        mix,
        threads: args.threads.unwrap_or(0),
        pin_cores,
        ..LoadParams::new(args.connect, args.key_id, [0; 32])
    };
    params.check()?;
    if let Some(sweep) = &sweep {
        sweep.check(&params)?;
    }
    let outputs = crate::load::Outputs {
        hgrm: args.hgrm.clone(),
        json: args.json.clone(),
        plot: args.plot.clone(),
    };
    outputs.check()?;
    Ok(LoadPlan {
        params,
        sweep,
        outputs,
    })
}

/// `load --warmup`: as [`parse_duration`], and zero is allowed ("0s").
fn parse_warmup(text: &str) -> Result<Duration, String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let zero = !digits.is_empty() && digits.bytes().all(|b| b == b'0');
    if zero && parse_duration(&format!("1{}", &text[digits.len()..])).is_ok() {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

/// `load --slo-p99`: a whole or decimal number and a unit, `ns`, `us` (or
/// `µs`), `ms` or `s`; a bare number is µs (as tuning/CAPACITY.md writes
/// it). Above zero, at most a minute.
fn parse_latency(text: &str) -> Result<Duration, String> {
    const FORM: &str = "give a number and a unit: ns, us, ms or s (e.g. 300us)";
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a latency; {FORM}"))?;
    let ns_per_unit = match unit {
        "ns" => 1.0,
        "" | "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return Err(format!("unknown unit `{unit}`; {FORM}")),
    };
    let ns = value * ns_per_unit;
    if !(1.0..=60e9).contains(&ns) {
        return Err("must be at least 1ns and at most 60s".to_owned());
    }
    Ok(Duration::from_nanos(ns.round() as u64))
}

fn parse_step_factor(text: &str) -> Result<f64, String> {
    use crate::load::{SWEEP_FACTOR_MAX, SWEEP_FACTOR_MIN};
    match text.parse::<f64>() {
        Ok(f) if (SWEEP_FACTOR_MIN..=SWEEP_FACTOR_MAX).contains(&f) => Ok(f),
        _ => Err(format!(
            "must be a number in {SWEEP_FACTOR_MIN}..={SWEEP_FACTOR_MAX}"
        )),
    }
}

fn parse_load_threads(text: &str) -> Result<usize, String> {
    parse_count(text, crate::load::THREADS_MAX)
}

fn parse_core_list(text: &str) -> Result<CoreList, String> {
    crate::load::parse_cores(text).map(CoreList)
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ordergate-bench: {message}");
    ExitCode::from(code)
}

fn parse_count(text: &str, max: usize) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number in 1..={max}")),
    }
}

fn parse_demo_sessions(text: &str) -> Result<usize, String> {
    parse_count(text, DEMO_SESSIONS_MAX)
}

fn parse_load_sessions(text: &str) -> Result<usize, String> {
    parse_count(text, LOAD_SESSIONS_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("ordergate-bench").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn demo_flags_parse_with_defaults() {
        let Command::Demo(args) = cli(&["demo"]).unwrap() else {
            panic!("not demo")
        };
        assert_eq!(
            args,
            DemoArgs {
                seconds: DEMO_SECONDS_DEFAULT,
                sessions: DEMO_SESSIONS_DEFAULT,
                no_compare: false,
            }
        );
        let Command::Demo(args) = cli(&["demo", "--seconds", "3", "--sessions", "8"]).unwrap()
        else {
            panic!("not demo")
        };
        assert_eq!(
            args,
            DemoArgs {
                seconds: 3,
                sessions: 8,
                no_compare: false,
            }
        );
        for bad in [
            ["--seconds", "0"],
            ["--seconds", "3601"],
            ["--sessions", "0"],
            ["--sessions", "257"],
            ["--sessions", "x"],
        ] {
            assert!(cli(&["demo", bad[0], bad[1]]).is_err(), "{bad:?}");
        }
    }

    const LOAD_BASE: [&str; 13] = [
        "load",
        "--connect",
        "127.0.0.1:9000",
        "--key-id",
        "1001",
        "--secret-file",
        "s.hex",
        "--sessions",
        "16",
        "--rate",
        "5000",
        "--duration",
        "2m",
    ];

    fn load_args(extra: &[&str]) -> Result<LoadArgs, clap::Error> {
        let args: Vec<&str> = LOAD_BASE.iter().chain(extra).copied().collect();
        cli(&args).map(|c| match c {
            Command::Load(args) => args,
            _ => panic!("not load"),
        })
    }

    /// `LOAD_BASE` without `--rate R` and `--duration D`, plus `extra`.
    fn load_args_bare(extra: &[&str]) -> Result<LoadArgs, clap::Error> {
        let args: Vec<&str> = LOAD_BASE[..9].iter().chain(extra).copied().collect();
        cli(&args).map(|c| match c {
            Command::Load(args) => args,
            _ => panic!("not load"),
        })
    }

    #[test]
    fn load_flags_parse() {
        let args = load_args(&[]).unwrap();
        assert_eq!(
            args,
            LoadArgs {
                connect: "127.0.0.1:9000".parse().unwrap(),
                key_id: 1001,
                secret_file: "s.hex".into(),
                sessions: 16,
                mode: LoadModeArg::Open,
                rate: Some(5000),
                duration: Some(Duration::from_secs(120)),
                warmup: Duration::from_secs(1),
                threads: None,
                pin: None,
                mix: None,
                crossing: None,
                hgrm: None,
                json: None,
                plot: None,
                sweep: false,
                slo_p99: None,
                sweep_start: crate::load::SWEEP_START_DEFAULT,
                sweep_step_factor: crate::load::SWEEP_FACTOR_DEFAULT,
                sweep_max: crate::load::SWEEP_MAX_DEFAULT,
                step_duration: Duration::from_secs(3),
                accept_rejects: false,
            }
        );
        let plan = plan_load(&args, None).unwrap();
        assert_eq!(plan.params.rate, 5000);
        assert_eq!(plan.params.mix, crate::load::Mix::default());
        assert!(plan.sweep.is_none() && plan.params.pin_cores.is_empty());
        // connect, key id, secret file, sessions, duration: required by clap.
        for skip in (1..LOAD_BASE.len()).step_by(2) {
            let args: Vec<&str> = LOAD_BASE
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip && *i != skip + 1)
                .map(|(_, a)| *a)
                .collect();
            let Ok(Command::Load(args)) = cli(&args) else {
                assert!(
                    LOAD_BASE[skip] != "--rate",
                    "--rate is checked by plan_load"
                );
                continue;
            };
            assert_eq!(
                LOAD_BASE[skip], "--rate",
                "accepted without {}",
                LOAD_BASE[skip]
            );
            let e = plan_load(&args, None).unwrap_err();
            assert!(e.contains("--rate R"), "{e}");
        }
        for (flag, bad) in [
            ("--rate", "0"),
            ("--rate", "10000001"),
            ("--sessions", "0"),
            ("--sessions", "16385"),
            ("--duration", "10"),
            ("--duration", "0s"),
            ("--key-id", "-1"),
        ] {
            let mut args = LOAD_BASE.to_vec();
            let at = args.iter().position(|a| *a == flag).unwrap();
            args[at + 1] = bad;
            assert!(cli(&args).is_err(), "{flag} {bad}");
        }
    }

    #[test]
    fn load_tool_flags_parse() {
        let args = load_args(&[
            "--mode",
            "open",
            "--threads",
            "2",
            "--pin",
            "0-1",
            "--mix",
            "new=60,cancel=30,replace=10",
            "--crossing",
            "5",
            "--warmup",
            "0s",
            "--hgrm",
            "out.hgrm",
            "--json",
            "out.json",
            "--plot",
            "out.svg",
        ])
        .unwrap();
        assert_eq!(args.pin, Some(Some(CoreList(vec![0, 1]))));
        assert_eq!(args.warmup, Duration::ZERO);
        let plan = plan_load(&args, Some(&[0, 1, 2])).unwrap();
        let p = &plan.params;
        assert_eq!((p.threads, p.warmup), (2, Duration::ZERO));
        assert_eq!(p.pin_cores, vec![0, 1]);
        assert_eq!(
            p.mix,
            crate::load::Mix {
                new: 60,
                cancel: 30,
                replace: 10,
                crossing: 5
            }
        );
        assert_eq!(plan.outputs.hgrm, Some(PathBuf::from("out.hgrm")));
        assert_eq!(plan.outputs.json, Some(PathBuf::from("out.json")));
        assert_eq!(plan.outputs.plot, Some(PathBuf::from("out.svg")));
        // A core this process may not use, and --pin alone: every core it may.
        let e = plan_load(&args, Some(&[0])).unwrap_err();
        assert!(e.contains("core 1 is not one"), "{e}");
        let args = load_args(&["--pin", "--threads", "3"]).unwrap();
        assert_eq!(args.pin, Some(None));
        assert_eq!(
            plan_load(&args, Some(&[2, 3])).unwrap().params.pin_cores,
            vec![2, 3]
        );
        assert!(plan_load(&args, None).unwrap_err().contains("--pin 2,3"));

        // Mix errors name the bad part, through clap.
        let e = load_args(&["--mix", "new=60,cancle=40"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`cancle=40`") && e.contains("--mix"), "{e}");
        let e = load_args(&["--mix", "new=60,cancel=30"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("90%"), "{e}");
        for (flag, bad) in [
            ("--mode", "half"),
            ("--crossing", "101"),
            ("--threads", "0"),
            ("--threads", "257"),
            ("--warmup", "1"),
            ("--pin", "3-1"),
        ] {
            assert!(load_args(&[flag, bad]).is_err(), "{flag} {bad}");
        }

        // Closed loop: no rate.
        let args = load_args_bare(&["--mode", "closed", "--duration", "1s"]).unwrap();
        let plan = plan_load(&args, None).unwrap();
        assert_eq!(plan.params.mode, crate::load::Mode::Closed);
        let args = load_args(&["--mode", "closed"]).unwrap();
        assert!(plan_load(&args, None).unwrap_err().contains("closed loop"));
    }

    #[test]
    fn sweep_flags_parse_and_agree() {
        let args = load_args_bare(&[
            "--sweep",
            "--slo-p99",
            "300us",
            "--sweep-start",
            "2000",
            "--sweep-step-factor",
            "2",
            "--sweep-max",
            "64000",
            "--step-duration",
            "500ms",
        ])
        .unwrap();
        let plan = plan_load(&args, None).unwrap();
        let sweep = plan.sweep.unwrap();
        assert_eq!(sweep.slo_p99, Duration::from_micros(300));
        assert_eq!(sweep.rates(), vec![2000, 4000, 8000, 16000, 32000, 64000]);
        assert_eq!(sweep.step_duration, Duration::from_millis(500));
        assert_eq!(plan.params.duration, Duration::from_millis(500));
        // The defaults, and CAPACITY.md's bare number of µs.
        let args = load_args_bare(&["--sweep", "--slo-p99", "50"]).unwrap();
        let sweep = plan_load(&args, None).unwrap().sweep.unwrap();
        assert_eq!(
            sweep,
            crate::load::SweepParams::new(Duration::from_micros(50))
        );

        // --sweep needs an SLO; the SLO and the sweep-* flags need --sweep.
        assert!(load_args_bare(&["--sweep"]).is_err());
        for extra in [
            ["--slo-p99", "300us"],
            ["--sweep-start", "100"],
            ["--sweep-max", "100"],
            ["--sweep-step-factor", "2"],
            ["--step-duration", "1s"],
        ] {
            assert!(load_args(&extra).is_err(), "{extra:?} without --sweep");
        }
        // --rate, --duration and the closed loop do not go with a sweep.
        let e = plan_load(&load_args(&["--sweep", "--slo-p99", "1ms"]).unwrap(), None);
        assert!(e.unwrap_err().contains("--sweep-start"));
        let args = load_args_bare(&["--sweep", "--slo-p99", "1ms", "--duration", "1s"]).unwrap();
        assert!(
            plan_load(&args, None)
                .unwrap_err()
                .contains("--step-duration")
        );
        let args = load_args_bare(&["--sweep", "--slo-p99", "1ms", "--mode", "closed"]).unwrap();
        assert!(plan_load(&args, None).unwrap_err().contains("open loop"));
        let args = load_args_bare(&["--sweep", "--slo-p99", "1ms", "--sweep-start", "8"]).unwrap();
        assert!(plan_load(&args, None).unwrap_err().contains("16 sessions"));
        for bad in ["0", "x", "5min", "61s", "-1us"] {
            assert!(
                load_args_bare(&["--sweep", "--slo-p99", bad]).is_err(),
                "--slo-p99 {bad}"
            );
        }
        for bad in ["1", "1.01", "11", "x"] {
            assert!(
                load_args_bare(&["--sweep", "--slo-p99", "1ms", "--sweep-step-factor", bad])
                    .is_err(),
                "factor {bad}"
            );
        }
    }

    #[test]
    fn latencies_and_warmups() {
        assert_eq!(parse_latency("300us"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_latency("300µs"), Ok(Duration::from_micros(300)));
        assert_eq!(parse_latency("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_latency("250ns"), Ok(Duration::from_nanos(250)));
        assert_eq!(parse_latency("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_latency("50"), Ok(Duration::from_micros(50)));
        assert!(parse_latency("3 ms").unwrap_err().contains("unit"));
        assert_eq!(parse_warmup("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_warmup("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_warmup("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_warmup("0").is_err());
        assert!(parse_warmup("0x").is_err());
    }
}
