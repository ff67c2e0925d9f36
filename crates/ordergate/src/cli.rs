//! The `ordergate` command line: `serve`, `stat`, `audit`, `keys` and
//! `admin` (parsed by clap; `ordergate --help` shows every command and
//! flag). The bench tools (`demo`, `load`, `compare`) are the
//! `ordergate-bench` binary.
//!
//! # `serve`
//!
//! 1. The config file (`--config`, else every default: see `config.rs`),
//!    then `--listen`, `--keys`, `--idle`, `--audit-journal` and
//!    `--stats-file` over it.
//! 2. No keys file either way, a bad config, or a pinned core this process
//!    may not run on: exit 2, naming the file, the field or the flag.
//! 3. [`KeyTable::load`]: its error as is, exit 2. No key for the
//!    environment the gateway serves: exit 2 (nobody could log on).
//! 4. SIGINT and SIGTERM are caught from here on, so one that arrives while
//!    the gateway starts still stops it cleanly once it runs.
//! 5. The admin socket ([`crate::admin::AdminSocket::bind`], the default
//!    path if no `--admin-socket`): a live gateway on it, a directory others
//!    can write, anything but a stale socket at the path: exit 1, naming the
//!    path (and the live gateway's pid). Before the gateway starts, so a
//!    second gateway opens no listener and no journal.
//! 6. [`Gateway::start`]: its error, exit 1 (another process listening on
//!    the port is one, naming its pid). Else one line on stdout,
//!    `ordergate serving on ADDR (N reactors, engine …, idle …)`.
//! 7. The first signal calls [`StopHandle::stop`]; a second exits at once
//!    (128 + signal) in case stopping hangs. When the gateway has stopped,
//!    the summary of its report goes to stdout: exit 0.
//!
//! # Exit codes
//!
//! 0: done. 1: the gateway could not start or run ([`EXIT_FAILURE`]); for
//! `admin`, the answer was `error:` (refused, or it did nothing).
//! 2: the command line, the config or the keys were refused
//! ([`EXIT_USAGE`], as clap's own usage errors).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::auth::keys::{KeyTable, KeysFile, MSGS_PER_SEC_MAX};
use crate::config::{self, Config, ConfigError, parse_socket_addr};
use crate::gateway::{
    EnginePlacement, Gateway, GatewayReport, GatewaySpec, StopHandle, UringCounters,
};
use crate::reactor::idle::IdleKind;
use crate::telemetry::prometheus::PrometheusListener;
use crate::wire::codes::{Environment, LogonRejectReason, RejectReason, TerminateReason};

use crate::args::short_ns;
pub use crate::args::{DURATION_MAX, EXIT_FAILURE, EXIT_USAGE, parse_duration};

const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 the gateway could not start or failed (for `admin`: \
the request was refused or did nothing, e.g. a key not in the table); 2 the \
command line, the config file or the keys file was refused.
Config file reference: docs/CONFIG.md; example: tuning/ordergate.example.toml.";

/// Order-entry gateway for colocated trading: OGP v1 over TCP, io_uring
/// reactors, embedded matching engine.
#[derive(Debug, Parser)]
#[command(
    name = "ordergate",
    version,
    flatten_help = true,
    after_help = EXIT_CODES,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway until SIGINT or SIGTERM, then print what it did
    Serve(ServeArgs),
    /// Control a running gateway through its admin socket
    Admin(AdminArgs),
    /// Make API keys: `keys new` prints a ready [[key]] entry with a fresh secret
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Check or print an audit journal: `audit verify FILE [--expect-records N] [--expect-last HASH] [--anchor-key KEYFILE [--expect-closed]]`, `audit show FILE [--json]`
    Audit {
        #[command(subcommand)]
        command: crate::journal::AuditCommand,
    },
    /// Show a running gateway's counters from its stats file: a live table, or one snapshot with --once
    Stat(crate::telemetry::stat::StatArgs),
    /// Run the matching engine as its own process, serving a gateway over shared memory (`serve --engine shm:PATH`) until SIGINT or SIGTERM
    Engine(EngineArgs),
}

/// `ordergate admin`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct AdminArgs {
    /// The gateway's admin socket, before or after the request [default: admin.sock in $RUNTIME_DIRECTORY, else /run/ordergate (root, or its owner), else $XDG_RUNTIME_DIR/ordergate, else ~/.local/state/ordergate: as serve]
    #[arg(long, value_name = "PATH", global = true)]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub action: AdminAction,
}

/// `ordergate keys`.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum KeysAction {
    /// Print a ready [[key]] entry whose secret comes from the OS random source
    New {
        /// Key id [default: random]
        #[arg(long)]
        id: Option<u64>,
        /// Comma-separated scopes: trade, cancel, read (there is no withdrawal scope)
        #[arg(long, default_value = "trade,cancel", value_delimiter = ',')]
        scopes: Vec<String>,
        /// production or sandbox
        #[arg(long, default_value = "production")]
        environment: String,
        /// Comma-separated addresses or networks the key may connect from, e.g. 127.0.0.1 or 203.0.113.0/24 [default: none; the key connects from nowhere until `allow` is set]
        #[arg(long, value_name = "CIDRS", value_delimiter = ',')]
        allow: Vec<String>,
        /// The key's rate, messages per second for all its sessions together; `ordergate-bench load --rate R` needs R here
        #[arg(
            long,
            value_name = "N",
            default_value_t = crate::constants::MSGS_PER_SEC_DEFAULT,
            value_parser = clap::value_parser!(u32).range(1..=i64::from(MSGS_PER_SEC_MAX)),
        )]
        msgs_per_sec: u32,
        /// The key's burst, messages
        #[arg(
            long,
            value_name = "N",
            default_value_t = crate::constants::BURST_DEFAULT,
            value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::auth::keys::BURST_MAX)),
        )]
        burst: u32,
        /// Also write the secret (64 hex digits) to this new file, mode 0600, for `ordergate-bench load --secret-file` (an existing file is not overwritten)
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
    },
}

/// What `ordergate admin` asks.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum AdminAction {
    /// Re-read the keys file (also SIGHUP); an invalid file keeps the old table
    Reload,
    /// Revoke a key for the rest of the run: its sessions end, its orders are canceled
    Revoke {
        /// Key id
        key: u64,
    },
    /// The kill switch: revoke the key, end every session of it, cancel all its orders
    Kill {
        /// Key id
        key: u64,
    },
    /// List each key's live sessions
    Sessions,
}

/// `ordergate serve`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:9000 [overrides `listen`; default 127.0.0.1:0, port chosen by the kernel]
    #[arg(long, value_name = "ADDR", value_parser = parse_socket_addr)]
    pub listen: Option<SocketAddr>,
    /// Keys file, mode 0600 [overrides `keys`; required here or in the config file]
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Config file, TOML (docs/CONFIG.md) [default: every setting at its default]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What a reactor does after a turn without work [overrides `reactors.idle`; default busy-spin]
    #[arg(long, value_enum, value_name = "IDLE")]
    pub idle: Option<IdleArg>,
    /// Admin socket for `ordergate admin`, created mode 0600; refused if a gateway answers on it or its directory is writable by others [default: admin.sock in $RUNTIME_DIRECTORY, else /run/ordergate (root, or its owner), else $XDG_RUNTIME_DIR/ordergate, else ~/.local/state/ordergate, made 0700]
    #[arg(long, value_name = "PATH")]
    pub admin_socket: Option<PathBuf>,
    /// Tamper-evident audit journal, created and preallocated if missing; a corrupt one stops the start [overrides `audit_journal`; default ordergate-audit.journal]
    #[arg(long, value_name = "FILE")]
    pub audit_journal: Option<PathBuf>,
    /// Stats file the reactors publish their counters to, read by `ordergate stat` (docs/STATS.md) [overrides `stats_file`; default /dev/shm/ordergate-stats]
    #[arg(long, value_name = "PATH")]
    pub stats_file: Option<PathBuf>,
    /// Serve GET /metrics (Prometheus text format) on this address, e.g. 127.0.0.1:9464 [default: off]
    #[arg(long, value_name = "ADDR", value_parser = parse_socket_addr)]
    pub prometheus: Option<SocketAddr>,
    /// Where the matching engine is: in-process, or shm:PATH for an `ordergate engine --shm PATH` on this host [overrides `engine.link`; default in-process]
    #[arg(long, value_name = "LINK", value_parser = crate::gateway::EngineLink::parse)]
    pub engine: Option<crate::gateway::EngineLink>,
}

/// `ordergate engine`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct EngineArgs {
    /// The link file to create (replaced if it exists), e.g. /dev/shm/ordergate-engine; gateways attach with `serve --engine shm:PATH`
    #[arg(long, value_name = "PATH")]
    pub shm: PathBuf,
    /// Config file, TOML: its [engine] table (instruments, collars, orders) and `reactors.count` and `reactors.ring_capacity` are used [default: every setting at its default]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ring pairs: the most reactors the gateway may run [overrides `reactors.count`]
    #[arg(long, value_name = "N")]
    pub reactors: Option<usize>,
}

