//! What every reactor's sessions share: the configuration, the key table with
//! each key's shared rate cell, logon rate cell and nonce replay cache, the
//! failed-logon lockout table, the per-address logon rate table and the
//! server-nonce generator. Built once at start-up;
//! everything that changes at run time is an atomic.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::auth::keys::{KeyIndex, KeyTable};
use crate::auth::tag::TagKey;
use crate::constants::*;
use crate::limits::{AddressRate, FloorBook, LogonFloor, LogonGuard, NonceCache, Rate, SharedCell};
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
    /// Logons one key may attempt per second, and in a burst, once its
    /// signature is proved (THROTTLED beyond).
    pub logon_rate_per_key: u32,
    pub logon_burst_per_key: u32,
    /// Logon attempts one client (IPv4 address, IPv6 /64) may make per
    /// second, and in a burst, before any HMAC (THROTTLED beyond).
    pub logon_rate_per_address: u32,
    pub logon_burst_per_address: u32,
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
            logon_rate_per_key: LOGON_RATE_PER_KEY_DEFAULT,
            logon_burst_per_key: LOGON_BURST_PER_KEY_DEFAULT,
            logon_rate_per_address: LOGON_RATE_PER_ADDRESS_DEFAULT,
            logon_burst_per_address: LOGON_BURST_PER_ADDRESS_DEFAULT,
        }
    }
}

impl GatewayConfig {
    /// Slots of each key's nonce cache: what the key's logon rate can fill
    /// within the replay window, doubled, as a power of two within
    /// `NONCE_SLOTS_PER_KEY_MIN..=NONCE_SLOTS_PER_KEY_MAX` (constants.rs
    /// says why).
    pub fn nonce_slots_per_key(&self) -> usize {
        let remember_s = NonceCache::remember_s(self.logon_skew_ns);
        let fill = u64::from(self.logon_burst_per_key)
            .saturating_add(u64::from(self.logon_rate_per_key).saturating_mul(remember_s));
        let wanted = usize::try_from(fill.saturating_mul(2)).unwrap_or(usize::MAX);
        wanted
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .clamp(NONCE_SLOTS_PER_KEY_MIN, NONCE_SLOTS_PER_KEY_MAX)
    }
}

/// Run-time state of one key, shared by its sessions on every reactor and
/// carried over (by key id) when the keys file is reloaded: the rate cell,
/// the session count, the logon rate cell and the nonce cache (so a reload
/// can neither refill a key's logon burst nor let a nonce be replayed).
#[derive(Clone)]
pub struct KeyState {
    pub rate: Rate,
    pub cell: Arc<SharedCell>,
    /// Sessions logged on with this key now.
    pub sessions: Arc<AtomicU32>,
    /// The key's logon attempts (rate: `Shared::logon_key_rate`).
    pub logon_cell: Arc<SharedCell>,
    /// The key's own logon nonce replay cache.
    pub nonces: Arc<NonceCache>,
    /// The key's logon replay floor, set when its nonce cache was made
    /// (carried with it): from the audit journal at start-up, from the
    /// key's earlier state when a reload adds it back.
    pub logon_floor: Arc<LogonFloor>,
}

impl std::fmt::Debug for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyState")
            .field("rate", &self.rate)
            .field("cell", &self.cell)
            .field("sessions", &self.sessions)
            .field("logon_cell", &self.logon_cell)
            .field("nonce_slots", &self.nonces.len())
            .field("logon_floor", &self.logon_floor)
            .finish()
    }
}

/// One generation of the key table with each key's run-time state. Reactors
/// hold an `Arc` of the generation they use and switch between turns.
pub struct KeySet {
    pub table: Arc<KeyTable>,
    /// Keys revoked at run time (`admin revoke`/`kill`), sorted. An overlay
    /// on the table that every later generation keeps: a reload cannot bring
    /// a revoked key back within the run.
    revoked: Box<[u64]>,
    states: Box<[KeyState]>,
    /// Generation number: 1 at start-up, +1 per reload or revocation.
    pub epoch: u64,
}

impl KeySet {
    /// The next generation: `table`'s keys, keeping the rate cell, the
    /// session count, the logon cell and the nonce cache of every key id that
    /// `previous` also had. A new key's nonce cache is allocated here
    /// (`config.nonce_slots_per_key()` slots), never on a reactor. New keys
    /// get no replay floor: see [`KeySet::new_with_floors`].
    pub fn new(
        table: Arc<KeyTable>,
        revoked: Box<[u64]>,
        previous: Option<&KeySet>,
        epoch: u64,
        config: &GatewayConfig,
    ) -> KeySet {
        KeySet::new_with_floors(
            table,
            revoked,
            previous,
            epoch,
            config,
            &mut FloorBook::new(),
        )
    }

