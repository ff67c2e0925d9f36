//! Access policy of an API key: where it may connect from, when it is valid,
//! which secrets it accepts, and the per-order risk limits. Checked at logon
//! and on every order.
//!
//! Everything here is a pure function of the key and its arguments: no
//! clock, no I/O, no allocation (`tests/policy_alloc.rs` proves the last for
//! [`KeyEntry::allows`], [`KeyEntry::valid_at`] and
//! [`KeyEntry::check_order`]). The caller passes `now` and the peer address.
//!
//! # Which wire code each refusal becomes
//!
//! | check                          | refusal                    | wire code                        |
//! |--------------------------------|----------------------------|----------------------------------|
//! | [`KeyEntry::valid_at`]         | [`KeyDisabled`] (any)      | LogonReject `KEY_DISABLED`       |
//! | [`KeyEntry::allows`]           | `false`                    | LogonReject `ADDRESS_NOT_ALLOWED`|
//! | [`KeyEntry::session_limit_reached`] | `true`                | LogonReject `SESSION_LIMIT`      |
//! | [`KeyEntry::check_order`]      | [`RiskReject::MaxQty`]     | OrderRejected `RISK_MAX_QTY`     |
//! | [`KeyEntry::check_order`]      | [`RiskReject::MaxNotional`]| OrderRejected `RISK_MAX_NOTIONAL`|
//!
//! PROTOCOL.md puts the logon checks after the signature check: only a
//! sender who proved the secret may learn anything about the key.
//!
//! # Addresses
//!
//! A peer's IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a dual-stack
//! socket reports for an IPv4 client) is its IPv4 address: it matches IPv4
//! CIDRs such as `10.0.0.0/8`, and never an IPv6 CIDR. An IPv6 CIDR written
//! in mapped form with a prefix of at least 96 (`::ffff:10.0.0.0/104`) is
//! read as the IPv4 CIDR it names (`10.0.0.0/8`). So `::/0` admits every
//! IPv6 client and no IPv4 one: `["0.0.0.0/0", "::/0"]` admits everyone.
//! The deprecated IPv4-compatible form (`::10.1.2.3`) is plain IPv6.
//!
//! # Validity window
//!
//! `not_before` is inclusive and `not_after` exclusive: a key is valid at
//! `now` when `not_before_ns <= now < not_after_ns`. Back to back windows of
//! two keys (one's `not_after` equal to the next one's `not_before`) leave
//! neither a gap nor an overlap.
//!
//! # Notional
//!
//! The notional of an order is `|price| × qty`, in price ticks times
//! quantity units (the tick size is reference data and never travels, so
//! neither does a currency amount). It is computed exactly in `u128`:
//! `|i64::MIN| = 2^63` and `qty < 2^32`, so the product is below `2^95` and
//! cannot overflow. A negative price (spreads, some futures) counts by its
//! magnitude: the exposure of a −500 tick order is that of a 500 tick one.
//!
//! This is the gateway's first line, made from the message alone. It cannot
//! see the book: a sell at a low limit fills at the bids, above its limit.
//! The engine checks the notional again at the prices the order would fill
//! at, refuses prices ≤ 0 and prices outside the instrument's collar, and
//! keeps each key's open notional against `max_open_notional`
//! ([`crate::engine::risk`]).
//!
//! # Timestamps
//!
//! [`parse_rfc3339`] reads the RFC 3339 `date-time` form, and nothing
//! looser: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)`. The calendar (month
//! lengths, leap years, offsets, the instant) is jiff's; the grammar is
//! checked here, because jiff's parser takes more than RFC 3339 (basic
//! format, hour-only offsets, bracketed time zones, `,` fractions, and it
//! reads `:60` as `:59`) and each refusal here names its character
//! position without quoting the text (a keys file's errors never do).
//!
//! - `T` may be `t` or a space (RFC 3339 §5.6 note), `Z` may be `z`;
//! - the fraction has 1 to 9 digits (nanoseconds; more would be precision
//!   that `u64` nanoseconds cannot hold, and is refused rather than cut);
//! - the offset is `Z` or `±hh:mm`, hours `00..=23`, minutes `00..=59`;
//!   `-00:00` ("offset unknown") is read as UTC. A timestamp without an
//!   offset is refused: a validity bound must name an instant;
//! - every calendar field is checked, including the day against its month
//!   and leap years (Feb 29 only when the year is divisible by 4 and not by
//!   100, or by 400);
//! - a leap second (`:60`) is refused: Unix time has no place for it;
//! - the instant must lie in `1970-01-01T00:00:00Z ..=
//!   2554-07-21T23:34:33.709551615Z`, the range of `u64` nanoseconds.
//!
//! [`KeyEntry::allows`]: crate::auth::keys::KeyEntry::allows
//! [`KeyEntry::valid_at`]: crate::auth::keys::KeyEntry::valid_at
//! [`KeyEntry::check_order`]: crate::auth::keys::KeyEntry::check_order
//! [`KeyEntry::session_limit_reached`]: crate::auth::keys::KeyEntry::session_limit_reached

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::wire::codes::{LogonRejectReason, RejectReason};

