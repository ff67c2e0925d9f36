//! What every reactor's sessions share: the configuration, the key table with
//! each key's shared rate cell, the nonce replay cache, the failed-logon
//! lockout table and the server-nonce generator. Built once at start-up;
//! everything that changes at run time is an atomic.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::auth::keys::{KeyIndex, KeyTable};
use crate::auth::tag::TagKey;
use crate::constants::*;
use crate::limits::{LogonGuard, NonceCache, Rate, SharedCell};
use crate::wire::codes::Environment;

/// Gateway-wide session policy. Every field has a default from
/// `constants.rs`; `serve` reads overrides from its config file.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The one environment this gateway serves.
    pub environment: Environment,
    /// ± window for `Logon.request_time_ns` against the gateway clock.
    pub logon_skew_ns: u64,
    /// Time a connection has to deliver a valid Logon.
    pub logon_timeout_ns: u64,
    /// Consecutive throttled messages that end a session (THROTTLE_BREACH).
    pub throttle_breach_run: u32,
    /// Failed logons from one address that lock it out for the window.
    pub logon_failures_max: u32,
    pub logon_lockout_window_ns: u64,
    /// Per-session rate, applied to every session (the key's own rate is
    /// shared by all its sessions).
    pub session_msgs_per_sec: u32,
    pub session_burst: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            environment: Environment::Production,
            logon_skew_ns: LOGON_SKEW_NS_DEFAULT,
            logon_timeout_ns: LOGON_TIMEOUT_NS_DEFAULT,
            throttle_breach_run: THROTTLE_BREACH_RUN_DEFAULT,
            logon_failures_max: LOGON_FAILURES_MAX_DEFAULT,
            logon_lockout_window_ns: LOGON_LOCKOUT_WINDOW_NS_DEFAULT,
            session_msgs_per_sec: MSGS_PER_SEC_DEFAULT,
            session_burst: BURST_DEFAULT,
        }
    }
}

/// Run-time state of one key, shared by its sessions on every reactor.
#[derive(Debug)]
pub struct KeyState {
    pub rate: Rate,
    pub cell: SharedCell,
    /// Sessions logged on with this key now.
    pub sessions: AtomicU32,
}

pub struct Shared {
    pub config: GatewayConfig,
    pub keys: KeyTable,
    key_states: Box<[KeyState]>,
    pub session_rate: Rate,
    pub nonces: NonceCache,
    pub guard: LogonGuard,
    /// Keys the server-nonce PRF: nonce = HMAC(prf, counter)[..16].
    nonce_prf: TagKey,
    nonce_counter: AtomicU64,
    /// A secret no key has: a Logon naming an unknown key is verified
    /// against it, so an unknown key costs the same HMAC as a known one and
    /// the reply time does not tell which it was.
    decoy_secret: [u8; 32],
}

impl Shared {
    /// `seed`: 32 bytes from the OS random source (tests pass a fixed one),
    /// keying the server nonces and the decoy secret.
    pub fn new(config: GatewayConfig, keys: KeyTable, seed: [u8; 32]) -> Shared {
        let key_states = keys
            .iter()
            .map(|(_, e)| KeyState {
                rate: Rate::new(e.msgs_per_sec, e.burst),
                cell: SharedCell::default(),
                sessions: AtomicU32::new(0),
            })
            .collect();
        let prf = TagKey::new(&seed);
        let decoy_secret = prf.mac(b"ordergate decoy secret");
        Shared {
            session_rate: Rate::new(config.session_msgs_per_sec, config.session_burst),
            nonces: NonceCache::new(NONCE_CACHE_SLOTS, config.logon_skew_ns),
            guard: LogonGuard::new(
                LOGON_ADDRESS_SLOTS,
                config.logon_failures_max,
                config.logon_lockout_window_ns,
            ),
            config,
            keys,
            key_states,
            nonce_prf: prf,
            nonce_counter: AtomicU64::new(0),
            decoy_secret,
        }
    }

    pub fn key_state(&self, index: KeyIndex) -> &KeyState {
        &self.key_states[index.0 as usize]
    }

    pub fn decoy_secret(&self) -> &[u8; 32] {
        &self.decoy_secret
    }

    /// A fresh, unpredictable server nonce: a PRF of a counter under a key
    /// drawn at start-up. Never repeats within a run.
    pub fn next_server_nonce(&self) -> [u8; 16] {
        let n = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.nonce_prf.mac(&n.to_le_bytes())[..16]);
        out
    }
}
