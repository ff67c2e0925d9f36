//! The `serve` configuration file, checked against the limits of
//! `constants.rs` and turned into a [`GatewaySpec`].
//!
//! [`load`] reads and checks a file; [`parse`] checks text (tests, tools);
//! [`Config::to_spec`] gives the spec `Gateway::start` takes;
//! [`Config::check_cores`] (at `serve` time) checks the pinning against the
//! cores this process may use. Checks run in the order of the table below,
//! and stop at the first problem.
//!
//! The reference below is `docs/CONFIG.md`, included as is.
//!
#![doc = include_str!("../../../docs/CONFIG.md")]

use std::fmt;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::auth::keys::{BURST_MAX, MSGS_PER_SEC_MAX, echoable};
use crate::constants::*;
use crate::engine::book::{ENGINE_ORDERS_MAX_BOUND, EngineConfig, InstrumentRisk};
use crate::gateway::{EnginePlacement, GatewaySpec};
use crate::reactor::idle::IdleKind;
use crate::session::GatewayConfig;
use crate::wire::codes::Environment;

/// Defined in `constants` with its reason; here too for the old path.
pub use crate::constants::CONFIG_FILE_SIZE_MAX;

const NS_PER_MS: u64 = 1_000_000;

/// Where `serve` keeps its audit journal unless `audit_journal` or
/// `--audit-journal` says otherwise: relative, so in the directory `serve`
/// runs in.
pub const AUDIT_JOURNAL_DEFAULT: &str = "ordergate-audit.journal";

/// Where `serve` publishes its stats unless `stats_file` or `--stats-file`
/// says otherwise.
pub use crate::telemetry::STATS_FILE_DEFAULT;

/// The whole file. `Default` is [`GatewaySpec::default`] with `idle`
/// busy-spin and the audit journal and stats file at their default paths;
/// see the module docs for every field's default and bound.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a table of config fields")]
pub struct Config {
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// `None`: not in the file (then `--keys` must give it). [`load`] makes
    /// a relative path relative to the config file's directory.
    pub keys: Option<PathBuf>,
    /// `None`: not in the file (then `--audit-journal`, else
    /// [`AUDIT_JOURNAL_DEFAULT`]). [`load`] makes a relative path relative
    /// to the config file's directory, as `keys`.
    pub audit_journal: Option<PathBuf>,
    /// `None`: not in the file (then `--stats-file`, else
    /// [`STATS_FILE_DEFAULT`]). Relative paths as `audit_journal`.
    pub stats_file: Option<PathBuf>,
    pub reactors: ReactorsSection,
    pub engine: EngineSection,
    pub session: SessionSection,
    /// Records per audit journal segment (each new segment file is
    /// preallocated for this many).
    pub audit_capacity: u64,
    /// Whether a full journal segment rolls over to the next file (else the
    /// journal fails closed when full).
    pub audit_rollover: bool,
    /// The anchor key the journal's checkpoints are made with (64 hex
    /// digits, mode 0600); `None`: no checkpoints. Relative paths as
    /// `keys`.
    pub audit_anchor_key_file: Option<PathBuf>,
}

/// `[reactors]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [reactors] table")]
pub struct ReactorsSection {
    pub count: usize,
    /// Empty: not pinned. Else one core per reactor.
    pub cores: Vec<usize>,
    /// Session slots per reactor.
    pub sessions: usize,
    #[serde(deserialize_with = "idle_kind")]
    pub idle: IdleKind,
    pub uring_entries: u32,
    pub recv_buffers: u16,
    pub recv_buffer_size: u32,
    pub ring_capacity: usize,
    /// Connections one source address may hold per reactor before logon.
    pub pending_logons_per_address: usize,
    /// Back-off's longest spin before blocking, µs (0: block after every
    /// turn).
    pub spin_max_us: u32,
    /// An SQPOLL thread per reactor ring.
    pub sqpoll: bool,
    /// Empty: the SQPOLL threads are not pinned. Else one core per reactor.
    pub sqpoll_cores: Vec<usize>,
}

/// `[engine]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "an [engine] table")]
pub struct EngineSection {
    pub placement: Placement,
    /// Only with [`Placement::OwnThread`].
    pub core: Option<usize>,
    pub instruments: u32,
    pub orders_max: usize,
    /// Half-width of every instrument's price collar, basis points of its
    /// reference price.
    pub collar_bps: u32,
    /// API keys that can have resting orders at once.
    pub keys_max: usize,
    /// `[[engine.instrument]]`: per-instrument price settings.
    pub instrument: Vec<InstrumentSection>,
    /// Where the engine is: `"in-process"` (default) or `"shm:PATH"`, the
    /// file of an `ordergate engine --shm PATH` on this host
    /// (docs/ENGINE.md). With `shm:` the other `[engine]` settings are the
    /// engine process's business and are not used here.
    pub link: String,
}

/// One `[[engine.instrument]]` table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [[engine.instrument]] table")]
pub struct InstrumentSection {
    pub id: u32,
    /// The collar's reference before the first trade.
    #[serde(default)]
    pub reference: Option<i64>,
    /// This instrument's collar width, instead of `engine.collar_bps`.
    #[serde(default)]
    pub collar_bps: Option<u32>,
    /// Prices <= 0 are accepted.
    #[serde(default)]
    pub nonpositive_prices: bool,
}

/// `engine.placement`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// `"own-thread"`: [`EnginePlacement::OwnThread`].
    OwnThread,
    /// `"shared"`: [`EnginePlacement::SharedWithReactor0`].
    Shared,
}

/// `[session]`: the gateway-wide session policy, in milliseconds where
/// [`GatewayConfig`] has nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [session] table")]
pub struct SessionSection {
    #[serde(deserialize_with = "environment")]
    pub environment: Environment,
    pub logon_timeout_ms: u64,
    pub logon_skew_ms: u64,
    pub throttle_breach_run: u32,
    pub msgs_per_sec: u32,
    pub burst: u32,
    pub logon_failures_max: u32,
    pub logon_lockout_window_ms: u64,
    pub logon_rate_per_key: u32,
    pub logon_burst_per_key: u32,
    pub logon_rate_per_address: u32,
    pub logon_burst_per_address: u32,
}

impl Default for Config {
    fn default() -> Config {
        let mut config = Config::from_spec(&GatewaySpec::default());
        config.reactors.idle = IdleKind::BusySpin;
        config
    }
}

// Each section's default is its part of `Config::default()`, so a partly
// written section fills its gaps exactly as a missing one would.
impl Default for ReactorsSection {
    fn default() -> ReactorsSection {
        Config::default().reactors
    }
}

impl Default for EngineSection {
    fn default() -> EngineSection {
        Config::default().engine
    }
}

impl Default for SessionSection {
    fn default() -> SessionSection {
        Config::default().session
    }
}

impl Config {
    /// The config that gives `spec` back through [`Config::to_spec`], as
    /// far as the file can say it: `keys` is `None`, times are truncated to
    /// whole milliseconds, and the engine's `levels_per_side_max` and
    /// `first_order_id` (not in the file) are dropped. A spec without an
    /// audit journal or stats file (tests, `demo`) gives `None`, which
    /// `to_spec` reads as the default path: `serve` always keeps both.
    pub fn from_spec(spec: &GatewaySpec) -> Config {
        let (placement, core) = match spec.engine {
            EnginePlacement::OwnThread { core } => (Placement::OwnThread, core),
            EnginePlacement::SharedWithReactor0 => (Placement::Shared, None),
        };
        let s = &spec.session;
        Config {
            listen: spec.listen,
            keys: None,
            audit_journal: spec.audit_journal.clone(),
            stats_file: spec.stats_file.clone(),
            reactors: ReactorsSection {
                count: spec.reactors,
                cores: spec.reactor_cores.clone(),
                sessions: spec.sessions_per_reactor,
                idle: spec.idle,
                uring_entries: spec.uring_entries,
                recv_buffers: spec.recv_buffers,
                recv_buffer_size: spec.recv_buffer_size,
                ring_capacity: spec.ring_capacity,
                pending_logons_per_address: spec.pending_logons_per_address,
                spin_max_us: spec.spin_max.as_micros().min(u32::MAX.into()) as u32,
                sqpoll: spec.sqpoll,
                sqpoll_cores: spec.sqpoll_cores.clone(),
            },
            engine: EngineSection {
                placement,
                core,
                instruments: spec.engine_config.instruments,
                orders_max: spec.engine_config.orders_max,
                collar_bps: spec.engine_config.collar_bps,
                keys_max: spec.engine_config.keys_max,
                instrument: spec
                    .engine_config
                    .instrument_risk
                    .iter()
                    .map(|r| InstrumentSection {
                        id: r.instrument,
                        reference: r.reference,
                        collar_bps: r.collar_bps,
                        nonpositive_prices: r.nonpositive_prices,
                    })
                    .collect(),
                link: spec.engine_link.to_string(),
            },
            session: SessionSection {
                environment: s.environment,
                logon_timeout_ms: s.logon_timeout_ns / NS_PER_MS,
                logon_skew_ms: s.logon_skew_ns / NS_PER_MS,
                throttle_breach_run: s.throttle_breach_run,
                msgs_per_sec: s.session_msgs_per_sec,
                burst: s.session_burst,
                logon_failures_max: s.logon_failures_max,
                logon_lockout_window_ms: s.logon_lockout_window_ns / NS_PER_MS,
                logon_rate_per_key: s.logon_rate_per_key,
                logon_burst_per_key: s.logon_burst_per_key,
                logon_rate_per_address: s.logon_rate_per_address,
                logon_burst_per_address: s.logon_burst_per_address,
            },
            audit_capacity: spec.audit_capacity,
            audit_rollover: spec.audit_rollover,
            audit_anchor_key_file: spec.audit_anchor_key_file.clone(),
        }
    }