/// Defined in `constants` with its reason; here too for the old path.
pub use crate::constants::ALLOW_CIDRS_MAX;

// ---------------------------------------------------------------------------
// CIDR

/// A network: an address and a prefix length, IPv4 or IPv6, with no bit set
/// beyond the prefix (host bits are refused, never silently cleared).
///
/// Build one with [`Cidr::parse`] (or `str::parse`), [`Cidr::new`] or
/// [`Cidr::host`]. `Display` and `Debug` print the usual `10.0.0.0/8` form.
///
/// The network itself is an [`ipnet::IpNet`], always truncated (host bits
/// zero) and never an IPv4-mapped IPv6 network of prefix >= 96 (that is
/// stored as the IPv4 network it names).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

/// Why a CIDR was refused. Holds none of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address (zone ids such as
    /// `%eth0` and spaces are not accepted either).
    BadAddress,
    /// The part after `/` is not a decimal number (or is empty).
    BadPrefix,
    /// The prefix is longer than the address: `max` is 32 or 128.
    PrefixTooLong { prefix_len: u16, max: u8 },
    /// Bits are set past the prefix (`10.1.2.3/8`). Refused rather than
    /// cleared: the writer meant either the network (`network`) or one host,
    /// and guessing the wider one would open the key to more addresses than
    /// intended.
    HostBitsSet { network: Cidr },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::BadAddress => f.write_str("not an IPv4 or IPv6 address"),
            CidrError::BadPrefix => {
                f.write_str("the prefix length after '/' must be a decimal number")
            }
            CidrError::PrefixTooLong { prefix_len, max } => write!(
                f,
                "prefix length {prefix_len} is longer than the address ({max} bits)"
            ),
            CidrError::HostBitsSet { network } => {
                let host = match network.address() {
                    IpAddr::V4(_) => 32,
                    IpAddr::V6(_) => 128,
                };
                write!(
                    f,
                    "bits are set after the prefix: write the network, {network}, or \
                     one address as /{host}"
                )
            }
        }
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// Every IPv4 address (and every IPv4-mapped IPv6 one).
    pub const ANY_V4: Cidr = Cidr(IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 0)));

    /// Every IPv6 address that is not IPv4-mapped.
    pub const ANY_V6: Cidr = Cidr(IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 0)));

    /// The network `address/prefix_len`. An IPv4-mapped IPv6 network with a
    /// prefix of at least 96 becomes the IPv4 network it names.
    ///
    /// # Errors
    ///
    /// [`CidrError::PrefixTooLong`] or [`CidrError::HostBitsSet`].
    pub fn new(address: IpAddr, prefix_len: u8) -> Result<Cidr, CidrError> {
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(CidrError::PrefixTooLong {
                prefix_len: prefix_len.into(),
                max,
            });
        }
        // `prefix_len <= max`: `new` cannot fail.
        let net = match address {
            IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new_assert(v4, prefix_len)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix_len >= 96 => IpNet::V4(Ipv4Net::new_assert(v4, prefix_len - 96)),
                _ => IpNet::V6(Ipv6Net::new_assert(v6, prefix_len)),
            },
        };
        let masked = net.trunc();
        if masked != net {
            return Err(CidrError::HostBitsSet {
                network: Cidr(masked),
            });
        }
        Ok(Cidr(net))
    }

    /// One address: `/32` or `/128` (an IPv4-mapped address is its IPv4
    /// address).
    pub fn host(address: IpAddr) -> Cidr {
        Cidr(IpNet::from(address.to_canonical()))
    }

    /// Parses `address/prefix_len`, or a bare `address` (one host). The
    /// address is in std's syntax (`10.0.0.1`, `2001:db8::1`,
    /// `::ffff:10.0.0.1`); the prefix is decimal.
    ///
    /// # Errors
    ///
    /// See [`CidrError`]; the error holds none of `text`.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = if address.contains(':') {
            Ipv6Addr::from_str(address).map(IpAddr::V6)
        } else {
            Ipv4Addr::from_str(address).map(IpAddr::V4)
        }
        .map_err(|_| CidrError::BadAddress)?;
        let Some(prefix) = prefix else {
            return Ok(Cidr::host(address));
        };
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrError::BadPrefix);
        }
        let prefix_len: u16 = prefix.parse().map_err(|_| CidrError::BadPrefix)?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        match u8::try_from(prefix_len) {
            Ok(p) if p <= max => Cidr::new(address, p),
            _ => Err(CidrError::PrefixTooLong { prefix_len, max }),
        }
    }

    /// The network address (host bits zero).
    pub fn address(self) -> IpAddr {
        self.0.network()
    }

    /// The prefix length: `0..=32` for IPv4, `0..=128` for IPv6.
    pub fn prefix_len(self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `peer` is in this network. An IPv4-mapped IPv6 `peer` is
    /// taken as its IPv4 address (see the module docs).
    #[inline]
    pub fn contains(&self, peer: IpAddr) -> bool {
        self.contains_canonical(peer.to_canonical())
    }

    /// `contains` for a peer already in canonical form (never IPv4-mapped).
    #[inline]
    pub(crate) fn contains_canonical(&self, peer: IpAddr) -> bool {
        // ipnet compares with the network and broadcast addresses: no
        // allocation (tests/policy_alloc.rs), as the logon path needs.
        match (&self.0, peer) {
            (IpNet::V4(net), IpAddr::V4(v4)) => net.contains(&v4),
            (IpNet::V6(net), IpAddr::V6(v6)) => net.contains(&v6),
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(text)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cidr({self})")
    }
}

// ---------------------------------------------------------------------------
// Status, refusals

/// Whether a key may be used at all. `Revoked` keeps the entry (its id stays
/// taken, its sessions can be named in the audit) while refusing it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    #[default]
    Active,
    Revoked,
}

