//! Zero allocation after start-up, proven with a counting global allocator.
//!
//! After the key table, the session slab, the rings and the engine are built,
//! 10,000 of every client message type (Logon, Heartbeat, Logout, NewOrder,
//! CancelOrder, ReplaceOrder, MassCancel) go through the whole path — frame
//! reassembly, decode, tag check, rate limits, command ring, engine (with
//! its price collar and the key's notional and open-notional limits, and a
//! price-0 order refused PRICE_OUT_OF_BAND), event ring, reply encoding, tag
//! sealing — and the clients check every reply's tag and sequence. The
//! allocation count must not move. A connection is admitted, logged on,
//! logged out and released every round too, through the reactor's admission
//! policy, and the reactor answers an `admin sessions` question.
//!
//! A second test runs a session against a 64-slot command ring that it
//! fills faster than the engine drains it, with heartbeats beyond its
//! allowance: the heartbeat allowance (admitted and throttled), the command
//! ring's cancel reserve (a new order refused ENGINE_BUSY, a cancel and a
//! mass cancel let through) and the engine's paused steps allocate nothing
//! either.
//!
//! The engine agent runs on the test's thread, as it does on a small host
//! where it shares a reactor's thread (still through the rings), so a
//! thread-local count sees every allocation of the path and no other test's.

mod common;

use std::sync::Arc;

use ordergate::auth::keys::KeyTable;
use ordergate::client::{ClientSession, FrameReader};
use ordergate::engine::agent::EngineAgent;
use ordergate::engine::book::{EngineConfig, MatchingEngine};
use ordergate::engine::{Command, Event, SessionId};
use ordergate::link::shm_ring::{ShmLink, ShmParams, ShmRegion};
use ordergate::link::{CommandRx, CommandTx, EngineWatch, EventRx, EventTx};
use ordergate::reactor::core::{Admission, ReactorCore};
use ordergate::ring;
use ordergate::session::{GatewayConfig, Shared};
use ordergate::wire::codes::RejectReason;
use ordergate::wire::{self, GatewayFrame};
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

const SECRET: [u8; 32] = [0x5A; 32];
const T0: u64 = 1_764_000_000_000_000_000;
const MS: u64 = 1_000_000;
const ROUNDS: u64 = 10_000;

/// One client connection: the client state, its reader, reply counts by
/// template id and OrderRejected counts by reason.
struct Peer {
    id: SessionId,
    client: ClientSession,
    reader: FrameReader,
    replies: [u64; 32],
    rejects: [u64; 16],
}

impl Peer {
    fn new(id: SessionId) -> Peer {
        Peer {
            id,
            client: ClientSession::new(1, SECRET),
            reader: FrameReader::new(1 << 16),
            replies: [0; 32],
            rejects: [0; 16],
        }
    }
}

struct Rig {
    core: ReactorCore,
    agent: EngineAgent<MatchingEngine>,
    /// The engine process's liveness watch, on the shared-memory link.
    watch: Option<EngineWatch>,
    now: u64,
}

impl Rig {
    /// Moves everything one step: the engine takes commands, the reactor
    /// takes events, and each peer reads and checks what it was sent.
    fn pump(&mut self, peers: &mut [&mut Peer]) {
        loop {
            if let Some(watch) = &mut self.watch {
                assert!(
                    !watch.poll(self.now),
                    "both sides beat: neither judged dead"
                );
            }
            self.core.poll_link(self.now, self.now);
            let work = self.agent.do_work(self.now) + self.core.poll_events(self.now);
            if work == 0 {
                break;
            }
        }
        for peer in peers.iter_mut() {
            let Some(session) = self.core.session_mut(peer.id) else {
                continue;
            };
            let tx = session.tx_mut();
            let bytes = tx.begin_send();
            let n = bytes.len();
            peer.reader.push(bytes);
            tx.complete_send(n);
            while let Some(frame) = peer.reader.next_frame() {
                let frame = frame.expect("well-formed");
                let template = match peer.client.receive(frame).expect("tag and seq check") {
                    GatewayFrame::LogonAck(_) => wire::LogonAck::TEMPLATE_ID,
                    GatewayFrame::LogonReject(r) => panic!("logon rejected {}", r.reason()),
                    GatewayFrame::OrderRejected(r) => {
                        peer.rejects[r.reason() as usize] += 1;
                        wire::OrderRejected::TEMPLATE_ID
                    }
                    GatewayFrame::Heartbeat(_) => wire::Heartbeat::TEMPLATE_ID,
                    GatewayFrame::Terminate(_) => wire::Terminate::TEMPLATE_ID,
                    GatewayFrame::OrderAccepted(_) => wire::OrderAccepted::TEMPLATE_ID,
                    GatewayFrame::OrderCanceled(_) => wire::OrderCanceled::TEMPLATE_ID,
                    GatewayFrame::OrderReplaced(_) => wire::OrderReplaced::TEMPLATE_ID,
                    GatewayFrame::Fill(_) => wire::Fill::TEMPLATE_ID,
                    GatewayFrame::MassCancelAck(_) => wire::MassCancelAck::TEMPLATE_ID,
                };
                peer.replies[template as usize] += 1;
            }
        }
    }