    /// The spec `Gateway::start` takes. Meant for a config that passed
    /// [`Config::validate`] ([`load`] and [`parse`] only return those); on
    /// any other it does not panic, and `start` refuses what is wrong.
    pub fn to_spec(&self) -> GatewaySpec {
        let r = &self.reactors;
        let e = &self.engine;
        let s = &self.session;
        GatewaySpec {
            // Validated; an unparsable one (never from `load`) stays in-process.
            engine_link: crate::gateway::EngineLink::parse(&e.link).unwrap_or_default(),
            listen: self.listen,
            reactors: r.count,
            reactor_cores: r.cores.clone(),
            engine: match e.placement {
                Placement::OwnThread => EnginePlacement::OwnThread { core: e.core },
                Placement::Shared => EnginePlacement::SharedWithReactor0,
            },
            sessions_per_reactor: r.sessions,
            ring_capacity: r.ring_capacity,
            recv_buffers: r.recv_buffers,
            recv_buffer_size: r.recv_buffer_size,
            uring_entries: r.uring_entries,
            idle: r.idle,
            session: GatewayConfig {
                environment: s.environment,
                logon_skew_ns: s.logon_skew_ms.saturating_mul(NS_PER_MS),
                logon_timeout_ns: s.logon_timeout_ms.saturating_mul(NS_PER_MS),
                throttle_breach_run: s.throttle_breach_run,
                logon_failures_max: s.logon_failures_max,
                logon_lockout_window_ns: s.logon_lockout_window_ms.saturating_mul(NS_PER_MS),
                session_msgs_per_sec: s.msgs_per_sec,
                session_burst: s.burst,
                logon_rate_per_key: s.logon_rate_per_key,
                logon_burst_per_key: s.logon_burst_per_key,
                logon_rate_per_address: s.logon_rate_per_address,
                logon_burst_per_address: s.logon_burst_per_address,
            },
            audit_journal: Some(self.audit_journal_path()),
            audit_capacity: self.audit_capacity,
            audit_rollover: self.audit_rollover,
            stats_file: Some(self.stats_file_path()),
            pending_logons_per_address: r.pending_logons_per_address,
            audit_anchor_key_file: self.audit_anchor_key_file.clone(),
            engine_config: EngineConfig {
                instruments: e.instruments,
                orders_max: e.orders_max,
                collar_bps: e.collar_bps,
                keys_max: e.keys_max,
                instrument_risk: e
                    .instrument
                    .iter()
                    .map(|i| InstrumentRisk {
                        instrument: i.id,
                        reference: i.reference,
                        collar_bps: i.collar_bps,
                        nonpositive_prices: i.nonpositive_prices,
                    })
                    .collect(),
                ..EngineConfig::default()
            },
            spin_max: std::time::Duration::from_micros(r.spin_max_us.into()),
            sqpoll: r.sqpoll,
            sqpoll_cores: r.sqpoll_cores.clone(),
            ..GatewaySpec::default()
        }
    }

    /// The audit journal `serve` keeps: `audit_journal`, else
    /// [`AUDIT_JOURNAL_DEFAULT`].
    pub fn audit_journal_path(&self) -> PathBuf {
        self.audit_journal
            .clone()
            .unwrap_or_else(|| PathBuf::from(AUDIT_JOURNAL_DEFAULT))
    }