impl KeyStatus {
    /// Parses the keys file's name: `"active"` or `"revoked"`.
    pub fn from_name(name: &str) -> Option<KeyStatus> {
        match name {
            "active" => Some(KeyStatus::Active),
            "revoked" => Some(KeyStatus::Revoked),
            _ => None,
        }
    }

    /// The keys file's name.
    pub const fn name(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
        }
    }
}

/// Why a key may not log on now. Every variant is LogonReject
/// `KEY_DISABLED` on the wire; the variant is for logs and the audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyDisabled {
    /// `status = "revoked"`.
    Revoked,
    /// `now < not_before`.
    NotYetValid,
    /// `now >= not_after`.
    Expired,
}

impl KeyDisabled {
    /// The wire code: always `KEY_DISABLED` (the client learns no more).
    #[inline]
    pub const fn reason(self) -> LogonRejectReason {
        LogonRejectReason::KEY_DISABLED
    }

    /// A short name for logs: `revoked`, `not_yet_valid`, `expired`.
    pub const fn name(self) -> &'static str {
        match self {
            KeyDisabled::Revoked => "revoked",
            KeyDisabled::NotYetValid => "not_yet_valid",
            KeyDisabled::Expired => "expired",
        }
    }
}

impl fmt::Display for KeyDisabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyDisabled::Revoked => "the key is revoked",
            KeyDisabled::NotYetValid => "the key is not valid yet (before its not_before)",
            KeyDisabled::Expired => "the key has expired (at or after its not_after)",
        })
    }
}

/// Why an order breaks its key's risk limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RiskReject {
    /// `qty > max_order_qty`.
    MaxQty,
    /// `|price| × qty > max_order_notional`.
    MaxNotional,
}

impl RiskReject {
    /// The wire code: `RISK_MAX_QTY` or `RISK_MAX_NOTIONAL`.
    #[inline]
    pub const fn reason(self) -> RejectReason {
        match self {
            RiskReject::MaxQty => RejectReason::RISK_MAX_QTY,
            RiskReject::MaxNotional => RejectReason::RISK_MAX_NOTIONAL,
        }
    }
}

impl fmt::Display for RiskReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RiskReject::MaxQty => "quantity above the key's max_order_qty",
            RiskReject::MaxNotional => "notional above the key's max_order_notional",
        })
    }
}

/// The notional of an order: `|price| × qty`, exact (below `2^95`).
#[inline]
pub const fn order_notional(price: i64, qty: u32) -> u128 {
    price.unsigned_abs() as u128 * qty as u128
}

// ---------------------------------------------------------------------------
// RFC 3339

const NS_PER_SEC: u64 = 1_000_000_000;