    fn send(&mut self, peer: &mut Peer, frame: &[u8]) {
        self.core.on_bytes(peer.id, self.now, frame);
        self.pump(&mut [peer]);
    }

    fn logon(&mut self, peer: &mut Peer, nonce_seed: u64, flags: u8) {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&nonce_seed.to_le_bytes());
        let f = peer.client.logon(self.now, nonce, 1000, 1, flags);
        self.send(peer, &f);
        assert!(peer.client.is_logged_on());
    }
}

fn start() -> Rig {
    start_with_ring(1024)
}

/// A rig whose command and event rings have `ring` slots.
fn start_with_ring(ring: usize) -> Rig {
    start_with(ring, ordergate::limits::FloorBook::new())
}

/// A rig with `ring` slots and the logon replay floors `floors`.
fn start_with(ring: usize, floors: ordergate::limits::FloorBook) -> Rig {
    start_linked(ring, floors, false)
}

/// [`start_with`], over the shared-memory engine link if `shm`.
fn start_linked(ring: usize, floors: ordergate::limits::FloorBook, shm: bool) -> Rig {
    let mut key = common::unthrottled_key(1, SECRET);
    // Engine-side limits for the key, so every order is risk-checked.
    key.max_order_notional = std::num::NonZeroU64::new(1_000_000);
    key.max_open_notional = std::num::NonZeroU64::new(1_000_000);
    let keys = KeyTable::from_entries(vec![key]).unwrap();
    // A logon every 10 virtual ms for 100 s: the logon rates must allow it
    // (the checks still run, and are measured).
    let config = GatewayConfig {
        session_msgs_per_sec: 10_000_000,
        session_burst: 1_000_000,
        logon_rate_per_key: 1000,
        logon_rate_per_address: 1000,
        ..GatewayConfig::default()
    };
    let shared = Arc::new(Shared::with_logon_floors(config, keys, [9; 32], floors));
    let limits = shared.limits.clone();
    let engine = MatchingEngine::new(EngineConfig {
        orders_max: 4096,
        ..EngineConfig::default()
    });
    if shm {
        // The shared-memory link over a heap region: the gateway's and the
        // engine process's ends on this thread, liveness included.
        let params = ShmParams {
            capacity: ring,
            pairs: 1,
            gateway_id: 0,
            cod_slots: 8,
        };
        let link = ShmLink::create(ShmRegion::heap(params.file_size()), params).unwrap();
        link.attach(1).unwrap();
        let timeout = ordergate::constants::ENGINE_LIVENESS_TIMEOUT_NS;
        let core = ReactorCore::new(
            0,
            shared,
            8,
            CommandTx::shm(&link, 0),
            EventRx::shm(&link, 0, timeout),
        );
        let agent = EngineAgent::linked(
            engine,
            vec![CommandRx::shm(&link, 0)],
            vec![EventTx::shm(&link, 0)],
        )
        .with_limits(limits);
        return Rig {
            core,
            agent,
            watch: Some(EngineWatch::new(&link, 0, timeout)),
            now: T0,
        };
    }
    let (command_tx, command_rx) = ring::channel::<Command>(ring);
    let (event_tx, event_rx) = ring::channel::<Event>(ring);
    let core = ReactorCore::new(0, shared, 8, command_tx, event_rx);
    let agent = EngineAgent::new(engine, vec![command_rx], vec![event_tx]).with_limits(limits);
    Rig {
        core,
        agent,
        watch: None,
        now: T0,
    }
}