    /// The stats file `serve` publishes to: `stats_file`, else
    /// [`STATS_FILE_DEFAULT`].
    pub fn stats_file_path(&self) -> PathBuf {
        self.stats_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(STATS_FILE_DEFAULT))
    }

    /// Checks every value against its bound, in the order of the module
    /// docs' table, and returns the first problem. Does not look at the
    /// host: see [`Config::check_cores`].
    ///
    /// # Errors
    ///
    /// The first value out of its bound, naming the field.
    pub fn validate(&self) -> Result<(), ConfigErrorKind> {
        use ConfigErrorKind::*;
        for (field, path, default) in [
            ("keys", &self.keys, None),
            (
                "audit_journal",
                &self.audit_journal,
                Some(AUDIT_JOURNAL_DEFAULT),
            ),
            ("stats_file", &self.stats_file, Some(STATS_FILE_DEFAULT)),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Err(EmptyPath { field, default });
            }
        }
        if self
            .audit_anchor_key_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(Invalid {
                field: "audit_anchor_key_file".into(),
                message: "an empty path; give the anchor key file, or leave it out for a journal \
                          without checkpoints"
                    .into(),
            });
        }
        in_range(
            "audit_capacity",
            self.audit_capacity,
            if self.audit_rollover {
                JOURNAL_SEGMENT_RECORDS_MIN
            } else {
                1
            },
            crate::journal::format::CAPACITY_RECORDS_MAX,
        )?;
        let r = &self.reactors;
        in_range("reactors.count", r.count as u64, 1, REACTORS_MAX as u64)?;
        if !r.cores.is_empty() {
            if r.cores.len() != r.count {
                return Err(CoresLength {
                    cores: r.cores.len(),
                    count: r.count,
                });
            }
            for (second, core) in r.cores.iter().enumerate() {
                if let Some(first) = r.cores[..second].iter().position(|c| c == core) {
                    return Err(DuplicateCore {
                        core: *core,
                        first,
                        second,
                    });
                }
            }
        }
        in_range(
            "reactors.sessions",
            r.sessions as u64,
            1,
            SESSIONS_PER_REACTOR_MAX as u64,
        )?;
        power_of_two(
            "reactors.uring_entries",
            r.uring_entries.into(),
            1,
            URING_ENTRIES_MAX.into(),
        )?;
        power_of_two(
            "reactors.recv_buffers",
            r.recv_buffers.into(),
            1,
            RECV_BUFFERS_MAX.into(),
        )?;
        in_range(
            "reactors.recv_buffer_size",
            r.recv_buffer_size.into(),
            RECV_BUFFER_SIZE_MIN.into(),
            RECV_BUFFER_SIZE_MAX.into(),
        )?;
        power_of_two(
            "reactors.ring_capacity",
            r.ring_capacity as u64,
            RING_CAPACITY_MIN as u64,
            RING_CAPACITY_MAX as u64,
        )?;
        in_range(
            "reactors.pending_logons_per_address",
            r.pending_logons_per_address as u64,
            1,
            PENDING_LOGONS_PER_ADDRESS_MAX as u64,
        )?;
        in_range(
            "reactors.spin_max_us",
            r.spin_max_us.into(),
            0,
            SPIN_MAX_US_MAX.into(),
        )?;
        if r.sqpoll && r.sqpoll_cores.is_empty() && !r.cores.is_empty() {
            return Err(Invalid {
                field: "reactors.sqpoll_cores".into(),
                message: "the reactors are pinned but their SQPOLL threads are not: each \
                          poller would inherit its reactor's core and take turns with it; \
                          give each a core of its own"
                    .into(),
            });
        }
        if !r.sqpoll_cores.is_empty() {
            let problem = if !r.sqpoll {
                Some("SQPOLL cores are given but `reactors.sqpoll` is false".to_string())
            } else if r.sqpoll_cores.len() != r.count {
                Some(format!(
                    "{} cores for {} reactors; give one per reactor, or [] to leave the \
                     SQPOLL threads unpinned",
                    r.sqpoll_cores.len(),
                    r.count
                ))
            } else {
                r.sqpoll_cores
                    .iter()
                    .find(|c| r.cores.contains(c))
                    .map(|c| format!("core {c} is also a reactor's core; the poller needs its own"))
            };
            if let Some(message) = problem {
                return Err(Invalid {
                    field: "reactors.sqpoll_cores".into(),
                    message,
                });
            }
        }

        let e = &self.engine;
        if let Err(message) = crate::gateway::EngineLink::parse(&e.link) {
            return Err(Invalid {
                field: "engine.link".into(),
                message,
            });
        }
        if let Some(core) = e.core {
            if e.placement == Placement::Shared {
                return Err(EngineCoreWhenShared { core });
            }
            if let Some(reactor) = r.cores.iter().position(|c| *c == core) {
                return Err(EngineCoreTaken { core, reactor });
            }
        }
        in_range(
            "engine.instruments",
            e.instruments.into(),
            1,
            INSTRUMENTS_MAX.into(),
        )?;
        in_range(
            "engine.orders_max",
            e.orders_max as u64,
            1,
            ENGINE_ORDERS_MAX_BOUND as u64,
        )?;
        in_range(
            "engine.collar_bps",
            e.collar_bps.into(),
            1,
            COLLAR_BPS_MAX.into(),
        )?;
        in_range(
            "engine.keys_max",
            e.keys_max as u64,
            1,
            ENGINE_KEYS_BOUND as u64,
        )?;
        for (at, i) in e.instrument.iter().enumerate() {
            in_range("engine.instrument.id", i.id.into(), 1, e.instruments.into())?;
            if e.instrument[..at].iter().any(|o| o.id == i.id) {
                return Err(DuplicateInstrument { id: i.id });
            }
            if let Some(bps) = i.collar_bps {
                in_range(
                    "engine.instrument.collar_bps",
                    bps.into(),
                    1,
                    COLLAR_BPS_MAX.into(),
                )?;
            }
            if i.reference.is_some_and(|p| p <= 0) && !i.nonpositive_prices {
                return Err(NonPositiveReference { id: i.id });
            }
        }

        let s = &self.session;
        in_range(
            "session.logon_timeout_ms",
            s.logon_timeout_ms,
            1,
            LOGON_TIMEOUT_MS_MAX,
        )?;
        in_range(
            "session.logon_skew_ms",
            s.logon_skew_ms,
            1,
            LOGON_SKEW_MS_MAX,
        )?;
        in_range(
            "session.throttle_breach_run",
            s.throttle_breach_run.into(),
            1,
            THROTTLE_BREACH_RUN_MAX.into(),
        )?;
        in_range(
            "session.msgs_per_sec",
            s.msgs_per_sec.into(),
            1,
            MSGS_PER_SEC_MAX.into(),
        )?;
        in_range("session.burst", s.burst.into(), 1, BURST_MAX.into())?;
        in_range(
            "session.logon_failures_max",
            s.logon_failures_max.into(),
            1,
            LOGON_FAILURES_MAX_BOUND.into(),
        )?;
        in_range(
            "session.logon_lockout_window_ms",
            s.logon_lockout_window_ms,
            1,
            LOGON_LOCKOUT_WINDOW_MS_MAX,
        )?;
        for (field, value, max) in [
            (
                "session.logon_rate_per_key",
                s.logon_rate_per_key,
                LOGON_RATE_MAX,
            ),
            (
                "session.logon_burst_per_key",
                s.logon_burst_per_key,
                LOGON_BURST_MAX,
            ),
            (
                "session.logon_rate_per_address",
                s.logon_rate_per_address,
                LOGON_RATE_MAX,
            ),
            (
                "session.logon_burst_per_address",
                s.logon_burst_per_address,
                LOGON_BURST_MAX,
            ),
        ] {
            in_range(field, value.into(), 1, max.into())?;
        }
        Ok(())
    }

    /// Checks `reactors.cores` and `engine.core` against `available`, the
    /// core ids this process may run on (`None`: the host would not say).
    /// Pure, so tests can give any host; `serve` passes
    /// [`available_cores`].
    ///
    /// # Errors
    ///
    /// The first pinned core not in `available`, or
    /// [`ConfigErrorKind::CoresUnknown`] if there is a pinned core and
    /// `available` is `None`.
    pub fn check_cores(&self, available: Option<&[usize]>) -> Result<(), ConfigErrorKind> {
        let pinned = self
            .reactors
            .cores
            .iter()
            .map(|core| ("reactors.cores", *core))
            .chain(self.engine.core.map(|core| ("engine.core", core)))
            .chain(
                self.reactors
                    .sqpoll_cores
                    .iter()
                    .map(|core| ("reactors.sqpoll_cores", *core)),
            );
        for (field, core) in pinned {
            let Some(available) = available else {
                return Err(ConfigErrorKind::CoresUnknown { field });
            };
            if !available.contains(&core) {
                return Err(ConfigErrorKind::CoreUnavailable {
                    field,
                    core,
                    available: available.to_vec(),
                });
            }
        }
        Ok(())
    }
}

/// The core ids this process may run on (its affinity mask), sorted; `None`
/// if the host does not say.
pub fn available_cores() -> Option<Vec<usize>> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()?
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    Some(ids)
}

fn in_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigErrorKind> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigErrorKind::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

fn power_of_two(
    field: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), ConfigErrorKind> {
    in_range(field, value, min, max)?;
    if value.is_power_of_two() {
        Ok(())
    } else {
        Err(ConfigErrorKind::NotPowerOfTwo { field, value })
    }
}

fn idle_kind<'de, D: Deserializer<'de>>(d: D) -> Result<IdleKind, D::Error> {
    const NAMES: &[&str] = &["busy-spin", "backoff"];
    let name = String::deserialize(d)?;
    match name.as_str() {
        "busy-spin" => Ok(IdleKind::BusySpin),
        "backoff" => Ok(IdleKind::Backoff),
        other => Err(de::Error::unknown_variant(other, NAMES)),
    }
}

fn environment<'de, D: Deserializer<'de>>(d: D) -> Result<Environment, D::Error> {
    const NAMES: &[&str] = &["production", "sandbox"];
    let name = String::deserialize(d)?;
    match name.as_str() {
        "production" => Ok(Environment::Production),
        "sandbox" => Ok(Environment::Sandbox),
        other => Err(de::Error::unknown_variant(other, NAMES)),
    }
}

/// `listen` here, and `--listen`, `--prometheus`, `--connect` on the
/// command line: an IP address and a port.
/// Host names are not looked up: a gateway binds, and a load connects to,
/// exactly the address given (a name may resolve to several, or to another
/// one tomorrow).
///
/// # Errors
///
/// What the text is not, with examples.
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        let why = match text.rsplit_once(':') {
            None => " (there is no port)".to_owned(),
            Some((_, port)) if port.parse::<u16>().is_err() => {
                format!(" (`{port}` is not a port, 0..=65535)")
            }
            Some((host, _)) if host.parse::<std::net::IpAddr>().is_err() => {
                format!(" (`{host}` is not an IP address)")
            }
            Some(_) => " (an IPv6 address goes in brackets)".to_owned(),
        };
        format!(
            "`{text}` is not an IP address and a port{why}: give e.g. 127.0.0.1:9000, 0.0.0.0:9000 or [::1]:9000; host names are not looked up"
        )
    })
}

/// `listen`: as [`parse_socket_addr`], so that the file explains a host
/// name the way the flag does.
fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_socket_addr(&text).map_err(de::Error::custom)
}

// ---------------------------------------------------------------------------
// Loading

/// Reads, parses and checks the config file at `path` (not against the
/// host: `serve` calls [`Config::check_cores`] too). A relative `keys`,
/// `audit_journal` or `stats_file` is made relative to the file's
/// directory.
///
/// # Errors
///
/// The first problem, naming the file, the place and the field.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let fail = |kind| ConfigError::new(&origin, None, kind);
    let io = |action| move |source| fail(ConfigErrorKind::Io { action, source });

    let mut file = File::open(path).map_err(io("open"))?;
    let mut bytes = Vec::new();
    crate::files::read_bounded(&mut file, CONFIG_FILE_SIZE_MAX, &mut bytes).map_err(|e| {
        use crate::files::ReadBoundedError as E;
        match e {
            E::Inspect(source) => io("inspect")(source),
            E::TooLarge { size } => fail(ConfigErrorKind::TooLarge {
                size,
                max: CONFIG_FILE_SIZE_MAX,
            }),
            E::Read(source) => io("read")(source),
            E::Changed => fail(ConfigErrorKind::ChangedWhileReading),
        }
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        fail(ConfigErrorKind::NotUtf8 {
            offset: e.valid_up_to(),
        })
    })?;

    let mut config = parse(text, &origin)?;
    if let Some(dir) = path.parent() {
        for file in [
            &mut config.keys,
            &mut config.audit_journal,
            &mut config.stats_file,
            &mut config.audit_anchor_key_file,
        ]
        .into_iter()
        .flatten()
        {
            if file.is_relative() {
                *file = dir.join(&*file);
            }
        }
    }
    Ok(config)
}