/// Why a timestamp was refused. Holds none of the text, only the numbers
/// read from it and positions (1-based, in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// At `position` the text should have `expected` (or ends too early, or
    /// goes on after the offset).
    #[error("character {position} should be {expected} (the form is {RFC3339_FORM})")]
    Format {
        position: usize,
        expected: &'static str,
    },
    /// A field outside its range (`month`, `hour`, `minute`, `second`,
    /// `offset hour`, `offset minute`).
    #[error("{field} {value} is out of range")]
    OutOfRange { field: &'static str, value: u32 },
    /// No such day in that month (Feb 30, Apr 31, Feb 29 of a common year).
    #[error("{year:04}-{month:02} has no day {day}")]
    NoSuchDay { year: u32, month: u32, day: u32 },
    /// Second 60.
    #[error("second 60 (a leap second) cannot be represented in Unix time")]
    LeapSecond,
    /// More than 9 digits of fraction.
    #[error("the fraction has {digits} digits; at most 9 (nanoseconds)")]
    FractionTooLong { digits: usize },
    /// Before 1970-01-01T00:00:00Z.
    #[error("it is before 1970-01-01T00:00:00Z")]
    BeforeEpoch,
    /// After 2554-07-21T23:34:33.709551615Z.
    #[error(
        "it is after {}, the last instant u64 nanoseconds can hold",
        Rfc3339(u64::MAX)
    )]
    AfterMax,
}

/// The form every timestamp must have, for messages.
pub const RFC3339_FORM: &str = "YYYY-MM-DDTHH:MM:SS[.fraction]Z or ...±hh:mm";

/// A cursor over the ASCII bytes of a timestamp.
struct Cursor<'a> {
    bytes: &'a [u8],
    /// Index of the next byte. Every byte before it is ASCII, so it is also
    /// the index in characters.
    pos: usize,
}