#[test]
fn ten_thousand_of_every_client_message_allocate_nothing_after_start_up() {
    every_message_allocates_nothing(start());
}

/// The same path with the engine behind the shared-memory link (issue 14):
/// records cross as checked words, both sides beat and watch each other,
/// and still nothing is allocated.
#[test]
fn the_same_over_the_shared_memory_engine_link_allocates_nothing() {
    every_message_allocates_nothing(start_linked(
        1024,
        ordergate::limits::FloorBook::new(),
        true,
    ));
}

fn every_message_allocates_nothing(mut rig: Rig) {
    let peer_addr = "127.0.0.1".parse().unwrap();
    // Peer structs (their readers) are client-side start-up.
    let a_id = rig.core.accept(rig.now, peer_addr).unwrap();
    let b_id = rig.core.accept(rig.now, peer_addr).unwrap();
    let mut a = Peer::new(a_id);
    let mut b = Peer::new(b_id);
    let mut c = Peer::new(SessionId(0));

    let before = allocations();

    rig.logon(&mut a, u64::MAX, 0);
    rig.logon(&mut b, u64::MAX - 1, 1);
    for i in 0..ROUNDS {
        // Ten virtual milliseconds a round keeps the nonce cache sparse and
        // the session alive; A's and B's heartbeats, one a round, mostly go
        // beyond their allowance (4 a second) and are throttled (each round's
        // admitted order ends the run).
        rig.now += 10 * MS;
        let buy = i * 3 + 1;
        let f = a.client.seal(
            wire::NewOrder {
                seq: 0,
                cl_ord_id: buy,
                price: 100,
                qty: 2,
                instrument_id: 1,
                side: 1,
                ord_type: 1,
                tif: 0,
            }
            .to_bytes(),
        );
        rig.send(&mut a, &f);
        // B sells 1 IOC into it: a Fill to each side.
        let f = b.client.seal(
            wire::NewOrder {
                seq: 0,
                cl_ord_id: i + 1,
                price: 100,
                qty: 1,
                instrument_id: 1,
                side: 2,
                ord_type: 1,
                tif: 3,
            }
            .to_bytes(),
        );
        rig.core.on_bytes(b.id, rig.now, &f);
        rig.pump(&mut [&mut a, &mut b]);
        // B sells at 0: refused PRICE_OUT_OF_BAND by the engine.
        let f = b.client.seal(
            wire::NewOrder {
                seq: 0,
                cl_ord_id: i + 1,
                price: 0,
                qty: 1,
                instrument_id: 1,
                side: 2,
                ord_type: 1,
                tif: 3,
            }
            .to_bytes(),
        );
        rig.send(&mut b, &f);
        let f = a.client.seal(
            wire::ReplaceOrder {
                seq: 0,
                cl_ord_id: buy + 1,
                orig_cl_ord_id: buy,
                price: 100,
                qty: 3,
                instrument_id: 1,
            }
            .to_bytes(),
        );
        rig.send(&mut a, &f);
        let f = a.client.seal(
            wire::CancelOrder {
                seq: 0,
                cl_ord_id: buy + 2,
                orig_cl_ord_id: buy + 1,
                instrument_id: 1,
            }
            .to_bytes(),
        );
        rig.send(&mut a, &f);
        let f = b.client.seal(
            wire::MassCancel {
                seq: 0,
                cl_ord_id: i + 1,
                instrument_id: 0,
                side: 0,
            }
            .to_bytes(),
        );
        rig.send(&mut b, &f);
        let f = a.client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
        rig.send(&mut a, &f);
        let f = b.client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
        rig.send(&mut b, &f);

        // C: a whole connection — admission (the per-address count and the
        // pending list), Logon, Logout, close, release.
        c.id = match rig.core.admit(rig.now, peer_addr, 3) {
            Admission::Open(id) => id,
            other => panic!("{other:?}"),
        };
        assert_eq!(rig.core.pending_for(peer_addr), 1);
        c.client = ClientSession::new(1, SECRET);
        rig.logon(&mut c, i, 1);
        assert_eq!(rig.core.pending_for(peer_addr), 0);
        let f = c.client.seal(wire::Logout { seq: 0, reason: 0 }.to_bytes());
        rig.send(&mut c, &f);
        assert!(rig.core.session(c.id).unwrap().wants_close());
        rig.core.on_closed(c.id, rig.now);
        rig.pump(&mut [&mut c]); // the cancel-on-disconnect goes through the engine
        assert!(rig.core.release(c.id));
        rig.core.run_timers(rig.now);
        // An `admin sessions` question, answered at the reactor's tick.
        let asked = rig.core.shared().listing.ask();
        rig.core.answer_listing();
        assert!(rig.core.shared().listing.answered(1, asked));
    }

    let allocated = allocations() - before;
    // The last answer: A and B (C has gone), four messages a round each,
    // every order of theirs filled or canceled.
    let shared = rig.core.shared().clone();
    let asked = shared.listing.ask();
    rig.core.answer_listing();
    let (rows, silent) = shared.listing.collect(1, asked);
    assert!(silent.is_empty());
    let seen: Vec<(SessionId, u64, u32)> = rows
        .iter()
        .map(|r| (r.session, r.msgs_in, r.open_orders))
        .collect();
    assert_eq!(seen, [(a.id, 4 * ROUNDS, 0), (b.id, 4 * ROUNDS, 0)]);

    use wire::*;
    let t = |id: u16| id as usize;
    assert_eq!(a.replies[t(OrderAccepted::TEMPLATE_ID)], ROUNDS);
    assert_eq!(a.replies[t(Fill::TEMPLATE_ID)], ROUNDS);
    assert_eq!(a.replies[t(OrderReplaced::TEMPLATE_ID)], ROUNDS);
    assert_eq!(a.replies[t(OrderCanceled::TEMPLATE_ID)], ROUNDS);
    assert_eq!(b.replies[t(OrderAccepted::TEMPLATE_ID)], ROUNDS);
    assert_eq!(b.replies[t(Fill::TEMPLATE_ID)], ROUNDS);
    assert_eq!(b.replies[t(MassCancelAck::TEMPLATE_ID)], ROUNDS);
    assert_eq!(b.replies[t(OrderRejected::TEMPLATE_ID)], ROUNDS);
    assert_eq!(
        rig.agent.counters.price_rejects, ROUNDS,
        "every price-0 order was refused by the collar"
    );
    assert_eq!(rig.agent.counters.limits_installed, 1);
    assert_eq!(c.replies[t(LogonAck::TEMPLATE_ID)], ROUNDS);
    assert_eq!(c.replies[t(Terminate::TEMPLATE_ID)], ROUNDS);
    let counters = &rig.core.counters;
    assert_eq!(counters.logons_accepted, ROUNDS + 2);
    // 8 messages a round from A and B, 1 Logout from C.
    assert_eq!(counters.messages_in, ROUNDS * 9);
    assert_eq!(counters.ring_full, 0);
    // Each of A and B: a burst of 8 (10..80 ms), then one every 250 ms from
    // 260 ms on (26 + 25j <= 10,000: 399 of them) are admitted.
    assert_eq!(counters.heartbeats_throttled, 2 * (ROUNDS - 8 - 399));
    // Only B's price-0 sells are ever refused, PRICE_OUT_OF_BAND.
    let mut price_only = [0; 16];
    price_only[RejectReason::PRICE_OUT_OF_BAND.wire() as usize] = ROUNDS;
    assert_eq!(a.rejects, [0; 16], "no request of A refused");
    assert_eq!(b.rejects, price_only, "B: only the price-0 sells refused");
    assert_eq!(c.rejects, [0; 16], "no request of C refused");
    assert_eq!(
        allocated, 0,
        "the message path allocated {allocated} times after start-up"
    );
}

