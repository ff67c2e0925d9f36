//! Every limit in ordergate, in one place, with the reason it exists and what
//! it costs. Anything that can grow is bounded by one of these (or by a config
//! value that is checked against one of these at start-up), and running into
//! a bound has a defined, tested behaviour that is named beside it.
//!
//! Names put the unit or qualifier last: `frame_size_max`, `keys_max`.

use core::time::Duration;

use crate::wire;

/// Largest frame of any template (Fill, 84 bytes). A length prefix above this
/// is refused at once (Terminate MALFORMED / LogonReject MALFORMED) before any
/// more bytes are buffered: there is no other way to make progress on a stream
/// whose framing is broken.
pub const FRAME_SIZE_MAX: usize = wire::FRAME_SIZE_MAX;

/// Smallest frame of any template (LogonReject, 32 bytes).
pub const FRAME_SIZE_MIN: usize = wire::FRAME_SIZE_MIN;

/// Bytes a session keeps of a partly received frame. One frame is the most it
/// can ever need to hold: whole frames are decoded straight from the receive
/// buffer; only a frame split across reads is copied here.
pub const RX_PARTIAL_MAX: usize = FRAME_SIZE_MAX;

/// Bytes of encoded replies a session may hold before the socket takes them.
/// 64 KiB is ~780 Fills: far more than a healthy client leaves unread between
/// two reactor turns. The session never reads a frame it could not answer
/// (see `TX_ANSWER_MAX`): when the buffer cannot hold the answers it owes,
/// the reactor stops reading that connection until sends make room
/// (back-pressure; TCP then stalls the client's writes). Only a client that
/// does not read is cut (`TX_STALL_TIMEOUT_NS`, or an engine event that
/// cannot be queued), with Terminate SLOW_CONSUMER.
pub const TX_BUFFER_SIZE: usize = 64 * 1024;

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The largest single answer the gateway owes one client frame: LogonAck
/// (72) to a Logon; the session's own OrderRejected (64) or Terminate; or
/// the engine's first answer to a command (OrderAccepted, OrderRejected,
/// OrderCanceled, OrderReplaced, MassCancelAck: at most 68). Fills, and the
/// cancels of a MassCancel or IOC, are not owed per frame and are not
/// reserved.
pub const TX_ANSWER_MAX: usize = max(
    max(
        max(wire::LOGON_ACK_SIZE, wire::LOGON_REJECT_SIZE),
        max(wire::ORDER_ACCEPTED_SIZE, wire::ORDER_REJECTED_SIZE),
    ),
    max(
        max(wire::ORDER_CANCELED_SIZE, wire::ORDER_REPLACED_SIZE),
        max(wire::MASS_CANCEL_ACK_SIZE, wire::TERMINATE_SIZE),
    ),
);

/// Room a session needs in its transmit buffer before it reads another
/// client frame when it has no command at the engine: the frame's answer
/// plus a Terminate, which every frame but a Terminate leaves room for, so
/// the session can always say why it ends. With `n` commands at the engine
/// it needs `n × TX_ANSWER_MAX` more: their first answers are reserved, so
/// an engine answer to a client that reads is never dropped.
pub const TX_REPLY_RESERVE: usize = TX_ANSWER_MAX + wire::TERMINATE_SIZE;

/// Commands one session can have at the engine at once: a session stops
/// reading when its empty transmit buffer could not hold one more first
/// answer besides a Terminate (909 with 64 KiB). It bounds a session's
/// share of the command ring too.
pub const TX_OUTSTANDING_MAX: usize = (TX_BUFFER_SIZE - wire::TERMINATE_SIZE) / TX_ANSWER_MAX;

/// How long a session's transmit buffer may hold bytes without any send
/// taking one before the client counts as not reading: a live session is
/// then ended with Terminate SLOW_CONSUMER (queued, it had room kept for
/// it), and a session that has ended is closed with what it could not send
/// abandoned when the same time passes again. Checked by the session timer,
/// so it fires within 1–2 × this after the last progress. 1 s is far beyond
/// any pause of a client that reads (a colocated client reads within
/// microseconds); it is what a client that stopped reading holds its slot,
/// 64 KiB and its parked receive buffers for.
pub const TX_STALL_TIMEOUT_NS: u64 = 1_000_000_000;

/// Receive buffers one paused connection is expected to hold parked at
/// most; parking beyond it is counted (`recv_parked_over_cap`). The reactor
/// cancels a connection's receive as soon as its session pauses, so it
/// parks only what the kernel had already delivered, which can never be
/// dropped (it is the client's byte stream): one run of a multishot
/// receive, which the kernel limits to 32 completions before it yields
/// (loopback tests park at most 19, bursts of 1.5k to 100k orders). The
/// cost: 32 × 4 KiB of the reactor's buffers held by one connection until
/// its client reads or is cut (`TX_STALL_TIMEOUT_NS`).
pub const RECV_PARKED_PER_CONN: usize = 32;

/// API keys a gateway can hold. Each key costs one `KeyEntry` (~152 bytes)
/// and a shared rate-limit cell; 4096 is far beyond any venue's member count.
pub const KEYS_MAX: usize = 4096;

/// Sessions one reactor can be configured to serve. The slot index is 14
/// bits in a `SessionId`; each session holds `TX_BUFFER_SIZE` of transmit
/// buffer, so this maximum costs 1 GiB per reactor, and the default of
/// `SESSIONS_PER_REACTOR_DEFAULT` costs 16 MiB.
pub const SESSIONS_PER_REACTOR_MAX: usize = 1 << 14;

/// Sessions per reactor when the config says nothing.
pub const SESSIONS_PER_REACTOR_DEFAULT: usize = 256;

/// Reactor threads one gateway runs: the reactor index is 8 bits in a
/// `SessionId`; 64 is more cores than any gateway host dedicates.
pub const REACTORS_MAX: usize = 64;

