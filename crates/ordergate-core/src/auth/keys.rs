//! The API key table, loaded once at start-up from the keys file.
//!
//! The same reference, for operators, is `docs/KEYS.md`.
//!
//! # The keys file
//!
//! TOML, one `[[key]]` table per API key:
//!
//! ```toml
//! [[key]]
//! id = 1001
//! secret = "8f1c2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccddeeff0"
//! scopes = ["trade", "cancel"]      # any of "trade", "cancel", "read"
//! environment = "production"        # or "sandbox"
//! allow = ["203.0.113.0/24", "2001:db8:1::/48", "198.51.100.7"]
//! msgs_per_sec = 500                # optional, default MSGS_PER_SEC_DEFAULT (1000)
//! burst = 50                        # optional, default BURST_DEFAULT (100)
//! not_before = "2026-01-01T00:00:00Z"
//! not_after = "2027-01-01T00:00:00Z"
//! max_sessions = 4
//! max_order_qty = 10000
//! max_order_notional = 5000000000   # |price| × qty, in price ticks
//! max_open_notional = 20000000000   # Σ |price| × leaves of resting orders
//!
//! # A key being rotated: both secrets log on until `secret` is replaced by
//! # `secret_next` and `secret_next` removed.
//! [[key]]
//! id = 1002
//! secret = "…64 hex digits…"
//! secret_next = "…64 other hex digits…"
//! scopes = ["read"]
//! environment = "sandbox"
//! allow = ["0.0.0.0/0", "::/0"]     # explicitly: from anywhere
//!
//! # Kept so that its id stays taken and the audit can name it.
//! [[key]]
//! id = 1003
//! secret = "…"
//! scopes = ["trade"]
//! environment = "production"
//! status = "revoked"
//! ```
//!
//! | field                | required | value                                                   | when absent |
//! |----------------------|----------|---------------------------------------------------------|-------------|
//! | `id`                 | yes      | integer `0..=2^63-1`, unique in the file                | —           |
//! | `secret`             | yes      | string of exactly 64 hex digits (32 bytes), either case | —           |
//! | `secret_next`        | no       | as `secret`, and different from it                      | no rotation |
//! | `scopes`             | yes      | non-empty array of `"trade"`, `"cancel"`, `"read"`      | —           |
//! | `environment`        | yes      | `"production"` or `"sandbox"`                           | —           |
//! | `allow`              | no       | non-empty array of up to [`ALLOW_CIDRS_MAX`] CIDRs      | **connects from nowhere** |
//! | `msgs_per_sec`       | no       | integer in `1..=MSGS_PER_SEC_MAX`                       | `MSGS_PER_SEC_DEFAULT` |
//! | `burst`              | no       | integer in `1..=BURST_MAX`                              | `BURST_DEFAULT` |
//! | `not_before`         | no       | RFC 3339 timestamp, inclusive                           | valid since ever |
//! | `not_after`          | no       | RFC 3339 timestamp, exclusive, after `not_before`       | valid forever |
//! | `max_sessions`       | no       | integer `>= 1`: sessions logged on at once, gateway-wide | no limit |
//! | `max_order_qty`      | no       | integer in `1..=2^32-1`: largest order quantity         | no limit |
//! | `max_order_notional` | no       | integer `>= 1`: largest notional of one order, in ticks | no limit |
//! | `max_open_notional`  | no       | integer `>= 1`: largest notional resting at once, ticks | no limit |
//! | `status`             | no       | `"active"` or `"revoked"`                               | `"active"` |
//!
//! There is no withdrawal or transfer scope (PROTOCOL.md, "Codes"). TOML
//! integers are signed 64-bit, so no integer field can exceed `2^63-1`.
//!
//! - **`secret_next`** is for rotation: while it is set, a logon signed with
//!   either secret is accepted (and the session keys derive from the one
//!   that signed). Rotate by adding `secret_next`, moving clients over, then
//!   replacing `secret` with it and removing `secret_next`.
//! - **`allow`**: each entry is `address/prefix` or a bare address (one
//!   host: `/32`, `/128`), IPv4 or IPv6. A peer's IPv4-mapped IPv6 address
//!   (`::ffff:10.1.2.3`) is its IPv4 address: it matches IPv4 entries and
//!   never IPv6 ones, so `::/0` admits every IPv6 peer and no IPv4 one. An
//!   entry with bits set after its prefix (`10.1.2.3/8`) is **refused**, not
//!   rounded down to `10.0.0.0/8`: the writer meant either the network or
//!   one host, and guessing the wider one would let in addresses nobody
//!   chose. A prefix longer than the address, a zone id, a malformed address
//!   are refused.
//! - **`not_before` / `not_after`**: RFC 3339 with an offset, as a string
//!   (`"2026-11-23T00:00:00Z"`, `"2026-11-23T09:00:00+09:00"`, fraction up
//!   to 9 digits) or as a bare TOML offset datetime (same text unquoted).
//!   Stored as `u64` nanoseconds since the Unix epoch. The key is valid at
//!   `now` when `not_before <= now < not_after`: start inclusive, end
//!   exclusive, so consecutive windows meet without gap or overlap. See
//!   [`crate::auth::policy`] for exactly what is accepted; a date that does
//!   not exist (Feb 30, Feb 29 of 2026), a leap second, a timestamp before
//!   1970 or after 2554-07-21, or without an offset is refused.
//! - **`max_order_notional`**: the notional of an order is `|price| × qty`
//!   in price ticks times quantity units (the tick size is reference data,
//!   so the gateway has no currency amount). Computed exactly in 128 bits:
//!   no price and quantity can overflow it. The gateway checks it at the
//!   order's limit price; the engine checks it again at the prices a
//!   marketable order would fill at (a sell at 1 into a bid of 100 is a
//!   notional of 100 per unit), RISK_MAX_NOTIONAL either way.
//! - **`max_open_notional`**: the key's open notional is `Σ |price| × leaves`
//!   over its resting orders, every session together (including orders left
//!   by sessions that have ended). A NewOrder or ReplaceOrder whose resting
//!   remainder would take it above the limit is refused
//!   RISK_MAX_OPEN_NOTIONAL by the engine; one that lowers it never is.
//! - **`status = "revoked"`**: logons are refused `KEY_DISABLED`, as they
//!   are before `not_before` and from `not_after` on.
//!
//! # No `allow` list: the key connects from nowhere
//!
//! A key without `allow` may not log on from any address (LogonReject
//! `ADDRESS_NOT_ALLOWED`). The file is still loaded, and
//! [`KeyTable::warnings`] names every such key so that start-up prints it.
//!
//! Why deny by default, although keys files written before `allow` existed
//! then refuse every logon until an `allow` line is added: a key's secret
//! is the only thing standing between the internet and order entry, and an
//! address list is the second factor that makes a leaked secret useless
//! from elsewhere. A default of "anywhere" would make every key that an
//! operator forgot to restrict silently open, and nothing would ever show
//! it; a default of "nowhere" fails loudly, at the first logon and in the
//! start-up warning, and the fix is one line. Opening a key to every
//! address is possible, and visible in the file:
//! `allow = ["0.0.0.0/0", "::/0"]`. An empty `allow = []` is refused: it
//! says the same as no list in a way that looks like a half-done edit (use
//! `status = "revoked"` to disable a key).
//!
//! The same default holds for [`KeyEntry::new`]: [`KeyEntry::allow_any`]
//! opens an entry built in code.
//!
//! # What is refused
//!
//! Loading stops at the first problem, and the [`KeysError`] names the file,
//! the line and column when there is one, the key (`key 1001 (#2)`, or
//! `key #2` when its id is missing or bad) and the precise problem:
//!
//! - a keys file that group or others may access in any way
//!   (`mode & 0o077 != 0`), that is not a regular file, or that is larger than
//!   [`KEYS_FILE_SIZE_MAX`];
//! - text that is not UTF-8, or not TOML;
//! - any field not listed above, at the top level or in a `[[key]]`
//!   (`deny_unknown_fields`: a misspelt `burts` must not silently become the
//!   default);
//! - a missing required field, a value of the wrong type, a malformed secret
//!   or `secret_next`, a `secret_next` equal to `secret`, an unknown scope,
//!   environment or status, an empty `scopes` or `allow`, a rate or limit out
//!   of range (every `max_*` is at least 1);
//! - a malformed `allow` entry (which one, and why: bad address, prefix too
//!   long, host bits set), or more than [`ALLOW_CIDRS_MAX`] of them;
//! - a malformed timestamp (which field, and why), or `not_before` not
//!   before `not_after`;
//! - two keys with the same id;
//! - more than [`KEYS_MAX`] keys;
//! - **no key at all**: a gateway nobody can log into is a misconfiguration
//!   (a wrong path, an emptied file), not a state worth starting in.
//!
//! # Secrets in errors
//!
//! No error ever holds secret material. The text of the file is quoted only
//! through field, scope, environment and status names and `allow` entries,
//! and only those that are short and do not contain a run of 8 or more hex
//! digits (see `echoable`): a secret pasted into the wrong place is reported
//! without being repeated. Timestamps are never quoted (the error says what
//! is wrong with them, and where). toml's own `Display` prints the offending
//! source line, so it is never used: only its message (with quoted parts
//! checked the same way) and the position, turned into line and column here.
//!
//! # Wiping, and what is not wiped
//!
//! The runtime's loader (`ordergate::keys_file`, `KeyTable::load`) reads the file into a [`Zeroizing`] buffer of exactly
//! the file's size (no reallocation, no intermediate buffer), which is wiped
//! when loading ends. toml parses it without copying: strings are borrowed
//! from that buffer, and each secret (and `secret_next`) is decoded straight
//! into its place in the table's final allocation, which is sized once and
//! never moved.
//!
//! Copies this module cannot wipe:
//!
//! - On a TOML syntax error, toml copies the whole document into an
//!   `Arc<str>` inside its error (for its own snippet display). That error is
//!   dropped as soon as its message and position are read, unwiped.
//! - A string written with escapes (`"\u0041"`) is unescaped by toml into a
//!   buffer of its own. When that string is a secret the buffer is handed to
//!   this module and wiped, but any reallocation during unescaping is not;
//!   any other such string is dropped by toml unwiped. Hex secrets never need
//!   escapes.
//! - [`KeyTable::from_entries`] sorts the entries it is given: moving a
//!   [`KeyEntry`] copies its secret, and the sources of those copies (stack
//!   temporaries) are not wiped. Tests and tools only; `load` does not move
//!   secrets.
//! - [`new_key_entry_toml`] returns text holding a secret, in a `String`
//!   reserved once (never reallocated while it is written); wiping it is the
//!   caller's (`Zeroizing::new(new_key_entry_toml(..))`).
//! - The kernel's page cache and the file itself.

use core::fmt;
use core::fmt::Write as _;
use core::marker::PhantomData;
use core::net::IpAddr;
use core::num::{NonZeroU32, NonZeroU64};
use core::ops::Range;
use std::borrow::Cow;
use std::io;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use toml::Spanned;
use toml::de::DeTable;
use zeroize::Zeroizing;

use crate::auth::policy::{
    Cidr, CidrError, KeyDisabled, KeyStatus, Rfc3339, RiskReject, TimestampError, order_notional,
    parse_rfc3339,
};
use crate::auth::secret::{SECRET_HEX_LEN, SECRET_SIZE, Secret, SecretError};
use crate::constants::{ALLOW_CIDRS_MAX, BURST_DEFAULT, KEYS_MAX, MSGS_PER_SEC_DEFAULT};
use crate::wire::codes::{Environment, Scopes};

// The key limits, defined in `constants` with their reasons; here too for
// the paths callers already use.
pub use crate::constants::{BURST_MAX, KEYS_FILE_SIZE_MAX, MSGS_PER_SEC_MAX};

/// Name used as the origin of errors from [`KeyTable::from_entries`].
pub const ORIGIN_IN_MEMORY: &str = "<in memory>";

const _: () = assert!(KEYS_MAX <= u32::MAX as usize, "KeyIndex is a u32");
/// 160 bytes on x86-64 (the allow list lives in its own allocation): a
/// table of `KEYS_MAX` entries is 640 KiB, built once.
const _: () = assert!(size_of::<KeyEntry>() <= 160);

/// One API key. The checks made with it at logon and per order are in
/// [`crate::auth::policy`]: [`KeyEntry::allows`], [`KeyEntry::valid_at`],
/// [`KeyEntry::secrets`], [`KeyEntry::secret_matching`],
/// [`KeyEntry::session_limit_reached`], [`KeyEntry::check_order`].
///
/// `#[non_exhaustive]`: outside this crate an entry is built with
/// [`KeyEntry::new`] and the `with_*` methods (or by setting fields of one),
/// so that a new field does not break every test that makes keys. The
/// invariants below hold in a [`KeyTable`], which checks them.
#[derive(Debug)]
#[non_exhaustive]
pub struct KeyEntry {
    pub id: u64,
    /// `Debug` prints `Secret(<redacted>)`.
    pub secret: Secret,
    /// The next secret during a rotation; never equal to `secret`.
    pub secret_next: Option<Secret>,
    /// Never empty, and only bits in `Scopes::DEFINED`.
    pub scopes: Scopes,
    pub environment: Environment,
    /// In `1..=MSGS_PER_SEC_MAX`.
    pub msgs_per_sec: u32,
    /// In `1..=BURST_MAX`.
    pub burst: u32,
    /// Networks the key may connect from; empty means none (see the module
    /// docs). At most [`ALLOW_CIDRS_MAX`].
    pub allow: Box<[Cidr]>,
    /// Valid from this instant on (inclusive), ns since the Unix epoch.
    pub not_before_ns: Option<u64>,
    /// Valid until this instant (exclusive); after `not_before_ns` when
    /// both are set.
    pub not_after_ns: Option<u64>,
    /// Sessions of this key logged on at once, gateway-wide.
    pub max_sessions: Option<NonZeroU32>,
    /// Largest quantity of one order.
    pub max_order_qty: Option<NonZeroU32>,
    /// Largest notional of one order, in price ticks × quantity: checked
    /// as `|price| × qty` by the gateway, and at the prices the order would
    /// fill at by the engine.
    pub max_order_notional: Option<NonZeroU64>,
    /// Largest open notional, `Σ |price| × leaves` of the key's resting
    /// orders (all sessions), checked by the engine.
    pub max_open_notional: Option<NonZeroU64>,
    pub status: KeyStatus,
}

impl KeyEntry {
    /// An active key with the default rates, no rotation, no validity
    /// bounds, no limits, and **no `allow` list**: like a file entry without
    /// one, it connects from nowhere until [`KeyEntry::with_allow`] or
    /// [`KeyEntry::allow_any`].
    pub fn new(id: u64, secret: Secret, scopes: Scopes, environment: Environment) -> KeyEntry {
        KeyEntry {
            id,
            secret,
            secret_next: None,
            scopes,
            environment,
            msgs_per_sec: MSGS_PER_SEC_DEFAULT,
            burst: BURST_DEFAULT,
            allow: Box::default(),
            not_before_ns: None,
            not_after_ns: None,
            max_sessions: None,
            max_order_qty: None,
            max_order_notional: None,
            max_open_notional: None,
            status: KeyStatus::Active,
        }
    }