#[test]
fn heartbeats_beyond_the_allowance_and_the_cancel_reserve_allocate_nothing() {
    const RING: usize = 64; // cancel reserve 8: new orders get 56 slots
    const FITS: u64 = 56;
    let mut rig = start_with_ring(RING);
    let id = rig
        .core
        .accept(rig.now, "127.0.0.1".parse().unwrap())
        .unwrap();
    let mut d = Peer::new(id);

    let before = allocations();

    rig.logon(&mut d, 7, 0); // keepalive 1 s: 4 heartbeats a second, burst 8
    for _ in 0..8 {
        let f = d.client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
        rig.core.on_bytes(d.id, rig.now, &f);
    }
    let rounds = ROUNDS / 10;
    let mut next_id = 1u64;
    for _ in 0..rounds {
        // The burst is spent; one second a round refills four heartbeats,
        // and the fifth is throttled.
        rig.now += 1000 * MS;
        for _ in 0..5 {
            let f = d.client.seal(wire::Heartbeat { seq: 0 }.to_bytes());
            rig.core.on_bytes(d.id, rig.now, &f);
        }
        // Faster than the engine drains: 56 orders take all but the
        // reserve, the 57th is refused, a cancel and a mass cancel use it.
        let first = next_id;
        for _ in 0..=FITS {
            let f = d.client.seal(
                wire::NewOrder {
                    seq: 0,
                    cl_ord_id: next_id,
                    price: 100,
                    qty: 1,
                    instrument_id: 1,
                    side: 1,
                    ord_type: 1,
                    tif: 0,
                }
                .to_bytes(),
            );
            rig.core.on_bytes(d.id, rig.now, &f);
            next_id += 1;
        }
        let f = d.client.seal(
            wire::CancelOrder {
                seq: 0,
                cl_ord_id: next_id,
                orig_cl_ord_id: first,
                instrument_id: 1,
            }
            .to_bytes(),
        );
        rig.core.on_bytes(d.id, rig.now, &f);
        next_id += 1;
        let f = d.client.seal(
            wire::MassCancel {
                seq: 0,
                cl_ord_id: next_id,
                instrument_id: 0,
                side: 0,
            }
            .to_bytes(),
        );
        rig.core.on_bytes(d.id, rig.now, &f);
        next_id += 1;
        rig.pump(&mut [&mut d]);
        rig.core.run_timers(rig.now);
    }

    let allocated = allocations() - before;

    use wire::*;
    let t = |id: u16| id as usize;
    assert_eq!(d.replies[t(OrderAccepted::TEMPLATE_ID)], rounds * FITS);
    assert_eq!(d.replies[t(OrderCanceled::TEMPLATE_ID)], rounds * FITS);
    assert_eq!(d.replies[t(MassCancelAck::TEMPLATE_ID)], rounds);
    assert_eq!(d.replies[t(Terminate::TEMPLATE_ID)], 0);
    let busy = ordergate::wire::codes::RejectReason::ENGINE_BUSY.wire() as usize;
    assert_eq!(d.rejects[busy], rounds);
    assert_eq!(d.rejects.iter().sum::<u64>(), rounds);
    let counters = &rig.core.counters;
    assert_eq!(counters.heartbeats_throttled, rounds);
    assert_eq!(counters.ring_reserve_refusals, rounds);
    assert_eq!(counters.ring_full, 0);
    assert!(rig.core.session(d.id).unwrap().is_logged_on());
    assert_eq!(
        allocated, 0,
        "the heartbeat and reserve paths allocated {allocated} times after start-up"
    );
}

