//! The journal thread's fold of pre-auth events: refused logons and logon
//! timeouts (every kind for which [`AuditKind::is_pre_auth`] holds) become
//! one [`PreAuthAggregate`](AuditKind::PreAuthAggregate) record per source
//! prefix, kind and reason per window, never one record per connection.
//! Sans-I/O: the caller passes a monotonic `now_ns` and writes out what
//! [`Aggregator::drain`] hands it.
//!
//! ```text
//!  event (pre-auth) ──▶ key = (prefix(addr), kind, reason)
//!                         │
//!                         ├─ key in the table ────────────▶ count += 1, last = max(last, t)
//!                         ├─ room in the table ───────────▶ new entry (count 1)
//!                         └─ table full ──▶ key' = (::, kind, reason) in the overflow table
//!                                             ├─ present or room ─▶ fold there
//!                                             └─ full ─▶ caller drains both tables, folds again
//!
//!  every JOURNAL_AGGREGATE_WINDOW_NS after the first fold, at stop, and
//!  when the overflow table is full: drain → one record per entry, tables
//!  empty
//! ```
//!
//! The prefix is the address for IPv4 (/32) and its first 64 bits for IPv6
//! (/64, one subnet: what one host or site can use). So one window writes
//! at most `address_slots + overflow_slots` records whatever the number of
//! connections or addresses.

use super::event::{ADDR_NONE, AuditEvent, AuditKind};
use super::format::Extra;

/// The aggregation key of an address: IPv4 (mapped) as is, IPv6 cut to
/// its /64.
pub fn prefix(addr: [u8; 16]) -> [u8; 16] {
    let v4_mapped = addr[..10] == [0; 10] && addr[10..12] == [0xff, 0xff];
    if v4_mapped {
        return addr;
    }
    let mut p = addr;
    p[8..].fill(0);
    p
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    addr: [u8; 16],
    kind: AuditKind,
    reason: u16,
    count: u32,
    first_ns: u64,
    last_ns: u64,
    key_id: u64,
    /// Whether the events named different keys (then the record says 0).
    keys_differ: bool,
    /// The reactor of every event, or `REACTOR_NONE` once they differ.
    reactor: u16,
}

impl Entry {
    fn new(addr: [u8; 16], e: &AuditEvent) -> Entry {
        Entry {
            addr,
            kind: e.kind,
            reason: e.reason,
            count: 1,
            first_ns: e.time_ns,
            last_ns: e.time_ns,
            key_id: e.key_id,
            keys_differ: false,
            reactor: e.reactor,
        }
    }

    fn is(&self, addr: &[u8; 16], e: &AuditEvent) -> bool {
        self.kind == e.kind && self.reason == e.reason && self.addr == *addr
    }

    fn fold(&mut self, e: &AuditEvent) {
        self.count = self.count.saturating_add(1);
        self.first_ns = self.first_ns.min(e.time_ns);
        self.last_ns = self.last_ns.max(e.time_ns);
        if e.key_id != self.key_id {
            self.keys_differ = true;
        }
        if e.reactor != self.reactor {
            self.reactor = AuditEvent::REACTOR_NONE;
        }
    }

    fn record(&self) -> (AuditEvent, Extra) {
        let event = AuditEvent {
            time_ns: self.first_ns,
            key_id: if self.keys_differ { 0 } else { self.key_id },
            session: 0,
            addr: self.addr,
            detail: self.count,
            reason: self.reason,
            reactor: self.reactor,
            kind: AuditKind::PreAuthAggregate,
            request_time_ns: 0,
        };
        let extra = Extra {
            of_kind: self.kind.code(),
            last_ns: self.last_ns,
        };
        (event, extra)
    }
}

/// One table that never grows past its capacity (allocated once).
struct Table {
    entries: Vec<Entry>,
}

impl Table {
    fn new(slots: usize) -> Table {
        Table {
            entries: Vec::with_capacity(slots),
        }
    }

    /// Folds `e` under `addr`; false if the key is new and there is no
    /// room.
    fn fold(&mut self, addr: [u8; 16], e: &AuditEvent) -> bool {
        if let Some(entry) = self.entries.iter_mut().find(|x| x.is(&addr, e)) {
            entry.fold(e);
            return true;
        }
        if self.entries.len() == self.entries.capacity() {
            return false;
        }
        self.entries.push(Entry::new(addr, e));
        true
    }
}

/// What a fold did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Folded {
    /// Into its address's aggregate.
    Address,
    /// The address table was full: into the "other addresses" aggregate of
    /// its kind and reason.
    Overflow,
    /// Neither table had room: nothing folded. Drain, then fold again.
    Full,
}

/// The aggregation tables of the journal thread.
pub struct Aggregator {
    addresses: Table,
    overflow: Table,
    window_ns: u64,
    /// `now_ns` of the first fold since the last drain.
    since: Option<u64>,
}

impl Aggregator {
    /// Tables of `address_slots` and `overflow_slots` entries (allocated
    /// here, never again), written out every `window_ns`.
    pub fn new(address_slots: usize, overflow_slots: usize, window_ns: u64) -> Aggregator {
        assert!(address_slots >= 1 && overflow_slots >= 1);
        Aggregator {
            addresses: Table::new(address_slots),
            overflow: Table::new(overflow_slots),
            window_ns,
            since: None,
        }
    }

    /// Folds the pre-auth event `e` at monotonic time `now_ns`.
    pub fn fold(&mut self, e: &AuditEvent, now_ns: u64) -> Folded {
        debug_assert!(e.kind.is_pre_auth(), "{:?} is not pre-auth", e.kind);
        let folded = if self.addresses.fold(prefix(e.addr), e) {
            Folded::Address
        } else if self.overflow.fold(ADDR_NONE, e) {
            Folded::Overflow
        } else {
            return Folded::Full;
        };
        self.since.get_or_insert(now_ns);
        folded
    }

