//! Every limit in ordergate, in one place, with the reason it exists and what
//! it costs. Anything that can grow is bounded by one of these (or by a config
//! value that is checked against one of these at start-up), and running into
//! a bound has a defined, tested behaviour that is named beside it.
//!
//! Names put the unit or qualifier last: `frame_size_max`, `keys_max`.

use crate::wire;

/// Largest frame of any template (Fill, 84 bytes). A length prefix above this
/// is refused at once (Terminate MALFORMED / LogonReject MALFORMED) before any
/// more bytes are buffered: there is no other way to make progress on a stream
/// whose framing is broken.
pub const FRAME_SIZE_MAX: usize = wire::FILL_SIZE;

/// Smallest frame of any template (LogonReject, 32 bytes).
pub const FRAME_SIZE_MIN: usize = wire::LOGON_REJECT_SIZE;

/// Bytes a session keeps of a partly received frame. One frame is the most it
/// can ever need to hold: whole frames are decoded straight from the receive
/// buffer; only a frame split across reads is copied here.
pub const RX_PARTIAL_MAX: usize = FRAME_SIZE_MAX;

/// Bytes of encoded replies a session may hold before the socket takes them.
/// 64 KiB is ~780 Fills: far more than a healthy client leaves unread between
/// two reactor turns. A session whose buffer cannot take a reply (or, before
/// a frame is read, the worst-case direct reply to it) is a slow consumer:
/// it is ended and its socket closed at once, queue abandoned (the exchange
/// convention).
pub const TX_BUFFER_SIZE: usize = 64 * 1024;

/// Room a session needs in its transmit buffer before it reads another
/// client frame: the largest reply the session itself writes for one frame
/// (OrderRejected or Terminate) plus a Terminate, so a refusal can always be
/// written.
pub const TX_REPLY_RESERVE: usize = wire::ORDER_REJECTED_SIZE + wire::TERMINATE_SIZE;

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

/// Slots in the logon nonce replay cache, shared by every reactor. A nonce
/// must be remembered for the whole skew window (2 × 5 s by default); at 4096
/// slots the gateway can take ~400 signed logons per second with no false
/// refusals. When every slot a nonce may use is live, the logon is refused
/// THROTTLED (never silently admitted).
pub const NONCE_CACHE_SLOTS: usize = 1 << 12;

/// Slots of the nonce cache one nonce may probe before the cache counts as
/// full for it. Bounds the work of a logon.
pub const NONCE_CACHE_PROBES_MAX: usize = 16;

/// Slots in the per-address logon-attempt table (hashed). Collisions only make
/// two addresses share a lockout budget, never admit anyone.
pub const LOGON_ADDRESS_SLOTS: usize = 1 << 12;

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

/// Failed logons from one address within the lockout window before further
/// logons from it are refused THROTTLED without any HMAC work (CME: 5 in 60 s).
pub const LOGON_FAILURES_MAX_DEFAULT: u32 = 5;
pub const LOGON_LOCKOUT_WINDOW_NS_DEFAULT: u64 = 60_000_000_000;

const _: () = assert!(FRAME_SIZE_MAX <= RX_PARTIAL_MAX);
const _: () = assert!(TX_REPLY_RESERVE < TX_BUFFER_SIZE);
const _: () = assert!(SESSIONS_PER_REACTOR_MAX <= crate::engine::SessionId::SLOTS_MAX);
const _: () = assert!(REACTORS_MAX <= crate::engine::SessionId::REACTORS_MAX);
const _: () = assert!(NONCE_CACHE_SLOTS.is_power_of_two());
const _: () = assert!(LOGON_ADDRESS_SLOTS.is_power_of_two());
const _: () = assert!(NONCE_CACHE_PROBES_MAX <= NONCE_CACHE_SLOTS);
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
const _: () = assert!(RING_CAPACITY_DEFAULT >= crate::engine::EVENTS_PER_STEP_MAX);

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
pub const RING_CAPACITY_MIN: usize = crate::engine::EVENTS_PER_STEP_MAX.next_power_of_two();

/// Largest command/event ring: 1 Mi slots × 64 B = 64 MiB per ring, two per
/// reactor. A deeper ring only hides an engine that cannot keep up, and
/// lengthens the queue every order waits in.
pub const RING_CAPACITY_MAX: usize = 1 << 20;

/// Longest logon timeout a config may set, in ms. A connection holds a
/// session slot until it logs on or its deadline passes; an honest client
/// logs on within a round trip, so a minute only helps slot-hogging.
pub const LOGON_TIMEOUT_MS_MAX: u64 = 60_000;

/// Widest logon skew window a config may set, in ms (one side). Nonces are
/// remembered for 2 × skew in `NONCE_CACHE_SLOTS` slots: at a minute, the
/// cache admits ~34 signed logons a second before refusing THROTTLED.
pub const LOGON_SKEW_MS_MAX: u64 = 60_000;

/// Longest run of throttled messages a config may tolerate before
/// THROTTLE_BREACH. A run as long as `BURST_MAX` never ends a session in
/// practice: anything longer is a typo.
pub const THROTTLE_BREACH_RUN_MAX: u32 = 1_000_000;

/// Most failed logons a config may allow one address before lock-out. The
/// lock-out exists to stop secret guessing; a thousand guesses per window is
/// already no lock-out.
pub const LOGON_FAILURES_MAX_BOUND: u32 = 1_000;

/// Longest lock-out window a config may set, in ms (an hour). Addresses
/// share hashed slots, so a collision can lock an innocent address out for
/// the whole window.
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

/// Ended sessions per reactor whose orders may still rest in the book (they
/// logged on without cancel-on-disconnect), remembered so that revoking or
/// killing their key also cancels those orders. 4096 × 16 bytes = 64 KiB per
/// reactor. When it is full the oldest entry is forgotten and counted
/// (`orphans_forgotten`): a kill then cannot reach that session's orders.
pub const ORPHANS_PER_REACTOR: usize = 4096;

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