/// Slots of one key's logon nonce replay cache, at least and at most. Each
/// key has its own cache (in its `KeyState`, allocated when the key is
/// loaded and carried over reloads), so one key's logons can never take
/// another key's slots. Its size is what the key's own logon rate can fill
/// within the replay window, doubled and rounded up to a power of two:
/// `2 × (logon_burst_per_key + logon_rate_per_key × (2 × skew + 1 s))`
/// (`nonce_slots_per_key`), so the rate limit (THROTTLED, counted
/// `logons_throttled_key`) refuses a key's logon flood before its cache
/// could fill; the cache's own refusal (THROTTLED, `logons_nonce_share_full`)
/// is the backstop for the probe window of a crowded cache. Defaults: 2 ×
/// (100 + 10 × 11) = 420 → 512 slots, 4 KiB a key, 16 MiB at `KEYS_MAX`
/// keys. The maximum, 2^15 slots (256 KiB a key), bounds what a generous
/// config can cost: beyond it the cache, not the rate, is what refuses.
pub const NONCE_SLOTS_PER_KEY_MIN: usize = 64;
pub const NONCE_SLOTS_PER_KEY_MAX: usize = 1 << 15;

/// Slots of a key's nonce cache one nonce may probe before the cache counts
/// as full for it. Bounds the work of a logon.
pub const NONCE_CACHE_PROBES_MAX: usize = 16;

/// The failed-logon lockout table: buckets of slots, one record per (client,
/// key id) that failed within the window. Every record of one prefix (IPv4
/// /24, IPv6 /64) lives in the one bucket the prefix hashes to, so a prefix
/// holds at most `LOGON_GUARD_WAYS` of the 8192 slots (1/512 of the table)
/// however it sprays. 8 B a slot: 64 KiB. A full bucket forgets its oldest
/// unlocked record first (`lockout_evictions`); nobody is ever locked out by
/// another's record (`limits::LogonGuard`).
pub const LOGON_GUARD_BUCKETS: usize = 512;
pub const LOGON_GUARD_WAYS: usize = 16;

/// The per-address logon rate table: buckets of GCRA cells, one per client
/// (IPv4 address, IPv6 /64) that logged on recently. 8 B a slot, 8192
/// slots: 64 KiB. A full bucket forgets the cell nearest to full again
/// (`logon_rate_evictions`, counted when it was still in debt): that client
/// gets a fresh burst, nobody is refused for it (`limits::AddressRate`).
pub const LOGON_RATE_BUCKETS: usize = 1024;
pub const LOGON_RATE_WAYS: usize = 8;

/// Logon attempts one client (IPv4 address, IPv6 /64) may make per second,
/// sustained, and in a burst, before its logons are refused THROTTLED
/// without any HMAC work (`logons_throttled_address`). Checked before the
/// signature, so it cannot tell keys apart: it is shared by every key
/// behind one address, and set far above an honest host's need (a host
/// reconnecting 200 sessions at once after a network blip) so that only a
/// flood reaches it. It bounds the HMAC work, the audit records and the
/// table churn one address can cause.
pub const LOGON_RATE_PER_ADDRESS_DEFAULT: u32 = 50;
pub const LOGON_BURST_PER_ADDRESS_DEFAULT: u32 = 200;

/// Logons one key may attempt per second, sustained, and in a burst, once
/// its signature is proved (a stranger cannot spend a key's tokens), before
/// they are refused THROTTLED (`logons_throttled_key`). An honest client
/// logs on a few times a second at most; the burst lets a key reconnect up
/// to 100 sessions at once. It bounds how fast one key can cycle through
/// its nonce cache and the session-limit check.
pub const LOGON_RATE_PER_KEY_DEFAULT: u32 = 10;
pub const LOGON_BURST_PER_KEY_DEFAULT: u32 = 100;

/// Events a reactor takes from its event ring per turn, and commands the
/// engine takes per turn: a bounded batch, so neither side starves the other
/// when they share a thread.
pub const RING_BATCH_MAX: usize = 256;

/// Instruments of the embedded engine by default (ids 1..=100).
pub const INSTRUMENTS_DEFAULT: u32 = 100;

/// Hard bound on instruments an embedded engine can be configured with: each
/// costs two preallocated price-level arrays.
pub const INSTRUMENTS_MAX: u32 = 10_000;

/// Resting orders the embedded engine can hold at once, all instruments. A
/// NewOrder that would rest beyond this is rejected ENGINE_REJECT. Each order
/// is ~64 bytes: 1 Mi orders is 64 MiB, preallocated.
pub const ORDERS_MAX_DEFAULT: usize = 1 << 20;

/// Price levels per side of one book. A NewOrder that would open a level
/// beyond this is rejected ENGINE_REJECT.
pub const LEVELS_PER_SIDE_MAX: usize = 4096;

/// Default skew window for `Logon.request_time_ns` (PROTOCOL.md: ±5 s).
pub const LOGON_SKEW_NS_DEFAULT: u64 = 5_000_000_000;

/// Default time a connection has to deliver a valid Logon (PROTOCOL.md: 1 s).
pub const LOGON_TIMEOUT_NS_DEFAULT: u64 = 1_000_000_000;

/// Bounds on the keepalive a client may ask for in Logon. Below 100 ms the
/// heartbeat traffic is noise; above 60 s a dead peer holds a slot too long.
/// A Logon outside the bounds is refused MALFORMED.
pub const KEEPALIVE_MS_MIN: u16 = 100;
pub const KEEPALIVE_MS_MAX: u16 = 60_000;

/// Default per-session and per-key message rates when the keys file says
/// nothing: 1000 messages/s with a burst of 100.
pub const MSGS_PER_SEC_DEFAULT: u32 = 1_000;
pub const BURST_DEFAULT: u32 = 100;

/// Share of every rate-limit burst kept for cancels (CancelOrder,
/// MassCancel): a flood of new orders can only use `burst - reserve` tokens,
/// so cancels always get through while any token is free (as CME does).
/// Expressed as a divisor of the burst: burst / 4 (none for bursts under 4).
pub const CANCEL_RESERVE_DIVISOR: u32 = 4;

/// Consecutive throttled messages after which the session is ended with
/// Terminate THROTTLE_BREACH: a client that ignores `retry_after_ns` that
/// often is misbehaving, and its traffic costs other sessions.
pub const THROTTLE_BREACH_RUN_DEFAULT: u32 = 100;

