//! The tests' one set of fixtures. Here: a sans-I/O harness (one gateway
//! session and one client, pumped by hand on a virtual clock; no sockets)
//! and the one unthrottled test key every test builds its keys from
//! ([`unthrottled_key`]). `net`: the loopback harness (a gateway in
//! process, clients from a chosen 127.0.0.x). `serve`: the `ordergate`
//! binary (temp directories, keys files, `serve` processes).
#![allow(dead_code)]

pub mod net;
pub mod serve;

use std::net::IpAddr;

use ordergate::auth::keys::{BURST_MAX, KeyEntry, KeyTable, MSGS_PER_SEC_MAX};
use ordergate::auth::secret::Secret;
use ordergate::client::{ClientSession, FrameReader};
use ordergate::engine::{Command, SessionId};
use ordergate::session::{Counters, GatewayConfig, Io, Session, Shared};
use ordergate::wire::codes::{Environment, Scopes};
use ordergate::wire::{self, GatewayFrame};

pub const T0: u64 = 1_764_000_000_000_000_000;
pub const MS: u64 = 1_000_000;
pub const SEC: u64 = 1_000_000_000;
pub const SECRET: [u8; 32] = [0x42; 32];
pub const KEY_TRADER: u64 = 1001;
pub const KEY_CANCEL_ONLY: u64 = 1002;
pub const KEY_SANDBOX: u64 = 1003;
pub const KEY_SLOW: u64 = 1004;

/// The unthrottled test key, the one every test builds its keys from:
/// `id` signing with `secret`, trade and cancel, production, from any
/// address, at the largest rate and burst a key may have
/// (`MSGS_PER_SEC_MAX`, `BURST_MAX`), so that no test's traffic is
/// throttled by its key. A test wanting another key changes a field of it
/// (`scopes`, `max_sessions`, a risk limit) or chains a builder
/// (`with_rate`, `with_secret_next`, `with_allow`).
pub fn unthrottled_key(id: u64, secret: [u8; 32]) -> KeyEntry {
    unthrottled_key_for(
        id,
        secret,
        Scopes::TRADE.union(Scopes::CANCEL),
        Environment::Production,
    )
}

/// [`unthrottled_key`] with these scopes, in this environment.
pub fn unthrottled_key_for(
    id: u64,
    secret: [u8; 32],
    scopes: Scopes,
    environment: Environment,
) -> KeyEntry {
    KeyEntry::new(id, Secret::from_bytes(secret), scopes, environment)
        .with_rate(MSGS_PER_SEC_MAX, BURST_MAX)
        .allow_any()
}

/// A trader, a cancel-only key, a sandbox key (each unthrottled) and a
/// slow key (10 messages a second, burst 4), all signing with `secret`.
pub fn four_keys(ids: [u64; 4], secret: [u8; 32]) -> KeyTable {
    let [trader, cancel_only, sandbox, slow] = ids;
    let trade_cancel = Scopes::TRADE.union(Scopes::CANCEL);
    KeyTable::from_entries(vec![
        unthrottled_key(trader, secret),
        unthrottled_key_for(cancel_only, secret, Scopes::CANCEL, Environment::Production),
        unthrottled_key_for(sandbox, secret, trade_cancel, Environment::Sandbox),
        unthrottled_key(slow, secret).with_rate(10, 4),
    ])
    .unwrap()
}

pub fn keys() -> KeyTable {
    four_keys([KEY_TRADER, KEY_CANCEL_ONLY, KEY_SANDBOX, KEY_SLOW], SECRET)
}

pub fn shared_with(config: GatewayConfig) -> Shared {
    Shared::new(config, keys(), [7; 32])
}

pub fn shared() -> Shared {
    let config = GatewayConfig {
        session_msgs_per_sec: 1_000_000,
        session_burst: 1_000_000,
        ..GatewayConfig::default()
    };
    shared_with(config)
}

pub struct Pair<'s> {
    pub shared: &'s Shared,
    pub keys: std::sync::Arc<ordergate::session::KeySet>,
    pub session: Session,
    pub client: ClientSession,
    pub commands: Vec<Command>,
    pub counters: Counters,
    pub audit: ordergate::session::Audit,
    pub now: u64,
    reader: FrameReader,
    nonce: u8,
}