    /// Whether the window that began with the first fold has passed.
    pub fn due(&self, now_ns: u64) -> bool {
        self.since
            .is_some_and(|since| now_ns.saturating_sub(since) >= self.window_ns)
    }

    pub fn is_empty(&self) -> bool {
        self.since.is_none()
    }

    /// Hands out every aggregate (address entries first, each table in the
    /// order its keys first appeared) as the record to append, and empties
    /// the tables; the next fold opens a new window.
    pub fn drain(&mut self, mut f: impl FnMut(AuditEvent, Extra)) {
        for entry in self.addresses.entries.drain(..) {
            let (event, extra) = entry.record();
            f(event, extra);
        }
        for entry in self.overflow.entries.drain(..) {
            let (event, extra) = entry.record();
            f(event, extra);
        }
        self.since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SessionId;
    use crate::journal::event::from_ip;
    use crate::wire::codes::LogonRejectReason as LR;

    fn rejected(t: u64, addr: &str, key: u64, reactor: u16, reason: LR) -> AuditEvent {
        let s = SessionId::new(reactor, t as u16, 1);
        AuditEvent::logon_rejected(t, s, key, from_ip(addr.parse().unwrap()), reason)
    }

    fn drained(a: &mut Aggregator) -> Vec<(AuditEvent, Extra)> {
        let mut out = Vec::new();
        a.drain(|e, x| out.push((e, x)));
        out
    }

    #[test]
    fn prefixes_are_ipv4_addresses_and_ipv6_subnets() {
        let v4 = from_ip("10.1.2.3".parse().unwrap());
        assert_eq!(prefix(v4), v4);
        let a = from_ip("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = from_ip("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(prefix(a), prefix(b));
        assert_eq!(prefix(a), from_ip("2001:db8:1:2::".parse().unwrap()));
        assert_ne!(
            prefix(a),
            prefix(from_ip("2001:db8:1:3::1".parse().unwrap()))
        );
    }

    #[test]
    fn one_address_and_reason_is_one_record_with_count_and_times() {
        let mut a = Aggregator::new(4, 2, 1_000);
        assert!(a.is_empty() && !a.due(10_000));
        for t in 0..1000u64 {
            // Two reactors, times not in order across them.
            let time = if t % 2 == 0 { 500 + t } else { 500 - t / 2 };
            let f = a.fold(
                &rejected(time, "10.0.0.1", 7, (t % 2) as u16, LR::MALFORMED),
                5,
            );
            assert_eq!(f, Folded::Address);
        }
        assert!(!a.due(1_004) && a.due(1_005));
        let out = drained(&mut a);
        assert_eq!(out.len(), 1);
        let (e, x) = out[0];
        assert_eq!(e.kind, AuditKind::PreAuthAggregate);
        assert_eq!(
            (e.detail, e.reason, e.key_id),
            (1000, LR::MALFORMED.wire(), 7)
        );
        assert_eq!(e.reactor, AuditEvent::REACTOR_NONE, "two reactors");
        assert_eq!((e.time_ns, x.last_ns), (1, 1498));
        assert_eq!(x.of_kind, AuditKind::LogonRejected.code());
        assert_eq!(e.addr, from_ip("10.0.0.1".parse().unwrap()));
        assert!(a.is_empty());
    }

    #[test]
    fn keys_differ_reasons_and_kinds_split() {
        let mut a = Aggregator::new(8, 2, 1_000);
        a.fold(&rejected(1, "10.0.0.1", 7, 0, LR::AUTH_FAILED), 0);
        a.fold(&rejected(2, "10.0.0.1", 8, 0, LR::AUTH_FAILED), 0);
        a.fold(&rejected(3, "10.0.0.1", 7, 0, LR::MALFORMED), 0);
        let timeout = AuditEvent::logon_timeout(
            4,
            SessionId::new(0, 1, 1),
            from_ip("10.0.0.1".parse().unwrap()),
        );
        a.fold(&timeout, 0);
        let out = drained(&mut a);
        assert_eq!(out.len(), 3);
        assert_eq!((out[0].0.detail, out[0].0.key_id), (2, 0), "keys differ");
        assert_eq!((out[1].0.detail, out[1].0.key_id), (1, 7));
        assert_eq!(out[2].1.of_kind, AuditKind::LogonTimeout.code());
        assert_eq!(out[2].0.reactor, 0);
    }

    #[test]
    fn many_addresses_fill_the_table_then_fold_into_other_addresses() {
        let mut a = Aggregator::new(4, 1, 1_000);
        let mut folded = Vec::new();
        for i in 0..100u64 {
            let addr = format!("10.0.{}.{}", i / 256, i % 256);
            folded.push(a.fold(&rejected(i, &addr, 0, 0, LR::MALFORMED), 0));
        }
        assert!(folded[..4].iter().all(|f| *f == Folded::Address));
        assert!(folded[4..].iter().all(|f| *f == Folded::Overflow));
        // Another reason does not fit the one overflow slot: drain first.
        assert_eq!(
            a.fold(&rejected(1, "10.9.9.9", 0, 0, LR::AUTH_FAILED), 0),
            Folded::Full
        );
        let out = drained(&mut a);
        assert_eq!(out.len(), 5, "4 addresses + other addresses");
        assert_eq!(out[4].0.addr, ADDR_NONE);
        assert_eq!(out.iter().map(|(e, _)| e.detail).sum::<u32>(), 100);
        assert_eq!(
            a.fold(&rejected(1, "10.9.9.9", 0, 0, LR::AUTH_FAILED), 0),
            Folded::Address
        );
    }
}