/// How far ahead of `now` a rate cell's TAT may be found, beyond one whole
/// burst (`B·T`, the most a monotonic clock can leave it ahead), before it
/// is taken for a clock step and pulled back to `now + B·T + slack`. A
/// session's `now` is the wall clock (`reactor::worker::TurnClock`), so an
/// NTP step back of D would otherwise throttle an honest client for D and
/// a long enough D end it THROTTLE_BREACH. Reason for 100 ms: more than
/// any reactor turn (a reactor's `now` is its turn's start, so two
/// reactors sharing a key cell may see times that far apart without any
/// step). Cost: a step back stalls a session for at most this plus one
/// burst's refill; and a reactor whose turn started more than this before
/// another's may find a key's shared cell pulled back by the excess (a
/// few tokens early), never below empty.
pub const RATE_CLOCK_STEP_SLACK_NS: u64 = 100_000_000;

/// Failed logons from one address within the lockout window before further
/// logons from it are refused THROTTLED without any HMAC work (CME: 5 in 60 s).
pub const LOGON_FAILURES_MAX_DEFAULT: u32 = 5;
pub const LOGON_LOCKOUT_WINDOW_NS_DEFAULT: u64 = 60_000_000_000;

const _: () = assert!(FRAME_SIZE_MAX <= RX_PARTIAL_MAX);
const _: () = assert!(TX_REPLY_RESERVE < TX_BUFFER_SIZE);
const _: () = assert!(TX_OUTSTANDING_MAX >= 1);
const _: () = assert!(TX_ANSWER_MAX <= FRAME_SIZE_MAX);
const _: () = assert!(NONCE_SLOTS_PER_KEY_MIN.is_power_of_two());
const _: () = assert!(NONCE_SLOTS_PER_KEY_MAX.is_power_of_two());
const _: () = assert!(NONCE_CACHE_PROBES_MAX <= NONCE_SLOTS_PER_KEY_MIN);
const _: () = assert!(NONCE_SLOTS_PER_KEY_MIN <= NONCE_SLOTS_PER_KEY_MAX);
const _: () = assert!(LOGON_GUARD_BUCKETS.is_power_of_two() && LOGON_GUARD_WAYS > 0);
const _: () = assert!(LOGON_RATE_BUCKETS.is_power_of_two() && LOGON_RATE_WAYS > 0);
const _: () = assert!(INSTRUMENTS_DEFAULT <= INSTRUMENTS_MAX);
const _: () = assert!(KEEPALIVE_MS_MIN < KEEPALIVE_MS_MAX);

/// Slots of each command ring and each event ring by default. 4096 × 64 B =
/// 256 KiB per ring. A full command ring answers ENGINE_BUSY; a full event
/// ring pauses the engine between two steps.
pub const RING_CAPACITY_DEFAULT: usize = 4096;

/// Provided receive buffers per reactor, and their size. 512 × 4 KiB = 2 MiB
/// per reactor. A receive that finds none free ends its multishot with
/// ENOBUFS; the reactor re-arms it once it has recycled buffers (counted).
pub const RECV_BUFFERS_DEFAULT: u16 = 512;
pub const RECV_BUFFER_SIZE_DEFAULT: u32 = 4096;

/// Submission queue entries per reactor ring; the completion queue is twice
/// that. Each turn submits at most one send per session plus re-arms, so
/// a full queue is flushed early and counted, never dropped.
pub const URING_ENTRIES_DEFAULT: u32 = 1024;

/// The engine needs this much room in an event ring to finish any step.
const _: () = assert!(RING_CAPACITY_DEFAULT >= EVENTS_PER_STEP_MAX);

// ---------------------------------------------------------------------------
// Bounds on what the `serve` config file may set. `config.rs` checks every
// value against these at start-up and names the field it refuses; the
// defaults above sit inside them (asserted below).

/// Most provided receive buffers per reactor: one io_uring buffer ring holds
/// at most 32768 entries (the kernel refuses 65536), and `GatewaySpec`
/// carries the count as a `u16`. Must be a power of two (the buffer ring's
/// index is masked).
pub const RECV_BUFFERS_MAX: u16 = 1 << 15;

/// Smallest receive buffer: one whole frame. A smaller buffer would make
/// every large frame a partial one, copied through `RX_PARTIAL_MAX`.
pub const RECV_BUFFER_SIZE_MIN: u32 = FRAME_SIZE_MAX as u32;

/// Largest receive buffer. A buffer holds what one receive completion
/// delivers; beyond 1 MiB it only holds backlog, and `RECV_BUFFERS_MAX` of
/// them would be 32 GiB per reactor.
pub const RECV_BUFFER_SIZE_MAX: u32 = 1 << 20;

/// Most submission queue entries of one reactor's io_uring: the kernel's
/// `IORING_MAX_ENTRIES`. Must be a power of two.
pub const URING_ENTRIES_MAX: u32 = 1 << 15;

/// Smallest command/event ring: the engine needs `EVENTS_PER_STEP_MAX` free
/// slots to finish any step, and a ring is a power of two ≥ 2.
pub const RING_CAPACITY_MIN: usize = EVENTS_PER_STEP_MAX.next_power_of_two();

/// Largest command/event ring: 1 Mi slots × 64 B = 64 MiB per ring, two per
/// reactor. A deeper ring only hides an engine that cannot keep up, and
/// lengthens the queue every order waits in.
pub const RING_CAPACITY_MAX: usize = 1 << 20;

/// Longest logon timeout a config may set, in ms. A connection holds a
/// session slot until it logs on or its deadline passes; an honest client
/// logs on within a round trip, so a minute only helps slot-hogging.
pub const LOGON_TIMEOUT_MS_MAX: u64 = 60_000;

/// Widest logon skew window a config may set, in ms (one side). Nonces are
/// remembered for 2 × skew + 1 s in each key's cache: at a minute, 121 s,
/// which `nonce_slots_per_key` sizes the caches for (up to
/// `NONCE_SLOTS_PER_KEY_MAX`).
pub const LOGON_SKEW_MS_MAX: u64 = 60_000;

/// Longest run of throttled messages a config may tolerate before
/// THROTTLE_BREACH. A run as long as `BURST_MAX` never ends a session in
/// practice: anything longer is a typo.
pub const THROTTLE_BREACH_RUN_MAX: u32 = 1_000_000;

/// Most failed logons a config may allow one address before lock-out. The
/// lock-out exists to stop secret guessing; a thousand guesses per window is
/// already no lock-out.
pub const LOGON_FAILURES_MAX_BOUND: u32 = 1_000;