    /// [`KeySet::new`], with the replay floors of `floors`: a key whose
    /// nonce cache is made here (not carried from `previous`) gets its
    /// floor from the book, and the latest accepted request time of every
    /// key of `previous` that `table` no longer has goes into the book, so
    /// a key removed and later added back is not open to the replay of its
    /// earlier logons.
    pub fn new_with_floors(
        table: Arc<KeyTable>,
        revoked: Box<[u64]>,
        previous: Option<&KeySet>,
        epoch: u64,
        config: &GatewayConfig,
        floors: &mut FloorBook,
    ) -> KeySet {
        if let Some(p) = previous {
            for (i, e) in p.table.iter() {
                if table.get(e.id).is_none() {
                    floors.raise(e.id, p.state(i).logon_floor.last());
                }
            }
        }
        let states = table
            .iter()
            .map(|(_, e)| {
                let carried = previous.and_then(|p| p.table.get(e.id).map(|(i, _)| p.state(i)));
                KeyState {
                    rate: Rate::new(e.msgs_per_sec, e.burst),
                    cell: carried.map_or_else(Default::default, |c| c.cell.clone()),
                    sessions: carried.map_or_else(Default::default, |c| c.sessions.clone()),
                    logon_cell: carried.map_or_else(Default::default, |c| c.logon_cell.clone()),
                    nonces: carried.map_or_else(
                        || {
                            Arc::new(NonceCache::new(
                                config.nonce_slots_per_key(),
                                config.logon_skew_ns,
                            ))
                        },
                        |c| c.nonces.clone(),
                    ),
                    logon_floor: carried.map_or_else(
                        || Arc::new(LogonFloor::new(floors.floor(e.id))),
                        |c| c.logon_floor.clone(),
                    ),
                }
            })
            .collect();
        KeySet {
            table,
            revoked,
            states,
            epoch,
        }
    }

    /// Whether `key_id` was revoked at run time.
    #[inline]
    pub fn is_revoked(&self, key_id: u64) -> bool {
        self.revoked.binary_search(&key_id).is_ok()
    }

    /// Every key id revoked at run time, sorted.
    pub fn revoked_ids(&self) -> &[u64] {
        &self.revoked
    }

    #[inline]
    pub fn state(&self, index: KeyIndex) -> &KeyState {
        &self.states[index.0 as usize]
    }
}

pub struct Shared {
    pub config: GatewayConfig,
    /// The current key generation; replaced whole by `publish_keys`. Read
    /// under the lock only when `keys_epoch` moved (never per message).
    keys: Mutex<Arc<KeySet>>,
    keys_epoch: AtomicU64,
    /// The key generation each reactor has switched to.
    applied: Box<[AtomicU64]>,
    pub session_rate: Rate,
    /// Every key's logon rate (each key's cell is in its `KeyState`).
    pub logon_key_rate: Rate,
    /// Failed logons per (client, key id): the lockout.
    pub guard: LogonGuard,
    /// Logon attempts per client, before any HMAC.
    pub address_rate: AddressRate,
    /// Keys the server-nonce PRF: nonce = HMAC(prf, counter)[..16].
    nonce_prf: TagKey,
    nonce_counter: AtomicU64,
    /// A secret no key has: a Logon naming an unknown key is verified
    /// against it, so an unknown key costs the same HMAC as a known one and
    /// the reply time does not tell which it was.
    decoy_secret: [u8; 32],
    /// The admin socket's counters (reactor 0 publishes them).
    pub admin: super::counters::AdminCounters,
    /// The engine-side limits of the current key generation, published
    /// before the generation itself (the engine agent reads it).
    pub limits: Arc<crate::engine::risk::LimitsFeed>,
    /// The reactors' reports of their key sweeps, for `kill`'s answer.
    pub key_sweeps: crate::engine::risk::KeySweeps,
    /// Logon replay floors of key ids not in the current generation (read
    /// from the journal at start-up; left by keys a reload removed). Only
    /// the control thread takes the lock, with `keys` held.
    logon_floors: Mutex<FloorBook>,
    /// `admin sessions`: the question and each reactor's answer.
    pub listing: super::listing::SessionListing,
}

impl Shared {
    /// `seed`: 32 bytes from the OS random source (tests pass a fixed one),
    /// keying the server nonces and the decoy secret.
    pub fn new(config: GatewayConfig, keys: KeyTable, seed: [u8; 32]) -> Shared {
        Shared::with_logon_floors(config, keys, seed, FloorBook::new())
    }