    /// The key's rate limit (checked when the entry joins a table).
    #[must_use]
    pub fn with_rate(mut self, msgs_per_sec: u32, burst: u32) -> KeyEntry {
        self.msgs_per_sec = msgs_per_sec;
        self.burst = burst;
        self
    }

    /// The networks the key may connect from (replacing any before).
    #[must_use]
    pub fn with_allow(mut self, allow: impl Into<Box<[Cidr]>>) -> KeyEntry {
        self.allow = allow.into();
        self
    }

    /// From every address: `allow = ["0.0.0.0/0", "::/0"]`.
    #[must_use]
    pub fn allow_any(self) -> KeyEntry {
        self.with_allow([Cidr::ANY_V4, Cidr::ANY_V6])
    }

    /// A rotation in progress: `next` is accepted as well as `secret`.
    #[must_use]
    pub fn with_secret_next(mut self, next: Secret) -> KeyEntry {
        self.secret_next = Some(next);
        self
    }
}

/// The checks made with a key at logon and on every order. The rules, and
/// which wire code each refusal becomes, are [`crate::auth::policy`]'s
/// module docs; the types they return are defined there.
impl KeyEntry {
    /// Whether this key may connect from `peer`: `peer` is in one of the
    /// `allow` CIDRs. An empty list allows nothing (the keys file's default;
    /// see the keys module docs). At most [`ALLOW_CIDRS_MAX`] comparisons.
    #[inline]
    pub fn allows(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.allow.iter().any(|cidr| cidr.contains_canonical(peer))
    }

    /// Whether the key may log on at `now_ns`: not revoked, and
    /// `not_before <= now < not_after` (an absent bound does not bind).
    ///
    /// # Errors
    ///
    /// Which of the three it is, checked in this order: revoked, not yet
    /// valid, expired.
    #[inline]
    pub fn valid_at(&self, now_ns: u64) -> Result<(), KeyDisabled> {
        if self.status == KeyStatus::Revoked {
            return Err(KeyDisabled::Revoked);
        }
        if self.not_before_ns.is_some_and(|start| now_ns < start) {
            return Err(KeyDisabled::NotYetValid);
        }
        if self.not_after_ns.is_some_and(|end| now_ns >= end) {
            return Err(KeyDisabled::Expired);
        }
        Ok(())
    }

    /// The current secret, and the next one while a rotation is under way.
    /// A logon signed with either is accepted.
    #[inline]
    pub fn secrets(&self) -> (&Secret, Option<&Secret>) {
        (&self.secret, self.secret_next.as_ref())
    }

    /// The secret for which `verify` holds, preferring the current one, or
    /// `None`. During a rotation `verify` is called for **both** secrets,
    /// whatever the first answer, so the time a logon takes does not say
    /// which secret signed it (it still says that the key is rotating).
    ///
    /// The logon signature is checked this way, and the session keys are
    /// then derived from the secret returned.
    #[inline]
    pub fn secret_matching(
        &self,
        mut verify: impl FnMut(&[u8; SECRET_SIZE]) -> bool,
    ) -> Option<&Secret> {
        let current = verify(self.secret.expose());
        let next = self
            .secret_next
            .as_ref()
            .filter(|next| verify(next.expose()));
        if current { Some(&self.secret) } else { next }
    }

    /// Whether a key that already has `live_sessions` sessions logged on is
    /// at its `max_sessions` (so one more is refused `SESSION_LIMIT`).
    /// Never true without a `max_sessions`.
    #[inline]
    pub fn session_limit_reached(&self, live_sessions: u32) -> bool {
        self.max_sessions
            .is_some_and(|max| live_sessions >= max.get())
    }

    /// The per-order risk limits, for a NewOrder (its price and quantity) or
    /// a ReplaceOrder (the new price and quantity). An absent limit does not
    /// bind; a quantity or notional equal to its limit passes. Quantity is
    /// checked first. Exact for every `i64` price and `u32` quantity (see the
    /// module docs on notional).
    ///
    /// # Errors
    ///
    /// [`RiskReject::MaxQty`], else [`RiskReject::MaxNotional`].
    #[inline]
    pub fn check_order(&self, price: i64, qty: u32) -> Result<(), RiskReject> {
        if self.max_order_qty.is_some_and(|max| qty > max.get()) {
            return Err(RiskReject::MaxQty);
        }
        if self
            .max_order_notional
            .is_some_and(|max| order_notional(price, qty) > u128::from(max.get()))
        {
            return Err(RiskReject::MaxNotional);
        }
        Ok(())
    }
}

/// Dense index of a key in its table, `0..table.len()`: the index into
/// parallel arrays of per-key runtime state. Only meaningful for the table
/// that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyIndex(pub u32);

/// Every API key of the gateway, immutable once built.
#[derive(Debug)]
pub struct KeyTable {
    /// The file it was loaded from, or [`ORIGIN_IN_MEMORY`]: for warnings.
    origin: String,
    /// Sorted by strictly increasing `id`; `1..=KEYS_MAX` entries. Never
    /// pushed to after it is built, so its buffer (and the secrets in it) is
    /// never moved.
    entries: Vec<KeyEntry>,
    /// What the kernel granted for the pages holding `entries` (and so the
    /// secrets): left out of core dumps, locked in RAM.
    secret_memory: SecretMemory,
}

/// What the memory protection obtained for the pages holding a table's
/// secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretMemory {
    /// `MADV_DONTDUMP` applied: the pages are left out of core dumps.
    pub excluded_from_dumps: bool,
    /// `mlock` succeeded: the pages are never written to swap.
    pub locked: bool,
}

impl SecretMemory {
    /// Nothing asked of the kernel.
    pub const UNPROTECTED: SecretMemory = SecretMemory {
        excluded_from_dumps: false,
        locked: false,
    };
}

/// How a table asks that the pages about to hold its secrets, `[ptr, ptr +
/// len)`, be kept out of core dumps and swap. The core makes no system
/// call: the runtime passes `ordergate::sys::protect_secret_memory`
/// (`MADV_DONTDUMP` and `mlock`) when it loads the keys file; tables built
/// here without one ([`KeyTable::from_entries`], [`KeyTable::from_toml_str`]:
/// tests and tools) use [`no_protection`].
pub type ProtectMemory = fn(ptr: *const u8, len: usize) -> SecretMemory;

/// The protector that asks for nothing.
pub fn no_protection(_ptr: *const u8, _len: usize) -> SecretMemory {
    SecretMemory::UNPROTECTED
}

impl KeyTable {
    /// Parses and checks the text of a keys file. `origin` names the file in
    /// errors. `text` is the caller's to wipe (`load` holds it in a
    /// `Zeroizing` buffer); nothing here copies a secret out of it except
    /// into the returned table.
    ///
    /// # Errors
    ///
    /// See the module docs.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<KeyTable, KeysError> {
        KeyTable::from_toml_str_protected(text, origin, no_protection)
    }

    /// [`from_toml_str`](Self::from_toml_str), asking `protect` to keep the
    /// pages that will hold the secrets out of core dumps and swap before
    /// any secret is decoded into them (the runtime's keys-file loader
    /// passes `mlock` + `MADV_DONTDUMP`; see [`ProtectMemory`]).
    ///
    /// # Errors
    ///
    /// As [`from_toml_str`](Self::from_toml_str).
    pub fn from_toml_str_protected(
        text: &str,
        origin: &str,
        protect: ProtectMemory,
    ) -> Result<KeyTable, KeysError> {
        let root = DeTable::parse(text).map_err(|e| {
            let location = e.span().map(|span| Location::of(text, span.start));
            // Only the message: `e`'s Display quotes the source line.
            let message = scrub(e.message());
            KeysError::new(origin, location, None, KeysErrorKind::Syntax { message })
        })?;

        // Where each [[key]] is, and its id, so that an error toml reports
        // inside an entry can name the key.
        let probes = probe_entries(root.get_ref());
        let file = RawFile::deserialize(toml::de::Deserializer::from(root))
            .map_err(|e| structure_error(&e, text, origin, &probes))?;

        let count = file.key.len();
        if count == 0 {
            return Err(KeysError::new(origin, None, None, KeysErrorKind::Empty));
        }
        if count > KEYS_MAX {
            return Err(KeysError::new(
                origin,
                None,
                None,
                KeysErrorKind::TooManyKeys {
                    count,
                    max: KEYS_MAX,
                },
            ));
        }

        let mut checked = Vec::with_capacity(count);
        for (index, entry) in file.key.iter().enumerate() {
            checked.push(check_entry(text, origin, index + 1, entry)?);
        }

        // Sort what was checked (ids and references, no secret bytes), then
        // build the table in order, decoding each secret in place.
        checked.sort_by_key(|c| c.id);
        if let Some(pair) = checked.windows(2).find(|w| w[0].id == w[1].id) {
            let (first, second) = (&pair[0], &pair[1]);
            return Err(KeysError::new(
                origin,
                Some(second.location),
                Some(KeyRef {
                    number: second.number,
                    id: Some(second.id),
                }),
                KeysErrorKind::DuplicateId {
                    id: second.id,
                    first: first.number,
                },
            ));
        }

        let mut entries: Vec<KeyEntry> = Vec::with_capacity(count);
        // Before any secret is decoded into it: the buffer's pages are
        // left out of core dumps and locked in RAM (never swapped).
        // `from_sorted` asks again for the same pages and keeps the answer.
        protect(entries.as_ptr().cast(), count * size_of::<KeyEntry>());
        for c in checked {
            entries.push(KeyEntry {
                id: c.id,
                secret: Secret::from_bytes([0; 32]),
                secret_next: c.secret_next.map(|_| Secret::from_bytes([0; 32])),
                scopes: c.scopes,
                environment: c.environment,
                msgs_per_sec: c.msgs_per_sec,
                burst: c.burst,
                allow: c.allow.into_boxed_slice(),
                not_before_ns: c.not_before_ns,
                not_after_ns: c.not_after_ns,
                max_sessions: c.max_sessions,
                max_order_qty: c.max_order_qty,
                max_order_notional: c.max_order_notional,
                max_open_notional: c.max_open_notional,
                status: c.status,
            });
            let slot = entries.last_mut().expect("just pushed");
            slot.secret
                .fill_from_hex(c.secret)
                .expect("secret was checked with check_hex");
            if let (Some(next), Some(hex)) = (slot.secret_next.as_mut(), c.secret_next) {
                next.fill_from_hex(hex)
                    .expect("secret_next was checked with check_hex");
            }
        }
        // Reserved once above, so no push reallocated (and left secrets in a
        // freed buffer).
        debug_assert!(entries.len() == count && entries.capacity() >= count);
        Ok(KeyTable::from_sorted(entries, origin, protect))
    }

    /// A table from entries built in code (tests, tools): the same checks as
    /// the file (count, scopes, rates, `allow` length, validity window,
    /// `secret_next` different from `secret`, duplicate ids), then sorted by
    /// id. (`max_*` are `NonZero`, and a `Cidr` is valid by construction.)
    /// An empty `allow` is accepted: it is `KeyEntry::new`'s default, and
    /// means what a file entry without `allow` means.
    /// Errors name the entry's position in `entries` (1-based) and use
    /// [`ORIGIN_IN_MEMORY`] as origin.
    ///
    /// Sorting moves entries; see the module docs on what that leaves.
    ///
    /// # Errors
    ///
    /// The first problem found, as for a file.
    pub fn from_entries(mut entries: Vec<KeyEntry>) -> Result<KeyTable, KeysError> {
        let origin = ORIGIN_IN_MEMORY;
        if entries.is_empty() {
            return Err(KeysError::new(origin, None, None, KeysErrorKind::Empty));
        }
        if entries.len() > KEYS_MAX {
            return Err(KeysError::new(
                origin,
                None,
                None,
                KeysErrorKind::TooManyKeys {
                    count: entries.len(),
                    max: KEYS_MAX,
                },
            ));
        }
        for (index, entry) in entries.iter().enumerate() {
            let key = Some(KeyRef {
                number: index + 1,
                id: Some(entry.id),
            });
            let problem = if entry.scopes.0 == 0 {
                Some(KeysErrorKind::EmptyScopes)
            } else if !Scopes::DEFINED.contains(entry.scopes) {
                Some(KeysErrorKind::UndefinedScopeBits {
                    bits: entry.scopes.0,
                })
            } else if entry.allow.len() > ALLOW_CIDRS_MAX {
                Some(KeysErrorKind::TooManyCidrs {
                    count: entry.allow.len(),
                    max: ALLOW_CIDRS_MAX,
                })
            } else if let Some(kind) = check_window(entry.not_before_ns, entry.not_after_ns) {
                Some(kind)
            } else if entry
                .secret_next
                .as_ref()
                .is_some_and(|next| next.expose() == entry.secret.expose())
            {
                Some(KeysErrorKind::SecretNextSameAsSecret)
            } else {
                check_rate("msgs_per_sec", entry.msgs_per_sec.into(), MSGS_PER_SEC_MAX)
                    .and_then(|_| check_rate("burst", entry.burst.into(), BURST_MAX))
                    .err()
            };
            if let Some(kind) = problem {
                return Err(KeysError::new(origin, None, key, kind));
            }
        }
        let mut order: Vec<(u64, usize)> = entries
            .iter()
            .enumerate()
            .map(|(index, e)| (e.id, index + 1))
            .collect();
        order.sort_unstable();
        if let Some(pair) = order.windows(2).find(|w| w[0].0 == w[1].0) {
            let ((id, first), (_, second)) = (pair[0], pair[1]);
            return Err(KeysError::new(
                origin,
                None,
                Some(KeyRef {
                    number: second,
                    id: Some(id),
                }),
                KeysErrorKind::DuplicateId { id, first },
            ));
        }
        entries.sort_unstable_by_key(|e| e.id);
        Ok(KeyTable::from_sorted(entries, origin, no_protection))
    }

    fn from_sorted(entries: Vec<KeyEntry>, origin: &str, protect: ProtectMemory) -> KeyTable {
        assert!(!entries.is_empty() && entries.len() <= KEYS_MAX);
        assert!(entries.windows(2).all(|w| w[0].id < w[1].id));
        assert!(entries.iter().all(|e| e.allow.len() <= ALLOW_CIDRS_MAX));
        let secret_memory = protect(
            entries.as_ptr().cast(),
            entries.len() * size_of::<KeyEntry>(),
        );
        KeyTable {
            origin: origin.to_owned(),
            entries,
            secret_memory,
        }
    }

    /// Whether the pages holding the secrets are left out of core dumps and
    /// locked in RAM (`serve` warns when the kernel refused the lock:
    /// `RLIMIT_MEMLOCK`, raised by the unit's `LimitMEMLOCK`). Both false
    /// for a table built without a protector.
    pub fn secret_memory(&self) -> SecretMemory {
        self.secret_memory
    }

    /// The file the table was loaded from, or [`ORIGIN_IN_MEMORY`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// What start-up should print about keys that load but cannot be used
    /// at `now_ns`, in id order: a key with no `allow` list (it connects from
    /// nowhere), and a key that is revoked, not valid yet or expired. A
    /// revoked key is not also warned about for its `allow` list.
    pub fn warnings(&self, now_ns: u64) -> impl Iterator<Item = KeyWarning<'_>> {
        let origin = self.origin.as_str();
        self.entries.iter().flat_map(move |entry| {
            let disabled = entry.valid_at(now_ns).err().map(|why| match why {
                KeyDisabled::Revoked => KeyWarningKind::Revoked,
                KeyDisabled::NotYetValid => KeyWarningKind::NotYetValid {
                    not_before_ns: entry.not_before_ns.unwrap_or(0),
                },
                KeyDisabled::Expired => KeyWarningKind::Expired {
                    not_after_ns: entry.not_after_ns.unwrap_or(0),
                },
            });
            let nowhere = (entry.allow.is_empty() && entry.status != KeyStatus::Revoked)
                .then_some(KeyWarningKind::NoAllowList);
            [nowhere, disabled]
                .into_iter()
                .flatten()
                .map(move |kind| KeyWarning {
                    origin,
                    id: entry.id,
                    kind,
                })
        })
    }

    /// The key with this id, and its index. Binary search; allocates nothing.
    #[inline]
    pub fn get(&self, id: u64) -> Option<(KeyIndex, &KeyEntry)> {
        let index = self.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        // Cannot truncate: len <= KEYS_MAX <= u32::MAX (asserted above).
        Some((KeyIndex(index as u32), &self.entries[index]))
    }

    /// The key at `index`.
    ///
    /// # Panics
    ///
    /// If `index` is not below `len()`: an index from another table is a bug.
    #[inline]
    pub fn entry(&self, index: KeyIndex) -> &KeyEntry {
        &self.entries[index.0 as usize]
    }

    /// Keys in the table; at least 1.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false for a built table (an empty one is refused); here for
    /// the `len`/`is_empty` convention.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every key with its index, in increasing id order.
    pub fn iter(&self) -> impl Iterator<Item = (KeyIndex, &KeyEntry)> {
        // Cannot truncate: len <= KEYS_MAX <= u32::MAX.
        self.entries
            .iter()
            .enumerate()
            .map(|(index, entry)| (KeyIndex(index as u32), entry))
    }
}