/// `--idle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IdleArg {
    /// Never give up the core: isolated cores, lowest latency
    BusySpin,
    /// Adaptive spin, then block in the enter that sends the answers (one kernel entry per request): shared or small hosts
    Backoff,
}

impl From<IdleArg> for IdleKind {
    fn from(idle: IdleArg) -> IdleKind {
        match idle {
            IdleArg::BusySpin => IdleKind::BusySpin,
            IdleArg::Backoff => IdleKind::Backoff,
        }
    }
}

/// Parses the arguments of this process and runs the command.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(&args),
        Command::Engine(args) => run_engine(&args),
        Command::Admin(args) => run_admin(&args),
        Command::Keys {
            action:
                KeysAction::New {
                    id,
                    scopes,
                    environment,
                    allow,
                    msgs_per_sec,
                    burst,
                    secret_file,
                },
        } => keys_new(&NewKey {
            id,
            scopes,
            environment,
            allow,
            msgs_per_sec,
            burst,
            secret_file,
        }),
        Command::Audit { command } => {
            let code =
                crate::journal::audit_run(&command, &mut std::io::stdout(), &mut std::io::stderr());
            ExitCode::from(code.clamp(0, 255) as u8)
        }
        Command::Stat(args) => crate::telemetry::stat::run(&args),
    }
}

/// What `ordergate keys new` makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewKey {
    pub id: Option<u64>,
    pub scopes: Vec<String>,
    pub environment: String,
    pub allow: Vec<String>,
    pub msgs_per_sec: u32,
    pub burst: u32,
    pub secret_file: Option<PathBuf>,
}

/// The `[[key]]` entry `keys new` prints for `key`: the entry
/// `new_key_entry_toml` writes, with the key's rate, and its `allow` list
/// in place of the commented example when one was given. Checked the way
/// `serve` will read it; an error names the flag that caused it (there is
/// no keys file yet to name).
///
/// # Errors
///
/// `--FLAG: what is wrong`.
pub fn new_key_entry(
    key: &NewKey,
    id: u64,
    secret: &crate::auth::secret::Secret,
) -> Result<zeroize::Zeroizing<String>, String> {
    let names: Vec<&str> = key.scopes.iter().map(String::as_str).collect();
    let entry = zeroize::Zeroizing::new(crate::auth::keys::new_key_entry_toml(
        id,
        &names,
        &key.environment,
        secret,
    ));
    let split = entry.find("# Without `allow`").unwrap_or(entry.len());
    let mut text = zeroize::Zeroizing::new(String::with_capacity(entry.len() + 256));
    text.push_str(&entry[..split]);
    let _ = writeln!(
        text,
        "# The key's rate, all its sessions together (`ordergate-bench load --rate R` needs R\n\
         # here, and each session also has the gateway's [session] limit).\n\
         msgs_per_sec = {}\nburst = {}",
        key.msgs_per_sec, key.burst
    );
    if key.allow.is_empty() {
        text.push_str(&entry[split..]);
    } else {
        if let Some(bad) = key
            .allow
            .iter()
            .find(|a| a.chars().any(|c| c.is_control() || c == '"' || c == '\\'))
        {
            return Err(format!(
                "keys new: --allow: {bad:?} is not an address or network"
            ));
        }
        let list: Vec<String> = key.allow.iter().map(|a| format!("\"{a}\"")).collect();
        let _ = writeln!(text, "allow = [{}]", list.join(", "));
    }
    // The flag each line of the entry comes from, to name it in an error.
    let flag_of_line = |line: usize| {
        let field = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
        [
            ("scopes", "--scopes"),
            ("environment", "--environment"),
            ("allow", "--allow"),
            ("msgs_per_sec", "--msgs-per-sec"),
            ("burst", "--burst"),
            ("id", "--id"),
        ]
        .iter()
        .find(|(f, _)| field.starts_with(&format!("{f} =")))
        .map_or("the entry", |(_, flag)| flag)
    };
    match KeyTable::from_toml_str(&text, "<keys new>") {
        Ok(_) => Ok(text),
        Err(e) => Err(format!(
            "keys new: {}: {}",
            e.location().map_or("the entry", |l| flag_of_line(l.line)),
            e.kind()
        )),
    }
}

/// Writes `secret` as 64 hex digits and a newline to the new file `path`,
/// created mode 0600 (never an existing file).
fn write_secret_file(path: &Path, secret: &crate::auth::secret::Secret) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // Encoded into a buffer wiped on drop: the file's text is the secret.
    let mut hex = zeroize::Zeroizing::new([b'\n'; crate::auth::secret::SECRET_HEX_LEN + 1]);
    hex::encode_to_slice(
        secret.expose(),
        &mut hex[..crate::auth::secret::SECRET_HEX_LEN],
    )
    .expect("64 digits for 32 bytes");
    let name = path.display();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "keys new: --secret-file {name}: the file exists; it is not overwritten (remove it, or name a new file)"
            ),
            _ => format!("keys new: --secret-file {name}: cannot create it: {e}"),
        })?;
    file.write_all(&hex[..])
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("keys new: --secret-file {name}: cannot write it: {e}"))
}