impl Cursor<'_> {
    fn fail(&self, expected: &'static str) -> TimestampError {
        TimestampError::Format {
            position: self.pos + 1,
            expected,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Exactly `count` decimal digits.
    fn digits(&mut self, count: usize) -> Result<u32, TimestampError> {
        let mut value = 0;
        for _ in 0..count {
            match self.peek() {
                Some(d @ b'0'..=b'9') => value = value * 10 + u32::from(d - b'0'),
                _ => return Err(self.fail("a digit")),
            }
            self.pos += 1;
        }
        Ok(value)
    }

    /// One of `allowed`.
    fn expect(&mut self, allowed: &[u8], expected: &'static str) -> Result<u8, TimestampError> {
        match self.peek() {
            Some(b) if allowed.contains(&b) => {
                self.pos += 1;
                Ok(b)
            }
            _ => Err(self.fail(expected)),
        }
    }
}

/// Parses an RFC 3339 `date-time` into nanoseconds since the Unix epoch.
/// See the module docs for exactly what is accepted.
///
/// # Errors
///
/// The first problem, as a [`TimestampError`] that holds none of the text.
pub fn parse_rfc3339(text: &str) -> Result<u64, TimestampError> {
    let mut c = Cursor {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let year = c.digits(4)?;
    c.expect(b"-", "'-'")?;
    let month = c.digits(2)?;
    if !(1..=12).contains(&month) {
        return Err(TimestampError::OutOfRange {
            field: "month",
            value: month,
        });
    }
    c.expect(b"-", "'-'")?;
    let day = c.digits(2)?;
    // jiff knows the calendar (month lengths, leap years); the four-digit
    // year, month 1..=12 and day 0..=99 all fit its i16/i8.
    let date = jiff::civil::Date::new(year as i16, month as i8, day as i8)
        .map_err(|_| TimestampError::NoSuchDay { year, month, day })?;
    c.expect(b"Tt ", "'T'")?;
    let hour = c.digits(2)?;
    c.expect(b":", "':'")?;
    let minute = c.digits(2)?;
    c.expect(b":", "':'")?;
    let second = c.digits(2)?;
    for (field, value, max) in [("hour", hour, 23), ("minute", minute, 59)] {
        if value > max {
            return Err(TimestampError::OutOfRange { field, value });
        }
    }
    match second {
        0..=59 => {}
        60 => return Err(TimestampError::LeapSecond),
        _ => {
            return Err(TimestampError::OutOfRange {
                field: "second",
                value: second,
            });
        }
    }

    let mut nanos: u64 = 0;
    if c.peek() == Some(b'.') {
        c.pos += 1;
        let start = c.pos;
        while let Some(d @ b'0'..=b'9') = c.peek() {
            if c.pos - start < 9 {
                nanos = nanos * 10 + u64::from(d - b'0');
            }
            c.pos += 1;
        }
        let digits = c.pos - start;
        if digits == 0 {
            return Err(c.fail("a digit"));
        }
        if digits > 9 {
            return Err(TimestampError::FractionTooLong { digits });
        }
        nanos *= 10u64.pow((9 - digits) as u32);
    }

    let offset_secs: i64 = match c.expect(b"Zz+-", "'Z', '+' or '-' (the UTC offset)")? {
        b'Z' | b'z' => 0,
        sign => {
            let hours = c.digits(2)?;
            c.expect(b":", "':'")?;
            let minutes = c.digits(2)?;
            for (field, value, max) in [("offset hour", hours, 23), ("offset minute", minutes, 59)]
            {
                if value > max {
                    return Err(TimestampError::OutOfRange { field, value });
                }
            }
            let magnitude = i64::from(hours * 3600 + minutes * 60);
            if sign == b'-' { -magnitude } else { magnitude }
        }
    };
    if c.pos != c.bytes.len() {
        return Err(c.fail("the end (nothing may follow the offset)"));
    }

    // Local time minus its offset is UTC (jiff). Its range is years
    // -9999..=9999: what falls outside lies before 1970 or after 2554.
    let local = date.at(hour as i8, minute as i8, second as i8, 0);
    let utc = jiff::tz::Offset::from_seconds(offset_secs as i32)
        .and_then(|offset| offset.to_timestamp(local))
        .map_err(|_| {
            if year < 1970 {
                TimestampError::BeforeEpoch
            } else {
                TimestampError::AfterMax
            }
        })?;
    let Ok(secs) = u64::try_from(utc.as_second()) else {
        return Err(TimestampError::BeforeEpoch);
    };
    secs.checked_mul(NS_PER_SEC)
        .and_then(|ns| ns.checked_add(nanos))
        .ok_or(TimestampError::AfterMax)
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 in UTC:
/// `2026-11-23T00:00:00Z`, with a fraction only when there is one (trailing
/// zeros dropped). [`parse_rfc3339`] reads it back to the same value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rfc3339(pub u64);

/// Printed by jiff. A precision (`{:.9}`) fixes the fraction's digits, as
/// the audit journal's lines want.
impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every u64 of nanoseconds (up to the year 2554) is in jiff's range.
        let instant = jiff::Timestamp::from_nanosecond(i128::from(self.0))
            .expect("u64 nanoseconds are within jiff's range");
        fmt::Display::fmt(&instant, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_parses_and_prints() {
        for (text, printed) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.1.2.3", "10.1.2.3/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("::/0", "::/0"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::ffff:10.1.2.3", "10.1.2.3/32"),
            ("::ffff:0:0/96", "0.0.0.0/0"),
            ("::fffe:0:0/95", "::fffe:0:0/95"),
            ("::10.1.2.3", "::a01:203/128"),
            ("10.0.0.0/08", "10.0.0.0/8"),
        ] {
            assert_eq!(cidr(text).to_string(), printed, "{text}");
            assert_eq!(cidr(printed), cidr(text), "{text}");
        }
        assert_eq!(format!("{:?}", cidr("10.0.0.0/8")), "Cidr(10.0.0.0/8)");
        assert_eq!(cidr("0.0.0.0/0"), Cidr::ANY_V4);
        assert_eq!(cidr("::/0"), Cidr::ANY_V6);
        assert_eq!(cidr("2001:db8::/32").prefix_len(), 32);
        assert_eq!(cidr("2001:db8::/32").address(), ip("2001:db8::"));
    }

    #[test]
    fn cidr_refusals_say_why() {
        use CidrError::*;
        for (text, expected) in [
            ("", BadAddress),
            ("10.0.0", BadAddress),
            ("10.0.0.256/8", BadAddress),
            ("010.0.0.1", BadAddress),
            (" 10.0.0.1", BadAddress),
            ("fe80::1%eth0", BadAddress),
            ("2001:db8:::/32", BadAddress),
            ("localhost", BadAddress),
            ("10.0.0.0/", BadPrefix),
            ("10.0.0.0/+8", BadPrefix),
            ("10.0.0.0/-1", BadPrefix),
            ("10.0.0.0/8/8", BadPrefix),
            ("10.0.0.0/ 8", BadPrefix),
            ("10.0.0.0/1000", BadPrefix),
            (
                "10.0.0.0/33",
                PrefixTooLong {
                    prefix_len: 33,
                    max: 32,
                },
            ),
            (
                "10.0.0.0/999",
                PrefixTooLong {
                    prefix_len: 999,
                    max: 32,
                },
            ),
            (
                "::/129",
                PrefixTooLong {
                    prefix_len: 129,
                    max: 128,
                },
            ),
            (
                "::ffff:10.0.0.0/129",
                PrefixTooLong {
                    prefix_len: 129,
                    max: 128,
                },
            ),
            (
                "10.1.2.3/8",
                HostBitsSet {
                    network: cidr("10.0.0.0/8"),
                },
            ),
            (
                "0.0.0.1/0",
                HostBitsSet {
                    network: Cidr::ANY_V4,
                },
            ),
            (
                "2001:db8::1/32",
                HostBitsSet {
                    network: cidr("2001:db8::/32"),
                },
            ),
            (
                "::ffff:10.1.2.3/104",
                HostBitsSet {
                    network: cidr("10.0.0.0/8"),
                },
            ),
        ] {
            assert_eq!(Cidr::parse(text), Err(expected), "{text:?}");
        }
        let message = Cidr::parse("10.1.2.3/8").unwrap_err().to_string();
        assert!(message.contains("10.0.0.0/8"), "{message}");
        assert!(message.contains("/32"), "{message}");
        assert!(
            Cidr::parse("::/129")
                .unwrap_err()
                .to_string()
                .contains("128 bits")
        );
    }

    #[test]
    fn cidr_contains_v4_v6_and_mapped() {
        let ten = cidr("10.0.0.0/8");
        assert!(ten.contains(ip("10.0.0.0")));
        assert!(ten.contains(ip("10.255.255.255")));
        assert!(!ten.contains(ip("11.0.0.0")));
        assert!(!ten.contains(ip("9.255.255.255")));
        // IPv4-mapped peers are their IPv4 address.
        assert!(ten.contains(ip("::ffff:10.1.2.3")));
        assert!(!ten.contains(ip("::ffff:11.1.2.3")));
        // IPv4-compatible (deprecated) is plain IPv6, and v6 never matches v4.
        assert!(!ten.contains(ip("::10.1.2.3")));
        assert!(!ten.contains(ip("2001:db8::1")));

        let host = cidr("192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")));
        assert!(host.contains(ip("::ffff:192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.6")));
        assert!(!host.contains(ip("192.0.2.8")));

        assert!(Cidr::ANY_V4.contains(ip("0.0.0.0")));
        assert!(Cidr::ANY_V4.contains(ip("255.255.255.255")));
        assert!(Cidr::ANY_V4.contains(ip("::ffff:1.2.3.4")));
        assert!(!Cidr::ANY_V4.contains(ip("::1")));

        assert!(Cidr::ANY_V6.contains(ip("::")));
        assert!(Cidr::ANY_V6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(Cidr::ANY_V6.contains(ip("::10.1.2.3")));
        assert!(!Cidr::ANY_V6.contains(ip("::ffff:10.1.2.3")));
        assert!(!Cidr::ANY_V6.contains(ip("10.1.2.3")));

        let doc = cidr("2001:db8::/32");
        assert!(doc.contains(ip("2001:db8::")));
        assert!(doc.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!doc.contains(ip("2001:db9::")));
        assert!(!doc.contains(ip("2001:db7:ffff::")));

        let one = cidr("2001:db8::1/128");
        assert!(one.contains(ip("2001:db8::1")));
        assert!(!one.contains(ip("2001:db8::2")));
        assert!(!one.contains(ip("2001:db8::")));

        let half = cidr("128.0.0.0/1");
        assert!(half.contains(ip("128.0.0.0")) && half.contains(ip("255.0.0.1")));
        assert!(!half.contains(ip("127.255.255.255")));

        let mapped_wide = cidr("::fffe:0:0/95");
        assert!(!mapped_wide.contains(ip("10.1.2.3")));
        assert!(!mapped_wide.contains(ip("::ffff:10.1.2.3")));
        assert!(mapped_wide.contains(ip("::fffe:1:2")));
        // In IPv6 terms it covers ::ffff:0:0/96 too, but a mapped peer is an
        // IPv4 peer, and IPv6 networks never match those.
        assert!(!mapped_wide.contains(ip("::ffff:1:2")));
    }

    #[test]
    fn host_of_a_mapped_address_is_ipv4() {
        assert_eq!(Cidr::host(ip("::ffff:10.1.2.3")), cidr("10.1.2.3/32"));
        assert_eq!(Cidr::host(ip("::1")), cidr("::1/128"));
        assert_eq!(
            Cidr::new(ip("10.1.2.3"), 8),
            Err(CidrError::HostBitsSet {
                network: cidr("10.0.0.0/8")
            })
        );
        assert_eq!(
            Cidr::new(ip("10.0.0.0"), 200),
            Err(CidrError::PrefixTooLong {
                prefix_len: 200,
                max: 32
            })
        );
        assert_eq!(
            Cidr::new(ip("::ffff:10.0.0.0"), 255),
            Err(CidrError::PrefixTooLong {
                prefix_len: 255,
                max: 128
            })
        );
    }

    // ---- timestamps

    const DAY_NS: u64 = 86_400 * NS_PER_SEC;

    fn ts(text: &str) -> u64 {
        parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(ts("1970-01-01T00:00:00Z"), 0);
        assert_eq!(ts("1970-01-02T00:00:00Z"), DAY_NS);
        assert_eq!(ts("2000-03-01T00:00:00Z"), 951_868_800 * NS_PER_SEC);
        assert_eq!(ts("2026-11-23T00:00:00Z"), 1_795_392_000 * NS_PER_SEC);
        assert_eq!(ts("2038-01-19T03:14:07Z"), (i32::MAX as u64) * NS_PER_SEC);
        assert_eq!(ts("2554-07-21T23:34:33.709551615Z"), u64::MAX);
        // Leap days.
        assert_eq!(
            ts("2024-02-29T00:00:00Z") + DAY_NS,
            ts("2024-03-01T00:00:00Z")
        );
        assert_eq!(
            ts("2000-02-29T00:00:00Z") + DAY_NS,
            ts("2000-03-01T00:00:00Z")
        );
        assert_eq!(
            ts("2100-02-28T00:00:00Z") + DAY_NS,
            ts("2100-03-01T00:00:00Z")
        );
        assert_eq!(
            ts("2025-12-31T23:59:59Z") + NS_PER_SEC,
            ts("2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn rfc3339_fractions_offsets_and_case() {
        let base = ts("2026-11-23T00:00:00Z");
        assert_eq!(ts("2026-11-23T00:00:00.5Z"), base + 500_000_000);
        assert_eq!(ts("2026-11-23T00:00:00.000000001Z"), base + 1);
        assert_eq!(ts("2026-11-23T00:00:00.123456789Z"), base + 123_456_789);
        assert_eq!(ts("2026-11-23T00:00:00.120Z"), base + 120_000_000);
        assert_eq!(ts("2026-11-23T01:30:00+01:30"), base);
        assert_eq!(ts("2026-11-22T19:00:00-05:00"), base);
        assert_eq!(ts("2026-11-23T00:00:00+00:00"), base);
        assert_eq!(ts("2026-11-23T00:00:00-00:00"), base);
        assert_eq!(ts("2026-11-23T23:59:00+23:59"), base);
        assert_eq!(ts("2026-11-23t00:00:00z"), base);
        assert_eq!(ts("2026-11-23 00:00:00Z"), base);
        assert_eq!(ts("1970-01-01T01:00:00+01:00"), 0);
        assert_eq!(ts("1969-12-31T23:00:00-01:00"), 0);
        assert_eq!(
            ts("1969-12-31T23:59:59.999999999-01:00") + 1,
            3600 * NS_PER_SEC
        );
    }

    #[test]
    fn rfc3339_refusals() {
        use TimestampError::*;
        let format = |position, expected| Format { position, expected };
        let cases: [(&str, TimestampError); 31] = [
            ("", format(1, "a digit")),
            ("2026", format(5, "'-'")),
            ("2026-11-23", format(11, "'T'")),
            ("2026-11-23T00:00", format(17, "':'")),
            (
                "2026-11-23T00:00:00",
                format(20, "'Z', '+' or '-' (the UTC offset)"),
            ),
            ("2026-11-23T00:00:00.Z", format(21, "a digit")),
            (
                "2026-11-23T00:00:00ZZ",
                format(21, "the end (nothing may follow the offset)"),
            ),
            (
                "2026-11-23T00:00:00Z ",
                format(21, "the end (nothing may follow the offset)"),
            ),
            ("2026-11-23T00:00:00+0100", format(23, "':'")),
            ("2026-11-23T00:00:00+1", format(22, "a digit")),
            ("2026-1-23T00:00:00Z", format(7, "a digit")),
            ("26-11-23T00:00:00Z", format(3, "a digit")),
            ("+2026-11-23T00:00:00Z", format(1, "a digit")),
            (
                "2026-11-23T00:00:00UTC",
                format(20, "'Z', '+' or '-' (the UTC offset)"),
            ),
            ("2026-11-23T0é:00:00Z", format(13, "a digit")),
            (
                "2026-13-01T00:00:00Z",
                OutOfRange {
                    field: "month",
                    value: 13,
                },
            ),
            (
                "2026-00-01T00:00:00Z",
                OutOfRange {
                    field: "month",
                    value: 0,
                },
            ),
            (
                "2026-02-29T00:00:00Z",
                NoSuchDay {
                    year: 2026,
                    month: 2,
                    day: 29,
                },
            ),
            (
                "2100-02-29T00:00:00Z",
                NoSuchDay {
                    year: 2100,
                    month: 2,
                    day: 29,
                },
            ),
            (
                "2026-02-30T00:00:00Z",
                NoSuchDay {
                    year: 2026,
                    month: 2,
                    day: 30,
                },
            ),
            (
                "2026-04-31T00:00:00Z",
                NoSuchDay {
                    year: 2026,
                    month: 4,
                    day: 31,
                },
            ),
            (
                "2026-01-00T00:00:00Z",
                NoSuchDay {
                    year: 2026,
                    month: 1,
                    day: 0,
                },
            ),
            (
                "2026-11-23T24:00:00Z",
                OutOfRange {
                    field: "hour",
                    value: 24,
                },
            ),
            (
                "2026-11-23T00:60:00Z",
                OutOfRange {
                    field: "minute",
                    value: 60,
                },
            ),
            ("2026-12-31T23:59:60Z", LeapSecond),
            (
                "2026-12-31T23:59:61Z",
                OutOfRange {
                    field: "second",
                    value: 61,
                },
            ),
            (
                "2026-11-23T00:00:00+24:00",
                OutOfRange {
                    field: "offset hour",
                    value: 24,
                },
            ),
            (
                "2026-11-23T00:00:00-01:60",
                OutOfRange {
                    field: "offset minute",
                    value: 60,
                },
            ),
            (
                "2026-11-23T00:00:00.1234567890Z",
                FractionTooLong { digits: 10 },
            ),
            ("1969-12-31T23:59:59Z", BeforeEpoch),
            ("2554-07-21T23:34:33.709551616Z", AfterMax),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_rfc3339(text), Err(expected), "{text:?}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:59:59+01:00"), Err(BeforeEpoch));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59Z"), Err(AfterMax));
        assert_eq!(parse_rfc3339("0000-01-01T00:00:00Z"), Err(BeforeEpoch));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z").map(|_| ()), Ok(()));
        let message = parse_rfc3339("2026-02-30T00:00:00Z")
            .unwrap_err()
            .to_string();
        assert_eq!(message, "2026-02 has no day 30");
        let message = AfterMax.to_string();
        assert!(
            message.contains("2554-07-21T23:34:33.709551615Z"),
            "{message}"
        );
    }

    #[test]
    fn rfc3339_formats_and_round_trips() {
        assert_eq!(Rfc3339(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Rfc3339(1_795_392_000 * NS_PER_SEC).to_string(),
            "2026-11-23T00:00:00Z"
        );
        assert_eq!(Rfc3339(1).to_string(), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(Rfc3339(120_000_000).to_string(), "1970-01-01T00:00:00.12Z");
        assert_eq!(
            Rfc3339(u64::MAX).to_string(),
            "2554-07-21T23:34:33.709551615Z"
        );
        // Every day boundary for 600 years, and odd instants in between.
        let mut day: u64 = 0;
        while day * DAY_NS < u64::MAX - DAY_NS {
            for ns in [day * DAY_NS, day * DAY_NS + 3_723_000_000_007] {
                let text = Rfc3339(ns).to_string();
                assert_eq!(parse_rfc3339(&text), Ok(ns), "{text}");
            }
            day += 1;
        }
    }

    #[test]
    fn risk_and_disabled_map_to_wire_codes() {
        assert_eq!(RiskReject::MaxQty.reason(), RejectReason::RISK_MAX_QTY);
        assert_eq!(
            RiskReject::MaxNotional.reason(),
            RejectReason::RISK_MAX_NOTIONAL
        );
        for d in [
            KeyDisabled::Revoked,
            KeyDisabled::NotYetValid,
            KeyDisabled::Expired,
        ] {
            assert_eq!(d.reason(), LogonRejectReason::KEY_DISABLED);
            assert!(!d.to_string().is_empty() && !d.name().is_empty());
        }
        assert_eq!(
            order_notional(i64::MIN, u32::MAX),
            (1u128 << 63) * u128::from(u32::MAX)
        );
        assert_eq!(order_notional(-5, 3), 15);
        assert_eq!(order_notional(0, u32::MAX), 0);
        assert_eq!(KeyStatus::from_name("revoked"), Some(KeyStatus::Revoked));
        assert_eq!(KeyStatus::from_name("Active"), None);
        assert_eq!(KeyStatus::Active.name(), "active");
        assert_eq!(KeyStatus::default(), KeyStatus::Active);
    }
}