// ---------------------------------------------------------------------------
// `ordergate keys new`

/// Bytes of [`new_key_entry_toml`]'s fixed text (comments, field names,
/// the secret, the id), rounded up: everything but the scope and
/// environment names, which are counted separately.
const NEW_ENTRY_FIXED_LEN_MAX: usize = 768;

/// A ready `[[key]]` entry for a new key, to append to the keys file: a
/// comment, `id`, `secret` (64 lowercase hex digits), `scopes`,
/// `environment`, and an `allow` line commented out with an example (so the
/// key connects from nowhere until the operator lists its addresses).
///
/// The names are written as given, as TOML strings (escaped where needed);
/// they are not checked here: the caller checks them (`Scopes::from_name`,
/// "production" / "sandbox"), and [`KeyTable::from_toml_str`] refuses an
/// entry with a wrong one.
///
/// The result holds the secret (printing it is the point). It is written
/// into one reservation that is never outgrown, so no copy is left in a
/// freed buffer; wrap it in `Zeroizing` to wipe it after use.
pub fn new_key_entry_toml(id: u64, scopes: &[&str], environment: &str, secret: &Secret) -> String {
    // An escaped character takes at most 6 bytes (`\u001f`); 4 more per
    // scope for the quotes, comma and space.
    let names_len_max: usize =
        scopes.iter().map(|s| 6 * s.len() + 4).sum::<usize>() + 6 * environment.len();
    let mut out = String::with_capacity(NEW_ENTRY_FIXED_LEN_MAX + names_len_max);
    let reserved = out.capacity();

    let _ = writeln!(
        out,
        "# API key {id}, made by `ordergate keys new`. The secret is the whole\n\
         # credential: hand it to the key's owner over a secure channel, and keep\n\
         # this file mode 0600.\n\
         [[key]]\n\
         id = {id}"
    );
    out.push_str("secret = \"");
    // Encoded into a buffer wiped on drop, then copied into `out`.
    let mut digits = zeroize::Zeroizing::new([0u8; SECRET_HEX_LEN]);
    hex::encode_to_slice(secret.expose(), &mut digits[..]).expect("64 digits for 32 bytes");
    out.push_str(core::str::from_utf8(&digits[..]).expect("hex is ASCII"));
    out.push_str("\"\nscopes = [");
    for (i, scope) in scopes.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_toml_string(&mut out, scope);
    }
    out.push_str("]\nenvironment = ");
    push_toml_string(&mut out, environment);
    out.push_str(
        "\n# Without `allow` this key may not connect from anywhere. List the\n\
         # addresses or networks of its clients, IPv4 or IPv6, for example:\n\
         # allow = [\"203.0.113.7\", \"198.51.100.0/24\", \"2001:db8:1::/48\"]\n",
    );
    debug_assert_eq!(
        out.capacity(),
        reserved,
        "the entry outgrew its reservation"
    );
    out
}

/// `text` as a TOML basic string: quotes, backslashes and control
/// characters escaped.
fn push_toml_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Something start-up should tell the operator about a key that loaded:
/// `Display` names the file and the key and says what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyWarning<'t> {
    pub origin: &'t str,
    pub id: u64,
    pub kind: KeyWarningKind,
}

/// See [`KeyTable::warnings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyWarningKind {
    /// No `allow` list: every logon is refused ADDRESS_NOT_ALLOWED.
    NoAllowList,
    /// `status = "revoked"`: every logon is refused KEY_DISABLED.
    Revoked,
    /// Refused KEY_DISABLED until `not_before_ns`.
    NotYetValid { not_before_ns: u64 },
    /// Refused KEY_DISABLED since `not_after_ns`.
    Expired { not_after_ns: u64 },
}

impl fmt::Display for KeyWarning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keys file {}, key {}: ", self.origin, self.id)?;
        match self.kind {
            KeyWarningKind::NoAllowList => f.write_str(
                "no `allow` list, so it may not connect from anywhere (every logon is \
                 refused ADDRESS_NOT_ALLOWED); list its clients' networks, e.g. \
                 allow = [\"203.0.113.0/24\"], or allow = [\"0.0.0.0/0\", \"::/0\"] \
                 for every address",
            ),
            KeyWarningKind::Revoked => f.write_str("revoked: every logon is refused KEY_DISABLED"),
            KeyWarningKind::NotYetValid { not_before_ns } => write!(
                f,
                "not valid until {}: logons are refused KEY_DISABLED until then",
                Rfc3339(not_before_ns)
            ),
            KeyWarningKind::Expired { not_after_ns } => write!(
                f,
                "expired at {}: every logon is refused KEY_DISABLED",
                Rfc3339(not_after_ns)
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Errors

/// Why the keys could not be loaded. `Display` names the origin (file), the
/// place when known and the problem; nothing in it is secret.
#[derive(Debug)]
pub struct KeysError(Box<ErrorParts>);

/// Boxed: errors are rare, and a small `Result` keeps the happy path lean.
#[derive(Debug)]
struct ErrorParts {
    origin: String,
    location: Option<Location>,
    key: Option<KeyRef>,
    kind: KeysErrorKind,
}

/// A place in a TOML file (the keys file, the serve config), both 1-based;
/// the column counts characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// Which `[[key]]` an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRef {
    /// Position of the entry in the file (or in `from_entries`' vector),
    /// from 1.
    pub number: usize,
    /// The entry's id, when it has a valid one.
    pub id: Option<u64>,
}

/// The problem itself. Names quoted from the file are `None` when they were
/// withheld because they might be key material.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeysErrorKind {
    /// The file could not be opened, inspected (`fstat`) or read.
    Io {
        action: &'static str,
        source: io::Error,
    },
    /// A directory, device, socket, FIFO…
    NotRegularFile,
    /// The path is a symbolic link (refused, not followed).
    Symlink,
    /// The file belongs to a user other than the gateway's and root.
    Owner {
        owner: u32,
        me: u32,
    },
    /// Group or others have some permission on the file.
    Permissions {
        mode: u32,
    },
    /// Larger than [`KEYS_FILE_SIZE_MAX`].
    TooLarge {
        size: u64,
        max: u64,
    },
    /// The file's size changed between `fstat` and the end of the read.
    ChangedWhileReading,
    /// Not UTF-8; `offset` is of the first byte that is not.
    NotUtf8 {
        offset: usize,
    },
    /// Not TOML: toml's message, without its quote of the source.
    Syntax {
        message: String,
    },
    /// A field this version does not know, at the top level (no key) or in
    /// a `[[key]]`. `expected` is toml's list of the known fields.
    UnknownField {
        field: Option<String>,
        expected: String,
    },
    /// The document does not have the keys file's shape (e.g. `key` is not
    /// an array of tables): toml's message, checked for quoted key material.
    Structure {
        message: String,
    },
    MissingField {
        field: &'static str,
    },
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// An integer outside `min..=max`.
    OutOfRange {
        field: &'static str,
        value: i128,
        min: u64,
        max: u64,
    },
    Secret(SecretError),
    /// `secret_next` is malformed.
    SecretNext(SecretError),
    /// `secret_next` is the same secret as `secret` (either case).
    SecretNextSameAsSecret,
    UnknownScope {
        name: Option<String>,
    },
    EmptyScopes,
    /// `from_entries` only: scope bits outside `Scopes::DEFINED`.
    UndefinedScopeBits {
        bits: u8,
    },
    UnknownEnvironment {
        name: Option<String>,
    },
    UnknownStatus {
        name: Option<String>,
    },
    /// `allow = []`.
    EmptyAllow,
    /// More than [`ALLOW_CIDRS_MAX`] entries in `allow`.
    TooManyCidrs {
        count: usize,
        max: usize,
    },
    /// Entry `item` (1-based) of `allow` is not a CIDR. `text` is the entry
    /// when it is safe to repeat (it looks like an address).
    BadCidr {
        item: usize,
        text: Option<String>,
        problem: CidrError,
    },
    /// `not_before` or `not_after` is not a timestamp this file accepts.
    BadTimestamp {
        field: &'static str,
        problem: TimestampError,
    },
    /// `not_before >= not_after`: the key would never be valid.
    EmptyWindow {
        not_before_ns: u64,
        not_after_ns: u64,
    },
    /// The id of the key named by the error is also that of entry `first`.
    DuplicateId {
        id: u64,
        first: usize,
    },
    TooManyKeys {
        count: usize,
        max: usize,
    },
    /// No `[[key]]` at all.
    Empty,
}

impl KeysError {
    /// An error about `origin` (a file, or [`ORIGIN_IN_MEMORY`]); the
    /// keys-file loader makes the I/O ones.
    pub fn new(
        origin: &str,
        location: Option<Location>,
        key: Option<KeyRef>,
        kind: KeysErrorKind,
    ) -> KeysError {
        KeysError(Box::new(ErrorParts {
            origin: origin.to_owned(),
            location,
            key,
            kind,
        }))
    }

    /// The file (or [`ORIGIN_IN_MEMORY`]).
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    pub fn location(&self) -> Option<Location> {
        self.0.location
    }

    pub fn key(&self) -> Option<KeyRef> {
        self.0.key
    }

    pub fn kind(&self) -> &KeysErrorKind {
        &self.0.kind
    }
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keys file {}", self.0.origin)?;
        if let Some(Location { line, column }) = self.0.location {
            write!(f, ", line {line}, column {column}")?;
        }
        match self.0.key {
            Some(KeyRef {
                number,
                id: Some(id),
            }) => write!(f, ", key {id} (#{number})")?,
            Some(KeyRef { number, id: None }) => write!(f, ", key #{number}")?,
            None => {}
        }
        write!(f, ": {}", self.0.kind)
    }
}

impl fmt::Display for KeysErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn name(name: &Option<String>) -> String {
            match name {
                Some(name) => format!("\"{name}\""),
                None => "<withheld: it looks like key material>".to_owned(),
            }
        }
        match self {
            KeysErrorKind::Io { action, source } => write!(f, "cannot {action} it: {source}"),
            KeysErrorKind::NotRegularFile => write!(f, "it is not a regular file"),
            KeysErrorKind::Symlink => write!(
                f,
                "it is a symbolic link; name the file itself (links are not followed)"
            ),
            KeysErrorKind::Owner { owner, me } => write!(
                f,
                "it belongs to uid {owner}, not to the gateway's user (uid {me}) or root; \
                 chown it"
            ),
            KeysErrorKind::Permissions { mode } => write!(
                f,
                "it has mode {mode:04o}: it must not be accessible by group or others (chmod 600)"
            ),
            KeysErrorKind::TooLarge { size, max } => write!(
                f,
                "it is {size} bytes; a keys file may be at most {max} bytes"
            ),
            KeysErrorKind::ChangedWhileReading => {
                write!(f, "it changed size while being read; load it again")
            }
            KeysErrorKind::NotUtf8 { offset } => {
                write!(f, "it is not UTF-8 (first bad byte at offset {offset})")
            }
            KeysErrorKind::Syntax { message } => write!(f, "not valid TOML: {message}"),
            KeysErrorKind::UnknownField { field, expected } => {
                write!(f, "unknown field {}; {expected}", name(field))
            }
            KeysErrorKind::Structure { message } => {
                write!(f, "not a keys file ([[key]] tables): {message}")
            }
            KeysErrorKind::MissingField { field } => write!(f, "`{field}` is missing"),
            KeysErrorKind::WrongType {
                field,
                expected,
                found,
            } => write!(f, "`{field}` must be {expected}, found {found}"),
            KeysErrorKind::OutOfRange {
                field,
                value,
                min,
                max,
            } => write!(f, "`{field}` is {value}; it must be in {min}..={max}"),
            KeysErrorKind::Secret(e) => write!(f, "{e}"),
            KeysErrorKind::SecretNext(e) => write!(f, "`secret_next`: {e}"),
            KeysErrorKind::SecretNextSameAsSecret => write!(
                f,
                "`secret_next` is the same as `secret`; a rotation needs a new secret"
            ),
            KeysErrorKind::UnknownScope { name: scope } => write!(
                f,
                "unknown scope {}; scopes are \"trade\", \"cancel\" and \"read\"",
                name(scope)
            ),
            KeysErrorKind::EmptyScopes => {
                write!(f, "`scopes` is empty; a key needs at least one scope")
            }
            KeysErrorKind::UndefinedScopeBits { bits } => write!(
                f,
                "scopes {bits:#010b} has bits outside TRADE, CANCEL and READ"
            ),
            KeysErrorKind::UnknownEnvironment { name: env } => write!(
                f,
                "unknown environment {}; it must be \"production\" or \"sandbox\"",
                name(env)
            ),
            KeysErrorKind::UnknownStatus { name: status } => write!(
                f,
                "unknown status {}; it must be \"active\" or \"revoked\"",
                name(status)
            ),
            KeysErrorKind::EmptyAllow => write!(
                f,
                "`allow` is empty, which would refuse every address; list the \
                 networks the key may connect from (or use status = \"revoked\" to \
                 disable it)"
            ),
            KeysErrorKind::TooManyCidrs { count, max } => write!(
                f,
                "`allow` has {count} entries; at most {max} (ALLOW_CIDRS_MAX) are allowed"
            ),
            KeysErrorKind::BadCidr {
                item,
                text,
                problem,
            } => {
                write!(f, "`allow` entry {item} ")?;
                match text {
                    Some(text) => write!(f, "\"{text}\"")?,
                    None => f.write_str("<withheld: it looks like key material>")?,
                }
                write!(f, " is not a CIDR: {problem}")
            }
            KeysErrorKind::BadTimestamp { field, problem } => write!(
                f,
                "`{field}` is not an RFC 3339 timestamp such as \"2026-11-23T00:00:00Z\": \
                 {problem}"
            ),
            KeysErrorKind::EmptyWindow {
                not_before_ns,
                not_after_ns,
            } => write!(
                f,
                "`not_before` ({}) is not before `not_after` ({}); the key would never be valid",
                Rfc3339(*not_before_ns),
                Rfc3339(*not_after_ns)
            ),
            KeysErrorKind::DuplicateId { id, first } => {
                write!(f, "duplicate id {id}: key #{first} has it too")
            }
            KeysErrorKind::TooManyKeys { count, max } => {
                write!(f, "{count} keys; at most {max} (KEYS_MAX) are allowed")
            }
            KeysErrorKind::Empty => write!(
                f,
                "it defines no [[key]]; a gateway nobody can log into is refused"
            ),
        }
    }
}