fn keys_new(key: &NewKey) -> ExitCode {
    let seed = match crate::gateway::os_random_32() {
        Ok(seed) => seed,
        Err(e) => {
            return fail(
                EXIT_FAILURE,
                format!("cannot read the OS random source: {e}"),
            );
        }
    };
    let id = key
        .id
        .unwrap_or_else(|| u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")) >> 12);
    let mut secret_bytes = match crate::gateway::os_random_32() {
        Ok(s) => s,
        Err(e) => {
            return fail(
                EXIT_FAILURE,
                format!("cannot read the OS random source: {e}"),
            );
        }
    };
    let secret = crate::auth::secret::Secret::from_bytes(secret_bytes);
    zeroize::Zeroize::zeroize(&mut secret_bytes);
    // Checked the way serve will read it, so a bad scope, environment or
    // address is reported here rather than at the next start.
    let entry = match new_key_entry(key, id, &secret) {
        Ok(entry) => entry,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    if let Some(path) = &key.secret_file {
        if let Err(e) = write_secret_file(path, &secret) {
            return fail(EXIT_FAILURE, e);
        }
        eprintln!(
            "keys new: key {id}'s secret is in {} (mode 0600): ordergate-bench load --key-id {id} --secret-file {}",
            path.display(),
            path.display()
        );
    }
    print!("{}", entry.as_str());
    ExitCode::SUCCESS
}

fn run_admin(args: &AdminArgs) -> ExitCode {
    let line = match &args.action {
        AdminAction::Reload => "reload".to_string(),
        AdminAction::Revoke { key } => format!("revoke {key}"),
        AdminAction::Kill { key } => format!("kill {key}"),
        AdminAction::Sessions => "sessions".to_string(),
    };
    let (socket, default) = match &args.socket {
        Some(path) => (path.clone(), None),
        None => match crate::admin::default_socket() {
            Ok(d) => (d.path, Some(d.source)),
            Err(e) => return fail(EXIT_FAILURE, e),
        },
    };
    match crate::admin::request(&socket, &line) {
        Ok(answer) => {
            print!("{answer}");
            if answer.lines().last().is_some_and(|l| l.starts_with("ok")) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Err(e) => fail(
            EXIT_FAILURE,
            match default {
                Some(source) => format!(
                    "cannot reach the admin socket {} (the default, from {source}): {e}; is the \
                     gateway running, as this user? Else give --socket PATH",
                    socket.display()
                ),
                None => format!("cannot reach the admin socket {}: {e}", socket.display()),
            },
        ),
    }
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ordergate: {message}");
    ExitCode::from(code)
}

// ---------------------------------------------------------------------------
// serve

/// What `serve` starts, once the command line and the config file agree.
#[derive(Debug)]
pub struct ServePlan {
    pub spec: GatewaySpec,
    pub keys: PathBuf,
}

/// Steps 1 and 2 of `serve` (module docs): the config, the flags over it,
/// and the checks that need no keys. `available` is what
/// [`config::available_cores`] says (a parameter so tests can give any
/// host).
///
/// # Errors
///
/// The message to print; the exit code is [`EXIT_USAGE`].
pub fn plan_serve(args: &ServeArgs, available: Option<&[usize]>) -> Result<ServePlan, String> {
    let (mut config, origin) = match &args.config {
        Some(path) => (
            config::load(path).map_err(|e| e.to_string())?,
            path.display().to_string(),
        ),
        None => (Config::default(), "<defaults>".to_owned()),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(keys) = &args.keys {
        config.keys = Some(keys.clone());
    }
    if let Some(idle) = args.idle {
        config.reactors.idle = idle.into();
    }
    if let Some(path) = &args.audit_journal {
        config.audit_journal = Some(path.clone());
    }
    if let Some(path) = &args.stats_file {
        config.stats_file = Some(path.clone());
    }
    if let Some(link) = &args.engine {
        config.engine.link = link.to_string();
    }
    let Some(keys) = config.keys.clone() else {
        return Err(match &args.config {
            Some(path) => format!(
                "no keys file: give --keys FILE, or set `keys` in {}",
                path.display()
            ),
            None => "no keys file: give --keys FILE (or `keys` in a --config file)".to_owned(),
        });
    };
    config
        .check_cores(available)
        .map_err(|kind| ConfigError::new(&origin, None, kind).to_string())?;
    Ok(ServePlan {
        spec: config.to_spec(),
        keys,
    })
}

/// The first order id of a `serve` run started at `wall_ns`: the start
/// time in nanoseconds. The book lives in memory and dies with the process
/// (a crash, a restart), but clients keep the order ids they were given:
/// ids counting from 1 again would name a dead order and a new one alike.
/// A run accepts at most one order per nanosecond it lives, so a later
/// run's ids are above every id of an earlier one — unless the wall clock
/// stepped back between the two runs by more than the earlier one lived.
/// u64 nanoseconds last until 2554.
pub fn run_first_order_id(wall_ns: u64) -> u64 {
    wall_ns.max(1)
}

/// Refuses a key table with no key for `environment`: every logon would be
/// refused WRONG_ENVIRONMENT, so it is a misconfiguration (as an empty keys
/// file is).
///
/// # Errors
///
/// The message to print; the exit code is [`EXIT_USAGE`].
pub fn check_environment(
    keys: &KeyTable,
    environment: Environment,
    path: &Path,
) -> Result<(), String> {
    if keys
        .iter()
        .any(|(_, entry)| entry.environment == environment)
    {
        return Ok(());
    }
    Err(format!(
        "keys file {}: none of its {} keys is for the {} environment this gateway serves \
         (`session.environment`); every logon would be refused WRONG_ENVIRONMENT",
        path.display(),
        keys.len(),
        environment_name(environment),
    ))
}

fn environment_name(environment: Environment) -> &'static str {
    match environment {
        Environment::Production => "production",
        Environment::Sandbox => "sandbox",
    }
}

/// `ordergate engine`: the matching engine over a shared-memory link file
/// until SIGINT or SIGTERM (or until its gateway judges it dead), then its
/// stop summary.
fn run_engine(args: &EngineArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => match config::load(path) {
            Ok(c) => c,
            Err(e) => return fail(EXIT_USAGE, e.to_string()),
        },
        None => Config::default(),
    };
    let spec = config.to_spec();
    let pairs = args.reactors.unwrap_or(spec.reactors);
    if pairs == 0 || pairs > crate::constants::REACTORS_MAX {
        return fail(
            EXIT_USAGE,
            format!(
                "--reactors {pairs}: give 1 to {}",
                crate::constants::REACTORS_MAX
            ),
        );
    }
    let signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => return fail(EXIT_FAILURE, format!("cannot catch SIGINT/SIGTERM: {e}")),
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = signals.handle();
    let watcher = {
        let stop = stop.clone();
        let mut signals = signals;
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                stop.store(true, std::sync::atomic::Ordering::Release);
            }
        })
    };
    let process = crate::link_shm::EngineProcessSpec {
        shm: args.shm.clone(),
        pairs,
        ring_capacity: spec.ring_capacity,
        engine_config: spec.engine_config,
        liveness_timeout_ns: crate::constants::ENGINE_LIVENESS_TIMEOUT_NS,
    };
    let started = std::time::Instant::now();
    let result =
        crate::link_shm::run_engine(&process, &stop, |line| eprintln!("ordergate: {line}"));
    handle.close();
    let _ = watcher.join();
    match result {
        Ok(report) => {
            print!("{}", crate::link_shm::summary(&report, started.elapsed()));
            if report.disowned {
                ExitCode::from(EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(EXIT_FAILURE, e),
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    // First, before any secret is read: no core dump of this process, no
    // ptrace or /proc/PID/mem from the same user.
    if let Err(e) = crate::sys::set_not_dumpable() {
        return fail(
            EXIT_FAILURE,
            format!("cannot make the process non-dumpable (prctl PR_SET_DUMPABLE): {e}"),
        );
    }
    let plan = match plan_serve(args, config::available_cores().as_deref()) {
        Ok(plan) => plan,
        Err(message) => return fail(EXIT_USAGE, message),
    };
    let keys = match KeyTable::load(&plan.keys) {
        Ok(keys) => keys,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let memory = keys.secret_memory();
    if !(memory.locked && memory.excluded_from_dumps) {
        eprintln!("ordergate: warning: {}", secrets_line(memory));
    }
    if let Err(message) = check_environment(&keys, plan.spec.session.environment, &plan.keys) {
        return fail(EXIT_USAGE, message);
    }
    for warning in keys.warnings(crate::clock::wall_ns()) {
        eprintln!("ordergate: warning: {warning}");
    }

    // Caught from before the start, so that a signal during it is kept
    // and acted on once the gateway runs (rather than killing it half
    // started).
    let signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            return fail(
                EXIT_FAILURE,
                format!("cannot catch SIGINT/SIGTERM/SIGHUP: {e}"),
            );
        }
    };
    let shape = describe(&plan.spec);
    let pinned = pinned_cores(&plan.spec);
    let housekeeping = housekeeping_cores(&pinned, config::available_cores().as_deref());
    if let Some(cores) = &housekeeping {
        // Before any thread starts: the journal writer, admin, signal and
        // metrics threads inherit it; reactors and the engine pin
        // themselves to their own cores.
        if let Err(e) = crate::sys::set_thread_cpus(cores) {
            eprintln!("ordergate: warning: cannot keep the housekeeping threads on {cores:?}: {e}");
        }
    }
    // The admin socket before the gateway: a second gateway on the same
    // socket is refused before it opens a listener or the journal.
    let admin_socket = match &args.admin_socket {
        Some(path) => crate::admin::AdminSocket::bind(path).map_err(|e| (path.clone(), e)),
        None => crate::admin::AdminSocket::bind_default().map_err(|e| {
            let path = crate::admin::default_socket().map_or_else(|_| PathBuf::new(), |d| d.path);
            (path, e)
        }),
    };
    let admin_socket = match admin_socket {
        Ok(socket) => socket,
        Err((path, e)) if path.as_os_str().is_empty() => {
            return fail(EXIT_FAILURE, format!("cannot open the admin socket: {e}"));
        }
        Err((path, e)) => {
            return fail(
                EXIT_FAILURE,
                format!("cannot open the admin socket {}: {e}", path.display()),
            );
        }
    };
    if let Some(warning) = &admin_socket.warning {
        eprintln!("ordergate: warning: {warning}");
    }
    // The Prometheus address before the gateway too: a taken one stops
    // nothing that started. Served once the gateway made its stats file.
    let prometheus = match args
        .prometheus
        .map(|addr| (addr, PrometheusListener::bind(addr)))
    {
        None => None,
        Some((_, Ok(listener))) => Some(listener),
        Some((addr, Err(e))) => {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "another process ({}) is already listening on this address: stop it, or \
                     give --prometheus another address",
                    crate::sys::holders_text(&crate::sys::listener_holders(addr))
                )
            } else {
                format!("{e}{}", crate::sys::bind_hint(addr, &e))
            };
            return fail(
                EXIT_FAILURE,
                format!("cannot serve prometheus metrics on {addr}: {why}"),
            );
        }
    };
    // Both always set by `plan_serve` (`Config::to_spec`); the fallbacks
    // only keep this from panicking.
    let audit_journal = plan.spec.audit_journal.clone().unwrap_or_default();
    let stats_file = plan.spec.stats_file.clone().unwrap_or_default();
    let anchor_key_file = plan.spec.audit_anchor_key_file.clone();
    let mut spec = plan.spec;
    spec.engine_config.first_order_id = run_first_order_id(crate::clock::wall_ns());
    let gateway = match Gateway::start(spec, keys) {
        Ok(gateway) => gateway,
        Err(e) => return fail(EXIT_FAILURE, format!("cannot start: {e}")),
    };
    let started = Instant::now();
    println!("ordergate serving on {} ({shape})", gateway.local_addr());
    match &housekeeping {
        Some(cores) => {
            println!("housekeeping threads (journal, admin, signals, metrics) on cores {cores:?}")
        }
        None if !pinned.is_empty() => eprintln!(
            "ordergate: warning: every core is a reactor's or the engine's; the journal writer \
             and admin threads will preempt them (leave a core free, or isolate the pinned ones)"
        ),
        None => {}
    }

    let admin_path = admin_socket.path().to_path_buf();
    let admin = match admin_socket.serve(gateway.control(), Some(plan.keys.clone())) {
        Ok(admin) => admin,
        Err(e) => {
            let report = gateway.shutdown();
            print!("{}", summary(&report, started.elapsed()));
            return fail(
                EXIT_FAILURE,
                format!(
                    "cannot start the admin thread for {}: {e}",
                    admin_path.display()
                ),
            );
        }
    };
    println!(
        "admin socket {}; audit journal {}; stats file {}",
        admin.path().display(),
        audit_journal.display(),
        stats_file.display()
    );
    let prometheus = match prometheus.map(|listener| {
        let addr = listener.local_addr();
        listener.serve(&stats_file).map_err(|e| (addr, e))
    }) {
        None => None,
        Some(Ok(server)) => {
            println!(
                "prometheus metrics on http://{}/metrics",
                server.local_addr()
            );
            Some(server)
        }
        Some(Err((addr, e))) => {
            let report = gateway.shutdown();
            print!("{}", summary(&report, started.elapsed()));
            return fail(
                EXIT_FAILURE,
                format!("cannot serve prometheus metrics on {addr}: {e}"),
            );
        }
    };

    // After the lines tools wait for (serving, admin socket, prometheus).
    println!(
        "{}",
        journal_start_line(&gateway, anchor_key_file.as_deref())
    );
    let signals_handle = signals.handle();
    let stop = gateway.stop_handle();
    let control = gateway.control();
    let keys_path = plan.keys.clone();
    let watcher = std::thread::Builder::new()
        .name("ordergate-signals".into())
        .spawn(move || watch_signals(signals, stop, control, keys_path));
    let watcher = match watcher {
        Ok(watcher) => watcher,
        Err(e) => {
            let report = gateway.shutdown();
            print!("{}", summary(&report, started.elapsed()));
            return fail(EXIT_FAILURE, format!("cannot start the signal thread: {e}"));
        }
    };
    let report = gateway.wait();
    let metrics = prometheus.map(crate::telemetry::prometheus::PrometheusServer::stop);
    drop(admin);
    signals_handle.close();
    let _ = watcher.join();
    print!("{}", summary(&report, started.elapsed()));
    if let Some(metrics) = &metrics {
        print!("{}", metrics_summary(metrics));
    }
    ExitCode::SUCCESS
}