    /// [`Shared::new`] with the logon replay floors read from the audit
    /// journal ([`crate::journal::read_logon_floors`]): each key's first
    /// nonce cache starts with its floor, so a Logon accepted before the
    /// restart cannot be replayed after it.
    pub fn with_logon_floors(
        config: GatewayConfig,
        keys: KeyTable,
        seed: [u8; 32],
        mut floors: FloorBook,
    ) -> Shared {
        let prf = TagKey::new(&seed);
        let decoy_secret = prf.mac(b"ordergate decoy secret");
        let limits = Arc::new(crate::engine::risk::LimitsFeed::new(
            crate::engine::risk::limits_of(&keys),
        ));
        Shared {
            limits,
            key_sweeps: Default::default(),
            session_rate: Rate::new(config.session_msgs_per_sec, config.session_burst),
            logon_key_rate: Rate::new(config.logon_rate_per_key, config.logon_burst_per_key),
            guard: LogonGuard::new(
                LOGON_GUARD_BUCKETS,
                LOGON_GUARD_WAYS,
                config.logon_failures_max,
                config.logon_lockout_window_ns,
            ),
            address_rate: AddressRate::new(
                LOGON_RATE_BUCKETS,
                LOGON_RATE_WAYS,
                config.logon_rate_per_address,
                config.logon_burst_per_address,
            ),
            keys: Mutex::new(Arc::new(KeySet::new_with_floors(
                Arc::new(keys),
                Box::new([]),
                None,
                1,
                &config,
                &mut floors,
            ))),
            config,
            keys_epoch: AtomicU64::new(1),
            applied: (0..REACTORS_MAX).map(|_| AtomicU64::new(1)).collect(),
            nonce_prf: prf,
            nonce_counter: AtomicU64::new(0),
            decoy_secret,
            admin: Default::default(),
            logon_floors: Mutex::new(floors),
            listing: super::listing::SessionListing::new(REACTORS_MAX),
        }
    }

    /// The current key generation (takes the lock: start-up, reloads, tests).
    pub fn key_set(&self) -> Arc<KeySet> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current generation number: one atomic load, checked by each
    /// reactor once per turn.
    #[inline]
    pub fn keys_epoch(&self) -> u64 {
        self.keys_epoch.load(Ordering::Acquire)
    }

    /// Installs a new key table. Reactors switch at their next turn, ending
    /// the sessions of keys that are gone or no longer usable. Returns the
    /// new generation number.
    pub fn publish_keys(&self, table: KeyTable) -> u64 {
        let mut current = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        // The engine sees the new limits before any reactor sees the table.
        self.limits.publish(crate::engine::risk::limits_of(&table));
        let epoch = current.epoch + 1;
        let revoked = current.revoked.clone();
        let mut floors = self.logon_floors.lock().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(KeySet::new_with_floors(
            Arc::new(table),
            revoked,
            Some(&current),
            epoch,
            &self.config,
            &mut floors,
        ));
        self.keys_epoch.store(epoch, Ordering::Release);
        epoch
    }

    /// Revokes `key_id` for the rest of the run: its sessions end
    /// (Terminate KEY_REVOKED, orders canceled KEY_REVOKED) and its logons
    /// are refused KEY_DISABLED. Returns the new generation number, or None
    /// if it was already revoked.
    pub fn revoke_key(&self, key_id: u64) -> Option<u64> {
        let mut current = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let mut revoked = current.revoked.to_vec();
        let at = revoked.binary_search(&key_id).err()?;
        revoked.insert(at, key_id);
        let epoch = current.epoch + 1;
        let table = current.table.clone();
        *current = Arc::new(KeySet::new(
            table,
            revoked.into(),
            Some(&current),
            epoch,
            &self.config,
        ));
        self.keys_epoch.store(epoch, Ordering::Release);
        Some(epoch)
    }

    /// Reactor `reactor` now uses generation `epoch`.
    pub fn acknowledge_keys(&self, reactor: u16, epoch: u64) {
        self.applied[reactor as usize].store(epoch, Ordering::Release);
    }

    /// Whether reactors `0..reactors` all use generation `epoch` or later.
    /// (The control thread waits for it with its own clock:
    /// `ordergate::waits`.)
    pub fn keys_applied(&self, reactors: usize, epoch: u64) -> bool {
        self.applied[..reactors]
            .iter()
            .all(|a| a.load(Ordering::Acquire) >= epoch)
    }

    /// The logon replay floor a key id not in the current generation would
    /// start with (control thread; takes a lock).
    pub fn book_floor(&self, key_id: u64) -> u64 {
        self.logon_floors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .floor(key_id)
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