/// Longest lock-out window a config may set, in ms (an hour): a locked
/// (client, key) stays locked that long, and its record takes a slot of
/// its prefix's bucket as long.
pub const LOGON_LOCKOUT_WINDOW_MS_MAX: u64 = 3_600_000;

const _: () = assert!(RECV_BUFFERS_MAX.is_power_of_two());
const _: () = assert!(RECV_BUFFERS_DEFAULT.is_power_of_two());
const _: () = assert!(RECV_BUFFERS_DEFAULT <= RECV_BUFFERS_MAX);
const _: () = assert!(RECV_BUFFER_SIZE_MIN <= RECV_BUFFER_SIZE_DEFAULT);
const _: () = assert!(RECV_BUFFER_SIZE_DEFAULT <= RECV_BUFFER_SIZE_MAX);
const _: () = assert!(URING_ENTRIES_MAX.is_power_of_two());
const _: () = assert!(URING_ENTRIES_DEFAULT.is_power_of_two());
const _: () = assert!(URING_ENTRIES_DEFAULT <= URING_ENTRIES_MAX);
const _: () = assert!(RING_CAPACITY_MIN >= 2);
const _: () = assert!(RING_CAPACITY_MAX.is_power_of_two());
const _: () = assert!(RING_CAPACITY_DEFAULT.is_power_of_two());
const _: () = assert!(RING_CAPACITY_MIN <= RING_CAPACITY_DEFAULT);
const _: () = assert!(RING_CAPACITY_DEFAULT <= RING_CAPACITY_MAX);
const _: () = assert!(SESSIONS_PER_REACTOR_DEFAULT <= SESSIONS_PER_REACTOR_MAX);
// The config file speaks milliseconds: the defaults must be whole ones.
const _: () = assert!(LOGON_TIMEOUT_NS_DEFAULT.is_multiple_of(1_000_000));
const _: () = assert!(LOGON_TIMEOUT_NS_DEFAULT / 1_000_000 <= LOGON_TIMEOUT_MS_MAX);
const _: () = assert!(LOGON_SKEW_NS_DEFAULT.is_multiple_of(1_000_000));
const _: () = assert!(LOGON_SKEW_NS_DEFAULT / 1_000_000 <= LOGON_SKEW_MS_MAX);
const _: () = assert!(LOGON_LOCKOUT_WINDOW_NS_DEFAULT.is_multiple_of(1_000_000));
const _: () = assert!(LOGON_LOCKOUT_WINDOW_NS_DEFAULT / 1_000_000 <= LOGON_LOCKOUT_WINDOW_MS_MAX);
const _: () = assert!(THROTTLE_BREACH_RUN_DEFAULT >= 1);
const _: () = assert!(THROTTLE_BREACH_RUN_DEFAULT <= THROTTLE_BREACH_RUN_MAX);
const _: () = assert!(LOGON_FAILURES_MAX_DEFAULT >= 1);
const _: () = assert!(LOGON_FAILURES_MAX_DEFAULT <= LOGON_FAILURES_MAX_BOUND);

/// Connections the Prometheus endpoint serves at once: one worker thread
/// each (`ordergate-metrics-N`, 256 KiB stacks, on the housekeeping cores),
/// started with the endpoint. A connection over the bound is answered 503 at
/// once and closed (`metrics_refused_busy`), so the listen backlog never
/// fills behind slow clients. Eight covers a Prometheus HA pair, a federating
/// server and an operator's curl several times over.
pub const METRICS_CONNECTIONS_MAX: usize = 8;

/// Of those, the most one peer address may hold at once; its next is
/// answered 503 and closed (`metrics_refused_peer`). A Prometheus server
/// scrapes with one connection (two while a slow scrape overlaps the next);
/// without a share per address one slow client could take every worker.
pub const METRICS_CONNECTIONS_PER_PEER: usize = 2;

/// Whole time a Prometheus connection may take from its accept: to send its
/// request head and to take the response. Every read and write waits at most
/// what is left of it, so a client trickling a byte at a time is cut at the
/// deadline, not merely at a pause (`metrics_deadline_cut`, a 408 if the
/// request was not complete). A scrape reads ~50 KiB from a tmpfs mapping:
/// milliseconds; 2 s leaves room for a slow management network, and is the
/// longest a slow client holds a worker.
pub const METRICS_REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Bytes of a Prometheus request head (request line and headers) the
/// endpoint reads; a longer head is answered 431. A scraper's head is a few
/// hundred bytes. Each worker reads into a buffer of this size on its stack.
pub const METRICS_REQUEST_HEAD_MAX: usize = 8 * 1024;

/// Headers a Prometheus request head may carry (a scraper sends about six);
/// more is answered 431. The parser's header table, on the worker's stack.
pub const METRICS_REQUEST_HEADERS_MAX: usize = 32;

const _: () = assert!(METRICS_CONNECTIONS_PER_PEER >= 1);
const _: () = assert!(METRICS_CONNECTIONS_PER_PEER < METRICS_CONNECTIONS_MAX);

/// Connections one source address may hold on one reactor before they log
/// on (config `reactors.pending_logons_per_address`), by default. An IPv4
/// address counts whole; an IPv6 address counts by its /64, the smallest
/// block one host is given (a host picks freely inside it). IPv4 is not
/// grouped by /24: in a colocation many members share the venue's /24, and
/// one member's flood must not refuse its neighbours; a spray from many
/// addresses is met by eviction instead (`reactor::core`). An honest client
/// holds a connection unauthenticated for one round trip, so 16 only bites
/// a host reconnecting more than 16 sessions within the same few
/// microseconds (refused THROTTLED: retry). Over the cap a connection gets
/// LogonReject THROTTLED at once and uses no slot. The count table is
/// preallocated at 4 entries of 20 B per slot (20 KiB for 256 slots), so it
/// is never more than half full.
pub const PENDING_LOGONS_PER_ADDRESS_DEFAULT: usize = 16;

/// Most `pending_logons_per_address` a config may set: the largest slab. A
/// cap at the slab size is no cap.
pub const PENDING_LOGONS_PER_ADDRESS_MAX: usize = SESSIONS_PER_REACTOR_MAX;