impl std::error::Error for KeysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0.kind {
            KeysErrorKind::Io { source, .. } => Some(source),
            KeysErrorKind::Secret(e) | KeysErrorKind::SecretNext(e) => Some(e),
            KeysErrorKind::BadCidr { problem, .. } => Some(problem),
            KeysErrorKind::BadTimestamp { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

impl Location {
    /// Line and column of byte `offset` of `text` (also used by the serve
    /// config's errors).
    pub fn of(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

// ---------------------------------------------------------------------------
// Quoting text from the file in errors

/// Longest name from the file an error repeats.
const ECHO_LEN_MAX: usize = 32;

/// A run of this many hex digits makes text look like key material.
const ECHO_HEX_RUN_MIN: usize = 8;

/// The longest run of hex digits in `text` (public: the config file's
/// errors measure with it too).
pub fn hex_run_max(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// `name` if it is safe to repeat in an error: short, made of name
/// characters, and without a run of hex digits that could be (part of) a
/// secret pasted into the wrong place. `None` otherwise. (Public: the
/// config file's errors follow the same rule.)
pub fn echoable(name: &str) -> Option<String> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
    (plain && name.len() <= ECHO_LEN_MAX && hex_run_max(name) < ECHO_HEX_RUN_MIN)
        .then(|| name.to_owned())
}

/// Longest `allow` entry an error repeats: the longest CIDR
/// (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128`) is 49 characters.
const ECHO_CIDR_LEN_MAX: usize = 64;

/// An `allow` entry if it is safe to repeat in an error: only characters
/// of addresses, prefixes, zone ids and host names, short, and no run of 8
/// hex digits.
fn echoable_cidr(text: &str) -> Option<String> {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/' | '%' | '-' | '_'));
    (plain && text.len() <= ECHO_CIDR_LEN_MAX && hex_run_max(text) < ECHO_HEX_RUN_MIN)
        .then(|| text.to_owned())
}

const WITHHELD: &str = "<withheld>";

/// A toml or serde message with every quoted (`"…"` or `` `…` ``) part that
/// is not [`echoable`] replaced by `<withheld>`. serde quotes values it
/// refuses (`invalid type: string "…"`), and those can be secrets. If text
/// outside quotes still looks like key material, the whole message goes.
pub(crate) fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        out.push_str(&rest[..open]);
        let quote = rest.as_bytes()[open] as char;
        let body = &rest[open + 1..];
        // End of the quoted part: the next unescaped closing quote.
        let mut escaped = false;
        let close = body.char_indices().find_map(|(i, c)| {
            let end = c == quote && !escaped;
            escaped = quote == '"' && c == '\\' && !escaped;
            end.then_some(i)
        });
        out.push(quote);
        match close {
            Some(close) => {
                let quoted = &body[..close];
                // Names, and the parser's one- or two-character tokens (`=`).
                let token =
                    quoted.chars().count() <= 2 && quoted.chars().all(|c| c.is_ascii_punctuation());
                // Names, or an address (`localhost:9000` in a `listen`
                // error): neither may hold a run of hex digits.
                match echoable(quoted).or_else(|| echoable_cidr(quoted)) {
                    Some(safe) => out.push_str(&safe),
                    None if token => out.push_str(quoted),
                    None => out.push_str(WITHHELD),
                }
                out.push(quote);
                rest = &body[close + 1..];
            }
            None => {
                out.push_str(WITHHELD);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    if hex_run_max(&out) >= ECHO_HEX_RUN_MIN {
        return "<message withheld: it quotes text that looks like key material>".to_owned();
    }
    out
}

// ---------------------------------------------------------------------------
// The file as toml sees it

/// Top level. `deny_unknown_fields`: only `key`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a keys file")]
struct RawFile<'t> {
    #[serde(default, borrow)]
    key: Vec<Spanned<RawEntry<'t>>>,
}

/// One `[[key]]`. Every field is optional and takes any TOML value, so that
/// missing fields and wrong types are reported here, with the key's id and
/// without quoting the value; toml itself only refuses unknown fields
/// (`deny_unknown_fields`). A new field is one line here and one check in
/// `check_entry`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[key]] table")]
struct RawEntry<'t> {
    #[serde(borrow)]
    id: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    secret: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    scopes: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    environment: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    msgs_per_sec: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    burst: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    secret_next: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    allow: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    not_before: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    not_after: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    max_sessions: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    max_order_qty: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    max_order_notional: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    max_open_notional: Option<Spanned<Raw<'t>>>,
    #[serde(borrow)]
    status: Option<Spanned<Raw<'t>>>,
}

/// Any TOML value, reduced to what a keys file can use. No `Debug`: it may
/// hold a secret.
enum Raw<'t> {
    Int(i128),
    Str(Text<'t>),
    Array(Vec<Spanned<Raw<'t>>>),
    /// A bare TOML datetime, as toml writes it back (RFC 3339 when it has a
    /// date, a time and an offset).
    Datetime(String),
    /// Anything else, by its TOML type name.
    Other(&'static str),
}

/// A string value: borrowed from the (wiped) file text when toml needed no
/// unescaping, else toml's own buffer, taken over and wiped on drop.
enum Text<'t> {
    Borrowed(&'t str),
    Owned(Zeroizing<String>),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Owned(s) => s,
        }
    }
}

impl Raw<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Raw::Int(_) => "an integer",
            Raw::Str(_) => "a string",
            Raw::Array(_) => "an array",
            Raw::Datetime(_) => "a datetime",
            Raw::Other(name) => name,
        }
    }
}

impl<'de: 't, 't> Deserialize<'de> for Raw<'t> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor(PhantomData))
    }
}

struct RawVisitor<'t>(PhantomData<Raw<'t>>);

/// The key toml uses to pass a datetime through serde as a one-entry map.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