/// `serve`'s start line about the journal's two defences: the logon
/// replay floors it read (docs/JOURNAL.md, "Replay floors") and whether its
/// checkpoints are anchored ("Checkpoints").
fn journal_start_line(gateway: &Gateway, anchor_key_file: Option<&Path>) -> String {
    let floors = match &gateway.logon_floors {
        Some(floors) => floors.describe(),
        None => "no audit journal: a Logon captured before a restart can be replayed after it \
                 within the skew window"
            .to_owned(),
    };
    let anchor = match (gateway.anchor_tag, anchor_key_file) {
        (Some(tag), Some(file)) => format!(
            "checkpoints with anchor key {tag:016x} ({}): verify with `ordergate audit verify \
             --anchor-key`{}",
            file.display(),
            if gateway.previous_run_closed == Some(false) {
                "; WARNING: the journal's last run did not end with a clean stop's checkpoint: \
                 the gateway crashed, or records were removed from its end"
            } else {
                ""
            }
        ),
        _ => "no anchor key (audit_anchor_key_file): the journal's chain proves it consistent, \
              not complete"
            .to_owned(),
    };
    format!("{floors}\n{anchor}")
}

/// The cores the reactors and the engine are pinned to (empty: none).
pub fn pinned_cores(spec: &GatewaySpec) -> Vec<usize> {
    let mut pinned = spec.reactor_cores.clone();
    if let EnginePlacement::OwnThread { core: Some(core) } = spec.engine {
        pinned.push(core);
    }
    pinned.extend(&spec.sqpoll_cores);
    pinned
}

/// The CPUs `serve`'s own threads (main, journal writer, admin, signals,
/// metrics) are kept on: every allowed CPU not in `pinned`. Unkept, the
/// scheduler may put them on a reactor's core, where each wake-up preempts
/// a busy-spinning reactor (seen on a 2-core host: the journal writer on
/// the reactor's CPU during a sweep). `None` when nothing is pinned
/// (nothing to keep away from) or when no CPU is left over.
pub fn housekeeping_cores(pinned: &[usize], available: Option<&[usize]>) -> Option<Vec<usize>> {
    if pinned.is_empty() {
        return None;
    }
    let free: Vec<usize> = available?
        .iter()
        .copied()
        .filter(|c| !pinned.contains(c))
        .collect();
    (!free.is_empty()).then_some(free)
}

/// The first SIGINT/SIGTERM stops the gateway; a second exits at once.
/// SIGHUP re-reads the keys file. Returns when `signals` is closed.
fn watch_signals(
    mut signals: Signals,
    stop: StopHandle,
    control: crate::gateway::GatewayControl,
    keys_path: PathBuf,
) {
    let mut stopping = false;
    for signal in signals.forever() {
        if signal == SIGHUP {
            eprintln!(
                "ordergate: SIGHUP: {}",
                crate::admin::execute("reload", &control, Some(&keys_path)).trim_end()
            );
            continue;
        }
        let name = if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        if stopping {
            eprintln!("ordergate: {name} again: exiting without waiting for the gateway");
            std::process::exit(128 + signal);
        }
        eprintln!("ordergate: {name}: stopping (send it again to exit at once)");
        stop.stop();
        stopping = true;
    }
}

/// The part of the "serving on" line in parentheses.
pub fn describe(spec: &GatewaySpec) -> String {
    let mut out = format!(
        "{} reactor{}",
        spec.reactors,
        if spec.reactors == 1 { "" } else { "s" }
    );
    if !spec.reactor_cores.is_empty() {
        let cores: Vec<String> = spec.reactor_cores.iter().map(usize::to_string).collect();
        let _ = write!(
            out,
            " on core{} {}",
            if cores.len() == 1 { "" } else { "s" },
            cores.join(", ")
        );
    }
    out.push_str(match spec.engine {
        EnginePlacement::SharedWithReactor0 => ", engine shared with reactor 0",
        EnginePlacement::OwnThread { core: None } => ", engine on its own thread",
        EnginePlacement::OwnThread { core: Some(_) } => ", engine on its own thread on core ",
    });
    if let EnginePlacement::OwnThread { core: Some(core) } = spec.engine {
        let _ = write!(out, "{core}");
    }
    let _ = write!(out, ", idle {}", spec.idle.name());
    out
}

/// What `serve` prints about where the secrets live: never in a core dump
/// (the process is not dumpable, and the key table's pages are
/// `MADV_DONTDUMP`), and whether they are locked out of swap.
pub fn secrets_line(memory: crate::sys::SecretMemory) -> String {
    let lock = if memory.locked {
        "locked in RAM"
    } else {
        "NOT locked in RAM (mlock refused: raise RLIMIT_MEMLOCK, e.g. the unit's LimitMEMLOCK)"
    };
    let dump = if memory.excluded_from_dumps {
        "excluded from core dumps"
    } else {
        "MADV_DONTDUMP refused"
    };
    format!("secrets: process not dumpable; key table {dump}, {lock}")
}