/// Accept back-off when accept fails (EMFILE/ENFILE: no descriptor left;
/// any other error alike), in reactor timer ticks (1 ms): the first pause,
/// doubled on each failure in a row up to the longest, back to the first
/// after a success. A failing accept re-armed at once would turn the reactor
/// into a spin of failing system calls. While paused, new connections wait
/// in the listen backlog (`LISTEN_BACKLOG`): the longest pause, 128 ms, is
/// the most a connect waits beyond the descriptor shortage itself, and costs
/// one failed accept per pause.
pub const ACCEPT_BACKOFF_TICKS_MIN: u32 = 1;
pub const ACCEPT_BACKOFF_TICKS_MAX: u32 = 128;

const _: () = assert!(PENDING_LOGONS_PER_ADDRESS_DEFAULT >= 1);
const _: () = assert!(PENDING_LOGONS_PER_ADDRESS_DEFAULT <= PENDING_LOGONS_PER_ADDRESS_MAX);
const _: () = assert!(ACCEPT_BACKOFF_TICKS_MIN >= 1);
const _: () = assert!(ACCEPT_BACKOFF_TICKS_MIN <= ACCEPT_BACKOFF_TICKS_MAX);

/// Bounds on the logon rates a config may set (`session.logon_rate_per_key`,
/// `logon_burst_per_key`, `logon_rate_per_address`,
/// `logon_burst_per_address`). The per-address cells count whole
/// milliseconds, so 1000 logons a second is the finest rate they can hold;
/// a thousand logons a second of one key is already no limit. The bursts
/// are bounded so that the TAT arithmetic stays far from overflow and a
/// typo is caught.
pub const LOGON_RATE_MAX: u32 = 1_000;
pub const LOGON_BURST_MAX: u32 = 100_000;

const _: () =
    assert!(LOGON_RATE_PER_KEY_DEFAULT >= 1 && LOGON_RATE_PER_KEY_DEFAULT <= LOGON_RATE_MAX);
const _: () = assert!(LOGON_RATE_PER_ADDRESS_DEFAULT >= 1);
const _: () = assert!(LOGON_RATE_PER_ADDRESS_DEFAULT <= LOGON_RATE_MAX);
const _: () =
    assert!(LOGON_BURST_PER_KEY_DEFAULT >= 1 && LOGON_BURST_PER_KEY_DEFAULT <= LOGON_BURST_MAX);
const _: () = assert!(LOGON_BURST_PER_ADDRESS_DEFAULT >= 1);
const _: () = assert!(LOGON_BURST_PER_ADDRESS_DEFAULT <= LOGON_BURST_MAX);

/// How long the audit journal thread folds pre-auth events (refused logons,
/// logon timeouts: peers that never authenticated) into one aggregate record
/// per source prefix, kind and reason before it writes the aggregates out.
/// One second keeps an operator's view of a flood to the second, and bounds
/// what unauthenticated peers can add to the journal to
/// `JOURNAL_AGGREGATE_SLOTS + JOURNAL_AGGREGATE_OVERFLOW_SLOTS` records per
/// second, however many connections they open (docs/JOURNAL.md,
/// "Pre-auth aggregates").
pub const JOURNAL_AGGREGATE_WINDOW_NS: u64 = 1_000_000_000;

/// Source prefixes (IPv4 /32, IPv6 /64) × (kind, reason) the aggregation
/// table holds per window. A key that finds the table full is folded into
/// an "other addresses" aggregate of its kind and reason instead, so many
/// addresses cannot turn aggregation back into one record per connection.
/// 32 × ~56 B of journal-thread memory.
pub const JOURNAL_AGGREGATE_SLOTS: usize = 32;

/// (kind, reason) keys of the "other addresses" aggregates: every pre-auth
/// kind and reason fits (LogonRejected has 9 reasons, LogonTimeout one).
/// Should a future kind need more, the table is written out early rather
/// than an event dropped.
pub const JOURNAL_AGGREGATE_OVERFLOW_SLOTS: usize = 16;

/// Fill of the current journal segment, in percent, at which the journal
/// raises its high-water alarm once per segment (the `journal_high_water`
/// counter and a line on stderr). With rollover off it is also where the
/// reserve begins: pre-auth aggregates are no longer written (counted in
/// `journal_preauth_unjournaled`), so only events of authenticated peers
/// and of the operator can fill the last 10%.
pub const JOURNAL_HIGH_WATER_PERCENT: u64 = 90;

/// Smallest `audit_capacity` (records per segment) with rollover on: each
/// segment spends a record on its SegmentStart and each start of the
/// gateway one on JournalOpened, and a new file per handful of records
/// would be churn, not a journal. 64 records is 8 KiB.
pub const JOURNAL_SEGMENT_RECORDS_MIN: u64 = 64;

const _: () = assert!(JOURNAL_HIGH_WATER_PERCENT >= 1 && JOURNAL_HIGH_WATER_PERCENT <= 100);
const _: () = assert!(JOURNAL_AGGREGATE_SLOTS >= 1 && JOURNAL_AGGREGATE_OVERFLOW_SLOTS >= 1);

/// Heartbeats a session may send per keepalive interval, sustained. The
/// keepalive needs one (a client heartbeats after `keepalive_ms` of
/// silence); four leave room for a client on a shorter timer of its own.
/// Heartbeats have this allowance of their own and never take order or
/// cancel tokens; a heartbeat beyond it is throttled (no reply: it has no
/// `cl_ord_id`) and counts toward `throttle_breach_run`, so a flood ends in
/// Terminate THROTTLE_BREACH. Cost: at the shortest keepalive (100 ms) a
/// session can make the gateway check 40 heartbeat tags a second.
pub const HEARTBEATS_PER_KEEPALIVE: u64 = 4;

/// Heartbeats a session may send at once, beyond the sustained allowance
/// (a client catching up after a stall).
pub const HEARTBEAT_BURST: u32 = 8;

/// Share of every command ring (reactor → engine) kept for cancels:
/// NewOrder and ReplaceOrder are answered ENGINE_BUSY once only this many
/// slots are free, while CancelOrder, MassCancel and the gateway's own
/// CancelOnDisconnect and CancelForRevocation may use every slot. A client
/// (or a neighbour) that floods the ring with new orders cannot keep a
/// client from getting out of risk, as the cancel reserve of the rate
/// limits does for tokens. A divisor of the capacity (1/8: 512 slots of the
/// default 4096, so new orders see ENGINE_BUSY 1/8 earlier when the engine
/// falls behind), at least `COMMAND_RING_CANCEL_RESERVE_MIN`, at most half
/// the ring.
pub const COMMAND_RING_CANCEL_RESERVE_DIVISOR: usize = 8;
pub const COMMAND_RING_CANCEL_RESERVE_MIN: usize = 4;