impl<'de: 't, 't> Visitor<'de> for RawVisitor<'t> {
    type Value = Raw<'t>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Raw<'t>, E> {
        Ok(Raw::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw<'t>, E> {
        Ok(Raw::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw<'t>, E> {
        Ok(Raw::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw<'t>, E> {
        Ok(Raw::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw<'t>, E> {
        Ok(i128::try_from(v).map_or(Raw::Other("an integer beyond i128"), Raw::Int))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Raw<'t>, E> {
        Ok(Raw::Other("a float"))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Raw<'t>, E> {
        Ok(Raw::Str(Text::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw<'t>, E> {
        Ok(Raw::Str(Text::Owned(Zeroizing::new(v.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw<'t>, E> {
        Ok(Raw::Str(Text::Owned(Zeroizing::new(v))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw<'t>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(8));
        while let Some(item) = seq.next_element::<Spanned<Raw<'t>>>()? {
            items.push(item);
        }
        Ok(Raw::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'t>, A::Error> {
        // toml passes a datetime as a map of one entry, its text.
        let mut raw = Raw::Other("a table");
        let mut first = true;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if first && key == TOML_DATETIME_KEY {
                raw = Raw::Datetime(map.next_value::<String>()?);
            } else {
                raw = Raw::Other("a table");
                map.next_value::<IgnoredAny>()?;
            }
            first = false;
        }
        Ok(raw)
    }
}

/// Where one `[[key]]` lies in the text (its header or braces, and every key
/// and value in it), and its id if that is a valid integer.
struct Probe {
    extent: Range<usize>,
    id: Option<u64>,
}

fn probe_entries(root: &DeTable<'_>) -> Vec<Probe> {
    let Some(array) = root.get("key").and_then(|v| v.get_ref().as_array()) else {
        return Vec::new();
    };
    let widen = |extent: &mut Range<usize>, span: Range<usize>| {
        extent.start = extent.start.min(span.start);
        extent.end = extent.end.max(span.end);
    };
    array
        .iter()
        .map(|item| {
            let mut probe = Probe {
                extent: item.span(),
                id: None,
            };
            if let Some(table) = item.get_ref().as_table() {
                for (key, value) in table.iter() {
                    widen(&mut probe.extent, key.span());
                    widen(&mut probe.extent, value.span());
                    if key.get_ref() == "id" {
                        probe.id = value
                            .get_ref()
                            .as_integer()
                            .and_then(|i| u64::from_str_radix(i.as_str(), i.radix()).ok());
                    }
                }
            }
            probe
        })
        .collect()
}

/// Turns toml's error for the document's shape into a `KeysError`, naming
/// the key when the error lies inside one.
fn structure_error(e: &toml::de::Error, text: &str, origin: &str, probes: &[Probe]) -> KeysError {
    let span = e.span();
    let location = span.as_ref().map(|s| Location::of(text, s.start));
    let key = span.as_ref().and_then(|s| {
        probes
            .iter()
            .position(|p| p.extent.contains(&s.start))
            .map(|index| KeyRef {
                number: index + 1,
                id: probes[index].id,
            })
    });
    let message = e.message();
    let kind = match unknown_field(message) {
        Some((field, expected)) => KeysErrorKind::UnknownField {
            field: echoable(field),
            expected: scrub(expected),
        },
        None => KeysErrorKind::Structure {
            message: scrub(message),
        },
    };
    KeysError::new(origin, location, key, kind)
}

/// Splits serde's "unknown field `NAME`, expected …" into NAME and the
/// "expected …" part (serde's list of the struct's fields). The split is at
/// the *last* "`, expected ", so a NAME containing that text cannot leak
/// into the list (which is made of field names, never "expected").
fn unknown_field(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("unknown field `")?;
    let split = rest.rfind("`, expected ")?;
    Some((&rest[..split], &rest[split + 3..]))
}

// ---------------------------------------------------------------------------
// Checking one entry

/// A `[[key]]` that passed every check. `secret` is checked hex, still in
/// the text (or in a wiped buffer of `RawFile`).
struct Checked<'a> {
    number: usize,
    location: Location,
    id: u64,
    secret: &'a str,
    /// Checked hex, different from `secret`.
    secret_next: Option<&'a str>,
    scopes: Scopes,
    environment: Environment,
    msgs_per_sec: u32,
    burst: u32,
    /// Reserved to its exact length: boxed without reallocating.
    allow: Vec<Cidr>,
    not_before_ns: Option<u64>,
    not_after_ns: Option<u64>,
    max_sessions: Option<NonZeroU32>,
    max_order_qty: Option<NonZeroU32>,
    max_order_notional: Option<NonZeroU64>,
    max_open_notional: Option<NonZeroU64>,
    status: KeyStatus,
}

fn check_entry<'a>(
    text: &str,
    origin: &str,
    number: usize,
    entry: &'a Spanned<RawEntry<'_>>,
) -> Result<Checked<'a>, KeysError> {
    let header = Location::of(text, entry.span().start);
    let raw = entry.get_ref();
    let mut key = KeyRef { number, id: None };
    let fail = |key: KeyRef, at: Option<&Spanned<Raw<'_>>>, kind| {
        let location = at.map_or(header, |v| Location::of(text, v.span().start));
        KeysError::new(origin, Some(location), Some(key), kind)
    };
    let wrong = |field, expected, value: &Spanned<Raw<'_>>| KeysErrorKind::WrongType {
        field,
        expected,
        found: value.get_ref().type_name(),
    };

    // id
    let Some(id) = &raw.id else {
        return Err(fail(key, None, KeysErrorKind::MissingField { field: "id" }));
    };
    let Raw::Int(value) = *id.get_ref() else {
        return Err(fail(key, Some(id), wrong("id", "an integer", id)));
    };
    let Ok(id_value) = u64::try_from(value) else {
        let kind = KeysErrorKind::OutOfRange {
            field: "id",
            value,
            min: 0,
            max: u64::MAX,
        };
        return Err(fail(key, Some(id), kind));
    };
    key.id = Some(id_value);

    // secret
    let Some(secret) = &raw.secret else {
        return Err(fail(
            key,
            None,
            KeysErrorKind::MissingField { field: "secret" },
        ));
    };
    let Raw::Str(secret_text) = secret.get_ref() else {
        let kind = wrong("secret", "a string of 64 hex digits", secret);
        return Err(fail(key, Some(secret), kind));
    };
    let secret_text = secret_text.as_str();
    Secret::check_hex(secret_text)
        .map_err(|e| fail(key, Some(secret), KeysErrorKind::Secret(e)))?;

    // scopes
    let Some(scopes_raw) = &raw.scopes else {
        return Err(fail(
            key,
            None,
            KeysErrorKind::MissingField { field: "scopes" },
        ));
    };
    let Raw::Array(items) = scopes_raw.get_ref() else {
        let kind = wrong("scopes", "an array of scope names", scopes_raw);
        return Err(fail(key, Some(scopes_raw), kind));
    };
    if items.is_empty() {
        return Err(fail(key, Some(scopes_raw), KeysErrorKind::EmptyScopes));
    }
    let mut scopes = Scopes::default();
    for item in items {
        let Raw::Str(name) = item.get_ref() else {
            let kind = wrong("scopes", "an array of scope names", item);
            return Err(fail(key, Some(item), kind));
        };
        let Some(scope) = Scopes::from_name(name.as_str()) else {
            let kind = KeysErrorKind::UnknownScope {
                name: echoable(name.as_str()),
            };
            return Err(fail(key, Some(item), kind));
        };
        scopes = scopes.union(scope);
    }

    // environment
    let Some(env_raw) = &raw.environment else {
        let kind = KeysErrorKind::MissingField {
            field: "environment",
        };
        return Err(fail(key, None, kind));
    };
    let Raw::Str(env_name) = env_raw.get_ref() else {
        let kind = wrong("environment", "\"production\" or \"sandbox\"", env_raw);
        return Err(fail(key, Some(env_raw), kind));
    };
    let environment = match env_name.as_str() {
        "production" => Environment::Production,
        "sandbox" => Environment::Sandbox,
        other => {
            let kind = KeysErrorKind::UnknownEnvironment {
                name: echoable(other),
            };
            return Err(fail(key, Some(env_raw), kind));
        }
    };

    // rates
    let rate = |field, value: &Option<Spanned<Raw<'_>>>, default, max| match value {
        None => Ok(default),
        Some(spanned) => match *spanned.get_ref() {
            Raw::Int(n) => check_rate(field, n, max).map_err(|kind| fail(key, Some(spanned), kind)),
            _ => Err(fail(
                key,
                Some(spanned),
                wrong(field, "an integer", spanned),
            )),
        },
    };
    let msgs_per_sec = rate(
        "msgs_per_sec",
        &raw.msgs_per_sec,
        MSGS_PER_SEC_DEFAULT,
        MSGS_PER_SEC_MAX,
    )?;
    let burst = rate("burst", &raw.burst, BURST_DEFAULT, BURST_MAX)?;

    // secret_next
    let secret_next = match &raw.secret_next {
        None => None,
        Some(next) => {
            let Raw::Str(next_text) = next.get_ref() else {
                let kind = wrong("secret_next", "a string of 64 hex digits", next);
                return Err(fail(key, Some(next), kind));
            };
            let next_text = next_text.as_str();
            Secret::check_hex(next_text)
                .map_err(|e| fail(key, Some(next), KeysErrorKind::SecretNext(e)))?;
            // Both are 64 checked hex digits: the same bytes exactly when
            // the same text but for case.
            if next_text.eq_ignore_ascii_case(secret_text) {
                return Err(fail(key, Some(next), KeysErrorKind::SecretNextSameAsSecret));
            }
            Some(next_text)
        }
    };

    // allow
    let allow = match &raw.allow {
        None => Vec::new(),
        Some(allow_raw) => {
            let Raw::Array(items) = allow_raw.get_ref() else {
                let kind = wrong("allow", "an array of CIDRs", allow_raw);
                return Err(fail(key, Some(allow_raw), kind));
            };
            if items.is_empty() {
                return Err(fail(key, Some(allow_raw), KeysErrorKind::EmptyAllow));
            }
            if items.len() > ALLOW_CIDRS_MAX {
                let kind = KeysErrorKind::TooManyCidrs {
                    count: items.len(),
                    max: ALLOW_CIDRS_MAX,
                };
                return Err(fail(key, Some(allow_raw), kind));
            }
            let mut allow = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let Raw::Str(text) = item.get_ref() else {
                    let kind = wrong("allow", "an array of CIDRs", item);
                    return Err(fail(key, Some(item), kind));
                };
                let cidr = Cidr::parse(text.as_str()).map_err(|problem| {
                    let kind = KeysErrorKind::BadCidr {
                        item: index + 1,
                        text: echoable_cidr(text.as_str()),
                        problem,
                    };
                    fail(key, Some(item), kind)
                })?;
                allow.push(cidr);
            }
            allow
        }
    };

    // not_before, not_after
    let timestamp = |field, value: &Option<Spanned<Raw<'_>>>| match value {
        None => Ok(None),
        Some(spanned) => match spanned.get_ref() {
            Raw::Str(text) => parse_rfc3339(text.as_str()),
            Raw::Datetime(text) => parse_rfc3339(text),
            _ => {
                let kind = wrong(field, "an RFC 3339 timestamp string", spanned);
                return Err(fail(key, Some(spanned), kind));
            }
        }
        .map(Some)
        .map_err(|problem| {
            fail(
                key,
                Some(spanned),
                KeysErrorKind::BadTimestamp { field, problem },
            )
        }),
    };
    let not_before_ns = timestamp("not_before", &raw.not_before)?;
    let not_after_ns = timestamp("not_after", &raw.not_after)?;
    if let Some(kind) = check_window(not_before_ns, not_after_ns) {
        return Err(fail(key, raw.not_after.as_ref(), kind));
    }

    // limits: at least 1, no upper bound but the type's.
    let limit = |field, value: &Option<Spanned<Raw<'_>>>, max: u64| match value {
        None => Ok(None),
        Some(spanned) => match *spanned.get_ref() {
            Raw::Int(n) => match u64::try_from(n) {
                Ok(v) if (1..=max).contains(&v) => Ok(Some(v)),
                _ => Err(fail(
                    key,
                    Some(spanned),
                    KeysErrorKind::OutOfRange {
                        field,
                        value: n,
                        min: 1,
                        max,
                    },
                )),
            },
            _ => Err(fail(
                key,
                Some(spanned),
                wrong(field, "an integer", spanned),
            )),
        },
    };
    let u32_max = u64::from(u32::MAX);
    // In range 1..=max, so the conversions cannot fail.
    let max_sessions = limit("max_sessions", &raw.max_sessions, u32_max)?
        .map(|v| NonZeroU32::new(v as u32).expect("checked >= 1"));
    let max_order_qty = limit("max_order_qty", &raw.max_order_qty, u32_max)?
        .map(|v| NonZeroU32::new(v as u32).expect("checked >= 1"));
    let max_order_notional = limit("max_order_notional", &raw.max_order_notional, u64::MAX)?
        .map(|v| NonZeroU64::new(v).expect("checked >= 1"));
    let max_open_notional = limit("max_open_notional", &raw.max_open_notional, u64::MAX)?
        .map(|v| NonZeroU64::new(v).expect("checked >= 1"));

    // status
    let status = match &raw.status {
        None => KeyStatus::Active,
        Some(status_raw) => {
            let Raw::Str(name) = status_raw.get_ref() else {
                let kind = wrong("status", "\"active\" or \"revoked\"", status_raw);
                return Err(fail(key, Some(status_raw), kind));
            };
            KeyStatus::from_name(name.as_str()).ok_or_else(|| {
                let kind = KeysErrorKind::UnknownStatus {
                    name: echoable(name.as_str()),
                };
                fail(key, Some(status_raw), kind)
            })?
        }
    };

    Ok(Checked {
        number,
        location: header,
        id: id_value,
        secret: secret_text,
        secret_next,
        scopes,
        environment,
        msgs_per_sec,
        burst,
        allow,
        not_before_ns,
        not_after_ns,
        max_sessions,
        max_order_qty,
        max_order_notional,
        max_open_notional,
        status,
    })
}

/// `not_before < not_after` when both are set.
fn check_window(not_before_ns: Option<u64>, not_after_ns: Option<u64>) -> Option<KeysErrorKind> {
    match (not_before_ns, not_after_ns) {
        (Some(not_before_ns), Some(not_after_ns)) if not_before_ns >= not_after_ns => {
            Some(KeysErrorKind::EmptyWindow {
                not_before_ns,
                not_after_ns,
            })
        }
        _ => None,
    }
}

/// A per-key rate: `1..=max`.
fn check_rate(field: &'static str, value: i128, max: u32) -> Result<u32, KeysErrorKind> {
    match u32::try_from(value) {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(KeysErrorKind::OutOfRange {
            field,
            value,
            min: 1,
            max: max.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "/etc/ordergate/test-keys.toml";
    /// Recognisable in any error that leaked it.
    const SECRET: &str = "d3adb33fd3adb33fd3adb33fd3adb33fd3adb33fd3adb33fd3adb33fd3adb33f";
    const OTHER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    /// A `secret_next`, as recognisable.
    const NEXT: &str = "feedc0defeedc0defeedc0defeedc0defeedc0defeedc0defeedc0defeedc0de";

    fn entry(id: &str) -> String {
        format!(
            "[[key]]\nid = {id}\nsecret = \"{SECRET}\"\nscopes = [\"trade\"]\nenvironment = \"production\"\n"
        )
    }

    /// Asserts that no 8-character window of `SECRET` or `NEXT`, in either
    /// case, appears in `text`.
    fn assert_no_secret(text: &str) {
        let lower = text.to_lowercase();
        for secret in [SECRET, NEXT] {
            for start in 0..=secret.len() - 8 {
                let window = &secret[start..start + 8];
                assert!(!lower.contains(window), "secret leaked into: {text}");
            }
        }
    }

    fn refuse(text: &str) -> KeysError {
        let err = KeyTable::from_toml_str(text, ORIGIN).expect_err("must be refused");
        let display = err.to_string();
        assert!(display.contains(ORIGIN), "{display}");
        assert_no_secret(&display);
        assert_no_secret(&format!("{err:?}"));
        assert_no_secret(&format!("{err:#?}"));
        err
    }

    /// Refused, and the error names key `id` (as "key ID (#n)").
    fn refuse_key(text: &str, id: u64) -> KeysError {
        let err = refuse(text);
        assert_eq!(err.key().and_then(|k| k.id), Some(id), "{err}");
        assert!(err.to_string().contains(&format!("key {id} (#")), "{err}");
        err
    }

    /// Refused, and the error names the entry by position only ("key #n").
    fn refuse_position(text: &str, number: usize) -> KeysError {
        let err = refuse(text);
        assert_eq!(err.key(), Some(KeyRef { number, id: None }), "{err}");
        assert!(
            err.to_string().contains(&format!("key #{number}:")),
            "{err}"
        );
        err
    }

    #[test]
    fn valid_file_with_every_field_and_defaults() {
        let text = format!(
            "# comment\n\
             [[key]]\n\
             id = 1002\n\
             secret = \"{}\"\n\
             scopes = [\"read\"]\n\
             environment = \"sandbox\"\n\
             \n\
             [[key]]\n\
             id = 1001\n\
             secret = \"{}\"\n\
             scopes = [\"trade\", \"cancel\", \"read\", \"trade\"]\n\
             environment = \"production\"\n\
             msgs_per_sec = 500\n\
             burst = 50\n",
            OTHER.to_uppercase(),
            SECRET
        );
        let table = KeyTable::from_toml_str(&text, ORIGIN).unwrap();
        assert_eq!(table.len(), 2);
        assert!(!table.is_empty());

        let (index, first) = table.get(1001).unwrap();
        assert_eq!(index, KeyIndex(0));
        assert_eq!(first.id, 1001);
        assert_eq!(
            first.secret.expose(),
            Secret::from_hex(SECRET).unwrap().expose()
        );
        assert_eq!(first.scopes, Scopes::DEFINED);
        assert_eq!(first.environment, Environment::Production);
        assert_eq!((first.msgs_per_sec, first.burst), (500, 50));

        let (index, second) = table.get(1002).unwrap();
        assert_eq!(index, KeyIndex(1));
        assert_eq!(
            second.secret.expose(),
            Secret::from_hex(OTHER).unwrap().expose()
        );
        assert_eq!(second.scopes, Scopes::READ);
        assert_eq!(second.environment, Environment::Sandbox);
        assert_eq!(
            (second.msgs_per_sec, second.burst),
            (MSGS_PER_SEC_DEFAULT, BURST_DEFAULT)
        );

        assert_eq!(table.entry(KeyIndex(1)).id, 1002);
        let ids: Vec<_> = table.iter().map(|(i, e)| (i.0, e.id)).collect();
        assert_eq!(ids, [(0, 1001), (1, 1002)]);
        assert!(table.get(1003).is_none());
        assert!(table.get(0).is_none());
        assert!(table.get(u64::MAX).is_none());
    }

    #[test]
    fn inline_array_of_tables_is_the_same_file() {
        let text = format!(
            "key = [{{ id = 7, secret = '{SECRET}', scopes = ['cancel'], environment = 'sandbox' }}]"
        );
        let table = KeyTable::from_toml_str(&text, ORIGIN).unwrap();
        assert_eq!(table.get(7).unwrap().1.scopes, Scopes::CANCEL);
    }

    #[test]
    fn debug_of_table_and_entry_shows_no_secret() {
        let table = KeyTable::from_toml_str(&entry("1001"), ORIGIN).unwrap();
        let debug = format!("{table:?} {table:#?} {:?}", table.entry(KeyIndex(0)));
        assert!(debug.contains("Secret(<redacted>)"), "{debug}");
        assert!(debug.contains("1001"));
        assert_no_secret(&debug);
        // Nor the bytes in decimal, as a derived Debug of [u8; 32] would print them.
        assert!(!debug.contains("211, 173"), "{debug}");
    }

    #[test]
    fn syntax_errors_give_position_but_not_the_source_line() {
        // The unterminated string runs over the secret: toml's own Display
        // would print this line.
        let text = format!("[[key]]\nid = 1001\nsecret = \"{SECRET}\nscopes = []\n");
        let err = refuse(&text);
        assert!(matches!(err.kind(), KeysErrorKind::Syntax { .. }), "{err}");
        assert_eq!(err.location().unwrap().line, 3, "{err}");

        let err = refuse(&format!("[[key]]\nid = 1001\nsecret = {SECRET}\n"));
        assert!(matches!(err.kind(), KeysErrorKind::Syntax { .. }), "{err}");
        assert_eq!(err.location().unwrap().line, 3);

        let err = refuse(&format!("[[key]]\nid = 1001\nsecret = \"{SECRET}\\q\"\n"));
        assert!(matches!(err.kind(), KeysErrorKind::Syntax { .. }), "{err}");

        let err = refuse(&format!("{}id = 5\n", entry("1001")));
        assert!(matches!(err.kind(), KeysErrorKind::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("duplicate key"), "{err}");
        assert_eq!(err.location(), Some(Location { line: 6, column: 1 }));
    }

    #[test]
    fn unknown_fields_are_refused_in_an_entry_and_at_the_top() {
        let text = format!("{}\n{}burts = 5\n", entry("1001"), entry("1002"));
        let err = refuse_key(&text, 1002);
        match err.kind() {
            KeysErrorKind::UnknownField { field, expected } => {
                assert_eq!(field.as_deref(), Some("burts"));
                assert!(expected.contains("`burst`"), "{expected}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.key().unwrap().number, 2);
        assert_eq!(err.location().unwrap().line, 12);
        assert!(err.to_string().contains("\"burts\""), "{err}");

        // A field planned for a later version is still unknown today.
        let err = refuse_key(&format!("{}max_position = 5\n", entry("1001")), 1001);
        assert!(matches!(err.kind(), KeysErrorKind::UnknownField { .. }));

        let err = refuse(&format!("version = 2\n{}", entry("1001")));
        assert!(
            matches!(err.kind(), KeysErrorKind::UnknownField { .. }),
            "{err}"
        );
        assert_eq!(err.key(), None);

        // A table after the keys is top level, not part of the last key.
        let err = refuse(&format!("{}[limits]\nx = 1\n", entry("1001")));
        match err.kind() {
            KeysErrorKind::UnknownField { field, .. } => {
                assert_eq!(field.as_deref(), Some("limits"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.key(), None, "{err}");

        // An entry without a valid id is named by position.
        let err = refuse_position(&format!("{}[[key]]\nid = -3\nbogus = 1\n", entry("1")), 2);
        assert!(matches!(err.kind(), KeysErrorKind::UnknownField { .. }));
    }

    #[test]
    fn missing_fields_are_named() {
        let err = refuse_position(
            &format!(
                "{}[[key]]\nsecret = \"{SECRET}\"\nscopes = [\"trade\"]\nenvironment = \"sandbox\"\n",
                entry("1")
            ),
            2,
        );
        assert!(
            matches!(err.kind(), KeysErrorKind::MissingField { field: "id" }),
            "{err}"
        );
        assert_eq!(err.location().unwrap().line, 6);

        for field in ["secret", "scopes", "environment"] {
            let text: String = entry("1001")
                .lines()
                .filter(|l| !l.starts_with(field))
                .map(|l| format!("{l}\n"))
                .collect();
            let err = refuse_key(&text, 1001);
            match err.kind() {
                KeysErrorKind::MissingField { field: f } => assert_eq!(*f, field),
                other => panic!("{other:?}"),
            }
            assert!(
                err.to_string().contains(&format!("`{field}` is missing")),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_secrets_are_refused_without_echo() {
        let short = entry("1001").replace(SECRET, &SECRET[..63]);
        let err = refuse_key(&short, 1001);
        assert!(matches!(
            err.kind(),
            KeysErrorKind::Secret(SecretError::Length { found: 63 })
        ));
        assert_eq!(
            err.location(),
            Some(Location {
                line: 3,
                column: 10
            })
        );

        let long = entry("1001").replace(SECRET, &format!("{SECRET}00"));
        let err = refuse_key(&long, 1001);
        assert!(matches!(
            err.kind(),
            KeysErrorKind::Secret(SecretError::Length { found: 66 })
        ));

        let mut bad = SECRET.to_owned();
        bad.replace_range(9..10, "x");
        let err = refuse_key(&entry("1001").replace(SECRET, &bad), 1001);
        assert!(matches!(
            err.kind(),
            KeysErrorKind::Secret(SecretError::NotHex { position: 10 })
        ));

        let err = refuse_key(
            &entry("1001").replace(&format!("\"{SECRET}\""), "0xd3adb33f"),
            1001,
        );
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::WrongType {
                    field: "secret",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn escaped_secret_is_decoded_and_accepted() {
        // toml unescapes this into its own buffer, which is wiped here.
        let escaped = format!("\\u0064{}", &SECRET[1..]);
        let table = KeyTable::from_toml_str(&entry("1").replace(SECRET, &escaped), ORIGIN).unwrap();
        assert_eq!(
            table.entry(KeyIndex(0)).secret.expose(),
            Secret::from_hex(SECRET).unwrap().expose()
        );
    }

    #[test]
    fn wrong_types_are_refused() {
        let err = refuse_position(&entry("\"1001\""), 1);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::WrongType {
                    field: "id",
                    found: "a string",
                    ..
                }
            ),
            "{err}"
        );

        let err = refuse_position(&entry("-1"), 1);
        assert!(matches!(
            err.kind(),
            KeysErrorKind::OutOfRange {
                field: "id",
                value: -1,
                ..
            }
        ));

        let err = refuse_key(&entry("1001").replace("[\"trade\"]", "\"trade\""), 1001);
        assert!(matches!(
            err.kind(),
            KeysErrorKind::WrongType {
                field: "scopes",
                ..
            }
        ));

        let err = refuse_key(
            &entry("1001").replace("[\"trade\"]", "[\"trade\", 1]"),
            1001,
        );
        assert!(matches!(
            err.kind(),
            KeysErrorKind::WrongType {
                field: "scopes",
                found: "an integer",
                ..
            }
        ));

        let err = refuse_key(&entry("1001").replace("\"production\"", "1979-05-27"), 1001);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::WrongType {
                    field: "environment",
                    found: "a datetime",
                    ..
                }
            ),
            "{err}"
        );

        let err = refuse_key(&format!("{}burst = 2.5\n", entry("1001")), 1001);
        assert!(matches!(
            err.kind(),
            KeysErrorKind::WrongType {
                field: "burst",
                found: "a float",
                ..
            }
        ));
    }

    #[test]
    fn scopes_must_be_known_and_not_empty() {
        let err = refuse_key(
            &entry("1001").replace("\"trade\"", "\"trade\", \"withdraw\""),
            1001,
        );
        match err.kind() {
            KeysErrorKind::UnknownScope { name } => assert_eq!(name.as_deref(), Some("withdraw")),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("\"withdraw\""), "{err}");
        assert_eq!(
            err.location(),
            Some(Location {
                line: 4,
                column: 20
            })
        );

        // Case matters: the file's names are lower case.
        let err = refuse_key(&entry("1001").replace("\"trade\"", "\"Trade\""), 1001);
        assert!(matches!(err.kind(), KeysErrorKind::UnknownScope { .. }));

        let err = refuse_key(&entry("1001").replace("[\"trade\"]", "[]"), 1001);
        assert!(matches!(err.kind(), KeysErrorKind::EmptyScopes), "{err}");
    }

    #[test]
    fn environment_must_be_known() {
        let err = refuse_key(&entry("1001").replace("production", "prod"), 1001);
        match err.kind() {
            KeysErrorKind::UnknownEnvironment { name } => assert_eq!(name.as_deref(), Some("prod")),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("\"prod\""), "{err}");
    }

    #[test]
    fn rates_are_bounded() {
        let cases = [
            ("msgs_per_sec = 0", "msgs_per_sec", 0),
            ("msgs_per_sec = 10000001", "msgs_per_sec", 10_000_001),
            ("msgs_per_sec = -5", "msgs_per_sec", -5),
            ("burst = 0", "burst", 0),
            ("burst = 1000001", "burst", 1_000_001),
            ("burst = 9223372036854775807", "burst", i128::from(i64::MAX)),
        ];
        for (line, name, v) in cases {
            let err = refuse_key(&format!("{}{line}\n", entry("1001")), 1001);
            match err.kind() {
                KeysErrorKind::OutOfRange {
                    field,
                    value,
                    min: 1,
                    ..
                } => {
                    assert_eq!((*field, *value), (name, v), "{err}")
                }
                other => panic!("{other:?}"),
            }
        }
        let edges = format!(
            "{}msgs_per_sec = {MSGS_PER_SEC_MAX}\nburst = 1\n{}msgs_per_sec = 1\nburst = {BURST_MAX}\n",
            entry("1"),
            entry("2")
        );
        let table = KeyTable::from_toml_str(&edges, ORIGIN).unwrap();
        assert_eq!(table.get(1).unwrap().1.msgs_per_sec, MSGS_PER_SEC_MAX);
        assert_eq!(table.get(2).unwrap().1.burst, BURST_MAX);
    }

    #[test]
    fn duplicate_ids_are_refused_naming_the_id() {
        let text = format!("{}{}{}", entry("5"), entry("1001"), entry("1001"));
        let err = refuse_key(&text, 1001);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::DuplicateId { id: 1001, first: 2 }
            ),
            "{err}"
        );
        assert_eq!(err.key().unwrap().number, 3);
        assert!(err.to_string().contains("duplicate id 1001"), "{err}");
    }

    #[test]
    fn empty_file_and_file_without_keys_are_refused() {
        for text in ["", "# nothing yet\n", "key = []\n"] {
            let err = refuse(text);
            assert!(matches!(err.kind(), KeysErrorKind::Empty), "{err}");
        }
    }

    #[test]
    fn wrong_shape_is_refused_without_echo() {
        for text in [
            format!("key = \"{SECRET}\"\n"),
            "key = 5\n".to_owned(),
            "[key]\nid = 1\n".to_owned(),
            format!("key = [\"{SECRET}\"]\n"),
        ] {
            let err = refuse(&text);
            assert!(
                matches!(err.kind(), KeysErrorKind::Structure { .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn secret_pasted_in_the_wrong_place_is_never_echoed() {
        let quoted = format!("\"{SECRET}\"");
        let cases = [
            entry("1001").replace("\"production\"", &quoted),
            entry("1001").replace("\"trade\"", &quoted),
            entry("1001").replace("\"trade\"", &format!("\"{}\"", &SECRET[..8])),
            entry("1001").replace("\"production\"", &format!("\"{}\"", &SECRET[..16])),
            entry("1001").replace("id = 1001", &format!("id = {quoted}")),
            format!("{}{SECRET} = 1\n", entry("1001")),
            format!("{}\"{}\" = 1\n", entry("1001"), &SECRET[..10]),
            format!("{SECRET} = 1\n{}", entry("1001")),
            format!("{}{quoted}\n", entry("1001")),
            format!("{}{SECRET}\n", entry("1001")),
        ];
        for text in &cases {
            let err = refuse(text);
            match err.kind() {
                KeysErrorKind::UnknownScope { name }
                | KeysErrorKind::UnknownEnvironment { name }
                | KeysErrorKind::UnknownField { field: name, .. } => {
                    assert_eq!(*name, None, "{err}");
                    assert!(err.to_string().contains("withheld"), "{err}");
                }
                KeysErrorKind::WrongType { .. } | KeysErrorKind::Syntax { .. } => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn every_refusal_is_free_of_the_secret_also_in_upper_case() {
        let upper = SECRET.to_uppercase();
        let text = format!("{}{}", entry("1"), entry("1")).replace(SECRET, &upper);
        let err = refuse(&text);
        assert!(!err.to_string().contains(&upper[..8]));
        let text = format!("{}bad = \"{upper}\"\n", entry("1")).replace(SECRET, &upper);
        let err = refuse(&text);
        assert!(!format!("{err} {err:?}").contains(&upper[..8]));
    }

    #[test]
    fn too_many_keys_is_refused() {
        let text: String = (0..=KEYS_MAX).map(|i| entry(&i.to_string())).collect();
        let err = refuse(&text);
        assert!(matches!(
            err.kind(),
            KeysErrorKind::TooManyKeys { count, max: KEYS_MAX } if *count == KEYS_MAX + 1
        ));
        let text: String = (0..KEYS_MAX).map(|i| entry(&i.to_string())).collect();
        let table = KeyTable::from_toml_str(&text, ORIGIN).unwrap();
        assert_eq!(table.len(), KEYS_MAX);
        let last = u32::try_from(KEYS_MAX - 1).unwrap();
        assert_eq!(table.get(KEYS_MAX as u64 - 1).unwrap().0, KeyIndex(last));
    }

    fn made(id: u64) -> KeyEntry {
        KeyEntry::new(
            id,
            Secret::from_hex(SECRET).unwrap(),
            Scopes::TRADE,
            Environment::Sandbox,
        )
    }

    #[test]
    fn from_entries_sorts_and_checks() {
        let table = KeyTable::from_entries(vec![made(9), made(3), made(5)]).unwrap();
        let ids: Vec<_> = table.iter().map(|(_, e)| e.id).collect();
        assert_eq!(ids, [3, 5, 9]);
        assert_eq!(table.get(5).unwrap().0, KeyIndex(1));

        let check = |entries: Vec<KeyEntry>| {
            let err = KeyTable::from_entries(entries).unwrap_err();
            assert!(err.to_string().contains(ORIGIN_IN_MEMORY), "{err}");
            assert_no_secret(&format!("{err} {err:?}"));
            err
        };
        let err = check(vec![made(9), made(3), made(9)]);
        assert!(matches!(
            err.kind(),
            KeysErrorKind::DuplicateId { id: 9, first: 1 }
        ));
        assert_eq!(
            err.key(),
            Some(KeyRef {
                number: 3,
                id: Some(9)
            })
        );

        assert!(matches!(check(Vec::new()).kind(), KeysErrorKind::Empty));

        let mut no_scope = made(4);
        no_scope.scopes = Scopes(0);
        let err = check(vec![made(1), no_scope]);
        assert!(matches!(err.kind(), KeysErrorKind::EmptyScopes));
        assert!(err.to_string().contains("key 4 (#2)"), "{err}");

        let mut stray = made(4);
        stray.scopes = Scopes(0b1001);
        assert!(matches!(
            check(vec![stray]).kind(),
            KeysErrorKind::UndefinedScopeBits { bits: 9 }
        ));

        let mut fast = made(4);
        fast.msgs_per_sec = MSGS_PER_SEC_MAX + 1;
        assert!(matches!(
            check(vec![fast]).kind(),
            KeysErrorKind::OutOfRange {
                field: "msgs_per_sec",
                ..
            }
        ));
        let mut flat = made(4);
        flat.burst = 0;
        assert!(matches!(
            check(vec![flat]).kind(),
            KeysErrorKind::OutOfRange { field: "burst", .. }
        ));

        let err = check((0..=KEYS_MAX as u64).map(made).collect());
        assert!(matches!(err.kind(), KeysErrorKind::TooManyKeys { .. }));
        assert_eq!(
            KeyTable::from_entries((0..KEYS_MAX as u64).map(made).collect())
                .unwrap()
                .len(),
            KEYS_MAX
        );
    }

    #[test]
    fn scrub_keeps_names_and_drops_key_material() {
        assert_eq!(scrub("expected `=`"), "expected `=`");
        assert_eq!(
            scrub("invalid type: string \"d3adb33fd3\", expected a sequence"),
            "invalid type: string \"<withheld>\", expected a sequence"
        );
        assert_eq!(scrub("a \"b\\\"c\" d"), "a \"<withheld>\" d");
        assert_eq!(scrub("open `d3adb33fd3adb33f"), "open `<withheld>");
        assert!(scrub("raw d3adb33fd3adb33f").starts_with("<message withheld"));
        assert_eq!(
            echoable("max_order_notional").as_deref(),
            Some("max_order_notional")
        );
        assert_eq!(echoable("deadbeef"), None);
        assert_eq!(echoable(&"a".repeat(33)), None);
        assert_eq!(
            unknown_field("unknown field `a`, expected x`, expected one of `x`, `y`"),
            Some(("a`, expected x", "expected one of `x`, `y`"))
        );
        assert_eq!(unknown_field("invalid type: map"), None);
    }

    #[test]
    fn location_counts_lines_and_characters() {
        let text = "ab\néé x\n";
        assert_eq!(Location::of(text, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of(text, 3), Location { line: 2, column: 1 });
        assert_eq!(Location::of(text, 8), Location { line: 2, column: 4 });
        assert_eq!(Location::of(text, 4), Location { line: 2, column: 1 });
        assert_eq!(Location::of(text, 100), Location { line: 3, column: 1 });
    }

    // -----------------------------------------------------------------------
    // The access policy fields

    /// `entry(id)` with `lines` (each ending in a newline) added.
    fn with(id: &str, lines: &str) -> String {
        format!("{}{lines}", entry(id))
    }

    fn load(text: &str) -> KeyTable {
        KeyTable::from_toml_str(text, ORIGIN).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_policy_field_is_parsed() {
        let text = with(
            "1001",
            &format!(
                "secret_next = \"{}\"\n\
                 allow = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\", \"::1\", \"::ffff:10.1.0.0/112\"]\n\
                 not_before = \"2026-01-01T00:00:00Z\"\n\
                 not_after = \"2026-12-31T23:00:00.5-01:00\"\n\
                 max_sessions = 4\n\
                 max_order_qty = 4294967295\n\
                 max_order_notional = 9223372036854775807\n\
                 max_open_notional = 12\n\
                 status = \"active\"\n",
                NEXT.to_uppercase()
            ),
        );
        let table = load(&text);
        let (_, key) = table.get(1001).unwrap();
        let (current, next) = key.secrets();
        assert_eq!(current.expose(), Secret::from_hex(SECRET).unwrap().expose());
        assert_eq!(
            next.unwrap().expose(),
            Secret::from_hex(NEXT).unwrap().expose()
        );
        let allow: Vec<String> = key.allow.iter().map(ToString::to_string).collect();
        assert_eq!(
            allow,
            [
                "10.0.0.0/8",
                "2001:db8::/32",
                "192.0.2.7/32",
                "::1/128",
                "10.1.0.0/16"
            ]
        );
        assert_eq!(key.not_before_ns, Some(1_767_225_600_000_000_000));
        assert_eq!(key.not_after_ns, Some(1_798_761_600_500_000_000));
        assert_eq!(key.max_sessions, NonZeroU32::new(4));
        assert_eq!(key.max_order_qty, NonZeroU32::new(u32::MAX));
        assert_eq!(key.max_order_notional, NonZeroU64::new(i64::MAX as u64));
        assert_eq!(key.max_open_notional, NonZeroU64::new(12));
        assert_eq!(key.status, KeyStatus::Active);

        let revoked = load(&with("7", "status = \"revoked\"\n"));
        assert_eq!(revoked.get(7).unwrap().1.status, KeyStatus::Revoked);
    }

    #[test]
    fn absent_policy_fields_take_their_defaults() {
        let table = load(&entry("1001"));
        let key = table.entry(KeyIndex(0));
        assert!(key.secret_next.is_none());
        assert!(key.allow.is_empty());
        assert_eq!((key.not_before_ns, key.not_after_ns), (None, None));
        assert_eq!((key.max_sessions, key.max_order_qty), (None, None));
        assert_eq!(key.max_order_notional, None);
        assert_eq!(key.status, KeyStatus::Active);
        // No allow list: from nowhere.
        assert!(!key.allows("127.0.0.1".parse().unwrap()));
        assert!(!key.allows("::1".parse().unwrap()));
    }

    #[test]
    fn timestamps_may_be_bare_toml_datetimes() {
        let table = load(&with(
            "1",
            "not_before = 2026-11-23T00:00:00Z\nnot_after = 2026-11-23T09:00:00.25+09:00\n",
        ));
        let key = table.entry(KeyIndex(0));
        assert_eq!(key.not_before_ns, Some(1_795_392_000_000_000_000));
        assert_eq!(key.not_after_ns, Some(1_795_392_000_250_000_000));

        // A local datetime (no offset) names no instant.
        let err = refuse_key(&with("1", "not_after = 2026-11-23T00:00:00\n"), 1);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::BadTimestamp {
                    field: "not_after",
                    problem: TimestampError::Format { position: 20, .. }
                }
            ),
            "{err}"
        );
        // A bare date is not a timestamp either.
        let err = refuse_key(&with("1", "not_before = 2026-11-23\n"), 1);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::BadTimestamp {
                    field: "not_before",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_cidrs_are_refused_naming_the_entry_and_why() {
        let cases: [(&str, usize, CidrError); 6] = [
            ("\"10.0.0.0/8\", \"10.0.0.256\"", 2, CidrError::BadAddress),
            (
                "\"10.0.0.0/33\"",
                1,
                CidrError::PrefixTooLong {
                    prefix_len: 33,
                    max: 32,
                },
            ),
            (
                "\"::/0\", \"2001:db8::/129\"",
                2,
                CidrError::PrefixTooLong {
                    prefix_len: 129,
                    max: 128,
                },
            ),
            (
                "\"10.1.2.3/8\"",
                1,
                CidrError::HostBitsSet {
                    network: Cidr::parse("10.0.0.0/8").unwrap(),
                },
            ),
            ("\"10.0.0.0/\"", 1, CidrError::BadPrefix),
            ("\"fe80::1%eth0\"", 1, CidrError::BadAddress),
        ];
        for (list, item_expected, problem_expected) in cases {
            let err = refuse_key(&with("1001", &format!("allow = [{list}]\n")), 1001);
            match err.kind() {
                KeysErrorKind::BadCidr {
                    item,
                    text,
                    problem,
                } => {
                    assert_eq!(
                        (*item, *problem),
                        (item_expected, problem_expected),
                        "{err}"
                    );
                    assert!(text.is_some(), "{err}");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(err.location().unwrap().line, 6, "{err}");
        }
        let err = refuse_key(&with("1001", "allow = [\"10.1.2.3/8\"]\n"), 1001);
        assert_eq!(
            err.to_string(),
            format!(
                "keys file {ORIGIN}, line 6, column 10, key 1001 (#1): `allow` entry 1 \
                 \"10.1.2.3/8\" is not a CIDR: bits are set after the prefix: write the \
                 network, 10.0.0.0/8, or one address as /32"
            )
        );

        let err = refuse_key(&with("1001", "allow = []\n"), 1001);
        assert!(matches!(err.kind(), KeysErrorKind::EmptyAllow), "{err}");
        assert!(err.to_string().contains("`allow` is empty"), "{err}");

        let many: Vec<String> = (0..=ALLOW_CIDRS_MAX)
            .map(|i| format!("\"10.0.{i}.0/24\""))
            .collect();
        let err = refuse_key(
            &with("1001", &format!("allow = [{}]\n", many.join(", "))),
            1001,
        );
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::TooManyCidrs { count, max: ALLOW_CIDRS_MAX } if *count == ALLOW_CIDRS_MAX + 1
            ),
            "{err}"
        );
        let table = load(&with(
            "1001",
            &format!("allow = [{}]\n", many[..ALLOW_CIDRS_MAX].join(", ")),
        ));
        assert_eq!(table.entry(KeyIndex(0)).allow.len(), ALLOW_CIDRS_MAX);

        let err = refuse_key(&with("1001", "allow = \"10.0.0.0/8\"\n"), 1001);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::WrongType {
                    field: "allow",
                    found: "a string",
                    ..
                }
            ),
            "{err}"
        );
        let err = refuse_key(&with("1001", "allow = [\"10.0.0.0/8\", 10]\n"), 1001);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::WrongType {
                    field: "allow",
                    found: "an integer",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_secret_pasted_into_allow_or_status_is_not_echoed() {
        for text in [
            with("1001", &format!("allow = [\"{SECRET}\"]\n")),
            with("1001", &format!("allow = [\"{}/8\"]\n", &SECRET[..12])),
            with("1001", &format!("allow = [\"::{}\"]\n", &SECRET[..10])),
            with("1001", &format!("allow = [\"{NEXT}\"]\n")),
        ] {
            let err = refuse_key(&text, 1001);
            match err.kind() {
                KeysErrorKind::BadCidr { text, .. } => assert_eq!(*text, None, "{err}"),
                other => panic!("{other:?}"),
            }
            assert!(err.to_string().contains("withheld"), "{err}");
        }
        for text in [
            with("1001", &format!("status = \"{SECRET}\"\n")),
            with("1001", &format!("status = \"{}\"\n", &NEXT[..9])),
            with("1001", &format!("not_before = \"{NEXT}\"\n")),
            with("1001", &format!("not_after = \"2026-{}\"\n", &NEXT[..16])),
            with("1001", &format!("max_sessions = \"{SECRET}\"\n")),
            with("1001", &format!("secret_next = \"{NEXT}0\"\n")),
            with("1001", &format!("secret_next = [\"{NEXT}\"]\n")),
        ] {
            let err = refuse_key(&text, 1001);
            if let KeysErrorKind::UnknownStatus { name } = err.kind() {
                assert_eq!(*name, None, "{err}");
            }
        }
    }

    #[test]
    fn bad_timestamps_are_refused_naming_the_field_and_why() {
        let cases: [(&str, &str, TimestampError); 7] = [
            (
                "not_before",
                "\"2026-02-30T00:00:00Z\"",
                TimestampError::NoSuchDay {
                    year: 2026,
                    month: 2,
                    day: 30,
                },
            ),
            (
                "not_after",
                "\"2026-11-23\"",
                TimestampError::Format {
                    position: 11,
                    expected: "'T'",
                },
            ),
            (
                "not_after",
                "\"2026-11-23T00:00:00\"",
                TimestampError::Format {
                    position: 20,
                    expected: "'Z', '+' or '-' (the UTC offset)",
                },
            ),
            (
                "not_before",
                "\"1969-12-31T23:59:59Z\"",
                TimestampError::BeforeEpoch,
            ),
            (
                "not_before",
                "\"2026-12-31T23:59:60Z\"",
                TimestampError::LeapSecond,
            ),
            (
                "not_after",
                "\"2026-11-23T25:00:00Z\"",
                TimestampError::OutOfRange {
                    field: "hour",
                    value: 25,
                },
            ),
            (
                "not_after",
                "\"\"",
                TimestampError::Format {
                    position: 1,
                    expected: "a digit",
                },
            ),
        ];
        for (field_expected, value, problem_expected) in cases {
            let err = refuse_key(
                &with("1001", &format!("{field_expected} = {value}\n")),
                1001,
            );
            match err.kind() {
                KeysErrorKind::BadTimestamp { field, problem } => {
                    assert_eq!(
                        (*field, *problem),
                        (field_expected, problem_expected),
                        "{err}"
                    )
                }
                other => panic!("{other:?}"),
            }
            let display = err.to_string();
            assert!(
                display.contains(&format!("`{field_expected}` is not an RFC 3339")),
                "{display}"
            );
            assert!(display.contains(&problem_expected.to_string()), "{display}");
        }
        let err = refuse_key(&with("1001", "not_after = 1795392000\n"), 1001);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::WrongType {
                    field: "not_after",
                    found: "an integer",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_validity_window_must_not_be_empty() {
        for (before, after) in [
            ("2026-11-23T00:00:00Z", "2026-11-23T00:00:00Z"),
            ("2026-11-23T00:00:00Z", "2026-11-23T01:00:00+01:00"),
            ("2026-11-24T00:00:00Z", "2026-11-23T00:00:00Z"),
        ] {
            let err = refuse_key(
                &with(
                    "1001",
                    &format!("not_before = \"{before}\"\nnot_after = \"{after}\"\n"),
                ),
                1001,
            );
            assert!(
                matches!(err.kind(), KeysErrorKind::EmptyWindow { .. }),
                "{err}"
            );
            assert_eq!(err.location().unwrap().line, 7, "{err}");
            assert!(
                err.to_string().contains(&format!(
                    "`not_before` ({}) is not before",
                    Rfc3339(parse_rfc3339(before).unwrap())
                )),
                "{err}"
            );
        }
        let table = load(&with(
            "1001",
            "not_before = \"2026-11-23T00:00:00Z\"\nnot_after = \"2026-11-23T00:00:00.000000001Z\"\n",
        ));
        let key = table.entry(KeyIndex(0));
        assert_eq!(key.not_after_ns.unwrap() - key.not_before_ns.unwrap(), 1);
    }

    #[test]
    fn secret_next_must_be_a_different_secret() {
        let err = refuse_key(
            &with("1001", &format!("secret_next = \"{}\"\n", &NEXT[..63])),
            1001,
        );
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::SecretNext(SecretError::Length { found: 63 })
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("`secret_next`: secret has 63 characters"),
            "{err}"
        );

        let mut bad = NEXT.to_owned();
        bad.replace_range(0..1, "g");
        let err = refuse_key(&with("1001", &format!("secret_next = \"{bad}\"\n")), 1001);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::SecretNext(SecretError::NotHex { position: 1 })
            ),
            "{err}"
        );

        for same in [SECRET.to_owned(), SECRET.to_uppercase()] {
            let err = refuse_key(&with("1001", &format!("secret_next = \"{same}\"\n")), 1001);
            assert!(
                matches!(err.kind(), KeysErrorKind::SecretNextSameAsSecret),
                "{err}"
            );
            assert!(err.to_string().contains("same as `secret`"), "{err}");
            assert_eq!(err.location().unwrap().line, 6, "{err}");
        }

        let err = refuse_key(&with("1001", "secret_next = 5\n"), 1001);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::WrongType {
                    field: "secret_next",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn limits_are_at_least_one_and_status_is_known() {
        let cases = [
            ("max_sessions = 0", "max_sessions", 0, u64::from(u32::MAX)),
            ("max_sessions = -1", "max_sessions", -1, u64::from(u32::MAX)),
            (
                "max_sessions = 4294967296",
                "max_sessions",
                1 << 32,
                u64::from(u32::MAX),
            ),
            ("max_order_qty = 0", "max_order_qty", 0, u64::from(u32::MAX)),
            (
                "max_order_qty = 4294967296",
                "max_order_qty",
                1 << 32,
                u64::from(u32::MAX),
            ),
            ("max_order_notional = 0", "max_order_notional", 0, u64::MAX),
            ("max_open_notional = 0", "max_open_notional", 0, u64::MAX),
            (
                "max_order_notional = -9",
                "max_order_notional",
                -9,
                u64::MAX,
            ),
        ];
        for (line, name, v, max_expected) in cases {
            let err = refuse_key(&with("1001", &format!("{line}\n")), 1001);
            match err.kind() {
                KeysErrorKind::OutOfRange {
                    field,
                    value,
                    min: 1,
                    max,
                } => assert_eq!((*field, *value, *max), (name, v, max_expected), "{err}"),
                other => panic!("{other:?}"),
            }
            assert!(
                err.to_string()
                    .contains(&format!("`{name}` is {v}; it must be in 1..=")),
                "{err}"
            );
        }
        let edges = load(&with(
            "1001",
            "max_sessions = 1\nmax_order_qty = 1\nmax_order_notional = 1\n",
        ));
        let key = edges.entry(KeyIndex(0));
        assert_eq!(key.max_sessions, NonZeroU32::new(1));
        assert_eq!(key.max_order_qty, NonZeroU32::new(1));
        assert_eq!(key.max_order_notional, NonZeroU64::new(1));

        let err = refuse_key(&with("1001", "max_order_qty = 1.5\n"), 1001);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::WrongType {
                    field: "max_order_qty",
                    found: "a float",
                    ..
                }
            ),
            "{err}"
        );

        for (status, echoed) in [("disabled", Some("disabled")), ("Active", Some("Active"))] {
            let err = refuse_key(&with("1001", &format!("status = \"{status}\"\n")), 1001);
            match err.kind() {
                KeysErrorKind::UnknownStatus { name } => assert_eq!(name.as_deref(), echoed),
                other => panic!("{other:?}"),
            }
            assert!(
                err.to_string()
                    .contains("it must be \"active\" or \"revoked\""),
                "{err}"
            );
        }
        let err = refuse_key(&with("1001", "status = true\n"), 1001);
        assert!(
            matches!(
                err.kind(),
                KeysErrorKind::WrongType {
                    field: "status",
                    found: "a boolean",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn debug_with_every_field_shows_no_secret() {
        let text = with(
            "1001",
            &format!("secret_next = \"{NEXT}\"\nallow = [\"10.0.0.0/8\"]\nmax_order_qty = 5\n"),
        );
        let table = load(&text);
        let key = table.entry(KeyIndex(0));
        let debug = format!("{table:?} {table:#?} {key:?} {key:#?} {:?}", key.secrets());
        assert_eq!(debug.matches("Secret(<redacted>)").count(), 10, "{debug}");
        assert!(debug.contains("Cidr(10.0.0.0/8)"), "{debug}");
        assert_no_secret(&debug);
        // Nor the bytes in decimal: 0xfe 0xed of NEXT, 0xd3 0xad of SECRET.
        assert!(
            !debug.contains("254, 237") && !debug.contains("211, 173"),
            "{debug}"
        );
    }

    #[test]
    fn from_entries_checks_the_policy_fields() {
        let check = |entry: KeyEntry| {
            let err = KeyTable::from_entries(vec![made(1), entry]).unwrap_err();
            assert!(err.to_string().contains("key 4 (#2)"), "{err}");
            assert_no_secret(&format!("{err} {err:?}"));
            err
        };
        let same = made(4).with_secret_next(Secret::from_hex(SECRET).unwrap());
        assert!(matches!(
            check(same).kind(),
            KeysErrorKind::SecretNextSameAsSecret
        ));

        let mut window = made(4);
        window.not_before_ns = Some(10);
        window.not_after_ns = Some(10);
        assert!(matches!(
            check(window).kind(),
            KeysErrorKind::EmptyWindow {
                not_before_ns: 10,
                not_after_ns: 10
            }
        ));

        let wide = made(4).with_allow(vec![Cidr::ANY_V4; ALLOW_CIDRS_MAX + 1]);
        assert!(matches!(
            check(wide).kind(),
            KeysErrorKind::TooManyCidrs { .. }
        ));

        let fine = made(4)
            .with_secret_next(Secret::from_hex(NEXT).unwrap())
            .with_allow(vec![Cidr::ANY_V4; ALLOW_CIDRS_MAX])
            .with_rate(7, 3);
        let table = KeyTable::from_entries(vec![made(1), fine]).unwrap();
        let key = table.get(4).unwrap().1;
        assert_eq!((key.msgs_per_sec, key.burst), (7, 3));
        assert!(key.secret_next.is_some());
        assert_eq!(table.origin(), ORIGIN_IN_MEMORY);
    }

    #[test]
    fn warnings_name_keys_that_cannot_log_on() {
        let text = format!(
            "{}{}{}{}{}",
            with("1", "allow = [\"0.0.0.0/0\", \"::/0\"]\n"),
            entry("2"),
            with("3", "allow = [\"10.0.0.0/8\"]\nstatus = \"revoked\"\n"),
            with("4", "status = \"revoked\"\n"),
            with(
                "5",
                "allow = [\"10.0.0.0/8\"]\nnot_before = \"2026-11-23T00:00:00Z\"\nnot_after = \"2026-11-24T00:00:00Z\"\n",
            ),
        );
        let table = load(&text);
        let start = parse_rfc3339("2026-11-23T00:00:00Z").unwrap();
        let end = parse_rfc3339("2026-11-24T00:00:00Z").unwrap();
        let at = |now| -> Vec<(u64, KeyWarningKind)> {
            table.warnings(now).map(|w| (w.id, w.kind)).collect()
        };
        assert_eq!(
            at(start),
            [
                (2, KeyWarningKind::NoAllowList),
                (3, KeyWarningKind::Revoked),
                (4, KeyWarningKind::Revoked)
            ]
        );
        assert_eq!(
            at(start - 1)[3],
            (
                5,
                KeyWarningKind::NotYetValid {
                    not_before_ns: start
                }
            )
        );
        assert_eq!(
            at(end)[3],
            (5, KeyWarningKind::Expired { not_after_ns: end })
        );

        let lines: Vec<String> = table.warnings(end).map(|w| w.to_string()).collect();
        assert_eq!(lines.len(), 4);
        for line in &lines {
            assert!(
                line.starts_with(&format!("keys file {ORIGIN}, key ")),
                "{line}"
            );
            assert_no_secret(line);
        }
        assert!(lines[0].contains("key 2: no `allow` list"), "{}", lines[0]);
        assert!(lines[0].contains("ADDRESS_NOT_ALLOWED"), "{}", lines[0]);
        assert!(
            lines[3].contains("expired at 2026-11-24T00:00:00Z"),
            "{}",
            lines[3]
        );
        let early: Vec<String> = table.warnings(start - 1).map(|w| w.to_string()).collect();
        assert!(
            early[3].contains("not valid until 2026-11-23T00:00:00Z"),
            "{}",
            early[3]
        );
    }

    #[test]
    fn new_key_entry_parses_back() {
        let secret = Secret::from_hex(SECRET).unwrap();
        let text = new_key_entry_toml(1001, &["trade", "cancel"], "production", &secret);
        assert!(text.contains(&format!("secret = \"{SECRET}\"\n")), "{text}");
        assert!(text.contains("\n# allow = [\""), "{text}");
        assert!(text.starts_with("# "), "{text}");
        let table = load(&text);
        let (_, key) = table.get(1001).unwrap();
        assert_eq!(key.secret.expose(), secret.expose());
        assert_eq!(key.scopes, Scopes::TRADE.union(Scopes::CANCEL));
        assert_eq!(key.environment, Environment::Production);
        assert!(key.allow.is_empty(), "the allow line is a comment");
        assert!(key.secret_next.is_none());

        // Upper-case bytes come out as lower-case hex.
        let upper = Secret::from_hex(&NEXT.to_uppercase()).unwrap();
        let text = new_key_entry_toml(u64::from(u32::MAX), &["read"], "sandbox", &upper);
        assert!(text.contains(NEXT), "{text}");
        let table = load(&text);
        let key = table.entry(KeyIndex(0));
        assert_eq!(
            (key.id, key.scopes, key.environment),
            (u64::from(u32::MAX), Scopes::READ, Environment::Sandbox)
        );

        // Two entries make a file.
        let both = format!(
            "{}\n{}",
            new_key_entry_toml(1, &["trade"], "production", &secret),
            new_key_entry_toml(2, &["cancel"], "production", &upper)
        );
        assert_eq!(load(&both).len(), 2);

        // Names are written as TOML strings; wrong ones are refused on load.
        let odd = new_key_entry_toml(3, &["tr\"ade\\\n"], "prod", &secret);
        assert!(odd.contains(r#"scopes = ["tr\"ade\\\u000a"]"#), "{odd}");
        let err = KeyTable::from_toml_str(&odd, ORIGIN).unwrap_err();
        assert!(
            matches!(err.kind(), KeysErrorKind::UnknownScope { .. }),
            "{err}"
        );
        let long = "x".repeat(300);
        let text = new_key_entry_toml(u64::MAX, &[&long, &long, &long], &long, &secret);
        assert!(text.contains(&long));
    }

    /// The checks on a key (`impl KeyEntry` above; the rules are
    /// `policy`'s).
    mod checks {
        use super::*;
        use crate::auth::policy::{Cidr, KeyDisabled, KeyStatus, RiskReject};
        use crate::auth::secret::SECRET_SIZE;

        fn cidr(text: &str) -> Cidr {
            text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
        }

        fn ip(text: &str) -> IpAddr {
            text.parse().unwrap()
        }

        use crate::wire::codes::{Environment, Scopes};
        use core::num::{NonZeroU32, NonZeroU64};

        fn key() -> KeyEntry {
            KeyEntry::new(
                1001,
                Secret::from_bytes([1; SECRET_SIZE]),
                Scopes::TRADE,
                Environment::Production,
            )
        }

        #[test]
        fn allows_checks_every_cidr_and_defaults_to_nowhere() {
            let nowhere = key();
            for peer in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0"] {
                assert!(!nowhere.allows(ip(peer)), "{peer}");
            }
            let anywhere = key().allow_any();
            for peer in [
                "127.0.0.1",
                "::1",
                "::ffff:127.0.0.1",
                "::",
                "255.255.255.255",
            ] {
                assert!(anywhere.allows(ip(peer)), "{peer}");
            }
            let some =
                key().with_allow([cidr("10.0.0.0/8"), cidr("2001:db8::/32"), cidr("192.0.2.7")]);
            for (peer, allowed) in [
                ("10.9.9.9", true),
                ("::ffff:10.9.9.9", true),
                ("11.0.0.1", false),
                ("2001:db8::5", true),
                ("2001:db9::5", false),
                ("192.0.2.7", true),
                ("::ffff:192.0.2.7", true),
                ("192.0.2.8", false),
                ("::192.0.2.7", false),
            ] {
                assert_eq!(some.allows(ip(peer)), allowed, "{peer}");
            }
            let only_v4 = key().with_allow([Cidr::ANY_V4]);
            assert!(only_v4.allows(ip("::ffff:8.8.8.8")));
            assert!(!only_v4.allows(ip("2001:db8::1")));
            let only_v6 = key().with_allow([Cidr::ANY_V6]);
            assert!(!only_v6.allows(ip("::ffff:8.8.8.8")));
            assert!(!only_v6.allows(ip("8.8.8.8")));
            assert!(only_v6.allows(ip("2001:db8::1")));
        }

        #[test]
        fn valid_at_start_is_inclusive_and_end_exclusive() {
            let mut k = key();
            assert_eq!(k.valid_at(0), Ok(()));
            assert_eq!(k.valid_at(u64::MAX), Ok(()));

            k.not_before_ns = Some(1_000);
            k.not_after_ns = Some(2_000);
            assert_eq!(k.valid_at(0), Err(KeyDisabled::NotYetValid));
            assert_eq!(k.valid_at(999), Err(KeyDisabled::NotYetValid));
            assert_eq!(k.valid_at(1_000), Ok(()));
            assert_eq!(k.valid_at(1_999), Ok(()));
            assert_eq!(k.valid_at(2_000), Err(KeyDisabled::Expired));
            assert_eq!(k.valid_at(u64::MAX), Err(KeyDisabled::Expired));

            k.not_before_ns = None;
            assert_eq!(k.valid_at(0), Ok(()));
            assert_eq!(k.valid_at(2_000), Err(KeyDisabled::Expired));
            k.not_before_ns = Some(1_000);
            k.not_after_ns = None;
            assert_eq!(k.valid_at(999), Err(KeyDisabled::NotYetValid));
            assert_eq!(k.valid_at(u64::MAX), Ok(()));

            // Revoked wins over everything, inside the window or out.
            k.status = KeyStatus::Revoked;
            for now in [0, 999, 1_000, u64::MAX] {
                assert_eq!(k.valid_at(now), Err(KeyDisabled::Revoked));
            }
        }

        #[test]
        fn check_order_limits_are_inclusive_and_exact() {
            let open = key();
            assert_eq!(open.check_order(i64::MIN, u32::MAX), Ok(()));
            assert_eq!(open.check_order(i64::MAX, u32::MAX), Ok(()));

            let mut k = key();
            k.max_order_qty = NonZeroU32::new(100);
            assert_eq!(k.check_order(1, 100), Ok(()));
            assert_eq!(k.check_order(1, 101), Err(RiskReject::MaxQty));
            assert_eq!(k.check_order(1, u32::MAX), Err(RiskReject::MaxQty));
            assert_eq!(k.check_order(i64::MIN, 0), Ok(()));

            k.max_order_notional = NonZeroU64::new(1_000);
            assert_eq!(k.check_order(10, 100), Ok(()));
            assert_eq!(k.check_order(-10, 100), Ok(()));
            assert_eq!(k.check_order(11, 91), Err(RiskReject::MaxNotional));
            assert_eq!(k.check_order(-11, 91), Err(RiskReject::MaxNotional));
            assert_eq!(k.check_order(1_001, 1), Err(RiskReject::MaxNotional));
            assert_eq!(k.check_order(1_000, 1), Ok(()));
            // Quantity is checked first.
            assert_eq!(k.check_order(i64::MAX, 101), Err(RiskReject::MaxQty));

            // The extremes do not overflow: |i64::MIN| × u32::MAX ≈ 2^95.
            let mut wide = key();
            wide.max_order_notional = NonZeroU64::new(u64::MAX);
            assert_eq!(wide.check_order(i64::MIN, 1), Ok(()));
            // 2^63 × 2 = 2^64 is one above u64::MAX; (2^63 − 1) × 2 is below.
            assert_eq!(wide.check_order(i64::MIN, 2), Err(RiskReject::MaxNotional));
            assert_eq!(
                wide.check_order(i64::MIN, u32::MAX),
                Err(RiskReject::MaxNotional)
            );
            assert_eq!(wide.check_order(i64::MAX, 2), Ok(()));
            assert_eq!(wide.check_order(0, u32::MAX), Ok(()));
            // u64::MAX = 3 × 5 × 17 × 257 × 641 × 65537 × 6700417: exactly at the
            // limit passes, one tick above does not.
            let price = (u64::MAX / 65_537) as i64;
            assert_eq!(wide.check_order(price, 65_537), Ok(()));
            assert_eq!(wide.check_order(-price, 65_537), Ok(()));
            assert_eq!(
                wide.check_order(price + 1, 65_537),
                Err(RiskReject::MaxNotional)
            );
        }

        #[test]
        fn rotation_accepts_either_secret_and_checks_both() {
            let plain = key();
            let (current, next) = plain.secrets();
            assert_eq!(current.expose(), &[1; SECRET_SIZE]);
            assert!(next.is_none());

            let rotating = key().with_secret_next(Secret::from_bytes([2; SECRET_SIZE]));
            let (current, next) = rotating.secrets();
            assert_eq!(current.expose(), &[1; SECRET_SIZE]);
            assert_eq!(next.unwrap().expose(), &[2; SECRET_SIZE]);

            for (byte, expected) in [(1u8, Some(1u8)), (2, Some(2)), (3, None)] {
                let mut seen = 0;
                let found = rotating.secret_matching(|s| {
                    seen += 1;
                    s[0] == byte
                });
                assert_eq!(found.map(|s| s.expose()[0]), expected);
                assert_eq!(seen, 2, "both secrets are always tried");
            }

            let mut seen = 0;
            let found = plain.secret_matching(|s| {
                seen += 1;
                s[0] == 1
            });
            assert_eq!(found.map(|s| s.expose()[0]), Some(1));
            assert_eq!(seen, 1);
            assert!(plain.secret_matching(|s| s[0] == 2).is_none());
        }

        #[test]
        fn session_limit_is_reached_at_max() {
            let mut k = key();
            assert!(!k.session_limit_reached(u32::MAX));
            k.max_sessions = NonZeroU32::new(2);
            assert!(!k.session_limit_reached(0));
            assert!(!k.session_limit_reached(1));
            assert!(k.session_limit_reached(2));
            assert!(k.session_limit_reached(3));
        }
    }
}