/// The instrument itself: an allocation inside the measured region is seen.
/// Without this, a counter that never counts would pass the test above.
#[test]
fn the_counter_sees_an_allocation_in_the_measured_region() {
    let before = allocations();
    let b = std::hint::black_box(Box::new(7u64));
    drop(b);
    assert_eq!(allocations() - before, 1);
}

/// Back-pressure: a client pipelines more than its transmit buffer can hold
/// the answers for; its session stops short (`on_bytes` returns what it
/// took), the client reads, and the rest is offered again. Pausing and
/// resuming allocate nothing either.
#[test]
fn pausing_and_resuming_a_pipelining_client_allocates_nothing() {
    const FRAMES: usize = 5_000;
    let mut rig = start();
    let id = rig
        .core
        .accept(rig.now, "127.0.0.1".parse().unwrap())
        .unwrap();
    let mut a = Peer::new(id);
    rig.logon(&mut a, 7, 0);
    // Mass cancels of nothing: one MassCancelAck (60 bytes) each, from the
    // engine, so every frame read holds 72 bytes of room until answered.
    let mut batch = vec![0u8; FRAMES * wire::MASS_CANCEL_SIZE];
    for (i, f) in batch.chunks_mut(wire::MASS_CANCEL_SIZE).enumerate() {
        f.copy_from_slice(
            &a.client.seal(
                wire::MassCancel {
                    seq: 0,
                    cl_ord_id: i as u64 + 1,
                    instrument_id: 0,
                    side: 0,
                }
                .to_bytes(),
            ),
        );
    }

    let before = allocations();
    let mut offset = 0;
    let mut short = 0;
    let mut calls = 0;
    while offset < batch.len() {
        calls += 1;
        assert!(calls <= FRAMES, "bounded: each call takes a frame at least");
        let taken = rig.core.on_bytes(id, rig.now, &batch[offset..]);
        if taken < batch.len() - offset {
            short += 1;
            assert!(!rig.core.wants_input(id));
        }
        offset += taken;
        // Only the engine's answers free room: the client reads them.
        rig.pump(&mut [&mut a]);
        assert!(rig.core.wants_input(id));
    }
    let allocated = allocations() - before;

    assert!(short > 0, "the burst paused the session");
    assert_eq!(rig.core.counters.input_paused, short);
    assert_eq!(
        a.replies[wire::MassCancelAck::TEMPLATE_ID as usize],
        FRAMES as u64
    );
    assert_eq!(rig.core.counters.slow_consumers, 0);
    assert_eq!(
        allocated, 0,
        "pause and resume allocated {allocated} times after start-up"
    );
}