/// The shutdown summary: per reactor, sessions and logons, messages,
/// rejects and terminates by reason name, ring-full, the receive → ring
/// latency percentiles and the io_uring health counters (with a hint for
/// each one that is not zero); then the engine.
pub fn summary(report: &GatewayReport, ran: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ordergate stopped after {:.1} s", ran.as_secs_f64());
    for (index, reactor) in report.reactors.iter().enumerate() {
        let c = &reactor.counters;
        let u = &reactor.uring;
        let _ = write!(
            out,
            "reactor {index}: {} sessions, {} logons, {} messages in, {} frames out, {} commands",
            u.accepts, c.logons_accepted, c.messages_in, c.frames_out, c.commands_out
        );
        if u.accepts_refused_full > 0 {
            let _ = write!(
                out,
                ", {} connections refused (full)",
                u.accepts_refused_full
            );
        }
        out.push('\n');
        let logon_rejects = by_reason(
            LogonRejectReason::ALL
                .iter()
                .map(|r| (r.name(), c.logon_reject(*r))),
        );
        let order_rejects = by_reason(
            RejectReason::ALL
                .iter()
                .map(|r| (r.name(), c.order_reject(*r))),
        );
        let terminates = by_reason(
            TerminateReason::ALL
                .iter()
                .map(|r| (r.name(), c.terminate(*r))),
        );
        let _ = writeln!(out, "  logon rejects: {logon_rejects}");
        let _ = writeln!(out, "  order rejects: {order_rejects}");
        let _ = writeln!(out, "  terminates: {terminates}");
        let _ = writeln!(
            out,
            "  ring full {}, slow consumers {}, logon timeouts {}",
            c.ring_full, c.slow_consumers, c.logon_timeouts
        );
        // Controls that acted, by counter name (the stats file's), only
        // when one did: a quiet run keeps a short summary.
        let acted = by_reason(
            [
                ("reload_ended", c.reload_ended),
                ("slots_retired", c.slots_retired),
            ]
            .into_iter(),
        );
        if acted != "none" {
            let _ = writeln!(out, "  controls: {acted}");
        }
        if c.heartbeats_throttled + c.ring_reserve_refusals > 0 {
            let _ = writeln!(
                out,
                "  heartbeats throttled {}, new orders refused for the cancel reserve {}",
                c.heartbeats_throttled, c.ring_reserve_refusals
            );
        }
        if c.input_paused + c.tx_abandoned + u.recv_parked > 0 {
            let _ = writeln!(
                out,
                "  back-pressure: input paused {}, receive buffers parked {} (at most {} by one \
                 connection, {} over cap), tx abandoned {}",
                c.input_paused,
                u.recv_parked,
                u.recv_parked_max,
                u.recv_parked_over_cap,
                c.tx_abandoned
            );
        }
        let _ = writeln!(out, "  recv→ring: {}", latency(&reactor.recv_to_ring_ns));
        uring_health(&mut out, u);
        admission(&mut out, c, u);
        logon_defences(&mut out, c);
        if c.engine_lost + c.engine_unavailable + c.link_bad_records > 0 {
            let _ = writeln!(
                out,
                "  engine link: engine judged dead {}, commands answered ENGINE_UNAVAILABLE {}, \
                 bad event records {}",
                if c.engine_lost > 0 { "yes" } else { "no" },
                c.engine_unavailable,
                c.link_bad_records
            );
        }
        if c.key_sweeps > 0 || c.key_sweeps_deferred > 0 {
            let _ = writeln!(
                out,
                "  key sweeps {} ({} resting orders canceled, {} deferred for a full ring)",
                c.key_sweeps, c.key_sweep_canceled, c.key_sweeps_deferred
            );
        }
        enters_line(&mut out, u, c.messages_in);
        if c.logons_stale > 0 {
            let _ = writeln!(
                out,
                "  logon replay floor: {} logons refused STALE_LOGON (request time not later than \
                 the key's last logon before the restart)",
                c.logons_stale
            );
        }
    }
    let e = &report.engine;
    let _ = writeln!(
        out,
        "engine: {} commands, {} events, {} blocked turns, {} misrouted",
        e.commands, e.events, e.blocked_turns, e.misrouted
    );
    // The gateway installs the keys' limits at start-up, so a running
    // gateway always has this line.
    let risk = [
        e.price_rejects,
        e.notional_rejects,
        e.open_notional_rejects,
        e.key_sweeps,
        e.limits_installed,
    ];
    if risk.iter().any(|&n| n > 0) {
        let _ = writeln!(
            out,
            "engine risk: {} price out of band, {} over max notional, {} over max open \
             notional; {} key sweeps canceled {} orders; {} limit sets installed",
            e.price_rejects,
            e.notional_rejects,
            e.open_notional_rejects,
            e.key_sweeps,
            e.key_sweep_canceled,
            e.limits_installed
        );
    }
    if let Some(j) = &report.journal {
        journal_summary(&mut out, j);
    }
    // Process-wide; reactor 0 carries them (the others hold 0). Only when
    // the admin socket refused something: a quiet run keeps a short summary.
    let admin = |f: fn(&crate::session::Counters) -> u64| -> u64 {
        report.reactors.iter().map(|r| f(&r.counters)).sum()
    };
    let (peers, requests, probes) = (
        admin(|c| c.admin_peers_refused),
        admin(|c| c.admin_requests_refused),
        admin(|c| c.admin_probes),
    );
    if peers + requests + probes > 0 {
        let _ = writeln!(
            out,
            "admin: {peers} peers refused (not the gateway's uid or root), {requests} requests \
             refused, {probes} probes from another serve"
        );
    }
    out
}

/// The Prometheus endpoint's line of `serve`'s stop summary (printed after
/// `summary`, when `--prometheus` was given); docs/STATS.md names each
/// figure.
pub fn metrics_summary(c: &crate::telemetry::prometheus::MetricsCounters) -> String {
    format!(
        "prometheus: {} requests, {} refused busy, {} refused per address, {} cut at the deadline\n",
        c.requests, c.refused_busy, c.refused_peer, c.deadline_cut
    )
}

/// The reactor's admission line (README "Connection admission"), only when
/// one of its counters is not zero: connections refused over the
/// per-address cap, evicted and waited, and failed accepts.
fn admission(out: &mut String, c: &crate::session::Counters, u: &UringCounters) {
    let figures = [
        c.address_cap_refusals,
        c.pending_evictions,
        c.accepts_waited,
        u.accept_emfile,
        u.accept_errors,
    ];
    if figures.iter().all(|&n| n == 0) {
        return;
    }
    let _ = writeln!(
        out,
        "  admission: {} refused over the per-address cap, {} evicted before logon, {} waited \
         for a slot, {} accepts out of descriptors (EMFILE/ENFILE), {} other failed accepts",
        c.address_cap_refusals,
        c.pending_evictions,
        c.accepts_waited,
        u.accept_emfile,
        u.accept_errors
    );
}

/// The logon defences' line (docs/PROTOCOL.md, "Logon checks"), when any
/// of them acted: refusals before any HMAC (a locked-out (client, key), a
/// client over its logon rate), refusals of a key over its logon rate or
/// with a full nonce cache, and records forgotten under pressure.
fn logon_defences(out: &mut String, c: &crate::session::Counters) {
    let all = [
        c.logons_locked_out,
        c.logons_throttled_address,
        c.logons_throttled_key,
        c.logons_nonce_share_full,
        c.lockout_evictions,
        c.logon_rate_evictions,
    ];
    if all.iter().all(|n| *n == 0) {
        return;
    }
    let _ = writeln!(
        out,
        "  logon defences: locked out {}, throttled by address {}, by key {}, nonce cache full \
         {}; forgotten under pressure: {} lockout records, {} address rate cells",
        c.logons_locked_out,
        c.logons_throttled_address,
        c.logons_throttled_key,
        c.logons_nonce_share_full,
        c.lockout_evictions,
        c.logon_rate_evictions
    );
}

/// The audit journal's lines of the stop summary: what it holds, how much
/// pre-auth traffic was folded, rollovers and high-water alarms; then what
/// went wrong, if anything.
fn journal_summary(out: &mut String, j: &crate::journal::JournalStats) {
    let _ = writeln!(
        out,
        "journal: {} records, segment {} ({} of {}), {} pre-auth aggregates of {} events, \
         {} rollovers, {} high-water alarms",
        j.records,
        j.segment,
        j.segment_records,
        j.capacity,
        j.aggregates,
        j.preauth_events,
        j.rollovers,
        j.high_water
    );
    if j.preauth_overflow + j.preauth_unjournaled + j.gap_events + j.lost + j.rollover_failures > 0
    {
        let _ = writeln!(
            out,
            "  journal: {} pre-auth events from other addresses (table full), {} not journaled \
             (reserve), {} dropped to full rings (gaps), {} lost after a failure, {} rollover \
             failures",
            j.preauth_overflow, j.preauth_unjournaled, j.gap_events, j.lost, j.rollover_failures
        );
    }
    if let Some(failure) = j.failure {
        let _ = writeln!(
            out,
            "  journal FAILED ({}): new logons were refused from then on",
            failure.name()
        );
    }
    if let Some(tag) = j.anchor_tag {
        let _ = writeln!(
            out,
            "  journal checkpoints: {} written with anchor key {tag:016x}",
            j.checkpoints
        );
    }
}

/// What a non-zero io_uring health counter means and what to tune, one
/// line each (the names are those of the stats file and docs/CONFIG.md).
const SQ_FULL_HINT: &str = "the submission queue filled within a turn and was flushed early \
     (an extra system call); raise reactors.uring_entries";
const RECV_ENOBUFS_HINT: &str = "the provided receive buffers ran dry and receives waited \
     to be re-armed; raise reactors.recv_buffers";
const CQ_OVERFLOW_HINT: &str = "completions did not fit the completion queue (4 × \
     uring_entries) and the kernel held them back until the next enter; raise \
     reactors.uring_entries";
const CQ_DROPPED_HINT: &str = "the kernel lost completions it could not even hold \
     back (out of memory): a connection may wait for a completion that never comes; \
     restart the gateway and raise reactors.uring_entries";
const TURN_NS_MAX_HINT: &str = "every message that arrived during the longest turn waited \
     for it; compare with the latency goal (long: preemption or interrupts on the core, or \
     too many sessions per reactor)";