/// The cancel reserve of a command ring of `capacity` slots (see
/// `COMMAND_RING_CANCEL_RESERVE_DIVISOR`): 2 of 4, 4 of 8 to 32, 8 of 64,
/// 512 of 4096. Never the whole ring: new orders keep at least half.
pub const fn command_ring_cancel_reserve(capacity: usize) -> usize {
    let share = capacity / COMMAND_RING_CANCEL_RESERVE_DIVISOR;
    let reserve = if share > COMMAND_RING_CANCEL_RESERVE_MIN {
        share
    } else {
        COMMAND_RING_CANCEL_RESERVE_MIN
    };
    if reserve < capacity / 2 {
        reserve
    } else {
        capacity / 2
    }
}

const _: () = assert!(HEARTBEATS_PER_KEEPALIVE >= 2 && HEARTBEAT_BURST >= 2);
const _: () = assert!(command_ring_cancel_reserve(RING_CAPACITY_MIN) >= 1);
const _: () = assert!(command_ring_cancel_reserve(RING_CAPACITY_MIN) < RING_CAPACITY_MIN);
const _: () = assert!(command_ring_cancel_reserve(RING_CAPACITY_DEFAULT) == 512);
const _: () = assert!(command_ring_cancel_reserve(64) == 8);

/// API keys the embedded engine can hold resting orders for at once, by
/// default. Each key with resting orders has a record (its list of orders,
/// so that a kill reaches every one of them whatever became of their
/// sessions, and its open notional): 32 bytes plus 16 of table, so the
/// default is 768 KiB. Four key tables' worth: the keys of the current
/// table plus those a reload removed whose orders are still being swept. A
/// Day order of a key without a record that would rest while every record
/// is in use is refused ENGINE_REJECT.
pub const ENGINE_KEYS_DEFAULT: usize = 4 * KEYS_MAX;

/// Hard bound on `EngineConfig::keys_max` (record indices are `u32`; a
/// million keys is 48 MiB and far more than any gateway serves).
pub const ENGINE_KEYS_BOUND: usize = 1 << 20;

/// Half-width of every instrument's price collar by default, in basis
/// points of its reference price (the last trade, or a configured reference
/// before the first trade): 10%. A buy above `reference + band` or a sell
/// below `reference − band` is refused PRICE_OUT_OF_BAND, so a fat finger
/// or a price of 0 cannot sweep the book. Checked once per NewOrder and
/// per ReplaceOrder that changes the price: a few instructions on the
/// instrument's cache line, which every trade writes.
pub const COLLAR_BPS_DEFAULT: u32 = 1_000;

/// Widest collar a config may set: ±100% of the reference. Wider protects
/// nothing on the sell side (every positive price is already inside), and
/// `band` stays an exact `u64` (`|reference| × bps / 10^4 ≤ |reference|`).
pub const COLLAR_BPS_MAX: u32 = 10_000;

/// `CancelForKey` commands a reactor keeps while its command ring is full
/// (retried every timer tick), preallocated: one per key of a table, the
/// most one key generation can stop at once, twice over. Only an operator's
/// revocations can push beyond it (then the queue grows, on the control
/// path, never per message).
pub const KEY_SWEEPS_PENDING: usize = 2 * KEYS_MAX;

const _: () = assert!(ENGINE_KEYS_DEFAULT <= ENGINE_KEYS_BOUND);
const _: () = assert!(ENGINE_KEYS_BOUND <= u32::MAX as usize);
const _: () = assert!(COLLAR_BPS_DEFAULT >= 1 && COLLAR_BPS_DEFAULT <= COLLAR_BPS_MAX);
const _: () = assert!(
    COLLAR_BPS_MAX <= 10_000,
    "the band is computed exactly in u64"
);
// ---------------------------------------------------------------------------
// Kernel entries per request (issue 11): the back-off reactor's blocking
// turn, its adaptive spin, and the SQPOLL option.

/// Default of `reactors.spin_max_us`: the longest a back-off reactor spins
/// after a turn before it blocks in `io_uring_enter`. Spinning only pays
/// when the next request arrives within the spin — it then saves a sleep and
/// a wake-up (an IPI, an idle exit and a context switch: 5–30 µs on a VM,
/// measured as the gap between the echo's and a spinning server's round
/// trip) at the price of a second enter per request (the receive's task
/// work needs one of its own when the reactor is not waiting in the kernel)
/// and of the CPU it burns. The reactor learns from its own hits and misses
/// whether to spin at all (`spin_budget_ns`): on one CPU shared with its
/// client a spin can never be hit, and the budget stays 0.
pub const SPIN_MAX_US_DEFAULT: u32 = 50;

/// Bound on `reactors.spin_max_us`. Beyond a millisecond, a back-off
/// reactor is a busy-spinning one that blocks between bursts: use
/// `idle = "busy-spin"` for that.
pub const SPIN_MAX_US_MAX: u32 = 1_000;

/// A blocking turn waits for its own sends' completions and the next
/// request in one enter, counting on each send to complete as it is
/// submitted. A send that finds its socket full (a slow reader) completes
/// later, and would keep the reactor asleep while another session's
/// request waits (until the next completion of any kind, or the timer
/// tick). So after a send of a session completes late, that session's next
/// sends are not counted — they cost the reactor a second enter each, not
/// its neighbours a wait — until this many have completed at once.
pub const SLOW_SEND_CREDIT: u8 = 64;

/// Idle time after which a reactor's SQPOLL thread sleeps (and the reactor
/// must enter the kernel to wake it: `sqpoll_wakeups`). SQPOLL is for a
/// core given to the poller: a second keeps it polling through the lulls
/// of a trading day's busy hours while an idle night lets the core rest.
pub const SQPOLL_IDLE_MS: u32 = 1_000;

const _: () = assert!(SPIN_MAX_US_DEFAULT <= SPIN_MAX_US_MAX);

// ---------------------------------------------------------------------------
// Limits that were defined beside their code until the workspace split
// (issue 11): keys, the engine, the journal, and the runtime's files,
// sockets and idle loop. Their old paths re-export them.