/// Parses and checks the text of a config file; `origin` names it in
/// errors. `keys`, `audit_journal` and `stats_file` are left as written.
///
/// # Errors
///
/// As [`load`], but never `Io`, `TooLarge` or `NotUtf8`.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let root = DeTable::parse(text).map_err(|e| {
        let location = e.span().map(|s| Location::of(text, s.start));
        ConfigError::new(
            origin,
            location,
            ConfigErrorKind::Syntax {
                message: scrub_config(e.message()),
            },
        )
    })?;
    let mut fields = Vec::new();
    index_fields(root.get_ref(), &mut String::new(), &mut fields);
    let mut entries = Vec::new();
    index_entries(root.get_ref(), &mut entries);

    let config = Config::deserialize(toml::de::Deserializer::from(root)).map_err(|e| {
        let span = e.span();
        let field = span
            .as_ref()
            .and_then(|s| field_at(&fields, s.start))
            .unwrap_or_default();
        let location = span.map(|s| Location::of(text, s.start));
        let message = e.message();
        let kind = match unknown_field(message) {
            Some((name, expected)) => ConfigErrorKind::UnknownField {
                // The index names a key at the error's span; if it found
                // none, the name from the message is still the field.
                field: echo_field(if field.is_empty() { name } else { &field }),
                expected: scrub_config(expected),
            },
            None => ConfigErrorKind::Invalid {
                field: if field.is_empty() {
                    field
                } else {
                    echo_field(&field)
                },
                message: scrub_config(message),
            },
        };
        ConfigError::new(origin, location, kind)
    })?;

    config.validate().map_err(|kind| {
        // A field of one `[[engine.instrument]]` table: that table's.
        let in_entry = instrument_at(&kind, &config).and_then(|at| {
            let field = kind.field()?.rsplit('.').next()?;
            entries
                .iter()
                .find(|(i, name, _)| *i == at && name == field)
                .map(|(_, _, span)| span)
        });
        let location = in_entry
            .or_else(|| {
                kind.field()
                    .and_then(|f| fields.iter().find(|(name, _)| name == f))
                    .map(|(_, span)| span)
            })
            .map(|span| Location::of(text, span.start));
        ConfigError::new(origin, location, kind)
    })?;
    Ok(config)
}

/// Every key of the document with its dotted name and the span of its key
/// and value together (`reactors.count`, `count = 0`), outermost first.
fn index_fields(table: &DeTable<'_>, prefix: &mut String, out: &mut Vec<(String, Range<usize>)>) {
    for (key, value) in table.iter() {
        let name = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        out.push((name.clone(), span_of(key, value)));
        if let DeValue::Table(inner) = value.get_ref() {
            let mut inner_prefix = name;
            index_fields(inner, &mut inner_prefix, out);
        }
    }
}

fn span_of<K, V>(key: &Spanned<K>, value: &Spanned<V>) -> Range<usize> {
    let (k, v) = (key.span(), value.span());
    k.start.min(v.start)..k.end.max(v.end)
}

/// The fields of each `[[engine.instrument]]` table: its position in the
/// array, the field's name, the span of its key and value. (`fields` names
/// a field once; these tables repeat theirs.)
fn index_entries(root: &DeTable<'_>, out: &mut Vec<(usize, String, Range<usize>)>) {
    let Some(DeValue::Table(engine)) = root.get("engine").map(|v| v.get_ref()) else {
        return;
    };
    let Some(DeValue::Array(tables)) = engine.get("instrument").map(|v| v.get_ref()) else {
        return;
    };
    for (at, table) in tables.iter().enumerate() {
        if let DeValue::Table(table) = table.get_ref() {
            for (key, value) in table.iter() {
                out.push((at, key.get_ref().to_string(), span_of(key, value)));
            }
        }
    }
}

/// Which `[[engine.instrument]]` table (position) a refusal of
/// [`Config::validate`] is about, found as `validate` found it: the first
/// table whose value fails.
fn instrument_at(kind: &ConfigErrorKind, config: &Config) -> Option<usize> {
    let tables = &config.engine.instrument;
    match *kind {
        ConfigErrorKind::OutOfRange {
            field: "engine.instrument.id",
            value,
            ..
        } => tables.iter().position(|i| u64::from(i.id) == value),
        ConfigErrorKind::OutOfRange {
            field: "engine.instrument.collar_bps",
            value,
            ..
        } => tables
            .iter()
            .position(|i| i.collar_bps.map(u64::from) == Some(value)),
        // The second table with the id.
        ConfigErrorKind::DuplicateInstrument { id } => tables
            .iter()
            .enumerate()
            .filter(|(_, i)| i.id == id)
            .nth(1)
            .map(|(at, _)| at),
        ConfigErrorKind::NonPositiveReference { id } => tables.iter().position(|i| {
            i.id == id && i.reference.is_some_and(|p| p <= 0) && !i.nonpositive_prices
        }),
        _ => None,
    }
}

/// The innermost field whose key or value holds byte `offset`.
fn field_at(fields: &[(String, Range<usize>)], offset: usize) -> Option<String> {
    fields
        .iter()
        .filter(|(_, span)| span.contains(&offset))
        .max_by_key(|(name, _)| name.matches('.').count())
        .map(|(name, _)| name.clone())
}

/// A dotted field name from the file, if each part is a name an error may
/// repeat ([`echoable`]: no run of hex digits that could be part of a
/// secret pasted into the config); else a placeholder. toml's and serde's
/// messages go through [`scrub_config`] for the same reason: a keys file
/// given where the config belongs must not have its secrets printed.
fn echo_field(name: &str) -> String {
    if name.split('.').all(|part| echoable(part).is_some()) {
        name.to_owned()
    } else {
        "<withheld: it looks like key material>".to_owned()
    }
}

use crate::constants::CONFIG_HEX_RUN_MAX;

use crate::auth::keys::hex_run_max as hex_run;

/// toml's or serde's message with every quoted (`"…"` or `` `…` ``) part
/// that holds more than [`CONFIG_HEX_RUN_MAX`] hex digits in a row replaced
/// by `<withheld>`; if the rest still does, the whole message goes.
fn scrub_config(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        out.push_str(&rest[..open]);
        let quote = rest.as_bytes()[open] as char;
        let body = &rest[open + 1..];
        out.push(quote);
        match body.find(quote) {
            Some(close) => {
                let quoted = &body[..close];
                if hex_run(quoted) > CONFIG_HEX_RUN_MAX {
                    out.push_str("<withheld>");
                } else {
                    out.push_str(quoted);
                }
                out.push(quote);
                rest = &body[close + 1..];
            }
            None => {
                if hex_run(body) > CONFIG_HEX_RUN_MAX {
                    out.push_str("<withheld>");
                } else {
                    out.push_str(body);
                }
                rest = "";
            }
        }
    }
    out.push_str(rest);
    if hex_run(&out) > CONFIG_HEX_RUN_MAX {
        return "<message withheld: it quotes text that looks like key material>".to_owned();
    }
    out
}

/// Splits serde's "unknown field `NAME`, expected …" into NAME and the
/// "expected …" part.
fn unknown_field(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("unknown field `")?;
    let split = rest.rfind("`, expected ")?;
    Some((&rest[..split], &rest[split + 3..]))
}

// ---------------------------------------------------------------------------
// Errors

/// Why a config was refused. `Display` names the file, the place when known,
/// the field and the problem.
#[derive(Debug)]
pub struct ConfigError {
    origin: String,
    location: Option<Location>,
    kind: ConfigErrorKind,
}

/// A place in the file, both 1-based; the column counts characters (the
/// same type the keys file's errors use).
pub use crate::auth::keys::Location;

