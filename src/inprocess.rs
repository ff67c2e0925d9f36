//! The gateway `demo` and `compare` start in process, and the CPU they run
//! on: one module below both, so neither depends on the other.

use ordergate::auth::keys::{BURST_MAX, KeyEntry, KeyTable, MSGS_PER_SEC_MAX};
use ordergate::auth::secret::Secret;
use ordergate::gateway::{Gateway, GatewaySpec};
use ordergate::reactor::idle::IdleKind;
use ordergate::wire::codes::{Environment, Scopes};

/// The CPU the comparison (and the demo) runs on unless told: the last one this process
/// may run on (CPU 0 usually takes the most interrupts and housekeeping).
/// None if the allowed CPUs cannot be read.
pub fn default_cpu() -> Option<usize> {
    ordergate::config::available_cores()?.last().copied()
}

/// The gateway `demo` and `compare` measure: `GatewaySpec::default()` with
/// `idle`, its reactor on `cpu` if given, and one key, `key_id` with
/// `secret`, allowed trade and cancel from anywhere at the highest rate, the
/// per-session limit raised to match (they measure the pipeline, not the
/// throttle, which has its own tests).
///
/// # Errors
///
/// The gateway did not start (named).
pub fn unthrottled_gateway(
    key_id: u64,
    secret: &[u8; 32],
    idle: IdleKind,
    cpu: Option<usize>,
) -> Result<Gateway, String> {
    unthrottled_gateway_sqpoll(key_id, secret, idle, cpu, None)
}

/// [`unthrottled_gateway`], with an SQPOLL thread on the reactor's ring
/// when `sqpoll` is given (bound to its CPU if that is given too).
///
/// # Errors
///
/// The gateway did not start (named).
pub fn unthrottled_gateway_sqpoll(
    key_id: u64,
    secret: &[u8; 32],
    idle: IdleKind,
    cpu: Option<usize>,
    sqpoll: Option<Option<usize>>,
) -> Result<Gateway, String> {
    let keys = KeyTable::from_entries(vec![
        KeyEntry::new(
            key_id,
            Secret::from_bytes(*secret),
            Scopes::TRADE.union(Scopes::CANCEL),
            Environment::Production,
        )
        .with_rate(MSGS_PER_SEC_MAX, BURST_MAX)
        .allow_any(),
    ])
    .map_err(|e| e.to_string())?;
    let mut spec = GatewaySpec {
        idle,
        reactor_cores: cpu.into_iter().collect(),
        sqpoll: sqpoll.is_some(),
        sqpoll_cores: sqpoll.flatten().into_iter().collect(),
        ..GatewaySpec::default()
    };
    spec.session.session_msgs_per_sec = MSGS_PER_SEC_MAX;
    spec.session.session_burst = BURST_MAX;
    // Every demo session logs on with the one key from 127.0.0.1 at once
    // (up to `DEMO_SESSIONS_MAX`): beyond the defaults' logon bursts.
    spec.session.logon_burst_per_key = ordergate::constants::LOGON_BURST_MAX;
    spec.session.logon_burst_per_address = ordergate::constants::LOGON_BURST_MAX;
    Gateway::start(spec, keys).map_err(|e| format!("gateway: {e}"))
}