impl<'s> Pair<'s> {
    pub fn new(shared: &'s Shared, key_id: u64, ring_capacity: usize) -> Pair<'s> {
        Pair::with_peer(shared, key_id, ring_capacity, "192.0.2.10".parse().unwrap())
    }

    pub fn with_peer(shared: &'s Shared, key_id: u64, ring: usize, peer: IpAddr) -> Pair<'s> {
        Pair::at(shared, key_id, ring, peer, T0)
    }

    /// A connection accepted at `now`.
    pub fn at(shared: &'s Shared, key_id: u64, ring: usize, peer: IpAddr, now: u64) -> Pair<'s> {
        let mut session = Session::new_slot();
        session.open(SessionId::new(0, 1, 1), peer, now, shared);
        Pair {
            keys: shared.key_set(),
            shared,
            session,
            client: ClientSession::new(key_id, SECRET),
            commands: Vec::with_capacity(ring),
            counters: Counters::default(),
            audit: ordergate::session::Audit::disabled(),
            now,
            reader: FrameReader::new(1 << 20),
            nonce: 0,
        }
    }

    /// Runs `f` on the session with an `Io` over this pair's state.
    fn drive<R>(&mut self, f: impl FnOnce(&mut Session, &mut Io<'_, Vec<Command>>) -> R) -> R {
        let mut io = Io {
            now: self.now,
            shared: self.shared,
            keys: &self.keys,
            commands: &mut self.commands,
            counters: &mut self.counters,
            audit: &mut self.audit,
        };
        f(&mut self.session, &mut io)
    }

    /// Offers `bytes` to the session; returns how many it took (fewer only
    /// when it paused for back-pressure).
    pub fn send(&mut self, bytes: &[u8]) -> usize {
        self.drive(|s, io| s.handle_bytes(io, bytes))
    }

    pub fn event(&mut self, e: &ordergate::engine::Event) {
        self.drive(|s, io| s.handle_event(io, e));
    }

    pub fn tick(&mut self) {
        self.drive(|s, io| s.handle_timeout(io));
    }

    pub fn transport_closed(&mut self) {
        self.drive(|s, io| s.on_transport_closed(io));
    }

    /// The reactor ends the session (shutdown, revocation).
    pub fn terminate(&mut self, reason: ordergate::wire::codes::TerminateReason) {
        self.drive(|s, io| s.terminate(io, reason));
    }

    /// Every frame the gateway queued, raw.
    pub fn raw_frames(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.session.tx_mut().take_all(&mut out);
        self.reader.push(&out);
        let mut frames = Vec::new();
        while let Some(f) = self.reader.next_frame() {
            frames.push(f.expect("gateway frames are well-formed").to_vec());
        }
        frames
    }

    /// Every frame the gateway queued, checked by the client, as owned
    /// (template id, bytes).
    pub fn frames(&mut self) -> Vec<Vec<u8>> {
        let frames = self.raw_frames();
        for f in &frames {
            self.client
                .receive(f)
                .expect("the client accepts every gateway frame");
        }
        frames
    }

    /// A nonce never used before in this test process.
    pub fn next_nonce(&mut self) -> [u8; 16] {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.nonce = self.nonce.wrapping_add(1);
        let mut n = [0u8; 16];
        n[..8].copy_from_slice(
            &NEXT
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_le_bytes(),
        );
        n
    }

    pub fn logon_frame(&mut self, keepalive_ms: u16, env: u8, flags: u8) -> [u8; 80] {
        let nonce = self.next_nonce();
        self.client.logon(self.now, nonce, keepalive_ms, env, flags)
    }

    /// Logs on and returns the LogonAck bytes.
    pub fn logon(&mut self, flags: u8) -> Vec<u8> {
        let f = self.logon_frame(1000, 1, flags);
        self.send(&f);
        let frames = self.frames();
        assert_eq!(frames.len(), 1);
        assert_eq!(
            template(&frames[0]),
            wire::LogonAck::TEMPLATE_ID,
            "logon accepted"
        );
        frames[0].clone()
    }

    pub fn new_order(
        &mut self,
        cl_ord_id: u64,
        price: i64,
        qty: u32,
        side: u8,
        tif: u8,
    ) -> [u8; 64] {
        self.client
            .seal(new_order_frame(cl_ord_id, price, qty, side, tif))
    }

    pub fn cancel(&mut self, cl_ord_id: u64, orig: u64) -> [u8; 60] {
        self.client.seal(
            wire::CancelOrder {
                seq: 0,
                cl_ord_id,
                orig_cl_ord_id: orig,
                instrument_id: 1,
            }
            .to_bytes(),
        )
    }
}

pub fn template(frame: &[u8]) -> u16 {
    u16::from_le_bytes([frame[6], frame[7]])
}

/// The LogonReject reason of a single-frame reply.
pub fn logon_reject_reason(frames: &[Vec<u8>]) -> u16 {
    assert_eq!(frames.len(), 1, "one reply");
    match wire::decode_gateway(&frames[0]).unwrap() {
        GatewayFrame::LogonReject(r) => r.reason(),
        other => panic!("expected LogonReject, got {other:?}"),
    }
}

pub fn terminate_reason(frame: &[u8]) -> u16 {
    match wire::decode_gateway(frame).unwrap() {
        GatewayFrame::Terminate(t) => t.reason(),
        other => panic!("expected Terminate, got {other:?}"),
    }
}

pub fn rejected(frame: &[u8]) -> (u64, u16, u64) {
    match wire::decode_gateway(frame).unwrap() {
        GatewayFrame::OrderRejected(r) => (r.cl_ord_id(), r.reason(), r.retry_after_ns()),
        other => panic!("expected OrderRejected, got {other:?}"),
    }
}

/// An unsealed limit NewOrder on instrument 1 (seq 0, no tag): both
/// harnesses seal it with their client session.
pub fn new_order_frame(cl_ord_id: u64, price: i64, qty: u32, side: u8, tif: u8) -> [u8; 64] {
    wire::NewOrder {
        seq: 0,
        cl_ord_id,
        price,
        qty,
        instrument_id: 1,
        side,
        ord_type: 1,
        tif,
    }
    .to_bytes()
}