/// The problem itself. `field` is the dotted name (`reactors.count`).
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be opened, inspected or read.
    Io {
        action: &'static str,
        source: io::Error,
    },
    /// Larger than [`CONFIG_FILE_SIZE_MAX`].
    TooLarge { size: u64, max: u64 },
    /// Not UTF-8; `offset` is of the first byte that is not.
    NotUtf8 { offset: usize },
    /// Not TOML: toml's message.
    Syntax { message: String },
    /// A field this version does not know. `expected` is serde's list of
    /// the fields that table has.
    UnknownField { field: String, expected: String },
    /// A value of the wrong type, an unknown name, a bad address: serde's
    /// message. `field` is empty when the place names no field.
    Invalid { field: String, message: String },
    /// An integer outside `min..=max`.
    OutOfRange {
        field: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    /// Within its range, but not a power of two.
    NotPowerOfTwo { field: &'static str, value: u64 },
    /// `keys`, `audit_journal` or `stats_file` is `""`; `default` is the
    /// path used when the field is left out (`keys` has none).
    EmptyPath {
        field: &'static str,
        default: Option<&'static str>,
    },
    /// `reactors.cores` is not empty and not one core per reactor.
    CoresLength { cores: usize, count: usize },
    /// `reactors.cores[first]` and `reactors.cores[second]` are both `core`.
    DuplicateCore {
        core: usize,
        first: usize,
        second: usize,
    },
    /// `engine.core` is set but the engine shares reactor 0's thread.
    EngineCoreWhenShared { core: usize },
    /// `engine.core` is `reactors.cores[reactor]`.
    EngineCoreTaken { core: usize, reactor: usize },
    /// A pinned core this process may not run on (`serve` time).
    CoreUnavailable {
        field: &'static str,
        core: usize,
        available: Vec<usize>,
    },
    /// A core is pinned but the host would not list its cores.
    CoresUnknown { field: &'static str },
    /// Two `[[engine.instrument]]` tables name instrument `id`.
    DuplicateInstrument { id: u32 },
    /// `[[engine.instrument]]` `id` has a `reference` <= 0 but does not
    /// allow such prices (`nonpositive_prices`).
    NonPositiveReference { id: u32 },
    /// The file's size changed between `fstat` and the end of the read (it
    /// is being written).
    ChangedWhileReading,
}

impl ConfigError {
    /// A refusal of the config from `origin` (a path, or a name such as
    /// `<command line>`), for callers that check more than this module.
    pub fn new(origin: &str, location: Option<Location>, kind: ConfigErrorKind) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            location,
            kind,
        }
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn location(&self) -> Option<Location> {
        self.location
    }

    pub fn kind(&self) -> &ConfigErrorKind {
        &self.kind
    }
}

impl ConfigErrorKind {
    /// The dotted name of the field the problem is about, if one.
    pub fn field(&self) -> Option<&str> {
        use ConfigErrorKind::*;
        match self {
            UnknownField { field, .. } | Invalid { field, .. } if !field.is_empty() => Some(field),
            OutOfRange { field, .. }
            | NotPowerOfTwo { field, .. }
            | CoreUnavailable { field, .. }
            | CoresUnknown { field }
            | EmptyPath { field, .. } => Some(field),
            CoresLength { .. } | DuplicateCore { .. } => Some("reactors.cores"),
            EngineCoreWhenShared { .. } | EngineCoreTaken { .. } => Some("engine.core"),
            DuplicateInstrument { .. } => Some("engine.instrument.id"),
            NonPositiveReference { .. } => Some("engine.instrument.reference"),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config file {}", self.origin)?;
        if let Some(Location { line, column }) = self.location {
            write!(f, ", line {line}, column {column}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl fmt::Display for ConfigErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(cores: &[usize]) -> String {
            let names: Vec<String> = cores.iter().map(usize::to_string).collect();
            names.join(", ")
        }
        use ConfigErrorKind::*;
        match self {
            Io { action, source } => write!(f, "cannot {action} it: {source}"),
            TooLarge { size, max } => write!(
                f,
                "it is {size} bytes; a config file may be at most {max} bytes"
            ),
            NotUtf8 { offset } => {
                write!(f, "it is not UTF-8 (first bad byte at offset {offset})")
            }
            Syntax { message } => write!(f, "not valid TOML: {message}"),
            UnknownField { field, expected } => {
                write!(f, "unknown field `{field}`; {expected}")
            }
            Invalid { field, message } if field.is_empty() => write!(f, "{message}"),
            Invalid { field, message } => write!(f, "`{field}`: {message}"),
            OutOfRange {
                field,
                value,
                min,
                max,
            } => write!(f, "`{field}` is {value}; it must be in {min}..={max}"),
            NotPowerOfTwo { field, value } => {
                write!(f, "`{field}` is {value}; it must be a power of two")
            }
            EmptyPath {
                field,
                default: Some(default),
            } => write!(
                f,
                "`{field}` is an empty path; give a file, or leave `{field}` out \
                 for the default, {default}"
            ),
            EmptyPath {
                field,
                default: None,
            } => write!(
                f,
                "`{field}` is an empty path; give the keys file's path here or as --keys"
            ),
            CoresLength { cores, count } => write!(
                f,
                "`reactors.cores` lists {cores} cores for {count} reactors; \
                 give one per reactor, or [] to leave them unpinned"
            ),
            DuplicateCore {
                core,
                first,
                second,
            } => write!(
                f,
                "`reactors.cores` gives core {core} to reactors {first} and {second}; \
                 each reactor needs a core of its own"
            ),
            EngineCoreWhenShared { core } => write!(
                f,
                "`engine.core` is {core} but `engine.placement` is \"shared\" \
                 (the engine runs on reactor 0's thread); use \"own-thread\" or remove it"
            ),
            EngineCoreTaken { core, reactor } => write!(
                f,
                "`engine.core` {core} is reactor {reactor}'s core; to run the engine \
                 on reactor 0's thread, use `engine.placement = \"shared\"`"
            ),
            CoreUnavailable {
                field,
                core,
                available,
            } => write!(
                f,
                "`{field}` names core {core}, which this process may not run on \
                 (it may run on {})",
                list(available)
            ),
            CoresUnknown { field } => write!(
                f,
                "`{field}` pins a thread, but this host would not list its cores"
            ),
            DuplicateInstrument { id } => write!(
                f,
                "two [[engine.instrument]] tables are for instrument {id}; merge them"
            ),
            NonPositiveReference { id } => write!(
                f,
                "instrument {id} has a reference price <= 0 but refuses such prices; \
                 set `nonpositive_prices = true` or give a positive reference"
            ),
            ChangedWhileReading => write!(f, "it changed size while being read; try again"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ConfigErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConfigErrorKind::*;

    const EXAMPLE: &str = include_str!("../../../tuning/ordergate.example.toml");
    const REFERENCE: &str = include_str!("../../../docs/CONFIG.md");

    fn refused(text: &str) -> ConfigError {
        match parse(text, "test.toml") {
            Ok(config) => panic!("accepted {text:?} as {config:?}"),
            Err(e) => e,
        }
    }

    /// `field` out of `min..=max`: the value just outside each end is
    /// refused with exactly that bound, and each end itself is accepted.
    fn check_range(section: &str, name: &'static str, min: u64, max: u64) {
        let field = format!("{section}.{name}");
        let text = |v: u64| format!("[{section}]\n{name} = {v}\n");
        for v in [min, max] {
            parse(&text(v), "t").unwrap_or_else(|e| panic!("{field} = {v}: {e}"));
        }
        let mut outside = vec![max + 1];
        if min > 0 {
            outside.push(min - 1);
        }
        for v in outside {
            let e = refused(&text(v));
            match e.kind() {
                OutOfRange {
                    field: f,
                    value,
                    min: lo,
                    max: hi,
                } => {
                    assert_eq!((*f, *value, *lo, *hi), (field.as_str(), v, min, max));
                }
                other => panic!("{field} = {v}: {other:?}"),
            }
            assert_eq!(e.location(), Some(Location { line: 2, column: 1 }));
        }
    }

    #[test]
    fn empty_file_is_the_default_and_valid() {
        let config = parse("", "t").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(Config::default().validate().unwrap(), ());
    }

    #[test]
    fn example_parses_and_equals_the_defaults() {
        assert_eq!(parse(EXAMPLE, "example").unwrap(), Config::default());
    }

    #[test]
    fn default_is_the_gateway_default_but_busy_spin() {
        let mut expected = GatewaySpec::default();
        assert_eq!(expected.idle, IdleKind::Backoff);
        expected.idle = IdleKind::BusySpin;
        // `serve` always keeps a journal and a stats file; `demo` neither.
        assert_eq!(
            (&expected.audit_journal, &expected.stats_file),
            (&None, &None)
        );
        expected.audit_journal = Some("ordergate-audit.journal".into());
        expected.stats_file = Some("/dev/shm/ordergate-stats".into());
        // GatewaySpec has no PartialEq; its Debug shows every field.
        assert_eq!(
            format!("{:?}", Config::default().to_spec()),
            format!("{expected:?}")
        );
    }

    #[test]
    fn a_partial_section_keeps_the_other_defaults() {
        let config = parse("[reactors]\ncount = 2\n", "t").unwrap();
        let mut expected = Config::default();
        expected.reactors.count = 2;
        assert_eq!(config, expected);
    }

    #[test]
    fn every_field_maps_onto_the_spec() {
        let text = r#"
            listen = "0.0.0.0:9000"
            keys = "keys.toml"
            audit_journal = "/var/lib/ordergate/journal/audit.journal"
            stats_file = "gw.stats"
            audit_capacity = 4096
            audit_rollover = false
            [reactors]
            count = 2
            cores = [5, 3]
            sessions = 100
            idle = "backoff"
            uring_entries = 2048
            recv_buffers = 1024
            recv_buffer_size = 8192
            ring_capacity = 512
            pending_logons_per_address = 3
            [engine]
            placement = "own-thread"
            core = 1
            instruments = 7
            orders_max = 1000
            collar_bps = 250
            keys_max = 64
            [[engine.instrument]]
            id = 3
            reference = 1500
            [[engine.instrument]]
            id = 7
            reference = -20
            collar_bps = 40
            nonpositive_prices = true
            [session]
            environment = "sandbox"
            logon_timeout_ms = 250
            logon_skew_ms = 2000
            throttle_breach_run = 9
            msgs_per_sec = 50
            burst = 8
            logon_failures_max = 3
            logon_lockout_window_ms = 30000
            logon_rate_per_key = 4
            logon_burst_per_key = 12
            logon_rate_per_address = 40
            logon_burst_per_address = 120
        "#;
        let config = parse(text, "t").unwrap();
        assert_eq!(config.keys, Some(PathBuf::from("keys.toml")));
        let spec = config.to_spec();
        assert_eq!((spec.audit_capacity, spec.audit_rollover), (4096, false));
        assert_eq!(spec.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(
            spec.audit_journal,
            Some("/var/lib/ordergate/journal/audit.journal".into())
        );
        // `parse` leaves a relative path as written; `load` resolves it.
        assert_eq!(spec.stats_file, Some("gw.stats".into()));
        assert_eq!(spec.reactors, 2);
        assert_eq!(spec.reactor_cores, vec![5, 3]);
        assert_eq!(spec.sessions_per_reactor, 100);
        assert_eq!(spec.idle, IdleKind::Backoff);
        assert_eq!(spec.uring_entries, 2048);
        assert_eq!(spec.recv_buffers, 1024);
        assert_eq!(spec.recv_buffer_size, 8192);
        assert_eq!(spec.ring_capacity, 512);
        assert_eq!(spec.pending_logons_per_address, 3);
        assert_eq!(spec.engine, EnginePlacement::OwnThread { core: Some(1) });
        assert_eq!(
            spec.engine_config,
            EngineConfig {
                instruments: 7,
                orders_max: 1000,
                collar_bps: 250,
                keys_max: 64,
                instrument_risk: vec![
                    InstrumentRisk {
                        reference: Some(1500),
                        ..InstrumentRisk::new(3)
                    },
                    InstrumentRisk {
                        reference: Some(-20),
                        collar_bps: Some(40),
                        nonpositive_prices: true,
                        ..InstrumentRisk::new(7)
                    },
                ],
                ..EngineConfig::default()
            }
        );
        // And back: the file says everything the engine's price settings are.
        assert_eq!(Config::from_spec(&spec).engine, config.engine);
        let s = &spec.session;
        assert_eq!(s.environment, Environment::Sandbox);
        assert_eq!(s.logon_timeout_ns, 250 * NS_PER_MS);
        assert_eq!(s.logon_skew_ns, 2000 * NS_PER_MS);
        assert_eq!(s.throttle_breach_run, 9);
        assert_eq!(s.session_msgs_per_sec, 50);
        assert_eq!(s.session_burst, 8);
        assert_eq!(s.logon_failures_max, 3);
        assert_eq!(s.logon_lockout_window_ns, 30_000 * NS_PER_MS);
        assert_eq!((s.logon_rate_per_key, s.logon_burst_per_key), (4, 12));
        assert_eq!(
            (s.logon_rate_per_address, s.logon_burst_per_address),
            (40, 120)
        );
        // And back.
        let mut back = Config::from_spec(&spec);
        back.keys = config.keys.clone();
        assert_eq!(back, config);
    }

    #[test]
    fn audit_capacity_is_bounded_and_needs_more_with_rollover() {
        let max = crate::journal::format::CAPACITY_RECORDS_MAX;
        for (text, ok) in [
            ("audit_capacity = 64\n".to_string(), true),
            ("audit_capacity = 63\n".to_string(), false),
            (
                "audit_capacity = 1\naudit_rollover = false\n".to_string(),
                true,
            ),
            (
                "audit_capacity = 0\naudit_rollover = false\n".to_string(),
                false,
            ),
            (format!("audit_capacity = {max}\n"), true),
            (format!("audit_capacity = {}\n", max + 1), false),
        ] {
            match parse(&text, "t") {
                Ok(config) => assert!(ok, "accepted {text:?}: {config:?}"),
                Err(e) => {
                    assert!(!ok, "{text:?}: {e}");
                    assert!(
                        matches!(
                            e.kind(),
                            OutOfRange {
                                field: "audit_capacity",
                                ..
                            }
                        ),
                        "{e:?}"
                    );
                    assert_eq!(e.location().map(|l| l.line), Some(1), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn own_thread_without_core_is_unpinned() {
        let config = parse("[engine]\nplacement = \"own-thread\"\n", "t").unwrap();
        assert_eq!(
            config.to_spec().engine,
            EnginePlacement::OwnThread { core: None }
        );
    }

    #[test]
    fn syntax_error_names_the_place() {
        let e = refused("listen = \n");
        assert!(matches!(e.kind(), Syntax { .. }), "{e:?}");
        assert_eq!(e.location().map(|l| l.line), Some(1));
        assert!(
            e.to_string().starts_with("config file test.toml, line 1"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_their_dotted_name() {
        for (text, field, line) in [
            ("lisen = \"127.0.0.1:1\"\n", "lisen", 1),
            ("[reactors]\ncount = 1\ncuont = 2\n", "reactors.cuont", 3),
            ("[engine]\ncores = 2\n", "engine.cores", 2),
            ("[session]\nburts = 5\n", "session.burts", 2),
            ("[reactor]\ncount = 2\n", "reactor", 1),
            ("reactors.cuont = 2\n", "reactors.cuont", 1),
            ("audit_jornal = \"a\"\n", "audit_jornal", 1),
            ("[reactors]\nstats_file = \"s\"\n", "reactors.stats_file", 2),
        ] {
            let e = refused(text);
            match e.kind() {
                UnknownField { field: f, expected } => {
                    assert_eq!(f, field, "{text:?}");
                    assert!(expected.starts_with("expected"), "{expected}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
            assert_eq!(e.location().map(|l| l.line), Some(line), "{text:?}");
            let shown = e.to_string();
            assert!(shown.contains("test.toml"), "{shown}");
            assert!(shown.contains(&format!("`{field}`")), "{shown}");
        }
    }

    #[test]
    fn values_of_the_wrong_kind_are_refused_naming_the_field() {
        for (text, field) in [
            ("listen = \"localhost:9000\"\n", "listen"),
            ("listen = 9000\n", "listen"),
            ("keys = 3\n", "keys"),
            ("audit_journal = 3\n", "audit_journal"),
            ("stats_file = [\"a\"]\n", "stats_file"),
            ("[reactors]\ncount = \"two\"\n", "reactors.count"),
            ("[reactors]\ncount = -1\n", "reactors.count"),
            ("[reactors]\ncores = [1, \"x\"]\n", "reactors.cores"),
            ("[reactors]\nidle = \"spin\"\n", "reactors.idle"),
            (
                "[reactors]\nrecv_buffers = 65536\n",
                "reactors.recv_buffers",
            ),
            (
                "[reactors]\nuring_entries = 4294967296\n",
                "reactors.uring_entries",
            ),
            ("[engine]\nplacement = \"own\"\n", "engine.placement"),
            ("[engine]\ncore = -2\n", "engine.core"),
            (
                "[session]\nenvironment = \"staging\"\n",
                "session.environment",
            ),
            (
                "[session]\nlogon_timeout_ms = 1.5\n",
                "session.logon_timeout_ms",
            ),
            ("reactors = 3\n", "reactors"),
        ] {
            let e = refused(text);
            match e.kind() {
                Invalid { field: f, .. } => assert_eq!(f, field, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
            assert!(e.location().is_some(), "{text:?}");
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
    }

    #[test]
    fn names_list_what_is_allowed() {
        let shown = refused("[reactors]\nidle = \"spin\"\n").to_string();
        assert!(
            shown.contains("busy-spin") && shown.contains("backoff"),
            "{shown}"
        );
        let shown = refused("[engine]\nplacement = \"own\"\n").to_string();
        assert!(
            shown.contains("own-thread") && shown.contains("shared"),
            "{shown}"
        );
        let shown = refused("[session]\nenvironment = \"x\"\n").to_string();
        assert!(
            shown.contains("production") && shown.contains("sandbox"),
            "{shown}"
        );
    }

    #[test]
    fn every_bound_is_checked() {
        check_range("reactors", "count", 1, REACTORS_MAX as u64);
        check_range("reactors", "sessions", 1, SESSIONS_PER_REACTOR_MAX as u64);
        check_range("reactors", "uring_entries", 1, URING_ENTRIES_MAX.into());
        check_range("reactors", "recv_buffers", 1, RECV_BUFFERS_MAX.into());
        check_range(
            "reactors",
            "recv_buffer_size",
            FRAME_SIZE_MAX as u64,
            RECV_BUFFER_SIZE_MAX.into(),
        );
        check_range(
            "reactors",
            "ring_capacity",
            RING_CAPACITY_MIN as u64,
            RING_CAPACITY_MAX as u64,
        );
        check_range(
            "reactors",
            "pending_logons_per_address",
            1,
            PENDING_LOGONS_PER_ADDRESS_MAX as u64,
        );
        check_range("engine", "instruments", 1, INSTRUMENTS_MAX.into());
        check_range("engine", "orders_max", 1, ENGINE_ORDERS_MAX_BOUND as u64);
        check_range("engine", "collar_bps", 1, COLLAR_BPS_MAX.into());
        check_range("engine", "keys_max", 1, ENGINE_KEYS_BOUND as u64);
        check_range("session", "logon_timeout_ms", 1, LOGON_TIMEOUT_MS_MAX);
        check_range("session", "logon_skew_ms", 1, LOGON_SKEW_MS_MAX);
        check_range(
            "session",
            "throttle_breach_run",
            1,
            THROTTLE_BREACH_RUN_MAX.into(),
        );
        check_range("session", "msgs_per_sec", 1, MSGS_PER_SEC_MAX.into());
        check_range("session", "burst", 1, BURST_MAX.into());
        check_range(
            "session",
            "logon_failures_max",
            1,
            LOGON_FAILURES_MAX_BOUND.into(),
        );
        check_range(
            "session",
            "logon_lockout_window_ms",
            1,
            LOGON_LOCKOUT_WINDOW_MS_MAX,
        );
        check_range("session", "logon_rate_per_key", 1, LOGON_RATE_MAX.into());
        check_range("session", "logon_burst_per_key", 1, LOGON_BURST_MAX.into());
        check_range(
            "session",
            "logon_rate_per_address",
            1,
            LOGON_RATE_MAX.into(),
        );
        check_range(
            "session",
            "logon_burst_per_address",
            1,
            LOGON_BURST_MAX.into(),
        );
    }

    #[test]
    fn an_empty_keys_path_is_refused_at_load_not_at_open() {
        let e = refused("keys = \"\"\n");
        assert!(
            matches!(
                e.kind(),
                EmptyPath {
                    field: "keys",
                    default: None
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "config file test.toml, line 1, column 1: `keys` is an empty path; \
             give the keys file's path here or as --keys"
        );
    }

    #[test]
    fn an_empty_path_is_refused_naming_the_default() {
        for (text, field, default, line) in [
            (
                "audit_journal = \"\"\n",
                "audit_journal",
                "ordergate-audit.journal",
                1,
            ),
            (
                "listen = \"127.0.0.1:1\"\nstats_file = \"\"\n",
                "stats_file",
                "/dev/shm/ordergate-stats",
                2,
            ),
        ] {
            let e = refused(text);
            assert!(
                matches!(e.kind(), EmptyPath { field: f, default: Some(d) } if *f == field && *d == default),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                format!(
                    "config file test.toml, line {line}, column 1: `{field}` is an empty path; \
                     give a file, or leave `{field}` out for the default, {default}"
                )
            );
        }
    }

    #[test]
    fn count_zero_is_refused() {
        let e = refused("[reactors]\ncount = 0\n");
        assert!(
            matches!(
                e.kind(),
                OutOfRange {
                    field: "reactors.count",
                    value: 0,
                    min: 1,
                    max: 64
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "config file test.toml, line 2, column 1: `reactors.count` is 0; it must be in 1..=64"
        );
    }

    #[test]
    fn ring_sizes_must_be_powers_of_two() {
        for (name, value) in [
            ("uring_entries", 1000u64),
            ("recv_buffers", 500),
            ("ring_capacity", 4095),
            ("ring_capacity", 6),
        ] {
            let e = refused(&format!("[reactors]\n{name} = {value}\n"));
            match e.kind() {
                NotPowerOfTwo { field, value: v } => {
                    assert_eq!((*field, *v), (format!("reactors.{name}").as_str(), value));
                }
                other => panic!("{name} = {value}: {other:?}"),
            }
        }
        // recv_buffer_size need not be one.
        parse("[reactors]\nrecv_buffer_size = 1500\n", "t").unwrap();
    }

    #[test]
    fn cores_must_be_one_distinct_core_per_reactor() {
        let e = refused("[reactors]\ncount = 2\ncores = [1]\n");
        assert!(
            matches!(e.kind(), CoresLength { cores: 1, count: 2 }),
            "{e:?}"
        );
        assert_eq!(e.location().map(|l| l.line), Some(3));
        let e = refused("[reactors]\ncount = 1\ncores = [1, 2]\n");
        assert!(
            matches!(e.kind(), CoresLength { cores: 2, count: 1 }),
            "{e:?}"
        );
        let e = refused("[reactors]\ncount = 3\ncores = [4, 5, 4]\n");
        assert!(
            matches!(
                e.kind(),
                DuplicateCore {
                    core: 4,
                    first: 0,
                    second: 2
                }
            ),
            "{e:?}"
        );
        parse("[reactors]\ncount = 2\ncores = [7, 2]\n", "t").unwrap();
        parse("[reactors]\ncount = 2\ncores = []\n", "t").unwrap();
    }

    #[test]
    fn engine_core_needs_its_own_thread_and_its_own_core() {
        let e = refused("[engine]\ncore = 2\n");
        assert!(
            matches!(e.kind(), EngineCoreWhenShared { core: 2 }),
            "{e:?}"
        );
        let e = refused(
            "[reactors]\ncount = 2\ncores = [0, 1]\n[engine]\nplacement = \"own-thread\"\ncore = 1\n",
        );
        assert!(
            matches!(
                e.kind(),
                EngineCoreTaken {
                    core: 1,
                    reactor: 1
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.location().map(|l| l.line), Some(6));
        parse(
            "[reactors]\ncount = 2\ncores = [0, 1]\n[engine]\nplacement = \"own-thread\"\ncore = 2\n",
            "t",
        )
        .unwrap();
    }

    #[test]
    fn pinned_cores_must_be_available_to_the_process() {
        let text = "[reactors]\ncount = 2\ncores = [0, 5]\n[engine]\nplacement = \"own-thread\"\ncore = 6\n";
        let config = parse(text, "t").unwrap();
        assert!(config.check_cores(Some(&[0, 5, 6])).is_ok());
        match config.check_cores(Some(&[0, 1])) {
            Err(CoreUnavailable {
                field: "reactors.cores",
                core: 5,
                available,
            }) => assert_eq!(available, vec![0, 1]),
            other => panic!("{other:?}"),
        }
        match config.check_cores(Some(&[0, 5])) {
            Err(CoreUnavailable {
                field: "engine.core",
                core: 6,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            config.check_cores(None),
            Err(CoresUnknown {
                field: "reactors.cores"
            })
        ));
        // Nothing pinned: nothing to check, whatever the host says.
        assert!(Config::default().check_cores(None).is_ok());
        let shown = ConfigError::new(
            "g.toml",
            None,
            config.check_cores(Some(&[0, 1])).unwrap_err(),
        )
        .to_string();
        assert!(
            shown.contains("g.toml") && shown.contains("core 5"),
            "{shown}"
        );
        assert!(shown.contains("0, 1"), "{shown}");
    }

    #[test]
    fn this_host_lists_its_cores() {
        let cores = available_cores().expect("Linux lists the affinity mask");
        assert!(!cores.is_empty());
        assert!(cores.windows(2).all(|w| w[0] < w[1]));
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let path =
                std::env::temp_dir().join(format!("ordergate-config-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_anchor_key_file_is_resolved_like_keys_and_never_empty() {
        let dir = TempDir::new("anchor");
        let path = dir.0.join("gw.toml");
        std::fs::write(&path, "audit_anchor_key_file = \"anchor.key\"\n").unwrap();
        let config = load(&path).unwrap();
        assert_eq!(
            config.to_spec().audit_anchor_key_file,
            Some(dir.0.join("anchor.key"))
        );
        assert_eq!(Config::default().audit_anchor_key_file, None);
        let e = refused("audit_anchor_key_file = \"\"\n");
        assert!(
            matches!(e.kind(), Invalid { field, .. } if field == "audit_anchor_key_file"),
            "{e:?}"
        );
    }

    #[test]
    fn load_resolves_paths_against_the_config_directory() {
        let dir = TempDir::new("keys");
        let path = dir.0.join("gw.toml");
        std::fs::write(
            &path,
            "keys = \"secrets/keys.toml\"\naudit_journal = \"audit.journal\"\n\
             stats_file = \"../gw.stats\"\n",
        )
        .unwrap();
        let config = load(&path).unwrap();
        assert_eq!(config.keys, Some(dir.0.join("secrets/keys.toml")));
        assert_eq!(config.audit_journal, Some(dir.0.join("audit.journal")));
        assert_eq!(config.stats_file, Some(dir.0.join("../gw.stats")));
        std::fs::write(
            &path,
            "keys = \"/etc/ordergate/keys.toml\"\naudit_journal = \"/var/a.journal\"\n\
             stats_file = \"/dev/shm/s\"\n",
        )
        .unwrap();
        let config = load(&path).unwrap();
        assert_eq!(config.keys, Some(PathBuf::from("/etc/ordergate/keys.toml")));
        assert_eq!(config.audit_journal, Some(PathBuf::from("/var/a.journal")));
        assert_eq!(config.stats_file, Some(PathBuf::from("/dev/shm/s")));
        // Left out: stays `None`, so the default stays where it was (the
        // current directory), not moved next to the config file.
        std::fs::write(&path, "").unwrap();
        let config = load(&path).unwrap();
        assert_eq!((config.audit_journal, config.stats_file), (None, None));
    }

    #[test]
    fn load_refuses_what_is_not_a_config_file() {
        let dir = TempDir::new("files");
        let e = load(&dir.0.join("missing.toml")).unwrap_err();
        assert!(matches!(e.kind(), Io { action: "open", .. }), "{e:?}");
        assert!(e.to_string().contains("missing.toml"), "{e}");

        let big = dir.0.join("big.toml");
        std::fs::write(&big, vec![b'#'; CONFIG_FILE_SIZE_MAX as usize + 1]).unwrap();
        let e = load(&big).unwrap_err();
        assert!(matches!(e.kind(), TooLarge { .. }), "{e:?}");

        let binary = dir.0.join("binary.toml");
        std::fs::write(&binary, b"listen = \"\xff\"\n").unwrap();
        let e = load(&binary).unwrap_err();
        assert!(matches!(e.kind(), NotUtf8 { offset: 10 }), "{e:?}");

        let e = load(&dir.0).unwrap_err();
        assert!(matches!(e.kind(), Io { action: "read", .. }), "{e:?}");
    }

    /// Every field the example sets, and the four it can only show in a
    /// comment, has a row in docs/CONFIG.md (so in these module docs too).
    #[test]
    fn instrument_tables_are_checked() {
        let table =
            |lines: &str| format!("[engine]\ninstruments = 5\n[[engine.instrument]]\n{lines}");
        let e = refused(&table("id = 6\n"));
        assert!(
            matches!(
                e.kind(),
                OutOfRange {
                    field: "engine.instrument.id",
                    value: 6,
                    min: 1,
                    max: 5
                }
            ),
            "{e}"
        );
        let e = refused(&table("id = 2\n[[engine.instrument]]\nid = 2\n"));
        assert!(matches!(e.kind(), DuplicateInstrument { id: 2 }), "{e}");
        assert_eq!(e.kind().field(), Some("engine.instrument.id"));
        let e = refused(&table("id = 2\nreference = 0\n"));
        assert!(matches!(e.kind(), NonPositiveReference { id: 2 }), "{e}");
        assert!(e.to_string().contains("nonpositive_prices = true"), "{e}");
        let e = refused(&table("id = 2\ncollar_bps = 10001\n"));
        assert!(
            matches!(
                e.kind(),
                OutOfRange {
                    field: "engine.instrument.collar_bps",
                    ..
                }
            ),
            "{e}"
        );
        let e = refused(&table("id = 2\nrefrence = 5\n"));
        assert!(matches!(e.kind(), UnknownField { .. }), "{e}");
        let ok = parse(
            &table("id = 2\nreference = 0\nnonpositive_prices = true\n"),
            "t",
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    /// Found by the config_file fuzz target (no refusal repeats key
    /// material): a keys file, or a secret, pasted where the config
    /// belongs had its hex repeated in the error — as an unknown field's
    /// name, or quoted in serde's message about a value. Both are now
    /// withheld as the keys file's errors withhold them.
    #[test]
    fn config_errors_do_not_repeat_key_material() {
        let secret = "d3adb33f".repeat(8);
        for text in [
            format!("[reactors]\ncoun{secret}t = 1\n"),
            format!("{secret} = 1\n"),
            format!("[reactors]\ncount = \"{secret}\"\n"),
            format!("[[key]]\nid = 1\nsecret = \"{secret}\"\n"),
            format!("keys = [\"{secret}\"]\n"),
            format!("keys = \"x\"\n{secret}\n"),
        ] {
            let e = refused(&text);
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("d3adb33fd3adb33f"), "{shown}");
            assert!(e.location().is_some(), "{e}");
        }
    }

    /// Found by the config_file fuzz target (every refusal names a line):
    /// the checks of `[[engine.instrument]]` tables named no place, since
    /// the field index did not look inside arrays of tables. Each now
    /// names the line of the offending value in the offending table.
    #[test]
    fn instrument_errors_name_their_line() {
        let at = |text: &str| refused(text).location().map(|l| (l.line, l.column));
        let head = "[engine]\ninstruments = 5\n[[engine.instrument]]\nid = 1\n";
        // Line 6: the second table's id.
        let e = format!("{head}[[engine.instrument]]\nid = 1\n");
        assert_eq!(at(&e), Some((6, 1)), "{}", refused(&e));
        let e = format!("{head}[[engine.instrument]]\nid = 2\nreference = -3\n");
        assert_eq!(at(&e), Some((7, 1)), "{}", refused(&e));
        let e = format!("{head}[[engine.instrument]]\nid = 9\n");
        assert_eq!(at(&e), Some((6, 1)), "{}", refused(&e));
        let e = format!("{head}collar_bps = 0\n[[engine.instrument]]\nid = 2\n");
        assert_eq!(at(&e), Some((5, 1)), "{}", refused(&e));
        let e = format!("{head}[[engine.instrument]]\nid = 2\n  collar_bps = 10001\n");
        assert_eq!(at(&e), Some((7, 3)), "{}", refused(&e));
        assert!(refused(&e).to_string().contains(", line 7, column 3: "));
    }

    #[test]
    fn the_reference_documents_every_field() {
        let example: toml::Table = toml::from_str(EXAMPLE).unwrap();
        let mut fields: Vec<String> = [
            "keys",
            "audit_journal",
            "stats_file",
            "engine.core",
            "engine.instrument",
            "audit_anchor_key_file",
        ]
        .map(str::to_owned)
        .into();
        for (key, value) in &example {
            match value {
                toml::Value::Table(section) => {
                    fields.extend(section.keys().map(|k| format!("{key}.{k}")))
                }
                _ => fields.push(key.clone()),
            }
        }
        assert_eq!(fields.len(), 38);
        for field in fields {
            assert!(
                REFERENCE.contains(&format!("| `{field}` |")),
                "docs/CONFIG.md has no row for `{field}`"
            );
        }
    }
}