/// The replay floor's refusal (issue 10, item 4): a connection admitted,
/// its Logon refused STALE_LOGON (its request time is below the key's
/// floor), closed and released, 10,000 times, allocates nothing.
#[test]
fn a_stale_logon_refusal_allocates_nothing() {
    use ordergate::wire::codes::LogonRejectReason;
    let mut floors = ordergate::limits::FloorBook::new();
    // Beyond every request time of the run: each Logon of key 1 is stale.
    floors.raise(1, T0 + 1_000_000 * MS);
    let mut rig = start_with(1024, floors);
    let peer_addr = "127.0.0.1".parse().unwrap();
    let mut reader = FrameReader::new(1 << 16);

    let before = allocations();

    for i in 0..ROUNDS {
        rig.now += 10 * MS;
        let id = match rig.core.admit(rig.now, peer_addr, 3) {
            Admission::Open(id) => id,
            other => panic!("{other:?}"),
        };
        let mut client = ClientSession::new(1, SECRET);
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&i.to_le_bytes());
        let f = client.logon(rig.now, nonce, 1000, 1, 0);
        rig.core.on_bytes(id, rig.now, &f);
        let tx = rig.core.session_mut(id).unwrap().tx_mut();
        let bytes = tx.begin_send();
        let n = bytes.len();
        reader.push(bytes);
        tx.complete_send(n);
        let frame = reader.next_frame().expect("a reply").expect("well-formed");
        match wire::decode_gateway(frame) {
            Ok(GatewayFrame::LogonReject(r)) => {
                assert_eq!(r.reason(), LogonRejectReason::STALE_LOGON.wire())
            }
            other => panic!("{other:?}"),
        }
        assert!(rig.core.session(id).unwrap().wants_close());
        rig.core.on_closed(id, rig.now);
        assert!(rig.core.release(id));
        rig.core.run_timers(rig.now);
    }

    let allocated = allocations() - before;
    assert_eq!(rig.core.counters.logons_stale, ROUNDS);
    assert_eq!(rig.core.counters.logons_accepted, 0);
    assert_eq!(
        allocated, 0,
        "the stale-logon path allocated {allocated} times after start-up"
    );
}