/// The reactor's io_uring health line, then a hint line for each counter
/// that is not zero (tuning/CAPACITY.md says more). `serve`'s summary and
/// `demo`'s report both print it.
pub fn uring_health(out: &mut String, u: &UringCounters) {
    let _ = writeln!(
        out,
        "  io_uring: sq_full {}, recv_enobufs {}, cq_overflow {}, turn_ns_max {}",
        u.sq_full,
        u.recv_enobufs,
        u.cq_overflow,
        nanos(u.turn_ns_max)
    );
    for (name, value, hint) in [
        ("sq_full", u.sq_full, SQ_FULL_HINT),
        ("recv_enobufs", u.recv_enobufs, RECV_ENOBUFS_HINT),
        ("cq_overflow", u.cq_overflow, CQ_OVERFLOW_HINT),
        ("turn_ns_max", u.turn_ns_max, TURN_NS_MAX_HINT),
        ("cq_dropped", u.cq_dropped, CQ_DROPPED_HINT),
    ] {
        if value > 0 {
            let _ = writeln!(out, "    {name}: {hint}");
        }
    }
}

/// The reactor's kernel entries (issue 11), when it made any: its
/// `io_uring_enter` calls per message in, the same without the idle
/// wake-ups (waits the timer tick ended, which time causes, not
/// requests), the blocking waits, the adaptive spin's hits, misses and
/// budget, and the SQPOLL wake-ups if there were any. tuning/CAPACITY.md
/// says how to read it.
pub fn enters_line(out: &mut String, u: &UringCounters, messages_in: u64) {
    if u.enters == 0 {
        return;
    }
    let idle = u.enter_wait_timeouts + u.enter_wait_own;
    let per = |n: u64| {
        if messages_in == 0 {
            "n/a".to_string()
        } else {
            format!("{:.2}", n as f64 / messages_in as f64)
        }
    };
    let _ = write!(
        out,
        "  kernel entries: {} io_uring_enter, {} per message ({} without {} idle wake-ups); \
         {} blocking waits; spin {} hits, {} misses, budget {}",
        u.enters,
        per(u.enters),
        per(u.enters.saturating_sub(idle)),
        idle,
        u.enter_waits,
        u.spin_hits,
        u.spin_misses,
        nanos(u.spin_budget_ns)
    );
    if u.sqpoll_wakeups > 0 {
        let _ = write!(out, "; {} SQPOLL wake-ups", u.sqpoll_wakeups);
    }
    out.push('\n');
}

/// "NAME count, NAME count" for the non-zero counts, or "none".
fn by_reason<'a>(counts: impl Iterator<Item = (&'a str, u64)>) -> String {
    let parts: Vec<String> = counts
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

fn latency(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no messages".to_owned();
    }
    format!(
        "p50 {}, p99 {}, p99.9 {}, max {} ({} messages)",
        nanos(h.value_at_quantile(0.50)),
        nanos(h.value_at_quantile(0.99)),
        nanos(h.value_at_quantile(0.999)),
        nanos(h.max()),
        h.len()
    )
}