/// Highest `msgs_per_sec` a key may have. One reactor core decodes, checks
/// and forwards a few million messages a second at most; a per-key rate
/// above ten million can never bind, so it is a typo (an extra zero or
/// three), not a setting. Also keeps `tokens × 1e9` far inside `u64` for a
/// nanosecond token bucket.
pub const MSGS_PER_SEC_MAX: u32 = 10_000_000;

/// Highest `burst` a key may have. A burst is how many messages a key may
/// send back to back; a million is already more than a session's transmit
/// buffer could ever answer, so anything larger is a typo.
pub const BURST_MAX: u32 = 1_000_000;

/// Largest keys file `load` reads. An entry with every field, a comment and
/// a few `allow` networks is under 1 KiB (a full list of `ALLOW_CIDRS_MAX`
/// IPv6 networks adds under 2 KiB, and few keys need one); 1 KiB per key
/// for `KEYS_MAX` keys is 4 MiB. Bounds the one allocation loading makes
/// for the text.
pub const KEYS_FILE_SIZE_MAX: u64 = 1024 * KEYS_MAX as u64;

/// Most CIDRs one key's `allow` list may hold. Bounds the work of a logon
/// (a linear scan, a few nanoseconds per entry) and the size of a key's
/// entry; a member's order-entry hosts fit in a handful of networks, so a
/// list longer than this is a paste of something else.
pub const ALLOW_CIDRS_MAX: usize = 32;

/// Upper bound on the engine's `orders_max`: order indices are `u32` with
/// the null index reserved, and a table of 2 × `orders_max` slots must stay
/// within `u32` hashes.
pub const ENGINE_ORDERS_MAX_BOUND: usize = 1 << 31;

/// The most events one atomic engine step can emit toward one reactor: a new
/// order's Accepted (or a replace's Replaced) rides with its first Fill, and
/// the resting order's Fill goes out in the same step; when both sessions are
/// on one reactor that is 3. (An IOC remainder's Canceled is a step of its
/// own; see `engine::book` for every step.) An event ring must be able to
/// offer at least this much room, or the engine can never finish the step.
pub const EVENTS_PER_STEP_MAX: usize = 3;

/// Unflushed journal records after which the journal thread flushes. Bounds
/// what a power loss can take, and the crash residue `open` must accept.
/// Each flush is one msync; 64 records is 8 KiB, two pages.
pub const JOURNAL_FLUSH_RECORDS_MAX: u64 = 64;

/// Age of the oldest unflushed journal record after which the journal
/// thread flushes: with security events as rare as logons, this is the
/// bound that usually applies (10 ms of events lost at most on power loss).
pub const JOURNAL_FLUSH_INTERVAL_NS: u64 = 10_000_000;

/// Slots after the last good journal record in which `open` accepts (and
/// zeroes) crash residue. At least `JOURNAL_FLUSH_RECORDS_MAX`: a crash can
/// only leave residue in unflushed slots.
pub const JOURNAL_RECOVERY_WINDOW_RECORDS: u64 = JOURNAL_FLUSH_RECORDS_MAX;

/// What the journal thread sleeps when a turn finds every ring empty: audit
/// latency, not throughput, and the thread costs nothing while idle. A ring
/// of `AUDIT_RING_CAPACITY_DEFAULT` fills in one sleep only above ~1 M
/// events/s from one reactor.
pub const JOURNAL_IDLE_SLEEP_NS: u64 = 1_000_000;

/// Slots per journal segment when the config says nothing: 2^20 records,
/// 128 MiB, is months of logons for a venue's members. A full segment rolls
/// over to the next (or, with rollover off, fails closed).
pub const JOURNAL_CAPACITY_RECORDS_DEFAULT: u64 = 1 << 20;

/// Slots of each audit ring: 1024 × 56 B = 56 KiB per reactor. A full ring
/// drops and counts events; the count becomes a Gap record.
pub const AUDIT_RING_CAPACITY_DEFAULT: usize = 1024;

/// Largest base index a journal header may declare: far beyond any journal
/// (2^62 records is 512 EiB), and keeps `base_index + capacity` from
/// overflow.
pub const JOURNAL_BASE_INDEX_MAX: u64 = 1 << 62;

/// Largest capacity a journal header may declare: 2^32 records is 512 GiB,
/// beyond any sane audit file, and keeps `file_len` far from overflow.
pub const JOURNAL_CAPACITY_RECORDS_MAX: u64 = 1 << 32;

/// Largest config file `load` reads. The complete example, comments and
/// all, is under 8 KiB; anything much larger is not a config file.
pub const CONFIG_FILE_SIZE_MAX: u64 = 64 * 1024;

/// Longest request line the admin socket accepts.
pub const ADMIN_REQUEST_MAX: usize = 256;

/// A stats-file reader refuses a file claiming more values per block than
/// this (a corrupt header must not make it allocate gigabytes).
pub const STATS_BLOCK_VALUES_MAX: usize = 4096;

/// Shortest and longest park of an idle loop (the engine thread's, and a
/// busy-spin reactor's). The longest bounds how late an idle reactor
/// notices an engine event that arrives while it is parked (the event ring
/// has no wake-up): 200 µs keeps an idle gateway at a fraction of a percent
/// of a core while its first reply after a lull is still sub-millisecond.
pub const IDLE_PARK_MIN: Duration = Duration::from_micros(10);
pub const IDLE_PARK_MAX: Duration = Duration::from_micros(200);

/// Short blocked idle periods between two probe spins of a back-off
/// reactor, at first and at most (each missed probe doubles it).
pub const IDLE_PROBE_EVERY_MIN: u32 = 16;
pub const IDLE_PROBE_EVERY_MAX: u32 = 1024;

/// Longest a client's `send_*` waits for a non-blocking socket to take a
/// frame before giving up with `TimedOut`: a gateway that has not read for
/// this long has stopped.
pub const CLIENT_SEND_STALL_MAX: Duration = Duration::from_secs(5);

const _: () = assert!(MSGS_PER_SEC_DEFAULT >= 1 && MSGS_PER_SEC_DEFAULT <= MSGS_PER_SEC_MAX);
/// Largest file a client reads a secret from: longer than any secret with
/// its whitespace, so a wrong file (a key table, a log) is refused unread.
pub const SECRET_FILE_SIZE_MAX: u64 = 4096;

const _: () = assert!(BURST_DEFAULT >= 1 && BURST_DEFAULT <= BURST_MAX);
const _: () = assert!(JOURNAL_FLUSH_RECORDS_MAX >= 1);
const _: () = assert!(JOURNAL_FLUSH_RECORDS_MAX <= JOURNAL_RECOVERY_WINDOW_RECORDS);
const _: () = assert!(AUDIT_RING_CAPACITY_DEFAULT.is_power_of_two());
const _: () = assert!(JOURNAL_CAPACITY_RECORDS_DEFAULT <= JOURNAL_CAPACITY_RECORDS_MAX);
const _: () = assert!(JOURNAL_CAPACITY_RECORDS_DEFAULT >= JOURNAL_SEGMENT_RECORDS_MIN);
const _: () = assert!(IDLE_PARK_MIN.as_nanos() <= IDLE_PARK_MAX.as_nanos());
const _: () = assert!(IDLE_PROBE_EVERY_MIN <= IDLE_PROBE_EVERY_MAX);

/// Key ids whose logon replay floor (the request time of their last
/// accepted Logon) the gateway remembers apart from its key table: those
/// read from the audit journal at start-up and those of keys a reload
/// removed (so a key removed and added back gets its floor back, not an
/// empty nonce cache alone). Beyond it a key's floor is folded into the
/// floor every key shares — never dropped: a floor only ever refuses
/// earlier logons, so folding is safe, and costs nothing once the clock has
/// passed it. Four times `KEYS_MAX` covers a journal's whole history of
/// keys for any venue; the cost is ~40 B a key id, ~640 KiB when full,
/// built once at start-up (and touched again only by reloads).
pub const LOGON_FLOOR_KEYS_MAX: usize = 4 * KEYS_MAX;

/// Records (of any kind) the audit journal writes at most between two
/// checkpoints when it has an anchor key (`audit_anchor_key_file`): a
/// checkpoint is written before the record that would make the stretch
/// longer, so at most this many records after the last checkpoint are not
/// authenticated by the anchor key (what an unclean stop can leave, and
/// what `audit verify --anchor-key` accepts at the end of a journal). The
/// same as `FLUSH_RECORDS_MAX`, the records a power loss can take. Cost:
/// one record and one HMAC-SHA256 (~1 µs on the journal thread) per 64
/// records, 1.6% of the journal.
pub const JOURNAL_CHECKPOINT_RECORDS: u64 = 64;

/// Age of the last checkpoint after which the journal thread writes one
/// if records followed it, so that a quiet gateway's last events are
/// authenticated within a second, not only 64 records later. At most one
/// record a second.
pub const JOURNAL_CHECKPOINT_INTERVAL_NS: u64 = 1_000_000_000;

/// Longest anchor key file read: 64 hex digits and whitespace fit many
/// times over; anything longer is not a key file and is refused unread.
pub const ANCHOR_KEY_FILE_SIZE_MAX: u64 = 4096;

const _: () = assert!(LOGON_FLOOR_KEYS_MAX >= KEYS_MAX);
const _: () = assert!(JOURNAL_CHECKPOINT_RECORDS >= 2);

/// Session lines in one `admin sessions` answer; the answer says how many
/// more there were. The admin thread builds the answer in one string (about
/// 130 bytes a line, so 130 KiB at most) and `ordergate admin` prints it to
/// a terminal: past a thousand lines a list is for a script, which wants
/// the stats file or the journal instead.
pub const ADMIN_SESSIONS_LISTED_MAX: usize = 1_000;

/// How long a shared-memory engine link's peer may leave its liveness beat
/// unchanged before it is judged dead (`link` module docs): the gateway
/// then answers every order ENGINE_UNAVAILABLE, and the engine cancels the
/// dead gateway's cancel-on-disconnect orders. Each side beats on its turn
/// at least every millisecond (the reactor's timer tick; the engine loop's
/// longest sleep is 1 ms), so a live side misses 1000 beats before this
/// fires: a scheduling stall, a page fault storm or a debugger can pause a
/// process for tens of milliseconds, not a second. Cost: for up to one
/// second after an engine dies, orders wait for their answer (they are
/// then answered ENGINE_UNAVAILABLE, not lost); a gateway's COD orders
/// stay in the book up to one second after it dies.
pub const ENGINE_LIVENESS_TIMEOUT_NS: u64 = 1_000_000_000;

// ---------------------------------------------------------------------------
// The runtime's own bounds (crates/ordergate: the reactor's io_uring loop,
// the listener, start-up and the stats reader). Here with the others so
// that every limit is in one place; their modules re-export them.

/// Completions handled per turn before the rest of the turn runs: bounds
/// the time between two looks at the engine rings and the timers.
pub const CQE_BATCH: usize = 256;
/// How long a stopping reactor waits for its sessions to flush their
/// Terminate before it shuts every connection down hard.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long it then waits for the kernel to finish the connections'
/// operations before it gives up (and leaks the buffers rather than free
/// memory the kernel may still write).
pub const STOP_HARD: Duration = Duration::from_secs(2);
/// Latency histogram range: 1 ns to 10 s, 3 significant digits.
pub const LATENCY_MAX_NS: u64 = 10_000_000_000;
/// How long a reactor whose engine runs on another thread spins after
/// handing it a command, rather than block: the answer comes through a
/// ring, which wakes nobody. The engine answers in well under a
/// microsecond when it polls; this covers an engine thread that was
/// descheduled, beyond which the reactor blocks for at most `PARK_MAX` (the reactor's).
pub const REMOTE_ANSWER_HOLD: Duration = Duration::from_micros(50);
/// Pending connections the kernel queues per listener before accept.
pub const LISTEN_BACKLOG: i32 = 1024;
/// Keys whose floor is ahead of the clock that are named at start-up.
pub const AHEAD_NAMED_MAX: usize = 4;
/// Longest run of hex digits in a value a config error may quote. Values
/// (addresses, paths, durations, names) are quoted as they are: they help
/// and hold no secret; a run this long is a secret, or part of one, from a
/// keys file given where the config belongs. (The keys file's errors quote
/// only names, `keys::scrub`.)
pub const CONFIG_HEX_RUN_MAX: usize = 15;
/// Times a reader retries a block whose `seq` moved under it before it
/// takes the values as they are (flagged inconsistent).
pub const SNAPSHOT_RETRIES: u32 = 64;