/// A duration in ns, in the unit that keeps it short: "999 ns", "1.5 ms".
fn nanos(ns: u64) -> String {
    short_ns(ns, " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::KeyEntry;
    use crate::auth::secret::Secret;
    use crate::engine::agent::EngineCounters;
    use crate::reactor::report::ReactorReport;
    use crate::session::Counters;
    use crate::wire::codes::Scopes;
    use clap::CommandFactory;

    /// One reactor's report with these counters and nothing else: what
    /// the summary tests vary.
    fn one_reactor(counters: Counters, uring: UringCounters) -> GatewayReport {
        GatewayReport {
            reactors: vec![ReactorReport {
                counters,
                uring,
                recv_to_ring_ns: Histogram::new(3).unwrap(),
                engine: None,
            }],
            engine: EngineCounters::default(),
            journal: None,
        }
    }

    fn cli(args: &[&str]) -> Result<Command, clap::Error> {
        let argv = std::iter::once("ordergate").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|c| c.command)
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_parse() {
        let Command::Serve(args) = cli(&[
            "serve",
            "--listen",
            "0.0.0.0:9000",
            "--keys",
            "k.toml",
            "--config",
            "c.toml",
            "--idle",
            "backoff",
        ])
        .unwrap() else {
            panic!("not serve")
        };
        assert_eq!(
            args,
            ServeArgs {
                listen: Some("0.0.0.0:9000".parse().unwrap()),
                keys: Some("k.toml".into()),
                config: Some("c.toml".into()),
                idle: Some(IdleArg::Backoff),
                admin_socket: None,
                audit_journal: None,
                stats_file: None,
                prometheus: None,
                engine: None,
            }
        );
        let Command::Serve(args) = cli(&["serve"]).unwrap() else {
            panic!("not serve")
        };
        assert_eq!(args.idle, None);
        assert!(cli(&["serve", "--idle", "spin"]).is_err());
        let Command::Serve(args) = cli(&["serve", "--engine", "shm:/dev/shm/e"]).unwrap() else {
            panic!("not serve")
        };
        assert_eq!(
            args.engine,
            Some(crate::gateway::EngineLink::Shm("/dev/shm/e".into()))
        );
        assert!(cli(&["serve", "--engine", "aeron:udp"]).is_err());
        assert!(cli(&["serve", "--engine", "shm:"]).is_err());
        assert!(cli(&["serve", "--listen", "localhost:9000"]).is_err());
    }

    #[test]
    fn stat_and_the_serve_stats_flags_parse() {
        let Command::Stat(args) = cli(&["stat"]).unwrap() else {
            panic!("not stat")
        };
        assert_eq!(
            args.file,
            PathBuf::from(crate::telemetry::STATS_FILE_DEFAULT)
        );
        assert_eq!(args.interval, Duration::from_secs(1));
        assert!(!args.once);
        let Command::Stat(args) =
            cli(&["stat", "--file", "x.stats", "--interval", "250ms", "--once"]).unwrap()
        else {
            panic!("not stat")
        };
        assert_eq!(
            (args.file, args.interval, args.once),
            ("x.stats".into(), Duration::from_millis(250), true)
        );
        assert!(cli(&["stat", "--interval", "0s"]).is_err());
        let Command::Serve(args) = cli(&[
            "serve",
            "--stats-file",
            "/tmp/s",
            "--prometheus",
            "127.0.0.1:9464",
        ])
        .unwrap() else {
            panic!("not serve")
        };
        assert_eq!(args.stats_file, Some(PathBuf::from("/tmp/s")));
        assert_eq!(args.prometheus, Some("127.0.0.1:9464".parse().unwrap()));
        assert!(cli(&["serve", "--prometheus", "localhost:9464"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(DURATION_MAX));
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "10 s",
            "10sec",
            "0ms",
            "25h",
            "1441m",
            "99999999999999999999s",
            "18446744073709551615h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("10x").unwrap_err().contains("`x`"));
    }

    #[test]
    fn plan_takes_flags_over_the_config_file() {
        let dir = std::env::temp_dir().join(format!("ordergate-cli-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gw.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7000\"\nkeys = \"k.toml\"\naudit_journal = \"audit.journal\"\n\
             stats_file = \"/dev/shm/gw.stats\"\n[reactors]\nidle = \"backoff\"\ncount = 2\n",
        )
        .unwrap();
        let from_file = ServeArgs {
            listen: None,
            keys: None,
            config: Some(path.clone()),
            idle: None,
            admin_socket: None,
            audit_journal: None,
            stats_file: None,
            prometheus: None,
            engine: None,
        };
        let plan = plan_serve(&from_file, None).unwrap();
        assert_eq!(plan.keys, dir.join("k.toml"));
        assert_eq!(plan.spec.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(plan.spec.idle, IdleKind::Backoff);
        assert_eq!(plan.spec.reactors, 2);
        // Relative to the config file's directory, as `keys`.
        assert_eq!(plan.spec.audit_journal, Some(dir.join("audit.journal")));
        assert_eq!(plan.spec.stats_file, Some("/dev/shm/gw.stats".into()));

        let over = ServeArgs {
            listen: Some("0.0.0.0:9000".parse().unwrap()),
            keys: Some("/other/keys.toml".into()),
            config: Some(path.clone()),
            idle: Some(IdleArg::BusySpin),
            admin_socket: None,
            // A relative flag stays relative to the current directory.
            audit_journal: Some("flag.journal".into()),
            stats_file: Some("/tmp/flag.stats".into()),
            prometheus: None,
            engine: None,
        };
        let plan = plan_serve(&over, None).unwrap();
        assert_eq!(plan.keys, PathBuf::from("/other/keys.toml"));
        assert_eq!(plan.spec.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(plan.spec.idle, IdleKind::BusySpin);
        assert_eq!(plan.spec.reactors, 2);
        assert_eq!(plan.spec.audit_journal, Some("flag.journal".into()));
        assert_eq!(plan.spec.stats_file, Some("/tmp/flag.stats".into()));

        std::fs::write(&path, "[reactors]\ncount = 2\ncores = [0, 9]\n").unwrap();
        let e = plan_serve(&over, Some(&[0, 1])).unwrap_err();
        assert!(e.contains("gw.toml") && e.contains("core 9"), "{e}");
        let e = plan_serve(&from_file, Some(&[0, 9])).unwrap_err();
        assert!(e.contains("--keys") && e.contains("gw.toml"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn plan_without_config_is_the_defaults_and_needs_keys() {
        let bare = ServeArgs {
            listen: None,
            keys: None,
            config: None,
            idle: None,
            admin_socket: None,
            audit_journal: None,
            stats_file: None,
            prometheus: None,
            engine: None,
        };
        let e = plan_serve(&bare, None).unwrap_err();
        assert!(e.contains("--keys"), "{e}");
        let plan = plan_serve(
            &ServeArgs {
                keys: Some("k".into()),
                ..bare
            },
            None,
        )
        .unwrap();
        assert_eq!(
            format!("{:?}", plan.spec),
            format!("{:?}", Config::default().to_spec())
        );
        // Neither flag nor file: the flags' old defaults.
        assert_eq!(
            plan.spec.audit_journal,
            Some(PathBuf::from("ordergate-audit.journal"))
        );
        assert_eq!(
            plan.spec.stats_file,
            Some(PathBuf::from("/dev/shm/ordergate-stats"))
        );
    }

    fn key(id: u64, environment: Environment) -> KeyEntry {
        KeyEntry::new(id, Secret::from_bytes([7; 32]), Scopes::TRADE, environment).with_rate(10, 10)
    }

    #[test]
    fn keys_must_include_one_for_the_gateway_environment() {
        let sandbox_only = KeyTable::from_entries(vec![key(1, Environment::Sandbox)]).unwrap();
        let e = check_environment(&sandbox_only, Environment::Production, Path::new("k.toml"))
            .unwrap_err();
        assert!(e.contains("k.toml") && e.contains("production"), "{e}");
        assert!(check_environment(&sandbox_only, Environment::Sandbox, Path::new("k")).is_ok());
        let both = KeyTable::from_entries(vec![
            key(1, Environment::Sandbox),
            key(2, Environment::Production),
        ])
        .unwrap();
        assert!(check_environment(&both, Environment::Production, Path::new("k")).is_ok());
    }

    #[test]
    fn describe_names_reactors_engine_and_idle() {
        let mut spec = Config::default().to_spec();
        assert_eq!(
            describe(&spec),
            "1 reactor, engine shared with reactor 0, idle busy-spin"
        );
        spec.reactors = 2;
        spec.reactor_cores = vec![2, 3];
        spec.engine = EnginePlacement::OwnThread { core: Some(4) };
        spec.idle = IdleKind::Backoff;
        assert_eq!(
            describe(&spec),
            "2 reactors on cores 2, 3, engine on its own thread on core 4, idle backoff"
        );
        spec.engine = EnginePlacement::OwnThread { core: None };
        assert!(describe(&spec).contains("engine on its own thread, idle"));
    }

    #[test]
    fn metrics_summary_names_each_defence() {
        let c = crate::telemetry::prometheus::MetricsCounters {
            requests: 12,
            refused_busy: 3,
            refused_peer: 4,
            deadline_cut: 5,
            connections: 0,
        };
        assert_eq!(
            metrics_summary(&c),
            "prometheus: 12 requests, 3 refused busy, 4 refused per address, 5 cut at the deadline\n"
        );
    }

    #[test]
    fn summary_shows_each_reactor_and_the_engine() {
        let mut counters = Counters {
            messages_in: 1000,
            frames_out: 2000,
            logons_accepted: 3,
            commands_out: 900,
            ring_full: 7,
            ..Counters::default()
        };
        counters.logon_rejects[LogonRejectReason::AUTH_FAILED.wire() as usize] = 2;
        counters.order_rejects[RejectReason::THROTTLED.wire() as usize] = 5;
        counters.order_rejects[RejectReason::ENGINE_BUSY.wire() as usize] = 7;
        counters.terminates[TerminateReason::SHUTDOWN.wire() as usize] = 3;
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for ns in 1..=1000u64 {
            histogram.record(ns * 10).unwrap();
        }
        let busy = ReactorReport {
            counters,
            uring: UringCounters {
                accepts: 4,
                sq_full: 2,
                recv_enobufs: 0,
                cq_overflow: 5,
                turn_ns_max: 48_200,
                ..UringCounters::default()
            },
            recv_to_ring_ns: histogram,
            engine: None,
        };
        let idle = ReactorReport {
            counters: Counters::default(),
            uring: UringCounters::default(),
            recv_to_ring_ns: Histogram::new(3).unwrap(),
            engine: None,
        };
        let report = GatewayReport {
            reactors: vec![busy, idle],
            engine: EngineCounters {
                commands: 900,
                events: 1800,
                blocked_turns: 1,
                misrouted: 0,
                ..EngineCounters::default()
            },
            journal: None,
        };
        let text = summary(&report, Duration::from_millis(12_345));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ordergate stopped after 12.3 s");
        assert_eq!(
            lines[1],
            "reactor 0: 4 sessions, 3 logons, 1000 messages in, 2000 frames out, 900 commands"
        );
        assert_eq!(lines[2], "  logon rejects: AUTH_FAILED 2");
        assert_eq!(lines[3], "  order rejects: THROTTLED 5, ENGINE_BUSY 7");
        assert_eq!(lines[4], "  terminates: SHUTDOWN 3");
        assert_eq!(
            lines[5],
            "  ring full 7, slow consumers 0, logon timeouts 0"
        );
        assert!(
            lines[6].starts_with(
                "  recv→ring: p50 5.0 µs, p99 9.9 µs, p99.9 10.0 µs, max 10.0 µs (1000 messages)"
            ),
            "{}",
            lines[6]
        );
        // The io_uring health line, then a hint for each counter that is
        // not zero, in the order of the line (recv_enobufs is 0: no hint).
        assert_eq!(
            lines[7],
            "  io_uring: sq_full 2, recv_enobufs 0, cq_overflow 5, turn_ns_max 48.2 µs"
        );
        assert_eq!(
            lines[8],
            "    sq_full: the submission queue filled within a turn and was flushed early \
             (an extra system call); raise reactors.uring_entries"
        );
        assert_eq!(
            lines[9],
            "    cq_overflow: completions did not fit the completion queue (4 × uring_entries) \
             and the kernel held them back until the next enter; raise reactors.uring_entries"
        );
        assert_eq!(
            lines[10],
            "    turn_ns_max: every message that arrived during the longest turn waited for it; \
             compare with the latency goal (long: preemption or interrupts on the core, or too \
             many sessions per reactor)"
        );
        assert_eq!(lines[12], "  logon rejects: none");
        assert_eq!(lines[16], "  recv→ring: no messages");
        // All zero (a reactor that never turned): the line, no hints.
        assert_eq!(
            lines[17],
            "  io_uring: sq_full 0, recv_enobufs 0, cq_overflow 0, turn_ns_max 0 ns"
        );
        assert_eq!(
            lines[18],
            "engine: 900 commands, 1800 events, 1 blocked turns, 0 misrouted"
        );
        // Nothing refused on the admin socket: no admin line.
        assert_eq!(lines.len(), 19);
    }

    #[test]
    fn summary_shows_throttled_heartbeats_and_cancel_reserve_refusals() {
        let report = one_reactor(
            Counters {
                ring_full: 392,
                heartbeats_throttled: 100,
                ring_reserve_refusals: 344,
                ..Counters::default()
            },
            UringCounters::default(),
        );
        let text = summary(&report, Duration::from_secs(1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[5..7],
            [
                "  ring full 392, slow consumers 0, logon timeouts 0",
                "  heartbeats throttled 100, new orders refused for the cancel reserve 344",
            ]
        );
    }

    #[test]
    fn summary_reports_back_pressure_when_there_was_any() {
        let report = one_reactor(
            Counters {
                slow_consumers: 1,
                input_paused: 41,
                tx_abandoned: 1,
                ..Counters::default()
            },
            UringCounters {
                recv_parked: 265,
                recv_parked_max: 19,
                ..UringCounters::default()
            },
        );
        let text = summary(&report, Duration::from_secs(1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[5..7],
            [
                "  ring full 0, slow consumers 1, logon timeouts 0",
                "  back-pressure: input paused 41, receive buffers parked 265 (at most 19 by one \
                 connection, 0 over cap), tx abandoned 1",
            ]
        );
    }

    #[test]
    fn summary_shows_key_sweeps_and_the_engines_risk_refusals() {
        let report = GatewayReport {
            reactors: vec![ReactorReport {
                counters: Counters {
                    key_sweeps: 2,
                    key_sweep_canceled: 5,
                    key_sweeps_deferred: 1,
                    ..Counters::default()
                },
                uring: UringCounters::default(),
                recv_to_ring_ns: Histogram::new(3).unwrap(),
                engine: None,
            }],
            engine: EngineCounters {
                price_rejects: 3,
                notional_rejects: 4,
                open_notional_rejects: 6,
                key_sweeps: 2,
                key_sweep_canceled: 5,
                limits_installed: 1,
                ..EngineCounters::default()
            },
            journal: None,
        };
        let text = summary(&report, Duration::from_secs(1));
        assert!(
            text.contains(
                "  key sweeps 2 (5 resting orders canceled, 1 deferred for a full ring)\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "engine risk: 3 price out of band, 4 over max notional, 6 over max open \
                 notional; 2 key sweeps canceled 5 orders; 1 limit sets installed\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn lost_completions_get_a_line_of_their_own_only_when_there_are_any() {
        let mut out = String::new();
        uring_health(&mut out, &UringCounters::default());
        assert!(!out.contains("cq_dropped"), "{out}");
        let mut out = String::new();
        uring_health(
            &mut out,
            &UringCounters {
                cq_dropped: 2,
                ..UringCounters::default()
            },
        );
        assert!(
            out.ends_with(&format!("    cq_dropped: {CQ_DROPPED_HINT}\n")),
            "{out}"
        );
    }

    #[test]
    fn the_kernel_entries_line_divides_by_the_messages_and_leaves_out_idle_wake_ups() {
        let u = UringCounters {
            enters: 2100,
            enter_waits: 2050,
            enter_wait_timeouts: 80,
            enter_wait_own: 20,
            spin_hits: 3,
            spin_misses: 7,
            spin_budget_ns: 0,
            ..UringCounters::default()
        };
        let mut out = String::new();
        enters_line(&mut out, &u, 2000);
        assert_eq!(
            out,
            "  kernel entries: 2100 io_uring_enter, 1.05 per message (1.00 without 100 idle \
             wake-ups); 2050 blocking waits; spin 3 hits, 7 misses, budget 0 ns\n"
        );
        let mut out = String::new();
        enters_line(
            &mut out,
            &UringCounters {
                enters: 1,
                sqpoll_wakeups: 1,
                ..UringCounters::default()
            },
            0,
        );
        assert!(out.ends_with("n/a per message (n/a without 0 idle wake-ups); 0 blocking waits; spin 0 hits, 0 misses, \
                 budget 0 ns; 1 SQPOLL wake-ups\n"), "{out}");
        let mut out = String::new();
        enters_line(&mut out, &UringCounters::default(), 5);
        assert_eq!(out, "", "no line for a reactor that never entered");
    }

    #[test]
    fn summary_explains_a_dry_receive_buffer_pool() {
        let report = one_reactor(
            Counters::default(),
            UringCounters {
                recv_enobufs: 12,
                ..UringCounters::default()
            },
        );
        let text = summary(&report, Duration::from_secs(1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[7..],
            [
                "  io_uring: sq_full 0, recv_enobufs 12, cq_overflow 0, turn_ns_max 0 ns",
                "    recv_enobufs: the provided receive buffers ran dry and receives waited to be \
                 re-armed; raise reactors.recv_buffers",
                "engine: 0 commands, 0 events, 0 blocked turns, 0 misrouted",
            ]
        );
    }

    #[test]
    fn summary_shows_admission_only_when_it_acted() {
        let report = |counters, uring| GatewayReport {
            reactors: vec![ReactorReport {
                counters,
                uring,
                recv_to_ring_ns: Histogram::new(3).unwrap(),
                engine: None,
            }],
            engine: EngineCounters::default(),
            journal: None,
        };
        let quiet = summary(
            &report(Counters::default(), UringCounters::default()),
            Duration::from_secs(1),
        );
        assert!(!quiet.contains("admission"), "{quiet}");
        let busy = summary(
            &report(
                Counters {
                    address_cap_refusals: 3,
                    pending_evictions: 2,
                    accepts_waited: 2,
                    ..Counters::default()
                },
                UringCounters {
                    accept_emfile: 5,
                    accept_errors: 1,
                    ..UringCounters::default()
                },
            ),
            Duration::from_secs(1),
        );
        let lines: Vec<&str> = busy.lines().collect();
        assert_eq!(
            lines[8],
            "  admission: 3 refused over the per-address cap, 2 evicted before logon, 2 waited \
             for a slot, 5 accepts out of descriptors (EMFILE/ENFILE), 1 other failed accepts"
        );
    }

    #[test]
    fn summary_names_each_control_that_acted() {
        let report = one_reactor(
            Counters {
                reload_ended: 2,
                slots_retired: 1,
                ..Counters::default()
            },
            UringCounters::default(),
        );
        let text = summary(&report, Duration::from_secs(1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[6], "  controls: reload_ended 2, slots_retired 1");
        assert!(lines[7].starts_with("  recv→ring:"), "{}", lines[7]);
    }

    #[test]
    fn summary_shows_the_logon_defences_when_they_acted() {
        let report = one_reactor(
            Counters {
                lockouts: 2,
                logons_locked_out: 7,
                logons_throttled_address: 300,
                logons_throttled_key: 40,
                logons_nonce_share_full: 1,
                lockout_evictions: 9000,
                logon_rate_evictions: 12,
                ..Counters::default()
            },
            UringCounters::default(),
        );
        let text = summary(&report, Duration::from_secs(1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[7..],
            [
                "  io_uring: sq_full 0, recv_enobufs 0, cq_overflow 0, turn_ns_max 0 ns",
                "  logon defences: locked out 7, throttled by address 300, by key 40, nonce cache \
                 full 1; forgotten under pressure: 9000 lockout records, 12 address rate cells",
                "engine: 0 commands, 0 events, 0 blocked turns, 0 misrouted",
            ]
        );
    }

    #[test]
    fn summary_shows_the_journal_and_what_went_wrong() {
        let mut journal = crate::journal::JournalStats {
            records: 130,
            segment: 2,
            segment_records: 2,
            capacity: 64,
            aggregates: 3,
            preauth_events: 3000,
            rollovers: 2,
            high_water: 2,
            ..Default::default()
        };
        let report = |journal| GatewayReport {
            reactors: Vec::new(),
            engine: EngineCounters::default(),
            journal: Some(journal),
        };
        let text = summary(&report(journal), Duration::from_secs(1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[2..],
            [
                "journal: 130 records, segment 2 (2 of 64), 3 pre-auth aggregates of 3000 events, \
              2 rollovers, 2 high-water alarms"
            ]
        );
        journal.rollover_failures = 1;
        journal.lost = 5;
        journal.failure = Some(crate::journal::FailReason::RolloverFailed);
        let text = summary(&report(journal), Duration::from_secs(1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[3..],
            [
                "  journal: 0 pre-auth events from other addresses (table full), 0 not journaled \
                 (reserve), 0 dropped to full rings (gaps), 5 lost after a failure, 1 rollover \
                 failures",
                "  journal FAILED (journal rollover failed): new logons were refused from then on",
            ]
        );
    }

    #[test]
    fn housekeeping_is_every_allowed_core_nothing_is_pinned_to() {
        let pinned = |reactors: Vec<usize>, engine| {
            pinned_cores(&GatewaySpec {
                reactor_cores: reactors,
                engine,
                ..GatewaySpec::default()
            })
        };
        let shared = EnginePlacement::SharedWithReactor0;
        let all = [0, 1, 2, 3, 4, 5, 6, 7];
        // Nothing pinned: nothing to keep away from.
        assert_eq!(pinned(vec![], shared), Vec::<usize>::new());
        assert_eq!(
            housekeeping_cores(&pinned(vec![], shared), Some(&all)),
            None
        );
        let own_core_6 = EnginePlacement::OwnThread { core: Some(6) };
        assert_eq!(pinned(vec![2, 3], own_core_6), [2, 3, 6]);
        assert_eq!(
            housekeeping_cores(&pinned(vec![2, 3], own_core_6), Some(&all)),
            Some(vec![0, 1, 4, 5, 7])
        );
        assert_eq!(
            housekeeping_cores(&pinned(vec![1], shared), Some(&[0, 1])),
            Some(vec![0])
        );
        // Every core taken, or the mask unreadable: none.
        assert_eq!(
            housekeeping_cores(&pinned(vec![0, 1], shared), Some(&[0, 1])),
            None
        );
        assert_eq!(housekeeping_cores(&pinned(vec![1], shared), None), None);
    }

    #[test]
    fn nanos_pick_a_short_unit() {
        assert_eq!(nanos(999), "999 ns");
        assert_eq!(nanos(1_500), "1.5 µs");
        assert_eq!(nanos(2_500_000), "2.5 ms");
        assert_eq!(nanos(3_000_000_000), "3.00 s");
    }
}
